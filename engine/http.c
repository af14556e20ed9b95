/*
 * engine/http.c: the protocol-independent part of a request's life:
 * dispatch to the API, answers, error bodies, status texts.
 */
#include "http.h"

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

const char *http_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
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
