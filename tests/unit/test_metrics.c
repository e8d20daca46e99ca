/*
 * test_metrics.c - the Prometheus renderer (src/observe/metrics.h) and
 * the answer counters it reads from observe: which series exist for what
 * state, their values, histograms, the process figures, and the bounds.
 * The output's syntax is checked by `promtool check metrics` in
 * tests/e2e/test_metrics.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../src/observe/metrics.h"

#define T0 1700000000000LL

/* A model with cluster "default" (nodes a online, b offline with a TTL
 * running out at T0 + 90 s, c drain) and cluster "web" (node w1). */
static struct model *
sample_model(void)
{
	struct model *m = model_new();
	const char *names[] = {"a", "b", "c"}, *web[] = {"w1"};
	struct change_set cs = {0};
	struct status_change ch[2];
	struct cluster *c;
	struct error err;

	assert_int_equal(model_add_cluster(m, "default", "/health", NULL, T0, NULL, &err), 0);
	assert_int_equal(model_add_cluster(m, "web", "/web", NULL, T0, NULL, &err), 0);
	c = model_find_cluster_mut(m, "default");
	assert_int_equal(cluster_set_node_list(c, names, 3, NULL, T0, NULL, &err), 0);
	ch[0] = (struct status_change){"b", NODE_OFFLINE, "", 90 * 1000};
	ch[1] = (struct status_change){"c", NODE_DRAIN, "", 0};
	cs.n = 2;
	cs.changes = ch;
	assert_int_equal(cluster_apply_changes(c, &cs, NULL, T0, -1, -1, NULL, &err), 0);
	assert_int_equal(
	    cluster_set_node_list(model_find_cluster_mut(m, "web"), web, 1, NULL, T0, NULL, &err),
	    0);
	return m;
}

/* The value of the sample whose name and labels are exactly series, as
 * a string, or NULL when there is no such sample. */
static const char *
sample(const char *text, const char *series)
{
	static char value[64];
	size_t n = strlen(series);
	const char *p = text;

	while ((p = strstr(p, series)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ') {
			size_t len = strcspn(p + n + 1, "\n");
			snprintf(value, sizeof(value), "%.*s", (int)len, p + n + 1);
			return value;
		}
		p += n;
	}
	return NULL;
}

static char *
render(const struct model *m, struct observe *o, const struct metrics_stats *s, int64_t now)
{
	size_t len;
	char *text = metrics_render(m, o, s, NULL, now, &len);

	assert_int_equal(strlen(text), len);
	return text;
}

static void
test_build_info_names_the_version(void **state)
{
	char *text = render(NULL, NULL, NULL, T0);

	(void)state;
	assert_string_equal(sample(text, "clustermgmt_build_info{version=\"" CM_VERSION "\"}"),
	                    "1");
	assert_non_null(strstr(text, "# TYPE clustermgmt_build_info gauge\n"));
	free(text);
}

static void
test_node_status_is_one_series_per_state(void **state)
{
	struct model *m = sample_model();
	char *text = render(m, NULL, NULL, T0);

	(void)state;
	assert_string_equal(
	    sample(text,
	           "clustermgmt_node_status{cluster=\"default\",node=\"a\",status=\"online\"}"),
	    "1");
	assert_string_equal(
	    sample(text,
	           "clustermgmt_node_status{cluster=\"default\",node=\"a\",status=\"offline\"}"),
	    "0");
	assert_string_equal(
	    sample(text,
	           "clustermgmt_node_status{cluster=\"default\",node=\"b\",status=\"offline\"}"),
	    "1");
	assert_string_equal(
	    sample(text,
	           "clustermgmt_node_status{cluster=\"default\",node=\"b\",status=\"online\"}"),
	    "0");
	assert_string_equal(
	    sample(text,
	           "clustermgmt_node_status{cluster=\"default\",node=\"c\",status=\"drain\"}"),
	    "1");
	assert_string_equal(
	    sample(text, "clustermgmt_node_status{cluster=\"web\",node=\"w1\",status=\"online\"}"),
	    "1");
	model_free(m);
	free(text);
}

static void
test_ttl_seconds_only_for_statuses_with_a_ttl(void **state)
{
	struct model *m = sample_model();
	char *text = render(m, NULL, NULL, T0 + 30 * 1000);

	(void)state;
	assert_string_equal(
	    sample(text, "clustermgmt_node_ttl_seconds{cluster=\"default\",node=\"b\"}"), "60.000");
	assert_null(sample(text, "clustermgmt_node_ttl_seconds{cluster=\"default\",node=\"c\"}"));
	assert_null(sample(text, "clustermgmt_node_ttl_seconds{cluster=\"default\",node=\"a\"}"));
	free(text);
	text = render(m, NULL, NULL, T0 + 100 * 1000); /* overdue: negative */
	assert_string_equal(
	    sample(text, "clustermgmt_node_ttl_seconds{cluster=\"default\",node=\"b\"}"),
	    "-10.000");
	model_free(m);
	free(text);
}

static void
test_cluster_version_and_nodes(void **state)
{
	struct model *m = sample_model();
	char *text = render(m, NULL, NULL, T0);

	(void)state;
	/* 1 at creation, +1 node list, +1 change set */
	assert_string_equal(sample(text, "clustermgmt_cluster_version{cluster=\"default\"}"), "3");
	assert_string_equal(sample(text, "clustermgmt_cluster_nodes{cluster=\"default\"}"), "3");
	assert_string_equal(sample(text, "clustermgmt_cluster_nodes{cluster=\"web\"}"), "1");
	model_free(m);
	free(text);
}

static void
test_check_up_follows_the_published_check_state(void **state)
{
	struct model *m = sample_model();
	struct observe *o = observe_new();
	struct cluster *c = model_find_cluster_mut(m, "default");
	struct observe_check down = {.is_up = 0, .last_at = T0}, up = {.is_up = 1, .last_at = T0};
	struct error err;
	char *text;

	(void)state;
	assert_int_equal(
	    cluster_put_node(c, "a", NULL, "http://127.0.0.1:9/", NULL, T0, NULL, &err), 0);
	assert_int_equal(
	    cluster_put_node(c, "b", NULL, "http://127.0.0.1:9/", NULL, T0, NULL, &err), 0);
	text = render(m, o, NULL, T0);
	/* a check that has not run yet has no series */
	assert_null(sample(text, "clustermgmt_node_check_up{cluster=\"default\",node=\"a\"}"));
	free(text);
	observe_check_set(o, "default", "a", &down);
	observe_check_set(o, "default", "b", &up);
	text = render(m, o, NULL, T0);
	assert_string_equal(
	    sample(text, "clustermgmt_node_check_up{cluster=\"default\",node=\"a\"}"), "0");
	assert_string_equal(
	    sample(text, "clustermgmt_node_check_up{cluster=\"default\",node=\"b\"}"), "1");
	assert_null(sample(text, "clustermgmt_node_check_up{cluster=\"default\",node=\"c\"}"));
	observe_free(o);
	model_free(m);
	free(text);
}

static void
test_probers_count_clients_of_the_last_minute(void **state)
{
	struct model *m = sample_model();
	struct observe *o = observe_new();
	const struct cluster *c = model_find_cluster(m, "default");
	struct observe_client lb1 = {OBSERVE_HTTP, "10.0.0.1", NULL, 0, NULL, 0};
	struct observe_client lb2 = {OBSERVE_HTTP, "10.0.0.2", NULL, 0, NULL, 0};
	char *text;

	(void)state;
	observe_answer_probe(o, "default", cluster_find_node(c, "a", 1), &lb1, T0);
	observe_answer_probe(o, "default", cluster_find_node(c, "a", 1), &lb2, T0 + 50 * 1000);
	text = render(m, o, NULL, T0 + 70 * 1000); /* lb1 is 70 s old, lb2 20 s */
	assert_string_equal(
	    sample(text, "clustermgmt_node_probers{cluster=\"default\",node=\"a\"}"), "1");
	assert_string_equal(
	    sample(text, "clustermgmt_node_probers{cluster=\"default\",node=\"b\"}"), "0");
	assert_string_equal(
	    sample(text,
	           "clustermgmt_node_last_probe_timestamp_seconds{cluster=\"default\",node=\"a\"}"),
	    "1700000050.000");
	assert_null(sample(
	    text, "clustermgmt_node_last_probe_timestamp_seconds{cluster=\"default\",node=\"b\"}"));
	observe_free(o);
	model_free(m);
	free(text);
}

static void
test_answers_are_counted_by_cluster_and_answer(void **state)
{
	struct model *m = sample_model();
	struct observe *o = observe_new();
	const struct cluster *c = model_find_cluster(m, "default");
	struct observe_client lb = {OBSERVE_HTTP, "10.0.0.1", NULL, 0, NULL, 0};
	struct observe_client agent = {OBSERVE_AGENT, "10.0.0.1", NULL, 0, NULL, 0};
	char *text;

	(void)state;
	observe_answer_probe(o, "default", cluster_find_node(c, "a", 1), &lb, T0);
	observe_answer_probe(o, "default", cluster_find_node(c, "a", 1), &agent, T0);
	observe_answer_probe(o, "default", cluster_find_node(c, "b", 1), &lb, T0);
	text = render(m, o, NULL, T0);
	assert_string_equal(
	    sample(text, "clustermgmt_probe_answers_total{cluster=\"default\",answer=\"serving\"}"),
	    "2");
	assert_string_equal(
	    sample(text, "clustermgmt_probe_answers_total{cluster=\"default\",answer=\"offline\"}"),
	    "1");
	assert_string_equal(
	    sample(text, "clustermgmt_probe_answers_total{cluster=\"default\",answer=\"drain\"}"),
	    "0");
	assert_string_equal(
	    sample(text, "clustermgmt_probe_answers_total{cluster=\"web\",answer=\"serving\"}"),
	    "0");
	/* no prober label anywhere */
	assert_null(strstr(text, "10.0.0.1"));
	observe_free(o);
	model_free(m);
	free(text);
}

static void
test_answer_counters_are_bounded(void **state)
{
	struct observe *o = observe_new();
	struct observe_client lb = {OBSERVE_HTTP, "10.0.0.1", NULL, 0, NULL, 0};
	struct node n = {.name = (char *)"a"};
	uint64_t counts[OBSERVE_ANSWERS];
	char cluster[32];
	int i;

	(void)state;
	for (i = 0; i <= OBSERVE_CLUSTERS_MAX; i++) {
		snprintf(cluster, sizeof(cluster), "c%d", i);
		observe_answer_probe(o, cluster, &n, &lb, T0);
	}
	assert_int_equal(observe_answer_counts(o, "c0", counts), 1);
	assert_int_equal(counts[OBSERVE_SERVING], 1);
	snprintf(cluster, sizeof(cluster), "c%d", OBSERVE_CLUSTERS_MAX);
	assert_int_equal(observe_answer_counts(o, cluster, counts), 0);
	assert_int_equal(counts[OBSERVE_SERVING], 0);
	assert_int_equal(observe_answer_untracked(o), 1);
	observe_free(o);
}

static void
test_histogram_buckets_are_cumulative(void **state)
{
	struct histogram h = {0};
	struct metrics_stats s = {.store_up = 1, .long_polls_held = 7, .write_latency = &h};
	char *text;

	(void)state;
	histogram_observe(&h, 800);     /* 0.8 ms: le 0.001 */
	histogram_observe(&h, 3000);    /* 3 ms: le 0.005 */
	histogram_observe(&h, 9000000); /* 9 s: +Inf only */
	text = render(NULL, NULL, &s, T0);
	assert_string_equal(sample(text, "clustermgmt_write_duration_seconds_bucket{le=\"0.001\"}"),
	                    "1");
	assert_string_equal(
	    sample(text, "clustermgmt_write_duration_seconds_bucket{le=\"0.0025\"}"), "1");
	assert_string_equal(sample(text, "clustermgmt_write_duration_seconds_bucket{le=\"0.005\"}"),
	                    "2");
	assert_string_equal(sample(text, "clustermgmt_write_duration_seconds_bucket{le=\"5\"}"),
	                    "2");
	assert_string_equal(sample(text, "clustermgmt_write_duration_seconds_bucket{le=\"+Inf\"}"),
	                    "3");
	assert_string_equal(sample(text, "clustermgmt_write_duration_seconds_count"), "3");
	assert_string_equal(sample(text, "clustermgmt_write_duration_seconds_sum"), "9.003800");
	assert_string_equal(sample(text, "clustermgmt_store_up"), "1");
	assert_string_equal(sample(text, "clustermgmt_long_polls_held"), "7");
	assert_string_equal(sample(text, "clustermgmt_password_checks_queued"), "0");
	free(text);
}

static void
test_process_figures_are_read_from_proc(void **state)
{
	struct metrics_process p;
	size_t len;
	char *text;
	double now = (double)time(NULL);

	(void)state;
	assert_int_equal(metrics_process_read(&p), 0);
	assert_true(p.resident_bytes > 1024 * 1024 / 2);
	assert_true(p.open_fds >= 3); /* stdin, stdout, stderr */
	assert_true(p.max_fds >= p.open_fds);
	assert_true(p.threads >= 1);
	/* this test process started in the last hour and not in the future */
	assert_true(p.start_time_seconds > now - 3600 && p.start_time_seconds <= now + 1);
	text = metrics_render(NULL, NULL, NULL, &p, T0, &len);
	assert_non_null(sample(text, "process_resident_memory_bytes"));
	assert_non_null(sample(text, "process_open_fds"));
	assert_non_null(sample(text, "process_start_time_seconds"));
	assert_non_null(strstr(text, "# TYPE process_cpu_seconds_total counter\n"));
	free(text);
}

static void
test_every_family_is_declared_once_and_contiguous(void **state)
{
	struct model *m = sample_model();
	struct observe *o = observe_new();
	struct histogram h = {0};
	struct metrics_stats s = {.store_up = 1, .write_latency = &h};
	struct metrics_process p;
	char *text, *line, *save = NULL, *seen = calloc(1, 1), current[128] = "";
	size_t len;

	(void)state;
	metrics_process_read(&p);
	text = metrics_render(m, o, &s, &p, T0, &len);
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char name[128], key[132];
		if (strncmp(line, "# TYPE ", 7) == 0) {
			sscanf(line + 7, "%127s", name);
			snprintf(key, sizeof(key), "|%s|", name);
			assert_null(strstr(seen, key)); /* declared once */
			seen = realloc(seen, strlen(seen) + strlen(key) + 1);
			strcat(seen, key);
			snprintf(current, sizeof(current), "%s", name);
		} else if (line[0] != '#') {
			/* a sample belongs to the family declared last */
			assert_int_equal(strncmp(line, current, strlen(current)), 0);
		}
	}
	free(seen);
	observe_free(o);
	model_free(m);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_build_info_names_the_version),
	    cmocka_unit_test(test_node_status_is_one_series_per_state),
	    cmocka_unit_test(test_ttl_seconds_only_for_statuses_with_a_ttl),
	    cmocka_unit_test(test_cluster_version_and_nodes),
	    cmocka_unit_test(test_check_up_follows_the_published_check_state),
	    cmocka_unit_test(test_probers_count_clients_of_the_last_minute),
	    cmocka_unit_test(test_answers_are_counted_by_cluster_and_answer),
	    cmocka_unit_test(test_answer_counters_are_bounded),
	    cmocka_unit_test(test_histogram_buckets_are_cumulative),
	    cmocka_unit_test(test_process_figures_are_read_from_proc),
	    cmocka_unit_test(test_every_family_is_declared_once_and_contiguous),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
