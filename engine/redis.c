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
	if (rc->fd < 0) {
		loop_timer_set(rc->loop, &rc->retry, rc->backoff_ms, on_retry);
		return;
	}
	rc->reader = redisReaderCreate();
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
	if (redisReaderFeed(rc->reader, (const char *)rc->rbuf, (size_t)res) != REDIS_OK) {
		fail(rc, "reader error", 0);
		return;
	}
	for (;;) {
		void *reply = NULL;
		if (redisReaderGetReply(rc->reader, &reply) != REDIS_OK) {
			fail(rc, "protocol error", 0);
			return;
		}
		if (!reply)
			break;
		if (rc->fifo_len == 0) {
			freeReplyObject(reply);
			fail(rc, "reply without a command", 0);
			return;
		}
		struct redis_pending p = fifo_pop(rc);
		if (p.cb) /* NULL: fire and forget */
			p.cb(p.arg, reply);
		freeReplyObject(reply);
		if (rc->state != REDIS_UP)
			return; /* a callback stopped the client */
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
		redisReaderFree(rc->reader);
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
		redisReaderFree(rc->reader);
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

int redis_command(struct redis_client *rc, redis_reply_cb cb, void *arg, int argc,
		  const char **argv, const size_t *argvlen)
{
	if (rc->state != REDIS_UP)
		return -ENOTCONN;
	char *cmd;
	long long n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
	if (n < 0)
		return -ENOMEM;
	int ret = buf_append(&rc->out, cmd, (size_t)n, REDIS_MAX_OUTPUT);
	free(cmd);
	if (ret)
		return ret;
	ret = fifo_push(rc, cb, arg);
	if (ret) {
		rc->out.len -= (size_t)n;
		return ret;
	}
	flush(rc);
	return 0;
}
