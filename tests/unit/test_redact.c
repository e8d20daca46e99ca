/*
 * test_redact.c - redact_quoted (src/util/redact.h): what libpq's parse
 * errors quote from a connection string never reaches a log or an answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/util/redact.h"

static void
test_quoted_part_is_hidden(void **state)
{
	char out[128];

	(void)state;
	redact_quoted("invalid connection option \"s3cret\"\n", out, sizeof(out));
	assert_string_equal(out, "invalid connection option \"…\"");
}

static void
test_quote_inside_a_secret_hides_the_rest_of_it(void **state)
{
	char out[128];

	(void)state;
	redact_quoted("missing \"=\" after \"pa\"ss word\" in connection info string", out,
	              sizeof(out));
	assert_null(strstr(out, "ss word"));
	assert_null(strstr(out, "pa"));
	assert_string_equal(out, "missing \"…\" in connection info string");
}

static void
test_unmatched_quote_hides_everything_after_it(void **state)
{
	char out[128];

	(void)state;
	redact_quoted("unterminated quoted string \"abc def", out, sizeof(out));
	assert_string_equal(out, "unterminated quoted string \"…\"");
}

/* The marker is 5 bytes: with 4 left it must be cut, not written past
 * the buffer (the canary byte after it stays). */
static void
test_marker_that_does_not_fit_is_cut_not_overflowed(void **state)
{
	char buf[16];
	size_t size;

	(void)state;
	for (size = 1; size < sizeof(buf); size++) {
		memset(buf, 'X', sizeof(buf));
		redact_quoted("abcd\"secret\"", buf, size);
		assert_int_equal(buf[size], 'X');
		assert_true(strlen(buf) < size);
		assert_null(strstr(buf, "secret"));
	}
}

static void
test_null_input_gives_an_empty_string(void **state)
{
	char out[4] = "abc";

	(void)state;
	redact_quoted(NULL, out, sizeof(out));
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quoted_part_is_hidden),
	    cmocka_unit_test(test_quote_inside_a_secret_hides_the_rest_of_it),
	    cmocka_unit_test(test_unmatched_quote_hides_everything_after_it),
	    cmocka_unit_test(test_marker_that_does_not_fit_is_cut_not_overflowed),
	    cmocka_unit_test(test_null_input_gives_an_empty_string),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
