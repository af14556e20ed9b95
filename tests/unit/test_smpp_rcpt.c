/*
 * tests/unit/test_smpp_rcpt.c: the SMPP adapter's receipt maps
 * (adapters/smpp.c, included here for its file-local functions): an id's
 * readings as numbers agree with smpp_id_canon() on every kind of id, and
 * the open-addressing map finds, removes, grows and reserves like a plain
 * model of it, for numeric, hex and text ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* before cmocka.h, whose fail() macro would rename the adapter's fail() */
#include "../../adapters/smpp.c"

#include <cmocka.h>

static uint32_t rng = 2463534242u;

static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* A random id: digits, hex (either case), or text; now and then past 64 bits. */
static void random_id(char *id, size_t cap)
{
	static const char alpha[] = "0123456789abcdefABCDEF-xZ";
	unsigned kind = next_rand() % 4, len = next_rand() % 24;
	if (next_rand() % 50 == 0)
		len = next_rand() % (unsigned)(cap - 1);
	unsigned span = kind == 0 ? 10 : kind == 1 ? 16 : kind == 2 ? 22 : 25;
	for (unsigned i = 0; i < len; i++)
		id[i] = alpha[next_rand() % span];
	id[len] = 0;
}

static void reading_text(const struct idkey *k, char *out, size_t cap)
{
	if (k->text)
		snprintf(out, cap, "%s", k->text);
	else
		snprintf(out, cap, "n:%llu", (unsigned long long)k->v);
}

static void test_readings_agree_with_canon(void **state)
{
	for (int it = 0; it < 300000; it++) {
		char id[SMPP_ID_MAX], k1[SMPP_ID_MAX + 4], k2[SMPP_ID_MAX + 4], got[SMPP_ID_MAX + 24];
		random_id(id, sizeof(id));
		bool ok = smpp_id_canon(id, smpp_id_has_hex_letter(id), k1, sizeof(k1));
		bool two = ok && smpp_id_canon(id, true, k2, sizeof(k2)) && strcmp(k1, k2);
		struct id_keys k;
		assert_int_equal(id_keys(id, &k), ok);
		if (!ok)
			continue;
		reading_text(&k.k[0], got, sizeof(got));
		assert_string_equal(got, k1);
		assert_int_equal(k.two, two);
		if (two) {
			reading_text(&k.k[1], got, sizeof(got));
			assert_string_equal(got, k2);
		}
	}
}

/*
 * The ids of the map test, all distinct in every reading: decimal (two
 * readings), hex, a decimal whose hex reading is past 64 bits (a text
 * reading), text.
 */
static void map_id(unsigned i, char *id, size_t cap)
{
	switch (i % 4) {
	case 0: snprintf(id, cap, "%u", 1000000 + i); break;
	case 1: snprintf(id, cap, "ABC%05x", i); break;
	case 2: snprintf(id, cap, "1%018u", i); break;
	default: snprintf(id, cap, "Msg-%u-x", i); break;
	}
}

static void test_map_against_model(void **state)
{
	enum { N = 20000 };
	struct rmap m;
	assert_int_equal(rmap_init(&m, 16), 0);
	uint32_t *idx = malloc(N * sizeof(*idx));
	bool *live = calloc(N, sizeof(*live));
	struct id_keys k;
	char id[64];
	size_t n_live = 0;
	for (int step = 0; step < 4 * N; step++) {
		unsigned i = next_rand() % N;
		map_id(i, id, sizeof(id));
		assert_true(id_keys(id, &k));
		uint32_t r = rmap_get(&m, &k.k[0], 0);
		assert_int_equal(r != RCPT_NONE, live[i]);
		if (live[i]) {
			assert_int_equal(r, idx[i]);
			assert_int_equal(m.e[r].u.delivery_id, i);
			if (k.two) /* found by its other reading too */
				assert_int_equal(rmap_get(&m, &k.k[1], 1), r);
			rmap_remove(&m, r);
			live[i] = false;
			n_live--;
		} else {
			idx[i] = rmap_add(&m, &k, 0);
			assert_int_not_equal(idx[i], RCPT_NONE);
			m.e[idx[i]].u.delivery_id = i;
			live[i] = true;
			n_live++;
		}
		assert_int_equal(m.n, n_live);
		assert_true(m.used * 2 <= m.mask + 1);
	}
	/* the same id twice: the first one added is found first, then the second */
	map_id(7, id, sizeof(id));
	assert_true(id_keys(id, &k));
	uint32_t a = rmap_add(&m, &k, 0), b = rmap_add(&m, &k, 0);
	uint32_t first = rmap_get(&m, &k.k[0], 0);
	assert_true(first == a || (live[7] && first == idx[7]));
	rmap_remove(&m, first);
	assert_int_not_equal(rmap_get(&m, &k.k[0], 0), RCPT_NONE);
	(void)b;
	free(idx);
	free(live);
	rmap_release(&m);
}

static void test_reserve_leaves_room(void **state)
{
	enum { N = 50000 };
	struct rmap m;
	struct id_keys k;
	char id[64];
	assert_int_equal(rmap_init(&m, 16), 0);
	assert_int_equal(rmap_reserve(&m, N), 0);
	const struct rcpt *e = m.e;
	const struct islot *slot = m.slot;
	for (unsigned i = 0; i < N; i++) {
		map_id(i, id, sizeof(id));
		assert_true(id_keys(id, &k));
		assert_int_not_equal(rmap_add(&m, &k, 0), RCPT_NONE);
	}
	assert_ptr_equal(m.e, e); /* nothing grew */
	assert_ptr_equal(m.slot, slot);
	for (unsigned i = 0; i < N; i += 997) {
		map_id(i, id, sizeof(id));
		assert_true(id_keys(id, &k));
		assert_int_not_equal(rmap_get(&m, &k.k[0], -1), RCPT_NONE);
	}
	rmap_release(&m);
}

/* A receipt naming the hex reading of a decimal submit id finds it (pending_find's order). */
static void test_pending_find_either_reading(void **state)
{
	struct smpp_account *a = acct_new("t", 16, 1000);
	assert_non_null(a);
	struct id_keys sub, rc;
	assert_true(id_keys("1000255", &sub));
	uint32_t r = rmap_add(&a->pending, &sub, 0);
	a->pending.e[r].u.delivery_id = 42;
	assert_true(id_keys("F433F", &rc)); /* 1000255 in hex, upper case */
	assert_int_equal(pending_find(a, &rc), r);
	assert_true(id_keys("0f431f", &rc)); /* 1000223: a different id */
	assert_int_equal(pending_find(a, &rc), RCPT_NONE);
	assert_true(id_keys("000F423F", &rc)); /* 999999: no */
	assert_int_equal(pending_find(a, &rc), RCPT_NONE);
	assert_true(id_keys("1000255", &rc));
	assert_int_equal(pending_find(a, &rc), r);
	assert_true(id_keys("0001000255", &rc)); /* leading zeros */
	assert_int_equal(pending_find(a, &rc), r);
	acct_free(a);
}

/*
 * The dispatcher's hint: the index stays at its first size while few ids
 * wait (receipts keeping pace), then grows once, straight to the size for
 * the hint, and keeps finding everything.
 */
static void test_hint_grows_once(void **state)
{
	enum { HINT = 20000, FEW = 500 };
	struct rmap m;
	struct id_keys k;
	char id[64];
	assert_int_equal(rmap_init(&m, 4096), 0);
	assert_int_equal(rmap_entries_reserve(&m, HINT), 0);
	m.hint = HINT;
	for (unsigned i = 0; i < 10 * FEW; i++) { /* add and remove: at most FEW waiting */
		map_id(i, id, sizeof(id));
		assert_true(id_keys(id, &k));
		assert_int_not_equal(rmap_add(&m, &k, 0), RCPT_NONE);
		if (i >= FEW) {
			map_id(i - FEW, id, sizeof(id));
			assert_true(id_keys(id, &k));
			uint32_t r = rmap_get(&m, &k.k[0], 0);
			assert_int_not_equal(r, RCPT_NONE);
			rmap_remove(&m, r);
		}
	}
	assert_int_equal(m.mask + 1, 4096);
	for (unsigned i = 10 * FEW; i < HINT; i++) { /* receipts lag: everything waits */
		map_id(i, id, sizeof(id));
		assert_true(id_keys(id, &k));
		assert_int_not_equal(rmap_add(&m, &k, 0), RCPT_NONE);
	}
	assert_true(m.mask + 1 >= 4 * (size_t)HINT);
	assert_true(m.mask + 1 < 8 * (size_t)HINT);
	for (unsigned i = 9 * FEW; i < HINT; i++) {
		map_id(i, id, sizeof(id));
		assert_true(id_keys(id, &k));
		assert_int_not_equal(rmap_get(&m, &k.k[0], 0), RCPT_NONE);
	}
	rmap_release(&m);
}

/*
 * A decimal submit id and a receipt naming it in hex without a letter
 * ("1048576" = 0x100000): the receipt's other reading is the submit id's
 * primary one. Found from either side (pending map and early map), and a
 * receipt that is the submit id itself still wins over the hex reading.
 */
static void test_hex_receipt_without_letters(void **state)
{
	struct smpp_account *a = acct_new("t", 16, 1000);
	assert_non_null(a);
	struct id_keys sub, rc, other;
	assert_true(id_keys("1048576", &sub));
	assert_true(id_keys("100000", &rc));
	uint32_t r = rmap_add(&a->pending, &sub, 0);
	a->pending.e[r].u.delivery_id = 7;
	assert_int_equal(pending_find(a, &rc), r);
	assert_true(id_keys("100000", &other)); /* a decimal submit id 100000 as well: it wins */
	uint32_t o = rmap_add(&a->pending, &other, 0);
	assert_int_equal(pending_find(a, &rc), o);
	rmap_remove(&a->pending, o);
	assert_int_equal(pending_find(a, &rc), r);
	/* the receipt first (early), then its submit_sm_resp */
	early_add(a, &rc, SMPP_STATE_DELIVERED, 0);
	uint32_t e = early_find(a, &sub);
	assert_int_not_equal(e, RCPT_NONE);
	assert_int_equal(a->early.map.e[e].state, SMPP_STATE_DELIVERED);
	early_forget(a, e);
	assert_int_equal(a->early.waiting, 0);
	acct_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_readings_agree_with_canon),
		cmocka_unit_test(test_map_against_model),
		cmocka_unit_test(test_reserve_leaves_room),
		cmocka_unit_test(test_pending_find_either_reading),
		cmocka_unit_test(test_hex_receipt_without_letters),
		cmocka_unit_test(test_hint_grows_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
