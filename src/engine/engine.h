/*
 * engine.h - the single writer: owns the store, the current model and
 * the TTL clock, and publishes immutable snapshots to the HTTP workers.
 *
 * Why a thread of its own: a write must be durable before it is
 * acknowledged, and a durable commit (fsync, or a round trip to
 * PostgreSQL) can take milliseconds or, when the database is slow or
 * gone, much longer. The probe must never wait on that. So HTTP workers
 * never touch the store: they read the published snapshot (lock-free) and
 * hand every write (a struct command, core/command.h), and every read that
 * needs the database, to the engine thread as a job. The engine runs jobs
 * one at a time, in order:
 *
 *   store_write (copy the model -> command_apply -> save -> commit)
 *   -> publish the copy
 *   -> job->done(job)  (still on the engine thread: the owner must hand
 *                       the job back to its own thread, e.g. through
 *                       h2o_multithread_send_message)
 *
 * TTL expiry is a command too (COMMAND_EXPIRE), applied the same way.
 *
 * With a shared store, a command is decided under the store's write lock
 * against the stored state (store_write): when another daemon wrote since
 * this daemon's model, the command is applied to the model as stored now
 * (commands carry intent, not pointers, so that is meaningful). Changes
 * made by other daemons arrive through the store's watch thread
 * (store_watch): the engine reloads and publishes them like its own.
 *
 * Slow work runs on a second, "side" thread, so that a burst of logins
 * cannot hold up durable writes: read jobs (argon2id password checks),
 * and the preparation of a command that needs it (hashing a new user's
 * password) before the command goes on to the engine thread.
 *
 * Snapshot lifetime (a small RCU, "quiescent-state based" with online
 * and offline readers as in liburcu's QSBR flavour): engine_snapshot()
 * returns the current model. A thread that reads snapshots registers as a
 * reader, on its own thread. A reader is either online - it may hold
 * snapshot pointers, and keeps every snapshot replaced since it last
 * passed a quiescent point alive - or offline, holding no snapshot
 * pointer at all. engine_reader_quiescent() says "I hold nothing older
 * than now"; HTTP workers go offline once per event loop iteration. A
 * reader must go offline before it blocks (waits for work, sleeps,
 * polls), so that an idle thread never holds memory up: an old snapshot
 * is freed as soon as every online reader has passed a quiescent point
 * after it was replaced, at once when all are offline. Never keep a
 * snapshot pointer across a quiescent point or going offline.
 */
#ifndef CM_ENGINE_H
#define CM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/command.h"
#include "../core/error.h"
#include "../core/model.h"
#include "../core/peer.h"

struct store; /* store/store.h: the HTTP side never holds one */
#include "../util/histogram.h"

struct engine;

/* What a read job sees while it runs. */
struct engine_tx {
	const struct model *model; /* the current snapshot; never mutate it */
	const struct actor *who;
	int64_t now;           /* ms */
	struct engine *engine; /* for a side job's engine_rollouts_* calls */
};

struct engine_job;
typedef int (*engine_job_fn)(struct engine_tx *tx, struct engine_job *job, struct error *err);

/*
 * A job is one of four kinds, all queued with engine_submit:
 *
 *   a command   (engine_job_command) a write: the engine applies
 *               job->command with command_apply to a copy of the current
 *               model, persists and publishes it; the result is in
 *               job->result. A put-user command with a plaintext password
 *               is first hashed on the side thread.
 *   an audit read (engine_job_read_audit) the newest entries of a
 *               cluster's audit log from the store, into job->audit.
 *   a read      run(tx) against the current snapshot, on the engine
 *               thread.
 *   a side read run(tx) with is_side set, on the side thread: slow work
 *               such as verifying a password, so it never delays writes;
 *               refused with 503 once the daemon stops.
 *
 * Ownership: the job and everything in it belong to the submitter, who
 * allocates it, and once done has been called frees what it holds with
 * engine_job_release (then the job itself). The engine only reads the
 * submitter's fields and fills the engine's; nothing in a job points into
 * the engine or a snapshot.
 */
struct engine_job {
	/* filled by the submitter */
	engine_job_fn run; /* a read job's work; NULL for the other kinds */
	int is_side;       /* a read job: run on the side thread */
	char who_name[96]; /* actor */
	char who_address[64];
	char who_context[AUDIT_CONTEXT_MAX + 1]; /* struct actor's context, "" for none */
	void (*done)(struct engine_job *job);    /* called on an engine thread */
	void *done_arg;                          /* the submitter's, for done */
	void *data;                              /* the submitter's */
	void (*free_data)(void *data);           /* if set, engine_job_release calls it */

	int is_command;         /* set by engine_job_command */
	struct command command; /* a command job's; the job owns it */
	int is_audit_read;      /* set by engine_job_read_audit */
	char audit_cluster[NODE_NAME_MAX + 1];
	int64_t audit_limit;

	/* filled by the engine */
	int rc;                       /* 0 or -1 */
	struct error err;             /* when rc == -1 */
	struct command_result result; /* a command's */
	struct audit_log audit;       /* an audit read's, newest first */

	/* engine-private: the queue link */
	struct engine_job *next;
	int64_t queued_at; /* monotonic µs, set by engine_submit */
	/* monotonic ms by which a shared store gives up on the job's write:
	 * --store-timeout from when it joined the engine thread's queue, so
	 * that the time spent behind a reload or other writes counts */
	int64_t store_deadline;
};

/* Where every committed change's audit entry goes besides the store: the
 * sink returns 1 when it took the entry (the journal), 0 to have it
 * logged as a "change" line. Called on the engine thread after the
 * commit. Set before the engine starts. */
typedef int (*engine_audit_sink)(const struct audit_entry *e);
void engine_set_audit_sink(engine_audit_sink sink);

/* Makes job (zeroed by the submitter) a command job of kind and returns
 * its command for the submitter to fill. */
struct command *engine_job_command(struct engine_job *job, enum command_kind kind);
/* Makes job (zeroed) a read of the newest limit entries of cluster's
 * audit log. */
void engine_job_read_audit(struct engine_job *job, const char *cluster, int64_t limit);
/* Probe reports shared through a shared store (store_share_probes), and
 * the heartbeat of the fleet. */
struct engine_probe_share {
	const char *daemon;
	const struct probe_report *mine;
	size_t n_mine;
	int64_t forget_before;
	int want_others;
	const struct probe_interest *interest; /* whose reports to read */
	size_t n_interest;
	struct probe_report *others; /* out: malloc'd, the caller frees */
	size_t n_others;
	int others_are_delta; /* out: others are to merge (store_share_probes) */
	/* when set, also the heartbeat (store_heartbeat); the engine fills
	 * me->version with the store version it has applied */
	struct daemon_record *me;
	struct daemon_record *fleet; /* out: malloc'd, the caller frees */
	size_t n_fleet;
	int64_t store_version, changed_at; /* out */
	/* when set, also the web sessions (store_share_sessions) */
	int with_sessions;
	const struct session_record *sessions_added, *sessions_ended;
	size_t n_sessions_added, n_sessions_ended;
	struct session_record *sessions; /* out: malloc'd, the caller frees */
	size_t n_sessions;
};
/* Runs store_share_probes (and the heartbeat and sessions) on the
 * caller's thread: the store's shared tables go through a connection of
 * their own, never the engine thread's. It blocks up to the store's
 * deadline: for a thread of its own (observe/share.c), never an event
 * loop. */
int engine_share_probes(struct engine *e, struct engine_probe_share *share, struct error *err);

/* The registry of rollouts in progress (store_rollouts_register, _beat,
 * _list and _free in store.h, the same contracts), on the caller's
 * thread, through engine_tx.engine: with a shared store in a side job
 * (like engine_share_probes, they go through the store's connection for
 * the fleet, never the engine thread's, and block up to the store's
 * deadline), with an unshared one in a read job on the engine thread,
 * the only one that may touch that store. Never on an event loop. */
int engine_rollouts_register(struct engine *e, const struct rollout_record *rec, int is_force,
                             int max, int64_t evict_before, int *is_conflict,
                             struct rollout_record *conflict, struct error *err);
int engine_rollouts_beat(struct engine *e, const struct rollout_record *beat,
                         struct rollout_record *out, struct error *err);
int engine_rollouts_list(struct engine *e, struct rollout_record **all, size_t *n_all,
                         struct error *err);
void engine_rollouts_free(struct rollout_record *r);

/* Frees what the job holds (its command, the audit entries read, and
 * free_data(data)); not the job itself. */
void engine_job_release(struct engine_job *job);

/* Opens the store named by spec (store_open) and, for a store other
 * daemons share, the local state copy DIR/state.db under state_dir (NULL:
 * none, with a warning), then starts the engine on them
 * (engine_start_with_copy). Copies the store's description (never a
 * password) into describe. NULL and err on failure. */
struct engine *engine_open(const char *spec, const char *state_dir, char *describe,
                           size_t describe_size, struct error *err);

/* What a start would find wrong with the store named by spec: opens it
 * (creating it when absent, as a start would), loads it and closes it. */
int engine_check_store(const char *spec, struct error *err);
/* The store's options, before engine_open: the deadline of every store
 * operation (store_set_timeout) and where PostgreSQL's notifications are
 * LISTENed for (store_set_listen_db; NULL: the store's own database). */
#define ENGINE_STORE_TIMEOUT_DEFAULT_MS 3000
void engine_set_store_options(int timeout_ms, const char *listen_db);
/* Whether spec names a PostgreSQL store (store_spec_is_postgres). */
int engine_store_is_postgres(const char *spec);

/* Loads the model from store (creating the default cluster mounted at
 * /health when there is no cluster), applies TTLs that expired while the
 * daemon was down, and starts the engine thread. The engine owns store
 * from then on, also when this fails. */
struct engine *engine_start(struct store *store, struct error *err);

/* engine_start with a local state copy (an SQLite store the engine keeps
 * equal to every state it publishes, with its store version; may be
 * NULL). When a shared store (PostgreSQL) is unreachable at start, the
 * engine starts from the copy, or, without one, with no state at all
 * (engine_has_state 0) until the store answers. The engine owns copy. */
struct engine *engine_start_with_copy(struct store *store, struct store *copy, struct error *err);

/* What /v1/health tells about the store. Any thread. */
struct engine_store_state {
	int is_shared;           /* other daemons may write the store */
	int is_up;               /* the store answered the last time it was tried */
	int64_t down_since;      /* ms, when !is_up */
	int64_t round_trip_ms;   /* of the store's last check (shared stores) */
	int is_slow;             /* up, but slower than store_slow_ms() */
	int64_t version;         /* the store version of the published model */
	int64_t version_at;      /* ms, when this daemon published it; 0: at start */
	int has_state;           /* 0: nothing to answer from yet */
	int64_t reloads;         /* times the model was read back from the store */
	int64_t changes_applied; /* other daemons' writes applied as notified, unread */
};
void engine_store_state(struct engine *e, struct engine_store_state *out);
/* 0 while the daemon has no state to answer from (engine_start_with_copy). */
int engine_has_state(struct engine *e);

/* Runs the jobs already queued, stops the thread, closes the store and
 * frees everything. Every reader must have unregistered before. */
void engine_stop(struct engine *e);

/* Queues a job; never blocks on the database. A command that needs
 * preparing (command_needs_prepare) goes to the side thread first. */
void engine_submit(struct engine *e, struct engine_job *job);

/* Submits a job and waits for it to finish (it sets job->done and
 * job->done_arg itself). For start-up work such as creating the first
 * admin; never call it from an event loop. Returns job->rc. */
int engine_run_sync(struct engine *e, struct engine_job *job);

/* Called on the engine thread after every published change, with the
 * model just published. Any thread may set it at any time, cb NULL to
 * remove it; once engine_on_change returns, the previous callback is not
 * running and will not be called again. cb must not call
 * engine_on_change. */
void engine_on_change(struct engine *e, void (*cb)(void *arg, const struct model *m), void *arg);

/* Registers the calling thread as a snapshot reader and returns its id
 * for the calls below. The reader starts offline. Up to 64 readers at a
 * time (aborts beyond: a programming error). */
int engine_reader_register(struct engine *e);
/* Marks a reader as gone: it goes offline and will not read again. */
void engine_reader_unregister(struct engine *e, int reader_id);

/* A quiescent point of an online reader: it holds no snapshot pointer
 * taken before this call. Cheap when nothing was published since the
 * last one (two loads); a no-op for an offline reader. */
void engine_reader_quiescent(struct engine *e, int reader_id);
/* The reader holds no snapshot pointer until it next comes online; call
 * it before blocking. Frees (through the engine thread) what only this
 * reader kept alive. */
void engine_reader_offline(struct engine *e, int reader_id);
/* The reader may take snapshots again. engine_snapshot() does this by
 * itself for the calling thread's own reader, so calling it is only
 * needed to make the intent explicit. */
void engine_reader_online(struct engine *e, int reader_id);

/* What the engine counted since it started, for metrics. */
struct engine_stats {
	uint64_t writes_committed;             /* write jobs and TTL expiries durably committed */
	uint64_t writes_failed;                /* ... that the store could not commit (refused
	                                          writes, which change nothing, are not counted) */
	int is_store_up;                       /* 0 from a failed commit until one succeeds */
	const struct histogram *write_latency; /* a write job's time from
	                                          engine_submit to its commit;
	                                          live, owned by the engine */
};

/* Fills *out; any thread, any time (a few atomic loads). */
void engine_stats(struct engine *e, struct engine_stats *out);

/* For tests and metrics: how many replaced snapshots are still alive,
 * waiting for readers to pass a quiescent point or go offline. */
size_t engine_retired_count(struct engine *e);

/* The current snapshot; never NULL. See the lifetime rule above. Called
 * on a registered reader's own thread, it first brings that reader online
 * if it was offline. Other threads (the engine's own, start-up code) get
 * no protection: only the engine thread frees snapshots, so its jobs may
 * use one while they run. */
const struct model *engine_snapshot(struct engine *e);

#endif
