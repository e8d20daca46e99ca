/*
 * audit.c - the audit entries a mutation produces.
 *
 * A mutation appends to a struct audit_log that the engine hands to the
 * store together with the changed model, so the record of a change is
 * committed in the same transaction as the change itself. The log is a
 * plain growable array: a change produces a handful of entries (one per
 * node at most), and the store reads them back in bulk.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/xalloc.h"
#include "model.h"

void
audit_log_add(struct audit_log *log, int64_t at, const char *cluster, const char *node,
              const struct actor *who, const char *action, const char *old_status,
              const char *new_status, const char *reason)
{
	struct audit_entry *e;

	if (log == NULL)
		return;
	if (log->n == log->cap) {
		log->cap = log->cap ? log->cap * 2 : 8;
		log->entries = xreallocarray(log->entries, log->cap, sizeof *log->entries);
	}
	e = &log->entries[log->n++];
	e->id = 0;
	e->at = at;
	e->cluster = xstrdup(cluster);
	e->node = xstrdup(node);
	e->actor = xstrdup(who ? who->name : NULL);
	e->address = xstrdup(who ? who->address : NULL);
	e->action = xstrdup(action);
	e->old_status = xstrdup(old_status);
	e->new_status = xstrdup(new_status);
	e->reason = xstrdup(reason);
	e->context = xstrdup("");
}

void
audit_entry_free(struct audit_entry *e)
{
	if (e == NULL)
		return;
	free(e->cluster);
	free(e->node);
	free(e->actor);
	free(e->address);
	free(e->action);
	free(e->old_status);
	free(e->new_status);
	free(e->reason);
	free(e->context);
	memset(e, 0, sizeof *e);
}

void
audit_log_free(struct audit_log *log)
{
	size_t i;

	if (log == NULL)
		return;
	for (i = 0; i < log->n; i++)
		audit_entry_free(&log->entries[i]);
	free(log->entries);
	log->n = 0;
	log->cap = 0;
	log->entries = NULL;
}
