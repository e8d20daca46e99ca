/*
 * auth_basic.c - reading the credentials out of "Authorization: Basic".
 *
 * A pure function on its own, away from the request handling in auth.c,
 * so that it can be tested and fuzzed (tests/fuzz/fuzz_auth.c) alone.
 * libsodium does the base64; the rest is fitting the parts into the
 * caller's buffers and wiping the decoded password off the stack.
 */
#include <string.h>

#include <sodium.h>

#include "http.h"

int
auth_basic_decode(const char *b64, size_t len, char *user, size_t user_size, char *password,
                  size_t password_size)
{
	char buf[NODE_NAME_MAX + 1 + PASSWORD_MAX + 1 + 1];
	size_t n = 0, user_len;
	char *colon;
	int rc = -1;

	if (sodium_base642bin((unsigned char *)buf, sizeof(buf) - 1, b64, len, NULL, &n, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0)
		goto done;
	buf[n] = '\0';
	colon = strchr(buf, ':');
	if (colon == NULL || strlen(buf) != n)
		goto done;
	user_len = (size_t)(colon - buf);
	if (user_len >= user_size || n - user_len - 1 >= password_size)
		goto done;
	memcpy(user, buf, user_len);
	user[user_len] = '\0';
	memcpy(password, colon + 1, n - user_len); /* with the NUL */
	rc = 0;
done:
	sodium_memzero(buf, sizeof(buf)); /* also a half-decoded password */
	return rc;
}
