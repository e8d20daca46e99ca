/*
 * api_v1_admin.c - the v1 API's administration (docs/API.md): users and
 * tokens (list, add, remove; a token's secret is made here and shown
 * once) and the audit log, which the engine reads from the store
 * (engine_job_read_audit).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "api_v1_internal.h"

#define AUDIT_LIMIT_DEFAULT 50
#define AUDIT_LIMIT_MAX 1000
#define TOKEN_ID_SIZE 64
#define TOKEN_SIZE 256
#define TOKEN_HASH_SIZE 65 /* hex of 32 bytes */

/* --- documents ------------------------------------------------------- */

static json_t *
user_json(const char *name, enum role role, int64_t created_at)
{
	return json_pack("{s:s, s:s, s:o}", "name", name, "role", role_name(role), "created_at",
	                 time_json(created_at));
}

/* A token's clusters: the list of names, or null for every cluster. */
static json_t *
clusters_json(const char *clusters)
{
	json_t *list;
	const char *p = clusters;

	if (p == NULL || *p == '\0')
		return json_null();
	list = json_array();
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		json_array_append_new(list, json_stringn(p, len));
		p += len + (p[len] == ',');
	}
	return list;
}

static json_t *
token_json(const struct token *t)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "id", t->id, "role", role_name(t->role),
	                 "description", t->description, "created_by", t->created_by, "created_at",
	                 time_json(t->created_at), "clusters", clusters_json(t->clusters));
}

static json_t *
audit_entry_json(const struct audit_entry *e)
{
	json_t *o =
	    json_pack("{s:I, s:o, s:o, s:o, s:s, s:o, s:s, s:o, s:o, s:s}", "id", (json_int_t)e->id,
	              "at", time_json(e->at), "cluster", optional_string_json(e->cluster), "node",
	              optional_string_json(e->node), "actor", e->actor, "address",
	              optional_string_json(e->address), "action", e->action, "old_status",
	              optional_string_json(e->old_status), "new_status",
	              optional_string_json(e->new_status), "reason", e->reason);
	json_t *context =
	    e->context != NULL && e->context[0] != '\0' ? json_loads(e->context, 0, NULL) : NULL;

	/* who the actor was: how they signed in, role and scope, peer... */
	json_object_set_new(o, "context", json_is_object(context) ? context : json_null());
	if (context != NULL && !json_is_object(context))
		json_decref(context);
	return o;
}

static int
body_role(const json_t *body, enum role *out, struct error *err)
{
	const char *s;

	if (body_string(body, "role", 1, &s, err) != 0)
		return -1;
	if (role_from_string(s, out) != 0)
		return error_set(err, 400, "role must be viewer, operator or admin");
	return 0;
}

void
api_v1_users_get(struct request *r, const struct route *rt)
{
	const struct model *m = request_snapshot(r);
	json_t *list = json_array();
	size_t i;

	(void)rt;
	for (i = 0; i < m->n_users; i++) {
		const struct user *u = &m->users[i];
		json_array_append_new(list, user_json(u->name, u->role, u->created_at));
	}
	reply_json(r, 200, json_pack("{s:o}", "users", list));
}

void
api_v1_tokens_get(struct request *r, const struct route *rt)
{
	const struct model *m = request_snapshot(r);
	json_t *list = json_array();
	size_t i;

	(void)rt;
	for (i = 0; i < m->n_tokens; i++)
		json_array_append_new(list, token_json(&m->tokens[i]));
	reply_json(r, 200, json_pack("{s:o}", "tokens", list));
}

/* The audit log lives in the store only: the engine reads it into the
 * job (engine_job_read_audit), which releases it also when the client
 * went away. */
static void
audit_done(struct request *r, struct engine_job *job)
{
	json_t *entries;
	size_t i;

	if (job->rc != 0) {
		reply_from_error(r, &job->err);
		return;
	}
	entries = json_array();
	for (i = 0; i < job->audit.n; i++)
		json_array_append_new(entries, audit_entry_json(&job->audit.entries[i]));
	reply_json(r, 200, json_pack("{s:o}", "entries", entries));
}

void
api_v1_audit_get(struct request *r, const struct route *rt)
{
	struct engine_job *job;
	struct error err;
	int64_t limit = AUDIT_LIMIT_DEFAULT;
	int has_limit = query_count(r, "limit", INT64_MAX, &limit, &err);

	if (has_limit < 0 || (has_limit > 0 && limit == 0)) {
		reply_error(r, 400, NULL, "limit must be a positive integer");
		return;
	}
	if (find_cluster_or_reply(r, rt->cluster) == NULL)
		return;
	job = request_job_new(r, NULL, 0);
	engine_job_read_audit(job, rt->cluster, limit > AUDIT_LIMIT_MAX ? AUDIT_LIMIT_MAX : limit);
	request_job_submit(r, job, audit_done);
}

/* --- writes: users --------------------------------------------------- */

static void
user_added(struct request *r, struct engine_job *job)
{
	const struct command *c = &job->command;

	if (job->rc != 0)
		reply_from_error(r, &job->err);
	else
		reply_json(r, 201, user_json(c->name, c->role, job->result.created_at));
}

static int
user_check_body(const json_t *body, const char **name, const char **password, enum role *role,
                struct error *err)
{
	if (body_string(body, "name", 1, name, err) != 0 ||
	    body_string(body, "password", 1, password, err) != 0 || body_role(body, role, err) != 0)
		return -1;
	if (!node_name_is_valid(*name, strlen(*name)))
		return error_set_entry(err, 400, *name,
		                       "user '%.100s': invalid name (" NODE_NAME_RULE ")", *name);
	return 0; /* the password's length: command_prepare */
}

/* The password is hashed by the command, on the engine's side thread. */
void
api_v1_users_post(struct request *r, const struct route *rt)
{
	static const char *const fields[] = {"name", "password", "role", NULL};
	json_t *body = read_body(r, fields, 0);
	const char *name, *password;
	struct engine_job *job;
	struct command *cmd;
	struct error err;
	enum role role;

	(void)rt;
	if (body == NULL)
		return;
	if (user_check_body(body, &name, &password, &role, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	if (model_find_user(request_snapshot(r), name) != NULL) {
		/* Spares the slow hash; the command checks again. */
		reply_error(r, 409, json_pack("{s:s}", "entry", name), "user '%s' already exists",
		            name);
		json_decref(body);
		return;
	}
	cmd = command_new(r, COMMAND_PUT_USER, &job);
	cmd->name = xstrdup(name);
	cmd->role = role;
	cmd->is_new_only = 1;
	cmd->password = xstrdup(password);
	json_decref(body);
	request_job_submit(r, job, user_added);
}

/* A user removed or a token revoked: {"deleted": NAME}. */
static void
name_deleted(struct request *r, struct engine_job *job)
{
	if (job->rc != 0)
		reply_from_error(r, &job->err);
	else
		reply_json(r, 200, json_pack("{s:s}", "deleted", job->command.name));
}

/* Removing oneself is allowed; the model refuses to remove the last
 * admin, since nobody could manage users any more. */
void
api_v1_user_delete(struct request *r, const struct route *rt)
{
	struct engine_job *job;

	command_new(r, COMMAND_REMOVE_USER, &job)->name = xstrdup(rt->name);
	request_job_submit(r, job, name_deleted);
}

/* --- writes: tokens -------------------------------------------------- */

/* The secret, made here and shown once: the command carries only its
 * hash. Wiped when the job is released. */
struct token_secret {
	char token[TOKEN_SIZE];
};

static void
token_secret_wipe(void *data)
{
	explicit_bzero(data, sizeof(struct token_secret));
}

static void
token_created(struct request *r, struct engine_job *job)
{
	const struct command *c = &job->command;
	struct token_secret *s = job->data;

	if (job->rc != 0) {
		reply_from_error(r, &job->err);
		return;
	}
	reply_json(r, 201,
	           json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", c->name, "token", s->token, "role",
	                     role_name(c->role), "description", c->description, "clusters",
	                     clusters_json(c->clusters)));
}

/* The body's "clusters" (absent, or a list of names) as "a,b" (malloc'd;
 * NULL for every cluster). Returns 0, or -1 with err. */
static int
body_clusters(json_t *body, char **out, struct error *err)
{
	json_t *list = json_object_get(body, "clusters"), *v;
	size_t i, len = 0;

	*out = NULL;
	if (list == NULL || json_is_null(list))
		return 0;
	if (!json_is_array(list) || json_array_size(list) > TOKEN_CLUSTERS_MAX)
		return error_set(err, 400,
		                 "\"clusters\" must be a list of at most %d cluster names",
		                 TOKEN_CLUSTERS_MAX);
	*out = xcalloc(1, json_array_size(list) * (NODE_NAME_MAX + 1) + 1);
	json_array_foreach(list, i, v)
	{
		const char *name = json_string_value(v);
		if (name == NULL || !node_name_is_valid(name, strlen(name))) {
			free(*out);
			*out = NULL;
			return error_set(
			    err, 400,
			    "\"clusters\"[%zu] is not a cluster name (" NODE_NAME_RULE ")", i);
		}
		len += (size_t)sprintf(*out + len, "%s%s", i > 0 ? "," : "", name);
	}
	return 0;
}

void
api_v1_tokens_post(struct request *r, const struct route *rt)
{
	static const char *const fields[] = {"role", "description", "clusters", NULL};
	json_t *body = read_body(r, fields, 0);
	char id[TOKEN_ID_SIZE], hash[TOKEN_HASH_SIZE], *clusters = NULL;
	const char *description;
	struct token_secret *s;
	struct engine_job *job;
	struct command *cmd;
	struct error err;
	enum role role;

	(void)rt;
	if (body == NULL)
		return;
	if (body_role(body, &role, &err) != 0 ||
	    body_string(body, "description", 0, &description, &err) != 0 ||
	    body_clusters(body, &clusters, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	job = request_job_new(r, NULL, sizeof(*s));
	job->free_data = token_secret_wipe;
	s = job->data;
	auth_new_token(id, sizeof(id), s->token, sizeof(s->token), hash, sizeof(hash));
	cmd = engine_job_command(job, COMMAND_ADD_TOKEN);
	cmd->name = xstrdup(id);
	cmd->role = role;
	cmd->description = xstrdup(description != NULL ? description : "");
	cmd->token_hash = xstrdup(hash);
	cmd->clusters = clusters; /* the command owns it */
	json_decref(body);
	request_job_submit(r, job, token_created);
}

void
api_v1_token_delete(struct request *r, const struct route *rt)
{
	struct engine_job *job;

	command_new(r, COMMAND_REMOVE_TOKEN, &job)->name = xstrdup(rt->name);
	request_job_submit(r, job, name_deleted);
}
