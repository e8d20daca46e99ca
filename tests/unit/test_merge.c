/*
 * test_merge.c - the sorted merge walk of src/util/merge.h: every key
 * visited once, in order, on the right side; NULL calls skipped; a
 * non-zero return stops the walk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/util/merge.h"

struct item {
	int n;
	const char *key;
};

static const char *
item_key(const void *e)
{
	return ((const struct item *)e)->key;
}

static const char *
string_key(const void *e)
{
	return *(const char *const *)e;
}

/* What the walk did, as "-a +b =c(1)" ... */
struct trace {
	char text[256];
	int stop_at; /* stop (return 7) on this call number; 0 never */
	int calls;
};

static int
step(struct trace *t, char sign, const char *key, int n)
{
	size_t len = strlen(t->text);

	snprintf(t->text + len, sizeof(t->text) - len, "%s%c%s(%d)", len ? " " : "", sign, key, n);
	return ++t->calls == t->stop_at ? 7 : 0;
}

static int
left_only(void *arg, const void *l)
{
	return step(arg, '-', item_key(l), ((const struct item *)l)->n);
}

static int
right_only(void *arg, const void *r)
{
	return step(arg, '+', string_key(r), 0);
}

static int
both(void *arg, const void *l, const void *r)
{
	assert_string_equal(item_key(l), string_key(r));
	return step(arg, '=', string_key(r), ((const struct item *)l)->n);
}

static const struct item left[] = {{1, "a"}, {2, "c"}, {3, "d"}, {4, "f"}};
static const char *const right[] = {"b", "c", "e", "f", "g"};

static int
walk(const struct merge_calls *calls, size_t n_left, size_t n_right, struct trace *t)
{
	struct merge_side l = {left, n_left, sizeof(left[0]), item_key};
	struct merge_side r = {right, n_right, sizeof(right[0]), string_key};

	return merge_walk(&l, &r, calls, t);
}

static void
test_every_key_once_in_order(void **state)
{
	static const struct merge_calls calls = {left_only, right_only, both};
	struct trace t = {"", 0, 0};

	(void)state;
	assert_int_equal(walk(&calls, 4, 5, &t), 0);
	assert_string_equal(t.text, "-a(1) +b(0) =c(2) -d(3) +e(0) =f(4) +g(0)");
}

static void
test_one_side_empty(void **state)
{
	static const struct merge_calls calls = {left_only, right_only, both};
	struct trace t = {"", 0, 0}, u = {"", 0, 0}, v = {"", 0, 0};

	(void)state;
	assert_int_equal(walk(&calls, 0, 2, &t), 0);
	assert_string_equal(t.text, "+b(0) +c(0)");
	assert_int_equal(walk(&calls, 2, 0, &u), 0);
	assert_string_equal(u.text, "-a(1) -c(2)");
	assert_int_equal(walk(&calls, 0, 0, &v), 0);
	assert_string_equal(v.text, "");
}

static void
test_null_calls_are_skipped(void **state)
{
	static const struct merge_calls only_removed = {left_only, NULL, NULL};
	struct trace t = {"", 0, 0};

	(void)state;
	assert_int_equal(walk(&only_removed, 4, 5, &t), 0);
	assert_string_equal(t.text, "-a(1) -d(3)");
}

static void
test_non_zero_stops_the_walk(void **state)
{
	static const struct merge_calls calls = {left_only, right_only, both};
	struct trace t = {"", 3, 0};

	(void)state;
	assert_int_equal(walk(&calls, 4, 5, &t), 7);
	assert_string_equal(t.text, "-a(1) +b(0) =c(2)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_key_once_in_order),
	    cmocka_unit_test(test_one_side_empty),
	    cmocka_unit_test(test_null_calls_are_skipped),
	    cmocka_unit_test(test_non_zero_stops_the_walk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
