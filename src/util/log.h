/*
 * log.h - one line per event on stderr (or a log file), logfmt by default.
 *
 * A logfmt line is `ts=... level=... msg="..." key=value ...`. Values are
 * quoted and escaped when they contain spaces, quotes, '=' or control
 * characters, so a line is always one line and machine-readable. The JSON
 * format (for log shippers) writes the same keys as one object per line,
 * `{"ts":"...","level":"...","msg":"...","key":"value"}`, every value a
 * string; bytes that are not valid UTF-8 become U+FFFD. Safe to call from
 * any thread (one write(2) per line).
 */
#ifndef CM_LOG_H
#define CM_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_format { LOG_FORMAT_LOGFMT = 0, LOG_FORMAT_JSON = 1 };

/* "logfmt" or "json" into *out; returns 0, or -1 for another name. */
int log_format_from_string(const char *s, enum log_format *out);
/* "debug", "info", "warn" or "error" into *out; returns 0, or -1 for
 * another name. */
int log_level_from_string(const char *s, enum log_level *out);
/* Lines below level are not written (default LOG_INFO). Call it before
 * starting threads. */
void log_set_level(enum log_level level);

/* Chooses the format of every line from now on (default logfmt). Call it
 * before starting threads. */
void log_set_format(enum log_format f);

/* Logs to path (appended to, created 0640) instead of stderr. Returns 0,
 * or -1 with errno set (stderr stays in use). Call it before starting
 * threads. */
int log_open_file(const char *path);
/* Re-opens the log file (after logrotate moved it; SIGHUP). Lines logged
 * meanwhile go to the old or the new file, never elsewhere: the old file
 * is closed at the next reopen (see log.c). Call it from one thread.
 * Returns 0 (also when logging to stderr), or -1 with errno set (the old
 * file stays in use). */
int log_reopen(void);

/* Logs msg with key/value pairs: a NULL-terminated list of
 * const char *key, const char *value. A NULL value is logged as "". */
void log_kv(enum log_level level, const char *msg, ...) __attribute__((sentinel));
/* The same with the pairs in an array: pairs[2i] the key, pairs[2i+1]
 * its value (NULL logged as ""), n_pairs pairs. */
void log_kvv(enum log_level level, const char *msg, const char *const *pairs, size_t n_pairs);

#endif
