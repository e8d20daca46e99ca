/*
 * router.h - the daemon's one path table: every path the HTTP side
 * answers, the methods each takes, who may call it, and its handler.
 *
 * A pattern is a path of literal characters and captures:
 *
 *   {mount}     first in a pattern only: the mount path of a cluster of
 *               the current snapshot (one or more segments, "/health")
 *   {cluster}   one segment, a cluster name          -> route.cluster
 *   {node} {user} {token} {lb} {rollout}   one segment, a name -> route.name
 *   {asset}     one segment, not checked as a name   -> route.name
 *
 * A capture never matches an empty segment. Names captured by every
 * capture but {asset} must be valid names (node_name_is_valid).
 *
 * The router decides every refusal of a path in one place
 * (router_match), in this order:
 *
 *   404  no pattern matches the path;
 *   405  a pattern matches, but no line of it takes the method (the
 *        reply's Allow lists those that do);
 *   400  a captured name is not a valid name;
 *
 * and the surface the path belongs to only words it (JSON for the API and
 * the seed REST, a page for the web page, text for the probe's and the
 * assets' paths). Then the line's gate authenticates the request (auth.h,
 * the page's sign-in and form guards) and its handler runs.
 *
 * The probe is the hot path: its line is the first, matching it reads the
 * snapshot's mount paths only, and its handler answers from a struct
 * request on the worker's stack, with no allocation outside h2o's
 * request pool but when a node is probed by a new client (its slot in
 * observe), and one short striped lock to record the probe (observe.h).
 *
 * To add an endpoint, add one line to the table in router.c; lines of one
 * pattern stay next to each other (router_table_check says so).
 */
#ifndef CM_ROUTER_H
#define CM_ROUTER_H

#include "http.h"

/* Methods, as a mask; Allow lists them in this order. */
enum {
	ROUTE_GET = 1 << 0,
	ROUTE_HEAD = 1 << 1,
	ROUTE_POST = 1 << 2,
	ROUTE_PUT = 1 << 3,
	ROUTE_DELETE = 1 << 4,
	ROUTE_ANY = 0xff, /* every method, also ones not named here: never 405 */
};

/* Who may call a line; checked after the match, before the handler. */
enum route_gate {
	ROUTE_PUBLIC,               /* anyone (role ROLE_NONE) */
	ROUTE_CREDENTIALS,          /* Basic or Bearer of at least role (auth_require) */
	ROUTE_OR_SESSION,           /* the same, or the web page's session cookie */
	ROUTE_PAGE,                 /* a page: the session, else credentials, else a
	                               redirect to /login (ui_page_auth); role viewer */
	ROUTE_FORM,                 /* a form POST: session, CSRF token, same origin and
	                               at least role (ui_post_guard) */
	ROUTE_LOCAL_OR_CREDENTIALS, /* anyone on a connection made to a loopback
	                               address (request_is_local), else as
	                               ROUTE_CREDENTIALS */
	ROUTE_CONSUL_TOKEN,         /* Consul's lines: anyone on a connection made to
	                               a loopback address, else a token as Consul's
	                               clients send it (consul_authenticate) */
};

/* Whose answers a line gives, which decides how a refusal is worded. */
enum route_surface {
	SURFACE_PROBE,   /* probe.h: the load balancers' probe */
	SURFACE_COMPAT,  /* compat.h: the seed product's REST */
	SURFACE_API_V1,  /* api_v1.h: the JSON API */
	SURFACE_UI,      /* ui.h: the web page */
	SURFACE_ASSETS,  /* ui.h: the page's embedded CSS, JS and icon */
	SURFACE_METRICS, /* scrape.h: Prometheus' /metrics */
	SURFACE_CONSUL,  /* consul.h: Consul's API, on the --consul-listen
	                    listener only (and only it is served there) */
};

/* A handler: r is authenticated as the line's gate demands; rt is
 * &r->route. Runs on r's worker; replies itself, at once or later. */
typedef void (*route_handler)(struct request *r, const struct route *rt);

struct route_entry {
	enum route_surface surface;
	const char *pattern;
	unsigned methods; /* ROUTE_GET | ... */
	enum route_gate gate;
	enum role role;
	route_handler handle;
	/* NULL, or for a form gate: the value of the body's "form" field this
	 * line is for. Lines of one pattern and method that differ only by
	 * form are one endpoint whose actions need different roles. */
	const char *form;
};

/* Room for the longest Allow list ("GET, HEAD, POST, PUT, DELETE"). */
#define ROUTE_ALLOW_SIZE 32

/* Finds the line of method and path (h2o's normalised path, without the
 * query) among the patterns, against the mounts of m. Returns 0 with rt
 * filled: the captures copied, and for a {mount} line rt->mounted, which
 * points into m (router_dispatch copies its name into rt->cluster when it
 * keeps the request; the probe needs only the pointer, and copying the
 * name would be the most of its routing). Otherwise returns the status of the
 * refusal, with *surface set to the surface whose wording it takes, and:
 *   404  err says what was not found;
 *   405  allow holds the Allow list; rt->entry is a line of the pattern;
 *   400  err says which name is invalid (err->entry: the name as given).
 * Pure: reads m and the table only, allocates nothing. */
int router_match(const struct model *m, h2o_iovec_t method, h2o_iovec_t path, struct route *rt,
                 enum route_surface *surface, char allow[ROUTE_ALLOW_SIZE], struct error *err);

/* Answers r (a struct request on the worker's stack, r->path set): finds
 * its line, replies with the refusal, or runs the gate and the handler. A
 * synchronous surface (the probe) is answered from r itself; for any other
 * the request is first copied into h2o's request pool (request_keep), so
 * that it may be answered later. */
void router_dispatch(struct request *r);

/* The table, for tests and documentation; n gets its length. */
const struct route_entry *router_table(size_t *n);

/* Checks a table (the router's: router_table) against the rules the
 * matching relies on: every pattern well formed (starts with '/' or
 * {mount}, captures known and whole segments, at most one capture per
 * route field), lines of one pattern adjacent, of one surface, with no
 * method twice unless every such line is a form gate keyed on a distinct
 * form value; public lines with ROLE_NONE and other lines with a role;
 * page lines with ROLE_VIEWER. Returns 0, or -1 with err naming the first
 * offending line. */
int router_table_check(const struct route_entry *table, size_t n, struct error *err);

#endif
