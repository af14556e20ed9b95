/*
 * engine/conn.h: an accepted client connection on a worker's loop.
 *
 * A connection starts by sniffing its first bytes: 0x16 is a TLS
 * ClientHello (when a certificate is configured), the HTTP/2 preface
 * "PRI * HTTP/2.0" is h2c with prior knowledge, anything else is HTTP/1.1.
 * After a TLS handshake, ALPN picks h2 or http/1.1.
 *
 * State table:
 *
 *   SNIFF --first bytes--> TLS_HANDSHAKE --done--> OPEN
 *     |                                             ^
 *     +-----------------plaintext-------------------+
 *   OPEN --conn_close_gracefully--> LINGER (FIN sent, reading to EOF, 2 s max)
 *   any --conn_close / error / EOF--> CLOSING --last ref dropped--> freed
 *
 * Ownership: the connection holds one reference for being open, one per
 * armed recv/send op, and one per request a protocol session dispatched
 * and has not answered yet. It is freed (fd closed, session released) only
 * when the count reaches zero: never while a CQE or an answer can still
 * arrive for it. Output is capped (CONN_MAX_OUTPUT); a peer that does not
 * read is disconnected rather than buffered without bound.
 */
#ifndef TOCSIN_CONN_H
#define TOCSIN_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "loop.h"

#define CONN_RECV_BUF (16 * 1024)
#define CONN_MAX_OUTPUT (4u << 20)
#define CONN_OUTPUT_HIGH (1u << 20) /* above it, stop reading until drained */
#define CONN_LINGER_MS 2000

struct worker;
struct conn;

/* A protocol session's hooks (HTTP/1.1 or HTTP/2). */
struct conn_proto {
	const char *name;
	/* Start on a connection; the first plaintext bytes follow via on_data. */
	int (*start)(struct conn *c);
	/* Plaintext arrived. Return 0, or -1 to close the connection. */
	int (*on_data)(struct conn *c, const uint8_t *data, size_t len);
	/* The output buffer drained below CONN_OUTPUT_HIGH: produce more if waiting. */
	void (*on_drain)(struct conn *c);
	/* The connection is closing: stop producing; answers may still arrive. */
	void (*on_close)(struct conn *c);
	/* Free the session (no reference remains). */
	void (*release)(struct conn *c);
};

enum conn_state { CONN_SNIFF, CONN_TLS_HANDSHAKE, CONN_OPEN, CONN_LINGER, CONN_CLOSING };

struct conn {
	struct worker *w;
	uint64_t id;
	int fd;
	enum conn_state state;
	int refs;
	struct op recv_op, send_op;
	bool recv_armed, send_armed, recv_paused;
	uint8_t *rbuf;
	struct buf out;      /* waiting to be sent */
	struct buf sending;  /* owned by the send op in flight */
	size_t sending_off;
	SSL *ssl;            /* NULL for plaintext */
	BIO *rbio, *wbio;
	const struct conn_proto *proto;
	void *session;
	struct timer idle;
	uint64_t operators_seen; /* bit i: operator token i authenticated (audit once) */
	struct conn *prev, *next; /* worker's list */
};

/* Take over an accepted fd. NULL (fd closed) when out of memory. */
struct conn *conn_new(struct worker *w, int fd);

/* Queue plaintext for the peer (encrypted when TLS). 0 or -ENOBUFS/-ENOMEM. */
int conn_write(struct conn *c, const void *data, size_t len);
/* Start sending what is queued (no-op while a send is in flight). */
void conn_flush(struct conn *c);
size_t conn_output_pending(const struct conn *c);

/* Send what is queued, then FIN, then drain input briefly and close. */
void conn_close_gracefully(struct conn *c);
/* Close now (queued output is dropped). Idempotent. */
void conn_close(struct conn *c);
bool conn_is_closing(const struct conn *c);

void conn_ref(struct conn *c);
void conn_unref(struct conn *c);

/* Re-arm the idle timeout: the connection is busy though the peer is silent. */
void conn_touch(struct conn *c);

/* ALPN protocol the TLS handshake selected ("" when none or plaintext). */
const char *conn_alpn(const struct conn *c);

#endif
