/*
 * change.h - what one write changed, carried by its notification, so
 * that the other daemons of a shared store apply it without reading the
 * store.
 *
 * Every write's notification wakes every daemon; each used to read what
 * the write changed (nine statements, each parsed and planned by
 * PostgreSQL), and at 64 daemons that reading was most of what a write
 * cost the server (docs/BENCHMARKS.md). The common write, a status
 * change of a few nodes of one cluster, now travels whole: the writer
 * sends the documents of the nodes it changed, with the store version
 * they apply to (from) and the one they make (version). A daemon at
 * exactly from applies them to a copy of its model and is at version;
 * any other daemon, and any other write (a node list, users, tokens,
 * load balancers, more than STORE_CHANGE_NODES_MAX nodes), reads the
 * store as before. The version notification is still sent after it
 * (daemons of an earlier release read it; this one skips the read once
 * the change made it current).
 *
 * The payload is JSON:
 *   {"from":F,"version":V,"cluster":C,"cluster_version":CV,
 *    "nodes":[{"name","status","reason","changed_by","changed_at",
 *              "expires_at","address","check"}...]}
 * exactly the columns the store holds for them.
 */
#ifndef CM_STORE_CHANGE_H
#define CM_STORE_CHANGE_H

#include <stdint.h>

#include "../core/model.h"

#define STORE_CHANGE_NODES_MAX 64
/* PostgreSQL refuses a notification payload of 8,000 bytes or more. */
#define STORE_CHANGE_PAYLOAD_MAX 7000

/* The payload (malloc'd) when after differs from before, the store at
 * version from, only in the documents of at most STORE_CHANGE_NODES_MAX
 * nodes of one cluster (and its version), and fits
 * STORE_CHANGE_PAYLOAD_MAX; else NULL. */
char *store_change_encode(const struct model *before, const struct model *after, int64_t from,
                          int64_t version);

struct store_change;

/* A payload read back; NULL when it is not one. */
struct store_change *store_change_decode(const char *payload);
void store_change_free(struct store_change *ch);
int64_t store_change_from(const struct store_change *ch);
int64_t store_change_version(const struct store_change *ch);

/* Applies ch to m, a copy of the model at store_change_from(ch).
 * Returns 0, or -1 when ch does not fit m (a cluster or node m lacks):
 * m is then half changed and must be dropped. */
int store_change_apply(const struct store_change *ch, struct model *m);

#endif
