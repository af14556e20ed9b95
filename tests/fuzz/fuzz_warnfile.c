/*
 * tests/fuzz/fuzz_warnfile.c: libFuzzer target for engine/warnfile.c, the
 * human-written warning description (INI) that `tocsin sign` and `tocsin
 * submit` turn into a tocsin.Warning.
 *
 * The input is copied to an exact-size heap buffer (ASan catches a read past
 * it). A failure must leave a non-empty reason within the error buffer and
 * allocate nothing; a success must give bytes that the engine's own decoder
 * reads back as a Warning, which is then validated (either outcome is fine:
 * the file may name times the validator refuses), and the same text with
 * the CLI's overrides must succeed too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warning_codec.h"
#include "warnfile.h"

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond))                                                               \
			abort();                                                           \
	} while (0)

#define NOW 1796000000 /* a fixed clock: "now" and "+6h" must not vary between runs */

static void check_built(const uint8_t *out, size_t outlen)
{
	struct warning_arena a;
	warning_arena_init(&a, 1 << 20);
	const char *why = NULL;
	Tocsin__Warning *w = warning_decode(&a, out, outlen, &why);
	CHECK(w != NULL);
	struct warning_problem p;
	(void)warning_validate(w, NOW, 300, &p);
	warning_arena_release(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	uint8_t *out = NULL;
	size_t outlen = 0;
	char err[256];
	memset(err, 'x', sizeof(err));
	int rc = warnfile_build("fuzz.ini", text, size, NOW, NULL, &out, &outlen, err, sizeof(err));
	if (rc == 0) {
		CHECK(out != NULL);
		check_built(out, outlen);
		free(out);
		const struct warnfile_overrides ov = {
			.identifier = "fuzz-override-1", .status = "Exercise", .expires = "+1h",
		};
		out = NULL;
		rc = warnfile_build("fuzz.ini", text, size, NOW, &ov, &out, &outlen, err, sizeof(err));
		if (rc == 0) {
			check_built(out, outlen);
			free(out);
		}
	} else {
		CHECK(rc == -1 && out == NULL);
		CHECK(memchr(err, 0, sizeof(err)) != NULL && err[0] != 0);
	}
	free(text);
	return 0;
}
