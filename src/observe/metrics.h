/*
 * metrics.h - the daemon's state in Prometheus' text exposition format
 * (version 0.0.4), for GET /metrics.
 *
 * The renderer is a pure function of what it is given: a model snapshot
 * (node status, TTLs, cluster versions), the observe table (probers,
 * application checks, answers counted per cluster), the daemon's own
 * figures (struct metrics_stats, filled by the caller) and the process'
 * (struct metrics_process, read from /proc). It allocates one buffer and
 * takes no lock but observe's stripe locks, one node at a time, so it can
 * run on any thread that holds a snapshot.
 *
 * Names follow Prometheus' naming guide: prefix clustermgmt_, base units
 * (seconds, bytes), _total for counters, _timestamp_seconds for points in
 * time. Cardinality is bounded by the model: per node a fixed handful of
 * series, per cluster one per answer; nothing is labelled by prober.
 * The series and their meaning are listed in docs/METRICS.md.
 */
#ifndef CM_METRICS_H
#define CM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "../core/model.h"
#include "observe.h"

/* The Content-Type of what metrics_render returns. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Upper bounds (seconds) of the write latency histogram's buckets; +Inf
 * is implied. A durable SQLite commit takes a few milliseconds. */
#define METRICS_LATENCY_BOUNDS                                                                     \
	{                                                                                          \
		0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0             \
	}
#define METRICS_LATENCY_BUCKETS 12

/* A histogram of durations that one thread records and any thread reads
 * (relaxed atomics: a scrape may see a write's bucket before its sum,
 * which Prometheus tolerates). Zero-initialise it. */
struct metrics_histogram {
	_Atomic uint64_t buckets[METRICS_LATENCY_BUCKETS + 1]; /* not cumulative; last = +Inf */
	_Atomic uint64_t sum_us; /* the count is the sum of the buckets */
};

/* Records one duration of us microseconds (negative counts as 0). */
void metrics_histogram_observe(struct metrics_histogram *h, int64_t us);

/* The daemon's own figures, as known to the caller at render time. */
struct metrics_stats {
	int store_up;                    /* the store answers (last commit or check worked) */
	uint64_t long_polls_held;        /* event long polls waiting now */
	uint64_t password_checks_queued; /* argon2id checks waiting for the side thread */
	uint64_t writes_total;           /* write jobs committed since start */
	uint64_t writes_failed_total;    /* write jobs refused or failed */
	const struct metrics_histogram *write_latency; /* NULL: not rendered */
};

/* What the kernel says about this process (the names of Prometheus'
 * client libraries' process collector). */
struct metrics_process {
	double cpu_seconds;        /* user + system */
	uint64_t resident_bytes;   /* RSS */
	uint64_t virtual_bytes;    /* VSZ */
	uint64_t open_fds;         /* entries of /proc/self/fd */
	uint64_t max_fds;          /* soft RLIMIT_NOFILE */
	double start_time_seconds; /* since the epoch */
	uint64_t threads;
};

/* Reads /proc/self/{stat,fd} and /proc/stat into *out. Returns 0, or -1
 * with *out zeroed where a file could not be read (the figures it did
 * read are kept). */
int metrics_process_read(struct metrics_process *out);

/* Renders every series. m: the snapshot (may be NULL: no cluster or node
 * series); o: may be NULL (no probe, check or answer series); p may be
 * NULL (no process series); now in ms, for TTLs and "probers in the last
 * minute". Returns a NUL-terminated buffer the caller frees, its length
 * in *len. Never NULL (aborts when out of memory). */
char *metrics_render(const struct model *m, struct observe *o, const struct metrics_stats *s,
                     const struct metrics_process *p, int64_t now, size_t *len);

/* Window of clustermgmt_node_probers: clients that asked within it. */
#define METRICS_PROBERS_WINDOW_MS (60 * 1000)

#endif
