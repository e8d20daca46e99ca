/*
 * render.h - heavy answers rendered once and shared (render.c).
 *
 * A cluster's node list is the heaviest answer the daemon gives (1.6 MB
 * at 10,000 nodes): every held events long poll and every write's
 * answer carries it. Serialising it once per reader made one change cost
 * as many renders as there were readers. Here it is serialised once per
 * cluster version on each worker thread and kept in a small per-thread
 * cache; every reply that needs it links the same reference-counted
 * buffer into its request's pool and hands it to h2o without a copy, so
 * the text lives until the last reader's response is written.
 *
 * Threading: every function runs on the worker thread that owns the
 * request; the cache is that thread's own (no locks).
 */
#ifndef CM_RENDER_H
#define CM_RENDER_H

#include <jansson.h>

#include "http.h"

/* One node's document (api_node_json's shape). */
typedef json_t *(*render_node_fn)(const struct node *n);

/* Replies 200 application/json with {"cluster","version","nodes":
 * [node(n), ...]} (what json_dumps of that document gives compactly, keys
 * in insertion order: byte for byte what reply_json sends), rendered only
 * when this thread has no rendering of this cluster at this version yet,
 * and then re-rendering only the nodes that changed since this thread
 * last rendered it: every other node's text is kept, so a single-node
 * change to a 10,000-node cluster costs one node's rendering and a copy
 * of the text, not 10,000 renderings. With suffix (NULL for none) the
 * document's closing '}' is replaced by suffix, which must itself close
 * the object (",\"changed\":true}"): a field appended to the shared
 * document without copying it. */
void render_reply_node_list(struct request *r, const struct cluster *c, render_node_fn node,
                            const char *suffix);

/* Drops this thread's renderings (a response still being written keeps
 * its own reference). The worker calls it when its loop has ended. */
void render_cache_clear(void);

#endif
