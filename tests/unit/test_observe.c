/*
 * test_observe.c - observed probes and check states (src/observe/observe.h),
 * one behaviour per test: what a prober is answered, how answers in a row
 * and answers since the last status change are counted, the caps that
 * keep memory bounded, and forgetting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/observe/interest.h"
#include "../../src/observe/observe.h"

#define T0 1700000000000LL

static struct node
node_with(const char *name, enum node_status status, int64_t changed_at)
{
	struct node n = {0};

	n.name = (char *)name;
	n.status = status;
	n.changed_at = changed_at;
	return n;
}

static struct observe_client
http_client(const char *address, const char *user_agent)
{
	struct observe_client c = {OBSERVE_HTTP, address,
	                           user_agent,   user_agent != NULL ? strlen(user_agent) : 0,
	                           NULL,         0};
	return c;
}

/* A probe that names its load balancer (lb=NAME). */
static struct observe_client
named_client(enum observe_protocol protocol, const char *lb, const char *address)
{
	struct observe_client c = {protocol, address, "ua", 2, lb, strlen(lb)};
	return c;
}

static struct observe_node_view
view_of(struct observe *o, const char *node, int64_t changed_at, int64_t since)
{
	struct observe_node_view v;

	observe_node_view(o, "default", node, changed_at, since, &v);
	return v;
}

static void
test_online_node_is_served_and_recorded(void **state)
{
	struct observe *o = observe_new();
	struct node n = node_with("a", NODE_ONLINE, T0);
	struct observe_client lb = http_client("10.0.0.1", "lb/1");
	struct observe_node_view v;

	(void)state;
	assert_int_equal(observe_answer_probe(o, "default", &n, &lb, T0 + 1000), OBSERVE_SERVING);
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, 1);
	assert_string_equal(v.clients[0].address, "10.0.0.1");
	assert_string_equal(v.clients[0].user_agent, "lb/1");
	assert_int_equal(v.clients[0].last_at, T0 + 1000);
	assert_int_equal(v.clients[0].consecutive, 1);
	assert_int_equal(v.clients[0].since_change, 1);
	observe_free(o);
}

static void
test_status_decides_answer(void **state)
{
	struct observe *o = observe_new();
	struct observe_client lb = http_client("10.0.0.1", NULL);
	struct node off = node_with("a", NODE_OFFLINE, T0), drain = node_with("b", NODE_DRAIN, T0);

	(void)state;
	assert_int_equal(observe_answer_probe(o, "default", &off, &lb, T0), OBSERVE_OFFLINE);
	assert_int_equal(observe_answer_probe(o, "default", &drain, &lb, T0), OBSERVE_DRAIN);
	assert_int_equal(observe_answer_http_status(OBSERVE_OFFLINE), 503);
	assert_string_equal(observe_answer_http_body(OBSERVE_DRAIN), "node is draining");
	assert_string_equal(observe_answer_agent_line(OBSERVE_OFFLINE), "maint");
	assert_string_equal(observe_answer_agent_line(OBSERVE_SERVING), "up ready");
	observe_free(o);
}

static void
test_failing_check_makes_online_node_down(void **state)
{
	struct observe *o = observe_new();
	struct observe_client lb = http_client("10.0.0.1", NULL);
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_check down = {.is_up = 0, .last_at = T0, .consecutive = 3};

	(void)state;
	observe_check_set(o, "default", "a", &down);
	assert_int_equal(observe_answer_probe(o, "default", &a, &lb, T0), OBSERVE_DOWN);
	assert_string_equal(observe_answer_http_body(OBSERVE_DOWN), "node is down");
	observe_check_clear(o, "default", "a");
	assert_int_equal(observe_answer_probe(o, "default", &a, &lb, T0), OBSERVE_SERVING);
	observe_free(o);
}

static void
test_offline_wins_over_failing_check(void **state)
{
	struct observe *o = observe_new();
	struct observe_client lb = http_client("10.0.0.1", NULL);
	struct node a = node_with("a", NODE_OFFLINE, T0);
	struct observe_check down = {.is_up = 0, .last_at = T0};

	(void)state;
	observe_check_set(o, "default", "a", &down);
	assert_int_equal(observe_answer_probe(o, "default", &a, &lb, T0), OBSERVE_OFFLINE);
	observe_free(o);
}

static void
test_consecutive_counts_same_answers_in_a_row(void **state)
{
	struct observe *o = observe_new();
	struct observe_client lb = http_client("10.0.0.1", NULL);
	struct node a = node_with("a", NODE_ONLINE, T0);
	int i;

	(void)state;
	for (i = 0; i < 4; i++)
		observe_answer_probe(o, "default", &a, &lb, T0 + i);
	assert_int_equal(view_of(o, "a", T0, 0).clients[0].consecutive, 4);
	a = node_with("a", NODE_OFFLINE, T0 + 10);
	observe_answer_probe(o, "default", &a, &lb, T0 + 11);
	assert_int_equal(view_of(o, "a", T0 + 10, 0).clients[0].consecutive, 1);
	observe_free(o);
}

static void
test_since_change_restarts_at_status_change(void **state)
{
	struct observe *o = observe_new();
	struct observe_client lb = http_client("10.0.0.1", NULL);
	struct node a = node_with("a", NODE_OFFLINE, T0);

	(void)state;
	observe_answer_probe(o, "default", &a, &lb, T0 + 1);
	observe_answer_probe(o, "default", &a, &lb, T0 + 2);
	/* offline -> drain: still failing, but a new change */
	a = node_with("a", NODE_DRAIN, T0 + 5);
	assert_int_equal(view_of(o, "a", T0 + 5, 0).clients[0].since_change, 0);
	observe_answer_probe(o, "default", &a, &lb, T0 + 6);
	assert_int_equal(view_of(o, "a", T0 + 5, 0).clients[0].since_change, 1);
	assert_int_equal(view_of(o, "a", T0 + 5, 0).clients[0].consecutive, 1);
	observe_free(o);
}

static void
test_since_change_counts_kind_not_exact_answer(void **state)
{
	struct observe *o = observe_new();
	struct observe_client lb = http_client("10.0.0.1", NULL);
	struct node a = node_with("a", NODE_DRAIN, T0);
	struct observe_check down = {.is_up = 0};

	(void)state;
	observe_answer_probe(o, "default", &a, &lb, T0 + 1); /* drain */
	observe_check_set(o, "default", "a", &down);
	observe_answer_probe(o, "default", &a, &lb, T0 + 2); /* drain, down */
	assert_int_equal(view_of(o, "a", T0, 0).clients[0].since_change, 2);
	assert_int_equal(view_of(o, "a", T0, 0).clients[0].consecutive, 1);
	observe_free(o);
}

static void
test_clients_told_apart_by_address_agent_and_protocol(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_client c1 = http_client("10.0.0.1", "x"), c2 = http_client("10.0.0.2", "x"),
	                      c3 = http_client("10.0.0.1", "y"), c4 = http_client("10.0.0.1", NULL),
	                      c5 = {OBSERVE_AGENT, "10.0.0.1", "x", 1, NULL, 0};

	(void)state;
	observe_answer_probe(o, "default", &a, &c1, T0);
	observe_answer_probe(o, "default", &a, &c2, T0);
	observe_answer_probe(o, "default", &a, &c3, T0);
	observe_answer_probe(o, "default", &a, &c4, T0);
	observe_answer_probe(o, "default", &a, &c5, T0);
	observe_answer_probe(o, "default", &a, &c1, T0 + 1);
	assert_int_equal(view_of(o, "a", T0, 0).n_clients, 5);
	observe_free(o);
}

static void
test_clients_per_node_are_capped(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_node_view v;
	char ua[32];
	int i;

	(void)state;
	for (i = 0; i < 100; i++) {
		struct observe_client c;
		snprintf(ua, sizeof(ua), "agent-%d", i);
		c = http_client("10.0.0.1", ua);
		observe_answer_probe(o, "default", &a, &c, T0 + i);
	}
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, OBSERVE_CLIENTS_MAX);
	assert_int_equal(v.n_untracked, 100 - OBSERVE_CLIENTS_MAX);
	observe_free(o);
}

static void
test_stale_client_makes_room_for_a_new_one(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_client newcomer = http_client("10.0.0.99", NULL);
	struct observe_node_view v;
	char ua[32];
	int i;

	(void)state;
	for (i = 0; i < OBSERVE_CLIENTS_MAX; i++) {
		struct observe_client c;
		snprintf(ua, sizeof(ua), "agent-%d", i);
		c = http_client("10.0.0.1", ua);
		observe_answer_probe(o, "default", &a, &c, T0);
	}
	observe_answer_probe(o, "default", &a, &newcomer, T0 + OBSERVE_STALE_MS + 1);
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, OBSERVE_CLIENTS_MAX);
	assert_int_equal(v.n_untracked, 0);
	observe_free(o);
}

static void
test_long_user_agent_is_cut_and_still_matches(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	char ua[400];
	struct observe_client c;
	struct observe_node_view v;

	(void)state;
	memset(ua, 'u', sizeof(ua) - 1);
	ua[sizeof(ua) - 1] = '\0';
	c = http_client("10.0.0.1", ua);
	observe_answer_probe(o, "default", &a, &c, T0);
	observe_answer_probe(o, "default", &a, &c, T0 + 1);
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, 1);
	assert_int_equal(strlen(v.clients[0].user_agent), OBSERVE_USER_AGENT_MAX);
	assert_int_equal(v.clients[0].consecutive, 2);
	observe_free(o);
}

static void
test_user_agent_is_stored_as_valid_utf8_cut_on_a_character(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	char ua[300];
	struct observe_client bad = http_client("10.0.0.1", "lb\xFF\xFE/1"), c;
	struct observe_node_view v;
	size_t i;

	(void)state;
	observe_answer_probe(o, "default", &a, &bad, T0);
	observe_answer_probe(o, "default", &a, &bad, T0 + 1);
	/* 150 two-byte characters: the byte limit falls inside one */
	for (i = 0; i < 150; i++)
		memcpy(ua + 2 * i, "\xC3\xA9", 2);
	ua[300 - 1] = '\0';
	ua[2 * 149] = '\0';
	c = http_client("10.0.0.2", ua);
	observe_answer_probe(o, "default", &a, &c, T0);
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, 2);
	assert_string_equal(v.clients[0].user_agent, "lb\xEF\xBF\xBD\xEF\xBF\xBD/1");
	assert_int_equal(v.clients[0].consecutive, 2); /* still recognised */
	assert_int_equal(strlen(v.clients[1].user_agent), OBSERVE_USER_AGENT_MAX - 1);
	assert_memory_equal(v.clients[1].user_agent, ua, OBSERVE_USER_AGENT_MAX - 1);
	observe_free(o);
}

static void
test_view_since_leaves_out_older_clients(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_client old = http_client("10.0.0.1", NULL),
	                      recent = http_client("10.0.0.2", NULL);

	(void)state;
	observe_answer_probe(o, "default", &a, &old, T0);
	observe_answer_probe(o, "default", &a, &recent, T0 + 40000);
	assert_int_equal(view_of(o, "a", T0, T0 + 10000).n_clients, 1);
	assert_string_equal(view_of(o, "a", T0, T0 + 10000).clients[0].address, "10.0.0.2");
	observe_free(o);
}

static void
test_sweep_forgets_clients_unseen_for_ten_minutes(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_client old = http_client("10.0.0.1", NULL),
	                      recent = http_client("10.0.0.2", NULL);

	(void)state;
	observe_answer_probe(o, "default", &a, &old, T0);
	observe_answer_probe(o, "default", &a, &recent, T0 + OBSERVE_FORGET_MS);
	observe_sweep(o, T0 + OBSERVE_FORGET_MS + 1);
	assert_int_equal(view_of(o, "a", T0, 0).n_clients, 1);
	observe_sweep(o, T0 + 3 * OBSERVE_FORGET_MS);
	assert_int_equal(
	    observe_node_view(o, "default", "a", T0, 0, &(struct observe_node_view){0}), 0);
	observe_free(o);
}

static void
test_sweep_keeps_check_state(void **state)
{
	struct observe *o = observe_new();
	struct observe_check up = {.is_up = 1, .last_at = T0, .consecutive = 1};
	struct observe_node_view got;

	(void)state;
	observe_check_set(o, "default", "a", &up);
	observe_sweep(o, T0 + 3 * OBSERVE_FORGET_MS);
	assert_int_equal(observe_node_view(o, "default", "a", T0, 0, &got), 1);
	assert_int_equal(got.has_check, 1);
	assert_int_equal(got.check.is_up, 1);
	observe_free(o);
}

static void
test_clusters_are_kept_apart(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_client lb = http_client("10.0.0.1", NULL);
	struct observe_check down = {.is_up = 0};
	struct observe_node_view v;

	(void)state;
	observe_check_set(o, "shop", "a", &down);
	assert_int_equal(observe_answer_probe(o, "default", &a, &lb, T0), OBSERVE_SERVING);
	assert_int_equal(observe_answer_probe(o, "shop", &a, &lb, T0), OBSERVE_DOWN);
	assert_int_equal(observe_node_view(o, "other", "a", T0, 0, &v), 0);
	observe_free(o);
}

static void
test_named_client_is_one_whatever_address_it_comes_from(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_client via1 = named_client(OBSERVE_HTTP, "hap1", "10.0.0.1"),
	                      via2 = named_client(OBSERVE_HTTP, "hap1", "10.0.0.2"),
	                      agent = named_client(OBSERVE_AGENT, "hap1", "10.0.0.9"),
	                      other = named_client(OBSERVE_HTTP, "varnish1", "10.0.0.1");
	struct observe_node_view v;

	(void)state;
	observe_answer_probe(o, "default", &a, &via1, T0);
	observe_answer_probe(o, "default", &a, &via2, T0 + 200);
	observe_answer_probe(o, "default", &a, &agent, T0 + 300);
	observe_answer_probe(o, "default", &a, &other, T0 + 400);
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, 3);
	assert_string_equal(v.clients[0].lb, "hap1");
	assert_int_equal(v.clients[0].protocol, OBSERVE_HTTP);
	assert_int_equal(v.clients[0].since_change, 2);
	assert_string_equal(v.clients[0].address, "10.0.0.2"); /* the last one */
	assert_int_equal(v.clients[0].interval_ms, 200);
	assert_string_equal(v.clients[1].lb, "hap1");
	assert_int_equal(v.clients[1].protocol, OBSERVE_AGENT);
	assert_string_equal(v.clients[2].lb, "varnish1");
	observe_free(o);
}

static void
test_unnamed_clients_never_push_out_a_named_one(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_client lb = named_client(OBSERVE_HTTP, "hap1", "10.0.0.1");
	struct observe_node_view v;
	char address[32];
	int i;

	(void)state;
	for (i = 0; i < OBSERVE_CLIENTS_MAX + 4; i++) {
		struct observe_client fake;
		snprintf(address, sizeof(address), "10.1.0.%d", i);
		fake = http_client(address, "fake");
		observe_answer_probe(o, "default", &a, &fake, T0);
	}
	observe_answer_probe(o, "default", &a, &lb, T0 + 1);
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, OBSERVE_CLIENTS_MAX + 1);
	assert_string_equal(v.clients[0].lb, "hap1");
	assert_int_equal(v.n_untracked, 4);
	assert_int_equal(v.n_untracked_lbs, 0);
	observe_free(o);
}

static void
test_named_clients_beyond_their_cap_are_counted_apart(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_node_view v;
	char name[32];
	int i;

	(void)state;
	for (i = 0; i < OBSERVE_LBS_MAX + 2; i++) {
		struct observe_client c;
		snprintf(name, sizeof(name), "lb%d", i);
		c = named_client(OBSERVE_HTTP, name, "10.0.0.1");
		observe_answer_probe(o, "default", &a, &c, T0);
	}
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, OBSERVE_LBS_MAX);
	assert_int_equal(v.n_untracked_lbs, 2);
	assert_int_equal(v.n_untracked, 0);
	observe_free(o);
}

static int notified;

static void
count_notify(void *arg)
{
	(void)arg;
	notified++;
}

static void
test_seq_grows_and_watchers_are_notified(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0);
	struct observe_client lb = http_client("10.0.0.1", NULL);

	(void)state;
	notified = 0;
	observe_set_notify(o, count_notify, NULL);
	assert_int_equal(observe_node_seq(o, "default", "a"), 0);
	observe_answer_probe(o, "default", &a, &lb, T0);
	assert_int_equal(observe_node_seq(o, "default", "a"), 1);
	assert_int_equal(notified, 0); /* nobody watches */
	observe_watch(o, 1);
	observe_answer_probe(o, "default", &a, &lb, T0 + 1);
	assert_int_equal(observe_node_seq(o, "default", "a"), 2);
	assert_int_equal(notified, 1);
	observe_watch(o, -1);
	observe_answer_probe(o, "default", &a, &lb, T0 + 2);
	assert_int_equal(notified, 1);
	observe_free(o);
}

/* A malloc'd array of n reports by daemon d of node "a" from the
 * addresses 10.0.0.1, 10.0.0.2, ..., last seen at last_at. */
static struct probe_report *
reports(const char *d, size_t n, int64_t last_at, int answer)
{
	struct probe_report *r = calloc(n > 0 ? n : 1, sizeof(*r));
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(r[i].daemon, sizeof(r[i].daemon), "%s", d);
		strcpy(r[i].cluster, "default");
		strcpy(r[i].node, "a");
		snprintf(r[i].address, sizeof(r[i].address), "10.0.0.%zu", i + 1);
		r[i].first_at = T0;
		r[i].last_at = last_at;
		r[i].changed_at = T0;
		r[i].last_answer = answer;
	}
	return r;
}

static const struct observe_client_view *
remote_client(const struct observe_node_view *v, const char *daemon, const char *address)
{
	size_t i;

	for (i = 0; i < v->n_clients; i++)
		if (strcmp(v->clients[i].daemon, daemon) == 0 &&
		    strcmp(v->clients[i].address, address) == 0)
			return &v->clients[i];
	return NULL;
}

static void
test_merged_reports_replace_their_earlier_versions(void **state)
{
	struct observe *o = observe_new();
	struct probe_report *all = reports("d2", 3, T0 + 10, OBSERVE_SERVING);
	struct probe_report *delta = reports("d2", 2, T0 + 20, OBSERVE_DRAIN);
	struct observe_node_view v;

	(void)state;
	observe_set_remote(o, all, 3);
	strcpy(delta[1].daemon, "d3"); /* d3's first report: added */
	observe_merge_remote(o, delta, 2, T0);
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, 4);
	assert_int_equal(remote_client(&v, "d2", "10.0.0.1")->last_answer, OBSERVE_DRAIN);
	assert_int_equal(remote_client(&v, "d2", "10.0.0.1")->last_at, T0 + 20);
	assert_int_equal(remote_client(&v, "d2", "10.0.0.2")->last_answer, OBSERVE_SERVING);
	assert_int_equal(remote_client(&v, "d2", "10.0.0.3")->last_at, T0 + 10);
	assert_int_equal(remote_client(&v, "d3", "10.0.0.2")->last_answer, OBSERVE_DRAIN);
	observe_free(o);
}

static void
test_refreshes_of_reports_held_are_merged_in_place(void **state)
{
	struct observe *o = observe_new();
	struct probe_report *all = reports("d2", 3, T0 + 10, OBSERVE_SERVING);
	struct probe_report *delta = reports("d2", 3, T0 + 30, OBSERVE_OFFLINE);
	struct observe_node_view v;

	(void)state;
	observe_set_remote(o, all, 3);
	memmove(&delta[0], &delta[2], sizeof(*delta)); /* 10.0.0.3 ... */
	strcpy(delta[0].address, "10.0.0.3");
	delta[0].last_at = T0 + 40;
	observe_merge_remote(o, delta, 2, T0); /* ... and 10.0.0.2, out of order */
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, 3);
	assert_int_equal(remote_client(&v, "d2", "10.0.0.1")->last_at, T0 + 10);
	assert_int_equal(remote_client(&v, "d2", "10.0.0.2")->last_answer, OBSERVE_OFFLINE);
	assert_int_equal(remote_client(&v, "d2", "10.0.0.2")->last_at, T0 + 30);
	assert_int_equal(remote_client(&v, "d2", "10.0.0.3")->last_at, T0 + 40);
	observe_free(o);
}

static int wakes;

static void
count_wake(void *arg)
{
	(void)arg;
	wakes++;
}

/* Without another daemon (no collector) everything is read; with one, a
 * node is read from its first ask until nobody asked for a minute. */
static void
test_a_node_is_read_from_its_first_ask_until_nobody_asks(void **state)
{
	struct observe *o = observe_new();
	struct probe_interest *in;
	size_t n;

	(void)state;
	assert_int_equal(observe_remote_ready(o, "default", "a", T0), 1);
	observe_set_collect_wake(o, count_wake, NULL);
	wakes = 0;
	assert_int_equal(observe_remote_ready(o, "default", "a", T0), 0);
	assert_int_equal(wakes, 1); /* the collector reads it now */
	assert_int_equal(observe_remote_ready(o, "default", "a", T0 + 10), 0);
	assert_int_equal(wakes, 1); /* asked again: still waiting, no second wake */
	n = observe_interest_take(o, T0 + 20, &in);
	assert_int_equal(n, 1);
	assert_string_equal(in[0].node, "a");
	assert_int_equal(in[0].is_new, 1);
	observe_set_remote(o, reports("d2", 2, T0 + 10, OBSERVE_SERVING), 2);
	observe_interest_read(o, in, n);
	free(in);
	assert_int_equal(observe_remote_reads(o), 1);
	assert_int_equal(observe_remote_ready(o, "default", "a", T0 + 30), 1);
	assert_int_equal(observe_remote_count(o), 2);
	n = observe_interest_take(o, T0 + 30 + OBSERVE_INTEREST_MS - 1, &in);
	assert_int_equal(n, 1);
	assert_int_equal(in[0].is_new, 0); /* read: only what changed next */
	free(in);
	/* nobody asked for a minute: no longer read, its reports go */
	n = observe_interest_take(o, T0 + 31 + OBSERVE_INTEREST_MS, &in);
	assert_int_equal(n, 0);
	assert_null(in);
	assert_int_equal(observe_remote_count(o), 0);
	assert_int_equal(observe_remote_ready(o, "default", "a", T0 + 40 + OBSERVE_INTEREST_MS), 0);
	observe_free(o);
}

/* A whole cluster covers its nodes and replaces their entries; only
 * what the remaining entries cover is kept. */
static void
test_a_whole_cluster_covers_its_nodes(void **state)
{
	struct interest *in = interest_new();
	struct probe_interest *list;
	int is_added;
	size_t n;

	(void)state;
	assert_int_equal(interest_ask(in, "default", "a", T0, &is_added), 0);
	assert_int_equal(is_added, 1);
	assert_int_equal(interest_ask(in, "other", "b", T0, &is_added), 0);
	assert_int_equal(interest_ask(in, "default", NULL, T0, &is_added), 0);
	assert_int_equal(is_added, 1);
	assert_int_equal(interest_count(in), 2); /* default whole, other/b */
	n = interest_take(in, T0, &list, &is_added);
	assert_int_equal(is_added, 1); /* default/a went */
	interest_read(in, list, n);
	assert_int_equal(interest_ask(in, "default", "z", T0, &is_added), 1);
	assert_int_equal(is_added, 0);
	assert_int_equal(interest_covers(list, n, "default", "z"), 1);
	assert_int_equal(interest_covers(list, n, "other", "b"), 1);
	assert_int_equal(interest_covers(list, n, "other", "c"), 0);
	free(list);
	interest_free(in);
}

/* Bounded: past OBSERVE_INTEREST_MAX entries a node's cluster is read
 * whole, and past that the entry asked least recently goes. */
static void
test_interest_is_bounded(void **state)
{
	struct interest *in = interest_new();
	struct probe_interest *list;
	char name[32];
	int is_added, i;
	size_t n;

	(void)state;
	for (i = 0; i < OBSERVE_INTEREST_MAX; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		interest_ask(in, "default", name, T0 + i, &is_added);
	}
	assert_int_equal(interest_count(in), OBSERVE_INTEREST_MAX);
	interest_ask(in, "default", "one-more", T0 + 5000, &is_added);
	assert_int_equal(interest_count(in), 1); /* the cluster whole */
	for (i = 0; i < OBSERVE_INTEREST_MAX + 5; i++) {
		snprintf(name, sizeof(name), "c%d", i);
		interest_ask(in, name, NULL, T0 + 6000 + i, &is_added);
	}
	assert_int_equal(interest_count(in), OBSERVE_INTEREST_MAX);
	n = interest_take(in, T0 + 7000, &list, &is_added);
	assert_int_equal(interest_covers(list, n, "default", "n1"), 0); /* the oldest went */
	assert_int_equal(interest_covers(list, n, "c1028", "x"), 1);
	free(list);
	interest_free(in);
}

static void
test_merge_ages_out_what_the_owner_forgot(void **state)
{
	struct observe *o = observe_new();
	struct probe_report *all = reports("d2", 3, T0 + 10, OBSERVE_SERVING);
	struct probe_report *delta = reports("d2", 1, T0 + 500, OBSERVE_SERVING);
	struct observe_node_view v;

	(void)state;
	all[2].last_at = T0 + 400;
	observe_set_remote(o, all, 3);
	/* nothing new but 10.0.0.1: 10.0.0.2 is older than forget_before */
	observe_merge_remote(o, delta, 1, T0 + 100);
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, 2);
	assert_non_null(remote_client(&v, "d2", "10.0.0.1"));
	assert_null(remote_client(&v, "d2", "10.0.0.2"));
	assert_non_null(remote_client(&v, "d2", "10.0.0.3"));
	/* an empty read ages out too */
	observe_merge_remote(o, reports("d2", 0, T0, 0), 0, T0 + 450);
	v = view_of(o, "a", T0, 0);
	assert_int_equal(v.n_clients, 1);
	assert_int_equal(remote_client(&v, "d2", "10.0.0.1")->last_at, T0 + 500);
	observe_free(o);
}

/* What observe_collect_reports hands to the other daemons, in a
 * buffer of max reports. */
static size_t
collect(struct observe *o, int64_t now, struct probe_report *out, size_t max)
{
	return observe_collect_reports(o, "d1", now, out, max);
}

static void
test_collect_reports_an_answer_once_and_a_refresh_after_three_seconds(void **state)
{
	struct observe *o = observe_new();
	struct node n = node_with("a", NODE_ONLINE, T0);
	struct observe_client lb = http_client("10.0.0.1", "lb/1");
	struct probe_report out[4];
	int i;

	(void)state;
	assert_int_equal(collect(o, T0, out, 4), 0);
	observe_answer_probe(o, "default", &n, &lb, T0 + 1000);
	assert_int_equal(collect(o, T0 + 1000, out, 4), 1);
	assert_string_equal(out[0].daemon, "d1");
	assert_string_equal(out[0].node, "a");
	assert_int_equal(out[0].last_at, T0 + 1000);
	assert_int_equal(collect(o, T0 + 1100, out, 4), 0); /* nothing new */
	/* the first OBSERVE_EAGER_ANSWERS answers after a change: each one */
	for (i = 2; i <= OBSERVE_EAGER_ANSWERS; i++) {
		observe_answer_probe(o, "default", &n, &lb, T0 + 1000 + i);
		assert_int_equal(collect(o, T0 + 1000 + i, out, 4), 1);
		assert_int_equal(out[0].since_change, i);
	}
	/* then a refresh only every OBSERVE_REFRESH_MS */
	observe_answer_probe(o, "default", &n, &lb, T0 + 2000);
	assert_int_equal(collect(o, T0 + 2000, out, 4), 0);
	observe_answer_probe(o, "default", &n, &lb, T0 + 1008 + OBSERVE_REFRESH_MS);
	assert_int_equal(collect(o, T0 + 1008 + OBSERVE_REFRESH_MS, out, 4), 1);
	assert_int_equal(out[0].last_at, T0 + 1008 + OBSERVE_REFRESH_MS);
	/* a changed answer at once */
	n.status = NODE_DRAIN;
	n.changed_at = T0 + 5000;
	observe_answer_probe(o, "default", &n, &lb, T0 + 5001);
	assert_int_equal(collect(o, T0 + 5001, out, 4), 1);
	assert_int_equal(out[0].last_answer, OBSERVE_DRAIN);
	observe_free(o);
}

static void
test_collect_leaves_what_does_not_fit_for_the_next_one(void **state)
{
	struct observe *o = observe_new();
	struct observe_client lb = http_client("10.0.0.1", "lb/1");
	struct probe_report out[4];
	char name[16];
	int i;

	(void)state;
	for (i = 0; i < 6; i++) {
		struct node n;
		snprintf(name, sizeof(name), "n%d", i);
		n = node_with(name, NODE_ONLINE, T0);
		observe_answer_probe(o, "default", &n, &lb, T0 + 1000);
	}
	assert_int_equal(collect(o, T0 + 1000, out, 4), 4);
	/* no answer recorded since: the rest is still collected */
	assert_int_equal(collect(o, T0 + 1100, out, 4), 2);
	assert_int_equal(collect(o, T0 + 1200, out, 4), 0);
	observe_free(o);
}

static void
test_collect_after_report_again_hands_every_client_again(void **state)
{
	struct observe *o = observe_new();
	struct node a = node_with("a", NODE_ONLINE, T0), b = node_with("b", NODE_ONLINE, T0);
	struct observe_client lb = http_client("10.0.0.1", "lb/1");
	struct probe_report out[4];

	(void)state;
	observe_answer_probe(o, "default", &a, &lb, T0 + 1000);
	observe_answer_probe(o, "default", &b, &lb, T0 + 1000);
	assert_int_equal(collect(o, T0 + 1000, out, 4), 2);
	assert_int_equal(collect(o, T0 + 1100, out, 4), 0);
	observe_report_again(o); /* the exchange failed: nothing reached the store */
	assert_int_equal(collect(o, T0 + 1200, out, 4), 2);
	assert_int_equal(collect(o, T0 + 1300, out, 4), 0);
	observe_free(o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_online_node_is_served_and_recorded),
	    cmocka_unit_test(test_status_decides_answer),
	    cmocka_unit_test(test_failing_check_makes_online_node_down),
	    cmocka_unit_test(test_offline_wins_over_failing_check),
	    cmocka_unit_test(test_consecutive_counts_same_answers_in_a_row),
	    cmocka_unit_test(test_since_change_restarts_at_status_change),
	    cmocka_unit_test(test_since_change_counts_kind_not_exact_answer),
	    cmocka_unit_test(test_clients_told_apart_by_address_agent_and_protocol),
	    cmocka_unit_test(test_clients_per_node_are_capped),
	    cmocka_unit_test(test_stale_client_makes_room_for_a_new_one),
	    cmocka_unit_test(test_long_user_agent_is_cut_and_still_matches),
	    cmocka_unit_test(test_user_agent_is_stored_as_valid_utf8_cut_on_a_character),
	    cmocka_unit_test(test_view_since_leaves_out_older_clients),
	    cmocka_unit_test(test_sweep_forgets_clients_unseen_for_ten_minutes),
	    cmocka_unit_test(test_sweep_keeps_check_state),
	    cmocka_unit_test(test_clusters_are_kept_apart),
	    cmocka_unit_test(test_named_client_is_one_whatever_address_it_comes_from),
	    cmocka_unit_test(test_unnamed_clients_never_push_out_a_named_one),
	    cmocka_unit_test(test_named_clients_beyond_their_cap_are_counted_apart),
	    cmocka_unit_test(test_seq_grows_and_watchers_are_notified),
	    cmocka_unit_test(test_merged_reports_replace_their_earlier_versions),
	    cmocka_unit_test(test_refreshes_of_reports_held_are_merged_in_place),
	    cmocka_unit_test(test_merge_ages_out_what_the_owner_forgot),
	    cmocka_unit_test(test_a_node_is_read_from_its_first_ask_until_nobody_asks),
	    cmocka_unit_test(test_a_whole_cluster_covers_its_nodes),
	    cmocka_unit_test(test_interest_is_bounded),
	    cmocka_unit_test(test_collect_reports_an_answer_once_and_a_refresh_after_three_seconds),
	    cmocka_unit_test(test_collect_leaves_what_does_not_fit_for_the_next_one),
	    cmocka_unit_test(test_collect_after_report_again_hands_every_client_again),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
