/*
 * hash.c - FNV-1a (see hash.h).
 */
#include "hash.h"

#include <string.h>

#define FNV1A_PRIME 1099511628211ULL

uint64_t
fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ p[i]) * FNV1A_PRIME;
	return h;
}

uint64_t
fnv1a_str(uint64_t h, const char *s)
{
	return fnv1a(h, s, strlen(s));
}
