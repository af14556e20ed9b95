/*
 * engine/dispatch_internal.h: the dispatcher's state, shared by its files:
 *
 *   dispatch.c          lifecycle, the journal stream, campaigns start to finish
 *   dispatch_plan.c     resolution batches -> deliveries (and resumption)
 *   dispatch_sched.c    lanes: assignment, scheduling, outcomes, retries, escalation
 *   dispatch_publish.c  delivery states and coverage to Redis, metrics text
 *
 * Only the dispatcher's thread touches any of it, except `metrics`
 * (guarded by metrics_lock).
 */
#ifndef TOCSIN_DISPATCH_INTERNAL_H
#define TOCSIN_DISPATCH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "adapter.h"
#include "buf.h"
#include "campaign.h"
#include "config.h"
#include "dispatch.h"
#include "lane.h"
#include "loop.h"
#include "redis.h"
#include "resolve.h"

/* A delivery waiting: for its retry time, or for its escalation stage. */
struct waiting {
	struct delivery **items;
	size_t n, cap;
};

struct dispatcher {
	struct config cfg;
	struct loop loop;
	struct redis_client redis;   /* commands */
	struct redis_client stream;  /* XREADGROUP ... BLOCK */
	struct redis_client writer;  /* delivery states and coverage: big fire-and-forget
	                                writes that must not delay resolution replies */
	pthread_t thread;
	bool started;
	atomic_bool stop;
	int wake_fd;
	struct op wake_op;
	uint64_t wake_val;
	bool wake_armed;

	struct lane *lanes;
	size_t n_lanes;
	struct lane_host host;

	struct campaign *campaigns;
	uint64_t next_delivery_id, next_seq;
	struct id_slot {
		uint64_t id;         /* 0: empty */
		struct delivery *d;
	} *by_id;                    /* open-addressing map of live deliveries */
	size_t by_id_cap, by_id_n;
	struct addr_slot {
		uint32_t key;        /* addr_hash of d */
		struct delivery *d;  /* NULL: empty */
	} *by_addr;                  /* live app deliveries by (warning, address) */
	size_t by_addr_cap, by_addr_n;
	struct waiting retry;        /* min-heap on not_before_ms */
	uint64_t warmed[CHANNEL_COUNT]; /* the population figures sched_warm last saw */
	uint64_t warmed_n[CHANNEL_COUNT]; /* deliveries per channel it made memory ready for */
	struct resolve_spare resolve_spare; /* the resolvers' address set, made ready by sched_warm */
	struct delivery_pool {       /* fixed-size cells for deliveries (dispatch_sched.c) */
		void *free[2];       /* free cells per class, chained through their first word */
		void *chunks;        /* chunks, chained through their first word */
		char *bump[2], *end[2]; /* the unused rest of each class's current chunk */
		size_t carved[2];    /* cells cut so far per class (live + free) */
	} pool;

	/* escalation: stage per channel (0 = at once), delay between stages */
	unsigned stage[CHANNEL_COUNT];
	bool channel_on[CHANNEL_COUNT];

	struct timer sched_timer, flush_timer, tick_timer;
	bool group_ready, reading;
	bool closing;                /* adapters are closing or closed: submit nothing more */
	bool pel_drained;            /* own pending entries re-read after a restart */
	char pel_cursor[48];         /* the last pending entry re-read */

	/* Delivery states to persist, in runs of one warning: "ID\0" then its records
	   "Skey\0" (S the state letter, key the address or its hash: state_chunk_key), ready
	   to go out as they are (publish_state) */
	struct buf dirty;
	size_t *dirty_runs, n_dirty_runs, cap_dirty_runs; /* where each run starts */
	uint64_t dirty_run;          /* campaign_serial of the last run; 0 when none */
	pthread_mutex_t metrics_lock; /* guards metrics and status */
	char *metrics;
	char *status;
	uint64_t population, terminals_total; /* from the population meta, refreshed */
	uint64_t population_at_ms;
	uint64_t started_ms;
	uint64_t views_due_ms;       /* next rebuild of status and metrics (publish_views) */
	uint64_t coverage_due_ms;    /* next coverage write (publish_flush) */
};

/* dispatch_sched.c */
void sched_init(struct dispatcher *dp);
void kick(struct dispatcher *dp);
void sched_enqueue(struct dispatcher *dp, struct delivery *d);
void sched_hold(struct dispatcher *dp, struct delivery *d);
void sched_release_held(struct dispatcher *dp, struct campaign *c, unsigned stage);
void sched_retract(struct dispatcher *dp, struct campaign *c, enum delivery_state to);
void sched_expire(struct dispatcher *dp, struct campaign *c);
void sched_report(void *ctx, struct delivery *d, enum outcome o, const char *reason,
		  uint32_t retry_after_ms);
void sched_receipt(void *ctx, uint64_t id, enum outcome o, const char *reason);
void sched_lane_up(void *ctx, struct lane *l, bool up, const char *why);
void sched_app_ack(struct dispatcher *dp, const char *warning, const char *address);
/* The (warning, address) map's key of an app delivery to be, and a prefetch of its home
   slot: planning asks a few addresses ahead, so that delivery_new's insert (a cache miss
   per app delivery, ~8 % of the dispatcher in the push bench) finds it in the cache. */
uint32_t sched_addr_key(const struct campaign *c, const char *address);
void sched_addr_prefetch(const struct dispatcher *dp, uint32_t key);
/* addr_hash: sched_addr_key(c, addr) for an app delivery (planning has it already). */
struct delivery *delivery_new(struct dispatcher *dp, struct campaign *c, enum channel ch,
			      const char *addr, size_t len, uint32_t addr_hash);
void delivery_finish(struct dispatcher *dp, struct delivery *d, enum delivery_state to,
		     const char *reason);
void sched_release(struct dispatcher *dp);
/* Give a delivery's memory back (it is in no map any more, or the dispatcher is going). */
void delivery_release(struct dispatcher *dp, struct delivery *d);
/* About per[ch] more deliveries of c per channel are coming: size the maps, rings and adapters. */
void sched_reserve(struct dispatcher *dp, struct campaign *c, const uint64_t per[CHANNEL_COUNT]);
/*
 * The scheduling step now, instead of at the end of the loop iteration
 * (kick): a resolver batch's deliveries are handed to the adapters while
 * the next batches are still being planned. With `submit`, their sends also
 * go to the kernel at once (a warning's first batch); without, they go with
 * everything else queued in this iteration when the loop next submits, or
 * when a ring's submission queue fills. Adapters never report from inside
 * submit (adapter.h), so this is safe from any callback.
 */
void sched_now(struct dispatcher *dp, bool submit);
/*
 * Deliveries per channel of a warning to the whole population (at most
 * cfg.warm_deliveries in all): size the maps, rings and delivery cells for
 * them and fault every page in now, so that such a warning finds its
 * memory ready. Only grows.
 */
void sched_warm(struct dispatcher *dp, const uint64_t per[CHANNEL_COUNT]);

/* dispatch_plan.c */
void plan_campaign(struct dispatcher *dp, struct campaign *c);
void plan_cancel_terminals(struct dispatcher *dp, struct campaign *cancel, struct campaign *ref);

/* dispatch_publish.c */
/* A list element of {prefix}d:{id} (dispatch_publish.c). Small enough for
   Redis to keep in its list's packed nodes from its small-size memory: with
   64 KB elements (1 MB per RPUSH) each flush made Redis fault in fresh pages
   for the query, the list and the append-only buffer, ~700 faults and ~7 ms
   more Redis CPU per 80,000 states (bench/RESULTS.md, SMS, "State chunks"). */
#define PUBLISH_CHUNK_BYTES (4u << 10)
/* Bytes of the first chunk of the n bytes of records at r: whole records
   ("S" address NUL), at most PUBLISH_CHUNK_BYTES unless one record is longer. */
size_t publish_chunk_len(const uint8_t *r, size_t n);
void publish_state(struct dispatcher *dp, struct campaign *c, const char *address, char state);
void publish_flush(struct dispatcher *dp);
/* The status JSON and the metrics text, rebuilt together (see dispatch_publish.c). */
void publish_views(struct dispatcher *dp);

/* dispatch.c */
void campaign_check_done(struct dispatcher *dp, struct campaign *c);
struct campaign *campaign_find(struct dispatcher *dp, const char *id);

/* One letter per delivery state, as persisted in {prefix}d:{id}. */
char delivery_state_letter(enum delivery_state s);
int delivery_state_from_letter(char c);

#endif
