/*
 * wait.c - follow the daemon's observed probes until every load balancer
 * has acted on a node's state, then (draining) until the requests in
 * flight are over; see wait.h for the rules.
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

#include "lbruntime.h"
#include "util/timefmt.h"
#include "wait.h"

#define LONG_POLL_S 1 /* bounds how long SIGINT or a deadline goes unseen */
#define IN_FLIGHT_POLL_MS 20
#define RUNTIME_TIMEOUT_MS 1000
#define STALE_INTERVALS 3 /* a load balancer silent this many intervals... */
#define STALE_MIN_MS 1000 /* ...and at least this long is reported */

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

/* Appends a formatted piece to buf (size bytes), cut when full. */
static void append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t size, const char *fmt, ...)
{
	size_t used = strnlen(buf, size);
	va_list ap;

	if (used + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, size - used, fmt, ap);
	va_end(ap);
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
	                              &a->no_probers_delay_ms, err)) != 0 ||
	    (rc = wait_parse_duration("drain-grace", cli->drain_grace, WAIT_DEFAULT_DRAIN_GRACE_MS,
	                              3600 * 1000LL, &a->drain_grace_ms, err)) != 0)
		return rc;
	return 0;
}

/* --- the cluster's load balancers -------------------------------------------- */

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

int
wait_load_lbs(struct cli *cli, struct wait_lb *lbs, size_t *n, struct error *err)
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
		struct wait_lb *l;
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

/* --- judging one node's probes ----------------------------------------- */

static int
is_agent(const json_t *p)
{
	return strcmp(string_field(p, "protocol"), "agent") == 0;
}

/* Has prober p had the wanted answer often enough since the change? An
 * agent-check's answer is applied at once; HTTP probes need `fall`. */
static int
prober_is_done(const json_t *p, const struct wait_args *a)
{
	return json_is_true(json_object_get(p, "serving")) == a->want_serving &&
	       int_field(p, "since_change") >= (is_agent(p) ? 1 : a->fall);
}

/* Draining: has the load balancer received the deciding answer? The
 * daemon counts an answer when it sends it; the load balancer acts when
 * it reads it, which through a front server can be tens of ms later, and
 * meanwhile it still sends requests. Load balancers probe one at a time
 * (Varnish, HAProxy's checks and agent), so a later probe from it means
 * it has read the answer; and once a whole interval has passed it has
 * either read it or timed out (a failure too: its timeout is below its
 * interval). Serving needs no such care: a late start is not a fault. */
static int
prober_is_received(const json_t *p, const struct wait_args *a)
{
	long long interval = int_field(p, "interval_ms");

	if (a->want_serving || int_field(p, "since_change") > (is_agent(p) ? 1 : a->fall))
		return 1;
	return int_field(p, "age_ms") >= (interval > 0 ? interval : 1000);
}

/* "127.0.0.2 (curl/8.0)", "127.0.0.2 (agent-check)". */
static void
prober_name(const json_t *p, char *buf, size_t size)
{
	const char *ua = json_string_value(json_object_get(p, "user_agent"));

	if (is_agent(p))
		snprintf(buf, size, "%s (agent-check)", string_field(p, "address"));
	else if (ua != NULL)
		snprintf(buf, size, "%s (%.80s)", string_field(p, "address"), ua);
	else
		snprintf(buf, size, "%s (no User-Agent)", string_field(p, "address"));
}

/* "agent answered maint", "2 failing answers". */
static void
prober_signal(const json_t *p, char *buf, size_t size)
{
	if (is_agent(p))
		snprintf(buf, size, "agent answered '%s'", string_field(p, "last_answer"));
	else
		snprintf(buf, size, "%lld %s answers", int_field(p, "since_change"),
		         json_is_true(json_object_get(p, "serving")) ? "serving" : "failing");
}

/* "has had 1 of 3 failing answers since the change (last: 200 OK)". */
static void
prober_progress(const json_t *p, const struct wait_args *a, char *buf, size_t size)
{
	snprintf(buf, size, "has had %lld of %ld %s answers since the change (last: %s)",
	         json_is_true(json_object_get(p, "serving")) == a->want_serving
	             ? int_field(p, "since_change")
	             : 0LL,
	         is_agent(p) ? 1 : a->fall, a->want_serving ? "serving" : "failing",
	         string_field(p, "last_answer"));
}

/* For draining, an unnamed HTTP prober at the address of an unnamed
 * agent-check that was answered maint or drain, when it is that HAProxy's
 * own check: it says so (lbconfig's User-Agent "HAProxy-check"), or it
 * went silent as HAProxy's checks do in MAINT (another load balancer at
 * the same address, such as Varnish, keeps probing a node it took out,
 * so it must show its own failing answers). */
static int
unnamed_check_is_covered(const json_t *p, const json_t *probes, const struct wait_args *a)
{
	const char *ua = json_string_value(json_object_get(p, "user_agent"));
	long long interval = int_field(p, "interval_ms"), age = int_field(p, "age_ms");
	int is_silent = age > STALE_INTERVALS * interval && age > STALE_MIN_MS;
	const json_t *q;
	size_t i;

	if (a->want_serving || is_agent(p) ||
	    !((ua != NULL && strncmp(ua, "HAProxy", 7) == 0) || is_silent))
		return 0;
	json_array_foreach(probes, i, q)
	{
		if (is_agent(q) && json_is_null(json_object_get(q, "lb")) &&
		    strcmp(string_field(q, "address"), string_field(p, "address")) == 0 &&
		    prober_is_done(q, a) && prober_is_received(q, a))
			return 1;
	}
	return 0;
}

/* Runtime access: the load balancer's own word on the node. Returns 1
 * when it says it acted (signal filled), 0 when not or unknown. */
static int
runtime_says(const struct wait_lb *lb, const char *cluster, const char *node,
             const struct wait_args *a, struct lb_server_state *st, char *signal, size_t size)
{
	char backend[160], why[300];

	if (lb->runtime[0] == '\0' || strcmp(lb->kind, "haproxy") != 0)
		return 0;
	if (lb->backend[0] != '\0')
		snprintf(backend, sizeof(backend), "%s", lb->backend);
	else
		snprintf(backend, sizeof(backend), "be_%s", cluster);
	if (lbruntime_haproxy(lb->runtime, backend, node, RUNTIME_TIMEOUT_MS, st, why,
	                      sizeof(why)) != 0)
		return 0;
	if (a->want_serving ? !lbruntime_haproxy_is_in(st->status)
	                    : !lbruntime_haproxy_is_out(st->status))
		return 0;
	snprintf(signal, size, "HAProxy says %s", st->status);
	return 1;
}

/* Varnish with runtime access: have its own last `fall` probes of the
 * node failed? Then it has read the deciding answers and marked the
 * backend sick, without waiting for the next probe or an interval. */
static int
varnish_marked_sick(const struct wait_lb *lb, const char *node, const struct wait_args *a)
{
	unsigned long long bits, mask = (a->fall >= 64 ? ~0ULL : (1ULL << a->fall) - 1);
	char backend[160], why[300];

	if (a->want_serving || lb->runtime[0] == '\0' || strcmp(lb->kind, "varnish") != 0)
		return 0;
	lbruntime_varnish_backend(node, backend, sizeof(backend));
	return lbruntime_varnish_happy(lb->runtime, backend, RUNTIME_TIMEOUT_MS, &bits, why,
	                               sizeof(why)) == 0 &&
	       (bits & mask) == 0;
}

/* Judges one named load balancer from its probers in probes. Returns 1
 * when it has acted (signal says how), else 0 with why filled. */
static int
judge_named(struct wait_lb *lb, const char *cluster, const char *node, const json_t *probes,
            const struct wait_args *a, int64_t waited, char *signal, size_t ssize, char *why,
            size_t wsize, int *is_in_transit)
{
	struct lb_server_state st;
	const json_t *p;
	long long newest_age = -1, interval = 0;
	int n = 0, all_done = 1, any_done = 0;
	size_t i;

	signal[0] = why[0] = '\0';
	if (strcmp(lb->kind, "nginx") == 0) { /* it sends no probes */
		if (waited >= a->no_probers_delay_ms) {
			snprintf(signal, ssize, "no probes (nginx): waited %.1fs",
			         (double)a->no_probers_delay_ms / 1000.0);
			return 1;
		}
		snprintf(why, wsize, "nginx sends no probes: waiting %.1fs",
		         (double)a->no_probers_delay_ms / 1000.0);
		return 0;
	}
	if (lb->kind[0] != '\0' && runtime_says(lb, cluster, node, a, &st, signal, ssize))
		return 1;
	json_array_foreach(probes, i, p)
	{
		if (strcmp(string_field(p, "lb"), lb->name) != 0)
			continue;
		n++;
		if (newest_age < 0 || int_field(p, "age_ms") < newest_age) {
			newest_age = int_field(p, "age_ms");
			interval = int_field(p, "interval_ms");
		}
		if (prober_is_done(p, a) && !prober_is_received(p, a) &&
		    !varnish_marked_sick(lb, node, a)) {
			all_done = 0;
			*is_in_transit = 1;
			snprintf(why, wsize, "was told, and has not read it yet");
		} else if (prober_is_done(p, a)) {
			any_done = 1;
			/* Draining: one signal suffices (the agent's maint, or `fall`
			 * failing checks). Serving: all of them must agree. */
			if (!a->want_serving || signal[0] == '\0')
				prober_signal(p, signal, ssize);
		} else {
			all_done = 0;
			prober_progress(p, a, why, wsize);
		}
	}
	if (n > 0 && (a->want_serving ? all_done : any_done))
		return 1;
	signal[0] = '\0';
	if (n == 0)
		snprintf(why, wsize, "has not probed it in the last %llds",
		         (long long)a->window_ms / 1000);
	else if (newest_age > STALE_INTERVALS * interval && newest_age > STALE_MIN_MS &&
	         interval > 0)
		snprintf(why, wsize, "has not probed it for %.1fs (it probed every %lldms)",
		         (double)newest_age / 1000.0, interval);
	else if (newest_age > STALE_MIN_MS && interval == 0)
		snprintf(why, wsize, "has not probed it for %.1fs", (double)newest_age / 1000.0);
	return 0;
}

/* Notes on stderr, once per wait, a named load balancer that does not
 * probe. */
static void
report_silent(struct wait_lb *lb, const char *node, const char *why)
{
	if (lb->is_reported || strstr(why, "has not probed") == NULL)
		return;
	lb->is_reported = 1;
	fprintf(stderr,
	        "clustermgmt: load balancer %s %s (%s); is it running, configured with "
	        "`lbconfig --lb %s`?\n",
	        lb->name, why, node, lb->name);
	fflush(stderr);
}

/* The partial-view rule: answers went to probers the daemon could not
 * track (those that count: named ones, or any when none is named).
 * Returns how many, in the window. */
static long long
untracked(const json_t *node, size_t n_lbs)
{
	return int_field(node, "probes_untracked_lbs") +
	       (n_lbs == 0 ? int_field(node, "probes_untracked") : 0);
}

void
wait_judge(struct wait_node *w, const json_t *node, struct wait_lb *lbs, size_t n_lbs,
           const char *cluster, const struct wait_args *a, int64_t now, int64_t waited)
{
	const json_t *probes = json_object_get(node, "probes"), *p;
	char who[200], signal[200], why[300];
	long long lost = untracked(node, n_lbs);
	int is_done = 1;
	size_t i, ignored = 0;

	w->pending[0] = w->evidence[0] = '\0';
	w->n_probers = 0;
	w->is_in_transit = 0;
	if (n_lbs > 0) {
		for (i = 0; i < n_lbs; i++) {
			w->n_probers++;
			if (judge_named(&lbs[i], cluster, w->name, probes, a, waited, signal,
			                sizeof(signal), why, sizeof(why), &w->is_in_transit)) {
				if (w->lb_at[i] == 0)
					w->lb_at[i] = waited > 0 ? waited : 1;
				append(w->evidence, sizeof(w->evidence), "%s%s: %s at +%.2fs",
				       w->evidence[0] != '\0' ? "; " : "", lbs[i].name, signal,
				       (double)w->lb_at[i] / 1000.0);
				continue;
			}
			is_done = 0;
			report_silent(&lbs[i], w->name, why);
			append(w->pending, sizeof(w->pending), "%s%s %s",
			       w->pending[0] != '\0' ? "; " : "", lbs[i].name, why);
		}
		json_array_foreach(probes, i, p)
		{
			size_t k;
			for (k = 0; k < n_lbs; k++)
				if (strcmp(string_field(p, "lb"), lbs[k].name) == 0)
					break;
			ignored += k == n_lbs;
		}
		if (ignored > 0)
			append(w->evidence, sizeof(w->evidence),
			       "; %zu prober%s not a named load balancer (ignored)", ignored,
			       ignored == 1 ? "" : "s");
	} else {
		json_array_foreach(probes, i, p)
		{
			const char *lb = json_string_value(json_object_get(p, "lb"));
			w->n_probers++;
			if (lb != NULL)
				snprintf(who, sizeof(who), "%s%s", lb,
				         is_agent(p) ? " (agent-check)" : "");
			else
				prober_name(p, who, sizeof(who));
			if (prober_is_done(p, a) && !prober_is_received(p, a)) {
				w->is_in_transit = 1;
				goto pending;
			} else if (prober_is_done(p, a)) {
				prober_signal(p, signal, sizeof(signal));
			} else if (lb != NULL && !a->want_serving && !is_agent(p)) {
				/* a named HAProxy whose agent took it out */
				const json_t *q;
				size_t k;
				signal[0] = '\0';
				json_array_foreach(probes, k, q)
				{
					if (is_agent(q) && strcmp(string_field(q, "lb"), lb) == 0 &&
					    prober_is_done(q, a) && prober_is_received(q, a))
						snprintf(signal, sizeof(signal),
						         "covered by its agent-check");
				}
				if (signal[0] == '\0')
					goto pending;
			} else if (unnamed_check_is_covered(p, probes, a)) {
				snprintf(signal, sizeof(signal), "covered by the agent-check at %s",
				         string_field(p, "address"));
			} else
				goto pending;
			append(w->evidence, sizeof(w->evidence), "%s%s: %s",
			       w->evidence[0] != '\0' ? "; " : "", who, signal);
			continue;
		pending:
			is_done = 0;
			if (prober_is_done(p, a))
				snprintf(why, sizeof(why), "was told, and has not read it yet");
			else
				prober_progress(p, a, why, sizeof(why));
			append(w->pending, sizeof(w->pending), "%s%s %s",
			       w->pending[0] != '\0' ? "; " : "", who, why);
		}
	}
	if (lost > 0) {
		is_done = 0;
		append(w->pending, sizeof(w->pending),
		       "%sthe daemon could not track every prober of %s (%lld answers to untracked "
		       "clients in the window): a partial view is never reported as success",
		       w->pending[0] != '\0' ? "; " : "", w->name, lost);
		if (!w->is_noted) {
			fprintf(stderr, "clustermgmt: %s: %s\n", w->name, w->pending);
			fflush(stderr);
			w->is_noted = 1;
		}
	}
	if (w->n_probers > 0 && is_done) {
		w->state = a->want_serving ? WAIT_DONE : WAIT_IN_FLIGHT;
		w->out_at = now;
	}
}

/* --- requests in flight ------------------------------------------------------- */

int
wait_check_in_flight(struct wait_node *w, const struct wait_lb *lbs, size_t n_lbs,
                     const char *cluster, const struct wait_args *a, int64_t now)
{
	struct lb_server_state st;
	char why[300], backend[160];
	int needs_grace = n_lbs == 0, is_clear = 1;
	size_t i;

	w->in_flight[0] = '\0';
	for (i = 0; i < n_lbs; i++) {
		const struct wait_lb *lb = &lbs[i];
		int rc = -1;
		if (lb->runtime[0] != '\0' && strcmp(lb->kind, "haproxy") == 0) {
			if (lb->backend[0] != '\0')
				snprintf(backend, sizeof(backend), "%s", lb->backend);
			else
				snprintf(backend, sizeof(backend), "be_%s", cluster);
			rc = lbruntime_haproxy(lb->runtime, backend, w->name, RUNTIME_TIMEOUT_MS,
			                       &st, why, sizeof(why));
		} else if (lb->runtime[0] != '\0' && strcmp(lb->kind, "varnish") == 0) {
			lbruntime_varnish_backend(w->name, backend, sizeof(backend));
			rc = lbruntime_varnish(lb->runtime, backend, RUNTIME_TIMEOUT_MS, &st, why,
			                       sizeof(why));
		}
		if (rc == 0) {
			append(w->in_flight, sizeof(w->in_flight), "%s%s: %ld in flight",
			       w->in_flight[0] != '\0' ? "; " : "", lb->name, st.in_flight);
			is_clear &= st.in_flight == 0;
		} else {
			needs_grace = 1;
			if (lb->runtime[0] != '\0')
				append(w->in_flight, sizeof(w->in_flight), "%s%s: unknown (%s)",
				       w->in_flight[0] != '\0' ? "; " : "", lb->name, why);
		}
	}
	if (needs_grace) {
		if (w->grace_until == 0)
			w->grace_until = w->out_at + a->drain_grace_ms;
		append(w->in_flight, sizeof(w->in_flight), "%sgrace %.1fs%s",
		       w->in_flight[0] != '\0' ? "; " : "", (double)a->drain_grace_ms / 1000.0,
		       n_lbs == 0 ? " (no named load balancer with runtime access)" : "");
		is_clear &= now >= w->grace_until;
	}
	return is_clear;
}

/* --- the loop ------------------------------------------------------------ */

/* The observations of the nodes waiting for their load balancers
 * ("a,b"), with a long poll when may_block and *digest is known (>= 0). */
static int
fetch_observations(struct cli *cli, struct wait_node *nodes, int n, const struct wait_args *a,
                   int may_block, long long *digest, struct client_reply *reply, struct error *err)
{
	char *path = client_path("v1", "clusters", cli->cluster, "observations", NULL);
	char list[4096] = "", *query = NULL;
	int i, rc;

	for (i = 0; i < n; i++)
		if (nodes[i].state == WAIT_PROBES)
			append(list, sizeof(list), "%s%s", list[0] != '\0' ? "," : "",
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

/* A node nobody probed within the window: note it once, and count it
 * done once the delay has passed. */
static int
no_probers(struct wait_node *w, const struct wait_args *a, int64_t elapsed, int64_t now,
           struct error *err)
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
	if (elapsed >= a->no_probers_delay_ms) {
		w->had_no_probers = 1;
		w->state = a->want_serving ? WAIT_DONE : WAIT_IN_FLIGHT;
		w->out_at = now;
	}
	return CLI_OK;
}

static void
mark_done(struct wait_node *w, const struct wait_args *a, wait_done_fn on_done, void *ctx)
{
	w->state = WAIT_DONE;
	w->is_done = 1;
	if (on_done != NULL)
		on_done(ctx, w, a);
}

static int
count_in(const struct wait_node *nodes, int n, enum wait_state state)
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
must_poll(const struct wait_node *nodes, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (nodes[i].state == WAIT_IN_FLIGHT ||
		    (nodes[i].state == WAIT_PROBES && nodes[i].is_in_transit))
			return 1;
	return 0;
}

/* One look at the observations of every node still waiting for its load
 * balancers. */
static int
look(struct cli *cli, struct wait_node *nodes, int n, struct wait_lb *lbs, size_t n_lbs,
     const struct wait_args *a, int64_t start, long long *digest, struct error *err)
{
	struct client_reply reply;
	const json_t *node;
	int64_t now;
	size_t k;
	int i, rc;

	if ((rc = fetch_observations(cli, nodes, n, a, !must_poll(nodes, n), digest, &reply,
	                             err)) != CLI_OK)
		return rc;
	now = wait_monotonic_ms();
	json_array_foreach(json_object_get(reply.json, "nodes"), k, node)
	{
		for (i = 0; i < n; i++)
			if (nodes[i].state == WAIT_PROBES &&
			    strcmp(nodes[i].name, string_field(node, "name")) == 0)
				break;
		if (i == n)
			continue;
		wait_judge(&nodes[i], node, lbs, n_lbs, cli->cluster, a, now, now - start);
		if (n_lbs == 0 && nodes[i].state == WAIT_PROBES && nodes[i].n_probers == 0 &&
		    (rc = no_probers(&nodes[i], a, now - start, now, err)) != CLI_OK)
			break;
	}
	client_reply_free(&reply);
	return rc;
}

static int
timed_out(const struct wait_node *nodes, int n, const struct wait_args *a, struct error *err)
{
	int i;

	if (a->timeout_ms % 1000 == 0)
		snprintf(err->what, sizeof(err->what),
		         "timed out after %llds: ", (long long)a->timeout_ms / 1000);
	else
		snprintf(err->what, sizeof(err->what),
		         "timed out after %.1fs: ", (double)a->timeout_ms / 1000.0);
	for (i = 0; i < n; i++) {
		const struct wait_node *w = &nodes[i];
		if (w->state == WAIT_PROBES)
			append(err->what, sizeof(err->what),
			       "%s%s: not every load balancer has seen it %s: %s",
			       i > 0 && nodes[i - 1].state != WAIT_DONE ? "; " : "", w->name,
			       a->want_serving ? "in" : "out", w->pending);
		else if (w->state == WAIT_IN_FLIGHT)
			append(err->what, sizeof(err->what),
			       "%s%s: the load balancers stopped sending it requests, but requests "
			       "were still in flight: %s",
			       i > 0 && nodes[i - 1].state != WAIT_DONE ? "; " : "", w->name,
			       w->in_flight);
	}
	err->status = 0;
	return CLI_TIMEOUT;
}

int
wait_for_nodes(struct cli *cli, struct wait_node *nodes, int n, struct wait_lb *lbs, size_t n_lbs,
               const struct wait_args *a, wait_done_fn on_done, void *ctx, struct error *err)
{
	int64_t start = wait_monotonic_ms(), now;
	long long digest = -1;
	int i, rc;

	while (1) {
		if (count_in(nodes, n, WAIT_PROBES) > 0 &&
		    (rc = look(cli, nodes, n, lbs, n_lbs, a, start, &digest, err)) != CLI_OK)
			return rc;
		now = wait_monotonic_ms();
		for (i = 0; i < n; i++) {
			if (nodes[i].state == WAIT_DONE && !nodes[i].is_done)
				mark_done(&nodes[i], a, on_done, ctx);
			else if (nodes[i].state == WAIT_IN_FLIGHT &&
			         wait_check_in_flight(&nodes[i], lbs, n_lbs, cli->cluster, a, now))
				mark_done(&nodes[i], a, on_done, ctx);
		}
		if (count_in(nodes, n, WAIT_DONE) == n)
			return CLI_OK;
		if (wait_monotonic_ms() - start >= a->timeout_ms)
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
