/*
 * tests/fuzz/fuzz_operators.c: libFuzzer target for the operator-credential
 * parsers (engine/operators.h): the Authorization bearer, the Cookie header
 * and the ?token= query parameter, all bytes from outside. The input is
 * split at its first NUL-free third so each parser sees arbitrary text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "operators.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	const char *tok, *val;
	size_t len;
	if (operators_bearer(s, &tok, &len) && (tok < s || tok + len > s + strlen(s)))
		__builtin_trap(); /* the token must lie inside the header */
	if (operators_cookie(s, "tocsin_op", &val, &len) && (val < s || val + len > s + strlen(s)))
		__builtin_trap();
	char out[256];
	if (operators_query(s, "token", out, sizeof(out)) && strlen(out) >= sizeof(out))
		__builtin_trap();
	free(s);
	return 0;
}
