/*
 * render.c - heavy answers rendered once per cluster version and shared
 * by every reader (render.h).
 *
 * A node list is kept in pieces, per cluster (FRAGMENT_TABLES per
 * thread), each table keyed by the cluster's name, its version and a
 * fingerprint of its nodes. The version alone is not enough: a cluster
 * removed and added again starts at version 1 with other nodes. The
 * fingerprint mixes the ids of the cluster's node chunks (model.h), which
 * change with any node and are never reused: 157 numbers at 10,000
 * nodes. A table holds each node's text, keyed by the identity of the
 * node's shared string block (node_text_id: never reused, so the block
 * need not be held, and its count, which the engine's copies change, is
 * never touched from here) and its status and times, which are all a
 * node's document is made of. Rendering a new version copies the text of
 * every node whose key is unchanged and renders only the others: a node
 * just changed has a new block (model_seal) and is rendered. A chunk of
 * nodes whose id is the one at the same place in the last version takes
 * its pieces whole, without reading a node. The table's text is the
 * answer itself (no second copy), and
 * a new version is written into the buffer of the version before the
 * last once no response holds it any more, with the table of pieces
 * swapped likewise: a write to a 10,000-node cluster then allocates
 * nothing and faults in no fresh pages to answer with its list.
 *
 * A text is an h2o shared allocation: the table holds one reference,
 * each response one more (h2o_mem_link_shared, released when the
 * request's pool is cleared), so replacing a version never frees a text
 * a response is still writing, and a buffer is filled again only when
 * its count says the table alone holds it. Both live on one thread, so
 * the counts need no atomics.
 */
#include <stdlib.h>
#include <string.h>

#include "render.h"
#include "../util/xalloc.h"

#define FRAGMENT_TABLES 4
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)
#define HSTS_VALUE "max-age=31536000" /* as reply.c sends it */

struct rendered {
	size_t len;  /* of the text, no NUL */
	size_t size; /* room for it */
	char text[];
};

/* One node's text in a version's text, and what it was made of. */
struct fragment {
	uint64_t id; /* node_text_id; 0: none (always rendered) */
	int64_t changed_at;
	int64_t expires_at;
	enum node_status status;
	size_t off, len;
};

/* One version of a cluster's node list: each node's fragment in the
 * list's order, found by position first (a list keeps its order from
 * one version to the next: a sequential walk). Only when nodes were added
 * or removed since (the cluster's members_stamp moved) can a node's
 * fragment lie elsewhere; it is then found through places, an
 * open-addressing table of positions + 1 keyed by the block's identity,
 * filed on that first need, so that the common write (a status change)
 * fills no table of 10,000 scattered places. */
struct list_version {
	struct fragment *frags; /* the i-th node's at i */
	size_t n_frags, frags_size;
	/* The ids of the cluster's node chunks it was made of (model.h): a
	 * chunk of the same id at the same place holds the same nodes, whose
	 * fragments are taken whole without reading a node. */
	uint64_t *chunk_ids;
	size_t n_chunks, chunk_ids_size;
	int64_t members_stamp; /* the cluster's, 0: not known */
	int is_filed;          /* places hold every fragment */
	uint32_t *places;      /* mask + 1 of them; 0: empty */
	size_t mask;
	struct rendered *text; /* one reference; NULL: none */
};

/* A cluster's last node list, in pieces, and an earlier version emptied
 * and kept to be filled again. */
struct fragment_table {
	render_node_fn node; /* NULL: unused */
	char cluster[NODE_NAME_MAX + 1];
	int64_t version;
	uint64_t fingerprint;
	uint64_t used;
	struct list_version cur, spare;
};

/* Where a node's text comes from while a new version is put together:
 * the earlier text (was: its fragment there), or a rendering of its own
 * (owned). */
struct piece {
	const char *p;
	size_t len;
	char *owned;
	const struct fragment *was;
};

static __thread struct fragment_table tables[FRAGMENT_TABLES];
static __thread uint64_t use_clock;
static __thread struct piece *pieces; /* scratch, grown to the largest list */
static __thread size_t pieces_size;

static uint64_t
mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h;
}

/* The ids of c's node chunks identify what they hold (model.h). */
static uint64_t
cluster_fingerprint(const struct cluster *c)
{
	uint64_t h = mix((uint64_t)c->version, c->n_nodes);
	size_t q;

	for (q = 0; q < cluster_n_chunks(c); q++)
		h = mix(h, c->chunks[q]->id);
	return h;
}

/* --- texts ----------------------------------------------------------- */

static struct rendered *
rendered_new(size_t size)
{
	struct rendered *t = h2o_mem_alloc_shared(NULL, sizeof(*t) + size, NULL);

	t->len = 0;
	t->size = size;
	return t;
}

static void
rendered_add(struct rendered *t, const char *text, size_t len)
{
	memcpy(t->text + t->len, text, len);
	t->len += len;
}

/* Does the holder of one reference hold t alone (no response writes it)? */
static int
rendered_is_idle(struct rendered *t)
{
	return H2O_STRUCT_FROM_MEMBER(struct st_h2o_mem_pool_shared_entry_t, bytes, t)->refcnt == 1;
}

/* --- node lists in pieces ------------------------------------------ */

static size_t
place_of(size_t mask, uint64_t id)
{
	return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 32) & mask;
}

/* Files the fragment at position i under its block; 0 when another
 * fragment has that block (a block is one node's: not reached). */
static int
version_file(struct list_version *v, size_t i)
{
	size_t j;

	for (j = place_of(v->mask, v->frags[i].id); v->places[j] != 0; j = (j + 1) & v->mask)
		if (v->frags[v->places[j] - 1].id == v->frags[i].id)
			return 0;
	v->places[j] = (uint32_t)i + 1;
	return 1;
}

/* Files every fragment of v (places sized for them, emptied first). */
static void
version_file_all(struct list_version *v)
{
	size_t i, n_places = 16;

	while (n_places < 2 * v->n_frags)
		n_places *= 2;
	if (v->places == NULL || v->mask + 1 != n_places) {
		free(v->places);
		v->places = xcalloc(n_places, sizeof(*v->places));
		v->mask = n_places - 1;
	} else {
		memset(v->places, 0, n_places * sizeof(*v->places));
	}
	for (i = 0; i < v->n_frags; i++)
		if (v->frags[i].id != 0 && !version_file(v, i))
			v->frags[i].id = 0;
	v->is_filed = 1;
}

/* The fragment of the node at position i with this block in v, or NULL;
 * members_stamp is the node's cluster's now. */
static struct fragment *
version_find(struct list_version *v, size_t i, uint64_t id, int64_t members_stamp)
{
	size_t j;

	if (id == 0 || v->text == NULL)
		return NULL;
	if (i < v->n_frags && v->frags[i].id == id)
		return &v->frags[i];
	if (members_stamp != 0 && members_stamp == v->members_stamp)
		return NULL; /* the same nodes in the same places: this one changed */
	if (!v->is_filed)
		version_file_all(v);
	for (j = place_of(v->mask, id); v->places[j] != 0; j = (j + 1) & v->mask)
		if (v->frags[v->places[j] - 1].id == id)
			return &v->frags[v->places[j] - 1];
	return NULL;
}

/* Empties v; its text and its arrays are kept. */
static void
version_empty(struct list_version *v)
{
	v->n_frags = 0;
	v->is_filed = 0;
}

static void
version_free(struct list_version *v)
{
	version_empty(v);
	free(v->frags);
	free(v->chunk_ids);
	free(v->places);
	if (v->text != NULL)
		h2o_mem_release_shared(v->text);
	memset(v, 0, sizeof(*v));
}

/* Makes the emptied v ready for n nodes and a text of size bytes: its
 * arrays grown when too small, its buffer kept when it fits and no
 * response holds it, else a new one. */
static void
version_prepare(struct list_version *v, size_t n, size_t n_chunks, size_t size)
{
	if (v->frags_size < n) {
		v->frags_size = n;
		v->frags = xreallocarray(v->frags, n, sizeof(*v->frags));
	}
	if (v->chunk_ids_size < n_chunks) {
		v->chunk_ids_size = n_chunks;
		v->chunk_ids = xreallocarray(v->chunk_ids, n_chunks, sizeof(*v->chunk_ids));
	}
	if (v->text == NULL || v->text->size < size || !rendered_is_idle(v->text)) {
		if (v->text != NULL)
			h2o_mem_release_shared(v->text);
		v->text = rendered_new(size + size / 8); /* room for the list to grow */
	}
	v->text->len = 0;
}

static void
table_clear(struct fragment_table *t)
{
	version_free(&t->cur);
	version_free(&t->spare);
	memset(t, 0, sizeof(*t));
}

static struct fragment_table *
table_find(const struct cluster *c, render_node_fn node)
{
	size_t i;

	for (i = 0; i < FRAGMENT_TABLES; i++)
		if (tables[i].node == node && strcmp(tables[i].cluster, c->name) == 0)
			return &tables[i];
	return NULL;
}

static struct fragment_table *
table_victim(void)
{
	struct fragment_table *victim = &tables[0];
	size_t i;

	for (i = 0; i < FRAGMENT_TABLES; i++) {
		if (tables[i].node == NULL)
			return &tables[i];
		if (tables[i].used < victim->used)
			victim = &tables[i];
	}
	return victim;
}

/* Where the text of c's node at position i comes from: t's current text when
 * n is unchanged since, else a rendering by node. -1 when the node's
 * document cannot be encoded. */
static int
piece_of(struct fragment_table *t, const struct cluster *c, size_t i, render_node_fn node,
         struct piece *out, int *rendered)
{
	const struct node *n = cluster_node(c, i);
	struct fragment *was = version_find(&t->cur, i, node_text_id(n), c->members_stamp);
	json_t *doc;

	if (was != NULL && (was->status != n->status || was->changed_at != n->changed_at ||
	                    was->expires_at != n->expires_at))
		was = NULL;
	*out = (struct piece){0};
	if (was != NULL) {
		out->p = t->cur.text->text + was->off;
		out->len = was->len;
		out->was = was;
		return 0;
	}
	doc = node(n);
	out->owned = doc != NULL ? json_dumps(doc, DUMP_FLAGS) : NULL;
	json_decref(doc);
	if (out->owned == NULL)
		return -1;
	out->p = out->owned;
	out->len = strlen(out->owned);
	(*rendered)++;
	return 0;
}

/* How many nodes from position i on (a chunk's first) v holds as they
 * are: the whole chunk when v was made of a chunk of the same id at the
 * same place, else 0. */
static size_t
chunk_kept(const struct list_version *v, const struct cluster *c, size_t i)
{
	size_t q = i / NODE_CHUNK;
	const struct node_chunk *ch;

	if (i % NODE_CHUNK != 0 || v->text == NULL || q >= v->n_chunks || q >= cluster_n_chunks(c))
		return 0;
	ch = c->chunks[q];
	return v->chunk_ids[q] == ch->id && i + ch->n <= v->n_frags ? ch->n : 0;
}

/* Writes the pieces of c's nodes into v, after its head: each node's
 * fragment, and the text, where a run of pieces that lay one after the
 * other in the earlier text (with their commas) is copied at once. */
static void
version_fill(struct list_version *v, const struct cluster *c, struct piece *pieces)
{
	const char *run = NULL;
	size_t i, run_len = 0, at = v->text->len;

	for (i = 0; i < c->n_nodes; i++) {
		struct piece *p = &pieces[i];
		struct fragment *f = &v->frags[i];

		at += i > 0; /* its comma */
		if (p->was != NULL) {
			*f = *p->was;
		} else {
			const struct node *n = cluster_node(c, i);
			*f = (struct fragment){.id = node_text_id(n),
			                       .changed_at = n->changed_at,
			                       .expires_at = n->expires_at,
			                       .status = n->status};
		}
		f->off = at;
		f->len = p->len;
		at += p->len;
		if (run != NULL && p->owned == NULL && p->p == run + run_len + 1) {
			run_len += 1 + p->len; /* the comma between them too */
			continue;
		}
		if (run != NULL)
			rendered_add(v->text, run, run_len);
		if (i > 0)
			rendered_add(v->text, ",", 1);
		run = p->p;
		run_len = p->len;
		if (p->owned != NULL) {
			rendered_add(v->text, run, run_len);
			free(p->owned);
			run = NULL;
		}
	}
	if (run != NULL)
		rendered_add(v->text, run, run_len);
	v->n_frags = c->n_nodes;
	v->n_chunks = cluster_n_chunks(c);
	for (i = 0; i < v->n_chunks; i++)
		v->chunk_ids[i] = c->chunks[i]->id;
}

/* c's node list text at this version, from this thread's table for c or
 * made now, re-rendering only the nodes that changed; NULL when it
 * cannot be encoded. The new version is put together in the spare one,
 * and the current one becomes the spare. */
static struct rendered *
node_list_render(const struct cluster *c, render_node_fn node, uint64_t fingerprint, int *rendered)
{
	struct fragment_table *t = table_find(c, node);
	struct list_version fresh;
	size_t i, size, head_len;
	json_t *head;
	char *text;
	int rc = 0;

	if (t != NULL && t->version == c->version && t->fingerprint == fingerprint) {
		t->used = ++use_clock;
		return t->cur.text;
	}
	if (t == NULL) {
		t = table_victim();
		table_clear(t);
	}
	head = json_pack("{s:s, s:I, s:[]}", "cluster", c->name, "version", (json_int_t)c->version,
	                 "nodes");
	text = head != NULL ? json_dumps(head, DUMP_FLAGS) : NULL;
	json_decref(head);
	if (text == NULL)
		return NULL;
	head_len = strlen(text) - 2; /* up to '[' */
	if (pieces_size < c->n_nodes) {
		pieces_size = c->n_nodes;
		pieces = xreallocarray(pieces, pieces_size, sizeof(*pieces));
	}
	size = head_len + 2 + c->n_nodes; /* "]}" and the commas */
	for (i = 0; i < c->n_nodes && rc == 0;) {
		size_t k, m = chunk_kept(&t->cur, c, i);

		for (k = 0; k < m; k++, i++) { /* an unchanged chunk: no node read */
			const struct fragment *was = &t->cur.frags[i];
			pieces[i] =
			    (struct piece){t->cur.text->text + was->off, was->len, NULL, was};
			size += was->len;
		}
		if (m == 0 && i < c->n_nodes) {
			rc = piece_of(t, c, i, node, &pieces[i], rendered);
			size += pieces[i++].len;
		}
	}
	if (rc != 0) {
		while (i-- > 0)
			free(pieces[i].owned);
		free(text);
		return NULL;
	}
	fresh = t->spare;
	memset(&t->spare, 0, sizeof(t->spare));
	version_prepare(&fresh, c->n_nodes, cluster_n_chunks(c), size);
	rendered_add(fresh.text, text, head_len);
	free(text);
	version_fill(&fresh, c, pieces);
	fresh.members_stamp = c->members_stamp;
	rendered_add(fresh.text, "]}", 2);
	/* The current version becomes the spare: its places emptied, its
	 * text kept with the table's reference until it is filled again. */
	version_empty(&t->cur);
	t->spare = t->cur;
	t->cur = fresh;
	t->node = node;
	snprintf(t->cluster, sizeof(t->cluster), "%s", c->name);
	t->version = c->version;
	t->fingerprint = fingerprint;
	t->used = ++use_clock;
	return t->cur.text;
}

/* --- the answer -------------------------------------------------------- */

void
render_reply_node_list(struct request *r, const struct cluster *c, render_node_fn node,
                       const char *suffix)
{
	static h2o_generator_t generator = {NULL, NULL};
	struct rendered *t;
	h2o_req_t *req = r->req;
	h2o_iovec_t bufs[2];
	size_t n = 1;
	int rendered = 0;

	if (r->is_gone)
		return;
	t = node_list_render(c, node, cluster_fingerprint(c), &rendered);
	if (rendered > 0)
		request_count_render(r);
	if (t == NULL || t->len == 0) {
		reply_text(r, 500, "cannot encode the response");
		return;
	}
	h2o_mem_link_shared(&req->pool, t);
	bufs[0] = h2o_iovec_init(t->text, t->len);
	if (suffix != NULL) {
		bufs[0].len--; /* the closing '}' */
		bufs[1] = h2o_iovec_init(suffix, strlen(suffix));
		n = 2;
	}
	req->res.status = 200;
	req->res.reason = "OK";
	req->res.content_length = bufs[0].len + (n == 2 ? bufs[1].len : 0);
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
	               H2O_STRLIT("application/json"));
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
	               H2O_STRLIT("no-store"));
	if (request_is_https(r))
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY,
		               NULL, H2O_STRLIT(HSTS_VALUE));
	h2o_start_response(req, &generator);
	if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
		n = 0;
	h2o_send(req, bufs, n, H2O_SEND_STATE_FINAL);
}

void
render_cache_clear(void)
{
	size_t i;

	for (i = 0; i < FRAGMENT_TABLES; i++)
		table_clear(&tables[i]);
	free(pieces);
	pieces = NULL;
	pieces_size = 0;
}
