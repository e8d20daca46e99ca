/*
 * interest.h - the nodes whose other daemons' reports this daemon reads.
 *
 * A daemon does not mirror every report of every other daemon: that is
 * O(daemons^2 x nodes) work for the fleet (docs/ARCHITECTURE.md, "How far
 * the fleet goes"). It reads the reports of the nodes someone asked it
 * about (a node's document, a drain judgement, the load balancers'
 * view, the page), for as long as they keep asking, and nothing else.
 *
 * An entry is a node, or a whole cluster (node ""), asked at some time.
 * A reader asks (interest_ask): 1 when the entry has been read since it
 * was added, else it is added (0) and the share thread reads it in its
 * next round. The share thread takes the entries (interest_take), which
 * forgets those nobody asked for OBSERVE_INTEREST_MS, reads them from the
 * store, and marks them read (interest_read).
 *
 * Bounds: at most OBSERVE_INTEREST_MAX entries; a node asked beyond that
 * makes its cluster one entry (the cluster's node entries go), and when
 * that is full too the entry asked least recently goes.
 *
 * Threading: every function may be called from any thread (one mutex,
 * held for a walk of the entries at most).
 */
#ifndef CM_INTEREST_H
#define CM_INTEREST_H

#include <stddef.h>
#include <stdint.h>

#include "../core/peer.h"

#define OBSERVE_INTEREST_MAX 1024
#define OBSERVE_INTEREST_MS (60 * 1000)

struct interest;

struct interest *interest_new(void);
void interest_free(struct interest *in);

/* Is the node of cluster (node NULL: every node of it) read from the
 * store? 1 when an entry covering it was read since it was added;
 * else 0, and the entry is added (*is_added 1) unless it already waits.
 * Either way the entry counts as asked at now. */
int interest_ask(struct interest *in, const char *cluster, const char *node, int64_t now,
                 int *is_added);

/* Forgets the entries not asked since now - OBSERVE_INTEREST_MS, then
 * copies the others into *out (malloc'd, the caller frees; NULL when
 * none) and returns how many. Those never read have is_new set.
 * *is_forgotten: whether any entry went since the last take (the reports
 * of its nodes are to be dropped). */
size_t interest_take(struct interest *in, int64_t now, struct probe_interest **out,
                     int *is_forgotten);

/* The entries taken (interest_take) were read: marks them (by id; those
 * forgotten meanwhile are skipped). */
void interest_read(struct interest *in, const struct probe_interest *read, size_t n);

/* How many entries there are. */
size_t interest_count(struct interest *in);

/* Does the list cover node of cluster? */
int interest_covers(const struct probe_interest *list, size_t n, const char *cluster,
                    const char *node);

#endif
