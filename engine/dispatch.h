/*
 * engine/dispatch.h: the dispatcher: admitted warnings become deliveries
 * on every channel at once, each lane at the rate its provider allows,
 * and every outcome becomes live, people-weighted coverage.
 *
 * It runs on its own thread with its own io_uring loop, two Redis
 * connections (one blocked reading the admission journal, one for
 * everything else) and every adapter's connections. HTTP workers never
 * touch its state: coverage and delivery states go to Redis in batches
 * (every DISPATCH_FLUSH_MS), metrics to a text snapshot behind a mutex.
 *
 * Work arrives through the journal stream ({prefix}journal) read with a
 * consumer group, so a restarted engine first re-reads its own pending
 * entries (admitted, not finished) and resumes them without re-sending
 * what was already accepted or delivered (their states are in
 * {prefix}d:{id}). An entry is acknowledged when its campaign finished.
 * In-flight deliveries at a crash (sent, not yet answered) are sent again:
 * at-least-once, because a warning lost is worse than a warning twice.
 */
#ifndef TOCSIN_DISPATCH_H
#define TOCSIN_DISPATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define DISPATCH_FLUSH_MS 200

struct dispatcher;
struct adapter_ops;

/* Finds an adapter by its name (adapters/registry.c provides adapter_find). */
typedef const struct adapter_ops *(*adapter_lookup)(const char *name);

/*
 * Set up lanes and adapters from the config (start-up errors name the
 * lane and key). NULL + err on failure.
 */
struct dispatcher *dispatch_new(const struct config *cfg, adapter_lookup lookup, char *err,
				size_t errlen);
int dispatch_start(struct dispatcher *dp, char *err, size_t errlen);
/* Stop adapters and the thread; deliveries in flight stay journalled for resumption. */
void dispatch_stop(struct dispatcher *dp);
void dispatch_free(struct dispatcher *dp);

/* The latest Prometheus text (malloc'd copy), or NULL. Thread-safe. */
char *dispatch_metrics(struct dispatcher *dp);

/*
 * The latest operator view as JSON (malloc'd copy), or NULL. Thread-safe.
 * {"lanes": [{name, channel, platform, rate, burst, window, queued, inflight,
 *             up, paused, pause_reason, paused_for_ms, counters{...}, adapter{...}}],
 *  "warnings": [{id, state, status, colour, severity, headline, drill, elapsed_ms,
 *                targeted, reached, accepted, failed, census, t90_ms,
 *                series: [[elapsed_ms, reached_sms, reached_app, reached_terminal], ...]}],
 *  "readiness": {population, persons_online, share, terminals_online,
 *                terminals_total, offline_longest: [{id, last_seen}]}}
 */
char *dispatch_status(struct dispatcher *dp);

#endif
