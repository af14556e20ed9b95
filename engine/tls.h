/*
 * engine/tls.h: the server's TLS context (OpenSSL 3, memory BIOs).
 *
 * One SSL_CTX per role, shared read-only by every worker. ALPN offers h2
 * then http/1.1. Per-connection SSL objects use a BIO_s_mem pair, so
 * OpenSSL never touches a socket: the ring moves the ciphertext.
 */
#ifndef TOCSIN_TLS_H
#define TOCSIN_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Load a PEM certificate chain and key. NULL + err naming the file on failure. */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen);

/*
 * Ask clients for a certificate and verify it against the PEM bundle
 * `ca` (operators' client certificates). Clients without one still
 * connect (bureaus submit signed warnings); one that presents a bad
 * certificate fails the handshake. 0 or -1 + err.
 */
int tls_verify_clients(SSL_CTX *ctx, const char *ca, char *err, size_t errlen);

/* A server SSL on a fresh memory-BIO pair; NULL on allocation failure. */
SSL *tls_new_ssl(SSL_CTX *ctx, BIO **rbio, BIO **wbio);

#endif
