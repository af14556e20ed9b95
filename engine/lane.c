/*
 * engine/lane.c: priority queue, token bucket, window and pause of a lane
 * (see lane.h).
 *
 * The queue is ordered on (prio, seq). Deliveries nearly always arrive in
 * that order (a campaign's deliveries are numbered as they are planned), so
 * the queue is two parts: a ring `run` that takes every entry whose key is
 * not below the ring's last one, in O(1) at both ends, and a binary
 * min-heap for the rest (a more urgent campaign arriving while a lesser one
 * is queued, retries). Taking compares the two heads. The keys are kept
 * inline beside the pointers, so comparisons never chase a pointer into a
 * scattered delivery. Invariants: the ring is nondecreasing in key; every
 * queued delivery is in exactly one of the two, with heap_slot != 0.
 */
#include "lane.h"

#include "bigmem.h"

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
	bigmem_free(l->run);
	l->run = NULL;
	l->run_head = l->run_n = l->run_cap = 0;
	free(l->heap);
	l->heap = NULL;
	l->n = l->cap = 0;
}

static bool before(const struct lane_slot *a, const struct lane_slot *b)
{
	return a->prio != b->prio ? a->prio < b->prio : a->seq < b->seq;
}

static void place(struct lane *l, size_t i, struct lane_slot s)
{
	l->heap[i] = s;
	s.d->heap_slot = i + 1;
}

static struct lane_slot slot_of(struct delivery *d)
{
	return (struct lane_slot){.prio = d->prio, .seq = d->seq, .d = d};
}

static void sift_up(struct lane *l, size_t i)
{
	struct lane_slot s = l->heap[i];
	while (i > 0 && before(&s, &l->heap[(i - 1) / 2])) {
		place(l, i, l->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	place(l, i, s);
}

static void sift_down(struct lane *l, size_t i)
{
	struct lane_slot s = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->n)
			break;
		if (c + 1 < l->n && before(&l->heap[c + 1], &l->heap[c]))
			c++;
		if (!before(&l->heap[c], &s))
			break;
		place(l, i, l->heap[c]);
		i = c;
	}
	place(l, i, s);
}

static struct lane_slot *run_at(const struct lane *l, size_t i)
{
	return &l->run[(l->run_head + i) & (l->run_cap - 1)];
}

/* Grow the ring to at least `cap` slots (a power of two), unwrapped. 0 or -ENOMEM. */
static int run_grow(struct lane *l, size_t cap)
{
	size_t want = l->run_cap ? l->run_cap : 1024;
	while (want < cap)
		want *= 2;
	if (want == l->run_cap)
		return 0;
	struct lane_slot *r = bigmem_calloc(want, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < l->run_n; i++)
		r[i] = *run_at(l, i);
	bigmem_free(l->run);
	l->run = r;
	l->run_cap = want;
	l->run_head = 0;
	return 0;
}

static int run_append(struct lane *l, struct lane_slot s)
{
	if (l->run_n == l->run_cap && run_grow(l, l->run_cap * 2) < 0)
		return -ENOMEM;
	*run_at(l, l->run_n++) = s;
	s.d->heap_slot = SIZE_MAX; /* queued, in the ring */
	return 0;
}

int lane_reserve(struct lane *l, size_t n)
{
	return n > SIZE_MAX / 4 ? -ENOMEM : run_grow(l, l->run_n + n);
}

int lane_warm(struct lane *l, size_t n)
{
	if (n > SIZE_MAX / 4 || run_grow(l, n) < 0)
		return -ENOMEM;
	bigmem_touch(l->run, l->run_cap * sizeof(*l->run));
	return 0;
}

static int heap_push(struct lane *l, struct lane_slot s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct lane_slot *h = realloc(l->heap, cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		l->heap = h;
		l->cap = cap;
	}
	place(l, l->n++, s);
	sift_up(l, l->n - 1);
	return 0;
}

int lane_push(struct lane *l, struct delivery *d)
{
	struct lane_slot s = slot_of(d);
	int r = l->run_n == 0 || !before(&s, run_at(l, l->run_n - 1)) ? run_append(l, s)
								       : heap_push(l, s);
	if (r)
		return r;
	d->lane = l;
	d->state = DELIVERY_QUEUED;
	l->stats.queued++;
	return 0;
}

/* The entry that goes next: the smaller of the ring's and the heap's heads. */
static struct lane_slot *peek(const struct lane *l, bool *from_run)
{
	struct lane_slot *r = l->run_n ? run_at(l, 0) : NULL;
	struct lane_slot *h = l->n ? &l->heap[0] : NULL;
	*from_run = r && (!h || !before(h, r));
	return *from_run ? r : h;
}

size_t lane_queued(const struct lane *l)
{
	return l->n + l->run_n;
}

static void remove_at(struct lane *l, size_t i)
{
	l->heap[i].d->heap_slot = 0;
	struct lane_slot last = l->heap[--l->n];
	if (i == l->n)
		return;
	place(l, i, last);
	sift_up(l, i);
	sift_down(l, last.d->heap_slot - 1);
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
	if (lane_queued(l) == 0 || l->down || lane_paused(l, now_ms) || l->inflight >= l->window)
		return NULL;
	bool from_run;
	struct delivery *d = peek(l, &from_run)->d;
	double cost = d->parts ? d->parts : 1;
	if (l->rate > 0) {
		refill(l, now_ms);
		/* A message larger than the burst may still go once the bucket is full. */
		if (l->tokens < cost && l->tokens < l->burst)
			return NULL;
		l->tokens -= cost;
	}
	if (from_run) {
		l->run_head = (l->run_head + 1) & (l->run_cap - 1);
		l->run_n--;
		d->heap_slot = 0;
	} else {
		remove_at(l, 0);
	}
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
	/* One pass over each part to filter (the ring stays in order), then
	 * rebuild the heap: O(n) even for a million entries. */
	size_t kept = 0, removed = 0;
	for (size_t i = 0; i < l->run_n; i++) {
		struct lane_slot s = *run_at(l, i);
		if (match(s.d, arg)) {
			s.d->heap_slot = 0;
			out(s.d, arg2);
			removed++;
		} else {
			*run_at(l, kept++) = s;
		}
	}
	l->run_n = kept;
	kept = 0;
	for (size_t i = 0; i < l->n; i++) {
		struct delivery *d = l->heap[i].d;
		if (match(d, arg)) {
			d->heap_slot = 0;
			out(d, arg2);
			removed++;
		} else {
			place(l, kept++, l->heap[i]);
		}
	}
	l->n = kept;
	for (size_t i = kept / 2; i-- > 0;)
		sift_down(l, i);
	return removed;
}

uint64_t lane_next_ready_ms(struct lane *l, uint64_t now_ms)
{
	if (lane_queued(l) == 0 || l->down || l->inflight >= l->window)
		return UINT64_MAX;
	if (lane_paused(l, now_ms))
		return l->paused_until_ms;
	if (l->rate <= 0)
		return now_ms;
	refill(l, now_ms);
	bool from_run;
	const struct delivery *head = peek(l, &from_run)->d;
	double cost = head->parts ? head->parts : 1;
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
