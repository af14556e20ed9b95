/*
 * tests/unit/test_push_payload.c: proto/push_payload.c: APNs / FCM /
 * webhook bodies are valid JSON (checked with jansson), the APNs payload
 * stays under 4096 bytes with a very long Chinese text cut at a UTF-8
 * boundary, and provider answers map to the right verdicts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "push_payload.h"

static struct push_msg msg(const char *body)
{
	return (struct push_msg){.warning_id = "CN-0001", .title = "台风\"红色\"预警\n", .body = body,
				 .severity = "Extreme", .colour = "red", .language = "zh-CN",
				 .token = "abcd", .interruption_level = "critical", .sound = "default",
				 .expires = 1700003600, .ttl_s = 3600};
}

static json_t *parse(const char *s, int n)
{
	assert_true(n > 0);
	assert_int_equal((int)strlen(s), n);
	json_error_t e;
	json_t *j = json_loadb(s, (size_t)n, 0, &e);
	if (!j)
		fail_msg("invalid JSON: %s: %s", e.text, s);
	return j;
}

static void test_apns_short(void **state)
{
	char out[8192];
	struct push_msg m = msg("请立即撤离。");
	json_t *j = parse(out, push_apns_payload(out, sizeof(out), &m));
	json_t *aps = json_object_get(j, "aps");
	assert_string_equal(json_string_value(json_object_get(json_object_get(aps, "alert"), "title")),
			    "台风\"红色\"预警\n");
	assert_string_equal(json_string_value(json_object_get(json_object_get(aps, "alert"), "body")),
			    "请立即撤离。");
	assert_string_equal(json_string_value(json_object_get(aps, "interruption-level")), "critical");
	assert_string_equal(json_string_value(json_object_get(j, "warning_id")), "CN-0001");
	json_decref(j);
}

static void test_apns_long_chinese(void **state)
{
	static char body[30001];
	for (size_t i = 0; i + 3 <= 30000; i += 3)
		memcpy(body + i, "灾", 3);
	body[30000] = 0;
	char out[8192];
	struct push_msg m = msg(body);
	int n = push_apns_payload(out, sizeof(out), &m);
	assert_true(n < PUSH_APNS_MAX_PAYLOAD);
	assert_true(n > PUSH_APNS_MAX_PAYLOAD - 16); /* it used the room */
	json_t *j = parse(out, n);                   /* jansson rejects broken UTF-8 */
	const char *b = json_string_value(
		json_object_get(json_object_get(json_object_get(j, "aps"), "alert"), "body"));
	size_t bl = strlen(b);
	assert_true(bl % 3 == 0);
	assert_memory_equal(b + bl - 3, "…", 3);
	json_decref(j);
}

static void test_escape_and_bad_utf8(void **state)
{
	char out[64];
	bool cut;
	size_t n = push_json_escape(out, sizeof(out), "a\"b\\c\x01\xff", SIZE_MAX, &cut);
	assert_false(cut);
	assert_string_equal(out, "a\\\"b\\\\c\\u0001\xEF\xBF\xBD");
	assert_int_equal(n, strlen(out));
	n = push_json_escape(out, sizeof(out), "灾灾", 5, &cut); /* never half a character */
	assert_true(cut);
	assert_int_equal(n, 3);
}

static void test_fcm_and_webhook(void **state)
{
	char out[8192];
	struct push_msg m = msg("Evacuate now.");
	json_t *j = parse(out, push_fcm_payload(out, sizeof(out), &m));
	json_t *mm = json_object_get(j, "message");
	assert_string_equal(json_string_value(json_object_get(mm, "token")), "abcd");
	json_t *a = json_object_get(mm, "android");
	assert_string_equal(json_string_value(json_object_get(a, "priority")), "HIGH");
	assert_string_equal(json_string_value(json_object_get(a, "ttl")), "3600s");
	assert_string_equal(json_string_value(json_object_get(a, "collapse_key")), "CN-0001");
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(mm, "data"), "warning_id")), "CN-0001");
	json_decref(j);
	j = parse(out, push_webhook_payload(out, sizeof(out), &m));
	assert_int_equal(json_integer_value(json_object_get(j, "expires")), 1700003600);
	assert_true(json_is_false(json_object_get(j, "drill")));
	assert_string_equal(json_string_value(json_object_get(j, "colour")), "red");
	json_decref(j);
	assert_int_equal(push_fcm_payload(out, 40, &m), -1);
}

static enum push_verdict cl(enum push_provider p, int status, const char *body, const char *ra,
			    uint32_t *ms, char *reason)
{
	return push_classify(p, status, body, body ? strlen(body) : 0, ra, ms, reason, 64);
}

static void test_classify(void **state)
{
	uint32_t ms;
	char r[64];
	assert_int_equal(cl(PUSH_APNS, 200, NULL, NULL, &ms, r), PUSH_V_ACCEPTED);
	assert_int_equal(cl(PUSH_APNS, 410, "{\"reason\":\"Unregistered\",\"timestamp\":1}", NULL, &ms, r),
			 PUSH_V_DEAD_TOKEN);
	assert_string_equal(r, "Unregistered");
	assert_int_equal(cl(PUSH_APNS, 400, "{\"reason\":\"BadDeviceToken\"}", NULL, &ms, r),
			 PUSH_V_DEAD_TOKEN);
	assert_int_equal(cl(PUSH_APNS, 400, "{\"reason\":\"BadCollapseId\"}", NULL, &ms, r),
			 PUSH_V_PERMANENT);
	assert_int_equal(cl(PUSH_APNS, 403, "{\"reason\":\"ExpiredProviderToken\"}", NULL, &ms, r),
			 PUSH_V_REFRESH_AUTH);
	assert_int_equal(cl(PUSH_APNS, 429, "{\"reason\":\"TooManyRequests\"}", "7", &ms, r),
			 PUSH_V_THROTTLED);
	assert_int_equal(ms, 7000);
	assert_int_equal(cl(PUSH_APNS, 503, NULL, NULL, &ms, r), PUSH_V_THROTTLED);
	assert_int_equal(ms, 1000);
	assert_int_equal(cl(PUSH_APNS, 503, NULL, "Wed, 21 Oct 2015 07:28:00 GMT", &ms, r),
			 PUSH_V_THROTTLED);
	assert_int_equal(ms, 1000);
	assert_int_equal(cl(PUSH_APNS, 500, "{\"reason\":\"InternalServerError\"}", NULL, &ms, r),
			 PUSH_V_TRANSIENT);
	assert_int_equal(cl(PUSH_FCM, 404,
			    "{\"error\":{\"code\":404,\"status\":\"NOT_FOUND\",\"details\":[{\"errorCode\":"
			    "\"UNREGISTERED\"}]}}", NULL, &ms, r), PUSH_V_DEAD_TOKEN);
	assert_string_equal(r, "UNREGISTERED");
	assert_int_equal(cl(PUSH_FCM, 400,
			    "{\"error\":{\"code\":400,\"message\":\"The registration token is not a valid "
			    "FCM registration token\",\"status\":\"INVALID_ARGUMENT\"}}", NULL, &ms, r),
			 PUSH_V_DEAD_TOKEN);
	assert_int_equal(cl(PUSH_FCM, 400,
			    "{\"error\":{\"code\":400,\"message\":\"Invalid JSON payload received.\","
			    "\"status\":\"INVALID_ARGUMENT\"}}", NULL, &ms, r), PUSH_V_PERMANENT);
	assert_int_equal(cl(PUSH_FCM, 429, "{\"error\":{\"status\":\"RESOURCE_EXHAUSTED\"}}", " 30 ", &ms, r),
			 PUSH_V_THROTTLED);
	assert_int_equal(ms, 30000);
	assert_int_equal(cl(PUSH_WEBHOOK, 502, "<html>", NULL, &ms, r), PUSH_V_TRANSIENT);
	assert_string_equal(r, "http 502");
	assert_int_equal(push_retry_after_ms("999999999999", 12), 3600000);
}

static void test_find_string(void **state)
{
	char out[16];
	const char *j = "{\"a\":1,\"reason\" : \"Bad\\\"Tok\\u00e9\"}";
	assert_true(push_json_find_string(j, strlen(j), "reason", out, sizeof(out)));
	assert_string_equal(out, "Bad\"Tok?");
	assert_false(push_json_find_string(j, strlen(j) - 3, "reason", out, sizeof(out)));
	assert_false(push_json_find_string("{\"reason\":5}", 12, "reason", out, sizeof(out)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apns_short),
		cmocka_unit_test(test_apns_long_chinese),
		cmocka_unit_test(test_escape_and_bad_utf8),
		cmocka_unit_test(test_fcm_and_webhook),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_find_string),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
