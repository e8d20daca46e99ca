/*
 * fuzz_auth.c - the decoder of "Authorization: Basic ..." credentials
 * (auth_basic_decode in src/http/auth_basic.c) on arbitrary header text.
 *
 * The input is what follows "Basic ". Properties, besides "no crash, no
 * leak, no UB": what is accepted fits the buffers of the caller, the user
 * name is at most 64 bytes without a ':', and user ":" password encodes
 * back to the input's decoded bytes.
 */
#include <sodium.h>

#include "../../src/http/http.h"
#include "fuzz_util.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char user[NODE_NAME_MAX + 1], password[1025], joined[sizeof(user) + sizeof(password)];
	unsigned char decoded[2048];
	size_t decoded_len = 0;
	/* Exact size, unterminated: a read past the header is a bug. */
	char *b64 = malloc(size ? size : 1);

	if (b64 == NULL)
		abort();
	memcpy(b64, data, size);
	memset(user, 'U', sizeof(user));
	memset(password, 'P', sizeof(password));
	if (auth_basic_decode(b64, size, user, sizeof(user), password, sizeof(password)) == 0) {
		FUZZ_ASSERT(memchr(user, '\0', sizeof(user)) != NULL);
		FUZZ_ASSERT(memchr(password, '\0', sizeof(password)) != NULL);
		FUZZ_ASSERT(strlen(user) <= NODE_NAME_MAX && strchr(user, ':') == NULL);
		snprintf(joined, sizeof(joined), "%s:%s", user, password);
		FUZZ_ASSERT(sodium_base642bin(decoded, sizeof(decoded), b64, size, NULL,
		                              &decoded_len, NULL,
		                              sodium_base64_VARIANT_ORIGINAL) == 0);
		FUZZ_ASSERT(decoded_len == strlen(joined) &&
		            memcmp(decoded, joined, decoded_len) == 0);
	}
	free(b64);
	return 0;
}
