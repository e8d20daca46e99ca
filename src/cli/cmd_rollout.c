/*
 * cmd_rollout.c - `rollout --exec COMMAND`: a rolling deploy, one node (or
 * batch) at a time, never taking traffic from a node a load balancer
 * still sends to, nor giving it traffic before it is warm.
 *
 * For each batch, in order (PRODUCT §10):
 *   1. offline, with a reason naming the rollout and a TTL as a safety net
 *      (if this process dies, the node comes back by itself);
 *   2. wait until every load balancer has seen it out (wait.c, --drained);
 *   3. run COMMAND per node with /bin/sh -c (shellcmd.c), side by side;
 *   4. warm up: GET each --warmup path on the node's address until 2xx/3xx;
 *   5. online;
 *   6. wait until the load balancers send it traffic (wait.c, --serving);
 *   7. with --canary/--bake or --verify, judge it against the nodes not
 *      yet deployed (judge.c) and, on a fail, take it out and roll it back
 *      ("the verdict" below).
 * Any failure stops the rollout: the batch is set offline again, now
 * without TTL (a node that failed its deploy must not come back by
 * itself) and with a reason naming the failure; later nodes are not
 * touched. SIGINT/SIGTERM stop it the same way once the current step is
 * over (waits end at once; a running command is waited for).
 *
 * Everything is checked before the first change: options, that the nodes
 * exist and are online, that they have addresses where one is needed.
 *
 * This file owns the options, the steps, the batches and the summary;
 * the plan (nodes, commands, environment, reason, --dry-run's print) is
 * rollout_plan.c's, the verdict (step 7) rollout_verdict.c's, the
 * registration with the daemon rollout_register.c's, and rollout.h what
 * they share.
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
#include "judge.h"
#include "output.h"
#include "shellcmd.h"
#include "util/timefmt.h"
#include "util/utf8.h"
#include "util/url.h"
#include "util/xalloc.h"
#include "wait.h"

#define DEFAULT_DRAIN_TIMEOUT_MS (60 * 1000)
#define DEFAULT_READY_TIMEOUT_MS (60 * 1000)
#define COMMAND_BUDGET_MS (15 * 60 * 1000) /* what the default TTL allows COMMAND */
#define WARMUP_RETRY_MS 250
#define WARMUP_ATTEMPT_MAX_MS 5000

extern char **environ;

volatile sig_atomic_t rollout_interrupted;

const char *const rollout_result_names[] = {
    [RESULT_NOT_STARTED] = "not started",
    [RESULT_OK] = "ok",
    [RESULT_FAILED] = "failed",
    [RESULT_REFUSED] = "refused",
    [RESULT_STOPPED] = "stopped",
    [RESULT_INTERRUPTED] = "interrupted",
    [RESULT_VERDICT_FAIL] = "verdict fail",
    [RESULT_INCONCLUSIVE] = "inconclusive",
    [RESULT_ROLLED_BACK] = "rolled back",
    [RESULT_ROLLBACK_FAILED] = "rollback failed",
};

static void
on_signal(int sig)
{
	(void)sig;
	rollout_interrupted = 1;
}

double
rollout_seconds(int64_t ms)
{
	return (double)ms / 1000.0;
}

void
rollout_progress(const struct rollout *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(r->progress, fmt, ap);
	va_end(ap);
	fputc('\n', r->progress);
	fflush(r->progress);
}

/* --- options ------------------------------------------------------------ */

int
rollout_parse_count(const char *option, const char *text, long min, long max, long *out,
                    struct error *err)
{
	char *end;

	if (text == NULL)
		return 0;
	errno = 0;
	*out = strtol(text, &end, 10);
	if (text[0] < '0' || text[0] > '9' || *end != '\0' || errno != 0 || *out < min ||
	    *out > max)
		return cli_usage_error(err, "bad --%s '%s': give a number from %ld to %ld", option,
		                       text, min, max);
	return 0;
}

static int
parse_warmups(const struct cli *cli, struct error *err)
{
	int i;

	if (cli->n_warmup > CLI_WARMUP_MAX)
		return cli_usage_error(err, "at most %d --warmup paths", CLI_WARMUP_MAX);
	for (i = 0; i < cli->n_warmup; i++)
		if (cli->warmup[i][0] != '/' || strpbrk(cli->warmup[i], " \t\r\n") != NULL)
			return cli_usage_error(
			    err,
			    "bad --warmup '%s': give a path that starts with '/', like /health",
			    cli->warmup[i]);
	return 0;
}

static int
parse_options(struct cli *cli, struct rollout *r, struct error *err)
{
	long batch = 1, min_online = -1;
	int64_t ttl_ms;
	int rc;

	if (cli->exec == NULL || cli->exec[0] == '\0')
		return cli_usage_error(err, "rollout needs --exec 'COMMAND'");
	r->exec = cli->exec;
	r->is_dry_run = cli->given[OPT_DRY_RUN] != 0;
	if ((rc = rollout_parse_count("batch", cli->batch, 1, BATCH_MAX, &batch, err)) != 0 ||
	    (rc = rollout_parse_count("min-online", cli->min_online, 0, INT_MAX, &min_online,
	                              err)) != 0 ||
	    (rc = parse_warmups(cli, err)) != 0 ||
	    (rc = wait_parse_duration("drain-timeout", cli->drain_timeout, DEFAULT_DRAIN_TIMEOUT_MS,
	                              86400 * 1000LL, &r->drain_timeout_ms, err)) != 0 ||
	    (rc = wait_parse_duration("ready-timeout", cli->ready_timeout, DEFAULT_READY_TIMEOUT_MS,
	                              86400 * 1000LL, &r->ready_timeout_ms, err)) != 0)
		return rc;
	r->batch = (int)batch;
	r->min_online = min_online;
	wait_args_default(&r->drained, 0);
	if ((rc = wait_args_from_cli(cli, &r->drained, err)) != 0)
		return rc;
	r->drained.timeout_ms = r->drain_timeout_ms;
	r->drained.stop = &rollout_interrupted;
	r->serving = r->drained;
	r->serving.want_serving = 1;
	r->serving.timeout_ms = r->ready_timeout_ms;
	ttl_ms = r->drain_timeout_ms + COMMAND_BUDGET_MS + r->ready_timeout_ms;
	if ((rc = wait_parse_duration("ttl", cli->ttl, ttl_ms, TTL_MAX_SECONDS * 1000LL, &ttl_ms,
	                              err)) != 0)
		return rc;
	r->ttl_s = (ttl_ms + 999) / 1000;
	return rollout_parse_verdict_options(cli, r, err);
}

/* --- the steps ------------------------------------------------------------------ */

/* Sets the nodes of a batch to status, with reason and ttl_s (0: none)
 * and min_online (-1: none). */
int
rollout_set_status(struct rollout *r, struct rollout_node *b, int nb, const char *status,
                   const char *reason, int64_t ttl_s, json_int_t min_online, struct error *err)
{
	struct client_reply reply;
	json_t *body = json_object(), *changes = json_object();
	char *path = client_path("v1", "clusters", r->cli->cluster, "status", NULL), *query;
	int i, rc;

	for (i = 0; i < nb; i++) {
		json_t *entry = json_pack("{s:s}", "status", status);
		if (reason != NULL)
			json_object_set_new(entry, "reason", json_string(reason));
		if (ttl_s > 0)
			json_object_set_new(entry, "ttl", json_integer(ttl_s));
		json_object_set_new(changes, b[i].name, entry);
	}
	json_object_set_new(body, "changes", changes);
	if (min_online >= 0)
		json_object_set_new(body, "min_online", json_integer(min_online));
	/* The answer is not read: only the changed nodes, whatever the
	 * cluster's size (a daemon older than ?answer= ignores it). */
	if (asprintf(&query, "%s?answer=changed", path) < 0)
		abort(); /* out of memory */
	free(path);
	rc = cli_call(r->cli, "POST", query, body, &reply, err);
	if (rc == CLI_OK)
		client_reply_free(&reply);
	return rc;
}

struct wait_ctx {
	struct rollout *r;
	struct rollout_node *b;
	int nb;
	int64_t since;
	int is_drain;
};

/* "app1: drained by 2 probers in 1.2s (hap1: agent answered 'maint' at
 * +0.21s; v1: 2 failing answers at +0.43s); in flight: hap1: 0 in flight". */
static void
on_wait_done(void *ctx, const struct drain_node *w, const struct wait_args *a)
{
	struct wait_ctx *c = ctx;
	int64_t took = time_monotonic_ms() - c->since;
	int i;

	(void)a;
	for (i = 0; i < c->nb; i++)
		if (strcmp(c->b[i].name, w->name) == 0) {
			if (c->is_drain) {
				c->b[i].drain_ms = took;
				rollout_copy_text(c->b[i].drained_by, sizeof(c->b[i].drained_by),
				                  w->evidence);
				rollout_copy_text(c->b[i].in_flight, sizeof(c->b[i].in_flight),
				                  w->in_flight);
			} else
				c->b[i].ready_ms = took;
		}
	if (w->had_no_probers)
		rollout_progress(c->r, "%s: no load balancer probes it; waited %.1fs%s%s", w->name,
		                 rollout_seconds(took), c->is_drain ? "; in flight: " : "",
		                 c->is_drain ? w->in_flight : "");
	else
		rollout_progress(c->r, "%s: %s by %zu prober%s in %.1fs (%s)%s%s", w->name,
		                 c->is_drain ? "drained" : "served", w->n_probers,
		                 w->n_probers == 1 ? "" : "s", rollout_seconds(took), w->evidence,
		                 c->is_drain ? "; in flight: " : "",
		                 c->is_drain ? w->in_flight : "");
}

static int
wait_batch(struct rollout *r, struct rollout_node *b, int nb, int is_drain, int64_t since,
           struct error *err)
{
	struct drain_node w[BATCH_MAX];
	struct wait_ctx ctx = {r, b, nb, since, is_drain};
	int i;

	memset(w, 0, sizeof(w));
	for (i = 0; i < nb; i++)
		w[i].name = b[i].name;
	return wait_for_nodes(r->cli, w, nb, r->lbs, r->n_lbs, is_drain ? &r->drained : &r->serving,
	                      on_wait_done, &ctx, err);
}

static int
run_commands(struct rollout *r, struct rollout_node *b, int nb, struct error *err)
{
	struct shellcmd cmds[BATCH_MAX];
	char why[128];
	int i, rc = CLI_OK;

	memset(cmds, 0, sizeof(cmds));
	for (i = 0; i < nb; i++) {
		cmds[i].label = b[i].name;
		cmds[i].command = b[i].command;
		cmds[i].env = b[i].env;
		rollout_progress(r, "%s: running: %s", b[i].name, b[i].command);
	}
	/* With --json, stdout holds only the summary: the commands' output
	 * goes to stderr. */
	if (shellcmd_run_all(cmds, nb, r->cli->is_json ? stderr : stdout, stderr, err) != 0)
		rc = CLI_REFUSED;
	for (i = 0; i < nb; i++) {
		if (!cmds[i].is_started)
			continue;
		b[i].command_ms = cmds[i].elapsed_ms;
		shellcmd_describe_exit(&cmds[i], why, sizeof(why));
		rollout_progress(r, "%s: the command %s after %.1fs", b[i].name, why,
		                 rollout_seconds(cmds[i].elapsed_ms));
		if (cmds[i].exit_code != 0) {
			snprintf(b[i].error, sizeof(b[i].error), "the command %s", why);
			b[i].result = RESULT_FAILED;
			if (rc == CLI_OK)
				error_set(err, 0, "%s: the command %s", b[i].name, why);
			rc = CLI_REFUSED;
		}
	}
	return rc;
}

/* One GET of url; returns the HTTP status, or 0 with why filled. */
static long
get_once(const char *url, int64_t timeout_ms, char *why, size_t size)
{
	CURL *h = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode cc;

	if (h == NULL)
		abort(); /* out of memory */
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* node addresses are direct */
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "clustermgmt-rollout/" CM_VERSION);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, url_discard_body);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if ((cc = curl_easy_perform(h)) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(why, size, "%s", errbuf[0] != '\0' ? errbuf : curl_easy_strerror(cc));
	if (status != 0)
		snprintf(why, size, "HTTP %ld", status);
	curl_easy_cleanup(h);
	return status;
}

/* GETs every --warmup path on node until each answers 2xx or 3xx, all
 * within the ready timeout. */
static int
warm_up(struct rollout *r, struct rollout_node *node, struct error *err)
{
	int64_t start = time_monotonic_ms(), deadline = start + r->ready_timeout_ms, left;
	char url[1024], why[CURL_ERROR_SIZE + 32];
	long status;
	int i;

	for (i = 0; i < r->cli->n_warmup; i++) {
		snprintf(url, sizeof(url), "http://%s%s", node->address, r->cli->warmup[i]);
		while (1) {
			left = deadline - time_monotonic_ms();
			status = get_once(url,
			                  left < WARMUP_ATTEMPT_MAX_MS ? (left > 1 ? left : 1)
			                                               : WARMUP_ATTEMPT_MAX_MS,
			                  why, sizeof(why));
			if (status >= 200 && status < 400)
				break;
			if (rollout_interrupted) {
				error_set(err, 0, "%s: interrupted during warm-up", node->name);
				return CLI_REFUSED;
			}
			if (time_monotonic_ms() + WARMUP_RETRY_MS > deadline) {
				snprintf(
				    node->error, sizeof(node->error),
				    "warm-up GET %.200s did not answer 2xx or 3xx within %.0fs "
				    "(last: %.120s)",
				    url, rollout_seconds(r->ready_timeout_ms), why);
				node->result = RESULT_FAILED;
				error_set(err, 0, "%s: %s", node->name, node->error);
				return CLI_TIMEOUT;
			}
			wait_sleep_ms(WARMUP_RETRY_MS, &rollout_interrupted);
		}
	}
	node->warmup_ms = time_monotonic_ms() - start;
	rollout_progress(r, "%s: warmed up in %.1fs (%d path%s)", node->name,
	                 rollout_seconds(node->warmup_ms), r->cli->n_warmup,
	                 r->cli->n_warmup == 1 ? "" : "s");
	return CLI_OK;
}

/* After a failure or interruption: the batch offline, without TTL, with
 * a reason that says what happened. */
static void
leave_offline(struct rollout *r, struct rollout_node *b, int nb, const char *what,
              struct error *err)
{
	struct error again;
	char reason[REASON_MAX + 1];
	size_t len;
	int i;

	snprintf(reason, sizeof(reason), "rollout %s %.230s", r->id, what);
	rollout_clean_reason(reason);
	error_clear(&again);
	if (rollout_set_status(r, b, nb, "offline", reason, 0, -1, &again) != CLI_OK) {
		len = strlen(err->what);
		snprintf(err->what + len, sizeof(err->what) - len,
		         "; could not set it offline without TTL (%s): its TTL returns it online",
		         again.what);
		return;
	}
	len = strlen(err->what);
	for (i = 0; i < nb; i++) {
		snprintf(err->what + len, sizeof(err->what) - len, "%s%s", i == 0 ? "; " : ", ",
		         b[i].name);
		len = strlen(err->what);
	}
	snprintf(err->what + len, sizeof(err->what) - len, " left offline without TTL");
}

static const char *const step_names[] = {"going offline", "draining",     "the command",
                                         "warm-up",       "going online", "waiting to be served"};

int
rollout_do_step(struct rollout *r, struct rollout_node *b, int nb, enum step step,
                struct error *err)
{
	int64_t t0 = time_monotonic_ms();
	char ttl[32];
	int i, rc = CLI_OK;

	rollout_report(r, step_names[step], b[0].name, NULL);
	switch (step) {
	case STEP_OFFLINE:
		rc = rollout_set_status(r, b, nb, "offline", r->reason, r->ttl_s, r->min_online,
		                        err);
		rollout_format_duration(r->ttl_s * 1000, ttl, sizeof(ttl));
		for (i = 0; i < nb && rc == CLI_OK; i++)
			rollout_progress(
			    r,
			    "%s: offline (ttl %s), waiting for the load balancers to drain it...",
			    b[i].name, ttl);
		return rc;
	case STEP_DRAIN:
		return wait_batch(r, b, nb, 1, b[0].started, err);
	case STEP_COMMAND:
		return run_commands(r, b, nb, err);
	case STEP_WARMUP:
		for (i = 0; i < nb && rc == CLI_OK; i++)
			rc = warm_up(r, &b[i], err);
		return rc;
	case STEP_ONLINE:
		rc = rollout_set_status(r, b, nb, "online", NULL, 0, -1, err);
		for (i = 0; i < nb && rc == CLI_OK; i++)
			rollout_progress(
			    r, "%s: online, waiting for the load balancers to send it traffic...",
			    b[i].name);
		return rc;
	case STEP_SERVING:
		return wait_batch(r, b, nb, 0, t0, err);
	}
	return rc;
}

/* The batch could not be taken offline: nothing changed. */
static void
refused_offline(struct rollout_node *b, int nb, int rc, struct error *err)
{
	char why[sizeof(err->what)];
	int i;

	rollout_copy_text(why, sizeof(why), err->what);
	error_set(err, err->status, "%s%s: %s: %s", b[0].name, nb > 1 ? " and its batch" : "",
	          rc == CLI_REFUSED ? "the server refused to take it offline"
	                            : "could not take it offline",
	          why);
	for (i = 0; i < nb; i++) {
		b[i].result = RESULT_REFUSED;
		rollout_copy_text(b[i].error, sizeof(b[i].error), why);
	}
}

/* Runs the six steps on one batch. On failure, err says what failed and
 * what state the batch is left in. */
int
rollout_run_batch(struct rollout *r, struct rollout_node *b, int nb, struct error *err)
{
	char what[300];
	int step, i, any_failed, rc = CLI_OK;
	int64_t now;

	for (i = 0; i < nb; i++)
		b[i].started = time_monotonic_ms();
	for (step = STEP_OFFLINE; step <= STEP_SERVING; step++) {
		if (rollout_interrupted && step > STEP_OFFLINE) {
			error_set(err, 0, "interrupted before %s of %s", step_names[step],
			          b[0].name);
			snprintf(what, sizeof(what), "interrupted before %s", step_names[step]);
			rc = CLI_REFUSED;
			break;
		}
		if (rollout_interrupted) {
			error_set(err, 0, "interrupted before %s", b[0].name);
			return CLI_REFUSED;
		}
		if (step == STEP_WARMUP && r->cli->n_warmup == 0)
			continue;
		if ((rc = rollout_do_step(r, b, nb, (enum step)step, err)) == CLI_OK)
			continue;
		if (step == STEP_OFFLINE) { /* nothing changed */
			refused_offline(b, nb, rc, err);
			return rc;
		}
		if (rollout_interrupted)
			rc = CLI_REFUSED;
		snprintf(what, sizeof(what), "%s during %s: %.200s",
		         rollout_interrupted ? "interrupted" : "failed", step_names[step],
		         err->what);
		break;
	}
	now = time_monotonic_ms();
	for (i = 0; i < nb; i++)
		b[i].total_ms = now - b[i].started;
	if (rc == CLI_OK) {
		for (i = 0; i < nb; i++) {
			b[i].result = RESULT_OK;
			rollout_progress(r, "%s: done in %.1fs", b[i].name,
			                 rollout_seconds(b[i].total_ms));
		}
		return CLI_OK;
	}
	/* A node whose own step failed is marked already; when none is, the
	 * step failed for the whole batch (a timeout, the server). */
	for (i = 0, any_failed = 0; i < nb; i++)
		any_failed |= b[i].result == RESULT_FAILED;
	for (i = 0; i < nb; i++) {
		if (b[i].result == RESULT_FAILED)
			continue;
		b[i].result = rollout_interrupted ? RESULT_INTERRUPTED
		              : any_failed        ? RESULT_STOPPED
		                                  : RESULT_FAILED;
		if (b[i].error[0] == '\0')
			rollout_copy_text(b[i].error, sizeof(b[i].error), err->what);
	}
	leave_offline(r, b, nb, what, err);
	return rc;
}

/* --- the summary ---------------------------------------------------------------- */

static void
print_summary(const struct rollout *r, int rc, int64_t took)
{
	static const char *const header[] = {"NODE",  "DRAIN", "COMMAND", "WARMUP",
	                                     "READY", "TOTAL", "RESULT"};
	char cells[5][32];
	struct table *t;
	int i;

	fputc('\n', r->progress);
	t = table_new(7, header);
	for (i = 0; i < r->n; i++) {
		const struct rollout_node *n = &r->nodes[i];
		const char *row[7];
		rollout_format_duration(n->drain_ms, cells[0], sizeof(cells[0]));
		rollout_format_duration(n->command_ms, cells[1], sizeof(cells[1]));
		rollout_format_duration(n->warmup_ms, cells[2], sizeof(cells[2]));
		rollout_format_duration(n->ready_ms, cells[3], sizeof(cells[3]));
		rollout_format_duration(n->total_ms, cells[4], sizeof(cells[4]));
		row[0] = n->name;
		row[1] = cells[0];
		row[2] = cells[1];
		row[3] = cells[2];
		row[4] = cells[3];
		row[5] = cells[4];
		row[6] = rollout_result_names[n->result];
		table_add_row(t, row);
	}
	table_print(t, r->progress);
	table_free(t);
	for (i = 0; i < r->n; i++)
		if (r->nodes[i].drain_ms >= 0)
			fprintf(r->progress, "%s: drained by %s; in flight: %s\n", r->nodes[i].name,
			        r->nodes[i].drained_by[0] != '\0' ? r->nodes[i].drained_by
			                                          : "(no probers)",
			        r->nodes[i].in_flight);
	for (i = 0; i < r->n; i++) {
		const struct rollout_node *n = &r->nodes[i];
		if (n->verdict == NULL)
			continue;
		fprintf(r->progress, "%s: verdict %s at %.1fs of %.1fs judged: %s\n%s\n", n->name,
		        n->verdict, rollout_seconds(n->verdict_ms), rollout_seconds(n->judged_ms),
		        n->verdict_reason, n->evidence);
		if (n->out_ms >= 0)
			fprintf(r->progress,
			        "%s: out of every load balancer %.1fs after the verdict\n", n->name,
			        rollout_seconds(n->out_ms));
	}
	if (rc == CLI_OK)
		fprintf(r->progress, "rollout %s: %d node%s done in %.1fs\n", r->id, r->n,
		        r->n == 1 ? "" : "s", rollout_seconds(took));
	fflush(r->progress);
}

static json_t *
ms_or_null(int64_t ms)
{
	return ms < 0 ? json_null() : json_integer(ms);
}

static void
print_summary_json(const struct rollout *r, int rc, int64_t took, const struct error *err)
{
	json_t *doc, *nodes = json_array();
	char *text;
	int i;

	for (i = 0; i < r->n; i++) {
		const struct rollout_node *n = &r->nodes[i];
		json_array_append_new(
		    nodes,
		    json_pack("{s:s, s:s?, s:s, s:s, s:s?, s:s, s:s, s:o, s:o, s:o, s:o, s:o}",
		              "name", n->name, "address", n->address, "command", n->command,
		              "result", rollout_result_names[n->result], "error",
		              n->error[0] != '\0' ? n->error : NULL, "drained_by", n->drained_by,
		              "in_flight", n->in_flight, "drain_ms", ms_or_null(n->drain_ms),
		              "command_ms", ms_or_null(n->command_ms), "warmup_ms",
		              ms_or_null(n->warmup_ms), "ready_ms", ms_or_null(n->ready_ms),
		              "total_ms", ms_or_null(n->total_ms)));
		if (n->verdict != NULL) {
			json_t *o = json_array_get(nodes, json_array_size(nodes) - 1);
			json_object_set_new(o, "verdict", json_string(n->verdict));
			json_object_set_new(o, "verdict_reason", json_string(n->verdict_reason));
			json_object_set_new(o, "verdict_ms", ms_or_null(n->verdict_ms));
			json_object_set_new(o, "judged_ms", ms_or_null(n->judged_ms));
			json_object_set_new(o, "out_ms", ms_or_null(n->out_ms));
			json_object_set_new(o, "rolled_back", json_boolean(n->is_rolled_back));
			json_object_set(o, "evidence",
			                n->evidence_json != NULL ? n->evidence_json : json_null());
		}
	}
	doc = json_pack("{s:s, s:s, s:s, s:s?, s:o, s:o}", "rollout", r->id, "cluster",
	                r->cli->cluster, "result",
	                rc == CLI_OK                     ? "ok"
	                : rollout_interrupted            ? "interrupted"
	                : rc == CLI_VERDICT_FAIL         ? "verdict fail"
	                : rc == CLI_VERDICT_INCONCLUSIVE ? "inconclusive"
	                                                 : "failed",
	                "error", rc == CLI_OK ? NULL : err->what, "total_ms", ms_or_null(took),
	                "nodes", nodes);
	if (doc != NULL && (text = json_dumps(doc, JSON_SORT_KEYS)) != NULL) {
		puts(text);
		free(text);
	}
	json_decref(doc);
}

/* --- the command ----------------------------------------------------------------- */

static int
run_rollout(struct rollout *r, struct error *err)
{
	struct sigaction sa, old_int, old_term;
	int i, nb, rc = CLI_OK;
	char names[512];
	size_t used = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND; /* a second ^C kills at once; the TTL is the net */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	names[0] = '\0';
	for (i = 0; i < r->n && used < sizeof(names); i++)
		used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
		                         r->nodes[i].name);
	rollout_progress(r, "rollout %s: %d node%s (%s), %d at a time", r->id, r->n,
	                 r->n == 1 ? "" : "s", names, r->batch);
	for (i = 0; i < r->n && rc == CLI_OK; i += nb) {
		nb = r->n - i < r->batch ? r->n - i : r->batch;
		if (r->canary > 0 && i < r->canary && i + nb > r->canary)
			nb = r->canary - i; /* the canary ends a batch */
		rc = rollout_run_batch(r, &r->nodes[i], nb, err);
		if (rc == CLI_OK)
			rc = rollout_judge_after_batch(r, i, nb, err);
	}
	for (i = 0, nb = 0; rc != CLI_OK && i < r->n; i++)
		nb += r->nodes[i].result == RESULT_NOT_STARTED;
	if (nb > 0) {
		used = strlen(err->what);
		snprintf(err->what + used, sizeof(err->what) - used, "; %d node%s not started", nb,
		         nb == 1 ? "" : "s");
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return rc;
}

static void
free_rollout(struct rollout *r)
{
	int i;

	for (i = 0; r->nodes != NULL && i < r->n; i++) {
		free(r->nodes[i].command);
		free(r->nodes[i].rollback_command);
		json_decref(r->nodes[i].evidence_json);
		rollout_free_env(r->nodes[i].env);
	}
	free(r->nodes);
	if (r->list.json != NULL)
		client_reply_free(&r->list);
}

int
cmd_rollout(struct cli *cli, int nargs, char **args, struct error *err)
{
	struct rollout r;
	int64_t took;
	int rc;

	(void)args;
	memset(&r, 0, sizeof(r));
	r.cli = cli;
	r.progress = cli->is_json ? stderr : stdout;
	rollout_interrupted = 0;
	if ((rc = cli_only_options(
	         cli,
	         CLI_OPTIONS(OPT_NODES, OPT_EXEC, OPT_WARMUP, OPT_BATCH, OPT_MIN_ONLINE, OPT_FALL,
	                     OPT_DRAIN_TIMEOUT, OPT_READY_TIMEOUT, OPT_DRY_RUN, OPT_TTL, OPT_WINDOW,
	                     OPT_NO_PROBERS_DELAY, OPT_REQUIRE_PROBERS, OPT_DRAIN_GRACE, OPT_CANARY,
	                     OPT_BAKE, OPT_VERIFY, OPT_MAX_ERROR_RATIO, OPT_MAX_LATENCY_RATIO,
	                     OPT_MIN_REQUESTS, OPT_ON_INCONCLUSIVE, OPT_ROLLBACK, OPT_ROLLBACK_ALL,
	                     OPT_FORCE, OPT_PROMETHEUS, OPT_ANALYSIS_QUERY),
	         "rollout", err)) != 0 ||
	    (rc = cli_check_args(nargs, 0, 0,
	                         "rollout [--nodes a,b,c|all] --exec 'COMMAND' [OPTIONS]; see "
	                         "clustermgmt rollout --help",
	                         err)) != 0 ||
	    (rc = parse_options(cli, &r, err)) != 0)
		return rc;
	rollout_make_id(r.id, sizeof(r.id));
	rollout_make_reason(&r);
	if ((rc = rollout_load_plan(&r, err)) != CLI_OK ||
	    (rc = rollout_check_judgeable(&r, err)) != CLI_OK)
		goto done;
	if (r.is_dry_run) {
		if (cli->is_json)
			rollout_print_plan_json(&r);
		else
			rollout_print_plan(&r);
		goto done;
	}
	if ((rc = rollout_register(&r, err)) != CLI_OK)
		goto done;
	r.start = time_monotonic_ms();
	rc = run_rollout(&r, err);
	took = time_monotonic_ms() - r.start;
	rollout_unregister(&r,
	                   rc == CLI_OK                     ? "done"
	                   : rollout_interrupted            ? "interrupted"
	                   : rc == CLI_VERDICT_FAIL         ? "verdict fail"
	                   : rc == CLI_VERDICT_INCONCLUSIVE ? "inconclusive"
	                                                    : "failed",
	                   rc == CLI_OK ? "" : err->what);
	if (cli->is_json)
		print_summary_json(&r, rc, took, err);
	else
		print_summary(&r, rc, took);
	if (rc != CLI_OK) {
		char id[32];
		size_t len = strlen(err->what);
		snprintf(id, sizeof(id), "rollout %s: ", r.id);
		if (len + strlen(id) < sizeof(err->what)) {
			memmove(err->what + strlen(id), err->what, len + 1);
			memcpy(err->what, id, strlen(id));
		}
	}
done:
	free_rollout(&r);
	return rc;
}
