/*
 * test_drain.c - the drain proof's judgement (src/drain/drain.h), from observation
 * documents as the daemon sends them: who must have acted, what counts
 * as having acted, what never counts, and the requests in flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/drain/drain.h"

#define NOW 100000

/* The load balancers' runtime access as a client process has it. */
static const struct drain_access *
direct(void)
{
	static struct drain_access acc;

	drain_access_direct(&acc);
	return &acc;
}

static void
wait_judge_direct(struct drain_node *w, const json_t *node, struct drain_lb *lbs, size_t n_lbs,
                  const struct drain_args *a, int64_t waited)
{
	drain_judge(w, node, lbs, n_lbs, "www", a, direct(), NOW, waited);
}

/* One observed prober, as GET .../observations gives it. lb NULL: a
 * prober that did not name its load balancer. */
static json_t *
prober(const char *lb, const char *protocol, const char *address, const char *user_agent,
       int serving, long since_change, long age_ms, long interval_ms)
{
	return json_pack(
	    "{s:o, s:s, s:s, s:o, s:b, s:i, s:i, s:i, s:s}", "lb",
	    lb != NULL ? json_string(lb) : json_null(), "protocol", protocol, "address", address,
	    "user_agent", user_agent != NULL ? json_string(user_agent) : json_null(), "serving",
	    serving, "since_change", since_change, "age_ms", age_ms, "interval_ms", interval_ms,
	    "last_answer",
	    strcmp(protocol, "agent") == 0 ? (serving ? "up" : "maint")
	                                   : (serving ? "200 OK" : "503 Service Unavailable"));
}

/* The node document: its probers (stolen) and how many answers went to
 * probers the daemon could not track. */
static json_t *
node_doc(json_t *probes, long untracked, long untracked_lbs)
{
	return json_pack("{s:s, s:o, s:i, s:i}", "name", "web1", "probes", probes,
	                 "probes_untracked", untracked, "probes_untracked_lbs", untracked_lbs);
}

static struct drain_lb
lb(const char *name, const char *kind)
{
	struct drain_lb l;

	memset(&l, 0, sizeof(l));
	snprintf(l.name, sizeof(l.name), "%s", name);
	snprintf(l.kind, sizeof(l.kind), "%s", kind);
	return l;
}

/* Judges node (consumed) once; returns the node's state. */
static enum drain_state
judge_once(struct drain_node *w, json_t *node, struct drain_lb *lbs, size_t n_lbs,
           const struct drain_args *a, int64_t waited)
{
	wait_judge_direct(w, node, lbs, n_lbs, a, waited);
	json_decref(node);
	return w->state;
}

/* Judges the probers given (consumed, NULL-terminated), none untracked. */
static enum drain_state
look_at(struct drain_node *w, struct drain_lb *lbs, size_t n_lbs, const struct drain_args *a,
        int64_t waited, ...)
{
	json_t *probes = json_array(), *p;
	va_list ap;

	va_start(ap, waited);
	while ((p = va_arg(ap, json_t *)) != NULL)
		json_array_append_new(probes, p);
	va_end(ap);
	return judge_once(w, node_doc(probes, 0, 0), lbs, n_lbs, a, waited);
}

/* An agent-check's and an HTTP check's observation. */
static json_t *
agent(const char *lb, const char *address, int serving, long since, long age, long interval)
{
	return prober(lb, "agent", address, NULL, serving, since, age, interval);
}

static json_t *
http(const char *lb, const char *address, const char *user_agent, int serving, long since, long age,
     long interval)
{
	return prober(lb, "http", address, user_agent, serving, since, age, interval);
}

static struct drain_node
fresh(void)
{
	struct drain_node w;

	memset(&w, 0, sizeof(w));
	w.name = "web1";
	return w;
}

static void
agent_maint_read_by_haproxy_drains_it(void **state)
{
	struct drain_lb lbs[] = {lb("ha1", "haproxy")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	assert_int_equal(
	    look_at(&w, lbs, 1, &a, 300, agent("ha1", "10.0.0.5", 0, 1, 250, 200), NULL),
	    DRAIN_IN_FLIGHT);
	assert_int_equal(w.out_at, NOW);
	assert_int_equal(w.n_probers, 1);
	assert_non_null(strstr(w.evidence, "ha1: agent answered 'maint' at +0.30s"));
}

/* The daemon counts an answer when it sends it; the load balancer acts
 * when it reads it. Until it probed again or an interval passed, the
 * answer may be in transit and requests may still come. */
static void
answer_in_transit_is_not_yet_drained(void **state)
{
	struct drain_lb lbs[] = {lb("ha1", "haproxy")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	assert_int_equal(look_at(&w, lbs, 1, &a, 50, agent("ha1", "10.0.0.5", 0, 1, 40, 200), NULL),
	                 DRAIN_PROBES);
	assert_true(w.is_in_transit);
	assert_non_null(strstr(w.pending, "ha1 was told, and has not read it yet"));
	/* It probed again since: it has read the first answer. */
	assert_int_equal(
	    look_at(&w, lbs, 1, &a, 230, agent("ha1", "10.0.0.5", 0, 2, 10, 200), NULL),
	    DRAIN_IN_FLIGHT);
	assert_false(w.is_in_transit);
}

static void
http_checks_need_fall_failing_answers(void **state)
{
	struct drain_lb lbs[] = {lb("vn1", "varnish")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	assert_int_equal(a.fall, 3);
	assert_int_equal(look_at(&w, lbs, 1, &a, 2000,
	                         http("vn1", "10.0.0.6", "Varnish", 0, 2, 100, 1000), NULL),
	                 DRAIN_PROBES);
	assert_non_null(strstr(w.pending, "vn1 has had 2 of 3 failing answers since the change"));
	/* The third, just sent: not read yet. */
	assert_int_equal(look_at(&w, lbs, 1, &a, 3000,
	                         http("vn1", "10.0.0.6", "Varnish", 0, 3, 100, 1000), NULL),
	                 DRAIN_PROBES);
	assert_true(w.is_in_transit);
	/* A whole interval later it has read it (or timed out: a failure too). */
	assert_int_equal(look_at(&w, lbs, 1, &a, 3900,
	                         http("vn1", "10.0.0.6", "Varnish", 0, 3, 1000, 1000), NULL),
	                 DRAIN_IN_FLIGHT);
	assert_non_null(strstr(w.evidence, "vn1: 3 failing answers"));
}

/* Probers that are not the named load balancers never make a wait
 * succeed, however many and however convincing. */
static void
unnamed_probers_never_stand_in_for_a_named_one(void **state)
{
	struct drain_lb lbs[] = {lb("ha1", "haproxy")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	assert_int_equal(look_at(&w, lbs, 1, &a, 10000, agent(NULL, "127.0.0.9", 0, 20, 2000, 200),
	                         http(NULL, "127.0.0.9", "curl/8", 0, 20, 2000, 200),
	                         http(NULL, "127.0.0.9", "HAProxy-check", 0, 20, 2000, 200),
	                         agent("fake", "127.0.0.9", 0, 20, 2000, 200), NULL),
	                 DRAIN_PROBES);
	assert_non_null(strstr(w.pending, "ha1 has not probed it in the last 30s"));
	assert_non_null(strstr(w.evidence, "4 probers not a named load balancer (ignored)"));
	/* Nor when waiting for it to serve: nothing from ha1 is no agreement. */
	drain_args_default(&a, 1);
	w = fresh();
	assert_int_equal(look_at(&w, lbs, 1, &a, 10000,
	                         http(NULL, "127.0.0.9", "curl/8", 1, 20, 100, 200), NULL),
	                 DRAIN_PROBES);
	assert_non_null(strstr(w.pending, "ha1 has not probed it"));
}

/* Each named load balancer needs its own evidence. */
static void
one_load_balancer_never_counts_for_another(void **state)
{
	struct drain_lb lbs[] = {lb("ha1", "haproxy"), lb("vn1", "varnish")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	assert_int_equal(look_at(&w, lbs, 2, &a, 900, agent("ha1", "10.0.0.5", 0, 4, 100, 200),
	                         http("vn1", "10.0.0.5", "Varnish", 1, 0, 100, 1000), NULL),
	                 DRAIN_PROBES);
	assert_int_equal(w.n_probers, 2);
	assert_non_null(strstr(w.evidence, "ha1: agent answered 'maint'"));
	assert_non_null(strstr(w.pending, "vn1 has had 0 of 3 failing answers"));
	assert_null(strstr(w.pending, "ha1"));
	assert_int_not_equal(w.lb_at[0], 0); /* when ha1 acted is kept */
	assert_int_equal(w.lb_at[1], 0);
}

static void
a_named_load_balancer_gone_silent_is_named(void **state)
{
	struct drain_lb lbs[] = {lb("vn1", "varnish")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	assert_int_equal(look_at(&w, lbs, 1, &a, 5000,
	                         http("vn1", "10.0.0.6", "Varnish", 1, 0, 5000, 1000), NULL),
	                 DRAIN_PROBES);
	assert_non_null(
	    strstr(w.pending, "vn1 has not probed it for 5.0s (it probed every 1000ms)"));
	assert_int_equal(lbs[0].is_reported, 1); /* said on stderr, once */
}

/* Without named load balancers: an unnamed HTTP prober at the address of
 * an agent-check that answered maint is that HAProxy's own check only
 * when it says so or went silent; Varnish on the same host keeps probing
 * and must show its own failing answers. */
static void
varnish_beside_haproxy_is_not_covered_by_its_agent(void **state)
{
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	assert_int_equal(look_at(&w, NULL, 0, &a, 500, agent(NULL, "10.0.0.5", 0, 2, 100, 200),
	                         http(NULL, "10.0.0.5", "Varnish", 1, 0, 300, 1000), NULL),
	                 DRAIN_PROBES);
	assert_non_null(strstr(w.pending, "10.0.0.5 (Varnish) has had 0 of 3 failing answers"));
	w = fresh();
	assert_int_equal(look_at(&w, NULL, 0, &a, 500, agent(NULL, "10.0.0.5", 0, 2, 100, 200),
	                         http(NULL, "10.0.0.5", "HAProxy-check", 1, 0, 300, 200), NULL),
	                 DRAIN_IN_FLIGHT);
	assert_non_null(strstr(w.evidence, "covered by the agent-check at 10.0.0.5"));
}

/* The daemon had to drop probers: a partial view never succeeds. */
static void
untracked_probers_block_success(void **state)
{
	struct drain_lb lbs[] = {lb("ha1", "haproxy")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	assert_int_equal(
	    judge_once(&w,
	               node_doc(json_pack("[o]", agent(NULL, "10.0.0.5", 0, 5, 100, 200)), 3, 0),
	               NULL, 0, &a, 500),
	    DRAIN_PROBES);
	assert_non_null(strstr(w.pending, "partial view is never reported as success"));
	/* With named load balancers only their own lost answers count. */
	w = fresh();
	assert_int_equal(
	    judge_once(&w,
	               node_doc(json_pack("[o]", agent("ha1", "10.0.0.5", 0, 5, 100, 200)), 3, 0),
	               lbs, 1, &a, 500),
	    DRAIN_IN_FLIGHT);
	w = fresh();
	assert_int_equal(
	    judge_once(&w,
	               node_doc(json_pack("[o]", agent("ha1", "10.0.0.5", 0, 5, 100, 200)), 0, 1),
	               lbs, 1, &a, 500),
	    DRAIN_PROBES);
}

/* Serving: every prober of the load balancer must agree (its agent says
 * up and its checks passed `fall` times), and it is then done at once. */
static void
serving_needs_every_prober_of_the_load_balancer(void **state)
{
	struct drain_lb lbs[] = {lb("ha1", "haproxy")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 1);
	assert_int_equal(look_at(&w, lbs, 1, &a, 500, agent("ha1", "10.0.0.5", 1, 1, 10, 200),
	                         http("ha1", "10.0.0.5", "HAProxy-check", 1, 2, 10, 200), NULL),
	                 DRAIN_PROBES);
	assert_non_null(strstr(w.pending, "ha1 has had 2 of 3 serving answers"));
	assert_int_equal(look_at(&w, lbs, 1, &a, 700, agent("ha1", "10.0.0.5", 1, 2, 10, 200),
	                         http("ha1", "10.0.0.5", "HAProxy-check", 1, 3, 10, 200), NULL),
	                 DRAIN_DONE);
}

/* nginx sends no probes: its evidence is the no-probers delay. */
static void
nginx_waits_the_no_probers_delay(void **state)
{
	struct drain_lb lbs[] = {lb("ng1", "nginx")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	assert_int_equal(look_at(&w, lbs, 1, &a, 4999, NULL), DRAIN_PROBES);
	assert_non_null(strstr(w.pending, "ng1 nginx sends no probes: waiting 5.0s"));
	assert_int_equal(look_at(&w, lbs, 1, &a, 5000, NULL), DRAIN_IN_FLIGHT);
	assert_non_null(strstr(w.evidence, "ng1: no probes (nginx): waited 5.0s"));
}

/* Without runtime access the requests in flight get the grace period,
 * counted from when the last load balancer acted. */
static void
in_flight_without_runtime_access_waits_the_grace(void **state)
{
	struct drain_lb lbs[] = {lb("vn1", "varnish")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	drain_args_default(&a, 0);
	a.drain_grace_ms = 2000;
	w.state = DRAIN_IN_FLIGHT;
	w.out_at = NOW;
	assert_int_equal(drain_check_in_flight(&w, lbs, 1, "www", &a, direct(), NOW + 1999), 0);
	assert_non_null(strstr(w.in_flight, "grace 2.0s"));
	assert_int_equal(drain_check_in_flight(&w, lbs, 1, "www", &a, direct(), NOW + 2000), 1);

	a.drain_grace_ms = 0;
	w = fresh();
	w.state = DRAIN_IN_FLIGHT;
	w.out_at = NOW;
	assert_int_equal(drain_check_in_flight(&w, NULL, 0, "www", &a, direct(), NOW), 1);
	assert_non_null(strstr(w.in_flight, "no named load balancer with runtime access"));
}

/* Runtime access that does not answer is not evidence: the probes decide,
 * and in flight falls back to the grace, saying why. */
static void
unreachable_runtime_access_falls_back(void **state)
{
	struct drain_lb lbs[] = {lb("ha1", "haproxy")};
	struct drain_node w = fresh();
	struct drain_args a;

	(void)state;
	snprintf(lbs[0].runtime, sizeof(lbs[0].runtime), "/nonexistent/haproxy.sock");
	drain_args_default(&a, 0);
	assert_int_equal(look_at(&w, lbs, 1, &a, 100,
	                         http("ha1", "10.0.0.5", "HAProxy-check", 1, 0, 10, 200), NULL),
	                 DRAIN_PROBES);
	w.state = DRAIN_IN_FLIGHT;
	w.out_at = NOW;
	a.drain_grace_ms = 1000;
	assert_int_equal(drain_check_in_flight(&w, lbs, 1, "www", &a, direct(), NOW), 0);
	assert_non_null(strstr(w.in_flight, "ha1: unknown ("));
	assert_int_equal(drain_check_in_flight(&w, lbs, 1, "www", &a, direct(), NOW + 1000), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(agent_maint_read_by_haproxy_drains_it),
	    cmocka_unit_test(answer_in_transit_is_not_yet_drained),
	    cmocka_unit_test(http_checks_need_fall_failing_answers),
	    cmocka_unit_test(unnamed_probers_never_stand_in_for_a_named_one),
	    cmocka_unit_test(one_load_balancer_never_counts_for_another),
	    cmocka_unit_test(a_named_load_balancer_gone_silent_is_named),
	    cmocka_unit_test(varnish_beside_haproxy_is_not_covered_by_its_agent),
	    cmocka_unit_test(untracked_probers_block_success),
	    cmocka_unit_test(serving_needs_every_prober_of_the_load_balancer),
	    cmocka_unit_test(nginx_waits_the_no_probers_delay),
	    cmocka_unit_test(in_flight_without_runtime_access_waits_the_grace),
	    cmocka_unit_test(unreachable_runtime_access_falls_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
