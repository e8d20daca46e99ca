/*
 * strbuf.c - a growable text buffer (see strbuf.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"

#include "xalloc.h"

void
strbuf_reserve(struct strbuf *b, size_t more, size_t first_cap)
{
	if (b->len + more + 1 <= b->cap)
		return;
	while (b->len + more + 1 > b->cap)
		b->cap = b->cap > 0 ? b->cap * 2 : first_cap;
	b->buf = xreallocarray(b->buf, b->cap, 1);
}

void
strbuf_appendf(char *buf, size_t size, const char *fmt, ...)
{
	size_t used = strnlen(buf, size);
	va_list ap;

	if (used + 1 >= size)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + used, size - used, fmt, ap);
	va_end(ap);
}

void
strbuf_addf(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	strbuf_reserve(b, (size_t)(n > 0 ? n : 0), 256);
	va_start(ap, fmt);
	vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)(n > 0 ? n : 0);
}
