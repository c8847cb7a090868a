/*
 * _h2: the client port's gRPC transport, natively: HTTP/2 (nghttp2) and gRPC message framing on
 * one thread of its own (epoll), without the GIL. Python sees calls, not frames.
 *
 * Why: under grpc.aio a request costs the member 100-200 us of CPU inside grpc's Cython glue
 * before any of pyetcd's code runs (bench/grpc_floor.py), and all of it holds the GIL. Here the
 * thread parses frames, reassembles gRPC messages and queues them as events; Python takes every
 * queued event in one call (take) and hands back every reply of a loop pass in one call (send).
 * A request then costs Python little more than decoding it and running its handler.
 *
 * Events (tuples, see h2/server.py): OPEN key path metadata peer, MSG key compressed bytes,
 * HALF key (the client finished sending), GONE key (the stream ended without our status: reset,
 * or its connection closed), BIG key size (a message over the receive limit), DRAINED key (a
 * stream's queued output was all handed to HTTP/2, asked for by send). A key names a stream:
 * (connection serial & 0xffff) << 48 | fd << 31 | stream id; the serial tells a new connection on
 * a reused descriptor from the old one.
 *
 * Threads: the HTTP/2 thread owns connections and sessions. Python's take() and send() only
 * move queued events and ops under `lock`; eventfds wake each side when its queue turns
 * non-empty.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_EVENTS 64
#define MAX_FD (1 << 17)
#define CHUNK (64 * 1024)
#define PATH_MAX_LEN 256

enum { EV_OPEN, EV_MSG, EV_HALF, EV_GONE, EV_BIG, EV_DRAINED };

struct buf {
    char *p;
    size_t off, len, cap; /* bytes p[off .. len) are pending */
};

static int buf_put(struct buf *b, const void *data, size_t n)
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

static size_t buf_pending(const struct buf *b) { return b->len - b->off; }

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
    int status; /* -1: the call goes on */
    char *message;
    int want_drain;
};

static void free_ops(struct op *o)
{
    while (o) {
        struct op *next = o->next;
        free(o->data);
        free(o->message);
        free(o);
        o = next;
    }
}

typedef struct transport {
    PyObject_HEAD
    int listen_fd, ep, wake_py, wake_h2;
    size_t max_recv;
    pthread_t thread;
    int started, stopping;
    pthread_mutex_t lock;
    struct event *events, **events_tail;
    struct op *ops, **ops_tail;
    int shutdown_requested;
    uint64_t serials;
    struct conn *conns[MAX_FD];
    struct conn *dead;
    uint8_t scratch[CHUNK];
} Transport;

static uint64_t key_of(struct conn *c, int32_t id)
{
    return ((c->serial & 0xffff) << 48) | ((uint64_t)c->fd << 31) | (uint64_t)id;
}

static void post(Transport *t, struct event *e)
{
    pthread_mutex_lock(&t->lock);
    int was_empty = t->events == NULL;
    *t->events_tail = e;
    t->events_tail = &e->next;
    pthread_mutex_unlock(&t->lock);
    if (was_empty) {
        uint64_t one = 1;
        while (write(t->wake_py, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
}

static struct event *event_new(int kind, struct stream *s)
{
    struct event *e = calloc(1, sizeof *e);
    if (e) {
        e->kind = kind;
        e->key = key_of(s->conn, s->id);
    }
    return e;
}

/* ---- nghttp2 callbacks: the request side ---- */

static int on_begin_headers(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
    struct conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct stream *s = calloc(1, sizeof *s);
    if (!s)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    s->id = f->hd.stream_id;
    s->conn = c;
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    nghttp2_session_set_stream_user_data(h2, s->id, s);
    return 0;
}

static int on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!s || s->opened)
        return 0; /* trailers of a request carry nothing we read */
    if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
        size_t n = valuelen < PATH_MAX_LEN - 1 ? valuelen : PATH_MAX_LEN - 1;
        memcpy(s->path, value, n);
        s->path[n] = 0;
        return 0;
    }
    if (namelen == 0 || name[0] == ':')
        return 0;
    if (buf_put(&s->md, name, namelen) < 0 || buf_put(&s->md, "", 1) < 0 || buf_put(&s->md, value, valuelen) < 0 ||
        buf_put(&s->md, "", 1) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    return 0;
}

static void open_stream(Transport *t, struct stream *s)
{
    struct event *e = event_new(EV_OPEN, s);
    if (!e)
        return;
    size_t pl = strlen(s->path) + 1;
    e->data = malloc(pl + buf_pending(&s->md) + 1);
    if (!e->data) {
        free(e);
        return;
    }
    memcpy(e->data, s->path, pl);
    memcpy(e->data + pl, s->md.p + s->md.off, buf_pending(&s->md));
    e->len = pl + buf_pending(&s->md);
    memcpy(e->peer, s->conn->peer, sizeof e->peer);
    free(s->md.p);
    memset(&s->md, 0, sizeof s->md);
    s->opened = 1;
    post(t, e);
}

/* Cut complete gRPC messages (1 byte compressed flag, 4 bytes big-endian length, the message) out of s->in. */
static void cut_messages(Transport *t, struct stream *s)
{
    for (;;) {
        size_t have = buf_pending(&s->in);
        if (have < 5)
            return;
        const uint8_t *h = (const uint8_t *)s->in.p + s->in.off;
        size_t n = ((size_t)h[1] << 24) | ((size_t)h[2] << 16) | ((size_t)h[3] << 8) | h[4];
        if (n > t->max_recv) {
            struct event *e = event_new(EV_BIG, s);
            if (e) {
                e->size = n;
                post(t, e);
            }
            s->discard = 1;
            s->in.off = s->in.len = 0;
            return;
        }
        if (have < 5 + n)
            return;
        struct event *e = event_new(EV_MSG, s);
        if (!e)
            return;
        e->flag = h[0];
        e->data = malloc(n ? n : 1);
        if (!e->data) {
            free(e);
            return;
        }
        memcpy(e->data, h + 5, n);
        e->len = n;
        s->in.off += 5 + n;
        post(t, e);
    }
}

static int on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    struct conn *c = ud;
    Transport *t = c->t;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (!s || s->discard)
        return 0;
    if (buf_put(&s->in, data, len) < 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    cut_messages(t, s);
    return 0;
}

static int on_frame_recv(nghttp2_session *h2, const nghttp2_frame *f, void *ud)
{
    Transport *t = ((struct conn *)ud)->t;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (!s)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && !s->opened)
        open_stream(t, s);
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        struct event *e = event_new(EV_HALF, s);
        if (e)
            post(t, e);
    }
    return 0;
}

static void stream_free(struct stream *s)
{
    free(s->md.p);
    free(s->in.p);
    free(s->out.p);
    free(s->message);
    free(s);
}

static void stream_unlink(struct stream *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        s->conn->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

static int on_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *ud)
{
    (void)error_code;
    Transport *t = ((struct conn *)ud)->t;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (!s)
        return 0;
    if (s->opened && !s->ended) {
        struct event *e = event_new(EV_GONE, s);
        if (e)
            post(t, e);
    }
    nghttp2_session_set_stream_user_data(h2, id, NULL);
    stream_unlink(s);
    stream_free(s);
    return 0;
}

/* ---- the response side ---- */

static void send_trailers(nghttp2_session *h2, struct stream *s)
{
    char code[16];
    int n = snprintf(code, sizeof code, "%d", s->status);
    nghttp2_nv nv[2] = {
        {(uint8_t *)"grpc-status", (uint8_t *)code, 11, (size_t)n, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"grpc-message", (uint8_t *)(s->message ? s->message : ""), 12, s->message ? strlen(s->message) : 0,
         NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_submit_trailer(h2, s->id, nv, s->message && *s->message ? 2 : 1);
    s->ended = 1;
}

static ssize_t read_out(nghttp2_session *h2, int32_t id, uint8_t *dest, size_t len, uint32_t *flags,
                        nghttp2_data_source *src, void *ud)
{
    (void)src;
    Transport *t = ((struct conn *)ud)->t;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, id);
    if (!s)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    size_t n = buf_pending(&s->out);
    if (n > len)
        n = len;
    memcpy(dest, s->out.p + s->out.off, n);
    s->out.off += n;
    if (buf_pending(&s->out) == 0) {
        if (s->want_drain) {
            s->want_drain = 0;
            struct event *e = event_new(EV_DRAINED, s);
            if (e)
                post(t, e);
        }
        if (s->ending) {
            *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
            send_trailers(h2, s);
            return (ssize_t)n;
        }
        if (n == 0) {
            s->deferred = 1;
            return NGHTTP2_ERR_DEFERRED;
        }
    }
    return (ssize_t)n;
}

static const nghttp2_nv RESPONSE_HEADERS[] = {
    {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE},
    {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
     NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE},
};

/* One op of Python's for an open stream: queue its bytes, and its status if it ends the call. */
static void apply_op(struct conn *c, struct stream *s, struct op *o)
{
    if (s->ended || s->ending)
        return;
    if (o->len && buf_put(&s->out, o->data, o->len) < 0) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (o->want_drain && buf_pending(&s->out) == 0) {
        struct event *e = event_new(EV_DRAINED, s);
        if (e)
            post(c->t, e);
    } else if (o->want_drain) {
        s->want_drain = 1;
    }
    if (o->status >= 0) {
        s->status = o->status;
        s->message = o->message;
        o->message = NULL;
    }
    if (!s->headers_sent && o->status >= 0 && buf_pending(&s->out) == 0) {
        /* nothing was sent: a trailers-only response */
        char code[16];
        int n = snprintf(code, sizeof code, "%d", s->status);
        nghttp2_nv nv[4] = {RESPONSE_HEADERS[0], RESPONSE_HEADERS[1],
                            {(uint8_t *)"grpc-status", (uint8_t *)code, 11, (size_t)n, NGHTTP2_NV_FLAG_NONE},
                            {(uint8_t *)"grpc-message", (uint8_t *)(s->message ? s->message : ""), 12,
                             s->message ? strlen(s->message) : 0, NGHTTP2_NV_FLAG_NONE}};
        nghttp2_submit_response(c->h2, s->id, nv, s->message && *s->message ? 4 : 3, NULL);
        s->headers_sent = s->ended = 1;
        return;
    }
    if (o->status >= 0)
        s->ending = 1;
    if (!s->headers_sent) {
        nghttp2_data_provider dp = {.read_callback = read_out};
        nghttp2_submit_response(c->h2, s->id, RESPONSE_HEADERS, 2, &dp);
        s->headers_sent = 1;
    } else if (s->deferred) {
        s->deferred = 0;
        nghttp2_session_resume_data(c->h2, s->id);
    }
}

/* ---- connections ---- */

static void conn_close(Transport *t, struct conn *c)
{
    if (t->conns[c->fd] != c)
        return;
    t->conns[c->fd] = NULL;
    for (struct stream *s = c->streams; s;) {
        struct stream *next = s->next;
        if (s->opened && !s->ended) {
            struct event *e = event_new(EV_GONE, s);
            if (e)
                post(t, e);
        }
        nghttp2_session_set_stream_user_data(c->h2, s->id, NULL);
        stream_free(s);
        s = next;
    }
    c->streams = NULL;
    close(c->fd); /* also leaves epoll */
    c->next_dead = t->dead;
    t->dead = c;
}

static void free_dead(Transport *t)
{
    while (t->dead) {
        struct conn *c = t->dead;
        t->dead = c->next_dead;
        nghttp2_session_del(c->h2);
        free(c->out.p);
        free(c);
    }
}

/* Serialize what the session wants to send and write as much as the socket takes. */
static int conn_flush(Transport *t, struct conn *c)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->h2, &data);
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        if (buf_pending(&c->out) == 0) { /* the usual case: straight to the socket */
            ssize_t w = send(c->fd, data, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
            if (w < 0)
                w = 0;
            if (w < n && buf_put(&c->out, data + w, (size_t)(n - w)) < 0)
                return -1;
        } else if (buf_put(&c->out, data, (size_t)n) < 0) {
            return -1;
        }
        if (buf_pending(&c->out) > 4 * CHUNK)
            break; /* the peer is slow: stop serializing until the socket drains */
    }
    while (buf_pending(&c->out)) {
        ssize_t w = send(c->fd, c->out.p + c->out.off, buf_pending(&c->out), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            break;
        if (w < 0)
            return -1;
        c->out.off += (size_t)w;
    }
    int want = buf_pending(&c->out) > 0;
    if (want != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = want;
    }
    if (!nghttp2_session_want_read(c->h2) && !nghttp2_session_want_write(c->h2) && !want)
        return -1; /* GOAWAY exchanged and all sent */
    return 0;
}

static void conn_readable(Transport *t, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, t->scratch, CHUNK, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            conn_close(t, c);
            return;
        }
        if (nghttp2_session_mem_recv(c->h2, t->scratch, (size_t)n) < 0) {
            conn_flush(t, c); /* a GOAWAY with the protocol error, if it fits */
            conn_close(t, c);
            return;
        }
        if ((size_t)n < CHUNK)
            break;
    }
    if (conn_flush(t, c) < 0)
        conn_close(t, c);
}

static nghttp2_session_callbacks *callbacks;
/* nghttp2's HTTP checks off: grpc-go sends an :authority that is its dial target as written
 * (etcdctl --endpoints=http://host:port makes it "http://host:port"), which they refuse with
 * RST_STREAM PROTOCOL_ERROR; grpc's own server takes it. Framing is still checked. */
static nghttp2_option *session_options;

static void conn_accept(Transport *t)
{
    for (;;) {
        int fd = accept4(t->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (fd >= MAX_FD || t->stopping) {
            close(fd);
            continue;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (!c || nghttp2_session_server_new2(&c->h2, callbacks, c, session_options) != 0) {
            free(c);
            close(fd);
            continue;
        }
        c->t = t;
        c->fd = fd;
        c->serial = ++t->serials;
        /* the peer as grpc names it: the front binds each relayed connection to an abstract name */
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        snprintf(c->peer, sizeof c->peer, "unix:");
        if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0 && sa.ss_family == AF_UNIX) {
            struct sockaddr_un *un = (struct sockaddr_un *)&sa;
            size_t plen = sl > offsetof(struct sockaddr_un, sun_path) ? sl - offsetof(struct sockaddr_un, sun_path) : 0;
            if (plen > 1 && un->sun_path[0] == 0) {
                size_t n = plen - 1 < sizeof c->peer - 15 ? plen - 1 : sizeof c->peer - 15;
                memcpy(c->peer, "unix-abstract:", 14);
                memcpy(c->peer + 14, un->sun_path + 1, n);
                c->peer[14 + n] = 0;
            }
        }
        nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (1u << 31) - 1},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20},
            {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, 1 << 20},
        };
        nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 3);
        nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 64 << 20);
        t->conns[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
        epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev);
        if (conn_flush(t, c) < 0)
            conn_close(t, c);
    }
}

/* Python's ops, in order; each touched connection is flushed once. */
static void take_ops(Transport *t)
{
    uint64_t n;
    while (read(t->wake_h2, &n, sizeof n) < 0 && errno == EINTR)
        ;
    pthread_mutex_lock(&t->lock);
    struct op *o = t->ops;
    t->ops = NULL;
    t->ops_tail = &t->ops;
    int shutdown = t->shutdown_requested;
    t->shutdown_requested = 0;
    pthread_mutex_unlock(&t->lock);
    struct conn *touched = NULL;
    while (o) {
        struct op *next = o->next;
        int fd = (int)((o->key >> 31) & (MAX_FD - 1));
        struct conn *c = t->conns[fd];
        if (c && (c->serial & 0xffff) == (o->key >> 48)) {
            struct stream *s = nghttp2_session_get_stream_user_data(c->h2, (int32_t)(o->key & 0x7fffffff));
            if (s)
                apply_op(c, s, o);
            if (!c->touched) {
                c->touched = 1;
                c->next_touched = touched;
                touched = c;
            }
        }
        free(o->data);
        free(o->message);
        free(o);
        o = next;
    }
    while (touched) {
        struct conn *c = touched;
        touched = c->next_touched;
        c->touched = 0;
        if (t->conns[c->fd] == c && conn_flush(t, c) < 0)
            conn_close(t, c);
    }
    if (shutdown) {
        for (int fd = 0; fd < MAX_FD; fd++) {
            struct conn *c = t->conns[fd];
            if (!c)
                continue;
            nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                                  NGHTTP2_NO_ERROR, NULL, 0);
            if (conn_flush(t, c) < 0)
                conn_close(t, c);
        }
    }
}

static void *run(void *arg)
{
    Transport *t = arg;
    struct epoll_event ev[MAX_EVENTS];
    int listening = 1;
    for (;;) {
        int n = epoll_wait(t->ep, ev, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (int i = 0; i < n; i++) {
            void *tag = ev[i].data.ptr;
            if (tag == &t->listen_fd) {
                conn_accept(t);
            } else if (tag == &t->wake_h2) {
                take_ops(t);
            } else {
                struct conn *c = tag;
                if (t->conns[c->fd] != c)
                    continue; /* closed earlier in this batch */
                if (ev[i].events & EPOLLOUT) {
                    if (conn_flush(t, c) < 0) {
                        conn_close(t, c);
                        continue;
                    }
                }
                if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                    conn_readable(t, c);
            }
        }
        free_dead(t);
        pthread_mutex_lock(&t->lock);
        int stopping = t->stopping;
        pthread_mutex_unlock(&t->lock);
        if (stopping && listening) {
            epoll_ctl(t->ep, EPOLL_CTL_DEL, t->listen_fd, NULL);
            listening = 0;
        }
        if (stopping == 2)
            break;
    }
    for (int fd = 0; fd < MAX_FD; fd++)
        if (t->conns[fd])
            conn_close(t, t->conns[fd]);
    free_dead(t);
    return NULL;
}

/* ---- the Python side ---- */

static PyObject *Transport_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"listen_fd", "max_recv", NULL};
    int listen_fd;
    Py_ssize_t max_recv;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "in", kwlist, &listen_fd, &max_recv))
        return NULL;
    Transport *t = (Transport *)type->tp_alloc(type, 0);
    if (!t)
        return NULL;
    t->listen_fd = listen_fd;
    t->max_recv = (size_t)max_recv;
    t->events_tail = &t->events;
    t->ops_tail = &t->ops;
    pthread_mutex_init(&t->lock, NULL);
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->wake_py = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->wake_h2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = &t->listen_fd};
    struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &t->wake_h2};
    if (t->ep < 0 || t->wake_py < 0 || t->wake_h2 < 0 || epoll_ctl(t->ep, EPOLL_CTL_ADD, listen_fd, &e1) < 0 ||
        epoll_ctl(t->ep, EPOLL_CTL_ADD, t->wake_h2, &e2) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

static PyObject *Transport_start(Transport *t, PyObject *unused)
{
    (void)unused;
    if (!t->started) {
        if (pthread_create(&t->thread, NULL, run, t) != 0)
            return PyErr_SetFromErrno(PyExc_OSError);
        t->started = 1;
    }
    Py_RETURN_NONE;
}

static PyObject *Transport_fileno(Transport *t, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(t->wake_py);
}

static PyObject *metadata_tuple(const char *p, size_t len)
{
    PyObject *list = PyList_New(0);
    size_t i = 0;
    while (list && i < len) {
        const char *name = p + i;
        size_t nl = strlen(name);
        const char *value = name + nl + 1;
        size_t vl = strlen(value);
        PyObject *pair = Py_BuildValue("(s#s#)", name, (Py_ssize_t)nl, value, (Py_ssize_t)vl);
        if (!pair) { /* a value that is not UTF-8: leave it out, as a server would refuse it */
            PyErr_Clear();
        } else {
            PyList_Append(list, pair);
            Py_DECREF(pair);
        }
        i += nl + 1 + vl + 1;
    }
    if (!list)
        return NULL;
    PyObject *tuple = PyList_AsTuple(list);
    Py_DECREF(list);
    return tuple;
}

/* take() -> [(kind, key, ...), ...]: every queued event, oldest first. Never blocks. */
static PyObject *Transport_take(Transport *t, PyObject *unused)
{
    (void)unused;
    uint64_t n;
    if (read(t->wake_py, &n, sizeof n) < 0 && errno != EAGAIN) {
    }
    pthread_mutex_lock(&t->lock);
    struct event *e = t->events;
    t->events = NULL;
    t->events_tail = &t->events;
    pthread_mutex_unlock(&t->lock);
    PyObject *out = PyList_New(0);
    while (e) {
        struct event *next = e->next;
        PyObject *item = NULL;
        if (out) {
            switch (e->kind) {
            case EV_OPEN: {
                size_t pl = strlen(e->data) + 1;
                PyObject *md = metadata_tuple(e->data + pl, e->len - pl);
                item = md ? Py_BuildValue("(iKyNs)", e->kind, (unsigned long long)e->key, e->data, md, e->peer) : NULL;
                break;
            }
            case EV_MSG:
                item = Py_BuildValue("(iKiy#)", e->kind, (unsigned long long)e->key, e->flag, e->data,
                                     (Py_ssize_t)e->len);
                break;
            case EV_BIG:
                item = Py_BuildValue("(iKn)", e->kind, (unsigned long long)e->key, (Py_ssize_t)e->size);
                break;
            default:
                item = Py_BuildValue("(iK)", e->kind, (unsigned long long)e->key);
            }
            if (!item || PyList_Append(out, item) < 0)
                Py_CLEAR(out);
            Py_XDECREF(item);
        }
        free(e->data);
        free(e);
        e = next;
    }
    return out;
}

/* send([(key, data, status, message, want_drain), ...]): data is framed gRPC messages (or b"");
 * status -1 leaves the call open, else it ends it with that grpc-status and grpc-message. */
static PyObject *Transport_send(Transport *t, PyObject *ops)
{
    if (!PyList_Check(ops)) {
        PyErr_SetString(PyExc_TypeError, "send takes a list");
        return NULL;
    }
    struct op *head = NULL, **tail = &head;
    Py_ssize_t count = PyList_GET_SIZE(ops);
    for (Py_ssize_t i = 0; i < count; i++) {
        unsigned long long key;
        const char *data, *message;
        Py_ssize_t len, mlen;
        int status, want_drain;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(ops, i), "Ky#iz#p", &key, &data, &len, &status, &message, &mlen,
                              &want_drain))
            goto fail;
        struct op *o = calloc(1, sizeof *o);
        if (!o)
            goto nomem;
        *tail = o;
        tail = &o->next;
        o->key = key;
        o->status = status;
        o->want_drain = want_drain;
        if (len) {
            o->data = malloc((size_t)len);
            if (!o->data)
                goto nomem;
            memcpy(o->data, data, (size_t)len);
            o->len = (size_t)len;
        }
        if (message) {
            o->message = strndup(message, (size_t)mlen);
            if (!o->message)
                goto nomem;
        }
    }
    if (!head)
        Py_RETURN_NONE;
    pthread_mutex_lock(&t->lock);
    int was_empty = t->ops == NULL;
    *t->ops_tail = head;
    t->ops_tail = tail;
    pthread_mutex_unlock(&t->lock);
    if (was_empty) {
        uint64_t one = 1;
        while (write(t->wake_h2, &one, sizeof one) < 0 && errno == EINTR)
            ;
    }
    Py_RETURN_NONE;
nomem:
    PyErr_NoMemory();
fail:
    free_ops(head);
    return NULL;
}

/* goaway(): stop accepting, tell every connection GOAWAY (calls in flight may finish). */
static PyObject *Transport_goaway(Transport *t, PyObject *unused)
{
    (void)unused;
    pthread_mutex_lock(&t->lock);
    t->shutdown_requested = 1;
    if (!t->stopping)
        t->stopping = 1;
    pthread_mutex_unlock(&t->lock);
    uint64_t one = 1;
    while (write(t->wake_h2, &one, sizeof one) < 0 && errno == EINTR)
        ;
    Py_RETURN_NONE;
}

/* close(): end the thread, closing every connection. */
static PyObject *Transport_close(Transport *t, PyObject *unused)
{
    (void)unused;
    if (t->started) {
        pthread_mutex_lock(&t->lock);
        t->stopping = 2;
        pthread_mutex_unlock(&t->lock);
        uint64_t one = 1;
        while (write(t->wake_h2, &one, sizeof one) < 0 && errno == EINTR)
            ;
        Py_BEGIN_ALLOW_THREADS
        pthread_join(t->thread, NULL);
        Py_END_ALLOW_THREADS
        t->started = 0;
    }
    Py_RETURN_NONE;
}

static void Transport_dealloc(Transport *t)
{
    PyObject *r = Transport_close(t, NULL);
    Py_XDECREF(r);
    struct event *e = t->events;
    while (e) {
        struct event *next = e->next;
        free(e->data);
        free(e);
        e = next;
    }
    free_ops(t->ops);
    if (t->ep >= 0)
        close(t->ep);
    if (t->wake_py >= 0)
        close(t->wake_py);
    if (t->wake_h2 >= 0)
        close(t->wake_h2);
    Py_TYPE(t)->tp_free((PyObject *)t);
}

static PyMethodDef Transport_methods[] = {
    {"start", (PyCFunction)Transport_start, METH_NOARGS, "start the HTTP/2 thread"},
    {"fileno", (PyCFunction)Transport_fileno, METH_NOARGS, "readable when events are queued"},
    {"take", (PyCFunction)Transport_take, METH_NOARGS, "every queued event"},
    {"send", (PyCFunction)Transport_send, METH_O, "queue replies"},
    {"goaway", (PyCFunction)Transport_goaway, METH_NOARGS, "stop accepting; GOAWAY to every connection"},
    {"close", (PyCFunction)Transport_close, METH_NOARGS, "stop the thread and close every connection"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TransportType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pyetcd.h2._h2.Transport",
    .tp_basicsize = sizeof(Transport),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Transport_new,
    .tp_dealloc = (destructor)Transport_dealloc,
    .tp_methods = Transport_methods,
    .tp_doc = "gRPC over HTTP/2 on a native thread (see the module's source)",
};

static struct PyModuleDef h2module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_h2",
    .m_doc = "gRPC over HTTP/2 on a native thread, for the client port (see _h2.c).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__h2(void)
{
    if (PyType_Ready(&TransportType) < 0)
        return NULL;
    if (nghttp2_session_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&session_options) != 0)
        return PyErr_NoMemory();
    nghttp2_option_set_no_http_messaging(session_options, 1);
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);
    PyObject *m = PyModule_Create(&h2module);
    if (!m)
        return NULL;
    Py_INCREF(&TransportType);
    if (PyModule_AddObject(m, "Transport", (PyObject *)&TransportType) < 0) {
        Py_DECREF(&TransportType);
        Py_DECREF(m);
        return NULL;
    }
    PyModule_AddIntConstant(m, "OPEN", EV_OPEN);
    PyModule_AddIntConstant(m, "MSG", EV_MSG);
    PyModule_AddIntConstant(m, "HALF", EV_HALF);
    PyModule_AddIntConstant(m, "GONE", EV_GONE);
    PyModule_AddIntConstant(m, "BIG", EV_BIG);
    PyModule_AddIntConstant(m, "DRAINED", EV_DRAINED);
    return m;
}
