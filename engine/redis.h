/*
 * engine/redis.h: an asynchronous Redis client on a worker's io_uring loop.
 *
 * hiredis is used purely as a codec: redisFormatCommandArgv encodes,
 * redisReader decodes; every byte moves through the ring. Commands are
 * pipelined; replies arrive in order and are paired with their callbacks
 * through a FIFO.
 *
 * Callback contract: each accepted command's callback runs exactly once:
 * with the reply (freed by the client after the callback returns), or with
 * NULL when the connection failed before the reply arrived. A command that
 * redis_command() refused (-ENOTCONN, -ENOBUFS) never calls back. A NULL
 * callback means fire and forget: the reply is read and dropped.
 *
 * The client reconnects by itself with backoff (100 ms doubling to 2 s).
 * Two-phase close: the socket is closed only after its recv and send ops
 * have completed.
 */
#ifndef TOCSIN_REDIS_H
#define TOCSIN_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>

#include "buf.h"
#include "loop.h"

#define REDIS_MAX_OUTPUT (64u << 20)
#define REDIS_RECV_BUF (64 * 1024)

typedef void (*redis_reply_cb)(void *arg, redisReply *reply);

enum redis_state { REDIS_DOWN, REDIS_CONNECTING, REDIS_UP, REDIS_FAILING, REDIS_STOPPED };

struct redis_pending {
	redis_reply_cb cb;
	void *arg;
};

struct redis_client {
	struct loop *loop;
	char addr[512];
	struct sockaddr_storage sa;
	socklen_t salen;
	int fd;
	enum redis_state state;
	bool stopping;
	struct op connect_op, recv_op, send_op;
	bool connect_armed, recv_armed, send_armed;
	redisReader *reader;
	uint8_t *rbuf;
	struct buf out, sending;
	size_t sending_off;
	struct redis_pending *fifo; /* ring buffer */
	size_t fifo_head, fifo_len, fifo_cap;
	struct timer retry;
	unsigned backoff_ms;
	void (*on_state)(struct redis_client *rc, void *arg); /* optional: up/down changes */
	void *on_state_arg;
};

/* Parse "HOST:PORT" or "unix:/path". -1 + err for a bad address. */
int redis_init(struct redis_client *rc, struct loop *loop, const char *addr, char *err,
	       size_t errlen);
void redis_start(struct redis_client *rc);
/* Stop for good: pending callbacks get NULL; safe to release once redis_idle(). */
void redis_stop(struct redis_client *rc);
bool redis_idle(const struct redis_client *rc);
void redis_release(struct redis_client *rc);

bool redis_up(const struct redis_client *rc);

/* Queue one command. 0, -ENOTCONN (not connected) or -ENOBUFS/-ENOMEM. */
int redis_command(struct redis_client *rc, redis_reply_cb cb, void *arg, int argc,
		  const char **argv, const size_t *argvlen);

#endif
