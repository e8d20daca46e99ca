/*
 * api_v1_internal.h - what the files of the v1 JSON API share (api_v1.c,
 * api_v1_observe.c, api_v1_lbs.c, api_v1_admin.c): the document builders,
 * the body and query readers and the write helpers, all defined in
 * api_v1.c except observed_node_json (api_v1_observe.c). Private to those
 * files (tools/check-includes.py PRIVATE).
 */
#ifndef CM_API_V1_INTERNAL_H
#define CM_API_V1_INTERNAL_H

#include "../observe/observe.h"
#include "api_v1.h"

/* RFC 3339 UTC, or null for 0 ("never"). */
json_t *time_json(int64_t ms);
/* A string, or null when s is absent (NULL or ""). */
json_t *optional_string_json(const char *s);
json_t *api_node_json(const struct node *n);
/* Node n's document with what was observed of it (window_s: only probers
 * seen in the last window_s seconds; 0 for all). */
json_t *observed_node_json(struct request *r, const struct cluster *c, const struct node *n,
                           int64_t window_s);

/* The cluster of the snapshot, or NULL after replying 404. */
const struct cluster *find_cluster_or_reply(struct request *r, const char *name);

/* The request body (at most BODY_MAX bytes) as a JSON object holding only
 * allowed fields (NULL-terminated), or NULL after replying 4xx. An empty
 * body is {} when is_optional. */
json_t *read_body(struct request *r, const char *const allowed[], int is_optional);
/* Field key as a C string in *out; NULL when absent and optional. */
int body_string(const json_t *body, const char *key, int is_required, const char **out,
                struct error *err);
/* An optional string field that clears (address, check, runtime,
 * backend): null reads as "". */
int body_node_field(const json_t *body, const char *key, const char **out, struct error *err);
/* Query parameter name as an integer 0..max: 1 present, 0 absent, -1
 * invalid (err filled). */
int query_count(struct request *r, const char *name, int64_t max, int64_t *out, struct error *err);
/* The answer a status write or an events poll asked for (?answer=): 1
 * the whole node list (absent or "list"), 0 only the changed nodes
 * ("changed"), -1 after replying 400. */
int query_answer_is_list(struct request *r);

/* A new job carrying a command of kind (its idempotency key from the
 * request); the caller fills the command and submits the job. */
struct command *command_new(struct request *r, enum command_kind kind, struct engine_job **job);
/* Answers a removal: {"cluster", "version", "deleted": NAME}. */
void node_remove_done(struct request *r, struct engine_job *job);

#endif
