/*
 * proto/http1.c: HTTP/1.1 request codec (see http1.h for the contract).
 *
 * Why libhttp-parser: it is packaged, fuzzed upstream, and handles chunked
 * bodies and the corner cases of the grammar; we add only the caps, the
 * stop-after-each-request behaviour and the few headers the engine reads.
 *
 * Invariant: header and body bytes are counted before they are copied, so
 * no amount of input grows memory past HTTP1_MAX_HEADER_BYTES + body_cap.
 */
#include "http1.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static struct http1_parser *P(http_parser *hp)
{
	return hp->data;
}

static int fail(http_parser *hp, int err)
{
	P(hp)->err = err;
	return -1;
}

static int on_message_begin(http_parser *hp)
{
	struct http1_parser *p = P(hp);
	p->header_bytes = 0;
	return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
	struct http1_parser *p = P(hp);
	size_t have = strlen(p->req.path);
	p->header_bytes += len;
	if (p->header_bytes > HTTP1_MAX_HEADER_BYTES)
		return fail(hp, HTTP1_EHEADERS);
	if (have + len >= sizeof(p->req.path))
		return fail(hp, HTTP1_EHEADERS);
	memcpy(p->req.path + have, at, len);
	p->req.path[have + len] = 0;
	return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
	struct http1_parser *p = P(hp);
	p->header_bytes += len;
	if (p->header_bytes > HTTP1_MAX_HEADER_BYTES)
		return fail(hp, HTTP1_EHEADERS);
	if (p->in_value) { /* a new field starts */
		p->in_value = false;
		p->field_len = 0;
		p->value_dst = NULL;
	}
	for (size_t i = 0; i < len; i++) {
		if (p->field_len < sizeof(p->field) - 1)
			p->field[p->field_len] = at[i];
		p->field_len++;
	}
	return 0;
}

static void pick_value_dst(struct http1_parser *p)
{
	size_t n = p->field_len < sizeof(p->field) ? p->field_len : sizeof(p->field) - 1;
	p->field[n] = 0;
	p->value_dst = NULL;
	p->value_len = 0;
	if (p->field_len >= sizeof(p->field))
		return;
	if (strcasecmp(p->field, "content-type") == 0) {
		p->value_dst = p->req.content_type;
		p->value_cap = sizeof(p->req.content_type);
	} else if (strcasecmp(p->field, "authorization") == 0) {
		p->value_dst = p->req.authorization;
		p->value_cap = sizeof(p->req.authorization);
	} else if (strcasecmp(p->field, "cookie") == 0) {
		p->value_dst = p->req.cookie;
		p->value_cap = sizeof(p->req.cookie);
	}
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
	struct http1_parser *p = P(hp);
	p->header_bytes += len;
	if (p->header_bytes > HTTP1_MAX_HEADER_BYTES)
		return fail(hp, HTTP1_EHEADERS);
	if (!p->in_value) {
		p->in_value = true;
		pick_value_dst(p);
	}
	if (!p->value_dst)
		return 0;
	if (p->value_len + len >= p->value_cap)
		return fail(hp, HTTP1_EHEADERS);
	memcpy(p->value_dst + p->value_len, at, len);
	p->value_len += len;
	p->value_dst[p->value_len] = 0;
	return 0;
}

static int on_headers_complete(http_parser *hp)
{
	struct http1_parser *p = P(hp);
	/* Refuse a declared oversized body before reading any of it. */
	if ((hp->flags & F_CONTENTLENGTH) && hp->content_length > p->body_cap)
		return fail(hp, HTTP1_EBODY);
	return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
	struct http1_parser *p = P(hp);
	struct http1_request *r = &p->req;
	if (r->body_len + len > p->body_cap)
		return fail(hp, HTTP1_EBODY);
	if (r->body_len + len + 1 > p->body_alloc) {
		size_t want = p->body_alloc ? p->body_alloc * 2 : 4096;
		while (want < r->body_len + len + 1)
			want *= 2;
		if (want > p->body_cap + 1)
			want = p->body_cap + 1;
		char *nb = realloc(r->body, want);
		if (!nb)
			return fail(hp, HTTP1_ENOMEM);
		r->body = nb;
		p->body_alloc = want;
	}
	memcpy(r->body + r->body_len, at, len);
	r->body_len += len;
	r->body[r->body_len] = 0;
	return 0;
}

static int on_message_complete(http_parser *hp)
{
	struct http1_parser *p = P(hp);
	p->req.method = http_method_str(hp->method);
	p->req.keep_alive = http_should_keep_alive(hp);
	p->complete = true;
	http_parser_pause(hp, 1); /* one request at a time */
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

static void request_clear(struct http1_parser *p)
{
	free(p->req.body);
	memset(&p->req, 0, sizeof(p->req));
	p->body_alloc = 0;
	p->field_len = 0;
	p->in_value = false;
	p->value_dst = NULL;
	p->complete = false;
}

void http1_parser_init(struct http1_parser *p, size_t body_cap)
{
	memset(p, 0, sizeof(*p));
	http_parser_init(&p->hp, HTTP_REQUEST);
	p->hp.data = p;
	p->body_cap = body_cap;
}

void http1_parser_release(struct http1_parser *p)
{
	request_clear(p);
}

void http1_parser_next(struct http1_parser *p)
{
	request_clear(p);
	http_parser_pause(&p->hp, 0);
}

ssize_t http1_parser_feed(struct http1_parser *p, const char *buf, size_t len)
{
	if (p->err)
		return -p->err;
	if (p->complete)
		return 0;
	size_t n = http_parser_execute(&p->hp, &settings, buf, len);
	enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
	if (e == HPE_OK || e == HPE_PAUSED)
		return (ssize_t)n;
	if (!p->err)
		p->err = HTTP1_EMALFORMED;
	return -p->err;
}

const char *http1_strerror(int err)
{
	switch (err) {
	case HTTP1_OK: return "ok";
	case HTTP1_EMALFORMED: return "malformed HTTP/1.1 request";
	case HTTP1_EHEADERS: return "request header block too large";
	case HTTP1_EBODY: return "request body too large";
	case HTTP1_ENOMEM: return "out of memory";
	}
	return "unknown error";
}

int http1_status(int err)
{
	switch (err) {
	case HTTP1_EHEADERS: return 431;
	case HTTP1_EBODY: return 413;
	case HTTP1_ENOMEM: return 503;
	default: return 400;
	}
}
