/*
 * engine/journal.h: durable admission of warnings in Redis.
 *
 * Keys (prefix from the config, default "tocsin:"):
 *   {prefix}w:{id}      hash: digest, envelope, state, admitted_at, expires,
 *                       and `coverage` (JSON) once the dispatcher works on it
 *   {prefix}journal     stream: one entry per admission ("id", "event")
 *   {prefix}active      sorted set: id scored by expiry, for resumption
 *
 * journal_admit() runs one Lua script, so the check for an existing record
 * and the writes are atomic: either the whole admission is stored or none
 * of it. Durability comes from the Redis server's AOF: tocsin's own
 * redis-server runs with appendonly yes and appendfsync always, so a reply
 * means the record is on disk; only then does the engine answer 202.
 */
#ifndef TOCSIN_JOURNAL_H
#define TOCSIN_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "redis.h"

enum journal_result {
	JOURNAL_NEW,         /* stored now */
	JOURNAL_SAME,        /* stored before with the same payload digest */
	JOURNAL_CONFLICT,    /* stored before with a different payload */
	JOURNAL_UNAVAILABLE, /* Redis down or refused the write */
};

struct journal_entry {
	const char *id;
	const char *digest_hex;  /* SHA-256 of the payload bytes */
	const uint8_t *envelope; /* the SignedWarning bytes as received */
	size_t envelope_len;
	int64_t expires;
};

/*
 * Load the admission script into Redis (SCRIPT LOAD); call on every new
 * connection before journal_admit(), which uses EVALSHA. A NOSCRIPT answer
 * (the cache was flushed, or the SCRIPT LOAD came while a restarted Redis
 * was still loading its data) reloads it and sends that admission again
 * with EVAL, once.
 */
void journal_prepare(struct redis_client *rc);

/* admitted_at: ms since the epoch (the first admission's, for JOURNAL_SAME). */
typedef void (*journal_cb)(void *arg, enum journal_result r, int64_t admitted_at);

/* 0 when queued (cb runs once), or -errno when Redis is not available (no cb).
 * e's strings and envelope must stay valid until cb has run. */
int journal_admit(struct redis_client *rc, const char *prefix, const struct journal_entry *e,
		  journal_cb cb, void *arg);

/* Fetch envelope, state, admitted_at and coverage of one warning (HMGET). */
int journal_get(struct redis_client *rc, const char *prefix, const char *id, redis_reply_cb cb,
		void *arg);

#endif
