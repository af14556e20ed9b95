/*
 * engine/loop.c: the io_uring loop and its timer heap (see loop.h).
 *
 * Loop iteration, in order: submit what is queued and wait (bounded by the
 * earliest timer), dispatch every completion, then fire due timers. Owners
 * free their objects only from their own callbacks, never while a CQE for
 * them can still arrive.
 *
 * Polling: see loop.h. It runs only when the wait would block (no due
 * timer), so a due timer never waits for it.
 *
 * Extra rings: before the wait, each extra ring with queued SQEs is
 * submitted; after it, the main ring's CQEs are dispatched, then each extra
 * ring's. The main ring always has an 8-byte read armed on each extra
 * ring's eventfd, so a completion there ends the wait; the kernel signals
 * the eventfd whenever new CQEs were posted since its last signal, so no
 * wake-up is lost. A closed ring is marked dead, exited at the end of the
 * iteration, and unlinked and freed when its eventfd read comes back
 * cancelled (loop_release frees whatever is left).
 *
 * Extra rings' inbound work (loop.h): an extra ring's eventfd also fires
 * when task work is first queued on it (the kernel signals it then), which
 * marks the ring `woken`. Each iteration decides before its wait whether
 * to take that work (`take`): at once unless the previous iteration called
 * loop_defer_inbound, else once extra_defer_ms have passed since it was
 * last taken; while work waits the loop sleeps no longer than that. Work
 * signalled during the wait is taken in the same pass unless held, before
 * the timers run (a timer may judge a peer's silence; one that runs while
 * input is held asks loop_inbound_waiting and looks again later). Taking
 * it is io_uring_get_events on the ring, repeated while it posts
 * completions, since the kernel runs a bounded batch per call (20 items on
 * 6.13 and later).
 */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ms(void)
{
	return mono_ns() / 1000000;
}

int64_t loop_wall_s(void)
{
	return (int64_t)time(NULL);
}

uint64_t loop_now_ms(const struct loop *l)
{
	return l->now_ms;
}

struct loop_ring {
	struct io_uring ring;
	struct loop *loop;
	struct loop_ring *next;   /* l->extra */
	struct op wake_op;        /* the main ring's read of efd */
	uint64_t wake_val;
	int efd;
	bool wake_armed, dead, exited;
	bool deferred;            /* DEFER_TASKRUN: its task work runs only when we ask */
	bool disabled;            /* R_DISABLED until the loop's thread enables it */
	bool woken;               /* its eventfd fired since its work was last taken */
};

static int ring_init(struct io_uring *ring, unsigned entries, unsigned cq_entries)
{
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN;
	if (cq_entries) {
		p.flags |= IORING_SETUP_CQSIZE;
		p.cq_entries = cq_entries;
	}
	int ret = io_uring_queue_init_params(entries, ring, &p);
	if (ret == -EINVAL) { /* older kernels: no SUBMIT_ALL / COOP_TASKRUN */
		memset(&p, 0, sizeof(p));
		p.flags = cq_entries ? IORING_SETUP_CQSIZE : 0;
		p.cq_entries = cq_entries;
		ret = io_uring_queue_init_params(entries, ring, &p);
	}
	return ret;
}

/*
 * An extra ring whose task work (a socket's data landing in a multishot
 * recv, a send that waited for room) runs only in io_uring_get_events,
 * from reap(): see "Extra rings' inbound work" at the top. Its submitter
 * is the loop's thread: opened elsewhere (before the loop runs), it stays
 * disabled until the loop's first flush enables it there.
 */
static int deferred_ring_init(struct loop *l, struct loop_ring *r, unsigned entries,
			      unsigned cq_entries)
{
	bool own = l->running && pthread_equal(l->thread, pthread_self());
	struct io_uring_params p = {0};
	p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_CQSIZE | (own ? 0 : IORING_SETUP_R_DISABLED);
	p.cq_entries = cq_entries;
	int ret = io_uring_queue_init_params(entries, &r->ring, &p);
	if (ret == 0) {
		r->deferred = true;
		r->disabled = !own;
	}
	return ret;
}

int loop_init(struct loop *l, unsigned entries)
{
	memset(l, 0, sizeof(*l));
	int ret = ring_init(&l->ring, entries, 0);
	if (ret < 0)
		return ret;
	l->now_ms = mono_ms();
	return 0;
}

void loop_release(struct loop *l)
{
	while (l->extra) { /* the main ring goes too: no CQE can come back for them */
		struct loop_ring *r = l->extra;
		l->extra = r->next;
		if (!r->exited)
			io_uring_queue_exit(&r->ring);
		close(r->efd);
		free(r);
	}
	io_uring_queue_exit(&l->ring);
	free(l->heap);
	l->heap = NULL;
	l->n_timers = l->cap_timers = 0;
}

/* A fresh SQE of ring for op, submitting the queue first when it is full. */
static struct io_uring_sqe *ring_sqe(struct io_uring *ring, struct op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	while (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	io_uring_sqe_set_data(sqe, op);
	return sqe;
}

struct io_uring_sqe *loop_sqe(struct loop *l, struct op *op)
{
	return ring_sqe(&l->ring, op);
}

/* --- extra rings --- */

static void arm_wake(struct loop_ring *r)
{
	struct io_uring_sqe *sqe = loop_sqe(r->loop, &r->wake_op);
	io_uring_prep_read(sqe, r->efd, &r->wake_val, sizeof(r->wake_val), 0);
	r->wake_armed = true;
}

static void unlink_ring(struct loop *l, struct loop_ring *r)
{
	for (struct loop_ring **pp = &l->extra; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			return;
		}
}

static void on_wake(struct op *op, int res, uint32_t flags)
{
	(void)flags;
	struct loop_ring *r = (struct loop_ring *)((char *)op - offsetof(struct loop_ring, wake_op));
	r->wake_armed = false;
	r->woken = true;
	if (r->exited) { /* runs from the main ring's dispatch, never inside the extra rings' walk */
		unlink_ring(r->loop, r);
		close(r->efd);
		free(r);
		return;
	}
	if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED)
		log_warn("msg=\"extra ring eventfd read failed\" err=%d", res);
	arm_wake(r); /* its CQEs are dispatched after the main ring's, in this pass */
}

struct loop_ring *loop_ring_open(struct loop *l, unsigned entries, unsigned files, int *err)
{
	struct loop_ring *r = calloc(1, sizeof(*r));
	if (!r) {
		*err = -ENOMEM;
		return NULL;
	}
	r->loop = l;
	r->wake_op.cb = on_wake;
	/* a blocking eventfd: io_uring polls it (O_NONBLOCK would make the read fail with EAGAIN) */
	r->efd = eventfd(0, EFD_CLOEXEC);
	int ret = r->efd < 0 ? -errno : deferred_ring_init(l, r, entries, entries * 8);
	if (ret == -EINVAL) /* a kernel without DEFER_TASKRUN (before 6.1) */
		ret = ring_init(&r->ring, entries, entries * 8);
	if (ret < 0) {
		if (r->efd >= 0)
			close(r->efd);
		free(r);
		*err = ret;
		return NULL;
	}
	if ((files && (ret = io_uring_register_files_sparse(&r->ring, files)) < 0) ||
	    (ret = io_uring_register_eventfd(&r->ring, r->efd)) < 0) {
		io_uring_queue_exit(&r->ring);
		close(r->efd);
		free(r);
		*err = ret;
		return NULL;
	}
	r->next = l->extra;
	l->extra = r;
	arm_wake(r);
	return r;
}

struct io_uring *loop_ring_uring(struct loop_ring *r)
{
	return &r->ring;
}

/* Enable a ring set up disabled: the calling thread becomes its only submitter. */
static void ring_enable(struct loop_ring *r)
{
	/* liburing 2.3 declares io_uring_enable_rings but does not export it */
	if (syscall(__NR_io_uring_register, r->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0) < 0) {
		log_error("msg=\"enabling an extra ring failed\" err=%d", errno); /* cannot happen */
		abort();
	}
	r->disabled = false;
}

struct io_uring_sqe *loop_ring_sqe(struct loop_ring *r, struct op *op)
{
	if (r->disabled && !io_uring_sq_space_left(&r->ring))
		ring_enable(r); /* full before the loop first ran: this thread submits (loop.h) */
	return ring_sqe(&r->ring, op);
}

void loop_defer_inbound(struct loop *l)
{
	l->inbound_held = true;
}

bool loop_inbound_waiting(const struct loop *l)
{
	for (const struct loop_ring *r = l->extra; r; r = r->next)
		if (!r->dead && r->deferred && r->woken)
			return true;
	return false;
}

bool loop_ring_deferred(const struct loop_ring *r)
{
	return r->deferred;
}

void loop_ring_flush(struct loop_ring *r)
{
	if (r->disabled)
		ring_enable(r);
	if (io_uring_sq_ready(&r->ring) && io_uring_submit(&r->ring) == -EEXIST) {
		/* a deferred ring submitted from another thread than the one it belongs to */
		log_error("msg=\"extra ring used from a thread that is not its loop's\"");
		abort();
	}
}

void loop_submit(struct loop *l)
{
	for (struct loop_ring *r = l->extra; r; r = r->next)
		if (!r->dead)
			loop_ring_flush(r);
	if (io_uring_sq_ready(&l->ring))
		io_uring_submit(&l->ring);
}

void loop_ring_close(struct loop_ring *r)
{
	r->dead = true;
}

/* Exit the rings closed during this iteration; each is freed when its eventfd read is back. */
static void sweep_rings(struct loop *l)
{
	for (struct loop_ring *r = l->extra, *next; r; r = next) {
		next = r->next;
		if (!r->dead || r->exited)
			continue;
		io_uring_queue_exit(&r->ring);
		r->exited = true;
		if (r->wake_armed) {
			struct io_uring_sqe *sqe = loop_sqe(l, NULL);
			io_uring_prep_cancel(sqe, &r->wake_op, 0);
		} else {
			unlink_ring(l, r);
			close(r->efd);
			free(r);
		}
	}
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

static unsigned reap_ring(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(ring, head, cqe)
	{
		struct op *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		uint32_t flags = cqe->flags;
		n++;
		if (op) /* NULL: a fire-and-forget request (cancel, close) */
			op->cb(op, res, flags);
	}
	io_uring_cq_advance(ring, n);
	return n;
}

/* Dispatch every completion; how many there were on the main ring. An extra ring's
   inbound work is taken when `take`, or when `held` is false and its eventfd fired
   during this wait: then before the timers run, which may judge a peer's silence. */
static unsigned reap(struct loop *l, bool take, bool held)
{
	unsigned n = reap_ring(&l->ring);
	for (struct loop_ring *r = l->extra; r; r = r->next) {
		if (r->dead)
			continue;
		if ((take || !held) && r->deferred && r->woken && !r->disabled) {
			r->woken = false;
			l->extra_taken_ms = l->now_ms;
			/* the kernel runs a bounded batch per call (20 items on 6.13+): until dry */
			do
				io_uring_get_events(&r->ring);
			while (reap_ring(&r->ring));
		}
		/* CQEs the kernel could not fit are flushed by an enter with GETEVENTS */
		for (;;) {
			reap_ring(&r->ring);
			if (r->dead || !(IO_URING_READ_ONCE(*r->ring.sq.kflags) & IORING_SQ_CQ_OVERFLOW))
				break;
			io_uring_get_events(&r->ring);
		}
	}
	return n;
}

/* Poll the main ring up to l->poll_us for a completion, after submitting what is queued. */
static void poll_ring(struct loop *l)
{
	io_uring_submit(&l->ring);
	uint64_t until = mono_ns() + (uint64_t)l->poll_us * 1000;
	l->polls++;
	do {
		io_uring_get_events(&l->ring); /* runs the task work that posts completions */
		if (io_uring_cq_ready(&l->ring)) {
			l->poll_hits++;
			return;
		}
	} while (mono_ns() < until);
	l->poll_missed = true;
}

void loop_run_once(struct loop *l, int max_wait_ms)
{
	uint64_t wait = max_wait_ms < 0 ? 1000 : (uint64_t)max_wait_ms;
	if (l->n_timers) {
		uint64_t d = l->heap[0]->deadline_ms;
		wait = d <= l->now_ms ? 0 : (d - l->now_ms < wait ? d - l->now_ms : wait);
	}
	struct io_uring_cqe *cqe;
	l->thread = pthread_self();
	l->running = true;
	bool pending = false, take = false, held = l->inbound_held;
	l->inbound_held = false;
	for (struct loop_ring *r = l->extra; r; r = r->next) {
		if (r->dead)
			continue;
		loop_ring_flush(r);
		pending |= r->deferred && r->woken;
	}
	if (pending) {
		take = !held || l->now_ms - l->extra_taken_ms >= l->extra_defer_ms;
		if (take)
			wait = 0; /* reap takes it */
		else if (l->extra_taken_ms + l->extra_defer_ms - l->now_ms < wait)
			wait = l->extra_taken_ms + l->extra_defer_ms - l->now_ms;
	}
	struct __kernel_timespec ts = {.tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000};
	if (l->poll_us && wait && !l->poll_missed)
		poll_ring(l);
	int ret = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, &ts, NULL);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		log_warn("msg=\"io_uring wait failed\" err=%d", ret);
	l->now_ms = mono_ms();
	if (reap(l, take, held))
		l->poll_missed = false;
	l->now_ms = mono_ms();
	run_timers(l);
	sweep_rings(l);
}
