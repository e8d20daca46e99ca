/*
 * lbruntime.h - asking a load balancer itself how one of its servers
 * stands: whether it still sends that server new requests and how many
 * are still in flight there. `wait --drained` and `rollout` use it for
 * load balancers registered with runtime access (`clustermgmt lb add NAME
 * --kind haproxy --runtime ADDR [--backend B]`).
 *
 *   HAProxy   its stats/runtime socket (`stats socket PATH level admin`,
 *             or `stats socket HOST:PORT ...`): "show stat" gives the
 *             server's status (UP, DOWN, DRAIN, MAINT, ...) and its
 *             current sessions (scur): the requests it is serving.
 *   Varnish   the shared memory of varnishd on this host, read with
 *             libvarnishapi (lbaccess/varnish_shm.h): VBE.*.BACKEND.conn
 *             is the number of backend connections in use (requests in
 *             flight); the runtime address is varnishd's -n working
 *             directory, as for `varnishstat -n DIR`.
 *
 * Every call is bounded by its timeout. A HAProxy call leaves nothing
 * behind; the Varnish calls keep their attachment to each working
 * directory (at most 16, each closed after a minute unused or once
 * varnishd is gone), so that a reading does not map Varnish's statistics
 * anew every time. Thread-safe.
 */
#ifndef CM_LBRUNTIME_H
#define CM_LBRUNTIME_H

#include <stddef.h>

#define LBRUNTIME_STATUS_MAX 40

struct lb_server_state {
	char status[LBRUNTIME_STATUS_MAX]; /* HAProxy's words; "" for Varnish */
	long in_flight;                    /* requests being served there now */
};

/* HAProxy at addr (any form of lbaccess/haproxy_socket.h: "/unix/path",
 * "host:port", or as HAProxy writes them, "unix@/path", "ipv4@host:port",
 * "ipv6@[addr]:port"): the state of server in backend. Returns 0 and fills *out; or -1 with why
 * filled (no answer, no such backend/server). */
int lbruntime_haproxy(const char *addr, const char *backend, const char *server, int timeout_ms,
                      struct lb_server_state *out, char *why, size_t why_size);

/* Does HAProxy's status mean it sends the server no new requests? MAINT
 * and DRAIN (whatever set them), and DOWN / NOLB. */
int lbruntime_haproxy_is_out(const char *status);
/* Does it mean it sends the server new requests? UP (not DRAIN). */
int lbruntime_haproxy_is_in(const char *status);

/* Varnish with working directory dir (varnishd -n): the requests in
 * flight to the backend named backend (its VCL name, e.g. node_app1),
 * summed over loaded VCLs. Returns 0, or -1 with why filled (not
 * running; restarted since the last call, whose counters are not read
 * that time; no such backend). */
int lbruntime_varnish(const char *dir, const char *backend, int timeout_ms,
                      struct lb_server_state *out, char *why, size_t why_size);

/* Varnish's record of its last probes of backend: bit 0 the newest, 1
 * when it was good (VBE.*.BACKEND.happy), for a backend in one VCL only.
 * Returns 0, or -1 with why filled. */
int lbruntime_varnish_happy(const char *dir, const char *backend, int timeout_ms,
                            unsigned long long *bits, char *why, size_t why_size);

/* The VCL name lbconfig gives node's backend ("node_" + the name with
 * '_' written "__" and '.' written "_d") into buf. */
void lbruntime_varnish_backend(const char *node, char *buf, size_t size);

#endif
