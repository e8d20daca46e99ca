/*
 * cli_internal.h - what cli.c shares with the command files (cmd_*.c).
 *
 * cli.c parses the whole command line once, global and command options
 * alike, into a struct cli; it then calls the command's handler with the
 * words that follow the command. A handler checks which options apply
 * (cli_only_options), talks to the server through cli->client, prints its
 * result on stdout and returns an enum cli_exit; on failure it fills err
 * and cli_main prints err->what.
 *
 * Adding a command: write cmd_NAME.c with a
 * handler below, add its options to enum cli_option and the option table
 * in cli.c if it has new ones, and add one line to the command table in
 * cli.c (name, handler, help text).
 */
#ifndef CM_CLI_INTERNAL_H
#define CM_CLI_INTERNAL_H

#include <stdint.h>

#include "client.h"
#include "core/error.h"

/* Command options: each is an index of struct cli.given (one flag per
 * option, so the list grows without running out of bits) and getopt's
 * value for it. Global options are not listed: every command accepts
 * them. OPT_NONE ends a list of options (CLI_OPTIONS). */
enum cli_option {
	OPT_NONE = 0,
	OPT_REASON,
	OPT_TTL,
	OPT_MIN_ONLINE,
	OPT_ADDRESS,
	OPT_CHECK,
	OPT_PATH,
	OPT_ROLE,
	OPT_DESCRIPTION,
	OPT_PASSWORD_STDIN,   /* global too, but meaningful to user add */
	OPT_TIMEOUT,          /* wait: how long; lbconfig: probe timeout */
	OPT_FALL,             /* failures in a row that count as "out" */
	OPT_RISE,             /* lbconfig: successes in a row to come back */
	OPT_INTERVAL,         /* lbconfig: probe interval */
	OPT_AGENT,            /* lbconfig: HAProxy agent address */
	OPT_PROBE_VIA,        /* lbconfig: where probes are sent */
	OPT_PROBE_URL,        /* lbconfig: the probe's path and query */
	OPT_LISTEN,           /* lbconfig: the load balancer's front address */
	OPT_DRAINED,          /* wait: until every prober saw the node out */
	OPT_SERVING,          /* wait: until every prober saw it in again */
	OPT_WINDOW,           /* wait, rollout: probers seen this recently count */
	OPT_NO_PROBERS_DELAY, /* wait, rollout: how long to wait when nobody probes */
	OPT_REQUIRE_PROBERS,  /* wait, rollout: fail when nobody probes */
	OPT_NODES,            /* rollout: which nodes, in order */
	OPT_EXEC,             /* rollout: the command run on each node */
	OPT_WARMUP,           /* rollout: a path to GET before online (repeatable) */
	OPT_BATCH,            /* rollout: nodes at a time */
	OPT_DRAIN_TIMEOUT,    /* rollout: how long to wait for the drain */
	OPT_READY_TIMEOUT,    /* rollout: how long warm-up and serving may take */
	OPT_DRY_RUN,          /* rollout: print the plan, change nothing */
	OPT_LB,               /* lbconfig: the load balancer's name */
	OPT_DRAIN_GRACE,      /* wait, rollout: in-flight fallback time */
	OPT_KIND,             /* lb add: haproxy|varnish|nginx|other */
	OPT_RUNTIME,          /* lb add: runtime API address */
	OPT_BACKEND,          /* lb add: the HAProxy backend */
	/* a deploy's verdict (judge.h): rollout and verify */
	OPT_CANARY,            /* rollout: nodes deployed first and baked */
	OPT_BAKE,              /* rollout: how long the canary is judged */
	OPT_VERIFY,            /* rollout: how long each later batch is judged */
	OPT_MAX_ERROR_RATIO,   /* tolerated error ratio above the peers' */
	OPT_MAX_LATENCY_RATIO, /* tolerated mean response time over the peers' */
	OPT_MIN_REQUESTS,      /* responses before a pass */
	OPT_ON_INCONCLUSIVE,   /* rollout: halt|continue */
	OPT_ROLLBACK,          /* rollout: the command that undoes --exec */
	OPT_ROLLBACK_ALL,      /* rollout: also roll back the nodes already done */
	OPT_AGAINST,           /* verify: the peers */
	OPT_FOR,               /* verify: how long */
	OPT_FORCE,             /* rollout: even while another one is registered */
	OPT_PROMETHEUS,        /* rollout, verify: Prometheus' URL */
	OPT_ANALYSIS_QUERY,    /* rollout, verify: PromQL with {node}: its error ratio */
	OPT_COUNT
};

/* The options a command accepts, for cli_only_options:
 * CLI_OPTIONS(OPT_ROLE, OPT_DESCRIPTION). */
#define CLI_OPTIONS(...) ((const enum cli_option[]){__VA_ARGS__, OPT_NONE})

#define CLI_WARMUP_MAX 16 /* --warmup paths kept; more is a usage error */

struct cli {
	struct client client;
	const char *cluster;            /* --cluster, default "default" */
	int is_cluster_given;           /* --cluster was on the command line */
	int is_json;                    /* --json: print the server's document */
	unsigned char given[OPT_COUNT]; /* given[OPT_x]: --x was on the command line */
	const char *reason, *ttl, *min_online, *address, *check, *path, *role, *description;
	const char *timeout, *fall, *rise, *interval, *agent, *probe_via, *probe_url, *listen;
	const char *window, *no_probers_delay;
	const char *nodes, *exec, *batch, *drain_timeout, *ready_timeout;
	const char *lb, *drain_grace, *kind, *runtime, *backend;
	const char *canary, *bake, *verify, *max_error_ratio, *max_latency_ratio, *min_requests;
	const char *on_inconclusive, *rollback, *against, *for_duration;
	const char *prometheus, *analysis_query;
	const char *warmup[CLI_WARMUP_MAX]; /* --warmup, in order */
	int n_warmup;                       /* how many were given (may exceed the array) */
};

/* A command: args are the words after the command name (for groups such
 * as `nodes`, args[0] is the subcommand). */
typedef int (*cli_handler)(struct cli *cli, int nargs, char **args, struct error *err);

int cmd_status(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_offline(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_online(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_drain(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_nodes(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_cluster(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_user(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_token(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_lbconfig(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_lb(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_wait(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_rollout(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_daemons(struct cli *cli, int nargs, char **args, struct error *err);
int cmd_verify(struct cli *cli, int nargs, char **args, struct error *err);

/* A subcommand of a group such as `nodes`: args[0] is its name. */
struct subcommand {
	const char *name;
	cli_handler handler;
};

/* Runs the subcommand named by args[0] from subs (n entries) with
 * args[1..]; group names the group in messages. A missing or unknown
 * subcommand is CLI_USAGE. */
int cli_dispatch(struct cli *cli, const char *group, const struct subcommand *subs, size_t n,
                 int nargs, char **args, struct error *err);

/* Calls the server (client_call) and takes ownership of path and body
 * (body NULL for none). */
int cli_call(struct cli *cli, const char *method, char *path, json_t *body,
             struct client_reply *reply, struct error *err);

/* A "GROUP list" command: takes no option and no argument (command names
 * it in messages), GETs path (taken, like cli_call) and prints the answer
 * with cli_print. */
int cli_list(struct cli *cli, int nargs, const char *command, char *path,
             void (*print_table)(const json_t *answer), struct error *err);

/* Prints reply on stdout as the server's JSON when --json was given, else
 * with print_table. Returns CLI_OK. */
int cli_print(const struct cli *cli, const struct client_reply *reply,
              void (*print_table)(const json_t *answer));

/* Prints reply on stdout as the server's JSON when --json was given, else
 * the one-line message fmt (a newline is added). Returns CLI_OK. */
int cli_print_done(const struct cli *cli, const struct client_reply *reply, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Returns 0 when the command options given are all in allowed (a list
 * ended by OPT_NONE, CLI_OPTIONS; NULL: none), else CLI_USAGE with err
 * naming the first option that does not apply to command (e.g. "nodes
 * list"). */
int cli_only_options(const struct cli *cli, const enum cli_option *allowed, const char *command,
                     struct error *err);

/* Fills err with the sentence fmt and returns CLI_USAGE. */
int cli_usage_error(struct error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns 0 when nargs is within [min, max] (max < 0: no limit), else
 * CLI_USAGE with err saying "usage: clustermgmt USAGE". */
int cli_check_args(int nargs, int min, int max, const char *usage, struct error *err);

/* Reads one line from stdin (without its newline) into buf. Returns 0,
 * or CLI_USAGE with err saying what was expected (what = "password"). */
int cli_read_stdin_line(char *buf, size_t size, const char *what, struct error *err);

/* Reads a password line from stdin into buf (at least PASSWORD_MAX + 2
 * bytes) and refuses one over PASSWORD_MAX bytes (core/limits.h), as
 * the server would: CLI_USAGE with err. */
int cli_read_password(char *buf, size_t size, const char *what, struct error *err);

#endif
