/*
 * model_nodes.c - a cluster's node list: chunks of NODE_CHUNK nodes that
 * copies of a model share (model.h says why), and what reads or changes
 * the list through them.
 *
 * Node i lies in chunk i / NODE_CHUNK at i % NODE_CHUNK, so reading one
 * stays a load or two, and every chunk but the last is full. A change to
 * a node copies its chunk when another model holds it (64 nodes, their
 * strings shared: model_node_copy); adding or removing a node rebuilds
 * the chunks from the one it falls in to the end, which is O(n) like the
 * move of an array's tail it replaces. A chunk held by one model only is
 * changed in place.
 *
 * What readers ask of all the nodes at once (how many are online, the
 * next TTL expiry) is summed up per chunk when a model is sealed, so that
 * a write to a 10,000-node cluster recounts one chunk, not the cluster.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "model_internal.h"

static _Atomic uint64_t last_chunk_id;

static uint64_t
chunk_id_new(void)
{
	return atomic_fetch_add_explicit(&last_chunk_id, 1, memory_order_relaxed) + 1;
}

static struct node_chunk *
chunk_new(size_t n)
{
	struct node_chunk *ch = xcalloc(1, sizeof(*ch) + n * sizeof(struct node));

	atomic_init(&ch->refs, 1);
	ch->n = n;
	ch->id = chunk_id_new();
	return ch;
}

/* Drops one model's hold; the last one frees the nodes. */
static void
chunk_release(struct node_chunk *ch)
{
	size_t i;

	if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (i = 0; i < ch->n; i++)
		model_node_clear(&ch->nodes[i]);
	free(ch);
}

void
model_nodes_clear(struct cluster *c)
{
	size_t i;

	for (i = 0; i < cluster_n_chunks(c); i++)
		chunk_release(c->chunks[i]);
	free(c->chunks);
	c->chunks = NULL;
	c->n_nodes = 0;
}

void
cluster_share_nodes(struct cluster *dst, const struct cluster *src)
{
	size_t i, k = cluster_n_chunks(src);

	dst->n_nodes = src->n_nodes;
	dst->chunks = xcalloc(k > 0 ? k : 1, sizeof(*dst->chunks));
	for (i = 0; i < k; i++) {
		atomic_fetch_add_explicit(&src->chunks[i]->refs, 1, memory_order_relaxed);
		dst->chunks[i] = src->chunks[i];
	}
}

void
cluster_take_nodes(struct cluster *c, struct node *nodes, size_t n)
{
	size_t i, k = node_chunks_for(n);

	c->chunks = xcalloc(k > 0 ? k : 1, sizeof(*c->chunks));
	for (i = 0; i < k; i++) {
		size_t first = i * NODE_CHUNK,
		       count = n - first < NODE_CHUNK ? n - first : NODE_CHUNK;

		c->chunks[i] = chunk_new(count);
		memcpy(c->chunks[i]->nodes, nodes + first, count * sizeof(*nodes));
	}
	c->n_nodes = n;
	free(nodes);
}

struct node *
cluster_node_mut(struct cluster *c, size_t i)
{
	struct node_chunk **at = &c->chunks[i / NODE_CHUNK], *was = *at, *ch;
	size_t k;

	if (atomic_load_explicit(&was->refs, memory_order_acquire) == 1) {
		/* readers of an earlier model may have keyed its nodes by id */
		was->id = chunk_id_new();
		was->is_summed = 0;
		return &was->nodes[i % NODE_CHUNK];
	}
	ch = chunk_new(was->n);
	for (k = 0; k < was->n; k++)
		model_node_copy(&ch->nodes[k], &was->nodes[k]);
	*at = ch;
	chunk_release(was);
	return &ch->nodes[i % NODE_CHUNK];
}

/*
 * Rebuilds c's chunks from the one holding node at to the end, with a
 * zeroed node opened at at (is_insert) or the node at at left out;
 * returns the opened node (NULL for a removal). The chunks before stay
 * shared.
 */
static struct node *
nodes_splice(struct cluster *c, size_t at, int is_insert)
{
	size_t first = at / NODE_CHUNK * NODE_CHUNK, n = c->n_nodes, k = 0, i;
	size_t kept = first / NODE_CHUNK, tail = is_insert ? n - first + 1 : n - first - 1;
	struct node *nodes = xcalloc(tail > 0 ? tail : 1, sizeof(*nodes));
	struct cluster rest = {0};

	for (i = first; i < n; i++) {
		if (i == at && !is_insert)
			continue;
		if (i == at)
			k++; /* the opened slot, zeroed */
		model_node_copy(&nodes[k++], cluster_node(c, i));
	}
	for (i = kept; i < node_chunks_for(n); i++)
		chunk_release(c->chunks[i]);
	cluster_take_nodes(&rest, nodes, tail);
	n = first + tail;
	c->chunks = xreallocarray(c->chunks, node_chunks_for(n) > 0 ? node_chunks_for(n) : 1,
	                          sizeof(*c->chunks));
	for (i = 0; i < node_chunks_for(tail); i++)
		c->chunks[kept + i] = rest.chunks[i];
	free(rest.chunks);
	c->n_nodes = n;
	return is_insert ? cluster_node_mut(c, at) : NULL;
}

struct node *
model_nodes_insert(struct cluster *c, size_t at)
{
	return nodes_splice(c, at, 1);
}

void
model_nodes_remove(struct cluster *c, size_t at)
{
	nodes_splice(c, at, 0);
}

void
cluster_store_node(struct cluster *c, struct node *n)
{
	struct node *at;
	size_t i;
	int found;

	i = cluster_node_position(c, n->name, strlen(n->name), &found);
	if (found) {
		at = cluster_node_mut(c, i);
		model_node_clear(at);
	} else {
		at = model_nodes_insert(c, i);
	}
	*at = *n;
	memset(n, 0, sizeof(*n));
}

size_t
cluster_node_position(const struct cluster *c, const char *name, size_t len, int *found)
{
	size_t lo = 0, hi = c->n_nodes, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (model_compare_slice(name, len, cluster_node(c, mid)->name) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < c->n_nodes && model_compare_slice(name, len, cluster_node(c, lo)->name) == 0;
	return lo;
}

const struct node *
cluster_find_node(const struct cluster *c, const char *name, size_t len)
{
	size_t at;
	int found;

	if (c->n_nodes == 0 || !node_name_is_valid(name, len))
		return NULL;
	at = cluster_node_position(c, name, len, &found);
	return found ? cluster_node(c, at) : NULL;
}

struct node *
cluster_find_node_mut(struct cluster *c, const char *name)
{
	size_t at;
	int found;
	struct node *n;

	if (name == NULL)
		return NULL;
	at = cluster_node_position(c, name, strlen(name), &found);
	if (!found)
		return NULL;
	n = cluster_node_mut(c, at);
	node_own_strings(n);
	return n;
}

/* --- what is summed up per chunk ---------------------------------------- */

static int64_t
earlier_expiry(int64_t next, int64_t at)
{
	return at != 0 && (next == 0 || at < next) ? at : next;
}

static void
chunk_sum(const struct node_chunk *ch, size_t *online, int64_t *next_expiry)
{
	size_t i;

	*online = 0;
	*next_expiry = 0;
	for (i = 0; i < ch->n; i++) {
		*online += ch->nodes[i].status == NODE_ONLINE;
		*next_expiry = earlier_expiry(*next_expiry, ch->nodes[i].expires_at);
	}
}

int64_t
model_chunk_next_expiry(const struct node_chunk *ch)
{
	size_t online;
	int64_t next;

	if (ch->is_summed)
		return ch->next_expiry;
	chunk_sum(ch, &online, &next);
	return next;
}

/* Sums up the chunks only c holds that changed since; a chunk shared
 * with another model is summed already or counted when asked, never
 * written to. Gives the changed nodes string blocks of their own. */
void
model_nodes_seal(struct cluster *c)
{
	size_t i, k;

	for (i = 0; i < cluster_n_chunks(c); i++) {
		struct node_chunk *ch = c->chunks[i];

		if (ch->is_summed || atomic_load_explicit(&ch->refs, memory_order_acquire) != 1)
			continue;
		for (k = 0; k < ch->n; k++)
			node_share_strings(&ch->nodes[k]);
		chunk_sum(ch, &ch->online, &ch->next_expiry);
		ch->is_summed = 1;
	}
}

size_t
cluster_count_online(const struct cluster *c)
{
	size_t i, online = 0, chunk_online;
	int64_t next;

	for (i = 0; i < cluster_n_chunks(c); i++) {
		const struct node_chunk *ch = c->chunks[i];

		if (ch->is_summed) {
			online += ch->online;
		} else {
			chunk_sum(ch, &chunk_online, &next);
			online += chunk_online;
		}
	}
	return online;
}

int64_t
model_next_expiry(const struct model *m)
{
	int64_t next = 0;
	size_t i, k;

	for (i = 0; i < m->n_clusters; i++)
		for (k = 0; k < cluster_n_chunks(&m->clusters[i]); k++)
			next =
			    earlier_expiry(next, model_chunk_next_expiry(m->clusters[i].chunks[k]));
	return next;
}
