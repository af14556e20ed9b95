/*
 * engine/dispatch.c: the dispatcher (see dispatch.h for the threading and
 * durability model, campaign.h for a campaign's states, delivery.h for a
 * delivery's).
 *
 * The loop body: run one loop iteration; completions arrive from Redis
 * (journal entries, envelopes, resolver replies) and from adapters
 * (reports and receipts). Work that frees window slots or adds deliveries
 * calls kick(), which arms a zero-delay timer to run schedule() once: the
 * scheduling step takes what each lane allows now and hands it to the
 * lane's adapter, and arms the timer for the next moment a token, a pause
 * end or a retry makes more possible. A resolver batch runs the step at
 * once (sched_now). A warning's first batch also submits its sends at once,
 * so its first deliveries leave while the later batches are still being
 * planned; the later batches' sends go to the kernel together, once per
 * loop iteration (a Redis read of up to 64 KB holds many; on_batch in
 * dispatch_plan.c says why).
 *
 * Ownership: the dispatcher owns campaigns and deliveries. A delivery is
 * freed when final. A campaign is freed when finished and no adapter holds
 * one of its deliveries (inflight == 0).
 */
#include "dispatch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <jansson.h>

#include "adapter.h"
#include "campaign.h"
#include "dispatch_internal.h"
#include "log.h"
#include "resolve.h"

#define TICK_MS 100
#define GROUP "tocsin-dispatch"
#define CONSUMER "tocsind"

static void read_journal(struct dispatcher *dp);

/* --- campaigns --- */

struct campaign *campaign_find(struct dispatcher *dp, const char *id)
{
	for (struct campaign *c = dp->campaigns; c; c = c->next)
		if (!strcmp(c->id, id))
			return c;
	return NULL;
}

static void ack_entry(struct dispatcher *dp, struct campaign *c)
{
	char stream[128], active[128];
	snprintf(stream, sizeof(stream), "%sjournal", dp->cfg.prefix);
	snprintf(active, sizeof(active), "%sactive", dp->cfg.prefix);
	if (c->stream_id[0]) {
		const char *argv[] = {"XACK", stream, GROUP, c->stream_id};
		size_t lens[] = {4, strlen(stream), strlen(GROUP), strlen(c->stream_id)};
		redis_command(&dp->redis, NULL, NULL, 4, argv, lens);
	}
	const char *zrem[] = {"ZREM", active, c->id};
	size_t zlens[] = {4, strlen(active), strlen(c->id)};
	redis_command(&dp->redis, NULL, NULL, 3, zrem, zlens);
}

void campaign_check_done(struct dispatcher *dp, struct campaign *c)
{
	if (c->finished || !c->resolved || c->open)
		return;
	if (c->state == CAMPAIGN_SENDING || c->state == CAMPAIGN_RESOLVING)
		c->state = CAMPAIGN_DONE;
	c->finished = true;
	c->dirty = true;
	const struct ledger_counts *t = &c->ledger.total;
	log_info("msg=\"warning finished\" warning=%s state=%s targeted=%llu reached=%llu "
		 "accepted=%llu failed=%llu t90_ms=%llu error=\"%s\"",
		 c->id, campaign_state_name(c->state), (unsigned long long)t->targeted,
		 (unsigned long long)t->reached, (unsigned long long)t->accepted,
		 (unsigned long long)t->failed, (unsigned long long)c->ledger.t90_ms,
		 c->error ? c->error : "");
	ack_entry(dp, c);
}

/* Cancel or Update: retract every queued delivery of the referenced warnings. */
static void supersede(struct dispatcher *dp, struct campaign *by)
{
	bool cancel = by->w->msg_type == TOCSIN__MSG_TYPE__CANCEL;
	for (size_t i = 0; i < by->w->n_references; i++) {
		struct campaign *ref = campaign_find(dp, by->w->references[i]);
		if (!ref || ref == by || ref->state >= CAMPAIGN_EXPIRED)
			continue;
		if (ref->resolver)
			resolver_cancel(ref->resolver);
		ref->state = cancel ? CAMPAIGN_CANCELLED : CAMPAIGN_SUPERSEDED;
		sched_retract(dp, ref, DELIVERY_CANCELLED);
		log_info("msg=\"warning %s\" warning=%s by=%s", cancel ? "cancelled" : "superseded",
			 ref->id, by->id);
		if (cancel)
			plan_cancel_terminals(dp, by, ref);
		campaign_check_done(dp, ref);
	}
}

static void start_campaign(struct dispatcher *dp, struct campaign *c)
{
	c->next = dp->campaigns;
	dp->campaigns = c;
	log_info("msg=\"dispatching warning\" warning=%s status=%s msg_type=%s priority=%u "
		 "targets=%zu",
		 c->id, warning_status_name(c->w->status), warning_msg_type_name(c->w->msg_type),
		 c->prio, c->w->n_targets);
	if (c->w->msg_type == TOCSIN__MSG_TYPE__UPDATE || c->w->msg_type == TOCSIN__MSG_TYPE__CANCEL)
		supersede(dp, c);
	if (c->w->msg_type == TOCSIN__MSG_TYPE__CANCEL) {
		c->resolved = c->resolver == NULL;
		c->state = CAMPAIGN_SENDING;
		campaign_check_done(dp, c);
		return;
	}
	plan_campaign(dp, c);
}

struct envelope_call {
	struct dispatcher *dp;
	char stream_id[48];
	char id[WARNING_MAX_ID_LEN + 1];
};

static void on_envelope(void *arg, redisReply *r)
{
	struct envelope_call *ec = arg;
	struct dispatcher *dp = ec->dp;
	char err[160];
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING && !campaign_find(dp, ec->id)) {
		struct campaign *c = campaign_new((const uint8_t *)r->element[0]->str,
						  r->element[0]->len, loop_now_ms(&dp->loop),
						  (int64_t)time(NULL), dp->cfg.drill_prefix, err,
						  sizeof(err));
		if (c) {
			snprintf(c->stream_id, sizeof(c->stream_id), "%s", ec->stream_id);
			if (r->element[1]->type == REDIS_REPLY_STRING)
				c->admitted_at_ms = strtoll(r->element[1]->str, NULL, 10);
			start_campaign(dp, c);
		} else {
			log_error("msg=\"journalled warning does not decode\" warning=%s err=\"%s\"",
				  ec->id, err);
		}
	}
	free(ec);
}

static void fetch_envelope(struct dispatcher *dp, const char *stream_id, const char *id)
{
	struct envelope_call *ec = malloc(sizeof(*ec));
	if (!ec)
		abort();
	ec->dp = dp;
	snprintf(ec->stream_id, sizeof(ec->stream_id), "%s", stream_id);
	snprintf(ec->id, sizeof(ec->id), "%s", id);
	char key[256];
	snprintf(key, sizeof(key), "%sw:%s", dp->cfg.prefix, id);
	const char *argv[] = {"HMGET", key, "envelope", "admitted_at"};
	size_t lens[] = {5, strlen(key), 8, 11};
	if (redis_command(&dp->redis, on_envelope, ec, 4, argv, lens) < 0)
		free(ec); /* the entry stays pending in the group: re-read after reconnect */
}

/* --- the journal stream --- */

/* Apps' acknowledgements: {prefix}receipts entries (warning, address). */
static void on_receipt_entries(struct dispatcher *dp, const char *stream, redisReply *entries)
{
	for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
		redisReply *e = entries->element[i];
		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[1]->type != REDIS_REPLY_ARRAY)
			continue;
		const char *warning = NULL, *address = NULL;
		redisReply *kv = e->element[1];
		for (size_t k = 0; k + 1 < kv->elements; k += 2) {
			if (!strcmp(kv->element[k]->str, "warning"))
				warning = kv->element[k + 1]->str;
			else if (!strcmp(kv->element[k]->str, "address"))
				address = kv->element[k + 1]->str;
		}
		if (warning && address)
			sched_app_ack(dp, warning, address);
		const char *argv[] = {"XACK", stream, GROUP, e->element[0]->str};
		size_t lens[] = {4, strlen(stream), strlen(GROUP), strlen(e->element[0]->str)};
		redis_command(&dp->redis, NULL, NULL, 4, argv, lens);
	}
}

static void on_entries(void *arg, redisReply *r)
{
	struct dispatcher *dp = arg;
	dp->reading = false;
	size_t got = 0;
	char receipts[128];
	snprintf(receipts, sizeof(receipts), "%sreceipts", dp->cfg.prefix);
	/* [[stream, [[entry-id, [field, value, ...]], ...]], ...] or nil on timeout */
	for (size_t s = 0; r && r->type == REDIS_REPLY_ARRAY && s < r->elements; s++) {
		redisReply *st = r->element[s];
		if (st->type != REDIS_REPLY_ARRAY || st->elements != 2 ||
		    st->element[0]->type != REDIS_REPLY_STRING)
			continue;
		if (!strcmp(st->element[0]->str, receipts)) {
			on_receipt_entries(dp, receipts, st->element[1]);
			continue;
		}
		redisReply *entries = st->element[1];
		for (size_t i = 0; entries->type == REDIS_REPLY_ARRAY && i < entries->elements; i++) {
			redisReply *e = entries->element[i];
			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
			    e->element[1]->type != REDIS_REPLY_ARRAY)
				continue;
			got++;
			if (!dp->pel_drained && e->element[0]->type == REDIS_REPLY_STRING)
				snprintf(dp->pel_cursor, sizeof(dp->pel_cursor), "%s", e->element[0]->str);
			redisReply *kv = e->element[1];
			for (size_t k = 0; k + 1 < kv->elements; k += 2)
				if (!strcmp(kv->element[k]->str, "id"))
					fetch_envelope(dp, e->element[0]->str, kv->element[k + 1]->str);
		}
	}
	if (r && !dp->pel_drained && got == 0) {
		dp->pel_drained = true; /* our pending entries are all back in memory */
		log_info("msg=\"journal: resumed pending warnings, now reading new ones\"");
	}
	if (!r)
		dp->group_ready = false;
	read_journal(dp);
}

static void read_journal(struct dispatcher *dp)
{
	if (dp->reading || !dp->group_ready || atomic_load(&dp->stop) || !redis_up(&dp->stream))
		return;
	char stream[128], receipts[128];
	snprintf(stream, sizeof(stream), "%sjournal", dp->cfg.prefix);
	snprintf(receipts, sizeof(receipts), "%sreceipts", dp->cfg.prefix);
	/* After a restart: our own pending entries first (from 0), then new ones (>). */
	const char *from = dp->pel_drained ? ">" : dp->pel_cursor;
	const char *argv[] = {"XREADGROUP", "GROUP", GROUP, CONSUMER, "COUNT", "256",
			      "BLOCK", "500", "STREAMS", stream, receipts, from, ">"};
	size_t lens[13];
	for (int i = 0; i < 13; i++)
		lens[i] = strlen(argv[i]);
	if (redis_command(&dp->stream, on_entries, dp, 13, argv, lens) == 0)
		dp->reading = true;
}

static void on_group(void *arg, redisReply *r)
{
	struct dispatcher *dp = arg;
	/* OK, or BUSYGROUP when it exists already: both fine. */
	if (r && (r->type == REDIS_REPLY_STATUS ||
		  (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "BUSYGROUP", 9)))) {
		dp->group_ready = true;
		dp->pel_drained = false;
		snprintf(dp->pel_cursor, sizeof(dp->pel_cursor), "0");
		read_journal(dp);
	}
}

static void on_stream_state(struct redis_client *rc, void *arg)
{
	struct dispatcher *dp = arg;
	if (!redis_up(rc)) {
		dp->group_ready = false;
		dp->reading = false;
		return;
	}
	char stream[128], receipts[128];
	snprintf(stream, sizeof(stream), "%sjournal", dp->cfg.prefix);
	snprintf(receipts, sizeof(receipts), "%sreceipts", dp->cfg.prefix);
	/* From 0: warnings admitted while no dispatcher ran are dispatched too. */
	const char *argv[] = {"XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM"};
	size_t lens[6];
	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	redis_command(rc, NULL, NULL, 6, argv, lens);
	argv[2] = receipts; /* replies come in order: when this one is back, both exist */
	lens[2] = strlen(receipts);
	redis_command(rc, on_group, dp, 6, argv, lens);
}

/* --- the periodic tick: expiry, escalation stages, planning retries, freeing --- */

static unsigned max_stage(const struct dispatcher *dp)
{
	unsigned m = 0;
	for (int ch = 0; ch < CHANNEL_COUNT; ch++)
		if (dp->stage[ch] > m)
			m = dp->stage[ch];
	return m;
}

static void tick_campaign(struct dispatcher *dp, struct campaign *c, uint64_t now)
{
	if (c->finished)
		return;
	if (now >= c->expires_ms && c->state <= CAMPAIGN_SENDING) {
		c->state = CAMPAIGN_EXPIRED;
		if (c->resolver)
			resolver_cancel(c->resolver);
		log_info("msg=\"warning expired\" warning=%s", c->id);
		sched_expire(dp, c);
		campaign_check_done(dp, c);
		return;
	}
	if (c->state == CAMPAIGN_RESOLVING && !c->planning && !c->resolver && !c->resolved &&
	    now >= c->plan_retry_ms) {
		c->plan_retry_ms = now + 1000;
		plan_campaign(dp, c);
	}
	while (c->state == CAMPAIGN_SENDING && c->next_stage <= max_stage(dp) && c->resolved &&
	       now >= c->start_ms + (uint64_t)c->next_stage * (uint64_t)dp->cfg.escalate_after_ms) {
		if (c->next_stage > 0)
			sched_release_held(dp, c, c->next_stage);
		c->next_stage++;
	}
}

/* Free finished campaigns once no adapter holds their deliveries and they were published. */
static void sweep(struct dispatcher *dp)
{
	for (struct campaign **pc = &dp->campaigns; *pc;) {
		struct campaign *c = *pc;
		if (c->finished && c->inflight == 0 && !c->dirty && !c->resolver &&
		    c->open == 0) {
			*pc = c->next;
			campaign_free(c);
			continue;
		}
		pc = &c->next;
	}
}

/* --- the population figures behind broadcast readiness (every 10 s) --- */

/* Element i of an HMGET reply as a number (0 when missing). */
static uint64_t reply_u64(const redisReply *r, size_t i)
{
	return r->element[i]->type == REDIS_REPLY_STRING ? strtoull(r->element[i]->str, NULL, 10) : 0;
}

/*
 * persons, terminals, phones, apps of the live population: readiness's
 * denominators, and the size the dispatcher's memory is made ready for
 * (sched_warm) whenever it grows and no warning is out, so that the first
 * warning to everyone after a start or a load does not wait for page faults.
 */
static void on_pop_meta(void *arg, redisReply *r)
{
	struct dispatcher *dp = arg;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4)
		return;
	dp->population = reply_u64(r, 0);
	dp->terminals_total = reply_u64(r, 1);
	uint64_t per[CHANNEL_COUNT] = {0};
	per[CHANNEL_TERMINAL] = dp->terminals_total;
	per[CHANNEL_SMS] = reply_u64(r, 2);
	per[CHANNEL_APP] = reply_u64(r, 3);
	bool grew = false;
	for (int ch = 0; ch < CHANNEL_COUNT; ch++)
		grew |= per[ch] > dp->warmed[ch];
	if (!grew || dp->campaigns)
		return; /* faulting in ~100 MB takes the loop a while: never while a warning is out
			   (a population loaded meanwhile is made ready at the next check after it) */
	sched_warm(dp, per);
	memcpy(dp->warmed, per, sizeof(per));
	log_info("msg=\"dispatcher memory ready\" sms=%llu app=%llu terminal=%llu cap=%ld",
		 (unsigned long long)dp->warmed_n[CHANNEL_SMS],
		 (unsigned long long)dp->warmed_n[CHANNEL_APP],
		 (unsigned long long)dp->warmed_n[CHANNEL_TERMINAL], dp->cfg.warm_deliveries);
}

static void on_pop_current(void *arg, redisReply *r)
{
	struct dispatcher *dp = arg;
	if (!r || r->type != REDIS_REPLY_STRING)
		return;
	char key[256];
	snprintf(key, sizeof(key), "%spop:v%s:meta", dp->cfg.prefix, r->str);
	const char *argv[] = {"HMGET", key, "persons", "terminals", "phones", "apps"};
	size_t lens[] = {5, strlen(key), 7, 9, 6, 4};
	redis_command(&dp->redis, on_pop_meta, dp, 6, argv, lens);
}

static void refresh_population(struct dispatcher *dp, uint64_t now)
{
	if (now < dp->population_at_ms || !redis_up(&dp->redis))
		return;
	dp->population_at_ms = now + 10000;
	char key[128];
	snprintf(key, sizeof(key), "%spop:current", dp->cfg.prefix);
	const char *argv[] = {"GET", key};
	size_t lens[] = {3, strlen(key)};
	redis_command(&dp->redis, on_pop_current, dp, 2, argv, lens);
}

static void on_tick(struct timer *t)
{
	struct dispatcher *dp = (struct dispatcher *)((char *)t - offsetof(struct dispatcher, tick_timer));
	uint64_t now = loop_now_ms(&dp->loop);
	for (struct campaign *c = dp->campaigns; c; c = c->next)
		tick_campaign(dp, c, now);
	publish_flush(dp);
	publish_views(dp);
	refresh_population(dp, now);
	sweep(dp);
	read_journal(dp);
	loop_timer_set(&dp->loop, &dp->tick_timer, TICK_MS, on_tick);
}

/* --- lifecycle --- */

static void arm_wake(struct dispatcher *dp);

static void on_wake(struct op *op, int res, uint32_t flags)
{
	struct dispatcher *dp = (struct dispatcher *)((char *)op - offsetof(struct dispatcher, wake_op));
	dp->wake_armed = false;
	if (!atomic_load(&dp->stop))
		arm_wake(dp);
}

static void arm_wake(struct dispatcher *dp)
{
	struct io_uring_sqe *sqe = loop_sqe(&dp->loop, &dp->wake_op);
	io_uring_prep_read(sqe, dp->wake_fd, &dp->wake_val, sizeof(dp->wake_val), 0);
	dp->wake_armed = true;
}

static void *dispatch_main(void *arg)
{
	struct dispatcher *dp = arg;
	redis_start(&dp->redis);
	redis_start(&dp->stream);
	redis_start(&dp->writer);
	arm_wake(dp);
	loop_timer_set(&dp->loop, &dp->tick_timer, TICK_MS, on_tick);
	while (!atomic_load(&dp->stop)) {
		/* Poll before sleeping only while a lane's full window holds back what it
		   has queued: its answers are what the lane waits for (loop.h, Polling) */
		bool waiting = false;
		for (size_t i = 0; i < dp->n_lanes && !waiting; i++) {
			const struct lane *l = &dp->lanes[i];
			waiting = l->inflight >= l->window && lane_queued(l) > 0;
		}
		dp->loop.poll_us = waiting ? (unsigned)dp->cfg.poll_us : 0;
		loop_run_once(&dp->loop, 1000);
	}
	dp->closing = true; /* from here on nothing new goes to an adapter */
	loop_timer_cancel(&dp->loop, &dp->sched_timer);
	loop_timer_cancel(&dp->loop, &dp->tick_timer);
	dp->coverage_due_ms = 0; /* the last coverage goes out whatever its size */
	publish_flush(dp); /* what is settled is on its way to Redis */
	for (int i = 0; i < 20 && redis_up(&dp->writer) && dp->writer.fifo_len; i++)
		loop_run_once(&dp->loop, 50);
	for (size_t i = 0; i < dp->n_lanes; i++)
		if (dp->lanes[i].adapter && dp->lanes[i].adapter->close)
			dp->lanes[i].adapter->close(&dp->lanes[i]);
	redis_stop(&dp->redis);
	redis_stop(&dp->stream);
	redis_stop(&dp->writer);
	/* An adapter closes asynchronously: its connections' last completions come
	   back, then a timer of its own frees its state (the push lane's reaper).
	   So the loop runs until no timer is armed as well, at most 2 s. */
	for (int i = 0; i < 100 && !(redis_idle(&dp->redis) && redis_idle(&dp->stream) &&
				     redis_idle(&dp->writer) && !dp->wake_armed &&
				     dp->loop.n_timers == 0); i++)
		loop_run_once(&dp->loop, 20);
	return NULL;
}

static int parse_channels(const char *list, bool on[CHANNEL_COUNT], unsigned stage[CHANNEL_COUNT],
			  bool staged, char *err, size_t errlen)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", list);
	unsigned n = 0;
	for (char *save, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		int ch = channel_parse(tok);
		if (ch < 0) {
			snprintf(err, errlen, "[dispatch] unknown channel '%s' (sms, app, terminal)", tok);
			return -1;
		}
		if (staged)
			stage[ch] = n++;
		on[ch] = true;
	}
	return 0;
}

static int open_lanes(struct dispatcher *dp, adapter_lookup lookup, char *err, size_t errlen)
{
	dp->n_lanes = dp->cfg.n_lanes;
	dp->lanes = calloc(dp->n_lanes ? dp->n_lanes : 1, sizeof(*dp->lanes));
	if (!dp->lanes)
		return -1;
	/* All lanes exist and are linked before any opens: adapters may look for
	 * sibling lanes (the SMPP binds of one account share a receipt map). */
	for (size_t i = 0; i < dp->n_lanes; i++) {
		const struct config_lane *cl = &dp->cfg.lanes[i];
		struct lane *l = &dp->lanes[i];
		lane_init(l, cl->name, (enum channel)channel_parse(cl->channel), cl->rate, cl->burst,
			  cl->window, loop_now_ms(&dp->loop));
		l->next = i + 1 < dp->n_lanes ? &dp->lanes[i + 1] : NULL;
		l->platform = !strcmp(cl->platform, "apns") ? PLATFORM_APNS
			    : !strcmp(cl->platform, "fcm") ? PLATFORM_FCM
			    : !strcmp(cl->platform, "webhook") ? PLATFORM_WEBHOOK : PLATFORM_NONE;
		l->adapter = lookup(cl->adapter);
		if (!l->adapter) {
			snprintf(err, errlen, "[lane %s] adapter: unknown adapter '%s'", cl->name,
				 cl->adapter);
			return -1;
		}
	}
	for (size_t i = 0; i < dp->n_lanes; i++)
		if (dp->lanes[i].adapter->open(&dp->lanes[i], &dp->host, &dp->cfg.lanes[i], err,
					       errlen) < 0)
			return -1;
	return 0;
}

struct dispatcher *dispatch_new(const struct config *cfg, adapter_lookup lookup, char *err,
				size_t errlen)
{
	struct dispatcher *dp = calloc(1, sizeof(*dp));
	if (!dp) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	dp->cfg = *cfg;
	dp->wake_fd = -1;
	dp->redis.fd = dp->stream.fd = dp->writer.fd = -1;
	pthread_mutex_init(&dp->metrics_lock, NULL);
	dp->wake_op.cb = on_wake;
	int ret = loop_init(&dp->loop, 4096);
	if (ret < 0) {
		snprintf(err, errlen, "io_uring is not available (%s)", strerror(-ret));
		goto out_free;
	}
	dp->started_ms = loop_now_ms(&dp->loop);
	if (parse_channels(cfg->channels, dp->channel_on, dp->stage, false, err, errlen) < 0 ||
	    parse_channels(cfg->escalation, dp->channel_on, dp->stage, true, err, errlen) < 0)
		goto out_loop;
	if (redis_init(&dp->redis, &dp->loop, cfg->redis, err, errlen) < 0 ||
	    redis_init(&dp->stream, &dp->loop, cfg->redis, err, errlen) < 0 ||
	    redis_init(&dp->writer, &dp->loop, cfg->redis, err, errlen) < 0)
		goto out_loop;
	dp->stream.on_state = on_stream_state;
	dp->stream.on_state_arg = dp;
	sched_init(dp);
	if (open_lanes(dp, lookup, err, errlen) < 0)
		goto out_loop;
	for (int ch = 0; ch < CHANNEL_COUNT; ch++) { /* a channel without lanes is not used */
		bool any = false;
		for (size_t i = 0; i < dp->n_lanes; i++)
			any |= dp->lanes[i].channel == (enum channel)ch;
		dp->channel_on[ch] &= any;
	}
	dp->wake_fd = eventfd(0, EFD_CLOEXEC);
	return dp;

out_loop:
	dispatch_free(dp);
	return NULL;
out_free:
	free(dp);
	return NULL;
}

int dispatch_start(struct dispatcher *dp, char *err, size_t errlen)
{
	int ret = pthread_create(&dp->thread, NULL, dispatch_main, dp);
	if (ret) {
		snprintf(err, errlen, "cannot start the dispatcher thread: %s", strerror(ret));
		return -1;
	}
	dp->started = true;
	log_info("msg=\"dispatcher started\" lanes=%zu", dp->n_lanes);
	return 0;
}

void dispatch_stop(struct dispatcher *dp)
{
	if (!dp || !dp->started)
		return;
	atomic_store(&dp->stop, true);
	uint64_t one = 1;
	ssize_t n = write(dp->wake_fd, &one, sizeof(one));
	(void)n;
	pthread_join(dp->thread, NULL);
	dp->started = false;
}

void dispatch_free(struct dispatcher *dp)
{
	if (!dp)
		return;
	while (dp->campaigns) {
		struct campaign *c = dp->campaigns;
		dp->campaigns = c->next;
		campaign_free(c);
	}
	for (size_t i = 0; i < dp->by_id_cap; i++)
		if (dp->by_id[i].id)
			delivery_release(dp, dp->by_id[i].d);
	for (size_t i = 0; i < dp->n_lanes; i++)
		lane_release(&dp->lanes[i]);
	free(dp->lanes);
	sched_release(dp);
	redis_release(&dp->redis);
	redis_release(&dp->stream);
	redis_release(&dp->writer);
	buf_release(&dp->dirty);
	free(dp->dirty_runs);
	if (dp->wake_fd >= 0)
		close(dp->wake_fd);
	loop_release(&dp->loop);
	free(dp->metrics);
	free(dp->status);
	pthread_mutex_destroy(&dp->metrics_lock);
	free(dp);
}

char *dispatch_status(struct dispatcher *dp)
{
	pthread_mutex_lock(&dp->metrics_lock);
	char *m = dp->status ? strdup(dp->status) : NULL;
	pthread_mutex_unlock(&dp->metrics_lock);
	return m;
}

char *dispatch_metrics(struct dispatcher *dp)
{
	pthread_mutex_lock(&dp->metrics_lock);
	char *m = dp->metrics ? strdup(dp->metrics) : NULL;
	pthread_mutex_unlock(&dp->metrics_lock);
	return m;
}

char delivery_state_letter(enum delivery_state s)
{
	return "qsadfec"[s];
}

int delivery_state_from_letter(char c)
{
	const char *p = strchr("qsadfec", c);
	return p && c ? (int)(p - "qsadfec") : -1;
}
