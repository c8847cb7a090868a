/* _tlsalert.c: make OpenSSL's alert for a missing client certificate etcd's bad_certificate. */
#ifndef PYETCD_TLSALERT_H
#define PYETCD_TLSALERT_H

#include <stddef.h>

#include <openssl/ssl.h>

/* out: the records waiting for the client, OpenSSL's alert last; secret: the server application
 * traffic secret of a TLS 1.3 session (from the key-log callback) */
void alert_as_etcd(SSL *ssl, BIO *out, const unsigned char *secret, size_t secret_len);

#endif
