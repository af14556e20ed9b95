/*
 * adapters/terminal.c: the broadcast-terminal gateway (`adapter = terminal`).
 *
 * Terminals (speakers, displays) connect to us over TCP and stay connected;
 * the protocol is proto/terminal.proto in length-prefixed frames
 * (proto/terminal_frame.h, proto/README-terminal.md). Everything runs on the
 * dispatcher's loop: a multishot accept, one multishot recv per connection
 * over a provided-buffer ring, plain sends, user-space timers.
 *
 * Direct descriptors: a process may hold only RLIMIT_NOFILE descriptors
 * (20,000 on the machines this is built on, and raising the hard limit
 * needs CAP_SYS_RESOURCE), fewer than the 100,000 terminals one node must
 * hold. So an accepted socket is moved at once into the registered-file
 * table of one of the gateway's shards (struct tshard: an extra ring of
 * the loop, loop_ring_open, whose table holds up to `ring_files`
 * sockets) and its descriptor is closed; every operation on it then goes
 * to that ring with IOSQE_FIXED_FILE and the table slot as the "fd". A
 * shard has its own provided-buffer ring. Shards open as connections need
 * them (the first one at open, so a setup error shows at start) and stay
 * until the gateway goes. A slot goes back to its shard's free list (and
 * the socket is closed, by replacing it with -1) only when the connection
 * holds no reference, i.e. no SQE naming the slot is queued or in flight.
 * Credentials and the segment tree behind readiness (terminal_ready.h,
 * one tree for every terminal lane of the process: see `ready` below)
 * come from Redis (the current population version),
 * through the engine's async client on the same loop. With tls_cert and
 * tls_key, each connection runs OpenSSL over memory BIOs (tls_input): the
 * ring moves ciphertext and the Challenge follows the TLS handshake.
 *
 * Lane keys: listen = 0.0.0.0:7000, ack_timeout_ms = 5000,
 * heartbeat_ms = 30000, max_connections = 200000, recv_buffers = 4096
 * (per shard), recv_buffer_size = 2048, handshake_ms = 10000,
 * ring_files = RLIMIT_NOFILE (connections per shard), max_handshakes = 1024,
 * tls_cert, tls_key,
 * send_buffer = 0 (SO_SNDBUF of each connection; 0: the kernel's autotuning),
 * inbound_defer_ms = 1000 or half ack_timeout_ms if less (the loop's
 * extra_defer_ms: how long the terminals' input may wait while Alerts go
 * out; below ack_timeout_ms; see adapters/README.md).
 * Configure the lane's window as the number of terminals: a delivery for
 * an offline terminal holds its slot until the terminal comes back or the
 * warning expires.
 *
 * Handshake cap: while max_handshakes connections are between accept and
 * READY (TLS handshake, Challenge, Hello, the Redis lookup), the multishot
 * accept is cancelled and new connections wait in the kernel's backlog
 * (and past it, in the clients' SYN retries); it is re-armed when one of
 * them finishes. A reconnect storm of 100,000 terminals then costs
 * handshakes that finish, not ones that time out and come back.
 *
 * Every connection that ends is counted once, under one
 * terminal_close_reason, and logged (tconn_note_close): at the move to
 * LINGER (a Reject on its way) or straight to CLOSING.
 *
 * Connection states:
 *
 *   state       entered when                 leaves on
 *   CHALLENGED  accepted; Challenge queued   Hello -> AUTHING; handshake_ms -> close
 *               (TLS: once the handshake     (the deadline is never extended: slowloris)
 *               is done)
 *   AUTHING     Hello parsed; Redis EVAL     reply: mac ok -> READY (Welcome)
 *               in flight (holds a ref)      bad -> Reject, LINGER; Redis down -> Reject TRY_LATER
 *   READY       Welcome queued; in the map   EOF/error/3 silent heartbeats -> CLOSING;
 *                                            same id authenticates elsewhere -> Reject REPLACED
 *   LINGER      a Reject is being sent       sent or 2 s -> CLOSING
 *   CLOSING     recv and send cancelled      last ref (recv, send, Redis reply) dropped -> freed
 *
 * Delivery states (struct tdel, one per submitted delivery):
 *
 *   HELD      terminal offline; timer at expiry       terminal authenticates -> SENT
 *   SENT      Alert written; timer min(ack, expiry)   Ack RECEIVED -> report ACCEPTED -> ACCEPTED
 *                                                     Ack PLAYED/DISPLAYED/PLAYING -> report DELIVERED
 *                                                     Ack FAILED -> report PERMANENT (reason)
 *                                                     ack timeout -> resend, same seq
 *   ACCEPTED  delivery reported; only its id is kept  PLAYED... -> receipt DELIVERED, FAILED -> receipt PERMANENT
 *   any       expiry passed                           report (or receipt) EXPIRED
 *
 * Invariants: one report per submit and never from inside submit() (a
 * delivery for an expired warning gets a 0 ms timer); the struct delivery
 * is touched only before its report; every SQE's user_data is an op
 * embedded in its owner, and a connection is freed only when its last op
 * came back (refs). After close() nothing is reported; the gateway frees
 * itself once its ops and the Redis client are idle (reaper timer).
 *
 * Memory: an idle authenticated plaintext connection costs its struct tconn
 * (TCONN_BYTES below, 224 bytes, with the peer's address kept for the
 * close log) and a timer-heap slot (8 bytes); a TLS one adds OpenSSL's
 * idle SSL (~14.7 KB). Per shard: the free-slot stack (4 bytes a slot).
 * Each terminal of the population has a struct term (48 bytes + id),
 * connected or not, and (up to the lane's window) a struct tdel kept ready
 * for its next Alert (tdel_stock: 128 bytes + malloc's 16). No receive or
 * send buffer is kept while idle (partial frames and output are malloc'd
 * on demand and freed when drained). The recv buffers are one ring per
 * shard (recv_buffers x recv_buffer_size, 8 MiB by default). Kernel socket
 * memory is extra.
 *
 * Fan-out: an Alert's frame is packed once per warning and language
 * (struct abody, refcounted), seq included: a seq names one Alert, the
 * same on every terminal it goes to, and a terminal never holds two
 * deliveries of one Alert (the resolver sends an address once per
 * warning), so an Ack's seq still finds its delivery among the terminal's
 * own. A delivery keeps a ref. To a plaintext connection with nothing
 * queued the shared frame leaves as it is, in one send (tconn.zbody),
 * resumed after a short send; otherwise (TLS, output queued) it is copied
 * behind what is queued. The dispatcher's scheduling step submits many
 * deliveries at once; their SQEs go to the kernel together at the loop's
 * next submit.
 *
 * Out of memory: a connection that cannot allocate is closed; a submit
 * that cannot allocate its tdel aborts (like the loop's timer heap: losing
 * a warning silently is worse).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "adapters.h"
#include "campaign.h"
#include "csv.h"
#include "log.h"
#include "redis.h"
#include "terminal.h"
#include "terminal_ready.h"
#include "tls.h"

#define TCONN_OUTPUT_MAX (1u << 20)
#define LINGER_MS 2000
#define ACCEPT_RETRY_MS 100
#define REAPER_MS 20
#define MAX_REASONS 64
#define POP_CHECK_MS 10000
#define TERMINAL_OFFLINE_LIST 10
#define TERMINAL_FAULT_LIST 10    /* the latest fault reports kept for describe() */
#define FAULT_TEXT_MAX 256        /* a report's faults, joined by ", " (longer: cut, "...") */
#define TERM_VOLUME_UNKNOWN 0xff  /* no Status with a volume yet */
#define SHARD_SQES 1024

enum tconn_state { TC_CHALLENGED, TC_AUTHING, TC_READY, TC_LINGER, TC_CLOSING };
enum tdel_state { TD_HELD, TD_SENT, TD_ACCEPTED };

struct tgw;
struct term;

/*
 * One Alert's whole frame (header included), shared by every delivery of
 * one warning and language (the cache, each tdel and each send in flight
 * hold a ref).
 */
struct abody {
	uint32_t refs, len;
	uint64_t seq;
	uint8_t data[];
};

struct tconn {
	struct tgw *gw;
	struct term *term;             /* READY only */
	struct tconn *prev, *next;     /* gw->conns */
	struct op recv_op, send_op;
	struct timer timer;            /* handshake deadline, heartbeat tick, linger */
	struct buf out, sending;       /* both empty (no memory) while idle */
	struct abody *zbody;           /* an Alert being sent from its shared frame (sending_off
					  bytes of it so far), or NULL; output behind it waits in out */
	uint8_t *rx;                   /* a partial frame, NULL when none */
	SSL *ssl;                      /* TLS lanes: memory BIOs, the ring moves ciphertext */
	uint32_t rx_len, rx_cap, sending_off;
	uint64_t last_rx_ms, last_tx_ms;
	uint32_t slot;                 /* in shards[shard]'s file table: the "fd" of every SQE */
	uint16_t shard;
	uint16_t refs;                 /* open + recv armed + send armed + auth in flight */
	uint8_t state;
	bool recv_armed, send_armed;
	bool handshaking;              /* counted in gw->handshaking (accept to READY or close) */
	uint8_t peer_v6;               /* peer address for the close log (AF_INET6 when 1) */
	uint16_t peer_port;
	uint8_t peer[16];
	uint8_t nonce[TERMINAL_NONCE_LEN];
};

/* An extra ring of the loop and the connections in its file table (see the top). */
struct tshard {
	struct loop_ring *ring;
	struct io_uring_buf_ring *br;
	uint8_t *bufs;                 /* recv_buffers x recv_buffer_size */
	uint32_t *free_slots;          /* stack of unused slots of the table */
	uint32_t nfree;
};

struct tdel {
	struct tgw *gw;
	struct term *t;
	struct tdel *next;             /* t->dels, in submit order */
	struct delivery *d;            /* until reported; NULL after ACCEPTED */
	uint64_t delivery_id, seq;
	int64_t expires_s;
	struct timer timer;
	const char *fail;              /* set: answered PERMANENT from a 0 ms timer */
	struct abody *body;            /* the Alert's frame (shared); NULL: cannot be sent */
	struct tdel *aprev, *anext;    /* the gateway's ack queue, while `queued` */
	uint64_t ack_due_ms;           /* when queued: the Ack RECEIVED is late after this */
	bool queued;
	uint8_t state;
};

struct term {
	struct term *hnext;
	struct tconn *conn;            /* NULL when offline */
	struct tdel *dels;
	uint64_t persons;
	int64_t last_seen_s;
	uint32_t seg;                  /* in `ready`; TREADY_NONE when not in the population */
	uint8_t volume;                /* its last Status's, 0-100; TERM_VOLUME_UNKNOWN before one */
	uint8_t faults;                /* how many faults its last Status listed */
	char id[];
};

struct tauth { /* one Redis lookup in flight */
	struct tconn *c;
	uint8_t mac[TERMINAL_MAC_LEN];
	char id[TERMINAL_ID_MAX + 1];
};

struct alert_cache { /* the last Alert's frame packed (alert_frame) */
	uint64_t campaign;             /* campaign_serial: never reused, unlike an address */
	unsigned lang;
	struct abody *body;
};

struct fault_report { /* a terminal's latest Status that listed faults, until one lists none */
	char id[TERMINAL_ID_MAX + 1];
	char faults[FAULT_TEXT_MAX];
	int64_t at_s;                  /* wall clock */
	uint8_t volume;                /* TERM_VOLUME_UNKNOWN: not reported */
};

struct tgw {
	struct lane_host host;
	struct lane *lane;
	struct tgw *next_gw;           /* every open gateway of the process (all_gws) */
	unsigned ack_timeout_ms, heartbeat_ms, handshake_ms, max_conns, sndbuf;
	unsigned inbound_defer_ms;
	unsigned max_handshakes, handshaking;
	int lfd;
	struct op accept_op;
	bool accept_armed, closing;
	bool accept_paused;            /* handshaking reached max_handshakes: accept cancelled */
	struct timer accept_retry, reaper;
	struct redis_client rc;
	char prefix[64];
	struct tshard *shards;         /* max_shards, the first nshards open */
	unsigned nshards, max_shards, ring_files;
	unsigned nbufs, bufsz;         /* per shard */
	uint16_t bgid;
	struct tconn *conns;
	SSL_CTX *tls;                  /* set when the lane has tls_cert and tls_key */
	struct term *nowhere;          /* holds deliveries that cannot be sent, for close() */
	struct term **buckets;
	size_t nbuckets, nterms;
	uint64_t seq, online;
	long long pop_version;         /* the population version ready was built from; 0 = none */
	struct timer pop_timer;
	bool pop_busy;                 /* a population query is in flight */
	struct terminal_offline offline[TERMINAL_OFFLINE_LIST];
	size_t n_offline;              /* the cached offline-longest list ... */
	bool offline_stale;            /* ... recomputed when a terminal comes or goes */
	struct alert_cache alert;
	struct tdel *free_tdels;       /* finished deliveries' tdels, for reuse (through next) */
	size_t n_free_tdels;
	struct tdel *ack_head, *ack_tail; /* Alerts sent, awaiting their ack timeout (send order) */
	struct timer ack_timer;        /* at ack_head's ack_due_ms */
	struct terminal_stats st;
	struct terminal_arena arena;
	uint8_t *arena_mem;
	char *reasons[MAX_REASONS];
	size_t nreasons;
};

#define TCONN_BYTES sizeof(struct tconn)

/*
 * Broadcast readiness is one for every terminal lane of the process: two
 * lanes (say speakers and displays) whose terminals cover the same people
 * count them once, and a terminal is offline only when no lane holds it.
 * Every gateway knows every terminal of the population (any may connect to
 * any lane); `ready` counts the online ones of all of them. All terminal
 * lanes run on the one loop thread of the dispatcher: no lock.
 */
static struct tgw *all_gws;
static struct tready ready;

/* Status reports, the process's like `ready` (on_status): the latest with faults and the counts. */
static struct {
	struct fault_report latest[TERMINAL_FAULT_LIST]; /* newest first, one per terminal */
	size_t n;
	uint64_t faulty, muted;        /* terminals whose last Status listed faults / volume 0 */
} faults;
#define CONTAINER(p, type, field) ((type *)((char *)(p) - offsetof(type, field)))

static void tconn_close(struct tconn *c, enum terminal_close_reason why);
static void tconn_flush(struct tconn *c);
static void arm_recv(struct tconn *c);
static void arm_accept(struct tgw *gw);
static void tdel_send(struct tgw *gw, struct tdel *td);

/* --- the terminal map ------------------------------------------------- */

static uint32_t id_hash(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static int map_grow(struct tgw *gw)
{
	size_t n = gw->nbuckets ? gw->nbuckets * 2 : 1024;
	struct term **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < gw->nbuckets; i++) {
		struct term *t = gw->buckets[i], *next;
		for (; t; t = next) {
			next = t->hnext;
			size_t j = id_hash(t->id) & (n - 1);
			t->hnext = b[j];
			b[j] = t;
		}
	}
	free(gw->buckets);
	gw->buckets = b;
	gw->nbuckets = n;
	return 0;
}

static struct term *term_find(const struct tgw *gw, const char *id)
{
	if (!gw->nbuckets)
		return NULL;
	struct term *t = gw->buckets[id_hash(id) & (gw->nbuckets - 1)];
	while (t && strcmp(t->id, id))
		t = t->hnext;
	return t;
}

static struct term *term_get(struct tgw *gw, const char *id)
{
	struct term *t = term_find(gw, id);
	if (t)
		return t;
	if (gw->nterms >= gw->nbuckets && map_grow(gw) < 0)
		return NULL;
	size_t len = strlen(id);
	t = calloc(1, sizeof(*t) + len + 1);
	if (!t)
		return NULL;
	memcpy(t->id, id, len + 1);
	size_t j = id_hash(id) & (gw->nbuckets - 1);
	t->hnext = gw->buckets[j];
	gw->buckets[j] = t;
	t->seg = TREADY_NONE;
	t->volume = TERM_VOLUME_UNKNOWN;
	gw->nterms++;
	gw->offline_stale = true;
	return t;
}

/* --- reasons: the host may keep a reason pointer, so they live as long as the gateway */

static const char *intern_reason(struct tgw *gw, const char *why)
{
	char text[TERMINAL_REASON_MAX + 16];
	snprintf(text, sizeof(text), "terminal: %s", why && why[0] ? why : "failed");
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == '"')
			*p = ' ';
	for (size_t i = 0; i < gw->nreasons; i++)
		if (!strcmp(gw->reasons[i], text))
			return gw->reasons[i];
	if (gw->nreasons == MAX_REASONS)
		return "terminal: failed (reason not recorded)";
	char *s = strdup(text);
	if (!s)
		return "terminal: failed";
	gw->reasons[gw->nreasons++] = s;
	return s;
}

/* --- close reasons ------------------------------------------------------------ */

const char *terminal_close_reason_name(enum terminal_close_reason r)
{
	static const char *names[TERMINAL_CLOSE_N] = {
		[TERMINAL_CLOSE_PEER] = "peer",
		[TERMINAL_CLOSE_HANDSHAKE_TIMEOUT] = "handshake_timeout",
		[TERMINAL_CLOSE_HEARTBEAT_TIMEOUT] = "heartbeat_timeout",
		[TERMINAL_CLOSE_BAD_MAC] = "bad_mac",
		[TERMINAL_CLOSE_UNKNOWN_ID] = "unknown_id",
		[TERMINAL_CLOSE_UNSUPPORTED_VERSION] = "unsupported_version",
		[TERMINAL_CLOSE_CREDENTIALS_UNAVAILABLE] = "credentials_unavailable",
		[TERMINAL_CLOSE_REPLACED] = "replaced",
		[TERMINAL_CLOSE_FRAME_TOO_LONG] = "frame_too_long",
		[TERMINAL_CLOSE_PROTOCOL_ERROR] = "protocol_error",
		[TERMINAL_CLOSE_OUTPUT_FULL] = "output_full",
		[TERMINAL_CLOSE_TOO_MANY] = "too_many",
		[TERMINAL_CLOSE_NO_MEMORY] = "no_memory",
		[TERMINAL_CLOSE_TLS] = "tls",
		[TERMINAL_CLOSE_SHUTDOWN] = "shutdown",
	};
	return (unsigned)r < TERMINAL_CLOSE_N ? names[r] : "?";
}

/* Keep the peer's address of a just-accepted socket (the log needs it after the descriptor is gone). */
static void tconn_set_peer(struct tconn *c, int fd)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);
	if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
		return;
	if (sa.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&sa;
		memcpy(c->peer, &a->sin_addr, 4);
		c->peer_port = ntohs(a->sin_port);
	} else if (sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&sa;
		memcpy(c->peer, &a->sin6_addr, 16);
		c->peer_port = ntohs(a->sin6_port);
		c->peer_v6 = 1;
	}
}

static void log_close(const struct tconn *c, enum terminal_close_reason why, const char *id)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	inet_ntop(c->peer_v6 ? AF_INET6 : AF_INET, c->peer, ip, sizeof(ip));
	/* Ordinary goodbyes at debug; everything the operator may need to act on at info. */
	enum log_level lvl = why == TERMINAL_CLOSE_PEER || why == TERMINAL_CLOSE_SHUTDOWN ? LOG_DEBUG
											: LOG_INFO;
	tlog(lvl, "msg=\"terminal connection closed\" lane=%s reason=%s terminal=%s peer=%s:%u",
	     c->gw->lane->name, terminal_close_reason_name(why), id && id[0] ? id : "-", ip,
	     (unsigned)c->peer_port);
}

/* Count and log why c is going; once per connection (LINGER and CLOSING are past it). */
static void tconn_note_close(struct tconn *c, enum terminal_close_reason why, const char *id)
{
	if (c->state == TC_LINGER || c->state == TC_CLOSING)
		return;
	c->gw->st.closed[why]++;
	log_close(c, why, id ? id : c->term ? c->term->id : NULL);
}

/* A fresh SQE on c's shard ring. */
static struct io_uring_sqe *tconn_sqe(struct tconn *c, struct op *op)
{
	return loop_ring_sqe(c->gw->shards[c->shard].ring, op);
}

/* --- output -------------------------------------------------------------- */

/* Move the TLS records OpenSSL wrote into c->out. 0 or -ENOBUFS/-ENOMEM. */
static int tls_drain(struct tconn *c)
{
	BIO *w = SSL_get_wbio(c->ssl);
	size_t pending;
	while ((pending = BIO_ctrl_pending(w)) > 0) {
		int ret = buf_reserve(&c->out, pending, TCONN_OUTPUT_MAX);
		if (ret)
			return ret;
		int n = BIO_read(w, c->out.data + c->out.len, (int)pending);
		if (n <= 0)
			break;
		c->out.len += (size_t)n;
	}
	return 0;
}

static void abody_put(struct abody *b)
{
	if (b && --b->refs == 0)
		free(b);
}

/* Queue data on c's output, copied (TLS: sealed as one record). */
static int tconn_write(struct tconn *c, const uint8_t *data, size_t len)
{
	int ret;
	if (c->state == TC_CLOSING)
		return -EPIPE;
	if (c->ssl) { /* a memory BIO takes everything or fails */
		if (!SSL_is_init_finished(c->ssl) || SSL_write(c->ssl, data, (int)len) != (int)len) {
			ERR_clear_error();
			return -EPIPE;
		}
		ret = tls_drain(c);
	} else {
		if (!c->out.data && len <= TCONN_OUTPUT_MAX) { /* usually one frame: its size, not 2x */
			c->out.data = malloc(len);
			c->out.alloc = c->out.data ? len : 0;
		}
		ret = buf_reserve(&c->out, len, TCONN_OUTPUT_MAX);
		if (!ret) {
			memcpy(c->out.data + c->out.len, data, len);
			c->out.len += len;
		}
	}
	if (ret)
		return ret;
	c->last_tx_ms = loop_now_ms(c->gw->host.loop);
	tconn_flush(c);
	return 0;
}

/* (Re)arm the send of what is left of c->zbody's frame. */
static void zsend_arm(struct tconn *c)
{
	struct io_uring_sqe *sqe = tconn_sqe(c, &c->send_op);
	io_uring_prep_send(sqe, (int)c->slot, c->zbody->data + c->sending_off,
			   c->zbody->len - c->sending_off, MSG_NOSIGNAL);
	sqe->flags |= IOSQE_FIXED_FILE; /* after prep: prep zeroes the SQE */
	c->send_armed = true;
}

static void zsend_done(struct tconn *c)
{
	abody_put(c->zbody);
	c->zbody = NULL;
}

/*
 * An Alert: straight from its shared frame when nothing else is queued on
 * a plaintext connection (the fan-out case), else copied behind what is
 * queued.
 */
static int tconn_send_alert(struct tconn *c, const struct tdel *td)
{
	if (c->state == TC_CLOSING)
		return -EPIPE;
	if (c->ssl || c->send_armed || c->out.len)
		return tconn_write(c, td->body->data, td->body->len);
	c->zbody = td->body;
	c->zbody->refs++;
	c->sending_off = 0;
	c->refs++;
	c->last_tx_ms = loop_now_ms(c->gw->host.loop);
	zsend_arm(c);
	return 0;
}

static int tconn_send_frame(struct tconn *c, const Tocsin__Terminal__Frame *f)
{
	uint8_t small[512];
	size_t n = terminal_frame_size(f);
	uint8_t *p = n <= sizeof(small) ? small : malloc(n);
	if (!p)
		return -ENOMEM;
	int ret = terminal_frame_encode(f, p, n) < 0 ? -EMSGSIZE : tconn_write(c, p, n);
	if (p != small)
		free(p);
	if (ret < 0 && c->state != TC_CLOSING)
		tconn_close(c, ret == -ENOMEM ? TERMINAL_CLOSE_NO_MEMORY : TERMINAL_CLOSE_OUTPUT_FULL);
	return ret;
}

static void tconn_flush(struct tconn *c)
{
	if (c->send_armed || c->out.len == 0 || c->state == TC_CLOSING)
		return;
	buf_swap(&c->out, &c->sending);
	c->out.len = 0;
	c->sending_off = 0;
	struct io_uring_sqe *sqe = tconn_sqe(c, &c->send_op);
	io_uring_prep_send(sqe, (int)c->slot, c->sending.data, c->sending.len, MSG_NOSIGNAL);
	sqe->flags |= IOSQE_FIXED_FILE;
	c->send_armed = true;
	c->refs++;
}

static void tconn_unref(struct tconn *c);

static void on_send(struct op *op, int res, uint32_t flags)
{
	struct tconn *c = CONTAINER(op, struct tconn, send_op);
	c->send_armed = false;
	if (res < 0 || c->state == TC_CLOSING) {
		if (c->zbody)
			zsend_done(c);
		tconn_close(c, TERMINAL_CLOSE_PEER);
		tconn_unref(c);
		return;
	}
	if (c->zbody) {
		c->sending_off += (uint32_t)res;
		if (c->sending_off < c->zbody->len) { /* short send: the rest */
			c->gw->st.short_sends++;
			zsend_arm(c);
			return; /* keeps the reference */
		}
		zsend_done(c);
		if (c->out.len)
			tconn_flush(c);
		else
			buf_release(&c->out);
		if (c->state == TC_LINGER && !c->send_armed)
			tconn_close(c, TERMINAL_CLOSE_PEER);
		tconn_unref(c);
		return;
	}
	c->sending_off += (uint32_t)res;
	if (c->sending_off < c->sending.len) { /* short send: the rest, same buffer */
		struct io_uring_sqe *sqe = tconn_sqe(c, &c->send_op);
		io_uring_prep_send(sqe, (int)c->slot, c->sending.data + c->sending_off,
				   c->sending.len - c->sending_off, MSG_NOSIGNAL);
		sqe->flags |= IOSQE_FIXED_FILE;
		c->send_armed = true;
		return; /* keeps the reference */
	}
	buf_release(&c->sending); /* idle connections keep no output memory */
	if (c->out.len)
		tconn_flush(c);
	else
		buf_release(&c->out);
	if (c->state == TC_LINGER && !c->send_armed)
		tconn_close(c, TERMINAL_CLOSE_PEER); /* counted when it started lingering */
	tconn_unref(c);
}

/* --- connection lifecycle -------------------------------------------------- */

/* Close the socket in slot and give the slot back (nothing may name it any more). */
static void shard_release(struct tshard *sh, uint32_t slot)
{
	int none = -1;
	io_uring_register_files_update(loop_ring_uring(sh->ring), slot, &none, 1);
	sh->free_slots[sh->nfree++] = slot;
}

static void tconn_free(struct tconn *c)
{
	struct tgw *gw = c->gw;
	loop_timer_cancel(gw->host.loop, &c->timer);
	shard_release(&gw->shards[c->shard], c->slot);
	SSL_free(c->ssl);
	buf_release(&c->out);
	buf_release(&c->sending);
	free(c->rx);
	if (c->prev)
		c->prev->next = c->next;
	else
		gw->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	gw->st.conns--;
	free(c);
}

static void tconn_unref(struct tconn *c)
{
	if (--c->refs == 0)
		tconn_free(c);
}

/* c is READY or going: one handshake fewer, and the accept resumes below the cap. */
static void handshake_done(struct tconn *c)
{
	struct tgw *gw = c->gw;
	if (!c->handshaking)
		return;
	c->handshaking = false;
	gw->handshaking--;
	if (gw->accept_paused && gw->handshaking < gw->max_handshakes) {
		gw->accept_paused = false;
		arm_accept(gw);
	}
}

/* A terminal came or went: every lane's offline list is recomputed when next asked for. */
static void offline_changed(void)
{
	for (struct tgw *g = all_gws; g; g = g->next_gw)
		g->offline_stale = true;
}

static void term_offline(struct tgw *gw, struct term *t)
{
	t->conn = NULL;
	t->last_seen_s = loop_wall_s();
	gw->online--;
	offline_changed();
	tready_online(&ready, t->seg, -1);
}

static void tconn_close(struct tconn *c, enum terminal_close_reason why)
{
	struct tgw *gw = c->gw;
	if (c->state == TC_CLOSING)
		return;
	tconn_note_close(c, why, NULL);
	c->state = TC_CLOSING;
	handshake_done(c);
	if (c->term && c->term->conn == c)
		term_offline(gw, c->term); /* SENT alerts are resent when it comes back */
	c->term = NULL;
	loop_timer_cancel(gw->host.loop, &c->timer);
	/* Their CQEs drop the last references; the socket closes with its slot (tconn_free). */
	if (c->recv_armed)
		io_uring_prep_cancel(tconn_sqe(c, NULL), &c->recv_op, 0);
	if (c->send_armed)
		io_uring_prep_cancel(tconn_sqe(c, NULL), &c->send_op, 0);
	tconn_unref(c); /* the "open" reference */
}

static void on_linger(struct timer *t)
{
	tconn_close(CONTAINER(t, struct tconn, timer), TERMINAL_CLOSE_PEER); /* counted already */
}

/*
 * Send a Reject, then close once it is out (or after LINGER_MS). why is
 * what gets counted and logged (with id, when the terminal named itself).
 */
static void tconn_reject(struct tconn *c, Tocsin__Terminal__RejectReason rr,
			 enum terminal_close_reason why, const char *id, const char *detail)
{
	Tocsin__Terminal__Reject rj = TOCSIN__TERMINAL__REJECT__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	if (c->state == TC_CLOSING || c->state == TC_LINGER)
		return;
	tconn_note_close(c, why, id);
	if (c->term && c->term->conn == c)
		term_offline(c->gw, c->term);
	c->term = NULL;
	if (c->ssl && !SSL_is_init_finished(c->ssl)) {
		tconn_close(c, why); /* no channel to say why on */
		return;
	}
	c->state = TC_LINGER; /* input is dropped from now on */
	handshake_done(c);
	rj.has_reason = true;
	rj.reason = rr;
	rj.detail = (char *)detail;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_REJECT;
	f.reject = &rj;
	if (tconn_send_frame(c, &f) < 0)
		return; /* closed */
	if (!c->send_armed) {
		tconn_close(c, why);
		return;
	}
	loop_timer_set(c->gw->host.loop, &c->timer, LINGER_MS, on_linger);
}

static void on_handshake_timeout(struct timer *t)
{
	struct tconn *c = CONTAINER(t, struct tconn, timer);
	if (loop_inbound_waiting(c->gw->host.loop)) { /* its Hello may be waiting unread */
		loop_timer_set(c->gw->host.loop, &c->timer, 1, on_handshake_timeout);
		return;
	}
	if (c->state == TC_AUTHING) /* the Hello came; our lookup of its credentials did not */
		tconn_reject(c, TOCSIN__TERMINAL__REJECT_REASON__TRY_LATER,
			     TERMINAL_CLOSE_CREDENTIALS_UNAVAILABLE, NULL, "credentials lookup timed out");
	else
		tconn_reject(c, TOCSIN__TERMINAL__REJECT_REASON__TIMEOUT,
			     TERMINAL_CLOSE_HANDSHAKE_TIMEOUT, NULL, "no Hello in time");
}

static void send_challenge(struct tconn *c)
{
	Tocsin__Terminal__Challenge ch = TOCSIN__TERMINAL__CHALLENGE__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	ch.has_nonce = ch.has_version = ch.has_min_version = true;
	ch.nonce.data = c->nonce;
	ch.nonce.len = sizeof(c->nonce);
	ch.version = TERMINAL_PROTO_VERSION;
	ch.min_version = TERMINAL_PROTO_MIN_VERSION;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_CHALLENGE;
	f.challenge = &ch;
	tconn_send_frame(c, &f);
}

static void on_recv(struct op *op, int res, uint32_t flags);
static void on_send(struct op *op, int res, uint32_t flags);

static int shard_open(struct tgw *gw, char *err, size_t errlen);

/* A shard with a free slot, opening one when all are full; NULL when none can be had. */
static struct tshard *shard_pick(struct tgw *gw)
{
	for (unsigned i = 0; i < gw->nshards; i++)
		if (gw->shards[i].nfree)
			return &gw->shards[i];
	char why[256];
	if (gw->nshards == gw->max_shards)
		return NULL;
	if (shard_open(gw, why, sizeof(why)) < 0) {
		tlog(LOG_WARN, "msg=\"cannot open another terminal shard\" lane=%s shards=%u err=\"%s\"",
		     gw->lane->name, gw->nshards, why);
		return NULL;
	}
	return &gw->shards[gw->nshards - 1];
}

/* fd: just accepted. It moves into a shard's file table and is closed here. */
static void tconn_new(struct tgw *gw, int fd)
{
	struct tshard *sh = shard_pick(gw);
	struct tconn *c = sh ? calloc(1, sizeof(*c)) : NULL;
	if (!c || getrandom(c->nonce, sizeof(c->nonce), 0) != (ssize_t)sizeof(c->nonce)) {
		gw->st.closed[sh ? TERMINAL_CLOSE_NO_MEMORY : TERMINAL_CLOSE_TOO_MANY]++;
		free(c);
		close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (gw->sndbuf)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &gw->sndbuf, sizeof(gw->sndbuf));
	c->gw = gw;
	tconn_set_peer(c, fd);
	c->shard = (uint16_t)(sh - gw->shards);
	c->slot = sh->free_slots[sh->nfree - 1];
	int ret = io_uring_register_files_update(loop_ring_uring(sh->ring), c->slot, &fd, 1);
	close(fd); /* the table holds the socket now (or nothing, on failure) */
	if (ret != 1) {
		tlog(LOG_WARN, "msg=\"cannot register a terminal socket\" lane=%s err=%d", gw->lane->name, ret);
		gw->st.closed[TERMINAL_CLOSE_NO_MEMORY]++;
		free(c);
		return;
	}
	sh->nfree--;
	c->refs = 1; /* "open", dropped by tconn_close */
	c->state = TC_CHALLENGED;
	c->handshaking = true;
	gw->handshaking++;
	c->recv_op.cb = on_recv;
	c->send_op.cb = on_send;
	c->last_rx_ms = loop_now_ms(gw->host.loop);
	c->next = gw->conns;
	if (gw->conns)
		gw->conns->prev = c;
	gw->conns = c;
	gw->st.conns++;
	gw->st.accepted_conns++;
	loop_timer_set(gw->host.loop, &c->timer, gw->handshake_ms, on_handshake_timeout);
	if (gw->tls) { /* the Challenge follows the TLS handshake (tls_input) */
		BIO *rb, *wb;
		c->ssl = tls_new_ssl(gw->tls, &rb, &wb);
		if (!c->ssl) {
			tconn_close(c, TERMINAL_CLOSE_NO_MEMORY);
			return;
		}
	} else {
		send_challenge(c);
	}
	arm_recv(c);
}

/* --- authentication ---------------------------------------------------------- */

/* One round trip: the current population version, then the terminal's hash. */
static const char auth_script[] =
	"local v = redis.call('GET', ARGV[1] .. 'pop:current') "
	"if not v then return false end "
	"return redis.call('HMGET', ARGV[1] .. 'pop:v' .. v .. ':term:' .. ARGV[2], "
	"'secret', 'covers_persons')";

static void heartbeat_tick(struct timer *t);
static void term_flush_held(struct tgw *gw, struct term *t);

static void send_welcome(struct tconn *c)
{
	Tocsin__Terminal__Welcome w = TOCSIN__TERMINAL__WELCOME__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	w.has_version = w.has_heartbeat_ms = w.has_server_time = true;
	w.version = TERMINAL_PROTO_VERSION;
	w.heartbeat_ms = c->gw->heartbeat_ms;
	w.server_time = loop_wall_s();
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_WELCOME;
	f.welcome = &w;
	tconn_send_frame(c, &f);
}

static void tconn_ready(struct tconn *c, const char *id, uint64_t persons)
{
	struct tgw *gw = c->gw;
	struct term *t = term_get(gw, id);
	if (!t) {
		tconn_close(c, TERMINAL_CLOSE_NO_MEMORY);
		return;
	}
	if (t->conn) /* the newest connection wins: a rebooted terminal's old socket may linger */
		tconn_reject(t->conn, TOCSIN__TERMINAL__REJECT_REASON__REPLACED,
			     TERMINAL_CLOSE_REPLACED, id, "connected again");
	gw->st.auth_ok++;
	c->state = TC_READY;
	handshake_done(c);
	c->term = t;
	t->conn = c;
	t->persons = persons;
	t->last_seen_s = loop_wall_s();
	gw->online++;
	offline_changed();
	tready_online(&ready, t->seg, +1);
	send_welcome(c);
	if (c->state != TC_READY)
		return;
	loop_timer_set(gw->host.loop, &c->timer, gw->heartbeat_ms, heartbeat_tick);
	term_flush_held(gw, t);
}

static bool reply_str(const redisReply *r, size_t i, const char **s, size_t *len)
{
	if (r->type != REDIS_REPLY_ARRAY || r->elements <= i ||
	    r->element[i]->type != REDIS_REPLY_STRING)
		return false;
	*s = r->element[i]->str;
	*len = r->element[i]->len;
	return true;
}

static void on_auth_reply(void *arg, redisReply *r)
{
	struct tauth *a = arg;
	struct tconn *c = a->c;
	struct tgw *gw = c->gw;
	const char *secret, *persons;
	size_t slen, plen;
	if (c->state != TC_AUTHING || gw->closing) {
		/* closed meanwhile: nothing to answer */
	} else if (!r || r->type == REDIS_REPLY_ERROR) {
		tconn_reject(c, TOCSIN__TERMINAL__REJECT_REASON__TRY_LATER,
			     TERMINAL_CLOSE_CREDENTIALS_UNAVAILABLE, a->id, "credentials unavailable");
	} else if (!reply_str(r, 0, &secret, &slen)) {
		/* the terminal is told the same as for a wrong mac: ids are not probed */
		tconn_reject(c, TOCSIN__TERMINAL__REJECT_REASON__BAD_CREDENTIALS,
			     TERMINAL_CLOSE_UNKNOWN_ID, a->id, "bad credentials");
	} else if (!terminal_auth_check(secret, slen, c->nonce, sizeof(c->nonce), a->id, a->mac,
					sizeof(a->mac))) {
		tconn_reject(c, TOCSIN__TERMINAL__REJECT_REASON__BAD_CREDENTIALS,
			     TERMINAL_CLOSE_BAD_MAC, a->id, "bad credentials");
	} else {
		uint64_t n = reply_str(r, 1, &persons, &plen) ? strtoull(persons, NULL, 10) : 0;
		tconn_ready(c, a->id, n);
	}
	free(a);
	tconn_unref(c);
}

static int start_auth(struct tconn *c, const Tocsin__Terminal__Hello *h)
{
	struct tgw *gw = c->gw;
	if (!h->has_version || h->version < TERMINAL_PROTO_MIN_VERSION ||
	    h->version > TERMINAL_PROTO_VERSION) {
		tconn_reject(c, TOCSIN__TERMINAL__REJECT_REASON__UNSUPPORTED_VERSION,
			     TERMINAL_CLOSE_UNSUPPORTED_VERSION, h->terminal_id, "version 1 only");
		return 0;
	}
	struct tauth *a = malloc(sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->c = c;
	memcpy(a->mac, h->mac.data, sizeof(a->mac));
	snprintf(a->id, sizeof(a->id), "%s", h->terminal_id);
	const char *argv[] = {"EVAL", auth_script, "0", gw->prefix, a->id};
	size_t argvlen[] = {4, sizeof(auth_script) - 1, 1, strlen(gw->prefix), strlen(a->id)};
	if (redis_command(&gw->rc, on_auth_reply, a, 5, argv, argvlen) < 0) {
		free(a);
		tconn_reject(c, TOCSIN__TERMINAL__REJECT_REASON__TRY_LATER,
			     TERMINAL_CLOSE_CREDENTIALS_UNAVAILABLE, h->terminal_id,
			     "credentials unavailable");
		return 0;
	}
	c->state = TC_AUTHING;
	c->refs++; /* dropped by on_auth_reply */
	/* The whole Hello is in, in time: it may have waited unread while the loop held
	   the shards' input (on_handshake_timeout looked again meanwhile). What is left
	   is the credentials lookup, ours: it gets a handshake_ms of its own from now. */
	loop_timer_set(gw->host.loop, &c->timer, gw->handshake_ms, on_handshake_timeout);
	return 0;
}

/* --- heartbeats ---------------------------------------------------------------- */

static void heartbeat_tick(struct timer *t)
{
	struct tconn *c = CONTAINER(t, struct tconn, timer);
	struct tgw *gw = c->gw;
	uint64_t now = loop_now_ms(gw->host.loop);
	if (now - c->last_rx_ms > 3 * (uint64_t)gw->heartbeat_ms) {
		if (loop_inbound_waiting(gw->host.loop)) { /* input not yet read: look again */
			loop_timer_set(gw->host.loop, &c->timer, 1, heartbeat_tick);
			return;
		}
		tconn_reject(c, TOCSIN__TERMINAL__REJECT_REASON__TIMEOUT,
			     TERMINAL_CLOSE_HEARTBEAT_TIMEOUT, NULL, "heartbeats stopped");
		return;
	}
	if (now - c->last_tx_ms + 50 >= gw->heartbeat_ms) {
		Tocsin__Terminal__Heartbeat hb = TOCSIN__TERMINAL__HEARTBEAT__INIT;
		Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
		hb.has_time_ms = true;
		hb.time_ms = now;
		f.body_case = TOCSIN__TERMINAL__FRAME__BODY_HEARTBEAT;
		f.heartbeat = &hb;
		if (tconn_send_frame(c, &f) < 0)
			return;
	}
	loop_timer_set(gw->host.loop, &c->timer, gw->heartbeat_ms, heartbeat_tick);
}

/* --- deliveries ------------------------------------------------------------------ */

static uint64_t ms_until(int64_t expires_s)
{
	int64_t left = expires_s - loop_wall_s();
	return left > 0 ? (uint64_t)left * 1000 : 0;
}

/*
 * The ack-timeout queue. Every Alert sent waits ack_timeout_ms for its Ack,
 * the same for all, so sent tdels queue in send order with their deadlines
 * in order, and one gateway timer serves the head: an Alert costs the
 * loop's timer heap nothing, and a delivery that ends leaves the queue in
 * O(1). When a tdel's deadline passes it is handled as its own timer would
 * be (on_tdel_due): sent again if still unacknowledged, else left to wait
 * for the expiry on its own timer.
 */
static void ackq_unlink(struct tgw *gw, struct tdel *td)
{
	if (!td->queued)
		return;
	if (td->aprev)
		td->aprev->anext = td->anext;
	else
		gw->ack_head = td->anext;
	if (td->anext)
		td->anext->aprev = td->aprev;
	else
		gw->ack_tail = td->aprev;
	td->aprev = td->anext = NULL;
	td->queued = false;
}

static void on_ack_timer(struct timer *t);

static void ackq_push(struct tgw *gw, struct tdel *td, uint64_t now)
{
	td->ack_due_ms = now + gw->ack_timeout_ms;
	td->aprev = gw->ack_tail;
	td->anext = NULL;
	td->queued = true;
	if (gw->ack_tail)
		gw->ack_tail->anext = td;
	else
		gw->ack_head = td;
	gw->ack_tail = td;
	if (!loop_timer_armed(&gw->ack_timer))
		loop_timer_set(gw->host.loop, &gw->ack_timer, gw->ack_timeout_ms, on_ack_timer);
}

#ifndef TOCSIN_ASAN
/* td onto the free list, for reuse (ASan builds free every tdel instead). */
static void tdel_keep(struct tgw *gw, struct tdel *td)
{
	td->next = gw->free_tdels;
	gw->free_tdels = td;
	gw->n_free_tdels++;
}
#endif

static void tdel_unlink_free(struct tgw *gw, struct tdel *td)
{
	struct tdel **pp = td->t ? &td->t->dels : NULL;
	while (pp && *pp && *pp != td)
		pp = &(*pp)->next;
	if (pp && *pp)
		*pp = td->next;
	ackq_unlink(gw, td);
	loop_timer_cancel(gw->host.loop, &td->timer);
	abody_put(td->body);
#ifdef TOCSIN_ASAN
	free(td); /* freed, so that a use after free shows */
#else
	tdel_keep(gw, td); /* for the next delivery: no malloc per Alert */
#endif
}

/*
 * At least n tdels on the free list, allocated now rather than one by one
 * during a fan-out (where malloc growing the heap was ~6 % of the push to
 * 50,000 terminals): for the population when it loads, and for a warning
 * when the dispatcher says how many Alerts are coming (terminal_reserve).
 * ASan builds free every tdel instead (see tdel_unlink_free).
 */
static void tdel_stock(struct tgw *gw, size_t n)
{
#ifndef TOCSIN_ASAN
	while (gw->n_free_tdels < n) {
		struct tdel *td = calloc(1, sizeof(*td));
		if (!td)
			return; /* submit tries again, and aborts if it cannot either */
		tdel_keep(gw, td);
	}
#else
	(void)gw;
	(void)n;
#endif
}

/* The final word on a delivery: a report while we still hold it, else a receipt. */
static void tdel_finish(struct tgw *gw, struct tdel *td, enum outcome o, const char *reason)
{
	struct delivery *d = td->d;
	uint64_t id = td->delivery_id;
	tdel_unlink_free(gw, td); /* before calling out: the host may submit again */
	if (d)
		gw->host.report(gw->host.ctx, d, o, reason, 0);
	else
		gw->host.receipt(gw->host.ctx, id, o, reason);
}

static void on_tdel_timer(struct timer *tm);

/* td's deadline passed (its timer, or its place in the ack queue). */
static void on_tdel_due(struct tdel *td)
{
	struct tgw *gw = td->gw;
	uint64_t left = ms_until(td->expires_s);
	if (td->fail) {
		tdel_finish(gw, td, OUTCOME_PERMANENT, td->fail);
		return;
	}
	if (left == 0) {
		gw->st.expired++;
		tdel_finish(gw, td, OUTCOME_EXPIRED, "terminal: not confirmed before expiry");
		return;
	}
	if (td->state == TD_SENT && td->t->conn && td->t->conn->state == TC_READY) {
		gw->st.resends++;
		tdel_send(gw, td);
		return;
	}
	loop_timer_set(gw->host.loop, &td->timer, left, on_tdel_timer);
}

static void on_tdel_timer(struct timer *tm)
{
	on_tdel_due(CONTAINER(tm, struct tdel, timer));
}

static void on_ack_timer(struct timer *t)
{
	struct tgw *gw = CONTAINER(t, struct tgw, ack_timer);
	uint64_t now = loop_now_ms(gw->host.loop);
	while (gw->ack_head && gw->ack_head->ack_due_ms <= now) {
		struct tdel *td = gw->ack_head;
		ackq_unlink(gw, td);
		on_tdel_due(td); /* a resend queues it again, due after now */
	}
	if (gw->ack_head)
		loop_timer_set(gw->host.loop, &gw->ack_timer, gw->ack_head->ack_due_ms - now, on_ack_timer);
}

static void tdel_send(struct tgw *gw, struct tdel *td)
{
	uint64_t left = ms_until(td->expires_s);
	td->state = TD_SENT;
	gw->st.alerts_sent++;
	tconn_send_alert(td->t->conn, td);
	loop_defer_inbound(gw->host.loop); /* pushes before Acks: see adapters/README.md */
	ackq_unlink(gw, td);
	loop_timer_cancel(gw->host.loop, &td->timer);
	if (left < gw->ack_timeout_ms) /* expires first: its own timer */
		loop_timer_set(gw->host.loop, &td->timer, left, on_tdel_timer);
	else
		ackq_push(gw, td, loop_now_ms(gw->host.loop));
}

static void term_flush_held(struct tgw *gw, struct term *t)
{
	for (struct tdel *td = t->dels; td && t->conn && t->conn->state == TC_READY; td = td->next) {
		if (td->state == TD_ACCEPTED)
			continue; /* the terminal has it; it will report playback */
		if (ms_until(td->expires_s) == 0) {
			loop_timer_set(gw->host.loop, &td->timer, 0, on_tdel_timer); /* expires, unsent */
			continue;
		}
		tdel_send(gw, td);
	}
}

/*
 * The Alert for d: resends and late terminals get the same bytes. Every
 * delivery of one warning and language shares the whole frame, seq
 * included (see the top), packed once into a refcounted struct abody
 * (gw->alert, keyed by campaign_serial and language).
 */
static int alert_frame(struct tgw *gw, struct delivery *d)
{
	struct campaign *c = d->campaign;
	const char *id = campaign_id(c);
	struct alert_cache *ac = &gw->alert;
	if (ac->body && ac->campaign == campaign_serial(c) && ac->lang == d->lang)
		return 0;
	const Tocsin__Warning *w = campaign_warning(c);
	const Tocsin__Info *in = campaign_info(c, d->lang);
	Tocsin__Terminal__Alert a = TOCSIN__TERMINAL__ALERT__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	a.has_seq = a.has_msg_type = a.has_severity = a.has_colour = true;
	a.has_expires = a.has_drill = a.has_stop = true;
	a.seq = ++gw->seq;
	a.warning_id = (char *)id;
	a.msg_type = w->msg_type;
	a.severity = in->severity;
	a.colour = w->colour;
	a.headline = in->headline;
	a.text = (char *)campaign_text(c, d->lang);
	a.language = in->language;
	a.event = in->event;
	a.expires = campaign_expires(c);
	a.drill = campaign_is_drill(c);
	a.stop = w->msg_type == TOCSIN__MSG_TYPE__CANCEL;
	a.n_references = w->n_references;
	a.references = w->references;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_ALERT;
	f.alert = &a;
	size_t n = terminal_frame_size(&f);
	if (n > TERMINAL_FRAME_HDR + TERMINAL_FRAME_MAX)
		return -EMSGSIZE;
	struct abody *body = malloc(sizeof(*body) + n);
	if (!body)
		return -ENOMEM;
	body->refs = 1; /* the cache's */
	body->len = (uint32_t)n;
	body->seq = a.seq;
	if (terminal_frame_encode(&f, body->data, n) != (ssize_t)n) {
		free(body);
		return -EMSGSIZE;
	}
	abody_put(ac->body);
	*ac = (struct alert_cache){.campaign = campaign_serial(c), .lang = d->lang, .body = body};
	return 0;
}

/* td's Alert: a ref to the shared frame, and its seq. */
static int encode_alert(struct tgw *gw, struct delivery *d, struct tdel *td)
{
	int ret = alert_frame(gw, d);
	if (ret < 0)
		return ret;
	td->body = gw->alert.body;
	td->body->refs++;
	td->seq = td->body->seq;
	return 0;
}

static void terminal_submit(struct lane *l, struct delivery *d)
{
	struct tgw *gw = l->adapter_state;
	struct tdel *td = gw->free_tdels;
	if (td) {
		gw->free_tdels = td->next;
		gw->n_free_tdels--;
		memset(td, 0, sizeof(*td));
	} else {
		td = calloc(1, sizeof(*td));
	}
	struct term *t = terminal_id_valid(d->address) ? term_get(gw, d->address) : NULL;
	if (!td || (!t && terminal_id_valid(d->address))) {
		log_error("msg=\"terminal gateway out of memory in submit\"");
		abort(); /* see the out-of-memory policy at the top */
	}
	td->gw = gw;
	td->d = d;
	td->delivery_id = d->id;
	td->expires_s = campaign_expires(d->campaign);
	td->state = TD_HELD;
	if (!t || encode_alert(gw, d, td) < 0) {
		/* cannot be sent to anyone: answered from a 0 ms timer, never from inside submit */
		td->fail = t ? "terminal: alert too large for a frame" : "terminal: invalid terminal id";
		td->t = gw->nowhere;
		td->next = gw->nowhere->dels;
		gw->nowhere->dels = td;
		loop_timer_set(gw->host.loop, &td->timer, 0, on_tdel_timer);
		return;
	}
	td->t = t;
	struct tdel **pp = &t->dels;
	while (*pp)
		pp = &(*pp)->next;
	*pp = td;
	if (t->conn && t->conn->state == TC_READY && ms_until(td->expires_s) > 0) {
		tdel_send(gw, td);
		return;
	}
	gw->st.held++;
	loop_timer_set(gw->host.loop, &td->timer, ms_until(td->expires_s), on_tdel_timer);
}

/* --- inbound frames ---------------------------------------------------------------- */

static void on_ack(struct tgw *gw, struct term *t, const Tocsin__Terminal__Ack *ack)
{
	struct tdel *td = t->dels;
	while (td && td->seq != ack->seq)
		td = td->next;
	gw->st.acks++;
	if (!td)
		return; /* a late duplicate of something already final */
	switch (ack->state) {
	case TOCSIN__TERMINAL__ACK_STATE__RECEIVED:
		if (td->state == TD_ACCEPTED)
			return;
		td->state = TD_ACCEPTED;
		struct timespec now; /* the loop's clock is its iteration's: up to a few ms early */
		clock_gettime(CLOCK_MONOTONIC, &now);
		gw->st.last_received_us = (uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000;
		struct delivery *d = td->d;
		td->d = NULL;
		/* it stays in the ack queue: when its turn comes it finds TD_ACCEPTED and waits
		   for the expiry then (on_tdel_due), so an Alert played at once never touches
		   the loop's timer heap */
		gw->host.report(gw->host.ctx, d, OUTCOME_ACCEPTED, NULL, 0);
		return;
	case TOCSIN__TERMINAL__ACK_STATE__PLAYING:
	case TOCSIN__TERMINAL__ACK_STATE__DISPLAYED:
	case TOCSIN__TERMINAL__ACK_STATE__PLAYED:
		tdel_finish(gw, td, OUTCOME_DELIVERED, NULL);
		return;
	case TOCSIN__TERMINAL__ACK_STATE__FAILED:
		tdel_finish(gw, td, OUTCOME_PERMANENT, intern_reason(gw, ack->reason));
		return;
	default:
		return; /* a state from a newer protocol version: ignored */
	}
}

/*
 * One fault name into out[*len..cap): valid UTF-8 is kept (a name that is
 * not becomes "?"), and the bytes a log line or a list would misread
 * (controls, quote, backslash, comma) become '?', so the text is safe in
 * both and in JSON. Returns false when it did not fit (nothing written).
 */
static bool fault_append(char *out, size_t cap, size_t *len, const char *name)
{
	size_t n = strlen(name), sep = *len ? 2 : 0;
	bool valid = csv_utf8_valid(name, n);
	if (!valid)
		n = 1;
	if (*len + sep + n + 1 > cap)
		return false;
	if (sep)
		memcpy(out + *len, ", ", 2);
	*len += sep;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = valid ? (unsigned char)name[i] : '?';
		out[(*len)++] = ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\' || ch == ',' ? '?' : (char)ch;
	}
	out[*len] = 0;
	return true;
}

static void fault_forget(const char *id)
{
	for (size_t i = 0; i < faults.n; i++)
		if (!strcmp(faults.latest[i].id, id)) {
			memmove(&faults.latest[i], &faults.latest[i + 1],
				(faults.n - i - 1) * sizeof(faults.latest[0]));
			faults.n--;
			return;
		}
}

/*
 * A terminal's Status: its volume (0-100; out of range or absent keeps the
 * last) and its faults. Like readiness, the figures are the process's
 * (`faults`): the terminals whose last Status, on whichever lane, listed
 * faults or volume 0, online or not (a report stands until the next), and
 * the latest TERMINAL_FAULT_LIST reports with faults. Every gateway's copy
 * of the terminal takes the two bytes, so the next report's change is
 * counted right wherever it comes. Each change is logged once: faults
 * appearing at warn, the rest at info.
 */
static void on_status(struct tgw *gw, struct term *t, const Tocsin__Terminal__Status *s)
{
	uint8_t vol = s->has_volume && s->volume <= 100 ? (uint8_t)s->volume : t->volume;
	uint8_t nf = (uint8_t)(s->n_faults < 255 ? s->n_faults : 255);
	char text[FAULT_TEXT_MAX] = "";
	size_t len = 0;
	for (size_t i = 0; i < s->n_faults; i++)
		if (!fault_append(text, sizeof(text) - 4, &len, s->faults[i])) {
			memcpy(text + len, "...", 4);
			break;
		}
	gw->st.status_reports++;
	if (nf != t->faults || (vol == 0) != (t->volume == 0))
		tlog(nf > t->faults ? LOG_WARN : LOG_INFO,
		     "msg=\"terminal status\" lane=%s terminal=%s faults=%u fault_list=\"%s\" volume=%d",
		     gw->lane->name, t->id, nf, text, vol == TERM_VOLUME_UNKNOWN ? -1 : vol);
	faults.faulty += (nf > 0) - (t->faults > 0);
	faults.muted += (vol == 0) - (t->volume == 0);
	for (struct tgw *g = all_gws; g; g = g->next_gw) {
		struct term *u = g == gw ? t : term_get(g, t->id);
		if (u) {
			u->volume = vol;
			u->faults = nf;
		}
	}
	fault_forget(t->id);
	if (!nf)
		return;
	if (faults.n == TERMINAL_FAULT_LIST)
		faults.n--;
	memmove(&faults.latest[1], &faults.latest[0], faults.n * sizeof(faults.latest[0]));
	faults.n++;
	struct fault_report *r = &faults.latest[0];
	snprintf(r->id, sizeof(r->id), "%s", t->id);
	memcpy(r->faults, text, sizeof(r->faults));
	r->at_s = loop_wall_s();
	r->volume = vol;
}

/* 0, or -1 to close the connection. */
static int handle_frame(struct tconn *c, const uint8_t *payload, size_t len)
{
	struct tgw *gw = c->gw;
	enum terminal_decode_err err;
	terminal_arena_reset(&gw->arena);
	Tocsin__Terminal__Frame *f = terminal_frame_decode(&gw->arena, payload, len, &err);
	if (!f && err == TERMINAL_DECODE_EMPTY && c->state == TC_READY)
		return 0; /* a message kind from a newer protocol version: ignored */
	if (!f) {
		log_debug("msg=\"bad terminal frame\" err=\"%s\"", terminal_decode_strerror(err));
		return -1;
	}
	switch (c->state) {
	case TC_CHALLENGED:
		if (f->body_case != TOCSIN__TERMINAL__FRAME__BODY_HELLO)
			return -1;
		return start_auth(c, f->hello);
	case TC_AUTHING:
		return f->body_case == TOCSIN__TERMINAL__FRAME__BODY_HEARTBEAT ? 0 : -1;
	case TC_READY:
		break;
	default:
		return 0; /* lingering: input is dropped */
	}
	switch (f->body_case) {
	case TOCSIN__TERMINAL__FRAME__BODY_HEARTBEAT:
		return 0;
	case TOCSIN__TERMINAL__FRAME__BODY_ACK:
		on_ack(gw, c->term, f->ack);
		return 0;
	case TOCSIN__TERMINAL__FRAME__BODY_STATUS:
		on_status(gw, c->term, f->status);
		return 0;
	default:
		return -1;
	}
}

/* Keep the start of a frame that has not fully arrived. 0, or -1 with *why. */
static int rx_append(struct tconn *c, const uint8_t *p, size_t n, enum terminal_close_reason *why)
{
	size_t need = c->rx_len + n;
	if (need > TERMINAL_FRAME_HDR + TERMINAL_FRAME_MAX) {
		*why = TERMINAL_CLOSE_FRAME_TOO_LONG;
		return -1;
	}
	if (need > c->rx_cap) {
		size_t cap = need < 256 ? 256 : need;
		uint8_t *r = realloc(c->rx, cap);
		if (!r) {
			*why = TERMINAL_CLOSE_NO_MEMORY;
			return -1;
		}
		c->rx = r;
		c->rx_cap = (uint32_t)cap;
	}
	memcpy(c->rx + c->rx_len, p, n);
	c->rx_len = (uint32_t)need;
	return 0;
}

/* Bytes of the partial frame in rx still missing (the header counts). */
static size_t rx_missing(const struct tconn *c)
{
	if (c->rx_len < TERMINAL_FRAME_HDR)
		return TERMINAL_FRAME_HDR - c->rx_len;
	size_t n = (size_t)c->rx[0] << 24 | (size_t)c->rx[1] << 16 | (size_t)c->rx[2] << 8 | c->rx[3];
	return TERMINAL_FRAME_HDR + n - c->rx_len;
}

/*
 * Frames straight from the receive buffer; only a trailing partial one is
 * copied. 0, or -1 with *why: the connection must be rejected.
 */
static int consume(struct tconn *c, const uint8_t *p, size_t n, enum terminal_close_reason *why)
{
	while (n > 0 && c->state != TC_CLOSING) {
		const uint8_t *payload;
		size_t plen;
		ssize_t r;
		if (c->rx_len) {
			size_t take = rx_missing(c);
			take = take < n ? take : n;
			if (rx_append(c, p, take, why) < 0)
				return -1;
			p += take;
			n -= take;
			r = terminal_frame_parse(c->rx, c->rx_len, &payload, &plen);
			if (r == TERMINAL_FRAME_NEED_MORE)
				continue;
		} else {
			r = terminal_frame_parse(p, n, &payload, &plen);
			if (r == TERMINAL_FRAME_NEED_MORE)
				return rx_append(c, p, n, why);
			if (r > 0) {
				p += r;
				n -= (size_t)r;
			}
		}
		if (r == TERMINAL_FRAME_ERROR) {
			*why = TERMINAL_CLOSE_FRAME_TOO_LONG; /* or zero: the stream is lost either way */
			return -1;
		}
		int ret = handle_frame(c, payload, plen);
		if (c->rx) { /* the frame was in rx: done with it */
			free(c->rx);
			c->rx = NULL;
			c->rx_len = c->rx_cap = 0;
		}
		if (ret < 0) {
			*why = TERMINAL_CLOSE_PROTOCOL_ERROR;
			return -1;
		}
	}
	return 0;
}

/*
 * After the handshake: drop what it grew. The memory BIOs keep their
 * largest buffer (the certificate flight) for life, so fresh ones replace
 * them once both are empty; OpenSSL's record buffers go too (they come
 * back for the next record).
 */
static void tls_slim(struct tconn *c)
{
	if (BIO_ctrl_pending(SSL_get_rbio(c->ssl)) || BIO_ctrl_pending(SSL_get_wbio(c->ssl)))
		return;
	BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
	if (!r || !w) {
		BIO_free(r);
		BIO_free(w);
		return;
	}
	BIO_set_mem_eof_return(r, -1);
	SSL_set_bio(c->ssl, r, w); /* frees the old pair */
	if (SSL_free_buffers(c->ssl) != 1)
		ERR_clear_error(); /* a partial record pending: they stay */
}

/*
 * Ciphertext in: run the handshake (then send the Challenge), decrypt,
 * consume. 0, or -1 with *why (TERMINAL_CLOSE_PEER for a close_notify).
 */
static int tls_input(struct tconn *c, const uint8_t *p, size_t n, enum terminal_close_reason *why)
{
	uint8_t plain[16384];
	*why = TERMINAL_CLOSE_TLS;
	if (BIO_write(SSL_get_rbio(c->ssl), p, (int)n) != (int)n) {
		*why = TERMINAL_CLOSE_NO_MEMORY;
		return -1;
	}
	if (!SSL_is_init_finished(c->ssl)) {
		int r = SSL_do_handshake(c->ssl);
		if (tls_drain(c) < 0)
			return -1;
		tconn_flush(c);
		if (r != 1) {
			int e = SSL_get_error(c->ssl, r);
			ERR_clear_error();
			return e == SSL_ERROR_WANT_READ ? 0 : -1;
		}
		send_challenge(c);
		tls_slim(c);
	}
	/* Only while there are bytes: an SSL_read on nothing allocates a 16 KB record buffer
	 * and keeps it, which would cost every idle connection that much. */
	BIO *rb = SSL_get_rbio(c->ssl);
	while (c->state != TC_CLOSING && c->state != TC_LINGER &&
	       (BIO_ctrl_pending(rb) > 0 || SSL_pending(c->ssl) > 0)) {
		int k = SSL_read(c->ssl, plain, sizeof(plain));
		if (k > 0) {
			if (consume(c, plain, (size_t)k, why) < 0)
				return -1;
			continue;
		}
		int e = SSL_get_error(c->ssl, k);
		ERR_clear_error();
		if (e == SSL_ERROR_WANT_READ)
			break;
		*why = e == SSL_ERROR_ZERO_RETURN ? TERMINAL_CLOSE_PEER : TERMINAL_CLOSE_TLS;
		return -1;
	}
	if (c->state != TC_CLOSING && tls_drain(c) == 0) /* e.g. TLS 1.3 key updates */
		tconn_flush(c);
	return 0;
}

static void recycle_buf(const struct tgw *gw, struct tshard *sh, unsigned bid)
{
	io_uring_buf_ring_add(sh->br, sh->bufs + (size_t)bid * gw->bufsz, gw->bufsz, (uint16_t)bid,
			      io_uring_buf_ring_mask(gw->nbufs), 0);
	io_uring_buf_ring_advance(sh->br, 1);
}

static void arm_recv(struct tconn *c)
{
	if (c->recv_armed || c->state == TC_CLOSING)
		return;
	struct io_uring_sqe *sqe = tconn_sqe(c, &c->recv_op);
	io_uring_prep_recv_multishot(sqe, (int)c->slot, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT | IOSQE_FIXED_FILE; /* after prep: prep zeroes the SQE */
	sqe->buf_group = c->gw->bgid;
	c->recv_armed = true;
	c->refs++;
}

static void on_recv(struct op *op, int res, uint32_t flags)
{
	struct tconn *c = CONTAINER(op, struct tconn, recv_op);
	struct tgw *gw = c->gw;
	if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
		unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
		struct tshard *sh = &gw->shards[c->shard];
		c->last_rx_ms = loop_now_ms(gw->host.loop);
		enum terminal_close_reason why;
		const uint8_t *data = sh->bufs + (size_t)bid * gw->bufsz;
		int ret = c->state == TC_CLOSING ? 0
			  : c->ssl		 ? tls_input(c, data, (size_t)res, &why)
						 : consume(c, data, (size_t)res, &why);
		if (ret < 0 && (why == TERMINAL_CLOSE_TLS || why == TERMINAL_CLOSE_PEER))
			tconn_close(c, why);
		else if (ret < 0)
			tconn_reject(c, TOCSIN__TERMINAL__REJECT_REASON__PROTOCOL_ERROR, why, NULL,
				     why == TERMINAL_CLOSE_FRAME_TOO_LONG ? "frame too long"
									  : "protocol error");
		recycle_buf(gw, sh, bid);
	}
	if (flags & IORING_CQE_F_MORE)
		return; /* still armed: keeps its reference */
	c->recv_armed = false;
	if (res == -ENOBUFS) {
		gw->st.enobufs++; /* the ring ran dry; buffers are back by now */
		arm_recv(c);
	} else if (res > 0) {
		arm_recv(c); /* the kernel ended the multishot (CQ overflow): re-arm */
	} else if (c->state != TC_LINGER) {
		tconn_close(c, TERMINAL_CLOSE_PEER); /* EOF, error or cancelled */
	}
	tconn_unref(c);
}

/* --- listener ---------------------------------------------------------------------------- */

static void on_accept_retry(struct timer *t)
{
	arm_accept(CONTAINER(t, struct tgw, accept_retry));
}

static void on_accept(struct op *op, int res, uint32_t flags)
{
	struct tgw *gw = CONTAINER(op, struct tgw, accept_op);
	bool more = flags & IORING_CQE_F_MORE;
	if (!more)
		gw->accept_armed = false;
	if (res >= 0) {
		if (gw->closing || gw->st.conns >= gw->max_conns) {
			gw->st.closed[TERMINAL_CLOSE_TOO_MANY] += !gw->closing;
			close(res);
		} else {
			tconn_new(gw, res);
		}
		if (gw->handshaking >= gw->max_handshakes && !gw->accept_paused && !gw->closing) {
			gw->accept_paused = true; /* the rest wait in the backlog */
			gw->st.accept_pauses++;
			if (more) {
				struct io_uring_sqe *sqe = loop_sqe(gw->host.loop, NULL);
				io_uring_prep_cancel(sqe, &gw->accept_op, 0);
			}
		}
	} else if (res != -ECANCELED) {
		log_warn("msg=\"terminal accept failed\" lane=%s err=%d", gw->lane->name, res);
	}
	if (more || gw->closing)
		return;
	if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS)
		loop_timer_set(gw->host.loop, &gw->accept_retry, ACCEPT_RETRY_MS, on_accept_retry);
	else
		arm_accept(gw);
}

static void arm_accept(struct tgw *gw)
{
	if (gw->accept_armed || gw->closing || gw->accept_paused)
		return;
	struct io_uring_sqe *sqe = loop_sqe(gw->host.loop, &gw->accept_op);
	io_uring_prep_multishot_accept(sqe, gw->lfd, NULL, NULL, SOCK_CLOEXEC);
	gw->accept_armed = true;
}

static int listen_on(struct tgw *gw, const char *addr, char *err, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(addr, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
	struct addrinfo *ai = NULL;
	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		goto bad;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai) != 0)
		goto bad;
	gw->lfd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (gw->lfd < 0 || setsockopt(gw->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(gw->lfd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(gw->lfd, 4096) < 0) {
		snprintf(err, errlen, "listen %s: %s", addr, strerror(errno));
		freeaddrinfo(ai);
		return -1;
	}
	struct sockaddr_in6 sa;
	socklen_t salen = sizeof(sa);
	getsockname(gw->lfd, (struct sockaddr *)&sa, &salen);
	gw->bgid = ntohs(sa.sin6_port); /* one listener per port: a unique buffer group per loop */
	freeaddrinfo(ai);
	return 0;
bad:
	snprintf(err, errlen, "bad listen address '%s' (HOST:PORT)", addr);
	return -1;
}

/*
 * Open shard gw->nshards: an extra ring with a sparse file table of
 * ring_files slots and its provided-buffer ring (liburing 2.3 has no
 * io_uring_setup_buf_ring). 0, or -1 with err set (nothing left open).
 */
static int shard_open(struct tgw *gw, char *err, size_t errlen)
{
	struct tshard *sh = &gw->shards[gw->nshards];
	size_t ring_bytes = (size_t)gw->nbufs * sizeof(struct io_uring_buf);
	int ret = 0;
	memset(sh, 0, sizeof(*sh));
	sh->ring = loop_ring_open(gw->host.loop, SHARD_SQES, gw->ring_files, &ret);
	if (!sh->ring) {
		snprintf(err, errlen, "io_uring ring with %u registered files: %s", gw->ring_files,
			 strerror(-ret));
		return -1;
	}
	void *mem = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	sh->bufs = aligned_alloc(4096, (size_t)gw->nbufs * gw->bufsz);
	sh->free_slots = malloc((size_t)gw->ring_files * sizeof(uint32_t));
	if (mem == MAP_FAILED || !sh->bufs || !sh->free_slots) {
		snprintf(err, errlen, "out of memory for a terminal shard");
		goto fail;
	}
	struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)mem,
				       .ring_entries = gw->nbufs,
				       .bgid = gw->bgid};
	ret = io_uring_register_buf_ring(loop_ring_uring(sh->ring), &reg, 0);
	if (ret < 0) {
		snprintf(err, errlen, "io_uring_register_buf_ring: %s", strerror(-ret));
		goto fail;
	}
	memset(sh->bufs, 0, (size_t)gw->nbufs * gw->bufsz); /* resident now, not page by page under load */
	sh->br = mem;
	io_uring_buf_ring_init(sh->br);
	for (unsigned i = 0; i < gw->nbufs; i++)
		io_uring_buf_ring_add(sh->br, sh->bufs + (size_t)i * gw->bufsz, gw->bufsz, (uint16_t)i,
				      io_uring_buf_ring_mask(gw->nbufs), (int)i);
	io_uring_buf_ring_advance(sh->br, (int)gw->nbufs);
	for (uint32_t i = 0; i < gw->ring_files; i++) /* slot 0 on top */
		sh->free_slots[i] = gw->ring_files - 1 - i;
	sh->nfree = gw->ring_files;
	gw->nshards++;
	return 0;
fail:
	if (mem != MAP_FAILED)
		munmap(mem, ring_bytes);
	free(sh->bufs);
	free(sh->free_slots);
	loop_ring_close(sh->ring);
	memset(sh, 0, sizeof(*sh));
	return -1;
}

static void shard_close(struct tgw *gw, struct tshard *sh)
{
	io_uring_unregister_buf_ring(loop_ring_uring(sh->ring), gw->bgid);
	munmap(sh->br, (size_t)gw->nbufs * sizeof(struct io_uring_buf));
	free(sh->bufs);
	free(sh->free_slots);
	loop_ring_close(sh->ring); /* closes whatever its table still holds */
}

/* --- population: the segment tree behind readiness ----------------------------------------- */

/*
 * One round trip, read-only: the current version (nothing more when it is
 * ARGV[2], the one we hold), then the district -> street -> community tree
 * with each segment's persons, the buildings that have terminals, and the
 * terminals on each. Rows: "S<TAB>kind<TAB>parent<TAB>persons<TAB>id" (kind
 * 0..3, parent = 1-based row number of the parent segment, 0 = none) and
 * "T<TAB>segment row<TAB>terms record", the record being the terminal id
 * (population layout 1) or "id<TAB>kind<TAB>covers" (layout 2). About two
 * commands per building.
 */
static const char pop_script[] =
	"local p = ARGV[1] "
	"local v = redis.call('GET', p .. 'pop:current') "
	"if not v then return false end "
	"if v == ARGV[2] then return {v} end "
	"local b = p .. 'pop:v' .. v .. ':' "
	"local out, n = {v}, 0 "
	"local function seg(id, kind, parent) "
	"  local persons = redis.call('HGET', b .. 'seg:' .. id, 'persons') or '0' "
	"  n = n + 1 "
	"  out[#out + 1] = 'S\t' .. kind .. '\t' .. parent .. '\t' .. persons .. '\t' .. id "
	"  return n "
	"end "
	"local function terms(id, row) "
	"  for _, t in ipairs(redis.call('LRANGE', b .. 'terms:' .. id, 0, -1)) do "
	"    out[#out + 1] = 'T\t' .. row .. '\t' .. t "
	"  end "
	"end "
	"for _, d in ipairs(redis.call('LRANGE', b .. 'roots', 0, -1)) do "
	"  local di = seg(d, 0, 0) "
	"  for _, st in ipairs(redis.call('LRANGE', b .. 'kids:' .. d, 0, -1)) do "
	"    local si = seg(st, 1, di) "
	"    for _, c in ipairs(redis.call('LRANGE', b .. 'kids:' .. st, 0, -1)) do "
	"      local ci = seg(c, 2, si) "
	"      terms(c, ci) "
	"      for _, bl in ipairs(redis.call('LRANGE', b .. 'kids:' .. c, 0, -1)) do "
	"        if redis.call('EXISTS', b .. 'terms:' .. bl) == 1 then terms(bl, seg(bl, 3, ci)) end "
	"      end "
	"    end "
	"  end "
	"end "
	"return out";

/* One "S\t" row (without its "S\t") into r; the segment's index or TREADY_NONE. */
static uint32_t pop_seg_row(struct tready *r, char *row)
{
	char *f[4], *save = NULL;
	int n = 0;
	for (char *tok = strtok_r(row, "\t", &save); tok && n < 4; tok = strtok_r(NULL, "\t", &save))
		f[n++] = tok;
	if (n != 4)
		return TREADY_NONE;
	unsigned long kind = strtoul(f[0], NULL, 10), parent = strtoul(f[1], NULL, 10);
	return tready_add_seg(r, (enum tready_kind)(kind > 3 ? 3 : kind),
			      parent ? (uint32_t)(parent - 1) : TREADY_NONE,
			      strtoull(f[2], NULL, 10), f[3]);
}

/*
 * Rebuild readiness from the script's rows, for every gateway (the tree is
 * shared, see `ready`); terminals keep their online state.
 */
static void pop_apply(struct tgw *gw, const redisReply *r)
{
	struct tready fresh = {0};
	char row[512];
	for (struct tgw *g = all_gws; g; g = g->next_gw)
		for (size_t i = 0; i < g->nbuckets; i++)
			for (struct term *t = g->buckets[i]; t; t = t->hnext)
				t->seg = TREADY_NONE;
	for (size_t i = 1; i < r->elements; i++) {
		const redisReply *e = r->element[i];
		if (e->type != REDIS_REPLY_STRING || e->len < 3 || e->len >= sizeof(row))
			continue;
		memcpy(row, e->str, e->len + 1);
		if (row[0] == 'S') {
			pop_seg_row(&fresh, row + 2);
			continue;
		}
		char *tab = strchr(row + 2, '\t'), *more = tab ? strchr(tab + 1, '\t') : NULL;
		if (more)
			*more = '\0'; /* layout 2: "ID\tKIND\tCOVERS"; layout 1: "ID" */
		if (row[0] != 'T' || !tab || !terminal_id_valid(tab + 1))
			continue;
		unsigned long seg = strtoul(row + 2, NULL, 10);
		if (seg == 0 || seg > fresh.n)
			continue;
		bool known = false;
		for (struct tgw *g = all_gws; g; g = g->next_gw) {
			struct term *t = term_get(g, tab + 1);
			if (t) {
				t->seg = (uint32_t)(seg - 1);
				known = true;
			}
		}
		if (known)
			tready_add_terminal(&fresh, (uint32_t)(seg - 1));
	}
	tready_release(&ready);
	ready = fresh;
	for (struct tgw *g = all_gws; g; g = g->next_gw) {
		g->pop_version = gw->pop_version;
		for (size_t i = 0; i < g->nbuckets; i++)
			for (struct term *t = g->buckets[i]; t; t = t->hnext)
				if (t->conn && t->conn->state == TC_READY)
					tready_online(&ready, t->seg, +1);
	}
	offline_changed();
	tdel_stock(gw, gw->nterms < gw->lane->window ? gw->nterms : gw->lane->window);
	log_info("msg=\"terminal readiness: population loaded\" lane=%s version=%lld segments=%zu "
		 "terminals=%zu", gw->lane->name, gw->pop_version, fresh.n, gw->nterms);
}

static void on_pop_timer(struct timer *t);

static void on_pop_reply(void *arg, redisReply *r)
{
	struct tgw *gw = arg;
	gw->pop_busy = false;
	if (gw->closing)
		return;
	if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_STRING) {
		long long v = strtoll(r->element[0]->str, NULL, 10);
		if (v != gw->pop_version) {
			gw->pop_version = v;
			pop_apply(gw, r);
		}
	} else if (r && r->type == REDIS_REPLY_ERROR) {
		log_warn("msg=\"terminal readiness: population query failed\" lane=%s err=\"%.200s\"",
			 gw->lane->name, r->str);
	}
	loop_timer_set(gw->host.loop, &gw->pop_timer, POP_CHECK_MS, on_pop_timer);
}

static void on_pop_timer(struct timer *t)
{
	struct tgw *gw = CONTAINER(t, struct tgw, pop_timer);
	char have[24];
	snprintf(have, sizeof(have), "%lld", gw->pop_version);
	const char *argv[] = {"EVAL", pop_script, "0", gw->prefix, have};
	size_t lens[] = {4, sizeof(pop_script) - 1, 1, strlen(gw->prefix), strlen(have)};
	if (gw->closing || gw->pop_busy)
		return;
	if (redis_command(&gw->rc, on_pop_reply, gw, 5, argv, lens) < 0) {
		/* not connected yet: try again soon */
		loop_timer_set(gw->host.loop, &gw->pop_timer, 500, on_pop_timer);
		return;
	}
	gw->pop_busy = true;
}

/* --- open / close ------------------------------------------------------------------------ */

static unsigned key_uint(const struct config_lane *cfg, const char *key, const char *def)
{
	return (unsigned)strtoul(config_lane_get(cfg, key, def), NULL, 10);
}

static int read_config(struct tgw *gw, const struct config_lane *cfg, char *err, size_t errlen)
{
	gw->ack_timeout_ms = key_uint(cfg, "ack_timeout_ms", "5000");
	gw->heartbeat_ms = key_uint(cfg, "heartbeat_ms", "30000");
	gw->handshake_ms = key_uint(cfg, "handshake_ms", "10000");
	gw->max_conns = key_uint(cfg, "max_connections", "200000");
	gw->nbufs = key_uint(cfg, "recv_buffers", "4096");
	gw->bufsz = key_uint(cfg, "recv_buffer_size", "2048");
	gw->sndbuf = key_uint(cfg, "send_buffer", "0");
	gw->max_handshakes = key_uint(cfg, "max_handshakes", "1024");
	char defer[16]; /* by default 1 s, or half the ack timeout when that is shorter */
	snprintf(defer, sizeof(defer), "%u", gw->ack_timeout_ms / 2 < 1000 ? gw->ack_timeout_ms / 2 : 1000);
	gw->inbound_defer_ms = key_uint(cfg, "inbound_defer_ms", defer);
	/* one table may hold RLIMIT_NOFILE files (the limit main raised to the hard one) */
	struct rlimit rl = {0};
	char files[32];
	getrlimit(RLIMIT_NOFILE, &rl);
	snprintf(files, sizeof(files), "%llu",
		 (unsigned long long)(rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 20) ? (1u << 20)
											 : rl.rlim_cur));
	gw->ring_files = key_uint(cfg, "ring_files", files);
	if (gw->max_conns && gw->ring_files > gw->max_conns)
		gw->ring_files = gw->max_conns;
	if (gw->inbound_defer_ms >= gw->ack_timeout_ms) {
		snprintf(err, errlen, "[lane %s] inbound_defer_ms must be below ack_timeout_ms",
			 cfg->name);
		return -1;
	}
	if (!gw->ack_timeout_ms || gw->heartbeat_ms < 100 || !gw->handshake_ms || !gw->max_conns ||
	    !gw->max_handshakes) {
		snprintf(err, errlen, "[lane %s] ack_timeout_ms, heartbeat_ms (>= 100), handshake_ms, "
			 "max_connections and max_handshakes must be positive", cfg->name);
		return -1;
	}
	const char *cert = config_lane_get(cfg, "tls_cert", ""), *key = config_lane_get(cfg, "tls_key", "");
	if (cert[0] || key[0]) {
		char why[512];
		if (!cert[0] || !key[0]) {
			snprintf(err, errlen, "[lane %s] tls_cert and tls_key go together", cfg->name);
			return -1;
		}
		gw->tls = tls_server_ctx(cert, key, why, sizeof(why));
		if (!gw->tls) {
			snprintf(err, errlen, "[lane %s] %s", cfg->name, why);
			return -1;
		}
		SSL_CTX_set_num_tickets(gw->tls, 0); /* terminals keep one long connection */
	}
	if (!gw->ring_files || gw->ring_files > (1u << 20)) {
		snprintf(err, errlen, "[lane %s] ring_files must be in 1..1048576", cfg->name);
		return -1;
	}
	gw->max_shards = (gw->max_conns + gw->ring_files - 1) / gw->ring_files;
	if (gw->max_shards > UINT16_MAX) {
		snprintf(err, errlen, "[lane %s] max_connections / ring_files gives more than %u shards",
			 cfg->name, UINT16_MAX);
		return -1;
	}
	if (gw->nbufs < 8 || gw->nbufs > 32768 || (gw->nbufs & (gw->nbufs - 1)) ||
	    gw->bufsz < 64 || gw->bufsz > 65536) {
		snprintf(err, errlen, "[lane %s] recv_buffers must be a power of two in 8..32768, "
			 "recv_buffer_size in 64..65536", cfg->name);
		return -1;
	}
	return 0;
}

static int gw_init(struct tgw *gw, const struct config_lane *cfg, char *err, size_t errlen)
{
	char why[256];
	gw->lfd = -1;
	gw->accept_op.cb = on_accept;
	snprintf(gw->prefix, sizeof(gw->prefix), "%s", gw->host.prefix ? gw->host.prefix : "tocsin:");
	if (read_config(gw, cfg, err, errlen) < 0)
		return -1;
	if (gw->inbound_defer_ms > gw->host.loop->extra_defer_ms)
		gw->host.loop->extra_defer_ms = gw->inbound_defer_ms;
	gw->arena_mem = malloc(TERMINAL_ARENA_CAP);
	gw->nowhere = calloc(1, sizeof(struct term) + 1);
	if (!gw->arena_mem || !gw->nowhere || map_grow(gw) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	terminal_arena_init(&gw->arena, gw->arena_mem, TERMINAL_ARENA_CAP);
	/* seqs from the clock: an Ack for an Alert of an earlier run of the
	   gateway (played while it restarted) matches nothing of this run */
	gw->seq = (uint64_t)loop_wall_s() << 20;
	gw->next_gw = all_gws;
	all_gws = gw;
	if (listen_on(gw, config_lane_get(cfg, "listen", "0.0.0.0:7000"), err, errlen) < 0)
		return -1;
	gw->shards = calloc(gw->max_shards, sizeof(*gw->shards));
	if (!gw->shards) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (shard_open(gw, why, sizeof(why)) < 0) { /* the first one now: a setup error shows at start */
		snprintf(err, errlen, "[lane %s] %s", cfg->name, why);
		return -1;
	}
	if (redis_init(&gw->rc, gw->host.loop, gw->host.redis ? gw->host.redis : "127.0.0.1:6379",
		       why, sizeof(why)) < 0) {
		snprintf(err, errlen, "[lane %s] %s", cfg->name, why);
		return -1;
	}
	gw->rc.fd = -1;
	return 0;
}

/* Out of all_gws (if in it): the others stop counting its terminals. */
static void gw_unlink(struct tgw *gw)
{
	for (struct tgw **pp = &all_gws; *pp; pp = &(*pp)->next_gw)
		if (*pp == gw) {
			*pp = gw->next_gw;
			break;
		}
}

static void gw_free(struct tgw *gw)
{
	for (unsigned i = 0; i < gw->nshards; i++)
		shard_close(gw, &gw->shards[i]);
	free(gw->shards);
	if (gw->lfd >= 0)
		close(gw->lfd);
	if (gw->rc.loop)
		redis_release(&gw->rc);
	for (size_t i = 0; i < gw->nbuckets; i++) {
		struct term *t = gw->buckets[i], *next;
		for (; t; t = next) {
			next = t->hnext;
			free(t);
		}
	}
	for (size_t i = 0; i < gw->nreasons; i++)
		free(gw->reasons[i]);
	gw_unlink(gw);
	if (!all_gws) {
		tready_release(&ready);
		memset(&faults, 0, sizeof(faults)); /* the population's terminals are gone with it */
	}
	while (gw->free_tdels) {
		struct tdel *td = gw->free_tdels;
		gw->free_tdels = td->next;
		free(td);
	}
	abody_put(gw->alert.body);
	free(gw->buckets);
	free(gw->nowhere);
	SSL_CTX_free(gw->tls);
	free(gw->arena_mem);
	free(gw);
}

static int terminal_open(struct lane *l, const struct lane_host *host,
			 const struct config_lane *cfg, char *err, size_t errlen)
{
	struct tgw *gw = calloc(1, sizeof(*gw));
	if (!gw) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	gw->host = *host;
	gw->lane = l;
	if (gw_init(gw, cfg, err, errlen) < 0) {
		gw_free(gw);
		return -1;
	}
	redis_start(&gw->rc);
	loop_timer_set(gw->host.loop, &gw->pop_timer, 0, on_pop_timer);
	arm_accept(gw);
	l->adapter_state = gw;
	/* Up at once: deliveries for terminals not (yet) connected are held, not refused. */
	host->up(host->ctx, l, true, "terminal gateway listening");
	return 0;
}

static void on_reaper(struct timer *t)
{
	struct tgw *gw = CONTAINER(t, struct tgw, reaper);
	if (gw->st.conns == 0 && !gw->accept_armed && redis_idle(&gw->rc)) {
		gw_free(gw);
		return;
	}
	loop_timer_set(gw->host.loop, &gw->reaper, REAPER_MS, on_reaper);
}

static void drop_deliveries(struct tgw *gw, struct term *t)
{
	while (t->dels) {
		struct tdel *td = t->dels;
		t->dels = td->next;
		loop_timer_cancel(gw->host.loop, &td->timer);
		abody_put(td->body);
		free(td);
	}
}

/* No reports after this; memory goes once every op has come back. */
static void terminal_close(struct lane *l)
{
	struct tgw *gw = l->adapter_state;
	if (!gw)
		return;
	l->adapter_state = NULL;
	gw->closing = true;
	for (size_t i = 0; i < gw->nbuckets; i++)
		for (struct term *t = gw->buckets[i]; t; t = t->hnext)
			drop_deliveries(gw, t);
	drop_deliveries(gw, gw->nowhere);
	gw->ack_head = gw->ack_tail = NULL; /* every tdel is gone */
	loop_timer_cancel(gw->host.loop, &gw->ack_timer);
	loop_timer_cancel(gw->host.loop, &gw->accept_retry);
	loop_timer_cancel(gw->host.loop, &gw->pop_timer);
	if (gw->accept_armed) {
		struct io_uring_sqe *sqe = loop_sqe(gw->host.loop, NULL);
		io_uring_prep_cancel(sqe, &gw->accept_op, 0);
	}
	for (struct tconn *c = gw->conns, *next; c; c = next) {
		next = c->next; /* tconn_close may free c */
		tconn_close(c, TERMINAL_CLOSE_SHUTDOWN);
	}
	gw_unlink(gw); /* its terminals are all offline now */
	offline_changed();
	redis_stop(&gw->rc);
	loop_timer_set(gw->host.loop, &gw->reaper, 0, on_reaper);
}

/* --- readiness ----------------------------------------------------------------------------- */

static const struct tgw *gw_of(const struct lane *l)
{
	return l && l->adapter == &adapter_terminal ? l->adapter_state : NULL;
}

void terminal_readiness(const struct lane *l, uint64_t *online, uint64_t *total_known,
			uint64_t *persons_online)
{
	const struct tgw *gw = gw_of(l);
	uint64_t persons = 0, covered = 0;
	if (gw)
		tready_total(&ready, &persons, &covered);
	*online = gw ? gw->online : 0;
	*total_known = gw ? gw->nterms : 0;
	*persons_online = covered;
}

/* Oldest last_seen first; ties by id, so the list is stable. */
static bool offline_before(const char *id, int64_t seen, const struct terminal_offline *o)
{
	return seen < o->last_seen_s || (seen == o->last_seen_s && strcmp(id, o->id) < 0);
}

static bool offline_lt(const struct terminal_offline *a, const struct terminal_offline *b)
{
	return offline_before(a->id, a->last_seen_s, b);
}

/* Restores the heap below i in h[0..k): each entry is listed after its children. */
static void offline_sift_down(struct terminal_offline *h, size_t k, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= k)
			return;
		if (c + 1 < k && offline_lt(&h[c], &h[c + 1]))
			c++;
		if (!offline_lt(&h[i], &h[c]))
			return;
		struct terminal_offline t = h[i];
		h[i] = h[c];
		h[c] = t;
		i = c;
	}
}

/*
 * Keeps the n first (in list order) of the terminals offered, in out[0..*k)
 * as a heap whose root is the one listed last, the one a newcomer displaces:
 * O(log n) per terminal, so a whole population may be asked for.
 */
static void offline_offer(struct terminal_offline *out, size_t *k, size_t n, const char *id,
			  int64_t seen)
{
	size_t i;
	if (*k < n) {
		i = (*k)++;
		snprintf(out[i].id, sizeof(out[i].id), "%s", id);
		out[i].last_seen_s = seen;
		while (i > 0 && offline_lt(&out[(i - 1) / 2], &out[i])) {
			struct terminal_offline t = out[i];
			out[i] = out[(i - 1) / 2];
			out[(i - 1) / 2] = t;
			i = (i - 1) / 2;
		}
	} else if (n > 0 && offline_before(id, seen, &out[0])) {
		snprintf(out[0].id, sizeof(out[0].id), "%s", id);
		out[0].last_seen_s = seen;
		offline_sift_down(out, n, 0);
	}
}

/* The heap of offline_offer into list order (heapsort). */
static void offline_sort(struct terminal_offline *h, size_t k)
{
	while (k > 1) {
		struct terminal_offline t = h[0];
		h[0] = h[--k];
		h[k] = t;
		offline_sift_down(h, k, 0);
	}
}

/* t (of gateway gw) is connected to no gateway; *seen: when one of them last saw it. */
static bool offline_everywhere(const struct tgw *gw, const struct term *t, int64_t *seen)
{
	*seen = t->last_seen_s;
	if (t->conn)
		return false;
	for (const struct tgw *g = all_gws; g; g = g->next_gw) {
		const struct term *u = g == gw ? NULL : term_find(g, t->id);
		if (u && u->conn)
			return false;
		if (u && u->last_seen_s > *seen)
			*seen = u->last_seen_s;
	}
	return true;
}

/* Terminals connected to no terminal lane of the process (every lane knows them all). */
size_t terminal_offline_oldest(const struct lane *l, struct terminal_offline *out, size_t n)
{
	const struct tgw *gw = gw_of(l);
	size_t k = 0;
	int64_t seen;
	for (size_t i = 0; gw && i < gw->nbuckets; i++)
		for (const struct term *t = gw->buckets[i]; t; t = t->hnext)
			if (offline_everywhere(gw, t, &seen))
				offline_offer(out, &k, n, t->id, seen);
	offline_sort(out, k);
	return k;
}

void terminal_stats(const struct lane *l, struct terminal_stats *out)
{
	const struct tgw *gw = gw_of(l);
	if (!gw) {
		memset(out, 0, sizeof(*out));
		return;
	}
	*out = gw->st;
	out->conn_bytes = sizeof(struct tconn);
	out->term_bytes = sizeof(struct term);
	out->ring_bytes = (uint64_t)gw->nbufs * gw->bufsz * gw->nshards;
	out->shards = gw->nshards;
	out->shard_bytes = (uint64_t)gw->nbufs * gw->bufsz + (uint64_t)gw->ring_files * sizeof(uint32_t);
}

static void set_int(json_t *o, const char *key, uint64_t v)
{
	json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* Readiness per district, street and community (buildings only feed their community). */
static json_t *segments_json(const struct tready *r)
{
	json_t *a = json_array();
	for (size_t i = 0; i < r->n; i++) {
		const struct tready_seg *s = &r->segs[i];
		if (s->kind == TREADY_BUILDING)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "segment", json_string(s->id));
		json_object_set_new(o, "kind", json_string(tready_kind_name(s->kind)));
		set_int(o, "persons", s->persons);
		set_int(o, "covered", s->covered);
		json_object_set_new(o, "share",
				    json_real(s->persons ? (double)s->covered / (double)s->persons : 0));
		set_int(o, "terminals", s->terms);
		set_int(o, "online", s->online_sub);
		json_array_append_new(a, o);
	}
	return a;
}

static void terminal_describe(struct lane *l, struct json_t *o)
{
	struct tgw *gw = l->adapter_state;
	uint64_t persons = 0, covered = 0;
	if (!gw)
		return;
	tready_total(&ready, &persons, &covered);
	set_int(o, "terminals_online", gw->online);
	set_int(o, "terminals_known", gw->nterms);
	set_int(o, "persons_online", covered);
	set_int(o, "population", persons);
	set_int(o, "population_version", (uint64_t)gw->pop_version);
	set_int(o, "connections", gw->st.conns);
	set_int(o, "rings", gw->nshards);
	set_int(o, "handshaking", gw->handshaking);
	set_int(o, "accept_pauses", gw->st.accept_pauses);
	set_int(o, "accepted_connections", gw->st.accepted_conns);
	set_int(o, "authenticated", gw->st.auth_ok);
	set_int(o, "alerts_sent", gw->st.alerts_sent);
	set_int(o, "alerts_resent", gw->st.resends);
	set_int(o, "alert_short_sends", gw->st.short_sends);
	set_int(o, "acks", gw->st.acks);
	/* a real, not a gauge (CLOCK_MONOTONIC: meaningful on this host only, for benchmarks) */
	json_object_set_new(o, "last_received_ack_monotonic_seconds",
			    json_real((double)gw->st.last_received_us / 1e6));
	set_int(o, "alerts_held", gw->st.held);
	set_int(o, "alerts_expired", gw->st.expired);
	for (int i = 0; i < TERMINAL_CLOSE_N; i++) {
		char key[64];
		snprintf(key, sizeof(key), "closed_%s", terminal_close_reason_name(i));
		set_int(o, key, gw->st.closed[i]);
	}
	json_object_set_new(o, "tls", json_boolean(gw->tls != NULL));
	json_object_set_new(o, "segments", segments_json(&ready));
	if (gw->offline_stale) { /* a scan of every terminal, only after something changed */
		gw->n_offline = terminal_offline_oldest(l, gw->offline, TERMINAL_OFFLINE_LIST);
		gw->offline_stale = false;
	}
	json_t *a = json_array();
	for (size_t i = 0; i < gw->n_offline; i++) {
		json_t *t = json_object();
		json_object_set_new(t, "id", json_string(gw->offline[i].id));
		json_object_set_new(t, "last_seen", json_integer(gw->offline[i].last_seen_s));
		json_array_append_new(a, t);
	}
	json_object_set_new(o, "offline_longest", a);
	set_int(o, "status_reports", gw->st.status_reports);
	set_int(o, "terminals_faulty", faults.faulty);
	set_int(o, "terminals_muted", faults.muted);
	a = json_array();
	for (size_t i = 0; i < faults.n; i++) {
		const struct fault_report *r = &faults.latest[i];
		json_t *t = json_object();
		json_object_set_new(t, "id", json_string(r->id));
		json_object_set_new(t, "faults", json_string(r->faults));
		json_object_set_new(t, "volume", json_integer(r->volume == TERM_VOLUME_UNKNOWN ? -1 : r->volume));
		json_object_set_new(t, "at", json_integer(r->at_s));
		json_array_append_new(a, t);
	}
	json_object_set_new(o, "faults_latest", a);
}

/* About n Alerts are coming over the terminal lanes: tdels for them, up to the window. */
static void terminal_reserve(struct lane *l, size_t n)
{
	struct tgw *gw = l->adapter_state;
	tdel_stock(gw, n < l->window ? n : l->window);
}

const struct adapter_ops adapter_terminal = {
	.name = "terminal",
	.open = terminal_open,
	.submit = terminal_submit,
	.close = terminal_close,
	.describe = terminal_describe,
	.reserve = terminal_reserve,
};
