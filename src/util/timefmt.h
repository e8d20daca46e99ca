/*
 * timefmt.h - clock and time formatting helpers.
 */
#ifndef CM_TIMEFMT_H
#define CM_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time, milliseconds since the Unix epoch. */
int64_t time_now_ms(void);

/* Writes ms as RFC 3339 UTC with second precision ("2026-11-24T21:10:54Z")
 * into buf (at least 32 bytes). Returns buf. */
char *time_format_rfc3339(int64_t ms, char *buf, size_t size);

/* A span of time as people read it, in whole seconds (ms rounded up, so
 * a pending deadline never reads "0s"): "45s", "4m10s", "3h2m", "2d4h" -
 * the two largest units, the second left out when zero ("5m"); ms <= 0
 * gives "0s". The one human-readable duration: CLI tables and messages,
 * rollout's progress, the web page (whose ui.js mirrors it). Returns buf. */
char *duration_format(int64_t ms, char *buf, size_t size);

/* A duration in load balancer config syntax (HAProxy, nginx, Varnish):
 * "2s" when ms is whole seconds, else "500ms". Returns buf. */
char *duration_format_config(int64_t ms, char *buf, size_t size);

/* Parses a duration "90", "90s", "10m", "2h", "1d" into milliseconds.
 * Returns 0 on success, -1 when s is not a positive duration. */
int duration_parse_ms(const char *s, int64_t *out);

#endif
