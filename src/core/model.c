/*
 * model.c - whole models: creating, copying and freeing them, and finding
 * what they hold (clusters by name or mount, nodes, users, tokens); the
 * sorted-array helpers every model file uses (model_internal.h).
 *
 * The model is a value (see model.h): a few sorted arrays of structs that
 * own their strings, except that a cluster's nodes lie in chunks shared
 * with other copies of the model (model_nodes.c), and a node's strings in
 * one block shared with the copies of the node (struct node_text below).
 * Lookups are binary searches; an insertion or a removal of a user or a
 * token moves the tail of one array; a node's rebuilds the chunks after
 * it (model_nodes.c).
 *
 * The mutations live beside it, one file per kind of thing changed:
 * model_cluster.c (clusters, node lists, nodes, load balancers),
 * model_status.c (status change sets and TTL expiry), model_users.c (users
 * and tokens); model_names.c holds the name and value rules. Every
 * mutation has two phases: first it checks everything and fails without
 * touching the model, then it changes the model and cannot fail
 * (allocation aborts rather than fails: xalloc.h). That is what makes "on
 * error nothing has changed" true without an undo log.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "model_internal.h"

/* --- sorted arrays ---------------------------------------------------- */

/*
 * Every element type of a model array (node, cluster, user, token) begins
 * with its key, a char *, so a pointer to an element converts to a pointer
 * to that key. That lets one binary search serve all four arrays.
 */
static const char *
key_of(const void *elem)
{
	return *(char *const *)elem;
}

static int
compare_key_to_elem(const void *key, const void *elem)
{
	return strcmp(key, key_of(elem));
}

void *
model_sorted_find(const void *base, size_t n, size_t size, const char *key)
{
	if (key == NULL || n == 0)
		return NULL;
	return bsearch(key, base, n, size, compare_key_to_elem);
}

/* Where key is, or where it would go, in a sorted array; *found says which. */
size_t
model_sorted_index(const void *base, size_t n, size_t size, const char *key, int *found)
{
	const char *p = base;
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(key_of(p + mid * size), key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < n && strcmp(key_of(p + lo * size), key) == 0;
	return lo;
}

/* Grows an array of n elements by a zeroed slot at index at; returns the
 * new base. The caller increments its count. */
void *
model_array_open_slot(void *base, size_t n, size_t size, size_t at)
{
	char *p = xreallocarray(base, n + 1, size);

	memmove(p + (at + 1) * size, p + at * size, (n - at) * size);
	memset(p + at * size, 0, size);
	return p;
}

/* Closes the slot at index at of an array of n elements (whose contents
 * the caller has freed). The caller decrements its count. */
void
model_array_close_slot(void *base, size_t n, size_t size, size_t at)
{
	char *p = base;

	memmove(p + at * size, p + (at + 1) * size, (n - at - 1) * size);
}

int
model_compare_strings(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* --- freeing and copying ---------------------------------------------- */

static char *
copy_optional(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* --- shared node strings ----------------------------------------------- */

/*
 * A node's strings in one block: name, reason, changed_by and the
 * optional address and check, each NUL-terminated, one after the other.
 * A copy of the node (a chunk copied to be changed, a node list merged)
 * shares the block instead of copying five strings, and model_seal gives
 * every node changed a block. The count is atomic because models sharing
 * a block are freed by different threads (the engine's retired
 * snapshots, the copier's copies).
 */
struct node_text {
	_Atomic size_t refs;
	char data[];
};

static _Atomic uint64_t last_text_id;

/* Appends s (NULL: nothing) at *at, returns where it went. */
static char *
text_put(char **at, const char *s)
{
	char *p = *at;
	size_t len;

	if (s == NULL)
		return NULL;
	len = strlen(s) + 1;
	memcpy(p, s, len);
	*at += len;
	return p;
}

static size_t
text_size(const char *s)
{
	return s != NULL ? strlen(s) + 1 : 0;
}

/* A block holding copies of n's strings, with dst's fields pointing into
 * it; n's own strings are untouched. */
static void
node_pack(struct node *dst, const struct node *n)
{
	size_t size = text_size(n->name) + text_size(n->reason) + text_size(n->changed_by) +
	              text_size(n->address) + text_size(n->check);
	struct node_text *t = xmalloc(sizeof(*t) + size);
	char *at = t->data;

	atomic_init(&t->refs, 1);
	*dst = *n;
	dst->text_id = atomic_fetch_add_explicit(&last_text_id, 1, memory_order_relaxed) + 1;
	dst->name = text_put(&at, n->name);
	dst->reason = text_put(&at, n->reason);
	dst->changed_by = text_put(&at, n->changed_by);
	dst->address = text_put(&at, n->address);
	dst->check = text_put(&at, n->check);
	dst->text = t;
}

static void
text_release(struct node_text *t)
{
	if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
		free(t);
}

void
node_own_strings(struct node *n)
{
	struct node_text *t = n->text;

	if (t == NULL)
		return;
	n->name = xstrdup(n->name);
	n->reason = xstrdup(n->reason);
	n->changed_by = xstrdup(n->changed_by);
	n->address = copy_optional(n->address);
	n->check = copy_optional(n->check);
	n->text = NULL;
	n->text_id = 0;
	text_release(t);
}

void
node_share_strings(struct node *n)
{
	struct node packed;

	if (n->text != NULL)
		return;
	node_pack(&packed, n);
	model_node_clear(n);
	*n = packed;
}

uint64_t
node_text_id(const struct node *n)
{
	return n->text_id;
}

void
model_node_clear(struct node *n)
{
	if (n->text != NULL) {
		text_release(n->text);
		n->text = NULL;
		n->text_id = 0;
		return;
	}
	free(n->name);
	free(n->reason);
	free(n->changed_by);
	free(n->address);
	free(n->check);
}

void
model_lb_clear(struct lb *l)
{
	free(l->name);
	free(l->kind);
	free(l->runtime);
	free(l->backend);
}

void
model_cluster_clear(struct cluster *c)
{
	size_t i;

	model_nodes_clear(c);
	for (i = 0; i < c->n_lbs; i++)
		model_lb_clear(&c->lbs[i]);
	free(c->lbs);
	if (c->text != NULL) {
		text_release(c->text);
		c->text = NULL;
		return;
	}
	free(c->name);
	free(c->path);
}

void
model_cluster_own_names(struct cluster *c)
{
	struct node_text *t = c->text;

	if (t == NULL)
		return;
	c->name = xstrdup(c->name);
	c->path = xstrdup(c->path);
	c->text = NULL;
	text_release(t);
}

void
model_cluster_set_names(struct cluster *c, const char *name, const char *path)
{
	struct node_text *t = xmalloc(sizeof(*t) + text_size(name) + text_size(path));
	char *at = t->data;

	atomic_init(&t->refs, 1);
	c->name = text_put(&at, name);
	c->path = text_put(&at, path);
	c->text = t;
}

void
model_user_clear(struct user *u)
{
	free(u->name);
	free(u->password_hash);
}

void
model_token_clear(struct token *t)
{
	free(t->id);
	free(t->description);
	free(t->hash);
	free(t->created_by);
	free(t->clusters);
}

/* Shares src's block (a node read from a store has none yet: the copy
 * gets one, and copies of the copy share it). */
void
model_node_copy(struct node *dst, const struct node *src)
{
	if (src->text == NULL) {
		node_pack(dst, src);
		return;
	}
	atomic_fetch_add_explicit(&src->text->refs, 1, memory_order_relaxed);
	*dst = *src;
}

void
model_cluster_copy(struct cluster *dst, const struct cluster *src)
{
	size_t i;

	*dst = *src;
	if (src->text != NULL)
		atomic_fetch_add_explicit(&src->text->refs, 1, memory_order_relaxed);
	else
		model_cluster_set_names(dst, src->name, src->path);
	cluster_share_nodes(dst, src);
	dst->lbs = src->n_lbs > 0 ? xcalloc(src->n_lbs, sizeof *dst->lbs) : NULL;
	for (i = 0; i < src->n_lbs; i++) {
		dst->lbs[i].name = xstrdup(src->lbs[i].name);
		dst->lbs[i].kind = xstrdup(src->lbs[i].kind);
		dst->lbs[i].runtime = copy_optional(src->lbs[i].runtime);
		dst->lbs[i].backend = copy_optional(src->lbs[i].backend);
	}
}

static void
user_copy(struct user *dst, const struct user *src)
{
	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->password_hash = xstrdup(src->password_hash);
}

static void
token_copy(struct token *dst, const struct token *src)
{
	*dst = *src;
	dst->id = xstrdup(src->id);
	dst->description = xstrdup(src->description);
	dst->hash = xstrdup(src->hash);
	dst->created_by = xstrdup(src->created_by);
	dst->clusters = src->clusters != NULL ? xstrdup(src->clusters) : NULL;
}

/* --- whole models ----------------------------------------------------- */

struct model *
model_new(void)
{
	return xcalloc(1, sizeof(struct model));
}

struct model *
model_copy(const struct model *m)
{
	struct model *copy = model_new();
	size_t i;

	copy->n_clusters = m->n_clusters;
	copy->clusters = xcalloc(m->n_clusters, sizeof *copy->clusters);
	for (i = 0; i < m->n_clusters; i++)
		model_cluster_copy(&copy->clusters[i], &m->clusters[i]);
	if (m->by_path != NULL) { /* the same order, into the copy's array */
		copy->by_path = xcalloc(m->n_clusters ? m->n_clusters : 1, sizeof *copy->by_path);
		for (i = 0; i < m->n_clusters; i++)
			copy->by_path[i] = &copy->clusters[m->by_path[i] - m->clusters];
	}
	copy->n_users = m->n_users;
	copy->users = xcalloc(m->n_users, sizeof *copy->users);
	for (i = 0; i < m->n_users; i++)
		user_copy(&copy->users[i], &m->users[i]);
	copy->n_tokens = m->n_tokens;
	copy->tokens = xcalloc(m->n_tokens, sizeof *copy->tokens);
	for (i = 0; i < m->n_tokens; i++)
		token_copy(&copy->tokens[i], &m->tokens[i]);
	return copy;
}

void
model_free(struct model *m)
{
	if (m == NULL)
		return;
	model_clear(m);
	free(m);
}

void
model_clear(struct model *m)
{
	size_t i;

	for (i = 0; i < m->n_clusters; i++)
		model_cluster_clear(&m->clusters[i]);
	for (i = 0; i < m->n_users; i++)
		model_user_clear(&m->users[i]);
	for (i = 0; i < m->n_tokens; i++)
		model_token_clear(&m->tokens[i]);
	free(m->clusters);
	free(m->by_path);
	free(m->users);
	free(m->tokens);
	memset(m, 0, sizeof(*m));
}

/* --- lookups ---------------------------------------------------------- */

const struct cluster *
model_find_cluster(const struct model *m, const char *name)
{
	return model_sorted_find(m->clusters, m->n_clusters, sizeof *m->clusters, name);
}

struct cluster *
model_find_cluster_mut(struct model *m, const char *name)
{
	return model_sorted_find(m->clusters, m->n_clusters, sizeof *m->clusters, name);
}

static int
compare_path_index(const void *a, const void *b)
{
	return strcmp((*(const struct cluster *const *)a)->path,
	              (*(const struct cluster *const *)b)->path);
}

void
model_forget_paths(struct model *m)
{
	free(m->by_path);
	m->by_path = NULL;
}

void
model_seal(struct model *m)
{
	size_t i;

	for (i = 0; i < m->n_clusters; i++)
		model_nodes_seal(&m->clusters[i]);
	if (m->by_path != NULL)
		return; /* copied with the model, whose clusters are the same */
	m->by_path = xcalloc(m->n_clusters ? m->n_clusters : 1, sizeof *m->by_path);
	for (i = 0; i < m->n_clusters; i++)
		m->by_path[i] = &m->clusters[i];
	qsort(m->by_path, m->n_clusters, sizeof *m->by_path, compare_path_index);
}

/* --- what changed, for the events' delta form ----------------------------- */

static int
same_string(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Nodes copied from one another share their string block; a changed one
 * has strings of its own. */
int
node_same(const struct node *a, const struct node *b)
{
	if (a->status != b->status || a->changed_at != b->changed_at ||
	    a->expires_at != b->expires_at)
		return 0;
	if (a->text != NULL && a->text == b->text)
		return 1;
	return same_string(a->reason, b->reason) && same_string(a->changed_by, b->changed_by) &&
	       same_string(a->address, b->address) && same_string(a->check, b->check);
}

/* Sets node i's stamp, touching (and so copying) its chunk only when
 * the stamp changes. */
static void
node_stamp(struct cluster *c, size_t i, int64_t stamp)
{
	if (cluster_node(c, i)->stamp != stamp)
		cluster_node_mut(c, i)->stamp = stamp;
}

/* c's nodes against prev's namesake p (both sorted by name). A chunk c
 * shares with p at the same place holds the same nodes, stamped
 * already, and is skipped whole. */
static void
cluster_stamp_changes(struct cluster *c, const struct cluster *p, int64_t stamp)
{
	size_t i = 0, j = 0, shared;
	int is_same_members = c->n_nodes == p->n_nodes;

	while (i < c->n_nodes) {
		const struct node *a, *b;
		int order;

		if (i == j && (shared = clusters_share_from(c, p, i)) > 0) {
			i = j = i + shared;
			continue;
		}
		a = cluster_node(c, i);
		b = j < p->n_nodes ? cluster_node(p, j) : NULL;
		/* names shared with prev (model_copy) compare by pointer */
		order = b == NULL ? -1 : a->name == b->name ? 0 : strcmp(a->name, b->name);
		if (order > 0) { /* removed since */
			is_same_members = 0;
			j++;
			continue;
		}
		if (order < 0) /* added since */
			is_same_members = 0;
		node_stamp(c, i, order == 0 && node_same(a, b) && b->stamp != 0 ? b->stamp : stamp);
		i++;
		if (order == 0)
			j++;
	}
	c->members_stamp = is_same_members && p->members_stamp != 0 ? p->members_stamp : stamp;
}

/* prev's cluster named name, looked for from *j on, or NULL; both models'
 * clusters are sorted by name, so that walking next's clusters in order
 * moves *j along prev's once. Names shared by copies compare by pointer. */
static const struct cluster *
namesake_from(const struct model *prev, size_t *j, const char *name)
{
	while (prev != NULL && *j < prev->n_clusters) {
		const char *was = prev->clusters[*j].name;
		int cmp = was == name ? 0 : strcmp(was, name);

		if (cmp > 0)
			return NULL;
		if (cmp == 0)
			return &prev->clusters[*j];
		(*j)++;
	}
	return NULL;
}

void
model_stamp_changes(struct model *next, const struct model *prev, int64_t stamp)
{
	size_t i, j = 0, k;

	next->stamp = stamp;
	for (i = 0; i < next->n_clusters; i++) {
		struct cluster *c = &next->clusters[i];
		const struct cluster *p = namesake_from(prev, &j, c->name);

		if (p == NULL || p->version > c->version) { /* new, or removed and made again */
			for (k = 0; k < c->n_nodes; k++)
				node_stamp(c, k, stamp);
			c->members_stamp = stamp;
		} else if (p->version != c->version) {
			cluster_stamp_changes(c, p, stamp);
		} else if (c->members_stamp == 0 ||
		           (c->n_nodes > 0 && cluster_node(c, 0)->stamp == 0)) {
			/* read afresh, unchanged: not known since when */
			for (k = 0; k < c->n_nodes; k++)
				if (cluster_node(c, k)->stamp == 0)
					node_stamp(c, k, stamp);
			if (c->members_stamp == 0)
				c->members_stamp = stamp;
		}
	}
}

int
model_compare_slice(const char *path, size_t len, const char *s)
{
	int cmp = strncmp(path, s, len);

	if (cmp != 0)
		return cmp;
	return s[len] == '\0' ? 0 : -1;
}

const struct cluster *
model_find_cluster_by_path(const struct model *m, const char *path, size_t len)
{
	size_t i, lo = 0, hi = m->n_clusters;

	if (memchr(path, '\0', len) != NULL)
		return NULL;
	if (m->by_path == NULL) {
		for (i = 0; i < m->n_clusters; i++) {
			const struct cluster *c = &m->clusters[i];

			if (strlen(c->path) == len && memcmp(c->path, path, len) == 0)
				return c;
		}
		return NULL;
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cluster *c = m->by_path[mid];
		int cmp = model_compare_slice(path, len, c->path);

		if (cmp == 0)
			return c;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* Each candidate is the whole path or a prefix ending before a '/'; no
 * mount is longer than CLUSTER_PATH_MAX, so a long path costs no more. */
const struct cluster *
model_find_mount(const struct model *m, const char *path, size_t len, size_t *mount_len)
{
	const struct cluster *c;
	size_t k;

	for (k = 1; k <= len && k <= CLUSTER_PATH_MAX; k++) {
		if (k < len && path[k] != '/')
			continue;
		if ((c = model_find_cluster_by_path(m, path, k)) != NULL) {
			*mount_len = k;
			return c;
		}
	}
	return NULL;
}

const struct user *
model_find_user(const struct model *m, const char *name)
{
	return model_sorted_find(m->users, m->n_users, sizeof *m->users, name);
}

const struct token *
model_find_token(const struct model *m, const char *id)
{
	return model_sorted_find(m->tokens, m->n_tokens, sizeof *m->tokens, id);
}
