/*
 * api_v1.h - the v1 JSON API (api_v1*.c, docs/API.md): one handler per
 * endpoint of the router's table (router.c), which has matched the path,
 * checked the names it captured (rt->cluster, rt->name) and authenticated
 * the request with the role the endpoint needs.
 */
#ifndef CM_API_V1_H
#define CM_API_V1_H

#include "http.h"

void api_v1_health_get(struct request *r, const struct route *rt);
void api_v1_daemons_get(struct request *r, const struct route *rt);
void api_v1_clusters_get(struct request *r, const struct route *rt);
void api_v1_clusters_post(struct request *r, const struct route *rt);
void api_v1_cluster_get(struct request *r, const struct route *rt);
void api_v1_cluster_delete(struct request *r, const struct route *rt);
void api_v1_nodes_get(struct request *r, const struct route *rt);
void api_v1_nodes_put(struct request *r, const struct route *rt);
void api_v1_node_get(struct request *r, const struct route *rt);
void api_v1_node_put(struct request *r, const struct route *rt);
void api_v1_node_delete(struct request *r, const struct route *rt);
void api_v1_status_post(struct request *r, const struct route *rt);
/* A long poll: answers when the cluster's version passes ?after=. */
void api_v1_events_get(struct request *r, const struct route *rt);
void api_v1_observations_get(struct request *r, const struct route *rt);
void api_v1_lbs_get(struct request *r, const struct route *rt);
void api_v1_lb_put(struct request *r, const struct route *rt);
void api_v1_lb_delete(struct request *r, const struct route *rt);
void api_v1_audit_get(struct request *r, const struct route *rt);
void api_v1_users_get(struct request *r, const struct route *rt);
void api_v1_users_post(struct request *r, const struct route *rt);
void api_v1_user_delete(struct request *r, const struct route *rt);
void api_v1_tokens_get(struct request *r, const struct route *rt);
void api_v1_tokens_post(struct request *r, const struct route *rt);
void api_v1_token_delete(struct request *r, const struct route *rt);

#endif
