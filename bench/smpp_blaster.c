/*
 * bench/smpp_blaster.c: the bare SMPP baseline for bench/harness (issue 9).
 * No engine: it binds to an SMSC (bench/smsc_sim) and submits as fast as
 * the window allows, to show what the SMSC side can take at all.
 *
 *   smpp_blaster --port N [--host 127.0.0.1] [--binds 1] [--count 100000]
 *                [--window 100] [--system-id blaster] [--password P]
 *                [--text "..."] [--wait-receipts-ms 0] [--tls-ca CA.pem]
 *
 * Each of --binds connections sends bind_transceiver, then keeps --window
 * submit_sm in flight (destinations +8613800000000 + i, GSM text, one part,
 * registered_delivery 1) until --count submits were answered in all.
 * deliver_sm receipts are answered with deliver_sm_resp and counted; with
 * --wait-receipts-ms it waits that long (at most) after the last answer for
 * the receipts still due. Prints one JSON line:
 *   {"binds","window","submitted","ok","throttled","other","seconds",
 *    "submits_per_s","receipts","receipt_seconds"}
 * seconds = first submit to last submit_sm_resp. One thread, poll(2).
 * With --tls-ca every bind is SMPP over TLS (OpenSSL on the socket), the
 * SMSC's certificate verified against CA.pem for the --host address: the
 * bare baseline of the TLS row in bench/smpp_bench.py.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "smpp.h"

#define MAX_BINDS 64
#define RBUF (SMPP_MAX_PDU * 2)

struct bconn {
	int fd;
	SSL *ssl; /* --tls-ca only */
	int bound;
	uint32_t seq;
	unsigned inflight;
	uint8_t rbuf[RBUF];
	size_t rlen;
	uint8_t *wbuf;
	size_t wlen, wcap, woff;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "smpp_blaster: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void out(struct bconn *c, const uint8_t *p, size_t n)
{
	if (c->wlen + n > c->wcap) {
		size_t cap = c->wcap ? c->wcap * 2 : 65536;
		while (cap < c->wlen + n)
			cap *= 2;
		c->wbuf = realloc(c->wbuf, cap);
		if (!c->wbuf)
			die("realloc");
		c->wcap = cap;
	}
	memcpy(c->wbuf + c->wlen, p, n);
	c->wlen += n;
}

/* Send from c's output: bytes sent, 0 when it would block, -1 on error. */
static ssize_t bsend(struct bconn *c)
{
	if (c->ssl) {
		int n = SSL_write(c->ssl, c->wbuf + c->woff, (int)(c->wlen - c->woff));
		if (n > 0)
			return n;
		int e = SSL_get_error(c->ssl, n);
		return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
	}
	ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	return n;
}

/* Read into c's input: bytes read, 0 at EOF, -1 on error, -2 when nothing is there yet. */
static ssize_t brecv(struct bconn *c)
{
	if (c->ssl) {
		int n = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(RBUF - c->rlen));
		if (n > 0)
			return n;
		int e = SSL_get_error(c->ssl, n);
		return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? -2
		       : e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
	}
	ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? -2 : -1;
	return n;
}

static int flush_out(struct bconn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = bsend(c);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	return 0;
}

/* TLS on a connected blocking socket, verified for the host address; then non-blocking. */
static void tls_connect(struct bconn *c, SSL_CTX *ctx, const char *host)
{
	c->ssl = SSL_new(ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1)
		die("SSL_new");
	if (SSL_connect(c->ssl) != 1) {
		char why[200];
		ERR_error_string_n(ERR_get_error(), why, sizeof(why));
		fprintf(stderr, "smpp_blaster: TLS handshake: %s (verify: %s)\n", why,
			X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
		exit(1);
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

static SSL_CTX *tls_ctx(const char *ca)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		fprintf(stderr, "smpp_blaster: cannot load %s\n", ca);
		exit(1);
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

static void usage(void)
{
	fprintf(stderr, "usage: smpp_blaster --port N [--host 127.0.0.1] [--binds 1] [--count 100000]\n"
			"       [--window 100] [--system-id blaster] [--password P] [--text T]\n"
			"       [--wait-receipts-ms 0] [--tls-ca CA.pem]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *sysid = "blaster", *pass = "", *tls_ca = NULL, *text =
		"Typhoon red warning: stay indoors, keep away from windows.";
	int port = 0, binds = 1, window = 100, wait_ms = 0;
	long count = 100000;
	static const struct option lo[] = {
		{"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"binds", 1, 0, 'b'},
		{"count", 1, 0, 'n'}, {"window", 1, 0, 'w'}, {"system-id", 1, 0, 's'},
		{"password", 1, 0, 'P'}, {"text", 1, 0, 't'}, {"wait-receipts-ms", 1, 0, 'r'},
		{"tls-ca", 1, 0, 'T'},
		{"help", 0, 0, '?'}, {0, 0, 0, 0}};
	int o;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'h': host = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'b': binds = atoi(optarg); break;
		case 'n': count = atol(optarg); break;
		case 'w': window = atoi(optarg); break;
		case 's': sysid = optarg; break;
		case 'P': pass = optarg; break;
		case 't': text = optarg; break;
		case 'r': wait_ms = atoi(optarg); break;
		case 'T': tls_ca = optarg; break;
		default: usage();
		}
	}
	if (port <= 0 || binds < 1 || binds > MAX_BINDS || window < 1 || count < 1 ||
	    strlen(text) > 160)
		usage();

	static struct bconn cs[MAX_BINDS];
	struct pollfd pfd[MAX_BINDS];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "smpp_blaster: --host must be an IPv4 address\n");
		return 2;
	}
	uint8_t pdu[1024];
	SSL_CTX *ctx = tls_ca ? tls_ctx(tls_ca) : NULL;
	for (int i = 0; i < binds; i++) {
		struct bconn *c = &cs[i];
		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("connect");
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (ctx)
			tls_connect(c, ctx, host);
		struct smpp_bind b = {.system_id = sysid, .password = pass, .system_type = "",
				      .interface_version = SMPP_INTERFACE_VERSION, .address_range = ""};
		size_t n = smpp_encode_bind(pdu, sizeof(pdu), SMPP_BIND_TRANSCEIVER, ++c->seq, &b);
		out(c, pdu, n);
		if (flush_out(c) < 0)
			die("send bind");
	}
	for (int i = 0; i < binds; i++)
		pfd[i].fd = cs[i].fd; /* sockets stay blocking: every call passes MSG_DONTWAIT */

	long next_dst = 0, answered = 0, ok = 0, thr = 0, other = 0, receipts = 0;
	double t_first = 0, t_last = 0, t_last_receipt = 0, t_end_wait = 0;
	char dst[32];
	for (;;) {
		/* fill windows */
		for (int i = 0; i < binds; i++) {
			struct bconn *c = &cs[i];
			while (c->bound && c->inflight < (unsigned)window && next_dst < count) {
				snprintf(dst, sizeof(dst), "86138%08ld", next_dst++);
				struct smpp_sm sm = {.service_type = "", .source_ton = 5,
						     .source_addr = "TOCSIN", .dest_ton = 1,
						     .dest_npi = 1, .dest_addr = dst,
						     .schedule_delivery_time = "",
						     .validity_period = "", .registered_delivery = 1,
						     .short_message = (const uint8_t *)text,
						     .sm_length = (uint8_t)strlen(text)};
				size_t n = smpp_encode_sm(pdu, sizeof(pdu), SMPP_SUBMIT_SM, ++c->seq, &sm);
				out(c, pdu, n);
				c->inflight++;
				if (!t_first)
					t_first = now_s();
			}
			pfd[i].events = POLLIN | (c->wlen > c->woff ? POLLOUT : 0);
		}
		if (answered >= count) {
			if (!t_end_wait)
				t_end_wait = now_s() + wait_ms / 1000.0;
			if (now_s() >= t_end_wait)
				break;
		}
		int pr = poll(pfd, (nfds_t)binds, 100);
		if (pr < 0 && errno != EINTR)
			die("poll");
		for (int i = 0; i < binds; i++) {
			struct bconn *c = &cs[i];
			if ((pfd[i].revents & POLLOUT) && flush_out(c) < 0)
				die("send");
			/* TLS: what OpenSSL holds already decrypted is invisible to poll */
			bool more = pfd[i].revents & (POLLIN | POLLHUP | POLLERR);
			while (more) {
				ssize_t n = brecv(c);
				if (n == 0) {
					fprintf(stderr, "smpp_blaster: the SMSC closed bind %d\n", i);
					return 1;
				}
				if (n == -2)
					break;
				if (n < 0)
					die("recv");
				c->rlen += (size_t)n;
				size_t off = 0;
				for (;;) {
					struct smpp_pdu p;
					ssize_t k = smpp_decode(c->rbuf + off, c->rlen - off, &p);
					if (k == 0)
						break;
					if (k < 0) {
						fprintf(stderr, "smpp_blaster: bad PDU from the SMSC\n");
						return 1;
					}
					off += (size_t)k;
					if (p.id == (SMPP_BIND_TRANSCEIVER | SMPP_RESP)) {
						if (p.status) {
							fprintf(stderr, "smpp_blaster: bind refused: 0x%x\n", p.status);
							return 1;
						}
						c->bound = 1;
					} else if (p.id == (SMPP_SUBMIT_SM | SMPP_RESP)) {
						c->inflight--;
						answered++;
						if (p.status == 0)
							ok++;
						else if (p.status == 0x58 || p.status == 0x14)
							thr++;
						else
							other++;
						t_last = now_s();
					} else if (p.id == SMPP_DELIVER_SM) {
						size_t m = smpp_encode_resp(pdu, sizeof(pdu), SMPP_DELIVER_SM | SMPP_RESP,
									    0, p.seq, NULL);
						out(c, pdu, m);
						receipts++;
						t_last_receipt = now_s();
					} else if (p.id == SMPP_ENQUIRE_LINK) {
						size_t m = smpp_encode_header(pdu, sizeof(pdu),
									      SMPP_ENQUIRE_LINK | SMPP_RESP, 0, p.seq);
						out(c, pdu, m);
					}
				}
				memmove(c->rbuf, c->rbuf + off, c->rlen - off);
				c->rlen -= off;
				more = c->ssl && SSL_pending(c->ssl) > 0;
			}
		}
		if (wait_ms && answered >= count && receipts >= ok)
			break;
	}
	double secs = t_last > t_first ? t_last - t_first : 1e-9;
	printf("{\"binds\":%d,\"window\":%d,\"submitted\":%ld,\"ok\":%ld,\"throttled\":%ld,"
	       "\"other\":%ld,\"seconds\":%.4f,\"submits_per_s\":%.1f,\"receipts\":%ld,"
	       "\"receipt_seconds\":%.4f}\n",
	       binds, window, answered, ok, thr, other, secs, (double)answered / secs, receipts,
	       t_last_receipt > t_first ? t_last_receipt - t_first : 0.0);
	for (int i = 0; i < binds; i++)
		close(cs[i].fd);
	return 0;
}
