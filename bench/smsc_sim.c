/*
 * bench/smsc_sim.c: a standalone SMSC speaking SMPP 3.4, for tests and
 * benchmarks of the SMS adapter. A tool, not the engine: epoll, one thread.
 *
 *   smsc_sim --port N [--port-file F] [--password P] [--latency-ms 0]
 *            [--throttle-rate 0] [--throttle-after 0] [--receipt-delay-ms 0]
 *            [--mix delivrd=90,undeliv=5,expired=3,none=2]
 *            [--id-format mixed|dec|hex] [--receipts mixed|tlv|text]
 *            [--bad-prefix DIGITS] [--receipt-first] [--stats FILE]
 *            [--tls-cert CHAIN.pem --tls-key KEY.pem] [--resp-chunk N]
 *
 * It accepts bind_transceiver/transmitter/receiver (any credentials, or
 * only --password), answers submit_sm after --latency-ms with a message id
 * (ESME_RTHROTTLED above --throttle-rate submits/s per bind, once
 * --throttle-after submit_sm were counted: an SMSC that starts throttling
 * mid-run without dropping its binds; and
 * ESME_RINVDSTADR for destinations starting with --bad-prefix), and sends
 * one receipt per accepted part after --receipt-delay-ms, on the bound
 * transceivers/receivers of the same system_id in turn, with a stat drawn
 * from --mix. The id formats of the response and the receipt differ on
 * purpose (decimal vs hex, case, leading zeros) and the receipt carries
 * TLVs and/or Appendix B text. With --receipt-first the receipt is queued
 * when the submit_sm is read, so it leaves before the submit_sm_resp when
 * --receipt-delay-ms <= --latency-ms (the client cannot know its id yet).
 * With --tls-cert and --tls-key the listener speaks SMPP over TLS only
 * (OpenSSL on the non-blocking socket); failed handshakes are counted.
 * With --resp-chunk N it sends what is due (at latency 0, the responses)
 * after every N submit_sm of a read, instead of once the whole read is
 * handled: an SMSC that answers as it goes, so that a client refills its
 * window while the rest of its batch is still being answered (0, the
 * default: one write per read, which with a client that sends its whole
 * window at once is a strict ping-pong of window-sized batches).
 *
 * Counts go to --stats as JSON on SIGUSR1 and at exit (SIGTERM, SIGINT),
 * with submit_seconds: first submit_sm read to last submit_sm_resp queued
 * (microsecond clock), the client's pace measured the same way whatever
 * the client is (bench/smpp_bench.py compares the engine and the blaster
 * with it), and how the bytes travelled: reads (and those with a submit_sm),
 * sends, and submit_idle_seconds, the time spent waiting in epoll_wait
 * within that span (the SMSC idle, waiting for the client); the span's ends
 * on CLOCK_MONOTONIC (first_submit_mono_us, last_submit_resp_mono_us), to
 * compare with a client's own clock.
 * Invariant: timed events are FIFOs because their delays are constant.
 */
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
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "smpp.h"

#define MAX_CONNS 1024
#define MARKS 64
#define MARK_EVERY 2000
#define RBUF (SMPP_MAX_PDU + 4096)

struct conn {
	int fd;
	unsigned gen;
	SSL *ssl;      /* TLS listener only */
	bool tls_ready; /* handshake done */
	bool bound, can_receive, throttling;
	char system_id[16];
	uint8_t *rbuf;
	size_t rlen;
	uint8_t *wbuf;
	size_t wlen, wcap, woff;
	double tokens;
	uint64_t refill_ms;
};

struct ev {
	uint64_t due_ms;
	int conn;
	unsigned gen;
	uint32_t seq, status;
	uint64_t msg_id;
	unsigned variant;
	uint8_t stat; /* receipts: SMPP_STATE_*; 0 = none */
	char system_id[16];
	char src[21], dst[21];
};

struct fifo {
	struct ev *v;
	size_t head, n, cap;
};

struct opts {
	int port;
	const char *port_file, *password, *stats, *bad_prefix, *tls_cert, *tls_key;
	bool receipt_first;
	unsigned latency_ms, receipt_delay_ms;
	unsigned resp_chunk; /* send what is due after every this many submit_sm read; 0: per read */
	double throttle_rate;
	uint64_t throttle_after; /* submits counted before the throttle applies */
	unsigned mix[4]; /* delivrd, undeliv, expired, none */
	int id_format;   /* 0 mixed, 1 dec, 2 hex */
	int receipts;    /* 0 mixed, 1 tlv, 2 text */
};

struct stats {
	uint64_t binds, bind_refused, unbinds, submits, messages, parts_udh, dc_ucs2, dc_gsm,
		dc_other, throttled, rejected, accepted, receipts_delivrd, receipts_undeliv,
		receipts_expired, receipts_none, receipts_unsent, deliver_resps, enquire_links,
		tls_handshakes, tls_failures;
	/* the client's pace as the SMSC sees it: first submit_sm read .. last submit_sm_resp queued */
	uint64_t first_submit_us, last_submit_resp_us;
	/* how the client's bytes arrive and ours leave, over the whole run: recv() calls that
	 * returned data, those that carried a submit_sm, send() calls; and the time spent
	 * waiting in epoll_wait from the first submit_sm up to the last submit_sm_resp (the
	 * SMSC idle because nothing came in: the client, not the SMSC, set the pace) */
	uint64_t reads, submit_reads, sends, idle_us, idle_at_last_resp_us;
	/* the pace along the run: when submit_sm number 1, 1 + MARK_EVERY, ... was read (us after
	 * the first) */
	uint64_t marks_us[MARKS];
	unsigned n_marks;
	uint64_t *dest_set;
	size_t dest_cap, dests;
};

struct sim {
	struct opts o;
	SSL_CTX *ssl_ctx;
	int ep, lfd;
	struct conn c[MAX_CONNS];
	struct fifo resp, rcpt;
	struct stats st;
	uint64_t next_id, picks;
	unsigned rr;
};

static volatile sig_atomic_t got_usr1, got_term;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		got_usr1 = 1;
	else
		got_term = 1;
}

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

static void fifo_push(struct fifo *f, const struct ev *e)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 4096;
		struct ev *v = malloc(cap * sizeof(*v));
		if (!v)
			abort();
		for (size_t i = 0; i < f->n; i++)
			v[i] = f->v[(f->head + i) % f->cap];
		free(f->v);
		f->v = v;
		f->cap = cap;
		f->head = 0;
	}
	f->v[(f->head + f->n++) % f->cap] = *e;
}

static struct ev *fifo_due(struct fifo *f, uint64_t now)
{
	return f->n && f->v[f->head].due_ms <= now ? &f->v[f->head] : NULL;
}

static void fifo_pop(struct fifo *f)
{
	f->head = (f->head + 1) % f->cap;
	f->n--;
}

/* --- stats --- */

static void dest_add(struct stats *st, const char *d)
{
	uint64_t h = 1469598103934665603ull;
	for (; *d; d++)
		h = (h ^ (uint8_t)*d) * 1099511628211ull;
	h |= 1;
	if (st->dests * 2 >= st->dest_cap) {
		size_t cap = st->dest_cap ? st->dest_cap * 2 : 4096;
		uint64_t *n = calloc(cap, sizeof(*n));
		if (!n)
			abort();
		for (size_t i = 0; i < st->dest_cap; i++)
			for (size_t j = st->dest_set[i] % cap; st->dest_set[i]; j = (j + 1) % cap)
				if (!n[j]) {
					n[j] = st->dest_set[i];
					break;
				}
		free(st->dest_set);
		st->dest_set = n;
		st->dest_cap = cap;
	}
	for (size_t j = h % st->dest_cap;; j = (j + 1) % st->dest_cap) {
		if (st->dest_set[j] == h)
			return;
		if (!st->dest_set[j]) {
			st->dest_set[j] = h;
			st->dests++;
			return;
		}
	}
}

static void write_stats(const struct sim *s)
{
	if (!s->o.stats)
		return;
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.tmp", s->o.stats);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return;
	const struct stats *st = &s->st;
	char marks[MARKS * 24] = ""; /* 64 numbers of at most 20 digits, ", " between */
	for (unsigned k = 0, o = 0; k < st->n_marks; k++)
		o += (unsigned)snprintf(marks + o, sizeof(marks) - o, "%s%lu", k ? ", " : "",
					st->marks_us[k]);
	fprintf(f, "{\"binds\": %lu, \"bind_refused\": %lu, \"unbinds\": %lu, \"submit_sm\": %lu, "
		"\"messages\": %lu, \"parts_udh\": %lu, \"dc_ucs2\": %lu, \"dc_gsm\": %lu, "
		"\"dc_other\": %lu, \"throttled\": %lu, \"rejected\": %lu, \"accepted\": %lu, "
		"\"unique_destinations\": %zu, \"receipts\": {\"DELIVRD\": %lu, \"UNDELIV\": %lu, "
		"\"EXPIRED\": %lu, \"none\": %lu, \"unsent\": %lu}, \"deliver_sm_resp\": %lu, "
		"\"enquire_link\": %lu, \"tls_handshakes\": %lu, \"tls_failures\": %lu, "
		"\"reads\": %lu, \"submit_reads\": %lu, \"sends\": %lu, \"submit_idle_seconds\": %.6f, "
		"\"submit_marks_us\": [%s], \"first_submit_mono_us\": %lu, "
		"\"last_submit_resp_mono_us\": %lu, \"submit_seconds\": %.6f}\n",
		st->binds, st->bind_refused, st->unbinds, st->submits, st->messages, st->parts_udh,
		st->dc_ucs2, st->dc_gsm, st->dc_other, st->throttled, st->rejected, st->accepted,
		st->dests, st->receipts_delivrd, st->receipts_undeliv, st->receipts_expired,
		st->receipts_none, st->receipts_unsent, st->deliver_resps, st->enquire_links,
		st->tls_handshakes, st->tls_failures, st->reads, st->submit_reads, st->sends,
		(double)st->idle_at_last_resp_us / 1e6, marks, st->first_submit_us,
		st->last_submit_resp_us, st->last_submit_resp_us > st->first_submit_us
			? (double)(st->last_submit_resp_us - st->first_submit_us) / 1e6 : 0.0);
	fclose(f);
	rename(tmp, s->o.stats);
}

/* --- connections --- */

static void conn_close(struct sim *s, int i)
{
	struct conn *c = &s->c[i];
	epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
	SSL_free(c->ssl);
	close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	unsigned gen = c->gen + 1;
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->gen = gen;
}

static void want_write(struct sim *s, int i, bool on)
{
	struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u32 = (uint32_t)i};
	epoll_ctl(s->ep, EPOLL_CTL_MOD, s->c[i].fd, &ev);
}

/* Advance the TLS handshake; true once it is done (false: wait, or the connection was closed). */
static bool tls_step(struct sim *s, int i)
{
	struct conn *c = &s->c[i];
	if (c->tls_ready)
		return true;
	int r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->tls_ready = true;
		s->st.tls_handshakes++;
		want_write(s, i, false);
		return true;
	}
	int e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		want_write(s, i, e == SSL_ERROR_WANT_WRITE);
		return false;
	}
	char why[200] = "the client closed the connection";
	if (ERR_peek_error())
		ERR_error_string_n(ERR_get_error(), why, sizeof(why));
	ERR_clear_error();
	fprintf(stderr, "smsc_sim: TLS handshake failed: %s\n", why);
	s->st.tls_failures++;
	conn_close(s, i);
	return false;
}

/* Send from c's output: <0 error (closed), 0 would block, else bytes sent. */
static ssize_t conn_send(struct sim *s, int i)
{
	struct conn *c = &s->c[i];
	s->st.sends++;
	if (!c->ssl) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		return n > 0 ? n : -1;
	}
	if (!tls_step(s, i))
		return c->fd < 0 ? -2 : 0;
	size_t len = c->wlen - c->woff;
	int n = SSL_write(c->ssl, c->wbuf + c->woff, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return n;
	int e = SSL_get_error(c->ssl, n);
	ERR_clear_error();
	return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
}

static void conn_flush(struct sim *s, int i)
{
	struct conn *c = &s->c[i];
	if (c->ssl && !tls_step(s, i))
		return;
	while (c->woff < c->wlen) {
		ssize_t n = conn_send(s, i);
		if (n == -2)
			return; /* closed by the handshake */
		if (n == 0) {
			want_write(s, i, true);
			return;
		}
		if (n < 0) {
			conn_close(s, i);
			return;
		}
		c->woff += (size_t)n;
	}
	c->wlen = c->woff = 0;
	want_write(s, i, false);
}

/* Room for n more bytes at the end of c's output. */
static uint8_t *conn_room(struct conn *c, size_t n)
{
	if (c->woff && c->woff == c->wlen)
		c->wlen = c->woff = 0;
	if (c->wlen + n > c->wcap) {
		size_t cap = c->wcap ? c->wcap : 65536;
		while (cap < c->wlen + n)
			cap *= 2;
		uint8_t *w = realloc(c->wbuf, cap);
		if (!w)
			abort();
		c->wbuf = w;
		c->wcap = cap;
	}
	return c->wbuf + c->wlen;
}

static void conn_put(struct conn *c, const uint8_t *p, size_t n)
{
	memcpy(conn_room(c, n), p, n);
	c->wlen += n;
}

static void accept_all(struct sim *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		int i = 0;
		while (i < MAX_CONNS && s->c[i].fd >= 0)
			i++;
		if (i == MAX_CONNS) {
			close(fd);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = &s->c[i];
		c->fd = fd;
		c->rbuf = malloc(RBUF);
		if (!c->rbuf)
			abort();
		if (s->ssl_ctx) {
			c->ssl = SSL_new(s->ssl_ctx);
			if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1)
				abort();
			SSL_set_accept_state(c->ssl);
		}
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
	}
}

/* --- SMPP --- */

static void format_id(uint64_t id, unsigned variant, bool receipt, char *out, size_t cap)
{
	/* variant: 0 dec/hex-upper, 1 hex-lower/dec, 2 hex-upper/hex-lower-zero-padded, 3 dec/dec-padded */
	static const char *const fmt[4][2] = {
		{"%llu", "%llX"}, {"%llx", "%llu"}, {"%llX", "%012llx"}, {"%llu", "%010llu"}};
	snprintf(out, cap, fmt[variant % 4][receipt], (unsigned long long)id);
}

static unsigned id_variant(struct sim *s)
{
	if (s->o.id_format == 1)
		return 3;
	if (s->o.id_format == 2)
		return 2;
	return (unsigned)(s->next_id % 4);
}

static void on_bind(struct sim *s, int i, const struct smpp_pdu *p)
{
	struct conn *c = &s->c[i];
	uint8_t out[64];
	bool ok = p->body_err == SMPP_OK && !c->bound &&
		  (!s->o.password || !strcmp(p->u.bind.password, s->o.password));
	size_t n = smpp_encode_resp(out, sizeof(out), p->id | SMPP_RESP,
				    ok ? ESME_ROK : ESME_RINVPASWD, p->seq, "smsc_sim");
	conn_put(c, out, n);
	if (!ok) {
		s->st.bind_refused++;
		return;
	}
	s->st.binds++;
	c->bound = true;
	c->can_receive = p->id != SMPP_BIND_TRANSMITTER;
	snprintf(c->system_id, sizeof(c->system_id), "%s", p->u.bind.system_id);
	c->tokens = s->o.throttle_rate;
	c->refill_ms = now_ms();
}

static bool throttled(struct sim *s, struct conn *c)
{
	if (s->o.throttle_rate <= 0 || s->st.submits < s->o.throttle_after)
		return false;
	uint64_t now = now_ms();
	if (!c->throttling) { /* the bucket starts full when the throttle starts */
		c->throttling = true;
		c->tokens = s->o.throttle_rate;
		c->refill_ms = now;
	}
	c->tokens += (double)(now - c->refill_ms) * s->o.throttle_rate / 1000.0;
	c->refill_ms = now;
	if (c->tokens > s->o.throttle_rate)
		c->tokens = s->o.throttle_rate;
	if (c->tokens < 1)
		return true;
	c->tokens -= 1;
	return false;
}

static void count_submit(struct sim *s, const struct smpp_sm *sm)
{
	if (s->st.submits % MARK_EVERY == 0 && s->st.n_marks < MARKS)
		s->st.marks_us[s->st.n_marks++] = now_us() - s->st.first_submit_us;
	s->st.submits++;
	bool udh = sm->esm_class & SMPP_ESM_UDHI;
	if (udh)
		s->st.parts_udh++;
	if (!udh || (sm->sm_length >= 6 && sm->short_message[5] == 1))
		s->st.messages++;
	if (sm->data_coding == 8)
		s->st.dc_ucs2++;
	else if (sm->data_coding == 0)
		s->st.dc_gsm++;
	else
		s->st.dc_other++;
	dest_add(&s->st, sm->dest_addr);
}

static uint8_t pick_stat(struct sim *s)
{
	unsigned total = s->o.mix[0] + s->o.mix[1] + s->o.mix[2] + s->o.mix[3];
	if (!total)
		return 0;
	unsigned r = (unsigned)((s->picks++ * 2654435761u) % total);
	if (r < s->o.mix[0])
		return SMPP_STATE_DELIVERED;
	if ((r -= s->o.mix[0]) < s->o.mix[1])
		return SMPP_STATE_UNDELIVERABLE;
	if ((r -= s->o.mix[1]) < s->o.mix[2])
		return SMPP_STATE_EXPIRED;
	return 0;
}

static void on_submit(struct sim *s, int i, const struct smpp_pdu *p)
{
	struct conn *c = &s->c[i];
	struct ev e = {.due_ms = now_ms() + s->o.latency_ms, .conn = i, .gen = c->gen, .seq = p->seq};
	if (!s->st.first_submit_us)
		s->st.first_submit_us = now_us();
	if (!c->bound) {
		e.status = 0x04; /* ESME_RINVBNDSTS */
	} else if (p->body_err != SMPP_OK) {
		e.status = 0x01;
	} else {
		count_submit(s, &p->u.sm);
		const char *bp = s->o.bad_prefix;
		if (bp && !strncmp(p->u.sm.dest_addr, bp, strlen(bp)))
			e.status = ESME_RINVDSTADR;
		else if (throttled(s, c))
			e.status = ESME_RTHROTTLED;
	}
	if (e.status == ESME_RTHROTTLED)
		s->st.throttled++;
	else if (e.status)
		s->st.rejected++;
	if (!e.status) {
		s->st.accepted++;
		e.msg_id = s->next_id++;
		e.variant = id_variant(s);
		snprintf(e.system_id, sizeof(e.system_id), "%s", c->system_id);
		snprintf(e.src, sizeof(e.src), "%s", p->u.sm.source_addr);
		snprintf(e.dst, sizeof(e.dst), "%s", p->u.sm.dest_addr);
		if (s->o.receipt_first) {
			struct ev r = e;
			r.due_ms = now_ms() + s->o.receipt_delay_ms;
			r.stat = pick_stat(s);
			fifo_push(&s->rcpt, &r);
		}
	}
	fifo_push(&s->resp, &e);
}

static void on_pdu(struct sim *s, int i, const struct smpp_pdu *p)
{
	struct conn *c = &s->c[i];
	switch (p->id) {
	case SMPP_BIND_TRANSCEIVER:
	case SMPP_BIND_TRANSMITTER:
	case SMPP_BIND_RECEIVER:
		on_bind(s, i, p);
		return;
	case SMPP_SUBMIT_SM:
		on_submit(s, i, p);
		return;
	case SMPP_ENQUIRE_LINK:
		s->st.enquire_links++;
		break;
	case SMPP_UNBIND:
		s->st.unbinds++;
		c->bound = false;
		break;
	case SMPP_DELIVER_SM | SMPP_RESP:
		s->st.deliver_resps++;
		return;
	default:
		if (p->id & SMPP_RESP)
			return;
		uint8_t nack[16];
		conn_put(c, nack, smpp_encode_header(nack, 16, SMPP_GENERIC_NACK, 0x03, p->seq));
		return;
	}
	uint8_t out[16]; /* enquire_link_resp, unbind_resp */
	conn_put(c, out, smpp_encode_header(out, sizeof(out), p->id | SMPP_RESP, 0, p->seq));
}

static int run_due(struct sim *s);

/*
 * Handle every whole PDU in c's input; false when the stream was broken
 * (closed). With --resp-chunk N, what is due (the responses, at latency 0)
 * is sent after every N submit_sm, not once the whole read is handled.
 */
static bool conn_pdus(struct sim *s, int i)
{
	struct conn *c = &s->c[i];
	size_t off = 0;
	unsigned since = 0;
	for (;;) {
		struct smpp_pdu p;
		ssize_t k = smpp_decode(c->rbuf + off, c->rlen - off, &p);
		if (k < 0) {
			conn_close(s, i);
			return false;
		}
		if (k == 0)
			break;
		on_pdu(s, i, &p);
		off += (size_t)k;
		if (s->o.resp_chunk && p.id == SMPP_SUBMIT_SM && ++since == s->o.resp_chunk &&
		    off < c->rlen) {
			since = 0;
			run_due(s);
			if (c->fd < 0)
				return false; /* closed while sending */
		}
	}
	memmove(c->rbuf, c->rbuf + off, c->rlen - off);
	c->rlen -= off;
	return true;
}

/* TLS: everything the session can decrypt now (epoll does not see what OpenSSL buffers). */
/* n bytes more in c's buffer: count the read (and whether it carried a submit_sm) and
 * handle the whole PDUs. false when the connection was closed. */
static bool conn_took(struct sim *s, int i, size_t n)
{
	s->c[i].rlen += n;
	uint64_t submits = s->st.submits;
	s->st.reads++;
	if (!conn_pdus(s, i))
		return false;
	s->st.submit_reads += s->st.submits != submits;
	return true;
}

static void conn_read_tls(struct sim *s, int i)
{
	struct conn *c = &s->c[i];
	if (!tls_step(s, i))
		return;
	for (;;) {
		/* conn_pdus leaves less than one PDU: there is always room */
		int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(RBUF - c->rlen));
		if (n <= 0) {
			int e = SSL_get_error(c->ssl, n);
			ERR_clear_error();
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				break;
			conn_close(s, i);
			return;
		}
		if (!conn_took(s, i, (size_t)n))
			return;
	}
	conn_flush(s, i);
}

static void conn_read(struct sim *s, int i)
{
	struct conn *c = &s->c[i];
	if (c->ssl) {
		conn_read_tls(s, i);
		return;
	}
	ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(s, i);
		return;
	}
	if (!conn_took(s, i, (size_t)n))
		return;
	conn_flush(s, i);
}

/* --- timed events --- */

static void send_resp(struct sim *s, struct ev *e, uint64_t now)
{
	struct conn *c = &s->c[e->conn];
	if (c->fd < 0 || c->gen != e->gen)
		return; /* the bind is gone: its responses with it */
	char id[32] = "";
	if (!e->status)
		format_id(e->msg_id, e->variant, false, id, sizeof(id));
	size_t n = smpp_encode_resp(conn_room(c, 96), 96, SMPP_SUBMIT_SM | SMPP_RESP, e->status,
				    e->seq, e->status ? NULL : id);
	c->wlen += n;
	s->st.last_submit_resp_us = now_us();
	s->st.idle_at_last_resp_us = s->st.idle_us;
	if (e->status || s->o.receipt_first)
		return;
	struct ev r = *e;
	r.due_ms = now + s->o.receipt_delay_ms;
	r.stat = pick_stat(s);
	fifo_push(&s->rcpt, &r);
}

/* The next bound receiver of the system_id, in turn; -1 when none. */
static int receiver_for(struct sim *s, const char *system_id)
{
	for (unsigned k = 0; k < MAX_CONNS; k++) {
		int i = (int)((s->rr + k) % MAX_CONNS);
		if (s->c[i].fd >= 0 && s->c[i].bound && s->c[i].can_receive &&
		    !strcmp(s->c[i].system_id, system_id)) {
			s->rr = (unsigned)i + 1;
			return i;
		}
	}
	return -1;
}

static size_t receipt_tlvs(struct sim *s, const struct ev *e, const char *rid, uint8_t *out,
			   size_t cap)
{
	size_t n = smpp_tlv_put(out, cap, SMPP_TLV_RECEIPTED_MESSAGE_ID, rid,
				(uint16_t)(strlen(rid) + 1));
	return n + smpp_tlv_put(out + n, cap - n, SMPP_TLV_MESSAGE_STATE, &e->stat, 1);
}

static void send_receipt(struct sim *s, const struct ev *e)
{
	static const char *const words[] = {"", "ENROUTE", "DELIVRD", "EXPIRED", "DELETED",
					    "UNDELIV"};
	int i = receiver_for(s, e->system_id);
	if (i < 0) {
		s->st.receipts_unsent++;
		return;
	}
	char rid[32], text[200];
	format_id(e->msg_id, e->variant, true, rid, sizeof(rid));
	int how = s->o.receipts ? s->o.receipts : (int)(e->msg_id % 3); /* 0 both, 1 tlv, 2 text */
	snprintf(text, sizeof(text), "id:%s sub:001 dlvrd:%03d submit date:2401011200 done "
		 "date:2401011201 stat:%s err:%s text:", rid, e->stat == SMPP_STATE_DELIVERED,
		 words[e->stat], e->stat == SMPP_STATE_DELIVERED ? "000" : "001");
	uint8_t tlv[128];
	struct smpp_sm sm = {.source_ton = 1, .source_npi = 1, .source_addr = e->dst,
			     .dest_addr = e->src, .esm_class = SMPP_ESM_RECEIPT, .service_type = "",
			     .schedule_delivery_time = "", .validity_period = ""};
	if (how != 1) {
		sm.short_message = (const uint8_t *)text;
		sm.sm_length = (uint8_t)strlen(text);
	}
	if (how != 2) {
		sm.tlvs = tlv;
		sm.tlv_len = receipt_tlvs(s, e, rid, tlv, sizeof(tlv));
	}
	struct conn *c = &s->c[i];
	c->wlen += smpp_encode_sm(conn_room(c, 512), 512, SMPP_DELIVER_SM, (uint32_t)(e->msg_id & 0x7FFFFFFF) | 1, &sm);
	if (e->stat == SMPP_STATE_DELIVERED)
		s->st.receipts_delivrd++;
	else if (e->stat == SMPP_STATE_UNDELIVERABLE)
		s->st.receipts_undeliv++;
	else
		s->st.receipts_expired++;
}

/* Run every due event; flush touched connections. Returns ms until the next one (or -1). */
static int run_due(struct sim *s)
{
	uint64_t now = now_ms();
	struct ev *e;
	while (!s->o.receipt_first && (e = fifo_due(&s->resp, now))) {
		struct ev copy = *e;
		fifo_pop(&s->resp);
		send_resp(s, &copy, now);
	}
	while ((e = fifo_due(&s->rcpt, now))) {
		struct ev copy = *e;
		fifo_pop(&s->rcpt);
		if (copy.stat)
			send_receipt(s, &copy);
		else
			s->st.receipts_none++;
	}
	while (s->o.receipt_first && (e = fifo_due(&s->resp, now))) { /* after the receipts */
		struct ev copy = *e;
		fifo_pop(&s->resp);
		send_resp(s, &copy, now);
	}
	for (int i = 0; i < MAX_CONNS; i++)
		if (s->c[i].fd >= 0 && s->c[i].wlen > s->c[i].woff)
			conn_flush(s, i);
	uint64_t next = UINT64_MAX;
	if (s->resp.n)
		next = s->resp.v[s->resp.head].due_ms;
	if (s->rcpt.n && s->rcpt.v[s->rcpt.head].due_ms < next)
		next = s->rcpt.v[s->rcpt.head].due_ms;
	return next == UINT64_MAX ? 100 : next <= now ? 0 : (int)(next - now < 100 ? next - now : 100);
}

/* --- start-up --- */

static int parse_mix(struct opts *o, const char *arg)
{
	static const char *const names[4] = {"delivrd", "undeliv", "expired", "none"};
	memset(o->mix, 0, sizeof(o->mix));
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", arg);
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		char *eq = strchr(tok, '=');
		int k = 0;
		while (k < 4 && (!eq || strncmp(tok, names[k], (size_t)(eq - tok))))
			k++;
		if (k == 4)
			return -1;
		o->mix[k] = (unsigned)atoi(eq + 1);
	}
	return 0;
}

static int parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{"port", 1, 0, 'p'}, {"port-file", 1, 0, 'P'}, {"password", 1, 0, 'w'},
		{"latency-ms", 1, 0, 'l'}, {"throttle-rate", 1, 0, 't'},
		{"throttle-after", 1, 0, 'T'},
		{"receipt-delay-ms", 1, 0, 'r'}, {"mix", 1, 0, 'm'}, {"id-format", 1, 0, 'i'},
		{"receipts", 1, 0, 'R'}, {"bad-prefix", 1, 0, 'b'}, {"stats", 1, 0, 's'},
		{"receipt-first", 0, 0, 'F'}, {"tls-cert", 1, 0, 'C'}, {"tls-key", 1, 0, 'K'},
		{"resp-chunk", 1, 0, 'c'}, {0}};
	*o = (struct opts){.mix = {90, 5, 3, 2}};
	int ch;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'p': o->port = atoi(optarg); break;
		case 'P': o->port_file = optarg; break;
		case 'w': o->password = optarg; break;
		case 'l': o->latency_ms = (unsigned)atoi(optarg); break;
		case 't': o->throttle_rate = atof(optarg); break;
		case 'T': o->throttle_after = strtoull(optarg, NULL, 10); break;
		case 'r': o->receipt_delay_ms = (unsigned)atoi(optarg); break;
		case 'm': if (parse_mix(o, optarg)) return -1; break;
		case 'i': o->id_format = !strcmp(optarg, "dec") ? 1 : !strcmp(optarg, "hex") ? 2 : 0; break;
		case 'R': o->receipts = !strcmp(optarg, "tlv") ? 1 : !strcmp(optarg, "text") ? 2 : 0; break;
		case 'b': o->bad_prefix = optarg; break;
		case 's': o->stats = optarg; break;
		case 'F': o->receipt_first = true; break;
		case 'C': o->tls_cert = optarg; break;
		case 'K': o->tls_key = optarg; break;
		case 'c': o->resp_chunk = (unsigned)atoi(optarg); break;
		default: return -1;
		}
	}
	return !o->tls_cert == !o->tls_key ? 0 : -1;
}

static int tls_init(struct sim *s)
{
	if (!s->o.tls_cert)
		return 0;
	s->ssl_ctx = SSL_CTX_new(TLS_server_method());
	if (!s->ssl_ctx)
		return -1;
	SSL_CTX_set_min_proto_version(s->ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(s->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(s->ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(s->ssl_ctx, s->o.tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(s->ssl_ctx, s->o.tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(s->ssl_ctx) != 1) {
		char why[200];
		ERR_error_string_n(ERR_get_error(), why, sizeof(why));
		fprintf(stderr, "smsc_sim: %s / %s: %s\n", s->o.tls_cert, s->o.tls_key, why);
		return -1;
	}
	return 0;
}

static int listen_on(struct sim *s)
{
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->o.port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s->lfd, 128) < 0 ||
	    getsockname(s->lfd, (struct sockaddr *)&sa, &len) < 0) {
		perror("smsc_sim: listen");
		return -1;
	}
	if (s->o.port_file) {
		FILE *f = fopen(s->o.port_file, "w");
		if (!f)
			return -1;
		fprintf(f, "%d\n", ntohs(sa.sin_port));
		fclose(f);
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
	return epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev);
}

static void serve(struct sim *s)
{
	struct epoll_event evs[64];
	int wait = 100;
	while (!got_term) {
		uint64_t t0 = s->st.first_submit_us ? now_us() : 0;
		int n = epoll_wait(s->ep, evs, 64, wait);
		if (t0)
			s->st.idle_us += now_us() - t0;
		for (int k = 0; k < n; k++) {
			uint32_t i = evs[k].data.u32;
			if (i == UINT32_MAX)
				accept_all(s);
			else if (s->c[i].fd >= 0 && (evs[k].events & EPOLLOUT))
				conn_flush(s, (int)i);
			if (i != UINT32_MAX && s->c[i].fd >= 0 && (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				conn_read(s, (int)i);
		}
		wait = run_due(s);
		if (got_usr1) {
			got_usr1 = 0;
			write_stats(s);
		}
	}
}

int main(int argc, char **argv)
{
	static struct sim s; /* large; one per process */
	if (parse_opts(&s.o, argc, argv) < 0) {
		fprintf(stderr, "usage: smsc_sim --port N [--port-file F] [--password P] [--latency-ms MS] "
			"[--throttle-rate R] [--throttle-after N] [--receipt-delay-ms MS] "
			"[--mix delivrd=90,undeliv=5,expired=3,none=2] [--id-format mixed|dec|hex] "
			"[--receipts mixed|tlv|text] [--bad-prefix DIGITS] [--receipt-first] "
			"[--stats FILE] [--tls-cert CHAIN.pem --tls-key KEY.pem] [--resp-chunk N]\n");
		return 2;
	}
	for (int i = 0; i < MAX_CONNS; i++)
		s.c[i].fd = -1;
	s.next_id = 1000000;
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	if (s.ep < 0 || tls_init(&s) < 0 || listen_on(&s) < 0)
		return 1;
	serve(&s);
	write_stats(&s);
	return 0;
}
