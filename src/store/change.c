/*
 * change.c - a write's change as its notification carries it (see
 * change.h).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../util/xalloc.h"
#include "change.h"

struct store_change {
	int64_t from, version;
	json_t *doc; /* checked by store_change_decode */
};

static int
same_string(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Are the users and tokens of a and b the same, every stored field? A
 * change to them never travels in a notification. */
static int
accounts_same(const struct model *a, const struct model *b)
{
	size_t i;

	if (a->n_users != b->n_users || a->n_tokens != b->n_tokens)
		return 0;
	for (i = 0; i < a->n_users; i++)
		if (strcmp(a->users[i].name, b->users[i].name) != 0 ||
		    a->users[i].role != b->users[i].role ||
		    a->users[i].created_at != b->users[i].created_at ||
		    !same_string(a->users[i].password_hash, b->users[i].password_hash))
			return 0;
	for (i = 0; i < a->n_tokens; i++)
		if (strcmp(a->tokens[i].id, b->tokens[i].id) != 0 ||
		    a->tokens[i].role != b->tokens[i].role ||
		    a->tokens[i].created_at != b->tokens[i].created_at ||
		    !same_string(a->tokens[i].hash, b->tokens[i].hash) ||
		    !same_string(a->tokens[i].created_by, b->tokens[i].created_by) ||
		    !same_string(a->tokens[i].clusters, b->tokens[i].clusters) ||
		    !same_string(a->tokens[i].description, b->tokens[i].description))
			return 0;
	return 1;
}

static int
lbs_same(const struct cluster *a, const struct cluster *b)
{
	size_t i;

	if (a->n_lbs != b->n_lbs)
		return 0;
	for (i = 0; i < a->n_lbs; i++)
		if (!same_string(a->lbs[i].name, b->lbs[i].name) ||
		    !same_string(a->lbs[i].kind, b->lbs[i].kind) ||
		    !same_string(a->lbs[i].runtime, b->lbs[i].runtime) ||
		    !same_string(a->lbs[i].backend, b->lbs[i].backend))
			return 0;
	return 1;
}

/* The one cluster of after whose version moved, when it is the only
 * difference besides its nodes' documents; else NULL. *before_c gets
 * its namesake. */
static const struct cluster *
only_changed_cluster(const struct model *before, const struct model *after,
                     const struct cluster **before_c)
{
	const struct cluster *changed = NULL;
	size_t i, k, shared = 0;

	if (before->n_clusters != after->n_clusters || !accounts_same(before, after))
		return NULL;
	for (i = 0; i < after->n_clusters; i++) {
		const struct cluster *a = &after->clusters[i], *b = &before->clusters[i];
		if (!same_string(a->name, b->name) || !same_string(a->path, b->path))
			return NULL;
		if (a->version == b->version)
			continue;
		if (changed != NULL || a->n_nodes != b->n_nodes || !lbs_same(a, b))
			return NULL;
		for (k = 0; k<a->n_nodes; k += shared> 0 ? shared : 1)
			if ((shared = clusters_share_from(a, b, k)) == 0 &&
			    strcmp(cluster_node(a, k)->name, cluster_node(b, k)->name) != 0)
				return NULL;
		changed = a;
		*before_c = b;
	}
	return changed;
}

static json_t *
optional(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

char *
store_change_encode(const struct model *before, const struct model *after, int64_t from,
                    int64_t version)
{
	const struct cluster *b = NULL, *a;
	json_t *nodes, *doc;
	char *text;
	size_t k, shared = 0;

	if (before == NULL || after == NULL ||
	    (a = only_changed_cluster(before, after, &b)) == NULL)
		return NULL;
	nodes = json_array();
	for (k = 0; k<a->n_nodes; k += shared> 0 ? shared : 1) {
		const struct node *n = cluster_node(a, k);
		json_t *one;
		if ((shared = clusters_share_from(a, b, k)) > 0 || node_same(n, cluster_node(b, k)))
			continue;
		/* every changed node, or none: a node left out would make the
		 * other daemons' models differ from the store */
		one = json_array_size(nodes) < STORE_CHANGE_NODES_MAX
		          ? json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:o, s:o}", "name", n->name,
		                      "status", node_status_name(n->status), "reason", n->reason,
		                      "changed_by", n->changed_by, "changed_at",
		                      (json_int_t)n->changed_at, "expires_at",
		                      (json_int_t)n->expires_at, "address", optional(n->address),
		                      "check", optional(n->check))
		          : NULL;
		if (one == NULL || json_array_append_new(nodes, one) != 0) {
			json_decref(nodes);
			return NULL;
		}
	}
	doc = json_pack("{s:I, s:I, s:s, s:I, s:o}", "from", (json_int_t)from, "version",
	                (json_int_t)version, "cluster", a->name, "cluster_version",
	                (json_int_t)a->version, "nodes", nodes);
	text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (text != NULL && strlen(text) > STORE_CHANGE_PAYLOAD_MAX) {
		free(text);
		return NULL;
	}
	return text;
}

/* Is one node of the payload well formed? */
static int
node_is_valid(const json_t *n)
{
	enum node_status status;

	return json_is_object(n) && json_is_string(json_object_get(n, "name")) &&
	       node_status_from_string(json_string_value(json_object_get(n, "status")), &status) ==
	           0 &&
	       json_is_string(json_object_get(n, "reason")) &&
	       json_is_string(json_object_get(n, "changed_by")) &&
	       json_is_integer(json_object_get(n, "changed_at")) &&
	       json_is_integer(json_object_get(n, "expires_at")) &&
	       (json_is_string(json_object_get(n, "address")) ||
	        json_is_null(json_object_get(n, "address"))) &&
	       (json_is_string(json_object_get(n, "check")) ||
	        json_is_null(json_object_get(n, "check")));
}

struct store_change *
store_change_decode(const char *payload)
{
	json_t *doc = json_loads(payload, 0, NULL), *nodes, *n;
	struct store_change *ch;
	size_t i;

	if (doc == NULL)
		return NULL;
	nodes = json_object_get(doc, "nodes");
	if (!json_is_integer(json_object_get(doc, "from")) ||
	    !json_is_integer(json_object_get(doc, "version")) ||
	    !json_is_string(json_object_get(doc, "cluster")) ||
	    !json_is_integer(json_object_get(doc, "cluster_version")) || !json_is_array(nodes)) {
		json_decref(doc);
		return NULL;
	}
	json_array_foreach(nodes, i, n)
	{
		if (!node_is_valid(n)) {
			json_decref(doc);
			return NULL;
		}
	}
	ch = xcalloc(1, sizeof(*ch));
	ch->from = json_integer_value(json_object_get(doc, "from"));
	ch->version = json_integer_value(json_object_get(doc, "version"));
	ch->doc = doc;
	return ch;
}

void
store_change_free(struct store_change *ch)
{
	if (ch == NULL)
		return;
	json_decref(ch->doc);
	free(ch);
}

int64_t
store_change_from(const struct store_change *ch)
{
	return ch->from;
}

int64_t
store_change_version(const struct store_change *ch)
{
	return ch->version;
}

static void
replace(char **field, const json_t *value)
{
	free(*field);
	*field = json_is_string(value) ? xstrdup(json_string_value(value)) : NULL;
}

int
store_change_apply(const struct store_change *ch, struct model *m)
{
	struct cluster *c =
	    model_find_cluster_mut(m, json_string_value(json_object_get(ch->doc, "cluster")));
	const json_t *n;
	size_t i;

	if (c == NULL)
		return -1;
	c->version = json_integer_value(json_object_get(ch->doc, "cluster_version"));
	json_array_foreach(json_object_get(ch->doc, "nodes"), i, n)
	{
		struct node *node =
		    cluster_find_node_mut(c, json_string_value(json_object_get(n, "name")));
		if (node == NULL)
			return -1;
		node_status_from_string(json_string_value(json_object_get(n, "status")),
		                        &node->status);
		replace(&node->reason, json_object_get(n, "reason"));
		replace(&node->changed_by, json_object_get(n, "changed_by"));
		replace(&node->address, json_object_get(n, "address"));
		replace(&node->check, json_object_get(n, "check"));
		node->changed_at = json_integer_value(json_object_get(n, "changed_at"));
		node->expires_at = json_integer_value(json_object_get(n, "expires_at"));
	}
	return 0;
}
