/*
 * bench/ingest_load.c: distinct-admission load for POST /v1/warnings.
 *
 * h2load repeats one body, so after the first request every admission is an
 * idempotent replay. This tool measures *new* admissions: it takes one
 * signed warning (from `tocsin sign`), and before the clock starts makes N
 * variants of its payload (identifier PREFIX-i, sent = now), each signed
 * again with the private key. Then C threads, one HTTP/2 (prior knowledge,
 * cleartext) connection each, keep M streams in flight until all N bodies
 * are sent, and count responses. Anything but 202 is a failure: the first
 * few are printed and the exit status is 1.
 *
 * Output (one line, key=value, for bench/ingest.sh):
 *   sent=N ok=N failed=0 seconds=S rate=R
 *
 * Design: blocking sockets, nghttp2 driven with mem_send/mem_recv (no I/O
 * inside nghttp2). One thread = one connection = one nghttp2 session; the
 * threads share only the read-only bodies and two atomic counters.
 *
 * Caveat: the client runs on the same machine as tocsind and Redis; its CPU
 * time is part of what the machine spends. bench/ingest.sh reports
 * tocsind's own CPU time separately for that reason.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "sig.h"
#include "warning.pb-c.h"

struct body {
	uint8_t *data;
	size_t len;
};

struct opts {
	const char *host;
	int port;
	const char *key_path, *key_id, *template_path, *prefix, *path;
	int n, conns, streams;
};

/* One request in flight; freed when its stream closes. */
struct stream {
	const struct body *b;
	size_t off;
	int status;
	char err[200];
	size_t err_len;
};

struct conn {
	const struct opts *o;
	const struct body *bodies;
	int first, count; /* bodies[first .. first+count) belong to this connection */
	int fd;
	nghttp2_session *s;
	int next, inflight, done;
	atomic_int *ok, *failed;
	int fatal;
};

static atomic_int failures_printed;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t *buf = malloc(1 << 17);
	*len = fread(buf, 1, 1 << 17, f);
	fclose(f);
	return buf;
}

/* Make o->n distinct signed bodies from the template envelope. */
static struct body *make_bodies(const struct opts *o)
{
	char err[256];
	enum sig_alg alg;
	EVP_PKEY *key = sig_privkey_load(o->key_path, &alg, err, sizeof(err));
	if (!key) {
		fprintf(stderr, "ingest_load: %s\n", err);
		return NULL;
	}
	size_t tlen;
	uint8_t *t = read_file(o->template_path, &tlen);
	Tocsin__SignedWarning *sw = t ? tocsin__signed_warning__unpack(NULL, tlen, t) : NULL;
	Tocsin__Warning *w = sw && sw->has_payload
				     ? tocsin__warning__unpack(NULL, sw->payload.len, sw->payload.data)
				     : NULL;
	if (!w) {
		fprintf(stderr, "ingest_load: %s is not a signed warning\n", o->template_path);
		return NULL;
	}
	struct body *bodies = calloc(o->n, sizeof(*bodies));
	char id[160];
	w->identifier = id;
	w->has_sent = 1;
	w->sent = time(NULL);
	for (int i = 0; i < o->n; i++) {
		snprintf(id, sizeof(id), "%s-%d", o->prefix, i);
		size_t plen = tocsin__warning__get_packed_size(w);
		uint8_t *p = malloc(plen), *sig;
		size_t siglen;
		tocsin__warning__pack(w, p);
		if (sig_sign(key, alg, p, plen, &sig, &siglen) != 0) {
			fprintf(stderr, "ingest_load: signing failed\n");
			exit(2);
		}
		Tocsin__SignedWarning out;
		tocsin__signed_warning__init(&out);
		out.has_payload = out.has_signature = 1;
		out.payload.data = p;
		out.payload.len = plen;
		out.signature.data = sig;
		out.signature.len = siglen;
		out.key_id = (char *)o->key_id;
		bodies[i].len = tocsin__signed_warning__get_packed_size(&out);
		bodies[i].data = malloc(bodies[i].len);
		tocsin__signed_warning__pack(&out, bodies[i].data);
		free(sig);
		free(p);
	}
	w->identifier = NULL; /* not ours to free */
	tocsin__warning__free_unpacked(w, NULL);
	tocsin__signed_warning__free_unpacked(sw, NULL);
	free(t);
	EVP_PKEY_free(key);
	return bodies;
}

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len,
			 uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct stream *st = src->ptr;
	size_t n = st->b->len - st->off;
	if (n > len)
		n = len;
	memcpy(buf, st->b->data + st->off, n);
	st->off += n;
	if (st->off == st->b->len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (st && namelen == 7 && !memcmp(name, ":status", 7))
		st->status = atoi((const char *)value);
	return 0;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
		   size_t len, void *user)
{
	struct stream *st = nghttp2_session_get_stream_user_data(s, id);
	if (st && st->err_len < sizeof(st->err) - 1) {
		size_t n = sizeof(st->err) - 1 - st->err_len;
		memcpy(st->err + st->err_len, data, n < len ? n : len);
		st->err_len += n < len ? n : len;
	}
	return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t error_code, void *user)
{
	struct conn *c = user;
	struct stream *st = nghttp2_session_get_stream_user_data(s, id);
	if (!st)
		return 0;
	c->inflight--;
	c->done++;
	if (st->status == 202 && error_code == 0) {
		atomic_fetch_add(c->ok, 1);
	} else {
		atomic_fetch_add(c->failed, 1);
		if (atomic_fetch_add(&failures_printed, 1) < 5)
			fprintf(stderr, "ingest_load: stream %d: status %d, rst %u: %.*s\n", id,
				st->status, error_code, (int)st->err_len, st->err);
	}
	free(st);
	return 0;
}

static int submit(struct conn *c)
{
	char clen[24];
	struct stream *st = calloc(1, sizeof(*st));
	st->b = &c->bodies[c->first + c->next];
	snprintf(clen, sizeof(clen), "%zu", st->b->len);
	char authority[64];
	snprintf(authority, sizeof(authority), "%s:%d", c->o->host, c->o->port);
#define NV(n, v) { (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE }
	nghttp2_nv hdrs[] = {
		NV(":method", "POST"), NV(":scheme", "http"), NV(":authority", authority),
		NV(":path", c->o->path), NV("content-type", "application/x-protobuf"),
		NV("content-length", clen),
	};
#undef NV
	nghttp2_data_provider dp = { .source.ptr = st, .read_callback = read_body };
	int32_t id = nghttp2_submit_request(c->s, NULL, hdrs, 6, &dp, st);
	if (id < 0) {
		fprintf(stderr, "ingest_load: submit: %s\n", nghttp2_strerror(id));
		free(st);
		return -1;
	}
	c->next++;
	c->inflight++;
	return 0;
}

static int flush(struct conn *c)
{
	for (;;) {
		const uint8_t *d;
		ssize_t n = nghttp2_session_mem_send(c->s, &d);
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		while (n > 0) {
			ssize_t w = send(c->fd, d, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return -1;
			d += w;
			n -= w;
		}
	}
}

static int conn_open(struct conn *c)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(c->o->port) };
	inet_pton(AF_INET, c->o->host, &sa.sin_addr);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("ingest_load: connect");
		return -1;
	}
	nghttp2_session_callbacks *cb;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
	nghttp2_session_client_new(&c->s, cb, c);
	nghttp2_session_callbacks_del(cb);
	nghttp2_settings_entry iv = { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 };
	nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, &iv, 1);
	return 0;
}

static void *conn_run(void *arg)
{
	struct conn *c = arg;
	uint8_t buf[65536];
	while (c->done < c->count) {
		while (c->inflight < c->o->streams && c->next < c->count)
			if (submit(c) < 0)
				goto out_fatal;
		if (flush(c) < 0)
			goto out_fatal;
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "ingest_load: server closed the connection (%s) after %d of %d\n",
				n == 0 ? "EOF" : strerror(errno), c->done, c->count);
			goto out_fatal;
		}
		if (nghttp2_session_mem_recv(c->s, buf, n) < 0)
			goto out_fatal;
	}
	nghttp2_session_terminate_session(c->s, NGHTTP2_NO_ERROR);
	flush(c);
	return NULL;
out_fatal:
	c->fatal = 1;
	atomic_fetch_add(c->failed, c->count - c->done);
	return NULL;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ingest_load --port P --key PREFIX.key --key-id ID --template w.bin\n"
		"                   [--host 127.0.0.1] [-n 20000] [-c 8] [-m 32]\n"
		"                   [--prefix bench-d] [--path /v1/warnings]\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "host", 1, 0, 'H' }, { "port", 1, 0, 'p' }, { "key", 1, 0, 'k' },
		{ "key-id", 1, 0, 'i' }, { "template", 1, 0, 't' }, { "prefix", 1, 0, 'P' },
		{ "path", 1, 0, 'u' }, { 0, 0, 0, 0 },
	};
	*o = (struct opts){ .host = "127.0.0.1", .prefix = "bench-d", .path = "/v1/warnings",
			    .n = 20000, .conns = 8, .streams = 32 };
	int ch;
	while ((ch = getopt_long(argc, argv, "n:c:m:", lo, NULL)) != -1) {
		switch (ch) {
		case 'H': o->host = optarg; break;
		case 'p': o->port = atoi(optarg); break;
		case 'k': o->key_path = optarg; break;
		case 'i': o->key_id = optarg; break;
		case 't': o->template_path = optarg; break;
		case 'P': o->prefix = optarg; break;
		case 'u': o->path = optarg; break;
		case 'n': o->n = atoi(optarg); break;
		case 'c': o->conns = atoi(optarg); break;
		case 'm': o->streams = atoi(optarg); break;
		default: usage();
		}
	}
	if (!o->port || !o->key_path || !o->key_id || !o->template_path || o->n < 1 ||
	    o->conns < 1 || o->streams < 1 || o->conns > o->n)
		usage();
}

int main(int argc, char **argv)
{
	struct opts o;
	parse(argc, argv, &o);
	double t0 = now_s();
	struct body *bodies = make_bodies(&o);
	if (!bodies)
		return 2;
	fprintf(stderr, "ingest_load: signed %d distinct bodies (%zu bytes each) in %.2f s\n", o.n,
		bodies[0].len, now_s() - t0);

	atomic_int ok = 0, failed = 0;
	struct conn *cs = calloc(o.conns, sizeof(*cs));
	pthread_t *th = calloc(o.conns, sizeof(*th));
	int per = o.n / o.conns, first = 0;
	for (int i = 0; i < o.conns; i++) {
		cs[i] = (struct conn){ .o = &o, .bodies = bodies, .first = first,
				       .count = per + (i < o.n % o.conns), .ok = &ok,
				       .failed = &failed };
		first += cs[i].count;
		if (conn_open(&cs[i]) < 0)
			return 2;
	}
	double start = now_s();
	for (int i = 0; i < o.conns; i++)
		pthread_create(&th[i], NULL, conn_run, &cs[i]);
	for (int i = 0; i < o.conns; i++)
		pthread_join(th[i], NULL);
	double secs = now_s() - start;

	for (int i = 0; i < o.conns; i++) {
		nghttp2_session_del(cs[i].s);
		close(cs[i].fd);
	}
	for (int i = 0; i < o.n; i++)
		free(bodies[i].data);
	free(bodies);
	free(cs);
	free(th);
	printf("sent=%d ok=%d failed=%d seconds=%.3f rate=%.1f\n", o.n, (int)ok, (int)failed, secs,
	       ok / secs);
	return failed ? 1 : 0;
}
