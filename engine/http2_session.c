/*
 * engine/http2_session.c: HTTP/2 (h2c prior knowledge, or h2 over TLS).
 *
 * nghttp2 is the protocol engine, driven with mem_recv/mem_send: it never
 * sees the socket. Limits nghttp2 does not enforce are enforced here: the
 * header-list size per stream (431-style reset), the body size (413), and
 * our output (mem_send is pulled only while the connection's output is
 * below CONN_OUTPUT_HIGH). Rapid-reset and CONTINUATION flood limits use
 * the options Debian backported, when CMake found them.
 *
 * Stream state (`struct h2_stream`) lives on a per-session list and is
 * freed when both nghttp2 closed the stream and the API answered it (or
 * at session release). Pointers returned by mem_send are copied at once:
 * they are valid only until the next nghttp2 call.
 *
 * A streaming answer (http.h) submits its headers with a data provider
 * that returns NGHTTP2_ERR_DEFERRED while the stream's buffer is empty;
 * each write appends and resumes it. Ending submits EOF (or RST_STREAM
 * when aborting); a streaming stream the peer reset, or whose connection
 * closes, is reported with http_stream_gone().
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <nghttp2/nghttp2.h>

#include "build_config.h"
#include "http.h"
#include "log.h"
#include "server.h"

#define H2_MAX_HEADER_BYTES (16 * 1024)
#define H2_MAX_STREAMS 128

struct h2_stream {
	struct http_request req;
	int32_t id;
	struct buf body;
	size_t header_bytes;
	bool dispatched, closed;
	char *resp;        /* response body */
	size_t resp_len, resp_off;
	struct buf sbuf;   /* streaming: written, not yet taken by nghttp2 */
	bool stream_eof;
	struct h2_stream *prev, *next;
};

struct h2 {
	nghttp2_session *ng;
	struct conn *conn;
	struct h2_stream *streams;
};

static void pump(struct conn *c);

static void stream_unlink_free(struct h2 *h, struct h2_stream *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	buf_release(&s->body);
	buf_release(&s->sbuf);
	free(s->resp);
	free(s);
}

static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len,
			 uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct h2_stream *s = src->ptr;
	size_t n = s->resp_len - s->resp_off;
	if (n > len)
		n = len;
	memcpy(out, s->resp + s->resp_off, n);
	s->resp_off += n;
	if (s->resp_off == s->resp_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static void h2_respond(struct http_request *req, int status, const char *ctype,
		       const char *location, const char *body, size_t len)
{
	struct h2_stream *s = req->stream;
	struct conn *c = req->conn;
	struct h2 *h = c->session;
	if (s->closed) { /* reset by the peer while we worked */
		stream_unlink_free(h, s);
		return;
	}
	s->resp = malloc(len ? len : 1);
	if (!s->resp) {
		nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
		pump(c);
		return;
	}
	memcpy(s->resp, body, len);
	s->resp_len = len;
	char st[4], cl[24];
	snprintf(st, sizeof(st), "%d", status);
	snprintf(cl, sizeof(cl), "%zu", len);
	nghttp2_nv nv[5] = {
		{(uint8_t *)":status", (uint8_t *)st, 7, strlen(st), NGHTTP2_NV_FLAG_NONE},
		{(uint8_t *)"content-type", (uint8_t *)ctype, 12, strlen(ctype), NGHTTP2_NV_FLAG_NONE},
		{(uint8_t *)"content-length", (uint8_t *)cl, 14, strlen(cl), NGHTTP2_NV_FLAG_NONE},
		{(uint8_t *)"cache-control", (uint8_t *)"no-store", 13, 8, NGHTTP2_NV_FLAG_NONE},
	};
	size_t nvlen = 4;
	if (location)
		nv[nvlen++] = (nghttp2_nv){(uint8_t *)"location", (uint8_t *)location, 8,
					   strlen(location), NGHTTP2_NV_FLAG_NONE};
	if (req->set_cookie)
		nv[nvlen++] = (nghttp2_nv){(uint8_t *)"set-cookie", (uint8_t *)req->set_cookie, 10,
					   strlen(req->set_cookie), NGHTTP2_NV_FLAG_NONE};
	nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_body};
	if (nghttp2_submit_response(h->ng, s->id, nv, nvlen, &dp) != 0)
		nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
	pump(c);
}

/* Streaming body: what was written so far; deferred when empty until resumed. */
static ssize_t read_stream(nghttp2_session *ng, int32_t id, uint8_t *out, size_t len,
			   uint32_t *flags, nghttp2_data_source *src, void *user)
{
	struct h2_stream *s = src->ptr;
	if (s->sbuf.len == 0) {
		if (s->stream_eof) {
			*flags |= NGHTTP2_DATA_FLAG_EOF;
			return 0;
		}
		return NGHTTP2_ERR_DEFERRED;
	}
	size_t n = s->sbuf.len < len ? s->sbuf.len : len;
	memcpy(out, s->sbuf.data, n);
	memmove(s->sbuf.data, s->sbuf.data + n, s->sbuf.len - n);
	s->sbuf.len -= n;
	if (s->sbuf.len == 0 && s->stream_eof)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

static int h2_stream_start(struct http_request *req, const char *ctype)
{
	struct h2_stream *s = req->stream;
	struct h2 *h = req->conn->session;
	if (s->closed)
		return -EPIPE;
	nghttp2_nv nv[] = {
		{(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
		{(uint8_t *)"content-type", (uint8_t *)ctype, 12, strlen(ctype), NGHTTP2_NV_FLAG_NONE},
		{(uint8_t *)"cache-control", (uint8_t *)"no-store", 13, 8, NGHTTP2_NV_FLAG_NONE},
	};
	nghttp2_data_provider dp = {.source.ptr = s, .read_callback = read_stream};
	if (nghttp2_submit_response(h->ng, s->id, nv, 3, &dp) != 0)
		return -EIO;
	pump(req->conn);
	return 0;
}

static int h2_stream_write(struct http_request *req, const void *data, size_t len)
{
	struct h2_stream *s = req->stream;
	struct h2 *h = req->conn->session;
	if (s->closed)
		return -EPIPE;
	int ret = buf_append(&s->sbuf, data, len, CONN_MAX_OUTPUT);
	if (ret < 0)
		return ret;
	nghttp2_session_resume_data(h->ng, s->id);
	pump(req->conn);
	return 0;
}

static size_t h2_stream_pending(const struct http_request *req)
{
	const struct h2_stream *s = req->stream;
	return s->sbuf.len + conn_output_pending(req->conn);
}

static void h2_stream_end(struct http_request *req, bool abort)
{
	struct h2_stream *s = req->stream;
	struct conn *c = req->conn;
	struct h2 *h = c->session;
	if (s->closed) { /* reset by the peer: nghttp2 forgot it already */
		stream_unlink_free(h, s);
		return;
	}
	if (abort) {
		nghttp2_submit_rst_stream(h->ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
	} else {
		s->stream_eof = true;
		nghttp2_session_resume_data(h->ng, s->id);
	}
	pump(c); /* the stream is freed in on_stream_close */
}

static const struct http_responder h2_responder = {
	.respond = h2_respond,
	.stream_start = h2_stream_start,
	.stream_write = h2_stream_write,
	.stream_pending = h2_stream_pending,
	.stream_end = h2_stream_end,
};

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	struct h2 *h = user;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct h2_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	s->id = f->hd.stream_id;
	s->req.conn = h->conn;
	s->req.responder = &h2_responder;
	s->req.stream = s;
	s->req.method = "";
	s->next = h->streams;
	if (h->streams)
		h->streams->prev = s;
	h->streams = s;
	nghttp2_session_set_stream_user_data(ng, s->id, s);
	return 0;
}

static void copy_hdr(char *dst, size_t cap, const uint8_t *v, size_t len)
{
	if (len >= cap)
		len = cap - 1;
	memcpy(dst, v, len);
	dst[len] = 0;
}

static void append_cookie(struct http_request *r, const uint8_t *v, size_t len)
{
	size_t have = strlen(r->cookie);
	if (have && have + 2 < sizeof(r->cookie)) {
		memcpy(r->cookie + have, "; ", 2);
		have += 2;
	}
	if (have + len >= sizeof(r->cookie))
		len = sizeof(r->cookie) - 1 - have;
	memcpy(r->cookie + have, v, len);
	r->cookie[have + len] = 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	struct h2_stream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	if (!s)
		return 0;
	s->header_bytes += namelen + valuelen + 32;
	if (s->header_bytes > H2_MAX_HEADER_BYTES)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets this stream only */
	struct http_request *r = &s->req;
	if (namelen == 7 && !memcmp(name, ":method", 7)) {
		static const char *known[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"};
		r->method = "OTHER";
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (strlen(known[i]) == valuelen && !memcmp(known[i], value, valuelen))
				r->method = known[i];
	} else if (namelen == 5 && !memcmp(name, ":path", 5)) {
		if (valuelen >= sizeof(r->path))
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		copy_hdr(r->path, sizeof(r->path), value, valuelen);
	} else if (namelen == 12 && !memcmp(name, "content-type", 12)) {
		copy_hdr(r->content_type, sizeof(r->content_type), value, valuelen);
	} else if (namelen == 13 && !memcmp(name, "authorization", 13)) {
		copy_hdr(r->authorization, sizeof(r->authorization), value, valuelen);
	} else if (namelen == 6 && !memcmp(name, "cookie", 6)) {
		append_cookie(r, value, valuelen); /* HTTP/2 may split it (RFC 9113 8.2.3) */
	}
	return 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *user)
{
	struct h2 *h = user;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(ng, id);
	if (!s || s->req.body_too_large)
		return 0;
	if (buf_append(&s->body, data, len, h->conn->w->e->cfg.max_body) < 0) {
		s->req.body_too_large = true;
		buf_release(&s->body);
	}
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *user)
{
	if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	if (!s || s->dispatched)
		return 0;
	s->dispatched = true;
	s->req.body = s->body.data;
	s->req.body_len = s->body.len;
	http_dispatch(&s->req);
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
	struct h2 *h = user;
	struct h2_stream *s = nghttp2_session_get_stream_user_data(ng, id);
	if (!s)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	if (s->dispatched && !s->req.answered) {
		s->closed = true; /* freed when the API answers */
		if (s->req.streaming)
			http_stream_gone(&s->req); /* ends it, which frees s */
	} else {
		stream_unlink_free(h, s);
	}
	return 0;
}

static void set_flood_limits(nghttp2_option *opt)
{
#ifdef HAVE_NGHTTP2_STREAM_RESET_RATE_LIMIT
	nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
#endif
#ifdef HAVE_NGHTTP2_MAX_CONTINUATIONS
	nghttp2_option_set_max_continuations(opt, 8);
#endif
}

static int h2_start(struct conn *c)
{
	struct h2 *h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	h->conn = c;
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		goto out_free_h;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	if (nghttp2_option_new(&opt) != 0)
		goto out_free_cbs;
	set_flood_limits(opt);
	nghttp2_option_set_max_send_header_block_length(opt, 16384);
	int ret = nghttp2_session_server_new2(&h->ng, cbs, h, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (ret != 0)
		goto out_free_h;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, H2_MAX_STREAMS},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2_MAX_HEADER_BYTES},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
	};
	nghttp2_submit_settings(h->ng, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
	c->session = h;
	return 0;

out_free_cbs:
	nghttp2_session_callbacks_del(cbs);
out_free_h:
	free(h);
	return -1;
}

/* Pull frames out of nghttp2 into the connection while there is room. */
static void pump(struct conn *c)
{
	struct h2 *h = c->session;
	while (conn_output_pending(c) < CONN_OUTPUT_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(h->ng, &data);
		if (n < 0) {
			conn_close(c);
			return;
		}
		if (n == 0)
			break;
		if (conn_write(c, data, (size_t)n) < 0) {
			conn_close(c);
			return;
		}
	}
	conn_flush(c);
	if (!nghttp2_session_want_read(h->ng) && !nghttp2_session_want_write(h->ng) &&
	    conn_output_pending(c) == 0)
		conn_close_gracefully(c);
}

static int h2_on_data(struct conn *c, const uint8_t *data, size_t len)
{
	struct h2 *h = c->session;
	ssize_t n = nghttp2_session_mem_recv(h->ng, data, len);
	if (n < 0) {
		log_debug("msg=\"HTTP/2 protocol error\" conn=%lu err=%s", (unsigned long)c->id,
			  nghttp2_strerror((int)n));
		pump(c); /* GOAWAY, if nghttp2 queued one */
		return -1;
	}
	if (!conn_is_closing(c))
		pump(c);
	return 0;
}

static void h2_on_drain(struct conn *c)
{
	pump(c);
}

/* Streams still streaming end with the connection (freed at release). */
static void h2_on_close(struct conn *c)
{
	struct h2 *h = c->session;
	for (struct h2_stream *s = h ? h->streams : NULL; s; s = s->next)
		if (s->req.streaming && !s->req.answered)
			http_stream_gone(&s->req);
}

static void h2_release(struct conn *c)
{
	struct h2 *h = c->session;
	if (!h)
		return;
	nghttp2_session_del(h->ng);
	while (h->streams)
		stream_unlink_free(h, h->streams);
	free(h);
	c->session = NULL;
}

const struct conn_proto http2_proto = {
	.name = "h2",
	.start = h2_start,
	.on_data = h2_on_data,
	.on_drain = h2_on_drain,
	.on_close = h2_on_close,
	.release = h2_release,
};
