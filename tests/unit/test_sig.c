/*
 * tests/unit/test_sig.c: engine/sig.c — sign/verify for both algorithms,
 * tampering, algorithm confusion, key encodings and bad base64.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "sig.h"

static const uint8_t msg[] = "tocsin: typhoon red warning, Gulou district";

static void sign_verify_roundtrip(enum sig_alg alg)
{
	EVP_PKEY *key = sig_keygen(alg);
	uint8_t *sig, tampered[sizeof(msg)];
	size_t siglen;

	assert_non_null(key);
	assert_int_equal(sig_sign(key, alg, msg, sizeof(msg), &sig, &siglen), 0);
	if (alg == SIG_ED25519)
		assert_int_equal(siglen, 64);
	assert_true(sig_verify(key, alg, msg, sizeof(msg), sig, siglen));

	/* Verify with the public half only, as the server does. */
	char err[128], *b64 = sig_pubkey_to_b64(key);
	assert_non_null(b64);
	EVP_PKEY *pub = sig_pubkey_from_b64(alg, b64, err, sizeof(err));
	assert_non_null(pub);
	assert_true(sig_verify(pub, alg, msg, sizeof(msg), sig, siglen));

	memcpy(tampered, msg, sizeof(msg));
	tampered[3] ^= 1;
	assert_false(sig_verify(pub, alg, tampered, sizeof(msg), sig, siglen));
	assert_false(sig_verify(pub, alg, msg, sizeof(msg) - 1, sig, siglen));
	sig[siglen / 2] ^= 0x40;
	assert_false(sig_verify(pub, alg, msg, sizeof(msg), sig, siglen));
	sig[siglen / 2] ^= 0x40;
	assert_false(sig_verify(pub, alg, msg, sizeof(msg), sig, siglen - 1));
	assert_false(sig_verify(pub, alg, msg, sizeof(msg), NULL, 0));

	/* A different key of the same algorithm does not verify. */
	EVP_PKEY *other = sig_keygen(alg);
	assert_false(sig_verify(other, alg, msg, sizeof(msg), sig, siglen));

	EVP_PKEY_free(other);
	EVP_PKEY_free(pub);
	free(b64);
	free(sig);
	EVP_PKEY_free(key);
}

static void test_ed25519(void **state)
{
	sign_verify_roundtrip(SIG_ED25519);
}

static void test_sm2_sm3(void **state)
{
	sign_verify_roundtrip(SIG_SM2_SM3);
}

static void test_wrong_alg(void **state)
{
	EVP_PKEY *ed = sig_keygen(SIG_ED25519), *sm2 = sig_keygen(SIG_SM2_SM3);
	char err[128], *ed_b64 = sig_pubkey_to_b64(ed), *sm2_b64 = sig_pubkey_to_b64(sm2);
	uint8_t *sig;
	size_t siglen;

	assert_null(sig_pubkey_from_b64(SIG_SM2_SM3, ed_b64, err, sizeof(err)));
	assert_non_null(strstr(err, "ed25519"));
	assert_null(sig_pubkey_from_b64(SIG_ED25519, sm2_b64, err, sizeof(err)));
	assert_non_null(strstr(err, "sm2-sm3"));
	assert_null(sig_pubkey_from_b64(SIG_NONE, ed_b64, err, sizeof(err)));

	/* Signing or verifying with a key of the other type is refused. */
	assert_int_equal(sig_sign(ed, SIG_SM2_SM3, msg, sizeof(msg), &sig, &siglen), -1);
	assert_int_equal(sig_sign(ed, SIG_ED25519, msg, sizeof(msg), &sig, &siglen), 0);
	assert_false(sig_verify(ed, SIG_SM2_SM3, msg, sizeof(msg), sig, siglen));
	assert_false(sig_verify(sm2, SIG_ED25519, msg, sizeof(msg), sig, siglen));
	free(sig);

	/* An RSA key is neither. */
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	assert_non_null(rsa);
	char *rsa_b64 = sig_pubkey_to_b64(rsa);
	assert_null(sig_pubkey_from_b64(SIG_ED25519, rsa_b64, err, sizeof(err)));
	assert_non_null(strstr(err, "another type"));
	free(rsa_b64);
	EVP_PKEY_free(rsa);

	free(ed_b64);
	free(sm2_b64);
	EVP_PKEY_free(ed);
	EVP_PKEY_free(sm2);
}

static void test_bad_base64(void **state)
{
	static const char *const bad[] = {
		"",		  "!!!!",	 "abc", /* not a multiple of 4 */
		"AAAA",		  /* valid base64, not a key */
		"MCowBQYDK2VwAyEA", /* a truncated Ed25519 SPKI */
		"MCowBQYDK2VwAyEA====AAAA",
	};
	char err[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_null(sig_pubkey_from_b64(SIG_ED25519, bad[i], err, sizeof(err)));
		assert_true(strlen(err) > 0);
	}
	assert_null(sig_pubkey_from_b64(SIG_ED25519, "!!!!", err, sizeof(err)));
	assert_string_equal(err, "public key is not valid base64");

	/* Trailing bytes after a valid SPKI are rejected too. */
	EVP_PKEY *ed = sig_keygen(SIG_ED25519);
	char *b64 = sig_pubkey_to_b64(ed), padded[128];
	assert_int_equal(strlen(b64), 60); /* 44 DER bytes, '=' padded */
	snprintf(padded, sizeof(padded), "%.56sAAAAAA==", b64);
	assert_null(sig_pubkey_from_b64(SIG_ED25519, padded, err, sizeof(err)));
	/* A trailing newline (as a file line might have) is fine. */
	snprintf(padded, sizeof(padded), "%s\n", b64);
	EVP_PKEY *k = sig_pubkey_from_b64(SIG_ED25519, padded, err, sizeof(err));
	assert_non_null(k);
	EVP_PKEY_free(k);
	free(b64);
	EVP_PKEY_free(ed);
}

static void test_privkey_load(void **state)
{
	char path[] = "/tmp/test_sig_XXXXXX", err[256];
	enum sig_alg algs[] = { SIG_ED25519, SIG_SM2_SM3 }, got;

	for (size_t i = 0; i < 2; i++) {
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		FILE *f = fdopen(fd, "w");
		EVP_PKEY *key = sig_keygen(algs[i]);
		assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
		fclose(f);
		EVP_PKEY *loaded = sig_privkey_load(path, &got, err, sizeof(err));
		assert_non_null(loaded);
		assert_int_equal(got, algs[i]);
		assert_int_equal(EVP_PKEY_eq(key, loaded), 1);
		EVP_PKEY_free(loaded);
		EVP_PKEY_free(key);
		unlink(path);
		memcpy(path + strlen(path) - 6, "XXXXXX", 6);
	}
	assert_null(sig_privkey_load("/nonexistent/k.key", &got, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/k.key"));
}

static void test_alg_names(void **state)
{
	assert_int_equal(sig_alg_parse("ed25519"), SIG_ED25519);
	assert_int_equal(sig_alg_parse("SM2-SM3"), SIG_SM2_SM3);
	assert_int_equal(sig_alg_parse("rsa"), SIG_NONE);
	assert_int_equal(sig_alg_parse(NULL), SIG_NONE);
	assert_string_equal(sig_alg_name(SIG_ED25519), "ed25519");
	assert_string_equal(sig_alg_name(SIG_SM2_SM3), "sm2-sm3");
	assert_null(sig_keygen(SIG_NONE));
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ed25519),	    cmocka_unit_test(test_sm2_sm3),
		cmocka_unit_test(test_wrong_alg),   cmocka_unit_test(test_bad_base64),
		cmocka_unit_test(test_privkey_load), cmocka_unit_test(test_alg_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
