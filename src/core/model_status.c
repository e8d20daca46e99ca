/*
 * model_status.c - the mutations of node status: applying a change set
 * (checked whole, then applied whole) and returning nodes whose TTL is due
 * to online.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "model_internal.h"

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
	if (!model_name_is_valid(ch->node))
		return model_invalid_node_name(err, ch->node);
	if (previous != NULL && strcmp(previous->node, ch->node) == 0)
		return error_set_entry(err, 400, ch->node,
		                       "node '%s' appears more than once in the change set",
		                       ch->node);
	if (cluster_find_node(c, ch->node, strlen(ch->node)) == NULL)
		return model_node_not_found(err, c, ch->node);
	if (!model_status_is_valid(ch->status) || ch->ttl_ms < 0)
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
	n->changed_by = xstrdup(model_actor_name(who));
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
	int64_t due;

	for (i = 0; i < c->n_nodes; i++) {
		if (i % NODE_CHUNK == 0 &&
		    ((due = model_chunk_next_expiry(c->chunks[i / NODE_CHUNK])) == 0 ||
		     due > now)) {
			i += c->chunks[i / NODE_CHUNK]->n - 1; /* none due in this chunk */
			continue;
		}
		if (cluster_node(c, i)->expires_at == 0 || cluster_node(c, i)->expires_at > now)
			continue;
		n = cluster_node_mut(c, i);
		audit_log_add(audit, now, c->name, n->name, &ttl, "status",
		              node_status_name(n->status), "online", "ttl expired");
		node_own_strings(n);
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
