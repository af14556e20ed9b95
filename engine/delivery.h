/*
 * engine/delivery.h: one message to one address, and the channels.
 *
 * A delivery is created by the dispatcher from a resolved batch, queued on
 * a lane, handed to the lane's adapter, and reported back with outcomes:
 *
 *   QUEUED --lane pops it--> SENT --provider took it--> ACCEPTED --receipt--> DELIVERED
 *     ^                        |                          |
 *     +--transient / throttled-+ (retry, backoff)         +--receipt--> FAILED | EXPIRED
 *   any non-final --warning cancelled/superseded--> CANCELLED
 *   any non-final --expiry passed--> EXPIRED
 *
 * DELIVERED, FAILED, EXPIRED and CANCELLED are final. A multi-part SMS is
 * DELIVERED only when all of its parts are. The dispatcher owns every
 * delivery; adapters hold them only between submit and their report.
 */
#ifndef TOCSIN_DELIVERY_H
#define TOCSIN_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum channel {
	CHANNEL_SMS,
	CHANNEL_APP,      /* APNs, FCM, webhook: the platform tells which */
	CHANNEL_TERMINAL, /* broadcast speakers and displays */
	CHANNEL_COUNT,
};

enum delivery_state {
	DELIVERY_QUEUED,
	DELIVERY_SENT,
	DELIVERY_ACCEPTED,
	DELIVERY_DELIVERED,
	DELIVERY_FAILED,
	DELIVERY_EXPIRED,
	DELIVERY_CANCELLED,
};

/* What an adapter reports about a delivery it was given. */
enum outcome {
	OUTCOME_ACCEPTED,   /* the provider took it; not yet confirmed */
	OUTCOME_DELIVERED,  /* the handset or terminal confirmed (one part, for SMS) */
	OUTCOME_PERMANENT,  /* final failure: bad number, unregistered token, fault */
	OUTCOME_TRANSIENT,  /* try again later, with backoff */
	OUTCOME_THROTTLED,  /* the provider asks us to slow down: pause the lane */
	OUTCOME_EXPIRED,    /* the provider gave up (SMS EXPIRED receipt) */
};

struct campaign;
struct lane;

struct delivery {
	uint64_t id;
	struct campaign *campaign;
	struct lane *lane;          /* the lane it is queued on or was sent by */
	char *address;              /* phone, "platform:token", or terminal id (address_buf) */
	uint32_t household;         /* index in the campaign's ledger; UINT32_MAX for terminals */
	uint32_t segment;           /* ledger segment index (the terminal's, for terminals) */
	uint32_t persons;           /* persons this delivery covers */
	uint16_t parts;             /* SMS parts; 1 elsewhere */
	uint16_t parts_delivered;
	uint16_t attempts;
	uint8_t channel;            /* enum channel */
	uint8_t state;              /* enum delivery_state */
	uint8_t lang;               /* index of the info block to render */
	uint8_t platform;           /* enum app_platform for CHANNEL_APP */
	uint8_t cell;               /* the dispatcher's allocation class (dispatch_sched.c) */
	const char *reason;         /* static text: why it failed, "" otherwise */
	uint32_t prio;              /* lower goes first (campaign_priority) */
	uint32_t addr_hash;         /* of (warning, address), for the dispatcher's app-ack map */
	uint64_t seq;               /* FIFO order within a priority */
	uint64_t not_before_ms;     /* retry backoff: not sent before this time */
	uint64_t sent_ms;
	size_t heap_slot;           /* lane heap position + 1; SIZE_MAX in the lane's ring; 0 not queued */
	struct delivery *next_in_campaign;
	char address_buf[];         /* `address` points here: one allocation per delivery */
};

enum app_platform { PLATFORM_NONE, PLATFORM_APNS, PLATFORM_FCM, PLATFORM_WEBHOOK };

const char *channel_name(enum channel c);
int channel_parse(const char *s); /* -1 when unknown */
const char *delivery_state_name(enum delivery_state s);
bool delivery_final(const struct delivery *d);

#endif
