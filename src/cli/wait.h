/*
 * wait.h - waiting until every load balancer has seen a node's state: the
 * logic behind `clustermgmt wait`, shared with `rollout`.
 *
 * The daemon remembers, per node, each client that probed it and how many
 * answers of the same kind (serving or not) in a row it got since the
 * node's last status change ("probes" in GET /v1/clusters/{c}/nodes/{n}).
 * wait_for_nodes polls that document until every such client has had
 * `fall` answers of the wanted kind, or the timeout runs out.
 */
#ifndef CM_WAIT_H
#define CM_WAIT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"

#define WAIT_DEFAULT_FALL 3
#define WAIT_FALL_MAX 100
#define WAIT_DEFAULT_TIMEOUT_MS (60 * 1000)
#define WAIT_DEFAULT_WINDOW_MS (30 * 1000)
#define WAIT_WINDOW_MAX_MS (600 * 1000) /* the daemon forgets clients after 10 min */
#define WAIT_DEFAULT_NO_PROBERS_DELAY_MS (5 * 1000)

/* What to wait for, and how long. */
struct wait_args {
	int want_serving;            /* 1: --serving, 0: --drained */
	long fall;                   /* answers in a row that count */
	int64_t timeout_ms;          /* give up after this */
	int64_t window_ms;           /* probers seen this recently count */
	int64_t no_probers_delay_ms; /* nobody probes: wait this instead */
	int require_probers;         /* nobody probes: fail instead */
	volatile sig_atomic_t *stop; /* give up when *stop becomes non-zero (may be NULL) */
};

/* Where one node stands. The caller sets name (borrowed) and zeroes the
 * rest; wait_for_nodes fills the other fields. */
struct wait_node {
	const char *name;
	int is_done;
	int had_no_probers; /* done by waiting no_probers_delay_ms */
	int is_noted;       /* "nothing probes it" said once */
	size_t n_probers;   /* clients seen within the window at the last look */
	char pending[512];  /* why not done yet, for the timeout message */
};

/* Called once per node as soon as it is done. */
typedef void (*wait_done_fn)(void *ctx, const struct wait_node *node, const struct wait_args *a);

/* The defaults of `wait` (fall 3, timeout 60 s, window 30 s, no-probers
 * delay 5 s), for want_serving. */
void wait_args_default(struct wait_args *a, int want_serving);

/* Parses the --fall text (NULL: leave a->fall) and the --window,
 * --no-probers-delay and --require-probers options of cli into a.
 * Returns 0, or CLI_USAGE and fills err. */
int wait_args_from_cli(const struct cli *cli, struct wait_args *a, struct error *err);

/* Parses a duration option ("90", "90s", "10m", "2h") into *out_ms, or
 * dflt when text is NULL. Returns 0, or CLI_USAGE naming --option. */
int wait_parse_duration(const char *option, const char *text, int64_t dflt, int64_t max,
                        int64_t *out_ms, struct error *err);

/* Polls every node of nodes[0..n) until all are done. When nothing probed
 * a node within the window it says so once on stderr and waits
 * no_probers_delay_ms (or fails with CLI_REFUSED when require_probers).
 * on_done (may be NULL) is called for each node as it is done.
 *
 * Returns CLI_OK; CLI_TIMEOUT with err naming the probers that have not
 * seen the state; CLI_TIMEOUT with err saying "interrupted" when
 * *a->stop was set; or the error of a failed call to the server. */
int wait_for_nodes(struct cli *cli, struct wait_node *nodes, int n, const struct wait_args *a,
                   wait_done_fn on_done, void *ctx, struct error *err);

/* Milliseconds of a monotonic clock, and a sleep that resumes after
 * signals unless *stop (may be NULL) is set. */
int64_t wait_monotonic_ms(void);
void wait_sleep_ms(int64_t ms, volatile sig_atomic_t *stop);

#endif
