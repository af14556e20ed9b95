/*
 * tests/fuzz/fuzz_h2.c: libFuzzer target for the HTTP/2 input path.
 *
 * The input (after the client preface, which the harness supplies) goes
 * through the real path: a connection on a real io_uring loop over a
 * socketpair, the nghttp2 session with tocsind's callbacks and limits, and
 * the API router (Redis is never connected, so admissions answer 503). Each
 * run ends by closing the connection and running the loop until it is
 * freed: a leak or a use-after-free in the two-phase close shows up here.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http.h"
#include "server.h"

static struct engine engine;
static struct worker worker;

static void setup(void)
{
	char err[256];
	config_defaults(&engine.cfg);
	engine.n_workers = 1;
	worker.e = &engine;
	if (loop_init(&worker.loop, 256) < 0)
		abort();
	if (redis_init(&worker.redis, &worker.loop, "127.0.0.1:1", err, sizeof(err)) < 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	static int ready;
	if (!ready++)
		setup();
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	struct conn *c = conn_new(&worker, sv[0]);
	if (!c)
		goto out_close_peer;
	worker.conns = c;
	worker.n_conns = 1;
	c->proto = &http2_proto;
	c->state = CONN_OPEN;
	if (http2_proto.start(c) == 0 &&
	    http2_proto.on_data(c, (const uint8_t *)preface, sizeof(preface) - 1) == 0)
		http2_proto.on_data(c, data, size);
	conn_close(c);
	for (int i = 0; i < 1000 && worker.n_conns; i++)
		loop_run_once(&worker.loop, 10);
	if (worker.n_conns)
		__builtin_trap(); /* the connection was never freed */
out_close_peer:
	close(sv[1]);
	return 0;
}
