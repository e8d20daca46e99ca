/*
 * judge.h - watching deployed nodes under real traffic and judging them
 * against their peers: the loop behind `rollout --canary/--verify` and
 * `clustermgmt verify`.
 *
 * Once a second it reads, from every named load balancer with runtime
 * access (src/sample: HAProxy's admin socket, Varnish's shared memory),
 * the counters of the judged nodes and of their peers, takes the
 * differences (a counter that went backwards, a reload, skips that second
 * at that load balancer: the next second is measured from the new
 * counters) and feeds them to one sequential test per node and load
 * balancer (src/analysis/verdict.h), each at alpha / (number of usable
 * load balancers, Prometheus included) so that a node's false-alarm bound
 * stays alpha.
 *
 * A node fails as soon as one load balancer's test fails (and the loop
 * ends then, so that the caller takes it out at once); HAProxy marking it
 * DOWN for JUDGE_DOWN_SECONDS in a row is a fail too. At the end of the
 * time, a node passes when at least one load balancer's test passed and
 * none failed; otherwise it is inconclusive.
 *
 * Load balancers without per-server counters (nginx, kind other, or no
 * runtime access) are listed in the evidence as not judged; when none is
 * left, judging is refused before it starts (judge_open).
 *
 * With a Prometheus URL and query (--prometheus, --analysis-query), the
 * query is one more source, named "prometheus": asked once a second per
 * node, its value (the node's error ratio) judged by verdict.h's ratio
 * rule against the mean of the peers' values.
 */
#ifndef CM_CLI_JUDGE_H
#define CM_CLI_JUDGE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "analysis/verdict.h"
#include "cli_internal.h"
#include "sample/sample.h"
#include "wait.h"

#define JUDGE_NODES_MAX 32 /* judged at once (a batch) */
#define JUDGE_PEERS_MAX 256
#define JUDGE_DOWN_SECONDS 3
#define JUDGE_DEFAULT_MS (60 * 1000)

/* One load balancer as the judge sees it. */
struct judge_lb {
	const struct drain_lb *lb;
	int is_usable;     /* gives per-server counters */
	char why_not[400]; /* when not usable: why */
	char backend[160]; /* HAProxy backend */
	struct sample_varnish *varnish;
	struct sample_server *servers; /* nodes first, then peers */
	struct sample_server *previous;
	int has_previous;
	int resets;       /* seconds skipped for a reload */
	int failed_reads; /* seconds the load balancer did not answer */
	char last_error[256];
	struct analysis verdict[JUDGE_NODES_MAX];
	int down_streak[JUDGE_NODES_MAX];
};

/* One judged node and its verdict. */
struct judge_node {
	const char *name; /* borrowed */
	enum analysis_outcome outcome;
	int64_t decided_ms; /* after the start of the judgement; -1: not decided */
	char reason[512];   /* the deciding sentence, with the load balancer's name */
};

struct judge {
	struct analysis_config cfg;
	const char *cluster;
	struct judge_lb lbs[WAIT_LBS_MAX + 1]; /* the named ones, then Prometheus */
	struct drain_lb prometheus;            /* the pseudo load balancer of the query */
	const char *prometheus_url, *query;    /* borrowed; NULL: none */
	size_t n_lbs, n_usable;
	struct judge_node nodes[JUDGE_NODES_MAX];
	int n_nodes;
	const char *peers[JUDGE_PEERS_MAX]; /* borrowed */
	int n_peers;
	int64_t started, took_ms;
};

/* Parses --max-error-ratio, --max-latency-ratio and --min-requests of cli
 * into c (starting from the defaults). Returns 0, or CLI_USAGE with err. */
int judge_config_from_cli(const struct cli *cli, struct analysis_config *c, struct error *err);

/* Prepares j to judge nodes[0..n_nodes) against peers[0..n_peers) (both
 * borrowed; n_peers 0: each node against the ceilings alone) through
 * lbs[0..n_lbs) of cluster, and Prometheus when j->prometheus_url and
 * j->query are set by the caller (judge_open keeps them; the rest of j is
 * reset). Returns CLI_OK, CLI_USAGE for too many nodes,
 * or CLI_REFUSED with err saying why no load balancer can be judged
 * (naming each and what it lacks). judge_close frees it in every case. */
int judge_open(struct judge *j, const struct analysis_config *c, const char *cluster,
               const struct drain_lb *lbs, size_t n_lbs, const char *const *nodes, int n_nodes,
               const char *const *peers, int n_peers, struct error *err);

/* The --prometheus and --analysis-query options of cli, checked (both or
 * neither; the query holds {node}; the URL is http(s)). Returns 0, or
 * CLI_USAGE with err. */
int judge_prometheus_from_cli(const struct cli *cli, struct error *err);

/* Called once a second with what has been seen so far. */
typedef void (*judge_tick_fn)(void *ctx, const struct judge *j);

/* Watches for duration_ms (or until a node fails, or *stop is set; stop
 * may be NULL), then fills each node's outcome. Returns the worst outcome:
 * ANALYSIS_FAIL, ANALYSIS_INCONCLUSIVE (also when stopped early) or
 * ANALYSIS_PASS. */
enum analysis_outcome judge_run(struct judge *j, int64_t duration_ms, volatile sig_atomic_t *stop,
                                judge_tick_fn on_tick, void *ctx);

/* The evidence of node i, one line per load balancer ("hap1: 312
 * responses, 31 errors (9.94%) against the peers' 0 of 598 (0.00%);
 * statistic 9.2 (fails at 7.6); mean 21 ms against 20 ms; decided at
 * 4.0s"), into buf. */
void judge_format_evidence(const struct judge *j, int i, char *buf, size_t size);

/* The same as JSON: an array of one object per load balancer (new
 * reference). */
json_t *judge_evidence_json(const struct judge *j, int i);

void judge_close(struct judge *j);

#endif
