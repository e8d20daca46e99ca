/*
 * postgres_watch.c - the backend's second connection and its thread.
 *
 * The watch thread's connection LISTENs for the other daemons' changes;
 * its socket is poll()ed together with an eventfd that stop uses to wake
 * it, so no HTTP worker ever waits on PostgreSQL. Notifications carry
 * only the version. A daemon never counts them: it compares the version
 * with the one it applied (the engine reloads only for a newer one).
 * Notifications sent while a connection was down are lost, so the
 * thread LISTENs first on every (re)connection, then reads the version;
 * and it reads it again every WATCH_CHECK_MS as a safety net.
 *
 * The same connection carries the fleet's telemetry (postgres_fleet.c):
 * a share thread hands one job at a time to this thread (pg_side_call),
 * which runs it between two polls. The writes of operators thus never
 * queue behind the fleet's probe reports, and a daemon holds two
 * connections in all.
 *
 * When the database is away. A lost connection is replaced at once; only
 * when that fails is the outage declared (the main connection's writes
 * then fail at once with 503), and the thread reconnects in the
 * background with capped, jittered backoff. Once it is back it says so
 * (on_state), and the main connection is re-established at its next
 * use. The outage is logged once when it begins and once when it ends.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <sodium.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "postgres_internal.h"

/* The periodic version check, when nothing else on the connection read
 * the version for that long: a share thread's heartbeat (every 2 s)
 * reads it too, so a daemon's check rarely needs a statement of its own. */
#define WATCH_CHECK_MS 3000
#define BACKOFF_MIN_MS 100  /* first reconnection delay */
#define BACKOFF_MAX_MS 5000 /* cap of the reconnection delay */
#define WATCH_CUTS_MAX 3    /* answered-then-cut attempts before an outage */

/* --- the watch thread ------------------------------------------------ */

static void side_serve(struct pg_store *db);

/* Sleeps ms or until stop, answering side jobs meanwhile (503: there
 * is no connection); 1 when stopping. */
static int
watch_sleep(struct pg_store *db, int ms)
{
	struct pollfd p[2] = {{.fd = db->wake_fd, .events = POLLIN},
	                      {.fd = db->side_fd, .events = POLLIN}};
	int64_t until = time_monotonic_ms() + ms, left;

	while (!atomic_load(&db->is_stopping) && (left = until - time_monotonic_ms()) > 0) {
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			break;
		if (p[1].revents != 0)
			side_serve(db);
	}
	return atomic_load(&db->is_stopping);
}

/* Runs sql on the listen connection within the deadline (stop
 * interrupts it); the result, or NULL. */
static PGresult *
watch_exec(struct pg_store *db, const char *sql)
{
	int is_late;
	PGresult *res =
	    pg_exec_within(db->listen_conn, sql, 0, NULL, 1, time_monotonic_ms() + pg_timeout_ms(),
	                   db->wake_fd, &is_late);

	if (res != NULL && !pg_is_ok(res)) {
		pg_log_if_ended(db->description, res);
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

/* The version was read by a statement sent at started: its round trip
 * (health's "slow"), and the periodic check waits from now. */
static void
version_read_at(struct pg_store *db, int64_t started)
{
	atomic_store(&db->round_trip_ms, time_monotonic_ms() - started);
	db->version_read_at = time_monotonic_ms();
}

/* Reads the stored version on the listen connection and measures the
 * round trip (health's "slow"); -1 on error or past the deadline. The
 * start of the check is published meanwhile, so that health sees a check
 * that is taking long before it ends. */
static int
watch_read_version(struct pg_store *db, int64_t *version)
{
	PGresult *res;
	int64_t started = time_monotonic_ms();
	int rc = -1;

	atomic_store(&db->check_started, started);
	res = watch_exec(db, "SELECT version FROM store_version WHERE id = 1");
	atomic_store(&db->check_started, 0);
	if (res != NULL && PQntuples(res) == 1 &&
	    pg_parse_i64(PQgetvalue(res, 0, 0), version) == 0) {
		version_read_at(db, started);
		rc = 0;
	}
	PQclear(res);
	return rc;
}

/* The version was read: the database answers, and the engine applies a
 * newer version. */
static void
watch_version_seen(struct pg_store *db, int64_t version)
{
	if (!atomic_load(&db->is_up)) {
		/* It was marked down (the main connection failed, or this one): it answers again.
		 */
		pg_mark_up(db);
		db->watcher.on_state(db->watcher.arg, 1);
	}
	db->watcher.on_version(db->watcher.arg, version);
}

void
pg_watch_version_read(struct pg_store *db, int64_t started, int64_t version)
{
	version_read_at(db, started);
	watch_version_seen(db, version);
}

static void
watch_disconnect(struct pg_store *db)
{
	if (db->listen_conn != NULL)
		pg_abandon(db->listen_conn);
	db->listen_conn = NULL;
}

/* Connects, LISTENs, reads the version: the order matters, so that a
 * change committed between the two is either notified or read. -1: no
 * connection; -2: the server answered, and the connection then broke (its
 * backend terminated while starting or being set up): the database is
 * there. */
static int
watch_connect_and_listen(struct pg_store *db, int64_t *version, char *why, size_t why_size)
{
	char settings[160], said[256];
	int is_reached = 0;

	db->n_side_kept = 0; /* prepared statements go with their connection */
	db->is_side_kept_stale = 0;
	db->listen_conn = pg_connect_within(db, db->listen_values, 0, db->wake_fd, said,
	                                    sizeof(said), &is_reached);
	if (db->listen_conn == NULL) {
		snprintf(why, why_size, "cannot connect%s%s", said[0] != '\0' ? ": " : "", said);
		log_kv(LOG_DEBUG, "PostgreSQL connection attempt failed", "store", db->description,
		       "error", said, NULL);
		return is_reached ? -2 : -1;
	}
	pg_session_settings(settings, sizeof(settings), 0);
	if (watch_run(db, settings) != 0 || watch_run(db, "LISTEN " CHANGE_CHANNEL) != 0 ||
	    watch_run(db, "LISTEN " CHANNEL) != 0 || watch_read_version(db, version) != 0) {
		/* A server that answers but refuses to LISTEN (a standby:
		 * "cannot execute LISTEN during recovery") is said as such,
		 * not as a connection that cannot be made. */
		pg_one_line(PQerrorMessage(db->listen_conn), said, sizeof(said));
		snprintf(why, why_size, "connected, then LISTEN or the version check failed: %s",
		         said);
		log_kv(LOG_DEBUG, "PostgreSQL listen failed", "store", db->description, "error",
		       said, NULL);
		watch_disconnect(db);
		return -2; /* connected: the server answered */
	}
	/* Perhaps another server now (a failover): the next read of the
	 * other daemons' reports is a whole one, not one since an xmin of
	 * the server before. */
	db->probes_full_read_at = 0;
	db->sessions_seen_version = -1;
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

/* Hands on the notifications that arrived: a write's change (change.h)
 * and then its version, in the order they were sent. */
static void
watch_hand_on(struct pg_store *db)
{
	PGnotify *n;
	int64_t version;

	while ((n = PQnotifies(db->listen_conn)) != NULL) {
		if (n->extra == NULL)
			;
		else if (strcmp(n->relname, CHANGE_CHANNEL) == 0)
			db->watcher.on_change(db->watcher.arg, n->extra);
		else if (pg_parse_i64(n->extra, &version) == 0)
			db->watcher.on_version(db->watcher.arg, version);
		PQfreemem(n);
	}
}

/* Handles what arrived on the listen connection; -1 when it broke. */
static int
watch_consume(struct pg_store *db)
{
	if (!PQconsumeInput(db->listen_conn))
		return -1;
	watch_hand_on(db);
	return PQstatus(db->listen_conn) == CONNECTION_OK ? 0 : -1;
}

/* Declares the outage, unless the daemon is stopping: the stop cuts the
 * connection attempt or the check under way, which says nothing of the
 * database. */
static void
watch_went_down(struct pg_store *db, const char *why)
{
	int was_up = atomic_load(&db->is_up);

	if (atomic_load(&db->is_stopping))
		return;
	pg_mark_down(db, why);
	if (was_up)
		db->watcher.on_state(db->watcher.arg, 0);
}

/* --- work handed to this connection ------------------------------- */

struct pg_side_job {
	int (*run)(struct pg_store *db, void *arg, struct error *err);
	void *arg;
	int rc;
	int is_done;
	struct error err;
};

/* Runs the waiting job, if any, on the listen connection, then hands
 * on the notifications that arrived meanwhile. */
static void
side_serve(struct pg_store *db)
{
	struct pg_side_job *job;
	uint64_t count;

	if (read(db->side_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_kv(LOG_ERROR, "cannot read the PostgreSQL side eventfd", "error",
		       strerror(errno), NULL);
	pthread_mutex_lock(&db->side_lock);
	job = db->side_job != NULL && !db->side_job->is_done ? db->side_job : NULL;
	pthread_mutex_unlock(&db->side_lock);
	if (job == NULL)
		return;
	error_clear(&job->err);
	if (db->listen_conn == NULL) {
		job->rc = error_set(&job->err, 503,
		                    "the PostgreSQL store %s is unreachable; the daemon reconnects "
		                    "by itself",
		                    db->description);
	} else {
		db->side_deadline = time_monotonic_ms() + pg_timeout_ms();
		job->rc = job->run(db, job->arg, &job->err);
		if (db->listen_conn != NULL && watch_consume(db) != 0)
			watch_disconnect(db);
	}
	pthread_mutex_lock(&db->side_lock);
	job->is_done = 1;
	pthread_cond_broadcast(&db->side_cond);
	pthread_mutex_unlock(&db->side_lock);
}

/* The thread ends: a job waiting now, or handed over later, gets 503. */
static void
side_close(struct pg_store *db)
{
	pthread_mutex_lock(&db->side_lock);
	db->is_side_closed = 1;
	if (db->side_job != NULL && !db->side_job->is_done) {
		db->side_job->rc =
		    error_set(&db->side_job->err, 503, "the PostgreSQL store %s is being closed",
		              db->description);
		db->side_job->is_done = 1;
	}
	pthread_cond_broadcast(&db->side_cond);
	pthread_mutex_unlock(&db->side_lock);
}

int
pg_side_call(struct pg_store *db, int (*run)(struct pg_store *db, void *arg, struct error *err),
             void *arg, struct error *err)
{
	struct pg_side_job job = {.run = run, .arg = arg};
	uint64_t one = 1;

	pthread_mutex_lock(&db->side_lock);
	while (db->side_job != NULL && !db->is_side_closed)
		pthread_cond_wait(&db->side_cond, &db->side_lock);
	if (db->is_side_closed) {
		pthread_mutex_unlock(&db->side_lock);
		return error_set(err, 503, "the PostgreSQL store %s is not watched",
		                 db->description);
	}
	db->side_job = &job;
	pthread_mutex_unlock(&db->side_lock);
	if (write(db->side_fd, &one, sizeof(one)) != sizeof(one))
		log_kv(LOG_ERROR, "cannot wake the PostgreSQL watch thread", NULL);
	pthread_mutex_lock(&db->side_lock);
	while (!job.is_done)
		pthread_cond_wait(&db->side_cond, &db->side_lock);
	db->side_job = NULL;
	pthread_cond_broadcast(&db->side_cond);
	pthread_mutex_unlock(&db->side_lock);
	if (job.rc != 0)
		*err = job.err;
	return job.rc;
}

/* Runs sql on the listen connection: by name when kept (prepared first
 * when this connection has not prepared it yet), else as text. After a
 * kept statement failed, every prepared one is dropped first and
 * prepared again: a plan the server can no longer use (a newer daemon
 * changed the schema under it: "cached plan must not change result
 * type") would otherwise fail every round until the connection ends. */
static PGresult *
side_run(struct pg_store *db, const char *sql, int n, const char *const *params, int is_kept,
         int *is_late)
{
	PGresult *res;
	char name[16];
	int i;

	if (!is_kept)
		return pg_exec_within(db->listen_conn, sql, n, params, 0, db->side_deadline,
		                      db->wake_fd, is_late);
	if (db->is_side_kept_stale) {
		res = pg_exec_within(db->listen_conn, "DEALLOCATE ALL", 0, NULL, 1,
		                     db->side_deadline, db->wake_fd, is_late);
		if (res == NULL || !pg_is_ok(res))
			return res;
		PQclear(res);
		db->n_side_kept = 0;
		db->is_side_kept_stale = 0;
	}
	for (i = 0; i < db->n_side_kept && db->side_kept[i] != sql; i++)
		;
	if (i == PG_SIDE_KEPT_MAX) /* more kept statements than room: as text */
		return side_run(db, sql, n, params, 0, is_late);
	snprintf(name, sizeof(name), "kept%d", i);
	if (i == db->n_side_kept) {
		res = pg_prepare_within(db->listen_conn, name, sql, n, db->side_deadline,
		                        db->wake_fd, is_late);
		if (res == NULL || !pg_is_ok(res))
			return res;
		PQclear(res);
		db->side_kept[db->n_side_kept++] = sql;
	}
	return pg_exec_prepared_within(db->listen_conn, name, n, params, db->side_deadline,
	                               db->wake_fd, is_late);
}

static int
side_exec(struct pg_store *db, const char *sql, int n, const char *const *params, int is_kept,
          PGresult **out, const char *doing, struct error *err)
{
	PGresult *res;
	char why[300];
	int is_late, is_transient;

	if (db->listen_conn == NULL)
		return error_set(err, 503, "cannot %s in the PostgreSQL store %s: not connected",
		                 doing, db->description);
	res = side_run(db, sql, n, params, is_kept, &is_late);
	if (res == NULL) {
		if (is_late)
			snprintf(why, sizeof(why), "no answer within %d ms (--store-timeout)",
			         pg_timeout_ms());
		else
			pg_one_line(PQerrorMessage(db->listen_conn), why, sizeof(why));
		db->is_side_late = is_late;
		watch_disconnect(db);
		return error_set(err, 503, "cannot %s in the PostgreSQL store %s: %s", doing,
		                 db->description, why);
	}
	if (!pg_is_ok(res)) {
		/* the state lies in res: judged before res is cleared */
		is_transient = pg_is_transient_state(PQresultErrorField(res, PG_DIAG_SQLSTATE));
		pg_log_if_ended(db->description, res);
		pg_one_line(PQresultErrorMessage(res), why, sizeof(why));
		PQclear(res);
		db->is_side_kept_stale |= is_kept;
		if (PQstatus(db->listen_conn) != CONNECTION_OK)
			watch_disconnect(db);
		return error_set(err, is_transient ? 503 : 500,
		                 "cannot %s in the PostgreSQL store %s: %s", doing, db->description,
		                 why);
	}
	if (out != NULL)
		*out = res;
	else
		PQclear(res);
	/* Notifications that arrived with the answer are handed on now, not
	 * after the whole job: a long read of the other daemons' reports
	 * must not delay a change's propagation. */
	watch_hand_on(db);
	return 0;
}

int
pg_side_exec(struct pg_store *db, const char *sql, int n, const char *const *params, PGresult **out,
             const char *doing, struct error *err)
{
	return side_exec(db, sql, n, params, 0, out, doing, err);
}

int
pg_side_exec_kept(struct pg_store *db, const char *sql, int n, const char *const *params,
                  PGresult **out, const char *doing, struct error *err)
{
	return side_exec(db, sql, n, params, 1, out, doing, err);
}

/* --- the thread ---------------------------------------------------- */

static void *
watch_thread(void *arg)
{
	struct pg_store *db = arg;
	struct pollfd p[3];
	int64_t version, left;
	int attempt = 0;

	while (!atomic_load(&db->is_stopping)) {
		if (db->listen_conn == NULL && db->is_side_late) {
			/* A side job got no answer in time: as a failed check. */
			db->is_side_late = 0;
			watch_went_down(db, "no answer within the store timeout");
		}
		if (db->listen_conn == NULL) {
			/* A connection just lost (a terminated backend, a restart)
			 * is replaced at once; the outage is declared only when no
			 * connection can be made, or after WATCH_CUTS_MAX attempts
			 * the server answered and cut, so that a write meanwhile
			 * is not refused. */
			char why[400];
			int rc = watch_connect_and_listen(db, &version, why, sizeof(why));

			if (rc == -2 && attempt == 0) {
				/* The replacement was cut too (backends terminated
				 * twice in a row): the server answered, so once more
				 * at once before anything is declared. */
				attempt++;
				continue;
			}
			if (rc != 0) {
				int delay = backoff_ms(attempt++);
				char n[24], ms[24];

				/* A server that answers is declared gone only when
				 * every attempt of a few in a row was cut: one that
				 * refuses us for good (too many clients, starting
				 * up) is an outage, a few terminated backends are
				 * not. */
				if (rc == -1 || attempt > WATCH_CUTS_MAX)
					watch_went_down(db, why);
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
			watch_version_seen(db, version);
		}
		p[0] = (struct pollfd){.fd = PQsocket(db->listen_conn), .events = POLLIN};
		p[1] = (struct pollfd){.fd = db->wake_fd, .events = POLLIN};
		p[2] = (struct pollfd){.fd = db->side_fd, .events = POLLIN};
		left = db->version_read_at + WATCH_CHECK_MS - time_monotonic_ms();
		if (poll(p, 3, left > 0 ? (int)left : 0) < 0 && errno != EINTR)
			continue;
		if (p[1].revents != 0)
			break;
		if (p[0].revents != 0 && watch_consume(db) != 0) {
			log_kv(LOG_DEBUG,
			       "the PostgreSQL listening connection was lost: reconnecting",
			       "store", db->description, NULL);
			watch_disconnect(db);
			continue;
		}
		if (p[2].revents != 0)
			side_serve(db);
		if (db->listen_conn == NULL)
			continue;
		if (time_monotonic_ms() >= db->version_read_at + WATCH_CHECK_MS) {
			if (watch_read_version(db, &version) != 0) {
				/* A connection that broke under the check (a terminated
				 * backend) is replaced at once, as a lost one; a check
				 * without answer in time is an outage. */
				int is_broken = !PQconsumeInput(db->listen_conn) ||
				                PQstatus(db->listen_conn) != CONNECTION_OK;

				watch_disconnect(db);
				if (!is_broken)
					watch_went_down(db, "the periodic version check failed");
				continue;
			}
			watch_version_seen(db, version);
			if (watch_consume(db) != 0)
				watch_disconnect(db);
		}
	}
	side_close(db);
	if (db->listen_conn != NULL) /* a clean goodbye: nothing of ours is pending */
		PQfinish(db->listen_conn);
	db->listen_conn = NULL;
	return NULL;
}

int
pg_watch_start(void *handle, const struct store_watcher *w, struct error *err)
{
	struct pg_store *db = handle;

	db->watcher = *w;
	db->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	db->side_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (db->wake_fd == -1 || db->side_fd == -1) {
		error_set(err, 500, "cannot create an eventfd: %s", strerror(errno));
		goto bad;
	}
	atomic_store(&db->is_stopping, 0);
	db->is_side_closed = 0;
	if (pthread_create(&db->watch_thread, NULL, watch_thread, db) != 0) {
		error_set(err, 500, "cannot start the PostgreSQL watch thread");
		goto bad;
	}
	db->is_watching = 1;
	return 0;
bad:
	db->is_side_closed = 1;
	if (db->wake_fd != -1)
		close(db->wake_fd);
	if (db->side_fd != -1)
		close(db->side_fd);
	db->wake_fd = db->side_fd = -1;
	return -1;
}

void
pg_watch_stop(void *handle)
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
	close(db->side_fd);
	db->wake_fd = db->side_fd = -1;
	db->is_watching = 0;
}
