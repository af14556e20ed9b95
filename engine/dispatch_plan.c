/*
 * engine/dispatch_plan.c: from a campaign's targets to deliveries.
 *
 * The resolver streams households and addresses in batches; each batch
 * becomes ledger entries and deliveries at once, so the first messages
 * leave while Redis is still answering for the rest of the district.
 * For a resumed campaign, addresses whose state was persisted as
 * accepted, delivered, failed or expired are entered into the ledger in
 * that state and not sent again.
 *
 * Special statuses: Draft is never sent; Test goes only to the configured
 * test recipients; System, Ack and Error are never sent onward.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch_internal.h"
#include "log.h"
#include "resolve.h"
#include "state_chunk.h"

/* --- persisted states of a resumed campaign: address -> state letter --- */

struct resume_map {
	char **keys;
	char *vals;
	size_t cap, n;
};

static uint64_t str_hash(const char *s, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
	return h;
}

static struct resume_map *resume_new(size_t n)
{
	struct resume_map *m = calloc(1, sizeof(*m));
	size_t cap = 16;
	while (cap < n * 2)
		cap *= 2;
	if (!m || !(m->keys = calloc(cap, sizeof(char *))) || !(m->vals = calloc(cap, 1)))
		abort();
	m->cap = cap;
	return m;
}

static void resume_grow(struct resume_map *m)
{
	struct resume_map big = {.cap = m->cap * 2};
	if (!(big.keys = calloc(big.cap, sizeof(char *))) || !(big.vals = calloc(big.cap, 1)))
		abort();
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = str_hash(m->keys[i], strlen(m->keys[i])) & (big.cap - 1);
		while (big.keys[j])
			j = (j + 1) & (big.cap - 1);
		big.keys[j] = m->keys[i];
		big.vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = big.keys;
	m->vals = big.vals;
	m->cap = big.cap;
}

/* Set k's letter; `overwrite` false keeps a letter k already has. */
static void resume_put(struct resume_map *m, const char *k, size_t len, char v, bool overwrite)
{
	if ((m->n + 1) * 2 > m->cap)
		resume_grow(m);
	size_t i = str_hash(k, len) & (m->cap - 1);
	for (; m->keys[i]; i = (i + 1) & (m->cap - 1))
		if (!strncmp(m->keys[i], k, len) && !m->keys[i][len]) {
			if (overwrite)
				m->vals[i] = v;
			return;
		}
	if (!(m->keys[i] = strndup(k, len)))
		abort();
	m->vals[i] = v;
	m->n++;
}

/*
 * Keyed as the records are (state_chunk_key). A record's key that starts
 * with '#' is a hash already; any other is an address (a long one written
 * before keys were hashed is keyed the same way here).
 */
static void resume_put_key(struct resume_map *m, const char *s, size_t len, char v,
			   bool overwrite, bool record)
{
	char kbuf[STATE_KEY_HASHED + 1];
	size_t kl = len;
	const char *k = record && len && s[0] == '#' ? s : state_chunk_key(s, len, kbuf, &kl);
	resume_put(m, k, kl, v, overwrite);
}

static void resume_record(void *arg, char state, const char *addr, size_t len)
{
	resume_put_key(arg, addr, len, state, true, true); /* a later record overrides */
}

static char resume_get(const struct resume_map *m, const char *addr)
{
	if (!m)
		return 0;
	char kbuf[STATE_KEY_HASHED + 1];
	size_t kl;
	const char *k = state_chunk_key(addr, strlen(addr), kbuf, &kl);
	for (size_t i = str_hash(k, kl) & (m->cap - 1); m->keys[i]; i = (i + 1) & (m->cap - 1))
		if (!strcmp(m->keys[i], k))
			return m->vals[i];
	return 0;
}

static void resume_free(struct resume_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	free(m);
}

/* --- one planning run --- */

struct plan {
	struct dispatcher *dp;
	struct campaign *c;
	uint32_t *hh;       /* batch household index -> ledger index */
	size_t hh_cap;
	bool terminals_only; /* a Cancel: only terminals get the stop command */
	uint32_t akey[8];    /* on_batch: app addresses' map keys, by batch index & 7 */
	uint64_t batches;    /* resolver batches planned: the first one's sends leave at once */
};

/* The delivery's address: prefix (a short literal, see route_map) and the resolver's. */
static size_t build_addr(char addr[1200], const char *prefix, const struct resolve_addr *a)
{
	size_t plen = strlen(prefix), alen = a->len < 1100 ? a->len : 1100;
	memcpy(addr, prefix, plen);
	memcpy(addr + plen, a->addr, alen);
	addr[plen + alen] = 0;
	return plen + alen;
}

/* key: the app address's map key when the caller has it (sched_addr_key), else NULL. */
static void add_address(struct plan *p, const struct resolve_addr *a, enum channel ch,
			uint8_t platform, const char *prefix, const uint32_t *key)
{
	struct dispatcher *dp = p->dp;
	struct campaign *c = p->c;
	char addr[1200];
	size_t len = build_addr(addr, prefix, a);
	uint32_t hh = a->household >= 0 ? p->hh[a->household] : LEDGER_NONE;
	uint32_t seg = LEDGER_NONE;
	if (ch == CHANNEL_TERMINAL && a->segment) {
		/* A speaker covers its community; a display its building. */
		seg = ledger_segment(&c->ledger, a->segment, LEDGER_COMMUNITY, 0, LEDGER_NONE);
		if (a->term_segment && strcmp(a->term_segment, a->segment))
			seg = ledger_segment(&c->ledger, a->term_segment, LEDGER_BUILDING, 0, seg);
	}
	char state = resume_get(c->resume, addr);
	if (state == 'x')
		return; /* a push token the provider declared dead: never used again */
	int st = state ? delivery_state_from_letter(state) : -1;
	if (st > DELIVERY_SENT) { /* already done before the restart: count, don't send */
		if (hh != LEDGER_NONE)
			ledger_plan(&c->ledger, hh, ch);
		else if (seg != LEDGER_NONE)
			ledger_plan_terminal(&c->ledger, seg);
		ledger_move(&c->ledger, hh, seg, ch, DELIVERY_QUEUED, (enum delivery_state)st,
			    loop_now_ms(&dp->loop));
		c->by_state[st]++;
		return;
	}
	struct delivery *d = delivery_new(dp, c, ch, addr, len,
					  ch != CHANNEL_APP ? 0 : key ? *key : sched_addr_key(c, addr));
	d->household = hh;
	d->segment = hh != LEDGER_NONE ? c->ledger.hh[hh].building : seg;
	d->lang = (uint8_t)a->lang;
	d->platform = platform;
	d->persons = a->persons;
	if (ch == CHANNEL_SMS)
		d->parts = (uint16_t)campaign_sms_parts(c, d->lang);
	if (dp->stage[ch] > 0) {
		sched_hold(dp, d);
		return;
	}
	if (hh != LEDGER_NONE)
		ledger_plan(&c->ledger, hh, ch);
	else if (seg != LEDGER_NONE)
		ledger_plan_terminal(&c->ledger, seg);
	sched_enqueue(dp, d);
}

static const struct {
	enum channel ch;
	uint8_t platform;
	const char *prefix;
} route_map[RESOLVE_NCHANNELS] = {
	[RESOLVE_SMS] = {CHANNEL_SMS, PLATFORM_NONE, ""},
	[RESOLVE_APNS] = {CHANNEL_APP, PLATFORM_APNS, "apns:"},
	[RESOLVE_FCM] = {CHANNEL_APP, PLATFORM_FCM, "fcm:"},
	[RESOLVE_WEBHOOK] = {CHANNEL_APP, PLATFORM_WEBHOOK, "webhook:"},
	[RESOLVE_TERMINAL] = {CHANNEL_TERMINAL, PLATFORM_NONE, ""},
};

static bool routed(const struct plan *p, const struct resolve_addr *a)
{
	if ((unsigned)a->channel >= RESOLVE_NCHANNELS)
		return false;
	enum channel ch = route_map[a->channel].ch;
	return p->dp->channel_on[ch] && (!p->terminals_only || ch == CHANNEL_TERMINAL);
}

static void route(struct plan *p, const struct resolve_addr *a, const uint32_t *key)
{
	if (!routed(p, a))
		return;
	add_address(p, a, route_map[a->channel].ch, route_map[a->channel].platform,
		    route_map[a->channel].prefix, key);
}

/* An app address a few ahead of the one being planned: its map key (kept in akey for
 * route) and its map slot into the cache. */
static void prefetch_app(struct plan *p, const struct resolve_addr *a, size_t i)
{
	if (!routed(p, a) || route_map[a->channel].ch != CHANNEL_APP)
		return;
	char addr[1200];
	build_addr(addr, route_map[a->channel].prefix, a);
	p->akey[i & 7] = sched_addr_key(p->c, addr);
	sched_addr_prefetch(p->dp, p->akey[i & 7]);
}

static void on_batch(void *arg, const struct resolve_batch *b)
{
	struct plan *p = arg;
	struct ledger *l = &p->c->ledger;
	if (b->n_households > p->hh_cap) {
		p->hh_cap = b->n_households * 2;
		if (!(p->hh = realloc(p->hh, p->hh_cap * sizeof(*p->hh))))
			abort();
	}
	/* A batch is one building's list: look its ids up once, not per household. */
	const char *com_id = NULL, *bld_id = NULL;
	uint32_t com = LEDGER_NONE, bld = LEDGER_NONE;
	for (size_t i = 0; i < b->n_households; i++) {
		const struct resolve_household *h = &b->households[i];
		if (h->segment != com_id || h->building != bld_id) {
			com_id = h->segment;
			bld_id = h->building;
			com = ledger_segment(l, com_id, LEDGER_COMMUNITY, 0, LEDGER_NONE);
			bld = ledger_segment(l, bld_id, LEDGER_BUILDING, 0, com);
		}
		p->hh[i] = ledger_household(l, h->persons, bld, com);
		if (p->hh[i] == LEDGER_NONE)
			abort();
	}
	enum { AHEAD = 6 }; /* < the 8 keys of akey */
	for (size_t i = 0; i < AHEAD && i < b->n_addrs; i++)
		prefetch_app(p, &b->addrs[i], i);
	for (size_t i = 0; i < b->n_addrs; i++) {
		if (i + AHEAD < b->n_addrs)
			prefetch_app(p, &b->addrs[i + AHEAD], i + AHEAD);
		route(p, &b->addrs[i], &p->akey[i & 7]); /* read only for app addresses */
	}
	p->c->dirty = true;
	/*
	 * Scheduled at once; the first batch's sends also go to the kernel at
	 * once, the later ones' with the loop iteration's submit, all of one
	 * Redis read together. Submitting every batch (a community's 100
	 * terminals) cost a system call per 20-40 sends and, where the receivers
	 * share the CPUs, woke them for each small burst. Submitting the first
	 * 1,024 addresses batch by batch measured slower as well (1.14 against
	 * 1.03 of the bare loop at 50,000 terminals, 11 rounds; bench/RESULTS.md,
	 * Terminals, "Sends per loop iteration").
	 */
	sched_now(p->dp, p->batches++ == 0);
}

/* The resolver's estimate, before the first batch: size the ledger and the dispatcher for it. */
static void on_size(void *arg, const struct resolve_size *sz)
{
	struct plan *p = arg;
	struct dispatcher *dp = p->dp;
	(void)ledger_reserve(&p->c->ledger, sz->households);
	uint64_t per[CHANNEL_COUNT] = {0};
	per[CHANNEL_SMS] = p->terminals_only ? 0 : sz->phones;
	per[CHANNEL_APP] = p->terminals_only ? 0 : sz->apps;
	per[CHANNEL_TERMINAL] = sz->terminals;
	for (int ch = 0; ch < CHANNEL_COUNT; ch++)
		if (!dp->channel_on[ch])
			per[ch] = 0;
	sched_reserve(dp, p->c, per);
}

static void fetch_census(struct dispatcher *dp, struct campaign *c);

static void on_resolved(void *arg, const struct resolve_result *res)
{
	struct plan *p = arg;
	struct campaign *c = p->c;
	struct dispatcher *dp = p->dp;
	c->resolver = NULL;
	c->resolved = true;
	c->pop_version = res->stats ? res->stats->version : 0;
	if (res->status != RESOLVE_OK && res->status != RESOLVE_CANCELLED) {
		c->error = res->reason ? res->reason : resolve_strerror(res->status);
		log_warn("msg=\"resolution failed\" warning=%s status=%s", c->id,
			 resolve_strerror(res->status));
	} else if (res->stats) {
		log_info("msg=\"warning resolved\" warning=%s households=%llu persons=%llu "
			 "first_batch_us=%llu total_us=%llu",
			 c->id, (unsigned long long)res->stats->households,
			 (unsigned long long)res->stats->persons,
			 (unsigned long long)res->stats->first_batch_us,
			 (unsigned long long)res->stats->total_us);
	}
	resume_free(c->resume);
	c->resume = NULL;
	free(p->hh);
	free(p);
	if (c->pop_version)
		fetch_census(dp, c);
	c->dirty = true;
	campaign_check_done(dp, c);
}

/* --- census figures of the communities reached (coverage denominators) --- */

struct census_call {
	struct dispatcher *dp;
	char id[WARNING_MAX_ID_LEN + 1];
	uint32_t seg;
};

static void on_census(void *arg, redisReply *r)
{
	struct census_call *cc = arg;
	struct campaign *c = campaign_find(cc->dp, cc->id);
	if (c && r && r->type == REDIS_REPLY_STRING) {
		ledger_set_census(&c->ledger, cc->seg, strtoull(r->str, NULL, 10));
		c->dirty = true;
	}
	free(cc);
}

static void fetch_census(struct dispatcher *dp, struct campaign *c)
{
	for (uint32_t s = 0; s < c->ledger.n_seg; s++) {
		if (c->ledger.seg[s].kind != LEDGER_COMMUNITY)
			continue;
		struct census_call *cc = malloc(sizeof(*cc));
		if (!cc)
			return;
		cc->dp = dp;
		cc->seg = s;
		snprintf(cc->id, sizeof(cc->id), "%s", c->id);
		char key[512];
		snprintf(key, sizeof(key), "%spop:v%lld:seg:%s", dp->cfg.prefix, c->pop_version,
			 c->ledger.seg[s].id);
		const char *argv[] = {"HGET", key, "population"};
		size_t lens[] = {4, strlen(key), 10};
		if (redis_command(&dp->redis, on_census, cc, 3, argv, lens) < 0)
			free(cc);
	}
}

/* --- Test warnings: only the configured recipients --- */

static void plan_test_recipients(struct dispatcher *dp, struct campaign *c)
{
	char list[sizeof(dp->cfg.test_recipients)];
	snprintf(list, sizeof(list), "%s", dp->cfg.test_recipients);
	uint32_t seg = ledger_segment(&c->ledger, "test-recipients", LEDGER_COMMUNITY, 0, LEDGER_NONE);
	for (char *save, *tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		struct resolve_addr a = {.persons = 1, .household = 0};
		struct plan p = {.dp = dp, .c = c};
		uint32_t hh = ledger_household(&c->ledger, 1, LEDGER_NONE, seg);
		p.hh = &hh;
		if (!strncmp(tok, "sms:", 4)) {
			a.channel = RESOLVE_SMS;
			a.addr = tok + 4;
		} else if (!strncmp(tok, "app:", 4) && strchr(tok + 4, ':')) {
			char *colon = strchr(tok + 4, ':');
			a.channel = !strncmp(tok + 4, "apns", 4) ? RESOLVE_APNS
				  : !strncmp(tok + 4, "fcm", 3) ? RESOLVE_FCM : RESOLVE_WEBHOOK;
			a.addr = colon + 1;
		} else if (!strncmp(tok, "terminal:", 9)) {
			a.channel = RESOLVE_TERMINAL;
			a.addr = tok + 9;
			a.household = -1;
			a.segment = "test-recipients";
		} else {
			log_warn("msg=\"ignoring test recipient\" value=\"%s\"", tok);
			continue;
		}
		a.len = strlen(a.addr);
		route(&p, &a, NULL);
	}
	c->resolved = true;
	c->dirty = true;
	campaign_check_done(dp, c);
}

/* --- starting resolution, after the persisted states were read --- */

static void start_resolution(struct dispatcher *dp, struct campaign *c, bool terminals_only,
			     Tocsin__Warning *targets_of)
{
	struct plan *p = calloc(1, sizeof(*p));
	const char *langs[WARNING_MAX_INFOS];
	for (size_t i = 0; i < c->w->n_info && i < WARNING_MAX_INFOS; i++)
		langs[i] = c->w->info[i]->language;
	if (!p)
		abort();
	p->dp = dp;
	p->c = c;
	p->terminals_only = terminals_only;
	struct resolve_params rp = {
		.loop = &dp->loop, .redis = &dp->redis, .prefix = dp->cfg.prefix,
		.targets = (const char *const *)targets_of->targets, .n_targets = targets_of->n_targets,
		.languages = langs, .n_languages = c->w->n_info,
		.on_batch = on_batch, .on_size = on_size, .on_done = on_resolved, .arg = p,
		.spare = &dp->resolve_spare,
		/* only what route() keeps: the rest is not parsed, deduplicated or read */
		.want = terminals_only ? RESOLVE_WANT_TERMINALS
				       : (dp->channel_on[CHANNEL_SMS] ? RESOLVE_WANT_SMS : 0) |
						 (dp->channel_on[CHANNEL_APP] ? RESOLVE_WANT_APPS : 0) |
						 (dp->channel_on[CHANNEL_TERMINAL] ? RESOLVE_WANT_TERMINALS : 0),
	};
	c->resolver = resolver_start(&rp);
	if (!c->resolver) {
		free(p);
		c->error = "population store (Redis) not reachable; will retry";
		c->state = CAMPAIGN_RESOLVING;
		return; /* dispatch.c retries campaigns stuck in RESOLVING */
	}
	c->state = CAMPAIGN_SENDING;
}

static void fetch_dead_tokens(struct dispatcher *dp, struct campaign *c);

struct resume_call {
	struct dispatcher *dp;
	char id[WARNING_MAX_ID_LEN + 1];
};

static void on_resume_states(void *arg, redisReply *r)
{
	struct resume_call *rc = arg;
	struct campaign *c = campaign_find(rc->dp, rc->id);
	struct dispatcher *dp = rc->dp;
	free(rc);
	if (!c)
		return;
	c->planning = false;
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		c->error = "could not read delivery states; will retry";
		return; /* stays RESOLVING; retried by the tick */
	}
	if (r->elements) {
		/* chunks of records: state letter, address, NUL (see dispatch_publish.c) */
		size_t bytes = 0;
		for (size_t i = 0; i < r->elements; i++)
			bytes += r->element[i]->type == REDIS_REPLY_STRING ? r->element[i]->len : 0;
		c->resume = resume_new(bytes / 16);
		for (size_t i = 0; i < r->elements; i++) {
			if (r->element[i]->type != REDIS_REPLY_STRING)
				continue;
			state_chunk_parse(r->element[i]->str, r->element[i]->len, resume_record, c->resume);
		}
		log_info("msg=\"resuming warning\" warning=%s settled_deliveries=%zu", c->id,
			 c->resume->n);
	}
	fetch_dead_tokens(dp, c);
}

struct dead_call {
	struct dispatcher *dp;
	char id[WARNING_MAX_ID_LEN + 1];
};

static void on_dead_tokens(void *arg, redisReply *r)
{
	struct dead_call *dc = arg;
	struct dispatcher *dp = dc->dp;
	struct campaign *c = campaign_find(dp, dc->id);
	free(dc);
	if (!c)
		return;
	c->planning = false;
	if (!r || r->type != REDIS_REPLY_ARRAY) {
		c->error = "could not read dead push tokens; will retry";
		resume_free(c->resume);
		c->resume = NULL;
		return; /* stays RESOLVING; retried by the tick */
	}
	if (r->elements && !c->resume)
		c->resume = resume_new(r->elements);
	for (size_t i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING)
			resume_put_key(c->resume, r->element[i]->str, r->element[i]->len, 'x', false,
				       false); /* an address */
	c->error = NULL;
	if (c->test)
		plan_test_recipients(dp, c);
	else
		start_resolution(dp, c, false, c->w);
}

/* Push tokens marked dead by the push adapter ({prefix}dead:tokens) are skipped. */
static void fetch_dead_tokens(struct dispatcher *dp, struct campaign *c)
{
	struct dead_call *dc = malloc(sizeof(*dc));
	if (!dc)
		abort();
	dc->dp = dp;
	snprintf(dc->id, sizeof(dc->id), "%s", c->id);
	char key[128];
	snprintf(key, sizeof(key), "%sdead:tokens", dp->cfg.prefix);
	const char *argv[] = {"SMEMBERS", key};
	size_t lens[] = {8, strlen(key)};
	if (redis_command(&dp->redis, on_dead_tokens, dc, 2, argv, lens) < 0) {
		free(dc);
		c->error = "Redis not reachable; will retry";
		resume_free(c->resume);
		c->resume = NULL;
		return;
	}
	c->planning = true;
}

/* Start (or retry) planning c: read what was already settled, then resolve. */
void plan_campaign(struct dispatcher *dp, struct campaign *c)
{
	Tocsin__Warning *w = c->w;
	if (w->status == TOCSIN__STATUS__DRAFT || w->status == TOCSIN__STATUS__SYSTEM ||
	    w->msg_type == TOCSIN__MSG_TYPE__ACK || w->msg_type == TOCSIN__MSG_TYPE__ERROR) {
		c->error = w->status == TOCSIN__STATUS__DRAFT ? "draft: never sent"
							      : "not a warning for the public";
		c->resolved = true;
		c->state = CAMPAIGN_SENDING;
		campaign_check_done(dp, c);
		return;
	}
	struct resume_call *rc = malloc(sizeof(*rc));
	if (!rc)
		abort();
	rc->dp = dp;
	snprintf(rc->id, sizeof(rc->id), "%s", c->id);
	char key[256];
	snprintf(key, sizeof(key), "%sd:%s", dp->cfg.prefix, c->id);
	const char *argv[] = {"LRANGE", key, "0", "-1"};
	size_t lens[] = {6, strlen(key), 1, 2};
	if (redis_command(&dp->redis, on_resume_states, rc, 4, argv, lens) < 0) {
		free(rc);
		c->error = "Redis not reachable; will retry";
		return;
	}
	c->planning = true;
}

/* A Cancel stops terminals still playing the referenced warning. */
void plan_cancel_terminals(struct dispatcher *dp, struct campaign *cancel, struct campaign *ref)
{
	if (!dp->channel_on[CHANNEL_TERMINAL])
		return;
	start_resolution(dp, cancel, true, ref->w);
}
