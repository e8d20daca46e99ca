/*
 * cmd_wait.c - `wait NAME... --drained|--serving`: block until every load
 * balancer that probes the nodes has seen their current state.
 *
 * The daemon remembers, per node, each client that probed it and how many
 * answers of the same kind (serving or not) in a row it got since the
 * node's last status change ("probes" in GET /v1/clusters/{c}/nodes/{n}).
 * This command polls that document every POLL_MS, asking the server for
 * the clients seen within --window (so the recency is judged by the
 * server's clock, not ours), until every such client has had --fall
 * answers of the wanted kind, or --timeout runs out.
 *
 * Two special cases, documented in the help text:
 *   - nobody probed a node within the window: either wait a fixed
 *     --no-probers-delay (a load balancer we cannot see may still be
 *     reacting), or fail with --require-probers;
 *   - HAProxy stops health checks on a server in MAINT, so an HTTP prober
 *     stops counting once the agent-check at the same address was
 *     answered "maint" --fall times: that HAProxy has taken it out.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "command.h"
#include "util/timefmt.h"

#define POLL_MS 250
#define DEFAULT_FALL 3
#define FALL_MAX 100
#define DEFAULT_TIMEOUT_MS (60 * 1000)
#define DEFAULT_WINDOW_MS (30 * 1000)
#define WINDOW_MAX_MS (600 * 1000) /* the daemon forgets clients after 10 min */
#define DEFAULT_NO_PROBERS_DELAY_MS (5 * 1000)

struct wait_args {
	int want_serving;
	long fall;
	int64_t timeout_ms, window_ms, no_probers_delay_ms;
	int require_probers;
};

/* Where one node stands. */
struct node_wait {
	const char *name;
	int is_done;
	int is_noted;      /* "nothing probes it" said once */
	char pending[512]; /* why not done yet, for the timeout message */
	size_t n_probers;
};

static int64_t
monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* --- options ------------------------------------------------------------ */

static int
parse_duration(const char *option, const char *text, int64_t dflt, int64_t max, int64_t *out,
               struct error *err)
{
	*out = dflt;
	if (text == NULL)
		return 0;
	if (duration_parse_ms(text, out) != 0 || *out > max)
		return cli_usage_error(err, "bad --%s '%s': give a duration like 30, 30s or 2m",
		                       option, text);
	return 0;
}

static int
parse_args(const struct cli *cli, struct wait_args *a, struct error *err)
{
	char *end;
	int rc;

	memset(a, 0, sizeof(*a));
	if (!!(cli->given & OPT_DRAINED) == !!(cli->given & OPT_SERVING))
		return cli_usage_error(err, "wait needs exactly one of --drained and --serving");
	if ((cli->given & OPT_REQUIRE_PROBERS) && (cli->given & OPT_NO_PROBERS_DELAY))
		return cli_usage_error(
		    err, "--require-probers and --no-probers-delay exclude each other");
	a->want_serving = (cli->given & OPT_SERVING) != 0;
	a->require_probers = (cli->given & OPT_REQUIRE_PROBERS) != 0;
	a->fall = DEFAULT_FALL;
	if (cli->fall != NULL) {
		errno = 0;
		a->fall = strtol(cli->fall, &end, 10);
		if (cli->fall[0] < '0' || cli->fall[0] > '9' || *end != '\0' || errno != 0 ||
		    a->fall < 1 || a->fall > FALL_MAX)
			return cli_usage_error(err, "bad --fall '%s': give a number from 1 to %d",
			                       cli->fall, FALL_MAX);
	}
	if ((rc = parse_duration("timeout", cli->timeout, DEFAULT_TIMEOUT_MS, INT64_MAX / 2,
	                         &a->timeout_ms, err)) != 0 ||
	    (rc = parse_duration("window", cli->window, DEFAULT_WINDOW_MS, WINDOW_MAX_MS,
	                         &a->window_ms, err)) != 0 ||
	    (rc = parse_duration("no-probers-delay", cli->no_probers_delay,
	                         DEFAULT_NO_PROBERS_DELAY_MS, INT64_MAX / 2,
	                         &a->no_probers_delay_ms, err)) != 0)
		return rc;
	return 0;
}

/* --- judging one node's probes ----------------------------------------- */

static const char *
string_field(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "";
}

static long long
int_field(const json_t *obj, const char *key)
{
	return (long long)json_integer_value(json_object_get(obj, key));
}

/* Has prober p had the wanted answer often enough? */
static int
prober_is_done(const json_t *p, const struct wait_args *a)
{
	return json_is_true(json_object_get(p, "serving")) == a->want_serving &&
	       int_field(p, "since_change") >= a->fall;
}

/* For --drained: an HTTP prober at the address of an agent-check that was
 * answered "maint" often enough (HAProxy no longer checks a server in
 * MAINT, and sends it nothing). */
static int
prober_is_covered(const json_t *p, const json_t *probes, const struct wait_args *a)
{
	const json_t *q;
	size_t i;

	if (a->want_serving || strcmp(string_field(p, "protocol"), "http") != 0)
		return 0;
	json_array_foreach(probes, i, q)
	{
		if (strcmp(string_field(q, "protocol"), "agent") == 0 &&
		    strcmp(string_field(q, "address"), string_field(p, "address")) == 0 &&
		    strcmp(string_field(q, "last_answer"), "maint") == 0 && prober_is_done(q, a))
			return 1;
	}
	return 0;
}

/* "127.0.0.2 (curl/8.0)", "127.0.0.2 (agent-check)". */
static void
prober_name(const json_t *p, char *buf, size_t size)
{
	const char *ua = json_string_value(json_object_get(p, "user_agent"));

	if (strcmp(string_field(p, "protocol"), "agent") == 0)
		snprintf(buf, size, "%s (agent-check)", string_field(p, "address"));
	else if (ua != NULL)
		snprintf(buf, size, "%s (%s)", string_field(p, "address"), ua);
	else
		snprintf(buf, size, "%s (no User-Agent)", string_field(p, "address"));
}

/* Updates w from the node document; fills w->pending with the probers
 * that have not seen the state yet. */
static void
judge(struct node_wait *w, const json_t *node, const struct wait_args *a)
{
	const json_t *probes = json_object_get(node, "probes"), *p;
	size_t i, used = 0;
	int is_done = 1;

	w->pending[0] = '\0';
	w->n_probers = json_array_size(probes);
	json_array_foreach(probes, i, p)
	{
		char who[200];
		int n;
		if (prober_is_done(p, a) || prober_is_covered(p, probes, a))
			continue;
		is_done = 0;
		prober_name(p, who, sizeof(who));
		n = snprintf(w->pending + used, sizeof(w->pending) - used,
		             "%s%s has had %lld of %ld %s answers since the change (last: %s)",
		             used > 0 ? "; " : "", who,
		             json_is_true(json_object_get(p, "serving")) == a->want_serving
		                 ? int_field(p, "since_change")
		                 : 0LL,
		             a->fall, a->want_serving ? "serving" : "failing",
		             string_field(p, "last_answer"));
		if (n > 0 && (size_t)n < sizeof(w->pending) - used)
			used += (size_t)n;
	}
	if (w->n_probers > 0)
		w->is_done = is_done;
}

/* --- the loop ------------------------------------------------------------ */

static int
fetch_node(struct cli *cli, const char *name, const struct wait_args *a, json_t **node,
           struct client_reply *reply, struct error *err)
{
	char *path = client_path("v1", "clusters", cli->cluster, "nodes", name, NULL), *query;
	int rc;

	if (path == NULL ||
	    asprintf(&query, "%s?window=%lld", path, (long long)(a->window_ms + 999) / 1000) < 0)
		query = NULL;
	free(path);
	if ((rc = cli_call(cli, "GET", query, NULL, reply, err)) != CLI_OK)
		return rc;
	*node = json_object_get(reply->json, "node");
	return CLI_OK;
}

/* One look at every node not done yet. */
static int
poll_nodes(struct cli *cli, struct node_wait *nodes, int n, const struct wait_args *a,
           int64_t elapsed, struct error *err)
{
	struct client_reply reply;
	json_t *node;
	int i, rc;

	for (i = 0; i < n; i++) {
		struct node_wait *w = &nodes[i];
		if (w->is_done)
			continue;
		if ((rc = fetch_node(cli, w->name, a, &node, &reply, err)) != CLI_OK)
			return rc;
		judge(w, node, a);
		client_reply_free(&reply);
		if (w->is_done && !cli->is_json)
			printf("%s: %s by %zu prober%s (%ld answers in a row)\n", w->name,
			       a->want_serving ? "served" : "drained", w->n_probers,
			       w->n_probers == 1 ? "" : "s", a->fall);
		if (w->is_done || w->n_probers > 0)
			continue;
		if (a->require_probers) {
			error_set(
			    err, 0,
			    "nothing probed %s in the last %llds: cannot tell whether the load "
			    "balancers saw it (--require-probers)",
			    w->name, (long long)a->window_ms / 1000);
			return CLI_REFUSED;
		}
		if (!w->is_noted) {
			fprintf(stderr,
			        "clustermgmt: nothing probed %s in the last %llds; waiting %llds "
			        "instead\n",
			        w->name, (long long)a->window_ms / 1000,
			        (long long)a->no_probers_delay_ms / 1000);
			w->is_noted = 1;
		}
		if (elapsed >= a->no_probers_delay_ms) {
			w->is_done = 1;
			if (!cli->is_json)
				printf("%s: no probers; waited %llds\n", w->name,
				       (long long)a->no_probers_delay_ms / 1000);
		}
		snprintf(w->pending, sizeof(w->pending), "nothing probes it");
	}
	return CLI_OK;
}

static int
all_done(const struct node_wait *nodes, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!nodes[i].is_done)
			return 0;
	return 1;
}

static int
timed_out(const struct node_wait *nodes, int n, const struct wait_args *a, struct error *err)
{
	size_t used = 0;
	int i;

	used = (size_t)snprintf(err->what, sizeof(err->what),
	                        "timed out after %llds: not every load balancer has seen it %s: ",
	                        (long long)a->timeout_ms / 1000, a->want_serving ? "in" : "out");
	for (i = 0; i < n && used < sizeof(err->what); i++) {
		int k;
		if (nodes[i].is_done)
			continue;
		k = snprintf(err->what + used, sizeof(err->what) - used, "%s%s: %s",
		             used > 0 && err->what[used - 2] != ':' ? "; " : "", nodes[i].name,
		             nodes[i].pending);
		if (k < 0)
			break;
		used += (size_t)k;
	}
	err->status = 0;
	return CLI_TIMEOUT;
}

static void
print_json(const struct node_wait *nodes, int n)
{
	json_t *doc = json_object(), *list = json_object();
	char *text;
	int i;

	for (i = 0; i < n; i++)
		json_object_set_new(list, nodes[i].name,
		                    json_pack("{s:b, s:I}", "done", nodes[i].is_done, "probers",
		                              (json_int_t)nodes[i].n_probers));
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
	                            "[--window D] [--no-probers-delay D | --require-probers]";
	struct wait_args a;
	struct node_wait *nodes;
	int64_t start = monotonic_ms(), elapsed;
	int i, rc;

	if ((rc = cli_only_options(cli,
	                           OPT_DRAINED | OPT_SERVING | OPT_FALL | OPT_TIMEOUT | OPT_WINDOW |
	                               OPT_NO_PROBERS_DELAY | OPT_REQUIRE_PROBERS,
	                           "wait", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, -1, usage, err)) != 0 ||
	    (rc = parse_args(cli, &a, err)) != 0)
		return rc;
	if ((nodes = calloc((size_t)nargs, sizeof(*nodes))) == NULL)
		return error_set(err, 0, "out of memory"), CLI_UNREACHABLE;
	for (i = 0; i < nargs; i++)
		nodes[i].name = args[i];
	while (1) {
		elapsed = monotonic_ms() - start;
		if ((rc = poll_nodes(cli, nodes, nargs, &a, elapsed, err)) != CLI_OK)
			break;
		if (all_done(nodes, nargs)) {
			rc = CLI_OK;
			break;
		}
		if (elapsed >= a.timeout_ms) {
			rc = timed_out(nodes, nargs, &a, err);
			break;
		}
		sleep_ms(POLL_MS);
	}
	if (cli->is_json && (rc == CLI_OK || rc == CLI_TIMEOUT))
		print_json(nodes, nargs);
	free(nodes);
	return rc;
}
