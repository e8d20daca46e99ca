/*
 * request.h - a request as the surfaces see it (request.c): the route the
 * router found, who is asking, its headers and query, what it may read
 * (the snapshot, observe, the store's state, the fleet), and the work
 * that outlives the handler: an engine job, a long poll, a delay.
 *
 * Threading: every function here runs on the worker thread that owns the
 * request. A struct request lives in the h2o request's memory pool; when
 * the client goes away before a job or a long poll finishes, the
 * continuation is simply never called.
 *
 * Snapshots: request_snapshot() is valid until the handler returns to the
 * event loop; never keep the pointer (or pointers into it) in a
 * continuation: call request_snapshot() again there.
 */
#ifndef CM_REQUEST_H
#define CM_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>

#include "../core/error.h"
#include "../core/model.h"
#include "../engine/engine.h"
#include "../observe/share.h"

struct server;
struct worker;
struct request;
struct route_entry;
struct pending_job;
struct pending_wait;
struct auth_attempt;
struct grants;

typedef void (*request_handler)(struct request *r);

/* What the router found in the path (router.h): the table line and the
 * names the pattern captured, copied, so that they stay valid in every
 * continuation of the request. */
struct route {
	const struct route_entry *entry;
	/* {mount}: the cluster mounted there, in the snapshot the router
	 * read. Only for a synchronous handler (the probe): when the request
	 * is kept for later, the snapshot may be gone by then, so the router
	 * copies the cluster's name into cluster and sets this to NULL (look
	 * the cluster up again by name). */
	const struct cluster *mounted;
	char cluster[NODE_NAME_MAX + 1]; /* {cluster}, or the kept {mount}'s name */
	char name[NODE_NAME_MAX + 1];    /* {node}, {user}, {token}, {lb}, {rollout} or {asset} */
};

struct request {
	h2o_req_t *req;
	struct worker *worker;
	struct server *server;
	h2o_iovec_t path;                /* without the query string */
	h2o_iovec_t query;               /* after '?', empty when none */
	char address[64];                /* client IP address */
	enum role role;                  /* ROLE_NONE until authenticated */
	char who[96];                    /* "alice", "token:ab12cd34"; "" when anonymous */
	int is_session;                  /* authenticated by the web page's session cookie */
	int is_gone;                     /* the client went away: nothing will be sent */
	struct pending_job *job;         /* an engine job under way, if any */
	struct pending_wait *wait;       /* a long poll or delay under way, if any */
	void *surface_data;              /* the surface's own state across continuations
	                                    (in h2o's request pool), or NULL */
	const char *server_default_node; /* serve --node, or NULL */
	struct route route;              /* filled by the router before any handler */
	void *data;                      /* the surface's own, for its continuations
	                                    (allocated in h2o's request pool) */
	/* auth.c's and auth_queue.c's, while authentication is in progress */
	enum role auth_min_role;
	request_handler auth_then;
	struct auth_attempt *auth_attempt; /* a password check under way */
	/* who is asking, beyond role and who: set with them by auth.c and
	 * ui_session.c; grants NULL when the principal's one role holds on
	 * every cluster (no roles file mapping applies) */
	const struct grants *grants; /* in the request's pool */
	const char *auth_method;     /* "password", "token", "oidc", "proxy" */
	const char *audit_context;   /* the JSON object audit entries carry
	                                (struct actor's context), in the pool */
	/* request_remote_ready's, while it waits for the other daemons'
	 * reports to be read */
	int64_t remote_wait_until; /* ms; 0 before the first wait, -1 given up */
	uint64_t remote_reads;     /* observe_remote_reads when it began */
};

typedef void (*request_job_handler)(struct request *r, struct engine_job *job);

/* --- request.c ------------------------------------------------------ */

/* The current snapshot (see the lifetime rule above). */
const struct model *request_snapshot(struct request *r);

/* The first value of the header, or {NULL, 0}. */
h2o_iovec_t request_header(const struct request *r, const h2o_token_t *token);
/* The first value of a header by lowercase name (e.g. "cookie"). */
h2o_iovec_t request_header_by_name(const struct request *r, const char *name);
/* The request's Idempotency-Key header, malloc'd (the caller owns it),
 * or NULL when absent; one longer than COMMAND_KEY_MAX is cut just past
 * it, so that the store still refuses it. */
char *request_idempotency_key(const struct request *r);
/* Copies the URL-decoded value of query parameter name into buf. Returns
 * 1 when present, 0 when absent, -1 when it does not fit or is malformed. */
int request_query_param(const struct request *r, const char *name, char *buf, size_t size);
/* Is the request served over TLS? */
int request_is_https(const struct request *r);
/* Was the connection made to a loopback address (127.0.0.0/8, ::1)? Its
 * client is then on this host. */
int request_is_local(const struct request *r);
/* The daemon's observed probes and check states (observe/observe.h). */
struct observe *request_observe(const struct request *r);
/* The state of the store, for /v1/health (engine_store_state). */
void request_store_state(const struct request *r, struct engine_store_state *out);
/* This daemon's id among the daemons of a shared store ("host:listen"). */
const char *request_daemon_id(const struct request *r);
/* The fleet (observe/share.h; the caller frees f->daemons): the daemons
 * registered in a shared store, or this one alone. */
void request_fleet(const struct request *r, struct share_fleet *f);
/* After how long without a heartbeat a daemon is shown stale (ms). */
int64_t request_stale_after_ms(const struct request *r);

/* A job for the engine whose data area (job->data) is data_size zeroed
 * bytes owned by the job. The actor is r's. fn: a read job's work; NULL
 * for a command (engine_job_command) or an audit read
 * (engine_job_read_audit). */
struct engine_job *request_job_new(struct request *r, engine_job_fn fn, size_t data_size);
/* Queues job; when it is done, then(r, job) runs on r's worker thread
 * (unless the client went away); then the job is released
 * (engine_job_release: its command, what it read, job->free_data) and
 * freed, whether or not then ran. */
void request_job_submit(struct request *r, struct engine_job *job, request_job_handler then);
/* Like request_job_submit, but the job goes to submit(ctx, job) instead
 * of the engine: a thread of the caller's (the identity provider's
 * calls, oidc_provider.c), which must call job->done(job) exactly once,
 * from any thread, when the job is over (also when it refuses or drops
 * it). */
void request_job_submit_to(struct request *r, struct engine_job *job, request_job_handler then,
                           void (*submit)(void *ctx, struct engine_job *job), void *ctx);

/* Calls then(r) as soon as cluster's version is above after, or after
 * wait_ms, or at shutdown, whichever comes first (at once when it already
 * is above). then reads request_snapshot(r) to see what happened. */
void request_wait_for_change(struct request *r, const char *cluster, int64_t after, int64_t wait_ms,
                             request_handler then);

/* Calls then(r) as soon as the observations of the nodes ("a,b,c") of
 * cluster change (observation_digest is no longer after: a probe of one
 * of them was answered, or the cluster changed), or after wait_ms, or at
 * shutdown, whichever comes first (at once when it already changed). */
void request_wait_for_observation(struct request *r, const char *cluster, const char *nodes,
                                  uint64_t after, int64_t wait_ms, request_handler then);
/* The cluster's version plus the observation sequence numbers of the
 * nodes ("a,b,c"): it changes whenever one of them is probed. */
struct observe;
uint64_t observation_digest(struct observe *o, const struct model *m, const char *cluster,
                            const char *nodes);

/* Counts one heavy document serialised on r's worker (render.c), for
 * /v1/health's "workers". */
void request_count_render(struct request *r);
/* What the workers answered since start: the probe worker's and the
 * general workers' (summed) requests that were probes, other requests,
 * connections the probe worker handed on, documents rendered. */
struct request_worker_counts {
	uint64_t probes, others, handed_off, renders;
};
void request_worker_counts(const struct request *r, struct request_worker_counts *probe_worker,
                           struct request_worker_counts *general);

/* Has r's HTTP/1 client closed its connection? h2o stops reading an
 * HTTP/1 connection while a request is under way and finds out only
 * when it writes; the kernel knows at once (POLLRDHUP: the peer's FIN
 * even behind unread data, such as a TLS client's close_notify, which a
 * peek at the first byte would take for a request). A surface that
 * holds a request looks now and then and answers (nobody reads it) so
 * that h2o lets the request go. HTTP/2 cancels a stream by itself. */
int request_client_is_gone(const struct request *r);

/* Are the other daemons' reports of node (NULL: every node) of cluster
 * read (observe_remote_ready)? 1: go on. 0: r waits for the share
 * thread's next read (woken by it), then again(r) runs, which asks
 * again; in all at most REQUEST_REMOTE_WAIT_MS, after which the answer
 * is 1 and the view has what was read before (a store that does not
 * answer). */
#define REQUEST_REMOTE_WAIT_MS 2000
int request_remote_ready(struct request *r, const char *cluster, const char *node,
                         request_handler again);
/* The same for the nodes of a comma-separated list (asked together: one
 * read brings them all). */
int request_remote_ready_nodes(struct request *r, const char *cluster, const char *nodes,
                               request_handler again);
/* Is the daemon stopping? A wait then fires at once; a surface that
 * waits again in its continuation must answer instead. */
int request_is_stopping(const struct request *r);
/* A condition a wait is over on: reads r's snapshot or store state
 * (request_snapshot, request_store_state); no side effects. */
typedef int (*request_due_fn)(struct request *r);
/* Calls then(r) as soon as is_due(r) holds (checked at once, then at
 * every change of the model on r's worker), or after wait_ms, or at
 * shutdown, whichever comes first. Holds no thread: a waiter on r's
 * worker, like request_wait_for_change; not counted as an event long
 * poll. */
void request_wait_until(struct request *r, request_due_fn is_due, int64_t wait_ms,
                        request_handler then);

/* Calls then(r) after delay_ms (or at shutdown). */
void request_after(struct request *r, int64_t delay_ms, request_handler then);

#endif
