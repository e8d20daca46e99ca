/*
 * engine.h - the single writer: owns the store, the current model and
 * the TTL clock, and publishes immutable snapshots to the HTTP workers.
 *
 * Why a thread of its own: a write must be durable before it is
 * acknowledged, and a durable commit (fsync, or a round trip to
 * PostgreSQL) can take milliseconds or, when the database is slow or
 * gone, much longer. The probe must never wait on that. So HTTP workers
 * never touch the store: they read the published snapshot (lock-free) and
 * hand every write, and every read that needs the database, to the engine
 * thread as a job. The engine runs jobs one at a time, in order:
 *
 *   copy current model -> job->run(tx) -> store_save -> publish copy
 *   -> job->done(job)  (still on the engine thread: the owner must hand
 *                       the job back to its own thread, e.g. through
 *                       h2o_multithread_send_message)
 *
 * Slow work that only reads (argon2id password checks) runs on a second,
 * "side" thread in the same way, so that a burst of logins cannot hold up
 * durable writes.
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

#include "../core/error.h"
#include "../core/model.h"
#include "../store/store.h"

struct engine;

/* What a job sees while it runs on the engine thread. */
struct engine_tx {
	struct model *model;     /* write jobs: private copy to mutate;
	                            read jobs: the current model (do not mutate) */
	struct audit_log *audit; /* write jobs: append what changed */
	struct store *store;     /* for reads such as the audit log */
	const struct actor *who;
	int64_t now; /* ms */
};

struct engine_job;
typedef int (*engine_job_fn)(struct engine_tx *tx, struct engine_job *job, struct error *err);

struct engine_job {
	/* filled by the submitter */
	engine_job_fn run;
	int is_write;      /* 1: run on a copy, persist, publish */
	int is_side;       /* 1: slow read-only work (e.g. verifying a
	                      password): runs on the side thread against
	                      the current snapshot, with tx->store NULL,
	                      so it never delays writes; refused with 503
	                      once the daemon stops. Not with is_write. */
	char who_name[96]; /* actor */
	char who_address[64];
	/* if set: slow preparation (e.g. hashing a password) that runs first
	 * on the side thread against the snapshot, with tx->store and
	 * tx->audit NULL; when it returns 0 the job goes on to run as usual */
	engine_job_fn prepare;
	void (*done)(struct engine_job *job); /* called on the engine thread */
	void *data;                           /* submitter's */
	void *data_owner;                     /* submitter's, free for use */
	void (*free_data)(void *data);        /* if set, called by the submitter's
	                                         side once the job is finished with,
	                                         also when nobody waits for it */

	/* filled by the engine */
	int rc;           /* 0 or -1 */
	struct error err; /* when rc == -1 */
	int changed;      /* a write that changed something */

	/* engine-private */
	struct engine_job *next;
	void *sync;
};

/* Loads the model from store (creating the default cluster mounted at
 * /health when there is no cluster), applies TTLs that expired while the
 * daemon was down, and starts the engine thread. The engine owns store
 * from then on, also when this fails. */
struct engine *engine_start(struct store *store, struct error *err);

/* Runs the jobs already queued, stops the thread, closes the store and
 * frees everything. Every reader must have unregistered before. */
void engine_stop(struct engine *e);

/* Queues a job; never blocks on the database. */
void engine_submit(struct engine *e, struct engine_job *job);

/* Submits a job and waits for it to finish (job->done is ignored).
 * For start-up work such as creating the first admin; never call it from
 * an event loop. Returns job->rc. */
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
