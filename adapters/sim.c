/*
 * adapters/sim.c: the scripted adapter, for tests and benchmarks only.
 *
 * It sends nothing anywhere. Each submitted delivery gets outcomes that a
 * test can predict, chosen by a hash of the address (so retries and
 * restarts see the same verdict) and by counters:
 *
 *   accept_ms = 0        delay before OUTCOME_ACCEPTED (or the direct verdict)
 *   deliver_ms = 0       delay from acceptance to the DELIVERED receipt
 *   receipts = yes       no: acceptance is all the provider ever says
 *   direct = no          yes: report DELIVERED without ACCEPTED (terminals)
 *   permanent_pct = 0    share of addresses that fail permanently ("sim: unknown subscriber")
 *   transient_pct = 0    share of addresses whose first attempt fails transiently
 *   transient_attempts = 0  every address fails transiently on its first N attempts
 *   throttle_every = 0   every Nth submit is answered THROTTLED ...
 *   throttle_ms = 1000   ... asking the lane to pause this long
 *   down = no            yes: the lane never comes up (failover tests)
 *   up_after_ms = 0      the lane starts down and comes up this long after open
 *   log = PATH           append one line per submit:
 *                        "ms<TAB>lane<TAB>warning<TAB>address<TAB>attempt<TAB>parts<TAB>text"
 *                        (ms: monotonic clock; text: what the channel would show)
 *
 * Invariants: one report per submit, never from inside submit(); receipts
 * refer to delivery ids, since the delivery may be gone by then.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "adapters.h"
#include "log.h"

enum ev_kind { EV_VERDICT, EV_THROTTLE, EV_RECEIPT };

struct sim_ev {
	uint64_t due_ms;
	enum ev_kind kind;
	struct delivery *d; /* EV_VERDICT */
	uint64_t id;        /* EV_RECEIPT */
	uint64_t seq;
};

struct sim {
	struct lane_host host;
	struct lane *lane;
	unsigned accept_ms, deliver_ms, throttle_ms;
	unsigned permanent_pct, transient_pct, throttle_every, transient_attempts;
	bool receipts, direct, down;
	FILE *log;
	uint64_t submits, seq;
	struct sim_ev *ev;
	size_t n_ev, cap_ev;
	struct timer timer;
	struct timer up_timer; /* up_after_ms */
};

static uint32_t addr_hash(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static bool ev_before(const struct sim_ev *a, const struct sim_ev *b)
{
	return a->due_ms != b->due_ms ? a->due_ms < b->due_ms : a->seq < b->seq;
}

static void ev_push(struct sim *s, struct sim_ev e)
{
	if (s->n_ev == s->cap_ev) {
		size_t cap = s->cap_ev ? s->cap_ev * 2 : 256;
		struct sim_ev *n = realloc(s->ev, cap * sizeof(*n));
		if (!n)
			abort(); /* test adapter: out of memory is fatal */
		s->ev = n;
		s->cap_ev = cap;
	}
	e.seq = ++s->seq;
	size_t i = s->n_ev++;
	while (i > 0 && ev_before(&e, &s->ev[(i - 1) / 2])) {
		s->ev[i] = s->ev[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->ev[i] = e;
}

static struct sim_ev ev_pop(struct sim *s)
{
	struct sim_ev top = s->ev[0], last = s->ev[--s->n_ev];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->n_ev)
			break;
		if (c + 1 < s->n_ev && ev_before(&s->ev[c + 1], &s->ev[c]))
			c++;
		if (!ev_before(&s->ev[c], &last))
			break;
		s->ev[i] = s->ev[c];
		i = c;
	}
	if (s->n_ev)
		s->ev[i] = last;
	return top;
}

static void arm(struct sim *s);

static void verdict(struct sim *s, struct delivery *d)
{
	uint32_t h = addr_hash(d->address) % 100;
	if (h < s->permanent_pct) {
		s->host.report(s->host.ctx, d, OUTCOME_PERMANENT, "sim: unknown subscriber", 0);
	} else if (d->attempts <= s->transient_attempts ||
		   (d->attempts <= 1 && (addr_hash(d->address) / 100) % 100 < s->transient_pct)) {
		s->host.report(s->host.ctx, d, OUTCOME_TRANSIENT, "sim: temporary failure", 0);
	} else if (s->direct) {
		s->host.report(s->host.ctx, d, OUTCOME_DELIVERED, NULL, 0);
	} else {
		uint64_t id = d->id, parts = d->parts ? d->parts : 1;
		s->host.report(s->host.ctx, d, OUTCOME_ACCEPTED, NULL, 0); /* d may be gone now */
		if (!s->receipts)
			return;
		uint64_t due = loop_now_ms(s->host.loop) + s->deliver_ms;
		for (uint64_t p = 0; p < parts; p++)
			ev_push(s, (struct sim_ev){.due_ms = due, .kind = EV_RECEIPT, .id = id});
	}
}

static void on_timer(struct timer *t)
{
	struct sim *s = (struct sim *)((char *)t - offsetof(struct sim, timer));
	uint64_t now = loop_now_ms(s->host.loop);
	while (s->n_ev && s->ev[0].due_ms <= now) {
		struct sim_ev e = ev_pop(s);
		if (e.kind == EV_VERDICT)
			verdict(s, e.d);
		else if (e.kind == EV_THROTTLE)
			s->host.report(s->host.ctx, e.d, OUTCOME_THROTTLED, "sim: throttled",
				       s->throttle_ms);
		else
			s->host.receipt(s->host.ctx, e.id, OUTCOME_DELIVERED, NULL);
	}
	arm(s);
}

static void arm(struct sim *s)
{
	if (!s->n_ev) {
		loop_timer_cancel(s->host.loop, &s->timer);
		return;
	}
	uint64_t now = loop_now_ms(s->host.loop), due = s->ev[0].due_ms;
	if (!loop_timer_armed(&s->timer) || s->timer.deadline_ms > due)
		loop_timer_set(s->host.loop, &s->timer, due > now ? due - now : 0, on_timer);
}

static void sim_submit(struct lane *l, struct delivery *d)
{
	struct sim *s = l->adapter_state;
	s->submits++;
	if (s->log) {
		fprintf(s->log, "%llu\t%s\t%s\t%s\t%u\t%u\t%s\n",
			(unsigned long long)loop_now_ms(s->host.loop), l->name,
			campaign_id(d->campaign), d->address, d->attempts, d->parts,
			campaign_text(d->campaign, d->lang));
		fflush(s->log);
	}
	uint64_t now = loop_now_ms(s->host.loop);
	if (s->throttle_every && s->submits % s->throttle_every == 0) {
		ev_push(s, (struct sim_ev){.due_ms = now, .kind = EV_THROTTLE, .d = d});
	} else {
		ev_push(s, (struct sim_ev){.due_ms = now + s->accept_ms, .kind = EV_VERDICT, .d = d});
	}
	arm(s);
}

static bool yes(const char *v)
{
	return !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1");
}

static void on_up_timer(struct timer *t)
{
	struct sim *s = (struct sim *)((char *)t - offsetof(struct sim, up_timer));
	s->host.up(s->host.ctx, s->lane, true, "sim ready (late)");
}

static int sim_open(struct lane *l, const struct lane_host *host, const struct config_lane *cfg,
		    char *err, size_t errlen)
{
	struct sim *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->host = *host;
	s->lane = l;
	s->accept_ms = (unsigned)atoi(config_lane_get(cfg, "accept_ms", "0"));
	s->deliver_ms = (unsigned)atoi(config_lane_get(cfg, "deliver_ms", "0"));
	s->throttle_ms = (unsigned)atoi(config_lane_get(cfg, "throttle_ms", "1000"));
	s->permanent_pct = (unsigned)atoi(config_lane_get(cfg, "permanent_pct", "0"));
	s->transient_pct = (unsigned)atoi(config_lane_get(cfg, "transient_pct", "0"));
	s->throttle_every = (unsigned)atoi(config_lane_get(cfg, "throttle_every", "0"));
	s->transient_attempts = (unsigned)atoi(config_lane_get(cfg, "transient_attempts", "0"));
	s->receipts = yes(config_lane_get(cfg, "receipts", "yes"));
	s->direct = yes(config_lane_get(cfg, "direct", "no"));
	s->down = yes(config_lane_get(cfg, "down", "no"));
	const char *log = config_lane_get(cfg, "log", NULL);
	if (log && !(s->log = fopen(log, "a"))) {
		snprintf(err, errlen, "[lane %s] log: cannot open %s", cfg->name, log);
		free(s);
		return -1;
	}
	l->adapter_state = s;
	unsigned up_after = (unsigned)atoi(config_lane_get(cfg, "up_after_ms", "0"));
	if (up_after && !s->down) {
		host->up(host->ctx, l, false, "sim: coming up later");
		loop_timer_set(host->loop, &s->up_timer, up_after, on_up_timer);
		return 0;
	}
	host->up(host->ctx, l, !s->down, s->down ? "sim: configured down" : "sim ready");
	return 0;
}

static void sim_close(struct lane *l)
{
	struct sim *s = l->adapter_state;
	if (!s)
		return;
	loop_timer_cancel(s->host.loop, &s->timer);
	loop_timer_cancel(s->host.loop, &s->up_timer);
	if (s->log)
		fclose(s->log);
	free(s->ev);
	free(s);
	l->adapter_state = NULL;
}

const struct adapter_ops adapter_sim = {
	.name = "sim",
	.open = sim_open,
	.submit = sim_submit,
	.close = sim_close,
};
