/*
 * drain.c - the drain proof's judgement (see drain.h for the rules): one
 * node's observations and the load balancers' own word, through struct
 * drain_access, turned into a verdict per load balancer.
 *
 * The server gives each prober's age by its own clock, so recency never
 * depends on the caller's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drain.h"
#include "util/strbuf.h"

#define STALE_INTERVALS 3 /* a prober quiet this many intervals... */
#define STALE_MIN_MS 1000 /* ...and at least this long has gone silent */

void
drain_args_default(struct drain_args *a, int want_serving)
{
	memset(a, 0, sizeof(*a));
	a->want_serving = want_serving;
	a->fall = DRAIN_DEFAULT_FALL;
	a->window_ms = DRAIN_DEFAULT_WINDOW_MS;
	a->no_probers_delay_ms = DRAIN_DEFAULT_NO_PROBERS_DELAY_MS;
	a->drain_grace_ms = DRAIN_DEFAULT_DRAIN_GRACE_MS;
}

/* --- direct access ------------------------------------------------------ */

static int
direct_haproxy(void *ctx, const char *addr, const char *backend, const char *server,
               struct lb_server_state *out, char *why, size_t why_size)
{
	(void)ctx;
	return lbruntime_haproxy(addr, backend, server, DRAIN_RUNTIME_TIMEOUT_MS, out, why,
	                         why_size);
}

static int
direct_varnish(void *ctx, const char *dir, const char *backend, struct lb_server_state *out,
               char *why, size_t why_size)
{
	(void)ctx;
	return lbruntime_varnish(dir, backend, DRAIN_RUNTIME_TIMEOUT_MS, out, why, why_size);
}

static int
direct_varnish_happy(void *ctx, const char *dir, const char *backend, unsigned long long *bits,
                     char *why, size_t why_size)
{
	(void)ctx;
	return lbruntime_varnish_happy(dir, backend, DRAIN_RUNTIME_TIMEOUT_MS, bits, why, why_size);
}

static void
direct_note(void *ctx, const char *node, const char *text)
{
	(void)ctx;
	(void)node;
	fprintf(stderr, "clustermgmt: %s\n", text);
	fflush(stderr);
}

void
drain_access_direct(struct drain_access *out)
{
	memset(out, 0, sizeof(*out));
	out->haproxy = direct_haproxy;
	out->varnish = direct_varnish;
	out->varnish_happy = direct_varnish_happy;
	out->note = direct_note;
}

static void
note(const struct drain_access *acc, const char *node, const char *text)
{
	if (acc->note != NULL)
		acc->note(acc->ctx, node, text);
}

void
drain_lb_backend(const struct drain_lb *lb, const char *cluster, char *buf, size_t size)
{
	if (lb->backend[0] != '\0')
		snprintf(buf, size, "%s", lb->backend);
	else
		snprintf(buf, size, "be_%s", cluster);
}

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

/* --- judging one node's probes ----------------------------------------- */

static int
is_agent(const json_t *p)
{
	return strcmp(string_field(p, "protocol"), "agent") == 0;
}

/* Has prober p had the wanted answer often enough since the change? An
 * agent-check's answer is applied at once; HTTP probes need `fall`. */
static int
prober_is_done(const json_t *p, const struct drain_args *a)
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
prober_is_received(const json_t *p, const struct drain_args *a)
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

/* "agent answered 'maint'", "2 failing answers". */
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
prober_progress(const json_t *p, const struct drain_args *a, char *buf, size_t size)
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
unnamed_check_is_covered(const json_t *p, const json_t *probes, const struct drain_args *a)
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
runtime_says(const struct drain_lb *lb, const char *cluster, const char *node,
             const struct drain_args *a, const struct drain_access *acc, struct lb_server_state *st,
             char *signal, size_t size)
{
	char backend[160], why[300];

	if (lb->runtime[0] == '\0' || strcmp(lb->kind, "haproxy") != 0 || acc->haproxy == NULL)
		return 0;
	drain_lb_backend(lb, cluster, backend, sizeof(backend));
	if (acc->haproxy(acc->ctx, lb->runtime, backend, node, st, why, sizeof(why)) != 0)
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
varnish_marked_sick(const struct drain_lb *lb, const char *node, const struct drain_args *a,
                    const struct drain_access *acc)
{
	unsigned long long bits, mask = (a->fall >= 64 ? ~0ULL : (1ULL << a->fall) - 1);
	char backend[160], why[300];

	if (a->want_serving || lb->runtime[0] == '\0' || strcmp(lb->kind, "varnish") != 0 ||
	    acc->varnish_happy == NULL)
		return 0;
	lbruntime_varnish_backend(node, backend, sizeof(backend));
	return acc->varnish_happy(acc->ctx, lb->runtime, backend, &bits, why, sizeof(why)) == 0 &&
	       (bits & mask) == 0;
}

/* Judges one named load balancer from its probers in probes. Returns 1
 * when it has acted (signal says how), else 0 with why filled. */
static int
judge_named(struct drain_lb *lb, const char *cluster, const char *node, const json_t *probes,
            const struct drain_args *a, const struct drain_access *acc, int64_t waited,
            char *signal, size_t ssize, char *why, size_t wsize, int *is_in_transit)
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
	if (lb->kind[0] != '\0' && runtime_says(lb, cluster, node, a, acc, &st, signal, ssize))
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
		    !varnish_marked_sick(lb, node, a, acc)) {
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
report_silent(struct drain_lb *lb, const char *node, const char *why,
              const struct drain_access *acc)
{
	char text[600];

	if (lb->is_reported || strstr(why, "has not probed") == NULL)
		return;
	lb->is_reported = 1;
	snprintf(text, sizeof(text),
	         "load balancer %s %s (%s); is it running, configured with `lbconfig --lb %s`?",
	         lb->name, why, node, lb->name);
	note(acc, node, text);
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

/* Judges the named load balancers lbs[0..n_lbs); probers that are not
 * one of them are counted in the evidence and ignored. Returns whether
 * every one has acted. */
static int
judge_named_lbs(struct drain_node *w, const json_t *probes, struct drain_lb *lbs, size_t n_lbs,
                const char *cluster, const struct drain_args *a, const struct drain_access *acc,
                int64_t waited)
{
	char signal[200], why[300];
	const json_t *p;
	size_t i, k, ignored = 0;
	int is_done = 1;

	for (i = 0; i < n_lbs; i++) {
		struct drain_lb_verdict *v = &w->lb[i];
		w->n_probers++;
		v->signal[0] = v->lacks[0] = '\0';
		v->has_acted = 0;
		if (judge_named(&lbs[i], cluster, w->name, probes, a, acc, waited, signal,
		                sizeof(signal), why, sizeof(why), &w->is_in_transit)) {
			if (w->lb_at[i] == 0)
				w->lb_at[i] = waited > 0 ? waited : 1;
			v->has_acted = 1;
			snprintf(v->signal, sizeof(v->signal), "%s at +%.2fs", signal,
			         (double)w->lb_at[i] / 1000.0);
			strbuf_appendf(w->evidence, sizeof(w->evidence), "%s%s: %s at +%.2fs",
			               w->evidence[0] != '\0' ? "; " : "", lbs[i].name, signal,
			               (double)w->lb_at[i] / 1000.0);
			continue;
		}
		is_done = 0;
		snprintf(v->lacks, sizeof(v->lacks), "%s", why);
		report_silent(&lbs[i], w->name, why, acc);
		strbuf_appendf(w->pending, sizeof(w->pending), "%s%s %s",
		               w->pending[0] != '\0' ? "; " : "", lbs[i].name, why);
	}
	json_array_foreach(probes, i, p)
	{
		for (k = 0; k < n_lbs; k++)
			if (strcmp(string_field(p, "lb"), lbs[k].name) == 0)
				break;
		ignored += k == n_lbs;
	}
	if (ignored > 0)
		strbuf_appendf(w->evidence, sizeof(w->evidence),
		               "; %zu prober%s not a named load balancer (ignored)", ignored,
		               ignored == 1 ? "" : "s");
	return is_done;
}

/* Has prober p (no load balancer named) acted? When it has, signal says
 * how; *is_in_transit is set when it was told but has not read it yet. */
static int
prober_has_acted(const json_t *p, const json_t *probes, const struct drain_args *a, char *signal,
                 size_t size, int *is_in_transit)
{
	const char *lb = json_string_value(json_object_get(p, "lb"));
	const json_t *q;
	size_t k;

	if (prober_is_done(p, a) && !prober_is_received(p, a)) {
		*is_in_transit = 1;
		return 0;
	}
	if (prober_is_done(p, a)) {
		prober_signal(p, signal, size);
		return 1;
	}
	if (lb != NULL && !a->want_serving && !is_agent(p)) {
		/* a named HAProxy whose agent took it out */
		json_array_foreach(probes, k, q)
		{
			if (is_agent(q) && strcmp(string_field(q, "lb"), lb) == 0 &&
			    prober_is_done(q, a) && prober_is_received(q, a)) {
				snprintf(signal, size, "covered by its agent-check");
				return 1;
			}
		}
		return 0;
	}
	if (unnamed_check_is_covered(p, probes, a)) {
		snprintf(signal, size, "covered by the agent-check at %s",
		         string_field(p, "address"));
		return 1;
	}
	return 0;
}

/* Judges every prober seen (no load balancer is named). Returns whether
 * every one has acted. */
static int
judge_all_probers(struct drain_node *w, const json_t *probes, const struct drain_args *a)
{
	char who[200], signal[200], why[300];
	const json_t *p;
	int is_done = 1;
	size_t i;

	json_array_foreach(probes, i, p)
	{
		const char *lb = json_string_value(json_object_get(p, "lb"));

		w->n_probers++;
		if (lb != NULL)
			snprintf(who, sizeof(who), "%s%s", lb, is_agent(p) ? " (agent-check)" : "");
		else
			prober_name(p, who, sizeof(who));
		if (prober_has_acted(p, probes, a, signal, sizeof(signal), &w->is_in_transit)) {
			strbuf_appendf(w->evidence, sizeof(w->evidence), "%s%s: %s",
			               w->evidence[0] != '\0' ? "; " : "", who, signal);
			continue;
		}
		is_done = 0;
		if (prober_is_done(p, a))
			snprintf(why, sizeof(why), "was told, and has not read it yet");
		else
			prober_progress(p, a, why, sizeof(why));
		strbuf_appendf(w->pending, sizeof(w->pending), "%s%s %s",
		               w->pending[0] != '\0' ? "; " : "", who, why);
	}
	return is_done;
}

void
drain_judge(struct drain_node *w, const json_t *node, struct drain_lb *lbs, size_t n_lbs,
            const char *cluster, const struct drain_args *a, const struct drain_access *acc,
            int64_t now, int64_t waited)
{
	const json_t *probes = json_object_get(node, "probes");
	long long lost = untracked(node, n_lbs);
	int is_done;

	w->pending[0] = w->evidence[0] = '\0';
	w->n_probers = 0;
	w->is_in_transit = 0;
	if (n_lbs > 0)
		is_done = judge_named_lbs(w, probes, lbs, n_lbs, cluster, a, acc, waited);
	else
		is_done = judge_all_probers(w, probes, a);
	if (lost > 0) {
		is_done = 0;
		strbuf_appendf(
		    w->pending, sizeof(w->pending),
		    "%sthe daemon could not track every prober of %s (%lld answers to untracked "
		    "clients in the window): a partial view is never reported as success",
		    w->pending[0] != '\0' ? "; " : "", w->name, lost);
		if (!w->is_noted) {
			char text[900];
			snprintf(text, sizeof(text), "%s: %s", w->name, w->pending);
			note(acc, w->name, text);
			w->is_noted = 1;
		}
	}
	if (w->n_probers > 0 && is_done) {
		w->state = a->want_serving ? DRAIN_DONE : DRAIN_IN_FLIGHT;
		w->out_at = now;
	}
}

/* --- requests in flight ------------------------------------------------------- */

int
drain_check_in_flight(struct drain_node *w, const struct drain_lb *lbs, size_t n_lbs,
                      const char *cluster, const struct drain_args *a,
                      const struct drain_access *acc, int64_t now)
{
	struct lb_server_state st;
	char why[300], backend[160];
	int needs_grace = n_lbs == 0, is_clear = 1;
	size_t i;

	w->in_flight[0] = '\0';
	for (i = 0; i < n_lbs; i++) {
		const struct drain_lb *lb = &lbs[i];
		int rc = -1;
		snprintf(why, sizeof(why), "no runtime access");
		if (lb->runtime[0] != '\0' && strcmp(lb->kind, "haproxy") == 0 &&
		    acc->haproxy != NULL) {
			drain_lb_backend(lb, cluster, backend, sizeof(backend));
			rc = acc->haproxy(acc->ctx, lb->runtime, backend, w->name, &st, why,
			                  sizeof(why));
		} else if (lb->runtime[0] != '\0' && strcmp(lb->kind, "varnish") == 0 &&
		           acc->varnish != NULL) {
			lbruntime_varnish_backend(w->name, backend, sizeof(backend));
			rc = acc->varnish(acc->ctx, lb->runtime, backend, &st, why, sizeof(why));
		}
		w->lb[i].in_flight = rc == 0 ? st.in_flight : -1;
		if (rc == 0) {
			strbuf_appendf(w->in_flight, sizeof(w->in_flight), "%s%s: %ld in flight",
			               w->in_flight[0] != '\0' ? "; " : "", lb->name, st.in_flight);
			is_clear &= st.in_flight == 0;
		} else {
			needs_grace = 1;
			if (lb->runtime[0] != '\0')
				strbuf_appendf(w->in_flight, sizeof(w->in_flight),
				               "%s%s: unknown (%s)",
				               w->in_flight[0] != '\0' ? "; " : "", lb->name, why);
		}
	}
	if (needs_grace) {
		if (w->grace_until == 0)
			w->grace_until = w->out_at + a->drain_grace_ms;
		strbuf_appendf(w->in_flight, sizeof(w->in_flight), "%sgrace %.1fs%s",
		               w->in_flight[0] != '\0' ? "; " : "",
		               (double)a->drain_grace_ms / 1000.0,
		               n_lbs == 0 ? " (no named load balancer with runtime access)" : "");
		is_clear &= now >= w->grace_until;
	}
	return is_clear;
}

int
drain_no_probers(struct drain_node *w, const struct drain_args *a, const struct drain_access *acc,
                 int64_t elapsed, int64_t now)
{
	char text[300];

	snprintf(w->pending, sizeof(w->pending), "nothing probes it");
	if (a->require_probers)
		return -1;
	if (!w->is_noted) {
		snprintf(text, sizeof(text),
		         "nothing probed %s in the last %llds; waiting %llds instead", w->name,
		         (long long)a->window_ms / 1000, (long long)a->no_probers_delay_ms / 1000);
		note(acc, w->name, text);
		w->is_noted = 1;
	}
	if (elapsed >= a->no_probers_delay_ms) {
		w->had_no_probers = 1;
		w->state = a->want_serving ? DRAIN_DONE : DRAIN_IN_FLIGHT;
		w->out_at = now;
	}
	return 0;
}

int
drain_must_poll(const struct drain_node *w)
{
	return w->state == DRAIN_IN_FLIGHT || (w->state == DRAIN_PROBES && w->is_in_transit);
}
