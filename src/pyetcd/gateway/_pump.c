/*
 * _pump: relays pairs of connected sockets on one native thread (epoll), without the GIL.
 *
 * The client-port front (gateway/front.py) accepts a connection, sees that it is gRPC, connects
 * to the member's private gRPC listener and gives both descriptors to Pump.add. From then on
 * this thread moves the bytes: what one side sends is written to the other, an end of stream
 * (FIN) is passed on as shutdown(SHUT_WR) so half-closed connections work, and an error on either
 * side closes both. Relaying in Python (asyncio protocols) spent 7-11 us of user CPU per gRPC
 * request on top of the kernel's socket work; this thread spends 1-2 us (bench/front.py).
 *
 * Data is read into one scratch buffer and written to the other side at once. Only what the
 * receiver cannot take right now is kept (per direction, at most one read's worth), and while
 * it is kept the sender is not read: back-pressure, the kernel's socket buffers hold the rest.
 *
 * Descriptors are watched edge-triggered for input only; output is watched only while a
 * direction holds unsent bytes. So a message costs one recv and one send (and an epoll_wait,
 * shared by what arrived meanwhile), and a peer draining its socket (which would wake us with
 * EPOLLOUT) costs nothing. (splice(2) through a pipe measured 8-15 % more CPU for gRPC-sized
 * messages: two calls per message either way, and the pipe's own bookkeeping.)
 *
 * On an https:// URL the pump ends the client's TLS itself (_tlsend.c, with OpenSSL): the gRPC
 * server behind it speaks plaintext, and learns who the client is from the front's handover
 * socket. So the refusal of a client certificate is answered with the alert etcd sends, in
 * TLS 1.3 too, where only the end holding the session keys can send one.
 *
 * Threads: Python calls add() and close(); they queue new pairs under `lock` and wake the
 * pump thread through an eventfd. Everything else (epoll registration, pair state, closing)
 * belongs to the pump thread alone.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "_pump.h"

#define MAX_EVENTS 128
#define WATCH_IN (EPOLLIN | EPOLLRDHUP | EPOLLET)

struct side *other(struct side *s) { return s == &s->pair->s[0] ? &s->pair->s[1] : &s->pair->s[0]; }

static void unlink_pair(struct pair **head, struct pair *pr)
{
    if (pr->prev)
        pr->prev->next = pr->next;
    else
        *head = pr->next;
    if (pr->next)
        pr->next->prev = pr->prev;
    pr->prev = pr->next = NULL;
}

static void push_pair(struct pair **head, struct pair *pr)
{
    pr->prev = NULL;
    pr->next = *head;
    if (*head)
        (*head)->prev = pr;
    *head = pr;
}

/* Close both sockets (which also drops them from epoll); freed once the event batch is done,
 * since a later event of the same batch may still point at it. */
void kill_pair(Pump *p, struct pair *pr)
{
    if (pr->dead)
        return;
    pr->dead = 1;
    if (pr->tls)
        tls_end_free(pr->tls); /* before the sockets close: it may still say goodbye */
    pr->tls = NULL;
    for (int i = 0; i < 2; i++) {
        close(pr->s[i].fd);
        free(pr->s[i].held);
        pr->s[i].held = NULL;
    }
    unlink_pair(&p->live, pr);
    push_pair(&p->dead, pr);
    __atomic_sub_fetch(&p->count, 1, __ATOMIC_RELAXED);
}

static void free_dead(Pump *p)
{
    while (p->dead) {
        struct pair *pr = p->dead;
        p->dead = pr->next;
        free(pr);
    }
}

int watch(Pump *p, struct side *s, int out)
{
    struct epoll_event ev = {.events = WATCH_IN | (out ? EPOLLOUT : 0), .data.ptr = s};
    s->watching_out = out;
    return epoll_ctl(p->ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* Send what `from` holds to the other side. 0: all sent or the rest kept; -1: the pair broke. */
int flush(Pump *p, struct side *from)
{
    struct side *to = other(from);
    while (from->held_off < from->held_len) {
        ssize_t n = send(to->fd, from->held + from->held_off, from->held_len - from->held_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return -1;
            return to->watching_out ? 0 : watch(p, to, 1);
        }
        from->held_off += (size_t)n;
    }
    free(from->held);
    from->held = NULL;
    return to->watching_out ? watch(p, to, 0) : 0;
}

/* Keep what send could not take of buf[0:len]; the other side's EPOLLOUT resumes it. */
int hold(Pump *p, struct side *from, const char *buf, size_t len)
{
    from->held = malloc(len);
    if (!from->held)
        return -1;
    memcpy(from->held, buf, len);
    from->held_off = 0;
    from->held_len = len;
    return other(from)->watching_out ? 0 : watch(p, other(from), 1);
}

/* Send buf[0:len] to the other side; what it cannot take now is held. 0, or -1: the pair broke. */
int pass(Pump *p, struct side *from, const char *buf, size_t len)
{
    size_t sent = 0;
    while (sent < len) {
        ssize_t w = send(other(from)->fd, buf + sent, len - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (w < 0)
            return hold(p, from, buf + sent, len - sent);
        sent += (size_t)w;
    }
    return 0;
}

/*
 * Move what `s` sends to the other side until s would block, ends, or the other side cannot
 * take more. Edge-triggered input: a short recv means s's queue was empty, unless `drain` (its
 * end was seen, or we stopped reading it for a while), when we read on until EAGAIN or the end.
 * 0: fine; -1: the pair broke.
 */
static int forward(Pump *p, struct side *s, int drain)
{
    struct side *to = other(s);
    while (!s->eof && !s->held) {
        ssize_t n = recv(s->fd, p->buf, CHUNK, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        if (n == 0) {
            s->eof = 1;
            break;
        }
        if (pass(p, s, p->buf, (size_t)n) < 0)
            return -1;
        if (s->held)
            return 0;
        if (n < CHUNK && !drain)
            return 0;
    }
    if (s->eof && !s->held && !to->shut) {
        /* pass the end of stream on; the other direction stays open (half-close) */
        if (shutdown(to->fd, SHUT_WR) < 0 && errno != ENOTCONN)
            return -1;
        to->shut = 1;
    }
    return 0;
}

/* Nothing more can go either way: both ends were passed on, or one side hung up (it can take
 * no more) once all it had sent was passed on (a gRPC server's last frames before it closed). */
static int pair_done(struct pair *pr)
{
    for (int i = 0; i < 2; i++)
        if (pr->s[i].hup && pr->s[i].eof && !pr->s[i].held)
            return 1;
    return pr->s[0].eof && pr->s[1].eof && pr->s[0].shut && pr->s[1].shut;
}

static void on_event(Pump *p, struct side *s, uint32_t events)
{
    struct pair *pr = s->pair;
    int broke = 0;
    if (events & EPOLLERR)
        broke = 1;
    if (events & EPOLLHUP)
        s->hup = 1;
    if (pr->tls) {
        if (broke || tls_on_event(p, s, events) < 0 || tls_pair_done(pr))
            kill_pair(p, pr);
        return;
    }
    if (!broke && (events & EPOLLOUT) && other(s)->held) {
        broke = flush(p, other(s)) < 0;
        /* the other side was not read while its bytes were held: read it again */
        if (!broke && !other(s)->held)
            broke = forward(p, other(s), 1) < 0;
    }
    if (!broke && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
        broke = forward(p, s, (events & (EPOLLRDHUP | EPOLLHUP)) != 0) < 0;
    if (broke || pair_done(pr))
        kill_pair(p, pr);
}

/* Register the pairs Python queued. Returns 1 when close() was called: the thread must end. */
static int take_queued(Pump *p)
{
    uint64_t n;
    if (read(p->wake, &n, sizeof n) < 0) {
        /* EAGAIN: no wake-up pending (the last call, after the loop) */
    }
    pthread_mutex_lock(&p->lock);
    struct pair *q = p->queued;
    p->queued = NULL;
    int closing = p->closing;
    pthread_mutex_unlock(&p->lock);
    while (q) {
        struct pair *pr = q;
        q = q->next;
        push_pair(&p->live, pr);
        for (int i = 0; i < 2 && !pr->dead; i++) {
            struct epoll_event ev = {.events = WATCH_IN, .data.ptr = &pr->s[i]};
            if (epoll_ctl(p->ep, EPOLL_CTL_ADD, pr->s[i].fd, &ev) < 0)
                kill_pair(p, pr);
        }
        /* bytes that arrived before registration raise an event now (ADD polls once) */
        if (!pr->dead && pr->tls && tls_start(p, pr) < 0)
            kill_pair(p, pr);
    }
    return closing;
}

static void *run(void *arg)
{
    Pump *p = arg;
    struct epoll_event ev[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(p->ep, ev, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break; /* cannot happen with a valid epoll fd; close everything rather than spin */
        int stop = 0;
        for (int i = 0; i < n; i++) {
            struct side *s = ev[i].data.ptr;
            if (!s)
                stop |= take_queued(p);
            else if (!s->pair)
                tls_notes_ready(p);
            else if (!s->pair->dead)
                on_event(p, s, ev[i].events);
        }
        free_dead(p);
        if (stop)
            break;
    }
    take_queued(p); /* none can be queued after `closing`; but any queued before it are ours */
    while (p->live)
        kill_pair(p, p->live);
    free_dead(p);
    return NULL;
}

/* ---- the Python side ---- */

static PyObject *Pump_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"cert", "key", "ca", "verify_client", "identity_fd", "connect", "verify_server", NULL};
    const char *cert = NULL, *key = NULL, *ca = "";
    int verify_client = 0, identity_fd = -1, connect = 0, verify_server = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|$zzspipp", kwlist, &cert, &key, &ca, &verify_client,
                                     &identity_fd, &connect, &verify_server))
        return NULL;
    if ((cert == NULL) != (key == NULL)) {
        PyErr_SetString(PyExc_ValueError, "cert and key go together");
        return NULL;
    }
    struct tls_conf *tls = NULL;
    if (cert || connect) {
        const char *error = NULL;
        tls = tls_conf_new(cert, key, ca, connect ? verify_server : verify_client, connect, identity_fd, &error);
        if (!tls) {
            PyErr_Format(PyExc_ValueError, "cannot set up TLS: %s", error ? error : "out of memory");
            return NULL;
        }
    }
    Pump *p = (Pump *)type->tp_alloc(type, 0);
    if (!p) {
        if (tls)
            tls_conf_free(tls);
        return NULL;
    }
    p->tls = tls;
    p->ep = p->wake = -1;
    pthread_mutex_init(&p->lock, NULL);
    p->buf = malloc(CHUNK);
    p->sink = malloc(CHUNK);
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (!p->buf || !p->sink || p->ep < 0 || p->wake < 0 || epoll_ctl(p->ep, EPOLL_CTL_ADD, p->wake, &ev) < 0
        || (p->tls && tls_conf_watch(p->tls, p->ep) < 0)) {
        if (p->buf && p->sink)
            PyErr_SetFromErrno(PyExc_OSError);
        else
            PyErr_NoMemory();
        Py_DECREF(p);
        return NULL;
    }
    /* signals belong to Python's main thread: the pump thread blocks them all */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&p->thread, NULL, run, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        Py_DECREF(p);
        return NULL;
    }
    p->started = 1;
    return (PyObject *)p;
}

static void wake(Pump *p)
{
    uint64_t one = 1;
    while (write(p->wake, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

static PyObject *Pump_add(Pump *p, PyObject *args)
{
    int fds[2];
    const char *host = NULL;
    if (!PyArg_ParseTuple(args, "ii|z", &fds[0], &fds[1], &host))
        return NULL;
    struct pair *pr = calloc(1, sizeof *pr);
    int closing = 1;
    if (pr && p->tls && !(pr->tls = tls_end_new(p->tls, fds[0], fds[1], host))) {
        free(pr);
        pr = NULL;
    }
    if (pr) {
        for (int i = 0; i < 2; i++) {
            pr->s[i].pair = pr;
            pr->s[i].fd = fds[i];
            fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        }
        pthread_mutex_lock(&p->lock);
        closing = p->closing;
        if (!closing) {
            push_pair(&p->queued, pr);
            __atomic_add_fetch(&p->count, 1, __ATOMIC_RELAXED);
        }
        pthread_mutex_unlock(&p->lock);
    }
    if (!pr || closing) { /* the descriptors were given to us: close them either way */
        if (pr && pr->tls)
            tls_end_free(pr->tls);
        close(fds[0]);
        close(fds[1]);
        free(pr);
        if (pr)
            PyErr_SetString(PyExc_ValueError, "the pump is closed");
        else
            PyErr_NoMemory();
        return NULL;
    }
    wake(p);
    Py_RETURN_NONE;
}

static void stop(Pump *p)
{
    pthread_mutex_lock(&p->lock);
    p->closing = 1;
    pthread_mutex_unlock(&p->lock);
    if (p->started) {
        wake(p);
        Py_BEGIN_ALLOW_THREADS
        pthread_join(p->thread, NULL);
        Py_END_ALLOW_THREADS
        p->started = 0;
    }
    if (p->ep >= 0)
        close(p->ep);
    if (p->wake >= 0)
        close(p->wake);
    p->ep = p->wake = -1;
}

static PyObject *Pump_close(Pump *p, PyObject *Py_UNUSED(ignored))
{
    stop(p);
    Py_RETURN_NONE;
}

static Py_ssize_t Pump_len(Pump *p) { return __atomic_load_n(&p->count, __ATOMIC_RELAXED); }

static void Pump_dealloc(Pump *p)
{
    stop(p);
    free(p->buf);
    free(p->sink);
    if (p->tls)
        tls_conf_free(p->tls);
    pthread_mutex_destroy(&p->lock);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyMethodDef Pump_methods[] = {
    {"add", (PyCFunction)Pump_add, METH_VARARGS,
     "add(client, server): relay between connected sockets (descriptors), which the pump now owns; a pump "
     "made with a certificate ends the client's TLS and relays plaintext to the server."},
    {"close", (PyCFunction)Pump_close, METH_NOARGS,
     "Close every relayed connection and stop the pump's thread."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Pump_seq = {.sq_length = (lenfunc)Pump_len};

static PyTypeObject PumpType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyetcd.gateway._pump.Pump",
    .tp_doc = "Pump(*, cert=None, key=None, ca='', verify_client=False, identity_fd=-1): relays pairs of sockets on a "
               "native thread, ending the clients' TLS when given a certificate; len() is the open pairs.",
    .tp_basicsize = sizeof(Pump),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Pump_new,
    .tp_dealloc = (destructor)Pump_dealloc,
    .tp_methods = Pump_methods,
    .tp_as_sequence = &Pump_seq,
};

static struct PyModuleDef pump_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_pump",
    .m_doc = "A native relay of socket pairs for the client-port front (see _pump.c).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__pump(void)
{
    if (PyType_Ready(&PumpType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&pump_module);
    if (!m)
        return NULL;
    Py_INCREF(&PumpType);
    if (PyModule_AddObject(m, "Pump", (PyObject *)&PumpType) < 0) {
        Py_DECREF(&PumpType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
