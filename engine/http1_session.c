/*
 * engine/http1_session.c: HTTP/1.1 on a connection.
 *
 * Requests are answered strictly in order: while one is outstanding the
 * parser is paused and further (pipelined) bytes wait in `in`, which is
 * capped. A malformed request gets its 4xx with "Connection: close" and the
 * connection closes gracefully so the answer is not lost to a reset.
 *
 * A streaming answer (http.h) is sent raw after "Connection: close": its
 * body ends when the connection does, so it is the connection's last
 * request. While it streams, input is still read (and discarded by the
 * paused parser's cap) so a closing peer is noticed.
 */
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "http1.h"
#include "log.h"
#include "server.h"

#define H1_HEADER_SLACK (64 * 1024)

struct h1 {
	struct http1_parser parser;
	struct http_request req;
	struct buf in;
	bool busy;       /* a request is dispatched and not yet answered */
	bool processing; /* inside process(): no re-entry */
	bool keep_alive;
};

static void process(struct conn *c);

static void write_response(struct conn *c, int status, const char *ctype, const char *location,
			   const char *set_cookie, const char *body, size_t len, bool keep_alive)
{
	char head[2048];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-store\r\n%s%s%s%s%s%s%s",
			 status, http_status_text(status), ctype, len, location ? "Location: " : "",
			 location ? location : "", location ? "\r\n" : "",
			 set_cookie ? "Set-Cookie: " : "", set_cookie ? set_cookie : "",
			 set_cookie ? "\r\n" : "",
			 keep_alive ? "\r\n" : "Connection: close\r\n\r\n");
	if (conn_write(c, head, (size_t)n) < 0 || conn_write(c, body, len) < 0) {
		conn_close(c);
		return;
	}
	conn_flush(c);
}

static void h1_respond(struct http_request *req, int status, const char *ctype,
		       const char *location, const char *body, size_t len)
{
	struct conn *c = req->conn;
	struct h1 *h = c->session;
	write_response(c, status, ctype, location, req->set_cookie, body, len, h->keep_alive);
	h->busy = false;
	http1_parser_next(&h->parser);
	if (!h->keep_alive) {
		conn_close_gracefully(c);
		return;
	}
	process(c);
}

static int h1_stream_start(struct http_request *req, const char *ctype)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
			 "X-Accel-Buffering: no\r\nConnection: close\r\n\r\n",
			 ctype);
	int ret = conn_write(req->conn, head, (size_t)n);
	if (ret < 0)
		return ret;
	conn_flush(req->conn);
	return 0;
}

static int h1_stream_write(struct http_request *req, const void *data, size_t len)
{
	int ret = conn_write(req->conn, data, len);
	if (ret == 0)
		conn_flush(req->conn);
	return ret;
}

static size_t h1_stream_pending(const struct http_request *req)
{
	return conn_output_pending(req->conn);
}

/* The body ends with the connection. */
static void h1_stream_end(struct http_request *req, bool abort)
{
	struct conn *c = req->conn;
	struct h1 *h = c->session;
	h->busy = false;
	if (abort)
		conn_close(c);
	else
		conn_close_gracefully(c);
}

static const struct http_responder h1_responder = {
	.respond = h1_respond,
	.stream_start = h1_stream_start,
	.stream_write = h1_stream_write,
	.stream_pending = h1_stream_pending,
	.stream_end = h1_stream_end,
};

static void fail_request(struct conn *c, int err)
{
	char body[160];
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"reason\":\"%s\"}",
			 err == HTTP1_EBODY ? "too_large" : "malformed", http1_strerror(err));
	write_response(c, http1_status(err), "application/json", NULL, NULL, body, (size_t)n, false);
	conn_close_gracefully(c);
}

static void start_request(struct conn *c, struct h1 *h)
{
	struct http1_request *r = &h->parser.req;
	struct http_request *req = &h->req;
	memset(req, 0, sizeof(*req));
	req->conn = c;
	req->responder = &h1_responder;
	req->method = r->method;
	snprintf(req->path, sizeof(req->path), "%s", r->path);
	snprintf(req->content_type, sizeof(req->content_type), "%s", r->content_type);
	snprintf(req->authorization, sizeof(req->authorization), "%s", r->authorization);
	snprintf(req->cookie, sizeof(req->cookie), "%s", r->cookie);
	req->body = (const uint8_t *)r->body;
	req->body_len = r->body_len;
	h->keep_alive = r->keep_alive && !c->w->draining;
	h->busy = true;
	http_dispatch(req);
}

static void process(struct conn *c)
{
	struct h1 *h = c->session;
	if (h->processing)
		return;
	h->processing = true;
	while (!h->busy && h->in.len > 0 && c->state == CONN_OPEN) {
		ssize_t n = http1_parser_feed(&h->parser, (const char *)h->in.data, h->in.len);
		if (n < 0) {
			fail_request(c, (int)-n);
			break;
		}
		memmove(h->in.data, h->in.data + n, h->in.len - (size_t)n);
		h->in.len -= (size_t)n;
		if (!h->parser.complete)
			break; /* need more bytes */
		start_request(c, h);
	}
	h->processing = false;
}

static int h1_start(struct conn *c)
{
	struct h1 *h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	http1_parser_init(&h->parser, c->w->e->cfg.max_body);
	c->session = h;
	return 0;
}

static int h1_on_data(struct conn *c, const uint8_t *data, size_t len)
{
	struct h1 *h = c->session;
	if (buf_append(&h->in, data, len, c->w->e->cfg.max_body + H1_HEADER_SLACK) < 0) {
		if (!h->busy)
			fail_request(c, HTTP1_EBODY);
		return -1;
	}
	process(c);
	return 0;
}

static void h1_on_close(struct conn *c)
{
	struct h1 *h = c->session;
	if (h && h->busy && h->req.streaming)
		http_stream_gone(&h->req);
}

static void h1_release(struct conn *c)
{
	struct h1 *h = c->session;
	if (!h)
		return;
	http1_parser_release(&h->parser);
	buf_release(&h->in);
	free(h);
	c->session = NULL;
}

const struct conn_proto http1_proto = {
	.name = "http/1.1",
	.start = h1_start,
	.on_data = h1_on_data,
	.on_close = h1_on_close,
	.release = h1_release,
};
