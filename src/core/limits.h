/*
 * limits.h - every bound on what a client may send, defined once.
 *
 * Each surface (the seed REST, the v1 API, the web page, the CLI) checks
 * its input against these and nothing else, so a value is accepted or
 * refused the same way wherever it comes in. docs/API.md has the table.
 *
 * How a limit is measured is part of it: names are ASCII, so characters
 * and bytes agree; text a person reads (a reason, a token description) is
 * counted in characters; a password is counted in bytes, because it
 * crosses HTTP Basic and the hash as bytes, and a limit in characters
 * would let the same password fit one buffer and not another.
 */
#ifndef CM_LIMITS_H
#define CM_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define NODE_NAME_MAX 64     /* node, cluster, user names, token ids: bytes */
#define CLUSTER_PATH_MAX 128 /* a mount path: bytes */
#define REASON_MAX 256       /* a status reason: characters */
#define DESCRIPTION_MAX 256  /* a token description: characters */
#define PASSWORD_MIN 8       /* bytes */
#define PASSWORD_MAX 1024    /* bytes */
#define USER_AGENT_MAX 127   /* a prober's User-Agent as kept: bytes (longer is cut) */
#define BODY_MAX (64 * 1024) /* any request body (JSON or a form): bytes */
/* The node list's body (PUT /v1/clusters/{cluster}/nodes): room for
 * CLUSTER_NODES_MAX names of NODE_NAME_MAX bytes, quoted, comma-separated
 * and indented (10,000 x 72 = 720,000 bytes), so a whole fleet is loaded
 * and replaced in one request: bytes */
#define NODE_LIST_BODY_MAX (1024 * 1024)
/* h2o's own cut-off, a backstop above every limit of ours so that our
 * 413 with a sentence answers first: bytes */
#define REQUEST_ENTITY_MAX (2 * 1024 * 1024)
#define TTL_MAX_SECONDS (30LL * 24 * 3600) /* a status TTL: 1 s to 30 days (changeset.c) */
#define CLUSTER_NODES_MAX 10000            /* nodes in one cluster */
#define CLUSTER_LBS_MAX 16                 /* named load balancers in one cluster */
#define LB_RUNTIME_MAX 255                 /* a load balancer's runtime address: bytes */
#define LB_BACKEND_MAX 127                 /* its HAProxy backend name: bytes */

/* 0 when password (NUL-terminated) is PASSWORD_MIN to PASSWORD_MAX
 * bytes; else -1 with err (400) saying so. */
int password_check_length(const char *password, struct error *err);

/* 0 when the NUL-terminated UTF-8 text has at most max characters; else
 * -1 with err (400): "<what> must be at most <max> characters". */
int text_check_length(const char *what, const char *text, size_t max, struct error *err);

#endif
