/*
 * bench/fanout_blaster.c: the baseline for bench/terminal_fanout.py and
 * bench/terminal_scale.sh: a bare fan-out with no protocol, no protobuf,
 * no authentication: one send of one --frame-byte message per connection,
 * in a loop, and a count of the one-byte answers.
 *
 *   fanout_blaster [--conns 100000] [--frame 200] [--src-ips 8] [--port-file FILE]
 *                  [--rings R] [--plain]
 *
 * How it holds 100,000 connections: io_uring direct descriptors over
 * several rings, in one process. The hard RLIMIT_NOFILE here is 20,000 per
 * process and cannot be raised (no CAP_SYS_RESOURCE), but a ring's sparse
 * file table is not the process's descriptor table: each table may hold up
 * to RLIMIT_NOFILE sockets and a process may have several rings (see
 * bench/fd_probe.c). So the connections are accepted with accept_direct
 * into the tables of R rings (default: as few as hold --conns, at most
 * RLIMIT_NOFILE each, split evenly), the frame is sent with one
 * IORING_OP_SEND per connection (IOSQE_FIXED_FILE, submitted 4,096 at a
 * time, ring after ring), and each answer is one IORING_OP_RECV armed on
 * every connection before the clock starts (they all land in one scratch
 * buffer: only their count matters). One process and one thread, like the
 * terminal gateway's loop, and the same kernel path the gateway uses above
 * the descriptor limit (several processes would add cores the gateway does
 * not have). Its rings are waited on through one epoll of the ring fds.
 * --plain is the former loop instead (plain descriptors, epoll, send()),
 * limited to RLIMIT_NOFILE connections: a cross-check of the two at 10,000.
 *
 * Without --port-file the process forks its own receivers: ceil(N / (the
 * hard limit - 512)) children, child i connecting from --src-ips loopback
 * addresses of its own (127.0.0.(1 + i * src-ips)..) and answering each
 * frame with one byte; output has the RSS per connection of the sender.
 *
 * With --port-file the receivers are someone else's (bench/terminal_swarm
 * --mode raw, several processes above the descriptor limit, so that every
 * system under test is measured by the same receiver): no fork; the
 * listening port goes to FILE; once --conns connections are in, it waits
 * 1 s, notes t0 (CLOCK_MONOTONIC, µs, as "t0_us"), sends the frame to all,
 * and reports when the last answer came ("last_answer_us").
 *
 * Output: one JSON line. Exit 0 when every connection answered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_RINGS 64
#define SQ_DEPTH 4096
/* user_data: what the op is, and the slot of its connection in its ring's table */
#define TAG_ACCEPT (0ull << 32)
#define TAG_SEND (1ull << 32)
#define TAG_RECV (2ull << 32)

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return rss * sysconf(_SC_PAGESIZE);
}

/* A child: n connecting sockets from src_ips addresses at src_base, one byte per frame. */
static void clients(int port, int n, int frame, unsigned src_base, int src_ips)
{
	int ep = epoll_create1(0), one = 1;
	char *buf = malloc((size_t)frame);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in src = {
			.sin_family = AF_INET,
			.sin_addr.s_addr = htonl(0x7f000000u + src_base + (uint32_t)(i % src_ips))};
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		bind(fd, (struct sockaddr *)&src, sizeof(src));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			perror("fanout_blaster: connect");
			_exit(1);
		}
		struct epoll_event e = {.events = EPOLLIN, .data.fd = fd};
		epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
	}
	struct epoll_event evs[1024];
	for (;;) {
		int k = epoll_wait(ep, evs, 1024, -1);
		for (int i = 0; i < k; i++) {
			ssize_t r = recv(evs[i].data.fd, buf, (size_t)frame, 0);
			if (r <= 0)
				_exit(0);
			if (send(evs[i].data.fd, "k", 1, MSG_NOSIGNAL) != 1)
				_exit(1);
		}
	}
}

struct result {
	int answers;
	long long t0_us, last_us;
	double rss_per_conn;
};

static void report(const struct result *r, int n, int frame, const char *io, int rings)
{
	printf("{\"conns\":%d,\"frame\":%d,\"io\":\"%s\",\"rings\":%d,\"rss_per_conn\":%.0f,"
	       "\"fanout_ms\":%.1f,\"answers\":%d,\"t0_us\":%lld,\"last_answer_us\":%lld}\n",
	       n, frame, io, rings, r->rss_per_conn, (double)(r->last_us - r->t0_us) / 1000,
	       r->answers, r->t0_us, r->last_us);
	fflush(stdout);
}

/* --- --plain: descriptors in the process's table, epoll, send() ------------------- */

static int serve_plain(int lfd, int n, int frame, bool external, struct result *res)
{
	int *fds = calloc((size_t)n, sizeof(int)), ep = epoll_create1(0);
	char *msg = calloc(1, (size_t)frame), b[64];
	long rss0 = rss_bytes();
	for (int i = 0; i < n; i++) {
		fds[i] = accept(lfd, NULL, NULL);
		if (fds[i] < 0) {
			perror("fanout_blaster: accept");
			return -1;
		}
		struct epoll_event e = {.events = EPOLLIN, .data.fd = fds[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
	}
	res->rss_per_conn = (double)(rss_bytes() - rss0) / n;
	if (external)
		usleep(1000000); /* let the receivers' last handshakes settle */
	res->t0_us = now_us();
	for (int i = 0; i < n; i++)
		if (send(fds[i], msg, (size_t)frame, MSG_NOSIGNAL) != frame) {
			perror("fanout_blaster: send");
			return -1;
		}
	struct epoll_event evs[1024];
	while (res->answers < n) {
		int k = epoll_wait(ep, evs, 1024, 10000);
		if (k <= 0)
			break;
		for (int i = 0; i < k; i++)
			res->answers += recv(evs[i].data.fd, b, sizeof(b), 0) > 0;
	}
	res->last_us = now_us();
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(ep);
	free(fds);
	free(msg);
	return 0;
}

/* --- io_uring direct descriptors over several rings ------------------------------- */

struct rings {
	struct io_uring r[MAX_RINGS];
	int count[MAX_RINGS]; /* connections in ring i's table */
	int nr, ep;
};

/* An SQE of ring r, submitting what is queued when the SQ is full. */
static struct io_uring_sqe *sqe_of(struct io_uring *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(r);
	if (!sqe) {
		io_uring_submit(r);
		sqe = io_uring_get_sqe(r);
	}
	return sqe;
}

/* Accept count[i] connections into each ring's table, slots 0..count[i]-1. */
static int accept_all(struct rings *g, int lfd)
{
	for (int i = 0; i < g->nr; i++) {
		struct io_uring *r = &g->r[i];
		int posted = 0, done = 0;
		while (done < g->count[i]) {
			while (posted < g->count[i] && posted - done < 512) {
				struct io_uring_sqe *sqe = sqe_of(r);
				io_uring_prep_accept_direct(sqe, lfd, NULL, NULL, 0, (unsigned)posted);
				sqe->user_data = TAG_ACCEPT | (unsigned)posted;
				posted++;
			}
			struct io_uring_cqe *cqe;
			int ret = io_uring_submit_and_wait(r, 1);
			if (ret < 0) {
				fprintf(stderr, "fanout_blaster: io_uring_submit: %s\n", strerror(-ret));
				return -1;
			}
			unsigned head, seen = 0;
			io_uring_for_each_cqe(r, head, cqe)
			{
				seen++;
				if (cqe->res < 0) {
					fprintf(stderr, "fanout_blaster: accept_direct into ring %d: %s\n", i,
						strerror(-cqe->res));
					return -1;
				}
				done++;
			}
			io_uring_cq_advance(r, seen);
		}
	}
	return 0;
}

/*
 * Reap every ring's completions: answers and sends; -1 on a failed send. A
 * short send counts as failed rather than being finished: the frame fits a
 * fresh socket's send buffer many times over, so one would mean the
 * measurement is not the one intended.
 */
static int reap(struct rings *g, int frame, struct result *res, int *sent)
{
	struct io_uring_cqe *cqes[256];
	for (int i = 0; i < g->nr; i++) {
		unsigned k;
		while ((k = io_uring_peek_batch_cqe(&g->r[i], cqes, 256)) > 0) {
			for (unsigned j = 0; j < k; j++) {
				const struct io_uring_cqe *c = cqes[j];
				if ((c->user_data & ~0xffffffffull) == TAG_RECV) {
					res->answers += c->res > 0;
				} else if (c->res != frame) {
					fprintf(stderr, "fanout_blaster: send on ring %d slot %u: %s\n", i,
						(unsigned)c->user_data,
						c->res < 0 ? strerror(-c->res) : "short write");
					return -1;
				} else {
					(*sent)++;
				}
			}
			io_uring_cq_advance(&g->r[i], k);
		}
	}
	return 0;
}

static int serve_uring(int lfd, int n, int frame, int nr, bool external, struct result *res)
{
	struct rings *g = calloc(1, sizeof(*g));
	static char scratch[64]; /* every answer lands here: only their count is kept */
	char *msg = calloc(1, (size_t)frame);
	int sent = 0;
	if (!g || !msg)
		return -1;
	g->nr = nr;
	g->ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < nr; i++) {
		g->count[i] = n / nr + (i < n % nr);
		struct io_uring_params p = {.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP,
					    .cq_entries = 2 * (unsigned)g->count[i] + SQ_DEPTH};
		int ret = io_uring_queue_init_params(SQ_DEPTH, &g->r[i], &p);
		if (ret == 0)
			ret = io_uring_register_files_sparse(&g->r[i], (unsigned)g->count[i]);
		if (ret < 0) {
			fprintf(stderr, "fanout_blaster: ring %d with a table of %d: %s\n", i, g->count[i],
				strerror(-ret));
			return -1;
		}
		struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		epoll_ctl(g->ep, EPOLL_CTL_ADD, g->r[i].ring_fd, &e);
	}
	long rss0 = rss_bytes();
	if (accept_all(g, lfd) < 0)
		return -1;
	res->rss_per_conn = (double)(rss_bytes() - rss0) / n;
	/* every answer's recv armed before the clock starts, as epoll_ctl is in --plain */
	for (int i = 0; i < nr; i++) {
		for (int k = 0; k < g->count[i]; k++) {
			struct io_uring_sqe *sqe = sqe_of(&g->r[i]);
			io_uring_prep_recv(sqe, k, scratch, sizeof(scratch), 0);
			sqe->flags |= IOSQE_FIXED_FILE;
			sqe->user_data = TAG_RECV | (unsigned)k;
		}
		io_uring_submit(&g->r[i]);
	}
	if (external)
		usleep(1000000); /* let the receivers' last handshakes settle */
	res->t0_us = now_us();
	for (int i = 0; i < nr; i++) {
		for (int k = 0; k < g->count[i]; k++) {
			struct io_uring_sqe *sqe = sqe_of(&g->r[i]);
			io_uring_prep_send(sqe, k, msg, (size_t)frame, MSG_NOSIGNAL);
			sqe->flags |= IOSQE_FIXED_FILE;
			sqe->user_data = TAG_SEND | (unsigned)k;
		}
		io_uring_submit(&g->r[i]);
	}
	long long deadline = now_us() + 10000000;
	while (res->answers < n && now_us() < deadline) {
		if (reap(g, frame, res, &sent) < 0)
			return -1;
		if (res->answers >= n)
			break;
		struct epoll_event evs[MAX_RINGS];
		int k = epoll_wait(g->ep, evs, MAX_RINGS, 100);
		if (k < 0 && errno != EINTR) {
			perror("fanout_blaster: epoll_wait");
			return -1;
		}
	}
	res->last_us = now_us();
	if (reap(g, frame, res, &sent) < 0)
		return -1;
	if (sent < n)
		fprintf(stderr, "fanout_blaster: %d of %d sends completed\n", sent, n);
	for (int i = 0; i < nr; i++)
		io_uring_queue_exit(&g->r[i]); /* closes the table's sockets */
	close(g->ep);
	free(g);
	free(msg);
	return 0;
}

int main(int argc, char **argv)
{
	int n = 100000, frame = 200, src_ips = 8, nr = 0, o;
	bool plain = false;
	const char *port_file = NULL;
	static const struct option opts[] = {
		{"conns", 1, 0, 'n'},     {"frame", 1, 0, 'f'}, {"src-ips", 1, 0, 'i'},
		{"port-file", 1, 0, 'p'}, {"rings", 1, 0, 'r'}, {"plain", 0, 0, 'P'},
		{0, 0, 0, 0}};
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'n': n = atoi(optarg); break;
		case 'f': frame = atoi(optarg); break;
		case 'i': src_ips = atoi(optarg); break;
		case 'p': port_file = optarg; break;
		case 'r': nr = atoi(optarg); break;
		case 'P': plain = true; break;
		default:
			fprintf(stderr, "usage: fanout_blaster [--conns N] [--frame B] [--src-ips K] "
					"[--port-file FILE] [--rings R] [--plain]\n");
			return 2;
		}
	}
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	long cap = rl.rlim_cur == RLIM_INFINITY ? 1 << 20 : (long)rl.rlim_cur;
	if (n < 1 || frame < 1 || src_ips < 1 || nr < 0 || nr > MAX_RINGS) {
		fprintf(stderr, "fanout_blaster: --conns, --frame, --src-ips >= 1; --rings 1..%d\n",
			MAX_RINGS);
		return 2;
	}
	if (plain && n + 512 > cap) {
		fprintf(stderr, "fanout_blaster: --plain holds at most %ld connections (RLIMIT_NOFILE "
				"%ld, hard); without --plain they go to io_uring tables\n", cap - 512, cap);
		return 2;
	}
	if (!nr)
		nr = (int)((n + cap - 1) / cap);
	if (!plain && ((long)n + nr - 1) / nr > cap) {
		fprintf(stderr, "fanout_blaster: %d rings hold at most %ld connections each (RLIMIT_NOFILE)\n",
			nr, cap);
		return 2;
	}
	if (nr > MAX_RINGS) {
		fprintf(stderr, "fanout_blaster: more than %d rings needed\n", MAX_RINGS);
		return 2;
	}
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 65535) < 0) {
		perror("fanout_blaster: listen");
		return 1;
	}
	getsockname(lfd, (struct sockaddr *)&sa, &len);
	pid_t kids[MAX_RINGS * 2];
	int nkids = 0;
	if (port_file) {
		FILE *f = fopen(port_file, "w");
		if (!f || fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0) {
			perror(port_file);
			return 1;
		}
	} else { /* own receivers: as many processes as the descriptor limit asks */
		long per = cap - 512;
		nkids = (int)((n + per - 1) / per);
		if (nkids > MAX_RINGS * 2 || (unsigned long)nkids * (unsigned)src_ips > 0xfffffe) {
			fprintf(stderr, "fanout_blaster: too many receiver processes\n");
			return 2;
		}
		for (int i = 0; i < nkids; i++) {
			int mine = n / nkids + (i < n % nkids);
			kids[i] = fork();
			if (kids[i] == 0) {
				close(lfd);
				clients(ntohs(sa.sin_port), mine, frame, 1 + (unsigned)(i * src_ips), src_ips);
				_exit(0);
			}
		}
	}
	struct result res = {0};
	int ret = plain ? serve_plain(lfd, n, frame, port_file != NULL, &res)
			: serve_uring(lfd, n, frame, nr, port_file != NULL, &res);
	if (ret == 0)
		report(&res, n, frame, plain ? "plain" : "uring", plain ? 0 : nr);
	for (int i = 0; i < nkids; i++) {
		kill(kids[i], SIGTERM);
		waitpid(kids[i], NULL, 0);
	}
	return ret == 0 && res.answers == n ? 0 : 1;
}
