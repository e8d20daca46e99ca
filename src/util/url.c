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
