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
	c->dispatch = true;
	snprintf(c->channels, sizeof(c->channels), "sms, app, terminal");
	c->escalate_after_ms = 60000;
	c->retry_base_ms = 1000;
	c->max_attempts = 8;
	c->warm_deliveries = 500000;
	c->poll_us = 200;
	snprintf(c->drill_prefix, sizeof(c->drill_prefix), "【演练】");
	c->events_interval_ms = 1000;
	c->events_heartbeat_ms = 15000;
	c->events_max_subscribers = 64;
	c->events_max_pending = 256 * 1024;
}

const char *config_lane_get(const struct config_lane *l, const char *key, const char *def)
{
	for (size_t i = 0; i < l->n_kv; i++)
		if (!strcmp(l->kv[i].key, key))
			return l->kv[i].value;
	return def;
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

static int parse_double(const char *v, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno || end == v || *end || x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

/* A [lane NAME] key; a new NAME starts a new lane. */
static int lane_key(struct config *c, const char *name_of_lane, const char *name, const char *v)
{
	struct config_lane *l = c->n_lanes ? &c->lanes[c->n_lanes - 1] : NULL;
	if (!l || strcmp(l->name, name_of_lane)) {
		if (c->n_lanes == CONFIG_MAX_LANES || strlen(name_of_lane) >= sizeof(l->name))
			return -1;
		l = &c->lanes[c->n_lanes++];
		memset(l, 0, sizeof(*l));
		snprintf(l->name, sizeof(l->name), "%s", name_of_lane);
		l->window = 64;
	}
	long n;
	if (!strcmp(name, "channel"))
		return set_str(l->channel, sizeof(l->channel), v);
	if (!strcmp(name, "platform"))
		return set_str(l->platform, sizeof(l->platform), v);
	if (!strcmp(name, "adapter"))
		return set_str(l->adapter, sizeof(l->adapter), v);
	if (!strcmp(name, "rate"))
		return parse_double(v, 0, 1e9, &l->rate);
	if (!strcmp(name, "burst"))
		return parse_double(v, 0, 1e9, &l->burst);
	if (!strcmp(name, "window"))
		return parse_long(v, 1, 1000000, &n) || (l->window = (unsigned)n, 0);
	if (l->n_kv == CONFIG_MAX_LANE_KEYS || strlen(name) >= sizeof(l->kv[0].key) ||
	    strlen(v) >= sizeof(l->kv[0].value))
		return -1;
	snprintf(l->kv[l->n_kv].key, sizeof(l->kv[0].key), "%s", name);
	snprintf(l->kv[l->n_kv].value, sizeof(l->kv[0].value), "%s", v);
	l->n_kv++;
	return 0;
}

/* [operators], [audit] and [events] keys. */
static int operator_key(struct load_ctx *x, const char *section, const char *name,
			const char *v, const char **why)
{
	struct config *c = x->c;
	long n;
	if (KEY("operators", "tokens_file"))
		return set_path(x, c->operator_tokens, sizeof(c->operator_tokens), v);
	if (KEY("operators", "client_ca"))
		return set_path(x, c->operator_client_ca, sizeof(c->operator_client_ca), v);
	if (KEY("audit", "file"))
		return set_path(x, c->audit_file, sizeof(c->audit_file), v);
	if (KEY("events", "interval_ms"))
		return parse_long(v, 10, 60000, &n) || (c->events_interval_ms = (int)n, 0);
	if (KEY("events", "heartbeat_ms"))
		return parse_long(v, 100, 600000, &n) || (c->events_heartbeat_ms = (int)n, 0);
	if (KEY("events", "max_subscribers"))
		return parse_long(v, 1, 10000, &n) || (c->events_max_subscribers = (int)n, 0);
	if (KEY("events", "max_pending"))
		return parse_long(v, 4096, 1 << 22, &n) || (c->events_max_pending = (size_t)n, 0);
	*why = "unknown key";
	return -1;
}

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
	else if (KEY("dispatch", "enabled"))
		bad = parse_bool(v, &c->dispatch);
	else if (KEY("dispatch", "channels"))
		bad = set_str(c->channels, sizeof(c->channels), v);
	else if (KEY("dispatch", "escalation"))
		bad = set_str(c->escalation, sizeof(c->escalation), v);
	else if (KEY("dispatch", "escalate_after_ms"))
		bad = parse_long(v, 1, 86400000, &n) || (c->escalate_after_ms = (int)n, 0);
	else if (KEY("dispatch", "retry_base_ms"))
		bad = parse_long(v, 1, 3600000, &n) || (c->retry_base_ms = (int)n, 0);
	else if (KEY("dispatch", "warm_deliveries"))
		bad = parse_long(v, 0, 100000000, &n) || (c->warm_deliveries = n, 0);
	else if (KEY("dispatch", "poll_us"))
		bad = parse_long(v, 0, 10000, &n) || (c->poll_us = n, 0);
	else if (KEY("dispatch", "max_attempts"))
		bad = parse_long(v, 1, 1000, &n) || (c->max_attempts = (int)n, 0);
	else if (KEY("dispatch", "test_recipients"))
		bad = set_str(c->test_recipients, sizeof(c->test_recipients), v);
	else if (KEY("dispatch", "drill_prefix"))
		bad = set_str(c->drill_prefix, sizeof(c->drill_prefix), v);
	else if (!strcmp(section, "operators") || !strcmp(section, "audit") ||
		 !strcmp(section, "events"))
		bad = operator_key(x, section, name, v, &why);
	else if (!strncmp(section, "lane ", 5) && section[5])
		bad = lane_key(c, section + 5, name, v);
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
	if (c->operator_client_ca[0] && !c->tls_cert[0]) {
		snprintf(err, errlen, "[operators] client_ca needs TLS ([server] tls_cert, tls_key)");
		return -1;
	}
	if (!c->keyring[0]) {
		snprintf(err, errlen, "[keyring] file is required");
		return -1;
	}
	for (size_t i = 0; i < c->n_lanes; i++) {
		const struct config_lane *l = &c->lanes[i];
		if (strcmp(l->channel, "sms") && strcmp(l->channel, "app") &&
		    strcmp(l->channel, "terminal")) {
			snprintf(err, errlen, "[lane %s] channel: must be sms, app or terminal", l->name);
			return -1;
		}
		if (!l->adapter[0]) {
			snprintf(err, errlen, "[lane %s] adapter is required", l->name);
			return -1;
		}
		if (!strcmp(l->channel, "app") && strcmp(l->platform, "apns") &&
		    strcmp(l->platform, "fcm") && strcmp(l->platform, "webhook")) {
			snprintf(err, errlen, "[lane %s] platform: app lanes need apns, fcm or webhook",
				 l->name);
			return -1;
		}
	}
	return 0;
}
