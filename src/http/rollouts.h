/*
 * rollouts.h - the rollouts in progress (rollouts.c, docs/API.md
 * "Rollouts"): a running `clustermgmt rollout` registers itself, beats
 * every few seconds with its phase, current node and verdicts so far, and
 * says how it ended; everyone sees it with GET, and a second rollout on
 * the same cluster is refused (409) while one is registered and not
 * finished, unless it asks with "force".
 *
 * The registry is this daemon's memory, not the store: a rollout talks to
 * one daemon for its whole run, and a daemon restart forgets it (the
 * nodes it holds out are protected by their TTL as before). It is bounded
 * (ROLLOUTS_MAX entries over every cluster; the oldest finished or silent
 * one makes room, else 503).
 */
#ifndef CM_HTTP_ROLLOUTS_H
#define CM_HTTP_ROLLOUTS_H

#include "http.h"

#define ROLLOUTS_MAX 64
#define ROLLOUT_STALE_MS (30 * 1000) /* no heartbeat for this long: its client is gone */

void rollouts_get(struct request *r, const struct route *rt);
void rollouts_post(struct request *r, const struct route *rt);
void rollout_put(struct request *r, const struct route *rt);

#endif
