/*
 * cmd_nodes.c - `nodes list|set|add|rm`: the node list of a cluster
 * (admin role, except list).
 */
#include <stdio.h>
#include <string.h>

#include "cli_internal.h"
#include "output.h"

/* NAME ADDRESS CHECK STATUS. */
static void
print_nodes_table(const json_t *answer)
{
	static const char *const header[] = {"NAME", "ADDRESS", "CHECK", "STATUS"};
	struct table *t = table_new(4, header);
	const char *row[4];
	json_t *node;
	size_t i;

	json_array_foreach(json_object_get(answer, "nodes"), i, node)
	{
		row[0] = output_field(node, "name");
		row[1] = output_field(node, "address");
		row[2] = output_field(node, "check");
		row[3] = output_field(node, "status");
		table_add_row(t, row);
	}
	table_print(t, stdout);
	table_free(t);
}

static int
nodes_list(struct cli *cli, int nargs, char **args, struct error *err)
{
	(void)args;
	return cli_list(cli, nargs, "nodes list",
	                client_path("v1", "clusters", cli->cluster, "nodes", NULL),
	                print_nodes_table, err);
}

/* {"nodes": [NAME, ...]}, or NULL when a name is not UTF-8. */
static json_t *
node_list_body(int nargs, char **args)
{
	json_t *names = json_array();
	int i, failed = 0;

	for (i = 0; i < nargs; i++)
		failed |= json_array_append_new(names, json_string(args[i]));
	if (failed) {
		json_decref(names);
		return NULL;
	}
	return json_pack("{s:o}", "nodes", names);
}

static int
nodes_set(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct client_reply reply;
	json_t *body;
	int rc;

	if ((rc = cli_only_options(cli, 0, "nodes set", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, -1, "nodes set NAME...", err)) != 0)
		return rc;
	if ((body = node_list_body(nargs, args)) == NULL)
		return cli_usage_error(err, "node names must be UTF-8 text");
	rc = cli_call(cli, "PUT", client_path("v1", "clusters", cli->cluster, "nodes", NULL), body,
	              &reply, err);
	if (rc != CLI_OK)
		return rc;
	cli_print(cli, &reply, print_nodes_table);
	client_reply_free(&reply);
	return CLI_OK;
}

/* {"address"?, "check"?}, or NULL when a value is not UTF-8. */
static json_t *
node_body(const struct cli *cli)
{
	json_t *body = json_object();
	int failed = 0;

	if (cli->address != NULL)
		failed |= json_object_set_new(body, "address", json_string(cli->address));
	if (cli->check != NULL)
		failed |= json_object_set_new(body, "check", json_string(cli->check));
	if (failed) {
		json_decref(body);
		return NULL;
	}
	return body;
}

static int
nodes_add(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct client_reply reply;
	json_t *body;
	int rc;

	if ((rc = cli_only_options(cli, OPT_ADDRESS | OPT_CHECK, "nodes add", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, 1, "nodes add NAME [--address HOST:PORT] [--check URL]",
	                         err)) != 0)
		return rc;
	if ((body = node_body(cli)) == NULL)
		return cli_usage_error(err, "--address and --check must be UTF-8 text");
	rc = cli_call(cli, "PUT",
	              client_path("v1", "clusters", cli->cluster, "nodes", args[0], NULL), body,
	              &reply, err);
	if (rc != CLI_OK)
		return rc;
	cli_print_done(cli, &reply, "node '%s' %s cluster '%s'", args[0],
	               reply.status == 201 ? "added to" : "updated in", cli->cluster);
	client_reply_free(&reply);
	return CLI_OK;
}

static int
nodes_rm(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct client_reply reply;
	int rc;

	if ((rc = cli_only_options(cli, 0, "nodes rm", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, 1, "nodes rm NAME", err)) != 0)
		return rc;
	rc = cli_call(cli, "DELETE",
	              client_path("v1", "clusters", cli->cluster, "nodes", args[0], NULL), NULL,
	              &reply, err);
	if (rc != CLI_OK)
		return rc;
	cli_print_done(cli, &reply, "node '%s' removed from cluster '%s'", args[0], cli->cluster);
	client_reply_free(&reply);
	return CLI_OK;
}

int
cmd_nodes(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const struct subcommand subs[] = {
	    {"list", nodes_list},
	    {"set", nodes_set},
	    {"add", nodes_add},
	    {"rm", nodes_rm},
	};

	return cli_dispatch(cli, "nodes", subs, sizeof(subs) / sizeof(subs[0]), nargs, args, err);
}
