/*
 * engine/tls.h: TLS contexts (OpenSSL 3, memory BIOs), server and client.
 *
 * One SSL_CTX per role, shared read-only by every worker. The server's ALPN
 * offers h2 then http/1.1. Per-connection SSL objects use a BIO_s_mem pair,
 * so OpenSSL never touches a socket: the ring moves the ciphertext. Client
 * contexts (adapters connecting out) verify the peer's chain and name.
 */
#ifndef TOCSIN_TLS_H
#define TOCSIN_TLS_H

#include <stdbool.h>
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

/*
 * A client context: TLS 1.2 minimum, `alpn` (wire format, e.g. "\x02h2")
 * offered unless NULL, and the peer's chain verified against the PEM
 * bundle `ca` (NULL: the system store) unless `verify` is false (labs
 * only). NULL + err naming the file on failure.
 */
SSL_CTX *tls_client_ctx(const char *ca, bool verify, const unsigned char *alpn, size_t alpn_len,
			char *err, size_t errlen);

/*
 * A client SSL on a fresh memory-BIO pair, in connect state. `name` is sent
 * as SNI (unless it is an IP address) and, when the context verifies, must
 * match the certificate's DNS names or IP addresses. NULL on failure.
 */
SSL *tls_new_client_ssl(SSL_CTX *ctx, const char *name, BIO **rbio, BIO **wbio);

/*
 * Why a handshake failed, for logs and lane reasons: the certificate
 * verification result when that was the cause ("certificate verify
 * failed: ..."), else the first OpenSSL error. Clears the error queue;
 * returns buf.
 */
const char *tls_failure(SSL *ssl, char *buf, size_t len);

#endif
