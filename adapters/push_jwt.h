/*
 * adapters/push_jwt.h: the APNs provider token (ES256 JWT), one per lane,
 * shared by the lane's connections.
 *
 * Policy (Apple: refresh no more often than every 20 minutes and no less
 * than every 60; tokens older than an hour are refused): the token is
 * re-signed when it is older than refresh_s (clamped to 20..55 minutes),
 * and on a 403 ExpiredProviderToken only if the rejected token is still
 * the current one and at least 20 minutes old. A younger token is never
 * replaced: APNs would answer 429 TooManyProviderTokenUpdates.
 *
 * The key is parsed once at init (never per request).
 */
#ifndef TOCSIN_PUSH_JWT_H
#define TOCSIN_PUSH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#define PUSH_JWT_MIN_AGE_S 1200
#define PUSH_JWT_MAX_AGE_S 3300
#define PUSH_JWT_MAX 512

struct push_jwt {
	EVP_PKEY *key;
	char kid[32], iss[32];
	char token[PUSH_JWT_MAX];
	int64_t iat;       /* 0: none signed yet */
	unsigned gen;      /* bumped at each new token */
	int64_t refresh_s;
};

/* Load an ES256 (P-256) PKCS#8 PEM key. -1 + err naming the file. */
int push_jwt_init(struct push_jwt *j, const char *key_file, const char *kid, const char *iss,
		  int64_t refresh_s, char *err, size_t errlen);
void push_jwt_release(struct push_jwt *j);

/* The current token (re-signed when due); NULL if signing failed. Valid until the next call. */
const char *push_jwt_get(struct push_jwt *j, int64_t now);

/* APNs said token `gen` expired: true when retrying makes sense (a newer token now exists). */
bool push_jwt_expired(struct push_jwt *j, unsigned gen, int64_t now);

/* Sign header {alg:ES256,kid} . claims {iss,iat} into out. Length or -1. */
int push_jwt_sign(EVP_PKEY *key, const char *kid, const char *iss, int64_t iat, char *out,
		  size_t cap);

/* base64url without padding. Length written (out gets a NUL) or -1 when cap is short. */
int push_b64url(const uint8_t *in, size_t len, char *out, size_t cap);

#endif
