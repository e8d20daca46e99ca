/*
 * fuzz_redact.c - redact_quoted, which cleans libpq's parse errors of
 * what they quote from a connection string (a password, perhaps).
 *
 * Byte 0 of the input picks the buffer size (1-64), the rest is the
 * message (inputs with a NUL inside are skipped). Properties, besides
 * "no crash, no UB": the output ends within the buffer (a canary after
 * it stays), and no byte that stood between the first and the last '"'
 * of the message, nor after a lone '"', is copied: the output holds at
 * most one '"'-bounded marker and otherwise only bytes from outside the
 * quotes.
 */
#include "fuzz_util.h"

#include "../../src/util/redact.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[65 + 1];
	char *msg;
	const char *first, *last;
	size_t cap, prefix, n;

	if (size < 1)
		return 0;
	cap = 1 + data[0] % 64;
	msg = fuzz_strndup(data + 1, size - 1);
	if (strlen(msg) != size - 1) { /* a NUL inside: not a message */
		free(msg);
		return 0;
	}
	memset(out, 'Z', sizeof(out));
	redact_quoted(msg, out, cap);
	FUZZ_ASSERT(out[cap] == 'Z');
	n = strlen(out);
	FUZZ_ASSERT(n < cap);
	first = strchr(msg, '"');
	last = strrchr(msg, '"');
	prefix = first != NULL ? (size_t)(first - msg) : strlen(msg);
	/* Before the first quote: the message itself (newlines as spaces). */
	for (size_t i = 0; i < n && i < prefix; i++)
		FUZZ_ASSERT(out[i] == (msg[i] == '\n' ? ' ' : msg[i]));
	/* After it: the marker, then only what follows the last quote. */
	if (first != NULL && n > prefix) {
		const char *tail = last == first ? "" : last + 1;
		FUZZ_ASSERT(n >= prefix + 5 && memcmp(out + prefix, "\"…\"", 5) == 0);
		for (size_t i = prefix + 5; i < n; i++)
			FUZZ_ASSERT(out[i] ==
			            (tail[i - prefix - 5] == '\n' ? ' ' : tail[i - prefix - 5]));
	}
	free(msg);
	return 0;
}
