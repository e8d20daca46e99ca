/*
 * engine.c - the single writer thread and its side thread: the job
 * queues, the one write path (apply_command over store_write), TTL
 * expiry, reloads when the store reports another version, start and
 * stop; see engine.h for the why. Publication and reclamation of
 * snapshots are snapshot.c's, the local state copy copier.c's.
 *
 * One mutex guards the engine's queues and flags: the job queue, the side
 * thread's queue, the copier's and the watch thread's requests (copy due,
 * refresh, resync, reclaim due) and the stop flags. Workers hold it only
 * to link a job (or, rarely, to wake the engine: snapshot.c). The current
 * model is an atomic pointer, so readers never touch the mutex. The engine thread
 * sleeps on a condition variable until a job arrives, the next TTL is due,
 * or a reader reports that retired snapshots may be freed. Nothing polls.
 *
 * The change callback has a mutex of its own, held while it runs: the
 * server installs it once its workers are up (the engine thread may be
 * publishing a TTL expiry or a job right then) and removes it before it
 * frees them, and must know no call is still under way.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../store/store.h"
#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "engine_internal.h"

#define EXPIRY_RETRY_MS 1000 /* after a TTL expiry the store refused */

static void enqueue(struct engine *e, struct engine_job *job);

struct sync_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int is_done;
};

/* While a shared store is known to be down, failed writes are answered
 * (503) but not logged one by one: the store logged the outage once. */
static int
is_store_down(struct engine *e)
{
	struct store_health h;

	store_health(e->store, &h);
	return !h.is_up;
}

/* A clock for durations, in microseconds. */
static int64_t
monotonic_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static engine_audit_sink audit_sink;

void
engine_set_audit_sink(engine_audit_sink sink)
{
	audit_sink = sink;
}

/* Every committed change, to the journal (the sink) or as a log line. */
static void
log_audit(const struct audit_log *audit)
{
	size_t i;

	for (i = 0; i < audit->n; i++) {
		const struct audit_entry *a = &audit->entries[i];
		if (audit_sink != NULL && audit_sink(a))
			continue;
		log_kv(LOG_INFO, "change", "cluster", a->cluster, "node", a->node, "action",
		       a->action, "old", a->old_status, "new", a->new_status, "reason", a->reason,
		       "by", a->actor, "from", a->address, "context", a->context, NULL);
	}
}

struct decision {
	const struct command *command;
	const struct actor *who;
	const char *context; /* for the audit entries, or NULL */
	int64_t now;
	struct command_result *result;
};

/* store_write's decide: the command against whichever model the store
 * gives, the daemon's or the one stored now. */
static int
decide(void *arg, struct model *m, struct audit_log *audit, struct error *err)
{
	struct decision *d = arg;
	size_t i, before = audit != NULL ? audit->n : 0;
	int rc = command_apply(m, d->command, d->who, d->now, audit, d->result, err);

	for (i = before; rc == 0 && d->context != NULL && audit != NULL && i < audit->n; i++) {
		free(audit->entries[i].context);
		audit->entries[i].context = xstrdup(d->context);
	}
	return rc;
}

/* Applies c under the store's write lock to the stored state (store_write)
 * and, when that changed anything, publishes the result; a newer state
 * the store showed on the way is published too. The one write path, for
 * clients' commands, the TTL clock and start-up alike. */
static int
apply_command(struct engine *e, const struct command *c, const struct actor *who,
              const char *context, int64_t now, int64_t deadline, struct command_result *res,
              struct error *err)
{
	struct command_result ignored;
	struct decision d = {c, who, context, now, res != NULL ? res : &ignored};
	struct audit_log audit = {0};
	struct store_write w = {.known = atomic_load(&e->current),
	                        .known_version = atomic_load(&e->version),
	                        .decide = decide,
	                        .arg = &d,
	                        .audit = &audit,
	                        .idempotency_key = c->idempotency_key,
	                        .deadline = deadline};
	int rc;

	memset(d.result, 0, sizeof(*d.result));
	rc = store_write(e->store, &w, err);
	if (w.model != NULL)
		engine_publish(e, w.model, w.version);
	d.result->is_replayed = w.is_replayed;
	if (w.is_replayed)
		log_kv(LOG_INFO, "write already applied: not applied again", "idempotency_key",
		       c->idempotency_key, "by", who->name, NULL);
	if (w.is_changed)
		log_audit(&audit);
	else
		d.result->is_changed = 0;
	atomic_store(&e->is_store_up, (rc == 0 || err->status < 500) && !is_store_down(e));
	audit_log_free(&audit);
	return rc;
}

/* For the metrics, writes by clients and the TTL clock (not start-up): a
 * commit refused by the store counts as failed, a command refused for its
 * content does not. */
static void
count_write(struct engine *e, int rc, int is_changed, const struct error *err)
{
	if (rc == 0 && is_changed)
		atomic_fetch_add(&e->writes_committed, 1);
	if (rc != 0 && err->status >= 500)
		atomic_fetch_add(&e->writes_failed, 1);
}

static void
run_job(struct engine *e, struct engine_job *job)
{
	struct actor who = {job->who_name, job->who_address};
	struct engine_tx tx = {.model = atomic_load(&e->current), .who = &who, .engine = e};

	error_clear(&job->err);
	if (job->is_command) {
		job->rc = apply_command(e, &job->command, &who, job->who_context, time_now_ms(),
		                        job->store_deadline, &job->result, &job->err);
		count_write(e, job->rc, job->result.is_changed, &job->err);
		if (job->rc == 0 && job->result.is_changed)
			histogram_observe(&e->write_latency, monotonic_us() - job->queued_at);
		if (job->rc != 0 && job->err.status >= 500 && !is_store_down(e))
			log_kv(LOG_ERROR, "store write failed", "error", job->err.what, NULL);
	} else if (job->is_audit_read) {
		job->rc = store_read_audit(e->store, job->audit_cluster, job->audit_limit,
		                           &job->audit, &job->err);
	} else {
		tx.now = time_now_ms();
		job->rc = job->run(&tx, job, &job->err);
	}
}

/* The time (ms) the next TTL expiry is to be applied at, 0 for none. A
 * failed one is retried EXPIRY_RETRY_MS later, not at once: while the
 * store refuses writes the engine would otherwise spin. */
static int64_t
next_expiry(struct engine *e)
{
	int64_t due = model_next_expiry(atomic_load(&e->current));

	if (due != 0 && due < e->expiry_retry_at)
		return e->expiry_retry_at;
	return due;
}

/* Returns nodes whose TTL is due to online. Decided under the store's
 * write lock against the stored state, so that with several daemons the
 * first one expires and audits a node, and the others find it done. */
static void
expire_due(struct engine *e, int64_t now)
{
	static const struct actor ttl = {"ttl", ""};
	struct command expire;
	struct command_result res;
	struct error err;
	int64_t due = next_expiry(e);
	int rc;

	if (due == 0 || due > now)
		return;
	command_init(&expire, COMMAND_EXPIRE);
	rc = apply_command(e, &expire, &ttl, NULL, now, 0, &res, &err);
	count_write(e, rc, res.is_changed, &err);
	if (rc == 0) {
		e->expiry_retry_at = 0;
	} else {
		e->expiry_retry_at = now + EXPIRY_RETRY_MS;
		if (!is_store_down(e))
			log_kv(LOG_ERROR, "store write failed; ttl expiry retried", "error",
			       err.what, NULL);
	}
}

static int prepare_store(struct engine *e, struct error *err);

/* Engine thread: applies the changes other daemons' notifications
 * carried, in order, each to the model at the version it starts from.
 * One that does not start where this daemon is (one before it was
 * missed) is skipped: the version notified after it makes the store
 * read. One that starts there and does not fit the model (it names what
 * the model lacks) ends it: the model is not what the store held, and
 * the store is read instead. */
static void
apply_changes(struct engine *e)
{
	struct store_change *ch[ENGINE_CHANGES_MAX];
	size_t n, i;
	int is_stuck = 0;

	pthread_mutex_lock(&e->lock);
	n = e->n_changes;
	memcpy(ch, e->changes, n * sizeof(*ch));
	e->n_changes = 0;
	pthread_mutex_unlock(&e->lock);
	for (i = 0; i < n; i++) {
		int64_t have = atomic_load(&e->version);
		struct model *m;

		if (is_stuck || store_change_version(ch[i]) <= have) {
			store_change_free(ch[i]);
			continue;
		}
		if (store_change_from(ch[i]) != have || !atomic_load(&e->has_state)) {
			store_change_free(ch[i]);
			continue;
		}
		m = model_copy(atomic_load(&e->current));
		if (store_change_apply(ch[i], m) != 0) {
			model_free(m);
			is_stuck = 1;
		} else {
			engine_publish(e, m, store_change_version(ch[i]));
			atomic_fetch_add(&e->changes_applied, 1);
		}
		store_change_free(ch[i]);
	}
}

/* Engine thread: the store reported a version other than ours, or came
 * back: load what it holds now and publish it. A failure is left to the
 * next report (the watch thread reports every few seconds). An outage is
 * the store's to log; a store that answers but whose state cannot be
 * read (damaged by hand, say) is logged once, and its end once: the
 * daemon answers from its last state meanwhile. */
static void
refresh(struct engine *e, int is_forced)
{
	struct model *m = NULL;
	int64_t version;
	struct error err;
	int had_state;

	if (!is_forced)
		apply_changes(e);
	if (!is_forced && atomic_load(&e->has_state) &&
	    atomic_load(&e->seen_version) <= atomic_load(&e->version))
		return;
	atomic_fetch_add(&e->reloads, 1);
	/* A forced refresh (the store came back, perhaps another server)
	 * reads everything; a notified one only the clusters written since
	 * the last load, the others copied from the model published. */
	if ((is_forced || !atomic_load(&e->has_state)
	         ? store_load_at(e->store, &m, &version, &err)
	         : store_reload(e->store, atomic_load(&e->current), &m, &version, &err)) != 0) {
		if (err.status == 503 || e->is_reload_failing)
			log_kv(LOG_DEBUG, "reload from the store failed", "error", err.what, NULL);
		else
			log_kv(LOG_ERROR,
			       "cannot read the store's new state: answering from the last one",
			       "error", err.what, NULL);
		e->is_reload_failing |= err.status != 503;
		return;
	}
	if (e->is_reload_failing) {
		log_kv(LOG_INFO, "the store's state is readable again", NULL);
		e->is_reload_failing = 0;
	}
	had_state = atomic_load(&e->has_state);
	if (had_state && version == atomic_load(&e->version)) {
		model_free(m);
		return;
	}
	engine_publish(e, m, version);
	/* The first state of a daemon that started without one: what a start
	 * with the store would have done (the default cluster on an empty
	 * store, TTLs due). Never later: removing the last cluster is an
	 * operator's right. */
	if (!had_state && prepare_store(e, &err) != 0)
		log_kv(LOG_ERROR, "cannot prepare the store", "error", err.what, NULL);
}

/* The watch thread's callbacks: note, wake the engine, return. */
static void
on_store_version(void *arg, int64_t version)
{
	struct engine *e = arg;

	atomic_store(&e->seen_version, version);
	/* A version at or below the one applied says nothing new: a
	 * notification overtaken by a reload, or this daemon's own write.
	 * Versions only grow; a store that went back (restored) is read
	 * again when the connection comes back (on_store_state). */
	if (version <= atomic_load(&e->version) && atomic_load(&e->has_state))
		return;
	pthread_mutex_lock(&e->lock);
	e->is_refresh_due = 1;
	pthread_cond_signal(&e->wake);
	pthread_mutex_unlock(&e->lock);
}

/* A change notified (store/change.h): kept for the engine thread, which
 * its version's notification, just after, wakes. */
static void
on_store_change(void *arg, const char *payload)
{
	struct engine *e = arg;
	struct store_change *ch = store_change_decode(payload);

	if (ch == NULL)
		return; /* not one this release knows: the store is read */
	pthread_mutex_lock(&e->lock);
	if (e->n_changes < ENGINE_CHANGES_MAX) {
		e->changes[e->n_changes++] = ch;
		ch = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	store_change_free(ch);
}

static void
on_store_state(void *arg, int is_up)
{
	struct engine *e = arg;

	if (!is_up)
		return;
	pthread_mutex_lock(&e->lock);
	e->is_resync_due = 1;
	pthread_cond_signal(&e->wake);
	pthread_mutex_unlock(&e->lock);
}

static void
wait_for_work(struct engine *e)
{
	int64_t wake_at = next_expiry(e);
	struct timespec ts;

	if (wake_at == 0) {
		pthread_cond_wait(&e->wake, &e->lock);
		return;
	}
	ts.tv_sec = wake_at / 1000;
	ts.tv_nsec = (wake_at % 1000) * 1000000;
	pthread_cond_timedwait(&e->wake, &e->lock, &ts);
}

static void *
engine_thread(void *arg)
{
	struct engine *e = arg;
	struct engine_job *job;
	int is_refresh_due, is_resync_due;

	pthread_mutex_lock(&e->lock);
	for (;;) {
		if (e->head == NULL && !e->is_side_stopped && !e->is_reclaim_due &&
		    !e->is_refresh_due && !e->is_resync_due)
			wait_for_work(e);
		e->is_reclaim_due = 0;
		is_refresh_due = e->is_refresh_due;
		is_resync_due = e->is_resync_due;
		e->is_refresh_due = e->is_resync_due = 0;
		job = e->head;
		if (job != NULL) {
			e->head = job->next;
			if (e->head == NULL)
				e->tail = NULL;
		} else if (e->is_side_stopped) {
			break;
		}
		pthread_mutex_unlock(&e->lock);
		/* A queued write goes before a notified reload: it reads what the
		 * others wrote under the lock anyway (store_write), and its
		 * deadline runs from when it was queued. After the store came
		 * back (perhaps another server), everything is read first. */
		if (is_resync_due)
			refresh(e, 1);
		if (job != NULL) {
			run_job(e, job);
			job->done(job);
		}
		if (is_refresh_due && !is_resync_due)
			refresh(e, 0);
		expire_due(e, time_now_ms());
		engine_reclaim(e);
		pthread_mutex_lock(&e->lock);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* Runs side jobs against the current snapshot, as a registered reader.
 * Once the daemon stops, jobs still queued are refused, not run: nobody
 * should wait seconds of argon2 for a client that the shutdown drops. */
static void *
side_thread(void *arg)
{
	struct engine *e = arg;
	struct engine_job *job;
	struct actor who;
	struct engine_tx tx;
	int reader_id = engine_reader_register(e); /* offline while it waits */

	pthread_mutex_lock(&e->lock);
	for (;;) {
		while (e->side_head == NULL && !e->is_stopping)
			pthread_cond_wait(&e->side_wake, &e->lock);
		job = e->side_head;
		if (job == NULL)
			break;
		e->side_head = job->next;
		if (e->side_head == NULL)
			e->side_tail = NULL;
		pthread_mutex_unlock(&e->lock);
		error_clear(&job->err);
		if (e->is_stopping) {
			job->rc = error_set(&job->err, 503, "the daemon is stopping");
		} else if (job->is_command) {
			job->rc = command_prepare(&job->command, &job->err);
		} else {
			engine_reader_online(e, reader_id);
			who = (struct actor){job->who_name, job->who_address};
			tx = (struct engine_tx){.model = atomic_load(&e->current),
			                        .who = &who,
			                        .now = time_now_ms(),
			                        .engine = e};
			job->rc = job->run(&tx, job, &job->err);
		}
		if (job->is_command && job->rc == 0)
			enqueue(e, job); /* prepared: on to the engine thread, keeping
			                    queued_at (hashing counts in the latency) */
		else
			job->done(job);
		engine_reader_offline(e, reader_id);
		pthread_mutex_lock(&e->lock);
	}
	pthread_mutex_unlock(&e->lock);
	engine_reader_unregister(e, reader_id);
	return NULL;
}

/* Brings the store up to date: the default cluster on an empty store,
 * and TTLs that ran out while no daemon ran. Decided under the write
 * lock, so two daemons starting together add one default cluster. */
static int
prepare_store(struct engine *e, struct error *err)
{
	struct actor daemon = {"clustermgmt", ""};
	struct command add, expire;
	int64_t now = time_now_ms();
	int rc = 0;

	command_init(&add, COMMAND_ADD_CLUSTER);
	command_init(&expire, COMMAND_EXPIRE);
	add.cluster = xstrdup(DEFAULT_CLUSTER);
	add.path = xstrdup(DEFAULT_MOUNT);
	/* Adding a cluster that exists (another daemon was first) is a 409
	 * decided on the stored state: nothing to do. */
	if (atomic_load(&e->current)->n_clusters == 0 &&
	    apply_command(e, &add, &daemon, NULL, now, 0, NULL, err) != 0 && err->status != 409)
		rc = -1;
	if (rc == 0)
		rc = apply_command(e, &expire, &daemon, NULL, now, 0, NULL, err);
	command_free(&add);
	return rc;
}

/* The state to start from: the store's; when a shared store cannot be
 * reached, the local copy's; with neither, nothing (has_state 0: probes
 * are answered 503 until the store comes back). */
static int
load_first(struct engine *e, struct error *err)
{
	struct model *m = NULL;
	int64_t version = 0;
	struct error why;

	if (store_load_at(e->store, &m, &version, err) == 0) {
		model_seal(m);
		atomic_store(&e->current, m);
		atomic_store(&e->version, version);
		atomic_store(&e->has_state, 1);
		return prepare_store(e, err) == 0 || err->status == 503 ? 0 : -1;
	}
	if (!store_is_shared(e->store) || err->status != 503)
		return -1;
	/* A copy at version 0 was never written: it is just created. */
	if (e->copy != NULL && store_load_at(e->copy, &m, &version, &why) == 0 && version == 0) {
		model_free(m);
		m = NULL;
	}
	if (m != NULL) {
		log_kv(LOG_WARN, "the store is unreachable: serving the local state copy", "error",
		       err->what, NULL);
		model_seal(m);
		atomic_store(&e->current, m);
		atomic_store(&e->version, version);
		atomic_store(&e->has_state, 1);
		return 0;
	}
	log_kv(LOG_ERROR,
	       "the store is unreachable and there is no local state copy: probes are "
	       "answered 503 until it is back; retrying",
	       "error", err->what, NULL);
	atomic_store(&e->current, model_new());
	atomic_store(&e->version, -1);
	atomic_store(&e->has_state, 0);
	return 0;
}

struct engine *
engine_open(const char *spec, const char *state_dir, char *describe, size_t describe_size,
            struct error *err)
{
	struct store *store, *copy = NULL;

	if ((store = store_open(spec, err)) == NULL)
		return NULL;
	snprintf(describe, describe_size, "%s", store_describe(store));
	if (engine_open_state_copy(state_dir, store, &copy, err) != 0) {
		store_close(store);
		return NULL;
	}
	return engine_start_with_copy(store, copy, err);
}

int
engine_check_store(const char *spec, struct error *err)
{
	struct store *store;
	struct model *m = NULL;
	int rc;

	if ((store = store_open(spec, err)) == NULL)
		return -1;
	rc = store_load(store, &m, err);
	model_free(m);
	store_close(store);
	return rc;
}

struct engine *
engine_start(struct store *store, struct error *err)
{
	return engine_start_with_copy(store, NULL, err);
}

struct engine *
engine_start_with_copy(struct store *store, struct store *copy, struct error *err)
{
	struct engine *e = xcalloc(1, sizeof(*e));

	e->store = store;
	atomic_store(&e->is_store_up, 1); /* it opened */
	e->copy = copy;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->wake, NULL);
	pthread_cond_init(&e->side_wake, NULL);
	pthread_mutex_init(&e->on_change_lock, NULL);
	atomic_store(&e->gp, 1);
	if (load_first(e, err) != 0)
		goto bad;
	e->is_copy_stale = 1; /* whatever the copy holds, the copier makes it current */
	pthread_cond_init(&e->copy_wake, NULL);
	if (copy != NULL) {
		if (pthread_create(&e->copier, NULL, engine_copier_main, e) != 0)
			abort();
		e->has_copier = 1;
		engine_copy_due(e);
	}
	e->watcher = (struct store_watcher){on_store_version, on_store_change, on_store_state, e};
	if (store_watch(store, &e->watcher, err) != 0)
		goto bad;
	if (pthread_create(&e->thread, NULL, engine_thread, e) != 0 ||
	    pthread_create(&e->side_thread, NULL, side_thread, e) != 0)
		abort(); /* threads that cannot start leave nothing to clean up safely */
	return e;
bad:
	engine_free_retired(e);
	model_free(atomic_load(&e->current));
	store_close(store);
	store_close(copy);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->wake);
	pthread_cond_destroy(&e->side_wake);
	pthread_mutex_destroy(&e->on_change_lock);
	free(e);
	return NULL;
}

void
engine_stop(struct engine *e)
{
	store_unwatch(e->store); /* no more callbacks into e */
	pthread_mutex_lock(&e->lock);
	e->is_stopping = 1;
	pthread_cond_signal(&e->side_wake);
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->side_thread, NULL);
	pthread_mutex_lock(&e->lock);
	e->is_side_stopped = 1;
	pthread_cond_signal(&e->wake);
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->thread, NULL);
	if (e->has_copier) { /* after the engine: it writes what was published last */
		pthread_mutex_lock(&e->lock);
		e->is_copier_stopping = 1;
		pthread_cond_signal(&e->copy_wake);
		pthread_mutex_unlock(&e->lock);
		pthread_join(e->copier, NULL);
	}
	pthread_cond_destroy(&e->copy_wake);
	while (e->n_changes > 0)
		store_change_free(e->changes[--e->n_changes]);
	engine_free_retired(e);
	model_free(atomic_load(&e->current));
	store_close(e->store);
	store_close(e->copy);
	pthread_mutex_destroy(&e->lock);
	pthread_cond_destroy(&e->wake);
	pthread_cond_destroy(&e->side_wake);
	pthread_mutex_destroy(&e->on_change_lock);
	free(e);
}

static void
enqueue(struct engine *e, struct engine_job *job)
{
	int is_side = job->is_command ? command_needs_prepare(&job->command) : job->is_side;
	struct engine_job **head = is_side ? &e->side_head : &e->head;
	struct engine_job **tail = is_side ? &e->side_tail : &e->tail;

	job->next = NULL;
	if (!is_side)
		job->store_deadline = monotonic_us() / 1000 + store_timeout();
	pthread_mutex_lock(&e->lock);
	if (*tail != NULL)
		(*tail)->next = job;
	else
		*head = job;
	*tail = job;
	pthread_cond_signal(is_side ? &e->side_wake : &e->wake);
	pthread_mutex_unlock(&e->lock);
}

void
engine_submit(struct engine *e, struct engine_job *job)
{
	job->queued_at = monotonic_us();
	enqueue(e, job);
}

void
engine_stats(struct engine *e, struct engine_stats *out)
{
	out->writes_committed = atomic_load(&e->writes_committed);
	out->writes_failed = atomic_load(&e->writes_failed);
	out->is_store_up = atomic_load(&e->is_store_up);
	out->write_latency = &e->write_latency;
}

static void
sync_done(struct engine_job *job)
{
	struct sync_wait *w = job->done_arg;

	pthread_mutex_lock(&w->lock);
	w->is_done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int
engine_run_sync(struct engine *e, struct engine_job *job)
{
	struct sync_wait w = {.is_done = 0};

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	job->done_arg = &w;
	job->done = sync_done;
	engine_submit(e, job);
	pthread_mutex_lock(&w.lock);
	while (!w.is_done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	return job->rc;
}

int
engine_share_probes(struct engine *e, struct engine_probe_share *p, struct error *err)
{
	struct error ignored;
	int rc;

	/* On the caller's thread, not the engine's: a shared store runs these
	 * on a connection of their own, so that the fleet's telemetry never
	 * queues ahead of operators' writes. */
	if (err == NULL)
		err = &ignored;
	/* The heartbeat first: on PostgreSQL it reads the probes' version
	 * that the exchange then needs (postgres_fleet.c). */
	rc = 0;
	if (p->me != NULL) {
		p->me->version = atomic_load(&e->version);
		rc = store_heartbeat(e->store, p->me, &p->fleet, &p->n_fleet, &p->store_version,
		                     &p->changed_at, err);
	}
	if (rc == 0)
		rc = store_share_probes(e->store, p->daemon, p->mine, p->n_mine, p->forget_before,
		                        p->want_others, p->interest, p->n_interest, &p->others,
		                        &p->n_others, &p->others_are_delta, err);
	if (rc == 0 && p->with_sessions)
		rc = store_share_sessions(e->store, p->sessions_added, p->n_sessions_added,
		                          p->sessions_ended, p->n_sessions_ended, time_now_ms(),
		                          &p->sessions, &p->n_sessions, err);
	return rc;
}

int
engine_rollouts_register(struct engine *e, const struct rollout_record *rec, int is_force, int max,
                         int64_t evict_before, int *is_conflict, struct rollout_record *conflict,
                         struct error *err)
{
	return store_rollouts_register(e->store, rec, is_force, max, evict_before, is_conflict,
	                               conflict, err);
}

int
engine_rollouts_beat(struct engine *e, const struct rollout_record *beat,
                     struct rollout_record *out, struct error *err)
{
	return store_rollouts_beat(e->store, beat, out, err);
}

int
engine_rollouts_list(struct engine *e, struct rollout_record **all, size_t *n_all,
                     struct error *err)
{
	return store_rollouts_list(e->store, all, n_all, err);
}

void
engine_rollouts_free(struct rollout_record *r)
{
	store_rollouts_free(r);
}

void
engine_on_change(struct engine *e, void (*cb)(void *arg, const struct model *m), void *arg)
{
	pthread_mutex_lock(&e->on_change_lock);
	e->on_change = cb;
	e->on_change_arg = arg;
	pthread_mutex_unlock(&e->on_change_lock);
}

struct command *
engine_job_command(struct engine_job *job, enum command_kind kind)
{
	job->is_command = 1;
	command_init(&job->command, kind);
	return &job->command;
}

void
engine_job_read_audit(struct engine_job *job, const char *cluster, int64_t limit)
{
	job->is_audit_read = 1;
	snprintf(job->audit_cluster, sizeof(job->audit_cluster), "%s", cluster);
	job->audit_limit = limit;
}

void
engine_job_release(struct engine_job *job)
{
	if (job->is_command)
		command_free(&job->command);
	audit_log_free(&job->audit);
	if (job->free_data != NULL)
		job->free_data(job->data);
	job->free_data = NULL;
}

void
engine_store_state(struct engine *e, struct engine_store_state *out)
{
	struct store_health h;

	store_health(e->store, &h);
	out->is_shared = store_is_shared(e->store);
	out->is_up = h.is_up;
	out->down_since = h.down_since;
	out->round_trip_ms = h.round_trip_ms;
	out->is_slow = h.is_slow;
	out->version = atomic_load(&e->version);
	out->version_at = atomic_load(&e->version_at);
	out->has_state = atomic_load(&e->has_state);
	out->reloads = atomic_load(&e->reloads);
	out->changes_applied = atomic_load(&e->changes_applied);
}

int
engine_has_state(struct engine *e)
{
	return atomic_load(&e->has_state);
}

_Static_assert(ENGINE_STORE_TIMEOUT_DEFAULT_MS == STORE_TIMEOUT_DEFAULT_MS, "one default deadline");

void
engine_set_store_options(int timeout_ms, const char *listen_db)
{
	store_set_timeout(timeout_ms);
	store_set_listen_db(listen_db);
}

int
engine_store_is_postgres(const char *spec)
{
	return store_spec_is_postgres(spec);
}
