/*
 * proto/pop_record.h: the population records the resolver reads from Redis.
 *
 * `tocsin load` (engine/cli_load.c) writes them after checking the CSV
 * files; the resolver (engine/resolve.c) splits them here. They are still
 * outside bytes to the engine (another loader, a hand edit, a torn write),
 * so every function takes a length, reads only inside it and reports a
 * malformed record instead of guessing. The layouts (engine/resolve.h):
 *
 *   hh:{B}  household records "SUFFIX\tPERSONS\tLANG\tPHONES" (layout 4) or
 *           with a fifth field "\tAPPS" (layouts 2 and 3); layout 3 and 4
 *           join several records into one list element with '\n'.
 *   ha:{B}  "SUFFIX\tAPPS" for the households of hh:{B} that have app
 *           tokens, in the same order, joined with '\n' (layout 4).
 *   terms:{S} "ID\tKIND\tCOVERS" per terminal (layout 2), or a bare "ID".
 *
 *   PHONES and APPS are ';'-separated; an app is "platform:token".
 *
 * Header only (static inline): the resolver splits ~50,000 records per
 * district-wide warning on the dispatcher's thread, and these are its inner
 * loop. Pure: no allocation, no state; a span points into the caller's bytes.
 */
#ifndef TOCSIN_POP_RECORD_H
#define TOCSIN_POP_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct pop_span {
	const char *p;
	size_t len;
};

/* The fields of a household record, in order. */
enum { POP_SUFFIX, POP_PERSONS, POP_LANG, POP_PHONES, POP_APPS, POP_HH_FIELDS };

/*
 * The next item of a list whose items end at `sep` ('\n' between records,
 * ';' inside a field): false when *p has reached end. An item may be empty
 * ("a;;b"); a separator at the very end does not make an empty last item.
 */
static inline bool pop_next(const char **p, const char *end, char sep, struct pop_span *item)
{
	if (*p >= end)
		return false;
	const char *s = memchr(*p, sep, (size_t)(end - *p));
	item->p = *p;
	item->len = (size_t)((s ? s : end) - *p);
	*p = s ? s + 1 : end;
	return true;
}

/*
 * Splits a household record into its first nf fields (4 or 5, at most
 * POP_HH_FIELDS): 0, or -1 when it has fewer (malformed). Fields hold no
 * tab; the last one ends at a further tab if there is one.
 */
static inline int pop_hh_split(const char *rec, size_t n, int nf, struct pop_span f[POP_HH_FIELDS])
{
	const char *end = rec + n, *p = rec;
	for (int k = 0; k < nf; k++) {
		if (k && p > end)
			return -1;
		const char *tab = p < end ? memchr(p, '\t', (size_t)(end - p)) : NULL;
		const char *e = tab ? tab : end;
		f[k].p = p;
		f[k].len = (size_t)(e - p);
		p = e + 1;
	}
	return 0;
}

/* A cursor over a building's ha records (layout 4). */
struct pop_ha_cursor {
	const char *p, *end;
};

/*
 * The APPS of the household with this suffix: the cursor's next record if
 * it is that household's (both lists are in the same order and a household
 * without tokens has no record), and the cursor moves past it; else an
 * empty span and the cursor stays.
 */
static inline struct pop_span pop_ha_take(struct pop_ha_cursor *hc, const char *suffix, size_t sl)
{
	struct pop_span apps = {"", 0};
	if (!hc || hc->p >= hc->end)
		return apps;
	const char *nl = memchr(hc->p, '\n', (size_t)(hc->end - hc->p));
	const char *stop = nl ? nl : hc->end;
	const char *tab = memchr(hc->p, '\t', (size_t)(stop - hc->p));
	if (!tab || (size_t)(tab - hc->p) != sl || memcmp(hc->p, suffix, sl))
		return apps;
	apps.p = tab + 1;
	apps.len = (size_t)(stop - tab - 1);
	hc->p = nl ? nl + 1 : hc->end;
	return apps;
}

/* Splits "platform:token": false when the item has no ':'. */
static inline bool pop_app_split(struct pop_span item, struct pop_span *platform,
				 struct pop_span *token)
{
	const char *colon = item.len ? memchr(item.p, ':', item.len) : NULL;
	if (!colon)
		return false;
	platform->p = item.p;
	platform->len = (size_t)(colon - item.p);
	token->p = colon + 1;
	token->len = item.len - platform->len - 1;
	return true;
}

/*
 * A terminal record: 2 for "ID\tKIND\tCOVERS" (covers is the third field
 * and what follows it), 1 for a bare "ID" (covers empty), -1 for an empty
 * id or a tab without a third field (malformed).
 */
static inline int pop_term_split(const char *s, size_t n, struct pop_span *id,
				 struct pop_span *covers)
{
	const char *end = s + n, *tab = memchr(s, '\t', n);
	const char *cov = tab ? memchr(tab + 1, '\t', (size_t)(end - tab - 1)) : NULL;
	id->p = s;
	id->len = tab ? (size_t)(tab - s) : n;
	covers->p = cov ? cov + 1 : end;
	covers->len = cov ? (size_t)(end - cov - 1) : 0;
	if ((tab && !cov) || !id->len)
		return -1;
	return tab ? 2 : 1;
}

/* A count field (persons, covers_persons): its leading digits, at most 9. */
static inline unsigned pop_count(const char *p, size_t n)
{
	unsigned v = 0;
	for (size_t i = 0; i < n && i < 9 && p[i] >= '0' && p[i] <= '9'; i++)
		v = v * 10 + (unsigned)(p[i] - '0');
	return v;
}

#endif
