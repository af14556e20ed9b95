/*
 * tests/fuzz/fuzz_terminal_frame.c: the terminal frame parser and the
 * checked message decode (proto/terminal_frame.c) on arbitrary streams.
 *
 * The input is treated as a byte stream from a terminal: frames are cut
 * with terminal_frame_parse() exactly as the gateway does, each payload is
 * decoded in a capped arena (TERMINAL_ARENA_CAP), and every decoded frame
 * is re-encoded (the gateway never does this, but it must not crash).
 * Seeds: tests/fuzz/corpus/terminal_frame/ (one file per message kind).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "terminal_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t arena_mem[TERMINAL_ARENA_CAP];
	static uint8_t out[TERMINAL_FRAME_HDR + TERMINAL_FRAME_MAX];
	struct terminal_arena a;
	terminal_arena_init(&a, arena_mem, sizeof(arena_mem));
	while (size > 0) {
		const uint8_t *payload;
		size_t plen;
		ssize_t n = terminal_frame_parse(data, size, &payload, &plen);
		if (n < 0)
			break; /* need more (end of input) or a bad length: the stream ends */
		if (plen > TERMINAL_FRAME_MAX || (size_t)n > size)
			abort();
		enum terminal_decode_err err;
		terminal_arena_reset(&a);
		Tocsin__Terminal__Frame *f = terminal_frame_decode(&a, payload, plen, &err);
		if (f && terminal_frame_encode(f, out, sizeof(out)) < 0 &&
		    terminal_frame_size(f) <= TERMINAL_FRAME_HDR + TERMINAL_FRAME_MAX)
			abort();
		data += n;
		size -= (size_t)n;
	}
	return 0;
}
