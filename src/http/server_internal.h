/*
 * server_internal.h - the daemon's runtime state (the server, its
 * workers), shared by daemon*.c, server.c, request.c, router.c, auth.c,
 * auth_queue.c and scrape.c only. The surfaces see struct request alone.
 */
#ifndef CM_SERVER_INTERNAL_H
#define CM_SERVER_INTERNAL_H

#include <pthread.h>
#include <sys/types.h>
#include <stdatomic.h>

#include "../util/log.h"
#include "request.h"

struct auth_state;
struct agent;
struct checker;
struct observe;

/* A descriptor in a worker's gone_epfd (request.c): the connection added
 * (h2o's connection id, unique; 0 for none) and the long poll it holds
 * now, or NULL. */
struct gone_slot {
	uint64_t conn_id;
	struct pending_wait *pd;
	int has_left; /* the client hung up, or shut its side down, while the
	                 connection held no poll (request.c) */
};

#define RESERVE_FDS 8 /* descriptors a worker that has a reserve keeps for probes */

struct worker {
	int id;
	int reader_id; /* engine reader registration */
	pthread_t thread;
	struct server *server;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept_ctx; /* .ssl_ctx: the worker's own reference */
	unsigned ssl_generation;     /* of the context in accept_ctx */
	h2o_socket_t **listeners;
	size_t n_listeners;
	/* probe worker, with --probe-listen: the last of listeners[], whose
	 * connections are served with probe_accept_ctx (probes alone) */
	h2o_socket_t *probe_listener;
	h2o_accept_ctx_t probe_accept_ctx;
	h2o_multithread_receiver_t done_receiver;   /* finished engine jobs */
	h2o_multithread_receiver_t change_receiver; /* the model changed */
	h2o_multithread_message_t change_message;   /* at most one in flight */
	_Atomic int is_change_pending;
	_Atomic int n_waiters;        /* on waiters: a change wakes only a worker with one */
	h2o_linklist_t waiters;       /* long polls and delays */
	int gone_epfd;                /* long polls' HTTP/1 clients, for EPOLLRDHUP (-1: none) */
	h2o_socket_t *gone_watch;     /* gone_epfd on the loop (request_clients_gone) */
	struct gone_slot *gone_slots; /* indexed by descriptor, n_gone_slots of them */
	size_t n_gone_slots;
	h2o_timeout_t tick_timeout; /* drives waiter deadlines (server_tick_arm) */
	h2o_timeout_entry_t tick;
	h2o_timeout_t sweep_timeout; /* worker 1: observed probes forgotten */
	h2o_timeout_entry_t sweep;
	h2o_timeout_t accept_pause_timeout; /* out of descriptors: listeners */
	h2o_timeout_entry_t accept_resume;  /* stop polling for a while */
	int64_t fd_warned_at;               /* ms of the last such warning */
	size_t n_pending;                   /* jobs and waits not answered yet */
	size_t n_responding;                /* answers not written out yet (server.c) */
	struct agent *agent;                /* worker 0 only, with --agent-listen */
	int init_rc;                        /* worker_init's result, read after the barrier */
	struct error init_err;
	int is_metrics; /* the --metrics-listen worker: /metrics only, plain HTTP */
	int is_probe;   /* the probe worker: probes and agent checks only */
	/* the probe worker, and with TLS the general workers (which accept
	 * on --listen then): descriptors kept for probes (server.c) */
	int has_reserve;
	int reserve_fds[RESERVE_FDS];
	int n_reserve;
	/* with TLS, by descriptor: 1 when its connection was accepted while
	 * the reserve was not full (only its probes are served) */
	unsigned char *on_reserve;
	size_t n_on_reserve;
	h2o_timeout_entry_t reserve_refill; /* on accept_pause_timeout while not full */
	/* connections the probe worker hands over (server.c, handoff_send) */
	h2o_multithread_receiver_t handoff_receiver;
	_Atomic int n_handoffs_due;       /* sent to this worker, not taken over yet */
	unsigned next_handoff;            /* probe worker: the general worker to hand to next */
	h2o_timeout_t first_line_timeout; /* probe worker: connections whose
	                                     request line has not arrived */
	pid_t tid;                        /* the worker thread's (gettid) */
	/* general workers: the probe worker ran out of descriptors and has
	 * nothing idle of its own to close (server.c, on_make_room) */
	h2o_multithread_receiver_t make_room_receiver;
	h2o_multithread_message_t make_room_message; /* at most one in flight */
	_Atomic int is_make_room_pending;
	/* what this worker answered (relaxed atomics: read by /v1/health) */
	_Atomic uint64_t n_probes;     /* probe requests (router's PROBE line) */
	_Atomic uint64_t n_others;     /* every other request */
	_Atomic uint64_t n_handed_off; /* probe worker: connections passed on */
	_Atomic uint64_t n_renders;    /* node lists serialised (render.c) */
	int is_consul; /* the --consul-listen worker: consul.c's paths only, plain HTTP */
};

struct listen_addr {
	char text[80]; /* as given, for logs */
	int fd;
	int is_loopback;
};

struct server_options {
	struct listen_addr listens[16];
	size_t n_listens;
	const char *db;
	const char *state_dir;  /* NULL: no local state copy */
	int64_t stale_after_ms; /* a daemon without heartbeat for this long is stale */
	const char *default_node;
	struct listen_addr agent_listen; /* text "" when not given */
	struct listen_addr probe_listen; /* text "" when not given */
	int64_t check_interval_ms, check_timeout_ms;
	int64_t store_timeout_ms; /* --store-timeout */
	const char *listen_db;    /* --listen-db, or NULL */
	int check_fall, check_rise;
	const char *admin_password_file;
	const char *tls_cert;
	const char *tls_key;
	int threads;
	int is_demo;
	enum log_format log_format;
	enum log_level log_level;
	const char *log_file;              /* NULL: stderr */
	struct listen_addr metrics_listen; /* text "" when not given */
	struct listen_addr consul_listen;  /* text "" when not given */
	int is_check_config;
	/* signing in (oidc.h, auth_principal.c, roles.h) */
	const char *oidc_issuer, *oidc_client_id, *oidc_client_secret_file, *oidc_scopes,
	    *oidc_groups_claim, *oidc_redirect_url, *oidc_ca_file, *oidc_state_key_file;
	int is_oidc_no_pkce, is_oidc_only;
	const char *auth_proxy_header;
	char auth_proxy_from[32][64];
	size_t n_auth_proxy_from;
	const char *roles_file; /* --roles, read again on SIGHUP */
};

struct server {
	struct server_options opts;
	struct engine *engine;
	h2o_globalconf_t config;
	/* The TLS context for new connections (NULL without TLS), replaced on
	 * SIGHUP. Each worker holds its own reference to the one it uses and
	 * takes the new one at its next accept; ssl_lock guards the pointer. */
	SSL_CTX *ssl_ctx;
	pthread_mutex_t ssl_lock;
	_Atomic unsigned ssl_generation;
	/* workers[0] is the probe worker (is_probe), then the --threads
	 * general workers, then, when given, the --metrics-listen worker
	 * (is_metrics) and the --consul-listen worker (is_consul), last */
	struct worker *workers;
	int n_workers;
	_Atomic int is_stopping;
	pthread_barrier_t ready; /* workers have set up their loops */
	struct auth_state *auth;
	struct observe *observe;           /* observed probes and check states */
	struct checker *checker;           /* application checks */
	struct share *share;               /* observed probes shared with other daemons, or NULL */
	char daemon_id[DAEMON_ID_MAX + 1]; /* "host:listen" */
	struct daemon_record me;           /* this daemon in the fleet */
	/* --metrics-listen: its worker (workers[opts.threads + 1], counted in
	 * n_workers) serves this configuration, /metrics alone */
	h2o_globalconf_t metrics_config;
	/* --consul-listen: its worker (the last of workers[], counted in
	 * n_workers) serves this configuration, Consul's paths alone */
	h2o_globalconf_t consul_config;
	/* --probe-listen: plain HTTP on the probe worker, probes alone */
	h2o_globalconf_t probe_config;
	_Atomic long n_long_polls; /* held event long polls, all workers */
	struct oidc *oidc;         /* --oidc-issuer's provider, or NULL */
};

/* Is a request of this method and path a probe: GET or HEAD of a
 * cluster's mount path, exactly (server.c)? Any worker's thread. */
int server_is_probe(struct server *s, h2o_iovec_t method, h2o_iovec_t path);

/* Is sa a loopback address (127.0.0.0/8, ::1)? */
int sockaddr_is_loopback(const struct sockaddr *sa);

/* Sets up h2o, the workers and their loops (listening sockets must be
 * bound already). Returns -1 with err filled. */
int server_start(struct server *s, struct error *err);
/* Stops accepting, answers pending long polls, waits (bounded) for the
 * requests in flight, and joins the workers. Jobs the workers stopped
 * waiting for may still be queued: the engine hands them back to the
 * workers' (now idle) queues, so server_free must come after engine_stop. */
void server_stop(struct server *s);
/* Frees the workers' listener arrays and TLS contexts; the workers' array
 * and their h2o contexts, which h2o 2.2.5 cannot dispose, stay until exit. */
void server_free(struct server *s);
/* Makes ctx (whose reference the server takes over) the TLS context of
 * connections accepted from now on and drops the server's reference to
 * the old one. Any thread; s->ssl_lock must have been initialised. */
void server_set_ssl_ctx(struct server *s, SSL_CTX *ctx);
/* A worker's array indexed by descriptor (*slots, *n of size bytes each)
 * grown, zero-filled, to hold fd (>= 0). */
void worker_fd_slots_grow(void **slots, size_t *n, size_t size, int fd);

/* Copies a request that lives on the worker's stack into its h2o pool,
 * where it lives until the request is answered or the client goes away;
 * every continuation gets this copy. */
struct request *request_keep(const struct request *on_stack);

/* auth_queue.c */
struct auth_state *auth_state_new(void);
void auth_state_free(struct auth_state *a);

/* --- request.c: the worker's side of the work requests wait for ---------- */

/* Fires w's waiters that are due: changed clusters, deadlines, or all of
 * them when the daemon stops (w's loop: on a change message and its tick). */
void request_waiters_check(struct worker *w);
/* w->gone_watch's handler: ends the long polls whose HTTP/1 clients
 * closed their connections, answered as at the end of their waits, so
 * that h2o closes them now rather than up to a minute later. */
void request_clients_gone(h2o_socket_t *watch, const char *err);
/* Arms w's tick unless it is: while w holds waits (on_tick arms it again
 * while any is left) or stops. */
void server_tick_arm(struct worker *w);
/* w->done_receiver's handler: jobs the engine finished, answered. */
void request_jobs_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
/* w->change_receiver's handler: the model changed. */
void request_change_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages);
/* Engine thread (engine_on_change; arg: the server): tells every worker
 * the model changed, coalesced to one message in flight per worker. */
void request_broadcast_change(void *arg, const struct model *m);
/* Any thread (observe_set_notify; arg: the server), after a probe was
 * answered while someone waits for one. */
void request_observed(void *arg);

#endif
