/*
 * tests/unit/test_http1.c: proto/http1.c — one request at a time, bodies
 * (Content-Length and chunked), pipelining, byte-by-byte input, the header
 * and body caps (refused before buffering), malformed input, the captured
 * headers, keep-alive, and the error-to-status mapping.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http1.h"

#define CAP 65536

/* Feed all of s in one call; returns what feed returned. */
static ssize_t feed_str(struct http1_parser *p, const char *s)
{
	return http1_parser_feed(p, s, strlen(s));
}

static void test_get(void **state)
{
	struct http1_parser p;
	const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	http1_parser_init(&p, CAP);
	assert_int_equal(feed_str(&p, req), strlen(req));
	assert_true(p.complete);
	assert_string_equal(p.req.method, "GET");
	assert_string_equal(p.req.path, "/healthz");
	assert_null(p.req.body);
	assert_int_equal(p.req.body_len, 0);
	assert_string_equal(p.req.content_type, "");
	assert_string_equal(p.req.authorization, "");
	assert_true(p.req.keep_alive);
	/* Complete and not yet released: further input is not consumed. */
	assert_int_equal(feed_str(&p, req), 0);
	http1_parser_release(&p);
}

static void test_post_content_length(void **state)
{
	struct http1_parser p;
	const char *req = "POST /v1/warnings?x=1 HTTP/1.1\r\nHost: x\r\n"
			  "Content-Type: application/x-protobuf\r\n"
			  "Authorization: Bearer abc.def\r\n"
			  "Content-Length: 5\r\n\r\nhello";
	http1_parser_init(&p, CAP);
	assert_int_equal(feed_str(&p, req), strlen(req));
	assert_true(p.complete);
	assert_string_equal(p.req.method, "POST");
	assert_string_equal(p.req.path, "/v1/warnings?x=1");
	assert_string_equal(p.req.content_type, "application/x-protobuf");
	assert_string_equal(p.req.authorization, "Bearer abc.def");
	assert_int_equal(p.req.body_len, 5);
	assert_memory_equal(p.req.body, "hello", 5);
	assert_int_equal(p.req.body[5], '\0');
	http1_parser_release(&p);
}

static void test_header_names_case_insensitive(void **state)
{
	struct http1_parser p;
	const char *req = "POST / HTTP/1.1\r\ncOnTeNt-TyPe: text/plain\r\n"
			  "AUTHORIZATION: Basic Zm9v\r\nX-Other: 1\r\nContent-Length: 0\r\n\r\n";
	http1_parser_init(&p, CAP);
	assert_int_equal(feed_str(&p, req), strlen(req));
	assert_true(p.complete);
	assert_string_equal(p.req.content_type, "text/plain");
	assert_string_equal(p.req.authorization, "Basic Zm9v");
	http1_parser_release(&p);
}

static void test_chunked(void **state)
{
	struct http1_parser p;
	const char *req = "POST /v1/warnings HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
	http1_parser_init(&p, CAP);
	assert_int_equal(feed_str(&p, req), strlen(req));
	assert_true(p.complete);
	assert_int_equal(p.req.body_len, 12);
	assert_string_equal(p.req.body, "hello, world");
	http1_parser_release(&p);
}

static void test_pipelined(void **state)
{
	struct http1_parser p;
	const char *a = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
	const char *b = "GET /b HTTP/1.1\r\n\r\n";
	char both[256];
	snprintf(both, sizeof(both), "%s%s", a, b);

	http1_parser_init(&p, CAP);
	ssize_t n = feed_str(&p, both);
	assert_int_equal(n, strlen(a)); /* stops right after the first request */
	assert_true(p.complete);
	assert_string_equal(p.req.path, "/a");
	assert_string_equal(p.req.body, "abc");

	http1_parser_next(&p);
	assert_false(p.complete);
	assert_null(p.req.body);
	ssize_t m = http1_parser_feed(&p, both + n, strlen(both) - n);
	assert_int_equal(m, strlen(b));
	assert_true(p.complete);
	assert_string_equal(p.req.method, "GET");
	assert_string_equal(p.req.path, "/b");
	assert_int_equal(p.req.body_len, 0);
	http1_parser_release(&p);
}

static void test_byte_by_byte(void **state)
{
	struct http1_parser p;
	const char *req = "POST /v1/warnings HTTP/1.1\r\nContent-Type: application/x-protobuf\r\n"
			  "Authorization: Bearer t0k3n\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
	size_t len = strlen(req), i;
	http1_parser_init(&p, CAP);
	for (i = 0; i < len && !p.complete; i++)
		assert_int_equal(http1_parser_feed(&p, req + i, 1), 1);
	assert_int_equal(i, len);
	assert_true(p.complete);
	assert_string_equal(p.req.path, "/v1/warnings");
	assert_string_equal(p.req.content_type, "application/x-protobuf");
	assert_string_equal(p.req.authorization, "Bearer t0k3n");
	assert_string_equal(p.req.body, "abcde");
	http1_parser_release(&p);
}

static void test_header_block_cap(void **state)
{
	struct http1_parser p;
	size_t vlen = HTTP1_MAX_HEADER_BYTES + 100;
	char *req = malloc(vlen + 128);
	int off = sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
	memset(req + off, 'a', vlen);
	strcpy(req + off + vlen, "\r\n\r\n");

	http1_parser_init(&p, CAP);
	ssize_t n = feed_str(&p, req);
	assert_int_equal(n, -HTTP1_EHEADERS);
	assert_false(p.complete);
	assert_int_equal(http1_status(-n), 431);
	/* The error sticks. */
	assert_int_equal(feed_str(&p, "GET / HTTP/1.1\r\n\r\n"), -HTTP1_EHEADERS);
	http1_parser_release(&p);

	/*
	 * Many small headers add up to the same cap. The parser counts the
	 * bytes of names, values and the target (not ": " and CRLFs), so
	 * send more than HTTP1_MAX_HEADER_BYTES of those.
	 */
	char *many = malloc(HTTP1_MAX_HEADER_BYTES * 2);
	size_t counted = 1;
	off = sprintf(many, "GET / HTTP/1.1\r\n");
	while (counted <= HTTP1_MAX_HEADER_BYTES + 64) {
		off += sprintf(many + off, "X-H: 0123456789\r\n");
		counted += 3 + 10;
	}
	strcpy(many + off, "\r\n");
	http1_parser_init(&p, CAP);
	assert_int_equal(feed_str(&p, many), -HTTP1_EHEADERS);
	http1_parser_release(&p);
	free(many);
	free(req);
}

static void test_declared_body_over_cap(void **state)
{
	struct http1_parser p;
	/* Only the header block arrives: refused before any body byte. */
	const char *req = "POST /v1/warnings HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
	http1_parser_init(&p, 100);
	ssize_t n = feed_str(&p, req);
	assert_int_equal(n, -HTTP1_EBODY);
	assert_int_equal(http1_status(-n), 413);
	assert_null(p.req.body);
	http1_parser_release(&p);

	/* Exactly at the cap is fine. */
	char ok[256];
	int off = sprintf(ok, "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n");
	memset(ok + off, 'b', 100);
	ok[off + 100] = 0;
	http1_parser_init(&p, 100);
	assert_int_equal(feed_str(&p, ok), off + 100);
	assert_true(p.complete);
	assert_int_equal(p.req.body_len, 100);
	http1_parser_release(&p);
}

static void test_chunked_over_cap(void **state)
{
	struct http1_parser p;
	const char *req = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
			  "8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n";
	http1_parser_init(&p, 12);
	assert_int_equal(feed_str(&p, req), -HTTP1_EBODY);
	assert_false(p.complete);
	assert_true(p.req.body_len <= 12);
	http1_parser_release(&p);

	http1_parser_init(&p, 16);
	assert_int_equal(feed_str(&p, req), strlen(req));
	assert_true(p.complete);
	assert_string_equal(p.req.body, "0123456789abcdef");
	http1_parser_release(&p);
}

static void test_malformed(void **state)
{
	static const char *bad[] = {
		"GARBAGE\r\n\r\n",
		"GET / HTTP/9.x\r\n\r\n",
		"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http1_parser p;
		http1_parser_init(&p, CAP);
		ssize_t n = feed_str(&p, bad[i]);
		if (n != -HTTP1_EMALFORMED)
			fail_msg("case %zu: got %zd", i, n);
		assert_false(p.complete);
		assert_int_equal(http1_status(-n), 400);
		http1_parser_release(&p);
	}
}

static void test_partial_then_complete(void **state)
{
	struct http1_parser p;
	http1_parser_init(&p, CAP);
	const char *head = "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nab";
	assert_int_equal(feed_str(&p, head), strlen(head));
	assert_false(p.complete);
	assert_int_equal(feed_str(&p, "cd"), 2);
	assert_true(p.complete);
	assert_string_equal(p.req.body, "abcd");
	http1_parser_release(&p);
}

static bool keep_alive_of(const char *req)
{
	struct http1_parser p;
	http1_parser_init(&p, CAP);
	assert_int_equal(feed_str(&p, req), strlen(req));
	assert_true(p.complete);
	bool ka = p.req.keep_alive;
	http1_parser_release(&p);
	return ka;
}

static void test_keep_alive(void **state)
{
	assert_true(keep_alive_of("GET / HTTP/1.1\r\n\r\n"));
	assert_false(keep_alive_of("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"));
	assert_false(keep_alive_of("GET / HTTP/1.0\r\n\r\n"));
	assert_true(keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
}

static void test_status_mapping(void **state)
{
	assert_int_equal(http1_status(HTTP1_EMALFORMED), 400);
	assert_int_equal(http1_status(HTTP1_EHEADERS), 431);
	assert_int_equal(http1_status(HTTP1_EBODY), 413);
	assert_int_equal(http1_status(HTTP1_ENOMEM), 503);
	assert_string_equal(http1_strerror(HTTP1_OK), "ok");
	assert_non_null(strstr(http1_strerror(HTTP1_EBODY), "body"));
	assert_non_null(strstr(http1_strerror(HTTP1_EHEADERS), "header"));
	assert_string_equal(http1_strerror(42), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_post_content_length),
		cmocka_unit_test(test_header_names_case_insensitive),
		cmocka_unit_test(test_chunked),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_byte_by_byte),
		cmocka_unit_test(test_header_block_cap),
		cmocka_unit_test(test_declared_body_over_cap),
		cmocka_unit_test(test_chunked_over_cap),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_partial_then_complete),
		cmocka_unit_test(test_keep_alive),
		cmocka_unit_test(test_status_mapping),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
