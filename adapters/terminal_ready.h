/*
 * adapters/terminal_ready.h: broadcast readiness arithmetic for the
 * terminal gateway: the share of the population covered by the terminals
 * online now, per segment (district, street, community) and overall.
 *
 * The model is the ledger's (engine/ledger.c): a terminal on a community
 * covers every person of that community; a terminal on a building covers
 * that building's persons. A person is counted once however many online
 * terminals cover them:
 *
 *   covered(community C) = persons(C)                        if a terminal on C is online
 *                        = sum of persons(B), B a building of C
 *                          with at least one terminal online  otherwise
 *   covered(street S)    = sum of covered(C) over its communities
 *   covered(district D)  = sum of covered(S) over its streets
 *   share(X)             = covered(X) / persons(X)  (0 when persons(X) = 0)
 *
 * persons(X) is the `persons` aggregate of the population's segment hash
 * (people on the household rolls), the same denominator /v1/status uses
 * overall. A terminal's own covers_persons is not used: it cannot say
 * whom two terminals both cover.
 *
 * Pure: no I/O. Updates are O(depth) per terminal going online or
 * offline. Segments are added parents first (the index of a parent is
 * below its children's); buildings only need adding when terminals sit
 * on them.
 */
#ifndef TOCSIN_ADAPTER_TERMINAL_READY_H
#define TOCSIN_ADAPTER_TERMINAL_READY_H

#include <stddef.h>
#include <stdint.h>

#define TREADY_NONE UINT32_MAX

enum tready_kind { TREADY_DISTRICT, TREADY_STREET, TREADY_COMMUNITY, TREADY_BUILDING };

struct tready_seg {
	char *id;
	uint32_t parent;        /* TREADY_NONE for a district */
	uint8_t kind;           /* enum tready_kind */
	uint32_t online;        /* online terminals on this very segment */
	uint32_t terms;         /* terminals on it and below */
	uint32_t online_sub;    /* online terminals on it and below */
	uint64_t persons;
	uint64_t covered;       /* persons covered now (see the model above) */
	uint64_t bld_covered;   /* communities: persons of their buildings with a terminal online */
};

struct tready {
	struct tready_seg *segs;
	size_t n, cap;
};

/* Index of the new segment, or TREADY_NONE (out of memory, or a bad parent). */
uint32_t tready_add_seg(struct tready *r, enum tready_kind kind, uint32_t parent,
			uint64_t persons, const char *id);
/* One more terminal sits on seg (offline). */
void tready_add_terminal(struct tready *r, uint32_t seg);
/* A terminal on seg went online (+1) or offline (-1). */
void tready_online(struct tready *r, uint32_t seg, int delta);
/* Totals over the districts. */
void tready_total(const struct tready *r, uint64_t *persons, uint64_t *covered);
const char *tready_kind_name(enum tready_kind k);
void tready_release(struct tready *r);

#endif
