/*
 * engine/campaign.h: one admitted warning being delivered.
 *
 * A campaign owns the decoded Warning (in its own arena), the ledger of its
 * households, and every delivery not yet final. Its priority orders its
 * deliveries in every lane: Actual before Exercise/Test, then severity,
 * urgency and colour (Extreme/Immediate/red first), then admission order.
 *
 * State table:
 *
 *   RESOLVING --resolution done--> SENDING --all deliveries final--> DONE
 *       |                             |
 *       +--------- expiry ------------+--> EXPIRED (non-final deliveries expire)
 *       +--------- Cancel / Update ---+--> CANCELLED / SUPERSEDED (queued ones retracted)
 *   Draft warnings go straight to DONE with nothing sent.
 */
#ifndef TOCSIN_CAMPAIGN_H
#define TOCSIN_CAMPAIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "warning_codec.h"

enum campaign_state {
	CAMPAIGN_RESOLVING,
	CAMPAIGN_SENDING,
	CAMPAIGN_DONE,
	CAMPAIGN_EXPIRED,
	CAMPAIGN_CANCELLED,
	CAMPAIGN_SUPERSEDED,
};

struct campaign {
	char id[WARNING_MAX_ID_LEN + 1];
	char stream_id[48];          /* the journal entry to acknowledge when finished */
	uint64_t serial;             /* campaign_serial: 1, 2, ... in order of campaign_new */
	struct warning_arena arena;
	Tocsin__Warning *w;
	uint32_t prio;
	int64_t expires_s;           /* wall clock */
	uint64_t expires_ms;         /* monotonic deadline */
	uint64_t start_ms;           /* monotonic, admission as seen by the dispatcher */
	int64_t admitted_at_ms;      /* wall clock, from the journal */
	enum campaign_state state;
	bool drill;                  /* Exercise: every message marked */
	bool test;                   /* Test: only the configured test recipients */
	bool resolved;
	char *text[WARNING_MAX_INFOS]; /* rendered short text per info block, lazily */
	uint16_t sms_parts[WARNING_MAX_INFOS]; /* SMS parts of that text; 0 = not counted yet */
	const char *drill_prefix;
	struct ledger ledger;
	uint64_t open;               /* deliveries not final (queued, held, sent, accepted) */
	uint64_t inflight;           /* deliveries an adapter holds right now */
	uint64_t first_send_ms;      /* 0 until the first delivery left */
	uint64_t by_state[7];        /* deliveries per enum delivery_state, for the status API */
	struct delivery **held;      /* waiting for their escalation stage */
	size_t n_held, cap_held;
	unsigned next_stage;         /* the first escalation stage not released yet */
	struct resolver *resolver;   /* while resolving */
	struct resume_map *resume;   /* states persisted before a restart, while planning */
	const char *error;           /* why planning failed (static text), or NULL */
	long long pop_version;       /* the population version it was resolved against */
	bool dirty;                  /* coverage changed since it was last published */
	bool planning;               /* its persisted states are being read */
	uint64_t plan_retry_ms;      /* when to try planning again after a Redis failure */
	bool finished;               /* acknowledged in the journal */
	/* coverage over time for the curves: one sample per second while sending */
	struct coverage_sample {
		uint32_t elapsed_ms;
		uint32_t reached[CHANNEL_COUNT];
		uint32_t total;
	} *series;
	size_t n_series, cap_series;
	uint64_t next_sample_ms;
	struct campaign *next;       /* the dispatcher's list */
};

/*
 * Decode a journalled envelope into a new campaign (state RESOLVING).
 * The signature was verified at admission; the journal is trusted.
 * NULL with a reason in err when the bytes do not decode.
 */
struct campaign *campaign_new(const uint8_t *envelope, size_t len, uint64_t now_ms,
			      int64_t now_wall_s, const char *drill_prefix, char *err,
			      size_t errlen);
void campaign_free(struct campaign *c);

/* Lower is more urgent. */
uint32_t campaign_priority(const Tocsin__Warning *w);

const char *campaign_state_name(enum campaign_state s);

#endif
