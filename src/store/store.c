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

#include "../util/xalloc.h"
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
store_load(struct store *s, struct model **out, struct error *err)
{
	int64_t version;

	return store_load_at(s, out, &version, err);
}

/* --- the difference ------------------------------------------------- */

/* Where a merge walk stands: < 0 only the old side has this name (removed),
 * > 0 only the new side (added), 0 both. NULL means that side is done. */
static int
walk_compare(const char *old_name, const char *new_name)
{
	if (old_name == NULL)
		return 1;
	if (new_name == NULL)
		return -1;
	return strcmp(old_name, new_name);
}

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

/* The nodes of one cluster; old is empty for a cluster just added. */
static int
save_nodes(struct store *s, const char *cluster, const struct node *old, size_t n_old,
           const struct node *new, size_t n_new, struct error *err)
{
	const struct store_backend *b = s->backend;
	size_t i = 0, j = 0;
	int cmp, rc = 0;

	while (rc == 0 && (i < n_old || j < n_new)) {
		cmp = walk_compare(i < n_old ? old[i].name : NULL, j < n_new ? new[j].name : NULL);
		if (cmp < 0) {
			rc = b->delete_node(s->db, cluster, old[i].name, err);
			i++;
		} else if (cmp > 0) {
			rc = b->upsert_node(s->db, cluster, &new[j], err);
			j++;
		} else {
			if (!node_equal(&old[i], &new[j]))
				rc = b->upsert_node(s->db, cluster, &new[j], err);
			i++, j++;
		}
	}
	return rc;
}

static int
remove_clusters(struct store *s, const struct model *before, const struct model *after,
                struct error *err)
{
	size_t i = 0, j = 0;
	int cmp, rc = 0;

	while (rc == 0 && i < before->n_clusters) {
		cmp = walk_compare(before->clusters[i].name,
		                   j < after->n_clusters ? after->clusters[j].name : NULL);
		if (cmp < 0) {
			rc = s->backend->delete_cluster(s->db, before->clusters[i].name, err);
			i++;
		} else if (cmp > 0) {
			j++;
		} else {
			i++, j++;
		}
	}
	return rc;
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
put_clusters(struct store *s, const struct model *before, const struct model *after,
             struct error *err)
{
	size_t i = 0, j = 0;
	int cmp, rc = 0;

	while (rc == 0 && j < after->n_clusters) {
		cmp = walk_compare(i < before->n_clusters ? before->clusters[i].name : NULL,
		                   after->clusters[j].name);
		if (cmp < 0) {
			i++;
		} else if (cmp > 0) {
			rc = save_cluster(s, NULL, &after->clusters[j], err);
			j++;
		} else {
			rc = save_cluster(s, &before->clusters[i], &after->clusters[j], err);
			i++, j++;
		}
	}
	return rc;
}

static int
save_users(struct store *s, const struct model *before, const struct model *after,
           struct error *err)
{
	const struct store_backend *b = s->backend;
	const struct user *old = before->users, *new = after->users;
	size_t i = 0, j = 0;
	int cmp, rc = 0;

	while (rc == 0 && (i < before->n_users || j < after->n_users)) {
		cmp = walk_compare(i < before->n_users ? old[i].name : NULL,
		                   j < after->n_users ? new[j].name : NULL);
		if (cmp < 0) {
			rc = b->delete_user(s->db, old[i].name, err);
			i++;
		} else if (cmp > 0) {
			rc = b->upsert_user(s->db, &new[j], err);
			j++;
		} else {
			if (!user_equal(&old[i], &new[j]))
				rc = b->upsert_user(s->db, &new[j], err);
			i++, j++;
		}
	}
	return rc;
}

/* Tokens are created and revoked, never edited; should one differ anyway,
 * it is replaced. */
static int
replace_token(struct store *s, const struct token *t, struct error *err)
{
	if (s->backend->delete_token(s->db, t->id, err) != 0)
		return -1;
	return s->backend->insert_token(s->db, t, err);
}

static int
save_tokens(struct store *s, const struct model *before, const struct model *after,
            struct error *err)
{
	const struct store_backend *b = s->backend;
	const struct token *old = before->tokens, *new = after->tokens;
	size_t i = 0, j = 0;
	int cmp, rc = 0;

	while (rc == 0 && (i < before->n_tokens || j < after->n_tokens)) {
		cmp = walk_compare(i < before->n_tokens ? old[i].id : NULL,
		                   j < after->n_tokens ? new[j].id : NULL);
		if (cmp < 0) {
			rc = b->delete_token(s->db, old[i].id, err);
			i++;
		} else if (cmp > 0) {
			rc = b->insert_token(s->db, &new[j], err);
			j++;
		} else {
			if (!token_equal(&old[i], &new[j]))
				rc = replace_token(s, &new[j], err);
			i++, j++;
		}
	}
	return rc;
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

/* Inside a write transaction: the difference, the audit entries and the
 * new version (version < 0: one more than stored), then commit. */
static int
save_and_commit(struct store *s, const struct model *before, const struct model *after,
                struct audit_log *audit, int64_t version, struct error *err)
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
	    s->backend->write_version(s->db, version, err) != 0 ||
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
	if (s->backend->begin(s->db, err) != 0)
		return -1;
	return save_and_commit(s, before, after, audit, -1, err);
}

int
store_save_at(struct store *s, const struct model *before, const struct model *after,
              int64_t version, struct error *err)
{
	if (s->backend->begin(s->db, err) != 0)
		return -1;
	return save_and_commit(s, before, after, NULL, version, err);
}

int
store_write(struct store *s, struct store_write *w, struct error *err)
{
	const struct model *base = w->known;
	struct model *fresh = NULL, *after = NULL;
	int64_t stored;
	int rc;

	w->model = NULL;
	w->version = w->known_version;
	w->is_changed = 0;
	if (s->backend->begin(s->db, err) != 0)
		return -1;
	if (s->backend->read_version(s->db, &stored, err) != 0)
		goto bad;
	if (stored != w->known_version) {
		/* Another daemon wrote since our model: decide on what is
		 * stored now, read under the lock, so nobody writes between. */
		fresh = model_new();
		if (s->backend->load(s->db, fresh, &stored, err) != 0)
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
	if (save_and_commit(s, base, after, w->audit, stored + 1, err) != 0) {
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
	if (to->backend->begin(to->db, err) != 0)
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
	    to->backend->write_version(to->db, version, err) != 0 ||
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
                   struct probe_report **others, size_t *n_others, struct error *err)
{
	*others = NULL;
	*n_others = 0;
	if (s->backend->share_probes == NULL)
		return 0;
	return s->backend->share_probes(s->db, daemon, mine, n_mine, forget_before, want_others,
	                                others, n_others, err);
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
