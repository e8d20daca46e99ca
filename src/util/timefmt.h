/*
 * timefmt.h - clock and time formatting helpers.
 */
#ifndef CM_TIMEFMT_H
#define CM_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time, milliseconds since the Unix epoch. */
int64_t time_now_ms(void);

/* Milliseconds of CLOCK_MONOTONIC, which a change of the wall clock does
 * not move: the one clock of deadlines, timeouts and intervals. */
int64_t time_monotonic_ms(void);

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

/* The one duration parser, for every option, form field and query
 * parameter: digits and a unit, "500ms", "90s", "10m", "2h", "1d", or
 * digits alone for seconds ("90"). No sign, no space, no fraction.
 *
 * One rule for zero: "0" in any unit is a duration of 0 and is accepted
 * only where the caller says zero means something (min_ms == 0, e.g. "no
 * grace"); everywhere else min_ms is at least 1 and zero is refused like
 * any value below min_ms or above max_ms. Stores the milliseconds in
 * *out and returns 0, or returns -1 and leaves *out alone. */
int duration_parse(const char *s, int64_t min_ms, int64_t max_ms, int64_t *out);

#endif
