/*
 * metrics.c - Prometheus text exposition of the daemon's state; see
 * metrics.h.
 *
 * Samples of one metric family must be contiguous, so the renderer walks
 * the nodes once per family. What observe knows of each node is read
 * first, in one pass (one stripe lock at a time, a few dozen bytes per
 * node), and kept in an array for the node families that need it; the
 * rest comes from the immutable snapshot. With 10,000 nodes the output is
 * about 5 MB and takes about 5 ms (docs/BENCHMARKS.md); the node families
 * are written without printf, which had made it 20-28 ms.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../util/strbuf.h"
#include "../util/xalloc.h"
#include "metrics.h"

/* Where the text is built (util/strbuf.h). */
static void
out_reserve(struct strbuf *o, size_t more)
{
	strbuf_reserve(o, more, 64 * 1024);
}

static void out_printf(struct strbuf *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
out_printf(struct strbuf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	out_reserve(o, 256);
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= o->cap - o->len) {
		out_reserve(o, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
	}
	o->len += (size_t)n;
}

static void
out_family(struct strbuf *o, const char *name, const char *type, const char *help)
{
	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the format wants it: backslash, quote and newline
 * escaped. Names in the model cannot hold them, but the version string
 * and future labels might. */
static const char *
label(const char *v, char *buf, size_t size)
{
	size_t n = 0;

	for (; *v != '\0' && n + 3 < size; v++) {
		if (*v == '\\' || *v == '"') {
			buf[n++] = '\\';
			buf[n++] = *v;
		} else if (*v == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else
			buf[n++] = *v;
	}
	buf[n] = '\0';
	return buf;
}

/* --- histograms ----------------------------------------------------------- */

static void
render_histogram(struct strbuf *o, const char *name, const char *help, const struct histogram *h)
{
	uint64_t cumulative = 0;
	int i;

	out_family(o, name, "histogram", help);
	for (i = 0; i < HISTOGRAM_BUCKETS; i++) {
		cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		out_printf(o, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, histogram_bounds[i],
		           cumulative);
	}
	cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
	out_printf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
	out_printf(o, "%s_sum %.6f\n", name,
	           (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
	out_printf(o, "%s_count %" PRIu64 "\n", name, cumulative);
}

/* --- the process ---------------------------------------------------------- */

int
metrics_process_read(struct metrics_process *out)
{
	char buf[1024], *p;
	unsigned long long utime, stime, start, vsize;
	long long rss;
	long threads, ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	double boot;
	struct timespec real, since_boot;
	struct rlimit rl;
	struct dirent *d;
	DIR *dir;
	FILE *f;
	size_t n;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		out->max_fds = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	if ((dir = opendir("/proc/self/fd")) != NULL) {
		while ((d = readdir(dir)) != NULL)
			if (d->d_name[0] != '.')
				out->open_fds++;
		out->open_fds--; /* the directory being read */
		closedir(dir);
	} else
		rc = -1;
	if ((f = fopen("/proc/self/stat", "r")) == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: the
	 * fields that follow start after the last ')'. Then field 3 is the
	 * state; utime and stime are 14 and 15, num_threads 20, starttime 22,
	 * vsize 23, rss 24. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 1,
	           " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %ld "
	           "%*d %llu %llu %lld",
	           &utime, &stime, &threads, &start, &vsize, &rss) != 6)
		return -1;
	/* starttime counts clock ticks since boot. The boot time comes from
	 * the two clocks rather than /proc/stat's btime, which the systemd
	 * unit's ProcSubset=pid hides. */
	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_BOOTTIME, &since_boot);
	boot = (double)(real.tv_sec - since_boot.tv_sec) +
	       (double)(real.tv_nsec - since_boot.tv_nsec) / 1e9;
	if (ticks > 0) {
		out->cpu_seconds = (double)(utime + stime) / (double)ticks;
		out->start_time_seconds = boot + (double)start / (double)ticks;
	}
	out->virtual_bytes = vsize;
	out->resident_bytes = rss > 0 && page > 0 ? (uint64_t)rss * (uint64_t)page : 0;
	out->threads = threads > 0 ? (uint64_t)threads : 0;
	return rc;
}

static void
render_process(struct strbuf *o, const struct metrics_process *p)
{
	out_family(o, "process_cpu_seconds_total", "counter",
	           "Total user and system CPU time spent in seconds.");
	out_printf(o, "process_cpu_seconds_total %.2f\n", p->cpu_seconds);
	out_family(o, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	out_printf(o, "process_resident_memory_bytes %" PRIu64 "\n", p->resident_bytes);
	out_family(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
	out_printf(o, "process_virtual_memory_bytes %" PRIu64 "\n", p->virtual_bytes);
	out_family(o, "process_open_fds", "gauge", "Number of open file descriptors.");
	out_printf(o, "process_open_fds %" PRIu64 "\n", p->open_fds);
	out_family(o, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
	if (p->max_fds == UINT64_MAX)
		out_printf(o, "process_max_fds +Inf\n");
	else
		out_printf(o, "process_max_fds %" PRIu64 "\n", p->max_fds);
	out_family(o, "process_start_time_seconds", "gauge",
	           "Start time of the process since unix epoch in seconds.");
	out_printf(o, "process_start_time_seconds %.2f\n", p->start_time_seconds);
	out_family(o, "process_threads", "gauge", "Number of OS threads in the process.");
	out_printf(o, "process_threads %" PRIu64 "\n", p->threads);
}

/* --- clusters and nodes --------------------------------------------------- */

static size_t
count_nodes(const struct model *m)
{
	size_t i, n = 0;

	for (i = 0; i < m->n_clusters; i++)
		n += m->clusters[i].n_nodes;
	return n;
}

/* One pass over observe, one node at a time; sums[k] for the k-th node in
 * model order. */
static struct observe_node_summary *
read_summaries(const struct model *m, struct observe *o, int64_t now)
{
	size_t total = count_nodes(m), i, j, k = 0;
	struct observe_node_summary *sums = xcalloc(total ? total : 1, sizeof(*sums));

	if (o == NULL)
		return sums;
	for (i = 0; i < m->n_clusters; i++) {
		const struct cluster *c = &m->clusters[i];
		for (j = 0; j < c->n_nodes; j++)
			observe_node_summary(o, c->name, cluster_node(c, j)->name,
			                     now - METRICS_PROBERS_WINDOW_MS, &sums[k++]);
	}
	return sums;
}

/* Which node-level family render_node_family writes. */
enum node_family {
	FAMILY_STATUS,
	FAMILY_CHANGED,
	FAMILY_TTL,
	FAMILY_CHECK,
	FAMILY_PROBERS,
	FAMILY_LAST_PROBE,
};

static const struct {
	const char *name, *type, *help;
} node_families[] = {
    [FAMILY_STATUS] = {"clustermgmt_node_status", "gauge",
                       "Administrative status of the node: 1 for the status it has, 0 for the "
                       "others."},
    [FAMILY_CHANGED] = {"clustermgmt_node_status_changed_timestamp_seconds", "gauge",
                        "When the node's status last changed (or the node was added)."},
    [FAMILY_TTL] = {"clustermgmt_node_ttl_seconds", "gauge",
                    "Seconds until the node's status expires and it returns online "
                    "(negative when overdue); only for statuses with a TTL."},
    [FAMILY_CHECK] = {"clustermgmt_node_check_up", "gauge",
                      "Whether the node's application check passes (1) or fails (0); only "
                      "for nodes with a check that has run."},
    [FAMILY_PROBERS] = {"clustermgmt_node_probers", "gauge",
                        "Clients (load balancers, agent-checks) that probed the node in the "
                        "last 60 seconds."},
    [FAMILY_LAST_PROBE] = {"clustermgmt_node_last_probe_timestamp_seconds", "gauge",
                           "When a client last probed the node; only for nodes probed since "
                           "the daemon started (and in the last 10 minutes)."},
};

/* Appends without printf: the node families are most of the output, and
 * printf's parsing and float formatting were most of their cost. */
static void
out_put(struct strbuf *o, const char *s, size_t n)
{
	out_reserve(o, n);
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/* A string literal, its length counted by the compiler. */
#define OUT_LITERAL(o, lit) out_put((o), (lit), sizeof(lit) - 1)

static void
out_int(struct strbuf *o, int64_t v)
{
	char digits[24];
	size_t n = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do
		digits[sizeof(digits) - ++n] = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		digits[sizeof(digits) - ++n] = '-';
	out_put(o, digits + sizeof(digits) - n, n);
}

/* Milliseconds as seconds with three decimals ("-10.000"). */
static void
out_ms_as_seconds(struct strbuf *o, int64_t ms)
{
	int64_t frac = ms % 1000;

	if (ms < 0 && ms > -1000)
		OUT_LITERAL(o, "-");
	out_int(o, ms / 1000);
	OUT_LITERAL(o, ".");
	if (frac < 0)
		frac = -frac;
	out_put(o,
	        (char[]){(char)('0' + frac / 100), (char)('0' + frac / 10 % 10),
	                 (char)('0' + frac % 10)},
	        3);
}

/* "NAME{cluster=\"C\",node=\"N\"" (no closing brace). */
static void
out_node_series(struct strbuf *o, const char *name, size_t name_len, const char *cluster,
                size_t cluster_len, const char *node)
{
	char nl[2 * NODE_NAME_MAX + 1];

	out_put(o, name, name_len);
	OUT_LITERAL(o, "{cluster=\"");
	out_put(o, cluster, cluster_len);
	OUT_LITERAL(o, "\",node=\"");
	label(node, nl, sizeof(nl));
	out_put(o, nl, strlen(nl));
	OUT_LITERAL(o, "\"");
}

static void
render_node_family(struct strbuf *o, const struct model *m, const struct observe_node_summary *sums,
                   enum node_family f, int64_t now)
{
	static const enum node_status states[] = {NODE_ONLINE, NODE_OFFLINE, NODE_DRAIN};
	const char *name = node_families[f].name;
	size_t name_len = strlen(name), cl_len, i, j, s, k = 0;
	char cl[2 * NODE_NAME_MAX + 1];

	out_family(o, name, node_families[f].type, node_families[f].help);
	for (i = 0; i < m->n_clusters; i++) {
		const struct cluster *c = &m->clusters[i];
		cl_len = strlen(label(c->name, cl, sizeof(cl)));
		for (j = 0; j < c->n_nodes; j++, k++) {
			const struct node *n = cluster_node(c, j);
			const struct observe_node_summary *sum = &sums[k];
			switch (f) {
			case FAMILY_STATUS:
				for (s = 0; s < 3; s++) {
					const char *state = node_status_name(states[s]);
					out_node_series(o, name, name_len, cl, cl_len, n->name);
					OUT_LITERAL(o, ",status=\"");
					out_put(o, state, strlen(state));
					if (n->status == states[s])
						OUT_LITERAL(o, "\"} 1\n");
					else
						OUT_LITERAL(o, "\"} 0\n");
				}
				continue;
			case FAMILY_CHANGED:
				out_node_series(o, name, name_len, cl, cl_len, n->name);
				OUT_LITERAL(o, "} ");
				out_ms_as_seconds(o, n->changed_at);
				break;
			case FAMILY_TTL:
				if (n->expires_at == 0)
					continue;
				out_node_series(o, name, name_len, cl, cl_len, n->name);
				OUT_LITERAL(o, "} ");
				out_ms_as_seconds(o, n->expires_at - now);
				break;
			case FAMILY_CHECK:
				if (n->check == NULL || !sum->has_check)
					continue;
				out_node_series(o, name, name_len, cl, cl_len, n->name);
				if (sum->check_is_up)
					OUT_LITERAL(o, "} 1");
				else
					OUT_LITERAL(o, "} 0");
				break;
			case FAMILY_PROBERS:
				out_node_series(o, name, name_len, cl, cl_len, n->name);
				OUT_LITERAL(o, "} ");
				out_int(o, (int64_t)sum->n_clients_since);
				break;
			case FAMILY_LAST_PROBE:
				if (sum->last_at == 0)
					continue;
				out_node_series(o, name, name_len, cl, cl_len, n->name);
				OUT_LITERAL(o, "} ");
				out_ms_as_seconds(o, sum->last_at);
				break;
			}
			OUT_LITERAL(o, "\n");
		}
	}
}

static void
render_clusters(struct strbuf *o, const struct model *m, struct observe *obs)
{
	uint64_t counts[OBSERVE_ANSWERS];
	char cl[2 * NODE_NAME_MAX + 1];
	size_t i;
	int a;

	out_family(o, "clustermgmt_cluster_version", "gauge",
	           "The cluster's version: incremented by every change to it.");
	for (i = 0; i < m->n_clusters; i++)
		out_printf(o, "clustermgmt_cluster_version{cluster=\"%s\"} %" PRId64 "\n",
		           label(m->clusters[i].name, cl, sizeof(cl)), m->clusters[i].version);
	out_family(o, "clustermgmt_cluster_nodes", "gauge", "Number of nodes in the cluster.");
	for (i = 0; i < m->n_clusters; i++)
		out_printf(o, "clustermgmt_cluster_nodes{cluster=\"%s\"} %zu\n",
		           label(m->clusters[i].name, cl, sizeof(cl)), m->clusters[i].n_nodes);
	if (obs == NULL)
		return;
	out_family(o, "clustermgmt_probe_answers_total", "counter",
	           "Answers given to health probes and agent-checks, by cluster and answer.");
	for (i = 0; i < m->n_clusters; i++) {
		observe_answer_counts(obs, m->clusters[i].name, counts);
		label(m->clusters[i].name, cl, sizeof(cl));
		for (a = 0; a < OBSERVE_ANSWERS; a++)
			out_printf(o,
			           "clustermgmt_probe_answers_total{cluster=\"%s\",answer=\"%s\"} "
			           "%" PRIu64 "\n",
			           cl, observe_answer_name((enum observe_answer)a), counts[a]);
	}
	out_family(o, "clustermgmt_probe_answers_uncounted_total", "counter",
	           "Answers not counted by cluster (more clusters than the counter table holds).");
	out_printf(o, "clustermgmt_probe_answers_uncounted_total %" PRIu64 "\n",
	           observe_answer_untracked(obs));
	out_family(o, "clustermgmt_peer_probe_interest", "gauge",
	           "Nodes (or whole clusters) whose probes seen by the other daemons this daemon "
	           "reads: those it was asked about in the last minute.");
	out_printf(o, "clustermgmt_peer_probe_interest %zu\n", observe_interest_count(obs));
	out_family(o, "clustermgmt_peer_probe_reports", "gauge",
	           "Reports of the other daemons' probes held, of those nodes.");
	out_printf(o, "clustermgmt_peer_probe_reports %zu\n", observe_remote_count(obs));
}

static void
render_stats(struct strbuf *o, const struct metrics_stats *s)
{
	out_family(o, "clustermgmt_store_up", "gauge",
	           "Whether the store (the database) works: 1 yes, 0 no.");
	out_printf(o, "clustermgmt_store_up %d\n", s->store_up ? 1 : 0);
	out_family(o, "clustermgmt_long_polls_held", "gauge",
	           "Event long polls (GET .../events?wait=) being held.");
	out_printf(o, "clustermgmt_long_polls_held %" PRIu64 "\n", s->long_polls_held);
	out_family(o, "clustermgmt_password_checks_queued", "gauge",
	           "Password checks arrived and not answered yet (delayed, queued or hashing).");
	out_printf(o, "clustermgmt_password_checks_queued %" PRIu64 "\n",
	           s->password_checks_queued);
	out_family(o, "clustermgmt_password_checks_total", "counter",
	           "Password checks by outcome: hashed (argon2id), dropped (the client went "
	           "away first), refused (too many at once: 429, 503).");
	out_printf(o, "clustermgmt_password_checks_total{result=\"hashed\"} %" PRIu64 "\n",
	           s->password_checks_hashed);
	out_printf(o, "clustermgmt_password_checks_total{result=\"dropped\"} %" PRIu64 "\n",
	           s->password_checks_dropped);
	out_printf(o, "clustermgmt_password_checks_total{result=\"refused\"} %" PRIu64 "\n",
	           s->password_checks_refused);
	out_family(o, "clustermgmt_writes_total", "counter", "Writes committed to the store.");
	out_printf(o, "clustermgmt_writes_total %" PRIu64 "\n", s->writes_total);
	out_family(o, "clustermgmt_writes_failed_total", "counter",
	           "Writes the store could not commit (refused ones are not counted).");
	out_printf(o, "clustermgmt_writes_failed_total %" PRIu64 "\n", s->writes_failed_total);
	if (s->write_latency != NULL)
		render_histogram(o, "clustermgmt_write_duration_seconds",
		                 "Time from a write being queued to its durable commit.",
		                 s->write_latency);
}

char *
metrics_render(const struct model *m, struct observe *obs, const struct metrics_stats *s,
               const struct metrics_process *p, int64_t now, size_t *len)
{
	struct strbuf o = {0};
	char version[64];
	struct observe_node_summary *sums;
	int f;

	out_reserve(&o, 0);
	out_family(&o, "clustermgmt_build_info", "gauge",
	           "A metric with a constant '1' value labelled by the version of clustermgmt.");
	out_printf(&o, "clustermgmt_build_info{version=\"%s\"} 1\n",
	           label(CM_VERSION, version, sizeof(version)));
	if (s != NULL)
		render_stats(&o, s);
	if (m != NULL) {
		render_clusters(&o, m, obs);
		sums = read_summaries(m, obs, now);
		for (f = FAMILY_STATUS; f <= FAMILY_LAST_PROBE; f++) {
			if (obs == NULL && f >= FAMILY_CHECK)
				break;
			render_node_family(&o, m, sums, (enum node_family)f, now);
		}
		free(sums);
	}
	if (p != NULL)
		render_process(&o, p);
	o.buf[o.len] = '\0';
	*len = o.len;
	return o.buf;
}
