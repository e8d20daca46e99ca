/*
 * cmd_wait.c - `wait NAME... --drained|--serving`: block until every load
 * balancer that probes the nodes has seen their current state.
 *
 * The waiting itself is wait.c, shared with `rollout`; this file is the
 * command: its options, one line per node as it is done, and --json.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_internal.h"
#include "util/xalloc.h"
#include "wait.h"

static int
parse_args(const struct cli *cli, struct wait_args *a, struct error *err)
{
	int rc;

	if (!!cli->given[OPT_DRAINED] == !!cli->given[OPT_SERVING])
		return cli_usage_error(err, "wait needs exactly one of --drained and --serving");
	wait_args_default(a, cli->given[OPT_SERVING] != 0);
	if ((rc = wait_args_from_cli(cli, a, err)) != 0 ||
	    (rc = wait_parse_duration("timeout", cli->timeout, WAIT_DEFAULT_TIMEOUT_MS,
	                              INT64_MAX / 2, &a->timeout_ms, err)) != 0)
		return rc;
	return 0;
}

/* "node1: drained by 2 probers (hap1: agent answered 'maint' at +0.21s;
 * v1: 2 failing answers at +0.43s); in flight: hap1: 0 in flight". */
static void
print_done(void *ctx, const struct drain_node *w, const struct wait_args *a)
{
	const struct cli *cli = ctx;

	if (cli->is_json)
		return;
	if (w->had_no_probers)
		printf("%s: no probers; waited %llds", w->name,
		       (long long)a->no_probers_delay_ms / 1000);
	else
		printf("%s: %s by %zu prober%s (%s)", w->name,
		       a->want_serving ? "served" : "drained", w->n_probers,
		       w->n_probers == 1 ? "" : "s", w->evidence);
	if (!a->want_serving)
		printf("; in flight: %s", w->in_flight);
	putchar('\n');
	fflush(stdout);
}

static void
print_json(const struct drain_node *nodes, int n)
{
	json_t *doc = json_object(), *list = json_object();
	char *text;
	int i;

	for (i = 0; i < n; i++)
		json_object_set_new(list, nodes[i].name,
		                    json_pack("{s:b, s:I, s:s, s:s, s:s}", "done", nodes[i].is_done,
		                              "probers", (json_int_t)nodes[i].n_probers, "evidence",
		                              nodes[i].evidence, "in_flight", nodes[i].in_flight,
		                              "pending", nodes[i].is_done ? "" : nodes[i].pending));
	json_object_set_new(doc, "nodes", list);
	if ((text = json_dumps(doc, JSON_SORT_KEYS)) != NULL)
		puts(text);
	free(text);
	json_decref(doc);
}

int
cmd_wait(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const char usage[] = "wait NAME... --drained|--serving [--fall K] [--timeout D] "
	                            "[--window D] [--no-probers-delay D | --require-probers] "
	                            "[--drain-grace D]";
	struct wait_args a;
	struct drain_node *nodes;
	int i, rc;

	if ((rc = cli_only_options(cli,
	                           CLI_OPTIONS(OPT_DRAINED, OPT_SERVING, OPT_FALL, OPT_TIMEOUT,
	                                       OPT_WINDOW, OPT_NO_PROBERS_DELAY,
	                                       OPT_REQUIRE_PROBERS, OPT_DRAIN_GRACE),
	                           "wait", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, -1, usage, err)) != 0 ||
	    (rc = parse_args(cli, &a, err)) != 0)
		return rc;
	nodes = xcalloc((size_t)nargs, sizeof(*nodes));
	for (i = 0; i < nargs; i++)
		nodes[i].name = args[i];
	/* the daemon judges; the load balancers are read only for one that
	 * does not (wait_for_nodes) */
	rc = wait_for_nodes(cli, nodes, nargs, NULL, 0, &a, print_done, cli, err);
	if (cli->is_json && (rc == CLI_OK || rc == CLI_TIMEOUT))
		print_json(nodes, nargs);
	free(nodes);
	return rc;
}
