/*
 * render.c - heavy answers rendered once per cluster version and shared
 * by every reader (render.h).
 *
 * Each worker thread keeps RENDER_CACHE_SLOTS renderings, each keyed by
 * the builder, the cluster's name, its version and a fingerprint of its
 * nodes. The version alone is not enough: a cluster removed and added
 * again starts at version 1 with other nodes. The fingerprint mixes every
 * node's status and times (no strings: 10,000 nodes cost about ten
 * microseconds, against milliseconds for the text), which differ for a
 * cluster with another history.
 *
 * A node list is also kept in pieces, per cluster (FRAGMENT_TABLES per
 * thread): each node's text, keyed by the node's shared string block
 * (held, so that its address cannot be reused for other strings while
 * the key lives) and its status and times, which are all a node's
 * document is made of. Rendering a new version copies the text of every
 * node whose key is unchanged and renders only the others: a node just
 * changed has strings of its own (no block) and is always rendered.
 *
 * The text is an h2o shared allocation: the cache holds one reference,
 * each response one more (h2o_mem_link_shared, released when the
 * request's pool is cleared), so replacing a slot never frees a text a
 * response is still writing. Both live on one thread, so the counts need
 * no atomics.
 */
#include <stdlib.h>
#include <string.h>

#include "render.h"
#include "../util/xalloc.h"

#define RENDER_CACHE_SLOTS 8
#define FRAGMENT_TABLES 4
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)
#define HSTS_VALUE "max-age=31536000" /* as reply.c sends it */

struct rendered {
	size_t len;
	char text[]; /* len bytes, no NUL */
};

struct render_slot {
	render_build_fn build; /* one of build and node; both NULL: empty */
	render_node_fn node;
	char cluster[NODE_NAME_MAX + 1];
	int64_t version;
	uint64_t fingerprint;
	uint64_t used; /* for replacing the least recently used */
	struct rendered *text;
};

/* One node's text in a fragment table's arena, and what it was made of. */
struct fragment {
	const struct node_text *text; /* held; NULL: an empty place */
	int64_t changed_at;
	int64_t expires_at;
	enum node_status status;
	int is_kept; /* carried over to the next table */
	size_t off, len;
};

/* A cluster's last node list, in pieces: an open-addressing table of
 * the fragments of its nodes with a block, and the whole text they lie
 * in (arena). */
struct fragment_table {
	render_node_fn node; /* NULL: unused */
	char cluster[NODE_NAME_MAX + 1];
	uint64_t used;
	struct fragment *places;
	size_t mask; /* the number of places - 1 */
	char *arena;
	size_t arena_len, arena_size;
};

static __thread struct render_slot cache[RENDER_CACHE_SLOTS];
static __thread struct fragment_table tables[FRAGMENT_TABLES];
static __thread uint64_t use_clock;

static uint64_t
mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	return h;
}

static uint64_t
cluster_fingerprint(const struct cluster *c)
{
	uint64_t h = mix((uint64_t)c->version, c->n_nodes);
	size_t i;

	for (i = 0; i < c->n_nodes; i++) {
		const struct node *n = &c->nodes[i];
		h = mix(h, (uint64_t)n->changed_at);
		h = mix(h, (uint64_t)n->expires_at);
		h = mix(h, (uint64_t)n->status);
	}
	return h;
}

/* The slot holding c's rendering by build or node, or NULL. */
static struct render_slot *
slot_find(const struct cluster *c, render_build_fn build, render_node_fn node, uint64_t fingerprint)
{
	size_t i;

	for (i = 0; i < RENDER_CACHE_SLOTS; i++) {
		struct render_slot *s = &cache[i];
		if (s->text != NULL && s->build == build && s->node == node &&
		    s->version == c->version && s->fingerprint == fingerprint &&
		    strcmp(s->cluster, c->name) == 0)
			return s;
	}
	return NULL;
}

static struct render_slot *
slot_victim(void)
{
	struct render_slot *victim = &cache[0];
	size_t i;

	for (i = 0; i < RENDER_CACHE_SLOTS; i++) {
		if (cache[i].text == NULL)
			return &cache[i];
		if (cache[i].used < victim->used)
			victim = &cache[i];
	}
	return victim;
}

/* --- node lists in pieces ------------------------------------------ */

static void
arena_append(struct fragment_table *t, const char *text, size_t len)
{
	if (t->arena_len + len > t->arena_size) {
		while (t->arena_len + len > t->arena_size)
			t->arena_size = t->arena_size != 0 ? t->arena_size * 2 : 4096;
		t->arena = xreallocarray(t->arena, t->arena_size, 1);
	}
	memcpy(t->arena + t->arena_len, text, len);
	t->arena_len += len;
}

static size_t
place_of(const struct fragment_table *t, const struct node_text *text)
{
	uint64_t h = (uint64_t)(uintptr_t)text * 0x9e3779b97f4a7c15ULL;

	return (size_t)(h >> 32) & t->mask;
}

/* The fragment of a node with this block in t, or the empty place where
 * it would go. */
static struct fragment *
fragment_find(struct fragment_table *t, const struct node_text *text)
{
	size_t i = place_of(t, text);

	while (t->places[i].text != NULL && t->places[i].text != text)
		i = (i + 1) & t->mask;
	return &t->places[i];
}

static void
table_clear(struct fragment_table *t)
{
	size_t i;

	for (i = 0; t->places != NULL && i <= t->mask; i++)
		if (t->places[i].text != NULL && !t->places[i].is_kept)
			node_text_drop(t->places[i].text);
	free(t->places);
	free(t->arena);
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

/* Appends n's text to fresh, from old when n is unchanged since, else
 * rendered by node; remembers it in fresh when n has a block. -1 when the
 * node's document cannot be encoded. */
static int
fragment_put(struct fragment_table *fresh, struct fragment_table *old, const struct node *n,
             render_node_fn node, int *rendered)
{
	const struct node_text *text = n->text;
	struct fragment *was = NULL, *f;
	size_t off = fresh->arena_len;
	char *dumped;
	json_t *doc;

	if (text != NULL && old != NULL && old->places != NULL) {
		was = fragment_find(old, text);
		if (was->text == NULL || was->is_kept || was->status != n->status ||
		    was->changed_at != n->changed_at || was->expires_at != n->expires_at)
			was = NULL;
	}
	if (was != NULL) {
		arena_append(fresh, old->arena + was->off, was->len);
	} else {
		doc = node(n);
		dumped = doc != NULL ? json_dumps(doc, DUMP_FLAGS) : NULL;
		json_decref(doc);
		if (dumped == NULL)
			return -1;
		arena_append(fresh, dumped, strlen(dumped));
		free(dumped);
		(*rendered)++;
	}
	if (text == NULL)
		return 0;
	f = fragment_find(fresh, text);
	if (f->text != NULL)
		return 0; /* a block is one node's: not reached */
	*f = (struct fragment){.text = was != NULL ? text : node_text_hold(n),
	                       .changed_at = n->changed_at,
	                       .expires_at = n->expires_at,
	                       .status = n->status,
	                       .off = off,
	                       .len = fresh->arena_len - off};
	if (was != NULL)
		was->is_kept = 1; /* its reference moved to fresh */
	return 0;
}

/* c's node list text, built in this thread's fragment table for c (which
 * replaces the previous one); NULL when it cannot be encoded. */
static struct fragment_table *
node_list_render(const struct cluster *c, render_node_fn node, int *rendered)
{
	struct fragment_table *old = table_find(c, node), fresh = {0};
	size_t i, places = 16;
	json_t *head;
	char *text;

	head = json_pack("{s:s, s:I, s:[]}", "cluster", c->name, "version", (json_int_t)c->version,
	                 "nodes");
	text = head != NULL ? json_dumps(head, DUMP_FLAGS) : NULL;
	json_decref(head);
	if (text == NULL)
		return NULL;
	while (places < 2 * c->n_nodes)
		places *= 2;
	fresh.places = xcalloc(places, sizeof(*fresh.places));
	fresh.mask = places - 1;
	arena_append(&fresh, text, strlen(text) - 2); /* up to '[' */
	free(text);
	for (i = 0; i < c->n_nodes; i++) {
		if (i > 0)
			arena_append(&fresh, ",", 1);
		if (fragment_put(&fresh, old, &c->nodes[i], node, rendered) != 0) {
			table_clear(&fresh);
			return NULL;
		}
	}
	arena_append(&fresh, "]}", 2);
	if (old == NULL)
		old = table_victim();
	table_clear(old);
	*old = fresh;
	old->node = node;
	snprintf(old->cluster, sizeof(old->cluster), "%s", c->name);
	old->used = ++use_clock;
	return old;
}

/* --- the cache of whole answers ------------------------------------- */

static struct rendered *
rendered_copy(const char *text, size_t len)
{
	struct rendered *t = h2o_mem_alloc_shared(NULL, sizeof(*t) + len, NULL);

	t->len = len;
	memcpy(t->text, text, len);
	return t;
}

/* c's rendering by build (or, for a node list, node), made now; NULL
 * when the document cannot be encoded. */
static struct rendered *
render_now(const struct cluster *c, render_build_fn build, render_node_fn node, int *rendered)
{
	struct fragment_table *table;
	struct rendered *t;
	json_t *doc;
	char *text;

	if (node != NULL) {
		table = node_list_render(c, node, rendered);
		return table != NULL ? rendered_copy(table->arena, table->arena_len) : NULL;
	}
	doc = build(c);
	text = json_dumps(doc, DUMP_FLAGS);
	json_decref(doc);
	if (text == NULL)
		return NULL;
	*rendered = 1;
	t = rendered_copy(text, strlen(text));
	free(text);
	return t;
}

/* c's rendering, from the cache or made now (counted for the worker when
 * anything was rendered); NULL when the document cannot be encoded. */
static struct rendered *
rendering(struct request *r, const struct cluster *c, render_build_fn build, render_node_fn node)
{
	uint64_t fingerprint = cluster_fingerprint(c);
	struct render_slot *s = slot_find(c, build, node, fingerprint);
	struct rendered *t;
	int rendered = 0;

	if (s != NULL) {
		s->used = ++use_clock;
		return s->text;
	}
	if ((t = render_now(c, build, node, &rendered)) == NULL)
		return NULL;
	if (rendered > 0)
		request_count_render(r);
	s = slot_victim();
	if (s->text != NULL)
		h2o_mem_release_shared(s->text);
	s->build = build;
	s->node = node;
	snprintf(s->cluster, sizeof(s->cluster), "%s", c->name);
	s->version = c->version;
	s->fingerprint = fingerprint;
	s->used = ++use_clock;
	s->text = t;
	return t;
}

static void
reply_rendered(struct request *r, const struct cluster *c, render_build_fn build,
               render_node_fn node, const char *suffix)
{
	static h2o_generator_t generator = {NULL, NULL};
	struct rendered *t;
	h2o_req_t *req = r->req;
	h2o_iovec_t bufs[2];
	size_t n = 1;

	if (r->is_gone)
		return;
	if ((t = rendering(r, c, build, node)) == NULL || t->len == 0) {
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
render_reply_shared(struct request *r, const struct cluster *c, render_build_fn build,
                    const char *suffix)
{
	reply_rendered(r, c, build, NULL, suffix);
}

void
render_reply_node_list(struct request *r, const struct cluster *c, render_node_fn node,
                       const char *suffix)
{
	reply_rendered(r, c, NULL, node, suffix);
}

void
render_cache_clear(void)
{
	size_t i;

	for (i = 0; i < RENDER_CACHE_SLOTS; i++) {
		if (cache[i].text != NULL)
			h2o_mem_release_shared(cache[i].text);
		memset(&cache[i], 0, sizeof(cache[i]));
	}
	for (i = 0; i < FRAGMENT_TABLES; i++)
		table_clear(&tables[i]);
}
