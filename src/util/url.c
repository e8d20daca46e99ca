/*
 * url.c - URL and form pieces; see url.h.
 */
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "url.h"
#include "xalloc.h"

char *
url_form_decode(const char *p, size_t n)
{
	char *plus = xstrndup(p, n), *decoded, *out = NULL;
	int len = 0;
	size_t i;

	for (i = 0; i < n; i++)
		if (plus[i] == '+')
			plus[i] = ' ';
	/* The handle argument is unused since curl 7.82; NULL is returned
	 * only when out of memory. */
	decoded = curl_easy_unescape(NULL, plus, (int)n, &len);
	free(plus);
	if (decoded == NULL)
		abort();
	if (memchr(decoded, '\0', (size_t)len) == NULL)
		out = xstrndup(decoded, (size_t)len);
	curl_free(decoded);
	return out;
}

int
hostport_split(const char *s, char *host, size_t host_size, int *port, int *is_bracketed)
{
	const char *start = s, *end, *colon, *digits;
	size_t n;
	long value = 0;

	*is_bracketed = s[0] == '[';
	if (*is_bracketed) {
		start = s + 1;
		if ((end = strchr(start, ']')) == NULL || end[1] != ':')
			return -1;
		colon = end + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		end = colon;
	}
	digits = colon + 1;
	n = strlen(digits);
	if (n == 0 || n > 5 || strspn(digits, "0123456789") != n)
		return -1;
	for (; *digits != '\0'; digits++)
		value = value * 10 + (*digits - '0');
	if (value > 65535 || (size_t)(end - start) >= host_size)
		return -1;
	memcpy(host, start, (size_t)(end - start));
	host[end - start] = '\0';
	*port = (int)value;
	return 0;
}

int
url_form_next(const char **pos, const char *end, struct url_form_pair *pair)
{
	const char *p = *pos, *amp, *stop, *eq;

	if (p == NULL || p >= end)
		return 0;
	amp = memchr(p, '&', (size_t)(end - p));
	stop = amp != NULL ? amp : end;
	eq = memchr(p, '=', (size_t)(stop - p));
	pair->key = p;
	pair->key_len = (size_t)((eq != NULL ? eq : stop) - p);
	pair->has_value = eq != NULL;
	pair->value = eq != NULL ? eq + 1 : stop;
	pair->value_len = (size_t)(stop - pair->value);
	*pos = amp != NULL ? amp + 1 : end;
	return 1;
}

int
url_form_key_is(const struct url_form_pair *pair, const char *name)
{
	size_t len = strlen(name);

	return pair->key_len == len && memcmp(pair->key, name, len) == 0;
}

int
url_form_value(const char *text, size_t len, const char *name, char **out)
{
	const char *pos = text;
	struct url_form_pair pair;

	*out = NULL;
	while (url_form_next(&pos, text + len, &pair))
		if (url_form_key_is(&pair, name)) {
			*out = url_form_decode(pair.value, pair.value_len);
			return *out != NULL ? 1 : -1;
		}
	return 0;
}
