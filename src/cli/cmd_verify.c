/*
 * cmd_verify.c - `verify NODE... [--against PEER,...] [--for D]`: the
 * verdict of `rollout --canary` on its own (judge.h), for a deploy done by
 * another tool. It only reads: the node list, the named load balancers,
 * the load balancers' counters and, with --prometheus, the query.
 *
 * Peers by default are every other node of the cluster that is online: the
 * nodes a deploy tool has not touched yet serve the same traffic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "judge.h"
#include "output.h"

#define LIST_TEXT_MAX 4096

static int
is_listed(const char *name, char *const *list, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return 1;
	return 0;
}

/* Checks that every node named exists in the cluster's list, and fills
 * peers: --against's names, or every other online node. */
static int
pick_peers(struct cli *cli, const json_t *list, int nargs, char **args, char *against_buf,
           const char **peers, int *n_peers, struct error *err)
{
	const json_t *nodes = json_object_get(list, "nodes"), *node;
	char *name, *save = NULL;
	size_t i;
	int k, found;

	for (k = 0; k < nargs; k++) {
		found = 0;
		json_array_foreach(nodes, i, node) found |=
		    strcmp(json_string_value(json_object_get(node, "name")) ?: "", args[k]) == 0;
		if (!found)
			return cli_usage_error(err, "no node '%s' in cluster '%s'", args[k],
			                       cli->cluster);
	}
	*n_peers = 0;
	if (cli->against != NULL) {
		if (strlen(cli->against) >= LIST_TEXT_MAX)
			return cli_usage_error(err, "--against is too long");
		snprintf(against_buf, LIST_TEXT_MAX, "%s", cli->against);
		for (name = strtok_r(against_buf, ",", &save); name != NULL;
		     name = strtok_r(NULL, ",", &save)) {
			found = 0;
			json_array_foreach(nodes, i, node) found |=
			    strcmp(json_string_value(json_object_get(node, "name")) ?: "", name) ==
			    0;
			if (!found)
				return cli_usage_error(err,
				                       "--against: no node '%s' in cluster '%s'",
				                       name, cli->cluster);
			if (is_listed(name, args, nargs))
				return cli_usage_error(err, "--against: '%s' is also judged", name);
			if (*n_peers == JUDGE_PEERS_MAX)
				return cli_usage_error(err, "--against: at most %d peers",
				                       JUDGE_PEERS_MAX);
			peers[(*n_peers)++] = name;
		}
		return 0;
	}
	json_array_foreach(nodes, i, node)
	{
		const char *n = json_string_value(json_object_get(node, "name"));
		const char *status = json_string_value(json_object_get(node, "status"));
		if (n == NULL || status == NULL || strcmp(status, "online") != 0 ||
		    is_listed(n, args, nargs) || *n_peers == JUDGE_PEERS_MAX)
			continue;
		peers[(*n_peers)++] = n;
	}
	return 0;
}

static void
print_verdicts(const struct judge *j)
{
	char evidence[4096];
	int k;

	for (k = 0; k < j->n_nodes; k++) {
		const struct judge_node *n = &j->nodes[k];
		judge_format_evidence(j, k, evidence, sizeof(evidence));
		printf("%s: %s at %.1fs: %s\n%s\n", n->name, analysis_outcome_name(n->outcome),
		       (double)n->decided_ms / 1000.0, n->reason, evidence);
	}
}

static void
print_verdicts_json(const struct judge *j, enum analysis_outcome worst)
{
	json_t *nodes = json_array(), *doc;
	char *text;
	int k;

	for (k = 0; k < j->n_nodes; k++) {
		const struct judge_node *n = &j->nodes[k];
		json_array_append_new(nodes,
		                      json_pack("{s:s, s:s, s:I, s:s, s:o}", "name", n->name,
		                                "verdict", analysis_outcome_name(n->outcome),
		                                "decided_ms", (json_int_t)n->decided_ms, "reason",
		                                n->reason, "evidence", judge_evidence_json(j, k)));
	}
	doc = json_pack("{s:s, s:o, s:I}", "verdict", analysis_outcome_name(worst), "nodes", nodes,
	                "watched_ms", (json_int_t)j->took_ms);
	if (doc != NULL && (text = json_dumps(doc, JSON_SORT_KEYS)) != NULL) {
		puts(text);
		free(text);
	}
	json_decref(doc);
}

int
cmd_verify(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct analysis_config cfg;
	struct client_reply list = {0};
	struct drain_lb lbs[WAIT_LBS_MAX];
	struct judge j;
	const char *peers[JUDGE_PEERS_MAX];
	char *against_buf = NULL;
	size_t n_lbs = 0;
	int64_t for_ms;
	int n_peers = 0, rc;
	enum analysis_outcome worst;

	memset(&j, 0, sizeof(j));
	if ((rc = cli_only_options(cli,
	                           CLI_OPTIONS(OPT_AGAINST, OPT_FOR, OPT_MAX_ERROR_RATIO,
	                                       OPT_MAX_LATENCY_RATIO, OPT_MIN_REQUESTS,
	                                       OPT_PROMETHEUS, OPT_ANALYSIS_QUERY),
	                           "verify", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, JUDGE_NODES_MAX,
	                         "verify NODE... [--against PEER,...] [--for D]", err)) != 0 ||
	    (rc = judge_config_from_cli(cli, &cfg, err)) != 0 ||
	    (rc = judge_prometheus_from_cli(cli, err)) != 0 ||
	    (rc = wait_parse_duration("for", cli->for_duration, JUDGE_DEFAULT_MS, 86400 * 1000LL,
	                              &for_ms, err)) != 0)
		return rc;
	if ((rc = cli_call(cli, "GET", client_path("v1", "clusters", cli->cluster, "nodes", NULL),
	                   NULL, &list, err)) != CLI_OK)
		return rc;
	j.prometheus_url = cli->prometheus;
	j.query = cli->analysis_query;
	against_buf = malloc(LIST_TEXT_MAX);
	if (against_buf == NULL)
		abort(); /* out of memory */
	if ((rc = pick_peers(cli, list.json, nargs, args, against_buf, peers, &n_peers, err)) !=
	        0 ||
	    (rc = wait_load_lbs(cli, lbs, &n_lbs, err)) != CLI_OK ||
	    (rc = judge_open(&j, &cfg, cli->cluster, lbs, n_lbs, (const char *const *)args, nargs,
	                     peers, n_peers, err)) != CLI_OK)
		goto done;
	fprintf(cli->is_json ? stderr : stdout,
	        "verifying %d node%s against %d peer%s for %.0fs through %zu load balancer%s\n",
	        nargs, nargs == 1 ? "" : "s", n_peers, n_peers == 1 ? "" : "s",
	        (double)for_ms / 1000.0, j.n_usable, j.n_usable == 1 ? "" : "s");
	fflush(cli->is_json ? stderr : stdout);
	worst = judge_run(&j, for_ms, NULL, NULL, NULL);
	if (cli->is_json)
		print_verdicts_json(&j, worst);
	else
		print_verdicts(&j);
	rc = worst == ANALYSIS_PASS   ? CLI_OK
	     : worst == ANALYSIS_FAIL ? CLI_VERDICT_FAIL
	                              : CLI_VERDICT_INCONCLUSIVE;
	if (rc != CLI_OK)
		error_set(err, 0, "verify: %s",
		          worst == ANALYSIS_FAIL ? "a node is worse than its peers"
		                                 : "too little traffic for a verdict");
done:
	judge_close(&j);
	free(against_buf);
	client_reply_free(&list);
	return rc;
}
