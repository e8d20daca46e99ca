/*
 * hash.h - FNV-1a, the one non-cryptographic hash of the daemon's own
 * tables (observed probes' stripes, password-check failures and
 * addresses). Not for anything an attacker may choose to collide on
 * purpose where that matters: those tables are bounded and evict.
 */
#ifndef CM_HASH_H
#define CM_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A_START 14695981039346656037ULL /* the 64-bit offset basis */

/* h extended with the len bytes at data; start with FNV1A_START. */
uint64_t fnv1a(uint64_t h, const void *data, size_t len);

/* h extended with the bytes of the string s (not its NUL). */
uint64_t fnv1a_str(uint64_t h, const char *s);

#endif
