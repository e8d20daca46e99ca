/*
 * model_cluster.c - the mutations that change what a cluster is: adding
 * and removing clusters, replacing a node list, adding, updating and
 * removing one node, and the named load balancers.
 *
 * Decisions where model.h left room (also written there):
 *  - a new cluster starts at version 1;
 *  - a mutation that changes nothing (the same node list, the same address
 *    and check) succeeds without incrementing the version or writing an
 *    audit entry, so long-poll waiters do not wake up for nothing;
 *  - mount paths may not nest ("/a" and "/a/b"), because "{mount}/..."
 *    also names the pages below a mount and the routes would be ambiguous.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/merge.h"
#include "../util/xalloc.h"
#include "model_internal.h"

/* --- clusters --------------------------------------------------------- */

const char *
model_actor_name(const struct actor *who)
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
		if (model_path_is_below(path, c->path) || model_path_is_below(c->path, path))
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
	at = model_sorted_index(m->clusters, m->n_clusters, sizeof *m->clusters, name, &found);
	m->clusters = model_array_open_slot(m->clusters, m->n_clusters, sizeof *m->clusters, at);
	m->n_clusters++;
	model_forget_paths(m);
	c = &m->clusters[at];
	model_cluster_set_names(c, name, path);
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

	at = model_sorted_index(m->clusters, m->n_clusters, sizeof *m->clusters, name ? name : "",
	                        &found);
	if (!found)
		return error_set_entry(err, 404, name ? name : "", "cluster '%.100s' not found",
		                       name ? name : "");
	audit_log_add(audit, now, name, "", who, "cluster-remove", "", "", "");
	model_cluster_clear(&m->clusters[at]);
	model_array_close_slot(m->clusters, m->n_clusters, sizeof *m->clusters, at);
	m->n_clusters--;
	model_forget_paths(m);
	return 0;
}

/* --- nodes ------------------------------------------------------------ */

int
model_invalid_node_name(struct error *err, const char *name)
{
	return error_set_entry(err, 400, name ? name : "",
	                       "node '%.100s': invalid name (" NODE_NAME_RULE ")",
	                       name ? name : "");
}

int
model_node_not_found(struct error *err, const struct cluster *c, const char *name)
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
	n->changed_by = xstrdup(model_actor_name(who));
	n->changed_at = now;
	n->expires_at = 0;
	n->address = NULL;
	n->check = NULL;
	n->text = NULL;
	n->text_id = 0;
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
	qsort(sorted, n, sizeof *sorted, model_compare_strings);
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
		if (strcmp(cluster_node(c, i)->name, sorted[i]) != 0)
			return 0;
	return 1;
}

/* A merge of the current nodes with the new sorted names (util/merge.h):
 * kept nodes are copied over as they are (sharing their strings), new
 * ones are created, the rest are left behind. */
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
	return (*(const struct node *const *)e)->name;
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
	const struct node *n = *(const struct node *const *)old;

	audit_log_add(g->audit, g->now, g->c->name, n->name, g->who, "node-remove", "", "", "");
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
	model_node_copy(&g->nodes[g->k++], *(const struct node *const *)old);
	return 0;
}

static struct node *
merge_node_list(struct cluster *c, const char **sorted, size_t n, const struct actor *who,
                int64_t now, struct audit_log *audit)
{
	static const struct merge_calls calls = {node_dropped, node_created, node_moved};
	const struct node **was = xcalloc(c->n_nodes + 1, sizeof(*was));
	struct merge_side old = {was, c->n_nodes, sizeof(*was), node_name_key};
	struct merge_side new = {sorted, n, sizeof(*sorted), name_key};
	struct node_list_merge g = {c, xcalloc(n + 1, sizeof(struct node)), 0, who, now, audit};
	size_t i;

	for (i = 0; i < c->n_nodes; i++)
		was[i] = cluster_node(c, i);
	merge_walk(&old, &new, &calls, &g);
	free(was);
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
		if (!model_name_is_valid(names[i]))
			return model_invalid_node_name(err, names[i]);
	sorted = sorted_unique_names(names, n, &n_unique);
	if (n_unique > CLUSTER_NODES_MAX) {
		free(sorted);
		return error_set(err, 400, "a cluster holds at most %d nodes, not %zu",
		                 CLUSTER_NODES_MAX, n_unique);
	}
	if (!node_list_is(c, sorted, n_unique)) {
		nodes = merge_node_list(c, sorted, n_unique, who, now, audit);
		model_nodes_clear(c);
		cluster_take_nodes(c, nodes, n_unique);
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
	if (!model_name_is_valid(name))
		return model_invalid_node_name(err, name);
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
	struct node *n;

	at = cluster_node_position(c, name, strlen(name), &found);
	n = model_nodes_insert(c, at);
	node_init(n, name, who, now);
	return n;
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

	if (!model_name_is_valid(name))
		return model_invalid_node_name(err, name);
	at = cluster_node_position(c, name, strlen(name), &found);
	if (!found)
		return model_node_not_found(err, c, name);
	audit_log_add(audit, now, c->name, name, who, "node-remove", "", "", "");
	model_nodes_remove(c, at);
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
	return model_sorted_find(c->lbs, c->n_lbs, sizeof *c->lbs, name);
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
		if (!model_is_name_char((unsigned char)*s) && *s != ':')
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

	if (!model_name_is_valid(name))
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
	at = model_sorted_index(c->lbs, c->n_lbs, sizeof *c->lbs, name, &found);
	if (!found && c->n_lbs >= CLUSTER_LBS_MAX)
		return error_set_entry(
		    err, 409, name,
		    "load balancer '%s': cluster '%s' already has %d, the most a "
		    "cluster may have",
		    name, c->name, CLUSTER_LBS_MAX);
	if (!found) {
		c->lbs = model_array_open_slot(c->lbs, c->n_lbs, sizeof *c->lbs, at);
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

	if (!model_name_is_valid(name))
		return error_set_entry(err, 400, name != NULL ? name : "",
		                       "invalid load balancer name '%.64s'",
		                       name != NULL ? name : "");
	at = model_sorted_index(c->lbs, c->n_lbs, sizeof *c->lbs, name, &found);
	if (!found)
		return error_set_entry(
		    err, 404, name, "load balancer '%s' not found in cluster '%s'", name, c->name);
	audit_log_add(audit, now, c->name, name, who, "lb-remove", "", "", "");
	model_lb_clear(&c->lbs[at]);
	model_array_close_slot(c->lbs, c->n_lbs, sizeof *c->lbs, at);
	c->n_lbs--;
	c->version++;
	return 0;
}
