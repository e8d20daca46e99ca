/*
 * sample.h - what a load balancer counted for each of its servers: the
 * signals a deploy's verdict is made of (src/analysis/verdict.h). The
 * counters are cumulative, as the load balancer keeps them; the caller
 * takes the difference of two readings (sample_delta), and a counter that
 * went backwards means the load balancer was reloaded or restarted.
 *
 *   HAProxy   `show stat BACKEND 4 -1 typed` on its admin socket: per
 *             server hrsp_1xx..hrsp_other (answers by class), econ and
 *             eresp (connection and response errors), wretr and wredis
 *             (retries, redispatches), rtime (the mean response time of
 *             the server's last 512 requests, a moving average: see
 *             sample_delta) and the status.
 *   Varnish   its shared memory (varnishd -n DIR), through libvarnishapi:
 *             VSC counters VBE.*.BACKEND.req, .fail (or its fail_* parts)
 *             and .helddown (connections failed or not tried: econ),
 *             .busy, .unhealthy
 *             summed over the loaded VCLs, and the VSL log for the status
 *             of each backend response (BerespStatus) and its time
 *             (Timestamp Beresp, since the fetch began) per backend. A
 *             struct sample_varnish stays attached between readings so
 *             that the log is read from where the last reading stopped.
 *   Prometheus  any application metric: an instant query per node
 *             (/api/v1/query), whose value is the node's error ratio.
 *
 * No function here prints or exits; every call is bounded by its timeout
 * and leaves no descriptor behind.
 */
#ifndef CM_SAMPLE_SAMPLE_H
#define CM_SAMPLE_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#define SAMPLE_NAME_MAX 160
#define SAMPLE_STATUS_MAX 40

/* The counters of one server (a node) at one load balancer. The caller
 * sets name; a reading fills the rest. */
struct sample_server {
	char name[SAMPLE_NAME_MAX];     /* HAProxy server, or Varnish backend (VCL name) */
	int is_found;                   /* the load balancer knows it */
	uint64_t hrsp[6];               /* answers: 1xx, 2xx, 3xx, 4xx, 5xx, other */
	uint64_t requests;              /* Varnish: backend requests sent (VBE req); HAProxy: 0 */
	uint64_t econ, eresp;           /* connection and response errors */
	uint64_t wretr, wredis;         /* retries and redispatches (HAProxy) */
	uint64_t busy, unhealthy;       /* requests not sent (Varnish) */
	double rtime_ms;                /* HAProxy's moving mean; < 0: none */
	double latency_ms_total;        /* Varnish: sum of the logged response times */
	uint64_t timed_total;           /* Varnish: responses in latency_ms_total */
	int is_discontinuous;           /* records were lost: not comparable with the last */
	char status[SAMPLE_STATUS_MAX]; /* HAProxy's word (UP, DOWN, MAINT...); "" */
};

/* The difference between two readings of one server, as the verdict
 * takes it. */
struct sample_change {
	int is_reset;          /* a counter went backwards: no difference this time */
	uint64_t responses;    /* answers (HAProxy: by class; Varnish: req) + econ + eresp */
	uint64_t errors;       /* 5xx + econ + eresp */
	uint64_t answered;     /* answers alone */
	double latency_ms_sum; /* estimated from the moving mean; 0 when unknown */
	uint64_t timed;        /* answers whose time is in latency_ms_sum */
};

/* The number of requests HAProxy's rtime averages over (TIME_STATS_SAMPLES). */
#define SAMPLE_HAPROXY_RTIME_SAMPLES 512

/* HAProxy at addr (any form of lbaccess/haproxy_socket.h: "/unix/path",
 * "unix@/path", "host:port", "ipv4@host:port", "ipv6@[addr]:port"): reads backend's servers
 * servers[0..n) (name set by the caller) in one question. A server the
 * backend does not have is left with is_found 0. Returns 0, or -1 with why
 * filled (no answer, no such backend). */
int sample_haproxy(const char *addr, const char *backend, struct sample_server *servers, size_t n,
                   int timeout_ms, char *why, size_t why_size);

/* Fills *out with what happened to one server between reading before and
 * reading after. The response time of the answers in between is estimated
 * from HAProxy's moving mean: after k answers of mean m it moves from a0
 * to a1 = a0 d + m (1 - d), d = (1 - 1/512)^k, so m = (a1 - a0 d) / (1 - d). */
void sample_delta(const struct sample_server *before, const struct sample_server *after,
                  struct sample_change *out);

/* Prometheus at url (http://host:9090): the instant query query with
 * every {node} replaced by node. Fills *value and *has_value (0: no data:
 * an empty vector, NaN or Inf). Returns 0, or -1 with why filled (no
 * answer, the query refused, or more than one series). */
int sample_prometheus(const char *url, const char *query, const char *node, int timeout_ms,
                      double *value, int *has_value, char *why, size_t why_size);

/* Varnish, attached to the instance with working directory dir. */
struct sample_varnish;

/* Attaches to varnishd -n dir. Returns a handle (owned by the caller, to
 * sample_varnish_close), or NULL with why filled. */
struct sample_varnish *sample_varnish_open(const char *dir, char *why, size_t why_size);

/* Reads the counters of the backends servers[0..n) (VCL names), with the
 * response statuses logged since the previous reading added to the
 * cumulated counts. Returns 0, or -1 with why filled (varnishd gone).
 * The first reading after varnishd restarted (the worker, or all of it)
 * has no counters and every server is_discontinuous: no data this time,
 * never a mix of the old counters with the new. */
int sample_varnish(struct sample_varnish *v, struct sample_server *servers, size_t n, char *why,
                   size_t why_size);

void sample_varnish_close(struct sample_varnish *v);

#endif
