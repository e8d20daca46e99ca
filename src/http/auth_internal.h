/*
 * auth_internal.h - what auth.c (who is asking) needs of auth_queue.c
 * (the password check and its state). Only those two include it.
 */
#ifndef CM_AUTH_INTERNAL_H
#define CM_AUTH_INTERNAL_H

#include "auth.h"

/* Counts a failure of address as a whole (credentials wrong without a
 * password check: a malformed header, an unknown token). Any thread. */
void auth_queue_count_failure(struct auth_state *a, const char *address);

/* The session source set with auth_set_session_source, or NULL. */
auth_session_fn auth_session_source(const struct auth_state *a);

#endif
