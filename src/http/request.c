/*
 * request.c - the request API of request.h, and the hand-off of work
 * between a worker's event loop and the engine thread: jobs, waits (long
 * polls and delays), and the wake-ups that fire them. The bottom room of
 * src/http: it calls the engine, the observe table and h2o, never a
 * surface, the router or server.c.
 *
 * Who owns what:
 *
 *   struct request   h2o's request pool; request_dispose runs when the
 *                    pool goes (the client went away or was answered).
 *   struct job_pending  this file's, malloc'd while an engine job of
 *                    the request is out: r->job_pending and jp->r point
 *                    at each other; disposal of the request clears jp->r,
 *                    so the continuation never runs for a gone client.
 *                    Freed when the job comes back (the engine holds it
 *                    until then).
 *   struct wait      this file's, malloc'd for a long poll or a delay (a
 *                    delayed 401): r->wait and wt->r point at each other;
 *                    freed when it fires or with the request, whichever
 *                    comes first.
 *   struct engine_job the submitter's (engine.h), allocated here by
 *                    request_job_new with the surface's data behind it;
 *                    job->done and job->done_arg (the job_pending) are set by
 *                    request_job_submit and are this file's, nothing else
 *                    in the job is. Released and freed in on_jobs_done,
 *                    after the continuation, whether or not it ran.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../observe/observe.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "http.h"
#include "runtime.h"

/* An engine job a request waits for. The engine holds it until it hands
 * the job back (on_jobs_done), even when the client went away. */
struct job_pending {
	struct request *r; /* NULL once the client went away */
	struct worker *worker;
	struct engine_job *job;
	request_job_handler then;
	h2o_multithread_message_t message;
};

/* A long poll or a delay: on its worker's list of waits until it fires or
 * its client goes away, whichever comes first. */
struct wait {
	struct request *r;
	struct worker *worker;
	h2o_linklist_t link;             /* in worker->waiters */
	char cluster[NODE_NAME_MAX + 1]; /* "" for a plain delay */
	int64_t after;
	char *observed;          /* nodes "a,b" whose observations are waited
	                            for (malloc'd), NULL for other waits */
	uint64_t observed_after; /* ... until their digest is not this */
	int64_t deadline;        /* ms */
	request_handler then;
};

static void waits_check(struct worker *w);

/* --- request helpers ------------------------------------------------ */

/* The fleet was read at the last heartbeat (every SHARE_HEARTBEAT_MS);
 * this daemon knows its own version now, and a store at least that new. */
static void
fleet_with_own_version(struct share_fleet *f, const struct engine_store_state *st,
                       const char *daemon_id)
{
	size_t i;

	if (!st->has_state)
		return;
	if (st->version > f->store_version) {
		f->store_version = st->version;
		f->changed_at = st->version_at;
	}
	for (i = 0; i < f->n; i++)
		if (strcmp(f->daemons[i].id, daemon_id) == 0)
			f->daemons[i].version = st->version;
}

void
request_fleet(const struct request *r, struct share_fleet *f)
{
	struct engine_store_state st;
	struct server *s = r->server;

	engine_store_state(s->engine, &st);
	if (s->share != NULL) {
		share_fleet(s->share, f);
		if (f->read_at != 0) {
			fleet_with_own_version(f, &st, s->daemon_id);
			return;
		}
		free(f->daemons);
	}
	/* An SQLite store, or before the first heartbeat: this daemon. */
	memset(f, 0, sizeof(*f));
	f->daemons = xcalloc(1, sizeof(*f->daemons));
	f->daemons[0] = s->me;
	f->daemons[0].version = st.version;
	f->daemons[0].heartbeat_at = time_now_ms();
	f->n = 1;
	f->store_version = st.version;
	f->read_at = f->daemons[0].heartbeat_at;
}

int64_t
request_stale_after_ms(const struct request *r)
{
	return r->server->opts.stale_after_ms;
}

const char *
request_daemon_id(const struct request *r)
{
	return r->server->daemon_id;
}

void
request_store_state(const struct request *r, struct engine_store_state *out)
{
	engine_store_state(r->server->engine, out);
}

const struct model *
request_snapshot(struct request *r)
{
	return engine_snapshot(r->server->engine);
}

int
request_method_is(const struct request *r, const char *method)
{
	return h2o_memis(r->req->method.base, r->req->method.len, method, strlen(method));
}

h2o_iovec_t
request_header(const struct request *r, const h2o_token_t *token)
{
	ssize_t i = h2o_find_header(&r->req->headers, token, -1);

	if (i == -1)
		return h2o_iovec_init(NULL, 0);
	return r->req->headers.entries[i].value;
}

h2o_iovec_t
request_header_by_name(const struct request *r, const char *name)
{
	ssize_t i = h2o_find_header_by_str(&r->req->headers, name, strlen(name), -1);

	if (i == -1)
		return h2o_iovec_init(NULL, 0);
	return r->req->headers.entries[i].value;
}

struct observe *
request_observe(const struct request *r)
{
	return r->server->observe;
}

int
request_is_https(const struct request *r)
{
	return r->req->scheme == &H2O_URL_SCHEME_HTTPS;
}

int
request_query_param(const struct request *r, const char *name, char *buf, size_t size)
{
	char *value = NULL;
	int found = form_urlencoded_value(r->query, name, &value);

	if (found == 1 && strlen(value) >= size)
		found = -1;
	if (found == 1)
		memcpy(buf, value, strlen(value) + 1);
	free(value);
	return found;
}

/* --- pending work ---------------------------------------------------- */

/* A wait is over (answered, or its client went): off the worker's list,
 * one long poll fewer when it was one (a plain delay has no cluster),
 * and freed. */
static void
wait_free(struct wait *wt)
{
	h2o_linklist_unlink(&wt->link);
	if (wt->cluster[0] != '\0')
		atomic_fetch_sub(&wt->worker->server->n_long_polls, 1);
	if (wt->observed != NULL) {
		observe_watch(wt->worker->server->observe, -1);
		free(wt->observed);
	}
	wt->worker->n_pending--;
	free(wt);
}

static void
request_dispose(void *p)
{
	struct request *r = p;

	r->is_gone = 1;
	if (r->wait != NULL) /* nothing else refers to it */
		wait_free(r->wait);
	if (r->job_pending != NULL) /* freed when the engine hands it back */
		r->job_pending->r = NULL;
}

struct engine_job *
request_job_new(struct request *r, engine_job_fn fn, size_t data_size)
{
	struct engine_job *job = xcalloc(1, sizeof(*job) + data_size);

	job->run = fn;
	job->data = job + 1;
	snprintf(job->who_name, sizeof(job->who_name), "%s", r->who);
	snprintf(job->who_address, sizeof(job->who_address), "%s", r->address);
	return job;
}

/* Engine thread: hand the job back to the worker that submitted it. */
static void
job_done(struct engine_job *job)
{
	struct job_pending *jp = job->done_arg;

	h2o_multithread_send_message(&jp->worker->done_receiver, &jp->message);
}

void
request_job_submit(struct request *r, struct engine_job *job, request_job_handler then)
{
	struct job_pending *jp = xcalloc(1, sizeof(*jp));

	jp->r = r;
	jp->worker = r->worker;
	jp->job = job;
	jp->then = then;
	r->job_pending = jp;
	r->worker->n_pending++;
	job->done = job_done;
	job->done_arg = jp;
	engine_submit(r->server->engine, job);
}

/* Worker thread: jobs the engine finished. */
static void
on_jobs_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
	(void)receiver;
	while (!h2o_linklist_is_empty(messages)) {
		h2o_multithread_message_t *m =
		    H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
		struct job_pending *jp = H2O_STRUCT_FROM_MEMBER(struct job_pending, message, m);
		struct request *r = jp->r;
		struct engine_job *job = jp->job;
		request_job_handler then = jp->then;

		h2o_linklist_unlink(&m->link);
		if (r != NULL)
			r->job_pending = NULL;
		jp->worker->n_pending--;
		free(jp);
		if (r != NULL)
			then(r, job);
		engine_job_release(job);
		free(job);
	}
}

static struct wait *
wait_add(struct request *r, const char *cluster, int64_t after, int64_t wait_ms,
         request_handler then)
{
	struct wait *wt = xcalloc(1, sizeof(*wt));

	wt->r = r;
	wt->worker = r->worker;
	snprintf(wt->cluster, sizeof(wt->cluster), "%s", cluster);
	wt->after = after;
	wt->deadline = time_now_ms() + wait_ms;
	wt->then = then;
	if (wt->cluster[0] != '\0')
		atomic_fetch_add(&r->server->n_long_polls, 1);
	h2o_linklist_insert(&r->worker->waiters, &wt->link);
	r->wait = wt;
	r->worker->n_pending++;
	return wt;
}

/* A wait whose client is still there (a gone one's wait is freed at once). */
static void
wait_fire(struct wait *wt)
{
	struct request *r = wt->r;
	request_handler then = wt->then;

	r->wait = NULL;
	wait_free(wt);
	then(r);
}

uint64_t
observation_digest(struct observe *o, const struct model *m, const char *cluster, const char *nodes)
{
	const struct cluster *c = model_find_cluster(m, cluster);
	uint64_t digest = c != NULL ? (uint64_t)c->version : 0;
	char name[NODE_NAME_MAX + 1];
	const char *p = nodes, *comma;
	size_t len;

	while (*p != '\0') {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len <= NODE_NAME_MAX) {
			memcpy(name, p, len);
			name[len] = '\0';
			digest += observe_node_seq(o, cluster, name);
		}
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return digest & INT64_MAX; /* a JSON integer */
}

/* Has the cluster a waiter follows moved past its version (or gone), or
 * have the observations it waits for changed? */
static int
wait_is_satisfied(const struct model *m, const struct wait *wt)
{
	const struct cluster *c;

	if (wt->observed != NULL)
		return observation_digest(wt->worker->server->observe, m, wt->cluster,
		                          wt->observed) != wt->observed_after;
	if (wt->cluster[0] == '\0')
		return 0;
	c = model_find_cluster(m, wt->cluster);
	return c == NULL || c->version > wt->after;
}

void
request_wait_for_change(struct request *r, const char *cluster, int64_t after, int64_t wait_ms,
                        request_handler then)
{
	const struct cluster *c = model_find_cluster(request_snapshot(r), cluster);

	if (c == NULL || c->version > after || wait_ms <= 0 ||
	    atomic_load(&r->server->is_stopping)) {
		then(r);
		return;
	}
	wait_add(r, cluster, after, wait_ms, then);
}

void
request_wait_for_observation(struct request *r, const char *cluster, const char *nodes,
                             uint64_t after, int64_t wait_ms, request_handler then)
{
	struct observe *o = r->server->observe;
	struct wait *wt;

	if (wait_ms <= 0 || atomic_load(&r->server->is_stopping) ||
	    observation_digest(o, request_snapshot(r), cluster, nodes) != after) {
		then(r);
		return;
	}
	wt = wait_add(r, cluster, 0, wait_ms, then);
	if ((wt->observed = strdup(nodes)) == NULL)
		abort();
	wt->observed_after = after;
	observe_watch(o, 1);
	/* a probe may have been answered between the check and the watch */
	if (observation_digest(o, request_snapshot(r), cluster, nodes) != after)
		waits_check(r->worker);
}

void
request_after(struct request *r, int64_t delay_ms, request_handler then)
{
	if (delay_ms <= 0) {
		then(r);
		return;
	}
	wait_add(r, "", 0, delay_ms, then);
}

/* Fires the waiters that are due: changed clusters, deadlines, or all of
 * them when the daemon stops. The due ones are moved to a list of their
 * own first, since answering one may dispose of another's request (which
 * unlinks its waiter from whatever list holds it). */
static void
waits_check(struct worker *w)
{
	const struct model *m = engine_snapshot(w->server->engine);
	int is_stopping = atomic_load(&w->server->is_stopping);
	int64_t now = time_now_ms();
	h2o_linklist_t due, *node, *next;

	h2o_linklist_init_anchor(&due);
	for (node = w->waiters.next; node != &w->waiters; node = next) {
		struct wait *wt = H2O_STRUCT_FROM_MEMBER(struct wait, link, node);
		next = node->next;
		if (is_stopping || wt->deadline <= now || wait_is_satisfied(m, wt)) {
			h2o_linklist_unlink(node);
			h2o_linklist_insert(&due, node);
		}
	}
	while (!h2o_linklist_is_empty(&due))
		wait_fire(H2O_STRUCT_FROM_MEMBER(struct wait, link, due.next));
}

void
request_waits_check(struct worker *w)
{
	waits_check(w);
}

static void
on_change_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, change_receiver, receiver);

	while (!h2o_linklist_is_empty(messages))
		h2o_linklist_unlink(messages->next);
	atomic_store(&w->is_change_pending, 0);
	waits_check(w);
}

/* Engine thread: tell every worker the model changed (coalesced). */
void
request_waits_wake(void *arg, const struct model *m)
{
	struct server *s = arg;
	int i;

	(void)m;
	for (i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		if (atomic_exchange(&w->is_change_pending, 1) == 0)
			h2o_multithread_send_message(&w->change_receiver, &w->change_message);
	}
}

/* --- requests ---------------------------------------------------------- */

/* a.b.c.d into buf (at least INET_ADDRSTRLEN bytes). inet_ntop formats
 * IPv4 with sprintf: a fifth of the probe's user-space instructions. */
static void
ipv4_format(const struct in_addr *a, char *buf)
{
	const unsigned char *b = (const unsigned char *)&a->s_addr;
	int i;

	for (i = 0; i < 4; i++) {
		if (b[i] >= 100)
			*buf++ = (char)('0' + b[i] / 100);
		if (b[i] >= 10)
			*buf++ = (char)('0' + b[i] / 10 % 10);
		*buf++ = (char)('0' + b[i] % 10);
		*buf++ = i < 3 ? '.' : '\0';
	}
}

static void
peer_address(h2o_req_t *req, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);

	buf[0] = '\0';
	if (len == 0)
		return;
	if (ss.ss_family == AF_INET && size >= INET_ADDRSTRLEN)
		ipv4_format(&((struct sockaddr_in *)&ss)->sin_addr, buf);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, size);
}

struct request *
request_keep(const struct request *on_stack)
{
	struct request *r = h2o_mem_alloc_shared(&on_stack->req->pool, sizeof(*r), request_dispose);

	*r = *on_stack;
	return r;
}

int
request_is_local(const struct request *r)
{
	struct sockaddr_storage ss;
	h2o_conn_t *conn = r->req->conn;

	if (conn->callbacks->get_sockname == NULL ||
	    conn->callbacks->get_sockname(conn, (struct sockaddr *)&ss) == 0)
		return 0;
	return sockaddr_is_loopback((struct sockaddr *)&ss);
}

int
sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

void
request_begin(struct request *r, h2o_req_t *req, struct worker *w)
{
	*r = (struct request){.req = req, .worker = w, .server = w->server};
	r->path = req->path_normalized;
	if (req->query_at != SIZE_MAX)
		r->query = h2o_iovec_init(req->path.base + req->query_at + 1,
		                          req->path.len - req->query_at - 1);
	r->server_default_node = w->server->opts.default_node;
	peer_address(req, r->address, sizeof(r->address));
}

void
request_worker_init(struct worker *w)
{
	h2o_linklist_init_anchor(&w->waiters);
	h2o_multithread_register_receiver(w->ctx.queue, &w->done_receiver, on_jobs_done);
	h2o_multithread_register_receiver(w->ctx.queue, &w->change_receiver, on_change_message);
}
