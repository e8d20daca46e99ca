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
 * Snapshot lifetime (a small RCU): engine_snapshot() returns the current
 * model; a reader may use it until it next calls engine_reader_quiescent(),
 * which each worker calls once per event loop iteration. An old snapshot
 * is freed once every registered reader has passed a quiescent point
 * after it was replaced. Never keep a snapshot pointer across iterations.
 */
#ifndef CM_ENGINE_H
#define CM_ENGINE_H

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
 * frees everything. No reader may use a snapshot afterwards. */
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

/* Registers a reader thread; returns its id for engine_reader_quiescent. */
int engine_reader_register(struct engine *e);
void engine_reader_quiescent(struct engine *e, int reader_id);
/* Marks a reader as gone (it will not read again). */
void engine_reader_unregister(struct engine *e, int reader_id);

/* The current snapshot; never NULL. See the lifetime rule above. */
const struct model *engine_snapshot(struct engine *e);

#endif
