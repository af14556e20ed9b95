/*
 * engine/conn.c: client connections: sniffing, TLS over memory BIOs,
 * the recv/send ops, backpressure and two-phase close (see conn.h for the
 * state table and the reference rules).
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "http.h"
#include "log.h"
#include "server.h"
#include "tls.h"

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void arm_recv(struct conn *c);
static void on_recv(struct op *op, int res, uint32_t flags);
static void on_send(struct op *op, int res, uint32_t flags);

void conn_ref(struct conn *c)
{
	c->refs++;
}

static void conn_free(struct conn *c)
{
	if (c->proto && c->proto->release)
		c->proto->release(c);
	loop_timer_cancel(&c->w->loop, &c->idle);
	if (c->ssl)
		SSL_free(c->ssl);
	close(c->fd);
	buf_release(&c->out);
	buf_release(&c->sending);
	free(c->rbuf);
	worker_conn_gone(c->w, c);
	free(c);
}

void conn_unref(struct conn *c)
{
	if (--c->refs == 0)
		conn_free(c);
}

bool conn_is_closing(const struct conn *c)
{
	return c->state == CONN_CLOSING;
}

size_t conn_output_pending(const struct conn *c)
{
	return c->out.len + (c->sending.len - c->sending_off);
}

const char *conn_alpn(const struct conn *c)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;
	if (c->ssl)
		SSL_get0_alpn_selected(c->ssl, &p, &n);
	if (!p)
		return "";
	if (n == 2 && !memcmp(p, "h2", 2))
		return "h2";
	if (n == 8 && !memcmp(p, "http/1.1", 8))
		return "http/1.1";
	return "";
}

static void on_idle(struct timer *t)
{
	struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, idle));
	log_debug("msg=\"connection idle or lingering too long\" conn=%lu", (unsigned long)c->id);
	conn_close(c);
}

void conn_touch(struct conn *c)
{
	if (c->state == CONN_OPEN)
		loop_timer_set(&c->w->loop, &c->idle, c->w->e->cfg.idle_timeout_ms, on_idle);
}

struct conn *conn_new(struct worker *w, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		goto out_close_fd;
	c->rbuf = malloc(CONN_RECV_BUF);
	if (!c->rbuf)
		goto out_free_conn;
	c->w = w;
	c->fd = fd;
	int one = 1; /* answers go out when written, not after the peer's delayed ACK */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->id = ++w->next_conn_id;
	c->state = CONN_SNIFF;
	c->refs = 1; /* the "open" reference, dropped by conn_close */
	c->recv_op.cb = on_recv;
	c->send_op.cb = on_send;
	loop_timer_set(&w->loop, &c->idle, w->e->cfg.idle_timeout_ms, on_idle);
	arm_recv(c);
	return c;

out_free_conn:
	free(c);
out_close_fd:
	close(fd);
	return NULL;
}

static void arm_recv(struct conn *c)
{
	if (c->recv_armed || c->state == CONN_CLOSING)
		return;
	if (conn_output_pending(c) > CONN_OUTPUT_HIGH) {
		c->recv_paused = true; /* resumed by on_send when drained */
		return;
	}
	c->recv_paused = false;
	struct io_uring_sqe *sqe = loop_sqe(&c->w->loop, &c->recv_op);
	io_uring_prep_recv(sqe, c->fd, c->rbuf, CONN_RECV_BUF, 0);
	c->recv_armed = true;
	conn_ref(c);
}

void conn_flush(struct conn *c)
{
	if (c->send_armed || c->out.len == 0)
		return;
	buf_swap(&c->out, &c->sending);
	c->out.len = 0;
	c->sending_off = 0;
	struct io_uring_sqe *sqe = loop_sqe(&c->w->loop, &c->send_op);
	io_uring_prep_send(sqe, c->fd, c->sending.data, c->sending.len, MSG_NOSIGNAL);
	c->send_armed = true;
	conn_ref(c);
}

/* Move ciphertext produced by OpenSSL into the output buffer. */
static int drain_wbio(struct conn *c)
{
	size_t pending;
	while ((pending = BIO_ctrl_pending(c->wbio)) > 0) {
		int ret = buf_reserve(&c->out, pending, CONN_MAX_OUTPUT);
		if (ret)
			return ret;
		int n = BIO_read(c->wbio, c->out.data + c->out.len, (int)pending);
		if (n <= 0)
			break;
		c->out.len += (size_t)n;
	}
	return 0;
}

int conn_write(struct conn *c, const void *data, size_t len)
{
	if (c->state == CONN_CLOSING)
		return -EPIPE;
	if (!c->ssl)
		return buf_append(&c->out, data, len, CONN_MAX_OUTPUT);
	if (len == 0)
		return 0;
	int n = SSL_write(c->ssl, data, (int)len); /* memory BIO: all or error */
	if (n <= 0)
		return -EIO;
	return drain_wbio(c);
}

void conn_close(struct conn *c)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	if (c->proto && c->proto->on_close)
		c->proto->on_close(c);
	loop_timer_cancel(&c->w->loop, &c->idle);
	shutdown(c->fd, SHUT_RDWR); /* completes the armed recv/send */
	if (c->recv_armed) {
		struct io_uring_sqe *sqe = loop_sqe(&c->w->loop, NULL);
		io_uring_prep_cancel(sqe, &c->recv_op, 0);
	}
	conn_unref(c); /* the "open" reference */
}

void conn_close_gracefully(struct conn *c)
{
	if (c->state == CONN_CLOSING || c->state == CONN_LINGER)
		return;
	c->state = CONN_LINGER;
	if (c->proto && c->proto->on_close)
		c->proto->on_close(c);
	loop_timer_set(&c->w->loop, &c->idle, CONN_LINGER_MS, on_idle);
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		drain_wbio(c);
	}
	conn_flush(c);
	if (!c->send_armed)
		shutdown(c->fd, SHUT_WR); /* else on_send does it once drained */
	arm_recv(c);
}

static void on_send(struct op *op, int res, uint32_t flags)
{
	struct conn *c = (struct conn *)((char *)op - offsetof(struct conn, send_op));
	c->send_armed = false;
	if (res < 0 || c->state == CONN_CLOSING) {
		if (res < 0 && res != -ECANCELED && res != -EPIPE && res != -ECONNRESET)
			log_debug("msg=\"send failed\" conn=%lu err=%d", (unsigned long)c->id, res);
		conn_close(c);
		conn_unref(c);
		return;
	}
	c->sending_off += (size_t)res;
	if (c->sending_off < c->sending.len) { /* short send: the rest, same buffer */
		struct io_uring_sqe *sqe = loop_sqe(&c->w->loop, &c->send_op);
		io_uring_prep_send(sqe, c->fd, c->sending.data + c->sending_off,
				   c->sending.len - c->sending_off, MSG_NOSIGNAL);
		c->send_armed = true;
		return; /* keeps the reference */
	}
	c->sending.len = 0;
	c->sending_off = 0;
	if (c->state == CONN_OPEN && c->proto && c->proto->on_drain)
		c->proto->on_drain(c);
	conn_flush(c);
	if (c->state == CONN_LINGER && !c->send_armed)
		shutdown(c->fd, SHUT_WR);
	if (c->recv_paused)
		arm_recv(c);
	conn_unref(c);
}

static int start_proto(struct conn *c, const struct conn_proto *p)
{
	c->proto = p;
	c->state = CONN_OPEN;
	return p->start(c);
}

/* Plaintext arrived before a protocol was chosen: pick one by the preface. */
static int sniff_plaintext(struct conn *c, const uint8_t *d, size_t n)
{
	size_t cmp = n < sizeof(h2_preface) - 1 ? n : sizeof(h2_preface) - 1;
	bool h2 = !strcmp(conn_alpn(c), "h2") || (cmp >= 4 && !memcmp(d, h2_preface, 4));
	if (start_proto(c, h2 ? &http2_proto : &http1_proto) < 0)
		return -1;
	return c->proto->on_data(c, d, n);
}

static int deliver_plaintext(struct conn *c, const uint8_t *d, size_t n)
{
	if (n == 0)
		return 0;
	if (c->state == CONN_LINGER)
		return 0; /* discarding input until EOF */
	if (!c->proto)
		return sniff_plaintext(c, d, n);
	return c->proto->on_data(c, d, n);
}

static int tls_read_all(struct conn *c)
{
	uint8_t plain[16384];
	for (;;) {
		int n = SSL_read(c->ssl, plain, sizeof(plain));
		if (n > 0) {
			if (deliver_plaintext(c, plain, (size_t)n) < 0)
				return -1;
			if (c->state == CONN_CLOSING)
				return -1;
			continue;
		}
		int e = SSL_get_error(c->ssl, n);
		if (e == SSL_ERROR_WANT_READ)
			return 0;
		if (e == SSL_ERROR_ZERO_RETURN)
			return -1; /* close_notify */
		return -1;
	}
}

static int on_tls_bytes(struct conn *c, const uint8_t *d, size_t n)
{
	if (BIO_write(c->rbio, d, (int)n) != (int)n)
		return -1;
	if (c->state == CONN_TLS_HANDSHAKE) {
		int r = SSL_do_handshake(c->ssl);
		if (drain_wbio(c) < 0)
			return -1;
		if (r != 1) {
			int e = SSL_get_error(c->ssl, r);
			if (e == SSL_ERROR_WANT_READ)
				return 0;
			log_debug("msg=\"TLS handshake failed\" conn=%lu", (unsigned long)c->id);
			ERR_clear_error();
			return -1;
		}
		c->state = CONN_SNIFF; /* protocol chosen by ALPN or the first bytes */
	}
	int ret = tls_read_all(c);
	if (drain_wbio(c) < 0)
		return -1;
	return ret;
}

static int on_bytes(struct conn *c, const uint8_t *d, size_t n)
{
	struct engine *e = c->w->e;
	if (c->state == CONN_SNIFF && !c->ssl && !c->proto) {
		if (d[0] == 0x16 && e->ssl_ctx) {
			c->ssl = tls_new_ssl(e->ssl_ctx, &c->rbio, &c->wbio);
			if (!c->ssl)
				return -1;
			c->state = CONN_TLS_HANDSHAKE;
		} else if (e->ssl_ctx && !e->cfg.plaintext) {
			return -1; /* TLS only */
		}
	}
	if (c->ssl)
		return on_tls_bytes(c, d, n);
	return deliver_plaintext(c, d, n);
}

static void on_recv(struct op *op, int res, uint32_t flags)
{
	struct conn *c = (struct conn *)((char *)op - offsetof(struct conn, recv_op));
	c->recv_armed = false;
	if (c->state == CONN_CLOSING) {
		conn_unref(c);
		return;
	}
	if (res <= 0) { /* EOF, reset, or cancelled */
		conn_close(c);
		conn_unref(c);
		return;
	}
	if (c->state != CONN_LINGER)
		loop_timer_set(&c->w->loop, &c->idle, c->w->e->cfg.idle_timeout_ms, on_idle);
	if (on_bytes(c, c->rbuf, (size_t)res) < 0) {
		conn_flush(c); /* an error answer may be queued: try to send it */
		if (c->state != CONN_LINGER)
			conn_close_gracefully(c);
	} else {
		conn_flush(c);
		arm_recv(c);
	}
	conn_unref(c);
}
