/*
 * engine/dispatch_publish.c: what the dispatcher tells the outside world.
 *
 *   {prefix}d:{id}  hash: address -> state letter (q s a d f e c), written in
 *                   batches every flush; read back to resume after a restart.
 *   {prefix}w:{id}  fields `state` and `coverage` (JSON, see engine/README.md),
 *                   rewritten every flush while the coverage changes.
 *   metrics         Prometheus text, rebuilt every tick, served by /metrics.
 *
 * Writes are fire-and-forget pipelined commands: if Redis is down the
 * states stay in the dirty buffer and go out on the next flush.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dispatch_internal.h"
#include "log.h"

#define DIRTY_MAX (256u << 20)
#define PAIRS_PER_HSET 256

void publish_state(struct dispatcher *dp, struct campaign *c, const char *address, char state)
{
	size_t il = strlen(c->id) + 1, al = strlen(address) + 1;
	if (buf_reserve(&dp->dirty, il + al + 1, DIRTY_MAX) < 0) {
		log_error("msg=\"delivery state buffer full; a restart may resend\" warning=%s", c->id);
		return;
	}
	memcpy(dp->dirty.data + dp->dirty.len, c->id, il);
	memcpy(dp->dirty.data + dp->dirty.len + il, address, al);
	dp->dirty.data[dp->dirty.len + il + al] = (uint8_t)state;
	dp->dirty.len += il + al + 1;
}

/* One HSET per run of records of the same warning, at most PAIRS_PER_HSET pairs each. */
static void flush_states(struct dispatcher *dp)
{
	const char *argv[2 + 2 * PAIRS_PER_HSET];
	size_t lens[2 + 2 * PAIRS_PER_HSET];
	char key[256] = "";
	int argc = 0;
	const char *p = (const char *)dp->dirty.data, *end = p + dp->dirty.len;
	while (p < end) {
		const char *id = p, *addr = id + strlen(id) + 1, *st = addr + strlen(addr) + 1;
		if (argc && (strcmp(key + strlen(dp->cfg.prefix) + 2, id) || argc == 2 + 2 * PAIRS_PER_HSET)) {
			redis_command(&dp->writer, NULL, NULL, argc, argv, lens);
			argc = 0;
		}
		if (!argc) {
			snprintf(key, sizeof(key), "%sd:%s", dp->cfg.prefix, id);
			argv[0] = "HSET";
			lens[0] = 4;
			argv[1] = key;
			lens[1] = strlen(key);
			argc = 2;
		}
		argv[argc] = addr;
		lens[argc++] = strlen(addr);
		argv[argc] = st;
		lens[argc++] = 1;
		p = st + 1;
	}
	if (argc)
		redis_command(&dp->writer, NULL, NULL, argc, argv, lens);
	dp->dirty.len = 0;
}

static json_t *counts_json(const struct ledger_counts *k)
{
	json_t *o = json_object();
	json_object_set_new(o, "targeted", json_integer((json_int_t)k->targeted));
	json_object_set_new(o, "reached", json_integer((json_int_t)k->reached));
	json_object_set_new(o, "accepted", json_integer((json_int_t)k->accepted));
	json_object_set_new(o, "failed", json_integer((json_int_t)k->failed));
	json_object_set_new(o, "pending", json_integer((json_int_t)(k->targeted - k->reached -
									 k->accepted - k->failed)));
	return o;
}

static const struct ledger *sort_ledger; /* qsort has no context argument; set just before */

static int worst_first(const void *a, const void *b)
{
	const struct ledger_counts *x = &sort_ledger->seg[*(const uint32_t *)a].counts;
	const struct ledger_counts *y = &sort_ledger->seg[*(const uint32_t *)b].counts;
	double sx = x->targeted ? (double)x->reached / (double)x->targeted : 1;
	double sy = y->targeted ? (double)y->reached / (double)y->targeted : 1;
	return sx < sy ? -1 : sx > sy;
}

static json_t *segments_json(const struct ledger *l)
{
	uint32_t *idx = malloc((l->n_seg + 1) * sizeof(*idx));
	uint32_t n = 0;
	json_t *a = json_array();
	if (!idx)
		return a;
	for (uint32_t s = 0; s < l->n_seg; s++)
		if (l->seg[s].kind == LEDGER_COMMUNITY && l->seg[s].counts.targeted)
			idx[n++] = s;
	sort_ledger = l;
	qsort(idx, n, sizeof(*idx), worst_first);
	for (uint32_t i = 0; i < n; i++) {
		json_t *o = counts_json(&l->seg[idx[i]].counts);
		json_object_set_new(o, "id", json_string(l->seg[idx[i]].id));
		json_object_set_new(o, "census", json_integer((json_int_t)l->seg[idx[i]].census));
		json_array_append_new(a, o);
	}
	free(idx);
	return a;
}

static char *coverage_json(struct dispatcher *dp, const struct campaign *c)
{
	const struct ledger *l = &c->ledger;
	json_t *o = counts_json(&l->total);
	json_object_set_new(o, "state", json_string(campaign_state_name(c->state)));
	if (c->error)
		json_object_set_new(o, "error", json_string(c->error));
	json_object_set_new(o, "census", json_integer((json_int_t)l->census));
	json_object_set_new(o, "reached_share",
			    json_real(l->total.targeted ? (double)l->total.reached / (double)l->total.targeted : 0));
	json_object_set_new(o, "census_share",
			    json_real(l->census ? (double)l->total.reached / (double)l->census : 0));
	json_object_set_new(o, "target_share", json_real(0.9));
	json_object_set_new(o, "t90_ms", l->t90_ms ? json_integer((json_int_t)l->t90_ms) : json_null());
	json_object_set_new(o, "first_send_ms",
			    c->first_send_ms ? json_integer((json_int_t)(c->first_send_ms - c->start_ms)) : json_null());
	json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)(loop_now_ms(&dp->loop) - c->start_ms)));
	json_object_set_new(o, "drill", json_boolean(c->drill));
	json_t *ds = json_object();
	for (int s = DELIVERY_QUEUED; s <= DELIVERY_CANCELLED; s++)
		json_object_set_new(ds, delivery_state_name((enum delivery_state)s),
				    json_integer((json_int_t)c->by_state[s]));
	json_object_set_new(o, "deliveries", ds);
	json_t *ch = json_object();
	for (int k = 0; k < CHANNEL_COUNT; k++)
		json_object_set_new(ch, channel_name((enum channel)k), counts_json(&l->channel[k]));
	json_object_set_new(o, "channels", ch);
	json_object_set_new(o, "segments", segments_json(l));
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

static void flush_coverage(struct dispatcher *dp, struct campaign *c)
{
	char *cov = coverage_json(dp, c);
	if (!cov)
		return;
	char key[256];
	snprintf(key, sizeof(key), "%sw:%s", dp->cfg.prefix, c->id);
	const char *state = campaign_state_name(c->state);
	const char *argv[] = {"HSET", key, "state", state, "coverage", cov};
	size_t lens[] = {4, strlen(key), 5, strlen(state), 8, strlen(cov)};
	if (redis_command(&dp->writer, NULL, NULL, 6, argv, lens) == 0)
		c->dirty = false;
	free(cov);
}

void publish_flush(struct dispatcher *dp)
{
	if (!redis_up(&dp->writer))
		return;
	if (dp->dirty.len)
		flush_states(dp);
	for (struct campaign *c = dp->campaigns; c; c = c->next)
		if (c->dirty)
			flush_coverage(dp, c);
}

/* --- Prometheus text --- */

static void metric_head(struct buf *b, const char *name, const char *type, const char *help)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	buf_append(b, line, (size_t)n, 64u << 20);
}

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_append(b, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, 64u << 20);
}

static void lane_counters(struct buf *b, const struct dispatcher *dp)
{
	metric_head(b, "tocsin_lane_deliveries_total", "counter",
		    "Deliveries per lane by what happened to them.");
	for (size_t i = 0; i < dp->n_lanes; i++) {
		const struct lane *l = &dp->lanes[i];
		const struct lane_stats *s = &l->stats;
		const char *ch = channel_name(l->channel);
		uint64_t v[] = {s->queued, s->sent, s->accepted, s->delivered, s->failed, s->expired,
				s->cancelled};
		static const char *names[] = {"queued", "sent", "accepted", "delivered", "failed",
					      "expired", "cancelled"};
		for (int k = 0; k < 7; k++)
			put(b, "tocsin_lane_deliveries_total{lane=\"%s\",channel=\"%s\",event=\"%s\"} %llu\n",
			    l->name, ch, names[k], (unsigned long long)v[k]);
	}
	metric_head(b, "tocsin_lane_throttled_total", "counter", "Throttling signals per lane.");
	for (size_t i = 0; i < dp->n_lanes; i++)
		put(b, "tocsin_lane_throttled_total{lane=\"%s\"} %llu\n", dp->lanes[i].name,
		    (unsigned long long)dp->lanes[i].stats.throttled);
	metric_head(b, "tocsin_lane_retries_total", "counter", "Retried sends per lane.");
	for (size_t i = 0; i < dp->n_lanes; i++)
		put(b, "tocsin_lane_retries_total{lane=\"%s\"} %llu\n", dp->lanes[i].name,
		    (unsigned long long)dp->lanes[i].stats.retries);
	metric_head(b, "tocsin_lane_parts_sent_total", "counter", "Message parts sent per lane.");
	for (size_t i = 0; i < dp->n_lanes; i++)
		put(b, "tocsin_lane_parts_sent_total{lane=\"%s\"} %llu\n", dp->lanes[i].name,
		    (unsigned long long)dp->lanes[i].stats.parts_sent);
}

static void lane_gauges(struct buf *b, const struct dispatcher *dp, uint64_t now)
{
	metric_head(b, "tocsin_lane_queued", "gauge", "Deliveries waiting in the lane's queue.");
	for (size_t i = 0; i < dp->n_lanes; i++)
		put(b, "tocsin_lane_queued{lane=\"%s\"} %zu\n", dp->lanes[i].name, lane_queued(&dp->lanes[i]));
	metric_head(b, "tocsin_lane_inflight", "gauge", "Deliveries sent and not yet answered.");
	for (size_t i = 0; i < dp->n_lanes; i++)
		put(b, "tocsin_lane_inflight{lane=\"%s\"} %u\n", dp->lanes[i].name, dp->lanes[i].inflight);
	metric_head(b, "tocsin_lane_paused", "gauge", "1 while the provider throttles the lane.");
	for (size_t i = 0; i < dp->n_lanes; i++)
		put(b, "tocsin_lane_paused{lane=\"%s\"} %d\n", dp->lanes[i].name,
		    lane_paused(&dp->lanes[i], now));
	metric_head(b, "tocsin_lane_up", "gauge", "1 while the lane's adapter can send.");
	for (size_t i = 0; i < dp->n_lanes; i++)
		put(b, "tocsin_lane_up{lane=\"%s\"} %d\n", dp->lanes[i].name, !dp->lanes[i].down);
	metric_head(b, "tocsin_lane_rate", "gauge", "Configured rate (parts per second; 0 = unlimited).");
	for (size_t i = 0; i < dp->n_lanes; i++)
		put(b, "tocsin_lane_rate{lane=\"%s\"} %g\n", dp->lanes[i].name, dp->lanes[i].rate);
}

static void histogram(struct buf *b, const char *name, const struct lane *l, const uint64_t *h,
		      double sum, uint64_t count)
{
	uint64_t cum = 0;
	for (int i = 0; i < 16; i++) {
		cum += h[i];
		if (i == 15)
			put(b, "%s_bucket{lane=\"%s\",le=\"+Inf\"} %llu\n", name, l->name,
			    (unsigned long long)cum);
		else
			put(b, "%s_bucket{lane=\"%s\",le=\"%g\"} %llu\n", name, l->name,
			    lane_latency_buckets[i], (unsigned long long)cum);
	}
	put(b, "%s_sum{lane=\"%s\"} %.6f\n", name, l->name, sum);
	put(b, "%s_count{lane=\"%s\"} %llu\n", name, l->name, (unsigned long long)count);
}

static void lane_histograms(struct buf *b, const struct dispatcher *dp)
{
	metric_head(b, "tocsin_lane_first_send_seconds", "histogram",
		    "From the dispatcher taking a warning to a delivery's first send.");
	for (size_t i = 0; i < dp->n_lanes; i++) {
		const struct lane_stats *s = &dp->lanes[i].stats;
		histogram(b, "tocsin_lane_first_send_seconds", &dp->lanes[i], s->first_send_hist,
			  s->first_send_sum_s, s->first_send_count);
	}
	metric_head(b, "tocsin_lane_receipt_seconds", "histogram",
		    "From a delivery's send to its confirmation.");
	for (size_t i = 0; i < dp->n_lanes; i++) {
		const struct lane_stats *s = &dp->lanes[i].stats;
		histogram(b, "tocsin_lane_receipt_seconds", &dp->lanes[i], s->receipt_hist,
			  s->receipt_sum_s, s->receipt_count);
	}
}

static void warning_gauges(struct buf *b, const struct dispatcher *dp)
{
	metric_head(b, "tocsin_warning_persons", "gauge",
		    "Persons per active warning: targeted, reached (confirmed), accepted, failed.");
	for (const struct campaign *c = dp->campaigns; c; c = c->next) {
		const struct ledger_counts *t = &c->ledger.total;
		uint64_t v[] = {t->targeted, t->reached, t->accepted, t->failed};
		static const char *k[] = {"targeted", "reached", "accepted", "failed"};
		for (int i = 0; i < 4; i++)
			put(b, "tocsin_warning_persons{warning=\"%s\",class=\"%s\"} %llu\n", c->id, k[i],
			    (unsigned long long)v[i]);
	}
}

void publish_metrics(struct dispatcher *dp)
{
	struct buf b = {0};
	lane_counters(&b, dp);
	lane_gauges(&b, dp, loop_now_ms(&dp->loop));
	lane_histograms(&b, dp);
	warning_gauges(&b, dp);
	if (buf_append(&b, "", 1, 64u << 20) < 0) {
		buf_release(&b);
		return;
	}
	pthread_mutex_lock(&dp->metrics_lock);
	free(dp->metrics);
	dp->metrics = (char *)b.data;
	pthread_mutex_unlock(&dp->metrics_lock);
}
