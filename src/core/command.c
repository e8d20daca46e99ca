/*
 * command.c - applying a struct command to a model; see command.h.
 *
 * Each kind maps to one of the model's mutations, which already check
 * everything before they change anything, so a command is applied whole
 * or not at all. What this file adds is finding the cluster a command is
 * about in the model it is given (it may be another model than the one the
 * surface looked at) and reporting what happened as a struct, so no
 * surface needs to look into the model to answer.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../util/xalloc.h"
#include "command.h"
#include "password.h"

void
command_init(struct command *c, enum command_kind kind)
{
	memset(c, 0, sizeof(*c));
	c->kind = kind;
	c->if_version = -1;
	c->min_online = -1;
}

static void
wipe_free(char *s)
{
	if (s != NULL)
		sodium_memzero(s, strlen(s));
	free(s);
}

void
command_free(struct command *c)
{
	size_t i;

	free(c->cluster);
	free(c->name);
	change_set_free(&c->changes);
	for (i = 0; i < c->n_names; i++)
		free(c->names[i]);
	free(c->names);
	free(c->address);
	free(c->check);
	free(c->lb_kind);
	free(c->runtime);
	free(c->backend);
	free(c->path);
	wipe_free(c->password);
	free(c->password_hash);
	free(c->description);
	free(c->token_hash);
	free(c->idempotency_key);
	memset(c, 0, sizeof(*c));
}

void
command_add_name(struct command *c, const char *name)
{
	c->names = xreallocarray(c->names, c->n_names + 1, sizeof(*c->names));
	c->names[c->n_names++] = xstrdup(name);
}

int
command_needs_prepare(const struct command *c)
{
	return c->kind == COMMAND_PUT_USER && c->password != NULL && c->password_hash == NULL;
}

int
command_prepare(struct command *c, struct error *err)
{
	if (!command_needs_prepare(c))
		return 0;
	if (password_check_length(c->password, err) != 0) {
		wipe_free(c->password);
		c->password = NULL;
		return -1;
	}
	c->password_hash = password_hash(c->password);
	wipe_free(c->password);
	c->password = NULL;
	if (c->password_hash == NULL)
		return error_set(err, 500, "the password could not be hashed");
	return 0;
}

/* The cluster the command names, or NULL with a 404. */
static struct cluster *
find_cluster(struct model *m, const struct command *c, struct error *err)
{
	const char *name = c->cluster != NULL ? c->cluster : "";
	struct cluster *cl = model_find_cluster_mut(m, name);

	if (cl == NULL)
		error_set_entry(err, 404, name, "cluster '%.64s' not found", name);
	return cl;
}

static int
apply_to_cluster(struct model *m, const struct command *c, const struct actor *who, int64_t now,
                 struct audit_log *audit, struct command_result *res, struct error *err)
{
	struct cluster *cl = find_cluster(m, c, err);
	const char *name = c->name != NULL ? c->name : "";
	int rc = -1;

	if (cl == NULL)
		return -1;
	switch (c->kind) {
	case COMMAND_SET_STATUS:
		rc = cluster_apply_changes(cl, &c->changes, who, now, c->if_version, c->min_online,
		                           audit, err);
		break;
	case COMMAND_SET_NODE_LIST:
		rc = cluster_set_node_list(cl, (const char *const *)c->names, c->n_names, who, now,
		                           audit, err);
		break;
	case COMMAND_PUT_NODE:
		res->is_created = cluster_find_node(cl, name, strlen(name)) == NULL;
		rc = cluster_put_node(cl, name, c->address, c->check, who, now, audit, err);
		break;
	case COMMAND_REMOVE_NODE:
		rc = cluster_remove_node(cl, name, who, now, audit, err);
		break;
	case COMMAND_PUT_LB:
		res->is_created = cluster_find_lb(cl, name) == NULL;
		rc = cluster_put_lb(cl, name, c->lb_kind, c->runtime, c->backend, who, now, audit,
		                    err);
		break;
	case COMMAND_REMOVE_LB:
		rc = cluster_remove_lb(cl, name, who, now, audit, err);
		break;
	default:
		abort(); /* command_apply sends only cluster commands here */
	}
	if (rc == 0)
		res->version = cl->version;
	return rc;
}

static int
put_user(struct model *m, const struct command *c, const struct actor *who, int64_t now,
         struct audit_log *audit, struct command_result *res, struct error *err)
{
	const char *name = c->name != NULL ? c->name : "";
	const struct user *u = model_find_user(m, name);

	if (c->password_hash == NULL)
		return error_set(err, 500, "the password of user '%.64s' was not hashed", name);
	if (u != NULL && c->is_new_only)
		return error_set_entry(err, 409, name, "user '%.64s' already exists", name);
	res->is_created = u == NULL;
	if (model_put_user(m, name, c->role, c->password_hash, who, now, audit, err) != 0)
		return -1;
	res->created_at = model_find_user(m, name)->created_at;
	return 0;
}

static int
apply(struct model *m, const struct command *c, const struct actor *who, int64_t now,
      struct audit_log *audit, struct command_result *res, struct error *err)
{
	const char *name = c->name != NULL ? c->name : "";
	const char *cluster = c->cluster != NULL ? c->cluster : "";

	switch (c->kind) {
	case COMMAND_SET_STATUS:
	case COMMAND_SET_NODE_LIST:
	case COMMAND_PUT_NODE:
	case COMMAND_REMOVE_NODE:
	case COMMAND_PUT_LB:
	case COMMAND_REMOVE_LB:
		return apply_to_cluster(m, c, who, now, audit, res, err);
	case COMMAND_ADD_CLUSTER:
		if (model_add_cluster(m, cluster, c->path != NULL ? c->path : "", who, now, audit,
		                      err) != 0)
			return -1;
		res->version = model_find_cluster(m, cluster)->version;
		return 0;
	case COMMAND_REMOVE_CLUSTER:
		return model_remove_cluster(m, cluster, who, now, audit, err);
	case COMMAND_PUT_USER:
		return put_user(m, c, who, now, audit, res, err);
	case COMMAND_REMOVE_USER:
		return model_remove_user(m, name, who, now, audit, err);
	case COMMAND_ADD_TOKEN:
		return model_add_token(m, name, c->role, c->description,
		                       c->token_hash != NULL ? c->token_hash : "", who, now, audit,
		                       err);
	case COMMAND_REMOVE_TOKEN:
		return model_remove_token(m, name, who, now, audit, err);
	case COMMAND_EXPIRE:
		res->n_expired = model_expire(m, now, audit);
		return 0;
	}
	return error_set(err, 500, "unknown command kind %d", (int)c->kind);
}

int
command_apply(struct model *m, const struct command *c, const struct actor *who, int64_t now,
              struct audit_log *audit, struct command_result *res, struct error *err)
{
	struct audit_log own = {0};
	struct command_result ignored;
	struct audit_log *log = audit != NULL ? audit : &own;
	size_t before = log->n;
	int rc;

	if (res == NULL)
		res = &ignored;
	memset(res, 0, sizeof(*res));
	rc = apply(m, c, who, now, log, res, err);
	if (rc == 0)
		res->is_changed = log->n > before;
	else
		res->is_created = 0;
	audit_log_free(&own);
	return rc;
}
