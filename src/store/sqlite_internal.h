/*
 * sqlite_internal.h - what the files of the SQLite backend share
 * (sqlite.c, sqlite_schema.c, sqlite_rows.c; see sqlite.c's head).
 * Internal to src/store/.
 */
#ifndef CM_SQLITE_INTERNAL_H
#define CM_SQLITE_INTERNAL_H

#include <sqlite3.h>

#include "store_backend.h"

/* The prepared statements, by index into sqlite_statement_sql
 * (sqlite_rows.c) and sqlite_store.statements. */
enum statement {
	ST_BEGIN_WRITE,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_UPSERT_CLUSTER,
	ST_DELETE_CLUSTER,
	ST_UPSERT_NODE,
	ST_DELETE_NODE,
	ST_UPSERT_LB,
	ST_DELETE_LB,
	ST_UPSERT_USER,
	ST_DELETE_USER,
	ST_INSERT_TOKEN,
	ST_DELETE_TOKEN,
	ST_INSERT_AUDIT,
	ST_LOAD_CLUSTERS,
	ST_LOAD_NODES,
	ST_LOAD_LBS,
	ST_LOAD_USERS,
	ST_LOAD_TOKENS,
	ST_AUDIT_ALL,
	ST_AUDIT_OF_CLUSTER,
	ST_READ_VERSION,
	ST_WRITE_VERSION,
	ST_CLEAR_AUDIT,
	ST_FIND_KEY,
	ST_REMEMBER_KEY,
	ST_FORGET_KEYS,
	ST_COUNT
};

struct sqlite_store {
	sqlite3 *handle;
	char *path;
	sqlite3_stmt *statements[ST_COUNT];
	int lock_fd; /* "<path>.lock", flock'ed; -1 before */
	int file_fd; /* the database file as opened, for fstat; -1 before */
};

extern const char *const sqlite_statement_sql[ST_COUNT];

/* sqlite.c: running statements. Each returns 0, or -1 with err filled
 * (503 for what may pass: locks, a full or failing disk; 500 else). */
int sqlite_status_for(int rc);
int sqlite_fail(struct sqlite_store *db, int rc, const char *doing, struct error *err);
int sqlite_bind_text(sqlite3_stmt *st, int i, const char *s);
int sqlite_bind_text_or_null(sqlite3_stmt *st, int i, const char *s);
void sqlite_finish(sqlite3_stmt *st);
int sqlite_bind_failed(struct sqlite_store *db, sqlite3_stmt *st, int rc, const char *doing,
                       struct error *err);
/* Steps st to its end and resets it. */
int sqlite_run(struct sqlite_store *db, sqlite3_stmt *st, const char *doing, struct error *err);
/* Runs sql (no values) once. */
int sqlite_exec(struct sqlite_store *db, const char *sql, const char *doing, struct error *err);
int sqlite_query_int(struct sqlite_store *db, const char *sql, int *out, const char *doing,
                     struct error *err);

/* sqlite.c: transactions (store_backend.h). */
int sqlite_begin(void *handle, int64_t deadline, struct error *err);
int sqlite_commit(void *handle, struct error *err);
void sqlite_rollback(void *handle);

/* sqlite_schema.c */
int sqlite_read_user_version(struct sqlite_store *db, int *version, struct error *err);
/* Version 0 must mean an empty file: not someone else's tables. */
int sqlite_check_is_ours(struct sqlite_store *db, int version, struct error *err);
/* Applies the missing steps; *version is the schema version after. */
int sqlite_migrate(struct sqlite_store *db, int *version, struct error *err);

/* sqlite_rows.c: the backend's operations (store_backend.h). */
int sqlite_upsert_cluster(void *handle, const struct cluster *c, struct error *err);
int sqlite_delete_cluster(void *handle, const char *name, struct error *err);
int sqlite_upsert_node(void *handle, const char *cluster, const struct node *n, struct error *err);
int sqlite_delete_node(void *handle, const char *cluster, const char *name, struct error *err);
int sqlite_upsert_lb(void *handle, const char *cluster, const struct lb *l, struct error *err);
int sqlite_delete_lb(void *handle, const char *cluster, const char *name, struct error *err);
int sqlite_upsert_user(void *handle, const struct user *u, struct error *err);
int sqlite_delete_user(void *handle, const char *name, struct error *err);
int sqlite_insert_token(void *handle, const struct token *t, struct error *err);
int sqlite_delete_token(void *handle, const char *id, struct error *err);
int sqlite_clear_audit(void *handle, struct error *err);
int sqlite_insert_audit(void *handle, const struct audit_entry *e, int64_t *id, struct error *err);
int sqlite_read_version(void *handle, int64_t *version, struct error *err);
int sqlite_write_version(void *handle, int64_t version, const char *change, struct error *err);
int sqlite_find_key(void *handle, const char *key, int *is_found, struct error *err);
int sqlite_remember_key(void *handle, const char *key, int64_t now, int64_t audit_id,
                        struct error *err);
int sqlite_load(void *handle, struct model *m, int64_t *version, struct error *err);
int sqlite_read_audit(void *handle, const char *cluster, int64_t limit, struct audit_log *out,
                      struct error *err);

/* sqlite_rollouts.c: the rollouts in progress (store_backend.h). */
int sqlite_rollouts_register(void *handle, const struct rollout_record *rec, int is_force, int max,
                             int64_t evict_before, int *is_conflict,
                             struct rollout_record *conflict, struct error *err);
int sqlite_rollouts_beat(void *handle, const struct rollout_record *beat,
                         struct rollout_record *out, struct error *err);
int sqlite_rollouts_list(void *handle, struct rollout_record **all, size_t *n_all,
                         struct error *err);

#endif
