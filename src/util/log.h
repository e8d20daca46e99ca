/*
 * log.h - logfmt lines on stderr.
 *
 * Every line is `ts=... level=... msg="..." key=value ...`. Values are
 * quoted and escaped when they contain spaces, quotes, '=' or control
 * characters, so a line is always one line and machine-readable. Safe to
 * call from any thread (one write(2) per line).
 */
#ifndef CM_LOG_H
#define CM_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Logs msg with key/value pairs: a NULL-terminated list of
 * const char *key, const char *value. A NULL value is logged as "". */
void log_kv(enum log_level level, const char *msg, ...);

#endif
