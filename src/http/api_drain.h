/*
 * api_drain.h - the drain proof as a service (api_drain.c, docs/API.md
 * "Drained and serving"): one handler per line of the router's table.
 */
#ifndef CM_API_DRAIN_H
#define CM_API_DRAIN_H

#include "http.h"

#define DRAIN_WAIT_MAX_MS (900 * 1000LL) /* ?wait= at most 15 minutes */
#define DRAIN_HELD_PER_CLIENT 64         /* held waits per client address (429 past it) */
#define DRAIN_HELD_MAX 4096              /* held waits in all (503 past it) */

void api_drain_drained_get(struct request *r, const struct route *rt);
void api_drain_serving_get(struct request *r, const struct route *rt);
void api_drain_drain_post(struct request *r, const struct route *rt);
void api_drain_offline_post(struct request *r, const struct route *rt);

#endif
