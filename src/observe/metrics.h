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
#include "../util/histogram.h"
#include "observe.h"

/* The Content-Type of what metrics_render returns. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* The daemon's own figures, as known to the caller at render time. */
struct metrics_stats {
	int store_up;                    /* the store answers (last commit or check worked) */
	uint64_t long_polls_held;        /* event long polls waiting now */
	uint64_t password_checks_queued; /* arrived, not answered yet (delayed, queued, hashing) */
	uint64_t password_checks_hashed, password_checks_dropped, password_checks_refused;
	uint64_t writes_total;                 /* writes committed since start */
	uint64_t writes_failed_total;          /* writes the store could not commit */
	const struct histogram *write_latency; /* queued to committed; NULL: not rendered */
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

/* Reads /proc/self/stat and /proc/self/fd (nothing else of /proc, which
 * the systemd unit hides) into *out. Returns 0, or -1
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
