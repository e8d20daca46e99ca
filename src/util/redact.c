/*
 * redact.c - removing what an error message quotes (see redact.h).
 */
#include "redact.h"

#include <string.h>

static const char HIDDEN[] = "\"…\""; /* 5 bytes: the ellipsis is UTF-8 */

/* Appends LEN bytes of S if they fit with room for the NUL; -1 when
 * they do not (the output is cut there: nothing later is appended, so
 * the marker is never dropped while what follows it is kept). */
static int
append(char *out, size_t size, size_t *n, const char *s, size_t len)
{
	if (*n + len + 1 > size)
		return -1;
	memcpy(out + *n, s, len);
	*n += len;
	return 0;
}

void
redact_quoted(const char *in, char *out, size_t size)
{
	const char *first, *last;
	size_t i, n = 0, len;

	if (size == 0)
		return;
	len = in != NULL ? strlen(in) : 0;
	first = in != NULL ? strchr(in, '"') : NULL;
	last = in != NULL ? strrchr(in, '"') : NULL;
	for (i = 0; i < len; i++) {
		if (first != NULL && in + i == first) {
			if (append(out, size, &n, HIDDEN, sizeof(HIDDEN) - 1) != 0 || last == first)
				break; /* cut, or unmatched: the rest may be secret */
			i = (size_t)(last - in);
			continue;
		}
		if (append(out, size, &n, in[i] == '\n' ? " " : in + i, 1) != 0)
			break;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}
