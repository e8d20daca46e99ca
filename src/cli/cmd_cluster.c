/*
 * cmd_cluster.c - `cluster list|add|rm`: the clusters a daemon serves,
 * each with its own probe mount path (admin role, except list).
 */
#include <stdio.h>

#include "cli_internal.h"
#include "output.h"

/* An integer field as text, "-" when absent. */
static const char *
int_field(const json_t *obj, const char *key, char *buf, size_t size)
{
	json_t *value = json_object_get(obj, key);

	if (!json_is_integer(value))
		return "-";
	snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
	return buf;
}

/* NAME PATH VERSION NODES ONLINE. */
static void
print_clusters_table(const json_t *answer)
{
	static const char *const header[] = {"NAME", "PATH", "VERSION", "NODES", "ONLINE"};
	struct table *t = table_new(5, header);
	char version[32], nodes[32], online[32];
	const char *row[5];
	json_t *cluster;
	size_t i;

	json_array_foreach(json_object_get(answer, "clusters"), i, cluster)
	{
		row[0] = output_field(cluster, "name");
		row[1] = output_field(cluster, "path");
		row[2] = int_field(cluster, "version", version, sizeof(version));
		row[3] = int_field(cluster, "nodes", nodes, sizeof(nodes));
		row[4] = int_field(cluster, "online", online, sizeof(online));
		table_add_row(t, row);
	}
	table_print(t, stdout);
	table_free(t);
}

static int
cluster_list(struct cli *cli, int nargs, char **args, struct error *err)
{
	(void)args;
	return cli_list(cli, nargs, "cluster list", client_path("v1", "clusters", NULL),
	                print_clusters_table, err);
}

static int
cluster_add(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const char usage[] = "cluster add NAME --path /PATH";
	struct client_reply reply;
	json_t *body;
	int rc;

	if ((rc = cli_only_options(cli, OPT_PATH, "cluster add", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, 1, usage, err)) != 0 ||
	    (rc = cli_check_args(cli->path != NULL, 1, 1, usage, err)) != 0)
		return rc;
	if ((body = json_pack("{s:s, s:s}", "name", args[0], "path", cli->path)) == NULL)
		return cli_usage_error(err, "the name and --path must be UTF-8 text");
	if ((rc = cli_call(cli, "POST", client_path("v1", "clusters", NULL), body, &reply, err)) !=
	    CLI_OK)
		return rc;
	cli_print_done(cli, &reply, "cluster '%s' added, its probe is served at %s", args[0],
	               cli->path);
	client_reply_free(&reply);
	return CLI_OK;
}

static int
cluster_rm(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct client_reply reply;
	int rc;

	if ((rc = cli_only_options(cli, 0, "cluster rm", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, 1, "cluster rm NAME", err)) != 0)
		return rc;
	if ((rc = cli_call(cli, "DELETE", client_path("v1", "clusters", args[0], NULL), NULL,
	                   &reply, err)) != CLI_OK)
		return rc;
	cli_print_done(cli, &reply, "cluster '%s' removed", args[0]);
	client_reply_free(&reply);
	return CLI_OK;
}

int
cmd_cluster(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const struct subcommand subs[] = {
	    {"list", cluster_list},
	    {"add", cluster_add},
	    {"rm", cluster_rm},
	};

	return cli_dispatch(cli, "cluster", subs, sizeof(subs) / sizeof(subs[0]), nargs, args, err);
}
