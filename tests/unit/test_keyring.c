/*
 * tests/unit/test_keyring.c: engine/keyring.c — a good keyring and its
 * lookups and checks, every load error with its file:line and key id,
 * and the RFC 3339 / CAP time parser. Keys are generated per run and the
 * INI files written to /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "keyring.h"
#include "warning.pb-c.h"

struct fx {
	char *ed_b64, *sm2_b64;
	char path[64];
};

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	EVP_PKEY *ed = sig_keygen(SIG_ED25519), *sm2 = sig_keygen(SIG_SM2_SM3);

	fx->ed_b64 = sig_pubkey_to_b64(ed);
	fx->sm2_b64 = sig_pubkey_to_b64(sm2);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(sm2);
	*state = fx;
	return fx->ed_b64 && fx->sm2_b64 ? 0 : -1;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	free(fx->ed_b64);
	free(fx->sm2_b64);
	free(fx);
	return 0;
}

/* Write `text` (printf format, %1$s = ed25519 b64, %2$s = sm2 b64) and load it. */
static struct keyring *load_text(struct fx *fx, char *err, size_t errlen, const char *fmt)
{
	snprintf(fx->path, sizeof(fx->path), "/tmp/keys_XXXXXX");
	int fd = mkstemp(fx->path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	fprintf(f, fmt, fx->ed_b64, fx->sm2_b64);
	fclose(f);
	err[0] = '\0';
	struct keyring *kr = keyring_load(fx->path, err, errlen);
	unlink(fx->path);
	return kr;
}

static const char good[] =
	"; a comment\n"
	"[met-fuzhou-2026]\n"
	"sender     = met.fuzhou.gov.cn\n"
	"algorithm  = ed25519\n"
	"public_key = %1$s\n"
	"not_before = 2026-01-01T00:00:00+08:00\n"
	"not_after  = 2027-01-01T00:00:00+08:00 ; inline comment\n"
	"revoked    = false\n"
	"segments   = 350102, 350103\n"
	"statuses   = Actual, exercise, TEST\n"
	"\n"
	"[gulou-sm2]\n"
	"sender = gulou.gov.cn\n"
	"algorithm = SM2-SM3\n"
	"public_key = %2$s\n"
	"segments = 350102001\n"
	"statuses = Exercise\n"
	"[old]\n"
	"sender = x\n"
	"algorithm = ed25519\n"
	"public_key = %1$s\n"
	"revoked = yes\n"
	"segments = 35\n"
	"statuses = Draft System\n";

static void test_good(void **state)
{
	char err[256];
	struct keyring *kr = load_text(*state, err, sizeof(err), good);

	assert_non_null(kr);
	assert_int_equal(keyring_size(kr), 3);
	const struct keyring_key *k = keyring_find(kr, "met-fuzhou-2026");
	assert_non_null(k);
	assert_string_equal(k->sender, "met.fuzhou.gov.cn");
	assert_int_equal(k->alg, SIG_ED25519);
	assert_non_null(k->pkey);
	assert_false(k->revoked);
	assert_int_equal(k->n_segments, 2);
	assert_int_equal(k->not_before, 1767196800); /* 2025-12-31T16:00:00Z */
	assert_int_equal(k->not_after, 1767196800 + 365 * 86400);

	/* current: inclusive bounds */
	assert_false(keyring_key_current(k, k->not_before - 1));
	assert_true(keyring_key_current(k, k->not_before));
	assert_true(keyring_key_current(k, k->not_after));
	assert_false(keyring_key_current(k, k->not_after + 1));

	/* scope: segment prefixes */
	assert_true(keyring_allows_segment(k, "350102"));
	assert_true(keyring_allows_segment(k, "350103002001"));
	assert_false(keyring_allows_segment(k, "350104"));
	assert_false(keyring_allows_segment(k, "3501"));
	assert_false(keyring_allows_segment(k, ""));

	/* statuses, case-insensitive in the file */
	assert_true(keyring_allows_status(k, TOCSIN__STATUS__ACTUAL));
	assert_true(keyring_allows_status(k, TOCSIN__STATUS__EXERCISE));
	assert_true(keyring_allows_status(k, TOCSIN__STATUS__TEST));
	assert_false(keyring_allows_status(k, TOCSIN__STATUS__SYSTEM));
	assert_false(keyring_allows_status(k, TOCSIN__STATUS__DRAFT));
	assert_false(keyring_allows_status(k, 0));
	assert_false(keyring_allows_status(k, 99));

	const struct keyring_key *s = keyring_find(kr, "gulou-sm2");
	assert_non_null(s);
	assert_int_equal(s->alg, SIG_SM2_SM3);
	assert_true(keyring_key_current(s, 0) && keyring_key_current(s, 4000000000));
	assert_false(keyring_allows_status(s, TOCSIN__STATUS__ACTUAL));

	const struct keyring_key *o = keyring_find(kr, "old");
	assert_true(o->revoked);
	assert_true(keyring_allows_status(o, TOCSIN__STATUS__SYSTEM));

	assert_null(keyring_find(kr, "nope"));
	assert_null(keyring_find(kr, "met-fuzhou"));

	/* References: the keyring lives until the last unref (ASan checks both). */
	keyring_ref(kr);
	keyring_unref(kr);
	assert_string_equal(keyring_find(kr, "old")->sender, "x");
	keyring_unref(kr);
}

struct bad_case {
	const char *text;
	const char *want; /* substring of the error after the file name */
};

#define TAIL "segments = 350102\nstatuses = Actual\n"

static const struct bad_case bad_cases[] = {
	{ "[k1]\nsender = s\nalgorithm = rsa\n",
	  ":3: key 'k1': unknown algorithm 'rsa' (ed25519, sm2-sm3)" },
	{ "[k1]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\nsegments = 350102\n",
	  ":1: key 'k1': missing required field 'statuses'" },
	{ "[k1]\nsender = s\npublic_key = %1$s\n" TAIL,
	  ":1: key 'k1': missing required field 'algorithm'" },
	{ "[k1]\nsender = s\nalgorithm = sm2-sm3\npublic_key = %1$s\n" TAIL,
	  ":4: key 'k1': public_key: public key is ed25519, not sm2-sm3" },
	{ "[k1]\nsender = s\nalgorithm = ed25519\n\npublic_key = not*base64\n" TAIL,
	  ":5: key 'k1': public_key: public key is not valid base64" },
	{ "[k1]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\nsegments = 350102\n"
	  "statuses = Actual, Live\n",
	  ":6: key 'k1': statuses: unknown status 'Live'" },
	{ "[k1]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\n" TAIL
	  "not_before = 2027-01-01T00:00:00Z\nnot_after = 2026-01-01T00:00:00Z\n",
	  ":1: key 'k1': not_before is not before not_after" },
	{ "[k1]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\n" TAIL
	  "not_after = 2026-13-01T00:00:00Z\n",
	  ":7: key 'k1': not_after: bad time '2026-13-01T00:00:00Z'" },
	{ "[k1]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\n" TAIL
	  "revoked = maybe\n",
	  ":7: key 'k1': revoked: expected true or false, not 'maybe'" },
	{ "[k1]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\n" TAIL "colour = red\n",
	  ":7: key 'k1': unknown field 'colour'" },
	{ "[k1]\nsender = s\nsender = t\n", ":3: key 'k1': field 'sender' given twice" },
	{ "[k1]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\n" TAIL
	  "[k2]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\n" TAIL
	  "[k1]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\n" TAIL,
	  ":13: key 'k1': duplicate key id (first at line 1)" },
	{ "[k1]\n[k2]\nsender = s\n", ":1: key 'k1': section has no fields" },
	{ "sender = s\n", ":1: field outside any [key-id] section" },
	{ "[k1]\nthis line has no equals sign\n", ":2: syntax error" },
	{ "; nothing\n", ": no keys" },
	{ "[k1]\nsender = s\nalgorithm = ed25519\npublic_key = %1$s\nsegments = 35/01\n",
	  ":5: key 'k1': segments: bad segment id '35/01'" },
};

static void test_errors(void **state)
{
	struct fx *fx = *state;
	char err[512];

	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct keyring *kr = load_text(fx, err, sizeof(err), bad_cases[i].text);
		if (kr != NULL || strncmp(err, fx->path, strlen(fx->path)) != 0 ||
		    strstr(err, bad_cases[i].want) == NULL)
			fail_msg("case %zu: got '%s', want '%s' after the file name", i, err,
				 bad_cases[i].want);
	}
}

static void test_long_line_and_missing_file(void **state)
{
	struct fx *fx = *state;
	char err[512], text[600];

	snprintf(text, sizeof(text), "[k1]\nsender = %0300d\n", 7);
	assert_null(load_text(fx, err, sizeof(err), text));
	assert_non_null(strstr(err, ":2: line longer than"));

	assert_null(keyring_load("/nonexistent/keys.ini", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/keys.ini: No such file or directory");
}

static void test_too_many_keys(void **state)
{
	struct fx *fx = *state;
	size_t n = KEYRING_MAX_KEYS + 1, cap = n * 200;
	char *text = malloc(cap), err[512];
	size_t off = 0;

	for (size_t i = 0; i < n; i++)
		off += (size_t)snprintf(text + off, cap - off,
					"[k%zu]\nsender = s\nalgorithm = ed25519\n"
					"public_key = %%1$s\n" TAIL, i);
	assert_null(load_text(fx, err, sizeof(err), text));
	assert_non_null(strstr(err, "more than 4096 keys"));
	free(text);
}

static void test_parse_time(void **state)
{
	int64_t t;

	assert_int_equal(keyring_parse_time("1970-01-01T00:00:00Z", &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(keyring_parse_time("2026-11-29T08:00:00+08:00", &t), 0);
	assert_int_equal(t, 1795910400);
	assert_int_equal(keyring_parse_time("2026-11-29T00:00:00-00:00", &t), 0);
	assert_int_equal(t, 1795910400);
	assert_int_equal(keyring_parse_time("2026-11-29t00:00:00.123z", &t), 0);
	assert_int_equal(t, 1795910400);
	assert_int_equal(keyring_parse_time("2026-11-28T19:30:00-04:30", &t), 0);
	assert_int_equal(t, 1795910400);
	assert_int_equal(keyring_parse_time("2024-02-29T00:00:00Z", &t), 0);

	static const char *const bad[] = {
		"",
		"2026-11-29",
		"2026-11-29T08:00:00",	 /* no offset */
		"2026-11-29T08:00:00+8:00",
		"2026-11-29T24:00:00Z",
		"2026-02-30T00:00:00Z",
		"2025-02-29T00:00:00Z",
		"2026-11-29T08:00:00Zjunk",
		"2026-11-29T08:00:00.Z",
		"26-11-29T08:00:00Z",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (keyring_parse_time(bad[i], &t) == 0)
			fail_msg("accepted '%s'", bad[i]);
	assert_int_equal(keyring_parse_time(NULL, &t), -1);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_line_and_missing_file),
		cmocka_unit_test(test_too_many_keys),
		cmocka_unit_test(test_parse_time),
	};
	return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
