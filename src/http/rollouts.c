/*
 * rollouts.c - the registry of rollouts in progress (see rollouts.h).
 *
 * One table for the daemon, guarded by one mutex: every worker thread may
 * answer these requests, and each holds the lock only to copy an entry in
 * or out (no I/O, no allocation beyond the entry's JSON). An entry keeps
 * what the client sent as JSON values checked here (strings of bounded
 * length, the node list, the verdicts), plus who registered it, from
 * where, and when it last beat.
 *
 * A rollout is "running" until its client says how it ended; one that has
 * not beaten for ROLLOUT_STALE_MS is shown as "client gone" (it may be
 * dead, or only cut off: it still blocks a second rollout, which "force"
 * (rollout --force) overrides, so that an operator decides).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "rollouts.h"
#include "../util/timefmt.h"

#define TEXT_MAX 512 /* phase, current node, message, command: bytes */
#define ROLLOUT_NODES_MAX 1024
#define ID_MAX 16
#define VERDICT_MAX 32 /* "pass", "fail", "inconclusive" */

struct entry {
	int is_used;
	char cluster[NODE_NAME_MAX + 1];
	char id[ID_MAX + 1];
	char started_by[96];
	char from[64];
	int64_t started_at, beat_at; /* wall clock, ms */
	int is_finished;
	json_t *doc; /* nodes, command, phase, current, verdicts, state, message */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry table[ROLLOUTS_MAX];

static const char *const states[] = {"running",      "done",        "failed", "verdict fail",
                                     "inconclusive", "interrupted", NULL};

static int
is_finished_state(const char *s)
{
	return strcmp(s, "running") != 0;
}

/* Checks the fields a client may send; fills err (400) on the first bad
 * one. is_new: the registration, whose id and nodes are required. */
static int
check_fields(const json_t *body, int is_new, struct error *err)
{
	static const char *const texts[] = {"command", "phase", "current", "message", NULL};
	const char *key, *allowed_new[] = {"id",      "nodes",   "command", "phase",
	                                   "current", "message", "force",   NULL};
	const char *allowed_put[] = {"phase", "current", "message", "verdicts", "state", NULL};
	const char *const *allowed = is_new ? allowed_new : allowed_put;
	json_t *v, *item;
	size_t i, k;

	json_object_foreach((json_t *)body, key, v)
	{
		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], key) != 0; i++)
			;
		if (allowed[i] == NULL)
			return error_set(err, 400, "unknown field \"%s\"", key);
	}
	for (i = 0; texts[i] != NULL; i++) {
		v = json_object_get(body, texts[i]);
		if (v != NULL && (!json_is_string(v) || json_string_length(v) > TEXT_MAX ||
		                  strlen(json_string_value(v)) != json_string_length(v)))
			return error_set(err, 400,
			                 "field \"%s\" must be a string of at most %d bytes",
			                 texts[i], TEXT_MAX);
	}
	if (is_new) {
		v = json_object_get(body, "id");
		if (v == NULL || !json_is_string(v) || json_string_length(v) < 1 ||
		    json_string_length(v) > ID_MAX ||
		    !node_name_is_valid(json_string_value(v), json_string_length(v)))
			return error_set(err, 400, "field \"id\" must be 1 to %d letters or digits",
			                 ID_MAX);
		v = json_object_get(body, "nodes");
		if (v == NULL || !json_is_array(v) || json_array_size(v) > ROLLOUT_NODES_MAX)
			return error_set(err, 400,
			                 "field \"nodes\" must be a list of at most %d names",
			                 ROLLOUT_NODES_MAX);
		json_array_foreach(v, k, item)
		{
			if (!json_is_string(item) ||
			    !node_name_is_valid(json_string_value(item), json_string_length(item)))
				return error_set(err, 400,
				                 "field \"nodes\" holds an invalid node name");
		}
		v = json_object_get(body, "force");
		if (v != NULL && !json_is_boolean(v))
			return error_set(err, 400, "field \"force\" must be true or false");
		return 0;
	}
	v = json_object_get(body, "state");
	if (v != NULL) {
		for (i = 0; states[i] != NULL; i++)
			if (json_is_string(v) && strcmp(json_string_value(v), states[i]) == 0)
				break;
		if (states[i] == NULL)
			return error_set(err, 400,
			                 "field \"state\" must be running, done, failed, verdict "
			                 "fail, inconclusive or interrupted");
	}
	v = json_object_get(body, "verdicts");
	if (v != NULL) {
		if (!json_is_object(v) || json_object_size(v) > ROLLOUT_NODES_MAX)
			return error_set(err, 400,
			                 "field \"verdicts\" must be an object of at most %d "
			                 "nodes",
			                 ROLLOUT_NODES_MAX);
		json_object_foreach(v, key, item)
		{
			if (!node_name_is_valid(key, strlen(key)) || !json_is_string(item) ||
			    json_string_length(item) > VERDICT_MAX)
				return error_set(
				    err, 400,
				    "field \"verdicts\" maps node names to short strings");
		}
	}
	return 0;
}

static json_t *
entry_json(const struct entry *e, int64_t now)
{
	json_t *doc = json_deep_copy(e->doc);
	const char *state = json_string_value(json_object_get(doc, "state"));
	int is_gone = !e->is_finished && now - e->beat_at > ROLLOUT_STALE_MS;
	char at[40], beat[40];

	time_format_rfc3339(e->started_at, at, sizeof(at));
	time_format_rfc3339(e->beat_at, beat, sizeof(beat));
	json_object_set_new(doc, "id", json_string(e->id));
	json_object_set_new(doc, "cluster", json_string(e->cluster));
	json_object_set_new(doc, "started_by", json_string(e->started_by));
	json_object_set_new(doc, "from", json_string(e->from));
	json_object_set_new(doc, "started_at", json_string(at));
	json_object_set_new(doc, "heartbeat_at", json_string(beat));
	json_object_set_new(doc, "heartbeat_age_ms", json_integer(now - e->beat_at));
	json_object_set_new(doc, "client_gone", json_boolean(is_gone));
	if (is_gone || state == NULL)
		json_object_set_new(doc, "state", json_string(is_gone ? "client gone" : "running"));
	return doc;
}

void
rollouts_get(struct request *r, const struct route *rt)
{
	json_t *list = json_array();
	int64_t now = time_now_ms(), newest;
	int i, picked[ROLLOUTS_MAX], n = 0, k, best;

	if (model_find_cluster(request_snapshot(r), rt->cluster) == NULL) {
		json_decref(list);
		reply_error(r, 404, json_pack("{s:s}", "entry", rt->cluster),
		            "cluster '%s' not found", rt->cluster);
		return;
	}
	pthread_mutex_lock(&lock);
	for (i = 0; i < ROLLOUTS_MAX; i++)
		picked[i] = 0;
	/* newest first: a selection by start time, ROLLOUTS_MAX is small */
	for (k = 0; k < ROLLOUTS_MAX; k++) {
		best = -1;
		newest = INT64_MIN;
		for (i = 0; i < ROLLOUTS_MAX; i++)
			if (table[i].is_used && !picked[i] &&
			    strcmp(table[i].cluster, rt->cluster) == 0 &&
			    table[i].started_at >= newest) {
				newest = table[i].started_at;
				best = i;
			}
		if (best < 0)
			break;
		picked[best] = 1;
		json_array_append_new(list, entry_json(&table[best], now));
		n++;
	}
	pthread_mutex_unlock(&lock);
	reply_json(r, 200, json_pack("{s:s, s:o}", "cluster", rt->cluster, "rollouts", list));
}

/* A free slot, or the oldest finished or silent entry's; -1 when every
 * entry is a live rollout. Called with the lock held. */
static int
slot_for_new(int64_t now)
{
	int i, oldest = -1;

	for (i = 0; i < ROLLOUTS_MAX; i++) {
		if (!table[i].is_used)
			return i;
		if ((table[i].is_finished || now - table[i].beat_at > 10 * ROLLOUT_STALE_MS) &&
		    (oldest < 0 || table[i].beat_at < table[oldest].beat_at))
			oldest = i;
	}
	return oldest;
}

void
rollouts_post(struct request *r, const struct route *rt)
{
	struct error err;
	json_t *body, *doc, *conflict = NULL;
	int64_t now = time_now_ms();
	int i, slot, is_force;
	const char *id;

	if (model_find_cluster(request_snapshot(r), rt->cluster) == NULL) {
		reply_error(r, 404, json_pack("{s:s}", "entry", rt->cluster),
		            "cluster '%s' not found", rt->cluster);
		return;
	}
	if ((body = request_json_body(r, &err)) == NULL || check_fields(body, 1, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	id = json_string_value(json_object_get(body, "id"));
	is_force = json_is_true(json_object_get(body, "force"));
	doc = json_pack("{s:O, s:s}", "nodes", json_object_get(body, "nodes"), "state", "running");
	for (i = 0; i < 3; i++) {
		static const char *const keys[] = {"command", "phase", "current"};
		json_t *v = json_object_get(body, keys[i]);
		json_object_set(doc, keys[i], v != NULL ? v : json_null());
	}
	json_object_set_new(doc, "verdicts", json_object());
	pthread_mutex_lock(&lock);
	for (i = 0; i < ROLLOUTS_MAX; i++) {
		struct entry *e = &table[i];
		if (!e->is_used || strcmp(e->cluster, rt->cluster) != 0 || e->is_finished)
			continue;
		if (strcmp(e->id, id) == 0 || !is_force) {
			conflict = entry_json(e, now);
			break;
		}
		/* --force: the other one is shown as overridden */
		e->is_finished = 1;
		json_object_set_new(e->doc, "state", json_string("interrupted"));
		json_object_set_new(e->doc, "message",
		                    json_sprintf("overridden by rollout %s (--force)", id));
	}
	slot = conflict == NULL ? slot_for_new(now) : -1;
	if (slot >= 0) {
		struct entry *e = &table[slot];
		json_decref(e->doc);
		memset(e, 0, sizeof(*e));
		e->is_used = 1;
		snprintf(e->cluster, sizeof(e->cluster), "%s", rt->cluster);
		snprintf(e->id, sizeof(e->id), "%s", id);
		snprintf(e->started_by, sizeof(e->started_by), "%s", r->who);
		snprintf(e->from, sizeof(e->from), "%s", r->address);
		e->started_at = e->beat_at = now;
		e->doc = doc;
		doc = entry_json(e, now);
	}
	pthread_mutex_unlock(&lock);
	json_decref(body);
	if (conflict != NULL) {
		json_decref(doc);
		reply_error(r, 409, json_pack("{s:o}", "rollout", conflict),
		            "rollout %s by %s is in progress on cluster '%s'%s; start another with "
		            "--force only if it is dead",
		            json_string_value(json_object_get(conflict, "id")),
		            json_string_value(json_object_get(conflict, "started_by")), rt->cluster,
		            json_is_true(json_object_get(conflict, "client_gone"))
		                ? " (its client has not been heard from: it may be dead)"
		                : "");
		return;
	}
	if (slot < 0) {
		json_decref(doc);
		reply_error(r, 503, NULL, "%d rollouts are in progress: no room for another",
		            ROLLOUTS_MAX);
		return;
	}
	reply_json(r, 201, json_pack("{s:o}", "rollout", doc));
}

void
rollout_put(struct request *r, const struct route *rt)
{
	struct error err;
	json_t *body, *v, *doc = NULL;
	const char *key;
	int64_t now = time_now_ms();
	int i;

	if ((body = request_json_body(r, &err)) == NULL || check_fields(body, 0, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	pthread_mutex_lock(&lock);
	for (i = 0; i < ROLLOUTS_MAX; i++) {
		struct entry *e = &table[i];
		if (!e->is_used || strcmp(e->cluster, rt->cluster) != 0 ||
		    strcmp(e->id, rt->name) != 0)
			continue;
		json_object_foreach(body, key, v)
		{
			if (strcmp(key, "verdicts") == 0)
				json_object_update(json_object_get(e->doc, "verdicts"), v);
			else
				json_object_set(e->doc, key, v);
		}
		v = json_object_get(e->doc, "state");
		e->is_finished = v != NULL && is_finished_state(json_string_value(v));
		e->beat_at = now;
		doc = entry_json(e, now);
		break;
	}
	pthread_mutex_unlock(&lock);
	json_decref(body);
	if (doc == NULL) {
		reply_error(r, 404, json_pack("{s:s}", "entry", rt->name),
		            "no rollout '%s' on cluster '%s'", rt->name, rt->cluster);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "rollout", doc));
}
