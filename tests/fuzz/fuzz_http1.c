/*
 * tests/fuzz/fuzz_http1.c: libFuzzer target for the HTTP/1.1 request codec.
 * Feeds the input in two pieces (split at its first byte's value) to cover
 * resumption, and drains every pipelined request.
 */
#include <stdint.h>
#include <string.h>

#include "http1.h"

static void feed_all(struct http1_parser *p, const char *d, size_t n)
{
	while (n > 0) {
		ssize_t used = http1_parser_feed(p, d, n);
		if (used < 0)
			return;
		if (p->complete) {
			if (p->req.body_len && !p->req.body)
				__builtin_trap();
			http1_parser_next(p);
		} else if (used == 0) {
			return;
		}
		d += used;
		n -= (size_t)used;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http1_parser p;
	http1_parser_init(&p, 4096);
	size_t cut = size ? data[0] % (size + 1) : 0;
	feed_all(&p, (const char *)data, cut);
	feed_all(&p, (const char *)data + cut, size - cut);
	http1_parser_release(&p);
	return 0;
}
