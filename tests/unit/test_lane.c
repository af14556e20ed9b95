/*
 * tests/unit/test_lane.c: lane queue order, token bucket accuracy, window,
 * pause keeping order, parts cost, retraction, readiness times, and a
 * reservation that keeps the order and leaves room.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "lane.h"

static struct delivery *mk(uint32_t prio, uint64_t seq, uint16_t parts)
{
	struct delivery *d = calloc(1, sizeof(*d));
	d->prio = prio;
	d->seq = seq;
	d->parts = parts;
	return d;
}

static void test_red_overtakes_blue(void **state)
{
	struct lane l;
	lane_init(&l, "sms-1", CHANNEL_SMS, 0, 0, 100, 0);
	struct delivery *blue[3], *red;
	for (int i = 0; i < 3; i++)
		lane_push(&l, blue[i] = mk(400, i, 1));
	lane_push(&l, red = mk(100, 10, 1));
	assert_ptr_equal(lane_take(&l, 0), red);
	for (int i = 0; i < 3; i++)
		assert_ptr_equal(lane_take(&l, 0), blue[i]); /* FIFO within a priority */
	assert_null(lane_take(&l, 0));
	for (int i = 0; i < 3; i++)
		free(blue[i]);
	free(red);
	lane_release(&l);
}

static void test_token_bucket_rate(void **state)
{
	struct lane l;
	lane_init(&l, "sms-1", CHANNEL_SMS, 10, 5, 1000000, 0);
	struct delivery *ds = calloc(1000, sizeof(*ds));
	for (int i = 0; i < 1000; i++) {
		ds[i].seq = i;
		ds[i].parts = 1;
		lane_push(&l, &ds[i]);
	}
	int taken = 0;
	while (lane_take(&l, 0))
		taken++;
	assert_int_equal(taken, 5); /* the burst */
	assert_int_equal(lane_next_ready_ms(&l, 0), 100);
	for (uint64_t t = 1; t <= 30000; t++) /* 30 simulated seconds, 1 ms steps */
		while (lane_take(&l, t))
			taken++;
	assert_int_equal(taken, 5 + 300);
	free(ds);
	lane_release(&l);
}

static void test_parts_cost_tokens(void **state)
{
	struct lane l;
	lane_init(&l, "sms-1", CHANNEL_SMS, 10, 4, 100, 0);
	struct delivery *a = mk(1, 1, 3), *b = mk(1, 2, 3);
	lane_push(&l, a);
	lane_push(&l, b);
	assert_ptr_equal(lane_take(&l, 0), a); /* 4 - 3 = 1 token left */
	assert_null(lane_take(&l, 0));
	assert_int_equal(lane_next_ready_ms(&l, 0), 200);
	assert_null(lane_take(&l, 199));
	assert_ptr_equal(lane_take(&l, 200), b);
	free(a);
	free(b);
	lane_release(&l);
}

static void test_window(void **state)
{
	struct lane l;
	lane_init(&l, "app-1", CHANNEL_APP, 0, 0, 2, 0);
	struct delivery *d[3] = {mk(1, 1, 1), mk(1, 2, 1), mk(1, 3, 1)};
	for (int i = 0; i < 3; i++)
		lane_push(&l, d[i]);
	assert_non_null(lane_take(&l, 0));
	assert_non_null(lane_take(&l, 0));
	assert_null(lane_take(&l, 0));
	assert_int_equal(lane_next_ready_ms(&l, 0), UINT64_MAX);
	lane_done(&l);
	assert_ptr_equal(lane_take(&l, 0), d[2]);
	for (int i = 0; i < 3; i++)
		free(d[i]);
	lane_release(&l);
}

static void test_pause_keeps_order(void **state)
{
	struct lane l;
	lane_init(&l, "sms-1", CHANNEL_SMS, 0, 0, 100, 0);
	struct delivery *d[4];
	for (int i = 0; i < 4; i++)
		lane_push(&l, d[i] = mk(1, i, 1));
	assert_ptr_equal(lane_take(&l, 0), d[0]);
	lane_pause(&l, 1000, "ESME_RTHROTTLED");
	assert_true(lane_paused(&l, 999));
	assert_null(lane_take(&l, 500));
	assert_int_equal(lane_next_ready_ms(&l, 500), 1000);
	assert_int_equal(lane_queued(&l), 3);
	for (int i = 1; i < 4; i++)
		assert_ptr_equal(lane_take(&l, 1000), d[i]);
	assert_int_equal(l.stats.throttled, 1);
	for (int i = 0; i < 4; i++)
		free(d[i]);
	lane_release(&l);
}

static bool is_odd(const struct delivery *d, void *arg)
{
	return d->seq % 2;
}

static void collect(struct delivery *d, void *arg)
{
	(*(int *)arg)++;
	d->state = DELIVERY_CANCELLED;
}

static void test_retract(void **state)
{
	struct lane l;
	lane_init(&l, "sms-1", CHANNEL_SMS, 0, 0, 100000, 0);
	struct delivery *ds = calloc(10000, sizeof(*ds));
	for (int i = 0; i < 10000; i++) {
		ds[i].seq = i;
		ds[i].prio = (uint32_t)(i % 7);
		lane_push(&l, &ds[i]);
	}
	int out = 0;
	assert_int_equal(lane_retract(&l, is_odd, NULL, collect, &out), 5000);
	assert_int_equal(out, 5000);
	assert_int_equal(lane_queued(&l), 5000);
	struct delivery *prev = NULL, *d;
	while ((d = lane_take(&l, 0))) { /* still a valid heap: nondecreasing (prio, seq) */
		assert_int_equal(d->seq % 2, 0);
		if (prev)
			assert_true(prev->prio < d->prio || (prev->prio == d->prio && prev->seq < d->seq));
		prev = d;
	}
	free(ds);
	lane_release(&l);
}

/* Against a linear-scan model: pushes mostly in order (the ring), some out
 * of order (the heap), takes interleaved so the ring wraps and grows. */
static void test_ring_and_heap_agree_with_model(void **state)
{
	enum { N = 20000 };
	struct lane l;
	lane_init(&l, "sms-3", CHANNEL_SMS, 0, 0, N + 1, 0);
	struct delivery *ds = calloc(N, sizeof(*ds));
	bool *queued = calloc(N, sizeof(*queued));
	uint32_t rng = 12345;
	size_t pushed = 0, n_queued = 0;
	uint32_t prio = 3;
	for (int step = 0; step < 3 * N; step++) {
		rng = rng * 1103515245u + 12345u;
		unsigned r = (rng >> 16) % 100;
		if (pushed < N && r < 60) {
			struct delivery *d = &ds[pushed];
			d->seq = pushed;
			if (r < 5) /* now and then a more urgent (or lesser) campaign */
				prio = (rng >> 8) % 7;
			d->prio = prio;
			assert_int_equal(lane_push(&l, d), 0);
			queued[pushed++] = true;
			n_queued++;
		} else if (n_queued) {
			struct delivery *best = NULL;
			for (size_t i = 0; i < pushed; i++)
				if (queued[i] && (!best || ds[i].prio < best->prio ||
						  (ds[i].prio == best->prio && ds[i].seq < best->seq)))
					best = &ds[i];
			struct delivery *d = lane_take(&l, 0);
			assert_ptr_equal(d, best);
			assert_int_equal(d->heap_slot, 0);
			queued[d->seq] = false;
			n_queued--;
			lane_done(&l);
		}
		assert_int_equal(lane_queued(&l), n_queued);
	}
	free(queued);
	free(ds);
	lane_release(&l);
}

static void test_down_lane_sends_nothing(void **state)
{
	struct lane l;
	lane_init(&l, "sms-2", CHANNEL_SMS, 0, 0, 10, 0);
	struct delivery *d = mk(1, 1, 1);
	lane_push(&l, d);
	l.down = true;
	assert_null(lane_take(&l, 0));
	l.down = false;
	assert_ptr_equal(lane_take(&l, 0), d);
	free(d);
	lane_release(&l);
}

/* A reservation made while the ring has wrapped keeps the order, and nothing grows after it. */
static void test_reserve_keeps_order_and_room(void **state)
{
	enum { FIRST = 1500, TAKEN = 1200, MORE = 70000 };
	struct lane l;
	lane_init(&l, "sms-4", CHANNEL_SMS, 0, 0, FIRST + MORE + 1, 0);
	struct delivery *ds = calloc(FIRST + MORE, sizeof(*ds));
	for (size_t i = 0; i < FIRST + MORE; i++)
		ds[i].seq = i;
	for (size_t i = 0; i < FIRST; i++)
		assert_int_equal(lane_push(&l, &ds[i]), 0);
	for (size_t i = 0; i < TAKEN; i++) {
		assert_ptr_equal(lane_take(&l, 0), &ds[i]);
		lane_done(&l);
	}
	for (size_t i = 0; i < TAKEN / 2; i++) /* the ring wraps: head is past its start */
		assert_int_equal(lane_push(&l, &ds[FIRST + i]), 0);
	assert_int_equal(lane_reserve(&l, MORE), 0);
	const struct lane_slot *run = l.run;
	assert_true(l.run_cap >= l.run_n + MORE);
	for (size_t i = TAKEN / 2; i < MORE; i++)
		assert_int_equal(lane_push(&l, &ds[FIRST + i]), 0);
	assert_ptr_equal(l.run, run); /* reserved: the ring never grew */
	for (size_t i = TAKEN; i < FIRST + MORE; i++) {
		assert_ptr_equal(lane_take(&l, 0), &ds[i]);
		lane_done(&l);
	}
	assert_null(lane_take(&l, 0));
	assert_int_equal(lane_reserve(&l, 0), 0);
	free(ds);
	lane_release(&l);
}

/* Warming a lane that holds queued deliveries (wrapped ring) keeps them, in order. */
static void test_warm_keeps_what_is_queued(void **state)
{
	(void)state;
	enum { N = 3000, TAKEN = 1000, WARM = 20000 };
	struct lane l;
	lane_init(&l, "sms-5", CHANNEL_SMS, 0, 0, N + 1, 0);
	struct delivery *ds = calloc(N + TAKEN, sizeof(*ds));
	for (size_t i = 0; i < N + TAKEN; i++)
		ds[i].seq = i;
	for (size_t i = 0; i < N; i++)
		assert_int_equal(lane_push(&l, &ds[i]), 0);
	for (size_t i = 0; i < TAKEN; i++) {
		assert_ptr_equal(lane_take(&l, 0), &ds[i]);
		lane_done(&l);
	}
	for (size_t i = N; i < N + TAKEN; i++) /* wraps */
		assert_int_equal(lane_push(&l, &ds[i]), 0);
	assert_int_equal(lane_warm(&l, 10), 0); /* no growth: touched in place */
	assert_int_equal(lane_warm(&l, WARM), 0);
	assert_true(l.run_cap >= WARM);
	for (size_t i = TAKEN; i < N + TAKEN; i++) {
		assert_ptr_equal(lane_take(&l, 0), &ds[i]);
		lane_done(&l);
	}
	assert_null(lane_take(&l, 0));
	free(ds);
	lane_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_red_overtakes_blue), cmocka_unit_test(test_token_bucket_rate),
		cmocka_unit_test(test_parts_cost_tokens),  cmocka_unit_test(test_window),
		cmocka_unit_test(test_pause_keeps_order),  cmocka_unit_test(test_retract),
		cmocka_unit_test(test_down_lane_sends_nothing),
		cmocka_unit_test(test_ring_and_heap_agree_with_model),
		cmocka_unit_test(test_reserve_keeps_order_and_room),
		cmocka_unit_test(test_warm_keeps_what_is_queued),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
