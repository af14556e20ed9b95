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
 *                       community -> LRANGE kids + LRANGE terms
 *                       building -> building queue
 *                       nil -> HGET hix:{bucket} T (hix_pending)
 *            buildings are pumped (LRANGE hh + LRANGE terms, <= RESOLVE_WINDOW
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

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum seg_kind { K_NONE = -1, K_DISTRICT, K_STREET, K_COMMUNITY, K_BUILDING };
enum rstate { RS_CURRENT, RS_STREAM, RS_FINAL, RS_FAILING };

#define KEY_MAX 512
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

static uint64_t hash64(const char *s, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 33; /* finalizer (murmur3 fmix64): FNV's low bits mix poorly */
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
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

static int u64set_grow(struct u64set *set)
{
	size_t cap = set->cap ? set->cap * 2 : 4096;
	uint64_t *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < set->cap; i++) {
		uint64_t k = set->slots[i];
		if (!k)
			continue;
		size_t j = (k * 0x9e3779b97f4a7c15ull) >> 20 & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = k;
	}
	free(set->slots);
	set->slots = slots;
	set->cap = cap;
	return 0;
}

/* k != 0. 1 = added, 0 = present, -ENOMEM. */
static int u64set_add(struct u64set *set, uint64_t k)
{
	if ((set->n + 1) * 2 > set->cap && u64set_grow(set) < 0)
		return -ENOMEM;
	size_t j = (k * 0x9e3779b97f4a7c15ull) >> 20 & (set->cap - 1);
	while (set->slots[j]) {
		if (set->slots[j] == k)
			return 0;
		j = (j + 1) & (set->cap - 1);
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
	struct redis_client *rc;
	resolve_batch_cb on_batch;
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
	bool households_started;
	struct resolve_household *bh;
	size_t bh_n, bh_cap;
	struct resolve_addr *ba;
	size_t ba_n, ba_cap;
	uint64_t start_us;
	struct resolve_stats stats;
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
	int n = snprintf(key, sizeof(key), "%s%s%.*s", r->vpfx, kind, (int)idlen, id);
	if (n < 0 || (size_t)n >= sizeof(key) || nextra > 6) {
		fail(r, RESOLVE_REDIS_ERROR, "key too long for '%.*s'", (int)idlen, id);
		return false;
	}
	lens[1] = (size_t)n;
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
	if (kind == K_COMMUNITY) {
		community = s;
		send_ctx(r, on_terms, ctx_new(r, s, s, K_NONE, NULL, NULL, 0), "LRANGE", "terms:",
			 s, len, 2, (const char *[]){ "0", "-1" });
	}
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
		r->ba_cap = cap;
	}
	return true;
}

static void batch_emit(struct resolver *r)
{
	if (r->state != RS_FAILING && (r->bh_n || r->ba_n)) {
		if (!r->stats.batches++)
			r->stats.first_batch_us = now_us() - r->start_us;
		struct resolve_batch b = { r->bh, r->bh_n, r->ba, r->ba_n };
		r->on_batch(r->arg, &b);
	}
	r->bh_n = r->ba_n = 0;
}

/* Add one address unless emitted before; *given: persons already attributed. */
static int add_addr(struct resolver *r, enum resolve_channel ch, uint64_t key, const char *a,
		    size_t len, const struct resolve_household *h, bool *given)
{
	int added = u64set_add(&r->addrs, key ? key : 1);
	if (added <= 0) {
		r->stats.duplicates += added == 0;
		return added;
	}
	if (!batch_room(r, 0, 1))
		return -ENOMEM;
	r->ba[r->ba_n++] = (struct resolve_addr){
		.channel = ch, .addr = a, .len = len, .persons = *given ? 0 : h->persons,
		.lang = h->lang, .segment = h->segment, .household = (long)(r->bh_n - 1),
	};
	*given = true;
	r->stats.addrs[ch]++;
	return 1;
}

static uint64_t phone_key(const char *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 1; i < n && i < 17; i++) /* "+" then <= 15 digits */
		v = v * 10 + (uint64_t)(p[i] - '0');
	return TAG_PHONE | (v & HASH_MASK);
}

/* PHONES or APPS field: ';'-separated. */
static int add_list(struct resolver *r, const char *f, size_t n, bool apps,
		    const struct resolve_household *h, bool given[RESOLVE_NCHANNELS])
{
	while (n > 0) {
		size_t len = 0;
		while (len < n && f[len] != ';')
			len++;
		enum resolve_channel ch = RESOLVE_SMS;
		uint64_t key = phone_key(f, len);
		const char *a = f;
		size_t alen = len;
		const char *colon = apps ? memchr(f, ':', len) : NULL;
		if (colon) {
			size_t pl = (size_t)(colon - f);
			ch = pl == 4 && !memcmp(f, "apns", 4) ? RESOLVE_APNS
			   : pl == 3 && !memcmp(f, "fcm", 3)  ? RESOLVE_FCM
							      : RESOLVE_WEBHOOK;
			a = colon + 1;
			alen = len - pl - 1;
			key = TAG_APP | (hash64(f, len) & HASH_MASK);
		}
		if (len && (!apps || colon) && add_addr(r, ch, key, a, alen, h, &given[ch]) < 0)
			return -ENOMEM;
		f += len + (len < n);
		n -= len + (len < n);
	}
	return 0;
}

/* One record "SUFFIX\tPERSONS\tLANG\tPHONES\tAPPS"; a malformed record is skipped. */
static int add_record(struct resolver *r, const char *rec, size_t n, const char *building,
		      const char *community, const struct target *filter)
{
	const char *f[5];
	size_t fl[5], k = 0, start = 0;
	for (size_t i = 0; i <= n && k < 5; i++) {
		if (i == n || rec[i] == '\t') {
			f[k] = rec + start;
			fl[k++] = i - start;
			start = i + 1;
		}
	}
	if (k != 5)
		return 0;
	if (filter && (fl[0] != filter->len - filter->bld_len ||
		       memcmp(f[0], filter->id + filter->bld_len, fl[0])))
		return 0;
	if (!batch_room(r, 1, 0))
		return -ENOMEM;
	struct resolve_household *h = &r->bh[r->bh_n++];
	*h = (struct resolve_household){
		.building = building, .suffix = f[0], .suffix_len = fl[0], .segment = community,
		.persons = (unsigned)strtoul(f[1], NULL, 10),
		.lang = resolve_pick_lang(f[2], fl[2], r->langs, r->n_langs),
	};
	r->stats.households++;
	r->stats.persons += h->persons;
	bool given[RESOLVE_NCHANNELS] = { 0 };
	if (add_list(r, f[3], fl[3], false, h, given) < 0 ||
	    add_list(r, f[4], fl[4], true, h, given) < 0)
		return -ENOMEM;
	return 0;
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
		for (size_t i = 0; i < reply->elements; i++) {
			const redisReply *e = reply->element[i];
			if (e->type == REDIS_REPLY_STRING &&
			    add_record(r, e->str, e->len, c->id, community, c->filter) < 0) {
				fail(r, RESOLVE_NOMEM, "out of memory");
				break;
			}
		}
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

static void on_terms(void *arg, redisReply *reply)
{
	struct cmd_ctx *c = arg;
	struct resolver *r = c->r;
	r->outstanding--;
	if (!reply_failed(r, reply) && reply->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < reply->elements && r->state != RS_FAILING; i++) {
			const redisReply *e = reply->element[i];
			if (e->type != REDIS_REPLY_STRING)
				continue;
			int added = u64set_add(&r->addrs, TAG_TERM | (hash64(e->str, e->len) & HASH_MASK));
			if (added < 0)
				fail(r, RESOLVE_NOMEM, "out of memory");
			r->stats.duplicates += added == 0;
			if (added <= 0)
				continue;
			struct cmd_ctx *t = ctx_new(r, c->id, c->community, K_NONE, NULL, e->str, e->len);
			send_ctx(r, on_term, t, "HMGET", "term:", e->str, e->len, 2,
				 (const char *[]){ "kind", "covers_persons" });
		}
	}
	free(c);
	advance(r);
}

/* ---- pumping buildings, household targets, the end ---- */

static void pump(struct resolver *r)
{
	while (r->q_len && r->bld_inflight < RESOLVE_WINDOW && r->state == RS_STREAM) {
		struct queued q = r->queue[r->q_head++];
		r->q_len--;
		size_t len = strlen(q.building);
		send_ctx(r, on_hh, ctx_new(r, q.building, q.community, K_NONE, NULL, NULL, 0),
			 "LRANGE", "hh:", q.building, len, 2, (const char *[]){ "0", "-1" });
		r->bld_inflight++;
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
	free(r->addrs.slots);
	free(r->queue);
	free(r->bh);
	free(r->ba);
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

/* Called at the end of every callback: move on, or finish when all is back. */
static void advance(struct resolver *r)
{
	bool classified = !r->hix_pending && !r->targets_pending;
	if (r->state == RS_STREAM && classified && r->n_unknown)
		unknown_targets(r);
	if (r->state == RS_STREAM && classified) {
		pump(r);
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
	if (!reply_failed(r, reply) && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
		const redisReply *k = reply->element[0], *p = reply->element[1];
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
		long long b = reply->type == REDIS_REPLY_STRING ? strtoll(reply->str, NULL, 10) : 0;
		if (b <= 0 || b > UINT32_MAX)
			fail(r, RESOLVE_VERSION_GONE, "population version %lld has no meta "
			     "(retired or still loading)", r->stats.version);
		r->hix_buckets = (uint32_t)b;
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
	send_cmd(r, on_meta, r, "HGET", "meta", "", 0, 1, (const char *[]){ "hix_buckets" });
	for (size_t i = 0; i < r->n_targets && r->state == RS_STREAM; i++) {
		struct target *t = &r->targets[i];
		if (send_cmd(r, on_target, t, "HMGET", "seg:", t->id, t->len, 2,
			     (const char *[]){ "kind", "parent" })) {
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
				.on_done = p->on_done, .arg = p->arg, .start_us = now_us() };
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
