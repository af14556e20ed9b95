/*
 * engine/admit.h: the admission rules, as one pure decision.
 *
 * admit_check() takes the request body, the keyring and the clock, and
 * decides in this order (each step only runs when the previous passed):
 *
 *   size cap -> envelope decode -> key lookup -> signature over the exact
 *   payload bytes -> key revoked / outside its validity window -> payload
 *   decode -> validation (required fields, enums, expiry, sent window) ->
 *   sender matches the key -> status and targets within the key's scope
 *
 * Idempotency and the journal write need Redis and happen afterwards
 * (api.c, journal.c). No I/O here, so every rule is unit-tested alone.
 */
#ifndef TOCSIN_ADMIT_H
#define TOCSIN_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include "keyring.h"
#include "warning_codec.h"

struct admit_result {
	int status;          /* 0 = admissible; else the HTTP status to answer */
	const char *error;   /* machine-readable code: "bad_signature", ... */
	char field[64];      /* the offending field, "" when none */
	char reason[256];    /* for people */
	Tocsin__Warning *warning;       /* in the caller's arena, when admissible */
	const char *key_id;             /* in the caller's arena */
	char digest_hex[65]; /* SHA-256 of the payload bytes */
};

void admit_check(const struct keyring *kr, const uint8_t *body, size_t len, int64_t now,
		 int64_t sent_window, struct warning_arena *arena, struct admit_result *res);

/* A JSON object describing the warning for the status API (malloc'd), or NULL. */
char *admit_summary_json(const Tocsin__Warning *w, const char *key_id);

#endif
