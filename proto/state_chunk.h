/*
 * proto/state_chunk.h: the records of a warning's persisted delivery states.
 *
 * The dispatcher appends chunks to the Redis list {prefix}d:{id}; a chunk is
 * a run of records, each one state letter, the address's key and a NUL. A
 * later record for an address overrides an earlier one (the reader's
 * concern). The key is the address itself, or for a long one (an app token)
 * a hash of it (state_chunk_key).
 *
 * Pure: bytes in, records out through a callback, no allocation. Every
 * length is checked: a record is reported only when its NUL lies inside the
 * chunk and its address is not empty; a torn tail is skipped, not guessed.
 */
#ifndef TOCSIN_STATE_CHUNK_H
#define TOCSIN_STATE_CHUNK_H

#include <stddef.h>

typedef void (*state_record_cb)(void *arg, char state, const char *addr, size_t len);

/* Calls cb for each whole record of the chunk; returns how many. */
size_t state_chunk_parse(const char *p, size_t n, state_record_cb cb, void *arg);

/*
 * The key a record carries for the address addr (len bytes): the address
 * itself when it is at most STATE_KEY_PLAIN_MAX bytes and does not start
 * with '#' (phones, terminal ids), else '#' and 16 lowercase hex digits of
 * a 64-bit hash of it, written into buf (STATE_KEY_HASHED + 1 bytes). An app
 * token is ~160 bytes: its records were most of the bytes Redis copied (list
 * and append-only file) for an app warning. Two addresses share a hashed key
 * with a probability of about n^2 / 2^65 (n addresses in one warning); they
 * would share their persisted state across a restart. *klen gets the length.
 */
#define STATE_KEY_PLAIN_MAX 32
#define STATE_KEY_HASHED 17
const char *state_chunk_key(const char *addr, size_t len, char *buf, size_t *klen);

#endif
