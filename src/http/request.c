/*
 * request.c - what a surface asks of its request (request.h): its headers
 * and query, the snapshot and the daemon's state it may read, and the
 * work that outlives the handler: a job handed to the engine thread and
 * back, a long poll, a delay.
 *
 * The bottom room of src/http: it includes only request.h (with http.h's
 * shared declarations) and server_internal.h (the worker a request runs
 * on), never the router, a surface or the server's accept loop. server.c
 * registers its hooks (request_jobs_done, request_change_message) on
 * each worker's loop and hands the engine and observe their callbacks
 * (request_broadcast_change, request_observed).
 *
 * Who owns what:
 *
 *   struct request      h2o's request pool; request_dispose runs when the
 *                       pool goes (the client went away or was answered).
 *   struct pending_job  this file's, for a job handed to the engine: r->job
 *                       and pj->r point at each other; the request's
 *                       disposal clears pj->r, so the continuation never
 *                       runs for a gone client; freed when the engine hands
 *                       the job back (the engine still holds it until then).
 *   struct pending_wait this file's, for a long poll or a delay, on its
 *                       worker's waiters list: freed when it fires or with
 *                       the request, whichever comes first.
 *   struct engine_job   the submitter's (engine.h), allocated here by
 *                       request_job_new with the surface's data behind it;
 *                       job->done and job->done_arg (the pending_job) are
 *                       set by request_job_submit and are this file's,
 *                       nothing else in the job is. Released and freed in
 *                       request_jobs_done, after the continuation, whether
 *                       or not it ran.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "../observe/observe.h"
#include "../util/timefmt.h"
#include "../util/url.h"
#include "../util/xalloc.h"
#include "request.h"
#include "server_internal.h"

/* An engine job under way for a request. */
struct pending_job {
	struct request *r; /* NULL once the client went away */
	struct worker *worker;
	struct engine_job *job;
	request_job_handler then;
	h2o_multithread_message_t message; /* the engine's hand-back */
};

/* A long poll or a delay, on its worker's waiters list. */
struct pending_wait {
	struct request *r; /* never NULL: freed with the request */
	struct worker *worker;
	h2o_linklist_t link;
	char cluster[NODE_NAME_MAX + 1]; /* "" for a plain delay */
	int64_t after;
	char *observed;          /* nodes "a,b" whose observations are waited
	                            for (malloc'd), NULL for other waits */
	uint64_t observed_after; /* ... until their digest is not this */
	request_due_fn is_due;   /* request_wait_until's condition, or NULL */
	int64_t deadline;        /* ms */
	int gone_fd;             /* its HTTP/1 client's descriptor on the
	                            worker's gone_epfd, or -1 */
	request_handler then;
};

/* --- what a surface asks of its request -------------------------------- */

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

char *
request_idempotency_key(const struct request *r)
{
	h2o_iovec_t v = request_header_by_name(r, "idempotency-key");

	if (v.base == NULL)
		return NULL;
	return xstrndup(v.base, v.len > COMMAND_KEY_MAX + 1 ? COMMAND_KEY_MAX + 1 : v.len);
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
	int found = url_form_value(r->query.base, r->query.len, name, &value);

	if (found == 1 && strlen(value) >= size)
		found = -1;
	if (found == 1)
		memcpy(buf, value, strlen(value) + 1);
	free(value);
	return found;
}

/* --- pending work ---------------------------------------------------- */

/* r's descriptor when its client speaks HTTP/1 to us, else -1 (HTTP/2
 * cancels a stream by itself). */
static int
http1_fd(const struct request *r)
{
	h2o_socket_t *sock;

	if (r->req->version >= 0x200 || r->req->conn->callbacks->get_socket == NULL ||
	    (sock = r->req->conn->callbacks->get_socket(r->req->conn)) == NULL)
		return -1;
	return h2o_socket_get_fd(sock);
}

/* A long poll's client is watched for its leaving on the worker's
 * gone_epfd (request_clients_gone): h2o reads nothing from an HTTP/1
 * connection while its request is answered, so a client that closed it
 * would hold its descriptor and its place until the wait ends. A
 * connection is added once, edge-triggered, and stays in the set until
 * it is closed (which takes it out); its slot says which wait, if any,
 * it holds now. No system call per poll but the first on a connection.
 * An edge that comes while the connection holds no poll (a client that
 * sends its next poll and shuts its side down at once, seen before the
 * poll is held) marks the slot: that connection's next poll is over at
 * once. Returns 1 when the client has left already. */
static int
wait_watch_client(struct pending_wait *pd)
{
	struct worker *w = pd->worker;
	uint64_t conn_id = pd->r->req->conn->id;
	int fd = http1_fd(pd->r);
	struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.fd = fd};
	struct gone_slot *slot;

	pd->gone_fd = -1;
	if (pd->cluster[0] == '\0' || w->gone_epfd < 0 || fd < 0)
		return 0;
	worker_fd_slots_grow((void **)&w->gone_slots, &w->n_gone_slots, sizeof(*w->gone_slots), fd);
	slot = &w->gone_slots[fd];
	if (slot->conn_id != conn_id) { /* a connection new to this descriptor */
		if (epoll_ctl(w->gone_epfd, EPOLL_CTL_ADD, fd, &ev) != 0 &&
		    (errno != EEXIST || epoll_ctl(w->gone_epfd, EPOLL_CTL_MOD, fd, &ev) != 0))
			return 0;
		slot->conn_id = conn_id;
		slot->has_left = 0;
	}
	if (slot->has_left)
		return 1;
	slot->pd = pd;
	pd->gone_fd = fd;
	return 0;
}

static void
wait_unwatch_client(struct pending_wait *pd)
{
	if (pd->gone_fd >= 0)
		pd->worker->gone_slots[pd->gone_fd].pd = NULL;
	pd->gone_fd = -1;
}

/* A wait is over (answered, or its client went): one long poll fewer
 * when it was one (a plain delay has no cluster). */
static void
wait_forget(struct pending_wait *pd)
{
	wait_unwatch_client(pd);
	atomic_fetch_sub(&pd->worker->n_waiters, 1);
	if (pd->cluster[0] != '\0')
		atomic_fetch_sub(&pd->worker->server->n_long_polls, 1);
}

static void
wait_unwatch(struct pending_wait *pd)
{
	if (pd->observed == NULL)
		return;
	observe_watch(pd->worker->server->observe, -1);
	free(pd->observed);
	pd->observed = NULL;
}

/* The pool's destructor of a kept request: the client went away or was
 * answered. A wait is freed here (nothing else refers to it); a job only
 * forgets the request, and is freed when the engine hands it back. */
static void
request_dispose(void *p)
{
	struct request *r = p;
	struct pending_wait *wait = r->wait;

	r->is_gone = 1;
	if (r->job != NULL)
		r->job->r = NULL;
	if (wait != NULL) {
		h2o_linklist_unlink(&wait->link);
		wait_forget(wait);
		wait->worker->n_pending--;
		wait_unwatch(wait);
		free(wait);
	}
}

struct engine_job *
request_job_new(struct request *r, engine_job_fn fn, size_t data_size)
{
	struct engine_job *job = xcalloc(1, sizeof(*job) + data_size);

	job->run = fn;
	job->data = job + 1;
	snprintf(job->who_name, sizeof(job->who_name), "%s", r->who);
	snprintf(job->who_address, sizeof(job->who_address), "%s", r->address);
	snprintf(job->who_context, sizeof(job->who_context), "%s",
	         r->audit_context != NULL ? r->audit_context : "");
	return job;
}

/* Engine thread: hand the job back to the worker that submitted it. */
static void
job_done(struct engine_job *job)
{
	struct pending_job *pj = job->done_arg;

	h2o_multithread_send_message(&pj->worker->done_receiver, &pj->message);
}

static void
submit_to_engine(void *engine, struct engine_job *job)
{
	engine_submit(engine, job);
}

void
request_job_submit(struct request *r, struct engine_job *job, request_job_handler then)
{
	request_job_submit_to(r, job, then, submit_to_engine, r->server->engine);
}

void
request_job_submit_to(struct request *r, struct engine_job *job, request_job_handler then,
                      void (*submit)(void *ctx, struct engine_job *job), void *ctx)
{
	struct pending_job *pj = xcalloc(1, sizeof(*pj));

	pj->r = r;
	pj->worker = r->worker;
	pj->job = job;
	pj->then = then;
	r->job = pj;
	r->worker->n_pending++;
	job->done = job_done;
	job->done_arg = pj;
	submit(ctx, job);
}

void
request_jobs_done(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
	(void)receiver;
	while (!h2o_linklist_is_empty(messages)) {
		h2o_multithread_message_t *m =
		    H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
		struct pending_job *pj = H2O_STRUCT_FROM_MEMBER(struct pending_job, message, m);
		struct request *r = pj->r;
		struct engine_job *job = pj->job;
		request_job_handler then = pj->then;

		h2o_linklist_unlink(&m->link);
		if (r != NULL)
			r->job = NULL;
		pj->worker->n_pending--;
		free(pj);
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
	struct pending_wait *pd = xcalloc(1, sizeof(*pd));

	pd->r = r;
	pd->worker = r->worker;
	r->wait = pd;
	r->worker->n_pending++;
	snprintf(pd->cluster, sizeof(pd->cluster), "%s", cluster);
	pd->after = after;
	pd->deadline = time_now_ms() + wait_ms;
	pd->then = then;
	if (pd->cluster[0] != '\0')
		atomic_fetch_add(&r->server->n_long_polls, 1);
	if (wait_watch_client(pd))
		pd->deadline = time_now_ms(); /* its client has left: over at the next tick */
	h2o_linklist_insert(&r->worker->waiters, &pd->link);
	/* Counted before the caller checks the current model again: a
	 * change published meanwhile either finds the count (its broadcast
	 * wakes this worker) or is seen by that check. */
	atomic_fetch_add(&r->worker->n_waiters, 1);
	server_tick_arm(r->worker);
}

static void
wait_fire(struct pending_wait *pd)
{
	struct request *r = pd->r;
	request_handler then = pd->then;

	h2o_linklist_unlink(&pd->link);
	wait_forget(pd);
	r->wait = NULL;
	pd->worker->n_pending--;
	wait_unwatch(pd);
	free(pd);
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
wait_is_satisfied(const struct model *m, const struct pending_wait *pd)
{
	const struct cluster *c;

	if (pd->is_due != NULL)
		return pd->is_due(pd->r);
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
	c = model_find_cluster(engine_snapshot(r->server->engine), cluster);
	if (c == NULL || c->version > after) /* published since the check */
		request_waiters_check(r->worker);
}

void
request_wait_for_observation(struct request *r, const char *cluster, const char *nodes,
                             uint64_t after, int64_t wait_ms, request_handler then)
{
	struct observe *o = r->server->observe;
	struct pending_wait *pd;

	if (wait_ms <= 0 || atomic_load(&r->server->is_stopping) ||
	    observation_digest(o, request_snapshot(r), cluster, nodes) != after) {
		then(r);
		return;
	}
	wait_add(r, cluster, 0, wait_ms, then);
	pd = r->wait;
	if ((pd->observed = strdup(nodes)) == NULL)
		abort();
	pd->observed_after = after;
	observe_watch(o, 1);
	/* a probe may have been answered between the check and the watch */
	if (observation_digest(o, request_snapshot(r), cluster, nodes) != after)
		request_waiters_check(r->worker);
}

int
request_client_is_gone(const struct request *r)
{
	struct pollfd p = {.fd = http1_fd(r), .events = POLLRDHUP};

	return p.fd >= 0 && poll(&p, 1, 0) == 1 &&
	       (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

int
request_is_stopping(const struct request *r)
{
	return atomic_load(&r->server->is_stopping);
}

void
request_wait_until(struct request *r, request_due_fn is_due, int64_t wait_ms, request_handler then)
{
	if (wait_ms <= 0 || atomic_load(&r->server->is_stopping) || is_due(r)) {
		then(r);
		return;
	}
	wait_add(r, "", 0, wait_ms, then);
	r->wait->is_due = is_due;
	if (is_due(r)) /* published since the check */
		request_waiters_check(r->worker);
}

/* A read of the other daemons' reports was done since r began waiting. */
static int
remote_read_is_done(struct request *r)
{
	return observe_remote_reads(r->server->observe) != r->remote_reads;
}

/* After asking (is_ready: the answer), waits for the next read or goes
 * on (request_remote_ready). */
static int
remote_wait(struct request *r, int is_ready, int64_t now, request_handler again)
{
	if (is_ready || r->remote_wait_until < 0) /* < 0: gave up before */
		return 1;
	if (r->remote_wait_until == 0)
		r->remote_wait_until = now + REQUEST_REMOTE_WAIT_MS;
	if (now >= r->remote_wait_until || atomic_load(&r->server->is_stopping)) {
		r->remote_wait_until = -1;
		return 1;
	}
	request_wait_until(r, remote_read_is_done, r->remote_wait_until - now, again);
	return 0;
}

int
request_remote_ready(struct request *r, const char *cluster, const char *node,
                     request_handler again)
{
	int64_t now = time_now_ms();

	/* reads counted first: a read done after the ask below wakes r */
	r->remote_reads = observe_remote_reads(r->server->observe);
	return remote_wait(r, observe_remote_ready(r->server->observe, cluster, node, now), now,
	                   again);
}

int
request_remote_ready_nodes(struct request *r, const char *cluster, const char *nodes,
                           request_handler again)
{
	char name[NODE_NAME_MAX + 1];
	const char *p = nodes, *comma;
	int64_t now = time_now_ms();
	int is_ready = 1;
	size_t len;

	r->remote_reads = observe_remote_reads(r->server->observe);
	for (; *p != '\0'; p = comma + 1) { /* every one asked: one read for all */
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len <= NODE_NAME_MAX) {
			memcpy(name, p, len);
			name[len] = '\0';
			is_ready &= observe_remote_ready(r->server->observe, cluster, name, now);
		}
		if (comma == NULL)
			break;
	}
	return remote_wait(r, is_ready, now, again);
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
void
request_waiters_check(struct worker *w)
{
	const struct model *m = engine_snapshot(w->server->engine);
	int is_stopping = atomic_load(&w->server->is_stopping);
	int64_t now = time_now_ms();
	h2o_linklist_t due, *node, *next;

	h2o_linklist_init_anchor(&due);
	for (node = w->waiters.next; node != &w->waiters; node = next) {
		struct pending_wait *pd = H2O_STRUCT_FROM_MEMBER(struct pending_wait, link, node);
		next = node->next;
		if (is_stopping || pd->deadline <= now || wait_is_satisfied(m, pd)) {
			h2o_linklist_unlink(node);
			h2o_linklist_insert(&due, node);
		}
	}
	while (!h2o_linklist_is_empty(&due))
		wait_fire(H2O_STRUCT_FROM_MEMBER(struct pending_wait, link, due.next));
}

void
request_clients_gone(h2o_socket_t *watch, const char *err)
{
	struct worker *w = watch->data;
	struct epoll_event events[64];
	h2o_linklist_t gone;
	int i, n;

	(void)err;
	h2o_linklist_init_anchor(&gone);
	/* Taken off the waiters first, fired after: firing one may dispose
	 * of another's request, which unlinks its wait from whatever list
	 * holds it. */
	do {
		n = epoll_wait(w->gone_epfd, events, 64, 0);
		for (i = 0; i < n; i++) {
			/* a connection between two polls, or on another request,
			 * is h2o's to close; its next poll is over at once */
			struct gone_slot *slot = &w->gone_slots[events[i].data.fd];
			struct pending_wait *pd = slot->pd;
			if (pd == NULL) {
				slot->has_left = 1;
				continue;
			}
			wait_unwatch_client(pd);
			h2o_linklist_unlink(&pd->link);
			h2o_linklist_insert(&gone, &pd->link);
		}
	} while (n == 64);
	/* answered as at the end of their waits (nobody reads it): h2o then
	 * ends each request and closes its connection */
	while (!h2o_linklist_is_empty(&gone))
		wait_fire(H2O_STRUCT_FROM_MEMBER(struct pending_wait, link, gone.next));
}

void
request_change_message(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, change_receiver, receiver);

	while (!h2o_linklist_is_empty(messages))
		h2o_linklist_unlink(messages->next);
	atomic_store(&w->is_change_pending, 0);
	request_waiters_check(w);
}

void
request_broadcast_change(void *arg, const struct model *m)
{
	struct server *s = arg;
	int i;

	(void)m;
	for (i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		/* A worker without waits has nothing to do with the change
		 * (a probe reads the current model anyway): left asleep. */
		if (atomic_load(&w->n_waiters) == 0 && !atomic_load(&s->is_stopping))
			continue;
		if (atomic_exchange(&w->is_change_pending, 1) == 0)
			h2o_multithread_send_message(&w->change_receiver, &w->change_message);
	}
}

void
request_observed(void *arg)
{
	request_broadcast_change(arg, NULL);
}

void
request_count_render(struct request *r)
{
	atomic_fetch_add_explicit(&r->worker->n_renders, 1, memory_order_relaxed);
}

void
request_worker_counts(const struct request *r, struct request_worker_counts *probe_worker,
                      struct request_worker_counts *general)
{
	const struct server *s = r->server;
	int i;

	memset(probe_worker, 0, sizeof(*probe_worker));
	memset(general, 0, sizeof(*general));
	for (i = 0; i < s->n_workers; i++) {
		struct worker *w = &s->workers[i];
		struct request_worker_counts *to = w->is_probe ? probe_worker : general;
		to->probes += atomic_load_explicit(&w->n_probes, memory_order_relaxed);
		to->others += atomic_load_explicit(&w->n_others, memory_order_relaxed);
		to->handed_off += atomic_load_explicit(&w->n_handed_off, memory_order_relaxed);
		to->renders += atomic_load_explicit(&w->n_renders, memory_order_relaxed);
	}
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
