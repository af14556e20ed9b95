/*
 * proto/state_chunk.h: the records of a warning's persisted delivery states.
 *
 * The dispatcher appends chunks to the Redis list {prefix}d:{id}; a chunk is
 * a run of records, each one state letter, the address and a NUL. A later
 * record for an address overrides an earlier one (the reader's concern).
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

#endif
