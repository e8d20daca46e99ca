/*
 * checker.c - application checks on a thread of their own (checker.h).
 *
 * One round: copy the (cluster, node, url) of every node with a check out
 * of the current snapshot, start one libcurl easy handle per check on a
 * multi handle, drive them until all finished (each has its own timeout),
 * fold each result into the node's state and publish it in observe.h.
 * Then sleep until the next round is due. The thread is an engine reader:
 * it holds a snapshot only while copying and is offline the rest of the
 * time (checks, sleeps), so it never holds old snapshots up. Sleeping and
 * polling both go through curl_multi_poll, which checker_stop interrupts
 * with curl_multi_wakeup.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/url.h"
#include "../util/xalloc.h"
#include "checker.h"

#define POLL_MS 200        /* at most between two curl_multi_perform */
#define NAP_MAX_MS 3600000 /* curl_multi_poll takes an int */

struct check {
	char cluster[NODE_NAME_MAX + 1];
	char node[NODE_NAME_MAX + 1];
	char *url;
	int is_seen; /* still in the snapshot */
	CURL *easy;  /* during a round */
	char curl_error[CURL_ERROR_SIZE];
	struct observe_check state;
};

struct checker {
	pthread_t thread;
	struct engine *engine;
	struct observe *observe;
	struct checker_options opts;
	int reader_id;
	_Atomic int is_stopping;
	CURLM *multi;
	struct check *checks;
	size_t n_checks, cap_checks;
};

/* --- the list of checks ----------------------------------------------- */

static struct check *
check_find(struct checker *c, const char *cluster, const char *node)
{
	size_t i;

	for (i = 0; i < c->n_checks; i++)
		if (strcmp(c->checks[i].node, node) == 0 &&
		    strcmp(c->checks[i].cluster, cluster) == 0)
			return &c->checks[i];
	return NULL;
}

static void
check_reset(struct check *k, const char *url)
{
	free(k->url);
	k->url = xstrdup(url);
	memset(&k->state, 0, sizeof(k->state));
	k->state.is_up = 1; /* innocent until proven failing */
}

static void
check_add(struct checker *c, const char *cluster, const char *node, const char *url)
{
	struct check *k;

	if (c->n_checks == c->cap_checks) {
		size_t cap = c->cap_checks == 0 ? 16 : c->cap_checks * 2;
		c->checks = xreallocarray(c->checks, cap, sizeof(*c->checks));
		c->cap_checks = cap;
	}
	k = &c->checks[c->n_checks++];
	memset(k, 0, sizeof(*k));
	snprintf(k->cluster, sizeof(k->cluster), "%s", cluster);
	snprintf(k->node, sizeof(k->node), "%s", node);
	check_reset(k, url);
	k->is_seen = 1;
}

/* Brings the list in line with the current snapshot: new checks start up,
 * a changed URL starts over, removed ones are forgotten (also in observe).
 * Online only while it reads the snapshot (engine_snapshot brings it). */
static void
checks_sync(struct checker *c)
{
	const struct model *m = engine_snapshot(c->engine);
	size_t i, j;

	for (i = 0; i < c->n_checks; i++)
		c->checks[i].is_seen = 0;
	for (i = 0; i < m->n_clusters; i++) {
		const struct cluster *cl = &m->clusters[i];
		for (j = 0; j < cl->n_nodes; j++) {
			const struct node *n = cluster_node(cl, j);
			struct check *k;
			if (n->check == NULL || n->check[0] == '\0')
				continue;
			if ((k = check_find(c, cl->name, n->name)) == NULL) {
				check_add(c, cl->name, n->name, n->check);
				continue;
			}
			if (strcmp(k->url, n->check) != 0) {
				check_reset(k, n->check);
				observe_check_clear(c->observe, k->cluster, k->node);
			}
			k->is_seen = 1;
		}
	}
	engine_reader_offline(c->engine, c->reader_id);
	for (i = 0; i < c->n_checks;) {
		struct check *k = &c->checks[i];
		if (k->is_seen) {
			i++;
			continue;
		}
		observe_check_clear(c->observe, k->cluster, k->node);
		free(k->url);
		*k = c->checks[--c->n_checks];
	}
}

/* --- one round --------------------------------------------------------- */

static void
check_begin(struct checker *c, struct check *k)
{
	CURL *easy = curl_easy_init();

	if (easy == NULL)
		abort();
	k->curl_error[0] = '\0';
	curl_easy_setopt(easy, CURLOPT_URL, k->url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)c->opts.timeout_ms);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "clustermgmt-check/" CM_VERSION);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, url_discard_body);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, k->curl_error);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, k);
	k->easy = easy;
	curl_multi_add_handle(c->multi, easy);
}

/* Folds one result into k's state; logs when the node goes down or up. */
static void
check_result(struct checker *c, struct check *k, int is_pass, const char *why, int64_t now)
{
	struct observe_check *s = &k->state;
	int was_pass = s->last_at != 0 && s->last_error[0] == '\0';
	int was_up = s->is_up;

	s->consecutive = s->last_at != 0 && was_pass == is_pass ? s->consecutive + 1 : 1;
	s->last_at = now;
	snprintf(s->last_error, sizeof(s->last_error), "%s", is_pass ? "" : why);
	if (is_pass && !s->is_up && s->consecutive >= (uint32_t)c->opts.rise)
		s->is_up = 1;
	else if (!is_pass && s->is_up && s->consecutive >= (uint32_t)c->opts.fall)
		s->is_up = 0;
	if (was_up && !s->is_up)
		log_kv(LOG_WARN, "application check failing: probes now answer node is down",
		       "cluster", k->cluster, "node", k->node, "check", k->url, "error", why, NULL);
	else if (!was_up && s->is_up)
		log_kv(LOG_INFO, "application check passing again", "cluster", k->cluster, "node",
		       k->node, "check", k->url, NULL);
	observe_check_set(c->observe, k->cluster, k->node, s);
}

static void
check_finish(struct checker *c, CURL *easy, CURLcode rc, int64_t now)
{
	struct check *k = NULL;
	long code = 0;
	char why[OBSERVE_ERROR_MAX + 1];

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&k);
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
	if (rc == CURLE_OPERATION_TIMEDOUT)
		snprintf(why, sizeof(why), "no answer within %lld ms",
		         (long long)c->opts.timeout_ms);
	else if (rc != CURLE_OK)
		snprintf(why, sizeof(why), "%.*s", (int)sizeof(why) - 1,
		         k->curl_error[0] != '\0' ? k->curl_error : curl_easy_strerror(rc));
	else
		snprintf(why, sizeof(why), "HTTP %ld", code);
	check_result(c, k, rc == CURLE_OK && code >= 200 && code < 400, why, now);
	curl_multi_remove_handle(c->multi, easy);
	curl_easy_cleanup(easy);
	k->easy = NULL;
}

/* Waits up to ms, or until a transfer needs attention or checker_stop.
 * The thread is offline here: no need to wake for the engine's sake. */
static void
nap(struct checker *c, int64_t ms)
{
	if (ms > NAP_MAX_MS)
		ms = NAP_MAX_MS;
	if (ms > 0)
		curl_multi_poll(c->multi, NULL, 0, (int)ms, NULL);
}

static void
round_run(struct checker *c)
{
	int running = 0, left;
	CURLMsg *msg;
	size_t i;

	for (i = 0; i < c->n_checks; i++)
		check_begin(c, &c->checks[i]);
	do {
		curl_multi_perform(c->multi, &running);
		while ((msg = curl_multi_info_read(c->multi, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE)
				check_finish(c, msg->easy_handle, msg->data.result, time_now_ms());
		if (running > 0)
			nap(c, POLL_MS);
	} while (running > 0 && !atomic_load(&c->is_stopping));
	for (i = 0; i < c->n_checks; i++) { /* only when stopping */
		if (c->checks[i].easy == NULL)
			continue;
		curl_multi_remove_handle(c->multi, c->checks[i].easy);
		curl_easy_cleanup(c->checks[i].easy);
		c->checks[i].easy = NULL;
	}
}

static void *
checker_main(void *arg)
{
	struct checker *c = arg;

	c->reader_id = engine_reader_register(c->engine); /* on this thread */
	while (!atomic_load(&c->is_stopping)) {
		int64_t due = time_now_ms() + c->opts.interval_ms, now;
		checks_sync(c);
		round_run(c);
		while (!atomic_load(&c->is_stopping) && (now = time_now_ms()) < due)
			nap(c, due - now);
	}
	engine_reader_unregister(c->engine, c->reader_id);
	return NULL;
}

/* --- start and stop ----------------------------------------------------- */

struct checker *
checker_start(struct engine *e, struct observe *o, const struct checker_options *opts,
              struct error *err)
{
	struct checker *c = xcalloc(1, sizeof(*c));

	c->engine = e;
	c->observe = o;
	c->opts = *opts;
	if ((c->multi = curl_multi_init()) == NULL) {
		free(c);
		error_set(err, 500, "cannot start the application checker (libcurl)");
		return NULL;
	}
	if (pthread_create(&c->thread, NULL, checker_main, c) != 0) {
		curl_multi_cleanup(c->multi);
		free(c);
		error_set(err, 500, "cannot start the application checker thread");
		return NULL;
	}
	return c;
}

void
checker_stop(struct checker *c)
{
	size_t i;

	if (c == NULL)
		return;
	atomic_store(&c->is_stopping, 1);
	curl_multi_wakeup(c->multi);
	pthread_join(c->thread, NULL);
	curl_multi_cleanup(c->multi);
	for (i = 0; i < c->n_checks; i++)
		free(c->checks[i].url);
	free(c->checks);
	free(c);
}
