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

#include "../util/strbuf.h"
#include "../util/timefmt.h"
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

/* --- loads ----------------------------------------------------------- */

/* What a reload does with each cluster of the model it builds. */
enum reload_how {
	RELOAD_KEPT,  /* unchanged since the last load: copied from have */
	RELOAD_ALL,   /* new here: every node read */
	RELOAD_DELTA, /* changed: have's nodes, with those written since read */
};

/* What a load fills, step by step (one step per statement's result). */
struct load {
	struct model *m;
	int64_t *version;
	char xmin[24];            /* the xmin of the load's snapshot (own loads) */
	const struct model *have; /* a reload: unchanged clusters come from it */
	/* a reload, per cluster of m: what to do, and for RELOAD_DELTA how
	 * many nodes the store holds (a merge with fewer or more means
	 * nodes were removed: the reload gives way to a full load) */
	unsigned char *how;
	int64_t *counted;
	struct strbuf all, delta; /* SQL literals of the RELOAD_ALL and _DELTA names */
	int is_mismatch;
};

typedef int (*load_step)(struct pg_store *db, struct load *l, PGresult *res, struct error *err);

static int
load_clusters(struct pg_store *db, struct load *l, PGresult *res, struct error *err)
{
	struct model *m = l->m;
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

/* Fills *nd from row i of a nodes SELECT. */
static int
node_from_row(struct pg_store *db, PGresult *res, int i, struct node *nd, struct error *err)
{
	if (node_status_from_string(PQgetvalue(res, i, 2), &nd->status) != 0)
		return corrupt(db, "unknown node status", PQgetvalue(res, i, 2), err);
	nd->name = value_dup(res, i, 1);
	nd->reason = value_dup(res, i, 3);
	nd->changed_by = value_dup(res, i, 4);
	nd->changed_at = pg_value_i64(res, i, 5);
	nd->expires_at = pg_value_i64(res, i, 6);
	nd->address = value_dup_or_null(res, i, 7);
	nd->check = value_dup_or_null(res, i, 8);
	return 0;
}

/* c's nodes, which are none yet, become those of rows [i, j) of res. */
static int
nodes_from_rows(struct pg_store *db, struct cluster *c, PGresult *res, int i, int j,
                struct error *err)
{
	struct node *nodes = xcalloc((size_t)(j - i) + 1, sizeof(*nodes));
	size_t n = 0;
	int rc = 0;

	for (; i < j && rc == 0; i++)
		if ((rc = node_from_row(db, res, i, &nodes[n], err)) == 0)
			n++;
	cluster_take_nodes(c, nodes, n); /* freed with the model on an error */
	return rc;
}

/* Nodes come ordered by cluster, then name, as the clusters are: one walk
 * hands each cluster its rows. */
static int
load_nodes(struct pg_store *db, struct load *l, PGresult *res, struct error *err)
{
	struct model *m = l->m;
	size_t ci = 0;
	int i, j, n = PQntuples(res);

	for (i = 0; i < n; i = j) {
		const char *cluster = PQgetvalue(res, i, 0);
		while (ci < m->n_clusters && strcmp(m->clusters[ci].name, cluster) < 0)
			ci++;
		if (ci == m->n_clusters || strcmp(m->clusters[ci].name, cluster) != 0)
			return corrupt(db, "node of an unknown cluster", cluster, err);
		for (j = i; j < n && strcmp(PQgetvalue(res, j, 0), cluster) == 0; j++)
			;
		if (nodes_from_rows(db, &m->clusters[ci], res, i, j, err) != 0)
			return -1;
	}
	return 0;
}

/* Ordered by cluster, then name, like the nodes. */
static int
load_lbs(struct pg_store *db, struct load *l, PGresult *res, struct error *err)
{
	struct model *m = l->m;
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
load_users(struct pg_store *db, struct load *l, PGresult *res, struct error *err)
{
	struct model *m = l->m;
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
load_tokens(struct pg_store *db, struct load *l, PGresult *res, struct error *err)
{
	struct model *m = l->m;
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
#define SELECT_CLUSTERS "SELECT name, path, version FROM clusters ORDER BY name COLLATE \"C\";"
#define SELECT_NODES(where)                                                                        \
	"SELECT cluster, name, status, reason, changed_by, changed_at, expires_at, address, "      \
	"check_url FROM nodes " where " ORDER BY cluster COLLATE \"C\", name COLLATE \"C\";"
#define SELECT_LBS(where)                                                                          \
	"SELECT cluster, name, kind, runtime, backend FROM lbs " where                             \
	" ORDER BY cluster COLLATE \"C\", name COLLATE \"C\";"
#define SELECT_ACCOUNTS_AND_VERSION                                                                \
	"SELECT name, role, password_hash, created_at FROM users ORDER BY name COLLATE \"C\";"     \
	"SELECT id, role, description, hash, created_by, created_at, clusters FROM tokens "        \
	"ORDER BY id COLLATE \"C\";"                                                               \
	"SELECT version FROM store_version WHERE id = 1"
#define LOAD_SELECTS SELECT_CLUSTERS SELECT_NODES("") SELECT_LBS("") SELECT_ACCOUNTS_AND_VERSION
/* Own loads begin with their snapshot's xmin (the next reload's since). */
#define SELECT_XMIN "SELECT pg_snapshot_xmin(pg_current_snapshot());"
#define BEGIN_READ "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"

/* The store version, the last result of a load. */
static int
take_version(struct pg_store *db, struct load *l, PGresult *res, struct error *err)
{
	if (PQntuples(res) == 1 && pg_parse_i64(PQgetvalue(res, 0, 0), l->version) == 0)
		return 0;
	return error_set(err, 500, "the PostgreSQL store %s has no store version", db->description);
}

static int
take_xmin(struct pg_store *db, struct load *l, PGresult *res, struct error *err)
{
	const char *v = PQntuples(res) == 1 ? PQgetvalue(res, 0, 0) : "";

	if (v[0] == '\0' || strlen(v) >= sizeof(l->xmin) || strspn(v, "0123456789") != strlen(v))
		return corrupt(db, "snapshot xmin", v, err);
	snprintf(l->xmin, sizeof(l->xmin), "%s", v);
	return 0;
}

/* Sends sql (statements as one simple query: one round trip) and hands
 * the result of statement i to steps[i] (NULL: only checked). A failed
 * statement ends the query: the results after it never come. */
static int
run_reads(struct pg_store *db, const char *sql, const load_step *steps, int n_steps, struct load *l,
          struct error *err)
{
	int rc = 0, step = 0;
	PGresult *res;

	if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK || !PQsendQuery(db->conn, sql))
		return pg_fail(db, NULL, "load the store", err);
	for (;; step++) {
		int ready = pg_await_ready(db->conn, pg_deadline(db), -1);
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
		else if (rc == 0 && step < n_steps && steps[step] != NULL)
			rc = steps[step](db, l, res, err);
		PQclear(res);
	}
	if (rc == 0 && (db->conn == NULL || step < n_steps))
		rc = pg_fail(db, NULL, "load the store", err); /* the connection went */
	return rc;
}

/* Starts an own load: the deadline, the connection. */
static int
begin_own_load(struct pg_store *db, struct error *err)
{
	db->op_deadline = time_monotonic_ms() + pg_timeout_ms();
	if (pg_ensure_connected(db, err) != 0) {
		db->op_deadline = 0;
		return -1;
	}
	db->in_tx = 1;
	return 0;
}

/* Ends an own load (rolled back after a failure). */
static int
end_own_load(struct pg_store *db, int rc)
{
	if (rc != 0 && db->conn != NULL && PQtransactionStatus(db->conn) != PQTRANS_IDLE)
		pg_rollback(db);
	db->in_tx = 0;
	db->op_deadline = 0;
	return rc;
}

/* The whole model in one round trip. Outside a write transaction it is
 * wrapped in one REPEATABLE READ transaction (one moment), whose xmin
 * the next reload starts from; inside one, the writer lock keeps
 * everything still. */
static int
load_all_own(struct pg_store *db, struct load *l, struct error *err)
{
	static const load_step own[] = {NULL,        take_xmin,    load_clusters,
	                                load_nodes,  load_lbs,     load_users,
	                                load_tokens, take_version, NULL};

	return run_reads(db, BEGIN_READ SELECT_XMIN LOAD_SELECTS ";COMMIT", own, 9, l, err);
}

/* A whole load inside a write, with the xmin of its first statement's
 * snapshot (the writer lock keeps the rest still). */
static const load_step load_inside_xmin[] = {take_xmin,  load_clusters, load_nodes,  load_lbs,
                                             load_users, load_tokens,   take_version};

int
pg_load(void *handle, struct model *m, int64_t *version, struct error *err)
{
	static const load_step inside[] = {load_clusters, load_nodes,  load_lbs,
	                                   load_users,    load_tokens, take_version};
	struct pg_store *db = handle;
	struct load l = {.m = m, .version = version};
	int rc;

	if (db->in_tx)
		return run_reads(db, LOAD_SELECTS, inside, 6, &l, err);
	if (begin_own_load(db, err) != 0)
		return -1;
	rc = load_all_own(db, &l, err);
	if (rc == 0)
		snprintf(db->model_xmin, sizeof(db->model_xmin), "%s", l.xmin);
	return end_own_load(db, rc);
}

/* A reload's clusters (name, path, version, written since, nodes held
 * when written since): the unchanged ones copied from l->have, the others
 * left without nodes and listed for the next statements. */
static int
reload_clusters(struct pg_store *db, struct load *l, PGresult *res, struct error *err)
{
	struct model *m = l->m;
	int i, n = PQntuples(res);

	m->clusters = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*m->clusters));
	l->how = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*l->how));
	l->counted = xcalloc(n > 0 ? (size_t)n : 1, sizeof(*l->counted));
	for (i = 0; i < n; i++) {
		const struct cluster *had = model_find_cluster(l->have, PQgetvalue(res, i, 0));
		struct cluster *c = &m->clusters[m->n_clusters++];
		int64_t version = pg_value_i64(res, i, 2);
		int is_written = strcmp(PQgetvalue(res, i, 3), "t") == 0;
		struct strbuf *list;
		char *literal;
		if (had != NULL && !is_written && had->version == version &&
		    strcmp(had->path, PQgetvalue(res, i, 1)) == 0) {
			model_cluster_copy(c, had);
			continue;
		}
		c->name = value_dup(res, i, 0);
		c->path = value_dup(res, i, 1);
		c->version = version;
		l->how[i] = had != NULL && is_written ? RELOAD_DELTA : RELOAD_ALL;
		l->counted[i] = pg_value_i64(res, i, 4);
		list = l->how[i] == RELOAD_DELTA ? &l->delta : &l->all;
		if ((literal = PQescapeLiteral(db->conn, c->name, strlen(c->name))) == NULL)
			return pg_fail(db, NULL, "load the store", err);
		strbuf_addf(list, "%s%s", list->len > 0 ? ", " : "", literal);
		PQfreemem(literal);
	}
	return 0;
}

/* merge_nodes' walk when rows add nodes: both lists in one pass into a
 * new list. */
static int
merge_node_lists(struct pg_store *db, struct cluster *c, const struct cluster *had, PGresult *res,
                 int i, int j, struct error *err)
{
	struct node *nodes = xcalloc(had->n_nodes + (size_t)(j - i) + 1, sizeof(*nodes));
	size_t k = 0, n = 0;
	int rc = 0;

	while ((k < had->n_nodes || i < j) && rc == 0) {
		int d = k == had->n_nodes ? 1
		        : i == j          ? -1
		                 : strcmp(cluster_node(had, k)->name, PQgetvalue(res, i, 1));
		if (d < 0) {
			model_node_copy(&nodes[n++], cluster_node(had, k++));
			continue;
		}
		if (d == 0)
			k++;
		if ((rc = node_from_row(db, res, i++, &nodes[n], err)) == 0)
			n++;
	}
	cluster_take_nodes(c, nodes, n); /* freed with the model on an error */
	return rc;
}

/* c's nodes: had's, each replaced by the row of the same name among rows
 * [i, j) of res (both sorted by name), and the rows of new names. When
 * every row names a node had has (status changes: the common reload), c
 * shares had's chunks but those the rows change; else the two lists are
 * merged in one walk, since adding the nodes one by one would rebuild
 * the chunks after each. */
static int
merge_nodes(struct pg_store *db, struct cluster *c, const struct cluster *had, PGresult *res, int i,
            int j, struct error *err)
{
	struct node row;
	int k, found;

	for (k = i; k < j; k++) {
		const char *name = PQgetvalue(res, k, 1);

		cluster_node_position(had, name, strlen(name), &found);
		if (!found)
			return merge_node_lists(db, c, had, res, i, j, err);
	}
	cluster_share_nodes(c, had);
	for (; i < j; i++) {
		memset(&row, 0, sizeof(row));
		if (node_from_row(db, res, i, &row, err) != 0)
			return -1;
		cluster_store_node(c, &row);
	}
	return 0;
}

/* A reload's nodes (ordered by cluster, then name): every node of the
 * RELOAD_ALL clusters, the nodes written since of the RELOAD_DELTA ones. */
static int
reload_nodes(struct pg_store *db, struct load *l, PGresult *res, struct error *err)
{
	struct model *m = l->m;
	int i = 0, j, n = PQntuples(res);
	size_t ci;

	for (ci = 0; ci < m->n_clusters; ci++) {
		struct cluster *c = &m->clusters[ci];
		if (i < n && strcmp(PQgetvalue(res, i, 0), c->name) < 0)
			return corrupt(db, "node of an unknown cluster", PQgetvalue(res, i, 0),
			               err);
		for (j = i; j < n && strcmp(PQgetvalue(res, j, 0), c->name) == 0; j++)
			;
		if (l->how[ci] == RELOAD_DELTA) {
			if (merge_nodes(db, c, model_find_cluster(l->have, c->name), res, i, j,
			                err) != 0)
				return -1;
			l->is_mismatch |= (int64_t)c->n_nodes != l->counted[ci];
		} else if (l->how[ci] == RELOAD_ALL) {
			if (nodes_from_rows(db, c, res, i, j, err) != 0)
				return -1;
		}
		i = j;
	}
	if (i < n)
		return corrupt(db, "node of an unknown cluster", PQgetvalue(res, i, 0), err);
	return 0;
}

/* A model read again where it changed since this connection's last own
 * load (db->model_xmin): in one REPEATABLE READ transaction, the
 * clusters with whether a transaction that load could not see wrote them
 * (every transaction it could not see has an id at or above its xmin),
 * users, tokens and the version, then the nodes and load balancers of
 * the clusters written since. A changed cluster's nodes are have's with
 * the rows written since merged in; when that does not give as many
 * nodes as the store holds, some were removed, and the model is read
 * whole instead. */
int
pg_reload(void *handle, const struct model *have, struct model *m, int64_t *version,
          struct error *err)
{
	static const load_step first[] = {NULL,       take_xmin,   reload_clusters,
	                                  load_users, load_tokens, take_version};
	static const load_step rest[] = {reload_nodes, load_lbs, NULL};
	struct pg_store *db = handle;
	struct load l = {.m = m, .version = version, .have = have};
	struct strbuf sql = {0};
	int is_own = !db->in_tx, rc;
	/* inside a write, the writer lock keeps everything still: no
	 * transaction of its own */
	const char *begin = is_own ? BEGIN_READ : "", *commit = is_own ? "COMMIT" : "";

	if (db->model_xmin[0] == '\0') /* the first load on this connection */
		return pg_load(handle, m, version, err);
	if (is_own && begin_own_load(db, err) != 0)
		return -1;
	if (db->model_xmin[0] == '\0') { /* it connected again just now */
		rc = load_all_own(db, &l, err);
		goto done;
	}
	strbuf_addf(
	    &sql,
	    "%s" SELECT_XMIN
	    "SELECT c.name, c.path, c.version, c.xid >= '%s'::xid8, CASE WHEN c.xid >= "
	    "'%s'::xid8 THEN (SELECT count(*) FROM nodes n WHERE n.cluster = c.name) ELSE "
	    "-1 END FROM clusters c ORDER BY c.name COLLATE \"C\";" SELECT_ACCOUNTS_AND_VERSION,
	    begin, db->model_xmin, db->model_xmin);
	rc = run_reads(db, sql.buf, first + !is_own, 6 - !is_own, &l, err);
	sql.len = 0;
	if (rc == 0 && l.all.len == 0 && l.delta.len == 0) {
		if (is_own)
			rc = run_reads(db, "COMMIT", rest + 2, 1, &l, err);
	} else if (rc == 0) {
		const char *all = l.all.len > 0 ? l.all.buf : "",
		           *delta = l.delta.len > 0 ? l.delta.buf : "";
		strbuf_addf(&sql,
		            SELECT_NODES("WHERE cluster = ANY(ARRAY[%s]::text[]) OR (cluster = "
		                         "ANY(ARRAY[%s]::text[]) AND xid >= '%s'::xid8)")
		                SELECT_LBS("WHERE cluster = ANY(ARRAY[%s%s%s]::text[])") "%s",
		            all, delta, db->model_xmin, all,
		            l.all.len > 0 && l.delta.len > 0 ? ", " : "", delta, commit);
		rc = run_reads(db, sql.buf, rest, 2 + is_own, &l, err);
	}
	if (rc == 0 && l.is_mismatch) { /* nodes were removed: read it all */
		struct load w = {.m = m, .version = version};
		model_clear(m);
		if (is_own)
			rc = load_all_own(db, &w, err);
		else
			rc = run_reads(db, SELECT_XMIN LOAD_SELECTS, load_inside_xmin, 7, &w, err);
		memcpy(l.xmin, w.xmin, sizeof(l.xmin));
	}
done:
	if (rc == 0)
		snprintf(db->model_xmin, sizeof(db->model_xmin), "%s", l.xmin);
	free(sql.buf);
	free(l.all.buf);
	free(l.delta.buf);
	free(l.how);
	free(l.counted);
	return is_own ? end_own_load(db, rc) : rc;
}

static int
read_audit(struct pg_store *db, const char *cluster, int64_t limit, struct audit_log *out,
           struct error *err)
{
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

/* A read of its own, connecting included, ends within one deadline;
 * inside a transaction (a copy between stores) it is one of its steps. */
int
pg_read_audit(void *handle, const char *cluster, int64_t limit, struct audit_log *out,
              struct error *err)
{
	struct pg_store *db = handle;
	int is_own = !db->in_tx, rc;

	if (is_own)
		db->op_deadline = time_monotonic_ms() + pg_timeout_ms();
	rc = read_audit(db, cluster, limit, out, err);
	if (is_own)
		db->op_deadline = 0;
	return rc;
}
