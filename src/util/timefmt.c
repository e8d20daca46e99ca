/*
 * timefmt.c - clock and time formatting; see timefmt.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "timefmt.h"

int64_t
time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
time_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
time_format_rfc3339(int64_t ms, char *buf, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

char *
duration_format(int64_t ms, char *buf, size_t size)
{
	long long s = ms > 0 ? (ms + 999) / 1000 : 0, big, small;
	const char *units;

	if (s < 60) {
		snprintf(buf, size, "%llds", s);
		return buf;
	}
	if (s < 3600)
		big = s / 60, small = s % 60, units = "ms";
	else if (s < 86400)
		big = s / 3600, small = s % 3600 / 60, units = "hm";
	else
		big = s / 86400, small = s % 86400 / 3600, units = "dh";
	if (small == 0)
		snprintf(buf, size, "%lld%c", big, units[0]);
	else
		snprintf(buf, size, "%lld%c%lld%c", big, units[0], small, units[1]);
	return buf;
}

char *
duration_format_config(int64_t ms, char *buf, size_t size)
{
	if (ms % 1000 == 0)
		snprintf(buf, size, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, size, "%lldms", (long long)ms);
	return buf;
}

int
duration_parse(const char *s, int64_t min_ms, int64_t max_ms, int64_t *out)
{
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = {{"", 1000},       {"ms", 1},          {"s", 1000},
	             {"m", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000}};
	const char *p = s;
	int64_t n = 0;
	size_t i;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (INT64_MAX / 86400000 - 9) / 10)
			return -1; /* no duration of ours is that long */
		n = n * 10 + (*p - '0');
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(p, units[i].suffix) == 0) {
			n *= units[i].ms;
			if (n < min_ms || n > max_ms)
				return -1;
			*out = n;
			return 0;
		}
	return -1;
}
