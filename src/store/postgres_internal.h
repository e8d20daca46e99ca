/*
 * postgres_internal.h - what the files of the PostgreSQL backend share.
 *
 * Internal to src/store/. The backend is one struct pg_store and two
 * connections, in seven files, one job each:
 *
 *   postgres.c         the main connection: open and close, the up/down
 *                      state, statements within the write's deadline,
 *                      transactions under the cross-daemon write lock, the
 *                      outcome of an unconfirmed COMMIT; the backend table
 *   postgres_conn.c    one libpq connection bounded by a deadline: connect,
 *                      run, cancel, give up; libpq's notices to the log
 *   postgres_schema.c  the schema's steps and their migration
 *   postgres_rows.c    the model's rows: the writes' primitives, the load,
 *                      the audit log
 *   postgres_watch.c   the second connection and its thread: LISTEN, the
 *                      periodic version check, reconnection with backoff,
 *                      and the fleet's telemetry run on it (pg_side_call)
 *   postgres_fleet.c   the fleet's shared tables: observed probes,
 *                      heartbeats, web sessions, one statement per batch
 *   postgres_rollouts.c  the rollouts in progress, on the same connection
 *
 * pg_share.c encodes the probe and session batches' array parameters.
 */
#ifndef CM_POSTGRES_INTERNAL_H
#define CM_POSTGRES_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store_backend.h"

#define LOCK_CLASS 0x636d /* "cm": the first key of our advisory locks */
#define LOCK_MIGRATE 1
#define LOCK_WRITE 2
#define LOCK_ROLLOUTS 3 /* registering a rollout (postgres_rollouts.c) */
#define CHANNEL "clustermgmt"
#define CHANGE_CHANNEL "clustermgmt_change" /* what a write changed (change.h) */
#define PG_SIDE_KEPT_MAX 8                  /* statements prepared on the listen connection */

struct pg_side_job;

struct pg_store {
	char *spec;        /* as given: never printed (it may hold a password) */
	char *description; /* "postgres:host=... dbname=...", no password */
	const char **keys; /* libpq parameters: our defaults, then the spec */
	const char **values;
	const char **listen_values; /* the same, named for the watch thread */
	PGconn *conn;               /* the engine thread's */
	int64_t unsure_audit_id;    /* of a COMMIT without answer: decided at reconnection */
	int64_t first_audit_id;     /* of the transaction under way; 0: none yet */
	/* monotonic ms: the end of the operation under way (a write from
	 * BEGIN to COMMIT, a load, a read), connecting included, at the
	 * latest; 0 between operations (a statement then gets the bare
	 * deadline from when it is sent) */
	int64_t op_deadline;
	int in_tx;
	int is_loss_quiet;     /* a lost connection is not an outage yet (pg_begin) */
	int is_schema_checked; /* on the current main connection */
	int schema_version;

	/* Shared with the watch thread. */
	_Atomic int is_up;
	_Atomic int64_t down_since;    /* ms; 0 while up */
	_Atomic int64_t round_trip_ms; /* of the watch thread's last check */
	_Atomic int64_t check_started; /* monotonic ms of the check under way; 0: none */
	pthread_mutex_t state_lock;    /* serialises the two transitions */

	/* The watch thread. */
	pthread_t watch_thread;
	int is_watching;
	int wake_fd; /* eventfd: stop */
	_Atomic int is_stopping;
	struct store_watcher watcher;
	PGconn *listen_conn;

	/* Work handed to the watch thread's connection (pg_side_call): one
	 * job at a time, so the hand-over needs no queue. */
	pthread_mutex_t side_lock;
	pthread_cond_t side_cond;
	struct pg_side_job *side_job; /* under side_lock: waiting or running */
	int is_side_closed;           /* under side_lock: no watch thread to run jobs */
	int side_fd;                  /* eventfd: a job is waiting */
	int64_t side_deadline;        /* monotonic ms: the job's end, at the latest */
	int is_side_late;             /* the watch thread's: a job's answer was late */
	/* The statements prepared on the current listen connection
	 * (pg_side_exec_kept), by the address of their text: the one at
	 * index i is named "kept<i>". */
	const char *side_kept[PG_SIDE_KEPT_MAX];
	int n_side_kept;
	int is_side_kept_stale; /* a kept one failed: drop them all first */
	/* The side jobs': the probes_version of the last read of the other
	 * daemons' reports, when that read was and the last full one
	 * (monotonic ms; 0: never), and the xmin of the last read's snapshot
	 * (the next read asks for reports written by xid >= it). */
	int64_t probes_seen_version;
	int64_t probes_read_at;
	int64_t probes_full_read_at;
	/* The xmin of the last own load's snapshot: a reload reads again the
	 * clusters written by transactions at or after it; "" before one. */
	char model_xmin[24];
	char probes_seen_xmin[24];
	int64_t probes_forgot_at;    /* this daemon's old reports last deleted */
	int64_t sessions_expired_at; /* expired sessions last deleted (ms) */
	/* probes_version as the last probes exchange read it, and as it was
	 * before the last read of the sessions (-1: none yet): every write
	 * to the sessions bumps it too, so an idle round reads no sessions */
	int64_t fleet_version;
	int64_t sessions_seen_version;
	/* The heartbeat reads probes_version too: the probes exchange that
	 * follows it in the same round (engine_share_probes) takes it from
	 * there instead of a statement of its own. */
	int has_beat_probes_version;
	int64_t beat_probes_version;
	int64_t beat_probes_version_at; /* monotonic ms */
	/* monotonic ms the store's version was last read on the listening
	 * connection (its periodic check, or a heartbeat) */
	int64_t version_read_at;
};

/* postgres.c */
int pg_timeout_ms(void);
void pg_mark_down(struct pg_store *db, const char *why);
void pg_mark_up(struct pg_store *db);
/* Fills err for a failed call on the main connection (res may be NULL:
 * no answer); a lost connection marks the store down. Returns -1. */
int pg_fail(struct pg_store *db, const PGresult *res, const char *doing, struct error *err);
/* Runs sql on the main connection within the deadline (several
 * statements when is_simple); *out gets the result (NULL: cleared). */
int pg_main_exec(struct pg_store *db, const char *sql, int n, const char *const *params,
                 int is_simple, PGresult **out, const char *doing, struct error *err);
int pg_run(struct pg_store *db, const char *sql, int n, const char *const *params, PGresult **out,
           const char *doing, struct error *err);
int pg_run_sql(struct pg_store *db, const char *sql, const char *doing, struct error *err);
void pg_rollback_quietly(struct pg_store *db);
int pg_ensure_connected(struct pg_store *db, struct error *err);
int pg_parse_i64(const char *s, int64_t *out);
void pg_i64_text(int64_t v, char *buf, size_t size);

/* postgres_watch.c: on the watch thread, the store's version was read
 * on the listening connection (started: monotonic ms the statement was
 * sent): the database answers, its round trip is measured, the engine
 * applies a newer version, and the periodic check waits. */
void pg_watch_version_read(struct pg_store *db, int64_t started, int64_t version);

/* postgres_conn.c */
void pg_session_settings(char *out, size_t size, int is_local);
int pg_is_transient_state(const char *sqlstate);
/* A query's answer that ended the connection (the server's FATAL or
 * PANIC: a terminated backend, a shutdown) is logged as the same message
 * would have been had it reached the connection while idle (the notice
 * receiver); any other answer is left to the caller. */
void pg_log_if_ended(const char *description, const PGresult *res);
/* libpq's message, on one line. */
void pg_one_line(const char *in, char *out, size_t size);
/* The deadline of a step of the operation under way, or of a lone one
 * (monotonic ms). */
int64_t pg_deadline(const struct pg_store *db);
/* deadline: monotonic ms, 0 for the bare deadline from now. is_reached
 * (NULL: not wanted): set to 1 when the server answered, even if the
 * attempt then failed (a backend terminated during start-up). */
PGconn *pg_connect_within(struct pg_store *db, const char *const *values, int64_t deadline,
                          int wake_fd, char *why, size_t why_size, int *is_reached);
/* Waits until conn's answer can be read without blocking, flushing what
 * is still to be sent. 0: ready; -1: the connection broke; -2: the
 * deadline passed or wake_fd (-1: none) woke us. */
int pg_await_ready(PGconn *conn, int64_t deadline, int wake_fd);
int pg_is_ok(const PGresult *res);
PGresult *pg_exec_within(PGconn *conn, const char *sql, int n, const char *const *params,
                         int is_simple, int64_t deadline, int wake_fd, int *is_late);
/* The same in two steps: a statement prepared once under name, then run
 * by name with its parameters (parsed and planned once per connection). */
PGresult *pg_prepare_within(PGconn *conn, const char *name, const char *sql, int n,
                            int64_t deadline, int wake_fd, int *is_late);
PGresult *pg_exec_prepared_within(PGconn *conn, const char *name, int n, const char *const *params,
                                  int64_t deadline, int wake_fd, int *is_late);
void pg_abandon(PGconn *conn);

/* postgres_schema.c: checks the schema and brings it up to date on the
 * main connection, in one transaction under the migration lock. */
int pg_migrate(struct pg_store *db, struct error *err);

/* postgres_rows.c */
int64_t pg_value_i64(const PGresult *res, int row, int col);

/* postgres_watch.c */
int pg_watch_start(void *handle, const struct store_watcher *w, struct error *err);
void pg_watch_stop(void *handle);
/* Runs run(db, arg, err) on the watch thread's connection and waits for
 * it: the fleet's telemetry never waits on, nor delays, the main
 * connection's writes. run uses pg_side_exec for its statements. 503
 * when the watch thread is not running or its connection is down. */
int pg_side_call(struct pg_store *db, int (*run)(struct pg_store *db, void *arg, struct error *err),
                 void *arg, struct error *err);
/* Inside a side job: runs sql with text parameters on the watch
 * thread's connection within the job's deadline; *out gets the result
 * (NULL: cleared). A connection that broke or answered late is given up
 * (the watch thread reconnects). */
int pg_side_exec(struct pg_store *db, const char *sql, int n, const char *const *params,
                 PGresult **out, const char *doing, struct error *err);
/* The same for a statement the fleet runs every round (sql: a string
 * constant, known by its address): prepared on the connection at its
 * first use, then run by name; past PG_SIDE_KEPT_MAX such statements,
 * the others are sent as text. */
int pg_side_exec_kept(struct pg_store *db, const char *sql, int n, const char *const *params,
                      PGresult **out, const char *doing, struct error *err);

/* The backend's operations (store_backend.h), by file. */
int pg_begin(void *handle, int64_t deadline, struct error *err);
int pg_commit(void *handle, struct error *err);
void pg_rollback(void *handle);
int pg_read_version(void *handle, int64_t *version, struct error *err);
int pg_write_version(void *handle, int64_t version, const char *change, struct error *err);
void pg_health(void *handle, struct store_health *out);

int pg_upsert_cluster(void *handle, const struct cluster *c, struct error *err);
int pg_delete_cluster(void *handle, const char *name, struct error *err);
int pg_upsert_node(void *handle, const char *cluster, const struct node *n, struct error *err);
int pg_delete_node(void *handle, const char *cluster, const char *name, struct error *err);
int pg_upsert_lb(void *handle, const char *cluster, const struct lb *l, struct error *err);
int pg_delete_lb(void *handle, const char *cluster, const char *name, struct error *err);
int pg_upsert_user(void *handle, const struct user *u, struct error *err);
int pg_delete_user(void *handle, const char *name, struct error *err);
int pg_insert_token(void *handle, const struct token *t, struct error *err);
int pg_delete_token(void *handle, const char *id, struct error *err);
int pg_clear_audit(void *handle, struct error *err);
int pg_insert_audit(void *handle, const struct audit_entry *e, int64_t *id, struct error *err);
int pg_find_key(void *handle, const char *key, int *is_found, struct error *err);
int pg_remember_key(void *handle, const char *key, int64_t now, int64_t audit_id,
                    struct error *err);
int pg_load(void *handle, struct model *m, int64_t *version, struct error *err);
int pg_reload(void *handle, const struct model *have, struct model *m, int64_t *version,
              struct error *err);
int pg_read_audit(void *handle, const char *cluster, int64_t limit, struct audit_log *out,
                  struct error *err);

int pg_share_probes(void *handle, const char *daemon, const struct probe_report *mine,
                    size_t n_mine, int64_t forget_before, int want_others,
                    const struct probe_interest *interest, size_t n_interest,
                    struct probe_report **others, size_t *n_others, int *is_delta,
                    struct error *err);
int pg_heartbeat(void *handle, const struct daemon_record *me, struct daemon_record **all,
                 size_t *n_all, int64_t *store_version, int64_t *changed_at, struct error *err);
int pg_share_sessions(void *handle, const struct session_record *added, size_t n_added,
                      const struct session_record *ended, size_t n_ended, int64_t now,
                      struct session_record **all, size_t *n_all, struct error *err);

int pg_rollouts_register(void *handle, const struct rollout_record *rec, int is_force, int max,
                         int64_t evict_before, int *is_conflict, struct rollout_record *conflict,
                         struct error *err);
int pg_rollouts_beat(void *handle, const struct rollout_record *beat, struct rollout_record *out,
                     struct error *err);
int pg_rollouts_list(void *handle, struct rollout_record **all, size_t *n_all, struct error *err);

#endif
