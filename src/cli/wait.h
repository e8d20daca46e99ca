/*
 * wait.h - waiting until every load balancer has acted on a node's state:
 * the loop behind `clustermgmt wait`, shared with `rollout`.
 *
 * The judgement itself (who must have acted, what counts as having acted,
 * requests in flight, partial views) is the drain layer's (drain/drain.h),
 * the same the daemon serves as GET /v1/clusters/{c}/nodes/{n}/drained.
 *
 * wait_for_nodes asks the daemon for each node's verdict (GET
 * /v1/clusters/{c}/nodes/{n}/drained or /serving?wait=), which it holds
 * until the node is done or the time is up. With a daemon that has no
 * such endpoint it follows the nodes' observations itself (a long poll:
 * GET /v1/clusters/{c}/observations?after=) and applies the judgement
 * here.
 */
#ifndef CM_WAIT_H
#define CM_WAIT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_internal.h"
#include "drain/drain.h"

#define WAIT_DEFAULT_FALL DRAIN_DEFAULT_FALL
#define WAIT_FALL_MAX DRAIN_FALL_MAX
#define WAIT_DEFAULT_TIMEOUT_MS (60 * 1000)
#define WAIT_DEFAULT_WINDOW_MS (30 * 1000)
#define WAIT_WINDOW_MAX_MS (600 * 1000) /* the daemon forgets clients after 10 min */
#define WAIT_DEFAULT_NO_PROBERS_DELAY_MS (5 * 1000)
#define WAIT_DEFAULT_DRAIN_GRACE_MS (3 * 1000)
#define WAIT_LBS_MAX DRAIN_LBS_MAX

/* What to wait for, and how long. */
struct wait_args {
	int want_serving;            /* 1: --serving, 0: --drained */
	long fall;                   /* answers in a row that count */
	int64_t timeout_ms;          /* give up after this */
	int64_t window_ms;           /* probers seen this recently count */
	int64_t no_probers_delay_ms; /* nobody probes: wait this instead */
	int64_t drain_grace_ms;      /* in flight, without runtime access */
	int require_probers;         /* nobody probes: fail instead */
	volatile sig_atomic_t *stop; /* give up when *stop becomes non-zero (may be NULL) */
};

/* Called once per node as soon as it is done. */
typedef void (*wait_done_fn)(void *ctx, const struct drain_node *node, const struct wait_args *a);

/* The defaults of `wait` (fall 3, timeout 60 s, window 30 s, no-probers
 * delay 5 s, drain grace 3 s), for want_serving. */
void wait_args_default(struct wait_args *a, int want_serving);

/* Parses the --fall text (NULL: leave a->fall) and the --window,
 * --no-probers-delay, --drain-grace and --require-probers options of cli
 * into a. Returns 0, or CLI_USAGE and fills err. */
int wait_args_from_cli(const struct cli *cli, struct wait_args *a, struct error *err);

/* Parses a duration option ("90", "90s", "10m", "2h", "500ms") into
 * *out_ms, or dflt when text is NULL. Returns 0, or CLI_USAGE naming
 * --option. */
int wait_parse_duration(const char *option, const char *text, int64_t dflt, int64_t max,
                        int64_t *out_ms, struct error *err);

/* The cluster's named load balancers into lbs[0..*n) (at most
 * WAIT_LBS_MAX). Returns CLI_OK (*n may be 0: none named, or a daemon
 * without the list) or the error of the call. */
int wait_load_lbs(struct cli *cli, struct drain_lb *lbs, size_t *n, struct error *err);

/* Waits until every node of nodes[0..n) is done: judged by the daemon
 * (against the cluster's named load balancers), or, with a daemon that
 * does not judge, here against lbs[0..n_lbs) (n_lbs 0: the probers
 * observed; lbs NULL: read them with wait_load_lbs when needed). When
 * nothing probed a node within the window it says so once on stderr and
 * waits no_probers_delay_ms (or fails with CLI_REFUSED when
 * require_probers). on_done (may be NULL) is called for each node as it
 * is done.
 *
 * Returns CLI_OK; CLI_TIMEOUT with err naming, per node, the load balancers
 * that have not acted or the sessions still open; CLI_TIMEOUT with err
 * saying "interrupted" when *a->stop was set; or the error of a failed
 * call to the server. */
int wait_for_nodes(struct cli *cli, struct drain_node *nodes, int n, struct drain_lb *lbs,
                   size_t n_lbs, const struct wait_args *a, wait_done_fn on_done, void *ctx,
                   struct error *err);

/* A sleep that resumes after signals unless *stop (may be NULL) is set. */
void wait_sleep_ms(int64_t ms, volatile sig_atomic_t *stop);

#endif
