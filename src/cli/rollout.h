/*
 * rollout.h - what the files of `rollout` share (cmd_rollout.c runs it,
 * rollout_plan.c makes and prints its plan, rollout_verdict.c judges,
 * rollout_register.c registers it with the daemon); private to them.
 */
#ifndef CM_CLI_ROLLOUT_H
#define CM_CLI_ROLLOUT_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "analysis/verdict.h"
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
	RESULT_VERDICT_FAIL,    /* deployed, judged worse than its peers, taken out */
	RESULT_INCONCLUSIVE,    /* deployed, too little traffic for a verdict */
	RESULT_ROLLED_BACK,     /* failed its verdict, rolled back, passed again: online */
	RESULT_ROLLBACK_FAILED, /* failed its verdict, and its rollback did not pass: offline */
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
	/* the verdict (--canary/--verify); verdict NULL: not judged */
	char *rollback_command;        /* --rollback substituted; NULL without */
	const char *verdict;           /* "pass", "fail", "inconclusive" */
	char verdict_reason[512];      /* the deciding sentence */
	char evidence[2048];           /* per load balancer, one line each */
	json_t *evidence_json;         /* the same for --json (owned) */
	int64_t judged_ms, verdict_ms; /* how long it was judged; when decided (-1) */
	int64_t out_ms;                /* after a fail: verdict to drained everywhere (-1) */
	int is_rolled_back;            /* the rollback command ran on it */
};

/* The rollout as the daemon's registry shows it (rollout_register.c):
 * what the heartbeat thread sends, under lock. */
struct rollout_registration {
	int is_active; /* registered, heartbeat thread running */
	/* a copy of struct cli's: the main thread changes its own (a long
	 * poll's timeout, SIGINT's stop flag) while this thread calls */
	struct client client;
	char cluster[65], id[16];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	int is_dirty, is_stopping;
	char phase[64], current[65], state[32], message[512];
	json_t *verdicts; /* {node: verdict} */
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
	/* the verdict: with canary 0 and verify_ms 0 nothing is judged */
	int canary;                     /* --canary N */
	int64_t bake_ms, verify_ms;     /* --bake, --verify */
	struct analysis_config verdict; /* thresholds */
	int is_inconclusive_halt;       /* --on-inconclusive halt (default) */
	const char *rollback;           /* --rollback COMMAND, or NULL */
	int is_rollback_all;            /* --rollback-all */
	int is_force;                   /* --force: even while another rollout is registered */
	struct rollout_registration registration;
};

#define BATCH_MAX 32 /* --batch */

/* The steps of one batch, in order (cmd_rollout.c). */
enum step { STEP_OFFLINE, STEP_DRAIN, STEP_COMMAND, STEP_WARMUP, STEP_ONLINE, STEP_SERVING };

/* cmd_rollout.c: progress, option numbers and the steps, for the
 * verdict's options and rollback. */
void rollout_progress(const struct rollout *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
double rollout_seconds(int64_t ms);
/* Set by SIGINT/SIGTERM: stop once the current step is over. */
extern volatile sig_atomic_t rollout_interrupted;
/* --OPTION's number text into *out within [min, max]; NULL leaves it. */
int rollout_parse_count(const char *option, const char *text, long min, long max, long *out,
                        struct error *err);
int rollout_set_status(struct rollout *r, struct rollout_node *b, int nb, const char *status,
                       const char *reason, int64_t ttl_s, json_int_t min_online, struct error *err);
int rollout_do_step(struct rollout *r, struct rollout_node *b, int nb, enum step step,
                    struct error *err);
int rollout_run_batch(struct rollout *r, struct rollout_node *b, int nb, struct error *err);

/* rollout_verdict.c; each is described above its definition. */
int rollout_parse_verdict_options(struct cli *cli, struct rollout *r, struct error *err);
int rollout_judge_after_batch(struct rollout *r, int first, int nb, struct error *err);
int rollout_check_judgeable(struct rollout *r, struct error *err);

/* rollout_plan.c; each is described above its definition. */
void rollout_make_id(char *buf, size_t size);
void rollout_make_reason(struct rollout *r);
void rollout_copy_text(char *dst, size_t size, const char *src);
void rollout_free_env(char **env);
int rollout_load_plan(struct rollout *r, struct error *err);
void rollout_format_duration(int64_t ms, char *buf, size_t size);
void rollout_print_plan(const struct rollout *r);
void rollout_print_plan_json(const struct rollout *r);
void rollout_print_verdict_plan(const struct rollout *r);
void rollout_clean_reason(char *s);

/* rollout_register.c: the daemon's registry of rollouts in progress.
 * rollout_register POSTs the rollout (refused with CLI_REFUSED while
 * another is registered on the cluster, unless r->is_force; a daemon
 * without the registry only warns) and starts the heartbeat;
 * rollout_report changes the phase, the current node and (with verdict)
 * that node's verdict, any may be NULL; rollout_unregister sends how it
 * ended and stops the heartbeat. The last two do nothing when not
 * registered. */
int rollout_register(struct rollout *r, struct error *err);
void rollout_report(struct rollout *r, const char *phase, const char *node, const char *verdict);
void rollout_unregister(struct rollout *r, const char *state, const char *message);

#endif
