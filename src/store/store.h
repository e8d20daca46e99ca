/*
 * store.h - durable storage of the model behind one interface.
 *
 * One thread writes a store (the engine's; no locking inside); only the
 * fleet's exchanges (store_share_probes and the two after it) and
 * store_health may run on another. The store never decides anything about
 * the model: it loads it whole at start, and afterwards persists the
 * difference between the model before and after one change, together with
 * that change's audit entries, in a single transaction that is durable
 * (fsynced) when store_save or store_write returns 0.
 *
 * Backends: SQLite (a file path; WAL, synchronous=FULL; one daemon per
 * file) and PostgreSQL (a postgres:// URL or a libpq keyword string; any
 * number of daemons). store.c computes the difference and drives the
 * backend through the table in store_backend.h.
 *
 * Every store has a change counter, the store version: each write
 * transaction sets it one higher. A daemon remembers the version of the
 * model it holds; when another daemon wrote in between, the counters
 * differ, and store_write decides the change against the stored state
 * instead (see there).
 */
#ifndef CM_STORE_H
#define CM_STORE_H

#include <stdint.h>

#include "../core/command.h"
#include "../core/error.h"
#include "../core/model.h"
#include "../core/peer.h"

struct store;

/* The deadline of every operation on a shared store (PostgreSQL): past
 * it the operation fails with 503, the query is cancelled and the
 * connection replaced. A write's statements share one deadline, from
 * BEGIN to COMMIT. serve --store-timeout; call it before store_open (it
 * applies to every store of the process). */
#define STORE_TIMEOUT_DEFAULT_MS 3000
void store_set_timeout(int ms);
int store_timeout(void); /* ms */
/* The round trip above which a store that answers is "slow" in health:
 * a tenth of the deadline, as a write takes about ten round trips. */
int store_slow_ms(void);

/* Whether spec names a PostgreSQL database: a postgres:// or
 * postgresql:// URL, or a libpq keyword string ("host=... dbname=..."). */
int store_spec_is_postgres(const char *spec);

/* With a PostgreSQL store: LISTEN for the other daemons' changes on this
 * database (a URL or keyword string straight to PostgreSQL) instead of
 * the store's own, which may then go through a pooler in transaction
 * mode. NULL: the store's. spec is borrowed for the life of the process;
 * call it before store_open. */
void store_set_listen_db(const char *spec);

/* Opens (creating and migrating forward as needed) the store named by spec:
 * a file path for SQLite, "postgres://..." / "postgresql://..." for
 * PostgreSQL. Returns NULL and fills err on failure. */
struct store *store_open(const char *spec, struct error *err);
void store_close(struct store *s);

/* A short description for logs, e.g. "sqlite:/var/lib/cm.db". Owned by s. */
const char *store_describe(const struct store *s);

/* The schema version the store is at after store_open. */
int store_schema_version(const struct store *s);

/* Loads the whole model. The caller owns *out (model_free). An empty store
 * gives an empty model (no clusters, no users). */
int store_load(struct store *s, struct model **out, struct error *err);

/* Persists everything that differs between before and after (clusters,
 * their versions, nodes, users, tokens) and appends the audit entries, in
 * one transaction. Returns 0 only once the transaction is durably
 * committed; sets the id of each audit entry. On error nothing is saved. */
int store_save(struct store *s, const struct model *before, const struct model *after,
               struct audit_log *audit, struct error *err);

/* Reads the newest audit entries first, at most limit of them, for one
 * cluster (or all when cluster is NULL). Entries are appended to *out. */
int store_read_audit(struct store *s, const char *cluster, int64_t limit, struct audit_log *out,
                     struct error *err);

/* Like store_load, and *version is the store version of that model. */
int store_load_at(struct store *s, struct model **out, int64_t *version, struct error *err);
/* Like store_load_at, for a daemon that has published have, a model
 * read from this store (or written to it) since its last load: a shared
 * store reads again only the clusters written since that load and copies
 * the others from have (the nodes share their text). */
int store_reload(struct store *s, const struct model *have, struct model **out, int64_t *version,
                 struct error *err);

/* One change, decided against the stored state under the store's write
 * lock: store_write begins a write transaction (every other writer of
 * the database, other daemons included, waits), reads the store version,
 * and when it differs from known_version loads the model as stored now
 * (in the same transaction) in place of known. decide then changes a copy
 * of that model, appending audit entries; when it changed something
 * (audit->n > 0) the difference is saved with version + 1 and committed.
 * decide may be run against a model other than the caller's, so it must
 * decide from its arguments and the model it is given, nothing else. */
struct store_write {
	/* in */
	const struct model *known; /* the caller's model ... */
	int64_t known_version;     /* ... and its store version */
	int (*decide)(void *arg, struct model *m, struct audit_log *audit, struct error *err);
	void *arg;
	struct audit_log *audit; /* filled by decide; ids set at commit */
	/* NULL, or the client's Idempotency-Key (STORE_KEY_MAX printable
	 * ASCII characters at most, else 400): a write whose key the store
	 * remembers is not decided again (is_replayed) */
	const char *idempotency_key;
	/* monotonic ms (CLOCK_MONOTONIC) by which a shared store gives up,
	 * when earlier than its --store-timeout from BEGIN: the deadline
	 * counted from when the client asked, so that a write queued behind
	 * others is answered within it too; 0: from BEGIN */
	int64_t deadline;
	/* out, also on error: the model as stored now, newer than known (the
	 * caller owns it and should publish it), or NULL when known is still
	 * what is stored */
	struct model *model;
	int64_t version; /* the store version of model */
	int is_changed;  /* a change was committed */
	int is_replayed; /* the key's write was committed before: nothing done */
};
/* An idempotency key: 1 to STORE_KEY_MAX characters from '!' to '~'. The
 * store remembers the key of a write that changed something for
 * STORE_KEY_KEEP_MS (24 h): a retry within that time is answered as
 * applied and applied at most once. */
#define STORE_KEY_MAX COMMAND_KEY_MAX
#define STORE_KEY_KEEP_MS (24 * 3600 * 1000LL)
int store_key_is_valid(const char *key);
/* Returns 0 when decide returned 0 (committed, or nothing to commit),
 * -1 with err filled when decide refused (its error, nothing written) or
 * the store failed (503 when the database is unreachable or busy: nothing
 * was changed). */
int store_write(struct store *s, struct store_write *w, struct error *err);

/* store_save for a copy kept by this daemon (the local state copy):
 * writes the difference and sets the store version to version. */
int store_save_at(struct store *s, const struct model *before, const struct model *after,
                  int64_t version, struct error *err);

/* Copies everything in from (clusters, nodes with status and TTL, users,
 * tokens, the audit log, oldest first so that ids keep their order) into
 * to, in one transaction of to. A destination that holds anything
 * (clusters, users, tokens or audit entries) is refused (409) unless
 * force, which replaces what it holds. The destination's version ends
 * above both stores' versions, so daemons running on it reload. Counts
 * what was copied into *n_nodes and *n_audit (may be NULL). */
int store_copy(struct store *from, struct store *to, int force, size_t *n_nodes, size_t *n_audit,
               struct error *err);

/* --- several daemons (PostgreSQL) ------------------------------------ */

/* Whether other daemons may write this store. */
int store_is_shared(const struct store *s);

struct store_health {
	int is_up;             /* the store answered the last time it was tried */
	int64_t down_since;    /* ms since the epoch it stopped answering; 0 when up */
	int64_t round_trip_ms; /* of the last check (or of the one under way, when longer) */
	int is_slow;           /* up, but round_trip_ms is above store_slow_ms() */
};
/* Any thread. An unshared store is always up. */
void store_health(struct store *s, struct store_health *out);

/* What a shared store tells the daemon, on a thread of the store's own
 * (keep the callbacks short and non-blocking). */
struct store_watcher {
	/* The stored version is version: after a change committed by any
	 * daemon, after each (re)connection, and every few seconds. */
	void (*on_version)(void *arg, int64_t version);
	/* What a write changed (store/change.h: a payload to decode), just
	 * before its version. */
	void (*on_change)(void *arg, const char *payload);
	/* The database became reachable (1) or unreachable (0). */
	void (*on_state)(void *arg, int is_up);
	void *arg;
};
/* Starts watching (a no-op returning 0 for an unshared store). The
 * watcher must stay valid until store_unwatch, which waits until no
 * callback runs any more; store_close unwatches too. */
int store_watch(struct store *s, const struct store_watcher *w, struct error *err);
void store_unwatch(struct store *s);

/* Writes this daemon's probe reports (mine, all with daemon == daemon),
 * forgets its own reports last seen before forget_before, and, when
 * want_others, reads the other daemons' reports seen since then of the
 * nodes in interest (n_interest; none: nothing is read) into a
 * malloc'd *others (the caller frees it; no cap): every one (*is_delta
 * 0), or (*is_delta 1) those written since this daemon's last read and
 * every one of the entries that are new, to merge into what it has
 * (some may be the same as before; the caller ages out the ones last
 * seen before forget_before); or leaves *others NULL when they are
 * unchanged since that read and no entry is new (the caller keeps what
 * it has). Not under
 * the write lock and not a change: no version, no notification. A no-op
 * for an unshared store.
 *
 * These three may run on a thread other than the one that writes,
 * concurrently with it, one at a time: a shared store runs them on a
 * connection of their own (PostgreSQL: the watch thread's), so that they
 * never delay a write. Each exchange is one statement per batch. */
int store_share_probes(struct store *s, const char *daemon, const struct probe_report *mine,
                       size_t n_mine, int64_t forget_before, int want_others,
                       const struct probe_interest *interest, size_t n_interest,
                       struct probe_report **others, size_t *n_others, int *is_delta,
                       struct error *err);

/* Registers this daemon (me) or refreshes its heartbeat, and reads every
 * registered daemon (sorted by id; a malloc'd *all the
 * caller frees) with the store version and when it last changed (ms).
 * An unshared store has one daemon: the fleet is me alone. */
int store_heartbeat(struct store *s, const struct daemon_record *me, struct daemon_record **all,
                    size_t *n_all, int64_t *store_version, int64_t *changed_at, struct error *err);

/* Adds the sessions this daemon started, removes those it ended (by
 * id_hash) and those expired at now, and reads every live session of the
 * store (all of them; a malloc'd *all the caller frees), or leaves *all
 * NULL when nothing was written and the store says they are unchanged
 * since the last read (store_share_probes's version, read just before,
 * counts the sessions' changes too). An unshared store shares nothing:
 * *all is NULL and *n_all 0. */
int store_share_sessions(struct store *s, const struct session_record *added, size_t n_added,
                         const struct session_record *ended, size_t n_ended, int64_t now,
                         struct session_record **all, size_t *n_all, struct error *err);

/* --- rollouts in progress ---------------------------------------------- */

/* The registry of rollouts in progress (http/rollouts.c), which every
 * daemon of a shared store sees. They are not changes of the model: no
 * store version, no notification, never under the write lock. A shared
 * store runs them on its connection for the fleet (PostgreSQL: the watch
 * thread's), from any thread, like the fleet's exchanges; an unshared
 * one (SQLite) on the thread that writes it, like everything else.
 *
 * store_rollouts_register inserts rec unless a rollout of the same
 * cluster is running (state "running") with the same id, or with any id
 * when !is_force: then *conflict gets the newest such one (the caller
 * frees it with store_rollouts_free) and nothing changes. With is_force
 * the running ones are marked "interrupted", "overridden by rollout ID
 * (--force)". At most max rows are kept over every cluster: the oldest
 * finished one, or silent since before evict_before (ms), makes room;
 * when none can, 503 and nothing changes. Returns 0 (registered, or
 * *is_conflict set) or -1 with err. */
int store_rollouts_register(struct store *s, const struct rollout_record *rec, int is_force,
                            int max, int64_t evict_before, int *is_conflict,
                            struct rollout_record *conflict, struct error *err);
/* A heartbeat of rollout (cluster, id): sets beat_at, and each of
 * phase, current, message and state that is not NULL; merges verdicts (a
 * JSON object as text, NULL: none) into the stored ones. *out gets the
 * row as it is now (store_rollouts_free); 404 when there is no such
 * rollout. */
int store_rollouts_beat(struct store *s, const struct rollout_record *beat,
                        struct rollout_record *out, struct error *err);
/* Every registered rollout of every cluster, newest first (a malloc'd
 * *all of *n_all records; store_rollouts_free each, then free *all). */
int store_rollouts_list(struct store *s, struct rollout_record **all, size_t *n_all,
                        struct error *err);
/* Frees what the record's pointers hold (not the record itself). */
void store_rollouts_free(struct rollout_record *r);

#endif
