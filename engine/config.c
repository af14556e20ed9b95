/*
 * engine/config.c: INI configuration via inih (see config.h and
 * ops/tocsind.example.ini). Every key has a default; unknown keys are
 * errors, so a typo never silently falls back to a default.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->listen, sizeof(c->listen), "127.0.0.1:8080");
	c->threads = 0;
	c->max_body = 64 * 1024;
	c->idle_timeout_ms = 60000;
	c->max_connections = 10000;
	c->plaintext = true;
	c->queue = 4096;
	c->sent_window_s = 300;
	snprintf(c->redis, sizeof(c->redis), "127.0.0.1:6379");
	snprintf(c->prefix, sizeof(c->prefix), "tocsin:");
	snprintf(c->log_level, sizeof(c->log_level), "info");
}

struct load_ctx {
	struct config *c;
	char dir[PATH_MAX];
	char *err;
	size_t errlen;
	const char *path;
};

static int parse_long(const char *v, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || *end || x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
		*out = true;
	else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcmp(v, "0"))
		*out = false;
	else
		return -1;
	return 0;
}

static int set_str(char *dst, size_t cap, const char *v)
{
	if (strlen(v) >= cap)
		return -1;
	snprintf(dst, cap, "%s", v);
	return 0;
}

static int set_path(struct load_ctx *x, char *dst, size_t cap, const char *v)
{
	if (v[0] == '/' || !v[0] || !x->dir[0])
		return set_str(dst, cap, v);
	int n = snprintf(dst, cap, "%s/%s", x->dir, v);
	return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

#define KEY(s, n) (!strcmp(section, s) && !strcmp(name, n))

/* Debian's inih passes no line number: ini_parse returns the first failing line. */
static int handler(void *user, const char *section, const char *name, const char *v)
{
	struct load_ctx *x = user;
	struct config *c = x->c;
	long n;
	int bad;
	const char *why = "bad value";
	if (KEY("server", "listen"))
		bad = set_str(c->listen, sizeof(c->listen), v) || !strrchr(v, ':');
	else if (KEY("server", "threads"))
		bad = parse_long(v, 0, 64, &n) || (c->threads = (int)n, 0);
	else if (KEY("server", "max_body"))
		bad = parse_long(v, 1024, 16 << 20, &n) || (c->max_body = (size_t)n, 0);
	else if (KEY("server", "idle_timeout_ms"))
		bad = parse_long(v, 100, 86400000, &n) || (c->idle_timeout_ms = (int)n, 0);
	else if (KEY("server", "max_connections"))
		bad = parse_long(v, 1, 1000000, &n) || (c->max_connections = (int)n, 0);
	else if (KEY("server", "tls_cert"))
		bad = set_path(x, c->tls_cert, sizeof(c->tls_cert), v);
	else if (KEY("server", "tls_key"))
		bad = set_path(x, c->tls_key, sizeof(c->tls_key), v);
	else if (KEY("server", "plaintext"))
		bad = parse_bool(v, &c->plaintext);
	else if (KEY("admission", "queue"))
		bad = parse_long(v, 1, 1000000, &n) || (c->queue = (int)n, 0);
	else if (KEY("admission", "sent_window_s"))
		bad = parse_long(v, 1, 86400 * 7, &n) || (c->sent_window_s = n, 0);
	else if (KEY("redis", "address"))
		bad = set_str(c->redis, sizeof(c->redis), v);
	else if (KEY("redis", "prefix"))
		bad = set_str(c->prefix, sizeof(c->prefix), v);
	else if (KEY("keyring", "file"))
		bad = set_path(x, c->keyring, sizeof(c->keyring), v);
	else if (KEY("log", "level"))
		bad = set_str(c->log_level, sizeof(c->log_level), v);
	else {
		bad = 1;
		why = "unknown key";
	}
	if (bad && !x->err[0])
		snprintf(x->err, x->errlen, "[%s] %s: %s '%s'", section, name, why, v);
	return !bad;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct load_ctx x = {.c = c, .err = err, .errlen = errlen, .path = path};
	const char *slash = strrchr(path, '/');
	if (slash)
		snprintf(x.dir, sizeof(x.dir), "%.*s", (int)(slash - path), path);
	err[0] = 0;
	int ret = ini_parse(path, handler, &x);
	if (ret == -1) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (ret > 0) {
		char why[512];
		snprintf(why, sizeof(why), "%s", err[0] ? err : "syntax error");
		snprintf(err, errlen, "%s:%d: %s", path, ret, why);
		return -1;
	}
	return 0;
}

int config_check(const struct config *c, char *err, size_t errlen)
{
	if (!!c->tls_cert[0] != !!c->tls_key[0]) {
		snprintf(err, errlen, "[server] tls_cert and tls_key must be set together");
		return -1;
	}
	if (!c->keyring[0]) {
		snprintf(err, errlen, "[keyring] file is required");
		return -1;
	}
	return 0;
}
