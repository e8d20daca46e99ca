/*
 * cmd_user.c - `user list|add|rm` and `token create|list|revoke`: who may
 * use the API (admin role).
 *
 * Passwords are read from stdin, never from the command line, where other
 * users could see them in the process list. A new token is printed alone
 * on stdout, so TOKEN=$(clustermgmt token create ...) works; the server
 * keeps only its hash, so it cannot be shown again.
 */
#include <stdio.h>
#include <string.h>

#include "cli_internal.h"
#include "core/limits.h"
#include "output.h"

/* NAME ROLE CREATED. */
static void
print_users_table(const json_t *answer)
{
	static const char *const header[] = {"NAME", "ROLE", "CREATED"};
	struct table *t = table_new(3, header);
	const char *row[3];
	json_t *user;
	size_t i;

	json_array_foreach(json_object_get(answer, "users"), i, user)
	{
		row[0] = output_field(user, "name");
		row[1] = output_field(user, "role");
		row[2] = output_field(user, "created_at");
		table_add_row(t, row);
	}
	table_print(t, stdout);
	table_free(t);
}

static int
user_list(struct cli *cli, int nargs, char **args, struct error *err)
{
	(void)args;
	return cli_list(cli, nargs, "user list", client_path("v1", "users", NULL),
	                print_users_table, err);
}

static int
user_add(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const char usage[] = "user add NAME --role viewer|operator|admin --password-stdin";
	char password[PASSWORD_MAX + 2];
	struct client_reply reply;
	json_t *body;
	int rc;

	if ((rc = cli_only_options(cli, CLI_OPTIONS(OPT_ROLE), "user add", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, 1, usage, err)) != 0 ||
	    (rc = cli_check_args(cli->role != NULL && cli->given[OPT_PASSWORD_STDIN], 1, 1, usage,
	                         err)) != 0 ||
	    (rc = cli_read_password(password, sizeof(password), "password for the new user",
	                            err)) != 0)
		return rc;
	body =
	    json_pack("{s:s, s:s, s:s}", "name", args[0], "password", password, "role", cli->role);
	explicit_bzero(password, sizeof(password));
	if (body == NULL)
		return cli_usage_error(err, "the name, password and role must be UTF-8 text");
	if ((rc = cli_call(cli, "POST", client_path("v1", "users", NULL), body, &reply, err)) !=
	    CLI_OK)
		return rc;
	cli_print_done(cli, &reply, "user '%s' added with role %s", args[0], cli->role);
	client_reply_free(&reply);
	return CLI_OK;
}

static int
user_rm(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct client_reply reply;
	int rc;

	if ((rc = cli_only_options(cli, NULL, "user rm", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, 1, "user rm NAME", err)) != 0)
		return rc;
	if ((rc = cli_call(cli, "DELETE", client_path("v1", "users", args[0], NULL), NULL, &reply,
	                   err)) != CLI_OK)
		return rc;
	cli_print_done(cli, &reply, "user '%s' removed", args[0]);
	client_reply_free(&reply);
	return CLI_OK;
}

int
cmd_user(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const struct subcommand subs[] = {
	    {"list", user_list},
	    {"add", user_add},
	    {"rm", user_rm},
	};

	return cli_dispatch(cli, "user", subs, sizeof(subs) / sizeof(subs[0]), nargs, args, err);
}

/* ID ROLE DESCRIPTION CREATED_BY CREATED. */
static void
print_tokens_table(const json_t *answer)
{
	static const char *const header[] = {"ID", "ROLE", "DESCRIPTION", "CREATED_BY", "CREATED"};
	struct table *t = table_new(5, header);
	const char *row[5];
	json_t *token;
	size_t i;

	json_array_foreach(json_object_get(answer, "tokens"), i, token)
	{
		row[0] = output_field(token, "id");
		row[1] = output_field(token, "role");
		row[2] = output_field(token, "description");
		row[3] = output_field(token, "created_by");
		row[4] = output_field(token, "created_at");
		table_add_row(t, row);
	}
	table_print(t, stdout);
	table_free(t);
}

static int
token_create(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const char usage[] =
	    "token create --role viewer|operator|admin [--cluster C[,C...]] [--description D]";
	struct client_reply reply;
	const char *token, *p;
	json_t *body, *clusters = NULL;
	int rc;

	(void)args;
	if ((rc = cli_only_options(cli, CLI_OPTIONS(OPT_ROLE, OPT_DESCRIPTION), "token create",
	                           err)) != 0 ||
	    (rc = cli_check_args(nargs, 0, 0, usage, err)) != 0 ||
	    (rc = cli_check_args(cli->role != NULL, 1, 1, usage, err)) != 0)
		return rc;
	body = json_pack("{s:s, s:s*}", "role", cli->role, "description", cli->description);
	if (body == NULL)
		return cli_usage_error(err, "--role and --description must be UTF-8 text");
	if (cli->is_cluster_given) { /* the token's role holds on these clusters only */
		clusters = json_array();
		for (p = cli->cluster; *p != '\0';) {
			size_t len = strcspn(p, ",");
			json_array_append_new(clusters, json_stringn(p, len));
			p += len + (p[len] == ',');
		}
		json_object_set_new(body, "clusters", clusters);
	}
	if ((rc = cli_call(cli, "POST", client_path("v1", "tokens", NULL), body, &reply, err)) !=
	    CLI_OK)
		return rc;
	token = output_field(reply.json, "token");
	if (cli->is_json || token == NULL) {
		output_json(reply.body, stdout);
	} else {
		printf("%s\n", token);
		fflush(stdout);
		fprintf(stderr, "note: this token (id %s) will not be shown again; keep it now.\n",
		        output_field(reply.json, "id") ? output_field(reply.json, "id") : "?");
	}
	client_reply_free(&reply);
	return CLI_OK;
}

static int
token_list(struct cli *cli, int nargs, char **args, struct error *err)
{
	(void)args;
	return cli_list(cli, nargs, "token list", client_path("v1", "tokens", NULL),
	                print_tokens_table, err);
}

static int
token_revoke(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct client_reply reply;
	int rc;

	if ((rc = cli_only_options(cli, NULL, "token revoke", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, 1, "token revoke ID", err)) != 0)
		return rc;
	if ((rc = cli_call(cli, "DELETE", client_path("v1", "tokens", args[0], NULL), NULL, &reply,
	                   err)) != CLI_OK)
		return rc;
	cli_print_done(cli, &reply, "token '%s' revoked", args[0]);
	client_reply_free(&reply);
	return CLI_OK;
}

int
cmd_token(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const struct subcommand subs[] = {
	    {"create", token_create},
	    {"list", token_list},
	    {"revoke", token_revoke},
	};

	return cli_dispatch(cli, "token", subs, sizeof(subs) / sizeof(subs[0]), nargs, args, err);
}
