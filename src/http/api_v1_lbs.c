/*
 * api_v1_lbs.c - the v1 API's named load balancers (docs/API.md): the list,
 * with what each last saw of every node, and its put and delete, one
 * command each.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "api_v1_internal.h"

/* --- named load balancers ------------------------------------------ */

/* What a load balancer last saw of a node: its newest probe (HTTP or
 * agent) of it in view v, or null. */
static json_t *
lb_seen_json(const struct observe_node_view *v, const char *lb, int64_t now)
{
	const struct observe_client_view *newest = NULL;
	size_t i;

	for (i = 0; i < v->n_clients; i++)
		if (strcmp(v->clients[i].lb, lb) == 0 &&
		    (newest == NULL || v->clients[i].last_at > newest->last_at))
			newest = &v->clients[i];
	if (newest == NULL)
		return json_null();
	return json_pack("{s:s, s:s, s:o, s:I, s:s, s:b, s:I}", "protocol",
	                 observe_protocol_name(newest->protocol), "address", newest->address,
	                 "last_at", time_json(newest->last_at), "age_ms",
	                 (json_int_t)(now > newest->last_at ? now - newest->last_at : 0),
	                 "last_answer", observe_answer_text(newest->protocol, newest->last_answer),
	                 "serving", observe_answer_is_serving(newest->last_answer), "since_change",
	                 (json_int_t)newest->since_change);
}

static json_t *
lb_json(const struct lb *l)
{
	return json_pack("{s:s, s:s, s:o, s:o}", "name", l->name, "kind", l->kind, "runtime",
	                 optional_string_json(l->runtime), "backend",
	                 optional_string_json(l->backend));
}

/* Each node's observations are copied out once, for every load balancer. */
static void
lbs_get_again(struct request *r)
{
	api_v1_lbs_get(r, &r->route);
}

void
api_v1_lbs_get(struct request *r, const struct route *rt)
{
	const struct cluster *c = find_cluster_or_reply(r, rt->cluster);
	struct observe_node_view *view;
	int64_t now = time_now_ms();
	json_t *list, **seen;
	size_t i, k;

	if (c == NULL)
		return;
	if (!request_remote_ready(r, c->name, NULL, lbs_get_again))
		return; /* again once the other daemons' reports of it are read */
	list = json_array();
	seen = xcalloc(c->n_lbs + 1, sizeof(*seen));
	for (k = 0; k < c->n_lbs; k++)
		seen[k] = json_object();
	view = xmalloc(sizeof(*view));
	for (i = 0; i < c->n_nodes && c->n_lbs > 0; i++) {
		observe_node_view(request_observe(r), c->name, cluster_node(c, i)->name,
		                  cluster_node(c, i)->changed_at, 0, view);
		for (k = 0; k < c->n_lbs; k++)
			json_object_set_new(seen[k], cluster_node(c, i)->name,
			                    lb_seen_json(view, c->lbs[k].name, now));
	}
	free(view);
	for (k = 0; k < c->n_lbs; k++) {
		json_t *doc = lb_json(&c->lbs[k]);
		json_object_set_new(doc, "seen", seen[k]);
		json_array_append_new(list, doc);
	}
	free(seen);
	reply_json(r, 200,
	           json_pack("{s:s, s:I, s:o}", "cluster", c->name, "version",
	                     (json_int_t)c->version, "lbs", list));
}

static void
lb_put_done(struct request *r, struct engine_job *job)
{
	const struct command *cmd = &job->command;
	const struct cluster *c;
	const struct lb *l;

	if (job->rc != 0) {
		reply_from_error(r, &job->err);
		return;
	}
	if ((c = find_cluster_or_reply(r, cmd->cluster)) == NULL)
		return;
	if ((l = cluster_find_lb(c, cmd->name)) == NULL) {
		reply_error(r, 404, json_pack("{s:s}", "entry", cmd->name),
		            "load balancer '%s' was removed meanwhile", cmd->name);
		return;
	}
	reply_json(r, job->result.is_created ? 201 : 200,
	           json_pack("{s:s, s:I, s:o}", "cluster", c->name, "version",
	                     (json_int_t)c->version, "lb", lb_json(l)));
}

/* {"kind", "runtime"?, "backend"?}: runtime and backend null or "" for
 * none; the command checks the values. */
void
api_v1_lb_put(struct request *r, const struct route *rt)
{
	static const char *const fields[] = {"kind", "runtime", "backend", NULL};
	json_t *body = read_body(r, fields, 0);
	const char *kind, *runtime, *backend;
	struct engine_job *job;
	struct command *cmd;
	struct error err;

	if (body == NULL)
		return;
	if (body_string(body, "kind", 1, &kind, &err) != 0 ||
	    body_node_field(body, "runtime", &runtime, &err) != 0 ||
	    body_node_field(body, "backend", &backend, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	cmd = command_new(r, COMMAND_PUT_LB, &job);
	cmd->cluster = xstrdup(rt->cluster);
	cmd->name = xstrdup(rt->name);
	cmd->lb_kind = xstrdup(kind);
	cmd->runtime = runtime != NULL ? xstrdup(runtime) : NULL;
	cmd->backend = backend != NULL ? xstrdup(backend) : NULL;
	json_decref(body);
	request_job_submit(r, job, lb_put_done);
}

void
api_v1_lb_delete(struct request *r, const struct route *rt)
{
	struct engine_job *job;
	struct command *cmd = command_new(r, COMMAND_REMOVE_LB, &job);

	cmd->cluster = xstrdup(rt->cluster);
	cmd->name = xstrdup(rt->name);
	request_job_submit(r, job, node_remove_done);
}
