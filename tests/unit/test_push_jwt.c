/*
 * tests/unit/test_push_jwt.c: the APNs ES256 JWT (adapters/push_jwt.c,
 * compiled in here: unit tests link the engine only).
 *
 * The token is decoded here and its signature verified with OpenSSL over
 * header.payload, after turning the raw r||s back into DER; then the
 * refresh policy: re-signed only when due, never within 20 minutes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/ec.h>

#include "../../adapters/push_jwt.c"

static int b64url_decode(const char *in, size_t len, uint8_t *out)
{
	char tmp[1024] = "";
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		tmp[n++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (n % 4)
		tmp[n++] = '=';
	int r = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)n);
	return r - (int)(len % 4 == 2 ? 2 : len % 4 == 3 ? 1 : 0);
}

static const char *write_key(EVP_PKEY **out, char path[32])
{
	snprintf(path, 32, "/tmp/test_push_jwt.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	EVP_PKEY *k = EVP_EC_gen("P-256");
	FILE *f = fdopen(fd, "w");
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	*out = k;
	return path;
}

static void verify_jwt(EVP_PKEY *pub, const char *jwt, int64_t want_iat)
{
	const char *d1 = strchr(jwt, '.'), *d2 = strrchr(jwt, '.');
	assert_non_null(d1);
	assert_true(d2 > d1);
	uint8_t hdr[256] = {0}, claims[256] = {0}, raw[80];
	b64url_decode(jwt, (size_t)(d1 - jwt), hdr);
	b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), claims);
	assert_string_equal((char *)hdr, "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}");
	char want[128];
	snprintf(want, sizeof(want), "{\"iss\":\"TEAM456789\",\"iat\":%lld}", (long long)want_iat);
	assert_string_equal((char *)claims, want);
	assert_null(strchr(jwt, '='));
	assert_int_equal(b64url_decode(d2 + 1, strlen(d2 + 1), raw), 64);
	ECDSA_SIG *sig = ECDSA_SIG_new();
	ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
	unsigned char der[80], *p = der;
	int dlen = i2d_ECDSA_SIG(sig, &p);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub), 1);
	assert_int_equal(EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)jwt,
					  (size_t)(d2 - jwt)), 1);
	EVP_MD_CTX_free(md);
}

static void test_sign_and_verify(void **state)
{
	EVP_PKEY *k;
	char buf[32];
	const char *path = write_key(&k, buf);
	struct push_jwt j;
	char err[256];
	assert_int_equal(push_jwt_init(&j, path, "ABC123DEFG", "TEAM456789", 3000, err, sizeof(err)), 0);
	for (int i = 0; i < 20; i++) { /* r or s with leading zero bytes must still be 32 bytes */
		char tok[PUSH_JWT_MAX];
		assert_true(push_jwt_sign(j.key, j.kid, j.iss, 1700000000 + i, tok, sizeof(tok)) > 0);
		verify_jwt(k, tok, 1700000000 + i);
	}
	push_jwt_release(&j);
	EVP_PKEY_free(k);
	unlink(path);
}

static void test_refresh_policy(void **state)
{
	EVP_PKEY *k;
	char buf[32];
	const char *path = write_key(&k, buf);
	struct push_jwt j;
	char err[256];
	assert_int_equal(push_jwt_init(&j, path, "ABC123DEFG", "TEAM456789", 60, err, sizeof(err)), 0);
	assert_int_equal(j.refresh_s, PUSH_JWT_MIN_AGE_S); /* clamped: never under 20 min */
	int64_t t0 = 1700000000;
	char first[PUSH_JWT_MAX];
	snprintf(first, sizeof(first), "%s", push_jwt_get(&j, t0));
	unsigned gen = j.gen;
	verify_jwt(k, first, t0);
	assert_string_equal(push_jwt_get(&j, t0 + 1199), first); /* 19:59 later: same token */
	assert_false(push_jwt_expired(&j, gen, t0 + 600));        /* Expired at 10 min: no re-sign */
	assert_int_equal(j.gen, gen);
	assert_true(push_jwt_expired(&j, gen, t0 + 1300));        /* at 21:40: re-signed once */
	assert_int_equal(j.gen, gen + 1);
	assert_int_equal(j.iat, t0 + 1300);
	assert_true(push_jwt_expired(&j, gen, t0 + 1301));        /* stale gen: retry, no re-sign */
	assert_int_equal(j.gen, gen + 1);
	verify_jwt(k, push_jwt_get(&j, t0 + 1400), t0 + 1300);
	assert_int_equal(j.gen, gen + 1);
	push_jwt_get(&j, t0 + 1300 + PUSH_JWT_MIN_AGE_S);         /* due: re-signed */
	assert_int_equal(j.gen, gen + 2);
	push_jwt_release(&j);
	assert_int_equal(push_jwt_init(&j, path, "ABC", "TEAM", 99999, err, sizeof(err)), 0);
	assert_int_equal(j.refresh_s, PUSH_JWT_MAX_AGE_S);        /* never past 55 min */
	push_jwt_release(&j);
	EVP_PKEY_free(k);
	unlink(path);
}

static void test_bad_key(void **state)
{
	struct push_jwt j;
	char err[256];
	assert_int_equal(push_jwt_init(&j, "/nonexistent.p8", "K", "T", 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent.p8"));
}

static void test_b64url(void **state)
{
	char out[16];
	assert_int_equal(push_b64url((const uint8_t *)"\xfb\xff", 2, out, sizeof(out)), 3);
	assert_string_equal(out, "-_8");
	assert_int_equal(push_b64url((const uint8_t *)"abcdefghijklmnop", 16, out, sizeof(out)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sign_and_verify),
		cmocka_unit_test(test_refresh_policy),
		cmocka_unit_test(test_bad_key),
		cmocka_unit_test(test_b64url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
