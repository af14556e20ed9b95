/*
 * engine/redis.c: asynchronous Redis client over io_uring (see redis.h).
 *
 * State table:
 *
 *   DOWN --redis_start / retry timer--> CONNECTING --connected--> UP
 *   CONNECTING/UP --error or EOF--> FAILING (fail callbacks, wait for ops)
 *   FAILING --last op back--> DOWN (retry timer armed with backoff)
 *   any --redis_stop--> (FAILING) --> STOPPED
 */
#include "redis.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

static void on_connect(struct op *op, int res, uint32_t flags);
static void on_recv(struct op *op, int res, uint32_t flags);
static void on_send(struct op *op, int res, uint32_t flags);
static void fail(struct redis_client *rc, const char *why, int err);

/*
 * Reply objects come from a per-reader arena instead of one malloc per
 * object and per string (a building list is ~35 strings, a district ~270,000):
 * a reply lives only while its callback runs, and the reader never holds
 * more than the reply it is building, so the arena is reset after each
 * callback. The objects are ordinary redisReply structs; freeReplyObject
 * must not be called on them (the reader's freeObject is a no-op).
 */
#define RA_CHUNK (64 * 1024)
#define FEED_SLICE (16 * 1024) /* hiredis memmoves the unread rest after each reply */

struct ra_chunk {
	struct ra_chunk *next;
	size_t size;
	/* data follows: 16-byte aligned (the header is 16 bytes, malloc aligns 16) */
};

struct reply_arena {
	struct ra_chunk *chunks; /* newest first */
	char *cur;
	size_t left;
};

static void *ra_alloc(struct reply_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n > a->left) {
		size_t size = n > RA_CHUNK ? n : RA_CHUNK;
		struct ra_chunk *c = malloc(sizeof(*c) + size);
		if (!c)
			return NULL;
		c->next = a->chunks;
		c->size = size;
		a->chunks = c;
		a->cur = (char *)(c + 1);
		a->left = size;
	}
	void *p = a->cur;
	a->cur += n;
	a->left -= n;
	return p;
}

/* Keep one standard chunk for the next reply, free the rest. */
static void ra_reset(struct reply_arena *a)
{
	struct ra_chunk *keep = NULL;
	for (struct ra_chunk *c = a->chunks, *next; c; c = next) {
		next = c->next;
		if (!keep && c->size == RA_CHUNK) {
			keep = c;
			keep->next = NULL;
		} else {
			free(c);
		}
	}
	a->chunks = keep;
	a->cur = keep ? (char *)(keep + 1) : NULL;
	a->left = keep ? keep->size : 0;
}

static redisReply *ra_reply(const redisReadTask *task, int type)
{
	redisReply *r = ra_alloc(task->privdata, sizeof(*r));
	if (!r)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->type = type;
	if (task->parent)
		((redisReply *)task->parent->obj)->element[task->idx] = r;
	return r;
}

static void *ra_string(const redisReadTask *task, char *str, size_t len)
{
	char *buf = ra_alloc(task->privdata, len + 1);
	redisReply *r = buf ? ra_reply(task, task->type) : NULL;
	if (!r)
		return NULL;
	memcpy(buf, str, len);
	buf[len] = '\0';
	r->str = buf;
	r->len = len;
	return r;
}

static void *ra_array(const redisReadTask *task, int elements)
{
	redisReply **el = NULL;
	if (elements > 0) {
		if (!(el = ra_alloc(task->privdata, (size_t)elements * sizeof(*el))))
			return NULL;
		memset(el, 0, (size_t)elements * sizeof(*el));
	}
	redisReply *r = ra_reply(task, REDIS_REPLY_ARRAY);
	if (!r)
		return NULL;
	r->element = el;
	r->elements = elements > 0 ? (size_t)elements : 0;
	return r;
}

static void *ra_integer(const redisReadTask *task, long long value)
{
	redisReply *r = ra_reply(task, REDIS_REPLY_INTEGER);
	if (r)
		r->integer = value;
	return r;
}

static void *ra_nil(const redisReadTask *task)
{
	return ra_reply(task, REDIS_REPLY_NIL);
}

static void ra_free_object(void *obj)
{
	(void)obj; /* the arena owns it */
}

static redisReplyObjectFunctions ra_functions = {
	ra_string, ra_array, ra_integer, ra_nil, ra_free_object,
};

/* A reader whose replies live in an arena; the default one if that fails. */
static redisReader *reader_create(void)
{
	struct reply_arena *a = calloc(1, sizeof(*a));
	redisReader *r = a ? redisReaderCreateWithFunctions(&ra_functions) : NULL;
	if (!r) {
		free(a);
		return redisReaderCreate();
	}
	r->privdata = a;
	return r;
}

static void reader_free(redisReader *r)
{
	struct reply_arena *a = r->privdata;
	redisReaderFree(r);
	if (a) {
		ra_reset(a);
		free(a->chunks);
		free(a);
	}
}

/* Done with a reply: reset the reader's arena (or free a default reply). */
static void reply_done(redisReader *r, redisReply *reply)
{
	if (r->privdata)
		ra_reset(r->privdata);
	else
		freeReplyObject(reply);
}

#define RC(op, field) ((struct redis_client *)((char *)(op) - offsetof(struct redis_client, field)))

static int parse_addr(struct redis_client *rc, const char *addr, char *err, size_t errlen)
{
	memset(&rc->sa, 0, sizeof(rc->sa));
	if (!strncmp(addr, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)&rc->sa;
		if (strlen(addr + 5) >= sizeof(un->sun_path) || !addr[5])
			goto bad;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, addr + 5);
		rc->salen = sizeof(*un);
		return 0;
	}
	char host[256];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host))
		goto bad;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai;
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		goto bad;
	memcpy(&rc->sa, ai->ai_addr, ai->ai_addrlen);
	rc->salen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
bad:
	snprintf(err, errlen, "bad Redis address '%s' (HOST:PORT or unix:/path)", addr);
	return -1;
}

int redis_init(struct redis_client *rc, struct loop *loop, const char *addr, char *err,
	       size_t errlen)
{
	memset(rc, 0, sizeof(*rc));
	rc->loop = loop;
	rc->fd = -1;
	rc->state = REDIS_DOWN;
	rc->backoff_ms = BACKOFF_MIN_MS;
	rc->connect_op.cb = on_connect;
	rc->recv_op.cb = on_recv;
	rc->send_op.cb = on_send;
	snprintf(rc->addr, sizeof(rc->addr), "%s", addr);
	if (parse_addr(rc, addr, err, errlen) < 0)
		return -1;
	rc->rbuf = malloc(REDIS_RECV_BUF);
	if (!rc->rbuf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

bool redis_up(const struct redis_client *rc)
{
	return rc->state == REDIS_UP;
}

bool redis_idle(const struct redis_client *rc)
{
	return !rc->connect_armed && !rc->recv_armed && !rc->send_armed;
}

static void notify(struct redis_client *rc)
{
	if (rc->on_state)
		rc->on_state(rc, rc->on_state_arg);
}

static void on_retry(struct timer *t)
{
	redis_start(RC(t, retry));
}

void redis_start(struct redis_client *rc)
{
	if (rc->state != REDIS_DOWN || rc->stopping)
		return;
	rc->fd = socket(rc->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (rc->fd >= 0 && rc->sa.ss_family != AF_UNIX) {
		int one = 1; /* pipelined commands must not wait for Nagle */
		setsockopt(rc->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (rc->fd < 0) {
		loop_timer_set(rc->loop, &rc->retry, rc->backoff_ms, on_retry);
		return;
	}
	rc->reader = reader_create();
	rc->state = REDIS_CONNECTING;
	struct io_uring_sqe *sqe = loop_sqe(rc->loop, &rc->connect_op);
	io_uring_prep_connect(sqe, rc->fd, (struct sockaddr *)&rc->sa, rc->salen);
	rc->connect_armed = true;
}

static void arm_recv(struct redis_client *rc)
{
	struct io_uring_sqe *sqe = loop_sqe(rc->loop, &rc->recv_op);
	io_uring_prep_recv(sqe, rc->fd, rc->rbuf, REDIS_RECV_BUF, 0);
	rc->recv_armed = true;
}

static void flush(struct redis_client *rc)
{
	if (rc->send_armed || rc->out.len == 0 || rc->state != REDIS_UP)
		return;
	buf_swap(&rc->out, &rc->sending);
	rc->out.len = 0;
	rc->sending_off = 0;
	struct io_uring_sqe *sqe = loop_sqe(rc->loop, &rc->send_op);
	io_uring_prep_send(sqe, rc->fd, rc->sending.data, rc->sending.len, MSG_NOSIGNAL);
	rc->send_armed = true;
}

static void on_connect(struct op *op, int res, uint32_t flags)
{
	struct redis_client *rc = RC(op, connect_op);
	rc->connect_armed = false;
	if (res < 0 || rc->stopping) {
		fail(rc, "connect failed", res);
		return;
	}
	rc->state = REDIS_UP;
	rc->backoff_ms = BACKOFF_MIN_MS;
	log_info("msg=\"redis connected\" addr=%s", rc->addr);
	arm_recv(rc);
	flush(rc);
	notify(rc);
}

static void on_send(struct op *op, int res, uint32_t flags)
{
	struct redis_client *rc = RC(op, send_op);
	rc->send_armed = false;
	if (res <= 0 || rc->state != REDIS_UP) {
		fail(rc, "send failed", res);
		return;
	}
	rc->sending_off += (size_t)res;
	if (rc->sending_off < rc->sending.len) {
		struct io_uring_sqe *sqe = loop_sqe(rc->loop, &rc->send_op);
		io_uring_prep_send(sqe, rc->fd, rc->sending.data + rc->sending_off,
				   rc->sending.len - rc->sending_off, MSG_NOSIGNAL);
		rc->send_armed = true;
		return;
	}
	rc->sending.len = 0;
	flush(rc);
}

static struct redis_pending fifo_pop(struct redis_client *rc)
{
	struct redis_pending p = rc->fifo[rc->fifo_head];
	rc->fifo_head = (rc->fifo_head + 1) % rc->fifo_cap;
	rc->fifo_len--;
	return p;
}

static void on_recv(struct op *op, int res, uint32_t flags)
{
	struct redis_client *rc = RC(op, recv_op);
	rc->recv_armed = false;
	if (res <= 0 || rc->state != REDIS_UP) {
		fail(rc, res == 0 ? "connection closed by server" : "recv failed", res);
		return;
	}
	for (size_t off = 0; off < (size_t)res; off += FEED_SLICE) {
		size_t n = (size_t)res - off < FEED_SLICE ? (size_t)res - off : FEED_SLICE;
		if (redisReaderFeed(rc->reader, (const char *)rc->rbuf + off, n) != REDIS_OK) {
			fail(rc, "reader error", 0);
			return;
		}
		for (;;) {
			void *reply = NULL;
			redisReader *reader = rc->reader;
			if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
				fail(rc, "protocol error", 0);
				return;
			}
			if (!reply)
				break;
			if (rc->fifo_len == 0) {
				reply_done(reader, reply);
				fail(rc, "reply without a command", 0);
				return;
			}
			struct redis_pending p = fifo_pop(rc);
			bool arena = reader->privdata != NULL;
			if (p.cb) /* NULL: fire and forget */
				p.cb(p.arg, reply);
			if (!arena)
				freeReplyObject(reply);
			if (rc->state != REDIS_UP)
				return; /* a callback stopped the client (the reader may be gone) */
			if (arena)
				ra_reset(reader->privdata);
		}
	}
	arm_recv(rc);
}

/* Called when an op came back during FAILING: finish the close once all are back. */
static void settle(struct redis_client *rc)
{
	if (rc->state != REDIS_FAILING || !redis_idle(rc))
		return;
	close(rc->fd);
	rc->fd = -1;
	if (rc->reader) {
		reader_free(rc->reader);
		rc->reader = NULL;
	}
	rc->out.len = 0;
	rc->sending.len = 0;
	if (rc->stopping) {
		rc->state = REDIS_STOPPED;
		return;
	}
	rc->state = REDIS_DOWN;
	loop_timer_set(rc->loop, &rc->retry, rc->backoff_ms, on_retry);
	rc->backoff_ms = rc->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rc->backoff_ms * 2;
}

static void fail(struct redis_client *rc, const char *why, int err)
{
	if (rc->state == REDIS_FAILING || rc->state == REDIS_STOPPED || rc->state == REDIS_DOWN) {
		settle(rc);
		return;
	}
	bool was_up = rc->state == REDIS_UP;
	rc->state = REDIS_FAILING;
	if (!rc->stopping)
		log_warn("msg=\"redis unavailable\" addr=%s why=\"%s\" err=%d", rc->addr, why, err);
	shutdown(rc->fd, SHUT_RDWR); /* completes the armed recv/send */
	while (rc->fifo_len) {
		struct redis_pending p = fifo_pop(rc);
		if (p.cb)
			p.cb(p.arg, NULL);
	}
	if (was_up)
		notify(rc);
	settle(rc);
}

void redis_stop(struct redis_client *rc)
{
	rc->stopping = true;
	loop_timer_cancel(rc->loop, &rc->retry);
	if (rc->state == REDIS_DOWN)
		rc->state = REDIS_STOPPED;
	else
		fail(rc, "stopping", 0);
}

void redis_release(struct redis_client *rc)
{
	if (rc->fd >= 0)
		close(rc->fd);
	if (rc->reader)
		reader_free(rc->reader);
	buf_release(&rc->out);
	buf_release(&rc->sending);
	free(rc->fifo);
	free(rc->rbuf);
	rc->fifo = NULL;
	rc->rbuf = NULL;
}

static int fifo_push(struct redis_client *rc, redis_reply_cb cb, void *arg)
{
	if (rc->fifo_len == rc->fifo_cap) {
		size_t cap = rc->fifo_cap ? rc->fifo_cap * 2 : 256;
		struct redis_pending *f = malloc(cap * sizeof(*f));
		if (!f)
			return -ENOMEM;
		for (size_t i = 0; i < rc->fifo_len; i++)
			f[i] = rc->fifo[(rc->fifo_head + i) % rc->fifo_cap];
		free(rc->fifo);
		rc->fifo = f;
		rc->fifo_cap = cap;
		rc->fifo_head = 0;
	}
	rc->fifo[(rc->fifo_head + rc->fifo_len) % rc->fifo_cap] = (struct redis_pending){cb, arg};
	rc->fifo_len++;
	return 0;
}

/* Append a command in RESP straight to the output buffer (what
 * redisFormatCommandArgv produces, without its malloc, sprintf and copy).
 * The byte count, or -ENOBUFS/-ENOMEM with the buffer unchanged. */
static size_t ndigits(size_t v)
{
	size_t n = 1;
	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

static char *put_len(char *p, char tag, size_t v)
{
	char digits[24];
	int n = 0;
	do
		digits[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	*p++ = tag;
	while (n)
		*p++ = digits[--n];
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

static long format_command(struct buf *out, int argc, const char **argv, const size_t *argvlen)
{
	size_t total = 1 + ndigits((size_t)argc) + 2;
	for (int i = 0; i < argc; i++)
		total += 1 + ndigits(argvlen[i]) + 2 + argvlen[i] + 2;
	int ret = buf_reserve(out, total, REDIS_MAX_OUTPUT);
	if (ret)
		return ret;
	char *start = (char *)out->data + out->len, *p = put_len(start, '*', (size_t)argc);
	for (int i = 0; i < argc; i++) {
		p = put_len(p, '$', argvlen[i]);
		memcpy(p, argv[i], argvlen[i]);
		p += argvlen[i];
		*p++ = '\r';
		*p++ = '\n';
	}
	out->len += (size_t)(p - start);
	return (long)(p - start);
}

int redis_command(struct redis_client *rc, redis_reply_cb cb, void *arg, int argc,
		  const char **argv, const size_t *argvlen)
{
	if (rc->state != REDIS_UP)
		return -ENOTCONN;
	long n = format_command(&rc->out, argc, argv, argvlen);
	if (n < 0)
		return (int)n;
	int ret = fifo_push(rc, cb, arg);
	if (ret) {
		rc->out.len -= (size_t)n;
		return ret;
	}
	flush(rc);
	return 0;
}
