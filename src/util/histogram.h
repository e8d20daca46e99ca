/*
 * histogram.h - a fixed-bucket histogram of durations that one thread
 * records and any thread reads, for Prometheus histograms.
 *
 * Relaxed atomics and no lock: a reader may see an observation's bucket
 * before its sum, which Prometheus tolerates (the scrape after shows
 * both). The bounds suit a durable commit, which takes a few milliseconds
 * on a disk and up to seconds on a bad day. Zero-initialise it.
 */
#ifndef CM_HISTOGRAM_H
#define CM_HISTOGRAM_H

#include <stdint.h>

/* Upper bounds (seconds) of the buckets; +Inf is implied. */
#define HISTOGRAM_BOUNDS                                                                           \
	{                                                                                          \
		0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0             \
	}
#define HISTOGRAM_BUCKETS 12

struct histogram {
	_Atomic uint64_t buckets[HISTOGRAM_BUCKETS + 1]; /* not cumulative; last = +Inf */
	_Atomic uint64_t sum_us;                         /* the count is the sum of the buckets */
};

/* The bucket bounds, HISTOGRAM_BUCKETS of them, in seconds. */
extern const double histogram_bounds[HISTOGRAM_BUCKETS];

/* Records one duration of us microseconds (negative counts as 0). */
void histogram_observe(struct histogram *h, int64_t us);

#endif
