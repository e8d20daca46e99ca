/*
 * journal.h - every change's audit record to the systemd journal
 * (journal.c), with a fixed MESSAGE_ID so that `journalctl
 * MESSAGE_ID=JOURNAL_AUDIT_MESSAGE_ID` finds every change, and the
 * record's fields as CLUSTERMGMT_* fields.
 */
#ifndef CM_JOURNAL_H
#define CM_JOURNAL_H

#include "../core/model.h"

#define JOURNAL_AUDIT_MESSAGE_ID "4d0e6c1b8a2f4e5c9b7d3a1f0e2c8b6a"

/* Is the daemon's stderr the journal (systemd sets $JOURNAL_STREAM)?
 * Then changes go to the journal as structured entries, else as log
 * lines. */
int journal_is_connected(void);
/* An engine_audit_sink (engine.h): sends e to the journal; 1 when it
 * was taken, 0 when the journal refused it (then it is logged as a
 * line). Engine thread. */
int journal_audit_sink(const struct audit_entry *e);

#endif
