/*
 * test_timefmt.c - the duration formatters of src/util/timefmt.h: the one
 * human-readable form and the load balancers' config syntax.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/util/timefmt.h"

static const char *
human(int64_t ms)
{
	static char buf[32];

	return duration_format(ms, buf, sizeof(buf));
}

static const char *
config(int64_t ms)
{
	static char buf[32];

	return duration_format_config(ms, buf, sizeof(buf));
}

static void
test_human_seconds_round_up(void **state)
{
	(void)state;
	assert_string_equal(human(0), "0s");
	assert_string_equal(human(-5000), "0s");
	assert_string_equal(human(1), "1s");
	assert_string_equal(human(1000), "1s");
	assert_string_equal(human(1001), "2s");
	assert_string_equal(human(59 * 1000), "59s");
	assert_string_equal(human(59 * 1000 + 1), "1m");
}

static void
test_human_two_largest_units_zero_second_left_out(void **state)
{
	(void)state;
	assert_string_equal(human(250 * 1000), "4m10s");
	assert_string_equal(human(300 * 1000), "5m");
	assert_string_equal(human(3599 * 1000), "59m59s");
	assert_string_equal(human(3600 * 1000), "1h");
	assert_string_equal(human((3 * 3600 + 2 * 60 + 59) * 1000LL), "3h2m"); /* seconds dropped */
	assert_string_equal(human(86400 * 1000LL), "1d");
	assert_string_equal(human((2 * 86400 + 4 * 3600 + 59) * 1000LL), "2d4h");
	assert_string_equal(human(400 * 86400 * 1000LL), "400d");
}

static void
test_config_whole_seconds_or_milliseconds(void **state)
{
	(void)state;
	assert_string_equal(config(2000), "2s");
	assert_string_equal(config(500), "500ms");
	assert_string_equal(config(1500), "1500ms");
	assert_string_equal(config(60 * 1000), "60s");
}

static void
test_parse_round_trips_config_seconds(void **state)
{
	int64_t ms = 0;

	(void)state;
	assert_int_equal(duration_parse("90", 1, INT64_MAX, &ms), 0);
	assert_int_equal(ms, 90 * 1000);
	assert_int_equal(duration_parse("10m", 1, INT64_MAX, &ms), 0);
	assert_string_equal(config(ms), "600s");
}

static void
test_parse_takes_every_unit(void **state)
{
	int64_t ms = 0;

	(void)state;
	assert_int_equal(duration_parse("500ms", 1, INT64_MAX, &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(duration_parse("2s", 1, INT64_MAX, &ms), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(duration_parse("2h", 1, INT64_MAX, &ms), 0);
	assert_int_equal(ms, 2 * 3600 * 1000);
	assert_int_equal(duration_parse("1d", 1, INT64_MAX, &ms), 0);
	assert_int_equal(ms, 86400 * 1000);
}

/* One rule for zero: in any unit, only where the caller allows it. */
static void
test_parse_zero_only_where_allowed(void **state)
{
	const char *zeros[] = {"0", "0s", "0ms", "0m", "00"};
	int64_t ms;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(zeros) / sizeof(zeros[0]); i++) {
		ms = 7;
		assert_int_equal(duration_parse(zeros[i], 1, INT64_MAX, &ms), -1);
		assert_int_equal(ms, 7);
		assert_int_equal(duration_parse(zeros[i], 0, INT64_MAX, &ms), 0);
		assert_int_equal(ms, 0);
	}
}

static void
test_parse_refuses_what_is_not_a_duration(void **state)
{
	const char *bad[] = {"",
	                     "5x",
	                     "-1",
	                     "+1",
	                     " 1",
	                     "1 ",
	                     "1.5s",
	                     "s",
	                     "ms",
	                     "1sm",
	                     "99999999999999999999",
	                     "9999999999999d"};
	int64_t ms = 7;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(duration_parse(bad[i], 0, INT64_MAX, &ms), -1);
	assert_int_equal(duration_parse(NULL, 0, INT64_MAX, &ms), -1);
	assert_int_equal(ms, 7);
}

static void
test_parse_bounds_are_inclusive(void **state)
{
	int64_t ms = 0;

	(void)state;
	assert_int_equal(duration_parse("1h", 1, 3600 * 1000, &ms), 0);
	assert_int_equal(duration_parse("3600001ms", 1, 3600 * 1000, &ms), -1);
	assert_int_equal(duration_parse("999ms", 1000, 3600 * 1000, &ms), -1);
	assert_int_equal(duration_parse("1", 1000, 3600 * 1000, &ms), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_human_seconds_round_up),
	    cmocka_unit_test(test_human_two_largest_units_zero_second_left_out),
	    cmocka_unit_test(test_config_whole_seconds_or_milliseconds),
	    cmocka_unit_test(test_parse_round_trips_config_seconds),
	    cmocka_unit_test(test_parse_takes_every_unit),
	    cmocka_unit_test(test_parse_zero_only_where_allowed),
	    cmocka_unit_test(test_parse_refuses_what_is_not_a_duration),
	    cmocka_unit_test(test_parse_bounds_are_inclusive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
