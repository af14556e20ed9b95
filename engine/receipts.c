/*
 * engine/receipts.c: the app acknowledgement endpoint (see receipts.h).
 * The stream is capped (MAXLEN ~ 1,000,000) so a flood cannot fill Redis.
 */
#include "receipts.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "server.h"
#include "warning_codec.h"

static void on_appended(void *arg, redisReply *r)
{
	struct http_request *req = arg;
	if (!r || r->type == REDIS_REPLY_ERROR)
		return http_respond_error(req, 503, "journal_unavailable", NULL,
					  "the receipt could not be recorded; retry");
	http_respond(req, 204, "application/json", NULL, "", 0);
}

static bool token_ok(const char *t)
{
	static const char *prefixes[] = {"apns:", "fcm:", "webhook:"};
	size_t n = strlen(t);
	if (n > 1100)
		return false;
	for (size_t i = 0; i < 3; i++)
		if (!strncmp(t, prefixes[i], strlen(prefixes[i])) && n > strlen(prefixes[i]))
			return !strpbrk(t, ";,\t\r\n ");
	return false;
}

void receipts_post(struct worker *w, struct http_request *req)
{
	if (strncasecmp(req->content_type, "application/json", 16))
		return http_respond_error(req, 415, "unsupported_media_type", "content-type",
					  "expected application/json");
	if (req->body_too_large || req->body_len > 4096)
		return http_respond_error(req, 413, "too_large", NULL, "a receipt is under 4 KiB");
	json_error_t jerr;
	json_t *j = json_loadb((const char *)req->body, req->body_len, 0, &jerr);
	const char *id = json_string_value(json_object_get(j, "warning_id"));
	const char *token = json_string_value(json_object_get(j, "token"));
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return http_respond_error(req, 400, "malformed", NULL, "body is not a JSON object");
	}
	if (!id || !warning_id_valid(id, strlen(id))) {
		json_decref(j);
		return http_respond_error(req, 400, "invalid_field", "warning_id",
					  "must be a warning identifier");
	}
	if (!token || !token_ok(token)) {
		json_decref(j);
		return http_respond_error(req, 400, "invalid_field", "token",
					  "must be apns:TOKEN, fcm:TOKEN or webhook:TOKEN");
	}
	char stream[128];
	snprintf(stream, sizeof(stream), "%sreceipts", w->e->cfg.prefix);
	const char *argv[] = {"XADD", stream, "MAXLEN", "~", "1000000", "*",
			      "warning", id, "address", token};
	size_t lens[10];
	for (int i = 0; i < 10; i++)
		lens[i] = strlen(argv[i]);
	int ret = redis_command(&w->redis, on_appended, req, 10, argv, lens);
	json_decref(j);
	if (ret < 0)
		http_respond_error(req, 503, "journal_unavailable", NULL, "Redis is not reachable");
}
