/*
 * probe.h - the load balancers' health probe (probe.c):
 * GET/HEAD {mount}?node=NAME.
 */
#ifndef CM_PROBE_H
#define CM_PROBE_H

#include "http.h"

/* Answers the probe of the cluster at rt->mounted, synchronously, from
 * the snapshot the router read: r may live on the worker's stack, and
 * nothing is allocated outside h2o's request pool. */
void probe_handle(struct request *r, const struct route *rt);

#endif
