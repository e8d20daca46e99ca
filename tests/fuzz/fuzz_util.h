/*
 * fuzz_util.h - what the fuzz targets share: exact-size copies of the
 * input (so AddressSanitizer sees a read one byte too far), splitting it
 * into lines, and comparing clusters to check that a failed mutation
 * changed nothing.
 *
 * A broken property calls FUZZ_ASSERT, which aborts: libFuzzer reports
 * that like a crash and saves the input.
 */
#ifndef CM_FUZZ_UTIL_H
#define CM_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/core/model.h"

#define FUZZ_ASSERT(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__,        \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A NUL-terminated copy of data[0..size) in a buffer of exactly size + 1. */
static inline char *
fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Splits a copy of data at sep into at most max NUL-terminated lines
 * (the rest stays in the last one). Returns the number of lines; free
 * lines[0] when done. An empty input gives one empty line. */
static inline size_t
fuzz_split_lines(const uint8_t *data, size_t size, int sep, char **lines, size_t max)
{
	char *s = fuzz_strndup(data, size), *p = s, *nl;
	size_t n = 0;

	lines[n++] = p;
	while (n < max && (nl = memchr(p, sep, (size_t)(s + size - p))) != NULL) {
		*nl = '\0';
		p = nl + 1;
		lines[n++] = p;
	}
	return n;
}

static inline int
fuzz_str_equal(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Are two clusters the same value (every field of every node)? */
static inline int
fuzz_cluster_equal(const struct cluster *a, const struct cluster *b)
{
	size_t i;

	if (!fuzz_str_equal(a->name, b->name) || !fuzz_str_equal(a->path, b->path) ||
	    a->version != b->version || a->n_nodes != b->n_nodes)
		return 0;
	for (i = 0; i < a->n_nodes; i++) {
		const struct node *x = cluster_node(a, i), *y = cluster_node(b, i);

		if (!fuzz_str_equal(x->name, y->name) || x->status != y->status ||
		    !fuzz_str_equal(x->reason, y->reason) ||
		    !fuzz_str_equal(x->changed_by, y->changed_by) ||
		    x->changed_at != y->changed_at || x->expires_at != y->expires_at ||
		    !fuzz_str_equal(x->address, y->address) || !fuzz_str_equal(x->check, y->check))
			return 0;
	}
	return 1;
}

/* Are the nodes of c sorted by name, unique and validly named? */
static inline int
fuzz_cluster_is_sound(const struct cluster *c)
{
	size_t i;

	for (i = 0; i < c->n_nodes; i++) {
		const struct node *n = cluster_node(c, i);

		if (!node_name_is_valid(n->name, strlen(n->name)) || n->reason == NULL ||
		    n->changed_by == NULL)
			return 0;
		if (i > 0 && strcmp(cluster_node(c, i - 1)->name, n->name) >= 0)
			return 0;
	}
	return 1;
}

/* A model with cluster "default" at /health holding the given nodes. */
static inline struct model *
fuzz_model_with(const char *const *names, size_t n)
{
	static const struct actor setup = {"setup", ""};
	struct model *m = model_new();
	struct error err;

	if (model_add_cluster(m, "default", "/health", &setup, 1, NULL, &err) != 0 ||
	    cluster_set_node_list(model_find_cluster_mut(m, "default"), names, n, &setup, 1, NULL,
	                          &err) != 0)
		abort();
	return m;
}

#endif
