/*
 * tests/unit/test_pop_record.c: the population records the resolver reads
 * from Redis (proto/pop_record.h): household records of layouts 2-4, the ha
 * records matched to them in order, ';'-lists and "platform:token" items,
 * terminal records, and count fields. Malformed records are reported, never
 * read past.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pop_record.h"

static void assert_span(struct pop_span s, const char *want)
{
	assert_int_equal(s.len, strlen(want));
	assert_memory_equal(s.p, want, s.len);
}

static void test_household_fields(void **state)
{
	(void)state;
	struct pop_span f[POP_HH_FIELDS];
	const char *l4 = "0101\t3\tzh-CN\t+8613800000001;+8613800000002";
	assert_int_equal(pop_hh_split(l4, strlen(l4), POP_APPS, f), 0);
	assert_span(f[POP_SUFFIX], "0101");
	assert_span(f[POP_PERSONS], "3");
	assert_span(f[POP_LANG], "zh-CN");
	assert_span(f[POP_PHONES], "+8613800000001;+8613800000002");

	const char *l3 = "0102\t1\ten\t\tapns:abc;fcm:def";
	assert_int_equal(pop_hh_split(l3, strlen(l3), POP_HH_FIELDS, f), 0);
	assert_span(f[POP_PHONES], "");
	assert_span(f[POP_APPS], "apns:abc;fcm:def");

	/* the last field ends at a further tab */
	const char *extra = "0103\t2\ten\t+861\tfcm:x\tmore";
	assert_int_equal(pop_hh_split(extra, strlen(extra), POP_HH_FIELDS, f), 0);
	assert_span(f[POP_APPS], "fcm:x");

	/* too few fields, an empty record */
	const char *short3 = "0104\t2\ten";
	assert_int_equal(pop_hh_split(short3, strlen(short3), POP_APPS, f), -1);
	assert_int_equal(pop_hh_split("", 0, POP_APPS, f), -1);
	/* four fields are enough for layout 4 and too few for layouts 2-3 */
	assert_int_equal(pop_hh_split(l4, strlen(l4), POP_HH_FIELDS, f), -1);
}

static void test_lists(void **state)
{
	(void)state;
	const char *s = "a;;bc;", *p = s, *end = s + strlen(s);
	struct pop_span it;
	assert_true(pop_next(&p, end, ';', &it));
	assert_span(it, "a");
	assert_true(pop_next(&p, end, ';', &it));
	assert_span(it, "");
	assert_true(pop_next(&p, end, ';', &it));
	assert_span(it, "bc");
	assert_false(pop_next(&p, end, ';', &it)); /* no empty item after the last ';' */
	p = s;
	assert_false(pop_next(&p, s, ';', &it)); /* an empty list */

	struct pop_span pl, tok;
	struct pop_span app = {"apns:ab:cd", 10};
	assert_true(pop_app_split(app, &pl, &tok));
	assert_span(pl, "apns");
	assert_span(tok, "ab:cd");
	struct pop_span bare = {"token", 5}, empty = {"", 0};
	assert_false(pop_app_split(bare, &pl, &tok));
	assert_false(pop_app_split(empty, &pl, &tok));
}

/* ha records are taken in order, only by the household they name. */
static void test_ha_in_order(void **state)
{
	(void)state;
	const char *ha = "0101\tapns:a\n0103\tfcm:c;fcm:d";
	struct pop_ha_cursor hc = {ha, ha + strlen(ha)};
	assert_span(pop_ha_take(&hc, "0101", 4), "apns:a");
	assert_span(pop_ha_take(&hc, "0102", 4), ""); /* no tokens: the cursor stays */
	assert_span(pop_ha_take(&hc, "010", 3), "");  /* a prefix is not the suffix */
	assert_span(pop_ha_take(&hc, "0103", 4), "fcm:c;fcm:d");
	assert_true(hc.p == hc.end);
	assert_span(pop_ha_take(&hc, "0104", 4), "");
	assert_span(pop_ha_take(NULL, "0101", 4), "");

	const char *notab = "0101";
	struct pop_ha_cursor bad = {notab, notab + 4};
	assert_span(pop_ha_take(&bad, "0101", 4), ""); /* a record without a tab is nobody's */
	assert_true(bad.p == notab);
}

static void test_terminals_and_counts(void **state)
{
	(void)state;
	struct pop_span id, cov;
	const char *t2 = "T-001\tspeaker\t1250";
	assert_int_equal(pop_term_split(t2, strlen(t2), &id, &cov), 2);
	assert_span(id, "T-001");
	assert_span(cov, "1250");
	assert_int_equal(pop_term_split("T-002", 5, &id, &cov), 1);
	assert_span(id, "T-002");
	assert_span(cov, "");
	assert_int_equal(pop_term_split("T-003\tspeaker", 13, &id, &cov), -1);
	assert_int_equal(pop_term_split("\tspeaker\t5", 10, &id, &cov), -1);
	assert_int_equal(pop_term_split("", 0, &id, &cov), -1);

	assert_int_equal(pop_count("1250", 4), 1250);
	assert_int_equal(pop_count("12x5", 4), 12);
	assert_int_equal(pop_count("", 0), 0);
	assert_int_equal(pop_count("12345678901", 11), 123456789); /* at most 9 digits */
	assert_int_equal(pop_count("42", 1), 4);                   /* the length bounds it */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_household_fields),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_ha_in_order),
		cmocka_unit_test(test_terminals_and_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
