/*
 * engine/http.c: the protocol-independent part of a request's life:
 * dispatch to the API, answers, error bodies, status texts.
 */
#include "http.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "api.h"
#include "server.h"

void http_dispatch(struct http_request *req)
{
	conn_ref(req->conn);
	req->start_ms = loop_now_ms(&req->conn->w->loop);
	req->conn->w->stats.requests++;
	api_handle(req->conn->w, req);
}

void http_respond(struct http_request *req, int status, const char *content_type,
		  const char *location, const char *body, size_t len)
{
	struct conn *c = req->conn;
	if (req->answered)
		return;
	req->answered = true;
	if (!conn_is_closing(c))
		req->responder->respond(req, status, content_type, location, body, len);
	conn_unref(c); /* may free the connection and the request with it */
}

void http_respond_error(struct http_request *req, int status, const char *code,
			const char *field, const char *reason)
{
	json_t *j = json_object();
	json_object_set_new(j, "error", json_string(code));
	if (field)
		json_object_set_new(j, "field", json_string(field));
	if (reason)
		json_object_set_new(j, "reason", json_string(reason));
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s) {
		static const char oom[] = "{\"error\":\"internal\"}";
		http_respond(req, 500, "application/json", NULL, oom, sizeof(oom) - 1);
		return;
	}
	http_respond(req, status, "application/json", NULL, s, strlen(s));
	free(s);
}

int http_stream_start(struct http_request *req, const char *content_type, http_gone_cb on_gone,
		      void *arg)
{
	if (req->answered || req->streaming || conn_is_closing(req->conn) ||
	    !req->responder->stream_start)
		return -EINVAL;
	int ret = req->responder->stream_start(req, content_type);
	if (ret < 0)
		return ret;
	req->streaming = true;
	req->on_gone = on_gone;
	req->gone_arg = arg;
	return 0;
}

int http_stream_write(struct http_request *req, const void *data, size_t len)
{
	if (!req->streaming || req->answered || conn_is_closing(req->conn))
		return -EPIPE;
	conn_touch(req->conn); /* a live stream is not an idle connection */
	return req->responder->stream_write(req, data, len);
}

size_t http_stream_pending(const struct http_request *req)
{
	return req->responder->stream_pending(req);
}

void http_stream_end(struct http_request *req, bool abort)
{
	struct conn *c = req->conn;
	if (!req->streaming || req->answered)
		return;
	req->answered = true;
	req->on_gone = NULL;
	if (!conn_is_closing(c))
		req->responder->stream_end(req, abort); /* may free req */
	conn_unref(c);
}

void http_stream_gone(struct http_request *req)
{
	if (!req->streaming || req->answered)
		return;
	http_gone_cb cb = req->on_gone;
	req->on_gone = NULL;
	if (cb)
		cb(req, req->gone_arg);
	http_stream_end(req, true);
}

const char *http_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 303: return "See Other";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	}
	return "Unknown";
}
