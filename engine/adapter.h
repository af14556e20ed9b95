/*
 * engine/adapter.h: the contract between the dispatcher and a channel
 * adapter (adapters/: SMPP, HTTP/2 push, terminals, and the scripted `sim`).
 *
 * An adapter drives one lane: one provider account or bind. Everything
 * runs on the dispatcher's loop thread; nothing may block.
 *
 *   open()   parse the lane's own config keys, start connecting; report
 *            lane_host.up(..., true) once it can send, false when it can't.
 *   submit() take one delivery (state SENT). Exactly one *final* or
 *            *accepted* report must follow, through host->report(), later
 *            (never from inside submit()). After OUTCOME_ACCEPTED the window
 *            slot is free; the confirmation, if the channel has one, comes
 *            through host->receipt() with the delivery id (the delivery may
 *            be gone by then: the host ignores unknown ids).
 *   close()  stop: no reports after it returns; free the adapter's state.
 *   describe() optional: what the status page and /metrics show about it.
 *
 * Outcomes (delivery.h): ACCEPTED, DELIVERED (per SMS part), PERMANENT,
 * TRANSIENT (retried with backoff, bounded by the warning's expiry),
 * THROTTLED (the lane pauses for retry_after_ms, the delivery keeps its
 * place), EXPIRED.
 *
 * What to send: campaign_text() gives the rendered text for a delivery's
 * language (headline and instruction, with the drill prefix for Exercise),
 * campaign_info() the whole info block for richer channels.
 */
#ifndef TOCSIN_ADAPTER_H
#define TOCSIN_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "delivery.h"
#include "lane.h"
#include "loop.h"
#include "warning.pb-c.h"

struct lane_host {
	struct loop *loop;
	const char *redis;   /* the Redis address, for adapters that keep state there */
	const char *prefix;  /* key prefix, "tocsin:" */
	void *ctx;
	void (*report)(void *ctx, struct delivery *d, enum outcome o, const char *reason,
		       uint32_t retry_after_ms);
	void (*receipt)(void *ctx, uint64_t delivery_id, enum outcome o, const char *reason);
	void (*up)(void *ctx, struct lane *l, bool up, const char *why);
};

struct json_t;

struct adapter_ops {
	const char *name;
	int (*open)(struct lane *l, const struct lane_host *host, const struct config_lane *cfg,
		    char *err, size_t errlen);
	void (*submit)(struct lane *l, struct delivery *d);
	void (*close)(struct lane *l);
	/*
	 * Optional: add what operators should see about the adapter to `o` (a
	 * jansson object): connections, terminals online, ... Integer members
	 * also become gauges tocsin_adapter_<member>{lane="..."} in /metrics;
	 * an array of objects becomes, for each numeric member K, gauges
	 * tocsin_adapter_<member>_K{lane="...", <its string members as labels>}.
	 */
	void (*describe)(struct lane *l, struct json_t *o);
	/*
	 * Optional, a sizing hint: about n more messages (SMS parts, pushes,
	 * alerts) are coming to this lane's channel for one warning, over all
	 * of its lanes together. Called before they are planned, so that what
	 * the adapter keeps per message need not grow while they are sent.
	 */
	void (*reserve)(struct lane *l, size_t n);
};

/* What a campaign offers adapters about the warning a delivery belongs to. */
const char *campaign_id(const struct campaign *c);
/* Unique per campaign for the life of the process (an address may be reused after a campaign is freed). */
uint64_t campaign_serial(const struct campaign *c);
const Tocsin__Warning *campaign_warning(const struct campaign *c);
const Tocsin__Info *campaign_info(const struct campaign *c, unsigned lang);
/* "【演练】headline instruction" style text for short channels (malloc'd by the campaign, cached). */
const char *campaign_text(struct campaign *c, unsigned lang);
/* SMS parts that text needs (sms_text_parts, counted once per campaign and language). */
unsigned campaign_sms_parts(struct campaign *c, unsigned lang);
bool campaign_is_drill(const struct campaign *c);
int64_t campaign_expires(const struct campaign *c);

#endif
