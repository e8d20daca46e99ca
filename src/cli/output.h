/*
 * output.h - what the CLI prints on stdout: aligned tables for people,
 * the server's JSON document for scripts (--json), and times in words.
 */
#ifndef CM_OUTPUT_H
#define CM_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* A table of text cells, printed with every column padded to its widest
 * cell and two spaces between columns. Cells are copied; control
 * characters in them are shown as '?' so a row is always one line. */
struct table;

/* Returns a table with the given header (ncols cells). Free with
 * table_free. */
struct table *table_new(size_t ncols, const char *const *header);

/* Appends a row of ncols cells; a NULL cell is shown as "-". */
void table_add_row(struct table *t, const char *const *cells);

void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);

/* Prints body (the server's JSON answer, as received) on out, ending
 * with a newline. */
void output_json(const char *body, FILE *out);

/* The time between now_ms and an RFC 3339 time, in words, into buf:
 * "4m10s ago" for a past time, "in 9m" for a future one, "now" within a
 * second; "-" for NULL, the text itself when it does not parse. The span
 * is util/timefmt.h's duration_format. Returns buf. */
char *output_relative_time(const char *rfc3339, int64_t now_ms, char *buf, size_t size);

/* The string value of key in obj, or NULL when absent, null, empty or not
 * a string - the cell a table shows as "-". */
const char *output_field(const json_t *obj, const char *key);

#endif
