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
};

struct http_request {
	struct conn *conn;
	const struct http_responder *responder;
	void *stream;                /* the session's per-request state */
	const char *method;          /* "GET", "POST", ... */
	char path[1024];
	char content_type[128];
	char authorization[512];
	const uint8_t *body;         /* owned by the session */
	size_t body_len;
	bool body_too_large;         /* the session stopped buffering at max_body */
	bool answered;
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

const char *http_status_text(int status);

#endif
