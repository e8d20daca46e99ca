/*
 * wait.h - waiting until every load balancer has acted on a node's state:
 * the logic behind `clustermgmt wait`, shared with `rollout`.
 *
 * The daemon remembers, per node, each client that probed it and how many
 * answers of the same kind (serving or not) in a row it got since the
 * node's last status change (docs/API.md, "Observed probes"). A probe that
 * names its load balancer (lbconfig --lb) is attributed to it whatever
 * address it comes from.
 *
 * Who must have acted:
 *   - the cluster's named load balancers (GET /v1/clusters/{c}/lbs), each
 *     one; probers that are not one of them are listed but never make a
 *     wait succeed;
 *   - with none named, every prober observed within the window: each load
 *     balancer that named itself, and each unnamed prober (address and
 *     User-Agent) on its own.
 * What counts as having acted (draining; serving is symmetrical):
 *   - its agent-check was answered maint/drain since the change (HAProxy
 *     applies the answer at once and stops its HTTP checks in MAINT);
 *   - or `fall` failing answers in a row to its HTTP probes;
 *   - or, with runtime access, the load balancer's own word (HAProxy:
 *     the server is MAINT, DRAIN or DOWN).
 * and, for the probes, that the load balancer has read the deciding
 * answer: it probed again since, or a whole interval has passed.
 * One load balancer's evidence never counts for another; while the daemon
 * had to drop probers it could not track, the wait does not succeed.
 *
 * Then, for --drained, the requests already in flight: with runtime
 * access, until the load balancer says none is left (HAProxy scur,
 * Varnish's backend connections in use); otherwise for drain_grace_ms.
 *
 * wait_for_nodes learns of new observations as they happen: a long poll
 * on the nodes' observations (GET /v1/clusters/{c}/observations?after=),
 * which the daemon answers as soon as one of them is probed.
 */
#ifndef CM_WAIT_H
#define CM_WAIT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_internal.h"

#define WAIT_DEFAULT_FALL 3
#define WAIT_FALL_MAX 100
#define WAIT_DEFAULT_TIMEOUT_MS (60 * 1000)
#define WAIT_DEFAULT_WINDOW_MS (30 * 1000)
#define WAIT_WINDOW_MAX_MS (600 * 1000) /* the daemon forgets clients after 10 min */
#define WAIT_DEFAULT_NO_PROBERS_DELAY_MS (5 * 1000)
#define WAIT_DEFAULT_DRAIN_GRACE_MS (3 * 1000)
#define WAIT_LBS_MAX 16

/* A named load balancer of the cluster. */
struct wait_lb {
	char name[65];
	char kind[16];     /* haproxy, varnish, nginx, other */
	char runtime[256]; /* "" when none */
	char backend[128]; /* HAProxy backend; "" for lbconfig's be_CLUSTER */
	int is_reported;   /* "has not probed" said once */
};

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

enum wait_state {
	WAIT_PROBES = 0, /* waiting for every load balancer's evidence */
	WAIT_IN_FLIGHT,  /* drained: waiting for requests in flight */
	WAIT_DONE,
};

/* Where one node stands. The caller sets name (borrowed) and zeroes the
 * rest; wait_for_nodes fills the other fields. */
struct wait_node {
	const char *name;
	int is_done;
	enum wait_state state;
	int had_no_probers;          /* done by waiting no_probers_delay_ms */
	int is_noted;                /* "nothing probes it" / "partial view" said once */
	int is_in_transit;           /* a deciding answer may not have been read yet */
	size_t n_probers;            /* load balancers (or probers) that had to act */
	int64_t out_at;              /* ms (monotonic) when the last one had acted */
	int64_t grace_until;         /* ms (monotonic); 0: no grace needed */
	int64_t lb_at[WAIT_LBS_MAX]; /* ms after the start when named load
	                                balancer i was first seen to have acted */
	char pending[768];           /* why not done yet, for the timeout message */
	char evidence[768];          /* per load balancer: which signal, when */
	char in_flight[384];         /* per load balancer: sessions left, or grace */
};

/* Called once per node as soon as it is done. */
typedef void (*wait_done_fn)(void *ctx, const struct wait_node *node, const struct wait_args *a);

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
int wait_load_lbs(struct cli *cli, struct wait_lb *lbs, size_t *n, struct error *err);

/* Waits until every node of nodes[0..n) is done, judged against lbs[0..n_lbs)
 * (n_lbs 0: the probers observed). When nothing probed a node within the
 * window it says so once on stderr and waits no_probers_delay_ms (or fails
 * with CLI_REFUSED when require_probers). on_done (may be NULL) is called
 * for each node as it is done.
 *
 * Returns CLI_OK; CLI_TIMEOUT with err naming, per node, the load balancers
 * that have not acted or the sessions still open; CLI_TIMEOUT with err
 * saying "interrupted" when *a->stop was set; or the error of a failed
 * call to the server. */
int wait_for_nodes(struct cli *cli, struct wait_node *nodes, int n, struct wait_lb *lbs,
                   size_t n_lbs, const struct wait_args *a, wait_done_fn on_done, void *ctx,
                   struct error *err);

/* The two steps of wait_for_nodes for one node, without the server:
 *
 * wait_judge judges node, one element of the "nodes" of GET
 * /v1/clusters/{c}/observations (its "probes" and untracked counts),
 * against lbs[0..n_lbs) (n_lbs 0: the probers observed), waited ms after
 * the wait began and at now (ms, monotonic). It fills w's pending,
 * evidence, n_probers and is_in_transit, and moves w->state on (to
 * WAIT_IN_FLIGHT when draining, WAIT_DONE when serving) once every load
 * balancer has acted, setting w->out_at = now. Load balancers with
 * runtime access are asked; a named one that does not probe is noted on
 * stderr once.
 *
 * wait_check_in_flight, for a node in WAIT_IN_FLIGHT, asks every load
 * balancer with runtime access how many requests are in flight to it and
 * gives the others drain_grace_ms from w->out_at. It fills w->in_flight
 * and returns 1 when none is left and the grace (if any) is over. */
void wait_judge(struct wait_node *w, const json_t *node, struct wait_lb *lbs, size_t n_lbs,
                const char *cluster, const struct wait_args *a, int64_t now, int64_t waited);
int wait_check_in_flight(struct wait_node *w, const struct wait_lb *lbs, size_t n_lbs,
                         const char *cluster, const struct wait_args *a, int64_t now);

/* Milliseconds of a monotonic clock, and a sleep that resumes after
 * signals unless *stop (may be NULL) is set. */
int64_t wait_monotonic_ms(void);
void wait_sleep_ms(int64_t ms, volatile sig_atomic_t *stop);

#endif
