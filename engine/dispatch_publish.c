/*
 * engine/dispatch_publish.c: what the dispatcher tells the outside world.
 *
 *   {prefix}d:{id}  list of chunks, appended (RPUSH) every flush; read back
 *                   to resume after a restart. A chunk is a run of records
 *                   (at most PUBLISH_CHUNK_BYTES, always whole records),
 *                   each the state letter (a d f e c), the address's key
 *                   (state_chunk_key: an app token's hash) and a NUL;
 *                   a later record for an address overrides an earlier one.
 *                   Appending costs Redis a copy per chunk where a hash field
 *                   per delivery cost it an entry each (~2 us and ~70 bytes).
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
#include <time.h>

#include <jansson.h>

#include "dispatch_internal.h"
#include "log.h"
#include "state_chunk.h"

#define DIRTY_MAX (256u << 20)
/* 64 KB per command. Four chunks per command cost Redis more CPU (~25 ms
   against ~17 per 80,000 states): more commands, more appends to its file. */
#define CHUNKS_PER_RPUSH 16

/*
 * A record costs a strlen and a copy here and nothing more at the flush:
 * the records of a run are already the chunks' bytes, and a flush hands
 * them to RPUSH in slices (publish_chunk_len).
 */
void publish_state(struct dispatcher *dp, struct campaign *c, const char *address, char state)
{
	char kbuf[STATE_KEY_HASHED + 1];
	size_t al;
	address = state_chunk_key(address, strlen(address), kbuf, &al); /* an app token: its hash */
	al++;
	bool new_run = dp->dirty.len == 0 || dp->dirty_run != c->serial;
	size_t il = new_run ? strlen(c->id) + 1 : 0;
	if (new_run && dp->n_dirty_runs == dp->cap_dirty_runs) {
		size_t cap = dp->cap_dirty_runs ? dp->cap_dirty_runs * 2 : 16;
		size_t *runs = realloc(dp->dirty_runs, cap * sizeof(*runs));
		if (!runs)
			abort(); /* out-of-memory policy: see engine/README.md */
		dp->dirty_runs = runs;
		dp->cap_dirty_runs = cap;
	}
	if (buf_reserve(&dp->dirty, il + 1 + al, DIRTY_MAX) < 0) {
		log_error("msg=\"delivery state buffer full; a restart may resend\" warning=%s", c->id);
		return;
	}
	uint8_t *w = dp->dirty.data + dp->dirty.len;
	if (new_run) {
		dp->dirty_runs[dp->n_dirty_runs++] = dp->dirty.len;
		dp->dirty_run = c->serial;
		memcpy(w, c->id, il);
		w += il;
	}
	*w++ = (uint8_t)state;
	memcpy(w, address, al);
	dp->dirty.len += il + 1 + al;
}

size_t publish_chunk_len(const uint8_t *r, size_t n)
{
	if (n <= PUBLISH_CHUNK_BYTES)
		return n;
	const uint8_t *nul = memrchr(r, '\0', PUBLISH_CHUNK_BYTES);
	if (!nul) /* one record longer than a chunk: alone */
		nul = memchr(r, '\0', n);
	return nul ? (size_t)(nul - r) + 1 : n;
}

/* One run: the records from r to end of warning `id`, in RPUSH commands. */
static void push_run(struct dispatcher *dp, const char *id, const uint8_t *r, const uint8_t *end)
{
	char key[256];
	const char *argv[2 + CHUNKS_PER_RPUSH];
	size_t lens[2 + CHUNKS_PER_RPUSH];
	int n = 0;
	argv[0] = "RPUSH";
	lens[0] = 5;
	argv[1] = key;
	lens[1] = (size_t)snprintf(key, sizeof(key), "%sd:%s", dp->cfg.prefix, id);
	while (r < end) {
		size_t len = publish_chunk_len(r, (size_t)(end - r));
		argv[2 + n] = (const char *)r;
		lens[2 + n] = len;
		r += len;
		if (++n == CHUNKS_PER_RPUSH || r == end) {
			redis_command(&dp->writer, NULL, NULL, 2 + n, argv, lens);
			n = 0;
		}
	}
}

static void flush_states(struct dispatcher *dp)
{
	const uint8_t *data = dp->dirty.data;
	for (size_t i = 0; i < dp->n_dirty_runs; i++) {
		size_t from = dp->dirty_runs[i];
		size_t to = i + 1 < dp->n_dirty_runs ? dp->dirty_runs[i + 1] : dp->dirty.len;
		const char *id = (const char *)data + from;
		push_run(dp, id, data + from + strlen(id) + 1, data + to);
	}
	dp->dirty.len = 0;
	dp->n_dirty_runs = 0;
	dp->dirty_run = 0;
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

static uint64_t ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (uint64_t)((t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000);
}

/* The next rebuild waits ten times as long as this one took, up to a second:
 * a rebuild never takes more than a tenth of the dispatcher's time. */
static uint64_t next_due(uint64_t now, uint64_t took_ms)
{
	return now + (took_ms * 10 > 1000 ? 1000 : took_ms * 10);
}

void publish_flush(struct dispatcher *dp)
{
	if (!redis_up(&dp->writer))
		return;
	/* Coverage first: it is small and read live by operators; the states
	 * (hundreds of thousands after a Cancel) go behind it on the connection.
	 * A province's coverage (thousands of segments) is rebuilt less often. */
	uint64_t now = loop_now_ms(&dp->loop);
	if (now >= dp->coverage_due_ms) {
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (struct campaign *c = dp->campaigns; c; c = c->next)
			if (c->dirty)
				flush_coverage(dp, c);
		dp->coverage_due_ms = next_due(now, ms_since(&t0));
	}
	if (dp->dirty.len)
		flush_states(dp);
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

static void adapter_gauges(struct buf *b, const struct dispatcher *dp, json_t **desc);

static void publish_metrics(struct dispatcher *dp, json_t **desc)
{
	struct buf b = {0};
	lane_counters(&b, dp);
	lane_gauges(&b, dp, loop_now_ms(&dp->loop));
	lane_histograms(&b, dp);
	warning_gauges(&b, dp);
	adapter_gauges(&b, dp, desc);
	if (buf_append(&b, "", 1, 64u << 20) < 0) {
		buf_release(&b);
		return;
	}
	pthread_mutex_lock(&dp->metrics_lock);
	free(dp->metrics);
	dp->metrics = (char *)b.data;
	pthread_mutex_unlock(&dp->metrics_lock);
}

/* --- the operator view (status JSON) --- */

static void sample(struct dispatcher *dp, struct campaign *c, uint64_t now)
{
	if (c->finished || now < c->next_sample_ms)
		return;
	c->next_sample_ms = now + 1000;
	if (c->n_series == c->cap_series) {
		size_t cap = c->cap_series ? c->cap_series * 2 : 64;
		if (cap > 86400)
			return; /* a day of samples is plenty */
		struct coverage_sample *n = realloc(c->series, cap * sizeof(*n));
		if (!n)
			return;
		c->series = n;
		c->cap_series = cap;
	}
	struct coverage_sample *s = &c->series[c->n_series++];
	s->elapsed_ms = (uint32_t)(now - c->start_ms);
	for (int k = 0; k < CHANNEL_COUNT; k++)
		s->reached[k] = (uint32_t)c->ledger.channel[k].reached;
	s->total = (uint32_t)c->ledger.total.reached;
}

static json_t *lane_json(const struct lane *l, uint64_t now, json_t *desc)
{
	static const char *plat[] = {"", "apns", "fcm", "webhook"};
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(l->name));
	json_object_set_new(o, "channel", json_string(channel_name(l->channel)));
	json_object_set_new(o, "platform", json_string(plat[l->platform & 3]));
	json_object_set_new(o, "rate", json_real(l->rate));
	json_object_set_new(o, "burst", json_real(l->burst));
	json_object_set_new(o, "window", json_integer(l->window));
	json_object_set_new(o, "queued", json_integer((json_int_t)lane_queued(l)));
	json_object_set_new(o, "inflight", json_integer(l->inflight));
	json_object_set_new(o, "up", json_boolean(!l->down));
	bool paused = lane_paused(l, now);
	json_object_set_new(o, "paused", json_boolean(paused));
	json_object_set_new(o, "pause_reason", json_string(l->stats.throttled ? l->pause_reason : ""));
	json_object_set_new(o, "paused_for_ms", json_integer(paused ? (json_int_t)(l->paused_until_ms - now) : 0));
	const struct lane_stats *s = &l->stats;
	json_t *k = json_object();
	json_object_set_new(k, "sent", json_integer((json_int_t)s->sent));
	json_object_set_new(k, "accepted", json_integer((json_int_t)s->accepted));
	json_object_set_new(k, "delivered", json_integer((json_int_t)s->delivered));
	json_object_set_new(k, "failed", json_integer((json_int_t)s->failed));
	json_object_set_new(k, "expired", json_integer((json_int_t)s->expired));
	json_object_set_new(k, "throttled", json_integer((json_int_t)s->throttled));
	json_object_set_new(k, "retries", json_integer((json_int_t)s->retries));
	json_object_set_new(o, "counters", k);
	json_object_set_new(o, "adapter", desc ? json_incref(desc) : json_object());
	return o;
}

static json_t *warning_json(const struct campaign *c, uint64_t now)
{
	const struct ledger *l = &c->ledger;
	const Tocsin__Info *in = c->w->info[0];
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(c->id));
	json_object_set_new(o, "state", json_string(campaign_state_name(c->state)));
	json_object_set_new(o, "status", json_string(warning_status_name(c->w->status)));
	json_object_set_new(o, "colour", json_string(warning_colour_name(c->w->colour)));
	json_object_set_new(o, "severity", json_string(warning_severity_name(in->severity)));
	json_object_set_new(o, "headline", json_string(in->headline));
	json_object_set_new(o, "drill", json_boolean(c->drill));
	json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)(now - c->start_ms)));
	json_object_set_new(o, "targeted", json_integer((json_int_t)l->total.targeted));
	json_object_set_new(o, "reached", json_integer((json_int_t)l->total.reached));
	json_object_set_new(o, "accepted", json_integer((json_int_t)l->total.accepted));
	json_object_set_new(o, "failed", json_integer((json_int_t)l->total.failed));
	json_object_set_new(o, "census", json_integer((json_int_t)l->census));
	json_object_set_new(o, "t90_ms", l->t90_ms ? json_integer((json_int_t)l->t90_ms) : json_null());
	json_t *series = json_array();
	for (size_t i = 0; i < c->n_series; i++) {
		const struct coverage_sample *s = &c->series[i];
		json_array_append_new(series, json_pack("[I,I,I,I,I]", (json_int_t)s->elapsed_ms,
							(json_int_t)s->reached[CHANNEL_SMS],
							(json_int_t)s->reached[CHANNEL_APP],
							(json_int_t)s->reached[CHANNEL_TERMINAL],
							(json_int_t)s->total));
	}
	json_object_set_new(o, "series", series);
	return o;
}

/*
 * Every terminal lane reports the readiness of all terminal lanes together
 * (persons covered once, a terminal offline only when no lane holds it, the
 * terminals reporting faults or volume 0 on any lane: see
 * adapters/terminal.c), so those are taken once; terminals online are each
 * lane's own and add up.
 */
static json_t *readiness_json(struct dispatcher *dp, json_t **desc)
{
	json_int_t online = 0, persons = 0, faulty = 0, muted = 0;
	json_t *offline = NULL, *faults = NULL;
	for (size_t i = 0; i < dp->n_lanes; i++) {
		json_t *a = desc[i];
		if (dp->lanes[i].channel != CHANNEL_TERMINAL || !a)
			continue;
		online += json_integer_value(json_object_get(a, "terminals_online"));
		json_int_t p = json_integer_value(json_object_get(a, "persons_online"));
		persons = p > persons ? p : persons;
		json_t *off = json_object_get(a, "offline_longest");
		if (!offline && json_is_array(off))
			offline = json_deep_copy(off);
		json_t *fl = json_object_get(a, "faults_latest"); /* the process's, as offline */
		if (!faults && json_is_array(fl)) {
			faults = json_deep_copy(fl);
			faulty = json_integer_value(json_object_get(a, "terminals_faulty"));
			muted = json_integer_value(json_object_get(a, "terminals_muted"));
		}
	}
	if (!offline)
		offline = json_array();
	if (!faults)
		faults = json_array();
	json_t *o = json_object();
	json_object_set_new(o, "population", json_integer((json_int_t)dp->population));
	json_object_set_new(o, "persons_online", json_integer(persons));
	json_object_set_new(o, "share", json_real(dp->population ? (double)persons / (double)dp->population : 0));
	json_object_set_new(o, "terminals_online", json_integer(online));
	json_object_set_new(o, "terminals_total", json_integer((json_int_t)dp->terminals_total));
	json_object_set_new(o, "offline_longest", offline);
	json_object_set_new(o, "terminals_faulty", json_integer(faulty));
	json_object_set_new(o, "terminals_muted", json_integer(muted));
	json_object_set_new(o, "faults_latest", faults);
	return o;
}

/* A Prometheus label value: backslash, quote and newline escaped, cut at 200 bytes. */
static void label_value(char *out, size_t cap, const char *s)
{
	size_t n = 0;
	for (; s && *s && n + 3 < cap && n < 200; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n')
			out[n++] = '\\';
		out[n++] = *s == '\n' ? 'n' : *s;
	}
	out[n] = 0;
}

/*
 * An array of objects from describe (e.g. readiness per segment): each
 * numeric member K becomes tocsin_adapter_<member>_K{lane, <string members
 * as labels>}. Called once per (member, K) family with every lane's array,
 * so each family's lines stay together under one HELP and TYPE.
 */
static void adapter_series(struct buf *b, const struct dispatcher *dp, json_t **desc,
			   const char *member, const char *k)
{
	char name[256];
	snprintf(name, sizeof(name), "tocsin_adapter_%s_%s", member, k);
	metric_head(b, name, "gauge", "Adapter figure per item (see the adapter in adapters/README.md).");
	for (size_t l = 0; l < dp->n_lanes; l++) {
		json_t *arr = desc[l] ? json_object_get(desc[l], member) : NULL, *e, *v;
		const char *lk;
		size_t i;
		json_array_foreach(arr, i, e) {
			char labels[768], val[224];
			size_t n = (size_t)snprintf(labels, sizeof(labels), "lane=\"%s\"", dp->lanes[l].name);
			json_object_foreach(e, lk, v) if (json_is_string(v) && n < sizeof(labels)) {
				label_value(val, sizeof(val), json_string_value(v));
				n += (size_t)snprintf(labels + n, sizeof(labels) - n, ",%s=\"%s\"", lk, val);
			}
			if (n >= sizeof(labels) || !json_is_number(v = json_object_get(e, k)))
				continue;
			put(b, "%s{%s} %.10g\n", name, labels, json_number_value(v));
		}
	}
}

/*
 * Adapter numbers as gauges: integer members as tocsin_adapter_<member>{lane="..."},
 * arrays of objects through adapter_series(). Every family is written once,
 * with all lanes' samples together (several binds share member names).
 */
static void adapter_gauges(struct buf *b, const struct dispatcher *dp, json_t **desc)
{
	json_t *seen = json_object();
	for (size_t i = 0; seen && i < dp->n_lanes; i++) {
		const char *key;
		json_t *v;
		json_object_foreach(desc[i], key, v) {
			if (json_object_get(seen, key))
				continue;
			json_object_set_new(seen, key, json_true());
			if (json_is_integer(v)) {
				char name[256];
				snprintf(name, sizeof(name), "tocsin_adapter_%s", key);
				metric_head(b, name, "gauge", "Adapter figure (see the adapter in adapters/README.md).");
				for (size_t j = i; j < dp->n_lanes; j++) {
					json_t *w = desc[j] ? json_object_get(desc[j], key) : NULL;
					if (json_is_integer(w))
						put(b, "%s{lane=\"%s\"} %lld\n", name, dp->lanes[j].name,
						    (long long)json_integer_value(w));
				}
			} else if (json_is_object(json_array_get(v, 0))) {
				const char *k;
				json_t *num;
				json_object_foreach(json_array_get(v, 0), k, num) if (json_is_number(num))
					adapter_series(b, dp, desc, key, k);
			}
		}
	}
	json_decref(seen);
}

static void publish_status(struct dispatcher *dp, json_t **desc)
{
	uint64_t now = loop_now_ms(&dp->loop);
	json_t *o = json_object(), *lanes = json_array(), *ws = json_array();
	for (size_t i = 0; i < dp->n_lanes; i++)
		json_array_append_new(lanes, lane_json(&dp->lanes[i], now, desc[i]));
	for (struct campaign *c = dp->campaigns; c; c = c->next) {
		sample(dp, c, now);
		json_array_append_new(ws, warning_json(c, now));
	}
	json_object_set_new(o, "lanes", lanes);
	json_object_set_new(o, "warnings", ws);
	json_object_set_new(o, "readiness", readiness_json(dp, desc));
	json_object_set_new(o, "memory_ready",
			    json_pack("{s:I,s:I,s:I}", "sms", (json_int_t)dp->warmed_n[CHANNEL_SMS],
				      "app", (json_int_t)dp->warmed_n[CHANNEL_APP], "terminal",
				      (json_int_t)dp->warmed_n[CHANNEL_TERMINAL]));
	/* polls before sleeping ([dispatch] poll_us) and those that found an answer */
	json_object_set_new(o, "loop_polls",
			    json_pack("{s:I,s:I}", "made", (json_int_t)dp->loop.polls, "found",
				      (json_int_t)dp->loop.poll_hits));
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return;
	pthread_mutex_lock(&dp->metrics_lock);
	free(dp->status);
	dp->status = s;
	pthread_mutex_unlock(&dp->metrics_lock);
}

/*
 * Every tick: each adapter describes itself once, for both the status JSON
 * and the metrics text. Both are rebuilt together (what one shows the
 * other shows), every tick while that is cheap; when it is not (a province
 * with a thousand communities of terminal readiness), at most one tenth of
 * the dispatcher's time goes to it (next_due).
 */
void publish_views(struct dispatcher *dp)
{
	uint64_t now = loop_now_ms(&dp->loop);
	if (now < dp->views_due_ms)
		return;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	json_t **desc = calloc(dp->n_lanes ? dp->n_lanes : 1, sizeof(*desc));
	if (!desc)
		return;
	for (size_t i = 0; i < dp->n_lanes; i++) {
		struct lane *l = &dp->lanes[i];
		if (l->adapter && l->adapter->describe) {
			desc[i] = json_object();
			l->adapter->describe(l, desc[i]);
		}
	}
	publish_metrics(dp, desc);
	publish_status(dp, desc);
	for (size_t i = 0; i < dp->n_lanes; i++)
		json_decref(desc[i]);
	free(desc);
	dp->views_due_ms = next_due(now, ms_since(&t0));
}
