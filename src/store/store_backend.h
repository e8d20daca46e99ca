/*
 * store_backend.h - the primitive operations a storage backend provides.
 *
 * Internal to src/store/. store.c owns everything that is the same for
 * every database: it computes the difference between two models and turns
 * it into the calls below, inside begin ... commit. A backend only knows
 * how to run one primitive against its database. A store that other
 * daemons share (postgres.c and its files) also decides writes under its own lock
 * (write), watches for others' changes (watch) and shares probes,
 * heartbeats and sessions (on a connection of its own, from a thread
 * other than the writer's, concurrently with it): those entries are NULL
 * for SQLite.
 *
 * Every operation takes the backend's own handle (returned by open) and,
 * where it can fail, returns 0 or returns -1 with err filled: status 503
 * when the database is busy, locked, full or unreachable (retrying may
 * help), 500 otherwise; the sentence includes the database's own message.
 * Strings passed in are borrowed for the duration of the call.
 */
#ifndef CM_STORE_BACKEND_H
#define CM_STORE_BACKEND_H

#include <stdint.h>

#include "../core/error.h"
#include "../core/model.h"
#include "store.h"

struct store_backend {
	const char *scheme; /* "sqlite", used in store_describe */

	/* Opens spec, creating the schema or migrating it forward. Sets
	 * *schema_version to the version the database is at afterwards (0
	 * when a shared database is unreachable at open: it is migrated at
	 * the first connection). Returns the backend handle, or NULL with err
	 * filled (400 for a database this build cannot use: not a database,
	 * newer schema, a malformed spec). */
	void *(*open)(const char *spec, int *schema_version, struct error *err);
	void (*close)(void *db);
	/* The description for logs and errors, without any password; NULL:
	 * store.c uses "scheme:spec". Owned by db. */
	const char *(*describe)(void *db);

	/* One write transaction; it excludes every other writer of the
	 * database (other daemons included) until commit or rollback.
	 * Rollback is also safe after a failed commit and when no
	 * transaction is open. deadline: monotonic ms (CLOCK_MONOTONIC) by
	 * which a shared backend gives up, when earlier than its own
	 * --store-timeout from now; 0: its own. */
	int (*begin)(void *db, int64_t deadline, struct error *err);
	/* The store's change counter, inside a write transaction. */
	int (*read_version)(void *db, int64_t *version, struct error *err);
	/* Sets the change counter inside a write transaction; a shared
	 * backend also tells the other daemons at commit. */
	/* change: what the write changed (store/change.h), for the other
	 * daemons; NULL when it is to be read from the store */
	int (*write_version)(void *db, int64_t version, const char *change, struct error *err);
	int (*commit)(void *db, struct error *err);
	void (*rollback)(void *db);

	/* Insert, or overwrite path and version; never touches the nodes. */
	int (*upsert_cluster)(void *db, const struct cluster *c, struct error *err);
	/* Deletes the cluster and all its nodes and load balancers (not its
	 * audit entries). */
	int (*delete_cluster)(void *db, const char *name, struct error *err);
	int (*upsert_node)(void *db, const char *cluster, const struct node *n, struct error *err);
	int (*delete_node)(void *db, const char *cluster, const char *name, struct error *err);
	int (*upsert_lb)(void *db, const char *cluster, const struct lb *l, struct error *err);
	int (*delete_lb)(void *db, const char *cluster, const char *name, struct error *err);
	int (*upsert_user)(void *db, const struct user *u, struct error *err);
	int (*delete_user)(void *db, const char *name, struct error *err);
	int (*insert_token)(void *db, const struct token *t, struct error *err);
	int (*delete_token)(void *db, const char *id, struct error *err);
	/* Deletes every audit entry (store copy --force). */
	int (*clear_audit)(void *db, struct error *err);
	/* Appends e and sets *id to the id the database gave it. */
	int (*insert_audit)(void *db, const struct audit_entry *e, int64_t *id, struct error *err);
	/* Inside a write transaction: whether a write with this idempotency
	 * key was committed (and not forgotten yet); and, for the write
	 * under way, remembers key with its first audit id, forgetting keys
	 * older than STORE_KEY_KEEP_MS before now. */
	int (*find_key)(void *db, const char *key, int *is_found, struct error *err);
	int (*remember_key)(void *db, const char *key, int64_t now, int64_t audit_id,
	                    struct error *err);

	/* Fills the empty model m with everything stored, every array sorted
	 * in strcmp order, and *version with the change counter, all as of
	 * one moment (inside a write transaction: as the transaction sees
	 * them). On error m may be partly filled (model_free it). */
	int (*load)(void *db, struct model *m, int64_t *version, struct error *err);
	/* Optional: load, where what is unchanged since the backend's last
	 * load may be copied from have, a model at least as new as that load
	 * (the one last published). Inside a write too. */
	int (*reload)(void *db, const struct model *have, struct model *m, int64_t *version,
	              struct error *err);
	/* Appends to out the newest entries first: at most limit (a negative
	 * limit means all), of one cluster or of all when cluster is NULL. */
	int (*read_audit)(void *db, const char *cluster, int64_t limit, struct audit_log *out,
	                  struct error *err);

	/* Optional (NULL for a store only this daemon writes): watches the
	 * database for other daemons' changes on a thread of the backend's
	 * own; see store_watch in store.h. */
	int (*watch_start)(void *db, const struct store_watcher *w, struct error *err);
	void (*watch_stop)(void *db);
	/* Optional: store_share_probes (store.h). */
	int (*share_probes)(void *db, const char *daemon, const struct probe_report *mine,
	                    size_t n_mine, int64_t forget_before, int want_others,
	                    const struct probe_interest *interest, size_t n_interest,
	                    struct probe_report **others, size_t *n_others, int *is_delta,
	                    struct error *err);
	/* Optional: store_heartbeat (store.h). */
	int (*heartbeat)(void *db, const struct daemon_record *me, struct daemon_record **all,
	                 size_t *n_all, int64_t *store_version, int64_t *changed_at,
	                 struct error *err);
	/* Optional: store_share_sessions (store.h). */
	int (*share_sessions)(void *db, const struct session_record *added, size_t n_added,
	                      const struct session_record *ended, size_t n_ended, int64_t now,
	                      struct session_record **all, size_t *n_all, struct error *err);
	/* Optional: the rollouts in progress (store_rollouts_* in store.h). */
	int (*rollouts_register)(void *db, const struct rollout_record *rec, int is_force, int max,
	                         int64_t evict_before, int *is_conflict,
	                         struct rollout_record *conflict, struct error *err);
	int (*rollouts_beat)(void *db, const struct rollout_record *beat,
	                     struct rollout_record *out, struct error *err);
	int (*rollouts_list)(void *db, struct rollout_record **all, size_t *n_all,
	                     struct error *err);
	/* Optional: the state of the connection (store_health in store.h). */
	void (*health)(void *db, struct store_health *out);
};

extern const struct store_backend store_sqlite_backend;
extern const struct store_backend store_postgres_backend;
/* The deadline of PostgreSQL's operations (store_set_timeout). */
void store_postgres_set_timeout(int ms);
/* Where PostgreSQL's notifications are LISTENed for (store_set_listen_db). */
void store_postgres_set_listen_db(const char *spec);

#endif
