/* _h2conn.c: the transport's thread: accepting, reading and writing connections (epoll), feeding
 * nghttp2 and flushing what it serializes, and applying Python's queued replies (take_ops). */
#include "_h2.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* ---- connections ---- */

void h2_conn_close(Transport *t, struct conn *c)
{
    if (t->conns[c->fd] != c)
        return;
    t->conns[c->fd] = NULL;
    for (struct stream *s = c->streams; s;) {
        struct stream *next = s->next;
        if (s->client) {
            h2_call_closed(t, s);
        } else if (s->opened && !s->ended) {
            struct event *e = h2_event_new(EV_GONE, s);
            if (e)
                h2_post(t, e);
        }
        nghttp2_session_set_stream_user_data(c->h2, s->id, NULL);
        h2_stream_free(s);
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
    if (c->outgoing && !c->call && !want)
        return -1; /* our call is over */
    return 0;
}

int64_t h2_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
            h2_conn_close(t, c);
            return;
        }
        if (c->outgoing) { /* anything heard proves the peer alive */
            c->heard_ms = h2_now_ms();
            c->pinged_ms = 0;
        }
        if (nghttp2_session_mem_recv(c->h2, t->scratch, (size_t)n) < 0) {
            conn_flush(t, c); /* a GOAWAY with the protocol error, if it fits */
            h2_conn_close(t, c);
            return;
        }
        if ((size_t)n < CHUNK)
            break;
    }
    if (conn_flush(t, c) < 0)
        h2_conn_close(t, c);
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
        c->serial = __atomic_add_fetch(&t->serials, 1, __ATOMIC_RELAXED);
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
            h2_conn_close(t, c);
    }
}

/* OP_CALL: a client connection on the op's descriptor, and its call's request submitted. The
 * descriptor is ours from now on; on failure it is closed, and Python hears CLOSED. */
static struct conn *call_open(Transport *t, struct op *o)
{
    int fd = o->connect_fd;
    o->connect_fd = -1; /* ours now: h2_free_ops leaves it alone */
    struct conn *c = calloc(1, sizeof *c);
    if (!c || fd >= MAX_FD || t->conns[fd] || nghttp2_session_client_new2(&c->h2, callbacks, c, session_options) != 0) {
        free(c);
        close(fd);
        struct event *e = calloc(1, sizeof *e);
        if (e) { /* CLOSED without a status: the call never started */
            e->kind = EV_CLOSED;
            e->key = o->key;
            e->flag = -1;
            h2_post(t, e);
        }
        return NULL;
    }
    c->t = t;
    c->fd = fd;
    c->outgoing = 1;
    c->heard_ms = h2_now_ms();
    c->serial = o->key >> 48;
    snprintf(c->peer, sizeof c->peer, "%s", o->authority);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20},
    };
    nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2);
    t->conns[fd] = c;
    if (!h2_call_new(c, o->authority, o->path)) {
        h2_conn_close(t, c);
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev);
    return c;
}

/* Ops in order; each touched connection is flushed once (with io held). */
static void apply_ops(Transport *t, struct op *ops)
{
    struct conn *touched = NULL;
    for (struct op *o = ops; o; o = o->next) {
        int fd = (int)((o->key >> 31) & (MAX_FD - 1));
        struct conn *c = o->status == OP_CALL ? call_open(t, o) : t->conns[fd];
        if (c && (c->serial & 0xffff) == (o->key >> 48)) {
            /* a call's stream is ours from its submission; nghttp2 knows it once its HEADERS went */
            struct stream *s = c->outgoing ? c->call
                                           : nghttp2_session_get_stream_user_data(c->h2, (int32_t)(o->key & 0x7fffffff));
            if (o->status == OP_CLOSE) {
                h2_conn_close(t, c);
                continue;
            }
            if (s && o->status != OP_CALL)
                h2_apply_op(c, s, o);
            if (!c->touched) {
                c->touched = 1;
                c->next_touched = touched;
                touched = c;
            }
        }
    }
    h2_free_ops(ops);
    while (touched) {
        struct conn *c = touched;
        touched = c->next_touched;
        c->touched = 0;
        if (t->conns[c->fd] == c && conn_flush(t, c) < 0)
            h2_conn_close(t, c);
    }
}

/* the queued ops, oldest first (under lock) */
static struct op *dequeue_ops(Transport *t)
{
    pthread_mutex_lock(&t->lock);
    struct op *ops = t->ops;
    t->ops = NULL;
    t->ops_tail = &t->ops;
    pthread_mutex_unlock(&t->lock);
    return ops;
}

/* Python's queued ops, then the GOAWAY a goaway() asked for. */
static void take_ops(Transport *t)
{
    uint64_t n;
    while (read(t->wake_h2, &n, sizeof n) < 0 && errno == EINTR)
        ;
    struct op *ops = dequeue_ops(t);
    pthread_mutex_lock(&t->lock);
    int shutdown = t->shutdown_requested;
    t->shutdown_requested = 0;
    pthread_mutex_unlock(&t->lock);
    apply_ops(t, ops);
    if (shutdown) {
        for (int fd = 0; fd < MAX_FD; fd++) {
            struct conn *c = t->conns[fd];
            if (!c)
                continue;
            nghttp2_submit_goaway(c->h2, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->h2),
                                  NGHTTP2_NO_ERROR, NULL, 0);
            if (conn_flush(t, c) < 0)
                h2_conn_close(t, c);
        }
    }
}

/* The queue goes first, so ops keep the order they were sent in whichever thread applies them.
 * A connection this closes is freed by the HTTP/2 thread (free_dead), after any event it still
 * holds for it: never here. */
int h2_send_direct(Transport *t, struct op *ops)
{
    if (pthread_mutex_trylock(&t->io) != 0)
        return 0;
    struct op *queued = dequeue_ops(t);
    if (queued) {
        struct op *last = queued;
        while (last->next)
            last = last->next;
        last->next = ops;
        ops = queued;
    }
    apply_ops(t, ops);
    pthread_mutex_unlock(&t->io);
    return 1;
}

/* Keepalive for calls of ours, checked about once a second: a connection that heard nothing
 * for keepalive_ms is PINGed; one whose PING went unanswered for keepalive_timeout_ms is
 * closed (its call ends with CLOSED, no status), as grpc's keepalive closes a silent channel. */
static void keep_alive(Transport *t)
{
    int64_t now = h2_now_ms();
    if (now - t->checked_ms < 1000)
        return;
    t->checked_ms = now;
    for (int fd = 0; fd < MAX_FD; fd++) {
        struct conn *c = t->conns[fd];
        if (!c || !c->outgoing)
            continue;
        if (c->pinged_ms && now - c->pinged_ms >= t->keepalive_timeout_ms) {
            h2_conn_close(t, c);
        } else if (!c->pinged_ms && now - c->heard_ms >= t->keepalive_ms) {
            c->pinged_ms = now;
            nghttp2_submit_ping(c->h2, NGHTTP2_FLAG_NONE, NULL);
            if (conn_flush(t, c) < 0)
                h2_conn_close(t, c);
        }
    }
}

void *h2_run(void *arg)
{
    Transport *t = arg;
    struct epoll_event ev[MAX_EVENTS];
    int listening = 1;
    for (;;) {
        int n = epoll_wait(t->ep, ev, MAX_EVENTS, t->keepalive_ms ? 1000 : -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        pthread_mutex_lock(&t->io);
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
                        h2_conn_close(t, c);
                        continue;
                    }
                }
                if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                    conn_readable(t, c);
            }
        }
        if (t->keepalive_ms)
            keep_alive(t);
        free_dead(t);
        pthread_mutex_unlock(&t->io);
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
    pthread_mutex_lock(&t->io);
    for (int fd = 0; fd < MAX_FD; fd++)
        if (t->conns[fd])
            h2_conn_close(t, t->conns[fd]);
    free_dead(t);
    pthread_mutex_unlock(&t->io);
    return NULL;
}

int h2_sessions_init(void)
{
    if (h2_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&session_options) != 0)
        return -1;
    nghttp2_option_set_no_http_messaging(session_options, 1);
    return 0;
}
