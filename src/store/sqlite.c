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
 * The schema is an ordered array of migration steps, and PRAGMA
 * user_version is the number of steps applied. open applies the missing
 * ones, each in its own transaction together with the new user_version, so
 * a crash leaves the database at one version or the next, never between.
 * A database at a higher version was written by a newer clustermgmt: it is
 * refused untouched rather than guessed at. So is an SQLite file that holds
 * someone else's tables.
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
#include "store_backend.h"

#define BUSY_TIMEOUT_MS 5000

struct migration {
	const char *what;
	const char *sql;
};

/* Statuses and roles are stored by name, readable in the sqlite3 shell.
 * Times are ms since the epoch; expires_at 0 means none. The audit log has
 * no foreign keys: it outlives the clusters and nodes it tells about. */
static const char step1_create_tables[] =
    "CREATE TABLE clusters ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " path TEXT NOT NULL UNIQUE,"
    " version INTEGER NOT NULL);"
    "CREATE TABLE nodes ("
    " cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('online', 'offline', 'drain')),"
    " reason TEXT NOT NULL,"
    " changed_by TEXT NOT NULL,"
    " changed_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL DEFAULT 0,"
    " address TEXT,"
    " check_url TEXT,"
    " PRIMARY KEY (cluster, name));"
    "CREATE TABLE users ("
    " name TEXT PRIMARY KEY NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),"
    " password_hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE tokens ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),"
    " description TEXT NOT NULL,"
    " hash TEXT NOT NULL UNIQUE,"
    " created_by TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at INTEGER NOT NULL,"
    " cluster TEXT NOT NULL,"
    " node TEXT NOT NULL,"
    " actor TEXT NOT NULL,"
    " address TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " old_status TEXT NOT NULL,"
    " new_status TEXT NOT NULL,"
    " reason TEXT NOT NULL);";

/* The audit page of one cluster reads its newest entries. */
static const char step2_index_audit_by_cluster[] =
    "CREATE INDEX audit_by_cluster ON audit (cluster, id);";

/* The cluster's named load balancers: kind by name, runtime and
 * backend NULL when not given. */
static const char step3_create_lbs[] =
    "CREATE TABLE lbs ("
    " cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " kind TEXT NOT NULL CHECK (kind IN ('haproxy', 'varnish', 'nginx', 'other')),"
    " runtime TEXT,"
    " backend TEXT,"
    " PRIMARY KEY (cluster, name));";

/* The store version (store.h): one row, set by every write. */
static const char step4_store_version[] = "CREATE TABLE store_version ("
                                          " id INTEGER PRIMARY KEY CHECK (id = 1),"
                                          " version INTEGER NOT NULL);"
                                          "INSERT INTO store_version (id, version) VALUES (1, 0);";

/* What each daemon observed of the load balancers, shared between the
 * daemons of one PostgreSQL store (an SQLite store has one daemon and
 * leaves it empty; the step exists so that both schemas stay the same). */
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
    " first_at INTEGER NOT NULL,"
    " last_at INTEGER NOT NULL,"
    " changed_at INTEGER NOT NULL,"
    " last_answer INTEGER NOT NULL,"
    " consecutive INTEGER NOT NULL,"
    " since_change INTEGER NOT NULL,"
    " interval_ms INTEGER NOT NULL,"
    " PRIMARY KEY (daemon, cluster, node, protocol, lb, address, user_agent,"
    " has_user_agent));";

/* The fleet: each daemon of a shared store registers itself and beats;
 * and when the store last changed, for the daemons' lag in seconds. */
static const char step6_daemons[] =
    "CREATE TABLE daemons ("
    " id TEXT PRIMARY KEY NOT NULL,"
    " host TEXT NOT NULL,"
    " listen TEXT NOT NULL,"
    " version INTEGER NOT NULL,"
    " started_at INTEGER NOT NULL,"
    " heartbeat_at INTEGER NOT NULL);"
    "ALTER TABLE store_version ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0;";

/* The web page's sessions, so that a browser signed in through one daemon
 * is signed in on all (hashes of the ids only; an SQLite store leaves it
 * empty: its one daemon keeps its sessions in memory). */
static const char step7_sessions[] = "CREATE TABLE sessions ("
                                     " id_hash TEXT PRIMARY KEY NOT NULL,"
                                     " name TEXT NOT NULL,"
                                     " tag TEXT NOT NULL,"
                                     " expires_at INTEGER NOT NULL);";

/* Writes retried with the same Idempotency-Key: the key of each write
 * that changed something, with its first audit entry, kept for
 * STORE_KEY_KEEP_MS. */
static const char step8_idempotency_keys[] = "CREATE TABLE idempotency_keys ("
                                             " key TEXT PRIMARY KEY NOT NULL,"
                                             " at INTEGER NOT NULL,"
                                             " audit_id INTEGER NOT NULL);";

/* Who made each change, beyond name and address: how they signed in, their
 * role and its scope, the forwarded chain, user agent and request id (a
 * JSON object, "" for entries written before). */
static const char step9_audit_context[] =
    "ALTER TABLE audit ADD COLUMN context TEXT NOT NULL DEFAULT '';";

/* A token's role may hold on named clusters only ("a,b"; "" for all). */
static const char step10_token_clusters[] =
    "ALTER TABLE tokens ADD COLUMN clusters TEXT NOT NULL DEFAULT '';";

/* Applied in order; PRAGMA user_version counts the steps done. Append
 * only: a released step is never edited, a change is a new step. The
 * PostgreSQL backend has the same steps (postgres.c). */
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

#define AUDIT_COLUMNS                                                                              \
	"SELECT id, at, cluster, node, actor, address, action, old_status, new_status, reason, "   \
	"context FROM audit "

static const char *const statement_sql[ST_COUNT] = {
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_UPSERT_CLUSTER] = "INSERT INTO clusters (name, path, version) VALUES (?1, ?2, ?3) "
                          "ON CONFLICT (name) DO UPDATE SET "
                          "path = excluded.path, version = excluded.version",
    [ST_DELETE_CLUSTER] = "DELETE FROM clusters WHERE name = ?1",
    [ST_UPSERT_NODE] = "INSERT INTO nodes (cluster, name, status, reason, changed_by, "
                       "changed_at, expires_at, address, check_url) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                       "ON CONFLICT (cluster, name) DO UPDATE SET "
                       "status = excluded.status, reason = excluded.reason, "
                       "changed_by = excluded.changed_by, changed_at = excluded.changed_at, "
                       "expires_at = excluded.expires_at, address = excluded.address, "
                       "check_url = excluded.check_url",
    [ST_DELETE_NODE] = "DELETE FROM nodes WHERE cluster = ?1 AND name = ?2",
    [ST_UPSERT_LB] = "INSERT INTO lbs (cluster, name, kind, runtime, backend) "
                     "VALUES (?1, ?2, ?3, ?4, ?5) "
                     "ON CONFLICT (cluster, name) DO UPDATE SET kind = excluded.kind, "
                     "runtime = excluded.runtime, backend = excluded.backend",
    [ST_DELETE_LB] = "DELETE FROM lbs WHERE cluster = ?1 AND name = ?2",
    [ST_UPSERT_USER] = "INSERT INTO users (name, role, password_hash, created_at) "
                       "VALUES (?1, ?2, ?3, ?4) "
                       "ON CONFLICT (name) DO UPDATE SET role = excluded.role, "
                       "password_hash = excluded.password_hash, created_at = excluded.created_at",
    [ST_DELETE_USER] = "DELETE FROM users WHERE name = ?1",
    [ST_INSERT_TOKEN] = "INSERT INTO tokens (id, role, description, hash, created_by, clusters, "
                        "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?7, ?6)",
    [ST_DELETE_TOKEN] = "DELETE FROM tokens WHERE id = ?1",
    [ST_INSERT_AUDIT] = "INSERT INTO audit (at, cluster, node, actor, address, action, "
                        "old_status, new_status, reason, context) "
                        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [ST_LOAD_CLUSTERS] = "SELECT name, path, version FROM clusters ORDER BY name",
    [ST_LOAD_NODES] = "SELECT cluster, name, status, reason, changed_by, changed_at, "
                      "expires_at, address, check_url FROM nodes ORDER BY cluster, name",
    [ST_LOAD_LBS] = "SELECT cluster, name, kind, runtime, backend FROM lbs "
                    "ORDER BY cluster, name",
    [ST_LOAD_USERS] = "SELECT name, role, password_hash, created_at FROM users ORDER BY name",
    [ST_LOAD_TOKENS] = "SELECT id, role, description, hash, created_by, created_at, clusters "
                       "FROM tokens ORDER BY id",
    [ST_AUDIT_ALL] = AUDIT_COLUMNS "ORDER BY id DESC LIMIT ?1",
    [ST_AUDIT_OF_CLUSTER] = AUDIT_COLUMNS "WHERE cluster = ?2 ORDER BY id DESC LIMIT ?1",
    [ST_READ_VERSION] = "SELECT version FROM store_version WHERE id = 1",
    [ST_WRITE_VERSION] = "UPDATE store_version SET version = ?1, changed_at = ?2 WHERE id = 1",
    [ST_CLEAR_AUDIT] = "DELETE FROM audit",
    [ST_FIND_KEY] = "SELECT audit_id FROM idempotency_keys WHERE key = ?1",
    [ST_REMEMBER_KEY] = "INSERT INTO idempotency_keys (key, at, audit_id) VALUES (?1, ?2, ?3)",
    [ST_FORGET_KEYS] = "DELETE FROM idempotency_keys WHERE at < ?1",
};

struct sqlite_store {
	sqlite3 *handle;
	char *path;
	sqlite3_stmt *statements[ST_COUNT];
	int lock_fd; /* "<path>.lock", flock'ed; -1 before */
	int file_fd; /* the database file as opened, for fstat; -1 before */
};

/* --- errors ---------------------------------------------------------- */

/* 503 for what may pass (locks, a full or failing disk), 500 for the rest. */
static int
status_for(int rc)
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

static int
fail(struct sqlite_store *db, int rc, const char *doing, struct error *err)
{
	return error_set(err, status_for(rc), "cannot %s in the SQLite store %s: %s", doing,
	                 db->path, sqlite3_errmsg(db->handle));
}

/* --- running statements ---------------------------------------------- */

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s != NULL ? s : "", -1, SQLITE_STATIC);
}

static int
bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Leaves st ready for its next use, whatever happened. */
static void
finish(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int
bind_failed(struct sqlite_store *db, sqlite3_stmt *st, int rc, const char *doing, struct error *err)
{
	fail(db, rc, doing, err);
	finish(st);
	return -1;
}

/* Runs a statement that returns no rows. */
static int
run(struct sqlite_store *db, sqlite3_stmt *st, const char *doing, struct error *err)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		fail(db, rc, doing, err);
	finish(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Runs SQL of our own (no parameters), for the set-up done once at open. */
static int
exec(struct sqlite_store *db, const char *sql, const char *doing, struct error *err)
{
	int rc = sqlite3_exec(db->handle, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return fail(db, rc, doing, err);
	return 0;
}

static int
query_int(struct sqlite_store *db, const char *sql, int *out, const char *doing, struct error *err)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(db->handle, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	if (rc != SQLITE_ROW)
		fail(db, rc, doing, err);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* --- opening: checks, settings, migrations --------------------------- */

static int
read_user_version(struct sqlite_store *db, int *version, struct error *err)
{
	struct error why;

	if (query_int(db, "PRAGMA user_version", version, "read the schema version", &why) == 0)
		return 0;
	if ((sqlite3_extended_errcode(db->handle) & 0xff) == SQLITE_NOTADB)
		return error_set(err, 400, "%s is not an SQLite database", db->path);
	if (err != NULL)
		*err = why;
	return -1;
}

/* Version 0 must mean "empty", or we would add our tables to a stranger's
 * database. */
static int
check_is_ours(struct sqlite_store *db, int version, struct error *err)
{
	int n_tables = 0;

	if (version > SCHEMA_VERSION)
		return error_set(err, 400,
		                 "%s has schema version %d but this build knows only up to %d; "
		                 "it was written by a newer clustermgmt and is left untouched",
		                 db->path, version, SCHEMA_VERSION);
	if (version > 0)
		return 0;
	if (query_int(db, "SELECT count(*) FROM sqlite_master", &n_tables,
	              "read the list of tables", err) != 0)
		return -1;
	if (n_tables > 0)
		return error_set(err, 400,
		                 "%s is an SQLite database but not a clustermgmt store "
		                 "(it has tables and no schema version)",
		                 db->path);
	return 0;
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
		return fail(db, rc, "switch to WAL mode", err);
	if (!is_wal)
		return error_set(err, 500,
		                 "cannot switch the SQLite store %s to WAL mode "
		                 "(is it on a file system without shared memory?)",
		                 db->path);
	if (exec(db, "PRAGMA synchronous = FULL", "set synchronous=FULL", err) != 0 ||
	    exec(db, "PRAGMA foreign_keys = ON", "turn foreign keys on", err) != 0)
		return -1;
	return 0;
}

/* Applies the step after *version in one transaction. Another process may
 * have migrated in the meantime: the version is read again under the
 * write lock. */
static int
migrate_one_step(struct sqlite_store *db, int *version, struct error *err)
{
	char set_version[64];
	int current = -1;

	if (exec(db, "BEGIN IMMEDIATE", "start a schema migration", err) != 0)
		return -1;
	if (query_int(db, "PRAGMA user_version", &current, "read the schema version", err) != 0)
		goto bad;
	if (current == *version) {
		snprintf(set_version, sizeof(set_version), "PRAGMA user_version = %d", current + 1);
		if (exec(db, migrations[current].sql, migrations[current].what, err) != 0 ||
		    exec(db, set_version, "record the schema version", err) != 0)
			goto bad;
		current++;
	}
	if (exec(db, "COMMIT", "commit a schema migration", err) != 0)
		goto bad;
	*version = current;
	return 0;
bad:
	sqlite3_exec(db->handle, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static int
migrate(struct sqlite_store *db, int *version, struct error *err)
{
	while (*version < SCHEMA_VERSION) {
		if (migrate_one_step(db, version, err) != 0)
			return -1;
	}
	return check_is_ours(db, *version, err);
}

static int
prepare_statements(struct sqlite_store *db, struct error *err)
{
	int i, rc;

	for (i = 0; i < ST_COUNT; i++) {
		rc = sqlite3_prepare_v3(db->handle, statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                        &db->statements[i], NULL);
		if (rc != SQLITE_OK)
			return fail(db, rc, "prepare a statement", err);
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
		fail(db, rc, "open the database", err);
		goto bad;
	}
	sqlite3_extended_result_codes(db->handle, 1);
	sqlite3_busy_timeout(db->handle, BUSY_TIMEOUT_MS);
	/* Nothing is written before we know the file is ours to write, and
	 * nobody else's daemon writes it. */
	if (read_user_version(db, &version, err) != 0 || check_is_ours(db, version, err) != 0 ||
	    lock_exclusively(db, err) != 0 || remember_file(db, err) != 0 ||
	    configure(db, err) != 0 || migrate(db, &version, err) != 0 ||
	    prepare_statements(db, err) != 0)
		goto bad;
	*schema_version = version;
	return db;
bad:
	sqlite_close(db);
	return NULL;
}

/* --- transactions ---------------------------------------------------- */

static int
sqlite_begin(void *handle, struct error *err)
{
	struct sqlite_store *db = handle;

	if (check_file(db, err) != 0)
		return -1;
	return run(db, db->statements[ST_BEGIN_WRITE], "start a transaction", err);
}

static int
sqlite_commit(void *handle, struct error *err)
{
	struct sqlite_store *db = handle;

	return run(db, db->statements[ST_COMMIT], "commit", err);
}

static void
sqlite_rollback(void *handle)
{
	struct sqlite_store *db = handle;

	/* A failed commit may already have rolled back; then this is a no-op. */
	if (!sqlite3_get_autocommit(db->handle))
		run(db, db->statements[ST_ROLLBACK], "roll back", NULL);
}

/* --- writes ---------------------------------------------------------- */

static int
sqlite_upsert_cluster(void *handle, const struct cluster *c, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_UPSERT_CLUSTER];
	int rc;

	if ((rc = bind_text(st, 1, c->name)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, c->path)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, c->version)) != SQLITE_OK)
		return bind_failed(db, st, rc, "save a cluster", err);
	return run(db, st, "save a cluster", err);
}

static int
sqlite_delete_cluster(void *handle, const char *name, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_CLUSTER];
	int rc;

	if ((rc = bind_text(st, 1, name)) != SQLITE_OK)
		return bind_failed(db, st, rc, "delete a cluster", err);
	return run(db, st, "delete a cluster", err);
}

static int
sqlite_upsert_node(void *handle, const char *cluster, const struct node *n, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_UPSERT_NODE];
	int rc;

	if ((rc = bind_text(st, 1, cluster)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, n->name)) != SQLITE_OK ||
	    (rc = bind_text(st, 3, node_status_name(n->status))) != SQLITE_OK ||
	    (rc = bind_text(st, 4, n->reason)) != SQLITE_OK ||
	    (rc = bind_text(st, 5, n->changed_by)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 6, n->changed_at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 7, n->expires_at)) != SQLITE_OK ||
	    (rc = bind_text_or_null(st, 8, n->address)) != SQLITE_OK ||
	    (rc = bind_text_or_null(st, 9, n->check)) != SQLITE_OK)
		return bind_failed(db, st, rc, "save a node", err);
	return run(db, st, "save a node", err);
}

static int
sqlite_upsert_lb(void *handle, const char *cluster, const struct lb *l, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_UPSERT_LB];
	int rc;

	if ((rc = bind_text(st, 1, cluster)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, l->name)) != SQLITE_OK ||
	    (rc = bind_text(st, 3, l->kind)) != SQLITE_OK ||
	    (rc = bind_text_or_null(st, 4, l->runtime)) != SQLITE_OK ||
	    (rc = bind_text_or_null(st, 5, l->backend)) != SQLITE_OK)
		return bind_failed(db, st, rc, "save a load balancer", err);
	return run(db, st, "save a load balancer", err);
}

static int
sqlite_delete_lb(void *handle, const char *cluster, const char *name, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_LB];
	int rc;

	if ((rc = bind_text(st, 1, cluster)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, name)) != SQLITE_OK)
		return bind_failed(db, st, rc, "delete a load balancer", err);
	return run(db, st, "delete a load balancer", err);
}

static int
sqlite_delete_node(void *handle, const char *cluster, const char *name, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_NODE];
	int rc;

	if ((rc = bind_text(st, 1, cluster)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, name)) != SQLITE_OK)
		return bind_failed(db, st, rc, "delete a node", err);
	return run(db, st, "delete a node", err);
}

static int
sqlite_upsert_user(void *handle, const struct user *u, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_UPSERT_USER];
	int rc;

	if ((rc = bind_text(st, 1, u->name)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, role_name(u->role))) != SQLITE_OK ||
	    (rc = bind_text(st, 3, u->password_hash)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, u->created_at)) != SQLITE_OK)
		return bind_failed(db, st, rc, "save a user", err);
	return run(db, st, "save a user", err);
}

static int
sqlite_delete_user(void *handle, const char *name, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_USER];
	int rc;

	if ((rc = bind_text(st, 1, name)) != SQLITE_OK)
		return bind_failed(db, st, rc, "delete a user", err);
	return run(db, st, "delete a user", err);
}

static int
sqlite_insert_token(void *handle, const struct token *t, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_INSERT_TOKEN];
	int rc;

	if ((rc = bind_text(st, 1, t->id)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, role_name(t->role))) != SQLITE_OK ||
	    (rc = bind_text(st, 3, t->description)) != SQLITE_OK ||
	    (rc = bind_text(st, 4, t->hash)) != SQLITE_OK ||
	    (rc = bind_text(st, 5, t->created_by)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 6, t->created_at)) != SQLITE_OK ||
	    (rc = bind_text(st, 7, t->clusters)) != SQLITE_OK)
		return bind_failed(db, st, rc, "save a token", err);
	return run(db, st, "save a token", err);
}

static int
sqlite_delete_token(void *handle, const char *id, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_TOKEN];
	int rc;

	if ((rc = bind_text(st, 1, id)) != SQLITE_OK)
		return bind_failed(db, st, rc, "delete a token", err);
	return run(db, st, "delete a token", err);
}

static int
sqlite_clear_audit(void *handle, struct error *err)
{
	struct sqlite_store *db = handle;

	return run(db, db->statements[ST_CLEAR_AUDIT], "clear the audit log", err);
}

static int
sqlite_insert_audit(void *handle, const struct audit_entry *e, int64_t *id, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_INSERT_AUDIT];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, e->at)) != SQLITE_OK ||
	    (rc = bind_text(st, 2, e->cluster)) != SQLITE_OK ||
	    (rc = bind_text(st, 3, e->node)) != SQLITE_OK ||
	    (rc = bind_text(st, 4, e->actor)) != SQLITE_OK ||
	    (rc = bind_text(st, 5, e->address)) != SQLITE_OK ||
	    (rc = bind_text(st, 6, e->action)) != SQLITE_OK ||
	    (rc = bind_text(st, 7, e->old_status)) != SQLITE_OK ||
	    (rc = bind_text(st, 8, e->new_status)) != SQLITE_OK ||
	    (rc = bind_text(st, 9, e->reason)) != SQLITE_OK ||
	    (rc = bind_text(st, 10, e->context)) != SQLITE_OK)
		return bind_failed(db, st, rc, "append to the audit log", err);
	if (run(db, st, "append to the audit log", err) != 0)
		return -1;
	*id = sqlite3_last_insert_rowid(db->handle);
	return 0;
}

/* --- reads ----------------------------------------------------------- */

static const char *
column_text(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s != NULL ? (const char *)s : "";
}

static char *
column_dup(sqlite3_stmt *st, int i)
{
	return xstrdup(column_text(st, i));
}

static char *
column_dup_or_null(sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return NULL;
	return column_dup(st, i);
}

/* Room for one more element in a growing array of n elements. */
static void *
grow(void *array, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return array;
	*cap = *cap ? *cap * 2 : 8;
	return xreallocarray(array, *cap, size);
}

static int
corrupt(struct sqlite_store *db, const char *what, const char *value, struct error *err)
{
	return error_set(err, 500, "the SQLite store %s is damaged: %s \"%s\"", db->path, what,
	                 value);
}

/* Steps st; 1 for a row, 0 when done, -1 with err filled on error. */
static int
next_row(struct sqlite_store *db, sqlite3_stmt *st, const char *doing, struct error *err)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return fail(db, rc, doing, err);
}

static int
load_clusters(struct sqlite_store *db, struct model *m, struct error *err)
{
	sqlite3_stmt *st = db->statements[ST_LOAD_CLUSTERS];
	struct cluster *c;
	size_t cap = 0;
	int rc;

	while ((rc = next_row(db, st, "load the clusters", err)) == 1) {
		m->clusters = grow(m->clusters, m->n_clusters, &cap, sizeof(*m->clusters));
		c = &m->clusters[m->n_clusters++];
		memset(c, 0, sizeof(*c));
		c->name = column_dup(st, 0);
		c->path = column_dup(st, 1);
		c->version = sqlite3_column_int64(st, 2);
	}
	finish(st);
	return rc;
}

static int
read_node(struct sqlite_store *db, sqlite3_stmt *st, struct node *n, struct error *err)
{
	memset(n, 0, sizeof(*n));
	if (node_status_from_string(column_text(st, 2), &n->status) != 0)
		return corrupt(db, "unknown node status", column_text(st, 2), err);
	n->name = column_dup(st, 1);
	n->reason = column_dup(st, 3);
	n->changed_by = column_dup(st, 4);
	n->changed_at = sqlite3_column_int64(st, 5);
	n->expires_at = sqlite3_column_int64(st, 6);
	n->address = column_dup_or_null(st, 7);
	n->check = column_dup_or_null(st, 8);
	return 0;
}

/* Nodes come ordered by cluster, then name, and the clusters are sorted
 * the same way: one walk hands each node to its cluster. */
static int
load_nodes(struct sqlite_store *db, struct model *m, struct error *err)
{
	sqlite3_stmt *st = db->statements[ST_LOAD_NODES];
	struct cluster *c = NULL;
	size_t ci = 0, cap = 0;
	int rc;

	while ((rc = next_row(db, st, "load the nodes", err)) == 1) {
		while (ci < m->n_clusters && strcmp(m->clusters[ci].name, column_text(st, 0)) < 0)
			ci++;
		if (ci == m->n_clusters || strcmp(m->clusters[ci].name, column_text(st, 0)) != 0) {
			rc = corrupt(db, "node of an unknown cluster", column_text(st, 0), err);
			break;
		}
		if (c != &m->clusters[ci])
			c = &m->clusters[ci], cap = 0;
		c->nodes = grow(c->nodes, c->n_nodes, &cap, sizeof(*c->nodes));
		if ((rc = read_node(db, st, &c->nodes[c->n_nodes], err)) != 0)
			break;
		c->n_nodes++;
	}
	finish(st);
	return rc;
}

/* Ordered by cluster, then name, like the nodes. */
static int
load_lbs(struct sqlite_store *db, struct model *m, struct error *err)
{
	sqlite3_stmt *st = db->statements[ST_LOAD_LBS];
	struct cluster *c = NULL;
	size_t ci = 0, cap = 0;
	struct lb *l;
	int rc;

	while ((rc = next_row(db, st, "load the load balancers", err)) == 1) {
		while (ci < m->n_clusters && strcmp(m->clusters[ci].name, column_text(st, 0)) < 0)
			ci++;
		if (ci == m->n_clusters || strcmp(m->clusters[ci].name, column_text(st, 0)) != 0) {
			rc = corrupt(db, "load balancer of an unknown cluster", column_text(st, 0),
			             err);
			break;
		}
		if (!lb_kind_is_valid(column_text(st, 2))) {
			rc = corrupt(db, "unknown load balancer kind", column_text(st, 2), err);
			break;
		}
		if (c != &m->clusters[ci])
			c = &m->clusters[ci], cap = 0;
		c->lbs = grow(c->lbs, c->n_lbs, &cap, sizeof(*c->lbs));
		l = &c->lbs[c->n_lbs++];
		l->name = column_dup(st, 1);
		l->kind = column_dup(st, 2);
		l->runtime = column_dup_or_null(st, 3);
		l->backend = column_dup_or_null(st, 4);
	}
	finish(st);
	return rc;
}

static int
load_users(struct sqlite_store *db, struct model *m, struct error *err)
{
	sqlite3_stmt *st = db->statements[ST_LOAD_USERS];
	struct user *u;
	enum role role;
	size_t cap = 0;
	int rc;

	while ((rc = next_row(db, st, "load the users", err)) == 1) {
		if (role_from_string(column_text(st, 1), &role) != 0) {
			rc = corrupt(db, "unknown role", column_text(st, 1), err);
			break;
		}
		m->users = grow(m->users, m->n_users, &cap, sizeof(*m->users));
		u = &m->users[m->n_users++];
		u->name = column_dup(st, 0);
		u->role = role;
		u->password_hash = column_dup(st, 2);
		u->created_at = sqlite3_column_int64(st, 3);
	}
	finish(st);
	return rc;
}

static int
load_tokens(struct sqlite_store *db, struct model *m, struct error *err)
{
	sqlite3_stmt *st = db->statements[ST_LOAD_TOKENS];
	struct token *t;
	enum role role;
	size_t cap = 0;
	int rc;

	while ((rc = next_row(db, st, "load the tokens", err)) == 1) {
		if (role_from_string(column_text(st, 1), &role) != 0) {
			rc = corrupt(db, "unknown role", column_text(st, 1), err);
			break;
		}
		m->tokens = grow(m->tokens, m->n_tokens, &cap, sizeof(*m->tokens));
		t = &m->tokens[m->n_tokens++];
		t->id = column_dup(st, 0);
		t->role = role;
		t->description = column_dup(st, 2);
		t->hash = column_dup(st, 3);
		t->created_by = column_dup(st, 4);
		t->created_at = sqlite3_column_int64(st, 5);
		t->clusters = column_dup(st, 6);
	}
	finish(st);
	return rc;
}

static int
sqlite_read_version(void *handle, int64_t *version, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_READ_VERSION];
	int rc = next_row(db, st, "read the store version", err);

	if (rc == 1)
		*version = sqlite3_column_int64(st, 0);
	else if (rc == 0)
		rc = corrupt(db, "no store version", "", err);
	finish(st);
	return rc == 1 ? 0 : -1;
}

static int
sqlite_find_key(void *handle, const char *key, int *is_found, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_FIND_KEY];
	int rc;

	if ((rc = bind_text(st, 1, key)) != SQLITE_OK)
		return bind_failed(db, st, rc, "look up an idempotency key", err);
	rc = next_row(db, st, "look up an idempotency key", err);
	finish(st);
	if (rc < 0)
		return -1;
	*is_found = rc == 1;
	return 0;
}

static int
sqlite_remember_key(void *handle, const char *key, int64_t now, int64_t audit_id, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_FORGET_KEYS];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, now - STORE_KEY_KEEP_MS)) != SQLITE_OK)
		return bind_failed(db, st, rc, "forget old idempotency keys", err);
	if (run(db, st, "forget old idempotency keys", err) != 0)
		return -1;
	st = db->statements[ST_REMEMBER_KEY];
	if ((rc = bind_text(st, 1, key)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, now)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, audit_id)) != SQLITE_OK)
		return bind_failed(db, st, rc, "remember an idempotency key", err);
	return run(db, st, "remember an idempotency key", err);
}

static int
sqlite_write_version(void *handle, int64_t version, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_WRITE_VERSION];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, time_now_ms())) != SQLITE_OK)
		return bind_failed(db, st, rc, "write the store version", err);
	return run(db, st, "write the store version", err);
}

/* One read transaction, so clusters and nodes come from the same moment;
 * inside a write transaction, that one. */
static int
sqlite_load(void *handle, struct model *m, int64_t *version, struct error *err)
{
	struct sqlite_store *db = handle;
	int is_own = sqlite3_get_autocommit(db->handle);

	if (is_own && run(db, db->statements[ST_BEGIN_READ], "start reading", err) != 0)
		return -1;
	if (load_clusters(db, m, err) != 0 || load_nodes(db, m, err) != 0 ||
	    load_lbs(db, m, err) != 0 || load_users(db, m, err) != 0 ||
	    load_tokens(db, m, err) != 0 || sqlite_read_version(db, version, err) != 0)
		goto bad;
	if (!is_own)
		return 0;
	return run(db, db->statements[ST_COMMIT], "finish reading", err);
bad:
	if (is_own)
		sqlite_rollback(db);
	return -1;
}

static void
read_audit_row(sqlite3_stmt *st, struct audit_log *out)
{
	struct actor who = {column_text(st, 4), column_text(st, 5)};

	audit_log_add(out, sqlite3_column_int64(st, 1), column_text(st, 2), column_text(st, 3),
	              &who, column_text(st, 6), column_text(st, 7), column_text(st, 8),
	              column_text(st, 9));
	out->entries[out->n - 1].id = sqlite3_column_int64(st, 0);
	free(out->entries[out->n - 1].context);
	out->entries[out->n - 1].context = xstrdup(column_text(st, 10));
}

static int
sqlite_read_audit(void *handle, const char *cluster, int64_t limit, struct audit_log *out,
                  struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[cluster ? ST_AUDIT_OF_CLUSTER : ST_AUDIT_ALL];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, limit < 0 ? -1 : limit)) != SQLITE_OK ||
	    (cluster != NULL && (rc = bind_text(st, 2, cluster)) != SQLITE_OK))
		return bind_failed(db, st, rc, "read the audit log", err);
	while ((rc = next_row(db, st, "read the audit log", err)) == 1)
		read_audit_row(st, out);
	finish(st);
	return rc;
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
};
