/*
 * ui_admin.c - /admin: users and API tokens, for admins.
 *
 * Map of this file:
 *
 *   page    the users (name, role, created) and tokens (id, role,
 *           description, created by, created) with a form to add each and
 *           a button to remove each; a token just created is shown once,
 *           on the page that answers its creation, and never again.
 *   posts   one form field "form" says what to do: user-add, user-remove,
 *           token-create, token-revoke. Each is one engine write job; the
 *           password is hashed there (argon2id is slow on purpose) and
 *           wiped from the job's data afterwards.
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

#define PASSWORD_MIN 8
#define PASSWORD_MAX 1024
#define DESCRIPTION_MAX 256
#define UTF8_MAX 4
#define TOKEN_SIZE 256

/* What the page shows besides the snapshot; borrowed strings. */
struct admin_state {
	int status;
	const char *notice;
	const char *user_error, *user_name, *user_role;
	const char *token_error, *token_description;
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
	ui_printf(b,
	          "<div class=\"field\"><label for=\"u-name\">Name</label><input id=\"u-name\" "
	          "name=\"name\" required maxlength=\"64\" autocomplete=\"off\" value=\"%s\"></div>"
	          "<div class=\"field\"><label for=\"u-password\">Password</label><input "
	          "id=\"u-password\" name=\"password\" type=\"password\" required minlength=\"8\" "
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
	          "</th><th scope=\"col\">Role</th><th scope=\"col\">Description</th><th "
	          "scope=\"col\">Created by</th><th scope=\"col\">Created</th><th "
	          "scope=\"col\"><span class=\"vh\">Actions</span></th></tr></thead><tbody>");
	for (i = 0; i < m->n_tokens; i++) {
		const struct token *t = &m->tokens[i];
		ui_printf(b,
		          "<tr><th scope=\"row\"><code>%s</code></th><td data-label=\"Role\"><span "
		          "class=\"role\">%s</span></td><td data-label=\"Description\">%s</td><td "
		          "data-label=\"Created by\">%s</td><td data-label=\"Created\">%s</td><td>",
		          t->id, role_name(t->role), t->description, t->created_by,
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
	ui_printf(b,
	          "</select></div><div class=\"field grow\"><label for=\"t-description\">"
	          "Description</label><input id=\"t-description\" name=\"description\" "
	          "maxlength=\"256\" value=\"%s\" placeholder=\"e.g. deploy pipeline\"></div>"
	          "<button type=\"submit\" class=\"primary\">Create token</button></form>",
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
ui_admin_page(struct request *r)
{
	struct admin_state st = {0};

	if (r->role < ROLE_ADMIN) {
		ui_reply_message(r, 403, "Not allowed", "Only admins manage users and tokens.", "/",
		                 "Go to the clusters");
		return;
	}
	st.notice = done_notice(r);
	admin_render(r, &st);
}

/* --- posts --------------------------------------------------------------- */

struct admin_job {
	char form[16];
	char name[NODE_NAME_MAX + 1];
	enum role role;
	char password[PASSWORD_MAX * UTF8_MAX + 1]; /* wiped once hashed */
	char description[DESCRIPTION_MAX * UTF8_MAX + 1];
	char token_id[NODE_NAME_MAX + 1]; /* token-create's result */
	char token[TOKEN_SIZE];           /* shown once, then wiped */
	char *hash;                       /* user-add: the new password's */
};

/* Side thread, before user-add's write: argon2id is slow on purpose and
 * must not hold up the writes queued on the engine thread. */
static int
user_add_hash(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	struct admin_job *a = job->data;

	(void)tx;
	a->hash = auth_hash_password(a->password);
	sodium_memzero(a->password, sizeof(a->password));
	if (a->hash == NULL)
		return error_set(err, 500, "The password could not be hashed.");
	return 0;
}

static int
user_add_run(struct engine_tx *tx, struct admin_job *a, struct error *err)
{
	if (model_find_user(tx->model, a->name) != NULL)
		return error_set(err, 409, "User %s already exists.", a->name);
	return model_put_user(tx->model, a->name, a->role, a->hash, tx->who, tx->now, tx->audit,
	                      err);
}

static int
admin_job_run(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	struct admin_job *a = job->data;
	char hash[65];

	if (strcmp(a->form, "user-add") == 0)
		return user_add_run(tx, a, err);
	if (strcmp(a->form, "user-remove") == 0) {
		return model_remove_user(tx->model, a->name, tx->who, tx->now, tx->audit, err);
	}
	if (strcmp(a->form, "token-create") == 0) {
		auth_new_token(a->token_id, sizeof(a->token_id), a->token, sizeof(a->token), hash,
		               sizeof(hash));
		return model_add_token(tx->model, a->token_id, a->role, a->description, hash,
		                       tx->who, tx->now, tx->audit, err);
	}
	return model_remove_token(tx->model, a->name, tx->who, tx->now, tx->audit, err);
}

static void
admin_job_wipe(void *data)
{
	struct admin_job *a = data;

	free(a->hash);
	sodium_memzero(a, sizeof(*a));
}

static void
admin_error(struct request *r, struct admin_job *a, int status, const char *what)
{
	struct admin_state st = {.status = status};

	if (strncmp(a->form, "user", 4) == 0) {
		st.user_error = what;
		st.user_name = strcmp(a->form, "user-add") == 0 ? a->name : NULL;
		st.user_role = role_name(a->role);
	} else {
		st.token_error = what;
		st.token_description = a->description;
	}
	admin_render(r, &st);
}

static void
admin_job_done(struct request *r, struct engine_job *job)
{
	struct admin_job *a = job->data;
	struct admin_state st = {0};

	if (job->rc != 0) {
		admin_error(r, a, job->err.status, job->err.what);
		return;
	}
	if (strcmp(a->form, "user-remove") == 0)
		ui_session_drop_user(a->name);
	if (strcmp(a->form, "token-create") != 0) {
		char location[40];
		snprintf(location, sizeof(location), "/admin?done=%s",
		         strcmp(a->form, "user-add") == 0      ? "user-added"
		         : strcmp(a->form, "user-remove") == 0 ? "user-removed"
		                                               : "token-revoked");
		reply_redirect(r, 303, location);
		return;
	}
	st.new_token_id = a->token_id;
	st.new_token = a->token;
	admin_render(r, &st);
}

/* Checks the fields and fills a; returns -1 with why filled. */
static int
admin_job_fill(struct request *r, struct admin_job *a, char *why, size_t size)
{
	char *name = ui_field(r, "name"), *password = ui_field(r, "password");
	char *role = ui_field(r, "role"), *description = ui_field(r, "description");
	int is_user_add = strcmp(a->form, "user-add") == 0, rc = -1;
	size_t length = 0;
	const char *p;

	if (role != NULL && role_from_string(role, &a->role) != 0)
		snprintf(why, size, "Choose a role: viewer, operator or admin.");
	else if (strcmp(a->form, "token-create") != 0 &&
	         (name == NULL || !node_name_is_valid(name, strlen(name))))
		snprintf(why, size, "The name must be " NODE_NAME_RULE ".");
	else if (is_user_add && role == NULL)
		snprintf(why, size, "Choose a role: viewer, operator or admin.");
	else
		rc = 0;
	if (rc == 0 && is_user_add) {
		for (p = password ? password : ""; *p != '\0'; p++)
			length += ((unsigned char)*p & 0xc0) != 0x80;
		if (length < PASSWORD_MIN || length > PASSWORD_MAX) {
			snprintf(why, size, "The password must be %d to %d characters.",
			         PASSWORD_MIN, PASSWORD_MAX);
			rc = -1;
		}
	}
	if (description != NULL && strlen(description) >= sizeof(a->description)) {
		snprintf(why, size, "The description must be at most %d characters.",
		         DESCRIPTION_MAX);
		rc = -1;
	}
	snprintf(a->name, sizeof(a->name), "%.64s", name ? name : "");
	snprintf(a->description, sizeof(a->description), "%s",
	         description && strlen(description) < sizeof(a->description) ? description : "");
	if (rc == 0 && is_user_add)
		snprintf(a->password, sizeof(a->password), "%s", password);
	if (password != NULL)
		sodium_memzero(password, strlen(password));
	free(name);
	free(password);
	free(role);
	free(description);
	return rc;
}

void
ui_admin_post(struct request *r)
{
	static const char *const forms[] = {"user-add", "user-remove", "token-create",
	                                    "token-revoke"};
	struct engine_job *job;
	struct admin_job *a;
	char *form, why[200];
	size_t i;

	if (ui_post_guard(r, ROLE_ADMIN) != 0)
		return;
	form = ui_field(r, "form");
	for (i = 0; form != NULL && i < 4 && strcmp(form, forms[i]) != 0; i++)
		;
	if (form == NULL || i == 4) {
		free(form);
		ui_reply_message(r, 400, "Unknown form", "This form is not known here.", "/admin",
		                 "Back to users and tokens");
		return;
	}
	job = request_job_new(r, admin_job_run, 1, sizeof(*a));
	job->free_data = admin_job_wipe;
	a = job->data;
	snprintf(a->form, sizeof(a->form), "%s", forms[i]);
	free(form);
	if (admin_job_fill(r, a, why, sizeof(why)) != 0) {
		admin_error(r, a, 400, why);
		admin_job_wipe(a);
		free(job);
		return;
	}
	if (strcmp(a->form, "user-add") == 0)
		job->prepare = user_add_hash;
	request_job_submit(r, job, admin_job_done);
}
