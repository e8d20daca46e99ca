/*
 * server.c - HTTP workers on libh2o-evloop, and the hand-off of work
 * between a worker's event loop and the engine thread.
 *
 * Each worker is a thread with its own evloop and h2o context, accepting
 * on its own dup of every listening socket. Every request starts as a
 * struct request on the worker's stack and goes to the router
 * (router.c), which owns the path table: the probe is answered from the
 * stack (no allocation outside h2o's own request pool, no lock); any other
 * request is first copied into the pool (request_keep).
 *
 * Who owns what:
 *
 *   struct request   h2o's request pool; request_dispose runs when the
 *                    pool goes (the client went away or was answered).
 *   struct pending   this file's, malloc'd for anything that must outlive
 *                    on_req (an engine job, a long poll, a delayed 401).
 *                    r->pending and pd->r point at each other; disposal
 *                    of the request clears pd->r, so the continuation
 *                    never runs for a gone client. A wait's pending is
 *                    freed with the request or when it fires; a job's when
 *                    the job comes back (the engine still holds it).
 *   struct engine_job the submitter's (engine.h), allocated here by
 *                    request_job_new with the surface's data behind it;
 *                    job->done and job->done_arg (the pending) are set by
 *                    request_job_submit and are this file's, nothing else
 *                    in the job is. Released and freed in on_jobs_done,
 *                    after the continuation, whether or not it ran.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../agent/agent.h"
#include "../observe/observe.h"
#include "../util/log.h"
#include "../util/xalloc.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "router.h"
#include "scrape.h"
#include "server_internal.h"

#define TICK_MS 250
/* Bounds how late a worker sees is_stopping. Snapshot reclamation needs
 * no wake-up: workers wait offline (worker_main). */
#define LOOP_MAX_WAIT_MS 1000
#define STOP_GRACE_MS 10000
#define SWEEP_EVERY_MS 10000
#define ACCEPT_PAUSE_MS 100    /* listeners unpolled after running out of fds */
#define ACCEPT_EVICT_MAX 16    /* idle connections closed per accept event */
#define FD_WARN_EVERY_MS 10000 /* one warning per worker at most this often */

struct pending {
	struct request *r; /* NULL once the client went away */
	struct worker *worker;
	/* an engine job */
	struct engine_job *job;
	request_job_handler then_job;
	h2o_multithread_message_t message;
	/* a wait (long poll or delay) */
	h2o_linklist_t link;
	char cluster[NODE_NAME_MAX + 1]; /* "" for a plain delay */
	int64_t after;
	char *observed;          /* nodes "a,b" whose observations are waited
	                            for (malloc'd), NULL for other waits */
	uint64_t observed_after; /* ... until their digest is not this */
	int64_t deadline;        /* ms */
	request_handler then;
};

static __thread struct worker *current_worker;

static void on_accept(h2o_socket_t *listener, const char *err);
static void waiters_check(struct worker *w);

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

/* A wait is over (answered, or its client went): one long poll fewer
 * when it was one (a plain delay has no cluster). */
static void
wait_forget(struct pending *pd)
{
	if (pd->cluster[0] != '\0')
		atomic_fetch_sub(&pd->worker->server->n_long_polls, 1);
}

static void
pending_unwatch(struct pending *pd)
{
	if (pd->observed == NULL)
		return;
	observe_watch(pd->worker->server->observe, -1);
	free(pd->observed);
	pd->observed = NULL;
}

static void
request_dispose(void *p)
{
	struct request *r = p;
	struct pending *pd = r->pending;

	r->is_gone = 1;
	if (pd == NULL)
		return;
	pd->r = NULL;
	if (pd->then != NULL) { /* a wait: nothing else refers to it */
		h2o_linklist_unlink(&pd->link);
		wait_forget(pd);
		pd->worker->n_pending--;
		pending_unwatch(pd);
		free(pd);
	}
	/* a job: freed when the engine hands it back */
}

static struct pending *
pending_new(struct request *r)
{
	struct pending *pd = xcalloc(1, sizeof(*pd));

	pd->r = r;
	pd->worker = r->worker;
	r->pending = pd;
	r->worker->n_pending++;
	return pd;
}

static void
pending_finish(struct pending *pd)
{
	if (pd->r != NULL)
		pd->r->pending = NULL;
	pd->worker->n_pending--;
	pending_unwatch(pd);
	free(pd);
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
	struct pending *pd = job->done_arg;

	h2o_multithread_send_message(&pd->worker->done_receiver, &pd->message);
}

void
request_job_submit(struct request *r, struct engine_job *job, request_job_handler then)
{
	struct pending *pd = pending_new(r);

	pd->job = job;
	pd->then_job = then;
	job->done = job_done;
	job->done_arg = pd;
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
		struct pending *pd = H2O_STRUCT_FROM_MEMBER(struct pending, message, m);
		struct request *r = pd->r;
		struct engine_job *job = pd->job;
		request_job_handler then = pd->then_job;

		h2o_linklist_unlink(&m->link);
		pending_finish(pd);
		if (r != NULL)
			then(r, job);
		engine_job_release(job);
		free(job);
	}
}

static void
wait_add(struct request *r, const char *cluster, int64_t after, int64_t wait_ms,
         request_handler then)
{
	struct pending *pd = pending_new(r);

	snprintf(pd->cluster, sizeof(pd->cluster), "%s", cluster);
	pd->after = after;
	pd->deadline = time_now_ms() + wait_ms;
	pd->then = then;
	if (pd->cluster[0] != '\0')
		atomic_fetch_add(&r->server->n_long_polls, 1);
	h2o_linklist_insert(&r->worker->waiters, &pd->link);
}

static void
wait_fire(struct pending *pd)
{
	struct request *r = pd->r;
	request_handler then = pd->then;

	h2o_linklist_unlink(&pd->link);
	wait_forget(pd);
	pending_finish(pd);
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
wait_is_satisfied(const struct model *m, const struct pending *pd)
{
	const struct cluster *c;

	if (pd->observed != NULL)
		return observation_digest(pd->worker->server->observe, m, pd->cluster,
		                          pd->observed) != pd->observed_after;
	if (pd->cluster[0] == '\0')
		return 0;
	c = model_find_cluster(m, pd->cluster);
	return c == NULL || c->version > pd->after;
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
	struct pending *pd;

	if (wait_ms <= 0 || atomic_load(&r->server->is_stopping) ||
	    observation_digest(o, request_snapshot(r), cluster, nodes) != after) {
		then(r);
		return;
	}
	wait_add(r, cluster, 0, wait_ms, then);
	pd = r->pending;
	if ((pd->observed = strdup(nodes)) == NULL)
		abort();
	pd->observed_after = after;
	observe_watch(o, 1);
	/* a probe may have been answered between the check and the watch */
	if (observation_digest(o, request_snapshot(r), cluster, nodes) != after)
		waiters_check(r->worker);
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
waiters_check(struct worker *w)
{
	const struct model *m = engine_snapshot(w->server->engine);
	int is_stopping = atomic_load(&w->server->is_stopping);
	int64_t now = time_now_ms();
	h2o_linklist_t due, *node, *next;

	h2o_linklist_init_anchor(&due);
	for (node = w->waiters.next; node != &w->waiters; node = next) {
		struct pending *pd = H2O_STRUCT_FROM_MEMBER(struct pending, link, node);
		next = node->next;
		if (is_stopping || pd->deadline <= now || wait_is_satisfied(m, pd)) {
			h2o_linklist_unlink(node);
			h2o_linklist_insert(&due, node);
		}
	}
	while (!h2o_linklist_is_empty(&due))
		wait_fire(H2O_STRUCT_FROM_MEMBER(struct pending, link, due.next));
}

static void
on_change_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, change_receiver, receiver);

	while (!h2o_linklist_is_empty(messages))
		h2o_linklist_unlink(messages->next);
	atomic_store(&w->is_change_pending, 0);
	waiters_check(w);
}

/* Engine thread: tell every worker the model changed (coalesced). */
static void
broadcast_change(void *arg, const struct model *m)
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

/* Any thread, after a probe was answered while someone waits for one. */
static void
on_observed(void *arg)
{
	broadcast_change(arg, NULL);
}

static void
on_tick(h2o_timeout_entry_t *entry)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, tick, entry);

	waiters_check(w);
	if (w->id == 0 && time_now_ms() >= w->next_sweep_at) {
		observe_sweep(w->server->observe, time_now_ms());
		w->next_sweep_at = time_now_ms() + SWEEP_EVERY_MS;
	}
	h2o_timeout_link(w->ctx.loop, &w->tick_timeout, &w->tick);
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

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct worker *w = current_worker;
	struct request r = {.req = req, .worker = w, .server = w->server};

	(void)self;
	r.path = req->path_normalized;
	if (req->query_at != SIZE_MAX)
		r.query = h2o_iovec_init(req->path.base + req->query_at + 1,
		                         req->path.len - req->query_at - 1);
	r.server_default_node = w->server->opts.default_node;
	peer_address(req, r.address, sizeof(r.address));
	router_dispatch(&r);
	return 0;
}

/* The --metrics-listen worker's only handler (h2o answers 404 for any
 * other path: it is registered at /metrics alone). */
static int
on_metrics_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct worker *w = current_worker;
	struct request r = {.req = req, .worker = w, .server = w->server};

	(void)self;
	r.path = req->path_normalized;
	peer_address(req, r.address, sizeof(r.address));
	if (!h2o_memis(r.path.base, r.path.len, H2O_STRLIT("/metrics")))
		return -1; /* /metrics/x: not ours */
	scrape_handle_dedicated(request_keep(&r));
	return 0;
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

/* --- workers ---------------------------------------------------------- */

/* Running out of descriptors. accept() fails with EMFILE while the
 * listener stays readable, so a loop that only retried would spin and
 * never serve the connection waiting (a load balancer's probe, most
 * likely). Two things make room instead, the way nginx and h2o's own
 * server do:
 *
 *   - the longest-idle connection of this worker is closed: one waiting
 *     for its next request (HTTP/1 keep-alive, or a request head still
 *     arriving), an HTTP/2 connection with no open stream, or a TLS
 *     handshake not finished. h2o has no public list of connections, but
 *     it keeps each of those waits in one of the context's timeout lists,
 *     in the order they began; the heads of the three lists are therefore
 *     the oldest idle connections, and firing a head's timeout now closes
 *     it through h2o's own path (as if it had timed out), never one whose
 *     request is being answered. A connection that became idle in this
 *     very turn of the loop is spared: it may be one just accepted whose
 *     request is waiting, unread, in the kernel;
 *   - when nothing idle is left (or after ACCEPT_EVICT_MAX closes, since
 *     TLS and HTTP/2 connections give their descriptor back only after a
 *     last write), the listeners are not polled for ACCEPT_PAUSE_MS.
 */
static h2o_timeout_t *
oldest_idle_list(struct worker *w)
{
	h2o_timeout_t *lists[] = {&w->ctx.http1.req_timeout, &w->ctx.http2.idle_timeout,
	                          &w->ctx.handshake_timeout};
	h2o_timeout_t *oldest = NULL;
	uint64_t oldest_at = h2o_now(w->ctx.loop);
	size_t i;

	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		h2o_timeout_entry_t *head;
		if (h2o_linklist_is_empty(&lists[i]->_entries))
			continue;
		head = H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, lists[i]->_entries.next);
		if (head->registered_at < oldest_at) {
			oldest = lists[i];
			oldest_at = head->registered_at;
		}
	}
	return oldest;
}

/* Closes the worker's longest-idle connection; 0 when there is none.
 * (void * for the agent listener, which shares worker 0's loop.) */
static int
close_oldest_idle(void *arg)
{
	struct worker *w = arg;
	h2o_timeout_t *list = oldest_idle_list(w);
	h2o_timeout_entry_t *entry;

	if (list == NULL)
		return 0;
	entry = H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, list->_entries.next);
	/* what h2o_timeout_run does for an expired entry, minus running the
	 * loop's pending callbacks from inside ours */
	h2o_timeout_unlink(entry);
	entry->cb(entry);
	return 1;
}

static void
listeners_set_polling(struct worker *w, int is_polling)
{
	size_t i;

	for (i = 0; i < w->n_listeners; i++) {
		if (w->listeners[i] == NULL)
			continue;
		if (is_polling && !h2o_socket_is_reading(w->listeners[i]))
			h2o_socket_read_start(w->listeners[i], on_accept);
		else if (!is_polling && h2o_socket_is_reading(w->listeners[i]))
			h2o_socket_read_stop(w->listeners[i]);
	}
}

static void
on_accept_resume(h2o_timeout_entry_t *entry)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, accept_resume, entry);

	listeners_set_polling(w, 1);
}

static void
accept_pause(struct worker *w)
{
	listeners_set_polling(w, 0);
	if (!h2o_timeout_is_linked(&w->accept_resume))
		h2o_timeout_link(w->ctx.loop, &w->accept_pause_timeout, &w->accept_resume);
}

/* Once per FD_WARN_EVERY_MS per worker: the operator should raise the
 * limit or find who holds the connections. */
static void
fd_exhaustion_warn(struct worker *w, int error)
{
	char limit[24];
	struct rlimit rl;

	if (w->fd_warned_at != 0 && time_now_ms() - w->fd_warned_at < FD_WARN_EVERY_MS)
		return;
	w->fd_warned_at = time_now_ms();
	snprintf(limit, sizeof(limit), "%llu",
	         getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (unsigned long long)rl.rlim_cur : 0ULL);
	log_kv(LOG_WARN,
	       "out of file descriptors: closing the longest-idle connections, pausing accept "
	       "when none is idle",
	       "error", strerror(error), "nofile", limit, NULL);
}

/* --- TLS context ------------------------------------------------------ */

void
server_set_ssl_ctx(struct server *s, SSL_CTX *ctx)
{
	SSL_CTX *old;

	pthread_mutex_lock(&s->ssl_lock);
	old = s->ssl_ctx;
	s->ssl_ctx = ctx;
	atomic_fetch_add(&s->ssl_generation, 1);
	pthread_mutex_unlock(&s->ssl_lock);
	if (old != NULL)
		SSL_CTX_free(old); /* workers and connections hold their own */
}

/* Worker thread: swaps the worker's reference for one to the server's
 * current context. The reference is taken under the lock, so the context
 * cannot be freed between reading the pointer and taking it. */
static void
worker_take_ssl_ctx(struct worker *w)
{
	struct server *s = w->server;
	SSL_CTX *ctx;

	pthread_mutex_lock(&s->ssl_lock);
	ctx = s->ssl_ctx;
	if (ctx != NULL)
		SSL_CTX_up_ref(ctx);
	w->ssl_generation = atomic_load(&s->ssl_generation);
	pthread_mutex_unlock(&s->ssl_lock);
	if (w->accept_ctx.ssl_ctx != NULL)
		SSL_CTX_free(w->accept_ctx.ssl_ctx);
	w->accept_ctx.ssl_ctx = ctx;
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
	struct worker *w = listener->data;
	h2o_socket_t *sock;
	int n_closed = 0;

	if (err != NULL)
		return;
	while ((sock = h2o_evloop_socket_accept(listener)) == NULL) {
		int error = errno; /* h2o returns accept4's failure as is */
		if (error != EMFILE && error != ENFILE && error != ENOBUFS && error != ENOMEM)
			return; /* EAGAIN (another worker took it), ECONNABORTED, ... */
		fd_exhaustion_warn(w, error);
		if (n_closed == ACCEPT_EVICT_MAX || !close_oldest_idle(w)) {
			accept_pause(w);
			return;
		}
		n_closed++;
	}
	if (!w->is_metrics && atomic_load(&w->server->ssl_generation) != w->ssl_generation)
		worker_take_ssl_ctx(w);
	h2o_accept(&w->accept_ctx, sock);
}

static void
listeners_close(struct worker *w)
{
	size_t i;

	if (h2o_timeout_is_linked(&w->accept_resume))
		h2o_timeout_unlink(&w->accept_resume);
	for (i = 0; i < w->n_listeners; i++) {
		if (w->listeners[i] == NULL)
			continue;
		h2o_socket_read_stop(w->listeners[i]);
		h2o_socket_close(w->listeners[i]);
		w->listeners[i] = NULL;
	}
	agent_stop(w->agent);
	w->agent = NULL;
}

/* Runs on the worker's own thread: h2o keeps per-thread buffer pools,
 * so every socket of a loop must be created by the thread that runs it. */
static int
worker_init(struct server *s, struct worker *w, struct error *err)
{
	h2o_globalconf_t *config = w->is_metrics ? &s->metrics_config : &s->config;
	const struct listen_addr *listens =
	    w->is_metrics ? &s->opts.metrics_listen : s->opts.listens;
	size_t i;

	h2o_context_init(&w->ctx, h2o_evloop_create(), config);
	w->accept_ctx.ctx = &w->ctx;
	w->accept_ctx.hosts = config->hosts;
	if (!w->is_metrics)
		worker_take_ssl_ctx(w);
	h2o_linklist_init_anchor(&w->waiters);
	h2o_timeout_init(w->ctx.loop, &w->accept_pause_timeout, ACCEPT_PAUSE_MS);
	w->accept_resume.cb = on_accept_resume;
	h2o_multithread_register_receiver(w->ctx.queue, &w->done_receiver, on_jobs_done);
	h2o_multithread_register_receiver(w->ctx.queue, &w->change_receiver, on_change_message);
	h2o_timeout_init(w->ctx.loop, &w->tick_timeout, TICK_MS);
	w->tick.cb = on_tick;
	h2o_timeout_link(w->ctx.loop, &w->tick_timeout, &w->tick);
	w->reader_id = engine_reader_register(s->engine);
	w->n_listeners = w->is_metrics ? 1 : s->opts.n_listens;
	w->listeners = xcalloc(w->n_listeners, sizeof(*w->listeners));
	for (i = 0; i < w->n_listeners; i++) {
		int fd = dup(listens[i].fd);
		if (fd == -1)
			return error_set(err, 500, "cannot share the listening socket: %s",
			                 strerror(errno));
		w->listeners[i] =
		    h2o_evloop_socket_create(w->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
		w->listeners[i]->data = w;
		h2o_socket_read_start(w->listeners[i], on_accept);
	}
	if (w->id == 0 && s->opts.agent_listen.text[0] != '\0') {
		int fd = dup(s->opts.agent_listen.fd);
		if (fd == -1)
			return error_set(err, 500, "cannot share the agent socket: %s",
			                 strerror(errno));
		w->agent = agent_start(w->ctx.loop, fd, s->engine, s->observe, s->opts.default_node,
		                       close_oldest_idle, w);
	}
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct server *s = w->server;
	int64_t stop_deadline = 0;

	current_worker = w;
	w->init_rc = worker_init(s, w, &w->init_err);
	pthread_barrier_wait(&s->ready);
	if (w->init_rc != 0 || atomic_load(&s->is_stopping))
		return NULL;
	while (1) {
		/* Offline while the loop waits, so that an idle worker holds no
		 * old snapshot up; the first engine_snapshot of an iteration
		 * brings it back online until here. */
		engine_reader_offline(s->engine, w->reader_id);
		h2o_evloop_run(w->ctx.loop, LOOP_MAX_WAIT_MS);
		if (!atomic_load(&s->is_stopping))
			continue;
		if (stop_deadline == 0) {
			stop_deadline = time_now_ms() + STOP_GRACE_MS;
			listeners_close(w);
			waiters_check(w);
		}
		if (w->n_pending == 0 || time_now_ms() > stop_deadline)
			break;
	}
	engine_reader_unregister(s->engine, w->reader_id);
	return NULL;
}

int
server_start(struct server *s, struct error *err)
{
	h2o_hostconf_t *host;
	h2o_pathconf_t *path;
	h2o_handler_t *handler;
	int i;

	h2o_config_init(&s->config);
	/* Bodies over BODY_MAX get a JSON 413 from request_json_body; h2o's own
	 * (plain text) 413 only catches the absurd. */
	s->config.max_request_entity_size = REQUEST_ENTITY_MAX;
	s->config.http1.req_timeout = 10000;
	/* No Server header: it only tells scanners the version, and h2o
	 * formats it with sprintf on every response (a sixth of the
	 * probe's user-space instructions). */
	s->config.server_name = h2o_iovec_init(H2O_STRLIT(""));
	s->config.http2.idle_timeout = 10000;
	host = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	path = h2o_config_register_path(host, "/", 0);
	handler = h2o_create_handler(path, sizeof(*handler));
	handler->on_req = on_req;
	if (s->opts.metrics_listen.text[0] != '\0') {
		h2o_config_init(&s->metrics_config);
		s->metrics_config.server_name = h2o_iovec_init(H2O_STRLIT(""));
		s->metrics_config.http1.req_timeout = 10000;
		host = h2o_config_register_host(&s->metrics_config,
		                                h2o_iovec_init(H2O_STRLIT("default")), 65535);
		path = h2o_config_register_path(host, "/metrics", 0);
		handler = h2o_create_handler(path, sizeof(*handler));
		handler->on_req = on_metrics_req;
		s->n_workers++; /* the last worker */
	}

	s->workers = xcalloc((size_t)s->n_workers, sizeof(*s->workers));
	observe_set_notify(s->observe, on_observed, s);
	pthread_barrier_init(&s->ready, NULL, (unsigned)s->n_workers + 1);
	for (i = 0; i < s->n_workers; i++) {
		s->workers[i].id = i;
		s->workers[i].server = s;
		s->workers[i].is_metrics = i == s->opts.threads;
		if (pthread_create(&s->workers[i].thread, NULL, worker_main, &s->workers[i]) != 0)
			abort(); /* the barrier would wait forever */
	}
	/* Destroyed in server_stop: a worker may still be inside
	 * pthread_barrier_wait after the main thread returned from it. */
	pthread_barrier_wait(&s->ready);
	for (i = 0; i < s->n_workers; i++) {
		if (s->workers[i].init_rc != 0) {
			*err = s->workers[i].init_err;
			return -1;
		}
	}
	engine_on_change(s->engine, broadcast_change, s);
	return 0;
}

void
server_stop(struct server *s)
{
	int i;

	atomic_store(&s->is_stopping, 1);
	for (i = 0; i < s->n_workers; i++)
		pthread_join(s->workers[i].thread, NULL);
	engine_on_change(s->engine, NULL, NULL);
	pthread_barrier_destroy(&s->ready);
}

void
server_free(struct server *s)
{
	int i;

	for (i = 0; i < s->n_workers; i++) {
		free(s->workers[i].listeners);
		if (s->workers[i].accept_ctx.ssl_ctx != NULL)
			SSL_CTX_free(s->workers[i].accept_ctx.ssl_ctx);
	}
	free(s->workers);
	s->workers = NULL;
}
