/*
 * model_internal.h - what the model's own files (model.c, model_names.c,
 * model_cluster.c, model_status.c, model_users.c) share and nothing else
 * includes: the sorted-array helpers, freeing a model's parts, and the
 * checks and error sentences more than one kind of mutation uses.
 */
#ifndef CM_MODEL_INTERNAL_H
#define CM_MODEL_INTERNAL_H

#include "model.h"

void *model_sorted_find(const void *base, size_t n, size_t size, const char *key);
/* Where key is, or where it would go, in a sorted array; *found says which. */
size_t model_sorted_index(const void *base, size_t n, size_t size, const char *key, int *found);
/* Grows an array of n elements by a zeroed slot at index at; returns the
 * new base. The caller increments its count. */
void *model_array_open_slot(void *base, size_t n, size_t size, size_t at);
/* Closes the slot at index at of an array of n elements (whose contents
 * the caller has freed). The caller decrements its count. */
void model_array_close_slot(void *base, size_t n, size_t size, size_t at);
int model_compare_strings(const void *a, const void *b);
/* strcmp of s1[0..len) (no NUL inside) against a NUL-terminated s2. */
int model_compare_slice(const char *s1, size_t len, const char *s2);
void model_node_clear(struct node *n);
/* Gives n, whose strings are its own, a block holding them instead
 * (no-op when it has one): node_own_strings' reverse. */
void node_share_strings(struct node *n);

/* A cluster's node chunks (model_nodes.c). */
/* Drops c's hold on its chunks: c holds no nodes afterwards. */
void model_nodes_clear(struct cluster *c);
/* Opens a zeroed node at index at (0..n_nodes), returned to be filled. */
struct node *model_nodes_insert(struct cluster *c, size_t at);
/* Leaves the node at index at out of c. */
void model_nodes_remove(struct cluster *c, size_t at);
/* model_seal's part for one cluster. */
void model_nodes_seal(struct cluster *c);
/* The earliest expires_at of the chunk's nodes, 0 when none. */
int64_t model_chunk_next_expiry(const struct node_chunk *ch);
void model_lb_clear(struct lb *l);
void model_cluster_clear(struct cluster *c);
/* Drops m->by_path, which a change to m's clusters leaves pointing
 * elsewhere: model_seal makes it again. */
void model_forget_paths(struct model *m);
/* Gives c a name and a path of its own in place of the block its copies
 * share (no-op when it has them): each may then be replaced. */
void model_cluster_own_names(struct cluster *c);
/* c's name and path become copies of these, in one block its copies
 * share. */
void model_cluster_set_names(struct cluster *c, const char *name, const char *path);
void model_user_clear(struct user *u);
void model_token_clear(struct token *t);
int model_is_name_char(unsigned char ch);
/* The node name rule for a NUL-terminated string of any length. */
int model_name_is_valid(const char *s);
/* True when inner is a mount path strictly below outer ("/a/b" below "/a"). */
int model_path_is_below(const char *inner, const char *outer);
int model_status_is_valid(enum node_status s);
int model_role_is_valid(enum role r);
const char *model_actor_name(const struct actor *who);
int model_invalid_node_name(struct error *err, const char *name);
int model_node_not_found(struct error *err, const struct cluster *c, const char *name);

#endif
