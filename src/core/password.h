/*
 * password.h - turning a password into what is stored (argon2id).
 *
 * The one place a password is hashed: the put-user command (command.c)
 * calls it on the engine's side thread, because argon2id takes a tenth of
 * a second on purpose and must not hold up queued writes. Checking a
 * password against a stored hash is the http layer's (auth_queue.c).
 */
#ifndef CM_PASSWORD_H
#define CM_PASSWORD_H

/* The libsodium crypto_pwhash_str (argon2id, interactive limits) string
 * of password, malloc'd (the caller frees it), or NULL when hashing
 * failed (out of memory). Slow: never call it on an event loop. */
char *password_hash(const char *password);

#endif
