/*
 * model_users.c - the mutations of who may do what: users and API tokens.
 *
 * The only admin user can be neither removed nor demoted, so the
 * operators cannot lock themselves out. user-* and token-* audit entries
 * have cluster "" and carry the user name or token id in node.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "model_internal.h"

/* --- users ------------------------------------------------------------ */

static size_t
count_admins(const struct model *m)
{
	size_t i, admins = 0;

	for (i = 0; i < m->n_users; i++)
		if (m->users[i].role == ROLE_ADMIN)
			admins++;
	return admins;
}

/* Whether taking away u's admin role would leave no admin user. */
static int
is_only_admin(const struct model *m, const struct user *u)
{
	return u->role == ROLE_ADMIN && count_admins(m) == 1;
}

static int
check_put_user(const struct model *m, const char *name, enum role role, const char *hash,
               struct error *err)
{
	const struct user *u;

	if (!model_name_is_valid(name))
		return error_set_entry(err, 400, name ? name : "",
		                       "user '%.100s': invalid name (" NODE_NAME_RULE ")",
		                       name ? name : "");
	if (!model_role_is_valid(role))
		return error_set_entry(
		    err, 400, name, "user '%s': invalid role (expected viewer, operator or admin)",
		    name);
	if (hash == NULL || *hash == '\0')
		return error_set_entry(err, 400, name, "user '%s': password hash is empty", name);
	u = model_find_user(m, name);
	if (u != NULL && role != ROLE_ADMIN && is_only_admin(m, u))
		return error_set_entry(
		    err, 409, name, "user '%s' is the only admin and cannot lose that role", name);
	return 0;
}

int
model_put_user(struct model *m, const char *name, enum role role, const char *password_hash,
               const struct actor *who, int64_t now, struct audit_log *audit, struct error *err)
{
	struct user *u;
	size_t at;
	int found;

	if (check_put_user(m, name, role, password_hash, err) == -1)
		return -1;
	at = model_sorted_index(m->users, m->n_users, sizeof *m->users, name, &found);
	if (!found) {
		m->users = model_array_open_slot(m->users, m->n_users, sizeof *m->users, at);
		m->n_users++;
		m->users[at].name = xstrdup(name);
		m->users[at].created_at = now;
	}
	u = &m->users[at];
	u->role = role;
	free(u->password_hash);
	u->password_hash = xstrdup(password_hash);
	audit_log_add(audit, now, "", name, who, "user-add", "", "", found ? "replaced" : "");
	return 0;
}

int
model_remove_user(struct model *m, const char *name, const struct actor *who, int64_t now,
                  struct audit_log *audit, struct error *err)
{
	size_t at;
	int found;

	at = model_sorted_index(m->users, m->n_users, sizeof *m->users, name ? name : "", &found);
	if (!found)
		return error_set_entry(err, 404, name ? name : "", "user '%.100s' not found",
		                       name ? name : "");
	if (is_only_admin(m, &m->users[at]))
		return error_set_entry(err, 409, name,
		                       "user '%s' is the only admin and cannot be removed", name);
	audit_log_add(audit, now, "", name, who, "user-remove", "", "", "");
	model_user_clear(&m->users[at]);
	model_array_close_slot(m->users, m->n_users, sizeof *m->users, at);
	m->n_users--;
	return 0;
}

/* --- tokens ----------------------------------------------------------- */

static int
check_new_token(const struct model *m, const char *id, enum role role, const char *hash,
                const char *description, struct error *err)
{
	if (!model_name_is_valid(id))
		return error_set_entry(err, 400, id ? id : "",
		                       "token '%.100s': invalid id (" NODE_NAME_RULE ")",
		                       id ? id : "");
	if (!model_role_is_valid(role))
		return error_set_entry(
		    err, 400, id, "token '%s': invalid role (expected viewer, operator or admin)",
		    id);
	if (hash == NULL || *hash == '\0')
		return error_set_entry(err, 400, id, "token '%s': hash is empty", id);
	if (text_check_length("description", description != NULL ? description : "",
	                      DESCRIPTION_MAX, err) != 0)
		return -1;
	if (model_find_token(m, id) != NULL)
		return error_set_entry(err, 409, id, "token '%s' already exists", id);
	return 0;
}

int
model_add_token(struct model *m, const char *id, enum role role, const char *description,
                const char *hash, const struct actor *who, int64_t now, struct audit_log *audit,
                struct error *err)
{
	struct token *t;
	size_t at;
	int found;

	if (check_new_token(m, id, role, hash, description, err) == -1)
		return -1;
	at = model_sorted_index(m->tokens, m->n_tokens, sizeof *m->tokens, id, &found);
	m->tokens = model_array_open_slot(m->tokens, m->n_tokens, sizeof *m->tokens, at);
	m->n_tokens++;
	t = &m->tokens[at];
	t->id = xstrdup(id);
	t->role = role;
	t->description = xstrdup(description);
	t->hash = xstrdup(hash);
	t->created_by = xstrdup(model_actor_name(who));
	t->created_at = now;
	audit_log_add(audit, now, "", id, who, "token-create", "", "", "");
	return 0;
}

int
model_remove_token(struct model *m, const char *id, const struct actor *who, int64_t now,
                   struct audit_log *audit, struct error *err)
{
	size_t at;
	int found;

	at = model_sorted_index(m->tokens, m->n_tokens, sizeof *m->tokens, id ? id : "", &found);
	if (!found)
		return error_set_entry(err, 404, id ? id : "", "token '%.100s' not found",
		                       id ? id : "");
	audit_log_add(audit, now, "", id, who, "token-revoke", "", "", "");
	model_token_clear(&m->tokens[at]);
	model_array_close_slot(m->tokens, m->n_tokens, sizeof *m->tokens, at);
	m->n_tokens--;
	return 0;
}
