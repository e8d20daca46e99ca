/*
 * postgres_schema.c - the PostgreSQL schema and its migration.
 *
 * The same steps as SQLite's (sqlite_schema.c), in PostgreSQL's types,
 * recorded in a one-row table schema_version. Migration runs on the main
 * connection in one transaction under an advisory lock of its own, so
 * two daemons starting together cannot both migrate: the second waits,
 * then finds the schema up to date.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres_internal.h"

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

/* Writes retried with the same Idempotency-Key (sqlite_schema.c's step 8). */
static const char step8_idempotency_keys[] = "CREATE TABLE idempotency_keys ("
                                             " key TEXT PRIMARY KEY NOT NULL,"
                                             " at BIGINT NOT NULL,"
                                             " audit_id BIGINT NOT NULL);";

/* A counter of the probes table's changes, bumped by every exchange that
 * wrote or forgot a report: a daemon reads the other daemons' reports
 * only when it moved since its last read. */
static const char step9_probes_version[] =
    "CREATE TABLE probes_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " version BIGINT NOT NULL);"
    "INSERT INTO probes_version (id, version) VALUES (1, 0);";

/* Who made each change, and how they signed in (sqlite_schema.c's step 10). */
static const char step10_audit_context[] =
    "ALTER TABLE audit ADD COLUMN context TEXT NOT NULL DEFAULT '';";

/* Tokens scoped to clusters (sqlite_schema.c's step 11). */
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
/* The rollouts in progress, registered through any daemon and seen
 * through every one (postgres_rollouts.c); heartbeats update their row,
 * never the store version. A cluster's removal removes its rollouts. */
static const char step13_rollouts[] = "CREATE TABLE rollouts ("
                                      " cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,"
                                      " id TEXT NOT NULL,"
                                      " started_by TEXT NOT NULL,"
                                      " from_address TEXT NOT NULL,"
                                      " started_at BIGINT NOT NULL,"
                                      " beat_at BIGINT NOT NULL,"
                                      " state TEXT NOT NULL,"
                                      " phase TEXT,"
                                      " current_node TEXT,"
                                      " command TEXT,"
                                      " message TEXT,"
                                      " nodes TEXT NOT NULL,"
                                      " verdicts TEXT NOT NULL,"
                                      " PRIMARY KEY (cluster, id));";

/* Each report stamped with the transaction that wrote it, so that a
 * daemon reads only the reports written since its last read: every
 * transaction its last read could not see has an id at or above that
 * read's snapshot's xmin (postgres_fleet.c). */
static const char step14_probes_xid[] =
    "ALTER TABLE probes ADD COLUMN xid xid8 NOT NULL DEFAULT '0';"
    "CREATE INDEX probes_by_xid ON probes (xid);";

/* Each cluster and node row stamped with the transaction that last wrote
 * it (every change to a cluster's nodes or load balancers rewrites its
 * row, with its new version), so that a daemon reloads only the clusters
 * changed since its last load, and of those only the nodes changed
 * (postgres_rows.c, pg_reload). A trigger stamps them, whoever writes:
 * a daemon of an older version still connected during an upgrade, or
 * someone by hand. */
static const char step15_clusters_xid[] =
    "ALTER TABLE clusters ADD COLUMN xid xid8 NOT NULL DEFAULT '0';"
    "ALTER TABLE nodes ADD COLUMN xid xid8 NOT NULL DEFAULT '0';"
    "CREATE INDEX nodes_by_xid ON nodes (cluster, xid);"
    "CREATE FUNCTION clustermgmt_stamp_xid() RETURNS trigger LANGUAGE plpgsql AS "
    "$$BEGIN NEW.xid := pg_current_xact_id(); RETURN NEW; END$$;"
    "CREATE TRIGGER clusters_stamp_xid BEFORE INSERT OR UPDATE ON clusters "
    "FOR EACH ROW EXECUTE FUNCTION clustermgmt_stamp_xid();"
    "CREATE TRIGGER nodes_stamp_xid BEFORE INSERT OR UPDATE ON nodes "
    "FOR EACH ROW EXECUTE FUNCTION clustermgmt_stamp_xid();";

/* The reports of one node, or of one cluster, read without the others':
 * a daemon reads only the nodes it is asked about (observe/interest.h). */
static const char step16_probes_by_node[] = "CREATE INDEX probes_by_node ON probes (cluster, node);";

/* The same steps as sqlite_schema.c's, in the same order; schema_version.version
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

/* --- schema ---------------------------------------------------------- */

int
pg_run_sql(struct pg_store *db, const char *sql, const char *doing, struct error *err)
{
	return pg_main_exec(db, sql, 0, NULL, 1, NULL, doing, err);
}

/* 1 when the query's first value is "t", 0 when "f", -1 on error. */
static int
query_bool(struct pg_store *db, const char *sql, const char *doing, struct error *err)
{
	PGresult *res = NULL;
	int rc;

	if (pg_main_exec(db, sql, 0, NULL, 1, &res, doing, err) != 0)
		return -1;
	if (PQntuples(res) != 1) {
		pg_fail(db, res, doing, err);
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
		if (pg_run_sql(db,
		               "CREATE TABLE schema_version (version INTEGER NOT NULL);"
		               "INSERT INTO schema_version (version) VALUES (0)",
		               "record the schema version", err) != 0)
			return -1;
	}
	if (pg_main_exec(db, "SELECT version FROM schema_version", 0, NULL, 1, &res,
	                 "read the schema version", err) != 0)
		return -1;
	if (PQntuples(res) != 1) {
		pg_fail(db, res, "read the schema version", err);
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
		if (pg_run_sql(db, migrations[i].sql, migrations[i].what, err) != 0)
			return -1;
	snprintf(set_version, sizeof(set_version), "UPDATE schema_version SET version = %d",
	         SCHEMA_VERSION);
	if (version < SCHEMA_VERSION &&
	    pg_run_sql(db, set_version, "record the schema version", err) != 0)
		return -1;
	db->schema_version = SCHEMA_VERSION;
	return 0;
}

/* Checks the schema and brings it up to date, in one transaction under
 * the migration lock. */
int
pg_migrate(struct pg_store *db, struct error *err)
{
	char lock[80];

	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d, %d)", LOCK_CLASS,
	         LOCK_MIGRATE);
	if (pg_run_sql(db, "BEGIN", "start a schema migration", err) != 0)
		return -1;
	if (pg_run_sql(db, lock, "wait for the migration lock", err) != 0 ||
	    migrate_locked(db, err) != 0 ||
	    pg_run_sql(db, "COMMIT", "commit a migration", err) != 0)
		goto bad;
	return 0;
bad:
	if (db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK)
		pg_rollback_quietly(db);
	return -1;
}
