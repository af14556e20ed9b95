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

/* A server SSL on a fresh memory-BIO pair; NULL on allocation failure. */
SSL *tls_new_ssl(SSL_CTX *ctx, BIO **rbio, BIO **wbio);

#endif
