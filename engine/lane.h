/*
 * engine/lane.h: a lane is one (channel, provider account or bind).
 *
 * It has a queue ordered by priority (lower `prio` first, then FIFO), a
 * token bucket (rate per second and burst, counted in *parts*, so a
 * three-part SMS costs three tokens), an in-flight window, and a
 * paused-until time set when the provider throttles us. A paused lane keeps
 * its order: nothing is taken out of the queue while it is paused.
 *
 * Pure data structure: no I/O, the caller passes the monotonic clock in
 * milliseconds. The dispatcher owns lanes and calls lane_take() in its
 * scheduling step; adapters never touch the queue.
 */
#ifndef TOCSIN_LANE_H
#define TOCSIN_LANE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery.h"

struct lane_stats {
	uint64_t queued, sent, accepted, delivered, failed, expired, cancelled;
	uint64_t throttled, retries, parts_sent;
	/* latency histograms (ms buckets, see lane_latency_buckets) */
	uint64_t first_send_hist[16], receipt_hist[16];
	double first_send_sum_s, receipt_sum_s;
	uint64_t first_send_count, receipt_count;
};

/* A queue entry: the delivery's ordering key kept beside it (see lane.c). */
struct lane_slot {
	uint32_t prio;
	uint64_t seq;
	struct delivery *d;
};

struct lane {
	char name[64];
	enum channel channel;
	uint8_t platform;          /* for CHANNEL_APP lanes: which tokens it takes */
	double rate;               /* tokens per second; 0 = unlimited */
	double burst;              /* bucket size */
	unsigned window;           /* max in flight */
	double tokens;
	uint64_t refill_ms;
	unsigned inflight;
	uint64_t paused_until_ms;
	char pause_reason[96];
	bool down;                 /* the adapter has no usable connection */
	/* The queue (see lane.c): `run` is a ring of entries in key order,
	 * `heap` a min-heap of the entries that arrived out of order. */
	struct lane_slot *run;
	size_t run_head, run_n, run_cap;
	struct lane_slot *heap;
	size_t n, cap;
	struct lane_stats stats;
	const struct adapter_ops *adapter;
	void *adapter_state;
	struct lane *next;         /* the dispatcher's list */
};

extern const double lane_latency_buckets[16]; /* upper bounds, seconds; last is +Inf */

/* rate 0 means unlimited (no token accounting). */
void lane_init(struct lane *l, const char *name, enum channel ch, double rate, double burst,
	       unsigned window, uint64_t now_ms);
void lane_release(struct lane *l);

/* Queue a delivery. 0 or -ENOMEM. */
int lane_push(struct lane *l, struct delivery *d);
size_t lane_queued(const struct lane *l);
/* Room for n more in-order deliveries without growing (a sizing hint). 0 or -ENOMEM. */
int lane_reserve(struct lane *l, size_t n);
/* Room for n queued deliveries in all, every page of it faulted in now. 0 or -ENOMEM. */
int lane_warm(struct lane *l, size_t n);

/*
 * The next delivery that may go now, or NULL: when paused, down, at the
 * window, out of tokens, or empty. Taking it spends its parts' tokens and
 * one window slot.
 */
struct delivery *lane_take(struct lane *l, uint64_t now_ms);

/* A taken delivery's window slot is free again (answered, failed or given up). */
void lane_done(struct lane *l);

/* Throttled: nothing leaves until `until_ms`; the order is kept. */
void lane_pause(struct lane *l, uint64_t until_ms, const char *reason);
bool lane_paused(const struct lane *l, uint64_t now_ms);

/* Remove every queued delivery for which match(d, arg) is true; returns them via out(d, arg2). */
size_t lane_retract(struct lane *l, bool (*match)(const struct delivery *d, void *arg), void *arg,
		    void (*out)(struct delivery *d, void *arg), void *arg2);

/* When lane_take could next succeed (0: now or never-by-time; UINT64_MAX: idle). */
uint64_t lane_next_ready_ms(struct lane *l, uint64_t now_ms);

/* Add one observation (seconds) to a histogram. */
void lane_observe(uint64_t hist[16], double *sum, uint64_t *count, double seconds);

#endif
