/*
 * api_drain.c - the drain proof as a service (docs/API.md, "Drained and
 * serving"):
 *
 *   GET  /v1/clusters/{c}/nodes/{n}/drained?wait=D   viewer
 *   GET  /v1/clusters/{c}/nodes/{n}/serving?wait=D   viewer
 *   POST /v1/clusters/{c}/nodes/{n}/drain?wait=D     operator
 *   POST /v1/clusters/{c}/nodes/{n}/offline?wait=D   operator
 *
 * Each answers 200 with the evidence per load balancer as soon as the
 * node is drained (serving), or 409 with what each one still lacks when
 * the wait runs out. The judgement is the drain layer's (drain/drain.h),
 * the one `wait` and `rollout` apply.
 *
 * A held request costs no thread: its state (struct held) lives in h2o's
 * request pool, and between two looks it is a timed waiter on its worker
 * (request_after): LOOK_EVERY_MS, or DRAIN_IN_FLIGHT_POLL_MS while an
 * answer is in transit or requests are in flight (the worker fires due
 * waiters on its tick, so in practice every 250 ms at most). It is not
 * woken by each probe (request_wait_for_observation): the worker checks
 * every observation waiter at every probe of any node, so 1,000 of them
 * would cost each probe a thousand digests; a timer costs nothing until
 * it fires (bench/drain_held: 1,000 held waits, about 2 % of a core). A
 * verdict is thus up to a tick late, below the load balancers' own
 * intervals. The held waits of one node share the document of its
 * observations (observations_shared). A client
 * that goes away is seen at the next look (request_client_is_gone: h2o
 * itself would see it only when it writes); answering it ends the
 * request, whose pool takes the waiter with it, and the client's count
 * of held waits goes down (held_dispose). The load
 * balancers' runtime access is asked by the drain layer's own thread
 * (lbwatch.h); a look reads its latest answers and never blocks.
 *
 * Bounds: DRAIN_HELD_PER_CLIENT held waits per client address (429 past
 * it), DRAIN_HELD_MAX in all (503), a wait of at most DRAIN_WAIT_MAX_MS.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../drain/drain.h"
#include "../drain/lbwatch.h"
#include "../observe/observe.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "api_drain.h"

#define LOOK_EVERY_MS 100
#define NOTES_MAX 1024
#define FIRST_READING_MS (DRAIN_RUNTIME_TIMEOUT_MS + 2 * DRAIN_IN_FLIGHT_POLL_MS)

/* What one held request keeps between its looks (in h2o's request pool). */
struct held {
	struct drain_args a;
	struct drain_node w;
	struct drain_lb lbs[DRAIN_LBS_MAX];
	size_t n_lbs;
	char node[NODE_NAME_MAX + 1];
	int64_t start;    /* ms, monotonic: when the wait began */
	int64_t wait_ms;  /* as asked */
	int64_t deadline; /* ms, monotonic */
	int is_counted;   /* counts against its client's bound */
	int is_unread;    /* the last look lacked a reading of runtime access */
	char client[64];
	char notes[NOTES_MAX]; /* the judgement's notes, one per line */
};

/* --- the bound on held waits ----------------------------------------------- */

struct client_count {
	char address[64];
	unsigned n;
};

static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static struct client_count clients[DRAIN_HELD_MAX];
static size_t n_clients;
static unsigned n_held;

/* Counts one more held wait for address. Returns 0, 429 when the client
 * holds DRAIN_HELD_PER_CLIENT already, or 503 when the daemon holds
 * DRAIN_HELD_MAX. */
static int
held_count_add(const char *address)
{
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&clients_lock);
	for (i = 0; i < n_clients; i++)
		if (strcmp(clients[i].address, address) == 0)
			break;
	if (n_held >= DRAIN_HELD_MAX)
		rc = 503;
	else if (i < n_clients && clients[i].n >= DRAIN_HELD_PER_CLIENT)
		rc = 429;
	if (rc == 0) {
		if (i == n_clients) {
			snprintf(clients[i].address, sizeof(clients[i].address), "%s", address);
			clients[i].n = 0;
			n_clients++;
		}
		clients[i].n++;
		n_held++;
	}
	pthread_mutex_unlock(&clients_lock);
	return rc;
}

static void
held_count_remove(const char *address)
{
	size_t i;

	pthread_mutex_lock(&clients_lock);
	for (i = 0; i < n_clients; i++)
		if (strcmp(clients[i].address, address) == 0)
			break;
	if (i < n_clients) {
		n_held--;
		if (--clients[i].n == 0)
			clients[i] = clients[--n_clients];
	}
	pthread_mutex_unlock(&clients_lock);
}

static void observations_release(void);

/* The pool's destructor (on the request's worker): the request was
 * answered or its client went away. */
static void
held_dispose(void *p)
{
	struct held *h = p;

	if (h->is_counted) {
		held_count_remove(h->client);
		observations_release();
	}
}

/* --- the runtime access thread, started at the first use ----------------- */

static pthread_once_t watch_once = PTHREAD_ONCE_INIT;
static struct lbwatch *watch;

static void
watch_start(void)
{
	watch = lbwatch_new();
}

static void
held_note(void *arg, const char *node, const char *text)
{
	struct held *h = arg;
	size_t used = strlen(h->notes);

	(void)node;
	if (used + strlen(text) + 2 < sizeof(h->notes))
		snprintf(h->notes + used, sizeof(h->notes) - used, "%s\n", text);
}

/* --- query ------------------------------------------------------------------ */

/* A duration parameter into *out (ms); absent leaves *out. Returns 0, or
 * fills err (400) naming the parameter and its range. */
static int
query_duration(struct request *r, const char *name, int64_t min, int64_t max, int64_t *out,
               struct error *err)
{
	char buf[40];
	int64_t ms;
	int found = request_query_param(r, name, buf, sizeof(buf));

	if (found == 0)
		return 0;
	if (found < 0 || duration_parse(buf, min, INT64_MAX / 4, &ms) != 0)
		return error_set(err, 400,
		                 "%s must be a duration like 120s, 2m or 500ms (a number alone is "
		                 "seconds)",
		                 name);
	if (ms > max)
		return error_set(err, 400, "%s is above its maximum of %llds", name,
		                 (long long)(max / 1000));
	*out = ms;
	return 0;
}

/* The judgement's arguments and the wait from the query. */
static int
held_from_query(struct request *r, struct held *h, struct error *err)
{
	char buf[16];
	char *end;
	int found;

	if (query_duration(r, "wait", 0, DRAIN_WAIT_MAX_MS, &h->wait_ms, err) != 0 ||
	    query_duration(r, "window", 1, DRAIN_WINDOW_MAX_MS, &h->a.window_ms, err) != 0 ||
	    query_duration(r, "no_probers_delay", 1, DRAIN_GRACE_MAX_MS, &h->a.no_probers_delay_ms,
	                   err) != 0 ||
	    query_duration(r, "drain_grace", 0, DRAIN_GRACE_MAX_MS, &h->a.drain_grace_ms, err) != 0)
		return -1;
	if ((found = request_query_param(r, "fall", buf, sizeof(buf))) != 0) {
		h->a.fall = found > 0 ? strtol(buf, &end, 10) : 0;
		if (found < 0 || buf[0] < '0' || buf[0] > '9' || *end != '\0' || h->a.fall < 1 ||
		    h->a.fall > DRAIN_FALL_MAX)
			return error_set(err, 400, "fall must be a number from 1 to %d",
			                 DRAIN_FALL_MAX);
	}
	if ((found = request_query_param(r, "require_probers", buf, sizeof(buf))) != 0) {
		if (found > 0 && (strcmp(buf, "1") == 0 || strcmp(buf, "true") == 0))
			h->a.require_probers = 1;
		else if (found < 0 || (strcmp(buf, "0") != 0 && strcmp(buf, "false") != 0))
			return error_set(err, 400, "require_probers must be true or false");
	}
	return 0;
}

/* --- documents -------------------------------------------------------------- */

/* Node n's observations in the shape of GET .../observations' "nodes",
 * with what the judgement reads. */
static json_t *
observations_json(struct request *r, const struct cluster *c, const struct node *n,
                  int64_t window_ms)
{
	struct observe_node_view *view = xcalloc(1, sizeof(*view));
	int64_t now = time_now_ms(), since = now - window_ms;
	json_t *probes = json_array(), *doc;
	size_t i;

	observe_node_view(request_observe(r), c->name, n->name, n->changed_at, since, view);
	for (i = 0; i < view->n_clients; i++) {
		const struct observe_client_view *p = &view->clients[i];
		json_array_append_new(
		    probes,
		    json_pack(
		        "{s:s, s:o, s:s, s:o, s:I, s:s, s:b, s:I, s:I}", "protocol",
		        observe_protocol_name(p->protocol), "lb",
		        p->lb[0] != '\0' ? json_string(p->lb) : json_null(), "address", p->address,
		        "user_agent", p->has_user_agent ? json_string(p->user_agent) : json_null(),
		        "age_ms", (json_int_t)(now > p->last_at ? now - p->last_at : 0),
		        "last_answer", observe_answer_text(p->protocol, p->last_answer), "serving",
		        observe_answer_is_serving(p->last_answer), "since_change",
		        (json_int_t)p->since_change, "interval_ms", (json_int_t)p->interval_ms));
	}
	doc =
	    json_pack("{s:s, s:o, s:I, s:I}", "name", n->name, "probes", probes, "probes_untracked",
	              (json_int_t)(view->untracked_at >= since ? view->n_untracked : 0),
	              "probes_untracked_lbs",
	              (json_int_t)(view->untracked_lbs_at >= since ? view->n_untracked_lbs : 0));
	free(view);
	return doc;
}

/* The observations of one node as many held waits read them at once:
 * every held wait of a node is woken by the same probe, so the document
 * is built once per worker for each (node, window, digest) and reused
 * for OBSERVATIONS_REUSE_MS (the ages in it are that much younger at
 * most, far below any probe interval). Per thread: each worker its own. */
#define OBSERVATIONS_REUSE_MS 10

struct observations_cache {
	char cluster[NODE_NAME_MAX + 1];
	char node[NODE_NAME_MAX + 1];
	int64_t window_ms;
	uint64_t digest;
	int64_t at; /* ms (wall clock) when built */
	json_t *doc;
};

static __thread struct observations_cache cached;
static __thread unsigned held_here; /* held waits on this worker: the cache
                                       goes with the last one */

/* One held wait fewer on this worker; with none left, the cached
 * document goes (nothing is kept for a worker that holds no wait). */
static void
observations_release(void)
{
	if (held_here > 0 && --held_here == 0) {
		json_decref(cached.doc);
		cached.doc = NULL;
	}
}

/* At a worker's exit the cached document goes too: a stop ends the
 * worker once every wait is answered, before h2o has disposed of every
 * answered request (the last release). */
static pthread_key_t cache_key;
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;

static void
observations_at_exit(void *unused)
{
	(void)unused;
	json_decref(cached.doc);
	cached.doc = NULL;
}

static void
cache_key_make(void)
{
	if (pthread_key_create(&cache_key, observations_at_exit) != 0)
		abort(); /* out of keys: a programming error */
}

/* A reference to node n's observations (the caller decrefs). */
static json_t *
observations_shared(struct request *r, const struct cluster *c, const struct node *n,
                    int64_t window_ms, uint64_t digest)
{
	int64_t now = time_now_ms();

	if (cached.doc != NULL && cached.digest == digest && cached.window_ms == window_ms &&
	    now - cached.at < OBSERVATIONS_REUSE_MS && now >= cached.at &&
	    strcmp(cached.cluster, c->name) == 0 && strcmp(cached.node, n->name) == 0)
		return json_incref(cached.doc);
	json_decref(cached.doc);
	pthread_once(&cache_key_once, cache_key_make);
	pthread_setspecific(cache_key, &cached); /* non-NULL: the destructor runs */
	cached.doc = observations_json(r, c, n, window_ms);
	snprintf(cached.cluster, sizeof(cached.cluster), "%s", c->name);
	snprintf(cached.node, sizeof(cached.node), "%s", n->name);
	cached.window_ms = window_ms;
	cached.digest = digest;
	cached.at = now;
	return json_incref(cached.doc);
}

static json_t *
notes_json(const struct held *h)
{
	json_t *list = json_array();
	const char *p = h->notes, *nl;

	while ((nl = strchr(p, '\n')) != NULL) {
		json_array_append_new(list, json_stringn(p, (size_t)(nl - p)));
		p = nl + 1;
	}
	return list;
}

/* The verdict: per load balancer what it did or still lacks. */
static json_t *
verdict_json(const struct held *h, const char *cluster, const struct node *n, int64_t now)
{
	const struct drain_node *w = &h->w;
	const char *word = h->a.want_serving ? "serving" : "drained";
	json_t *lbs = json_array(), *doc;
	size_t i;

	for (i = 0; i < h->n_lbs; i++) {
		const struct drain_lb_verdict *v = &w->lb[i];
		json_t *one = json_pack("{s:s, s:s, s:b, s:b}", "name", h->lbs[i].name, "kind",
		                        h->lbs[i].kind, "runtime", h->lbs[i].runtime[0] != '\0',
		                        "acted", v->has_acted || w->state != DRAIN_PROBES);
		json_object_set_new(one, "evidence",
		                    v->signal[0] != '\0' ? json_string(v->signal) : json_null());
		json_object_set_new(one, "lacks",
		                    v->lacks[0] != '\0' && w->state == DRAIN_PROBES
		                        ? json_string(v->lacks)
		                        : json_null());
		if (!h->a.want_serving)
			json_object_set_new(one, "in_flight",
			                    w->state != DRAIN_PROBES && v->in_flight >= 0
			                        ? json_integer(v->in_flight)
			                        : json_null());
		json_array_append_new(lbs, one);
	}
	doc = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:b, s:s}", "cluster", cluster, "node",
	                h->node, "status", n != NULL ? node_status_name(n->status) : "removed",
	                word, w->state == DRAIN_DONE, "waited_ms", (json_int_t)(now - h->start),
	                "probers", (json_int_t)w->n_probers, "no_probers", w->had_no_probers,
	                "evidence", w->evidence);
	if (!h->a.want_serving)
		json_object_set_new(doc, "in_flight", json_string(w->in_flight));
	json_object_set_new(doc, "lbs", lbs);
	json_object_set_new(doc, "notes", notes_json(h));
	return doc;
}

/* "not drained after 120s: app1: not every load balancer has seen it out:
 * hap1 has had 1 of 3 failing answers since the change (last: 200 OK)". */
static void
reply_not_yet(struct request *r, const struct held *h, const char *cluster, const struct node *n,
              int64_t now)
{
	const struct drain_node *w = &h->w;
	const char *word = h->a.want_serving ? "serving" : "drained";
	char after[32];

	if (h->wait_ms < 1000)
		snprintf(after, sizeof(after), "%lldms", (long long)h->wait_ms);
	else if (h->wait_ms % 1000 == 0)
		snprintf(after, sizeof(after), "%llds", (long long)h->wait_ms / 1000);
	else
		snprintf(after, sizeof(after), "%.1fs", (double)h->wait_ms / 1000.0);
	if (w->state == DRAIN_IN_FLIGHT)
		reply_error(r, 409, verdict_json(h, cluster, n, now),
		            "not %s after %s: %s: the load balancers stopped sending it requests, "
		            "but requests were still in flight: %s",
		            word, after, h->node, w->in_flight);
	else
		reply_error(r, 409, verdict_json(h, cluster, n, now),
		            "not %s after %s: %s: not every load balancer has seen it %s: %s", word,
		            after, h->node, h->a.want_serving ? "in" : "out", w->pending);
}

/* --- the wait ------------------------------------------------------------------ */

/* One look: judge the node now; answer, or look again after
 * LOOK_EVERY_MS (DRAIN_IN_FLIGHT_POLL_MS while in flight). r->surface_data
 * is the struct held. */
static void
look(struct request *r)
{
	struct held *h = r->surface_data;
	const struct model *m = request_snapshot(r);
	const struct cluster *c = model_find_cluster(m, r->route.cluster);
	const struct node *n = c != NULL ? cluster_find_node(c, h->node, strlen(h->node)) : NULL;
	struct drain_access acc;
	struct lbwatch_view view;
	int64_t now = time_monotonic_ms(), next;
	json_t *obs;

	h->is_unread = 0;
	if (request_client_is_gone(r)) {
		/* nobody reads it: it lets h2o end the request and free its wait */
		reply_error(r, 499, NULL, "the client went away");
		return;
	}
	if (n == NULL) {
		reply_error(r, 404, json_pack("{s:s}", "entry", h->node),
		            "node '%s' is no longer in cluster '%s'", h->node, r->route.cluster);
		return;
	}
	if (h->w.state == DRAIN_PROBES &&
	    !observe_remote_ready(request_observe(r), c->name, h->node, time_now_ms())) {
		/* judged only on every daemon's observations: a partial view
		 * could say drained while a load balancer seen by another
		 * daemon still sends requests (even a short wait gets up to
		 * REQUEST_REMOTE_WAIT_MS for the first read) */
		if ((now >= h->deadline && now >= h->start + REQUEST_REMOTE_WAIT_MS) ||
		    request_is_stopping(r)) {
			reply_error(
			    r, 503, verdict_json(h, c->name, n, now),
			    "not %s: %s: the other daemons' observations of it could not be "
			    "read from the store",
			    h->a.want_serving ? "serving" : "drained", h->node);
			return;
		}
		request_after(r, LOOK_EVERY_MS, look);
		return;
	}
	if (h->w.state == DRAIN_PROBES) {
		lbwatch_access(watch, h->start, &view, &acc);
		view.note = held_note;
		view.note_arg = h;
		obs = observations_shared(
		    r, c, n, h->a.window_ms,
		    observation_digest(request_observe(r), m, c->name, h->node));
		drain_judge(&h->w, obs, h->lbs, h->n_lbs, c->name, &h->a, &acc, now,
		            now - h->start);
		json_decref(obs);
		h->is_unread |= view.n_unread > 0;
		if (h->n_lbs == 0 && h->w.state == DRAIN_PROBES && h->w.n_probers == 0 &&
		    drain_no_probers(&h->w, &h->a, &acc, now - h->start, now) != 0) {
			reply_error(
			    r, 409, verdict_json(h, c->name, n, now),
			    "nothing probed %s in the last %llds: cannot tell whether the load "
			    "balancers saw it (require_probers)",
			    h->node, (long long)h->a.window_ms / 1000);
			return;
		}
	}
	if (h->w.state == DRAIN_IN_FLIGHT) {
		/* a reading counts only when taken after every load balancer acted */
		lbwatch_access(watch, h->w.out_at, &view, &acc);
		/* "unknown" with no grace left is clear for the judgement; here it
		 * only means the load balancer's word has not been read yet: wait
		 * for it (at most FIRST_READING_MS), it is the better evidence */
		if (drain_check_in_flight(&h->w, h->lbs, h->n_lbs, c->name, &h->a, &acc, now) &&
		    (view.n_unread == 0 || now >= h->w.out_at + FIRST_READING_MS))
			h->w.state = DRAIN_DONE;
		h->is_unread |= view.n_unread > 0;
	}
	if (h->w.state == DRAIN_DONE) {
		h->w.is_done = 1;
		reply_json(r, 200, verdict_json(h, c->name, n, now));
		return;
	}
	/* a short wait (even 0) still gets the load balancers' first answers */
	if (now >= h->deadline && !(h->is_unread && now < h->start + FIRST_READING_MS)) {
		reply_not_yet(r, h, c->name, n, now);
		return;
	}
	if (request_is_stopping(r)) {
		reply_error(r, 503, verdict_json(h, c->name, n, now),
		            "the daemon is stopping: ask another daemon");
		return;
	}
	next = drain_must_poll(&h->w) ? DRAIN_IN_FLIGHT_POLL_MS : LOOK_EVERY_MS;
	if (!h->is_unread && next > h->deadline - now)
		next = h->deadline - now;
	request_after(r, next, look);
}

/* Checks the request, prepares its struct held (want_serving) and counts
 * it against the bounds. Returns it, or NULL when it answered. */
static struct held *
held_new(struct request *r, const struct route *rt, int want_serving)
{
	const struct cluster *c = model_find_cluster(request_snapshot(r), rt->cluster);
	struct held *h;
	struct error err;
	size_t i;
	int rc;

	if (c == NULL) {
		reply_error(r, 404, json_pack("{s:s}", "entry", rt->cluster),
		            "cluster '%s' not found", rt->cluster);
		return NULL;
	}
	if (cluster_find_node(c, rt->name, strlen(rt->name)) == NULL) {
		reply_error(r, 404, json_pack("{s:s}", "entry", rt->name),
		            "node '%s' not found in cluster '%s'", rt->name, c->name);
		return NULL;
	}
	h = h2o_mem_alloc_shared(&r->req->pool, sizeof(*h), held_dispose);
	memset(h, 0, sizeof(*h));
	drain_args_default(&h->a, want_serving);
	if (held_from_query(r, h, &err) != 0) {
		reply_from_error(r, &err);
		return NULL;
	}
	snprintf(h->node, sizeof(h->node), "%s", rt->name);
	h->w.name = h->node;
	for (i = 0; i < c->n_lbs && h->n_lbs < DRAIN_LBS_MAX; i++) {
		struct drain_lb *l = &h->lbs[h->n_lbs++];
		snprintf(l->name, sizeof(l->name), "%s", c->lbs[i].name);
		snprintf(l->kind, sizeof(l->kind), "%s", c->lbs[i].kind);
		snprintf(l->runtime, sizeof(l->runtime), "%s",
		         c->lbs[i].runtime != NULL ? c->lbs[i].runtime : "");
		snprintf(l->backend, sizeof(l->backend), "%s",
		         c->lbs[i].backend != NULL ? c->lbs[i].backend : "");
	}
	if ((rc = held_count_add(r->address)) != 0) {
		if (rc == 429)
			reply_error(r, 429, NULL,
			            "this client holds %d waits already: let one finish first",
			            DRAIN_HELD_PER_CLIENT);
		else
			reply_error(r, 503, NULL, "the daemon holds %d waits already: retry later",
			            DRAIN_HELD_MAX);
		return NULL;
	}
	h->is_counted = 1;
	held_here++;
	snprintf(h->client, sizeof(h->client), "%s", r->address);
	pthread_once(&watch_once, watch_start);
	r->surface_data = h;
	return h;
}

/* Starts the wait at now. */
static void
held_start(struct request *r, struct held *h)
{
	h->start = time_monotonic_ms();
	h->deadline = h->start + h->wait_ms;
	look(r);
}

void
api_drain_drained_get(struct request *r, const struct route *rt)
{
	struct held *h = held_new(r, rt, 0);

	if (h != NULL)
		held_start(r, h);
}

void
api_drain_serving_get(struct request *r, const struct route *rt)
{
	struct held *h = held_new(r, rt, 1);

	if (h != NULL)
		held_start(r, h);
}

/* --- take out and wait ---------------------------------------------------------- */

static void
status_set(struct request *r, struct engine_job *job)
{
	if (job->rc != 0) {
		reply_from_error(r, &job->err);
		return;
	}
	held_start(r, r->surface_data);
}

/* The node's new status as one command, its reason from ?reason=. */
static void
take_out(struct request *r, const struct route *rt, const char *status)
{
	char reason[REASON_MAX * 4 + 1] = "";
	struct engine_job *job;
	struct command *cmd;
	struct error err;
	json_t *changes;
	int rc;

	if (request_query_param(r, "reason", reason, sizeof(reason)) < 0) {
		reply_error(r, 400, NULL, "reason is longer than %d characters", REASON_MAX);
		return;
	}
	if (held_new(r, rt, 0) == NULL)
		return;
	job = request_job_new(r, NULL, 0);
	cmd = engine_job_command(job, COMMAND_SET_STATUS);
	cmd->cluster = xstrdup(rt->cluster);
	cmd->idempotency_key = request_idempotency_key(r);
	changes = json_pack("{s:{s:s, s:s}}", rt->name, "status", status, "reason", reason);
	rc = change_set_from_json(changes, &cmd->changes, &err);
	json_decref(changes);
	if (rc != 0) {
		engine_job_release(job);
		free(job);
		reply_from_error(r, &err);
		return;
	}
	request_job_submit(r, job, status_set);
}

void
api_drain_drain_post(struct request *r, const struct route *rt)
{
	take_out(r, rt, "drain");
}

void
api_drain_offline_post(struct request *r, const struct route *rt)
{
	take_out(r, rt, "offline");
}
