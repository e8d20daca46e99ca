/*
 * api_v1.c - the v1 JSON API (docs/API.md): what its files share, and the
 * health, daemons, clusters, nodes and status endpoints.
 *
 * The other files of the API: api_v1_observe.c (a node's observed probes,
 * the /events and /observations long polls), api_v1_lbs.c (named load
 * balancers), api_v1_admin.c (users, tokens, the audit log); what they
 * share with this file is in api_v1_internal.h.
 *
 * Map of this file:
 *
 *   routing     none here: the endpoints are lines of the router's table
 *               (router.c), which answers 404, 405 and 400 (a name in the
 *               path that cannot be a name), authenticates with the role
 *               of the endpoint and calls its api_v1_* handler with the
 *               names the path holds (rt->cluster, rt->name, also kept in
 *               r->route for continuations).
 *   documents   api_node_json (render.c makes node lists of it) and the
 *               other shapes, built from a snapshot.
 *   bodies      request bodies: unknown fields, types, required fields.
 *   reads       GET handlers answer from request_snapshot() at once.
 *   writes      one command per mutation (core/command.h): the worker
 *               turns the body into a struct command owned by the job, so
 *               nothing leaks when the client goes away; the engine
 *               applies it; the continuation answers from job->result and
 *               request_snapshot(), which already holds the change.
 *
 * r->path is h2o's normalised path, already percent-decoded, so a name in
 * the path is only validated (by the router), never decoded a second time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "api_v1_internal.h"
#include "render.h"

/* --- documents ------------------------------------------------------- */

/* RFC 3339 UTC, or null for 0 ("never"). */
json_t *
time_json(int64_t ms)
{
	char buf[40];

	if (ms == 0)
		return json_null();
	return json_string(time_format_rfc3339(ms, buf, sizeof(buf)));
}

/* A string, or null when s is absent (NULL or ""). */
json_t *
optional_string_json(const char *s)
{
	return s == NULL || s[0] == '\0' ? json_null() : json_string(s);
}

json_t *
api_node_json(const struct node *n)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "name", n->name, "status",
	                 node_status_name(n->status), "reason", n->reason, "changed_by",
	                 n->changed_by, "changed_at", time_json(n->changed_at), "expires_at",
	                 time_json(n->expires_at), "address", optional_string_json(n->address),
	                 "check", optional_string_json(n->check));
}

/* {"cluster", "version", "node"}: what the single-node endpoints answer. */
static json_t *
node_document_json(const struct cluster *c, json_t *node)
{
	return json_pack("{s:s, s:I, s:o}", "cluster", c->name, "version", (json_int_t)c->version,
	                 "node", node);
}

static json_t *
cluster_summary_json(const struct cluster *c)
{
	return json_pack("{s:s, s:s, s:I, s:I, s:I}", "name", c->name, "path", c->path, "version",
	                 (json_int_t)c->version, "nodes", (json_int_t)c->n_nodes, "online",
	                 (json_int_t)cluster_count_online(c));
}

/* The cluster of the snapshot, or NULL after replying 404. */
const struct cluster *
find_cluster_or_reply(struct request *r, const char *name)
{
	const struct cluster *c = model_find_cluster(request_snapshot(r), name);

	if (c == NULL)
		reply_error(r, 404, json_pack("{s:s}", "entry", name), "cluster '%s' not found",
		            name);
	return c;
}

/* The node list of cluster name from the current snapshot. */
static void
reply_node_list(struct request *r, const char *cluster)
{
	const struct cluster *c = find_cluster_or_reply(r, cluster);

	if (c != NULL)
		render_reply_node_list(r, c, api_node_json, NULL);
}

/* What the probe worker and the general workers answered since start
 * (docs/API.md, /v1/health): the probe worker's "others" and "renders"
 * stay 0 when probes are isolated. */
static json_t *
workers_json(struct request *r)
{
	struct request_worker_counts p, g;

	request_worker_counts(r, &p, &g);
	return json_pack("{s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I}}", "probe", "probes",
	                 (json_int_t)p.probes, "others", (json_int_t)p.others, "handed_off",
	                 (json_int_t)p.handed_off, "renders", (json_int_t)p.renders, "general",
	                 "probes", (json_int_t)g.probes, "others", (json_int_t)g.others, "renders",
	                 (json_int_t)g.renders);
}

/* --- bodies and query parameters ------------------------------------- */

/* The request body (at most max bytes) as a JSON object holding only
 * allowed fields (NULL-terminated), or NULL after replying 4xx. An empty
 * body is {} when is_optional. */
static json_t *
read_body_max(struct request *r, const char *const allowed[], int is_optional, size_t max)
{
	struct error err;
	const char *key;
	json_t *body, *value;
	size_t i;

	if (is_optional && r->req->entity.len == 0)
		return json_object();
	if ((body = request_json_body_max(r, max, &err)) == NULL)
		goto bad;
	json_object_foreach(body, key, value)
	{
		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], key) != 0; i++)
			;
		if (allowed[i] == NULL) {
			error_set(&err, 400, "unknown field \"%s\"", key);
			json_decref(body);
			goto bad;
		}
	}
	return body;
bad:
	reply_from_error(r, &err);
	return NULL;
}

json_t *
read_body(struct request *r, const char *const allowed[], int is_optional)
{
	return read_body_max(r, allowed, is_optional, BODY_MAX);
}

/* Field key as a C string in *out; NULL when absent and optional. */
int
body_string(const json_t *body, const char *key, int is_required, const char **out,
            struct error *err)
{
	json_t *v = json_object_get(body, key);

	*out = NULL;
	if (v == NULL && is_required)
		return error_set(err, 400, "field \"%s\" is required", key);
	if (v == NULL)
		return 0;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return error_set(err, 400, "field \"%s\" must be a string", key);
	*out = json_string_value(v);
	return 0;
}

/* Optional non-negative integer field key; *out = -1 when absent. */
static int
body_count(const json_t *body, const char *key, int64_t *out, struct error *err)
{
	json_t *v = json_object_get(body, key);

	*out = -1;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return error_set(err, 400, "field \"%s\" must be a non-negative integer", key);
	*out = json_integer_value(v);
	return 0;
}

/* Decimal integer 0..max, nothing else. */
static int
parse_count(const char *s, int64_t max, int64_t *out)
{
	int64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		int digit = *s - '0';
		if (digit < 0 || digit > 9 || v > (max - digit) / 10)
			return -1;
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
}

/* Query parameter name as an integer 0..max: 1 present, 0 absent, -1
 * invalid (err filled). */
int
query_count(struct request *r, const char *name, int64_t max, int64_t *out, struct error *err)
{
	char buf[32];
	int found = request_query_param(r, name, buf, sizeof(buf));

	if (found == 0)
		return 0;
	if (found < 0 || parse_count(buf, max, out) != 0) {
		if (max == INT64_MAX)
			return error_set(err, 400, "%s must be a non-negative integer", name);
		return error_set(err, 400, "%s must be an integer from 0 to %lld", name,
		                 (long long)max);
	}
	return 1;
}

/* --- reads ----------------------------------------------------------- */

/* The daemon answers (200) whatever the store's state, from memory (it
 * never waits on the store); "store" says whether the store is reachable
 * ("ok"), answers but slower than store_slow_ms ("slow"), or does not
 * answer ("unreachable"), and which store version this daemon has
 * applied, so that an operator can compare daemons. */
void
api_v1_health_get(struct request *r, const struct route *rt)
{
	struct engine_store_state st;
	char since[40];
	json_t *store;

	(void)rt;
	request_store_state(r, &st);
	store =
	    json_pack("{s:s, s:b, s:b, s:I, s:I}", "state",
	              !st.is_up    ? "unreachable"
	              : st.is_slow ? "slow"
	                           : "ok",
	              "shared", st.is_shared, "has_state", st.has_state, "reloads",
	              (json_int_t)st.reloads, "changes_applied", (json_int_t)st.changes_applied);
	if (st.is_shared && st.is_up)
		json_object_set_new(store, "round_trip_ms", json_integer(st.round_trip_ms));
	if (!st.is_up)
		json_object_set_new(
		    store, "since",
		    json_string(time_format_rfc3339(st.down_since, since, sizeof(since))));
	if (st.has_state)
		json_object_set_new(store, "version", json_integer(st.version));
	reply_json(r, 200,
	           json_pack("{s:s, s:s, s:o, s:o}", "status", "ok", "version", CM_VERSION, "store",
	                     store, "workers", workers_json(r)));
}

/* Every daemon of the store, as they registered themselves: how far
 * behind the store each is (versions, and seconds since the store's
 * newest change when it is behind), and which are stale (no heartbeat
 * for the --stale-after time). */
void
api_v1_daemons_get(struct request *r, const struct route *rt)
{
	struct share_fleet f;
	int64_t now = time_now_ms(), stale_ms = request_stale_after_ms(r);
	json_t *list = json_array();
	size_t i;

	(void)rt;
	request_fleet(r, &f);
	for (i = 0; i < f.n; i++) {
		const struct daemon_record *d = &f.daemons[i];
		int64_t lag = f.store_version > d->version ? f.store_version - d->version : 0;
		double lag_s = lag > 0 && f.changed_at > 0 && now > f.changed_at
		                   ? (double)(now - f.changed_at) / 1000.0
		                   : 0.0;
		json_array_append_new(
		    list,
		    json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:o, s:o, s:b, s:b}", "id", d->id,
		              "host", d->host, "listen", d->listen, "version",
		              (json_int_t)d->version, "lag_versions", (json_int_t)lag,
		              "lag_seconds", lag_s, "heartbeat_at", time_json(d->heartbeat_at),
		              "started_at", time_json(d->started_at), "stale",
		              now - d->heartbeat_at > stale_ms, "self",
		              strcmp(d->id, request_daemon_id(r)) == 0));
	}
	free(f.daemons);
	reply_json(r, 200,
	           json_pack("{s:o, s:I, s:I}", "daemons", list, "store_version",
	                     (json_int_t)f.store_version, "stale_after_s",
	                     (json_int_t)(stale_ms / 1000)));
}

void
api_v1_clusters_get(struct request *r, const struct route *rt)
{
	const struct model *m = request_snapshot(r);
	json_t *list = json_array();
	size_t i;

	(void)rt;
	for (i = 0; i < m->n_clusters; i++)
		if (auth_role_on(r, m->clusters[i].name) >= ROLE_VIEWER) /* only what r may see */
			json_array_append_new(list, cluster_summary_json(&m->clusters[i]));
	reply_json(r, 200, json_pack("{s:o}", "clusters", list));
}

void
api_v1_cluster_get(struct request *r, const struct route *rt)
{
	const struct cluster *c = find_cluster_or_reply(r, rt->cluster);

	if (c != NULL)
		reply_json(r, 200, cluster_summary_json(c));
}

void
api_v1_nodes_get(struct request *r, const struct route *rt)
{
	reply_node_list(r, rt->cluster);
}

static void
node_get_again(struct request *r)
{
	api_v1_node_get(r, &r->route);
}

void
api_v1_node_get(struct request *r, const struct route *rt)
{
	const struct cluster *c = find_cluster_or_reply(r, rt->cluster);
	struct error err;
	int64_t window_s = 0;
	const struct node *n;

	if (c == NULL)
		return;
	n = cluster_find_node(c, rt->name, strlen(rt->name));
	if (n == NULL) {
		reply_error(r, 404, json_pack("{s:s}", "entry", rt->name),
		            "node '%s' not found in cluster '%s'", rt->name, c->name);
		return;
	}
	if (query_count(r, "window", OBSERVE_FORGET_MS / 1000, &window_s, &err) < 0) {
		reply_from_error(r, &err);
		return;
	}
	if (!request_remote_ready(r, c->name, n->name, node_get_again))
		return; /* again once the other daemons' reports of it are read */
	reply_json(r, 200, node_document_json(c, observed_node_json(r, c, n, window_s)));
}

/* --- writes ---------------------------------------------------------- */

/* Each write is one command (core/command.h), built here from the body
 * and applied by the engine; the continuation answers from job->result
 * and request_snapshot(), which already holds the committed change. */
struct command *
command_new(struct request *r, enum command_kind kind, struct engine_job **job)
{
	struct command *cmd;

	*job = request_job_new(r, NULL, 0);
	cmd = engine_job_command(*job, kind);
	cmd->idempotency_key = request_idempotency_key(r);
	return cmd;
}

/* A job built but not submitted (its input turned out bad). */
static void
command_drop(struct engine_job *job)
{
	engine_job_release(job);
	free(job);
}

/* Answers a write whose reply is the cluster's node list. */
static void
node_list_changed(struct request *r, struct engine_job *job)
{
	if (job->rc != 0)
		reply_from_error(r, &job->err);
	else
		reply_node_list(r, job->command.cluster);
}

/* --- writes: clusters ------------------------------------------------ */

static void
cluster_added(struct request *r, struct engine_job *job)
{
	const struct command *c = &job->command;

	if (job->rc != 0)
		reply_from_error(r, &job->err);
	else
		reply_json(r, 201,
		           json_pack("{s:s, s:s, s:I}", "name", c->cluster, "path", c->path,
		                     "version", (json_int_t)job->result.version));
}

/* The name and path are checked by the command, hence any length here. */
void
api_v1_clusters_post(struct request *r, const struct route *rt)
{
	static const char *const fields[] = {"name", "path", NULL};
	json_t *body = read_body(r, fields, 0);
	const char *name, *path;
	struct engine_job *job;
	struct command *cmd;
	struct error err;

	(void)rt;
	if (body == NULL)
		return;
	if (body_string(body, "name", 1, &name, &err) != 0 ||
	    body_string(body, "path", 1, &path, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	cmd = command_new(r, COMMAND_ADD_CLUSTER, &job);
	cmd->cluster = xstrdup(name);
	cmd->path = xstrdup(path);
	json_decref(body);
	request_job_submit(r, job, cluster_added);
}

static void
cluster_removed(struct request *r, struct engine_job *job)
{
	if (job->rc != 0)
		reply_from_error(r, &job->err);
	else
		reply_json(r, 200, json_pack("{s:s}", "deleted", job->command.cluster));
}

void
api_v1_cluster_delete(struct request *r, const struct route *rt)
{
	struct engine_job *job;

	command_new(r, COMMAND_REMOVE_CLUSTER, &job)->cluster = xstrdup(rt->cluster);
	request_job_submit(r, job, cluster_removed);
}

/* --- writes: nodes --------------------------------------------------- */

/* The names of {"nodes": [...]}, checked, into cmd. */
static int
node_list_fill(struct command *cmd, const json_t *list, struct error *err)
{
	const json_t *v;
	size_t i;

	if (!json_is_array(list))
		return error_set(err, 400, "field \"nodes\" must be an array of node names");
	json_array_foreach(list, i, v)
	{
		if (!json_is_string(v))
			return error_set(err, 400,
			                 "field \"nodes\" must be an array of node names");
		if (!node_name_is_valid(json_string_value(v), json_string_length(v)))
			return error_set_entry(err, 400, json_string_value(v),
			                       "node '%.100s': invalid name (" NODE_NAME_RULE ")",
			                       json_string_value(v));
		command_add_name(cmd, json_string_value(v));
	}
	return 0;
}

void
api_v1_nodes_put(struct request *r, const struct route *rt)
{
	static const char *const fields[] = {"nodes", NULL};
	json_t *body = read_body_max(r, fields, 0, NODE_LIST_BODY_MAX), *list;
	struct engine_job *job;
	struct command *cmd;
	struct error err;

	if (body == NULL)
		return;
	cmd = command_new(r, COMMAND_SET_NODE_LIST, &job);
	cmd->cluster = xstrdup(rt->cluster);
	list = json_object_get(body, "nodes");
	if (list == NULL) {
		error_set(&err, 400, "field \"nodes\" is required");
		goto bad;
	}
	if (node_list_fill(cmd, list, &err) != 0)
		goto bad;
	json_decref(body);
	request_job_submit(r, job, node_list_changed);
	return;
bad:
	json_decref(body);
	command_drop(job);
	reply_from_error(r, &err);
}

static void
node_put_done(struct request *r, struct engine_job *job)
{
	const char *name = job->command.name;
	const struct cluster *c;
	const struct node *n;

	if (job->rc != 0) {
		reply_from_error(r, &job->err);
		return;
	}
	if ((c = find_cluster_or_reply(r, job->command.cluster)) == NULL)
		return;
	if ((n = cluster_find_node(c, name, strlen(name))) == NULL) {
		reply_error(r, 404, json_pack("{s:s}", "entry", name),
		            "node '%s' was removed meanwhile", name);
		return;
	}
	reply_json(r, job->result.is_created ? 201 : 200, node_document_json(c, api_node_json(n)));
}

/* An optional string field that clears (address, check, runtime,
 * backend): null reads as "". */
int
body_node_field(const json_t *body, const char *key, const char **out, struct error *err)
{
	if (json_is_null(json_object_get(body, key))) {
		*out = "";
		return 0;
	}
	return body_string(body, key, 0, out, err);
}

void
api_v1_node_put(struct request *r, const struct route *rt)
{
	static const char *const fields[] = {"address", "check", NULL};
	json_t *body = read_body(r, fields, 1);
	const char *address, *check;
	struct engine_job *job;
	struct command *cmd;
	struct error err;

	if (body == NULL)
		return;
	if (body_node_field(body, "address", &address, &err) != 0 ||
	    body_node_field(body, "check", &check, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	cmd = command_new(r, COMMAND_PUT_NODE, &job);
	cmd->cluster = xstrdup(rt->cluster);
	cmd->name = xstrdup(rt->name);
	cmd->address = address != NULL ? xstrdup(address) : NULL;
	cmd->check = check != NULL ? xstrdup(check) : NULL;
	json_decref(body);
	request_job_submit(r, job, node_put_done);
}

void
node_remove_done(struct request *r, struct engine_job *job)
{
	if (job->rc != 0)
		reply_from_error(r, &job->err);
	else
		reply_json(r, 200,
		           json_pack("{s:s, s:I, s:s}", "cluster", job->command.cluster, "version",
		                     (json_int_t)job->result.version, "deleted",
		                     job->command.name));
}

void
api_v1_node_delete(struct request *r, const struct route *rt)
{
	struct engine_job *job;
	struct command *cmd = command_new(r, COMMAND_REMOVE_NODE, &job);

	cmd->cluster = xstrdup(rt->cluster);
	cmd->name = xstrdup(rt->name);
	request_job_submit(r, job, node_remove_done);
}

/* --- writes: status -------------------------------------------------- */

/* ?answer=changed: the node list holding only the nodes the change set
 * named, so that a write's answer does not grow with the cluster. */
static void
changed_nodes_done(struct request *r, struct engine_job *job)
{
	const struct change_set *cs = &job->command.changes;
	const struct cluster *c;
	const struct node *n;
	json_t *nodes;
	size_t i;

	if (job->rc != 0) {
		reply_from_error(r, &job->err);
		return;
	}
	if ((c = find_cluster_or_reply(r, job->command.cluster)) == NULL)
		return;
	nodes = json_array();
	for (i = 0; i < cs->n; i++) {
		n = cluster_find_node(c, cs->changes[i].node, strlen(cs->changes[i].node));
		if (n != NULL) /* NULL: removed by a later write */
			json_array_append_new(nodes, api_node_json(n));
	}
	reply_json(r, 200,
	           json_pack("{s:s, s:I, s:o}", "cluster", c->name, "version",
	                     (json_int_t)c->version, "nodes", nodes));
}

int
query_answer_is_list(struct request *r)
{
	char buf[16];
	int found = request_query_param(r, "answer", buf, sizeof(buf));

	if (found == 0 || (found > 0 && strcmp(buf, "list") == 0))
		return 1;
	if (found > 0 && strcmp(buf, "changed") == 0)
		return 0;
	reply_error(r, 400, NULL, "answer must be \"list\" or \"changed\"");
	return -1;
}

void
api_v1_status_post(struct request *r, const struct route *rt)
{
	static const char *const fields[] = {"changes", "if_version", "min_online", NULL};
	int is_list = query_answer_is_list(r);
	json_t *body, *changes;
	struct engine_job *job;
	struct command *cmd;
	struct error err;

	if (is_list < 0)
		return;
	if ((body = read_body(r, fields, 0)) == NULL)
		return;
	cmd = command_new(r, COMMAND_SET_STATUS, &job);
	cmd->cluster = xstrdup(rt->cluster);
	changes = json_object_get(body, "changes");
	if (changes == NULL)
		error_set(&err, 400, "field \"changes\" is required");
	else if (!json_is_object(changes))
		error_set(&err, 400, "field \"changes\" must be an object of node names");
	if (changes == NULL || !json_is_object(changes) ||
	    change_set_from_json(changes, &cmd->changes, &err) != 0 ||
	    body_count(body, "if_version", &cmd->if_version, &err) != 0 ||
	    body_count(body, "min_online", &cmd->min_online, &err) != 0) {
		json_decref(body);
		command_drop(job);
		reply_from_error(r, &err);
		return;
	}
	json_decref(body);
	request_job_submit(r, job, is_list ? node_list_changed : changed_nodes_done);
}
