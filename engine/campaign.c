/*
 * engine/campaign.c: campaigns and what adapters may read of them
 * (see campaign.h and adapter.h).
 */
#include "campaign.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapter.h"
#include "sms_text.h"

static unsigned rank_colour(Tocsin__Colour c)
{
	return c >= TOCSIN__COLOUR__RED && c <= TOCSIN__COLOUR__WHITE ? (unsigned)c : 9;
}

uint32_t campaign_priority(const Tocsin__Warning *w)
{
	unsigned sev = 9, urg = 9;
	for (size_t i = 0; i < w->n_info; i++) {
		if (w->info[i]->severity && (unsigned)w->info[i]->severity < sev)
			sev = w->info[i]->severity;
		if (w->info[i]->urgency && (unsigned)w->info[i]->urgency < urg)
			urg = w->info[i]->urgency;
	}
	unsigned drill = w->status == TOCSIN__STATUS__ACTUAL ? 0 : 1;
	return drill * 1000 + sev * 100 + urg * 10 + rank_colour(w->colour);
}

struct campaign *campaign_new(const uint8_t *envelope, size_t len, uint64_t now_ms,
			      int64_t now_wall_s, const char *drill_prefix, char *err,
			      size_t errlen)
{
	struct campaign *c = calloc(1, sizeof(*c));
	const char *why = "out of memory";
	if (!c)
		goto out_err;
	static uint64_t serials;
	c->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
	warning_arena_init(&c->arena, WARNING_ARENA_CAP);
	Tocsin__SignedWarning *sw = signed_warning_decode(&c->arena, envelope, len, &why);
	if (!sw)
		goto out_free;
	c->w = warning_decode(&c->arena, sw->payload.data, sw->payload.len, &why);
	if (!c->w || !c->w->identifier || c->w->n_info == 0) {
		why = c->w ? "warning without identifier or info" : why;
		goto out_free;
	}
	snprintf(c->id, sizeof(c->id), "%s", c->w->identifier);
	c->prio = campaign_priority(c->w);
	c->expires_s = warning_expires(c->w);
	int64_t left = c->expires_s - now_wall_s;
	c->expires_ms = now_ms + (left > 0 ? (uint64_t)left * 1000 : 0);
	c->start_ms = now_ms;
	c->drill = c->w->status == TOCSIN__STATUS__EXERCISE;
	c->test = c->w->status == TOCSIN__STATUS__TEST;
	c->drill_prefix = drill_prefix;
	ledger_init(&c->ledger, now_ms);
	return c;

out_free:
	warning_arena_release(&c->arena);
	free(c);
out_err:
	snprintf(err, errlen, "%s", why);
	return NULL;
}

void campaign_free(struct campaign *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < WARNING_MAX_INFOS; i++)
		free(c->text[i]);
	free(c->held);
	free(c->series);
	ledger_release(&c->ledger);
	warning_arena_release(&c->arena);
	free(c);
}

const char *campaign_state_name(enum campaign_state s)
{
	static const char *n[] = {"resolving", "sending", "done", "expired", "cancelled",
				  "superseded"};
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "?";
}

const char *campaign_id(const struct campaign *c)
{
	return c->id;
}

uint64_t campaign_serial(const struct campaign *c)
{
	return c->serial;
}

const Tocsin__Warning *campaign_warning(const struct campaign *c)
{
	return c->w;
}

const Tocsin__Info *campaign_info(const struct campaign *c, unsigned lang)
{
	return c->w->info[lang < c->w->n_info ? lang : 0];
}

const char *campaign_text(struct campaign *c, unsigned lang)
{
	if (lang >= c->w->n_info)
		lang = 0;
	if (c->text[lang])
		return c->text[lang];
	const Tocsin__Info *in = c->w->info[lang];
	const char *prefix = c->drill ? c->drill_prefix : "";
	const char *instr = in->instruction ? in->instruction : "";
	size_t n = strlen(prefix) + strlen(in->headline) + strlen(instr) + 2;
	char *t = malloc(n);
	if (!t)
		return in->headline;
	snprintf(t, n, "%s%s%s%s", prefix, in->headline, instr[0] ? " " : "", instr);
	c->text[lang] = t;
	return t;
}

unsigned campaign_sms_parts(struct campaign *c, unsigned lang)
{
	if (lang >= c->w->n_info)
		lang = 0;
	if (!c->sms_parts[lang])
		c->sms_parts[lang] = (uint16_t)sms_text_parts(campaign_text(c, lang));
	return c->sms_parts[lang];
}

bool campaign_is_drill(const struct campaign *c)
{
	return c->drill;
}

int64_t campaign_expires(const struct campaign *c)
{
	return c->expires_s;
}
