/*
 * log.c - logfmt lines on stderr; see log.h.
 *
 * A line is built in a fixed buffer and written with one write(2) so lines
 * from several threads never interleave. Overlong lines are cut, never
 * split.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "timefmt.h"

static const enum log_level min_level = LOG_INFO; /* no option changes it yet */

static const char *level_names[] = {"debug", "info", "warn", "error"};

struct line {
	char buf[4096];
	size_t len;
};

/* Appends what fits, always keeping room for the final newline. */
static void
line_put(struct line *l, const char *s, size_t n)
{
	size_t room = l->len < sizeof(l->buf) - 1 ? sizeof(l->buf) - 1 - l->len : 0;

	if (n > room)
		n = room;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static int
needs_quotes(const char *v)
{
	if (*v == '\0')
		return 1;
	for (; *v != '\0'; v++)
		if ((unsigned char)*v <= ' ' || *v == '"' || *v == '=' || *v == '\\' ||
		    (unsigned char)*v == 0x7f)
			return 1;
	return 0;
}

static void
line_put_value(struct line *l, const char *v)
{
	char esc[8];

	if (v == NULL)
		v = "";
	if (!needs_quotes(v)) {
		line_put(l, v, strlen(v));
		return;
	}
	line_put(l, "\"", 1);
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			line_put(l, esc, 2);
		} else if (c == '\n') {
			line_put(l, "\\n", 2);
		} else if (c < ' ' || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\x%02x", c);
			line_put(l, esc, 4);
		} else {
			line_put(l, (const char *)&c, 1);
		}
	}
	line_put(l, "\"", 1);
}

void
log_kv(enum log_level level, const char *msg, ...)
{
	struct line l = {.len = 0};
	char ts[32];
	const char *key;
	va_list ap;

	if (level < min_level)
		return;
	time_format_rfc3339(time_now_ms(), ts, sizeof(ts));
	line_put(&l, "ts=", 3);
	line_put(&l, ts, strlen(ts));
	line_put(&l, " level=", 7);
	line_put(&l, level_names[level], strlen(level_names[level]));
	line_put(&l, " msg=", 5);
	line_put_value(&l, msg);
	va_start(ap, msg);
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);
		line_put(&l, " ", 1);
		line_put(&l, key, strlen(key));
		line_put(&l, "=", 1);
		line_put_value(&l, value);
	}
	va_end(ap);
	l.buf[l.len++] = '\n';
	(void)!write(STDERR_FILENO, l.buf, l.len);
}
