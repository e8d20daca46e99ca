/*
 * sqlite.c - the SQLite backend of the store (see store_backend.h).
 *
 * One connection, used only by the engine thread. Durability comes from
 * journal_mode=WAL with synchronous=FULL: a commit that returned has been
 * fsynced to the WAL and survives a power loss, and WAL lets a backup or an
 * operator's sqlite3 shell read while the daemon writes. foreign_keys=ON so
 * that deleting a cluster deletes its nodes; a busy_timeout so that a lock
 * held for a moment by another process waits instead of failing.
 *
 * Three files, one job each: this one opens and closes the database
 * (the lock file, the file under our feet, the settings), runs statements
 * and transactions, and holds the backend table; sqlite_schema.c owns the
 * schema and its migration; sqlite_rows.c owns the statements and the
 * model's rows (the writes' primitives, the load, the audit log).
 * sqlite_internal.h is what they share.
 *
 * Every statement with values is prepared once at open and gets the values
 * only through bound parameters; SQL is never built from user strings.
 * Out of memory aborts (xalloc.h), as in the model.
 *
 * One daemon per file: two daemons on one file would each answer from
 * their own snapshot and write under the same version numbers. So open
 * takes an exclusive lock, held until close, on "<path>.lock" beside the
 * database; a second open of the same file, from another process or this
 * one, is refused with a message naming both files. Why a lock file and
 * flock(2) rather than a lock on the database itself: SQLite locks the
 * database with POSIX fcntl locks, and those belong to the process, not
 * to a descriptor - closing ANY descriptor of the file drops ALL of the
 * process's fcntl locks on it, SQLite's included. A lock of our own on
 * the database would have to be an fcntl lock too, or mix with SQLite's
 * byte ranges. flock locks belong to the open file description, are
 * released by the kernel when the process dies (kill -9 included), and a
 * separate file keeps them apart from SQLite entirely. The lock file sits
 * beside the file the path resolves to (symbolic links followed). It is
 * left in place at close: removing it would race with a daemon that has
 * just opened it.
 *
 * The file under our feet: if the database is deleted or replaced while
 * the daemon runs, SQLite keeps writing to the inode it has open, which
 * nobody will ever read again - writes would be acknowledged and lost at
 * the next start. So before each write transaction the file we opened
 * (fstat of a descriptor of our own, kept open until close, so that no
 * close of ours ever drops SQLite's locks) is compared with what the path
 * names now (stat): another device/inode, no file, or no link left means
 * the write is refused with 503.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "sqlite_internal.h"

#define BUSY_TIMEOUT_MS 5000

/* --- errors ---------------------------------------------------------- */

/* 503 for what may pass (locks, a full or failing disk), 500 for the rest. */
int
sqlite_status_for(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
	case SQLITE_FULL:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
		return 503;
	default:
		return 500;
	}
}

int
sqlite_fail(struct sqlite_store *db, int rc, const char *doing, struct error *err)
{
	return error_set(err, sqlite_status_for(rc), "cannot %s in the SQLite store %s: %s", doing,
	                 db->path, sqlite3_errmsg(db->handle));
}

/* --- running statements ---------------------------------------------- */

int
sqlite_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s != NULL ? s : "", -1, SQLITE_STATIC);
}

int
sqlite_bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Leaves st ready for its next use, whatever happened. */
void
sqlite_finish(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int
sqlite_bind_failed(struct sqlite_store *db, sqlite3_stmt *st, int rc, const char *doing,
                   struct error *err)
{
	sqlite_fail(db, rc, doing, err);
	sqlite_finish(st);
	return -1;
}

/* Runs a statement that returns no rows. */
int
sqlite_run(struct sqlite_store *db, sqlite3_stmt *st, const char *doing, struct error *err)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		sqlite_fail(db, rc, doing, err);
	sqlite_finish(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Runs SQL of our own (no parameters), for the set-up done once at open. */
int
sqlite_exec(struct sqlite_store *db, const char *sql, const char *doing, struct error *err)
{
	int rc = sqlite3_exec(db->handle, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return sqlite_fail(db, rc, doing, err);
	return 0;
}

int
sqlite_query_int(struct sqlite_store *db, const char *sql, int *out, const char *doing,
                 struct error *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db->handle, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	if (rc != SQLITE_ROW)
		sqlite_fail(db, rc, doing, err);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int
configure(struct sqlite_store *db, struct error *err)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *mode;
	int rc, is_wal = 0;

	rc = sqlite3_prepare_v2(db->handle, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		mode = sqlite3_column_text(st, 0);
		is_wal = mode != NULL && strcmp((const char *)mode, "wal") == 0;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return sqlite_fail(db, rc, "switch to WAL mode", err);
	if (!is_wal)
		return error_set(err, 500,
		                 "cannot switch the SQLite store %s to WAL mode "
		                 "(is it on a file system without shared memory?)",
		                 db->path);
	if (sqlite_exec(db, "PRAGMA synchronous = FULL", "set synchronous=FULL", err) != 0 ||
	    sqlite_exec(db, "PRAGMA foreign_keys = ON", "turn foreign keys on", err) != 0)
		return -1;
	return 0;
}

static int
prepare_statements(struct sqlite_store *db, struct error *err)
{
	int i, rc;

	for (i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(db->handle, sqlite_statement_sql[i], -1,
		                        SQLITE_PREPARE_PERSISTENT, &db->statements[i], NULL);
		if (rc != SQLITE_OK)
			return sqlite_fail(db, rc, "prepare a statement", err);
	}
	return 0;
}

/* Takes the lock that makes this the only store open on path; see the
 * top of the file. */
static int
lock_exclusively(struct sqlite_store *db, struct error *err)
{
	/* beside the file itself, so that two names of one file (symbolic
	 * links, "./x.db" and "x.db") share one lock */
	char *real = realpath(db->path, NULL);
	const char *file = real != NULL ? real : db->path;
	size_t size = strlen(file) + sizeof(".lock");
	char *lock_path = xmalloc(size), pid[32];
	int rc = -1;
	ssize_t n;

	snprintf(lock_path, size, "%s.lock", file);
	free(real);
	db->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (db->lock_fd == -1) {
		error_set(err, 503, "cannot open the lock file %s of the SQLite store %s: %s",
		          lock_path, db->path, strerror(errno));
		goto done;
	}
	if (flock(db->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK) {
			error_set(err, 503, "cannot lock %s for the SQLite store %s: %s", lock_path,
			          db->path, strerror(errno));
			goto done;
		}
		n = pread(db->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		error_set(err, 409,
		          "the SQLite store %s is in use by another clustermgmt daemon%s%s "
		          "(it holds %s); one daemon per SQLite file - several daemons can share "
		          "a PostgreSQL store",
		          db->path, pid[0] != '\0' ? ", process " : "", pid, lock_path);
		goto done;
	}
	/* our process id, for the message above; the lock is what counts */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(db->lock_fd, 0) == 0)
		n = pwrite(db->lock_fd, pid, (size_t)n, 0);
	rc = 0;
done:
	free(lock_path);
	return rc;
}

/* Opens a descriptor of the database file SQLite has just opened. */
static int
remember_file(struct sqlite_store *db, struct error *err)
{
	db->file_fd = open(db->path, O_RDONLY | O_CLOEXEC);
	if (db->file_fd == -1)
		return error_set(err, 503, "cannot open the SQLite store %s: %s", db->path,
		                 strerror(errno));
	return 0;
}

/* 0 while path still names the file we opened; else 503 with the why. */
static int
check_file(struct sqlite_store *db, struct error *err)
{
	struct stat opened, now;

	if (fstat(db->file_fd, &opened) != 0)
		return error_set(err, 503, "cannot check the SQLite store %s: %s", db->path,
		                 strerror(errno));
	if (stat(db->path, &now) != 0)
		return error_set(err, 503,
		                 "the SQLite store %s was removed while the daemon runs (%s); "
		                 "writes are refused, since they would be lost at the next start: "
		                 "put the file back, or restart the daemon",
		                 db->path, strerror(errno));
	if (opened.st_nlink == 0 || now.st_dev != opened.st_dev || now.st_ino != opened.st_ino)
		return error_set(
		    err, 503,
		    "the SQLite store %s was replaced by another file while the daemon "
		    "runs; writes are refused, since they would be lost at the next "
		    "start: put the original file back, or restart the daemon",
		    db->path);
	return 0;
}

/* The descriptors are closed after sqlite3_close: closing file_fd drops
 * this process's fcntl locks on the database, and SQLite's with them. */
static void
sqlite_close(void *handle)
{
	struct sqlite_store *db = handle;
	int i;

	if (db == NULL)
		return;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(db->statements[i]);
	sqlite3_close(db->handle);
	if (db->file_fd != -1)
		close(db->file_fd);
	if (db->lock_fd != -1)
		close(db->lock_fd);
	free(db->path);
	free(db);
}

static void *
sqlite_open(const char *path, int *schema_version, struct error *err)
{
	struct sqlite_store *db;
	int rc, version = 0;

	db = xcalloc(1, sizeof(*db));
	db->path = xstrdup(path);
	db->lock_fd = db->file_fd = -1;
	rc = sqlite3_open_v2(path, &db->handle, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		sqlite_fail(db, rc, "open the database", err);
		goto bad;
	}
	sqlite3_extended_result_codes(db->handle, 1);
	sqlite3_busy_timeout(db->handle, BUSY_TIMEOUT_MS);
	/* Nothing is written before we know the file is ours to write, and
	 * nobody else's daemon writes it. */
	if (sqlite_read_user_version(db, &version, err) != 0 ||
	    sqlite_check_is_ours(db, version, err) != 0 || lock_exclusively(db, err) != 0 ||
	    remember_file(db, err) != 0 || configure(db, err) != 0 ||
	    sqlite_migrate(db, &version, err) != 0 || prepare_statements(db, err) != 0)
		goto bad;
	*schema_version = version;
	return db;
bad:
	sqlite_close(db);
	return NULL;
}
/* --- transactions ---------------------------------------------------- */

int
sqlite_begin(void *handle, int64_t deadline, struct error *err)
{
	struct sqlite_store *db = handle;

	(void)deadline; /* a local file: SQLite's busy timeout bounds the wait */
	if (check_file(db, err) != 0)
		return -1;
	return sqlite_run(db, db->statements[ST_BEGIN_WRITE], "start a transaction", err);
}

int
sqlite_commit(void *handle, struct error *err)
{
	struct sqlite_store *db = handle;

	return sqlite_run(db, db->statements[ST_COMMIT], "commit", err);
}

void
sqlite_rollback(void *handle)
{
	struct sqlite_store *db = handle;

	/* A failed commit may already have rolled back; then this is a no-op. */
	if (!sqlite3_get_autocommit(db->handle))
		sqlite_run(db, db->statements[ST_ROLLBACK], "roll back", NULL);
}

const struct store_backend store_sqlite_backend = {
    .scheme = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .read_version = sqlite_read_version,
    .write_version = sqlite_write_version,
    .upsert_cluster = sqlite_upsert_cluster,
    .delete_cluster = sqlite_delete_cluster,
    .upsert_node = sqlite_upsert_node,
    .delete_node = sqlite_delete_node,
    .upsert_lb = sqlite_upsert_lb,
    .delete_lb = sqlite_delete_lb,
    .upsert_user = sqlite_upsert_user,
    .delete_user = sqlite_delete_user,
    .insert_token = sqlite_insert_token,
    .delete_token = sqlite_delete_token,
    .clear_audit = sqlite_clear_audit,
    .insert_audit = sqlite_insert_audit,
    .find_key = sqlite_find_key,
    .remember_key = sqlite_remember_key,
    .load = sqlite_load,
    .read_audit = sqlite_read_audit,
    .rollouts_register = sqlite_rollouts_register,
    .rollouts_beat = sqlite_rollouts_beat,
    .rollouts_list = sqlite_rollouts_list,
};
