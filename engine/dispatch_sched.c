/*
 * engine/dispatch_sched.c: lanes at work: which lane a delivery goes to,
 * the scheduling step, what each outcome does, retries with backoff and
 * jitter (never past the warning's expiry), escalation stages, failover
 * and retraction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bigmem.h"
#include "dispatch_internal.h"
#include "log.h"

/* --- the live-delivery map (id -> delivery), for receipts ---
 *
 * Open addressing with linear probing; each slot keeps the id beside the
 * pointer, so probing and growing never touch a delivery (at a million
 * live deliveries, each touch would be a cache miss). id 0 is never used.
 *
 * Ids are handed out in sequence, and planning and receipts go roughly in
 * id order: 64 consecutive ids share a home page (256 16-byte slots, 4
 * KiB), every fourth slot from one of four offsets, so that a run of
 * receipts walks a page line by line (which the hardware prefetches)
 * instead of a line and a page per four ids (a cache and TLB miss per
 * receipt lookup was 6 % of the dispatcher at latency 0). A page has room
 * for four groups without a probe, so ranges of ids far apart (an old
 * warning's and a new one's, with holes) share pages without long clusters
 * (1.2 probes per insert at half load in a model with three such ranges;
 * every other slot: 5; four per line, as before: 3). The groups are
 * scattered by a multiplicative hash. */

static size_t slot_of(const struct dispatcher *dp, uint64_t id)
{
	uint64_t g = (id >> 6) * 0x9E3779B97F4A7C15ull;
	size_t page = (size_t)(g >> 32) << 8, lane = (size_t)(g >> 30) & 3;
	return (page | (size_t)(id & 63) << 2 | lane) & (dp->by_id_cap - 1);
}

static void map_insert(struct dispatcher *dp, uint64_t id, struct delivery *d)
{
	size_t i = slot_of(dp, id);
	while (dp->by_id[i].id)
		i = (i + 1) & (dp->by_id_cap - 1);
	dp->by_id[i].id = id;
	dp->by_id[i].d = d;
	dp->by_id_n++;
}

/* The capacity of an open-addressing table of `cur` slots grown to hold `cap`: a power of two. */
static size_t table_want(size_t cur, size_t cap)
{
	size_t want = cur ? cur : 4096;
	while (want < cap)
		want *= 2;
	return want;
}

/* Zeroed slots for a table; out-of-memory policy: the dispatcher cannot lose deliveries. */
static void *table_new(size_t n, size_t size)
{
	void *p = bigmem_calloc(n, size);
	if (!p)
		abort();
	return p;
}

/* Grow the id map to at least `cap` slots (a power of two), rehashing what it holds. */
static void map_grow(struct dispatcher *dp, size_t cap)
{
	size_t want = table_want(dp->by_id_cap, cap), oldcap = dp->by_id_cap;
	if (want == oldcap)
		return;
	struct id_slot *old = dp->by_id, *n = table_new(want, sizeof(*n));
	dp->by_id = n;
	dp->by_id_cap = want;
	dp->by_id_n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].id)
			map_insert(dp, old[i].id, old[i].d);
	bigmem_free(old);
}

static void map_put(struct dispatcher *dp, struct delivery *d)
{
	if ((dp->by_id_n + 1) * 2 > dp->by_id_cap)
		map_grow(dp, dp->by_id_cap * 2);
	map_insert(dp, d->id, d);
}

static struct delivery *map_get(struct dispatcher *dp, uint64_t id)
{
	if (!dp->by_id_cap || !id)
		return NULL;
	for (size_t i = slot_of(dp, id); dp->by_id[i].id; i = (i + 1) & (dp->by_id_cap - 1))
		if (dp->by_id[i].id == id)
			return dp->by_id[i].d;
	return NULL;
}

static void map_del(struct dispatcher *dp, struct delivery *d)
{
	size_t mask = dp->by_id_cap - 1, i = slot_of(dp, d->id);
	while (dp->by_id[i].id != d->id)
		i = (i + 1) & mask;
	dp->by_id[i].id = 0;
	dp->by_id_n--;
	/* Backward-shift the cluster after the hole (linear probing deletion). */
	for (size_t j = (i + 1) & mask; dp->by_id[j].id; j = (j + 1) & mask) {
		size_t home = slot_of(dp, dp->by_id[j].id);
		if (((j - home) & mask) >= ((j - i) & mask)) {
			dp->by_id[i] = dp->by_id[j];
			dp->by_id[j].id = 0;
			i = j;
		}
	}
}

/* --- app deliveries by (warning, address), for acknowledgements from apps --- */

/*
 * The key of (warning, address), computed once per delivery (addr_hash) and
 * for each app acknowledgement. Push tokens are up to ~170 bytes, so it
 * mixes eight bytes at a step rather than one.
 */
static uint64_t mix_bytes(uint64_t h, const char *s, size_t n)
{
	for (; n >= 8; s += 8, n -= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = (h ^ w) * 0x9E3779B97F4A7C15ull;
		h ^= h >> 29;
	}
	uint64_t w = 0;
	memcpy(&w, s, n);
	h = (h ^ w ^ ((uint64_t)n << 56)) * 0x9E3779B97F4A7C15ull;
	return h ^ (h >> 32);
}

static uint32_t addr_key(const char *warning, const char *address)
{
	uint64_t h = mix_bytes(0x243F6A8885A308D3ull, warning, strlen(warning));
	return (uint32_t)mix_bytes(h, address, strlen(address));
}

uint32_t sched_addr_key(const struct campaign *c, const char *address)
{
	return addr_key(c->id, address);
}

void sched_addr_prefetch(const struct dispatcher *dp, uint32_t key)
{
	if (dp->by_addr_cap)
		__builtin_prefetch(&dp->by_addr[key & (dp->by_addr_cap - 1)], 1);
}

/* Same layout as the id map: the key beside the pointer, d NULL when empty. */
static void addr_insert(struct dispatcher *dp, uint32_t key, struct delivery *d)
{
	size_t mask = dp->by_addr_cap - 1, i = key & mask;
	while (dp->by_addr[i].d)
		i = (i + 1) & mask;
	dp->by_addr[i].key = key;
	dp->by_addr[i].d = d;
	dp->by_addr_n++;
}

static void addr_grow(struct dispatcher *dp, size_t cap)
{
	size_t want = table_want(dp->by_addr_cap, cap), oldcap = dp->by_addr_cap;
	if (want == oldcap)
		return;
	struct addr_slot *old = dp->by_addr, *n = table_new(want, sizeof(*n));
	dp->by_addr = n;
	dp->by_addr_cap = want;
	dp->by_addr_n = 0;
	for (size_t i = 0; i < oldcap; i++)
		if (old[i].d)
			addr_insert(dp, old[i].key, old[i].d);
	bigmem_free(old);
}

static void addr_put(struct dispatcher *dp, struct delivery *d)
{
	if ((dp->by_addr_n + 1) * 2 > dp->by_addr_cap)
		addr_grow(dp, dp->by_addr_cap * 2);
	addr_insert(dp, d->addr_hash, d);
}

static void addr_del(struct dispatcher *dp, struct delivery *d)
{
	size_t mask = dp->by_addr_cap - 1, i = d->addr_hash & mask;
	while (dp->by_addr[i].d != d)
		i = (i + 1) & mask;
	dp->by_addr[i].d = NULL;
	dp->by_addr_n--;
	for (size_t j = (i + 1) & mask; dp->by_addr[j].d; j = (j + 1) & mask) {
		size_t home = dp->by_addr[j].key & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			dp->by_addr[i] = dp->by_addr[j];
			dp->by_addr[j].d = NULL;
			i = j;
		}
	}
}

/* An app showed warning `warning` to `address`: its accepted delivery is delivered. */
void sched_app_ack(struct dispatcher *dp, const char *warning, const char *address)
{
	if (!dp->by_addr_cap)
		return;
	size_t mask = dp->by_addr_cap - 1;
	uint32_t key = addr_key(warning, address);
	for (size_t i = key & mask; dp->by_addr[i].d; i = (i + 1) & mask) {
		struct delivery *d = dp->by_addr[i].d;
		if (dp->by_addr[i].key == key && !strcmp(d->campaign->id, warning) &&
		    !strcmp(d->address, address)) {
			sched_receipt(dp, d->id, OUTCOME_DELIVERED, NULL);
			return;
		}
	}
}

/* --- delivery memory ---
 *
 * A warning creates a delivery per address in a burst (80,000 in a third of
 * a second for a district's phones): from malloc, each was fresh heap, one
 * page fault per 4 KiB and malloc's own bookkeeping, together more than a
 * tenth of the dispatcher's time. Deliveries are cells of two fixed sizes
 * instead (addresses shorter than CELL_SMALL_ADDR bytes: phones and terminal
 * ids; shorter than CELL_LARGE_ADDR: push tokens, FCM's being ~160), cut
 * from 2 MiB chunks in huge pages (bigmem.h) and kept on a free list per
 * class when freed; longer addresses come from malloc. Chunks live as long
 * as the dispatcher, so its memory stays at its high-water mark, as
 * malloc's heap would.
 */
#define CELL_CHUNK (((size_t)2 << 20) - 64) /* with bigmem's header: one huge page */
#define CELL_SMALL_ADDR 32
#define CELL_LARGE_ADDR 192
enum { CELL_MALLOC = 0, CELL_SMALL = 1, CELL_LARGE = 2 };

static size_t cell_size(int class)
{
	size_t addr = class == CELL_SMALL ? CELL_SMALL_ADDR : CELL_LARGE_ADDR;
	return (sizeof(struct delivery) + addr + 15) & ~(size_t)15;
}

/* A new cell of class, cut from the current chunk (a new chunk when it is used up). */
static struct delivery *cell_carve(struct delivery_pool *p, int class)
{
	size_t size = cell_size(class);
	if ((size_t)(p->end[class - 1] - p->bump[class - 1]) < size) {
		char *chunk = bigmem_calloc(1, CELL_CHUNK);
		if (!chunk)
			abort(); /* out-of-memory policy: see engine/README.md */
		memcpy(chunk, &p->chunks, sizeof(void *));
		p->chunks = chunk;
		p->bump[class - 1] = chunk + 64; /* after the chain word, a cache line */
		p->end[class - 1] = chunk + CELL_CHUNK;
	}
	struct delivery *d = (struct delivery *)p->bump[class - 1];
	p->bump[class - 1] += size;
	p->carved[class - 1]++;
	return d;
}

static struct delivery *delivery_alloc(struct dispatcher *dp, size_t len)
{
	struct delivery_pool *p = &dp->pool;
	int class = len < CELL_SMALL_ADDR ? CELL_SMALL : len < CELL_LARGE_ADDR ? CELL_LARGE : CELL_MALLOC;
	struct delivery *d;
	if (class == CELL_MALLOC) {
		d = malloc(sizeof(*d) + len + 1);
	} else if (p->free[class - 1]) {
		d = p->free[class - 1];
		memcpy(&p->free[class - 1], d, sizeof(void *));
	} else {
		d = cell_carve(p, class);
	}
	if (!d)
		abort(); /* out-of-memory policy: see engine/README.md */
	/* Not zeroed whole: only the header is cleared, the address is copied over. */
	memset(d, 0, sizeof(*d));
	d->cell = (uint8_t)class;
	return d;
}

void delivery_release(struct dispatcher *dp, struct delivery *d)
{
	if (d->cell == CELL_MALLOC) {
		free(d);
		return;
	}
	memcpy(d, &dp->pool.free[d->cell - 1], sizeof(void *));
	dp->pool.free[d->cell - 1] = d;
}

static void pool_release(struct delivery_pool *p)
{
	while (p->chunks) {
		void *chunk = p->chunks;
		memcpy(&p->chunks, chunk, sizeof(void *));
		bigmem_free(chunk);
	}
	memset(p, 0, sizeof(*p));
}

/* Forget a delivery: out of every map, memory freed. */
static void delivery_free(struct dispatcher *dp, struct delivery *d)
{
	map_del(dp, d);
	if (d->channel == CHANNEL_APP)
		addr_del(dp, d);
	delivery_release(dp, d);
}

/* --- deliveries --- */

struct delivery *delivery_new(struct dispatcher *dp, struct campaign *c, enum channel ch,
			      const char *addr, size_t len, uint32_t addr_hash)
{
	struct delivery *d = delivery_alloc(dp, len);
	memcpy(d->address_buf, addr, len);
	d->address_buf[len] = 0;
	d->address = d->address_buf;
	d->id = ++dp->next_delivery_id;
	d->campaign = c;
	d->channel = (uint8_t)ch;
	d->household = LEDGER_NONE;
	d->segment = LEDGER_NONE;
	d->parts = 1;
	d->prio = c->prio;
	d->seq = ++dp->next_seq;
	d->reason = "";
	d->state = DELIVERY_QUEUED;
	c->open++;
	c->by_state[DELIVERY_QUEUED]++;
	map_put(dp, d);
	if (ch == CHANNEL_APP) {
		d->addr_hash = addr_hash;
		addr_put(dp, d);
	}
	return d;
}

static void move(struct dispatcher *dp, struct delivery *d, enum delivery_state to)
{
	struct campaign *c = d->campaign;
	enum delivery_state from = (enum delivery_state)d->state;
	if (from == to)
		return;
	ledger_move(&c->ledger, d->household, d->segment, (enum channel)d->channel, from, to,
		    loop_now_ms(&dp->loop));
	c->by_state[from]--;
	c->by_state[to]++;
	d->state = (uint8_t)to;
	c->dirty = true;
	if (to != DELIVERY_QUEUED && to != DELIVERY_SENT)
		publish_state(dp, c, d->address, delivery_state_letter(to));
}

void delivery_finish(struct dispatcher *dp, struct delivery *d, enum delivery_state to,
		     const char *reason)
{
	struct campaign *c = d->campaign;
	if (reason)
		d->reason = reason;
	move(dp, d, to);
	struct lane_stats *st = d->lane ? &d->lane->stats : NULL;
	if (st && to == DELIVERY_FAILED)
		st->failed++;
	if (st && to == DELIVERY_EXPIRED)
		st->expired++;
	if (st && to == DELIVERY_CANCELLED)
		st->cancelled++;
	if (to == DELIVERY_FAILED)
		log_debug("msg=\"delivery failed\" warning=%s channel=%s reason=\"%s\"", c->id,
			  channel_name((enum channel)d->channel), d->reason);
	delivery_free(dp, d);
	c->open--;
	campaign_check_done(dp, c);
}

/* --- lanes --- */

static bool lane_fits(const struct lane *l, const struct delivery *d)
{
	return l->channel == d->channel && (d->channel != CHANNEL_APP || l->platform == d->platform);
}

/* The least loaded lane that is up, else any lane that fits, else NULL. */
static struct lane *pick_lane(struct dispatcher *dp, const struct delivery *d)
{
	struct lane *best = NULL, *any = NULL;
	double best_load = 0;
	for (size_t i = 0; i < dp->n_lanes; i++) {
		struct lane *l = &dp->lanes[i];
		if (!lane_fits(l, d))
			continue;
		any = any ? any : l;
		if (l->down)
			continue;
		double load = (double)(lane_queued(l) + l->inflight) / (l->rate > 0 ? l->rate : 1e6);
		if (!best || load < best_load) {
			best = l;
			best_load = load;
		}
	}
	return best ? best : any;
}

void sched_enqueue(struct dispatcher *dp, struct delivery *d)
{
	struct lane *l = pick_lane(dp, d);
	if (!l) {
		delivery_finish(dp, d, DELIVERY_FAILED, "no lane for this channel");
		return;
	}
	if (d->state != DELIVERY_QUEUED)
		move(dp, d, DELIVERY_QUEUED);
	if (lane_push(l, d) < 0)
		abort();
	kick(dp);
}

/* --- waiting deliveries: a min-heap on not_before_ms --- */

static bool wait_before(const struct delivery *a, const struct delivery *b)
{
	return a->not_before_ms < b->not_before_ms;
}

static void wait_push(struct waiting *w, struct delivery *d)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 256;
		struct delivery **n = realloc(w->items, cap * sizeof(*n));
		if (!n)
			abort();
		w->items = n;
		w->cap = cap;
	}
	size_t i = w->n++;
	while (i > 0 && wait_before(d, w->items[(i - 1) / 2])) {
		w->items[i] = w->items[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	w->items[i] = d;
}

static void wait_sift(struct waiting *w, size_t i)
{
	struct delivery *d = w->items[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= w->n)
			break;
		if (c + 1 < w->n && wait_before(w->items[c + 1], w->items[c]))
			c++;
		if (!wait_before(w->items[c], d))
			break;
		w->items[i] = w->items[c];
		i = c;
	}
	w->items[i] = d;
}

static struct delivery *wait_pop(struct waiting *w)
{
	struct delivery *top = w->items[0];
	w->items[0] = w->items[--w->n];
	if (w->n)
		wait_sift(w, 0);
	return top;
}

/* --- the scheduling step --- */

static void submit(struct dispatcher *dp, struct lane *l, struct delivery *d, uint64_t now)
{
	struct campaign *c = d->campaign;
	if (now >= c->expires_ms || c->state == CAMPAIGN_EXPIRED) {
		lane_done(l);
		delivery_finish(dp, d, DELIVERY_EXPIRED, "expired before it could be sent");
		return;
	}
	d->attempts++;
	d->sent_ms = now;
	move(dp, d, DELIVERY_SENT);
	l->stats.sent++;
	l->stats.parts_sent += d->parts;
	if (d->attempts > 1)
		l->stats.retries++;
	if (!c->first_send_ms) {
		c->first_send_ms = now;
		log_info("msg=\"first delivery sent\" warning=%s after_ms=%llu", c->id,
			 (unsigned long long)(now - c->start_ms));
	}
	if (d->attempts == 1)
		lane_observe(l->stats.first_send_hist, &l->stats.first_send_sum_s,
			     &l->stats.first_send_count, (double)(now - c->start_ms) / 1000.0);
	c->inflight++;
	l->adapter->submit(l, d);
}

/*
 * Submitting moves a delivery to SENT, which reads its household in the
 * ledger for the first time since it was planned (the resolver runs far
 * ahead of sending): a cache miss per delivery, 2 % of the dispatcher at
 * SMSC latency 0. The scheduling step takes what a lane gives in batches
 * and asks for those households before it submits the first of them. That
 * is the same as taking one at a time: an adapter's submit() never reports
 * nor changes a lane from inside (adapter.h), and a delivery taken but not
 * yet submitted still counts as open, so its campaign cannot finish.
 */
#define TAKE_BATCH 64

static void prefetch_household(const struct delivery *d)
{
	if (d->household != UINT32_MAX)
		__builtin_prefetch(&d->campaign->ledger.hh[d->household], 1);
}

static void release_due_retries(struct dispatcher *dp, uint64_t now)
{
	while (dp->retry.n && dp->retry.items[0]->not_before_ms <= now) {
		struct delivery *d = wait_pop(&dp->retry);
		sched_enqueue(dp, d);
	}
}

static void schedule(struct timer *t)
{
	struct dispatcher *dp = (struct dispatcher *)((char *)t - offsetof(struct dispatcher, sched_timer));
	if (dp->closing)
		return; /* adapters are closed: nothing may be submitted */
	uint64_t now = loop_now_ms(&dp->loop), next = UINT64_MAX;
	release_due_retries(dp, now);
	for (size_t i = 0; i < dp->n_lanes; i++) {
		struct lane *l = &dp->lanes[i];
		struct delivery *batch[TAKE_BATCH];
		size_t n;
		do { /* take a batch, then submit it: see prefetch_household */
			for (n = 0; n < TAKE_BATCH && (batch[n] = lane_take(l, now)); n++)
				prefetch_household(batch[n]);
			for (size_t k = 0; k < n; k++)
				submit(dp, l, batch[k], now);
		} while (n); /* until the lane gives nothing after the last submit, as before */
		uint64_t r = lane_next_ready_ms(l, now);
		if (r < next)
			next = r;
	}
	if (dp->retry.n && dp->retry.items[0]->not_before_ms < next)
		next = dp->retry.items[0]->not_before_ms;
	if (next != UINT64_MAX && !loop_timer_armed(&dp->sched_timer))
		loop_timer_set(&dp->loop, &dp->sched_timer, next > now ? next - now : 1, schedule);
}

void sched_now(struct dispatcher *dp, bool submit)
{
	if (dp->closing)
		return;
	loop_timer_cancel(&dp->loop, &dp->sched_timer);
	schedule(&dp->sched_timer);
	if (submit)
		loop_submit(&dp->loop);
}

void kick(struct dispatcher *dp)
{
	if (dp->closing)
		return;
	if (!loop_timer_armed(&dp->sched_timer) || dp->sched_timer.deadline_ms > loop_now_ms(&dp->loop))
		loop_timer_set(&dp->loop, &dp->sched_timer, 0, schedule);
}

void sched_init(struct dispatcher *dp)
{
	dp->host.loop = &dp->loop;
	dp->host.redis = dp->cfg.redis;
	dp->host.prefix = dp->cfg.prefix;
	dp->host.ctx = dp;
	dp->host.report = sched_report;
	dp->host.receipt = sched_receipt;
	dp->host.up = sched_lane_up;
}

/*
 * Sizing, once per warning before its first batch: the maps for every
 * delivery at once, each lane's ring for its share of its channel (the
 * channel's lanes share it about evenly; a ring still grows if one lane
 * ends up with more), and the adapters (SMS: parts, not deliveries). With
 * that, nothing rehashes or copies while the deliveries are planned and
 * sent, and the large tables are in huge pages (bigmem.h).
 */
/* Ring room for each lane of channel ch when n of its deliveries are coming (a quarter spare). */
static size_t lane_share(const struct dispatcher *dp, enum channel ch, uint64_t n)
{
	size_t lanes = 0;
	for (size_t i = 0; i < dp->n_lanes; i++)
		lanes += dp->lanes[i].channel == ch;
	return lanes ? (size_t)(n + n / 4) / lanes + 16 : 0;
}

void sched_reserve(struct dispatcher *dp, struct campaign *c, const uint64_t per[CHANNEL_COUNT])
{
	const uint64_t cap = (uint64_t)1 << 32; /* a nonsense hint: let things grow instead */
	uint64_t total = 0;
	for (int ch = 0; ch < CHANNEL_COUNT; ch++)
		total += per[ch] < cap ? per[ch] : 0;
	if (total)
		map_grow(dp, 2 * (dp->by_id_n + total));
	if (per[CHANNEL_APP] && per[CHANNEL_APP] < cap)
		addr_grow(dp, 2 * (dp->by_addr_n + per[CHANNEL_APP]));
	unsigned parts = 1;
	for (size_t i = 0; i < c->w->n_info && i < WARNING_MAX_INFOS; i++) {
		unsigned p = campaign_sms_parts(c, (unsigned)i);
		parts = p > parts ? p : parts;
	}
	for (int ch = 0; ch < CHANNEL_COUNT; ch++) {
		if (!per[ch] || per[ch] >= cap)
			continue;
		size_t share = lane_share(dp, (enum channel)ch, per[ch]);
		for (size_t i = 0; i < dp->n_lanes; i++) {
			struct lane *l = &dp->lanes[i];
			if (l->channel != (enum channel)ch)
				continue;
			(void)lane_reserve(l, share);
			if (l->adapter && l->adapter->reserve)
				l->adapter->reserve(l, (size_t)per[ch] * (ch == CHANNEL_SMS ? parts : 1));
		}
	}
}

/*
 * Heap made ready per delivery (an adapter's own state for it, a terminal's
 * ~100 bytes, and the resolver's replies behind it), up to a cap.
 */
#define WARM_HEAP_PER_DELIVERY 512
#define WARM_HEAP_MAX ((size_t)64 << 20)

/* Cut cells of class until n were cut in all, onto the free list (the link written into
   each cell faults its page in). */
static void pool_warm(struct delivery_pool *p, int class, size_t n)
{
	while (p->carved[class - 1] < n) {
		char *d = (char *)cell_carve(p, class);
		memcpy(d, &p->free[class - 1], sizeof(void *));
		p->free[class - 1] = d;
	}
}

void sched_warm(struct dispatcher *dp, const uint64_t per[CHANNEL_COUNT])
{
	uint64_t total = 0, cap = (uint64_t)dp->cfg.warm_deliveries, n[CHANNEL_COUNT];
	for (int ch = 0; ch < CHANNEL_COUNT; ch++) {
		n[ch] = dp->channel_on[ch] ? per[ch] : 0;
		n[ch] = n[ch] < cap - total ? n[ch] : cap - total;
		total += n[ch];
		dp->warmed_n[ch] = n[ch] > dp->warmed_n[ch] ? n[ch] : dp->warmed_n[ch];
	}
	if (!total)
		return;
	map_grow(dp, 2 * total);
	bigmem_touch(dp->by_id, dp->by_id_cap * sizeof(*dp->by_id));
	if (n[CHANNEL_APP]) {
		addr_grow(dp, 2 * n[CHANNEL_APP]);
		bigmem_touch(dp->by_addr, dp->by_addr_cap * sizeof(*dp->by_addr));
	}
	for (size_t i = 0; i < dp->n_lanes; i++) {
		struct lane *l = &dp->lanes[i];
		if (n[l->channel])
			(void)lane_warm(l, lane_share(dp, l->channel, n[l->channel]));
	}
	pool_warm(&dp->pool, CELL_SMALL, (size_t)(n[CHANNEL_SMS] + n[CHANNEL_TERMINAL]));
	pool_warm(&dp->pool, CELL_LARGE, (size_t)n[CHANNEL_APP]);
	size_t heap = (size_t)total * WARM_HEAP_PER_DELIVERY;
	bigmem_heap_warm(heap < WARM_HEAP_MAX ? heap : WARM_HEAP_MAX);
	/* The resolver dedupes every address of the population, whatever the channels. */
	uint64_t addrs = per[CHANNEL_SMS] + per[CHANNEL_APP] + per[CHANNEL_TERMINAL];
	(void)resolve_spare_warm(&dp->resolve_spare, addrs < cap ? addrs : cap);
}

void sched_release(struct dispatcher *dp)
{
	free(dp->retry.items);
	bigmem_free(dp->by_id);
	bigmem_free(dp->by_addr);
	pool_release(&dp->pool);
	resolve_spare_release(&dp->resolve_spare);
}

/* --- outcomes --- */

static uint64_t backoff_ms(const struct dispatcher *dp, unsigned attempts)
{
	uint64_t base = (uint64_t)dp->cfg.retry_base_ms << (attempts > 10 ? 10 : attempts - 1);
	return base / 2 + (uint64_t)rand() % (base / 2 + 1); /* "equal jitter" */
}

static void retry_later(struct dispatcher *dp, struct delivery *d, const char *reason,
			uint64_t now)
{
	struct campaign *c = d->campaign;
	uint64_t at = now + backoff_ms(dp, d->attempts);
	if (at >= c->expires_ms || d->attempts >= (unsigned)dp->cfg.max_attempts ||
	    c->state != CAMPAIGN_SENDING) {
		delivery_finish(dp, d, at >= c->expires_ms ? DELIVERY_EXPIRED : DELIVERY_FAILED,
				reason);
		return;
	}
	d->reason = reason ? reason : "";
	d->not_before_ms = at;
	move(dp, d, DELIVERY_QUEUED);
	wait_push(&dp->retry, d);
	kick(dp);
}

static void observe_receipt(struct delivery *d, uint64_t now)
{
	if (d->lane && d->sent_ms)
		lane_observe(d->lane->stats.receipt_hist, &d->lane->stats.receipt_sum_s,
			     &d->lane->stats.receipt_count, (double)(now - d->sent_ms) / 1000.0);
}

void sched_report(void *ctx, struct delivery *d, enum outcome o, const char *reason,
		  uint32_t retry_after_ms)
{
	struct dispatcher *dp = ctx;
	struct lane *l = d->lane;
	struct campaign *c = d->campaign;
	uint64_t now = loop_now_ms(&dp->loop);
	lane_done(l);
	c->inflight--;
	kick(dp);
	if (c->state == CAMPAIGN_CANCELLED || c->state == CAMPAIGN_SUPERSEDED) {
		delivery_finish(dp, d, DELIVERY_CANCELLED, "warning cancelled");
		return;
	}
	switch (o) {
	case OUTCOME_ACCEPTED:
		l->stats.accepted++;
		move(dp, d, DELIVERY_ACCEPTED);
		if (now >= c->expires_ms)
			delivery_finish(dp, d, DELIVERY_EXPIRED, "expired awaiting receipt");
		break;
	case OUTCOME_DELIVERED:
		l->stats.delivered++;
		observe_receipt(d, now);
		delivery_finish(dp, d, DELIVERY_DELIVERED, NULL);
		break;
	case OUTCOME_PERMANENT:
		delivery_finish(dp, d, DELIVERY_FAILED, reason);
		break;
	case OUTCOME_EXPIRED:
		delivery_finish(dp, d, DELIVERY_EXPIRED, reason);
		break;
	case OUTCOME_THROTTLED:
		lane_pause(l, now + (retry_after_ms ? retry_after_ms : 1000), reason ? reason : "throttled");
		log_info("msg=\"lane paused\" lane=%s for_ms=%u reason=\"%s\"", l->name,
			 retry_after_ms ? retry_after_ms : 1000, l->pause_reason);
		d->attempts--; /* a throttled try does not count against the delivery */
		move(dp, d, DELIVERY_QUEUED);
		if (lane_push(l, d) < 0) /* same seq: it keeps its place in the order */
			abort();
		break;
	case OUTCOME_TRANSIENT:
		retry_later(dp, d, reason, now);
		break;
	}
}

void sched_receipt(void *ctx, uint64_t id, enum outcome o, const char *reason)
{
	struct dispatcher *dp = ctx;
	struct delivery *d = map_get(dp, id);
	if (!d || d->state != DELIVERY_ACCEPTED)
		return; /* late, duplicate, or for a delivery already final */
	uint64_t now = loop_now_ms(&dp->loop);
	if (o == OUTCOME_DELIVERED) {
		if (++d->parts_delivered < d->parts)
			return; /* a multi-part SMS is delivered when all parts are */
		if (d->lane)
			d->lane->stats.delivered++;
		observe_receipt(d, now);
		delivery_finish(dp, d, DELIVERY_DELIVERED, NULL);
	} else if (o == OUTCOME_EXPIRED) {
		delivery_finish(dp, d, DELIVERY_EXPIRED, reason ? reason : "expired at the provider");
	} else if (o == OUTCOME_PERMANENT) {
		delivery_finish(dp, d, DELIVERY_FAILED, reason ? reason : "undeliverable");
	}
}

/* --- failover --- */

static bool on_lane(const struct delivery *d, void *arg)
{
	return true;
}

static void requeue(struct delivery *d, void *arg)
{
	struct dispatcher *dp = arg;
	struct lane *l = pick_lane(dp, d);
	if (!l || lane_push(l, d) < 0)
		abort();
}

/* Deliveries gathered out of lanes (or the id map), then finished or requeued. */
struct finish_ctx {
	struct dispatcher *dp;
	enum delivery_state to;
	const char *reason;
	struct delivery **list;
	size_t n, cap;
};

static void collect(struct delivery *d, void *arg)
{
	struct finish_ctx *f = arg;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 1024;
		f->list = realloc(f->list, f->cap * sizeof(*f->list));
		if (!f->list)
			abort();
	}
	f->list[f->n++] = d;
}

static bool siblings(const struct lane *a, const struct lane *b)
{
	return a->channel == b->channel && a->platform == b->platform;
}

/*
 * A lane came up: spread its siblings' queues over every lane that is up
 * again. Failover moves a down lane's queue to the lanes still up, so when
 * binds drop one after another everything piles onto the last one standing
 * and would stay there (new deliveries are the only ones pick_lane places).
 * Each lane's queue keeps its (priority, admission) order whatever the
 * order of arrival.
 */
static void rebalance(struct dispatcher *dp, const struct lane *up)
{
	struct finish_ctx m = {.dp = dp};
	for (size_t i = 0; i < dp->n_lanes; i++)
		if (siblings(&dp->lanes[i], up) && lane_queued(&dp->lanes[i]))
			lane_retract(&dp->lanes[i], on_lane, NULL, collect, &m);
	for (size_t i = 0; i < m.n; i++)
		requeue(m.list[i], dp);
	if (m.n)
		log_info("msg=\"queues spread again\" lane=%s deliveries=%zu", up->name, m.n);
	free(m.list);
}

void sched_lane_up(void *ctx, struct lane *l, bool up, const char *why)
{
	struct dispatcher *dp = ctx;
	if (l->down == !up)
		return;
	l->down = !up;
	log_info("msg=\"lane %s\" lane=%s why=\"%s\"", up ? "up" : "down", l->name, why ? why : "");
	if (!up && lane_queued(l)) {
		/* Fail over: move the queue to sibling lanes (it stays here if none is up). */
		struct lane *sibling = NULL;
		for (size_t i = 0; i < dp->n_lanes && !sibling; i++)
			if (&dp->lanes[i] != l && !dp->lanes[i].down && siblings(&dp->lanes[i], l))
				sibling = &dp->lanes[i];
		if (sibling)
			lane_retract(l, on_lane, NULL, requeue, dp);
	}
	if (up)
		rebalance(dp, l);
	kick(dp);
}

/* --- escalation: deliveries held until their stage --- */

void sched_hold(struct dispatcher *dp, struct delivery *d)
{
	struct campaign *c = d->campaign;
	if (c->n_held == c->cap_held) {
		size_t cap = c->cap_held ? c->cap_held * 2 : 256;
		struct delivery **n = realloc(c->held, cap * sizeof(*n));
		if (!n)
			abort();
		c->held = n;
		c->cap_held = cap;
	}
	c->held[c->n_held++] = d;
}

/* Release stage `stage`: send to households not reached yet, drop the rest. */
void sched_release_held(struct dispatcher *dp, struct campaign *c, unsigned stage)
{
	size_t kept = 0;
	for (size_t i = 0; i < c->n_held; i++) {
		struct delivery *d = c->held[i];
		if (dp->stage[d->channel] != stage) {
			c->held[kept++] = d;
			continue;
		}
		bool reached = d->household != LEDGER_NONE && ledger_hh_reached(&c->ledger, d->household);
		if (reached) { /* not planned in the ledger: just forget it */
			c->by_state[DELIVERY_QUEUED]--;
			c->by_state[DELIVERY_CANCELLED]++;
			delivery_free(dp, d);
			c->open--;
			continue;
		}
		if (d->household != LEDGER_NONE)
			ledger_plan(&c->ledger, d->household, (enum channel)d->channel);
		else if (d->segment != LEDGER_NONE)
			ledger_plan_terminal(&c->ledger, d->segment);
		sched_enqueue(dp, d);
	}
	c->n_held = kept;
	c->dirty = true;
	campaign_check_done(dp, c);
}

/* --- retraction and expiry --- */

static bool of_campaign(const struct delivery *d, void *arg)
{
	return d->campaign == arg;
}

static void finish_all(struct finish_ctx *f)
{
	for (size_t i = 0; i < f->n; i++)
		delivery_finish(f->dp, f->list[i], f->to, f->reason);
	free(f->list);
}

/* Every queued, waiting and held delivery of c ends in state `to`. */
void sched_retract(struct dispatcher *dp, struct campaign *c, enum delivery_state to)
{
	struct finish_ctx f = {.dp = dp, .to = to,
			       .reason = to == DELIVERY_EXPIRED ? "warning expired" : "warning cancelled"};
	for (size_t i = 0; i < dp->n_lanes; i++)
		lane_retract(&dp->lanes[i], of_campaign, c, collect, &f);
	size_t kept = 0;
	for (size_t i = 0; i < dp->retry.n; i++) {
		if (dp->retry.items[i]->campaign == c)
			collect(dp->retry.items[i], &f);
		else
			dp->retry.items[kept++] = dp->retry.items[i];
	}
	dp->retry.n = kept;
	for (size_t i = kept / 2; i-- > 0;)
		wait_sift(&dp->retry, i);
	/* Held deliveries were never planned: drop them without touching the ledger. */
	for (size_t i = 0; i < c->n_held; i++) {
		struct delivery *d = c->held[i];
		c->by_state[DELIVERY_QUEUED]--;
		c->by_state[to]++;
		delivery_free(dp, d);
		c->open--;
	}
	c->n_held = 0;
	finish_all(&f);
	c->dirty = true;
	kick(dp);
}

static bool accepted_of(struct dispatcher *dp, struct campaign *c, struct finish_ctx *f)
{
	for (size_t i = 0; i < dp->by_id_cap; i++) {
		struct delivery *d = dp->by_id[i].id ? dp->by_id[i].d : NULL;
		if (d && d->campaign == c && d->state == DELIVERY_ACCEPTED)
			collect(d, f);
	}
	return f->n > 0;
}

/* The warning expired: nothing more is sent; accepted-but-unconfirmed ones expire too. */
void sched_expire(struct dispatcher *dp, struct campaign *c)
{
	sched_retract(dp, c, DELIVERY_EXPIRED);
	struct finish_ctx f = {.dp = dp, .to = DELIVERY_EXPIRED, .reason = "no receipt before expiry"};
	if (accepted_of(dp, c, &f))
		finish_all(&f);
	else
		free(f.list);
}
