/*
 * histogram.c - see histogram.h.
 */
#include <stdatomic.h>

#include "histogram.h"

const double histogram_bounds[HISTOGRAM_BUCKETS] = HISTOGRAM_BOUNDS;

void
histogram_observe(struct histogram *h, int64_t us)
{
	double s;
	int i;

	if (us < 0)
		us = 0;
	s = (double)us / 1e6;
	for (i = 0; i < HISTOGRAM_BUCKETS && s > histogram_bounds[i]; i++)
		;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}
