/*
 * tests/unit/test_loop.c: the io_uring loop's extra rings (engine/loop.h):
 * a completion on an extra ring ends the main ring's wait and is dispatched
 * by loop_run_once; direct descriptors in an extra ring's file table work
 * with IOSQE_FIXED_FILE; a full extra SQ is submitted, not dropped;
 * loop_submit sends what every ring has queued at once; a ring
 * closed from inside a callback goes at the end of the iteration (ASan
 * checks that nothing leaks or is used after it is freed); several rings at
 * once each dispatch their own completions; polling (poll_us) finds a
 * completion that arrives while it polls, stops after a poll that found
 * nothing and resumes once a wait returns with completions; an extra ring's
 * inbound work waits while the loop is pushing (loop_defer_inbound), is
 * taken on the first iteration without a push, and at the latest
 * extra_defer_ms after it was last taken (0: every iteration); input
 * that arrives while nothing is held is read before the pass's timers run.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

struct probe {
	struct op op;
	int res, calls;
	char buf[16];
};

static void on_probe(struct op *op, int res, uint32_t flags)
{
	(void)flags;
	struct probe *p = (struct probe *)op;
	p->res = res;
	p->calls++;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One end of a socket pair as direct descriptor `slot` of r; the other end returned. */
static int install_pair(struct loop_ring *r, unsigned slot)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(io_uring_register_files_update(loop_ring_uring(r), slot, &sv[0], 1), 1);
	close(sv[0]); /* the table holds its own reference */
	return sv[1];
}

static void arm_recv(struct loop_ring *r, unsigned slot, struct probe *p)
{
	struct io_uring_sqe *sqe = loop_ring_sqe(r, &p->op);
	io_uring_prep_recv(sqe, (int)slot, p->buf, sizeof(p->buf), 0);
	sqe->flags |= IOSQE_FIXED_FILE;
}

static void test_extra_ring_wakes_the_wait(void **state)
{
	(void)state;
	struct loop l;
	assert_int_equal(loop_init(&l, 64), 0);
	int err = 0;
	struct loop_ring *r = loop_ring_open(&l, 64, 8, &err);
	assert_non_null(r);
	int peer = install_pair(r, 3);
	struct probe p = {.op.cb = on_probe};
	arm_recv(r, 3, &p);
	loop_run_once(&l, 0); /* submits the recv; nothing to read yet */
	assert_int_equal(p.calls, 0);
	assert_int_equal(write(peer, "alert", 5), 5);
	/* The wait would last 30 s if the extra ring's completion did not end it. */
	double t0 = now_s();
	while (p.calls == 0 && now_s() - t0 < 20)
		loop_run_once(&l, 30000);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.res, 5);
	assert_memory_equal(p.buf, "alert", 5);
	assert_true(now_s() - t0 < 15);
	close(peer);
	loop_ring_close(r); /* exited at the end of the next pass, freed when its read is back */
	for (int k = 0; k < 10 && l.extra; k++)
		loop_run_once(&l, 10);
	assert_null(l.extra);
	loop_release(&l);
}

static void test_full_queue_is_submitted(void **state)
{
	(void)state;
	struct loop l;
	assert_int_equal(loop_init(&l, 8), 0);
	int err = 0;
	struct loop_ring *r = loop_ring_open(&l, 8, 0, &err);
	assert_non_null(r);
	struct probe p[40];
	for (int i = 0; i < 40; i++) { /* five times the SQ */
		p[i] = (struct probe){.op.cb = on_probe};
		io_uring_prep_nop(loop_ring_sqe(r, &p[i].op));
	}
	for (int k = 0; k < 10; k++)
		loop_run_once(&l, 100);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(p[i].calls, 1);
		assert_int_equal(p[i].res, 0);
	}
	loop_ring_close(r);
	loop_release(&l); /* frees a ring that was closed but not yet swept */
}

/* loop_submit hands every ring's queued SQEs to the kernel at once: a write queued on
   an extra ring and one on the main ring reach their peers before any loop_run_once. */
static void test_submit_now(void **state)
{
	(void)state;
	struct loop l;
	assert_int_equal(loop_init(&l, 8), 0);
	int err = 0, sv[2];
	struct loop_ring *r = loop_ring_open(&l, 8, 4, &err);
	assert_non_null(r);
	int peer = install_pair(r, 1);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct probe a = {.op.cb = on_probe}, b = {.op.cb = on_probe};
	struct io_uring_sqe *sqe = loop_ring_sqe(r, &a.op);
	io_uring_prep_send(sqe, 1, "ring", 4, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	io_uring_prep_send(loop_sqe(&l, &b.op), sv[0], "main", 4, 0);
	char buf[8];
	assert_int_equal(recv(peer, buf, sizeof(buf), MSG_DONTWAIT), -1); /* queued, not sent */
	loop_submit(&l);
	assert_int_equal(recv(peer, buf, sizeof(buf), 0), 4);
	assert_memory_equal(buf, "ring", 4);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), 0), 4);
	assert_memory_equal(buf, "main", 4);
	for (int k = 0; k < 10 && (a.calls == 0 || b.calls == 0); k++)
		loop_run_once(&l, 100); /* and the completions are dispatched as usual */
	assert_int_equal(a.calls + b.calls, 2);
	assert_int_equal(a.res, 4);
	assert_int_equal(b.res, 4);
	close(peer);
	close(sv[0]);
	close(sv[1]);
	loop_ring_close(r);
	loop_release(&l);
}

struct closer {
	struct probe p;
	struct loop_ring *r;
};

static void on_close_from_callback(struct op *op, int res, uint32_t flags)
{
	struct closer *c = (struct closer *)op;
	on_probe(op, res, flags);
	loop_ring_close(c->r); /* its own ring, from inside its dispatch */
}

static void test_close_from_callback_and_many_rings(void **state)
{
	(void)state;
	struct loop l;
	assert_int_equal(loop_init(&l, 64), 0);
	enum { N = 4 };
	struct loop_ring *r[N];
	struct closer c[N];
	int peer[N];
	for (int i = 0; i < N; i++) {
		int err = 0;
		r[i] = loop_ring_open(&l, 16, 4, &err);
		assert_non_null(r[i]);
		peer[i] = install_pair(r[i], 0); /* the same slot number in every table */
		c[i] = (struct closer){.p.op.cb = on_close_from_callback, .r = r[i]};
		arm_recv(r[i], 0, &c[i].p);
	}
	loop_run_once(&l, 0);
	for (int i = 0; i < N; i++) {
		char msg[2] = {(char)('a' + i), 0};
		assert_int_equal(write(peer[i], msg, 1), 1);
	}
	double t0 = now_s();
	int done = 0;
	while (done < N && now_s() - t0 < 20) {
		loop_run_once(&l, 30000);
		done = 0;
		for (int i = 0; i < N; i++)
			done += c[i].p.calls;
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(c[i].p.calls, 1);
		assert_int_equal(c[i].p.res, 1);
		assert_int_equal(c[i].p.buf[0], 'a' + i); /* each table kept its own socket */
		close(peer[i]);
	}
	for (int k = 0; k < 10 && l.extra; k++)
		loop_run_once(&l, 10);
	assert_null(l.extra);
	loop_release(&l);
}

struct late_write {
	int fd, after_ms;
};

static void *write_later(void *arg)
{
	struct late_write *w = arg;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)w->after_ms * 1000000};
	nanosleep(&ts, NULL);
	if (write(w->fd, "siren", 5) != 5)
		abort();
	return NULL;
}

static void arm_main_recv(struct loop *l, int fd, struct probe *p)
{
	struct io_uring_sqe *sqe = loop_sqe(l, &p->op);
	io_uring_prep_recv(sqe, fd, p->buf, sizeof(p->buf), 0);
}

/* A loop polling poll_us, with a recv armed on one end of a socket pair (sv[1]: the writer's). */
static void poll_fixture(struct loop *l, int sv[2], struct probe *p, unsigned poll_us)
{
	assert_int_equal(loop_init(l, 64), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*p = (struct probe){.op.cb = on_probe};
	arm_main_recv(l, sv[0], p);
	l->poll_us = poll_us;
}

/* A completion that arrives while the loop polls is found by the poll, not by a blocking wait. */
static void test_poll_finds_a_completion(void **state)
{
	(void)state;
	struct loop l;
	int sv[2];
	struct probe p;
	poll_fixture(&l, sv, &p, 5000000); /* 5 s: the write comes after 20 ms, well inside it */
	struct late_write w = {.fd = sv[1], .after_ms = 20};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, write_later, &w), 0);
	loop_run_once(&l, 10000);
	pthread_join(t, NULL);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.res, 5);
	assert_int_equal(l.polls, 1);
	assert_int_equal(l.poll_hits, 1);
	assert_false(l.poll_missed);
	close(sv[0]);
	close(sv[1]);
	loop_release(&l);
}

/* After a poll that found nothing the loop blocks without polling, until completions come again. */
static void test_poll_stops_after_a_miss(void **state)
{
	(void)state;
	struct loop l;
	int sv[2];
	struct probe p;
	poll_fixture(&l, sv, &p, 1000);
	loop_run_once(&l, 5); /* polls 1 ms in vain, then waits out the 5 ms */
	assert_int_equal(l.polls, 1);
	assert_int_equal(l.poll_hits, 0);
	assert_true(l.poll_missed);
	loop_run_once(&l, 5); /* no poll this time */
	assert_int_equal(l.polls, 1);
	assert_int_equal(p.calls, 0);
	assert_int_equal(write(sv[1], "alert", 5), 5);
	for (int k = 0; k < 100 && p.calls == 0; k++)
		loop_run_once(&l, 100);
	assert_int_equal(p.calls, 1);
	assert_int_equal(l.polls, 1); /* the completion came through the wait */
	assert_false(l.poll_missed);  /* and polling is back on */
	p.calls = 0;
	arm_main_recv(&l, sv[0], &p);
	loop_run_once(&l, 5);
	assert_int_equal(l.polls, 2);
	close(sv[0]);
	close(sv[1]);
	loop_release(&l);
}

/* --- an extra ring's inbound work waits while the main ring is busy (extra_defer_ms) --- */

struct defer_fixture {
	struct loop l;
	struct loop_ring *r;
	struct probe p, nops[64];
	int peer;
};

/* A ring whose first delivery was taken (so the deferral clock runs from then), a recv
   armed again and "two" written for it. Skips the test when the kernel has no
   DEFER_TASKRUN (nothing to test). */
static void defer_fixture(struct defer_fixture *f, unsigned defer_ms)
{
	memset(f, 0, sizeof(*f));
	assert_int_equal(loop_init(&f->l, 64), 0);
	int err = 0;
	f->r = loop_ring_open(&f->l, 64, 8, &err);
	assert_non_null(f->r);
	if (!loop_ring_deferred(f->r)) {
		loop_release(&f->l);
		skip();
	}
	f->l.extra_defer_ms = defer_ms;
	f->peer = install_pair(f->r, 3);
	f->p.op.cb = on_probe;
	arm_recv(f->r, 3, &f->p);
	loop_run_once(&f->l, 0);
	assert_int_equal(write(f->peer, "one", 3), 3);
	for (int k = 0; k < 100 && f->p.calls == 0; k++)
		loop_run_once(&f->l, 100);
	assert_int_equal(f->p.calls, 1);
	assert_memory_equal(f->p.buf, "one", 3);
	arm_recv(f->r, 3, &f->p);
	loop_run_once(&f->l, 0);
	for (int k = 0; k < 10 && loop_inbound_waiting(&f->l); k++)
		loop_run_once(&f->l, 0); /* a stray signal (completions posted) is taken first */
	assert_false(loop_inbound_waiting(&f->l));
	assert_int_equal(write(f->peer, "two", 3), 3);
}

/* One iteration of a loop in the middle of a push: it asked to hold inbound work, and
   a main-ring completion is ready (a NOP completes as it is submitted), so it does not
   sleep. */
static void busy_iteration(struct defer_fixture *f, int k)
{
	struct probe *n = &f->nops[k % 64];
	*n = (struct probe){.op.cb = on_probe};
	io_uring_prep_nop(loop_sqe(&f->l, &n->op));
	loop_submit(&f->l);
	loop_defer_inbound(&f->l);
	loop_run_once(&f->l, 100);
}

/* "two" was delivered, and the fixture goes. */
static void defer_fixture_end(struct defer_fixture *f)
{
	assert_int_equal(f->p.calls, 2);
	assert_int_equal(f->p.res, 3);
	assert_memory_equal(f->p.buf, "two", 3);
	close(f->peer);
	loop_ring_close(f->r);
	loop_release(&f->l);
}

/* While the loop is pushing (loop_defer_inbound on every iteration), data for an extra
   ring waits; the first iteration without a push takes it. */
static void test_inbound_waits_while_busy(void **state)
{
	(void)state;
	struct defer_fixture f;
	defer_fixture(&f, 600000);
	for (int k = 0; k < 50; k++)
		busy_iteration(&f, k);
	assert_int_equal(f.p.calls, 1); /* still waiting: 50 busy iterations, 10 minutes to go */
	for (int k = 0; k < 10 && f.p.calls == 1; k++)
		loop_run_once(&f.l, 100); /* the push is over */
	defer_fixture_end(&f);
}

/* A loop that stays busy still takes inbound work, extra_defer_ms after it last did. */
static void test_inbound_wait_is_bounded(void **state)
{
	(void)state;
	struct defer_fixture f;
	defer_fixture(&f, 30);
	double t0 = now_s();
	int k = 0;
	while (f.p.calls == 1 && now_s() - t0 < 10)
		busy_iteration(&f, k++);
	assert_true(k > 10); /* it waited while busy (taken at once, it would be 2 or 3) */
	defer_fixture_end(&f);
}

/* extra_defer_ms = 0: inbound work is taken on every iteration, pushing or not. */
static void test_inbound_without_deferral(void **state)
{
	(void)state;
	struct defer_fixture f;
	defer_fixture(&f, 0);
	for (int k = 0; k < 5 && f.p.calls == 1; k++)
		busy_iteration(&f, k);
	defer_fixture_end(&f);
}

struct silence_judge {
	struct timer t;
	struct defer_fixture *f;
	int fired, saw_unread;
};

static void on_judge(struct timer *t)
{
	struct silence_judge *j = (struct silence_judge *)t;
	j->fired++;
	j->saw_unread += loop_inbound_waiting(&j->f->l);
	if (j->f->p.calls < 2)
		loop_timer_set(&j->f->l, t, 1, on_judge);
}

static void on_slow(struct op *op, int res, uint32_t flags)
{
	(void)op;
	(void)res;
	(void)flags;
	usleep(5000); /* a long callback (a population load): the timer is due after it */
}

/* Input that arrives while the loop is not pushing is read before any timer of the
   same pass runs: a timer judging a peer's silence never finds it waiting unread. */
static void test_timers_run_after_the_input_is_read(void **state)
{
	(void)state;
	struct defer_fixture f;
	defer_fixture(&f, 600000); /* "two" is written; the loop has not seen the signal */
	struct silence_judge j = {.f = &f};
	loop_timer_set(&f.l, &j.t, 2, on_judge);
	struct op slow = {.cb = on_slow};
	io_uring_prep_nop(loop_sqe(&f.l, &slow)); /* completes in the pass that sees the signal */
	for (int k = 0; k < 100 && f.p.calls == 1; k++)
		loop_run_once(&f.l, 100);
	assert_true(j.fired > 0);
	assert_int_equal(j.saw_unread, 0);
	defer_fixture_end(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_extra_ring_wakes_the_wait),
		cmocka_unit_test(test_full_queue_is_submitted),
		cmocka_unit_test(test_submit_now),
		cmocka_unit_test(test_close_from_callback_and_many_rings),
		cmocka_unit_test(test_poll_finds_a_completion),
		cmocka_unit_test(test_poll_stops_after_a_miss),
		cmocka_unit_test(test_inbound_waits_while_busy),
		cmocka_unit_test(test_inbound_wait_is_bounded),
		cmocka_unit_test(test_inbound_without_deferral),
		cmocka_unit_test(test_timers_run_after_the_input_is_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
