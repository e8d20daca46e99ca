/*
 * verdict.c - the sequential tests of verdict.h.
 *
 * Everything is kept in logarithms: a likelihood ratio of a bad node grows
 * exponentially with the seconds watched, and one of a good node shrinks
 * the same way; both would leave a double's range within minutes.
 *
 * The hypergeometric expectation E0[w^X] is summed over the support of X,
 * which is at most the second's error count: a few terms at the traffic of
 * a web node. A second with more than SUPPORT_MAX possible values (tens of
 * thousands of errors in one second) is scaled down to that size first,
 * which keeps the cost bounded and only makes the test more cautious.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "verdict.h"

#define SUPPORT_MAX 20000

static void decide_fail(struct analysis *a, const char *reason);

/* The alternatives mixed: the node's odds of an error w times the peers'. */
static const double omegas[ANALYSIS_OMEGAS] = {1.5, 2, 3, 5, 10, 30, 100, 1000};

/* Without peers: error ratios p0 + (1 - p0) * q above the ceiling p0. */
static const double ceiling_steps[ANALYSIS_CEILINGS] = {0.005, 0.01, 0.02, 0.05,
                                                        0.1,   0.2,  0.4,  0.7};

void
analysis_config_default(struct analysis_config *c)
{
	memset(c, 0, sizeof(*c));
	c->alpha = 0.001;
	c->max_error_ratio = 0.01;
	c->max_latency_ratio = 1.5;
	c->min_latency_excess_ms = 50;
	c->max_latency_ms = 0;
	c->latency_window_s = 10;
	c->latency_persist_s = 5;
	c->min_requests = 100;
}

int
analysis_config_check(const struct analysis_config *c, char *why, size_t why_size)
{
	if (!(c->alpha > 0 && c->alpha <= 0.1))
		snprintf(why, why_size, "the false-alarm bound must be above 0 and at most 0.1");
	else if (!(c->max_error_ratio > 0 && c->max_error_ratio < 1))
		snprintf(why, why_size, "the error ratio must be above 0 and below 1");
	else if (!(c->max_latency_ratio >= 1 && c->max_latency_ratio <= 1000))
		snprintf(why, why_size, "the latency ratio must be from 1 to 1000");
	else if (!(c->min_latency_excess_ms >= 0 && c->min_latency_excess_ms <= 3600e3))
		snprintf(why, why_size, "the latency excess must be from 0 to 1 hour");
	else if (!(c->max_latency_ms >= 0 && c->max_latency_ms <= 3600e3))
		snprintf(why, why_size, "the latency ceiling must be from 0 to 1 hour");
	else if (c->latency_window_s < 1 || c->latency_window_s > ANALYSIS_LATENCY_WINDOW_MAX)
		snprintf(why, why_size, "the latency window must be from 1 to %d seconds",
		         ANALYSIS_LATENCY_WINDOW_MAX);
	else if (c->latency_persist_s < 1 || c->latency_persist_s > 3600)
		snprintf(why, why_size, "the latency persistence must be from 1 to 3600 seconds");
	else if (c->min_requests < 1 || c->min_requests > 100000000)
		snprintf(why, why_size, "the minimum volume must be from 1 to 100000000 requests");
	else
		return 0;
	return -1;
}

void
analysis_init(struct analysis *a, const struct analysis_config *c, int has_peers)
{
	memset(a, 0, sizeof(*a));
	a->cfg = *c;
	a->has_peers = has_peers != 0;
	a->log_threshold = -log(c->alpha);
	a->node_latency_ms = a->peer_latency_ms = -1;
}

void
analysis_init_ratio(struct analysis *a, const struct analysis_config *c, int has_peers)
{
	analysis_init(a, c, has_peers);
	a->is_ratio = 1;
	a->node_ratio = a->peer_ratio = -1;
}

enum analysis_outcome
analysis_add_ratio(struct analysis *a, double node_ratio, int has_node, double peer_ratio,
                   int has_peers)
{
	int is_known = has_node && (!a->has_peers || has_peers), is_over;
	char why[256];

	if (a->outcome == ANALYSIS_FAIL)
		return a->outcome;
	a->seconds++;
	a->node_ratio = has_node ? node_ratio : -1;
	a->peer_ratio = a->has_peers && has_peers ? peer_ratio : -1;
	if (!is_known) {
		a->ratio_streak = 0;
		return ANALYSIS_PENDING;
	}
	a->ratio_seen++;
	is_over = a->has_peers ? node_ratio - peer_ratio > a->cfg.max_error_ratio
	                       : node_ratio > a->cfg.max_error_ratio;
	a->ratio_streak = is_over ? a->ratio_streak + 1 : 0;
	if (a->ratio_streak < a->cfg.latency_persist_s)
		return ANALYSIS_PENDING;
	if (a->has_peers)
		snprintf(
		    why, sizeof(why),
		    "the query gives %.4g against the peers' %.4g, more than %.4g above, for %d "
		    "evaluations in a row",
		    node_ratio, peer_ratio, a->cfg.max_error_ratio, a->ratio_streak);
	else
		snprintf(why, sizeof(why),
		         "the query gives %.4g, above %.4g, for %d evaluations in a row",
		         node_ratio, a->cfg.max_error_ratio, a->ratio_streak);
	decide_fail(a, why);
	return ANALYSIS_FAIL;
}

const char *
analysis_outcome_name(enum analysis_outcome o)
{
	switch (o) {
	case ANALYSIS_PASS:
		return "pass";
	case ANALYSIS_FAIL:
		return "fail";
	case ANALYSIS_INCONCLUSIVE:
		return "inconclusive";
	case ANALYSIS_PENDING:
		break;
	}
	return "pending";
}

static double
log_choose(double n, double k)
{
	return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1);
}

/* log(sum exp(v[i])) over n values. */
static double
log_sum_exp(const double *v, int n)
{
	double top = -INFINITY, sum = 0;
	int i;

	for (i = 0; i < n; i++)
		if (v[i] > top)
			top = v[i];
	if (top == -INFINITY)
		return top;
	for (i = 0; i < n; i++)
		sum += exp(v[i] - top);
	return top + log(sum);
}

static double
mixture(const double *log_lr, int n)
{
	return log_sum_exp(log_lr, n) - log((double)n);
}

/* One second's 2x2 table into every odds ratio's likelihood ratio: x of
 * the node's n1 responses failed, k errors in all among n responses. */
static void
add_table(struct analysis *a, double x, double n1, double k, double n)
{
	double log_e[ANALYSIS_OMEGAS], log_w[ANALYSIS_OMEGAS], lh, lo, hi, v;
	int j;

	lo = n1 - (n - k) > 0 ? n1 - (n - k) : 0;
	hi = k < n1 ? k : n1;
	if (hi <= lo) /* one possible value: the table says nothing */
		return;
	for (j = 0; j < ANALYSIS_OMEGAS; j++) {
		log_e[j] = -INFINITY;
		log_w[j] = log(omegas[j]);
	}
	/* log E0[w^X] = log sum_x h(x) w^x, accumulated term by term */
	for (v = lo; v <= hi; v++) {
		lh = log_choose(k, v) + log_choose(n - k, n1 - v) - log_choose(n, n1);
		for (j = 0; j < ANALYSIS_OMEGAS; j++) {
			double t = lh + v * log_w[j], top = t > log_e[j] ? t : log_e[j];
			log_e[j] = top + log(exp(log_e[j] - top) + exp(t - top));
		}
	}
	for (j = 0; j < ANALYSIS_OMEGAS; j++)
		a->log_mix[j] += x * log_w[j] - log_e[j];
}

static void
add_errors_with_peers(struct analysis *a, uint64_t e1, uint64_t n1, uint64_t e0, uint64_t n0)
{
	double x = (double)e1, dn1 = (double)n1, k = (double)(e1 + e0), n = (double)(n1 + n0);
	double range = k < dn1 ? k : dn1;

	if (n1 == 0 || n0 == 0 || e1 + e0 == 0)
		return;
	if (range > SUPPORT_MAX) {
		double f = range / SUPPORT_MAX;
		x = floor(x / f);
		dn1 = floor(dn1 / f);
		k = floor(k / f);
		n = floor(n / f);
		if (dn1 < x || n - dn1 < k - x || n < dn1)
			return;
	}
	add_table(a, x, dn1, k, n);
}

static void
add_errors_alone(struct analysis *a, uint64_t e, uint64_t n)
{
	double p0 = a->cfg.max_error_ratio, p;
	int j;

	for (j = 0; j < ANALYSIS_CEILINGS; j++) {
		p = p0 + (1 - p0) * ceiling_steps[j];
		a->log_ceiling[j] +=
		    (double)e * log(p / p0) + (double)(n - e) * log((1 - p) / (1 - p0));
	}
}

static double
ratio(uint64_t part, uint64_t whole)
{
	return whole == 0 ? 0 : (double)part / (double)whole;
}

static void
decide_fail(struct analysis *a, const char *reason)
{
	a->outcome = ANALYSIS_FAIL;
	a->decided_at = a->seconds;
	snprintf(a->reason, sizeof(a->reason), "%s", reason);
}

static void
judge_errors(struct analysis *a)
{
	char why[256];
	double node = ratio(a->node_errors, a->node_responses);
	double peers = ratio(a->peer_errors, a->peer_responses);

	if (a->has_peers) {
		a->statistic = mixture(a->log_mix, ANALYSIS_OMEGAS);
		if (a->statistic < a->log_threshold || node - peers <= a->cfg.max_error_ratio)
			return;
		snprintf(why, sizeof(why),
		         "error ratio %.2f%% (%llu/%llu) against the peers' %.2f%% (%llu/%llu)",
		         100 * node, (unsigned long long)a->node_errors,
		         (unsigned long long)a->node_responses, 100 * peers,
		         (unsigned long long)a->peer_errors, (unsigned long long)a->peer_responses);
	} else {
		a->statistic = mixture(a->log_ceiling, ANALYSIS_CEILINGS);
		if (a->statistic < a->log_threshold)
			return;
		snprintf(why, sizeof(why),
		         "error ratio %.2f%% (%llu/%llu) above the ceiling %.2f%%", 100 * node,
		         (unsigned long long)a->node_errors, (unsigned long long)a->node_responses,
		         100 * a->cfg.max_error_ratio);
	}
	decide_fail(a, why);
}

/* Mean response time over the window of one side, or -1 with too few. */
static double
window_mean(const struct analysis_sample *ring, int filled, uint64_t min_timed)
{
	double sum = 0;
	uint64_t timed = 0;
	int i;

	for (i = 0; i < filled; i++) {
		sum += ring[i].latency_ms_sum;
		timed += ring[i].timed;
	}
	return timed == 0 || timed < min_timed ? -1 : sum / (double)timed;
}

static void
judge_latency(struct analysis *a)
{
	int w = a->cfg.latency_window_s, filled = a->seconds < w ? a->seconds : w;
	uint64_t min_timed = a->cfg.min_requests / 4 > 0 ? a->cfg.min_requests / 4 : 1;
	double node, peers;
	int is_over = 0;
	char why[256];

	node = window_mean(a->lat_node, filled, min_timed);
	peers = a->has_peers ? window_mean(a->lat_peers, filled, min_timed) : -1;
	a->node_latency_ms = node;
	a->peer_latency_ms = peers;
	if (node >= 0 && a->has_peers && peers >= 0)
		is_over = node > a->cfg.max_latency_ratio * peers &&
		          node - peers >= a->cfg.min_latency_excess_ms;
	else if (node >= 0 && !a->has_peers && a->cfg.max_latency_ms > 0)
		is_over = node > a->cfg.max_latency_ms;
	a->latency_streak = is_over ? a->latency_streak + 1 : 0;
	if (a->latency_streak < a->cfg.latency_persist_s)
		return;
	if (a->has_peers)
		snprintf(why, sizeof(why),
		         "mean response time %.0f ms against the peers' %.0f ms over the last "
		         "%d s, for %d s in a row",
		         node, peers, filled, a->latency_streak);
	else
		snprintf(why, sizeof(why),
		         "mean response time %.0f ms above the ceiling %.0f ms over the last %d s, "
		         "for %d s in a row",
		         node, a->cfg.max_latency_ms, filled, a->latency_streak);
	decide_fail(a, why);
}

static void
clamp(struct analysis_sample *s)
{
	if (s->errors > s->responses)
		s->errors = s->responses;
	if (!(s->latency_ms_sum >= 0) || s->timed == 0) {
		s->latency_ms_sum = 0;
		s->timed = 0;
	}
}

enum analysis_outcome
analysis_add(struct analysis *a, const struct analysis_sample *node_in,
             const struct analysis_sample *peers_in)
{
	struct analysis_sample node = *node_in, peers = {0};
	int slot;

	if (a->outcome == ANALYSIS_FAIL)
		return a->outcome;
	if (a->has_peers && peers_in != NULL)
		peers = *peers_in;
	clamp(&node);
	clamp(&peers);
	slot = a->seconds % a->cfg.latency_window_s;
	a->seconds++;
	a->lat_node[slot] = node;
	a->lat_peers[slot] = peers;
	a->node_responses += node.responses;
	a->node_errors += node.errors;
	a->peer_responses += peers.responses;
	a->peer_errors += peers.errors;
	if (a->has_peers)
		add_errors_with_peers(a, node.errors, node.responses, peers.errors,
		                      peers.responses);
	else
		add_errors_alone(a, node.errors, node.responses);
	judge_errors(a);
	if (a->outcome != ANALYSIS_FAIL)
		judge_latency(a);
	return a->outcome == ANALYSIS_FAIL ? ANALYSIS_FAIL : ANALYSIS_PENDING;
}

enum analysis_outcome
analysis_finish(struct analysis *a)
{
	uint64_t need = a->cfg.min_requests;

	if (a->outcome == ANALYSIS_FAIL)
		return a->outcome;
	if (a->is_ratio) {
		a->outcome = a->ratio_seen >= a->cfg.latency_window_s ? ANALYSIS_PASS
		                                                      : ANALYSIS_INCONCLUSIVE;
		snprintf(
		    a->reason, sizeof(a->reason),
		    a->outcome == ANALYSIS_PASS
		        ? "no rule fired in %d evaluations with data (of %d)"
		        : "too little data: %d evaluations with a value on each side (of %d); a "
		          "verdict needs %d",
		    a->ratio_seen, a->seconds, a->cfg.latency_window_s);
		return a->outcome;
	}
	if (a->node_responses >= need && (!a->has_peers || a->peer_responses >= need)) {
		a->outcome = ANALYSIS_PASS;
		if (a->has_peers)
			snprintf(a->reason, sizeof(a->reason),
			         "error ratio %.2f%% (%llu/%llu) against the peers' %.2f%% "
			         "(%llu/%llu), no rule fired in %d s",
			         100 * ratio(a->node_errors, a->node_responses),
			         (unsigned long long)a->node_errors,
			         (unsigned long long)a->node_responses,
			         100 * ratio(a->peer_errors, a->peer_responses),
			         (unsigned long long)a->peer_errors,
			         (unsigned long long)a->peer_responses, a->seconds);
		else
			snprintf(a->reason, sizeof(a->reason),
			         "error ratio %.2f%% (%llu/%llu), no rule fired in %d s",
			         100 * ratio(a->node_errors, a->node_responses),
			         (unsigned long long)a->node_errors,
			         (unsigned long long)a->node_responses, a->seconds);
		return a->outcome;
	}
	a->outcome = ANALYSIS_INCONCLUSIVE;
	snprintf(a->reason, sizeof(a->reason),
	         "too little traffic: the node served %llu and its peers %llu responses in %d s; "
	         "a verdict needs %llu%s",
	         (unsigned long long)a->node_responses, (unsigned long long)a->peer_responses,
	         a->seconds, (unsigned long long)need, a->has_peers ? " on each side" : "");
	return a->outcome;
}
