/*
 * postgres.c - the PostgreSQL backend of the store (see store_backend.h).
 *
 * Several daemons share one database, so this backend adds to SQLite's
 * three things: a writer lock that spans daemons, change notification,
 * and living with a database that comes and goes.
 *
 * Two connections (postgres_internal.h names the files). The engine
 * thread's ("main", this file) runs every read and write of the model,
 * one libpq call at a time: the engine is the only thread that waits on
 * it, and the probe path never touches the store. The watch thread's
 * (postgres_watch.c) LISTENs for the other daemons' changes and carries
 * the fleet's telemetry (observed probes, heartbeats, sessions), so that
 * operators' writes never queue behind it.
 *
 * Deadlines. Every operation ends within store_set_timeout's deadline
 * (one per write, BEGIN to COMMIT), through postgres_conn.c; a COMMIT
 * left without answer is decided at the next connection from its audit
 * id (decide_unsure_commit).
 *
 * Writes. begin runs BEGIN and takes a transaction-scoped advisory lock
 * (pg_advisory_xact_lock): every writer of the database, whichever daemon
 * it runs in, waits for the one before it to commit or roll back. Under
 * that lock store.c compares the store version with the daemon's and, if
 * another daemon wrote in between, re-reads the model in the same
 * transaction (READ COMMITTED: each statement sees every commit made
 * before it, and nobody commits behind the lock) and decides the change
 * afresh. write_version sets the version and queues pg_notify; PostgreSQL
 * sends notifications only at COMMIT, and a write is acknowledged only
 * once COMMIT has returned (durable as far as the server's
 * synchronous_commit says: on the primary's disk by default, also on a
 * synchronous standby when synchronous_standby_names names one).
 *
 * When the database is away. The main connection is never reconnected on
 * the engine thread while the database is known to be down: a write then
 * fails at once with 503 instead of waiting for connect_timeout. A
 * connection lost while the database is thought up (a terminated
 * backend, a restart) is replaced once, at its next use. A daemon may
 * start while the database is unreachable: open then returns a handle
 * that is down, and the schema is checked (and migrated) at the first
 * connection.
 *
 * Secrets: the spec is kept for connecting and never printed. Logs and
 * errors use the description built from libpq's parse of it with the
 * password left out, and libpq's messages never contain the password.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "../util/redact.h"
#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "postgres_internal.h"

#define TX_ROW_ALLOWANCE_MS 1 /* a write's deadline grows by this per answered statement */

/* The deadline of every store operation (store_set_timeout). */
static _Atomic int timeout_ms = STORE_TIMEOUT_DEFAULT_MS;
/* Where the watch thread LISTENs, when not on --db (store_set_listen_db). */
static const char *listen_spec;

int
pg_timeout_ms(void)
{
	return atomic_load(&timeout_ms);
}

/* --- the up/down state and errors ------------------------------------ */

void
pg_mark_down(struct pg_store *db, const char *why)
{
	char since[40];
	int64_t now = time_now_ms();

	pthread_mutex_lock(&db->state_lock);
	if (atomic_load(&db->is_up)) { /* logged first: whoever sees the state finds the line */
		time_format_rfc3339(now, since, sizeof(since));
		log_kv(LOG_ERROR,
		       "PostgreSQL unreachable: answering from the last known state, "
		       "writes refused until it is back",
		       "store", db->description, "since", since, "error", why, NULL);
		atomic_store(&db->down_since, now);
		atomic_store(&db->is_up, 0);
	}
	pthread_mutex_unlock(&db->state_lock);
}

void
pg_mark_up(struct pg_store *db)
{
	char since[40];

	pthread_mutex_lock(&db->state_lock);
	if (!atomic_load(&db->is_up)) {
		time_format_rfc3339(atomic_load(&db->down_since), since, sizeof(since));
		log_kv(LOG_INFO, "PostgreSQL reachable again", "store", db->description,
		       "down_since", since, NULL);
		atomic_store(&db->down_since, 0);
		atomic_store(&db->is_up, 1);
	}
	pthread_mutex_unlock(&db->state_lock);
}

/* Fills err for a failed call on the main connection; a lost connection
 * marks the store down. res may be NULL: no answer (see run). */
int
pg_fail(struct pg_store *db, const PGresult *res, const char *doing, struct error *err)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char why[300];
	int is_lost = db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK;

	pg_one_line(res != NULL && PQresultErrorMessage(res)[0] != '\0'
	                ? PQresultErrorMessage(res)
	                : (db->conn != NULL ? PQerrorMessage(db->conn) : "not connected"),
	            why, sizeof(why));
	if (is_lost && !db->is_loss_quiet)
		pg_mark_down(db, why);
	return error_set(err, is_lost || pg_is_transient_state(state) ? 503 : 500,
	                 "cannot %s in the PostgreSQL store %s: %s; nothing was changed", doing,
	                 db->description, why);
}

/* --- the spec --------------------------------------------------------- */

/* Our defaults come first: with expand_dbname, what the spec says
 * overrides them (a user may set connect_timeout in the URL). */
static const char *const default_keys[] = {
    "connect_timeout",     "application_name", "keepalives",       "keepalives_idle",
    "keepalives_interval", "keepalives_count", "tcp_user_timeout",
};
static const char *const default_values[] = {
    "5", "clustermgmt", "1", "5", "2", "3", "10000",
};
#define N_DEFAULTS (sizeof(default_keys) / sizeof(default_keys[0]))

/* The description: every option the spec sets, as keyword=value, except
 * passwords (libpq marks them with dispchar "*"). Values are not quoted:
 * this is for people to read, never parsed back. */
static char *
describe_spec(const PQconninfoOption *opts)
{
	size_t size = 16, len;
	const PQconninfoOption *o;
	char *out;

	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL && o->val[0] != '\0')
			size += strlen(o->keyword) + strlen(o->val) + 2;
	out = xmalloc(size);
	len = (size_t)snprintf(out, size, "postgres:");
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL || o->val[0] == '\0' || strchr(o->dispchar, '*') != NULL ||
		    strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0)
			continue;
		len += (size_t)snprintf(out + len, size - len, "%s%s=%s",
		                        out[len - 1] == ':' ? "" : " ", o->keyword, o->val);
	}
	return out;
}

/* libpq checks a port only when it connects, and a failed connection
 * looks like an outage: a typo in the port must stop the start instead. */
static int
check_ports(const PQconninfoOption *opts, struct error *err)
{
	const PQconninfoOption *o;
	const char *p;

	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "port") != 0 || o->val == NULL)
			continue;
		for (p = o->val; *p != '\0'; p++)
			if ((*p < '0' || *p > '9') && *p != ',')
				return error_set(err, 400,
				                 "--db: not a valid PostgreSQL URL or connection "
				                 "string: a port is not a number");
	}
	return 0;
}

/* --- running statements on the main connection ------------------------ */

/* Runs sql on the main connection within the deadline; *out gets the
 * result on success (NULL allowed: cleared). An answer past the deadline
 * is given up: the connection is abandoned (the next operation opens
 * another) and err says 503. That alone does not declare an outage: the
 * watch thread's checks decide that, so a slow database is told apart
 * from a gone one. */
int
pg_main_exec(struct pg_store *db, const char *sql, int n, const char *const *params, int is_simple,
             PGresult **out, const char *doing, struct error *err)
{
	PGresult *res;
	int is_late;

	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
		return pg_fail(db, NULL, doing, err);
	/* An operation's statements share one deadline, set when it starts:
	 * the deadline is the write's, not each round trip's. Each statement
	 * of a transaction the store has answered adds TX_ROW_ALLOWANCE_MS to
	 * it: a write's statements are its rows, so a write of a few rows
	 * keeps (almost) the bare deadline while replacing 10,000 nodes gets
	 * 10 s more, as long as the store keeps answering. */
	res = pg_exec_within(db->conn, sql, n, params, is_simple, pg_deadline(db), -1, &is_late);
	if (res != NULL && !pg_is_ok(res))
		pg_log_if_ended(db->description, res);
	if (res != NULL && PQstatus(db->conn) == CONNECTION_BAD) {
		/* The server's last word before it ended the connection: said
		 * (logged), then handled as any broken connection. */
		PQclear(res);
		res = NULL;
	}
	if (res != NULL && db->in_tx)
		db->op_deadline += TX_ROW_ALLOWANCE_MS;
	if (res == NULL && is_late) {
		pg_abandon(db->conn);
		db->conn = NULL;
		db->in_tx = 0;
		return error_set(err, 503,
		                 "cannot %s in the PostgreSQL store %s: no answer within %d ms "
		                 "(--store-timeout); nothing was changed",
		                 doing, db->description, pg_timeout_ms());
	}
	if (res == NULL) {
		/* The connection broke (libpq may still say CONNECTION_OK after a
		 * failed send): it is replaced at the next use. */
		char why[300];

		pg_one_line(PQerrorMessage(db->conn), why, sizeof(why));
		PQfinish(db->conn);
		db->conn = NULL;
		db->in_tx = 0;
		if (!db->is_loss_quiet)
			pg_mark_down(db, why);
		return error_set(err, 503,
		                 "cannot %s in the PostgreSQL store %s: %s; nothing was changed",
		                 doing, db->description, why);
	}
	if (!pg_is_ok(res)) {
		pg_fail(db, res, doing, err);
		PQclear(res);
		return -1;
	}
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	return 0;
}

/* Runs sql with text parameters on the main connection. */
int
pg_run(struct pg_store *db, const char *sql, int n, const char *const *params, PGresult **out,
       const char *doing, struct error *err)
{
	return pg_main_exec(db, sql, n, params, 0, out, doing, err);
}

/* Ends the transaction under way, if the connection still stands. */
void
pg_rollback_quietly(struct pg_store *db)
{
	struct error ignored;

	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		pg_main_exec(db, "ROLLBACK", 0, NULL, 1, NULL, "roll back", &ignored);
}

static void decide_unsure_commit(struct pg_store *db);

/* Reads, without blocking, what an idle connection was sent meanwhile.
 * A backend terminated while the connection was idle has said so (its
 * FATAL, then the end of the stream): libpq reads the message on one
 * call and sees the end only on the next, so this reads for as long as
 * the socket has something (a few times at most: an idle connection is
 * sent nothing else). PQisBusy parses what was read, so that the FATAL
 * reaches the log (the notice processor) before the connection goes. */
static void
read_idle_input(PGconn *conn)
{
	struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
	int i;

	for (i = 0; i < 4 && PQstatus(conn) == CONNECTION_OK && p.fd >= 0 && poll(&p, 1, 0) == 1;
	     i++) {
		int is_read = PQconsumeInput(conn);

		(void)PQisBusy(conn);
		if (!is_read)
			break;
	}
}

/* The main connection, connected, set up and with the schema checked.
 * While the database is known to be down this fails at once (503). */
int
pg_ensure_connected(struct pg_store *db, struct error *err)
{
	char why[300], since[40], settings[160];

	/* A connection whose backend ended while it was idle is replaced
	 * here, not found broken by the operation's first statement (which
	 * would mark a store down that answers again). */
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK && !db->in_tx)
		read_idle_input(db->conn);
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK && db->is_schema_checked)
		return 0;
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		goto schema;
	if (!atomic_load(&db->is_up)) {
		time_format_rfc3339(atomic_load(&db->down_since), since, sizeof(since));
		return error_set(err, 503,
		                 "the PostgreSQL store %s is unreachable since %s; nothing was "
		                 "changed (the daemon reconnects by itself)",
		                 db->description, since);
	}
	if (db->conn != NULL)
		PQfinish(db->conn);
	db->is_schema_checked = 0;
	db->model_xmin[0] = '\0'; /* perhaps another server: the next load reads all */
	db->conn = pg_connect_within(db, db->values, pg_deadline(db), -1, why, sizeof(why), NULL);
	if (db->conn == NULL) {
		pg_mark_down(db, why);
		return error_set(
		    err, 503, "cannot connect to the PostgreSQL store %s: %s; nothing was changed",
		    db->description, why);
	}
	pg_session_settings(settings, sizeof(settings), 0);
	if (pg_run_sql(db, settings, "set up the session", err) != 0)
		return -1;
schema:
	if (pg_migrate(db, err) != 0)
		return -1;
	db->is_schema_checked = 1;
	decide_unsure_commit(db);
	return 0;
}

/* --- open and close ------------------------------------------------- */

static void
pg_close(void *handle)
{
	struct pg_store *db = handle;

	if (db == NULL)
		return;
	pg_watch_stop(db);
	if (db->conn != NULL)
		PQfinish(db->conn);
	pthread_mutex_destroy(&db->state_lock);
	pthread_mutex_destroy(&db->side_lock);
	pthread_cond_destroy(&db->side_cond);
	free(db->keys);
	free(db->values);
	free(db->listen_values);
	free(db->spec);
	free(db->description);
	free(db);
}

static const char *
pg_describe(void *handle)
{
	struct pg_store *db = handle;

	return db->description;
}

/* Whether a NOTIFY sent on the main connection reaches a LISTENing
 * connection of the watch thread's kind: not when the two go through a
 * pooler in transaction mode (PgBouncer), which runs LISTEN on a server
 * connection it then lends to others and drops what that connection
 * receives while idle. The daemons would then never hear of each other's
 * changes but every WATCH_CHECK_MS, so the start is refused instead.
 * The channel is this check's own: no other daemon wakes. Skipped while
 * the database is unreachable. */
static int
check_notifications(struct pg_store *db, struct error *err)
{
	char channel[64], sql[160], why[300];
	const char *p[1] = {channel};
	PGconn *listener;
	PGnotify *n;
	int64_t deadline;
	int is_heard = 0, is_late;
	PGresult *res;
	struct pollfd pfd;

	if (db->conn == NULL || !atomic_load(&db->is_up))
		return 0;
	snprintf(channel, sizeof(channel), "clustermgmt_check_%ld_%" PRId64, (long)getpid(),
	         time_monotonic_ms());
	if ((listener = pg_connect_within(db, db->listen_values, 0, -1, why, sizeof(why), NULL)) ==
	    NULL) {
		log_kv(LOG_WARN, "cannot check that notifications arrive: no connection to LISTEN",
		       "error", why, NULL);
		return 0; /* the watch thread retries, as in any outage */
	}
	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	deadline = time_monotonic_ms() + pg_timeout_ms();
	res = pg_exec_within(listener, sql, 0, NULL, 1, deadline, -1, &is_late);
	if (res == NULL || !pg_is_ok(res)) {
		pg_one_line(res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(listener), why,
		            sizeof(why));
		PQclear(res);
		pg_abandon(listener);
		log_kv(LOG_WARN, "cannot check that notifications arrive: LISTEN failed", "error",
		       is_late ? "no answer within the store timeout" : why, NULL);
		return 0;
	}
	PQclear(res);
	if (pg_run(db, "SELECT pg_notify($1, 'check')", 1, p, NULL, "send a check notification",
	           err) != 0) {
		pg_abandon(listener);
		return -1;
	}
	while (!is_heard && time_monotonic_ms() < deadline) {
		pfd = (struct pollfd){.fd = PQsocket(listener), .events = POLLIN};
		poll(&pfd, 1, (int)(deadline - time_monotonic_ms()));
		if (!PQconsumeInput(listener))
			break;
		while ((n = PQnotifies(listener)) != NULL) {
			is_heard |= strcmp(n->relname, channel) == 0;
			PQfreemem(n);
		}
	}
	PQfinish(listener);
	if (!is_heard)
		return error_set(
		    err, 400,
		    "notifications sent on %s do not reach a connection that LISTENs%s: "
		    "%s goes through a pooler in transaction mode (PgBouncer's pool_mode = "
		    "transaction), where LISTEN cannot work. Give --listen-db a URL straight to "
		    "PostgreSQL (or to a pool in session mode) for the notifications, and keep "
		    "--db on the pooler for the writes",
		    db->description, listen_spec != NULL ? " on --listen-db" : "",
		    listen_spec != NULL ? "--db or --listen-db" : "--db probably");
	return 0;
}

static void *
pg_open(const char *spec, int *schema_version, struct error *err)
{
	struct pg_store *db;
	PQconninfoOption *opts;
	char *parse_error = NULL, why[300];
	struct error why_not;
	size_t i;

	opts = PQconninfoParse(spec, &parse_error);
	if (opts == NULL) {
		redact_quoted(parse_error != NULL ? parse_error : "out of memory", why,
		              sizeof(why));
		PQfreemem(parse_error);
		error_set(err, 400, "--db: not a valid PostgreSQL URL or connection string: %s",
		          why);
		return NULL;
	}
	if (check_ports(opts, err) != 0) {
		PQconninfoFree(opts);
		return NULL;
	}
	db = xcalloc(1, sizeof(*db));
	db->sessions_seen_version = -1;
	db->spec = xstrdup(spec);
	db->description = describe_spec(opts);
	PQconninfoFree(opts);
	db->keys = xcalloc(N_DEFAULTS + 2, sizeof(*db->keys));
	db->values = xcalloc(N_DEFAULTS + 2, sizeof(*db->values));
	for (i = 0; i < N_DEFAULTS; i++) {
		db->keys[i] = default_keys[i];
		db->values[i] = default_values[i];
	}
	db->keys[N_DEFAULTS] = "dbname";
	db->values[N_DEFAULTS] = db->spec;
	db->listen_values = xcalloc(N_DEFAULTS + 2, sizeof(*db->listen_values));
	memcpy(db->listen_values, db->values, (N_DEFAULTS + 2) * sizeof(*db->values));
	if (listen_spec != NULL) {
		if ((opts = PQconninfoParse(listen_spec, &parse_error)) == NULL) {
			redact_quoted(parse_error != NULL ? parse_error : "out of memory", why,
			              sizeof(why));
			PQfreemem(parse_error);
			error_set(
			    err, 400,
			    "--listen-db: not a valid PostgreSQL URL or connection string: %s",
			    why);
			pg_close(db);
			return NULL;
		}
		PQconninfoFree(opts);
		db->listen_values[N_DEFAULTS] = listen_spec;
	}
	db->listen_values[1] = "clustermgmt-listen"; /* application_name, as seen in
	                                                pg_stat_activity */
	db->wake_fd = -1;
	db->side_fd = -1;
	db->is_side_closed = 1;
	pthread_mutex_init(&db->side_lock, NULL);
	pthread_cond_init(&db->side_cond, NULL);
	atomic_store(&db->is_up, 1);
	pthread_mutex_init(&db->state_lock, NULL);
	/* Unreachable is a state the daemon lives with (fail-static);
	 * anything else (a refused schema) is not. */
	if ((pg_ensure_connected(db, &why_not) != 0 && atomic_load(&db->is_up)) ||
	    check_notifications(db, &why_not) != 0) {
		if (err != NULL)
			*err = why_not;
		pg_close(db);
		return NULL;
	}
	*schema_version = db->schema_version;
	return db;
}

int
pg_parse_i64(const char *s, int64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

void
pg_i64_text(int64_t v, char *buf, size_t size)
{
	snprintf(buf, size, "%" PRId64, v);
}

/* --- transactions ---------------------------------------------------- */

static int
begin_once(struct pg_store *db, struct error *err)
{
	char lock[80], settings[200];

	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", LOCK_CLASS,
	         LOCK_WRITE);
	if (pg_run(db, "BEGIN", 0, NULL, NULL, "start a transaction", err) != 0)
		return -1;
	db->in_tx = 1;
	/* Again for this transaction alone: through a pooler in transaction
	 * mode (PgBouncer) the session's SETs were made on whichever server
	 * connection the pooler gave then, not necessarily this one. */
	pg_session_settings(settings, sizeof(settings), 1);
	if (pg_main_exec(db, settings, 0, NULL, 1, NULL, "set the transaction's timeouts", err) !=
	        0 ||
	    pg_run(db, lock, 0, NULL, NULL, "wait for the other writers", err) != 0) {
		pg_rollback_quietly(db);
		db->in_tx = 0;
		return -1;
	}
	return 0;
}

/* A connection that died while idle (the server restarted, the backend
 * was terminated) is noticed only when BEGIN fails; nothing of the change
 * was sent yet, so while the store is thought up, one reconnection and a
 * second try are safe, and the outage is declared only if that fails.
 * Everything, connecting included, ends by the write's deadline: the
 * bare one from now, or the caller's when that is earlier (the write
 * waited behind others). A deadline already past touches nothing. */
int
pg_begin(void *handle, int64_t deadline, struct error *err)
{
	struct pg_store *db = handle;
	int64_t now = time_monotonic_ms();
	int rc;

	if (deadline != 0 && deadline <= now)
		return error_set(err, 503,
		                 "the write waited %" PRId64 " ms for the store, past the %d ms of "
		                 "--store-timeout, behind the operations before it; nothing was "
		                 "changed",
		                 now - deadline + pg_timeout_ms(), pg_timeout_ms());
	db->op_deadline = now + pg_timeout_ms();
	if (deadline != 0 && deadline < db->op_deadline)
		db->op_deadline = deadline;
	db->first_audit_id = 0;
	if ((rc = pg_ensure_connected(db, err)) != 0)
		goto out;
	db->is_loss_quiet = atomic_load(&db->is_up);
	rc = begin_once(db, err);
	db->is_loss_quiet = 0;
	if (rc == 0 || PQstatus(db->conn) == CONNECTION_OK || !atomic_load(&db->is_up))
		goto out;
	PQfinish(db->conn);
	db->conn = NULL;
	if ((rc = pg_ensure_connected(db, err)) == 0)
		rc = begin_once(db, err);
out:
	if (rc != 0)
		db->op_deadline = 0;
	return rc;
}

/* A COMMIT that got no answer may have been applied or not. The
 * transaction's first audit id says which, afterwards: ids come from a
 * sequence that a rollback does not give back, so the row exists only if
 * the transaction committed. */
int
pg_commit(void *handle, struct error *err)
{
	struct pg_store *db = handle;
	int rc = pg_run(db, "COMMIT", 0, NULL, NULL, "commit", err);

	db->in_tx = 0;
	db->op_deadline = 0;
	if (rc != 0 && (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)) {
		db->unsure_audit_id = db->first_audit_id;
		error_set(err, 503,
		          "the PostgreSQL store %s did not confirm COMMIT (connection lost or no "
		          "answer within the store timeout): the change may or may not have been "
		          "stored; read the current state before retrying, or retry with the same "
		          "Idempotency-Key",
		          db->description);
	}
	return rc;
}

/* Decides the outcome of the COMMIT that got no answer, on a fresh
 * connection: under the write lock the old transaction has ended (it
 * held the lock), so its audit row is there or will never be. Logged;
 * kept for the next connection when the question cannot be answered. */
static void
decide_unsure_commit(struct pg_store *db)
{
	char id[24], lock[80];
	const char *p[1] = {id};
	PGresult *res = NULL;
	struct error ignored;
	int is_stored;

	if (db->unsure_audit_id == 0)
		return;
	pg_i64_text(db->unsure_audit_id, id, sizeof(id));
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", LOCK_CLASS,
	         LOCK_WRITE);
	if (pg_run_sql(db, "BEGIN", "start a transaction", &ignored) != 0)
		return;
	if (pg_run_sql(db, lock, "wait for the other writers", &ignored) != 0 ||
	    pg_run(db, "SELECT count(*) FROM audit WHERE id = $1", 1, p, &res,
	           "look for an unconfirmed change", &ignored) != 0) {
		pg_rollback_quietly(db);
		return;
	}
	is_stored = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	pg_rollback_quietly(db);
	log_kv(is_stored ? LOG_INFO : LOG_WARN,
	       is_stored ? "the change whose COMMIT was not confirmed was stored"
	                 : "the change whose COMMIT was not confirmed was not stored",
	       "store", db->description, "audit_id", id, NULL);
	db->unsure_audit_id = 0;
}

void
pg_rollback(void *handle)
{
	struct pg_store *db = handle;

	if (db->in_tx && db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		pg_rollback_quietly(db);
	db->in_tx = 0;
	db->op_deadline = 0;
}

int
pg_read_version(void *handle, int64_t *version, struct error *err)
{
	struct pg_store *db = handle;
	PGresult *res = NULL;
	int rc = -1;

	if (pg_run(db, "SELECT version FROM store_version WHERE id = 1", 0, NULL, &res,
	           "read the store version", err) != 0)
		return -1;
	if (PQntuples(res) == 1 && pg_parse_i64(PQgetvalue(res, 0, 0), version) == 0)
		rc = 0;
	else
		error_set(err, 500, "the PostgreSQL store %s has no store version",
		          db->description);
	PQclear(res);
	return rc;
}

int
pg_write_version(void *handle, int64_t version, const char *change, struct error *err)
{
	struct pg_store *db = handle;
	char text[24], now[24];
	const char *params[3] = {text, now, change};

	pg_i64_text(version, text, sizeof(text));
	pg_i64_text(time_now_ms(), now, sizeof(now));
	if (pg_run(db, "UPDATE store_version SET version = $1, changed_at = $2 WHERE id = 1", 2,
	           params, NULL, "write the store version", err) != 0)
		return -1;
	/* The change first, then the version (delivered in this order at
	 * COMMIT): a daemon applies the change and finds the version it
	 * has; one of an earlier release reads the version alone. */
	if (change != NULL && pg_run(db, "SELECT pg_notify('" CHANGE_CHANNEL "', $1)", 1,
	                             params + 2, NULL, "notify the other daemons", err) != 0)
		return -1;
	return pg_run(db, "SELECT pg_notify('" CHANNEL "', $1)", 1, params, NULL,
	              "notify the other daemons", err);
}

void
pg_health(void *handle, struct store_health *out)
{
	struct pg_store *db = handle;

	int64_t started = atomic_load(&db->check_started);
	int64_t round_trip = atomic_load(&db->round_trip_ms);

	out->is_up = atomic_load(&db->is_up);
	out->down_since = atomic_load(&db->down_since);
	/* A check still waiting counts for as long as it has waited, so that
	 * a database that stopped answering looks slow at once. */
	if (started != 0 && time_monotonic_ms() - started > round_trip)
		round_trip = time_monotonic_ms() - started;
	out->round_trip_ms = round_trip;
	out->is_slow = out->is_up && round_trip > store_slow_ms();
}

void
store_postgres_set_listen_db(const char *spec)
{
	listen_spec = spec;
}

void
store_postgres_set_timeout(int ms)
{
	atomic_store(&timeout_ms, ms);
}

const struct store_backend store_postgres_backend = {
    .scheme = "postgres",
    .open = pg_open,
    .close = pg_close,
    .describe = pg_describe,
    .begin = pg_begin,
    .read_version = pg_read_version,
    .write_version = pg_write_version,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .upsert_cluster = pg_upsert_cluster,
    .delete_cluster = pg_delete_cluster,
    .upsert_node = pg_upsert_node,
    .delete_node = pg_delete_node,
    .upsert_lb = pg_upsert_lb,
    .delete_lb = pg_delete_lb,
    .upsert_user = pg_upsert_user,
    .delete_user = pg_delete_user,
    .insert_token = pg_insert_token,
    .delete_token = pg_delete_token,
    .clear_audit = pg_clear_audit,
    .insert_audit = pg_insert_audit,
    .find_key = pg_find_key,
    .remember_key = pg_remember_key,
    .load = pg_load,
    .reload = pg_reload,
    .read_audit = pg_read_audit,
    .watch_start = pg_watch_start,
    .watch_stop = pg_watch_stop,
    .share_probes = pg_share_probes,
    .heartbeat = pg_heartbeat,
    .share_sessions = pg_share_sessions,
    .rollouts_register = pg_rollouts_register,
    .rollouts_beat = pg_rollouts_beat,
    .rollouts_list = pg_rollouts_list,
    .health = pg_health,
};
