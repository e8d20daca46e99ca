/*
 * postgres_conn.c - one libpq connection bounded by a deadline.
 *
 * Every connection of the backend (the main one and the watch thread's)
 * is made and used through here: connections are non-blocking and their
 * socket is polled until a deadline (monotonic ms), never left to TCP's
 * timeouts. A late query is cancelled on a thread of its own and its
 * connection reset (pg_abandon), so that what the kernel still holds to
 * send (a COMMIT, say) is dropped instead of delivered after the daemon
 * answered 503.
 *
 * Messages: what the server or libpq says outside a query's answer (the
 * FATAL of a terminated backend, a standby's WARNING) would be printed
 * raw on stderr by libpq's default notice processor; every connection
 * gets a notice receiver that logs it as one line, at the level its
 * severity maps to, so that the log stays logfmt or JSON lines.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "postgres_internal.h"

#define MAX_CANCELS 4 /* cancel requests in flight at once (see send_cancel) */

/* Set on every connection: the server ends by itself what the daemon
 * gave up on at its deadline. A statement or a lock wait past the
 * deadline is cancelled; a transaction left open by a connection the
 * daemon abandoned (the network ate the ROLLBACK) is rolled back, so that
 * it does not hold the write lock against every other daemon for long:
 * the daemon never leaves a transaction idle for more than a moment. */
void
pg_session_settings(char *out, size_t size, int is_local)
{
	int ms = pg_timeout_ms();
	const char *set = is_local ? "SET LOCAL" : "SET";

	snprintf(out, size,
	         "%s statement_timeout = %d; %s lock_timeout = %d; "
	         "%s idle_in_transaction_session_timeout = %d",
	         set, ms, set, ms, set, ms < 1000 ? 1000 : ms);
}

int
pg_is_transient_state(const char *sqlstate)
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
void
pg_one_line(const char *in, char *out, size_t size)
{
	size_t i, n = 0;

	for (i = 0; in != NULL && in[i] != '\0' && n + 1 < size; i++)
		out[n++] = (in[i] == '\n' || in[i] == '\r') ? ' ' : in[i];
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
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

/* What the server said, as one log line with the fields kept apart. */
static void
log_said(const char *description, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	char message[600], detail[600], hint[600];

	if (severity == NULL)
		severity = PQresultErrorField(res, PG_DIAG_SEVERITY);
	pg_one_line(primary != NULL ? primary : PQresultErrorMessage(res), message,
	            sizeof(message));
	pg_one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL), detail, sizeof(detail));
	pg_one_line(PQresultErrorField(res, PG_DIAG_MESSAGE_HINT), hint, sizeof(hint));
	log_kv(severity_level(severity), "PostgreSQL says", "store", description, "severity",
	       severity != NULL ? severity : "", "sqlstate",
	       PQresultErrorField(res, PG_DIAG_SQLSTATE), "message", message, "detail", detail,
	       "hint", hint, NULL);
}

/* libpq's notice receiver: what the server (or libpq itself) says
 * outside a query's answer, such as the FATAL of a terminated backend
 * or a standby's WARNING, would otherwise be printed raw on stderr. */
static void
log_notice(void *arg, const PGresult *res)
{
	log_said(arg, res);
}

void
pg_log_if_ended(const char *description, const PGresult *res)
{
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);

	if (severity != NULL && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0))
		log_said(description, res);
}

/* Every connection of this backend goes through here (connect_within),
 * so that none prints on stderr. */
static void
log_notices(struct pg_store *db, PGconn *conn)
{
	if (conn != NULL)
		PQsetNoticeReceiver(conn, log_notice, db->description);
}

int64_t
pg_deadline(const struct pg_store *db)
{
	return db->op_deadline != 0 ? db->op_deadline : time_monotonic_ms() + pg_timeout_ms();
}

/* One connection attempt, bounded by deadline, that stop can interrupt
 * (wake_fd; -1: none): PQconnectStart and PQconnectPoll on the socket,
 * never connect_timeout alone, which counts per host and per address.
 * Returns the connection, non-blocking and logging its notices, or NULL
 * with why filled. */
PGconn *
pg_connect_within(struct pg_store *db, const char *const *values, int64_t deadline, int wake_fd,
                  char *why, size_t why_size, int *is_reached)
{
	PGconn *conn = PQconnectStartParams(db->keys, values, 1);
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	int64_t start = time_monotonic_ms();
	struct pollfd p[2];
	int is_past_sending = 0;

	if (deadline == 0)
		deadline = start + pg_timeout_ms();
	snprintf(why, why_size, "no answer within %" PRId64 " ms", deadline - start);
	if (conn == NULL) {
		snprintf(why, why_size, "out of memory");
		return NULL;
	}
	log_notices(db, conn);
	while (PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	       st != PGRES_POLLING_FAILED) {
		int64_t left = deadline - time_monotonic_ms();
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
		if (PQstatus(conn) != CONNECTION_STARTED && PQstatus(conn) != CONNECTION_MADE &&
		    PQstatus(conn) != CONNECTION_BAD)
			is_past_sending = 1;
	}
	/* Past the start-up packet and then refused or cut (not silent until
	 * the deadline): the server answered. */
	if (is_reached != NULL)
		*is_reached = is_past_sending &&
		              (st == PGRES_POLLING_FAILED || PQstatus(conn) == CONNECTION_BAD);
	if (st != PGRES_POLLING_OK || PQstatus(conn) != CONNECTION_OK) {
		if (st == PGRES_POLLING_FAILED || PQstatus(conn) == CONNECTION_BAD)
			pg_one_line(PQerrorMessage(conn), why, why_size);
		PQfinish(conn);
		return NULL;
	}
	PQsetnonblocking(conn, 1);
	return conn;
}

/* Waits until conn's answer can be read without blocking, flushing what
 * is still to be sent. 0: ready; -1: the connection broke; -2: the
 * deadline passed or stop woke us. */
int
pg_await_ready(PGconn *conn, int64_t deadline, int wake_fd)
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
		int64_t left = deadline - time_monotonic_ms();
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

int
pg_is_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* Collects the answer of what was sent on conn, waiting on its socket
 * until deadline (monotonic ms): never on TCP's timeouts. Returns the
 * first failed result, else the last one; NULL when no answer came:
 * *is_late then says whether the deadline passed (or stop woke us)
 * rather than the connection breaking. A server that ends the
 * connection in a query's middle (a terminated backend) first answers
 * with its FATAL: that answer is returned, with the connection then
 * CONNECTION_BAD, for it says why. */
static PGresult *
collect_within(PGconn *conn, int64_t deadline, int wake_fd, int *is_late)
{
	PGresult *res, *kept = NULL;
	int rc;

	for (;;) {
		if ((rc = pg_await_ready(conn, deadline, wake_fd)) != 0) {
			if (rc == -1 && kept != NULL && !pg_is_ok(kept)) {
				*is_late = 0;
				return kept;
			}
			PQclear(kept);
			*is_late = rc == -2;
			return NULL;
		}
		if ((res = PQgetResult(conn)) == NULL)
			break;
		if (kept == NULL || (pg_is_ok(kept) && !pg_is_ok(res))) {
			PQclear(kept);
			kept = res;
		} else if (pg_is_ok(res)) {
			PQclear(kept);
			kept = res;
		} else {
			PQclear(res);
		}
	}
	return kept;
}

/* Runs sql (several statements when is_simple) on a non-blocking
 * connection within deadline; the answer as collect_within's. */
PGresult *
pg_exec_within(PGconn *conn, const char *sql, int n, const char *const *params, int is_simple,
               int64_t deadline, int wake_fd, int *is_late)
{
	int is_sent;

	*is_late = 0;
	is_sent = is_simple ? PQsendQuery(conn, sql)
	                    : PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	if (!is_sent)
		return NULL;
	return collect_within(conn, deadline, wake_fd, is_late);
}

PGresult *
pg_prepare_within(PGconn *conn, const char *name, const char *sql, int n, int64_t deadline,
                  int wake_fd, int *is_late)
{
	*is_late = 0;
	if (!PQsendPrepare(conn, name, sql, n, NULL))
		return NULL;
	return collect_within(conn, deadline, wake_fd, is_late);
}

PGresult *
pg_exec_prepared_within(PGconn *conn, const char *name, int n, const char *const *params,
                        int64_t deadline, int wake_fd, int *is_late)
{
	*is_late = 0;
	if (!PQsendQueryPrepared(conn, name, n, params, NULL, NULL, 0))
		return NULL;
	return collect_within(conn, deadline, wake_fd, is_late);
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
void
pg_abandon(PGconn *conn)
{
	struct linger reset = {.l_onoff = 1, .l_linger = 0};

	send_cancel(conn);
	if (PQsocket(conn) >= 0)
		setsockopt(PQsocket(conn), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
	PQfinish(conn);
}
