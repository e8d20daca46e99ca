/*
 * password.c - argon2id through libsodium; see password.h.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../util/xalloc.h"
#include "password.h"

char *
password_hash(const char *password)
{
	char *out = xmalloc(crypto_pwhash_STRBYTES);

	if (sodium_init() < 0)
		goto bad;
	if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		goto bad;
	return out;
bad:
	free(out);
	return NULL;
}
