/*
 * redact.h - removing what an error message quotes from a secret.
 *
 * libpq's parse errors quote a piece of the connection string they could
 * not read, and that piece may be a password. Its quotes are not escaped,
 * so a '"' inside a password cannot be told from the closing quote: the
 * safe reading is that everything from the first '"' to the last one
 * may be secret.
 */
#ifndef CM_REDACT_H
#define CM_REDACT_H

#include <stddef.h>

/* Copies IN into OUT (SIZE bytes, SIZE >= 1), replacing everything from
 * the first '"' to the last '"' by "…" in quotes (an unmatched '"' hides
 * the rest of IN), newlines by spaces, and dropping trailing spaces.
 * Always NUL-terminates within SIZE; cuts rather than overflows. IN may
 * be NULL (OUT is then empty). */
void redact_quoted(const char *in, char *out, size_t size);

#endif
