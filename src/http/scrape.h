/*
 * scrape.h - GET /metrics (scrape.c): the daemon's state in Prometheus'
 * text format, rendered by observe/metrics.c (docs/METRICS.md).
 */
#ifndef CM_SCRAPE_H
#define CM_SCRAPE_H

#include "auth.h"
#include "http.h"

/* The router's /metrics line, behind the gate ROUTE_LOCAL_OR_CREDENTIALS
 * (public on a connection made to a loopback address, else a viewer). */
void scrape_handle(struct request *r, const struct route *rt);

/* The --metrics-listen worker's one answer: r (kept in h2o's pool) asked
 * for /metrics there, where no credentials are asked for. */
void scrape_handle_dedicated(struct request *r);

#endif
