/*
 * postgres_rollouts.c - the rollouts in progress, shared by every daemon
 * of the database (store_rollouts_* in store.h).
 *
 * Like the fleet's tables (postgres_fleet.c), each operation is one job
 * on the watch thread's connection (pg_side_call): a heartbeat never
 * waits for, nor delays, an operator's write on the main connection, and
 * it is no change of the model: no store version, no notification.
 *
 * A registration decides "is another one running on this cluster?" and
 * inserts in one transaction under an advisory lock of its own
 * (LOCK_ROLLOUTS), so that two daemons registering together cannot both
 * succeed; a heartbeat is one UPDATE of one row, merging the verdicts
 * with jsonb's ||; a list is one SELECT of at most the registry's bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "postgres_internal.h"

#define COLUMNS                                                                                    \
	"cluster, id, started_by, from_address, started_at, beat_at, state, phase, "               \
	"current_node, command, message, nodes, verdicts"

/* A column's text, malloc'd; NULL for SQL NULL. */
static char *
value_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : xstrdup(PQgetvalue(res, row, col));
}

/* Fills out (zeroed) from row of a SELECT or RETURNING of COLUMNS. */
static void
row_to_record(const PGresult *res, int row, struct rollout_record *out)
{
	snprintf(out->cluster, sizeof(out->cluster), "%s", PQgetvalue(res, row, 0));
	snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(res, row, 1));
	snprintf(out->started_by, sizeof(out->started_by), "%s", PQgetvalue(res, row, 2));
	snprintf(out->from, sizeof(out->from), "%s", PQgetvalue(res, row, 3));
	out->started_at = pg_value_i64(res, row, 4);
	out->beat_at = pg_value_i64(res, row, 5);
	snprintf(out->state, sizeof(out->state), "%s", PQgetvalue(res, row, 6));
	out->phase = value_or_null(res, row, 7);
	out->current = value_or_null(res, row, 8);
	out->command = value_or_null(res, row, 9);
	out->message = value_or_null(res, row, 10);
	out->nodes = xstrdup(PQgetvalue(res, row, 11));
	out->verdicts = xstrdup(PQgetvalue(res, row, 12));
}

/* --- registration ---------------------------------------------------- */

struct register_job {
	const struct rollout_record *rec;
	int is_force, max;
	int64_t evict_before;
	int *is_conflict;
	struct rollout_record *conflict;
};

/* Makes room for one more row when max are kept: deletes the oldest
 * finished or silent one. 503 when every row is a live rollout. */
static int
make_room(struct pg_store *db, int max, int64_t evict_before, struct error *err)
{
	char evict[24];
	const char *q[1] = {evict};
	PGresult *res = NULL;
	int64_t n;

	if (pg_side_exec(db, "SELECT count(*) FROM rollouts", 0, NULL, &res, "count the rollouts",
	                 err) != 0)
		return -1;
	n = pg_value_i64(res, 0, 0);
	PQclear(res);
	if (n < max)
		return 0;
	pg_i64_text(evict_before, evict, sizeof(evict));
	if (pg_side_exec(db,
	                 "DELETE FROM rollouts WHERE (cluster, id) IN (SELECT cluster, id FROM "
	                 "rollouts WHERE state <> 'running' OR beat_at < $1 ORDER BY beat_at "
	                 "LIMIT 1)",
	                 1, q, &res, "make room for a rollout", err) != 0)
		return -1;
	n = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	if (n == 0)
		return error_set(err, 503, "%d rollouts are in progress: no room for another", max);
	return 0;
}

static int
register_rollout_job(struct pg_store *db, void *arg, struct error *err)
{
	struct register_job *job = arg;
	const struct rollout_record *rec = job->rec;
	char lock[64], started_at[24], beat_at[24];
	const char *pick_q[3] = {rec->cluster, rec->id, job->is_force ? "t" : "f"};
	const char *id_q[2] = {rec->cluster, rec->id};
	const char *insert_q[13] = {rec->cluster, rec->id,      rec->started_by, rec->from,
	                            started_at,   beat_at,      rec->state,      rec->phase,
	                            rec->current, rec->command, rec->message,    rec->nodes,
	                            rec->verdicts};
	PGresult *res = NULL;

	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", LOCK_CLASS,
	         LOCK_ROLLOUTS);
	pg_i64_text(rec->started_at, started_at, sizeof(started_at));
	pg_i64_text(rec->beat_at, beat_at, sizeof(beat_at));
	if (pg_side_exec(db, "BEGIN", 0, NULL, NULL, "start registering a rollout", err) != 0)
		return -1;
	if (pg_side_exec(db, lock, 0, NULL, NULL, "lock the rollouts", err) != 0)
		goto bad;
	if (pg_side_exec(db,
	                 "SELECT " COLUMNS " FROM rollouts WHERE cluster = $1 AND state = "
	                 "'running' AND (id = $2 OR NOT $3::boolean) ORDER BY started_at DESC "
	                 "LIMIT 1",
	                 3, pick_q, &res, "look for a rollout in progress", err) != 0)
		goto bad;
	if (PQntuples(res) > 0) {
		row_to_record(res, 0, job->conflict);
		*job->is_conflict = 1;
		PQclear(res);
		return pg_side_exec(db, "ROLLBACK", 0, NULL, NULL, "end the registration", err);
	}
	PQclear(res);
	res = NULL;
	if ((job->is_force &&
	     pg_side_exec(db,
	                  "UPDATE rollouts SET state = 'interrupted', message = 'overridden by "
	                  "rollout ' || $2 || ' (--force)' WHERE cluster = $1 AND state = "
	                  "'running'",
	                  2, id_q, NULL, "interrupt the rollout in progress", err) != 0) ||
	    pg_side_exec(db, "DELETE FROM rollouts WHERE cluster = $1 AND id = $2", 2, id_q, NULL,
	                 "replace a finished rollout", err) != 0 ||
	    make_room(db, job->max, job->evict_before, err) != 0 ||
	    pg_side_exec(db,
	                 "INSERT INTO rollouts (" COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7, "
	                 "$8, $9, $10, $11, $12, $13)",
	                 13, insert_q, NULL, "register the rollout", err) != 0 ||
	    pg_side_exec(db, "COMMIT", 0, NULL, NULL, "commit the rollout", err) != 0)
		goto bad;
	return 0;
bad:
	if (db->listen_conn != NULL) {
		struct error ignored;
		pg_side_exec(db, "ROLLBACK", 0, NULL, NULL, "roll back", &ignored);
	}
	return -1;
}

int
pg_rollouts_register(void *handle, const struct rollout_record *rec, int is_force, int max,
                     int64_t evict_before, int *is_conflict, struct rollout_record *conflict,
                     struct error *err)
{
	struct register_job job = {rec, is_force, max, evict_before, is_conflict, conflict};

	if (pg_side_call(handle, register_rollout_job, &job, err) != 0) {
		store_rollouts_free(conflict);
		*is_conflict = 0;
		return -1;
	}
	return 0;
}

/* --- heartbeats and the list ----------------------------------------- */

struct beat_job {
	const struct rollout_record *beat;
	struct rollout_record *out;
};

static int
beat_job(struct pg_store *db, void *arg, struct error *err)
{
	struct beat_job *job = arg;
	const struct rollout_record *b = job->beat;
	char beat_at[24];
	const char *q[8] = {b->cluster,  b->id,      b->phase,
	                    b->current,  b->message, b->state[0] != '\0' ? b->state : NULL,
	                    b->verdicts, beat_at};
	PGresult *res = NULL;

	pg_i64_text(b->beat_at, beat_at, sizeof(beat_at));
	if (pg_side_exec(db,
	                 "UPDATE rollouts SET phase = COALESCE($3, phase), current_node = "
	                 "COALESCE($4, current_node), message = COALESCE($5, message), state = "
	                 "COALESCE($6, state), verdicts = CASE WHEN $7::text IS NULL THEN "
	                 "verdicts ELSE (verdicts::jsonb || $7::jsonb)::text END, beat_at = $8 "
	                 "WHERE cluster = $1 AND id = $2 RETURNING " COLUMNS,
	                 8, q, &res, "record a rollout's heartbeat", err) != 0)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return error_set_entry(err, 404, b->id, "no rollout '%s' on cluster '%s'", b->id,
		                       b->cluster);
	}
	row_to_record(res, 0, job->out);
	PQclear(res);
	return 0;
}

int
pg_rollouts_beat(void *handle, const struct rollout_record *beat, struct rollout_record *out,
                 struct error *err)
{
	struct beat_job job = {beat, out};

	return pg_side_call(handle, beat_job, &job, err);
}

struct list_job {
	struct rollout_record *all;
	size_t n_all;
};

static int
list_job(struct pg_store *db, void *arg, struct error *err)
{
	struct list_job *job = arg;
	PGresult *res = NULL;
	size_t i, n;

	if (pg_side_exec(db, "SELECT " COLUMNS " FROM rollouts ORDER BY started_at DESC", 0, NULL,
	                 &res, "read the rollouts", err) != 0)
		return -1;
	n = (size_t)PQntuples(res);
	job->all = xcalloc(n > 0 ? n : 1, sizeof(*job->all));
	for (i = 0; i < n; i++)
		row_to_record(res, (int)i, &job->all[i]);
	job->n_all = n;
	PQclear(res);
	return 0;
}

int
pg_rollouts_list(void *handle, struct rollout_record **all, size_t *n_all, struct error *err)
{
	struct list_job job = {NULL, 0};

	if (pg_side_call(handle, list_job, &job, err) != 0) {
		free(job.all);
		return -1;
	}
	*all = job.all;
	*n_all = job.n_all;
	return 0;
}
