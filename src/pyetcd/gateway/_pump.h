/*
 * What the relay (_pump.c) and its TLS end (_tlsend.c) share: the pump, its pairs of sockets,
 * and the relay steps the TLS end reuses for the direction it leaves in plaintext.
 */
#ifndef PYETCD_PUMP_H
#define PYETCD_PUMP_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#define CHUNK (64 * 1024) /* one recv; a TLS record is at most ~16 KiB */

struct pair;
struct tls_end;  /* _tlsend.c: one client's TLS session */
struct tls_conf; /* _tlsend.c: the URL's certificate, trusted CAs and client rules */

/* One socket of a pair, and the direction that reads from it. */
struct side {
    struct pair *pair;
    int fd;
    char *held;        /* read from this side, not yet taken by the other; NULL when none */
    size_t held_off, held_len;
    int eof;           /* this side ended its stream (recv returned 0, or the client's close_notify) */
    int shut;          /* shutdown(fd, SHUT_WR) done: the other side's end was passed on */
    int hup;           /* epoll said EPOLLHUP: fd takes no more bytes (peer gone, or both ends shut) */
    int watching_out;  /* EPOLLOUT is in fd's epoll events */
};

struct pair {
    struct side s[2];      /* s[0]: the client (with connect: the peer's TLS server), s[1]: the plaintext end */
    struct tls_end *tls;   /* the client's TLS session when the front ends TLS; NULL: bytes as they are */
    int dead;
    struct pair *prev, *next; /* the thread's live list, or the queue of new pairs */
};

typedef struct {
    PyObject_HEAD
    int ep, wake;             /* epoll instance; eventfd that wakes the thread */
    char *buf;                /* the thread's scratch buffer, CHUNK bytes */
    char *sink;               /* a second one, for what the TLS end discards */
    struct tls_conf *tls;     /* set: the pump ends its clients' TLS */
    pthread_t thread;
    int started;              /* thread running and not joined */
    pthread_mutex_t lock;     /* guards queued, closing */
    struct pair *queued;      /* added by Python, not yet registered by the thread */
    int closing;              /* close() was called: no more pairs, thread ends */
    struct pair *live;        /* thread only */
    struct pair *dead;        /* thread only: closed during this batch of events, freed after it */
    Py_ssize_t count;         /* pairs open (queued or live), read and written atomically */
} Pump;

/* _pump.c, for the TLS end */
struct side *other(struct side *s);
void kill_pair(Pump *p, struct pair *pr);
int watch(Pump *p, struct side *s, int out);
int hold(Pump *p, struct side *from, const char *buf, size_t len);
int flush(Pump *p, struct side *from);
/* send all of buf, or keep the rest in from->held: 0, or -1 when the pair broke */
int pass(Pump *p, struct side *from, const char *buf, size_t len);

/* _tlsend.c */
struct tls_conf *tls_conf_new(const char *cert, const char *key, const char *ca, int verify, int connect,
                              int identity_fd, const char **error);
void tls_conf_free(struct tls_conf *c);
/* host: with connect, the name (or address) the server's certificate must show */
struct tls_end *tls_end_new(struct tls_conf *c, int client_fd, int server_fd, const char *host);
/* a newly registered pair: with connect, send the ClientHello. 0, or -1 when the pair must be closed */
int tls_start(Pump *p, struct pair *pr);
void tls_end_free(struct tls_end *t);
/* the events of one side of a TLS pair: 0, or -1 when the pair must be closed */
int tls_on_event(Pump *p, struct side *s, unsigned int events);
int tls_pair_done(struct pair *pr);
/* watch the identity socket for room (epoll tag: a side without a pair); send what waited for it */
int tls_conf_watch(struct tls_conf *c, int ep);
void tls_notes_ready(Pump *p);

#endif
