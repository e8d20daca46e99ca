/*
 * limits.c - the checks that go with limits.h's bounds.
 */
#include <string.h>

#include "../util/utf8.h"
#include "limits.h"

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
