/*
 * consul.h - a read-only subset of Consul's HTTP API (consul.c), served
 * on the --consul-listen listener only: a cluster is a Consul service, a
 * node with an address one of its instances (docs/API.md, "Consul API").
 */
#ifndef CM_CONSUL_H
#define CM_CONSUL_H

#include "http.h"

/* The router's Consul lines (surface SURFACE_CONSUL, gate
 * ROUTE_CONSUL_TOKEN). Each answers at once, or, with ?index=N, holds the
 * request until the index moves past N or ?wait= runs out (a blocking
 * query: a waiter on the worker, no thread). Bad parameters: 400 in
 * Consul's words; too many held queries: 429 (this client) or 503 (all). */
void consul_catalog_services(struct request *r, const struct route *rt);
void consul_catalog_service(struct request *r, const struct route *rt);
void consul_health_service(struct request *r, const struct route *rt);

/* The gate of the Consul lines: anyone on a connection made to a loopback
 * address; elsewhere a token, sent as Consul's clients send one (the
 * X-Consul-Token header, ?token=, or Authorization: Bearer), or Basic
 * credentials, whose role outside any one cluster is at least min_role
 * (the answers then leave out the clusters it has no role on). Moves the
 * line's {cluster} to r->route.name. Calls then(r), or replies 401/403. */
void consul_authenticate(struct request *r, enum role min_role, void (*then)(struct request *r));

/* A refusal the router decided, in Consul's words (plain text): 404 with
 * no body for a path Consul would not know either, 405 with Allow, 400
 * with what. */
void consul_refuse(struct request *r, int status, const char *allow, const char *what);

#endif
