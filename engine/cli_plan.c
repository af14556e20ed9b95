/*
 * engine/cli_plan.c: `tocsin plan`, a delivery preview that sends nothing.
 *
 * Runs the engine's own resolver (resolve.h) on a private io_uring loop
 * and Redis connection, and prints per segment (community) the
 * households, persons and distinct addresses per channel it would reach,
 * the totals, the households per info block (language), and the time to
 * the first batch and in total. --json prints one JSON object instead.
 *
 * Exit: 0 resolved; 1 unknown targets, no population, or the version was
 * retired mid-way; 2 usage, file, or Redis errors. The signature of
 * --body is not verified: a preview needs only the targets and languages.
 *
 * Memory: the resolver's (resolve.h) plus one row per community reached.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "log.h"
#include "loop.h"
#include "redis.h"
#include "resolve.h"
#include "warnfile.h"
#include "warning_codec.h"

#define PLAN_OK 0
#define PLAN_REFUSED 1
#define PLAN_ERROR 2
#define PLAN_CONNECT_MS 5000
#define PLAN_MAX_BODY (1024 * 1024)

int cli_plan_main(int argc, char **argv);

static const char plan_usage[] =
	"usage: tocsin plan --redis HOST:PORT|unix:/path [--prefix tocsin:] [--json]\n"
	"                   WARNING.ini | --body SIGNED.bin\n"
	"Previews a warning without sending it: households, persons and addresses per\n"
	"channel per segment, from the population data in Redis (`tocsin load`).\n"
	"Exit 0 resolved, 1 unknown targets or no population, 2 usage/file/Redis error.\n";

struct plan_opts {
	const char *redis, *prefix, *body, *warning;
	bool json;
};

struct plan_row {
	char *segment;
	uint64_t households, persons, addrs[RESOLVE_NCHANNELS], covered[RESOLVE_NCHANNELS];
};

struct plan {
	struct plan_row *rows;      /* open addressing by segment id */
	size_t cap, n;
	const char *last_seg;       /* the resolver's interned id of rows[last_row] */
	size_t last_row;
	uint64_t *by_info_hh, *by_info_persons;
	size_t n_infos;
	bool done;
	enum resolve_status status;
	char reason[256];
	json_t *unknown;
	struct resolve_stats stats;
	bool connected;
};

static int plan_parse(int argc, char **argv, struct plan_opts *o)
{
	static const struct option opts[] = {
		{ "redis", required_argument, NULL, 'r' }, { "prefix", required_argument, NULL, 'p' },
		{ "body", required_argument, NULL, 'b' },  { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },	   { 0 }
	};
	int c;

	*o = (struct plan_opts){ .prefix = "tocsin:" };
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': o->redis = optarg; break;
		case 'p': o->prefix = optarg; break;
		case 'b': o->body = optarg; break;
		case 'j': o->json = true; break;
		default: fputs(plan_usage, stderr); return -1;
		}
	}
	if (optind + 1 == argc)
		o->warning = argv[optind];
	if (!o->redis || optind + 1 < argc || !o->warning == !o->body) {
		fputs(plan_usage, stderr);
		return -1;
	}
	return 0;
}

static int read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "tocsin plan: %s: %m\n", path);
		return -1;
	}
	*out = malloc(PLAN_MAX_BODY + 1);
	*len = *out ? fread(*out, 1, PLAN_MAX_BODY + 1, f) : 0;
	bool ok = *out && !ferror(f) && *len <= PLAN_MAX_BODY;
	fclose(f);
	if (!ok) {
		fprintf(stderr, "tocsin plan: %s: unreadable or larger than %d bytes\n", path,
			PLAN_MAX_BODY);
		free(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

/* The Warning from an INI file or a SignedWarning file; in the arena. */
static Tocsin__Warning *plan_warning(const struct plan_opts *o, struct warning_arena *a)
{
	uint8_t *bytes = NULL;
	size_t len;
	char err[512];
	const char *why = NULL;
	Tocsin__Warning *w = NULL;

	if (o->warning) {
		if (warnfile_load(o->warning, time(NULL), &(struct warnfile_overrides){ 0 }, &bytes,
				  &len, err, sizeof(err))) {
			fprintf(stderr, "tocsin plan: %s\n", err);
			return NULL;
		}
		w = warning_decode(a, bytes, len, &why);
	} else if (read_file(o->body, &bytes, &len) == 0) {
		Tocsin__SignedWarning *env = signed_warning_decode(a, bytes, len, &why);
		if (env)
			w = warning_decode(a, env->payload.data, env->payload.len, &why);
	}
	if (!w && why)
		fprintf(stderr, "tocsin plan: %s: %s\n", o->warning ? o->warning : o->body, why);
	free(bytes);
	return w;
}

/* The row of a segment. The resolver hands out interned ids (one pointer per
 * community for the whole resolution) and a batch is one building, so the
 * last pointer seen answers nearly every call without hashing the id. */
static struct plan_row *plan_row(struct plan *p, const char *seg)
{
	if (seg == p->last_seg)
		return &p->rows[p->last_row];
	if ((p->n + 1) * 2 > p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		struct plan_row *rows = calloc(cap, sizeof(*rows));
		if (!rows)
			return NULL;
		for (size_t i = 0; i < p->cap; i++) {
			if (!p->rows[i].segment)
				continue;
			size_t j = resolve_fnv1a32(p->rows[i].segment, strlen(p->rows[i].segment)) % cap;
			while (rows[j].segment)
				j = (j + 1) % cap;
			rows[j] = p->rows[i];
		}
		free(p->rows);
		p->rows = rows;
		p->cap = cap;
	}
	size_t j = resolve_fnv1a32(seg, strlen(seg)) % p->cap;
	while (p->rows[j].segment && strcmp(p->rows[j].segment, seg))
		j = (j + 1) % p->cap;
	if (!p->rows[j].segment) {
		if (!(p->rows[j].segment = strdup(seg)))
			return NULL;
		p->n++;
	}
	p->last_seg = seg;
	p->last_row = j;
	return &p->rows[j];
}

static void on_batch(void *arg, const struct resolve_batch *b)
{
	struct plan *p = arg;
	for (size_t i = 0; i < b->n_households; i++) {
		const struct resolve_household *h = &b->households[i];
		struct plan_row *row = plan_row(p, h->segment);
		if (!row)
			continue;
		row->households++;
		row->persons += h->persons;
		if (h->lang < p->n_infos) {
			p->by_info_hh[h->lang]++;
			p->by_info_persons[h->lang] += h->persons;
		}
	}
	for (size_t i = 0; i < b->n_addrs; i++) {
		const struct resolve_addr *a = &b->addrs[i];
		struct plan_row *row = plan_row(p, a->segment);
		if (row) {
			row->addrs[a->channel]++;
			row->covered[a->channel] += a->persons;
		}
	}
}

static void on_done(void *arg, const struct resolve_result *res)
{
	struct plan *p = arg;
	p->done = true;
	p->status = res->status;
	p->stats = *res->stats;
	snprintf(p->reason, sizeof(p->reason), "%s", res->reason);
	p->unknown = json_array();
	for (size_t i = 0; i < res->n_unknown; i++)
		json_array_append_new(p->unknown, json_string(res->unknown[i]));
}

static void on_redis_state(struct redis_client *rc, void *arg)
{
	((struct plan *)arg)->connected = redis_up(rc);
}

static int row_cmp(const void *a, const void *b)
{
	const struct plan_row *x = a, *y = b;
	if (!x->segment || !y->segment)
		return !x->segment - !y->segment;
	return strcmp(x->segment, y->segment);
}

static json_t *row_json(const char *id, const uint64_t *hh_persons, const uint64_t *addrs,
			const uint64_t *covered)
{
	json_t *o = json_object(), *apps = json_object();
	if (id)
		json_object_set_new(o, "segment", json_string(id));
	json_object_set_new(o, "households", json_integer((json_int_t)hh_persons[0]));
	json_object_set_new(o, "persons", json_integer((json_int_t)hh_persons[1]));
	json_object_set_new(o, "sms", json_integer((json_int_t)addrs[RESOLVE_SMS]));
	json_object_set_new(o, "sms_persons", json_integer((json_int_t)covered[RESOLVE_SMS]));
	for (int c = RESOLVE_APNS; c <= RESOLVE_WEBHOOK; c++)
		json_object_set_new(apps, resolve_channel_name(c), json_integer((json_int_t)addrs[c]));
	json_object_set_new(o, "apps", apps);
	json_object_set_new(o, "terminals", json_integer((json_int_t)addrs[RESOLVE_TERMINAL]));
	json_object_set_new(o, "terminal_persons",
			    json_integer((json_int_t)covered[RESOLVE_TERMINAL]));
	return o;
}

static void print_row(const char *id, const uint64_t *hp, const uint64_t *a)
{
	printf("%-22s %10llu %10llu %10llu %8llu %8llu %8llu %9llu\n", id,
	       (unsigned long long)hp[0], (unsigned long long)hp[1],
	       (unsigned long long)a[RESOLVE_SMS], (unsigned long long)a[RESOLVE_APNS],
	       (unsigned long long)a[RESOLVE_FCM], (unsigned long long)a[RESOLVE_WEBHOOK],
	       (unsigned long long)a[RESOLVE_TERMINAL]);
}

static void plan_print(const struct plan *p, const Tocsin__Warning *w, bool as_json)
{
	uint64_t tot_hp[2] = { 0 }, tot_a[RESOLVE_NCHANNELS] = { 0 }, tot_c[RESOLVE_NCHANNELS] = { 0 };
	json_t *segs = json_array(), *infos = json_object();
	if (!as_json)
		printf("%-22s %10s %10s %10s %8s %8s %8s %9s\n", "segment", "households", "persons",
		       "sms", "apns", "fcm", "webhook", "terminals");
	for (size_t i = 0; i < p->cap && p->rows[i].segment; i++) {
		const struct plan_row *r = &p->rows[i];
		uint64_t hp[2] = { r->households, r->persons };
		tot_hp[0] += hp[0];
		tot_hp[1] += hp[1];
		for (int c = 0; c < RESOLVE_NCHANNELS; c++) {
			tot_a[c] += r->addrs[c];
			tot_c[c] += r->covered[c];
		}
		if (as_json)
			json_array_append_new(segs, row_json(r->segment, hp, r->addrs, r->covered));
		else
			print_row(r->segment, hp, r->addrs);
	}
	for (size_t i = 0; i < p->n_infos; i++) {
		json_t *o = json_object();
		json_object_set_new(o, "households", json_integer((json_int_t)p->by_info_hh[i]));
		json_object_set_new(o, "persons", json_integer((json_int_t)p->by_info_persons[i]));
		json_object_set_new(infos, w->info[i]->language, o);
	}
	double first = p->stats.first_batch_us / 1000.0, total = p->stats.total_us / 1000.0;
	if (!as_json) {
		print_row("total", tot_hp, tot_a);
		for (size_t i = 0; i < p->n_infos; i++)
			printf("info %-17s %10llu households\n", w->info[i]->language,
			       (unsigned long long)p->by_info_hh[i]);
		printf("version %lld, %llu batches, %llu Redis commands, %llu duplicate addresses; "
		       "first batch %.3f ms, total %.3f ms\n", p->stats.version,
		       (unsigned long long)p->stats.batches, (unsigned long long)p->stats.commands,
		       (unsigned long long)p->stats.duplicates, first, total);
		if (p->stats.malformed)
			printf("%llu malformed records skipped (household or terminal lists)\n",
			       (unsigned long long)p->stats.malformed);
		json_decref(segs);
		json_decref(infos);
		return;
	}
	json_t *o = json_object();
	json_object_set_new(o, "version", json_integer(p->stats.version));
	json_object_set_new(o, "segments", segs);
	json_object_set_new(o, "totals", row_json(NULL, tot_hp, tot_a, tot_c));
	json_object_set_new(o, "infos", infos);
	json_object_set_new(o, "batches", json_integer((json_int_t)p->stats.batches));
	json_object_set_new(o, "commands", json_integer((json_int_t)p->stats.commands));
	json_object_set_new(o, "duplicates", json_integer((json_int_t)p->stats.duplicates));
	json_object_set_new(o, "malformed", json_integer((json_int_t)p->stats.malformed));
	json_object_set_new(o, "first_batch_ms", json_real(first));
	json_object_set_new(o, "total_ms", json_real(total));
	json_dumpf(o, stdout, JSON_INDENT(1) | JSON_SORT_KEYS);
	putchar('\n');
	json_decref(o);
}

/* Connect, resolve, and leave the loop idle. 0, or -1 after printing why. */
static int plan_run(struct plan *p, const struct plan_opts *o, const Tocsin__Warning *w)
{
	struct loop loop;
	struct redis_client rc;
	char err[256];
	int ret = -1;

	if ((ret = loop_init(&loop, 1024)) < 0) {
		fprintf(stderr, "tocsin plan: io_uring: %s\n", strerror(-ret));
		return -1;
	}
	ret = -1;
	if (redis_init(&rc, &loop, o->redis, err, sizeof(err)) < 0) {
		fprintf(stderr, "tocsin plan: --redis: %s\n", err);
		goto out_release_loop;
	}
	rc.on_state = on_redis_state;
	rc.on_state_arg = p;
	redis_start(&rc);
	uint64_t deadline = loop_now_ms(&loop) + PLAN_CONNECT_MS;
	while (!p->connected && loop_now_ms(&loop) < deadline)
		loop_run_once(&loop, 50);
	const char *langs[WARNING_MAX_INFOS];
	for (size_t i = 0; i < p->n_infos; i++)
		langs[i] = w->info[i]->language;
	struct resolve_params rp = {
		.loop = &loop, .redis = &rc, .prefix = o->prefix,
		.targets = (const char *const *)w->targets, .n_targets = w->n_targets,
		.languages = langs, .n_languages = p->n_infos, .on_batch = on_batch,
		.on_done = on_done, .arg = p,
	};
	if (!p->connected || !resolver_start(&rp)) {
		fprintf(stderr, "tocsin plan: cannot reach Redis at %s\n", o->redis);
	} else {
		while (!p->done)
			loop_run_once(&loop, 1000);
		ret = 0;
	}
	redis_stop(&rc);
	while (!redis_idle(&rc))
		loop_run_once(&loop, 100);
	redis_release(&rc);
out_release_loop:
	loop_release(&loop);
	return ret;
}

static int plan_report(struct plan *p, const Tocsin__Warning *w, bool as_json)
{
	if (p->status == RESOLVE_OK) {
		if (p->rows && p->cap > 1)
			qsort(p->rows, p->cap, sizeof(*p->rows), row_cmp);
		plan_print(p, w, as_json);
		return PLAN_OK;
	}
	char *ids = json_dumps(p->unknown, JSON_COMPACT);
	fprintf(stderr, "tocsin plan: %s%s%s\n", p->reason, p->unknown && json_array_size(p->unknown)
		? ": " : "", ids && json_array_size(p->unknown) ? ids : "");
	if (as_json) {
		json_t *o = json_object();
		json_object_set_new(o, "error", json_string(resolve_strerror(p->status)));
		json_object_set_new(o, "reason", json_string(p->reason));
		json_object_set(o, "ids", p->unknown);
		json_dumpf(o, stdout, JSON_COMPACT);
		putchar('\n');
		json_decref(o);
	}
	free(ids);
	return p->status == RESOLVE_REDIS_ERROR || p->status == RESOLVE_NOMEM ? PLAN_ERROR
									      : PLAN_REFUSED;
}

int cli_plan_main(int argc, char **argv)
{
	struct plan_opts o;
	struct warning_arena arena;
	struct plan p = { 0 };
	int rc = PLAN_ERROR;

	if (plan_parse(argc, argv, &o) != 0)
		return PLAN_ERROR;
	log_set_level(LOG_WARN);
	warning_arena_init(&arena, WARNING_ARENA_CAP);
	Tocsin__Warning *w = plan_warning(&o, &arena);
	if (!w)
		goto out_release_arena;
	if (w->n_targets == 0 || w->n_targets > RESOLVE_MAX_TARGETS || w->n_info == 0 ||
	    w->n_info > WARNING_MAX_INFOS) {
		fprintf(stderr, "tocsin plan: the warning needs 1-%d targets and 1-%d info blocks\n",
			RESOLVE_MAX_TARGETS, WARNING_MAX_INFOS);
		goto out_release_arena;
	}
	p.n_infos = w->n_info;
	p.by_info_hh = calloc(p.n_infos, sizeof(uint64_t));
	p.by_info_persons = calloc(p.n_infos, sizeof(uint64_t));
	if (p.by_info_hh && p.by_info_persons && plan_run(&p, &o, w) == 0)
		rc = plan_report(&p, w, o.json);
	for (size_t i = 0; i < p.cap; i++)
		free(p.rows[i].segment);
	free(p.rows);
	free(p.by_info_hh);
	free(p.by_info_persons);
	json_decref(p.unknown);
out_release_arena:
	warning_arena_release(&arena);
	return rc;
}
