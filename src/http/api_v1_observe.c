/*
 * api_v1_observe.c - the v1 API's reads of what was observed (docs/API.md):
 * a node's probes and check state (observed_node_json, for GET .../nodes/{n}
 * in api_v1.c), and the two long polls, /events (until the cluster's
 * version passes ?after=, request_wait_for_change) and /observations
 * (until the observations' digest moves, request_wait_for_observation).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/timefmt.h"
#include "api_v1_internal.h"
#include "render.h"

#define WAIT_DEFAULT_S 30
#define WAIT_MAX_S 60

/* --- observed nodes --------------------------------------------------- */

/* The clients that probed a node, as docs/API.md describes them; daemon
 * is the daemon that saw each (this one's id for its own). */
static json_t *
probes_json(const struct observe_node_view *v, int64_t now, const char *me)
{
	json_t *list = json_array();
	size_t i;

	for (i = 0; i < v->n_clients; i++) {
		const struct observe_client_view *p = &v->clients[i];
		json_t *one = (json_pack(
		    "{s:s, s:o, s:s, s:o, s:o, s:o, s:I, s:s, s:b, s:I, s:I, s:o}", "protocol",
		    observe_protocol_name(p->protocol), "lb",
		    p->lb[0] != '\0' ? json_string(p->lb) : json_null(), "address", p->address,
		    "user_agent", p->has_user_agent ? json_string(p->user_agent) : json_null(),
		    "first_at", time_json(p->first_at), "last_at", time_json(p->last_at), "age_ms",
		    (json_int_t)(now > p->last_at ? now - p->last_at : 0), "last_answer",
		    observe_answer_text(p->protocol, p->last_answer), "serving",
		    observe_answer_is_serving(p->last_answer), "consecutive",
		    (json_int_t)p->consecutive, "since_change", (json_int_t)p->since_change,
		    "interval_ms",
		    p->interval_ms > 0 ? json_integer((json_int_t)p->interval_ms) : json_null()));
		json_object_set_new(one, "daemon",
		                    json_string(p->daemon[0] != '\0' ? p->daemon : me));
		json_array_append_new(list, one);
	}
	return list;
}

/* How many answers went to clients beyond the per-node cap (in the
 * window when one is given). */
static json_t *
untracked_json(uint64_t n, int64_t at, int64_t now, int64_t window_s)
{
	if (window_s > 0 && at < now - window_s * 1000)
		return json_integer(0);
	return json_integer((json_int_t)n);
}

static json_t *
api_check_state_json(const struct observe_check *s)
{
	return json_pack("{s:b, s:o, s:o, s:I}", "up", s->is_up, "last_at", time_json(s->last_at),
	                 "last_error", optional_string_json(s->last_error), "consecutive",
	                 (json_int_t)s->consecutive);
}

/* Node n's document with what was observed of it (window_s: only probers
 * seen in the last window_s seconds; 0 for all). */
json_t *
observed_node_json(struct request *r, const struct cluster *c, const struct node *n,
                   int64_t window_s)
{
	struct observe_node_view view;
	int64_t now = time_now_ms();
	json_t *node;

	observe_node_view(request_observe(r), c->name, n->name, n->changed_at,
	                  window_s > 0 ? now - window_s * 1000 : 0, &view);
	node = api_node_json(n);
	json_object_set_new(node, "probes", probes_json(&view, now, request_daemon_id(r)));
	json_object_set_new(node, "probes_untracked",
	                    untracked_json(view.n_untracked, view.untracked_at, now, window_s));
	json_object_set_new(
	    node, "probes_untracked_lbs",
	    untracked_json(view.n_untracked_lbs, view.untracked_lbs_at, now, window_s));
	json_object_set_new(node, "check_state",
	                    view.has_check ? api_check_state_json(&view.check) : json_null());
	return node;
}

/* --- long poll ------------------------------------------------------- */

/* The wait's continuation gets only r. When the client gave no "after",
 * the version at arrival is written into r->query, so that the
 * continuation reads the same value it was waiting on. */
static void
query_append_after(struct request *r, int64_t after)
{
	char buf[48];
	int len = snprintf(buf, sizeof(buf), "%safter=%lld", r->query.len > 0 ? "&" : "",
	                   (long long)after);

	r->query = h2o_concat(&r->req->pool, r->query, h2o_iovec_init(buf, (size_t)len));
}

/* ?answer=changed[&since=S]: 1 for the delta form, 0 for the whole node
 * list (absent or "list"), -1 after replying 400. */
static int
events_answer_is_delta(struct request *r, int64_t *since, int *has_since)
{
	int is_list = query_answer_is_list(r);
	struct error err;

	*has_since = 0;
	if (is_list != 0)
		return is_list > 0 ? 0 : -1;
	if ((*has_since = query_count(r, "since", INT64_MAX, since, &err)) < 0) {
		reply_from_error(r, &err);
		return -1;
	}
	return 1;
}

/* The delta form: the nodes whose document changed after the store
 * version since, or, when this daemon cannot tell (no since, a node
 * added or removed after it, a since this daemon has not reached), the
 * whole list with "whole": true. Either way "stamp" is what to send as
 * the next since. */
static void
events_reply_delta(struct request *r, const struct cluster *c, int64_t after, int64_t since,
                   int has_since)
{
	int64_t stamp = request_snapshot(r)->stamp;
	int is_changed = c->version > after;
	json_t *nodes;
	size_t i;
	char suffix[96];

	if (!has_since || since < c->members_stamp || since > stamp) {
		snprintf(suffix, sizeof(suffix), ",\"changed\":%s,\"stamp\":%lld,\"whole\":true}",
		         is_changed ? "true" : "false", (long long)stamp);
		/* in the request's pool: h2o may write it after this returns */
		render_reply_node_list(r, c, api_node_json,
		                       h2o_strdup(&r->req->pool, suffix, SIZE_MAX).base);
		return;
	}
	nodes = json_array();
	for (i = 0; i < c->n_nodes; i++)
		if (cluster_node(c, i)->stamp > since || cluster_node(c, i)->stamp == 0)
			json_array_append_new(nodes, api_node_json(cluster_node(c, i)));
	reply_json(r, 200,
	           json_pack("{s:s, s:I, s:o, s:b, s:I, s:b}", "cluster", c->name, "version",
	                     (json_int_t)c->version, "nodes", nodes, "changed", is_changed, "stamp",
	                     (json_int_t)stamp, "whole", 0));
}

static void
events_ready(struct request *r)
{
	struct error err;
	const struct cluster *c;
	int64_t after = 0, since = 0;
	int is_delta, has_since;

	if (query_count(r, "after", INT64_MAX, &after, &err) < 0) {
		reply_from_error(r, &err);
		return;
	}
	if ((is_delta = events_answer_is_delta(r, &since, &has_since)) < 0)
		return;
	if ((c = find_cluster_or_reply(r, r->route.cluster)) == NULL)
		return;
	if (is_delta) {
		events_reply_delta(r, c, after, since, has_since);
		return;
	}
	/* the node list every reader of this version shares, + "changed" */
	render_reply_node_list(r, c, api_node_json,
	                       c->version > after ? ",\"changed\":true}" : ",\"changed\":false}");
}

void
api_v1_events_get(struct request *r, const struct route *rt)
{
	const struct cluster *c = find_cluster_or_reply(r, rt->cluster);
	struct error err;
	int64_t after = 0, wait_s = WAIT_DEFAULT_S, since;
	int has_after, has_since;

	if (c == NULL)
		return;
	if ((has_after = query_count(r, "after", INT64_MAX, &after, &err)) < 0 ||
	    query_count(r, "wait", WAIT_MAX_S, &wait_s, &err) < 0) {
		reply_from_error(r, &err);
		return;
	}
	if (events_answer_is_delta(r, &since, &has_since) < 0)
		return;
	if (!has_after) {
		after = c->version;
		query_append_after(r, after);
	}
	request_wait_for_change(r, rt->cluster, after, wait_s * 1000, events_ready);
}

/* GET /v1/clusters/{c}/observations?nodes=a,b&window=S[&after=D&wait=S]:
 * the observed probes of several nodes and their digest; with after, a
 * long poll that answers once the digest is not after (a probe of one of
 * them was answered, or the cluster changed). This is what `wait` reads. */
#define OBSERVED_NODES_MAX 64

/* The nodes= list, checked: names of existing nodes, comma separated. */
static int
observed_nodes(struct request *r, const struct cluster *c, char *buf, size_t size,
               struct error *err)
{
	char *p, *comma;
	int found = request_query_param(r, "nodes", buf, size), n = 0;

	if (found <= 0 || buf[0] == '\0')
		return error_set(err, 400, "give nodes=NAME[,NAME...] (at most %d)",
		                 OBSERVED_NODES_MAX);
	for (p = buf; p != NULL; p = comma != NULL ? comma + 1 : NULL) {
		size_t len;
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (!node_name_is_valid(p, len) || ++n > OBSERVED_NODES_MAX)
			return error_set(err, 400, "give nodes=NAME[,NAME...] (at most %d)",
			                 OBSERVED_NODES_MAX);
		if (cluster_find_node(c, p, len) == NULL)
			return error_set_entry(err, 404, "",
			                       "node '%.*s' not found in cluster '%s'", (int)len, p,
			                       c->name);
	}
	return 0;
}

static void
observations_ready(struct request *r)
{
	char nodes[OBSERVED_NODES_MAX * (NODE_NAME_MAX + 2)];
	const struct cluster *c;
	struct error err;
	int64_t window_s = 0, after = -1;
	json_t *list = json_array();
	char *p, *comma;

	if (query_count(r, "window", OBSERVE_FORGET_MS / 1000, &window_s, &err) < 0 ||
	    query_count(r, "after", INT64_MAX, &after, &err) < 0) {
		json_decref(list);
		reply_from_error(r, &err);
		return;
	}
	if ((c = find_cluster_or_reply(r, r->route.cluster)) == NULL) {
		json_decref(list);
		return;
	}
	if (observed_nodes(r, c, nodes, sizeof(nodes), &err) != 0) {
		json_decref(list);
		reply_from_error(r, &err);
		return;
	}
	for (p = nodes; p != NULL; p = comma != NULL ? comma + 1 : NULL) {
		comma = strchr(p, ',');
		json_array_append_new(
		    list,
		    observed_node_json(
		        r, c,
		        cluster_find_node(c, p, comma != NULL ? (size_t)(comma - p) : strlen(p)),
		        window_s));
	}
	{
		uint64_t digest =
		    observation_digest(request_observe(r), request_snapshot(r), c->name, nodes);
		reply_json(r, 200,
		           json_pack("{s:s, s:I, s:b, s:o}", "cluster", c->name, "digest",
		                     (json_int_t)(digest & INT64_MAX), "changed",
		                     after < 0 || (uint64_t)after != (digest & INT64_MAX), "nodes",
		                     list));
	}
}

static void
observations_again(struct request *r)
{
	api_v1_observations_get(r, &r->route);
}

void
api_v1_observations_get(struct request *r, const struct route *rt)
{
	char nodes[OBSERVED_NODES_MAX * (NODE_NAME_MAX + 2)];
	const struct cluster *c = find_cluster_or_reply(r, rt->cluster);
	int64_t after = 0, wait_s = WAIT_DEFAULT_S;
	struct error err;
	int has_after;

	if (c == NULL)
		return;
	if (observed_nodes(r, c, nodes, sizeof(nodes), &err) != 0 ||
	    (has_after = query_count(r, "after", INT64_MAX, &after, &err)) < 0 ||
	    query_count(r, "wait", WAIT_MAX_S, &wait_s, &err) < 0) {
		reply_from_error(r, &err);
		return;
	}
	if (!request_remote_ready_nodes(r, c->name, nodes, observations_again))
		return; /* again once the other daemons' reports of them are read */
	if (!has_after) {
		observations_ready(r);
		return;
	}
	request_wait_for_observation(r, c->name, nodes, (uint64_t)after, wait_s * 1000,
	                             observations_ready);
}
