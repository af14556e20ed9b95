/*
 * engine/tls.c: TLS contexts and memory-BIO sessions (see tls.h), for the
 * server and for adapters that connect out (SMPP over TLS).
 *
 * Options: TLS 1.2 minimum; SSL_OP_IGNORE_UNEXPECTED_EOF because peers
 * often close without close_notify; SSL_MODE_RELEASE_BUFFERS to keep idle
 * connections small (~34 KB saved each).
 */
#include "tls.h"

#include <arpa/inet.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static int select_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		       const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char prefs[] = "\x02h2\x08http/1.1";
	unsigned char *sel;
	if (SSL_select_next_proto(&sel, outlen, prefs, sizeof(prefs) - 1, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static void ssl_err(char *err, size_t errlen, const char *what, const char *path)
{
	char buf[256];
	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	snprintf(err, errlen, "%s: %s: %s", path, what, buf);
}

/* A context with the settings both sides share: TLS 1.2 or later, no renegotiation, buffers released. */
static SSL_CTX *ctx_new(const SSL_METHOD *method, const char *what, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx) {
		ssl_err(err, errlen, what, "tls");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

SSL_CTX *tls_server_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_new(TLS_server_method(), "cannot create TLS context", err, errlen);
	if (!ctx)
		return NULL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_err(err, errlen, "cannot load certificate chain", cert);
		goto out_free_ctx;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		ssl_err(err, errlen, "cannot load private key", key);
		goto out_free_ctx;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_err(err, errlen, "private key does not match the certificate", key);
		goto out_free_ctx;
	}
	SSL_CTX_set_alpn_select_cb(ctx, select_alpn, NULL);
	return ctx;

out_free_ctx:
	SSL_CTX_free(ctx);
	return NULL;
}

int tls_verify_clients(SSL_CTX *ctx, const char *ca, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "tocsind";
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		ssl_err(err, errlen, "[operators] client_ca: cannot load", ca);
		return -1;
	}
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
	if (names)
		SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return 0;
}

/* A memory-BIO pair handed to ssl (which then owns both); -1 on allocation failure. */
static int attach_bios(SSL *ssl, BIO **rbio, BIO **wbio)
{
	*rbio = BIO_new(BIO_s_mem());
	*wbio = BIO_new(BIO_s_mem());
	if (!*rbio || !*wbio) {
		BIO_free(*rbio);
		BIO_free(*wbio);
		return -1;
	}
	BIO_set_mem_eof_return(*rbio, -1); /* empty: want more, not EOF */
	SSL_set_bio(ssl, *rbio, *wbio);    /* ssl owns both now */
	return 0;
}

SSL *tls_new_ssl(SSL_CTX *ctx, BIO **rbio, BIO **wbio)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	if (attach_bios(ssl, rbio, wbio) < 0) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_accept_state(ssl);
	return ssl;
}

SSL_CTX *tls_client_ctx(const char *ca, bool verify, const unsigned char *alpn, size_t alpn_len,
			char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_new(TLS_client_method(), "cannot create TLS client context", err, errlen);
	if (!ctx)
		return NULL;
	if (alpn && SSL_CTX_set_alpn_protos(ctx, alpn, (unsigned)alpn_len) != 0) { /* 0 = success */
		ssl_err(err, errlen, "cannot set ALPN", "tls");
		goto out_free_ctx;
	}
	if (!verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1
	       : SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ssl_err(err, errlen, "cannot load CA certificates", ca ? ca : "the system store");
		goto out_free_ctx;
	}
	return ctx;

out_free_ctx:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *tls_new_client_ssl(SSL_CTX *ctx, const char *name, BIO **rbio, BIO **wbio)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
	bool ok = is_ip || SSL_set_tlsext_host_name(ssl, name) == 1; /* SNI takes no address */
	if (ok && (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER))
		ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1
			   : SSL_set1_host(ssl, name) == 1;
	if (!ok || attach_bios(ssl, rbio, wbio) < 0) {
		SSL_free(ssl);
		return NULL;
	}
	SSL_set_connect_state(ssl);
	return ssl;
}

const char *tls_failure(SSL *ssl, char *buf, size_t len)
{
	long v = SSL_get_verify_result(ssl);
	unsigned long e = ERR_peek_error();
	if (v != X509_V_OK) {
		snprintf(buf, len, "certificate verify failed: %s", X509_verify_cert_error_string(v));
	} else if (e) {
		ERR_error_string_n(e, buf, len);
	} else {
		snprintf(buf, len, "TLS protocol error");
	}
	ERR_clear_error();
	return buf;
}
