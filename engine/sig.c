/*
 * engine/sig.c: Ed25519 and SM2-with-SM3 signatures over payload bytes.
 *
 * Invariants:
 *  - No global mutable state: every call owns its EVP_MD_CTX; the EVP_PKEY
 *    is only read, so one key may be shared by several threads.
 *  - A key is only ever used with the algorithm it was checked against:
 *    sig_verify/sig_sign refuse a key whose type does not match `alg`.
 *  - Ed25519 is one-shot (EVP_DigestSign/EVP_DigestVerify over the whole
 *    message); SM2 uses SM3 and the distinguishing id SIG_SM2_DEFAULT_ID,
 *    set on the signature context after init and before any data, which
 *    is when OpenSSL 3 computes the Z digest.
 *
 * Caveat: OpenSSL 3.0 resolves the signature method by name inside each
 * Init call; its method store caches the fetch, so this costs a lookup, not
 * a provider load. The expensive part (parsing the key) is done once by the
 * caller.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "sig.h"

/* Large enough for any SPKI we accept (Ed25519: 44 bytes, SM2: 91). */
#define SIG_MAX_B64 1024

const char *sig_alg_name(enum sig_alg alg)
{
	switch (alg) {
	case SIG_ED25519:
		return "ed25519";
	case SIG_SM2_SM3:
		return "sm2-sm3";
	default:
		return "none";
	}
}

enum sig_alg sig_alg_parse(const char *name)
{
	if (name == NULL)
		return SIG_NONE;
	if (strcasecmp(name, "ed25519") == 0)
		return SIG_ED25519;
	if (strcasecmp(name, "sm2-sm3") == 0)
		return SIG_SM2_SM3;
	return SIG_NONE;
}

/* The OpenSSL key type that carries `alg`, or SIG_NONE if none does. */
static enum sig_alg sig_alg_of_key(const EVP_PKEY *key)
{
	if (key == NULL)
		return SIG_NONE;
	if (EVP_PKEY_is_a(key, "ED25519"))
		return SIG_ED25519;
	if (EVP_PKEY_is_a(key, "SM2"))
		return SIG_SM2_SM3;
	return SIG_NONE;
}

/* Strict base64 decode (padding required). Returns length, or -1. */
static int sig_b64_decode(const char *b64, uint8_t *out, size_t outcap)
{
	size_t n = strlen(b64);

	while (n > 0 && (b64[n - 1] == ' ' || b64[n - 1] == '\t' || b64[n - 1] == '\n' ||
			 b64[n - 1] == '\r'))
		n--;
	if (n == 0 || n % 4 != 0 || n / 4 * 3 > outcap || n > SIG_MAX_B64)
		return -1;
	int len = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
	if (len < 0)
		return -1;
	/* EVP_DecodeBlock counts the bytes behind '=' padding as zeros. */
	if (b64[n - 1] == '=')
		len--;
	if (b64[n - 2] == '=')
		len--;
	return len;
}

EVP_PKEY *sig_pubkey_from_b64(enum sig_alg alg, const char *b64, char *err, size_t errlen)
{
	uint8_t der[SIG_MAX_B64];

	if (alg != SIG_ED25519 && alg != SIG_SM2_SM3) {
		snprintf(err, errlen, "unknown algorithm");
		return NULL;
	}
	int len = sig_b64_decode(b64, der, sizeof(der));
	if (len <= 0) {
		snprintf(err, errlen, "public key is not valid base64");
		return NULL;
	}
	const unsigned char *p = der;
	EVP_PKEY *key = d2i_PUBKEY(NULL, &p, len);
	ERR_clear_error();
	if (key == NULL || p != der + len) {
		EVP_PKEY_free(key);
		snprintf(err, errlen, "public key is not a DER SubjectPublicKeyInfo");
		return NULL;
	}
	enum sig_alg got = sig_alg_of_key(key);
	if (got != alg) {
		snprintf(err, errlen, "public key is %s, not %s",
			 got == SIG_NONE ? "of another type" : sig_alg_name(got), sig_alg_name(alg));
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

char *sig_pubkey_to_b64(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(key, &der);

	if (len <= 0)
		return NULL;
	char *b64 = malloc(((size_t)len + 2) / 3 * 4 + 1);
	if (b64 != NULL)
		EVP_EncodeBlock((unsigned char *)b64, der, len);
	OPENSSL_free(der);
	return b64;
}

EVP_PKEY *sig_privkey_load(const char *path, enum sig_alg *alg, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		snprintf(err, errlen, "%s: %m", path);
		return NULL;
	}
	EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	if (key == NULL) {
		snprintf(err, errlen, "%s: not a PEM private key", path);
		return NULL;
	}
	*alg = sig_alg_of_key(key);
	if (*alg == SIG_NONE) {
		snprintf(err, errlen, "%s: key is neither ed25519 nor sm2", path);
		EVP_PKEY_free(key);
		return NULL;
	}
	return key;
}

EVP_PKEY *sig_keygen(enum sig_alg alg)
{
	switch (alg) {
	case SIG_ED25519:
		return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	case SIG_SM2_SM3:
		return EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
	default:
		return NULL;
	}
}

/*
 * Prepare ctx for signing (sign=true) or verifying with key under alg.
 * Returns 0, or -1 (also when the key does not match alg).
 */
static int sig_ctx_init(EVP_MD_CTX *ctx, EVP_PKEY *key, enum sig_alg alg, bool sign)
{
	EVP_PKEY_CTX *pctx = NULL;
	const char *md = alg == SIG_SM2_SM3 ? "SM3" : NULL;
	int ok;

	if (alg == SIG_NONE || sig_alg_of_key(key) != alg)
		return -1;
	if (sign)
		ok = EVP_DigestSignInit_ex(ctx, &pctx, md, NULL, NULL, key, NULL);
	else
		ok = EVP_DigestVerifyInit_ex(ctx, &pctx, md, NULL, NULL, key, NULL);
	if (ok != 1)
		return -1;
	if (alg == SIG_SM2_SM3 &&
	    EVP_PKEY_CTX_set1_id(pctx, SIG_SM2_DEFAULT_ID, strlen(SIG_SM2_DEFAULT_ID)) != 1)
		return -1;
	return 0;
}

bool sig_verify(EVP_PKEY *key, enum sig_alg alg, const uint8_t *msg, size_t len,
		const uint8_t *sig, size_t siglen)
{
	bool ok = false;
	EVP_MD_CTX *ctx;

	if (key == NULL || sig == NULL || siglen == 0)
		return false;
	if (alg == SIG_ED25519 && siglen != 64)
		return false;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL)
		return false;
	if (sig_ctx_init(ctx, key, alg, false) == 0)
		ok = EVP_DigestVerify(ctx, sig, siglen, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

int sig_sign(EVP_PKEY *key, enum sig_alg alg, const uint8_t *msg, size_t len, uint8_t **sig,
	     size_t *siglen)
{
	int rc = -1;
	size_t cap = 0;
	uint8_t *buf = NULL;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL)
		return -1;
	if (sig_ctx_init(ctx, key, alg, true) != 0)
		goto out_free_ctx;
	/* One-shot for both: Ed25519 requires it, SM2 accepts it. */
	if (EVP_DigestSign(ctx, NULL, &cap, msg, len) != 1)
		goto out_free_ctx;
	buf = malloc(cap);
	if (buf == NULL)
		goto out_free_ctx;
	if (EVP_DigestSign(ctx, buf, &cap, msg, len) != 1) {
		free(buf);
		goto out_free_ctx;
	}
	*sig = buf;
	*siglen = cap;
	rc = 0;
out_free_ctx:
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}
