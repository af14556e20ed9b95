/*
 * proto/push_payload.c: app push payload builders and answer parsers (see
 * push_payload.h). The writer below records overflow instead of failing
 * at each call, so each builder reads as the JSON it produces.
 */
#include "push_payload.h"

#include <stdio.h>
#include <string.h>

struct jw {
	char *p;
	size_t cap, len;
	bool over;
};

static void jw_raw(struct jw *w, const char *s, size_t n)
{
	if (w->over || w->len + n >= w->cap) {
		w->over = true;
		return;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
	w->p[w->len] = 0;
}

static void jw_lit(struct jw *w, const char *s)
{
	jw_raw(w, s, strlen(s));
}

/* A quoted, escaped string; at most `max` bytes of escaped content. */
static bool jw_str_max(struct jw *w, const char *s, size_t max)
{
	bool cut = false;
	jw_raw(w, "\"", 1);
	if (w->over)
		return false;
	size_t room = w->cap - w->len;
	w->len += push_json_escape(w->p + w->len, room, s ? s : "", max, &cut);
	jw_raw(w, "\"", 1);
	return cut;
}

static void jw_str(struct jw *w, const char *s)
{
	if (jw_str_max(w, s, SIZE_MAX))
		w->over = true; /* did not fit whole */
}

static void jw_kv(struct jw *w, const char *key, const char *val)
{
	jw_str(w, key);
	jw_raw(w, ":", 1);
	jw_str(w, val);
}

static int jw_done(struct jw *w)
{
	return w->over ? -1 : (int)w->len;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
		     : (c & 0xF8) == 0xF0 ? 4 : 0;
	if (len == 0 || len > n || (len == 2 && c < 0xC2) || (len == 4 && c > 0xF4))
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	if (len == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0)))
		return 0; /* overlong or surrogate */
	if (len == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90)))
		return 0;
	return len;
}

size_t push_json_escape(char *out, size_t cap, const char *s, size_t max, bool *truncated)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0, limit = cap ? cap - 1 : 0;
	if (max < limit)
		limit = max;
	*truncated = false;
	for (size_t i = 0; i < n;) {
		char tmp[8];
		const char *emit = tmp;
		size_t elen, step = utf8_len(p + i, n - i);
		if (step == 0) {
			emit = "\xEF\xBF\xBD"; /* U+FFFD for a bad byte */
			elen = 3;
			step = 1;
		} else if (p[i] == '"' || p[i] == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)p[i];
			elen = 2;
		} else if (p[i] < 0x20) {
			elen = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", p[i]);
		} else {
			emit = (const char *)p + i;
			elen = step;
		}
		if (o + elen > limit) {
			*truncated = true;
			break;
		}
		memcpy(out + o, emit, elen);
		o += elen;
		i += step;
	}
	if (cap)
		out[o] = 0;
	return o;
}

static void apns_head(struct jw *w, const struct push_msg *m)
{
	jw_lit(w, "{\"aps\":{\"alert\":{");
	jw_kv(w, "title", m->title);
	jw_lit(w, ",\"body\":");
}

static void apns_tail(struct jw *w, const struct push_msg *m)
{
	jw_lit(w, "},");
	jw_kv(w, "sound", m->sound ? m->sound : "default");
	if (m->interruption_level && m->interruption_level[0]) {
		jw_lit(w, ",");
		jw_kv(w, "interruption-level", m->interruption_level);
	}
	jw_lit(w, "},");
	jw_kv(w, "warning_id", m->warning_id);
	jw_lit(w, m->drill ? ",\"drill\":true}" : ",\"drill\":false}");
}

int push_apns_payload(char *out, size_t cap, const struct push_msg *m)
{
	char tail[1024];
	struct jw t = {tail, sizeof(tail), 0, false};
	apns_tail(&t, m);
	if (cap > PUSH_APNS_MAX_PAYLOAD)
		cap = PUSH_APNS_MAX_PAYLOAD; /* the output, with its NUL, stays < 4096 bytes */
	struct jw w = {out, cap, 0, false};
	apns_head(&w, m);
	if (t.over || w.over)
		return -1;
	static const char ell[] = "\xE2\x80\xA6"; /* … */
	/* room for: quotes, an ellipsis, the tail and the NUL */
	size_t fixed = w.len + 2 + 3 + t.len + 1;
	if (fixed >= cap)
		return -1;
	size_t room = cap - fixed;
	jw_raw(&w, "\"", 1);
	bool cut = false;
	w.len += push_json_escape(w.p + w.len, w.cap - w.len, m->body ? m->body : "", room, &cut);
	if (cut)
		jw_raw(&w, ell, 3);
	jw_raw(&w, "\"", 1);
	jw_raw(&w, tail, t.len);
	return jw_done(&w);
}

int push_fcm_payload(char *out, size_t cap, const struct push_msg *m)
{
	struct jw w = {out, cap, 0, false};
	char ttl[32];
	snprintf(ttl, sizeof(ttl), "%llds", (long long)(m->ttl_s > 0 ? m->ttl_s : 0));
	jw_lit(&w, "{\"message\":{");
	jw_kv(&w, "token", m->token);
	jw_lit(&w, ",\"notification\":{");
	jw_kv(&w, "title", m->title);
	jw_lit(&w, ",");
	jw_kv(&w, "body", m->body);
	jw_lit(&w, "},\"android\":{\"priority\":\"HIGH\",");
	jw_kv(&w, "ttl", ttl);
	jw_lit(&w, ",");
	jw_kv(&w, "collapse_key", m->warning_id);
	jw_lit(&w, "},\"data\":{");
	jw_kv(&w, "warning_id", m->warning_id);
	jw_lit(&w, ",");
	jw_kv(&w, "severity", m->severity);
	jw_lit(&w, m->drill ? ",\"drill\":\"true\"}}}" : ",\"drill\":\"false\"}}}");
	return jw_done(&w);
}

int push_webhook_payload(char *out, size_t cap, const struct push_msg *m)
{
	struct jw w = {out, cap, 0, false};
	char num[32];
	snprintf(num, sizeof(num), "%lld", (long long)m->expires);
	jw_lit(&w, "{");
	jw_kv(&w, "warning_id", m->warning_id);
	jw_lit(&w, ",");
	jw_kv(&w, "severity", m->severity);
	jw_lit(&w, ",");
	jw_kv(&w, "colour", m->colour);
	jw_lit(&w, ",");
	jw_kv(&w, "headline", m->title);
	jw_lit(&w, ",");
	jw_kv(&w, "instruction", m->body);
	jw_lit(&w, ",");
	jw_kv(&w, "language", m->language);
	jw_lit(&w, ",\"expires\":");
	jw_lit(&w, num);
	jw_lit(&w, m->drill ? ",\"drill\":true," : ",\"drill\":false,");
	jw_kv(&w, "token", m->token);
	jw_lit(&w, "}");
	return jw_done(&w);
}

/* --- answers --- */

static size_t skip_ws(const char *s, size_t i, size_t len)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* Unescape the string starting after its opening quote at i. */
static bool copy_string(const char *s, size_t i, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	for (; i < len && s[i] != '"'; i++) {
		char c = s[i];
		if (c == '\\') {
			if (++i >= len)
				return false;
			c = s[i] == 'n' ? '\n' : s[i] == 't' ? '\t' : s[i] == 'u' ? '?' : s[i];
			if (s[i] == 'u')
				i += i + 4 < len ? 4 : 0;
		}
		if (o + 1 < cap)
			out[o++] = c;
	}
	if (cap)
		out[o] = 0;
	return i < len;
}

bool push_json_find_string(const char *json, size_t len, const char *key, char *out, size_t cap)
{
	size_t klen = strlen(key);
	if (!json || klen == 0)
		return false;
	for (size_t i = 0; i + klen + 2 <= len; i++) {
		if (json[i] != '"' || json[i + klen + 1] != '"' || memcmp(json + i + 1, key, klen))
			continue;
		size_t j = skip_ws(json, i + klen + 2, len);
		if (j >= len || json[j] != ':')
			continue;
		j = skip_ws(json, j + 1, len);
		if (j >= len || json[j] != '"')
			continue;
		if (copy_string(json, j + 1, len, out, cap))
			return true;
	}
	return false;
}

uint32_t push_retry_after_ms(const char *v, size_t len)
{
	if (!v)
		return 0;
	size_t i = skip_ws(v, 0, len);
	uint64_t secs = 0;
	size_t digits = 0;
	for (; i < len && v[i] >= '0' && v[i] <= '9'; i++, digits++)
		if (secs < 3600)
			secs = secs * 10 + (uint64_t)(v[i] - '0');
	if (digits == 0 || skip_ws(v, i, len) != len)
		return 0; /* an HTTP date or junk: the caller's default applies */
	if (secs > 3600)
		secs = 3600;
	return (uint32_t)secs * 1000;
}

static bool token_invalid_fcm(const char *body, size_t len)
{
	char msg[256];
	return push_json_find_string(body, len, "message", msg, sizeof(msg)) &&
	       strstr(msg, "registration token") != NULL;
}

static enum push_verdict classify_4xx(enum push_provider p, int status, const char *reason,
				      const char *body, size_t len)
{
	if (p == PUSH_APNS) {
		if (status == 410 || !strcmp(reason, "BadDeviceToken") ||
		    !strcmp(reason, "DeviceTokenNotForTopic") || !strcmp(reason, "Unregistered"))
			return PUSH_V_DEAD_TOKEN;
		if (status == 403 && !strcmp(reason, "ExpiredProviderToken"))
			return PUSH_V_REFRESH_AUTH;
		return PUSH_V_PERMANENT;
	}
	if (p == PUSH_FCM) {
		if (!strcmp(reason, "UNREGISTERED") || (status == 404 && !strcmp(reason, "NOT_FOUND")))
			return PUSH_V_DEAD_TOKEN;
		if (status == 400 && token_invalid_fcm(body, len))
			return PUSH_V_DEAD_TOKEN;
		if (status == 401)
			return PUSH_V_TRANSIENT; /* the bearer token file is being rotated */
		return PUSH_V_PERMANENT;
	}
	return status == 410 ? PUSH_V_DEAD_TOKEN : PUSH_V_PERMANENT;
}

static void find_reason(enum push_provider p, const char *body, size_t len, char *reason,
			size_t reasonlen)
{
	reason[0] = 0;
	if (p == PUSH_APNS) {
		push_json_find_string(body, len, "reason", reason, reasonlen);
	} else if (p == PUSH_FCM) {
		if (!push_json_find_string(body, len, "errorCode", reason, reasonlen))
			push_json_find_string(body, len, "status", reason, reasonlen);
	}
}

enum push_verdict push_classify(enum push_provider p, int status, const char *body, size_t len,
				const char *retry_after, uint32_t *retry_after_ms, char *reason,
				size_t reasonlen)
{
	*retry_after_ms = 0;
	find_reason(p, body, body ? len : 0, reason, reasonlen);
	if (!reason[0])
		snprintf(reason, reasonlen, "http %d", status);
	if (status >= 200 && status < 300)
		return PUSH_V_ACCEPTED;
	if (status == 429 || status == 503) {
		uint32_t ms = push_retry_after_ms(retry_after, retry_after ? strlen(retry_after) : 0);
		*retry_after_ms = ms ? ms : 1000;
		return PUSH_V_THROTTLED;
	}
	if (status >= 500 || status < 200)
		return PUSH_V_TRANSIENT;
	if (status == 408)
		return PUSH_V_TRANSIENT;
	return classify_4xx(p, status, reason, body, body ? len : 0);
}

const char *push_verdict_name(enum push_verdict v)
{
	static const char *n[] = {"accepted", "dead-token", "permanent", "transient", "throttled",
				  "refresh-auth"};
	return (unsigned)v < sizeof(n) / sizeof(n[0]) ? n[v] : "?";
}
