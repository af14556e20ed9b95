/*
 * tests/fuzz/fuzz_envelope.c: libFuzzer target for the SignedWarning and
 * Warning decoders and the validator. The input is decoded as an envelope;
 * its payload (or, when that fails, the raw input) is decoded as a Warning
 * and validated, so both decoders see arbitrary bytes.
 */
#include <stdint.h>
#include <string.h>

#include "warning_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct warning_arena a;
	const char *why;
	struct warning_problem p;
	warning_arena_init(&a, WARNING_ARENA_CAP);
	Tocsin__SignedWarning *sw = signed_warning_decode(&a, data, size, &why);
	const uint8_t *payload = sw ? sw->payload.data : data;
	size_t len = sw ? sw->payload.len : size;
	Tocsin__Warning *w = warning_decode(&a, payload, len, &why);
	if (w) {
		warning_validate(w, 1795000000, 300, &p);
		warning_expires(w);
	}
	warning_arena_release(&a);
	return 0;
}
