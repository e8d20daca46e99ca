/*
 * postgres.c - the PostgreSQL backend of the store (see store_backend.h).
 *
 * Several daemons share one database, so this backend adds to SQLite's
 * three things: a writer lock that spans daemons, change notification,
 * and living with a database that comes and goes.
 *
 * Two connections. The engine thread's ("main") runs every read and
 * write, one libpq call at a time: the engine is the only thread that
 * waits on it, and the probe path never touches the store.
 *
 * Deadlines. Every operation ends within store_set_timeout's deadline
 * (one per write, BEGIN to COMMIT): connections are non-blocking and
 * their socket is polled until then (exec_within), never left to TCP's
 * timeouts. A late query is cancelled and its connection reset
 * (abandon); a COMMIT left without answer is decided at the next
 * connection from its audit id (decide_unsure_commit). The
 * watch thread's own connection LISTENs; its socket is poll()ed together
 * with an eventfd that stop uses to wake it, so no HTTP worker ever waits
 * on PostgreSQL.
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
 * Notifications carry only the version. A daemon never counts them: it
 * compares the version with the one it applied and reloads when they
 * differ. Notifications sent while a connection was down are lost, so the
 * watch thread LISTENs first on every (re)connection, then reads the
 * version; and it reads it again every WATCH_CHECK_MS as a safety net.
 *
 * When the database is away. The main connection is never reconnected on
 * the engine thread while the database is known to be down: a write then
 * fails at once with 503 instead of waiting for connect_timeout. The
 * watch thread reconnects in the background with capped, jittered
 * backoff; once it is back, it says so (on_state) and the main connection
 * is re-established at its next use. The outage is logged once when it
 * begins and once when it ends. A daemon may start while the database is
 * unreachable: open then returns a handle that is down, and the schema is
 * checked (and migrated) at the first connection.
 *
 * Schema: the same steps as SQLite's, in PostgreSQL's types, recorded in
 * a one-row table schema_version. Migration runs in one transaction under
 * an advisory lock of its own, so two daemons starting together cannot
 * both migrate: the second waits, then finds the schema up to date.
 *
 * Messages: what the server or libpq says outside a query's answer (the
 * FATAL of a terminated backend, a standby's WARNING) would be printed
 * raw on stderr by libpq's default notice processor; every connection
 * gets a notice receiver that logs it as one line, at the level its
 * severity maps to, so that the log stays logfmt or JSON lines.
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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "../util/redact.h"
#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "pg_share.h"
#include "store_backend.h"

#define LOCK_CLASS 0x636d /* "cm": the first key of our advisory locks */
#define LOCK_MIGRATE 1
#define LOCK_WRITE 2
#define CHANNEL "clustermgmt"
#define WATCH_CHECK_MS 2000   /* the periodic version check */
#define BACKOFF_MIN_MS 100    /* first reconnection delay */
#define BACKOFF_MAX_MS 5000   /* cap of the reconnection delay */
#define MAX_CANCELS 4         /* cancel requests in flight at once (see send_cancel) */
#define TX_ROW_ALLOWANCE_MS 1 /* a write's deadline grows by this per answered statement */

/* The deadline of every store operation (store_set_timeout). */
static _Atomic int timeout_ms = STORE_TIMEOUT_DEFAULT_MS;
/* Where the watch thread LISTENs, when not on --db (store_set_listen_db). */
static const char *listen_spec;

struct migration {
	const char *what;
	const char *sql;
};

static const char step1_create_tables[] =
    "CREATE TABLE clusters ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " path TEXT NOT NULL UNIQUE,"
    " version BIGINT NOT NULL);"
    "CREATE TABLE nodes ("
    " cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('online', 'offline', 'drain')),"
    " reason TEXT NOT NULL,"
    " changed_by TEXT NOT NULL,"
    " changed_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL DEFAULT 0,"
    " address TEXT,"
    " check_url TEXT,"
    " PRIMARY KEY (cluster, name));"
    "CREATE TABLE users ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),"
    " password_hash TEXT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE tokens ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),"
    " description TEXT NOT NULL,"
    " hash TEXT NOT NULL UNIQUE,"
    " created_by TEXT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE audit ("
    " id BIGSERIAL PRIMARY KEY,"
    " at BIGINT NOT NULL,"
    " cluster TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " address TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " old_status TEXT NOT NULL,"
    " new_status TEXT NOT NULL,"
    " reason TEXT NOT NULL);";

static const char step2_index_audit_by_cluster[] =
    "CREATE INDEX audit_by_cluster ON audit (cluster, id);";

/* The cluster's named load balancers: kind by name, runtime and backend
 * NULL when not given. */
static const char step3_create_lbs[] =
    "CREATE TABLE lbs ("
    " cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('haproxy', 'varnish', 'nginx', 'other')),"
    " runtime TEXT,"
    " backend TEXT,"
    " PRIMARY KEY (cluster, name));";

static const char step4_store_version[] = "CREATE TABLE store_version ("
                                          " id INTEGER PRIMARY KEY CHECK (id = 1),"
                                          " version BIGINT NOT NULL);"
                                          "INSERT INTO store_version (id, version) VALUES (1, 0);";

static const char step5_probes[] =
    "CREATE TABLE probes ("
    " daemon TEXT NOT NULL,"
    " cluster TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " protocol INTEGER NOT NULL,"
    " lb TEXT NOT NULL,"
    " address TEXT NOT NULL,"
    " user_agent TEXT NOT NULL,"
    " has_user_agent INTEGER NOT NULL,"
    " first_at BIGINT NOT NULL,"
    " last_at BIGINT NOT NULL,"
    " changed_at BIGINT NOT NULL,"
    " last_answer INTEGER NOT NULL,"
    " consecutive BIGINT NOT NULL,"
    " since_change BIGINT NOT NULL,"
    " interval_ms BIGINT NOT NULL,"
    " PRIMARY KEY (daemon, cluster, node, protocol, lb, address, user_agent,"
    " has_user_agent));";

/* The fleet: each daemon of a shared store registers itself and beats;
 * and when the store last changed, for the daemons' lag in seconds. */
static const char step6_daemons[] =
    "CREATE TABLE daemons ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " host TEXT NOT NULL,"
    " listen TEXT NOT NULL,"
    " version BIGINT NOT NULL,"
    " started_at BIGINT NOT NULL,"
    " heartbeat_at BIGINT NOT NULL);"
    "ALTER TABLE store_version ADD COLUMN changed_at BIGINT NOT NULL DEFAULT 0;";

/* The web page's sessions, so that a browser signed in through one daemon
 * is signed in on all (hashes of the ids only; an SQLite store leaves it
 * empty: its one daemon keeps its sessions in memory). */
static const char step7_sessions[] = "CREATE TABLE sessions ("
                                     " id_hash TEXT PRIMARY KEY NOT NULL,"
                                     " name TEXT NOT NULL,"
                                     " tag TEXT NOT NULL,"
                                     " expires_at BIGINT NOT NULL);";

/* Writes retried with the same Idempotency-Key (sqlite.c's step 8). */
static const char step8_idempotency_keys[] = "CREATE TABLE idempotency_keys ("
                                             " key TEXT PRIMARY KEY NOT NULL,"
                                             " at BIGINT NOT NULL,"
                                             " audit_id BIGINT NOT NULL);";

/* Who made each change, and how they signed in (sqlite.c's step 9). */
static const char step9_audit_context[] =
    "ALTER TABLE audit ADD COLUMN context TEXT NOT NULL DEFAULT '';";

/* Tokens scoped to clusters (sqlite.c's step 10). */
static const char step10_token_clusters[] =
    "ALTER TABLE tokens ADD COLUMN clusters TEXT NOT NULL DEFAULT '';";

/* The same steps as sqlite.c's, in the same order; schema_version.version
 * counts the steps done. Append only. */
static const struct migration migrations[] = {
    {"create the tables", step1_create_tables},
    {"index the audit log by cluster", step2_index_audit_by_cluster},
    {"create the load balancers' table", step3_create_lbs},
    {"count the store's versions", step4_store_version},
    {"share observed probes", step5_probes},
    {"register the daemons", step6_daemons},
    {"share the web sessions", step7_sessions},
    {"remember idempotency keys", step8_idempotency_keys},
    {"record who changed what, and how they signed in", step9_audit_context},
    {"scope tokens to clusters", step10_token_clusters},
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* Set on every connection: the server ends by itself what the daemon
 * gave up on at its deadline. A statement or a lock wait past the
 * deadline is cancelled; a transaction left open by a connection the
 * daemon abandoned (the network ate the ROLLBACK) is rolled back, so that
 * it does not hold the write lock against every other daemon for long:
 * the daemon never leaves a transaction idle for more than a moment. */
static void
session_settings(char *out, size_t size, int is_local)
{
	int ms = atomic_load(&timeout_ms);
	const char *set = is_local ? "SET LOCAL" : "SET";

	snprintf(out, size,
	         "%s statement_timeout = %d; %s lock_timeout = %d; "
	         "%s idle_in_transaction_session_timeout = %d",
	         set, ms, set, ms, set, ms < 1000 ? 1000 : ms);
}

struct pg_store {
	char *spec;        /* as given: never printed (it may hold a password) */
	char *description; /* "postgres:host=... dbname=...", no password */
	const char **keys; /* libpq parameters: our defaults, then the spec */
	const char **values;
	const char **listen_values; /* the same, named for the watch thread */
	PGconn *conn;               /* the engine thread's */
	int64_t unsure_audit_id;    /* of a COMMIT without answer: decided at reconnection */
	int64_t first_audit_id;     /* of the transaction under way; 0: none yet */
	int64_t tx_deadline;        /* monotonic ms: the transaction's end, at the latest */
	int in_tx;
	int is_loss_quiet;     /* a lost connection is not an outage yet (pg_begin) */
	int is_schema_checked; /* on the current main connection */
	int schema_version;

	/* Shared with the watch thread. */
	_Atomic int is_up;
	_Atomic int64_t down_since;    /* ms; 0 while up */
	_Atomic int64_t round_trip_ms; /* of the watch thread's last check */
	_Atomic int64_t check_started; /* monotonic ms of the check under way; 0: none */
	pthread_mutex_t state_lock;    /* serialises the two transitions */

	/* The watch thread. */
	pthread_t watch_thread;
	int is_watching;
	int wake_fd; /* eventfd: stop */
	_Atomic int is_stopping;
	struct store_watcher watcher;
	PGconn *listen_conn;
};

/* --- errors and the up/down state ---------------------------------- */

static int
is_transient_state(const char *sqlstate)
{
	if (sqlstate == NULL)
		return 1;                          /* no server answer at all: the connection */
	return strncmp(sqlstate, "08", 2) == 0 ||  /* connection exception */
	       strncmp(sqlstate, "53", 2) == 0 ||  /* insufficient resources */
	       strncmp(sqlstate, "57P", 3) == 0 || /* shutdown, cannot connect now */
	       strcmp(sqlstate, "40001") == 0 ||   /* serialization failure */
	       strcmp(sqlstate, "40P01") == 0 ||   /* deadlock */
	       strcmp(sqlstate, "55P03") == 0 ||   /* lock not available */
	       strcmp(sqlstate, "57014") == 0 ||   /* statement timeout */
	       strcmp(sqlstate, "25006") == 0;     /* read-only: a standby */
}

/* libpq's message, on one line. */
static void
one_line(const char *in, char *out, size_t size)
{
	size_t i, n = 0;

	for (i = 0; in != NULL && in[i] != '\0' && n + 1 < size; i++)
		out[n++] = (in[i] == '\n' || in[i] == '\r') ? ' ' : in[i];
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

static void
mark_down(struct pg_store *db, const char *why)
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

static void
mark_up(struct pg_store *db)
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
static int
fail(struct pg_store *db, const PGresult *res, const char *doing, struct error *err)
{
	const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char why[300];
	int is_lost = db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK;

	one_line(res != NULL && PQresultErrorMessage(res)[0] != '\0'
	             ? PQresultErrorMessage(res)
	             : (db->conn != NULL ? PQerrorMessage(db->conn) : "not connected"),
	         why, sizeof(why));
	if (is_lost && !db->is_loss_quiet)
		mark_down(db, why);
	return error_set(err, is_lost || is_transient_state(state) ? 503 : 500,
	                 "cannot %s in the PostgreSQL store %s: %s; nothing was changed", doing,
	                 db->description, why);
}

/* --- connecting ----------------------------------------------------- */

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

/* PostgreSQL's severity (the untranslated one) as one of our levels.
 * A notice that is not an error is at most a warning: the server says
 * so about a statement it ran anyway. */
static enum log_level
severity_level(const char *severity)
{
	if (severity == NULL)
		return LOG_WARN;
	if (strcmp(severity, "ERROR") == 0 || strcmp(severity, "FATAL") == 0 ||
	    strcmp(severity, "PANIC") == 0)
		return LOG_ERROR;
	if (strcmp(severity, "WARNING") == 0)
		return LOG_WARN;
	if (strncmp(severity, "DEBUG", 5) == 0)
		return LOG_DEBUG;
	return LOG_INFO; /* NOTICE, INFO, LOG */
}

/* libpq's notice receiver: what the server (or libpq itself) says
 * outside a query's answer, such as the FATAL of a terminated backend
 * or a standby's WARNING, would otherwise be printed raw on stderr. It
 * becomes one log line with the fields kept apart. */
static void
log_notice(void *arg, const PGresult *res)
{
	const char *description = arg;
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char message[600], detail[600], hint[600];

	if (severity == NULL)
		severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
	one_line(primary != NULL ? primary : PQresultErrorMessage(res), message, sizeof(message));
	one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL), detail, sizeof(detail));
	one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_HINT), hint, sizeof(hint));
	log_kv(severity_level(severity), "PostgreSQL says", "store", description, "severity",
	       severity != NULL ? severity : "", "sqlstate",
	       PQresultErrorField(res, PG_DIAG_SQLSTATE), "message", message, "detail", detail,
	       "hint", hint, NULL);
}

/* Every connection of this backend goes through here (connect_within),
 * so that none prints on stderr. */
static void
log_notices(struct pg_store *db, PGconn *conn)
{
	if (conn != NULL)
		PQsetNoticeReceiver(conn, log_notice, db->description);
}

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One connection attempt, bounded by the store's deadline, that stop can
 * interrupt (wake_fd; -1: none): PQconnectStart and PQconnectPoll on the
 * socket, never connect_timeout alone, which counts per host and per
 * address. Returns the connection, non-blocking and logging its
 * notices, or NULL with why filled. */
static PGconn *
connect_within(struct pg_store *db, const char *const *values, int wake_fd, char *why,
               size_t why_size)
{
	PGconn *conn = PQconnectStartParams(db->keys, values, 1);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int64_t deadline = monotonic_ms() + atomic_load(&timeout_ms);
	struct pollfd p[2];

	snprintf(why, why_size, "no answer within %d ms", atomic_load(&timeout_ms));
	if (conn == NULL) {
		snprintf(why, why_size, "out of memory");
		return NULL;
	}
	log_notices(db, conn);
	while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		int64_t left = deadline - monotonic_ms();
		if (left <= 0 || (wake_fd >= 0 && atomic_load(&db->is_stopping)))
			break;
		p[0] = (struct pollfd){.fd = PQsocket(conn),
		                       .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
		p[1] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			break;
		if (p[1].revents != 0)
			break;
		if (p[0].revents != 0)
			st = PQconnectPoll(conn);
	}
	if (st != PGRES_POLLING_OK || PQstatus(conn) != CONNECTION_OK) {
		if (st == PGRES_POLLING_FAILED || PQstatus(conn) == CONNECTION_BAD)
			one_line(PQerrorMessage(conn), why, why_size);
		PQfinish(conn);
		return NULL;
	}
	PQsetnonblocking(conn, 1);
	return conn;
}

/* Waits until conn's answer can be read without blocking, flushing what
 * is still to be sent. 0: ready; -1: the connection broke; -2: the
 * deadline passed or stop woke us. */
static int
await_ready(PGconn *conn, int64_t deadline, int wake_fd)
{
	struct pollfd p[2];
	int pending;

	for (;;) {
		pending = PQflush(conn);
		if (pending < 0)
			return -1;
		if (!PQconsumeInput(conn))
			return -1;
		if (!pending && !PQisBusy(conn))
			return 0;
		int64_t left = deadline - monotonic_ms();
		if (left <= 0)
			return -2;
		p[0] = (struct pollfd){.fd = PQsocket(conn),
		                       .events = POLLIN | (pending ? POLLOUT : 0)};
		p[1] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			return -1;
		if (p[1].revents != 0)
			return -2;
	}
}

static int
is_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Runs sql (several statements when is_simple) on a non-blocking
 * connection, waiting on its socket until deadline (monotonic ms): never
 * on TCP's timeouts. Returns the first
 * failed result, else the last one; NULL when no answer came: *is_late
 * then says whether the deadline passed (or stop woke us) rather than
 * the connection breaking. */
static PGresult *
exec_within(PGconn *conn, const char *sql, int n, const char *const *params, int is_simple,
            int64_t deadline, int wake_fd, int *is_late)
{
	PGresult *res, *kept = NULL;
	int rc, is_sent;

	*is_late = 0;
	is_sent = is_simple ? PQsendQuery(conn, sql)
	                    : PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	if (!is_sent)
		return NULL;
	for (;;) {
		if ((rc = await_ready(conn, deadline, wake_fd)) != 0) {
			PQclear(kept);
			*is_late = rc == -2;
			return NULL;
		}
		if ((res = PQgetResult(conn)) == NULL)
			break;
		if (kept == NULL || (is_ok(kept) && !is_ok(res))) {
			PQclear(kept);
			kept = res;
		} else if (is_ok(res)) {
			PQclear(kept);
			kept = res;
		} else {
			PQclear(res);
		}
	}
	return kept;
}

static _Atomic int n_cancels;

static void *
cancel_thread(void *arg)
{
	PGcancel *cancel = arg;
	char why[256];

	PQcancel(cancel, why, sizeof(why));
	PQfreeCancel(cancel);
	atomic_fetch_sub(&n_cancels, 1);
	return NULL;
}

/* Asks the server to cancel what conn runs, on a thread of its own:
 * PQcancel opens a connection of its own and blocks, and the engine must
 * not wait on a network that may be eating packets. At most MAX_CANCELS
 * at once; beyond that the server's statement_timeout ends the query. */
static void
send_cancel(PGconn *conn)
{
	PGcancel *cancel;
	pthread_t t;
	pthread_attr_t attr;

	if (atomic_fetch_add(&n_cancels, 1) >= MAX_CANCELS ||
	    (cancel = PQgetCancel(conn)) == NULL) {
		atomic_fetch_sub(&n_cancels, 1);
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, cancel_thread, cancel) != 0) {
		PQfreeCancel(cancel);
		atomic_fetch_sub(&n_cancels, 1);
	}
	pthread_attr_destroy(&attr);
}

/* Gives up a connection whose answer is late: the query is cancelled and
 * the socket reset (SO_LINGER 0), so that what the kernel still holds to
 * send (a COMMIT, say) is dropped instead of delivered after the daemon
 * answered 503. The server then rolls the transaction back when the
 * reset or its idle_in_transaction_session_timeout reaches it. */
static void
abandon(PGconn *conn)
{
	struct linger reset = {.l_onoff = 1, .l_linger = 0};

	send_cancel(conn);
	if (PQsocket(conn) >= 0)
		setsockopt(PQsocket(conn), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	PQfinish(conn);
}

/* --- running statements on the main connection ------------------------ */

/* Runs sql on the main connection within the deadline; *out gets the
 * result on success (NULL allowed: cleared). An answer past the deadline
 * is given up: the connection is abandoned (the next operation opens
 * another) and err says 503. That alone does not declare an outage: the
 * watch thread's checks decide that, so a slow database is told apart
 * from a gone one. */
static int
main_exec(struct pg_store *db, const char *sql, int n, const char *const *params, int is_simple,
          PGresult **out, const char *doing, struct error *err)
{
	PGresult *res;
	int is_late;

	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
		return fail(db, NULL, doing, err);
	/* A transaction's statements share one deadline, set at begin: the
	 * deadline is the write's, not each round trip's. Each statement the
	 * store has answered adds TX_ROW_ALLOWANCE_MS to it: a write's
	 * statements are its rows, so a write of a few rows keeps (almost) the
	 * bare deadline while replacing 10,000 nodes gets 10 s more, as long as
	 * the store keeps answering. */
	res = exec_within(db->conn, sql, n, params, is_simple,
	                  db->in_tx ? db->tx_deadline : monotonic_ms() + atomic_load(&timeout_ms),
	                  -1, &is_late);
	if (res != NULL && db->in_tx)
		db->tx_deadline += TX_ROW_ALLOWANCE_MS;
	if (res == NULL && is_late) {
		abandon(db->conn);
		db->conn = NULL;
		db->in_tx = 0;
		return error_set(err, 503,
		                 "cannot %s in the PostgreSQL store %s: no answer within %d ms "
		                 "(--store-timeout); nothing was changed",
		                 doing, db->description, atomic_load(&timeout_ms));
	}
	if (res == NULL) {
		/* The connection broke (libpq may still say CONNECTION_OK after a
		 * failed send): it is replaced at the next use. */
		char why[300];

		one_line(PQerrorMessage(db->conn), why, sizeof(why));
		PQfinish(db->conn);
		db->conn = NULL;
		db->in_tx = 0;
		if (!db->is_loss_quiet)
			mark_down(db, why);
		return error_set(err, 503,
		                 "cannot %s in the PostgreSQL store %s: %s; nothing was changed",
		                 doing, db->description, why);
	}
	if (!is_ok(res)) {
		fail(db, res, doing, err);
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
static int
run(struct pg_store *db, const char *sql, int n, const char *const *params, PGresult **out,
    const char *doing, struct error *err)
{
	return main_exec(db, sql, n, params, 0, out, doing, err);
}

/* Ends the transaction under way, if the connection still stands. */
static void
rollback_quietly(struct pg_store *db)
{
	struct error ignored;

	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		main_exec(db, "ROLLBACK", 0, NULL, 1, NULL, "roll back", &ignored);
}

/* --- schema ---------------------------------------------------------- */

static int
run_sql(struct pg_store *db, const char *sql, const char *doing, struct error *err)
{
	return main_exec(db, sql, 0, NULL, 1, NULL, doing, err);
}

/* 1 when the query's first value is "t", 0 when "f", -1 on error. */
static int
query_bool(struct pg_store *db, const char *sql, const char *doing, struct error *err)
{
	PGresult *res = NULL;
	int rc;

	if (main_exec(db, sql, 0, NULL, 1, &res, doing, err) != 0)
		return -1;
	if (PQntuples(res) != 1) {
		fail(db, res, doing, err);
		PQclear(res);
		return -1;
	}
	rc = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return rc;
}

static int
migrate_locked(struct pg_store *db, struct error *err)
{
	PGresult *res = NULL;
	char set_version[80];
	int has_version, has_tables, version, i;

	has_version = query_bool(db, "SELECT to_regclass('schema_version') IS NOT NULL",
	                         "read the schema version", err);
	if (has_version < 0)
		return -1;
	if (!has_version) {
		has_tables = query_bool(db,
		                        "SELECT to_regclass('clusters') IS NOT NULL OR "
		                        "to_regclass('nodes') IS NOT NULL OR "
		                        "to_regclass('users') IS NOT NULL",
		                        "read the list of tables", err);
		if (has_tables < 0)
			return -1;
		if (has_tables)
			return error_set(
			    err, 400,
			    "the PostgreSQL database %s has tables named like "
			    "clustermgmt's but no schema version; it is left untouched",
			    db->description);
		if (run_sql(db,
		            "CREATE TABLE schema_version (version INTEGER NOT NULL);"
		            "INSERT INTO schema_version (version) VALUES (0)",
		            "record the schema version", err) != 0)
			return -1;
	}
	if (main_exec(db, "SELECT version FROM schema_version", 0, NULL, 1, &res,
	              "read the schema version", err) != 0)
		return -1;
	if (PQntuples(res) != 1) {
		fail(db, res, "read the schema version", err);
		PQclear(res);
		return -1;
	}
	version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (version > SCHEMA_VERSION)
		return error_set(err, 400,
		                 "the PostgreSQL store %s has schema version %d but this build "
		                 "knows only up to %d; it was written by a newer clustermgmt and "
		                 "is left untouched",
		                 db->description, version, SCHEMA_VERSION);
	for (i = version; i < SCHEMA_VERSION; i++)
		if (run_sql(db, migrations[i].sql, migrations[i].what, err) != 0)
			return -1;
	snprintf(set_version, sizeof(set_version), "UPDATE schema_version SET version = %d",
	         SCHEMA_VERSION);
	if (version < SCHEMA_VERSION &&
	    run_sql(db, set_version, "record the schema version", err) != 0)
		return -1;
	db->schema_version = SCHEMA_VERSION;
	return 0;
}

/* Checks the schema and brings it up to date, in one transaction under
 * the migration lock. */
static int
migrate(struct pg_store *db, struct error *err)
{
	char lock[80];

	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", LOCK_CLASS,
	         LOCK_MIGRATE);
	if (run_sql(db, "BEGIN", "start a schema migration", err) != 0)
		return -1;
	if (run_sql(db, lock, "wait for the migration lock", err) != 0 ||
	    migrate_locked(db, err) != 0 || run_sql(db, "COMMIT", "commit a migration", err) != 0)
		goto bad;
	return 0;
bad:
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		rollback_quietly(db);
	return -1;
}

static void decide_unsure_commit(struct pg_store *db);

/* The main connection, connected, set up and with the schema checked.
 * While the database is known to be down this fails at once (503). */
static int
ensure_connected(struct pg_store *db, struct error *err)
{
	char why[300], since[40], settings[160];

	/* A backend terminated while the connection was idle has said so
	 * already (its FATAL and the end of the stream wait in the socket):
	 * read it now, without blocking, so that the connection is replaced
	 * here instead of failing the first statement of the operation. */
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK && !db->in_tx)
		PQconsumeInput(db->conn);
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
	db->conn = connect_within(db, db->values, -1, why, sizeof(why));
	if (db->conn == NULL) {
		mark_down(db, why);
		return error_set(
		    err, 503, "cannot connect to the PostgreSQL store %s: %s; nothing was changed",
		    db->description, why);
	}
	session_settings(settings, sizeof(settings), 0);
	if (run_sql(db, settings, "set up the session", err) != 0)
		return -1;
schema:
	if (migrate(db, err) != 0)
		return -1;
	db->is_schema_checked = 1;
	decide_unsure_commit(db);
	return 0;
}

/* --- open and close ------------------------------------------------- */

static void watch_stop(void *handle);

static void
pg_close(void *handle)
{
	struct pg_store *db = handle;

	if (db == NULL)
		return;
	watch_stop(db);
	if (db->conn != NULL)
		PQfinish(db->conn);
	pthread_mutex_destroy(&db->state_lock);
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
	         monotonic_ms());
	if ((listener = connect_within(db, db->listen_values, -1, why, sizeof(why))) == NULL) {
		log_kv(LOG_WARN, "cannot check that notifications arrive: no connection to LISTEN",
		       "error", why, NULL);
		return 0; /* the watch thread retries, as in any outage */
	}
	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	deadline = monotonic_ms() + atomic_load(&timeout_ms);
	res = exec_within(listener, sql, 0, NULL, 1, deadline, -1, &is_late);
	if (res == NULL || !is_ok(res)) {
		PQclear(res);
		abandon(listener);
		log_kv(LOG_WARN, "cannot check that notifications arrive: LISTEN failed", NULL);
		return 0;
	}
	PQclear(res);
	if (run(db, "SELECT pg_notify($1, 'check')", 1, p, NULL, "send a check notification",
	        err) != 0) {
		abandon(listener);
		return -1;
	}
	while (!is_heard && monotonic_ms() < deadline) {
		pfd = (struct pollfd){.fd = PQsocket(listener), .events = POLLIN};
		poll(&pfd, 1, (int)(deadline - monotonic_ms()));
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
	atomic_store(&db->is_up, 1);
	pthread_mutex_init(&db->state_lock, NULL);
	/* Unreachable is a state the daemon lives with (fail-static);
	 * anything else (a refused schema) is not. */
	if ((ensure_connected(db, &why_not) != 0 && atomic_load(&db->is_up)) ||
	    check_notifications(db, &why_not) != 0) {
		if (err != NULL)
			*err = why_not;
		pg_close(db);
		return NULL;
	}
	*schema_version = db->schema_version;
	return db;
}

static int
parse_i64(const char *s, int64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return errno == 0 && end != s && *end == '\0' ? 0 : -1;
}

static void
i64_text(int64_t v, char *buf, size_t size)
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
	if (run(db, "BEGIN", 0, NULL, NULL, "start a transaction", err) != 0)
		return -1;
	db->in_tx = 1;
	/* Again for this transaction alone: through a pooler in transaction
	 * mode (PgBouncer) the session's SETs were made on whichever server
	 * connection the pooler gave then, not necessarily this one. */
	session_settings(settings, sizeof(settings), 1);
	if (main_exec(db, settings, 0, NULL, 1, NULL, "set the transaction's timeouts", err) != 0 ||
	    run(db, lock, 0, NULL, NULL, "wait for the other writers", err) != 0) {
		rollback_quietly(db);
		db->in_tx = 0;
		return -1;
	}
	return 0;
}

/* A connection that died while idle (the server restarted, the backend
 * was terminated) is noticed only when BEGIN fails; nothing of the change
 * was sent yet, so while the store is thought up, one reconnection and a
 * second try are safe, and the outage is declared only if that fails. */
static int
pg_begin(void *handle, struct error *err)
{
	struct pg_store *db = handle;
	int rc;

	db->tx_deadline = monotonic_ms() + atomic_load(&timeout_ms);
	db->first_audit_id = 0;
	if (ensure_connected(db, err) != 0)
		return -1;
	db->is_loss_quiet = atomic_load(&db->is_up);
	rc = begin_once(db, err);
	db->is_loss_quiet = 0;
	if (rc == 0 || PQstatus(db->conn) == CONNECTION_OK || !atomic_load(&db->is_up))
		return rc;
	PQfinish(db->conn);
	db->conn = NULL;
	if (ensure_connected(db, err) != 0)
		return -1;
	return begin_once(db, err);
}

/* A COMMIT that got no answer may have been applied or not. The
 * transaction's first audit id says which, afterwards: ids come from a
 * sequence that a rollback does not give back, so the row exists only if
 * the transaction committed. */
static int
pg_commit(void *handle, struct error *err)
{
	struct pg_store *db = handle;
	int rc = run(db, "COMMIT", 0, NULL, NULL, "commit", err);

	db->in_tx = 0;
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
	i64_text(db->unsure_audit_id, id, sizeof(id));
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", LOCK_CLASS,
	         LOCK_WRITE);
	if (run_sql(db, "BEGIN", "start a transaction", &ignored) != 0)
		return;
	if (run_sql(db, lock, "wait for the other writers", &ignored) != 0 ||
	    run(db, "SELECT count(*) FROM audit WHERE id = $1", 1, p, &res,
	        "look for an unconfirmed change", &ignored) != 0) {
		rollback_quietly(db);
		return;
	}
	is_stored = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	rollback_quietly(db);
	log_kv(is_stored ? LOG_INFO : LOG_WARN,
	       is_stored ? "the change whose COMMIT was not confirmed was stored"
	                 : "the change whose COMMIT was not confirmed was not stored",
	       "store", db->description, "audit_id", id, NULL);
	db->unsure_audit_id = 0;
}

static void
pg_rollback(void *handle)
{
	struct pg_store *db = handle;

	if (db->in_tx && db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		rollback_quietly(db);
	db->in_tx = 0;
}

static int
pg_read_version(void *handle, int64_t *version, struct error *err)
{
	struct pg_store *db = handle;
	PGresult *res = NULL;
	int rc = -1;

	if (run(db, "SELECT version FROM store_version WHERE id = 1", 0, NULL, &res,
	        "read the store version", err) != 0)
		return -1;
	if (PQntuples(res) == 1 && parse_i64(PQgetvalue(res, 0, 0), version) == 0)
		rc = 0;
	else
		error_set(err, 500, "the PostgreSQL store %s has no store version",
		          db->description);
	PQclear(res);
	return rc;
}

static int
pg_write_version(void *handle, int64_t version, struct error *err)
{
	struct pg_store *db = handle;
	char text[24], now[24];
	const char *params[2] = {text, now};

	i64_text(version, text, sizeof(text));
	i64_text(time_now_ms(), now, sizeof(now));
	if (run(db, "UPDATE store_version SET version = $1, changed_at = $2 WHERE id = 1", 2,
	        params, NULL, "write the store version", err) != 0)
		return -1;
	return run(db, "SELECT pg_notify('" CHANNEL "', $1)", 1, params, NULL,
	           "notify the other daemons", err);
}

/* --- writes ---------------------------------------------------------- */

static const char *
text_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

static int
pg_upsert_cluster(void *handle, const struct cluster *c, struct error *err)
{
	char version[24];
	const char *p[3] = {c->name, c->path, version};

	i64_text(c->version, version, sizeof(version));
	return run(handle,
	           "INSERT INTO clusters (name, path, version) VALUES ($1, $2, $3) "
	           "ON CONFLICT (name) DO UPDATE SET path = excluded.path, "
	           "version = excluded.version",
	           3, p, NULL, "save a cluster", err);
}

static int
pg_delete_cluster(void *handle, const char *name, struct error *err)
{
	const char *p[1] = {name};

	return run(handle, "DELETE FROM clusters WHERE name = $1", 1, p, NULL, "delete a cluster",
	           err);
}

static int
pg_upsert_node(void *handle, const char *cluster, const struct node *n, struct error *err)
{
	char changed_at[24], expires_at[24];
	const char *p[9] = {cluster,
	                    n->name,
	                    node_status_name(n->status),
	                    text_or_empty(n->reason),
	                    text_or_empty(n->changed_by),
	                    changed_at,
	                    expires_at,
	                    n->address,
	                    n->check};

	i64_text(n->changed_at, changed_at, sizeof(changed_at));
	i64_text(n->expires_at, expires_at, sizeof(expires_at));
	return run(handle,
	           "INSERT INTO nodes (cluster, name, status, reason, changed_by, changed_at, "
	           "expires_at, address, check_url) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
	           "ON CONFLICT (cluster, name) DO UPDATE SET status = excluded.status, "
	           "reason = excluded.reason, changed_by = excluded.changed_by, "
	           "changed_at = excluded.changed_at, expires_at = excluded.expires_at, "
	           "address = excluded.address, check_url = excluded.check_url",
	           9, p, NULL, "save a node", err);
}

static int
pg_upsert_lb(void *handle, const char *cluster, const struct lb *l, struct error *err)
{
	const char *p[5] = {cluster, l->name, l->kind, l->runtime, l->backend};

	return run(handle,
	           "INSERT INTO lbs (cluster, name, kind, runtime, backend) "
	           "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cluster, name) DO UPDATE SET "
	           "kind = excluded.kind, runtime = excluded.runtime, backend = excluded.backend",
	           5, p, NULL, "save a load balancer", err);
}

static int
pg_delete_lb(void *handle, const char *cluster, const char *name, struct error *err)
{
	const char *p[2] = {cluster, name};

	return run(handle, "DELETE FROM lbs WHERE cluster = $1 AND name = $2", 2, p, NULL,
	           "delete a load balancer", err);
}

static int
pg_delete_node(void *handle, const char *cluster, const char *name, struct error *err)
{
	const char *p[2] = {cluster, name};

	return run(handle, "DELETE FROM nodes WHERE cluster = $1 AND name = $2", 2, p, NULL,
	           "delete a node", err);
}

static int
pg_upsert_user(void *handle, const struct user *u, struct error *err)
{
	char created_at[24];
	const char *p[4] = {u->name, role_name(u->role), text_or_empty(u->password_hash),
	                    created_at};

	i64_text(u->created_at, created_at, sizeof(created_at));
	return run(handle,
	           "INSERT INTO users (name, role, password_hash, created_at) "
	           "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET "
	           "role = excluded.role, password_hash = excluded.password_hash, "
	           "created_at = excluded.created_at",
	           4, p, NULL, "save a user", err);
}

static int
pg_delete_user(void *handle, const char *name, struct error *err)
{
	const char *p[1] = {name};

	return run(handle, "DELETE FROM users WHERE name = $1", 1, p, NULL, "delete a user", err);
}

static int
pg_insert_token(void *handle, const struct token *t, struct error *err)
{
	char created_at[24];
	const char *p[7] = {t->id,
	                    role_name(t->role),
	                    text_or_empty(t->description),
	                    text_or_empty(t->hash),
	                    text_or_empty(t->created_by),
	                    created_at,
	                    text_or_empty(t->clusters)};

	i64_text(t->created_at, created_at, sizeof(created_at));
	return run(handle,
	           "INSERT INTO tokens (id, role, description, hash, created_by, created_at, "
	           "clusters) VALUES ($1, $2, $3, $4, $5, $6, $7)",
	           7, p, NULL, "save a token", err);
}

static int
pg_delete_token(void *handle, const char *id, struct error *err)
{
	const char *p[1] = {id};

	return run(handle, "DELETE FROM tokens WHERE id = $1", 1, p, NULL, "delete a token", err);
}

static int
pg_clear_audit(void *handle, struct error *err)
{
	return run(handle, "DELETE FROM audit", 0, NULL, NULL, "clear the audit log", err);
}

static int
pg_insert_audit(void *handle, const struct audit_entry *e, int64_t *id, struct error *err)
{
	struct pg_store *db = handle;
	char at[24];
	const char *p[10] = {at,
	                    text_or_empty(e->cluster),
	                    text_or_empty(e->node),
	                    text_or_empty(e->actor),
	                    text_or_empty(e->address),
	                    text_or_empty(e->action),
	                    text_or_empty(e->old_status),
	                    text_or_empty(e->new_status),
	                    text_or_empty(e->reason),
	                    text_or_empty(e->context)};
	PGresult *res = NULL;
	int rc = -1;

	i64_text(e->at, at, sizeof(at));
	if (run(db,
	        "INSERT INTO audit (at, cluster, node, actor, address, action, old_status, "
	        "new_status, reason, context) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
	        "RETURNING id",
	        10, p, &res, "append to the audit log", err) != 0)
		return -1;
	if (PQntuples(res) == 1 && parse_i64(PQgetvalue(res, 0, 0), id) == 0) {
		if (db->first_audit_id == 0)
			db->first_audit_id = *id;
		rc = 0;
	} else {
		error_set(err, 500, "the PostgreSQL store %s gave no audit id", db->description);
	}
	PQclear(res);
	return rc;
}

static int
pg_find_key(void *handle, const char *key, int *is_found, struct error *err)
{
	const char *p[1] = {key};
	PGresult *res = NULL;

	if (run(handle, "SELECT audit_id FROM idempotency_keys WHERE key = $1", 1, p, &res,
	        "look up an idempotency key", err) != 0)
		return -1;
	*is_found = PQntuples(res) > 0;
	PQclear(res);
	return 0;
}

static int
pg_remember_key(void *handle, const char *key, int64_t now, int64_t audit_id, struct error *err)
{
	char before[24], at[24], id[24];
	const char *forget[1] = {before}, *p[3] = {key, at, id};

	i64_text(now - STORE_KEY_KEEP_MS, before, sizeof(before));
	i64_text(now, at, sizeof(at));
	i64_text(audit_id, id, sizeof(id));
	if (run(handle, "DELETE FROM idempotency_keys WHERE at < $1", 1, forget, NULL,
	        "forget old idempotency keys", err) != 0)
		return -1;
	return run(handle, "INSERT INTO idempotency_keys (key, at, audit_id) VALUES ($1, $2, $3)",
	           3, p, NULL, "remember an idempotency key", err);
}

/* --- reads ----------------------------------------------------------- */

static char *
value_dup(const PGresult *res, int row, int col)
{
	return xstrdup(PQgetvalue(res, row, col));
}

static char *
value_dup_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : value_dup(res, row, col);
}

static int64_t
value_i64(const PGresult *res, int row, int col)
{
	int64_t v = 0;

	parse_i64(PQgetvalue(res, row, col), &v);
	return v;
}

static int
corrupt(struct pg_store *db, const char *what, const char *value, struct error *err)
{
	return error_set(err, 500, "the PostgreSQL store %s is damaged: %s \"%s\"", db->description,
	                 what, value);
}

static int
load_clusters(struct pg_store *db, struct model *m, PGresult *res, struct error *err)
{
	int i, n = PQntuples(res);

	(void)db;
	(void)err;
	m->clusters = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*m->clusters));
	for (i = 0; i < n; i++) {
		struct cluster *c = &m->clusters[m->n_clusters++];
		c->name = value_dup(res, i, 0);
		c->path = value_dup(res, i, 1);
		c->version = value_i64(res, i, 2);
	}
	return 0;
}

/* Nodes come ordered by cluster, then name, as the clusters are: one walk
 * hands each node to its cluster, and each cluster's nodes are counted
 * first so that its array is allocated once. */
static int
load_nodes(struct pg_store *db, struct model *m, PGresult *res, struct error *err)
{
	struct cluster *c;
	size_t ci = 0;
	int i, j, n = PQntuples(res);

	for (i = 0; i < n; i = j) {
		const char *cluster = PQgetvalue(res, i, 0);
		while (ci < m->n_clusters && strcmp(m->clusters[ci].name, cluster) < 0)
			ci++;
		if (ci == m->n_clusters || strcmp(m->clusters[ci].name, cluster) != 0)
			return corrupt(db, "node of an unknown cluster", cluster, err);
		c = &m->clusters[ci];
		for (j = i; j < n && strcmp(PQgetvalue(res, j, 0), cluster) == 0; j++)
			;
		c->nodes = xcalloc((size_t)(j - i), sizeof(*c->nodes));
		for (; i < j; i++) {
			struct node *nd = &c->nodes[c->n_nodes];
			if (node_status_from_string(PQgetvalue(res, i, 2), &nd->status) != 0)
				return corrupt(db, "unknown node status", PQgetvalue(res, i, 2),
				               err);
			nd->name = value_dup(res, i, 1);
			nd->reason = value_dup(res, i, 3);
			nd->changed_by = value_dup(res, i, 4);
			nd->changed_at = value_i64(res, i, 5);
			nd->expires_at = value_i64(res, i, 6);
			nd->address = value_dup_or_null(res, i, 7);
			nd->check = value_dup_or_null(res, i, 8);
			c->n_nodes++;
		}
	}
	return 0;
}

/* Ordered by cluster, then name, like the nodes. */
static int
load_lbs(struct pg_store *db, struct model *m, PGresult *res, struct error *err)
{
	size_t ci = 0;
	int i, j, n = PQntuples(res);

	for (i = 0; i < n; i = j) {
		const char *cluster = PQgetvalue(res, i, 0);
		struct cluster *c;
		while (ci < m->n_clusters && strcmp(m->clusters[ci].name, cluster) < 0)
			ci++;
		if (ci == m->n_clusters || strcmp(m->clusters[ci].name, cluster) != 0)
			return corrupt(db, "load balancer of an unknown cluster", cluster, err);
		c = &m->clusters[ci];
		for (j = i; j < n && strcmp(PQgetvalue(res, j, 0), cluster) == 0; j++)
			;
		c->lbs = xcalloc((size_t)(j - i), sizeof(*c->lbs));
		for (; i < j; i++) {
			struct lb *l = &c->lbs[c->n_lbs];
			if (!lb_kind_is_valid(PQgetvalue(res, i, 2)))
				return corrupt(db, "unknown load balancer kind",
				               PQgetvalue(res, i, 2), err);
			l->name = value_dup(res, i, 1);
			l->kind = value_dup(res, i, 2);
			l->runtime = value_dup_or_null(res, i, 3);
			l->backend = value_dup_or_null(res, i, 4);
			c->n_lbs++;
		}
	}
	return 0;
}

static int
load_users(struct pg_store *db, struct model *m, PGresult *res, struct error *err)
{
	enum role role;
	int i, n = PQntuples(res);

	m->users = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*m->users));
	for (i = 0; i < n; i++) {
		if (role_from_string(PQgetvalue(res, i, 1), &role) != 0)
			return corrupt(db, "unknown role", PQgetvalue(res, i, 1), err);
		struct user *u = &m->users[m->n_users++];
		u->name = value_dup(res, i, 0);
		u->role = role;
		u->password_hash = value_dup(res, i, 2);
		u->created_at = value_i64(res, i, 3);
	}
	return 0;
}

static int
load_tokens(struct pg_store *db, struct model *m, PGresult *res, struct error *err)
{
	enum role role;
	int i, n = PQntuples(res);

	m->tokens = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*m->tokens));
	for (i = 0; i < n; i++) {
		if (role_from_string(PQgetvalue(res, i, 1), &role) != 0)
			return corrupt(db, "unknown role", PQgetvalue(res, i, 1), err);
		struct token *t = &m->tokens[m->n_tokens++];
		t->id = value_dup(res, i, 0);
		t->role = role;
		t->description = value_dup(res, i, 2);
		t->hash = value_dup(res, i, 3);
		t->created_by = value_dup(res, i, 4);
		t->created_at = value_i64(res, i, 5);
		t->clusters = value_dup(res, i, 6);
	}
	return 0;
}

/* What a load reads, in this order (clusters before what belongs to
 * them), and the function that takes each SELECT's rows; the store
 * version comes last. */
#define LOAD_SELECTS                                                                               \
	"SELECT name, path, version FROM clusters ORDER BY name COLLATE \"C\";"                    \
	"SELECT cluster, name, status, reason, changed_by, changed_at, expires_at, address, "      \
	"check_url FROM nodes ORDER BY cluster COLLATE \"C\", name COLLATE \"C\";"                 \
	"SELECT cluster, name, kind, runtime, backend FROM lbs "                                   \
	"ORDER BY cluster COLLATE \"C\", name COLLATE \"C\";"                                      \
	"SELECT name, role, password_hash, created_at FROM users ORDER BY name COLLATE \"C\";"     \
	"SELECT id, role, description, hash, created_by, created_at, clusters FROM tokens "        \
	"ORDER BY id COLLATE \"C\";"                                                               \
	"SELECT version FROM store_version WHERE id = 1"
static int (*const load_steps[])(struct pg_store *db, struct model *m, PGresult *res,
                                 struct error *err) = {load_clusters, load_nodes, load_lbs,
                                                       load_users, load_tokens};
#define N_LOAD_STEPS ((int)(sizeof(load_steps) / sizeof(load_steps[0])))

/* The store version, the last result of a load. */
static int
take_version(struct pg_store *db, PGresult *res, int64_t *version, struct error *err)
{
	if (PQntuples(res) == 1 && parse_i64(PQgetvalue(res, 0, 0), version) == 0)
		return 0;
	return error_set(err, 500, "the PostgreSQL store %s has no store version", db->description);
}

/* The whole model in one round trip: the statements go as one simple
 * query and their results come back in order. Outside a write
 * transaction it is wrapped in one REPEATABLE READ transaction (one
 * moment); inside one, the writer lock keeps everything still. A failed
 * statement ends the query: the results after it never come. */
static int
pg_load(void *handle, struct model *m, int64_t *version, struct error *err)
{
	struct pg_store *db = handle;
	int is_own = !db->in_tx, rc = 0, step = is_own ? -1 : 0, last = N_LOAD_STEPS;
	PGresult *res;

	if (is_own)
		db->tx_deadline = monotonic_ms() + atomic_load(&timeout_ms);
	if (is_own && ensure_connected(db, err) != 0)
		return -1;
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
		return fail(db, NULL, "load the store", err);
	if (!PQsendQuery(db->conn,
	                 is_own ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;" LOAD_SELECTS
	                          ";COMMIT"
	                        : LOAD_SELECTS))
		return fail(db, NULL, "load the store", err);
	db->in_tx = 1;
	for (;; step++) {
		int ready = await_ready(db->conn, db->tx_deadline, -1);
		if (ready == -2) {
			abandon(db->conn);
			db->conn = NULL;
			db->in_tx = 0;
			return error_set(
			    err, 503,
			    "cannot load the PostgreSQL store %s: no answer within %d ms "
			    "(--store-timeout)",
			    db->description, atomic_load(&timeout_ms));
		}
		if (ready != 0 || (res = PQgetResult(db->conn)) == NULL)
			break;
		ExecStatusType st = PQresultStatus(res);
		if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
			rc = fail(db, res, "load the store", err);
		else if (rc == 0 && step >= 0 && step < last)
			rc = load_steps[step](db, m, res, err);
		else if (rc == 0 && step == last)
			rc = take_version(db, res, version, err);
		PQclear(res);
	}
	if (rc == 0 && (db->conn == NULL || step < last + 1 + is_own))
		rc = fail(db, NULL, "load the store", err); /* the connection went */
	if (is_own) {
		if (rc != 0 && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
			pg_rollback(db);
		db->in_tx = 0;
	}
	return rc;
}

static int
pg_read_audit(void *handle, const char *cluster, int64_t limit, struct audit_log *out,
              struct error *err)
{
	struct pg_store *db = handle;
	char limit_text[24];
	const char *p[2] = {limit_text, cluster};
	PGresult *res = NULL;
	int i, n;

	if (ensure_connected(db, err) != 0)
		return -1;
	i64_text(limit < 0 ? INT64_MAX : limit, limit_text, sizeof(limit_text));
	if (run(db,
	        cluster != NULL
	            ? "SELECT id, at, cluster, node, actor, address, action, old_status, "
	              "new_status, reason, context FROM audit WHERE cluster = $2 ORDER BY id DESC "
	              "LIMIT $1"
	            : "SELECT id, at, cluster, node, actor, address, action, old_status, "
	              "new_status, reason, context FROM audit ORDER BY id DESC LIMIT $1",
	        cluster != NULL ? 2 : 1, p, &res, "read the audit log", err) != 0)
		return -1;
	n = PQntuples(res);
	for (i = 0; i < n; i++) {
		struct actor who = {PQgetvalue(res, i, 4), PQgetvalue(res, i, 5)};
		audit_log_add(out, value_i64(res, i, 1), PQgetvalue(res, i, 2),
		              PQgetvalue(res, i, 3), &who, PQgetvalue(res, i, 6),
		              PQgetvalue(res, i, 7), PQgetvalue(res, i, 8), PQgetvalue(res, i, 9));
		out->entries[out->n - 1].id = value_i64(res, i, 0);
		free(out->entries[out->n - 1].context);
		out->entries[out->n - 1].context = xstrdup(PQgetvalue(res, i, 10));
	}
	PQclear(res);
	return 0;
}

/* The other daemons' reports are read through a cursor, a page at a
 * time, so however many there are all arrive (a LIMIT used to drop the
 * rest silently) while no single result holds more than a page. */
#define REMOTE_PROBES_PAGE 16384

static void
copy_text(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}

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
		r->protocol = (int)value_i64(res, (int)i, 3);
		copy_text(r->address, sizeof(r->address), PQgetvalue(res, (int)i, 4));
		copy_text(r->user_agent, sizeof(r->user_agent), PQgetvalue(res, (int)i, 5));
		r->has_user_agent = value_i64(res, (int)i, 6) != 0;
		r->first_at = value_i64(res, (int)i, 7);
		r->last_at = value_i64(res, (int)i, 8);
		r->changed_at = value_i64(res, (int)i, 9);
		r->last_answer = (int)value_i64(res, (int)i, 10);
		r->consecutive = (uint32_t)value_i64(res, (int)i, 11);
		r->since_change = (uint32_t)value_i64(res, (int)i, 12);
		copy_text(r->lb, sizeof(r->lb), PQgetvalue(res, (int)i, 13));
		r->interval_ms = value_i64(res, (int)i, 14);
	}
	*n += rows;
}

/* Reads every other daemon's live report, in the open transaction. */
static int
read_others(struct pg_store *db, const char *const *p, struct probe_report **others,
            size_t *n_others, struct error *err)
{
	PGresult *res = NULL;
	size_t cap = 0, rows;
	char fetch[48];

	snprintf(fetch, sizeof(fetch), "FETCH %d FROM others", REMOTE_PROBES_PAGE);
	*others = NULL;
	*n_others = 0;
	if (run(db,
	        "DECLARE others NO SCROLL CURSOR FOR SELECT daemon, cluster, node, protocol, "
	        "address, user_agent, has_user_agent, first_at, last_at, changed_at, "
	        "last_answer, consecutive, since_change, lb, interval_ms FROM probes "
	        "WHERE daemon <> $1 AND last_at >= $2",
	        2, p, NULL, "read the other daemons' observed probes", err) != 0)
		return -1;
	do {
		if (run(db, fetch, 0, NULL, &res, "read the other daemons' observed probes", err) !=
		    0) {
			free(*others);
			*others = NULL;
			*n_others = 0;
			return -1;
		}
		rows = (size_t)PQntuples(res);
		append_reports(res, others, n_others, &cap);
		PQclear(res);
	} while (rows == REMOTE_PROBES_PAGE);
	if (*others == NULL)
		*others = xcalloc(1, sizeof(**others));
	return 0;
}

static int
pg_share_probes(void *handle, const char *daemon, const struct probe_report *mine, size_t n_mine,
                int64_t forget_before, int want_others, struct probe_report **others,
                size_t *n_others, struct error *err)
{
	struct pg_store *db = handle;
	char before[24];
	const char *p[2] = {daemon, before};
	struct probe_report *read = NULL;
	size_t n_read = 0;

	if (ensure_connected(db, err) != 0)
		return -1;
	i64_text(forget_before, before, sizeof(before));
	db->tx_deadline = monotonic_ms() + atomic_load(&timeout_ms);
	if (run(db, "BEGIN", 0, NULL, NULL, "start sharing observed probes", err) != 0)
		return -1;
	db->in_tx = 1;
	if (n_mine > 0) {
		char *arrays[PG_SHARE_PROBE_COLUMNS];
		int rc;

		pg_share_probe_arrays(mine, n_mine, arrays);
		rc = run(db, pg_share_put_probes_sql, PG_SHARE_PROBE_COLUMNS,
		         (const char *const *)arrays, NULL, "share observed probes", err);
		pg_share_free_arrays(arrays);
		if (rc != 0)
			goto bad;
	}
	if (run(db, "DELETE FROM probes WHERE daemon = $1 AND last_at < $2", 2, p, NULL,
	        "forget old observed probes", err) != 0)
		goto bad;
	if (want_others && read_others(db, p, &read, &n_read, err) != 0)
		goto bad;
	if (pg_commit(db, err) != 0)
		goto bad;
	*others = read != NULL ? read : xcalloc(1, sizeof(**others));
	*n_others = n_read;
	return 0;
bad:
	free(read);
	pg_rollback(db);
	return -1;
}

#define FLEET_MAX 1024

static int
pg_heartbeat(void *handle, const struct daemon_record *me, struct daemon_record **all,
             size_t *n_all, int64_t *store_version, int64_t *changed_at, struct error *err)
{
	struct pg_store *db = handle;
	char version[24], started[24], beat[24];
	const char *p[6] = {me->id, me->host, me->listen, version, started, beat};
	PGresult *res = NULL, *sv = NULL;
	size_t i;
	int n;

	if (ensure_connected(db, err) != 0)
		return -1;
	i64_text(me->version, version, sizeof(version));
	i64_text(me->started_at, started, sizeof(started));
	i64_text(me->heartbeat_at, beat, sizeof(beat));
	if (run(db,
	        "INSERT INTO daemons (id, host, listen, version, started_at, heartbeat_at) "
	        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET "
	        "host = excluded.host, listen = excluded.listen, version = excluded.version, "
	        "started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at",
	        6, p, NULL, "register this daemon", err) != 0 ||
	    run(db,
	        "SELECT id, host, listen, version, started_at, heartbeat_at FROM daemons "
	        "ORDER BY id COLLATE \"C\" LIMIT 1024",
	        0, NULL, &res, "read the daemons", err) != 0 ||
	    run(db, "SELECT version, changed_at FROM store_version WHERE id = 1", 0, NULL, &sv,
	        "read the store version", err) != 0) {
		PQclear(res);
		return -1;
	}
	n = PQntuples(res);
	*all = xcalloc(n > 0 ? (size_t)n : 1, sizeof(**all));
	for (i = 0; i < (size_t)n; i++) {
		struct daemon_record *d = &(*all)[i];
		copy_text(d->id, sizeof(d->id), PQgetvalue(res, (int)i, 0));
		copy_text(d->host, sizeof(d->host), PQgetvalue(res, (int)i, 1));
		copy_text(d->listen, sizeof(d->listen), PQgetvalue(res, (int)i, 2));
		d->version = value_i64(res, (int)i, 3);
		d->started_at = value_i64(res, (int)i, 4);
		d->heartbeat_at = value_i64(res, (int)i, 5);
	}
	*n_all = (size_t)n;
	*store_version = PQntuples(sv) == 1 ? value_i64(sv, 0, 0) : 0;
	*changed_at = PQntuples(sv) == 1 ? value_i64(sv, 0, 1) : 0;
	PQclear(res);
	PQclear(sv);
	return 0;
}

#define SESSIONS_MAX 65536

/* A 32-byte hash as the 64 lowercase hex digits the table stores. */
static void
hex32(const unsigned char in[32], char out[65])
{
	sodium_bin2hex(out, 65, in, 32);
}

/* The other way; -1 unless in is exactly 64 hex digits. */
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

static int
pg_share_sessions(void *handle, const struct session_record *added, size_t n_added,
                  const struct session_record *ended, size_t n_ended, int64_t now,
                  struct session_record **all, size_t *n_all, struct error *err)
{
	struct pg_store *db = handle;
	char id[65], tag[65], expires[24], now_text[24], limit[24];
	const char *p[4] = {id, NULL, tag, expires};
	const char *q[2] = {now_text, limit};
	PGresult *res = NULL;
	size_t i, n_ok = 0;
	int n;

	if (ensure_connected(db, err) != 0)
		return -1;
	i64_text(now, now_text, sizeof(now_text));
	i64_text(SESSIONS_MAX, limit, sizeof(limit));
	db->tx_deadline = monotonic_ms() + atomic_load(&timeout_ms);
	if (run(db, "BEGIN", 0, NULL, NULL, "start sharing sessions", err) != 0)
		return -1;
	db->in_tx = 1;
	for (i = 0; i < n_added; i++) {
		hex32(added[i].id_hash, id);
		hex32(added[i].tag, tag);
		p[1] = added[i].user;
		i64_text(added[i].expires_at, expires, sizeof(expires));
		if (run(db,
		        "INSERT INTO sessions (id_hash, name, tag, expires_at) "
		        "VALUES ($1, $2, $3, $4) ON CONFLICT (id_hash) DO NOTHING",
		        4, p, NULL, "share a session", err) != 0)
			goto bad;
	}
	for (i = 0; i < n_ended; i++) {
		hex32(ended[i].id_hash, id);
		if (run(db, "DELETE FROM sessions WHERE id_hash = $1", 1, p, NULL, "end a session",
		        err) != 0)
			goto bad;
	}
	if (run(db, "DELETE FROM sessions WHERE expires_at <= $1", 1, q, NULL,
	        "forget expired sessions", err) != 0 ||
	    run(db, "SELECT id_hash, name, tag, expires_at FROM sessions LIMIT $1", 1, q + 1, &res,
	        "read the sessions", err) != 0 ||
	    pg_commit(db, err) != 0)
		goto bad;
	n = PQntuples(res);
	*all = xcalloc(n > 0 ? (size_t)n : 1, sizeof(**all));
	for (i = 0; i < (size_t)n; i++) {
		struct session_record *r = &(*all)[n_ok];
		if (unhex32(PQgetvalue(res, (int)i, 0), r->id_hash) != 0 ||
		    unhex32(PQgetvalue(res, (int)i, 2), r->tag) != 0)
			continue; /* not ours to trust */
		copy_text(r->user, sizeof(r->user), PQgetvalue(res, (int)i, 1));
		r->expires_at = value_i64(res, (int)i, 3);
		n_ok++;
	}
	*n_all = n_ok;
	PQclear(res);
	return 0;
bad:
	PQclear(res);
	pg_rollback(db);
	return -1;
}

static void
pg_health(void *handle, struct store_health *out)
{
	struct pg_store *db = handle;

	int64_t started = atomic_load(&db->check_started);
	int64_t round_trip = atomic_load(&db->round_trip_ms);

	out->is_up = atomic_load(&db->is_up);
	out->down_since = atomic_load(&db->down_since);
	/* A check still waiting counts for as long as it has waited, so that
	 * a database that stopped answering looks slow at once. */
	if (started != 0 && monotonic_ms() - started > round_trip)
		round_trip = monotonic_ms() - started;
	out->round_trip_ms = round_trip;
	out->is_slow = out->is_up && round_trip > store_slow_ms();
}

/* --- the watch thread ------------------------------------------------ */

/* Sleeps ms or until stop; 1 when stopping. */
static int
watch_sleep(struct pg_store *db, int ms)
{
	struct pollfd p = {.fd = db->wake_fd, .events = POLLIN};

	poll(&p, 1, ms);
	return atomic_load(&db->is_stopping);
}

/* Runs sql on the listen connection within the deadline (stop
 * interrupts it); the result, or NULL. */
static PGresult *
watch_exec(struct pg_store *db, const char *sql)
{
	int is_late;
	PGresult *res =
	    exec_within(db->listen_conn, sql, 0, NULL, 1, monotonic_ms() + atomic_load(&timeout_ms),
	                db->wake_fd, &is_late);

	if (res != NULL && !is_ok(res)) {
		PQclear(res);
		return NULL;
	}
	return res;
}

static int
watch_run(struct pg_store *db, const char *sql)
{
	PGresult *res = watch_exec(db, sql);

	PQclear(res);
	return res != NULL ? 0 : -1;
}

/* Reads the stored version on the listen connection and measures the
 * round trip (health's "slow"); -1 on error or past the deadline. The
 * start of the check is published meanwhile, so that health sees a check
 * that is taking long before it ends. */
static int
watch_read_version(struct pg_store *db, int64_t *version)
{
	PGresult *res;
	int64_t started = monotonic_ms();
	int rc = -1;

	atomic_store(&db->check_started, started);
	res = watch_exec(db, "SELECT version FROM store_version WHERE id = 1");
	atomic_store(&db->check_started, 0);
	if (res != NULL && PQntuples(res) == 1 && parse_i64(PQgetvalue(res, 0, 0), version) == 0) {
		atomic_store(&db->round_trip_ms, monotonic_ms() - started);
		rc = 0;
	}
	PQclear(res);
	return rc;
}

static void
watch_disconnect(struct pg_store *db)
{
	if (db->listen_conn != NULL)
		abandon(db->listen_conn);
	db->listen_conn = NULL;
}

/* Connects, LISTENs, reads the version: the order matters, so that a
 * change committed between the two is either notified or read. */
static int
watch_connect_and_listen(struct pg_store *db, int64_t *version)
{
	char why[300], settings[160];

	db->listen_conn = connect_within(db, db->listen_values, db->wake_fd, why, sizeof(why));
	if (db->listen_conn == NULL) {
		log_kv(LOG_DEBUG, "PostgreSQL connection attempt failed", "store", db->description,
		       "error", why, NULL);
		return -1;
	}
	session_settings(settings, sizeof(settings), 0);
	if (watch_run(db, settings) != 0 || watch_run(db, "LISTEN " CHANNEL) != 0 ||
	    watch_read_version(db, version) != 0) {
		one_line(PQerrorMessage(db->listen_conn), why, sizeof(why));
		log_kv(LOG_DEBUG, "PostgreSQL listen failed", "store", db->description, "error",
		       why, NULL);
		watch_disconnect(db);
		return -1;
	}
	return 0;
}

/* Full jitter on the upper half: a fleet of daemons does not come back
 * in lock step. */
static int
backoff_ms(int attempt)
{
	int64_t cap = BACKOFF_MIN_MS;

	while (attempt-- > 0 && cap < BACKOFF_MAX_MS)
		cap *= 2;
	if (cap > BACKOFF_MAX_MS)
		cap = BACKOFF_MAX_MS;
	return (int)(cap / 2 + randombytes_uniform((uint32_t)(cap / 2 + 1)));
}

/* Handles what arrived on the listen connection; -1 when it broke. */
static int
watch_consume(struct pg_store *db)
{
	PGnotify *n;
	int64_t version;

	if (!PQconsumeInput(db->listen_conn))
		return -1;
	while ((n = PQnotifies(db->listen_conn)) != NULL) {
		if (n->extra != NULL && parse_i64(n->extra, &version) == 0)
			db->watcher.on_version(db->watcher.arg, version);
		PQfreemem(n);
	}
	return PQstatus(db->listen_conn) == CONNECTION_OK ? 0 : -1;
}

static void
watch_went_down(struct pg_store *db, const char *why)
{
	int was_up = atomic_load(&db->is_up);

	mark_down(db, why);
	if (was_up)
		db->watcher.on_state(db->watcher.arg, 0);
}

static void *
watch_thread(void *arg)
{
	struct pg_store *db = arg;
	struct pollfd p[2];
	int64_t version, next_check = 0;
	int attempt = 0;

	while (!atomic_load(&db->is_stopping)) {
		if (db->listen_conn == NULL) {
			if (watch_connect_and_listen(db, &version) != 0) {
				int delay = backoff_ms(attempt++);
				char n[24], ms[24];

				watch_went_down(db, "cannot connect");
				snprintf(n, sizeof(n), "%d", attempt);
				snprintf(ms, sizeof(ms), "%d", delay);
				log_kv(LOG_DEBUG, "PostgreSQL reconnection attempt failed", "store",
				       db->description, "attempt", n, "next_attempt_in_ms", ms,
				       NULL);
				if (watch_sleep(db, delay))
					break;
				continue;
			}
			attempt = 0;
			if (!atomic_load(&db->is_up)) {
				mark_up(db);
				db->watcher.on_state(db->watcher.arg, 1);
			}
			db->watcher.on_version(db->watcher.arg, version);
			next_check = time_now_ms() + WATCH_CHECK_MS;
		}
		p[0] = (struct pollfd){.fd = PQsocket(db->listen_conn), .events = POLLIN};
		p[1] = (struct pollfd){.fd = db->wake_fd, .events = POLLIN};
		int64_t left = next_check - time_now_ms();
		if (poll(p, 2, left > 0 ? (int)left : 0) < 0 && errno != EINTR)
			continue;
		if (p[1].revents != 0)
			break;
		if (p[0].revents != 0 && watch_consume(db) != 0) {
			watch_disconnect(db);
			watch_went_down(db, "the listening connection was lost");
			continue;
		}
		if (time_now_ms() >= next_check) {
			if (watch_read_version(db, &version) != 0) {
				watch_disconnect(db);
				watch_went_down(db, "the periodic version check failed");
				continue;
			}
			if (!atomic_load(&db->is_up)) {
				/* The main connection failed, yet the database answers. */
				mark_up(db);
				db->watcher.on_state(db->watcher.arg, 1);
			}
			db->watcher.on_version(db->watcher.arg, version);
			watch_consume(db);
			next_check = time_now_ms() + WATCH_CHECK_MS;
		}
	}
	if (db->listen_conn != NULL) /* a clean goodbye: nothing of ours is pending */
		PQfinish(db->listen_conn);
	db->listen_conn = NULL;
	return NULL;
}

static int
watch_start(void *handle, const struct store_watcher *w, struct error *err)
{
	struct pg_store *db = handle;

	db->watcher = *w;
	db->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (db->wake_fd == -1)
		return error_set(err, 500, "cannot create an eventfd: %s", strerror(errno));
	atomic_store(&db->is_stopping, 0);
	if (pthread_create(&db->watch_thread, NULL, watch_thread, db) != 0) {
		close(db->wake_fd);
		db->wake_fd = -1;
		return error_set(err, 500, "cannot start the PostgreSQL watch thread");
	}
	db->is_watching = 1;
	return 0;
}

static void
watch_stop(void *handle)
{
	struct pg_store *db = handle;
	uint64_t one = 1;

	if (!db->is_watching)
		return;
	atomic_store(&db->is_stopping, 1);
	if (write(db->wake_fd, &one, sizeof(one)) != sizeof(one))
		log_kv(LOG_ERROR, "cannot wake the PostgreSQL watch thread", NULL);
	pthread_join(db->watch_thread, NULL);
	close(db->wake_fd);
	db->wake_fd = -1;
	db->is_watching = 0;
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
    .read_audit = pg_read_audit,
    .watch_start = watch_start,
    .watch_stop = watch_stop,
    .share_probes = pg_share_probes,
    .heartbeat = pg_heartbeat,
    .share_sessions = pg_share_sessions,
    .health = pg_health,
};
