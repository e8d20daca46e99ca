/*
 * consul.c - a read-only subset of Consul's HTTP API, on a listener of
 * its own (serve --consul-listen; its paths collide with ours), so that
 * tools that already read Consul (consul-template, Traefik's Consul
 * catalog provider, HAProxy's Data Plane API, Prometheus' consul_sd)
 * read the nodes' status with no glue.
 *
 * Map of this file:
 *
 *   the mapping   a cluster is a service; a node with an address is an
 *                 instance of it on a Consul node of the same name (ID
 *                 "CLUSTER:NODE"), with one check whose status is the
 *                 node's: online passing, drain warning, offline critical,
 *                 the reason its Output. A node without an address has
 *                 nothing to offer a consumer and is left out.
 *   documents     the shapes of Consul's /v1/catalog/services,
 *                 /v1/catalog/service/:service and
 *                 /v1/health/service/:service (?passing), with
 *                 X-Consul-Index, X-Consul-KnownLeader: true and
 *                 X-Consul-LastContact.
 *   parameters    index, wait, passing, dc, tag, filter, stale/consistent
 *                 checked before anything is held, with Consul's 400s.
 *   blocking      ?index=N: answered when the index moves past N, or when
 *                 wait (default 5m, at most 10m, plus up to wait/16 of
 *                 jitter, as Consul does) runs out. The request waits on
 *                 its worker (request_wait_until): no thread; each held
 *                 query takes a slot of a table bounded per client
 *                 address and in all, given back when the request's
 *                 memory goes (answered, or the client left).
 *   access        consul_authenticate: the router's gate for these lines.
 *                 As Consul's ACLs do, a principal's answers leave out
 *                 the services of clusters it has no role on (and say so
 *                 in X-Consul-Results-Filtered-By-ACLs) rather than
 *                 refuse them; the door checks its role outside any one
 *                 cluster (none at all: 403).
 *
 * The index. Consul's X-Consul-Index is its Raft index: one counter for
 * the whole store that only grows. Ours is the store's version (every
 * write to any cluster, user or token moves it; with several daemons on
 * PostgreSQL it is the shared one, so a client may move between daemons).
 * A per-cluster version would not do: it restarts at 1 when a cluster is
 * re-created, and a client holding a higher index would then wait its
 * whole wait for nothing. So that a write to another cluster does not
 * answer every held health query of this one, a held service query
 * also waits for its cluster to change (its version, or whether it
 * exists), and otherwise answers at the end of its wait, as Consul may.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../util/timefmt.h"
#include "../util/url.h"
#include "consul.h"

#define CONSUL_DATACENTER "dc1"
#define CONSUL_WAIT_DEFAULT_MS (5 * 60 * 1000) /* Consul's default_query_time */
#define CONSUL_WAIT_MAX_MS (10 * 60 * 1000)    /* Consul's max_query_time */
#define CONSUL_JITTER_FRACTION 16              /* Consul's structs.JitterFraction */
/* Held blocking queries: at most this many in all, and from one client
 * address (consul-template holds one per service a template watches). */
#define CONSUL_HOLDS_MAX 2048
#define CONSUL_HOLDS_PER_CLIENT 128

/* --- the mapping --------------------------------------------------------- */

static const char *
check_status(enum node_status s)
{
	switch (s) {
	case NODE_ONLINE:
		return "passing";
	case NODE_DRAIN:
		return "warning";
	case NODE_OFFLINE:
		break;
	}
	return "critical";
}

/* A node's address as Consul splits it: host (IPv6 without brackets) and
 * port. Returns 0, or -1 for a node without a usable address. */
static int
node_address(const struct node *n, char *host, size_t host_size, int *port)
{
	int is_bracketed;

	if (n->address == NULL || n->address[0] == '\0')
		return -1;
	if (hostport_split(n->address, host, host_size, port, &is_bracketed) != 0 ||
	    host[0] == '\0')
		return -1;
	return 0;
}

static int
cluster_has_instances(const struct cluster *c)
{
	char host[256];
	int port;
	size_t i;

	for (i = 0; i < c->n_nodes; i++)
		if (node_address(cluster_node(c, i), host, sizeof(host), &port) == 0)
			return 1;
	return 0;
}

/* --- the index ----------------------------------------------------------- */

/* The store's version: never 0, which Consul's clients take for "not a
 * blocking query". */
static uint64_t
store_index(struct request *r)
{
	struct engine_store_state st;

	request_store_state(r, &st);
	return st.version > 0 ? (uint64_t)st.version : 1;
}

/* What a held query waits for; in the request's pool, its destructor
 * gives the slot back. */
struct consul_hold {
	uint64_t after;          /* the client's index */
	int64_t cluster_version; /* of the service's cluster when held; -1: absent */
	int slot;                /* in holders[] */
};

static pthread_mutex_t holds_lock = PTHREAD_MUTEX_INITIALIZER;
static int n_holds;
static struct {
	char address[64];
	int n; /* 0: a free slot */
} holders[CONSUL_HOLDS_MAX];

/* Takes a slot for r's client: 0, or 429 (this client holds too many) or
 * 503 (too many in all). */
static int
hold_take(const char *address, int *slot)
{
	int i, free_slot = -1, status = 0;

	pthread_mutex_lock(&holds_lock);
	*slot = -1;
	for (i = 0; i < CONSUL_HOLDS_MAX && *slot < 0; i++) {
		if (holders[i].n > 0 && strcmp(holders[i].address, address) == 0)
			*slot = i;
		else if (holders[i].n == 0 && free_slot < 0)
			free_slot = i;
	}
	if (n_holds >= CONSUL_HOLDS_MAX) {
		status = 503;
	} else if (*slot >= 0 && holders[*slot].n >= CONSUL_HOLDS_PER_CLIENT) {
		status = 429;
	} else {
		if (*slot < 0) { /* a free one exists: fewer addresses than holds */
			*slot = free_slot;
			snprintf(holders[*slot].address, sizeof(holders[0].address), "%s", address);
		}
		holders[*slot].n++;
		n_holds++;
	}
	pthread_mutex_unlock(&holds_lock);
	return status;
}

static void
hold_release(void *p)
{
	struct consul_hold *h = p;

	if (h->slot < 0)
		return;
	pthread_mutex_lock(&holds_lock);
	holders[h->slot].n--;
	n_holds--;
	pthread_mutex_unlock(&holds_lock);
	h->slot = -1;
}

static int64_t
cluster_version(const struct model *m, const char *name)
{
	const struct cluster *c = model_find_cluster(m, name);

	return c != NULL ? c->version : -1;
}

/* The service r's line names ({cluster}), "" for the catalog's list:
 * consul_authenticate moved it from route.cluster to route.name. */
static const char *
service_of(const struct request *r)
{
	return r->route.name;
}

/* request_wait_until's condition: the index moved past the client's and,
 * for a service, the service changed; or the client left (the answer
 * then goes nowhere, and the request's memory, with its slot, goes). */
static int
hold_is_due(struct request *r)
{
	struct consul_hold *h = r->data;

	if (request_client_is_gone(r))
		return 1;
	if (store_index(r) <= h->after)
		return 0;
	return service_of(r)[0] == '\0' ||
	       cluster_version(request_snapshot(r), service_of(r)) != h->cluster_version;
}

/* --- parameters ----------------------------------------------------------- */

/* The parameters of a query, as given. */
struct consul_query {
	uint64_t index; /* 0: not a blocking query */
	int64_t wait_ms;
	int is_passing;
	int has_tag; /* ?tag=: instances carry no tags, so none matches */
};

/* Replies 400 in Consul's words. */
static void
bad_request(struct request *r, const char *what)
{
	consul_refuse(r, 400, NULL, what);
}

static int
parse_index(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

/* Go's strconv.ParseBool, which Consul uses; "" (as in ?passing) is true. */
static int
parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"", "1", "t", "T", "TRUE", "true", "True"};
	static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (strcmp(s, yes[i]) == 0)
			return *out = 1, 0;
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (strcmp(s, no[i]) == 0)
			return *out = 0, 0;
	return -1;
}

/* Is the query parameter name present, with or without a value? */
static int
has_param(const struct request *r, const char *name)
{
	const char *pos = r->query.base;
	struct url_form_pair pair;

	while (url_form_next(&pos, r->query.base + r->query.len, &pair))
		if (url_form_key_is(&pair, name))
			return 1;
	return 0;
}

/* Parses and checks q's parameters; replies and returns -1 when one is
 * bad. is_service: the endpoint names a service (passing, tag apply). */
static int
query_parse(struct request *r, int is_service, struct consul_query *q)
{
	char buf[64];
	int found;

	memset(q, 0, sizeof(*q));
	q->wait_ms = CONSUL_WAIT_DEFAULT_MS;
	if ((found = request_query_param(r, "index", buf, sizeof(buf))) < 0 ||
	    (found == 1 && buf[0] != '\0' && parse_index(buf, &q->index) != 0)) {
		bad_request(r, "Invalid index");
		return -1;
	}
	if ((found = request_query_param(r, "wait", buf, sizeof(buf))) < 0 ||
	    (found == 1 && buf[0] != '\0' &&
	     duration_parse(buf, 0, CONSUL_WAIT_MAX_MS, &q->wait_ms) != 0)) {
		bad_request(r, "Invalid wait time: a duration of one unit, at most 10m "
		               "(e.g. 500ms, 30s, 5m)");
		return -1;
	}
	if (q->wait_ms == 0)
		q->wait_ms = CONSUL_WAIT_DEFAULT_MS;
	if (has_param(r, "stale") && has_param(r, "consistent")) {
		bad_request(r, "Cannot specify ?stale with ?consistent, conflicting semantics.");
		return -1;
	}
	if (has_param(r, "filter")) {
		bad_request(r, "filter expressions are not supported by this server");
		return -1;
	}
	if ((found = request_query_param(r, "dc", buf, sizeof(buf))) != 0 &&
	    (found < 0 || (buf[0] != '\0' && strcmp(buf, CONSUL_DATACENTER) != 0))) {
		consul_refuse(r, 500, NULL, "No path to datacenter");
		return -1;
	}
	if (!is_service)
		return 0;
	q->has_tag = has_param(r, "tag");
	if ((found = request_query_param(r, "passing", buf, sizeof(buf))) < 0 ||
	    (found == 1 && parse_bool(buf, &q->is_passing) != 0)) {
		bad_request(r, "Invalid value for ?passing");
		return -1;
	}
	if (found == 0 && has_param(r, "passing"))
		q->is_passing = 1; /* "?passing" alone */
	return 0;
}

/* --- documents ---------------------------------------------------------- */

/* Adds a header; the value is copied (h2o keeps the pointer). */
static void
header(struct request *r, const char *name, const char *value)
{
	h2o_iovec_t v = h2o_strdup(&r->req->pool, value, strlen(value));

	h2o_add_header_by_str(&r->req->pool, &r->req->res.headers, name, strlen(name), 0, NULL,
	                      v.base, v.len);
}

/* Serialises doc with Consul's headers: the index, a leader known (the
 * daemon's memory is the answer) and the time since the store was last
 * heard from (0 while it answers). */
static void
reply_consul(struct request *r, uint64_t index, json_t *doc)
{
	struct engine_store_state st;
	char buf[32];

	if (r->is_gone) {
		json_decref(doc);
		return;
	}
	request_store_state(r, &st);
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)index);
	header(r, "X-Consul-Index", buf);
	header(r, "X-Consul-KnownLeader", "true");
	snprintf(buf, sizeof(buf), "%lld",
	         (long long)(st.is_up || st.down_since == 0 ? 0 : time_now_ms() - st.down_since));
	header(r, "X-Consul-LastContact", buf);
	reply_json(r, 200, doc);
}

static json_t *
service_id(const struct cluster *c, const struct node *n)
{
	return json_sprintf("%s:%s", c->name, n->name);
}

static json_t *
service_meta(const struct node *n)
{
	return json_pack("{s:s,s:s}", "clustermgmt_status", node_status_name(n->status),
	                 "clustermgmt_reason", n->reason);
}

static json_t *
weights(void)
{
	return json_pack("{s:i,s:i}", "Passing", 1, "Warning", 1);
}

/* One entry of /v1/catalog/service/:service (Consul's ServiceNode). */
static json_t *
catalog_entry(const struct cluster *c, const struct node *n, const char *host, int port)
{
	json_int_t v = (json_int_t)c->version;

	return json_pack(
	    "{s:s,s:s,s:s,s:s,s:{},s:{},s:s,s:o,s:s,s:[],s:s,s:{},s:o,s:o,s:i,"
	    "s:b,s:{},s:I,s:I}",
	    "ID", "", "Node", n->name, "Address", host, "Datacenter", CONSUL_DATACENTER,
	    "TaggedAddresses", "NodeMeta", "ServiceKind", "", "ServiceID", service_id(c, n),
	    "ServiceName", c->name, "ServiceTags", "ServiceAddress", host, "ServiceTaggedAddresses",
	    "ServiceWeights", weights(), "ServiceMeta", service_meta(n), "ServicePort", port,
	    "ServiceEnableTagOverride", 0, "ServiceConnect", "CreateIndex", v, "ModifyIndex", v);
}

/* One entry of /v1/health/service/:service (Consul's CheckServiceNode):
 * the node, the instance, and its one check. */
static json_t *
health_entry(const struct cluster *c, const struct node *n, const char *host, int port)
{
	json_int_t v = (json_int_t)c->version;
	json_t *id = service_id(c, n), *node, *service, *check;

	node = json_pack("{s:s,s:s,s:s,s:s,s:{},s:{},s:I,s:I}", "ID", "", "Node", n->name,
	                 "Address", host, "Datacenter", CONSUL_DATACENTER, "TaggedAddresses",
	                 "Meta", "CreateIndex", v, "ModifyIndex", v);
	service = json_pack("{s:O,s:s,s:[],s:s,s:{},s:o,s:i,s:o,s:b,s:{},s:I,s:I}", "ID", id,
	                    "Service", c->name, "Tags", "Address", host, "TaggedAddresses", "Meta",
	                    service_meta(n), "Port", port, "Weights", weights(),
	                    "EnableTagOverride", 0, "Connect", "CreateIndex", v, "ModifyIndex", v);
	check =
	    json_pack("{s:s,s:o,s:s,s:s,s:s,s:s,s:O,s:s,s:[],s:s,s:s,s:s,s:i,s:{},s:I,s:I}", "Node",
	              n->name, "CheckID", json_sprintf("service:%s", json_string_value(id)), "Name",
	              "clustermgmt status", "Status", check_status(n->status), "Notes",
	              "the node's status in clustermgmt: online passing, drain warning, "
	              "offline critical",
	              "Output", n->reason, "ServiceID", id, "ServiceName", c->name, "ServiceTags",
	              "Type", "", "Interval", "", "Timeout", "", "ExposedPort", 0, "Definition",
	              "CreateIndex", v, "ModifyIndex", v);
	json_decref(id);
	return json_pack("{s:o,s:o,s:[o]}", "Node", node, "Service", service, "Checks", check);
}

typedef json_t *(*entry_fn)(const struct cluster *c, const struct node *n, const char *host,
                            int port);

/* May r see cluster? A connection to a loopback address sees everything
 * (consul_authenticate lets it in without credentials); anyone else what
 * their role covers (roles per cluster). */
static int
may_see(struct request *r, const char *cluster)
{
	return request_is_local(r) || auth_role_on(r, cluster) >= ROLE_VIEWER;
}

/* The instances of r's service, as make_entry shapes them. */
static json_t *
instances(struct request *r, const struct consul_query *q, entry_fn make_entry)
{
	const struct cluster *c = model_find_cluster(request_snapshot(r), service_of(r));
	json_t *list = json_array();
	char host[256];
	size_t i;
	int port;

	/* a service r may not see is empty, as Consul's ACLs filter it */
	if (c != NULL && !may_see(r, c->name))
		header(r, "X-Consul-Results-Filtered-By-ACLs", "true");
	if (c == NULL || q->has_tag || !may_see(r, c->name))
		return list;
	for (i = 0; i < c->n_nodes; i++) {
		const struct node *n = cluster_node(c, i);
		if (node_address(n, host, sizeof(host), &port) != 0)
			continue;
		if (q->is_passing && n->status != NODE_ONLINE)
			continue;
		json_array_append_new(list, make_entry(c, n, host, port));
	}
	return list;
}

static void
answer_services(struct request *r)
{
	uint64_t index = store_index(r); /* first: the snapshot is at least as new */
	const struct model *m = request_snapshot(r);
	json_t *doc = json_object();
	int is_filtered = 0;
	size_t i;

	for (i = 0; i < m->n_clusters; i++) {
		if (!cluster_has_instances(&m->clusters[i]))
			continue;
		if (may_see(r, m->clusters[i].name))
			json_object_set_new(doc, m->clusters[i].name, json_array());
		else
			is_filtered = 1;
	}
	if (is_filtered)
		header(r, "X-Consul-Results-Filtered-By-ACLs", "true");
	reply_consul(r, index, doc);
}

static void
answer_instances(struct request *r, entry_fn make_entry)
{
	struct consul_query q;
	uint64_t index = store_index(r);

	if (query_parse(r, 1, &q) != 0) /* checked before: cannot fail now */
		return;
	reply_consul(r, index, instances(r, &q, make_entry));
}

static void
answer_catalog_service(struct request *r)
{
	answer_instances(r, catalog_entry);
}

static void
answer_health_service(struct request *r)
{
	answer_instances(r, health_entry);
}

/* --- blocking ------------------------------------------------------------- */

/* Answers r now, or holds it as a blocking query (?index=N). */
static void
answer_or_hold(struct request *r, int is_service, request_handler answer)
{
	struct consul_query q;
	struct consul_hold *h;
	int64_t wait_ms;
	int slot, status;

	if (query_parse(r, is_service, &q) != 0)
		return;
	if (q.index == 0 || store_index(r) > q.index) {
		answer(r);
		return;
	}
	if ((status = hold_take(r->address, &slot)) != 0) {
		consul_refuse(r, status == 429 ? 429 : 503, NULL,
		              status == 429 ? "Your IP is issuing too many concurrent blocking "
		                              "queries, please rate limit your calls"
		                            : "Too many blocking queries are held; try again "
		                              "shortly");
		return;
	}
	h = h2o_mem_alloc_shared(&r->req->pool, sizeof(*h), hold_release);
	h->after = q.index;
	h->slot = slot;
	h->cluster_version = is_service ? cluster_version(request_snapshot(r), service_of(r)) : -1;
	r->data = h;
	/* Consul adds up to wait/16 so that clients woken together do not
	 * all come back at once */
	wait_ms = q.wait_ms +
	          (int64_t)randombytes_uniform((uint32_t)(q.wait_ms / CONSUL_JITTER_FRACTION) + 1);
	request_wait_until(r, hold_is_due, wait_ms, answer);
}

void
consul_catalog_services(struct request *r, const struct route *rt)
{
	(void)rt;
	answer_or_hold(r, 0, answer_services);
}

void
consul_catalog_service(struct request *r, const struct route *rt)
{
	(void)rt;
	answer_or_hold(r, 1, answer_catalog_service);
}

void
consul_health_service(struct request *r, const struct route *rt)
{
	(void)rt;
	answer_or_hold(r, 1, answer_health_service);
}

/* --- access and refusals -------------------------------------------------- */

void
consul_authenticate(struct request *r, enum role min_role, void (*then)(struct request *r))
{
	h2o_iovec_t h = request_header_by_name(r, "x-consul-token");
	char token[256];
	int found;

	/* auth.c checks the role on the route's cluster: with none, the role
	 * outside any one cluster (viewer for a principal with a role on
	 * some cluster), and instances() filters per cluster (the map) */
	snprintf(r->route.name, sizeof(r->route.name), "%s", r->route.cluster);
	r->route.cluster[0] = '\0';
	if (request_is_local(r)) {
		then(r);
		return;
	}
	if ((found = request_query_param(r, "token", token, sizeof(token))) != 0) {
		auth_require_token(r, min_role, found > 0 ? token : "",
		                   found > 0 ? strlen(token) : 0, then);
		return;
	}
	if (h.base != NULL) {
		auth_require_token(r, min_role, h.base, h.len, then);
		return;
	}
	auth_require(r, min_role, 0, then);
}

void
consul_refuse(struct request *r, int status, const char *allow, const char *what)
{
	char body[128];

	if (status == 405) {
		header(r, "allow", allow);
		snprintf(body, sizeof(body), "method %.*s not allowed", (int)r->req->method.len,
		         r->req->method.base);
		what = body;
	}
	if (status == 404)
		what = "";
	reply_text(r, status, what);
}
