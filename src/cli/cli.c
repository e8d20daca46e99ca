/*
 * cli.c - `clustermgmt COMMAND ...`: global options, credentials, help,
 * dispatch to the command files and the exit code.
 *
 * The command line is parsed in one pass with getopt_long over a table
 * holding every option of every command, so global options may come
 * before or after the command and option values are never mistaken for
 * command words. Each command then rejects the options that do not apply
 * to it (cli_only_options). This file is the only place that prints an
 * error: handlers return an enum cli_exit and fill a struct error.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "core/limits.h"
#include "cli_internal.h"
#include "output.h"
#include "util/xalloc.h"

#define DEFAULT_SERVER "http://127.0.0.1:8080"

static const char main_help[] =
    "usage: clustermgmt [OPTIONS] COMMAND [ARGS] [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  serve                       run the daemon (clustermgmt serve --help)\n"
    "  status                      show the cluster's nodes and their status\n"
    "  offline NAME...             take nodes out of service\n"
    "  online NAME...              put nodes back in service\n"
    "  drain NAME...               take no new sessions on nodes\n"
    "  nodes list|set|add|rm       manage the cluster's nodes\n"
    "  cluster list|add|rm         manage clusters\n"
    "  user list|add|rm            manage users\n"
    "  token create|list|revoke    manage API tokens\n"
    "  lbconfig varnish|haproxy|nginx  print a load balancer configuration\n"
    "  lb list|add|rm              manage the cluster's named load balancers\n"
    "  wait NAME... --drained|--serving  wait until the load balancers saw it\n"
    "  rollout --exec COMMAND      rolling deploy: each node out, COMMAND, back in\n"
    "  verify NODE...              judge deployed nodes against their peers\n"
    "  daemons                     the daemons sharing the store, their lag\n"
    "  store copy --from A --to B  copy a whole store (SQLite <-> PostgreSQL)\n"
    "\n"
    "Global options (before or after the command):\n"
    "  --server URL      the daemon; default $CLUSTERMGMT_URL, else " DEFAULT_SERVER "\n"
    "  --cluster NAME    the cluster to work on (default \"default\")\n"
    "  --user NAME       log in as NAME, with the password from --password-stdin\n"
    "                    or $CLUSTERMGMT_PASSWORD\n"
    "  --password-stdin  read the password from the first line of stdin\n"
    "  --cacert FILE     trust the CA certificate(s) in FILE (PEM) for https\n"
    "  --insecure        do not verify the server's TLS certificate (testing only)\n"
    "  --json            print the server's JSON answer instead of a table\n"
    "  --help            show help; `clustermgmt COMMAND --help` for a command\n"
    "  --version         show the version (also after any command)\n"
    "\n"
    "Credentials, the first that is set: --user; $CLUSTERMGMT_TOKEN (bearer\n"
    "token); $CLUSTERMGMT_USER with $CLUSTERMGMT_PASSWORD; the server's host in\n"
    "~/.netrc (or the file named by $NETRC).\n"
    "\n"
    "Exit codes: 0 done, 1 refused by the server, 2 usage error, 3 server\n"
    "unreachable, 4 timed out waiting.\n";

static const char status_help[] =
    "usage: clustermgmt status [--cluster NAME] [--json]\n"
    "\n"
    "Shows every node of the cluster: NAME, STATUS (online, offline, drain),\n"
    "REASON, SINCE (when the status last changed, e.g. \"5m ago\") and EXPIRES\n"
    "(when a status with a TTL returns to online, e.g. \"in 9m\"; \"-\" for\n"
    "never), and CHECK when a node has an application check (ok, pending, or\n"
    "down (why): probes then answer \"node is down\"). --json prints the\n"
    "server's document with exact RFC 3339 times.\n";

#define SET_STATUS_HELP(verb, what)                                                                \
	"usage: clustermgmt " verb " NAME... [--reason R] [--ttl DURATION] [--min-online K]\n"     \
	"\n" what "\n"                                                                             \
	"\n"                                                                                       \
	"  --reason R        why (shown in status and the audit log; up to 256 characters)\n"      \
	"  --ttl DURATION    return to online by itself after DURATION: 90, 90s, 10m, 2h,\n"       \
	"                    1d (not with online)\n"                                               \
	"  --min-online K    refuse the change if fewer than K nodes would stay online\n"          \
	"\n"                                                                                       \
	"The change is atomic: if any NAME is unknown, nothing changes. Prints the\n"              \
	"resulting status table (or the server's JSON with --json).\n"

static const char offline_help[] =
    SET_STATUS_HELP("offline", "Takes nodes out of service: the probe answers 503.");
static const char online_help[] = SET_STATUS_HELP("online", "Puts nodes back in service.");
static const char drain_help[] =
    SET_STATUS_HELP("drain", "Lets nodes finish existing sessions but take no new ones (for plain\n"
                             "HTTP probes the same as offline).");

static const char nodes_help[] =
    "usage: clustermgmt nodes list\n"
    "       clustermgmt nodes set NAME...\n"
    "       clustermgmt nodes add NAME [--address HOST:PORT] [--check URL]\n"
    "       clustermgmt nodes rm NAME\n"
    "\n"
    "  list   the cluster's nodes: NAME, ADDRESS, CHECK, STATUS\n"
    "  set    replace the node list (new nodes start online, missing ones are\n"
    "         forgotten, duplicates collapse)\n"
    "  add    add a node, or update its address and check (\"\" clears one)\n"
    "  rm     remove a node\n";

static const char cluster_help[] = "usage: clustermgmt cluster list\n"
                                   "       clustermgmt cluster add NAME --path /PATH\n"
                                   "       clustermgmt cluster rm NAME\n"
                                   "\n"
                                   "  list   every cluster: NAME, PATH, VERSION, NODES, ONLINE\n"
                                   "  add    add a cluster whose probe is served at /PATH\n"
                                   "  rm     remove a cluster and its nodes\n";

static const char user_help[] =
    "usage: clustermgmt user list\n"
    "       clustermgmt user add NAME --role viewer|operator|admin --password-stdin\n"
    "       clustermgmt user rm NAME\n"
    "\n"
    "user add reads the new user's password from stdin. If you log in with --user\n"
    "and $CLUSTERMGMT_PASSWORD is not set, stdin holds two lines: your password,\n"
    "then the new user's.\n";

static const char token_help[] =
    "usage: clustermgmt token create --role viewer|operator|admin [--description D]\n"
    "       clustermgmt token list\n"
    "       clustermgmt token revoke ID\n"
    "\n"
    "token create prints the new token on stdout; it is shown only once. Use it\n"
    "as CLUSTERMGMT_TOKEN=TOKEN, or as `Authorization: Bearer TOKEN`.\n";

static const char lbconfig_help[] =
    "usage: clustermgmt lbconfig varnish|haproxy|nginx [OPTIONS]\n"
    "\n"
    "Prints a complete configuration that balances over the cluster's nodes\n"
    "(each needs an address: nodes add NAME --address HOST:PORT) and asks\n"
    "clustermgmt which of them are in service. See docs/LOADBALANCERS.md.\n"
    "\n"
    "  --lb NAME         this load balancer's name: every probe and agent-check\n"
    "                    says it (lb=NAME), so clustermgmt knows who probed\n"
    "                    whatever address the probe comes from; give each\n"
    "                    load balancer its own (see clustermgmt lb --help)\n"
    "  --interval D      probe interval (default 1s; 500ms, 2s, ...)\n"
    "  --timeout D       probe timeout (default 500ms)\n"
    "  --fall K          failed probes in a row that take a node out (default 2)\n"
    "  --rise K          good probes in a row that bring it back (default 2);\n"
    "                    Varnish: .threshold = K, .window = rise + fall - 1\n"
    "  --probe-via node  probes go to each node's address, whose front server\n"
    "                    passes the probe path to clustermgmt (default; the only\n"
    "                    way for Varnish)\n"
    "  --probe-via daemon|HOST:PORT\n"
    "                    haproxy: checks go to the daemon directly (daemon: the\n"
    "                    host and port of --server)\n"
    "  --probe-url URL   the probe's path (default {mount}?node={node}; also\n"
    "                    {cluster})\n"
    "  --agent HOST:PORT|PORT|none\n"
    "                    haproxy: where `serve --agent-listen` answers the\n"
    "                    agent-check (default: the --server host, port 8081)\n"
    "  --listen ADDR     the load balancer's own address: PORT, *:PORT or\n"
    "                    HOST:PORT (default 80)\n"
    "\n"
    "Exit 1 when the cluster has no nodes or a node has no address.\n";

static const char lb_help[] =
    "usage: clustermgmt lb list\n"
    "       clustermgmt lb add NAME --kind haproxy|varnish|nginx|other [--runtime ADDR]\n"
    "                          [--backend B]\n"
    "       clustermgmt lb rm NAME\n"
    "\n"
    "The cluster's named load balancers (admin to change). wait and rollout then\n"
    "require evidence from each of them, by the probes that carry its name\n"
    "(lbconfig --lb NAME), and from nobody else. --runtime gives access to the load\n"
    "balancer's own view, used for its word on the node and the requests still in\n"
    "flight: HAProxy's stats socket (a path, or HOST:PORT; `stats socket ... level\n"
    "admin`), Varnish's working directory (varnishd -n, on this host). --backend\n"
    "names HAProxy's backend when it is not lbconfig's be_CLUSTER. See\n"
    "docs/LOADBALANCERS.md.\n";

static const char wait_help[] =
    "usage: clustermgmt wait NAME... --drained|--serving [--fall K] [--timeout D]\n"
    "                        [--window D] [--no-probers-delay D | --require-probers]\n"
    "                        [--drain-grace D]\n"
    "\n"
    "Waits until every load balancer has acted on the nodes' current state and, for\n"
    "--drained, the requests in flight to them have finished. Who: the cluster's\n"
    "named load balancers (clustermgmt lb list), each one; with none named, every\n"
    "prober seen within the window, each on its own. Evidence: an agent-check\n"
    "answered maint/drain, or K failing answers in a row to its HTTP probes (K\n"
    "serving answers for --serving), read by the load balancer; or its runtime\n"
    "socket's word. Then in flight: the runtime's count where given, else the grace.\n"
    "It never succeeds from a partial view (probers the daemon could not track).\n"
    "\n"
    "  --fall K               answers in a row that count (default 3; use the\n"
    "                         load balancers' fall/threshold)\n"
    "  --timeout D            give up after D (default 60s): exit 4, naming the\n"
    "                         load balancers that have not acted, or what is in flight\n"
    "  --window D             probers seen within D count (default 30s)\n"
    "  --no-probers-delay D   when nothing probed a node within the window, say so\n"
    "                         and wait D instead (default 5s)\n"
    "  --require-probers      when nothing probed a node, fail (exit 1) instead\n"
    "  --drain-grace D        requests in flight without runtime access: wait D after\n"
    "                         the last load balancer acted (default 3s; 0 allowed)\n"
    "\n"
    "Durations: 500ms, 90, 90s, 10m, 2h. Prints one line per node as it is done, with\n"
    "the evidence per load balancer.\n";

static const char daemons_help[] =
    "usage: clustermgmt daemons [--json]\n"
    "\n"
    "Lists every daemon sharing the store (PostgreSQL; with SQLite, the one\n"
    "daemon): ID (host:listen address), the store VERSION it has applied, its\n"
    "LAG behind the store in versions and (seconds since the store's newest\n"
    "change, when it is behind), when it last beat (every 2 s), and STATE:\n"
    "stale when it has not beaten for the daemon's --stale-after time.\n";

static const char rollout_help[] =
    "usage: clustermgmt rollout [--nodes a,b,c|all] --exec 'COMMAND' [--warmup PATH]...\n"
    "                           [--batch N] [--min-online K] [--fall K] [--drain-timeout D]\n"
    "                           [--drain-grace D] [--ready-timeout D] [--ttl D] [--dry-run]\n"
    "                           [--canary N --bake D] [--verify D] [--max-error-ratio R]\n"
    "                           [--max-latency-ratio R] [--min-requests N]\n"
    "                           [--on-inconclusive halt|continue] [--rollback 'COMMAND']\n"
    "                           [--rollback-all] [--force]\n"
    "                           [--prometheus URL --analysis-query 'PROMQL']\n"
    "\n"
    "A rolling deploy. For each node (or batch of N nodes), in order: take it\n"
    "offline (reason \"rollout ID: COMMAND\", with a TTL as a safety net), wait until\n"
    "every load balancer stopped sending it requests and those in flight finished\n"
    "(as wait --drained), run COMMAND with\n"
    "/bin/sh -c, GET each warm-up path on http://ADDRESS/PATH until it answers 2xx\n"
    "or 3xx, put it online, wait until the load balancers send it traffic (as wait\n"
    "--serving), go on. In COMMAND, {node} and {address} are replaced by the node's\n"
    "name and address; it also gets CLUSTERMGMT_NODE, CLUSTERMGMT_ADDRESS,\n"
    "CLUSTERMGMT_CLUSTER and CLUSTERMGMT_ROLLOUT in its environment, stdin from\n"
    "/dev/null, and each line of its output is shown as \"NODE| line\".\n"
    "\n"
    "  --nodes a,b,c|all   the nodes, in this order (default all, by name); each\n"
    "                      must be online\n"
    "  --exec COMMAND      the deploy command; a non-zero exit is a failure\n"
    "  --warmup PATH       GET this path on each node before it goes online (may be\n"
    "                      given up to 16 times)\n"
    "  --batch N           nodes at a time (default 1); their commands run side by side\n"
    "  --min-online K      refuse to take a batch offline if fewer than K nodes would\n"
    "                      stay online\n"
    "  --fall K            answers in a row that count, as for wait (default 3)\n"
    "  --drain-timeout D   how long the load balancers may take to drain (default 60s)\n"
    "  --ready-timeout D   how long warm-up, and then the load balancers' return, may\n"
    "                      each take (default 60s)\n"
    "  --ttl D             the safety net on offline (default drain-timeout + 15m +\n"
    "                      ready-timeout): if the rollout dies, the node returns by itself\n"
    "  --window D, --no-probers-delay D, --require-probers, --drain-grace D\n"
    "                      as for wait\n"
    "  --dry-run           print the plan and change nothing\n"
    "  --force             start even while another rollout of the cluster is\n"
    "                      registered with the daemon (clustermgmt: GET\n"
    "                      /v1/clusters/C/rollouts shows it); only if it is dead;\n"
    "                      also start, unregistered, while the daemon's store is\n"
    "                      unreachable\n"
    "  --json              progress on stderr, and the summary as JSON on stdout\n"
    "\n"
    "Judging what it deploys (needs load balancers registered with runtime access,\n"
    "HAProxy or Varnish: clustermgmt lb add ... --runtime):\n"
    "  --canary N          deploy the first N nodes, then judge them for --bake\n"
    "  --bake D            how long the canary is judged under real traffic (default\n"
    "                      60s with --canary)\n"
    "  --verify D          judge every later batch for D after it is back (default:\n"
    "                      not judged)\n"
    "  --max-error-ratio R error ratio tolerated above the peers' (or, with no peer\n"
    "                      left, at all); 0.01 = 1% (default 0.01)\n"
    "  --max-latency-ratio R  mean response time tolerated, times the peers' and\n"
    "                      at least 50 ms more (default 1.5)\n"
    "  --min-requests N    responses a node (and its peers) must serve for a pass\n"
    "                      (default 100); fewer is inconclusive\n"
    "  --on-inconclusive halt|continue  too little traffic: stop (default) or go on\n"
    "  --rollback COMMAND  run on a failing node after it is taken out ({node},\n"
    "                      {address} as for --exec); it is judged again and put back\n"
    "                      only if it passes\n"
    "  --rollback-all      also roll back the nodes already deployed\n"
    "  --prometheus URL    also judge by an application metric from Prometheus...\n"
    "  --analysis-query PROMQL  ...this instant query, {node} replaced by each\n"
    "                      node's name, giving its error ratio (one series): it\n"
    "                      fails when above the peers' mean by --max-error-ratio\n"
    "                      for 5 evaluations in a row (the way for nginx fleets)\n"
    "The verdict compares each judged node with the nodes not yet deployed, behind\n"
    "the same load balancers over the same seconds: a sequential test on the\n"
    "error counts with at most 1 false alarm in 1000 clean deploys however long\n"
    "it watches, and a latency rule. A fail takes the node out at once.\n"
    "\n"
    "Any failure stops the rollout: the failing node (its batch) is set offline\n"
    "without TTL, with a reason naming the failure; later nodes are not touched.\n"
    "SIGINT or SIGTERM stop it after the current step the same way (a second one\n"
    "ends it at once; then the TTL returns the node). Prints one line per step and a\n"
    "table of per-node timings. Exit 0 done, 1 refused, failed or interrupted, 2 usage,\n"
    "3 server unreachable, 4 a drain, warm-up or return timed out, 5 a verdict\n"
    "failed, 6 a verdict was inconclusive (with --on-inconclusive halt).\n";

static const char verify_help[] =
    "usage: clustermgmt verify NODE... [--against PEER,...] [--for D]\n"
    "                          [--max-error-ratio R] [--max-latency-ratio R]\n"
    "                          [--min-requests N]\n"
    "                          [--prometheus URL --analysis-query 'PROMQL']\n"
    "\n"
    "The verdict of rollout --canary on its own, for a deploy done by another\n"
    "tool: watches NODE... for D (default 60s) through every named load balancer\n"
    "with runtime access (HAProxy, Varnish) and compares each with its peers\n"
    "(--against; default every other node of the cluster that is online) over\n"
    "the same seconds. Changes nothing. Prints the evidence per load balancer:\n"
    "counts, ratios against the peers, the test's statistic, when it decided.\n"
    "Options as for rollout. Exit 0 pass, 5 fail (decided as soon as it is\n"
    "clear), 6 inconclusive (too little traffic), 1 refused (no load balancer\n"
    "gives counters, e.g. nginx only), 2 usage, 3 server unreachable.\n";

/* The commands. */
static const struct command {
	const char *name;
	cli_handler handler;
	const char *help;
} commands[] = {
    {"status", cmd_status, status_help},
    {"offline", cmd_offline, offline_help},
    {"online", cmd_online, online_help},
    {"drain", cmd_drain, drain_help},
    {"nodes", cmd_nodes, nodes_help},
    {"cluster", cmd_cluster, cluster_help},
    {"user", cmd_user, user_help},
    {"token", cmd_token, token_help},
    {"lbconfig", cmd_lbconfig, lbconfig_help},
    {"lb", cmd_lb, lb_help},
    {"wait", cmd_wait, wait_help},
    {"rollout", cmd_rollout, rollout_help},
    {"daemons", cmd_daemons, daemons_help},
    {"verify", cmd_verify, verify_help},
};

/* Global options that are not in enum cli_option: marked by OPT_GLOBAL,
 * far above OPT_COUNT, never stored in struct cli.given. */
enum {
	OPT_GLOBAL = 1 << 30,
	OPT_SERVER = OPT_GLOBAL | 1,
	OPT_CLUSTER = OPT_GLOBAL | 2,
	OPT_USER = OPT_GLOBAL | 3,
	OPT_CACERT = OPT_GLOBAL | 4,
	OPT_INSECURE = OPT_GLOBAL | 5,
	OPT_JSON = OPT_GLOBAL | 6,
	OPT_HELP = OPT_GLOBAL | 7,
	OPT_VERSION = OPT_GLOBAL | 8,
};

static const struct option options[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"cluster", required_argument, NULL, OPT_CLUSTER},
    {"user", required_argument, NULL, OPT_USER},
    {"password-stdin", no_argument, NULL, OPT_PASSWORD_STDIN},
    {"cacert", required_argument, NULL, OPT_CACERT},
    {"insecure", no_argument, NULL, OPT_INSECURE},
    {"json", no_argument, NULL, OPT_JSON},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {"reason", required_argument, NULL, OPT_REASON},
    {"ttl", required_argument, NULL, OPT_TTL},
    {"min-online", required_argument, NULL, OPT_MIN_ONLINE},
    {"address", required_argument, NULL, OPT_ADDRESS},
    {"check", required_argument, NULL, OPT_CHECK},
    {"path", required_argument, NULL, OPT_PATH},
    {"role", required_argument, NULL, OPT_ROLE},
    {"description", required_argument, NULL, OPT_DESCRIPTION},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"fall", required_argument, NULL, OPT_FALL},
    {"rise", required_argument, NULL, OPT_RISE},
    {"interval", required_argument, NULL, OPT_INTERVAL},
    {"agent", required_argument, NULL, OPT_AGENT},
    {"probe-via", required_argument, NULL, OPT_PROBE_VIA},
    {"probe-url", required_argument, NULL, OPT_PROBE_URL},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"drained", no_argument, NULL, OPT_DRAINED},
    {"serving", no_argument, NULL, OPT_SERVING},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"no-probers-delay", required_argument, NULL, OPT_NO_PROBERS_DELAY},
    {"require-probers", no_argument, NULL, OPT_REQUIRE_PROBERS},
    {"nodes", required_argument, NULL, OPT_NODES},
    {"exec", required_argument, NULL, OPT_EXEC},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN_TIMEOUT},
    {"ready-timeout", required_argument, NULL, OPT_READY_TIMEOUT},
    {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"lb", required_argument, NULL, OPT_LB},
    {"drain-grace", required_argument, NULL, OPT_DRAIN_GRACE},
    {"kind", required_argument, NULL, OPT_KIND},
    {"runtime", required_argument, NULL, OPT_RUNTIME},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"canary", required_argument, NULL, OPT_CANARY},
    {"bake", required_argument, NULL, OPT_BAKE},
    {"verify", required_argument, NULL, OPT_VERIFY},
    {"max-error-ratio", required_argument, NULL, OPT_MAX_ERROR_RATIO},
    {"max-latency-ratio", required_argument, NULL, OPT_MAX_LATENCY_RATIO},
    {"min-requests", required_argument, NULL, OPT_MIN_REQUESTS},
    {"on-inconclusive", required_argument, NULL, OPT_ON_INCONCLUSIVE},
    {"rollback", required_argument, NULL, OPT_ROLLBACK},
    {"rollback-all", no_argument, NULL, OPT_ROLLBACK_ALL},
    {"against", required_argument, NULL, OPT_AGAINST},
    {"for", required_argument, NULL, OPT_FOR},
    {"force", no_argument, NULL, OPT_FORCE},
    {"prometheus", required_argument, NULL, OPT_PROMETHEUS},
    {"analysis-query", required_argument, NULL, OPT_ANALYSIS_QUERY},
    {NULL, 0, NULL, 0},
};

/* The command line as parsed: struct cli plus what only cli.c needs. */
struct parsed {
	struct cli cli;
	const char *server;
	const char *user;
	int wants_help;
	int wants_version;
};

static const char *
option_name(int val)
{
	const struct option *o;

	for (o = options; o->name != NULL; o++)
		if (o->val == val)
			return o->name;
	return "?";
}

/* Where the value of each command option that takes one is kept. */
#define FIELD(opt, name)                                                                           \
	{                                                                                          \
		opt, offsetof(struct cli, name)                                                    \
	}
static const struct {
	enum cli_option opt;
	size_t offset; /* of a const char * in struct cli */
} value_fields[] = {
    FIELD(OPT_REASON, reason),
    FIELD(OPT_TTL, ttl),
    FIELD(OPT_MIN_ONLINE, min_online),
    FIELD(OPT_ADDRESS, address),
    FIELD(OPT_CHECK, check),
    FIELD(OPT_PATH, path),
    FIELD(OPT_ROLE, role),
    FIELD(OPT_DESCRIPTION, description),
    FIELD(OPT_TIMEOUT, timeout),
    FIELD(OPT_FALL, fall),
    FIELD(OPT_RISE, rise),
    FIELD(OPT_INTERVAL, interval),
    FIELD(OPT_AGENT, agent),
    FIELD(OPT_PROBE_VIA, probe_via),
    FIELD(OPT_PROBE_URL, probe_url),
    FIELD(OPT_LISTEN, listen),
    FIELD(OPT_WINDOW, window),
    FIELD(OPT_NO_PROBERS_DELAY, no_probers_delay),
    FIELD(OPT_NODES, nodes),
    FIELD(OPT_EXEC, exec),
    FIELD(OPT_BATCH, batch),
    FIELD(OPT_DRAIN_TIMEOUT, drain_timeout),
    FIELD(OPT_READY_TIMEOUT, ready_timeout),
    FIELD(OPT_LB, lb),
    FIELD(OPT_DRAIN_GRACE, drain_grace),
    FIELD(OPT_KIND, kind),
    FIELD(OPT_RUNTIME, runtime),
    FIELD(OPT_BACKEND, backend),
    FIELD(OPT_CANARY, canary),
    FIELD(OPT_BAKE, bake),
    FIELD(OPT_VERIFY, verify),
    FIELD(OPT_MAX_ERROR_RATIO, max_error_ratio),
    FIELD(OPT_MAX_LATENCY_RATIO, max_latency_ratio),
    FIELD(OPT_MIN_REQUESTS, min_requests),
    FIELD(OPT_ON_INCONCLUSIVE, on_inconclusive),
    FIELD(OPT_ROLLBACK, rollback),
    FIELD(OPT_AGAINST, against),
    FIELD(OPT_FOR, for_duration),
    FIELD(OPT_PROMETHEUS, prometheus),
    FIELD(OPT_ANALYSIS_QUERY, analysis_query),
};
#undef FIELD

/* The global options, and the command options that are flags or kept in
 * a list (--warmup); returns 0, or -1 for any other option. */
static int
store_special_option(struct parsed *p, int opt, const char *value)
{
	struct cli *cli = &p->cli;

	switch (opt) {
	case OPT_SERVER:
		p->server = value;
		return 0;
	case OPT_CLUSTER:
		cli->cluster = value;
		cli->is_cluster_given = 1;
		return 0;
	case OPT_USER:
		p->user = value;
		return 0;
	case OPT_CACERT:
		cli->client.cacert = value;
		return 0;
	case OPT_INSECURE:
		cli->client.is_insecure = 1;
		return 0;
	case OPT_JSON:
		cli->is_json = 1;
		return 0;
	case OPT_HELP:
		p->wants_help = 1;
		return 0;
	case OPT_VERSION:
		p->wants_version = 1;
		return 0;
	case OPT_WARMUP:
		if (cli->n_warmup < CLI_WARMUP_MAX)
			cli->warmup[cli->n_warmup] = value;
		cli->n_warmup++;
		return 0;
	case OPT_PASSWORD_STDIN:
	case OPT_DRAINED:
	case OPT_SERVING:
	case OPT_REQUIRE_PROBERS:
	case OPT_DRY_RUN:
	case OPT_ROLLBACK_ALL:
	case OPT_FORCE:
		return 0; /* a flag: given[] says it all */
	default:
		return -1;
	}
}

static void
store_option(struct parsed *p, int opt, const char *value)
{
	struct cli *cli = &p->cli;
	size_t i;

	if (opt > OPT_NONE && opt < OPT_COUNT)
		cli->given[opt] = 1;
	if (store_special_option(p, opt, value) == 0)
		return;
	for (i = 0; i < sizeof(value_fields) / sizeof(value_fields[0]); i++)
		if (value_fields[i].opt == (enum cli_option)opt) {
			*(const char **)((char *)cli + value_fields[i].offset) = value;
			return;
		}
}

/* Parses every option; on return argv[*first_word..argc) are the command
 * and its words. */
static int
parse_options(int argc, char **argv, struct parsed *p, int *first_word, struct error *err)
{
	int opt;

	optind = 0; /* GNU: full reset, permute non-options to the end */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
		if (opt == 'h')
			opt = OPT_HELP;
		if (opt == ':') {
			return cli_usage_error(err, "option '--%s' needs a value",
			                       option_name(optopt));
		}
		if (opt == '?') {
			if (optopt != 0)
				return cli_usage_error(
				    err, "unknown option '-%c'; see clustermgmt --help", optopt);
			return cli_usage_error(err, "unknown option '%s'; see clustermgmt --help",
			                       argv[optind - 1]);
		}
		store_option(p, opt, optarg);
	}
	*first_word = optind;
	return 0;
}

static int
is_http_url(const char *s)
{
	return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

/* `user add` reads the new user's password from stdin, so stdin holds the
 * caller's password only when it has no other source. */
static int
login_password_from_stdin(const struct parsed *p, int is_user_add)
{
	if (!p->cli.given[OPT_PASSWORD_STDIN])
		return 0;
	if (!is_user_add)
		return 1;
	return p->user != NULL && getenv("CLUSTERMGMT_PASSWORD") == NULL;
}

static const char *
nonempty(const char *s)
{
	return s != NULL && *s != '\0' ? s : NULL;
}

/* Picks the credentials (see main_help); password is the caller's buffer
 * for a password read from stdin. */
static int
resolve_credentials(struct parsed *p, int is_user_add, char *password, size_t size,
                    struct error *err)
{
	struct client *c = &p->cli.client;
	int from_stdin = login_password_from_stdin(p, is_user_add);
	const char *token = nonempty(getenv("CLUSTERMGMT_TOKEN"));

	c->user = p->user;
	if (c->user == NULL && (from_stdin || token == NULL))
		c->user = nonempty(getenv("CLUSTERMGMT_USER"));
	if (c->user == NULL) {
		if (from_stdin)
			return error_set(err, 0, "--password-stdin needs --user NAME");
		c->token = token; /* or NULL: ~/.netrc */
		return 0;
	}
	if (from_stdin) {
		if (cli_read_password(password, size, "password", err) != 0)
			return -1;
		c->password = password;
		return 0;
	}
	if ((c->password = getenv("CLUSTERMGMT_PASSWORD")) == NULL)
		return error_set(err, 0,
		                 "no password for user '%s': give --password-stdin or set "
		                 "CLUSTERMGMT_PASSWORD",
		                 c->user);
	if (strlen(c->password) > PASSWORD_MAX)
		return error_set(err, 0, "CLUSTERMGMT_PASSWORD is longer than %d bytes",
		                 PASSWORD_MAX);
	return 0;
}

static const struct command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Everything between parsing and the handler: the command, help, the
 * server URL and the credentials. */
static int
prepare(struct parsed *p, int nwords, char **words, const struct command **cmd, char *password,
        size_t size, struct error *err)
{
	int is_user_add;

	if (nwords == 0)
		return cli_usage_error(err, "missing command; see clustermgmt --help");
	if (strcmp(words[0], "serve") == 0)
		return cli_usage_error(err,
		                       "serve takes its options after it: clustermgmt serve ...");
	if ((*cmd = find_command(words[0])) == NULL)
		return cli_usage_error(err, "unknown command '%s'; see clustermgmt --help",
		                       words[0]);
	if (p->wants_help)
		return CLI_OK;
	if (p->server == NULL && (p->server = getenv("CLUSTERMGMT_URL")) == NULL)
		p->server = DEFAULT_SERVER;
	if (!is_http_url(p->server))
		return cli_usage_error(err, "--server must be an http:// or https:// URL, not '%s'",
		                       p->server);
	p->cli.client.base_url = p->server;
	is_user_add = strcmp(words[0], "user") == 0 && nwords > 1 && strcmp(words[1], "add") == 0;
	if (resolve_credentials(p, is_user_add, password, size, err) < 0)
		return CLI_USAGE;
	return CLI_OK;
}

int
cli_main(int argc, char **argv)
{
	struct parsed p;
	struct error err;
	const struct command *cmd = NULL;
	char password[PASSWORD_MAX + 2];
	int first_word = argc, rc;

	json_set_alloc_funcs(xmalloc, free); /* jansson out of memory aborts too (xalloc.h) */
	memset(&p, 0, sizeof(p));
	error_clear(&err);
	p.cli.cluster = "default";
	p.cli.client.timeout_s = 30;
	rc = parse_options(argc, argv, &p, &first_word, &err);
	if (rc == CLI_OK && p.wants_version && !p.wants_help) {
		printf("clustermgmt %s\n", CM_VERSION);
		return CLI_OK;
	}
	if (rc == CLI_OK && p.wants_help && first_word == argc) {
		fputs(main_help, stdout);
		return CLI_OK;
	}
	if (rc == CLI_OK)
		rc = prepare(&p, argc - first_word, argv + first_word, &cmd, password,
		             sizeof(password), &err);
	if (rc == CLI_OK && p.wants_help) {
		fputs(cmd->help, stdout);
		return CLI_OK;
	}
	if (rc == CLI_OK && (rc = client_global_init(&err)) == 0) {
		rc = cmd->handler(&p.cli, argc - first_word - 1, argv + first_word + 1, &err);
		client_global_cleanup();
	}
	explicit_bzero(password, sizeof(password));
	if (rc != CLI_OK && err.what[0] != '\0')
		fprintf(stderr, "clustermgmt: %s\n", err.what);
	return rc;
}

int
cli_dispatch(struct cli *cli, const char *group, const struct subcommand *subs, size_t n, int nargs,
             char **args, struct error *err)
{
	size_t i;

	if (nargs == 0)
		return cli_usage_error(err, "'%s' needs a subcommand; see clustermgmt %s --help",
		                       group, group);
	for (i = 0; i < n; i++)
		if (strcmp(subs[i].name, args[0]) == 0)
			return subs[i].handler(cli, nargs - 1, args + 1, err);
	return cli_usage_error(err, "unknown %s command '%s'; see clustermgmt %s --help", group,
	                       args[0], group);
}

int
cli_call(struct cli *cli, const char *method, char *path, json_t *body, struct client_reply *reply,
         struct error *err)
{
	int rc = client_call(&cli->client, method, path, body, reply, err);

	free(path);
	json_decref(body);
	return rc;
}

int
cli_print(const struct cli *cli, const struct client_reply *reply,
          void (*print_table)(const json_t *answer))
{
	if (cli->is_json)
		output_json(reply->body, stdout);
	else
		print_table(reply->json);
	return CLI_OK;
}

int
cli_list(struct cli *cli, int nargs, const char *command, char *path,
         void (*print_table)(const json_t *answer), struct error *err)
{
	struct client_reply reply;
	int rc;

	if ((rc = cli_only_options(cli, NULL, command, err)) != 0 ||
	    (rc = cli_check_args(nargs, 0, 0, command, err)) != 0) {
		free(path);
		return rc;
	}
	if ((rc = cli_call(cli, "GET", path, NULL, &reply, err)) != CLI_OK)
		return rc;
	cli_print(cli, &reply, print_table);
	client_reply_free(&reply);
	return CLI_OK;
}

int
cli_print_done(const struct cli *cli, const struct client_reply *reply, const char *fmt, ...)
{
	va_list ap;

	if (cli->is_json) {
		output_json(reply->body, stdout);
		return CLI_OK;
	}
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	return CLI_OK;
}

int
cli_only_options(const struct cli *cli, const enum cli_option *allowed, const char *command,
                 struct error *err)
{
	int is_allowed[OPT_COUNT] = {0}, opt;

	for (; allowed != NULL && *allowed != OPT_NONE; allowed++)
		is_allowed[*allowed] = 1;
	is_allowed[OPT_PASSWORD_STDIN] = 1; /* global too */
	for (opt = OPT_NONE + 1; opt < OPT_COUNT; opt++)
		if (cli->given[opt] && !is_allowed[opt])
			return cli_usage_error(err, "option '--%s' does not apply to '%s'",
			                       option_name(opt), command);
	return 0;
}

int
cli_usage_error(struct error *err, const char *fmt, ...)
{
	va_list ap;

	err->status = 0;
	err->entry[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->what, sizeof(err->what), fmt, ap);
	va_end(ap);
	return CLI_USAGE;
}

int
cli_check_args(int nargs, int min, int max, const char *usage, struct error *err)
{
	if (nargs >= min && (max < 0 || nargs <= max))
		return 0;
	return cli_usage_error(err, "usage: clustermgmt %s", usage);
}

int
cli_read_password(char *buf, size_t size, const char *what, struct error *err)
{
	int rc = cli_read_stdin_line(buf, size, what, err);

	if (rc == 0 && strlen(buf) > PASSWORD_MAX)
		rc = cli_usage_error(err, "the %s on stdin is longer than %d bytes", what,
		                     PASSWORD_MAX);
	return rc;
}

int
cli_read_stdin_line(char *buf, size_t size, const char *what, struct error *err)
{
	size_t len;

	if (fgets(buf, (int)size, stdin) == NULL)
		return cli_usage_error(err, "expected a %s on stdin", what);
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (!feof(stdin))
		return cli_usage_error(err, "the %s on stdin is too long", what);
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0)
		return cli_usage_error(err, "expected a %s on stdin, got an empty line", what);
	return 0;
}
