/*
 * pg_share.h - the PostgreSQL statements of the fleet's shared tables,
 * one statement per batch.
 *
 * Observed probes are shared as one row per daemon, node and client.
 * Sending a row per round trip made the fleet's telemetry cost one
 * round trip per report; this module turns a whole batch into one
 * INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE whose
 * parameters are PostgreSQL text-array literals, one array per column.
 * Web sessions travel the same way. This module owns the statements and
 * the encoding of their parameters; postgres_fleet.c runs them on the
 * watch thread's connection.
 */
#ifndef CM_PG_SHARE_H
#define CM_PG_SHARE_H

#include <stddef.h>

#include "../core/peer.h"

#define PG_SHARE_PROBE_COLUMNS 15

/* The upsert of a batch of observed probes; $1..$15 are text arrays in
 * the order pg_share_probe_arrays fills them. */
extern const char pg_share_put_probes_sql[];

/* Fills params[0..PG_SHARE_PROBE_COLUMNS-1] with the array literals of
 * the n reports (column by column). The strings are allocated; the
 * caller frees them with pg_share_free_params. The reports' keys must be
 * distinct (an upsert cannot touch one row twice in one statement). */
void pg_share_probe_arrays(const struct probe_report *r, size_t n,
                           char *params[PG_SHARE_PROBE_COLUMNS]);

/* Frees the n array literals of params (and sets each NULL). */
void pg_share_free_params(char **params, int n);

#define PG_SHARE_INTEREST_COLUMNS 5

/* The nodes whose reports a read asks for, as array literals: [0] the
 * clusters of the node entries, [1] their nodes, [2] whether each is new
 * (t or f), [3] the clusters read whole, [4] whether each is new. Freed
 * with pg_share_free_params. */
void pg_share_interest_arrays(const struct probe_interest *in, size_t n,
                              char *params[PG_SHARE_INTEREST_COLUMNS]);

#define PG_SHARE_SESSION_COLUMNS 11

/* The insert of a batch of sessions started ($1..$11: id hashes, users,
 * tags, expiry times, kinds, names, issuers, subjects, emails, groups,
 * sealed ID tokens), and the delete of a batch ended ($1: id hashes). */
extern const char pg_share_put_sessions_sql[];
extern const char pg_share_end_sessions_sql[];

/* Fills params[0..PG_SHARE_SESSION_COLUMNS-1] with the array literals of
 * the n sessions (hashes and tags as 64 hex digits); with is_ids_only,
 * params[0] alone. Freed with pg_share_free_params. */
void pg_share_session_arrays(const struct session_record *r, size_t n, int is_ids_only,
                             char *params[PG_SHARE_SESSION_COLUMNS]);

#endif
