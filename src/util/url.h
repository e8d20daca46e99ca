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

/* One key=value pair of an urlencoded text, as raw bytes (not decoded).
 * has_value is 0 for a pair without '=' (value then empty). */
struct url_form_pair {
	const char *key, *value;
	size_t key_len, value_len;
	int has_value;
};

/* The one walker of urlencoded texts (form bodies, query strings): fills
 * pair with the pair at *pos (which starts at the text's first byte) and
 * moves *pos past it and its '&'. Returns 1, or 0 when *pos has reached
 * end (or is NULL). Empty pairs ("a=1&&b=2") are pairs with an empty
 * key. */
int url_form_next(const char **pos, const char *end, struct url_form_pair *pair);

/* Whether pair's key is the NUL-terminated name. */
int url_form_key_is(const struct url_form_pair *pair, const char *name);

/* Finds the first field name in an urlencoded text[0..len) ("a=1&b=x+y",
 * a query string or a form body) and decodes its value (url_form_decode)
 * into a malloc'd *out. Returns 1 when found, 0 when absent (*out =
 * NULL), -1 when the value encodes a NUL (*out = NULL). */
int url_form_value(const char *text, size_t len, const char *name, char **out);

/* Splits "host:port" or "[v6]:port" at the port's ':' into host (without
 * the brackets, NUL-terminated, at most host_size - 1 bytes) and *port;
 * *is_bracketed says whether the host was in brackets. The host is not
 * checked otherwise (it may be empty). Returns 0, or -1 when there is no
 * ':', the port is not 1 to 5 digits of at most 65535 (0 passes: whether
 * it means anything is the caller's call), a '[' is not closed right
 * before the ':', or the host does not fit.
 *
 * The one host:port splitter of the core, the generators and the CLI;
 * the daemon's listeners use h2o's h2o_url_parse_hostport (daemon.c),
 * which these layers do not link. */
int hostport_split(const char *s, char *host, size_t host_size, int *port, int *is_bracketed);

#endif
