/*
 * proto/http1.h: HTTP/1.1 request codec on top of libhttp-parser.
 *
 * Pure: bytes in, one complete request out, no I/O. The parser stops right
 * after each complete request (so the caller answers requests in order and
 * can hold back pipelined ones while a response is pending), and caps the
 * header block and the body before buffering them.
 *
 * Feed/drain contract:
 *   n = http1_parser_feed(p, buf, len);
 *   n >= 0: n bytes consumed; if p->complete, p->req holds one request
 *           whose pointers stay valid until http1_parser_next() or
 *           http1_parser_release(). Unconsumed bytes must be fed again.
 *   n < 0:  -HTTP1_E*: the connection must answer with the matching status
 *           (http1_strerror / http1_status) and close.
 */
#ifndef TOCSIN_HTTP1_H
#define TOCSIN_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <http_parser.h>

#define HTTP1_MAX_HEADER_BYTES (16 * 1024)
#define HTTP1_MAX_PATH 1024

enum http1_err {
	HTTP1_OK = 0,
	HTTP1_EMALFORMED = 1,   /* 400 */
	HTTP1_EHEADERS = 2,     /* 431: header block over HTTP1_MAX_HEADER_BYTES */
	HTTP1_EBODY = 3,        /* 413: body over the cap */
	HTTP1_ENOMEM = 4,       /* 503 */
};

struct http1_request {
	const char *method;          /* "GET", "POST", ... (static string) */
	char path[HTTP1_MAX_PATH];   /* request target, NUL-terminated */
	char content_type[128];      /* "" when absent */
	char authorization[512];     /* "" when absent */
	char cookie[1024];           /* "" when absent; a longer Cookie header is 431 */
	char *body;                  /* malloc'd, NUL-terminated; NULL when empty */
	size_t body_len;
	bool keep_alive;
};

struct http1_parser {
	http_parser hp;
	struct http1_request req;
	bool complete;      /* a full request is in req */
	int err;            /* enum http1_err once failed */
	size_t body_cap;
	size_t body_alloc;
	size_t header_bytes;
	/* header being parsed: which of our buffers its value goes to */
	char field[32];
	size_t field_len;
	bool in_value;
	char *value_dst;
	size_t value_cap;
	size_t value_len;
};

void http1_parser_init(struct http1_parser *p, size_t body_cap);
void http1_parser_release(struct http1_parser *p);
/* Forget the completed request and get ready for the next one on the connection. */
void http1_parser_next(struct http1_parser *p);
ssize_t http1_parser_feed(struct http1_parser *p, const char *buf, size_t len);

const char *http1_strerror(int err);
int http1_status(int err); /* HTTP status to answer an error with */

#endif
