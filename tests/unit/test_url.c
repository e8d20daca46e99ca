/*
 * test_url.c - the URL, form and host:port helpers of src/util/url.h.
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

static void
test_hostport_split_names_and_v4(void **state)
{
	char host[64];
	int port = -1, is_v6 = -1;

	(void)state;
	assert_int_equal(hostport_split("web1.example.com:8080", host, sizeof(host), &port, &is_v6),
	                 0);
	assert_string_equal(host, "web1.example.com");
	assert_int_equal(port, 8080);
	assert_int_equal(is_v6, 0);
	assert_int_equal(hostport_split("10.0.0.1:65535", host, sizeof(host), &port, &is_v6), 0);
	assert_int_equal(port, 65535);
	assert_int_equal(hostport_split(":0", host, sizeof(host), &port, &is_v6), 0);
	assert_string_equal(host, ""); /* an empty host and port 0 are the caller's call */
	assert_int_equal(port, 0);
}

static void
test_hostport_split_v6_in_brackets(void **state)
{
	char host[64];
	int port = -1, is_v6 = -1;

	(void)state;
	assert_int_equal(hostport_split("[::1]:80", host, sizeof(host), &port, &is_v6), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 80);
	assert_int_equal(is_v6, 1);
	/* without brackets the last ':' is the port's (the host is then
	 * "::1", which a caller checking host names refuses) */
	assert_int_equal(hostport_split("::1:80", host, sizeof(host), &port, &is_v6), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(is_v6, 0);
}

static void
test_hostport_split_refuses(void **state)
{
	static const char *const bad[] = {
	    "web1",     "web1:",   "web1:65536", "web1:123456", "web1:8o",  "web1:-1",
	    "web1: 80", "[::1]80", "[::1:80",    "[::1]x:80",   "web1:+80", "web1:80 ",
	};
	char host[64], small[4];
	int port, is_v6;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(hostport_split(bad[i], host, sizeof(host), &port, &is_v6), -1);
	assert_int_equal(hostport_split("abcd:80", small, sizeof(small), &port, &is_v6), -1);
	assert_int_equal(hostport_split("abc:80", small, sizeof(small), &port, &is_v6), 0);
}

static void
test_form_walk_gives_every_pair_raw(void **state)
{
	const char text[] = "a=1&node=web+1&&flag&b=%41=x&";
	const char *pos = text, *end = text + strlen(text);
	struct url_form_pair p;

	(void)state;
	assert_int_equal(url_form_next(&pos, end, &p), 1);
	assert_true(url_form_key_is(&p, "a") && p.has_value && p.value_len == 1);
	assert_int_equal(url_form_next(&pos, end, &p), 1);
	assert_true(url_form_key_is(&p, "node"));
	assert_memory_equal(p.value, "web+1", 5); /* raw: decoding is the caller's */
	assert_int_equal(url_form_next(&pos, end, &p), 1);
	assert_true(p.key_len == 0 && !p.has_value); /* "&&" */
	assert_int_equal(url_form_next(&pos, end, &p), 1);
	assert_true(url_form_key_is(&p, "flag") && !p.has_value && p.value_len == 0);
	assert_int_equal(url_form_next(&pos, end, &p), 1);
	assert_true(url_form_key_is(&p, "b") && p.value_len == 5); /* "%41=x": first '=' */
	assert_int_equal(url_form_next(&pos, end, &p), 0);         /* the trailing '&' ends it */
	assert_int_equal(url_form_next(&pos, end, &p), 0);
}

static void
test_form_walk_of_nothing_gives_nothing(void **state)
{
	const char *pos = NULL;
	struct url_form_pair p;

	(void)state;
	assert_int_equal(url_form_next(&pos, NULL, &p), 0);
	pos = "";
	assert_int_equal(url_form_next(&pos, pos, &p), 0);
	assert_false(url_form_key_is(&(struct url_form_pair){.key = "ab", .key_len = 2}, "a"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_form_walk_gives_every_pair_raw),
	    cmocka_unit_test(test_form_walk_of_nothing_gives_nothing),
	    cmocka_unit_test(test_form_decode_plus_and_percent),
	    cmocka_unit_test(test_form_decode_reads_only_n_bytes),
	    cmocka_unit_test(test_form_decode_refuses_an_encoded_nul),
	    cmocka_unit_test(test_hostport_split_names_and_v4),
	    cmocka_unit_test(test_hostport_split_v6_in_brackets),
	    cmocka_unit_test(test_hostport_split_refuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
