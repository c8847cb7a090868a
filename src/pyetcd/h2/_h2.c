/*
 * _h2: the member's gRPC transport, natively (client port, peer port, streams to the peers):
 * HTTP/2 (nghttp2) and gRPC message framing on one thread of its own (epoll), without the GIL.
 * Python sees calls, not frames.
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
 * Calls of our own (transport/links.py: the raft message streams to the peers): call(fd,
 * authority, path) opens a client session on a connected socket and a call on it; send() writes
 * its messages under the key call() returned; READY key says the server's SETTINGS arrived,
 * CLOSED key status message how the call ended (status -1: the connection went first). A
 * transport made with listen_fd -1 serves nothing and only makes calls.
 *
 * Files: this one is the Python type (take, send, call, goaway, close); _h2conn.c the thread and
 * its connections; _h2stream.c one stream as one gRPC call; _h2.h what they share.
 *
 * Threads: the HTTP/2 thread owns connections and sessions while it holds `io` (always, but
 * in epoll_wait). Python's take() and send() move queued events and ops under `lock`; eventfds
 * wake each side when its queue turns non-empty. send(direct=True) instead takes `io` when it
 * is free (never waiting for it: the caller holds the GIL) and applies the queue and its own
 * ops in the caller's thread, framing and writing them at once.
 */
#include "_h2.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

void h2_free_ops(struct op *o)
{
    while (o) {
        struct op *next = o->next;
        if (o->status == OP_CALL && o->connect_fd >= 0)
            close(o->connect_fd); /* never taken by the thread */
        free(o->data);
        free(o->message);
        free(o->authority);
        free(o->path);
        free(o);
        o = next;
    }
}

/* ---- the Python side ---- */

static PyObject *Transport_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"listen_fd", "max_recv", "keepalive_ms", "keepalive_timeout_ms", NULL};
    int listen_fd, keepalive_ms = 0, keepalive_timeout_ms = 0;
    Py_ssize_t max_recv;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "in|ii", kwlist, &listen_fd, &max_recv, &keepalive_ms,
                                     &keepalive_timeout_ms))
        return NULL;
    Transport *t = (Transport *)type->tp_alloc(type, 0);
    if (!t)
        return NULL;
    t->listen_fd = listen_fd;
    t->max_recv = (size_t)max_recv;
    t->keepalive_ms = keepalive_ms > 0 ? keepalive_ms : 0;
    t->keepalive_timeout_ms = keepalive_timeout_ms > 0 ? keepalive_timeout_ms : 20000;
    t->events_tail = &t->events;
    t->ops_tail = &t->ops;
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->io, NULL);
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->wake_py = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    t->wake_h2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event e1 = {.events = EPOLLIN, .data.ptr = &t->listen_fd};
    struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = &t->wake_h2};
    if (t->ep < 0 || t->wake_py < 0 || t->wake_h2 < 0 ||
        (listen_fd >= 0 && epoll_ctl(t->ep, EPOLL_CTL_ADD, listen_fd, &e1) < 0) ||
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
        if (pthread_create(&t->thread, NULL, h2_run, t) != 0)
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
    (void)!read(t->wake_py, &n, sizeof n); /* reset the count; EAGAIN: the thread did not signal */
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
            case EV_CLOSED:
                item = Py_BuildValue("(iKis#)", e->kind, (unsigned long long)e->key, e->flag, e->data ? e->data : "",
                                     (Py_ssize_t)e->len);
                if (!item) { /* a grpc-message that is not UTF-8: the status alone */
                    PyErr_Clear();
                    item = Py_BuildValue("(iKis)", e->kind, (unsigned long long)e->key, e->flag, "");
                }
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

/* queue ops (a list the caller built), waking the thread if the queue was empty */
static void queue_ops(Transport *t, struct op *head, struct op **tail)
{
    pthread_mutex_lock(&t->lock);
    int was_empty = t->ops == NULL;
    *t->ops_tail = head;
    t->ops_tail = tail;
    pthread_mutex_unlock(&t->lock);
    if (was_empty)
        h2_signal(t->wake_h2);
}

/* send([(key, data, status, message, want_drain), ...], direct=False): data is framed gRPC
 * messages (or b""); status -1 leaves the call open, else it ends it with that grpc-status and
 * grpc-message. With direct, the caller's thread frames and writes them itself when the HTTP/2
 * thread is idle (h2_send_direct), instead of waking that thread: one thread hop less. */
static PyObject *Transport_send(Transport *t, PyObject *args)
{
    PyObject *ops;
    int direct = 0;
    if (!PyArg_ParseTuple(args, "O|p", &ops, &direct))
        return NULL;
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
    if (head && !(direct && h2_send_direct(t, head)))
        queue_ops(t, head, tail);
    Py_RETURN_NONE;
nomem:
    PyErr_NoMemory();
fail:
    h2_free_ops(head);
    return NULL;
}

/* call(fd, authority, path) -> key: a gRPC call of ours on the connected socket fd (plaintext
 * HTTP/2; the pump does TLS), which the transport owns from now on. Messages go out with send()
 * under that key; an op with a status >= 0 ends our side; CLOSED tells how the call ended. */
static PyObject *Transport_call(Transport *t, PyObject *args)
{
    int fd;
    const char *authority, *path;
    if (!PyArg_ParseTuple(args, "iss", &fd, &authority, &path))
        return NULL;
    struct op *o = calloc(1, sizeof *o);
    if (o) {
        o->status = OP_CALL;
        o->connect_fd = fd;
        o->authority = strdup(authority);
        o->path = strdup(path);
    }
    if (!o || !o->authority || !o->path || fd < 0 || fd >= MAX_FD) {
        if (o)
            h2_free_ops(o); /* closes fd */
        else
            close(fd);
        return fd < 0 || fd >= MAX_FD ? PyErr_Format(PyExc_ValueError, "descriptor %d out of range", fd)
                                      : PyErr_NoMemory();
    }
    uint64_t serial = __atomic_add_fetch(&t->serials, 1, __ATOMIC_RELAXED);
    uint64_t key = h2_key(serial, fd, 1); /* a client's first stream is 1 */
    o->key = key;
    queue_ops(t, o, &o->next); /* the thread may free o from here on */
    return PyLong_FromUnsignedLongLong(key);
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
    h2_signal(t->wake_h2);
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
        h2_signal(t->wake_h2);
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
    h2_free_ops(t->ops);
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
    {"send", (PyCFunction)Transport_send, METH_VARARGS, "queue replies (or write them now: direct)"},
    {"call", (PyCFunction)Transport_call, METH_VARARGS, "open a call of ours on a connected socket"},
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
    .m_doc = "gRPC over HTTP/2 on a native thread, for the client and peer ports (see _h2.c).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__h2(void)
{
    if (PyType_Ready(&TransportType) < 0)
        return NULL;
    if (h2_sessions_init() != 0)
        return PyErr_NoMemory();
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
    PyModule_AddIntConstant(m, "READY", EV_READY);
    PyModule_AddIntConstant(m, "CLOSED", EV_CLOSED);
    PyModule_AddIntConstant(m, "CLOSE", OP_CLOSE);
    return m;
}