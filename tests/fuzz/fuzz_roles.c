/*
 * fuzz_roles.c - the roles file's parser (roles_check_text in
 * src/http/roles.c) on arbitrary text.
 *
 * Properties, besides "no crash, no leak, no UB": a refusal says why in a
 * sentence naming a line or the whole file; whatever is accepted is
 * accepted again when parsed a second time (the parser keeps no state).
 */
#include <stdlib.h>
#include <string.h>

#include "../../src/http/roles.h"
#include "fuzz_util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact size, unterminated: a read past the text is a bug. */
	char *text = malloc(size ? size : 1);
	struct error err = {0};
	int rc;

	if (text == NULL)
		abort();
	memcpy(text, data, size);
	rc = roles_check_text(text, size, &err);
	if (rc != 0)
		FUZZ_ASSERT(err.status == 400 && err.what[0] != '\0');
	else
		FUZZ_ASSERT(roles_check_text(text, size, &err) == 0);
	free(text);
	return 0;
}
