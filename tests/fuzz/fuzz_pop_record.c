/*
 * tests/fuzz/fuzz_pop_record.c: libFuzzer target for proto/pop_record.h,
 * the population records the resolver reads from Redis.
 *
 * The input is a building's hh list element, then optionally a NUL and its
 * ha records (layout 4; without a NUL the records carry APPS, layouts 2-3),
 * copied to exact-size heap buffers so ASan catches any read past them.
 * Each record is split as the resolver does: its fields, their ';'-lists,
 * the apps' "platform:token", the ha record it takes, and the whole record
 * as a terminal record. Every span must lie inside its buffer, no field may
 * hold a tab, no item its separator, and the ha cursor only moves forward.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop_record.h"

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond))                                                               \
			abort();                                                           \
	} while (0)

static void check_in(struct pop_span s, const char *buf, size_t n)
{
	CHECK(s.p >= buf && s.p + s.len <= buf + n);
}

static void check_list(struct pop_span f, char sep, bool apps)
{
	const char *p = f.p, *end = f.p + f.len;
	struct pop_span it, pl, tok;
	size_t items = 0;
	while (pop_next(&p, end, sep, &it)) {
		check_in(it, f.p, f.len);
		CHECK(!memchr(it.p, sep, it.len));
		CHECK(++items <= f.len);
		if (apps && pop_app_split(it, &pl, &tok)) {
			check_in(pl, it.p, it.len);
			check_in(tok, it.p, it.len);
			CHECK(!memchr(pl.p, ':', pl.len) && pl.len + 1 + tok.len == it.len);
		}
	}
	CHECK(p == end);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t hn = nul ? (size_t)(nul - data) : size, an = nul ? size - hn - 1 : 0;
	char *hh = malloc(hn ? hn : 1), *ha = malloc(an ? an : 1);
	if (!hh || !ha)
		abort();
	memcpy(hh, data, hn);
	if (an)
		memcpy(ha, nul + 1, an);
	struct pop_ha_cursor hc = {ha, ha + an};
	const int nf = nul ? POP_APPS : POP_HH_FIELDS;

	const char *p = hh;
	struct pop_span rec;
	while (pop_next(&p, hh + hn, '\n', &rec)) {
		check_in(rec, hh, hn);
		struct pop_span f[POP_HH_FIELDS];
		if (pop_hh_split(rec.p, rec.len, nf, f) == 0) {
			for (int k = 0; k < nf; k++) {
				check_in(f[k], rec.p, rec.len);
				CHECK(!memchr(f[k].p, '\t', f[k].len));
			}
			CHECK(pop_count(f[POP_PERSONS].p, f[POP_PERSONS].len) <= 999999999u);
			check_list(f[POP_PHONES], ';', false);
			if (nf == POP_HH_FIELDS)
				check_list(f[POP_APPS], ';', true);
			const char *before = hc.p;
			struct pop_span apps = pop_ha_take(&hc, f[POP_SUFFIX].p, f[POP_SUFFIX].len);
			CHECK(hc.p >= before && hc.p <= hc.end);
			if (apps.len) {
				check_in(apps, ha, an);
				CHECK(hc.p > before);
				check_list(apps, ';', true);
			}
		}
		struct pop_span id, cov;
		int kind = pop_term_split(rec.p, rec.len, &id, &cov);
		CHECK(kind == -1 || kind == 1 || kind == 2);
		if (kind > 0) {
			CHECK(id.len > 0);
			check_in(id, rec.p, rec.len);
			check_in(cov, rec.p, rec.len);
		}
	}
	free(hh);
	free(ha);
	return 0;
}
