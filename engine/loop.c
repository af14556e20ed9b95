/*
 * engine/loop.c: the io_uring loop and its timer heap (see loop.h).
 *
 * Loop iteration, in order: submit what is queued and wait (bounded by the
 * earliest timer), dispatch every completion, then fire due timers. Owners
 * free their objects only from their own callbacks, never while a CQE for
 * them can still arrive.
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t loop_wall_s(void)
{
	return (int64_t)time(NULL);
}

uint64_t loop_now_ms(const struct loop *l)
{
	return l->now_ms;
}

int loop_init(struct loop *l, unsigned entries)
{
	memset(l, 0, sizeof(*l));
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
	int ret = io_uring_queue_init_params(entries, &l->ring, &p);
	if (ret == -EINVAL) { /* older kernels: no SUBMIT_ALL / COOP_TASKRUN */
		memset(&p, 0, sizeof(p));
		ret = io_uring_queue_init_params(entries, &l->ring, &p);
	}
	if (ret < 0)
		return ret;
	l->now_ms = mono_ms();
	return 0;
}

void loop_release(struct loop *l)
{
	io_uring_queue_exit(&l->ring);
	free(l->heap);
	l->heap = NULL;
	l->n_timers = l->cap_timers = 0;
}

struct io_uring_sqe *loop_sqe(struct loop *l, struct op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&l->ring);
	while (!sqe) {
		io_uring_submit(&l->ring);
		sqe = io_uring_get_sqe(&l->ring);
	}
	io_uring_sqe_set_data(sqe, op);
	return sqe;
}

/* --- timer heap --- */

static void heap_place(struct loop *l, size_t i, struct timer *t)
{
	l->heap[i] = t;
	t->slot = i + 1;
}

static void heap_up(struct loop *l, size_t i)
{
	struct timer *t = l->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (l->heap[parent]->deadline_ms <= t->deadline_ms)
			break;
		heap_place(l, i, l->heap[parent]);
		i = parent;
	}
	heap_place(l, i, t);
}

static void heap_down(struct loop *l, size_t i)
{
	struct timer *t = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->n_timers)
			break;
		if (c + 1 < l->n_timers && l->heap[c + 1]->deadline_ms < l->heap[c]->deadline_ms)
			c++;
		if (t->deadline_ms <= l->heap[c]->deadline_ms)
			break;
		heap_place(l, i, l->heap[c]);
		i = c;
	}
	heap_place(l, i, t);
}

void loop_timer_cancel(struct loop *l, struct timer *t)
{
	if (!t->slot)
		return;
	size_t i = t->slot - 1;
	t->slot = 0;
	struct timer *last = l->heap[--l->n_timers];
	if (i == l->n_timers)
		return;
	heap_place(l, i, last);
	heap_up(l, i);
	heap_down(l, last->slot - 1);
}

void loop_timer_set(struct loop *l, struct timer *t, uint64_t ms, timer_cb cb)
{
	loop_timer_cancel(l, t);
	if (l->n_timers == l->cap_timers) {
		size_t cap = l->cap_timers ? l->cap_timers * 2 : 64;
		struct timer **h = realloc(l->heap, cap * sizeof(*h));
		if (!h) { /* out-of-memory policy: abort loudly rather than lose a deadline */
			log_error("msg=\"timer heap allocation failed\"");
			abort();
		}
		l->heap = h;
		l->cap_timers = cap;
	}
	t->deadline_ms = l->now_ms + ms;
	t->cb = cb;
	heap_place(l, l->n_timers++, t);
	heap_up(l, l->n_timers - 1);
}

static void run_timers(struct loop *l)
{
	while (l->n_timers && l->heap[0]->deadline_ms <= l->now_ms) {
		struct timer *t = l->heap[0];
		loop_timer_cancel(l, t);
		t->cb(t);
	}
}

/* --- the loop body --- */

static void reap(struct loop *l)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		struct op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		uint32_t flags = cqe->flags;
		n++;
		if (op) /* NULL: a fire-and-forget request (cancel, close) */
			op->cb(op, res, flags);
	}
	io_uring_cq_advance(&l->ring, n);
}

void loop_run_once(struct loop *l, int max_wait_ms)
{
	uint64_t wait = max_wait_ms < 0 ? 1000 : (uint64_t)max_wait_ms;
	if (l->n_timers) {
		uint64_t d = l->heap[0]->deadline_ms;
		wait = d <= l->now_ms ? 0 : (d - l->now_ms < wait ? d - l->now_ms : wait);
	}
	struct __kernel_timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
	struct io_uring_cqe *cqe;
	int ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		log_warn("msg=\"io_uring wait failed\" err=%d", ret);
	l->now_ms = mono_ms();
	reap(l);
	l->now_ms = mono_ms();
	run_timers(l);
}
