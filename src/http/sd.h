/*
 * sd.h - GET /v1/sd/prometheus (sd.c): the nodes as Prometheus' HTTP
 * service discovery reads them (docs/API.md, docs/INTEGRATIONS.md).
 */
#ifndef CM_SD_H
#define CM_SD_H

#include "http.h"

/* The router's /v1/sd/prometheus line (viewer, or the page's session):
 * every node with an address, of every cluster or of ?cluster=NAME, one
 * target group each. Unknown cluster: 404; a malformed name: 400. */
void sd_prometheus_get(struct request *r, const struct route *rt);

#endif
