/*
 * engine_internal.h - what the engine's own files (engine.c, snapshot.c,
 * copier.c) share and nothing else includes: struct engine, and the
 * calls between the writer, the snapshots and the copier.
 */
#ifndef CM_ENGINE_INTERNAL_H
#define CM_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../store/change.h"
#include "../store/store.h"
#include "engine.h"

#define MAX_READERS 64
/* Changes notified and not applied yet; beyond, a change is dropped and
 * the store read instead (its version notification follows it). */
#define ENGINE_CHANGES_MAX 64

struct reader {
	_Atomic uint64_t seen; /* 0: offline; else the gp it last saw */
	_Atomic int is_used;   /* slot taken by a registered reader */
};

struct retired {
	struct model *model;
	uint64_t tag; /* gp right after it was replaced */
	struct retired *next;
};

struct engine {
	struct store *store;
	_Atomic(struct model *) current;
	_Atomic int64_t version;    /* the store version of current */
	_Atomic int64_t version_at; /* ms, when publish() stored it; 0: at start */
	_Atomic int has_state;      /* current came from the store or the copy */
	struct store *copy;         /* the local state copy, or NULL; the copier's */
	int is_copy_stale;          /* the copier must reload it before the next save */
	pthread_t copier;           /* writes the copy off the engine thread */
	pthread_cond_t copy_wake;
	int is_copy_due, is_copier_stopping; /* under lock */
	int has_copier;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct engine_job *head, *tail;
	int is_stopping;
	int is_side_stopped; /* the side thread has ended: it hands the
	                        engine thread no more jobs */

	struct reader readers[MAX_READERS];
	_Atomic int n_readers;           /* slots ever used: scans stop here */
	_Atomic uint64_t gp;             /* grace periods: starts at 1, ++ per swap */
	_Atomic uint64_t oldest_retired; /* tag of retired_head, 0 if none */
	_Atomic size_t n_retired;
	struct retired *retired_head, *retired_tail; /* engine thread only */
	int is_reclaim_due;                          /* under lock: a reader freed something */
	int64_t expiry_retry_at;                     /* engine thread only: ms, 0 when none */
	_Atomic int64_t seen_version;                /* the last version the store reported */
	_Atomic int64_t reloads;                     /* models read back from the store */
	int is_refresh_due;                          /* under lock: compare and reload */
	int is_reload_failing; /* engine thread: the store answers, its state cannot be read */
	int is_resync_due;     /* under lock: reload whatever the version */
	struct store_watcher watcher;
	/* other daemons' changes as their notifications carried them
	 * (store/change.h), in order, to apply before reading the store */
	struct store_change *changes[ENGINE_CHANGES_MAX]; /* under lock */
	size_t n_changes;                                 /* under lock */
	_Atomic int64_t changes_applied;                  /* without reading the store */

	/* slow work (argon2id: checking and hashing passwords) has a thread
	 * of its own so that it never holds up a durable write */
	pthread_t side_thread;
	pthread_cond_t side_wake;
	struct engine_job *side_head, *side_tail;

	/* for engine_stats */
	_Atomic uint64_t writes_committed, writes_failed;
	_Atomic int is_store_up;
	struct histogram write_latency;

	pthread_mutex_t on_change_lock; /* guards the two below */
	void (*on_change)(void *arg, const struct model *m);
	void *on_change_arg;
};

/* snapshot.c. Engine thread: publishes next (with its store version) as
 * the current snapshot and retires the one it replaces. */
void engine_publish(struct engine *e, struct model *next, int64_t version);
/* Engine thread: frees every retired model no reader can hold. */
void engine_reclaim(struct engine *e);
/* Frees every retired model, held or not: only when no reader exists. */
void engine_free_retired(struct engine *e);

/* copier.c. The copier thread's body (arg: the engine). */
void *engine_copier_main(void *arg);
/* Asks the copier to save the current snapshot; nothing without one. */
void engine_copy_due(struct engine *e);
/* Opens the local state copy under state_dir for a shared store (*copy
 * NULL otherwise, or without state_dir); -1 with err filled when it
 * cannot. */
int engine_open_state_copy(const char *state_dir, struct store *store, struct store **copy,
                           struct error *err);

#endif
