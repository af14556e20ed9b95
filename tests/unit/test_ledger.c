/*
 * tests/unit/test_ledger.c: people-weighted coverage: accepted is never
 * reached, overlapping addresses count a household once, terminals cover
 * their building or community, failures, per-channel and per-community
 * totals, time to 90%, and reserved households.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
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

/*
 * Terminals only, checked against a model after every step: a household is
 * reached when a terminal covering it (its building's or its community's)
 * played, pending while one is not final, failed when all covering
 * terminals failed, untargeted when none covers it. Random orders of plans
 * and outcomes over several terminals per segment, households arriving
 * before and after the first terminal: the ledger skips its walk over a
 * segment's households whenever no class can change, and must still agree.
 */
#define M_SEGS 3  /* community, building 1, building 2 */
#define M_TERMS 9
#define M_HH 7

static void test_terminal_steps_match_model(void **state)
{
	(void)state;
	unsigned seed = 12345;
	for (int round = 0; round < 300; round++) {
		struct ledger l;
		ledger_init(&l, 0);
		uint32_t seg[M_SEGS];
		seg[0] = ledger_segment(&l, "C", LEDGER_COMMUNITY, 0, LEDGER_NONE);
		seg[1] = ledger_segment(&l, "C1", LEDGER_BUILDING, 0, seg[0]);
		seg[2] = ledger_segment(&l, "C2", LEDGER_BUILDING, 0, seg[0]);
		int t_seg[M_TERMS], t_state[M_TERMS]; /* -1 not planned, else Q/S/A/D/F */
		int hh_bld[M_HH], persons[M_HH], n_hh = 0;
		for (int t = 0; t < M_TERMS; t++) {
			seed = seed * 1103515245u + 12345u;
			t_seg[t] = (int)((seed >> 16) % M_SEGS);
			t_state[t] = -1;
		}
		for (int step = 0; step < 60; step++) {
			seed = seed * 1103515245u + 12345u;
			unsigned r = seed >> 16;
			int t = (int)(r % M_TERMS);
			if (n_hh < M_HH && r % 5 == 0) { /* a household arrives */
				hh_bld[n_hh] = 1 + (int)((r >> 3) % 2);
				persons[n_hh] = 1 + (int)((r >> 5) % 4);
				ledger_household(&l, (uint32_t)persons[n_hh], seg[hh_bld[n_hh]], seg[0]);
				n_hh++;
			} else if (t_state[t] == -1) {
				ledger_plan_terminal(&l, seg[t_seg[t]]);
				t_state[t] = Q;
			} else if (t_state[t] != D && t_state[t] != F) {
				static const int next[] = {[Q] = S, [S] = A, [A] = D};
				int to = (r >> 4) % 4 == 0 ? F : next[t_state[t]];
				ledger_move(&l, LEDGER_NONE, seg[t_seg[t]], CHANNEL_TERMINAL,
					    (enum delivery_state)t_state[t], (enum delivery_state)to,
					    (uint64_t)step);
				t_state[t] = to;
			}
			/* targeted, reached, failed: every household (a household nothing
			   covers is failed), and the terminal channel's (covered ones only) */
			uint64_t all[3] = {0}, term[3] = {0};
			for (int h = 0; h < n_hh; h++) {
				bool cov = false, reached = false, pend = false;
				for (int k = 0; k < M_TERMS; k++) {
					if (t_state[k] < 0 || (t_seg[k] != 0 && t_seg[k] != hh_bld[h]))
						continue;
					cov = true;
					reached |= t_state[k] == D;
					pend |= t_state[k] != D && t_state[k] != F;
				}
				uint64_t p = (uint64_t)persons[h];
				uint64_t v[3] = {p, reached ? p : 0, !reached && !pend ? p : 0};
				for (int i = 0; i < 3; i++) {
					all[i] += v[i];
					term[i] += cov ? v[i] : 0;
				}
			}
			check(&l.total, all[0], all[1], 0, all[2]);
			check(&l.seg[seg[0]].counts, all[0], all[1], 0, all[2]);
			check(&l.channel[CHANNEL_TERMINAL], term[0], term[1], 0, term[2]);
		}
		ledger_release(&l);
	}
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
		cmocka_unit_test(test_terminal_steps_match_model),
		cmocka_unit_test(test_reserve_households),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
