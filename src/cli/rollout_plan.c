/*
 * rollout_plan.c - the plan of `rollout` (cmd_rollout.c): which nodes, in
 * which order, each one's command and environment, the reason and id
 * written on every change, all checked before the first change; and the
 * plan as printed by --dry-run (text or JSON).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <curl/curl.h>

#include "rollout.h"
#include "core/limits.h"
#include "output.h"
#include "shellcmd.h"
#include "util/timefmt.h"
#include "util/utf8.h"
#include "util/xalloc.h"
#include "wait.h"

extern char **environ;

/* --- the plan --------------------------------------------------------------- */

/* A short random id, so the reason and the audit log tell rollouts apart. */
void
rollout_make_id(char *buf, size_t size)
{
	unsigned char b[3] = {0};

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		unsigned v = (unsigned)getpid() ^ (unsigned)time_monotonic_ms();
		memcpy(b, &v, sizeof(b));
	}
	snprintf(buf, size, "%02x%02x%02x", b[0], b[1], b[2]);
}

/* Makes s (cut by snprintf to fit a reason) a valid reason: control
 * characters become spaces, and a UTF-8 sequence cut short is dropped. */
void
rollout_clean_reason(char *s)
{
	size_t len = strlen(s), i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = ' ';
	s[utf8_complete_length(s, len)] = '\0';
}

/* "rollout ID: COMMAND", within the API's limit (REASON_MAX characters:
 * cut to as many bytes, which are never more characters). */
void
rollout_make_reason(struct rollout *r)
{
	snprintf(r->reason, sizeof(r->reason), "rollout %s: %s", r->id, r->exec);
	rollout_clean_reason(r->reason);
}

/* Copies src into dst (size bytes), cut to fit. */
void
rollout_copy_text(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* text with every {node} and {address} replaced; malloc'd, not quoted.
 * Names hold only characters the shell takes literally; an address may be
 * an IPv6 one in brackets ("[::1]:8080"), a glob pattern to the shell, so
 * docs/CLI.md tells to quote "{address}". */
static char *
substitute(const char *text, const char *node, const char *address)
{
	size_t size = strlen(text) + 1, used = 0, n;
	const char *p, *with;
	char *out;

	out = xmalloc(size);
	for (p = text; *p != '\0';) {
		with = NULL;
		if (strncmp(p, "{node}", 6) == 0)
			with = node, n = 6;
		else if (strncmp(p, "{address}", 9) == 0)
			with = address != NULL ? address : "", n = 9;
		if (with == NULL) {
			out[used++] = *p++;
			continue;
		}
		size += strlen(with);
		out = xreallocarray(out, size, 1);
		memcpy(out + used, with, strlen(with));
		used += strlen(with);
		p += n;
	}
	out[used] = '\0';
	return out;
}

static int
is_ours(const char *entry)
{
	return strncmp(entry, "CLUSTERMGMT_NODE=", 17) == 0 ||
	       strncmp(entry, "CLUSTERMGMT_ADDRESS=", 20) == 0 ||
	       strncmp(entry, "CLUSTERMGMT_CLUSTER=", 20) == 0 ||
	       strncmp(entry, "CLUSTERMGMT_ROLLOUT=", 20) == 0;
}

/* Our environment with CLUSTERMGMT_NODE, _ADDRESS, _CLUSTER and _ROLLOUT
 * set for node; the array and its four new strings are malloc'd. */
static char **
make_env(const struct rollout *r, const struct rollout_node *node)
{
	size_t n = 0, used = 0, i;
	char **env;

	while (environ[n] != NULL)
		n++;
	env = xcalloc(n + 5, sizeof(*env));
	if (asprintf(&env[0], "CLUSTERMGMT_NODE=%s", node->name) < 0 ||
	    asprintf(&env[1], "CLUSTERMGMT_ADDRESS=%s",
	             node->address != NULL ? node->address : "") < 0 ||
	    asprintf(&env[2], "CLUSTERMGMT_CLUSTER=%s", r->cli->cluster) < 0 ||
	    asprintf(&env[3], "CLUSTERMGMT_ROLLOUT=%s", r->id) < 0)
		abort(); /* out of memory */
	used = 4;
	for (i = 0; i < n; i++)
		if (!is_ours(environ[i]))
			env[used++] = environ[i];
	return env;
}

void
rollout_free_env(char **env)
{
	int i;

	if (env == NULL)
		return;
	for (i = 0; i < 4; i++)
		free(env[i]);
	free(env);
}

static const json_t *
find_node(const json_t *list, const char *name)
{
	const json_t *node;
	size_t i;

	json_array_foreach(json_object_get(list, "nodes"), i, node)
	{
		const char *s = json_string_value(json_object_get(node, "name"));
		if (s != NULL && strcmp(s, name) == 0)
			return node;
	}
	return NULL;
}

/* The nodes named by --nodes (comma separated), or every node for "all"
 * or no --nodes, into r->nodes. */
static int
select_nodes(struct rollout *r, struct error *err)
{
	const json_t *all = json_object_get(r->list.json, "nodes"), *node;
	const char *spec = r->cli->nodes;
	char *copy = NULL, *name, *save = NULL;
	size_t i;
	int j;

	r->nodes = xcalloc(json_array_size(all) + 1, sizeof(*r->nodes));
	if (spec == NULL || strcmp(spec, "all") == 0) {
		json_array_foreach(all, i, node)
		{
			r->nodes[r->n++].name = json_string_value(json_object_get(node, "name"));
		}
		if (r->n == 0)
			return error_set(err, 0, "cluster '%s' has no nodes", r->cli->cluster),
			       CLI_REFUSED;
		return CLI_OK;
	}
	copy = xstrdup(spec);
	if (spec[0] == '\0' || spec[0] == ',' || spec[strlen(spec) - 1] == ',' ||
	    strstr(spec, ",,") != NULL)
		goto bad_list;
	for (name = strtok_r(copy, ",", &save); name != NULL; name = strtok_r(NULL, ",", &save)) {
		if ((node = find_node(r->list.json, name)) == NULL) {
			error_set(err, 0, "node '%s' not found in cluster '%s'", name,
			          r->cli->cluster);
			free(copy);
			return CLI_REFUSED;
		}
		for (j = 0; j < r->n; j++)
			if (strcmp(r->nodes[j].name, name) == 0) {
				cli_usage_error(err, "--nodes names '%s' twice", name);
				free(copy);
				return CLI_USAGE;
			}
		r->nodes[r->n++].name = json_string_value(json_object_get(node, "name"));
	}
	free(copy);
	return CLI_OK;
bad_list:
	free(copy);
	return cli_usage_error(err, "bad --nodes '%s': give node names separated by commas, or all",
	                       spec);
}

/* Addresses, commands and environments of the selected nodes; refuses a
 * node that is not online (the rollout would put it online) or that has
 * no address where one is needed. */
static int
prepare_nodes(struct rollout *r, struct error *err)
{
	int needs_address = r->cli->n_warmup > 0 || strstr(r->exec, "{address}") != NULL ||
	                    (r->rollback != NULL && strstr(r->rollback, "{address}") != NULL);
	int i;

	for (i = 0; i < r->n; i++) {
		struct rollout_node *rn = &r->nodes[i];
		const json_t *node = find_node(r->list.json, rn->name);
		const char *status = output_field(node, "status");
		rn->address = output_field(node, "address");
		rn->result = RESULT_NOT_STARTED;
		rn->drain_ms = rn->command_ms = rn->warmup_ms = rn->ready_ms = rn->total_ms = -1;
		if (status == NULL || strcmp(status, "online") != 0)
			return error_set(err, 0,
			                 "node '%s' is %s, not online: a rollout would put it "
			                 "online; bring it online first or leave it out of --nodes",
			                 rn->name, status != NULL ? status : "in an unknown state"),
			       CLI_REFUSED;
		if (needs_address && rn->address == NULL)
			return error_set(err, 0,
			                 "node '%s' has no address, which %s needs: set one with "
			                 "clustermgmt nodes add %s --address HOST:PORT",
			                 rn->name, r->cli->n_warmup > 0 ? "--warmup" : "{address}",
			                 rn->name),
			       CLI_REFUSED;
		rn->command = substitute(r->exec, rn->name, rn->address);
		rn->verdict_ms = rn->out_ms = rn->judged_ms = -1;
		if (r->rollback != NULL)
			rn->rollback_command = substitute(r->rollback, rn->name, rn->address);
		if (!r->is_dry_run)
			rn->env = make_env(r, rn);
	}
	return CLI_OK;
}

int
rollout_load_plan(struct rollout *r, struct error *err)
{
	int rc;

	rc = cli_call(r->cli, "GET", client_path("v1", "clusters", r->cli->cluster, "nodes", NULL),
	              NULL, &r->list, err);
	if (rc != CLI_OK)
		return rc;
	if ((rc = select_nodes(r, err)) != CLI_OK ||
	    (rc = wait_load_lbs(r->cli, r->lbs, &r->n_lbs, err)) != CLI_OK)
		return rc;
	return prepare_nodes(r, err);
}

/* "-" for a step not taken, "12.3s" under a minute, else as
 * duration_format ("4m10s"). */
void
rollout_format_duration(int64_t ms, char *buf, size_t size)
{
	if (ms < 0)
		snprintf(buf, size, "-");
	else if (ms < 60 * 1000)
		snprintf(buf, size, "%.1fs",
		         (double)ms / 1000.0); /* commands' timings: tenths count */
	else
		duration_format(ms, buf, size);
}

void
rollout_print_plan(const struct rollout *r)
{
	static const char *const header[] = {"BATCH", "NODE", "ADDRESS", "COMMAND"};
	char batch[16], ttl[32], drain[32], ready[32];
	struct table *t;
	int i, w;

	rollout_format_duration(r->ttl_s * 1000, ttl, sizeof(ttl));
	rollout_format_duration(r->drain_timeout_ms, drain, sizeof(drain));
	rollout_format_duration(r->ready_timeout_ms, ready, sizeof(ready));
	printf("dry run, nothing is changed: rollout of %d node%s in cluster '%s', %d at a time\n",
	       r->n, r->n == 1 ? "" : "s", r->cli->cluster, r->batch);
	t = table_new(4, header);
	for (i = 0; i < r->n; i++) {
		const char *row[4];
		snprintf(batch, sizeof(batch), "%d", i / r->batch + 1);
		row[0] = batch;
		row[1] = r->nodes[i].name;
		row[2] = r->nodes[i].address;
		row[3] = r->nodes[i].command;
		table_add_row(t, row);
	}
	table_print(t, stdout);
	table_free(t);
	printf("each batch: offline (reason \"%s\", ttl %s%s%s), wait until drained (fall %ld, up "
	       "to %s), run the command",
	       r->reason, ttl, r->min_online >= 0 ? ", min-online " : "",
	       r->min_online >= 0 ? r->cli->min_online : "", r->drained.fall, drain);
	for (w = 0; w < r->cli->n_warmup; w++)
		printf("%s%s", w == 0 ? ", warm up GET " : " ", r->cli->warmup[w]);
	printf(", online, wait until served (up to %s)\n", ready);
	rollout_print_verdict_plan(r);
}

/* The verdict's part of the plan: who is judged, how long, what on fail. */
void
rollout_print_verdict_plan(const struct rollout *r)
{
	char bake[32], verify[32];

	if (r->canary == 0 && r->verify_ms == 0)
		return;
	rollout_format_duration(r->bake_ms, bake, sizeof(bake));
	rollout_format_duration(r->verify_ms, verify, sizeof(verify));
	if (r->canary > 0)
		printf("canary: the first %d node%s, judged together for %s against the nodes not "
		       "yet deployed\n",
		       r->canary, r->canary == 1 ? "" : "s", bake);
	printf("later batches: %s%s\n", r->verify_ms > 0 ? "judged for " : "not judged",
	       r->verify_ms > 0 ? verify : "");
	printf("verdict: fail above the peers' error ratio + %g or %gx their mean response time; "
	       "pass after %llu responses; inconclusive: %s\n",
	       r->verdict.max_error_ratio, r->verdict.max_latency_ratio,
	       (unsigned long long)r->verdict.min_requests,
	       r->is_inconclusive_halt ? "halt" : "continue");
	printf("on fail: offline at once without TTL, %s%s\n",
	       r->rollback != NULL ? "then roll back with: " : "no rollback (no --rollback)",
	       r->rollback != NULL ? r->rollback : "");
}

void
rollout_print_plan_json(const struct rollout *r)
{
	json_t *doc, *nodes = json_array(), *warmup = json_array();
	char *text;
	int i;

	for (i = 0; i < r->cli->n_warmup; i++)
		json_array_append_new(warmup, json_string(r->cli->warmup[i]));
	for (i = 0; i < r->n; i++)
		json_array_append_new(nodes,
		                      json_pack("{s:s, s:s?, s:s, s:i}", "name", r->nodes[i].name,
		                                "address", r->nodes[i].address, "command",
		                                r->nodes[i].command, "batch", i / r->batch + 1));
	doc = json_pack("{s:b, s:s, s:s, s:s, s:I, s:i, s:o, s:o}", "dry_run", 1, "rollout", r->id,
	                "cluster", r->cli->cluster, "reason", r->reason, "ttl",
	                (json_int_t)r->ttl_s, "batch", r->batch, "warmup", warmup, "nodes", nodes);
	if (doc != NULL && (r->canary > 0 || r->verify_ms > 0))
		json_object_set_new(
		    doc, "verdict",
		    json_pack(
		        "{s:i, s:I, s:I, s:f, s:f, s:I, s:s, s:s?}", "canary", r->canary, "bake_ms",
		        (json_int_t)r->bake_ms, "verify_ms", (json_int_t)r->verify_ms,
		        "max_error_ratio", r->verdict.max_error_ratio, "max_latency_ratio",
		        r->verdict.max_latency_ratio, "min_requests",
		        (json_int_t)r->verdict.min_requests, "on_inconclusive",
		        r->is_inconclusive_halt ? "halt" : "continue", "rollback", r->rollback));
	if (doc != NULL && (text = json_dumps(doc, JSON_SORT_KEYS)) != NULL) {
		puts(text);
		free(text);
	}
	json_decref(doc);
}
