/*
 * observe.h - what the daemon knows about the load balancers that probe
 * it, and about each node's application check, at run time.
 *
 * Two things are kept per node (keyed by cluster and node name):
 *
 *   probes   every client that asked about the node (HTTP probe or
 *            HAProxy agent-check). A probe that names its load balancer
 *            (lb=NAME, stamped by `lbconfig --lb`) is told apart by
 *            protocol and that name, whatever address it comes from (a
 *            front server, NAT, a host shared by two load balancers);
 *            any other by protocol, address and User-Agent. For each:
 *            when it first and last asked, what it was
 *            answered, how many times in a row it got that answer, and how
 *            many answers of the same kind (serving or not) in a row it got
 *            since the node's last status change. That is what
 *            `clustermgmt wait` reads to know every load balancer has seen
 *            a change.
 *   check    the state of the node's application check (checker.c writes
 *            it), which turns an online node's answer into "down".
 *
 * None of it is persisted: it starts empty at every start of the daemon.
 * Memory is bounded: at most OBSERVE_CLIENTS_MAX unnamed clients and
 * OBSERVE_LBS_MAX named ones per node, each kind in slots of its own, so
 * that any number of unnamed clients never pushes out a named load
 * balancer (a new client beyond its kind's cap takes the slot of one of
 * its kind unseen for OBSERVE_STALE_MS, or is counted as untracked, per
 * kind); clients unseen for OBSERVE_FORGET_MS are forgotten, and only
 * nodes that exist are recorded.
 *
 * Waiting for observations: every recorded answer bumps the node's
 * sequence number (observe_node_seq). A reader that waits for the next
 * one registers with observe_watch; while anyone watches, each recorded
 * answer calls the notify function (observe_set_notify) after the lock is
 * released, so a long poll wakes as the probe is answered instead of
 * polling. With no watcher the probe path pays one atomic load.
 *
 * Threading: every function may be called from any thread. The table is
 * split into stripes, each with its own mutex held for a few hundred
 * nanoseconds at most (never across I/O or allocation of more than one
 * node entry), so HTTP workers probing different nodes do not contend and
 * a probe does not allocate once its node and client are known.
 */
#ifndef CM_OBSERVE_H
#define CM_OBSERVE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/model.h"
#include "../core/peer.h"

#define OBSERVE_CLIENTS_MAX 16 /* unnamed clients per node */
#define OBSERVE_LBS_MAX 16     /* named load balancers' clients per node */
#define OBSERVE_FORGET_MS (10 * 60 * 1000)
#define OBSERVE_STALE_MS (60 * 1000)
#define OBSERVE_ADDRESS_MAX 63
/* Bytes of a User-Agent kept (core/limits.h): it is stored as valid UTF-8
 * (ill-formed bytes become U+FFFD) and cut on a character boundary
 * (utf8_sanitize). */
#define OBSERVE_USER_AGENT_MAX USER_AGENT_MAX
#define OBSERVE_ERROR_MAX 159
#define OBSERVE_CLUSTERS_MAX 1024 /* clusters whose answers are counted */
/* Clients in one node's view: this daemon's (named and unnamed) and up to
 * OBSERVE_REMOTE_MAX that other daemons reported (observe_set_remote). */
#define OBSERVE_REMOTE_MAX 48
#define OBSERVE_VIEW_MAX (OBSERVE_LBS_MAX + OBSERVE_CLIENTS_MAX + OBSERVE_REMOTE_MAX)

enum observe_protocol {
	OBSERVE_HTTP = 0,  /* the probe, GET/HEAD {mount}?node= */
	OBSERVE_AGENT = 1, /* the HAProxy agent-check listener */
};

/* What a load balancer is told about a node. Only OBSERVE_SERVING asks
 * it to send traffic. */
enum observe_answer {
	OBSERVE_SERVING = 0,    /* online, check passing or none */
	OBSERVE_DOWN = 1,       /* online, check failing */
	OBSERVE_DRAIN = 2,      /* drain */
	OBSERVE_DRAIN_DOWN = 3, /* drain, check failing */
	OBSERVE_OFFLINE = 4,    /* offline (whatever the check says) */
};
#define OBSERVE_ANSWERS 5

/* Who asks. Borrowed strings; user_agent may be NULL (none sent) and need
 * not be terminated (user_agent_len bytes); lb is the load balancer's name
 * the probe gave (lb_len bytes, a valid name by the node name rule, which
 * the caller checks), or NULL for an unnamed prober. */
struct observe_client {
	enum observe_protocol protocol;
	const char *address;
	const char *user_agent;
	size_t user_agent_len;
	const char *lb;
	size_t lb_len;
};

/* One remembered client of a node, as copied out by observe_node_view. */
struct observe_client_view {
	enum observe_protocol protocol;
	char lb[NODE_NAME_MAX + 1];                  /* "" for an unnamed client */
	char address[OBSERVE_ADDRESS_MAX + 1];       /* the last one it came from */
	char user_agent[OBSERVE_USER_AGENT_MAX + 1]; /* valid UTF-8; "" when none
	                                                was sent */
	int has_user_agent;
	int64_t first_at, last_at; /* ms */
	int64_t interval_ms;       /* its probe interval as observed (a moving
	                              average of the gaps), 0 before the 2nd */
	enum observe_answer last_answer;
	uint32_t consecutive;           /* answers equal to last_answer in a row */
	uint32_t since_change;          /* answers of last_answer's kind (serving or
	                                   not) in a row since the node's last status
	                                   change; 0 when the last answer is older */
	char daemon[DAEMON_ID_MAX + 1]; /* the daemon that saw it; "" for this one */
};

/* The application check of a node, as published by the checker. */
struct observe_check {
	int is_up;
	int64_t last_at;      /* ms of the last result; 0 before the first */
	uint32_t consecutive; /* results of the last kind (pass or fail) in a row */
	char last_error[OBSERVE_ERROR_MAX + 1]; /* "" after a pass */
};

/* Everything known about one node. */
struct observe_node_view {
	size_t n_clients;
	/* named ones first (by name, protocol), then unnamed ones (by
	 * protocol, address, agent) */
	struct observe_client_view clients[OBSERVE_VIEW_MAX];
	uint64_t n_untracked;     /* answers to unnamed clients beyond the cap */
	int64_t untracked_at;     /* ms of the last one, 0 when none */
	uint64_t n_untracked_lbs; /* answers to named clients beyond theirs */
	int64_t untracked_lbs_at;
	uint64_t seq;  /* the node's observation sequence number */
	int has_check; /* a check state has been published */
	struct observe_check check;
};

struct observe;

/* A new empty table. Never NULL (aborts when out of memory). */
struct observe *observe_new(void);
void observe_free(struct observe *o);

/* The answer for node n of cluster (its status and its check state), which
 * is recorded as given to client at now (ms). Call it only for a node that
 * exists in the current snapshot. */
enum observe_answer observe_answer_probe(struct observe *o, const char *cluster,
                                         const struct node *n, const struct observe_client *client,
                                         int64_t now);

/* May a probe of cluster c that says lb=NAME (name[0..len)) count as that
 * load balancer's? The name must be valid and, once the cluster names its
 * load balancers, one of them (so made-up names cannot fill the named
 * slots); any other probe is an unnamed prober. */
int observe_lb_is_known(const struct cluster *c, const char *name, size_t len);

/* Copies what is known about the node into *out (zeroed first): the
 * clients seen at or after since (ms; 0 for all remembered), and the
 * check state. changed_at is the node's current changed_at, which decides
 * since_change. Returns 1 when anything is known, else 0. */
int observe_node_view(struct observe *o, const char *cluster, const char *node, int64_t changed_at,
                      int64_t since, struct observe_node_view *out);

/* The node's observation sequence number: it grows with every answer
 * recorded for the node (tracked or not); 0 for a node never probed. */
uint64_t observe_node_seq(struct observe *o, const char *cluster, const char *node);

/* Sets the function called (from the probing thread, no lock held) after
 * each recorded answer while watchers > 0. Set it once, before probes. */
void observe_set_notify(struct observe *o, void (*fn)(void *arg), void *arg);
/* Adds delta (+1 or -1) to the number of watchers. */
void observe_watch(struct observe *o, int delta);

/* Publishes (checker.c) or forgets (the check was removed) a node's check
 * state. */
void observe_check_set(struct observe *o, const char *cluster, const char *node,
                       const struct observe_check *state);
void observe_check_clear(struct observe *o, const char *cluster, const char *node);

/* Forgets clients unseen since now - OBSERVE_FORGET_MS and frees nodes
 * with nothing left to remember. Call it now and then (every few s). */
void observe_sweep(struct observe *o, int64_t now);

/* A node in brief, for metrics: cheaper than observe_node_view (no
 * copies of the clients). */
struct observe_node_summary {
	size_t n_clients_since; /* clients that asked at or after since */
	int64_t last_at;        /* ms of the latest answer to any client; 0 = none */
	int has_check;
	int check_is_up;
};

/* Fills *out (zeroed first) for the node; returns 1 when anything is
 * known, else 0. */
int observe_node_summary(struct observe *o, const char *cluster, const char *node, int64_t since,
                         struct observe_node_summary *out);

/* Answers given since start, counted per cluster and answer (every
 * protocol), for clustermgmt_probe_answers_total. Counting costs one
 * atomic add per answer. The first OBSERVE_CLUSTERS_MAX cluster names
 * ever answered for are counted; answers for any further one only add to
 * the untracked total. Copies the counts of cluster into out and returns
 * 1, or returns 0 (out zeroed) when none were counted for it. */
int observe_answer_counts(struct observe *o, const char *cluster, uint64_t out[OBSERVE_ANSWERS]);
/* Answers not counted under any cluster (the table was full). */
uint64_t observe_answer_untracked(struct observe *o);
/* --- several daemons ------------------------------------------------- *
 *
 * Each daemon reports what it observed to the others through the store
 * (observe/share.c), at a bounded rate: a client is reported when its
 * answer changes, for each of the first OBSERVE_EAGER_ANSWERS answers
 * after the node's status changed (what `wait --fall K` counts), and
 * otherwise at most every OBSERVE_REFRESH_MS while it keeps probing.
 * Nothing is written per probe beyond that. */
#define OBSERVE_EAGER_ANSWERS 8
#define OBSERVE_REFRESH_MS 3000

/* Copies into out (at most max) the reports due at now, marking them
 * reported; the rest wait for the next call. Returns how many. */
size_t observe_collect_reports(struct observe *o, const char *daemon, int64_t now,
                               struct probe_report *out, size_t max);
/* The last reports could not be delivered: report every client again. */
void observe_report_again(struct observe *o);
/* The collector may sleep until there is something to collect. Returns 0
 * when there may be already (answers recorded since the last complete
 * collect, or observe_report_again), else 1 and arms the function set
 * with observe_set_collect_wake: called once, from the thread of the
 * next answer recorded, no lock held. Set the function once, before
 * probes; call both from the collecting thread. */
int observe_collect_arm(struct observe *o);
void observe_set_collect_wake(struct observe *o, void (*fn)(void *arg), void *arg);
/* Replaces what other daemons reported (rows from the store; observe
 * takes the malloc'd array, which it sorts). observe_node_view merges
 * them with this daemon's clients. */
void observe_set_remote(struct observe *o, struct probe_report *rows, size_t n);
/* Merges reports written since the last read into what other daemons
 * reported (observe takes and frees the malloc'd array): a report
 * replaces its earlier version (same daemon, node and client), and
 * reports last seen before forget_before are dropped, as their owner
 * forgets them too. Call it, and observe_set_remote, from one thread. */
void observe_merge_remote(struct observe *o, struct probe_report *rows, size_t n,
                          int64_t forget_before);

/* Reading only what is asked for (observe/interest.h): is what the
 * other daemons reported of node of cluster (NULL: every node of it)
 * read? 1 when it was read since first asked for, or when no other
 * daemon shares (no collector set); else 0, and the collector is woken
 * to read it (a reader waits for observe_remote_reads to move, then asks
 * again). Every call counts as asked at now: what nobody asks for in
 * OBSERVE_INTEREST_MS is no longer read, and its reports go. */
int observe_remote_ready(struct observe *o, const char *cluster, const char *node, int64_t now);
/* How many reads of the other daemons' reports were done. */
uint64_t observe_remote_reads(struct observe *o);
/* How many of their reports are held, and how many entries are read. */
size_t observe_remote_count(struct observe *o);
size_t observe_interest_count(struct observe *o);
/* For the collector: what to read (a malloc'd *out the caller frees,
 * NULL when nothing; see interest_take), dropping the reports of what
 * is no longer asked for; then, after reading and merging,
 * observe_interest_read with the same list, which wakes the readers
 * (the notify function) when it read something new. */
size_t observe_interest_take(struct observe *o, int64_t now, struct probe_interest **out);
void observe_interest_read(struct observe *o, const struct probe_interest *read, size_t n);

/* Does the answer tell a load balancer to send new traffic? */
int observe_answer_is_serving(enum observe_answer a);
/* How each protocol words an answer: the probe's status code and body,
 * the agent's reply line (without newline). Static strings. */
int observe_answer_http_status(enum observe_answer a);
const char *observe_answer_http_body(enum observe_answer a);
const char *observe_answer_agent_line(enum observe_answer a);
/* The answer as shown in the API: "200 OK", "503 node is offline",
 * "up ready", ... Static strings. */
const char *observe_answer_text(enum observe_protocol p, enum observe_answer a);
const char *observe_protocol_name(enum observe_protocol p); /* "http", "agent" */
/* The answer as a metrics label: "serving", "down", "drain", "drain_down",
 * "offline". Static strings. */
const char *observe_answer_name(enum observe_answer a);

#endif
