/*
 * copier.c - the local state copy: an SQLite store of the daemon's own
 * under --state-dir, kept by a thread of its own (the copier) for a
 * store other daemons share, so that a restart while PostgreSQL is
 * unreachable still has a state to answer from.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../store/store.h"
#include "../util/log.h"
#include "../util/timefmt.h"
#include "engine_internal.h"

/* At most one save every COPY_EVERY_MS: the changes meanwhile, a
 * burst or the fleet's, become one save (and one fsync). A stop saves
 * what is due at once; a crash loses at most this much of the copy,
 * which PostgreSQL holds anyway. */
#define COPY_EVERY_MS 500

/* The local state copy is written by a thread of its own (the copier),
 * so that neither an acknowledged write nor a change from another daemon
 * waits for its fsync: publish only marks it due. The copier, a snapshot
 * reader, saves the difference between what it wrote last and the
 * current snapshot, with its version; a burst of changes becomes one
 * save. A copy that failed once is reloaded first, so the difference is
 * taken from what it really holds. Takes now: it becomes *written. */
static void
save_copy(struct engine *e, struct model **written, struct model *now, int64_t version)
{
	struct model *held = NULL;
	const struct model *before = *written;
	struct error err;

	if (e->is_copy_stale) {
		if (store_load(e->copy, &held, &err) != 0)
			goto bad;
		before = held;
	}
	if (store_save_at(e->copy, before, now, version, &err) != 0)
		goto bad;
	e->is_copy_stale = 0;
	model_free(held);
	model_free(*written);
	*written = now;
	return;
bad:
	if (!e->is_copy_stale)
		log_kv(LOG_ERROR, "cannot update the local state copy", "error", err.what, NULL);
	e->is_copy_stale = 1;
	model_free(held);
	model_free(now);
}

/* Waits COPY_EVERY_MS after a save, or until the engine stops. */
static void
copier_pace(struct engine *e)
{
	int64_t until = time_now_ms() + COPY_EVERY_MS;
	struct timespec ts = {until / 1000, (until % 1000) * 1000000};

	pthread_mutex_lock(&e->lock);
	while (!e->is_copier_stopping && pthread_cond_timedwait(&e->copy_wake, &e->lock, &ts) == 0)
		;
	pthread_mutex_unlock(&e->lock);
}

/* The current snapshot copied with its version, as one pair: publish
 * stores the model, then the version, so equal versions around the load
 * mean the pair is consistent. */
static struct model *
copy_current(struct engine *e, int64_t *version)
{
	struct model *m;
	int64_t v;

	for (;;) {
		v = atomic_load(&e->version);
		m = model_copy(engine_snapshot(e));
		if (v == atomic_load(&e->version))
			break;
		model_free(m); /* published in between: again */
	}
	*version = v;
	return m;
}

void *
engine_copier_main(void *arg)
{
	struct engine *e = arg;
	struct model *written = NULL, *now;
	int64_t version;
	int reader_id = engine_reader_register(e), is_stopping;

	for (;;) {
		pthread_mutex_lock(&e->lock);
		while (!e->is_copy_due && !e->is_copier_stopping)
			pthread_cond_wait(&e->copy_wake, &e->lock);
		is_stopping = e->is_copier_stopping && !e->is_copy_due;
		e->is_copy_due = 0;
		pthread_mutex_unlock(&e->lock);
		if (is_stopping)
			break;
		if (!atomic_load(&e->has_state))
			continue;
		now = copy_current(e, &version);
		engine_reader_offline(e, reader_id);
		save_copy(e, &written, now, version);
		copier_pace(e);
	}
	model_free(written);
	engine_reader_unregister(e, reader_id);
	return NULL;
}

void
engine_copy_due(struct engine *e)
{
	if (!e->has_copier)
		return;
	pthread_mutex_lock(&e->lock);
	e->is_copy_due = 1;
	pthread_cond_signal(&e->copy_wake);
	pthread_mutex_unlock(&e->lock);
}

/* The local state copy: an SQLite store of the daemon's own under
 * --state-dir, for a store other daemons share. */
int
engine_open_state_copy(const char *state_dir, struct store *store, struct store **copy,
                       struct error *err)
{
	char path[4096];

	*copy = NULL;
	if (!store_is_shared(store)) {
		if (state_dir != NULL)
			log_kv(LOG_WARN, "--state-dir is only used with a PostgreSQL store", NULL);
		return 0;
	}
	if (state_dir == NULL) {
		log_kv(LOG_WARN,
		       "no --state-dir: a restart while PostgreSQL is unreachable will have no "
		       "state to answer from",
		       NULL);
		return 0;
	}
	if (snprintf(path, sizeof(path), "%s/state.db", state_dir) >= (int)sizeof(path))
		return error_set(err, 400, "--state-dir %s: path too long", state_dir);
	if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
		return error_set(err, 400, "--state-dir %s: cannot create it: %s", state_dir,
		                 strerror(errno));
	if ((*copy = store_open(path, err)) == NULL) {
		char why[sizeof(err->what)];
		snprintf(why, sizeof(why), "%s", err->what);
		return error_set(err, err->status, "--state-dir: %s", why);
	}
	return 0;
}
