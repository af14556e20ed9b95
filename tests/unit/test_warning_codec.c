/*
 * tests/unit/test_warning_codec.c: proto/warning_codec.c — the arena cap,
 * envelope decoding, and warning_validate rule by rule: each required field
 * missing names the right field, enums out of range (protobuf-c accepts any
 * varint), the sent window's edges, the scope/msg_type dependencies, the
 * target count and id rules, national_id, warning_id_valid and
 * warning_expires.
 *
 * Every case starts from one valid Warning (good_warning) and breaks
 * exactly one thing, so a failure points at one rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "warning.pb-c.h"
#include "warning_codec.h"

#define NOW 1795000000LL /* a fixed clock: the codec never reads one */
#define WINDOW 300

/* A valid two-info warning; every pointer refers to static or fixture storage. */
struct good {
	Tocsin__Warning w;
	Tocsin__Info info[2];
	Tocsin__Info *infos[2];
	Tocsin__Category cat[2];
	char *targets[2];
	char *many_targets[WARNING_MAX_TARGETS + 1];
	char *refs[1];
	char *addrs[1];
};

static struct good *good_warning(void)
{
	struct good *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	tocsin__warning__init(&g->w);
	g->w.identifier = "gulou-typhoon-2026-001";
	g->w.sender = "met.fuzhou.gov.cn";
	g->w.has_sent = 1;
	g->w.sent = NOW;
	g->w.has_status = 1;
	g->w.status = TOCSIN__STATUS__ACTUAL;
	g->w.has_msg_type = 1;
	g->w.msg_type = TOCSIN__MSG_TYPE__ALERT;
	g->w.has_scope = 1;
	g->w.scope = TOCSIN__SCOPE__PUBLIC;
	g->targets[0] = "350102001";
	g->targets[1] = "350102002001";
	g->w.targets = g->targets;
	g->w.n_targets = 2;
	g->refs[0] = "gulou-typhoon-2026-000";
	g->addrs[0] = "ops@met.fuzhou.gov.cn";
	for (int i = 0; i < 2; i++) {
		Tocsin__Info *in = &g->info[i];
		tocsin__info__init(in);
		in->language = i == 0 ? "zh-CN" : "en-US";
		g->cat[i] = TOCSIN__CATEGORY__MET;
		in->category = &g->cat[i];
		in->n_category = 1;
		in->event = "Typhoon";
		in->has_urgency = in->has_severity = in->has_certainty = 1;
		in->urgency = TOCSIN__URGENCY__IMMEDIATE;
		in->severity = TOCSIN__SEVERITY__EXTREME;
		in->certainty = TOCSIN__CERTAINTY__OBSERVED;
		in->headline = "Typhoon red warning";
		in->has_expires = 1;
		in->expires = NOW + 3600 * (i + 1);
		g->infos[i] = in;
	}
	g->w.info = g->infos;
	g->w.n_info = 2;
	return g;
}

static void assert_valid(const Tocsin__Warning *w)
{
	struct warning_problem p = {0};
	bool ok = warning_validate(w, NOW, WINDOW, &p);
	if (!ok)
		fail_msg("expected valid, got %s: %s", p.field, p.reason);
}

static void assert_problem(const Tocsin__Warning *w, const char *field)
{
	struct warning_problem p = {0};
	assert_false(warning_validate(w, NOW, WINDOW, &p));
	assert_string_equal(p.field, field);
	assert_true(p.reason[0] != '\0');
}

/* Pack a Warning into malloc'd bytes. */
static uint8_t *pack(const Tocsin__Warning *w, size_t *len)
{
	*len = tocsin__warning__get_packed_size(w);
	uint8_t *b = malloc(*len ? *len : 1);
	assert_non_null(b);
	assert_int_equal(tocsin__warning__pack(w, b), *len);
	return b;
}

static void test_good_roundtrip(void **state)
{
	struct good *g = good_warning();
	assert_valid(&g->w);

	size_t len;
	uint8_t *b = pack(&g->w, &len);
	struct warning_arena a;
	const char *why = NULL;
	warning_arena_init(&a, WARNING_ARENA_CAP);
	Tocsin__Warning *d = warning_decode(&a, b, len, &why);
	assert_non_null(d);
	assert_string_equal(d->identifier, "gulou-typhoon-2026-001");
	assert_int_equal(d->n_info, 2);
	assert_string_equal(d->info[1]->language, "en-US");
	assert_int_equal(d->n_targets, 2);
	assert_valid(d);
	assert_true(a.used > 0);
	warning_arena_release(&a);
	assert_int_equal(a.used, 0);
	assert_null(a.chunks);
	free(b);
	free(g);
}

static void test_arena_cap(void **state)
{
	/* 1000 targets: ~12 KiB on the wire, more than 8 KiB once decoded. */
	struct good *g = good_warning();
	static char ids[WARNING_MAX_TARGETS][16];
	for (int i = 0; i < 1000; i++) {
		snprintf(ids[i], sizeof(ids[i]), "350102%06d", i);
		g->many_targets[i] = ids[i];
	}
	g->w.targets = g->many_targets;
	g->w.n_targets = 1000;
	size_t len;
	uint8_t *b = pack(&g->w, &len);

	struct warning_arena a;
	const char *why = NULL;
	warning_arena_init(&a, 8 * 1024);
	assert_null(warning_decode(&a, b, len, &why));
	assert_non_null(why);
	assert_true(a.used <= 8 * 1024);
	warning_arena_release(&a);
	assert_null(a.chunks);

	/* The same bytes decode under the real cap, and reuse after release works. */
	why = NULL;
	warning_arena_init(&a, WARNING_ARENA_CAP);
	Tocsin__Warning *d = warning_decode(&a, b, len, &why);
	assert_non_null(d);
	assert_int_equal(d->n_targets, 1000);
	assert_string_equal(d->targets[999], "350102000999");
	assert_true(a.used > 8 * 1024);
	warning_arena_release(&a);

	/* A single allocation larger than the cap fails too. */
	warning_arena_init(&a, 64);
	assert_null(a.allocator.alloc(a.allocator.allocator_data, 65));
	assert_non_null(a.allocator.alloc(a.allocator.allocator_data, 64));
	assert_null(a.allocator.alloc(a.allocator.allocator_data, 1));
	warning_arena_release(&a);
	free(b);
	free(g);
}

static uint8_t *pack_envelope(bool payload, bool signature, const char *key_id, size_t *len)
{
	static uint8_t pl[] = {1, 2, 3}, sg[64];
	Tocsin__SignedWarning sw;
	tocsin__signed_warning__init(&sw);
	if (payload) {
		sw.has_payload = 1;
		sw.payload.data = pl;
		sw.payload.len = sizeof(pl);
	}
	if (signature) {
		sw.has_signature = 1;
		sw.signature.data = sg;
		sw.signature.len = sizeof(sg);
	}
	sw.key_id = (char *)key_id;
	*len = tocsin__signed_warning__get_packed_size(&sw);
	uint8_t *b = malloc(*len + 1);
	tocsin__signed_warning__pack(&sw, b);
	return b;
}

static void expect_envelope(bool payload, bool signature, const char *key_id,
			    const char *why_has)
{
	size_t len;
	uint8_t *b = pack_envelope(payload, signature, key_id, &len);
	struct warning_arena a;
	const char *why = NULL;
	warning_arena_init(&a, WARNING_ARENA_CAP);
	Tocsin__SignedWarning *sw = signed_warning_decode(&a, b, len, &why);
	if (why_has) {
		assert_null(sw);
		assert_non_null(why);
		assert_non_null(strstr(why, why_has));
	} else {
		assert_non_null(sw);
		assert_string_equal(sw->key_id, key_id);
		assert_int_equal(sw->payload.len, 3);
		assert_int_equal(sw->signature.len, 64);
	}
	warning_arena_release(&a);
	free(b);
}

static void test_envelope_fields(void **state)
{
	expect_envelope(true, true, "met-fuzhou", NULL);
	expect_envelope(false, true, "met-fuzhou", "payload");
	expect_envelope(true, false, "met-fuzhou", "signature");
	expect_envelope(true, true, NULL, "key_id");
	expect_envelope(true, true, "", "key_id");
}

static void test_envelope_garbage_and_size(void **state)
{
	struct warning_arena a;
	const char *why = NULL;
	warning_arena_init(&a, WARNING_ARENA_CAP);
	/* Field 1 (bytes) claiming 100 bytes with 2 present. */
	const uint8_t trunc[] = {0x0a, 100, 'x', 'y'};
	assert_null(signed_warning_decode(&a, trunc, sizeof(trunc), &why));
	assert_non_null(strstr(why, "not a SignedWarning"));

	/* Over the envelope cap: refused before decoding (nothing allocated). */
	warning_arena_release(&a);
	uint8_t *big = calloc(1, WARNING_MAX_ENVELOPE + 1);
	why = NULL;
	assert_null(signed_warning_decode(&a, big, WARNING_MAX_ENVELOPE + 1, &why));
	assert_non_null(strstr(why, "too large"));
	assert_int_equal(a.used, 0);
	free(big);

	why = NULL;
	assert_null(warning_decode(&a, trunc, sizeof(trunc), &why));
	assert_non_null(strstr(why, "not a Warning"));
	warning_arena_release(&a);
}

static void test_required_fields(void **state)
{
	struct good *g;

#define BREAK(stmt, field)                 \
	do {                               \
		g = good_warning();        \
		stmt;                      \
		assert_problem(&g->w, field); \
		free(g);                   \
	} while (0)

	BREAK(g->w.identifier = NULL, "identifier");
	BREAK(g->w.identifier = "", "identifier");
	BREAK(g->w.identifier = "has space", "identifier");
	BREAK(g->w.sender = NULL, "sender");
	BREAK(g->w.sender = "", "sender");
	BREAK(g->w.has_sent = 0, "sent");
	BREAK(g->w.has_status = 0, "status");
	BREAK(g->w.has_msg_type = 0, "msg_type");
	BREAK(g->w.has_scope = 0, "scope");
	BREAK(g->w.n_info = 0, "info");
	BREAK(g->w.n_targets = 0, "targets");
	BREAK(g->info[0].language = NULL, "info[0].language");
	BREAK(g->info[0].n_category = 0, "info[0].category");
	BREAK(g->info[0].event = "", "info[0].event");
	BREAK(g->info[0].has_urgency = 0, "info[0].urgency");
	BREAK(g->info[0].has_severity = 0, "info[0].severity");
	BREAK(g->info[0].has_certainty = 0, "info[0].certainty");
	BREAK(g->info[0].headline = NULL, "info[0].headline");
	BREAK(g->info[0].has_expires = 0, "info[0].expires");
	BREAK(g->info[1].headline = NULL, "info[1].headline");
	BREAK(g->info[1].language = "", "info[1].language");
	BREAK(g->info[1].has_expires = 0, "info[1].expires");
	/* Text people will read must be valid UTF-8. */
	BREAK(g->info[0].headline = "bad \xff byte", "info[0].headline");
	BREAK(g->info[1].instruction = "overlong \xc0\xaf slash", "info[1].instruction");
	BREAK(g->info[0].description = "surrogate \xed\xa0\x80", "info[0].description");
	BREAK(g->w.sender = "cut \xe5\x8f", "sender");
	/* The first problem wins: identifier before sender, info[0] before info[1]. */
	BREAK((g->w.identifier = NULL, g->w.sender = NULL), "identifier");
	BREAK((g->info[0].event = NULL, g->info[1].headline = NULL), "info[0].event");
}

static void test_enum_range(void **state)
{
	struct good *g;
	/* protobuf-c hands over any varint; validation must range-check. */
	BREAK(g->w.status = (Tocsin__Status)0, "status");
	BREAK(g->w.status = (Tocsin__Status)6, "status");
	BREAK(g->w.status = (Tocsin__Status)-1, "status");
	BREAK(g->w.msg_type = (Tocsin__MsgType)0, "msg_type");
	BREAK(g->w.msg_type = (Tocsin__MsgType)6, "msg_type");
	BREAK(g->w.scope = (Tocsin__Scope)4, "scope");
	BREAK((g->w.has_colour = 1, g->w.colour = (Tocsin__Colour)6), "colour");
	BREAK(g->info[0].urgency = (Tocsin__Urgency)99, "info[0].urgency");
	BREAK(g->info[0].severity = (Tocsin__Severity)0, "info[0].severity");
	BREAK(g->info[1].certainty = (Tocsin__Certainty)6, "info[1].certainty");
	BREAK(g->cat[0] = (Tocsin__Category)13, "info[0].category");
	BREAK(g->cat[1] = (Tocsin__Category)0, "info[1].category");

	/* Through the wire: an out-of-range varint decodes, then validation refuses it. */
	g = good_warning();
	g->w.status = (Tocsin__Status)77;
	size_t len;
	uint8_t *b = pack(&g->w, &len);
	struct warning_arena a;
	const char *why;
	warning_arena_init(&a, WARNING_ARENA_CAP);
	Tocsin__Warning *d = warning_decode(&a, b, len, &why);
	assert_non_null(d);
	assert_int_equal(d->status, 77);
	assert_problem(d, "status");
	assert_string_equal(warning_status_name(d->status), "?");
	warning_arena_release(&a);
	free(b);
	free(g);

	/* Valid colours, including none. */
	g = good_warning();
	g->w.has_colour = 1;
	g->w.colour = TOCSIN__COLOUR__COLOUR_UNSPECIFIED;
	assert_valid(&g->w);
	g->w.colour = TOCSIN__COLOUR__WHITE;
	assert_valid(&g->w);
	free(g);
}

static void test_sent_window(void **state)
{
	struct good *g = good_warning();
	g->w.sent = NOW - WINDOW;
	assert_valid(&g->w);
	g->w.sent = NOW + WINDOW;
	assert_valid(&g->w);
	g->w.sent = NOW - WINDOW - 1;
	assert_problem(&g->w, "sent");
	g->w.sent = NOW + WINDOW + 1;
	assert_problem(&g->w, "sent");
	free(g);
}

static void test_expires(void **state)
{
	struct good *g = good_warning();
	assert_int_equal(warning_expires(&g->w), NOW + 7200);
	g->info[0].expires = NOW + 9000;
	assert_int_equal(warning_expires(&g->w), NOW + 9000);
	g->info[0].has_expires = 0;
	assert_int_equal(warning_expires(&g->w), NOW + 7200);
	g->w.n_info = 0;
	assert_int_equal(warning_expires(&g->w), 0);
	free(g);

	/* expires must be strictly after now; effective strictly before expires. */
	BREAK(g->info[0].expires = NOW, "info[0].expires");
	BREAK(g->info[1].expires = NOW - 1, "info[1].expires");
	g = good_warning();
	g->info[0].expires = NOW + 1;
	assert_valid(&g->w);
	g->info[0].has_effective = 1;
	g->info[0].effective = NOW;
	assert_valid(&g->w);
	g->info[0].effective = NOW + 1;
	assert_problem(&g->w, "info[0].effective");
	free(g);
}

static void test_scope_and_msg_type(void **state)
{
	struct good *g;
	BREAK(g->w.scope = TOCSIN__SCOPE__RESTRICTED, "restriction");
	BREAK((g->w.scope = TOCSIN__SCOPE__RESTRICTED, g->w.restriction = ""), "restriction");
	BREAK(g->w.scope = TOCSIN__SCOPE__PRIVATE, "addresses");
	BREAK(g->w.msg_type = TOCSIN__MSG_TYPE__UPDATE, "references");
	BREAK(g->w.msg_type = TOCSIN__MSG_TYPE__CANCEL, "references");
	BREAK(g->w.msg_type = TOCSIN__MSG_TYPE__ACK, "references");
	BREAK(g->w.msg_type = TOCSIN__MSG_TYPE__ERROR, "references");
	BREAK((g->w.msg_type = TOCSIN__MSG_TYPE__UPDATE, g->w.references = g->refs,
	       g->w.n_references = 1, g->refs[0] = "bad ref"),
	      "references");

	g = good_warning();
	g->w.scope = TOCSIN__SCOPE__RESTRICTED;
	g->w.restriction = "civil defence staff";
	assert_valid(&g->w);
	g->w.scope = TOCSIN__SCOPE__PRIVATE;
	g->w.addresses = g->addrs;
	g->w.n_addresses = 1;
	assert_valid(&g->w);
	free(g);

	/* UPDATE with references is fine; CANCEL with references and no targets too. */
	g = good_warning();
	g->w.msg_type = TOCSIN__MSG_TYPE__UPDATE;
	g->w.references = g->refs;
	g->w.n_references = 1;
	assert_valid(&g->w);
	g->w.msg_type = TOCSIN__MSG_TYPE__CANCEL;
	g->w.n_targets = 0;
	assert_valid(&g->w);
	g->w.msg_type = TOCSIN__MSG_TYPE__UPDATE;
	assert_problem(&g->w, "targets"); /* only CANCEL may omit targets */
	free(g);
}

static void test_targets(void **state)
{
	struct good *g = good_warning();
	static char ids[WARNING_MAX_TARGETS + 1][16];
	for (int i = 0; i <= WARNING_MAX_TARGETS; i++) {
		snprintf(ids[i], sizeof(ids[i]), "350102%06d", i);
		g->many_targets[i] = ids[i];
	}
	g->w.targets = g->many_targets;
	g->w.n_targets = WARNING_MAX_TARGETS;
	assert_valid(&g->w);
	g->w.n_targets = WARNING_MAX_TARGETS + 1;
	assert_problem(&g->w, "targets");
	free(g);

	BREAK(g->targets[1] = "", "targets");
	BREAK(g->targets[0] = "3501 02", "targets");
	BREAK(g->targets[1] = "350102/001", "targets");
}

static void test_national_id(void **state)
{
	struct good *g = good_warning();
	g->w.national_id = "35010241600000_20261129080000_1"; /* 31 chars */
	assert_int_equal(strlen(g->w.national_id), 31);
	assert_valid(&g->w);
	g->w.national_id = ""; /* empty means absent */
	assert_valid(&g->w);
	g->w.national_id = "35010241600000_20261129080000_";
	assert_problem(&g->w, "national_id");
	g->w.national_id = "35010241600000_20261129080000_12";
	assert_problem(&g->w, "national_id");
	free(g);
}

static void test_id_valid(void **state)
{
	char id[WARNING_MAX_ID_LEN + 2];
	memset(id, 'a', sizeof(id));
	assert_true(warning_id_valid("a", 1));
	assert_true(warning_id_valid("A-z_0.9:x@y", 11));
	assert_true(warning_id_valid(id, WARNING_MAX_ID_LEN));
	assert_false(warning_id_valid(id, WARNING_MAX_ID_LEN + 1));
	assert_false(warning_id_valid("", 0));
	assert_false(warning_id_valid("a b", 3));
	assert_false(warning_id_valid("a/b", 3));
	assert_false(warning_id_valid("a\0b", 3));
	assert_false(warning_id_valid("台风", strlen("台风")));
	/* Only `len` bytes are examined. */
	assert_true(warning_id_valid("ab cd", 2));
	/* identifier longer than 128 is refused by validate. */
	struct good *g = good_warning();
	id[WARNING_MAX_ID_LEN] = 'a';
	id[WARNING_MAX_ID_LEN + 1] = '\0';
	g->w.identifier = id;
	assert_problem(&g->w, "identifier");
	id[WARNING_MAX_ID_LEN] = '\0';
	assert_valid(&g->w);
	free(g);
}

static void test_info_caps(void **state)
{
	struct good *g = good_warning();
	Tocsin__Info *many[WARNING_MAX_INFOS + 1];
	for (int i = 0; i <= WARNING_MAX_INFOS; i++)
		many[i] = &g->info[0];
	g->w.info = many;
	g->w.n_info = WARNING_MAX_INFOS;
	assert_valid(&g->w);
	g->w.n_info = WARNING_MAX_INFOS + 1;
	assert_problem(&g->w, "info");
	free(g);
}

static void test_enum_names(void **state)
{
	assert_string_equal(warning_status_name(TOCSIN__STATUS__ACTUAL), "Actual");
	assert_string_equal(warning_status_name(TOCSIN__STATUS__DRAFT), "Draft");
	assert_string_equal(warning_msg_type_name(TOCSIN__MSG_TYPE__CANCEL), "Cancel");
	assert_string_equal(warning_scope_name(TOCSIN__SCOPE__PRIVATE), "Private");
	assert_string_equal(warning_colour_name(TOCSIN__COLOUR__RED), "red");
	assert_string_equal(warning_colour_name(TOCSIN__COLOUR__COLOUR_UNSPECIFIED), "none");
	assert_string_equal(warning_category_name(TOCSIN__CATEGORY__OTHER), "Other");
	assert_string_equal(warning_severity_name((Tocsin__Severity)6), "?");
	assert_string_equal(warning_urgency_name((Tocsin__Urgency)-3), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_roundtrip),
		cmocka_unit_test(test_arena_cap),
		cmocka_unit_test(test_envelope_fields),
		cmocka_unit_test(test_envelope_garbage_and_size),
		cmocka_unit_test(test_required_fields),
		cmocka_unit_test(test_enum_range),
		cmocka_unit_test(test_sent_window),
		cmocka_unit_test(test_expires),
		cmocka_unit_test(test_scope_and_msg_type),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_national_id),
		cmocka_unit_test(test_id_valid),
		cmocka_unit_test(test_info_caps),
		cmocka_unit_test(test_enum_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
