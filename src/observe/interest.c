/*
 * interest.c - the nodes whose other daemons' reports are read (see
 * interest.h).
 *
 * An array of at most OBSERVE_INTEREST_MAX entries under one mutex,
 * searched by walking it: a reader asks once per request, and a walk of
 * a thousand short names costs a few microseconds, less than the request
 * itself.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "interest.h"

struct entry {
	uint64_t id;
	char cluster[NODE_NAME_MAX + 1];
	char node[NODE_NAME_MAX + 1]; /* "": the whole cluster */
	int64_t asked_at;
	int is_read;
};

struct interest {
	pthread_mutex_t lock;
	struct entry entries[OBSERVE_INTEREST_MAX];
	size_t n;
	uint64_t next_id;
	int is_forgotten; /* an entry went since the last take */
};

struct interest *
interest_new(void)
{
	struct interest *in = xcalloc(1, sizeof(*in));

	pthread_mutex_init(&in->lock, NULL);
	in->next_id = 1;
	return in;
}

void
interest_free(struct interest *in)
{
	if (in == NULL)
		return;
	pthread_mutex_destroy(&in->lock);
	free(in);
}

static void
entry_remove(struct interest *in, size_t i)
{
	in->entries[i] = in->entries[--in->n];
	in->is_forgotten = 1;
}

/* The entry of node (or, node "", of the whole cluster); NULL if none. */
static struct entry *
entry_find(struct interest *in, const char *cluster, const char *node)
{
	size_t i;

	for (i = 0; i < in->n; i++)
		if (strcmp(in->entries[i].cluster, cluster) == 0 &&
		    strcmp(in->entries[i].node, node) == 0)
			return &in->entries[i];
	return NULL;
}

/* Removes every entry of cluster. */
static void
cluster_remove(struct interest *in, const char *cluster)
{
	size_t i;

	for (i = in->n; i-- > 0;)
		if (strcmp(in->entries[i].cluster, cluster) == 0)
			entry_remove(in, i);
}

/* Adds the entry of node ("": the whole cluster, which replaces the
 * cluster's node entries). When the table is full, a node's cluster
 * becomes one entry, and if that is not enough the entry asked least
 * recently goes. */
static struct entry *
entry_add(struct interest *in, const char *cluster, const char *node)
{
	struct entry *e;
	size_t i, oldest = 0;

	if (node[0] != '\0' && in->n == OBSERVE_INTEREST_MAX)
		node = "";
	if (node[0] == '\0')
		cluster_remove(in, cluster);
	if (in->n == OBSERVE_INTEREST_MAX) {
		for (i = 1; i < in->n; i++)
			if (in->entries[i].asked_at < in->entries[oldest].asked_at)
				oldest = i;
		entry_remove(in, oldest);
	}
	e = &in->entries[in->n++];
	memset(e, 0, sizeof(*e));
	e->id = in->next_id++;
	snprintf(e->cluster, sizeof(e->cluster), "%s", cluster);
	snprintf(e->node, sizeof(e->node), "%s", node);
	return e;
}

int
interest_ask(struct interest *in, const char *cluster, const char *node, int64_t now, int *is_added)
{
	struct entry *e;
	int is_read;

	*is_added = 0;
	if (node == NULL)
		node = "";
	pthread_mutex_lock(&in->lock);
	if ((e = entry_find(in, cluster, "")) == NULL && node[0] != '\0')
		e = entry_find(in, cluster, node);
	if (e == NULL) {
		e = entry_add(in, cluster, node);
		*is_added = 1;
	}
	e->asked_at = now;
	is_read = e->is_read;
	pthread_mutex_unlock(&in->lock);
	return is_read;
}

size_t
interest_take(struct interest *in, int64_t now, struct probe_interest **out, int *is_forgotten)
{
	size_t i, n = 0;

	*out = NULL;
	pthread_mutex_lock(&in->lock);
	for (i = in->n; i-- > 0;)
		if (in->entries[i].asked_at < now - OBSERVE_INTEREST_MS)
			entry_remove(in, i);
	*is_forgotten = in->is_forgotten;
	in->is_forgotten = 0;
	if (in->n > 0) {
		*out = xcalloc(in->n, sizeof(**out));
		for (i = 0; i < in->n; i++) {
			struct probe_interest *p = &(*out)[n++];
			p->id = in->entries[i].id;
			memcpy(p->cluster, in->entries[i].cluster, sizeof(p->cluster));
			memcpy(p->node, in->entries[i].node, sizeof(p->node));
			p->is_new = !in->entries[i].is_read;
		}
	}
	pthread_mutex_unlock(&in->lock);
	return n;
}

void
interest_read(struct interest *in, const struct probe_interest *read, size_t n)
{
	size_t i, j;

	pthread_mutex_lock(&in->lock);
	for (i = 0; i < n; i++)
		for (j = 0; j < in->n; j++)
			if (in->entries[j].id == read[i].id) {
				in->entries[j].is_read = 1;
				break;
			}
	pthread_mutex_unlock(&in->lock);
}

size_t
interest_count(struct interest *in)
{
	size_t n;

	pthread_mutex_lock(&in->lock);
	n = in->n;
	pthread_mutex_unlock(&in->lock);
	return n;
}

int
interest_covers(const struct probe_interest *list, size_t n, const char *cluster, const char *node)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i].cluster, cluster) == 0 &&
		    (list[i].node[0] == '\0' || strcmp(list[i].node, node) == 0))
			return 1;
	return 0;
}
