/*
 * _tlsend: the pump ends its clients' TLS (OpenSSL), and relays plaintext to the gRPC server.
 *
 * Why the front and not grpc: grpc's TLS handshaker drops the alert it wrote when it refuses a
 * client certificate, and in TLS 1.3 that alert is encrypted with keys only the end of the
 * session holds. etcd (Go's crypto/tls) answers every refused client certificate with a fatal
 * `bad_certificate` alert, and clients print it. Here:
 *   - a certificate that does not verify is refused with bad_certificate (OpenSSL would name the
 *     reason, e.g. unknown_ca: the verify callback reports every failure as a rejection);
 *   - a client that shows no certificate gets bad_certificate too, where OpenSSL would send
 *     handshake_failure or certificate_required (_tlsalert.c rewrites that alert).
 *
 * Who the client is: after a handshake that showed a certificate, the pump sends the member
 * ("I", the private connection's socket name, the certificate in DER) on the front's handover
 * socket before any of the client's bytes reach the gRPC server, which sees the connection as
 * "unix-abstract:<name>" (gateway/identities.py). When the pair closes it sends ("G", name).
 * A handshake it refuses is reported too: ("R", name, "<client address>: <OpenSSL's reason>"),
 * for the member to log (etcd logs every rejected connection).
 * Messages go in order; one that finds no room waits (a busy member, a burst of connections),
 * and so do the bytes of its client, until the member reads and the socket has room again.
 *
 * Records for the client are written to a memory BIO and sent from there: what the client
 * cannot take yet waits in it, and the server is not read meanwhile (back-pressure).
 *
 * With `connect` the roles of TLS turn round, for the member's own connections to its peers
 * (transport/links.py): the TLS side is a peer's server, which this end calls as a TLS client
 * (our peer certificate shown, the server's verified against the trusted CA and the URL's host),
 * and the plaintext side is the member's HTTP/2 client. The handshake starts as soon as the
 * pair is registered (tls_start); the byte moving is the same.
 */
#include <arpa/inet.h>
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "_pump.h"
#include "_tlsalert.h"

#define IN_EVENTS (EPOLLIN | EPOLLRDHUP | EPOLLHUP)

/* A message for the member that waits for room on the identity socket (sent in order). */
struct note {
    struct note *prev, *next;
    struct pair *waiting;      /* the pair whose bytes wait until this 'I' is sent; NULL for a 'G' */
    size_t len;
    unsigned char msg[];
};

struct tls_conf {
    SSL_CTX *ctx;
    int connect;               /* we are the TLS client (see the top of this file) */
    int verify;                /* server: clients must show a certificate; connect: check the server's */
    int identity_fd;
    struct note *first, *last; /* pump thread only */
    struct side writable;      /* the identity socket's epoll tag (no pair): room again */
};

struct tls_end {
    struct tls_conf *conf;
    SSL *ssl;
    BIO *out;                  /* records for the client, not yet sent */
    int open;                  /* handshake done: plaintext flows */
    int announced;             /* the member is (or will be, see queued) told who the client is */
    struct note *queued;       /* that message, while it waits for room: no bytes flow meanwhile */
    int close_queued;          /* close_notify written after the server's end */
    int server_paused;         /* the server was left unread (or its end not passed on) while records
                                  waited for the client */
    unsigned char secret[EVP_MAX_MD_SIZE]; /* server application traffic secret (TLS 1.3) */
    size_t secret_len;
    char name[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* the private connection's abstract name */
    unsigned char name_len;
};

/* ---- configuration ---- */

static int verify_as_rejected(int ok, X509_STORE_CTX *ctx)
{
    if (!ok) /* OpenSSL maps this error to the bad_certificate alert */
        X509_STORE_CTX_set_error(ctx, X509_V_ERR_CERT_REJECTED);
    return ok;
}

static int select_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                     unsigned int inlen, void *arg)
{
    static const unsigned char h2[] = {2, 'h', '2'};
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, h2, sizeof h2, in, inlen) == OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_OK;
    return SSL_TLSEXT_ERR_NOACK;
}

static int unhex(const char *s, unsigned char *out, size_t cap)
{
    size_t n = 0;
    for (; s[0] && s[1] && s[0] != ' ' && n < cap; s += 2) {
        char pair[3] = {s[0], s[1], 0};
        char *end;
        out[n++] = (unsigned char)strtoul(pair, &end, 16);
        if (*end)
            return -1;
    }
    return (int)n;
}

/* keeps the server's application traffic secret: only a TLS 1.3 refusal uses it */
static void keep_secret(const SSL *ssl, const char *line)
{
    static const char label[] = "SERVER_TRAFFIC_SECRET_0 ";
    struct tls_end *t = SSL_get_app_data(ssl);
    if (!t || strncmp(line, label, sizeof label - 1) != 0)
        return;
    const char *secret = strchr(line + sizeof label - 1, ' '); /* after the client random */
    int n = secret ? unhex(secret + 1, t->secret, sizeof t->secret) : -1;
    t->secret_len = n > 0 ? (size_t)n : 0;
}

static const char *ssl_error(void)
{
    static char text[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, text, sizeof text);
    ERR_clear_error();
    return e ? text : "unknown error";
}

/* The TLS client's side of the configuration (connect): ALPN h2, the server checked unless told not to. */
static int client_conf(SSL_CTX *ctx, const char *ca, int verify)
{
    static const unsigned char h2[] = {2, 'h', '2'};
    if (SSL_CTX_set_alpn_protos(ctx, h2, sizeof h2) != 0)
        return -1;
    if (!verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    if (!*ca && SSL_CTX_set_default_verify_paths(ctx) != 1)
        return -1;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    return 0;
}

struct tls_conf *tls_conf_new(const char *cert, const char *key, const char *ca, int verify, int connect,
                              int identity_fd, const char **error)
{
    struct tls_conf *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->identity_fd = identity_fd;
    c->connect = connect;
    c->verify = verify;
    c->ctx = SSL_CTX_new(connect ? TLS_client_method() : TLS_server_method());
    SSL_CTX *ctx = c->ctx;
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)
        || !SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20")
        || (cert && SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        || (key && SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        || (cert && SSL_CTX_check_private_key(ctx) != 1)
        || (*ca && SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
        || (connect && client_conf(ctx, ca, verify) < 0)) {
        *error = ssl_error();
        tls_conf_free(c);
        return NULL;
    }
    if (verify && !connect) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_as_rejected);
        SSL_CTX_set_keylog_callback(ctx, keep_secret);
    }
    /* no tickets: a TLS 1.3 refusal is then the first record under the traffic key */
    SSL_CTX_set_num_tickets(ctx, 0);
    /* one read(2) takes every record that has arrived, not a header and a body per record */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    if (!connect)
        SSL_CTX_set_alpn_select_cb(ctx, select_h2, NULL);
    ERR_clear_error();
    return c;
}

void tls_conf_free(struct tls_conf *c)
{
    while (c->first) {
        struct note *n = c->first;
        c->first = n->next;
        free(n);
    }
    SSL_CTX_free(c->ctx);
    free(c);
}

/* ---- one client's session ---- */

/* connect: name the server we expect (SNI for a DNS name) and check its certificate against it */
static int expect_server(SSL *ssl, const char *host)
{
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -1;
    return SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

struct tls_end *tls_end_new(struct tls_conf *c, int client_fd, int server_fd, const char *host)
{
    struct tls_end *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->conf = c;
    struct sockaddr_un addr;
    socklen_t len = sizeof addr;
    if (getsockname(server_fd, (struct sockaddr *)&addr, &len) == 0 && len > sizeof addr.sun_family + 1
        && addr.sun_path[0] == '\0') {
        t->name_len = (unsigned char)(len - sizeof addr.sun_family - 1);
        memcpy(t->name, addr.sun_path + 1, t->name_len);
    }
    t->ssl = SSL_new(c->ctx);
    BIO *in = BIO_new_socket(client_fd, BIO_NOCLOSE);
    t->out = BIO_new(BIO_s_mem());
    if (!t->ssl || !in || !t->out) {
        BIO_free(in);
        BIO_free(t->out);
        SSL_free(t->ssl);
        free(t);
        return NULL;
    }
    BIO_up_ref(t->out);              /* SSL_set_bio takes one reference, we keep one */
    SSL_set_bio(t->ssl, in, t->out);
    if (c->connect && c->verify && host && expect_server(t->ssl, host) < 0) {
        SSL_free(t->ssl);
        BIO_free(t->out);
        free(t);
        return NULL;
    }
    if (c->connect)
        SSL_set_connect_state(t->ssl);
    else
        SSL_set_accept_state(t->ssl);
    SSL_set_app_data(t->ssl, t);
    return t;
}

static struct note *note_new(struct tls_end *t, char kind, const unsigned char *der, size_t der_len)
{
    struct note *n = malloc(sizeof *n + 2 + t->name_len + der_len);
    if (!n)
        return NULL;
    n->prev = n->next = NULL;
    n->waiting = NULL;
    n->len = 2 + t->name_len + der_len;
    n->msg[0] = (unsigned char)kind;
    n->msg[1] = t->name_len;
    memcpy(n->msg + 2, t->name, t->name_len);
    if (der_len)
        memcpy(n->msg + 2 + t->name_len, der, der_len);
    return n;
}

static void unqueue(struct tls_conf *c, struct note *n)
{
    *(n->prev ? &n->prev->next : &c->first) = n->next;
    *(n->next ? &n->next->prev : &c->last) = n->prev;
}

/* 1: sent; 0: no room now (the caller queues it); -1: the member is gone */
static int send_note(struct tls_conf *c, struct note *n)
{
    for (;;) {
        ssize_t r = send(c->identity_fd, n->msg, n->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (r == (ssize_t)n->len)
            return 1;
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
}

/* Send n after those already waiting. 1: sent; 0: queued; -1: the member is gone (n freed). */
static int post(struct tls_conf *c, struct note *n)
{
    int r = c->first ? 0 : send_note(c, n);
    if (r != 0) {
        free(n);
        return r;
    }
    n->prev = c->last;
    *(c->last ? &c->last->next : &c->first) = n;
    c->last = n;
    return 0;
}

void tls_end_free(struct tls_end *t)
{
    if (t->queued) { /* the member never heard of it: nothing to take back */
        unqueue(t->conf, t->queued);
        free(t->queued);
    } else if (t->announced) {
        struct note *n = note_new(t, 'G', NULL, 0);
        if (n)
            post(t->conf, n);
    }
    SSL_free(t->ssl);
    BIO_free(t->out);
    free(t);
}

/* The member learns the client's certificate before the server sees a byte: the message goes
 * now, or the pair waits (t->queued) until there is room for it. 0, or -1: refuse the client. */
static int announce(struct pair *pr)
{
    struct tls_end *t = pr->tls;
    X509 *cert = SSL_get1_peer_certificate(t->ssl);
    if (!cert || t->conf->identity_fd < 0 || !t->name_len) {
        X509_free(cert);
        return 0;
    }
    unsigned char *der = NULL;
    int len = i2d_X509(cert, &der);
    X509_free(cert);
    struct note *n = len > 0 ? note_new(t, 'I', der, (size_t)len) : NULL;
    OPENSSL_free(der);
    if (!n)
        return -1;
    n->waiting = pr;
    int r = post(t->conf, n);
    if (r < 0)
        return -1;
    t->announced = 1;
    t->queued = r == 0 ? n : NULL;
    return 0;
}

/* ---- moving bytes ---- */

static long pending(struct tls_end *t) { return (long)BIO_ctrl_pending(t->out); }

/* Send the client what it will take of the records waiting for it. 0, or -1: the pair broke. */
static int send_records(Pump *p, struct pair *pr)
{
    struct tls_end *t = pr->tls;
    struct side *c = &pr->s[0];
    char *data;
    long len = BIO_get_mem_data(t->out, &data);
    long sent = 0;
    while (sent < len) {
        ssize_t n = send(c->fd, data + sent, (size_t)(len - sent), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        if (n < 0)
            break;
        sent += n;
    }
    for (long done = 0; done < sent;) /* drop what was sent (the memory BIO reads from its front) */
        done += BIO_read(t->out, p->sink, (int)(sent - done < CHUNK ? sent - done : CHUNK));
    int want_out = pending(t) > 0;
    return want_out == c->watching_out ? 0 : watch(p, c, want_out);
}

/* The server ended its stream: once its last records are out, close_notify and FIN. */
static int pass_server_end(Pump *p, struct pair *pr)
{
    struct tls_end *t = pr->tls;
    struct side *c = &pr->s[0];
    if (!pr->s[1].eof || c->shut)
        return 0;
    if (!t->close_queued) {
        t->close_queued = 1;
        SSL_shutdown(t->ssl);
        ERR_clear_error();
        if (send_records(p, pr) < 0)
            return -1;
    }
    if (pending(t)) { /* the end follows the last records (tls_on_event resumes here) */
        t->server_paused = 1;
        return 0;
    }
    if (shutdown(c->fd, SHUT_WR) < 0 && errno != ENOTCONN)
        return -1;
    c->shut = 1;
    return 0;
}

/* The most plaintext one record can hold, with room to spare. */
#define RECORD_MAX (16 * 1024 + 256)

/*
 * Client to server: decrypt what the client sent and pass it on, until OpenSSL wants more.
 * The records that arrived together go to the server in one send, not one send each: each send
 * wakes the gRPC server's poller, and a client's unary request is often more than one record
 * (1.6 on average from etcd's benchmark tool).
 */
static int from_client(Pump *p, struct pair *pr)
{
    struct tls_end *t = pr->tls;
    struct side *c = &pr->s[0], *s = &pr->s[1];
    int broke = 0;
    size_t have = 0;
    while (!c->eof && !c->held) {
        int n = SSL_read(t->ssl, p->buf + have, (int)(CHUNK - have));
        if (n > 0) {
            have += (size_t)n;
            if (CHUNK - have < RECORD_MAX) {
                if (pass(p, c, p->buf, have) < 0)
                    return -1;
                have = 0;
            }
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_ZERO_RETURN)
            c->eof = 1;
        else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            broke = 1; /* a bad record: OpenSSL wrote its alert, sent below */
        ERR_clear_error();
        break;
    }
    if (have && pass(p, c, p->buf, have) < 0)
        return -1;
    if (send_records(p, pr) < 0 || broke)
        return -1;
    if (c->eof && !c->held && !s->shut) {
        if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN)
            return -1;
        s->shut = 1;
    }
    return 0;
}

/* Server to client: seal what the server sends, while the client keeps up. */
static int from_server(Pump *p, struct pair *pr, int drain)
{
    struct tls_end *t = pr->tls;
    struct side *s = &pr->s[1];
    t->server_paused = 0;
    while (!s->eof) {
        if (pending(t)) { /* edge-triggered: resumed by whatever sends the last of them */
            t->server_paused = 1;
            return 0;
        }
        ssize_t n = recv(s->fd, p->buf, CHUNK, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        if (n == 0) {
            s->eof = 1;
            break;
        }
        if (SSL_write(t->ssl, p->buf, (int)n) != n || send_records(p, pr) < 0) {
            ERR_clear_error();
            return -1;
        }
        if (n < CHUNK && !drain)
            return 0;
    }
    return pass_server_end(p, pr);
}

/* The pair may pass bytes: what the client sent behind its Finished, what the server wrote first. */
static int start_flowing(Pump *p, struct pair *pr)
{
    if (from_client(p, pr) < 0)
        return -1;
    return from_server(p, pr, 1);
}

/* A refused handshake, for the member's log: the client's address and OpenSSL's reason. */
static void report_refusal(struct pair *pr, unsigned long why)
{
    struct tls_end *t = pr->tls;
    if (t->conf->identity_fd < 0 || t->conf->connect)
        return;
    char text[400], addr[INET6_ADDRSTRLEN] = "?", reason[256] = "the connection closed during the handshake";
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    int port = 0;
    if (getpeername(pr->s[0].fd, (struct sockaddr *)&sa, &len) == 0) {
        if (sa.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, addr, sizeof addr);
            port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        } else if (sa.ss_family == AF_INET6) {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, addr, sizeof addr);
            port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        }
    }
    if (why)
        ERR_error_string_n(why, reason, sizeof reason);
    int n = snprintf(text, sizeof text, "%s:%d: TLS handshake failed: %s", addr, port, reason);
    struct note *note = note_new(t, 'R', (const unsigned char *)text, n > 0 ? (size_t)n : 0);
    if (note)
        post(t->conf, note);
}

static int handshake(Pump *p, struct pair *pr)
{
    struct tls_end *t = pr->tls;
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->open = 1;
        if (announce(pr) < 0 || send_records(p, pr) < 0)
            return -1;
        return t->queued ? 0 : start_flowing(p, pr);
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return send_records(p, pr);
    unsigned long why = ERR_peek_error();
    report_refusal(pr, why);
    if (ERR_GET_LIB(why) == ERR_LIB_SSL && ERR_GET_REASON(why) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
        alert_as_etcd(t->ssl, t->out, t->secret, t->secret_len);
    ERR_clear_error();
    send_records(p, pr); /* the alert, best effort: the connection closes either way */
    return -1;
}

static int on_event(Pump *p, struct side *sd, unsigned int events)
{
    struct pair *pr = sd->pair;
    struct tls_end *t = pr->tls;
    struct side *c = &pr->s[0];
    if (sd == c) {
        if ((events & EPOLLOUT) && send_records(p, pr) < 0)
            return -1;
        if (!t->open)
            return (events & IN_EVENTS) ? handshake(p, pr) : 0;
        if (t->queued) /* not read until the member knows the client (tls_notes_ready) */
            return 0;
        return (events & IN_EVENTS) ? from_client(p, pr) : 0;
    }
    if ((events & EPOLLOUT) && c->held) {
        if (flush(p, c) < 0)
            return -1;
        if (!c->held && t->open && from_client(p, pr) < 0)
            return -1;
    }
    if (!t->open || t->queued) /* the server is read once the client may talk to it (start_flowing) */
        return (events & (EPOLLRDHUP | EPOLLHUP)) ? -1 : 0;
    return (events & IN_EVENTS) ? from_server(p, pr, (events & (EPOLLRDHUP | EPOLLHUP)) != 0) : 0;
}

int tls_start(Pump *p, struct pair *pr)
{
    return pr->tls->conf->connect ? handshake(p, pr) : 0;
}

int tls_on_event(Pump *p, struct side *sd, unsigned int events)
{
    struct tls_end *t = sd->pair->tls;
    if (on_event(p, sd, events) < 0)
        return -1;
    /* records drained (on the client's EPOLLOUT, or by a send on the way from the client): the
     * server, not read meanwhile, goes on; no new edge would come for what it already wrote */
    if (t->server_paused && !pending(t))
        return from_server(p, sd->pair, 1);
    return 0;
}

int tls_pair_done(struct pair *pr)
{
    struct side *c = &pr->s[0], *s = &pr->s[1];
    if (c->hup && (c->eof || !pr->tls->open))
        return 1;
    if (s->hup && s->eof && !pending(pr->tls))
        return 1;
    return c->eof && s->eof && c->shut && s->shut;
}

/* ---- messages to the member that waited for room ---- */

int tls_conf_watch(struct tls_conf *c, int ep)
{
    if (c->identity_fd < 0)
        return 0;
    c->writable.pair = NULL; /* tells run() this is not a relayed socket */
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLET, .data.ptr = &c->writable};
    return epoll_ctl(ep, EPOLL_CTL_ADD, c->identity_fd, &ev);
}

void tls_notes_ready(Pump *p)
{
    struct tls_conf *c = p->tls;
    while (c->first) {
        struct note *n = c->first;
        int r = send_note(c, n);
        if (r == 0)
            return;
        unqueue(c, n);
        struct pair *pr = n->waiting;
        free(n);
        if (!pr)
            continue;
        pr->tls->queued = NULL;
        if (r < 0 || start_flowing(p, pr) < 0 || tls_pair_done(pr))
            kill_pair(p, pr); /* its 'G' joins the queue: still in order */
    }
}
