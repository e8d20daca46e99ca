/*
 * compat.h - the seed product's REST API, byte-compatible (compat.c):
 *
 *   GET  {mount}/++rest++nodestatus   the cluster's nodes and statuses
 *   POST {mount}/++rest++setstatus    a change set: form field `change`
 *                                     or a JSON body
 *
 * The router has matched the path and authenticated the request; the
 * cluster is the one named rt->cluster, looked up in the current snapshot.
 */
#ifndef CM_COMPAT_H
#define CM_COMPAT_H

#include "http.h"

void compat_nodestatus(struct request *r, const struct route *rt);
/* Builds a set-status command and answers, once it is committed, with the
 * nodestatus document. */
void compat_setstatus(struct request *r, const struct route *rt);

#endif
