/*
 * postgres_rows.c - the model's rows in PostgreSQL: the primitives of a
 * write (one statement each, on the main connection, inside the
 * transaction postgres.c opened under the write lock), the load of the
 * whole model in one round trip, and the audit log.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "postgres_internal.h"

/* --- writes ---------------------------------------------------------- */

static const char *
text_or_empty(const char *s)
{
	return s != NULL ? s : "";
}

int
pg_upsert_cluster(void *handle, const struct cluster *c, struct error *err)
{
	char version[24];
	const char *p[3] = {c->name, c->path, version};

	pg_i64_text(c->version, version, sizeof(version));
	return pg_run(handle,
	              "INSERT INTO clusters (name, path, version) VALUES ($1, $2, $3) "
	              "ON CONFLICT (name) DO UPDATE SET path = excluded.path, "
	              "version = excluded.version",
	              3, p, NULL, "save a cluster", err);
}

int
pg_delete_cluster(void *handle, const char *name, struct error *err)
{
	const char *p[1] = {name};

	return pg_run(handle, "DELETE FROM clusters WHERE name = $1", 1, p, NULL,
	              "delete a cluster", err);
}

int
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

	pg_i64_text(n->changed_at, changed_at, sizeof(changed_at));
	pg_i64_text(n->expires_at, expires_at, sizeof(expires_at));
	return pg_run(handle,
	              "INSERT INTO nodes (cluster, name, status, reason, changed_by, changed_at, "
	              "expires_at, address, check_url) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
	              "ON CONFLICT (cluster, name) DO UPDATE SET status = excluded.status, "
	              "reason = excluded.reason, changed_by = excluded.changed_by, "
	              "changed_at = excluded.changed_at, expires_at = excluded.expires_at, "
	              "address = excluded.address, check_url = excluded.check_url",
	              9, p, NULL, "save a node", err);
}

int
pg_upsert_lb(void *handle, const char *cluster, const struct lb *l, struct error *err)
{
	const char *p[5] = {cluster, l->name, l->kind, l->runtime, l->backend};

	return pg_run(
	    handle,
	    "INSERT INTO lbs (cluster, name, kind, runtime, backend) "
	    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (cluster, name) DO UPDATE SET "
	    "kind = excluded.kind, runtime = excluded.runtime, backend = excluded.backend",
	    5, p, NULL, "save a load balancer", err);
}

int
pg_delete_lb(void *handle, const char *cluster, const char *name, struct error *err)
{
	const char *p[2] = {cluster, name};

	return pg_run(handle, "DELETE FROM lbs WHERE cluster = $1 AND name = $2", 2, p, NULL,
	              "delete a load balancer", err);
}

int
pg_delete_node(void *handle, const char *cluster, const char *name, struct error *err)
{
	const char *p[2] = {cluster, name};

	return pg_run(handle, "DELETE FROM nodes WHERE cluster = $1 AND name = $2", 2, p, NULL,
	              "delete a node", err);
}

int
pg_upsert_user(void *handle, const struct user *u, struct error *err)
{
	char created_at[24];
	const char *p[4] = {u->name, role_name(u->role), text_or_empty(u->password_hash),
	                    created_at};

	pg_i64_text(u->created_at, created_at, sizeof(created_at));
	return pg_run(handle,
	              "INSERT INTO users (name, role, password_hash, created_at) "
	              "VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET "
	              "role = excluded.role, password_hash = excluded.password_hash, "
	              "created_at = excluded.created_at",
	              4, p, NULL, "save a user", err);
}

int
pg_delete_user(void *handle, const char *name, struct error *err)
{
	const char *p[1] = {name};

	return pg_run(handle, "DELETE FROM users WHERE name = $1", 1, p, NULL, "delete a user",
	              err);
}

int
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

	pg_i64_text(t->created_at, created_at, sizeof(created_at));
	return pg_run(handle,
	              "INSERT INTO tokens (id, role, description, hash, created_by, created_at, "
	              "clusters) VALUES ($1, $2, $3, $4, $5, $6, $7)",
	              7, p, NULL, "save a token", err);
}

int
pg_delete_token(void *handle, const char *id, struct error *err)
{
	const char *p[1] = {id};

	return pg_run(handle, "DELETE FROM tokens WHERE id = $1", 1, p, NULL, "delete a token",
	              err);
}

int
pg_clear_audit(void *handle, struct error *err)
{
	return pg_run(handle, "DELETE FROM audit", 0, NULL, NULL, "clear the audit log", err);
}

int
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

	pg_i64_text(e->at, at, sizeof(at));
	if (pg_run(db,
	           "INSERT INTO audit (at, cluster, node, actor, address, action, old_status, "
	           "new_status, reason, context) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
	           "RETURNING id",
	           10, p, &res, "append to the audit log", err) != 0)
		return -1;
	if (PQntuples(res) == 1 && pg_parse_i64(PQgetvalue(res, 0, 0), id) == 0) {
		if (db->first_audit_id == 0)
			db->first_audit_id = *id;
		rc = 0;
	} else {
		error_set(err, 500, "the PostgreSQL store %s gave no audit id", db->description);
	}
	PQclear(res);
	return rc;
}

int
pg_find_key(void *handle, const char *key, int *is_found, struct error *err)
{
	const char *p[1] = {key};
	PGresult *res = NULL;

	if (pg_run(handle, "SELECT audit_id FROM idempotency_keys WHERE key = $1", 1, p, &res,
	           "look up an idempotency key", err) != 0)
		return -1;
	*is_found = PQntuples(res) > 0;
	PQclear(res);
	return 0;
}

int
pg_remember_key(void *handle, const char *key, int64_t now, int64_t audit_id, struct error *err)
{
	char before[24], at[24], id[24];
	const char *forget[1] = {before}, *p[3] = {key, at, id};

	pg_i64_text(now - STORE_KEY_KEEP_MS, before, sizeof(before));
	pg_i64_text(now, at, sizeof(at));
	pg_i64_text(audit_id, id, sizeof(id));
	if (pg_run(handle, "DELETE FROM idempotency_keys WHERE at < $1", 1, forget, NULL,
	           "forget old idempotency keys", err) != 0)
		return -1;
	return pg_run(handle,
	              "INSERT INTO idempotency_keys (key, at, audit_id) VALUES ($1, $2, $3)", 3, p,
	              NULL, "remember an idempotency key", err);
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

int64_t
pg_value_i64(const PGresult *res, int row, int col)
{
	int64_t v = 0;

	pg_parse_i64(PQgetvalue(res, row, col), &v);
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
		c->version = pg_value_i64(res, i, 2);
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
			nd->changed_at = pg_value_i64(res, i, 5);
			nd->expires_at = pg_value_i64(res, i, 6);
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
		u->created_at = pg_value_i64(res, i, 3);
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
		t->created_at = pg_value_i64(res, i, 5);
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
	if (PQntuples(res) == 1 && pg_parse_i64(PQgetvalue(res, 0, 0), version) == 0)
		return 0;
	return error_set(err, 500, "the PostgreSQL store %s has no store version", db->description);
}

/* The whole model in one round trip: the statements go as one simple
 * query and their results come back in order. Outside a write
 * transaction it is wrapped in one REPEATABLE READ transaction (one
 * moment); inside one, the writer lock keeps everything still. A failed
 * statement ends the query: the results after it never come. */
int
pg_load(void *handle, struct model *m, int64_t *version, struct error *err)
{
	struct pg_store *db = handle;
	int is_own = !db->in_tx, rc = 0, step = is_own ? -1 : 0, last = N_LOAD_STEPS;
	PGresult *res;

	if (is_own)
		db->tx_deadline = pg_monotonic_ms() + pg_timeout_ms();
	if (is_own && pg_ensure_connected(db, err) != 0)
		return -1;
	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK)
		return pg_fail(db, NULL, "load the store", err);
	if (!PQsendQuery(db->conn,
	                 is_own ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;" LOAD_SELECTS
	                          ";COMMIT"
	                        : LOAD_SELECTS))
		return pg_fail(db, NULL, "load the store", err);
	db->in_tx = 1;
	for (;; step++) {
		int ready = pg_await_ready(db->conn, db->tx_deadline, -1);
		if (ready == -2) {
			pg_abandon(db->conn);
			db->conn = NULL;
			db->in_tx = 0;
			return error_set(
			    err, 503,
			    "cannot load the PostgreSQL store %s: no answer within %d ms "
			    "(--store-timeout)",
			    db->description, pg_timeout_ms());
		}
		if (ready != 0 || (res = PQgetResult(db->conn)) == NULL)
			break;
		ExecStatusType st = PQresultStatus(res);
		if (rc == 0 && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
			rc = pg_fail(db, res, "load the store", err);
		else if (rc == 0 && step >= 0 && step < last)
			rc = load_steps[step](db, m, res, err);
		else if (rc == 0 && step == last)
			rc = take_version(db, res, version, err);
		PQclear(res);
	}
	if (rc == 0 && (db->conn == NULL || step < last + 1 + is_own))
		rc = pg_fail(db, NULL, "load the store", err); /* the connection went */
	if (is_own) {
		if (rc != 0 && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
			pg_rollback(db);
		db->in_tx = 0;
	}
	return rc;
}

int
pg_read_audit(void *handle, const char *cluster, int64_t limit, struct audit_log *out,
              struct error *err)
{
	struct pg_store *db = handle;
	char limit_text[24];
	const char *p[2] = {limit_text, cluster};
	PGresult *res = NULL;
	int i, n;

	if (pg_ensure_connected(db, err) != 0)
		return -1;
	pg_i64_text(limit < 0 ? INT64_MAX : limit, limit_text, sizeof(limit_text));
	if (pg_run(
	        db,
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
		audit_log_add(out, pg_value_i64(res, i, 1), PQgetvalue(res, i, 2),
		              PQgetvalue(res, i, 3), &who, PQgetvalue(res, i, 6),
		              PQgetvalue(res, i, 7), PQgetvalue(res, i, 8), PQgetvalue(res, i, 9));
		out->entries[out->n - 1].id = pg_value_i64(res, i, 0);
		free(out->entries[out->n - 1].context);
		out->entries[out->n - 1].context = xstrdup(PQgetvalue(res, i, 10));
	}
	PQclear(res);
	return 0;
}
