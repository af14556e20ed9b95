/*
 * bench/smpp_blaster.c: the bare SMPP baseline for bench/harness (issue 9).
 * No engine: it binds to an SMSC (bench/smsc_sim) and submits as fast as
 * the window allows, to show what the SMSC side can take at all.
 *
 *   smpp_blaster --port N [--host 127.0.0.1] [--binds 1] [--count 100000]
 *                [--window 100] [--system-id blaster] [--password P]
 *                [--text "..."] [--wait-receipts-ms 0]
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
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "smpp.h"

#define MAX_BINDS 64
#define RBUF (SMPP_MAX_PDU * 2)

struct bconn {
	int fd;
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

static int flush_out(struct bconn *c)
{
	while (c->woff < c->wlen) {
		ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -1;
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: smpp_blaster --port N [--host 127.0.0.1] [--binds 1] [--count 100000]\n"
			"       [--window 100] [--system-id blaster] [--password P] [--text T]\n"
			"       [--wait-receipts-ms 0]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *sysid = "blaster", *pass = "", *text =
		"Typhoon red warning: stay indoors, keep away from windows.";
	int port = 0, binds = 1, window = 100, wait_ms = 0;
	long count = 100000;
	static const struct option lo[] = {
		{"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"binds", 1, 0, 'b'},
		{"count", 1, 0, 'n'}, {"window", 1, 0, 'w'}, {"system-id", 1, 0, 's'},
		{"password", 1, 0, 'P'}, {"text", 1, 0, 't'}, {"wait-receipts-ms", 1, 0, 'r'},
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
	for (int i = 0; i < binds; i++) {
		struct bconn *c = &cs[i];
		c->fd = socket(AF_INET, SOCK_STREAM, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
			die("connect");
		int one = 1;
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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
			if (pfd[i].revents & POLLOUT) {
				while (c->woff < c->wlen) {
					ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff,
							 MSG_NOSIGNAL | MSG_DONTWAIT);
					if (n < 0) {
						if (errno == EAGAIN || errno == EINTR)
							break;
						die("send");
					}
					c->woff += (size_t)n;
				}
				if (c->woff == c->wlen)
					c->woff = c->wlen = 0;
			}
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			ssize_t n = recv(c->fd, c->rbuf + c->rlen, RBUF - c->rlen, MSG_DONTWAIT);
			if (n == 0) {
				fprintf(stderr, "smpp_blaster: the SMSC closed bind %d\n", i);
				return 1;
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				die("recv");
			}
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
