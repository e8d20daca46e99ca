/*
 * cmd_lb.c - `lb list|add|rm`: the cluster's named load balancers, which
 * `wait` and `rollout` require evidence from (docs/LOADBALANCERS.md,
 * "Naming load balancers"). Admin to change, viewer to list.
 */
#include <stdio.h>
#include <string.h>

#include "cli_internal.h"
#include "output.h"

/* NAME KIND RUNTIME BACKEND. */
static void
print_lbs_table(const json_t *answer)
{
	static const char *const header[] = {"NAME", "KIND", "RUNTIME", "BACKEND"};
	struct table *t = table_new(4, header);
	const char *row[4];
	json_t *lb;
	size_t i;

	json_array_foreach(json_object_get(answer, "lbs"), i, lb)
	{
		row[0] = output_field(lb, "name");
		row[1] = output_field(lb, "kind");
		row[2] = output_field(lb, "runtime");
		row[3] = output_field(lb, "backend");
		table_add_row(t, row);
	}
	table_print(t, stdout);
	table_free(t);
}

static int
lb_list(struct cli *cli, int nargs, char **args, struct error *err)
{
	(void)args;
	return cli_list(cli, nargs, "lb list",
	                client_path("v1", "clusters", cli->cluster, "lbs", NULL), print_lbs_table,
	                err);
}

/* {"kind", "runtime"?, "backend"?}, or NULL when a value is not UTF-8. */
static json_t *
lb_body(const struct cli *cli)
{
	json_t *body = json_object();
	int failed = json_object_set_new(body, "kind", json_string(cli->kind));

	if (cli->runtime != NULL)
		failed |= json_object_set_new(body, "runtime", json_string(cli->runtime));
	if (cli->backend != NULL)
		failed |= json_object_set_new(body, "backend", json_string(cli->backend));
	if (failed) {
		json_decref(body);
		return NULL;
	}
	return body;
}

static int
lb_add(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const char usage[] =
	    "lb add NAME --kind haproxy|varnish|nginx|other [--runtime ADDR] [--backend B]";
	struct client_reply reply;
	json_t *body;
	int rc;

	if ((rc = cli_only_options(cli, OPT_KIND | OPT_RUNTIME | OPT_BACKEND, "lb add", err)) !=
	        0 ||
	    (rc = cli_check_args(nargs, 1, 1, usage, err)) != 0)
		return rc;
	if (cli->kind == NULL)
		return cli_usage_error(err, "lb add needs --kind haproxy|varnish|nginx|other");
	if ((body = lb_body(cli)) == NULL)
		return cli_usage_error(err, "--kind, --runtime and --backend must be UTF-8 text");
	rc = cli_call(cli, "PUT", client_path("v1", "clusters", cli->cluster, "lbs", args[0], NULL),
	              body, &reply, err);
	if (rc != CLI_OK)
		return rc;
	cli_print_done(cli, &reply, "load balancer '%s' %s cluster '%s'", args[0],
	               reply.status == 201 ? "added to" : "updated in", cli->cluster);
	client_reply_free(&reply);
	return CLI_OK;
}

static int
lb_rm(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct client_reply reply;
	int rc;

	if ((rc = cli_only_options(cli, 0, "lb rm", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, 1, "lb rm NAME", err)) != 0)
		return rc;
	rc = cli_call(cli, "DELETE",
	              client_path("v1", "clusters", cli->cluster, "lbs", args[0], NULL), NULL,
	              &reply, err);
	if (rc != CLI_OK)
		return rc;
	cli_print_done(cli, &reply, "load balancer '%s' removed from cluster '%s'", args[0],
	               cli->cluster);
	client_reply_free(&reply);
	return CLI_OK;
}

int
cmd_lb(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const struct subcommand subs[] = {
	    {"list", lb_list},
	    {"add", lb_add},
	    {"rm", lb_rm},
	};

	return cli_dispatch(cli, "lb", subs, sizeof(subs) / sizeof(subs[0]), nargs, args, err);
}
