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

struct rec {
	unsigned reports[6], ups, downs, dup_reports;
	uint32_t last_retry_ms;
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
	if (o == OUTCOME_THROTTLED)
		r->last_retry_ms = retry_ms;
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
	size_t n;
};

/* Open a lane, submit n deliveries, run until every one was reported (or 30 s). */
static int run_lane(struct run *r, struct campaign *c, const struct kv *kv, const char *platform,
		    size_t n, const char *redis_addr, bool (*mark)(size_t i, const char **m))
{
	struct lane_host host = {.loop = r->loop, .redis = redis_addr, .prefix = "tt:",
				 .ctx = &r->rec, .report = on_report, .receipt = on_receipt, .up = on_up};
	struct config_lane cfg;
	char err[256];
	memset(&r->rec, 0, sizeof(r->rec));
	r->rec.seen = calloc(n, 1);
	r->rec.n = n;
	r->n = n;
	set_cfg(&cfg, kv);
	lane_init(&r->lane, "push-test", CHANNEL_APP, 0, 0, 100000, loop_now_ms(r->loop));
	if (adapter_push.open(&r->lane, &host, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	for (int i = 0; i < 40 && redis_addr && r->rec.ups == 0; i++)
		loop_run_once(r->loop, 50); /* let the Redis client connect too */
	r->d = calloc(n, sizeof(*r->d));
	for (size_t i = 0; i < n; i++) {
		char tok[128];
		const char *m = NULL;
		if (mark)
			mark(i, &m);
		make_token(tok, sizeof(tok), platform, i, m);
		r->d[i] = (struct delivery){.id = i, .campaign = c, .lane = &r->lane,
					    .address = strdup(tok), .lang = (uint8_t)(i % 2),
					    .channel = CHANNEL_APP, .attempts = 1};
		adapter_push.submit(&r->lane, &r->d[i]);
	}
	uint64_t deadline = loop_now_ms(r->loop) + 30000;
	size_t total = 0;
	while (total < n && loop_now_ms(r->loop) < deadline) {
		loop_run_once(r->loop, 50);
		total = 0;
		for (int o = 0; o < 6; o++)
			total += r->rec.reports[o];
	}
	CHECK(total == n);
	CHECK(r->rec.dup_reports == 0);
	return 0;
}

static void end_lane(struct run *r)
{
	adapter_push.close(&r->lane);
	for (int i = 0; i < 20; i++)
		loop_run_once(r->loop, 10); /* the two-phase close completes */
	for (size_t i = 0; i < r->n; i++)
		free(r->d[i].address);
	free(r->d);
	free(r->rec.seen);
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
		scenario_node(&loop, argv[2], c);
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
