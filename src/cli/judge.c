/*
 * judge.c - the once-a-second loop of judge.h: read every usable load
 * balancer, take the differences, feed the verdicts.
 *
 * A load balancer is read once per second for all the servers it is asked
 * about (HAProxy: one `show stat` for the backend; Varnish: one pass over
 * the counters and the new log records), each reading bounded by
 * READ_TIMEOUT_MS so that one stalled load balancer costs less than the
 * second. A reading that fails is not a difference: the next good one is
 * compared with the last good one, and the seconds in between count
 * together (the test takes any number of responses per step).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "judge.h"
#include "drain/lbruntime.h"
#include "util/timefmt.h"

#define READ_TIMEOUT_MS 800
#define TICK_MS 1000

int
judge_config_from_cli(const struct cli *cli, struct analysis_config *c, struct error *err)
{
	char why[160], *end;
	double v;
	unsigned long long n;

	analysis_config_default(c);
	if (cli->max_error_ratio != NULL) {
		errno = 0;
		v = strtod(cli->max_error_ratio, &end);
		if (errno != 0 || end == cli->max_error_ratio || *end != '\0' || !(v > 0 && v < 1))
			return cli_usage_error(
			    err,
			    "bad --max-error-ratio '%s': give a ratio above 0 and below 1, "
			    "like 0.02 for 2%%",
			    cli->max_error_ratio);
		c->max_error_ratio = v;
	}
	if (cli->max_latency_ratio != NULL) {
		errno = 0;
		v = strtod(cli->max_latency_ratio, &end);
		if (errno != 0 || end == cli->max_latency_ratio || *end != '\0' ||
		    !(v >= 1 && v <= 1000))
			return cli_usage_error(
			    err,
			    "bad --max-latency-ratio '%s': give a ratio from 1 to 1000, like 1.5",
			    cli->max_latency_ratio);
		c->max_latency_ratio = v;
	}
	if (cli->min_requests != NULL) {
		errno = 0;
		n = strtoull(cli->min_requests, &end, 10);
		if (errno != 0 || cli->min_requests[0] < '0' || cli->min_requests[0] > '9' ||
		    *end != '\0' || n < 1 || n > 100000000)
			return cli_usage_error(
			    err, "bad --min-requests '%s': give a number from 1 to 100000000",
			    cli->min_requests);
		c->min_requests = n;
	}
	if (analysis_config_check(c, why, sizeof(why)) != 0)
		return cli_usage_error(err, "%s", why);
	return 0;
}

int
judge_prometheus_from_cli(const struct cli *cli, struct error *err)
{
	if ((cli->prometheus == NULL) != (cli->analysis_query == NULL))
		return cli_usage_error(err, "--prometheus URL and --analysis-query 'PROMQL' go "
		                            "together");
	if (cli->prometheus == NULL)
		return 0;
	if (strncmp(cli->prometheus, "http://", 7) != 0 &&
	    strncmp(cli->prometheus, "https://", 8) != 0)
		return cli_usage_error(err,
		                       "bad --prometheus '%s': give its http:// or https:// URL",
		                       cli->prometheus);
	if (strstr(cli->analysis_query, "{node}") == NULL)
		return cli_usage_error(err, "--analysis-query must hold {node}, replaced by each "
		                            "node's name");
	if (strlen(cli->prometheus) > 1024 || strlen(cli->analysis_query) > 4096)
		return cli_usage_error(err, "--prometheus or --analysis-query is too long");
	return 0;
}

/* Can lb give per-server counters? Fills jl->why_not when not. */
static int
lb_is_usable(struct judge_lb *jl, const char *cluster)
{
	const struct drain_lb *lb = jl->lb;
	char why[256];

	if (strcmp(lb->kind, "prometheus") == 0)
		return 1;
	if (strcmp(lb->kind, "nginx") == 0) {
		snprintf(jl->why_not, sizeof(jl->why_not),
		         "%s: nginx keeps no per-server counters (see docs/LOADBALANCERS.md)",
		         lb->name);
		return 0;
	}
	if (strcmp(lb->kind, "haproxy") != 0 && strcmp(lb->kind, "varnish") != 0) {
		snprintf(jl->why_not, sizeof(jl->why_not),
		         "%s: a load balancer of kind %s gives no counters clustermgmt can read",
		         lb->name, lb->kind);
		return 0;
	}
	if (lb->runtime[0] == '\0') {
		snprintf(jl->why_not, sizeof(jl->why_not),
		         "%s: no runtime access (clustermgmt lb add %s --kind %s --runtime ...)",
		         lb->name, lb->name, lb->kind);
		return 0;
	}
	if (strcmp(lb->kind, "haproxy") == 0) {
		if (lb->backend[0] != '\0')
			snprintf(jl->backend, sizeof(jl->backend), "%s", lb->backend);
		else
			snprintf(jl->backend, sizeof(jl->backend), "be_%s", cluster);
		return 1;
	}
	if ((jl->varnish = sample_varnish_open(lb->runtime, why, sizeof(why))) == NULL) {
		snprintf(jl->why_not, sizeof(jl->why_not), "%s: %s", lb->name, why);
		return 0;
	}
	return 1;
}

static void
set_server_name(const struct judge_lb *jl, struct sample_server *s, const char *node)
{
	if (strcmp(jl->lb->kind, "varnish") == 0)
		lbruntime_varnish_backend(node, s->name, sizeof(s->name));
	else
		snprintf(s->name, sizeof(s->name), "%s", node);
}

int
judge_open(struct judge *j, const struct analysis_config *c, const char *cluster,
           const struct drain_lb *lbs, size_t n_lbs, const char *const *nodes, int n_nodes,
           const char *const *peers, int n_peers, struct error *err)
{
	size_t i, used = 0;
	int k, n_servers = n_nodes + n_peers;
	struct analysis_config per_lb;

	const char *prometheus_url = j->prometheus_url, *query = j->query;

	memset(j, 0, sizeof(*j));
	j->prometheus_url = prometheus_url;
	j->query = query;
	j->cfg = *c;
	j->cluster = cluster;
	if (n_nodes < 1 || n_nodes > JUDGE_NODES_MAX || n_peers < 0 || n_peers > JUDGE_PEERS_MAX)
		return cli_usage_error(err,
		                       "a verdict judges 1 to %d nodes against at most %d peers",
		                       JUDGE_NODES_MAX, JUDGE_PEERS_MAX);
	j->n_nodes = n_nodes;
	for (k = 0; k < n_nodes; k++) {
		j->nodes[k].name = nodes[k];
		j->nodes[k].decided_ms = -1;
	}
	j->n_peers = n_peers;
	for (k = 0; k < n_peers; k++)
		j->peers[k] = peers[k];
	j->n_lbs = n_lbs;
	for (i = 0; i < n_lbs; i++) {
		j->lbs[i].lb = &lbs[i];
		j->lbs[i].is_usable = lb_is_usable(&j->lbs[i], cluster);
		j->n_usable += j->lbs[i].is_usable;
	}
	if (j->prometheus_url != NULL && j->query != NULL) {
		snprintf(j->prometheus.name, sizeof(j->prometheus.name), "prometheus");
		snprintf(j->prometheus.kind, sizeof(j->prometheus.kind), "prometheus");
		j->lbs[j->n_lbs].lb = &j->prometheus;
		j->lbs[j->n_lbs].is_usable = 1;
		j->n_lbs++;
		j->n_usable++;
	}
	if (j->n_usable == 0) {
		error_set(err, 0,
		          "cannot judge the deploy: %s; a verdict needs at least one HAProxy or "
		          "Varnish registered with runtime access",
		          n_lbs == 0 ? "the cluster has no named load balancer (clustermgmt lb add)"
		                     : "no named load balancer gives per-node counters");
		for (i = 0; i < n_lbs; i++) {
			used = strlen(err->what);
			snprintf(err->what + used, sizeof(err->what) - used, "; %s",
			         j->lbs[i].why_not);
		}
		return CLI_REFUSED;
	}
	per_lb = *c;
	per_lb.alpha = c->alpha / (double)j->n_usable;
	for (i = 0; i < j->n_lbs; i++) {
		struct judge_lb *jl = &j->lbs[i];
		if (!jl->is_usable)
			continue;
		jl->servers = calloc((size_t)n_servers, sizeof(*jl->servers));
		jl->previous = calloc((size_t)n_servers, sizeof(*jl->previous));
		if (jl->servers == NULL || jl->previous == NULL)
			abort(); /* out of memory */
		for (k = 0; k < n_servers; k++)
			set_server_name(jl, &jl->servers[k],
			                k < n_nodes ? nodes[k] : peers[k - n_nodes]);
		for (k = 0; k < n_nodes; k++)
			if (jl->lb == &j->prometheus)
				analysis_init_ratio(&jl->verdict[k], &per_lb, n_peers > 0);
			else
				analysis_init(&jl->verdict[k], &per_lb, n_peers > 0);
	}
	return CLI_OK;
}

void
judge_close(struct judge *j)
{
	size_t i;

	for (i = 0; i < j->n_lbs && i <= WAIT_LBS_MAX; i++) {
		sample_varnish_close(j->lbs[i].varnish);
		free(j->lbs[i].servers);
		free(j->lbs[i].previous);
		j->lbs[i].varnish = NULL;
		j->lbs[i].servers = j->lbs[i].previous = NULL;
	}
}

/* Reads one load balancer now. Returns 0, or -1 with last_error. */
static int
read_lb(struct judge *j, struct judge_lb *jl)
{
	size_t n = (size_t)(j->n_nodes + j->n_peers);

	if (jl->varnish != NULL)
		return sample_varnish(jl->varnish, jl->servers, n, jl->last_error,
		                      sizeof(jl->last_error));
	return sample_haproxy(jl->lb->runtime, jl->backend, jl->servers, n, READ_TIMEOUT_MS,
	                      jl->last_error, sizeof(jl->last_error));
}

static void
note_fail(struct judge *j, int k, const char *lb, const char *why)
{
	struct judge_node *node = &j->nodes[k];

	if (node->outcome == ANALYSIS_FAIL)
		return;
	node->outcome = ANALYSIS_FAIL;
	node->decided_ms = time_monotonic_ms() - j->started;
	snprintf(node->reason, sizeof(node->reason), "%s: %s", lb, why);
}

/* One second of the Prometheus query: each node's value against the
 * mean of its peers'. */
static void
step_prometheus(struct judge *j, struct judge_lb *jl)
{
	double v, peer_sum = 0;
	int k, has, n_peer_values = 0, is_failed = 0;

	for (k = 0; k < j->n_peers; k++) {
		if (sample_prometheus(j->prometheus_url, j->query, j->peers[k], READ_TIMEOUT_MS / 2,
		                      &v, &has, jl->last_error, sizeof(jl->last_error)) != 0) {
			is_failed = 1;
			break;
		}
		if (has) {
			peer_sum += v;
			n_peer_values++;
		}
	}
	for (k = 0; k < j->n_nodes && !is_failed; k++) {
		if (sample_prometheus(j->prometheus_url, j->query, j->nodes[k].name,
		                      READ_TIMEOUT_MS / 2, &v, &has, jl->last_error,
		                      sizeof(jl->last_error)) != 0) {
			is_failed = 1;
			break;
		}
		if (analysis_add_ratio(&jl->verdict[k], v, has,
		                       n_peer_values > 0 ? peer_sum / n_peer_values : 0,
		                       n_peer_values > 0) == ANALYSIS_FAIL)
			note_fail(j, k, jl->lb->name, jl->verdict[k].reason);
	}
	if (is_failed)
		jl->failed_reads++;
}

/* One second at one load balancer: the differences into the verdicts. */
static void
step_lb(struct judge *j, struct judge_lb *jl)
{
	struct sample_change ch;
	struct analysis_sample peers = {0}, node;
	int k, is_reset = 0, n = j->n_nodes + j->n_peers;

	if (read_lb(j, jl) != 0) {
		jl->failed_reads++;
		return;
	}
	if (!jl->has_previous) {
		memcpy(jl->previous, jl->servers, (size_t)n * sizeof(*jl->servers));
		jl->has_previous = 1;
		return;
	}
	for (k = 0; k < n; k++) {
		sample_delta(&jl->previous[k], &jl->servers[k], &ch);
		is_reset |= ch.is_reset;
		if (k >= j->n_nodes) {
			peers.responses += ch.responses;
			peers.errors += ch.errors;
			peers.latency_ms_sum += ch.latency_ms_sum;
			peers.timed += ch.timed;
		}
	}
	if (is_reset) { /* a reload: measure from the new counters */
		jl->resets++;
		memcpy(jl->previous, jl->servers, (size_t)n * sizeof(*jl->servers));
		return;
	}
	for (k = 0; k < j->n_nodes; k++) {
		struct sample_server *s = &jl->servers[k];
		sample_delta(&jl->previous[k], s, &ch);
		node.responses = ch.responses;
		node.errors = ch.errors;
		node.latency_ms_sum = ch.latency_ms_sum;
		node.timed = ch.timed;
		if (analysis_add(&jl->verdict[k], &node, j->n_peers > 0 ? &peers : NULL) ==
		    ANALYSIS_FAIL)
			note_fail(j, k, jl->lb->name, jl->verdict[k].reason);
		jl->down_streak[k] =
		    strncmp(s->status, "DOWN", 4) == 0 ? jl->down_streak[k] + 1 : 0;
		if (jl->down_streak[k] >= JUDGE_DOWN_SECONDS)
			note_fail(j, k, jl->lb->name, "HAProxy marks it DOWN (its checks fail)");
	}
	memcpy(jl->previous, jl->servers, (size_t)n * sizeof(*jl->servers));
}

static int
any_failed(const struct judge *j)
{
	int k;

	for (k = 0; k < j->n_nodes; k++)
		if (j->nodes[k].outcome == ANALYSIS_FAIL)
			return 1;
	return 0;
}

/* The end: every node not failed gets pass or inconclusive. */
static enum analysis_outcome
conclude(struct judge *j, int is_stopped)
{
	enum analysis_outcome worst = ANALYSIS_PASS;
	size_t i;
	int k, passes;

	for (k = 0; k < j->n_nodes; k++) {
		struct judge_node *node = &j->nodes[k];
		if (node->outcome != ANALYSIS_FAIL) {
			node->reason[0] = '\0';
			for (i = 0, passes = 0; i < j->n_lbs; i++) {
				struct analysis *a = &j->lbs[i].verdict[k];
				if (!j->lbs[i].is_usable)
					continue;
				passes += analysis_finish(a) == ANALYSIS_PASS;
				if (node->reason[0] == '\0' || a->outcome == ANALYSIS_PASS)
					snprintf(node->reason, sizeof(node->reason), "%s: %s",
					         j->lbs[i].lb->name, a->reason);
			}
			node->outcome =
			    passes > 0 && !is_stopped ? ANALYSIS_PASS : ANALYSIS_INCONCLUSIVE;
			if (is_stopped)
				snprintf(node->reason, sizeof(node->reason),
				         "interrupted before a verdict");
			node->decided_ms = j->took_ms;
		}
		if (node->outcome == ANALYSIS_FAIL)
			worst = ANALYSIS_FAIL;
		else if (node->outcome == ANALYSIS_INCONCLUSIVE && worst != ANALYSIS_FAIL)
			worst = ANALYSIS_INCONCLUSIVE;
	}
	return worst;
}

enum analysis_outcome
judge_run(struct judge *j, int64_t duration_ms, volatile sig_atomic_t *stop, judge_tick_fn on_tick,
          void *ctx)
{
	int64_t next, now;
	size_t i;

	j->started = time_monotonic_ms();
	next = j->started;
	while (1) {
		for (i = 0; i < j->n_lbs; i++)
			if (j->lbs[i].lb == &j->prometheus)
				step_prometheus(j, &j->lbs[i]);
			else if (j->lbs[i].is_usable)
				step_lb(j, &j->lbs[i]);
		now = time_monotonic_ms();
		j->took_ms = now - j->started;
		if (on_tick != NULL)
			on_tick(ctx, j);
		if (any_failed(j) || (stop != NULL && *stop) || j->took_ms >= duration_ms)
			break;
		next += TICK_MS;
		if (next > now)
			wait_sleep_ms(next - now < duration_ms - j->took_ms
			                  ? next - now
			                  : duration_ms - j->took_ms,
			              stop);
		else
			next = now;
	}
	return conclude(j, !any_failed(j) && stop != NULL && *stop);
}

static double
percent(uint64_t part, uint64_t whole)
{
	return whole == 0 ? 0 : 100.0 * (double)part / (double)whole;
}

void
judge_format_evidence(const struct judge *j, int k, char *buf, size_t size)
{
	size_t i, used = 0;

	buf[0] = '\0';
	for (i = 0; i < j->n_lbs && used + 1 < size; i++) {
		const struct judge_lb *jl = &j->lbs[i];
		const struct analysis *a = &jl->verdict[k];
		char latency[96] = "", extra[96] = "";
		int n;
		if (!jl->is_usable) {
			n = snprintf(buf + used, size - used, "%s  %s: not judged\n", "",
			             jl->why_not);
			used += n > 0 ? (size_t)n : 0;
			continue;
		}
		if (a->is_ratio) {
			n = snprintf(
			    buf + used, size - used,
			    "  %s: the query gives %.4g%s%.4g%s; %d of %d evaluations with data%s"
			    "; %s\n",
			    jl->lb->name, a->node_ratio,
			    a->has_peers ? " against the peers' " : " (ceiling ",
			    a->has_peers ? a->peer_ratio : a->cfg.max_error_ratio,
			    a->has_peers ? "" : ")", a->ratio_seen, a->seconds,
			    jl->failed_reads > 0 ? " (some queries failed)" : "",
			    analysis_outcome_name(a->outcome));
			used += n > 0 ? (size_t)n : 0;
			continue;
		}
		if (a->node_latency_ms >= 0)
			snprintf(latency, sizeof(latency), "; mean %.0f ms against %s%.0f ms",
			         a->node_latency_ms, a->has_peers ? "the peers' " : "",
			         a->has_peers ? a->peer_latency_ms : a->cfg.max_latency_ms);
		if (jl->resets > 0 || jl->failed_reads > 0)
			snprintf(extra, sizeof(extra), "; %d reset%s, %d failed read%s", jl->resets,
			         jl->resets == 1 ? "" : "s", jl->failed_reads,
			         jl->failed_reads == 1 ? "" : "s");
		if (a->has_peers)
			n = snprintf(
			    buf + used, size - used,
			    "  %s: %llu responses, %llu errors (%.2f%%) against the peers' "
			    "%llu of %llu (%.2f%%); statistic %.1f (fails at %.1f)%s%s; %s\n",
			    jl->lb->name, (unsigned long long)a->node_responses,
			    (unsigned long long)a->node_errors,
			    percent(a->node_errors, a->node_responses),
			    (unsigned long long)a->peer_errors,
			    (unsigned long long)a->peer_responses,
			    percent(a->peer_errors, a->peer_responses), a->statistic,
			    a->log_threshold, latency, extra, analysis_outcome_name(a->outcome));
		else
			n = snprintf(
			    buf + used, size - used,
			    "  %s: %llu responses, %llu errors (%.2f%%), no peers: against "
			    "the ceiling %.2f%%; statistic %.1f (fails at %.1f)%s%s; %s\n",
			    jl->lb->name, (unsigned long long)a->node_responses,
			    (unsigned long long)a->node_errors,
			    percent(a->node_errors, a->node_responses),
			    100 * a->cfg.max_error_ratio, a->statistic, a->log_threshold, latency,
			    extra, analysis_outcome_name(a->outcome));
		used += n > 0 ? (size_t)n : 0;
	}
	if (used >= size)
		used = size - 1;
	if (used > 0 && buf[used - 1] == '\n')
		buf[used - 1] = '\0';
}

json_t *
judge_evidence_json(const struct judge *j, int k)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < j->n_lbs; i++) {
		const struct judge_lb *jl = &j->lbs[i];
		const struct analysis *a = &jl->verdict[k];
		if (!jl->is_usable) {
			json_array_append_new(list, json_pack("{s:s, s:b, s:s}", "lb", jl->lb->name,
			                                      "judged", 0, "why", jl->why_not));
			continue;
		}
		if (a->is_ratio) {
			json_array_append_new(
			    list,
			    json_pack("{s:s, s:b, s:s, s:o, s:o, s:i, s:i, s:i, s:s}", "lb",
			              jl->lb->name, "judged", 1, "outcome",
			              analysis_outcome_name(a->outcome), "value",
			              a->node_ratio >= 0 ? json_real(a->node_ratio) : json_null(),
			              "peer_value",
			              a->peer_ratio >= 0 ? json_real(a->peer_ratio) : json_null(),
			              "evaluations", a->seconds, "with_data", a->ratio_seen,
			              "failed_reads", jl->failed_reads, "reason", a->reason));
			continue;
		}
		json_array_append_new(
		    list,
		    json_pack("{s:s, s:b, s:s, s:I, s:I, s:I, s:I, s:b, s:f, s:f, s:o, s:o, s:i, "
		              "s:i, s:i, s:s, s:s}",
		              "lb", jl->lb->name, "judged", 1, "outcome",
		              analysis_outcome_name(a->outcome), "responses",
		              (json_int_t)a->node_responses, "errors", (json_int_t)a->node_errors,
		              "peer_responses", (json_int_t)a->peer_responses, "peer_errors",
		              (json_int_t)a->peer_errors, "has_peers", a->has_peers, "statistic",
		              isfinite(a->statistic) ? a->statistic : 0.0, "threshold",
		              a->log_threshold, "latency_ms",
		              a->node_latency_ms >= 0 ? json_real(a->node_latency_ms) : json_null(),
		              "peer_latency_ms",
		              a->peer_latency_ms >= 0 ? json_real(a->peer_latency_ms) : json_null(),
		              "seconds", a->seconds, "resets", jl->resets, "failed_reads",
		              jl->failed_reads, "reason", a->reason, "backend",
		              jl->varnish != NULL ? jl->servers[k].name : jl->backend));
	}
	return list;
}
