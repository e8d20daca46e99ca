/*
 * share.h - observed probes shared between the daemons of one
 * PostgreSQL store, so that `wait` and `rollout` see every load balancer
 * of a node whichever daemon they ask.
 *
 * A thread of its own, every SHARE_INTERVAL_MS: it collects the reports
 * due in observe.c (a change of answer at once, the first answers after
 * a status change, otherwise a refresh every few seconds: never one write
 * per probe), hands them to the store through the engine, and, every
 * SHARE_READ_MS, reads back what the other daemons reported into observe
 * (observe_set_remote). When the store is away the reports are kept for
 * later (observe_report_again) and the other daemons' last reports stay
 * as they were. Only started for a shared store.
 */
#ifndef CM_SHARE_H
#define CM_SHARE_H

#include "../core/error.h"
#include "../engine/engine.h"
#include "observe.h"

#define SHARE_INTERVAL_MS 200
#define SHARE_READ_MS 500

struct share;

/* Starts sharing o's reports as daemon (an id unique among the store's
 * daemons, e.g. "host:port"). e and o must outlive it. */
struct share *share_start(struct engine *e, struct observe *o, const char *daemon,
                          struct error *err);
/* Stops the thread (within one interval) and frees it. NULL is allowed. */
void share_stop(struct share *s);

#endif
