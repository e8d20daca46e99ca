/*
 * store.c - the store's public side: picks the backend named by the spec,
 * and turns "persist this change" into the few row writes that differ.
 *
 * Why a difference and not a rewrite: a write changes a private copy of
 * the model (store_write) and saves the difference between before and
 * after. Rewriting
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/merge.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "change.h"
#include "store.h"
#include "store_backend.h"

struct store {
	const struct store_backend *backend;
	void *db; /* the backend's handle */
	int schema_version;
	char *description; /* when the backend has no describe */
	int is_watching;
};

/* Stands in for a NULL "before": everything in "after" is new. */
static const struct model empty_model;

/* A libpq keyword string starts with "keyword=" (spaces allowed around
 * '='); a file path that looks like that can be given as ./name. */
int
store_spec_is_postgres(const char *spec)
{
	size_t n;

	if (strncmp(spec, "postgres://", 11) == 0 || strncmp(spec, "postgresql://", 13) == 0)
		return 1;
	n = strspn(spec, "abcdefghijklmnopqrstuvwxyz_");
	if (n == 0)
		return 0;
	n += strspn(spec + n, " \t");
	return spec[n] == '=';
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

static _Atomic int timeout_ms = STORE_TIMEOUT_DEFAULT_MS;

void
store_set_timeout(int ms)
{
	atomic_store(&timeout_ms, ms);
	store_postgres_set_timeout(ms);
}

int
store_timeout(void)
{
	return atomic_load(&timeout_ms);
}

void
store_set_listen_db(const char *spec)
{
	store_postgres_set_listen_db(spec);
}

int
store_slow_ms(void)
{
	return atomic_load(&timeout_ms) / 10;
}

struct store *
store_open(const char *spec, struct error *err)
{
	const struct store_backend *backend = &store_sqlite_backend;
	struct store *s = NULL;

	if (spec == NULL || spec[0] == '\0') {
		error_set(err, 400,
		          "no store given: expected the path of an SQLite file or a "
		          "postgres:// URL");
		goto bad;
	}
	if (store_spec_is_postgres(spec))
		backend = &store_postgres_backend;
	s = xcalloc(1, sizeof(*s));
	s->backend = backend;
	if (backend->describe == NULL)
		s->description = describe(backend, spec);
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
	store_unwatch(s);
	s->backend->close(s->db);
	free(s->description);
	free(s);
}

const char *
store_describe(const struct store *s)
{
	if (s->backend->describe != NULL)
		return s->backend->describe(s->db);
	return s->description;
}

int
store_schema_version(const struct store *s)
{
	return s->schema_version;
}

int
store_load_at(struct store *s, struct model **out, int64_t *version, struct error *err)
{
	struct model *m = model_new();

	if (s->backend->load(s->db, m, version, err) != 0)
		goto bad;
	*out = m;
	return 0;
bad:
	model_free(m);
	*out = NULL;
	return -1;
}

int
store_reload(struct store *s, const struct model *have, struct model **out, int64_t *version,
             struct error *err)
{
	struct model *m;

	if (s->backend->reload == NULL)
		return store_load_at(s, out, version, err);
	m = model_new();
	if (s->backend->reload(s->db, have, m, version, err) != 0) {
		model_free(m);
		*out = NULL;
		return -1;
	}
	*out = m;
	return 0;
}

int
store_load(struct store *s, struct model **out, struct error *err)
{
	int64_t version;

	return store_load_at(s, out, &version, err);
}

/* --- the difference ------------------------------------------------- */

/* The keys the merge walks go by (util/merge.h). */
static const char *
cluster_key(const void *e)
{
	return ((const struct cluster *)e)->name;
}

/* The node merge walks over arrays of pointers to the nodes, which lie
 * in chunks (model.h). */
static const char *
node_key(const void *e)
{
	return (*(const struct node *const *)e)->name;
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
	if (a == b || a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Nodes sharing their strings (model_copy) compare without reading them. */
static int
node_equal(const struct node *a, const struct node *b)
{
	if (a->status != b->status || a->changed_at != b->changed_at ||
	    a->expires_at != b->expires_at)
		return 0;
	if (a->text != NULL && a->text == b->text)
		return 1;
	return text_equal(a->reason, b->reason) && text_equal(a->changed_by, b->changed_by) &&
	       text_equal(a->address, b->address) && text_equal(a->check, b->check);
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
	       text_equal(a->created_by, b->created_by) &&
	       text_equal(a->clusters ? a->clusters : "", b->clusters ? b->clusters : "");
}

static int
node_removed(void *arg, const void *old)
{
	struct save *v = arg;

	return v->s->backend->delete_node(v->s->db, v->cluster, node_key(old), v->err);
}

static int
node_saved(struct save *v, const struct node *n)
{
	return v->s->backend->upsert_node(v->s->db, v->cluster, n, v->err);
}

static int
node_added(void *arg, const void *new)
{
	return node_saved(arg, *(const struct node *const *)new);
}

static int
node_kept(void *arg, const void *old, const void *new)
{
	const struct node *a = *(const struct node *const *)old,
	                  *b = *(const struct node *const *)new;

	return node_equal(a, b) ? 0 : node_saved(arg, b);
}

/* The nodes of c in an array, for a merge walk. */
static const struct node **
node_pointers(const struct cluster *c)
{
	const struct node **all = xcalloc(c != NULL ? c->n_nodes + 1 : 1, sizeof(*all));
	size_t i;

	for (i = 0; c != NULL && i < c->n_nodes; i++)
		all[i] = cluster_node(c, i);
	return all;
}

/* Do old and new hold the same names in the same places? A chunk they
 * share holds the same nodes. */
static int
same_names(const struct cluster *old, const struct cluster *new)
{
	size_t i, shared = 0;

	if (old->n_nodes != new->n_nodes)
		return 0;
	for (i = 0; i<new->n_nodes; i += shared> 0 ? shared : 1) {
		const struct node *a, *b;

		if ((shared = clusters_share_from(old, new, i)) > 0)
			continue;
		a = cluster_node(old, i);
		b = cluster_node(new, i);
		if (a->name != b->name && strcmp(a->name, b->name) != 0)
			return 0;
	}
	return 1;
}

/* The nodes of one cluster; old is NULL for a cluster just added. When
 * both lists hold the same names in the same places (a status change, an
 * address set: the common write), they are compared pairwise, skipping
 * the chunks they share and comparing names by pointer where the strings
 * are shared; else merged by name. */
static int
save_nodes(struct store *s, const struct cluster *old, const struct cluster *new, struct error *err)
{
	static const struct merge_calls calls = {node_removed, node_added, node_kept};
	struct save v = {s, new->name, err};
	const struct node **before, **after;
	size_t i, shared = 0;
	int rc;

	if (old != NULL && same_names(old, new)) {
		for (i = 0; i<new->n_nodes; i += shared> 0 ? shared : 1) {
			if ((shared = clusters_share_from(old, new, i)) > 0)
				continue;
			if (!node_equal(cluster_node(old, i), cluster_node(new, i)) &&
			    node_saved(&v, cluster_node(new, i)) != 0)
				return -1;
		}
		return 0;
	}
	before = node_pointers(old);
	after = node_pointers(new);
	{
		struct merge_side left = {before, old != NULL ? old->n_nodes : 0, sizeof(*before),
		                          node_key};
		struct merge_side right = {after, new->n_nodes, sizeof(*after), node_key};

		rc = merge_walk(&left, &right, &calls, &v);
	}
	free(before);
	free(after);
	return rc;
}

static int
cluster_removed(void *arg, const void *old)
{
	struct save *v = arg;

	return v->s->backend->delete_cluster(v->s->db, cluster_key(old), v->err);
}

static int
lb_equal(const struct lb *a, const struct lb *b)
{
	return text_equal(a->kind, b->kind) && text_equal(a->runtime, b->runtime) &&
	       text_equal(a->backend, b->backend);
}

static const char *
lb_key(const void *e)
{
	return ((const struct lb *)e)->name;
}

static int
lb_removed(void *arg, const void *old)
{
	struct save *v = arg;

	return v->s->backend->delete_lb(v->s->db, v->cluster, lb_key(old), v->err);
}

static int
lb_added(void *arg, const void *new)
{
	struct save *v = arg;

	return v->s->backend->upsert_lb(v->s->db, v->cluster, new, v->err);
}

static int
lb_kept(void *arg, const void *old, const void *new)
{
	return lb_equal(old, new) ? 0 : lb_added(arg, new);
}

/* The named load balancers of one cluster; old is empty for a new one. */
static int
save_lbs(struct store *s, const char *cluster, const struct lb *old, size_t n_old,
         const struct lb *new, size_t n_new, struct error *err)
{
	static const struct merge_calls calls = {lb_removed, lb_added, lb_kept};
	struct merge_side before = {old, n_old, sizeof(*old), lb_key};
	struct merge_side after = {new, n_new, sizeof(*new), lb_key};
	struct save v = {s, cluster, err};

	return merge_walk(&before, &after, &calls, &v);
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
	if (save_nodes(s, old, new, err) != 0)
		return -1;
	if (old == NULL)
		return save_lbs(s, new->name, NULL, 0, new->lbs, new->n_lbs, err);
	return save_lbs(s, new->name, old->lbs, old->n_lbs, new->lbs, new->n_lbs, err);
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

/* The write's key, with the id of its first audit entry. */
static int
remember_key(struct store *s, const char *key, const struct audit_log *audit, struct error *err)
{
	int64_t first = 0;
	size_t i;

	if (s->backend->remember_key == NULL)
		return 0;
	for (i = 0; i < audit->n; i++)
		if (first == 0 || (audit->entries[i].id != 0 && audit->entries[i].id < first))
			first = audit->entries[i].id;
	return s->backend->remember_key(s->db, key, time_now_ms(), first, err);
}

int
store_key_is_valid(const char *key)
{
	size_t i;

	for (i = 0; key[i] != '\0'; i++)
		if (i >= STORE_KEY_MAX || key[i] < '!' || key[i] > '~')
			return 0;
	return i > 0;
}

/* Inside a write transaction: the difference, the audit entries, the
 * idempotency key (NULL: none) and the new version (version < 0: one
 * more than stored) with what changed for the other daemons (change:
 * NULL, they read the store), then commit. */
static int
save_and_commit(struct store *s, const struct model *before, const struct model *after,
                struct audit_log *audit, int64_t version, const char *key, const char *change,
                struct error *err)
{
	int64_t stored;

	if (before == NULL)
		before = &empty_model;
	if (after == NULL)
		after = &empty_model;
	if (version < 0) {
		if (s->backend->read_version(s->db, &stored, err) != 0)
			goto bad;
		version = stored + 1;
	}
	if (save_difference(s, before, after, err) != 0 || save_audit(s, audit, err) != 0 ||
	    (key != NULL && remember_key(s, key, audit, err) != 0) ||
	    s->backend->write_version(s->db, version, change, err) != 0 ||
	    s->backend->commit(s->db, err) != 0)
		goto bad;
	return 0;
bad:
	s->backend->rollback(s->db);
	forget_audit_ids(audit);
	return -1;
}

/* Beyond store.h: a NULL model stands for the empty one, and before ==
 * after (the same pointer) writes only the audit entries. */
int
store_save(struct store *s, const struct model *before, const struct model *after,
           struct audit_log *audit, struct error *err)
{
	if (s->backend->begin(s->db, 0, err) != 0)
		return -1;
	return save_and_commit(s, before, after, audit, -1, NULL, NULL, err);
}

int
store_save_at(struct store *s, const struct model *before, const struct model *after,
              int64_t version, struct error *err)
{
	if (s->backend->begin(s->db, 0, err) != 0)
		return -1;
	return save_and_commit(s, before, after, NULL, version, NULL, NULL, err);
}

int
store_write(struct store *s, struct store_write *w, struct error *err)
{
	const struct model *base = w->known;
	struct model *fresh = NULL, *after = NULL;
	int64_t stored;
	char *change;
	int rc, is_found = 0;

	w->model = NULL;
	w->version = w->known_version;
	w->is_changed = 0;
	w->is_replayed = 0;
	if (w->idempotency_key != NULL && !store_key_is_valid(w->idempotency_key))
		return error_set(
		    err, 400,
		    "Idempotency-Key must be 1 to %d printable ASCII characters without "
		    "spaces",
		    STORE_KEY_MAX);
	if (s->backend->begin(s->db, w->deadline, err) != 0)
		return -1;
	/* Under the write lock: a retry on another daemon waits for the
	 * first attempt to commit or roll back, then finds its key or not. */
	if (w->idempotency_key != NULL && s->backend->find_key != NULL &&
	    s->backend->find_key(s->db, w->idempotency_key, &is_found, err) != 0)
		goto bad;
	if (is_found) {
		s->backend->rollback(s->db);
		w->is_replayed = 1;
		return 0;
	}
	if (s->backend->read_version(s->db, &stored, err) != 0)
		goto bad;
	if (stored != w->known_version) {
		/* Another daemon wrote since our model: decide on what is
		 * stored now, read under the lock, so nobody writes between. */
		if (store_reload(s, w->known, &fresh, &stored, err) != 0)
			goto bad;
		base = fresh;
		w->model = fresh;
		w->version = stored;
	}
	after = model_copy(base);
	rc = w->decide(w->arg, after, w->audit, err);
	if (rc != 0 || w->audit->n == 0) {
		model_free(after);
		s->backend->rollback(s->db);
		return rc;
	}
	/* base is the store at stored (read again under the lock when
	 * another daemon wrote): the other daemons at stored apply the
	 * change as notified */
	change = store_is_shared(s) ? store_change_encode(base, after, stored, stored + 1) : NULL;
	rc = save_and_commit(s, base, after, w->audit, stored + 1, w->idempotency_key, change, err);
	free(change);
	if (rc != 0) {
		model_free(after);
		return -1;
	}
	model_free(fresh);
	w->model = after;
	w->version = stored + 1;
	w->is_changed = 1;
	return 0;
bad:
	s->backend->rollback(s->db);
	if (fresh != NULL && w->model == NULL)
		model_free(fresh);
	return -1;
}

static int
is_empty(const struct model *m, const struct audit_log *audit)
{
	return m->n_clusters == 0 && m->n_users == 0 && m->n_tokens == 0 && audit->n == 0;
}

/* Appends the entries of newest_first to the store, oldest first. */
static int
append_audit_oldest_first(struct store *s, const struct audit_log *newest_first, struct error *err)
{
	int64_t id;
	size_t i;

	for (i = newest_first->n; i > 0; i--)
		if (s->backend->insert_audit(s->db, &newest_first->entries[i - 1], &id, err) != 0)
			return -1;
	return 0;
}

int
store_copy(struct store *from, struct store *to, int force, size_t *n_nodes, size_t *n_audit,
           struct error *err)
{
	struct model *src = NULL, *dst = model_new();
	struct audit_log src_audit = {0}, dst_audit = {0};
	int64_t src_version = 0, dst_version = 0, version;
	size_t i, nodes = 0;

	if (store_load_at(from, &src, &src_version, err) != 0 ||
	    store_read_audit(from, NULL, -1, &src_audit, err) != 0)
		goto bad;
	if (to->backend->begin(to->db, 0, err) != 0)
		goto bad;
	if (to->backend->load(to->db, dst, &dst_version, err) != 0 ||
	    to->backend->read_audit(to->db, NULL, 1, &dst_audit, err) != 0)
		goto bad_tx;
	if (!force && !is_empty(dst, &dst_audit)) {
		error_set(err, 409,
		          "the destination %s is not empty (it has clusters, users, tokens or "
		          "audit entries); give --force to replace what it holds",
		          store_describe(to));
		goto bad_tx;
	}
	version = (src_version > dst_version ? src_version : dst_version) + 1;
	if (save_difference(to, dst, src, err) != 0 || to->backend->clear_audit(to->db, err) != 0 ||
	    append_audit_oldest_first(to, &src_audit, err) != 0 ||
	    to->backend->write_version(to->db, version, NULL, err) != 0 ||
	    to->backend->commit(to->db, err) != 0)
		goto bad_tx;
	for (i = 0; i < src->n_clusters; i++)
		nodes += src->clusters[i].n_nodes;
	if (n_nodes != NULL)
		*n_nodes = nodes;
	if (n_audit != NULL)
		*n_audit = src_audit.n;
	model_free(src);
	model_free(dst);
	audit_log_free(&src_audit);
	audit_log_free(&dst_audit);
	return 0;
bad_tx:
	to->backend->rollback(to->db);
bad:
	model_free(src);
	model_free(dst);
	audit_log_free(&src_audit);
	audit_log_free(&dst_audit);
	return -1;
}

int
store_share_probes(struct store *s, const char *daemon, const struct probe_report *mine,
                   size_t n_mine, int64_t forget_before, int want_others,
                   const struct probe_interest *interest, size_t n_interest,
                   struct probe_report **others, size_t *n_others, int *is_delta, struct error *err)
{
	*others = NULL;
	*n_others = 0;
	*is_delta = 0;
	if (s->backend->share_probes == NULL)
		return 0;
	return s->backend->share_probes(s->db, daemon, mine, n_mine, forget_before, want_others,
	                                interest, n_interest, others, n_others, is_delta, err);
}

int
store_heartbeat(struct store *s, const struct daemon_record *me, struct daemon_record **all,
                size_t *n_all, int64_t *store_version, int64_t *changed_at, struct error *err)
{
	if (s->backend->heartbeat != NULL)
		return s->backend->heartbeat(s->db, me, all, n_all, store_version, changed_at, err);
	*all = xcalloc(1, sizeof(**all));
	**all = *me;
	*n_all = 1;
	*store_version = me->version;
	*changed_at = 0;
	return 0;
}

int
store_share_sessions(struct store *s, const struct session_record *added, size_t n_added,
                     const struct session_record *ended, size_t n_ended, int64_t now,
                     struct session_record **all, size_t *n_all, struct error *err)
{
	*all = NULL;
	*n_all = 0;
	if (s->backend->share_sessions == NULL)
		return 0;
	return s->backend->share_sessions(s->db, added, n_added, ended, n_ended, now, all, n_all,
	                                  err);
}

int
store_is_shared(const struct store *s)
{
	return s->backend->watch_start != NULL;
}

void
store_health(struct store *s, struct store_health *out)
{
	out->is_up = 1;
	out->down_since = 0;
	out->round_trip_ms = 0;
	out->is_slow = 0;
	if (s->backend->health != NULL)
		s->backend->health(s->db, out);
}

int
store_watch(struct store *s, const struct store_watcher *w, struct error *err)
{
	if (s->backend->watch_start == NULL || s->is_watching)
		return 0;
	if (s->backend->watch_start(s->db, w, err) != 0)
		return -1;
	s->is_watching = 1;
	return 0;
}

void
store_unwatch(struct store *s)
{
	if (!s->is_watching)
		return;
	s->backend->watch_stop(s->db);
	s->is_watching = 0;
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

/* A backend without the registry (none today). */
static int
no_rollouts(struct error *err)
{
	return error_set(err, 405, "this store keeps no rollouts");
}

int
store_rollouts_register(struct store *s, const struct rollout_record *rec, int is_force, int max,
                        int64_t evict_before, int *is_conflict, struct rollout_record *conflict,
                        struct error *err)
{
	*is_conflict = 0;
	memset(conflict, 0, sizeof(*conflict));
	if (s->backend->rollouts_register == NULL)
		return no_rollouts(err);
	return s->backend->rollouts_register(s->db, rec, is_force, max, evict_before, is_conflict,
	                                     conflict, err);
}

int
store_rollouts_beat(struct store *s, const struct rollout_record *beat, struct rollout_record *out,
                    struct error *err)
{
	memset(out, 0, sizeof(*out));
	if (s->backend->rollouts_beat == NULL)
		return no_rollouts(err);
	return s->backend->rollouts_beat(s->db, beat, out, err);
}

int
store_rollouts_list(struct store *s, struct rollout_record **all, size_t *n_all, struct error *err)
{
	*all = NULL;
	*n_all = 0;
	if (s->backend->rollouts_list == NULL)
		return no_rollouts(err);
	return s->backend->rollouts_list(s->db, all, n_all, err);
}

void
store_rollouts_free(struct rollout_record *r)
{
	free(r->phase);
	free(r->current);
	free(r->command);
	free(r->message);
	free(r->nodes);
	free(r->verdicts);
	r->phase = r->current = r->command = r->message = r->nodes = r->verdicts = NULL;
}
