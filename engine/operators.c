/*
 * engine/operators.c: operator tokens and credential parsing (see operators.h).
 */
#include "operators.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#define OPERATOR_NAME_MAX 64

struct operator {
	char name[OPERATOR_NAME_MAX];
	unsigned char digest[SHA256_DIGEST_LENGTH];
};

struct operators {
	struct operator op[OPERATORS_MAX];
	size_t n;
};

/* One "NAME TOKEN" line; 0 added, 1 blank or comment, -1 malformed. */
static int parse_line(struct operators *ops, char *line)
{
	char *hash = strchr(line, '#');
	if (hash)
		*hash = 0;
	char *save, *name = strtok_r(line, " \t\r\n", &save);
	if (!name)
		return 1;
	char *tok = strtok_r(NULL, " \t\r\n", &save);
	if (!tok || strtok_r(NULL, " \t\r\n", &save) || strlen(name) >= OPERATOR_NAME_MAX ||
	    strlen(tok) < 16 || ops->n == OPERATORS_MAX)
		return -1;
	struct operator *o = &ops->op[ops->n++];
	snprintf(o->name, sizeof(o->name), "%s", name);
	SHA256((const unsigned char *)tok, strlen(tok), o->digest);
	OPENSSL_cleanse(tok, strlen(tok));
	return 0;
}

struct operators *operators_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	struct operators *ops = calloc(1, sizeof(*ops));
	char line[1024];
	int lineno = 0;
	if (!ops) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out_close;
	}
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (parse_line(ops, line) < 0) {
			snprintf(err, errlen, "%s:%d: expected \"NAME TOKEN\" (token >= 16 chars, "
				 "at most %d operators)", path, lineno, OPERATORS_MAX);
			goto out_free;
		}
	}
	if (ops->n == 0) {
		snprintf(err, errlen, "%s: no operator tokens", path);
		goto out_free;
	}
	OPENSSL_cleanse(line, sizeof(line));
	fclose(f);
	return ops;

out_free:
	free(ops);
	ops = NULL;
out_close:
	OPENSSL_cleanse(line, sizeof(line));
	fclose(f);
	return ops;
}

void operators_free(struct operators *ops)
{
	if (ops)
		OPENSSL_cleanse(ops, sizeof(*ops));
	free(ops);
}

size_t operators_count(const struct operators *ops)
{
	return ops ? ops->n : 0;
}

int operators_match(const struct operators *ops, const char *tok, size_t len)
{
	unsigned char d[SHA256_DIGEST_LENGTH];
	int found = -1;
	if (!ops)
		return -1;
	SHA256((const unsigned char *)tok, len, d);
	for (size_t i = 0; i < ops->n; i++) {
		int same = CRYPTO_memcmp(d, ops->op[i].digest, sizeof(d)) == 0;
		found = same ? (int)i : found; /* no early exit */
	}
	return found;
}

const char *operators_name(const struct operators *ops, int index)
{
	if (!ops || index < 0 || (size_t)index >= ops->n)
		return "";
	return ops->op[index].name;
}

bool operators_bearer(const char *authorization, const char **tok, size_t *len)
{
	if (strncasecmp(authorization, "Bearer ", 7))
		return false;
	const char *t = authorization + 7;
	while (*t == ' ')
		t++;
	size_t n = strlen(t);
	while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	if (!n)
		return false;
	*tok = t;
	*len = n;
	return true;
}

bool operators_cookie(const char *header, const char *name, const char **val, size_t *len)
{
	size_t nl = strlen(name);
	const char *p = header;
	while (*p) {
		while (*p == ' ' || *p == ';' || *p == '\t')
			p++;
		size_t pair = strcspn(p, ";");
		const char *eq = memchr(p, '=', pair);
		if (eq && (size_t)(eq - p) == nl && !memcmp(p, name, nl)) {
			const char *v = eq + 1;
			size_t vl = pair - (size_t)(v - p);
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
				v++;
				vl -= 2;
			}
			*val = v;
			*len = vl;
			return true;
		}
		p += pair;
	}
	return false;
}

static int hexval(int c)
{
	if (isdigit(c))
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* %-decode src[0..n) into out[cap]; false when malformed or too long. */
static bool pct_decode(const char *src, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)src[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n || (hi = hexval(src[i + 1])) < 0 ||
			    (lo = hexval(src[i + 2])) < 0)
				return false;
			c = hi * 16 + lo;
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (o + 1 >= cap || c == 0)
			return false;
		out[o++] = (char)c;
	}
	out[o] = 0;
	return true;
}

bool operators_query(const char *target, const char *name, char *out, size_t cap)
{
	const char *q = strchr(target, '?'), *frag = strchr(target, '#');
	size_t nl = strlen(name);
	if (frag && q > frag)
		return false;
	while (q && *q) {
		q++;
		size_t pair = strcspn(q, "&#");
		if (pair > nl && q[nl] == '=' && !memcmp(q, name, nl))
			return pct_decode(q + nl + 1, pair - nl - 1, out, cap);
		q += pair;
		if (*q == '#')
			break;
	}
	return false;
}
