/*
 * tests/integration/test_push.c: the push adapter end to end, on a real
 * io_uring loop, against bench/push_sim (h2c and TLS), a private
 * redis-server, and node's http2 module as an independent peer.
 *
 * A fake lane_host records every report; each scenario asserts that every
 * delivery got exactly one report, that the outcome counts equal the
 * simulator's own counters, and that nothing was accepted twice.
 *
 * usage: test_push PUSH_SIM NODE_SCRIPT   (exit 77 when node is missing)
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "adapters.h"
#include "campaign.h"
#include "loop.h"
#include "warning.pb-c.h"

#define CHECK(c)                                                                   \
	do {                                                                       \
		if (!(c)) {                                                        \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c); \
			failures++;                                                \
		}                                                                  \
	} while (0)

static int failures;
static char dir[256];

/*
 * The wall clock the adapter sees (push.c and push_jwt.c call
 * loop_wall_s()): the real one plus clock_offset_s. The test is linked
 * with -Wl,--wrap=loop_wall_s, so the JWT refresh policy can be driven
 * across 20 minutes in a second.
 */
static int64_t clock_offset_s;
int64_t __real_loop_wall_s(void);
int64_t __wrap_loop_wall_s(void);
int64_t __wrap_loop_wall_s(void)
{
	return __real_loop_wall_s() + clock_offset_s;
}

struct rec {
	unsigned reports[6], ups, downs, dup_reports;
	uint32_t last_retry_ms, min_retry_ms, max_retry_ms;
	unsigned char *seen; /* per delivery id */
	size_t n;
};

static void on_report(void *ctx, struct delivery *d, enum outcome o, const char *reason,
		      uint32_t retry_ms)
{
	struct rec *r = ctx;
	if (d->id < r->n && r->seen[d->id]++)
		r->dup_reports++;
	r->reports[o]++;
	if (o == OUTCOME_THROTTLED) {
		r->last_retry_ms = retry_ms;
		if (!r->min_retry_ms || retry_ms < r->min_retry_ms)
			r->min_retry_ms = retry_ms;
		if (retry_ms > r->max_retry_ms)
			r->max_retry_ms = retry_ms;
	}
}

static void on_receipt(void *ctx, uint64_t id, enum outcome o, const char *reason)
{
}

static void on_up(void *ctx, struct lane *l, bool up, const char *why)
{
	struct rec *r = ctx;
	if (up)
		r->ups++;
	else
		r->downs++;
}

static pid_t spawn(char *const argv[])
{
	pid_t pid = fork();
	if (pid == 0) {
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static int wait_port_file(const char *path)
{
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(path, "r");
		if (f) {
			int port = 0;
			if (fscanf(f, "%d", &port) != 1)
				port = 0;
			fclose(f);
			if (port)
				return port;
		}
		usleep(25000);
	}
	return 0;
}

static void write_keys(const char *key_path, const char *pub_path)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	FILE *f = fopen(key_path, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL); /* PKCS#8 */
	fclose(f);
	f = fopen(pub_path, "w");
	PEM_write_PUBKEY(f, k);
	fclose(f);
	EVP_PKEY_free(k);
}

static struct campaign *make_campaign(const char *id)
{
	Tocsin__Info info[2] = {TOCSIN__INFO__INIT, TOCSIN__INFO__INIT}, *infos[2] = {&info[0], &info[1]};
	Tocsin__Category cat = TOCSIN__CATEGORY__MET;
	const char *lang[2] = {"zh-CN", "en-US"}, *head[2] = {"台风红色预警", "Typhoon red warning"};
	const char *instr[2] = {"请立即撤离到安全地带。", "Evacuate to safe ground now."};
	for (int i = 0; i < 2; i++) {
		info[i].language = (char *)lang[i];
		info[i].n_category = 1;
		info[i].category = &cat;
		info[i].event = "typhoon";
		info[i].has_urgency = info[i].has_severity = info[i].has_certainty = 1;
		info[i].urgency = TOCSIN__URGENCY__IMMEDIATE;
		info[i].severity = TOCSIN__SEVERITY__EXTREME;
		info[i].certainty = TOCSIN__CERTAINTY__OBSERVED;
		info[i].has_expires = 1;
		info[i].expires = loop_wall_s() + 3600;
		info[i].headline = (char *)head[i];
		info[i].instruction = (char *)instr[i];
	}
	Tocsin__Warning w = TOCSIN__WARNING__INIT;
	w.identifier = (char *)id;
	w.sender = "test@tocsin";
	w.has_sent = w.has_status = w.has_msg_type = w.has_scope = w.has_colour = 1;
	w.sent = loop_wall_s();
	w.status = TOCSIN__STATUS__ACTUAL;
	w.msg_type = TOCSIN__MSG_TYPE__ALERT;
	w.scope = TOCSIN__SCOPE__PUBLIC;
	w.colour = TOCSIN__COLOUR__RED;
	w.n_info = 2;
	w.info = infos;
	uint8_t payload[8192], env[9000];
	size_t plen = tocsin__warning__pack(&w, payload);
	Tocsin__SignedWarning sw = TOCSIN__SIGNED_WARNING__INIT;
	sw.has_payload = sw.has_signature = 1;
	sw.payload = (ProtobufCBinaryData){plen, payload};
	sw.signature = (ProtobufCBinaryData){4, (uint8_t *)"sig!"};
	sw.key_id = "test-key";
	size_t elen = tocsin__signed_warning__pack(&sw, env);
	char err[256];
	struct campaign *c = campaign_new(env, elen, 0, loop_wall_s(), "【演练】", err, sizeof(err));
	if (!c)
		fprintf(stderr, "campaign_new: %s\n", err);
	return c;
}

struct kv {
	const char *k, *v;
};

static void set_cfg(struct config_lane *cfg, const struct kv *kv)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->name, sizeof(cfg->name), "push-test");
	for (; kv->k; kv++, cfg->n_kv++) {
		snprintf(cfg->kv[cfg->n_kv].key, sizeof(cfg->kv[0].key), "%s", kv->k);
		snprintf(cfg->kv[cfg->n_kv].value, sizeof(cfg->kv[0].value), "%s", kv->v);
	}
}

/* Token i: 64 hex digits; "dead00" / "bad000" inside for the chosen ones. */
static void make_token(char *out, size_t cap, const char *platform, size_t i, const char *mark)
{
	if (mark)
		snprintf(out, cap, "%s:%s%058zx", platform, mark, i);
	else
		snprintf(out, cap, "%s:%064zx", platform, i);
}

struct run {
	struct loop *loop;
	struct rec rec;
	struct lane lane;
	struct delivery *d;
	size_t n, submitted;
	bool open;
};

/* Open a lane that will take up to cap deliveries. */
static int open_lane(struct run *r, const struct kv *kv, size_t cap, const char *redis_addr)
{
	struct lane_host host = {.loop = r->loop, .redis = redis_addr, .prefix = "tt:",
				 .ctx = &r->rec, .report = on_report, .receipt = on_receipt, .up = on_up};
	struct config_lane cfg;
	char err[256];
	memset(&r->rec, 0, sizeof(r->rec));
	r->rec.seen = calloc(cap, 1);
	r->rec.n = cap;
	r->n = cap;
	r->d = calloc(cap, sizeof(*r->d));
	set_cfg(&cfg, kv);
	lane_init(&r->lane, "push-test", CHANNEL_APP, 0, 0, 100000, loop_now_ms(r->loop));
	if (adapter_push.open(&r->lane, &host, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "open: %s\n", err);
		failures++;
		lane_release(&r->lane);
		return -1;
	}
	r->open = true;
	for (int i = 0; i < 40 && redis_addr && r->rec.ups == 0; i++)
		loop_run_once(r->loop, 50); /* let the Redis client connect too */
	return 0;
}

static size_t reported(const struct run *r)
{
	size_t total = 0;
	for (int o = 0; o < 6; o++)
		total += r->rec.reports[o];
	return total;
}

/* Submit n more deliveries (token i for delivery i) and run until all were reported (or 30 s). */
static void submit_wait(struct run *r, struct campaign *c, const char *platform, size_t n,
			bool (*mark)(size_t i, const char **m))
{
	size_t end = r->submitted + n;
	for (size_t i = r->submitted; i < end && i < r->n; i++) {
		char tok[128];
		const char *m = NULL;
		if (mark)
			mark(i, &m);
		make_token(tok, sizeof(tok), platform, i, m);
		r->d[i] = (struct delivery){.id = i, .campaign = c, .lane = &r->lane,
					    .address = strdup(tok), .lang = (uint8_t)(i % 2),
					    .channel = CHANNEL_APP, .attempts = 1};
		adapter_push.submit(&r->lane, &r->d[i]);
		r->submitted++;
	}
	uint64_t deadline = loop_now_ms(r->loop) + 30000;
	while (reported(r) < r->submitted && loop_now_ms(r->loop) < deadline)
		loop_run_once(r->loop, 50);
	CHECK(reported(r) == r->submitted);
	CHECK(r->rec.dup_reports == 0);
}

/* Open a lane, submit n deliveries, run until every one was reported (or 30 s). */
static int run_lane(struct run *r, struct campaign *c, const struct kv *kv, const char *platform,
		    size_t n, const char *redis_addr, bool (*mark)(size_t i, const char **m))
{
	if (open_lane(r, kv, n, redis_addr) < 0)
		return -1;
	submit_wait(r, c, platform, n, mark);
	return 0;
}

static void end_lane(struct run *r)
{
	if (r->open)
		adapter_push.close(&r->lane);
	for (int i = 0; i < 20; i++)
		loop_run_once(r->loop, 10); /* the two-phase close completes */
	for (size_t i = 0; i < r->submitted; i++)
		free(r->d[i].address);
	free(r->d);
	free(r->rec.seen);
	if (r->open)
		lane_release(&r->lane);
}

static json_t *sim_stats(pid_t pid, const char *path)
{
	unlink(path);
	kill(pid, SIGUSR1);
	for (int i = 0; i < 100; i++) {
		json_t *j = json_load_file(path, 0, NULL);
		if (j)
			return j;
		usleep(20000);
	}
	return NULL;
}

static void print_json(const char *what, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	printf("%s: %s\n", what, s ? s : "?");
	free(s);
}

static long long jint(json_t *j, const char *k)
{
	return json_integer_value(json_object_get(j, k));
}

static long long jstatus(json_t *j, const char *code)
{
	return json_integer_value(json_object_get(json_object_get(j, "status"), code));
}

static pid_t start_sim(const char *sim, const char *name, char *const extra[], int *port)
{
	char pf[300], stats[300];
	snprintf(pf, sizeof(pf), "%s/%s.port", dir, name);
	snprintf(stats, sizeof(stats), "%s/%s.json", dir, name);
	char *argv[40] = {(char *)sim, "--port", "0", "--port-file", pf, "--stats", stats};
	int n = 7;
	for (int i = 0; extra[i] && n < 38; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	pid_t pid = spawn(argv);
	*port = wait_port_file(pf);
	return pid;
}

static bool mark_apns(size_t i, const char **m)
{
	*m = i % 40 == 7 ? "dead00" : i % 50 == 9 ? "bad000" : NULL;
	return *m != NULL;
}

static char redis_sock[300];

static void redis_del(const char *key)
{
	redisContext *rc = redisConnectUnix(redis_sock);
	if (rc && !rc->err)
		freeReplyObject(redisCommand(rc, "DEL %s", key));
	redisFree(rc);
}

static long long redis_scard(const char *key)
{
	redisContext *rc = redisConnectUnix(redis_sock);
	if (!rc || rc->err)
		return -1;
	redisReply *rep = redisCommand(rc, "SCARD %s", key);
	long long n = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
	freeReplyObject(rep);
	redisFree(rc);
	return n;
}

/* APNs over h2c: JWT checked by the sim, dead and bad tokens, GOAWAY mid-run. */
static void scenario_apns(struct loop *loop, const char *sim, struct campaign *c)
{
	const size_t N = 2000;
	char pub[300], key[300], url[64], raddr[320], stats[300];
	snprintf(pub, sizeof(pub), "%s/apns.pub", dir);
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	snprintf(stats, sizeof(stats), "%s/apns.json", dir);
	int port;
	char *extra[] = {"--jwt-pubkey", pub, "--dead", "dead00", "--bad", "bad000",
			 "--goaway-after", "300", "--latency-ms", "2", "--max-streams", "64", NULL};
	pid_t pid = start_sim(sim, "apns", extra, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	snprintf(raddr, sizeof(raddr), "unix:%s", redis_sock);
	struct kv kv[] = {{"provider", "apns"}, {"url", url}, {"topic", "org.example.tocsin"},
			  {"team_id", "TEAM123456"}, {"key_id", "KEY1234567"}, {"key_file", key},
			  {"connections", "2"}, {"max_streams", "100"}, {NULL, NULL}};
	struct run r = {.loop = loop};
	size_t dead = 0;
	for (size_t i = 0; i < N; i++) {
		const char *m;
		dead += mark_apns(i, &m);
	}
	uint64_t t0 = loop_now_ms(loop);
	if (run_lane(&r, c, kv, "apns", N, raddr, mark_apns) == 0) {
		printf("apns: %zu deliveries in %llu ms (h2c, 2 connections, 6 GOAWAYs, JWT checked)\n", N,
		       (unsigned long long)(loop_now_ms(loop) - t0));
		long long scard = -1;
		for (int i = 0; i < 100 && scard != (long long)dead; i++) {
			loop_run_once(loop, 20); /* the last SADDs are on their way */
			scard = redis_scard("tt:dead:tokens");
		}
		json_t *j = sim_stats(pid, stats);
		CHECK(j != NULL);
		printf("apns: accepted=%u permanent=%u transient=%u ups=%u downs=%u\n",
		       r.rec.reports[OUTCOME_ACCEPTED], r.rec.reports[OUTCOME_PERMANENT],
		       r.rec.reports[OUTCOME_TRANSIENT], r.rec.ups, r.rec.downs);
		print_json("apns sim", j);
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] == N - dead);
		CHECK(r.rec.reports[OUTCOME_PERMANENT] == dead);
		CHECK(j && jstatus(j, "200") == (long long)(N - dead));
		CHECK(j && jint(j, "accepted_duplicates") == 0);
		CHECK(j && jint(j, "unique_tokens") == (long long)N);
		CHECK(j && jint(j, "jwt_bad") == 0);
		CHECK(j && jint(j, "goaways") >= 1);
		CHECK(j && jint(j, "max_concurrent") <= 64); /* the peer's limit under our 100 */
		CHECK(j && jint(j, "requests") == (long long)N); /* refused streams were never processed */
		CHECK(j && jint(j, "collapse_ids") == 1);
		CHECK(r.rec.ups >= 1);
		CHECK(j && jint(j, "connections") > 2); /* new connections after each GOAWAY */
		CHECK(scard == (long long)dead);
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

/* FCM over h2c above the sim's rate: 429 → THROTTLED with Retry-After. */
static void scenario_fcm(struct loop *loop, const char *sim, struct campaign *c)
{
	const size_t N = 600;
	char tokf[300], url[64], stats[300];
	snprintf(tokf, sizeof(tokf), "%s/fcm.token", dir);
	snprintf(stats, sizeof(stats), "%s/fcm.json", dir);
	FILE *f = fopen(tokf, "w");
	fputs("ya29.test-bearer\n", f);
	fclose(f);
	int port;
	char *extra[] = {"--bearer", "ya29.test-bearer", "--rate", "200", NULL};
	pid_t pid = start_sim(sim, "fcm", extra, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {{"provider", "fcm"}, {"url", url}, {"project", "tocsin-test"},
			  {"token_file", tokf}, {NULL, NULL}};
	struct run r = {.loop = loop};
	if (run_lane(&r, c, kv, "fcm", N, NULL, NULL) == 0) {
		json_t *j = sim_stats(pid, stats);
		printf("fcm: accepted=%u throttled=%u retry_ms=%u\n", r.rec.reports[OUTCOME_ACCEPTED],
		       r.rec.reports[OUTCOME_THROTTLED], r.rec.last_retry_ms);
		CHECK(r.rec.reports[OUTCOME_THROTTLED] > 0);
		CHECK(r.rec.last_retry_ms == 1000);
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] + r.rec.reports[OUTCOME_THROTTLED] == N);
		CHECK(j && jstatus(j, "429") == r.rec.reports[OUTCOME_THROTTLED]);
		CHECK(j && jint(j, "bearer_bad") == 0);
		CHECK(j && jint(j, "fcm") == (long long)N);
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

/* APNs over TLS (ALPN h2, verified against the test CA = the self-signed cert). */
static void scenario_tls(struct loop *loop, const char *sim, struct campaign *c)
{
	char cert[300], key[300], cmd[1024], url[64], pkey[300];
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/cert.key", dir);
	snprintf(pkey, sizeof(pkey), "%s/apns.p8", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
		 "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout %s -out %s "
		 ">/dev/null 2>&1", key, cert);
	if (system(cmd) != 0) {
		printf("tls: skipped (openssl CLI failed)\n");
		return;
	}
	int port;
	char *extra[] = {"--cert", cert, "--key", key, NULL};
	pid_t pid = start_sim(sim, "tls", extra, &port);
	snprintf(url, sizeof(url), "https://localhost:%d", port);
	struct kv kv[] = {{"provider", "apns"}, {"url", url}, {"topic", "org.example.tocsin"},
			  {"team_id", "TEAM123456"}, {"key_id", "KEY1234567"}, {"key_file", pkey},
			  {"ca_file", cert}, {NULL, NULL}};
	struct run r = {.loop = loop};
	if (run_lane(&r, c, kv, "apns", 300, NULL, NULL) == 0) {
		printf("tls: accepted=%u\n", r.rec.reports[OUTCOME_ACCEPTED]);
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] == 300);
	}
	end_lane(&r);
	stop(pid);
}

/* node's http2 server as an independent peer: headers and the JWT as it sees them. */
static void scenario_node(struct loop *loop, const char *script, struct campaign *c)
{
	char pf[300], out[300], pub[300], key[300], url[64];
	snprintf(pf, sizeof(pf), "%s/node.port", dir);
	snprintf(out, sizeof(out), "%s/node.out", dir);
	snprintf(pub, sizeof(pub), "%s/apns.pub", dir);
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	char *argv[] = {"node", (char *)script, pf, out, pub, NULL};
	pid_t pid = spawn(argv);
	int port = wait_port_file(pf);
	CHECK(port > 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {{"provider", "apns"}, {"url", url}, {"topic", "org.example.tocsin"},
			  {"team_id", "TEAM123456"}, {"key_id", "KEY1234567"}, {"key_file", key},
			  {"connections", "1"}, {NULL, NULL}};
	struct run r = {.loop = loop};
	if (run_lane(&r, c, kv, "apns", 4, NULL, NULL) == 0) {
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] == 4);
		json_error_t e;
		json_t *j = json_load_file(out, JSON_DISABLE_EOF_CHECK, &e); /* the first line */
		CHECK(j != NULL);
		const char *want[][2] = {{"method", "POST"}, {"topic", "org.example.tocsin"},
					 {"collapse", "CN-TEST-0001"}, {"priority", "10"},
					 {"pushType", "alert"}, {"authScheme", "bearer"}};
		for (size_t i = 0; j && i < sizeof(want) / sizeof(want[0]); i++) {
			const char *v = json_string_value(json_object_get(j, want[i][0]));
			if (!v || strcmp(v, want[i][1])) {
				fprintf(stderr, "node saw %s=%s, want %s\n", want[i][0], v ? v : "(none)", want[i][1]);
				failures++;
			}
		}
		CHECK(j && json_is_true(json_object_get(j, "jwtOk")));
		json_t *claims = j ? json_object_get(j, "jwtClaims") : NULL;
		CHECK(claims && !strcmp(json_string_value(json_object_get(claims, "iss")), "TEAM123456"));
		json_t *aps = j ? json_object_get(json_object_get(j, "payload"), "aps") : NULL;
		CHECK(aps && !strcmp(json_string_value(json_object_get(aps, "interruption-level")), "critical"));
		print_json("node saw", j);
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

static bool mark_dead(size_t i, const char **m)
{
	*m = i % 40 == 7 ? "dead00" : NULL;
	return *m != NULL;
}

static size_t count_marked(size_t n, bool (*mark)(size_t i, const char **m), const char *which)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *m = NULL;
		k += mark(i, &m) && (!which || !strcmp(m, which));
	}
	return k;
}

#define APNS_KV(url, key)                                                                       \
	{"provider", "apns"}, {"url", url}, {"topic", "org.example.tocsin"},                      \
		{"team_id", "TEAM123456"}, {"key_id", "KEY1234567"}, {"key_file", key}

/* A self-signed certificate for localhost, which the lanes trust as their CA. */
static bool make_cert(char *cert, char *key)
{
	char cmd[1024];
	snprintf(cert, 300, "%s/cert.pem", dir);
	snprintf(key, 300, "%s/cert.key", dir);
	if (access(cert, R_OK) == 0)
		return true;
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
		 "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout %s -out %s "
		 ">/dev/null 2>&1", key, cert);
	return system(cmd) == 0;
}

/*
 * The sim lowers SETTINGS_MAX_CONCURRENT_STREAMS to 1 on a connection after
 * its first error answer (dead tokens). From the client's SETTINGS ACK on,
 * the sim must never see a second stream open on that connection; nothing
 * is lost or sent twice. Before that, the peer's 64 caps our 100.
 */
static void scenario_lowered(struct loop *loop, const char *sim, struct campaign *c)
{
	const size_t N = 600, dead = count_marked(N, mark_dead, NULL);
	char pub[300], key[300], url[64], stats[300];
	snprintf(pub, sizeof(pub), "%s/apns.pub", dir);
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	snprintf(stats, sizeof(stats), "%s/lowered.json", dir);
	int port;
	char *extra[] = {"--jwt-pubkey", pub, "--dead", "dead00", "--lower-streams-on-error",
			 "--latency-ms", "1", "--max-streams", "64", NULL};
	pid_t pid = start_sim(sim, "lowered", extra, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {APNS_KV(url, key), {"connections", "2"}, {"max_streams", "100"}, {NULL, NULL}};
	struct run r = {.loop = loop};
	if (run_lane(&r, c, kv, "apns", N, NULL, mark_dead) == 0) {
		json_t *j = sim_stats(pid, stats);
		print_json("lowered sim", j);
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] == N - dead);
		CHECK(r.rec.reports[OUTCOME_PERMANENT] == dead);
		CHECK(j && jint(j, "lowered") >= 1);
		CHECK(j && jint(j, "max_concurrent_lowered") == 1);
		CHECK(j && jint(j, "max_concurrent") > 1 && jint(j, "max_concurrent") <= 64);
		CHECK(j && jint(j, "requests") == (long long)N); /* none refused, none doubled */
		CHECK(j && jstatus(j, "200") == (long long)(N - dead));
		CHECK(j && jstatus(j, "410") == (long long)dead);
		CHECK(j && jint(j, "accepted_duplicates") == 0);
		CHECK(j && jint(j, "lost") == 0);
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

/*
 * Connections start at 1 stream and are raised to 64 after the first 200
 * (APNs has been reported to start that way): the adapter must keep to 1,
 * then use the room as soon as the new SETTINGS arrives.
 */
static void scenario_raised(struct loop *loop, const char *sim, struct campaign *c)
{
	const size_t N = 400;
	char key[300], url[64], stats[300];
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	snprintf(stats, sizeof(stats), "%s/raised.json", dir);
	int port;
	char *extra[] = {"--start-streams", "1", "--max-streams", "64", "--latency-ms", "20", NULL};
	pid_t pid = start_sim(sim, "raised", extra, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {APNS_KV(url, key), {"connections", "1"}, {NULL, NULL}};
	struct run r = {.loop = loop};
	uint64_t t0 = loop_now_ms(loop);
	if (run_lane(&r, c, kv, "apns", N, NULL, NULL) == 0) {
		json_t *j = sim_stats(pid, stats);
		printf("raised: %zu deliveries in %llu ms at 20 ms latency\n", N,
		       (unsigned long long)(loop_now_ms(loop) - t0));
		print_json("raised sim", j);
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] == N);
		CHECK(j && jint(j, "max_concurrent") > 1 && jint(j, "max_concurrent") <= 64);
		CHECK(j && jint(j, "requests") == (long long)N);
		CHECK(j && jint(j, "max_concurrent_lowered") == 1); /* 1 until the raise */
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

/*
 * The sink drops each connection after 200 complete requests, with up to 63
 * more in flight and no GOAWAY: FIN over h2c, RST over TLS. The adapter
 * reconnects and resends what was in flight. Every delivery gets exactly
 * one report and every token is accepted by the sink. The sink received
 * N + (requests it never answered) + (answers that died with the
 * connection): both kinds were resent, since the adapter cannot tell them
 * apart. A FIN loses no answer, so there the sink answered exactly N; an
 * RST discards what the sink's kernel had not sent yet, so a token may be
 * accepted twice (harmless: same apns-collapse-id), never zero times.
 */
static void scenario_conn_loss(struct loop *loop, const char *sim, struct campaign *c, bool rst)
{
	const size_t N = 1500, dead = count_marked(N, mark_dead, NULL);
	const char *name = rst ? "reset" : "drop";
	char pub[300], key[300], url[64], stats[300], raddr[320], cert[300], ckey[300];
	snprintf(pub, sizeof(pub), "%s/apns.pub", dir);
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	snprintf(stats, sizeof(stats), "%s/%s.json", dir, name);
	snprintf(raddr, sizeof(raddr), "unix:%s", redis_sock);
	if (rst && !make_cert(cert, ckey)) {
		printf("%s: skipped (openssl CLI failed)\n", name);
		return;
	}
	int port;
	char *extra[] = {"--jwt-pubkey", pub, "--dead", "dead00", rst ? "--reset-after" : "--drop-after",
			 "200", "--latency-ms", "5", "--max-streams", "64",
			 rst ? "--cert" : NULL, cert, "--key", ckey, NULL};
	pid_t pid = start_sim(sim, name, extra, &port);
	snprintf(url, sizeof(url), "%s://%s:%d", rst ? "https" : "http",
		 rst ? "localhost" : "127.0.0.1", port);
	struct kv kv[] = {APNS_KV(url, key), {"connections", "2"}, {"max_streams", "100"},
			  {"ca_file", rst ? cert : "-"}, {NULL, NULL}};
	redis_del("tt:dead:tokens");
	struct run r = {.loop = loop};
	uint64_t t0 = loop_now_ms(loop);
	if (run_lane(&r, c, kv, "apns", N, raddr, mark_dead) == 0) {
		long long scard = -1;
		for (int i = 0; i < 100 && scard != (long long)dead; i++) {
			loop_run_once(loop, 20);
			scard = redis_scard("tt:dead:tokens");
		}
		json_t *j = sim_stats(pid, stats);
		printf("%s: %zu deliveries in %llu ms; accepted=%u permanent=%u transient=%u\n", name, N,
		       (unsigned long long)(loop_now_ms(loop) - t0), r.rec.reports[OUTCOME_ACCEPTED],
		       r.rec.reports[OUTCOME_PERMANENT], r.rec.reports[OUTCOME_TRANSIENT]);
		print_json(name, j);
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] == N - dead);
		CHECK(r.rec.reports[OUTCOME_PERMANENT] == dead);
		CHECK(r.rec.reports[OUTCOME_TRANSIENT] == 0);
		CHECK(j && jint(j, "drops") >= 2);
		CHECK(j && jint(j, "lost") >= 1);
		long long answered = j ? jstatus(j, "200") + jstatus(j, "410") : -1;
		printf("%s: %lld requests never answered and %lld answers lost with the connection, "
		       "all resent\n", name, j ? jint(j, "lost") : -1, answered - (long long)N);
		CHECK(j && jint(j, "requests") == answered + jint(j, "lost"));
		CHECK(j && answered >= (long long)N && answered - (long long)N <= 64 * jint(j, "drops"));
		CHECK(rst || answered == (long long)N);
		CHECK(j && jstatus(j, "200") - jint(j, "accepted_duplicates") == (long long)(N - dead));
		CHECK(j && jint(j, "accepted_tokens") == (long long)(N - dead));
		CHECK(j && jint(j, "unique_tokens") == (long long)N);
		CHECK(j && jint(j, "collapse_total") == jint(j, "requests")); /* every copy collapses */
		CHECK(j && jint(j, "jwt_bad") == 0);
		CHECK(scard == (long long)dead);
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

/*
 * A sink that drops every connection after its first request, before
 * answering: each request is sent 1 + 2 times (PUSH_LOST_RESENDS), then
 * reported TRANSIENT for the dispatcher to retry later; never accepted.
 */
static void scenario_conn_loss_cap(struct loop *loop, const char *sim, struct campaign *c)
{
	const size_t N = 5;
	char key[300], url[64], stats[300];
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	snprintf(stats, sizeof(stats), "%s/poison.json", dir);
	int port;
	char *extra[] = {"--drop-after", "1", "--latency-ms", "200", NULL};
	pid_t pid = start_sim(sim, "poison", extra, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {APNS_KV(url, key), {"connections", "1"}, {NULL, NULL}};
	struct run r = {.loop = loop};
	if (run_lane(&r, c, kv, "apns", N, NULL, NULL) == 0) {
		json_t *j = sim_stats(pid, stats);
		print_json("poison sim", j);
		CHECK(r.rec.reports[OUTCOME_TRANSIENT] == N);
		CHECK(j && jint(j, "requests") == jint(j, "lost"));
		CHECK(j && jint(j, "requests") >= 3 && jint(j, "requests") <= 3 * (long long)N);
		CHECK(j && jint(j, "drops") >= 3);
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

/*
 * Every APNs answer class from a mix: 503 and 429 → THROTTLED with the
 * sink's Retry-After, 500 → TRANSIENT, 200 → ACCEPTED; the counts equal
 * the sink's own.
 */
static void scenario_apns_mix(struct loop *loop, const char *sim, struct campaign *c)
{
	const size_t N = 500;
	char key[300], url[64], stats[300];
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	snprintf(stats, sizeof(stats), "%s/mix.json", dir);
	int port;
	char *extra[] = {"--mix", "503=6,500=6,429=4", "--retry-after", "7", "--latency-ms", "1", NULL};
	pid_t pid = start_sim(sim, "mix", extra, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {APNS_KV(url, key), {NULL, NULL}};
	struct run r = {.loop = loop};
	if (run_lane(&r, c, kv, "apns", N, NULL, NULL) == 0) {
		json_t *j = sim_stats(pid, stats);
		print_json("mix sim", j);
		long long s200 = j ? jstatus(j, "200") : -1, s429 = j ? jstatus(j, "429") : -1,
			  s500 = j ? jstatus(j, "500") : -1, s503 = j ? jstatus(j, "503") : -1;
		CHECK(s429 > 0 && s500 > 0 && s503 > 0);
		CHECK(s200 + s429 + s500 + s503 == (long long)N);
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] == s200);
		CHECK(r.rec.reports[OUTCOME_THROTTLED] == s429 + s503);
		CHECK(r.rec.reports[OUTCOME_TRANSIENT] == s500);
		CHECK(r.rec.min_retry_ms == 7000 && r.rec.max_retry_ms == 7000);
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

/* FCM: 404 UNREGISTERED and 400 INVALID_ARGUMENT (token) are dead tokens; 503, 500 from a mix. */
static void scenario_fcm_answers(struct loop *loop, const char *sim, struct campaign *c)
{
	const size_t N = 400, dead = count_marked(N, mark_apns, "dead00"),
		     bad = count_marked(N, mark_apns, "bad000");
	char tokf[300], url[64], stats[300], raddr[320];
	snprintf(tokf, sizeof(tokf), "%s/fcm2.token", dir);
	snprintf(stats, sizeof(stats), "%s/fcm2.json", dir);
	snprintf(raddr, sizeof(raddr), "unix:%s", redis_sock);
	FILE *f = fopen(tokf, "w");
	fputs("ya29.second-bearer\n", f);
	fclose(f);
	int port;
	char *extra[] = {"--bearer", "ya29.second-bearer", "--dead", "dead00", "--bad", "bad000",
			 "--mix", "503=5,500=5", "--retry-after", "3", NULL};
	pid_t pid = start_sim(sim, "fcm2", extra, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {{"provider", "fcm"}, {"url", url}, {"project", "tocsin-test"},
			  {"token_file", tokf}, {NULL, NULL}};
	redis_del("tt:dead:tokens");
	struct run r = {.loop = loop};
	if (run_lane(&r, c, kv, "fcm", N, raddr, mark_apns) == 0) {
		long long scard = -1;
		for (int i = 0; i < 100 && scard != (long long)(dead + bad); i++) {
			loop_run_once(loop, 20);
			scard = redis_scard("tt:dead:tokens");
		}
		json_t *j = sim_stats(pid, stats);
		print_json("fcm answers sim", j);
		CHECK(j && jstatus(j, "404") == (long long)dead);
		CHECK(j && jstatus(j, "400") == (long long)bad);
		CHECK(j && jstatus(j, "503") > 0 && jstatus(j, "500") > 0);
		CHECK(r.rec.reports[OUTCOME_PERMANENT] == dead + bad);
		CHECK(scard == (long long)(dead + bad));
		CHECK(j && r.rec.reports[OUTCOME_ACCEPTED] == jstatus(j, "200"));
		CHECK(j && r.rec.reports[OUTCOME_THROTTLED] == jstatus(j, "503"));
		CHECK(j && r.rec.reports[OUTCOME_TRANSIENT] == jstatus(j, "500"));
		CHECK(r.rec.min_retry_ms == 3000 && r.rec.max_retry_ms == 3000);
		CHECK(j && jint(j, "bearer_bad") == 0);
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

/* Webhook: the JSON rendering to a configured path; 410 marks the token dead; 503 throttles. */
static void scenario_webhook(struct loop *loop, const char *sim, struct campaign *c)
{
	const size_t N = 300, dead = count_marked(N, mark_dead, NULL);
	char url[64], stats[300], raddr[320];
	snprintf(stats, sizeof(stats), "%s/webhook.json", dir);
	snprintf(raddr, sizeof(raddr), "unix:%s", redis_sock);
	int port;
	char *extra[] = {"--dead", "dead00", "--mix", "503=10", "--retry-after", "2", NULL};
	pid_t pid = start_sim(sim, "webhook", extra, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {{"provider", "webhook"}, {"url", url}, {"path", "/hooks/tocsin"}, {NULL, NULL}};
	redis_del("tt:dead:tokens");
	struct run r = {.loop = loop};
	if (run_lane(&r, c, kv, "webhook", N, raddr, mark_dead) == 0) {
		long long scard = -1;
		for (int i = 0; i < 100 && scard != (long long)dead; i++) {
			loop_run_once(loop, 20);
			scard = redis_scard("tt:dead:tokens");
		}
		json_t *j = sim_stats(pid, stats);
		print_json("webhook sim", j);
		CHECK(j && jint(j, "other") == (long long)N);
		CHECK(j && jint(j, "unique_tokens") == (long long)N);
		CHECK(j && jstatus(j, "410") == (long long)dead);
		CHECK(j && jstatus(j, "503") > 0);
		CHECK(r.rec.reports[OUTCOME_PERMANENT] == dead);
		CHECK(scard == (long long)dead);
		CHECK(j && r.rec.reports[OUTCOME_ACCEPTED] == jstatus(j, "200"));
		CHECK(j && r.rec.reports[OUTCOME_THROTTLED] == jstatus(j, "503"));
		CHECK(r.rec.min_retry_ms == 2000 && r.rec.max_retry_ms == 2000);
		json_decref(j);
	}
	end_lane(&r);
	stop(pid);
}

/*
 * 403 ExpiredProviderToken (the sim refuses JWTs older than 10 minutes by
 * its own clock). With the adapter's clock 1300 s behind, its token is
 * signed "1300 s ago": the 403 comes for a token the adapter thinks brand
 * new, so it is not re-signed (never more often than every 20 minutes) and
 * the delivery is TRANSIENT. With the clock back, the same token is 21:40
 * old: the first 403 re-signs it once, every rejected request is resent
 * once, and all are accepted; the sim saw exactly two distinct JWTs.
 */
static void scenario_jwt_refresh(struct loop *loop, const char *sim, struct campaign *c)
{
	const size_t N = 50;
	char pub[300], key[300], url[64], stats[300];
	snprintf(pub, sizeof(pub), "%s/apns.pub", dir);
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	snprintf(stats, sizeof(stats), "%s/jwt.json", dir);
	int port;
	char *extra[] = {"--jwt-pubkey", pub, "--jwt-max-age", "600", "--latency-ms", "1", NULL};
	pid_t pid = start_sim(sim, "jwt", extra, &port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {APNS_KV(url, key), {"connections", "1"}, {"jwt_refresh_s", "3300"}, {NULL, NULL}};
	struct run r = {.loop = loop};
	clock_offset_s = -1300;
	if (open_lane(&r, kv, N + 1, NULL) == 0) {
		submit_wait(&r, c, "apns", 1, NULL);
		json_t *j = sim_stats(pid, stats);
		print_json("jwt sim, young token", j);
		CHECK(r.rec.reports[OUTCOME_TRANSIENT] == 1);
		CHECK(j && jstatus(j, "403") == 1 && jint(j, "jwts") == 1 && jint(j, "requests") == 1);
		json_decref(j);
		clock_offset_s = 0;
		submit_wait(&r, c, "apns", N, NULL);
		j = sim_stats(pid, stats);
		print_json("jwt sim, 21:40 later", j);
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] == N);
		CHECK(r.rec.reports[OUTCOME_TRANSIENT] == 1);
		CHECK(j && jint(j, "jwts") == 2); /* re-signed exactly once */
		CHECK(j && jstatus(j, "200") == (long long)N);
		CHECK(j && jstatus(j, "403") >= 2 && jstatus(j, "403") <= (long long)N + 1);
		CHECK(j && jint(j, "requests") == jstatus(j, "403") + (long long)N);
		CHECK(j && jint(j, "jwt_bad") == 0);
		json_decref(j);
	}
	clock_offset_s = 0;
	end_lane(&r);
	stop(pid);
}

/*
 * node's http2 module as a strict provider: it lowers MAX_CONCURRENT_STREAMS
 * to 1 after a connection's first request and closes each connection
 * gracefully (GOAWAY) after 25 requests. Checked on node's side: never a
 * second stream after the ACK, every token exactly once.
 */
static void scenario_node_limits(struct loop *loop, const char *script, struct campaign *c)
{
	const size_t N = 60;
	char pf[300], out[300], pub[300], key[300], url[64];
	snprintf(pf, sizeof(pf), "%s/node2.port", dir);
	snprintf(out, sizeof(out), "%s/node2.out", dir);
	snprintf(pub, sizeof(pub), "%s/apns.pub", dir);
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	char *argv[] = {"node", (char *)script, pf, out, pub, "limits", NULL};
	pid_t pid = spawn(argv);
	int port = wait_port_file(pf);
	CHECK(port > 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	struct kv kv[] = {APNS_KV(url, key), {"connections", "1"}, {NULL, NULL}};
	struct run r = {.loop = loop};
	if (run_lane(&r, c, kv, "apns", N, NULL, NULL) == 0) {
		CHECK(r.rec.reports[OUTCOME_ACCEPTED] == N);
		FILE *f = fopen(out, "r");
		char line[8192], paths[64][160];
		size_t lines = 0, uniq = 0;
		long long max_after_ack = 0, jwt_ok = 0;
		while (f && fgets(line, sizeof(line), f)) {
			json_t *j = json_loads(line, 0, NULL);
			const char *path = j ? json_string_value(json_object_get(j, "path")) : NULL;
			bool seen = false;
			for (size_t i = 0; path && i < uniq; i++)
				seen |= !strcmp(paths[i], path);
			if (path && !seen && uniq < 64)
				snprintf(paths[uniq++], sizeof(paths[0]), "%s", path);
			if (j && json_integer_value(json_object_get(j, "maxAfterAck")) > max_after_ack)
				max_after_ack = json_integer_value(json_object_get(j, "maxAfterAck"));
			jwt_ok += j && json_is_true(json_object_get(j, "jwtOk"));
			json_decref(j);
			lines++;
		}
		if (f)
			fclose(f);
		printf("node limits: %zu requests, %zu tokens, at most %lld open after the ACK, "
		       "lane up %u times (one connection, closed every 25)\n", lines, uniq, max_after_ack, r.rec.ups);
		CHECK(lines == N && uniq == N); /* nothing lost, nothing sent twice */
		CHECK(max_after_ack == 1);
		CHECK(jwt_ok == (long long)N);
	}
	end_lane(&r);
	stop(pid);
}

/* A private redis-server on a unix socket in the test's directory: no port to collide. */
static pid_t start_redis(void)
{
	snprintf(redis_sock, sizeof(redis_sock), "%s/redis.sock", dir);
	char *argv[] = {"redis-server", "--port", "0", "--unixsocket", redis_sock, "--save", "",
			"--appendonly", "no", "--dir", dir, NULL};
	pid_t pid = spawn(argv);
	for (int i = 0; i < 100; i++) {
		redisContext *rc = redisConnectUnix(redis_sock);
		bool ok = rc && !rc->err;
		redisFree(rc);
		if (ok)
			return pid;
		usleep(50000);
	}
	return pid;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 3) {
		fprintf(stderr, "usage: test_push PUSH_SIM NODE_SCRIPT\n");
		return 2;
	}
	if (system("node --version >/dev/null 2>&1") != 0) {
		printf("node is missing: skipping\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "/tmp/test_push.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	char key[300], pub[300];
	snprintf(key, sizeof(key), "%s/apns.p8", dir);
	snprintf(pub, sizeof(pub), "%s/apns.pub", dir);
	write_keys(key, pub);
	struct loop loop;
	if (loop_init(&loop, 512) < 0) {
		printf("io_uring unavailable: skipping\n");
		return 77;
	}
	pid_t redis = start_redis();
	struct campaign *c = make_campaign("CN-TEST-0001");
	CHECK(c != NULL);
	if (c) {
		scenario_apns(&loop, argv[1], c);
		scenario_fcm(&loop, argv[1], c);
		scenario_tls(&loop, argv[1], c);
		scenario_lowered(&loop, argv[1], c);
		scenario_raised(&loop, argv[1], c);
		scenario_conn_loss(&loop, argv[1], c, false);
		scenario_conn_loss(&loop, argv[1], c, true);
		scenario_conn_loss_cap(&loop, argv[1], c);
		scenario_apns_mix(&loop, argv[1], c);
		scenario_fcm_answers(&loop, argv[1], c);
		scenario_webhook(&loop, argv[1], c);
		scenario_jwt_refresh(&loop, argv[1], c);
		scenario_node(&loop, argv[2], c);
		scenario_node_limits(&loop, argv[2], c);
	}
	campaign_free(c);
	stop(redis);
	loop_release(&loop);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (!failures)
		system(cmd);
	printf("%s (%d failures)\n", failures ? "FAILED" : "ok", failures);
	return failures ? 1 : 0;
}
