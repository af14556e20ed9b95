/*
 * engine/api.c: routing and the asynchronous halves of the API handlers.
 *
 * POST /v1/warnings: admit_check() decides synchronously; then the
 * targets' existence is checked in the population data (422 naming the
 * unknown ids: a warning never silently reaches nobody), and only then is
 * the warning journalled through the worker's Redis connection and
 * answered from the journal's callback. Both asynchronous stages count in
 * pending_admissions. The number of admissions waiting
 * for Redis is bounded per worker (429 beyond it), so a slow Redis turns
 * into clear refusals, not unbounded memory.
 *
 * Operator views sit behind dashboard_authorize() (dashboard.h); every
 * admission (alert, update, cancel) and every rejection is also written
 * to the audit log (audit.h), which never blocks this thread.
 */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "admit.h"
#include "audit.h"
#include "dashboard.h"
#include "dispatch.h"
#include "events.h"
#include "journal.h"
#include "receipts.h"
#include "log.h"
#include "resolve.h"
#include "server.h"

struct admission {
	struct worker *w;
	struct http_request *req; /* its body stays valid until answered */
	char id[WARNING_MAX_ID_LEN + 1];
	char digest_hex[65];
	int64_t expires;
	const char *event;        /* audit event: admit, update or cancel */
	json_t *audit;            /* audit detail, owned */
};

static void admission_free(struct admission *a)
{
	json_decref(a->audit);
	free(a);
}

static void audit_reject(struct worker *w, const char *id, int status, const char *error,
			 const char *field, const char *reason)
{
	json_t *d = json_pack("{s:i,s:s,s:s}", "status", status, "error", error, "reason",
			      reason ? reason : "");
	if (id && id[0])
		json_object_set_new(d, "id", json_string(id));
	if (field && field[0])
		json_object_set_new(d, "field", json_string(field));
	audit_log(w->e->audit, "reject", d);
}

static void respond_json(struct http_request *req, int status, json_t *o, const char *location)
{
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s) {
		http_respond_error(req, 500, "internal", NULL, "out of memory");
		return;
	}
	http_respond(req, status, "application/json", location, s, strlen(s));
	free(s);
}

static void on_journalled(void *arg, enum journal_result r, int64_t admitted_at)
{
	struct admission *a = arg;
	struct worker *w = a->w;
	w->pending_admissions--;
	if (r == JOURNAL_UNAVAILABLE) {
		http_respond_error(a->req, 503, "journal_unavailable", NULL,
				   "the journal did not confirm the write; nothing was admitted");
	} else if (r == JOURNAL_CONFLICT) {
		w->stats.rejected++;
		log_info("msg=\"warning rejected\" id=%s status=409 error=conflict", a->id);
		audit_reject(w, a->id, 409, "conflict", "identifier", "identifier already admitted");
		http_respond_error(a->req, 409, "conflict", "identifier",
				   "a different warning with this identifier was already admitted");
	} else {
		char url[WARNING_MAX_ID_LEN + 32];
		snprintf(url, sizeof(url), "/v1/warnings/%s", a->id);
		json_t *o = json_object();
		json_object_set_new(o, "id", json_string(a->id));
		json_object_set_new(o, "state", json_string("admitted"));
		json_object_set_new(o, "admitted_at", json_integer(admitted_at));
		json_object_set_new(o, "status_url", json_string(url));
		if (r == JOURNAL_NEW) {
			w->stats.admitted++;
			log_info("msg=\"warning admitted\" id=%s", a->id);
			if (a->audit) {
				json_object_set_new(a->audit, "admitted_at", json_integer(admitted_at));
				audit_log(w->e->audit, a->event, json_incref(a->audit));
			}
		} else {
			w->stats.replayed++;
		}
		respond_json(a->req, 202, o, url);
	}
	admission_free(a);
}

static bool is_protobuf(const char *ct)
{
	size_t n = strcspn(ct, ";");
	while (n && ct[n - 1] == ' ')
		n--;
	return n == 22 && !strncasecmp(ct, "application/x-protobuf", 22);
}

/* Everything the later stages need, copied out of the request's arena. */
static struct admission *admission_new(struct worker *w, struct http_request *req,
				       const struct admit_result *res)
{
	struct admission *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->w = w;
	a->req = req;
	snprintf(a->id, sizeof(a->id), "%s", res->warning->identifier);
	memcpy(a->digest_hex, res->digest_hex, sizeof(a->digest_hex));
	a->expires = warning_expires(res->warning);
	const Tocsin__Warning *wn = res->warning;
	a->event = wn->msg_type == TOCSIN__MSG_TYPE__CANCEL ? "cancel"
		   : wn->msg_type == TOCSIN__MSG_TYPE__UPDATE ? "update" : "admit";
	if (!w->e->audit)
		return a; /* auditing off: spare the hot path the JSON */
	json_t *refs = json_array();
	for (size_t i = 0; i < wn->n_references; i++)
		json_array_append_new(refs, json_string(wn->references[i]));
	a->audit = json_pack("{s:s,s:s,s:s,s:o}", "id", a->id, "key_id", res->key_id, "digest",
			     a->digest_hex, "references", refs);
	return a;
}

/* Journal an admission that passed every check; takes ownership of a. */
static void journal_admission(struct admission *a)
{
	struct worker *w = a->w;
	struct journal_entry e = {
		.id = a->id, .digest_hex = a->digest_hex, .envelope = a->req->body,
		.envelope_len = a->req->body_len, .expires = a->expires,
	};
	int ret = journal_admit(&w->redis, w->e->cfg.prefix, &e, on_journalled, a);
	if (ret < 0) {
		http_respond_error(a->req, 503, "journal_unavailable", NULL,
				   "the journal (Redis) is not reachable; nothing was admitted");
		admission_free(a);
		return;
	}
	w->pending_admissions++;
}

static void respond_unknown_targets(struct admission *a, const struct resolve_result *res)
{
	json_t *ids = json_array();
	for (size_t i = 0; i < res->n_unknown; i++)
		json_array_append_new(ids, json_string(res->unknown[i]));
	json_t *o = json_object();
	json_object_set_new(o, "error", json_string("unknown_targets"));
	json_object_set_new(o, "field", json_string("targets"));
	json_object_set_new(o, "reason", json_string(res->status == RESOLVE_NO_POPULATION
							? "no population data loaded"
							: res->reason));
	json_object_set_new(o, "ids", ids);
	a->w->stats.rejected++;
	log_info("msg=\"warning rejected\" id=%s status=422 error=unknown_targets n=%zu",
		 a->id, res->n_unknown);
	audit_reject(a->w, a->id, 422, "unknown_targets", "targets", "unknown target ids");
	respond_json(a->req, 422, o, NULL);
}

/* The existence check of the targets came back (resolve.h). */
static void on_targets_checked(void *arg, const struct resolve_result *res)
{
	struct admission *a = arg;
	a->w->pending_admissions--;
	if (res->status == RESOLVE_OK)
		return journal_admission(a);
	if (res->status == RESOLVE_UNKNOWN_TARGETS || res->status == RESOLVE_NO_POPULATION)
		respond_unknown_targets(a, res);
	else
		http_respond_error(a->req, 503, "population_unavailable", "targets",
				   "the population data could not be read; nothing was admitted");
	admission_free(a);
}

/* Unknown targets are refused (422) before anything is journalled. */
static void admit_targets(struct worker *w, struct http_request *req,
			  const struct admit_result *res)
{
	const Tocsin__Warning *wn = res->warning;
	struct admission *a = admission_new(w, req, res);
	if (!a)
		return http_respond_error(req, 503, "overloaded", NULL, "out of memory");
	if (wn->msg_type == TOCSIN__MSG_TYPE__CANCEL || wn->n_targets == 0)
		return journal_admission(a);
	int ret = resolver_check_targets(&w->redis, w->e->cfg.prefix,
					 (const char *const *)wn->targets, wn->n_targets,
					 on_targets_checked, a);
	if (ret < 0) {
		http_respond_error(req, 503, "journal_unavailable", NULL,
				   "Redis is not reachable; nothing was admitted");
		admission_free(a);
		return;
	}
	w->pending_admissions++;
}

static void post_warning(struct worker *w, struct http_request *req)
{
	if (!is_protobuf(req->content_type))
		return http_respond_error(req, 415, "unsupported_media_type", "content-type",
					  "expected application/x-protobuf (a SignedWarning)");
	if (req->body_too_large || req->body_len > w->e->cfg.max_body)
		return http_respond_error(req, 413, "too_large", NULL, "request body too large");
	if (w->draining)
		return http_respond_error(req, 503, "shutting_down", NULL, "server is stopping");
	if (w->pending_admissions >= (size_t)w->e->cfg.queue)
		return http_respond_error(req, 429, "admission_queue_full", NULL,
					  "too many admissions waiting for the journal; retry");
	if (!redis_up(&w->redis))
		return http_respond_error(req, 503, "journal_unavailable", NULL,
					  "the journal (Redis) is not reachable; nothing was admitted");
	struct keyring *kr = engine_keyring(w->e);
	struct warning_arena arena;
	struct admit_result res;
	warning_arena_init(&arena, WARNING_ARENA_CAP);
	admit_check(kr, req->body, req->body_len, loop_wall_s(), w->e->cfg.sent_window_s, &arena,
		    &res);
	keyring_unref(kr);
	if (res.status) {
		w->stats.rejected++;
		log_info("msg=\"warning rejected\" status=%d error=%s field=%s reason=\"%s\"",
			 res.status, res.error, res.field, res.reason);
		audit_reject(w, NULL, res.status, res.error, res.field, res.reason);
		http_respond_error(req, res.status, res.error, res.field[0] ? res.field : NULL,
				   res.reason);
	} else {
		admit_targets(w, req, &res);
	}
	warning_arena_release(&arena);
}

/*
 * The warning's summary, decoded from its journalled envelope. Built here,
 * when somebody asks, rather than at admission: admissions are the hot path.
 */
static json_t *envelope_summary(const uint8_t *env, size_t len)
{
	struct warning_arena arena;
	const char *why;
	json_t *j = NULL;
	warning_arena_init(&arena, WARNING_ARENA_CAP);
	Tocsin__SignedWarning *sw = signed_warning_decode(&arena, env, len, &why);
	Tocsin__Warning *w = sw ? warning_decode(&arena, sw->payload.data, sw->payload.len, &why)
				: NULL;
	char *s = w ? admit_summary_json(w, sw->key_id) : NULL;
	if (s)
		j = json_loads(s, 0, NULL);
	free(s);
	warning_arena_release(&arena);
	return j;
}

static void on_record(void *arg, redisReply *r)
{
	struct http_request *req = arg;
	if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4)
		return http_respond_error(req, 503, "journal_unavailable", NULL,
					  "the journal (Redis) is not reachable");
	if (r->element[0]->type != REDIS_REPLY_STRING)
		return http_respond_error(req, 404, "not_found", NULL, "no such warning");
	json_t *warning = envelope_summary((const uint8_t *)r->element[0]->str, r->element[0]->len);
	json_t *o = json_object();
	json_object_set(o, "id", json_object_get(warning, "id"));
	if (r->element[1]->type == REDIS_REPLY_STRING)
		json_object_set_new(o, "state", json_string(r->element[1]->str));
	if (r->element[2]->type == REDIS_REPLY_STRING)
		json_object_set_new(o, "admitted_at",
				    json_integer(strtoll(r->element[2]->str, NULL, 10)));
	json_object_set_new(o, "warning", warning ? warning : json_null());
	json_t *cov = r->element[3]->type == REDIS_REPLY_STRING
			      ? json_loadb(r->element[3]->str, r->element[3]->len, 0, NULL)
			      : NULL;
	json_object_set_new(o, "coverage", cov ? cov : json_null());
	respond_json(req, 200, o, NULL);
}

/* Prometheus text: the workers' admission counters and the dispatcher's snapshot. */
static void metrics(struct worker *w, struct http_request *req)
{
	struct buf b = {0};
	char line[1024];
	static const char *names[] = {"accepted", "requests", "admitted", "replayed", "rejected"};
	int n = snprintf(line, sizeof(line), "# HELP tocsin_http_total HTTP connections, requests "
			 "and admission outcomes.\n# TYPE tocsin_http_total counter\n");
	buf_append(&b, line, (size_t)n, 1u << 20);
	for (int k = 0; k < 5; k++) {
		uint64_t sum = 0;
		for (int i = 0; i < w->e->n_workers; i++) {
			const uint64_t *v = &w->e->workers[i].stats.accepted;
			sum += __atomic_load_n(&v[k], __ATOMIC_RELAXED);
		}
		n = snprintf(line, sizeof(line), "tocsin_http_total{event=\"%s\"} %llu\n", names[k],
			     (unsigned long long)sum);
		if (n > 0 && (size_t)n < sizeof(line))
			buf_append(&b, line, (size_t)n, 1u << 20);
	}
	uint64_t subs = 0, dropped = 0;
	for (int i = 0; i < w->e->n_workers; i++) {
		subs += __atomic_load_n(&w->e->workers[i].stats.sse_subscribers, __ATOMIC_RELAXED);
		dropped += __atomic_load_n(&w->e->workers[i].stats.sse_dropped, __ATOMIC_RELAXED);
	}
	n = snprintf(line, sizeof(line), "# HELP tocsin_events_subscribers Open event streams.\n"
		     "# TYPE tocsin_events_subscribers gauge\ntocsin_events_subscribers %llu\n"
		     "# HELP tocsin_events_dropped_total Event streams cut off for not reading.\n"
		     "# TYPE tocsin_events_dropped_total counter\ntocsin_events_dropped_total %llu\n",
		     (unsigned long long)subs, (unsigned long long)dropped);
	buf_append(&b, line, (size_t)n, 1u << 20);
	char *d = w->e->dispatcher ? dispatch_metrics(w->e->dispatcher) : NULL;
	if (d)
		buf_append(&b, d, strlen(d), 64u << 20);
	free(d);
	http_respond(req, 200, "text/plain; version=0.0.4", NULL, (const char *)b.data, b.len);
	buf_release(&b);
}

static void get_warning(struct worker *w, struct http_request *req, const char *id)
{
	if (!warning_id_valid(id, strlen(id)))
		return http_respond_error(req, 404, "not_found", "id", "not a warning identifier");
	if (journal_get(&w->redis, w->e->cfg.prefix, id, on_record, req) < 0)
		http_respond_error(req, 503, "journal_unavailable", NULL,
				   "the journal (Redis) is not reachable");
}

static void healthz(struct worker *w, struct http_request *req)
{
	bool up = redis_up(&w->redis);
	json_t *o = json_object();
	json_object_set_new(o, "status", json_string(up ? "ok" : "degraded"));
	json_object_set_new(o, "redis", json_string(up ? "up" : "down"));
	json_object_set_new(o, "worker", json_integer(w->index));
	respond_json(req, up ? 200 : 503, o, NULL);
}

/* An operator credential never submits a warning (dashboard.h: separation of duties). */
static void post_warning_guarded(struct worker *w, struct http_request *req)
{
	if (dashboard_operator_credential(w, req)) {
		w->stats.rejected++;
		audit_reject(w, NULL, 403, "operator_credential", "authorization",
			     "operator credential on a submission");
		return http_respond_error(req, 403, "operator_credential", "authorization",
					  "operator credentials cannot submit warnings; a warning "
					  "needs a bureau's signature (separation of duties)");
	}
	post_warning(w, req);
}

static void status(struct worker *w, struct http_request *req)
{
	char *st = w->e->dispatcher ? dispatch_status(w->e->dispatcher) : NULL;
	if (!st)
		return http_respond_error(req, 503, "no_dispatcher", NULL,
					  "dispatching is off or not ready yet");
	http_respond(req, 200, "application/json", NULL, st, strlen(st));
	free(st);
}

typedef void (*route_fn)(struct worker *w, struct http_request *req);

/* GET-only operator views, behind the operator guard. */
static void operator_view(struct worker *w, struct http_request *req, route_fn fn)
{
	if (strcmp(req->method, "GET"))
		return http_respond_error(req, 405, "method_not_allowed", NULL, "use GET");
	if (dashboard_authorize(w, req))
		fn(w, req);
}

static void get_warning_route(struct worker *w, struct http_request *req)
{
	char path[sizeof(req->path)];
	snprintf(path, sizeof(path), "%.*s", (int)strcspn(req->path, "?"), req->path);
	get_warning(w, req, path + 13);
}

static void events_route(struct worker *w, struct http_request *req)
{
	events_subscribe(w->events, req);
}

void api_handle(struct worker *w, struct http_request *req)
{
	char path[sizeof(req->path)];
	snprintf(path, sizeof(path), "%.*s", (int)strcspn(req->path, "?"), req->path);
	if (!strcmp(path, "/v1/warnings")) {
		if (strcmp(req->method, "POST"))
			return http_respond_error(req, 405, "method_not_allowed", NULL, "use POST");
		return post_warning_guarded(w, req);
	}
	if (!strncmp(path, "/v1/warnings/", 13))
		return operator_view(w, req, get_warning_route);
	if (!strcmp(path, "/v1/receipts")) { /* from apps: no operator credential */
		if (strcmp(req->method, "POST"))
			return http_respond_error(req, 405, "method_not_allowed", NULL, "use POST");
		return receipts_post(w, req);
	}
	if (!strcmp(path, "/v1/status"))
		return operator_view(w, req, status);
	if (!strcmp(path, "/v1/events"))
		return operator_view(w, req, events_route);
	if (!strcmp(path, "/metrics"))
		return operator_view(w, req, metrics);
	if (!strcmp(path, "/healthz")) {
		if (strcmp(req->method, "GET"))
			return http_respond_error(req, 405, "method_not_allowed", NULL, "use GET");
		return healthz(w, req);
	}
	if (dashboard_serve(w, req, path))
		return;
	http_respond_error(req, 404, "not_found", NULL, "no such resource");
}
