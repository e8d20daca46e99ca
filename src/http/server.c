/*
 * server.c - the HTTP workers on libh2o-evloop: listening sockets, accept
 * (with the eviction of idle connections when descriptors run out), each
 * worker's loop and timers, the TLS context each worker takes at accept,
 * start and stop. Every request starts here as a struct request on the
 * worker's stack (on_req) and goes to the router (router.c), which owns
 * the path table; what a request may ask and wait for is request.c's.
 *
 * Probes are isolated (docs/ARCHITECTURE.md, "Probes isolated"): worker 0
 * is the probe worker. Over plain HTTP it alone accepts, reads each new
 * connection's request line and keeps the connection when it is a probe
 * (GET or HEAD of a mount path); any other connection is exported, with
 * the bytes already read, to a general worker (round robin), which
 * serves it from then on. The agent listener is on the probe worker too.
 * A request that is not a probe arriving later on a kept connection is
 * answered there and the connection closed after it, so that a client
 * cannot keep the probe worker busy with anything else. Every thread but
 * the probe worker runs at a lower scheduling priority (OTHER_NICE), so
 * that on a busy machine the kernel runs the probe worker first. With TLS
 * the request line is only readable after the handshake: the general
 * workers accept and serve everything of --listen, probes included; the
 * probe worker keeps the agent checks and --probe-listen, a plain-HTTP
 * listener whose handler answers probes alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../agent/agent.h"
#include "../observe/observe.h"
#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "router.h"
#include "http.h"
#include "render.h"
#include "server_internal.h"

/* The tick drives held waits' deadlines and conditions: armed only while
 * a worker holds one, or stops, so that an idle worker sleeps. */
#define TICK_MS 250
/* The longest one loop wait may last: every timer and message wakes a
 * worker sooner, and server_stop wakes every worker at once. Snapshot
 * reclamation needs no wake-up: workers wait offline (worker_main). */
#define LOOP_MAX_WAIT_MS 10000
#define STOP_GRACE_MS 10000
#define SWEEP_EVERY_MS 10000
#define ACCEPT_PAUSE_MS 100         /* listeners unpolled after running out of fds */
#define ACCEPT_EVICT_MAX 16         /* idle connections closed per accept event */
#define FD_WARN_EVERY_MS 10000      /* one warning per worker at most this often */
#define FIRST_LINE_MAX 2048         /* a request line longer than this is no probe */
#define FIRST_LINE_TIMEOUT_MS 10000 /* as h2o's http1 request timeout */
/* The nice value of every thread but the probe worker's (0 stays 0 for
 * it): the scheduler then lets the probe worker preempt any of them as
 * soon as it wakes, and gives it about three times their share when both
 * want a CPU; not more, so that on a host busy with other work the API,
 * the page and password checks are slowed, not starved. */
#define OTHER_NICE 5

/* A connection the probe worker accepted whose request line has not
 * arrived yet (on w->first_lines). */
struct first_line {
	struct worker *worker;
	h2o_socket_t *sock;
	int is_from_reserve;         /* accepted on a descriptor of the reserve */
	h2o_timeout_entry_t timeout; /* on w->first_line_timeout */
};

/* A connection on its way from the probe worker to a general worker. */
struct handoff {
	h2o_multithread_message_t message;
	h2o_socket_export_t info;
};

static __thread struct worker *current_worker;

static void on_accept(h2o_socket_t *listener, const char *err);

static void
on_tick(h2o_timeout_entry_t *entry)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, tick, entry);

	request_waiters_check(w);
	if (!h2o_linklist_is_empty(&w->waiters) || atomic_load(&w->server->is_stopping))
		server_tick_arm(w);
}

void
server_tick_arm(struct worker *w)
{
	if (!h2o_timeout_is_linked(&w->tick))
		h2o_timeout_link(w->ctx.loop, &w->tick_timeout, &w->tick);
}

static void
on_sweep(h2o_timeout_entry_t *entry)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, sweep, entry);

	observe_sweep(w->server->observe, time_now_ms());
	h2o_timeout_link(w->ctx.loop, &w->sweep_timeout, &w->sweep);
}

/* --- requests ---------------------------------------------------------- */

int
server_is_probe(struct server *s, h2o_iovec_t method, h2o_iovec_t path)
{
	size_t mount_len;
	const struct cluster *c;

	if (!h2o_memis(method.base, method.len, H2O_STRLIT("GET")) &&
	    !h2o_memis(method.base, method.len, H2O_STRLIT("HEAD")))
		return 0;
	c = model_find_mount(engine_snapshot(s->engine), path.base, path.len, &mount_len);
	return c != NULL && mount_len == path.len;
}

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

/* What every handler takes from h2o's request before the router: the
 * path, the query and the peer's address. */
static void
request_begin(struct request *r, h2o_req_t *req)
{
	r->path = req->path_normalized;
	if (req->query_at != SIZE_MAX)
		r->query = h2o_iovec_init(req->path.base + req->query_at + 1,
		                          req->path.len - req->query_at - 1);
	peer_address(req, r->address, sizeof(r->address));
}

/* A request of this thread's worker, begun (every handler's first step). */
static struct worker *
worker_request_begin(struct request *r, h2o_req_t *req)
{
	struct worker *w = current_worker;

	*r = (struct request){.req = req, .worker = w, .server = w->server};
	request_begin(r, req);
	return w;
}

/* The pool's destructor of a counted response (response_count). */
static void
response_done(void *p)
{
	struct worker *w = *(struct worker **)p;

	w->n_responding--;
}

void
worker_fd_slots_grow(void **slots, size_t *n, size_t size, int fd)
{
	size_t want = (size_t)fd * 2 + 64;

	if ((size_t)fd < *n)
		return;
	*slots = xreallocarray(*slots, want, size);
	memset((char *)*slots + *n * size, 0, (want - *n) * size);
	*n = want;
}

/* With TLS: is the connection on descriptor fd one accepted while the
 * reserve was not full? The request line comes only after the handshake,
 * so the mark is read by on_req, which serves such a connection's probes
 * and refuses the rest while the reserve is not full again (a connection
 * new to the descriptor clears it). */
static void
mark_on_reserve(struct worker *w, int fd, int on_reserve)
{
	if (fd < 0)
		return;
	worker_fd_slots_grow((void **)&w->on_reserve, &w->n_on_reserve, 1, fd);
	w->on_reserve[fd] = (unsigned char)on_reserve;
}

static int
is_on_reserve(const struct worker *w, h2o_req_t *req)
{
	h2o_socket_t *sock;
	int fd;

	if (w->n_on_reserve == 0 || req->conn->callbacks->get_socket == NULL ||
	    (sock = req->conn->callbacks->get_socket(req->conn)) == NULL)
		return 0;
	fd = h2o_socket_get_fd(sock);
	if (fd < 0 || (size_t)fd >= w->n_on_reserve || !w->on_reserve[fd])
		return 0;
	/* the reserve full again: descriptors are free, and a connection that
	 * stays open (HTTP/2) is served as any other from now on */
	if (w->n_reserve == RESERVE_FDS) {
		w->on_reserve[fd] = 0;
		return 0;
	}
	return 1;
}

/* Running out of descriptors, a request other than a probe on a
 * connection taken on the reserve gets this (with TLS from on_req; over
 * plain HTTP written straight to the socket, refuse_out_of_descriptors). */
#define OUT_OF_FDS_BODY                                                                            \
	"{\"error\": \"out of file descriptors: only probes are answered now; try again "          \
	"shortly\", \"detail\": null}"

static void
refuse_request_out_of_descriptors(h2o_req_t *req)
{
	req->res.status = 503;
	req->res.reason = "Service Unavailable";
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
	               H2O_STRLIT("application/json"));
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
	               H2O_STRLIT("no-store"));
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
	req->http1_is_persistent = 0;
	h2o_send_inline(req, H2O_STRLIT(OUT_OF_FDS_BODY));
}

/* A response of a general worker is counted until h2o disposes of its
 * request, once the last byte is written (or the client went), so that
 * a stopping worker ends only when what it answered is out: an answer
 * larger than the socket's buffer is still being written after its
 * handler returned. The probe worker's answers fit in any buffer. */
static void
response_count(struct worker *w, h2o_req_t *req)
{
	struct worker **slot;

	if (w->is_probe)
		return;
	slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), response_done);
	*slot = w;
	w->n_responding++;
}

static int
on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct request r;
	struct worker *w = worker_request_begin(&r, req);

	(void)self;
	response_count(w, req);
	r.server_default_node = w->server->opts.default_node;
	if (server_is_probe(w->server, req->method, r.path)) {
		atomic_fetch_add_explicit(&w->n_probes, 1, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&w->n_others, 1, memory_order_relaxed);
		if (w->is_probe)
			req->http1_is_persistent = 0; /* its next request is classified anew */
		else if (is_on_reserve(w, req)) {
			refuse_request_out_of_descriptors(req);
			return 0;
		}
	}
	router_dispatch(&r);
	return 0;
}

/* The --metrics-listen worker's only handler (h2o answers 404 for any
 * other path: it is registered at /metrics alone). */
static int
on_metrics_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct request r;

	(void)self;
	response_count(worker_request_begin(&r, req), req);
	if (!h2o_memis(r.path.base, r.path.len, H2O_STRLIT("/metrics")))
		return -1;   /* /metrics/x: not ours */
	router_dispatch(&r); /* which knows the worker serves /metrics alone */
	return 0;
}

/* The --consul-listen worker's handler: every path goes to the router,
 * which admits Consul's lines alone there (consul.c). */
static int
on_consul_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct request r;

	(void)self;
	response_count(worker_request_begin(&r, req), req);
	router_dispatch(&r);
	return 0;
}

/* The --probe-listen handler (on the probe worker, plain HTTP): probes
 * alone. Anything else is refused there, so that this listener, which
 * has no TLS, never carries credentials or a page. */
static int
on_probe_listener_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct request r;
	struct worker *w = worker_request_begin(&r, req);

	(void)self;
	r.server_default_node = w->server->opts.default_node;
	if (!server_is_probe(w->server, req->method, r.path)) {
		atomic_fetch_add_explicit(&w->n_others, 1, memory_order_relaxed);
		req->http1_is_persistent = 0;
		h2o_send_error_404(req, "Not Found",
		                   "only probes (GET or HEAD of a mount path) are answered on "
		                   "--probe-listen\n",
		                   0);
		return 0;
	}
	atomic_fetch_add_explicit(&w->n_probes, 1, memory_order_relaxed);
	router_dispatch(&r);
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
 *   - the probe worker then gives up one of the RESERVE_FDS descriptors it
 *     holds open on /dev/null for this (reserve_release): a connection
 *     accepted on it is served if its request line is a probe's and
 *     answered 503 if not, so that the reserve goes to probes, and an
 *     agent check is always a probe. The reserve is taken again as soon
 *     as the process has descriptors free (reserve_refill, at each
 *     accept event). So the load balancers' probes are answered even
 *     when long polls or other requests under way hold every other
 *     descriptor. With TLS the general workers, which accept on the
 *     main listener then, keep a reserve each in the same way, and
 *     on_req refuses what is not a probe on a connection taken on it
 *     (mark_on_reserve);
 *   - when nothing idle is left (or after ACCEPT_EVICT_MAX closes, since
 *     TLS and HTTP/2 connections give their descriptor back only after a
 *     last write) and the reserve is spent, the listeners are not polled
 *     for ACCEPT_PAUSE_MS.
 */
static h2o_timeout_t *
oldest_idle_list(struct worker *w)
{
	h2o_timeout_t *lists[] = {&w->ctx.http1.req_timeout, &w->ctx.http2.idle_timeout,
	                          &w->ctx.handshake_timeout, &w->first_line_timeout};
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
 * (void * for the agent listener, which shares the probe worker's loop.) */
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

/* Fills the worker's reserve up (at start, at each accept event,
 * and every ACCEPT_PAUSE_MS while it is not full: one open() that fails
 * while the process has no descriptor free). */
static void
reserve_refill(struct worker *w)
{
	int fd;

	while (w->n_reserve < RESERVE_FDS && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		w->reserve_fds[w->n_reserve++] = fd;
	if (w->n_reserve < RESERVE_FDS && !h2o_timeout_is_linked(&w->reserve_refill))
		h2o_timeout_link(w->ctx.loop, &w->accept_pause_timeout, &w->reserve_refill);
}

static void
on_reserve_refill(h2o_timeout_entry_t *entry)
{
	reserve_refill(H2O_STRUCT_FROM_MEMBER(struct worker, reserve_refill, entry));
}

/* One descriptor of the worker's reserve given up for the next accept;
 * 0 when the reserve is spent. */
static int
reserve_release(struct worker *w)
{
	if (w->n_reserve == 0)
		return 0;
	close(w->reserve_fds[--w->n_reserve]);
	if (!h2o_timeout_is_linked(&w->reserve_refill))
		h2o_timeout_link(w->ctx.loop, &w->accept_pause_timeout, &w->reserve_refill);
	return 1;
}

/* The agent listener's way to make room (agent.h): an idle connection
 * closed, else a descriptor of the reserve (an agent check is a probe). */
static int
make_room_for_agent(void *arg)
{
	return close_oldest_idle(arg) || reserve_release(arg);
}

/* General worker: the probe worker, out of descriptors, has nothing idle
 * of its own; the idle keep-alive connections it handed over are here. */
static void
on_make_room(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, make_room_receiver, receiver);
	int n = 0;

	while (!h2o_linklist_is_empty(messages))
		h2o_linklist_unlink(messages->next);
	atomic_store(&w->is_make_room_pending, 0);
	while (n < ACCEPT_EVICT_MAX && close_oldest_idle(w))
		n++;
}

/* Probe worker: asks every general worker to close idle connections; the
 * probe worker's accept, paused meanwhile, finds the descriptors free. */
static void
make_room_elsewhere(struct worker *pw)
{
	struct server *s = pw->server;
	int i;

	for (i = 1; i <= s->opts.threads; i++) {
		struct worker *w = &s->workers[i];
		if (atomic_exchange(&w->is_make_room_pending, 1) == 0)
			h2o_multithread_send_message(&w->make_room_receiver, &w->make_room_message);
	}
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

/* --- the probe worker's accept: which worker serves a connection ------- */

static void
first_line_free(struct first_line *fl)
{
	if (h2o_timeout_is_linked(&fl->timeout))
		h2o_timeout_unlink(&fl->timeout);
	fl->sock->data = NULL;
	free(fl);
}

/* Nothing (or not a whole line) within FIRST_LINE_TIMEOUT_MS, or the
 * connection is evicted to make room for another: closed, as h2o closes
 * an idle connection. */
static void
on_first_line_timeout(h2o_timeout_entry_t *entry)
{
	struct first_line *fl = H2O_STRUCT_FROM_MEMBER(struct first_line, timeout, entry);
	h2o_socket_t *sock = fl->sock;

	first_line_free(fl);
	h2o_socket_close(sock);
}

/* Probe worker: a general worker takes the connection over, with what
 * was read of it. */
static void
handoff_send(struct worker *pw, h2o_socket_t *sock)
{
	struct server *s = pw->server;
	struct worker *to = &s->workers[1 + pw->next_handoff++ % (unsigned)s->opts.threads];
	struct handoff *h = xcalloc(1, sizeof(*h));

	h2o_socket_export(sock, &h->info); /* closes sock, keeps the descriptor */
	atomic_fetch_add_explicit(&pw->n_handed_off, 1, memory_order_relaxed);
	atomic_fetch_add(&to->n_handoffs_due, 1);
	h2o_multithread_send_message(&to->handoff_receiver, &h->message);
}

/* General worker: connections handed over by the probe worker, served
 * even once a stop has begun: their request arrived before it (the probe
 * worker read its first line), and a stop answers what arrived before it.
 * h2o serves what was read at once, so a write among them is a pending
 * job before the worker looks at n_pending again; the worker ends only
 * when none is due (worker_main). */
static void
on_handoff(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
	struct worker *w = H2O_STRUCT_FROM_MEMBER(struct worker, handoff_receiver, receiver);

	while (!h2o_linklist_is_empty(messages)) {
		struct handoff *h =
		    H2O_STRUCT_FROM_MEMBER(struct handoff, message.link, messages->next);
		h2o_linklist_unlink(&h->message.link);
		h2o_accept(&w->accept_ctx, h2o_socket_import(w->ctx.loop, &h->info));
		atomic_fetch_sub(&w->n_handoffs_due, 1);
		free(h);
	}
}

/* Is the request line buf..eol a probe's (GET or HEAD of a mount path)? */
static int
first_line_is_probe(struct server *s, const char *buf, const char *eol)
{
	const char *sp1 = memchr(buf, ' ', (size_t)(eol - buf)), *target, *end, *query;

	if (sp1 == NULL)
		return 0;
	target = sp1 + 1;
	if ((end = memchr(target, ' ', (size_t)(eol - target))) == NULL)
		return 0;
	query = memchr(target, '?', (size_t)(end - target));
	return server_is_probe(
	    s, h2o_iovec_init(buf, (size_t)(sp1 - buf)),
	    h2o_iovec_init(target, (size_t)((query != NULL ? query : end) - target)));
}

static void
on_refusal_written(h2o_socket_t *sock, const char *err)
{
	(void)err;
	h2o_socket_close(sock);
}

/* A request other than a probe on a descriptor of the reserve: answered
 * 503 (the error document of every surface) and closed. */
static void
refuse_out_of_descriptors(h2o_socket_t *sock)
{
	static const char answer[] = "HTTP/1.1 503 Service Unavailable\r\n"
	                             "Content-Type: application/json\r\n"
	                             "Cache-Control: no-store\r\n"
	                             "Retry-After: 1\r\n"
	                             "Connection: close\r\n"
	                             "Content-Length: %zu\r\n\r\n" OUT_OF_FDS_BODY;
	static char text[sizeof(answer) + 16];
	static h2o_iovec_t buf;

	if (buf.len == 0)
		buf = h2o_iovec_init(text, (size_t)snprintf(text, sizeof(text), answer,
		                                            sizeof(OUT_OF_FDS_BODY) - 1));
	h2o_socket_write(sock, &buf, 1, on_refusal_written);
}

static void
on_first_bytes(h2o_socket_t *sock, const char *err)
{
	struct first_line *fl = sock->data;
	struct worker *w = fl->worker;
	size_t len = sock->input->size < FIRST_LINE_MAX ? sock->input->size : FIRST_LINE_MAX;
	const char *eol = memchr(sock->input->bytes, '\n', len);
	int is_probe, is_from_reserve;

	if (err != NULL) {
		first_line_free(fl);
		h2o_socket_close(sock);
		return;
	}
	if (eol == NULL && sock->input->size < FIRST_LINE_MAX)
		return; /* more to come */
	is_probe = eol != NULL && first_line_is_probe(w->server, sock->input->bytes, eol);
	is_from_reserve = fl->is_from_reserve;
	first_line_free(fl);
	h2o_socket_read_stop(sock);
	if (is_probe)
		h2o_accept(&w->accept_ctx, sock); /* h2o reads what is already in */
	else if (is_from_reserve)
		refuse_out_of_descriptors(sock);
	else
		handoff_send(w, sock);
}

/* Probe worker: waits for the connection's request line. */
static void
first_line_wait(struct worker *w, h2o_socket_t *sock, int is_from_reserve)
{
	struct first_line *fl = xcalloc(1, sizeof(*fl));

	fl->worker = w;
	fl->sock = sock;
	fl->is_from_reserve = is_from_reserve;
	fl->timeout.cb = on_first_line_timeout;
	sock->data = fl;
	h2o_timeout_link(w->ctx.loop, &w->first_line_timeout, &fl->timeout);
	h2o_socket_read_start(sock, on_first_bytes);
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
	struct worker *w = listener->data;
	h2o_socket_t *sock;
	int n_closed = 0, is_released = 0;

	if (err != NULL)
		return;
	/* A descriptor freed since the last accept goes back to the reserve
	 * first; while the reserve cannot be filled, the process is at its
	 * limit, and what is accepted is taken as from the reserve. */
	if (w->has_reserve)
		reserve_refill(w);
	while ((sock = h2o_evloop_socket_accept(listener)) == NULL) {
		int error = errno; /* h2o returns accept4's failure as is */
		if (error != EMFILE && error != ENFILE && error != ENOBUFS && error != ENOMEM)
			return; /* EAGAIN (another worker took it), ECONNABORTED, ... */
		fd_exhaustion_warn(w, error);
		if (n_closed < ACCEPT_EVICT_MAX && close_oldest_idle(w)) {
			n_closed++;
			continue;
		}
		if (w->is_probe && n_closed == 0)
			make_room_elsewhere(w);
		if (w->has_reserve && !is_released && reserve_release(w)) {
			is_released = 1; /* once: another thread may take it first */
			continue;
		}
		accept_pause(w);
		return;
	}
	if (listener == w->probe_listener) {
		h2o_accept(&w->probe_accept_ctx, sock);
		return;
	}
	if (w->is_probe) {
		first_line_wait(w, sock, w->n_reserve < RESERVE_FDS);
		return;
	}
	if (!w->is_metrics && !w->is_consul &&
	    atomic_load(&w->server->ssl_generation) != w->ssl_generation)
		worker_take_ssl_ctx(w);
	if (w->has_reserve)
		mark_on_reserve(w, h2o_socket_get_fd(sock), w->n_reserve < RESERVE_FDS);
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
	w->probe_listener = NULL;
	while (!h2o_linklist_is_empty(&w->first_line_timeout._entries)) {
		h2o_timeout_entry_t *e = H2O_STRUCT_FROM_MEMBER(
		    h2o_timeout_entry_t, _link, w->first_line_timeout._entries.next);
		h2o_timeout_unlink(e);
		e->cb(e);
	}
	agent_stop(w->agent);
	w->agent = NULL;
}

/* Does w poll the HTTP listeners? Over plain HTTP only the probe worker
 * does (it hands the rest on); with TLS the general workers do. */
static int
worker_is_accepting(const struct server *s, const struct worker *w)
{
	if (w->is_metrics || w->is_consul)
		return 1;
	if (s->ssl_ctx == NULL)
		return w->is_probe;
	return !w->is_probe;
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

	w->tid = (pid_t)syscall(SYS_gettid);
	if (w->is_consul) {
		config = &s->consul_config;
		listens = &s->opts.consul_listen;
	}

	h2o_context_init(&w->ctx, h2o_evloop_create(), config);
	w->accept_ctx.ctx = &w->ctx;
	w->accept_ctx.hosts = config->hosts;
	if (!w->is_metrics && !w->is_consul)
		worker_take_ssl_ctx(w);
	h2o_linklist_init_anchor(&w->waiters);
	/* without it (no descriptor left), a client that left a long poll
	 * is seen when the wait ends */
	if ((w->gone_epfd = epoll_create1(EPOLL_CLOEXEC)) >= 0) {
		w->gone_watch =
		    h2o_evloop_socket_create(w->ctx.loop, w->gone_epfd, H2O_SOCKET_FLAG_DONT_READ);
		w->gone_watch->data = w;
		h2o_socket_read_start(w->gone_watch, request_clients_gone);
	}
	h2o_timeout_init(w->ctx.loop, &w->accept_pause_timeout, ACCEPT_PAUSE_MS);
	h2o_timeout_init(w->ctx.loop, &w->first_line_timeout, FIRST_LINE_TIMEOUT_MS);
	w->accept_resume.cb = on_accept_resume;
	w->reserve_refill.cb = on_reserve_refill;
	/* with TLS the general workers accept on --listen, probes included */
	w->has_reserve = w->is_probe || (s->ssl_ctx != NULL && !w->is_metrics && !w->is_consul);
	if (w->has_reserve)
		reserve_refill(w);
	h2o_multithread_register_receiver(w->ctx.queue, &w->done_receiver, request_jobs_done);
	h2o_multithread_register_receiver(w->ctx.queue, &w->change_receiver,
	                                  request_change_message);
	h2o_multithread_register_receiver(w->ctx.queue, &w->handoff_receiver, on_handoff);
	h2o_multithread_register_receiver(w->ctx.queue, &w->make_room_receiver, on_make_room);
	h2o_timeout_init(w->ctx.loop, &w->tick_timeout, TICK_MS);
	w->tick.cb = on_tick;
	h2o_timeout_init(w->ctx.loop, &w->sweep_timeout, SWEEP_EVERY_MS);
	w->sweep.cb = on_sweep;
	if (w->id == 1)
		h2o_timeout_link(w->ctx.loop, &w->sweep_timeout, &w->sweep);
	w->reader_id = engine_reader_register(s->engine);
	w->n_listeners = !worker_is_accepting(s, w)      ? 0
	                 : w->is_metrics || w->is_consul ? 1
	                                                 : s->opts.n_listens;
	/* one more: the probe worker's --probe-listen */
	w->listeners = xcalloc(w->n_listeners + 2, sizeof(*w->listeners));
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
	if (w->is_probe && s->opts.probe_listen.text[0] != '\0') {
		int fd = dup(s->opts.probe_listen.fd);
		if (fd == -1)
			return error_set(err, 500, "cannot share the probe socket: %s",
			                 strerror(errno));
		w->probe_accept_ctx.ctx = &w->ctx;
		w->probe_accept_ctx.hosts = s->probe_config.hosts;
		w->probe_listener =
		    h2o_evloop_socket_create(w->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
		w->probe_listener->data = w;
		w->listeners[w->n_listeners++] = w->probe_listener;
		h2o_socket_read_start(w->probe_listener, on_accept);
	}
	if (w->is_probe && s->opts.agent_listen.text[0] != '\0') {
		int fd = dup(s->opts.agent_listen.fd);
		if (fd == -1)
			return error_set(err, 500, "cannot share the agent socket: %s",
			                 strerror(errno));
		w->agent = agent_start(w->ctx.loop, fd, s->engine, s->observe, s->opts.default_node,
		                       make_room_for_agent, w);
	}
	return 0;
}

/* Every thread of the daemon but the probe worker's, at OTHER_NICE: the
 * engine, checker, side and share threads already run, and the threads
 * started later inherit the value from the thread that starts them.
 * Lowering one's priority needs no privilege; a failure only costs the
 * isolation its margin, so it is logged, not fatal. */
static void
threads_lower_priority(const struct server *s)
{
	pid_t probe_tid = s->workers[0].tid;
	struct dirent *e;
	DIR *d = opendir("/proc/self/task");

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		pid_t tid = (pid_t)strtol(e->d_name, NULL, 10);
		if (tid <= 0 || tid == probe_tid)
			continue;
		errno = 0;
		if (getpriority(PRIO_PROCESS, (id_t)tid) < OTHER_NICE && errno == 0 &&
		    setpriority(PRIO_PROCESS, (id_t)tid, OTHER_NICE) != 0 && errno != ESRCH)
			log_kv(LOG_WARN,
			       "cannot lower a thread's priority below the probe worker's", "error",
			       strerror(errno), NULL);
	}
	closedir(d);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct server *s = w->server;
	int64_t stop_deadline = 0;

	current_worker = w;
	pthread_setname_np(pthread_self(), w->is_probe     ? "cm-probe"
	                                   : w->is_metrics ? "cm-metrics"
	                                                   : "cm-worker");
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
			request_waiters_check(w);
			server_tick_arm(w); /* the grace's deadline is checked at each tick */
		}
		if ((w->n_pending == 0 && atomic_load(&w->n_handoffs_due) == 0 &&
		     w->n_responding == 0) ||
		    time_now_ms() > stop_deadline)
			break;
	}
	render_cache_clear();
	engine_reader_unregister(s->engine, w->reader_id);
	return NULL;
}

/* The configuration of a listener of its own (metrics, probes, Consul):
 * no Server header, h2o's request timeout, one handler at path. */
static void
listener_config_init(h2o_globalconf_t *config, const char *path,
                     int (*on_req_fn)(h2o_handler_t *, h2o_req_t *))
{
	h2o_hostconf_t *host;
	h2o_handler_t *handler;

	h2o_config_init(config);
	config->server_name = h2o_iovec_init(H2O_STRLIT(""));
	config->http1.req_timeout = 10000;
	host = h2o_config_register_host(config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	handler = h2o_create_handler(h2o_config_register_path(host, path, 0), sizeof(*handler));
	handler->on_req = on_req_fn;
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
		listener_config_init(&s->metrics_config, "/metrics", on_metrics_req);
		s->n_workers++; /* after the general workers */
	}
	s->n_workers++; /* the probe worker, workers[0] */
	if (s->opts.probe_listen.text[0] != '\0')
		listener_config_init(&s->probe_config, "/", on_probe_listener_req);
	if (s->opts.consul_listen.text[0] != '\0') {
		listener_config_init(&s->consul_config, "/", on_consul_req);
		s->n_workers++; /* the last worker */
	}

	s->workers = xcalloc((size_t)s->n_workers, sizeof(*s->workers));
	observe_set_notify(s->observe, request_observed, s);
	pthread_barrier_init(&s->ready, NULL, (unsigned)s->n_workers + 1);
	for (i = 0; i < s->n_workers; i++) {
		s->workers[i].id = i;
		s->workers[i].server = s;
		s->workers[i].is_probe = i == 0;
		s->workers[i].is_consul =
		    s->opts.consul_listen.text[0] != '\0' && i == s->n_workers - 1;
		s->workers[i].is_metrics = i == s->opts.threads + 1 && !s->workers[i].is_consul;
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
	threads_lower_priority(s);
	engine_on_change(s->engine, request_broadcast_change, s);
	return 0;
}

void
server_stop(struct server *s)
{
	int i;

	atomic_store(&s->is_stopping, 1);
	/* Wakes every worker now rather than at its next tick, so that a
	 * stop takes milliseconds, not up to TICK_MS. */
	request_broadcast_change(s, NULL);
	for (i = 0; i < s->n_workers; i++)
		pthread_join(s->workers[i].thread, NULL);
	engine_on_change(s->engine, NULL, NULL);
	pthread_barrier_destroy(&s->ready);
}

/* The workers' array stays: each worker holds its h2o context, which h2o
 * 2.2.5 cannot dispose (its internal timers stay linked), so the context
 * and what h2o allocated for it live until the process exits, reachable
 * from the server (serve_main keeps it). */
void
server_free(struct server *s)
{
	int i;

	for (i = 0; i < s->n_workers; i++) {
		free(s->workers[i].listeners);
		s->workers[i].listeners = NULL;
		free(s->workers[i].gone_slots);
		free(s->workers[i].on_reserve);
		s->workers[i].gone_slots = NULL;
		s->workers[i].on_reserve = NULL;
		s->workers[i].n_on_reserve = 0;
		if (s->workers[i].accept_ctx.ssl_ctx != NULL)
			SSL_CTX_free(s->workers[i].accept_ctx.ssl_ctx);
		s->workers[i].accept_ctx.ssl_ctx = NULL;
	}
}
