/*
 * tests/integration/test_smpp.c: adapters/smpp.c against real SMSCs.
 *
 *   test_smpp sim SMSC_SIM WORKDIR       against bench/smsc_sim (forked here)
 *   test_smpp npm NODE_SCRIPT WORKDIR    against node's `smpp` package server
 *
 * A fake dispatcher (the lane_host below) records every report, receipt and
 * up/down; deliveries belong to campaigns built with campaign_new() from a
 * protobuf-c envelope (dummy signature: campaign_new does not verify).
 * The sim run checks acceptance, one receipt per part matched across two
 * binds of one account, counts equal to the simulator's own, permanent
 * failures named, throttling, reconnect after the SMSC dies, unbind on
 * close, SMPP over TLS (a CA and certificates made here with the openssl
 * CLI: verified bind, wrong CA and wrong name refused with the reason
 * named), and receipts sent before their submit_sm_resp (none lost; the
 * early-receipt cache's bounds counted). The npm run checks the codec
 * against node's `smpp` server, in plain TCP and over TLS. Processes are
 * started here and stopped by pid.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "adapters.h"
#include "campaign.h"
#include "sms_text.h"
#include "warning.pb-c.h"

#define MAX_D 640

#define N_LANES 12

struct driver {
	struct loop loop;
	struct lane lanes[N_LANES];
	struct lane_host host;
	struct delivery d[MAX_D];
	int outcome[MAX_D];          /* -1 until reported */
	const char *reason[MAX_D];
	uint32_t retry_after[MAX_D];
	unsigned rc_delivered, rc_permanent, rc_expired, rc_unknown_id;
	unsigned parts_delivered[MAX_D];
	unsigned ups[N_LANES], downs[N_LANES];
	char why[N_LANES][320]; /* the last up/down reason */
	size_t n;
};

static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                     \
			printf(__VA_ARGS__);                                                       \
			printf("\n");                                                              \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

static void on_report(void *ctx, struct delivery *d, enum outcome o, const char *reason,
		      uint32_t retry_after_ms)
{
	struct driver *dr = ctx;
	size_t i = (size_t)(d - dr->d);
	dr->outcome[i] = (int)o;
	dr->reason[i] = reason;
	dr->retry_after[i] = retry_after_ms;
	d->lane->inflight--;
}

static void on_receipt(void *ctx, uint64_t id, enum outcome o, const char *reason)
{
	struct driver *dr = ctx;
	if (id == 0 || id > dr->n) {
		dr->rc_unknown_id++;
		return;
	}
	if (o == OUTCOME_DELIVERED) {
		dr->rc_delivered++;
		dr->parts_delivered[id - 1]++;
	} else if (o == OUTCOME_EXPIRED) {
		dr->rc_expired++;
	} else {
		dr->rc_permanent++;
	}
}

static void on_up(void *ctx, struct lane *l, bool up, const char *why)
{
	struct driver *dr = ctx;
	size_t i = (size_t)(l - dr->lanes);
	l->down = !up;
	if (up)
		dr->ups[i]++;
	else
		dr->downs[i]++;
	snprintf(dr->why[i], sizeof(dr->why[i]), "%s", why ? why : "");
	printf("lane %s %s (%s)\n", l->name, up ? "up" : "down", why);
}

static struct campaign *make_campaign(const char *id, const char *lang, const char *headline,
				      const char *instruction)
{
	Tocsin__Info info = TOCSIN__INFO__INIT;
	Tocsin__Info *infos[1] = {&info};
	info.language = (char *)lang;
	info.headline = (char *)headline;
	info.instruction = (char *)instruction;
	info.has_expires = 1;
	info.expires = loop_wall_s() + 3600;
	Tocsin__Warning w = TOCSIN__WARNING__INIT;
	w.identifier = (char *)id;
	w.has_status = 1;
	w.status = TOCSIN__STATUS__ACTUAL;
	w.n_info = 1;
	w.info = infos;
	uint8_t payload[4096], sig[64] = {1}, env[4200];
	size_t plen = tocsin__warning__pack(&w, payload);
	Tocsin__SignedWarning sw = TOCSIN__SIGNED_WARNING__INIT;
	sw.has_payload = sw.has_signature = 1;
	sw.payload = (ProtobufCBinaryData){plen, payload};
	sw.signature = (ProtobufCBinaryData){sizeof(sig), sig};
	sw.key_id = "dummy";
	size_t elen = tocsin__signed_warning__pack(&sw, env);
	char err[256];
	struct campaign *c = campaign_new(env, elen, 0, loop_wall_s(), "[DRILL]", err, sizeof(err));
	if (!c) {
		printf("campaign_new: %s\n", err);
		exit(1);
	}
	return c;
}

static void add_delivery(struct driver *dr, struct campaign *c, const char *addr)
{
	struct delivery *d = &dr->d[dr->n];
	memset(d, 0, sizeof(*d));
	d->id = dr->n + 1;
	d->campaign = c;
	d->address = strdup(addr);
	d->channel = CHANNEL_SMS;
	d->parts = (uint16_t)sms_text_parts(campaign_text(c, 0));
	d->attempts = 1;
	dr->outcome[dr->n] = -1;
	dr->n++;
}

/* n deliveries of c to +8613900000000, +8613900000001, ... */
static void add_numbered(struct driver *dr, struct campaign *c, int n)
{
	for (int i = 0; i < n; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "+861390000%04d", i);
		add_delivery(dr, c, addr);
	}
}

static pid_t spawn(char *const argv[])
{
	pid_t pid = fork();
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static void run_for(struct driver *dr, uint64_t ms)
{
	uint64_t end = loop_now_ms(&dr->loop) + ms;
	while (loop_now_ms(&dr->loop) < end)
		loop_run_once(&dr->loop, 10);
}

/* Run the loop until cond(dr) holds or timeout; false on timeout. */
static bool run_until(struct driver *dr, bool (*cond)(struct driver *, void *), void *arg,
		      uint64_t timeout_ms)
{
	uint64_t end = loop_now_ms(&dr->loop) + timeout_ms;
	while (!cond(dr, arg)) {
		if (loop_now_ms(&dr->loop) >= end)
			return false;
		loop_run_once(&dr->loop, 10);
	}
	return true;
}

static bool lanes_up(struct driver *dr, void *arg)
{
	size_t *which = arg;
	for (size_t i = which[0]; i < which[1]; i++)
		if (dr->lanes[i].down)
			return false;
	return true;
}

static bool lane_down(struct driver *dr, void *arg)
{
	return dr->lanes[*(size_t *)arg].down;
}

/* Hand deliveries [from, to) to lanes [l0, l1), window permitting, until all are answered. */
static bool all_reported(struct driver *dr, void *arg)
{
	size_t *r = arg;
	for (size_t i = r[0]; i < r[1]; i++) {
		if (dr->outcome[i] >= 0 || dr->d[i].lane)
			continue;
		struct lane *best = NULL;
		for (size_t k = r[2]; k < r[3]; k++)
			if (!dr->lanes[k].down && dr->lanes[k].inflight < dr->lanes[k].window)
				best = &dr->lanes[k];
		if (!best)
			break;
		dr->d[i].lane = best;
		best->inflight++;
		best->adapter->submit(best, &dr->d[i]);
	}
	for (size_t i = r[0]; i < r[1]; i++)
		if (dr->outcome[i] < 0)
			return false;
	return true;
}

/* extra: more {key, value} pairs, ending with {NULL}. 0, or -1 with err. */
static int try_open(struct driver *dr, size_t i, const char *name, const char *port,
		    const char *account, unsigned window, const char *const (*extra)[2], char *err,
		    size_t errlen)
{
	struct lane *l = &dr->lanes[i];
	lane_init(l, name, CHANNEL_SMS, 0, 0, window, 0);
	l->adapter = &adapter_smpp;
	l->down = true;
	struct config_lane cfg = {0};
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	const char *kv[][2] = {{"host", "127.0.0.1"}, {"port", port}, {"system_id", "tocsin"},
			       {"password", "pw"}, {"source_addr", "10690000"}, {"account", account},
			       {"enquire_link_s", "1"}, {"response_timeout_ms", "3000"},
			       {"receipt_grace_s", "60"}};
	for (size_t k = 0; k < sizeof(kv) / sizeof(kv[0]); k++) {
		snprintf(cfg.kv[k].key, sizeof(cfg.kv[k].key), "%s", kv[k][0]);
		snprintf(cfg.kv[k].value, sizeof(cfg.kv[k].value), "%s", kv[k][1]);
		cfg.n_kv++;
	}
	for (size_t k = 0; extra && extra[k][0]; k++, cfg.n_kv++) {
		snprintf(cfg.kv[cfg.n_kv].key, sizeof(cfg.kv[0].key), "%s", extra[k][0]);
		snprintf(cfg.kv[cfg.n_kv].value, sizeof(cfg.kv[0].value), "%s", extra[k][1]);
	}
	return adapter_smpp.open(l, &dr->host, &cfg, err, errlen);
}

static void open_lane_kv(struct driver *dr, size_t i, const char *name, const char *port,
			 const char *account, unsigned window, const char *const (*extra)[2])
{
	char err[256] = "";
	if (try_open(dr, i, name, port, account, window, extra, err, sizeof(err)) < 0) {
		printf("open %s: %s\n", name, err);
		exit(1);
	}
}

static void open_lane(struct driver *dr, size_t i, const char *name, const char *port,
		      const char *account, unsigned window)
{
	open_lane_kv(dr, i, name, port, account, window, NULL);
}

static json_t *read_stats(pid_t pid, const char *path)
{
	unlink(path);
	kill(pid, SIGUSR1);
	for (int i = 0; i < 200; i++) {
		json_t *j = json_load_file(path, 0, NULL);
		if (j)
			return j;
		usleep(10000);
	}
	printf("no stats from smsc_sim at %s\n", path);
	exit(1);
}

static long long jget(json_t *j, const char *a, const char *b)
{
	json_t *v = json_object_get(j, a);
	if (b)
		v = json_object_get(v, b);
	return json_integer_value(v);
}

static char *wait_port(const char *path)
{
	static char port[16];
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(path, "r");
		if (f && fgets(port, sizeof(port), f)) {
			fclose(f);
			port[strcspn(port, "\n")] = 0;
			if (port[0])
				return port;
		} else if (f) {
			fclose(f);
		}
		usleep(10000);
	}
	printf("SMSC did not write its port to %s\n", path);
	exit(1);
}

/* A phase's smsc_sim: started with its port and stats files in dir/NAME.port, dir/NAME.json. */
struct sim {
	pid_t pid;
	char port[16];
	char stats[512];
};

/* Start smsc_sim NAME with `extra` (NULL-terminated, at most 24) and wait for its port. */
static void sim_start(struct sim *s, const char *sim, const char *dir, const char *name,
		      const char *const *extra)
{
	char port_file[512];
	snprintf(port_file, sizeof(port_file), "%s/%s.port", dir, name);
	snprintf(s->stats, sizeof(s->stats), "%s/%s.json", dir, name);
	unlink(port_file);
	char *argv[32] = {(char *)sim, "--port", "0", "--port-file", port_file, "--stats", s->stats};
	int n = 7;
	for (; *extra && n < 31; extra++)
		argv[n++] = (char *)*extra;
	argv[n] = NULL;
	s->pid = spawn(argv);
	snprintf(s->port, sizeof(s->port), "%s", wait_port(port_file));
}

static const char LONG_HEAD[] = "福州市气象台发布台风红色预警信号";
static const char LONG_INSTR[] =
	"预计未来十二小时内本市将受台风严重影响，平均风力可达十二级以上，请立即停止户外作业，"
	"人员撤离至安全地带，关好门窗，远离广告牌和临时搭建物，低洼地区居民注意防范内涝和山洪。"
	"学校停课，船只回港避风，密切关注气象部门发布的最新信息，如遇险情请拨打一一零求助。";

static void settle_receipts(struct driver *dr);

/* Phase A: two binds of one account, a mix of texts, receipts on either bind. */
static void phase_counts(struct driver *dr, const char *sim, const char *dir)
{
	struct sim sm;
	sim_start(&sm, sim, dir, "sim1", (const char *[]){"--latency-ms", "5", "--receipt-delay-ms",
		  "30", "--mix", "delivrd=90,undeliv=5,expired=3,none=2", "--id-format", "mixed",
		  "--bad-prefix", "8699", NULL});
	pid_t pid = sm.pid;
	const char *port = sm.port, *stats = sm.stats;
	open_lane(dr, 0, "sms-a1", port, "acct-A", 32);
	open_lane(dr, 1, "sms-a2", port, "acct-A", 32);
	dr->lanes[0].next = &dr->lanes[1]; /* the dispatcher's list */
	size_t up[2] = {0, 2};
	CHECK(run_until(dr, lanes_up, up, 5000), "binds up");

	struct campaign *zl = make_campaign("w-long", "zh-CN", LONG_HEAD, LONG_INSTR);
	struct campaign *zs = make_campaign("w-short", "zh-CN", "台风红色预警", "请留在室内。");
	struct campaign *en = make_campaign("w-en", "en-US", "Typhoon red warning", "Stay indoors.");
	struct campaign *cs[4] = {zl, zs, en, zs};
	unsigned zh_parts = 0, gsm_parts = 0, parts = 0, good_parts = 0;
	size_t first = dr->n;
	for (int i = 0; i < 204; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), i < 200 ? "+861380000%04d" : "+869900000%04d", i);
		add_delivery(dr, i < 200 ? cs[i % 4] : zs, addr);
		struct delivery *d = &dr->d[dr->n - 1];
		parts += d->parts;
		good_parts += i < 200 ? d->parts : 0;
		*(d->campaign == en ? &gsm_parts : &zh_parts) += d->parts;
	}
	CHECK(sms_text_parts(campaign_text(zl, 0)) == 3, "long text is 3 parts, got %u",
	      sms_text_parts(campaign_text(zl, 0)));
	size_t r[4] = {first, dr->n, 0, 2};
	CHECK(run_until(dr, all_reported, r, 20000), "all 204 reported");
	unsigned accepted = 0, permanent = 0;
	for (size_t i = first; i < dr->n; i++) {
		accepted += dr->outcome[i] == OUTCOME_ACCEPTED;
		if (dr->outcome[i] == OUTCOME_PERMANENT) {
			permanent++;
			CHECK(dr->reason[i] && !strcmp(dr->reason[i], "ESME_RINVDSTADR (0x0000000B)"),
			      "reason %s", dr->reason[i] ? dr->reason[i] : "(null)");
		}
	}
	CHECK(accepted == 200 && permanent == 4, "accepted %u permanent %u", accepted, permanent);
	settle_receipts(dr); /* until they stop coming */
	json_t *j = read_stats(pid, stats);
	printf("sim1: submit_sm %lld messages %lld accepted %lld DELIVRD %lld UNDELIV %lld "
	       "EXPIRED %lld none %lld; ours: delivered %u permanent %u expired %u\n",
	       jget(j, "submit_sm", NULL), jget(j, "messages", NULL), jget(j, "accepted", NULL),
	       jget(j, "receipts", "DELIVRD"), jget(j, "receipts", "UNDELIV"),
	       jget(j, "receipts", "EXPIRED"), jget(j, "receipts", "none"), dr->rc_delivered,
	       dr->rc_permanent, dr->rc_expired);
	CHECK(jget(j, "binds", NULL) == 2, "binds");
	CHECK(jget(j, "submit_sm", NULL) == parts, "submit_sm %lld vs %u", jget(j, "submit_sm", NULL), parts);
	CHECK(jget(j, "messages", NULL) == 204, "messages");
	CHECK(jget(j, "unique_destinations", NULL) == 204, "destinations");
	CHECK(jget(j, "accepted", NULL) == good_parts, "accepted parts");
	CHECK(jget(j, "rejected", NULL) == 4, "rejected");
	CHECK(jget(j, "dc_ucs2", NULL) == zh_parts && jget(j, "dc_gsm", NULL) == gsm_parts,
	      "data_coding counts");
	CHECK(jget(j, "parts_udh", NULL) == 50 * 3, "UDH parts");
	CHECK(jget(j, "receipts", "DELIVRD") == dr->rc_delivered, "DELIVRD receipts matched");
	CHECK(jget(j, "receipts", "UNDELIV") == dr->rc_permanent, "UNDELIV receipts matched");
	CHECK(jget(j, "receipts", "EXPIRED") == dr->rc_expired, "EXPIRED receipts matched");
	CHECK(jget(j, "receipts", "unsent") == 0, "unsent receipts");
	CHECK(dr->rc_unknown_id == 0, "receipts for unknown ids");
	CHECK(jget(j, "receipts", "DELIVRD") + jget(j, "receipts", "UNDELIV") +
			      jget(j, "receipts", "EXPIRED") + jget(j, "receipts", "none") ==
		      good_parts, "one receipt decision per part");
	for (size_t i = first; i < dr->n; i++)
		CHECK(dr->parts_delivered[i] <= dr->d[i].parts, "parts delivered <= parts");
	json_decref(j);
	adapter_smpp.close(&dr->lanes[0]);
	adapter_smpp.close(&dr->lanes[1]);
	run_for(dr, 300);
	stop(pid);
	j = json_load_file(stats, 0, NULL);
	CHECK(j && jget(j, "unbinds", NULL) == 2, "unbind on close");
	json_decref(j);
	campaign_free(zl);
	campaign_free(zs);
	campaign_free(en);
}

/* Phase B: a low throttle rate gives THROTTLED outcomes with the status named. */
static void phase_throttle(struct driver *dr, const char *sim, const char *dir)
{
	struct sim sm;
	sim_start(&sm, sim, dir, "sim2", (const char *[]){"--throttle-rate", "20", "--mix", "none=1",
		  NULL});
	pid_t pid = sm.pid;
	const char *stats = sm.stats;
	open_lane(dr, 2, "sms-b", sm.port, "acct-B", 64);
	size_t up[2] = {2, 3};
	CHECK(run_until(dr, lanes_up, up, 5000), "bind up");
	struct campaign *zs = make_campaign("w-t", "zh-CN", "暴雨橙色预警", "注意防范。");
	size_t first = dr->n;
	add_numbered(dr, zs, 100);
	size_t r[4] = {first, dr->n, 2, 3};
	CHECK(run_until(dr, all_reported, r, 10000), "all 100 reported");
	unsigned acc = 0, thr = 0;
	for (size_t i = first; i < dr->n; i++) {
		acc += dr->outcome[i] == OUTCOME_ACCEPTED;
		if (dr->outcome[i] == OUTCOME_THROTTLED) {
			thr++;
			CHECK(dr->retry_after[i] == 1000, "retry_after");
			CHECK(dr->reason[i] && !strcmp(dr->reason[i], "ESME_RTHROTTLED (0x00000058)"),
			      "throttle reason");
		}
	}
	json_t *j = read_stats(pid, stats);
	printf("sim2: throttled %lld accepted %lld; ours: accepted %u throttled %u\n",
	       jget(j, "throttled", NULL), jget(j, "accepted", NULL), acc, thr);
	CHECK(thr > 0 && acc + thr == 100, "accepted %u throttled %u", acc, thr);
	CHECK(jget(j, "throttled", NULL) == thr && jget(j, "accepted", NULL) == acc, "sim agrees");
	json_decref(j);
	adapter_smpp.close(&dr->lanes[2]);
	run_for(dr, 300);
	stop(pid);
	campaign_free(zs);
}

/* Phase C: the SMSC dies (lane down), comes back on the same port (lane up again). */
static void phase_reconnect(struct driver *dr, const char *sim, const char *dir)
{
	struct sim sm;
	sim_start(&sm, sim, dir, "sim3", (const char *[]){NULL});
	pid_t pid = sm.pid;
	const char *port = sm.port;
	open_lane(dr, 3, "sms-c", port, "acct-C", 8);
	size_t up[2] = {3, 4}, idx = 3;
	CHECK(run_until(dr, lanes_up, up, 5000), "bind up");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CHECK(run_until(dr, lane_down, &idx, 3000), "lane reported down after the SMSC died");
	char *argv2[] = {(char *)sim, "--port", (char *)port, NULL};
	pid = spawn(argv2);
	CHECK(run_until(dr, lanes_up, up, 10000), "lane up again after reconnect");
	CHECK(dr->ups[3] == 2 && dr->downs[3] >= 2, "ups %u downs %u", dr->ups[3], dr->downs[3]);
	adapter_smpp.close(&dr->lanes[3]);
	run_for(dr, 300);
	stop(pid);
}

/* A private CA, a certificate for localhost and 127.0.0.1 it signed, and an unrelated CA. */
static bool make_certs(const char *dir)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > san.ext && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
		 "-keyout ca.key -out ca.pem -subj '/CN=tocsin test SMSC CA' 2>/dev/null && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
		 "-keyout other-ca.key -out other-ca.pem -subj '/CN=an unrelated CA' 2>/dev/null && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout smsc.key "
		 "-out smsc.csr -subj '/CN=localhost' 2>/dev/null && "
		 "openssl x509 -req -in smsc.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
		 "-extfile san.ext -out smsc.pem 2>/dev/null",
		 dir);
	return system(cmd) == 0;
}

static long long adapter_num(struct lane *l, const char *key)
{
	json_t *o = json_object();
	adapter_smpp.describe(l, o);
	long long v = json_integer_value(json_object_get(o, key));
	json_decref(o);
	return v;
}

static unsigned receipts_seen(struct driver *dr)
{
	return dr->rc_delivered + dr->rc_permanent + dr->rc_expired;
}

/* Run until receipts stop coming (five quiet 100 ms rounds). */
static void settle_receipts(struct driver *dr)
{
	unsigned last = ~0u;
	for (int quiet = 0; quiet < 5;) {
		run_for(dr, 100);
		unsigned now = receipts_seen(dr);
		quiet = now == last ? quiet + 1 : 0;
		last = now;
	}
}

/* The adapter's last failure reason (describe(): smpp_last_error), into dr->why[i]. */
static const char *last_error(struct driver *dr, size_t i)
{
	json_t *o = json_object();
	adapter_smpp.describe(&dr->lanes[i], o);
	snprintf(dr->why[i], sizeof(dr->why[i]), "%s",
		 json_string_value(json_object_get(o, "smpp_last_error")) ?: "");
	json_decref(o);
	return dr->why[i];
}

static bool handshake_refused(struct driver *dr, void *arg)
{
	return strstr(last_error(dr, *(size_t *)arg), "TLS handshake failed") != NULL;
}

/* Queue `count` deliveries alternating the long and short texts; returns the parts. */
static unsigned add_batch(struct driver *dr, struct campaign *a, struct campaign *b, int count,
			  const char *prefix)
{
	unsigned parts = 0;
	for (int i = 0; i < count; i++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "%s%04d", prefix, i);
		add_delivery(dr, i % 2 ? b : a, addr);
		parts += dr->d[dr->n - 1].parts;
	}
	return parts;
}

/* Phase D: SMPP over TLS; a verified bind works end to end, a wrong CA or name is refused and named. */
static void phase_tls(struct driver *dr, const char *sim, const char *dir)
{
	char cert[512], key[512], ca[512], other[512];
	snprintf(cert, sizeof(cert), "%s/smsc.pem", dir);
	snprintf(key, sizeof(key), "%s/smsc.key", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(other, sizeof(other), "%s/other-ca.pem", dir);
	if (!make_certs(dir)) {
		CHECK(0, "the openssl CLI could not make the test certificates in %s", dir);
		return;
	}
	/* bad TLS settings fail open() with the key named */
	char err[256] = "";
	const char *const bad_tls[][2] = {{"tls", "maybe"}, {NULL, NULL}};
	const char *const bad_ca[][2] = {{"tls", "on"}, {"ca_file", "/nonexistent/ca.pem"}, {NULL, NULL}};
	CHECK(try_open(dr, 4, "sms-bad", "2775", "acct-X", 4, bad_tls, err, sizeof(err)) < 0 &&
		      strstr(err, "tls: on or off"), "tls = maybe refused: %s", err);
	CHECK(try_open(dr, 4, "sms-bad", "2775", "acct-X", 4, bad_ca, err, sizeof(err)) < 0 &&
		      strstr(err, "ca_file") && strstr(err, "/nonexistent/ca.pem"),
	      "missing ca_file refused: %s", err);
	struct sim sm;
	sim_start(&sm, sim, dir, "sim4", (const char *[]){"--tls-cert", cert, "--tls-key", key,
		  "--receipt-delay-ms", "5", "--mix", "delivrd=1", NULL});
	pid_t pid = sm.pid;
	const char *port = sm.port, *stats = sm.stats;
	const char *const good[][2] = {{"tls", "on"}, {"ca_file", ca}, {"server_name", "localhost"},
				       {NULL, NULL}};
	open_lane_kv(dr, 4, "sms-tls", port, "acct-T", 16, good);
	size_t up[2] = {4, 5};
	CHECK(run_until(dr, lanes_up, up, 5000), "TLS bind up (%s)", dr->why[4]);
	CHECK(adapter_num(&dr->lanes[4], "smpp_tls") == 1, "describe says TLS");

	struct campaign *zl = make_campaign("w-tls-long", "zh-CN", LONG_HEAD, LONG_INSTR);
	struct campaign *zs = make_campaign("w-tls-short", "zh-CN", "台风红色预警", "请留在室内。");
	size_t first = dr->n;
	unsigned parts = add_batch(dr, zl, zs, 40, "+861370000"), before = dr->rc_delivered;
	size_t r[4] = {first, dr->n, 4, 5};
	CHECK(run_until(dr, all_reported, r, 10000), "all 40 reported over TLS");
	unsigned accepted = 0;
	for (size_t i = first; i < dr->n; i++)
		accepted += dr->outcome[i] == OUTCOME_ACCEPTED;
	settle_receipts(dr);
	json_t *j = read_stats(pid, stats);
	printf("sim4 (TLS): handshakes %lld binds %lld submit_sm %lld DELIVRD %lld; ours: accepted "
	       "%u receipts %u of %u parts\n", jget(j, "tls_handshakes", NULL), jget(j, "binds", NULL),
	       jget(j, "submit_sm", NULL), jget(j, "receipts", "DELIVRD"), accepted,
	       dr->rc_delivered - before, parts);
	CHECK(accepted == 40, "accepted %u of 40", accepted);
	CHECK(jget(j, "submit_sm", NULL) == parts, "parts on the wire");
	CHECK(jget(j, "receipts", "DELIVRD") == parts && dr->rc_delivered - before == parts,
	      "every part's receipt back over TLS");
	CHECK(jget(j, "tls_handshakes", NULL) == 1 && jget(j, "binds", NULL) == 1, "one TLS bind");
	json_decref(j);

	const char *const wrong_ca[][2] = {{"tls", "on"}, {"ca_file", other},
					   {"server_name", "localhost"}, {NULL, NULL}};
	const char *const wrong_name[][2] = {{"tls", "on"}, {"ca_file", ca},
					     {"server_name", "smsc.example.net"}, {NULL, NULL}};
	open_lane_kv(dr, 5, "sms-tls-wrong-ca", port, "acct-T5", 4, wrong_ca);
	open_lane_kv(dr, 6, "sms-tls-wrong-name", port, "acct-T6", 4, wrong_name);
	size_t i5 = 5, i6 = 6;
	CHECK(run_until(dr, handshake_refused, &i5, 5000), "wrong CA refused (%s)", dr->why[5]);
	CHECK(run_until(dr, handshake_refused, &i6, 5000), "wrong name refused (%s)", dr->why[6]);
	printf("wrong CA: %s\nwrong name: %s\n", dr->why[5], dr->why[6]);
	CHECK(strstr(dr->why[5], "certificate verify failed: unable to get local issuer certificate"),
	      "the reason names the verification failure: %s", dr->why[5]);
	CHECK(strstr(dr->why[6], "certificate verify failed: hostname mismatch"),
	      "the reason names the name mismatch: %s", dr->why[6]);
	CHECK(dr->ups[5] == 0 && dr->ups[6] == 0, "never up");
	/* the simulator counts a refused handshake when it sees the client's alert: on a
	   busy machine that may come after our side has given up, so ask again for a while */
	j = read_stats(pid, stats);
	for (int i = 0; i < 30 && jget(j, "tls_failures", NULL) < 2; i++) {
		json_decref(j);
		run_for(dr, 100);
		j = read_stats(pid, stats);
	}
	CHECK(jget(j, "binds", NULL) == 1 && jget(j, "tls_failures", NULL) >= 2,
	      "no bind past a refused certificate (binds %lld, TLS failures %lld)",
	      jget(j, "binds", NULL), jget(j, "tls_failures", NULL));
	json_decref(j);
	for (size_t i = 4; i < 7; i++)
		adapter_smpp.close(&dr->lanes[i]);
	run_for(dr, 300);
	stop(pid);
	j = json_load_file(stats, 0, NULL);
	CHECK(j && jget(j, "unbinds", NULL) == 1, "unbind over TLS on close");
	json_decref(j);
	campaign_free(zl);
	campaign_free(zs);
}

/* One early-receipt run: lane `li` against a --receipt-first SMSC; every delivery accepted. */
static void early_run(struct driver *dr, size_t li, const char *port, const char *account,
		      unsigned window, const char *const (*extra)[2], struct campaign *a,
		      struct campaign *b, int count, unsigned *parts, unsigned *rc)
{
	open_lane_kv(dr, li, account, port, account, window, extra);
	size_t up[2] = {li, li + 1};
	CHECK(run_until(dr, lanes_up, up, 5000), "bind up (%s)", account);
	size_t first = dr->n;
	unsigned before = dr->rc_delivered;
	*parts = add_batch(dr, a, b, count, "+861360000");
	size_t r[4] = {first, dr->n, li, li + 1};
	CHECK(run_until(dr, all_reported, r, 10000), "all reported (%s)", account);
	for (size_t i = first; i < dr->n; i++)
		CHECK(dr->outcome[i] == OUTCOME_ACCEPTED, "accepted (%s)", account);
	settle_receipts(dr);
	run_for(dr, 200); /* the 100 ms tick trims what aged out */
	*rc = dr->rc_delivered - before;
}

/* Phase E: every receipt comes before its submit_sm_resp: none lost; the cache's bounds counted. */
static void phase_early(struct driver *dr, const char *sim, const char *dir)
{
	struct sim sm;
	sim_start(&sm, sim, dir, "sim5", (const char *[]){"--receipt-first", "--latency-ms", "30",
		  "--mix", "delivrd=1", NULL});
	pid_t pid = sm.pid;
	const char *port = sm.port, *stats = sm.stats;
	struct campaign *zl = make_campaign("w-early-long", "zh-CN", LONG_HEAD, LONG_INSTR);
	struct campaign *en = make_campaign("w-early-en", "en-US", "Typhoon red warning", "Stay indoors.");
	unsigned parts, rc;

	/* default cache: nothing lost, every receipt matched from the cache */
	early_run(dr, 7, port, "acct-E1", 32, NULL, zl, en, 60, &parts, &rc);
	long long m = adapter_num(&dr->lanes[7], "smpp_early_receipts_matched"),
		  d = adapter_num(&dr->lanes[7], "smpp_early_receipts_dropped");
	json_t *j = read_stats(pid, stats);
	printf("sim5 (receipt first): DELIVRD %lld; ours: receipts %u of %u parts, early matched "
	       "%lld dropped %lld\n", jget(j, "receipts", "DELIVRD"), rc, parts, m, d);
	CHECK(jget(j, "receipts", "DELIVRD") == parts && rc == parts, "no receipt lost");
	CHECK(m == parts && d == 0, "all matched from the early cache");
	CHECK(adapter_num(&dr->lanes[7], "smpp_early_receipts_waiting") == 0, "none left waiting");
	for (size_t i = dr->n - 60; i < dr->n; i++)
		CHECK(dr->parts_delivered[i] == dr->d[i].parts, "every part of delivery %zu", i);
	json_decref(j);
	adapter_smpp.close(&dr->lanes[7]);
	run_for(dr, 200);

	/* a cache of 4 against a window of 16: the overflow is dropped and counted */
	const char *const small[][2] = {{"early_receipts", "4"}, {NULL, NULL}};
	early_run(dr, 8, port, "acct-E2", 16, small, en, en, 40, &parts, &rc);
	m = adapter_num(&dr->lanes[8], "smpp_early_receipts_matched");
	d = adapter_num(&dr->lanes[8], "smpp_early_receipts_dropped");
	printf("cache of 4: receipts %u of %u, early matched %lld dropped %lld\n", rc, parts, m, d);
	CHECK(d > 0 && m + d == parts && rc == m, "overflow counted (matched %lld dropped %lld)", m, d);
	adapter_smpp.close(&dr->lanes[8]);
	run_for(dr, 200);

	/* receipts kept 5 ms against a 30 ms SMSC latency: all age out, counted */
	const char *const brief[][2] = {{"early_receipt_ms", "5"}, {NULL, NULL}};
	early_run(dr, 9, port, "acct-E3", 8, brief, en, en, 16, &parts, &rc);
	m = adapter_num(&dr->lanes[9], "smpp_early_receipts_matched");
	d = adapter_num(&dr->lanes[9], "smpp_early_receipts_dropped");
	printf("kept 5 ms: receipts %u of %u, early matched %lld dropped %lld\n", rc, parts, m, d);
	CHECK(m == 0 && d == parts && rc == 0, "aged out and counted (matched %lld dropped %lld)", m, d);
	adapter_smpp.close(&dr->lanes[9]);
	run_for(dr, 300);
	stop(pid);
	campaign_free(zl);
	campaign_free(en);
}

/*
 * npm mode: node's smpp server checks data_coding 8 and the UDH of a long
 * Chinese text, in plain TCP and over TLS (node-smpp's secure server with the
 * certificate made here; the lane verifies it).
 */
/*
 * Phase F: an SMSC that answers as it reads (smsc_sim --resp-chunk 5, latency 0): the
 * responses of one read come in several writes, so the window refills while the SMSC is
 * still answering. Every delivery accepted, every receipt matched; the SMSC's counts
 * show the split writes and the adapter's its sends, receives and submits.
 */
static void phase_chunked(struct driver *dr, const char *sim, const char *dir)
{
	struct sim sm;
	sim_start(&sm, sim, dir, "sim6", (const char *[]){"--latency-ms", "0", "--resp-chunk", "5",
		  "--mix", "delivrd=1", "--receipt-delay-ms", "0", NULL});
	pid_t pid = sm.pid;
	const char *port = sm.port, *stats = sm.stats;
	open_lane(dr, 10, "sms-chunked", port, "acct-F", 16);
	size_t up[2] = {10, 11};
	CHECK(run_until(dr, lanes_up, up, 5000), "bind up");
	struct campaign *en = make_campaign("w-chunk", "en-US", "Typhoon red warning", "Stay indoors.");
	size_t first = dr->n;
	unsigned before = dr->rc_delivered;
	add_numbered(dr, en, 48);
	size_t r[4] = {first, dr->n, 10, 11};
	CHECK(run_until(dr, all_reported, r, 10000), "all 48 reported");
	unsigned accepted = 0;
	for (size_t i = first; i < dr->n; i++)
		accepted += dr->outcome[i] == OUTCOME_ACCEPTED;
	CHECK(accepted == 48, "accepted %u of 48", accepted);
	settle_receipts(dr);
	CHECK(dr->rc_delivered - before == 48, "receipts %u of 48", dr->rc_delivered - before);
	json_t *j = read_stats(pid, stats);
	printf("chunked: submit_sm %lld reads %lld with submits %lld sends %lld; adapter sends "
	       "%lld recvs %lld submits %lld\n", jget(j, "submit_sm", NULL), jget(j, "reads", NULL),
	       jget(j, "submit_reads", NULL), jget(j, "sends", NULL),
	       adapter_num(&dr->lanes[10], "smpp_sends"), adapter_num(&dr->lanes[10], "smpp_recvs"),
	       adapter_num(&dr->lanes[10], "smpp_submits"));
	CHECK(jget(j, "submit_sm", NULL) == 48, "submit_sm %lld", jget(j, "submit_sm", NULL));
	/* each read with submits is answered in one write or more; the first (16 submits) in four */
	CHECK(jget(j, "sends", NULL) > jget(j, "submit_reads", NULL), "sends %lld reads %lld",
	      jget(j, "sends", NULL), jget(j, "submit_reads", NULL));
	CHECK(adapter_num(&dr->lanes[10], "smpp_submits") == 48, "adapter submits");
	CHECK(adapter_num(&dr->lanes[10], "smpp_sends") >= 4 &&
		      adapter_num(&dr->lanes[10], "smpp_recvs") >= 4, "adapter sends and recvs");
	json_decref(j);
	adapter_smpp.close(&dr->lanes[10]);
	run_for(dr, 300);
	stop(pid);
	campaign_free(en);
}

static void phase_npm(struct driver *dr, const char *script, const char *dir, bool tls)
{
	char port_file[512], out[512], cert[512], key[512], ca[512];
	snprintf(port_file, sizeof(port_file), "%s/node%s.port", dir, tls ? "-tls" : "");
	snprintf(out, sizeof(out), "%s/node%s.json", dir, tls ? "-tls" : "");
	snprintf(cert, sizeof(cert), "%s/smsc.pem", dir);
	snprintf(key, sizeof(key), "%s/smsc.key", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	if (tls && !make_certs(dir)) {
		CHECK(0, "the openssl CLI could not make the test certificates in %s", dir);
		return;
	}
	unlink(port_file);
	unlink(out);
	struct campaign *zl = make_campaign("w-node", "zh-CN", LONG_HEAD, LONG_INSTR);
	char *argv[] = {"/usr/bin/node", (char *)script, port_file, out,
			(char *)campaign_text(zl, 0), tls ? key : NULL, cert, NULL};
	pid_t pid = spawn(argv);
	size_t li = tls ? 1 : 0;
	const char *const tls_kv[][2] = {{"tls", "on"}, {"ca_file", ca}, {"server_name", "localhost"},
					 {NULL, NULL}};
	open_lane_kv(dr, li, tls ? "sms-node-tls" : "sms-node", wait_port(port_file),
		     tls ? "acct-NT" : "acct-N", 8, tls ? tls_kv : NULL);
	size_t up[2] = {li, li + 1};
	CHECK(run_until(dr, lanes_up, up, 5000), "bind to node smpp%s (%s)", tls ? " over TLS" : "",
	      dr->why[li]);
	size_t di = dr->n;
	unsigned before = dr->rc_delivered;
	add_delivery(dr, zl, "+8613800138000");
	size_t r[4] = {di, di + 1, li, li + 1};
	CHECK(run_until(dr, all_reported, r, 5000), "reported");
	CHECK(dr->outcome[di] == OUTCOME_ACCEPTED, "accepted by node: %d", dr->outcome[di]);
	for (int i = 0; i < 300 && dr->rc_delivered - before < dr->d[di].parts; i++)
		run_for(dr, 10);
	CHECK(dr->rc_delivered - before == dr->d[di].parts, "receipts %u of %u parts",
	      dr->rc_delivered - before, dr->d[di].parts);
	adapter_smpp.close(&dr->lanes[li]);
	run_for(dr, 300);
	stop(pid);
	json_t *j = json_load_file(out, 0, NULL);
	CHECK(j != NULL, "node wrote %s", out);
	if (j) {
		char *seen = json_dumps(j, JSON_COMPACT);
		printf("node%s saw: %s\n", tls ? " (TLS)" : "", seen ? seen : "?");
		free(seen);
		CHECK(json_integer_value(json_object_get(j, "parts")) == dr->d[di].parts, "node parts");
		CHECK(json_is_true(json_object_get(j, "all_dc8")), "data_coding 8");
		CHECK(json_is_true(json_object_get(j, "udh_ok")), "UDH 05 00 03 ref total seq");
		CHECK(json_is_true(json_object_get(j, "text_ok")), "reassembled text");
		CHECK(json_is_true(json_object_get(j, "unbound")), "unbind seen");
		CHECK(json_is_true(json_object_get(j, "tls")) == tls, "node's session %s TLS",
		      tls ? "is" : "is not");
		json_decref(j);
	}
	campaign_free(zl);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc != 4) {
		fprintf(stderr, "usage: test_smpp sim|npm SMSC_SIM|NODE_SCRIPT WORKDIR\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	static struct driver dr;
	int ret = loop_init(&dr.loop, 256);
	if (ret < 0) {
		printf("SKIP: io_uring unavailable (%s)\n", strerror(-ret));
		return 77;
	}
	dr.host = (struct lane_host){.loop = &dr.loop, .ctx = &dr, .report = on_report,
				     .receipt = on_receipt, .up = on_up};
	if (!strcmp(argv[1], "npm")) {
		phase_npm(&dr, argv[2], argv[3], false);
		phase_npm(&dr, argv[2], argv[3], true);
	} else {
		phase_counts(&dr, argv[2], argv[3]);
		phase_throttle(&dr, argv[2], argv[3]);
		phase_reconnect(&dr, argv[2], argv[3]);
		phase_tls(&dr, argv[2], argv[3]);
		phase_early(&dr, argv[2], argv[3]);
		phase_chunked(&dr, argv[2], argv[3]);
	}
	for (size_t i = 0; i < dr.n; i++)
		free(dr.d[i].address);
	for (size_t i = 0; i < N_LANES; i++)
		lane_release(&dr.lanes[i]);
	loop_release(&dr.loop);
	printf("%s (%d failures)\n", failures ? "FAILED" : "PASSED", failures);
	return failures ? 1 : 0;
}
