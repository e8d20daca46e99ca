/*
 * error.c - filling struct error; see error.h.
 */
#include <stdio.h>
#include <string.h>

#include "error.h"

int
error_set(struct error *err, int status, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->status = status;
	err->entry[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->what, sizeof(err->what), fmt, ap);
	va_end(ap);
	return -1;
}

int
error_set_entry(struct error *err, int status, const char *entry, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->status = status;
	snprintf(err->entry, sizeof(err->entry), "%s", entry);
	va_start(ap, fmt);
	vsnprintf(err->what, sizeof(err->what), fmt, ap);
	va_end(ap);
	return -1;
}

void
error_clear(struct error *err)
{
	if (err == NULL)
		return;
	err->status = 0;
	err->what[0] = '\0';
	err->entry[0] = '\0';
}
