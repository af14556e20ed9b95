/*
 * tests/fuzz/fuzz_push_response.c: libFuzzer target for what the push
 * adapter parses from providers (proto/push_payload.c): the JSON reason
 * scan, Retry-After, and the classification of status + body, for each
 * provider. Input: byte 0 = provider, bytes 1-2 = status, then a
 * Retry-After value up to the first NUL, then the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "push_payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	enum push_provider p = (enum push_provider)(data[0] % 3);
	int status = 100 + (data[1] << 8 | data[2]) % 500;
	const char *rest = (const char *)data + 3;
	size_t left = size - 3;
	const char *nul = memchr(rest, 0, left);
	char ra[64] = "";
	const char *body = rest;
	size_t blen = left;
	if (nul) {
		size_t n = (size_t)(nul - rest) < sizeof(ra) - 1 ? (size_t)(nul - rest) : sizeof(ra) - 1;
		memcpy(ra, rest, n);
		body = nul + 1;
		blen = left - (size_t)(nul - rest) - 1;
	}
	char *copy = malloc(blen ? blen : 1); /* exact size: ASan sees any over-read */
	memcpy(copy, body, blen);
	uint32_t ms;
	char reason[64], out[32];
	push_classify(p, status, copy, blen, nul ? ra : NULL, &ms, reason, sizeof(reason));
	push_json_find_string(copy, blen, "message", out, sizeof(out));
	push_retry_after_ms(copy, blen);
	free(copy);
	return 0;
}
