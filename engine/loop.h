/*
 * engine/loop.h: one io_uring event loop per thread, with timers.
 *
 * Every SQE's user_data is a `struct op *`: an object embedded in whatever
 * owns the operation (a connection, the Redis client, a listener). The op's
 * owner keeps the op and its buffer alive until the CQE arrives; the loop
 * calls op->cb(op, res, flags) for each CQE. Never use a file descriptor as
 * the identity of an operation.
 *
 * Timers live in user space (a binary min-heap), because linked timeouts do
 * not apply to multishot requests; the loop waits no longer than the
 * earliest deadline.
 *
 * Extra rings (struct loop_ring) run on the same thread: a ring's table of
 * registered ("direct") files may hold at most RLIMIT_NOFILE entries, so an
 * owner that needs more sockets than the process's descriptor limit (the
 * terminal gateway at 100,000 connections) spreads them over several rings.
 * loop_run_once submits their SQEs and dispatches their CQEs like the main
 * ring's (user_data is a struct op * there too); an eventfd registered on
 * each extra ring, read by the main ring, ends the main ring's wait when an
 * extra ring has completions or work for the loop to run.
 *
 * Extra rings' inbound work (extra_defer_ms, set by the owner; 0 by
 * default): an extra ring is set up with DEFER_TASKRUN (kernel 6.1 on), so
 * what arrives on its sockets (data for a multishot recv, an accepted
 * connection, a send that waited for room) is processed only when the loop
 * asks for it, not on every return from a system call. The loop asks on
 * each iteration, unless an owner called loop_defer_inbound during the one
 * before (the terminal gateway does so for every Alert it sends); then at
 * most extra_defer_ms after it last asked. So during a fan-out the
 * gateway's pushes go out before the terminals' Acks are read: on this
 * kind of VM, reading them in between cost a fan-out to 50,000 terminals
 * about a fifth of its time. Sends still complete at once (their
 * completions are posted as they are submitted). Such a ring accepts
 * submissions from one thread only: one opened before the loop's thread
 * first runs the loop is enabled by that thread at its first flush (or by
 * whichever thread fills its queue before then, which must then be the
 * loop's own).
 *
 * Polling (poll_us, set by the owner; 0 by default): before blocking in
 * its wait, the loop polls the main ring for completions up to poll_us. On
 * this kind of VM a thread blocked in io_uring_enter takes tens of
 * microseconds to be woken, and a peer that answers within a few (an SMSC
 * next door, answering a window in bursts) would pay that once per round
 * trip. A poll that found nothing makes the next wait block without one;
 * polling resumes once a wait returns with completions.
 *
 * Not thread-safe: a loop and everything on it belong to one thread.
 */
#ifndef TOCSIN_LOOP_H
#define TOCSIN_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>

struct op;
typedef void (*op_cb)(struct op *op, int res, uint32_t flags);

struct op {
	op_cb cb;
};

struct timer;
typedef void (*timer_cb)(struct timer *t);

struct timer {
	uint64_t deadline_ms; /* loop_now_ms() time it fires */
	timer_cb cb;
	size_t slot;          /* heap index + 1; 0 when not armed */
};

struct loop_ring;

struct loop {
	struct io_uring ring;
	struct loop_ring *extra;  /* extra rings, newest first */
	uint64_t now_ms;      /* CLOCK_MONOTONIC ms, refreshed every iteration */
	struct timer **heap;
	size_t n_timers, cap_timers;
	unsigned pending_sqes;
	unsigned poll_us;     /* see "Polling" above */
	bool poll_missed;     /* the last poll ended empty: block in the next wait */
	uint64_t polls, poll_hits; /* polls made, and those that found a completion */
	unsigned extra_defer_ms; /* see "Extra rings' inbound work" above */
	uint64_t extra_taken_ms; /* when it was last taken */
	bool inbound_held;       /* loop_defer_inbound was called in this iteration */
	pthread_t thread;     /* the thread of loop_run_once, once `running` */
	bool running;         /* extra rings opened from then on are the thread's at once */
};

/* 0 or -errno (for example -ENOSYS when io_uring is blocked by seccomp). */
int loop_init(struct loop *l, unsigned entries);
void loop_release(struct loop *l);

/* A fresh SQE; submits the queue first when it is full. Never NULL. */
struct io_uring_sqe *loop_sqe(struct loop *l, struct op *op);

/*
 * Submit what is queued on every ring now, without waiting (from a callback:
 * work made in the middle of an iteration goes out before the rest of it).
 */
void loop_submit(struct loop *l);

/* Submit, wait for at least one completion or the next timer (or max_wait_ms), dispatch. */
void loop_run_once(struct loop *l, int max_wait_ms);

/*
 * An extra ring with `entries` SQEs and a sparse table of `files` registered
 * files (0: none; at most RLIMIT_NOFILE). NULL with *err = -errno on failure.
 */
struct loop_ring *loop_ring_open(struct loop *l, unsigned entries, unsigned files, int *err);
/* The ring itself, for registrations (files, buffer rings). */
struct io_uring *loop_ring_uring(struct loop_ring *r);
/* A fresh SQE on r; submits r first when its queue is full. Never NULL. */
struct io_uring_sqe *loop_ring_sqe(struct loop_ring *r, struct op *op);
/* In the middle of a push: the extra rings' inbound work waits for the next iteration
   without this call, or extra_defer_ms (see "Extra rings' inbound work"). */
void loop_defer_inbound(struct loop *l);
/* Whether an extra ring may hold input not yet read (its work is being deferred): a
   timer that would judge a peer's silence should look again a little later. */
bool loop_inbound_waiting(const struct loop *l);
/* Whether r's inbound work waits for the loop (see "Extra rings' inbound work"). */
bool loop_ring_deferred(const struct loop_ring *r);
/* Submit what is queued on r now (before reusing a registered file's slot). */
void loop_ring_flush(struct loop_ring *r);
/*
 * Close r. The owner has no operation in flight on it any more; whatever is
 * left in its file table is closed with it. Safe from a callback: the ring
 * goes at the end of the current iteration.
 */
void loop_ring_close(struct loop_ring *r);

uint64_t loop_now_ms(const struct loop *l);
/* Wall clock, seconds since the epoch. */
int64_t loop_wall_s(void);

/* Arm (or re-arm) t to fire after `ms`. */
void loop_timer_set(struct loop *l, struct timer *t, uint64_t ms, timer_cb cb);
void loop_timer_cancel(struct loop *l, struct timer *t);
static inline bool loop_timer_armed(const struct timer *t)
{
	return t->slot != 0;
}

#endif
