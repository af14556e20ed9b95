/*
 * tests/unit/test_admit.c: engine/admit.c — every decision of admit_check
 * in its documented order (413, 400 envelope, 401 unknown key, 401 bad
 * signature before any payload decode, 403 revoked / not current, 400
 * payload, 400 invalid_field, 403 sender, 403 status / targets scope), and
 * a success with the SHA-256 digest of the payload bytes, for ed25519 and
 * sm2-sm3 keys; then admit_summary_json.
 *
 * Keys are generated per run; the keyring is written to a temp file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "admit.h"
#include "warning.pb-c.h"

#define NOW 1795000000LL /* 2026-11-18, inside the good keys' validity window */
#define WINDOW 300

struct fx {
	EVP_PKEY *ed, *sm2, *revoked, *stale;
	struct keyring *kr;
};

static char *b64(EVP_PKEY *k)
{
	char *s = sig_pubkey_to_b64(k);
	assert_non_null(s);
	return s;
}

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	fx->ed = sig_keygen(SIG_ED25519);
	fx->sm2 = sig_keygen(SIG_SM2_SM3);
	fx->revoked = sig_keygen(SIG_ED25519);
	fx->stale = sig_keygen(SIG_ED25519);
	if (!fx->ed || !fx->sm2 || !fx->revoked || !fx->stale)
		return -1;

	char path[] = "/tmp/admit_keys_XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "w");
	char *e = b64(fx->ed), *s = b64(fx->sm2), *r = b64(fx->revoked), *t = b64(fx->stale);
	fprintf(f,
		"[met-ed]\nsender = met.fuzhou.gov.cn\nalgorithm = ed25519\npublic_key = %s\n"
		"not_before = 2026-01-01T00:00:00+08:00\nnot_after = 2027-01-01T00:00:00+08:00\n"
		"segments = 350102, 350103001\nstatuses = Actual, Exercise\n"
		"[met-sm2]\nsender = met.fuzhou.gov.cn\nalgorithm = sm2-sm3\npublic_key = %s\n"
		"segments = 350102\nstatuses = Actual\n"
		"[met-revoked]\nsender = met.fuzhou.gov.cn\nalgorithm = ed25519\npublic_key = %s\n"
		"revoked = true\nsegments = 350102\nstatuses = Actual\n"
		"[met-stale]\nsender = met.fuzhou.gov.cn\nalgorithm = ed25519\npublic_key = %s\n"
		"not_after = 2026-06-01T00:00:00Z\nsegments = 350102\nstatuses = Actual\n",
		e, s, r, t);
	fclose(f);
	free(e);
	free(s);
	free(r);
	free(t);
	char err[256] = "";
	fx->kr = keyring_load(path, err, sizeof(err));
	unlink(path);
	if (!fx->kr) {
		fprintf(stderr, "keyring_load: %s\n", err);
		return -1;
	}
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;
	keyring_unref(fx->kr);
	EVP_PKEY_free(fx->ed);
	EVP_PKEY_free(fx->sm2);
	EVP_PKEY_free(fx->revoked);
	EVP_PKEY_free(fx->stale);
	free(fx);
	return 0;
}

/* A valid warning; tests change one field before packing. */
struct wbuf {
	Tocsin__Warning w;
	Tocsin__Info info;
	Tocsin__Info *infos[1];
	Tocsin__Category cat;
	char *targets[2];
};

static void wbuf_init(struct wbuf *b)
{
	tocsin__warning__init(&b->w);
	tocsin__info__init(&b->info);
	b->w.identifier = "gulou-typhoon-2026-001";
	b->w.sender = "met.fuzhou.gov.cn";
	b->w.has_sent = b->w.has_status = b->w.has_msg_type = b->w.has_scope = 1;
	b->w.sent = NOW;
	b->w.status = TOCSIN__STATUS__ACTUAL;
	b->w.msg_type = TOCSIN__MSG_TYPE__ALERT;
	b->w.scope = TOCSIN__SCOPE__PUBLIC;
	b->targets[0] = "350102001";
	b->targets[1] = "350102002001";
	b->w.targets = b->targets;
	b->w.n_targets = 2;
	b->info.language = "zh-CN";
	b->cat = TOCSIN__CATEGORY__MET;
	b->info.category = &b->cat;
	b->info.n_category = 1;
	b->info.event = "台风";
	b->info.has_urgency = b->info.has_severity = b->info.has_certainty = 1;
	b->info.urgency = TOCSIN__URGENCY__IMMEDIATE;
	b->info.severity = TOCSIN__SEVERITY__EXTREME;
	b->info.certainty = TOCSIN__CERTAINTY__OBSERVED;
	b->info.headline = "鼓楼区台风红色预警";
	b->info.has_expires = 1;
	b->info.expires = NOW + 6 * 3600;
	b->infos[0] = &b->info;
	b->w.info = b->infos;
	b->w.n_info = 1;
}

static uint8_t *pack_warning(const Tocsin__Warning *w, size_t *len)
{
	*len = tocsin__warning__get_packed_size(w);
	uint8_t *p = malloc(*len);
	assert_int_equal(tocsin__warning__pack(w, p), *len);
	return p;
}

/* Envelope over exactly `payload`; signed with `key` unless sig/siglen given. */
static uint8_t *envelope(const uint8_t *payload, size_t plen, const uint8_t *sig, size_t siglen,
			 const char *key_id, size_t *len)
{
	Tocsin__SignedWarning sw;
	tocsin__signed_warning__init(&sw);
	sw.has_payload = sw.has_signature = 1;
	sw.payload.data = (uint8_t *)payload;
	sw.payload.len = plen;
	sw.signature.data = (uint8_t *)sig;
	sw.signature.len = siglen;
	sw.key_id = (char *)key_id;
	*len = tocsin__signed_warning__get_packed_size(&sw);
	uint8_t *b = malloc(*len);
	assert_int_equal(tocsin__signed_warning__pack(&sw, b), *len);
	return b;
}

static uint8_t *sign_bytes(EVP_PKEY *key, enum sig_alg alg, const char *key_id,
			   const uint8_t *payload, size_t plen, size_t *len)
{
	uint8_t *sig;
	size_t siglen;
	assert_int_equal(sig_sign(key, alg, payload, plen, &sig, &siglen), 0);
	uint8_t *b = envelope(payload, plen, sig, siglen, key_id, len);
	free(sig);
	return b;
}

static uint8_t *sign_warning(EVP_PKEY *key, enum sig_alg alg, const char *key_id,
			     const Tocsin__Warning *w, size_t *len)
{
	size_t plen;
	uint8_t *p = pack_warning(w, &plen);
	uint8_t *b = sign_bytes(key, alg, key_id, p, plen, len);
	free(p);
	return b;
}

/* Run admit_check on body; the arena is released before returning. */
static void check(struct fx *fx, const uint8_t *body, size_t len, struct admit_result *r)
{
	struct warning_arena a;
	warning_arena_init(&a, WARNING_ARENA_CAP);
	admit_check(fx->kr, body, len, NOW, WINDOW, &a, r);
	r->warning = NULL; /* lived in the arena */
	r->key_id = NULL;
	warning_arena_release(&a);
}

static void expect(struct fx *fx, const uint8_t *body, size_t len, int status, const char *error,
		   const char *field)
{
	struct admit_result r;
	check(fx, body, len, &r);
	if (r.status != status || strcmp(r.error ? r.error : "", error) != 0)
		fail_msg("expected %d %s, got %d %s (%s: %s)", status, error, r.status,
			 r.error ? r.error : "-", r.field, r.reason);
	if (field)
		assert_string_equal(r.field, field);
	assert_true(r.reason[0] != '\0');
	assert_string_equal(r.digest_hex, "");
}

static void test_too_large(void **state)
{
	size_t len = WARNING_MAX_ENVELOPE + 1;
	uint8_t *b = calloc(1, len);
	expect(*state, b, len, 413, "too_large", NULL);
	free(b);
}

static void test_envelope(void **state)
{
	struct fx *fx = *state;
	const uint8_t junk[] = {0x0a, 0x7f, 1, 2};
	expect(fx, junk, sizeof(junk), 400, "malformed", "envelope");

	const uint8_t pl[] = {1, 2, 3}, sig[64] = {0};
	size_t len;
	uint8_t *b = envelope(pl, sizeof(pl), sig, sizeof(sig), NULL, &len);
	expect(fx, b, len, 400, "malformed", "envelope"); /* no key_id */
	free(b);
	b = envelope(pl, 0, sig, sizeof(sig), "met-ed", &len);
	expect(fx, b, len, 400, "malformed", "envelope"); /* no payload */
	free(b);
	b = envelope(pl, sizeof(pl), sig, 0, "met-ed", &len);
	expect(fx, b, len, 400, "malformed", "envelope"); /* no signature */
	free(b);
}

static void test_unknown_key(void **state)
{
	struct fx *fx = *state;
	struct wbuf w;
	size_t len;
	wbuf_init(&w);
	uint8_t *b = sign_warning(fx->ed, SIG_ED25519, "nobody", &w.w, &len);
	expect(fx, b, len, 401, "unknown_key", "key_id");
	free(b);
}

static void test_bad_signature(void **state)
{
	struct fx *fx = *state;
	struct wbuf w;
	size_t len;
	wbuf_init(&w);

	/* Signed by another key of the right algorithm. */
	uint8_t *b = sign_warning(fx->revoked, SIG_ED25519, "met-ed", &w.w, &len);
	expect(fx, b, len, 401, "bad_signature", "signature");
	free(b);

	/* Garbage payload with a bad signature: 401, not 400 (no decode before verify). */
	const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0a, 0x99};
	const uint8_t zeros[64] = {0};
	b = envelope(garbage, sizeof(garbage), zeros, sizeof(zeros), "met-ed", &len);
	expect(fx, b, len, 401, "bad_signature", "signature");
	free(b);

	/* A signature by the right key over different bytes. */
	size_t plen;
	uint8_t *p = pack_warning(&w.w, &plen), *sig;
	size_t siglen;
	assert_int_equal(sig_sign(fx->ed, SIG_ED25519, p, plen, &sig, &siglen), 0);
	p[plen - 1] ^= 1;
	b = envelope(p, plen, sig, siglen, "met-ed", &len);
	expect(fx, b, len, 401, "bad_signature", "signature");
	free(b);
	free(sig);
	free(p);

	/* An ed25519 signature offered for an sm2-sm3 key. */
	b = sign_warning(fx->ed, SIG_ED25519, "met-sm2", &w.w, &len);
	expect(fx, b, len, 401, "bad_signature", "signature");
	free(b);
}

static void test_key_state(void **state)
{
	struct fx *fx = *state;
	struct wbuf w;
	size_t len;
	wbuf_init(&w);
	uint8_t *b = sign_warning(fx->revoked, SIG_ED25519, "met-revoked", &w.w, &len);
	expect(fx, b, len, 403, "key_revoked", "key_id");
	free(b);
	b = sign_warning(fx->stale, SIG_ED25519, "met-stale", &w.w, &len);
	expect(fx, b, len, 403, "key_not_current", "key_id");
	free(b);

	/* Revoked wins over a garbage payload: key state is checked before decode. */
	const uint8_t garbage[] = {0xff, 0xff, 0xff};
	b = sign_bytes(fx->revoked, SIG_ED25519, "met-revoked", garbage, sizeof(garbage), &len);
	expect(fx, b, len, 403, "key_revoked", "key_id");
	free(b);
}

static void test_payload_decode(void **state)
{
	struct fx *fx = *state;
	const uint8_t garbage[] = {0x0a, 0x7f, 'x'}; /* string field longer than the input */
	size_t len;
	uint8_t *b = sign_bytes(fx->ed, SIG_ED25519, "met-ed", garbage, sizeof(garbage), &len);
	expect(fx, b, len, 400, "malformed", "payload");
	free(b);
}

static void test_invalid_field(void **state)
{
	struct fx *fx = *state;
	struct wbuf w;
	size_t len;
	uint8_t *b;

	wbuf_init(&w);
	w.info.has_expires = 0;
	b = sign_warning(fx->ed, SIG_ED25519, "met-ed", &w.w, &len);
	expect(fx, b, len, 400, "invalid_field", "info[0].expires");
	free(b);

	wbuf_init(&w);
	w.w.sent = NOW - WINDOW - 1;
	b = sign_warning(fx->ed, SIG_ED25519, "met-ed", &w.w, &len);
	expect(fx, b, len, 400, "invalid_field", "sent");
	free(b);

	/* Validation runs before the sender check. */
	wbuf_init(&w);
	w.w.sender = "someone.else";
	w.w.identifier = "bad id";
	b = sign_warning(fx->ed, SIG_ED25519, "met-ed", &w.w, &len);
	expect(fx, b, len, 400, "invalid_field", "identifier");
	free(b);
}

static void test_sender_and_scope(void **state)
{
	struct fx *fx = *state;
	struct wbuf w;
	size_t len;
	uint8_t *b;

	wbuf_init(&w);
	w.w.sender = "met.xiamen.gov.cn";
	b = sign_warning(fx->ed, SIG_ED25519, "met-ed", &w.w, &len);
	expect(fx, b, len, 403, "sender_mismatch", "sender");
	free(b);

	/* The sender check comes before the scope checks. */
	w.w.status = TOCSIN__STATUS__TEST;
	b = sign_warning(fx->ed, SIG_ED25519, "met-ed", &w.w, &len);
	expect(fx, b, len, 403, "sender_mismatch", "sender");
	free(b);

	wbuf_init(&w);
	w.w.status = TOCSIN__STATUS__TEST; /* valid, but not in met-ed's statuses */
	b = sign_warning(fx->ed, SIG_ED25519, "met-ed", &w.w, &len);
	expect(fx, b, len, 403, "out_of_scope", "status");
	free(b);

	/* Segments are prefixes: 350103001xxx is in, 350103002 and 3501 are not. */
	wbuf_init(&w);
	w.targets[1] = "350103002";
	b = sign_warning(fx->ed, SIG_ED25519, "met-ed", &w.w, &len);
	expect(fx, b, len, 403, "out_of_scope", "targets");
	free(b);
	w.targets[1] = "3501";
	b = sign_warning(fx->ed, SIG_ED25519, "met-ed", &w.w, &len);
	expect(fx, b, len, 403, "out_of_scope", "targets");
	free(b);

	w.targets[1] = "350103001042";
	b = sign_warning(fx->ed, SIG_ED25519, "met-ed", &w.w, &len);
	struct admit_result r;
	check(fx, b, len, &r);
	assert_int_equal(r.status, 0);
	free(b);
}

static void hex_sha256(const uint8_t *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	assert_int_equal(EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL), 1);
	assert_int_equal(mdlen, 32);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

static void admit_ok(struct fx *fx, EVP_PKEY *key, enum sig_alg alg, const char *key_id)
{
	struct wbuf w;
	wbuf_init(&w);
	size_t plen, len;
	uint8_t *p = pack_warning(&w.w, &plen);
	uint8_t *b = sign_bytes(key, alg, key_id, p, plen, &len);
	char want[65];
	hex_sha256(p, plen, want);

	struct warning_arena a;
	struct admit_result r;
	warning_arena_init(&a, WARNING_ARENA_CAP);
	admit_check(fx->kr, b, len, NOW, WINDOW, &a, &r);
	if (r.status != 0)
		fail_msg("%s: %d %s %s %s", key_id, r.status, r.error, r.field, r.reason);
	assert_null(r.error);
	assert_string_equal(r.field, "");
	assert_non_null(r.warning);
	assert_string_equal(r.warning->identifier, "gulou-typhoon-2026-001");
	assert_int_equal(r.warning->n_targets, 2);
	assert_string_equal(r.key_id, key_id);
	assert_int_equal(strlen(r.digest_hex), 64);
	assert_int_equal(strspn(r.digest_hex, "0123456789abcdef"), 64);
	assert_string_equal(r.digest_hex, want);

	char *json = admit_summary_json(r.warning, r.key_id);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"id\":\"gulou-typhoon-2026-001\""));
	assert_non_null(strstr(json, "\"status\":\"Actual\""));
	assert_non_null(strstr(json, "\"msg_type\":\"Alert\""));
	assert_non_null(strstr(json, "\"scope\":\"Public\""));
	assert_non_null(strstr(json, "\"targets\":[\"350102001\",\"350102002001\"]"));
	char kid[64];
	snprintf(kid, sizeof(kid), "\"key_id\":\"%s\"", key_id);
	assert_non_null(strstr(json, kid));
	assert_non_null(strstr(json, "\"severity\":\"Extreme\""));
	free(json);
	warning_arena_release(&a);

	/* The same payload (even re-signed: sm2 signatures differ) gives the same digest. */
	uint8_t *b2 = sign_bytes(key, alg, key_id, p, plen, &len);
	warning_arena_init(&a, WARNING_ARENA_CAP);
	admit_check(fx->kr, b2, len, NOW, WINDOW, &a, &r);
	assert_int_equal(r.status, 0);
	assert_string_equal(r.digest_hex, want);
	warning_arena_release(&a);

	/* A different payload gives a different digest. */
	w.w.identifier = "gulou-typhoon-2026-002";
	uint8_t *b3 = sign_warning(key, alg, key_id, &w.w, &len);
	warning_arena_init(&a, WARNING_ARENA_CAP);
	admit_check(fx->kr, b3, len, NOW, WINDOW, &a, &r);
	assert_int_equal(r.status, 0);
	assert_string_not_equal(r.digest_hex, want);
	warning_arena_release(&a);

	free(b3);
	free(b2);
	free(b);
	free(p);
}

static void test_success_ed25519(void **state)
{
	struct fx *fx = *state;
	admit_ok(fx, fx->ed, SIG_ED25519, "met-ed");
}

static void test_success_sm2(void **state)
{
	struct fx *fx = *state;
	admit_ok(fx, fx->sm2, SIG_SM2_SM3, "met-sm2");

	/* sm2: the same order of decisions holds. */
	struct wbuf w;
	size_t len;
	wbuf_init(&w);
	w.w.status = TOCSIN__STATUS__EXERCISE; /* met-sm2 allows Actual only */
	uint8_t *b = sign_warning(fx->sm2, SIG_SM2_SM3, "met-sm2", &w.w, &len);
	expect(fx, b, len, 403, "out_of_scope", "status");
	free(b);
	b = sign_warning(fx->ed, SIG_ED25519, "met-sm2", &w.w, &len);
	expect(fx, b, len, 401, "bad_signature", "signature");
	free(b);
}

static void test_summary_fields(void **state)
{
	struct wbuf w;
	wbuf_init(&w);
	w.w.has_colour = 1;
	w.w.colour = TOCSIN__COLOUR__ORANGE;
	w.w.national_id = "35010241600000_20261129080000_1";
	w.w.status = TOCSIN__STATUS__EXERCISE;
	char *json = admit_summary_json(&w.w, "met-ed");
	assert_non_null(json);
	assert_non_null(strstr(json, "\"status\":\"Exercise\""));
	assert_non_null(strstr(json, "\"colour\":\"orange\""));
	assert_non_null(strstr(json, "\"national_id\":\"35010241600000_20261129080000_1\""));
	assert_non_null(strstr(json, "\"references\":[]"));
	char exp[64];
	snprintf(exp, sizeof(exp), "\"expires\":%lld", NOW + 6 * 3600);
	assert_non_null(strstr(json, exp));
	free(json);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_too_large),
		cmocka_unit_test(test_envelope),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_key_state),
		cmocka_unit_test(test_payload_decode),
		cmocka_unit_test(test_invalid_field),
		cmocka_unit_test(test_sender_and_scope),
		cmocka_unit_test(test_success_ed25519),
		cmocka_unit_test(test_success_sm2),
		cmocka_unit_test(test_summary_fields),
	};
	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
