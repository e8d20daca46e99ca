/*
 * journal.h - structured entries for the systemd journal (journal.c):
 * every change's audit record, with a fixed MESSAGE_ID so that
 * `journalctl MESSAGE_ID=JOURNAL_AUDIT_MESSAGE_ID` finds every change,
 * and the sign-in events of auth_event.h, each with the record's parts
 * as CLUSTERMGMT_* fields.
 */
#ifndef CM_JOURNAL_H
#define CM_JOURNAL_H

#include <stddef.h>

#include "../core/model.h"

#define JOURNAL_AUDIT_MESSAGE_ID "4d0e6c1b8a2f4e5c9b7d3a1f0e2c8b6a"

/* Is the daemon's stderr the journal (systemd sets $JOURNAL_STREAM)?
 * Then changes and sign-in events go to the journal as structured
 * entries, else as log lines. */
int journal_is_connected(void);
/* An engine_audit_sink (engine.h): sends e to the journal; 1 when it
 * was taken, 0 when the journal refused it (then it is logged as a
 * line). Engine thread. */
int journal_audit_sink(const struct audit_entry *e);
/* Sends one entry: MESSAGE_ID message_id, PRIORITY priority (a syslog
 * level's digit), MESSAGE message, and per pair of pairs (pairs[2i] a
 * name in lower case, pairs[2i+1] its value) the field CLUSTERMGMT_NAME;
 * pairs with an empty or NULL value are left out. Returns 0, or -1 when
 * the journal refused it. Any thread. */
int journal_send(const char *message_id, const char *priority, const char *message,
                 const char *const *pairs, size_t n_pairs);

#endif
