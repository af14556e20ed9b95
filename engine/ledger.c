/*
 * engine/ledger.c: coverage accounting (see ledger.h for the classes).
 *
 * Every change to a household goes through update(): classify before,
 * mutate, classify after, and move the persons between the counters. That
 * one rule keeps overall, per-channel and per-community totals consistent
 * whatever order outcomes arrive in.
 */
#include "ledger.h"

#include <stdlib.h>
#include <string.h>

enum cls { CLS_NONE, CLS_PENDING, CLS_ACCEPTED, CLS_REACHED, CLS_FAILED };

void ledger_init(struct ledger *l, uint64_t start_ms)
{
	memset(l, 0, sizeof(*l));
	l->start_ms = start_ms;
}

void ledger_release(struct ledger *l)
{
	for (uint32_t i = 0; i < l->n_seg; i++)
		free(l->seg[i].id);
	free(l->seg);
	free(l->hh);
	free(l->seg_index);
	memset(l, 0, sizeof(*l));
}

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

uint32_t ledger_find_segment(const struct ledger *l, const char *id)
{
	if (!l->index_cap)
		return LEDGER_NONE;
	for (uint32_t i = hash(id) & (l->index_cap - 1);; i = (i + 1) & (l->index_cap - 1)) {
		uint32_t s = l->seg_index[i];
		if (s == LEDGER_NONE)
			return LEDGER_NONE;
		if (!strcmp(l->seg[s].id, id))
			return s;
	}
}

static int grow_index(struct ledger *l)
{
	uint32_t cap = l->index_cap ? l->index_cap * 2 : 256;
	uint32_t *idx = malloc(cap * sizeof(*idx));
	if (!idx)
		return -1;
	memset(idx, 0xff, cap * sizeof(*idx));
	for (uint32_t s = 0; s < l->n_seg; s++) {
		uint32_t i = hash(l->seg[s].id) & (cap - 1);
		while (idx[i] != LEDGER_NONE)
			i = (i + 1) & (cap - 1);
		idx[i] = s;
	}
	free(l->seg_index);
	l->seg_index = idx;
	l->index_cap = cap;
	return 0;
}

uint32_t ledger_segment(struct ledger *l, const char *id, enum ledger_kind kind, uint64_t census,
			uint32_t community)
{
	uint32_t s = ledger_find_segment(l, id);
	if (s != LEDGER_NONE)
		return s;
	if ((l->n_seg + 1) * 2 > l->index_cap && grow_index(l) < 0)
		return LEDGER_NONE;
	if (l->n_seg == l->cap_seg) {
		uint32_t cap = l->cap_seg ? l->cap_seg * 2 : 64;
		struct ledger_segment *n = realloc(l->seg, cap * sizeof(*n));
		if (!n)
			return LEDGER_NONE;
		l->seg = n;
		l->cap_seg = cap;
	}
	struct ledger_segment *sg = &l->seg[l->n_seg];
	memset(sg, 0, sizeof(*sg));
	sg->id = strdup(id);
	if (!sg->id)
		return LEDGER_NONE;
	sg->kind = kind;
	sg->census = census;
	sg->community = kind == LEDGER_COMMUNITY ? l->n_seg : community;
	sg->first_hh = LEDGER_NONE;
	if (kind == LEDGER_COMMUNITY)
		l->census += census;
	uint32_t i = hash(id) & (l->index_cap - 1);
	while (l->seg_index[i] != LEDGER_NONE)
		i = (i + 1) & (l->index_cap - 1);
	l->seg_index[i] = l->n_seg;
	return l->n_seg++;
}

void ledger_set_census(struct ledger *l, uint32_t seg, uint64_t census)
{
	struct ledger_segment *sg = &l->seg[seg];
	if (sg->kind == LEDGER_COMMUNITY)
		l->census = l->census - sg->census + census;
	sg->census = census;
}

static bool terminal_pending(const struct ledger *l, const struct ledger_household *h)
{
	return (h->building != LEDGER_NONE && l->seg[h->building].terminals_pending) ||
	       (h->community != LEDGER_NONE && l->seg[h->community].terminals_pending);
}

static enum cls classify(const struct ledger *l, const struct ledger_household *h, int ch)
{
	if (ch >= 0) {
		if (!(h->has & (1u << ch)))
			return CLS_NONE;
		if (h->reached & (1u << ch))
			return CLS_REACHED;
		if (h->accepted[ch])
			return CLS_ACCEPTED;
		if (h->pending[ch] || (ch == CHANNEL_TERMINAL && terminal_pending(l, h)))
			return CLS_PENDING;
		return CLS_FAILED;
	}
	if (h->reached)
		return CLS_REACHED;
	unsigned acc = 0, pend = 0;
	for (int c = 0; c < CHANNEL_COUNT; c++) {
		acc += h->accepted[c];
		pend += h->pending[c];
	}
	if (acc)
		return CLS_ACCEPTED;
	if (pend || terminal_pending(l, h))
		return CLS_PENDING;
	return CLS_FAILED;
}

static void count(struct ledger_counts *c, enum cls k, uint64_t persons, int sign)
{
	uint64_t d = sign > 0 ? persons : (uint64_t)-(int64_t)persons;
	if (k != CLS_NONE)
		c->targeted += d;
	if (k == CLS_REACHED)
		c->reached += d;
	else if (k == CLS_ACCEPTED)
		c->accepted += d;
	else if (k == CLS_FAILED)
		c->failed += d;
}

#define ALL_CHANNELS ((1u << CHANNEL_COUNT) - 1)

/* A household's classes: overall, and for the channels in `chans` (the others left out). */
struct snap {
	enum cls all, ch[CHANNEL_COUNT];
	unsigned chans;
};

/*
 * A change to one channel's counters of a household (planning, a delivery
 * moving) can change that channel's class and the overall one only: the
 * snapshots around it classify just those (classifying every channel twice
 * per delivery state change was a measurable part of the dispatcher).
 */
static void snap_of(const struct ledger *l, const struct ledger_household *h, unsigned chans,
		    struct snap *s)
{
	s->chans = chans;
	s->all = classify(l, h, -1);
	for (int c = 0; c < CHANNEL_COUNT; c++)
		if (chans & (1u << c))
			s->ch[c] = classify(l, h, c);
}

static void snap(const struct ledger *l, const struct ledger_household *h, struct snap *s)
{
	snap_of(l, h, ALL_CHANNELS, s);
}

/* Move h's persons from the classes in `before` to its classes now (before's channels). */
static void settle(struct ledger *l, struct ledger_household *h, const struct snap *before,
		   uint64_t now_ms)
{
	struct snap after;
	snap_of(l, h, before->chans, &after);
	struct ledger_counts *seg = h->community != LEDGER_NONE ? &l->seg[h->community].counts : NULL;
	if (after.all != before->all) {
		count(&l->total, before->all, h->persons, -1);
		count(&l->total, after.all, h->persons, +1);
		if (seg) {
			count(seg, before->all, h->persons, -1);
			count(seg, after.all, h->persons, +1);
		}
	}
	for (int c = 0; c < CHANNEL_COUNT; c++) {
		if (!(before->chans & (1u << c)) || after.ch[c] == before->ch[c])
			continue;
		count(&l->channel[c], before->ch[c], h->persons, -1);
		count(&l->channel[c], after.ch[c], h->persons, +1);
	}
	if (!l->t90_ms && l->total.targeted && l->total.reached * 10 >= l->total.targeted * 9)
		l->t90_ms = now_ms > l->start_ms ? now_ms - l->start_ms : 1;
}

static int hh_grow(struct ledger *l, uint64_t cap)
{
	if (cap > UINT32_MAX - 1)
		return -1;
	struct ledger_household *n = realloc(l->hh, (size_t)cap * sizeof(*n));
	if (!n)
		return -1;
	l->hh = n;
	l->cap_hh = (uint32_t)cap;
	return 0;
}

int ledger_reserve(struct ledger *l, uint64_t households)
{
	uint64_t want = (uint64_t)l->n_hh + households;
	return want <= l->cap_hh ? 0 : hh_grow(l, want);
}

uint32_t ledger_household(struct ledger *l, uint32_t persons, uint32_t building,
			  uint32_t community)
{
	if (l->n_hh == l->cap_hh && hh_grow(l, l->cap_hh ? (uint64_t)l->cap_hh * 2 : 1024) < 0)
		return LEDGER_NONE;
	uint32_t i = l->n_hh++;
	struct ledger_household *h = &l->hh[i];
	memset(h, 0, sizeof(*h));
	h->persons = persons;
	h->building = building;
	h->community = community;
	h->next_in_building = h->next_in_community = LEDGER_NONE;
	if (building != LEDGER_NONE) {
		h->next_in_building = l->seg[building].first_hh;
		l->seg[building].first_hh = i;
	}
	if (community != LEDGER_NONE && community != building) {
		h->next_in_community = l->seg[community].first_hh;
		l->seg[community].first_hh = i;
	}
	/* A terminal planned (or done) before this household arrived covers it too. */
	for (int k = 0; k < 2; k++) {
		uint32_t s = k ? community : building;
		if (s == LEDGER_NONE)
			continue;
		if (l->seg[s].terminal_planned)
			h->has |= 1u << CHANNEL_TERMINAL;
		if (l->seg[s].terminal_reached)
			h->reached |= 1u << CHANNEL_TERMINAL;
	}
	struct snap none = {.all = CLS_NONE, .chans = ALL_CHANNELS};
	settle(l, h, &none, l->start_ms);
	return i;
}

void ledger_plan(struct ledger *l, uint32_t hh, enum channel ch)
{
	struct ledger_household *h = &l->hh[hh];
	struct snap before;
	snap_of(l, h, 1u << ch, &before);
	h->has |= 1u << ch;
	if (h->pending[ch] < UINT8_MAX)
		h->pending[ch]++;
	settle(l, h, &before, l->start_ms);
}

static void apply(struct ledger_household *h, enum channel ch, enum delivery_state from,
		  enum delivery_state to)
{
	if ((from == DELIVERY_QUEUED || from == DELIVERY_SENT) && h->pending[ch])
		h->pending[ch]--;
	if (from == DELIVERY_ACCEPTED && h->accepted[ch])
		h->accepted[ch]--;
	if (to == DELIVERY_QUEUED || to == DELIVERY_SENT)
		h->pending[ch] += h->pending[ch] < UINT8_MAX;
	else if (to == DELIVERY_ACCEPTED)
		h->accepted[ch] += h->accepted[ch] < UINT8_MAX;
	else if (to == DELIVERY_DELIVERED)
		h->reached |= 1u << ch;
}

/* Change a segment's pending-terminal count with its households' classes kept in step. */
static void terminal_step(struct ledger *l, uint32_t s, int delta, bool reached, uint64_t now_ms)
{
	struct ledger_segment *sg = &l->seg[s];
	uint32_t pending = delta > 0 || sg->terminals_pending ? sg->terminals_pending + (uint32_t)delta
							      : sg->terminals_pending;
	/*
	 * A household's classes see its segments' terminals only through
	 * terminal_planned (the channel bit in `has`), terminal_reached (the bit
	 * in `reached`) and whether terminals_pending is zero. When none of the
	 * three changes (the second and later terminals of a community, every
	 * Ack but a segment's first play and its last outcome), no class can
	 * change: only the count moves, without walking the households (a
	 * community holds thousands).
	 */
	if (sg->terminal_planned && (!reached || sg->terminal_reached) &&
	    (pending != 0) == (sg->terminals_pending != 0)) {
		sg->terminals_pending = pending;
		return;
	}
	/* Snapshots must be taken before the shared count changes: do it per household. */
	bool building = sg->kind == LEDGER_BUILDING;
	uint32_t n = 0;
	for (uint32_t i = sg->first_hh; i != LEDGER_NONE; n++)
		i = building ? l->hh[i].next_in_building : l->hh[i].next_in_community;
	struct snap *before = n ? malloc(n * sizeof(*before)) : NULL;
	if (n && !before)
		abort(); /* out-of-memory policy: counters must never drift */
	uint32_t k = 0;
	for (uint32_t i = sg->first_hh; before && i != LEDGER_NONE; k++) {
		snap(l, &l->hh[i], &before[k]);
		i = building ? l->hh[i].next_in_building : l->hh[i].next_in_community;
	}
	if (delta > 0 || sg->terminals_pending)
		sg->terminals_pending += delta;
	sg->terminal_planned = true;
	sg->terminal_reached |= reached;
	k = 0;
	for (uint32_t i = sg->first_hh; before && i != LEDGER_NONE; k++) {
		struct ledger_household *h = &l->hh[i];
		h->has |= 1u << CHANNEL_TERMINAL;
		if (reached)
			h->reached |= 1u << CHANNEL_TERMINAL;
		settle(l, h, &before[k], now_ms);
		i = building ? h->next_in_building : h->next_in_community;
	}
	free(before);
}

void ledger_plan_terminal(struct ledger *l, uint32_t seg)
{
	terminal_step(l, seg, +1, false, l->start_ms);
}

void ledger_move(struct ledger *l, uint32_t hh, uint32_t seg, enum channel ch,
		 enum delivery_state from, enum delivery_state to, uint64_t now_ms)
{
	if (hh == LEDGER_NONE) { /* a terminal: its segment's households */
		bool was_pending = from == DELIVERY_QUEUED || from == DELIVERY_SENT ||
				   from == DELIVERY_ACCEPTED;
		bool now_pending = to == DELIVERY_QUEUED || to == DELIVERY_SENT ||
				   to == DELIVERY_ACCEPTED;
		int delta = (int)now_pending - (int)was_pending;
		if (seg != LEDGER_NONE && (delta || to == DELIVERY_DELIVERED))
			terminal_step(l, seg, delta, to == DELIVERY_DELIVERED, now_ms);
		return;
	}
	struct ledger_household *h = &l->hh[hh];
	struct snap before;
	snap_of(l, h, 1u << ch, &before);
	apply(h, ch, from, to);
	settle(l, h, &before, now_ms);
}

bool ledger_hh_reached(const struct ledger *l, uint32_t hh)
{
	return l->hh[hh].reached != 0;
}

bool ledger_hh_reached_on(const struct ledger *l, uint32_t hh, enum channel ch)
{
	return (l->hh[hh].reached >> ch) & 1;
}
