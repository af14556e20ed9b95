/*
 * tests/unit/test_audit.c: the audit log's hash chain (engine/audit.h):
 * a written log verifies; editing, deleting or reordering a line breaks
 * it at that line; the chain continues across a reopen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit.h"

#define N_LINES 5

static char *tmp_path(void)
{
	char *p = strdup("/tmp/tocsin-audit-XXXXXX");
	int fd = mkstemp(p);
	close(fd);
	unlink(p);
	return p;
}

static void write_log(const char *path, int n)
{
	char err[256];
	struct audit *a = audit_open(path, err, sizeof(err));
	assert_non_null(a);
	for (int i = 0; i < n; i++)
		audit_log(a, i % 2 ? "reject" : "admit", json_pack("{s:i,s:s}", "n", i, "id", "w-1"));
	audit_close(a);
}

static char **read_lines(const char *path, int *n)
{
	char **lines = calloc(64, sizeof(*lines)), *l = NULL;
	size_t cap = 0;
	FILE *f = fopen(path, "r");
	*n = 0;
	while (getline(&l, &cap, f) > 0 && *n < 64)
		lines[(*n)++] = strdup(l);
	free(l);
	fclose(f);
	return lines;
}

static void write_lines(const char *path, char **lines, const int *order, int n)
{
	FILE *f = fopen(path, "w");
	for (int i = 0; i < n; i++)
		fputs(lines[order[i]], f);
	fclose(f);
}

static void free_lines(char **lines, int n)
{
	for (int i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

static void test_intact_chain_verifies(void **state)
{
	char *p = tmp_path();
	struct audit_verify_result r;
	write_log(p, N_LINES);
	assert_int_equal(audit_verify_file(p, &r), 0);
	assert_int_equal(r.count, N_LINES);
	assert_int_equal(r.bad_line, 0);
	write_log(p, 2); /* reopened: continues the chain */
	assert_int_equal(audit_verify_file(p, &r), 0);
	assert_int_equal(r.count, N_LINES + 2);
	unlink(p);
	free(p);
}

/* Rewrite the log as `order` (with line `edit` altered when >= 0) and expect bad_line. */
static void expect_broken(const int *order, int n, int edit, size_t bad_line)
{
	char *p = tmp_path();
	int got;
	struct audit_verify_result r;
	write_log(p, N_LINES);
	char **lines = read_lines(p, &got);
	assert_int_equal(got, N_LINES);
	if (edit >= 0) {
		char *at = strstr(lines[edit], "\"n\":");
		assert_non_null(at);
		at[4] = at[4] == '9' ? '8' : '9';
	}
	write_lines(p, lines, order, n);
	assert_int_equal(audit_verify_file(p, &r), 1);
	assert_int_equal(r.bad_line, bad_line);
	assert_int_equal(r.count, bad_line - 1);
	free_lines(lines, got);
	unlink(p);
	free(p);
}

static void test_tampered_line(void **state)
{
	static const int order[] = {0, 1, 2, 3, 4};
	expect_broken(order, 5, 2, 3);
}

static void test_deleted_line(void **state)
{
	static const int order[] = {0, 1, 3, 4};
	expect_broken(order, 4, -1, 3);
}

static void test_reordered_lines(void **state)
{
	static const int order[] = {0, 2, 1, 3, 4};
	expect_broken(order, 5, -1, 2);
}

static void test_truncated_last_line_refused_at_open(void **state)
{
	char *p = tmp_path(), err[256];
	write_log(p, 3);
	FILE *f = fopen(p, "a");
	fputs("{\"seq\":4,\"ts\"", f);
	fclose(f);
	assert_null(audit_open(p, err, sizeof(err)));
	assert_non_null(strstr(err, "line 4"));
	unlink(p);
	free(p);
}

static void test_line_make_is_deterministic(void **state)
{
	char *a, *b, ha[AUDIT_HEX_LEN + 1], hb[AUDIT_HEX_LEN + 1];
	json_t *d = json_pack("{s:s}", "id", "中文");
	assert_int_equal(audit_line_make(1, 1000, "admit", d, "00", &a, ha), 0);
	assert_int_equal(audit_line_make(1, 1000, "admit", d, "00", &b, hb), 0);
	assert_string_equal(a, b);
	assert_string_equal(ha, hb);
	assert_non_null(strstr(a, "\"hash\":\""));
	assert_int_equal(a[strlen(a) - 1], '\n');
	free(a);
	free(b);
	json_decref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_intact_chain_verifies),
		cmocka_unit_test(test_tampered_line),
		cmocka_unit_test(test_deleted_line),
		cmocka_unit_test(test_reordered_lines),
		cmocka_unit_test(test_truncated_last_line_refused_at_open),
		cmocka_unit_test(test_line_make_is_deterministic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
