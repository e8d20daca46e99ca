/*
 * test_pg_share.c - the array literals of the fleet's batch statements
 * (src/store/pg_share.c): every element quoted, backslash and double
 * quote escaped, so that any user agent or user name survives; the
 * session hashes as 64 hex digits. What PostgreSQL makes of them is the
 * e2e suites' (test_pg_fleet.py, test_postgres.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/store/pg_share.h"

static void
test_probe_arrays_quote_every_element_and_escape_quotes_and_backslashes(void **state)
{
	struct probe_report r[2];
	char *p[PG_SHARE_PROBE_COLUMNS];

	(void)state;
	memset(r, 0, sizeof(r));
	snprintf(r[0].daemon, sizeof(r[0].daemon), "h:1");
	snprintf(r[0].user_agent, sizeof(r[0].user_agent), "a\"b\\c,{d}");
	r[0].last_at = 42;
	snprintf(r[1].daemon, sizeof(r[1].daemon), "h:2");
	r[1].last_at = -1;
	pg_share_probe_arrays(r, 2, p);
	assert_string_equal(p[0], "{\"h:1\",\"h:2\"}");
	assert_string_equal(p[6], "{\"a\\\"b\\\\c,{d}\",\"\"}");
	assert_string_equal(p[9], "{\"42\",\"-1\"}");
	pg_share_free_params(p, PG_SHARE_PROBE_COLUMNS);
	assert_null(p[0]);
}

static void
test_probe_arrays_of_no_report_are_empty_arrays(void **state)
{
	char *p[PG_SHARE_PROBE_COLUMNS];
	int c;

	(void)state;
	pg_share_probe_arrays(NULL, 0, p);
	for (c = 0; c < PG_SHARE_PROBE_COLUMNS; c++)
		assert_string_equal(p[c], "{}");
	pg_share_free_params(p, PG_SHARE_PROBE_COLUMNS);
}

/* Node entries and whole clusters go to arrays of their own. */
static void
test_interest_arrays_split_nodes_from_whole_clusters(void **state)
{
	struct probe_interest in[3];
	char *p[PG_SHARE_INTEREST_COLUMNS];

	(void)state;
	memset(in, 0, sizeof(in));
	snprintf(in[0].cluster, sizeof(in[0].cluster), "default");
	snprintf(in[0].node, sizeof(in[0].node), "web\"1");
	in[0].is_new = 1;
	snprintf(in[1].cluster, sizeof(in[1].cluster), "shop");
	snprintf(in[2].cluster, sizeof(in[2].cluster), "default");
	snprintf(in[2].node, sizeof(in[2].node), "web2");
	pg_share_interest_arrays(in, 3, p);
	assert_string_equal(p[0], "{\"default\",\"default\"}");
	assert_string_equal(p[1], "{\"web\\\"1\",\"web2\"}");
	assert_string_equal(p[2], "{\"t\",\"f\"}");
	assert_string_equal(p[3], "{\"shop\"}");
	assert_string_equal(p[4], "{\"f\"}");
	pg_share_free_params(p, PG_SHARE_INTEREST_COLUMNS);
	assert_null(p[0]);
}

static void
test_session_arrays_carry_hex_hashes_names_and_expiry(void **state)
{
	struct session_record s[1];
	char *p[PG_SHARE_SESSION_COLUMNS];
	char want[80];

	(void)state;
	memset(s, 0, sizeof(s));
	memset(s[0].id_hash, 0xab, sizeof(s[0].id_hash));
	memset(s[0].tag, 0x01, sizeof(s[0].tag));
	snprintf(s[0].user, sizeof(s[0].user), "o\"hara");
	s[0].expires_at = 1700000000000;
	pg_share_session_arrays(s, 1, 0, p);
	snprintf(want, sizeof(want), "{\"%s\"}",
	         "abababababababababababababababababababababababababababababababab");
	assert_string_equal(p[0], want);
	assert_string_equal(p[1], "{\"o\\\"hara\"}");
	snprintf(want, sizeof(want), "{\"%s\"}",
	         "0101010101010101010101010101010101010101010101010101010101010101");
	assert_string_equal(p[2], want);
	assert_string_equal(p[3], "{\"1700000000000\"}");
	pg_share_free_params(p, PG_SHARE_SESSION_COLUMNS);
}

static void
test_session_arrays_carry_the_identity_providers_user(void **state)
{
	struct session_record s[2];
	char *p[PG_SHARE_SESSION_COLUMNS];

	(void)state;
	memset(s, 0, sizeof(s));
	s[0].kind = SESSION_RECORD_OIDC;
	snprintf(s[0].name, sizeof(s[0].name), "alice");
	snprintf(s[0].issuer, sizeof(s[0].issuer), "https://sso.example.com");
	snprintf(s[0].subject, sizeof(s[0].subject), "sub-1");
	snprintf(s[0].email, sizeof(s[0].email), "alice@example.com");
	s[0].groups = "team-shop\nstaff";
	s[0].id_token = "sealed";
	s[1].kind = SESSION_RECORD_PASSWORD; /* no groups, no token: empty texts */
	pg_share_session_arrays(s, 2, 0, p);
	assert_string_equal(p[4], "{\"1\",\"0\"}");
	assert_string_equal(p[5], "{\"alice\",\"\"}");
	assert_string_equal(p[6], "{\"https://sso.example.com\",\"\"}");
	assert_string_equal(p[7], "{\"sub-1\",\"\"}");
	assert_string_equal(p[8], "{\"alice@example.com\",\"\"}");
	assert_string_equal(p[9], "{\"team-shop\nstaff\",\"\"}");
	assert_string_equal(p[10], "{\"sealed\",\"\"}");
	pg_share_free_params(p, PG_SHARE_SESSION_COLUMNS);
}

static void
test_session_id_arrays_hold_the_hashes_alone(void **state)
{
	struct session_record s[2];
	char *p[PG_SHARE_SESSION_COLUMNS];

	(void)state;
	memset(s, 0, sizeof(s));
	pg_share_session_arrays(s, 2, 1, p);
	assert_non_null(p[0]);
	assert_int_equal(strlen(p[0]), 2 + 2 * 66 + 1); /* {"64 digits","64 digits"} */
	assert_null(p[1]);
	assert_null(p[3]);
	pg_share_free_params(p, PG_SHARE_SESSION_COLUMNS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(
	        test_probe_arrays_quote_every_element_and_escape_quotes_and_backslashes),
	    cmocka_unit_test(test_probe_arrays_of_no_report_are_empty_arrays),
	    cmocka_unit_test(test_interest_arrays_split_nodes_from_whole_clusters),
	    cmocka_unit_test(test_session_arrays_carry_hex_hashes_names_and_expiry),
	    cmocka_unit_test(test_session_arrays_carry_the_identity_providers_user),
	    cmocka_unit_test(test_session_id_arrays_hold_the_hashes_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
