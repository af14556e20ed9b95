/*
 * engine/server.h: the engine and its worker threads.
 *
 * One worker per thread, each with its own io_uring loop, its own listening
 * socket on the shared port (SO_REUSEPORT: the kernel spreads connections),
 * its own Redis connection and its own client connections: shared-nothing.
 * What workers share is read-only after start-up (config, SSL_CTX) or
 * swapped atomically (the keyring, on SIGHUP). The main thread talks to
 * workers only through their eventfd ("stop" and "drain").
 *
 * Shutdown (SIGTERM): stop accepting, let pending admissions finish and
 * their answers go out (up to drain_ms), close connections, stop Redis, exit.
 */
#ifndef TOCSIN_SERVER_H
#define TOCSIN_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"
#include "conn.h"
#include "keyring.h"
#include "loop.h"
#include "redis.h"

struct engine;

struct worker_stats {
	uint64_t accepted, requests, admitted, replayed, rejected; /* /metrics sums these 5 */
	uint64_t sse_subscribers, sse_dropped;
};

struct events;
struct operators;
struct audit;

struct worker {
	struct engine *e;
	int index;
	struct loop loop;
	int listen_fd;
	struct op accept_op;
	bool accept_armed;
	struct timer accept_retry; /* after EMFILE and friends */
	struct redis_client redis;
	struct conn *conns;      /* list of live connections */
	size_t n_conns;
	uint64_t next_conn_id;
	int wake_fd;             /* eventfd: main thread -> worker */
	struct op wake_op;
	uint64_t wake_val;
	bool wake_armed;
	size_t pending_admissions;
	bool draining, stopped;
	uint64_t drain_deadline_ms;
	struct worker_stats stats;
	struct events *events;   /* GET /v1/events subscribers (events.h) */
	pthread_t thread;
};

struct dispatcher;

struct engine {
	struct config cfg;
	struct dispatcher *dispatcher; /* NULL when dispatching is off */
	SSL_CTX *ssl_ctx;            /* NULL without TLS */
	pthread_mutex_t keyring_lock; /* guards the pointer swap only */
	struct keyring *keyring;
	struct worker *workers;
	int n_workers;
	struct operators *operators; /* NULL: no operator tokens (dashboard.h) */
	struct audit *audit;         /* NULL: no audit log */
	atomic_bool stop;
};

/*
 * Build the engine from a checked config: load the keyring and TLS files
 * and bind the listening sockets (so "port in use" is reported before any
 * thread starts). -1 with a readable message in err.
 */
int engine_init(struct engine *e, const struct config *cfg, char *err, size_t errlen);
/* Start the worker threads. */
int engine_start(struct engine *e, char *err, size_t errlen);
/* Ask workers to drain and stop, then join them. */
void engine_stop(struct engine *e);
void engine_release(struct engine *e);

/* Reload the keyring file; on error the old keyring stays. 0 or -1 + err. */
int engine_reload_keyring(struct engine *e, char *err, size_t errlen);
/* The current keyring with a reference the caller must drop (keyring_unref). */
struct keyring *engine_keyring(struct engine *e);

/* Called by conn.c when a connection is freed. */
void worker_conn_gone(struct worker *w, struct conn *c);

#endif
