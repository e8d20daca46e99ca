/*
 * merge.h - walking two arrays sorted by a string key side by side.
 *
 * The store saves a snapshot as the difference from the one before
 * (clusters, nodes, load balancers, users, tokens), and replacing a node
 * list merges the old nodes with the new names: each is one walk over two
 * sorted arrays, so the walk is written once, here.
 */
#ifndef CM_MERGE_H
#define CM_MERGE_H

#include <stddef.h>

/* One array: n elements of size bytes from base, sorted by key (strcmp,
 * each key at most once). key returns an element's key. */
struct merge_side {
	const void *base;
	size_t n;
	size_t size;
	const char *(*key)(const void *element);
};

/* What to do with a key only on the left, only on the right, or on both;
 * NULL for nothing. A non-zero return stops the walk. */
struct merge_calls {
	int (*only_left)(void *arg, const void *left);
	int (*only_right)(void *arg, const void *right);
	int (*both)(void *arg, const void *left, const void *right);
};

/* Visits every key of left and right once, in key order, calling the
 * matching function of calls with arg. Returns 0, or the first non-zero
 * value a call returned (the walk stops there). */
int merge_walk(const struct merge_side *left, const struct merge_side *right,
               const struct merge_calls *calls, void *arg);

#endif
