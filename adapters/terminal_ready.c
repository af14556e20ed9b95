/*
 * adapters/terminal_ready.c: broadcast readiness arithmetic (the model and
 * its invariants are in terminal_ready.h).
 *
 * Invariant kept by every update: for each street and district, covered =
 * the sum of its children's covered; for each community, covered follows
 * the formula in the header from `online` and `bld_covered`.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "terminal_ready.h"

uint32_t tready_add_seg(struct tready *r, enum tready_kind kind, uint32_t parent,
			uint64_t persons, const char *id)
{
	if (parent != TREADY_NONE && (parent >= r->n || r->segs[parent].kind >= kind))
		return TREADY_NONE;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct tready_seg *s = realloc(r->segs, cap * sizeof(*s));
		if (!s)
			return TREADY_NONE;
		r->segs = s;
		r->cap = cap;
	}
	char *copy = strdup(id);
	if (!copy)
		return TREADY_NONE;
	r->segs[r->n] = (struct tready_seg){.id = copy, .parent = parent, .kind = (uint8_t)kind,
					    .persons = persons};
	return (uint32_t)r->n++;
}

void tready_add_terminal(struct tready *r, uint32_t seg)
{
	for (uint32_t s = seg; s != TREADY_NONE && s < r->n; s = r->segs[s].parent)
		r->segs[s].terms++;
}

/* Add delta to the covered figure of s and of everything above it. */
static void propagate(struct tready *r, uint32_t s, int64_t delta)
{
	for (; s != TREADY_NONE; s = r->segs[s].parent)
		r->segs[s].covered = (uint64_t)((int64_t)r->segs[s].covered + delta);
}

static uint64_t community_covered(const struct tready_seg *c)
{
	uint64_t b = c->bld_covered < c->persons ? c->bld_covered : c->persons;
	return c->online ? c->persons : b;
}

void tready_online(struct tready *r, uint32_t seg, int delta)
{
	if (seg >= r->n || delta == 0)
		return;
	struct tready_seg *s = &r->segs[seg];
	if (delta < 0 && s->online == 0)
		return; /* never below zero */
	for (uint32_t p = seg; p != TREADY_NONE; p = r->segs[p].parent)
		r->segs[p].online_sub = (uint32_t)((int64_t)r->segs[p].online_sub + delta);
	uint32_t was = s->online;
	s->online = (uint32_t)((int64_t)s->online + delta);
	bool changed = (was == 0) != (s->online == 0);
	if (!changed)
		return;
	uint32_t c = seg;
	if (s->kind == TREADY_BUILDING) {
		c = s->parent;
		if (c == TREADY_NONE)
			return;
		struct tready_seg *cs = &r->segs[c];
		uint64_t before = community_covered(cs);
		cs->bld_covered = s->online ? cs->bld_covered + s->persons : cs->bld_covered - s->persons;
		s->covered = s->online ? s->persons : 0;
		propagate(r, c, (int64_t)community_covered(cs) - (int64_t)before);
		return;
	}
	if (s->kind == TREADY_COMMUNITY) {
		uint64_t before = s->covered;
		propagate(r, c, (int64_t)community_covered(s) - (int64_t)before);
		return;
	}
	/* A terminal on a street or district covers nothing by the model (the loader refuses it). */
}

void tready_total(const struct tready *r, uint64_t *persons, uint64_t *covered)
{
	*persons = *covered = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->segs[i].kind == TREADY_DISTRICT) {
			*persons += r->segs[i].persons;
			*covered += r->segs[i].covered;
		}
}

const char *tready_kind_name(enum tready_kind k)
{
	static const char *names[] = {"district", "street", "community", "building"};
	return (unsigned)k < 4 ? names[k] : "?";
}

void tready_release(struct tready *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->segs[i].id);
	free(r->segs);
	*r = (struct tready){0};
}
