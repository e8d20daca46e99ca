/*
 * snapshot.c - the engine's snapshots: publishing a new model, the
 * readers' registration and quiescent points, and freeing replaced models
 * once no reader can hold them.
 *
 * Snapshot reclamation (QSBR). A global grace-period counter gp counts
 * publications: each swap of the current model is followed by gp++, and
 * the replaced model is retired with tag = the new gp. Each reader has one
 * word, seen: 0 while offline, else the gp it read when it last came
 * online or passed a quiescent point. A retired model with tag t may be
 * held only by an online reader with seen < t (one with seen >= t read gp
 * after the swap, so every snapshot it loaded since is newer), so it is
 * freed once every reader is offline or at seen >= t. Retired models are
 * a FIFO in tag order; the oldest tag is published in oldest_retired.
 *
 * Who notices: the engine checks right after each job (all readers
 * offline -> freed at once). A reader that moves its word (quiescent with
 * a new gp, or going offline) while something is retired scans the words;
 * when nobody holds the oldest retired model any more it wakes the engine.
 * No wake-up can be lost: the engine stores oldest_retired before it scans
 * the words, a reader stores its word before it loads oldest_retired, all
 * seq_cst, so at least one of the two sees the other's store; and the
 * last reader to move sees every other reader's word.
 *
 * Coming online races with a swap: the reader stores seen = gp before it
 * loads the current model. If the engine's scan missed that store (saw
 * 0), the store came after the scan, so after the swap, and the reader's
 * load returns the new model. If the scan saw it, seen < t keeps the old
 * model alive.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "engine_internal.h"

/* The calling thread's own reader, so that engine_snapshot can bring it
 * online (engine_reader_register binds it). */
static __thread struct engine *my_engine;
static __thread int my_reader_id = -1;

/* The smallest word of the online readers; UINT64_MAX when none is. */
static uint64_t
min_seen(struct engine *e)
{
	uint64_t min = UINT64_MAX, seen;
	int i, n = atomic_load(&e->n_readers);

	for (i = 0; i < n; i++) {
		seen = atomic_load(&e->readers[i].seen);
		if (seen != 0 && seen < min)
			min = seen;
	}
	return min;
}

/* Engine thread: frees every retired model no reader can hold. Stores
 * oldest_retired before each scan, for the readers' side of the
 * handshake (see the top of the file). */
void
engine_reclaim(struct engine *e)
{
	struct retired *r;
	uint64_t min;

	for (;;) {
		r = e->retired_head;
		atomic_store(&e->oldest_retired, r != NULL ? r->tag : 0);
		if (r == NULL)
			return;
		min = min_seen(e);
		if (r->tag > min)
			return; /* the reader that holds it wakes us */
		while ((r = e->retired_head) != NULL && r->tag <= min) {
			e->retired_head = r->next;
			model_free(r->model);
			free(r);
			atomic_fetch_sub(&e->n_retired, 1);
		}
		if (e->retired_head == NULL)
			e->retired_tail = NULL;
	}
}

/* A reader moved its word: wake the engine if nobody holds the oldest
 * retired model any more. */
static void
reader_moved(struct engine *e)
{
	uint64_t oldest = atomic_load(&e->oldest_retired);

	if (oldest == 0 || min_seen(e) < oldest)
		return;
	pthread_mutex_lock(&e->lock);
	e->is_reclaim_due = 1;
	pthread_cond_signal(&e->wake);
	pthread_mutex_unlock(&e->lock);
}

void
engine_publish(struct engine *e, struct model *next, int64_t version)
{
	struct retired *r = xcalloc(1, sizeof(*r));

	model_stamp_changes(next, atomic_load(&e->current), version);
	model_seal(next);
	r->model = atomic_exchange(&e->current, next);
	atomic_store(&e->version, version);
	atomic_store(&e->version_at, time_now_ms());
	atomic_store(&e->has_state, 1);
	r->tag = atomic_fetch_add(&e->gp, 1) + 1;
	if (e->retired_tail != NULL)
		e->retired_tail->next = r;
	else
		e->retired_head = r;
	e->retired_tail = r;
	atomic_fetch_add(&e->n_retired, 1);
	pthread_mutex_lock(&e->on_change_lock);
	if (e->on_change != NULL)
		e->on_change(e->on_change_arg, next);
	pthread_mutex_unlock(&e->on_change_lock);
	engine_copy_due(e);
}

/* Frees every retired model: at stop, and when the start fails after
 * start-up writes published (no reader exists yet). */
void
engine_free_retired(struct engine *e)
{
	struct retired *r;

	while ((r = e->retired_head) != NULL) {
		e->retired_head = r->next;
		model_free(r->model);
		free(r);
	}
	e->retired_tail = NULL;
}

int
engine_reader_register(struct engine *e)
{
	int id, n, expected;

	for (id = 0; id < MAX_READERS; id++) {
		expected = 0;
		if (atomic_compare_exchange_strong(&e->readers[id].is_used, &expected, 1))
			break;
	}
	if (id == MAX_READERS)
		abort();
	atomic_store(&e->readers[id].seen, 0);
	n = atomic_load(&e->n_readers);
	while (n <= id && !atomic_compare_exchange_weak(&e->n_readers, &n, id + 1))
		;
	my_engine = e;
	my_reader_id = id;
	return id;
}

void
engine_reader_unregister(struct engine *e, int reader_id)
{
	engine_reader_offline(e, reader_id);
	if (my_engine == e && my_reader_id == reader_id) {
		my_engine = NULL;
		my_reader_id = -1;
	}
	atomic_store(&e->readers[reader_id].is_used, 0);
}

void
engine_reader_quiescent(struct engine *e, int reader_id)
{
	struct reader *r = &e->readers[reader_id];
	uint64_t seen = atomic_load_explicit(&r->seen, memory_order_relaxed); /* our own */
	uint64_t gp = atomic_load(&e->gp);

	if (seen == 0 || seen == gp)
		return;
	atomic_store(&r->seen, gp);
	reader_moved(e);
}

void
engine_reader_offline(struct engine *e, int reader_id)
{
	struct reader *r = &e->readers[reader_id];

	if (atomic_load_explicit(&r->seen, memory_order_relaxed) == 0)
		return;
	atomic_store(&r->seen, 0);
	reader_moved(e);
}

void
engine_reader_online(struct engine *e, int reader_id)
{
	struct reader *r = &e->readers[reader_id];

	if (atomic_load_explicit(&r->seen, memory_order_relaxed) == 0)
		atomic_store(&r->seen, atomic_load(&e->gp));
}

size_t
engine_retired_count(struct engine *e)
{
	return atomic_load(&e->n_retired);
}

const struct model *
engine_snapshot(struct engine *e)
{
	if (my_engine == e)
		engine_reader_online(e, my_reader_id);
	return atomic_load(&e->current);
}
