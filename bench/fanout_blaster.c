/*
 * bench/fanout_blaster.c: the baseline for bench/terminal_scale.sh: a bare
 * epoll fan-out with no protocol, no protobuf, no authentication.
 *
 *   fanout_blaster [--conns 100000] [--frame 200] [--src-ips 8] [--port-file FILE]
 *
 * The process forks: the child opens --conns connections to the parent's
 * listener (127.0.0.1, ephemeral port) and answers each --frame-byte
 * message with one byte. The parent accepts them all, reports its RSS per
 * connection, writes one frame to every connection, and reports the time
 * until every one-byte answer came back. Output: one JSON line.
 *
 * With --port-file the receivers are someone else's (bench/terminal_swarm
 * --mode raw, so every system under test is measured by the same receiver):
 * no fork; the listening port goes to FILE; once --conns connections are
 * in, it waits 1 s, notes t0 (CLOCK_MONOTONIC, µs, as "t0_us"), writes the
 * frame to all, and reports when the last answer came ("last_answer_us").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

/* The child: n connecting sockets that echo one byte per frame received. */
static void clients(int port, int n, int frame, int src_ips)
{
	int ep = epoll_create1(0), one = 1;
	char *buf = malloc((size_t)frame);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (int i = 0; i < n; i++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in src = {.sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % src_ips))};
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
		bind(fd, (struct sockaddr *)&src, sizeof(src));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			perror("connect");
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

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int serve(int lfd, int n, int frame, pid_t child)
{
	int *fds = calloc((size_t)n, sizeof(int)), ep = epoll_create1(0);
	char *msg = calloc(1, (size_t)frame), b[64];
	long rss0 = rss_bytes();
	for (int i = 0; i < n; i++) {
		fds[i] = accept(lfd, NULL, NULL);
		if (fds[i] < 0)
			return 1;
		struct epoll_event e = {.events = EPOLLIN, .data.fd = fds[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
	}
	long rss1 = rss_bytes();
	if (child < 0)
		usleep(1000000); /* external receivers: let their last handshakes settle */
	long long t0_us = now_us();
	double t0 = now_s();
	for (int i = 0; i < n; i++)
		if (send(fds[i], msg, (size_t)frame, MSG_NOSIGNAL) != frame)
			return 1;
	int answers = 0;
	struct epoll_event evs[1024];
	while (answers < n) {
		int k = epoll_wait(ep, evs, 1024, 10000);
		if (k <= 0)
			break;
		for (int i = 0; i < k; i++)
			answers += recv(evs[i].data.fd, b, sizeof(b), 0) > 0;
	}
	double t = now_s() - t0;
	printf("{\"conns\":%d,\"frame\":%d,\"rss_per_conn\":%.0f,\"fanout_ms\":%.1f,\"answers\":%d,"
	       "\"t0_us\":%lld,\"last_answer_us\":%lld}\n",
	       n, frame, (double)(rss1 - rss0) / n, t * 1000, answers, t0_us,
	       t0_us + (long long)(t * 1e6));
	if (child > 0) {
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
	}
	return answers == n ? 0 : 1;
}

int main(int argc, char **argv)
{
	int n = 100000, frame = 200, src_ips = 8, o;
	const char *port_file = NULL;
	static const struct option opts[] = {{"conns", 1, 0, 'n'}, {"frame", 1, 0, 'f'},
					     {"src-ips", 1, 0, 'i'}, {"port-file", 1, 0, 'p'},
					     {0, 0, 0, 0}};
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (o == 'n')
			n = atoi(optarg);
		else if (o == 'f')
			frame = atoi(optarg);
		else if (o == 'i')
			src_ips = atoi(optarg);
		else if (o == 'p')
			port_file = optarg;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = (rlim_t)n + 512;
	if (rl.rlim_max < rl.rlim_cur)
		rl.rlim_max = rl.rlim_cur;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		perror("fanout_blaster: setrlimit RLIMIT_NOFILE (needs CAP_SYS_RESOURCE above the hard limit)");
		return 1;
	}
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 65535) < 0)
		return 1;
	getsockname(lfd, (struct sockaddr *)&sa, &len);
	if (port_file) {
		FILE *f = fopen(port_file, "w");
		if (!f || fprintf(f, "%d\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0)
			return 1;
		return serve(lfd, n, frame, -1);
	}
	pid_t child = fork();
	if (child == 0) {
		close(lfd);
		clients(ntohs(sa.sin_port), n, frame, src_ips);
		_exit(0);
	}
	return serve(lfd, n, frame, child);
}
