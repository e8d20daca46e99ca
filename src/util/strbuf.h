/*
 * strbuf.h - a growable text buffer, for text built piece by piece (the
 * Prometheus exposition, PostgreSQL array literals).
 */
#ifndef CM_STRBUF_H
#define CM_STRBUF_H

#include <stddef.h>

/* {0} is an empty buffer; buf is malloc'd and the caller's to free. */
struct strbuf {
	char *buf;
	size_t len, cap;
};

/* Makes room for more bytes after len plus a NUL; the capacity starts at
 * first_cap and doubles. Aborts when out of memory, like xalloc. */
void strbuf_reserve(struct strbuf *b, size_t more, size_t first_cap);

/* Appends formatted text to b, growing it (b->buf stays NUL-terminated). */
void strbuf_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends a formatted piece to the NUL-terminated text in buf (size
 * bytes), cut when full: for fixed-size messages built piece by piece. */
void strbuf_appendf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
