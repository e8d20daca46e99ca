/*
 * share.c - observed probes shared through the store (see share.h).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "share.h"

/* Reports written per round; the rest wait. A daemon seeing a new load
 * balancer probe 5,000 nodes sends them in 3 rounds. */
#define SHARE_BATCH_MAX 2048

struct share {
	struct engine *engine;
	struct observe *observe;
	char daemon[DAEMON_ID_MAX + 1];
	struct daemon_record me;
	pthread_mutex_t fleet_lock; /* guards fleet */
	struct share_fleet fleet;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int is_stopping; /* under lock */
	int is_woken;    /* under lock: an answer was recorded (share_wake) */
	struct probe_report batch[SHARE_BATCH_MAX];
	struct share_session_hooks sessions;
	int has_sessions;
	struct session_record added[SHARE_SESSIONS_MAX], ended[SHARE_SESSIONS_MAX];
};

/* Waits ms, or until an answer is recorded (when armed, share_nap) or
 * the thread is stopped; 1 when stopping. */
static int
share_sleep(struct share *s, int64_t ms)
{
	struct timespec ts;
	int64_t until = time_now_ms() + ms;
	int is_stopping;

	ts.tv_sec = until / 1000;
	ts.tv_nsec = (until % 1000) * 1000000;
	pthread_mutex_lock(&s->lock);
	while (!s->is_stopping && !s->is_woken &&
	       pthread_cond_timedwait(&s->wake, &s->lock, &ts) == 0)
		;
	s->is_woken = 0;
	is_stopping = s->is_stopping;
	pthread_mutex_unlock(&s->lock);
	return is_stopping;
}

/* From a probe's thread: the first answer recorded while the share
 * thread naps. */
static void
share_wake(void *arg)
{
	struct share *s = arg;

	pthread_mutex_lock(&s->lock);
	s->is_woken = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

/* How long to sleep before the next round: SHARE_INTERVAL_MS while
 * answers come in (or reports wait), else until the next read or
 * heartbeat is due, woken by the next answer recorded: a quiet daemon
 * wakes once per read, not every SHARE_INTERVAL_MS. */
static int64_t
share_nap(struct share *s, int64_t next_read, int64_t next_beat)
{
	int64_t due = next_read < next_beat ? next_read : next_beat, left = due - time_now_ms();

	if (left <= SHARE_INTERVAL_MS || !observe_collect_arm(s->observe))
		return SHARE_INTERVAL_MS;
	return left;
}

static void *
share_thread(void *arg)
{
	struct share *s = arg;
	struct engine_probe_share p;
	struct probe_interest *interest;
	struct error err;
	int64_t now, next_read = 0, next_beat = 0, read_every = SHARE_READ_MS;
	int was_failing = 0, is_beat_due;
	size_t i;

	while (!share_sleep(s, share_nap(s, next_read, next_beat))) {
		now = time_now_ms();
		memset(&p, 0, sizeof(p));
		p.daemon = s->daemon;
		p.mine = s->batch;
		p.n_mine =
		    observe_collect_reports(s->observe, s->daemon, now, s->batch, SHARE_BATCH_MAX);
		p.forget_before = now - OBSERVE_FORGET_MS;
		if (p.n_mine > 0 && next_read > now + SHARE_READ_MS) /* busy again */
			next_read = now + SHARE_READ_MS;
		p.want_others = now >= next_read;
		p.n_interest = observe_interest_take(s->observe, now, &interest);
		p.interest = interest;
		for (i = 0; i < p.n_interest; i++)
			p.want_others |= interest[i].is_new; /* a reader waits for it */
		is_beat_due = now >= next_beat;
		/* A quiet daemon's read and heartbeat share their rounds (on
		 * PostgreSQL one statement for both): each is taken early when
		 * the other is due and it would be within half its interval. */
		if (is_beat_due && now >= next_read - read_every / 2)
			p.want_others = 1;
		if (p.want_others && read_every >= SHARE_IDLE_READ_MS &&
		    now >= next_beat - SHARE_HEARTBEAT_MS / 2)
			is_beat_due = 1;
		if (p.want_others && s->has_sessions) {
			p.with_sessions = 1;
			s->sessions.collect(s->sessions.arg, s->added, &p.n_sessions_added,
			                    s->ended, &p.n_sessions_ended);
			p.sessions_added = s->added;
			p.sessions_ended = s->ended;
		}
		if (is_beat_due) {
			s->me.heartbeat_at = now;
			p.me = &s->me;
		}
		if (p.n_mine == 0 && !p.want_others && p.me == NULL) {
			free(interest);
			continue;
		}
		if (engine_share_probes(s->engine, &p, &err) != 0) {
			observe_report_again(s->observe); /* nothing reached the store */
			/* An outage (503) is the store's to log, once; anything else
			 * is a fault worth an operator's eye, once per streak. */
			if (!was_failing)
				log_kv(err.status == 503 ? LOG_DEBUG : LOG_ERROR,
				       "cannot share with the other daemons", "error", err.what,
				       NULL);
			was_failing = 1;
			free(p.others);
			free(p.fleet);
			free(p.sessions);
			free(interest);
			continue;
		}
		if (p.with_sessions && p.sessions != NULL) /* NULL: unchanged */
			s->sessions.apply(s->sessions.arg, p.n_sessions_added, p.n_sessions_ended,
			                  p.sessions, p.n_sessions);
		free(p.sessions);
		was_failing = 0;
		if (p.me != NULL) {
			pthread_mutex_lock(&s->fleet_lock);
			free(s->fleet.daemons);
			s->fleet = (struct share_fleet){p.fleet, p.n_fleet, p.store_version,
			                                p.changed_at, now};
			pthread_mutex_unlock(&s->fleet_lock);
			next_beat = now + SHARE_HEARTBEAT_MS;
		}
		if (p.want_others) {
			if (p.others != NULL && p.others_are_delta)
				observe_merge_remote(s->observe, p.others, p.n_others,
				                     p.forget_before);
			else if (p.others != NULL) /* NULL: unchanged since the last read */
				observe_set_remote(s->observe, p.others, p.n_others);
			observe_interest_read(s->observe, interest, p.n_interest);
			/* A quiet fleet is asked less and less often, up to
			 * SHARE_IDLE_READ_MS; anything read or written here
			 * brings it back to SHARE_READ_MS. */
			if (p.others != NULL || p.sessions != NULL || p.n_mine > 0 ||
			    p.n_sessions_added > 0 || p.n_sessions_ended > 0)
				read_every = SHARE_READ_MS;
			else if (read_every < SHARE_IDLE_READ_MS)
				read_every = read_every * 2 < SHARE_IDLE_READ_MS
				                 ? read_every * 2
				                 : SHARE_IDLE_READ_MS;
			next_read = now + read_every;
		} else {
			free(p.others);
		}
		free(interest);
	}
	return NULL;
}

struct share *
share_start(struct engine *e, struct observe *o, const struct daemon_record *me,
            const struct share_session_hooks *sessions, struct error *err)
{
	struct share *s = xcalloc(1, sizeof(*s));

	if (sessions != NULL) {
		s->sessions = *sessions;
		s->has_sessions = 1;
	}
	s->engine = e;
	s->observe = o;
	s->me = *me;
	snprintf(s->daemon, sizeof(s->daemon), "%s", me->id);
	pthread_mutex_init(&s->fleet_lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	observe_set_collect_wake(o, share_wake, s);
	if (pthread_create(&s->thread, NULL, share_thread, s) != 0) {
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->wake);
		free(s);
		error_set(err, 500, "cannot start the probe sharing thread");
		return NULL;
	}
	return s;
}

void
share_stop(struct share *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->is_stopping = 1;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->fleet_lock);
	free(s->fleet.daemons);
	free(s);
}

void
share_fleet(struct share *s, struct share_fleet *f)
{
	pthread_mutex_lock(&s->fleet_lock);
	*f = s->fleet;
	f->daemons = xcalloc(f->n > 0 ? f->n : 1, sizeof(*f->daemons));
	if (f->n > 0)
		memcpy(f->daemons, s->fleet.daemons, f->n * sizeof(*f->daemons));
	pthread_mutex_unlock(&s->fleet_lock);
}
