/* _h2.h: what the native gRPC transport's three files share (see _h2.c for the whole design). */
#ifndef PYETCD_H2_H
#define PYETCD_H2_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define MAX_FD (1 << 17)
#define CHUNK (64 * 1024)
#define PATH_MAX_LEN 256

enum { EV_OPEN, EV_MSG, EV_HALF, EV_GONE, EV_BIG, EV_DRAINED, EV_READY, EV_CLOSED };

struct buf {
    char *p;
    size_t off, len, cap; /* bytes p[off .. len) are pending */
};

static inline int buf_put(struct buf *b, const void *data, size_t n)
{
    if (b->off && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + n > b->cap) {
        if (b->off) { /* compact before growing */
            memmove(b->p, b->p + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = (b->len + n) * 2;
            char *p = realloc(b->p, cap);
            if (!p)
                return -1;
            b->p = p;
            b->cap = cap;
        }
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static inline size_t buf_pending(const struct buf *b) { return b->len - b->off; }

struct conn;
struct transport;

struct stream {
    struct stream *prev, *next; /* the connection's open streams */
    struct conn *conn;
    int32_t id;
    char path[PATH_MAX_LEN];
    /* request side: metadata as "name\0value\0" pairs, the message being reassembled */
    struct buf md;
    struct buf in;
    int discard;   /* a message was over the limit: the rest of the input is dropped */
    int opened;    /* OPEN was queued */
    /* response side */
    struct buf out;
    int headers_sent, deferred, want_drain, ending, ended;
    int status;
    char *message;
    /* a call we make (Transport.call): the request is our side, status and message come back */
    int client;
    int reported; /* CLOSED was posted: the response ended (or the stream closed) */
};

struct conn {
    struct transport *t;
    int fd;
    uint64_t serial;
    nghttp2_session *h2;
    struct buf out; /* serialized frames not yet taken by the socket */
    int want_out;
    char peer[128];
    struct stream *streams;
    struct conn *next_dead;
    struct conn *next_touched; /* take_ops: connections to flush once its ops are applied */
    int touched;
    int outgoing;        /* a connection we opened (Transport.call), closed once its call is over */
    struct stream *call; /* ... its one stream, while it is open */
    int ready;           /* ... and the server's SETTINGS arrived (READY was posted) */
    int64_t heard_ms;    /* ... when it last read a byte (keepalive) */
    int64_t pinged_ms;   /* ... when it sent the PING still unanswered; 0: none */
};

struct event {
    struct event *next;
    int kind;
    uint64_t key;
    int flag;
    size_t size;
    char *data; /* MSG bytes; OPEN: path\0 md... */
    size_t len, md_len;
    char peer[128];
};

struct op {
    struct op *next;
    uint64_t key;
    char *data;
    size_t len;
    int status; /* -1: the call goes on; OP_CLOSE: close the call's connection */
    char *message;
    int want_drain;
    /* OP_CALL (status): open a call on connect_fd, to authority and path */
    int connect_fd;
    char *authority, *path;
};

enum { OP_CLOSE = -2, OP_CALL = -3 };

void h2_free_ops(struct op *o);

/* A stream's key (see _h2.c): the connection's serial tells a reused descriptor's connections apart. */
static inline uint64_t h2_key(uint64_t serial, int fd, int32_t id)
{
    return ((serial & 0xffff) << 48) | ((uint64_t)fd << 31) | (uint64_t)id;
}

/* Wake whoever waits on eventfd ``fd`` (the HTTP/2 thread, or Python's event loop). */
static inline void h2_signal(int fd)
{
    uint64_t one = 1;
    while (write(fd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

typedef struct transport {
    PyObject_HEAD
    int listen_fd, ep, wake_py, wake_h2;
    size_t max_recv;
    pthread_t thread;
    int started, stopping;
    pthread_mutex_t lock;
    /* held by the HTTP/2 thread while it works on connections (all but epoll_wait), and by a
     * send(direct=True) that applies its ops in the caller's thread (h2_send_direct) */
    pthread_mutex_t io;
    struct event *events, **events_tail;
    struct op *ops, **ops_tail;
    int shutdown_requested;
    uint64_t serials;
    /* calls of ours: a connection silent this long gets a PING, and is closed when the PING
     * goes unanswered as long again (grpc's keepalive); 0: never */
    int keepalive_ms, keepalive_timeout_ms;
    int64_t checked_ms;
    struct conn *conns[MAX_FD];
    struct conn *dead;
    uint8_t scratch[CHUNK];
} Transport;

/* _h2stream.c: one HTTP/2 stream as one gRPC call */
void h2_post(Transport *t, struct event *e);
struct event *h2_event_new(int kind, struct stream *s);
void h2_stream_free(struct stream *s);
void h2_apply_op(struct conn *c, struct stream *s, struct op *o);
int h2_callbacks_new(nghttp2_session_callbacks **callbacks);
/* a call's stream on a new client connection, its request headers submitted (take_ops) */
struct stream *h2_call_new(struct conn *c, const char *authority, const char *path);
/* a call ended: CLOSED with its grpc-status (-1: none came) and grpc-message */
void h2_call_closed(Transport *t, struct stream *s);

/* _h2conn.c: connections and the thread */
int64_t h2_now_ms(void);
int h2_sessions_init(void);
void h2_conn_close(Transport *t, struct conn *c);
void *h2_run(void *arg);
/* apply ``ops`` (and any queued before them) in the calling thread, if the HTTP/2 thread is not
 * working now: 1 if done (ops consumed), 0 if the caller must queue them */
int h2_send_direct(Transport *t, struct op *ops);

#endif
