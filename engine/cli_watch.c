/*
 * engine/cli_watch.c: the operator subcommands of `tocsin`:
 *
 *   tocsin status ID --watch --url URL [--token T]   live terminal view
 *   tocsin receipts ID --url URL [--token T] [--out FILE.csv]
 *   tocsin audit verify FILE
 *
 * They only read: GET /v1/warnings/ID with an operator token
 * ("Authorization: Bearer T"; also from $TOCSIN_TOKEN), or the audit file.
 * Exit codes as in cli.c: 0 success, 1 refused / chain broken, 2 usage,
 * local or network errors.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "audit.h"

#define CLI_OK 0
#define CLI_REFUSED 1
#define CLI_ERROR 2
#define WATCH_MAX_BODY (8u << 20)
#define BAR_WIDTH 40

struct watch_opts {
	const char *url, *token, *out, *id;
	bool watch, http2;
	int interval_ms;
};

struct body {
	char *data;
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *user)
{
	struct body *b = user;
	size_t len = size * n;
	if (b->len + len > WATCH_MAX_BODY)
		return 0;
	char *g = realloc(b->data, b->len + len + 1);
	if (!g)
		return 0;
	memcpy(g + b->len, p, len);
	b->data = g;
	b->len += len;
	g[b->len] = 0;
	return len;
}

/* GET URL/v1/warnings/ID as JSON. NULL after printing why; *status = HTTP status. */
static json_t *fetch_warning(const struct watch_opts *o, long *status)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	struct body b = {0};
	char *url = NULL, *esc = c ? curl_easy_escape(c, o->id, 0) : NULL, auth[600];
	json_t *j = NULL;
	size_t n = strlen(o->url);
	while (n && o->url[n - 1] == '/')
		n--;
	*status = -1;
	if (!esc || asprintf(&url, "%.*s/v1/warnings/%s", (int)n, o->url, esc) < 0)
		goto out;
	if (o->token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token);
		h = curl_slist_append(h, auth);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	if (o->http2)
		curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
	CURLcode rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		fprintf(stderr, "tocsin: %s: %s\n", url, curl_easy_strerror(rc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (*status != 200)
		fprintf(stderr, "tocsin: %s: HTTP %ld %s\n", url, *status, b.data ? b.data : "");
	else if (!(j = json_loadb(b.data ? b.data : "", b.len, 0, NULL)))
		fprintf(stderr, "tocsin: %s: the answer is not JSON\n", url);
out:
	curl_free(esc);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	free(url);
	free(b.data);
	return j;
}

static int parse_opts(int argc, char **argv, struct watch_opts *o, const char *usage)
{
	static const struct option opts[] = {
		{"url", required_argument, NULL, 'u'},	  {"token", required_argument, NULL, 't'},
		{"out", required_argument, NULL, 'o'},	  {"watch", no_argument, NULL, 'w'},
		{"http2", no_argument, NULL, '2'},	  {"interval-ms", required_argument, NULL, 'i'},
		{"help", no_argument, NULL, 'h'},	  {0}};
	int c;
	*o = (struct watch_opts){.token = getenv("TOCSIN_TOKEN"), .interval_ms = 1000};
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': o->url = optarg; break;
		case 't': o->token = optarg; break;
		case 'o': o->out = optarg; break;
		case 'w': o->watch = true; break;
		case '2': o->http2 = true; break;
		case 'i': o->interval_ms = atoi(optarg); break;
		default: fputs(usage, stderr); return -1;
		}
	}
	if (!o->url || optind + 1 != argc || o->interval_ms < 50) {
		fputs(usage, stderr);
		return -1;
	}
	o->id = argv[optind];
	return 0;
}

/* ---- status --watch ---- */

static json_int_t jint(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void bar(const char *label, json_int_t reached, json_int_t accepted, json_int_t targeted)
{
	char b[BAR_WIDTH + 1];
	double share = targeted > 0 ? (double)reached / (double)targeted : 0;
	double acc = targeted > 0 ? (double)(reached + accepted) / (double)targeted : 0;
	int full = (int)(share * BAR_WIDTH), half = (int)(acc * BAR_WIDTH);
	for (int i = 0; i < BAR_WIDTH; i++)
		b[i] = i < full ? '#' : i < half ? '+' : i == BAR_WIDTH * 9 / 10 ? '|' : '.';
	b[BAR_WIDTH] = 0;
	const char *colour = share >= 0.9 ? "\033[32m" : "\033[33m";
	printf("  %-9s %s[%s]\033[0m %5.1f%%  %lld/%lld reached, %lld accepted\033[K\n", label,
	       colour, b, 100 * share, (long long)reached, (long long)targeted, (long long)accepted);
}

static bool final_state(const char *s)
{
	return s && (!strcmp(s, "done") || !strcmp(s, "expired") || !strcmp(s, "cancelled") ||
		     !strcmp(s, "superseded") || !strcmp(s, "failed"));
}

static void draw(const struct watch_opts *o, const json_t *w, bool tty)
{
	const json_t *cov = json_object_get(w, "coverage");
	const char *state = json_string_value(json_object_get(cov, "state"));
	if (tty)
		printf("\033[H\033[2J");
	printf("tocsin  %s  state: %s\033[K\n", o->id, state ? state : "admitted (not started)");
	if (!json_is_object(cov)) {
		fflush(stdout);
		return;
	}
	const json_t *ch = json_object_get(cov, "channels");
	static const char *names[] = {"sms", "app", "terminal"};
	for (int i = 0; i < 3; i++) {
		const json_t *k = json_object_get(ch, names[i]);
		if (json_is_object(k) && jint(k, "targeted") > 0)
			bar(names[i], jint(k, "reached"), jint(k, "accepted"), jint(k, "targeted"));
	}
	bar("overall", jint(cov, "reached"), jint(cov, "accepted"), jint(cov, "targeted"));
	const json_t *t90 = json_object_get(cov, "t90_ms");
	printf("  90%% line: %s\033[K\n", json_is_integer(t90) ? "met" : "not yet");
	if (json_is_integer(t90))
		printf("  time to 90%%: %.1f s\033[K\n", (double)json_integer_value(t90) / 1000.0);
	fflush(stdout);
}

static void summary(const struct watch_opts *o, const json_t *w)
{
	const json_t *cov = json_object_get(w, "coverage");
	json_int_t tg = jint(cov, "targeted"), re = jint(cov, "reached");
	const json_t *t90 = json_object_get(cov, "t90_ms");
	printf("\nsummary: %s %s: reached %lld of %lld (%.1f%%), accepted %lld, failed %lld; ",
	       o->id, json_string_value(json_object_get(cov, "state")), (long long)re, (long long)tg,
	       tg ? 100.0 * (double)re / (double)tg : 0.0, (long long)jint(cov, "accepted"),
	       (long long)jint(cov, "failed"));
	if (json_is_integer(t90))
		printf("90%% reached after %.1f s\n", (double)json_integer_value(t90) / 1000.0);
	else
		printf("90%% NOT reached\n");
}

static int watch(const struct watch_opts *o)
{
	bool tty = isatty(STDOUT_FILENO);
	for (;;) {
		long status;
		json_t *w = fetch_warning(o, &status);
		if (!w)
			return status > 0 ? CLI_REFUSED : CLI_ERROR;
		draw(o, w, tty);
		const json_t *cov = json_object_get(w, "coverage");
		if (final_state(json_string_value(json_object_get(cov, "state")))) {
			summary(o, w);
			json_decref(w);
			return CLI_OK;
		}
		json_decref(w);
		struct timespec ts = {o->interval_ms / 1000, (o->interval_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

static const char watch_usage[] =
	"usage: tocsin status ID --watch --url URL [--token T] [--http2] [--interval-ms 1000]\n"
	"Redraws the warning's coverage every second (per channel, and overall against\n"
	"the 90% line) until it is done, expired or cancelled, then prints a summary.\n"
	"The operator token may also come from $TOCSIN_TOKEN.\n";

int cli_watch_main(int argc, char **argv)
{
	struct watch_opts o;
	if (parse_opts(argc, argv, &o, watch_usage) < 0)
		return CLI_ERROR;
	return watch(&o);
}

/* ---- receipts ---- */

/* RFC 4180: quote when needed, double the quotes. */
static void csv_field(FILE *f, const char *s)
{
	if (!s[strcspn(s, ",\"\r\n")]) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

static void write_receipts(FILE *f, const json_t *segs)
{
	size_t i;
	const json_t *s;
	fputs("segment,census,targeted,reached,accepted,failed,reached_share\r\n", f);
	json_array_foreach(segs, i, s) {
		json_int_t tg = jint(s, "targeted"), re = jint(s, "reached");
		const char *id = json_string_value(json_object_get(s, "id"));
		csv_field(f, id ? id : "");
		fprintf(f, ",%lld,%lld,%lld,%lld,%lld,%.4f\r\n", (long long)jint(s, "census"),
			(long long)tg, (long long)re, (long long)jint(s, "accepted"),
			(long long)jint(s, "failed"), tg ? (double)re / (double)tg : 0.0);
	}
}

static const char receipts_usage[] =
	"usage: tocsin receipts ID --url URL [--token T] [--out FILE.csv]\n"
	"Exports the warning's per-segment results as CSV (segment, census, targeted,\n"
	"reached, accepted, failed, reached_share), worst first, for the after-action report.\n";

int cli_receipts_main(int argc, char **argv)
{
	struct watch_opts o;
	long status;
	if (parse_opts(argc, argv, &o, receipts_usage) < 0)
		return CLI_ERROR;
	json_t *w = fetch_warning(&o, &status);
	if (!w)
		return status > 0 ? CLI_REFUSED : CLI_ERROR;
	const json_t *segs = json_object_get(json_object_get(w, "coverage"), "segments");
	int rc = CLI_ERROR;
	if (!json_is_array(segs)) {
		fprintf(stderr, "tocsin receipts: %s has no coverage yet\n", o.id);
		rc = CLI_REFUSED;
		goto out;
	}
	FILE *f = o.out ? fopen(o.out, "w") : stdout;
	if (!f) {
		perror(o.out);
		goto out;
	}
	write_receipts(f, segs);
	rc = (o.out ? fclose(f) : fflush(f)) == 0 ? CLI_OK : CLI_ERROR;
	if (rc == CLI_OK && o.out)
		fprintf(stderr, "tocsin receipts: %zu segments written to %s\n", json_array_size(segs),
			o.out);
out:
	json_decref(w);
	return rc;
}

/* ---- audit verify ---- */

static const char audit_usage[] =
	"usage: tocsin audit verify FILE\n"
	"Checks the audit log's hash chain. Exit 0 with the entry count and the last\n"
	"hash when intact; 1 naming the first bad line when not; 2 when unreadable.\n";

int cli_audit_main(int argc, char **argv)
{
	struct audit_verify_result r;
	if (argc != 3 || strcmp(argv[1], "verify")) {
		fputs(audit_usage, stderr);
		return CLI_ERROR;
	}
	int ret = audit_verify_file(argv[2], &r);
	if (ret < 0) {
		fprintf(stderr, "tocsin audit: %s: %s\n", argv[2], r.reason);
		return CLI_ERROR;
	}
	if (ret > 0) {
		printf("%s:%zu: chain broken: %s (%llu entries before it are intact)\n", argv[2],
		       r.bad_line, r.reason, (unsigned long long)r.count);
		return CLI_REFUSED;
	}
	printf("%s: intact, %llu entries, last hash %s\n", argv[2], (unsigned long long)r.count,
	       r.last_hash);
	return CLI_OK;
}
