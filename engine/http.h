/*
 * engine/http.h: one HTTP request, whichever protocol carried it.
 *
 * The HTTP/1.1 and HTTP/2 sessions turn bytes into `struct http_request`
 * and hand each complete request to api_handle(). The handler answers
 * exactly once, now or later (after Redis replied), with http_respond().
 *
 * Ownership: the session owns the request. A dispatched request holds a
 * reference on its connection until it is answered; if the connection
 * closed or the stream was reset meanwhile, the answer is dropped and the
 * session frees the request. Handlers must not keep the pointer after
 * answering.
 *
 * Streaming (server-sent events): instead of answering, a handler may call
 * http_stream_start(); the request then stays open (holding its connection
 * reference) and http_stream_write() appends body bytes: HTTP/1.1 sends
 * them raw with "Connection: close" (the body ends when the connection
 * does), HTTP/2 as DATA frames through a deferred data provider. The
 * stream ends exactly once: by the handler (http_stream_end), or because
 * the peer went away, in which case the session calls the handler's
 * on_gone first (the handler must forget the request there, and must not
 * call http_stream_end for it). Each stream's unsent bytes are capped by
 * the caller, via http_stream_pending(): a slow reader is dropped, never
 * buffered without bound.
 */
#ifndef TOCSIN_HTTP_H
#define TOCSIN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"

struct http_request;

struct http_responder {
	/* Write status, headers and body for req; called once per request. */
	void (*respond)(struct http_request *req, int status, const char *content_type,
			const char *location, const char *body, size_t len);
	/* Streaming: 200 + headers with no length; body bytes; the end (abort: reset). */
	int (*stream_start)(struct http_request *req, const char *content_type);
	int (*stream_write)(struct http_request *req, const void *data, size_t len);
	size_t (*stream_pending)(const struct http_request *req);
	void (*stream_end)(struct http_request *req, bool abort);
};

/* The stream's peer is gone (connection closed, stream reset): forget req. */
typedef void (*http_gone_cb)(struct http_request *req, void *arg);

struct http_request {
	struct conn *conn;
	const struct http_responder *responder;
	void *stream;                /* the session's per-request state */
	const char *method;          /* "GET", "POST", ... */
	char path[1024];
	char content_type[128];
	char authorization[512];
	char cookie[1024];
	const char *set_cookie;      /* answer with this Set-Cookie value (static or req-owned) */
	char set_cookie_buf[512];
	const uint8_t *body;         /* owned by the session */
	size_t body_len;
	bool body_too_large;         /* the session stopped buffering at max_body */
	bool answered;
	bool streaming;              /* http_stream_start() succeeded */
	http_gone_cb on_gone;
	void *gone_arg;
	uint64_t start_ms;
};

extern const struct conn_proto http1_proto;
extern const struct conn_proto http2_proto;

/* Session side: hand a complete request to the API (takes a conn reference). */
void http_dispatch(struct http_request *req);

/* Answer with a body (copied). */
void http_respond(struct http_request *req, int status, const char *content_type,
		  const char *location, const char *body, size_t len);
/* Answer with JSON {"error": code, "field": field?, "reason": reason}. */
void http_respond_error(struct http_request *req, int status, const char *code,
			const char *field, const char *reason);

/*
 * Streaming (see the top of this file). start: 0, or -errno (nothing was
 * sent; answer normally instead). write: 0, or -ENOBUFS / -EPIPE (end the
 * stream). pending: bytes written and not yet sent to the peer.
 * end: once; abort closes (HTTP/1.1) or resets (HTTP/2) instead of a
 * clean end. After end, req must not be used.
 */
int http_stream_start(struct http_request *req, const char *content_type, http_gone_cb on_gone,
		      void *arg);
int http_stream_write(struct http_request *req, const void *data, size_t len);
size_t http_stream_pending(const struct http_request *req);
void http_stream_end(struct http_request *req, bool abort);
/* Session side: the connection or stream closed under a streaming request. */
void http_stream_gone(struct http_request *req);

const char *http_status_text(int status);

#endif
