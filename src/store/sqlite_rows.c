/*
 * sqlite_rows.c - the SQLite statements and the model's rows: the
 * primitives of a write (one prepared statement each, inside the
 * transaction sqlite.c opened), the load of the whole model, the store
 * version, idempotency keys and the audit log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "sqlite_internal.h"

#define AUDIT_COLUMNS                                                                              \
	"SELECT id, at, cluster, node, actor, address, action, old_status, new_status, reason, "   \
	"context FROM audit "

const char *const sqlite_statement_sql[ST_COUNT] = {
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

/* --- writes ---------------------------------------------------------- */

int
sqlite_upsert_cluster(void *handle, const struct cluster *c, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_UPSERT_CLUSTER];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, c->name)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 2, c->path)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, c->version)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "save a cluster", err);
	return sqlite_run(db, st, "save a cluster", err);
}

int
sqlite_delete_cluster(void *handle, const char *name, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_CLUSTER];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, name)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "delete a cluster", err);
	return sqlite_run(db, st, "delete a cluster", err);
}

int
sqlite_upsert_node(void *handle, const char *cluster, const struct node *n, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_UPSERT_NODE];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, cluster)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 2, n->name)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 3, node_status_name(n->status))) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 4, n->reason)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 5, n->changed_by)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 6, n->changed_at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 7, n->expires_at)) != SQLITE_OK ||
	    (rc = sqlite_bind_text_or_null(st, 8, n->address)) != SQLITE_OK ||
	    (rc = sqlite_bind_text_or_null(st, 9, n->check)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "save a node", err);
	return sqlite_run(db, st, "save a node", err);
}

int
sqlite_upsert_lb(void *handle, const char *cluster, const struct lb *l, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_UPSERT_LB];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, cluster)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 2, l->name)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 3, l->kind)) != SQLITE_OK ||
	    (rc = sqlite_bind_text_or_null(st, 4, l->runtime)) != SQLITE_OK ||
	    (rc = sqlite_bind_text_or_null(st, 5, l->backend)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "save a load balancer", err);
	return sqlite_run(db, st, "save a load balancer", err);
}

int
sqlite_delete_lb(void *handle, const char *cluster, const char *name, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_LB];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, cluster)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 2, name)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "delete a load balancer", err);
	return sqlite_run(db, st, "delete a load balancer", err);
}

int
sqlite_delete_node(void *handle, const char *cluster, const char *name, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_NODE];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, cluster)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 2, name)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "delete a node", err);
	return sqlite_run(db, st, "delete a node", err);
}

int
sqlite_upsert_user(void *handle, const struct user *u, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_UPSERT_USER];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, u->name)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 2, role_name(u->role))) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 3, u->password_hash)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 4, u->created_at)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "save a user", err);
	return sqlite_run(db, st, "save a user", err);
}

int
sqlite_delete_user(void *handle, const char *name, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_USER];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, name)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "delete a user", err);
	return sqlite_run(db, st, "delete a user", err);
}

int
sqlite_insert_token(void *handle, const struct token *t, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_INSERT_TOKEN];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, t->id)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 2, role_name(t->role))) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 3, t->description)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 4, t->hash)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 5, t->created_by)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 6, t->created_at)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 7, t->clusters)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "save a token", err);
	return sqlite_run(db, st, "save a token", err);
}

int
sqlite_delete_token(void *handle, const char *id, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_DELETE_TOKEN];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, id)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "delete a token", err);
	return sqlite_run(db, st, "delete a token", err);
}

int
sqlite_clear_audit(void *handle, struct error *err)
{
	struct sqlite_store *db = handle;

	return sqlite_run(db, db->statements[ST_CLEAR_AUDIT], "clear the audit log", err);
}

int
sqlite_insert_audit(void *handle, const struct audit_entry *e, int64_t *id, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_INSERT_AUDIT];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, e->at)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 2, e->cluster)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 3, e->node)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 4, e->actor)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 5, e->address)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 6, e->action)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 7, e->old_status)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 8, e->new_status)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 9, e->reason)) != SQLITE_OK ||
	    (rc = sqlite_bind_text(st, 10, e->context)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "append to the audit log", err);
	if (sqlite_run(db, st, "append to the audit log", err) != 0)
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
	return sqlite_fail(db, rc, doing, err);
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
	sqlite_finish(st);
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
 * the same way: one walk gathers each cluster's nodes and hands them over
 * when the next cluster's begin. */
static int
load_nodes(struct sqlite_store *db, struct model *m, struct error *err)
{
	sqlite3_stmt *st = db->statements[ST_LOAD_NODES];
	struct cluster *c = NULL;
	struct node *nodes = NULL;
	size_t ci = 0, cap = 0, n = 0;
	int rc;

	while ((rc = next_row(db, st, "load the nodes", err)) == 1) {
		while (ci < m->n_clusters && strcmp(m->clusters[ci].name, column_text(st, 0)) < 0)
			ci++;
		if (ci == m->n_clusters || strcmp(m->clusters[ci].name, column_text(st, 0)) != 0) {
			rc = corrupt(db, "node of an unknown cluster", column_text(st, 0), err);
			break;
		}
		if (c != &m->clusters[ci]) {
			if (c != NULL)
				cluster_take_nodes(c, nodes, n);
			c = &m->clusters[ci], nodes = NULL, cap = 0, n = 0;
		}
		nodes = grow(nodes, n, &cap, sizeof(*nodes));
		if ((rc = read_node(db, st, &nodes[n], err)) != 0)
			break;
		n++;
	}
	if (c != NULL)
		cluster_take_nodes(c, nodes, n); /* freed with the model on an error */
	sqlite_finish(st);
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
	sqlite_finish(st);
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
	sqlite_finish(st);
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
	sqlite_finish(st);
	return rc;
}

int
sqlite_read_version(void *handle, int64_t *version, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_READ_VERSION];
	int rc = next_row(db, st, "read the store version", err);

	if (rc == 1)
		*version = sqlite3_column_int64(st, 0);
	else if (rc == 0)
		rc = corrupt(db, "no store version", "", err);
	sqlite_finish(st);
	return rc == 1 ? 0 : -1;
}

int
sqlite_find_key(void *handle, const char *key, int *is_found, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_FIND_KEY];
	int rc;

	if ((rc = sqlite_bind_text(st, 1, key)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "look up an idempotency key", err);
	rc = next_row(db, st, "look up an idempotency key", err);
	sqlite_finish(st);
	if (rc < 0)
		return -1;
	*is_found = rc == 1;
	return 0;
}

int
sqlite_remember_key(void *handle, const char *key, int64_t now, int64_t audit_id, struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[ST_FORGET_KEYS];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, now - STORE_KEY_KEEP_MS)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "forget old idempotency keys", err);
	if (sqlite_run(db, st, "forget old idempotency keys", err) != 0)
		return -1;
	st = db->statements[ST_REMEMBER_KEY];
	if ((rc = sqlite_bind_text(st, 1, key)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, now)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, audit_id)) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "remember an idempotency key", err);
	return sqlite_run(db, st, "remember an idempotency key", err);
}

int
sqlite_write_version(void *handle, int64_t version, const char *change, struct error *err)
{
	struct sqlite_store *db = handle;

	(void)change; /* one daemon: nobody to tell */
	sqlite3_stmt *st = db->statements[ST_WRITE_VERSION];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, time_now_ms())) != SQLITE_OK)
		return sqlite_bind_failed(db, st, rc, "write the store version", err);
	return sqlite_run(db, st, "write the store version", err);
}

/* One read transaction, so clusters and nodes come from the same moment;
 * inside a write transaction, that one. */
int
sqlite_load(void *handle, struct model *m, int64_t *version, struct error *err)
{
	struct sqlite_store *db = handle;
	int is_own = sqlite3_get_autocommit(db->handle);

	if (is_own && sqlite_run(db, db->statements[ST_BEGIN_READ], "start reading", err) != 0)
		return -1;
	if (load_clusters(db, m, err) != 0 || load_nodes(db, m, err) != 0 ||
	    load_lbs(db, m, err) != 0 || load_users(db, m, err) != 0 ||
	    load_tokens(db, m, err) != 0 || sqlite_read_version(db, version, err) != 0)
		goto bad;
	if (!is_own)
		return 0;
	return sqlite_run(db, db->statements[ST_COMMIT], "finish reading", err);
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

int
sqlite_read_audit(void *handle, const char *cluster, int64_t limit, struct audit_log *out,
                  struct error *err)
{
	struct sqlite_store *db = handle;
	sqlite3_stmt *st = db->statements[cluster ? ST_AUDIT_OF_CLUSTER : ST_AUDIT_ALL];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, limit < 0 ? -1 : limit)) != SQLITE_OK ||
	    (cluster != NULL && (rc = sqlite_bind_text(st, 2, cluster)) != SQLITE_OK))
		return sqlite_bind_failed(db, st, rc, "read the audit log", err);
	while ((rc = next_row(db, st, "read the audit log", err)) == 1)
		read_audit_row(st, out);
	sqlite_finish(st);
	return rc;
}
