/*
 * agent.c - the HAProxy agent-check listener (see agent.h for the words).
 *
 * A plain TCP listener on worker 0's h2o event loop. Each connection:
 * read until a newline, AGENT_LINE_MAX bytes, end of stream or
 * AGENT_READ_TIMEOUT_MS, whichever comes first; look the node up in the
 * snapshot; write one line; close. A stalled client costs one socket and
 * one timer, never a blocked loop. When accept fails for lack of
 * descriptors, the loop's owner is asked to close an idle connection
 * (an agent connection is never idle for long) and accept is tried again;
 * when nothing can be closed the listener is left unpolled for
 * AGENT_ACCEPT_PAUSE_MS instead of spinning on it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../util/xalloc.h"
#include "agent.h"

#define AGENT_USER_AGENT "haproxy-agent"
#define AGENT_ACCEPT_PAUSE_MS 100
#define AGENT_MAKE_ROOM_MAX 16 /* connections closed per accept event */

struct agent {
	h2o_loop_t *loop;
	h2o_socket_t *listener;
	struct engine *engine;
	struct observe *observe;
	const char *default_node;
	h2o_timeout_t read_timeout;
	h2o_linklist_t conns;
	h2o_timeout_t accept_pause_timeout;
	h2o_timeout_entry_t accept_resume;
	agent_make_room_fn make_room;
	void *make_room_arg;
};

struct agent_conn {
	struct agent *agent;
	h2o_socket_t *sock;
	h2o_timeout_entry_t timeout;
	h2o_linklist_t link;
	int is_answered;
	char address[64]; /* the peer's, read at accept: once HAProxy gives up
	                     on a check and resets the connection, getpeername
	                     fails, and the answer would be filed under "" */
	char reply[AGENT_LINE_MAX + 64];
	h2o_iovec_t reply_iov;
};

static void
conn_close(struct agent_conn *c)
{
	if (h2o_timeout_is_linked(&c->timeout))
		h2o_timeout_unlink(&c->timeout);
	h2o_linklist_unlink(&c->link);
	h2o_socket_close(c->sock);
	free(c);
}

static void
peer_address(h2o_socket_t *sock, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = h2o_socket_getpeername(sock, (struct sockaddr *)&ss);

	buf[0] = '\0';
	if (len == 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, size);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, size);
}

/* "CLUSTER/NAME lb=LBNAME" (lbconfig --lb): takes the " lb=LBNAME" off
 * the end of line[0..*len) into who when it is there and a valid name. */
static void
split_lb(const char **line, size_t *len, struct observe_client *who)
{
	const char *space, *lb;
	size_t lb_len;

	if (*len == 0) /* no line at all: *line may be NULL */
		return;
	if ((space = memchr(*line, ' ', *len)) == NULL)
		return;
	lb = space + 1;
	lb_len = *len - (size_t)(lb - *line);
	if (lb_len < 3 || memcmp(lb, "lb=", 3) != 0 || !node_name_is_valid(lb + 3, lb_len - 3))
		return;
	who->lb = lb + 3;
	who->lb_len = lb_len - 3;
	*len = (size_t)(space - *line);
}

/* Writes the reply for the request line line[0..len) into c->reply. */
static void
conn_compose(struct agent_conn *c, const char *line, size_t len)
{
	struct agent *a = c->agent;
	const struct model *m = engine_snapshot(a->engine);
	const char *cluster_name = DEFAULT_CLUSTER, *name = line, *slash;
	char cluster_buf[NODE_NAME_MAX + 1];
	size_t name_len = len;
	const struct cluster *cl;
	const struct node *n;
	struct observe_client who = {.protocol = OBSERVE_AGENT,
	                             .address = c->address,
	                             .user_agent = AGENT_USER_AGENT,
	                             .user_agent_len = strlen(AGENT_USER_AGENT)};
	enum observe_answer answer;

	while (len > 0 && strchr(" \t\r", line[len - 1]) != NULL)
		len--;
	while (len > 0 && strchr(" \t", line[0]) != NULL) {
		line++;
		len--;
	}
	split_lb(&line, &len, &who);
	name = line;
	name_len = len;
	if (len == 0 && a->default_node != NULL) {
		name = a->default_node;
		name_len = strlen(name);
	} else if (len == 0) {
		snprintf(c->reply, sizeof(c->reply),
		         "down #no node: set agent-send or serve --node\n");
		return;
	}
	if ((slash = memchr(name, '/', name_len)) != NULL) {
		size_t cluster_len = (size_t)(slash - name);
		if (cluster_len == 0 || cluster_len > NODE_NAME_MAX)
			goto unknown;
		memcpy(cluster_buf, name, cluster_len);
		cluster_buf[cluster_len] = '\0';
		cluster_name = cluster_buf;
		name_len -= cluster_len + 1;
		name = slash + 1;
	}
	if (!node_name_is_valid(name, name_len) || !cluster_name_is_valid(cluster_name))
		goto unknown;
	if ((cl = model_find_cluster(m, cluster_name)) == NULL ||
	    (n = cluster_find_node(cl, name, name_len)) == NULL) {
		if (!engine_has_state(a->engine))
			snprintf(c->reply, sizeof(c->reply),
			         "down #no state: the store is unreachable and this daemon has no "
			         "local copy yet\n");
		else
			snprintf(c->reply, sizeof(c->reply), "down #unknown node %s/%.*s\n",
			         cluster_name, (int)name_len, name);
		return;
	}
	if (who.lb != NULL && !observe_lb_is_known(cl, who.lb, who.lb_len))
		who.lb = NULL;
	answer = observe_answer_probe(a->observe, cl->name, n, &who, (int64_t)h2o_now(a->loop));
	snprintf(c->reply, sizeof(c->reply), "%s\n", observe_answer_agent_line(answer));
	return;
unknown:
	snprintf(c->reply, sizeof(c->reply), "down #unknown node (not a valid name)\n");
}

static void
on_written(h2o_socket_t *sock, const char *err)
{
	(void)err;
	conn_close(sock->data);
}

/* Answers the line received so far (up to the first newline) and closes
 * once the reply is written. */
static void
conn_answer(struct agent_conn *c)
{
	h2o_buffer_t *in = c->sock->input;
	const char *nl = in->size > 0 ? memchr(in->bytes, '\n', in->size) : NULL;
	size_t len = nl != NULL ? (size_t)(nl - in->bytes) : in->size;

	if (c->is_answered)
		return;
	c->is_answered = 1;
	if (h2o_timeout_is_linked(&c->timeout))
		h2o_timeout_unlink(&c->timeout);
	h2o_socket_read_stop(c->sock);
	if (len > AGENT_LINE_MAX)
		snprintf(c->reply, sizeof(c->reply), "down #request line too long\n");
	else
		conn_compose(c, in->bytes, len);
	c->reply_iov = h2o_iovec_init(c->reply, strlen(c->reply));
	h2o_socket_write(c->sock, &c->reply_iov, 1, on_written);
}

static void
on_read(h2o_socket_t *sock, const char *err)
{
	struct agent_conn *c = sock->data;
	h2o_buffer_t *in = sock->input;

	if (err != NULL && in->size == 0 && c->agent->default_node == NULL) {
		conn_close(c); /* went away without asking */
		return;
	}
	if (err != NULL || memchr(in->bytes, '\n', in->size) != NULL || in->size > AGENT_LINE_MAX)
		conn_answer(c);
}

static void
on_read_timeout(h2o_timeout_entry_t *entry)
{
	struct agent_conn *c = H2O_STRUCT_FROM_MEMBER(struct agent_conn, timeout, entry);

	conn_answer(c);
}

static void on_accept(h2o_socket_t *listener, const char *err);

static void
on_accept_resume(h2o_timeout_entry_t *entry)
{
	struct agent *a = H2O_STRUCT_FROM_MEMBER(struct agent, accept_resume, entry);

	h2o_socket_read_start(a->listener, on_accept);
}

static void
on_accept(h2o_socket_t *listener, const char *err)
{
	struct agent *a = listener->data;
	struct agent_conn *c;
	h2o_socket_t *sock;
	int n_closed = 0;

	if (err != NULL)
		return;
	while ((sock = h2o_evloop_socket_accept(listener)) == NULL) {
		if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM)
			return;
		if (n_closed == AGENT_MAKE_ROOM_MAX || a->make_room == NULL ||
		    !a->make_room(a->make_room_arg)) {
			h2o_socket_read_stop(listener);
			h2o_timeout_link(a->loop, &a->accept_pause_timeout, &a->accept_resume);
			return;
		}
		n_closed++;
	}
	c = xcalloc(1, sizeof(*c));
	c->agent = a;
	c->sock = sock;
	sock->data = c;
	peer_address(sock, c->address, sizeof(c->address));
	c->timeout.cb = on_read_timeout;
	h2o_linklist_insert(&a->conns, &c->link);
	h2o_timeout_link(a->loop, &a->read_timeout, &c->timeout);
	h2o_socket_read_start(sock, on_read);
}

struct agent *
agent_start(h2o_loop_t *loop, int listen_fd, struct engine *engine, struct observe *observe,
            const char *default_node, agent_make_room_fn make_room, void *make_room_arg)
{
	struct agent *a = xcalloc(1, sizeof(*a));

	a->loop = loop;
	a->engine = engine;
	a->observe = observe;
	a->default_node = default_node;
	a->make_room = make_room;
	a->make_room_arg = make_room_arg;
	h2o_linklist_init_anchor(&a->conns);
	h2o_timeout_init(loop, &a->read_timeout, AGENT_READ_TIMEOUT_MS);
	h2o_timeout_init(loop, &a->accept_pause_timeout, AGENT_ACCEPT_PAUSE_MS);
	a->accept_resume.cb = on_accept_resume;
	a->listener = h2o_evloop_socket_create(loop, listen_fd, H2O_SOCKET_FLAG_DONT_READ);
	a->listener->data = a;
	h2o_socket_read_start(a->listener, on_accept);
	return a;
}

void
agent_stop(struct agent *a)
{
	if (a == NULL)
		return;
	if (h2o_timeout_is_linked(&a->accept_resume))
		h2o_timeout_unlink(&a->accept_resume);
	h2o_timeout_dispose(a->loop, &a->accept_pause_timeout);
	h2o_socket_read_stop(a->listener);
	h2o_socket_close(a->listener);
	while (!h2o_linklist_is_empty(&a->conns))
		conn_close(H2O_STRUCT_FROM_MEMBER(struct agent_conn, link, a->conns.next));
	h2o_timeout_dispose(a->loop, &a->read_timeout);
	free(a);
}
