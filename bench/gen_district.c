/*
 * bench/gen_district.c: deterministic population generator for `tocsin load`.
 *
 * Writes segments.csv, households.csv and terminals.csv for a district
 * shaped like Gulou (Fuzhou, 350102): 10 streets, 69 communities spread
 * unevenly over them, buildings of 6-65 households, ~250,000 households and
 * ~690,000 persons at --scale 1. --scale multiplies communities and
 * households (14.5 gives ~10 million persons). See bench/README-gen.md.
 *
 *   gen_district [--seed N] [--scale F] [--out DIR]
 *
 * Invariants: the same seed and scale give byte-identical files; phone
 * numbers are unique (a bijection of a counter); every id starts with its
 * parent's id. Memory: one small record per building (households are
 * streamed to disk). Prints a "counts: ..." line matching `tocsin load`'s.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define BASE_COMMUNITIES 69
#define BASE_HOUSEHOLDS 250000
#define NSTREETS 10

static const char *const street_names[NSTREETS] = {
	"鼓东街道", "鼓西街道", "温泉街道", "东街街道", "南街街道",
	"安泰街道", "华大街道", "水部街道", "五凤街道", "洪山镇",
};
static const char *const comm_stems[] = {
	"三坊", "七巷", "南门", "西湖", "屏山", "冶山", "汤井", "华林",
	"湖前", "树汤", "井大", "鼓楼", "文藻", "杨桥", "凤湖", "洪山",
	"铜盘", "乌山", "双抛", "东大", "庆城", "虎节", "开元", "丽文",
	"晋安", "光禄", "道山", "朱紫", "杏坛", "琼东",
};
static const char *const comm_tails[] = { "", "新村", "北", "南", "东", "西" };
static const char *const rare_langs[] = {
	"ja-JP", "ko-KR", "ru-RU", "fr-FR", "de-DE", "vi-VN", "th-TH", "ar-SA",
};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct rng { uint64_t s; };

struct bld {
	uint32_t comm;     /* community index */
	uint32_t persons;
};

struct comm {
	uint32_t street;
	uint32_t nbld;
	uint64_t persons;
	char id[32];
};

struct gen {
	struct rng r;
	double scale;
	const char *out;
	FILE *hh;
	struct comm *comms;
	uint32_t ncomms;
	struct bld *blds;
	size_t nblds, bldcap;
	uint64_t street_persons[NSTREETS];
	uint64_t households, persons, phones, apps, terminals, phone_seq;
};

static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double rng_unit(struct rng *r)
{
	return (double)(rng_next(r) >> 11) / 9007199254740992.0;
}

static uint32_t rng_range(struct rng *r, uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(rng_next(r) % (hi - lo + 1));
}

/* Persons 1-6, mean ~2.76 (2020 census, Fuzhou urban households). */
static unsigned draw_persons(struct rng *r)
{
	static const double cdf[] = { 0.18, 0.48, 0.74, 0.89, 0.96, 1.0 };
	double u = rng_unit(r);
	unsigned i = 0;

	while (u > cdf[i])
		i++;
	return i + 1;
}

/* Phones 0-3, mean ~1.6. */
static unsigned draw_phones(struct rng *r)
{
	double u = rng_unit(r);

	return u < 0.08 ? 0 : u < 0.43 ? 1 : u < 0.89 ? 2 : 3;
}

static const char *draw_lang(struct rng *r)
{
	double u = rng_unit(r);

	if (u < 0.975)
		return "zh-CN";
	if (u < 0.985)
		return "en-US";
	return rare_langs[rng_next(r) % NELEM(rare_langs)];
}

/* +861[3-9] and 9 digits; 387420489 (3^18) is a unit mod 10^9, so the
 * sequence number (< 10^9) maps one-to-one onto numbers. */
static void put_phone(struct gen *g, FILE *f)
{
	uint64_t n = g->phone_seq++;
	uint64_t body = (n * 387420489ull + 123456789ull) % 1000000000ull;

	fprintf(f, "+861%u%09" PRIu64, (unsigned)(3 + n % 7), body);
}

static void put_chars(struct rng *r, FILE *f, const char *alphabet,
		      unsigned n)
{
	size_t k = strlen(alphabet);

	for (unsigned i = 0; i < n; i++)
		fputc(alphabet[rng_next(r) % k], f);
}

static void put_token(struct gen *g, FILE *f)
{
	static const char hexd[] = "0123456789abcdef";
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
				  "qrstuvwxyz0123456789-_";
	double u = rng_unit(&g->r);

	if (u < 0.005) {
		fputs("webhook:https://hooks.example.org/tocsin/", f);
		put_chars(&g->r, f, hexd, 16);
	} else if (u < 0.35) {
		fputs("apns:", f);
		put_chars(&g->r, f, hexd, 64);
	} else {
		fputs("fcm:", f);
		put_chars(&g->r, f, b64, 22);
		fputs(":APA91b", f);
		put_chars(&g->r, f, b64, 134);
	}
	g->apps++;
}

static void put_household(struct gen *g, const char *bid, unsigned k,
			  unsigned persons)
{
	FILE *f = g->hh;
	unsigned np = draw_phones(&g->r), na = 0;

	if (rng_unit(&g->r) < 0.45)
		na = rng_unit(&g->r) < 0.10 ? 2 : 1;
	fprintf(f, "%sH%03u,%s,%u,%s,", bid, k, bid, persons,
		draw_lang(&g->r));
	for (unsigned i = 0; i < np; i++) {
		if (i)
			fputc(';', f);
		put_phone(g, f);
	}
	fputc(',', f);
	for (unsigned i = 0; i < na; i++) {
		if (i)
			fputc(';', f);
		put_token(g, f);
	}
	fputc('\n', f);
	g->phones += np;
}

static int bld_push(struct gen *g, uint32_t comm, uint32_t persons)
{
	if (g->nblds == g->bldcap) {
		size_t ncap = g->bldcap ? g->bldcap * 2 : 4096;
		struct bld *n = realloc(g->blds, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		g->blds = n;
		g->bldcap = ncap;
	}
	g->blds[g->nblds++] = (struct bld){ comm, persons };
	return 0;
}

/* Buildings of 6-65 households until the community's share is used. */
static int gen_community(struct gen *g, uint32_t ci, uint64_t nhh)
{
	struct comm *c = &g->comms[ci];
	char bid[48];

	while (nhh > 0) {
		uint32_t size = rng_range(&g->r, 6, 65), persons = 0;
		if (size > nhh)
			size = (uint32_t)nhh;
		snprintf(bid, sizeof(bid), "%sB%04u", c->id, ++c->nbld);
		for (uint32_t k = 1; k <= size; k++) {
			unsigned p = draw_persons(&g->r);
			put_household(g, bid, k, p);
			persons += p;
		}
		if (bld_push(g, ci, persons))
			return -ENOMEM;
		c->persons += persons;
		g->households += size;
		g->persons += persons;
		nhh -= size;
	}
	g->street_persons[c->street] += c->persons;
	return 0;
}

/* Communities over streets: uneven weights, at least one per street. */
static int gen_layout(struct gen *g)
{
	double w[NSTREETS], sum = 0;
	uint32_t n = (uint32_t)(BASE_COMMUNITIES * g->scale + 0.5), i = 0;

	if (n < NSTREETS)
		n = NSTREETS;
	g->comms = calloc(n, sizeof(*g->comms));
	if (!g->comms)
		return -ENOMEM;
	for (int s = 0; s < NSTREETS; s++)
		sum += (w[s] = 0.4 + 1.6 * rng_unit(&g->r));
	uint32_t k[NSTREETS], left = n;
	for (int s = 0; s < NSTREETS; s++)
		left -= (k[s] = 1 + (uint32_t)((n - NSTREETS) * w[s] / sum));
	for (int s = 0; left > 0; s = (s + 1) % NSTREETS, left--)
		k[s]++;   /* rounding remainder, one each from the first street */
	for (int s = 0; s < NSTREETS; s++) {
		for (uint32_t j = 1; j <= k[s]; j++, i++) {
			g->comms[i].street = (uint32_t)s;
			snprintf(g->comms[i].id, sizeof(g->comms[i].id),
				 "350102%03d%03u", s + 1, j);
		}
	}
	g->ncomms = i;
	return 0;
}

static int gen_households(struct gen *g)
{
	double *w = malloc(g->ncomms * sizeof(*w)), sum = 0;
	uint64_t total = (uint64_t)(BASE_HOUSEHOLDS * g->scale + 0.5), done = 0;
	int rc = 0;

	if (!w)
		return -ENOMEM;
	for (uint32_t i = 0; i < g->ncomms; i++)
		sum += (w[i] = 0.4 + 1.2 * rng_unit(&g->r));
	fputs("id,building,persons,lang,phones,apps\n", g->hh);
	for (uint32_t i = 0; i < g->ncomms && rc == 0; i++) {
		uint64_t n = i + 1 == g->ncomms ? total - done :
			     (uint64_t)(total * w[i] / sum);
		if (n == 0)
			n = 1;
		done += n;
		rc = gen_community(g, i, n);
	}
	free(w);
	return rc;
}

/* Census population: the generated persons, off by -3%..+5%. */
static uint64_t census(struct gen *g, uint64_t persons)
{
	return (uint64_t)((double)persons * (0.97 + 0.08 * rng_unit(&g->r)));
}

static void comm_name(uint32_t i, char *out, size_t n)
{
	uint32_t ns = NELEM(comm_stems), nt = NELEM(comm_tails);
	uint32_t round = i / (ns * nt);

	if (round == 0)
		snprintf(out, n, "%s%s社区", comm_stems[i % ns],
			 comm_tails[(i / ns) % nt]);
	else
		snprintf(out, n, "%s%s%u社区", comm_stems[i % ns],
			 comm_tails[(i / ns) % nt], round + 1);
}

static void write_segments(struct gen *g, FILE *f)
{
	char name[96];
	size_t b = 0;

	fputs("id,kind,parent,name,population\n", f);
	fprintf(f, "350102,district,,\"鼓楼区\",%" PRIu64 "\n",
		census(g, g->persons));
	for (int s = 0; s < NSTREETS; s++)
		fprintf(f, "350102%03d,street,350102,\"%s\",%" PRIu64 "\n",
			s + 1, street_names[s], census(g, g->street_persons[s]));
	for (uint32_t i = 0; i < g->ncomms; i++) {
		struct comm *c = &g->comms[i];
		comm_name(i, name, sizeof(name));
		fprintf(f, "%s,community,350102%03u,\"%s\",%" PRIu64 "\n",
			c->id, c->street + 1, name, census(g, c->persons));
		for (uint32_t k = 1; k <= c->nbld; k++, b++)
			fprintf(f, "%sB%04u,building,%s,\"%u号楼\",%" PRIu64
				"\n", c->id, k, c->id, k,
				census(g, g->blds[b].persons));
	}
}

static void put_secret(struct gen *g, FILE *f)
{
	put_chars(&g->r, f, "0123456789abcdef", 32);
	fputc('\n', f);
}

/* 2-6 speakers per community; a display in ~30% of buildings. */
static void write_terminals(struct gen *g, FILE *f)
{
	size_t b = 0;

	fputs("id,segment,kind,covers_persons,secret\n", f);
	for (uint32_t i = 0; i < g->ncomms; i++) {
		struct comm *c = &g->comms[i];
		uint32_t ns = rng_range(&g->r, 2, 6);
		for (uint32_t k = 1; k <= ns; k++, g->terminals++) {
			fprintf(f, "%s:spk%u,%s,speaker,%" PRIu64 ",", c->id, k,
				c->id, c->persons / ns);
			put_secret(g, f);
		}
		for (uint32_t k = 1; k <= c->nbld; k++, b++) {
			if (rng_unit(&g->r) >= 0.30)
				continue;
			fprintf(f, "%sB%04u:dsp1,%sB%04u,display,%u,", c->id, k,
				c->id, k, g->blds[b].persons);
			put_secret(g, f);
			g->terminals++;
		}
	}
}

static FILE *open_out(const char *dir, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (!f)
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
	else
		setvbuf(f, NULL, _IOFBF, 1 << 20);
	return f;
}

static int close_out(FILE *f)
{
	int bad = ferror(f);

	return (fclose(f) || bad) ? -EIO : 0;
}

static int parse_args(struct gen *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "scale", required_argument, NULL, 'x' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's': g->r.s = strtoull(optarg, NULL, 10); break;
		case 'x': g->scale = strtod(optarg, NULL); break;
		case 'o': g->out = optarg; break;
		default: return -1;
		}
	}
	return (optind == argc && g->scale > 0 && g->scale <= 200) ? 0 : -1;
}

static int gen_run(struct gen *g)
{
	FILE *seg = NULL, *term = NULL;
	int rc = -EIO;

	mkdir(g->out, 0755);
	if (!(g->hh = open_out(g->out, "households.csv")))
		return -EIO;
	if (gen_layout(g) || gen_households(g))
		goto out_close_hh;
	if (!(seg = open_out(g->out, "segments.csv")))
		goto out_close_hh;
	write_segments(g, seg);
	if (!(term = open_out(g->out, "terminals.csv")))
		goto out_close_seg;
	write_terminals(g, term);
	rc = close_out(term);
out_close_seg:
	rc |= close_out(seg);
out_close_hh:
	rc |= close_out(g->hh);
	return rc;
}

int main(int argc, char **argv)
{
	struct gen g = { .r = { 1 }, .scale = 1.0, .out = "." };

	if (parse_args(&g, argc, argv)) {
		fprintf(stderr, "usage: gen_district [--seed N] [--scale F] "
			"[--out DIR]\n");
		return 2;
	}
	int rc = gen_run(&g);
	if (rc == 0)
		printf("counts: district=1 street=%d community=%u building=%zu "
		       "households=%" PRIu64 " persons=%" PRIu64 " phones=%"
		       PRIu64 " apps=%" PRIu64 " terminals=%" PRIu64 "\n",
		       NSTREETS, g.ncomms, g.nblds, g.households, g.persons,
		       g.phones, g.apps, g.terminals);
	free(g.comms);
	free(g.blds);
	return rc ? 1 : 0;
}
