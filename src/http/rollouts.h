/*
 * rollouts.h - the rollouts in progress (rollouts.c, docs/API.md
 * "Rollouts"): a running `clustermgmt rollout` registers itself, beats
 * every few seconds with its phase, current node and verdicts so far, and
 * says how it ended; everyone sees it with GET, and a second rollout on
 * the same cluster is refused (409) while one is registered and not
 * finished, unless it asks with "force".
 *
 * The registry is in the store: a daemon restart keeps it, and with a
 * store several daemons share (PostgreSQL) a rollout registered through
 * one daemon is seen, and blocks a second one, through every daemon.
 * Heartbeats update its row, never the store version. While a shared
 * store does not answer, GET serves the last list read (marked
 * "store_unreachable"), a registration is refused (503: the CLI's
 * --force starts the rollout unregistered), and a heartbeat is kept by
 * the daemon that took it. The nodes a rollout holds out are protected
 * by their TTL as before.
 *
 * It is bounded: ROLLOUTS_MAX entries over every cluster; the
 * oldest finished one, or silent for ROLLOUT_EVICT_MS, makes room, else
 * 503.
 */
#ifndef CM_HTTP_ROLLOUTS_H
#define CM_HTTP_ROLLOUTS_H

#include "http.h"

#define ROLLOUTS_MAX 64
#define ROLLOUT_STALE_MS (30 * 1000) /* no heartbeat for this long: its client is gone */
#define ROLLOUT_EVICT_MS (10 * ROLLOUT_STALE_MS) /* silent this long: may make room */
#define ROLLOUTS_READ_MS 1000 /* a shared store's list is read at most this often */

void rollouts_get(struct request *r, const struct route *rt);
void rollouts_post(struct request *r, const struct route *rt);
void rollout_put(struct request *r, const struct route *rt);

#endif
