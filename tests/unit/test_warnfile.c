/*
 * tests/unit/test_warnfile.c: engine/warnfile.c — the example file and a
 * minimal file round-trip through tocsin__warning__unpack; times (now,
 * relative, RFC 3339); CLI overrides; every bad enum and rule names its
 * line and field.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "warnfile.h"
#include "warning.pb-c.h"

#define NOW 1795910400 /* 2026-11-29T00:00:00Z */

static const char minimal[] =
	"[alert]\n"                          /* 1 */
	"identifier = w-1\n"                 /* 2 */
	"sender = met.fuzhou.gov.cn\n"       /* 3 */
	"status = Exercise\n"                /* 4 */
	"msg_type = Alert\n"                 /* 5 */
	"targets = 350102001 350102002\n"    /* 6 */
	"[info zh-CN]\n"                     /* 7 */
	"category = Met, Safety\n"           /* 8 */
	"event = 台风\n"                     /* 9 */
	"urgency = Immediate\n"              /* 10 */
	"severity = extreme\n"               /* 11 */
	"certainty = Observed\n"             /* 12 */
	"expires = +6h\n"                    /* 13 */
	"headline = 台风红色预警\n";         /* 14 */

static Tocsin__Warning *build(const char *text, const struct warnfile_overrides *ov, char *err,
			      size_t errlen)
{
	uint8_t *out;
	size_t len;

	err[0] = '\0';
	if (warnfile_build("w.ini", text, strlen(text), NOW, ov, &out, &len, err, errlen) != 0)
		return NULL;
	Tocsin__Warning *w = tocsin__warning__unpack(NULL, len, out);
	free(out);
	assert_non_null(w);
	return w;
}

static void test_minimal(void **state)
{
	char err[256];
	Tocsin__Warning *w = build(minimal, NULL, err, sizeof(err));

	assert_non_null(w);
	assert_string_equal(w->identifier, "w-1");
	assert_string_equal(w->sender, "met.fuzhou.gov.cn");
	assert_true(w->has_sent && w->sent == NOW); /* default: now */
	assert_int_equal(w->status, TOCSIN__STATUS__EXERCISE);
	assert_int_equal(w->msg_type, TOCSIN__MSG_TYPE__ALERT);
	assert_int_equal(w->scope, TOCSIN__SCOPE__PUBLIC); /* default */
	assert_false(w->has_colour);
	assert_int_equal(w->n_targets, 2);
	assert_string_equal(w->targets[1], "350102002");
	assert_int_equal(w->n_info, 1);
	Tocsin__Info *i = w->info[0];
	assert_string_equal(i->language, "zh-CN");
	assert_int_equal(i->n_category, 2);
	assert_int_equal(i->category[0], TOCSIN__CATEGORY__MET);
	assert_int_equal(i->category[1], TOCSIN__CATEGORY__SAFETY);
	assert_string_equal(i->event, "台风");
	assert_int_equal(i->urgency, TOCSIN__URGENCY__IMMEDIATE);
	assert_int_equal(i->severity, TOCSIN__SEVERITY__EXTREME);
	assert_int_equal(i->certainty, TOCSIN__CERTAINTY__OBSERVED);
	assert_true(i->has_expires);
	assert_int_equal(i->expires, NOW + 6 * 3600);
	assert_false(i->has_effective);
	tocsin__warning__free_unpacked(w, NULL);
}

static void test_example_file(void **state)
{
	const char *src = getenv("TOCSIN_SOURCE_DIR");
	char path[512], err[256];
	uint8_t *out;
	size_t len;

	snprintf(path, sizeof(path), "%s/ops/warning.example.ini", src ? src : ".");
	assert_int_equal(warnfile_load(path, NOW, NULL, &out, &len, err, sizeof(err)), 0);
	Tocsin__Warning *w = tocsin__warning__unpack(NULL, len, out);
	assert_non_null(w);
	assert_string_equal(w->identifier, "gulou-typhoon-2026-001");
	assert_int_equal(strlen(w->national_id), 31);
	assert_int_equal(w->colour, TOCSIN__COLOUR__RED);
	assert_int_equal(w->n_info, 2);
	Tocsin__Info *zh = w->info[0], *en = w->info[1];
	assert_string_equal(zh->language, "zh-CN");
	assert_string_equal(en->language, "en-US");
	assert_int_equal(zh->n_response_type, 2);
	assert_int_equal(zh->response_type[1], TOCSIN__RESPONSE_TYPE__PREPARE);
	assert_int_equal(zh->onset, NOW + 3600);
	assert_non_null(strchr(zh->description, '\n')); /* continuation line kept */
	assert_int_equal(zh->n_event_code, 1);
	assert_string_equal(zh->event_code[0]->value_name, "GB/T35965");
	assert_int_equal(zh->n_area, 1);
	assert_string_equal(zh->area[0]->area_desc, "鼓楼区");
	assert_int_equal(zh->area[0]->n_geocode, 1);
	assert_string_equal(zh->area[0]->geocode[0]->value_name, "GB/T2260");
	assert_string_equal(zh->area[0]->geocode[0]->value, "350102");
	assert_string_equal(en->area[0]->area_desc, "Gulou District");
	tocsin__warning__free_unpacked(w, NULL);
	free(out);

	assert_int_equal(warnfile_load("/nonexistent/w.ini", NOW, NULL, &out, &len, err,
				       sizeof(err)), -1);
	assert_string_equal(err, "/nonexistent/w.ini: No such file or directory");
}

static void test_times(void **state)
{
	int64_t t;

	assert_int_equal(warnfile_parse_time("now", NOW, &t), 0);
	assert_int_equal(t, NOW);
	assert_int_equal(warnfile_parse_time("+30m", NOW, &t), 0);
	assert_int_equal(t, NOW + 1800);
	assert_int_equal(warnfile_parse_time("+2d", NOW, &t), 0);
	assert_int_equal(t, NOW + 2 * 86400);
	assert_int_equal(warnfile_parse_time("+45s", NOW, &t), 0);
	assert_int_equal(t, NOW + 45);
	assert_int_equal(warnfile_parse_time("2026-11-29T08:00:00+08:00", NOW, &t), 0);
	assert_int_equal(t, NOW);
	static const char *const bad[] = { "+", "+6", "+6x", "+6hh", "+-1h", "-6h", "tomorrow",
					   "+ 6h", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (warnfile_parse_time(bad[i], NOW, &t) == 0)
			fail_msg("accepted '%s'", bad[i]);
}

static void test_overrides(void **state)
{
	struct warnfile_overrides ov = { .identifier = "w-2", .status = "test",
					 .msg_type = "Update", .references = "w-1, w-0",
					 .expires = "2026-11-30T00:00:00Z" };
	char err[256];
	Tocsin__Warning *w = build(minimal, &ov, err, sizeof(err));

	assert_non_null(w);
	assert_string_equal(w->identifier, "w-2");
	assert_int_equal(w->status, TOCSIN__STATUS__TEST);
	assert_int_equal(w->msg_type, TOCSIN__MSG_TYPE__UPDATE);
	assert_int_equal(w->n_references, 2);
	assert_string_equal(w->references[1], "w-0");
	assert_int_equal(w->info[0]->expires, NOW + 86400);
	tocsin__warning__free_unpacked(w, NULL);

	struct warnfile_overrides bad = { .status = "Sometimes" };
	assert_null(build(minimal, &bad, err, sizeof(err)));
	assert_string_equal(err, "--status: unknown value 'Sometimes' "
				 "(Actual, Exercise, System, Test, Draft)");
	struct warnfile_overrides badexp = { .expires = "+6 hours" };
	assert_null(build(minimal, &badexp, err, sizeof(err)));
	assert_non_null(strstr(err, "--expires: bad time '+6 hours'"));
	/* Update needs references: the override of msg_type alone fails the check. */
	struct warnfile_overrides upd = { .msg_type = "update" };
	assert_null(build(minimal, &upd, err, sizeof(err)));
	assert_string_equal(err, "w.ini:1: references: required when msg_type is not Alert");
}

/* Replace line `line` (1-based) of minimal with `repl` and return the error. */
static void expect_error(int line, const char *repl, const char *want)
{
	char text[2048], err[512];
	const char *p = minimal;
	size_t off = 0;

	for (int l = 1; *p; l++) {
		size_t n = strcspn(p, "\n") + 1;
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s",
					l == line ? repl : "");
		if (l != line)
			off += (size_t)snprintf(text + off, sizeof(text) - off, "%.*s", (int)n, p);
		p += n;
	}
	Tocsin__Warning *w = build(text, NULL, err, sizeof(err));
	if (w != NULL || strcmp(err, want) != 0)
		fail_msg("line %d '%s': got '%s', want '%s'", line, repl, err, want);
}

static void test_bad_enums(void **state)
{
	expect_error(10, "urgency = Soon\n",
		     "w.ini:10: urgency: unknown value 'Soon' (Immediate, Expected, Future, Past, "
		     "Unknown)");
	expect_error(11, "severity = Huge\n",
		     "w.ini:11: severity: unknown value 'Huge' (Extreme, Severe, Moderate, Minor, "
		     "Unknown)");
	expect_error(12, "certainty = Sure\n",
		     "w.ini:12: certainty: unknown value 'Sure' (Observed, Likely, Possible, "
		     "Unlikely, Unknown)");
	expect_error(4, "status = Live\n",
		     "w.ini:4: status: unknown value 'Live' (Actual, Exercise, System, Test, Draft)");
	expect_error(5, "msg_type = Alarm\n",
		     "w.ini:5: msg_type: unknown value 'Alarm' (Alert, Update, Cancel, Ack, Error)");
	expect_error(8, "category = Met, Weather\n",
		     "w.ini:8: category: unknown value 'Weather' (Geo, Met, Safety, Security, "
		     "Rescue, Fire, Health, Env, Transport, Infra, Cbrne, Other)");
	expect_error(6, "colour = purple\ntargets = 1\n",
		     "w.ini:6: colour: unknown value 'purple' (Red, Orange, Yellow, Blue, White)");
	expect_error(6, "scope = Everyone\ntargets = 1\n",
		     "w.ini:6: scope: unknown value 'Everyone' (Public, Restricted, Private)");
	expect_error(8, "category = Met\nresponse_type = Run\n",
		     "w.ini:9: response_type: unknown value 'Run' (Shelter, Evacuate, Prepare, "
		     "Execute, Avoid, Monitor, Assess, AllClear, None)");
	/* "Unknown" and "AllClear" map to the prefixed proto names. */
	expect_error(10, "urgency = unknown\nresponse_type = all_clear\nfoo = 1\n",
		     "w.ini:12: foo: unknown field in [info zh-CN]");
	expect_error(13, "expires = tomorrow\n",
		     "w.ini:13: expires: bad time 'tomorrow' (now, +30m, +6h, +2d, or RFC 3339)");
}

static void test_bad_structure(void **state)
{
	expect_error(13, "", "w.ini:7: [info zh-CN]: missing 'expires'");
	expect_error(2, "", "w.ini:1: [alert]: missing 'identifier'");
	expect_error(2, "identifier = has space\n",
		     "w.ini:1: identifier: 'has space': 1-128 of A-Z a-z 0-9 . _ : @ -");
	expect_error(6, "", "w.ini:1: targets: required unless msg_type is Cancel");
	expect_error(3, "sender = a\nsender = b\n", "w.ini:4: sender: given twice");
	expect_error(10, "urgency = Immediate\nurgency = Past\n", "w.ini:11: urgency: given twice");
	expect_error(7, "[info]\n", "w.ini:7: [info]: expected [info LANGUAGE], e.g. [info zh-CN]");
	expect_error(7, "[infos zh]\n",
		     "w.ini:7: unknown section [infos zh] (expected [alert] or [info LANGUAGE])");
	expect_error(7, "[alert]\n", "w.ini:7: second [alert] section (first at line 1)");
	expect_error(6, "targets = 1\n[info en]\n", "w.ini:7: [info en]: section has no fields");
	expect_error(6, "targets = 1\nnational_id = 123\n",
		     "w.ini:1: national_id: must be 31 characters, not 3");
	expect_error(14, "geocode = GB/T2260:350102\n",
		     "w.ini:14: geocode: comes before any 'area ='");
	expect_error(14, "headline = x\narea = a\ngeocode = 350102\n",
		     "w.ini:16: geocode: expected NAME:VALUE, got '350102'");
	expect_error(14, "headline = x\nlanguage = en\n", "w.ini:15: language: unknown field in "
							   "[info zh-CN]");
	expect_error(14, "headline = x\nthis is not a field\n",
		     "w.ini:15: syntax error (expected [section] or 'key = value')");

	char longline[400], err[256];
	snprintf(longline, sizeof(longline), "[alert]\nnote = %0300d\n", 1);
	assert_null(build(longline, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "w.ini:2: line longer than"));
	assert_null(build("; empty\n", NULL, err, sizeof(err)));
	assert_string_equal(err, "w.ini: no [alert] section");
}

static void test_text_continuation(void **state)
{
	char text[2048], err[256];

	snprintf(text, sizeof(text), "%sdescription = one\n  two\ndescription = three\n", minimal);
	Tocsin__Warning *w = build(text, NULL, err, sizeof(err));
	assert_non_null(w);
	assert_string_equal(w->info[0]->description, "one\ntwo\nthree");
	tocsin__warning__free_unpacked(w, NULL);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal),	      cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_times),	      cmocka_unit_test(test_overrides),
		cmocka_unit_test(test_bad_enums),     cmocka_unit_test(test_bad_structure),
		cmocka_unit_test(test_text_continuation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
