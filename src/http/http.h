/*
 * http.h - what every HTTP surface (the "surfaces" room of
 * tools/check-includes.py) includes: the request and its waits
 * (request.h, request.c), who is asking (auth.h, auth.c), replies
 * (reply.c) and form bodies (form.c). Each surface has its own header
 * for what only the router calls (probe.h, api_v1.h, ...); the path
 * table is router.h's.
 *
 * Threading: every function here runs on the worker thread that owns the
 * request.
 */
#ifndef CM_HTTP_H
#define CM_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <jansson.h>

#include "../core/error.h"
#include "../core/model.h"
#include "../engine/engine.h"
#include "../observe/share.h"

struct server;
struct worker;
struct request;
struct route_entry;

#include "request.h"

/* --- auth.c: see auth.h ---------------------------------------------- */

#include "auth.h"

/* --- reply.c -------------------------------------------------------- */

/* Every reply carries Cache-Control: no-store. Bodies are copied. */
void reply_text(struct request *r, int status, const char *body);
void reply_bytes(struct request *r, int status, const char *content_type, const char *body,
                 size_t len);
/* Serialises doc (compact, keys in insertion order) and decrefs it. */
void reply_json(struct request *r, int status, json_t *doc);
/* {"error": sentence, "detail": detail or null}; steals detail. */
void reply_error(struct request *r, int status, json_t *detail, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* reply_error from a struct error; detail {"entry": ...} when set. */
void reply_from_error(struct request *r, const struct error *err);
void reply_unauthorized(struct request *r);
void reply_method_not_allowed(struct request *r, const char *allow);
void reply_redirect(struct request *r, int status, const char *location);

/* Parses the request body as a JSON object (at most BODY_MAX bytes).
 * Returns NULL and fills err (400 or 413) otherwise. Caller decrefs. */
json_t *request_json_body(struct request *r, struct error *err);
/* The same with a limit of max bytes instead (a body allowed to be larger,
 * such as the node list's NODE_LIST_BODY_MAX). */
json_t *request_json_body_max(struct request *r, size_t max, struct error *err);

/* form.c: application/x-www-form-urlencoded and multipart/form-data. */
/* Copies the decoded value of field name from the request body into a
 * malloc'd string (*out), or sets *out = NULL when absent. Returns -1 and
 * fills err for an unreadable body. */
int form_field(struct request *r, const char *name, char **out, struct error *err);
/* Finds field name in a multipart/form-data body whose Content-Type
 * header value (with its boundary parameter) is content_type, and copies
 * its value into a malloc'd *out (*out = NULL when absent). Returns 0, or
 * -1 with err filled (400) when the Content-Type has no usable boundary or
 * the value holds a NUL byte. */
int form_multipart_value(h2o_iovec_t body, h2o_iovec_t content_type, const char *name, char **out,
                         struct error *err);

#endif
