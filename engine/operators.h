/*
 * engine/operators.h: operator credentials for the read-only operator
 * views (dashboard, /v1/events, /v1/status, GET /v1/warnings/{id},
 * /metrics), and the small header parsers they need.
 *
 * The tokens file has one operator per line, "NAME TOKEN" (whitespace
 * between; '#' starts a comment). Tokens are compared in constant time:
 * each candidate and each stored token are hashed (SHA-256) and every
 * stored digest is compared with CRYPTO_memcmp, with no early exit, so
 * neither a token's content nor its length leaks through timing.
 *
 * Pure apart from operators_load() reading its file; immutable after
 * loading, so every worker thread reads it without locks.
 */
#ifndef TOCSIN_OPERATORS_H
#define TOCSIN_OPERATORS_H

#include <stdbool.h>
#include <stddef.h>

#define OPERATORS_MAX 64   /* conn.h keeps one "seen" bit per token */
#define OPERATORS_COOKIE "tocsin_op"

struct operators;

/* Load FILE; NULL + err ("FILE:LINE: reason") when unreadable, malformed or empty. */
struct operators *operators_load(const char *path, char *err, size_t errlen);
void operators_free(struct operators *ops);
size_t operators_count(const struct operators *ops);

/* Index of the operator whose token is tok[0..len), or -1. Constant time. */
int operators_match(const struct operators *ops, const char *tok, size_t len);
const char *operators_name(const struct operators *ops, int index);

/* "Bearer T" (scheme case-insensitive): true with the token span. */
bool operators_bearer(const char *authorization, const char **tok, size_t *len);
/* The value of cookie `name` in a Cookie header ("a=1; b=2"): true with its span. */
bool operators_cookie(const char *header, const char *name, const char **val, size_t *len);
/*
 * The %-decoded value of query parameter `name` in a request target
 * ("/path?a=1&token=x"): true when present and it fits in out[cap].
 */
bool operators_query(const char *target, const char *name, char *out, size_t cap);

#endif
