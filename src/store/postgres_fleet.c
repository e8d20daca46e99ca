/*
 * postgres_fleet.c - the fleet's shared tables: observed probes,
 * heartbeats and web sessions.
 *
 * Each exchange is one job on the watch thread's connection
 * (pg_side_call), never on the main connection that operators' writes
 * take, and each batch is one statement whatever its size (pg_share.c
 * encodes the arrays). Nothing is capped: what a read asks for all
 * arrives, the other daemons' probes through a cursor a page at a time,
 * so that no single result holds more than a page.
 *
 * Only the reports of the nodes this daemon is asked about are read
 * (their list comes with each exchange: observe/interest.h), new ones
 * whole, and the others only when the table changed: every exchange that wrote or forgot a report
 * bumps probes_version in the same transaction, and a daemon whose last read saw the current
 * version is told "unchanged" (*others NULL). A read then asks only for the reports written since
 * the last one: each row carries the id of the transaction that wrote it (xid, step 14), and a
 * transaction the last read could not see has an id at or above the
 * xmin of that read's snapshot, taken before it. Some rows are read
 * twice (transactions that were running then), none is missed; the
 * caller merges them (*is_delta) and ages out what the owner forgot by
 * the same rule (last_at before forget_before). Everything is read again
 * the first time on a connection (perhaps to another server after a
 * failover, whose transaction ids are not the last one's) and every
 * PG_PROBES_FULL_READ_MS, a safety net.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "pg_share.h"
#include "postgres_internal.h"

#define REMOTE_PROBES_PAGE 16384
#define BEAT_VERSION_FRESH_MS 1000 /* the heartbeat's probes_version, for the same round */
#define PG_PROBES_FULL_READ_MS 300000
/* Expired sessions (12 h) and this daemon's reports older than
 * OBSERVE_FORGET_MS (10 min) are deleted once a minute: a reader ages
 * them out by the same rules meanwhile, so a quiet daemon spares the
 * statements. */
#define PG_SESSIONS_EXPIRE_EVERY_MS 60000
#define PG_PROBES_FORGET_EVERY_MS 60000

static void
copy_text(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}

/* Ends the side job's transaction after a failure, if the connection
 * still stands. */
static void
side_rollback(struct pg_store *db)
{
	struct error ignored;

	if (db->listen_conn != NULL)
		pg_side_exec(db, "ROLLBACK", 0, NULL, NULL, "roll back", &ignored);
}

/* --- observed probes ------------------------------------------------- */

struct probes_job {
	const char *daemon;
	const struct probe_report *mine;
	size_t n_mine;
	int64_t forget_before;
	int want_others;
	const struct probe_interest *interest;
	size_t n_interest;
	struct probe_report *others; /* out */
	size_t n_others;
	int is_delta;  /* out: others are the reports written since the last read */
	char xmin[24]; /* out: this read's snapshot's xmin */
};

/* Appends the rows of one page to *all (*n used, *cap allocated). */
static void
append_reports(PGresult *res, struct probe_report **all, size_t *n, size_t *cap)
{
	size_t i, rows = (size_t)PQntuples(res);

	if (*n + rows > *cap) {
		*cap = *n + rows;
		*all = xreallocarray(*all, *cap > 0 ? *cap : 1, sizeof(**all));
	}
	for (i = 0; i < rows; i++) {
		struct probe_report *r = &(*all)[*n + i];
		memset(r, 0, sizeof(*r));
		copy_text(r->daemon, sizeof(r->daemon), PQgetvalue(res, (int)i, 0));
		copy_text(r->cluster, sizeof(r->cluster), PQgetvalue(res, (int)i, 1));
		copy_text(r->node, sizeof(r->node), PQgetvalue(res, (int)i, 2));
		r->protocol = (int)pg_value_i64(res, (int)i, 3);
		copy_text(r->address, sizeof(r->address), PQgetvalue(res, (int)i, 4));
		copy_text(r->user_agent, sizeof(r->user_agent), PQgetvalue(res, (int)i, 5));
		r->has_user_agent = pg_value_i64(res, (int)i, 6) != 0;
		r->first_at = pg_value_i64(res, (int)i, 7);
		r->last_at = pg_value_i64(res, (int)i, 8);
		r->changed_at = pg_value_i64(res, (int)i, 9);
		r->last_answer = (int)pg_value_i64(res, (int)i, 10);
		r->consecutive = (uint32_t)pg_value_i64(res, (int)i, 11);
		r->since_change = (uint32_t)pg_value_i64(res, (int)i, 12);
		copy_text(r->lb, sizeof(r->lb), PQgetvalue(res, (int)i, 13));
		r->interval_ms = pg_value_i64(res, (int)i, 14);
	}
	*n += rows;
}

/* Reads the other daemons' live reports of the nodes of interest, in the
 * open transaction: every one, or (job->is_delta) those written by
 * transactions at or after db->probes_seen_xmin and every one of the new
 * entries. Node entries and whole clusters are two halves of one cursor,
 * each found through the index by node (step 16); an entry is never both
 * (interest.c). job->xmin gets the xmin of a snapshot taken before the
 * cursor's, for the next read. */
static int
read_others(struct pg_store *db, const char *daemon, const char *forget_before,
            struct probes_job *job, struct error *err)
{
	static const char columns[] =
	    "SELECT p.daemon, p.cluster, p.node, p.protocol, p.address, p.user_agent, "
	    "p.has_user_agent, p.first_at, p.last_at, p.changed_at, p.last_answer, p.consecutive, "
	    "p.since_change, p.lb, p.interval_ms FROM ";
	static const char by_node[] =
	    "unnest($3::text[], $4::text[], $5::bool[]) AS w(c, n, is_new) JOIN probes p "
	    "ON p.cluster = w.c AND p.node = w.n";
	static const char by_cluster[] =
	    "unnest($6::text[], $7::bool[]) AS w(c, is_new) JOIN probes p ON p.cluster = w.c";
	static const char where[] = " WHERE p.daemon <> $1 AND p.last_at >= $2";
	static const char changed[] = " AND (w.is_new OR p.xid >= $8::xid8)";
	char *arrays[PG_SHARE_INTEREST_COLUMNS];
	const char *p[8] = {daemon, forget_before};
	PGresult *res = NULL;
	size_t cap = 0, rows;
	char fetch[48], declare[2 * (sizeof(columns) + sizeof(where) + sizeof(changed)) +
	                        sizeof(by_node) + sizeof(by_cluster) + 64];
	int rc, c;

	if (pg_side_exec(db, "SELECT pg_snapshot_xmin(pg_current_snapshot())", 0, NULL, &res,
	                 "read the other daemons' observed probes", err) != 0)
		return -1;
	copy_text(job->xmin, sizeof(job->xmin), PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "0");
	PQclear(res);
	snprintf(declare, sizeof(declare),
	         "DECLARE others NO SCROLL CURSOR FOR %s%s%s%s UNION ALL %s%s%s%s", columns,
	         by_node, where, job->is_delta ? changed : "", columns, by_cluster, where,
	         job->is_delta ? changed : "");
	snprintf(fetch, sizeof(fetch), "FETCH %d FROM others", REMOTE_PROBES_PAGE);
	pg_share_interest_arrays(job->interest, job->n_interest, arrays);
	for (c = 0; c < PG_SHARE_INTEREST_COLUMNS; c++)
		p[2 + c] = arrays[c];
	p[7] = db->probes_seen_xmin;
	rc = pg_side_exec(db, declare, job->is_delta ? 8 : 7, p, NULL,
	                  "read the other daemons' observed probes", err);
	pg_share_free_params(arrays, PG_SHARE_INTEREST_COLUMNS);
	if (rc != 0)
		return -1;
	do {
		if (pg_side_exec(db, fetch, 0, NULL, &res,
		                 "read the other daemons' observed probes", err) != 0)
			return -1;
		rows = (size_t)PQntuples(res);
		append_reports(res, &job->others, &job->n_others, &cap);
		PQclear(res);
	} while (rows == REMOTE_PROBES_PAGE);
	return 0;
}

/* The statements of every round, prepared once per connection
 * (pg_side_exec_kept). */
static const char probes_version_sql[] = "SELECT version FROM probes_version WHERE id = 1";
static const char count_probes_sql[] =
    "UPDATE probes_version SET version = version + 1 WHERE id = 1";
static const char forget_probes_sql[] = "DELETE FROM probes WHERE daemon = $1 AND last_at < $2";

/* The probes_version (step 9); -1 on error. Read before the reports (and
 * outside their transaction), so that a change committed in between
 * makes the next round read again rather than be missed. */
static int
read_probes_version(struct pg_store *db, int64_t *version, struct error *err)
{
	PGresult *res = NULL;
	int rc = -1;

	if (pg_side_exec_kept(db, probes_version_sql, 0, NULL, &res,
	                      "read the observed probes' version", err) != 0)
		return -1;
	if (PQntuples(res) == 1 && pg_parse_i64(PQgetvalue(res, 0, 0), version) == 0)
		rc = 0;
	else
		error_set(err, 500, "the PostgreSQL store %s has no probes_version row",
		          db->description);
	PQclear(res);
	return rc;
}

/* Is an entry never read? Then it is read whatever the version says. */
static int
interest_has_new(const struct probe_interest *in, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (in[i].is_new)
			return 1;
	return 0;
}

static int
share_probes_job(struct pg_store *db, void *arg, struct error *err)
{
	struct probes_job *job = arg;
	char before[24];
	const char *p[2] = {job->daemon, before};
	PGresult *res = NULL;
	int64_t version = 0, now = time_monotonic_ms();
	int is_changed = job->n_mine > 0, is_read_due = 0, is_forget_due;

	pg_i64_text(job->forget_before, before, sizeof(before));
	/* Read by this round's heartbeat: not one of a round whose exchange
	 * never ran (its call failed), which would be stale by now. */
	if (job->want_others && db->has_beat_probes_version &&
	    now - db->beat_probes_version_at < BEAT_VERSION_FRESH_MS) {
		version = db->beat_probes_version;
	} else if (job->want_others && read_probes_version(db, &version, err) != 0) {
		db->has_beat_probes_version = 0;
		return -1;
	}
	db->has_beat_probes_version = 0;
	if (job->want_others) {
		db->fleet_version = version;
		job->is_delta = db->probes_full_read_at != 0 &&
		                now - db->probes_full_read_at < PG_PROBES_FULL_READ_MS;
		is_read_due =
		    job->n_interest > 0 && (!job->is_delta || version != db->probes_seen_version ||
		                            interest_has_new(job->interest, job->n_interest));
	}
	is_forget_due = now - db->probes_forgot_at >= PG_PROBES_FORGET_EVERY_MS;
	if (job->n_mine == 0 && !is_read_due && !is_forget_due)
		return 0; /* the usual idle round: no statement (the heartbeat read the version) */
	if (pg_side_exec(db, "BEGIN", 0, NULL, NULL, "start sharing observed probes", err) != 0)
		return -1;
	if (job->n_mine > 0) {
		char *arrays[PG_SHARE_PROBE_COLUMNS];
		int rc;

		pg_share_probe_arrays(job->mine, job->n_mine, arrays);
		rc = pg_side_exec_kept(db, pg_share_put_probes_sql, PG_SHARE_PROBE_COLUMNS,
		                       (const char *const *)arrays, NULL, "share observed probes",
		                       err);
		pg_share_free_params(arrays, PG_SHARE_PROBE_COLUMNS);
		if (rc != 0)
			goto bad;
	}
	if (is_forget_due) {
		if (pg_side_exec_kept(db, forget_probes_sql, 2, p, &res,
		                      "forget old observed probes", err) != 0)
			goto bad;
		is_changed |= strcmp(PQcmdTuples(res), "0") != 0;
		PQclear(res);
	}
	if (is_read_due && read_others(db, job->daemon, before, job, err) != 0)
		goto bad;
	/* Last: the counter's row lock is held until COMMIT, and every
	 * daemon's exchange takes it. */
	if (is_changed && pg_side_exec_kept(db, count_probes_sql, 0, NULL, NULL,
	                                    "count the observed probes' change", err) != 0)
		goto bad;
	if (pg_side_exec(db, "COMMIT", 0, NULL, NULL, "commit the observed probes", err) != 0)
		goto bad;
	if (is_forget_due)
		db->probes_forgot_at = now;
	if (is_read_due) {
		db->probes_seen_version = version;
		db->probes_read_at = now;
		if (!job->is_delta)
			db->probes_full_read_at = now;
		copy_text(db->probes_seen_xmin, sizeof(db->probes_seen_xmin), job->xmin);
		if (job->others == NULL)
			job->others = xcalloc(1, sizeof(*job->others));
	}
	return 0;
bad:
	side_rollback(db);
	return -1;
}

int
pg_share_probes(void *handle, const char *daemon, const struct probe_report *mine, size_t n_mine,
                int64_t forget_before, int want_others, const struct probe_interest *interest,
                size_t n_interest, struct probe_report **others, size_t *n_others, int *is_delta,
                struct error *err)
{
	struct probes_job job = {
	    daemon, mine, n_mine, forget_before, want_others, interest, n_interest, NULL, 0, 0, ""};

	if (pg_side_call(handle, share_probes_job, &job, err) != 0) {
		free(job.others);
		return -1;
	}
	*others = job.others; /* NULL: unchanged since the last read */
	*n_others = job.n_others;
	*is_delta = job.is_delta;
	return 0;
}

/* --- heartbeats ------------------------------------------------------ */

struct heartbeat_job {
	const struct daemon_record *me;
	struct daemon_record *all; /* out */
	size_t n_all;
	int64_t store_version, changed_at;
};

/* One statement: this daemon's row is upserted and every row read back
 * with the store version and probes_version (the upserted row from
 * RETURNING, as the same statement's snapshot does not see it). It is
 * the watch thread's version check too (pg_watch_version_read), and the
 * probes exchange of the same round takes probes_version from it: a
 * quiet daemon makes one statement every 2 s. */
static const char heartbeat_sql[] =
    "WITH me AS (INSERT INTO daemons (id, host, listen, version, started_at, heartbeat_at) "
    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET "
    "host = excluded.host, listen = excluded.listen, version = excluded.version, "
    "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at "
    "RETURNING id, host, listen, version, started_at, heartbeat_at) "
    "SELECT d.id, d.host, d.listen, d.version, d.started_at, d.heartbeat_at, "
    "v.version, v.changed_at, pv.version FROM (SELECT id, host, listen, version, started_at, "
    "heartbeat_at "
    "FROM daemons WHERE id <> $1 UNION ALL SELECT * FROM me) d "
    "LEFT JOIN store_version v ON v.id = 1 LEFT JOIN probes_version pv ON pv.id = 1 "
    "ORDER BY d.id COLLATE \"C\"";

static int
heartbeat_job(struct pg_store *db, void *arg, struct error *err)
{
	struct heartbeat_job *job = arg;
	const struct daemon_record *me = job->me;
	char version[24], started[24], beat[24];
	const char *p[6] = {me->id, me->host, me->listen, version, started, beat};
	PGresult *res = NULL;
	size_t i, n;
	int64_t sent = time_monotonic_ms();
	int rc;

	pg_i64_text(me->version, version, sizeof(version));
	pg_i64_text(me->started_at, started, sizeof(started));
	pg_i64_text(me->heartbeat_at, beat, sizeof(beat));
	atomic_store(&db->check_started, sent); /* as the watch's check: health sees it */
	rc = pg_side_exec_kept(db, heartbeat_sql, 6, p, &res, "register this daemon", err);
	atomic_store(&db->check_started, 0);
	if (rc != 0)
		return -1;
	n = (size_t)PQntuples(res);
	job->all = xcalloc(n > 0 ? n : 1, sizeof(*job->all));
	for (i = 0; i < n; i++) {
		struct daemon_record *d = &job->all[i];
		copy_text(d->id, sizeof(d->id), PQgetvalue(res, (int)i, 0));
		copy_text(d->host, sizeof(d->host), PQgetvalue(res, (int)i, 1));
		copy_text(d->listen, sizeof(d->listen), PQgetvalue(res, (int)i, 2));
		d->version = pg_value_i64(res, (int)i, 3);
		d->started_at = pg_value_i64(res, (int)i, 4);
		d->heartbeat_at = pg_value_i64(res, (int)i, 5);
	}
	job->n_all = n;
	job->store_version = n > 0 ? pg_value_i64(res, 0, 6) : 0;
	job->changed_at = n > 0 ? pg_value_i64(res, 0, 7) : 0;
	/* n is at least 1 (this daemon's row) when the store is whole */
	if (n > 0 && !PQgetisnull(res, 0, 6) && !PQgetisnull(res, 0, 8)) {
		db->beat_probes_version = pg_value_i64(res, 0, 8);
		db->beat_probes_version_at = time_monotonic_ms();
		db->has_beat_probes_version = 1;
		pg_watch_version_read(db, sent, job->store_version);
	}
	PQclear(res);
	return 0;
}

int
pg_heartbeat(void *handle, const struct daemon_record *me, struct daemon_record **all,
             size_t *n_all, int64_t *store_version, int64_t *changed_at, struct error *err)
{
	struct heartbeat_job job = {.me = me};

	if (pg_side_call(handle, heartbeat_job, &job, err) != 0) {
		free(job.all);
		return -1;
	}
	*all = job.all;
	*n_all = job.n_all;
	*store_version = job.store_version;
	*changed_at = job.changed_at;
	return 0;
}

/* --- web sessions ---------------------------------------------------- */

struct sessions_job {
	const struct session_record *added, *ended;
	size_t n_added, n_ended;
	int64_t now;
	struct session_record *all; /* out */
	size_t n_all;
};

/* The other way of sodium_bin2hex; -1 unless in is exactly 64 hex digits. */
static int
unhex32(const char *in, unsigned char out[32])
{
	size_t len = 0;
	const char *end;

	if (strlen(in) != 64 || sodium_hex2bin(out, 32, in, 64, NULL, &len, &end) != 0 ||
	    len != 32 || *end != '\0')
		return -1;
	return 0;
}

static const char sessions_read_sql[] =
    "SELECT id_hash, name, tag, expires_at, kind, login, issuer, subject, email, group_names, "
    "id_token FROM sessions";

/* A column of the read that a record points to (NULL when empty). */
static const char *
sessions_text(PGresult *res, int row, int column, char **room)
{
	const char *v = PQgetvalue(res, row, column);
	size_t len = strlen(v);
	char *at = *room;

	if (len == 0)
		return NULL;
	memcpy(at, v, len + 1);
	*room += len + 1;
	return at;
}

/* The live sessions of res as one malloc'd block: the records, then the
 * groups and ID tokens they point to, so that one free releases all. */
static void
sessions_read(struct sessions_job *job, PGresult *res)
{
	size_t i, n = (size_t)PQntuples(res), n_ok = 0, room_size = 0;
	char *room;

	for (i = 0; i < n; i++)
		room_size +=
		    strlen(PQgetvalue(res, (int)i, 9)) + strlen(PQgetvalue(res, (int)i, 10)) + 2;
	job->all = xcalloc(1, (n > 0 ? n : 1) * sizeof(*job->all) + room_size);
	room = (char *)(job->all + (n > 0 ? n : 1));
	for (i = 0; i < n; i++) {
		struct session_record *r = &job->all[n_ok];
		int64_t kind = pg_value_i64(res, (int)i, 4);
		if (pg_value_i64(res, (int)i, 3) <= job->now)
			continue; /* expired, not deleted yet */
		if (unhex32(PQgetvalue(res, (int)i, 0), r->id_hash) != 0 ||
		    unhex32(PQgetvalue(res, (int)i, 2), r->tag) != 0 ||
		    kind < SESSION_RECORD_PASSWORD || kind > SESSION_RECORD_PROXY) {
			memset(r, 0, sizeof(*r));
			continue; /* not ours to trust */
		}
		copy_text(r->user, sizeof(r->user), PQgetvalue(res, (int)i, 1));
		r->expires_at = pg_value_i64(res, (int)i, 3);
		r->kind = (int)kind;
		copy_text(r->name, sizeof(r->name), PQgetvalue(res, (int)i, 5));
		copy_text(r->issuer, sizeof(r->issuer), PQgetvalue(res, (int)i, 6));
		copy_text(r->subject, sizeof(r->subject), PQgetvalue(res, (int)i, 7));
		copy_text(r->email, sizeof(r->email), PQgetvalue(res, (int)i, 8));
		r->groups = sessions_text(res, (int)i, 9, &room);
		r->id_token = sessions_text(res, (int)i, 10, &room);
		n_ok++;
	}
	job->n_all = n_ok;
}

/* Runs the batch statement sql on the n sessions. */
static int
put_sessions(struct pg_store *db, const char *sql, const struct session_record *r, size_t n,
             int is_ids_only, const char *doing, struct error *err)
{
	char *arrays[PG_SHARE_SESSION_COLUMNS];
	int rc;

	if (n == 0)
		return 0;
	pg_share_session_arrays(r, n, is_ids_only, arrays);
	rc = pg_side_exec(db, sql, is_ids_only ? 1 : PG_SHARE_SESSION_COLUMNS,
	                  (const char *const *)arrays, NULL, doing, err);
	pg_share_free_params(arrays, PG_SHARE_SESSION_COLUMNS);
	return rc;
}

static int
share_sessions_job(struct pg_store *db, void *arg, struct error *err)
{
	struct sessions_job *job = arg;
	char now[24];
	const char *q[1] = {now};
	PGresult *res = NULL;
	int is_expiry_due, is_changed;

	pg_i64_text(job->now, now, sizeof(now));
	is_expiry_due = job->now - db->sessions_expired_at >= PG_SESSIONS_EXPIRE_EVERY_MS;
	if (job->n_added == 0 && job->n_ended == 0 && !is_expiry_due) {
		/* The usual round: nothing to write, and nothing to read unless
		 * the version moved (no statement), else one statement. */
		if (db->sessions_seen_version == db->fleet_version)
			return 0;
		db->sessions_seen_version = db->fleet_version;
		if (pg_side_exec(db, sessions_read_sql, 0, NULL, &res, "read the sessions", err) !=
		    0) {
			db->sessions_seen_version = -1;
			return -1;
		}
		goto read;
	}
	if (pg_side_exec(db, "BEGIN", 0, NULL, NULL, "start sharing sessions", err) != 0)
		return -1;
	if (put_sessions(db, pg_share_put_sessions_sql, job->added, job->n_added, 0,
	                 "share the sessions started", err) != 0 ||
	    put_sessions(db, pg_share_end_sessions_sql, job->ended, job->n_ended, 1, "end sessions",
	                 err) != 0)
		goto bad;
	is_changed = job->n_added > 0 || job->n_ended > 0;
	if (is_expiry_due) {
		if (pg_side_exec(db, "DELETE FROM sessions WHERE expires_at <= $1", 1, q, &res,
		                 "forget expired sessions", err) != 0)
			goto bad;
		is_changed |= strcmp(PQcmdTuples(res), "0") != 0;
		PQclear(res);
		res = NULL;
	}
	/* Last, like the probes' exchange: the counter's row lock is held
	 * until COMMIT. */
	if ((is_changed && pg_side_exec_kept(db, count_probes_sql, 0, NULL, NULL,
	                                     "count the sessions' change", err) != 0) ||
	    pg_side_exec(db, sessions_read_sql, 0, NULL, &res, "read the sessions", err) != 0 ||
	    pg_side_exec(db, "COMMIT", 0, NULL, NULL, "commit the sessions", err) != 0)
		goto bad;
	if (is_expiry_due)
		db->sessions_expired_at = job->now;
	/* what was read is as of this version, or later (our own bump) */
	db->sessions_seen_version = db->fleet_version;
read:
	sessions_read(job, res);
	PQclear(res);
	return 0;
bad:
	PQclear(res);
	db->sessions_seen_version = -1;
	side_rollback(db);
	return -1;
}

int
pg_share_sessions(void *handle, const struct session_record *added, size_t n_added,
                  const struct session_record *ended, size_t n_ended, int64_t now,
                  struct session_record **all, size_t *n_all, struct error *err)
{
	struct sessions_job job = {added, ended, n_added, n_ended, now, NULL, 0};

	if (pg_side_call(handle, share_sessions_job, &job, err) != 0) {
		free(job.all);
		return -1;
	}
	*all = job.all;
	*n_all = job.n_all;
	return 0;
}
