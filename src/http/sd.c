/*
 * sd.c - Prometheus' HTTP service discovery: GET /v1/sd/prometheus.
 *
 * The answer is the format http_sd_configs reads: a JSON array of target
 * groups, [{"targets": ["host:port"], "labels": {...}}], "[]" when there
 * is nothing. One group per node that has an address (a node without one
 * has nothing to scrape), so that each carries its own labels:
 *
 *   __meta_clustermgmt_cluster   the cluster's name
 *   __meta_clustermgmt_node      the node's name
 *   __meta_clustermgmt_status    online, offline or drain
 *   __meta_clustermgmt_reason    the status' reason ("" when none)
 *
 * Labels starting with __meta_ are dropped by Prometheus after
 * relabelling, so a scrape configuration keeps what it wants
 * (relabel_configs: action keep on the status, or a target label). The
 * address is the node's as stored, already in host:port form.
 *
 * The answer comes from the snapshot, at once; Prometheus asks again
 * every refresh_interval (60 s by default), which is how a status change
 * reaches it.
 */
#include <string.h>

#include "sd.h"

static json_t *
target_group(const struct cluster *c, const struct node *n)
{
	json_t *labels = json_object();

	json_object_set_new(labels, "__meta_clustermgmt_cluster", json_string(c->name));
	json_object_set_new(labels, "__meta_clustermgmt_node", json_string(n->name));
	json_object_set_new(labels, "__meta_clustermgmt_status",
	                    json_string(node_status_name(n->status)));
	json_object_set_new(labels, "__meta_clustermgmt_reason", json_string(n->reason));
	return json_pack("{s:[s],s:o}", "targets", n->address, "labels", labels);
}

static void
cluster_groups(json_t *groups, const struct cluster *c)
{
	size_t i;

	for (i = 0; i < c->n_nodes; i++)
		if (cluster_node(c, i)->address != NULL && cluster_node(c, i)->address[0] != '\0')
			json_array_append_new(groups, target_group(c, cluster_node(c, i)));
}

void
sd_prometheus_get(struct request *r, const struct route *rt)
{
	const struct model *m = request_snapshot(r);
	char name[NODE_NAME_MAX + 2];
	const struct cluster *c;
	json_t *groups;
	int found;
	size_t i;

	(void)rt;
	found = request_query_param(r, "cluster", name, sizeof(name));
	if (found != 0 && (found < 0 || !node_name_is_valid(name, strlen(name)))) {
		reply_error(r, 400, NULL, "cluster: invalid name (" NODE_NAME_RULE ")");
		return;
	}
	groups = json_array();
	if (found == 1) {
		if ((c = model_find_cluster(m, name)) == NULL) {
			json_decref(groups);
			reply_error(r, 404, NULL, "no such cluster: %s", name);
			return;
		}
		if (auth_role_on(r, c->name) < ROLE_VIEWER) { /* a role on other clusters only */
			json_decref(groups);
			auth_log_refusal(r, ROLE_VIEWER);
			reply_error(r, 403, NULL, "no role on cluster %s", name);
			return;
		}
		cluster_groups(groups, c);
	} else {
		for (i = 0; i < m->n_clusters; i++)
			if (auth_role_on(r, m->clusters[i].name) >=
			    ROLE_VIEWER) /* only what r may see */
				cluster_groups(groups, &m->clusters[i]);
	}
	reply_json(r, 200, groups);
}
