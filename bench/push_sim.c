/*
 * bench/push_sim.c: an APNs / FCM / webhook simulator over HTTP/2, for the
 * push adapter's tests and benchmarks (a tool, not part of tocsind).
 *
 * One thread per connection, blocking sockets with poll() for the
 * response latency; nghttp2 server sessions driven by mem_recv/mem_send.
 * h2c with prior knowledge, or TLS (ALPN h2) when --cert/--key are given.
 *
 *   --port N | --port-file F   listen on 127.0.0.1:N (0 = any; the port goes to F)
 *   --latency-ms N             answer after N ms
 *   --dead PATTERN             tokens containing it: 410 Unregistered / 404 UNREGISTERED
 *   --bad PATTERN              tokens containing it: 400 BadDeviceToken / INVALID_ARGUMENT
 *   --dead-pct P               also P% of tokens (by hash) are dead
 *   --rate N                   above N requests/s (all connections): 429, Retry-After: 1
 *   --goaway-after N           per connection: GOAWAY after the Nth stream
 *   --max-streams N            SETTINGS_MAX_CONCURRENT_STREAMS (default 1000)
 *   --start-streams N          per connection: MAX_CONCURRENT_STREAMS starts at N
 *                              and is raised to --max-streams after the first 200
 *                              (APNs has been reported to start connections at 1)
 *   --lower-streams-on-error   per connection: after its first answer that is not
 *                              2xx, a new SETTINGS lowers MAX_CONCURRENT_STREAMS
 *                              to 1 (as APNs has been reported to do)
 *   --drop-after N             per connection: after the Nth complete request,
 *                              close (FIN) with no GOAWAY and no answer to the
 *                              streams in flight
 *   --reset-after N            the same, but abort with a TCP RST
 *   --mix S=P[,S=P...]         answer P% of the requests that would get 200 with
 *                              status S instead (410, 429, 500, 503), spread
 *                              by a request counter, so a retry usually passes
 *   --retry-after S            Retry-After on 429 and 503 (default 1)
 *   --jwt-pubkey PEM           validate APNs JWTs (ES256, iat not older than --jwt-max-age)
 *   --bearer TOKEN             validate FCM "authorization: Bearer TOKEN"
 *   --save-body FILE           write the body of the first complete request to FILE
 *                              (a benchmark's baseline client then posts the same)
 *   --stats FILE               JSON counters, written on SIGUSR1 and at SIGTERM
 *                              (request_seconds: first to last request, the
 *                              sink-side clock benchmarks compare with; cpu: the
 *                              process's rusage, also counted from the first
 *                              request on; frames_received / frames_sent: a
 *                              census, [frames, payload bytes] per frame type,
 *                              to compare what two clients put on the wire)
 *
 * The sink's own cost per request must not depend on the client (a benchmark
 * divides two clients' rates through it): streams are reused per connection
 * and the heap is never trimmed, and the token tables are pre-faulted (see
 * struct set), so a client sending 40,000 distinct tokens costs it what one
 * repeating a token does, within a cache miss.
 *
 * Counts: requests per kind (apns, fcm, other) when a request is complete;
 * per status, tokens accepted (200) and accepted more than once when the
 * answer is sent; unique tokens, collapse ids, distinct JWTs, JWT / bearer
 * failures, connections, GOAWAYs; `lost`: complete requests on a dropped
 * connection that never got an answer (the client cannot know whether they
 * were processed), so requests == sum(status) + lost once all is answered.
 * `max_concurrent`: the most streams open at once on one connection, counted
 * when a client opens a stream (including streams nghttp2 then refuses);
 * `max_concurrent_lowered`: the same, only for streams opened while the
 * client had acknowledged a limit of 1 (after --lower-streams-on-error, or
 * before the raise of --start-streams 1).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "push_payload.h"

/*
 * A set of strings, kept as 64-bit hashes (open addressing; 0 marks a free
 * slot). Two different strings count as one only if their hashes collide:
 * odds of about 1e-10 among 100,000 tokens. No string is copied. Bit 63 of a
 * slot is a mark (the token set marks the tokens it accepted), so a token's
 * two counts cost one probe. The tables start at 2 MiB (2^18 slots), in a
 * transparent huge page where the kernel gives one, zeroed before the first
 * request: a run of distinct tokens then costs the sink one cache miss per
 * request over what one token repeated does, not page faults, a TLB miss per
 * probe and a rehash midway (those made the sink's CPU per request depend
 * on how many distinct tokens the client sent).
 */
struct set {
	uint64_t *slot;
	size_t cap, n, marked;
};

#define SET_MARK (1ull << 63)
#define SET_MIN_CAP ((size_t)1 << 18)

struct opts {
	int port;
	const char *port_file, *cert, *key, *dead, *bad, *bearer, *stats, *save_body;
	int latency_ms, dead_pct, rate, goaway_after, max_streams, jwt_max_age;
	int drop_after, retry_after, start_streams;
	bool lower_on_error, drop_rst;
	int mix_status[8], mix_pct[8], n_mix;
	EVP_PKEY *jwt_key;
	SSL_CTX *ssl_ctx;
};

struct sim {
	struct opts o;
	pthread_mutex_t mu;
	uint64_t requests, kind[3], status[600], accepted_dup, jwt_bad, bearer_bad;
	uint64_t connections, goaways, collapse_total, lost, drops, lowered;
	uint64_t max_concurrent, max_concurrent_lowered, mix_counter;
	uint64_t reads, writes; /* socket reads and writes, all connections */
	uint64_t read_bytes;
	/* frame census, all connections: frames and payload bytes per type (0-9, 10 = other) */
	uint64_t rx_frames[11], rx_bytes[11], tx_frames[11], tx_bytes[11];
	uint64_t rx_end_stream_headers; /* HEADERS that end their stream (no body) */
	bool body_saved;
	struct set tokens, collapse, jwts; /* tokens: marked when accepted */
	double bucket;
	uint64_t bucket_ms;
	uint64_t first_us, last_us; /* first and last request answered: the sink-side clock */
	struct rusage ru_first;     /* the whole process's, at the first request */
};

struct stream {
	int32_t id;
	char path[512], auth[1024], collapse[80];
	char body[8192];
	size_t blen;
	int status;
	char resp[512];
	size_t rlen, roff;
	char apns_id[40];
	uint64_t token_key;    /* what the answer is counted under (set_key) */
	uint64_t due_ms;
	bool ready, decided;
	struct stream *next;
};

struct sconn {
	struct sim *s;
	int fd;
	SSL *ssl;
	nghttp2_session *ng;
	struct stream *streams;
	struct stream *spare; /* closed streams, reused: a stream is ~10 KB, and malloc/free of
				 them (trimmed and faulted back in) cost the sink per request what
				 the client's burst pattern decided */
	int nstreams, live, complete;
	bool goaway_sent, drop;
	int32_t goaway_last, max_id;
	unsigned settings_sent, settings_acked;
	bool lowered, lowered_acked; /* SETTINGS lowering MAX_CONCURRENT_STREAMS sent / acked */
	bool raised;                 /* --start-streams: the full limit was sent */
	char last_jwt[512];
};

static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint32_t hash(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

/* 8 bytes at a time (the tokens are long): a multiply-xorshift mix per word. */
static uint64_t hash64(const char *s, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15u ^ n, w;
	for (; n >= 8; s += 8, n -= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdu;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
	return h ^ (h >> 29);
}

/* cap slots, zeroed and faulted in: 2 MiB-aligned, in huge pages where the kernel gives them. */
static uint64_t *slots_new(size_t cap)
{
	size_t bytes = cap * sizeof(uint64_t), huge = 2u << 20;
	uint8_t *m = mmap(NULL, bytes + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		perror("push_sim: mmap");
		exit(1);
	}
	uint8_t *p = (uint8_t *)(((uintptr_t)m + huge - 1) & ~(uintptr_t)(huge - 1));
	if (p > m) /* the unaligned head and tail go back */
		munmap(m, (size_t)(p - m));
	if (p + bytes < m + bytes + huge)
		munmap(p + bytes, (size_t)(m + bytes + huge - (p + bytes)));
	madvise(p, bytes, MADV_HUGEPAGE);
	memset(p, 0, bytes); /* fresh pages are zero already: this faults them in now, not mid-run */
	return (uint64_t *)p;
}

static void slots_free(uint64_t *slot, size_t cap)
{
	munmap(slot, cap * sizeof(uint64_t));
}

static void set_init(struct set *st)
{
	__atomic_store_n(&st->cap, SET_MIN_CAP, __ATOMIC_RELAXED);
	__atomic_store_n(&st->slot, slots_new(SET_MIN_CAP), __ATOMIC_RELAXED);
}

/*
 * Fetch key's home slot into the cache ahead of set_add_key(), without the
 * lock: slot and cap are read atomically (a grow publishes them so), and a
 * prefetch of a table just unmapped does not fault.
 */
static void set_prefetch(const struct set *st, uint64_t key)
{
	const uint64_t *slot = __atomic_load_n(&st->slot, __ATOMIC_RELAXED);
	size_t cap = __atomic_load_n(&st->cap, __ATOMIC_RELAXED);
	if (slot)
		__builtin_prefetch(&slot[key & (cap - 1)], 1);
}

/* The key of a string: its hash without the mark bit, never 0. */
static uint64_t set_key(const char *k)
{
	uint64_t h = hash64(k, strlen(k)) & ~SET_MARK;
	return h + !h;
}

/* The slot holding key, or the free one where it goes (the table has room). */
static uint64_t *set_slot(const struct set *st, uint64_t key)
{
	size_t j = key & (st->cap - 1);
	for (; st->slot[j]; j = (j + 1) & (st->cap - 1))
		if ((st->slot[j] & ~SET_MARK) == key)
			break;
	return &st->slot[j];
}

/* Insert key; true when it was new. */
static bool set_add_key(struct set *st, uint64_t key)
{
	if (!st->slot)
		set_init(st);
	if (st->n * 2 >= st->cap) {
		size_t cap = st->cap * 2;
		uint64_t *ns = slots_new(cap);
		for (size_t i = 0; i < st->cap; i++)
			if (st->slot[i]) {
				size_t j = st->slot[i] & ~SET_MARK & (cap - 1);
				while (ns[j])
					j = (j + 1) & (cap - 1);
				ns[j] = st->slot[i];
			}
		slots_free(st->slot, st->cap);
		__atomic_store_n(&st->slot, ns, __ATOMIC_RELAXED); /* see set_prefetch */
		__atomic_store_n(&st->cap, cap, __ATOMIC_RELAXED);
	}
	uint64_t *sl = set_slot(st, key);
	if (*sl)
		return false;
	*sl = key;
	st->n++;
	return true;
}

static bool set_add(struct set *st, const char *k)
{
	return set_add_key(st, set_key(k));
}

/* Mark key (inserting it if absent); false when it was marked already. */
static bool set_mark(struct set *st, uint64_t key)
{
	set_add_key(st, key);
	uint64_t *sl = set_slot(st, key);
	if (*sl & SET_MARK)
		return false;
	*sl |= SET_MARK;
	st->marked++;
	return true;
}

/* --- JWT --- */

static int b64url_dec(const char *in, size_t len, uint8_t *out, size_t cap)
{
	char tmp[1024] = "";
	if (len + 4 >= sizeof(tmp))
		return -1;
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		tmp[n++] = in[i] == '-' ? '+' : in[i] == '_' ? '/' : in[i];
	while (n % 4)
		tmp[n++] = '=';
	if (n / 4 * 3 > cap)
		return -1;
	int r = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)n);
	if (r < 0)
		return -1;
	return r - (int)(len % 4 == 2 ? 2 : len % 4 == 3 ? 1 : 0);
}

static bool verify_sig(EVP_PKEY *key, const char *jwt, size_t signed_len, const char *sig, size_t slen)
{
	uint8_t raw[80], der[80];
	if (b64url_dec(sig, slen, raw, sizeof(raw)) != 64)
		return false;
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
	unsigned char *p = der;
	int dlen = i2d_ECDSA_SIG(es, &p);
	ECDSA_SIG_free(es);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	bool ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
		  EVP_DigestVerify(md, der, (size_t)dlen, (const unsigned char *)jwt, signed_len) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

/* NULL when good, else the APNs reason. */
static const char *check_jwt(struct sconn *c, const char *auth)
{
	if (strncasecmp(auth, "bearer ", 7))
		return "MissingProviderToken";
	const char *jwt = auth + 7;
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	if (!d2)
		return "InvalidProviderToken";
	uint8_t claims[512];
	int n = b64url_dec(d1 + 1, (size_t)(d2 - d1 - 1), claims, sizeof(claims) - 1);
	if (n < 0)
		return "InvalidProviderToken";
	claims[n] = 0;
	const char *iat = strstr((char *)claims, "\"iat\":");
	if (!iat || !strstr((char *)claims, "\"iss\":"))
		return "InvalidProviderToken";
	if (time(NULL) - atoll(iat + 6) > c->s->o.jwt_max_age)
		return "ExpiredProviderToken";
	if (!strcmp(c->last_jwt, jwt))
		return NULL; /* verified already on this connection */
	if (!verify_sig(c->s->o.jwt_key, jwt, (size_t)(d2 - jwt), d2 + 1, strlen(d2 + 1)))
		return "InvalidProviderToken";
	snprintf(c->last_jwt, sizeof(c->last_jwt), "%s", jwt);
	return NULL;
}

/* --- verdicts --- */

static bool over_rate(struct sim *s)
{
	if (!s->o.rate)
		return false;
	uint64_t now = mono_ms();
	s->bucket += (double)(now - s->bucket_ms) * s->o.rate / 1000.0;
	if (s->bucket > s->o.rate)
		s->bucket = s->o.rate;
	s->bucket_ms = now;
	if (s->bucket < 1)
		return true;
	s->bucket -= 1;
	return false;
}

/* --mix: the status for this request instead of 200, or 0. Called under s->mu. */
static int mix_pick(struct sim *s)
{
	if (!s->o.n_mix)
		return 0;
	unsigned bucket = (unsigned)(s->mix_counter++ * 61 % 100); /* 61 ⊥ 100: spread over every 100 */
	unsigned edge = 0;
	for (int i = 0; i < s->o.n_mix; i++) {
		edge += (unsigned)s->o.mix_pct[i];
		if (bucket < edge)
			return s->o.mix_status[i];
	}
	return 0;
}

static const char *apns_reason(int status)
{
	switch (status) {
	case 410:
		return "Unregistered";
	case 429:
		return "TooManyRequests";
	case 503:
		return "ServiceUnavailable";
	default:
		return "InternalServerError";
	}
}

static void answer_apns(struct sconn *c, struct stream *st, const char *tok)
{
	struct opts *o = &c->s->o;
	if (!strncasecmp(st->auth, "bearer ", 7))
		set_add(&c->s->jwts, st->auth + 7);
	const char *why = o->jwt_key ? check_jwt(c, st->auth) : NULL;
	int mixed;
	if (why) {
		st->status = 403;
		if (strcmp(why, "ExpiredProviderToken") && strcmp(why, "MissingProviderToken"))
			c->s->jwt_bad++;
	} else if (o->dead && strstr(tok, o->dead)) {
		why = "Unregistered";
		st->status = 410;
	} else if (o->bad && strstr(tok, o->bad)) {
		why = "BadDeviceToken";
		st->status = 400;
	} else if (o->dead_pct && (int)(hash(tok) % 100) < o->dead_pct) {
		why = "Unregistered";
		st->status = 410;
	} else if (over_rate(c->s)) {
		why = "TooManyRequests";
		st->status = 429;
	} else if ((mixed = mix_pick(c->s))) {
		why = apns_reason(mixed);
		st->status = mixed;
	} else {
		st->status = 200;
		return;
	}
	st->rlen = (size_t)snprintf(st->resp, sizeof(st->resp), "{\"reason\":\"%s\"%s}", why,
				    st->status == 410 ? ",\"timestamp\":1700000000000" : "");
}

static void fcm_error(struct stream *st, int code, const char *status, const char *msg,
		      const char *ec)
{
	st->status = code;
	st->rlen = (size_t)snprintf(st->resp, sizeof(st->resp),
		"{\"error\":{\"code\":%d,\"message\":\"%s\",\"status\":\"%s\",\"details\":[{\"@type\":"
		"\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"%s\"}]}}",
		code, msg, status, ec);
}

static void answer_fcm(struct sconn *c, struct stream *st, const char *tok)
{
	struct opts *o = &c->s->o;
	int mixed;
	if (o->bearer && (strncmp(st->auth, "Bearer ", 7) || strcmp(st->auth + 7, o->bearer))) {
		c->s->bearer_bad++;
		fcm_error(st, 401, "UNAUTHENTICATED", "Request had invalid authentication credentials.",
			  "THIRD_PARTY_AUTH_ERROR");
	} else if ((o->dead && strstr(tok, o->dead)) ||
		   (o->dead_pct && (int)(hash(tok) % 100) < o->dead_pct)) {
		fcm_error(st, 404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED");
	} else if (o->bad && strstr(tok, o->bad)) {
		fcm_error(st, 400, "INVALID_ARGUMENT",
			  "The registration token is not a valid FCM registration token",
			  "INVALID_ARGUMENT");
	} else if (over_rate(c->s)) {
		fcm_error(st, 429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED");
	} else if ((mixed = mix_pick(c->s)) == 410) {
		fcm_error(st, 404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED");
	} else if (mixed == 429) {
		fcm_error(st, 429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED");
	} else if (mixed == 503) {
		fcm_error(st, 503, "UNAVAILABLE", "The service is currently unavailable.", "UNAVAILABLE");
	} else if (mixed) {
		fcm_error(st, 500, "INTERNAL", "Internal error encountered.", "INTERNAL");
	} else {
		st->status = 200; /* its body is written by answer(), outside the lock */
	}
}

/* Webhook: 410 for dead tokens (the app back end forgot them), else like the others. */
static void answer_webhook(struct sconn *c, struct stream *st, const char *tok)
{
	struct opts *o = &c->s->o;
	int mixed;
	if ((o->dead && strstr(tok, o->dead)) ||
	    (o->dead_pct && (int)(hash(tok) % 100) < o->dead_pct))
		st->status = 410;
	else if (over_rate(c->s))
		st->status = 429;
	else if ((mixed = mix_pick(c->s)))
		st->status = mixed;
	else
		st->status = 200;
}

/* Decide the answer (counted when it is sent). */
static void answer(struct sconn *c, struct stream *st)
{
	struct sim *s = c->s;
	char tok[4200];
	int kind = 2;
	tok[0] = 0;
	/*
	 * What concerns this stream alone is done outside the lock the two
	 * connection threads share: the token, its key, and a prefetch of its
	 * slot, so that a token the table has not seen (each of the engine's,
	 * against h2load's one) costs neither a cache miss nor the other thread
	 * a wait on the lock while it is served.
	 */
	if (!strncmp(st->path, "/3/device/", 10)) {
		kind = 0;
		snprintf(tok, sizeof(tok), "%s", st->path + 10);
	} else {
		kind = strstr(st->path, "/messages:send") ? 1 : 2;
		push_json_find_string(st->body, st->blen, "token", tok, sizeof(tok));
	}
	st->token_key = set_key(tok);
	set_prefetch(&s->tokens, st->token_key);
	uint64_t now_us = mono_us();
	pthread_mutex_lock(&s->mu);
	if (kind == 0)
		answer_apns(c, st, tok);
	else if (kind == 1)
		answer_fcm(c, st, tok);
	else
		answer_webhook(c, st, tok);
	if (s->o.save_body && !s->body_saved) {
		s->body_saved = true;
		FILE *f = fopen(s->o.save_body, "wb");
		if (f) {
			fwrite(st->body, 1, st->blen, f);
			fclose(f);
		}
	}
	if (!s->first_us) {
		s->first_us = now_us;
		getrusage(RUSAGE_SELF, &s->ru_first);
	}
	s->last_us = now_us;
	s->requests++;
	s->kind[kind]++;
	set_add_key(&s->tokens, st->token_key);
	if (st->collapse[0]) {
		s->collapse_total++;
		set_add(&s->collapse, st->collapse);
	}
	pthread_mutex_unlock(&s->mu);
	if (kind == 1 && st->status == 200) /* FCM's answer to a message it took */
		st->rlen = (size_t)snprintf(st->resp, sizeof(st->resp),
					    "{\"name\":\"projects/p/messages/0:%d\"}", st->id);
	snprintf(st->apns_id, sizeof(st->apns_id), "00000000-0000-4000-8000-%012x", (unsigned)st->id);
	st->due_ms = mono_ms() + (uint64_t)s->o.latency_ms;
	st->ready = st->decided = true;
}

/* The answer is leaving: count it. */
static void tally(struct sim *s, const struct stream *st)
{
	pthread_mutex_lock(&s->mu);
	s->status[st->status]++;
	if (st->status == 200 && !set_mark(&s->tokens, st->token_key))
		s->accepted_dup++;
	pthread_mutex_unlock(&s->mu);
}

static long ru_us(const struct timeval *tv)
{
	return tv->tv_sec * 1000000L + tv->tv_usec;
}

static void write_stats(struct sim *s)
{
	if (!s->o.stats)
		return;
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->o.stats);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	pthread_mutex_lock(&s->mu);
	fprintf(f, "{\"requests\":%lu,\"apns\":%lu,\"fcm\":%lu,\"other\":%lu,\"status\":{",
		s->requests, s->kind[0], s->kind[1], s->kind[2]);
	const char *sep = "";
	for (int i = 0; i < 600; i++)
		if (s->status[i]) {
			fprintf(f, "%s\"%d\":%lu", sep, i, s->status[i]);
			sep = ",";
		}
	fprintf(f, "},\"unique_tokens\":%zu,\"accepted_tokens\":%zu,\"accepted_duplicates\":%lu,"
		"\"collapse_ids\":%zu,\"collapse_total\":%lu,\"jwt_bad\":%lu,\"bearer_bad\":%lu,"
		"\"connections\":%lu,\"goaways\":%lu,\"request_seconds\":%.6f,\"jwts\":%zu,"
		"\"lost\":%lu,\"drops\":%lu,\"lowered\":%lu,\"max_concurrent\":%lu,"
		"\"max_concurrent_lowered\":%lu,\"reads\":%lu,\"writes\":%lu",
		s->tokens.n, s->tokens.marked, s->accepted_dup, s->collapse.n, s->collapse_total,
		s->jwt_bad, s->bearer_bad, s->connections, s->goaways,
		s->last_us > s->first_us ? (double)(s->last_us - s->first_us) / 1e6 : 0.0,
		s->jwts.n, s->lost, s->drops, s->lowered, s->max_concurrent, s->max_concurrent_lowered,
		__atomic_load_n(&s->reads, __ATOMIC_RELAXED), __atomic_load_n(&s->writes, __ATOMIC_RELAXED));
	/* the process's CPU time and context switches (all threads, ended ones included) */
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	const struct rusage *r0 = &s->ru_first;
	fprintf(f, ",\"cpu\":{\"user_us\":%ld,\"sys_us\":%ld,\"vcsw\":%ld,\"ivcsw\":%ld,"
		"\"minflt\":%ld", ru_us(&ru.ru_utime), ru_us(&ru.ru_stime), ru.ru_nvcsw, ru.ru_nivcsw,
		ru.ru_minflt);
	if (s->first_us) /* from the first request on: the figures per request come from these */
		fprintf(f, ",\"user_us_since_first\":%ld,\"sys_us_since_first\":%ld,"
			"\"vcsw_since_first\":%ld,\"ivcsw_since_first\":%ld,\"minflt_since_first\":%ld",
			ru_us(&ru.ru_utime) - ru_us(&r0->ru_utime), ru_us(&ru.ru_stime) - ru_us(&r0->ru_stime),
			ru.ru_nvcsw - r0->ru_nvcsw, ru.ru_nivcsw - r0->ru_nivcsw,
			ru.ru_minflt - r0->ru_minflt);
	fprintf(f, "}");
	/* the frame census: [frames, payload bytes] per type, as received and as sent */
	static const char *const names[11] = {"DATA", "HEADERS", "PRIORITY", "RST_STREAM",
		"SETTINGS", "PUSH_PROMISE", "PING", "GOAWAY", "WINDOW_UPDATE", "CONTINUATION", "other"};
	fprintf(f, ",\"read_bytes\":%lu,\"headers_end_stream\":%lu", __atomic_load_n(&s->read_bytes,
		__ATOMIC_RELAXED), __atomic_load_n(&s->rx_end_stream_headers, __ATOMIC_RELAXED));
	for (int dir = 0; dir < 2; dir++) {
		uint64_t *fr = dir ? s->tx_frames : s->rx_frames, *by = dir ? s->tx_bytes : s->rx_bytes;
		fprintf(f, ",\"%s\":{", dir ? "frames_sent" : "frames_received");
		sep = "";
		for (int t = 0; t < 11; t++)
			if (__atomic_load_n(&fr[t], __ATOMIC_RELAXED)) {
				fprintf(f, "%s\"%s\":[%lu,%lu]", sep, names[t],
					__atomic_load_n(&fr[t], __ATOMIC_RELAXED),
					__atomic_load_n(&by[t], __ATOMIC_RELAXED));
				sep = ",";
			}
		fprintf(f, "}");
	}
	fprintf(f, "}\n");
	pthread_mutex_unlock(&s->mu);
	fclose(f);
	rename(tmp, s->o.stats);
}

/* --- HTTP/2 server --- */

static struct stream *find_stream(struct sconn *c, int32_t id)
{
	for (struct stream *st = c->streams; st; st = st->next)
		if (st->id == id)
			return st;
	return NULL;
}

/*
 * Every new stream the client opens, before nghttp2 decides whether to
 * accept it: how many would then be open at once on this connection.
 */
static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *user)
{
	struct sconn *c = user;
	unsigned t = hd->type < 10 ? hd->type : 10;
	__atomic_add_fetch(&c->s->rx_frames[t], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->s->rx_bytes[t], hd->length, __ATOMIC_RELAXED);
	if (hd->type == NGHTTP2_HEADERS && (hd->flags & NGHTTP2_FLAG_END_STREAM))
		__atomic_add_fetch(&c->s->rx_end_stream_headers, 1, __ATOMIC_RELAXED);
	if (hd->type != NGHTTP2_HEADERS || hd->stream_id <= c->max_id || !(hd->stream_id & 1))
		return 0;
	c->max_id = hd->stream_id;
	uint64_t open = (uint64_t)c->live + 1;
	pthread_mutex_lock(&c->s->mu);
	if (open > c->s->max_concurrent)
		c->s->max_concurrent = open;
	if (c->lowered_acked && open > c->s->max_concurrent_lowered)
		c->s->max_concurrent_lowered = open;
	pthread_mutex_unlock(&c->s->mu);
	return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct sconn *c = user;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if (c->goaway_sent && f->hd.stream_id > c->goaway_last) {
		/* above last_stream_id: never processed (the GOAWAY may not have left yet) */
		nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id, NGHTTP2_REFUSED_STREAM);
		return 0;
	}
	struct stream *st = c->spare; /* the buffers are cleared as they are used */
	if (st)
		c->spare = st->next;
	else if (!(st = malloc(sizeof(*st))))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	memset(st, 0, offsetof(struct stream, body));
	st->body[0] = 0;
	st->blen = 0;
	memset(&st->status, 0, sizeof(*st) - offsetof(struct stream, status));
	st->id = f->hd.stream_id;
	st->next = c->streams;
	c->streams = st;
	c->live++;
	if (++c->nstreams == c->s->o.goaway_after && !c->goaway_sent) {
		nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL, 0);
		c->goaway_sent = true;
		c->goaway_last = st->id;
		pthread_mutex_lock(&c->s->mu);
		c->s->goaways++;
		pthread_mutex_unlock(&c->s->mu);
	}
	return 0;
}

static void copy(char *dst, size_t cap, const uint8_t *v, size_t n)
{
	n = n < cap - 1 ? n : cap - 1;
	memcpy(dst, v, n);
	dst[n] = 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user)
{
	struct stream *st = find_stream(user, f->hd.stream_id);
	if (!st)
		return 0;
	if (namelen == 5 && !memcmp(name, ":path", 5))
		copy(st->path, sizeof(st->path), value, valuelen);
	else if (namelen == 13 && !memcmp(name, "authorization", 13))
		copy(st->auth, sizeof(st->auth), value, valuelen);
	else if (namelen == 16 && !memcmp(name, "apns-collapse-id", 16))
		copy(st->collapse, sizeof(st->collapse), value, valuelen);
	return 0;
}

static int on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
		   size_t len, void *user)
{
	struct stream *st = find_stream(user, id);
	if (!st)
		return 0;
	size_t n = len < sizeof(st->body) - 1 - st->blen ? len : sizeof(st->body) - 1 - st->blen;
	memcpy(st->body + st->blen, data, n);
	st->blen += n;
	st->body[st->blen] = 0;
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct sconn *c = user;
	if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
	    (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
		struct stream *st = find_stream(c, f->hd.stream_id);
		if (st && !st->decided) {
			answer(c, st);
			if (c->s->o.drop_after && ++c->complete == c->s->o.drop_after)
				c->drop = true; /* the connection thread drops it after this read */
		}
	} else if (f->hd.type == NGHTTP2_SETTINGS && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
		if (++c->settings_acked == c->settings_sent &&
		    (c->lowered || (c->s->o.start_streams == 1 && !c->raised)))
			c->lowered_acked = true; /* from now on the client must keep to 1 stream */
	}
	return 0;
}

/* The census of what the sink sends. */
static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct sconn *c = user;
	unsigned t = f->hd.type < 10 ? f->hd.type : 10;
	__atomic_add_fetch(&c->s->tx_frames[t], 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->s->tx_bytes[t], f->hd.length, __ATOMIC_RELAXED);
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
	struct sconn *c = user;
	for (struct stream **pp = &c->streams; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id) {
			struct stream *st = *pp;
			*pp = st->next;
			st->next = c->spare;
			c->spare = st;
			c->live--;
			break;
		}
	return 0;
}

static ssize_t read_resp(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len,
			 uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct stream *st = src->ptr;
	size_t n = st->rlen - st->roff < len ? st->rlen - st->roff : len;
	memcpy(out, st->resp + st->roff, n);
	st->roff += n;
	if (st->roff == st->rlen)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* APNs has been reported to cut a connection to one stream after an error. */
static void lower_streams(struct sconn *c)
{
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1}};
	if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 1) != 0)
		return;
	c->lowered = true;
	c->settings_sent++;
	pthread_mutex_lock(&c->s->mu);
	c->s->lowered++;
	pthread_mutex_unlock(&c->s->mu);
}

static void respond(struct sconn *c, struct stream *st)
{
	char status[8], ra[16];
	snprintf(status, sizeof(status), "%d", st->status);
	snprintf(ra, sizeof(ra), "%d", c->s->o.retry_after);
	nghttp2_nv nv[4] = {
		{(uint8_t *)":status", (uint8_t *)status, 7, strlen(status), 0},
		{(uint8_t *)"apns-id", (uint8_t *)st->apns_id, 7, strlen(st->apns_id), 0},
		{(uint8_t *)"content-type", (uint8_t *)"application/json", 12, 16, 0},
		{(uint8_t *)"retry-after", (uint8_t *)ra, 11, strlen(ra), 0},
	};
	nghttp2_data_provider dp = {.source.ptr = st, .read_callback = read_resp};
	bool ra_on = st->status == 429 || st->status == 503;
	nghttp2_submit_response(c->ng, st->id, nv, ra_on ? 4 : 3, st->rlen ? &dp : NULL);
	st->ready = false;
	st->due_ms = 0;
	tally(c->s, st);
	if (c->s->o.start_streams && !c->raised && st->status == 200) {
		nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
						(uint32_t)c->s->o.max_streams}};
		if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 1) == 0) {
			c->raised = true;
			c->lowered = c->lowered_acked = false; /* the client may use the room once it reads it */
			c->settings_sent++;
		}
	}
	if (c->s->o.lower_on_error && !c->lowered && (st->status < 200 || st->status > 299))
		lower_streams(c);
}

static int io_write(struct sconn *c, const uint8_t *d, size_t n)
{
	while (n) {
		ssize_t w = c->ssl ? SSL_write(c->ssl, d, (int)n) : send(c->fd, d, n, MSG_NOSIGNAL);
		if (w <= 0)
			return -1;
		__atomic_add_fetch(&c->s->writes, 1, __ATOMIC_RELAXED);
		d += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Everything nghttp2 has to send, gathered into one write per 64 KB (as a
 * server with an output buffer does) rather than one write per frame: a
 * HEADERS and a DATA frame per answer would otherwise be two syscalls and two
 * TCP segments each, a cost of the sink that both kinds of client would pay.
 */
static int flush_session(struct sconn *c)
{
	static _Thread_local uint8_t out[64 * 1024];
	size_t len = 0;
	for (;;) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(c->ng, &d);
		if (n < 0)
			return -1;
		if (n == 0 || len + (size_t)n > sizeof(out)) {
			if (len && io_write(c, out, len) < 0)
				return -1;
			len = 0;
		}
		if (n == 0)
			return 0;
		if ((size_t)n > sizeof(out)) {
			if (io_write(c, d, (size_t)n) < 0)
				return -1;
			continue;
		}
		memcpy(out + len, d, (size_t)n);
		len += (size_t)n;
	}
}

/* Answer the streams that are due; the wait until the next one (ms, -1 = none). */
static int respond_due(struct sconn *c)
{
	uint64_t now = mono_ms(), next = 0;
	for (struct stream *st = c->streams; st; st = st->next) {
		if (!st->ready)
			continue;
		if (st->due_ms <= now)
			respond(c, st);
		else if (!next || st->due_ms < next)
			next = st->due_ms;
	}
	return next ? (int)(next - now) : -1;
}

static int session_new(struct sconn *c)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_session_callbacks_new(&cbs);
	nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, on_begin_frame);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	int r = nghttp2_session_server_new(&c->ng, cbs, c);
	nghttp2_session_callbacks_del(cbs);
	if (r)
		return -1;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
		 (uint32_t)(c->s->o.start_streams ? c->s->o.start_streams : c->s->o.max_streams)},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
	};
	nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 2);
	c->settings_sent = 1;
	return 0;
}

static int read_some(struct sconn *c, int wait_ms)
{
	uint8_t buf[16384];
	if (!c->ssl || !SSL_pending(c->ssl)) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		int r = poll(&pfd, 1, wait_ms);
		if (r <= 0)
			return r < 0 && errno != EINTR ? -1 : 0;
	}
	ssize_t n = c->ssl ? SSL_read(c->ssl, buf, sizeof(buf)) : recv(c->fd, buf, sizeof(buf), 0);
	if (n <= 0)
		return -1;
	__atomic_add_fetch(&c->s->reads, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&c->s->read_bytes, (uint64_t)n, __ATOMIC_RELAXED);
	return nghttp2_session_mem_recv(c->ng, buf, (size_t)n) < 0 ? -1 : 0;
}

/*
 * Close like a real server: FIN first, then read until the peer's EOF (1 s
 * at most). Closing with unread input would send a RST, and the peer's
 * kernel may then drop the GOAWAY and answers it had not read yet.
 */
static void linger_close(struct sconn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	shutdown(c->fd, SHUT_WR);
	uint64_t end = mono_ms() + 1000;
	char buf[4096];
	for (uint64_t now = mono_ms(); now < end; now = mono_ms()) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)(end - now)) <= 0 || recv(c->fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
	close(c->fd);
}

/*
 * --drop-after / --reset-after: the connection dies under the streams in
 * flight, with no GOAWAY. RST: SO_LINGER 0, so close() aborts at once.
 */
static void drop_close(struct sconn *c)
{
	pthread_mutex_lock(&c->s->mu);
	c->s->drops++;
	pthread_mutex_unlock(&c->s->mu);
	if (!c->s->o.drop_rst) {
		linger_close(c);
		return;
	}
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
}

/* Complete requests that will never be answered now. */
static void count_lost(struct sconn *c)
{
	uint64_t n = 0;
	for (struct stream *st = c->streams; st; st = st->next)
		n += st->ready;
	pthread_mutex_lock(&c->s->mu);
	c->s->lost += n;
	pthread_mutex_unlock(&c->s->mu);
}

static void free_streams(struct stream *st)
{
	while (st) {
		struct stream *next = st->next;
		free(st);
		st = next;
	}
}

static void *conn_thread(void *arg)
{
	struct sconn *c = arg;
	if (c->ssl) {
		SSL_set_fd(c->ssl, c->fd);
		if (SSL_accept(c->ssl) != 1)
			goto out;
	}
	if (session_new(c) < 0)
		goto out;
	while (nghttp2_session_want_read(c->ng) || nghttp2_session_want_write(c->ng)) {
		int wait = respond_due(c);
		if (flush_session(c) < 0)
			break;
		if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng))
			break;
		if (read_some(c, wait < 0 ? 1000 : wait) < 0 || c->drop)
			break;
	}
out:
	count_lost(c);
	if (c->ng)
		nghttp2_session_del(c->ng);
	free_streams(c->streams);
	free_streams(c->spare);
	if (c->drop)
		drop_close(c);
	else
		linger_close(c);
	free(c);
	return NULL;
}

static void accept_one(struct sim *s, int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sconn *c = calloc(1, sizeof(*c));
	c->s = s;
	c->fd = fd;
	if (s->o.ssl_ctx)
		c->ssl = SSL_new(s->o.ssl_ctx);
	pthread_mutex_lock(&s->mu);
	s->connections++;
	pthread_mutex_unlock(&s->mu);
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &at, conn_thread, c) != 0) {
		close(fd);
		free(c);
	}
	pthread_attr_destroy(&at);
}

static int alpn_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		   const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;
	if (SSL_select_next_proto(&sel, outlen, (const unsigned char *)"\x02h2", 3, in, inlen) !=
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

static int listen_on(struct opts *o)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 512) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
		perror("push_sim: listen");
		exit(1);
	}
	if (o->port_file) {
		char tmp[600];
		snprintf(tmp, sizeof(tmp), "%s.tmp", o->port_file);
		FILE *f = fopen(tmp, "w");
		fprintf(f, "%d\n", ntohs(sa.sin_port));
		fclose(f);
		rename(tmp, o->port_file);
	}
	return fd;
}

/* "503=5,500=3": statuses and percentages. */
static void parse_mix(struct opts *o, const char *v)
{
	int total = 0;
	while (*v) {
		int st, pct, n = 0;
		if (o->n_mix == 8 || sscanf(v, "%d=%d%n", &st, &pct, &n) != 2 ||
		    (st != 410 && st != 429 && st != 500 && st != 503) || pct < 0 || (total += pct) > 100) {
			fprintf(stderr, "push_sim: --mix wants STATUS=PCT[,...] with 410/429/500/503, "
				"at most 100%% in all\n");
			exit(2);
		}
		o->mix_status[o->n_mix] = st;
		o->mix_pct[o->n_mix++] = pct;
		v += n;
		if (*v == ',')
			v++;
	}
}

static void parse_args(struct opts *o, int argc, char **argv)
{
	*o = (struct opts){.max_streams = 1000, .jwt_max_age = 3600, .retry_after = 1};
	for (int i = 1; i < argc; i += 2) {
		const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(k, "--lower-streams-on-error")) {
			o->lower_on_error = true;
			i--; /* a flag: no value */
			continue;
		}
		if (!strcmp(k, "--port")) o->port = atoi(v);
		else if (!strcmp(k, "--port-file")) o->port_file = v;
		else if (!strcmp(k, "--cert")) o->cert = v;
		else if (!strcmp(k, "--key")) o->key = v;
		else if (!strcmp(k, "--latency-ms")) o->latency_ms = atoi(v);
		else if (!strcmp(k, "--dead")) o->dead = v;
		else if (!strcmp(k, "--bad")) o->bad = v;
		else if (!strcmp(k, "--dead-pct")) o->dead_pct = atoi(v);
		else if (!strcmp(k, "--rate")) o->rate = atoi(v);
		else if (!strcmp(k, "--goaway-after")) o->goaway_after = atoi(v);
		else if (!strcmp(k, "--max-streams")) o->max_streams = atoi(v);
		else if (!strcmp(k, "--drop-after")) o->drop_after = atoi(v);
		else if (!strcmp(k, "--start-streams")) o->start_streams = atoi(v);
		else if (!strcmp(k, "--reset-after")) o->drop_after = atoi(v), o->drop_rst = true;
		else if (!strcmp(k, "--retry-after")) o->retry_after = atoi(v);
		else if (!strcmp(k, "--mix")) parse_mix(o, v);
		else if (!strcmp(k, "--jwt-max-age")) o->jwt_max_age = atoi(v);
		else if (!strcmp(k, "--bearer")) o->bearer = v;
		else if (!strcmp(k, "--stats")) o->stats = v;
		else if (!strcmp(k, "--save-body")) o->save_body = v;
		else if (!strcmp(k, "--jwt-pubkey")) {
			FILE *f = fopen(v, "r");
			o->jwt_key = f ? PEM_read_PUBKEY(f, NULL, NULL, NULL) : NULL;
			if (f)
				fclose(f);
			if (!o->jwt_key) {
				fprintf(stderr, "push_sim: cannot read public key %s\n", v);
				exit(2);
			}
		} else {
			fprintf(stderr, "push_sim: unknown option %s\n", k);
			exit(2);
		}
	}
}

static void tls_init(struct opts *o)
{
	if (!o->cert)
		return;
	o->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (SSL_CTX_use_certificate_chain_file(o->ssl_ctx, o->cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(o->ssl_ctx, o->key, SSL_FILETYPE_PEM) != 1) {
		fprintf(stderr, "push_sim: cannot load %s / %s\n", o->cert, o->key);
		exit(2);
	}
	SSL_CTX_set_alpn_select_cb(o->ssl_ctx, alpn_h2, NULL);
}

int main(int argc, char **argv)
{
	struct sim *s = calloc(1, sizeof(*s));
	parse_args(&s->o, argc, argv);
	tls_init(&s->o);
	pthread_mutexattr_t ma; /* adaptive: the two connection threads hold it briefly */
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(&s->mu, &ma);
	pthread_mutexattr_destroy(&ma);
	set_init(&s->tokens);
	set_init(&s->collapse);
	set_init(&s->jwts);
	mallopt(M_TRIM_THRESHOLD, 256 << 20); /* no memory handed back (and faulted in again) mid-run */
	s->bucket = s->o.rate;
	s->bucket_ms = mono_ms();
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by every connection thread */
	signal(SIGPIPE, SIG_IGN);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	int lfd = listen_on(&s->o);
	for (;;) {
		struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
		if (poll(pfd, 2, -1) < 0)
			continue;
		if (pfd[0].revents)
			accept_one(s, lfd);
		if (pfd[1].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			write_stats(s);
			if (si.ssi_signo != SIGUSR1)
				_exit(0); /* connection threads are still running: no teardown */
		}
	}
}
