/*
 * proto/state_chunk.c: parse the delivery-state chunks (see state_chunk.h).
 * Invariant: no read outside [p, p + n).
 */
#include "state_chunk.h"

#include <endian.h>
#include <stdint.h>
#include <string.h>

const char *state_chunk_key(const char *addr, size_t len, char *buf, size_t *klen)
{
	if (len <= STATE_KEY_PLAIN_MAX && (len == 0 || addr[0] != '#')) {
		*klen = len;
		return addr;
	}
	/* 8 bytes a step (a byte-wise FNV of a 165-byte token was ~8 % of the
	 * dispatcher in the push bench), then a full avalanche. Part of the
	 * persisted format: records written by one build are read by the next. */
	uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)len, w;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		memcpy(&w, addr + i, 8);
		h = (h ^ le64toh(w)) * 0xff51afd7ed558ccdull;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, addr + i, len - i);
	h = (h ^ le64toh(w)) * 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	static const char hex[] = "0123456789abcdef";
	buf[0] = '#';
	for (int k = 0; k < 16; k++)
		buf[1 + k] = hex[(h >> (60 - 4 * k)) & 15];
	buf[STATE_KEY_HASHED] = 0;
	*klen = STATE_KEY_HASHED;
	return buf;
}

size_t state_chunk_parse(const char *p, size_t n, state_record_cb cb, void *arg)
{
	const char *end = p + n;
	size_t records = 0;
	while (end - p > 1) {
		const char *nul = memchr(p + 1, 0, (size_t)(end - p - 1));
		if (!nul)
			break; /* a torn record: RPUSH never writes one; skip it */
		if (nul > p + 1) {
			cb(arg, p[0], p + 1, (size_t)(nul - p - 1));
			records++;
		}
		p = nul + 1;
	}
	return records;
}
