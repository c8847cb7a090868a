/* _h2stream.c: one HTTP/2 stream as one gRPC call. The request side turns HEADERS and DATA into
 * OPEN, MSG and HALF events (gRPC messages reassembled from the 5-byte framing); the response side
 * sends Python's replies: HEADERS, DATA as HTTP/2 flow control lets it, and the status as
 * trailers (or a trailers-only response when nothing was sent). Runs on the transport's thread.
 *
 * A call we make (Transport.call, `client` streams) turns the roles round: Python's messages are
 * the request's DATA, ending the call ends the request, and the response's messages come back as
 * MSG, its grpc-status and grpc-message as CLOSED when the response ends (or the stream closes
 * first: no status then). The request goes as :scheme http: TLS, if any, is the pump's. */
#include "_h2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static uint64_t key_of(struct conn *c, int32_t id) { return h2_key(c->serial, c->fd, id); }

void h2_post(Transport *t, struct event *e)
{
    pthread_mutex_lock(&t->lock);
    int was_empty = t->events == NULL;
    *t->events_tail = e;
    t->events_tail = &e->next;
    pthread_mutex_unlock(&t->lock);
    if (was_empty)
        h2_signal(t->wake_py);
}

struct event *h2_event_new(int kind, struct stream *s)
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

/* a header of our call's response (or of its trailers): the status is all we keep */
static int call_header(struct stream *s, const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen)
{
    if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        char code[12] = {0};
        memcpy(code, value, valuelen < sizeof code - 1 ? valuelen : sizeof code - 1);
        s->status = atoi(code);
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        free(s->message);
        s->message = strndup((const char *)value, valuelen);
    }
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
    if (s && s->client)
        return call_header(s, name, namelen, value, valuelen);
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
    struct event *e = h2_event_new(EV_OPEN, s);
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
    h2_post(t, e);
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
            struct event *e = h2_event_new(EV_BIG, s);
            if (e) {
                e->size = n;
                h2_post(t, e);
            }
            s->discard = 1;
            s->in.off = s->in.len = 0;
            return;
        }
        if (have < 5 + n)
            return;
        struct event *e = h2_event_new(EV_MSG, s);
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
        h2_post(t, e);
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
    struct conn *c = ud;
    Transport *t = c->t;
    if (f->hd.type == NGHTTP2_SETTINGS && c->call && !c->ready && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        /* the server answered: TLS (through the pump) and HTTP/2 are up */
        struct event *e = h2_event_new(EV_READY, c->call);
        c->ready = 1;
        if (e)
            h2_post(t, e);
        return 0;
    }
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    struct stream *s = nghttp2_session_get_stream_user_data(h2, f->hd.stream_id);
    if (s && s->client && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        /* the server answered with its status: the call is over, whatever we were still sending
         * (a refusal comes while our request goes on), so the stream is reset to close it */
        h2_call_closed(t, s);
        nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_NO_ERROR);
        return 0;
    }
    if (!s || s->client)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && !s->opened)
        open_stream(t, s);
    if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        struct event *e = h2_event_new(EV_HALF, s);
        if (e)
            h2_post(t, e);
    }
    return 0;
}

void h2_stream_free(struct stream *s)
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
    if (s->client) {
        h2_call_closed(t, s);
        s->conn->call = NULL;
    } else if (s->opened && !s->ended) {
        struct event *e = h2_event_new(EV_GONE, s);
        if (e)
            h2_post(t, e);
    }
    nghttp2_session_set_stream_user_data(h2, id, NULL);
    stream_unlink(s);
    h2_stream_free(s);
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
            struct event *e = h2_event_new(EV_DRAINED, s);
            if (e)
                h2_post(t, e);
        }
        if (s->ending && s->client) { /* our request ends: the server answers with the status */
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            s->ended = 1;
            return (ssize_t)n;
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
void h2_apply_op(struct conn *c, struct stream *s, struct op *o)
{
    if (s->ended || s->ending)
        return;
    if (o->len && buf_put(&s->out, o->data, o->len) < 0) {
        nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    if (o->want_drain && buf_pending(&s->out) == 0) {
        struct event *e = h2_event_new(EV_DRAINED, s);
        if (e)
            h2_post(c->t, e);
    } else if (o->want_drain) {
        s->want_drain = 1;
    }
    if (o->status >= 0 && !s->client) {
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

struct stream *h2_call_new(struct conn *c, const char *authority, const char *path)
{
    struct stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conn = c;
    s->client = s->opened = s->headers_sent = 1;
    s->status = -1;
    const nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":authority", (uint8_t *)authority, 10, strlen(authority), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"user-agent", (uint8_t *)"pyetcd-peer", 10, 11, NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider dp = {.read_callback = read_out};
    s->id = nghttp2_submit_request(c->h2, NULL, nv, sizeof nv / sizeof nv[0], &dp, s);
    if (s->id < 0) {
        free(s);
        return NULL;
    }
    s->next = c->streams;
    if (c->streams)
        c->streams->prev = s;
    c->streams = s;
    c->call = s;
    return s;
}

void h2_call_closed(Transport *t, struct stream *s)
{
    if (s->reported)
        return;
    s->reported = 1;
    struct event *e = h2_event_new(EV_CLOSED, s);
    if (!e)
        return;
    e->flag = s->status;
    e->data = s->message;
    e->len = s->message ? strlen(s->message) : 0;
    s->message = NULL;
    h2_post(t, e);
}

int h2_callbacks_new(nghttp2_session_callbacks **callbacks)
{
    if (nghttp2_session_callbacks_new(callbacks) != 0)
        return -1;
    nghttp2_session_callbacks_set_on_begin_headers_callback(*callbacks, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(*callbacks, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(*callbacks, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(*callbacks, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(*callbacks, on_stream_close);
    return 0;
}
