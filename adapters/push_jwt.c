/*
 * adapters/push_jwt.c: ES256 JWT for APNs token auth (see push_jwt.h).
 *
 * OpenSSL produces a DER ECDSA-Sig-Value; JWS wants the raw r‖s, each
 * left-padded to 32 bytes, then base64url without padding.
 */
#include "push_jwt.h"

#include <stdio.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>

int push_b64url(const uint8_t *in, size_t len, char *out, size_t cap)
{
	size_t need = 4 * ((len + 2) / 3) + 1;
	if (need > cap || len > 0x3fffffff)
		return -1;
	int n = EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = 0;
	for (int i = 0; i < n; i++)
		out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return n;
}

/* DER ECDSA signature → raw r‖s (64 bytes). */
static int der_to_raw(const uint8_t *der, size_t len, uint8_t raw[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
	if (!sig)
		return -1;
	const BIGNUM *r, *s;
	ECDSA_SIG_get0(sig, &r, &s);
	int ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
	ECDSA_SIG_free(sig);
	return ok ? 0 : -1;
}

static int sign_input(EVP_PKEY *key, const char *in, size_t len, uint8_t raw[64])
{
	uint8_t der[80];
	size_t derlen = sizeof(der);
	int ret = -1;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		return -1;
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(md, der, &derlen, (const unsigned char *)in, len) == 1)
		ret = der_to_raw(der, derlen, raw);
	EVP_MD_CTX_free(md);
	return ret;
}

int push_jwt_sign(EVP_PKEY *key, const char *kid, const char *iss, int64_t iat, char *out,
		  size_t cap)
{
	char hdr[96], claims[96];
	int hn = snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
	int cn = snprintf(claims, sizeof(claims), "{\"iss\":\"%s\",\"iat\":%lld}", iss,
			  (long long)iat);
	if (hn < 0 || cn < 0 || (size_t)hn >= sizeof(hdr) || (size_t)cn >= sizeof(claims))
		return -1;
	int a = push_b64url((const uint8_t *)hdr, (size_t)hn, out, cap);
	if (a < 0 || (size_t)a + 2 >= cap)
		return -1;
	out[a] = '.';
	int b = push_b64url((const uint8_t *)claims, (size_t)cn, out + a + 1, cap - (size_t)a - 1);
	if (b < 0)
		return -1;
	size_t signed_len = (size_t)a + 1 + (size_t)b;
	uint8_t raw[64];
	if (signed_len + 2 >= cap || sign_input(key, out, signed_len, raw) < 0)
		return -1;
	out[signed_len] = '.';
	int c = push_b64url(raw, sizeof(raw), out + signed_len + 1, cap - signed_len - 1);
	return c < 0 ? -1 : (int)(signed_len + 1 + (size_t)c);
}

int push_jwt_init(struct push_jwt *j, const char *key_file, const char *kid, const char *iss,
		  int64_t refresh_s, char *err, size_t errlen)
{
	memset(j, 0, sizeof(*j));
	if (strlen(kid) >= sizeof(j->kid) || strlen(iss) >= sizeof(j->iss) || !kid[0] || !iss[0]) {
		snprintf(err, errlen, "key_id and team_id must be 1..31 characters");
		return -1;
	}
	FILE *f = fopen(key_file, "r");
	if (!f) {
		snprintf(err, errlen, "key_file: cannot open %s", key_file);
		return -1;
	}
	j->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!j->key || EVP_PKEY_get_base_id(j->key) != EVP_PKEY_EC || EVP_PKEY_get_bits(j->key) != 256) {
		snprintf(err, errlen, "key_file: %s is not a P-256 private key (PKCS#8 PEM)", key_file);
		EVP_PKEY_free(j->key);
		j->key = NULL;
		return -1;
	}
	snprintf(j->kid, sizeof(j->kid), "%s", kid);
	snprintf(j->iss, sizeof(j->iss), "%s", iss);
	j->refresh_s = refresh_s < PUSH_JWT_MIN_AGE_S ? PUSH_JWT_MIN_AGE_S
		       : refresh_s > PUSH_JWT_MAX_AGE_S ? PUSH_JWT_MAX_AGE_S : refresh_s;
	return 0;
}

void push_jwt_release(struct push_jwt *j)
{
	EVP_PKEY_free(j->key);
	j->key = NULL;
}

static const char *resign(struct push_jwt *j, int64_t now)
{
	if (push_jwt_sign(j->key, j->kid, j->iss, now, j->token, sizeof(j->token)) < 0) {
		j->iat = 0;
		return NULL;
	}
	j->iat = now;
	j->gen++;
	return j->token;
}

const char *push_jwt_get(struct push_jwt *j, int64_t now)
{
	if (j->iat == 0 || now - j->iat >= j->refresh_s)
		return resign(j, now);
	return j->token;
}

bool push_jwt_expired(struct push_jwt *j, unsigned gen, int64_t now)
{
	if (gen != j->gen)
		return true; /* already replaced since that request left */
	if (now - j->iat < PUSH_JWT_MIN_AGE_S)
		return false; /* too young to replace: APNs would answer 429 */
	return resign(j, now) != NULL;
}
