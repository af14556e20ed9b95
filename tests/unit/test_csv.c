/*
 * tests/unit/test_csv.c: proto/csv.c, the RFC 4180 record codec.
 *
 * Each test feeds bytes and checks the three outcomes (record, need more,
 * error), field contents, line counting, and the caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "csv.h"

static char scratch[CSV_SCRATCH];

static ssize_t parse(const char *s, bool eof, struct csv_record *r)
{
	return csv_parse(s, strlen(s), eof, r, scratch, sizeof(scratch));
}

static void test_simple(void **state)
{
	struct csv_record r;
	const char *in = "a,b,c\nd";

	assert_int_equal(parse(in, false, &r), 6);
	assert_int_equal(r.nfields, 3);
	assert_string_equal(r.field[0], "a");
	assert_string_equal(r.field[2], "c");
	assert_int_equal(r.lines, 1);
	assert_false(r.blank);
}

static void test_quoted(void **state)
{
	struct csv_record r;
	const char *in = "\"x,\"\"y\"\"\",\"multi\nline\",\"\"\r\n";

	assert_int_equal(parse(in, false, &r), (ssize_t)strlen(in));
	assert_int_equal(r.nfields, 3);
	assert_string_equal(r.field[0], "x,\"y\"");
	assert_string_equal(r.field[1], "multi\nline");
	assert_int_equal(r.len[2], 0);
	assert_int_equal(r.lines, 2);
}

static void test_crlf_and_empty_fields(void **state)
{
	struct csv_record r;

	assert_int_equal(parse(",,\r\n", false, &r), 4);
	assert_int_equal(r.nfields, 3);
	assert_false(r.blank);
	assert_int_equal(parse("\n", false, &r), 1);
	assert_true(r.blank);
	assert_int_equal(parse("\r\n", false, &r), 2);
	assert_true(r.blank);
}

static void test_need_more(void **state)
{
	struct csv_record r;

	assert_int_equal(parse("a,b", false, &r), 0);
	assert_int_equal(parse("a,\"b\nc", false, &r), 0);
	assert_int_equal(parse("a,b\r", false, &r), 0);     /* CR LF split */
	assert_int_equal(parse("\"a\"", false, &r), 0);     /* maybe "" */
	assert_int_equal(parse("", true, &r), 0);           /* end */
}

static void test_eof_without_newline(void **state)
{
	struct csv_record r;

	assert_int_equal(parse("a,\"b\"", true, &r), 5);
	assert_int_equal(r.nfields, 2);
	assert_string_equal(r.field[1], "b");
	assert_int_equal(parse("a,b\r", true, &r), 4);
	assert_string_equal(r.field[1], "b");
}

static void test_utf8_names(void **state)
{
	struct csv_record r;
	const char *in = "350102001,street,350102,\"鼓东街道\",78411\n";

	assert_int_equal(parse(in, false, &r), (ssize_t)strlen(in));
	assert_string_equal(r.field[3], "鼓东街道");
	assert_true(csv_utf8_valid(r.field[3], r.len[3]));
	assert_false(csv_utf8_valid("\xc0\xaf", 2));        /* overlong */
	assert_false(csv_utf8_valid("\xed\xa0\x80", 3));    /* surrogate */
	assert_false(csv_utf8_valid("\xe9\xbc", 2));        /* truncated */
	assert_false(csv_utf8_valid("\xf4\x90\x80\x80", 4));
	assert_true(csv_utf8_valid("plain", 5));
}

static void test_bad_quoting(void **state)
{
	struct csv_record r;

	assert_int_equal(parse("a\"b,c\n", false, &r), -CSV_EQUOTE);
	assert_int_equal(parse("\"a\"b,c\n", false, &r), -CSV_EQUOTE);
	assert_int_equal(parse("\"open\n", true, &r), -CSV_EQUOTE);
	assert_string_equal(csv_strerror(CSV_EQUOTE), "bad quoting");
}

static void test_nul(void **state)
{
	struct csv_record r;
	const char in[] = "a\0b\n";

	assert_int_equal(csv_parse(in, 4, false, &r, scratch, sizeof(scratch)),
			 -CSV_ENUL);
}

static void test_too_many_fields(void **state)
{
	struct csv_record r;
	char in[CSV_MAX_FIELDS * 2 + 8];
	size_t n = 0;

	for (int i = 0; i <= CSV_MAX_FIELDS; i++) {
		in[n++] = 'x';
		in[n++] = ',';
	}
	in[n - 1] = '\n';
	in[n] = '\0';
	assert_int_equal(parse(in, false, &r), -CSV_EFIELDS);
}

static void test_too_long(void **state)
{
	struct csv_record r;
	size_t n = CSV_MAX_RECORD + 10;
	char *in = malloc(n + 1);

	memset(in, 'a', n);
	in[n] = '\0';
	assert_int_equal(parse(in, false, &r), -CSV_ETOOLONG);   /* incomplete */
	in[n - 1] = '\n';
	assert_int_equal(parse(in, false, &r), -CSV_ETOOLONG);   /* complete */
	char small[8];
	assert_int_equal(csv_parse("abcdefghij\n", 11, false, &r, small,
				   sizeof(small)), -CSV_ETOOLONG);
	free(in);
}

/* Feeding byte by byte gives the same records as feeding all at once. */
static void test_incremental(void **state)
{
	const char *in = "id,name\n1,\"a\"\"b\"\r\n2,\"x\ny\"\n\n3,z";
	size_t len = strlen(in), start = 0, end = 0, nrec = 0;
	struct csv_record r;

	while (start < len) {
		bool eof = end >= len;
		ssize_t n = csv_parse(in + start, end - start, eof, &r, scratch,
				      sizeof(scratch));
		assert_true(n >= 0);
		if (n == 0) {
			end++;
			continue;
		}
		start += (size_t)n;
		nrec++;
	}
	assert_int_equal(nrec, 5);
	assert_string_equal(r.field[1], "z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_crlf_and_empty_fields),
		cmocka_unit_test(test_need_more),
		cmocka_unit_test(test_eof_without_newline),
		cmocka_unit_test(test_utf8_names),
		cmocka_unit_test(test_bad_quoting),
		cmocka_unit_test(test_nul),
		cmocka_unit_test(test_too_many_fields),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_incremental),
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
