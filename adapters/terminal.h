/*
 * adapters/terminal.h: what the terminal gateway (adapters/terminal.c,
 * `adapter = terminal`) offers beyond the adapter contract: broadcast
 * readiness, the terminals offline longest, counters (with why each
 * connection closed), and the HMAC used to authenticate terminals.
 *
 * All functions taking a lane run on the lane's loop thread; a lane whose
 * adapter is not the terminal gateway (or is closed) reads as all zeros.
 */
#ifndef TOCSIN_ADAPTER_TERMINAL_H
#define TOCSIN_ADAPTER_TERMINAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lane.h"
#include "terminal_frame.h"

/*
 * online: this lane's authenticated connections; total_known: distinct
 * terminal ids the gateway knows (the current population's, and any
 * authenticated or addressed by a delivery); persons_online: persons
 * covered by the terminals online on any terminal lane of the process,
 * each counted once (the model is in terminal_ready.h; per segment through
 * the adapter's describe()).
 */
void terminal_readiness(const struct lane *l, uint64_t *online, uint64_t *total_known,
			uint64_t *persons_online);

struct terminal_offline {
	char id[TERMINAL_ID_MAX + 1];
	int64_t last_seen_s; /* wall clock; 0 = never connected since the gateway started */
};

/* The up-to-n terminals connected to no terminal lane, seen longest ago first. Returns how many. */
size_t terminal_offline_oldest(const struct lane *l, struct terminal_offline *out, size_t n);

/* Why a connection was closed: each is counted and logged once per connection. */
enum terminal_close_reason {
	TERMINAL_CLOSE_PEER,                    /* EOF or a socket error from the terminal */
	TERMINAL_CLOSE_HANDSHAKE_TIMEOUT,       /* no whole Hello within handshake_ms (slowloris) */
	TERMINAL_CLOSE_HEARTBEAT_TIMEOUT,       /* silent for 3 heartbeat intervals */
	TERMINAL_CLOSE_BAD_MAC,                 /* known id, wrong HMAC (or an old challenge's) */
	TERMINAL_CLOSE_UNKNOWN_ID,              /* no such terminal in the current population */
	TERMINAL_CLOSE_UNSUPPORTED_VERSION,
	TERMINAL_CLOSE_CREDENTIALS_UNAVAILABLE, /* Redis down, or its lookup over handshake_ms: TRY_LATER */
	TERMINAL_CLOSE_REPLACED,                /* the same id authenticated on a newer connection */
	TERMINAL_CLOSE_FRAME_TOO_LONG,          /* a length above TERMINAL_FRAME_MAX, or 0 */
	TERMINAL_CLOSE_PROTOCOL_ERROR,          /* a malformed or unexpected frame */
	TERMINAL_CLOSE_OUTPUT_FULL,             /* a terminal that does not read its output */
	TERMINAL_CLOSE_TOO_MANY,                /* accepted beyond max_connections */
	TERMINAL_CLOSE_NO_MEMORY,
	TERMINAL_CLOSE_TLS,                     /* a failed TLS handshake or record */
	TERMINAL_CLOSE_SHUTDOWN,                /* the gateway closed */
	TERMINAL_CLOSE_N
};
/* "bad_mac", "handshake_timeout", ...: the suffix of the closed_* counters. */
const char *terminal_close_reason_name(enum terminal_close_reason r);

struct terminal_stats {
	uint64_t accepted_conns, auth_ok, alerts_sent, resends, acks;
	uint64_t enobufs, held, expired;
	uint64_t short_sends; /* an Alert's sendmsg resumed after a short send */
	uint64_t accept_pauses; /* times max_handshakes stopped the accept */
	uint64_t status_reports; /* Status frames taken (volume, faults) */
	uint64_t last_received_us; /* CLOCK_MONOTONIC µs when the last Ack RECEIVED was taken (0: none) */
	uint64_t closed[TERMINAL_CLOSE_N];
	uint64_t conns;  /* open connections, authenticated or not */
	uint64_t conn_bytes, term_bytes; /* sizeof the per-connection and per-terminal structs */
	uint64_t ring_bytes;             /* the receive-buffer rings, one per shard (resident) */
	uint64_t shards;                 /* extra io_uring rings holding the connections' direct descriptors */
	uint64_t shard_bytes;            /* heap of one shard: its receive buffers and free-slot stack */
};
void terminal_stats(const struct lane *l, struct terminal_stats *out);

/* HMAC-SHA256(secret, nonce || id) into mac. 0, or -1 when OpenSSL fails. */
int terminal_auth_mac(const void *secret, size_t secret_len, const uint8_t *nonce,
		      size_t nonce_len, const char *id, uint8_t mac[TERMINAL_MAC_LEN]);
/* Constant-time check of a terminal's mac. */
bool terminal_auth_check(const void *secret, size_t secret_len, const uint8_t *nonce,
			 size_t nonce_len, const char *id, const uint8_t *mac, size_t mac_len);

#endif
