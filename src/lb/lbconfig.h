/*
 * lbconfig.h - load balancer configuration generators: the text of a
 * complete Varnish VCL, HAProxy or nginx configuration that sends traffic
 * to a cluster's nodes and asks clustermgmt which of them are in service.
 *
 * The generators are pure functions: a description of the cluster and
 * the options in, malloc'd text out, no I/O. The CLI (`clustermgmt
 * lbconfig`) fetches the cluster from the daemon and prints the text;
 * docs/LOADBALANCERS.md explains every line they write.
 *
 * How the probe reaches the daemon (enum lb_probe_via):
 *
 *   LB_PROBE_VIA_NODE    each node's own address is probed with
 *                        GET {mount}?node=NAME; the node's front server
 *                        passes {mount} through to clustermgmt (the central
 *                        daemon, or one next to the node started with
 *                        --node). A dead front server fails the probe too.
 *                        The only way for Varnish, whose probes always go
 *                        to the backend's own address.
 *   LB_PROBE_VIA_DAEMON  HAProxy only: checks go straight to the daemon
 *                        (`check addr HOST port PORT`).
 *
 * HAProxy also gets an agent-check per server (agent_port != 0) that
 * reads the administrative state from `serve --agent-listen`, so that
 * drain becomes HAProxy's DRAIN (no new sessions, sticky ones finish).
 */
#ifndef CM_LBCONFIG_H
#define CM_LBCONFIG_H

#include <stddef.h>

#include "../core/error.h"
#include "../core/model.h"

enum lb_kind {
	LB_VARNISH,
	LB_HAPROXY,
	LB_NGINX,
};

enum lb_probe_via {
	LB_PROBE_VIA_NODE,
	LB_PROBE_VIA_DAEMON,
};

/* One node of the cluster. Borrowed strings. */
struct lb_node {
	const char *name;    /* a valid node name: it becomes a server name */
	const char *address; /* "host:port" or "[v6]:port"; NULL or "" is an error */
	enum node_status status;
};

/* What to generate. Borrowed strings. Fill with lbconfig_defaults first. */
struct lb_options {
	const char *cluster; /* the cluster's name (agent-send, names, comments) */
	/* The load balancer's name (lbconfig --lb), stamped into every probe
	 * as "lb=NAME" (appended to the probe's query) and into HAProxy's
	 * agent-send line ("CLUSTER/NODE lb=NAME"), so that the daemon knows
	 * which load balancer sent a probe whatever address it comes from.
	 * NULL: unnamed. A valid name by the node name rule. */
	const char *lb;
	const char *mount; /* its probe mount path, e.g. "/health" */
	/* The probe's path and query; "{mount}", "{node}" and "{cluster}" are
	 * replaced. Default "{mount}?node={node}". */
	const char *probe_url;
	enum lb_probe_via probe_via;
	const char *daemon_host; /* for LB_PROBE_VIA_DAEMON */
	int daemon_port;
	const char *agent_host; /* HAProxy agent-check target; agent_port 0 = none */
	int agent_port;
	const char *listen; /* the load balancer's front address, "host:port",
	                       "*:port" or "port" */
	int interval_ms;    /* probe interval (Varnish .interval, HAProxy inter) */
	int timeout_ms;     /* probe timeout */
	int fall;           /* failed probes in a row that take a node out */
	int rise;           /* good probes in a row that bring it back */
};

/* Fills o with the defaults suited to deploys: probes every second with
 * a 500 ms timeout, out after 2 failures, back after 2 successes (so a
 * node taken offline stops getting new requests within about 2-3 s),
 * probes via the node, no agent, listen on port 80, cluster "default"
 * at "/health". */
void lbconfig_defaults(struct lb_options *o);

/* Parses "varnish", "haproxy" or "nginx". Returns 0, or -1. */
int lb_kind_from_string(const char *s, enum lb_kind *out);

/* Generates the configuration of the given kind for nodes[0..n) (sorted
 * as given). Returns malloc'd text the caller frees, or NULL with err
 * filled: 400 for invalid options (probe URL, listen address, numbers
 * out of range, LB_PROBE_VIA_DAEMON for Varnish), 409 for a cluster the
 * configuration cannot be written for (no nodes, a node without an
 * address, names the load balancer cannot use; err->entry names the
 * node), 500 when out of memory.
 *
 * Varnish: VCL 4.1, one backend per node with its own probe, a
 * round-robin director, idempotent requests retried on another node when
 * a connection fails. Varnish's window/threshold come from fall/rise:
 * threshold = rise, window = rise + fall - 1, so a healthy backend turns
 * sick after exactly `fall` failures and a sick one healthy after `rise`
 * successes.
 * HAProxy (2.2 or later): global, defaults, a frontend and a round-robin
 * backend with HTTP checks of each server's own probe URL, agent-check,
 * retries with redispatch.
 * nginx: an upstream block (nodes not online at generation time are
 * marked `down`) and a server block using it; a comment explains that
 * open-source nginx has no active checks and how to work with that. */
char *lbconfig_generate(enum lb_kind kind, const struct lb_options *o, const struct lb_node *nodes,
                        size_t n, struct error *err);

#endif
