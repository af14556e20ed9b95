/*
 * engine/admit.c: the admission decision (see admit.h for the order).
 *
 * The payload is never parsed before its signature verified: an attacker
 * without a key can only reach the envelope decoder, which is small and
 * fuzzed.
 */
#include "admit.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); /* once: fetches contend under threads */
}

static void digest_hex(const uint8_t *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0;
	pthread_once(&sha256_once, fetch_sha256);
	EVP_Digest(p, n, md, &len, sha256_md, NULL);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void reject(struct admit_result *r, int status, const char *error, const char *field,
		   const char *fmt, const char *arg)
{
	r->status = status;
	r->error = error;
	snprintf(r->field, sizeof(r->field), "%s", field ? field : "");
	snprintf(r->reason, sizeof(r->reason), fmt, arg ? arg : "");
}

static bool check_scope(const struct keyring_key *k, const Tocsin__Warning *w,
			struct admit_result *r)
{
	if (!keyring_allows_status(k, w->status)) {
		reject(r, 403, "out_of_scope", "status", "key may not send status %s",
		       warning_status_name(w->status));
		return false;
	}
	for (size_t i = 0; i < w->n_targets; i++) {
		if (!keyring_allows_segment(k, w->targets[i])) {
			reject(r, 403, "out_of_scope", "targets",
			       "segment %s is outside the key's scope", w->targets[i]);
			return false;
		}
	}
	return true;
}

static bool check_key(const struct keyring_key *k, const Tocsin__SignedWarning *sw, int64_t now,
		      struct admit_result *r)
{
	if (!sig_verify(k->pkey, k->alg, sw->payload.data, sw->payload.len, sw->signature.data,
			sw->signature.len)) {
		reject(r, 401, "bad_signature", "signature",
		       "signature does not verify with key %s", k->id);
		return false;
	}
	if (k->revoked) {
		reject(r, 403, "key_revoked", "key_id", "key %s is revoked", k->id);
		return false;
	}
	if (!keyring_key_current(k, now)) {
		reject(r, 403, "key_not_current", "key_id",
		       "key %s is outside its validity window", k->id);
		return false;
	}
	return true;
}

void admit_check(const struct keyring *kr, const uint8_t *body, size_t len, int64_t now,
		 int64_t sent_window, struct warning_arena *arena, struct admit_result *r)
{
	memset(r, 0, sizeof(*r));
	const char *why = NULL;
	if (len > WARNING_MAX_ENVELOPE)
		return reject(r, 413, "too_large", NULL, "%s", "body exceeds 64 KiB");
	Tocsin__SignedWarning *sw = signed_warning_decode(arena, body, len, &why);
	if (!sw)
		return reject(r, 400, "malformed", "envelope", "%s", why);
	const struct keyring_key *k = keyring_find(kr, sw->key_id);
	if (!k)
		return reject(r, 401, "unknown_key", "key_id", "no key '%s' in the keyring",
			      sw->key_id);
	if (!check_key(k, sw, now, r))
		return;
	Tocsin__Warning *w = warning_decode(arena, sw->payload.data, sw->payload.len, &why);
	if (!w)
		return reject(r, 400, "malformed", "payload", "%s", why);
	struct warning_problem p;
	if (!warning_validate(w, now, sent_window, &p)) {
		reject(r, 400, "invalid_field", p.field, "%s", p.reason);
		return;
	}
	if (strcmp(w->sender, k->sender) != 0)
		return reject(r, 403, "sender_mismatch", "sender",
			      "sender does not match key's sender %s", k->sender);
	if (!check_scope(k, w, r))
		return;
	r->warning = w;
	r->key_id = sw->key_id;
	digest_hex(sw->payload.data, sw->payload.len, r->digest_hex);
}

static json_t *str_array(char **v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *info_json(const Tocsin__Info *in)
{
	json_t *o = json_object();
	json_object_set_new(o, "language", json_string(in->language));
	json_object_set_new(o, "event", json_string(in->event));
	json_object_set_new(o, "urgency", json_string(warning_urgency_name(in->urgency)));
	json_object_set_new(o, "severity", json_string(warning_severity_name(in->severity)));
	json_object_set_new(o, "certainty", json_string(warning_certainty_name(in->certainty)));
	json_object_set_new(o, "headline", json_string(in->headline));
	json_object_set_new(o, "expires", json_integer(in->expires));
	if (in->sender_name)
		json_object_set_new(o, "sender_name", json_string(in->sender_name));
	return o;
}

char *admit_summary_json(const Tocsin__Warning *w, const char *key_id)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_string(w->identifier));
	json_object_set_new(o, "sender", json_string(w->sender));
	json_object_set_new(o, "key_id", json_string(key_id));
	json_object_set_new(o, "sent", json_integer(w->sent));
	json_object_set_new(o, "status", json_string(warning_status_name(w->status)));
	json_object_set_new(o, "msg_type", json_string(warning_msg_type_name(w->msg_type)));
	json_object_set_new(o, "scope", json_string(warning_scope_name(w->scope)));
	json_object_set_new(o, "colour", json_string(warning_colour_name(w->colour)));
	if (w->national_id && w->national_id[0])
		json_object_set_new(o, "national_id", json_string(w->national_id));
	json_object_set_new(o, "references", str_array(w->references, w->n_references));
	json_object_set_new(o, "targets", str_array(w->targets, w->n_targets));
	json_object_set_new(o, "expires", json_integer(warning_expires(w)));
	json_t *infos = json_array();
	for (size_t i = 0; i < w->n_info; i++)
		json_array_append_new(infos, info_json(w->info[i]));
	json_object_set_new(o, "info", infos);
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}
