/*
 * share.h - observed probes shared between the daemons of one
 * PostgreSQL store, so that `wait` and `rollout` see every load balancer
 * of a node whichever daemon they ask.
 *
 * A thread of its own, every SHARE_INTERVAL_MS while answers come in
 * (a quiet daemon's sleeps until its next read or heartbeat, woken by
 * the next answer recorded, from the probe's thread): it collects the reports
 * due in observe.c (a change of answer at once, the first answers after
 * a status change, otherwise a refresh every few seconds: never one write
 * per probe), hands them to the engine's store (engine_share_probes: on
 * this thread, through the store's own connection for it, never the
 * engine thread), and, every SHARE_READ_MS (up to SHARE_IDLE_READ_MS
 * while the fleet is quiet; at once when it has reports of its own to
 * write), reads back what the other daemons reported of the nodes this
 * daemon is asked about (observe_interest_take; a node asked the first
 * time at once, whole), unless the store says it is unchanged: the
 * reports written since the last read, merged in (observe_merge_remote),
 * and now and then every one (observe_set_remote); with nobody asking,
 * nothing is read. When the store is away the reports are kept for
 * later (observe_report_again) and the other daemons' last reports stay
 * as they were. Only started for a shared store.
 *
 * The same thread keeps the fleet: every SHARE_HEARTBEAT_MS it registers
 * this daemon (id, host, listen addresses, the store version it has
 * applied, the time) and reads every registered daemon back, for
 * GET /v1/daemons.
 */
#ifndef CM_SHARE_H
#define CM_SHARE_H

#include "../core/error.h"
#include "../engine/engine.h"
#include "observe.h"

#define SHARE_INTERVAL_MS 200
#define SHARE_READ_MS 500
#define SHARE_IDLE_READ_MS 2000 /* when nothing changed for a few reads */
#define SHARE_HEARTBEAT_MS 2000

struct share;

/* The web page's sessions, shared every SHARE_READ_MS when given (the
 * http layer owns them; these run on the share thread). */
#define SHARE_SESSIONS_MAX 1024 /* added or ended per exchange */
struct share_session_hooks {
	/* Copies the sessions started and ended here since the last
	 * successful exchange (at most SHARE_SESSIONS_MAX of each). */
	void (*collect)(void *arg, struct session_record *added, size_t *n_added,
	                struct session_record *ended, size_t *n_ended);
	/* The exchange worked: the collected ones are in the store, and all
	 * is every live session of the store. */
	void (*apply)(void *arg, size_t n_added, size_t n_ended, const struct session_record *all,
	              size_t n_all);
	void *arg;
};

/* Starts sharing o's reports as daemon me (me->id unique among the
 * store's daemons, e.g. "host:port"; host, listen, started_at filled),
 * and the sessions through the hooks (may be NULL). e and o must outlive
 * it. */
struct share *share_start(struct engine *e, struct observe *o, const struct daemon_record *me,
                          const struct share_session_hooks *sessions, struct error *err);

/* The fleet as last read. */
struct share_fleet {
	struct daemon_record *daemons; /* malloc'd copy, sorted by id */
	size_t n;
	int64_t store_version; /* the store's version ... */
	int64_t changed_at;    /* ... and when it was committed (ms) */
	int64_t read_at;       /* when this was read (ms); 0: never */
};
/* Copies the last fleet read into *f (the caller frees f->daemons). */
void share_fleet(struct share *s, struct share_fleet *f);
/* Stops the thread (at once) and frees it. NULL is allowed. No probe may
 * be answered through o from then on (stop the server first). */
void share_stop(struct share *s);

#endif
