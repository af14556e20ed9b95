/*
 * engine/config.h: tocsind's configuration (an INI file, ops/tocsind.example.ini).
 *
 * Loaded once at start-up by config_load(); a few keys can be overridden by
 * command-line flags afterwards. Immutable once the threads start.
 */
#ifndef TOCSIN_CONFIG_H
#define TOCSIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config {
	/* [server] */
	char listen[256];          /* "HOST:PORT" */
	int threads;               /* loop threads; 0 = one per CPU */
	size_t max_body;           /* bytes; POST bodies above it get 413 */
	int idle_timeout_ms;       /* idle client connections are closed */
	int max_connections;       /* per thread */
	char tls_cert[512];        /* PEM chain; empty = no TLS */
	char tls_key[512];
	bool plaintext;            /* with TLS configured, also accept h2c / HTTP/1.1 */
	/* [admission] */
	int queue;                 /* pending journal writes per thread before 429 */
	int64_t sent_window_s;     /* |Warning.sent - now| must be within this */
	/* [redis] */
	char redis[512];           /* "HOST:PORT" or "unix:/path" */
	char prefix[64];           /* key prefix, default "tocsin:" */
	/* [keyring] */
	char keyring[512];
	/* [log] */
	char log_level[16];
};

/* Defaults for every key. */
void config_defaults(struct config *c);

/*
 * Read FILE over the defaults. On failure returns -1 with
 * "FILE:LINE: reason" (unknown section or key, bad value) in err.
 * Relative paths in the file are resolved against the file's directory.
 */
int config_load(struct config *c, const char *path, char *err, size_t errlen);

/* Check cross-key rules (tls_cert without tls_key, ...). -1 + err when wrong. */
int config_check(const struct config *c, char *err, size_t errlen);

#endif
