/*
 * engine/resolve.c: recipient resolution over the async Redis client
 * (see resolve.h for the contract, README-population.md for the keys).
 *
 * State table (every command pipelined; `outstanding` counts commands
 * queued and not yet answered):
 *
 *   CURRENT  --GET pop:current: nil--------------------------> FAILING (no population)
 *   CURRENT  --N--> HMGET v{N}:meta + HMGET seg:{T} per target --> STREAM
 *   STREAM   seg reply: district/street -> LRANGE kids (tree_pending)
 *                       community -> LRANGE terms at once, LRANGE kids (past
 *                         the first EARLY_COMMUNITIES: once buildings are pumped)
 *                       building -> building queue
 *                       nil -> HGET hix:{bucket} T (hix_pending)
 *            buildings are pumped ([LRANGE ha] + LRANGE hh + LRANGE terms, <= RESOLVE_WINDOW
 *            in flight) once every target is classified (no unknown id);
 *            each hh reply is parsed and emitted as one batch;
 *            when the tree is expanded (tree_pending == 0), household
 *            targets whose building was not expanded get HGET seg parent +
 *            LRANGE hh (filtered to the one household)
 *   STREAM   --all answered, queue empty--> EXISTS v{N}:meta --> FINAL
 *   FINAL    --1--> DONE(ok)   --0--> DONE(version gone)
 *   any      --NULL/error reply, unknown target, ENOMEM, cancel--> FAILING
 *   FAILING  --outstanding == 0--> DONE (on_done, then free)
 *
 * Invariants: a segment id enters `seen` once, so each community and
 * building is expanded once whatever the overlap; a household target is
 * expanded only after the tree is complete and only if its building is
 * not in `seen`; an address enters `addrs` once. The resolver is freed
 * only in finish(), which runs when nothing it queued is outstanding.
 */
#include "resolve.h"

#include "pop_record.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>

enum seg_kind { K_NONE = -1, K_DISTRICT, K_STREET, K_COMMUNITY, K_BUILDING };
enum rstate { RS_CURRENT, RS_STREAM, RS_FINAL, RS_FAILING };

#define KEY_MAX 512
#define LANG_CACHE 8
#define EARLY_COMMUNITIES 4 /* asked for before the first building list */
#define FIRST_SET 2048 /* addresses the set holds until the first batch is out */
#define ARENA_CHUNK (64 * 1024)
#define TAG_PHONE (1ull << 62)
#define TAG_APP (2ull << 62)
#define TAG_TERM (3ull << 62)
#define HASH_MASK ((1ull << 62) - 1)

/* ---- small containers: string arena, string set, u64 set ---- */

struct arena_chunk {
	struct arena_chunk *next;
	size_t used, size;
	char data[];
};

struct strset {
	const char **slots;
	size_t cap, n;
};

struct u64set {
	uint64_t *slots;
	size_t cap, n;
	void *map;             /* own mapping (large tables), else NULL: slots from calloc */
	size_t map_len;
	struct resolve_spare *spare; /* where a table may come from and goes back to, or NULL */
	bool from_spare;       /* slots are the spare's: cleared and given back when done */
};

static const char *arena_dup(struct arena_chunk **a, const char *s, size_t n)
{
	struct arena_chunk *c = *a;
	if (!c || c->used + n + 1 > c->size) {
		size_t size = n + 1 > ARENA_CHUNK ? n + 1 : ARENA_CHUNK;
		c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->next = *a;
		c->used = 0;
		c->size = size;
		*a = c;
	}
	char *p = c->data + c->used;
	memcpy(p, s, n);
	p[n] = '\0';
	c->used += n + 1;
	return p;
}

static void arena_free(struct arena_chunk *a)
{
	while (a) {
		struct arena_chunk *next = a->next;
		free(a);
		a = next;
	}
}

uint32_t resolve_fnv1a32(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static inline uint64_t load64(const char *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t load32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static inline uint64_t mum(uint64_t a, uint64_t b)
{
	unsigned __int128 m = (unsigned __int128)a * b;
	return (uint64_t)m ^ (uint64_t)(m >> 64);
}

/* 64-bit string hash, 16 bytes per step (wyhash-style multiply-fold): an
 * FCM token (~160 bytes) costs ~10 multiplies instead of 160 dependent
 * FNV rounds. Only used within one resolution (dedupe), never stored. */
static uint64_t hash64(const char *s, size_t n)
{
	const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
		       k2 = 0x8ebc6af09c88c6e3ull;
	uint64_t h = k0 ^ (n * k1), a = 0, b = 0;
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		h = mum(load64(s + i) ^ k1, load64(s + i + 8) ^ h);
	size_t rem = n - i;
	if (rem >= 8) {
		a = load64(s + i);
		b = load64(s + n - 8);
	} else if (rem >= 4) {
		a = load32(s + i);
		b = load32(s + n - 4);
	} else if (rem) {
		a = (uint64_t)(unsigned char)s[i] << 16 | (uint64_t)(unsigned char)s[i + rem / 2] << 8 |
		    (unsigned char)s[n - 1];
	}
	return mum(k2 ^ n, mum(a ^ k1, b ^ h ^ k2));
}

/* Slot of s (found or empty). cap is a power of two. */
static size_t strset_slot(const struct strset *set, const char *s, size_t n)
{
	size_t i = hash64(s, n) & (set->cap - 1);
	while (set->slots[i] && (strncmp(set->slots[i], s, n) || set->slots[i][n]))
		i = (i + 1) & (set->cap - 1);
	return i;
}

static bool strset_has(const struct strset *set, const char *s, size_t n)
{
	return set->cap && set->slots[strset_slot(set, s, n)];
}

static int strset_grow(struct strset *set)
{
	size_t cap = set->cap ? set->cap * 2 : 256;
	struct strset bigger = { calloc(cap, sizeof(char *)), cap, set->n };
	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i])
			bigger.slots[strset_slot(&bigger, set->slots[i], strlen(set->slots[i]))] =
				set->slots[i];
	free(set->slots);
	*set = bigger;
	return 0;
}

/* 1 = added (*out interned), 0 = present (*out the existing copy), -ENOMEM. */
static int strset_add(struct strset *set, struct arena_chunk **a, const char *s, size_t n,
		      const char **out)
{
	if ((set->n + 1) * 2 > set->cap && strset_grow(set) < 0)
		return -ENOMEM;
	size_t i = strset_slot(set, s, n);
	if (set->slots[i]) {
		*out = set->slots[i];
		return 0;
	}
	if (!(*out = arena_dup(a, s, n)))
		return -ENOMEM;
	set->slots[i] = *out;
	set->n++;
	return 1;
}

/*
 * The address set: open addressing, 8-byte keys, <= 50% load, Fibonacci
 * hashing on the top bits. It is sized up front from the targets'
 * aggregates (seg:{id} phones/apps/terminals), so a district never
 * rehashes; a table of 2 MiB or more is its own mapping with
 * MADV_HUGEPAGE: the inserts are random by nature, and with 4 KiB pages
 * every one of them would also be a TLB miss (and the first touch of each
 * page a fault).
 */
#define HUGE_PAGE (2u << 20)

static uint64_t *slots_alloc(size_t cap, void **map, size_t *map_len)
{
	size_t bytes = cap * sizeof(uint64_t);
	*map = NULL;
	*map_len = 0;
	if (bytes < HUGE_PAGE)
		return calloc(cap, sizeof(uint64_t));
	size_t huge = (bytes + HUGE_PAGE - 1) & ~(size_t)(HUGE_PAGE - 1);
	size_t len = huge + HUGE_PAGE;
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
	(void)madvise((void *)a, huge, MADV_HUGEPAGE); /* a hint: fine without THP */
	*map = p;
	*map_len = len;
	return (uint64_t *)a; /* zero-filled by the kernel */
}

static void slots_free(uint64_t *slots, void *map, size_t map_len)
{
	if (map)
		munmap(map, map_len);
	else
		free(slots);
}

/* Home slot: Fibonacci-scramble the key, then map it onto [0, cap) with a
 * multiply (cap need not be a power of two: exactly 2 slots per address). */
static inline size_t u64set_home(const struct u64set *set, uint64_t k)
{
	return (size_t)(((unsigned __int128)(k * 0x9e3779b97f4a7c15ull) * set->cap) >> 64);
}

static size_t u64set_cap_for(size_t n)
{
	return 2 * (n + 1) > 4096 ? 2 * (n + 1) : 4096;
}

/* Done with set's table: back to the spare, cleared (when it came from there
 * and the spare is empty), or unmapped / freed. */
static void u64set_drop(struct u64set *set)
{
	struct resolve_spare *sp = set->spare;
	if (set->from_spare && sp && !sp->slots) {
		memset(set->slots, 0, set->cap * sizeof(uint64_t));
		*sp = (struct resolve_spare){ set->slots, set->map, set->map_len, set->cap };
	} else {
		slots_free(set->slots, set->map, set->map_len);
	}
}

/* Make room for n keys in all at <= 50% load. 0 or -ENOMEM. */
static int u64set_reserve(struct u64set *set, size_t n)
{
	size_t cap = u64set_cap_for(n);
	if (cap <= set->cap)
		return 0;
	struct resolve_spare *sp = set->spare;
	struct u64set bigger = { .cap = cap, .n = set->n, .spare = sp };
	/* ready and zeroed: take it, unless it is far larger than needed (a community's
	   warning would pay for clearing a district's table when it gives it back) */
	if (sp && sp->slots && sp->cap >= cap && sp->cap / 4 <= cap) {
		bigger.slots = sp->slots;
		bigger.map = sp->map;
		bigger.map_len = sp->map_len;
		bigger.cap = cap = sp->cap;
		bigger.from_spare = true;
		*sp = (struct resolve_spare){ 0 };
	} else if (!(bigger.slots = slots_alloc(cap, &bigger.map, &bigger.map_len))) {
		return -ENOMEM;
	}
	for (size_t i = 0; i < set->cap; i++) {
		uint64_t k = set->slots[i];
		if (!k)
			continue;
		size_t j = u64set_home(&bigger, k);
		while (bigger.slots[j])
			j = j + 1 == cap ? 0 : j + 1;
		bigger.slots[j] = k;
	}
	u64set_drop(set);
	*set = bigger;
	return 0;
}

static void u64set_free(struct u64set *set)
{
	u64set_drop(set);
	*set = (struct u64set){ 0 };
}

int resolve_spare_warm(struct resolve_spare *s, uint64_t addrs)
{
	if (addrs > (uint64_t)1 << 40)
		return -ENOMEM;
	size_t cap = u64set_cap_for((size_t)addrs);
	if (s->slots && s->cap >= cap)
		return 0;
	struct resolve_spare w = { .cap = cap };
	if (!(w.slots = slots_alloc(cap, &w.map, &w.map_len)))
		return -ENOMEM;
	/* A write per page makes it resident (a read would map the shared zero page). */
	volatile uint64_t *v = w.slots;
	for (size_t i = 0; i < cap; i += 4096 / sizeof(uint64_t))
		v[i] = 0;
	resolve_spare_release(s);
	*s = w;
	return 0;
}

void resolve_spare_release(struct resolve_spare *s)
{
	if (s->slots)
		slots_free(s->slots, s->map, s->map_len);
	*s = (struct resolve_spare){ 0 };
}

static inline void u64set_prefetch(const struct u64set *set, uint64_t k)
{
	if (set->cap)
		__builtin_prefetch(&set->slots[u64set_home(set, k)]);
}

/* k != 0. 1 = added, 0 = present, -ENOMEM. */
static inline int u64set_add(struct u64set *set, uint64_t k)
{
	if ((set->n + 1) * 2 > set->cap && u64set_reserve(set, set->n * 2 + 1) < 0)
		return -ENOMEM;
	size_t j = u64set_home(set, k);
	while (set->slots[j]) {
		if (set->slots[j] == k)
			return 0;
		j = j + 1 == set->cap ? 0 : j + 1;
	}
	set->slots[j] = k;
	set->n++;
	return 1;
}

/* ---- the resolver ---- */

struct target {
	const char *id;        /* in the arena */
	size_t len;
	enum seg_kind kind;
	size_t bld_len;        /* household targets: length of the building id (hix) */
	const char *community; /* household targets: parent of the building */
	uint64_t naddrs;       /* segments: phones + apps + terminals below (seg aggregates) */
	uint64_t agg[4];       /* segments: households, phones, apps, terminals below */
	struct resolver *r;    /* so a target can be a command's context */
};

struct queued {
	const char *building, *community;
};

struct cmd_ctx {               /* context of one kids/hh/terms/term command */
	struct resolver *r;
	const char *id;        /* interned */
	const char *community; /* interned */
	enum seg_kind kind;    /* kids: kind of the children */
	struct target *filter; /* hh of a household target */
	char term_id[];        /* term HMGET: the terminal id */
};

struct resolver {
	struct loop *loop;
	unsigned want;         /* RESOLVE_WANT_*: the address kinds collected */
	struct redis_client *rc;
	resolve_batch_cb on_batch;
	resolve_size_cb on_size;
	resolve_done_cb on_done;
	void *arg;
	enum rstate state;
	enum resolve_status status;
	char reason[256];
	char pfx[128];         /* "tocsin:pop:" */
	char vpfx[160];        /* "tocsin:pop:v{N}:" */
	uint32_t hix_buckets;
	struct target *targets;
	size_t n_targets;
	const char **langs;
	size_t n_langs;
	const char **unknown;
	size_t n_unknown;
	struct arena_chunk *arena;
	struct strset seen;
	struct u64set addrs;
	struct queued *queue;
	size_t q_head, q_len, q_cap;
	size_t outstanding, tree_pending, hix_pending, targets_pending, bld_inflight;
	bool households_started, sized;
	bool pumped;           /* a building list was asked for (or communities flushed) */
	const char **deferred; /* communities not asked for yet (expand_community) */
	size_t n_deferred, deferred_cap, communities_sent;
	size_t addrs_hint;     /* distinct addresses expected (size_addrs) */
	struct {
		char tag[36];
		unsigned char len;
		unsigned idx;
	} lcache[LANG_CACHE];
	size_t n_lcache, lcache_next;
	struct resolve_household *bh;
	size_t bh_n, bh_cap;
	struct resolve_addr *ba;
	uint64_t *bk;          /* dedupe key of each ba[] entry while staged */
	size_t ba_n, ba_cap;
	uint64_t start_us;
	struct resolve_stats stats;
	/* Layout 4: app tokens apart, in ha:{B}, asked for just before hh:{B}
	 * when the app channel is wanted; its records wait here (copied: a
	 * reply lives only during its callback) for that hh reply. */
	bool apps_apart;
	const char *ha_for;    /* the interned building the records are for, or NULL */
	char *ha_buf;
	size_t ha_len, ha_cap;
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

const char *resolve_strerror(enum resolve_status s)
{
	switch (s) {
	case RESOLVE_OK: return "ok";
	case RESOLVE_UNKNOWN_TARGETS: return "unknown targets";
	case RESOLVE_NO_POPULATION: return "no population data loaded";
	case RESOLVE_VERSION_GONE: return "the population version was retired during resolution";
	case RESOLVE_REDIS_ERROR: return "Redis failed";
	case RESOLVE_NOMEM: return "out of memory";
	case RESOLVE_CANCELLED: return "cancelled";
	}
	return "?";
}

const char *resolve_channel_name(enum resolve_channel c)
{
	static const char *const names[RESOLVE_NCHANNELS] = { "sms", "apns", "fcm", "webhook",
							      "terminal" };
	return (unsigned)c < RESOLVE_NCHANNELS ? names[c] : "?";
}

unsigned resolve_pick_lang(const char *lang, size_t len, const char *const *langs, size_t n)
{
	if (!len)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strlen(langs[i]) == len && !strncasecmp(langs[i], lang, len))
			return (unsigned)i;
	size_t primary = strcspn(lang, "-");
	primary = primary < len ? primary : len;
	for (size_t i = 0; i < n; i++) {
		size_t p = strcspn(langs[i], "-");
		if (p == primary && !strncasecmp(langs[i], lang, p))
			return (unsigned)i;
	}
	return 0;
}

static void fail(struct resolver *r, enum resolve_status s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail(struct resolver *r, enum resolve_status s, const char *fmt, ...)
{
	if (r->state == RS_FAILING)
		return;
	r->state = RS_FAILING;
	r->status = s;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

/* Queue "CMD {vpfx}{kind}{id} [extra...]"; on refusal the resolver fails. */
static bool send_cmd(struct resolver *r, redis_reply_cb cb, void *ctx, const char *cmd,
		     const char *kind, const char *id, size_t idlen, int nextra,
		     const char *const *extra)
{
	char key[KEY_MAX];
	const char *argv[8] = { cmd, key };
	size_t lens[8] = { strlen(cmd) };
	size_t vl = strlen(r->vpfx), kl = strlen(kind);
	if (vl + kl + idlen >= sizeof(key) || nextra > 6) {
		fail(r, RESOLVE_REDIS_ERROR, "key too long for '%.*s'", (int)idlen, id);
		return false;
	}
	memcpy(key, r->vpfx, vl);
	memcpy(key + vl, kind, kl);
	memcpy(key + vl + kl, id, idlen);
	lens[1] = vl + kl + idlen;
	for (int i = 0; i < nextra; i++) {
		argv[2 + i] = extra[i];
		lens[2 + i] = strlen(extra[i]);
	}
	int ret = redis_command(r->rc, cb, ctx, 2 + nextra, argv, lens);
	if (ret < 0) {
		fail(r, RESOLVE_REDIS_ERROR, "Redis refused a command: %s", strerror(-ret));
		return false;
	}
	r->outstanding++;
	r->stats.commands++;
	return true;
}

static struct cmd_ctx *ctx_new(struct resolver *r, const char *id, const char *community,
			       enum seg_kind kind, struct target *filter, const char *term,
			       size_t term_len)
{
	struct cmd_ctx *c = malloc(sizeof(*c) + term_len + 1);
	if (!c) {
		fail(r, RESOLVE_NOMEM, "out of memory");
		return NULL;
	}
	*c = (struct cmd_ctx){ r, id, community, kind, filter };
	memcpy(c->term_id, term ? term : "", term_len);
	c->term_id[term_len] = '\0';
	return c;
}

/* Send with a fresh context; frees it if the command was refused. */
static void send_ctx(struct resolver *r, redis_reply_cb cb, struct cmd_ctx *c, const char *cmd,
		     const char *kind, const char *id, size_t idlen, int nextra,
		     const char *const *extra)
{
	if (c && !send_cmd(r, cb, c, cmd, kind, id, idlen, nextra, extra))
		free(c);
}

static bool reply_failed(struct resolver *r, const redisReply *reply)
{
	if (!reply) {
		fail(r, RESOLVE_REDIS_ERROR, "the Redis connection was lost");
		return true;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		fail(r, RESOLVE_REDIS_ERROR, "Redis error: %.200s", reply->str);
		return true;
	}
	return r->state == RS_FAILING;
}

static void advance(struct resolver *r);

/* ---- tree expansion ---- */

static void on_kids(void *arg, redisReply *reply);
static void on_terms(void *arg, redisReply *reply);

static void expand_community(struct resolver *r, const char *s, size_t len);

static void queue_building(struct resolver *r, const char *b, const char *community)
{
	if (r->q_head + r->q_len == r->q_cap) {
		if (r->q_head) { /* compact before growing */
			memmove(r->queue, r->queue + r->q_head, r->q_len * sizeof(*r->queue));
			r->q_head = 0;
		} else {
			size_t cap = r->q_cap ? r->q_cap * 2 : 1024;
			struct queued *q = realloc(r->queue, cap * sizeof(*q));
			if (!q)
				return fail(r, RESOLVE_NOMEM, "out of memory");
			r->queue = q;
			r->q_cap = cap;
		}
	}
	r->queue[r->q_head + r->q_len++] = (struct queued){ b, community };
}

/* LRANGE kids of a community (interned id s): its buildings. */
static void send_community(struct resolver *r, const char *s, size_t len)
{
	struct cmd_ctx *c = ctx_new(r, s, s, K_BUILDING, NULL, NULL, 0);
	send_ctx(r, on_kids, c, "LRANGE", "kids:", s, len, 2, (const char *[]){ "0", "-1" });
	if (c && r->state != RS_FAILING)
		r->tree_pending++;
}

/*
 * A community's terminal list is asked for at once: its records are
 * deliveries by themselves (a few per community in a district; a warning
 * to every loudspeaker of a street is nothing else). Its building list is
 * another matter: replies come back in command order, so the first
 * building's households can only be answered after every building list
 * asked before it: for a district, ~140 replies and 7,000 ids to parse
 * first. Until the first buildings are pumped, only EARLY_COMMUNITIES
 * building lists are asked for; the others wait (counted in tree_pending)
 * and go out right behind the first building lists (flush_communities).
 */
static void expand_community(struct resolver *r, const char *s, size_t len)
{
	if (r->want & RESOLVE_WANT_TERMINALS)
		send_ctx(r, on_terms, ctx_new(r, s, s, K_NONE, NULL, NULL, 0), "LRANGE", "terms:", s,
			 len, 2, (const char *[]){ "0", "-1" });
	if (r->pumped || r->communities_sent < EARLY_COMMUNITIES) {
		r->communities_sent++;
		return send_community(r, s, len);
	}
	if (r->n_deferred == r->deferred_cap) {
		size_t cap = r->deferred_cap ? r->deferred_cap * 2 : 64;
		const char **d = realloc(r->deferred, cap * sizeof(*d));
		if (!d)
			return fail(r, RESOLVE_NOMEM, "out of memory");
		r->deferred = d;
		r->deferred_cap = cap;
	}
	r->deferred[r->n_deferred++] = s;
	r->tree_pending++;
}

/* Once buildings are in flight, or nothing else is awaited from the tree. */
static void flush_communities(struct resolver *r)
{
	if (!r->n_deferred || (!r->pumped && r->tree_pending > r->n_deferred))
		return;
	r->pumped = true; /* from now on communities go out as they are reached */
	for (size_t i = 0; i < r->n_deferred && r->state == RS_STREAM; i++) {
		r->tree_pending--;
		r->communities_sent++;
		send_community(r, r->deferred[i], strlen(r->deferred[i]));
	}
	r->n_deferred = 0;
}

/* Expand segment `id` of `kind`; community = its community (NULL above communities). */
static void expand(struct resolver *r, enum seg_kind kind, const char *id, size_t len,
		   const char *community)
{
	const char *s;
	int added = strset_add(&r->seen, &r->arena, id, len, &s);
	if (added < 0)
		return fail(r, RESOLVE_NOMEM, "out of memory");
	if (!added)
		return; /* reached before: overlapping targets */
	if (kind == K_BUILDING)
		return queue_building(r, s, community);
	if (kind == K_COMMUNITY)
		return expand_community(r, s, len);
	struct cmd_ctx *c = ctx_new(r, s, community, kind + 1, NULL, NULL, 0);
	send_ctx(r, on_kids, c, "LRANGE", "kids:", s, len, 2, (const char *[]){ "0", "-1" });
	if (c && r->state != RS_FAILING)
		r->tree_pending++;
}

static void on_kids(void *arg, redisReply *reply)
{
	struct cmd_ctx *c = arg;
	struct resolver *r = c->r;
	r->outstanding--;
	r->tree_pending--;
	if (!reply_failed(r, reply) && reply->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < reply->elements && r->state != RS_FAILING; i++) {
			const redisReply *e = reply->element[i];
			if (e->type == REDIS_REPLY_STRING)
				expand(r, c->kind, e->str, e->len, c->community);
		}
	}
	free(c);
	advance(r);
}

/* ---- batches ---- */

static bool batch_room(struct resolver *r, size_t hh, size_t ad)
{
	if (r->bh_n + hh > r->bh_cap) {
		size_t cap = (r->bh_n + hh) * 2;
		void *p = realloc(r->bh, cap * sizeof(*r->bh));
		if (!p)
			return false;
		r->bh = p;
		r->bh_cap = cap;
	}
	if (r->ba_n + ad > r->ba_cap) {
		size_t cap = (r->ba_n + ad) * 2;
		void *p = realloc(r->ba, cap * sizeof(*r->ba));
		if (!p)
			return false;
		r->ba = p;
		if (!(p = realloc(r->bk, cap * sizeof(*r->bk))))
			return false;
		r->bk = p;
		r->ba_cap = cap;
	}
	return true;
}

static void size_addrs_full(struct resolver *r);

static void batch_emit(struct resolver *r)
{
	if (r->state != RS_FAILING && (r->bh_n || r->ba_n)) {
		struct resolve_batch b = { r->bh, r->bh_n, r->ba, r->ba_n };
		if (!r->stats.batches++) {
			r->stats.first_batch_us = now_us() - r->start_us;
			r->on_batch(r->arg, &b);
			size_addrs_full(r);
		} else {
			r->on_batch(r->arg, &b);
		}
	}
	r->bh_n = r->ba_n = 0;
}

/*
 * Addresses of a building list are parsed first (staged in ba[] with their
 * keys in bk[], the key's home slot prefetched), then deduplicated in order
 * by dedupe_staged(): the set is far larger than the caches and its probes
 * are random, so issuing all of a building's misses together instead of one
 * at a time is what keeps them off the critical path.
 */
static inline int stage_addr(struct resolver *r, enum resolve_channel ch, uint64_t key,
			     const char *a, size_t len, const struct resolve_household *h)
{
	if (r->ba_n == r->ba_cap && !batch_room(r, 0, 1))
		return -ENOMEM;
	u64set_prefetch(&r->addrs, key);
	r->bk[r->ba_n] = key;
	r->ba[r->ba_n++] = (struct resolve_addr){
		.channel = ch, .addr = a, .len = len, .persons = h->persons,
		.lang = h->lang, .segment = h->segment, .household = (long)(r->bh_n - 1),
	};
	return 0;
}

/* Keep the staged ba[from..] not emitted before, in order; a household's
 * persons go to its first kept address per channel. 0 or -ENOMEM. */
static int dedupe_staged(struct resolver *r, size_t from)
{
	size_t w = from;
	long hh = -2;
	bool given[RESOLVE_NCHANNELS] = { 0 };
	for (size_t i = from; i < r->ba_n; i++) {
		struct resolve_addr *a = &r->ba[i];
		int added = u64set_add(&r->addrs, r->bk[i]);
		if (added < 0) {
			r->ba_n = w;
			return -ENOMEM;
		}
		if (!added) {
			r->stats.duplicates++;
			continue;
		}
		if (a->household != hh) {
			hh = a->household;
			memset(given, 0, sizeof(given));
		}
		if (given[a->channel])
			a->persons = 0;
		given[a->channel] = true;
		r->stats.addrs[a->channel]++;
		if (w != i)
			r->ba[w] = *a;
		w++;
	}
	r->ba_n = w;
	return 0;
}

/* "+" then <= 15 digits, straight into the 64-bit key (exact: fits 50 bits). */
static inline uint64_t phone_key(const char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 1; i < n && i < 17; i++)
		v = v * 10 + (uint64_t)(p[i] - '0');
	return TAG_PHONE | (v & HASH_MASK);
}

/* PHONES field: ';'-separated. */
static int add_phones(struct resolver *r, struct pop_span f, const struct resolve_household *h)
{
	const char *p = f.p, *end = f.p + f.len;
	struct pop_span ph;
	while (pop_next(&p, end, ';', &ph))
		if (ph.len && stage_addr(r, RESOLVE_SMS, phone_key(ph.p, ph.len), ph.p, ph.len, h) < 0)
			return -ENOMEM;
	return 0;
}

/* APPS field: ';'-separated "platform:token"; an item without ':' is skipped. */
static int add_apps(struct resolver *r, struct pop_span f, const struct resolve_household *h)
{
	const char *p = f.p, *end = f.p + f.len;
	struct pop_span app, pl, tok;
	while (pop_next(&p, end, ';', &app)) {
		if (!pop_app_split(app, &pl, &tok))
			continue;
		enum resolve_channel ch = pl.len == 4 && !memcmp(pl.p, "apns", 4) ? RESOLVE_APNS
					: pl.len == 3 && !memcmp(pl.p, "fcm", 3)  ? RESOLVE_FCM
										  : RESOLVE_WEBHOOK;
		uint64_t key = TAG_APP | (hash64(app.p, app.len) & HASH_MASK);
		if (stage_addr(r, ch, key, tok.p, tok.len, h) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* resolve_pick_lang, remembered: a building list repeats a handful of tags. */
static unsigned pick_lang(struct resolver *r, const char *lang, size_t len)
{
	for (size_t i = 0; i < r->n_lcache; i++)
		if (r->lcache[i].len == len && !memcmp(r->lcache[i].tag, lang, len))
			return r->lcache[i].idx;
	unsigned idx = resolve_pick_lang(lang, len, r->langs, r->n_langs);
	if (len < sizeof(r->lcache[0].tag)) {
		size_t slot = r->n_lcache < LANG_CACHE ? r->n_lcache++ : (r->lcache_next++ % LANG_CACHE);
		r->lcache[slot].len = (unsigned char)len;
		r->lcache[slot].idx = idx;
		memcpy(r->lcache[slot].tag, lang, len);
	}
	return idx;
}

/*
 * One household record (proto/pop_record.h): with APPS (layouts 2 and 3) or
 * without (layout 4: the tokens come from hc). A malformed record is counted
 * and skipped.
 */
static int add_record(struct resolver *r, struct pop_span rec, const char *building,
		      const char *community, const struct target *filter, struct pop_ha_cursor *hc)
{
	struct pop_span f[POP_HH_FIELDS];
	if (pop_hh_split(rec.p, rec.len, r->apps_apart ? POP_APPS : POP_HH_FIELDS, f) < 0) {
		r->stats.malformed++;
		return 0;
	}
	if (r->apps_apart)
		f[POP_APPS] = pop_ha_take(hc, f[POP_SUFFIX].p, f[POP_SUFFIX].len);
	const struct pop_span *sfx = &f[POP_SUFFIX];
	if (filter && (sfx->len != filter->len - filter->bld_len ||
		       memcmp(sfx->p, filter->id + filter->bld_len, sfx->len)))
		return 0;
	if (r->bh_n == r->bh_cap && !batch_room(r, 1, 0))
		return -ENOMEM;
	unsigned persons = pop_count(f[POP_PERSONS].p, f[POP_PERSONS].len);
	struct resolve_household *h = &r->bh[r->bh_n++];
	*h = (struct resolve_household){
		.building = building, .suffix = sfx->p, .suffix_len = sfx->len, .segment = community,
		.persons = persons, .lang = pick_lang(r, f[POP_LANG].p, f[POP_LANG].len),
	};
	r->stats.households++;
	r->stats.persons += persons;
	if (((r->want & RESOLVE_WANT_SMS) && add_phones(r, f[POP_PHONES], h) < 0) ||
	    ((r->want & RESOLVE_WANT_APPS) && add_apps(r, f[POP_APPS], h) < 0))
		return -ENOMEM;
	return 0;
}

/* ha:{B}'s records, kept for the hh:{B} reply that comes next (layout 4). */
static void on_ha(void *arg, redisReply *reply)
{
	struct cmd_ctx *c = arg;
	struct resolver *r = c->r;
	r->outstanding--;
	r->ha_for = NULL;
	r->ha_len = 0;
	if (!reply_failed(r, reply) && reply->type == REDIS_REPLY_ARRAY) {
		size_t need = 0;
		for (size_t i = 0; i < reply->elements; i++)
			if (reply->element[i]->type == REDIS_REPLY_STRING)
				need += reply->element[i]->len + 1;
		if (need > r->ha_cap) {
			char *b = realloc(r->ha_buf, need);
			if (!b) {
				fail(r, RESOLVE_NOMEM, "out of memory");
				free(c);
				return advance(r);
			}
			r->ha_buf = b;
			r->ha_cap = need;
		}
		for (size_t i = 0; i < reply->elements; i++) {
			const redisReply *e = reply->element[i];
			if (e->type != REDIS_REPLY_STRING || !e->len)
				continue;
			if (r->ha_len)
				r->ha_buf[r->ha_len++] = '\n';
			memcpy(r->ha_buf + r->ha_len, e->str, e->len);
			r->ha_len += e->len;
		}
		r->ha_for = c->id;
	}
	free(c);
	advance(r);
}

static void on_hh(void *arg, redisReply *reply)
{
	struct cmd_ctx *c = arg;
	struct resolver *r = c->r;
	r->outstanding--;
	if (!c->filter)
		r->bld_inflight--;
	if (!reply_failed(r, reply) && reply->type == REDIS_REPLY_ARRAY) {
		const char *community = c->filter ? c->filter->community : c->community;
		size_t from = r->ba_n;
		bool ok = batch_room(r, reply->elements, 0);
		struct pop_ha_cursor hc = {NULL, NULL}, *hcp = NULL;
		if (r->apps_apart && r->ha_for == c->id && r->ha_len) {
			hc = (struct pop_ha_cursor){r->ha_buf, r->ha_buf + r->ha_len};
			hcp = &hc;
		}
		r->ha_for = NULL;
		for (size_t i = 0; ok && i < reply->elements; i++) {
			const redisReply *e = reply->element[i];
			if (e->type != REDIS_REPLY_STRING)
				continue;
			/* layouts 3 and 4: records joined by '\n' (layout 2: one per element) */
			const char *p = e->str;
			struct pop_span rec;
			while (ok && pop_next(&p, e->str + e->len, '\n', &rec))
				ok = add_record(r, rec, c->id, community, c->filter, hcp) == 0;
		}
		struct pop_span stray;
		while (ok && hc.p && pop_next(&hc.p, hc.end, '\n', &stray))
			r->stats.malformed++; /* ha records no household took */
		if (!ok || dedupe_staged(r, from) < 0)
			fail(r, RESOLVE_NOMEM, "out of memory");
		batch_emit(r);
	}
	free(c);
	advance(r);
}

/* ---- terminals ---- */

static void on_term(void *arg, redisReply *reply)
{
	struct cmd_ctx *c = arg;
	struct resolver *r = c->r;
	r->outstanding--;
	if (!reply_failed(r, reply) && reply->type == REDIS_REPLY_ARRAY &&
	    reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_STRING &&
	    batch_room(r, 0, 1)) {
		r->ba[r->ba_n++] = (struct resolve_addr){
			.channel = RESOLVE_TERMINAL, .addr = c->term_id, .len = strlen(c->term_id),
			.persons = (unsigned)strtoul(reply->element[1]->str, NULL, 10),
			.segment = c->community, .term_segment = c->id, .household = -1,
		};
		r->stats.addrs[RESOLVE_TERMINAL]++;
		batch_emit(r);
	}
	free(c);
	advance(r);
}


/*
 * A terminal list: records "ID\tKIND\tCOVERS" (layout 2) go out as one
 * batch straight from the reply; a bare "ID" (a population loaded with
 * layout 1) costs one HMGET term:ID (on_term). A record with a tab but no
 * COVERS field is malformed and skipped.
 */
static void on_terms(void *arg, redisReply *reply)
{
	struct cmd_ctx *c = arg;
	struct resolver *r = c->r;
	r->outstanding--;
	if (!reply_failed(r, reply) && reply->type == REDIS_REPLY_ARRAY) {
		if (!batch_room(r, 0, reply->elements))
			fail(r, RESOLVE_NOMEM, "out of memory");
		for (size_t i = 0; i < reply->elements && r->state != RS_FAILING; i++) {
			const redisReply *e = reply->element[i];
			if (e->type != REDIS_REPLY_STRING)
				continue;
			struct pop_span id, cov;
			int kind = pop_term_split(e->str, e->len, &id, &cov);
			if (kind < 0) {
				r->stats.malformed++;
				continue;
			}
			int added = u64set_add(&r->addrs, TAG_TERM | (hash64(id.p, id.len) & HASH_MASK));
			if (added < 0)
				fail(r, RESOLVE_NOMEM, "out of memory");
			r->stats.duplicates += added == 0;
			if (added <= 0)
				continue;
			if (kind == 1) { /* a bare id (layout 1): its record is term:ID */
				struct cmd_ctx *t = ctx_new(r, c->id, c->community, K_NONE, NULL, e->str, e->len);
				send_ctx(r, on_term, t, "HMGET", "term:", e->str, e->len, 2,
					 (const char *[]){ "kind", "covers_persons" });
				continue;
			}
			r->ba[r->ba_n++] = (struct resolve_addr){
				.channel = RESOLVE_TERMINAL, .addr = id.p, .len = id.len,
				.persons = pop_count(cov.p, cov.len),
				.segment = c->community, .term_segment = c->id, .household = -1,
			};
			r->stats.addrs[RESOLVE_TERMINAL]++;
		}
		batch_emit(r);
	}
	free(c);
	advance(r);
}

/* ---- pumping buildings, household targets, the end ---- */

/* LRANGE ha:{key} for building b, just before its hh: list, when the app tokens
   are apart (layout 4) and the app channel is wanted; on_ha keeps them for on_hh. */
static void ask_ha(struct resolver *r, const char *b, const char *community,
		   struct target *filter, const char *key, size_t len)
{
	if (r->apps_apart && (r->want & RESOLVE_WANT_APPS))
		send_ctx(r, on_ha, ctx_new(r, b, community, K_NONE, filter, NULL, 0), "LRANGE", "ha:",
			 key, len, 2, (const char *[]){ "0", "-1" });
}

static void pump(struct resolver *r)
{
	while (r->q_len && r->bld_inflight < RESOLVE_WINDOW && r->state == RS_STREAM) {
		struct queued q = r->queue[r->q_head++];
		r->q_len--;
		size_t len = strlen(q.building);
		ask_ha(r, q.building, q.community, NULL, q.building, len);
		send_ctx(r, on_hh, ctx_new(r, q.building, q.community, K_NONE, NULL, NULL, 0),
			 "LRANGE", "hh:", q.building, len, 2, (const char *[]){ "0", "-1" });
		r->bld_inflight++;
		r->pumped = true;
		if (r->want & RESOLVE_WANT_TERMINALS)
			send_ctx(r, on_terms, ctx_new(r, q.building, q.community, K_NONE, NULL, NULL, 0),
				 "LRANGE", "terms:", q.building, len, 2, (const char *[]){ "0", "-1" });
	}
	if (!r->q_len)
		r->q_head = 0;
}

static void on_parent(void *arg, redisReply *reply)
{
	struct target *t = arg;
	struct resolver *r = t->r;
	r->outstanding--;
	if (!reply_failed(r, reply) && reply->type == REDIS_REPLY_STRING &&
	    !(t->community = arena_dup(&r->arena, reply->str, reply->len)))
		fail(r, RESOLVE_NOMEM, "out of memory");
	advance(r);
}

static bool is_repeat(const struct resolver *r, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (r->targets[j].len == r->targets[i].len &&
		    !memcmp(r->targets[j].id, r->targets[i].id, r->targets[i].len))
			return true;
	return false;
}

/* Household targets, once the tree is complete: skip those already covered. */
static void start_households(struct resolver *r)
{
	r->households_started = true;
	for (size_t i = 0; i < r->n_targets && r->state == RS_STREAM; i++) {
		struct target *t = &r->targets[i];
		if (t->kind != K_NONE || !t->bld_len || is_repeat(r, i) ||
		    strset_has(&r->seen, t->id, t->bld_len))
			continue;
		t->community = "";
		send_cmd(r, on_parent, t, "HGET", "seg:", t->id, t->bld_len, 1,
			 (const char *[]){ "parent" });
		const char *b = arena_dup(&r->arena, t->id, t->bld_len);
		if (b)
			ask_ha(r, b, NULL, t, t->id, t->bld_len);
		send_ctx(r, on_hh, b ? ctx_new(r, b, NULL, K_NONE, t, NULL, 0) : NULL, "LRANGE",
			 "hh:", t->id, t->bld_len, 2, (const char *[]){ "0", "-1" });
		if (!b)
			fail(r, RESOLVE_NOMEM, "out of memory");
	}
}

static void finish(struct resolver *r)
{
	r->stats.total_us = now_us() - r->start_us;
	struct resolve_result res = {
		.status = r->status, .reason = r->reason[0] ? r->reason : resolve_strerror(r->status),
		.unknown = r->unknown, .n_unknown = r->n_unknown, .stats = &r->stats,
	};
	r->on_done(r->arg, &res);
	free(r->seen.slots);
	u64set_free(&r->addrs);
	free(r->queue);
	free(r->deferred);
	free(r->bh);
	free(r->ba);
	free(r->ha_buf);
	free(r->bk);
	free(r->targets);
	free(r->langs);
	free(r->unknown);
	arena_free(r->arena);
	free(r);
}

static void on_final(void *arg, redisReply *reply)
{
	struct resolver *r = arg;
	r->outstanding--;
	if (!reply_failed(r, reply)) {
		if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
			r->state = RS_FAILING; /* status stays RESOLVE_OK: just finish */
		else
			fail(r, RESOLVE_VERSION_GONE,
			     "population version %lld was retired during resolution (some "
			     "households may be missing): resolve again; load with a longer --grace",
			     r->stats.version);
	}
	advance(r);
}

static void unknown_targets(struct resolver *r)
{
	fail(r, RESOLVE_UNKNOWN_TARGETS, "%zu target(s) are neither segments nor households "
	     "in population version %lld", r->n_unknown, r->stats.version);
}

/* An id is covered by another segment target when that one is a proper prefix
 * of it (ids extend their parent's id) or the same id listed earlier. Only for
 * sizing: a prefix that is not an ancestor makes the estimate low, and the
 * set then grows as it would without an estimate. */
static bool covered_by_target(const struct resolver *r, size_t i)
{
	const struct target *t = &r->targets[i];
	for (size_t j = 0; j < r->n_targets; j++) {
		const struct target *o = &r->targets[j];
		if (j != i && o->kind != K_NONE && o->len <= t->len && !memcmp(o->id, t->id, o->len) &&
		    (o->len < t->len || j < i))
			return true;
	}
	return false;
}

/* Once every target is classified and before any address comes back: size
 * the address set for the sum of the outermost targets' aggregates (an
 * address shared by two households counts twice: a slight overestimate). */
static void size_addrs(struct resolver *r)
{
	uint64_t n = 0, agg[4] = {0, 0, 0, 0};
	r->sized = true;
	for (size_t i = 0; i < r->n_targets; i++) {
		const struct target *t = &r->targets[i];
		if (t->kind == K_NONE) {
			n += 8; /* a household: a few phones and tokens; the set grows if not */
			agg[0] += 1;
			agg[1] += 4;
			agg[2] += 4;
		} else if (!covered_by_target(r, i)) {
			n += t->naddrs;
			for (int k = 0; k < 4; k++)
				agg[k] += t->agg[k];
		}
	}
	if (n > (uint64_t)1 << 40)
		n = (uint64_t)1 << 40; /* nonsense aggregates: let the set grow instead */
	if (r->on_size && n == agg[1] + agg[2] + agg[3] && agg[0] <= (uint64_t)1 << 40) {
		struct resolve_size sz = { agg[0], agg[1], agg[2], agg[3] };
		r->on_size(r->arg, &sz);
	}
	r->addrs_hint = (size_t)n;
	if (u64set_reserve(&r->addrs, n < FIRST_SET ? (size_t)n : FIRST_SET) < 0)
		fail(r, RESOLVE_NOMEM, "out of memory");
}

/* After the first batch: the full-size set (its page faults, a few ms for
 * a district, land after the first batch instead of before it). */
static void size_addrs_full(struct resolver *r)
{
	/* If this much cannot be mapped at once, the set just grows as needed. */
	if (r->state == RS_STREAM && r->addrs_hint > r->addrs.n)
		(void)u64set_reserve(&r->addrs, r->addrs_hint);
	r->addrs_hint = 0;
}

/* Called at the end of every callback: move on, or finish when all is back. */
static void advance(struct resolver *r)
{
	bool classified = !r->hix_pending && !r->targets_pending;
	if (r->state == RS_STREAM && classified && r->n_unknown)
		unknown_targets(r);
	if (r->state == RS_STREAM && classified && !r->sized)
		size_addrs(r);
	if (r->state == RS_STREAM && classified) {
		pump(r);
		flush_communities(r);
		if (!r->tree_pending && !r->households_started)
			start_households(r);
		if (r->state == RS_STREAM && !r->outstanding && !r->q_len) {
			r->state = RS_FINAL;
			send_cmd(r, on_final, r, "EXISTS", "meta", "", 0, 0, NULL);
		}
	}
	if (r->state == RS_FAILING && !r->outstanding)
		finish(r);
}

/* ---- start: current version, meta, targets ---- */

static void on_hix(void *arg, redisReply *reply)
{
	struct target *t = arg;
	struct resolver *r = t->r;
	r->outstanding--;
	r->hix_pending--;
	if (!reply_failed(r, reply)) {
		long long l = reply->type == REDIS_REPLY_STRING ? strtoll(reply->str, NULL, 10) : 0;
		if (l > 0 && (size_t)l < t->len)
			t->bld_len = (size_t)l;
		else
			r->unknown[r->n_unknown++] = t->id;
	}
	advance(r);
}

static void on_target(void *arg, redisReply *reply)
{
	static const char *const kinds[] = { "district", "street", "community", "building" };
	struct target *t = arg;
	struct resolver *r = t->r;
	r->outstanding--;
	r->tree_pending--;
	r->targets_pending--;
	if (!reply_failed(r, reply) && reply->type == REDIS_REPLY_ARRAY && reply->elements == 6) {
		const redisReply *k = reply->element[0], *p = reply->element[1];
		for (int i = 2; i < 6; i++)
			if (reply->element[i]->type == REDIS_REPLY_STRING)
				t->agg[i - 2] = strtoull(reply->element[i]->str, NULL, 10);
		t->naddrs = t->agg[1] + t->agg[2] + t->agg[3];
		for (int i = 0; k->type == REDIS_REPLY_STRING && i < 4; i++)
			if (!strcmp(k->str, kinds[i]))
				t->kind = (enum seg_kind)i;
		if (t->kind == K_NONE) {
			char b[16];
			snprintf(b, sizeof(b), "%" PRIu32, resolve_fnv1a32(t->id, t->len) % r->hix_buckets);
			if (send_cmd(r, on_hix, t, "HGET", "hix:", b, strlen(b), 1, &t->id))
				r->hix_pending++;
		} else {
			const char *community = NULL;
			if (t->kind == K_BUILDING && p->type == REDIS_REPLY_STRING &&
			    !(community = arena_dup(&r->arena, p->str, p->len)))
				fail(r, RESOLVE_NOMEM, "out of memory");
			if (r->state == RS_STREAM)
				expand(r, t->kind, t->id, t->len, community);
		}
	}
	advance(r);
}

static void on_meta(void *arg, redisReply *reply)
{
	struct resolver *r = arg;
	r->outstanding--;
	if (!reply_failed(r, reply)) {
		const redisReply *hb = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2
					       ? reply->element[0] : NULL;
		const redisReply *lay = hb ? reply->element[1] : NULL;
		long long b = hb && hb->type == REDIS_REPLY_STRING ? strtoll(hb->str, NULL, 10) : 0;
		if (b <= 0 || b > UINT32_MAX)
			fail(r, RESOLVE_VERSION_GONE, "population version %lld has no meta "
			     "(retired or still loading)", r->stats.version);
		r->hix_buckets = (uint32_t)b;
		/* layouts 2 and 3 keep the app tokens in the household records */
		r->apps_apart = lay && lay->type == REDIS_REPLY_STRING &&
				!strncmp(lay->str, POP_LAYOUT_PREFIX, strlen(POP_LAYOUT_PREFIX)) &&
				strtol(lay->str + strlen(POP_LAYOUT_PREFIX), NULL, 10) >=
					POP_LAYOUT_APPS_APART;
	}
	advance(r);
}

static void on_current(void *arg, redisReply *reply)
{
	struct resolver *r = arg;
	r->outstanding--;
	if (reply_failed(r, reply))
		return advance(r);
	if (reply->type != REDIS_REPLY_STRING || (r->stats.version = strtoll(reply->str, NULL, 10)) <= 0) {
		for (size_t i = 0; i < r->n_targets; i++)
			r->unknown[r->n_unknown++] = r->targets[i].id;
		fail(r, RESOLVE_NO_POPULATION, "no population data loaded (no %scurrent)", r->pfx);
		return advance(r);
	}
	snprintf(r->vpfx, sizeof(r->vpfx), "%sv%lld:", r->pfx, r->stats.version);
	r->state = RS_STREAM;
	send_cmd(r, on_meta, r, "HMGET", "meta", "", 0, 2, (const char *[]){ "hix_buckets", "layout" });
	for (size_t i = 0; i < r->n_targets && r->state == RS_STREAM; i++) {
		struct target *t = &r->targets[i];
		if (send_cmd(r, on_target, t, "HMGET", "seg:", t->id, t->len, 6,
			     (const char *[]){ "kind", "parent", "households", "phones", "apps",
					       "terminals" })) {
			r->tree_pending++;
			r->targets_pending++;
		}
	}
	advance(r);
}

static int copy_inputs(struct resolver *r, const struct resolve_params *p)
{
	r->targets = calloc(p->n_targets ? p->n_targets : 1, sizeof(*r->targets));
	r->unknown = calloc(p->n_targets ? p->n_targets : 1, sizeof(*r->unknown));
	r->langs = calloc(p->n_languages ? p->n_languages : 1, sizeof(*r->langs));
	if (!r->targets || !r->unknown || !r->langs)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_targets; i++) {
		struct target *t = &r->targets[i];
		t->len = strlen(p->targets[i]);
		t->kind = K_NONE;
		t->r = r;
		if (!(t->id = arena_dup(&r->arena, p->targets[i], t->len)))
			return -ENOMEM;
	}
	for (size_t i = 0; i < p->n_languages; i++)
		if (!(r->langs[i] = arena_dup(&r->arena, p->languages[i], strlen(p->languages[i]))))
			return -ENOMEM;
	r->n_targets = p->n_targets;
	r->n_langs = p->n_languages;
	return 0;
}

struct resolver *resolver_start(const struct resolve_params *p)
{
	if (!redis_up(p->redis) || p->n_targets > RESOLVE_MAX_TARGETS)
		return NULL;
	struct resolver *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	*r = (struct resolver){ .loop = p->loop, .rc = p->redis, .on_batch = p->on_batch,
				.on_size = p->on_size, .on_done = p->on_done, .arg = p->arg, .start_us = now_us() };
	r->addrs.spare = p->spare;
	r->want = p->want ? p->want : RESOLVE_WANT_SMS | RESOLVE_WANT_APPS | RESOLVE_WANT_TERMINALS;
	snprintf(r->pfx, sizeof(r->pfx), "%spop:", p->prefix);
	char key[KEY_MAX];
	int n = snprintf(key, sizeof(key), "%scurrent", r->pfx);
	if (copy_inputs(r, p) < 0 ||
	    redis_command(r->rc, on_current, r, 2, (const char *[]){ "GET", key },
			  (size_t[]){ 3, (size_t)n }) < 0) {
		r->on_done = NULL;
		free(r->targets);
		free(r->langs);
		free(r->unknown);
		arena_free(r->arena);
		free(r);
		return NULL;
	}
	r->outstanding = 1;
	r->stats.commands = 1;
	return r;
}

void resolver_cancel(struct resolver *r)
{
	fail(r, RESOLVE_CANCELLED, "cancelled");
}

/* ---- admission check ---- */

struct check;

struct check_slot {
	struct check *c;
	const char *id;
	bool exists;
};

struct check {
	struct redis_client *rc;
	resolve_check_cb cb;
	void *arg;
	char vpfx[160];
	uint32_t hix_buckets;
	size_t pending, n;
	enum resolve_status status;
	char reason[256];
	struct arena_chunk *arena;
	struct check_slot *slots;
};

static void check_fail(struct check *c, enum resolve_status s, const char *why)
{
	if (c->status == RESOLVE_OK || c->status == RESOLVE_UNKNOWN_TARGETS) {
		c->status = s;
		snprintf(c->reason, sizeof(c->reason), "%s", why);
	}
}

static bool check_send(struct check *c, redis_reply_cb cb, void *arg, const char *cmd,
		       const char *key, const char *field)
{
	const char *argv[3] = { cmd, key, field };
	size_t lens[3] = { strlen(cmd), strlen(key), field ? strlen(field) : 0 };
	if (redis_command(c->rc, cb, arg, field ? 3 : 2, argv, lens) < 0) {
		check_fail(c, RESOLVE_REDIS_ERROR, "the Redis connection was lost");
		return false;
	}
	c->pending++;
	return true;
}

static void check_settle(struct check *c)
{
	if (c->pending)
		return;
	const char **unknown = calloc(c->n ? c->n : 1, sizeof(*unknown));
	size_t nu = 0;
	for (size_t i = 0; unknown && i < c->n; i++)
		if (!c->slots[i].exists)
			unknown[nu++] = c->slots[i].id;
	if (!unknown)
		check_fail(c, RESOLVE_NOMEM, "out of memory");
	else if (nu && c->status == RESOLVE_OK) {
		c->status = RESOLVE_UNKNOWN_TARGETS;
		snprintf(c->reason, sizeof(c->reason), "%zu target(s) are neither segments nor "
			 "households in the current population (%.*s)", nu, 100, c->vpfx);
	}
	struct resolve_result res = { .status = c->status, .reason = c->reason,
				      .unknown = unknown, .n_unknown = unknown ? nu : 0 };
	c->cb(c->arg, &res);
	free(unknown);
	free(c->slots);
	arena_free(c->arena);
	free(c);
}

static bool check_reply_ok(struct check *c, const redisReply *reply)
{
	c->pending--;
	if (!reply || reply->type == REDIS_REPLY_ERROR)
		check_fail(c, RESOLVE_REDIS_ERROR,
			   reply ? "Redis answered an error" : "the Redis connection was lost");
	return c->status == RESOLVE_OK;
}

static void on_check_hix(void *arg, redisReply *reply)
{
	struct check_slot *s = arg;
	struct check *c = s->c;
	if (check_reply_ok(c, reply))
		s->exists = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
	check_settle(c);
}

static void on_check_seg(void *arg, redisReply *reply)
{
	struct check_slot *s = arg;
	struct check *c = s->c;
	if (check_reply_ok(c, reply)) {
		s->exists = reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
		if (!s->exists && c->hix_buckets) {
			char key[KEY_MAX];
			uint32_t b = resolve_fnv1a32(s->id, strlen(s->id)) % c->hix_buckets;
			snprintf(key, sizeof(key), "%shix:%" PRIu32, c->vpfx, b);
			check_send(c, on_check_hix, s, "HEXISTS", key, s->id);
		}
	}
	check_settle(c);
}

static void on_check_meta(void *arg, redisReply *reply)
{
	struct check *c = arg;
	if (check_reply_ok(c, reply)) {
		long long b = reply->type == REDIS_REPLY_STRING ? strtoll(reply->str, NULL, 10) : 0;
		if (b <= 0 || b > UINT32_MAX)
			check_fail(c, RESOLVE_VERSION_GONE, "the current population version has no "
				   "meta (being retired?): retry");
		c->hix_buckets = b > 0 && b <= UINT32_MAX ? (uint32_t)b : 0;
	}
	check_settle(c);
}

static void on_check_current(void *arg, redisReply *reply)
{
	struct check *c = arg;
	if (!check_reply_ok(c, reply))
		return check_settle(c);
	long long v = reply->type == REDIS_REPLY_STRING ? strtoll(reply->str, NULL, 10) : 0;
	if (v <= 0) {
		check_fail(c, RESOLVE_NO_POPULATION, "no population data loaded");
		return check_settle(c);
	}
	char key[KEY_MAX];
	size_t plen = strlen(c->vpfx); /* "{prefix}pop:" until now */
	snprintf(c->vpfx + plen, sizeof(c->vpfx) - plen, "v%lld:", v);
	snprintf(key, sizeof(key), "%smeta", c->vpfx);
	check_send(c, on_check_meta, c, "HGET", key, "hix_buckets");
	for (size_t i = 0; i < c->n && c->status == RESOLVE_OK; i++) {
		snprintf(key, sizeof(key), "%sseg:%s", c->vpfx, c->slots[i].id);
		check_send(c, on_check_seg, &c->slots[i], "EXISTS", key, NULL);
	}
	check_settle(c);
}

int resolver_check_targets(struct redis_client *rc, const char *prefix,
			   const char *const *targets, size_t n, resolve_check_cb cb, void *arg)
{
	if (!redis_up(rc))
		return -ENOTCONN;
	struct check *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = (struct check){ .rc = rc, .cb = cb, .arg = arg, .n = n };
	snprintf(c->vpfx, sizeof(c->vpfx), "%spop:", prefix);
	c->slots = calloc(n ? n : 1, sizeof(*c->slots));
	for (size_t i = 0; c->slots && i < n; i++) {
		c->slots[i] = (struct check_slot){ .c = c, .id = arena_dup(&c->arena, targets[i],
									    strlen(targets[i])) };
		if (!c->slots[i].id)
			goto out_free;
	}
	char key[KEY_MAX];
	snprintf(key, sizeof(key), "%scurrent", c->vpfx);
	if (c->slots && check_send(c, on_check_current, c, "GET", key, NULL))
		return 0;
out_free:
	free(c->slots);
	arena_free(c->arena);
	free(c);
	return -ENOMEM;
}
