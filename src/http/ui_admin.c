/*
 * ui_admin.c - /admin: users and API tokens, for admins.
 *
 * Map of this file:
 *
 *   page    the users (name, role, created) and tokens (id, role, the
 *           clusters it holds on, description, created by, created) with a
 *           form to add each and a button to remove each; a token just
 *           created is shown once, on the page that answers its creation,
 *           and never again.
 *   posts   one form field "form" says what to do: user-add, user-remove,
 *           token-create, token-revoke (the admin_forms table). Each
 *           becomes one command (core/command.h); a new user's password is
 *           hashed by it on the engine's side thread (argon2id is slow on
 *           purpose) and wiped once hashed.
 *   scope   a token may be scoped to clusters (the form's multi-select,
 *           as `token create --cluster`): each must exist when the form
 *           arrives, else nothing is created and the page says which.
 *
 * Removing a user ends their sessions at once (ui_session_drop_user, and
 * in any case every request checks the session against the snapshot) and
 * forgets cached Basic credentials. The last admin cannot be removed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../util/xalloc.h"
#include "ui.h"

#define TOKEN_SIZE 256
/* A token's clusters as the form sends them: "a,b", each a cluster name. */
#define SCOPE_SIZE (TOKEN_CLUSTERS_MAX * (NODE_NAME_MAX + 1) + 1)

/* What the page shows besides the snapshot; borrowed strings. */
struct admin_state {
	int status;
	const char *notice;
	const char *user_error, *user_name, *user_role;
	const char *token_error, *token_description, *token_clusters;
	const char *new_token_id, *new_token;
};

static void
role_options(struct ui_buf *b, const char *selected)
{
	static const char *const roles[] = {"viewer", "operator", "admin"};
	size_t i;

	for (i = 0; i < 3; i++)
		ui_printf(b, "<option value=\"%r\"%r>%r</option>", roles[i],
		          selected && strcmp(selected, roles[i]) == 0 ? " selected" : "", roles[i]);
}

static void
remove_button(struct request *r, struct ui_buf *b, const char *form, const char *name,
              const char *label, const char *confirm_text)
{
	ui_printf(b,
	          "<form method=\"post\" action=\"/admin\" data-confirm=\"%s\"><input "
	          "type=\"hidden\" name=\"form\" value=\"%r\"><input type=\"hidden\" name=\"name\" "
	          "value=\"%s\">",
	          confirm_text, form, name);
	ui_csrf_input(r, b);
	ui_printf(b,
	          "<button type=\"submit\" class=\"danger small\">%r <span "
	          "class=\"vh\">%s</span></button></form>",
	          label, name);
}

static void
users_section(struct request *r, struct ui_buf *b, const struct model *m,
              const struct admin_state *st)
{
	char created[40], confirm_text[120];
	size_t i;

	ui_raw(b, "<section class=\"card\" aria-labelledby=\"h-users\"><h2 id=\"h-users\">Users"
	          "</h2><div class=\"table-wrap\"><table class=\"list\"><thead><tr><th "
	          "scope=\"col\">Name</th><th scope=\"col\">Role</th><th scope=\"col\">Created</th>"
	          "<th scope=\"col\"><span class=\"vh\">Actions</span></th></tr></thead><tbody>");
	for (i = 0; i < m->n_users; i++) {
		const struct user *u = &m->users[i];
		ui_printf(b,
		          "<tr><th scope=\"row\">%s</th><td data-label=\"Role\"><span "
		          "class=\"role\">%s</span></td><td data-label=\"Created\">%s</td><td>",
		          u->name, role_name(u->role),
		          ui_time(u->created_at, created, sizeof(created)));
		snprintf(confirm_text, sizeof(confirm_text), "Remove user %s?", u->name);
		if (r->is_session)
			remove_button(r, b, "user-remove", u->name, "Remove", confirm_text);
		ui_raw(b, "</td></tr>");
	}
	ui_raw(b, "</tbody></table></div>");
	if (!r->is_session) {
		ui_raw(b, "</section>");
		return;
	}
	ui_raw(b, "<h3>Add a user</h3><form method=\"post\" action=\"/admin\" "
	          "class=\"inline-form\"><input type=\"hidden\" name=\"form\" value=\"user-add\">");
	ui_csrf_input(r, b);
	ui_printf(
	    b,
	    "<div class=\"field\"><label for=\"u-name\">Name</label><input id=\"u-name\" "
	    "name=\"name\" required maxlength=\"" UI_LIMIT(
	        NODE_NAME_MAX) "\" autocomplete=\"off\" value=\"%s\"></div>"
	                       "<div class=\"field\"><label "
	                       "for=\"u-password\">Password</label><input "
	                       "id=\"u-password\" name=\"password\" type=\"password\" required "
	                       "minlength=\"8\" "
	                       "autocomplete=\"new-password\"></div><div class=\"field\"><label "
	                       "for=\"u-role\">Role</label><select id=\"u-role\" name=\"role\">",
	    st->user_name ? st->user_name : "");
	role_options(b, st->user_role ? st->user_role : "viewer");
	ui_raw(b, "</select></div><button type=\"submit\" class=\"primary\">Add user</button>"
	          "</form>");
	if (st->user_error != NULL)
		ui_printf(b, "<p class=\"field-error\" role=\"alert\">%s</p>", st->user_error);
	ui_raw(b, "</section>");
}

/* Is name among list ("a,b")? */
static int
scope_has(const char *list, const char *name)
{
	size_t len = strlen(name);
	const char *p;

	for (p = list; p != NULL && *p != '\0'; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ','))
		if (strcspn(p, ",") == len && strncmp(p, name, len) == 0)
			return 1;
	return 0;
}

/* The token form's clusters: a multi-select of the clusters there are,
 * selected those of selected ("a,b"); none chosen is every cluster. */
static void
scope_select(struct ui_buf *b, const struct model *m, const char *selected)
{
	size_t i;

	if (m->n_clusters == 0)
		return;
	ui_printf(b,
	          "<div class=\"field\"><label for=\"t-clusters\">Clusters</label><select "
	          "id=\"t-clusters\" name=\"clusters\" multiple size=\"%d\" "
	          "aria-describedby=\"t-clusters-hint\">",
	          m->n_clusters < 5 ? (int)m->n_clusters : 5);
	for (i = 0; i < m->n_clusters; i++)
		ui_printf(b, "<option value=\"%s\"%r>%s</option>", m->clusters[i].name,
		          scope_has(selected, m->clusters[i].name) ? " selected" : "",
		          m->clusters[i].name);
	ui_raw(b, "</select><p class=\"hint\" id=\"t-clusters-hint\">None chosen: every "
	          "cluster.</p></div>");
}

static void
tokens_section(struct request *r, struct ui_buf *b, const struct model *m,
               const struct admin_state *st)
{
	char created[40], confirm_text[120];
	size_t i;

	ui_raw(b, "<section class=\"card\" aria-labelledby=\"h-tokens\"><h2 id=\"h-tokens\">API "
	          "tokens</h2>");
	if (st->new_token != NULL)
		ui_printf(
		    b,
		    "<div class=\"flash ok new-token\" role=\"status\"><p>Token <code>%s</code> "
		    "created. Copy it now: it is not shown again.</p><label "
		    "for=\"new-token\">New token</label><input id=\"new-token\" readonly "
		    "value=\"%s\"></div>",
		    st->new_token_id, st->new_token);
	ui_raw(b, "<div class=\"table-wrap\"><table class=\"list\"><thead><tr><th scope=\"col\">Id"
	          "</th><th scope=\"col\">Role</th><th scope=\"col\">Clusters</th><th "
	          "scope=\"col\">Description</th><th "
	          "scope=\"col\">Created by</th><th scope=\"col\">Created</th><th "
	          "scope=\"col\"><span class=\"vh\">Actions</span></th></tr></thead><tbody>");
	for (i = 0; i < m->n_tokens; i++) {
		const struct token *t = &m->tokens[i];
		int is_scoped = t->clusters != NULL && t->clusters[0] != '\0';
		ui_printf(b,
		          "<tr><th scope=\"row\"><code>%s</code></th><td data-label=\"Role\"><span "
		          "class=\"role\">%s</span></td><td data-label=\"Clusters\" "
		          "class=\"token-scope\">%s</td><td data-label=\"Description\">%s</td><td "
		          "data-label=\"Created by\">%s</td><td data-label=\"Created\">%s</td><td>",
		          t->id, role_name(t->role), is_scoped ? t->clusters : "all clusters",
		          t->description, t->created_by,
		          ui_time(t->created_at, created, sizeof(created)));
		snprintf(confirm_text, sizeof(confirm_text), "Revoke token %s?", t->id);
		if (r->is_session)
			remove_button(r, b, "token-revoke", t->id, "Revoke", confirm_text);
		ui_raw(b, "</td></tr>");
	}
	ui_raw(b, "</tbody></table></div>");
	if (m->n_tokens == 0)
		ui_raw(b, "<p class=\"empty\">No tokens.</p>");
	if (!r->is_session) {
		ui_raw(b, "</section>");
		return;
	}
	ui_raw(b, "<h3>Create a token</h3><form method=\"post\" action=\"/admin\" "
	          "class=\"inline-form\"><input type=\"hidden\" name=\"form\" "
	          "value=\"token-create\">");
	ui_csrf_input(r, b);
	ui_raw(b, "<div class=\"field\"><label for=\"t-role\">Role</label><select id=\"t-role\" "
	          "name=\"role\">");
	role_options(b, "operator");
	ui_raw(b, "</select></div>");
	scope_select(b, m, st->token_clusters);
	ui_printf(b,
	          "<div class=\"field grow\"><label for=\"t-description\">"
	          "Description</label><input id=\"t-description\" name=\"description\" "
	          "maxlength=\"" UI_LIMIT(
	              DESCRIPTION_MAX) "\" value=\"%s\" placeholder=\"e.g. deploy pipeline\"></div>"
	                               "<button type=\"submit\" class=\"primary\">Create "
	                               "token</button></form>",
	          st->token_description ? st->token_description : "");
	if (st->token_error != NULL)
		ui_printf(b, "<p class=\"field-error\" role=\"alert\">%s</p>", st->token_error);
	ui_raw(b, "</section>");
}

static const char *
done_notice(struct request *r)
{
	static const char *const notices[][2] = {
	    {"user-added", "User added."},
	    {"user-removed", "User removed; their sessions have ended."},
	    {"token-revoked", "Token revoked."},
	};
	char done[32];
	size_t i;

	if (request_query_param(r, "done", done, sizeof(done)) != 1)
		return NULL;
	for (i = 0; i < sizeof(notices) / sizeof(notices[0]); i++)
		if (strcmp(done, notices[i][0]) == 0)
			return notices[i][1];
	return NULL;
}

static void
admin_render(struct request *r, const struct admin_state *st)
{
	const struct model *m = request_snapshot(r);
	struct ui_buf b;

	ui_buf_init(&b, 8192 + (m->n_users + m->n_tokens) * 600);
	ui_page_begin(r, &b, "Users and tokens", NULL);
	ui_raw(&b, "<h1>Users and tokens</h1>");
	if (st->notice != NULL)
		ui_printf(&b, "<p class=\"flash ok\" role=\"status\">%s</p>", st->notice);
	users_section(r, &b, m, st);
	tokens_section(r, &b, m, st);
	ui_page_end(&b);
	ui_reply_html(r, st->status ? st->status : 200, &b);
}

void
ui_admin_page(struct request *r, const struct route *rt)
{
	struct admin_state st = {0};

	(void)rt;
	if (r->role < ROLE_ADMIN) {
		auth_log_refusal(r, ROLE_ADMIN);
		ui_reply_message(r, 403, "Not allowed", "Only admins manage users and tokens.", "/",
		                 "Go to the clusters");
		return;
	}
	st.notice = done_notice(r);
	admin_render(r, &st);
}

/* --- posts --------------------------------------------------------------- */

/* The forms this page posts, by the value of their "form" field. */
struct admin_form {
	const char *name;
	enum command_kind kind;
	const char *done; /* ?done= after success; NULL: show the new token */
};

static const struct admin_form admin_forms[] = {
    {"user-add", COMMAND_PUT_USER, "user-added"},
    {"user-remove", COMMAND_REMOVE_USER, "user-removed"},
    {"token-create", COMMAND_ADD_TOKEN, NULL},
    {"token-revoke", COMMAND_REMOVE_TOKEN, "token-revoked"},
};

static const struct admin_form *
admin_form_find(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < sizeof(admin_forms) / sizeof(admin_forms[0]); i++)
		if (strcmp(name, admin_forms[i].name) == 0)
			return &admin_forms[i];
	return NULL;
}

static int
is_user_form(const struct admin_form *f)
{
	return f->kind == COMMAND_PUT_USER || f->kind == COMMAND_REMOVE_USER;
}

/* A job's data besides its command: a new token's secret, shown once. */
struct admin_job {
	const struct admin_form *form;
	char token[TOKEN_SIZE];
};

static void
admin_job_wipe(void *data)
{
	sodium_memzero(data, sizeof(struct admin_job));
}

static void
admin_error(struct request *r, const struct admin_form *f, const struct command *c, int status,
            const char *what)
{
	struct admin_state st = {.status = status};

	if (is_user_form(f)) {
		st.user_error = what;
		st.user_name = f->kind == COMMAND_PUT_USER ? c->name : NULL;
		st.user_role = role_name(c->role);
	} else {
		st.token_error = what;
		st.token_description = c->description;
		st.token_clusters = c->clusters;
	}
	admin_render(r, &st);
}

static void
admin_job_done(struct request *r, struct engine_job *job)
{
	struct admin_job *a = job->data;
	struct admin_state st = {0};
	char location[40];

	if (job->rc != 0) {
		admin_error(r, a->form, &job->command, job->err.status, job->err.what);
		return;
	}
	if (a->form->kind == COMMAND_REMOVE_USER)
		ui_session_drop_user(job->command.name);
	if (a->form->done != NULL) {
		snprintf(location, sizeof(location), "/admin?done=%s", a->form->done);
		reply_redirect(r, 303, location);
		return;
	}
	st.new_token_id = job->command.name;
	st.new_token = a->token;
	admin_render(r, &st);
}

/* The token form's clusters being read: "a,b" so far, or the first
 * problem. */
struct scope_read {
	const struct model *m;
	char list[SCOPE_SIZE];
	size_t len, n;
	char problem[200];
};

/* One "clusters" field: a name, or names separated by commas (for those
 * who post the form without the page). */
static void
scope_add(void *arg, const char *value)
{
	struct scope_read *s = arg;
	const char *p = value;
	size_t len;

	if (value[0] == '\0') /* an empty field chooses nothing */
		return;
	for (; s->problem[0] == '\0'; p += len + 1) {
		char name[NODE_NAME_MAX + 1];

		len = strcspn(p, ",");
		if (len == 0 || len > NODE_NAME_MAX || !node_name_is_valid(p, len)) {
			snprintf(s->problem, sizeof(s->problem),
			         "A token's clusters must be cluster names (" NODE_NAME_RULE ").");
			return;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		if (model_find_cluster(s->m, name) == NULL)
			snprintf(
			    s->problem, sizeof(s->problem),
			    "There is no cluster named %s; choose among the clusters listed. No "
			    "token was created.",
			    name);
		else if (scope_has(s->list, name))
			snprintf(s->problem, sizeof(s->problem), "Cluster %s is chosen twice.",
			         name);
		else if (s->n == TOKEN_CLUSTERS_MAX)
			snprintf(s->problem, sizeof(s->problem),
			         "A token may be scoped to at most %d clusters.",
			         TOKEN_CLUSTERS_MAX);
		else
			s->len += (size_t)snprintf(s->list + s->len, sizeof(s->list) - s->len,
			                           "%s%s", s->n++ > 0 ? "," : "", name);
		if (p[len] == '\0')
			break;
	}
}

/* Checks the fields and fills the command (the password hashed by it,
 * later, on the engine's side thread); returns -1 with why filled. */
static int
admin_command_fill(struct request *r, const struct admin_form *f, struct command *c, char *why,
                   size_t size)
{
	char *name = ui_field(r, "name"), *password = ui_field(r, "password");
	char *role = ui_field(r, "role"), *description = ui_field(r, "description");
	int is_user_add = f->kind == COMMAND_PUT_USER, rc = -1, is_description_ok = 1;
	struct scope_read *scope = xcalloc(1, sizeof(*scope));
	struct error err;

	scope->m = request_snapshot(r);
	if (f->kind == COMMAND_ADD_TOKEN && ui_field_each(r, "clusters", scope_add, scope) != 0)
		snprintf(scope->problem, sizeof(scope->problem), "The clusters could not be read.");

	if (role != NULL && role_from_string(role, &c->role) != 0)
		snprintf(why, size, "Choose a role: viewer, operator or admin.");
	else if (f->kind != COMMAND_ADD_TOKEN &&
	         (name == NULL || !node_name_is_valid(name, strlen(name))))
		snprintf(why, size, "The name must be " NODE_NAME_RULE ".");
	else if (is_user_add && role == NULL)
		snprintf(why, size, "Choose a role: viewer, operator or admin.");
	else if (is_user_add && password_check_length(password ? password : "", &err) != 0)
		snprintf(why, size, "The password must be %d to %d bytes.", PASSWORD_MIN,
		         PASSWORD_MAX);
	else if (scope->problem[0] != '\0')
		snprintf(why, size, "%s", scope->problem);
	else
		rc = 0;
	if (description != NULL &&
	    text_check_length("description", description, DESCRIPTION_MAX, &err) != 0) {
		snprintf(why, size, "The description must be at most %d characters.",
		         DESCRIPTION_MAX);
		rc = -1;
		is_description_ok = 0;
	}
	if (f->kind != COMMAND_ADD_TOKEN)
		c->name = xstrdup(name != NULL && strlen(name) <= NODE_NAME_MAX ? name : "");
	c->description = xstrdup(description != NULL && is_description_ok ? description : "");
	if (f->kind == COMMAND_ADD_TOKEN && scope->n > 0)
		c->clusters = xstrdup(scope->list); /* kept to show again after a refusal */
	if (rc == 0 && is_user_add) {
		c->is_new_only = 1;
		c->password = xstrdup(password);
	}
	if (password != NULL)
		sodium_memzero(password, strlen(password));
	free(name);
	free(password);
	free(role);
	free(description);
	free(scope);
	return rc;
}

void
ui_admin_post(struct request *r, const struct route *rt)
{
	const struct admin_form *f;
	struct engine_job *job;
	struct admin_job *a;
	struct command *cmd;
	char *form, why[200], hash[65], id[NODE_NAME_MAX + 1];

	(void)rt; /* the router's form gate let an admin in */
	form = ui_field(r, "form");
	f = admin_form_find(form);
	free(form);
	if (f == NULL) {
		ui_reply_message(r, 400, "Unknown form", "This form is not known here.", "/admin",
		                 "Back to users and tokens");
		return;
	}
	job = request_job_new(r, NULL, sizeof(*a));
	job->free_data = admin_job_wipe;
	a = job->data;
	a->form = f;
	cmd = engine_job_command(job, f->kind);
	if (admin_command_fill(r, f, cmd, why, sizeof(why)) != 0) {
		admin_error(r, f, cmd, 400, why);
		engine_job_release(job);
		free(job);
		return;
	}
	if (f->kind == COMMAND_ADD_TOKEN) {
		auth_new_token(id, sizeof(id), a->token, sizeof(a->token), hash, sizeof(hash));
		cmd->name = xstrdup(id);
		cmd->token_hash = xstrdup(hash);
	}
	request_job_submit(r, job, admin_job_done);
}
