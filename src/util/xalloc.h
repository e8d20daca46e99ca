/*
 * xalloc.h - allocation that cannot fail.
 *
 * clustermgmt treats running out of memory as fatal, as Redis does: a
 * daemon that cannot allocate a few bytes cannot answer anything
 * correctly, and checking every small allocation would bury the real error
 * paths. These wrappers abort() on failure (no exit(), no printing), so
 * callers never see NULL. It is the one policy, in the daemon and the CLI
 * alike (a CLI out of memory must not pass for "server unreachable"):
 * serve_main and cli_main hand jansson xmalloc too; where a library
 * reports only "out of memory" by NULL (curl_easy_init, curl_easy_escape,
 * asprintf) the caller aborts the same way.
 */
#ifndef CM_XALLOC_H
#define CM_XALLOC_H

#include <stddef.h>

/* Like malloc/calloc/realloc, but never return NULL. xcalloc and
 * xreallocarray also abort when n * size overflows. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);

/* A copy of s; NULL gives "" (so model strings are never NULL). */
char *xstrdup(const char *s);
/* A NUL-terminated copy of the first len bytes of s. */
char *xstrndup(const char *s, size_t len);

#endif
