/*
 * ui.c - the management web page (PRODUCT §7): routing, the sign-in gate,
 * the page frame, and the cluster list.
 *
 * Map of this file:
 *
 *   routing    none: the page's paths are lines of the router's table
 *              (router.c), which also runs the gates below before the
 *              handlers; here only the page's 405 and
 *              {mount}/manage_main, which redirects.
 *   gates      ui_page_auth for pages (session cookie, else Basic/Bearer,
 *              else a redirect to /login); ui_post_guard for forms
 *              (session + CSRF token + same origin + role).
 *   frame      ui_page_begin/ui_page_end and ui_reply_message.
 *   forms      ui_field, ui_field_each: urlencoded bodies as the page's
 *              forms send them.
 *   clusters   "/" (name, mount, online/total, links) and, for admins,
 *              adding and removing clusters (POST /clusters).
 *
 * Decisions: pages are server-rendered and work without JavaScript; the
 * script only makes the status table live and asks for confirmations.
 * Form POSTs always need a signed-in session and its CSRF token, also
 * when the browser sends HTTP Basic credentials: scripts use the API,
 * and a form that Basic alone could submit would be open to cross-site
 * requests. Every POST answers with a redirect (303) on success, or with
 * the page again, what was typed kept and the problem next to it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "../util/url.h"
#include "../util/xalloc.h"
#include "../util/timefmt.h"
#include "ui.h"

#define NEXT_MAX 512

/* --- routing ------------------------------------------------------------- */

void
ui_reply_method_not_allowed(struct request *r, const char *allow)
{
	ui_header(r, "allow", allow);
	ui_reply_message(r, 405, "Method not allowed", "This address does not take that method.",
	                 "/", "Go to the clusters");
}

void
ui_manage_main(struct request *r, const struct route *rt)
{
	const struct cluster *c = model_find_cluster(request_snapshot(r), rt->cluster);
	char location[160];

	if (c == NULL) {
		reply_text(r, 404, "not found");
		return;
	}
	snprintf(location, sizeof(location), "%s/managenodes", c->path);
	reply_redirect(r, 302, location);
}

/* --- gates --------------------------------------------------------------- */

static void
redirect_to_login(struct request *r)
{
	char next[NEXT_MAX], location[NEXT_MAX * 3 + 32], *escaped;
	int n = snprintf(next, sizeof(next), "%.*s%s%.*s", (int)r->path.len, r->path.base,
	                 r->query.len ? "?" : "", (int)r->query.len, r->query.base);

	if (n < 0 || (size_t)n >= sizeof(next))
		snprintf(next, sizeof(next), "%.*s", (int)r->path.len, r->path.base);
	/* Everything but unreserved characters is percent-encoded, '/' too;
	 * the login page decodes it. The handle argument is unused since
	 * curl 7.82; NULL means out of memory. */
	if ((escaped = curl_easy_escape(NULL, next, 0)) == NULL)
		abort();
	snprintf(location, sizeof(location), "/login?next=%s", escaped);
	curl_free(escaped);
	reply_redirect(r, 303, location);
}

/* Signed in, but no role is mapped to the principal anywhere. */
static void
no_role_page(struct request *r)
{
	struct ui_buf b;

	auth_log_refusal(r, ROLE_VIEWER);
	ui_buf_init(&b, 2048);
	ui_page_begin(r, &b, "No role", NULL);
	ui_printf(&b,
	          "<section class=\"card narrow\"><h1>No role</h1>"
	          "<p id=\"no-role\">You are signed in as <strong>%s</strong>, but no role on "
	          "any cluster is given to you or to your groups, so there is nothing here "
	          "you may see or change.</p>"
	          "<p class=\"hint\">Ask an administrator to map one of your groups in the "
	          "roles file.</p></section>",
	          r->who);
	ui_page_end(&b);
	ui_reply_html(r, 403, &b);
}

void
ui_page_auth(struct request *r, request_handler then)
{
	char path[NEXT_MAX];
	int n;

	if (ui_session_identify(r)) {
		if (r->role >= ROLE_VIEWER) {
			then(r);
		} else if (r->grants != NULL && grants_role_outside(r->grants) >= ROLE_VIEWER) {
			auth_log_refusal(r, ROLE_VIEWER);
			ui_reply_message(r, 403, "Not allowed",
			                 "Your role gives you nothing on this cluster.", "/",
			                 "Go to the clusters");
		} else {
			no_role_page(r);
		}
	} else if (ui_session_proxy_start(r)) {
		n = snprintf(path, sizeof(path), "%.*s%s%.*s", (int)r->path.len, r->path.base,
		             r->query.len ? "?" : "", (int)r->query.len, r->query.base);
		reply_redirect(r, 303, n > 0 && (size_t)n < sizeof(path) ? path : "/");
	} else if (request_header(r, H2O_TOKEN_AUTHORIZATION).base != NULL)
		auth_require(r, ROLE_VIEWER, 0, then);
	else
		redirect_to_login(r);
}

int
ui_post_guard(struct request *r, enum role min_role)
{
	char *csrf = NULL, why[200];

	if (!r->is_session && !ui_session_identify(r)) {
		ui_reply_message(r, 403, "Sign in first",
		                 "Forms need a signed-in session (scripts use the API). "
		                 "Nothing was changed.",
		                 "/login", "Sign in");
		return -1;
	}
	if (r->req->entity.len > BODY_MAX) {
		ui_reply_message(r, 413, "Too large",
		                 "The form is larger than the daemon accepts. Nothing was changed.",
		                 "/", "Go to the clusters");
		return -1;
	}
	if (!ui_origin_is_same(r)) {
		ui_reply_message(r, 403, "Refused",
		                 "This form was sent from another site. Nothing was changed.", "/",
		                 "Go to the clusters");
		return -1;
	}
	csrf = ui_field(r, "csrf");
	if (!ui_csrf_is_valid(r, csrf)) {
		free(csrf);
		ui_reply_message(r, 403, "Refused",
		                 "The form's security token is missing or out of date. Nothing was "
		                 "changed. Reload the page and try again.",
		                 "/", "Go to the clusters");
		return -1;
	}
	free(csrf);
	if (r->role < min_role) {
		auth_log_refusal(r, min_role);
		snprintf(why, sizeof(why),
		         "Your role (%s) may not do this; it needs %s. Nothing was "
		         "changed.",
		         role_name(r->role), role_name(min_role));
		ui_reply_message(r, 403, "Not allowed", why, "/", "Go to the clusters");
		return -1;
	}
	return 0;
}

void
ui_csrf_input(struct request *r, struct ui_buf *b)
{
	char token[UI_CSRF_SIZE];

	if (ui_csrf_token(r, token) == 0)
		ui_printf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", token);
}

/* --- frame --------------------------------------------------------------- */

void
ui_page_begin(struct request *r, struct ui_buf *b, const char *title, const struct cluster *cluster)
{
	ui_printf(b,
	          "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
	          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
	          "<title>%s · clustermgmt</title>"
	          "<link rel=\"stylesheet\" href=\"/static/ui.css\">"
	          "<link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">"
	          "<script src=\"/static/ui.js\" defer></script></head><body>"
	          "<a class=\"skip\" href=\"#main\">Skip to content</a>"
	          "<header class=\"top\"><a class=\"brand\" href=\"/\">clustermgmt</a>",
	          title);
	if (r->role != ROLE_NONE || r->is_session) {
		char scope[256];
		ui_raw(b, "<nav aria-label=\"Main\"><a href=\"/\">Clusters</a>");
		if (cluster != NULL)
			ui_printf(b, "<a href=\"%s/managenodes\" aria-current=\"page\">%s</a>",
			          cluster->path, cluster->name);
		if (r->role >= ROLE_ADMIN)
			ui_raw(b, "<a href=\"/admin\">Users &amp; tokens</a>");
		ui_printf(b,
		          "</nav><div class=\"who\"><span>%s <span class=\"role\">%s</span></span>",
		          r->who,
		          r->grants != NULL ? grants_describe(r->grants, scope, sizeof(scope))
		                            : role_name(r->role));
		if (r->is_session) {
			ui_raw(b, "<form method=\"post\" action=\"/logout\">");
			ui_csrf_input(r, b);
			ui_raw(b,
			       "<button type=\"submit\" class=\"link\">Sign out</button></form>");
		}
		ui_raw(b, "</div>");
	}
	ui_raw(b, "</header><main id=\"main\">");
	if (r->role >= ROLE_OPERATOR && !r->is_session)
		ui_raw(b,
		       "<p class=\"flash note\">You came in with HTTP credentials, so this page is "
		       "read-only. <a href=\"/login\">Sign in</a> to change things.</p>");
}

void
ui_page_end(struct ui_buf *b)
{
	ui_raw(b, "</main><footer>clustermgmt " CM_VERSION "</footer></body></html>\n");
}

void
ui_reply_message(struct request *r, int status, const char *title, const char *text,
                 const char *link, const char *link_text)
{
	struct ui_buf b;

	ui_buf_init(&b, 2048);
	ui_page_begin(r, &b, title, NULL);
	ui_printf(&b, "<section class=\"card narrow\"><h1>%s</h1><p class=\"message\">%s</p>",
	          title, text);
	if (link != NULL)
		ui_printf(&b, "<p><a href=\"%s\">%s</a></p>", link, link_text);
	ui_raw(&b, "</section>");
	ui_page_end(&b);
	ui_reply_html(r, status, &b);
}

/* --- forms --------------------------------------------------------------- */

int
ui_field_each(struct request *r, const char *name, void (*fn)(void *arg, const char *value),
              void *arg)
{
	h2o_iovec_t body = r->req->entity;
	const char *pos = body.base;
	struct url_form_pair pair;

	if (body.len > BODY_MAX)
		return -1;
	while (url_form_next(&pos, body.base + body.len, &pair))
		if (url_form_key_is(&pair, name)) {
			char *value = url_form_decode(pair.value, pair.value_len);
			if (value == NULL)
				return -1;
			fn(arg, value);
			free(value);
		}
	return 0;
}

char *
ui_field(struct request *r, const char *name)
{
	struct error err;
	char *value = NULL;

	if (form_field(r, name, &value, &err) != 0)
		return NULL;
	return value;
}

int
ui_field_is(struct request *r, const char *name, const char *value)
{
	char *v = ui_field(r, name);
	int yes = v != NULL && strcmp(v, value) == 0;

	free(v);
	return yes;
}

/* --- clusters ------------------------------------------------------------ */

static const char *
done_notice(struct request *r)
{
	char done[32];

	if (request_query_param(r, "done", done, sizeof(done)) != 1)
		return NULL;
	if (strcmp(done, "cluster-added") == 0)
		return "Cluster added.";
	if (strcmp(done, "cluster-removed") == 0)
		return "Cluster removed.";
	return NULL;
}

static void
cluster_rows(struct request *r, struct ui_buf *b, const struct model *m)
{
	size_t i;

	for (i = 0; i < m->n_clusters; i++) {
		const struct cluster *c = &m->clusters[i];
		size_t online = cluster_count_online(c);
		if (auth_role_on(r, c->name) < ROLE_VIEWER) /* only what the user may see */
			continue;
		const char *state = c->n_nodes == 0        ? "none"
		                    : online == c->n_nodes ? "online"
		                    : online == 0          ? "offline"
		                                           : "partial";

		ui_printf(b,
		          "<tr><td data-label=\"Cluster\"><a href=\"%s/managenodes\">%s</a></td>"
		          "<td data-label=\"Mount path\"><code>%s</code></td>"
		          "<td data-label=\"Online\"><span class=\"count count-%r\">%L / %L "
		          "online</span></td>",
		          c->path, c->name, c->path, state, (int64_t)online, (int64_t)c->n_nodes);
		if (r->role >= ROLE_ADMIN && r->is_session) {
			ui_printf(
			    b,
			    "<td><form method=\"post\" action=\"/clusters\" data-confirm=\"Remove "
			    "cluster %s and forget its nodes?\"><input type=\"hidden\" "
			    "name=\"form\" value=\"remove\"><input type=\"hidden\" name=\"name\" "
			    "value=\"%s\">",
			    c->name, c->name);
			ui_csrf_input(r, b);
			ui_printf(b,
			          "<button type=\"submit\" class=\"danger small\">Remove "
			          "<span class=\"vh\">cluster %s</span></button></form></td>",
			          c->name);
		}
		ui_raw(b, "</tr>");
	}
}

static void
cluster_add_form(struct request *r, struct ui_buf *b, const char *error, const char *name,
                 const char *path)
{
	ui_raw(b, "<section class=\"card\"><h2>Add a cluster</h2>"
	          "<form method=\"post\" action=\"/clusters\" class=\"inline-form\">"
	          "<input type=\"hidden\" name=\"form\" value=\"add\">");
	ui_csrf_input(r, b);
	ui_printf(
	    b,
	    "<div class=\"field\"><label for=\"cl-name\">Name</label><input id=\"cl-name\" "
	    "name=\"name\" required maxlength=\"" UI_LIMIT(
	        NODE_NAME_MAX) "\" value=\"%s\"></div>"
	                       "<div class=\"field\"><label for=\"cl-path\">Mount "
	                       "path</label><input "
	                       "id=\"cl-path\" name=\"path\" required maxlength=\"" UI_LIMIT(
	                           CLUSTER_PATH_MAX) "\" placeholder=\"/shop\" "
	                                             "value=\"%s\"></div><button type=\"submit\" "
	                                             "class=\"primary\">Add cluster</button>"
	                                             "</form>",
	    name ? name : "", path ? path : "");
	if (error != NULL)
		ui_printf(b, "<p class=\"field-error\" role=\"alert\">%s</p>", error);
	ui_raw(b, "</section>");
}

/* Every daemon of the store (GET /v1/daemons shows the same), so that an
 * operator sees from any daemon which ones lag or are gone. */
static void
daemons_section(struct request *r, struct ui_buf *b)
{
	struct share_fleet f;
	int64_t now = time_now_ms(), stale_ms = request_stale_after_ms(r);
	char beat[40], lag[64];
	size_t i;

	request_fleet(r, &f);
	ui_raw(b, "<section class=\"card\" aria-labelledby=\"h-daemons\"><h2 id=\"h-daemons\">"
	          "Daemons</h2><div class=\"table-wrap\"><table class=\"list daemons\"><thead><tr>"
	          "<th scope=\"col\">Daemon</th><th scope=\"col\">Version</th><th "
	          "scope=\"col\">Lag</th><th scope=\"col\">Last heartbeat</th><th "
	          "scope=\"col\">State</th></tr></thead><tbody>");
	for (i = 0; i < f.n; i++) {
		const struct daemon_record *d = &f.daemons[i];
		int64_t behind = f.store_version > d->version ? f.store_version - d->version : 0;
		int is_stale = now - d->heartbeat_at > stale_ms;
		snprintf(lag, sizeof(lag), "%lld version%s, %.1f s", (long long)behind,
		         behind == 1 ? "" : "s",
		         behind > 0 && f.changed_at > 0 && now > f.changed_at
		             ? (double)(now - f.changed_at) / 1000.0
		             : 0.0);
		ui_printf(b,
		          "<tr><th scope=\"row\"><code>%s</code>%r</th><td data-label=\"Version\">"
		          "%L</td><td data-label=\"Lag\">%s</td><td data-label=\"Last heartbeat\">"
		          "%s</td><td data-label=\"State\"><span class=\"%s\">%s</span></td></tr>",
		          d->id, strcmp(d->id, request_daemon_id(r)) == 0 ? " (this one)" : "",
		          d->version, lag, ui_time(d->heartbeat_at, beat, sizeof(beat)),
		          is_stale ? "status offline" : "status online", is_stale ? "stale" : "ok");
	}
	ui_raw(b, "</tbody></table></div></section>");
	free(f.daemons);
}

static void
root_render(struct request *r, int status, const char *error, const char *name, const char *path)
{
	const struct model *m = request_snapshot(r);
	const char *notice = done_notice(r);
	int is_admin = r->role >= ROLE_ADMIN && r->is_session;
	struct ui_buf b;

	ui_buf_init(&b, 4096 + m->n_clusters * 400);
	ui_page_begin(r, &b, "Clusters", NULL);
	ui_raw(&b, "<h1>Clusters</h1>");
	if (notice != NULL)
		ui_printf(&b, "<p class=\"flash ok\" role=\"status\">%s</p>", notice);
	ui_raw(&b, "<section class=\"card\"><table class=\"list\"><thead><tr><th "
	           "scope=\"col\">Cluster</th><th scope=\"col\">Mount path</th><th "
	           "scope=\"col\">Nodes</th>");
	if (is_admin)
		ui_raw(&b, "<th scope=\"col\"><span class=\"vh\">Actions</span></th>");
	ui_raw(&b, "</tr></thead><tbody>");
	cluster_rows(r, &b, m);
	ui_raw(&b, "</tbody></table>");
	if (m->n_clusters == 0)
		ui_raw(&b, "<p class=\"empty\">There are no clusters.</p>");
	ui_raw(&b, "</section>");
	if (is_admin)
		cluster_add_form(r, &b, error, name, path);
	daemons_section(r, &b);
	ui_page_end(&b);
	ui_reply_html(r, status, &b);
}

void
ui_root_page(struct request *r, const struct route *rt)
{
	(void)rt;
	root_render(r, 200, NULL, NULL, NULL);
}

static void
cluster_job_done(struct request *r, struct engine_job *job)
{
	const struct command *c = &job->command;
	int is_add = c->kind == COMMAND_ADD_CLUSTER;

	if (job->rc == 0)
		reply_redirect(r, 303, is_add ? "/?done=cluster-added" : "/?done=cluster-removed");
	else if (is_add)
		root_render(r, job->err.status, job->err.what, c->cluster, c->path);
	else
		root_render(r, job->err.status, job->err.what, NULL, NULL);
}

void
ui_clusters_post(struct request *r, const struct route *rt)
{
	char *name, *path;
	struct engine_job *job;
	struct command *cmd;
	int is_add;

	(void)rt; /* the router's form gate let an admin in */
	is_add = ui_field_is(r, "form", "add");
	name = ui_field(r, "name");
	path = is_add ? ui_field(r, "path") : NULL;
	if (name == NULL || strlen(name) > NODE_NAME_MAX || (is_add && path == NULL) ||
	    (path != NULL && strlen(path) > CLUSTER_PATH_MAX)) {
		root_render(r, 400,
		            "The name must be " NODE_NAME_RULE " and the mount "
		            "path at most 128 characters, like /shop.",
		            name, path);
		goto done;
	}
	job = request_job_new(r, NULL, 0);
	cmd = engine_job_command(job, is_add ? COMMAND_ADD_CLUSTER : COMMAND_REMOVE_CLUSTER);
	cmd->cluster = xstrdup(name);
	cmd->path = is_add ? xstrdup(path) : NULL;
	request_job_submit(r, job, cluster_job_done);
done:
	free(name);
	free(path);
}
