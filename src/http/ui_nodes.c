/*
 * ui_nodes.c - {mount}/managenodes: the seed's manage screen, done well.
 *
 * Map of this file:
 *
 *   page       one page per cluster: the status table (which is also the
 *              "Offline Nodes" form: a checkbox per node, checked = out of
 *              service, a Drain button per node, a reason and a TTL for
 *              the nodes being taken out), the "List of Nodes" form and
 *              the last 50 audit entries, and above them the rollouts
 *              in progress (filled by the script). The audit log lives in the
 *              store, so every render goes through a read job; what the
 *              page must show besides the snapshot (a notice, an error
 *              next to a form, what was typed) travels in the job's data.
 *   status     POST form=status: the change set is what the user changed
 *              compared with what the page showed (the hidden field
 *              "shown" lists the nodes that were out when it was drawn,
 *              and the live view keeps it current). A stale page thus
 *              never undoes a change somebody else made meanwhile. A
 *              change that would take the last online node out needs
 *              confirm=yes: the script asks in the browser, and without
 *              it the server answers with a confirmation page.
 *   node list  POST form=nodes: one name per line; blank lines and the
 *              spaces around a name are ignored, duplicates collapse, an
 *              invalid name rejects the whole list and the page comes
 *              back with the text as typed and the reason beside it.
 *
 * Besides the stored status, each row shows what the load balancers see at
 * run time (observe/observe.h): the application check ("check ok",
 * "check down: <error>", "check pending"; an online or draining node whose
 * check fails also gets a "down" badge next to its status, as its probes
 * then answer "node is down" or the agent "down"), and the clients that
 * probe the node, in a <details> per node. Both are copied out of the
 * observe table when the page is drawn (after the audit read job, on the
 * worker), never kept across continuations; the live view does not
 * refresh them, since they change without a new version.
 *
 * Roles: viewers see the table and the log and no controls at all;
 * operators get the checkboxes, Drain and "Save Offline Nodes"; admins
 * also the node list. ui_post_guard enforces the same on every POST.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../observe/observe.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "ui.h"

#define AUDIT_SHOWN 50
#define PAGE_SUFFIX "/managenodes"
#define INVALID_SHOWN 3

/* The cluster the page is about, from the current snapshot. */
static const struct cluster *
page_cluster(struct request *r, const struct route *rt)
{
	return model_find_cluster(request_snapshot(r), rt->cluster);
}

/* --- page ---------------------------------------------------------------- */

/* What a page shows besides the snapshot. Strings are malloc'd (or NULL)
 * and owned by whoever holds the state; notice is a literal. */
struct page_state {
	int status;
	const char *notice;
	char *status_error; /* beside the offline form */
	char *nodes_error;  /* beside the node list */
	char *nodes_text;   /* the node list as typed; NULL: the current one */
	char *reason;       /* as typed */
	char *ttl;
};

struct page_job {
	char cluster[NODE_NAME_MAX + 1];
	struct page_state st;
};

static void
page_state_free(struct page_state *st)
{
	free(st->status_error);
	free(st->nodes_error);
	free(st->nodes_text);
	free(st->reason);
	free(st->ttl);
	memset(st, 0, sizeof(*st));
}

static void
page_job_free(void *data)
{
	struct page_job *a = data;

	page_state_free(&a->st);
}

static const char *
status_class(enum node_status s)
{
	return s == NODE_ONLINE ? "online" : s == NODE_DRAIN ? "drain" : "offline";
}

/* "4s ago" into buf; anything under a second counts as 1s. */
static const char *
time_ago(int64_t at, int64_t now, char *buf, size_t size)
{
	char d[40];

	snprintf(buf, size, "%s ago", duration_format(now - at > 1 ? now - at : 1, d, sizeof(d)));
	return buf;
}

/* Is the node's check failing while the node would otherwise take
 * traffic (online) or keep its sessions (drain)? Its probes then answer
 * "node is down" (online) and the agent "down". */
static int
is_check_down(const struct node *n, const struct observe_node_view *v)
{
	return n->check != NULL && v->has_check && !v->check.is_up && n->status != NODE_OFFLINE;
}

/* The application check, under the status; nothing when the node has
 * none. */
static void
check_state(struct ui_buf *b, const struct node *n, const struct observe_node_view *v, int64_t now)
{
	const struct observe_check *s = &v->check;
	int is_last_failed = s->last_error[0] != '\0';
	char ago[48], at[40];

	if (n->check == NULL)
		return;
	if (!v->has_check) {
		ui_printf(b, "<span class=\"ck ck-pending\" title=\"%s\">check pending</span>",
		          n->check);
		return;
	}
	if (s->is_up)
		ui_printf(b, "<span class=\"ck ck-ok\" title=\"%s\">check ok</span>", n->check);
	else
		ui_printf(b, "<span class=\"ck ck-down\" title=\"%s\">check down%r%s</span>",
		          n->check, is_last_failed ? ": " : "", s->last_error);
	/* The count is of the last result's kind, which may differ from the
	 * state while it is rising or falling. */
	ui_printf(b,
	          "<span class=\"ck-at\">%L %r in a row%r%s%r · <time datetime=\"%s\">%s</time>"
	          "</span>",
	          (int64_t)s->consecutive,
	          is_last_failed ? (s->consecutive == 1 ? "failure" : "failures")
	                         : (s->consecutive == 1 ? "pass" : "passes"),
	          s->is_up && is_last_failed ? " (" : "", s->is_up ? s->last_error : "",
	          s->is_up && is_last_failed ? ")" : "",
	          time_format_rfc3339(s->last_at, at, sizeof(at)),
	          time_ago(s->last_at, now, ago, sizeof(ago)));
}

static void
prober_item(struct ui_buf *b, const struct observe_client_view *p, int64_t now)
{
	char ago[48], at[40];

	ui_raw(b, "<li><span class=\"p-who\">");
	if (p->lb[0] != '\0')
		ui_printf(b, "<strong class=\"lb\">%s</strong> via ", p->lb);
	ui_printf(b, "<code>%s</code> ", p->address);
	if (p->protocol == OBSERVE_AGENT)
		ui_raw(b, "<span class=\"ua\">HAProxy agent</span>");
	else if (p->has_user_agent)
		ui_printf(b, "<span class=\"ua\">%s</span>", p->user_agent);
	else
		ui_raw(b, "<span class=\"ua none\">no User-Agent</span>");
	if (p->daemon[0] != '\0') /* seen by another daemon of the store */
		ui_printf(b, " <span class=\"via\">via <code>%s</code></span>", p->daemon);
	ui_printf(b,
	          "</span><span class=\"p-what\"><span class=\"ans ans-%r\">%s</span> · %L in a "
	          "row · <time datetime=\"%s\">%s</time></span></li>",
	          observe_answer_is_serving(p->last_answer) ? "serving" : "not",
	          observe_answer_text(p->protocol, p->last_answer), (int64_t)p->consecutive,
	          time_format_rfc3339(p->last_at, at, sizeof(at)),
	          time_ago(p->last_at, now, ago, sizeof(ago)));
}

/* "2 probers · last 1s ago" and, opened, one line per client. */
static void
probes_cell(struct ui_buf *b, const struct observe_node_view *v, int64_t now)
{
	char ago[48];
	int64_t last = v->untracked_at;
	size_t i;

	ui_raw(b, "<td class=\"c-probes\" data-label=\"Probed by\">");
	if (v->n_clients == 0 && v->n_untracked == 0) {
		ui_raw(b, "<span class=\"none\">no probes yet</span></td>");
		return;
	}
	for (i = 0; i < v->n_clients; i++)
		if (v->clients[i].last_at > last)
			last = v->clients[i].last_at;
	ui_printf(b, "<details class=\"probers\"><summary>%L prober%r%r · last %s</summary><ul>",
	          (int64_t)v->n_clients, v->n_clients == 1 ? "" : "s",
	          v->n_untracked > 0 ? " and more" : "", time_ago(last, now, ago, sizeof(ago)));
	for (i = 0; i < v->n_clients; i++)
		prober_item(b, &v->clients[i], now);
	if (v->n_untracked > 0)
		ui_printf(b,
		          "<li class=\"untracked\">%L answers to clients beyond the %d "
		          "remembered</li>",
		          (int64_t)v->n_untracked, OBSERVE_CLIENTS_MAX);
	ui_raw(b, "</ul></details></td>");
}

static void
node_row(struct ui_buf *b, const struct node *n, const struct observe_node_view *v, int can_change,
         int64_t now)
{
	char since[40], since_iso[40], expires[40];
	const char *st = node_status_name(n->status);

	ui_printf(b, "<tr data-node=\"%s\" class=\"row-%r\">", n->name, status_class(n->status));
	if (can_change)
		ui_printf(b,
		          "<td class=\"c-off\"><input type=\"checkbox\" id=\"off-%s\" name=\"off\" "
		          "value=\"%s\"%r></td><th scope=\"row\" class=\"c-name\"><label "
		          "for=\"off-%s\">%s</label></th>",
		          n->name, n->name, n->status != NODE_ONLINE ? " checked" : "", n->name,
		          n->name);
	else
		ui_printf(b, "<th scope=\"row\" class=\"c-name\">%s</th>", n->name);
	ui_printf(b,
	          "<td class=\"c-status\" data-label=\"Status\"><div class=\"st-box\"><span "
	          "class=\"st st-%r\">%s</span>",
	          status_class(n->status), st);
	if (is_check_down(n, v))
		ui_raw(b, "<span class=\"st st-down\" title=\"The application check fails: load "
		          "balancers are told the node is down\">down<span class=\"vh\"> (check "
		          "failing)</span></span>");
	check_state(b, n, v, now);
	ui_printf(
	    b,
	    "</div></td><td class=\"c-reason\" data-label=\"Reason\">%s</td>"
	    "<td class=\"c-by\" data-label=\"Changed by\">%s</td>"
	    "<td class=\"c-since\" data-label=\"Since\"><time datetime=\"%s\">%s</time></td>"
	    "<td class=\"c-exp\" data-label=\"Expires in\" data-expires=\"%L\">%s</td>",
	    n->reason, n->changed_by,
	    n->changed_at ? time_format_rfc3339(n->changed_at, since_iso, sizeof(since_iso)) : "",
	    ui_time(n->changed_at, since, sizeof(since)), n->expires_at,
	    n->expires_at ? duration_format(n->expires_at - now, expires, sizeof(expires)) : "");
	probes_cell(b, v, now);
	if (can_change)
		ui_printf(b,
		          "<td class=\"c-act\"><button type=\"submit\" name=\"drain\" value=\"%s\" "
		          "class=\"small\"%r>Drain <span class=\"vh\">%s</span></button></td>",
		          n->name, n->status == NODE_DRAIN ? " hidden" : "", n->name);
	ui_raw(b, "</tr>");
}

/* The names of the nodes that are out, space-separated: "shown". */
static void
shown_value(struct ui_buf *b, const struct cluster *c)
{
	size_t i;
	int is_first = 1;

	for (i = 0; i < c->n_nodes; i++) {
		if (cluster_node(c, i)->status == NODE_ONLINE)
			continue;
		if (!is_first)
			ui_raw(b, " ");
		ui_esc(b, cluster_node(c, i)->name);
		is_first = 0;
	}
}

static void
status_section(struct request *r, struct ui_buf *b, const struct cluster *c,
               const struct page_state *st)
{
	int can_change = r->role >= ROLE_OPERATOR && r->is_session;
	struct observe_node_view *view = xmalloc(sizeof(*view));
	int64_t now = time_now_ms();
	size_t i;

	ui_raw(b, "<section class=\"card\" aria-labelledby=\"h-nodes\">");
	if (can_change) {
		ui_printf(b,
		          "<form id=\"offline-form\" method=\"post\" action=\"%s" PAGE_SUFFIX
		          "\"><input type=\"hidden\" name=\"form\" value=\"status\">",
		          c->path);
		ui_csrf_input(r, b);
		ui_raw(b, "<input type=\"hidden\" name=\"shown\" id=\"shown\" value=\"");
		shown_value(b, c);
		ui_raw(b, "\">");
	}
	ui_printf(b, "<h2 id=\"h-nodes\">%r</h2>", can_change ? "Offline Nodes" : "Nodes");
	if (can_change)
		ui_raw(b, "<p class=\"hint\">Tick a node to take it out of service, untick it to "
		          "put it back, then save.</p>");
	if (st->status_error != NULL)
		ui_printf(b, "<p class=\"flash error\" role=\"alert\">%s</p>", st->status_error);
	ui_printf(
	    b,
	    "<div class=\"table-wrap\"><table id=\"nodes\" class=\"nodes\" data-cluster=\"%s\" "
	    "data-version=\"%L\" data-stamp=\"%L\" data-edit=\"%r\"><thead><tr>%r"
	    "<th scope=\"col\">Node</th>"
	    "<th scope=\"col\">Status</th><th scope=\"col\">Reason</th><th scope=\"col\">"
	    "Changed by</th><th scope=\"col\">Since</th><th scope=\"col\">Expires in</th>"
	    "<th scope=\"col\">Probed by</th>%r"
	    "</tr></thead><tbody>",
	    c->name, c->version, request_snapshot(r)->stamp, can_change ? "1" : "0",
	    can_change ? "<th scope=\"col\">Offline</th>" : "",
	    can_change ? "<th scope=\"col\"><span class=\"vh\">Actions</span></th>" : "");
	for (i = 0; i < c->n_nodes; i++) {
		observe_node_view(request_observe(r), c->name, cluster_node(c, i)->name,
		                  cluster_node(c, i)->changed_at, 0, view);
		node_row(b, cluster_node(c, i), view, can_change, now);
	}
	free(view);
	ui_raw(b, "</tbody></table></div>");
	if (c->n_nodes == 0)
		ui_raw(b, "<p class=\"empty\">This cluster has no nodes yet.</p>");
	if (can_change)
		ui_printf(
		    b,
		    "<div class=\"form-row\"><div class=\"field\"><label for=\"reason\">Reason "
		    "<span class=\"hint\">(for the nodes taken out)</span>"
		    "</label><input id=\"reason\" name=\"reason\" maxlength=\"" UI_LIMIT(
		        REASON_MAX) "\" "
		                    "value=\"%s\" placeholder=\"e.g. kernel update\"></div><div "
		                    "class=\"field\"><label for=\"ttl\">Back online after <span "
		                    "class=\"hint\">(optional)</span></label><input id=\"ttl\" "
		                    "name=\"ttl\" "
		                    "value=\"%s\" placeholder=\"e.g. 30m, 2h\"></div><button "
		                    "type=\"submit\" "
		                    "class=\"primary\">Save Offline Nodes</button></div></form>",
		    st->reason ? st->reason : "", st->ttl ? st->ttl : "");
	ui_raw(b, "</section>");
}

/* What one load balancer last saw of one node. */
struct lb_saw {
	int has;
	enum observe_protocol protocol;
	enum observe_answer answer;
	int64_t at;
};

/* The cluster's named load balancers and what each last saw of each node
 * (its newest probe of it, HTTP or agent). Each node's observations are
 * copied out once, for every load balancer. */
static void
lbs_section(struct request *r, struct ui_buf *b, const struct cluster *c)
{
	struct observe_node_view *view;
	struct lb_saw *saw;
	int64_t now = time_now_ms();
	char ago[48];
	size_t i, k, j;

	ui_raw(b, "<section class=\"card\" aria-labelledby=\"h-lbs\"><h2 id=\"h-lbs\">Load "
	          "balancers</h2>");
	if (c->n_lbs == 0) {
		ui_raw(b, "<p class=\"empty\">No load balancer is named: <code>wait</code> and "
		          "<code>rollout</code> wait for every prober they see. Name them with "
		          "<code>lbconfig --lb NAME</code> and <code>clustermgmt lb add</code>.</p>"
		          "</section>");
		return;
	}
	view = xmalloc(sizeof(*view));
	saw = xcalloc(c->n_lbs * c->n_nodes + 1, sizeof(*saw));
	for (i = 0; i < c->n_nodes; i++) {
		observe_node_view(request_observe(r), c->name, cluster_node(c, i)->name,
		                  cluster_node(c, i)->changed_at, 0, view);
		for (j = 0; j < view->n_clients; j++)
			for (k = 0; k < c->n_lbs; k++) {
				struct lb_saw *s = &saw[k * c->n_nodes + i];
				const struct observe_client_view *p = &view->clients[j];
				if (strcmp(p->lb, c->lbs[k].name) != 0 ||
				    (s->has && s->at >= p->last_at))
					continue;
				s->has = 1;
				s->protocol = p->protocol;
				s->answer = p->last_answer;
				s->at = p->last_at;
			}
	}
	free(view);
	ui_raw(b, "<div class=\"table-wrap\"><table id=\"lbs\" class=\"lbs\"><thead><tr>"
	          "<th scope=\"col\">Name</th><th scope=\"col\">Kind</th><th scope=\"col\">"
	          "Runtime</th><th scope=\"col\">Last saw</th></tr></thead><tbody>");
	for (k = 0; k < c->n_lbs; k++) {
		const struct lb *l = &c->lbs[k];
		ui_printf(b,
		          "<tr><th scope=\"row\">%s</th><td data-label=\"Kind\">%s</td>"
		          "<td data-label=\"Runtime\">%r%s%r</td><td data-label=\"Last saw\">"
		          "<details><summary>%L node%r</summary><ul>",
		          l->name, l->kind, l->runtime != NULL ? "<code>" : "",
		          l->runtime != NULL ? l->runtime : "-",
		          l->runtime != NULL ? "</code>" : "", (int64_t)c->n_nodes,
		          c->n_nodes == 1 ? "" : "s");
		for (i = 0; i < c->n_nodes; i++) {
			const struct lb_saw *s = &saw[k * c->n_nodes + i];
			if (!s->has)
				ui_printf(b,
				          "<li>%s: <span class=\"none\">no probe yet</span></li>",
				          cluster_node(c, i)->name);
			else
				ui_printf(
				    b,
				    "<li>%s: <span class=\"ans ans-%r\">%s</span> · %s · %s</li>",
				    cluster_node(c, i)->name,
				    observe_answer_is_serving(s->answer) ? "serving" : "not",
				    observe_answer_text(s->protocol, s->answer),
				    s->protocol == OBSERVE_AGENT ? "agent" : "HTTP",
				    time_ago(s->at, now, ago, sizeof(ago)));
		}
		ui_raw(b, "</ul></details></td></tr>");
	}
	free(saw);
	ui_raw(b, "</tbody></table></div></section>");
}

static void
node_list_section(struct request *r, struct ui_buf *b, const struct cluster *c,
                  const struct page_state *st)
{
	size_t i;

	if (r->role < ROLE_ADMIN || !r->is_session)
		return;
	ui_printf(b,
	          "<section class=\"card\" aria-labelledby=\"h-list\"><h2 id=\"h-list\">List of "
	          "Nodes</h2><form method=\"post\" action=\"%s" PAGE_SUFFIX "\" class=\"stack\">"
	          "<input type=\"hidden\" name=\"form\" value=\"nodes\">",
	          c->path);
	ui_csrf_input(r, b);
	ui_printf(b,
	          "<label for=\"nodes-text\">One node name per line</label><textarea "
	          "id=\"nodes-text\" name=\"nodes\" rows=\"%d\" spellcheck=\"false\" "
	          "autocomplete=\"off\"%r>",
	          c->n_nodes < 4    ? 5
	          : c->n_nodes > 16 ? 18
	                            : (int)c->n_nodes + 2,
	          st->nodes_error ? " aria-invalid=\"true\" aria-describedby=\"nodes-error\"" : "");
	if (st->nodes_text != NULL)
		ui_esc(b, st->nodes_text);
	else
		for (i = 0; i < c->n_nodes; i++)
			ui_printf(b, "%s\n", cluster_node(c, i)->name);
	ui_raw(b, "</textarea>");
	if (st->nodes_error != NULL)
		ui_printf(b, "<p id=\"nodes-error\" class=\"field-error\" role=\"alert\">%s</p>",
		          st->nodes_error);
	ui_raw(b, "<p class=\"hint\">Names: " NODE_NAME_RULE ". Duplicates collapse; removed nodes "
	          "are forgotten; new nodes start online.</p><div><button type=\"submit\" "
	          "class=\"primary\">Save Nodes</button></div></form></section>");
}

static void
audit_row(struct ui_buf *b, const struct audit_entry *e)
{
	char at[40];

	ui_printf(b,
	          "<tr><td data-label=\"When\">%s</td><td data-label=\"Who\">%s<span "
	          "class=\"addr\">%s</span></td><td data-label=\"Node\">%s</td><td "
	          "data-label=\"Change\">",
	          ui_time(e->at, at, sizeof(at)), e->actor, e->address, e->node);
	if (strcmp(e->action, "status") == 0)
		ui_printf(b,
		          "<span class=\"st st-%s\">%s</span> → <span class=\"st st-%s\">%s</span>",
		          e->old_status, e->old_status, e->new_status, e->new_status);
	else
		ui_esc(b, e->action);
	ui_printf(b, "</td><td data-label=\"Reason\">%s</td></tr>", e->reason);
}

static void
audit_section(struct ui_buf *b, const struct engine_job *job, const struct audit_log *log)
{
	size_t i;

	ui_raw(b,
	       "<section class=\"card\" aria-labelledby=\"h-audit\"><h2 id=\"h-audit\">Audit "
	       "log</h2><p class=\"hint\">The last 50 changes, newest first. Reload the page for "
	       "newer ones.</p>");
	if (job->rc != 0) {
		ui_printf(b,
		          "<p class=\"flash error\">The audit log cannot be read now: %s</p>"
		          "</section>",
		          job->err.what);
		return;
	}
	ui_raw(b, "<div class=\"table-wrap\"><table class=\"audit\"><thead><tr><th scope=\"col\">"
	          "When</th><th scope=\"col\">Who</th><th scope=\"col\">Node</th><th "
	          "scope=\"col\">Change</th><th scope=\"col\">Reason</th></tr></thead><tbody>");
	for (i = 0; i < log->n; i++)
		audit_row(b, &log->entries[i]);
	ui_raw(b, "</tbody></table></div>");
	if (log->n == 0)
		ui_raw(b, "<p class=\"empty\">Nothing has changed yet.</p>");
	ui_raw(b, "</section>");
}

/* The rollouts in progress on the cluster and the last ones that ended
 * (GET /v1/clusters/{c}/rollouts): the script fills and refreshes it
 * every few seconds, and shows it only when there is one; without the
 * script the API has them. */
static void
rollouts_section(struct ui_buf *b, const struct cluster *c)
{
	ui_printf(b,
	          "<section id=\"rollouts\" class=\"card\" aria-labelledby=\"h-rollouts\" "
	          "data-cluster=\"%s\" hidden><h2 id=\"h-rollouts\">Rollouts</h2>"
	          "<p class=\"rollouts-note\" role=\"status\" hidden></p>"
	          "<div class=\"rollouts-list\" aria-live=\"polite\"></div></section>",
	          c->name);
}

static void
page_render(struct request *r, struct engine_job *job)
{
	struct page_job *a = job->data;
	const struct cluster *c = model_find_cluster(request_snapshot(r), a->cluster);
	struct ui_buf b;
	size_t online;

	if (c == NULL) {
		ui_reply_message(r, 404, "No such cluster", "The cluster was removed.", "/",
		                 "Go to the clusters");
		return;
	}
	online = cluster_count_online(c);
	ui_buf_init(&b, 8192 + c->n_nodes * 900 + job->audit.n * 400);
	ui_page_begin(r, &b, c->name, c);
	ui_printf(&b,
	          "<div class=\"page-head\"><h1>%s <code class=\"mount\">%s</code></h1>"
	          "<p id=\"summary\" class=\"summary\" aria-live=\"polite\"><span class=\"count "
	          "count-%r\">%L of %L nodes online</span></p></div>",
	          c->name, c->path,
	          c->n_nodes == 0        ? "none"
	          : online == c->n_nodes ? "online"
	          : online == 0          ? "offline"
	                                 : "partial",
	          (int64_t)online, (int64_t)c->n_nodes);
	ui_raw(&b, "<p id=\"live\" class=\"live\" hidden></p>");
	if (a->st.notice != NULL)
		ui_printf(&b, "<p class=\"flash ok\" role=\"status\">%s</p>", a->st.notice);
	rollouts_section(&b, c);
	status_section(r, &b, c, &a->st);
	lbs_section(r, &b, c);
	node_list_section(r, &b, c, &a->st);
	audit_section(&b, job, &job->audit);
	ui_page_end(&b);
	ui_reply_html(r, a->st.status ? a->st.status : 200, &b);
}

/* Renders the page of cluster c with st (whose strings it takes over). */
static void
page_show(struct request *r, const struct cluster *c, struct page_state *st)
{
	struct engine_job *job = request_job_new(r, NULL, sizeof(struct page_job));
	struct page_job *a = job->data;

	engine_job_read_audit(job, c->name, AUDIT_SHOWN);
	job->free_data = page_job_free;
	snprintf(a->cluster, sizeof(a->cluster), "%s", c->name);
	a->st = *st;
	memset(st, 0, sizeof(*st));
	request_job_submit(r, job, page_render);
}

static const char *
done_notice(struct request *r)
{
	char done[16];

	if (request_query_param(r, "done", done, sizeof(done)) != 1)
		return NULL;
	if (strcmp(done, "status") == 0)
		return "Status saved.";
	if (strcmp(done, "nodes") == 0)
		return "Node list saved.";
	if (strcmp(done, "nothing") == 0)
		return "Nothing changed: every node already had the status asked for.";
	return NULL;
}

static void
page_again(struct request *r)
{
	ui_nodes_page(r, &r->route);
}

void
ui_nodes_page(struct request *r, const struct route *rt)
{
	const struct cluster *c = page_cluster(r, rt);
	struct page_state st = {0};

	if (c == NULL) {
		ui_reply_message(r, 404, "No such cluster", "The cluster was removed.", "/",
		                 "Go to the clusters");
		return;
	}
	if (!request_remote_ready(r, c->name, NULL, page_again))
		return; /* again once the other daemons' reports of it are read */
	st.notice = done_notice(r);
	page_show(r, c, &st);
}

/* Shows the page again with status and an error beside the offline
 * form, keeping the reason and TTL typed. */
static void
page_status_error(struct request *r, const struct cluster *c, int status, const char *what)
{
	struct page_state st = {0};

	st.status = status;
	st.status_error = xstrdup(what);
	st.reason = ui_field(r, "reason");
	st.ttl = ui_field(r, "ttl");
	page_show(r, c, &st);
}

static void
redirect_done(struct request *r, const struct cluster *c, const char *done)
{
	char location[200];

	snprintf(location, sizeof(location), "%s" PAGE_SUFFIX "?done=%s", c->path, done);
	reply_redirect(r, 303, location);
}

/* --- status -------------------------------------------------------------- */

/* What the status form asks for, per node of the cluster (by index). */
struct status_form {
	const struct cluster *c;
	char *is_wanted_out;             /* ticked now */
	char *was_out;                   /* ticked when the page was drawn ("shown") */
	char unknown[NODE_NAME_MAX + 1]; /* a ticked node that is gone */
};

static ptrdiff_t
node_index(const struct cluster *c, const char *name)
{
	int found;
	size_t at;

	if (!node_name_is_valid(name, strlen(name)))
		return -1;
	at = cluster_node_position(c, name, strlen(name), &found);
	return found ? (ptrdiff_t)at : -1;
}

static void
mark_wanted_out(void *arg, const char *name)
{
	struct status_form *f = arg;
	ptrdiff_t i = node_index(f->c, name);

	if (i >= 0)
		f->is_wanted_out[i] = 1;
	else if (f->unknown[0] == '\0')
		snprintf(f->unknown, sizeof(f->unknown), "%.64s", name);
}

static void
mark_was_out(struct status_form *f, char *shown)
{
	char *save = NULL, *name;

	for (name = strtok_r(shown, " ", &save); name != NULL; name = strtok_r(NULL, " ", &save)) {
		ptrdiff_t i = node_index(f->c, name);
		if (i >= 0)
			f->was_out[i] = 1;
	}
}

/* One change entry with the form's reason and TTL (for "online", none). */
static json_t *
change_json(const char *status, const char *reason, int64_t ttl_s)
{
	json_t *e = json_pack("{s:s}", "status", status);

	if (strcmp(status, "online") != 0 && reason != NULL && reason[0] != '\0')
		json_object_set_new(e, "reason", json_string(reason));
	if (strcmp(status, "online") != 0 && ttl_s > 0)
		json_object_set_new(e, "ttl", json_integer(ttl_s));
	return e;
}

/* The change set the form asks for (maybe empty), or NULL with what
 * filled. *online_after counts the nodes online once it is applied. */
static json_t *
status_changes(struct request *r, const struct cluster *c, const char *reason, int64_t ttl_s,
               size_t *online_after, char *what, size_t what_size)
{
	struct status_form f = {.c = c};
	char *drain = ui_field(r, "drain"), *shown = ui_field(r, "shown");
	json_t *changes = json_object();
	size_t i;

	f.is_wanted_out = xcalloc(c->n_nodes + 1, 1);
	f.was_out = xcalloc(c->n_nodes + 1, 1);
	if (drain == NULL) {
		ui_field_each(r, "off", mark_wanted_out, &f);
		if (shown != NULL)
			mark_was_out(&f, shown);
	}
	if (f.unknown[0] != '\0' || (drain != NULL && node_index(c, drain) < 0)) {
		snprintf(what, what_size,
		         "Node %s is no longer in this cluster; nothing was changed.",
		         drain ? drain : f.unknown);
		json_decref(changes);
		changes = NULL;
		goto done;
	}
	*online_after = 0;
	for (i = 0; i < c->n_nodes; i++) {
		const struct node *n = cluster_node(c, i);
		int is_drain = drain != NULL && strcmp(drain, n->name) == 0;
		const char *to = is_drain                              ? "drain"
		                 : f.is_wanted_out[i] && !f.was_out[i] ? "offline"
		                 : !f.is_wanted_out[i] && f.was_out[i] ? "online"
		                                                       : NULL;
		if (to != NULL)
			json_object_set_new(changes, n->name, change_json(to, reason, ttl_s));
		*online_after += to ? strcmp(to, "online") == 0 : n->status == NODE_ONLINE;
	}
done:
	free(f.is_wanted_out);
	free(f.was_out);
	free(drain);
	free(shown);
	return changes;
}

/* Re-emits one value of field "off" as a hidden input. */
static void
hidden_off(void *arg, const char *value)
{
	ui_printf(arg, "<input type=\"hidden\" name=\"off\" value=\"%s\">", value);
}

static void
hidden_field(struct request *r, struct ui_buf *b, const char *name)
{
	char *v = ui_field(r, name);

	if (v != NULL)
		ui_printf(b, "<input type=\"hidden\" name=\"%s\" value=\"%s\">", name, v);
	free(v);
}

/* The server's confirmation step: the same form again, with confirm=yes. */
static void
confirm_page(struct request *r, const struct cluster *c)
{
	struct ui_buf b;

	ui_buf_init(&b, 4096);
	ui_page_begin(r, &b, "Confirm", c);
	ui_printf(&b,
	          "<section class=\"card narrow\"><h1>Take the last online node out?</h1><p "
	          "class=\"message\">After this change no node of cluster <strong>%s</strong> "
	          "is online: the load balancers will have nowhere to send requests.</p><form "
	          "method=\"post\" action=\"%s" PAGE_SUFFIX "\"><input type=\"hidden\" "
	          "name=\"confirm\" value=\"yes\">",
	          c->name, c->path);
	hidden_field(r, &b, "csrf");
	hidden_field(r, &b, "form");
	hidden_field(r, &b, "shown");
	hidden_field(r, &b, "drain");
	hidden_field(r, &b, "reason");
	hidden_field(r, &b, "ttl");
	ui_field_each(r, "off", hidden_off, &b);
	ui_printf(&b,
	          "<div class=\"form-row\"><button type=\"submit\" class=\"danger\">Yes, take it "
	          "out</button><a class=\"button\" href=\"%s" PAGE_SUFFIX "\">Cancel</a></div>"
	          "</form></section>",
	          c->path);
	ui_page_end(&b);
	ui_reply_html(r, 200, &b);
}

/* The TTL field: "" (none) or a duration such as 90s, 30m, 2h, 1d. */
static int
ttl_seconds(const char *ttl, int64_t *out)
{
	int64_t ms;

	*out = 0;
	if (ttl == NULL || ttl[0] == '\0')
		return 0;
	/* the core refuses what is above its limit, in its own words */
	if (duration_parse(ttl, 1, 366LL * 86400 * 1000, &ms) != 0)
		return -1;
	*out = (ms + 999) / 1000;
	return 0;
}

static void
status_job_done(struct request *r, struct engine_job *job)
{
	const char *name = job->command.cluster;
	const struct cluster *c = model_find_cluster(request_snapshot(r), name);

	if (c == NULL)
		ui_reply_message(r, 404, "No such cluster", "The cluster was removed.", "/",
		                 "Go to the clusters");
	else if (job->rc != 0)
		page_status_error(r, c, job->err.status, job->err.what);
	else
		redirect_done(r, c, "status");
}

static void
status_post(struct request *r, const struct cluster *c)
{
	char *reason = ui_field(r, "reason"), *ttl = ui_field(r, "ttl"), what[600];
	struct engine_job *job = NULL;
	struct command *cmd;
	struct error err;
	json_t *changes = NULL;
	size_t online_after = 0;
	int64_t ttl_s;

	if (ttl_seconds(ttl, &ttl_s) != 0) {
		page_status_error(
		    r, c, 400,
		    "Back online after: give a duration such as 90s, 30m, 2h or 1d, or "
		    "leave it empty. Nothing was changed.");
		goto done;
	}
	changes = status_changes(r, c, reason, ttl_s, &online_after, what, sizeof(what));
	if (changes == NULL) {
		page_status_error(r, c, 409, what);
		goto done;
	}
	if (json_object_size(changes) == 0) {
		redirect_done(r, c, "nothing");
		goto done;
	}
	job = request_job_new(r, NULL, 0);
	cmd = engine_job_command(job, COMMAND_SET_STATUS);
	cmd->cluster = xstrdup(c->name);
	if (change_set_from_json(changes, &cmd->changes, &err) != 0) {
		snprintf(what, sizeof(what), "%s. Nothing was changed.", err.what);
		page_status_error(r, c, err.status, what);
		goto done;
	}
	if (online_after == 0 && cluster_count_online(c) > 0 && !ui_field_is(r, "confirm", "yes")) {
		confirm_page(r, c);
		goto done;
	}
	request_job_submit(r, job, status_job_done);
	job = NULL;
done:
	if (job != NULL) {
		engine_job_release(job);
		free(job);
	}
	json_decref(changes);
	free(reason);
	free(ttl);
}

/* --- node list ----------------------------------------------------------- */

/* What the page shows again when the list is refused: the text as typed. */
struct node_list_job {
	char *text; /* malloc'd */
};

static void
node_list_free(void *data)
{
	struct node_list_job *a = data;

	free(a->text);
}

static void
page_nodes_error(struct request *r, const struct cluster *c, int status, const char *what,
                 char *text)
{
	struct page_state st = {0};

	st.status = status;
	st.nodes_error = xstrdup(what);
	st.nodes_text = text;
	page_show(r, c, &st);
}

static void
node_list_done(struct request *r, struct engine_job *job)
{
	struct node_list_job *a = job->data;
	const struct cluster *c = model_find_cluster(request_snapshot(r), job->command.cluster);

	if (c == NULL) {
		ui_reply_message(r, 404, "No such cluster", "The cluster was removed.", "/",
		                 "Go to the clusters");
	} else if (job->rc != 0) {
		page_nodes_error(r, c, job->err.status, job->err.what, a->text);
		a->text = NULL;
	} else {
		redirect_done(r, c, "nodes");
	}
}

/* Splits text into trimmed non-empty lines, in place (NUL-terminated,
 * packed at the start of text). Returns their number; *bytes is what
 * they take. */
static size_t
split_lines(char *text, size_t *bytes)
{
	char *out = text, *p = text;
	size_t n = 0;

	while (*p != '\0') {
		char *end = p + strcspn(p, "\r\n"), *next = *end ? end + 1 : end;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (end > p) {
			memmove(out, p, (size_t)(end - p));
			out += end - p;
			*out++ = '\0';
			n++;
		}
		p = next;
	}
	*bytes = (size_t)(out - text);
	return n;
}

/* Why the names are refused ("" when they are all valid). */
static void
names_problem(const char *names, size_t n, char *what, size_t size)
{
	size_t i, bad = 0, len = 0;

	what[0] = '\0';
	for (i = 0; i < n; names += strlen(names) + 1, i++) {
		if (node_name_is_valid(names, strlen(names)))
			continue;
		if (bad++ < INVALID_SHOWN)
			len += (size_t)snprintf(what + len, len < size ? size - len : 0,
			                        "%s'%.64s'", bad > 1 ? ", " : "Not saved: ", names);
	}
	if (bad > 0 && len < size)
		snprintf(what + len, size - len,
		         "%s %s not a valid node name (" NODE_NAME_RULE "). Nothing was changed.",
		         bad > INVALID_SHOWN ? " and more" : "", bad > 1 ? "are" : "is");
}

static void
node_list_post(struct request *r, const struct cluster *c)
{
	char *text = ui_field(r, "nodes"), *names, *name, what[600];
	struct node_list_job *a;
	struct engine_job *job;
	struct command *cmd;
	size_t n, bytes, i;

	if (text == NULL)
		text = xstrdup("");
	names = xstrdup(text);
	n = split_lines(names, &bytes);
	names_problem(names, n, what, sizeof(what));
	if (what[0] != '\0') {
		page_nodes_error(r, c, 400, what, text);
		free(names);
		return;
	}
	job = request_job_new(r, NULL, sizeof(*a));
	job->free_data = node_list_free;
	a = job->data;
	a->text = text;
	cmd = engine_job_command(job, COMMAND_SET_NODE_LIST);
	cmd->cluster = xstrdup(c->name);
	for (i = 0, name = names; i < n; name += strlen(name) + 1, i++)
		command_add_name(cmd, name);
	free(names);
	request_job_submit(r, job, node_list_done);
}

/* Runs post on the page's cluster, or says it is gone. */
static void
post_to_cluster(struct request *r, const struct route *rt,
                void (*post)(struct request *r, const struct cluster *c))
{
	const struct cluster *c = page_cluster(r, rt);

	if (c == NULL)
		ui_reply_message(r, 404, "No such cluster", "The cluster was removed.", "/",
		                 "Go to the clusters");
	else
		post(r, c);
}

/* The router's form gate picked the line by the form field and checked
 * the session, the CSRF token, the origin and that line's role. */
void
ui_nodes_status_post(struct request *r, const struct route *rt)
{
	post_to_cluster(r, rt, status_post);
}

void
ui_nodes_list_post(struct request *r, const struct route *rt)
{
	post_to_cluster(r, rt, node_list_post);
}
