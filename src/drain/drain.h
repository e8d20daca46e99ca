/*
 * drain.h - the drain proof: has every load balancer acted on a node's
 * state, and (draining) are the requests it had in flight over? The
 * judgement behind GET /v1/clusters/{c}/nodes/{n}/drained and /serving
 * (the daemon, src/http/api_drain.c) and behind `wait` and `rollout`.
 *
 * The daemon remembers, per node, each client that probed it and how many
 * answers of the same kind (serving or not) in a row it got since the
 * node's last status change (docs/API.md, "Observed probes"). A probe that
 * names its load balancer (lbconfig --lb) is attributed to it whatever
 * address it comes from.
 *
 * Who must have acted:
 *   - the cluster's named load balancers, each one; probers that are not
 *     one of them are listed but never make a wait succeed;
 *   - with none named, every prober observed within the window: each load
 *     balancer that named itself, and each unnamed prober (address and
 *     User-Agent) on its own.
 * What counts as having acted (draining; serving is symmetrical):
 *   - its agent-check was answered maint/drain since the change (HAProxy
 *     applies the answer at once and stops its HTTP checks in MAINT);
 *   - or `fall` failing answers in a row to its HTTP probes;
 *   - or, with runtime access, the load balancer's own word (HAProxy:
 *     the server is MAINT, DRAIN or DOWN; Varnish: its own last `fall`
 *     probes failed).
 * and, for the probes, that the load balancer has read the deciding
 * answer: it probed again since, or a whole interval has passed.
 * One load balancer's evidence never counts for another; while the daemon
 * had to drop probers it could not track, the judgement never succeeds
 * (a partial view is never reported as success).
 *
 * Then, for draining, the requests already in flight: with runtime
 * access, until the load balancer says none is left (HAProxy scur,
 * Varnish's backend connections in use); otherwise for drain_grace_ms.
 *
 * The judgement is pure: it reads one node's observations (a JSON
 * document, the shape of GET /v1/clusters/{c}/observations' "nodes") and
 * asks the load balancers through struct drain_access, which the caller
 * provides: blocking calls (drain_access_direct) or the daemon's readings
 * taken aside (lbwatch.h), so that a worker thread never blocks on a load
 * balancer.
 */
#ifndef CM_DRAIN_H
#define CM_DRAIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "lbruntime.h"

#define DRAIN_DEFAULT_FALL 3
#define DRAIN_FALL_MAX 100
#define DRAIN_DEFAULT_WINDOW_MS (30 * 1000)
#define DRAIN_WINDOW_MAX_MS (600 * 1000) /* the daemon forgets clients after 10 min */
#define DRAIN_DEFAULT_NO_PROBERS_DELAY_MS (5 * 1000)
#define DRAIN_DEFAULT_DRAIN_GRACE_MS (3 * 1000)
#define DRAIN_GRACE_MAX_MS (3600 * 1000LL)
#define DRAIN_LBS_MAX 16
#define DRAIN_IN_FLIGHT_POLL_MS 20 /* the load balancers' pace, not the daemon's */
#define DRAIN_RUNTIME_TIMEOUT_MS 1000

/* A named load balancer of the cluster. */
struct drain_lb {
	char name[65];
	char kind[16];     /* haproxy, varnish, nginx, other */
	char runtime[256]; /* "" when none */
	char backend[128]; /* HAProxy backend; "" for lbconfig's be_CLUSTER */
	int is_reported;   /* "has not probed" said once */
};

/* What to judge. */
struct drain_args {
	int want_serving;            /* 1: serving, 0: drained */
	long fall;                   /* answers in a row that count */
	int64_t window_ms;           /* probers seen this recently count */
	int64_t no_probers_delay_ms; /* nobody probes: wait this instead */
	int64_t drain_grace_ms;      /* in flight, without runtime access */
	int require_probers;         /* nobody probes: fail instead */
};

enum drain_state {
	DRAIN_PROBES = 0, /* waiting for every load balancer's evidence */
	DRAIN_IN_FLIGHT,  /* drained: waiting for requests in flight */
	DRAIN_DONE,
};

/* One named load balancer's part of the verdict. */
struct drain_lb_verdict {
	int has_acted;
	char signal[232]; /* how it acted ("agent answered 'maint'"), when it has */
	char lacks[304];  /* what it still lacks, when it has not */
	long in_flight;   /* requests in flight there; -1 unknown or not asked */
};

/* Where one node stands. The caller sets name (borrowed) and zeroes the
 * rest; the judgement fills the other fields. */
struct drain_node {
	const char *name;
	int is_done;
	enum drain_state state;
	int had_no_probers;           /* done by waiting no_probers_delay_ms */
	int is_noted;                 /* "partial view" said once */
	int is_in_transit;            /* a deciding answer may not have been read yet */
	size_t n_probers;             /* load balancers (or probers) that had to act */
	int64_t out_at;               /* ms (monotonic) when the last one had acted */
	int64_t grace_until;          /* ms (monotonic); 0: no grace needed */
	int64_t lb_at[DRAIN_LBS_MAX]; /* ms after the start when named load
	                                 balancer i was first seen to have acted */
	struct drain_lb_verdict lb[DRAIN_LBS_MAX];
	char pending[768];   /* why not done yet, for the timeout message */
	char evidence[768];  /* per load balancer: which signal, when */
	char in_flight[384]; /* per load balancer: sessions left, or grace */
};

/* How the judgement reaches the load balancers' runtime access. Each call
 * has lbruntime.h's contract (0 and *out filled, or -1 and why). note (may
 * be NULL) receives a sentence worth telling the user once, about node. */
struct drain_access {
	int (*haproxy)(void *ctx, const char *addr, const char *backend, const char *server,
	               struct lb_server_state *out, char *why, size_t why_size);
	int (*varnish)(void *ctx, const char *dir, const char *backend, struct lb_server_state *out,
	               char *why, size_t why_size);
	int (*varnish_happy)(void *ctx, const char *dir, const char *backend,
	                     unsigned long long *bits, char *why, size_t why_size);
	void (*note)(void *ctx, const char *node, const char *text);
	void *ctx;
};

/* The defaults (fall 3, window 30 s, no-probers delay 5 s, drain grace 3 s)
 * for want_serving. */
void drain_args_default(struct drain_args *a, int want_serving);

/* Blocking access: lbruntime.h's calls with DRAIN_RUNTIME_TIMEOUT_MS, and
 * notes written to stderr as "clustermgmt: TEXT". For a client process;
 * never on a daemon's worker. */
void drain_access_direct(struct drain_access *out);

/* The HAProxy backend of lb for cluster ("be_CLUSTER" unless named). */
void drain_lb_backend(const struct drain_lb *lb, const char *cluster, char *buf, size_t size);

/* Judges node, one element of the "nodes" of GET
 * /v1/clusters/{c}/observations (its "probes" and untracked counts),
 * against lbs[0..n_lbs) (n_lbs 0: the probers observed), waited ms after
 * the wait began and at now (ms, monotonic). It fills w's pending,
 * evidence, lb[], n_probers and is_in_transit, and moves w->state on (to
 * DRAIN_IN_FLIGHT when draining, DRAIN_DONE when serving) once every load
 * balancer has acted, setting w->out_at = now. Load balancers with
 * runtime access are asked through acc; a named one that does not probe
 * is noted once. */
void drain_judge(struct drain_node *w, const json_t *node, struct drain_lb *lbs, size_t n_lbs,
                 const char *cluster, const struct drain_args *a, const struct drain_access *acc,
                 int64_t now, int64_t waited);

/* For a node in DRAIN_IN_FLIGHT: asks every load balancer with runtime
 * access how many requests are in flight to it and gives the others
 * drain_grace_ms from w->out_at. Fills w->in_flight and w->lb[].in_flight
 * and returns 1 when none is left and the grace (if any) is over. */
int drain_check_in_flight(struct drain_node *w, const struct drain_lb *lbs, size_t n_lbs,
                          const char *cluster, const struct drain_args *a,
                          const struct drain_access *acc, int64_t now);

/* A node nobody probed within the window (w->n_probers 0 after judging,
 * no load balancer named): w->pending says so; once elapsed reaches the
 * delay it counts as done (had_no_probers). Returns 0, or -1 when
 * a->require_probers (the caller refuses). The first time it notes it. */
int drain_no_probers(struct drain_node *w, const struct drain_args *a,
                     const struct drain_access *acc, int64_t elapsed, int64_t now);

/* Does w wait for something no probe will announce (requests in flight,
 * or an answer on its way to a load balancer)? Then it is to be looked at
 * every DRAIN_IN_FLIGHT_POLL_MS rather than at the next probe. */
int drain_must_poll(const struct drain_node *w);

#endif
