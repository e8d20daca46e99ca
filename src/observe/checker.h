/*
 * checker.h - the application checks: a thread of its own that GETs each
 * node's `check` URL on an interval and publishes the result through
 * observe.h, where the probe and the agent read it.
 *
 * A check passes on a 2xx or 3xx answer within the timeout; anything else
 * (another status, refused, timed out) fails. A node starts up; it goes
 * down after `fall` failures in a row and comes back after `rise` passes
 * in a row. Only the answer to load balancers changes: the administrative
 * status is never touched. All checks of a round run concurrently (libcurl
 * multi), so a slow application delays nobody, and nothing here ever runs
 * on an HTTP worker.
 */
#ifndef CM_CHECKER_H
#define CM_CHECKER_H

#include <stdint.h>

#include "../core/error.h"
#include "../engine/engine.h"
#include "observe.h"

struct checker_options {
	int64_t interval_ms; /* between the starts of two rounds */
	int64_t timeout_ms;  /* per check */
	int fall;            /* failures in a row to go down */
	int rise;            /* passes in a row to come back */
};

struct checker;

/* Starts the checker thread. It reads the nodes' check URLs from the
 * engine's snapshots (as a registered reader) and writes states into o;
 * both must outlive it. Returns NULL with err filled when the thread
 * cannot start. */
struct checker *checker_start(struct engine *e, struct observe *o,
                              const struct checker_options *opts, struct error *err);

/* Stops the thread (within about one poll slice, even mid-round), and
 * frees the checker. NULL is allowed. */
void checker_stop(struct checker *c);

#endif
