/*
 * engine/sig.h: signatures over warning payloads (Ed25519, SM2 with SM3).
 *
 * Keys are parsed once (at start-up, on SIGHUP, or once per CLI run) and
 * the EVP_PKEY is shared read-only afterwards; OpenSSL 3 allows concurrent
 * verifies with one EVP_PKEY from several threads. Never parse PEM per
 * request.
 *
 * Formats:
 *  - public keys travel as base64 of DER SubjectPublicKeyInfo (one line, fits
 *    an INI value); private keys as PKCS#8 PEM files.
 *  - ed25519 signatures: 64 raw bytes (pure Ed25519, one-shot).
 *  - sm2-sm3 signatures: DER ECDSA-style (r, s), SM3 digest, distinguishing
 *    id "1234567812345678" (GB/T 32918.2 default).
 */
#ifndef TOCSIN_SIG_H
#define TOCSIN_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

enum sig_alg {
	SIG_NONE = 0,
	SIG_ED25519 = 1,
	SIG_SM2_SM3 = 2,
};

#define SIG_SM2_DEFAULT_ID "1234567812345678"

/* "ed25519" / "sm2-sm3"; sig_alg_parse returns SIG_NONE for anything else. */
const char *sig_alg_name(enum sig_alg alg);
enum sig_alg sig_alg_parse(const char *name);

/*
 * Parse a base64 DER SubjectPublicKeyInfo. Returns NULL and writes a
 * readable reason into err when it is not valid base64, not a key, or not
 * a key of `alg`.
 */
EVP_PKEY *sig_pubkey_from_b64(enum sig_alg alg, const char *b64, char *err, size_t errlen);

/* Base64 DER SubjectPublicKeyInfo of a key (malloc'd string), or NULL. */
char *sig_pubkey_to_b64(EVP_PKEY *key);

/* Load a PKCS#8 PEM private key; *alg is set from its type. NULL + err on failure. */
EVP_PKEY *sig_privkey_load(const char *path, enum sig_alg *alg, char *err, size_t errlen);

/* Generate a new key pair of `alg`. NULL on failure. */
EVP_PKEY *sig_keygen(enum sig_alg alg);

/* True when `sig` is a valid signature by `key` over exactly msg[0..len). */
bool sig_verify(EVP_PKEY *key, enum sig_alg alg, const uint8_t *msg, size_t len,
		const uint8_t *sig, size_t siglen);

/* Sign msg; *sig is malloc'd. Returns 0, or -1 on failure. */
int sig_sign(EVP_PKEY *key, enum sig_alg alg, const uint8_t *msg, size_t len, uint8_t **sig,
	     size_t *siglen);

#endif
