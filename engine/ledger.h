/*
 * engine/ledger.h: people-weighted coverage of one warning.
 *
 * The ledger knows every targeted household (persons, building, community)
 * and how many of its deliveries are pending, accepted or done per
 * channel. Each outcome moves a household between these classes, and the
 * totals follow incrementally:
 *
 *   reached   a delivery to one of its addresses was confirmed (DELIVERED),
 *             or a terminal covering its building or community confirmed
 *             playing or displaying the warning;
 *   accepted  not reached, but a provider took at least one delivery (a
 *             provider's acceptance never counts as reached);
 *   failed    not reached, nothing accepted, nothing pending: every
 *             delivery (and terminal) for it ended without confirmation;
 *   pending   everything else.
 *
 * Totals exist overall, per channel (a household reached by SMS and by a
 * speaker counts once overall and once in each channel) and per community.
 * Time to 90% is measured from the ledger's start to the first moment
 * reached >= 90% of targeted persons.
 *
 * Pure: no I/O, the caller passes the clock. Memory: 40 bytes per household
 * plus the segment table.
 */
#ifndef TOCSIN_LEDGER_H
#define TOCSIN_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery.h"

#define LEDGER_NONE UINT32_MAX

enum ledger_kind { LEDGER_COMMUNITY, LEDGER_BUILDING };

struct ledger_counts {
	uint64_t targeted, reached, accepted, failed; /* persons */
};

struct ledger_segment {
	char *id;
	uint8_t kind;               /* enum ledger_kind */
	uint64_t census;            /* census population (denominator) */
	uint32_t community;         /* for buildings: their community's index */
	uint32_t first_hh;          /* chain of households in it */
	uint32_t terminals_pending; /* terminal deliveries not final yet */
	bool terminal_planned;      /* a terminal covers it: its households have the channel */
	bool terminal_reached;      /* a terminal covering it confirmed playing */
	struct ledger_counts counts; /* communities only */
};

struct ledger_household {
	uint32_t persons;
	uint32_t building, community; /* segment indexes */
	uint32_t next_in_building, next_in_community;
	uint8_t has;                  /* bit per channel: an address / terminal planned */
	uint8_t reached;              /* bit per channel */
	uint8_t pending[CHANNEL_COUNT];
	uint8_t accepted[CHANNEL_COUNT];
};

struct ledger {
	struct ledger_household *hh;
	uint32_t n_hh, cap_hh;
	struct ledger_segment *seg;
	uint32_t n_seg, cap_seg;
	uint32_t *seg_index;          /* open-addressing hash of segment ids */
	uint32_t index_cap;
	struct ledger_counts total, channel[CHANNEL_COUNT];
	uint64_t census;              /* sum of the targeted communities' census */
	uint64_t start_ms, t90_ms;    /* t90_ms: 0 until 90% reached */
};

void ledger_init(struct ledger *l, uint64_t start_ms);
void ledger_release(struct ledger *l);

/* Find or add a segment; LEDGER_NONE when out of memory. */
uint32_t ledger_segment(struct ledger *l, const char *id, enum ledger_kind kind, uint64_t census,
			uint32_t community);
uint32_t ledger_find_segment(const struct ledger *l, const char *id);
/* Set a community's census figure (the coverage denominator) once it is known. */
void ledger_set_census(struct ledger *l, uint32_t seg, uint64_t census);

/* Room for that many more households without growing (a sizing hint); -1 when out of memory. */
int ledger_reserve(struct ledger *l, uint64_t households);
/* Add a household; LEDGER_NONE when out of memory. */
uint32_t ledger_household(struct ledger *l, uint32_t persons, uint32_t building,
			  uint32_t community);

/* A delivery to hh on channel ch was planned (pending). */
void ledger_plan(struct ledger *l, uint32_t hh, enum channel ch);
/* A terminal delivery for segment seg was planned; its households gain the terminal channel. */
void ledger_plan_terminal(struct ledger *l, uint32_t seg);

/*
 * A delivery moved from `from` to `to` (states of delivery.h). For
 * terminals, hh is LEDGER_NONE and seg names the terminal's segment.
 */
void ledger_move(struct ledger *l, uint32_t hh, uint32_t seg, enum channel ch,
		 enum delivery_state from, enum delivery_state to, uint64_t now_ms);

/* The household's class, for tests and escalation. */
bool ledger_hh_reached(const struct ledger *l, uint32_t hh);
bool ledger_hh_reached_on(const struct ledger *l, uint32_t hh, enum channel ch);

#endif
