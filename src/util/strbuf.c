/*
 * strbuf.c - a growable text buffer (see strbuf.h).
 */
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
