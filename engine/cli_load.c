/*
 * engine/cli_load.c: `tocsin load`, the population importer (cli_load.h).
 *
 * Flow (each step only runs if the one before succeeded):
 *   1. validate: parse segments.csv, households.csv, terminals.csv into
 *      memory (segments and terminals whole; households only as ids in
 *      the id table plus per-segment counts), hashing every byte read.
 *   2. compare the digest with the current version's: equal -> "unchanged".
 *   3. write version N (INCR tocsin:pop:seq) under a lock, re-reading
 *      households.csv and checking it still hashes the same.
 *   4. SET tocsin:pop:current N, then UNLINK the old version's keys.
 *
 * Invariants:
 *   - Nothing is written to Redis before the whole input validated.
 *   - Keys of version N are unreachable until step 4 (readers start from
 *     tocsin:pop:current). A crash during step 3 leaves tocsin:pop:loading
 *     naming the orphan version; the next load deletes it.
 *   - The id table holds every segment id (value = segment index) and every
 *     household id (value = -(building index) - 2); ids live in its arena.
 *
 * Memory is ~50 bytes per household (id bytes + a 12-byte slot at <= 50%
 * load) plus the segments; households.csv is streamed twice, never held.
 */
#include "cli_load.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>

#include "csv.h"
#include "resolve.h"

#define LOAD_LAYOUT POP_LAYOUT_NAME /* resolve.h: what the resolver reads */
#define HH_ELEMENT_MAX 8000 /* a building list element: records joined by '\n' up to about this */
#define ID_MAX 128
#define NAME_MAX_BYTES 256
#define SECRET_MAX 256
#define TOKEN_MAX 1024
#define PERSONS_MAX 999
#define HIX_PER_BUCKET 48
#define PIPE_MAX_PENDING 1000
#define PIPE_MAX_BYTES (4u << 20)
#define CMD_MAX_ARGS 2100
#define CMD_MAX_VALUES 1000
#define READ_CHUNK (1u << 20)

enum seg_kind { K_DISTRICT, K_STREET, K_COMMUNITY, K_BUILDING, K_NKINDS };
enum file_idx { F_SEG, F_HH, F_TERM, F_N };

static const char *const kind_names[K_NKINDS] = {
	"district", "street", "community", "building",
};
static const char *const headers[F_N] = {
	"id,kind,parent,name,population",
	"id,building,persons,lang,phones,apps",
	"id,segment,kind,covers_persons,secret",
};
static const char *const default_names[F_N] = {
	"segments.csv", "households.csv", "terminals.csv",
};

struct counts {
	uint64_t households, persons, phones, apps, terminals;
};

struct seg {
	uint32_t id;        /* offset of the id in the id table's arena */
	int32_t parent;     /* segment index; -1 for a district */
	char *parent_id;    /* until parents are resolved */
	char *name;
	long line;
	int64_t population;
	enum seg_kind kind;
	struct counts sum;  /* everything below this segment */
};

struct term {
	char *id, *secret;
	int32_t seg;
	int64_t covers;
	bool display;
};

/* Open-addressing string table; offset 0 of the arena is never a key. */
struct slot {
	uint32_t off;
	uint32_t hash;
	int32_t val;
};
struct strtab {
	char *arena;
	size_t arena_len, arena_cap;
	struct slot *slots;
	size_t cap, count;
};

struct csvin {
	FILE *f;
	const char *name;     /* basename, for messages */
	char *buf, *scratch;
	size_t len, off;
	bool eof;
	struct csv_record rec;
	long line, next_line;
	uint64_t rows;
	EVP_MD_CTX *md;
	struct timespec t0, last;
};

struct pipe {
	redisContext *c;
	unsigned pending;
	size_t bytes;
};

struct cmd {
	const char *argv[CMD_MAX_ARGS];
	size_t len[CMD_MAX_ARGS], off[CMD_MAX_ARGS];
	int argc;
	char *buf;
	size_t used, cap;
};

struct load {
	const char *path[F_N];
	const char *redis_addr;
	int grace;
	struct strtab ids, tids;
	struct seg *segs;
	size_t nsegs, segcap;
	struct term *terms;
	size_t nterms, termcap;
	struct counts total;
	uint64_t per_kind[K_NKINDS];
	unsigned nerrors;
	unsigned char fdigest[F_N][32];
	char digest[65];
	struct timespec t0;
	double t_validate;
	long long version, old_version;
	struct pipe p;
	struct cmd *cmd;
	struct cmd *cmd_apps; /* the RPUSH to a building's ha: list, built beside cmd's hh: one */
	char dirbuf[F_N][4096];
};

/* ------------------------------------------------------------------ */
/* small helpers                                                       */

static double elapsed(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) +
	       (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static void load_error(struct load *L, const char *file, long line,
		       const char *fmt, ...)
{
	va_list ap;

	if (L->nerrors++ >= LOAD_MAX_ERRORS)
		return;
	if (line > 0)
		fprintf(stderr, "%s:%ld: ", file, line);
	else
		fprintf(stderr, "%s: ", file);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (L->nerrors == LOAD_MAX_ERRORS)
		fprintf(stderr, "too many errors (%d), stopping\n",
			LOAD_MAX_ERRORS);
}

static bool load_full(const struct load *L)
{
	return L->nerrors >= LOAD_MAX_ERRORS;
}

static uint32_t fnv1a(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

static bool id_valid(const char *s, size_t n)
{
	if (n == 0 || n > ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == ':' || c == '@' || c == '-'))
			return false;
	}
	return true;
}

/* Decimal integer in [min, max]; no sign, no spaces, at most 18 digits. */
static bool parse_int(const char *s, size_t n, int64_t max, int64_t *out)
{
	int64_t v = 0;

	if (n == 0 || n > 18)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static bool e164_valid(const char *s, size_t n)
{
	if (n < 9 || n > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	for (size_t i = 2; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Visible ASCII except ';' (list separator) and ','. */
static bool token_valid(const char *s, size_t n)
{
	if (n == 0 || n > TOKEN_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == ';' || s[i] == ',')
			return false;
	return true;
}

/* BCP 47-ish: 1-35 of [A-Za-z0-9-]; empty means the engine's default. */
static bool lang_valid(const char *s, size_t n)
{
	if (n > 35)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
	out[2 * n] = '\0';
}

/* ------------------------------------------------------------------ */
/* strtab: id -> int32                                                 */

static int strtab_init(struct strtab *t, size_t cap)
{
	memset(t, 0, sizeof(*t));
	t->cap = cap;
	t->slots = calloc(cap, sizeof(*t->slots));
	t->arena_cap = 1 << 16;
	t->arena = malloc(t->arena_cap);
	if (!t->slots || !t->arena)
		return -ENOMEM;
	t->arena_len = 1;
	return 0;
}

static void strtab_release(struct strtab *t)
{
	free(t->slots);
	free(t->arena);
	memset(t, 0, sizeof(*t));
}

static const char *strtab_key(const struct strtab *t, uint32_t off)
{
	return t->arena + off;
}

static struct slot *strtab_find(const struct strtab *t, const char *k,
				size_t n, uint32_t h)
{
	size_t mask = t->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct slot *s = &t->slots[i];
		if (s->off == 0)
			return s;
		if (s->hash == h && strncmp(t->arena + s->off, k, n) == 0 &&
		    t->arena[s->off + n] == '\0')
			return s;
	}
}

static int strtab_grow(struct strtab *t)
{
	size_t ncap = t->cap * 2;
	struct slot *ns = calloc(ncap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		struct slot *s = &t->slots[i];
		if (s->off == 0)
			continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].off)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(t->slots);
	t->slots = ns;
	t->cap = ncap;
	return 0;
}

static int strtab_copy_key(struct strtab *t, const char *k, size_t n,
			   uint32_t *off)
{
	if (t->arena_len + n + 1 > t->arena_cap) {
		size_t ncap = t->arena_cap * 2 + n + 1;
		if (ncap > UINT32_MAX)
			return -E2BIG;
		char *na = realloc(t->arena, ncap);
		if (!na)
			return -ENOMEM;
		t->arena = na;
		t->arena_cap = ncap;
	}
	*off = (uint32_t)t->arena_len;
	memcpy(t->arena + t->arena_len, k, n);
	t->arena[t->arena_len + n] = '\0';
	t->arena_len += n + 1;
	return 0;
}

/* 1 inserted (*slot set), 0 already present (*slot is the old one), <0 errno. */
static int strtab_insert(struct strtab *t, const char *k, size_t n,
			 int32_t val, struct slot **slot)
{
	if ((t->count + 1) * 2 > t->cap && strtab_grow(t))
		return -ENOMEM;
	uint32_t h = fnv1a(k, n);
	struct slot *s = strtab_find(t, k, n, h);
	*slot = s;
	if (s->off)
		return 0;
	uint32_t off;
	int rc = strtab_copy_key(t, k, n, &off);
	if (rc)
		return rc;
	*s = (struct slot){ .off = off, .hash = h, .val = val };
	t->count++;
	return 1;
}

static bool strtab_get(const struct strtab *t, const char *k, size_t n,
		       int32_t *val)
{
	struct slot *s = strtab_find(t, k, n, fnv1a(k, n));

	if (s->off == 0)
		return false;
	*val = s->val;
	return true;
}

/* ------------------------------------------------------------------ */
/* csvin: buffered file -> records, hashing every byte                 */

static int csvin_open(struct csvin *in, const char *path)
{
	memset(in, 0, sizeof(*in));
	in->name = base_name(path);
	in->next_line = 1;
	in->f = fopen(path, "rb");
	if (!in->f)
		return -errno;
	in->buf = malloc(READ_CHUNK + CSV_MAX_RECORD + 1);
	in->scratch = malloc(CSV_SCRATCH);
	in->md = EVP_MD_CTX_new();
	if (!in->buf || !in->scratch || !in->md ||
	    !EVP_DigestInit_ex(in->md, EVP_sha256(), NULL))
		return -ENOMEM;
	clock_gettime(CLOCK_MONOTONIC, &in->t0);
	in->last = in->t0;
	return 0;
}

static void csvin_close(struct csvin *in, unsigned char digest[32])
{
	if (digest && in->md)
		EVP_DigestFinal_ex(in->md, digest, NULL);
	EVP_MD_CTX_free(in->md);
	if (in->f)
		fclose(in->f);
	free(in->buf);
	free(in->scratch);
	memset(in, 0, sizeof(*in));
}

static int csvin_fill(struct csvin *in)
{
	memmove(in->buf, in->buf + in->off, in->len - in->off);
	in->len -= in->off;
	in->off = 0;
	size_t n = fread(in->buf + in->len, 1, READ_CHUNK, in->f);
	if (ferror(in->f))
		return -EIO;
	if (in->len == 0 && in->rows == 0 && n >= 3 &&
	    memcmp(in->buf, "\xef\xbb\xbf", 3) == 0)
		in->off = 3;   /* UTF-8 BOM, as spreadsheets write it */
	EVP_DigestUpdate(in->md, in->buf + in->len, n);
	in->len += n;
	if (n == 0)
		in->eof = true;
	return 0;
}

static void csvin_progress(struct csvin *in, const char *what)
{
	if ((in->rows & 0xffff) != 0 || elapsed(&in->last) < 1.0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &in->last);
	fprintf(stderr, "%s %s: %" PRIu64 " rows, %.0f rows/s\n", what,
		in->name, in->rows, (double)in->rows / elapsed(&in->t0));
}

/* 1 = a record in in->rec (in->line = its first line), 0 = end of file,
 * -CSV_E* = malformed (in->line set), -EIO. Blank lines are skipped. */
static int csvin_next(struct csvin *in)
{
	for (;;) {
		ssize_t n = csv_parse(in->buf + in->off, in->len - in->off,
				      in->eof, &in->rec, in->scratch,
				      CSV_SCRATCH);
		in->line = in->next_line;
		if (n < 0)
			return (int)n;
		if (n == 0 && in->eof)
			return 0;
		if (n == 0) {
			if (csvin_fill(in))
				return -EIO;
			continue;
		}
		in->off += (size_t)n;
		in->next_line += in->rec.lines;
		if (in->rec.blank)
			continue;
		in->rows++;
		return 1;
	}
}

/* ------------------------------------------------------------------ */
/* validation                                                          */

static bool field_count(struct load *L, struct csvin *in, size_t want)
{
	if (in->rec.nfields == want)
		return true;
	load_error(L, in->name, in->line, "expected %zu fields, found %zu",
		   want, in->rec.nfields);
	return false;
}

static bool check_id(struct load *L, struct csvin *in, const char *what,
		     size_t i)
{
	const char *s = in->rec.field[i];

	if (id_valid(s, in->rec.len[i]))
		return true;
	load_error(L, in->name, in->line,
		   "%s: '%.*s' is not an id (1-%d of [A-Za-z0-9._:@-])", what,
		   (int)(in->rec.len[i] > 200 ? 200 : in->rec.len[i]), s, ID_MAX);
	return false;
}

static bool check_int(struct load *L, struct csvin *in, const char *what,
		      size_t i, int64_t max, int64_t *out)
{
	if (parse_int(in->rec.field[i], in->rec.len[i], max, out))
		return true;
	load_error(L, in->name, in->line,
		   "%s: '%.*s' is not a number in 0..%" PRId64, what,
		   (int)(in->rec.len[i] > 40 ? 40 : in->rec.len[i]),
		   in->rec.field[i], max);
	return false;
}

/* The header row: exact column names, in order. */
static bool check_header(struct load *L, struct csvin *in, enum file_idx f)
{
	char got[512] = "";
	size_t used = 0;
	int rc = csvin_next(in);

	if (rc <= 0) {
		load_error(L, in->name, in->line, "missing header '%s'",
			   headers[f]);
		return false;
	}
	in->rows = 0;   /* count data rows only */
	for (size_t i = 0; i < in->rec.nfields && used < sizeof(got); i++)
		used += (size_t)snprintf(got + used, sizeof(got) - used,
					 "%s%s", i ? "," : "",
					 in->rec.field[i]);
	if (strcmp(got, headers[f]) == 0)
		return true;
	load_error(L, in->name, in->line, "header: expected '%s', found '%s'",
		   headers[f], got);
	return false;
}

static int kind_parse(const char *s)
{
	for (int k = 0; k < K_NKINDS; k++)
		if (strcmp(s, kind_names[k]) == 0)
			return k;
	return -1;
}

static int seg_push(struct load *L, struct seg *s)
{
	if (L->nsegs == L->segcap) {
		size_t ncap = L->segcap ? L->segcap * 2 : 1024;
		struct seg *n = realloc(L->segs, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		L->segs = n;
		L->segcap = ncap;
	}
	L->segs[L->nsegs++] = *s;
	return 0;
}

static bool seg_fields(struct load *L, struct csvin *in, struct seg *s)
{
	const struct csv_record *r = &in->rec;
	int k = kind_parse(r->field[1]);

	if (!field_count(L, in, 5) || !check_id(L, in, "id", 0))
		return false;
	if (k < 0) {
		load_error(L, in->name, in->line,
			   "kind: '%.40s' is not district, street, community "
			   "or building", r->field[1]);
		return false;
	}
	s->kind = (enum seg_kind)k;
	if (k == K_DISTRICT && r->len[2] != 0) {
		load_error(L, in->name, in->line,
			   "parent: a district has no parent");
		return false;
	}
	if (k != K_DISTRICT && !check_id(L, in, "parent", 2))
		return false;
	if (r->len[3] == 0 || r->len[3] > NAME_MAX_BYTES ||
	    !csv_utf8_valid(r->field[3], r->len[3])) {
		load_error(L, in->name, in->line,
			   "name: empty, longer than %d bytes, or not UTF-8",
			   NAME_MAX_BYTES);
		return false;
	}
	return check_int(L, in, "population", 4, INT32_MAX, &s->population);
}

static int seg_row(struct load *L, struct csvin *in)
{
	struct seg s = { .parent = -1, .line = in->line };
	struct slot *slot;

	if (!seg_fields(L, in, &s))
		return 0;
	const struct csv_record *r = &in->rec;
	int rc = strtab_insert(&L->ids, r->field[0], r->len[0],
			       (int32_t)L->nsegs, &slot);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		load_error(L, in->name, in->line,
			   "id: duplicate id '%s' (first at line %ld)",
			   r->field[0], L->segs[slot->val].line);
		return 0;
	}
	s.id = slot->off;
	s.name = strdup(r->field[3]);
	s.parent_id = s.kind == K_DISTRICT ? NULL : strdup(r->field[2]);
	if (!s.name || (s.kind != K_DISTRICT && !s.parent_id))
		return -ENOMEM;
	return seg_push(L, &s);
}

/* Parent exists, is one kind up, and is a proper prefix of the child. */
static void seg_resolve(struct load *L, const char *file, struct seg *s)
{
	const char *id = strtab_key(&L->ids, s->id);
	int32_t p;

	if (s->kind == K_DISTRICT)
		return;
	if (!strtab_get(&L->ids, s->parent_id, strlen(s->parent_id), &p)) {
		load_error(L, file, s->line, "parent: unknown parent '%s'",
			   s->parent_id);
		return;
	}
	struct seg *ps = &L->segs[p];
	if (ps->kind != s->kind - 1) {
		load_error(L, file, s->line,
			   "parent: '%s' is a %s; a %s's parent must be a %s",
			   s->parent_id, kind_names[ps->kind],
			   kind_names[s->kind], kind_names[s->kind - 1]);
		return;
	}
	size_t pl = strlen(s->parent_id);
	if (strlen(id) <= pl || strncmp(id, s->parent_id, pl) != 0) {
		load_error(L, file, s->line,
			   "id: '%s' does not start with its parent's id '%s'",
			   id, s->parent_id);
		return;
	}
	s->parent = p;
}

static int validate_segments(struct load *L)
{
	struct csvin in;
	int rc = csvin_open(&in, L->path[F_SEG]);

	if (rc) {
		load_error(L, L->path[F_SEG], 0, "%s", strerror(-rc));
		goto out_close;
	}
	if (!check_header(L, &in, F_SEG))
		goto out_close;
	while (!load_full(L) && (rc = csvin_next(&in)) == 1) {
		if ((rc = seg_row(L, &in)) < 0)
			break;
		csvin_progress(&in, "validate");
	}
	if (rc < 0)
		load_error(L, in.name, in.line, "%s", rc == -EIO ? "read error"
			   : rc == -ENOMEM ? "out of memory"
			   : csv_strerror((enum csv_err)-rc));
	for (size_t i = 0; i < L->nsegs && !load_full(L); i++)
		seg_resolve(L, in.name, &L->segs[i]);
	for (size_t i = 0; i < L->nsegs; i++) {
		L->per_kind[L->segs[i].kind]++;
		free(L->segs[i].parent_id);
		L->segs[i].parent_id = NULL;
	}
out_close:
	csvin_close(&in, L->fdigest[F_SEG]);
	return rc == -ENOMEM ? rc : 0;
}

/* phones: ';'-separated E.164 numbers; empty is allowed. */
static bool hh_phones(struct load *L, struct csvin *in, uint64_t *n)
{
	const char *s = in->rec.field[4], *end = s + in->rec.len[4];

	*n = 0;
	while (s < end) {
		const char *e = memchr(s, ';', (size_t)(end - s));
		size_t len = (size_t)((e ? e : end) - s);
		if (!e164_valid(s, len)) {
			load_error(L, in->name, in->line,
				   "phones: '%.*s' is not an E.164 number",
				   (int)(len > 40 ? 40 : len), s);
			return false;
		}
		(*n)++;
		s += len + 1;
	}
	return true;
}

/* apps: ';'-separated platform:token, platform in apns, fcm, webhook. */
static bool hh_apps(struct load *L, struct csvin *in, uint64_t *n)
{
	const char *s = in->rec.field[5], *end = s + in->rec.len[5];

	*n = 0;
	while (s < end) {
		const char *e = memchr(s, ';', (size_t)(end - s));
		size_t len = (size_t)((e ? e : end) - s);
		const char *c = memchr(s, ':', len);
		size_t pl = c ? (size_t)(c - s) : 0;
		bool ok = c && ((pl == 4 && !memcmp(s, "apns", 4)) ||
				(pl == 3 && !memcmp(s, "fcm", 3)) ||
				(pl == 7 && !memcmp(s, "webhook", 7))) &&
			  token_valid(c + 1, len - pl - 1);
		if (!ok) {
			load_error(L, in->name, in->line,
				   "apps: '%.*s' is not platform:token "
				   "(apns, fcm, webhook)",
				   (int)(len > 40 ? 40 : len), s);
			return false;
		}
		(*n)++;
		s += len + 1;
	}
	return true;
}

/* The household's building index, or -1 after reporting why not. */
static int32_t hh_building(struct load *L, struct csvin *in)
{
	const struct csv_record *r = &in->rec;
	int32_t b;

	if (!strtab_get(&L->ids, r->field[1], r->len[1], &b) || b < 0 ||
	    L->segs[b].kind != K_BUILDING) {
		load_error(L, in->name, in->line,
			   "building: unknown building '%.*s'",
			   (int)(r->len[1] > 200 ? 200 : r->len[1]), r->field[1]);
		return -1;
	}
	if (r->len[0] <= r->len[1] ||
	    memcmp(r->field[0], r->field[1], r->len[1]) != 0) {
		load_error(L, in->name, in->line,
			   "id: '%s' does not start with its building's id '%s'",
			   r->field[0], r->field[1]);
		return -1;
	}
	return b;
}

static void hh_count(struct load *L, int32_t b, const struct counts *c)
{
	for (int32_t s = b; s >= 0; s = L->segs[s].parent) {
		struct counts *t = &L->segs[s].sum;
		t->households += c->households;
		t->persons += c->persons;
		t->phones += c->phones;
		t->apps += c->apps;
	}
	L->total.households += c->households;
	L->total.persons += c->persons;
	L->total.phones += c->phones;
	L->total.apps += c->apps;
}

static int hh_row(struct load *L, struct csvin *in)
{
	const struct csv_record *r = &in->rec;
	struct counts c = { .households = 1 };
	int64_t persons;
	struct slot *slot;

	if (!field_count(L, in, 6) || !check_id(L, in, "id", 0))
		return 0;
	int32_t b = hh_building(L, in);
	if (b < 0 || !check_int(L, in, "persons", 2, PERSONS_MAX, &persons))
		return 0;
	if (!lang_valid(r->field[3], r->len[3])) {
		load_error(L, in->name, in->line,
			   "lang: '%.40s' is not a language tag", r->field[3]);
		return 0;
	}
	if (!hh_phones(L, in, &c.phones) || !hh_apps(L, in, &c.apps))
		return 0;
	int rc = strtab_insert(&L->ids, r->field[0], r->len[0], -b - 2, &slot);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		load_error(L, in->name, in->line, "id: duplicate id '%s'",
			   r->field[0]);
		return 0;
	}
	c.persons = (uint64_t)persons;
	hh_count(L, b, &c);
	return 0;
}

static bool term_fields(struct load *L, struct csvin *in, struct term *t)
{
	const struct csv_record *r = &in->rec;
	int32_t s;

	if (!field_count(L, in, 5) || !check_id(L, in, "id", 0))
		return false;
	if (!strtab_get(&L->ids, r->field[1], r->len[1], &s) || s < 0 ||
	    L->segs[s].kind < K_COMMUNITY) {
		load_error(L, in->name, in->line,
			   "segment: '%.*s' is not a known community or "
			   "building", (int)(r->len[1] > 200 ? 200 : r->len[1]),
			   r->field[1]);
		return false;
	}
	t->seg = s;
	t->display = strcmp(r->field[2], "display") == 0;
	if (!t->display && strcmp(r->field[2], "speaker") != 0) {
		load_error(L, in->name, in->line,
			   "kind: '%.40s' is not speaker or display",
			   r->field[2]);
		return false;
	}
	if (!check_int(L, in, "covers_persons", 3, INT32_MAX, &t->covers))
		return false;
	if (r->len[4] > SECRET_MAX || !token_valid(r->field[4], r->len[4])) {
		load_error(L, in->name, in->line,
			   "secret: empty, longer than %d, or not visible ASCII",
			   SECRET_MAX);
		return false;
	}
	return true;
}

static int term_push(struct load *L, struct term *t)
{
	if (L->nterms == L->termcap) {
		size_t ncap = L->termcap ? L->termcap * 2 : 256;
		struct term *n = realloc(L->terms, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		L->terms = n;
		L->termcap = ncap;
	}
	L->terms[L->nterms++] = *t;
	return 0;
}

static int term_row(struct load *L, struct csvin *in)
{
	struct term t = { 0 };
	struct slot *slot;

	if (!term_fields(L, in, &t))
		return 0;
	int rc = strtab_insert(&L->tids, in->rec.field[0], in->rec.len[0],
			       (int32_t)L->nterms, &slot);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		load_error(L, in->name, in->line, "id: duplicate id '%s'",
			   in->rec.field[0]);
		return 0;
	}
	t.id = strdup(in->rec.field[0]);
	t.secret = strdup(in->rec.field[4]);
	if (!t.id || !t.secret)
		return -ENOMEM;
	for (int32_t s = t.seg; s >= 0; s = L->segs[s].parent)
		L->segs[s].sum.terminals++;
	L->total.terminals++;
	return term_push(L, &t);
}

typedef int (*row_fn)(struct load *L, struct csvin *in);

/* Stream one file through row(); errors are counted in L->nerrors. */
static int validate_rows(struct load *L, enum file_idx f, row_fn row)
{
	struct csvin in;
	int rc = csvin_open(&in, L->path[f]);

	if (rc) {
		load_error(L, L->path[f], 0, "%s", strerror(-rc));
		goto out_close;
	}
	if (!check_header(L, &in, f))
		goto out_close;
	while (!load_full(L) && (rc = csvin_next(&in)) == 1) {
		if ((rc = row(L, &in)) < 0)
			break;
		csvin_progress(&in, "validate");
	}
	if (rc < 0)
		load_error(L, in.name, in.line, "%s", rc == -EIO ? "read error"
			   : rc == -ENOMEM ? "out of memory"
			   : csv_strerror((enum csv_err)-rc));
	fprintf(stderr, "validate %s: %" PRIu64 " rows in %.2f s\n", in.name,
		in.rows, elapsed(&in.t0));
out_close:
	csvin_close(&in, L->fdigest[f]);
	return rc == -ENOMEM ? rc : 0;
}

static void digest_all(struct load *L)
{
	unsigned char d[32];
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	EVP_DigestUpdate(md, LOAD_LAYOUT, strlen(LOAD_LAYOUT));
	for (int f = 0; f < F_N; f++)
		EVP_DigestUpdate(md, L->fdigest[f], 32);
	EVP_DigestFinal_ex(md, d, NULL);
	EVP_MD_CTX_free(md);
	hex(d, 32, L->digest);
}

/* Step 1. Returns 0 when everything is valid. */
static int load_validate(struct load *L)
{
	if (strtab_init(&L->ids, 1 << 16) || strtab_init(&L->tids, 1 << 10))
		return -ENOMEM;
	if (validate_segments(L) || load_full(L))
		return -1;
	if (validate_rows(L, F_HH, hh_row) || load_full(L))
		return -1;
	if (validate_rows(L, F_TERM, term_row))
		return -1;
	if (L->nerrors)
		return -1;
	digest_all(L);
	L->t_validate = elapsed(&L->t0);
	return 0;
}

/* ------------------------------------------------------------------ */
/* cmd + pipe: pipelined writes in batches                             */

static void cmd_begin(struct cmd *c)
{
	c->argc = 0;
	c->used = 0;
}

static int cmd_reserve(struct cmd *c, size_t n)
{
	if (c->used + n <= c->cap)
		return 0;
	size_t ncap = (c->cap ? c->cap * 2 : 1 << 16) + n;
	char *nb = realloc(c->buf, ncap);
	if (!nb)
		return -ENOMEM;
	c->buf = nb;
	c->cap = ncap;
	return 0;
}

/* Extend the last argument by what fmt gives (the argument stays NUL-terminated). */
__attribute__((format(printf, 2, 3)))
static int cmd_appendf(struct cmd *c, const char *fmt, ...)
{
	va_list ap, ap2;

	if (c->argc == 0)
		return -EINVAL;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || cmd_reserve(c, (size_t)n)) {
		va_end(ap2);
		return -ENOMEM;
	}
	vsnprintf(c->buf + c->used - 1, (size_t)n + 1, fmt, ap2); /* over the NUL */
	va_end(ap2);
	c->len[c->argc - 1] += (size_t)n;
	c->used += (size_t)n;
	return 0;
}

__attribute__((format(printf, 2, 3)))
static int cmd_addf(struct cmd *c, const char *fmt, ...)
{
	va_list ap, ap2;

	if (c->argc >= CMD_MAX_ARGS)
		return -E2BIG;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || cmd_reserve(c, (size_t)n + 1)) {
		va_end(ap2);
		return -ENOMEM;
	}
	vsnprintf(c->buf + c->used, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	c->off[c->argc] = c->used;
	c->len[c->argc++] = (size_t)n;
	c->used += (size_t)n + 1;
	return 0;
}

/* Read every pending reply; an error reply fails the load. */
static int pipe_drain(struct pipe *p)
{
	int rc = 0;

	for (; p->pending; p->pending--) {
		redisReply *r = NULL;
		if (redisGetReply(p->c, (void **)&r) != REDIS_OK || !r) {
			fprintf(stderr, "redis: %s\n", p->c->errstr);
			return -EIO;
		}
		if (r->type == REDIS_REPLY_ERROR && rc == 0) {
			fprintf(stderr, "redis: %s\n", r->str);
			rc = -EIO;
		}
		freeReplyObject(r);
	}
	p->bytes = 0;
	return rc;
}

static int pipe_send(struct pipe *p, struct cmd *c)
{
	if (c->argc == 0)
		return 0;
	for (int i = 0; i < c->argc; i++)
		c->argv[i] = c->buf + c->off[i];
	if (redisAppendCommandArgv(p->c, c->argc, c->argv, c->len) != REDIS_OK)
		return -ENOMEM;
	p->pending++;
	p->bytes += c->used + 16 * (size_t)c->argc;
	cmd_begin(c);
	if (p->pending >= PIPE_MAX_PENDING || p->bytes >= PIPE_MAX_BYTES)
		return pipe_drain(p);
	return 0;
}

/* One synchronous command (after draining the pipeline). */
__attribute__((format(printf, 2, 3)))
static redisReply *redis_cmd(struct load *L, const char *fmt, ...)
{
	va_list ap;

	if (pipe_drain(&L->p))
		return NULL;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(L->p.c, fmt, ap);
	va_end(ap);
	if (!r)
		fprintf(stderr, "redis: %s\n", L->p.c->errstr);
	else if (r->type == REDIS_REPLY_ERROR)
		fprintf(stderr, "redis: %s\n", r->str);
	return r;
}

static redisContext *redis_open(const char *addr)
{
	struct timeval tv = { .tv_sec = 5 };
	redisContext *c;

	if (strncmp(addr, "unix:", 5) == 0) {
		c = redisConnectUnixWithTimeout(addr + 5, tv);
	} else {
		char host[256];
		const char *colon = strrchr(addr, ':');
		size_t hl = colon ? (size_t)(colon - addr) : 0;
		if (!colon || hl == 0 || hl >= sizeof(host))
			return NULL;
		memcpy(host, addr, hl);
		host[hl] = '\0';
		c = redisConnectWithTimeout(host, atoi(colon + 1), tv);
	}
	if (c && c->err) {
		fprintf(stderr, "redis %s: %s\n", addr, c->errstr);
		redisFree(c);
		return NULL;
	}
	if (c)
		redisSetTimeout(c, (struct timeval){ .tv_sec = 60 });
	return c;
}

/* ------------------------------------------------------------------ */
/* writing version N                                                   */

static int write_segment(struct load *L, const struct seg *s)
{
	struct cmd *c = L->cmd;
	const char *id = strtab_key(&L->ids, s->id);
	const char *pid = s->parent < 0 ? "" :
			  strtab_key(&L->ids, L->segs[s->parent].id);
	int rc = 0;

	cmd_begin(c);
	rc |= cmd_addf(c, "HSET");
	rc |= cmd_addf(c, "tocsin:pop:v%lld:seg:%s", L->version, id);
	rc |= cmd_addf(c, "kind") | cmd_addf(c, "%s", kind_names[s->kind]);
	rc |= cmd_addf(c, "parent") | cmd_addf(c, "%s", pid);
	rc |= cmd_addf(c, "name") | cmd_addf(c, "%s", s->name);
	rc |= cmd_addf(c, "population") |
	      cmd_addf(c, "%" PRId64, s->population);
	rc |= cmd_addf(c, "households") |
	      cmd_addf(c, "%" PRIu64, s->sum.households);
	rc |= cmd_addf(c, "persons") | cmd_addf(c, "%" PRIu64, s->sum.persons);
	rc |= cmd_addf(c, "phones") | cmd_addf(c, "%" PRIu64, s->sum.phones);
	rc |= cmd_addf(c, "apps") | cmd_addf(c, "%" PRIu64, s->sum.apps);
	rc |= cmd_addf(c, "terminals") |
	      cmd_addf(c, "%" PRIu64, s->sum.terminals);
	if (rc || (rc = pipe_send(&L->p, c)))
		return rc ? rc : -ENOMEM;
	rc |= cmd_addf(c, "RPUSH");
	if (s->parent < 0)
		rc |= cmd_addf(c, "tocsin:pop:v%lld:roots", L->version);
	else
		rc |= cmd_addf(c, "tocsin:pop:v%lld:kids:%s", L->version, pid);
	rc |= cmd_addf(c, "%s", id);
	return rc ? -ENOMEM : pipe_send(&L->p, c);
}

static int write_segments(struct load *L)
{
	for (size_t i = 0; i < L->nsegs; i++) {
		int rc = write_segment(L, &L->segs[i]);
		if (rc)
			return rc;
	}
	return 0;
}

/* Append one household record to the RPUSH being built for its building,
 * flushing when the building changes or the command is full. Records are
 * joined by '\n' into elements of about HH_ELEMENT_MAX bytes (layout 3),
 * so that reading a building costs Redis one reply string, not one per
 * household. Layout 4: a household's app tokens go to the building's ha:
 * list instead ("SUFFIX\tAPPS", joined the same way, only for households
 * that have any, in the same order), so that a warning without the app
 * channel does not read them: they are ~70 % of a building's bytes. */
static int hh_write_row(struct load *L, struct csvin *in, int32_t *cur)
{
	const struct csv_record *r = &in->rec;
	struct cmd *c = L->cmd, *a = L->cmd_apps;
	int32_t b;
	int64_t persons;
	int rc;

	if (!strtab_get(&L->ids, r->field[1], r->len[1], &b) || b < 0 ||
	    r->nfields != 6 || !parse_int(r->field[2], r->len[2], PERSONS_MAX,
					  &persons))
		return -ESTALE;
	if (b != *cur || c->argc > CMD_MAX_VALUES || c->used > (1u << 20) ||
	    a->argc > CMD_MAX_VALUES || a->used > (1u << 20)) {
		if ((rc = pipe_send(&L->p, c)) || (rc = pipe_send(&L->p, a)))
			return rc;
		rc = cmd_addf(c, "RPUSH") |
		     cmd_addf(c, "tocsin:pop:v%lld:hh:%s", L->version,
			      r->field[1]);
		if (rc)
			return -ENOMEM;
		*cur = b;
	}
	const char *suffix = r->field[0] + r->len[1];
	if (c->argc == 2 || c->len[c->argc - 1] >= HH_ELEMENT_MAX)
		rc = cmd_addf(c, "%s\t%" PRId64 "\t%s\t%s", suffix, persons, r->field[3],
			      r->field[4]);
	else
		rc = cmd_appendf(c, "\n%s\t%" PRId64 "\t%s\t%s", suffix, persons, r->field[3],
				 r->field[4]);
	if (rc || !r->len[5])
		return rc ? -ENOMEM : 0;
	if (a->argc == 0)
		rc = cmd_addf(a, "RPUSH") |
		     cmd_addf(a, "tocsin:pop:v%lld:ha:%s", L->version, r->field[1]);
	if (a->argc == 2 || a->len[a->argc - 1] >= HH_ELEMENT_MAX)
		rc |= cmd_addf(a, "%s\t%s", suffix, r->field[5]);
	else
		rc |= cmd_appendf(a, "\n%s\t%s", suffix, r->field[5]);
	return rc ? -ENOMEM : 0;
}

/* Pass 2 over households.csv; it must hash as it did in pass 1. */
static int write_households(struct load *L)
{
	struct csvin in;
	unsigned char d[32];
	int32_t cur = -1;
	int rc = csvin_open(&in, L->path[F_HH]);

	cmd_begin(L->cmd);
	cmd_begin(L->cmd_apps);
	if (rc == 0 && csvin_next(&in) != 1)   /* header */
		rc = -ESTALE;
	in.rows = 0;
	while (rc == 0 && (rc = csvin_next(&in)) == 1) {
		rc = hh_write_row(L, &in, &cur);
		csvin_progress(&in, "write");
	}
	if (rc < 0 && rc >= -CSV_ENUL)
		rc = -ESTALE;   /* malformed now, valid in pass 1 */
	if (rc == 0)
		rc = pipe_send(&L->p, L->cmd);
	if (rc == 0)
		rc = pipe_send(&L->p, L->cmd_apps);
	fprintf(stderr, "write %s: %" PRIu64 " rows in %.2f s\n", in.name,
		in.rows, elapsed(&in.t0));
	csvin_close(&in, d);
	if (rc == 0 && memcmp(d, L->fdigest[F_HH], 32) != 0)
		rc = -ESTALE;
	if (rc == -ESTALE)
		fprintf(stderr, "%s: changed while loading\n", in.name ?
			in.name : base_name(L->path[F_HH]));
	return rc;
}

/* Sort household slots by bucket (counting sort); order[] gets slot indices. */
static int hix_sort(struct load *L, uint32_t nb, uint32_t **start_out,
		    uint32_t **order_out)
{
	uint32_t *start = calloc((size_t)nb + 1, sizeof(*start));
	uint32_t *order = malloc((L->total.households + 1) * sizeof(*order));

	if (!start || !order) {
		free(start);
		free(order);
		return -ENOMEM;
	}
	for (size_t i = 0; i < L->ids.cap; i++)
		if (L->ids.slots[i].off && L->ids.slots[i].val <= -2)
			start[L->ids.slots[i].hash % nb + 1]++;
	for (uint32_t i = 0; i < nb; i++)
		start[i + 1] += start[i];
	for (size_t i = 0; i < L->ids.cap; i++)
		if (L->ids.slots[i].off && L->ids.slots[i].val <= -2)
			order[start[L->ids.slots[i].hash % nb]++] = (uint32_t)i;
	for (uint32_t i = nb; i > 0; i--)   /* shift back to bucket starts */
		start[i] = start[i - 1];
	start[0] = 0;
	*start_out = start;
	*order_out = order;
	return 0;
}

static uint32_t hix_buckets(const struct load *L)
{
	return (uint32_t)(L->total.households / HIX_PER_BUCKET + 1);
}

/* hix:{fnv1a(id) % buckets}: household id -> length of its building id. */
static int write_hix(struct load *L)
{
	uint32_t nb = hix_buckets(L), *start, *order;
	int rc = hix_sort(L, nb, &start, &order);

	if (rc)
		return rc;
	for (uint32_t b = 0; rc == 0 && b < nb; b++) {
		if (start[b] == start[b + 1])
			continue;
		cmd_begin(L->cmd);
		rc = cmd_addf(L->cmd, "HSET") |
		     cmd_addf(L->cmd, "tocsin:pop:v%lld:hix:%u", L->version, b);
		for (uint32_t i = start[b]; rc == 0 && i < start[b + 1]; i++) {
			const struct slot *s = &L->ids.slots[order[i]];
			const struct seg *bs = &L->segs[-s->val - 2];
			rc = cmd_addf(L->cmd, "%s", strtab_key(&L->ids, s->off)) |
			     cmd_addf(L->cmd, "%zu",
				      strlen(strtab_key(&L->ids, bs->id)));
		}
		if (rc == 0)
			rc = pipe_send(&L->p, L->cmd);
	}
	free(start);
	free(order);
	return rc;
}

static int write_terminals(struct load *L)
{
	struct cmd *c = L->cmd;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < L->nterms; i++) {
		const struct term *t = &L->terms[i];
		const char *sid = strtab_key(&L->ids, L->segs[t->seg].id);
		cmd_begin(c);
		rc = cmd_addf(c, "HSET") |
		     cmd_addf(c, "tocsin:pop:v%lld:term:%s", L->version, t->id) |
		     cmd_addf(c, "segment") | cmd_addf(c, "%s", sid) |
		     cmd_addf(c, "kind") |
		     cmd_addf(c, "%s", t->display ? "display" : "speaker") |
		     cmd_addf(c, "covers_persons") |
		     cmd_addf(c, "%" PRId64, t->covers) |
		     cmd_addf(c, "secret") | cmd_addf(c, "%s", t->secret);
		if (rc == 0)
			rc = pipe_send(&L->p, c);
		if (rc == 0)
			rc = cmd_addf(c, "RPUSH") |
			     cmd_addf(c, "tocsin:pop:v%lld:terms:%s",
				      L->version, sid) |
			     cmd_addf(c, "%s\t%s\t%" PRId64, t->id,
				      t->display ? "display" : "speaker", t->covers);
		if (rc == 0)
			rc = pipe_send(&L->p, c);
	}
	return rc;
}

static int write_meta(struct load *L)
{
	const struct counts *t = &L->total;
	redisReply *r = redis_cmd(L,
		"HSET tocsin:pop:v%lld:meta digest %s layout %s created %lld "
		"hix_buckets %u districts %" PRIu64 " streets %" PRIu64
		" communities %" PRIu64 " buildings %" PRIu64
		" households %" PRIu64 " persons %" PRIu64 " phones %" PRIu64
		" apps %" PRIu64 " terminals %" PRIu64,
		L->version, L->digest, LOAD_LAYOUT, (long long)time(NULL),
		hix_buckets(L), L->per_kind[K_DISTRICT], L->per_kind[K_STREET],
		L->per_kind[K_COMMUNITY], L->per_kind[K_BUILDING],
		t->households, t->persons, t->phones, t->apps, t->terminals);
	int rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -EIO;

	freeReplyObject(r);
	return rc;
}

/* ------------------------------------------------------------------ */
/* versions: pointer, lock, orphan clean-up, deletion                  */

/* GET key as a number: >= 0, -1 when absent, -2 on error. */
static long long get_ll(struct load *L, const char *key)
{
	redisReply *r = redis_cmd(L, "GET %s", key);
	long long v = -2;

	if (r && r->type == REDIS_REPLY_NIL)
		v = -1;
	else if (r && r->type == REDIS_REPLY_STRING)
		v = strtoll(r->str, NULL, 10);
	freeReplyObject(r);
	return v;
}

static bool digest_is_current(struct load *L)
{
	if (L->old_version < 0)
		return false;
	redisReply *r = redis_cmd(L, "HGET tocsin:pop:v%lld:meta digest",
				  L->old_version);
	bool same = r && r->type == REDIS_REPLY_STRING &&
		    strcmp(r->str, L->digest) == 0;
	freeReplyObject(r);
	return same;
}

static int simple_cmd(struct load *L, const char *what, redisReply *r)
{
	int rc = r && r->type != REDIS_REPLY_ERROR ? 0 : -EIO;

	if (rc)
		fprintf(stderr, "redis: %s failed\n", what);
	freeReplyObject(r);
	return rc;
}

static int lock_take(struct load *L)
{
	redisReply *r = redis_cmd(L, "SET tocsin:pop:lock %d NX EX 3600",
				  (int)getpid());
	int rc = r && r->type == REDIS_REPLY_STATUS ? 0 : -EBUSY;

	if (r && r->type == REDIS_REPLY_NIL)
		fprintf(stderr, "another load holds tocsin:pop:lock\n");
	freeReplyObject(r);
	return rc;
}

/* Retire version v: its meta first (so a resolver streaming from v sees it
 * is gone), then every other key, in UNLINK batches as SCAN finds them. */
static int version_delete(struct load *L, long long v)
{
	char cursor[32] = "0";
	int rc = simple_cmd(L, "DEL meta",
			    redis_cmd(L, "DEL tocsin:pop:v%lld:meta", v));

	do {
		redisReply *r = redis_cmd(L, "SCAN %s MATCH tocsin:pop:v%lld:* "
					  "COUNT 10000", cursor, v);
		if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
			freeReplyObject(r);
			return -EIO;
		}
		snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
		redisReply *keys = r->element[1];
		cmd_begin(L->cmd);
		rc |= cmd_addf(L->cmd, "UNLINK");
		for (size_t i = 0; i < keys->elements && rc == 0; i++)
			rc = cmd_addf(L->cmd, "%s", keys->element[i]->str);
		if (rc == 0 && L->cmd->argc > 1)
			rc = pipe_send(&L->p, L->cmd);
		freeReplyObject(r);
	} while (rc == 0 && strcmp(cursor, "0") != 0);
	return rc ? rc : pipe_drain(&L->p);
}

/* A load that died mid-write left tocsin:pop:loading = its version. */
static int drop_orphan(struct load *L)
{
	long long v = get_ll(L, "tocsin:pop:loading");

	if (v == -2)
		return -EIO;
	if (v < 0 || v == L->old_version)
		return 0;
	fprintf(stderr, "removing version %lld left by an interrupted load\n",
		v);
	int rc = version_delete(L, v);
	return rc ? rc : simple_cmd(L, "DEL loading",
				    redis_cmd(L, "DEL tocsin:pop:loading"));
}

static int write_all(struct load *L)
{
	int rc;

	if ((rc = write_segments(L)) || (rc = write_households(L)) ||
	    (rc = write_hix(L)) || (rc = write_terminals(L)) ||
	    (rc = pipe_drain(&L->p)))
		return rc;
	return write_meta(L);
}

/* Steps 3 and 4 (lock held). */
static int load_write(struct load *L)
{
	long long v;
	int rc;

	if ((rc = drop_orphan(L)))
		return rc;
	redisReply *r = redis_cmd(L, "INCR tocsin:pop:seq");
	v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	freeReplyObject(r);
	if (v < 0)
		return -EIO;
	L->version = v;
	if ((rc = simple_cmd(L, "SET loading", redis_cmd(L,
			"SET tocsin:pop:loading %lld", v))))
		return rc;
	if ((rc = write_all(L)))
		goto out_delete_new;
	if ((rc = simple_cmd(L, "SET current", redis_cmd(L,
			"SET tocsin:pop:current %lld", v))))
		goto out_delete_new;
	simple_cmd(L, "DEL loading", redis_cmd(L, "DEL tocsin:pop:loading"));
	return 0;
out_delete_new:
	fprintf(stderr, "load failed; removing version %lld\n", v);
	if (version_delete(L, v) == 0)
		simple_cmd(L, "DEL loading",
			   redis_cmd(L, "DEL tocsin:pop:loading"));
	return rc;
}

static void print_summary(const struct load *L, double t_write)
{
	const struct counts *t = &L->total;
	const uint64_t *k = L->per_kind;

	printf("loaded version %lld (digest %.16s)", L->version, L->digest);
	if (L->old_version >= 0)
		printf(", removed version %lld", L->old_version);
	printf("\nsegments: %" PRIu64 " district, %" PRIu64 " street, %" PRIu64
	       " community, %" PRIu64 " building\n", k[0], k[1], k[2], k[3]);
	printf("households %" PRIu64 ", persons %" PRIu64 ", phones %" PRIu64
	       ", app tokens %" PRIu64 ", terminals %" PRIu64 "\n",
	       t->households, t->persons, t->phones, t->apps, t->terminals);
	printf("time %.2f s (validate %.2f s, write and switch %.2f s)\n",
	       elapsed(&L->t0), L->t_validate, t_write);
	printf("counts: district=%" PRIu64 " street=%" PRIu64 " community=%"
	       PRIu64 " building=%" PRIu64 " households=%" PRIu64 " persons=%"
	       PRIu64 " phones=%" PRIu64 " apps=%" PRIu64 " terminals=%" PRIu64
	       "\n", k[0], k[1], k[2], k[3], t->households, t->persons,
	       t->phones, t->apps, t->terminals);
}

/* Connect, skip if unchanged, write and switch under the lock, retire the
 * old version. */
static int load_run(struct load *L)
{
	struct timespec tw;
	int rc;

	L->p.c = redis_open(L->redis_addr);
	if (!L->p.c)
		return -EIO;
	if ((L->old_version = get_ll(L, "tocsin:pop:current")) == -2)
		return -EIO;
	if (digest_is_current(L)) {
		printf("unchanged: version %lld has digest %.16s\n",
		       L->old_version, L->digest);
		return 0;
	}
	clock_gettime(CLOCK_MONOTONIC, &tw);
	if ((rc = lock_take(L)))
		return rc;
	if ((rc = load_write(L)))
		goto out_unlock;
	if (L->old_version >= 0) {
		if (L->grace > 0)
			sleep((unsigned)L->grace);
		rc = version_delete(L, L->old_version);
	}
	print_summary(L, elapsed(&tw));
out_unlock:
	simple_cmd(L, "DEL lock", redis_cmd(L, "DEL tocsin:pop:lock"));
	return rc;
}

/* ------------------------------------------------------------------ */
/* entry point                                                         */

static void usage(void)
{
	fprintf(stderr,
		"usage: tocsin load --redis HOST:PORT|unix:/path\n"
		"         [--dir DIR | --segments F --households F --terminals F]\n"
		"         [--grace SECONDS]  (wait before deleting the old version)\n");
}

static int parse_args(struct load *L, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "redis", required_argument, NULL, 'r' },
		{ "dir", required_argument, NULL, 'd' },
		{ "segments", required_argument, NULL, 's' },
		{ "households", required_argument, NULL, 'h' },
		{ "terminals", required_argument, NULL, 't' },
		{ "grace", required_argument, NULL, 'g' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'r': L->redis_addr = optarg; break;
		case 'd': dir = optarg; break;
		case 's': L->path[F_SEG] = optarg; break;
		case 'h': L->path[F_HH] = optarg; break;
		case 't': L->path[F_TERM] = optarg; break;
		case 'g': L->grace = atoi(optarg); break;
		default: return -1;
		}
	}
	for (int f = 0; dir && f < F_N; f++) {
		if (L->path[f])
			continue;
		snprintf(L->dirbuf[f], sizeof(L->dirbuf[f]), "%s/%s", dir,
			 default_names[f]);
		L->path[f] = L->dirbuf[f];
	}
	if (optind != argc || !L->redis_addr || !L->path[F_SEG] ||
	    !L->path[F_HH] || !L->path[F_TERM])
		return -1;
	return 0;
}

static void load_release(struct load *L)
{
	for (size_t i = 0; i < L->nsegs; i++) {
		free(L->segs[i].name);
		free(L->segs[i].parent_id);
	}
	for (size_t i = 0; i < L->nterms; i++) {
		free(L->terms[i].id);
		free(L->terms[i].secret);
	}
	free(L->segs);
	free(L->terms);
	strtab_release(&L->ids);
	strtab_release(&L->tids);
	if (L->cmd)
		free(L->cmd->buf);
	free(L->cmd);
	if (L->cmd_apps)
		free(L->cmd_apps->buf);
	free(L->cmd_apps);
	if (L->p.c)
		redisFree(L->p.c);
}

int cli_load_main(int argc, char **argv)
{
	struct load *L = calloc(1, sizeof(*L));
	int rc = 1;

	if (!L)
		return 1;
	clock_gettime(CLOCK_MONOTONIC, &L->t0);
	if (parse_args(L, argc, argv)) {
		usage();
		rc = 2;
		goto out_free;
	}
	L->cmd = calloc(1, sizeof(*L->cmd));
	L->cmd_apps = calloc(1, sizeof(*L->cmd_apps));
	if (!L->cmd || !L->cmd_apps)
		goto out_free;
	if (load_validate(L)) {
		fprintf(stderr, "load rejected: %u error%s; nothing changed\n",
			L->nerrors, L->nerrors == 1 ? "" : "s");
		goto out_free;
	}
	rc = load_run(L) ? 1 : 0;
out_free:
	load_release(L);
	free(L);
	return rc;
}
