/*
 * tests/integration/test_terminal.c: the terminal gateway end to end.
 *
 *   test_terminal TOCSIN_BINARY TERMINAL_SWARM_BINARY [SCALE_CONNECTIONS [tls]]
 *
 * (tls: the scale check runs on the TLS lane; SWARM_RATE in the environment
 * sets the swarms' connects per second, 20000 by default.)
 *
 * Starts a private redis-server (stopped by pid), loads a tiny population
 * with terminals through `tocsin load`, runs adapter_terminal on a loop in
 * this process with a fake lane_host that records reports and receipts,
 * and drives it with bench/terminal_swarm processes (fork/exec, stopped by
 * pid) reading the same terminals.csv. Checks, in order:
 *   1. 200 terminals authenticate; one with a wrong secret is rejected;
 *   2. an Alert to all 200: every delivery ACCEPTED, then DELIVERED, or
 *      PERMANENT "terminal: speaker fault" for the swarm's failing share;
 *   3. a warning that expires while its terminal is offline is EXPIRED and
 *      never sent when the terminal connects later; an earlier warning
 *      still in force is sent at once on connect and DELIVERED;
 *   4. a Cancel reaches terminals as stop=true;
 *   5. bad input, with the test's own raw client, each closed with its
 *      reason counted: unknown id, bad HMAC, an answer to another
 *      connection's challenge, a recorded Hello replayed, a frame too long,
 *      an Ack before Hello;
 *   6. slowloris: a silent and a dribbling handshake are closed at the
 *      handshake deadline, while 50 other terminals are served meanwhile;
 *   6b. handshake cap: with 64 handshakes open (max_handshakes = 64) the
 *      accept is paused: a new connection gets no Challenge until one of
 *      them ends, then it does and logs in;
 *   7. duplicate id (the newer wins, the older gets REPLACED); Update and
 *      Cancel as the terminal sees them; heartbeats from the gateway, and a
 *      silent terminal closed after 3 intervals while a live one stays;
 *   8. offline then reconnect: a held alert and an unacknowledged one (same
 *      seq) arrive on reconnect;
 *   8b. short sends: two 40 KB Alerts to a terminal with a 4 KB receive
 *      buffer arrive whole and in order (sendmsg resumed, output queued);
 *   9. readiness arithmetic per segment with exact numbers (speaker and
 *      displays overlapping), and the offline-longest order;
 *   9b. Status reports: volume and faults counted and listed (the names made
 *      safe for logs and JSON), an out-of-range volume ignored, a report
 *      without faults taking the terminal off the list;
 *   9c. a lane with inbound_defer_ms not below ack_timeout_ms does not open;
 *   9d. silence is judged on input read: while the loop holds the shards'
 *      input (a push), a heartbeating terminal is not closed, and a silent
 *      one is closed once the input is read;
 *  10. TLS (certificate made here with the openssl CLI): 50 terminals over
 *      TLS get an alert; plaintext on the TLS port is counted as tls;
 *  11. scale: SCALE_CONNECTIONS (default 10000) terminals connect to a third
 *      lane with the production defaults (10 s handshake, 30 s heartbeats,
 *      shards as large as RLIMIT_NOFILE allows, or RING_FILES from the
 *      environment), from one swarm process per SWARM_CHUNK terminals (a
 *      process holds at most RLIMIT_NOFILE sockets; the gateway holds its
 *      connections as direct descriptors, so it is not bound by that); the
 *      heap and RSS bytes per idle connection and the fan-out time of one
 *      alert to all of them are printed, not asserted.
 *
 * The plaintext lane of checks 1-9 has ring_files = 128, so every check
 * runs with connections spread over several shards (extra io_uring rings
 * with their own file tables) and slots being reused.
 * Exit 0 = pass, 1 = fail, 77 = skipped (no redis-server or io_uring).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters.h"
#include "campaign.h"
#include "terminal.h"

#include <jansson.h>

#define N_FUNC 200
#define FAIL_PCT 10
#define HANDSHAKE_MS 2000
#define HEARTBEAT_MS 2000
#define MAX_HANDSHAKES 64 /* the plaintext lane's max_handshakes */
#define SWARM_CHUNK 16000 /* terminals per scale swarm process */
#define MAX_SWARMS 16

struct rec {
	int report;   /* last outcome reported + 1; 0 = none */
	int receipt;  /* last receipt outcome + 1; 0 = none */
	int n_reports;
	char reason[160];
};

struct fixture {
	char dir[64], tocsin[512], swarm[512], redis_addr[64];
	int redis_port, gw_port, tls_port;
	pid_t redis_pid, swarm_pid[4], scale_pid[MAX_SWARMS];
	struct loop loop;
	struct lane lane, tls_lane, scale_lane, b_lane; /* b_lane: test_readiness_lanes */
	struct lane h_lane;                             /* test_silence_while_held */
	int scale_port;
	bool scale_tls;
	struct lane *cur;      /* the lane submit(), start_swarm() and test_scale() use */
	struct lane_host host;
	struct delivery *dels;
	struct rec *recs;
	size_t n_dels, cap_dels;
	int failures;
	int scale;
};

#define CHECK(fx, cond, ...)                                                            \
	do {                                                                            \
		if (cond) {                                                             \
			printf("ok - " __VA_ARGS__);                                    \
		} else {                                                                \
			printf("FAIL - " __VA_ARGS__);                                  \
			(fx)->failures++;                                               \
		}                                                                       \
		printf("\n");                                                           \
	} while (0)

/* --- the fake host ----------------------------------------------------------- */

static void on_report(void *ctx, struct delivery *d, enum outcome o, const char *reason,
		      uint32_t retry_after_ms)
{
	struct fixture *fx = ctx;
	struct rec *r = &fx->recs[d->id];
	r->report = (int)o + 1;
	r->n_reports++;
	snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
	d->state = o == OUTCOME_ACCEPTED ? DELIVERY_ACCEPTED : DELIVERY_DELIVERED;
}

static void on_receipt(void *ctx, uint64_t id, enum outcome o, const char *reason)
{
	struct fixture *fx = ctx;
	if (id >= fx->n_dels)
		return;
	fx->recs[id].receipt = (int)o + 1;
	snprintf(fx->recs[id].reason, sizeof(fx->recs[id].reason), "%s", reason ? reason : "");
}

static void on_up(void *ctx, struct lane *l, bool up, const char *why)
{
	printf("# lane %s %s (%s)\n", l->name, up ? "up" : "down", why);
}

/* Final from the test's point of view: a final report, or a receipt after ACCEPTED. */
static int final_outcome(const struct rec *r)
{
	if (r->report == 0)
		return -1;
	if (r->report - 1 != OUTCOME_ACCEPTED)
		return r->report - 1;
	return r->receipt ? r->receipt - 1 : -1;
}

/* --- processes ---------------------------------------------------------------- */

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &len);
	close(fd);
	return ntohs(sa.sin_port);
}

static pid_t spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int run_wait(char *const argv[], const char *log)
{
	int status;
	pid_t pid = spawn(argv, log);
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void stop_pid(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	waitpid(*pid, NULL, 0);
	*pid = 0;
}

static bool port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

static int start_redis(struct fixture *fx)
{
	char port[16], log[128];
	fx->redis_port = free_port();
	snprintf(port, sizeof(port), "%d", fx->redis_port);
	snprintf(log, sizeof(log), "%s/redis.log", fx->dir);
	char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--daemonize", "no", NULL};
	fx->redis_pid = spawn(argv, log);
	for (int i = 0; i < 100; i++) {
		if (port_open(fx->redis_port))
			return 0;
		usleep(50000);
	}
	return -1;
}

/* --- population --------------------------------------------------------------- */

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static FILE *open_in(const struct fixture *fx, const char *name, const char *mode)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	return fopen(path, mode);
}

static void term_row(FILE *f, const char *id, const char *secret)
{
	fprintf(f, "%s,35010101,speaker,100,%s\n", id, secret);
}

/* The loader's files, plus one CSV per swarm (same format, one wrong secret). */
static int write_population(const struct fixture *fx, int scale)
{
	FILE *seg = open_in(fx, "pop/segments.csv", "w"), *hh = open_in(fx, "pop/households.csv", "w");
	FILE *t = open_in(fx, "pop/terminals.csv", "w"), *a = open_in(fx, "swarm_a.csv", "w");
	FILE *b = open_in(fx, "swarm_b.csv", "w"), *c = NULL;
	char id[64], secret[64];
	if (!seg || !hh || !t || !a || !b)
		return -1;
	/* persons: C 35010101 = 5 (S 350101 = 5); C 35010201 = 10 (B1 4, B2 6) and
	 * C 35010202 = 5 (S 350102 = 15); D 3501 = 20. See test_readiness(). */
	fprintf(seg, "id,kind,parent,name,population\n3501,district,,D,1000\n"
		     "350101,street,3501,S,1000\n35010101,community,350101,C,1000\n"
		     "35010101B1,building,35010101,B,10\n35010101B2,building,35010101,B,10\n"
		     "350102,street,3501,S2,40\n35010201,community,350102,C2,20\n"
		     "35010201B1,building,35010201,B,10\n35010201B2,building,35010201,B,10\n"
		     "35010202,community,350102,C3,20\n35010202B1,building,35010202,B,10\n");
	fprintf(hh, "id,building,persons,lang,phones,apps\n"
		    "35010101B1H1,35010101B1,2,zh-CN,+8613800000001,\n"
		    "35010101B2H1,35010101B2,3,zh-CN,+8613800000002,\n"
		    "35010201B1H1,35010201B1,4,zh-CN,+8613800000003,\n"
		    "35010201B2H1,35010201B2,6,zh-CN,+8613800000004,\n"
		    "35010202B1H1,35010202B1,5,zh-CN,+8613800000005,\n");
	const char *hdr = "id,segment,kind,covers_persons,secret\n";
	fputs(hdr, t), fputs(hdr, a), fputs(hdr, b);
	for (int i = 0; i < N_FUNC; i++) {
		snprintf(id, sizeof(id), "t-%04d", i);
		snprintf(secret, sizeof(secret), "secret-%04d", i);
		term_row(t, id, secret), term_row(a, id, secret);
	}
	term_row(t, "t-bad", "right-secret"), term_row(a, "t-bad", "wrong-secret");
	term_row(t, "t-late", "late-secret"), term_row(b, "t-late", "late-secret");
	term_row(t, "t-late2", "late2-secret"), term_row(b, "t-late2", "late2-secret");
	/* driven by the test's own raw clients */
	fprintf(t, "r-disp1,35010201B1,display,4,disp1-secret\n"
		   "r-disp2,35010201B1,display,4,disp2-secret\n"
		   "r-spk,35010201,speaker,10,spk-secret\n");
	for (int i = 0; i < scale; i++) { /* swarm_c<k>.csv: the scale swarms' chunks */
		if (i % SWARM_CHUNK == 0) {
			char name[32];
			snprintf(name, sizeof(name), "swarm_c%d.csv", i / SWARM_CHUNK);
			if (c)
				fclose(c);
			if (!(c = open_in(fx, name, "w")))
				return -1;
			fputs(hdr, c);
		}
		snprintf(id, sizeof(id), "s-%06d", i);
		snprintf(secret, sizeof(secret), "scale-%06d", i);
		term_row(t, id, secret), term_row(c, id, secret);
	}
	if (c)
		fclose(c);
	fclose(seg), fclose(hh), fclose(t), fclose(a), fclose(b);
	return 0;
}

static int load_population(const struct fixture *fx)
{
	char redis[64], dir[128], log[128];
	snprintf(redis, sizeof(redis), "127.0.0.1:%d", fx->redis_port);
	snprintf(dir, sizeof(dir), "%s/pop", fx->dir);
	snprintf(log, sizeof(log), "%s/load.log", fx->dir);
	char *argv[] = {(char *)fx->tocsin, "load", "--redis", redis, "--dir", dir, NULL};
	return run_wait(argv, log);
}

/* --- warnings and deliveries ---------------------------------------------------------- */

static struct campaign *make_campaign_text(struct fixture *fx, const char *id,
					   Tocsin__MsgType type, const char *ref,
					   int64_t expires_in_s, const char *instruction)
{
	Tocsin__Warning w = TOCSIN__WARNING__INIT;
	Tocsin__Info in = TOCSIN__INFO__INIT, *infos[1] = {&in};
	Tocsin__SignedWarning sw = TOCSIN__SIGNED_WARNING__INIT;
	char *refs[1] = {(char *)ref}, *targets[1] = {"35010101"}, err[128];
	Tocsin__Category cat = TOCSIN__CATEGORY__MET;
	int64_t now = loop_wall_s();
	w.identifier = (char *)id;
	w.sender = "test@bureau";
	w.has_sent = w.has_status = w.has_msg_type = w.has_scope = w.has_colour = true;
	w.sent = now;
	w.status = TOCSIN__STATUS__ACTUAL;
	w.msg_type = type;
	w.scope = TOCSIN__SCOPE__PUBLIC;
	w.colour = TOCSIN__COLOUR__RED;
	w.n_references = ref ? 1 : 0;
	w.references = refs;
	w.n_targets = 1;
	w.targets = targets;
	w.n_info = 1;
	w.info = infos;
	in.language = "zh-CN";
	in.n_category = 1;
	in.category = &cat;
	in.event = "Typhoon";
	in.has_urgency = in.has_severity = in.has_certainty = in.has_expires = true;
	in.urgency = TOCSIN__URGENCY__IMMEDIATE;
	in.severity = TOCSIN__SEVERITY__EXTREME;
	in.certainty = TOCSIN__CERTAINTY__OBSERVED;
	in.expires = now + expires_in_s;
	in.headline = "Typhoon warning";
	in.instruction = (char *)instruction;
	static uint8_t payload[1 << 17], env[(1 << 17) + 1024];
	uint8_t sig[64] = {0};
	sw.has_payload = sw.has_signature = true;
	sw.payload.len = tocsin__warning__pack(&w, payload);
	sw.payload.data = payload;
	sw.signature.data = sig; /* campaign_new does not verify */
	sw.signature.len = sizeof(sig);
	sw.key_id = "test";
	size_t n = tocsin__signed_warning__pack(&sw, env);
	struct campaign *c = campaign_new(env, n, loop_now_ms(&fx->loop), now, "[DRILL] ", err,
					  sizeof(err));
	if (!c)
		printf("# campaign_new: %s\n", err);
	return c;
}

static struct campaign *make_campaign(struct fixture *fx, const char *id, Tocsin__MsgType type,
				      const char *ref, int64_t expires_in_s)
{
	return make_campaign_text(fx, id, type, ref, expires_in_s, "Stay indoors.");
}

/* Submit one delivery for address; returns its id (index in fx->recs). */
static uint64_t submit(struct fixture *fx, struct campaign *c, const char *address)
{
	uint64_t id = fx->n_dels++;
	struct delivery *d = &fx->dels[id];
	memset(d, 0, sizeof(*d));
	d->id = id;
	d->campaign = c;
	d->lane = fx->cur;
	d->address = strdup(address);
	d->household = UINT32_MAX;
	d->parts = 1;
	d->channel = CHANNEL_TERMINAL;
	d->state = DELIVERY_SENT;
	d->attempts = 1;
	fx->cur->adapter->submit(fx->cur, d);
	return id;
}

/* Run the loop until cond(fx, arg) or timeout. */
static bool run_until(struct fixture *fx, bool (*cond)(struct fixture *, void *), void *arg,
		      int timeout_ms)
{
	loop_run_once(&fx->loop, 0); /* now_ms is from the last iteration: it may be old */
	uint64_t end = loop_now_ms(&fx->loop) + (uint64_t)timeout_ms;
	while (!cond(fx, arg)) {
		if (loop_now_ms(&fx->loop) > end)
			return false;
		loop_run_once(&fx->loop, 20);
	}
	return true;
}

static bool online_at_least(struct fixture *fx, void *arg)
{
	uint64_t on, known, persons;
	terminal_readiness(fx->cur, &on, &known, &persons);
	return on >= *(uint64_t *)arg;
}

struct range { uint64_t from, to; };

static bool known_at_least(struct fixture *fx, void *arg)
{
	uint64_t on, known, persons;
	terminal_readiness(fx->cur, &on, &known, &persons);
	return known >= *(uint64_t *)arg;
}

static bool all_final(struct fixture *fx, void *arg)
{
	struct range *r = arg;
	for (uint64_t i = r->from; i < r->to; i++)
		if (final_outcome(&fx->recs[i]) < 0)
			return false;
	return true;
}

static bool auth_failed_once(struct fixture *fx, void *arg)
{
	struct terminal_stats st;
	terminal_stats(&fx->lane, &st);
	return st.closed[TERMINAL_CLOSE_BAD_MAC] >= 1;
}

static bool sleep_cond(struct fixture *fx, void *arg)
{
	return false;
}

static pid_t start_swarm(struct fixture *fx, const char *csv, const char *stats, int count)
{
	char target[64], csvp[128], statsp[128], n[16], log[128];
	bool tls = fx->cur == &fx->tls_lane || (fx->cur == &fx->scale_lane && fx->scale_tls);
	int port = fx->cur == &fx->lane ? fx->gw_port : tls && fx->cur == &fx->tls_lane ? fx->tls_port
											 : fx->scale_port;
	char ca[128];
	snprintf(target, sizeof(target), "127.0.0.1:%d", port);
	snprintf(ca, sizeof(ca), "%s/cert.pem", fx->dir);
	snprintf(csvp, sizeof(csvp), "%s/%s", fx->dir, csv);
	snprintf(statsp, sizeof(statsp), "%s/%s", fx->dir, stats);
	snprintf(n, sizeof(n), "%d", count);
	snprintf(log, sizeof(log), "%s/swarm.log", fx->dir);
	char pct[8];
	snprintf(pct, sizeof(pct), "%d", FAIL_PCT);
	char *argv[] = {fx->swarm, "--csv", csvp, "--target", target, "--count", n, "--play-ms",
			"50", "--fail-pct", pct, "--stats", statsp, "--connect-rate", getenv("SWARM_RATE") ? getenv("SWARM_RATE") : "20000",
			"--src-ips", "8", tls ? "--tls" : NULL, "--ca", ca, NULL};
	return spawn(argv, log);
}

/* Ask a swarm for its counters and read them back. */
static char *swarm_stats(struct fixture *fx, pid_t pid, const char *stats)
{
	char path[128];
	static char buf[8192];
	snprintf(path, sizeof(path), "%s/%s", fx->dir, stats);
	unlink(path);
	kill(pid, SIGUSR1);
	for (int i = 0; i < 100; i++) {
		FILE *f = fopen(path, "r");
		if (f) {
			size_t n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
			buf[n] = 0;
			return buf;
		}
		loop_run_once(&fx->loop, 20);
	}
	return "";
}

static long json_num(const char *json, const char *key)
{
	char pat[96];
	snprintf(pat, sizeof(pat), "\"%s\":", key);
	const char *p = strstr(json, pat);
	return p ? strtol(p + strlen(pat), NULL, 10) : -1;
}

/* --- scenarios ------------------------------------------------------------------------- */

static void test_auth(struct fixture *fx)
{
	uint64_t want = N_FUNC;
	fx->swarm_pid[0] = start_swarm(fx, "swarm_a.csv", "a.json", N_FUNC + 1);
	CHECK(fx, run_until(fx, online_at_least, &want, 20000), "%d terminals authenticated", N_FUNC);
	CHECK(fx, run_until(fx, auth_failed_once, NULL, 5000), "the wrong secret was rejected");
	uint64_t on, known, persons;
	terminal_readiness(&fx->lane, &on, &known, &persons);
	CHECK(fx, on == N_FUNC && persons == 5, /* their community's 5 persons, counted once */
	      "readiness: online %lu, persons online %lu", (unsigned long)on, (unsigned long)persons);
}

static void test_alert(struct fixture *fx, struct campaign *w1)
{
	char id[32];
	struct range r = {fx->n_dels, 0};
	for (int i = 0; i < N_FUNC; i++) {
		snprintf(id, sizeof(id), "t-%04d", i);
		submit(fx, w1, id);
	}
	r.to = fx->n_dels;
	CHECK(fx, run_until(fx, all_final, &r, 20000), "every delivery of W1 got its final outcome");
	int delivered = 0, failed = 0, reason_ok = 0, accepted_first = 0, want_failed = 0;
	for (uint64_t i = r.from; i < r.to; i++) {
		struct rec *rec = &fx->recs[i];
		bool fails = fnv1a(fx->dels[i].address) % 100 < FAIL_PCT;
		want_failed += fails;
		accepted_first += rec->report - 1 == OUTCOME_ACCEPTED && rec->n_reports == 1;
		if (final_outcome(rec) == OUTCOME_DELIVERED && !fails)
			delivered++;
		if (final_outcome(rec) == OUTCOME_PERMANENT && fails) {
			failed++;
			reason_ok += !strcmp(rec->reason, "terminal: speaker fault");
		}
	}
	CHECK(fx, accepted_first == N_FUNC, "all %d reported ACCEPTED exactly once", accepted_first);
	CHECK(fx, delivered == N_FUNC - want_failed, "%d DELIVERED (PLAYED)", delivered);
	CHECK(fx, failed == want_failed && reason_ok == failed,
	      "%d PERMANENT with reason \"terminal: speaker fault\"", failed);
}

static bool one_final(struct fixture *fx, void *arg)
{
	return final_outcome(&fx->recs[*(uint64_t *)arg]) >= 0;
}

static void test_late(struct fixture *fx, struct campaign *w1)
{
	struct campaign *w2 = make_campaign(fx, "W2", TOCSIN__MSG_TYPE__ALERT, NULL, 2);
	uint64_t late = submit(fx, w1, "t-late"), late2 = submit(fx, w2, "t-late2");
	uint64_t bad = submit(fx, w1, "t-bad");
	run_until(fx, sleep_cond, NULL, 500);
	CHECK(fx, fx->recs[late].report == 0 && fx->recs[late2].report == 0,
	      "deliveries to offline terminals are held, not reported");
	CHECK(fx, run_until(fx, one_final, &late2, 5000) &&
		      final_outcome(&fx->recs[late2]) == OUTCOME_EXPIRED,
	      "W2 EXPIRED while t-late2 was offline");
	fx->swarm_pid[1] = start_swarm(fx, "swarm_b.csv", "b.json", 2);
	CHECK(fx, run_until(fx, one_final, &late, 10000) &&
		      final_outcome(&fx->recs[late]) == OUTCOME_DELIVERED,
	      "t-late received W1 when it connected, DELIVERED");
	run_until(fx, sleep_cond, NULL, 500);
	const char *js = swarm_stats(fx, fx->swarm_pid[1], "b.json");
	CHECK(fx, json_num(js, "W1") == 1 && !strstr(js, "\"W2\""),
	      "the expired W2 was never sent to the late terminals");
	CHECK(fx, fx->recs[bad].report == 0, "t-bad (rejected) still holds its delivery");
	campaign_free(w2);
}

static void test_cancel(struct fixture *fx)
{
	struct campaign *c1 = make_campaign(fx, "C1", TOCSIN__MSG_TYPE__CANCEL, "W1", 3600);
	char id[32];
	struct range r = {fx->n_dels, 0};
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "t-%04d", i);
		submit(fx, c1, id);
	}
	r.to = fx->n_dels;
	CHECK(fx, run_until(fx, all_final, &r, 10000), "the Cancel got final outcomes");
	const char *js = swarm_stats(fx, fx->swarm_pid[0], "a.json");
	CHECK(fx, json_num(js, "stops") == 10, "10 terminals got stop=true for W1");
	CHECK(fx, json_num(js, "bad_credentials") == 1, "the swarm saw one BAD_CREDENTIALS");
	campaign_free(c1);
}

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

static void test_scale(struct fixture *fx, int scale)
{
	uint64_t want = (uint64_t)scale;
	/* the lane reads its population (a struct term per terminal) at open: not part of the delta */
	CHECK(fx, run_until(fx, known_at_least, &want, 60000), "the scale lane knows its %d terminals",
	      scale);
	malloc_trim(0);
	struct terminal_stats st0, st;
	terminal_stats(fx->cur, &st0);
	long before = rss_bytes();
	struct mallinfo2 mi = mallinfo2();
	double heap_before = (double)mi.uordblks + (double)mi.hblkhd; /* arena + mmapped chunks */
	for (int k = 0; k * SWARM_CHUNK < scale; k++) {
		char csv[32], stats[32];
		snprintf(csv, sizeof(csv), "swarm_c%d.csv", k);
		snprintf(stats, sizeof(stats), "c%d.json", k);
		int n = scale - k * SWARM_CHUNK < SWARM_CHUNK ? scale - k * SWARM_CHUNK : SWARM_CHUNK;
		fx->scale_pid[k] = start_swarm(fx, csv, stats, n);
	}
	bool ok = run_until(fx, online_at_least, &want, 120000 + (uint64_t)scale * 5);
	CHECK(fx, ok, "%d more terminals connected (%lu online)", scale, (unsigned long)want);
	run_until(fx, sleep_cond, NULL, 1000);
	malloc_trim(0); /* what the handshakes freed goes back: the delta is what stays */
	long after = rss_bytes();
	mi = mallinfo2();
	double heap_after = (double)mi.uordblks + (double)mi.hblkhd;
	terminal_stats(fx->cur, &st);
	/* shards opened meanwhile are a fixed cost per shard (buffers touched at open), said apart */
	double shards = (double)(st.shards - st0.shards) * (double)st.shard_bytes;
	printf("# scale: %d idle authenticated %s connections: heap in use %.0f bytes per connection "
	       "(malloc'd, live; besides %lu shards of %lu bytes each)\n", scale,
	       fx->scale_tls ? "TLS" : "plaintext", (heap_after - heap_before - shards) / scale,
	       (unsigned long)st.shards, (unsigned long)st.shard_bytes);
	printf("# scale: %d idle authenticated %s connections, RSS delta %ld bytes = %.0f bytes per "
	       "connection besides the shards opened meanwhile (gateway process; kernel socket memory "
	       "not included; struct tconn %lu + struct term %lu bytes)\n",
	       scale, fx->scale_tls ? "TLS" : "plaintext", after - before,
	       ((double)(after - before) - shards) / scale, (unsigned long)st.conn_bytes,
	       (unsigned long)st.term_bytes);
	struct campaign *w3 = make_campaign(fx, "W3", TOCSIN__MSG_TYPE__ALERT, NULL, 3600);
	char id[32];
	struct range r = {fx->n_dels, 0};
	uint64_t t0 = loop_now_ms(&fx->loop);
	for (int i = 0; i < scale; i++) {
		snprintf(id, sizeof(id), "s-%06d", i);
		submit(fx, w3, id);
	}
	r.to = fx->n_dels;
	ok = run_until(fx, all_final, &r, 60000);
	printf("# scale: alert fan-out to %d terminals, all final (played/failed) in %lu ms "
	       "(swarm play delay 50 ms)\n", scale, (unsigned long)(loop_now_ms(&fx->loop) - t0));
	CHECK(fx, ok, "the scale alert reached every terminal");
	campaign_free(w3);
}

/* --- raw terminals: the test's own client, for the edge cases ----------------------------- */

struct rawt {
	int fd;
	bool eof;
	uint8_t in[1 << 17];
	size_t len;
	uint8_t nonce[TERMINAL_NONCE_LEN];
	uint8_t hello[512]; /* the last Hello sent, for replay */
	size_t hello_len;
};

static uint8_t arena_mem[TERMINAL_ARENA_CAP];
static struct terminal_arena arena;
static int raw_rcvbuf; /* set: SO_RCVBUF of the next raw connection, before it connects */

static void raw_pump(struct rawt *r)
{
	while (!r->eof && r->len < sizeof(r->in)) {
		ssize_t n = recv(r->fd, r->in + r->len, sizeof(r->in) - r->len, MSG_DONTWAIT);
		if (n > 0)
			r->len += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			r->eof = true;
		else
			break;
	}
}

/* The next whole frame from the gateway, running the loop meanwhile; NULL on EOF or timeout. */
static Tocsin__Terminal__Frame *raw_next(struct fixture *fx, struct rawt *r, int timeout_ms)
{
	uint64_t end = loop_now_ms(&fx->loop) + (uint64_t)timeout_ms;
	for (;;) {
		const uint8_t *payload;
		size_t plen;
		raw_pump(r);
		ssize_t k = terminal_frame_parse(r->in, r->len, &payload, &plen);
		if (k > 0) {
			enum terminal_decode_err err;
			terminal_arena_reset(&arena);
			Tocsin__Terminal__Frame *f = terminal_frame_decode(&arena, payload, plen, &err);
			memmove(r->in, r->in + k, r->len - (size_t)k);
			r->len -= (size_t)k;
			return f;
		}
		if (r->eof || loop_now_ms(&fx->loop) > end)
			return NULL;
		loop_run_once(&fx->loop, 10);
	}
}

/* The next frame of one kind, skipping heartbeats. */
static Tocsin__Terminal__Frame *raw_expect(struct fixture *fx, struct rawt *r, int body,
					   int timeout_ms)
{
	Tocsin__Terminal__Frame *f;
	while ((f = raw_next(fx, r, timeout_ms)) &&
	       f->body_case == TOCSIN__TERMINAL__FRAME__BODY_HEARTBEAT && body != (int)f->body_case)
		;
	return f && (int)f->body_case == body ? f : NULL;
}

static void raw_write(struct rawt *r, const void *p, size_t n)
{
	if (write(r->fd, p, n) != (ssize_t)n)
		r->eof = true;
}

static void raw_send(struct rawt *r, Tocsin__Terminal__Frame *f)
{
	uint8_t out[1024];
	ssize_t n = terminal_frame_encode(f, out, sizeof(out));
	if (n > 0)
		raw_write(r, out, (size_t)n);
}

/* Connect and read the Challenge. false when no Challenge came. */
/* Connect without waiting for anything. */
static void raw_connect(struct fixture *fx, struct rawt *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx->gw_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (raw_rcvbuf)
		setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &raw_rcvbuf, sizeof(raw_rcvbuf));
	fcntl(r->fd, F_SETFL, O_NONBLOCK);
	connect(r->fd, (struct sockaddr *)&sa, sizeof(sa));
}

static bool raw_open(struct fixture *fx, struct rawt *r)
{
	raw_connect(fx, r);
	Tocsin__Terminal__Frame *f = raw_expect(fx, r, TOCSIN__TERMINAL__FRAME__BODY_CHALLENGE, 3000);
	if (!f || f->challenge->nonce.len != TERMINAL_NONCE_LEN)
		return false;
	memcpy(r->nonce, f->challenge->nonce.data, TERMINAL_NONCE_LEN);
	int fl = fcntl(r->fd, F_GETFL);
	fcntl(r->fd, F_SETFL, fl & ~O_NONBLOCK); /* writes block; reads use MSG_DONTWAIT */
	return true;
}

static void raw_close(struct rawt *r)
{
	if (r->fd > 0)
		close(r->fd);
	r->fd = -1;
}

/* Hello for id with the mac computed from secret over nonce. */
static void raw_hello(struct rawt *r, const char *id, const char *secret, const uint8_t *nonce)
{
	Tocsin__Terminal__Hello h = TOCSIN__TERMINAL__HELLO__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	uint8_t mac[TERMINAL_MAC_LEN];
	terminal_auth_mac(secret, strlen(secret), nonce, TERMINAL_NONCE_LEN, id, mac);
	h.terminal_id = (char *)id;
	h.has_version = h.has_mac = true;
	h.version = 1;
	h.mac.data = mac;
	h.mac.len = sizeof(mac);
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_HELLO;
	f.hello = &h;
	ssize_t n = terminal_frame_encode(&f, r->hello, sizeof(r->hello));
	r->hello_len = n > 0 ? (size_t)n : 0;
	raw_write(r, r->hello, r->hello_len);
}

/* Open and authenticate; false unless Welcome came. */
static bool raw_login(struct fixture *fx, struct rawt *r, const char *id, const char *secret)
{
	if (!raw_open(fx, r))
		return false;
	raw_hello(r, id, secret, r->nonce);
	return raw_expect(fx, r, TOCSIN__TERMINAL__FRAME__BODY_WELCOME, 3000) != NULL;
}

/* A Reject with this reason arrives, then the connection is closed. */
static bool raw_rejected(struct fixture *fx, struct rawt *r, Tocsin__Terminal__RejectReason why,
			 int timeout_ms)
{
	Tocsin__Terminal__Frame *f = raw_expect(fx, r, TOCSIN__TERMINAL__FRAME__BODY_REJECT, timeout_ms);
	if (!f || f->reject->reason != why)
		return false;
	while (raw_next(fx, r, timeout_ms))
		;
	return r->eof;
}

static void raw_ack(struct rawt *r, uint64_t seq, Tocsin__Terminal__AckState st)
{
	Tocsin__Terminal__Ack a = TOCSIN__TERMINAL__ACK__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	a.has_seq = a.has_state = true;
	a.seq = seq;
	a.state = st;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_ACK;
	f.ack = &a;
	raw_send(r, &f);
}

static void raw_heartbeat(struct rawt *r)
{
	Tocsin__Terminal__Heartbeat hb = TOCSIN__TERMINAL__HEARTBEAT__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_HEARTBEAT;
	f.heartbeat = &hb;
	raw_send(r, &f);
}

static uint64_t closed(struct fixture *fx, enum terminal_close_reason why)
{
	struct terminal_stats st;
	terminal_stats(&fx->lane, &st);
	return st.closed[why];
}

/* --- bad input: each closed with a reason, counted ----------------------------------------- */

static void test_bad_input(struct fixture *fx)
{
	struct rawt *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	uint64_t unknown = closed(fx, TERMINAL_CLOSE_UNKNOWN_ID), mac = closed(fx, TERMINAL_CLOSE_BAD_MAC);
	uint64_t too_long = closed(fx, TERMINAL_CLOSE_FRAME_TOO_LONG);
	uint64_t proto = closed(fx, TERMINAL_CLOSE_PROTOCOL_ERROR);

	CHECK(fx, raw_open(fx, a), "a raw connection gets a Challenge");
	raw_hello(a, "t-nobody", "whatever", a->nonce);
	CHECK(fx, raw_rejected(fx, a, TOCSIN__TERMINAL__REJECT_REASON__BAD_CREDENTIALS, 3000) &&
		      closed(fx, TERMINAL_CLOSE_UNKNOWN_ID) == unknown + 1,
	      "unknown terminal id: BAD_CREDENTIALS, closed, counted as unknown_id");
	raw_close(a);

	raw_open(fx, a);
	raw_hello(a, "r-spk", "not-the-secret", a->nonce);
	CHECK(fx, raw_rejected(fx, a, TOCSIN__TERMINAL__REJECT_REASON__BAD_CREDENTIALS, 3000) &&
		      closed(fx, TERMINAL_CLOSE_BAD_MAC) == mac + 1,
	      "bad HMAC: BAD_CREDENTIALS, closed, counted as bad_mac");
	raw_close(a);

	/* Replayed challenge: b answers a's nonce with the right secret. */
	raw_open(fx, a);
	raw_open(fx, b);
	raw_hello(b, "r-spk", "spk-secret", a->nonce);
	CHECK(fx, raw_rejected(fx, b, TOCSIN__TERMINAL__REJECT_REASON__BAD_CREDENTIALS, 3000) &&
		      closed(fx, TERMINAL_CLOSE_BAD_MAC) == mac + 2,
	      "an answer to another connection's challenge is refused");
	raw_close(b);
	raw_hello(a, "r-spk", "spk-secret", a->nonce);
	CHECK(fx, raw_expect(fx, a, TOCSIN__TERMINAL__FRAME__BODY_WELCOME, 3000) != NULL,
	      "the same answer on its own connection is welcome");
	raw_open(fx, b);
	raw_write(b, a->hello, a->hello_len); /* a recorded Hello, replayed byte for byte */
	CHECK(fx, raw_rejected(fx, b, TOCSIN__TERMINAL__REJECT_REASON__BAD_CREDENTIALS, 3000) &&
		      closed(fx, TERMINAL_CLOSE_BAD_MAC) == mac + 3,
	      "a recorded Hello replayed on a new connection is refused");
	raw_close(b);
	raw_close(a);

	raw_open(fx, a);
	uint8_t hdr[4] = {0x00, 0x10, 0x00, 0x00}; /* 1 MiB: above TERMINAL_FRAME_MAX */
	raw_write(a, hdr, sizeof(hdr));
	CHECK(fx, raw_rejected(fx, a, TOCSIN__TERMINAL__REJECT_REASON__PROTOCOL_ERROR, 3000) &&
		      closed(fx, TERMINAL_CLOSE_FRAME_TOO_LONG) == too_long + 1,
	      "a frame too long: PROTOCOL_ERROR, closed, counted as frame_too_long");
	raw_close(a);

	raw_open(fx, a);
	raw_ack(a, 1, TOCSIN__TERMINAL__ACK_STATE__PLAYED); /* before Hello */
	CHECK(fx, raw_rejected(fx, a, TOCSIN__TERMINAL__REJECT_REASON__PROTOCOL_ERROR, 3000) &&
		      closed(fx, TERMINAL_CLOSE_PROTOCOL_ERROR) == proto + 1,
	      "an Ack before Hello: PROTOCOL_ERROR, counted as protocol_error");
	raw_close(a);
	free(a);
	free(b);
}

/* --- slowloris: never stalls the loop --------------------------------------------------------- */

struct slow {
	struct rawt *dribbler;
	uint64_t next_ms;
	size_t sent;
	struct range r;
};

/* Dribble one byte of a Hello every 200 ms, until the deliveries in range are final. */
static bool dribble_until_final(struct fixture *fx, void *arg)
{
	struct slow *s = arg;
	uint64_t now = loop_now_ms(&fx->loop);
	if (now >= s->next_ms && s->sent + 1 < s->dribbler->hello_len) {
		raw_write(s->dribbler, s->dribbler->hello + s->sent++, 1);
		s->next_ms = now + 200;
	}
	return all_final(fx, &s->r);
}

static void test_slowloris(struct fixture *fx, struct campaign *w)
{
	struct rawt *silent = calloc(1, sizeof(*silent)), *drib = calloc(1, sizeof(*drib));
	uint64_t before = closed(fx, TERMINAL_CLOSE_HANDSHAKE_TIMEOUT);
	raw_open(fx, silent);
	raw_open(fx, drib);
	uint64_t t0 = loop_now_ms(&fx->loop);
	/* the Hello is built but not sent: the dribbler sends it a byte at a time */
	uint8_t mac[TERMINAL_MAC_LEN] = {0};
	Tocsin__Terminal__Hello h = TOCSIN__TERMINAL__HELLO__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	h.terminal_id = "r-disp1";
	h.has_version = h.has_mac = true;
	h.version = 1;
	terminal_auth_mac("disp1-secret", 12, drib->nonce, TERMINAL_NONCE_LEN, "r-disp1", mac);
	h.mac.data = mac;
	h.mac.len = sizeof(mac);
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_HELLO;
	f.hello = &h;
	drib->hello_len = (size_t)terminal_frame_encode(&f, drib->hello, sizeof(drib->hello));

	struct slow s = {.dribbler = drib, .r = {fx->n_dels, 0}};
	char id[32];
	for (int i = 0; i < 50; i++) {
		snprintf(id, sizeof(id), "t-%04d", i);
		submit(fx, w, id);
	}
	s.r.to = fx->n_dels;
	bool ok = run_until(fx, dribble_until_final, &s, 10000);
	uint64_t served_ms = loop_now_ms(&fx->loop) - t0;
	CHECK(fx, ok && served_ms < HANDSHAKE_MS && !silent->eof && !drib->eof,
	      "50 terminals served (all final in %lu ms) while a silent and a dribbling "
	      "handshake were open", (unsigned long)served_ms);
	CHECK(fx, raw_rejected(fx, silent, TOCSIN__TERMINAL__REJECT_REASON__TIMEOUT, HANDSHAKE_MS + 2000),
	      "the silent connection: TIMEOUT, closed");
	CHECK(fx, raw_rejected(fx, drib, TOCSIN__TERMINAL__REJECT_REASON__TIMEOUT, 2000),
	      "the dribbling connection (%zu of %zu Hello bytes sent): TIMEOUT, closed", s.sent,
	      drib->hello_len);
	uint64_t took = loop_now_ms(&fx->loop) - t0;
	CHECK(fx, took + 100 >= HANDSHAKE_MS && closed(fx, TERMINAL_CLOSE_HANDSHAKE_TIMEOUT) == before + 2,
	      "both after the %d ms handshake deadline (%lu ms), counted as handshake_timeout",
	      HANDSHAKE_MS, (unsigned long)took);
	raw_close(silent);
	raw_close(drib);
	free(silent);
	free(drib);
}

static json_t *describe(struct fixture *fx);

static long gw_num(struct fixture *fx, const char *key)
{
	json_t *o = describe(fx);
	long v = (long)json_integer_value(json_object_get(o, key));
	json_decref(o);
	return v;
}

static void test_handshake_cap(struct fixture *fx)
{
	struct rawt *silent = calloc(MAX_HANDSHAKES, sizeof(*silent)), *late = calloc(1, sizeof(*late));
	long pauses = gw_num(fx, "accept_pauses");
	int opened = 0;
	uint64_t t0 = loop_now_ms(&fx->loop);
	for (int i = 0; i < MAX_HANDSHAKES; i++)
		opened += raw_open(fx, &silent[i]);
	CHECK(fx, opened == MAX_HANDSHAKES && gw_num(fx, "handshaking") == MAX_HANDSHAKES &&
			  gw_num(fx, "accept_pauses") == pauses + 1,
	      "%d silent handshakes open (%d got a Challenge): the accept paused once", MAX_HANDSHAKES,
	      opened);
	raw_connect(fx, late);
	/* the silent ones hit their deadline HANDSHAKE_MS after t0 and free the accept: look before */
	Tocsin__Terminal__Frame *f = NULL;
	if (loop_now_ms(&fx->loop) - t0 + 500 + 300 < HANDSHAKE_MS) {
		f = raw_next(fx, late, 500);
		CHECK(fx, !f && !late->eof, "a new connection waits in the backlog, no Challenge");
	} else {
		printf("# opening the silent connections took %lu ms: the backlog check is skipped\n",
		       (unsigned long)(loop_now_ms(&fx->loop) - t0));
	}
	raw_close(&silent[0]);
	f = raw_expect(fx, late, TOCSIN__TERMINAL__FRAME__BODY_CHALLENGE, 3000);
	CHECK(fx, f != NULL, "one handshake ended: the waiting connection gets its Challenge");
	if (f) {
		memcpy(late->nonce, f->challenge->nonce.data, TERMINAL_NONCE_LEN);
		int fl = fcntl(late->fd, F_GETFL);
		fcntl(late->fd, F_SETFL, fl & ~O_NONBLOCK);
		raw_hello(late, "r-disp1", "disp1-secret", late->nonce);
		CHECK(fx, raw_expect(fx, late, TOCSIN__TERMINAL__FRAME__BODY_WELCOME, 3000) != NULL,
		      "and logs in");
	}
	for (int i = 1; i < MAX_HANDSHAKES; i++)
		raw_close(&silent[i]);
	raw_close(late);
	run_until(fx, sleep_cond, NULL, 200);
	CHECK(fx, gw_num(fx, "handshaking") == 0, "no handshake left open");
	free(silent);
	free(late);
}

/* --- duplicate id, update and cancel on a terminal, heartbeats ------------------------------- */

static void test_duplicate(struct fixture *fx, struct rawt *older, struct rawt *newer,
			   struct campaign *w)
{
	uint64_t before = closed(fx, TERMINAL_CLOSE_REPLACED);
	CHECK(fx, raw_login(fx, older, "r-spk", "spk-secret"), "r-spk authenticated");
	CHECK(fx, raw_login(fx, newer, "r-spk", "spk-secret"), "r-spk authenticated again elsewhere");
	CHECK(fx, raw_rejected(fx, older, TOCSIN__TERMINAL__REJECT_REASON__REPLACED, 3000) &&
		      closed(fx, TERMINAL_CLOSE_REPLACED) == before + 1,
	      "the older connection: REPLACED, closed, counted as replaced");
	uint64_t d = submit(fx, w, "r-spk");
	Tocsin__Terminal__Frame *f = raw_expect(fx, newer, TOCSIN__TERMINAL__FRAME__BODY_ALERT, 3000);
	CHECK(fx, f && !strcmp(f->alert->warning_id, "W1"), "the newer connection gets the alert");
	if (f) {
		raw_ack(newer, f->alert->seq, TOCSIN__TERMINAL__ACK_STATE__RECEIVED);
		raw_ack(newer, f->alert->seq, TOCSIN__TERMINAL__ACK_STATE__PLAYED);
	}
	CHECK(fx, run_until(fx, one_final, &d, 3000) && final_outcome(&fx->recs[d]) == OUTCOME_DELIVERED,
	      "and its PLAYED makes the delivery DELIVERED");
}

/* Update and Cancel as the terminal sees them. */
static void test_update_cancel(struct fixture *fx, struct rawt *r)
{
	struct campaign *u = make_campaign(fx, "U1", TOCSIN__MSG_TYPE__UPDATE, "W1", 3600);
	struct campaign *c = make_campaign(fx, "C9", TOCSIN__MSG_TYPE__CANCEL, "U1", 3600);
	uint64_t du = submit(fx, u, "r-spk");
	Tocsin__Terminal__Frame *f = raw_expect(fx, r, TOCSIN__TERMINAL__FRAME__BODY_ALERT, 3000);
	CHECK(fx, f && !strcmp(f->alert->warning_id, "U1") &&
		      f->alert->msg_type == TOCSIN__MSG_TYPE__UPDATE && !f->alert->stop &&
		      f->alert->n_references == 1 && !strcmp(f->alert->references[0], "W1"),
	      "an Update reaches the terminal: msg_type UPDATE, references W1");
	if (f)
		raw_ack(r, f->alert->seq, TOCSIN__TERMINAL__ACK_STATE__PLAYED);
	uint64_t dc = submit(fx, c, "r-spk");
	f = raw_expect(fx, r, TOCSIN__TERMINAL__FRAME__BODY_ALERT, 3000);
	CHECK(fx, f && !strcmp(f->alert->warning_id, "C9") &&
		      f->alert->msg_type == TOCSIN__MSG_TYPE__CANCEL && f->alert->stop &&
		      f->alert->n_references == 1 && !strcmp(f->alert->references[0], "U1"),
	      "a Cancel reaches the terminal: stop = true, references U1");
	if (f)
		raw_ack(r, f->alert->seq, TOCSIN__TERMINAL__ACK_STATE__PLAYED);
	struct range rg = {du, dc + 1};
	CHECK(fx, run_until(fx, all_final, &rg, 3000), "both confirmed");
	campaign_free(u);
	campaign_free(c);
}

struct hb {
	struct rawt *live, *silent;
	uint64_t next_ms;
};

/* The live terminal heartbeats every second; done when the silent one is closed. */
static bool heartbeat_until_silent_closed(struct fixture *fx, void *arg)
{
	struct hb *h = arg;
	uint64_t now = loop_now_ms(&fx->loop);
	if (now >= h->next_ms) {
		raw_heartbeat(h->live);
		h->next_ms = now + 1000;
	}
	raw_pump(h->live);
	h->live->len = 0; /* heartbeats from the gateway: not needed here */
	raw_pump(h->silent);
	return h->silent->eof;
}

static void test_heartbeats(struct fixture *fx, struct rawt *live)
{
	struct rawt *silent = calloc(1, sizeof(*silent));
	uint64_t before = closed(fx, TERMINAL_CLOSE_HEARTBEAT_TIMEOUT);
	CHECK(fx, raw_login(fx, silent, "r-disp2", "disp2-secret"), "r-disp2 authenticated");
	uint64_t t0 = loop_now_ms(&fx->loop);
	CHECK(fx, raw_expect(fx, silent, TOCSIN__TERMINAL__FRAME__BODY_HEARTBEAT, HEARTBEAT_MS + 1000),
	      "the gateway heartbeats an idle terminal (after %lu ms)",
	      (unsigned long)(loop_now_ms(&fx->loop) - t0));
	struct hb h = {.live = live, .silent = silent};
	Tocsin__Terminal__Frame *f = NULL;
	bool ok = run_until(fx, heartbeat_until_silent_closed, &h, 4 * HEARTBEAT_MS + 2000);
	uint64_t took = loop_now_ms(&fx->loop) - t0;
	/* the Reject came before EOF: find it in what was buffered */
	const uint8_t *payload;
	size_t plen;
	while (silent->len && terminal_frame_parse(silent->in, silent->len, &payload, &plen) > 0) {
		enum terminal_decode_err err;
		terminal_arena_reset(&arena);
		f = terminal_frame_decode(&arena, payload, plen, &err);
		size_t k = TERMINAL_FRAME_HDR + plen;
		memmove(silent->in, silent->in + k, silent->len - k);
		silent->len -= k;
		if (f && f->body_case == TOCSIN__TERMINAL__FRAME__BODY_REJECT)
			break;
	}
	CHECK(fx, ok && f && f->body_case == TOCSIN__TERMINAL__FRAME__BODY_REJECT &&
		      f->reject->reason == TOCSIN__TERMINAL__REJECT_REASON__TIMEOUT &&
		      took + 100 >= 3 * HEARTBEAT_MS &&
		      closed(fx, TERMINAL_CLOSE_HEARTBEAT_TIMEOUT) == before + 1,
	      "a silent terminal: TIMEOUT after %lu ms (3 intervals of %d), counted as "
	      "heartbeat_timeout", (unsigned long)took, HEARTBEAT_MS);
	raw_pump(live);
	CHECK(fx, !live->eof, "a terminal that heartbeats stays connected");
	raw_close(silent);
	free(silent);
}

/* Offline, then reconnect: a held alert, and an unacknowledged one sent again (same seq). */
static void test_reconnect(struct fixture *fx, struct campaign *w)
{
	struct rawt *r = calloc(1, sizeof(*r));
	struct campaign *w6 = make_campaign(fx, "W6", TOCSIN__MSG_TYPE__ALERT, NULL, 3600);
	CHECK(fx, raw_login(fx, r, "r-disp2", "disp2-secret"), "r-disp2 authenticated");
	uint64_t d6 = submit(fx, w6, "r-disp2");
	Tocsin__Terminal__Frame *f = raw_expect(fx, r, TOCSIN__TERMINAL__FRAME__BODY_ALERT, 3000);
	uint64_t seq6 = f ? f->alert->seq : 0;
	CHECK(fx, f && !strcmp(f->alert->warning_id, "W6"), "W6 sent, left unacknowledged");
	raw_close(r);
	run_until(fx, sleep_cond, NULL, 200);
	uint64_t d1 = submit(fx, w, "r-disp2");
	run_until(fx, sleep_cond, NULL, 300);
	CHECK(fx, fx->recs[d1].report == 0 && fx->recs[d6].report == 0,
	      "while r-disp2 is offline both are held");
	CHECK(fx, raw_login(fx, r, "r-disp2", "disp2-secret"), "r-disp2 reconnected");
	bool got6 = false, got1 = false;
	for (int i = 0; i < 2; i++) {
		f = raw_expect(fx, r, TOCSIN__TERMINAL__FRAME__BODY_ALERT, 3000);
		if (!f)
			break;
		got6 |= !strcmp(f->alert->warning_id, "W6") && f->alert->seq == seq6;
		got1 |= !strcmp(f->alert->warning_id, "W1");
		raw_ack(r, f->alert->seq, TOCSIN__TERMINAL__ACK_STATE__PLAYED);
	}
	CHECK(fx, got6 && got1, "on reconnect: W6 again with the same seq, and the held W1");
	struct range rg = {d6, d1 + 1};
	CHECK(fx, run_until(fx, all_final, &rg, 3000) &&
		      final_outcome(&fx->recs[d6]) == OUTCOME_DELIVERED &&
		      final_outcome(&fx->recs[d1]) == OUTCOME_DELIVERED,
	      "both DELIVERED");
	raw_close(r);
	run_until(fx, sleep_cond, NULL, 200);
	campaign_free(w6);
	free(r);
}

/*
 * The ack timeout (1000 ms on the functional lane), connected all along: an
 * Alert left unacknowledged is sent again with the same seq, and again; once
 * RECEIVED it is not sent again (it waits for playback), and PLAYED ends it.
 */
static void test_ack_timeout(struct fixture *fx)
{
	struct rawt *r = calloc(1, sizeof(*r));
	struct campaign *w7 = make_campaign(fx, "W7", TOCSIN__MSG_TYPE__ALERT, NULL, 3600);
	CHECK(fx, raw_login(fx, r, "r-disp2", "disp2-secret"), "r-disp2 authenticated");
	long resent0 = gw_num(fx, "alerts_resent");
	uint64_t d7 = submit(fx, w7, "r-disp2");
	uint64_t seq[3] = {0};
	for (int i = 0; i < 3; i++) {
		Tocsin__Terminal__Frame *f = raw_expect(fx, r, TOCSIN__TERMINAL__FRAME__BODY_ALERT, 3000);
		seq[i] = f && !strcmp(f->alert->warning_id, "W7") ? f->alert->seq : 0;
	}
	CHECK(fx, seq[0] && seq[1] == seq[0] && seq[2] == seq[0] &&
		      gw_num(fx, "alerts_resent") - resent0 == 2 && fx->recs[d7].report == 0,
	      "unacknowledged: sent again after the ack timeout, twice, same seq, nothing reported");
	raw_ack(r, seq[0], TOCSIN__TERMINAL__ACK_STATE__RECEIVED);
	run_until(fx, sleep_cond, NULL, 2500); /* more than two ack timeouts */
	bool again = false;
	for (Tocsin__Terminal__Frame *f; (f = raw_next(fx, r, 100));) /* heartbeats, and... */
		again |= f->body_case == TOCSIN__TERMINAL__FRAME__BODY_ALERT;
	CHECK(fx, !again && gw_num(fx, "alerts_resent") - resent0 == 2 &&
		      fx->recs[d7].report == OUTCOME_ACCEPTED + 1,
	      "RECEIVED: accepted, and not sent again while it waits for playback");
	raw_ack(r, seq[0], TOCSIN__TERMINAL__ACK_STATE__PLAYED);
	struct range rg = {d7, d7 + 1};
	CHECK(fx, run_until(fx, all_final, &rg, 3000) &&
		      final_outcome(&fx->recs[d7]) == OUTCOME_DELIVERED,
	      "PLAYED: DELIVERED");
	raw_close(r);
	run_until(fx, sleep_cond, NULL, 200);
	campaign_free(w7);
	free(r);
}

/*
 * Short sends: a terminal with a 4 KB receive buffer that reads nothing
 * gets two ~40 KB Alerts and a heartbeat queued behind them. The first
 * leaves as header + shared body in pieces (sendmsg resumed after each
 * short send, across the header/body boundary), the rest waits in the
 * connection's output. Once the terminal reads, every frame arrives whole
 * and in order, each Alert with its own seq and the whole text.
 */
static void test_short_sends(struct fixture *fx)
{
	struct rawt *r = calloc(1, sizeof(*r));
	size_t big = 40000;
	char *text = malloc(big + 1);
	for (size_t i = 0; i < big; i++)
		text[i] = (char)('a' + i % 26);
	text[big] = 0;
	struct campaign *w8 = make_campaign_text(fx, "W8", TOCSIN__MSG_TYPE__ALERT, NULL, 3600, text);
	struct campaign *w9 = make_campaign_text(fx, "W9", TOCSIN__MSG_TYPE__ALERT, NULL, 3600, text);
	CHECK(fx, w8 && w9, "two 40 KB warnings");
	raw_rcvbuf = 4096;
	CHECK(fx, raw_login(fx, r, "r-disp2", "disp2-secret"), "r-disp2 authenticated");
	raw_rcvbuf = 0;
	struct terminal_stats st0;
	terminal_stats(&fx->lane, &st0);
	uint64_t d8 = submit(fx, w8, "r-disp2");
	uint64_t d9 = submit(fx, w9, "r-disp2");
	run_until(fx, sleep_cond, NULL, 300); /* the gateway sends what fits, then waits */
	struct terminal_stats st1;
	terminal_stats(&fx->lane, &st1);
	raw_heartbeat(r);
	bool got8 = false, got9 = false, order = true;
	uint64_t seq8 = 0;
	for (int i = 0; i < 2; i++) {
		Tocsin__Terminal__Frame *f = raw_expect(fx, r, TOCSIN__TERMINAL__FRAME__BODY_ALERT, 5000);
		if (!f)
			break;
		bool whole = strstr(f->alert->text, text) != NULL;
		if (!strcmp(f->alert->warning_id, "W8")) {
			got8 = whole;
			seq8 = f->alert->seq;
			order &= i == 0;
		} else if (!strcmp(f->alert->warning_id, "W9")) {
			got9 = whole && f->alert->seq != seq8;
			order &= i == 1;
		}
		raw_ack(r, f->alert->seq, TOCSIN__TERMINAL__ACK_STATE__PLAYED);
	}
	CHECK(fx, st1.short_sends > st0.short_sends, "the first Alert left in short sends");
	CHECK(fx, got8 && got9 && order, "both 40 KB Alerts arrive whole, in order, own seqs");
	struct range rg = {d8, d9 + 1};
	CHECK(fx, run_until(fx, all_final, &rg, 3000) &&
		      final_outcome(&fx->recs[d8]) == OUTCOME_DELIVERED &&
		      final_outcome(&fx->recs[d9]) == OUTCOME_DELIVERED,
	      "both DELIVERED");
	raw_close(r);
	run_until(fx, sleep_cond, NULL, 200);
	campaign_free(w8);
	campaign_free(w9);
	free(text);
	free(r);
}

/* --- readiness: exact numbers from the describe hook (what /v1/status and /metrics show) ---- */

struct seg_want {
	const char *id;
	long persons, covered, terminals, online;
};

static json_t *describe(struct fixture *fx)
{
	json_t *o = json_object();
	adapter_terminal.describe(&fx->lane, o);
	return o;
}

static bool segs_are(struct fixture *fx, const struct seg_want *want, size_t n, long total,
		     const char *what)
{
	json_t *o = describe(fx), *segs = json_object_get(o, "segments"), *s;
	size_t i, found = 0;
	bool ok = json_integer_value(json_object_get(o, "persons_online")) == total &&
		  json_integer_value(json_object_get(o, "population")) == 20;
	json_array_foreach(segs, i, s) {
		const char *id = json_string_value(json_object_get(s, "segment"));
		for (size_t k = 0; k < n; k++) {
			if (strcmp(id, want[k].id))
				continue;
			found++;
			long p = (long)json_integer_value(json_object_get(s, "persons"));
			long c = (long)json_integer_value(json_object_get(s, "covered"));
			double share = json_real_value(json_object_get(s, "share"));
			long t = (long)json_integer_value(json_object_get(s, "terminals"));
			long on = (long)json_integer_value(json_object_get(s, "online"));
			bool good = p == want[k].persons && c == want[k].covered &&
				    t == want[k].terminals && on == want[k].online &&
				    share > (double)c / (double)p - 1e-9 && share < (double)c / (double)p + 1e-9;
			if (!good)
				printf("# %s %s: persons %ld covered %ld terminals %ld online %ld\n", what,
				       id, p, c, t, on);
			ok &= good;
		}
	}
	if (!ok || found != n) {
		char *js = json_dumps(o, JSON_COMPACT);
		printf("# %s: %s\n", what, js);
		free(js);
	}
	json_decref(o);
	return ok && found == n;
}

static void test_readiness(struct fixture *fx)
{
	/* 200 t-* speakers online on C 35010101 (5 persons); C 35010201: r-disp1 and r-disp2
	 * on B1 (4 persons), r-spk on the community (10); C 35010202 (5) has none. */
	long nt = N_FUNC + 3 + fx->scale; /* t-*, t-bad, t-late, t-late2, s-* on C 35010101 */
	struct rawt *d1 = calloc(1, sizeof(*d1)), *d2 = calloc(1, sizeof(*d2)), *sp = calloc(1, sizeof(*sp));
	long on1 = N_FUNC + 2; /* t-bad never got in */
	struct seg_want none[] = {{"3501", 20, 5, nt + 3, on1}, {"350101", 5, 5, nt, on1},
				  {"35010101", 5, 5, nt, on1}, {"350102", 15, 0, 3, 0},
				  {"35010201", 10, 0, 3, 0}, {"35010202", 5, 0, 0, 0}};
	CHECK(fx, segs_are(fx, none, 6, 5, "no C2 terminal"),
	      "readiness: 5 of 20 covered (C1 5/5, C2 0/10, C3 0/5)");
	raw_login(fx, d1, "r-disp1", "disp1-secret");
	struct seg_want disp[] = {{"3501", 20, 9, nt + 3, on1 + 1}, {"350102", 15, 4, 3, 1},
				  {"35010201", 10, 4, 3, 1}};
	CHECK(fx, segs_are(fx, disp, 3, 9, "display"), "a display on B1: its building, 4 (9 of 20)");
	raw_login(fx, d2, "r-disp2", "disp2-secret");
	struct seg_want disp2[] = {{"3501", 20, 9, nt + 3, on1 + 2}, {"35010201", 10, 4, 3, 2}};
	CHECK(fx, segs_are(fx, disp2, 2, 9, "second display"),
	      "a second display on B1 adds nobody (still 9)");
	raw_login(fx, sp, "r-spk", "spk-secret");
	struct seg_want all[] = {{"3501", 20, 15, nt + 3, on1 + 3}, {"350102", 15, 10, 3, 3},
				 {"35010201", 10, 10, 3, 3}, {"35010202", 5, 0, 0, 0}};
	CHECK(fx, segs_are(fx, all, 4, 15, "speaker"),
	      "the speaker covers C2 whole, B1 not twice: 10/10, street 10/15, 15 of 20");
	raw_close(d1);
	raw_close(d2);
	run_until(fx, sleep_cond, NULL, 300);
	struct seg_want spk[] = {{"3501", 20, 15, nt + 3, on1 + 1}, {"350102", 15, 10, 3, 1},
				 {"35010201", 10, 10, 3, 1}, {"35010202", 5, 0, 0, 0}};
	CHECK(fx, segs_are(fx, spk, 4, 15, "displays gone"), "the displays go: still 15 (speaker)");
	raw_close(sp);
	run_until(fx, sleep_cond, NULL, 300);
	CHECK(fx, segs_are(fx, none, 6, 5, "all gone"), "the speaker goes: back to 5 of 20");
	json_t *o = describe(fx), *off = json_object_get(o, "offline_longest");
	const char *first = json_string_value(json_object_get(json_array_get(off, 0), "id"));
	CHECK(fx, json_array_size(off) == 10 && first &&
		      json_integer_value(json_object_get(json_array_get(off, 0), "last_seen")) == 0,
	      "offline longest (describe): 10 listed, first %s never connected", first ? first : "-");
	json_decref(o);
	/* the whole order: never connected (0, by id) first, then by last seen */
	size_t cap = (size_t)nt + 16, n;
	struct terminal_offline *all_off = calloc(cap, sizeof(*all_off));
	n = terminal_offline_oldest(&fx->lane, all_off, cap);
	long bad_at = -1, spk_at = -1, d1_at = -1;
	bool sorted = true;
	for (size_t i = 0; i < n; i++) {
		bad_at = !strcmp(all_off[i].id, "t-bad") ? (long)i : bad_at;
		spk_at = !strcmp(all_off[i].id, "r-spk") ? (long)i : spk_at;
		d1_at = !strcmp(all_off[i].id, "r-disp1") ? (long)i : d1_at;
		sorted &= i == 0 || all_off[i - 1].last_seen_s < all_off[i].last_seen_s ||
			  (all_off[i - 1].last_seen_s == all_off[i].last_seen_s &&
			   strcmp(all_off[i - 1].id, all_off[i].id) < 0);
	}
	CHECK(fx, sorted && bad_at >= 0 && all_off[bad_at].last_seen_s == 0 && spk_at > bad_at &&
		      d1_at > bad_at && all_off[spk_at].last_seen_s > 0,
	      "offline longest: %zu offline, t-bad (never) before r-disp1 and r-spk (seen)", n);
	/* a shorter list is the same order's head: the ten kept are the ten first */
	struct terminal_offline ten[10];
	size_t k = terminal_offline_oldest(&fx->lane, ten, 10);
	bool head = k == 10 && n >= 10;
	for (size_t i = 0; head && i < k; i++)
		head = !strcmp(ten[i].id, all_off[i].id) && ten[i].last_seen_s == all_off[i].last_seen_s;
	CHECK(fx, head, "offline longest: the first 10 asked alone are the whole list's first 10");
	free(all_off);
	free(d1);
	free(d2);
	free(sp);
}

/*
 * Two terminal lanes, one population: r-disp1 online on a second lane and
 * r-disp2 on the first, both on B1 (4 persons). Each lane's readiness is
 * the union (9 of 20, B1 once), and a terminal online on either lane is in
 * neither's offline list; once the second lane closes, r-disp1 is offline.
 */
static int open_lane(struct fixture *fx, struct lane *l, const char *name, int port, bool tls,
		     bool scale);

static bool offline_has(struct fixture *fx, const char *id)
{
	size_t cap = (size_t)(N_FUNC + 16 + fx->scale); /* every terminal the lane knows */
	struct terminal_offline *off = calloc(cap, sizeof(*off));
	size_t n = off ? terminal_offline_oldest(&fx->lane, off, cap) : 0;
	bool has = false;
	for (size_t i = 0; i < n; i++)
		has |= !strcmp(off[i].id, id);
	free(off);
	return has;
}

static bool b_closed(struct fixture *fx, void *arg)
{
	return offline_has(fx, "r-disp1");
}

static void test_readiness_lanes(struct fixture *fx)
{
	long nt = N_FUNC + 3 + fx->scale, on1 = N_FUNC + 2;
	int port = free_port(), gw_port = fx->gw_port;
	struct rawt *d1 = calloc(1, sizeof(*d1)), *d2 = calloc(1, sizeof(*d2));
	uint64_t known = (uint64_t)nt, on, k, persons;
	bool opened = open_lane(fx, &fx->b_lane, "terminals-b", port, false, false) == 0;
	fx->cur = &fx->b_lane;
	CHECK(fx, opened && run_until(fx, known_at_least, &known, 10000),
	      "a second plaintext lane knows the population");
	fx->cur = &fx->lane;
	bool in2 = raw_login(fx, d2, "r-disp2", "disp2-secret");
	fx->gw_port = port;
	bool in1 = raw_login(fx, d1, "r-disp1", "disp1-secret");
	fx->gw_port = gw_port;
	struct seg_want both[] = {{"3501", 20, 9, nt + 3, on1 + 2}, {"35010201", 10, 4, 3, 2}};
	CHECK(fx, in1 && in2 && segs_are(fx, both, 2, 9, "one display per lane"),
	      "a display on B1 on each lane: B1 counted once (9 of 20)");
	terminal_readiness(&fx->b_lane, &on, &k, &persons);
	CHECK(fx, on == 1 && persons == 9, "the second lane: 1 online of its own, persons %lu (the union)",
	      (unsigned long)persons);
	CHECK(fx, !offline_has(fx, "r-disp1") && !offline_has(fx, "r-disp2"),
	      "online on either lane: in no offline list");
	adapter_terminal.close(&fx->b_lane);
	struct seg_want one[] = {{"3501", 20, 9, nt + 3, on1 + 1}, {"35010201", 10, 4, 3, 1}};
	CHECK(fx, run_until(fx, b_closed, NULL, 3000) && segs_are(fx, one, 2, 9, "second lane closed"),
	      "the second lane closes: r-disp1 offline, B1 still covered by r-disp2");
	raw_close(d1);
	raw_close(d2);
	run_until(fx, sleep_cond, NULL, 300); /* b_lane is released at teardown */
	free(d1);
	free(d2);
}

/* --- TLS: the same protocol inside TLS, certificate made at test time ----------------------- */

static bool tls_closed_once(struct fixture *fx, void *arg)
{
	struct terminal_stats st;
	terminal_stats(&fx->tls_lane, &st);
	return st.closed[TERMINAL_CLOSE_TLS] >= *(uint64_t *)arg;
}

static bool tls_lane_empty(struct fixture *fx, void *arg)
{
	struct terminal_stats st;
	terminal_stats(&fx->tls_lane, &st);
	return st.conns == 0;
}

static void test_tls(struct fixture *fx, struct campaign *w)
{
	enum { N_TLS = 50 };
	fx->cur = &fx->tls_lane;
	uint64_t want = N_TLS;
	fx->swarm_pid[3] = start_swarm(fx, "swarm_a.csv", "tls.json", N_TLS);
	CHECK(fx, run_until(fx, online_at_least, &want, 20000),
	      "%d terminals authenticated over TLS (certificate checked by the swarm)", N_TLS);
	struct range r = {fx->n_dels, 0};
	char id[32];
	for (int i = 0; i < N_TLS; i++) {
		snprintf(id, sizeof(id), "t-%04d", i);
		submit(fx, w, id);
	}
	r.to = fx->n_dels;
	CHECK(fx, run_until(fx, all_final, &r, 20000), "an alert over TLS: every delivery final");
	int delivered = 0, failed = 0, want_failed = 0;
	for (uint64_t i = r.from; i < r.to; i++) {
		bool fails = fnv1a(fx->dels[i].address) % 100 < FAIL_PCT;
		want_failed += fails;
		delivered += !fails && final_outcome(&fx->recs[i]) == OUTCOME_DELIVERED;
		failed += fails && final_outcome(&fx->recs[i]) == OUTCOME_PERMANENT &&
			  !strcmp(fx->recs[i].reason, "terminal: speaker fault");
	}
	CHECK(fx, delivered == N_TLS - want_failed && failed == want_failed,
	      "over TLS: %d DELIVERED, %d PERMANENT (speaker fault)", delivered, failed);
	/* plaintext on the TLS port: not a TLS handshake, closed and counted */
	uint64_t tls_before = 0, one;
	struct terminal_stats st;
	terminal_stats(&fx->tls_lane, &st);
	tls_before = st.closed[TERMINAL_CLOSE_TLS];
	one = tls_before + 1;
	struct rawt *raw = calloc(1, sizeof(*raw));
	raw->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx->tls_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	connect(raw->fd, (struct sockaddr *)&sa, sizeof(sa));
	raw_write(raw, "\0\0\0\x05hello", 9);
	CHECK(fx, run_until(fx, tls_closed_once, &one, 3000) && raw_next(fx, raw, 3000) == NULL &&
		      raw->eof,
	      "plaintext on the TLS port: closed, counted as tls");
	raw_close(raw);
	free(raw);
	json_t *o = json_object();
	adapter_terminal.describe(&fx->tls_lane, o);
	CHECK(fx, json_is_true(json_object_get(o, "tls")), "describe says tls");
	json_decref(o);
	stop_pid(&fx->swarm_pid[3]);
	run_until(fx, tls_lane_empty, NULL, 5000); /* freed now, not during the scale measurement */
	fx->cur = &fx->lane;
}

/*
 * A gateway lane on port; with TLS, a certificate made now for 127.0.0.1.
 * scale: the production defaults but for max_connections (and ring_files
 * when RING_FILES is set), the certificate made earlier.
 */
static int open_lane(struct fixture *fx, struct lane *l, const char *name, int port, bool tls,
		     bool scale)
{
	struct config_lane cfg = {.channel = "terminal", .adapter = "terminal"};
	char err[256], cert[128], key[128], addr[32];
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	snprintf(cert, sizeof(cert), "%s/cert.pem", fx->dir);
	snprintf(key, sizeof(key), "%s/key.pem", fx->dir);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	const char *files = !scale ? "128" : getenv("RING_FILES") ? getenv("RING_FILES") : "";
	const char *kv[][2] = {{"listen", addr},	      {"ack_timeout_ms", "1000"},
			       {"heartbeat_ms", "2000"},      {"max_connections", "200000"},
			       {"handshake_ms", tls ? "10000" : "2000"},
			       {"send_buffer", "4096"}, /* short sends on big Alerts */
			       {"tls_cert", cert},	      {"tls_key", key},
			       /* plaintext: many small shards (see the top) */
			       {"ring_files", files},	      {"recv_buffers", "256"},
			       {"max_handshakes", "64"}};
	cfg.n_kv = 0;
	for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
		bool tls_key = !strncmp(kv[i][0], "tls_", 4), shard_key = i == 8 || i == 9;
		if (i == 10 && (tls || scale))
			continue; /* max_handshakes: the plaintext lane's */
		if ((tls_key && !tls) || (shard_key && (tls || !files[0])) ||
		    (scale && i > 0 && i != 3 && !tls_key && !shard_key))
			continue;
		if (scale && i == 9)
			continue; /* recv_buffers: the default */
		snprintf(cfg.kv[cfg.n_kv].key, sizeof(cfg.kv[0].key), "%s", kv[i][0]);
		snprintf(cfg.kv[cfg.n_kv].value, sizeof(cfg.kv[0].value), "%s", kv[i][1]);
		cfg.n_kv++;
	}
	if (tls && !scale) {
		char log[128];
		snprintf(log, sizeof(log), "%s/openssl.log", fx->dir);
		char *argv[] = {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
				"ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
				"-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
				"subjectAltName=IP:127.0.0.1", NULL};
		if (run_wait(argv, log) != 0) {
			printf("# openssl req failed (see %s)\n", log);
			return -1;
		}
	}
	lane_init(l, name, CHANNEL_TERMINAL, 0, 0, 200000, loop_now_ms(&fx->loop));
	l->adapter = &adapter_terminal;
	if (adapter_terminal.open(l, &fx->host, &cfg, err, sizeof(err)) < 0) {
		printf("# open %s: %s\n", name, err);
		return -1;
	}
	return 0;
}

/*
 * Silence judged on input read, not on input held: while the loop holds the
 * shards' input (a push: loop_defer_inbound each iteration), a terminal's
 * heartbeats wait unread, and its heartbeat timer must look again rather
 * than close it (heartbeat_tick's re-arm while loop_inbound_waiting); the
 * same for a handshake whose Hello waits unread (on_handshake_timeout). A
 * lane with 100 ms heartbeats (silence after 300 ms), 400 ms handshakes and
 * input held up to 1.5 s: r-disp1 heartbeats through a 1 s hold and stays;
 * r-disp2, silent, stays until the input is read, then goes; r-spk, whose
 * Hello goes out as the hold starts, is welcomed after it.
 */
struct hold {
	struct rawt *live, *silent, *late;
	uint64_t until_ms, next_hb_ms;
	bool hold;
};

static bool hold_step(struct fixture *fx, void *arg)
{
	struct hold *h = arg;
	uint64_t now = loop_now_ms(&fx->loop);
	if (h->hold)
		loop_defer_inbound(&fx->loop); /* as the gateway does for each Alert it sends */
	if (h->hold && !h->late->hello_len)
		raw_hello(h->late, "r-spk", "spk-secret", h->late->nonce);
	if (now >= h->next_hb_ms) {
		raw_heartbeat(h->live);
		h->next_hb_ms = now + 30;
	}
	raw_pump(h->live), raw_pump(h->silent);
	h->live->len = h->silent->len = 0; /* the gateway's heartbeats: not looked at */
	return h->hold ? now >= h->until_ms : h->silent->eof || h->live->eof;
}

static void test_silence_while_held(struct fixture *fx)
{
	struct config_lane cfg = {.channel = "terminal", .adapter = "terminal", .name = "terminals-hold"};
	char addr[32], err[256] = "";
	int port = free_port(), gw_port = fx->gw_port;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	const char *kv[][2] = {{"listen", addr}, {"heartbeat_ms", "100"}, {"ack_timeout_ms", "5000"},
			       {"inbound_defer_ms", "1500"}, {"handshake_ms", "400"}};
	for (size_t i = 0; i < 5; i++) {
		snprintf(cfg.kv[i].key, sizeof(cfg.kv[0].key), "%s", kv[i][0]);
		snprintf(cfg.kv[i].value, sizeof(cfg.kv[0].value), "%s", kv[i][1]);
	}
	cfg.n_kv = 5;
	unsigned defer = fx->loop.extra_defer_ms; /* the loop's: the largest of its lanes' */
	lane_init(&fx->h_lane, "terminals-hold", CHANNEL_TERMINAL, 0, 0, 100, loop_now_ms(&fx->loop));
	fx->h_lane.adapter = &adapter_terminal;
	bool opened = adapter_terminal.open(&fx->h_lane, &fx->host, &cfg, err, sizeof(err)) == 0;
	struct hold h = {.live = calloc(1, sizeof(struct rawt)), .silent = calloc(1, sizeof(struct rawt)),
			 .late = calloc(1, sizeof(struct rawt))};
	fx->gw_port = port;
	bool in = opened && raw_login(fx, h.live, "r-disp1", "disp1-secret") &&
		  raw_login(fx, h.silent, "r-disp2", "disp2-secret") && raw_open(fx, h.late);
	fx->gw_port = gw_port;
	struct terminal_stats st;
	terminal_stats(&fx->h_lane, &st);
	uint64_t before = st.closed[TERMINAL_CLOSE_HEARTBEAT_TIMEOUT],
		 hs_before = st.closed[TERMINAL_CLOSE_HANDSHAKE_TIMEOUT];
	CHECK(fx, in, "a lane with 100 ms heartbeats and input held up to 1.5 s: two terminals in, "
		      "a third challenged (%s)", err);
	h.hold = true;
	h.until_ms = loop_now_ms(&fx->loop) + 1000;
	run_until(fx, hold_step, &h, 3000);
	terminal_stats(&fx->h_lane, &st);
	CHECK(fx, in && !h.live->eof && !h.silent->eof &&
		      st.closed[TERMINAL_CLOSE_HEARTBEAT_TIMEOUT] == before,
	      "1 s of held input (over 3 heartbeat intervals): neither judged silent meanwhile");
	h.hold = false;
	bool gone = run_until(fx, hold_step, &h, 3000);
	terminal_stats(&fx->h_lane, &st);
	CHECK(fx, gone && h.silent->eof && !h.live->eof &&
		      st.closed[TERMINAL_CLOSE_HEARTBEAT_TIMEOUT] == before + 1,
	      "input read again: the silent one closed for its heartbeats, the live one stays");
	fx->gw_port = port;
	bool welcomed = raw_expect(fx, h.late, TOCSIN__TERMINAL__FRAME__BODY_WELCOME, 3000) != NULL;
	fx->gw_port = gw_port;
	terminal_stats(&fx->h_lane, &st);
	CHECK(fx, welcomed && st.closed[TERMINAL_CLOSE_HANDSHAKE_TIMEOUT] == hs_before,
	      "a Hello held past the 400 ms handshake deadline: welcomed once read, not timed out");
	raw_close(h.live);
	raw_close(h.silent);
	raw_close(h.late);
	adapter_terminal.close(&fx->h_lane);
	fx->loop.extra_defer_ms = defer; /* the later checks' pushes hold as before */
	run_until(fx, sleep_cond, NULL, 200);
	free(h.live);
	free(h.silent);
	free(h.late);
}

/* --- Status reports: volume and faults, at any time after Welcome --------------------------- */

static void raw_status(struct rawt *r, long volume, const char **faults, size_t n)
{
	Tocsin__Terminal__Status st = TOCSIN__TERMINAL__STATUS__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	st.has_volume = volume >= 0;
	st.volume = volume >= 0 ? (uint32_t)volume : 0;
	st.faults = (char **)faults;
	st.n_faults = n;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_STATUS;
	f.status = &st;
	raw_send(r, &f);
}

static bool reports_at_least(struct fixture *fx, void *arg)
{
	return gw_num(fx, "status_reports") >= *(long *)arg;
}

/* The latest fault report listed for id, or NULL (a new reference: json_decref it). */
static json_t *fault_of(struct fixture *fx, const char *id)
{
	json_t *o = describe(fx), *a = json_object_get(o, "faults_latest"), *e, *found = NULL;
	size_t i;
	json_array_foreach(a, i, e) {
		if (!found && !strcmp(json_string_value(json_object_get(e, "id")), id))
			found = json_incref(e);
	}
	json_decref(o);
	return found;
}

static void test_status_reports(struct fixture *fx)
{
	struct rawt *sp = calloc(1, sizeof(*sp));
	fx->cur = &fx->lane;
	CHECK(fx, raw_login(fx, sp, "r-spk", "spk-secret"), "r-spk logs in to report its status");
	long want = gw_num(fx, "status_reports") + 1, faulty = gw_num(fx, "terminals_faulty"),
	     muted = gw_num(fx, "terminals_muted");
	/* a quote and a newline in one name, invalid UTF-8 in another: made safe, not refused */
	const char *bad[] = {"amplifier", "mains \"power\"\n", "\xff\xfe", "\xe5\x96\x87\xe5\x8f\xad"};
	raw_status(sp, 0, bad, 4);
	bool got = run_until(fx, reports_at_least, &want, 3000);
	json_t *f = fault_of(fx, "r-spk");
	const char *text = f ? json_string_value(json_object_get(f, "faults")) : NULL;
	json_t *tls = json_object();
	adapter_terminal.describe(&fx->tls_lane, tls); /* the figures are the process's, as readiness */
	bool other = json_integer_value(json_object_get(tls, "terminals_faulty")) == faulty + 1 &&
		     json_integer_value(json_object_get(tls, "terminals_muted")) == muted + 1 &&
		     json_array_size(json_object_get(tls, "faults_latest")) > 0;
	json_decref(tls);
	CHECK(fx, other, "the other lane (TLS) shows the report too");
	CHECK(fx, got && gw_num(fx, "terminals_faulty") == faulty + 1 &&
		      gw_num(fx, "terminals_muted") == muted + 1 && text &&
		      !strcmp(text, "amplifier, mains ?power??, ?, \xe5\x96\x87\xe5\x8f\xad") &&
		      json_integer_value(json_object_get(f, "volume")) == 0 &&
		      json_integer_value(json_object_get(f, "at")) > 0,
	      "Status{volume 0, 4 faults}: faulty +1, muted +1, listed as \"%s\"", text ? text : "-");
	json_decref(f);
	/* out of range: the volume stays what it was (0), the faults are replaced */
	const char *one[] = {"speaker cone"};
	want++;
	raw_status(sp, 101, one, 1);
	got = run_until(fx, reports_at_least, &want, 3000);
	f = fault_of(fx, "r-spk");
	text = f ? json_string_value(json_object_get(f, "faults")) : NULL;
	CHECK(fx, got && text && !strcmp(text, "speaker cone") &&
		      json_integer_value(json_object_get(f, "volume")) == 0 &&
		      gw_num(fx, "terminals_faulty") == faulty + 1 &&
		      gw_num(fx, "terminals_muted") == muted + 1,
	      "volume 101 is ignored (still 0), the new fault list replaces the old");
	json_decref(f);
	want++;
	raw_status(sp, 70, NULL, 0);
	got = run_until(fx, reports_at_least, &want, 3000);
	f = fault_of(fx, "r-spk");
	CHECK(fx, got && !f && gw_num(fx, "terminals_faulty") == faulty &&
		      gw_num(fx, "terminals_muted") == muted && !sp->eof,
	      "Status{volume 70, no faults}: off the list, counts back, the connection stays open");
	json_decref(f);
	raw_close(sp);
	run_until(fx, sleep_cond, NULL, 200);
	free(sp);
}

/* A lane whose Acks could wait past their own timeout does not open, and says why. */
static void test_config_errors(struct fixture *fx)
{
	struct config_lane cfg = {.channel = "terminal", .adapter = "terminal", .name = "bad"};
	const char *kv[][2] = {{"listen", "127.0.0.1:0"}, {"ack_timeout_ms", "1000"},
			       {"inbound_defer_ms", "1000"}};
	for (size_t i = 0; i < 3; i++) {
		snprintf(cfg.kv[i].key, sizeof(cfg.kv[0].key), "%s", kv[i][0]);
		snprintf(cfg.kv[i].value, sizeof(cfg.kv[0].value), "%s", kv[i][1]);
	}
	cfg.n_kv = 3;
	struct lane l;
	char err[256] = "";
	lane_init(&l, "bad", CHANNEL_TERMINAL, 0, 0, 10, loop_now_ms(&fx->loop));
	int ret = adapter_terminal.open(&l, &fx->host, &cfg, err, sizeof(err));
	CHECK(fx, ret < 0 && strstr(err, "inbound_defer_ms") && strstr(err, "ack_timeout_ms"),
	      "inbound_defer_ms at the ack timeout: the lane does not open (%s)", err);
	lane_release(&l);
}

static int setup(struct fixture *fx, int scale)
{
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_terminal.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	char pop[96];
	snprintf(pop, sizeof(pop), "%s/pop", fx->dir);
	mkdir(pop, 0755);
	if (start_redis(fx) < 0 || write_population(fx, scale) < 0 || load_population(fx) != 0) {
		printf("# redis or tocsin load failed (see %s)\n", fx->dir);
		return -1;
	}
	snprintf(fx->redis_addr, sizeof(fx->redis_addr), "127.0.0.1:%d", fx->redis_port);
	fx->host = (struct lane_host){.loop = &fx->loop, .redis = fx->redis_addr, .prefix = "tocsin:",
				      .ctx = fx, .report = on_report, .receipt = on_receipt,
				      .up = on_up};
	fx->cur = &fx->lane;
	fx->gw_port = free_port();
	fx->tls_port = free_port();
	return open_lane(fx, &fx->lane, "terminals", fx->gw_port, false, false) < 0 ||
			       open_lane(fx, &fx->tls_lane, "terminals-tls", fx->tls_port, true, false) < 0
		       ? -1
		       : 0;
}

static bool no_timers(struct fixture *fx, void *arg)
{
	return fx->loop.n_timers == 0;
}

static void teardown(struct fixture *fx)
{
	for (int i = 0; i < 4; i++)
		stop_pid(&fx->swarm_pid[i]);
	for (int i = 0; i < MAX_SWARMS; i++)
		stop_pid(&fx->scale_pid[i]);
	bool open = fx->lane.adapter_state || fx->tls_lane.adapter_state ||
		    fx->scale_lane.adapter_state || fx->b_lane.adapter_state || fx->h_lane.adapter_state;
	if (fx->lane.adapter_state)
		adapter_terminal.close(&fx->lane);
	if (fx->tls_lane.adapter_state)
		adapter_terminal.close(&fx->tls_lane);
	if (fx->scale_lane.adapter_state)
		adapter_terminal.close(&fx->scale_lane);
	if (fx->b_lane.adapter_state)
		adapter_terminal.close(&fx->b_lane);
	if (fx->h_lane.adapter_state)
		adapter_terminal.close(&fx->h_lane);
	if (open) /* the gateways free themselves once their ops came back: no timer left then */
		run_until(fx, no_timers, NULL, 15000);
	lane_release(&fx->lane);
	lane_release(&fx->tls_lane);
	if (fx->scale_lane.name[0])
		lane_release(&fx->scale_lane);
	if (fx->b_lane.name[0])
		lane_release(&fx->b_lane);
	if (fx->h_lane.name[0])
		lane_release(&fx->h_lane);
	stop_pid(&fx->redis_pid);
	for (size_t i = 0; i < fx->n_dels; i++)
		free(fx->dels[i].address);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (fx->failures == 0 && system(cmd) != 0)
		printf("# could not remove %s\n", fx->dir);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 3)
		return 2;
	int scale = argc > 3 ? atoi(argv[3]) : 10000;
	bool tls_scale = argc > 4 && !strcmp(argv[4], "tls"); /* the scale check over TLS */
	/* The gateway's sockets are direct descriptors, not the process's; its
	 * shards' file tables may each hold RLIMIT_NOFILE (the soft one): take the hard. */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (scale > MAX_SWARMS * SWARM_CHUNK) {
		printf("# at most %d scale connections (%d swarms)\n", MAX_SWARMS * SWARM_CHUNK, MAX_SWARMS);
		return 2;
	}
	static struct fixture fx;
	terminal_arena_init(&arena, arena_mem, sizeof(arena_mem));
	snprintf(fx.tocsin, sizeof(fx.tocsin), "%s", argv[1]);
	snprintf(fx.swarm, sizeof(fx.swarm), "%s", argv[2]);
	if (system("command -v redis-server >/dev/null 2>&1") != 0)
		return 77;
	if (loop_init(&fx.loop, 4096) < 0) {
		printf("# io_uring unavailable: skipped\n");
		return 77;
	}
	fx.scale = scale;
	fx.cap_dels = (size_t)N_FUNC * 2 + 64 + (size_t)scale;
	fx.dels = calloc(fx.cap_dels, sizeof(*fx.dels));
	fx.recs = calloc(fx.cap_dels, sizeof(*fx.recs));
	if (!fx.dels || !fx.recs || setup(&fx, scale) < 0) {
		teardown(&fx);
		return 1;
	}
	struct campaign *w1 = make_campaign(&fx, "W1", TOCSIN__MSG_TYPE__ALERT, NULL, 3600);
	test_auth(&fx);
	test_alert(&fx, w1);
	test_late(&fx, w1);
	test_cancel(&fx);
	test_bad_input(&fx);
	test_slowloris(&fx, w1);
	test_handshake_cap(&fx);
	struct rawt *older = calloc(1, sizeof(*older)), *newer = calloc(1, sizeof(*newer));
	test_duplicate(&fx, older, newer, w1);
	test_update_cancel(&fx, newer);
	test_heartbeats(&fx, newer);
	raw_close(older);
	raw_close(newer);
	free(older);
	free(newer);
	run_until(&fx, sleep_cond, NULL, 200);
	test_reconnect(&fx, w1);
	test_ack_timeout(&fx);
	test_short_sends(&fx);
	test_readiness(&fx);
	test_readiness_lanes(&fx);
	test_status_reports(&fx);
	test_silence_while_held(&fx);
	test_config_errors(&fx);
	test_tls(&fx, w1);
	if (scale > 0) {
		fx.scale_tls = tls_scale;
		fx.scale_port = free_port();
		if (open_lane(&fx, &fx.scale_lane, "terminals-scale", fx.scale_port, tls_scale, true) < 0) {
			fx.failures++;
		} else {
			fx.cur = &fx.scale_lane;
			test_scale(&fx, scale);
		}
	}
	teardown(&fx);
	campaign_free(w1);
	loop_release(&fx.loop);
	printf("%s\n", fx.failures ? "FAILED" : "PASSED");
	return fx.failures ? 1 : 0;
}
