/*
 * tests/fuzz/fuzz_dlr.c: libFuzzer target for proto/smpp.c's receipt text
 * parser (Appendix B "id:… stat:…") and message id normalization.
 *
 * The input is copied to an exact-size heap buffer with no NUL, so ASan
 * catches any read past len. Every field must come back NUL-terminated
 * within its size, and a successful parse must have an id and a stat.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smpp.h"

/* Checks that survive NDEBUG (RelWithDebInfo builds define it). */
#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond))                                                               \
			abort();                                                           \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct smpp_dlr r;
	int ret = smpp_dlr_parse(buf, size, &r);
	CHECK(memchr(r.id, 0, sizeof(r.id)) && memchr(r.stat, 0, sizeof(r.stat)));
	CHECK(memchr(r.err, 0, sizeof(r.err)) && memchr(r.done_date, 0, sizeof(r.done_date)));
	CHECK(memchr(r.submit_date, 0, sizeof(r.submit_date)));
	if (ret == 0) {
		CHECK(r.id[0] && r.stat[0]);
		char a[SMPP_ID_MAX + 4], b[SMPP_ID_MAX + 4];
		bool ha = smpp_id_canon(r.id, true, a, sizeof(a));
		bool da = smpp_id_canon(r.id, false, b, sizeof(b));
		CHECK(ha || da || !r.id[0]);
	}
	free(buf);
	return 0;
}
