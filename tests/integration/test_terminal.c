/*
 * tests/integration/test_terminal.c: the terminal gateway end to end.
 *
 *   test_terminal TOCSIN_BINARY TERMINAL_SWARM_BINARY [SCALE_CONNECTIONS]
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
 *   5. the offline-longest list and readiness counts;
 *   6. scale: SCALE_CONNECTIONS (default 10000) more terminals connect; the
 *      bytes per idle connection (RSS delta) and the fan-out time of one
 *      alert to all of them are printed, not asserted.
 * Exit 0 = pass, 1 = fail, 77 = skipped (no redis-server or io_uring).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#define N_FUNC 200
#define FAIL_PCT 10

struct rec {
	int report;   /* last outcome reported + 1; 0 = none */
	int receipt;  /* last receipt outcome + 1; 0 = none */
	int n_reports;
	char reason[160];
};

struct fixture {
	char dir[64], tocsin[512], swarm[512], redis_addr[64];
	int redis_port, gw_port;
	pid_t redis_pid, swarm_pid[3];
	struct loop loop;
	struct lane lane;
	struct lane_host host;
	struct delivery *dels;
	struct rec *recs;
	size_t n_dels, cap_dels;
	int failures;
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
	FILE *b = open_in(fx, "swarm_b.csv", "w"), *c = open_in(fx, "swarm_c.csv", "w");
	char id[64], secret[64];
	if (!seg || !hh || !t || !a || !b || !c)
		return -1;
	fprintf(seg, "id,kind,parent,name,population\n3501,district,,D,1000\n"
		     "350101,street,3501,S,1000\n35010101,community,350101,C,1000\n"
		     "35010101B1,building,35010101,B,10\n");
	fprintf(hh, "id,building,persons,lang,phones,apps\n"
		    "35010101B1H1,35010101B1,2,zh-CN,+8613800000001,\n");
	const char *hdr = "id,segment,kind,covers_persons,secret\n";
	fputs(hdr, t), fputs(hdr, a), fputs(hdr, b), fputs(hdr, c);
	for (int i = 0; i < N_FUNC; i++) {
		snprintf(id, sizeof(id), "t-%04d", i);
		snprintf(secret, sizeof(secret), "secret-%04d", i);
		term_row(t, id, secret), term_row(a, id, secret);
	}
	term_row(t, "t-bad", "right-secret"), term_row(a, "t-bad", "wrong-secret");
	term_row(t, "t-late", "late-secret"), term_row(b, "t-late", "late-secret");
	term_row(t, "t-late2", "late2-secret"), term_row(b, "t-late2", "late2-secret");
	for (int i = 0; i < scale; i++) {
		snprintf(id, sizeof(id), "s-%05d", i);
		snprintf(secret, sizeof(secret), "scale-%05d", i);
		term_row(t, id, secret), term_row(c, id, secret);
	}
	fclose(seg), fclose(hh), fclose(t), fclose(a), fclose(b), fclose(c);
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

static struct campaign *make_campaign(struct fixture *fx, const char *id, Tocsin__MsgType type,
				      const char *ref, int64_t expires_in_s)
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
	in.instruction = "Stay indoors.";
	uint8_t payload[4096], env[8192], sig[64] = {0};
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

/* Submit one delivery for address; returns its id (index in fx->recs). */
static uint64_t submit(struct fixture *fx, struct campaign *c, const char *address)
{
	uint64_t id = fx->n_dels++;
	struct delivery *d = &fx->dels[id];
	memset(d, 0, sizeof(*d));
	d->id = id;
	d->campaign = c;
	d->lane = &fx->lane;
	d->address = strdup(address);
	d->household = UINT32_MAX;
	d->parts = 1;
	d->channel = CHANNEL_TERMINAL;
	d->state = DELIVERY_SENT;
	d->attempts = 1;
	fx->lane.adapter->submit(&fx->lane, d);
	return id;
}

/* Run the loop until cond(fx, arg) or timeout. */
static bool run_until(struct fixture *fx, bool (*cond)(struct fixture *, void *), void *arg,
		      int timeout_ms)
{
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
	terminal_readiness(&fx->lane, &on, &known, &persons);
	return on >= *(uint64_t *)arg;
}

struct range { uint64_t from, to; };

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
	return st.auth_failed >= 1;
}

static bool sleep_cond(struct fixture *fx, void *arg)
{
	return false;
}

static pid_t start_swarm(struct fixture *fx, const char *csv, const char *stats, int count)
{
	char target[64], csvp[128], statsp[128], n[16], log[128];
	snprintf(target, sizeof(target), "127.0.0.1:%d", fx->gw_port);
	snprintf(csvp, sizeof(csvp), "%s/%s", fx->dir, csv);
	snprintf(statsp, sizeof(statsp), "%s/%s", fx->dir, stats);
	snprintf(n, sizeof(n), "%d", count);
	snprintf(log, sizeof(log), "%s/swarm.log", fx->dir);
	char pct[8];
	snprintf(pct, sizeof(pct), "%d", FAIL_PCT);
	char *argv[] = {fx->swarm, "--csv", csvp, "--target", target, "--count", n, "--play-ms",
			"50", "--fail-pct", pct, "--stats", statsp, "--connect-rate", "20000",
			"--src-ips", "8", NULL};
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
	CHECK(fx, on == N_FUNC && persons == N_FUNC * 100,
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
	struct terminal_offline off[4];
	size_t n = terminal_offline_oldest(&fx->lane, off, 4);
	CHECK(fx, n >= 1 && !strcmp(off[0].id, "t-bad") && off[0].last_seen_s == 0,
	      "offline longest: %s (last seen %ld)", n ? off[0].id : "-",
	      n ? (long)off[0].last_seen_s : -1L);
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
	uint64_t want = N_FUNC + 2 + (uint64_t)scale;
	long before = rss_bytes();
	fx->swarm_pid[2] = start_swarm(fx, "swarm_c.csv", "c.json", scale);
	bool ok = run_until(fx, online_at_least, &want, 120000);
	CHECK(fx, ok, "%d more terminals connected (%lu online)", scale, (unsigned long)want);
	run_until(fx, sleep_cond, NULL, 1000);
	long after = rss_bytes();
	struct terminal_stats st;
	terminal_stats(&fx->lane, &st);
	printf("# scale: %d idle authenticated connections, RSS delta %ld bytes = %.0f bytes per "
	       "connection (gateway process; kernel socket memory not included; struct tconn %lu "
	       "+ struct term %lu bytes; shared ring %lu bytes not in the delta)\n",
	       scale, after - before, (double)(after - before) / scale,
	       (unsigned long)st.conn_bytes, (unsigned long)st.term_bytes,
	       (unsigned long)st.ring_bytes);
	struct campaign *w3 = make_campaign(fx, "W3", TOCSIN__MSG_TYPE__ALERT, NULL, 3600);
	char id[32];
	struct range r = {fx->n_dels, 0};
	uint64_t t0 = loop_now_ms(&fx->loop);
	for (int i = 0; i < scale; i++) {
		snprintf(id, sizeof(id), "s-%05d", i);
		submit(fx, w3, id);
	}
	r.to = fx->n_dels;
	ok = run_until(fx, all_final, &r, 60000);
	printf("# scale: alert fan-out to %d terminals, all final (played/failed) in %lu ms "
	       "(swarm play delay 50 ms)\n", scale, (unsigned long)(loop_now_ms(&fx->loop) - t0));
	CHECK(fx, ok, "the scale alert reached every terminal");
	campaign_free(w3);
}

static int setup(struct fixture *fx, int scale)
{
	struct config_lane cfg = {.name = "terminals", .channel = "terminal", .adapter = "terminal"};
	char err[256];
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
	fx->gw_port = free_port();
	const char *kv[][2] = {{"ack_timeout_ms", "1000"}, {"heartbeat_ms", "2000"},
			       {"max_connections", "100000"}};
	snprintf(cfg.kv[0].key, sizeof(cfg.kv[0].key), "listen");
	snprintf(cfg.kv[0].value, sizeof(cfg.kv[0].value), "127.0.0.1:%d", fx->gw_port);
	for (size_t i = 0; i < 3; i++) {
		snprintf(cfg.kv[i + 1].key, sizeof(cfg.kv[0].key), "%s", kv[i][0]);
		snprintf(cfg.kv[i + 1].value, sizeof(cfg.kv[0].value), "%s", kv[i][1]);
	}
	cfg.n_kv = 4;
	snprintf(fx->redis_addr, sizeof(fx->redis_addr), "127.0.0.1:%d", fx->redis_port);
	fx->host = (struct lane_host){.loop = &fx->loop, .redis = fx->redis_addr, .prefix = "tocsin:",
				      .ctx = fx, .report = on_report, .receipt = on_receipt,
				      .up = on_up};
	lane_init(&fx->lane, "terminals", CHANNEL_TERMINAL, 0, 0, 200000, loop_now_ms(&fx->loop));
	fx->lane.adapter = &adapter_terminal;
	if (adapter_terminal.open(&fx->lane, &fx->host, &cfg, err, sizeof(err)) < 0) {
		printf("# open: %s\n", err);
		return -1;
	}
	return 0;
}

static void teardown(struct fixture *fx)
{
	for (int i = 0; i < 3; i++)
		stop_pid(&fx->swarm_pid[i]);
	if (fx->lane.adapter_state) {
		adapter_terminal.close(&fx->lane);
		run_until(fx, sleep_cond, NULL, 300); /* let the cancelled ops come back */
	}
	lane_release(&fx->lane);
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
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)scale + 1024) {
		rlim_t want = (rlim_t)scale + 1024, hard = rl.rlim_max;
		rl.rlim_cur = want;
		rl.rlim_max = want > hard ? want : hard;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) { /* no CAP_SYS_RESOURCE: stay under the hard limit */
			rl.rlim_cur = rl.rlim_max = hard;
			setrlimit(RLIMIT_NOFILE, &rl);
			scale = hard > 1024 + N_FUNC ? (int)(hard - 1024 - N_FUNC) : 0;
			printf("# RLIMIT_NOFILE hard limit %lu: scale check with %d connections\n",
			       (unsigned long)hard, scale);
		}
	}
	static struct fixture fx;
	snprintf(fx.tocsin, sizeof(fx.tocsin), "%s", argv[1]);
	snprintf(fx.swarm, sizeof(fx.swarm), "%s", argv[2]);
	if (system("command -v redis-server >/dev/null 2>&1") != 0)
		return 77;
	if (loop_init(&fx.loop, 4096) < 0) {
		printf("# io_uring unavailable: skipped\n");
		return 77;
	}
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
	if (scale > 0)
		test_scale(&fx, scale);
	teardown(&fx);
	campaign_free(w1);
	loop_release(&fx.loop);
	printf("%s\n", fx.failures ? "FAILED" : "PASSED");
	return fx.failures ? 1 : 0;
}
