/*
 * engine/lane.c: priority queue, token bucket, window and pause of a lane
 * (see lane.h). The queue is a binary min-heap on (prio, seq); each
 * delivery remembers its slot so retraction and removal are O(log n).
 */
#include "lane.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double lane_latency_buckets[16] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
					 2.5,   5,    10,    30,   60,  120, 300, INFINITY};

void lane_init(struct lane *l, const char *name, enum channel ch, double rate, double burst,
	       unsigned window, uint64_t now_ms)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->channel = ch;
	l->rate = rate;
	l->burst = burst > 0 ? burst : (rate > 0 ? rate : 1);
	l->window = window ? window : 1;
	l->tokens = l->burst;
	l->refill_ms = now_ms;
}

void lane_release(struct lane *l)
{
	free(l->heap);
	l->heap = NULL;
	l->n = l->cap = 0;
}

static bool before(const struct delivery *a, const struct delivery *b)
{
	return a->prio != b->prio ? a->prio < b->prio : a->seq < b->seq;
}

static void place(struct lane *l, size_t i, struct delivery *d)
{
	l->heap[i] = d;
	d->heap_slot = i + 1;
}

static void sift_up(struct lane *l, size_t i)
{
	struct delivery *d = l->heap[i];
	while (i > 0 && before(d, l->heap[(i - 1) / 2])) {
		place(l, i, l->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	place(l, i, d);
}

static void sift_down(struct lane *l, size_t i)
{
	struct delivery *d = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->n)
			break;
		if (c + 1 < l->n && before(l->heap[c + 1], l->heap[c]))
			c++;
		if (!before(l->heap[c], d))
			break;
		place(l, i, l->heap[c]);
		i = c;
	}
	place(l, i, d);
}

int lane_push(struct lane *l, struct delivery *d)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct delivery **h = realloc(l->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->cap = cap;
	}
	d->lane = l;
	d->state = DELIVERY_QUEUED;
	place(l, l->n++, d);
	sift_up(l, l->n - 1);
	l->stats.queued++;
	return 0;
}

size_t lane_queued(const struct lane *l)
{
	return l->n;
}

static void remove_at(struct lane *l, size_t i)
{
	struct delivery *d = l->heap[i];
	d->heap_slot = 0;
	struct delivery *last = l->heap[--l->n];
	if (i == l->n)
		return;
	place(l, i, last);
	sift_up(l, i);
	sift_down(l, last->heap_slot - 1);
}

static void refill(struct lane *l, uint64_t now_ms)
{
	if (now_ms <= l->refill_ms)
		return;
	l->tokens += l->rate * (double)(now_ms - l->refill_ms) / 1000.0;
	if (l->tokens > l->burst)
		l->tokens = l->burst;
	l->refill_ms = now_ms;
}

bool lane_paused(const struct lane *l, uint64_t now_ms)
{
	return now_ms < l->paused_until_ms;
}

struct delivery *lane_take(struct lane *l, uint64_t now_ms)
{
	if (l->n == 0 || l->down || lane_paused(l, now_ms) || l->inflight >= l->window)
		return NULL;
	struct delivery *d = l->heap[0];
	double cost = d->parts ? d->parts : 1;
	if (l->rate > 0) {
		refill(l, now_ms);
		/* A message larger than the burst may still go once the bucket is full. */
		if (l->tokens < cost && l->tokens < l->burst)
			return NULL;
		l->tokens -= cost;
	}
	remove_at(l, 0);
	l->inflight++;
	return d;
}

void lane_done(struct lane *l)
{
	if (l->inflight)
		l->inflight--;
}

void lane_pause(struct lane *l, uint64_t until_ms, const char *reason)
{
	if (until_ms > l->paused_until_ms)
		l->paused_until_ms = until_ms;
	snprintf(l->pause_reason, sizeof(l->pause_reason), "%s", reason);
	l->stats.throttled++;
}

size_t lane_retract(struct lane *l, bool (*match)(const struct delivery *d, void *arg), void *arg,
		    void (*out)(struct delivery *d, void *arg), void *arg2)
{
	/* One pass to filter, then rebuild the heap: O(n) even for a million entries. */
	size_t kept = 0, removed = 0;
	for (size_t i = 0; i < l->n; i++) {
		struct delivery *d = l->heap[i];
		if (match(d, arg)) {
			d->heap_slot = 0;
			out(d, arg2);
			removed++;
		} else {
			place(l, kept++, d);
		}
	}
	l->n = kept;
	for (size_t i = kept / 2; i-- > 0;)
		sift_down(l, i);
	return removed;
}

uint64_t lane_next_ready_ms(struct lane *l, uint64_t now_ms)
{
	if (l->n == 0 || l->down || l->inflight >= l->window)
		return UINT64_MAX;
	if (lane_paused(l, now_ms))
		return l->paused_until_ms;
	if (l->rate <= 0)
		return now_ms;
	refill(l, now_ms);
	double cost = l->heap[0]->parts ? l->heap[0]->parts : 1;
	if (cost > l->burst)
		cost = l->burst;
	if (l->tokens >= cost)
		return now_ms;
	return now_ms + (uint64_t)ceil((cost - l->tokens) * 1000.0 / l->rate);
}

void lane_observe(uint64_t hist[16], double *sum, uint64_t *count, double seconds)
{
	for (int i = 0; i < 16; i++)
		if (seconds <= lane_latency_buckets[i]) {
			hist[i]++;
			break;
		}
	*sum += seconds;
	(*count)++;
}
