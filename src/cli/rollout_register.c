/*
 * rollout_register.c - a running rollout, visible to everyone: it
 * registers with the daemon (POST /v1/clusters/{c}/rollouts), a heartbeat
 * thread sends its phase, current node and verdicts every
 * HEARTBEAT_MS (and at once when they change), and the end says how it
 * ended (PUT .../rollouts/{id}). See docs/API.md, "Rollouts".
 *
 * Why a thread: the rollout's own thread blocks for minutes in a deploy
 * command or a wait, and the heartbeat is what tells a second operator
 * that the client is still alive. The thread only reads a copy of the
 * state under a mutex and sends it, through a copy of the CLI's client
 * settings made at registration (the rollout's thread changes its own
 * during a wait: a long poll's timeout, SIGINT's stop flag); it never
 * touches the rollout.
 *
 * A daemon without the endpoint (404/405) gets a warning and the rollout
 * goes on unregistered; a registered rollout on the cluster (409) refuses
 * this one unless --force. A daemon whose store is unreachable cannot
 * register it (503): the rollout is refused, as a second operator could
 * not see it, unless --force, which starts it unregistered with a
 * warning.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rollout.h"

#define HEARTBEAT_MS 5000

static void
copy_text(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

/* The body of a heartbeat: the state as it is now. Called with the lock. */
static json_t *
state_json(const struct rollout_registration *g)
{
	json_t *doc = json_pack("{s:s, s:s, s:O}", "phase", g->phase, "current", g->current,
	                        "verdicts", g->verdicts);

	if (g->state[0] != '\0')
		json_object_set_new(doc, "state", json_string(g->state));
	if (g->message[0] != '\0')
		json_object_set_new(doc, "message", json_string(g->message));
	return doc;
}

static void
send_state(struct rollout_registration *g)
{
	struct client_reply reply;
	struct error err;
	json_t *body;
	char *path;

	pthread_mutex_lock(&g->lock);
	body = state_json(g);
	g->is_dirty = 0;
	pthread_mutex_unlock(&g->lock);
	path = client_path("v1", "clusters", g->cluster, "rollouts", g->id, NULL);
	error_clear(&err);
	if (client_call(&g->client, "PUT", path, body, &reply, &err) == CLI_OK)
		client_reply_free(&reply);
	free(path);
	json_decref(body);
}

static void *
heartbeat(void *arg)
{
	struct rollout_registration *g = arg;
	struct timespec until;
	int is_stopping;

	while (1) {
		pthread_mutex_lock(&g->lock);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += HEARTBEAT_MS / 1000;
		while (!g->is_stopping && !g->is_dirty &&
		       pthread_cond_timedwait(&g->changed, &g->lock, &until) == 0)
			;
		is_stopping = g->is_stopping;
		pthread_mutex_unlock(&g->lock);
		if (is_stopping)
			return NULL;
		send_state(g);
	}
}

int
rollout_register(struct rollout *r, struct error *err)
{
	struct rollout_registration *g = &r->registration;
	struct client_reply reply;
	json_t *body, *nodes = json_array();
	int i, rc;

	memset(g, 0, sizeof(*g));
	for (i = 0; i < r->n; i++)
		json_array_append_new(nodes, json_string(r->nodes[i].name));
	body = json_pack("{s:s, s:o, s:s, s:s, s:b}", "id", r->id, "nodes", nodes, "command",
	                 r->exec, "phase", "starting", "force", r->is_force);
	rc = cli_call(r->cli, "POST",
	              client_path("v1", "clusters", r->cli->cluster, "rollouts", NULL), body,
	              &reply, err);
	if (rc == CLI_REFUSED && (err->status == 404 || err->status == 405) &&
	    strstr(err->what, "cluster") == NULL) {
		fprintf(
		    stderr,
		    "clustermgmt: warning: the daemon does not keep a registry of rollouts; this "
		    "one is not shown to others\n");
		error_clear(err);
		return CLI_OK;
	}
	if (rc == CLI_REFUSED && err->status == 503 && strstr(err->what, "store") != NULL) {
		if (!r->is_force)
			return rc; /* the daemon's sentence says why, and what --force does */
		fprintf(stderr,
		        "clustermgmt: warning: %s; --force: going on unregistered, other "
		        "operators will neither see this rollout nor be refused a second "
		        "one\n",
		        err->what);
		error_clear(err);
		return CLI_OK;
	}
	if (rc != CLI_OK)
		return rc;
	client_reply_free(&reply);
	g->client = r->cli->client;
	g->client.stop = NULL; /* SIGINT stops the rollout, whose end is still told */
	copy_text(g->cluster, sizeof(g->cluster), r->cli->cluster);
	copy_text(g->id, sizeof(g->id), r->id);
	copy_text(g->phase, sizeof(g->phase), "starting");
	g->verdicts = json_object();
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->changed, NULL);
	if (pthread_create(&g->thread, NULL, heartbeat, g) != 0) {
		json_decref(g->verdicts);
		pthread_cond_destroy(&g->changed);
		pthread_mutex_destroy(&g->lock);
		fprintf(stderr, "clustermgmt: warning: no heartbeat thread: the registry will show "
		                "this rollout's client as gone\n");
		return CLI_OK;
	}
	g->is_active = 1;
	return CLI_OK;
}

void
rollout_report(struct rollout *r, const char *phase, const char *node, const char *verdict)
{
	struct rollout_registration *g = &r->registration;

	if (!g->is_active)
		return;
	pthread_mutex_lock(&g->lock);
	if (phase != NULL)
		copy_text(g->phase, sizeof(g->phase), phase);
	if (node != NULL)
		copy_text(g->current, sizeof(g->current), node);
	if (node != NULL && verdict != NULL)
		json_object_set_new(g->verdicts, node, json_string(verdict));
	g->is_dirty = 1;
	pthread_cond_signal(&g->changed);
	pthread_mutex_unlock(&g->lock);
}

void
rollout_unregister(struct rollout *r, const char *state, const char *message)
{
	struct rollout_registration *g = &r->registration;

	if (!g->is_active)
		return;
	pthread_mutex_lock(&g->lock);
	g->is_stopping = 1;
	pthread_cond_signal(&g->changed);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	copy_text(g->state, sizeof(g->state), state);
	copy_text(g->phase, sizeof(g->phase), "finished");
	copy_text(g->message, sizeof(g->message), message);
	send_state(g);
	json_decref(g->verdicts);
	pthread_cond_destroy(&g->changed);
	pthread_mutex_destroy(&g->lock);
	g->is_active = 0;
}
