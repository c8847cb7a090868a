/*
 * _tlsalert: the alert etcd sends a client that shows no certificate, where OpenSSL sends another.
 *
 * etcd (Go's crypto/tls, as Debian's etcd 3.4 is built) answers it with a fatal bad_certificate;
 * OpenSSL sends handshake_failure (TLS 1.2) or certificate_required (TLS 1.3). The TLS end
 * (_tlsend.c) calls this with OpenSSL's alert still waiting in its output BIO:
 *   - TLS 1.2: the alert is a plaintext record; its description byte is replaced;
 *   - TLS 1.3: the alert is sealed with the server application traffic key, as the first record
 *     under it (the TLS end sends no session tickets). It is sealed again, with bad_certificate,
 *     from the secret the key-log callback gave (RFC 8446: 7.1 key schedule, 5.2-5.3 records).
 * Anything else in the BIO is left as it is, and so is the alert when it is not what is expected.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "_tlsalert.h"

#define BAD_CERTIFICATE 42
#define SEALED_ALERT_LEN (5 + 3 + 16) /* header, alert + content type, AEAD tag */

/* TLS 1.3's HKDF-Expand-Label(secret, label, "", len) (RFC 8446, 7.1) */
static int expand_label(const EVP_MD *md, const unsigned char *secret, size_t secret_len, const char *label,
                        unsigned char *out, size_t len)
{
    unsigned char info[4 + 6 + 16];
    size_t label_len = 6 + strlen(label);
    info[0] = (unsigned char)(len >> 8);
    info[1] = (unsigned char)len;
    info[2] = (unsigned char)label_len;
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, label_len - 6);
    info[3 + label_len] = 0; /* empty context */
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!kctx)
        return -1;
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0),
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, 4 + label_len),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(kctx, out, len, params) > 0;
    EVP_KDF_CTX_free(kctx);
    return ok ? 0 : -1;
}

/* A fatal alert sealed as TLS 1.3's first record under the server traffic key (nonce = iv). */
static int seal_alert(SSL *ssl, const unsigned char *secret, size_t secret_len, unsigned char description,
                      unsigned char rec[SEALED_ALERT_LEN])
{
    const SSL_CIPHER *suite = SSL_get_current_cipher(ssl);
    const EVP_MD *md = suite ? SSL_CIPHER_get_handshake_digest(suite) : NULL;
    uint16_t id = suite ? SSL_CIPHER_get_protocol_id(suite) : 0;
    const EVP_CIPHER *aead = id == 0x1301 ? EVP_aes_128_gcm() : id == 0x1302 ? EVP_aes_256_gcm()
                             : id == 0x1303 ? EVP_chacha20_poly1305() : NULL;
    unsigned char key[32], iv[12];
    if (!aead || !md || !secret_len
        || expand_label(md, secret, secret_len, "key", key, (size_t)EVP_CIPHER_get_key_length(aead)) < 0
        || expand_label(md, secret, secret_len, "iv", iv, sizeof iv) < 0)
        return -1;
    const unsigned char header[5] = {23, 3, 3, 0, 3 + 16}; /* application_data, as every sealed record */
    const unsigned char inner[3] = {2, description, 21};   /* fatal, the alert, content type alert */
    memcpy(rec, header, sizeof header);
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;
    int ok = cx && EVP_EncryptInit_ex(cx, aead, NULL, key, iv) && EVP_EncryptUpdate(cx, NULL, &n, header, 5)
             && EVP_EncryptUpdate(cx, rec + 5, &n, inner, 3) && EVP_EncryptFinal_ex(cx, rec + 5 + n, &m)
             && n + m == 3 && EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_GET_TAG, 16, rec + 8);
    EVP_CIPHER_CTX_free(cx);
    OPENSSL_cleanse(key, sizeof key);
    return ok ? 0 : -1;
}

void alert_as_etcd(SSL *ssl, BIO *out, const unsigned char *secret, size_t secret_len)
{
    char *data;
    long len = BIO_get_mem_data(out, &data);
    if (SSL_version(ssl) == TLS1_3_VERSION) {
        unsigned char rec[SEALED_ALERT_LEN];
        if (len < SEALED_ALERT_LEN || data[len - SEALED_ALERT_LEN] != 23
            || seal_alert(ssl, secret, secret_len, BAD_CERTIFICATE, rec) < 0)
            return;
        long keep = len - SEALED_ALERT_LEN;
        char *before = keep ? malloc((size_t)keep) : NULL;
        if (keep && !before)
            return;
        if (keep)
            memcpy(before, data, (size_t)keep);
        (void)BIO_reset(out);
        if (keep)
            BIO_write(out, before, (int)keep);
        BIO_write(out, rec, sizeof rec);
        free(before);
    } else if (len >= 7 && data[len - 7] == 21 && data[len - 4] == 0 && data[len - 3] == 2 && data[len - 2] == 2) {
        data[len - 1] = BAD_CERTIFICATE; /* a plaintext alert record: fatal, handshake_failure */
    }
}
