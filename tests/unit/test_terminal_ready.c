/*
 * tests/unit/test_terminal_ready.c: broadcast readiness arithmetic
 * (adapters/terminal_ready.h): exact covered figures per community, street
 * and district as terminals go online and offline, overlapping coverage
 * counted once, and nothing below zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../adapters/terminal_ready.c"

/*
 * D (1000) ─ S1 (600) ─ C1 (400) ─ B1 (100), B2 (300)
 *          │          └ C2 (200) ─ B3 (200)
 *          └ S2 (400) ─ C3 (400)
 */
struct tree {
	struct tready r;
	uint32_t d, s1, s2, c1, c2, c3, b1, b2, b3;
};

static void build(struct tree *t)
{
	struct tready *r = &t->r;
	*r = (struct tready){0};
	t->d = tready_add_seg(r, TREADY_DISTRICT, TREADY_NONE, 1000, "D");
	t->s1 = tready_add_seg(r, TREADY_STREET, t->d, 600, "S1");
	t->c1 = tready_add_seg(r, TREADY_COMMUNITY, t->s1, 400, "C1");
	t->b1 = tready_add_seg(r, TREADY_BUILDING, t->c1, 100, "B1");
	t->b2 = tready_add_seg(r, TREADY_BUILDING, t->c1, 300, "B2");
	t->c2 = tready_add_seg(r, TREADY_COMMUNITY, t->s1, 200, "C2");
	t->b3 = tready_add_seg(r, TREADY_BUILDING, t->c2, 200, "B3");
	t->s2 = tready_add_seg(r, TREADY_STREET, t->d, 400, "S2");
	t->c3 = tready_add_seg(r, TREADY_COMMUNITY, t->s2, 400, "C3");
	assert_int_equal(r->n, 9);
}

static uint64_t cov(const struct tree *t, uint32_t s)
{
	return t->r.segs[s].covered;
}

static void test_nothing_online(void **state)
{
	struct tree t;
	build(&t);
	uint64_t persons, covered;
	tready_total(&t.r, &persons, &covered);
	assert_int_equal(persons, 1000);
	assert_int_equal(covered, 0);
	tready_release(&t.r);
}

static void test_community_and_building(void **state)
{
	struct tree t;
	build(&t);
	tready_add_terminal(&t.r, t.b1);
	tready_add_terminal(&t.r, t.c1);
	tready_add_terminal(&t.r, t.c1);
	assert_int_equal(t.r.segs[t.d].terms, 3);
	assert_int_equal(t.r.segs[t.s1].terms, 3);
	assert_int_equal(t.r.segs[t.s2].terms, 0);

	tready_online(&t.r, t.b1, +1); /* a display: its building only */
	assert_int_equal(cov(&t, t.c1), 100);
	assert_int_equal(cov(&t, t.s1), 100);
	assert_int_equal(cov(&t, t.d), 100);

	tready_online(&t.r, t.c1, +1); /* a speaker: the whole community, B1 not twice */
	assert_int_equal(cov(&t, t.c1), 400);
	assert_int_equal(cov(&t, t.s1), 400);
	tready_online(&t.r, t.c1, +1); /* a second speaker adds nobody */
	assert_int_equal(cov(&t, t.c1), 400);
	assert_int_equal(t.r.segs[t.c1].online_sub, 3);
	assert_int_equal(t.r.segs[t.d].online_sub, 3);

	tready_online(&t.r, t.c1, -1); /* one speaker left: still covered */
	assert_int_equal(cov(&t, t.c1), 400);
	tready_online(&t.r, t.c1, -1); /* back to the display's building */
	assert_int_equal(cov(&t, t.c1), 100);
	assert_int_equal(cov(&t, t.d), 100);
	tready_online(&t.r, t.b1, -1);
	assert_int_equal(cov(&t, t.d), 0);
	tready_online(&t.r, t.b1, -1); /* more offline than online: ignored */
	assert_int_equal(cov(&t, t.d), 0);
	assert_int_equal(t.r.segs[t.d].online_sub, 0);
	tready_release(&t.r);
}

static void test_streets_sum(void **state)
{
	struct tree t;
	build(&t);
	tready_online(&t.r, t.b3, +1);
	tready_online(&t.r, t.c3, +1);
	tready_online(&t.r, t.b2, +1);
	assert_int_equal(cov(&t, t.c1), 300);
	assert_int_equal(cov(&t, t.c2), 200);
	assert_int_equal(cov(&t, t.s1), 500);
	assert_int_equal(cov(&t, t.s2), 400);
	uint64_t persons, covered;
	tready_total(&t.r, &persons, &covered);
	assert_int_equal(covered, 900);
	tready_online(&t.r, t.c2, +1); /* C2's only building already covered: no change */
	assert_int_equal(cov(&t, t.s1), 500);
	tready_online(&t.r, t.b3, -1); /* the speaker still covers C2 */
	assert_int_equal(cov(&t, t.c2), 200);
	tready_online(&t.r, t.c2, -1);
	assert_int_equal(cov(&t, t.c2), 0);
	assert_int_equal(cov(&t, t.s1), 300);
	tready_release(&t.r);
}

static void test_bad_parent(void **state)
{
	struct tree t;
	build(&t);
	assert_int_equal(tready_add_seg(&t.r, TREADY_STREET, t.c1, 5, "X"), TREADY_NONE);
	assert_int_equal(tready_add_seg(&t.r, TREADY_BUILDING, 99, 5, "X"), TREADY_NONE);
	tready_online(&t.r, 99, +1); /* unknown segment: ignored */
	tready_release(&t.r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing_online),
		cmocka_unit_test(test_community_and_building),
		cmocka_unit_test(test_streets_sum),
		cmocka_unit_test(test_bad_parent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
