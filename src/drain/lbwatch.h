/*
 * lbwatch.h - the load balancers' runtime access, asked aside: a thread
 * of its own reads, every DRAIN_IN_FLIGHT_POLL_MS, the state of each
 * (load balancer, server) that a judgement asked about within the last
 * LBWATCH_KEEP_MS, so that the daemon's workers read the latest answer
 * from memory and never block on a load balancer (an HAProxy socket that
 * stalls, a varnishd restarting that is waited for up to the timeout).
 *
 * A judgement asks through lbwatch_access: a reading counts only when it
 * was taken at or after the time given (so a state read before the node
 * changed is never evidence); until then the answer is -1 with why
 * "not read yet", which the judgement treats like no runtime access (the
 * probes decide, the grace covers the requests in flight).
 *
 * The table holds at most LBWATCH_MAX entries (what the held waits can
 * ask for at once); past it a new one is answered -1 "too many" until
 * others expire. Thread-safe: one mutex around the table; the load
 * balancers are asked with it released.
 */
#ifndef CM_LBWATCH_H
#define CM_LBWATCH_H

#include <stdint.h>

#include "drain.h"

#define LBWATCH_MAX 1024
#define LBWATCH_KEEP_MS 2000 /* an entry not asked about this long is dropped */

struct lbwatch;

/* Starts the watching thread; never NULL (aborts when out of memory or
 * when the thread cannot start). */
struct lbwatch *lbwatch_new(void);

/* The view a judgement asks through: readings of w taken at or after
 * since_ms (time_monotonic_ms). Filled by lbwatch_access. */
struct lbwatch_view {
	struct lbwatch *watch;
	int64_t since_ms;
	/* where the judgement's notes go (NULL: dropped); the caller's */
	void (*note)(void *arg, const char *node, const char *text);
	void *note_arg;
	unsigned n_unread; /* questions answered "not read yet" through this view */
};

/* Fills view (its note fields cleared: set them afterwards to keep the
 * notes) and acc to read from w through view, which must outlive acc's
 * use. */
void lbwatch_access(struct lbwatch *w, int64_t since_ms, struct lbwatch_view *view,
                    struct drain_access *acc);

#endif
