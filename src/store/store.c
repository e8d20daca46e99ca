/*
 * store.c - the store's public side: picks the backend named by the spec,
 * and turns "persist this change" into the few row writes that differ.
 *
 * Why a difference and not a rewrite: the engine changes a private copy of
 * the model and hands store_save the model before and after. Rewriting
 * everything would make each status change cost writes (and fsynced WAL
 * pages) proportional to the whole store; comparing the two models in
 * memory costs O(n) - every array is sorted in strcmp order, so one merge
 * walk per array - and usually leaves one node row, one cluster version and
 * one audit entry to write.
 *
 * Order inside the transaction: removed clusters go first, then added and
 * changed ones, so a mount path freed by a removed cluster can be taken by
 * a new one in the same save (paths are UNIQUE, checked per statement).
 * Two kept clusters swapping paths in one save would still collide; no
 * model operation does that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/merge.h"
#include "../util/xalloc.h"
#include "store.h"
#include "store_backend.h"

struct store {
	const struct store_backend *backend;
	void *db; /* the backend's handle */
	int schema_version;
	char *description;
};

/* Stands in for a NULL "before": everything in "after" is new. */
static const struct model empty_model;

static int
spec_is_postgres(const char *spec)
{
	return strncmp(spec, "postgres://", 11) == 0 || strncmp(spec, "postgresql://", 13) == 0;
}

/* "scheme:spec", e.g. "sqlite:/var/lib/clustermgmt.db". */
static char *
describe(const struct store_backend *backend, const char *spec)
{
	size_t size = strlen(backend->scheme) + 1 + strlen(spec) + 1;
	char *s = xmalloc(size);

	snprintf(s, size, "%s:%s", backend->scheme, spec);
	return s;
}

struct store *
store_open(const char *spec, struct error *err)
{
	const struct store_backend *backend = &store_sqlite_backend;
	struct store *s = NULL;

	if (spec == NULL || spec[0] == '\0') {
		error_set(err, 400, "no store given: expected the path of an SQLite file");
		goto bad;
	}
	if (spec_is_postgres(spec)) {
		error_set(err, 400,
		          "PostgreSQL stores are not supported by this build yet; "
		          "give the path of an SQLite file instead");
		goto bad;
	}
	s = xcalloc(1, sizeof(*s));
	s->description = describe(backend, spec);
	s->backend = backend;
	s->db = backend->open(spec, &s->schema_version, err);
	if (s->db == NULL)
		goto bad;
	return s;
bad:
	if (s != NULL)
		free(s->description);
	free(s);
	return NULL;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	s->backend->close(s->db);
	free(s->description);
	free(s);
}

const char *
store_describe(const struct store *s)
{
	return s->description;
}

int
store_schema_version(const struct store *s)
{
	return s->schema_version;
}

int
store_load(struct store *s, struct model **out, struct error *err)
{
	struct model *m = model_new();

	if (s->backend->load(s->db, m, err) != 0)
		goto bad;
	*out = m;
	return 0;
bad:
	model_free(m);
	*out = NULL;
	return -1;
}

/* --- the difference ------------------------------------------------- */

/* The keys the merge walks go by (util/merge.h). */
static const char *
cluster_key(const void *e)
{
	return ((const struct cluster *)e)->name;
}

static const char *
node_key(const void *e)
{
	return ((const struct node *)e)->name;
}

static const char *
user_key(const void *e)
{
	return ((const struct user *)e)->name;
}

static const char *
token_key(const void *e)
{
	return ((const struct token *)e)->id;
}

/* What a walk writes with: the store, the error, and for nodes their
 * cluster. */
struct save {
	struct store *s;
	const char *cluster;
	struct error *err;
};

static int
text_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
node_equal(const struct node *a, const struct node *b)
{
	return a->status == b->status && a->changed_at == b->changed_at &&
	       a->expires_at == b->expires_at && text_equal(a->reason, b->reason) &&
	       text_equal(a->changed_by, b->changed_by) && text_equal(a->address, b->address) &&
	       text_equal(a->check, b->check);
}

static int
user_equal(const struct user *a, const struct user *b)
{
	return a->role == b->role && a->created_at == b->created_at &&
	       text_equal(a->password_hash, b->password_hash);
}

static int
token_equal(const struct token *a, const struct token *b)
{
	return a->role == b->role && a->created_at == b->created_at &&
	       text_equal(a->description, b->description) && text_equal(a->hash, b->hash) &&
	       text_equal(a->created_by, b->created_by);
}

static int
node_removed(void *arg, const void *old)
{
	struct save *v = arg;

	return v->s->backend->delete_node(v->s->db, v->cluster, node_key(old), v->err);
}

static int
node_added(void *arg, const void *new)
{
	struct save *v = arg;

	return v->s->backend->upsert_node(v->s->db, v->cluster, new, v->err);
}

static int
node_kept(void *arg, const void *old, const void *new)
{
	return node_equal(old, new) ? 0 : node_added(arg, new);
}

/* The nodes of one cluster; old is empty for a cluster just added. */
static int
save_nodes(struct store *s, const char *cluster, const struct node *old, size_t n_old,
           const struct node *new, size_t n_new, struct error *err)
{
	static const struct merge_calls calls = {node_removed, node_added, node_kept};
	struct merge_side before = {old, n_old, sizeof(*old), node_key};
	struct merge_side after = {new, n_new, sizeof(*new), node_key};
	struct save v = {s, cluster, err};

	return merge_walk(&before, &after, &calls, &v);
}

static int
cluster_removed(void *arg, const void *old)
{
	struct save *v = arg;

	return v->s->backend->delete_cluster(v->s->db, cluster_key(old), v->err);
}

static int
remove_clusters(struct store *s, const struct model *before, const struct model *after,
                struct error *err)
{
	static const struct merge_calls calls = {cluster_removed, NULL, NULL};
	struct merge_side old = {before->clusters, before->n_clusters, sizeof(struct cluster),
	                         cluster_key};
	struct merge_side new = {after->clusters, after->n_clusters, sizeof(struct cluster),
	                         cluster_key};
	struct save v = {s, NULL, err};

	return merge_walk(&old, &new, &calls, &v);
}

static int
save_cluster(struct store *s, const struct cluster *old, const struct cluster *new,
             struct error *err)
{
	if (old == NULL || old->version != new->version || !text_equal(old->path, new->path)) {
		if (s->backend->upsert_cluster(s->db, new, err) != 0)
			return -1;
	}
	if (old == NULL)
		return save_nodes(s, new->name, NULL, 0, new->nodes, new->n_nodes, err);
	return save_nodes(s, new->name, old->nodes, old->n_nodes, new->nodes, new->n_nodes, err);
}

static int
cluster_added(void *arg, const void *new)
{
	struct save *v = arg;

	return save_cluster(v->s, NULL, new, v->err);
}

static int
cluster_kept(void *arg, const void *old, const void *new)
{
	struct save *v = arg;

	return save_cluster(v->s, old, new, v->err);
}

static int
put_clusters(struct store *s, const struct model *before, const struct model *after,
             struct error *err)
{
	static const struct merge_calls calls = {NULL, cluster_added, cluster_kept};
	struct merge_side old = {before->clusters, before->n_clusters, sizeof(struct cluster),
	                         cluster_key};
	struct merge_side new = {after->clusters, after->n_clusters, sizeof(struct cluster),
	                         cluster_key};
	struct save v = {s, NULL, err};

	return merge_walk(&old, &new, &calls, &v);
}

static int
user_removed(void *arg, const void *old)
{
	struct save *v = arg;

	return v->s->backend->delete_user(v->s->db, user_key(old), v->err);
}

static int
user_added(void *arg, const void *new)
{
	struct save *v = arg;

	return v->s->backend->upsert_user(v->s->db, new, v->err);
}

static int
user_kept(void *arg, const void *old, const void *new)
{
	return user_equal(old, new) ? 0 : user_added(arg, new);
}

static int
save_users(struct store *s, const struct model *before, const struct model *after,
           struct error *err)
{
	static const struct merge_calls calls = {user_removed, user_added, user_kept};
	struct merge_side old = {before->users, before->n_users, sizeof(struct user), user_key};
	struct merge_side new = {after->users, after->n_users, sizeof(struct user), user_key};
	struct save v = {s, NULL, err};

	return merge_walk(&old, &new, &calls, &v);
}

static int
token_removed(void *arg, const void *old)
{
	struct save *v = arg;

	return v->s->backend->delete_token(v->s->db, token_key(old), v->err);
}

static int
token_added(void *arg, const void *new)
{
	struct save *v = arg;

	return v->s->backend->insert_token(v->s->db, new, v->err);
}

/* Tokens are created and revoked, never edited; should one differ anyway,
 * it is replaced. */
static int
token_kept(void *arg, const void *old, const void *new)
{
	if (token_equal(old, new))
		return 0;
	return token_removed(arg, new) != 0 ? -1 : token_added(arg, new);
}

static int
save_tokens(struct store *s, const struct model *before, const struct model *after,
            struct error *err)
{
	static const struct merge_calls calls = {token_removed, token_added, token_kept};
	struct merge_side old = {before->tokens, before->n_tokens, sizeof(struct token), token_key};
	struct merge_side new = {after->tokens, after->n_tokens, sizeof(struct token), token_key};
	struct save v = {s, NULL, err};

	return merge_walk(&old, &new, &calls, &v);
}

static int
save_difference(struct store *s, const struct model *before, const struct model *after,
                struct error *err)
{
	if (before == after)
		return 0;
	if (remove_clusters(s, before, after, err) != 0 ||
	    put_clusters(s, before, after, err) != 0 || save_users(s, before, after, err) != 0 ||
	    save_tokens(s, before, after, err) != 0)
		return -1;
	return 0;
}

static int
save_audit(struct store *s, struct audit_log *audit, struct error *err)
{
	size_t i;

	for (i = 0; audit != NULL && i < audit->n; i++) {
		if (s->backend->insert_audit(s->db, &audit->entries[i], &audit->entries[i].id,
		                             err) != 0)
			return -1;
	}
	return 0;
}

/* After a rollback the ids handed out inside the transaction mean nothing. */
static void
forget_audit_ids(struct audit_log *audit)
{
	size_t i;

	for (i = 0; audit != NULL && i < audit->n; i++)
		audit->entries[i].id = 0;
}

/* Beyond store.h: a NULL model stands for the empty one, and before ==
 * after (the same pointer) writes only the audit entries. */
int
store_save(struct store *s, const struct model *before, const struct model *after,
           struct audit_log *audit, struct error *err)
{
	if (before == NULL)
		before = &empty_model;
	if (after == NULL)
		after = &empty_model;
	if (s->backend->begin(s->db, err) != 0)
		return -1;
	if (save_difference(s, before, after, err) != 0 || save_audit(s, audit, err) != 0 ||
	    s->backend->commit(s->db, err) != 0)
		goto bad;
	return 0;
bad:
	s->backend->rollback(s->db);
	forget_audit_ids(audit);
	return -1;
}

int
store_read_audit(struct store *s, const char *cluster, int64_t limit, struct audit_log *out,
                 struct error *err)
{
	size_t n_before = out->n;

	if (s->backend->read_audit(s->db, cluster, limit, out, err) != 0)
		goto bad;
	return 0;
bad:
	/* Leave out as it was: no half answer. */
	while (out->n > n_before)
		audit_entry_free(&out->entries[--out->n]);
	return -1;
}
