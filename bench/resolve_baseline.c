/*
 * bench/resolve_baseline.c: the raw Redis rate for the resolver's command
 * mix, as the baseline bench/resolve.sh compares `tocsin plan` against.
 *
 *   resolve_baseline SOCKET COMMANDS.resp [WINDOW]
 *
 * Reads a file of RESP-encoded commands (the mix resolve.sh generates:
 * HMGET per target, LRANGE of children, one LRANGE hh and one LRANGE terms
 * per building, HMGET per terminal), then sends them over a unix socket
 * keeping WINDOW (default 256) outstanding, parsing every reply with
 * hiredis's reader, and prints "commands replies_bytes seconds". No
 * deduplication, no batching of results: a ceiling the resolver can
 * approach but not pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Offsets where each command starts ('*' at the beginning of a line). */
static size_t index_commands(const char *buf, size_t len, size_t **starts)
{
	size_t n = 0, cap = 1024;
	*starts = malloc(cap * sizeof(**starts));
	for (size_t i = 0; i < len; i++) {
		if (buf[i] != '*' || (i && buf[i - 1] != '\n'))
			continue;
		/* skip bulk payloads: "$len\r\n<data>\r\n" can contain '*' */
		if (n == cap)
			*starts = realloc(*starts, (cap *= 2) * sizeof(**starts));
		(*starts)[n++] = i;
		long args = strtol(buf + i + 1, NULL, 10);
		const char *p = strchr(buf + i, '\n') + 1;
		for (long a = 0; a < args; a++) {
			long bl = strtol(p + 1, NULL, 10);
			p = strchr(p, '\n') + 1 + bl + 2;
		}
		i = (size_t)(p - buf) - 1;
	}
	return n;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: resolve_baseline SOCKET COMMANDS.resp [WINDOW]\n");
		return 2;
	}
	size_t window = argc > 3 ? (size_t)atoi(argv[3]) : 256;
	FILE *f = fopen(argv[2], "rb");
	if (!f) {
		perror(argv[2]);
		return 1;
	}
	fseek(f, 0, SEEK_END);
	size_t len = (size_t)ftell(f);
	rewind(f);
	char *buf = malloc(len + 1);
	if (fread(buf, 1, len, f) != len)
		return 1;
	fclose(f);
	size_t *starts;
	size_t n = index_commands(buf, len, &starts);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", argv[1]);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror(argv[1]);
		return 1;
	}
	redisReader *rd = redisReaderCreate();
	char rbuf[65536];
	size_t sent = 0, got = 0, bytes = 0;
	double t0 = now();
	while (got < n) {
		while (sent < n && sent - got < window) {
			size_t end = sent + 1 < n ? starts[sent + 1] : len;
			if (write(fd, buf + starts[sent], end - starts[sent]) < 0)
				return 1;
			sent++;
		}
		ssize_t r = read(fd, rbuf, sizeof(rbuf));
		if (r <= 0)
			return 1;
		bytes += (size_t)r;
		redisReaderFeed(rd, rbuf, (size_t)r);
		void *reply;
		while (redisReaderGetReply(rd, &reply) == REDIS_OK && reply) {
			freeReplyObject(reply);
			got++;
		}
	}
	printf("%zu %zu %.6f\n", n, bytes, now() - t0);
	return 0;
}
