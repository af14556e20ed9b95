/*
 * engine/keyring.c: load, check and look up the signing keyring.
 *
 * Invariants:
 *  - A loaded keyring is immutable: keys[] is sorted by id (bsearch) and
 *    every key in it passed every check below. Only `refs` changes after
 *    load, atomically.
 *  - Loading is all or nothing: the first problem aborts the load with
 *    "FILE:LINE: key 'ID': reason", and everything parsed so far is freed.
 *
 * Parsing uses inih with our own line reader so that errors found at the
 * end of a section (a missing field) can name the section's header line,
 * and so that a line longer than inih's fixed buffer is an error instead
 * of being split silently into two lines.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "keyring.h"
#include "warning.pb-c.h"

struct keyring {
	atomic_int refs;
	size_t n;
	struct keyring_key *keys; /* sorted by id */
};

enum kr_field {
	KR_SENDER = 1u << 0,
	KR_ALG = 1u << 1,
	KR_PUBKEY = 1u << 2,
	KR_NOT_BEFORE = 1u << 3,
	KR_NOT_AFTER = 1u << 4,
	KR_REVOKED = 1u << 5,
	KR_SEGMENTS = 1u << 6,
	KR_STATUSES = 1u << 7,
};
#define KR_REQUIRED (KR_SENDER | KR_ALG | KR_PUBKEY | KR_SEGMENTS | KR_STATUSES)

/* A key while its section is being read; `line` is its [header] line. */
struct kr_entry {
	struct keyring_key key;
	int line;
	uint32_t seen;
	char *pub_b64;
	int pub_line;
};

struct kr_parse {
	const char *path;
	FILE *f;
	int line;            /* current physical line */
	int header_line;     /* line of the last [section] header */
	bool header_used;    /* a key = value followed that header */
	char header_name[128];
	bool in_key;
	struct kr_entry cur;
	struct kr_entry *ents;
	size_t n, cap;
	char *err;
	size_t errlen;
	bool failed;
};

/* Status names as CAP spells them, indexed by Tocsin__Status. */
static const char *const kr_status_names[] = {
	[TOCSIN__STATUS__ACTUAL] = "Actual",	 [TOCSIN__STATUS__EXERCISE] = "Exercise",
	[TOCSIN__STATUS__SYSTEM] = "System",	 [TOCSIN__STATUS__TEST] = "Test",
	[TOCSIN__STATUS__DRAFT] = "Draft",
};

static void kr_fail(struct kr_parse *p, int line, const char *id, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (p->failed)
		return;
	p->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (id != NULL)
		snprintf(p->err, p->errlen, "%s:%d: key '%s': %s", p->path, line, id, msg);
	else
		snprintf(p->err, p->errlen, "%s:%d: %s", p->path, line, msg);
}

static void kr_key_release(struct keyring_key *k)
{
	free(k->id);
	free(k->sender);
	EVP_PKEY_free(k->pkey);
	for (size_t i = 0; i < k->n_segments; i++)
		free(k->segments[i]);
	free(k->segments);
	memset(k, 0, sizeof(*k));
}

static void kr_entry_release(struct kr_entry *e)
{
	kr_key_release(&e->key);
	free(e->pub_b64);
	memset(e, 0, sizeof(*e));
}

/* ---- time ---- */

static int64_t kr_days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* Read exactly n digits from *s into *out, advancing *s. */
static bool kr_digits(const char **s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*s)[i]))
			return false;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return true;
}

static bool kr_expect(const char **s, const char *set)
{
	if (**s == '\0' || strchr(set, **s) == NULL)
		return false;
	(*s)++;
	return true;
}

/* Parse "Z", "z", "+hh:mm" or "-hh:mm" into an offset in seconds east of UTC. */
static bool kr_parse_offset(const char *s, int64_t *off)
{
	int sign, oh, om;

	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
		*off = 0;
		return true;
	}
	if (s[0] != '+' && s[0] != '-')
		return false;
	sign = s[0] == '-' ? -1 : 1;
	s++;
	if (!kr_digits(&s, 2, &oh) || !kr_expect(&s, ":") || !kr_digits(&s, 2, &om) || *s)
		return false;
	if (oh > 23 || om > 59)
		return false;
	*off = sign * (oh * 3600 + om * 60); /* CAP's "-00:00" is UTC, like "Z". */
	return true;
}

int keyring_parse_time(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int Y, M, D, h, m, sec;
	int64_t off;

	if (s == NULL)
		return -1;
	if (!kr_digits(&s, 4, &Y) || !kr_expect(&s, "-") || !kr_digits(&s, 2, &M) ||
	    !kr_expect(&s, "-") || !kr_digits(&s, 2, &D) || !kr_expect(&s, "Tt ") ||
	    !kr_digits(&s, 2, &h) || !kr_expect(&s, ":") || !kr_digits(&s, 2, &m) ||
	    !kr_expect(&s, ":") || !kr_digits(&s, 2, &sec))
		return -1;
	if (*s == '.') { /* fractional seconds: accepted, dropped */
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (!kr_parse_offset(s, &off))
		return -1;
	if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || m > 59 || sec > 60)
		return -1;
	bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return -1;
	if (sec == 60) /* leap second: the same instant as :59 for our purposes */
		sec = 59;
	*out = kr_days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + m * 60 +
	       sec - off;
	return 0;
}

/* ---- field parsers ---- */

static bool kr_parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1")) {
		*out = true;
		return true;
	}
	if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0")) {
		*out = false;
		return true;
	}
	return false;
}

/* Next comma/space separated token of *s into tok; false at the end. */
static bool kr_next_token(const char **s, char *tok, size_t cap, bool *too_long)
{
	const char *p = *s;
	size_t n = 0;

	while (*p == ',' || isspace((unsigned char)*p))
		p++;
	if (*p == '\0')
		return false;
	while (p[n] != '\0' && p[n] != ',' && !isspace((unsigned char)p[n]))
		n++;
	*too_long = n >= cap;
	if (!*too_long) {
		memcpy(tok, p, n);
		tok[n] = '\0';
	}
	*s = p + n;
	return true;
}

static bool kr_segment_ok(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
			return false;
	return true;
}

static int kr_set_segments(struct kr_parse *p, struct kr_entry *e, const char *v)
{
	char tok[128];
	bool too_long;

	while (kr_next_token(&v, tok, sizeof(tok), &too_long)) {
		if (too_long || !kr_segment_ok(tok)) {
			kr_fail(p, p->line, e->key.id, "segments: bad segment id '%s'",
				too_long ? "(too long)" : tok);
			return -1;
		}
		if (e->key.n_segments >= KEYRING_MAX_SCOPE) {
			kr_fail(p, p->line, e->key.id, "segments: more than %d", KEYRING_MAX_SCOPE);
			return -1;
		}
		char **grown = realloc(e->key.segments, (e->key.n_segments + 1) * sizeof(char *));
		if (grown == NULL || (grown[e->key.n_segments] = strdup(tok)) == NULL) {
			if (grown != NULL)
				e->key.segments = grown;
			kr_fail(p, p->line, e->key.id, "out of memory");
			return -1;
		}
		e->key.segments = grown;
		e->key.n_segments++;
	}
	if (e->key.n_segments == 0) {
		kr_fail(p, p->line, e->key.id, "segments: empty");
		return -1;
	}
	return 0;
}

static int kr_status_parse(const char *name)
{
	for (int i = 1; i < (int)(sizeof(kr_status_names) / sizeof(kr_status_names[0])); i++)
		if (kr_status_names[i] != NULL && strcasecmp(name, kr_status_names[i]) == 0)
			return i;
	return -1;
}

static int kr_set_statuses(struct kr_parse *p, struct kr_entry *e, const char *v)
{
	char tok[32];
	bool too_long;

	while (kr_next_token(&v, tok, sizeof(tok), &too_long)) {
		int st = too_long ? -1 : kr_status_parse(tok);
		if (st < 0) {
			kr_fail(p, p->line, e->key.id,
				"statuses: unknown status '%s' (Actual, Exercise, System, Test, Draft)",
				too_long ? "(too long)" : tok);
			return -1;
		}
		e->key.statuses |= 1u << st;
	}
	if (e->key.statuses == 0) {
		kr_fail(p, p->line, e->key.id, "statuses: empty");
		return -1;
	}
	return 0;
}

static int kr_set_time(struct kr_parse *p, struct kr_entry *e, const char *name, const char *v,
		       int64_t *out)
{
	if (keyring_parse_time(v, out) != 0) {
		kr_fail(p, p->line, e->key.id,
			"%s: bad time '%s' (RFC 3339, e.g. 2026-01-01T00:00:00+08:00)", name, v);
		return -1;
	}
	return 0;
}

static int kr_set_string(struct kr_parse *p, struct kr_entry *e, char **dst, const char *v)
{
	*dst = strdup(v);
	if (*dst == NULL) {
		kr_fail(p, p->line, e->key.id, "out of memory");
		return -1;
	}
	return 0;
}

/* Set one field of the current key. */
static int kr_set_field(struct kr_parse *p, struct kr_entry *e, const char *name, const char *v)
{
	struct keyring_key *k = &e->key;

	if (!strcmp(name, "sender"))
		return *v ? kr_set_string(p, e, &k->sender, v)
			  : (kr_fail(p, p->line, k->id, "sender: empty"), -1);
	if (!strcmp(name, "algorithm")) {
		k->alg = sig_alg_parse(v);
		if (k->alg == SIG_NONE) {
			kr_fail(p, p->line, k->id,
				"unknown algorithm '%s' (ed25519, sm2-sm3)", v);
			return -1;
		}
		return 0;
	}
	if (!strcmp(name, "public_key")) {
		e->pub_line = p->line;
		return kr_set_string(p, e, &e->pub_b64, v);
	}
	if (!strcmp(name, "not_before"))
		return kr_set_time(p, e, name, v, &k->not_before);
	if (!strcmp(name, "not_after"))
		return kr_set_time(p, e, name, v, &k->not_after);
	if (!strcmp(name, "revoked")) {
		if (!kr_parse_bool(v, &k->revoked)) {
			kr_fail(p, p->line, k->id, "revoked: expected true or false, not '%s'", v);
			return -1;
		}
		return 0;
	}
	if (!strcmp(name, "segments"))
		return kr_set_segments(p, e, v);
	if (!strcmp(name, "statuses"))
		return kr_set_statuses(p, e, v);
	kr_fail(p, p->line, k->id, "unknown field '%s'", name);
	return -1;
}

static uint32_t kr_field_bit(const char *name)
{
	static const struct {
		const char *name;
		uint32_t bit;
	} fields[] = {
		{ "sender", KR_SENDER },	 { "algorithm", KR_ALG },
		{ "public_key", KR_PUBKEY },	 { "not_before", KR_NOT_BEFORE },
		{ "not_after", KR_NOT_AFTER }, { "revoked", KR_REVOKED },
		{ "segments", KR_SEGMENTS },	 { "statuses", KR_STATUSES },
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!strcmp(name, fields[i].name))
			return fields[i].bit;
	return 0;
}

/* ---- sections ---- */

/* Check the finished current key and move it into ents[]. */
static int kr_finish_key(struct kr_parse *p)
{
	struct kr_entry *e = &p->cur;
	static const char *const names[] = { "sender", "algorithm", "public_key", "not_before",
					     "not_after", "revoked", "segments", "statuses" };
	char why[160];

	if (!p->in_key)
		return 0;
	p->in_key = false;
	for (int i = 0; i < 8; i++)
		if ((KR_REQUIRED & (1u << i)) && !(e->seen & (1u << i))) {
			kr_fail(p, e->line, e->key.id, "missing required field '%s'", names[i]);
			goto out_release;
		}
	e->key.pkey = sig_pubkey_from_b64(e->key.alg, e->pub_b64, why, sizeof(why));
	if (e->key.pkey == NULL) {
		kr_fail(p, e->pub_line, e->key.id, "public_key: %s", why);
		goto out_release;
	}
	if (e->key.not_before && e->key.not_after && e->key.not_before >= e->key.not_after) {
		kr_fail(p, e->line, e->key.id, "not_before is not before not_after");
		goto out_release;
	}
	if (p->n >= KEYRING_MAX_KEYS) {
		kr_fail(p, e->line, e->key.id, "more than %d keys", KEYRING_MAX_KEYS);
		goto out_release;
	}
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct kr_entry *grown = realloc(p->ents, cap * sizeof(*grown));
		if (grown == NULL) {
			kr_fail(p, e->line, e->key.id, "out of memory");
			goto out_release;
		}
		p->ents = grown;
		p->cap = cap;
	}
	free(e->pub_b64);
	e->pub_b64 = NULL;
	p->ents[p->n++] = *e;
	memset(e, 0, sizeof(*e));
	return 0;
out_release:
	kr_entry_release(e);
	return -1;
}

static int kr_start_key(struct kr_parse *p, const char *section)
{
	if (kr_finish_key(p) != 0)
		return -1;
	if (*section == '\0') {
		kr_fail(p, p->line, NULL, "field outside any [key-id] section");
		return -1;
	}
	memset(&p->cur, 0, sizeof(p->cur));
	p->cur.line = p->header_line;
	p->cur.key.id = strdup(section);
	if (p->cur.key.id == NULL) {
		kr_fail(p, p->line, NULL, "out of memory");
		return -1;
	}
	p->in_key = true;
	return 0;
}

static int kr_handler(void *user, const char *section, const char *name, const char *value)
{
	struct kr_parse *p = user;

	if (p->failed)
		return 0;
	p->header_used = true;
	if (!p->in_key || strcmp(section, p->cur.key.id) != 0)
		if (kr_start_key(p, section) != 0)
			return 0;
	uint32_t bit = kr_field_bit(name);
	if (bit != 0 && (p->cur.seen & bit)) {
		kr_fail(p, p->line, p->cur.key.id, "field '%s' given twice", name);
		return 0;
	}
	if (kr_set_field(p, &p->cur, name, value) != 0)
		return 0;
	p->cur.seen |= bit;
	return 1;
}

/* A header with no fields never reaches the handler: catch it here. */
static void kr_check_empty_header(struct kr_parse *p)
{
	if (p->header_line > 0 && !p->header_used)
		kr_fail(p, p->header_line, p->header_name, "section has no fields");
}

/* inih reader: one physical line per call, counting lines, refusing long ones. */
static char *kr_reader(char *buf, int cap, void *stream)
{
	struct kr_parse *p = stream;

	if (p->failed || fgets(buf, cap, p->f) == NULL) {
		if (!p->failed)
			kr_check_empty_header(p);
		return NULL;
	}
	p->line++;
	size_t len = strlen(buf);
	if (len == (size_t)cap - 1 && buf[len - 1] != '\n') {
		int c = getc(p->f);
		if (c != EOF) {
			kr_fail(p, p->line, NULL, "line longer than %d bytes", cap - 2);
			return NULL;
		}
	}
	const char *s = buf;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '[') {
		kr_check_empty_header(p);
		p->header_line = p->line;
		p->header_used = false;
		size_t n = strcspn(s + 1, "]");
		snprintf(p->header_name, sizeof(p->header_name), "%.*s", (int)n, s + 1);
	} else if (*s != '\0' && !strchr(";#\r\n", *s)) {
		p->header_used = true; /* a field, or a syntax error inih reports */
	}
	return buf;
}

static int kr_cmp_entry(const void *a, const void *b)
{
	const struct kr_entry *x = a, *y = b;
	int c = strcmp(x->key.id, y->key.id);
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int kr_cmp_find(const void *id, const void *k)
{
	return strcmp(id, ((const struct keyring_key *)k)->id);
}

/* Sort, reject duplicate ids, and build the keyring from p->ents. */
static struct keyring *kr_build(struct kr_parse *p)
{
	qsort(p->ents, p->n, sizeof(*p->ents), kr_cmp_entry);
	for (size_t i = 1; i < p->n; i++)
		if (!strcmp(p->ents[i].key.id, p->ents[i - 1].key.id)) {
			kr_fail(p, p->ents[i].line, p->ents[i].key.id,
				"duplicate key id (first at line %d)", p->ents[i - 1].line);
			return NULL;
		}
	struct keyring *kr = calloc(1, sizeof(*kr));
	if (kr == NULL)
		return NULL;
	kr->keys = calloc(p->n ? p->n : 1, sizeof(*kr->keys));
	if (kr->keys == NULL) {
		free(kr);
		return NULL;
	}
	for (size_t i = 0; i < p->n; i++)
		kr->keys[i] = p->ents[i].key;
	kr->n = p->n;
	atomic_init(&kr->refs, 1);
	free(p->ents);
	p->ents = NULL;
	p->n = 0;
	return kr;
}

struct keyring *keyring_load(const char *path, char *err, size_t errlen)
{
	struct kr_parse p = { .path = path, .err = err, .errlen = errlen };
	struct keyring *kr = NULL;

	p.f = fopen(path, "r");
	if (p.f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	int rc = ini_parse_stream(kr_reader, &p, kr_handler, &p);
	if (!p.failed && rc > 0)
		kr_fail(&p, rc, NULL, "syntax error (expected '[key-id]' or 'field = value')");
	if (!p.failed)
		kr_finish_key(&p);
	if (!p.failed && p.n == 0) {
		snprintf(err, errlen, "%s: no keys", path);
		p.failed = true;
	}
	if (!p.failed) {
		kr = kr_build(&p);
		if (kr == NULL && !p.failed)
			snprintf(err, errlen, "%s: out of memory", path);
	}
	kr_entry_release(&p.cur);
	for (size_t i = 0; i < p.n; i++)
		kr_entry_release(&p.ents[i]);
	free(p.ents);
	fclose(p.f);
	return kr;
}

void keyring_ref(struct keyring *kr)
{
	atomic_fetch_add_explicit(&kr->refs, 1, memory_order_relaxed);
}

void keyring_unref(struct keyring *kr)
{
	if (kr == NULL)
		return;
	if (atomic_fetch_sub_explicit(&kr->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < kr->n; i++)
		kr_key_release(&kr->keys[i]);
	free(kr->keys);
	free(kr);
}

size_t keyring_size(const struct keyring *kr)
{
	return kr->n;
}

const struct keyring_key *keyring_find(const struct keyring *kr, const char *id)
{
	if (kr == NULL || id == NULL)
		return NULL;
	return bsearch(id, kr->keys, kr->n, sizeof(*kr->keys), kr_cmp_find);
}

bool keyring_key_current(const struct keyring_key *k, int64_t now)
{
	if (k->not_before != 0 && now < k->not_before)
		return false;
	if (k->not_after != 0 && now > k->not_after)
		return false;
	return true;
}

bool keyring_allows_segment(const struct keyring_key *k, const char *segment)
{
	if (segment == NULL || *segment == '\0')
		return false;
	for (size_t i = 0; i < k->n_segments; i++)
		if (strncmp(segment, k->segments[i], strlen(k->segments[i])) == 0)
			return true;
	return false;
}

bool keyring_allows_status(const struct keyring_key *k, int status)
{
	return status > 0 && status < 32 && (k->statuses & (1u << status)) != 0;
}
