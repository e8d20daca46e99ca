/*
 * cmd_status.c - `status` and `offline|online|drain NAME...`: reading and
 * changing the administrative status of a cluster's nodes.
 *
 * A status change is one POST of a change set, so several nodes change
 * atomically or not at all; the answer is the new node list, printed as
 * the same table `status` prints.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli_internal.h"
#include "core/limits.h"
#include "output.h"
#include "util/timefmt.h"

/* The CHECK cell of a node: "-" without a check, "pending" before its
 * first result, "ok", or "down (why)". */
static const char *
check_cell(const json_t *node, char *buf, size_t size)
{
	const json_t *state = json_object_get(node, "check_state");
	const char *why;

	if (output_field(node, "check") == NULL)
		return NULL;
	if (!json_is_object(state))
		return "pending";
	if (json_is_true(json_object_get(state, "up")))
		return "ok";
	why = output_field(state, "last_error");
	snprintf(buf, size, "down (%s)", why != NULL ? why : "failing");
	return buf;
}

/* NAME STATUS REASON SINCE EXPIRES, times relative to now; and CHECK
 * when any node has an application check. */
static void
print_status_table(const json_t *answer)
{
	static const char *const header[] = {"NAME",  "STATUS",  "REASON",
	                                     "SINCE", "EXPIRES", "CHECK"};
	const json_t *nodes = json_object_get(answer, "nodes"), *node;
	size_t i, ncols = 5;
	struct table *t;
	int64_t now = time_now_ms();
	char since[48], expires[48], check[200];
	const char *row[6];

	json_array_foreach(nodes, i, node)
	{
		if (output_field(node, "check") != NULL)
			ncols = 6;
	}
	t = table_new(ncols, header);
	json_array_foreach(nodes, i, node)
	{
		row[0] = output_field(node, "name");
		row[1] = output_field(node, "status");
		row[2] = output_field(node, "reason");
		row[3] = output_relative_time(output_field(node, "changed_at"), now, since,
		                              sizeof(since));
		row[4] = output_relative_time(output_field(node, "expires_at"), now, expires,
		                              sizeof(expires));
		row[5] = check_cell(node, check, sizeof(check));
		table_add_row(t, row);
	}
	table_print(t, stdout);
	table_free(t);
}

/* The node list carries no check state: fetch it, for the nodes that
 * have a check, from their own documents. */
static int
add_check_states(struct cli *cli, json_t *answer, struct error *err)
{
	struct client_reply one;
	json_t *node;
	size_t i;
	int rc;

	json_array_foreach(json_object_get(answer, "nodes"), i, node)
	{
		if (output_field(node, "check") == NULL)
			continue;
		rc = cli_call(cli, "GET",
		              client_path("v1", "clusters", cli->cluster, "nodes",
		                          output_field(node, "name"), NULL),
		              NULL, &one, err);
		if (rc != CLI_OK)
			return rc;
		json_object_set(node, "check_state",
		                json_object_get(json_object_get(one.json, "node"), "check_state"));
		client_reply_free(&one);
	}
	return CLI_OK;
}

int
cmd_status(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct client_reply reply;
	int rc;

	(void)args;
	if ((rc = cli_only_options(cli, 0, "status", err)) != 0 ||
	    (rc = cli_check_args(nargs, 0, 0, "status [--cluster NAME] [--json]", err)) != 0)
		return rc;
	rc = cli_call(cli, "GET", client_path("v1", "clusters", cli->cluster, "nodes", NULL), NULL,
	              &reply, err);
	if (rc != CLI_OK)
		return rc;
	if (!cli->is_json && (rc = add_check_states(cli, reply.json, err)) != CLI_OK) {
		client_reply_free(&reply);
		return rc;
	}
	cli_print(cli, &reply, print_status_table);
	client_reply_free(&reply);
	return CLI_OK;
}

/* The --ttl in seconds, 0 when not given. */
static int
parse_ttl(const struct cli *cli, const char *status, json_int_t *ttl_s, struct error *err)
{
	int64_t ms;

	*ttl_s = 0;
	if (cli->ttl == NULL)
		return 0;
	if (strcmp(status, "online") == 0)
		return cli_usage_error(err,
		                       "--ttl does not apply to 'online': online does not expire");
	if (duration_parse(cli->ttl, 1, TTL_MAX_SECONDS * 1000, &ms) < 0)
		return cli_usage_error(
		    err,
		    "bad --ttl '%s': give a duration up to 30d, like 90, 90s, 10m, "
		    "2h or 1d",
		    cli->ttl);
	*ttl_s = (ms + 999) / 1000;
	return 0;
}

/* The --min-online count, -1 when not given. */
static int
parse_min_online(const struct cli *cli, json_int_t *min_online, struct error *err)
{
	char *end;
	long n;

	*min_online = -1;
	if (cli->min_online == NULL)
		return 0;
	errno = 0;
	n = strtol(cli->min_online, &end, 10);
	if (cli->min_online[0] < '0' || cli->min_online[0] > '9' || *end != '\0' || errno != 0 ||
	    n > INT_MAX)
		return cli_usage_error(err, "bad --min-online '%s': give a number of nodes, like 2",
		                       cli->min_online);
	*min_online = n;
	return 0;
}

/* {"changes": {NAME: {"status", "reason"?, "ttl"?}, ...}, "min_online"?},
 * or NULL when a name or the reason is not UTF-8 (jansson refuses it). */
static json_t *
change_set(const struct cli *cli, const char *status, json_int_t ttl_s, json_int_t min_online,
           int nargs, char **args)
{
	json_t *body = json_object(), *changes = json_object(), *entry = json_object();
	int i, failed = 0;

	failed |= json_object_set_new(entry, "status", json_string(status));
	if (cli->reason != NULL)
		failed |= json_object_set_new(entry, "reason", json_string(cli->reason));
	if (ttl_s > 0)
		failed |= json_object_set_new(entry, "ttl", json_integer(ttl_s));
	for (i = 0; i < nargs; i++)
		failed |= json_object_set(changes, args[i], entry);
	failed |= json_object_set_new(body, "changes", changes);
	if (min_online >= 0)
		failed |= json_object_set_new(body, "min_online", json_integer(min_online));
	json_decref(entry);
	if (failed) {
		json_decref(body);
		return NULL;
	}
	return body;
}

static int
set_status(struct cli *cli, const char *status, int nargs, char **args, struct error *err)
{
	struct client_reply reply;
	json_int_t ttl_s, min_online;
	json_t *body;
	char usage[128];
	int rc;

	snprintf(usage, sizeof(usage), "%s NAME... [--reason R] [--ttl DURATION] [--min-online K]",
	         status);
	if ((rc = cli_only_options(cli, OPT_REASON | OPT_TTL | OPT_MIN_ONLINE, status, err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, -1, usage, err)) != 0 ||
	    (rc = parse_ttl(cli, status, &ttl_s, err)) != 0 ||
	    (rc = parse_min_online(cli, &min_online, err)) != 0)
		return rc;
	if ((body = change_set(cli, status, ttl_s, min_online, nargs, args)) == NULL)
		return cli_usage_error(err, "node names and --reason must be UTF-8 text");
	rc = cli_call(cli, "POST", client_path("v1", "clusters", cli->cluster, "status", NULL),
	              body, &reply, err);
	if (rc != CLI_OK)
		return rc;
	cli_print(cli, &reply, print_status_table);
	client_reply_free(&reply);
	return CLI_OK;
}

int
cmd_offline(struct cli *cli, int nargs, char **args, struct error *err)
{
	return set_status(cli, "offline", nargs, args, err);
}

int
cmd_online(struct cli *cli, int nargs, char **args, struct error *err)
{
	return set_status(cli, "online", nargs, args, err);
}

int
cmd_drain(struct cli *cli, int nargs, char **args, struct error *err)
{
	return set_status(cli, "drain", nargs, args, err);
}
