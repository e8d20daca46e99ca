/*
 * test_url.c - the URL and form helpers of src/util/url.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/util/url.h"

#define DECODE(lit) url_form_decode(lit, sizeof(lit) - 1)

static void
assert_decodes(char *got, const char *want)
{
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

static void
test_form_decode_plus_and_percent(void **state)
{
	(void)state;
	assert_decodes(DECODE("a+b%20c"), "a b c");
	assert_decodes(DECODE("%2Fhealth%2Fmanagenodes%3Fx%3D1"), "/health/managenodes?x=1");
	assert_decodes(DECODE("caf%C3%A9"), "caf\xC3\xA9");
	assert_decodes(DECODE("%2B"), "+"); /* an encoded '+' stays a plus */
	assert_decodes(DECODE(""), "");
}

static void
test_form_decode_reads_only_n_bytes(void **state)
{
	(void)state;
	assert_decodes(url_form_decode("ab&c=d", 2), "ab");
}

static void
test_form_decode_refuses_an_encoded_nul(void **state)
{
	(void)state;
	assert_null(DECODE("a%00b"));
	assert_null(DECODE("%00"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_form_decode_plus_and_percent),
	    cmocka_unit_test(test_form_decode_reads_only_n_bytes),
	    cmocka_unit_test(test_form_decode_refuses_an_encoded_nul),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
