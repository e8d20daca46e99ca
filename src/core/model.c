/*
 * model.c - clusters, nodes, users and tokens, and every change to them.
 *
 * The model is a plain value (see model.h): a few sorted arrays of structs
 * that own their strings. Lookups are binary searches; an insertion or a
 * removal moves the tail of one array, which is O(n) in the nodes of one
 * cluster (at most CLUSTER_NODES_MAX, 10,000); a write copies the whole
 * model first anyway (engine.c), which costs more than the move.
 *
 * Every mutation has two phases: first it checks everything and fails
 * without touching the model, then it changes the model and cannot fail
 * (allocation aborts rather than fails: xalloc.h). That is what makes "on
 * error nothing has changed" true without an undo log.
 *
 * Decisions where model.h left room (also written there):
 *  - a new cluster starts at version 1;
 *  - a mutation that changes nothing (the same node list, the same address
 *    and check) succeeds without incrementing the version or writing an
 *    audit entry, so long-poll waiters do not wake up for nothing;
 *  - mount paths may not nest ("/a" and "/a/b"), because "{mount}/..."
 *    also names the pages below a mount and the routes would be ambiguous;
 *  - the only admin user can be neither removed nor demoted, so the
 *    operators cannot lock themselves out;
 *  - user-* and token-* audit entries have cluster "" and carry the user
 *    name or token id in node.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../util/merge.h"
#include "../util/url.h"
#include "../util/xalloc.h"
#include "model.h"

#define ADDRESS_MAX 255
#define CHECK_URL_MAX 2048

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

static void *
sorted_find(const void *base, size_t n, size_t size, const char *key)
{
	if (key == NULL || n == 0)
		return NULL;
	return bsearch(key, base, n, size, compare_key_to_elem);
}

/* Where key is, or where it would go, in a sorted array; *found says which. */
static size_t
sorted_index(const void *base, size_t n, size_t size, const char *key, int *found)
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
static void *
array_open_slot(void *base, size_t n, size_t size, size_t at)
{
	char *p = xreallocarray(base, n + 1, size);

	memmove(p + (at + 1) * size, p + at * size, (n - at) * size);
	memset(p + at * size, 0, size);
	return p;
}

/* Closes the slot at index at of an array of n elements (whose contents
 * the caller has freed). The caller decrements its count. */
static void
array_close_slot(void *base, size_t n, size_t size, size_t at)
{
	char *p = base;

	memmove(p + at * size, p + (at + 1) * size, (n - at - 1) * size);
}

static int
compare_strings(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* --- names and enums -------------------------------------------------- */

static int
is_name_char(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

int
node_name_is_valid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len == 0 || len > NODE_NAME_MAX)
		return 0;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (i = 0; i < len; i++)
		if (!is_name_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* The node name rule for a NUL-terminated string of any length. */
static int
name_is_valid(const char *s)
{
	return s != NULL && node_name_is_valid(s, strnlen(s, NODE_NAME_MAX + 1));
}

int
cluster_name_is_valid(const char *s)
{
	return name_is_valid(s);
}

static int
path_segment_is_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (i = 0; i < len; i++)
		if (!is_name_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* "/v1" and everything below it belong to the JSON API, "/metrics" to
 * Prometheus. */
static int
path_is_reserved(const char *s)
{
	return (strncmp(s, "/v1", 3) == 0 && (s[3] == '\0' || s[3] == '/')) ||
	       strcmp(s, "/metrics") == 0;
}

int
mount_path_is_valid(const char *s)
{
	const char *seg, *end;
	size_t len;

	if (s == NULL || s[0] != '/')
		return 0;
	len = strnlen(s, CLUSTER_PATH_MAX + 1);
	if (len < 2 || len > CLUSTER_PATH_MAX || path_is_reserved(s))
		return 0;
	for (seg = s + 1;; seg = end + 1) {
		end = strchr(seg, '/');
		if (end == NULL)
			end = s + len;
		if (!path_segment_is_valid(seg, (size_t)(end - seg)))
			return 0;
		if (*end == '\0')
			return 1;
	}
}

/* True when inner is a mount path strictly below outer ("/a/b" below "/a"). */
static int
path_is_below(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	return strncmp(inner, outer, n) == 0 && inner[n] == '/';
}

/* A host name, an IPv4 address, or (is_v6: it was in brackets) an IPv6
 * address; s is NUL-terminated at len. */
static int
host_is_valid(const char *s, size_t len, int is_v6)
{
	unsigned char buf[sizeof(struct in6_addr)];
	size_t i, label = 0;

	if (is_v6)
		return inet_pton(AF_INET6, s, buf) == 1;
	/* a host name (RFC 1123; an IPv4 address is one too): dot-separated
	 * labels of 1-63 letters, digits, '-' or '_', not starting or ending
	 * with '-' */
	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (label == 0 || label > 63 || s[i - label] == '-' || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_') {
			label++;
		} else {
			return 0;
		}
	}
	return 1;
}

int
node_address_is_valid(const char *s)
{
	char host[ADDRESS_MAX + 1];
	int port, is_v6;

	if (s == NULL || strnlen(s, ADDRESS_MAX + 1) > ADDRESS_MAX ||
	    hostport_split(s, host, sizeof(host), &port, &is_v6) != 0)
		return 0;
	return port >= 1 && host_is_valid(host, strlen(host), is_v6);
}

int
node_check_is_valid(const char *s)
{
	size_t i, len, skip;

	if (s == NULL)
		return 0;
	if (strncmp(s, "http://", 7) == 0)
		skip = 7;
	else if (strncmp(s, "https://", 8) == 0)
		skip = 8;
	else
		return 0;
	len = strnlen(s, CHECK_URL_MAX + 1);
	if (len <= skip || len > CHECK_URL_MAX)
		return 0;
	for (i = skip; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* Names of the enums, indexed by value. */
static const char *const status_names[] = {"online", "offline", "drain"};
static const char *const role_names[] = {"anonymous", "viewer", "operator", "admin"};

/* The index of s in names[first..n), or -1. */
static int
name_index(const char *const *names, int first, int n, const char *s)
{
	int i;

	for (i = first; s != NULL && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

const char *
node_status_name(enum node_status s)
{
	return (unsigned)s < 3 ? status_names[s] : "unknown";
}

int
node_status_from_string(const char *s, enum node_status *out)
{
	int i = name_index(status_names, 0, 3, s);

	if (i < 0)
		return -1;
	*out = (enum node_status)i;
	return 0;
}

const char *
role_name(enum role r)
{
	return (unsigned)r < 4 ? role_names[r] : "unknown";
}

/* "anonymous" (ROLE_NONE) is not a role anyone can be given. */
int
role_from_string(const char *s, enum role *out)
{
	int i = name_index(role_names, ROLE_VIEWER, 4, s);

	if (i < 0)
		return -1;
	*out = (enum role)i;
	return 0;
}

static int
status_is_valid(enum node_status s)
{
	return s == NODE_ONLINE || s == NODE_OFFLINE || s == NODE_DRAIN;
}

static int
role_is_valid(enum role r)
{
	return r == ROLE_VIEWER || r == ROLE_OPERATOR || r == ROLE_ADMIN;
}

/* --- freeing and copying ---------------------------------------------- */

static char *
copy_optional(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void
node_clear(struct node *n)
{
	free(n->name);
	free(n->reason);
	free(n->changed_by);
	free(n->address);
	free(n->check);
}

static void
lb_clear(struct lb *l)
{
	free(l->name);
	free(l->kind);
	free(l->runtime);
	free(l->backend);
}

static void
cluster_clear(struct cluster *c)
{
	size_t i;

	for (i = 0; i < c->n_nodes; i++)
		node_clear(&c->nodes[i]);
	free(c->nodes);
	for (i = 0; i < c->n_lbs; i++)
		lb_clear(&c->lbs[i]);
	free(c->lbs);
	free(c->name);
	free(c->path);
}

static void
user_clear(struct user *u)
{
	free(u->name);
	free(u->password_hash);
}

static void
token_clear(struct token *t)
{
	free(t->id);
	free(t->description);
	free(t->hash);
	free(t->created_by);
	free(t->clusters);
}

static void
node_copy(struct node *dst, const struct node *src)
{
	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->reason = xstrdup(src->reason);
	dst->changed_by = xstrdup(src->changed_by);
	dst->address = copy_optional(src->address);
	dst->check = copy_optional(src->check);
}

static void
cluster_copy(struct cluster *dst, const struct cluster *src)
{
	size_t i;

	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->path = xstrdup(src->path);
	dst->nodes = xcalloc(src->n_nodes, sizeof *dst->nodes);
	for (i = 0; i < src->n_nodes; i++)
		node_copy(&dst->nodes[i], &src->nodes[i]);
	dst->lbs = xcalloc(src->n_lbs, sizeof *dst->lbs);
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
		cluster_copy(&copy->clusters[i], &m->clusters[i]);
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
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n_clusters; i++)
		cluster_clear(&m->clusters[i]);
	for (i = 0; i < m->n_users; i++)
		user_clear(&m->users[i]);
	for (i = 0; i < m->n_tokens; i++)
		token_clear(&m->tokens[i]);
	free(m->clusters);
	free(m->by_path);
	free(m->users);
	free(m->tokens);
	free(m);
}

/* --- lookups ---------------------------------------------------------- */

const struct cluster *
model_find_cluster(const struct model *m, const char *name)
{
	return sorted_find(m->clusters, m->n_clusters, sizeof *m->clusters, name);
}

struct cluster *
model_find_cluster_mut(struct model *m, const char *name)
{
	return sorted_find(m->clusters, m->n_clusters, sizeof *m->clusters, name);
}

static int
compare_path_index(const void *a, const void *b)
{
	return strcmp((*(const struct cluster *const *)a)->path,
	              (*(const struct cluster *const *)b)->path);
}

void
model_index_paths(struct model *m)
{
	size_t i;

	free(m->by_path);
	m->by_path = xcalloc(m->n_clusters ? m->n_clusters : 1, sizeof *m->by_path);
	for (i = 0; i < m->n_clusters; i++)
		m->by_path[i] = &m->clusters[i];
	qsort(m->by_path, m->n_clusters, sizeof *m->by_path, compare_path_index);
}

/* strcmp of path[0..len) (no NUL inside) against a NUL-terminated s. */
static int
compare_slice(const char *path, size_t len, const char *s)
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
		int cmp = compare_slice(path, len, c->path);

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

/* A name given as a slice of a longer string, for the probe. */
struct name_slice {
	const char *s;
	size_t len;
};

static int
compare_slice_to_elem(const void *key, const void *elem)
{
	const struct name_slice *slice = key;
	const char *name = key_of(elem);
	int cmp = strncmp(slice->s, name, slice->len);

	if (cmp != 0)
		return cmp;
	/* The slice holds no NUL (it is a valid name), so name has at least
	 * len characters here and name[len] is in bounds. */
	return name[slice->len] == '\0' ? 0 : -1;
}

const struct node *
cluster_find_node(const struct cluster *c, const char *name, size_t len)
{
	struct name_slice slice = {name, len};

	if (c->n_nodes == 0 || !node_name_is_valid(name, len))
		return NULL;
	return bsearch(&slice, c->nodes, c->n_nodes, sizeof *c->nodes, compare_slice_to_elem);
}

struct node *
cluster_find_node_mut(struct cluster *c, const char *name)
{
	return sorted_find(c->nodes, c->n_nodes, sizeof *c->nodes, name);
}

const struct user *
model_find_user(const struct model *m, const char *name)
{
	return sorted_find(m->users, m->n_users, sizeof *m->users, name);
}

const struct token *
model_find_token(const struct model *m, const char *id)
{
	return sorted_find(m->tokens, m->n_tokens, sizeof *m->tokens, id);
}

size_t
cluster_count_online(const struct cluster *c)
{
	size_t i, online = 0;

	for (i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].status == NODE_ONLINE)
			online++;
	return online;
}

int64_t
model_next_expiry(const struct model *m)
{
	int64_t next = 0, at;
	size_t i, j;

	for (i = 0; i < m->n_clusters; i++) {
		for (j = 0; j < m->clusters[i].n_nodes; j++) {
			at = m->clusters[i].nodes[j].expires_at;
			if (at != 0 && (next == 0 || at < next))
				next = at;
		}
	}
	return next;
}

/* --- clusters --------------------------------------------------------- */

static const char *
actor_name(const struct actor *who)
{
	return who && who->name ? who->name : "";
}

/* 409 when path is taken by, nested in or holds another cluster's mount. */
static int
check_path_is_free(const struct model *m, const char *path, struct error *err)
{
	const struct cluster *c;
	size_t i;

	for (i = 0; i < m->n_clusters; i++) {
		c = &m->clusters[i];
		if (strcmp(c->path, path) == 0)
			return error_set(err, 409, "path '%s' is already the mount of cluster '%s'",
			                 path, c->name);
		if (path_is_below(path, c->path) || path_is_below(c->path, path))
			return error_set(err, 409,
			                 "path '%s' overlaps '%s', the mount of cluster '%s'", path,
			                 c->path, c->name);
	}
	return 0;
}

static int
check_new_cluster(const struct model *m, const char *name, const char *path, struct error *err)
{
	if (!cluster_name_is_valid(name))
		return error_set_entry(err, 400, name ? name : "",
		                       "cluster '%.100s': invalid name (" NODE_NAME_RULE ")",
		                       name ? name : "");
	if (!mount_path_is_valid(path))
		return error_set_entry(
		    err, 400, name,
		    "cluster '%s': invalid path '%.140s' (like /name or /a/b, at most 128 "
		    "characters of A-Z a-z 0-9 . _ - and '/', not below /v1, not /metrics)",
		    name, path ? path : "");
	if (model_find_cluster(m, name) != NULL)
		return error_set_entry(err, 409, name, "cluster '%s' already exists", name);
	return check_path_is_free(m, path, err);
}

int
model_add_cluster(struct model *m, const char *name, const char *path, const struct actor *who,
                  int64_t now, struct audit_log *audit, struct error *err)
{
	struct cluster *c;
	size_t at;
	int found;

	if (check_new_cluster(m, name, path, err) == -1)
		return -1;
	at = sorted_index(m->clusters, m->n_clusters, sizeof *m->clusters, name, &found);
	m->clusters = array_open_slot(m->clusters, m->n_clusters, sizeof *m->clusters, at);
	m->n_clusters++;
	c = &m->clusters[at];
	c->name = xstrdup(name);
	c->path = xstrdup(path);
	c->version = 1;
	audit_log_add(audit, now, name, "", who, "cluster-add", "", "", "");
	return 0;
}

int
model_remove_cluster(struct model *m, const char *name, const struct actor *who, int64_t now,
                     struct audit_log *audit, struct error *err)
{
	size_t at;
	int found;

	at =
	    sorted_index(m->clusters, m->n_clusters, sizeof *m->clusters, name ? name : "", &found);
	if (!found)
		return error_set_entry(err, 404, name ? name : "", "cluster '%.100s' not found",
		                       name ? name : "");
	audit_log_add(audit, now, name, "", who, "cluster-remove", "", "", "");
	cluster_clear(&m->clusters[at]);
	array_close_slot(m->clusters, m->n_clusters, sizeof *m->clusters, at);
	m->n_clusters--;
	return 0;
}

/* --- nodes ------------------------------------------------------------ */

static int
invalid_node_name(struct error *err, const char *name)
{
	return error_set_entry(err, 400, name ? name : "",
	                       "node '%.100s': invalid name (" NODE_NAME_RULE ")",
	                       name ? name : "");
}

static int
node_not_found(struct error *err, const struct cluster *c, const char *name)
{
	return error_set_entry(err, 404, name, "node '%s' not found in cluster '%s'", name,
	                       c->name);
}

static void
node_init(struct node *n, const char *name, const struct actor *who, int64_t now)
{
	n->name = xstrdup(name);
	n->status = NODE_ONLINE;
	n->reason = xstrdup("");
	n->changed_by = xstrdup(actor_name(who));
	n->changed_at = now;
	n->expires_at = 0;
	n->address = NULL;
	n->check = NULL;
}

/* The names sorted, without duplicates; *n_unique is their number. The
 * strings are borrowed from names. */
static const char **
sorted_unique_names(const char *const *names, size_t n, size_t *n_unique)
{
	const char **sorted = xcalloc(n, sizeof *sorted);
	size_t i, k = 0;

	if (n > 0)
		memcpy(sorted, names, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, compare_strings);
	for (i = 0; i < n; i++)
		if (k == 0 || strcmp(sorted[k - 1], sorted[i]) != 0)
			sorted[k++] = sorted[i];
	*n_unique = k;
	return sorted;
}

static int
node_list_is(const struct cluster *c, const char **sorted, size_t n)
{
	size_t i;

	if (c->n_nodes != n)
		return 0;
	for (i = 0; i < n; i++)
		if (strcmp(c->nodes[i].name, sorted[i]) != 0)
			return 0;
	return 1;
}

/* A merge of the current nodes with the new sorted names (util/merge.h):
 * kept nodes move over as they are, new ones are created, the rest are
 * freed. */
struct node_list_merge {
	struct cluster *c;
	struct node *nodes; /* the new list, filled up to k */
	size_t k;
	const struct actor *who;
	int64_t now;
	struct audit_log *audit;
};

static const char *
node_name_key(const void *e)
{
	return ((const struct node *)e)->name;
}

static const char *
name_key(const void *e)
{
	return *(const char *const *)e;
}

static int
node_dropped(void *arg, const void *old)
{
	struct node_list_merge *g = arg;
	struct node *n = (struct node *)old; /* one of g->c->nodes */

	audit_log_add(g->audit, g->now, g->c->name, n->name, g->who, "node-remove", "", "", "");
	node_clear(n);
	return 0;
}

static int
node_created(void *arg, const void *name)
{
	struct node_list_merge *g = arg;

	audit_log_add(g->audit, g->now, g->c->name, name_key(name), g->who, "node-add", "", "", "");
	node_init(&g->nodes[g->k++], name_key(name), g->who, g->now);
	return 0;
}

static int
node_moved(void *arg, const void *old, const void *name)
{
	struct node_list_merge *g = arg;

	(void)name;
	g->nodes[g->k++] = *(const struct node *)old;
	return 0;
}

static struct node *
merge_node_list(struct cluster *c, const char **sorted, size_t n, const struct actor *who,
                int64_t now, struct audit_log *audit)
{
	static const struct merge_calls calls = {node_dropped, node_created, node_moved};
	struct merge_side old = {c->nodes, c->n_nodes, sizeof(*c->nodes), node_name_key};
	struct merge_side new = {sorted, n, sizeof(*sorted), name_key};
	struct node_list_merge g = {c, xcalloc(n, sizeof(struct node)), 0, who, now, audit};

	merge_walk(&old, &new, &calls, &g);
	return g.nodes;
}

int
cluster_set_node_list(struct cluster *c, const char *const *names, size_t n,
                      const struct actor *who, int64_t now, struct audit_log *audit,
                      struct error *err)
{
	const char **sorted;
	struct node *nodes;
	size_t i, n_unique;

	for (i = 0; i < n; i++)
		if (!name_is_valid(names[i]))
			return invalid_node_name(err, names[i]);
	sorted = sorted_unique_names(names, n, &n_unique);
	if (n_unique > CLUSTER_NODES_MAX) {
		free(sorted);
		return error_set(err, 400, "a cluster holds at most %d nodes, not %zu",
		                 CLUSTER_NODES_MAX, n_unique);
	}
	if (!node_list_is(c, sorted, n_unique)) {
		nodes = merge_node_list(c, sorted, n_unique, who, now, audit);
		free(c->nodes);
		c->nodes = nodes;
		c->n_nodes = n_unique;
		c->version++;
	}
	free(sorted);
	return 0;
}

/* Would setting field to value (NULL: keep, "": clear) change it? */
static int
optional_differs(const char *field, const char *value)
{
	if (value == NULL)
		return 0;
	if (*value == '\0')
		return field != NULL;
	return field == NULL || strcmp(field, value) != 0;
}

static void
optional_set(char **field, const char *value)
{
	if (value == NULL)
		return;
	free(*field);
	*field = *value ? xstrdup(value) : NULL;
}

static int
check_put_node(const char *name, const char *address, const char *check, struct error *err)
{
	if (!name_is_valid(name))
		return invalid_node_name(err, name);
	if (address && *address && !node_address_is_valid(address))
		return error_set_entry(err, 400, name,
		                       "node '%s': invalid address '%.100s' (expected host:port)",
		                       name, address);
	if (check && *check && !node_check_is_valid(check))
		return error_set_entry(
		    err, 400, name,
		    "node '%s': invalid check '%.100s' (expected an http:// or https:// URL)", name,
		    check);
	return 0;
}

static struct node *
cluster_insert_node(struct cluster *c, const char *name, const struct actor *who, int64_t now)
{
	size_t at;
	int found;

	at = sorted_index(c->nodes, c->n_nodes, sizeof *c->nodes, name, &found);
	c->nodes = array_open_slot(c->nodes, c->n_nodes, sizeof *c->nodes, at);
	c->n_nodes++;
	node_init(&c->nodes[at], name, who, now);
	return &c->nodes[at];
}

int
cluster_put_node(struct cluster *c, const char *name, const char *address, const char *check,
                 const struct actor *who, int64_t now, struct audit_log *audit, struct error *err)
{
	struct node *n;
	const char *action = "node-update";

	if (check_put_node(name, address, check, err) == -1)
		return -1;
	n = cluster_find_node_mut(c, name);
	if (n == NULL && c->n_nodes >= CLUSTER_NODES_MAX)
		return error_set_entry(err, 409, name,
		                       "node '%s': cluster '%s' already holds %d nodes, the most "
		                       "a cluster may hold",
		                       name, c->name, CLUSTER_NODES_MAX);
	if (n == NULL) {
		n = cluster_insert_node(c, name, who, now);
		action = "node-add";
	} else if (!optional_differs(n->address, address) && !optional_differs(n->check, check)) {
		return 0;
	}
	optional_set(&n->address, address);
	optional_set(&n->check, check);
	audit_log_add(audit, now, c->name, name, who, action, "", "", "");
	c->version++;
	return 0;
}

int
cluster_remove_node(struct cluster *c, const char *name, const struct actor *who, int64_t now,
                    struct audit_log *audit, struct error *err)
{
	size_t at;
	int found;

	if (!name_is_valid(name))
		return invalid_node_name(err, name);
	at = sorted_index(c->nodes, c->n_nodes, sizeof *c->nodes, name, &found);
	if (!found)
		return node_not_found(err, c, name);
	audit_log_add(audit, now, c->name, name, who, "node-remove", "", "", "");
	node_clear(&c->nodes[at]);
	array_close_slot(c->nodes, c->n_nodes, sizeof *c->nodes, at);
	c->n_nodes--;
	c->version++;
	return 0;
}

/* --- named load balancers ------------------------------------------- */

int
lb_kind_is_valid(const char *s)
{
	return s != NULL && (strcmp(s, "haproxy") == 0 || strcmp(s, "varnish") == 0 ||
	                     strcmp(s, "nginx") == 0 || strcmp(s, "other") == 0);
}

const struct lb *
cluster_find_lb(const struct cluster *c, const char *name)
{
	return sorted_find(c->lbs, c->n_lbs, sizeof *c->lbs, name);
}

/* A runtime address is written into no configuration, but it is shown
 * and used as a path or host:port: printable ASCII, no spaces or quotes. */
static int
lb_runtime_is_valid(const char *s)
{
	if (strlen(s) > LB_RUNTIME_MAX)
		return 0;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s >= 0x7f || strchr("\"'\\`", *s) != NULL)
			return 0;
	return 1;
}

static int
lb_backend_is_valid(const char *s)
{
	if (strlen(s) > LB_BACKEND_MAX)
		return 0;
	for (; *s != '\0'; s++)
		if (!is_name_char((unsigned char)*s) && *s != ':')
			return 0;
	return 1;
}

int
cluster_put_lb(struct cluster *c, const char *name, const char *kind, const char *runtime,
               const char *backend, const struct actor *who, int64_t now, struct audit_log *audit,
               struct error *err)
{
	const char *action = "lb-update";
	size_t at;
	int found;
	struct lb *l;

	if (!name_is_valid(name))
		return error_set_entry(err, 400, name != NULL ? name : "",
		                       "invalid load balancer name '%.64s': 1-64 characters of "
		                       "A-Z a-z 0-9 . _ -",
		                       name != NULL ? name : "");
	if (!lb_kind_is_valid(kind))
		return error_set_entry(
		    err, 400, name,
		    "load balancer '%s': kind must be haproxy, varnish, nginx or "
		    "other",
		    name);
	if (runtime != NULL && !lb_runtime_is_valid(runtime))
		return error_set_entry(
		    err, 400, name,
		    "load balancer '%s': invalid runtime address (a socket path, "
		    "HOST:PORT or a directory, printable, without spaces or "
		    "quotes, at most %d bytes)",
		    name, LB_RUNTIME_MAX);
	if (backend != NULL && !lb_backend_is_valid(backend))
		return error_set_entry(
		    err, 400, name,
		    "load balancer '%s': invalid backend name (A-Z a-z 0-9 . _ - :, "
		    "at most %d bytes)",
		    name, LB_BACKEND_MAX);
	at = sorted_index(c->lbs, c->n_lbs, sizeof *c->lbs, name, &found);
	if (!found && c->n_lbs >= CLUSTER_LBS_MAX)
		return error_set_entry(
		    err, 409, name,
		    "load balancer '%s': cluster '%s' already has %d, the most a "
		    "cluster may have",
		    name, c->name, CLUSTER_LBS_MAX);
	if (!found) {
		c->lbs = array_open_slot(c->lbs, c->n_lbs, sizeof *c->lbs, at);
		c->n_lbs++;
		memset(&c->lbs[at], 0, sizeof c->lbs[at]);
		c->lbs[at].name = xstrdup(name);
		c->lbs[at].kind = xstrdup(kind);
		action = "lb-add";
	} else if (strcmp(c->lbs[at].kind, kind) == 0 &&
	           !optional_differs(c->lbs[at].runtime, runtime != NULL ? runtime : "") &&
	           !optional_differs(c->lbs[at].backend, backend != NULL ? backend : "")) {
		return 0;
	}
	l = &c->lbs[at];
	free(l->kind);
	l->kind = xstrdup(kind);
	optional_set(&l->runtime, runtime != NULL ? runtime : "");
	optional_set(&l->backend, backend != NULL ? backend : "");
	audit_log_add(audit, now, c->name, name, who, action, "", "", "");
	c->version++;
	return 0;
}

int
cluster_remove_lb(struct cluster *c, const char *name, const struct actor *who, int64_t now,
                  struct audit_log *audit, struct error *err)
{
	size_t at;
	int found;

	if (!name_is_valid(name))
		return error_set_entry(err, 400, name != NULL ? name : "",
		                       "invalid load balancer name '%.64s'",
		                       name != NULL ? name : "");
	at = sorted_index(c->lbs, c->n_lbs, sizeof *c->lbs, name, &found);
	if (!found)
		return error_set_entry(
		    err, 404, name, "load balancer '%s' not found in cluster '%s'", name, c->name);
	audit_log_add(audit, now, c->name, name, who, "lb-remove", "", "", "");
	lb_clear(&c->lbs[at]);
	array_close_slot(c->lbs, c->n_lbs, sizeof *c->lbs, at);
	c->n_lbs--;
	c->version++;
	return 0;
}

/* --- status changes --------------------------------------------------- */

static int
compare_changes(const void *a, const void *b)
{
	const struct status_change *x = *(const struct status_change *const *)a;
	const struct status_change *y = *(const struct status_change *const *)b;

	/* A hand-built set may hold a NULL name; check_change rejects it. */
	return strcmp(x->node ? x->node : "", y->node ? y->node : "");
}

/* The changes in node order. A change set from change_set_from_json is
 * already sorted; one built by hand (the web page) need not be. */
static const struct status_change **
changes_in_node_order(const struct change_set *cs)
{
	const struct status_change **order = xcalloc(cs->n, sizeof *order);
	size_t i;

	for (i = 0; i < cs->n; i++)
		order[i] = &cs->changes[i];
	qsort(order, cs->n, sizeof *order, compare_changes);
	return order;
}

static int
check_change(const struct cluster *c, const struct status_change *ch,
             const struct status_change *previous, struct error *err)
{
	if (!name_is_valid(ch->node))
		return invalid_node_name(err, ch->node);
	if (previous != NULL && strcmp(previous->node, ch->node) == 0)
		return error_set_entry(err, 400, ch->node,
		                       "node '%s' appears more than once in the change set",
		                       ch->node);
	if (cluster_find_node(c, ch->node, strlen(ch->node)) == NULL)
		return node_not_found(err, c, ch->node);
	if (!status_is_valid(ch->status) || ch->ttl_ms < 0)
		return error_set_entry(err, 400, ch->node, "node '%s': invalid status or ttl",
		                       ch->node);
	return 0;
}

/* How many nodes would be online after the (checked, unique) changes. */
static size_t
count_online_after(const struct cluster *c, const struct status_change **order, size_t n)
{
	size_t i, online = cluster_count_online(c);
	const struct node *node;

	for (i = 0; i < n; i++) {
		node = cluster_find_node(c, order[i]->node, strlen(order[i]->node));
		if (node->status == NODE_ONLINE)
			online--;
		if (order[i]->status == NODE_ONLINE)
			online++;
	}
	return online;
}

static int
check_changes(const struct cluster *c, const struct status_change **order, size_t n,
              int64_t if_version, int64_t min_online, struct error *err)
{
	size_t i, online;

	for (i = 0; i < n; i++)
		if (check_change(c, order[i], i ? order[i - 1] : NULL, err) == -1)
			return -1;
	if (if_version >= 0 && if_version != c->version)
		return error_set(err, 409, "cluster version is %lld, not %lld",
		                 (long long)c->version, (long long)if_version);
	if (min_online < 0)
		return 0;
	online = count_online_after(c, order, n);
	if ((int64_t)online < min_online)
		return error_set(err, 409,
		                 "the change would leave %zu of %zu nodes of cluster '%s' online, "
		                 "fewer than min_online %lld",
		                 online, c->n_nodes, c->name, (long long)min_online);
	return 0;
}

static void
apply_change(struct cluster *c, const struct status_change *ch, const struct actor *who,
             int64_t now, struct audit_log *audit)
{
	struct node *n = cluster_find_node_mut(c, ch->node);
	enum node_status old = n->status;

	n->status = ch->status;
	free(n->reason);
	n->reason = xstrdup(ch->reason);
	free(n->changed_by);
	n->changed_by = xstrdup(actor_name(who));
	n->changed_at = now;
	n->expires_at = ch->ttl_ms ? now + ch->ttl_ms : 0;
	audit_log_add(audit, now, c->name, n->name, who, "status", node_status_name(old),
	              node_status_name(n->status), n->reason);
}

int
cluster_apply_changes(struct cluster *c, const struct change_set *cs, const struct actor *who,
                      int64_t now, int64_t if_version, int64_t min_online, struct audit_log *audit,
                      struct error *err)
{
	const struct status_change **order;
	size_t i;
	int rc = -1;

	if (cs == NULL || cs->n == 0)
		return error_set(err, 400, "change set is empty");
	order = changes_in_node_order(cs);
	if (check_changes(c, order, cs->n, if_version, min_online, err) == -1)
		goto done;
	for (i = 0; i < cs->n; i++)
		apply_change(c, order[i], who, now, audit);
	c->version++;
	rc = 0;
done:
	free(order);
	return rc;
}

static size_t
cluster_expire(struct cluster *c, int64_t now, struct audit_log *audit)
{
	static const struct actor ttl = {"ttl", ""};
	struct node *n;
	size_t i, expired = 0;

	for (i = 0; i < c->n_nodes; i++) {
		n = &c->nodes[i];
		if (n->expires_at == 0 || n->expires_at > now)
			continue;
		audit_log_add(audit, now, c->name, n->name, &ttl, "status",
		              node_status_name(n->status), "online", "ttl expired");
		n->status = NODE_ONLINE;
		free(n->reason);
		n->reason = xstrdup("");
		free(n->changed_by);
		n->changed_by = xstrdup(ttl.name);
		n->changed_at = now;
		n->expires_at = 0;
		expired++;
	}
	if (expired > 0)
		c->version++;
	return expired;
}

size_t
model_expire(struct model *m, int64_t now, struct audit_log *audit)
{
	size_t i, expired = 0;

	for (i = 0; i < m->n_clusters; i++)
		expired += cluster_expire(&m->clusters[i], now, audit);
	return expired;
}

/* --- users ------------------------------------------------------------ */

static size_t
count_admins(const struct model *m)
{
	size_t i, admins = 0;

	for (i = 0; i < m->n_users; i++)
		if (m->users[i].role == ROLE_ADMIN)
			admins++;
	return admins;
}

/* Whether taking away u's admin role would leave no admin user. */
static int
is_only_admin(const struct model *m, const struct user *u)
{
	return u->role == ROLE_ADMIN && count_admins(m) == 1;
}

static int
check_put_user(const struct model *m, const char *name, enum role role, const char *hash,
               struct error *err)
{
	const struct user *u;

	if (!name_is_valid(name))
		return error_set_entry(err, 400, name ? name : "",
		                       "user '%.100s': invalid name (" NODE_NAME_RULE ")",
		                       name ? name : "");
	if (!role_is_valid(role))
		return error_set_entry(
		    err, 400, name, "user '%s': invalid role (expected viewer, operator or admin)",
		    name);
	if (hash == NULL || *hash == '\0')
		return error_set_entry(err, 400, name, "user '%s': password hash is empty", name);
	u = model_find_user(m, name);
	if (u != NULL && role != ROLE_ADMIN && is_only_admin(m, u))
		return error_set_entry(
		    err, 409, name, "user '%s' is the only admin and cannot lose that role", name);
	return 0;
}

int
model_put_user(struct model *m, const char *name, enum role role, const char *password_hash,
               const struct actor *who, int64_t now, struct audit_log *audit, struct error *err)
{
	struct user *u;
	size_t at;
	int found;

	if (check_put_user(m, name, role, password_hash, err) == -1)
		return -1;
	at = sorted_index(m->users, m->n_users, sizeof *m->users, name, &found);
	if (!found) {
		m->users = array_open_slot(m->users, m->n_users, sizeof *m->users, at);
		m->n_users++;
		m->users[at].name = xstrdup(name);
		m->users[at].created_at = now;
	}
	u = &m->users[at];
	u->role = role;
	free(u->password_hash);
	u->password_hash = xstrdup(password_hash);
	audit_log_add(audit, now, "", name, who, "user-add", "", "", found ? "replaced" : "");
	return 0;
}

int
model_remove_user(struct model *m, const char *name, const struct actor *who, int64_t now,
                  struct audit_log *audit, struct error *err)
{
	size_t at;
	int found;

	at = sorted_index(m->users, m->n_users, sizeof *m->users, name ? name : "", &found);
	if (!found)
		return error_set_entry(err, 404, name ? name : "", "user '%.100s' not found",
		                       name ? name : "");
	if (is_only_admin(m, &m->users[at]))
		return error_set_entry(err, 409, name,
		                       "user '%s' is the only admin and cannot be removed", name);
	audit_log_add(audit, now, "", name, who, "user-remove", "", "", "");
	user_clear(&m->users[at]);
	array_close_slot(m->users, m->n_users, sizeof *m->users, at);
	m->n_users--;
	return 0;
}

/* --- tokens ----------------------------------------------------------- */

static int
check_new_token(const struct model *m, const char *id, enum role role, const char *hash,
                const char *description, struct error *err)
{
	if (!name_is_valid(id))
		return error_set_entry(err, 400, id ? id : "",
		                       "token '%.100s': invalid id (" NODE_NAME_RULE ")",
		                       id ? id : "");
	if (!role_is_valid(role))
		return error_set_entry(
		    err, 400, id, "token '%s': invalid role (expected viewer, operator or admin)",
		    id);
	if (hash == NULL || *hash == '\0')
		return error_set_entry(err, 400, id, "token '%s': hash is empty", id);
	if (text_check_length("description", description != NULL ? description : "",
	                      DESCRIPTION_MAX, err) != 0)
		return -1;
	if (model_find_token(m, id) != NULL)
		return error_set_entry(err, 409, id, "token '%s' already exists", id);
	return 0;
}

int
model_add_token(struct model *m, const char *id, enum role role, const char *description,
                const char *hash, const struct actor *who, int64_t now, struct audit_log *audit,
                struct error *err)
{
	struct token *t;
	size_t at;
	int found;

	if (check_new_token(m, id, role, hash, description, err) == -1)
		return -1;
	at = sorted_index(m->tokens, m->n_tokens, sizeof *m->tokens, id, &found);
	m->tokens = array_open_slot(m->tokens, m->n_tokens, sizeof *m->tokens, at);
	m->n_tokens++;
	t = &m->tokens[at];
	t->id = xstrdup(id);
	t->role = role;
	t->description = xstrdup(description);
	t->hash = xstrdup(hash);
	t->created_by = xstrdup(actor_name(who));
	t->created_at = now;
	audit_log_add(audit, now, "", id, who, "token-create", "", "", "");
	return 0;
}

int
model_remove_token(struct model *m, const char *id, const struct actor *who, int64_t now,
                   struct audit_log *audit, struct error *err)
{
	size_t at;
	int found;

	at = sorted_index(m->tokens, m->n_tokens, sizeof *m->tokens, id ? id : "", &found);
	if (!found)
		return error_set_entry(err, 404, id ? id : "", "token '%.100s' not found",
		                       id ? id : "");
	audit_log_add(audit, now, "", id, who, "token-revoke", "", "", "");
	token_clear(&m->tokens[at]);
	array_close_slot(m->tokens, m->n_tokens, sizeof *m->tokens, at);
	m->n_tokens--;
	return 0;
}

/* --- tokens scoped to clusters ------------------------------------------ */

int
model_check_token_clusters(const char *clusters, struct error *err)
{
	const char *p = clusters, *q;
	size_t n = 0;

	while (p != NULL && *p != '\0') {
		size_t len = strcspn(p, ",");
		if (!node_name_is_valid(p, len))
			return error_set(err, 400, "token cluster '%.*s': invalid name (" NODE_NAME_RULE
			                 ")", (int)(len > 100 ? 100 : len), p);
		for (q = clusters; q < p; q += strcspn(q, ",") + 1)
			if (strcspn(q, ",") == len && strncmp(q, p, len) == 0)
				return error_set(err, 400, "token cluster '%.*s' is named twice",
				                 (int)len, p);
		if (++n > TOKEN_CLUSTERS_MAX)
			return error_set(err, 400, "a token may be scoped to at most %d clusters",
			                 TOKEN_CLUSTERS_MAX);
		p += len + (p[len] == ',');
	}
	return 0;
}

void
model_set_token_clusters(struct model *m, const char *id, const char *clusters)
{
	struct token *t = (struct token *)model_find_token(m, id);

	if (t == NULL)
		return;
	free(t->clusters);
	t->clusters = xstrdup(clusters);
}
