/*
 * scrape.h - GET /metrics (scrape.c): the daemon's state in Prometheus'
 * text format, rendered by observe/metrics.c (docs/METRICS.md).
 */
#ifndef CM_SCRAPE_H
#define CM_SCRAPE_H

#include "http.h"

/* The router's /metrics line, behind the gate ROUTE_LOCAL_OR_CREDENTIALS
 * (public on a connection made to a loopback address, else a viewer); on
 * the --metrics-listen worker the router runs it with no gate. */
void scrape_handle(struct request *r, const struct route *rt);

#endif
