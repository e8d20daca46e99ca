/*
 * limits.c - the checks that go with limits.h's bounds.
 */
#include <string.h>

#include "limits.h"

size_t
utf8_length(const char *s, size_t bytes)
{
	size_t i, n = 0;

	for (i = 0; i < bytes; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			n++;
	return n;
}

int
password_check_length(const char *password, struct error *err)
{
	size_t len = strnlen(password, PASSWORD_MAX + 1);

	if (len < PASSWORD_MIN || len > PASSWORD_MAX)
		return error_set(err, 400, "password must be %d to %d bytes", PASSWORD_MIN,
		                 PASSWORD_MAX);
	return 0;
}

int
text_check_length(const char *what, const char *text, size_t max, struct error *err)
{
	if (utf8_length(text, strlen(text)) > max)
		return error_set(err, 400, "%s must be at most %zu characters", what, max);
	return 0;
}
