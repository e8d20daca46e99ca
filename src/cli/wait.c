/*
 * wait.c - wait until every load balancer has acted on a node's state,
 * then (draining) until the requests in flight are over; see wait.h.
 *
 * The daemon judges (GET .../nodes/{n}/drained or /serving, held until
 * the verdict or the timeout): one request per node, in turn, reading
 * only that node's observations. A daemon without those endpoints (an
 * older one) is followed here instead, with the same judgement
 * (drain/drain.h), as below.
 *
 * The loop: one long poll on the observations of every node not done yet
 * (the daemon answers as soon as one of them is probed, or after
 * LONG_POLL_S), judge each node, and for nodes whose load balancers have
 * all acted, ask the load balancers with runtime access how many
 * requests are in flight (every IN_FLIGHT_POLL_MS, which is the load
 * balancer's pace, not the daemon's) or wait the grace period.
 *
 * The server is asked for the clients seen within the window, and gives
 * each one's age by its own clock, so recency never depends on ours.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/strbuf.h"
#include "util/timefmt.h"
#include "wait.h"

#define LONG_POLL_S 1 /* bounds how long SIGINT or a deadline goes unseen */
#define IN_FLIGHT_POLL_MS DRAIN_IN_FLIGHT_POLL_MS

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
	a->drain_grace_ms = WAIT_DEFAULT_DRAIN_GRACE_MS;
}

int
wait_parse_duration(const char *option, const char *text, int64_t dflt, int64_t max,
                    int64_t *out_ms, struct error *err)
{
	/* no grace at all is a choice (runtime access, or idempotent requests
	 * retried elsewhere); no timeout, window or TTL is not */
	int64_t min = strcmp(option, "drain-grace") == 0 ? 0 : 1;

	*out_ms = dflt;
	if (text == NULL || duration_parse(text, min, max, out_ms) == 0)
		return 0;
	return cli_usage_error(err, "bad --%s '%s': give a duration like 30, 30s, 2m or 500ms",
	                       option, text);
}

int
wait_args_from_cli(const struct cli *cli, struct wait_args *a, struct error *err)
{
	char *end;
	int rc;

	if (cli->given[OPT_REQUIRE_PROBERS] && cli->given[OPT_NO_PROBERS_DELAY])
		return cli_usage_error(
		    err, "--require-probers and --no-probers-delay exclude each other");
	a->require_probers = cli->given[OPT_REQUIRE_PROBERS] != 0;
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
	                              &a->no_probers_delay_ms, err)) != 0 ||
	    (rc = wait_parse_duration("drain-grace", cli->drain_grace, WAIT_DEFAULT_DRAIN_GRACE_MS,
	                              3600 * 1000LL, &a->drain_grace_ms, err)) != 0)
		return rc;
	return 0;
}

/* --- the cluster's load balancers -------------------------------------------- */

static long long
int_field(const json_t *obj, const char *key)
{
	return (long long)json_integer_value(json_object_get(obj, key));
}

static const char *
string_field(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL ? s : "";
}

int
wait_load_lbs(struct cli *cli, struct drain_lb *lbs, size_t *n, struct error *err)
{
	struct client_reply reply;
	const json_t *lb;
	size_t i;
	int rc;

	*n = 0;
	rc = cli_call(cli, "GET", client_path("v1", "clusters", cli->cluster, "lbs", NULL), NULL,
	              &reply, err);
	if (rc == CLI_REFUSED && err->status == 404) { /* a daemon without the list */
		error_clear(err);
		return CLI_OK;
	}
	if (rc != CLI_OK)
		return rc;
	json_array_foreach(json_object_get(reply.json, "lbs"), i, lb)
	{
		struct drain_lb *l;
		if (*n == WAIT_LBS_MAX)
			break;
		l = &lbs[(*n)++];
		memset(l, 0, sizeof(*l));
		snprintf(l->name, sizeof(l->name), "%s", string_field(lb, "name"));
		snprintf(l->kind, sizeof(l->kind), "%s", string_field(lb, "kind"));
		snprintf(l->runtime, sizeof(l->runtime), "%s", string_field(lb, "runtime"));
		snprintf(l->backend, sizeof(l->backend), "%s", string_field(lb, "backend"));
	}
	client_reply_free(&reply);
	return CLI_OK;
}

/* --- the loop ------------------------------------------------------------ */

/* The observations of the nodes waiting for their load balancers
 * ("a,b"), with a long poll when may_block and *digest is known (>= 0). */
static int
fetch_observations(struct cli *cli, struct drain_node *nodes, int n, const struct wait_args *a,
                   int may_block, long long *digest, struct client_reply *reply, struct error *err)
{
	char *path = client_path("v1", "clusters", cli->cluster, "observations", NULL);
	char list[4096] = "", *query = NULL;
	int i, rc;

	for (i = 0; i < n; i++)
		if (nodes[i].state == DRAIN_PROBES)
			strbuf_appendf(list, sizeof(list), "%s%s", list[0] != '\0' ? "," : "",
			               nodes[i].name);
	if (*digest >= 0 && may_block)
		rc = asprintf(&query, "%s?nodes=%s&window=%lld&after=%lld&wait=%d", path, list,
		              (long long)(a->window_ms + 999) / 1000, *digest, LONG_POLL_S);
	else
		rc = asprintf(&query, "%s?nodes=%s&window=%lld", path, list,
		              (long long)(a->window_ms + 999) / 1000);
	if (rc < 0)
		abort(); /* out of memory */
	free(path);
	if ((rc = cli_call(cli, "GET", query, NULL, reply, err)) != CLI_OK)
		return rc;
	*digest = int_field(reply->json, "digest");
	return CLI_OK;
}

/* The judgement's arguments from the command's. */
static void
judge_args(const struct wait_args *a, struct drain_args *out)
{
	drain_args_default(out, a->want_serving);
	out->fall = a->fall;
	out->window_ms = a->window_ms;
	out->no_probers_delay_ms = a->no_probers_delay_ms;
	out->drain_grace_ms = a->drain_grace_ms;
	out->require_probers = a->require_probers;
}

/* A node nobody probed within the window: noted once, done once the
 * delay has passed. */
static int
no_probers(struct drain_node *w, const struct wait_args *a, const struct drain_access *acc,
           int64_t elapsed, int64_t now, struct error *err)
{
	struct drain_args da;

	judge_args(a, &da);
	if (drain_no_probers(w, &da, acc, elapsed, now) != 0) {
		error_set(err, 0,
		          "nothing probed %s in the last %llds: cannot tell whether the load "
		          "balancers saw it (--require-probers)",
		          w->name, (long long)a->window_ms / 1000);
		return CLI_REFUSED;
	}
	return CLI_OK;
}

static void
mark_done(struct drain_node *w, const struct wait_args *a, wait_done_fn on_done, void *ctx)
{
	w->state = DRAIN_DONE;
	w->is_done = 1;
	if (on_done != NULL)
		on_done(ctx, w, a);
}

static int
count_in(const struct drain_node *nodes, int n, enum drain_state state)
{
	int i, k = 0;

	for (i = 0; i < n; i++)
		k += nodes[i].state == state;
	return k;
}

/* Is anything waited for that no probe will announce: requests in
 * flight, or an answer on its way to a load balancer? Then the loop looks
 * at its own pace instead of waiting for the next probe. */
static int
must_poll(const struct drain_node *nodes, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (drain_must_poll(&nodes[i]))
			return 1;
	return 0;
}

/* One look at the observations of every node still waiting for its load
 * balancers. */
static int
look(struct cli *cli, struct drain_node *nodes, int n, struct drain_lb *lbs, size_t n_lbs,
     const struct wait_args *a, int64_t start, long long *digest, struct error *err)
{
	struct client_reply reply;
	struct drain_access acc;
	struct drain_args da;
	const json_t *node;
	int64_t now;
	size_t k;
	int i, rc;

	if ((rc = fetch_observations(cli, nodes, n, a, !must_poll(nodes, n), digest, &reply,
	                             err)) != CLI_OK)
		return rc;
	now = time_monotonic_ms();
	drain_access_direct(&acc);
	judge_args(a, &da);
	json_array_foreach(json_object_get(reply.json, "nodes"), k, node)
	{
		for (i = 0; i < n; i++)
			if (nodes[i].state == DRAIN_PROBES &&
			    strcmp(nodes[i].name, string_field(node, "name")) == 0)
				break;
		if (i == n)
			continue;
		drain_judge(&nodes[i], node, lbs, n_lbs, cli->cluster, &da, &acc, now, now - start);
		if (n_lbs == 0 && nodes[i].state == DRAIN_PROBES && nodes[i].n_probers == 0 &&
		    (rc = no_probers(&nodes[i], a, &acc, now - start, now, err)) != CLI_OK)
			break;
	}
	client_reply_free(&reply);
	return rc;
}

static int
timed_out(const struct drain_node *nodes, int n, const struct wait_args *a, struct error *err)
{
	int i;

	if (a->timeout_ms % 1000 == 0)
		snprintf(err->what, sizeof(err->what),
		         "timed out after %llds: ", (long long)a->timeout_ms / 1000);
	else
		snprintf(err->what, sizeof(err->what),
		         "timed out after %.1fs: ", (double)a->timeout_ms / 1000.0);
	for (i = 0; i < n; i++) {
		const struct drain_node *w = &nodes[i];
		if (w->state == DRAIN_PROBES)
			strbuf_appendf(err->what, sizeof(err->what),
			               "%s%s: not every load balancer has seen it %s: %s",
			               i > 0 && nodes[i - 1].state != DRAIN_DONE ? "; " : "",
			               w->name, a->want_serving ? "in" : "out", w->pending);
		else if (w->state == DRAIN_IN_FLIGHT)
			strbuf_appendf(
			    err->what, sizeof(err->what),
			    "%s%s: the load balancers stopped sending it requests, but requests "
			    "were still in flight: %s",
			    i > 0 && nodes[i - 1].state != DRAIN_DONE ? "; " : "", w->name,
			    w->in_flight);
	}
	err->status = 0;
	return CLI_TIMEOUT;
}

/* --- the daemon's judgement ------------------------------------------------ */

#define DAEMON_WAIT_MAX_MS (900 * 1000LL) /* the daemon's largest ?wait= */
#define DAEMON_DELAY_MAX_MS (3600 * 1000LL)
#define NO_ENDPOINT 100 /* the daemon has no .../drained: judge here */

/* GET .../nodes/{n}/drained|serving with the wait's arguments. */
static char *
verdict_path(const char *cluster, const char *node, const struct wait_args *a, int64_t wait_ms)
{
	char *path = client_path("v1", "clusters", cluster, "nodes", node,
	                         a->want_serving ? "serving" : "drained", NULL);
	int64_t delay = a->no_probers_delay_ms > DAEMON_DELAY_MAX_MS ? DAEMON_DELAY_MAX_MS
	                                                             : a->no_probers_delay_ms;
	char *query;

	if (asprintf(&query,
	             "%s?wait=%lldms&fall=%ld&window=%lldms&no_probers_delay=%lldms"
	             "&drain_grace=%lldms&require_probers=%s",
	             path, (long long)wait_ms, a->fall, (long long)a->window_ms, (long long)delay,
	             (long long)a->drain_grace_ms, a->require_probers ? "true" : "false") < 0)
		abort(); /* out of memory */
	free(path);
	return query;
}

/* A done node from the daemon's verdict; its notes go to stderr. */
static void
take_verdict(struct drain_node *w, const json_t *v)
{
	const json_t *note;
	size_t i;

	snprintf(w->evidence, sizeof(w->evidence), "%s", string_field(v, "evidence"));
	snprintf(w->in_flight, sizeof(w->in_flight), "%s", string_field(v, "in_flight"));
	w->n_probers = (size_t)int_field(v, "probers");
	w->had_no_probers = json_is_true(json_object_get(v, "no_probers"));
	json_array_foreach(json_object_get(v, "notes"), i, note)
	{
		fprintf(stderr, "clustermgmt: %s\n", json_string_value(note));
		fflush(stderr);
	}
	w->state = DRAIN_DONE;
}

/* The node's part of a "not drained after D: NODE: ..." refusal. */
static const char *
refusal_part(const char *sentence)
{
	const char *after = strstr(sentence, " after ");
	const char *colon = after != NULL ? strstr(after, ": ") : NULL;

	return colon != NULL ? colon + 2 : sentence;
}

/* Asks the daemon for node w's verdict, held at most wait_ms. Returns
 * CLI_OK (w done), CLI_TIMEOUT (w->pending holds the daemon's words),
 * CLI_REFUSED for require_probers (err filled as `wait` words it),
 * NO_ENDPOINT, or the call's error. */
static int
ask_daemon(struct cli *cli, struct drain_node *w, const struct wait_args *a, int64_t wait_ms,
           struct error *err)
{
	struct client_reply reply;
	long saved = cli->client.timeout_s;
	int rc;

	cli->client.timeout_s = (long)(wait_ms / 1000) + 30;
	cli->client.stop = a->stop;
	rc = cli_call(cli, "GET", verdict_path(cli->cluster, w->name, a, wait_ms), NULL, &reply,
	              err);
	cli->client.timeout_s = saved;
	cli->client.stop = NULL;
	if (rc == CLI_OK) {
		take_verdict(w, reply.json);
		client_reply_free(&reply);
		return CLI_OK;
	}
	if (rc == CLI_REFUSED && err->status == 404 && strncmp(err->what, "node '", 6) != 0 &&
	    strncmp(err->what, "cluster '", 9) != 0)
		return NO_ENDPOINT;
	if (rc == CLI_REFUSED && err->status == 409 &&
	    strncmp(err->what, "nothing probed ", 15) == 0) {
		error_set(err, 0,
		          "nothing probed %s in the last %llds: cannot tell whether the load "
		          "balancers saw it (--require-probers)",
		          w->name, (long long)a->window_ms / 1000);
		return CLI_REFUSED;
	}
	if (rc == CLI_REFUSED && err->status == 409) {
		snprintf(w->pending, sizeof(w->pending), "%s", refusal_part(err->what));
		return CLI_TIMEOUT;
	}
	return rc;
}

/* The whole wait through the daemon: one held request per node, in
 * turn, each for what is left of the timeout (a node already done
 * answers at once). */
static int
wait_on_daemon(struct cli *cli, struct drain_node *nodes, int n, const struct wait_args *a,
               wait_done_fn on_done, void *ctx, struct error *err)
{
	int64_t start = time_monotonic_ms(), left;
	int i, k, rc = CLI_OK, is_first = 1;

	for (i = 0; i < n; i++) {
		if (a->stop != NULL && *a->stop)
			break;
		left = a->timeout_ms - (time_monotonic_ms() - start);
		if (left < 0)
			left = 0;
		rc = ask_daemon(cli, &nodes[i], a,
		                left > DAEMON_WAIT_MAX_MS ? DAEMON_WAIT_MAX_MS : left, err);
		if (rc == NO_ENDPOINT && i == 0)
			return NO_ENDPOINT;
		if (rc == CLI_TIMEOUT || (a->stop != NULL && *a->stop))
			break;
		if (rc != CLI_OK)
			return rc;
		mark_done(&nodes[i], a, on_done, ctx);
	}
	if (a->stop != NULL && *a->stop) {
		error_set(err, 0, "interrupted while waiting for the load balancers");
		return CLI_TIMEOUT;
	}
	if (rc != CLI_TIMEOUT)
		return CLI_OK;
	/* timed out: every node not done says what it lacks */
	if (a->timeout_ms % 1000 == 0)
		snprintf(err->what, sizeof(err->what),
		         "timed out after %llds: ", (long long)a->timeout_ms / 1000);
	else
		snprintf(err->what, sizeof(err->what),
		         "timed out after %.1fs: ", (double)a->timeout_ms / 1000.0);
	for (k = i; k < n; k++) {
		struct error e;
		if (k > i && ask_daemon(cli, &nodes[k], a, 0, &e) == CLI_OK) {
			mark_done(&nodes[k], a, on_done, ctx);
			continue;
		}
		strbuf_appendf(err->what, sizeof(err->what), "%s%s", is_first ? "" : "; ",
		               nodes[k].pending);
		is_first = 0;
	}
	err->status = 0;
	return CLI_TIMEOUT;
}

int
wait_for_nodes(struct cli *cli, struct drain_node *nodes, int n, struct drain_lb *lbs, size_t n_lbs,
               const struct wait_args *a, wait_done_fn on_done, void *ctx, struct error *err)
{
	int64_t start = time_monotonic_ms(), now;
	long long digest = -1;
	struct drain_lb own[WAIT_LBS_MAX];
	struct drain_access acc;
	struct drain_args da;
	int i, rc;

	rc = wait_on_daemon(cli, nodes, n, a, on_done, ctx, err);
	if (rc != NO_ENDPOINT)
		return rc;
	/* a daemon without the drain endpoints: judge here, as before */
	error_clear(err);
	if (lbs == NULL) {
		if ((rc = wait_load_lbs(cli, own, &n_lbs, err)) != CLI_OK)
			return rc;
		lbs = own;
	}
	drain_access_direct(&acc);
	judge_args(a, &da);
	while (1) {
		if (count_in(nodes, n, DRAIN_PROBES) > 0 &&
		    (rc = look(cli, nodes, n, lbs, n_lbs, a, start, &digest, err)) != CLI_OK)
			return rc;
		now = time_monotonic_ms();
		for (i = 0; i < n; i++) {
			if (nodes[i].state == DRAIN_DONE && !nodes[i].is_done)
				mark_done(&nodes[i], a, on_done, ctx);
			else if (nodes[i].state == DRAIN_IN_FLIGHT &&
			         drain_check_in_flight(&nodes[i], lbs, n_lbs, cli->cluster, &da,
			                               &acc, now))
				mark_done(&nodes[i], a, on_done, ctx);
		}
		if (count_in(nodes, n, DRAIN_DONE) == n)
			return CLI_OK;
		if (time_monotonic_ms() - start >= a->timeout_ms)
			return timed_out(nodes, n, a, err);
		if (a->stop != NULL && *a->stop) {
			error_set(err, 0, "interrupted while waiting for the load balancers");
			return CLI_TIMEOUT;
		}
		/* Waiting for the load balancers: the long poll is the pause.
		 * Only requests in flight are asked for at a pace of our own. */
		if (must_poll(nodes, n))
			wait_sleep_ms(IN_FLIGHT_POLL_MS, a->stop);
	}
}
