/*
 * engine/keyring.h: who may sign warnings, and what they may target.
 *
 * The keyring is an INI file (ops/keyring.example.ini documents it), one
 * section per key:
 *
 *   [met-fuzhou-2026]                  ; section name = key id
 *   sender     = met.fuzhou.gov.cn     ; must equal Warning.sender
 *   algorithm  = ed25519               ; or sm2-sm3
 *   public_key = MCowBQYDK2VwAyEA...   ; base64 DER SubjectPublicKeyInfo
 *   not_before = 2026-01-01T00:00:00+08:00   ; optional (RFC 3339 / CAP time)
 *   not_after  = 2027-01-01T00:00:00+08:00   ; optional
 *   revoked    = false
 *   segments   = 350102, 350103        ; segment id prefixes the key may target
 *   statuses   = Actual, Exercise, Test ; statuses the key may use
 *
 * A loaded keyring is immutable and reference-counted: the server swaps in
 * a new one on SIGHUP while requests holding the old one finish with it.
 * Thread-safe: keyring_ref/unref use atomics; lookups only read.
 */
#ifndef TOCSIN_KEYRING_H
#define TOCSIN_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig.h"

#define KEYRING_MAX_KEYS 4096
#define KEYRING_MAX_SCOPE 256

struct keyring_key {
	char *id;
	char *sender;
	enum sig_alg alg;
	EVP_PKEY *pkey;
	int64_t not_before; /* 0: no lower bound */
	int64_t not_after;  /* 0: no upper bound */
	bool revoked;
	char **segments;    /* scope: segment id prefixes */
	size_t n_segments;
	uint32_t statuses;  /* bit (1u << Tocsin__Status) per allowed status */
};

struct keyring;

/*
 * Load and check a keyring file. On failure returns NULL and writes
 * "FILE:LINE: key 'ID': reason" (or "FILE: reason") into err.
 * Every key must have sender, algorithm, public_key, segments and statuses.
 */
struct keyring *keyring_load(const char *path, char *err, size_t errlen);

void keyring_ref(struct keyring *kr);
void keyring_unref(struct keyring *kr);   /* frees on the last reference */

size_t keyring_size(const struct keyring *kr);
const struct keyring_key *keyring_find(const struct keyring *kr, const char *id);

/* Inside [not_before, not_after] at `now` (seconds since the epoch). */
bool keyring_key_current(const struct keyring_key *k, int64_t now);
/* `segment` starts with one of the key's segment prefixes. */
bool keyring_allows_segment(const struct keyring_key *k, const char *segment);
/* `status` (a Tocsin__Status value) is among the key's statuses. */
bool keyring_allows_status(const struct keyring_key *k, int status);

/*
 * Parse an RFC 3339 / CAP timestamp ("2026-11-29T08:00:00+08:00",
 * "...-00:00", "...Z") into seconds since the epoch. Returns 0 on success.
 */
int keyring_parse_time(const char *s, int64_t *out);

#endif
