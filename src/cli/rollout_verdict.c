/*
 * rollout_verdict.c - step 7 of `rollout` (cmd_rollout.c): with --canary
 * and --bake, or --verify, a deployed batch is judged against the nodes
 * not yet deployed (judge.c: the load balancers' counters, the analysis
 * layer's test); on a fail the node is taken out at once (offline without
 * TTL), drained, rolled back with --rollback and judged again, and it
 * stays in service only if it then passes. Also the verdict's options,
 * and the refusal, before any change, of a verdict no load balancer can
 * give.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* --canary, --bake, --verify, the thresholds, --on-inconclusive,
 * --rollback and --rollback-all (PRODUCT §10, "A rollout judges what it
 * deploys"). */
int
rollout_parse_verdict_options(struct cli *cli, struct rollout *r, struct error *err)
{
	long canary = 0;
	int rc;

	if ((rc = rollout_parse_count("canary", cli->canary, 1, BATCH_MAX, &canary, err)) != 0 ||
	    (rc = wait_parse_duration("bake", cli->bake, cli->canary != NULL ? JUDGE_DEFAULT_MS : 0,
	                              86400 * 1000LL, &r->bake_ms, err)) != 0 ||
	    (rc = wait_parse_duration("verify", cli->verify, 0, 86400 * 1000LL, &r->verify_ms,
	                              err)) != 0 ||
	    (rc = judge_config_from_cli(cli, &r->verdict, err)) != 0 ||
	    (rc = judge_prometheus_from_cli(cli, err)) != 0)
		return rc;
	r->canary = (int)canary;
	if (cli->bake != NULL && cli->canary == NULL)
		return cli_usage_error(err, "--bake needs --canary N (the nodes baked)");
	if (cli->canary != NULL && r->bake_ms < 1000)
		return cli_usage_error(err, "--bake must be at least 1s");
	if (cli->verify != NULL && r->verify_ms < 1000)
		return cli_usage_error(err, "--verify must be at least 1s");
	if (cli->on_inconclusive != NULL && strcmp(cli->on_inconclusive, "halt") != 0 &&
	    strcmp(cli->on_inconclusive, "continue") != 0)
		return cli_usage_error(err, "bad --on-inconclusive '%s': give halt or continue",
		                       cli->on_inconclusive);
	r->is_inconclusive_halt =
	    cli->on_inconclusive == NULL || strcmp(cli->on_inconclusive, "halt") == 0;
	if (cli->rollback != NULL && cli->rollback[0] == '\0')
		return cli_usage_error(err, "--rollback needs a COMMAND");
	r->rollback = cli->rollback;
	r->is_rollback_all = cli->given[OPT_ROLLBACK_ALL] != 0;
	r->is_force = cli->given[OPT_FORCE] != 0;
	if (r->is_rollback_all && r->rollback == NULL)
		return cli_usage_error(err, "--rollback-all needs --rollback 'COMMAND'");
	if ((r->rollback != NULL || cli->on_inconclusive != NULL || cli->max_error_ratio != NULL ||
	     cli->prometheus != NULL || cli->max_latency_ratio != NULL ||
	     cli->min_requests != NULL) &&
	    r->canary == 0 && r->verify_ms == 0)
		return cli_usage_error(err, "the verdict's options need --canary N --bake D or "
		                            "--verify D: nothing is judged without them");
	return 0;
}

/* --- the verdict ---------------------------------------------------------------- */

/* The nodes that still run the old build: online in the cluster's list
 * at the start, and not touched by this rollout. */
static int
collect_peers(const struct rollout *r, const char **peers)
{
	const json_t *node;
	size_t i;
	int n = 0, k, is_touched;

	json_array_foreach(json_object_get(r->list.json, "nodes"), i, node)
	{
		const char *name = output_field(node, "name"),
		           *status = output_field(node, "status");
		if (name == NULL || status == NULL || strcmp(status, "online") != 0)
			continue;
		for (k = 0, is_touched = 0; k < r->n; k++)
			is_touched |= strcmp(r->nodes[k].name, name) == 0 &&
			              r->nodes[k].result != RESULT_NOT_STARTED;
		if (!is_touched && n < JUDGE_PEERS_MAX)
			peers[n++] = name;
	}
	return n;
}

struct tick_ctx {
	struct rollout *r;
	int64_t duration_ms, last_ms;
};

/* Every 10 s, where the judgement stands. */
static void
on_judge_tick(void *ctx, const struct judge *j)
{
	struct tick_ctx *t = ctx;
	char evidence[2048];
	int k;

	if (j->took_ms - t->last_ms < 10000)
		return;
	t->last_ms = j->took_ms;
	for (k = 0; k < j->n_nodes; k++) {
		judge_format_evidence(j, k, evidence, sizeof(evidence));
		rollout_progress(t->r, "%s: judged %.0fs of %.0fs so far:\n%s", j->nodes[k].name,
		                 rollout_seconds(j->took_ms), rollout_seconds(t->duration_ms),
		                 evidence);
	}
}

/* Judges b[0..nb) for duration_ms against the nodes not yet deployed and
 * records each node's verdict. Returns the worst outcome; *rc is CLI_OK,
 * or the error (err filled) when judging could not start. */
static enum analysis_outcome
judge_nodes(struct rollout *r, struct rollout_node *b, int nb, int64_t duration_ms, int *rc,
            struct error *err)
{
	const char *names[JUDGE_NODES_MAX], *peers[JUDGE_PEERS_MAX];
	struct tick_ctx tick = {r, duration_ms, 0};
	enum analysis_outcome worst;
	struct judge j;
	int i, n_peers;

	n_peers = collect_peers(r, peers);
	for (i = 0; i < nb; i++)
		names[i] = b[i].name;
	j.prometheus_url = r->cli->prometheus;
	j.query = r->cli->analysis_query;
	*rc = judge_open(&j, &r->verdict, r->cli->cluster, r->lbs, r->n_lbs, names, nb, peers,
	                 n_peers, err);
	if (*rc != CLI_OK) {
		judge_close(&j);
		return ANALYSIS_INCONCLUSIVE;
	}
	rollout_progress(
	    r, "%s%s: judging for %.0fs against %d peer%s%s through %zu load balancer%s...",
	    b[0].name, nb > 1 ? " and its batch" : "", rollout_seconds(duration_ms), n_peers,
	    n_peers == 1 ? "" : "s", n_peers == 0 ? " (none left: against the ceilings alone)" : "",
	    j.n_usable, j.n_usable == 1 ? "" : "s");
	rollout_report(r, "judging", b[0].name, NULL);
	worst = judge_run(&j, duration_ms, &rollout_interrupted, on_judge_tick, &tick);
	for (i = 0; i < nb; i++) {
		struct rollout_node *n = &b[i];
		n->verdict = analysis_outcome_name(j.nodes[i].outcome);
		rollout_copy_text(n->verdict_reason, sizeof(n->verdict_reason), j.nodes[i].reason);
		judge_format_evidence(&j, i, n->evidence, sizeof(n->evidence));
		json_decref(n->evidence_json);
		n->evidence_json = judge_evidence_json(&j, i);
		n->judged_ms = j.took_ms;
		n->verdict_ms = j.nodes[i].decided_ms;
		rollout_report(r, NULL, n->name, n->verdict);
		rollout_progress(r, "%s: verdict %s at %.1fs: %s\n%s", n->name, n->verdict,
		                 rollout_seconds(n->verdict_ms), n->verdict_reason, n->evidence);
	}
	judge_close(&j);
	return worst;
}

/* A failing node, already offline without TTL and drained: --rollback
 * runs on it, it is warmed up, put back and judged again; it stays in
 * service only if it passes. */
static void
roll_back_failed(struct rollout *r, struct rollout_node *f, struct error *err)
{
	char *deployed = f->command, verdict_reason[512], evidence[2048];
	const char *verdict = f->verdict;
	json_t *evidence_json = f->evidence_json;
	int64_t verdict_ms = f->verdict_ms, judged_ms = f->judged_ms;
	enum analysis_outcome again;
	struct error step_err;
	int step, rc = CLI_OK;

	error_clear(&step_err);
	memcpy(verdict_reason, f->verdict_reason, sizeof(verdict_reason));
	memcpy(evidence, f->evidence, sizeof(evidence));
	f->evidence_json = NULL;
	f->command = f->rollback_command;
	f->is_rolled_back = 1;
	rollout_progress(r, "%s: rolling back", f->name);
	for (step = STEP_COMMAND; step <= STEP_SERVING && rc == CLI_OK; step++)
		if (step != STEP_WARMUP || r->cli->n_warmup > 0)
			rc = rollout_do_step(r, f, 1, (enum step)step, &step_err);
	f->command = deployed;
	again = ANALYSIS_FAIL;
	if (rc == CLI_OK)
		again = judge_nodes(r, f, 1, r->verify_ms > 0 ? r->verify_ms : r->bake_ms, &rc,
		                    &step_err);
	if (rc == CLI_OK && again == ANALYSIS_PASS) {
		f->result = RESULT_ROLLED_BACK;
		rollout_progress(r, "%s: rolled back and passes again: back in service", f->name);
	} else {
		f->result = RESULT_ROLLBACK_FAILED;
		rollout_progress(r, "%s: the rollback %s: left offline", f->name,
		                 rc != CLI_OK ? "failed" : "did not pass its verdict");
		if (rollout_set_status(r, f, 1, "offline", "rollback did not pass", 0, -1,
		                       &step_err) != CLI_OK)
			rollout_progress(r, "%s: could not set it offline: %s", f->name,
			                 step_err.what);
	}
	snprintf(f->error, sizeof(f->error), "verdict fail; rollback %s",
	         f->result == RESULT_ROLLED_BACK ? "passed" : "did not pass");
	/* the evidence shown is the deploy's verdict; the rollback's is in the progress */
	f->verdict = verdict;
	memcpy(f->verdict_reason, verdict_reason, sizeof(verdict_reason));
	memcpy(f->evidence, evidence, sizeof(evidence));
	json_decref(f->evidence_json);
	f->evidence_json = evidence_json;
	f->verdict_ms = verdict_ms;
	f->judged_ms = judged_ms;
	(void)err;
}

/* A fail verdict in b[0..nb): each failing node out at once (offline
 * without TTL), drained, rolled back with --rollback; with --rollback-all
 * the nodes deployed before too. Returns CLI_VERDICT_FAIL with err. */
static int
halt_on_fail(struct rollout *r, struct rollout_node *b, int nb, struct error *err)
{
	char reason[REASON_MAX + 1], first[600] = "";
	struct error step_err;
	int64_t verdict_at;
	int i, k, n_failed = 0;

	for (i = 0; i < nb; i++) {
		struct rollout_node *f = &b[i];
		if (f->verdict == NULL || strcmp(f->verdict, "fail") != 0)
			continue;
		n_failed++;
		if (first[0] == '\0')
			snprintf(first, sizeof(first), "%s: %s", f->name, f->verdict_reason);
		verdict_at = time_monotonic_ms();
		f->result = RESULT_VERDICT_FAIL;
		snprintf(f->error, sizeof(f->error), "verdict fail: %.480s", f->verdict_reason);
		snprintf(reason, sizeof(reason), "rollout %s verdict fail: %.200s", r->id,
		         f->verdict_reason);
		rollout_clean_reason(reason);
		error_clear(&step_err);
		if (rollout_set_status(r, f, 1, "offline", reason, 0, -1, &step_err) != CLI_OK) {
			rollout_progress(r, "%s: could not take it offline: %s", f->name,
			                 step_err.what);
			continue;
		}
		rollout_progress(r, "%s: offline at once, without TTL: its verdict is fail",
		                 f->name);
		f->started = verdict_at;
		if (rollout_do_step(r, f, 1, STEP_DRAIN, &step_err) == CLI_OK) {
			f->out_ms = time_monotonic_ms() - verdict_at;
			rollout_progress(r,
			                 "%s: out of every load balancer %.1fs after the verdict",
			                 f->name, rollout_seconds(f->out_ms));
		} else {
			rollout_progress(r, "%s: %s", f->name, step_err.what);
			continue; /* not drained: no command runs on it */
		}
		if (r->rollback != NULL)
			roll_back_failed(r, f, err);
	}
	if (r->is_rollback_all)
		for (k = 0; k < r->n && !rollout_interrupted; k++) {
			struct rollout_node *d = &r->nodes[k];
			char *deployed = d->command;
			if (d->result != RESULT_OK)
				continue;
			rollout_progress(r, "%s: rolling back (--rollback-all)", d->name);
			d->command = d->rollback_command;
			error_clear(&step_err);
			if (rollout_run_batch(r, d, 1, &step_err) == CLI_OK)
				d->result = RESULT_ROLLED_BACK;
			else
				rollout_progress(r, "%s: its rollback failed: %s", d->name,
				                 step_err.what);
			d->command = deployed;
			d->is_rolled_back = 1;
		}
	error_set(err, 0, "verdict fail: %d node%s worse than %s peers: %.400s", n_failed,
	          n_failed == 1 ? " is" : "s are", n_failed == 1 ? "its" : "their", first);
	return CLI_VERDICT_FAIL;
}

/* After batch b[0..nb) (starting at index first) is back in service: the
 * canary's bake, or --verify, when due. */
int
rollout_judge_after_batch(struct rollout *r, int first, int nb, struct error *err)
{
	struct rollout_node *b;
	enum analysis_outcome outcome;
	int64_t duration;
	int i, count, rc = CLI_OK;

	if (r->canary > 0 && first + nb == r->canary) {
		b = &r->nodes[0];
		count = r->canary;
		duration = r->bake_ms;
	} else if (first >= r->canary && r->verify_ms > 0) {
		b = &r->nodes[first];
		count = nb;
		duration = r->verify_ms;
	} else
		return CLI_OK;
	outcome = judge_nodes(r, b, count, duration, &rc, err);
	if (rc != CLI_OK)
		return rc;
	if (outcome == ANALYSIS_FAIL)
		return halt_on_fail(r, b, count, err);
	if (rollout_interrupted) {
		error_set(err, 0, "interrupted during the verdict of %s", b[0].name);
		return CLI_REFUSED;
	}
	if (outcome == ANALYSIS_PASS)
		return CLI_OK;
	for (i = 0; i < count; i++)
		if (b[i].verdict != NULL && strcmp(b[i].verdict, "inconclusive") == 0 &&
		    r->is_inconclusive_halt)
			b[i].result = RESULT_INCONCLUSIVE;
	if (!r->is_inconclusive_halt) {
		rollout_progress(r, "%s: inconclusive, and --on-inconclusive continue: going on",
		                 b[0].name);
		return CLI_OK;
	}
	error_set(err, 0,
	          "verdict inconclusive for %s: %.300s; the node%s stay%s in service (nothing "
	          "shows %s bad); more traffic, a longer --bake/--verify, or --on-inconclusive "
	          "continue",
	          b[0].name, b[0].verdict_reason, count == 1 ? "" : "s", count == 1 ? "s" : "",
	          count == 1 ? "it" : "them");
	return CLI_VERDICT_INCONCLUSIVE;
}

/* Refuses, before any change, a verdict no load balancer can give. */
int
rollout_check_judgeable(struct rollout *r, struct error *err)
{
	const char *name = r->nodes[0].name;
	struct judge j;
	int rc;

	if (r->canary == 0 && r->verify_ms == 0)
		return CLI_OK;
	if (r->canary > r->n)
		r->canary = r->n;
	j.prometheus_url = r->cli->prometheus;
	j.query = r->cli->analysis_query;
	rc = judge_open(&j, &r->verdict, r->cli->cluster, r->lbs, r->n_lbs, &name, 1, NULL, 0, err);
	judge_close(&j);
	return rc;
}
