/*
 * journal.c - every change's audit record to the systemd journal.
 *
 * Under systemd the daemon's log lines reach the journal through stderr
 * as plain text; a change is worth more: sd_journal_sendv sends it as
 * one structured entry (MESSAGE_ID, PRIORITY, MESSAGE and a field per
 * part of the record, CLUSTERMGMT_*), which journalctl can select by
 * field. The store's audit log stays the record of truth (written in
 * the change's own transaction, before the answer); the journal entry
 * follows the commit. Sign-in events (auth_event.c) are sent the same
 * way through journal_send.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <jansson.h>
#include <systemd/sd-journal.h>

#include "../util/xalloc.h"
#include "journal.h"

#define FIELDS_MAX 32

int
journal_is_connected(void)
{
	const char *stream = getenv("JOURNAL_STREAM");

	return stream != NULL && stream[0] != '\0';
}

struct fields {
	struct iovec iov[FIELDS_MAX];
	char *text[FIELDS_MAX];
	size_t n;
};

static void
field(struct fields *f, const char *key, const char *value)
{
	size_t len;

	if (value == NULL || value[0] == '\0' || f->n == FIELDS_MAX)
		return;
	len = strlen(key) + 1 + strlen(value);
	f->text[f->n] = xmalloc(len + 1);
	snprintf(f->text[f->n], len + 1, "%s=%s", key, value);
	f->iov[f->n].iov_base = f->text[f->n];
	f->iov[f->n].iov_len = len;
	f->n++;
}

/* The context's member key as the journal field name (a boolean as
 * "yes"/"no"); no field when it is absent or of another type. */
static void
context_field(struct fields *f, json_t *context, const char *key, const char *name)
{
	json_t *v = json_object_get(context, key);

	if (json_is_string(v))
		field(f, name, json_string_value(v));
	else if (json_is_boolean(v))
		field(f, name, json_is_true(v) ? "yes" : "no");
}

int
journal_audit_sink(const struct audit_entry *e)
{
	struct fields f = {0};
	json_t *context =
	    e->context != NULL && e->context[0] != '\0' ? json_loads(e->context, 0, NULL) : NULL;
	char message[600], id[24], statuses[80] = "";
	size_t i;
	int rc;

	if (e->new_status[0] != '\0')
		snprintf(statuses, sizeof(statuses), " %s -> %s", e->old_status, e->new_status);
	snprintf(message, sizeof(message), "change: %s %s%s%s%s by %s from %s", e->action,
	         e->cluster, e->node[0] ? "/" : "", e->node, statuses, e->actor,
	         e->address[0] ? e->address : "the daemon");
	snprintf(id, sizeof(id), "%lld", (long long)e->id);
	field(&f, "MESSAGE_ID", JOURNAL_AUDIT_MESSAGE_ID);
	field(&f, "PRIORITY", "6");
	field(&f, "MESSAGE", message);
	field(&f, "SYSLOG_IDENTIFIER", "clustermgmt");
	field(&f, "CLUSTERMGMT_AUDIT_ID", id);
	field(&f, "CLUSTERMGMT_ACTION", e->action);
	field(&f, "CLUSTERMGMT_CLUSTER", e->cluster);
	field(&f, "CLUSTERMGMT_NODE", e->node);
	field(&f, "CLUSTERMGMT_OLD_STATUS", e->old_status);
	field(&f, "CLUSTERMGMT_NEW_STATUS", e->new_status);
	field(&f, "CLUSTERMGMT_REASON", e->reason);
	field(&f, "CLUSTERMGMT_ACTOR", e->actor);
	field(&f, "CLUSTERMGMT_PEER", e->address);
	if (json_is_object(context)) {
		context_field(&f, context, "method", "CLUSTERMGMT_METHOD");
		context_field(&f, context, "issuer", "CLUSTERMGMT_ISSUER");
		context_field(&f, context, "subject", "CLUSTERMGMT_SUBJECT");
		context_field(&f, context, "role", "CLUSTERMGMT_ROLE");
		context_field(&f, context, "scope", "CLUSTERMGMT_SCOPE");
		context_field(&f, context, "forwarded", "CLUSTERMGMT_FORWARDED");
		context_field(&f, context, "forwarded_trusted", "CLUSTERMGMT_FORWARDED_TRUSTED");
		context_field(&f, context, "user_agent", "CLUSTERMGMT_USER_AGENT");
		context_field(&f, context, "request_id", "CLUSTERMGMT_REQUEST_ID");
	}
	json_decref(context);
	rc = sd_journal_sendv(f.iov, (int)f.n);
	for (i = 0; i < f.n; i++)
		free(f.text[i]);
	return rc == 0;
}

int
journal_send(const char *message_id, const char *priority, const char *message,
             const char *const *pairs, size_t n_pairs)
{
	struct fields f = {0};
	char name[64];
	size_t i, j;
	int rc;

	field(&f, "MESSAGE_ID", message_id);
	field(&f, "PRIORITY", priority);
	field(&f, "MESSAGE", message);
	field(&f, "SYSLOG_IDENTIFIER", "clustermgmt");
	for (i = 0; i < n_pairs; i++) {
		snprintf(name, sizeof(name), "CLUSTERMGMT_%s", pairs[2 * i]);
		for (j = 0; name[j] != '\0'; j++)
			name[j] = (char)toupper((unsigned char)name[j]);
		field(&f, name, pairs[2 * i + 1]);
	}
	rc = sd_journal_sendv(f.iov, (int)f.n);
	for (i = 0; i < f.n; i++)
		free(f.text[i]);
	return rc == 0 ? 0 : -1;
}
