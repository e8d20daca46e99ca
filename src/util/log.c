/*
 * log.c - logfmt or JSON lines on stderr or a file; see log.h.
 *
 * A line is built in a fixed buffer and written with one write(2) so lines
 * from several threads never interleave. Overlong lines are cut, never
 * split. The log file's descriptor is an atomic int: log_reopen opens the
 * new file and swaps it in, so a thread writing at that moment writes to
 * one of the two. The old descriptor is closed only at the next reopen:
 * closing it at once could race a write(2) that had just loaded it, and
 * the line would then be lost, or land wherever a descriptor opened
 * meanwhile got the same number. A writer that loaded a descriptor two
 * SIGHUPs ago is the one case left, which a line's few microseconds
 * between load and write do not reach.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "timefmt.h"

static enum log_level min_level = LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

static enum log_format format = LOG_FORMAT_LOGFMT;
static _Atomic int log_fd = STDERR_FILENO;
static char *log_path;      /* NULL: stderr */
static int retired_fd = -1; /* the file before the last reopen (log_reopen) */

struct line {
	char buf[4096];
	size_t len;
	int is_full; /* something did not fit */
};

/* Appends what fits, always keeping room for the final newline and a
 * JSON object's closing brace. */
static void
line_put(struct line *l, const char *s, size_t n)
{
	size_t room = l->len < sizeof(l->buf) - 2 ? sizeof(l->buf) - 2 - l->len : 0;

	if (n > room) {
		n = room;
		l->is_full = 1;
	}
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

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when the bytes
 * there are not one (overlong forms and surrogates included). */
static size_t
utf8_sequence(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] > 0x9f))
			return 0;
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] > 0x8f))
			return 0;
		return 4;
	}
	return 0;
}

/* A JSON string, quotes included. Control characters are escaped and
 * invalid UTF-8 becomes U+FFFD, so the line is always valid JSON text. */
static void
line_put_json(struct line *l, const char *v)
{
	const unsigned char *p = (const unsigned char *)(v != NULL ? v : "");
	char esc[8];
	size_t n;

	line_put(l, "\"", 1);
	while (*p != '\0') {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			line_put(l, esc, 2);
			p++;
		} else if (*p == '\n') {
			line_put(l, "\\n", 2);
			p++;
		} else if (*p < ' ' || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			line_put(l, esc, 6);
			p++;
		} else if ((n = utf8_sequence(p)) == 0) {
			line_put(l, "\\ufffd", 6);
			p++;
		} else {
			line_put(l, (const char *)p, n);
			p += n;
		}
	}
	line_put(l, "\"", 1);
}

static void
line_put_pair(struct line *l, int is_first, const char *key, const char *value)
{
	if (format == LOG_FORMAT_JSON) {
		size_t before = l->len;
		if (!is_first)
			line_put(l, ",", 1);
		line_put_json(l, key);
		line_put(l, ":", 1);
		line_put_json(l, value);
		if (l->is_full) /* an object with a cut string is no JSON: drop the pair */
			l->len = before;
		return;
	}
	if (!is_first)
		line_put(l, " ", 1);
	line_put(l, key, strlen(key));
	line_put(l, "=", 1);
	if (is_first) /* ts: never needs quotes */
		line_put(l, value, strlen(value));
	else
		line_put_value(l, value);
}

/* The line's beginning (ts, level, msg) into l. */
static void
line_begin(struct line *l, enum log_level level, const char *msg)
{
	char ts[32];

	time_format_rfc3339(time_now_ms(), ts, sizeof(ts));
	if (format == LOG_FORMAT_JSON)
		line_put(l, "{", 1);
	line_put_pair(l, 1, "ts", ts);
	line_put_pair(l, 0, "level", level_names[level]);
	line_put_pair(l, 0, "msg", msg);
}

/* Ends l and writes it. */
static void
line_write(struct line *l)
{
	if (format == LOG_FORMAT_JSON)
		l->buf[l->len++] = '}'; /* line_put kept room for it */
	l->buf[l->len++] = '\n';
	(void)!write(atomic_load(&log_fd), l->buf, l->len);
}

void
log_kv(enum log_level level, const char *msg, ...)
{
	struct line l = {.len = 0};
	const char *key;
	va_list ap;

	if (level < min_level)
		return;
	line_begin(&l, level, msg);
	va_start(ap, msg);
	while ((key = va_arg(ap, const char *)) != NULL)
		line_put_pair(&l, 0, key, va_arg(ap, const char *));
	va_end(ap);
	line_write(&l);
}

void
log_kvv(enum log_level level, const char *msg, const char *const *pairs, size_t n_pairs)
{
	struct line l = {.len = 0};
	size_t i;

	if (level < min_level)
		return;
	line_begin(&l, level, msg);
	for (i = 0; i < n_pairs; i++)
		line_put_pair(&l, 0, pairs[2 * i], pairs[2 * i + 1]);
	line_write(&l);
}

int
log_format_from_string(const char *s, enum log_format *out)
{
	if (strcmp(s, "logfmt") == 0)
		*out = LOG_FORMAT_LOGFMT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -1;
	return 0;
}

int
log_level_from_string(const char *s, enum log_level *out)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -1;
}

void
log_set_level(enum log_level level)
{
	min_level = level;
}

void
log_set_format(enum log_format f)
{
	format = f;
}

static int
open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int
log_open_file(const char *path)
{
	int fd = open_log(path);

	if (fd == -1)
		return -1;
	free(log_path);
	if ((log_path = strdup(path)) == NULL) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	fd = atomic_exchange(&log_fd, fd);
	if (retired_fd != -1)
		close(retired_fd);
	retired_fd = fd != STDERR_FILENO ? fd : -1;
	return 0;
}

int
log_reopen(void)
{
	int fd;

	if (log_path == NULL)
		return 0;
	if ((fd = open_log(log_path)) == -1)
		return -1;
	fd = atomic_exchange(&log_fd, fd);
	if (fd != STDERR_FILENO)
		close(fd);
	return 0;
}
