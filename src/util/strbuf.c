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
