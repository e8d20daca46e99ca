/*
 * model.h - the clustermgmt data model: clusters, nodes, status, users,
 * tokens, change sets and the audit entries a change produces.
 *
 * Pure C, no I/O. A struct model is a value: the engine keeps one
 * current model, and to change it copies it (model_copy: arrays copied,
 * node chunks shared), applies a mutation to the copy, persists the
 * difference and publishes the copy as the new immutable snapshot.
 * Readers (the probe, GET handlers) only ever see complete, immutable
 * models, so they need no locks.
 *
 * All arrays are kept sorted by name (id for tokens) with strcmp order, so
 * lookups are binary searches. All strings are owned by the model and freed
 * by model_free. Times are milliseconds since the Unix epoch (UTC).
 */
#ifndef CM_MODEL_H
#define CM_MODEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "limits.h"

#define DEFAULT_CLUSTER "default"
#define DEFAULT_MOUNT "/health"
/* The node name rule in words, for error messages. */
#define NODE_NAME_RULE "1-64 characters of A-Z a-z 0-9 . _ -, not . or .."

enum node_status {
	NODE_ONLINE = 0,
	NODE_OFFLINE = 1,
	NODE_DRAIN = 2,
};

enum role {
	ROLE_NONE = 0, /* anonymous */
	ROLE_VIEWER = 1,
	ROLE_OPERATOR = 2,
	ROLE_ADMIN = 3,
};

struct node {
	char *name;
	enum node_status status;
	char *reason;       /* never NULL; "" when none */
	char *changed_by;   /* never NULL; "" for a node never changed */
	int64_t changed_at; /* ms; when the status last changed (or node was added) */
	int64_t expires_at; /* ms; 0 = the status does not expire */
	char *address;      /* "host:port" or NULL */
	char *check;        /* http URL or NULL */
	/* NULL: each string above is an allocation of its own. Else they
	 * all lie in this one block, shared with the nodes this one was
	 * copied from or to (model_node_copy), freed by the last of them;
	 * call node_own_strings before replacing a string of such a node. */
	struct node_text *text;
	/* The identity of text: the same for nodes sharing one block, never
	 * given to another block in the process's lifetime; 0 without one
	 * (node_text_id). */
	uint64_t text_id;
	/* The store version at which this daemon saw the node's document
	 * change last (model_stamp_changes), what the events' delta form
	 * compares with; 0 when not known yet. */
	int64_t stamp;
};

/* A named load balancer of a cluster: the name its probes carry
 * (lbconfig --lb), what it is, and how to ask it directly. */
struct lb {
	char *name;    /* the node name rule */
	char *kind;    /* "haproxy", "varnish", "nginx" or "other" */
	char *runtime; /* NULL: none; HAProxy's stats socket (a path or
	                  host:port) or Varnish's working directory */
	char *backend; /* NULL: lbconfig's be_CLUSTER (HAProxy) */
};

/*
 * A cluster's nodes lie in chunks of NODE_CHUNK nodes, every chunk full
 * but the last, so that copies of a model share them: copying a cluster
 * of 10,000 nodes copies 157 chunk pointers, and a change copies only the
 * chunk of the node it changes (cluster_node_mut). A chunk held by more
 * than one model never changes; one held by a single model changes in
 * place. Read a node with cluster_node.
 */
#define NODE_CHUNK 64

struct node_chunk {
	_Atomic size_t refs; /* the models holding it */
	size_t n;            /* nodes held: NODE_CHUNK, but in the last chunk */
	/* The identity of what the chunk holds: given anew when it is made
	 * and whenever a node of it changes in place, never given twice in
	 * the process's lifetime. A reader may key what it made of the
	 * chunk's nodes by it without holding the chunk (render.c). */
	uint64_t id;
	/* What readers ask of many nodes at once, summed up when a model is
	 * sealed (model_seal) and valid while is_summed: a change through
	 * cluster_node_mut clears it. */
	int is_summed;
	size_t online;       /* nodes with status online */
	int64_t next_expiry; /* earliest expires_at, 0 when none */
	struct node nodes[];
};

struct cluster {
	char *name;
	char *path; /* mount path: starts with '/', no trailing '/' */
	/* NULL: name and path are allocations of their own. Else both lie
	 * in this block, shared with the cluster's copies (they never
	 * change), so that a copy of the model allocates neither and
	 * comparing a cluster with its copy compares pointers. */
	struct node_text *text;
	int64_t version; /* incremented by every change to the cluster */
	size_t n_nodes;
	struct node_chunk **chunks; /* sorted by name across chunks */
	size_t n_lbs;
	struct lb *lbs; /* sorted by name, at most CLUSTER_LBS_MAX */
	/* The store version at which this daemon saw a node added or
	 * removed last, or the cluster appear (model_stamp_changes). */
	int64_t members_stamp;
};

struct user {
	char *name;
	enum role role;
	char *password_hash; /* libsodium crypto_pwhash_str (argon2id) string */
	int64_t created_at;
};

struct token {
	char *id; /* public identifier, shown in lists */
	enum role role;
	char *description;
	char *hash; /* lowercase hex of the BLAKE2b-256 of the secret token */
	char *created_by;
	int64_t created_at;
	char *clusters; /* where its role holds: "shop,shop-staging"; "" (or
	                   NULL) for every cluster */
};

/* Most clusters a token may be scoped to. */
#define TOKEN_CLUSTERS_MAX 64

struct model {
	size_t n_clusters;
	struct cluster *clusters; /* sorted by name */
	/* The clusters sorted by path, so that a request finds its
	 * mount in O(log n) whatever the number of clusters; built by
	 * model_seal on a model about to be published (published models
	 * are never changed), copied with the model, dropped when a
	 * cluster is added or removed; NULL then (lookups scan). */
	const struct cluster **by_path;
	size_t n_users;
	struct user *users; /* sorted by name */
	size_t n_tokens;
	struct token *tokens; /* sorted by id */
	int64_t stamp;        /* the store version it reflects, once published */
};

/* Who makes a change, for changed_by and the audit log. Borrowed strings. */
struct actor {
	const char *name;    /* user name, "token:ID", or "ttl" */
	const char *address; /* client address, "" for the daemon itself */
};

/* The most an audit entry's context (struct audit_entry) may hold. */
#define AUDIT_CONTEXT_MAX 1536

/* One audit record. Strings owned by the entry; "" where not applicable. */
struct audit_entry {
	int64_t id; /* assigned by the store; 0 before it is saved */
	int64_t at; /* ms */
	char *cluster;
	char *node; /* for user-* and token-*: the user name or token id
	               (and cluster is "") */
	char *actor;
	char *address;
	char *action;     /* "status", "node-add", "node-remove", "node-update",
	                     "lb-add", "lb-update", "lb-remove",
	                     "cluster-add", "cluster-remove", "user-add",
	                     "user-remove", "token-create", "token-revoke" */
	char *old_status; /* for "status": the status names; else "" */
	char *new_status;
	char *reason;
	char *context; /* how the actor signed in, role, scope, peer, forwarded
	                  chain, user agent, request id: a JSON object of at
	                  most AUDIT_CONTEXT_MAX bytes (docs/API.md), set by
	                  the engine for a client's write; "" when none */
};

struct audit_log {
	size_t n, cap;
	struct audit_entry *entries;
};

/* One requested status change of a change set. */
struct status_change {
	char *node;
	enum node_status status;
	char *reason;   /* never NULL */
	int64_t ttl_ms; /* 0 = no TTL */
};

struct change_set {
	size_t n;
	struct status_change *changes; /* sorted by node name, unique */
};

/* --- names and enums ------------------------------------------------- */

/* 1-64 characters of A-Z a-z 0-9 . _ - ; len excludes any terminator.
 * "." and ".." are refused: as a segment of a URL path they mean "this"
 * and "the parent", so such a node or cluster could never be addressed
 * in the API. */
int node_name_is_valid(const char *s, size_t len);
/* Cluster names follow the node name rule. */
int cluster_name_is_valid(const char *s);
/* "/x[/y...]": starts with '/', segments of A-Z a-z 0-9 . _ - , no
 * trailing '/', not "/v1" or below it, not "/metrics", at most 128
 * characters. Also
 * rejected: "/" alone, empty segments ("//") and "." or ".." segments. */
int mount_path_is_valid(const char *s);
/* "host:port": a host name or IPv4 address (A-Z a-z 0-9 . _ -) or an IPv6
 * address in brackets ("[::1]:8080"), port 1-65535, at most 255
 * characters. */
int node_address_is_valid(const char *s);
/* An http:// or https:// URL of printable ASCII without spaces, at most
 * 2048 characters. */
int node_check_is_valid(const char *s);

const char *node_status_name(enum node_status s); /* "online", ... */
/* Returns 0 and sets *out, or -1 for an unknown name. */
int node_status_from_string(const char *s, enum node_status *out);
const char *role_name(enum role r);                  /* "viewer", ...; "anonymous" for NONE */
int role_from_string(const char *s, enum role *out); /* NONE is not accepted */

/* --- whole models ---------------------------------------------------- */

/* A new empty model (no clusters). Never NULL (aborts on OOM). */
struct model *model_new(void);
/* A copy the caller owns, to change and free as its own. The arrays are
 * copied; the node chunks are shared with m (each with a count of the
 * models holding it), so that copying a cluster of 10,000 nodes copies
 * neither a node nor a string. Any thread may copy or free models that
 * share chunks: the counts are atomic. */
struct model *model_copy(const struct model *m);
/* dst becomes a copy of src (sharing src's node chunks). */
void model_cluster_copy(struct cluster *dst, const struct cluster *src);
/* dst becomes a copy of src, sharing its string block (a node whose
 * strings are its own gives dst a block of copies). */
void model_node_copy(struct node *dst, const struct node *src);
void model_free(struct model *m);
/* Frees what m holds and leaves it empty (model_new's). */
void model_clear(struct model *m);

const struct cluster *model_find_cluster(const struct model *m, const char *name);
struct cluster *model_find_cluster_mut(struct model *m, const char *name);
/* The cluster mounted exactly at path[0..len), or NULL. */
const struct cluster *model_find_cluster_by_path(const struct model *m, const char *path,
                                                 size_t len);
/* The cluster whose mount path is path[0..len) or a segment-wise prefix
 * of it (mount paths never nest, so there is at most one), or NULL; its
 * path's length in *mount_len. O(log n) on an indexed model. */
const struct cluster *model_find_mount(const struct model *m, const char *path, size_t len,
                                       size_t *mount_len);
/* Prepares m, which will change no more, for its readers: builds
 * m->by_path when it has none, sums up the chunks changed since it was copied, and gives
 * each node changed since a string block of its own (so that render.c
 * can key it). Call it last, after model_stamp_changes. */
void model_seal(struct model *m);

/* Stamps a model about to be published, whose store version is stamp,
 * against the one it replaces (prev, NULL for the first): a node whose
 * document differs from its namesake's in prev, or that prev's cluster
 * lacks, gets stamp; an unchanged one keeps prev's. A cluster whose
 * node names differ from prev's, or that prev lacks, gets
 * members_stamp = stamp. Only clusters whose version moved are
 * compared; nodes read afresh with a cluster (stamp 0) get stamp. */
void model_stamp_changes(struct model *next, const struct model *prev, int64_t stamp);
/* Are the documents of two nodes (their stored fields but the name)
 * the same? */
int node_same(const struct node *a, const struct node *b);
/* The number of chunks n nodes take. */
static inline size_t
node_chunks_for(size_t n)
{
	return (n + NODE_CHUNK - 1) / NODE_CHUNK;
}
/* The number of c's chunks. */
static inline size_t
cluster_n_chunks(const struct cluster *c)
{
	return node_chunks_for(c->n_nodes);
}
/* How many nodes from index i on a and b hold in one chunk they share at
 * the same place (the same nodes, unchanged): a whole chunk when i
 * starts one, else 0. What compares a model with its copy skips them. */
static inline size_t
clusters_share_from(const struct cluster *a, const struct cluster *b, size_t i)
{
	size_t q = i / NODE_CHUNK;

	return i % NODE_CHUNK == 0 && i < a->n_nodes && i < b->n_nodes &&
	               a->chunks[q] == b->chunks[q]
	           ? a->chunks[q]->n
	           : 0;
}
/* The i-th node of c (i < c->n_nodes), by name order. */
static inline const struct node *
cluster_node(const struct cluster *c, size_t i)
{
	return &c->chunks[i / NODE_CHUNK]->nodes[i % NODE_CHUNK];
}
/* The i-th node of c, to change: its chunk is first copied when another
 * model holds it too, so that only c sees the change. */
struct node *cluster_node_mut(struct cluster *c, size_t i);
/* Where the node named name[0..len) is in c, or where it would go;
 * *found says which. */
size_t cluster_node_position(const struct cluster *c, const char *name, size_t len, int *found);
const struct node *cluster_find_node(const struct cluster *c, const char *name, size_t len);
/* The node, or NULL; its strings are its own (node_own_strings), so that
 * the caller may replace them. */
struct node *cluster_find_node_mut(struct cluster *c, const char *name);
/* c's nodes, which must be none, become nodes[0..n) (sorted by name,
 * names unique): the nodes move into c's chunks and the array is freed. */
void cluster_take_nodes(struct cluster *c, struct node *nodes, size_t n);
/* dst, which holds no nodes, gets src's, sharing their chunks. */
void cluster_share_nodes(struct cluster *dst, const struct cluster *src);
/* Puts n, a node read from a store, into c in name order, in place of
 * its namesake when c has one: n's contents move into c. */
void cluster_store_node(struct cluster *c, struct node *n);
/* Gives n strings of its own in place of a shared block (no-op when it
 * has them already): each may then be freed and replaced. */
void node_own_strings(struct node *n);
const struct user *model_find_user(const struct model *m, const char *name);
const struct token *model_find_token(const struct model *m, const char *id);

/* An identity of n's strings, 0 when they are its own: nodes with the
 * same non-zero identity share one string block, which never changes,
 * and an identity is never given to another block while the process
 * lives. It lets a cache key a node's strings without holding the block
 * (render.c): reading it touches the node, not the block, whose count
 * the engine's copies change. */
uint64_t node_text_id(const struct node *n);

/* Number of nodes with status online. */
size_t cluster_count_online(const struct cluster *c);

/* Earliest expires_at over all nodes of all clusters, 0 when none. */
int64_t model_next_expiry(const struct model *m);

/* --- mutations (on a private copy; on error nothing has changed) ----- */

/* Common to all mutations: they return 0, or -1 with err filled (the
 * offending name in err->entry where there is one) and the model exactly
 * as it was. They append what they did to audit, which may be NULL (then
 * nothing is recorded); who may be NULL (then changed_by is ""). A
 * mutation that would change nothing (the same node list, the same
 * address and check) succeeds without incrementing the version or adding
 * an audit entry; every other successful change to a cluster increments
 * its version exactly once. */

/* Adds an empty cluster at version 1. Name: the node name rule (400);
 * path: mount_path_is_valid (400). 409 when the name is taken, or the path
 * equals, lies below or above another cluster's mount ("/a" and "/a/b"
 * would make "{mount}/..." routes ambiguous). */
int model_add_cluster(struct model *m, const char *name, const char *path, const struct actor *who,
                      int64_t now, struct audit_log *audit, struct error *err);
/* 404 when unknown. Removing the last cluster is allowed. */
int model_remove_cluster(struct model *m, const char *name, const struct actor *who, int64_t now,
                         struct audit_log *audit, struct error *err);

/* Replaces the node list: duplicates collapse, removed nodes are forgotten,
 * new nodes start online, kept nodes keep their status. Any invalid name
 * rejects the whole list (err->entry names it) (400), as do more than
 * CLUSTER_NODES_MAX distinct names. */
int cluster_set_node_list(struct cluster *c, const char *const *names, size_t n,
                          const struct actor *who, int64_t now, struct audit_log *audit,
                          struct error *err);
/* Adds a node (online) or updates address/check of an existing one. A NULL
 * address/check leaves it as it is; "" clears it. Invalid name, address
 * (node_address_is_valid) or check (node_check_is_valid) -> 400; a new
 * node in a cluster that holds CLUSTER_NODES_MAX already -> 409. Audit
 * action "node-add" or "node-update". */
int cluster_put_node(struct cluster *c, const char *name, const char *address, const char *check,
                     const struct actor *who, int64_t now, struct audit_log *audit,
                     struct error *err);
/* Unknown node -> 404 naming it. */
int cluster_remove_node(struct cluster *c, const char *name, const struct actor *who, int64_t now,
                        struct audit_log *audit, struct error *err);

/* Is s a load balancer kind: "haproxy", "varnish", "nginx", "other"? */
int lb_kind_is_valid(const char *s);
/* The named load balancer, or NULL. */
const struct lb *cluster_find_lb(const struct cluster *c, const char *name);
/* Adds a named load balancer or replaces what is known of it (runtime and
 * backend NULL or "": none). Invalid name, kind, runtime (printable ASCII
 * without spaces or quotes, at most LB_RUNTIME_MAX bytes) or backend
 * (A-Z a-z 0-9 . _ - :, at most LB_BACKEND_MAX bytes) -> 400; a new one in
 * a cluster that holds CLUSTER_LBS_MAX already -> 409. Audit action
 * "lb-add" or "lb-update" (node = the load balancer's name). */
int cluster_put_lb(struct cluster *c, const char *name, const char *kind, const char *runtime,
                   const char *backend, const struct actor *who, int64_t now,
                   struct audit_log *audit, struct error *err);
/* Unknown load balancer -> 404 naming it. Audit action "lb-remove". */
int cluster_remove_lb(struct cluster *c, const char *name, const struct actor *who, int64_t now,
                      struct audit_log *audit, struct error *err);

/* Applies a change set atomically. if_version < 0 and min_online < 0 mean
 * "not given". Unknown node -> 404 naming it; if_version mismatch or fewer
 * than min_online nodes online afterwards -> 409. Increments the version
 * once when anything was applied. The changes need not be sorted, but a
 * node named twice, or an empty set, is 400. Checks come in this order:
 * names, unknown nodes, if_version, min_online. Each node gets the new
 * status and reason, changed_by = who, changed_at = now, expires_at =
 * now + ttl_ms (0 without a TTL); one audit entry "status" per node. */
int cluster_apply_changes(struct cluster *c, const struct change_set *cs, const struct actor *who,
                          int64_t now, int64_t if_version, int64_t min_online,
                          struct audit_log *audit, struct error *err);

/* Returns every node whose TTL is due (expires_at <= now) to online, as
 * done by actor "ttl" (reason "", audit reason "ttl expired"). Increments
 * the version of each cluster it touched once. Returns the number of
 * nodes changed. */
size_t model_expire(struct model *m, int64_t now, struct audit_log *audit);

/* Adds a user (created_at = now) or replaces the role and hash of an
 * existing one (audit "user-add" either way, reason "replaced" for the
 * latter). Name: the node name rule; role: not ROLE_NONE; hash: opaque,
 * not empty (400). Demoting the only admin user -> 409. */
int model_put_user(struct model *m, const char *name, enum role role, const char *password_hash,
                   const struct actor *who, int64_t now, struct audit_log *audit,
                   struct error *err);
/* 404 when unknown; 409 for the only admin user (so nobody is locked out). */
int model_remove_user(struct model *m, const char *name, const struct actor *who, int64_t now,
                      struct audit_log *audit, struct error *err);
/* Id: the node name rule; role: not ROLE_NONE; hash not empty (400);
 * 409 when the id exists. A NULL description becomes "". */
int model_add_token(struct model *m, const char *id, enum role role, const char *description,
                    const char *hash, const struct actor *who, int64_t now, struct audit_log *audit,
                    struct error *err);
/* 404 when unknown. */
/* Checks clusters for a token ("a,b": names, at most TOKEN_CLUSTERS_MAX,
 * no repeats; NULL or "" for every cluster): 0, or -1 with err 400. */
int model_check_token_clusters(const char *clusters, struct error *err);
/* Scopes token id (just added) to clusters, as checked above. */
void model_set_token_clusters(struct model *m, const char *id, const char *clusters);
int model_remove_token(struct model *m, const char *id, const struct actor *who, int64_t now,
                       struct audit_log *audit, struct error *err);

/* --- change sets ----------------------------------------------------- */

/* Parses {NAME: {"status": "online"|"offline"|"drain", "reason"?: str,
 * "ttl"?: seconds}, ...}. Rejects (400, err->entry = NAME) invalid names,
 * non-object entries, unknown or mistyped fields, unknown statuses,
 * reasons over 256 characters, ttl that is not a positive integer of at
 * most 30 days, a ttl on "online", and an empty object. On success the
 * caller owns *out and frees it with change_set_free. On error *out is
 * empty (nothing to free). Reasons are counted in UTF-8 characters; a
 * missing reason is "". "ttl": 60.0 is not an integer and is rejected. */
int change_set_from_json(const json_t *obj, struct change_set *out, struct error *err);
void change_set_free(struct change_set *cs);

/* --- audit logs ------------------------------------------------------ */

/* Appends a copy of the given strings (NULL becomes ""; a NULL who gives
 * actor and address ""). A NULL log is allowed and records nothing. */
void audit_log_add(struct audit_log *log, int64_t at, const char *cluster, const char *node,
                   const struct actor *who, const char *action, const char *old_status,
                   const char *new_status, const char *reason);
/* Frees the entries and resets *log to empty; the struct itself is the
 * caller's (usually on the stack) and may be reused. */
void audit_log_free(struct audit_log *log);
/* Frees the strings of *e (not e itself) and zeroes it. */
void audit_entry_free(struct audit_entry *e);

#endif
