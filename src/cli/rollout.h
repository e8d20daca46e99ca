/*
 * rollout.h - what the files of `rollout` share (cmd_rollout.c runs it,
 * rollout_plan.c makes and prints its plan); private to them.
 */
#ifndef CM_CLI_ROLLOUT_H
#define CM_CLI_ROLLOUT_H

#include <stdint.h>
#include <stdio.h>

#include "cli_internal.h"
#include "core/limits.h"
#include "wait.h"

/* What happened to a node; rollout_result_names has the words the
 * summary prints. */
enum rollout_result {
	RESULT_NOT_STARTED,
	RESULT_OK,
	RESULT_FAILED,
	RESULT_REFUSED,
	RESULT_STOPPED,
	RESULT_INTERRUPTED,
};

extern const char *const rollout_result_names[];

/* One node of the rollout and what happened to it. */
struct rollout_node {
	const char *name;    /* borrowed from the node list */
	const char *address; /* NULL when the node has none */
	char *command;       /* COMMAND with {node} and {address} substituted */
	char **env;          /* the command's environment */
	int64_t started, drain_ms, command_ms, warmup_ms, ready_ms, total_ms; /* -1: not reached */
	enum rollout_result result;
	char error[512];                      /* why it failed, "" otherwise */
	char drained_by[768], in_flight[384]; /* the evidence of its drain */
};

struct rollout {
	struct cli *cli;
	char id[16];
	const char *exec;
	int batch;
	json_int_t min_online; /* -1: not given */
	int64_t ttl_s, drain_timeout_ms, ready_timeout_ms;
	struct wait_args drained, serving;
	struct drain_lb lbs[WAIT_LBS_MAX]; /* the cluster's named load balancers */
	size_t n_lbs;
	int is_dry_run;
	struct client_reply list; /* the node list, which owns the names */
	struct rollout_node *nodes;
	int n;
	FILE *progress; /* stdout, or stderr with --json */
	int64_t start;
	char reason[REASON_MAX + 1];
};

/* rollout_plan.c; each is described above its definition. */
void rollout_make_id(char *buf, size_t size);
void rollout_make_reason(struct rollout *r);
void rollout_copy_text(char *dst, size_t size, const char *src);
void rollout_free_env(char **env);
int rollout_load_plan(struct rollout *r, struct error *err);
void rollout_format_duration(int64_t ms, char *buf, size_t size);
void rollout_print_plan(const struct rollout *r);
void rollout_print_plan_json(const struct rollout *r);
void rollout_clean_reason(char *s);

#endif
