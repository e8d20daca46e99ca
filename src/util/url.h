/*
 * url.h - the pieces of URLs and forms that more than one layer reads.
 */
#ifndef CM_URL_H
#define CM_URL_H

#include <stddef.h>

/* Decodes one application/x-www-form-urlencoded value, p[0..n): '+' is a
 * space, %XX a byte (curl_easy_unescape). Returns a malloc'd,
 * NUL-terminated copy, or NULL when the value encodes a NUL byte (a C
 * string cannot hold it, and a cut-short value must not pass for the
 * real one). Aborts when out of memory, like xalloc. */
char *url_form_decode(const char *p, size_t n);

#endif
