/*
 * verdict.h - is a just-deployed node worse than its peers? The statistics
 * behind `rollout --canary/--verify` and `clustermgmt verify`: pure
 * arithmetic on counts, no I/O, no clock, so that its false-alarm rate and
 * its detection power are measured by simulation (tests/unit/test_analysis.c).
 *
 * Input: one sample per second and per load balancer, for the node and for
 * its peers (the nodes not yet deployed, behind the same load balancer,
 * over the same second): responses (every attempt: answers plus failed
 * connections and responses), errors (5xx, connection and response
 * errors) and, where the load balancer knows it, the sum of the response
 * times.
 *
 * The error rule is a sequential test whose false-alarm probability stays
 * below alpha however long it watches (an e-process; Ville's inequality):
 *
 *   with peers  each second is a 2x2 table (node/peers x error/ok). Given
 *               its margins, the node's error count is hypergeometric when
 *               the node is no worse than its peers; under "the node's
 *               odds of an error are w times the peers'" it is Fisher's
 *               noncentral hypergeometric. The product over the seconds of
 *               the likelihood ratio w^x / E0[w^X] is a martingale under
 *               the null for each w, and so is a mixture over a grid of w
 *               (1.5 ... 1000, equal weights). Fail when the mixture
 *               reaches 1/alpha and the node's error ratio exceeds the
 *               peers' by more than max_error_ratio (so that a real but
 *               negligible difference does not stop a deploy). This is
 *               the exact conditional test: no assumption on the peers'
 *               error rate, which may change from second to second.
 *   without     (no peer serves the same traffic: the last batch, or
 *   peers       `verify` with no peer) the node alone against the ceiling
 *               max_error_ratio: a mixture over error ratios p above it of
 *               the Bernoulli likelihood ratio, a supermartingale whenever
 *               the true ratio is at most the ceiling.
 *
 * The latency rule (only where the load balancer gives response times) is
 * a threshold, not a test with a proven bound: fail when, over the last
 * latency_window_s seconds, the node's mean response time is above
 * max_latency_ratio times the peers' (or, without peers, above
 * max_latency_ms when given) and at least min_latency_excess_ms above it,
 * with at least min_requests/4 responses on each side, for
 * latency_persist_s evaluations in a row.
 *
 * An application metric (Prometheus) gives no counts but a ratio per node
 * already averaged by the query (e.g. 5xx over all requests in the last
 * minute). For it the rule is a threshold, like the latency rule and
 * without the bound: fail when the node's ratio is above its peers' mean
 * by more than max_error_ratio (or, without peers, above max_error_ratio)
 * for latency_persist_s evaluations in a row; pass needs
 * latency_window_s evaluations with a value on each side, else
 * inconclusive ("no data" is never a pass, nor a fail).
 *
 * Outcomes: a fail is decided as soon as a rule fires; at the end of the
 * allotted time (analysis_finish) the node passes only if it served at
 * least min_requests (and its peers as many, when compared): too little
 * traffic is inconclusive, never a pass.
 */
#ifndef CM_ANALYSIS_VERDICT_H
#define CM_ANALYSIS_VERDICT_H

#include <stddef.h>
#include <stdint.h>

#define ANALYSIS_OMEGAS 8   /* odds ratios mixed in the comparison with peers */
#define ANALYSIS_CEILINGS 8 /* error ratios mixed in the test without peers */
#define ANALYSIS_LATENCY_WINDOW_MAX 60

/* One second of one side (node or peers) at one load balancer. */
struct analysis_sample {
	uint64_t responses;    /* answers plus failed attempts */
	uint64_t errors;       /* 5xx, connection and response errors; <= responses */
	double latency_ms_sum; /* sum of the response times of `timed` responses */
	uint64_t timed;        /* responses whose time is in latency_ms_sum; 0: unknown */
};

struct analysis_config {
	double alpha;                 /* false-alarm bound of the error rule (default 0.001) */
	double max_error_ratio;       /* tolerated excess over the peers, or ceiling (0.01) */
	double max_latency_ratio;     /* node / peers mean response time (1.5) */
	double min_latency_excess_ms; /* and at least this much slower (50) */
	double max_latency_ms;        /* without peers: ceiling; 0 = no latency rule (0) */
	int latency_window_s;         /* seconds the latency rule looks back (10) */
	int latency_persist_s;        /* evaluations in a row it must hold (5) */
	uint64_t min_requests;        /* responses before a pass (100) */
};

enum analysis_outcome {
	ANALYSIS_PENDING = 0, /* still watching */
	ANALYSIS_PASS,
	ANALYSIS_FAIL,
	ANALYSIS_INCONCLUSIVE,
};

/* The state of one judgement: zero it with analysis_init. All fields may
 * be read (they are the evidence), none written from outside. */
struct analysis {
	struct analysis_config cfg;
	int has_peers;
	double log_threshold;                  /* log(1/alpha) */
	double log_mix[ANALYSIS_OMEGAS];       /* per odds ratio: log likelihood ratio */
	double log_ceiling[ANALYSIS_CEILINGS]; /* without peers: per error ratio */
	double statistic;                      /* log of the mixture, now */
	uint64_t node_responses, node_errors, peer_responses, peer_errors;
	struct analysis_sample lat_node[ANALYSIS_LATENCY_WINDOW_MAX];
	struct analysis_sample lat_peers[ANALYSIS_LATENCY_WINDOW_MAX];
	int seconds;                             /* samples added */
	int latency_streak;                      /* evaluations in a row over the latency limit */
	double node_latency_ms, peer_latency_ms; /* last window's means; <0: unknown */
	enum analysis_outcome outcome;
	int decided_at;                /* the sample (1-based) that decided a fail; 0 otherwise */
	int is_ratio;                  /* judged on a ratio (analysis_init_ratio), not counts */
	int ratio_seen;                /* evaluations with a value on each side */
	int ratio_streak;              /* evaluations in a row over the limit */
	double node_ratio, peer_ratio; /* the last values; < 0: none */
	char reason[256];              /* why, in one sentence */
};

/* Fills c with the defaults above. */
void analysis_config_default(struct analysis_config *c);

/* Checks c's ranges. Returns 0, or -1 with why (a sentence) filled. */
int analysis_config_check(const struct analysis_config *c, char *why, size_t why_size);

/* Starts a judgement with config c (checked) against peers (has_peers 1)
 * or the ceilings alone (0). */
void analysis_init(struct analysis *a, const struct analysis_config *c, int has_peers);

/* The same for a judgement on a ratio per node (see above). */
void analysis_init_ratio(struct analysis *a, const struct analysis_config *c, int has_peers);

/* Adds one evaluation of the ratio rule: the node's value and the peers'
 * mean, each only when has_* (no data otherwise). Returns as analysis_add. */
enum analysis_outcome analysis_add_ratio(struct analysis *a, double node_ratio, int has_node,
                                         double peer_ratio, int has_peers);

/* Adds one second: node's counts and its peers' (ignored without peers;
 * may be NULL then). Inconsistent counts (errors > responses) are clamped.
 * Returns the outcome so far: ANALYSIS_FAIL once a rule fired (and from
 * then on), else ANALYSIS_PENDING. */
enum analysis_outcome analysis_add(struct analysis *a, const struct analysis_sample *node,
                                   const struct analysis_sample *peers);

/* The allotted time is over: FAIL if it failed, PASS if the volume was
 * reached, else INCONCLUSIVE. Fills a->reason. */
enum analysis_outcome analysis_finish(struct analysis *a);

/* "pass", "fail", "inconclusive", "pending". */
const char *analysis_outcome_name(enum analysis_outcome o);

#endif
