/*
 * tests/fuzz/fuzz_smpp_ids.c: libFuzzer target for the SMPP adapter's
 * message-id readings and receipt map (adapters/smpp.c, included for its
 * file-local functions). Ids come from the SMSC (submit_sm_resp, receipts).
 *
 * The input is split at NUL bytes into ids of at most SMPP_ID_MAX - 1
 * bytes (as the PDU codec hands them over). For each: the readings must
 * agree with smpp_id_canon(); the id is added to a small map (which grows),
 * must then be found by its primary reading, and every second one is
 * removed again; at the end the map's counts must add up.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../adapters/smpp.c"

/* Checks that survive NDEBUG. */
#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond))                                                               \
			abort();                                                           \
	} while (0)

static void check_readings(const char *id, const struct id_keys *k, bool ok)
{
	char k1[SMPP_ID_MAX + 4], k2[SMPP_ID_MAX + 4], got[SMPP_ID_MAX + 24];
	bool want = smpp_id_canon(id, smpp_id_has_hex_letter(id), k1, sizeof(k1));
	CHECK(ok == want);
	if (!ok)
		return;
	bool two = smpp_id_canon(id, true, k2, sizeof(k2)) && strcmp(k1, k2);
	CHECK(k->two == two);
	for (int i = 0; i < 1 + two; i++) {
		if (k->k[i].text)
			snprintf(got, sizeof(got), "%s", k->k[i].text);
		else
			snprintf(got, sizeof(got), "n:%llu", (unsigned long long)k->k[i].v);
		CHECK(!strcmp(got, i ? k2 : k1));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rmap m;
	if (rmap_init(&m, 16) < 0)
		return 0;
	size_t added = 0, removed = 0;
	for (size_t off = 0; off < size;) {
		char id[SMPP_ID_MAX];
		size_t n = 0;
		while (off < size && data[off] && n < sizeof(id) - 1)
			id[n++] = (char)data[off++];
		id[n] = 0;
		off++; /* the separator (or the byte past a full id) */
		struct id_keys k;
		bool ok = id_keys(id, &k);
		check_readings(id, &k, ok);
		if (!ok)
			continue;
		uint32_t r = rmap_add(&m, &k, 0);
		if (r == RCPT_NONE)
			break;
		added++;
		CHECK(rmap_get(&m, &k.k[0], 0) != RCPT_NONE);
		if (k.two)
			CHECK(rmap_get(&m, &k.k[1], 1) != RCPT_NONE);
		if (added % 2 == 0) {
			rmap_remove(&m, r);
			removed++;
		}
	}
	CHECK(m.n == added - removed);
	CHECK(m.used * 2 <= m.mask + 1);
	rmap_release(&m);
	return 0;
}
