/*
 * wait.c - poll the daemon's observed probes until every load balancer
 * has seen a node's current state; see wait.h.
 *
 * The server is asked for the clients seen within the window, so recency
 * is judged by the server's clock, not ours. Two special cases:
 *   - nobody probed a node within the window: either wait a fixed
 *     no-probers delay (a load balancer we cannot see may still be
 *     reacting), or fail when probers are required;
 *   - HAProxy stops health checks on a server in MAINT, so an HTTP prober
 *     stops counting once the agent-check at the same address was
 *     answered "maint" `fall` times: that HAProxy has taken it out.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/timefmt.h"
#include "wait.h"

#define POLL_MS 250

int64_t
wait_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
wait_sleep_ms(int64_t ms, volatile sig_atomic_t *stop)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		if (stop != NULL && *stop)
			return;
}

/* --- options ------------------------------------------------------------ */

void
wait_args_default(struct wait_args *a, int want_serving)
{
	memset(a, 0, sizeof(*a));
	a->want_serving = want_serving;
	a->fall = WAIT_DEFAULT_FALL;
	a->timeout_ms = WAIT_DEFAULT_TIMEOUT_MS;
	a->window_ms = WAIT_DEFAULT_WINDOW_MS;
	a->no_probers_delay_ms = WAIT_DEFAULT_NO_PROBERS_DELAY_MS;
}

int
wait_parse_duration(const char *option, const char *text, int64_t dflt, int64_t max,
                    int64_t *out_ms, struct error *err)
{
	*out_ms = dflt;
	if (text == NULL)
		return 0;
	if (duration_parse_ms(text, out_ms) != 0 || *out_ms > max)
		return cli_usage_error(err, "bad --%s '%s': give a duration like 30, 30s or 2m",
		                       option, text);
	return 0;
}

int
wait_args_from_cli(const struct cli *cli, struct wait_args *a, struct error *err)
{
	char *end;
	int rc;

	if ((cli->given & OPT_REQUIRE_PROBERS) && (cli->given & OPT_NO_PROBERS_DELAY))
		return cli_usage_error(
		    err, "--require-probers and --no-probers-delay exclude each other");
	a->require_probers = (cli->given & OPT_REQUIRE_PROBERS) != 0;
	if (cli->fall != NULL) {
		errno = 0;
		a->fall = strtol(cli->fall, &end, 10);
		if (cli->fall[0] < '0' || cli->fall[0] > '9' || *end != '\0' || errno != 0 ||
		    a->fall < 1 || a->fall > WAIT_FALL_MAX)
			return cli_usage_error(err, "bad --fall '%s': give a number from 1 to %d",
			                       cli->fall, WAIT_FALL_MAX);
	}
	if ((rc = wait_parse_duration("window", cli->window, WAIT_DEFAULT_WINDOW_MS,
	                              WAIT_WINDOW_MAX_MS, &a->window_ms, err)) != 0 ||
	    (rc = wait_parse_duration("no-probers-delay", cli->no_probers_delay,
	                              WAIT_DEFAULT_NO_PROBERS_DELAY_MS, INT64_MAX / 2,
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

/* For draining: an HTTP prober at the address of an agent-check that was
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
judge(struct wait_node *w, const json_t *node, const struct wait_args *a)
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

	if (asprintf(&query, "%s?window=%lld", path, (long long)(a->window_ms + 999) / 1000) < 0)
		abort(); /* out of memory */
	free(path);
	if ((rc = cli_call(cli, "GET", query, NULL, reply, err)) != CLI_OK)
		return rc;
	*node = json_object_get(reply->json, "node");
	return CLI_OK;
}

/* A node nobody probed within the window: note it once, and count it
 * done once the delay has passed. */
static int
no_probers(struct wait_node *w, const struct wait_args *a, int64_t elapsed, struct error *err)
{
	snprintf(w->pending, sizeof(w->pending), "nothing probes it");
	if (a->require_probers) {
		error_set(err, 0,
		          "nothing probed %s in the last %llds: cannot tell whether the load "
		          "balancers saw it (--require-probers)",
		          w->name, (long long)a->window_ms / 1000);
		return CLI_REFUSED;
	}
	if (!w->is_noted) {
		fprintf(stderr,
		        "clustermgmt: nothing probed %s in the last %llds; waiting %llds instead\n",
		        w->name, (long long)a->window_ms / 1000,
		        (long long)a->no_probers_delay_ms / 1000);
		fflush(stderr);
		w->is_noted = 1;
	}
	if (elapsed >= a->no_probers_delay_ms)
		w->is_done = w->had_no_probers = 1;
	return CLI_OK;
}

/* One look at every node not done yet. */
static int
poll_nodes(struct cli *cli, struct wait_node *nodes, int n, const struct wait_args *a,
           int64_t elapsed, wait_done_fn on_done, void *ctx, struct error *err)
{
	struct client_reply reply;
	json_t *node;
	int i, rc;

	for (i = 0; i < n; i++) {
		struct wait_node *w = &nodes[i];
		if (w->is_done)
			continue;
		if ((rc = fetch_node(cli, w->name, a, &node, &reply, err)) != CLI_OK)
			return rc;
		judge(w, node, a);
		client_reply_free(&reply);
		if (!w->is_done && w->n_probers == 0 &&
		    (rc = no_probers(w, a, elapsed, err)) != CLI_OK)
			return rc;
		if (w->is_done && on_done != NULL)
			on_done(ctx, w, a);
	}
	return CLI_OK;
}

static int
all_done(const struct wait_node *nodes, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!nodes[i].is_done)
			return 0;
	return 1;
}

static int
timed_out(const struct wait_node *nodes, int n, const struct wait_args *a, struct error *err)
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

int
wait_for_nodes(struct cli *cli, struct wait_node *nodes, int n, const struct wait_args *a,
               wait_done_fn on_done, void *ctx, struct error *err)
{
	int64_t start = wait_monotonic_ms(), elapsed;
	int rc;

	while (1) {
		elapsed = wait_monotonic_ms() - start;
		if ((rc = poll_nodes(cli, nodes, n, a, elapsed, on_done, ctx, err)) != CLI_OK)
			return rc;
		if (all_done(nodes, n))
			return CLI_OK;
		if (elapsed >= a->timeout_ms)
			return timed_out(nodes, n, a, err);
		if (a->stop != NULL && *a->stop) {
			error_set(err, 0, "interrupted while waiting for the load balancers");
			return CLI_TIMEOUT;
		}
		wait_sleep_ms(POLL_MS, a->stop);
	}
}
