/*
 * proto/push_payload.h: pure builders and parsers for app push (APNs, FCM
 * HTTP v1, webhook): request bodies out, provider answers in.
 *
 * No I/O, no allocation, no globals: every builder writes into a
 * caller-owned buffer and returns the length, or -1 when it does not fit
 * (the APNs builder never fails for long text: it truncates the body at a
 * UTF-8 boundary, adding "…", so that the payload stays under the limit).
 * JSON is built by hand: strings are escaped (", \, control characters)
 * and invalid UTF-8 is replaced by U+FFFD, so the output is always valid
 * JSON and valid UTF-8.
 *
 * The parsers take untrusted bytes (a response body, a Retry-After value)
 * of any length and never read past `len`.
 */
#ifndef TOCSIN_PUSH_PAYLOAD_H
#define TOCSIN_PUSH_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PUSH_APNS_MAX_PAYLOAD 4096
#define PUSH_MAX_BODY 16384 /* largest FCM / webhook body we build */

enum push_provider { PUSH_APNS, PUSH_FCM, PUSH_WEBHOOK };

/* What the adapter should do with a provider's answer. */
enum push_verdict {
	PUSH_V_ACCEPTED,      /* 200: the provider took it */
	PUSH_V_DEAD_TOKEN,    /* permanent, and the token must never be used again */
	PUSH_V_PERMANENT,     /* permanent for this message */
	PUSH_V_TRANSIENT,     /* retry later with backoff */
	PUSH_V_THROTTLED,     /* pause the lane for retry_after_ms */
	PUSH_V_REFRESH_AUTH,  /* APNs 403 ExpiredProviderToken: new JWT, retry once */
};

/* One message, rendered for one delivery. Strings may be NULL (= ""). */
struct push_msg {
	const char *warning_id;
	const char *title;       /* headline */
	const char *body;        /* instruction, else description */
	const char *severity;    /* "Extreme", ... */
	const char *colour;      /* "red", ... or "" */
	const char *language;    /* "zh-CN" */
	const char *token;       /* without the platform prefix */
	const char *interruption_level; /* APNs: "critical", "time-sensitive", "active" */
	const char *sound;       /* APNs: "default" */
	int64_t expires;         /* UNIX seconds */
	int64_t ttl_s;           /* FCM: seconds left (>= 0) */
	bool drill;
};

/* {"aps":{"alert":{"title","body"},"sound","interruption-level"},"warning_id"}; < 4096 bytes. */
int push_apns_payload(char *out, size_t cap, const struct push_msg *m);
/* {"message":{"token","notification","android","data"}}. */
int push_fcm_payload(char *out, size_t cap, const struct push_msg *m);
/* The webhook's JSON rendering of the whole message. */
int push_webhook_payload(char *out, size_t cap, const struct push_msg *m);

/*
 * Escape `s` as the inside of a JSON string into out (cap bytes), using at
 * most `max` bytes of output and cutting only between UTF-8 characters.
 * Returns bytes written; *truncated says whether input was left over.
 */
size_t push_json_escape(char *out, size_t cap, const char *s, size_t max, bool *truncated);

/*
 * The first string value of "key" anywhere in a JSON text (a lenient scan,
 * not a validator), unescaped into out (NUL-terminated, cut to cap-1).
 * false when absent.
 */
bool push_json_find_string(const char *json, size_t len, const char *key, char *out, size_t cap);

/* Retry-After: delta-seconds → ms (capped at 1 hour); 0 when absent or not seconds. */
uint32_t push_retry_after_ms(const char *v, size_t len);

/*
 * Classify an answer: HTTP status, body (may be NULL), Retry-After value
 * (may be NULL). Sets *retry_after_ms for THROTTLED (default 1000) and a
 * static-or-copied reason ("Unregistered", "UNREGISTERED", "http 500"...)
 * into reason.
 */
enum push_verdict push_classify(enum push_provider p, int status, const char *body, size_t len,
				const char *retry_after, uint32_t *retry_after_ms, char *reason,
				size_t reasonlen);

const char *push_verdict_name(enum push_verdict v);

#endif
