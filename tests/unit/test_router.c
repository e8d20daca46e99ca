/*
 * test_router.c - the path table (src/http/router.c): which line a method
 * and a path reach, what the patterns capture, and the refusals decided
 * in one place (404, 405 with its Allow list, 400 for a bad name), against
 * a model with several clusters mounted at one and at two segments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http/api_v1.h"
#include "../../src/http/compat.h"
#include "../../src/http/probe.h"
#include "../../src/http/router.h"
#include "../../src/http/ui.h"

#define T0 1700000000000LL

static const struct actor alice = {"alice", "192.0.2.1"};

/* "default" at /health, "web" at /lb/web, "login" at /login. */
static int
setup(void **state)
{
	struct model *m = model_new();
	struct error err;

	assert_int_equal(model_add_cluster(m, "default", "/health", &alice, T0, NULL, &err), 0);
	assert_int_equal(model_add_cluster(m, "web", "/lb/web", &alice, T0, NULL, &err), 0);
	assert_int_equal(model_add_cluster(m, "login", "/login", &alice, T0, NULL, &err), 0);
	*state = m;
	return 0;
}

static int
teardown(void **state)
{
	model_free(*state);
	return 0;
}

/* One router_match, its results kept for the assertions. */
struct outcome {
	int status;
	struct route rt;
	enum route_surface surface;
	char allow[ROUTE_ALLOW_SIZE];
	struct error err;
};

static struct outcome
match(void **state, const char *method, const char *path)
{
	struct outcome o;

	memset(&o, 0, sizeof(o));
	o.status =
	    router_match(*state, h2o_iovec_init(method, strlen(method)),
	                 h2o_iovec_init(path, strlen(path)), &o.rt, &o.surface, o.allow, &o.err);
	return o;
}

static void
test_table_follows_its_own_rules(void **state)
{
	struct error err = {0};
	const struct route_entry *t;
	size_t n;

	(void)state;
	t = router_table(&n);
	if (router_table_check(t, n, &err) != 0)
		fail_msg("%s", err.what);
}

/* router_table_check refuses what the matching could not handle. */
static void
assert_table_refused(const struct route_entry *t, size_t n, const char *why)
{
	struct error err = {0};

	assert_int_equal(router_table_check(t, n, &err), -1);
	if (strstr(err.what, why) == NULL)
		fail_msg("expected '%s', got '%s'", why, err.what);
}

static void
test_table_check_refuses_bad_tables(void **state)
{
	const struct route_entry unknown_capture[] = {{SURFACE_API_V1, "/v1/{clustr}", ROUTE_GET,
	                                               ROUTE_PUBLIC, ROLE_NONE, api_v1_health_get,
	                                               NULL}};
	const struct route_entry partial_segment[] = {{SURFACE_API_V1, "/v1/x{node}", ROUTE_GET,
	                                               ROUTE_PUBLIC, ROLE_NONE, api_v1_health_get,
	                                               NULL}};
	const struct route_entry no_slash[] = {
	    {SURFACE_API_V1, "v1", ROUTE_GET, ROUTE_PUBLIC, ROLE_NONE, api_v1_health_get, NULL}};
	const struct route_entry two_names[] = {{SURFACE_API_V1, "/v1/{user}/{token}", ROUTE_GET,
	                                         ROUTE_PUBLIC, ROLE_NONE, api_v1_health_get, NULL}};
	const struct route_entry apart[] = {
	    {SURFACE_API_V1, "/v1/a", ROUTE_GET, ROUTE_PUBLIC, ROLE_NONE, api_v1_health_get, NULL},
	    {SURFACE_API_V1, "/v1/b", ROUTE_GET, ROUTE_PUBLIC, ROLE_NONE, api_v1_health_get, NULL},
	    {SURFACE_API_V1, "/v1/a", ROUTE_POST, ROUTE_PUBLIC, ROLE_NONE, api_v1_health_get,
	     NULL}};
	const struct route_entry method_twice[] = {
	    {SURFACE_API_V1, "/v1/a", ROUTE_GET, ROUTE_PUBLIC, ROLE_NONE, api_v1_health_get, NULL},
	    {SURFACE_API_V1, "/v1/a", ROUTE_GET | ROUTE_PUT, ROUTE_CREDENTIALS, ROLE_ADMIN,
	     api_v1_health_get, NULL}};
	const struct route_entry public_with_role[] = {{SURFACE_API_V1, "/v1/a", ROUTE_GET,
	                                                ROUTE_PUBLIC, ROLE_ADMIN, api_v1_health_get,
	                                                NULL}};
	const struct route_entry gated_without_role[] = {{SURFACE_API_V1, "/v1/a", ROUTE_GET,
	                                                  ROUTE_CREDENTIALS, ROLE_NONE,
	                                                  api_v1_health_get, NULL}};
	const struct route_entry admin_page[] = {
	    {SURFACE_UI, "/a", ROUTE_GET, ROUTE_PAGE, ROLE_ADMIN, ui_root_page, NULL}};
	const struct route_entry same_form_twice[] = {
	    {SURFACE_UI, "/a", ROUTE_POST, ROUTE_FORM, ROLE_OPERATOR, ui_root_page, "x"},
	    {SURFACE_UI, "/a", ROUTE_POST, ROUTE_FORM, ROLE_ADMIN, ui_root_page, "x"}};
	const struct route_entry form_and_plain[] = {
	    {SURFACE_UI, "/a", ROUTE_POST, ROUTE_FORM, ROLE_OPERATOR, ui_root_page, "x"},
	    {SURFACE_UI, "/a", ROUTE_POST, ROUTE_FORM, ROLE_ADMIN, ui_root_page, NULL}};
	const struct route_entry form_key_off_a_form[] = {
	    {SURFACE_API_V1, "/a", ROUTE_POST, ROUTE_CREDENTIALS, ROLE_ADMIN, ui_root_page, "x"}};

	(void)state;
	assert_table_refused(unknown_capture, 1, "unknown capture");
	assert_table_refused(partial_segment, 1, "whole segment");
	assert_table_refused(no_slash, 1, "starts with neither");
	assert_table_refused(two_names, 1, "same field");
	assert_table_refused(apart, 3, "not adjacent");
	assert_table_refused(method_twice, 2, "a method on two lines");
	assert_table_refused(public_with_role, 1, "no role");
	assert_table_refused(gated_without_role, 1, "no role");
	assert_table_refused(admin_page, 1, "pages let viewers in");
	assert_table_refused(same_form_twice, 2, "a method on two lines");
	assert_table_refused(form_and_plain, 2, "a method on two lines");
	assert_table_refused(form_key_off_a_form, 1, "only form lines are keyed on a form");
}

/* Who may do what on the page is read from the table: each action of
 * the managenodes form is a line with its own role. */
static void
test_table_says_which_role_each_managenodes_action_needs(void **state)
{
	const struct route_entry *t;
	int found_status = 0, found_nodes = 0;
	size_t i, n;

	(void)state;
	t = router_table(&n);
	for (i = 0; i < n; i++) {
		if (strcmp(t[i].pattern, "{mount}/managenodes") != 0 || t[i].methods != ROUTE_POST)
			continue;
		assert_int_equal(t[i].gate, ROUTE_FORM);
		assert_non_null(t[i].form);
		if (strcmp(t[i].form, "status") == 0) {
			assert_int_equal(t[i].role, ROLE_OPERATOR);
			assert_ptr_equal(t[i].handle, ui_nodes_status_post);
			found_status = 1;
		} else if (strcmp(t[i].form, "nodes") == 0) {
			assert_int_equal(t[i].role, ROLE_ADMIN);
			assert_ptr_equal(t[i].handle, ui_nodes_list_post);
			found_nodes = 1;
		} else {
			fail_msg("unexpected managenodes form '%s'", t[i].form);
		}
	}
	assert_true(found_status && found_nodes);
}

/* --- mounts ------------------------------------------------------------- */

static void
test_probe_reaches_the_cluster_mounted_at_the_path(void **state)
{
	struct outcome o = match(state, "GET", "/health");

	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, probe_handle);
	assert_int_equal(o.surface, SURFACE_PROBE);
	assert_non_null(o.rt.mounted);
	assert_string_equal(o.rt.mounted->name, "default");
}

static void
test_probe_takes_head(void **state)
{
	assert_int_equal(match(state, "HEAD", "/health").status, 0);
}

static void
test_mount_of_two_segments_is_matched_whole(void **state)
{
	struct outcome o = match(state, "GET", "/lb/web");

	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, probe_handle);
	assert_string_equal(o.rt.mounted->name, "web");
	/* a prefix of a mount is no mount */
	o = match(state, "GET", "/lb");
	assert_int_equal(o.status, 404);
	assert_int_equal(o.surface, SURFACE_UI);
}

static void
test_mount_matches_on_segment_boundaries_only(void **state)
{
	struct outcome o = match(state, "GET", "/healthz");

	assert_int_equal(o.status, 404);
	assert_int_equal(o.surface, SURFACE_UI);
	assert_string_equal(o.err.what, "not found");
}

static void
test_seed_rest_paths_of_each_cluster(void **state)
{
	struct outcome o = match(state, "GET", "/lb/web/++rest++nodestatus");

	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, compat_nodestatus);
	assert_string_equal(o.rt.mounted->name, "web");
	assert_int_equal(o.rt.entry->gate, ROUTE_OR_SESSION);
	assert_int_equal(o.rt.entry->role, ROLE_VIEWER);

	o = match(state, "POST", "/health/++rest++setstatus");
	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, compat_setstatus);
	assert_string_equal(o.rt.mounted->name, "default");
	assert_int_equal(o.rt.entry->gate, ROUTE_CREDENTIALS);
	assert_int_equal(o.rt.entry->role, ROLE_OPERATOR);
}

static void
test_unknown_rest_action_is_the_seed_rest_404(void **state)
{
	struct outcome o = match(state, "GET", "/health/++rest++nope");

	assert_int_equal(o.status, 404);
	assert_int_equal(o.surface, SURFACE_COMPAT);
	assert_string_equal(o.err.what, "unknown REST action '++rest++nope'");
	/* "++rest++" alone, or more than one segment, is not a REST action */
	o = match(state, "GET", "/health/++rest++");
	assert_int_equal(o.surface, SURFACE_UI);
	o = match(state, "GET", "/health/++rest++nodestatus/x");
	assert_int_equal(o.status, 404);
	assert_int_equal(o.surface, SURFACE_UI);
}

static void
test_wrong_method_on_the_seed_rest_is_405_with_allow(void **state)
{
	struct outcome o = match(state, "GET", "/health/++rest++setstatus");

	assert_int_equal(o.status, 405);
	assert_int_equal(o.surface, SURFACE_COMPAT);
	assert_string_equal(o.allow, "POST");
	o = match(state, "POST", "/health/++rest++nodestatus");
	assert_int_equal(o.status, 405);
	assert_string_equal(o.allow, "GET, HEAD");
}

static void
test_probe_with_another_method_is_405(void **state)
{
	struct outcome o = match(state, "POST", "/lb/web");

	assert_int_equal(o.status, 405);
	assert_int_equal(o.surface, SURFACE_PROBE);
	assert_string_equal(o.allow, "GET, HEAD");
}

static void
test_manage_pages_of_each_cluster(void **state)
{
	struct outcome o = match(state, "GET", "/lb/web/managenodes");

	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, ui_nodes_page);
	assert_string_equal(o.rt.mounted->name, "web");
	assert_int_equal(o.rt.entry->gate, ROUTE_PAGE);
	o = match(state, "POST", "/health/managenodes");
	assert_int_equal(o.rt.entry->gate, ROUTE_FORM);
	assert_non_null(o.rt.entry->form); /* the dispatch picks the line by form */
	assert_string_equal(o.rt.mounted->name, "default");
	/* manage_main redirects whatever the method */
	o = match(state, "PATCH", "/lb/web/manage_main");
	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, ui_manage_main);
	assert_string_equal(o.rt.mounted->name, "web");
}

static void
test_a_mount_comes_before_the_page_path_it_shadows(void **state)
{
	struct outcome o = match(state, "GET", "/login");

	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, probe_handle);
	assert_string_equal(o.rt.mounted->name, "login");
}

/* --- the v1 API ---------------------------------------------------------- */

static void
test_api_captures_cluster_and_node(void **state)
{
	struct outcome o = match(state, "PUT", "/v1/clusters/web/nodes/n-1.a_b");

	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, api_v1_node_put);
	assert_int_equal(o.surface, SURFACE_API_V1);
	assert_string_equal(o.rt.cluster, "web");
	assert_string_equal(o.rt.name, "n-1.a_b");
	assert_null(o.rt.mounted);
	assert_int_equal(o.rt.entry->gate, ROUTE_CREDENTIALS);
	assert_int_equal(o.rt.entry->role, ROLE_ADMIN);
}

static void
test_api_captures_users_and_tokens(void **state)
{
	struct outcome o = match(state, "DELETE", "/v1/users/bob");

	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, api_v1_user_delete);
	assert_string_equal(o.rt.name, "bob");
	o = match(state, "DELETE", "/v1/tokens/ab12cd34");
	assert_ptr_equal(o.rt.entry->handle, api_v1_token_delete);
	assert_string_equal(o.rt.name, "ab12cd34");
}

static void
test_api_reads_let_sessions_in_and_writes_do_not(void **state)
{
	assert_int_equal(match(state, "GET", "/v1/clusters").rt.entry->gate, ROUTE_OR_SESSION);
	assert_int_equal(match(state, "POST", "/v1/clusters").rt.entry->gate, ROUTE_CREDENTIALS);
	assert_int_equal(match(state, "GET", "/v1/health").rt.entry->gate, ROUTE_PUBLIC);
}

static void
test_api_path_that_matches_nothing_is_the_api_404(void **state)
{
	struct outcome o = match(state, "GET", "/v1/nope");

	assert_int_equal(o.status, 404);
	assert_int_equal(o.surface, SURFACE_API_V1);
	assert_string_equal(o.err.what, "no such API path: /v1/nope");
	assert_int_equal(match(state, "GET", "/v1").surface, SURFACE_API_V1);
	assert_int_equal(match(state, "GET", "/v1").status, 404);
	/* an empty segment captures nothing */
	assert_int_equal(match(state, "GET", "/v1/clusters/").status, 404);
	assert_int_equal(match(state, "GET", "/v1/clusters//nodes").status, 404);
	/* one segment too many */
	assert_int_equal(match(state, "GET", "/v1/clusters/web/nodes/a/b").status, 404);
}

static void
test_api_wrong_method_is_405_listing_every_method_of_the_path(void **state)
{
	struct outcome o = match(state, "POST", "/v1/clusters/web/nodes/a");

	assert_int_equal(o.status, 405);
	assert_int_equal(o.surface, SURFACE_API_V1);
	assert_string_equal(o.allow, "GET, PUT, DELETE");
	o = match(state, "PATCH", "/v1/clusters");
	assert_int_equal(o.status, 405);
	assert_string_equal(o.allow, "GET, POST");
	/* the API's reads take GET only */
	o = match(state, "HEAD", "/v1/health");
	assert_int_equal(o.status, 405);
	assert_string_equal(o.allow, "GET");
}

static void
test_api_bad_name_in_the_path_is_400_naming_it(void **state)
{
	struct outcome o = match(state, "GET", "/v1/clusters/bad name/nodes");

	assert_int_equal(o.status, 400);
	assert_int_equal(o.surface, SURFACE_API_V1);
	assert_string_equal(o.err.entry, "bad name");
	assert_non_null(strstr(o.err.what, "cluster 'bad name': invalid name"));
	o = match(state, "GET", "/v1/clusters/web/nodes/..");
	assert_int_equal(o.status, 400);
	assert_non_null(strstr(o.err.what, "node '..': invalid name"));
	o = match(state, "DELETE", "/v1/users/a%b");
	assert_int_equal(o.status, 400);
	assert_non_null(strstr(o.err.what, "user 'a%b'"));
}

static void
test_api_name_longer_than_a_name_is_400(void **state)
{
	char path[200];
	struct outcome o;

	snprintf(path, sizeof(path), "/v1/tokens/%065d", 0);
	o = match(state, "DELETE", path);
	assert_int_equal(o.status, 400);
	assert_non_null(strstr(o.err.what, "token '"));
}

static void
test_wrong_method_is_decided_before_a_bad_name(void **state)
{
	struct outcome o = match(state, "POST", "/v1/clusters/bad name");

	assert_int_equal(o.status, 405);
	assert_string_equal(o.allow, "GET, DELETE");
}

/* --- the page ------------------------------------------------------------ */

static void
test_page_paths_and_their_gates(void **state)
{
	struct outcome o = match(state, "GET", "/");

	assert_ptr_equal(o.rt.entry->handle, ui_root_page);
	assert_int_equal(o.rt.entry->gate, ROUTE_PAGE);
	o = match(state, "POST", "/admin");
	assert_ptr_equal(o.rt.entry->handle, ui_admin_post);
	assert_int_equal(o.rt.entry->gate, ROUTE_FORM);
	assert_int_equal(o.rt.entry->role, ROLE_ADMIN);
	o = match(state, "POST", "/logout");
	assert_ptr_equal(o.rt.entry->handle, ui_logout_post);
}

static void
test_page_wrong_method_is_the_page_405(void **state)
{
	struct outcome o = match(state, "POST", "/");

	assert_int_equal(o.status, 405);
	assert_int_equal(o.surface, SURFACE_UI);
	assert_string_equal(o.allow, "GET, HEAD");
	o = match(state, "GET", "/clusters");
	assert_string_equal(o.allow, "POST");
	o = match(state, "PUT", "/admin");
	assert_string_equal(o.allow, "GET, HEAD, POST");
}

static void
test_unknown_page_path_is_a_text_404(void **state)
{
	struct outcome o = match(state, "GET", "/nope");

	assert_int_equal(o.status, 404);
	assert_int_equal(o.surface, SURFACE_UI);
	assert_string_equal(o.err.what, "not found");
	assert_int_equal(match(state, "GET", "/lb/web/unknown").status, 404);
}

static void
test_assets_capture_their_name(void **state)
{
	struct outcome o = match(state, "GET", "/static/ui.css");

	assert_int_equal(o.status, 0);
	assert_ptr_equal(o.rt.entry->handle, ui_asset_get);
	assert_string_equal(o.rt.name, "ui.css");
	o = match(state, "POST", "/static/ui.css");
	assert_int_equal(o.status, 405);
	assert_int_equal(o.surface, SURFACE_ASSETS);
	assert_string_equal(o.allow, "GET, HEAD");
	assert_int_equal(match(state, "GET", "/static/").status, 404);
	assert_int_equal(match(state, "GET", "/static/a/b").status, 404);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_says_which_role_each_managenodes_action_needs),
	    cmocka_unit_test(test_table_follows_its_own_rules),
	    cmocka_unit_test(test_table_check_refuses_bad_tables),
	    cmocka_unit_test(test_probe_reaches_the_cluster_mounted_at_the_path),
	    cmocka_unit_test(test_probe_takes_head),
	    cmocka_unit_test(test_mount_of_two_segments_is_matched_whole),
	    cmocka_unit_test(test_mount_matches_on_segment_boundaries_only),
	    cmocka_unit_test(test_seed_rest_paths_of_each_cluster),
	    cmocka_unit_test(test_unknown_rest_action_is_the_seed_rest_404),
	    cmocka_unit_test(test_wrong_method_on_the_seed_rest_is_405_with_allow),
	    cmocka_unit_test(test_probe_with_another_method_is_405),
	    cmocka_unit_test(test_manage_pages_of_each_cluster),
	    cmocka_unit_test(test_a_mount_comes_before_the_page_path_it_shadows),
	    cmocka_unit_test(test_api_captures_cluster_and_node),
	    cmocka_unit_test(test_api_captures_users_and_tokens),
	    cmocka_unit_test(test_api_reads_let_sessions_in_and_writes_do_not),
	    cmocka_unit_test(test_api_path_that_matches_nothing_is_the_api_404),
	    cmocka_unit_test(test_api_wrong_method_is_405_listing_every_method_of_the_path),
	    cmocka_unit_test(test_api_bad_name_in_the_path_is_400_naming_it),
	    cmocka_unit_test(test_api_name_longer_than_a_name_is_400),
	    cmocka_unit_test(test_wrong_method_is_decided_before_a_bad_name),
	    cmocka_unit_test(test_page_paths_and_their_gates),
	    cmocka_unit_test(test_page_wrong_method_is_the_page_405),
	    cmocka_unit_test(test_unknown_page_path_is_a_text_404),
	    cmocka_unit_test(test_assets_capture_their_name),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
