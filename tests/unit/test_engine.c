/*
 * test_engine.c - the engine's contract (engine.h) against a real SQLite
 * store in a temporary directory: jobs run one at a time in the order
 * they were submitted, engine_run_sync waits for its job, TTLs expire
 * without any job, snapshots are published after a write and replaced
 * ones are freed once no reader can hold them - promptly, also when the
 * readers are idle (offline) and nobody submits anything else.
 *
 * Waits for something the engine does on its own thread are bounded
 * (WAIT_MS, generous) and end as soon as it has happened.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/core/model.h"
#include "../../src/engine/engine.h"
#include "../../src/store/store.h"

#define WAIT_MS 10000
#define N_WRITES 200

struct fixture {
	char dir[64];
	char path[96];
	struct engine *engine;
};

/* --- set-up ------------------------------------------------------------ */

static void
remove_store_files(const char *path)
{
	const char *suffixes[] = {"", "-wal", "-shm", "-journal", ".lock"};
	char name[128];
	size_t i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(name, sizeof(name), "%s%s", path, suffixes[i]);
		unlink(name);
	}
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct error err = {0};
	struct store *store;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_engine.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/cm.db", f->dir);
	store = store_open(f->path, &err);
	if (store == NULL)
		fail_msg("store_open: %d %s", err.status, err.what);
	f->engine = engine_start(store, &err);
	if (f->engine == NULL)
		fail_msg("engine_start: %d %s", err.status, err.what);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f->engine != NULL)
		engine_stop(f->engine);
	remove_store_files(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Waits (bounded) until at most n replaced snapshots are alive; returns
 * how many are. */
static size_t
wait_retired_at_most(struct engine *e, size_t n)
{
	int64_t deadline = now_ms() + WAIT_MS;

	while (engine_retired_count(e) > n && now_ms() < deadline)
		sleep_ms(1);
	return engine_retired_count(e);
}

/* --- jobs -------------------------------------------------------------- */

static int
run_nothing(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	(void)tx;
	(void)job;
	(void)err;
	return 0;
}

/* A read job through the queue: when it returns, every job submitted
 * before it has run, and so has the engine's own work after each. */
static void
sync_point(struct engine *e)
{
	struct engine_job job = {.run = run_nothing};

	assert_int_equal(engine_run_sync(e, &job), 0);
}

/* Runs a command job to the end; fails the test when it is refused. */
static void
command_sync(struct engine *e, struct engine_job *job)
{
	snprintf(job->who_name, sizeof(job->who_name), "tester");
	if (engine_run_sync(e, job) != 0)
		fail_msg("command: %d %s", job->err.status, job->err.what);
	command_free(&job->command);
}

/* The default cluster's nodes become zope1 and zope2. */
static void
add_nodes(struct engine *e)
{
	struct engine_job job = {0};
	struct command *c = engine_job_command(&job, COMMAND_SET_NODE_LIST);

	c->cluster = strdup(DEFAULT_CLUSTER);
	command_add_name(c, "zope1");
	command_add_name(c, "zope2");
	command_sync(e, &job);
}

/* Fills job as a command setting one node's status. */
static void
status_command(struct engine_job *job, const char *node, enum node_status status,
               const char *reason, int64_t ttl_ms)
{
	struct command *c = engine_job_command(job, COMMAND_SET_STATUS);

	c->cluster = strdup(DEFAULT_CLUSTER);
	c->changes.n = 1;
	c->changes.changes = calloc(1, sizeof(*c->changes.changes));
	assert_non_null(c->changes.changes);
	c->changes.changes[0] =
	    (struct status_change){strdup(node), status, strdup(reason), ttl_ms};
}

static void
set_status(struct engine *e, const char *node, enum node_status status, const char *reason,
           int64_t ttl_ms)
{
	struct engine_job job = {0};

	status_command(&job, node, status, reason, ttl_ms);
	command_sync(e, &job);
}

/* Write number i: zope1 offline on odd i, online on even i. */
static void
toggle(struct engine *e, int i)
{
	set_status(e, "zope1", i % 2 ? NODE_OFFLINE : NODE_ONLINE, "", 0);
}

static const struct node *
snapshot_node(const struct model *m, const char *name)
{
	const struct cluster *c = model_find_cluster(m, DEFAULT_CLUSTER);
	const struct node *n;

	assert_non_null(c);
	n = cluster_find_node(c, name, strlen(name));
	assert_non_null(n);
	return n;
}

/* --- job order and sync waits ------------------------------------------- */

#define N_ORDERED 100

struct ordered {
	struct engine_job job;
	int index;
	int *log;
	_Atomic int *n_logged;
};

/* Called on the engine thread, one job at a time: no lock needed. */
static void
done_log_index(struct engine_job *job)
{
	struct ordered *o = job->data;

	o->log[atomic_fetch_add(o->n_logged, 1)] = o->index;
}

/* Reads and commands share one queue and finish in submission order. */
static void
test_jobs_run_in_submission_order(void **state)
{
	struct fixture *f = *state;
	struct ordered *jobs = calloc(N_ORDERED, sizeof(*jobs));
	int log[N_ORDERED], i;
	_Atomic int n_logged = 0;

	assert_non_null(jobs);
	add_nodes(f->engine);
	for (i = 0; i < N_ORDERED; i++) {
		jobs[i] = (struct ordered){.index = i, .log = log, .n_logged = &n_logged};
		jobs[i].job = (struct engine_job){.run = run_nothing, .done = done_log_index};
		if (i % 3 == 0)
			status_command(&jobs[i].job, "zope1", i % 2 ? NODE_OFFLINE : NODE_ONLINE,
			               "", 0);
		jobs[i].job.data = &jobs[i];
		engine_submit(f->engine, &jobs[i].job);
	}
	sync_point(f->engine);
	assert_int_equal(atomic_load(&n_logged), N_ORDERED);
	for (i = 0; i < N_ORDERED; i++) {
		assert_int_equal(log[i], i);
		assert_int_equal(jobs[i].job.rc, 0);
		engine_job_release(&jobs[i].job);
	}
	free(jobs);
}

static int
run_slow_read(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	(void)tx;
	(void)err;
	sleep_ms(200);
	*(int *)job->data = 1;
	return 0;
}

static void
test_run_sync_waits_for_the_job(void **state)
{
	struct fixture *f = *state;
	struct engine_job slow = {.run = run_slow_read};
	struct engine_job refused = {0};
	int has_run = 0;

	slow.data = &has_run;
	assert_int_equal(engine_run_sync(f->engine, &slow), 0);
	assert_int_equal(has_run, 1);

	add_nodes(f->engine);
	/* committed and published before run_sync returned */
	assert_int_equal(model_find_cluster(engine_snapshot(f->engine), DEFAULT_CLUSTER)->n_nodes,
	                 2);

	status_command(&refused, "nosuchnode", NODE_OFFLINE, "", 0);
	assert_int_equal(engine_run_sync(f->engine, &refused), -1);
	assert_int_equal(refused.rc, -1);
	assert_int_equal(refused.err.status, 404);
	engine_job_release(&refused);
}

/* --- TTL ---------------------------------------------------------------- */

struct ttl_watch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int is_back_online;
	char changed_by[32];
	int64_t expires_at; /* the offline status's, engine clock */
	int64_t back_at;    /* when the TTL put it back, engine clock */
};

/* Engine thread, on every publication. */
static void
watch_zope1(void *arg, const struct model *m)
{
	struct ttl_watch *w = arg;
	const struct node *n = snapshot_node(m, "zope1");

	pthread_mutex_lock(&w->lock);
	if (n->status == NODE_OFFLINE)
		w->expires_at = n->expires_at;
	if (n->status == NODE_ONLINE) {
		w->is_back_online = 1;
		w->back_at = n->changed_at;
		snprintf(w->changed_by, sizeof(w->changed_by), "%s", n->changed_by);
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->lock);
}

static void
test_ttl_returns_node_online_without_any_job(void **state)
{
	struct fixture *f = *state;
	struct ttl_watch w = {.is_back_online = 0};
	struct timespec until;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	add_nodes(f->engine);
	engine_on_change(f->engine, watch_zope1, &w);
	set_status(f->engine, "zope1", NODE_OFFLINE, "short", 300);
	assert_int_equal(w.is_back_online, 0); /* the write itself took it offline */

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += WAIT_MS / 1000;
	pthread_mutex_lock(&w.lock);
	while (!w.is_back_online && pthread_cond_timedwait(&w.cond, &w.lock, &until) == 0)
		;
	pthread_mutex_unlock(&w.lock);
	engine_on_change(f->engine, NULL, NULL);

	assert_int_equal(w.is_back_online, 1);
	assert_string_equal(w.changed_by, "ttl");
	/* not before it was due, by the clock the engine decides with */
	assert_true(w.expires_at > 0);
	assert_true(w.back_at >= w.expires_at);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
}

/* --- snapshots ---------------------------------------------------------- */

static void
test_write_publishes_new_snapshot_old_stays_valid_until_quiescent(void **state)
{
	struct fixture *f = *state;
	int reader = engine_reader_register(f->engine);
	const struct model *before, *after;

	add_nodes(f->engine);
	before = engine_snapshot(f->engine); /* brings this reader online */
	set_status(f->engine, "zope1", NODE_DRAIN, "deploy", 0);
	after = engine_snapshot(f->engine);

	assert_ptr_not_equal(before, after);
	assert_int_equal(snapshot_node(after, "zope1")->status, NODE_DRAIN);
	/* the replaced one is still alive and unchanged (ASan would see a
	 * use after free) */
	assert_int_equal(engine_retired_count(f->engine), 1);
	assert_int_equal(snapshot_node(before, "zope1")->status, NODE_ONLINE);
	assert_string_equal(snapshot_node(before, "zope1")->reason, "");

	/* a quiescent point alone frees it: the engine is woken, no job (the
	 * pause lets the engine finish its last round and go to sleep, so
	 * that only the wake-up can free it) */
	sleep_ms(100);
	engine_reader_quiescent(f->engine, reader);
	assert_int_equal(wait_retired_at_most(f->engine, 0), 0);
	engine_reader_unregister(f->engine, reader);
}

static void
test_writes_with_no_reader_online_keep_no_old_snapshots(void **state)
{
	struct fixture *f = *state;
	int i;

	/* The side thread (password checks) is a registered reader that
	 * never gets a job here: it must not hold anything up. */
	add_nodes(f->engine);
	for (i = 0; i < N_WRITES; i++) {
		toggle(f->engine, i);
		assert_in_range(engine_retired_count(f->engine), 0, 1);
	}
	/* the readers' last moves wake the engine, which frees the rest on
	 * its own time: done() of a job is called before that */
	assert_int_equal(wait_retired_at_most(f->engine, 0), 0);
}

/* A reader thread that registers, reads a snapshot, goes offline and
 * waits, as an idle HTTP worker does. */
struct idle_reader {
	pthread_t thread;
	struct engine *engine;
	pthread_barrier_t *ready;
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	int *is_stopping;
};

static void *
idle_reader_main(void *arg)
{
	struct idle_reader *r = arg;
	int id = engine_reader_register(r->engine);

	assert_non_null(model_find_cluster(engine_snapshot(r->engine), DEFAULT_CLUSTER));
	engine_reader_offline(r->engine, id);
	pthread_barrier_wait(r->ready);
	pthread_mutex_lock(r->lock);
	while (!*r->is_stopping)
		pthread_cond_wait(r->cond, r->lock);
	pthread_mutex_unlock(r->lock);
	engine_reader_unregister(r->engine, id);
	return NULL;
}

static void
test_idle_offline_readers_keep_no_old_snapshots(void **state)
{
	struct fixture *f = *state;
	struct idle_reader readers[4];
	pthread_barrier_t ready;
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	int i, is_stopping = 0;

	add_nodes(f->engine);
	pthread_barrier_init(&ready, NULL, 5);
	for (i = 0; i < 4; i++) {
		readers[i] = (struct idle_reader){0, f->engine, &ready, &lock, &cond, &is_stopping};
		assert_int_equal(
		    pthread_create(&readers[i].thread, NULL, idle_reader_main, &readers[i]), 0);
	}
	pthread_barrier_wait(&ready);
	for (i = 0; i < N_WRITES; i++) {
		toggle(f->engine, i);
		assert_in_range(engine_retired_count(f->engine), 0, 1);
	}
	sync_point(f->engine);
	assert_int_equal(engine_retired_count(f->engine), 0);

	pthread_mutex_lock(&lock);
	is_stopping = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	for (i = 0; i < 4; i++)
		pthread_join(readers[i].thread, NULL);
	pthread_barrier_destroy(&ready);
}

static void
test_online_reader_keeps_its_snapshot_alive_until_offline(void **state)
{
	struct fixture *f = *state;
	int reader = engine_reader_register(f->engine), i;
	const struct model *held;

	add_nodes(f->engine);
	held = engine_snapshot(f->engine);
	for (i = 0; i < 50; i++)
		set_status(f->engine, "zope2", NODE_OFFLINE, i % 2 ? "odd" : "even", 0);
	sync_point(f->engine);
	/* all 50 replaced since this reader came online may be held by it */
	assert_int_equal(engine_retired_count(f->engine), 50);
	assert_int_equal(snapshot_node(held, "zope2")->status, NODE_ONLINE);

	sleep_ms(100); /* the engine asleep: only the wake-up can free them */
	engine_reader_offline(f->engine, reader);
	assert_int_equal(wait_retired_at_most(f->engine, 0), 0);
	engine_reader_unregister(f->engine, reader);
}

/* Readers that read without pause, passing a quiescent point after each
 * read, while writes go on: no reader ever sees a freed snapshot (ASan
 * run), and nothing stays behind once they stop. */
struct busy_reader {
	pthread_t thread;
	struct engine *engine;
	_Atomic int *is_stopping;
	long n_reads;
};

static void *
busy_reader_main(void *arg)
{
	struct busy_reader *r = arg;
	int id = engine_reader_register(r->engine);

	while (!atomic_load(r->is_stopping)) {
		const struct model *m = engine_snapshot(r->engine);
		const struct node *n = snapshot_node(m, "zope1");
		if (n->status != NODE_ONLINE && n->status != NODE_OFFLINE)
			abort();
		r->n_reads++;
		if (r->n_reads % 8 == 0)
			engine_reader_offline(r->engine, id);
		else
			engine_reader_quiescent(r->engine, id);
	}
	engine_reader_unregister(r->engine, id);
	return NULL;
}

static void
test_busy_readers_and_writes_free_everything(void **state)
{
	struct fixture *f = *state;
	struct busy_reader readers[4];
	_Atomic int is_stopping = 0;
	int i;

	add_nodes(f->engine);
	for (i = 0; i < 4; i++) {
		readers[i] = (struct busy_reader){0, f->engine, &is_stopping, 0};
		assert_int_equal(
		    pthread_create(&readers[i].thread, NULL, busy_reader_main, &readers[i]), 0);
	}
	for (i = 0; i < N_WRITES; i++)
		toggle(f->engine, i);
	atomic_store(&is_stopping, 1);
	for (i = 0; i < 4; i++)
		pthread_join(readers[i].thread, NULL);
	/* the readers' last moves wake the engine, which frees the rest on
	 * its own time: done() of a job is called before that */
	assert_int_equal(wait_retired_at_most(f->engine, 0), 0);
}

static void
test_reader_slots_are_reused(void **state)
{
	struct fixture *f = *state;
	int i, id;

	/* far more than the 64 slots, one at a time */
	for (i = 0; i < 500; i++) {
		id = engine_reader_register(f->engine);
		assert_in_range(id, 0, 63);
		engine_reader_unregister(f->engine, id);
	}
}

/* Metrics: committed writes are counted and timed, refused ones are not,
 * and the store is up while commits succeed. */
static void
test_stats_count_and_time_committed_writes(void **state)
{
	struct fixture *f = *state;
	struct engine_job refused = {0};
	struct engine_stats before, after;
	uint64_t timed = 0;
	int i;

	add_nodes(f->engine);
	engine_stats(f->engine, &before);
	assert_int_equal(before.is_store_up, 1);
	toggle(f->engine, 1);
	toggle(f->engine, 2);
	status_command(&refused, "nosuchnode", NODE_OFFLINE, "", 0);
	assert_int_equal(engine_run_sync(f->engine, &refused), -1);
	engine_job_release(&refused);
	engine_stats(f->engine, &after);
	assert_int_equal(after.writes_committed, before.writes_committed + 2);
	assert_int_equal(after.writes_failed, before.writes_failed);
	assert_int_equal(after.is_store_up, 1);
	for (i = 0; i <= HISTOGRAM_BUCKETS; i++)
		timed += atomic_load(&after.write_latency->buckets[i]);
	assert_int_equal(timed, after.writes_committed); /* one observation per commit */
	assert_true(atomic_load(&after.write_latency->sum_us) > 0);
}

#define ENGINE_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    ENGINE_TEST(test_jobs_run_in_submission_order),
	    ENGINE_TEST(test_run_sync_waits_for_the_job),
	    ENGINE_TEST(test_ttl_returns_node_online_without_any_job),
	    ENGINE_TEST(test_write_publishes_new_snapshot_old_stays_valid_until_quiescent),
	    ENGINE_TEST(test_writes_with_no_reader_online_keep_no_old_snapshots),
	    ENGINE_TEST(test_idle_offline_readers_keep_no_old_snapshots),
	    ENGINE_TEST(test_online_reader_keeps_its_snapshot_alive_until_offline),
	    ENGINE_TEST(test_busy_readers_and_writes_free_everything),
	    ENGINE_TEST(test_reader_slots_are_reused),
	    ENGINE_TEST(test_stats_count_and_time_committed_writes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
