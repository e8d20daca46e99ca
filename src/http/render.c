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
 * The text is an h2o shared allocation: the cache holds one reference,
 * each response one more (h2o_mem_link_shared, released when the
 * request's pool is cleared), so replacing a slot never frees a text a
 * response is still writing. Both live on one thread, so the counts need
 * no atomics.
 */
#include <stdlib.h>
#include <string.h>

#include "render.h"

#define RENDER_CACHE_SLOTS 8
#define HSTS_VALUE "max-age=31536000" /* as reply.c sends it */

struct rendered {
	size_t len;
	char text[]; /* len bytes, no NUL */
};

struct render_slot {
	render_build_fn build; /* NULL: empty */
	char cluster[NODE_NAME_MAX + 1];
	int64_t version;
	uint64_t fingerprint;
	uint64_t used; /* for replacing the least recently used */
	struct rendered *text;
};

static __thread struct render_slot cache[RENDER_CACHE_SLOTS];
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

/* The slot holding c's rendering by build, or NULL. */
static struct render_slot *
slot_find(const struct cluster *c, render_build_fn build, uint64_t fingerprint)
{
	size_t i;

	for (i = 0; i < RENDER_CACHE_SLOTS; i++) {
		struct render_slot *s = &cache[i];
		if (s->build == build && s->version == c->version &&
		    s->fingerprint == fingerprint && strcmp(s->cluster, c->name) == 0)
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
		if (cache[i].build == NULL)
			return &cache[i];
		if (cache[i].used < victim->used)
			victim = &cache[i];
	}
	return victim;
}

/* c's rendering by build, from the cache or made now (counted for the
 * worker); NULL when the document cannot be encoded. */
static struct rendered *
rendering(struct request *r, const struct cluster *c, render_build_fn build)
{
	uint64_t fingerprint = cluster_fingerprint(c);
	struct render_slot *s = slot_find(c, build, fingerprint);
	struct rendered *t;
	json_t *doc;
	char *text;
	size_t len;

	if (s != NULL) {
		s->used = ++use_clock;
		return s->text;
	}
	doc = build(c);
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(doc);
	if (text == NULL)
		return NULL;
	request_count_render(r);
	len = strlen(text);
	t = h2o_mem_alloc_shared(NULL, sizeof(*t) + len, NULL);
	t->len = len;
	memcpy(t->text, text, len);
	free(text);
	s = slot_victim();
	if (s->text != NULL)
		h2o_mem_release_shared(s->text);
	s->build = build;
	snprintf(s->cluster, sizeof(s->cluster), "%s", c->name);
	s->version = c->version;
	s->fingerprint = fingerprint;
	s->used = ++use_clock;
	s->text = t;
	return t;
}

void
render_reply_shared(struct request *r, const struct cluster *c, render_build_fn build,
                    const char *suffix)
{
	static h2o_generator_t generator = {NULL, NULL};
	struct rendered *t;
	h2o_req_t *req = r->req;
	h2o_iovec_t bufs[2];
	size_t n = 1;

	if (r->is_gone)
		return;
	if ((t = rendering(r, c, build)) == NULL || t->len == 0) {
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

	for (i = 0; i < RENDER_CACHE_SLOTS; i++) {
		if (cache[i].text != NULL)
			h2o_mem_release_shared(cache[i].text);
		memset(&cache[i], 0, sizeof(cache[i]));
	}
}
