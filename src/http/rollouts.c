/*
 * rollouts.c - the registry of rollouts in progress (see rollouts.h).
 *
 * The registry lives in the store (engine_rollouts_*), so that a daemon
 * restart keeps it and, with PostgreSQL, every daemon behind the load
 * balancer sees the same rollouts and refuses a second one. The table
 * below is the last list read, with what this daemon registered or
 * heard since: it answers between reads and while a shared store does
 * not answer.
 *
 * A shared store's calls block up to its deadline, so they run as side
 * jobs (engine.h), never on the event loop; SQLite's run on the engine
 * thread, as everything on that store does. A list is read at most every
 * ROLLOUTS_READ_MS and one read at a time: however many pages poll, the
 * store sees a bounded number of reads.
 *
 * The table is guarded by one mutex, held only to copy records in or
 * out. A record keeps what the client sent, checked here (strings of
 * bounded length, the node list, the verdicts), plus who registered it,
 * from where, and when it last beat.
 *
 * A rollout is "running" until its client says how it ended; one that has
 * not beaten for ROLLOUT_STALE_MS is shown as "client gone" (it may be
 * dead, or only cut off: it still blocks a second rollout, which "force"
 * (rollout --force) overrides, so that an operator decides). While the
 * store does not answer, heartbeats cannot reach it: the silence is then
 * counted up to the last list read, not to now, so that an outage never
 * makes a live rollout look dead.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollouts.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"

#define TEXT_MAX 512 /* phase, current node, message, command: bytes */
#define ROLLOUT_NODES_MAX 1024
#define VERDICT_MAX 32 /* "pass", "fail", "inconclusive" */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rollout_record table[ROLLOUTS_MAX]; /* id[0] == '\0': free */
static int64_t read_at; /* the last list read (ms); 0: read at the next GET */
static int is_reading;  /* a read is under way */

static const char *const states[] = {"running",      "done",        "failed", "verdict fail",
                                     "inconclusive", "interrupted", NULL};

static int
is_finished(const struct rollout_record *e)
{
	return strcmp(e->state, "running") != 0;
}

static char *
text_or_null(const json_t *v)
{
	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

static void
replace_text(char **dst, const char *src)
{
	if (src == NULL)
		return;
	free(*dst);
	*dst = xstrdup(src);
}

static void
record_copy(struct rollout_record *dst, const struct rollout_record *src)
{
	*dst = *src;
	dst->phase = src->phase != NULL ? xstrdup(src->phase) : NULL;
	dst->current = src->current != NULL ? xstrdup(src->current) : NULL;
	dst->command = src->command != NULL ? xstrdup(src->command) : NULL;
	dst->message = src->message != NULL ? xstrdup(src->message) : NULL;
	dst->nodes = xstrdup(src->nodes);
	dst->verdicts = xstrdup(src->verdicts);
}

static void
record_clear(struct rollout_record *e)
{
	engine_rollouts_free(e);
	memset(e, 0, sizeof(*e));
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
		    json_string_length(v) > ROLLOUT_ID_MAX ||
		    !node_name_is_valid(json_string_value(v), json_string_length(v)))
			return error_set(err, 400, "field \"id\" must be 1 to %d letters or digits",
			                 ROLLOUT_ID_MAX);
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
text_json(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* The API's view of a record. gone_ref: the moment silence is counted up
 * to (now, or the last list read while the store does not answer). */
static json_t *
entry_json(const struct rollout_record *e, int64_t now, int64_t gone_ref)
{
	json_t *nodes = json_loads(e->nodes, 0, NULL), *verdicts = json_loads(e->verdicts, 0, NULL);
	int is_gone = !is_finished(e) && gone_ref - e->beat_at > ROLLOUT_STALE_MS;
	char at[40], beat[40];
	json_t *doc;

	time_format_rfc3339(e->started_at, at, sizeof(at));
	time_format_rfc3339(e->beat_at, beat, sizeof(beat));
	doc = json_pack("{s:o, s:o, s:o, s:o, s:o, s:s}", "nodes",
	                nodes != NULL ? nodes : json_array(), "command", text_json(e->command),
	                "phase", text_json(e->phase), "current", text_json(e->current), "verdicts",
	                verdicts != NULL ? verdicts : json_object(), "state",
	                is_gone ? "client gone" : e->state);
	if (e->message != NULL)
		json_object_set_new(doc, "message", json_string(e->message));
	json_object_set_new(doc, "id", json_string(e->id));
	json_object_set_new(doc, "cluster", json_string(e->cluster));
	json_object_set_new(doc, "started_by", json_string(e->started_by));
	json_object_set_new(doc, "from", json_string(e->from));
	json_object_set_new(doc, "started_at", json_string(at));
	json_object_set_new(doc, "heartbeat_at", json_string(beat));
	json_object_set_new(doc, "heartbeat_age_ms", json_integer(now - e->beat_at));
	json_object_set_new(doc, "client_gone", json_boolean(is_gone));
	return doc;
}

static int
cluster_exists_or_reply(struct request *r, const char *cluster)
{
	if (model_find_cluster(request_snapshot(r), cluster) != NULL)
		return 1;
	reply_error(r, 404, json_pack("{s:s}", "entry", cluster), "cluster '%s' not found",
	            cluster);
	return 0;
}

static int
store_is_shared(const struct request *r, int *is_up)
{
	struct engine_store_state st;

	request_store_state(r, &st);
	*is_up = st.is_up;
	return st.is_shared;
}

/* --- the table ------------------------------------------------------- */

/* The table's slot of (cluster, id), or -1. Called with the lock held. */
static int
find(const char *cluster, const char *id)
{
	int i;

	for (i = 0; i < ROLLOUTS_MAX; i++)
		if (table[i].id[0] != '\0' && strcmp(table[i].cluster, cluster) == 0 &&
		    strcmp(table[i].id, id) == 0)
			return i;
	return -1;
}

/* A free slot, or the oldest finished or long silent entry's; -1 when
 * every entry is a live rollout. Called with the lock held. */
static int
slot_for_new(int64_t evict_before)
{
	int i, oldest = -1;

	for (i = 0; i < ROLLOUTS_MAX; i++) {
		if (table[i].id[0] == '\0')
			return i;
		if ((is_finished(&table[i]) || table[i].beat_at < evict_before) &&
		    (oldest < 0 || table[i].beat_at < table[oldest].beat_at))
			oldest = i;
	}
	return oldest;
}

/* Puts a copy of rec in the table, in place of the same rollout or in a
 * free slot (a read of the store will correct the rest). Called with
 * the lock held. */
static void
remember(const struct rollout_record *rec, int64_t evict_before)
{
	int slot = find(rec->cluster, rec->id);

	if (slot < 0)
		slot = slot_for_new(evict_before);
	if (slot < 0)
		return;
	record_clear(&table[slot]);
	record_copy(&table[slot], rec);
}

/* Merges a heartbeat into e. */
static void
apply_beat(struct rollout_record *e, const struct rollout_record *beat)
{
	json_t *verdicts, *more;

	replace_text(&e->phase, beat->phase);
	replace_text(&e->current, beat->current);
	replace_text(&e->message, beat->message);
	if (beat->state[0] != '\0')
		snprintf(e->state, sizeof(e->state), "%s", beat->state);
	if (beat->verdicts != NULL) {
		verdicts = json_loads(e->verdicts, 0, NULL);
		more = json_loads(beat->verdicts, 0, NULL);
		if (verdicts != NULL && more != NULL && json_object_update(verdicts, more) == 0) {
			free(e->verdicts);
			e->verdicts = json_dumps(verdicts, JSON_COMPACT);
		}
		json_decref(verdicts);
		json_decref(more);
	}
	e->beat_at = beat->beat_at;
}

/* --- GET ------------------------------------------------------------- */

/* Replies with the table's rollouts of cluster, newest first. */
static void
reply_list(struct request *r, const char *cluster, int is_shared, int is_up)
{
	json_t *list = json_array(), *doc;
	int64_t now = time_now_ms(), newest, gone_ref;
	int i, picked[ROLLOUTS_MAX] = {0}, k, best;
	char as_of[40];

	pthread_mutex_lock(&lock);
	gone_ref = is_shared && !is_up && read_at > 0 ? read_at : now;
	/* newest first: a selection by start time, ROLLOUTS_MAX is small */
	for (k = 0; k < ROLLOUTS_MAX; k++) {
		best = -1;
		newest = INT64_MIN;
		for (i = 0; i < ROLLOUTS_MAX; i++)
			if (table[i].id[0] != '\0' && !picked[i] &&
			    strcmp(table[i].cluster, cluster) == 0 &&
			    table[i].started_at >= newest) {
				newest = table[i].started_at;
				best = i;
			}
		if (best < 0)
			break;
		picked[best] = 1;
		json_array_append_new(list, entry_json(&table[best], now, gone_ref));
	}
	time_format_rfc3339(read_at, as_of, sizeof(as_of));
	pthread_mutex_unlock(&lock);
	doc = json_pack("{s:s, s:o}", "cluster", cluster, "rollouts", list);
	if (is_shared) {
		json_object_set_new(doc, "as_of", read_at > 0 ? json_string(as_of) : json_null());
		json_object_set_new(doc, "store_unreachable", json_boolean(!is_up));
	}
	reply_json(r, 200, doc);
}

struct list_read {
	struct rollout_record *all;
	size_t n;
};

/* Also when the job never ran (the daemon stopping) or its client went
 * away: the next GET may read again. */
static void
list_read_free(void *data)
{
	struct list_read *l = data;
	size_t i;

	for (i = 0; i < l->n; i++)
		engine_rollouts_free(&l->all[i]);
	free(l->all);
	pthread_mutex_lock(&lock);
	is_reading = 0;
	pthread_mutex_unlock(&lock);
}

/* On the side thread: the store's list becomes the table. */
static int
list_read_run(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	struct list_read *l = job->data;
	size_t i;

	if (engine_rollouts_list(tx->engine, &l->all, &l->n, err) != 0)
		return -1;
	pthread_mutex_lock(&lock);
	for (i = 0; i < ROLLOUTS_MAX; i++)
		record_clear(&table[i]);
	for (i = 0; i < l->n && i < ROLLOUTS_MAX; i++)
		record_copy(&table[i], &l->all[i]);
	read_at = time_now_ms();
	pthread_mutex_unlock(&lock);
	return 0;
}

static void
list_read_done(struct request *r, struct engine_job *job)
{
	int is_up;

	/* a failed read: the last list, marked as such */
	reply_list(r, r->route.cluster, store_is_shared(r, &is_up), job->rc == 0);
}

void
rollouts_get(struct request *r, const struct route *rt)
{
	struct engine_job *job;
	int is_up, is_shared = store_is_shared(r, &is_up), is_due;

	if (!cluster_exists_or_reply(r, rt->cluster))
		return;
	pthread_mutex_lock(&lock);
	is_due = is_up && !is_reading && time_now_ms() - read_at >= ROLLOUTS_READ_MS;
	if (is_due)
		is_reading = 1;
	pthread_mutex_unlock(&lock);
	if (!is_due) {
		reply_list(r, rt->cluster, is_shared, is_up);
		return;
	}
	job = request_job_new(r, list_read_run, sizeof(struct list_read));
	job->is_side = is_shared;
	job->free_data = list_read_free;
	request_job_submit(r, job, list_read_done);
}

/* --- POST: registration ---------------------------------------------- */

struct registration {
	struct rollout_record rec;
	int is_force;
	int is_conflict;
	struct rollout_record conflict;
};

static void
registration_free(void *data)
{
	struct registration *g = data;

	engine_rollouts_free(&g->rec);
	engine_rollouts_free(&g->conflict);
}

static int
registration_run(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	struct registration *g = job->data;

	return engine_rollouts_register(tx->engine, &g->rec, g->is_force, ROLLOUTS_MAX,
	                                g->rec.beat_at - ROLLOUT_EVICT_MS, &g->is_conflict,
	                                &g->conflict, err);
}

static void
reply_conflict(struct request *r, const struct rollout_record *c)
{
	int64_t now = time_now_ms();
	json_t *doc = entry_json(c, now, now);

	reply_error(r, 409, json_pack("{s:o}", "rollout", doc),
	            "rollout %s by %s is in progress on cluster '%s'%s; start another with "
	            "--force only if it is dead",
	            c->id, c->started_by, c->cluster,
	            json_is_true(json_object_get(doc, "client_gone"))
	                ? " (its client has not been heard from: it may be dead)"
	                : "");
}

static void
reply_unregistered(struct request *r, const struct error *err)
{
	reply_error(r, 503, NULL,
	            "cannot register the rollout while the store is unreachable: other "
	            "operators would not see it; nothing was changed (rollout --force starts it "
	            "unregistered). The store: %s",
	            err->what);
}

/* A 503 of the store's own, not a full registry nor a stopping daemon. */
static int
is_store_outage(const struct error *err)
{
	return err->status == 503 && strstr(err->what, "no room") == NULL &&
	       strstr(err->what, "stopping") == NULL;
}

static void
registration_reply(struct request *r, struct registration *g, int rc, const struct error *err)
{
	int64_t now = time_now_ms();

	if (rc != 0 && is_store_outage(err)) {
		reply_unregistered(r, err);
		return;
	}
	if (rc != 0) {
		reply_from_error(r, err);
		return;
	}
	if (g->is_conflict) {
		reply_conflict(r, &g->conflict);
		return;
	}
	reply_json(r, 201, json_pack("{s:o}", "rollout", entry_json(&g->rec, now, now)));
}

static void
registration_done(struct request *r, struct engine_job *job)
{
	struct registration *g = job->data;

	if (job->rc == 0 && !g->is_conflict) {
		pthread_mutex_lock(&lock);
		remember(&g->rec, g->rec.beat_at - ROLLOUT_EVICT_MS);
		read_at = 0; /* the next list reads what --force changed */
		pthread_mutex_unlock(&lock);
	}
	registration_reply(r, g, job->rc, &job->err);
}

void
rollouts_post(struct request *r, const struct route *rt)
{
	struct error err;
	struct registration *g, local;
	struct engine_job *job;
	json_t *body;
	int is_up, is_shared = store_is_shared(r, &is_up);
	int64_t now = time_now_ms();

	if (!cluster_exists_or_reply(r, rt->cluster))
		return;
	if ((body = request_json_body(r, &err)) == NULL || check_fields(body, 1, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	g = memset(&local, 0, sizeof(local));
	snprintf(g->rec.cluster, sizeof(g->rec.cluster), "%s", rt->cluster);
	snprintf(g->rec.id, sizeof(g->rec.id), "%s",
	         json_string_value(json_object_get(body, "id")));
	snprintf(g->rec.started_by, sizeof(g->rec.started_by), "%s", r->who);
	snprintf(g->rec.from, sizeof(g->rec.from), "%s", r->address);
	snprintf(g->rec.state, sizeof(g->rec.state), "running");
	g->rec.started_at = g->rec.beat_at = now;
	g->rec.phase = text_or_null(json_object_get(body, "phase"));
	g->rec.current = text_or_null(json_object_get(body, "current"));
	g->rec.command = text_or_null(json_object_get(body, "command"));
	g->rec.nodes = json_dumps(json_object_get(body, "nodes"), JSON_COMPACT);
	g->rec.verdicts = xstrdup("{}");
	g->is_force = json_is_true(json_object_get(body, "force"));
	json_decref(body);
	if (is_up) {
		job = request_job_new(r, registration_run, sizeof(local));
		memcpy(job->data, &local, sizeof(local)); /* the job owns the strings now */
		job->is_side = is_shared;
		job->free_data = registration_free;
		request_job_submit(r, job, registration_done);
		return;
	}
	error_set(&err, 503, "the daemon's last check found it down");
	registration_reply(r, g, -1, &err);
	registration_free(g);
}

/* --- PUT: a heartbeat ------------------------------------------------ */

struct beat {
	struct rollout_record in, out;
};

static void
beat_free(void *data)
{
	struct beat *b = data;

	engine_rollouts_free(&b->in);
	engine_rollouts_free(&b->out);
}

static int
beat_run(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	struct beat *b = job->data;

	return engine_rollouts_beat(tx->engine, &b->in, &b->out, err);
}

/* The heartbeat in the table too: what this daemon shows at once, and
 * while the store does not answer. Returns the entry as the API shows
 * it, or NULL when the table does not hold it. */
static json_t *
beat_here(const struct rollout_record *in)
{
	int64_t now = time_now_ms();
	json_t *doc = NULL;
	int slot;

	pthread_mutex_lock(&lock);
	if ((slot = find(in->cluster, in->id)) >= 0) {
		apply_beat(&table[slot], in);
		doc = entry_json(&table[slot], now, now);
	}
	pthread_mutex_unlock(&lock);
	return doc;
}

/* While the store does not answer, this daemon keeps the heartbeat: its
 * list shows the rollout alive; the others' cannot until the store is
 * back. */
static void
reply_store_down_beat(struct request *r)
{
	reply_error(r, 503, NULL,
	            "the store is unreachable: this heartbeat is kept by this daemon only");
}

static void
beat_done(struct request *r, struct engine_job *job)
{
	struct beat *b = job->data;
	int64_t now = time_now_ms();

	if (job->rc == 0) {
		pthread_mutex_lock(&lock);
		remember(&b->out, now - ROLLOUT_EVICT_MS);
		pthread_mutex_unlock(&lock);
		reply_json(r, 200, json_pack("{s:o}", "rollout", entry_json(&b->out, now, now)));
		return;
	}
	if (job->err.status != 503) {
		reply_from_error(r, &job->err);
		return;
	}
	json_decref(beat_here(&b->in));
	reply_store_down_beat(r);
}

static void
reply_unknown(struct request *r, const struct route *rt)
{
	reply_error(r, 404, json_pack("{s:s}", "entry", rt->name),
	            "no rollout '%s' on cluster '%s'", rt->name, rt->cluster);
}

void
rollout_put(struct request *r, const struct route *rt)
{
	struct error err;
	struct engine_job *job;
	struct beat *b, local;
	json_t *body, *v;
	int is_up, is_shared = store_is_shared(r, &is_up);

	if ((body = request_json_body(r, &err)) == NULL || check_fields(body, 0, &err) != 0) {
		json_decref(body);
		reply_from_error(r, &err);
		return;
	}
	if (strlen(rt->name) > ROLLOUT_ID_MAX) {
		json_decref(body);
		reply_unknown(r, rt);
		return;
	}
	b = memset(&local, 0, sizeof(local));
	snprintf(b->in.cluster, sizeof(b->in.cluster), "%s", rt->cluster);
	memcpy(b->in.id, rt->name, strlen(rt->name) + 1);
	b->in.beat_at = time_now_ms();
	b->in.phase = text_or_null(json_object_get(body, "phase"));
	b->in.current = text_or_null(json_object_get(body, "current"));
	b->in.message = text_or_null(json_object_get(body, "message"));
	if ((v = json_object_get(body, "state")) != NULL)
		snprintf(b->in.state, sizeof(b->in.state), "%s", json_string_value(v));
	if ((v = json_object_get(body, "verdicts")) != NULL)
		b->in.verdicts = json_dumps(v, JSON_COMPACT);
	json_decref(body);
	if (is_up) {
		job = request_job_new(r, beat_run, sizeof(local));
		memcpy(job->data, &local, sizeof(local)); /* the job owns the strings now */
		job->is_side = is_shared;
		job->free_data = beat_free;
		request_job_submit(r, job, beat_done);
		return;
	}
	json_decref(beat_here(&b->in));
	beat_free(b);
	reply_store_down_beat(r);
}
