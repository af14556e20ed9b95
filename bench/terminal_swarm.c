/*
 * bench/terminal_swarm.c: N simulated broadcast terminals in one process
 * (epoll, non-blocking sockets), for the terminal gateway's tests and
 * benchmarks. An independent client: it shares only the .proto and the
 * frame codec with the gateway, and computes the HMAC with OpenSSL itself.
 *
 *   terminal_swarm --csv terminals.csv [--target 127.0.0.1:7000] [--count 1000]
 *       [--play-ms 100] [--fail-pct 0] [--churn 0] [--reconnect-ms 1000] [--login-ms 15000]
 *       [--src-ips 1] [--src-base 1] [--first 0] [--connect-rate 5000]
 *       [--stats FILE] [--tls] [--ca FILE] [--status VOLUME[:FAULT,...]]
 *
 * terminals.csv is the loader's format (id,segment,kind,covers_persons,
 * secret; header row; no quoted fields). Each terminal connects, answers
 * the Challenge with Hello (HMAC-SHA256(secret, nonce || id)), heartbeats
 * as Welcome says, answers each Alert with Ack RECEIVED at once and, after
 * --play-ms, PLAYED, or FAILED "speaker fault" for the terminals with
 * (with --play-ms 0 both Acks leave in one write, as one answer per Alert,
 * like the one-byte answer of --mode raw)
 * fnv1a32(id) % 100 < --fail-pct (FNV-1a: h = 2166136261; h ^= byte;
 * h *= 16777619). --churn N drops N random connected terminals per second,
 * each reconnecting after --reconnect-ms. A terminal not logged in
 * (Welcome) within --login-ms of its connect closes and reconnects, as a
 * terminal in the field must: a gateway whose accept queue overflowed
 * leaves the client's side ESTABLISHED with nothing ever coming (counted
 * as login_timeouts). A terminal rejected with
 * BAD_CREDENTIALS or UNSUPPORTED_VERSION stays off; other disconnects
 * reconnect. --status 0:amplifier,mains makes every terminal send
 * Status{volume 0, faults [amplifier, mains]} once after each Welcome
 * (VOLUME alone: no faults; -1: no volume in it). --src-ips K spreads
 * connections over K loopback source addresses from 127.0.0.B, B =
 * --src-base (default 1), so 127.0.0.1..127.0.0.K by default (28k
 * ephemeral ports per source address).
 *
 * One process holds at most RLIMIT_NOFILE sockets (the hard limit, 20,000
 * here, minus 256 for the rest): more terminals than that is refused at
 * start-up with that said. Several processes share one population with
 * --first F (use the CSV's valid rows F..F+count-1; in raw and mqtt modes
 * it only numbers the receivers) and distinct --src-base (process i:
 * --src-base 1+8i --src-ips 8). Their outputs merge: --times lines are in
 * terminal order, so the files concatenated in --first order are the
 * population's; the --stats counters add up ("first" and "terminals" say
 * which rows a file covers); every time is CLOCK_MONOTONIC, one clock for
 * every process on the machine. --tls speaks TLS to the
 * gateway (certificate checked against --ca FILE when given, else not
 * checked: a benchmark against a throw-away certificate).
 *
 * The same receiver serves the fan-out baselines (bench/terminal_fanout.py),
 * so every system is measured by one program with one epoll loop:
 *   --mode raw --frame B: plain TCP to bench/fanout_blaster --port-file;
 *       each B-byte message is answered with one byte;
 *   --mode mqtt: MQTT 3.1.1 subscribers (clean session, no keep-alive) of
 *       topic "alert" at QoS 1 (e.g. Eclipse Mosquitto); each PUBLISH is
 *       answered with PUBACK.
 * (--csv is optional in those modes.) --times FILE writes, on SIGUSR2 and
 * at exit, one line per terminal: the CLOCK_MONOTONIC microsecond its first
 * message (Alert / frame / PUBLISH) arrived and the one its first answer
 * (Ack RECEIVED / byte / PUBACK) was written; 0 when none.
 *
 * Counters are written as JSON to --stats FILE on SIGUSR1 and SIGUSR2 (and
 * it keeps running) and on SIGTERM/SIGINT (then it exits 0). Unique alerts count
 * each (terminal, warning id) once; per-warning counts are listed too.
 *
 * Terminal states: OFF -> CONNECTING -> CHALLENGED (waiting for Challenge)
 * -> HELLO_SENT -> READY; any error -> OFF (+ reconnect timer unless rejected for good).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>

#include "terminal_frame.h"

#define MAX_SEEN 8
#define MAX_WARNINGS 256
#define SIG_TAG UINT64_MAX

enum st { ST_OFF, ST_CONNECTING, ST_TLS, ST_CHALLENGED, ST_HELLO_SENT, ST_READY, ST_DEAD };
#define N_ACK_STATES 6

struct sterm {
	char *id, *secret;
	size_t slen;
	SSL *ssl;      /* --tls only */
	int fd;
	uint8_t state;
	bool fails, want_out;
	uint32_t gen, hb_ms;
	uint8_t *rx, *tx;
	uint32_t rx_len, rx_cap, tx_len, tx_cap, tx_off;
	uint64_t last_tx_ms;
	uint64_t seen[MAX_SEEN];
	uint8_t nseen;
};

struct ev {
	uint64_t due_ms, seq;
	uint64_t alert_seq;   /* play acks: the Alert's seq */
	uint32_t idx, gen;
	uint8_t kind; /* 0 = play ack, 1 = reconnect, 2 = login deadline */
};

struct warn_count {
	char id[TERMINAL_ID_MAX + 1];
	uint64_t n;
};

struct stats {
	uint64_t connects, connect_errors, auth_ok, rejected[8], disconnects, reconnects;
	uint64_t login_timeouts;
	uint64_t alerts, alerts_unique, stops, acks[N_ACK_STATES], heartbeats_in, heartbeats_out;
	uint64_t protocol_errors, churned, tls_errors;
};

enum mode { MODE_TERMINAL, MODE_RAW, MODE_MQTT };

struct swarm {
	struct sockaddr_in target;
	enum mode mode;
	unsigned frame;          /* --mode raw: message size */
	const char *times_path;
	uint64_t *recv_us, *ack_us;
	unsigned play_ms, fail_pct, churn, reconnect_ms, src_ips, src_base, connect_rate, login_ms;
	bool status;             /* --status: a Status after each Welcome */
	long status_volume;      /* -1: none */
	char *status_faults[TERMINAL_MAX_FAULTS];
	size_t n_status_faults;
	size_t first;            /* --first: index of t[0] in the population */
	const char *stats_path;
	SSL_CTX *tls;  /* --tls */
	struct sterm *t;
	size_t n;
	size_t next_connect; /* terminals not yet started */
	int ep, sfd;
	struct ev *ev;
	size_t n_ev, cap_ev;
	uint64_t ev_seq;
	struct warn_count warns[MAX_WARNINGS];
	size_t n_warns;
	struct stats st;
	uint64_t online;
	struct terminal_arena arena;
	uint8_t *arena_mem;
	uint64_t rng;
	uint8_t scratch[TERMINAL_FRAME_MAX + TERMINAL_FRAME_HDR]; /* every read lands here first */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static uint64_t fnv64(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (uint8_t)*s++) * 1099511628211ull;
	return h;
}

/* --- event heap ------------------------------------------------------------ */

static bool ev_before(const struct ev *a, const struct ev *b)
{
	return a->due_ms != b->due_ms ? a->due_ms < b->due_ms : a->seq < b->seq;
}

static void ev_push(struct swarm *s, struct ev e)
{
	if (s->n_ev == s->cap_ev) {
		s->cap_ev = s->cap_ev ? s->cap_ev * 2 : 1024;
		s->ev = realloc(s->ev, s->cap_ev * sizeof(*s->ev));
		if (!s->ev)
			abort();
	}
	e.seq = ++s->ev_seq; /* FIFO among equal deadlines */
	size_t i = s->n_ev++;
	while (i > 0 && ev_before(&e, &s->ev[(i - 1) / 2])) {
		s->ev[i] = s->ev[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->ev[i] = e;
}

static struct ev ev_pop(struct swarm *s)
{
	struct ev top = s->ev[0], last = s->ev[--s->n_ev];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= s->n_ev)
			break;
		if (c + 1 < s->n_ev && ev_before(&s->ev[c + 1], &s->ev[c]))
			c++;
		if (!ev_before(&s->ev[c], &last))
			break;
		s->ev[i] = s->ev[c];
		i = c;
	}
	if (s->n_ev)
		s->ev[i] = last;
	return top;
}

/* --- terminals.csv ------------------------------------------------------------ */

static int load_csv(struct swarm *s, const char *path, size_t want)
{
	FILE *f = fopen(path, "r");
	char line[2048];
	if (!f) {
		perror(path);
		return -1;
	}
	size_t skip = s->first;
	s->t = calloc(want, sizeof(*s->t));
	if (!s->t || !fgets(line, sizeof(line), f)) /* header */
		goto fail;
	while (s->n < want && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		char *fld[5], *p = line;
		size_t k = 0;
		for (; k < 5 && p; k++) {
			fld[k] = p;
			p = strchr(p, ',');
			if (p)
				*p++ = 0;
		}
		if (k < 5 || !terminal_id_valid(fld[0]))
			continue;
		if (skip > 0) { /* another process's terminals (--first) */
			skip--;
			continue;
		}
		struct sterm *t = &s->t[s->n++];
		t->id = strdup(fld[0]);
		t->secret = strdup(fld[4]);
		t->slen = strlen(fld[4]);
		t->fd = -1;
		t->fails = fnv1a(t->id) % 100 < s->fail_pct;
	}
	fclose(f);
	return 0;
fail:
	fclose(f);
	return -1;
}

/* --mode raw / mqtt without --csv: n anonymous receivers. */
static int blank_terminals(struct swarm *s, size_t n)
{
	s->t = calloc(n, sizeof(*s->t));
	if (!s->t)
		return -1;
	for (s->n = 0; s->n < n; s->n++)
		s->t[s->n].fd = -1;
	return 0;
}

/* --- connections ------------------------------------------------------------------ */

static void term_off(struct swarm *s, uint32_t idx, bool reconnect)
{
	struct sterm *t = &s->t[idx];
	if (t->fd >= 0) {
		close(t->fd); /* also removes it from the epoll set */
		t->fd = -1;
	}
	SSL_free(t->ssl);
	t->ssl = NULL;
	if (t->state == ST_READY)
		s->online--;
	t->state = reconnect ? ST_OFF : ST_DEAD;
	t->gen++;
	free(t->rx);
	free(t->tx);
	t->rx = t->tx = NULL;
	t->rx_len = t->rx_cap = t->tx_len = t->tx_cap = t->tx_off = 0;
	t->want_out = false;
	if (reconnect)
		ev_push(s, (struct ev){.due_ms = now_ms() + s->reconnect_ms, .idx = idx, .gen = t->gen,
				       .kind = 1});
}

static void term_connect(struct swarm *s, uint32_t idx)
{
	struct sterm *t = &s->t[idx];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0) {
		s->st.connect_errors++;
		term_off(s, idx, true);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (s->src_ips > 1 || s->src_base != 1) {
		struct sockaddr_in src = {.sin_family = AF_INET};
		src.sin_addr.s_addr = htonl(0x7f000000u + s->src_base + idx % s->src_ips);
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		bind(fd, (struct sockaddr *)&src, sizeof(src));
	}
	t->fd = fd;
	t->state = ST_CONNECTING;
	if (connect(fd, (struct sockaddr *)&s->target, sizeof(s->target)) < 0 &&
	    errno != EINPROGRESS) {
		s->st.connect_errors++;
		term_off(s, idx, true);
		return;
	}
	struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u64 = idx};
	epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e);
	t->want_out = true;
	if (s->mode == MODE_TERMINAL && s->login_ms)
		ev_push(s, (struct ev){.due_ms = now_ms() + s->login_ms, .idx = idx, .gen = t->gen,
				       .kind = 2});
}

static void set_out(struct swarm *s, uint32_t idx, bool on)
{
	struct sterm *t = &s->t[idx];
	if (t->want_out == on)
		return;
	struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | (on ? EPOLLOUT : 0), .data.u64 = idx};
	epoll_ctl(s->ep, EPOLL_CTL_MOD, t->fd, &e);
	t->want_out = on;
}

/* recv/send, or their TLS forms: -1 with errno EAGAIN while TLS waits for the socket. */
static ssize_t tls_result(SSL *ssl, int k)
{
	if (k > 0)
		return k;
	int e = SSL_get_error(ssl, k);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	errno = EIO;
	return -1;
}

static ssize_t t_recv(struct sterm *t, void *p, size_t n)
{
	return t->ssl ? tls_result(t->ssl, SSL_read(t->ssl, p, (int)n)) : recv(t->fd, p, n, 0);
}

static ssize_t t_send(struct sterm *t, const void *p, size_t n)
{
	return t->ssl ? tls_result(t->ssl, SSL_write(t->ssl, p, (int)n))
		      : send(t->fd, p, n, MSG_NOSIGNAL);
}

/* Write what is queued; 0, or -1 when the connection broke. */
static int flush_out(struct swarm *s, uint32_t idx)
{
	struct sterm *t = &s->t[idx];
	while (t->tx_off < t->tx_len) {
		ssize_t n = t_send(t, t->tx + t->tx_off, t->tx_len - t->tx_off);
		if (n < 0 && errno == EAGAIN) {
			set_out(s, idx, true);
			return 0;
		}
		if (n <= 0)
			return -1;
		t->tx_off += (uint32_t)n;
	}
	free(t->tx);
	t->tx = NULL;
	t->tx_len = t->tx_cap = t->tx_off = 0;
	set_out(s, idx, false);
	return 0;
}

/* Room for n more output bytes: where they go, or NULL. */
static uint8_t *tx_room(struct sterm *t, size_t n)
{
	if (t->tx_len + n > t->tx_cap) {
		size_t cap = t->tx_len + n + 256;
		uint8_t *p = realloc(t->tx, cap);
		if (!p)
			return NULL;
		t->tx = p;
		t->tx_cap = (uint32_t)cap;
	}
	return t->tx + t->tx_len;
}

static int send_bytes(struct swarm *s, uint32_t idx, const void *p, size_t n)
{
	struct sterm *t = &s->t[idx];
	uint8_t *dst = tx_room(t, n);
	if (!dst)
		return -1;
	memcpy(dst, p, n);
	t->tx_len += (uint32_t)n;
	t->last_tx_ms = now_ms();
	return flush_out(s, idx);
}

/* Queue f; written now unless `more` (another frame follows at once). */
static int queue_frame(struct swarm *s, uint32_t idx, const Tocsin__Terminal__Frame *f, bool more)
{
	struct sterm *t = &s->t[idx];
	size_t n = terminal_frame_size(f);
	uint8_t *dst = tx_room(t, n);
	if (!dst || terminal_frame_encode(f, dst, n) < 0)
		return -1;
	t->tx_len += (uint32_t)n;
	t->last_tx_ms = now_ms();
	return more ? 0 : flush_out(s, idx);
}

static int send_frame(struct swarm *s, uint32_t idx, const Tocsin__Terminal__Frame *f)
{
	return queue_frame(s, idx, f, false);
}

/* The first message and the first answer of each terminal, for --times. */
static void note_recv(struct swarm *s, uint32_t idx)
{
	if (s->recv_us && !s->recv_us[idx])
		s->recv_us[idx] = now_us();
}

static void note_ack(struct swarm *s, uint32_t idx)
{
	if (s->ack_us && !s->ack_us[idx])
		s->ack_us[idx] = now_us();
}

/* --- protocol ----------------------------------------------------------------------- */

static int send_hello(struct swarm *s, uint32_t idx, const Tocsin__Terminal__Challenge *ch)
{
	struct sterm *t = &s->t[idx];
	uint8_t msg[64 + TERMINAL_ID_MAX], mac[32];
	unsigned int mac_len = 0;
	size_t idlen = strlen(t->id);
	memcpy(msg, ch->nonce.data, ch->nonce.len);
	memcpy(msg + ch->nonce.len, t->id, idlen);
	if (!HMAC(EVP_sha256(), t->secret, (int)t->slen, msg, ch->nonce.len + idlen, mac, &mac_len))
		return -1;
	Tocsin__Terminal__Hello h = TOCSIN__TERMINAL__HELLO__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	h.terminal_id = t->id;
	h.has_version = h.has_mac = true;
	h.version = ch->version < TERMINAL_PROTO_VERSION ? ch->version : TERMINAL_PROTO_VERSION;
	h.mac.data = mac;
	h.mac.len = mac_len;
	h.firmware = "terminal_swarm";
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_HELLO;
	f.hello = &h;
	t->state = ST_HELLO_SENT;
	return send_frame(s, idx, &f);
}

/* --status: the terminal's volume and faults, once per login. */
static int send_status(struct swarm *s, uint32_t idx)
{
	Tocsin__Terminal__Status st = TOCSIN__TERMINAL__STATUS__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	st.has_volume = s->status_volume >= 0;
	st.volume = st.has_volume ? (uint32_t)s->status_volume : 0;
	st.faults = s->status_faults;
	st.n_faults = s->n_status_faults;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_STATUS;
	f.status = &st;
	return send_frame(s, idx, &f);
}

static int queue_ack(struct swarm *s, uint32_t idx, uint64_t seq, Tocsin__Terminal__AckState st,
		     const char *reason, bool more)
{
	Tocsin__Terminal__Ack a = TOCSIN__TERMINAL__ACK__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	a.has_seq = a.has_state = true;
	a.seq = seq;
	a.state = st;
	a.reason = (char *)reason;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_ACK;
	f.ack = &a;
	s->st.acks[st < N_ACK_STATES ? st : 0]++;
	return queue_frame(s, idx, &f, more);
}

static int send_ack(struct swarm *s, uint32_t idx, uint64_t seq, Tocsin__Terminal__AckState st,
		    const char *reason)
{
	return queue_ack(s, idx, seq, st, reason, false);
}

static void count_warning(struct swarm *s, const char *id)
{
	for (size_t i = 0; i < s->n_warns; i++)
		if (!strcmp(s->warns[i].id, id)) {
			s->warns[i].n++;
			return;
		}
	if (s->n_warns == MAX_WARNINGS)
		return;
	snprintf(s->warns[s->n_warns].id, sizeof(s->warns[0].id), "%s", id);
	s->warns[s->n_warns++].n = 1;
}

static int on_alert(struct swarm *s, uint32_t idx, const Tocsin__Terminal__Alert *a)
{
	struct sterm *t = &s->t[idx];
	uint64_t h = fnv64(a->warning_id);
	bool seen = false;
	s->st.alerts++;
	for (unsigned i = 0; i < t->nseen; i++)
		seen |= t->seen[i] == h;
	if (!seen) {
		if (t->nseen < MAX_SEEN)
			t->seen[t->nseen++] = h;
		s->st.alerts_unique++;
		s->st.stops += a->has_stop && a->stop;
		count_warning(s, a->warning_id);
	}
	note_recv(s, idx);
	if (s->play_ms == 0) { /* both Acks at once: one write */
		int ret = queue_ack(s, idx, a->seq, TOCSIN__TERMINAL__ACK_STATE__RECEIVED, NULL, true);
		if (ret == 0)
			ret = t->fails ? queue_ack(s, idx, a->seq, TOCSIN__TERMINAL__ACK_STATE__FAILED,
						   "speaker fault", false)
				       : queue_ack(s, idx, a->seq, TOCSIN__TERMINAL__ACK_STATE__PLAYED,
						   NULL, false);
		note_ack(s, idx);
		return ret;
	}
	ev_push(s, (struct ev){.due_ms = now_ms() + s->play_ms, .idx = idx, .gen = t->gen,
			       .alert_seq = a->seq, .kind = 0});
	int ret = send_ack(s, idx, a->seq, TOCSIN__TERMINAL__ACK_STATE__RECEIVED, NULL);
	note_ack(s, idx);
	return ret;
}

static int on_reject(struct swarm *s, uint32_t idx, const Tocsin__Terminal__Reject *r)
{
	unsigned why = r->has_reason && (unsigned)r->reason < 8 ? (unsigned)r->reason : 0;
	s->st.rejected[why]++;
	bool final = why == TOCSIN__TERMINAL__REJECT_REASON__BAD_CREDENTIALS ||
		     why == TOCSIN__TERMINAL__REJECT_REASON__UNSUPPORTED_VERSION;
	term_off(s, idx, !final);
	return 1; /* connection gone */
}

/* 0, 1 when the terminal went off, -1 on a protocol error. */
static int on_frame(struct swarm *s, uint32_t idx, const uint8_t *p, size_t n)
{
	struct sterm *t = &s->t[idx];
	enum terminal_decode_err err;
	terminal_arena_reset(&s->arena);
	Tocsin__Terminal__Frame *f = terminal_frame_decode(&s->arena, p, n, &err);
	if (!f)
		return -1;
	switch (f->body_case) {
	case TOCSIN__TERMINAL__FRAME__BODY_CHALLENGE:
		return t->state == ST_CHALLENGED ? send_hello(s, idx, f->challenge) : -1;
	case TOCSIN__TERMINAL__FRAME__BODY_WELCOME:
		if (t->state != ST_HELLO_SENT)
			return -1;
		t->state = ST_READY;
		t->hb_ms = f->welcome->has_heartbeat_ms ? f->welcome->heartbeat_ms : 30000;
		s->online++;
		s->st.auth_ok++;
		return s->status ? send_status(s, idx) : 0;
	case TOCSIN__TERMINAL__FRAME__BODY_REJECT:
		return on_reject(s, idx, f->reject);
	case TOCSIN__TERMINAL__FRAME__BODY_HEARTBEAT:
		s->st.heartbeats_in++;
		return 0;
	case TOCSIN__TERMINAL__FRAME__BODY_ALERT:
		return t->state == ST_READY ? on_alert(s, idx, f->alert) : -1;
	default:
		return -1;
	}
}

/* --mode raw: every --frame bytes are one message, answered with one byte. */
static int raw_input(struct swarm *s, uint32_t idx, const uint8_t *data, size_t len, size_t *off)
{
	(void)data;
	while (len - *off >= s->frame) {
		*off += s->frame;
		s->st.alerts++;
		note_recv(s, idx);
		if (send_bytes(s, idx, "k", 1) < 0)
			return -1;
		note_ack(s, idx);
	}
	return 0;
}

static void mqtt_str(uint8_t **p, const char *str)
{
	size_t n = strlen(str);
	*(*p)++ = (uint8_t)(n >> 8);
	*(*p)++ = (uint8_t)n;
	memcpy(*p, str, n);
	*p += n;
}

/* CONNECT (MQTT 3.1.1, clean session, keep-alive off) and SUBSCRIBE alert at QoS 1. */
static int mqtt_hello(struct swarm *s, uint32_t idx)
{
	uint8_t b[256], *p = b + 2, *v;
	char cid[32];
	snprintf(cid, sizeof(cid), "swarm-%d-%u", (int)getpid(), idx);
	mqtt_str(&p, "MQTT");
	*p++ = 4;    /* protocol level 3.1.1 */
	*p++ = 0x02; /* clean session */
	*p++ = 0;
	*p++ = 0;    /* keep-alive 0: off */
	mqtt_str(&p, cid);
	b[0] = 0x10;
	b[1] = (uint8_t)(p - b - 2);
	v = p;
	*p++ = 0x82;
	*p++ = 0; /* length, below */
	*p++ = 0;
	*p++ = 1; /* packet id */
	mqtt_str(&p, "alert");
	*p++ = 1; /* QoS 1 */
	v[1] = (uint8_t)(p - v - 2);
	s->t[idx].state = ST_HELLO_SENT;
	return send_bytes(s, idx, b, (size_t)(p - b));
}

/* --mode mqtt: SUBACK -> ready; PUBLISH -> PUBACK. */
static int mqtt_input(struct swarm *s, uint32_t idx, const uint8_t *data, size_t dlen, size_t *off)
{
	struct sterm *t = &s->t[idx];
	for (;;) {
		const uint8_t *p = data + *off;
		size_t avail = dlen - *off, len = 0, i = 1;
		unsigned shift = 0;
		for (; i < avail && i < 5; i++, shift += 7) {
			len |= (size_t)(p[i] & 0x7f) << shift;
			if (!(p[i] & 0x80))
				break;
		}
		if (i >= avail || avail < i + 1 + len)
			return 0; /* need more */
		const uint8_t *body = p + i + 1;
		uint8_t kind = p[0] >> 4, qos = (p[0] >> 1) & 3;
		*off += i + 1 + len;
		if (kind == 9 && t->state == ST_HELLO_SENT) { /* SUBACK */
			t->state = ST_READY;
			s->online++;
			s->st.auth_ok++;
		} else if (kind == 3) { /* PUBLISH */
			s->st.alerts++;
			note_recv(s, idx);
			size_t tl = len >= 2 ? (size_t)body[0] << 8 | body[1] : 0;
			if (qos > 0 && len >= 2 + tl + 2) {
				uint8_t ack[4] = {0x40, 2, body[2 + tl], body[3 + tl]};
				if (send_bytes(s, idx, ack, sizeof(ack)) < 0)
					return -1;
				note_ack(s, idx);
			}
		}
	}
}

/* --mode terminal: whole frames. 0, 1 when the terminal went off, -1 on a protocol error. */
static int terminal_input(struct swarm *s, uint32_t idx, const uint8_t *data, size_t len,
			  size_t *off)
{
	for (;;) {
		const uint8_t *payload;
		size_t plen;
		ssize_t r = terminal_frame_parse(data + *off, len - *off, &payload, &plen);
		if (r == TERMINAL_FRAME_NEED_MORE)
			return 0;
		if (r < 0)
			return -1;
		int ret = on_frame(s, idx, payload, plen);
		if (ret != 0)
			return ret;
		*off += (size_t)r;
	}
}

/*
 * Everything the socket has: read into the shared scratch buffer and parsed
 * from there; only an unfinished message is copied into the terminal's own
 * rx (idle receivers keep no buffer).
 */
static int read_input(struct swarm *s, uint32_t idx)
{
	struct sterm *t = &s->t[idx];
	for (;;) {
		ssize_t n = t_recv(t, s->scratch, sizeof(s->scratch));
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		const uint8_t *data = s->scratch;
		size_t len = (size_t)n, off = 0;
		if (t->rx_len) { /* the rest of an unfinished message */
			if (t->rx_len + len > 2 * (TERMINAL_FRAME_MAX + TERMINAL_FRAME_HDR))
				return -1;
			if (t->rx_len + len > t->rx_cap) {
				uint8_t *r = realloc(t->rx, t->rx_len + len);
				if (!r)
					return -1;
				t->rx = r;
				t->rx_cap = (uint32_t)(t->rx_len + len);
			}
			memcpy(t->rx + t->rx_len, data, len);
			t->rx_len += (uint32_t)len;
			data = t->rx;
			len = t->rx_len;
		}
		int ret = s->mode == MODE_RAW    ? raw_input(s, idx, data, len, &off)
			  : s->mode == MODE_MQTT ? mqtt_input(s, idx, data, len, &off)
						 : terminal_input(s, idx, data, len, &off);
		if (ret != 0)
			return ret; /* 1: the terminal is off (its rx is gone) */
		size_t rest = len - off;
		if (data == t->rx) {
			memmove(t->rx, t->rx + off, rest);
			t->rx_len = (uint32_t)rest;
		} else if (rest) {
			t->rx = malloc(rest);
			if (!t->rx)
				return -1;
			memcpy(t->rx, data + off, rest);
			t->rx_len = t->rx_cap = (uint32_t)rest;
		}
		if (t->rx_len == 0 && t->rx) {
			free(t->rx);
			t->rx = NULL;
			t->rx_cap = 0;
		}
	}
}

/* --- events ---------------------------------------------------------------------------- */

static void on_connected(struct swarm *s, uint32_t idx)
{
	struct sterm *t = &s->t[idx];
	int err = 0;
	socklen_t len = sizeof(err);
	getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len);
	if (err) {
		s->st.connect_errors++;
		term_off(s, idx, true);
		return;
	}
	s->st.connects++;
	t->state = ST_CHALLENGED;
	set_out(s, idx, false);
	if (s->mode == MODE_RAW) {
		t->state = ST_READY;
		s->online++;
		s->st.auth_ok++;
		return;
	}
	if (s->mode == MODE_MQTT) {
		if (mqtt_hello(s, idx) < 0) {
			s->st.connect_errors++;
			term_off(s, idx, true);
		}
		return;
	}
	if (s->tls) {
		t->ssl = SSL_new(s->tls);
		if (!t->ssl || SSL_set_fd(t->ssl, t->fd) != 1) {
			s->st.connect_errors++;
			term_off(s, idx, true);
			return;
		}
		SSL_set_connect_state(t->ssl);
		t->state = ST_TLS;
	}
}

/* One step of the TLS handshake: 1 done, 0 waiting, -1 failed. */
static int tls_step(struct swarm *s, uint32_t idx)
{
	struct sterm *t = &s->t[idx];
	int r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		t->state = ST_CHALLENGED;
		set_out(s, idx, false);
		return 1;
	}
	int e = SSL_get_error(t->ssl, r);
	ERR_clear_error();
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		set_out(s, idx, e == SSL_ERROR_WANT_WRITE);
		return 0;
	}
	s->st.tls_errors++;
	return -1;
}

static void on_io(struct swarm *s, uint32_t idx, uint32_t events)
{
	struct sterm *t = &s->t[idx];
	if (t->fd < 0)
		return;
	if (t->state == ST_CONNECTING) {
		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		on_connected(s, idx);
		if (t->state != ST_CHALLENGED && t->state != ST_TLS && t->state != ST_READY &&
		    t->state != ST_HELLO_SENT)
			return;
	}
	if (t->state == ST_TLS) {
		int r = tls_step(s, idx);
		if (r < 0)
			goto broken;
		if (r == 0)
			return;
		events |= EPOLLIN; /* the Challenge may be in TLS's buffer already */
	}
	if ((events & EPOLLOUT) && flush_out(s, idx) < 0)
		goto broken;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		int ret = read_input(s, idx);
		if (ret == 1)
			return; /* rejected: already off */
		if (ret < 0)
			goto broken;
	}
	return;
broken:
	s->st.disconnects++;
	term_off(s, idx, true);
}

static void run_events(struct swarm *s)
{
	uint64_t now = now_ms();
	while (s->n_ev && s->ev[0].due_ms <= now) {
		struct ev e = ev_pop(s);
		struct sterm *t = &s->t[e.idx];
		if (e.gen != t->gen)
			continue; /* for a connection that is gone */
		if (e.kind == 1) {
			s->st.reconnects++;
			term_connect(s, e.idx);
			continue;
		}
		if (e.kind == 2) { /* same gen: the connection the deadline was set for */
			if (t->state != ST_READY && t->state != ST_OFF && t->state != ST_DEAD) {
				s->st.login_timeouts++;
				term_off(s, e.idx, true);
			}
			continue;
		}
		if (t->state != ST_READY)
			continue;
		int ret = t->fails ? send_ack(s, e.idx, e.alert_seq, TOCSIN__TERMINAL__ACK_STATE__FAILED,
					      "speaker fault")
				   : send_ack(s, e.idx, e.alert_seq, TOCSIN__TERMINAL__ACK_STATE__PLAYED,
					      NULL);
		if (ret < 0) {
			s->st.disconnects++;
			term_off(s, e.idx, true);
		}
	}
}

/* Once a second: heartbeats that are due, and churn. */
static void tick(struct swarm *s)
{
	uint64_t now = now_ms();
	Tocsin__Terminal__Heartbeat hb = TOCSIN__TERMINAL__HEARTBEAT__INIT;
	Tocsin__Terminal__Frame f = TOCSIN__TERMINAL__FRAME__INIT;
	f.body_case = TOCSIN__TERMINAL__FRAME__BODY_HEARTBEAT;
	f.heartbeat = &hb;
	for (uint32_t i = 0; s->mode == MODE_TERMINAL && i < s->next_connect; i++) {
		struct sterm *t = &s->t[i];
		if (t->state != ST_READY || now - t->last_tx_ms + 1000 < t->hb_ms)
			continue;
		s->st.heartbeats_out++;
		if (send_frame(s, i, &f) < 0) {
			s->st.disconnects++;
			term_off(s, i, true);
		}
	}
	for (unsigned k = 0; k < s->churn && s->online > 0 && s->next_connect > 0; k++) {
		s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t i = (uint32_t)((s->rng >> 33) % s->next_connect);
		if (s->t[i].state != ST_READY)
			continue;
		s->st.churned++;
		term_off(s, i, true);
	}
}

/* Start new connections, at most connect_rate per second. */
static void pace_connects(struct swarm *s, uint64_t *budget_ms)
{
	uint64_t now = now_ms();
	size_t allowed = (size_t)((now - *budget_ms) * s->connect_rate / 1000);
	if (allowed == 0)
		return;
	*budget_ms = now;
	for (; allowed > 0 && s->next_connect < s->n; allowed--)
		term_connect(s, (uint32_t)s->next_connect++);
}

/* --- stats ------------------------------------------------------------------------------ */

static void write_stats(const struct swarm *s)
{
	static const char *reject_names[8] = {"unspecified", "bad_credentials", "unsupported_version",
					      "try_later", "protocol_error", "replaced", "timeout", "other"};
	static const char *ack_names[N_ACK_STATES] = {"unspecified", "received", "playing",
						      "displayed", "played", "failed"};
	char tmp[4096];
	if (!s->stats_path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->stats_path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	const struct stats *st = &s->st;
	fprintf(f, "{\"first\":%zu,\"terminals\":%zu,\"online\":%lu,\"connects\":%lu,\"connect_errors\":%lu,"
		   "\"auth_ok\":%lu,\"disconnects\":%lu,\"reconnects\":%lu,\"churned\":%lu,"
		   "\"alerts\":%lu,\"alerts_unique\":%lu,\"stops\":%lu,\"heartbeats_in\":%lu,"
		   "\"heartbeats_out\":%lu,\"tls_errors\":%lu,\"login_timeouts\":%lu,\"rejected\":{",
		s->first, s->n, (unsigned long)s->online, (unsigned long)st->connects,
		(unsigned long)st->connect_errors, (unsigned long)st->auth_ok,
		(unsigned long)st->disconnects, (unsigned long)st->reconnects,
		(unsigned long)st->churned, (unsigned long)st->alerts,
		(unsigned long)st->alerts_unique, (unsigned long)st->stops,
		(unsigned long)st->heartbeats_in, (unsigned long)st->heartbeats_out,
		(unsigned long)st->tls_errors, (unsigned long)st->login_timeouts);
	for (int i = 0; i < 8; i++)
		fprintf(f, "%s\"%s\":%lu", i ? "," : "", reject_names[i], (unsigned long)st->rejected[i]);
	fprintf(f, "},\"acks\":{");
	for (int i = 1; i < N_ACK_STATES; i++)
		fprintf(f, "%s\"%s\":%lu", i > 1 ? "," : "", ack_names[i], (unsigned long)st->acks[i]);
	fprintf(f, "},\"warnings\":{");
	for (size_t i = 0; i < s->n_warns; i++)
		fprintf(f, "%s\"%s\":%lu", i ? "," : "", s->warns[i].id, (unsigned long)s->warns[i].n);
	fprintf(f, "}}\n");
	if (fclose(f) == 0)
		rename(tmp, s->stats_path);
}

static void write_times(const struct swarm *s)
{
	char tmp[4096];
	if (!s->times_path)
		return;
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->times_path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	for (size_t i = 0; i < s->n; i++)
		fprintf(f, "%lu %lu\n", (unsigned long)s->recv_us[i], (unsigned long)s->ack_us[i]);
	if (fclose(f) == 0)
		rename(tmp, s->times_path);
}

/* true: stop. */
static bool on_signal(struct swarm *s)
{
	struct signalfd_siginfo si;
	bool stop = false;
	while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo != SIGUSR1)
			write_times(s); /* SIGUSR2, and at exit */
		write_stats(s);
		if (si.ssi_signo == SIGUSR2)
			continue;
		stop |= si.ssi_signo != SIGUSR1;
	}
	return stop;
}

static void run(struct swarm *s)
{
	struct epoll_event evs[1024];
	uint64_t last_tick = now_ms(), budget = now_ms();
	for (;;) {
		pace_connects(s, &budget);
		int timeout = s->next_connect < s->n ? 5 : 50;
		if (s->n_ev) {
			uint64_t now = now_ms(), due = s->ev[0].due_ms;
			int until = due > now ? (int)(due - now) : 0;
			timeout = until < timeout ? until : timeout;
		}
		int n = epoll_wait(s->ep, evs, 1024, timeout);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == SIG_TAG) {
				if (on_signal(s))
					return;
				continue;
			}
			on_io(s, (uint32_t)evs[i].data.u64, evs[i].events);
		}
		run_events(s);
		if (now_ms() - last_tick >= 1000) {
			last_tick = now_ms();
			tick(s);
		}
	}
}

/* --- main ------------------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: terminal_swarm --csv FILE [--target HOST:PORT] [--count N] "
			"[--play-ms MS] [--fail-pct P] [--churn N] [--reconnect-ms MS] [--login-ms MS] "
			"[--src-ips K] [--src-base B] [--first F] [--connect-rate R] [--stats FILE] "
			"[--tls] [--ca FILE] [--status VOLUME[:FAULT,...]]\n"
			"       [--mode terminal|raw|mqtt] [--frame BYTES] [--times FILE]\n");
	exit(2);
}

static int parse_target(struct swarm *s, const char *arg)
{
	char host[64];
	const char *colon = strrchr(arg, ':');
	if (!colon || (size_t)(colon - arg) >= sizeof(host))
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - arg), arg);
	s->target.sin_family = AF_INET;
	s->target.sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &s->target.sin_addr) == 1 ? 0 : -1;
}

/* --status VOLUME[:FAULT,...]: VOLUME -1..100, at most TERMINAL_MAX_FAULTS names of <= 64 bytes. */
static void parse_status(struct swarm *s, const char *arg)
{
	char *end, *list = strchr(arg, ':');
	long v = strtol(arg, &end, 10);
	if (end == arg || (*end && *end != ':') || v < -1 || v > 100) {
		fprintf(stderr, "terminal_swarm: --status %s: the volume must be -1..100\n", arg);
		exit(2);
	}
	s->status = true;
	s->status_volume = v;
	for (char *p = list ? strdup(list + 1) : NULL, *save = NULL, *name; p; p = NULL)
		for (name = strtok_r(p, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
			if (s->n_status_faults == TERMINAL_MAX_FAULTS || strlen(name) > 64) {
				fprintf(stderr, "terminal_swarm: --status: at most %d faults of 64 bytes\n",
					TERMINAL_MAX_FAULTS);
				exit(2);
			}
			s->status_faults[s->n_status_faults++] = name;
		}
}

static void parse_args(struct swarm *s, int argc, char **argv, const char **csv, size_t *count)
{
	static const struct option opts[] = {
		{"csv", 1, 0, 'c'},      {"target", 1, 0, 't'},     {"count", 1, 0, 'n'},
		{"play-ms", 1, 0, 'p'},  {"fail-pct", 1, 0, 'f'},   {"churn", 1, 0, 'u'},
		{"reconnect-ms", 1, 0, 'r'}, {"src-ips", 1, 0, 'i'}, {"connect-rate", 1, 0, 'k'},
		{"stats", 1, 0, 's'},    {"tls", 0, 0, 'T'},        {"ca", 1, 0, 'C'},
		{"mode", 1, 0, 'm'},     {"frame", 1, 0, 'F'},      {"times", 1, 0, 'x'},
		{"src-base", 1, 0, 'b'}, {"first", 1, 0, 'K'},    {"login-ms", 1, 0, 'L'},
		{"status", 1, 0, 'S'},   {0, 0, 0, 0}};
	const char *ca = NULL;
	int o;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'c': *csv = optarg; break;
		case 't': if (parse_target(s, optarg) < 0) usage(); break;
		case 'n': *count = strtoul(optarg, NULL, 10); break;
		case 'p': s->play_ms = (unsigned)atoi(optarg); break;
		case 'f': s->fail_pct = (unsigned)atoi(optarg); break;
		case 'u': s->churn = (unsigned)atoi(optarg); break;
		case 'r': s->reconnect_ms = (unsigned)atoi(optarg); break;
		case 'L': s->login_ms = (unsigned)atoi(optarg); break;
		case 'i': s->src_ips = (unsigned)atoi(optarg); break;
		case 'k': s->connect_rate = (unsigned)atoi(optarg); break;
		case 's': s->stats_path = optarg; break;
		case 'T': s->tls = SSL_CTX_new(TLS_client_method()); break;
		case 'C': ca = optarg; break;
		case 'm':
			s->mode = !strcmp(optarg, "raw")    ? MODE_RAW
				  : !strcmp(optarg, "mqtt") ? MODE_MQTT
				  : !strcmp(optarg, "terminal") ? MODE_TERMINAL
								: (usage(), MODE_TERMINAL);
			break;
		case 'F': s->frame = (unsigned)atoi(optarg); break;
		case 'x': s->times_path = optarg; break;
		case 'b': s->src_base = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'K': s->first = strtoul(optarg, NULL, 10); break;
		case 'S': parse_status(s, optarg); break;
		default: usage();
		}
	}
	if ((!*csv && s->mode == MODE_TERMINAL) || !*count || !s->connect_rate ||
	    (s->mode == MODE_RAW && !s->frame))
		usage();
	/* the source addresses stay inside 127.0.0.0/8, short of its broadcast address */
	if (s->src_ips < 1 || s->src_base < 1 || s->src_base + s->src_ips - 1 > 0xfffffeu) {
		fprintf(stderr, "terminal_swarm: --src-base %u --src-ips %u leaves 127.0.0.0/8\n",
			s->src_base, s->src_ips);
		exit(2);
	}
	if (s->tls) {
		SSL_CTX_set_mode(s->tls, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		if (ca && SSL_CTX_load_verify_locations(s->tls, ca, NULL) != 1) {
			fprintf(stderr, "terminal_swarm: cannot load --ca %s\n", ca);
			exit(2);
		}
		SSL_CTX_set_verify(s->tls, ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	}
}

/* Descriptors for s->n sockets and 256 more, or -1 said why (the hard limit is fixed). */
static int raise_nofile(const struct swarm *s)
{
	struct rlimit cur;
	rlim_t need = (rlim_t)s->n + 256;
	getrlimit(RLIMIT_NOFILE, &cur);
	if (cur.rlim_cur >= need)
		return 0;
	if (cur.rlim_max != RLIM_INFINITY && cur.rlim_max < need) {
		fprintf(stderr,
			"terminal_swarm: %zu terminals need %lu descriptors, but one process holds at "
			"most %lu (hard RLIMIT_NOFILE): split them over several processes with --first "
			"and --src-base\n",
			s->n, (unsigned long)need, (unsigned long)cur.rlim_max);
		return -1;
	}
	struct rlimit rl = {.rlim_cur = need, .rlim_max = cur.rlim_max};
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		fprintf(stderr, "terminal_swarm: cannot raise RLIMIT_NOFILE to %lu: %s\n",
			(unsigned long)need, strerror(errno));
		return -1;
	}
	return 0;
}

static int setup(struct swarm *s)
{
	if (raise_nofile(s) < 0)
		return -1;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	s->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->arena_mem = malloc(TERMINAL_ARENA_CAP);
	if (s->sfd < 0 || s->ep < 0 || !s->arena_mem)
		return -1;
	terminal_arena_init(&s->arena, s->arena_mem, TERMINAL_ARENA_CAP);
	struct epoll_event e = {.events = EPOLLIN, .data.u64 = SIG_TAG};
	return epoll_ctl(s->ep, EPOLL_CTL_ADD, s->sfd, &e);
}

int main(int argc, char **argv)
{
	struct swarm *s = calloc(1, sizeof(*s));
	const char *csv = NULL;
	size_t count = 1000;
	if (!s)
		return 1;
	s->play_ms = 100;
	s->reconnect_ms = 1000;
	s->login_ms = 15000;
	s->src_ips = 1;
	s->src_base = 1;
	s->connect_rate = 5000;
	s->rng = (uint64_t)getpid();
	parse_target(s, "127.0.0.1:7000");
	parse_args(s, argc, argv, &csv, &count);
	if ((csv ? load_csv(s, csv, count) : blank_terminals(s, count)) < 0 || setup(s) < 0) {
		fprintf(stderr, "terminal_swarm: start-up failed\n");
		return 1;
	}
	if (s->times_path) {
		s->recv_us = calloc(s->n, sizeof(uint64_t));
		s->ack_us = calloc(s->n, sizeof(uint64_t));
		if (!s->recv_us || !s->ack_us)
			return 1;
	}
	run(s);
	write_times(s);
	for (size_t i = 0; i < s->n; i++)
		if (s->t[i].fd >= 0)
			close(s->t[i].fd);
	return 0;
}
