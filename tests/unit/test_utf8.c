/*
 * test_utf8.c - repairing client-supplied bytes into valid UTF-8
 * (src/util/utf8.h): what is replaced, how much of it, and where a cut
 * falls. The expected replacements are those of Python's
 * bytes.decode("utf-8", "replace"), which follows the same Unicode rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/util/utf8.h"

#define FFFD UTF8_REPLACEMENT

static const char *
sanitized(const char *src, size_t len, size_t size)
{
	static char buf[512];

	utf8_sanitize(buf, size, src, len);
	return buf;
}

#define S(lit) sanitized(lit, sizeof(lit) - 1, 512)

static void
test_valid_text_is_copied_unchanged(void **state)
{
	(void)state;
	assert_string_equal(S("curl/8.5.0"), "curl/8.5.0");
	assert_string_equal(S("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"),
	                    "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
	assert_string_equal(S(""), "");
}

static void
test_stray_bytes_become_one_replacement_each(void **state)
{
	(void)state;
	assert_string_equal(S("a\xFF"
	                      "b"),
	                    "a" FFFD "b");
	assert_string_equal(S("\x80\x80"), FFFD FFFD);
	assert_string_equal(S("\xC0\xAF"), FFFD FFFD); /* overlong '/' */
	assert_string_equal(S("\xF5\x80"), FFFD FFFD); /* above U+10FFFF */
}

static void
test_broken_sequence_is_one_replacement_and_next_char_kept(void **state)
{
	(void)state;
	/* E2 82 starts a 3-byte character; 'x' breaks it off */
	assert_string_equal(S("\xE2\x82x"), FFFD "x");
	/* a truncated 4-byte sequence before a valid 2-byte one */
	assert_string_equal(S("\xF0\x9F\x98\xC3\xA9"), FFFD "\xC3\xA9");
	/* at the end of the input */
	assert_string_equal(S("ok\xE2\x82"), "ok" FFFD);
}

static void
test_surrogates_and_overlong_three_byte_forms_are_refused(void **state)
{
	(void)state;
	/* ED A0 80 is U+D800: ED allows only 80..9F next */
	assert_string_equal(S("\xED\xA0\x80"), FFFD FFFD FFFD);
	/* E0 80 80 is an overlong NUL: E0 allows only A0..BF next */
	assert_string_equal(S("\xE0\x80\x80"), FFFD FFFD FFFD);
	/* F4 90 80 80 is above U+10FFFF */
	assert_string_equal(S("\xF4\x90\x80\x80"), FFFD FFFD FFFD FFFD);
}

static void
test_nul_byte_is_replaced(void **state)
{
	(void)state;
	assert_string_equal(S("a\0b"), "a" FFFD "b");
}

static void
test_cut_falls_on_a_character_boundary(void **state)
{
	(void)state;
	/* 4 bytes of room: "a" and one 2-byte char fit, the next does not */
	assert_string_equal(sanitized("a\xC3\xA9\xC3\xA9", 5, 5), "a\xC3\xA9");
	/* a replacement that does not fit whole is dropped too */
	assert_string_equal(sanitized("ab\xFF", 3, 5), "ab");
	assert_string_equal(sanitized("abc", 3, 1), "");
}

static void
test_result_is_always_valid(void **state)
{
	unsigned char in[256];
	char out[300];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(255 - i);
	for (n = 1; n <= sizeof(out); n += 7) {
		size_t len = utf8_sanitize(out, n, (const char *)in, sizeof(in));
		assert_true(len < n);
		assert_int_equal(strlen(out), len);
		assert_true(utf8_is_valid(out, len));
	}
}

static void
test_is_valid(void **state)
{
	(void)state;
	assert_true(utf8_is_valid("caf\xC3\xA9", 5));
	assert_false(utf8_is_valid("caf\xC3", 4));
	assert_false(utf8_is_valid("a\0b", 3));
	assert_false(utf8_is_valid("\xED\xA0\x80", 3));
}

#define LEN(lit) utf8_length(lit, sizeof(lit) - 1)
#define COMPLETE(lit) utf8_complete_length(lit, sizeof(lit) - 1)

static void
test_length_counts_characters_not_bytes(void **state)
{
	(void)state;
	assert_int_equal(LEN(""), 0);
	assert_int_equal(LEN("abc"), 3);
	assert_int_equal(LEN("caf\xC3\xA9"), 4);                  /* 2-byte e-acute */
	assert_int_equal(LEN("\xE2\x82\xAC\xF0\x9F\x98\x80"), 2); /* 3 and 4 bytes */
	assert_int_equal(utf8_length("\xC3\xA9\xC3\xA9", 2), 1);  /* only bytes counted */
}

static void
test_complete_length_drops_a_character_cut_short(void **state)
{
	(void)state;
	assert_int_equal(COMPLETE("abc"), 3);
	assert_int_equal(COMPLETE(""), 0);
	assert_int_equal(COMPLETE("a\xC3\xA9"), 3);          /* whole */
	assert_int_equal(COMPLETE("a\xC3"), 1);              /* 2-byte lead alone */
	assert_int_equal(COMPLETE("a\xE2\x82"), 1);          /* 3-byte, 2 of 3 */
	assert_int_equal(COMPLETE("a\xE2\x82\xAC"), 4);      /* 3-byte whole */
	assert_int_equal(COMPLETE("ab\xF0\x9F\x98"), 2);     /* 4-byte, 3 of 4 */
	assert_int_equal(COMPLETE("ab\xF0\x9F\x98\x80"), 6); /* 4-byte whole */
	assert_int_equal(COMPLETE("\x80\x80"), 2);           /* no lead byte: nothing to judge */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_text_is_copied_unchanged),
	    cmocka_unit_test(test_stray_bytes_become_one_replacement_each),
	    cmocka_unit_test(test_broken_sequence_is_one_replacement_and_next_char_kept),
	    cmocka_unit_test(test_surrogates_and_overlong_three_byte_forms_are_refused),
	    cmocka_unit_test(test_nul_byte_is_replaced),
	    cmocka_unit_test(test_cut_falls_on_a_character_boundary),
	    cmocka_unit_test(test_result_is_always_valid),
	    cmocka_unit_test(test_is_valid),
	    cmocka_unit_test(test_length_counts_characters_not_bytes),
	    cmocka_unit_test(test_complete_length_drops_a_character_cut_short),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
