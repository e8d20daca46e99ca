/*
 * output.c - tables, JSON and relative times for the CLI; see output.h.
 *
 * Tables are built in memory and printed at the end, because a column's
 * width is only known once every row is in. Widths count UTF-8 code
 * points, not bytes, so names and reasons in other scripts still line up
 * (wide CJK characters excepted).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "output.h"
#include "util/timefmt.h"
#include "util/utf8.h"
#include "util/xalloc.h"

struct table {
	size_t ncols;
	size_t nrows; /* including the header */
	char **cells; /* nrows * ncols, row-major */
};

/* A copy of s with control characters replaced. */
static char *
cell_copy(const char *s)
{
	char *copy = xstrdup(s != NULL ? s : "-");
	char *p;

	for (p = copy; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return copy;
}

static size_t
display_width(const char *s)
{
	return utf8_length(s, strlen(s));
}

struct table *
table_new(size_t ncols, const char *const *header)
{
	struct table *t = xcalloc(1, sizeof(*t));

	t->ncols = ncols;
	table_add_row(t, header);
	return t;
}

void
table_add_row(struct table *t, const char *const *cells)
{
	char **row;
	size_t i;

	t->cells = xreallocarray(t->cells, (t->nrows + 1) * t->ncols, sizeof(char *));
	row = t->cells + t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++)
		row[i] = cell_copy(cells[i]);
	t->nrows++;
}

void
table_print(const struct table *t, FILE *out)
{
	size_t *width = xcalloc(t->ncols, sizeof(size_t));
	size_t r, c, w;
	const char *cell;

	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < t->ncols; c++)
			if ((w = display_width(t->cells[r * t->ncols + c])) > width[c])
				width[c] = w;
	for (r = 0; r < t->nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			cell = t->cells[r * t->ncols + c];
			fputs(cell, out);
			if (c + 1 == t->ncols)
				break;
			for (w = display_width(cell); w < width[c] + 2; w++)
				fputc(' ', out);
		}
		fputc('\n', out);
	}
	free(width);
}

void
table_free(struct table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void
output_json(const char *body, FILE *out)
{
	size_t len = strlen(body);

	fputs(body, out);
	if (len == 0 || body[len - 1] != '\n')
		fputc('\n', out);
}

char *
output_relative_time(const char *rfc3339, int64_t now_ms, char *buf, size_t size)
{
	struct tm tm;
	const char *end;
	char span[32];
	int64_t secs;

	if (rfc3339 == NULL) {
		snprintf(buf, size, "-");
		return buf;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL || (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0)) {
		snprintf(buf, size, "%s", rfc3339);
		return buf;
	}
	secs = (int64_t)timegm(&tm) - now_ms / 1000;
	if (secs == 0) {
		snprintf(buf, size, "now");
	} else if (secs < 0) {
		duration_format(-secs * 1000, span, sizeof(span));
		snprintf(buf, size, "%s ago", span);
	} else {
		duration_format(secs * 1000, span, sizeof(span));
		snprintf(buf, size, "in %s", span);
	}
	return buf;
}

const char *
output_field(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s != NULL && *s != '\0' ? s : NULL;
}
