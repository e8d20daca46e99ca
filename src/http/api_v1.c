/*
 * api_v1.c - the v1 JSON API: everything under /v1 (docs/API.md).
 *
 * Map of this file:
 *
 *   routing     none here: the endpoints are lines of the router's table
 *               (router.c), which answers 404, 405 and 400 (a name in the
 *               path that cannot be a name), authenticates with the role
 *               of the endpoint and calls its api_v1_* handler with the
 *               names the path holds (rt->cluster, rt->name, also kept in
 *               r->route for continuations).
 *   documents   api_node_json, api_node_list_json and the other shapes,
 *               built from a snapshot.
 *   bodies      request bodies: unknown fields, types, required fields.
 *   reads       GET handlers answer from request_snapshot() at once; the
 *               audit log is read by the engine (engine_job_read_audit).
 *   writes      one command per mutation (core/command.h): the worker
 *               turns the body into a struct command owned by the job, so
 *               nothing leaks when the client goes away; the engine
 *               applies it; the continuation answers from job->result and
 *               request_snapshot(), which already holds the change.
 *   long poll   /events waits with request_wait_for_change.
 *
 * r->path is h2o's normalised path, already percent-decoded, so a name in
 * the path is only validated (by the router), never decoded a second time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../observe/observe.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "api_v1.h"
#include "render.h"

#define AUDIT_LIMIT_DEFAULT 50
#define AUDIT_LIMIT_MAX 1000
#define WAIT_DEFAULT_S 30
#define WAIT_MAX_S 60
#define TOKEN_ID_SIZE 64
#define TOKEN_SIZE 256
#define TOKEN_HASH_SIZE 65 /* hex of 32 bytes */

/* --- documents ------------------------------------------------------- */

/* RFC 3339 UTC, or null for 0 ("never"). */
static json_t *
time_json(int64_t ms)
{
	char buf[40];

	if (ms == 0)
		return json_null();
	return json_string(time_format_rfc3339(ms, buf, sizeof(buf)));
}

/* A string, or null when s is absent (NULL or ""). */
static json_t *
optional_string_json(const char *s)
{
	return s == NULL || s[0] == '\0' ? json_null() : json_string(s);
}

static json_t *
api_node_json(const struct node *n)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "name", n->name, "status",
	                 node_status_name(n->status), "reason", n->reason, "changed_by",
	                 n->changed_by, "changed_at", time_json(n->changed_at), "expires_at",
	                 time_json(n->expires_at), "address", optional_string_json(n->address),
	                 "check", optional_string_json(n->check));
}

static json_t *
api_node_list_json(const struct cluster *c)
{
	json_t *nodes = json_array();
	size_t i;

	for (i = 0; i < c->n_nodes; i++)
		json_array_append_new(nodes, api_node_json(&c->nodes[i]));
	return json_pack("{s:s, s:I, s:o}", "cluster", c->name, "version", (json_int_t)c->version,
	                 "nodes", nodes);
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

static json_t *
user_json(const char *name, enum role role, int64_t created_at)
{
	return json_pack("{s:s, s:s, s:o}", "name", name, "role", role_name(role), "created_at",
	                 time_json(created_at));
}

static json_t *
token_json(const struct token *t)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", t->id, "role", role_name(t->role),
	                 "description", t->description, "created_by", t->created_by, "created_at",
	                 time_json(t->created_at));
}

static json_t *
audit_entry_json(const struct audit_entry *e)
{
	return json_pack("{s:I, s:o, s:o, s:o, s:s, s:o, s:s, s:o, s:o, s:s}", "id",
	                 (json_int_t)e->id, "at", time_json(e->at), "cluster",
	                 optional_string_json(e->cluster), "node", optional_string_json(e->node),
	                 "actor", e->actor, "address", optional_string_json(e->address), "action",
	                 e->action, "old_status", optional_string_json(e->old_status), "new_status",
	                 optional_string_json(e->new_status), "reason", e->reason);
}

/* The cluster of the snapshot, or NULL after replying 404. */
static const struct cluster *
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
		render_reply_shared(r, c, api_node_list_json, NULL);
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

static json_t *
read_body(struct request *r, const char *const allowed[], int is_optional)
{
	return read_body_max(r, allowed, is_optional, BODY_MAX);
}

/* Field key as a C string in *out; NULL when absent and optional. */
static int
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

static int
body_role(const json_t *body, enum role *out, struct error *err)
{
	const char *s;

	if (body_string(body, "role", 1, &s, err) != 0)
		return -1;
	if (role_from_string(s, out) != 0)
		return error_set(err, 400, "role must be viewer, operator or admin");
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
static int
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
	store = json_pack("{s:s, s:b, s:b, s:I}", "state",
	                  !st.is_up    ? "unreachable"
	                  : st.is_slow ? "slow"
	                               : "ok",
	                  "shared", st.is_shared, "has_state", st.has_state, "reloads",
	                  (json_int_t)st.reloads);
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
static json_t *
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
	reply_json(r, 200, node_document_json(c, observed_node_json(r, c, n, window_s)));
}

void
api_v1_users_get(struct request *r, const struct route *rt)
{
	const struct model *m = request_snapshot(r);
	json_t *list = json_array();
	size_t i;

	(void)rt;
	for (i = 0; i < m->n_users; i++) {
		const struct user *u = &m->users[i];
		json_array_append_new(list, user_json(u->name, u->role, u->created_at));
	}
	reply_json(r, 200, json_pack("{s:o}", "users", list));
}

void
api_v1_tokens_get(struct request *r, const struct route *rt)
{
	const struct model *m = request_snapshot(r);
	json_t *list = json_array();
	size_t i;

	(void)rt;
	for (i = 0; i < m->n_tokens; i++)
		json_array_append_new(list, token_json(&m->tokens[i]));
	reply_json(r, 200, json_pack("{s:o}", "tokens", list));
}

/* The audit log lives in the store only: the engine reads it into the
 * job (engine_job_read_audit), which releases it also when the client
 * went away. */
static void
audit_done(struct request *r, struct engine_job *job)
{
	json_t *entries;
	size_t i;

	if (job->rc != 0) {
		reply_from_error(r, &job->err);
		return;
	}
	entries = json_array();
	for (i = 0; i < job->audit.n; i++)
		json_array_append_new(entries, audit_entry_json(&job->audit.entries[i]));
	reply_json(r, 200, json_pack("{s:o}", "entries", entries));
}

void
api_v1_audit_get(struct request *r, const struct route *rt)
{
	struct engine_job *job;
	struct error err;
	int64_t limit = AUDIT_LIMIT_DEFAULT;
	int has_limit = query_count(r, "limit", INT64_MAX, &limit, &err);

	if (has_limit < 0 || (has_limit > 0 && limit == 0)) {
		reply_error(r, 400, NULL, "limit must be a positive integer");
		return;
	}
	if (find_cluster_or_reply(r, rt->cluster) == NULL)
		return;
	job = request_job_new(r, NULL, 0);
	engine_job_read_audit(job, rt->cluster, limit > AUDIT_LIMIT_MAX ? AUDIT_LIMIT_MAX : limit);
	request_job_submit(r, job, audit_done);
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

static void
events_ready(struct request *r)
{
	struct error err;
	const struct cluster *c;
	int64_t after = 0;

	if (query_count(r, "after", INT64_MAX, &after, &err) < 0) {
		reply_from_error(r, &err);
		return;
	}
	if ((c = find_cluster_or_reply(r, r->route.cluster)) == NULL)
		return;
	/* the node list every reader of this version shares, + "changed" */
	render_reply_shared(r, c, api_node_list_json,
	                    c->version > after ? ",\"changed\":true}" : ",\"changed\":false}");
}

void
api_v1_events_get(struct request *r, const struct route *rt)
{
	const struct cluster *c = find_cluster_or_reply(r, rt->cluster);
	struct error err;
	int64_t after = 0, wait_s = WAIT_DEFAULT_S;
	int has_after;

	if (c == NULL)
		return;
	if ((has_after = query_count(r, "after", INT64_MAX, &after, &err)) < 0 ||
	    query_count(r, "wait", WAIT_MAX_S, &wait_s, &err) < 0) {
		reply_from_error(r, &err);
		return;
	}
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
	if (!has_after) {
		observations_ready(r);
		return;
	}
	request_wait_for_observation(r, c->name, nodes, (uint64_t)after, wait_s * 1000,
	                             observations_ready);
}

/* --- writes ---------------------------------------------------------- */

/* Each write is one command (core/command.h), built here from the body
 * and applied by the engine; the continuation answers from job->result
 * and request_snapshot(), which already holds the committed change. */
static struct command *
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

/* Optional "address"/"check": a string; "" or null clears the field. */
static int
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

static void
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
	list = json_array();
	seen = xcalloc(c->n_lbs + 1, sizeof(*seen));
	for (k = 0; k < c->n_lbs; k++)
		seen[k] = json_object();
	view = xmalloc(sizeof(*view));
	for (i = 0; i < c->n_nodes && c->n_lbs > 0; i++) {
		observe_node_view(request_observe(r), c->name, c->nodes[i].name,
		                  c->nodes[i].changed_at, 0, view);
		for (k = 0; k < c->n_lbs; k++)
			json_object_set_new(seen[k], c->nodes[i].name,
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

/* The answer a status write asked for: 1 the whole node list (absent or
 * "list"), 0 only the changed nodes ("changed"), -1 after replying 400. */
static int
status_answer_is_list(struct request *r)
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
	int is_list = status_answer_is_list(r);
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

/* --- writes: users --------------------------------------------------- */

static void
user_added(struct request *r, struct engine_job *job)
{
	const struct command *c = &job->command;

	if (job->rc != 0)
		reply_from_error(r, &job->err);
	else
		reply_json(r, 201, user_json(c->name, c->role, job->result.created_at));
}

static int
user_check_body(const json_t *body, const char **name, const char **password, enum role *role,
                struct error *err)
{
	if (body_string(body, "name", 1, name, err) != 0 ||
	    body_string(body, "password", 1, password, err) != 0 || body_role(body, role, err) != 0)
		return -1;
	if (!node_name_is_valid(*name, strlen(*name)))
		return error_set_entry(err, 400, *name,
		                       "user '%.100s': invalid name (" NODE_NAME_RULE ")", *name);
	return 0; /* the password's length: command_prepare */
}

/* The password is hashed by the command, on the engine's side thread. */
void
api_v1_users_post(struct request *r, const struct route *rt)
{
	static const char *const fields[] = {"name", "password", "role", NULL};
	json_t *body = read_body(r, fields, 0);
	const char *name, *password;
	struct engine_job *job;
	struct command *cmd;
	struct error err;
	enum role role;

	(void)rt;
	if (body == NULL)
		return;
	if (user_check_body(body, &name, &password, &role, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	if (model_find_user(request_snapshot(r), name) != NULL) {
		/* Spares the slow hash; the command checks again. */
		reply_error(r, 409, json_pack("{s:s}", "entry", name), "user '%s' already exists",
		            name);
		json_decref(body);
		return;
	}
	cmd = command_new(r, COMMAND_PUT_USER, &job);
	cmd->name = xstrdup(name);
	cmd->role = role;
	cmd->is_new_only = 1;
	cmd->password = xstrdup(password);
	json_decref(body);
	request_job_submit(r, job, user_added);
}

/* A user removed or a token revoked: {"deleted": NAME}. */
static void
name_deleted(struct request *r, struct engine_job *job)
{
	if (job->rc != 0)
		reply_from_error(r, &job->err);
	else
		reply_json(r, 200, json_pack("{s:s}", "deleted", job->command.name));
}

/* Removing oneself is allowed; the model refuses to remove the last
 * admin, since nobody could manage users any more. */
void
api_v1_user_delete(struct request *r, const struct route *rt)
{
	struct engine_job *job;

	command_new(r, COMMAND_REMOVE_USER, &job)->name = xstrdup(rt->name);
	request_job_submit(r, job, name_deleted);
}

/* --- writes: tokens -------------------------------------------------- */

/* The secret, made here and shown once: the command carries only its
 * hash. Wiped when the job is released. */
struct token_secret {
	char token[TOKEN_SIZE];
};

static void
token_secret_wipe(void *data)
{
	explicit_bzero(data, sizeof(struct token_secret));
}

static void
token_created(struct request *r, struct engine_job *job)
{
	const struct command *c = &job->command;
	struct token_secret *s = job->data;

	if (job->rc != 0) {
		reply_from_error(r, &job->err);
		return;
	}
	reply_json(r, 201,
	           json_pack("{s:s, s:s, s:s, s:s}", "id", c->name, "token", s->token, "role",
	                     role_name(c->role), "description", c->description));
}

void
api_v1_tokens_post(struct request *r, const struct route *rt)
{
	static const char *const fields[] = {"role", "description", NULL};
	json_t *body = read_body(r, fields, 0);
	char id[TOKEN_ID_SIZE], hash[TOKEN_HASH_SIZE];
	const char *description;
	struct token_secret *s;
	struct engine_job *job;
	struct command *cmd;
	struct error err;
	enum role role;

	(void)rt;
	if (body == NULL)
		return;
	if (body_role(body, &role, &err) != 0 ||
	    body_string(body, "description", 0, &description, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	job = request_job_new(r, NULL, sizeof(*s));
	job->free_data = token_secret_wipe;
	s = job->data;
	auth_new_token(id, sizeof(id), s->token, sizeof(s->token), hash, sizeof(hash));
	cmd = engine_job_command(job, COMMAND_ADD_TOKEN);
	cmd->name = xstrdup(id);
	cmd->role = role;
	cmd->description = xstrdup(description != NULL ? description : "");
	cmd->token_hash = xstrdup(hash);
	json_decref(body);
	request_job_submit(r, job, token_created);
}

void
api_v1_token_delete(struct request *r, const struct route *rt)
{
	struct engine_job *job;

	command_new(r, COMMAND_REMOVE_TOKEN, &job)->name = xstrdup(rt->name);
	request_job_submit(r, job, name_deleted);
}
