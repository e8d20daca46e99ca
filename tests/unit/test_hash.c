/*
 * test_hash.c - FNV-1a (src/util/hash.h) gives the published 64-bit
 * values, and a hash built in pieces equals the hash of the whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/util/hash.h"

static void
test_known_values(void **state)
{
	(void)state;
	assert_true(fnv1a_str(FNV1A_START, "") == 0xcbf29ce484222325ULL);
	assert_true(fnv1a_str(FNV1A_START, "a") == 0xaf63dc4c8601ec8cULL);
	assert_true(fnv1a_str(FNV1A_START, "foobar") == 0x85944171f73967e8ULL);
}

static void
test_pieces_hash_like_the_whole(void **state)
{
	(void)state;
	assert_true(fnv1a(fnv1a(fnv1a_str(FNV1A_START, "shop"), "/", 1), "web12", 3) ==
	            fnv1a_str(FNV1A_START, "shop/web"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known_values),
	    cmocka_unit_test(test_pieces_hash_like_the_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
