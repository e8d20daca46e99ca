/*
 * sqlite_rollouts.c - the rollouts in progress in an SQLite store
 * (store_rollouts_* in store.h), so that a daemon restart keeps them.
 *
 * The same rules as PostgreSQL's (postgres_rollouts.c), on the engine
 * thread's connection (an SQLite store has one daemon and one writer): a
 * registration decides and inserts in one write transaction, a heartbeat
 * is one UPDATE merging the verdicts with json_patch (the values are
 * strings, so the patch is a plain merge), a list one SELECT. None of
 * them touches the store version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "sqlite_internal.h"

#define COLUMNS                                                                                    \
	"cluster, id, started_by, from_address, started_at, beat_at, state, phase, "               \
	"current_node, command, message, nodes, verdicts"

/* Prepares sql and binds the n text parameters (NULL: SQL NULL). */
static sqlite3_stmt *
prepare(struct sqlite_store *db, const char *sql, int n, const char *const *params,
        const char *doing, struct error *err)
{
	sqlite3_stmt *st = NULL;
	int i, rc = sqlite3_prepare_v2(db->handle, sql, -1, &st, NULL);

	for (i = 0; rc == SQLITE_OK && i < n; i++)
		rc = sqlite_bind_text_or_null(st, i + 1, params[i]);
	if (rc != SQLITE_OK) {
		sqlite_fail(db, rc, doing, err);
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

/* Runs sql with its parameters to its end; *changes: rows changed (may
 * be NULL). */
static int
run(struct sqlite_store *db, const char *sql, int n, const char *const *params, int *changes,
    const char *doing, struct error *err)
{
	sqlite3_stmt *st = prepare(db, sql, n, params, doing, err);
	int rc;

	if (st == NULL)
		return -1;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		sqlite_fail(db, rc, doing, err);
	sqlite3_finalize(st);
	if (changes != NULL)
		*changes = sqlite3_changes(db->handle);
	return rc == SQLITE_DONE ? 0 : -1;
}

static char *
column_or_null(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return s != NULL ? xstrdup((const char *)s) : NULL;
}

static const char *
column_text(sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	return s != NULL ? (const char *)s : "";
}

static void
row_to_record(sqlite3_stmt *st, struct rollout_record *out)
{
	snprintf(out->cluster, sizeof(out->cluster), "%s", column_text(st, 0));
	snprintf(out->id, sizeof(out->id), "%s", column_text(st, 1));
	snprintf(out->started_by, sizeof(out->started_by), "%s", column_text(st, 2));
	snprintf(out->from, sizeof(out->from), "%s", column_text(st, 3));
	out->started_at = sqlite3_column_int64(st, 4);
	out->beat_at = sqlite3_column_int64(st, 5);
	snprintf(out->state, sizeof(out->state), "%s", column_text(st, 6));
	out->phase = column_or_null(st, 7);
	out->current = column_or_null(st, 8);
	out->command = column_or_null(st, 9);
	out->message = column_or_null(st, 10);
	out->nodes = xstrdup(column_text(st, 11));
	out->verdicts = xstrdup(column_text(st, 12));
}

/* Reads the rows of sql into a malloc'd array (*all, *n). */
static int
read_rows(struct sqlite_store *db, const char *sql, int n_params, const char *const *params,
          struct rollout_record **all, size_t *n, const char *doing, struct error *err)
{
	sqlite3_stmt *st = prepare(db, sql, n_params, params, doing, err);
	size_t cap = 8;
	int rc;

	*all = NULL;
	*n = 0;
	if (st == NULL)
		return -1;
	*all = xcalloc(cap, sizeof(**all));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == cap) {
			*all = xreallocarray(*all, 2 * cap, sizeof(**all));
			memset(*all + cap, 0, cap * sizeof(**all));
			cap *= 2;
		}
		row_to_record(st, &(*all)[(*n)++]);
	}
	if (rc != SQLITE_DONE)
		sqlite_fail(db, rc, doing, err);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void
free_rows(struct rollout_record *all, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		store_rollouts_free(&all[i]);
	free(all);
}

static int
make_room(struct sqlite_store *db, int max, int64_t evict_before, struct error *err)
{
	char evict[24];
	const char *q[1] = {evict};
	int n, changes;

	if (sqlite_query_int(db, "SELECT count(*) FROM rollouts", &n, "count the rollouts", err) !=
	    0)
		return -1;
	if (n < max)
		return 0;
	snprintf(evict, sizeof(evict), "%lld", (long long)evict_before);
	if (run(db,
	        "DELETE FROM rollouts WHERE rowid IN (SELECT rowid FROM rollouts WHERE state <> "
	        "'running' OR beat_at < CAST(?1 AS INTEGER) ORDER BY beat_at LIMIT 1)",
	        1, q, &changes, "make room for a rollout", err) != 0)
		return -1;
	if (changes == 0)
		return error_set(err, 503, "%d rollouts are in progress: no room for another", max);
	return 0;
}

int
sqlite_rollouts_register(void *handle, const struct rollout_record *rec, int is_force, int max,
                         int64_t evict_before, int *is_conflict, struct rollout_record *conflict,
                         struct error *err)
{
	struct sqlite_store *db = handle;
	char started_at[24], beat_at[24];
	const char *pick_q[3] = {rec->cluster, rec->id, is_force ? "1" : "0"};
	const char *id_q[2] = {rec->cluster, rec->id};
	const char *insert_q[13] = {rec->cluster, rec->id,      rec->started_by, rec->from,
	                            started_at,   beat_at,      rec->state,      rec->phase,
	                            rec->current, rec->command, rec->message,    rec->nodes,
	                            rec->verdicts};
	struct rollout_record *found = NULL;
	size_t n_found = 0;

	snprintf(started_at, sizeof(started_at), "%lld", (long long)rec->started_at);
	snprintf(beat_at, sizeof(beat_at), "%lld", (long long)rec->beat_at);
	if (sqlite_begin(db, 0, err) != 0)
		return -1;
	if (read_rows(db,
	              "SELECT " COLUMNS " FROM rollouts WHERE cluster = ?1 AND state = 'running' "
	              "AND (id = ?2 OR ?3 = '0') ORDER BY started_at DESC LIMIT 1",
	              3, pick_q, &found, &n_found, "look for a rollout in progress", err) != 0)
		goto bad;
	if (n_found > 0) {
		*conflict = found[0];
		memset(&found[0], 0, sizeof(found[0]));
		*is_conflict = 1;
		free_rows(found, n_found);
		sqlite_rollback(db);
		return 0;
	}
	free_rows(found, n_found);
	if ((is_force && run(db,
	                     "UPDATE rollouts SET state = 'interrupted', message = 'overridden by "
	                     "rollout ' || ?2 || ' (--force)' WHERE cluster = ?1 AND state = "
	                     "'running'",
	                     2, id_q, NULL, "interrupt the rollout in progress", err) != 0) ||
	    run(db, "DELETE FROM rollouts WHERE cluster = ?1 AND id = ?2", 2, id_q, NULL,
	        "replace a finished rollout", err) != 0 ||
	    make_room(db, max, evict_before, err) != 0 ||
	    run(db,
	        "INSERT INTO rollouts (" COLUMNS ") VALUES (?1, ?2, ?3, ?4, CAST(?5 AS INTEGER), "
	        "CAST(?6 AS INTEGER), ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
	        13, insert_q, NULL, "register the rollout", err) != 0 ||
	    sqlite_commit(db, err) != 0)
		goto bad;
	return 0;
bad:
	sqlite_rollback(db);
	return -1;
}

int
sqlite_rollouts_beat(void *handle, const struct rollout_record *b, struct rollout_record *out,
                     struct error *err)
{
	struct sqlite_store *db = handle;
	char beat_at[24];
	const char *q[8] = {b->cluster,  b->id,      b->phase,
	                    b->current,  b->message, b->state[0] != '\0' ? b->state : NULL,
	                    b->verdicts, beat_at};
	struct rollout_record *rows = NULL;
	size_t n = 0;
	int changes;

	snprintf(beat_at, sizeof(beat_at), "%lld", (long long)b->beat_at);
	if (run(db,
	        "UPDATE rollouts SET phase = COALESCE(?3, phase), current_node = COALESCE(?4, "
	        "current_node), message = COALESCE(?5, message), state = COALESCE(?6, state), "
	        "verdicts = CASE WHEN ?7 IS NULL THEN verdicts ELSE json_patch(verdicts, ?7) END, "
	        "beat_at = CAST(?8 AS INTEGER) WHERE cluster = ?1 AND id = ?2",
	        8, q, &changes, "record a rollout's heartbeat", err) != 0)
		return -1;
	if (changes == 0)
		return error_set_entry(err, 404, b->id, "no rollout '%s' on cluster '%s'", b->id,
		                       b->cluster);
	if (read_rows(db, "SELECT " COLUMNS " FROM rollouts WHERE cluster = ?1 AND id = ?2", 2, q,
	              &rows, &n, "read the rollout", err) != 0) {
		free_rows(rows, n);
		return -1;
	}
	if (n != 1) {
		free_rows(rows, n);
		return error_set(err, 500, "the rollout's row went away");
	}
	*out = rows[0];
	free(rows);
	return 0;
}

int
sqlite_rollouts_list(void *handle, struct rollout_record **all, size_t *n_all, struct error *err)
{
	if (read_rows(handle, "SELECT " COLUMNS " FROM rollouts ORDER BY started_at DESC", 0, NULL,
	              all, n_all, "read the rollouts", err) != 0) {
		free_rows(*all, *n_all);
		*all = NULL;
		*n_all = 0;
		return -1;
	}
	return 0;
}
