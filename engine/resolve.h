/*
 * engine/resolve.h: recipient resolution from the population data in Redis
 * (data model: engine/README-population.md).
 *
 * A resolver expands a warning's targets (any mix of districts, streets,
 * communities, buildings and households) into households and their
 * addresses, over a struct redis_client on the caller's loop: every
 * command pipelined, never a blocking call. Results are streamed: one
 * batch per building list (LRANGE hh:{B}) as its reply arrives, so the
 * first batch reaches the consumer long before the last reply.
 *
 * Guarantees:
 *   - each household is emitted at most once, whatever the overlap of the
 *     targets (a building is expanded once; a household target inside an
 *     expanded building is skipped);
 *   - each address (phone number, app token, terminal id) is emitted at
 *     most once per resolution, even when two households share it;
 *   - every pointer in a batch is valid only during the batch callback:
 *     the consumer copies what it keeps;
 *   - on_done runs exactly once, after every command the resolver queued
 *     has come back, when resolver_start() returned non-NULL; then the
 *     resolver frees itself (the pointer is dead once on_done returns).
 *
 * Memory, per resolution: 8 bytes x 2 (hash slot at <= 50% load) per
 * distinct address (sized once from the targets' seg:{id} aggregates; in
 * 2 MiB huge pages when that large, so rounded up to 2 MiB), ~48 bytes per
 * expanded community/building (its id, interned, and its set slot), the
 * copied targets, and the batch arrays sized for the largest building.
 * Redis replies are held only while their callback runs; at most
 * RESOLVE_WINDOW building lists are in flight.
 * Phone numbers are deduplicated exactly (an E.164 number fits 50 bits);
 * app tokens and terminal ids by a 62-bit hash (collision odds ~1e-7 for
 * two million tokens: a collision would drop one address).
 */
#ifndef TOCSIN_RESOLVE_H
#define TOCSIN_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "redis.h"

#define RESOLVE_WINDOW 256      /* building lists (and their terminal lists) in flight */
#define RESOLVE_MAX_TARGETS 1024

/*
 * The population's layout, as `tocsin load` writes it in meta `layout`
 * ("tocsin-pop-layout-4"; engine/README.md, Key layout). From layout 4 on,
 * app tokens are in ha:{building}, not in the household records.
 */
#define POP_LAYOUT_PREFIX "tocsin-pop-layout-"
#define POP_LAYOUT 4
#define POP_LAYOUT_APPS_APART 4
#define POP_LAYOUT_STR_(n) #n
#define POP_LAYOUT_STR(n) POP_LAYOUT_STR_(n)
#define POP_LAYOUT_NAME POP_LAYOUT_PREFIX POP_LAYOUT_STR(POP_LAYOUT)

enum resolve_status {
	RESOLVE_OK,
	RESOLVE_UNKNOWN_TARGETS, /* some targets are neither segments nor households */
	RESOLVE_NO_POPULATION,   /* no tocsin:pop:current */
	RESOLVE_VERSION_GONE,    /* the pinned version was retired mid-resolution */
	RESOLVE_REDIS_ERROR,     /* connection lost or an error reply */
	RESOLVE_NOMEM,
	RESOLVE_CANCELLED,
};

const char *resolve_strerror(enum resolve_status s);

enum resolve_channel { RESOLVE_SMS, RESOLVE_APNS, RESOLVE_FCM, RESOLVE_WEBHOOK, RESOLVE_TERMINAL,
		       RESOLVE_NCHANNELS };

const char *resolve_channel_name(enum resolve_channel c);

struct resolve_household {
	const char *building;  /* NUL-terminated */
	const char *suffix;    /* id = building + suffix; not NUL-terminated */
	size_t suffix_len;
	const char *segment;   /* the community's id, NUL-terminated */
	unsigned persons;
	unsigned lang;         /* index into the warning's languages */
};

struct resolve_addr {
	enum resolve_channel channel;
	const char *addr;      /* not NUL-terminated: phone "+86...", token, terminal id */
	size_t len;
	/* Persons this address accounts for: the household's persons on the
	 * first address of a household per channel, 0 on its others (so sums
	 * never double-count); a terminal's covers_persons. */
	unsigned persons;
	unsigned lang;
	const char *segment;   /* community id */
	const char *term_segment; /* terminals: the building or community it covers */
	long household;        /* index into the batch's households; -1 for terminals */
};

struct resolve_batch {
	const struct resolve_household *households;
	size_t n_households;
	const struct resolve_addr *addrs;
	size_t n_addrs;
};

struct resolve_stats {
	long long version;
	uint64_t households, persons, batches, commands;
	uint64_t addrs[RESOLVE_NCHANNELS];
	uint64_t duplicates;   /* addresses dropped as already emitted */
	uint64_t malformed;    /* household or terminal records skipped as malformed */
	uint64_t first_batch_us, total_us; /* since resolver_start (CLOCK_MONOTONIC) */
};

/* Unknown ids (copied targets) are listed for RESOLVE_UNKNOWN_TARGETS. */
struct resolve_result {
	enum resolve_status status;
	const char *reason;             /* for people */
	const char *const *unknown;
	size_t n_unknown;
	const struct resolve_stats *stats;
};

/*
 * What a resolution is expected to emit, from the targets' seg:{id}
 * aggregates, given once before the first batch so that the consumer can
 * size its tables: an address shared by two households counts twice (an
 * overestimate), a household target counts as one household with four
 * phones and four tokens. Not given when the aggregates make no sense.
 */
struct resolve_size {
	uint64_t households, phones, apps, terminals;
};

/*
 * A zeroed address-set table kept between resolutions (one per dispatcher,
 * used from its thread only). A resolution whose set fits takes it instead
 * of mapping a fresh one, and gives it back cleared when it ends: a
 * district's table is several MB whose first touch (page faults, huge
 * pages zeroed by the kernel) would otherwise land in every warning's
 * first hundred milliseconds. All zero: { 0 }.
 */
struct resolve_spare {
	uint64_t *slots;
	void *map;
	size_t map_len, cap;
};

/* Have a table for `addrs` addresses ready, every page faulted in (a
 * smaller one is replaced). 0, or -ENOMEM (the spare is left as it was). */
int resolve_spare_warm(struct resolve_spare *s, uint64_t addrs);
void resolve_spare_release(struct resolve_spare *s);

typedef void (*resolve_batch_cb)(void *arg, const struct resolve_batch *b);
typedef void (*resolve_size_cb)(void *arg, const struct resolve_size *s);
typedef void (*resolve_done_cb)(void *arg, const struct resolve_result *res);

struct resolver;

struct resolve_params {
	struct loop *loop;
	struct redis_client *redis;  /* must be up */
	const char *prefix;          /* "tocsin:" -> keys "tocsin:pop:..." */
	const char *const *targets;  /* copied */
	size_t n_targets;
	const char *const *languages; /* the warning's info languages, in order; copied */
	size_t n_languages;
	resolve_batch_cb on_batch;
	resolve_size_cb on_size;     /* optional */
	resolve_done_cb on_done;
	void *arg;
	struct resolve_spare *spare; /* optional (resolve_spare above) */
	/* Which addresses to collect (RESOLVE_WANT_*); 0: all. Households are always
	   emitted; a kind left out is neither parsed, deduplicated nor asked for
	   (terminal lists are not read): a warning on the app channel alone skips
	   the district's phones. */
	unsigned want;
};
#define RESOLVE_WANT_SMS 1u
#define RESOLVE_WANT_APPS 2u
#define RESOLVE_WANT_TERMINALS 4u

/* Start; NULL (and no callback ever) when Redis is down or memory ran out. */
struct resolver *resolver_start(const struct resolve_params *p);
/* Stop emitting batches; on_done follows with RESOLVE_CANCELLED once replies are back. */
void resolver_cancel(struct resolver *r);

/*
 * Admission check: does every target exist in the current version? One
 * GET, then one pipelined EXISTS per target (with the meta's hix_buckets),
 * then HEXISTS in the household index for the rest. cb runs exactly once
 * when this returns 0: status RESOLVE_OK (all exist), RESOLVE_UNKNOWN_TARGETS
 * (ids listed), RESOLVE_NO_POPULATION (all targets listed) or
 * RESOLVE_REDIS_ERROR. Targets are copied. -errno (no cb) when not queued.
 */
typedef void (*resolve_check_cb)(void *arg, const struct resolve_result *res);
int resolver_check_targets(struct redis_client *rc, const char *prefix,
			   const char *const *targets, size_t n, resolve_check_cb cb, void *arg);

/* Which of langs[0..n) a household language picks: exact (case-insensitive),
 * then the same primary subtag ("en" ~ "en-GB"), else 0. */
unsigned resolve_pick_lang(const char *lang, size_t len, const char *const *langs, size_t n);

/* FNV-1a 32 of the household id, as the loader buckets the hix index. */
uint32_t resolve_fnv1a32(const char *s, size_t n);

#endif
