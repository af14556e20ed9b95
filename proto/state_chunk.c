/*
 * proto/state_chunk.c: parse the delivery-state chunks (see state_chunk.h).
 * Invariant: no read outside [p, p + n).
 */
#include "state_chunk.h"

#include <string.h>

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
