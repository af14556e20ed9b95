/*
 * adapters/push.c: the app push adapter (`adapter = push`): APNs, FCM HTTP
 * v1 and webhooks over HTTP/2, on the dispatcher's io_uring loop.
 *
 * One lane = one provider account. The lane keeps a small pool of
 * long-lived HTTP/2 connections (`connections`, default 2): TLS with ALPN
 * h2 through memory BIOs (OpenSSL never sees the socket), or h2c with prior
 * knowledge for `http://` URLs (tests). nghttp2 is the protocol engine,
 * driven by mem_recv / mem_send; what mem_send returns is copied at once.
 *
 * Requests (`struct push_req`, one per submitted delivery) wait on the
 * lane's FIFO until a connection has room: our own cap per connection is
 * min(max_streams, the peer's SETTINGS_MAX_CONCURRENT_STREAMS), because
 * nghttp2 would queue beyond the peer's limit without bound. Nothing is
 * submitted before the peer's SETTINGS arrived, nor when
 * nghttp2_session_check_request_allowed says no.
 *
 * A request's body is the lane's rendering of its warning for its language
 * (cached, struct body_tmpl) with its token put in; headers that depend
 * only on the warning or the credentials are formatted once (hdr_*). Over
 * TLS, the frames of one pump are sealed together (plain → seal_plain).
 *
 * Invariants:
 *   - one report per submitted delivery, never from inside submit() (a
 *     zero-delay timer moves new requests onto connections);
 *   - a stream closed with REFUSED_STREAM (above a GOAWAY's last_stream_id,
 *     or never sent) was not processed: its request goes back to the front
 *     of the FIFO, unreported;
 *   - a request lost with its connection (EOF, RST, ping timeout) after its
 *     HEADERS left may or may not have been processed. It goes back to the
 *     front of the FIFO too and is resent on a fresh connection, at most
 *     PUSH_LOST_RESENDS times, then reported TRANSIENT (the dispatcher
 *     retries later). For a warning a duplicate is harmless and a loss is
 *     not: apns-collapse-id and FCM's collapse_key are the warning id, so a
 *     second copy replaces the first on the device. A request whose 2xx
 *     status had arrived is ACCEPTED, not resent;
 *   - every SQE's user_data is an op embedded in its connection, and each
 *     armed op holds a reference: a connection is freed only when the
 *     last op came back (two-phase close);
 *   - after close() no report is made; the adapter state is freed once the
 *     last connection and the Redis client are idle (the loop must keep
 *     running until then);
 *   - header values are given to nghttp2 without a copy: each lives at least
 *     as long as its request is on a connection (see NV_FLAGS);
 *   - a request is recycled only once nothing refers to it any more (after
 *     its report, or when freed while waiting).
 *
 * Connection state table:
 *
 *   CONNECTING --connected, https--> HANDSHAKE --ALPN h2--> OPEN
 *   CONNECTING --connected, http---------------------------> OPEN
 *   OPEN (usable once the peer's SETTINGS arrived)
 *   OPEN --GOAWAY received--> DRAINING (no new streams; a new connection
 *                             takes its slot; closes when nghttp2 is done)
 *   any --error, EOF, ping or connect timeout--> CLOSING --last op back--> freed
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "adapters.h"
#ifdef TOCSIN_ASAN
#include <sanitizer/asan_interface.h> /* recycled memory is poisoned while free */
#else
#define ASAN_POISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif
#include "buf.h"
#include "campaign.h"
#include "log.h"
#include "push_jwt.h"
#include "push_payload.h"
#include "redis.h"

#define PUSH_MAX_CONNS 16
#define PUSH_RECV_BUF (16 * 1024)
#define PUSH_OUT_HIGH (256 * 1024)
#define PUSH_OUT_MAX (4u << 20)
#define PUSH_MAX_RESP_BODY 2048
#define PUSH_TICK_MS 250
#define PUSH_CONNECT_TIMEOUT_MS 10000
#define PUSH_PING_IDLE_MS 30000
#define PUSH_PING_TIMEOUT_MS 10000
#define PUSH_NO_CONN_GIVEUP_MS 10000
#define PUSH_DRAIN_TIMEOUT_MS 30000
#define PUSH_BACKOFF_MIN_MS 100
#define PUSH_BACKOFF_MAX_MS 5000
#define PUSH_BODY_CACHE 16 /* rendered bodies kept per lane: (warning, language, ttl) */
#define PUSH_LOST_RESENDS 2 /* a request can die with its connection this often, then TRANSIENT */

enum pc_state { PC_CONNECTING, PC_HANDSHAKE, PC_OPEN, PC_DRAINING, PC_CLOSING };

struct push;
struct push_conn;

struct hstr;

/*
 * A request. Requests are recycled through the lane's free list; the part
 * before `body` is cleared for each new delivery, the body buffer is kept
 * (body_cap) and the answer buffer is not cleared (rlen says what is valid).
 * The header values nghttp2 is given without a copy (NO_COPY) live here or
 * in `auth`, a reference held while the request is on a connection.
 */
struct push_req {
	struct delivery *d;
	struct push_conn *pc;  /* NULL while waiting */
	size_t len, off;
	int status;
	char retry_after[16];
	size_t rlen;
	int32_t stream_id;
	size_t tok_len;        /* of the token in d->address */
	unsigned jwt_gen, resends;
	bool built, sent, auth_retried;
	struct push_req *prev, *next;
	struct hstr *auth;     /* the authorization value submitted with it, or NULL */
	/* -- kept across reuse -- */
	char *body;            /* request body, built once per delivery (len bytes) */
	size_t body_cap;
	char clen[24];         /* content-length value */
	char apns_path[224];   /* APNs: "/3/device/" + token (≤ 200) */
	char apns_exp[24], apns_cid[65];
	char rbody[PUSH_MAX_RESP_BODY];
};
#define REQ_CLEAR offsetof(struct push_req, body)

/* A header value shared by requests (the credentials); freed with its last reference. */
struct hstr {
	unsigned refs;
	size_t len;
	char s[];
};

struct req_list {
	struct push_req *head, *tail;
};

/*
 * A body rendered once for every delivery of one warning in one language
 * (and, for FCM, one ttl second): only the token differs, and it goes at
 * tok_at (NO_TOKEN for APNs, whose payload carries none). The campaign
 * pointer alone could be reused by a later campaign: the id is compared too.
 */
#define NO_TOKEN SIZE_MAX
struct body_tmpl {
	const struct campaign *c;
	char *id;
	unsigned lang;
	int64_t ttl_s;
	char *body;
	size_t len, tok_at;
};

struct push_conn {
	struct push *p;
	uint64_t id;
	int fd;
	enum pc_state state;
	int refs;              /* 1 while not CLOSING, + 1 per armed op */
	unsigned slot;
	struct op connect_op, recv_op, send_op;
	bool recv_armed, send_armed, settings_seen;
	uint8_t rbuf[PUSH_RECV_BUF];
	struct buf out, sending;
	struct buf plain;      /* TLS: frames from nghttp2 waiting to be sealed, one record per 16 KB */
	size_t sending_off;
	SSL *ssl;
	BIO *rbio, *wbio;
	nghttp2_session *ng;
	unsigned inflight;
	struct req_list reqs;
	uint64_t opened_ms, last_rx_ms, ping_sent_ms, drain_ms;
	struct push_conn *all_prev, *all_next; /* every live connection, draining ones too */
};

struct push {
	struct lane_host host;
	struct lane *lane;
	enum push_provider prov;
	bool tls, insecure, closing, up;
	char host_name[256], authority[300], path[256];
	struct sockaddr_storage sa;
	socklen_t salen;
	char topic[256], project[128], token_file[512], level_extreme[16];
	unsigned n_conns, max_streams;
	struct push_jwt jwt;
	bool has_jwt;
	char bearer[4096];
	char hdr_path[4200];
	unsigned auth_gen;     /* 1 + the JWT or bearer generation `auth` holds (0 = none) */
	unsigned bearer_gen;   /* FCM: bumped when the token file changed */
	const struct campaign *hdr_c; /* APNs: the campaign hdr_exp and hdr_cid belong to */
	char *hdr_id, hdr_exp[24], hdr_cid[65];
	size_t hdr_path_len;
	struct body_tmpl tmpl[PUSH_BODY_CACHE];
	unsigned tmpl_next;
	struct hstr *auth;     /* "bearer JWT" / "Bearer token" as of auth_gen */
	size_t authority_len, topic_len;
	struct push_req *free_reqs; /* recycled requests */
	unsigned n_free_reqs;
	struct ng_pool *pool;  /* nghttp2's allocations for every connection of the lane */
	struct timespec bearer_mtime;
	SSL_CTX *ssl_ctx;
	struct push_conn *conns[PUSH_MAX_CONNS];
	unsigned live;         /* connections not yet freed */
	struct push_conn *all;
	struct req_list waiting;
	struct redis_client redis;
	bool redis_on;
	struct timer tick, kick, reap;
	unsigned backoff_ms;
	uint64_t next_connect_ms, down_since_ms, next_conn_id;
};

#define CONTAINER(ptr, type, field) ((type *)((char *)(ptr) - offsetof(type, field)))

/*
 * nghttp2's allocator for a lane (nghttp2_session_client_new3): its
 * allocations are small and come and go once or twice per request (stream,
 * outbound item, header array, received header buffers), a burst of
 * hundreds at a time, more than glibc's per-size caches hold. Freed blocks
 * go to a free list per power-of-two class (64 B to 4 KB, at most
 * NG_POOL_BYTES per class) and are reused; larger blocks are plain malloc.
 * Every block starts with a 16-byte header (its class and size), so blocks
 * keep malloc's 16-byte alignment. One thread only, like the lane.
 */
#define NG_POOL_CLASSES 7 /* 64, 128, ..., 4096 bytes, header included */
#define NG_POOL_BYTES (256u * 1024)

struct ng_block {
	_Alignas(16) uint32_t cls; /* NG_POOL_CLASSES: not pooled */
	uint32_t size;             /* what was asked for */
	struct ng_block *next;     /* while free */
};

struct ng_pool {
	struct ng_block *free[NG_POOL_CLASSES];
	unsigned n[NG_POOL_CLASSES];
	bool closed;           /* the lane is closing: frees go straight back to malloc */
};

static unsigned ng_class(size_t total)
{
	unsigned c = 0;
	while (c < NG_POOL_CLASSES && ((size_t)64 << c) < total)
		c++;
	return c;
}

static void *ng_malloc(size_t size, void *user)
{
	struct ng_pool *pool = user;
	if (size > UINT32_MAX - sizeof(struct ng_block))
		return NULL;
	unsigned c = ng_class(size + sizeof(struct ng_block));
	struct ng_block *b;
	if (c < NG_POOL_CLASSES && (b = pool->free[c])) {
		pool->free[c] = b->next;
		pool->n[c]--;
		ASAN_UNPOISON_MEMORY_REGION(b + 1, size);
	} else {
		b = malloc(c < NG_POOL_CLASSES ? (size_t)64 << c : size + sizeof(*b));
		if (!b)
			return NULL;
	}
	b->cls = c;
	b->size = (uint32_t)size;
	return b + 1;
}

static void ng_free(void *ptr, void *user)
{
	struct ng_pool *pool = user;
	if (!ptr)
		return;
	struct ng_block *b = (struct ng_block *)ptr - 1;
	unsigned c = b->cls;
	if (c < NG_POOL_CLASSES && !pool->closed && pool->n[c] < NG_POOL_BYTES / (64u << c)) {
		b->next = pool->free[c];
		pool->free[c] = b;
		pool->n[c]++;
		ASAN_POISON_MEMORY_REGION(b + 1, (64u << c) - sizeof(*b));
		return;
	}
	free(b);
}

static void *ng_calloc(size_t n, size_t size, void *user)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = ng_malloc(n * size, user);
	if (p)
		memset(p, 0, n * size);
	return p;
}

static void *ng_realloc(void *ptr, size_t size, void *user)
{
	if (!ptr)
		return ng_malloc(size, user);
	struct ng_block *b = (struct ng_block *)ptr - 1;
	if (b->cls < NG_POOL_CLASSES && size + sizeof(*b) <= ((size_t)64 << b->cls)) {
		ASAN_UNPOISON_MEMORY_REGION(ptr, size);
		b->size = (uint32_t)size;
		return ptr;
	}
	void *n = ng_malloc(size, user);
	if (!n)
		return NULL;
	memcpy(n, ptr, b->size < size ? b->size : size);
	ng_free(ptr, user);
	return n;
}

/* Give the free blocks back to malloc (the pool itself stays usable). */
static void ng_pool_trim(struct ng_pool *pool)
{
	for (unsigned c = 0; c < NG_POOL_CLASSES; c++)
		while (pool->free[c]) {
			struct ng_block *b = pool->free[c];
			pool->free[c] = b->next;
			ASAN_UNPOISON_MEMORY_REGION(b + 1, (64u << c) - sizeof(*b));
			free(b);
		}
	for (unsigned c = 0; c < NG_POOL_CLASSES; c++)
		pool->n[c] = 0;
}

static void ng_pool_free(struct ng_pool *pool)
{
	if (!pool)
		return;
	ng_pool_trim(pool);
	free(pool);
}

static void pc_close(struct push_conn *pc, const char *why);
static void pump(struct push_conn *pc);
static void kick(struct push *p);
static void update_up(struct push *p, const char *why);

/* --- request lists and requests --- */

static void list_push_back(struct req_list *l, struct push_req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

static void list_push_front(struct req_list *l, struct push_req *r)
{
	r->prev = NULL;
	r->next = l->head;
	if (l->head)
		l->head->prev = r;
	else
		l->tail = r;
	l->head = r;
}

static void list_remove(struct req_list *l, struct push_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
}

#define PUSH_FREE_REQS 1024 /* recycled requests kept per lane */

static void hstr_unref(struct hstr *h)
{
	if (h && --h->refs == 0)
		free(h);
}

static struct hstr *hstr_new(const char *prefix, const char *v)
{
	size_t pl = strlen(prefix), vl = strlen(v);
	struct hstr *h = malloc(sizeof(*h) + pl + vl + 1);
	if (!h)
		return NULL;
	h->refs = 1;
	h->len = pl + vl;
	memcpy(h->s, prefix, pl);
	memcpy(h->s + pl, v, vl + 1);
	return h;
}

static struct push_req *req_new(struct push *p)
{
	struct push_req *r = p->free_reqs;
	if (r) {
		p->free_reqs = r->next;
		p->n_free_reqs--;
		ASAN_UNPOISON_MEMORY_REGION(r, sizeof(*r));
	} else if ((r = malloc(sizeof(*r)))) {
		r->body = NULL;
		r->body_cap = 0;
	}
	if (r)
		memset(r, 0, REQ_CLEAR);
	return r;
}

/* Drop what the request holds for its connection (the credentials' reference). */
static void req_detach(struct push_req *r)
{
	hstr_unref(r->auth);
	r->auth = NULL;
}

static void req_free(struct push *p, struct push_req *r)
{
	req_detach(r);
	if (!p->closing && p->n_free_reqs < PUSH_FREE_REQS && r->body_cap <= 2048) {
		r->next = p->free_reqs;
		p->free_reqs = r;
		p->n_free_reqs++;
		/* a recycled request is poisoned but for its link and its body pointer */
		ASAN_POISON_MEMORY_REGION(r, offsetof(struct push_req, next));
		ASAN_POISON_MEMORY_REGION(&r->auth, offsetof(struct push_req, body) -
							offsetof(struct push_req, auth));
		ASAN_POISON_MEMORY_REGION(&r->body_cap, sizeof(*r) - offsetof(struct push_req, body_cap));
		return;
	}
	free(r->body);
	free(r);
}

static uint64_t now_ms(const struct push *p)
{
	return loop_now_ms(p->host.loop);
}

/* The token part of "platform:token". */
static const char *addr_token(const char *a)
{
	const char *c = strchr(a, ':');
	return c ? c + 1 : a;
}

static void on_sadd(void *arg, redisReply *reply)
{
	struct push *p = arg;
	if ((!reply && !p->closing) || (reply && reply->type == REDIS_REPLY_ERROR))
		log_warn("msg=\"dead token not recorded\" lane=%s", p->lane->name);
}

static void mark_dead(struct push *p, const char *address)
{
	if (!p->redis_on || !redis_up(&p->redis)) {
		log_warn("msg=\"dead token not recorded: Redis down\" lane=%s", p->lane->name);
		return;
	}
	char key[160];
	snprintf(key, sizeof(key), "%sdead:tokens", p->host.prefix ? p->host.prefix : "");
	const char *argv[] = {"SADD", key, address};
	size_t lens[] = {4, strlen(key), strlen(address)};
	if (redis_command(&p->redis, on_sadd, p, 3, argv, lens) < 0)
		log_warn("msg=\"dead token not recorded\" lane=%s", p->lane->name);
}

/* The one report for a request; frees it. */
static void req_report(struct push *p, struct push_req *r, enum outcome o, const char *reason,
		       uint32_t retry_ms)
{
	struct delivery *d = r->d;
	req_free(p, r);
	if (!p->closing)
		p->host.report(p->host.ctx, d, o, reason, retry_ms);
}

/* delivery->reason must be static text: map the provider's reason onto a table. */
static const char *static_reason(enum push_verdict v, const char *reason)
{
	static const char *known[] = {
		"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic", "BadCollapseId",
		"BadExpirationDate", "BadPriority", "BadTopic", "TopicDisallowed", "PayloadTooLarge",
		"ExpiredProviderToken", "InvalidProviderToken", "MissingProviderToken",
		"TooManyProviderTokenUpdates", "TooManyRequests", "InternalServerError",
		"ServiceUnavailable", "Shutdown", "UNREGISTERED", "INVALID_ARGUMENT",
		"SENDER_ID_MISMATCH", "QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL",
		"THIRD_PARTY_AUTH_ERROR", "NOT_FOUND", "PERMISSION_DENIED", "UNAUTHENTICATED",
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(known[i], reason))
			return known[i];
	switch (v) {
	case PUSH_V_THROTTLED:
		return "push: throttled";
	case PUSH_V_TRANSIENT:
		return "push: server error";
	default:
		return "push: rejected";
	}
}

/* Put a request back at the front of the lane's FIFO (not processed by the peer). */
static void requeue(struct push *p, struct push_req *r)
{
	r->pc = NULL;
	r->status = 0;
	r->rlen = 0;
	r->off = 0;
	r->sent = false;
	r->retry_after[0] = 0;
	req_detach(r);
	if (p->closing) {
		req_free(p, r);
		return;
	}
	list_push_front(&p->waiting, r);
	kick(p);
}

static void finish(struct push *p, struct push_req *r)
{
	if (r->status >= 200 && r->status < 300) { /* push_classify's verdict for any 2xx */
		req_report(p, r, OUTCOME_ACCEPTED, NULL, 0);
		return;
	}
	char reason[128];
	uint32_t retry_ms = 0;
	enum push_verdict v = push_classify(p->prov, r->status, r->rbody, r->rlen,
					    r->retry_after[0] ? r->retry_after : NULL, &retry_ms,
					    reason, sizeof(reason));
	const char *why = static_reason(v, reason);
	switch (v) {
	case PUSH_V_ACCEPTED:
		req_report(p, r, OUTCOME_ACCEPTED, NULL, 0);
		return;
	case PUSH_V_DEAD_TOKEN:
		mark_dead(p, r->d->address);
		req_report(p, r, OUTCOME_PERMANENT, why, 0);
		return;
	case PUSH_V_PERMANENT:
		req_report(p, r, OUTCOME_PERMANENT, why, 0);
		return;
	case PUSH_V_THROTTLED:
		req_report(p, r, OUTCOME_THROTTLED, why, retry_ms);
		return;
	case PUSH_V_REFRESH_AUTH:
		if (p->has_jwt && !r->auth_retried && push_jwt_expired(&p->jwt, r->jwt_gen, loop_wall_s())) {
			r->auth_retried = true;
			requeue(p, r);
			return;
		}
		req_report(p, r, OUTCOME_TRANSIENT, why, 0);
		return;
	case PUSH_V_TRANSIENT:
		break;
	}
	req_report(p, r, OUTCOME_TRANSIENT, why, 0);
}

/* --- nghttp2 callbacks --- */

static struct push_req *stream_req(nghttp2_session *ng, int32_t id)
{
	return nghttp2_session_get_stream_user_data(ng, id);
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	/* the name first: the stream's lookup only for the two fields kept */
	bool status = namelen == 7 && !memcmp(name, ":status", 7) && valuelen == 3;
	if ((!status && (namelen != 11 || memcmp(name, "retry-after", 11))) ||
	    f->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct push_req *r = stream_req(ng, f->hd.stream_id);
	if (!r)
		return 0;
	if (status) {
		r->status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
	} else {
		size_t n = valuelen < sizeof(r->retry_after) - 1 ? valuelen : sizeof(r->retry_after) - 1;
		memcpy(r->retry_after, value, n);
		r->retry_after[n] = 0;
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *user)
{
	struct push_req *r = stream_req(ng, id);
	if (!r || (r->status >= 200 && r->status < 300)) /* a 2xx's body is not read (finish) */
		return 0;
	size_t room = sizeof(r->rbody) - r->rlen; /* longer answers are cut, not buffered */
	size_t n = len < room ? len : room;
	memcpy(r->rbody + r->rlen, data, n);
	r->rlen += n;
	return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	if (f->hd.type != NGHTTP2_HEADERS) /* no lookup for the DATA frames */
		return 0;
	struct push_req *r = stream_req(ng, f->hd.stream_id);
	if (r)
		r->sent = true;
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
	struct push_conn *pc = user;
	struct push_req *r = stream_req(ng, id);
	if (!r)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	list_remove(&pc->reqs, r);
	pc->inflight--;
	if (code == NGHTTP2_REFUSED_STREAM && r->status == 0)
		requeue(pc->p, r); /* not processed: send it elsewhere, unreported */
	else if (r->status == 0)
		req_report(pc->p, r, OUTCOME_TRANSIENT, "push: stream reset", 0);
	else
		finish(pc->p, r);
	kick(pc->p);
	return 0;
}

static void on_goaway(struct push_conn *pc, const nghttp2_goaway *g)
{
	struct push *p = pc->p;
	log_info("msg=\"push GOAWAY\" lane=%s conn=%lu last_stream=%d error=%u", p->lane->name,
		 (unsigned long)pc->id, g->last_stream_id, g->error_code);
	if (pc->state == PC_OPEN) {
		pc->state = PC_DRAINING;
		pc->drain_ms = now_ms(p);
	}
	if (p->conns[pc->slot] == pc)
		p->conns[pc->slot] = NULL; /* a new connection takes the slot */
	update_up(p, "GOAWAY");
	kick(p);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct push_conn *pc = user;
	pc->last_rx_ms = now_ms(pc->p);
	if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
		if (!pc->settings_seen) {
			pc->settings_seen = true;
			pc->p->backoff_ms = PUSH_BACKOFF_MIN_MS;
			update_up(pc->p, "connected");
		}
		kick(pc->p); /* a raised MAX_CONCURRENT_STREAMS is room for waiting requests */
	} else if (f->hd.type == NGHTTP2_GOAWAY) {
		on_goaway(pc, &f->goaway);
	} else if (f->hd.type == NGHTTP2_PING && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
		pc->ping_sent_ms = 0;
	}
	return 0;
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len,
			 uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct push_req *r = src->ptr;
	size_t n = r->len - r->off;
	if (n > len)
		n = len;
	memcpy(out, r->body + r->off, n);
	r->off += n;
	if (r->off == r->len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* --- connection I/O --- */

static void pc_unref(struct push_conn *pc)
{
	if (--pc->refs > 0)
		return;
	struct push *p = pc->p;
	if (pc->ng)
		nghttp2_session_del(pc->ng);
	if (pc->ssl)
		SSL_free(pc->ssl);
	if (pc->fd >= 0)
		close(pc->fd);
	buf_release(&pc->out);
	buf_release(&pc->sending);
	buf_release(&pc->plain);
	if (pc->all_prev)
		pc->all_prev->all_next = pc->all_next;
	else
		p->all = pc->all_next;
	if (pc->all_next)
		pc->all_next->all_prev = pc->all_prev;
	free(pc);
	p->live--;
}

static void arm_recv(struct push_conn *pc)
{
	if (pc->recv_armed || pc->state == PC_CLOSING)
		return;
	struct io_uring_sqe *sqe = loop_sqe(pc->p->host.loop, &pc->recv_op);
	io_uring_prep_recv(sqe, pc->fd, pc->rbuf, sizeof(pc->rbuf), 0);
	pc->recv_armed = true;
	pc->refs++;
}

static void flush(struct push_conn *pc)
{
	if (pc->send_armed || pc->out.len == 0 || pc->state == PC_CLOSING)
		return;
	buf_swap(&pc->out, &pc->sending);
	pc->out.len = 0;
	pc->sending_off = 0;
	struct io_uring_sqe *sqe = loop_sqe(pc->p->host.loop, &pc->send_op);
	io_uring_prep_send(sqe, pc->fd, pc->sending.data, pc->sending.len, MSG_NOSIGNAL);
	pc->send_armed = true;
	pc->refs++;
}

static size_t out_pending(const struct push_conn *pc)
{
	return pc->plain.len + pc->out.len + (pc->sending.len - pc->sending_off);
}

static int drain_wbio(struct push_conn *pc)
{
	size_t pending;
	while ((pending = BIO_ctrl_pending(pc->wbio)) > 0) {
		if (buf_reserve(&pc->out, pending, PUSH_OUT_MAX) < 0)
			return -1;
		int n = BIO_read(pc->wbio, pc->out.data + pc->out.len, (int)pending);
		if (n <= 0)
			break;
		pc->out.len += (size_t)n;
	}
	return 0;
}

/* Queue plaintext (encrypted when TLS). */
/*
 * Queue frames. TLS: staged as plaintext and sealed by seal_plain() once
 * per pump, so a request's HEADERS and DATA and its neighbours share a
 * record instead of one record (and one AEAD pass) per frame.
 */
static int pc_write(struct push_conn *pc, const uint8_t *data, size_t len)
{
	return buf_append(pc->ssl ? &pc->plain : &pc->out, data, len, PUSH_OUT_MAX);
}

static int seal_plain(struct push_conn *pc)
{
	for (size_t off = 0, n; off < pc->plain.len; off += n) {
		n = pc->plain.len - off < 16384 ? pc->plain.len - off : 16384;
		if (SSL_write(pc->ssl, pc->plain.data + off, (int)n) <= 0) /* memory BIO: all or error */
			return -1;
	}
	pc->plain.len = 0;
	return drain_wbio(pc);
}

/* Pull frames out of nghttp2 into the output buffer while there is room. */
static void pump(struct push_conn *pc)
{
	if (!pc->ng || pc->state == PC_CLOSING)
		return;
	while (out_pending(pc) < PUSH_OUT_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(pc->ng, &data);
		if (n < 0) {
			pc_close(pc, nghttp2_strerror((int)n));
			return;
		}
		if (n == 0)
			break;
		if (pc_write(pc, data, (size_t)n) < 0) { /* copied: data dies at the next call */
			pc_close(pc, "output overflow");
			return;
		}
	}
	if (pc->ssl && pc->plain.len && seal_plain(pc) < 0) {
		pc_close(pc, "TLS write failed");
		return;
	}
	flush(pc);
	if (!nghttp2_session_want_read(pc->ng) && !nghttp2_session_want_write(pc->ng) &&
	    out_pending(pc) == 0)
		pc_close(pc, "session finished");
}

/*
 * After a completion: what nghttp2 has to send (acks, window updates, and
 * the requests the dispatcher submits in answer to the reports just made)
 * goes out in one send per connection, from the zero-delay kick that runs
 * after this loop iteration's completions, instead of a send now and the
 * rest after its completion. A connection the kick does not pump (draining,
 * in its TLS handshake, or the lane closing) is pumped and flushed now.
 */
static void write_soon(struct push_conn *pc)
{
	struct push *p = pc->p;
	if (p->closing || pc->state == PC_CLOSING || !pc->ng || p->conns[pc->slot] != pc) {
		pump(pc);
		flush(pc);
		return;
	}
	kick(p);
}

static void on_send(struct op *op, int res, uint32_t flags)
{
	struct push_conn *pc = CONTAINER(op, struct push_conn, send_op);
	pc->send_armed = false;
	if (res <= 0 || pc->state == PC_CLOSING) {
		pc_close(pc, "send failed");
		pc_unref(pc);
		return;
	}
	pc->sending_off += (size_t)res;
	if (pc->sending_off < pc->sending.len) { /* short send: the rest, same buffer */
		struct io_uring_sqe *sqe = loop_sqe(pc->p->host.loop, &pc->send_op);
		io_uring_prep_send(sqe, pc->fd, pc->sending.data + pc->sending_off,
				   pc->sending.len - pc->sending_off, MSG_NOSIGNAL);
		pc->send_armed = true;
		return; /* keeps its reference */
	}
	pc->sending.len = 0;
	pc->sending_off = 0;
	write_soon(pc);
	pc_unref(pc);
}

static int start_h2(struct push_conn *pc)
{
	nghttp2_session_callbacks *cbs;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return -1;
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_mem mem = {.mem_user_data = pc->p->pool, .malloc = ng_malloc, .free = ng_free,
			   .calloc = ng_calloc, .realloc = ng_realloc};
	int ret = nghttp2_session_client_new3(&pc->ng, cbs, pc, NULL, &mem);
	nghttp2_session_callbacks_del(cbs);
	if (ret != 0)
		return -1;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
	};
	nghttp2_submit_settings(pc->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
	pc->state = PC_OPEN;
	pump(pc);
	return 0;
}

static void feed_h2(struct push_conn *pc, const uint8_t *d, size_t n)
{
	ssize_t r = nghttp2_session_mem_recv(pc->ng, d, n);
	if (r < 0)
		pc_close(pc, nghttp2_strerror((int)r));
}

static bool alpn_is_h2(SSL *ssl)
{
	const unsigned char *a = NULL;
	unsigned int n = 0;
	SSL_get0_alpn_selected(ssl, &a, &n);
	return n == 2 && !memcmp(a, "h2", 2);
}

static void tls_handshake(struct push_conn *pc)
{
	int r = SSL_do_handshake(pc->ssl);
	if (drain_wbio(pc) < 0) {
		pc_close(pc, "output overflow");
		return;
	}
	if (r == 1) {
		if (!alpn_is_h2(pc->ssl))
			pc_close(pc, "peer did not select ALPN h2");
		else if (start_h2(pc) < 0)
			pc_close(pc, "nghttp2 session");
		return;
	}
	if (SSL_get_error(pc->ssl, r) != SSL_ERROR_WANT_READ) {
		char e[160];
		ERR_error_string_n(ERR_get_error(), e, sizeof(e));
		log_warn("msg=\"push TLS handshake failed\" lane=%s err=\"%s\"", pc->p->lane->name, e);
		ERR_clear_error();
		pc_close(pc, "TLS handshake failed");
	}
}

static void tls_bytes(struct push_conn *pc, const uint8_t *d, size_t n)
{
	if (BIO_write(pc->rbio, d, (int)n) != (int)n) {
		pc_close(pc, "BIO_write");
		return;
	}
	if (pc->state == PC_HANDSHAKE)
		tls_handshake(pc);
	uint8_t plain[16384];
	while (pc->state == PC_OPEN || pc->state == PC_DRAINING) {
		int r = SSL_read(pc->ssl, plain, sizeof(plain));
		if (r > 0) {
			feed_h2(pc, plain, (size_t)r);
			continue;
		}
		if (SSL_get_error(pc->ssl, r) != SSL_ERROR_WANT_READ) {
			ERR_clear_error();
			pc_close(pc, "TLS closed");
		}
		break;
	}
	if (pc->state != PC_CLOSING && drain_wbio(pc) < 0)
		pc_close(pc, "output overflow");
}

static void on_recv(struct op *op, int res, uint32_t flags)
{
	struct push_conn *pc = CONTAINER(op, struct push_conn, recv_op);
	pc->recv_armed = false;
	if (res <= 0 || pc->state == PC_CLOSING) {
		pc_close(pc, res == 0 ? "closed by peer" : "recv failed");
		pc_unref(pc);
		return;
	}
	pc->last_rx_ms = now_ms(pc->p);
	if (pc->ssl)
		tls_bytes(pc, pc->rbuf, (size_t)res);
	else
		feed_h2(pc, pc->rbuf, (size_t)res);
	write_soon(pc);
	arm_recv(pc);
	pc_unref(pc);
}

/*
 * Requests still on a closing connection. Accepted ones (2xx seen) are
 * reported; the rest are resent on another connection, those that had left
 * at most PUSH_LOST_RESENDS times (see the file header: duplicates over
 * losses).
 */
static void release_reqs(struct push_conn *pc)
{
	struct push_req *r;
	while ((r = pc->reqs.tail)) { /* from the back: requeue pushes to the front */
		list_remove(&pc->reqs, r);
		pc->inflight--;
		if (pc->ng)
			nghttp2_session_set_stream_user_data(pc->ng, r->stream_id, NULL);
		if (r->status >= 200 && r->status < 300)
			finish(pc->p, r); /* the provider took it; only the end of its answer was lost */
		else if (!r->sent)
			requeue(pc->p, r);
		else if (r->resends < PUSH_LOST_RESENDS) {
			r->resends++;
			requeue(pc->p, r);
		} else
			req_report(pc->p, r, OUTCOME_TRANSIENT, "push: connection lost", 0);
	}
}

static void pc_close(struct push_conn *pc, const char *why)
{
	struct push *p = pc->p;
	if (pc->state == PC_CLOSING)
		return;
	bool was_usable = pc->settings_seen;
	if (!was_usable) { /* never got going: back off before the next attempt */
		p->next_connect_ms = now_ms(p) + p->backoff_ms;
		p->backoff_ms = p->backoff_ms * 2 > PUSH_BACKOFF_MAX_MS ? PUSH_BACKOFF_MAX_MS
									: p->backoff_ms * 2;
	}
	pc->state = PC_CLOSING;
	if (!p->closing)
		log_info("msg=\"push connection closed\" lane=%s conn=%lu why=\"%s\"", p->lane->name,
			 (unsigned long)pc->id, why);
	if (p->conns[pc->slot] == pc)
		p->conns[pc->slot] = NULL;
	release_reqs(pc);
	shutdown(pc->fd, SHUT_RDWR); /* completes the armed recv/send */
	if (pc->recv_armed) {
		struct io_uring_sqe *sqe = loop_sqe(p->host.loop, NULL);
		io_uring_prep_cancel(sqe, &pc->recv_op, 0);
	}
	if (!p->closing) {
		update_up(p, why);
		kick(p);
	}
	pc_unref(pc); /* the "open" reference */
}

static void on_connect(struct op *op, int res, uint32_t flags)
{
	struct push_conn *pc = CONTAINER(op, struct push_conn, connect_op);
	if (res < 0 || pc->state == PC_CLOSING) {
		pc_close(pc, "connect failed");
		pc_unref(pc);
		return;
	}
	pc->last_rx_ms = now_ms(pc->p);
	if (pc->ssl) {
		pc->state = PC_HANDSHAKE;
		tls_handshake(pc);
	} else if (start_h2(pc) < 0) {
		pc_close(pc, "nghttp2 session");
	}
	flush(pc);
	arm_recv(pc);
	pc_unref(pc);
}

static SSL *new_client_ssl(struct push *p, BIO **rbio, BIO **wbio)
{
	SSL *ssl = SSL_new(p->ssl_ctx);
	if (!ssl)
		return NULL;
	*rbio = BIO_new(BIO_s_mem());
	*wbio = BIO_new(BIO_s_mem());
	if (!*rbio || !*wbio)
		goto out_free;
	BIO_set_mem_eof_return(*rbio, -1);
	SSL_set_bio(ssl, *rbio, *wbio); /* ssl owns both now */
	SSL_set_connect_state(ssl);
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, p->host_name, ip) == 1 ||
		     inet_pton(AF_INET6, p->host_name, ip) == 1;
	if (!is_ip)
		SSL_set_tlsext_host_name(ssl, p->host_name);
	if (!p->insecure) {
		if (is_ip)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), p->host_name);
		else
			SSL_set1_host(ssl, p->host_name);
	}
	return ssl;
out_free:
	BIO_free(*rbio);
	BIO_free(*wbio);
	SSL_free(ssl);
	return NULL;
}

static void pc_open(struct push *p, unsigned slot)
{
	struct push_conn *pc = calloc(1, sizeof(*pc));
	if (!pc)
		return;
	pc->fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (pc->fd < 0)
		goto out_free;
	int one = 1; /* small frames (SETTINGS ack, WINDOW_UPDATE) must not wait for an ACK */
	if (p->sa.ss_family != AF_UNIX)
		setsockopt(pc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (p->tls && !(pc->ssl = new_client_ssl(p, &pc->rbio, &pc->wbio)))
		goto out_close;
	pc->p = p;
	pc->id = ++p->next_conn_id;
	pc->slot = slot;
	pc->state = PC_CONNECTING;
	pc->refs = 2; /* open + the connect op */
	pc->connect_op.cb = on_connect;
	pc->recv_op.cb = on_recv;
	pc->send_op.cb = on_send;
	pc->opened_ms = now_ms(p);
	p->conns[slot] = pc;
	p->live++;
	pc->all_next = p->all;
	if (p->all)
		p->all->all_prev = pc;
	p->all = pc;
	struct io_uring_sqe *sqe = loop_sqe(p->host.loop, &pc->connect_op);
	io_uring_prep_connect(sqe, pc->fd, (struct sockaddr *)&p->sa, p->salen);
	return;
out_close:
	close(pc->fd);
out_free:
	free(pc);
}

static void ensure_conns(struct push *p)
{
	if (p->closing || now_ms(p) < p->next_connect_ms)
		return;
	for (unsigned i = 0; i < p->n_conns; i++)
		if (!p->conns[i])
			pc_open(p, i); /* a dead peer costs n_conns attempts per backoff period */
}

/* --- building and submitting requests --- */

/*
 * Token characters, one table lookup per byte: TOK_HEX an APNs (hex)
 * character, TOK_FCM an FCM one, TOK_VIS any byte allowed in a webhook token
 * (not a control character, space or DEL), TOK_PLAIN printable ASCII with
 * nothing to escape in JSON.
 */
enum { TOK_HEX = 1, TOK_FCM = 2, TOK_VIS = 4, TOK_PLAIN = 8 };
static unsigned char tok_class[256];

static void tok_class_init(void)
{
	for (unsigned c = 0; c < 256; c++) {
		bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
		bool fcm = hex || (c >= 'g' && c <= 'z') || (c >= 'G' && c <= 'Z') || c == '_' ||
			   c == '-' || c == ':' || c == '.';
		bool vis = c > ' ' && c != 0x7f;
		bool plain = vis && c < 0x7f && c != '"' && c != '\\';
		tok_class[c] = (unsigned char)((hex && vis ? TOK_HEX : 0) | (fcm && vis ? TOK_FCM : 0) |
					       (vis ? TOK_VIS : 0) | (plain ? TOK_PLAIN : 0));
	}
}

/*
 * Whether t is a token the provider can take (webhook: any visible
 * characters), in one pass: its length into *len, and into *plain whether
 * it can go into JSON as it is.
 */
static bool token_check(enum push_provider prov, const char *t, size_t *len, bool *plain)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, tok_class_init);
	/*
	 * The length first (libc's strlen goes a vector at a time), then the
	 * classes in four independent chains: a byte-at-a-time loop that also
	 * looked for the NUL ran at ~4 cycles a character, most of on_kick's
	 * own time for 163-character FCM tokens.
	 */
	size_t n = strlen(t), i = 0;
	const unsigned char *u = (const unsigned char *)t;
	unsigned char a0 = 0xff, a1 = 0xff, a2 = 0xff, a3 = 0xff;
	for (; i + 4 <= n; i += 4) {
		a0 &= tok_class[u[i]];
		a1 &= tok_class[u[i + 1]];
		a2 &= tok_class[u[i + 2]];
		a3 &= tok_class[u[i + 3]];
	}
	for (; i < n; i++)
		a0 &= tok_class[u[i]];
	unsigned char all = a0 & a1 & a2 & a3;
	*len = n;
	*plain = all & TOK_PLAIN;
	if (n == 0 || n > 4096)
		return false;
	unsigned char need = prov == PUSH_APNS ? TOK_HEX : prov == PUSH_FCM ? TOK_FCM : TOK_VIS;
	return (all & need) == need && (prov != PUSH_APNS || n <= 200);
}

static const char *level_for(const struct push *p, Tocsin__Severity sev)
{
	if (sev == TOCSIN__SEVERITY__EXTREME)
		return p->level_extreme;
	return sev == TOCSIN__SEVERITY__SEVERE ? "time-sensitive" : "active";
}

static int64_t ttl_left(const struct campaign *c)
{
	int64_t left = campaign_expires(c) - loop_wall_s();
	return left > 0 ? left : 0;
}

static void fill_msg(const struct push *p, const struct delivery *d, struct push_msg *m,
		     char *title, size_t cap)
{
	const struct campaign *c = d->campaign;
	const Tocsin__Info *in = campaign_info(c, d->lang);
	bool drill = campaign_is_drill(c);
	snprintf(title, cap, "%s%s", drill && c->drill_prefix ? c->drill_prefix : "",
		 in->headline ? in->headline : "");
	*m = (struct push_msg){
		.warning_id = campaign_id(c),
		.title = title,
		.body = in->instruction && in->instruction[0] ? in->instruction : in->description,
		.severity = warning_severity_name(in->severity),
		.colour = campaign_warning(c)->colour ? warning_colour_name(campaign_warning(c)->colour) : "",
		.language = in->language,
		.token = addr_token(d->address),
		.interruption_level = level_for(p, in->severity),
		.sound = "default",
		.expires = campaign_expires(c),
		.ttl_s = ttl_left(c),
		.drill = drill,
	};
}

/* The whole body for m, malloc'd; its length in *len. NULL when it cannot be built. */
static char *render(const struct push *p, const struct push_msg *m, size_t *len)
{
	char *b = malloc(PUSH_MAX_BODY);
	if (!b)
		return NULL;
	int n = p->prov == PUSH_APNS ? push_apns_payload(b, PUSH_MAX_BODY, m)
		: p->prov == PUSH_FCM ? push_fcm_payload(b, PUSH_MAX_BODY, m)
				      : push_webhook_payload(b, PUSH_MAX_BODY, m);
	if (n < 0) {
		free(b);
		return NULL;
	}
	*len = (size_t)n;
	return b;
}

static void tmpl_release(struct body_tmpl *t)
{
	free(t->body);
	free(t->id);
	*t = (struct body_tmpl){0};
}

/*
 * The body for d's warning and language, rendered with an empty token
 * ("token":"" occurs once: every value is escaped, so the pattern cannot
 * come from the warning's text). NULL when it cannot be built.
 */
static const struct body_tmpl *body_template(struct push *p, const struct delivery *d)
{
	const struct campaign *c = d->campaign;
	const char *id = campaign_id(c);
	int64_t ttl = p->prov == PUSH_FCM ? ttl_left(c) : 0;
	for (unsigned i = 0; i < PUSH_BODY_CACHE; i++) {
		struct body_tmpl *t = &p->tmpl[i];
		if (t->body && t->c == c && t->lang == d->lang && t->ttl_s == ttl && !strcmp(t->id, id))
			return t;
	}
	struct body_tmpl *t = &p->tmpl[p->tmpl_next++ % PUSH_BODY_CACHE];
	tmpl_release(t);
	char title[1024];
	struct push_msg m;
	fill_msg(p, d, &m, title, sizeof(title));
	m.token = "";
	m.ttl_s = ttl;
	size_t len;
	char *body = render(p, &m, &len);
	const char *at = body && p->prov != PUSH_APNS ? strstr(body, "\"token\":\"\"") : NULL;
	if (!body || (p->prov != PUSH_APNS && !at) || !(t->id = strdup(id))) {
		free(body);
		return NULL;
	}
	t->c = c;
	t->lang = d->lang;
	t->ttl_s = ttl;
	t->body = body;
	t->len = len;
	t->tok_at = at ? (size_t)(at - body) + 9 : NO_TOKEN;
	return t;
}

/* The request body: the cached rendering with the token put in (or rendered whole). */
static int build_body(struct push *p, struct push_req *r, const char *tok, bool plain)
{
	size_t tl = r->tok_len;
	const struct body_tmpl *t = plain ? body_template(p, r->d) : NULL;
	if (!t) { /* a webhook token that needs escaping, or no room in the cache's body */
		char title[1024];
		struct push_msg m;
		fill_msg(p, r->d, &m, title, sizeof(title));
		char *b = render(p, &m, &r->len);
		if (!b)
			return -1;
		free(r->body);
		r->body = b;
		r->body_cap = PUSH_MAX_BODY;
		r->built = true;
		return 0;
	}
	size_t head = t->tok_at == NO_TOKEN ? t->len : t->tok_at, add = t->tok_at == NO_TOKEN ? 0 : tl;
	if (t->len + add > (p->prov == PUSH_APNS ? PUSH_APNS_MAX_PAYLOAD - 1 : PUSH_MAX_BODY - 1))
		return -1; /* what the builders would have refused */
	if (r->body_cap < t->len + add + 1) {
		size_t cap = t->len + add + 1 < 1024 ? 1024 : t->len + add + 1;
		char *b = malloc(cap);
		if (!b)
			return -1;
		free(r->body);
		r->body = b;
		r->body_cap = cap;
	}
	memcpy(r->body, t->body, head);
	memcpy(r->body + head, tok, add);
	memcpy(r->body + head + add, t->body + head, t->len - head + 1);
	r->len = t->len + add;
	r->built = true;
	return 0;
}

/*
 * Header fields are given to nghttp2 without a copy (NO_COPY_NAME and
 * NO_COPY_VALUE): nghttp2 reads them when it encodes the HEADERS frame, at
 * a later mem_send. So every value must live until the request leaves its
 * connection: literals, the lane's settings, the request's own buffers
 * (clen, apns_*) and r->auth, a counted reference to the credentials (a new
 * JWT or bearer token makes a new string; queued requests keep the old one).
 */
#define NV_FLAGS (NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE)
#define NVL(n, v, vl) {(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl), NV_FLAGS}
#define NVS(n, v) NVL(n, v, sizeof(v) - 1)

/* APNs wants a collapse id of at most 64 bytes: longer warning ids are hashed. */
static void collapse_id(const char *id, char out[65])
{
	if (strlen(id) <= 64) {
		snprintf(out, 65, "%s", id);
		return;
	}
	unsigned char md[32];
	unsigned int mdlen = 0;
	EVP_Digest(id, strlen(id), md, &mdlen, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The campaign's APNs expiration and collapse id, formatted once per warning. */
static void apns_campaign_headers(struct push *p, const struct campaign *c)
{
	const char *id = campaign_id(c);
	if (p->hdr_c == c && p->hdr_id && !strcmp(p->hdr_id, id))
		return;
	free(p->hdr_id);
	p->hdr_id = strdup(id);
	p->hdr_c = p->hdr_id ? c : NULL;
	snprintf(p->hdr_exp, sizeof(p->hdr_exp), "%lld", (long long)campaign_expires(c));
	collapse_id(id, p->hdr_cid);
}

/* The credentials' header value, made anew when they changed (gen + 1 held in auth_gen). */
static int auth_header(struct push *p, unsigned gen, const char *prefix, const char *token)
{
	if (p->auth && p->auth_gen == gen + 1)
		return 0;
	struct hstr *h = hstr_new(prefix, token);
	if (!h)
		return -1;
	hstr_unref(p->auth);
	p->auth = h;
	p->auth_gen = gen + 1;
	return 0;
}

static void take_auth(struct push *p, struct push_req *r, nghttp2_nv *nv)
{
	r->auth = p->auth;
	r->auth->refs++;
	*nv = (nghttp2_nv)NVL("authorization", r->auth->s, r->auth->len);
}

static int apns_headers(struct push *p, struct push_req *r, nghttp2_nv *nv, nghttp2_nv *path)
{
	const struct campaign *c = r->d->campaign;
	const char *jwt = push_jwt_get(&p->jwt, loop_wall_s());
	if (!jwt || auth_header(p, p->jwt.gen, "bearer ", jwt) < 0)
		return -1;
	r->jwt_gen = p->jwt.gen;
	const char *tok = addr_token(r->d->address);
	size_t tl = r->tok_len; /* ≤ 200: token_check */
	memcpy(r->apns_path, "/3/device/", 10);
	memcpy(r->apns_path + 10, tok, tl + 1);
	*path = (nghttp2_nv)NVL(":path", r->apns_path, 10 + tl);
	apns_campaign_headers(p, c);
	memcpy(r->apns_exp, p->hdr_exp, sizeof(r->apns_exp));
	memcpy(r->apns_cid, p->hdr_cid, sizeof(r->apns_cid));
	const Tocsin__Info *in = campaign_info(c, r->d->lang);
	bool now = in->urgency == TOCSIN__URGENCY__IMMEDIATE;
	nv[0] = (nghttp2_nv)NVL("apns-topic", p->topic, p->topic_len);
	nv[1] = (nghttp2_nv)NVS("apns-push-type", "alert");
	nv[2] = (nghttp2_nv)NVL("apns-priority", now ? "10" : "5", now ? 2 : 1);
	nv[3] = (nghttp2_nv)NVL("apns-expiration", r->apns_exp, strlen(r->apns_exp));
	nv[4] = (nghttp2_nv)NVL("apns-collapse-id", r->apns_cid, strlen(r->apns_cid));
	take_auth(p, r, &nv[5]);
	return 6;
}

/* The provider's own headers into nv, the :path into *path; how many, or -1. */
static int provider_headers(struct push *p, struct push_req *r, nghttp2_nv *nv, nghttp2_nv *path)
{
	if (p->prov == PUSH_APNS)
		return apns_headers(p, r, nv, path);
	if (p->prov == PUSH_FCM) {
		if (!p->hdr_path_len) {
			snprintf(p->hdr_path, sizeof(p->hdr_path), "/v1/projects/%s/messages:send", p->project);
			p->hdr_path_len = strlen(p->hdr_path);
		}
		if (auth_header(p, p->bearer_gen, "Bearer ", p->bearer) < 0)
			return -1;
		*path = (nghttp2_nv)NVL(":path", p->hdr_path, p->hdr_path_len);
		take_auth(p, r, &nv[0]);
		return 1;
	}
	*path = (nghttp2_nv)NVL(":path", p->path, strlen(p->path));
	return 0;
}

/* Decimal digits of v into out (no NUL); how many. */
static size_t fmt_size(char *out, size_t v)
{
	char tmp[24];
	size_t n = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

static int submit_on(struct push_conn *pc, struct push_req *r)
{
	struct push *p = pc->p;
	nghttp2_nv nv[16];
	int n = provider_headers(p, r, nv + 6, &nv[3]);
	if (n < 0) {
		req_detach(r);
		return -1;
	}
	size_t cl = fmt_size(r->clen, r->len);
	nv[0] = (nghttp2_nv)NVS(":method", "POST");
	nv[1] = p->tls ? (nghttp2_nv)NVS(":scheme", "https") : (nghttp2_nv)NVS(":scheme", "http");
	nv[2] = (nghttp2_nv)NVL(":authority", p->authority, p->authority_len);
	nv[4] = (nghttp2_nv)NVS("content-type", "application/json");
	nv[5] = (nghttp2_nv)NVL("content-length", r->clen, cl);
	r->off = 0;
	nghttp2_data_provider dp = {.source.ptr = r, .read_callback = read_body};
	int32_t id = nghttp2_submit_request(pc->ng, NULL, nv, (size_t)(6 + n), &dp, r);
	if (id < 0) {
		req_detach(r);
		return -1;
	}
	r->stream_id = id;
	r->pc = pc;
	list_push_back(&pc->reqs, r);
	pc->inflight++;
	return 0;
}

static unsigned conn_cap(const struct push_conn *pc)
{
	uint32_t peer = nghttp2_session_get_remote_settings(pc->ng,
							    NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
	return peer < pc->p->max_streams ? peer : pc->p->max_streams;
}

/* The usable connection with the fewest requests in flight, or NULL. */
static struct push_conn *pick_conn(struct push *p)
{
	struct push_conn *best = NULL;
	for (unsigned i = 0; i < p->n_conns; i++) {
		struct push_conn *pc = p->conns[i];
		if (!pc || pc->state != PC_OPEN || !pc->settings_seen ||
		    pc->inflight >= conn_cap(pc) || !nghttp2_session_check_request_allowed(pc->ng))
			continue;
		if (!best || pc->inflight < best->inflight)
			best = pc;
	}
	return best;
}

static void on_kick(struct timer *t)
{
	struct push *p = CONTAINER(t, struct push, kick);
	ensure_conns(p);
	struct push_req *r;
	struct push_conn *pc;
	while ((r = p->waiting.head) && (pc = pick_conn(p))) {
		list_remove(&p->waiting, r);
		const char *tok = addr_token(r->d->address);
		bool plain;
		if (!token_check(p->prov, tok, &r->tok_len, &plain)) {
			req_report(p, r, OUTCOME_PERMANENT, "push: malformed token", 0);
			continue;
		}
		if ((!r->built && build_body(p, r, tok, plain) < 0) || submit_on(pc, r) < 0) {
			req_report(p, r, OUTCOME_PERMANENT, "push: cannot build request", 0);
			continue;
		}
	}
	for (unsigned i = 0; i < p->n_conns; i++)
		if (p->conns[i])
			pump(p->conns[i]);
}

static void kick(struct push *p)
{
	if (!p->closing && !loop_timer_armed(&p->kick))
		loop_timer_set(p->host.loop, &p->kick, 0, on_kick);
}

static void update_up(struct push *p, const char *why)
{
	bool up = false;
	for (unsigned i = 0; i < p->n_conns; i++)
		if (p->conns[i] && p->conns[i]->state == PC_OPEN && p->conns[i]->settings_seen)
			up = true;
	if (up == p->up || p->closing)
		return;
	p->up = up;
	if (!up)
		p->down_since_ms = now_ms(p);
	p->host.up(p->host.ctx, p->lane, up, why);
}

/* Re-read the FCM bearer token when the file changed. */
static void read_token_file(struct push *p)
{
	struct stat st;
	if (!p->token_file[0] || stat(p->token_file, &st) < 0)
		return;
	if (st.st_mtim.tv_sec == p->bearer_mtime.tv_sec && st.st_mtim.tv_nsec == p->bearer_mtime.tv_nsec)
		return;
	FILE *f = fopen(p->token_file, "r");
	if (!f)
		return;
	char tmp[sizeof(p->bearer)];
	size_t n = fread(tmp, 1, sizeof(tmp) - 1, f);
	fclose(f);
	while (n && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r' || tmp[n - 1] == ' '))
		n--;
	tmp[n] = 0;
	if (n == 0 || strpbrk(tmp, "\r\n"))
		return; /* half-written or junk: keep the old token */
	memcpy(p->bearer, tmp, n + 1);
	p->bearer_gen++;
	p->bearer_mtime = st.st_mtim;
}

static void check_conn(struct push_conn *pc, uint64_t now)
{
	if (pc->state < PC_OPEN && now - pc->opened_ms > PUSH_CONNECT_TIMEOUT_MS) {
		pc_close(pc, "connect timeout");
	} else if (pc->state == PC_DRAINING && now - pc->drain_ms > PUSH_DRAIN_TIMEOUT_MS) {
		pc_close(pc, "drain timeout");
	} else if (pc->state == PC_OPEN && pc->ping_sent_ms &&
		   now - pc->ping_sent_ms > PUSH_PING_TIMEOUT_MS) {
		pc_close(pc, "ping timeout");
	} else if (pc->state == PC_OPEN && !pc->ping_sent_ms &&
		   now - pc->last_rx_ms > PUSH_PING_IDLE_MS) {
		nghttp2_submit_ping(pc->ng, NGHTTP2_FLAG_NONE, NULL);
		pc->ping_sent_ms = now;
		pump(pc);
	}
}

/* Nothing could carry the waiting requests for too long: let the dispatcher retry them. */
static void give_up_waiting(struct push *p, uint64_t now)
{
	if (p->up || now - p->down_since_ms < PUSH_NO_CONN_GIVEUP_MS)
		return;
	struct push_req *r;
	while ((r = p->waiting.head)) {
		list_remove(&p->waiting, r);
		req_report(p, r, OUTCOME_TRANSIENT, "push: no connection", 0);
	}
}

static void on_tick(struct timer *t)
{
	struct push *p = CONTAINER(t, struct push, tick);
	uint64_t now = now_ms(p);
	read_token_file(p);
	for (struct push_conn *pc = p->all, *next; pc; pc = next) {
		next = pc->all_next;
		pc->refs++; /* check_conn may close it */
		check_conn(pc, now);
		pc_unref(pc);
	}
	give_up_waiting(p, now);
	ensure_conns(p);
	loop_timer_set(p->host.loop, &p->tick, PUSH_TICK_MS, on_tick);
}

/* --- adapter entry points --- */

static int parse_url(struct push *p, const char *url, char *err, size_t errlen)
{
	const char *rest;
	if (!strncmp(url, "https://", 8)) {
		p->tls = true;
		rest = url + 8;
	} else if (!strncmp(url, "http://", 7)) {
		rest = url + 7;
	} else {
		goto bad;
	}
	char port[8] = "";
	const char *end = rest + strcspn(rest, "/");
	const char *colon = memrchr(rest, ':', (size_t)(end - rest));
	const char *hs = rest, *he = colon ? colon : end;
	if (*hs == '[' && he > hs && he[-1] == ']')
		hs++, he--;
	if (he <= hs || (size_t)(he - hs) >= sizeof(p->host_name))
		goto bad;
	snprintf(p->host_name, sizeof(p->host_name), "%.*s", (int)(he - hs), hs);
	snprintf(port, sizeof(port), "%.*s", colon ? (int)(end - colon - 1) : 0, colon ? colon + 1 : "");
	if (!port[0])
		snprintf(port, sizeof(port), "%s", p->tls ? "443" : "80");
	snprintf(p->authority, sizeof(p->authority), "%.*s", (int)(end - rest), rest);
	p->authority_len = strlen(p->authority);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
	if (getaddrinfo(p->host_name, port, &hints, &ai) != 0) {
		snprintf(err, errlen, "url: cannot resolve %s", p->host_name);
		return -1;
	}
	memcpy(&p->sa, ai->ai_addr, ai->ai_addrlen);
	p->salen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
bad:
	snprintf(err, errlen, "url: expected https://HOST[:PORT] or http://HOST[:PORT], got '%s'", url);
	return -1;
}

static int tls_setup(struct push *p, const struct config_lane *cfg, char *err, size_t errlen)
{
	p->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (!p->ssl_ctx)
		goto fail;
	SSL_CTX_set_min_proto_version(p->ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(p->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(p->ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_set_alpn_protos(p->ssl_ctx, (const unsigned char *)"\x02h2", 3) != 0)
		goto fail; /* 0 is success here */
	const char *ca = config_lane_get(cfg, "ca_file", NULL);
	if (p->insecure) {
		SSL_CTX_set_verify(p->ssl_ctx, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	SSL_CTX_set_verify(p->ssl_ctx, SSL_VERIFY_PEER, NULL);
	if (ca ? SSL_CTX_load_verify_locations(p->ssl_ctx, ca, NULL) != 1
	       : SSL_CTX_set_default_verify_paths(p->ssl_ctx) != 1) {
		snprintf(err, errlen, "ca_file: cannot load %s", ca ? ca : "the system store");
		return -1;
	}
	return 0;
fail:
	snprintf(err, errlen, "cannot create the TLS client context");
	return -1;
}

static bool yes(const char *v)
{
	return !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1");
}

static int parse_provider(struct push *p, const struct config_lane *cfg, char *err, size_t errlen)
{
	const char *prov = config_lane_get(cfg, "provider", cfg->platform[0] ? cfg->platform : "");
	if (!strcmp(prov, "apns")) {
		p->prov = PUSH_APNS;
		const char *key = config_lane_get(cfg, "key_file", NULL);
		snprintf(p->topic, sizeof(p->topic), "%s", config_lane_get(cfg, "topic", ""));
		p->topic_len = strlen(p->topic);
		if (!key || !p->topic[0]) {
			snprintf(err, errlen, "apns needs topic, team_id, key_id and key_file");
			return -1;
		}
		long refresh = atol(config_lane_get(cfg, "jwt_refresh_s", "3000"));
		if (push_jwt_init(&p->jwt, key, config_lane_get(cfg, "key_id", ""),
				  config_lane_get(cfg, "team_id", ""), refresh, err, errlen) < 0)
			return -1;
		p->has_jwt = true;
		const char *lvl = config_lane_get(cfg, "interruption_level_extreme", "critical");
		if (strcmp(lvl, "critical") && strcmp(lvl, "time-sensitive")) {
			snprintf(err, errlen, "interruption_level_extreme: critical or time-sensitive");
			return -1;
		}
		snprintf(p->level_extreme, sizeof(p->level_extreme), "%s", lvl);
	} else if (!strcmp(prov, "fcm")) {
		p->prov = PUSH_FCM;
		snprintf(p->project, sizeof(p->project), "%s", config_lane_get(cfg, "project", ""));
		snprintf(p->token_file, sizeof(p->token_file), "%s", config_lane_get(cfg, "token_file", ""));
		read_token_file(p);
		if (!p->project[0] || !p->bearer[0]) {
			snprintf(err, errlen, "fcm needs project and a readable, non-empty token_file");
			return -1;
		}
	} else if (!strcmp(prov, "webhook")) {
		p->prov = PUSH_WEBHOOK;
		snprintf(p->path, sizeof(p->path), "%s", config_lane_get(cfg, "path", "/"));
	} else {
		snprintf(err, errlen, "provider: apns, fcm or webhook");
		return -1;
	}
	return 0;
}

static int parse_lane(struct push *p, const struct config_lane *cfg, char *err, size_t errlen)
{
	if (parse_provider(p, cfg, err, errlen) < 0)
		return -1;
	p->n_conns = (unsigned)atoi(config_lane_get(cfg, "connections", "2"));
	p->max_streams = (unsigned)atoi(config_lane_get(cfg, "max_streams", "100"));
	p->insecure = yes(config_lane_get(cfg, "insecure", "no"));
	if (p->n_conns < 1 || p->n_conns > PUSH_MAX_CONNS || p->max_streams < 1) {
		snprintf(err, errlen, "connections must be 1..%d, max_streams >= 1", PUSH_MAX_CONNS);
		return -1;
	}
	if (parse_url(p, config_lane_get(cfg, "url", ""), err, errlen) < 0)
		return -1;
	return p->tls ? tls_setup(p, cfg, err, errlen) : 0;
}

/* Free the recycled requests and nghttp2's free blocks: nothing refers to them. */
static void push_trim(struct push *p)
{
	while (p->free_reqs) {
		struct push_req *r = p->free_reqs;
		p->free_reqs = r->next;
		ASAN_UNPOISON_MEMORY_REGION(r, sizeof(*r));
		free(r->body);
		free(r);
	}
	p->n_free_reqs = 0;
	if (p->pool)
		ng_pool_trim(p->pool);
}

/* From close() on, nothing is kept for reuse. */
static void push_stop_recycling(struct push *p)
{
	push_trim(p);
	if (p->pool)
		p->pool->closed = true;
}

static void push_free(struct push *p)
{
	push_trim(p);
	hstr_unref(p->auth);
	ng_pool_free(p->pool);
	for (unsigned i = 0; i < PUSH_BODY_CACHE; i++)
		tmpl_release(&p->tmpl[i]);
	free(p->hdr_id);
	if (p->has_jwt)
		push_jwt_release(&p->jwt);
	if (p->ssl_ctx)
		SSL_CTX_free(p->ssl_ctx);
	if (p->redis_on)
		redis_release(&p->redis);
	free(p);
}

static int push_open(struct lane *l, const struct lane_host *host, const struct config_lane *cfg,
		     char *err, size_t errlen)
{
	struct push *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->host = *host;
	p->lane = l;
	p->backoff_ms = PUSH_BACKOFF_MIN_MS;
	if (!(p->pool = calloc(1, sizeof(*p->pool)))) {
		snprintf(err, errlen, "out of memory");
		goto out_free;
	}
	if (parse_lane(p, cfg, err, errlen) < 0)
		goto out_free;
	if (host->redis && host->redis[0]) {
		if (redis_init(&p->redis, host->loop, host->redis, err, errlen) < 0)
			goto out_free;
		p->redis_on = true;
		redis_start(&p->redis);
	}
	l->adapter_state = p;
	p->down_since_ms = now_ms(p);
	host->up(host->ctx, l, false, "push: connecting");
	loop_timer_set(host->loop, &p->tick, PUSH_TICK_MS, on_tick);
	ensure_conns(p);
	return 0;
out_free:
	push_free(p);
	return -1;
}

static void push_submit(struct lane *l, struct delivery *d)
{
	struct push *p = l->adapter_state;
	struct push_req *r = req_new(p);
	if (!r)
		abort(); /* out-of-memory policy: the dispatcher's slot must not leak silently */
	r->d = d;
	list_push_back(&p->waiting, r);
	kick(p);
}

static void on_reap(struct timer *t)
{
	struct push *p = CONTAINER(t, struct push, reap);
	if (p->live || (p->redis_on && !redis_idle(&p->redis))) {
		loop_timer_set(p->host.loop, &p->reap, 10, on_reap);
		return;
	}
	push_free(p);
}

static void push_close(struct lane *l)
{
	struct push *p = l->adapter_state;
	if (!p)
		return;
	p->closing = true; /* no report from here on */
	l->adapter_state = NULL;
	loop_timer_cancel(p->host.loop, &p->tick);
	loop_timer_cancel(p->host.loop, &p->kick);
	struct push_req *r;
	while ((r = p->waiting.head)) {
		list_remove(&p->waiting, r);
		req_free(p, r);
	}
	for (struct push_conn *pc = p->all, *next; pc; pc = next) {
		next = pc->all_next;
		pc_close(pc, "lane closed");
	}
	push_stop_recycling(p); /* at once: the rest waits for the connections' last completions */
	if (p->redis_on)
		redis_stop(&p->redis);
	on_reap(&p->reap); /* frees now, or once the last op came back */
}

const struct adapter_ops adapter_push = {
	.name = "push",
	.open = push_open,
	.submit = push_submit,
	.close = push_close,
};
