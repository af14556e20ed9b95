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

#define CONFIG_MAX_LANES 64
#define CONFIG_MAX_LANE_KEYS 32

/* One key = value of a [lane NAME] section, for the lane's adapter. */
struct config_kv {
	char key[48];
	char value[464];
};

/* A [lane NAME] section: the generic lane keys, the rest goes to the adapter. */
struct config_lane {
	char name[64];
	char channel[16];          /* sms, app, terminal */
	char platform[16];         /* app lanes: apns, fcm or webhook */
	char adapter[32];          /* smpp, push, terminal, sim */
	double rate;               /* per second; 0 = unlimited */
	double burst;              /* 0 = the rate (or 1) */
	unsigned window;           /* in flight; default 64 */
	struct config_kv kv[CONFIG_MAX_LANE_KEYS];
	size_t n_kv;
};

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
	/* [dispatch] */
	bool dispatch;             /* run the dispatcher (default true when lanes exist) */
	char channels[64];         /* channels sent at once: "sms, app, terminal" */
	char escalation[64];       /* staged order, e.g. "app, sms, terminal"; "" = none */
	int escalate_after_ms;     /* time between escalation stages */
	int retry_base_ms;         /* first retry backoff (doubles, with jitter) */
	int max_attempts;          /* per delivery, all bounded by expiry too */
	long warm_deliveries;      /* memory made ready at start for a whole-population warning */
	long poll_us;              /* the dispatcher polls this long before it sleeps, a lane's window full */
	char test_recipients[1024]; /* Test warnings go only here: "sms:+86..., app:fcm:tok, terminal:id" */
	char drill_prefix[64];     /* prepended to every Exercise message */
	struct config_lane lanes[CONFIG_MAX_LANES];
	size_t n_lanes;
	/* [operators]: credentials for the operator views; both empty = open (warned) */
	char operator_tokens[512]; /* tokens_file: "NAME TOKEN" lines */
	char operator_client_ca[512]; /* client_ca: PEM; verified TLS client certs */
	/* [audit] */
	char audit_file[512];      /* empty = no audit log */
	/* [events]: the server-sent event stream (GET /v1/events) */
	int events_interval_ms;    /* status push period */
	int events_heartbeat_ms;   /* comment line when nothing else was sent */
	int events_max_subscribers; /* per thread; 503 beyond */
	size_t events_max_pending; /* unsent bytes per subscriber before it is dropped */
};

/* The value of an adapter key of a lane, or `def`. */
const char *config_lane_get(const struct config_lane *l, const char *key, const char *def);

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
