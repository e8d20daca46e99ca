/*
 * error.h - the one way functions in clustermgmt report failure.
 *
 * A function that can fail returns -1 (or NULL) and fills a struct error
 * with an HTTP-like status and one human sentence. Callers below the edge
 * never print: the HTTP handler or the CLI's main turns the error into a
 * response or a message.
 */
#ifndef CM_ERROR_H
#define CM_ERROR_H

#include <stdarg.h>

struct error {
	int status;     /* HTTP status that fits: 400, 404, 409, 500, ... */
	char what[512]; /* one sentence, no trailing newline */
	char entry[96]; /* the name of the offending entry, "" when none */
};

/* Fills err (which may be NULL) and returns -1 so callers can write
 * `return error_set(err, 400, "...")`. */
int error_set(struct error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like error_set, and also records the offending entry's name. */
int error_set_entry(struct error *err, int status, const char *entry, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Resets err to "no error". */
void error_clear(struct error *err);

#endif
