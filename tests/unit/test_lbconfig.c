/*
 * test_lbconfig.c - the load balancer configuration generators, one
 * behaviour per test. Whether the output loads in the real Varnish,
 * HAProxy and nginx is proven in tests/e2e/test_lb_real.py; here the
 * lines that matter are pinned.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/lb/lbconfig.h"

static const struct lb_node abc[] = {
    {"a", "10.0.0.1:8080", NODE_ONLINE},
    {"b", "10.0.0.2:8080", NODE_OFFLINE},
    {"c", "10.0.0.3:8080", NODE_DRAIN},
};

/* Generates kind for abc with the defaults changed by o (NULL: defaults)
 * and asserts success. The caller frees the text. */
static char *
generate(enum lb_kind kind, const struct lb_options *o)
{
	struct lb_options defaults;
	struct error err;
	char *text;

	lbconfig_defaults(&defaults);
	text = lbconfig_generate(kind, o != NULL ? o : &defaults, abc, 3, &err);
	if (text == NULL)
		fail_msg("lbconfig_generate failed: %s", err.what);
	return text;
}

static void
assert_contains(const char *text, const char *needle)
{
	if (strstr(text, needle) == NULL)
		fail_msg("expected to find\n  %s\nin\n%s", needle, text);
}

static void
assert_lacks(const char *text, const char *needle)
{
	if (strstr(text, needle) != NULL)
		fail_msg("did not expect\n  %s\nin\n%s", needle, text);
}

static size_t
count(const char *text, const char *needle)
{
	size_t n = 0;

	while ((text = strstr(text, needle)) != NULL) {
		n++;
		text++;
	}
	return n;
}

/* Expects generation to fail with status; returns err for more checks. */
static struct error
generate_error(enum lb_kind kind, const struct lb_options *o, const struct lb_node *nodes, size_t n,
               int status)
{
	struct error err;

	error_clear(&err);
	assert_null(lbconfig_generate(kind, o, nodes, n, &err));
	assert_int_equal(err.status, status);
	assert_true(err.what[0] != '\0');
	return err;
}

/* --- Varnish ------------------------------------------------------------ */

static void
test_varnish_is_vcl41_with_directors(void **state)
{
	char *t = generate(LB_VARNISH, NULL);

	(void)state;
	assert_contains(t, "\nvcl 4.1;\n");
	assert_contains(t, "import directors;");
	assert_contains(t, "new cluster_default = directors.round_robin();");
	assert_contains(t, "set req.backend_hint = cluster_default.backend();");
	free(t);
}

static void
test_varnish_has_one_backend_per_node_whatever_its_status(void **state)
{
	char *t = generate(LB_VARNISH, NULL);

	(void)state;
	assert_int_equal(count(t, "\nbackend node_"), 3);
	assert_contains(t, "backend node_b {\n    .host = \"10.0.0.2\";\n    .port = \"8080\";");
	assert_contains(t, "cluster_default.add_backend(node_a);");
	assert_contains(t, "cluster_default.add_backend(node_c);");
	free(t);
}

static void
test_varnish_probe_asks_for_its_own_node(void **state)
{
	char *t = generate(LB_VARNISH, NULL);

	(void)state;
	assert_contains(t, ".request = \"GET /health?node=b HTTP/1.1\"\n"
	                   "            \"Host: 10.0.0.2:8080\"");
	assert_contains(t, ".expected_response = 200;");
	free(t);
}

static void
test_varnish_window_and_threshold_follow_fall_and_rise(void **state)
{
	struct lb_options o;
	char *t;

	(void)state;
	lbconfig_defaults(&o);
	o.fall = 3;
	o.rise = 2;
	o.interval_ms = 250;
	o.timeout_ms = 2000;
	t = generate(LB_VARNISH, &o);
	assert_contains(t, ".interval = 250ms;");
	assert_contains(t, ".timeout = 2s;");
	assert_contains(t, ".window = 4;");
	assert_contains(t, ".threshold = 2;");
	assert_contains(t, ".initial = 1;");
	free(t);
}

static void
test_varnish_retries_idempotent_requests_on_backend_error(void **state)
{
	char *t = generate(LB_VARNISH, NULL);

	(void)state;
	assert_contains(t, "sub vcl_backend_error {");
	assert_contains(t, "return (retry);");
	free(t);
}

static void
test_varnish_names_with_dot_and_underscore_stay_distinct(void **state)
{
	static const struct lb_node nodes[] = {
	    {"a.b", "10.0.0.1:80", NODE_ONLINE},
	    {"a_b", "10.0.0.2:80", NODE_ONLINE},
	    {"a_db", "10.0.0.3:80", NODE_ONLINE},
	};
	struct lb_options o;
	struct error err;
	char *t;

	(void)state;
	lbconfig_defaults(&o);
	t = lbconfig_generate(LB_VARNISH, &o, nodes, 3, &err);
	assert_non_null(t);
	assert_contains(t, "backend node_a_db {");
	assert_contains(t, "backend node_a__b {");
	assert_contains(t, "backend node_a__db {");
	assert_contains(t, "GET /health?node=a.b HTTP/1.1");
	free(t);
}

static void
test_varnish_ipv6_host_is_written_without_brackets(void **state)
{
	static const struct lb_node nodes[] = {{"a", "[::1]:8080", NODE_ONLINE}};
	struct lb_options o;
	struct error err;
	char *t;

	(void)state;
	lbconfig_defaults(&o);
	t = lbconfig_generate(LB_VARNISH, &o, nodes, 1, &err);
	assert_non_null(t);
	assert_contains(t, ".host = \"::1\";\n    .port = \"8080\";");
	free(t);
}

static void
test_varnish_refuses_probes_via_the_daemon(void **state)
{
	struct lb_options o;
	struct error err;

	(void)state;
	lbconfig_defaults(&o);
	o.probe_via = LB_PROBE_VIA_DAEMON;
	o.daemon_host = "10.0.0.9";
	o.daemon_port = 8080;
	err = generate_error(LB_VARNISH, &o, abc, 3, 400);
	assert_non_null(strstr(err.what, "own address"));
}

/* --- HAProxy ------------------------------------------------------------ */

static void
test_haproxy_is_a_complete_config(void **state)
{
	char *t = generate(LB_HAPROXY, NULL);

	(void)state;
	assert_contains(t, "\nglobal\n");
	assert_contains(t, "\ndefaults\n    mode http\n");
	assert_contains(t, "\nfrontend fe_default\n    bind :80\n    default_backend be_default\n");
	assert_contains(t, "\nbackend be_default\n    balance roundrobin\n");
	free(t);
}

static void
test_haproxy_checks_each_server_with_its_own_node_name(void **state)
{
	char *t = generate(LB_HAPROXY, NULL);

	(void)state;
	assert_contains(t, "    option httpchk\n");
	assert_contains(t, "http-check send meth GET uri-lf /health?node=%[srv_name] ");
	assert_contains(t, "    server a 10.0.0.1:8080");
	assert_contains(t, "    server b 10.0.0.2:8080");
	free(t);
}

static void
test_haproxy_retries_with_redispatch(void **state)
{
	char *t = generate(LB_HAPROXY, NULL);

	(void)state;
	assert_contains(t, "    retries 3\n");
	assert_contains(t, "    option redispatch");
	assert_contains(t, "    retry-on conn-failure empty-response\n");
	assert_contains(t, "    http-request disable-l7-retry unless METH_GET || METH_HEAD\n");
	free(t);
}

static void
test_haproxy_check_timing_follows_options(void **state)
{
	struct lb_options o;
	char *t;

	(void)state;
	lbconfig_defaults(&o);
	o.interval_ms = 300;
	o.timeout_ms = 200;
	o.fall = 3;
	o.rise = 4;
	t = generate(LB_HAPROXY, &o);
	assert_contains(t, "default-server check inter 300ms fall 3 rise 4");
	assert_contains(t, "timeout check 200ms\n");
	free(t);
}

static void
test_haproxy_agent_check_asks_for_cluster_and_node(void **state)
{
	struct lb_options o;
	char *t;

	(void)state;
	lbconfig_defaults(&o);
	o.agent_host = "10.0.0.9";
	o.agent_port = 8081;
	t = generate(LB_HAPROXY, &o);
	assert_contains(t, " agent-check agent-addr 10.0.0.9 agent-port 8081 agent-inter 1s");
	assert_contains(t, "    server a 10.0.0.1:8080 agent-send \"default/a\\n\"\n");
	assert_contains(t, "    server c 10.0.0.3:8080 agent-send \"default/c\\n\"\n");
	free(t);
}

static void
test_haproxy_with_agent_lets_a_draining_node_pass_the_http_check(void **state)
{
	struct lb_options o;
	char *t;

	(void)state;
	lbconfig_defaults(&o);
	o.agent_host = "10.0.0.9";
	o.agent_port = 8081;
	t = generate(LB_HAPROXY, &o);
	assert_contains(t, "http-check expect rstatus ^(200|503)$\n");
	assert_contains(t, "http-check expect rstring \"^(OK|node is draining)\"\n");
	assert_lacks(t, "expect status 200");
	free(t);
}

static void
test_haproxy_without_agent_expects_200(void **state)
{
	char *t = generate(LB_HAPROXY, NULL);

	(void)state;
	assert_contains(t, "    http-check expect status 200\n");
	assert_lacks(t, "agent-check");
	assert_lacks(t, "agent-send");
	free(t);
}

static void
test_haproxy_probe_via_daemon_checks_the_daemon_address(void **state)
{
	struct lb_options o;
	char *t;

	(void)state;
	lbconfig_defaults(&o);
	o.probe_via = LB_PROBE_VIA_DAEMON;
	o.daemon_host = "10.0.0.9";
	o.daemon_port = 8080;
	t = generate(LB_HAPROXY, &o);
	assert_contains(t, " addr 10.0.0.9 port 8080");
	free(t);
}

static void
test_haproxy_listen_address_is_bound(void **state)
{
	struct lb_options o;
	char *t;

	(void)state;
	lbconfig_defaults(&o);
	o.listen = "127.0.0.1:8000";
	t = generate(LB_HAPROXY, &o);
	assert_contains(t, "    bind 127.0.0.1:8000\n");
	free(t);
}

/* --- nginx -------------------------------------------------------------- */

static void
test_nginx_upstream_marks_nodes_not_online_down(void **state)
{
	char *t = generate(LB_NGINX, NULL);

	(void)state;
	assert_contains(t, "\nupstream cluster_default {\n");
	assert_contains(t, "    server 10.0.0.1:8080 max_fails=1 fail_timeout=10s; # a\n");
	assert_contains(t, "    server 10.0.0.2:8080 down; # b: offline\n");
	assert_contains(t, "    server 10.0.0.3:8080 down; # c: drain\n");
	free(t);
}

static void
test_nginx_says_it_has_no_active_checks(void **state)
{
	char *t = generate(LB_NGINX, NULL);

	(void)state;
	assert_contains(t, "no active health checks");
	assert_contains(t, "nginx -s reload");
	assert_contains(t, "proxy_pass http://cluster_default;");
	assert_contains(t, "proxy_next_upstream error timeout");
	free(t);
}

/* --- common ------------------------------------------------------------- */

static void
test_node_without_address_is_an_error_naming_it(void **state)
{
	static const struct lb_node nodes[] = {
	    {"a", "10.0.0.1:80", NODE_ONLINE},
	    {"b", NULL, NODE_ONLINE},
	};
	struct lb_options o;
	struct error err;

	(void)state;
	lbconfig_defaults(&o);
	err = generate_error(LB_HAPROXY, &o, nodes, 2, 409);
	assert_string_equal(err.entry, "b");
	assert_non_null(strstr(err.what, "node 'b' has no address"));
	assert_non_null(strstr(err.what, "--address"));
}

static void
test_node_with_empty_address_is_an_error(void **state)
{
	static const struct lb_node nodes[] = {{"a", "", NODE_ONLINE}};
	struct lb_options o;

	(void)state;
	lbconfig_defaults(&o);
	generate_error(LB_VARNISH, &o, nodes, 1, 409);
}

static void
test_cluster_without_nodes_is_an_error(void **state)
{
	struct lb_options o;
	struct error err;

	(void)state;
	lbconfig_defaults(&o);
	err = generate_error(LB_NGINX, &o, abc, 0, 409);
	assert_non_null(strstr(err.what, "no nodes"));
}

static void
test_probe_url_template_is_filled_in(void **state)
{
	struct lb_options o;
	char *t;

	(void)state;
	lbconfig_defaults(&o);
	o.cluster = "shop";
	o.mount = "/shophealth";
	o.probe_url = "/_cm{mount}?node={node}&c={cluster}";
	t = generate(LB_VARNISH, &o);
	assert_contains(t, "GET /_cm/shophealth?node=a&c=shop HTTP/1.1");
	assert_contains(t, "new cluster_shop = directors.round_robin();");
	free(t);
	t = generate(LB_HAPROXY, &o);
	assert_contains(t, "uri-lf /_cm/shophealth?node=%[srv_name]&c=shop ");
	free(t);
}

static void
test_probe_url_that_could_break_the_config_is_rejected(void **state)
{
	static const char *const bad[] = {
	    "health?node={node}",
	    "/h\"?node={node}",
	    "/h ?node={node}",
	    "/h%?node={node}",
	    "/h?node={name}",
	    "/h\\x",
	    "/h#x",
	};
	struct lb_options o;
	size_t i;

	(void)state;
	lbconfig_defaults(&o);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o.probe_url = bad[i];
		generate_error(LB_HAPROXY, &o, abc, 3, 400);
	}
}

static void
test_bad_listen_and_numbers_are_rejected(void **state)
{
	struct lb_options o;

	(void)state;
	lbconfig_defaults(&o);
	o.listen = "eighty";
	generate_error(LB_HAPROXY, &o, abc, 3, 400);
	lbconfig_defaults(&o);
	o.fall = 0;
	generate_error(LB_VARNISH, &o, abc, 3, 400);
	lbconfig_defaults(&o);
	o.interval_ms = 0;
	generate_error(LB_VARNISH, &o, abc, 3, 400);
}

static void
test_daemon_and_agent_host_that_could_break_the_config_are_rejected(void **state)
{
	static const char *const bad[] = {
	    "d\n    server evil 6.6.6.6:80", "agent host", "h\"x", "h;x", "", "[::1]"};
	struct lb_options o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		lbconfig_defaults(&o);
		o.probe_via = LB_PROBE_VIA_DAEMON;
		o.daemon_host = bad[i];
		o.daemon_port = 8080;
		generate_error(LB_HAPROXY, &o, abc, 3, 400);
		lbconfig_defaults(&o);
		o.agent_host = bad[i];
		o.agent_port = 8081;
		generate_error(LB_HAPROXY, &o, abc, 3, 400);
	}
}

static void
test_daemon_and_agent_host_may_be_a_name_or_an_ip_address(void **state)
{
	static const char *const good[] = {"lb-1.example.org", "10.0.0.9", "::1", "fe80::1"};
	struct lb_options o;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		lbconfig_defaults(&o);
		o.probe_via = LB_PROBE_VIA_DAEMON;
		o.daemon_host = good[i];
		o.daemon_port = 8080;
		o.agent_host = good[i];
		o.agent_port = 8081;
		free(generate(LB_HAPROXY, &o));
	}
}

static void
test_kind_from_string_knows_three_load_balancers(void **state)
{
	enum lb_kind k;

	(void)state;
	assert_int_equal(lb_kind_from_string("varnish", &k), 0);
	assert_int_equal(k, LB_VARNISH);
	assert_int_equal(lb_kind_from_string("haproxy", &k), 0);
	assert_int_equal(k, LB_HAPROXY);
	assert_int_equal(lb_kind_from_string("nginx", &k), 0);
	assert_int_equal(k, LB_NGINX);
	assert_int_equal(lb_kind_from_string("f5", &k), -1);
}

static void
test_output_never_holds_a_reason_or_other_free_text(void **state)
{
	char *t = generate(LB_NGINX, NULL);

	(void)state;
	/* Only names, addresses and statuses: each server line is one line. */
	assert_int_equal(count(t, "    server 10.0.0."), 3);
	free(t);
}

/* --- named load balancers (--lb) ------------------------------------------ */

static void
test_lb_name_is_stamped_into_every_probe_and_agent_send(void **state)
{
	struct lb_options o;
	char *text;

	(void)state;
	lbconfig_defaults(&o);
	o.lb = "hap1";
	o.agent_host = "10.0.0.5";
	o.agent_port = 8081;
	text = generate(LB_HAPROXY, &o);
	assert_contains(text, "uri-lf /health?node=%[srv_name]&lb=hap1 ver");
	assert_contains(text, "server a 10.0.0.1:8080 agent-send \"default/a lb=hap1\\n\"");
	assert_int_equal(count(text, " lb=hap1\\n\""), 3);
	free(text);
	o.lb = "varnish-1";
	o.probe_url = "/_cm{mount}";
	text = generate(LB_VARNISH, &o);
	assert_contains(text, "\"GET /_cm/health?lb=varnish-1 HTTP/1.1\"");
	assert_int_equal(count(text, "lb=varnish-1 HTTP/1.1"), 3);
	free(text);
}

static void
test_no_lb_name_stamps_nothing(void **state)
{
	char *text = generate(LB_HAPROXY, NULL);

	(void)state;
	assert_lacks(text, "lb=");
	free(text);
}

static void
test_invalid_lb_name_is_400(void **state)
{
	struct lb_options o;

	(void)state;
	lbconfig_defaults(&o);
	o.lb = "a b";
	generate_error(LB_VARNISH, &o, abc, 3, 400);
	o.lb = "";
	generate_error(LB_HAPROXY, &o, abc, 3, 400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lb_name_is_stamped_into_every_probe_and_agent_send),
	    cmocka_unit_test(test_no_lb_name_stamps_nothing),
	    cmocka_unit_test(test_invalid_lb_name_is_400),
	    cmocka_unit_test(test_varnish_is_vcl41_with_directors),
	    cmocka_unit_test(test_varnish_has_one_backend_per_node_whatever_its_status),
	    cmocka_unit_test(test_varnish_probe_asks_for_its_own_node),
	    cmocka_unit_test(test_varnish_window_and_threshold_follow_fall_and_rise),
	    cmocka_unit_test(test_varnish_retries_idempotent_requests_on_backend_error),
	    cmocka_unit_test(test_varnish_names_with_dot_and_underscore_stay_distinct),
	    cmocka_unit_test(test_varnish_ipv6_host_is_written_without_brackets),
	    cmocka_unit_test(test_varnish_refuses_probes_via_the_daemon),
	    cmocka_unit_test(test_haproxy_is_a_complete_config),
	    cmocka_unit_test(test_haproxy_checks_each_server_with_its_own_node_name),
	    cmocka_unit_test(test_haproxy_retries_with_redispatch),
	    cmocka_unit_test(test_haproxy_check_timing_follows_options),
	    cmocka_unit_test(test_haproxy_agent_check_asks_for_cluster_and_node),
	    cmocka_unit_test(test_haproxy_with_agent_lets_a_draining_node_pass_the_http_check),
	    cmocka_unit_test(test_haproxy_without_agent_expects_200),
	    cmocka_unit_test(test_haproxy_probe_via_daemon_checks_the_daemon_address),
	    cmocka_unit_test(test_haproxy_listen_address_is_bound),
	    cmocka_unit_test(test_nginx_upstream_marks_nodes_not_online_down),
	    cmocka_unit_test(test_nginx_says_it_has_no_active_checks),
	    cmocka_unit_test(test_node_without_address_is_an_error_naming_it),
	    cmocka_unit_test(test_node_with_empty_address_is_an_error),
	    cmocka_unit_test(test_cluster_without_nodes_is_an_error),
	    cmocka_unit_test(test_probe_url_template_is_filled_in),
	    cmocka_unit_test(test_probe_url_that_could_break_the_config_is_rejected),
	    cmocka_unit_test(test_bad_listen_and_numbers_are_rejected),
	    cmocka_unit_test(test_daemon_and_agent_host_that_could_break_the_config_are_rejected),
	    cmocka_unit_test(test_daemon_and_agent_host_may_be_a_name_or_an_ip_address),
	    cmocka_unit_test(test_kind_from_string_knows_three_load_balancers),
	    cmocka_unit_test(test_output_never_holds_a_reason_or_other_free_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
