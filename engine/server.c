/*
 * engine/server.c: the engine's lifecycle and each worker's loop
 * (see server.h for the threading model).
 *
 * A worker's loop body reads as: run one loop iteration (submit, wait,
 * dispatch completions, fire timers), then advance the drain when stopping.
 */
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit.h"
#include "events.h"
#include "journal.h"
#include "log.h"
#include "operators.h"
#include "tls.h"

#define DRAIN_MS 10000
#define ACCEPT_BACKOFF_MS 100

/* --- keyring --- */

struct keyring *engine_keyring(struct engine *e)
{
	pthread_mutex_lock(&e->keyring_lock);
	struct keyring *kr = e->keyring;
	keyring_ref(kr);
	pthread_mutex_unlock(&e->keyring_lock);
	return kr;
}

int engine_reload_keyring(struct engine *e, char *err, size_t errlen)
{
	struct keyring *kr = keyring_load(e->cfg.keyring, err, errlen);
	if (!kr) {
		audit_log(e->audit, "keyring_reload",
			  json_pack("{s:s,s:b,s:s}", "file", e->cfg.keyring, "ok", 0, "error", err));
		return -1;
	}
	audit_log(e->audit, "keyring_reload",
		  json_pack("{s:s,s:b,s:I}", "file", e->cfg.keyring, "ok", 1, "keys",
			    (json_int_t)keyring_size(kr)));
	pthread_mutex_lock(&e->keyring_lock);
	struct keyring *old = e->keyring;
	e->keyring = kr;
	pthread_mutex_unlock(&e->keyring_lock);
	keyring_unref(old);
	log_info("msg=\"keyring loaded\" file=%s keys=%zu", e->cfg.keyring, keyring_size(kr));
	return 0;
}

/* --- accepting --- */

static void arm_accept(struct worker *w);

static void on_accept_retry(struct timer *t);

static void on_accept(struct op *op, int res, uint32_t flags)
{
	struct worker *w = (struct worker *)((char *)op - offsetof(struct worker, accept_op));
	if (!(flags & IORING_CQE_F_MORE))
		w->accept_armed = false;
	if (res >= 0) {
		if (w->draining || w->n_conns >= (size_t)w->e->cfg.max_connections) {
			close(res);
		} else {
			struct conn *c = conn_new(w, res);
			if (c) {
				c->next = w->conns;
				if (w->conns)
					w->conns->prev = c;
				w->conns = c;
				w->n_conns++;
				w->stats.accepted++;
			}
		}
	} else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
		log_warn("msg=\"accept paused: out of descriptors or memory\" err=%d", res);
		loop_timer_set(&w->loop, &w->accept_retry, ACCEPT_BACKOFF_MS, on_accept_retry);
		return;
	}
	if (!w->accept_armed && !w->draining && !loop_timer_armed(&w->accept_retry))
		arm_accept(w);
}

static void on_accept_retry(struct timer *t)
{
	arm_accept((struct worker *)((char *)t - offsetof(struct worker, accept_retry)));
}

static void arm_accept(struct worker *w)
{
	if (w->accept_armed || w->draining)
		return;
	struct io_uring_sqe *sqe = loop_sqe(&w->loop, &w->accept_op);
	io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	w->accept_armed = true;
}

void worker_conn_gone(struct worker *w, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->n_conns--;
}

/* A new Redis connection first gets the admission script (EVALSHA from then on). */
static void on_redis_state(struct redis_client *rc, void *arg)
{
	if (redis_up(rc))
		journal_prepare(rc);
}

/* --- waking and draining --- */

static void arm_wake(struct worker *w)
{
	struct io_uring_sqe *sqe = loop_sqe(&w->loop, &w->wake_op);
	io_uring_prep_read(sqe, w->wake_fd, &w->wake_val, sizeof(w->wake_val), 0);
	w->wake_armed = true;
}

static void begin_drain(struct worker *w)
{
	if (w->draining)
		return;
	w->draining = true;
	w->drain_deadline_ms = loop_now_ms(&w->loop) + DRAIN_MS;
	if (w->accept_armed) {
		struct io_uring_sqe *sqe = loop_sqe(&w->loop, NULL);
		io_uring_prep_cancel(sqe, &w->accept_op, 0);
	}
	loop_timer_cancel(&w->loop, &w->accept_retry);
	events_drain(w->events); /* event streams never end by themselves */
	log_info("msg=\"draining\" worker=%d pending=%zu conns=%zu", w->index,
		 w->pending_admissions, w->n_conns);
}

static void on_wake(struct op *op, int res, uint32_t flags)
{
	struct worker *w = (struct worker *)((char *)op - offsetof(struct worker, wake_op));
	w->wake_armed = false;
	if (atomic_load(&w->e->stop))
		begin_drain(w);
	else
		arm_wake(w);
}

/* Once nothing is waiting on Redis (or the deadline passed), close down. */
static void advance_drain(struct worker *w)
{
	bool late = loop_now_ms(&w->loop) >= w->drain_deadline_ms;
	if (w->pending_admissions && !late)
		return;
	for (struct conn *c = w->conns, *next; c; c = next) {
		next = c->next;
		if (late)
			conn_close(c);
		else if (c->state != CONN_LINGER && c->state != CONN_CLOSING &&
			 conn_output_pending(c) == 0)
			conn_close_gracefully(c);
	}
	if (w->n_conns == 0 && w->redis.state != REDIS_STOPPED && !w->redis.stopping)
		redis_stop(&w->redis);
	if (w->n_conns == 0 && redis_idle(&w->redis) && !w->accept_armed)
		w->stopped = true;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	redis_start(&w->redis);
	arm_accept(w);
	arm_wake(w);
	while (!w->stopped) {
		loop_run_once(&w->loop, w->draining ? 50 : 1000);
		if (w->draining)
			advance_drain(w);
	}
	log_info("msg=\"worker stopped\" worker=%d accepted=%lu requests=%lu admitted=%lu "
		 "replayed=%lu rejected=%lu",
		 w->index, (unsigned long)w->stats.accepted, (unsigned long)w->stats.requests,
		 (unsigned long)w->stats.admitted, (unsigned long)w->stats.replayed,
		 (unsigned long)w->stats.rejected);
	return NULL;
}

/* --- start-up --- */

static int listen_socket(const char *addr, bool first, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
		snprintf(err, errlen, "[server] listen: '%s' is not HOST:PORT", addr);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai;
	int gai = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai);
	if (gai) {
		snprintf(err, errlen, "[server] listen: '%s': %s", addr, gai_strerror(gai));
		return -1;
	}
	/*
	 * SO_REUSEPORT would let us join another tocsind on the same port
	 * silently: probe with a plain socket first so "port in use" is an error.
	 */
	int probe = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (first && probe >= 0 && bind(probe, ai->ai_addr, ai->ai_addrlen) < 0) {
		snprintf(err, errlen, "[server] listen: cannot listen on %s: %s", addr,
			 strerror(errno));
		close(probe);
		freeaddrinfo(ai);
		return -1;
	}
	if (probe >= 0)
		close(probe);
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
		snprintf(err, errlen, "[server] listen: cannot listen on %s: %s", addr,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int worker_init(struct engine *e, struct worker *w, int index, char *err, size_t errlen)
{
	w->e = e;
	w->index = index;
	w->listen_fd = -1;
	w->wake_fd = -1;
	w->accept_op.cb = on_accept;
	w->wake_op.cb = on_wake;
	int ret = loop_init(&w->loop, 4096);
	if (ret < 0) {
		snprintf(err, errlen, "io_uring is not available (%s): a container's seccomp "
			 "profile may block it; tocsind needs io_uring", strerror(-ret));
		return -1;
	}
	if (redis_init(&w->redis, &w->loop, e->cfg.redis, err, errlen) < 0)
		return -1;
	w->redis.on_state = on_redis_state;
	w->redis.on_state_arg = w;
	w->listen_fd = listen_socket(e->cfg.listen, index == 0, err, errlen);
	if (w->listen_fd < 0)
		return -1;
	w->events = events_new(w);
	if (!w->events) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (w->wake_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* [operators] credentials and the [audit] log. */
static int operators_init(struct engine *e, char *err, size_t errlen)
{
	const struct config *cfg = &e->cfg;
	if (cfg->operator_client_ca[0] &&
	    tls_verify_clients(e->ssl_ctx, cfg->operator_client_ca, err, errlen) < 0)
		return -1;
	if (cfg->operator_tokens[0]) {
		e->operators = operators_load(cfg->operator_tokens, err, errlen);
		if (!e->operators)
			return -1;
	}
	if (!e->operators && !cfg->operator_client_ca[0])
		log_warn("msg=\"[operators] is not configured: the dashboard, /v1/events, "
			 "/v1/status, GET /v1/warnings/{id} and /metrics are open to anyone who "
			 "can connect\"");
	if (cfg->audit_file[0]) {
		e->audit = audit_open(cfg->audit_file, err, errlen);
		if (!e->audit)
			return -1;
	}
	return 0;
}

int engine_init(struct engine *e, const struct config *cfg, char *err, size_t errlen)
{
	memset(e, 0, sizeof(*e));
	e->cfg = *cfg;
	pthread_mutex_init(&e->keyring_lock, NULL);
	e->keyring = keyring_load(cfg->keyring, err, errlen);
	if (!e->keyring)
		return -1;
	if (cfg->tls_cert[0]) {
		e->ssl_ctx = tls_server_ctx(cfg->tls_cert, cfg->tls_key, err, errlen);
		if (!e->ssl_ctx)
			return -1;
	}
	if (operators_init(e, err, errlen) < 0)
		return -1;
	e->n_workers = cfg->threads > 0 ? cfg->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (e->n_workers < 1)
		e->n_workers = 1;
	e->workers = calloc((size_t)e->n_workers, sizeof(*e->workers));
	if (!e->workers) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = 0; i < e->n_workers; i++)
		if (worker_init(e, &e->workers[i], i, err, errlen) < 0)
			return -1;
	log_info("msg=\"keyring loaded\" file=%s keys=%zu", cfg->keyring, keyring_size(e->keyring));
	return 0;
}

int engine_start(struct engine *e, char *err, size_t errlen)
{
	for (int i = 0; i < e->n_workers; i++) {
		int ret = pthread_create(&e->workers[i].thread, NULL, worker_main, &e->workers[i]);
		if (ret) {
			snprintf(err, errlen, "cannot start worker thread: %s", strerror(ret));
			return -1;
		}
	}
	log_info("msg=\"tocsind listening\" addr=%s workers=%d tls=%s", e->cfg.listen,
		 e->n_workers, e->ssl_ctx ? "yes" : "no");
	return 0;
}

void engine_stop(struct engine *e)
{
	atomic_store(&e->stop, true);
	uint64_t one = 1;
	for (int i = 0; i < e->n_workers; i++) {
		ssize_t n = write(e->workers[i].wake_fd, &one, sizeof(one));
		(void)n;
	}
	for (int i = 0; i < e->n_workers; i++)
		pthread_join(e->workers[i].thread, NULL);
}

void engine_release(struct engine *e)
{
	for (int i = 0; e->workers && i < e->n_workers; i++) {
		struct worker *w = &e->workers[i];
		redis_release(&w->redis);
		if (w->listen_fd >= 0)
			close(w->listen_fd);
		if (w->wake_fd >= 0)
			close(w->wake_fd);
		events_free(w->events);
		loop_release(&w->loop);
	}
	free(e->workers);
	if (e->keyring)
		keyring_unref(e->keyring);
	SSL_CTX_free(e->ssl_ctx);
	operators_free(e->operators);
	audit_close(e->audit);
	pthread_mutex_destroy(&e->keyring_lock);
}
