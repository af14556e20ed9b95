/*
 * tests/unit/test_ledger.c: people-weighted coverage: accepted is never
 * reached, overlapping addresses count a household once, terminals cover
 * their building or community, failures, per-channel and per-community
 * totals, time to 90%, and reserved households.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "ledger.h"

#define Q DELIVERY_QUEUED
#define S DELIVERY_SENT
#define A DELIVERY_ACCEPTED
#define D DELIVERY_DELIVERED
#define F DELIVERY_FAILED

static void check(const struct ledger_counts *c, uint64_t t, uint64_t r, uint64_t a, uint64_t f)
{
	assert_int_equal(c->targeted, t);
	assert_int_equal(c->reached, r);
	assert_int_equal(c->accepted, a);
	assert_int_equal(c->failed, f);
}

static void test_coverage(void **state)
{
	struct ledger l;
	ledger_init(&l, 1000);
	uint32_t c1 = ledger_segment(&l, "350102001001", LEDGER_COMMUNITY, 50, LEDGER_NONE);
	uint32_t b1 = ledger_segment(&l, "350102001001B0001", LEDGER_BUILDING, 0, c1);
	uint32_t b2 = ledger_segment(&l, "350102001001B0002", LEDGER_BUILDING, 0, c1);
	assert_int_equal(ledger_segment(&l, "350102001001", LEDGER_COMMUNITY, 50, LEDGER_NONE), c1);
	assert_int_equal(l.census, 50);
	uint32_t ha = ledger_household(&l, 3, b1, c1);
	uint32_t hb = ledger_household(&l, 2, b1, c1);
	uint32_t hc = ledger_household(&l, 4, b2, c1);
	ledger_plan(&l, ha, CHANNEL_SMS);
	ledger_plan(&l, ha, CHANNEL_SMS); /* two phones in one household */
	ledger_plan(&l, hb, CHANNEL_APP);
	ledger_plan_terminal(&l, b2);     /* a display in building 2 covers hc */
	check(&l.total, 9, 0, 0, 0);
	check(&l.channel[CHANNEL_SMS], 3, 0, 0, 0);
	check(&l.channel[CHANNEL_TERMINAL], 4, 0, 0, 0);

	ledger_move(&l, ha, b1, CHANNEL_SMS, Q, S, 1100);
	ledger_move(&l, ha, b1, CHANNEL_SMS, S, A, 1200);
	check(&l.total, 9, 0, 3, 0); /* accepted is not reached */
	ledger_move(&l, ha, b1, CHANNEL_SMS, A, D, 1300);
	check(&l.total, 9, 3, 0, 0);
	ledger_move(&l, ha, b1, CHANNEL_SMS, Q, F, 1400); /* the second phone fails */
	check(&l.total, 9, 3, 0, 0);                      /* the household stays reached */
	check(&l.channel[CHANNEL_SMS], 3, 3, 0, 0);

	ledger_move(&l, hb, b1, CHANNEL_APP, Q, F, 1500);
	check(&l.total, 9, 3, 0, 2);
	check(&l.channel[CHANNEL_APP], 2, 0, 0, 2);

	ledger_move(&l, LEDGER_NONE, b2, CHANNEL_TERMINAL, Q, D, 1600);
	check(&l.total, 9, 7, 0, 2);
	assert_true(ledger_hh_reached_on(&l, hc, CHANNEL_TERMINAL));
	assert_int_equal(l.t90_ms, 0); /* 7 of 9 */

	/* A community speaker covers everybody; hb is reached after all. */
	ledger_plan_terminal(&l, c1);
	check(&l.total, 9, 7, 0, 0); /* hb is pending again, not failed */
	ledger_move(&l, LEDGER_NONE, c1, CHANNEL_TERMINAL, Q, D, 2500);
	check(&l.total, 9, 9, 0, 0);
	check(&l.channel[CHANNEL_TERMINAL], 9, 9, 0, 0);
	check(&l.channel[CHANNEL_APP], 2, 0, 0, 2);
	check(&l.seg[c1].counts, 9, 9, 0, 0);
	assert_int_equal(l.t90_ms, 1500);
	ledger_release(&l);
}

static void test_terminal_failure_fails_uncovered(void **state)
{
	struct ledger l;
	ledger_init(&l, 0);
	uint32_t c1 = ledger_segment(&l, "C1", LEDGER_COMMUNITY, 10, LEDGER_NONE);
	uint32_t b1 = ledger_segment(&l, "C1B1", LEDGER_BUILDING, 0, c1);
	uint32_t h = ledger_household(&l, 5, b1, c1);
	check(&l.total, 5, 0, 0, 5); /* no address, no terminal: failed (unreachable) */
	ledger_plan_terminal(&l, b1);
	check(&l.total, 5, 0, 0, 0);
	ledger_move(&l, LEDGER_NONE, b1, CHANNEL_TERMINAL, Q, S, 10);
	ledger_move(&l, LEDGER_NONE, b1, CHANNEL_TERMINAL, S, F, 20);
	check(&l.total, 5, 0, 0, 5);
	check(&l.channel[CHANNEL_TERMINAL], 5, 0, 0, 5);
	assert_false(ledger_hh_reached(&l, h));
	ledger_release(&l);
}

static void test_many_segments_index(void **state)
{
	struct ledger l;
	ledger_init(&l, 0);
	char id[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "S%d", i);
		assert_int_equal(ledger_segment(&l, id, LEDGER_COMMUNITY, 1, LEDGER_NONE), (uint32_t)i);
	}
	for (int i = 0; i < 5000; i++) {
		snprintf(id, sizeof(id), "S%d", i);
		assert_int_equal(ledger_find_segment(&l, id), (uint32_t)i);
	}
	assert_int_equal(ledger_find_segment(&l, "nope"), LEDGER_NONE);
	assert_int_equal(l.census, 5000);
	ledger_release(&l);
}

static void test_terminal_before_households(void **state)
{
	struct ledger l;
	ledger_init(&l, 0);
	uint32_t c1 = ledger_segment(&l, "C1", LEDGER_COMMUNITY, 10, LEDGER_NONE);
	uint32_t b1 = ledger_segment(&l, "C1B1", LEDGER_BUILDING, 0, c1);
	ledger_plan_terminal(&l, b1); /* the display's list arrived before the households */
	uint32_t h1 = ledger_household(&l, 3, b1, c1);
	check(&l.total, 3, 0, 0, 0);
	check(&l.channel[CHANNEL_TERMINAL], 3, 0, 0, 0);
	ledger_move(&l, LEDGER_NONE, b1, CHANNEL_TERMINAL, Q, D, 5);
	uint32_t h2 = ledger_household(&l, 2, b1, c1); /* arrives after it played */
	check(&l.total, 5, 5, 0, 0);
	assert_true(ledger_hh_reached(&l, h1) && ledger_hh_reached(&l, h2));
	ledger_release(&l);
}

/* Reserved households are added without moving the array, and count as before. */
static void test_reserve_households(void **state)
{
	struct ledger l;
	ledger_init(&l, 0);
	uint32_t c1 = ledger_segment(&l, "C1", LEDGER_COMMUNITY, 100000, LEDGER_NONE);
	uint32_t b1 = ledger_segment(&l, "C1B1", LEDGER_BUILDING, 0, c1);
	assert_int_equal(ledger_household(&l, 2, b1, c1), 0);
	ledger_plan(&l, 0, CHANNEL_SMS);
	assert_int_equal(ledger_reserve(&l, 50000), 0);
	const struct ledger_household *hh = l.hh;
	assert_true(l.cap_hh >= 50001);
	for (uint32_t i = 1; i <= 50000; i++) {
		assert_int_equal(ledger_household(&l, 1, b1, c1), i);
		ledger_plan(&l, i, CHANNEL_SMS);
	}
	assert_ptr_equal(l.hh, hh);
	assert_int_equal(ledger_reserve(&l, 0), 0);
	check(&l.total, 50002, 0, 0, 0);
	ledger_move(&l, 0, b1, CHANNEL_SMS, Q, D, 1);
	check(&l.total, 50002, 2, 0, 0);
	ledger_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_coverage),
		cmocka_unit_test(test_terminal_failure_fails_uncovered),
		cmocka_unit_test(test_many_segments_index),
		cmocka_unit_test(test_terminal_before_households),
		cmocka_unit_test(test_reserve_households),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
