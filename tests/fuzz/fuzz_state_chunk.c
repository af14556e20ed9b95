/*
 * tests/fuzz/fuzz_state_chunk.c: libFuzzer target for proto/state_chunk.c,
 * the parser of delivery-state chunks read back from Redis on resume.
 *
 * The input is copied to an exact-size heap buffer, so ASan catches any read
 * past its end. Every reported address must be non-empty, inside the input
 * and followed by its NUL there; the count returned equals the callbacks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state_chunk.h"

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond))                                                               \
			abort();                                                           \
	} while (0)

struct seen {
	const char *buf;
	size_t size, calls;
};

static void on_record(void *arg, char state, const char *addr, size_t len)
{
	struct seen *s = arg;
	(void)state;
	CHECK(len > 0);
	CHECK(addr > s->buf && addr + len < s->buf + s->size);
	CHECK(addr[len] == 0 && memchr(addr, 0, len) == NULL);
	s->calls++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct seen s = {.buf = buf, .size = size};
	CHECK(state_chunk_parse(buf, size, on_record, &s) == s.calls);
	free(buf);
	return 0;
}
