/*
 * store.h - durable storage of the model behind one interface.
 *
 * The engine thread is the only user of a store (no locking inside). The
 * store never decides anything about the model: it loads it whole at start,
 * and afterwards persists the difference between the model before and after
 * one change, together with that change's audit entries, in a single
 * transaction that is durable (fsynced) when store_save returns 0.
 *
 * Backends: SQLite (a file path; WAL, synchronous=FULL) and, later,
 * PostgreSQL (a postgres:// URL). store.c computes the difference and
 * drives the backend through the table in store_backend.h.
 */
#ifndef CM_STORE_H
#define CM_STORE_H

#include <stdint.h>

#include "../core/error.h"
#include "../core/model.h"

struct store;

/* Opens (creating and migrating forward as needed) the store named by spec:
 * a file path for SQLite, "postgres://..." / "postgresql://..." for
 * PostgreSQL. Returns NULL and fills err on failure. */
struct store *store_open(const char *spec, struct error *err);
void store_close(struct store *s);

/* A short description for logs, e.g. "sqlite:/var/lib/cm.db". Owned by s. */
const char *store_describe(const struct store *s);

/* The schema version the store is at after store_open. */
int store_schema_version(const struct store *s);

/* Loads the whole model. The caller owns *out (model_free). An empty store
 * gives an empty model (no clusters, no users). */
int store_load(struct store *s, struct model **out, struct error *err);

/* Persists everything that differs between before and after (clusters,
 * their versions, nodes, users, tokens) and appends the audit entries, in
 * one transaction. Returns 0 only once the transaction is durably
 * committed; sets the id of each audit entry. On error nothing is saved. */
int store_save(struct store *s, const struct model *before, const struct model *after,
               struct audit_log *audit, struct error *err);

/* Reads the newest audit entries first, at most limit of them, for one
 * cluster (or all when cluster is NULL). Entries are appended to *out. */
int store_read_audit(struct store *s, const char *cluster, int64_t limit, struct audit_log *out,
                     struct error *err);

#endif
