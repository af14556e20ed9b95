/*
 * tests/unit/test_operators.c: operator tokens and credential parsing
 * (engine/operators.h): loading, constant-time matching, Bearer, Cookie
 * and query parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "operators.h"

static struct operators *load(const char *text, char *err, size_t errlen)
{
	char path[] = "/tmp/tocsin-ops-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct operators *ops = operators_load(path, err, errlen);
	unlink(path);
	return ops;
}

static void test_load_and_match(void **state)
{
	char err[256];
	struct operators *ops = load("# officers\nduty-1 aaaaaaaaaaaaaaaa1\n\n  duty-2\tbbbbbbbbbbbbbbbb2 # night\n",
				     err, sizeof(err));
	assert_non_null(ops);
	assert_int_equal(operators_count(ops), 2);
	assert_int_equal(operators_match(ops, "aaaaaaaaaaaaaaaa1", 17), 0);
	assert_int_equal(operators_match(ops, "bbbbbbbbbbbbbbbb2", 17), 1);
	assert_string_equal(operators_name(ops, 1), "duty-2");
	assert_int_equal(operators_match(ops, "aaaaaaaaaaaaaaaa", 16), -1); /* prefix */
	assert_int_equal(operators_match(ops, "aaaaaaaaaaaaaaaa1x", 18), -1);
	assert_int_equal(operators_match(ops, "", 0), -1);
	assert_int_equal(operators_match(NULL, "x", 1), -1);
	operators_free(ops);
}

static void test_load_errors(void **state)
{
	char err[256];
	assert_null(load("duty-1 short\n", err, sizeof(err)));
	assert_non_null(strstr(err, ":1:"));
	assert_null(load("duty-1 aaaaaaaaaaaaaaaa1 extra\n", err, sizeof(err)));
	assert_null(load("# nothing\n", err, sizeof(err)));
	assert_non_null(strstr(err, "no operator tokens"));
	assert_null(operators_load("/nonexistent/tokens", err, sizeof(err)));
}

static void test_bearer(void **state)
{
	const char *t;
	size_t n;
	assert_true(operators_bearer("Bearer abc", &t, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(t, "abc", 3);
	assert_true(operators_bearer("bearer   abc  ", &t, &n));
	assert_int_equal(n, 3);
	assert_false(operators_bearer("Basic abc", &t, &n));
	assert_false(operators_bearer("Bearer ", &t, &n));
	assert_false(operators_bearer("", &t, &n));
}

static void test_cookie(void **state)
{
	const char *v;
	size_t n;
	assert_true(operators_cookie("a=1; tocsin_op=tok; b=2", "tocsin_op", &v, &n));
	assert_int_equal(n, 3);
	assert_memory_equal(v, "tok", 3);
	assert_true(operators_cookie("tocsin_op=\"q\"", "tocsin_op", &v, &n));
	assert_int_equal(n, 1);
	assert_memory_equal(v, "q", 1);
	assert_false(operators_cookie("xtocsin_op=tok", "tocsin_op", &v, &n));
	assert_false(operators_cookie("tocsin_opx=tok", "tocsin_op", &v, &n));
	assert_false(operators_cookie("", "tocsin_op", &v, &n));
	assert_true(operators_cookie("tocsin_op=", "tocsin_op", &v, &n));
	assert_int_equal(n, 0);
}

static void test_query(void **state)
{
	char out[32];
	assert_true(operators_query("/?token=abc", "token", out, sizeof(out)));
	assert_string_equal(out, "abc");
	assert_true(operators_query("/?a=1&token=a%2Bb+c&z", "token", out, sizeof(out)));
	assert_string_equal(out, "a+b c");
	assert_false(operators_query("/?xtoken=abc", "token", out, sizeof(out)));
	assert_false(operators_query("/", "token", out, sizeof(out)));
	assert_false(operators_query("/?token=%zz", "token", out, sizeof(out)));
	assert_false(operators_query("/?token=%4", "token", out, sizeof(out)));
	assert_false(operators_query("/?token=%00", "token", out, sizeof(out)));
	assert_false(operators_query("/#?token=abc", "token", out, 4));
	assert_false(operators_query("/?token=abcdef", "token", out, 4)); /* too long */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_and_match), cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_bearer),	       cmocka_unit_test(test_cookie),
		cmocka_unit_test(test_query),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
