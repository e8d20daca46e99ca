/*
 * sqlite_schema.c - the SQLite schema and its migration.
 *
 * The schema is an ordered array of migration steps, and PRAGMA
 * user_version is the number of steps applied. open applies the missing
 * ones, each in its own transaction together with the new user_version, so
 * a crash leaves the database at one version or the next, never between.
 * A database at a higher version was written by a newer clustermgmt: it is
 * refused untouched rather than guessed at. So is an SQLite file that holds
 * someone else's tables. The PostgreSQL backend has the same steps
 * (postgres_schema.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "sqlite_internal.h"

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

/* PostgreSQL's counter of the probes table's changes (postgres_schema.c);
 * unused here, kept so that both count the same steps. */
static const char step9_probes_version[] =
    "CREATE TABLE probes_version (id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),"
    " version INTEGER NOT NULL);"
    "INSERT INTO probes_version (id, version) VALUES (1, 0);";

/* Who made each change, beyond name and address: how they signed in, their
 * role and its scope, the forwarded chain, user agent and request id (a
 * JSON object, "" for entries written before). */
static const char step10_audit_context[] =
    "ALTER TABLE audit ADD COLUMN context TEXT NOT NULL DEFAULT '';";

/* A token's role may hold on named clusters only ("a,b"; "" for all). */
static const char step11_token_clusters[] =
    "ALTER TABLE tokens ADD COLUMN clusters TEXT NOT NULL DEFAULT '';";

/* Sessions of the identity provider's and the proxy's users shared too:
 * how they signed in, the name the roles file maps, issuer, subject,
 * verified email, the groups claim, and the ID token sealed with a key
 * derived from the session id (peer.h). */
static const char step12_session_identity[] =
    "ALTER TABLE sessions ADD COLUMN kind INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE sessions ADD COLUMN login TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN issuer TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN subject TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN email TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN group_names TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE sessions ADD COLUMN id_token TEXT NOT NULL DEFAULT '';";
/* The rollouts in progress (sqlite_rollouts.c): a daemon restart keeps
 * them; heartbeats update their row, never the store version. A
 * cluster's removal removes its rollouts. */
static const char step13_rollouts[] = "CREATE TABLE rollouts ("
                                      " cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,"
                                      " id TEXT NOT NULL,"
                                      " started_by TEXT NOT NULL,"
                                      " from_address TEXT NOT NULL,"
                                      " started_at INTEGER NOT NULL,"
                                      " beat_at INTEGER NOT NULL,"
                                      " state TEXT NOT NULL,"
                                      " phase TEXT,"
                                      " current_node TEXT,"
                                      " command TEXT,"
                                      " message TEXT,"
                                      " nodes TEXT NOT NULL,"
                                      " verdicts TEXT NOT NULL,"
                                      " PRIMARY KEY (cluster, id));";

/* The transaction that wrote each shared report (postgres_schema.c's
 * step 14); one daemon's store shares nothing, so it stays 0 here. */
static const char step14_probes_xid[] =
    "ALTER TABLE probes ADD COLUMN xid INTEGER NOT NULL DEFAULT 0;";

/* The transaction that last wrote each cluster and node
 * (postgres_schema.c's step 15); one daemon's store reloads nothing, so
 * they stay 0 here. */
static const char step15_clusters_xid[] =
    "ALTER TABLE clusters ADD COLUMN xid INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE nodes ADD COLUMN xid INTEGER NOT NULL DEFAULT 0;";

/* The reports of one node, or of one cluster, read without the others':
 * a daemon reads only the nodes it is asked about (observe/interest.h). */
static const char step16_probes_by_node[] = "CREATE INDEX probes_by_node ON probes (cluster, node);";

/* Applied in order; PRAGMA user_version counts the steps done. Append
 * only: a released step is never edited, a change is a new step. The
 * PostgreSQL backend has the same steps (postgres_schema.c). */
static const struct migration migrations[] = {
    {"create the tables", step1_create_tables},
    {"index the audit log by cluster", step2_index_audit_by_cluster},
    {"create the load balancers' table", step3_create_lbs},
    {"count the store's versions", step4_store_version},
    {"share observed probes", step5_probes},
    {"register the daemons", step6_daemons},
    {"share the web sessions", step7_sessions},
    {"remember idempotency keys", step8_idempotency_keys},
    {"count the observed probes' changes", step9_probes_version},
    {"record who changed what, and how they signed in", step10_audit_context},
    {"scope tokens to clusters", step11_token_clusters},
    {"share who signed in through the identity provider or the proxy", step12_session_identity},
    {"register the rollouts in progress", step13_rollouts},
    {"stamp the observed probes with their transaction", step14_probes_xid},
    {"stamp the clusters and nodes with their transaction", step15_clusters_xid},
    {"index the observed probes by node", step16_probes_by_node},
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* --- opening: checks, settings, migrations --------------------------- */

int
sqlite_read_user_version(struct sqlite_store *db, int *version, struct error *err)
{
	struct error why;

	if (sqlite_query_int(db, "PRAGMA user_version", version, "read the schema version", &why) ==
	    0)
		return 0;
	if ((sqlite3_extended_errcode(db->handle) & 0xff) == SQLITE_NOTADB)
		return error_set(err, 400, "%s is not an SQLite database", db->path);
	if (err != NULL)
		*err = why;
	return -1;
}

/* Version 0 must mean "empty", or we would add our tables to a stranger's
 * database. */
int
sqlite_check_is_ours(struct sqlite_store *db, int version, struct error *err)
{
	int n_tables = 0;

	if (version > SCHEMA_VERSION)
		return error_set(err, 400,
		                 "%s has schema version %d but this build knows only up to %d; "
		                 "it was written by a newer clustermgmt and is left untouched",
		                 db->path, version, SCHEMA_VERSION);
	if (version > 0)
		return 0;
	if (sqlite_query_int(db, "SELECT count(*) FROM sqlite_master", &n_tables,
	                     "read the list of tables", err) != 0)
		return -1;
	if (n_tables > 0)
		return error_set(err, 400,
		                 "%s is an SQLite database but not a clustermgmt store "
		                 "(it has tables and no schema version)",
		                 db->path);
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

	if (sqlite_exec(db, "BEGIN IMMEDIATE", "start a schema migration", err) != 0)
		return -1;
	if (sqlite_query_int(db, "PRAGMA user_version", &current, "read the schema version", err) !=
	    0)
		goto bad;
	if (current == *version) {
		snprintf(set_version, sizeof(set_version), "PRAGMA user_version = %d", current + 1);
		if (sqlite_exec(db, migrations[current].sql, migrations[current].what, err) != 0 ||
		    sqlite_exec(db, set_version, "record the schema version", err) != 0)
			goto bad;
		current++;
	}
	if (sqlite_exec(db, "COMMIT", "commit a schema migration", err) != 0)
		goto bad;
	*version = current;
	return 0;
bad:
	sqlite3_exec(db->handle, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int
sqlite_migrate(struct sqlite_store *db, int *version, struct error *err)
{
	while (*version < SCHEMA_VERSION) {
		if (migrate_one_step(db, version, err) != 0)
			return -1;
	}
	return sqlite_check_is_ours(db, *version, err);
}
