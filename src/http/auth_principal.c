/*
 * auth_principal.c - who the principal is beyond "a role": the roles
 * file's grants per cluster (roles.c) applied to a request, the trusted
 * proxy's header (serve --auth-proxy-header/--auth-proxy-from), and the
 * identity provider the page signs in with (oidc.c).
 *
 * A request's role is always the role on the cluster its route names
 * ({cluster} or {mount}); a route that names none (lists, the fleet,
 * users, tokens, a new cluster) takes the role on every cluster ('*'),
 * lifted to viewer for a principal that may see any cluster at all. So
 * the router's table decides per cluster with no surface involved.
 *
 * The proxy header is believed only from the listed networks; from any
 * other address it is ignored (the request goes on as if it had no such
 * header) and logged, at most once every PROXY_LOG_EVERY_MS so that a
 * client cannot flood the log.
 */
#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "auth_event.h"
#include "http.h"

#define PROXY_CIDRS_MAX 32
#define PROXY_LOG_EVERY_MS 10000

struct cidr {
	int family;
	unsigned char addr[16];
	int bits;
};

static struct {
	char header[128]; /* lowercase; "" when off */
	struct cidr cidrs[PROXY_CIDRS_MAX];
	size_t n_cidrs;
	_Atomic int64_t logged_at;
} proxy;

static struct oidc *provider;

/* --- the audit context ------------------------------------------------------ */

static void
put_header(json_t *o, const char *key, const struct request *r, const char *name, size_t max)
{
	h2o_iovec_t v = request_header_by_name(r, name);

	if (v.base != NULL)
		json_object_set_new(o, key,
		                    json_stringn_nocheck(v.base, v.len > max ? max : v.len));
}

/* What every audit entry of r's writes carries besides actor and address
 * (docs/API.md, "Audit context"): a JSON object of at most
 * AUDIT_CONTEXT_MAX bytes, in r's pool; the request id is also sent as
 * X-Request-Id. */
static void
audit_context_set(struct request *r, const char *issuer, const char *subject)
{
	char id[17], scope[256], *text;
	json_t *o = json_object();

	auth_event_request_id(r, id); /* one id per request, however often who it is is set */
	json_object_set_new(o, "principal", json_string(r->who));
	json_object_set_new(o, "method", json_string(r->auth_method ? r->auth_method : ""));
	json_object_set_new(o, "session", json_boolean(r->is_session));
	if (issuer != NULL)
		json_object_set_new(o, "issuer", json_string(issuer));
	if (subject != NULL)
		json_object_set_new(o, "subject", json_string(subject));
	json_object_set_new(o, "role", json_string(role_name(r->role)));
	if (r->grants != NULL)
		grants_describe(r->grants, scope, sizeof(scope));
	else
		snprintf(scope, sizeof(scope), "%s on *", role_name(r->role));
	json_object_set_new(o, "scope", json_string(scope));
	json_object_set_new(o, "peer", json_string(r->address));
	put_header(o, "forwarded", r, "x-forwarded-for", 256);
	if (json_object_get(o, "forwarded") != NULL)
		json_object_set_new(o, "forwarded_trusted",
		                    json_boolean(auth_proxy_is_trusted(r->address)));
	put_header(o, "user_agent", r, "user-agent", 200);
	json_object_set_new(o, "request_id", json_string(id));
	text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
	json_decref(o);
	if (text != NULL && strlen(text) <= AUDIT_CONTEXT_MAX) {
		size_t len = strlen(text);
		char *copy = h2o_mem_alloc_pool(&r->req->pool, len + 1);
		memcpy(copy, text, len + 1);
		r->audit_context = copy;
	}
	free(text);
}

void
auth_set_oidc_subject(struct request *r, const char *issuer, const char *subject)
{
	audit_context_set(r, issuer, subject);
}

/* --- grants -------------------------------------------------------------- */

static enum role
role_for_route(const struct request *r, const struct grants *g)
{
	return r->route.cluster[0] != '\0' ? grants_role_on(g, r->route.cluster)
	                                   : grants_role_outside(g);
}

void
auth_set_principal(struct request *r, const char *who, const char *method, enum role stored_role,
                   enum roles_kind kind, const char *name, const char *groups)
{
	struct grants g = {0};
	int is_mapped = 0;

	if (who != r->who)
		snprintf(r->who, sizeof(r->who), "%s", who);
	r->auth_method = method;
	if (name != NULL)
		is_mapped |= roles_grant(kind, name, &g);
	while (groups != NULL && groups[0] != '\0') {
		const char *end = strchr(groups, '\n');
		size_t len = end != NULL ? (size_t)(end - groups) : strlen(groups);
		char group[256];
		if (len < sizeof(group)) {
			memcpy(group, groups, len);
			group[len] = '\0';
			is_mapped |= roles_grant(ROLES_GROUP, group, &g);
		}
		groups = end != NULL ? end + 1 : NULL;
	}
	if (!is_mapped) {
		r->grants = NULL;
		r->role = stored_role;
	} else {
		r->grants = h2o_mem_alloc_pool(&r->req->pool, sizeof(struct grants));
		memcpy((struct grants *)r->grants, &g, sizeof(g));
		r->role = role_for_route(r, r->grants);
	}
	audit_context_set(r, NULL, NULL);
}

void
auth_set_token(struct request *r, const char *who, const char *id, enum role role,
               const char *clusters)
{
	struct grants g = {0};
	const char *p = clusters;

	if (p == NULL || *p == '\0' || roles_grant(ROLES_TOKEN, id, &g)) {
		auth_set_principal(r, who, "token", role, ROLES_TOKEN, id, NULL);
		return;
	}
	while (*p != '\0' && g.n < GRANTS_MAX) {
		size_t len = strcspn(p, ",");
		if (len <= NODE_NAME_MAX) {
			memcpy(g.on[g.n].cluster, p, len);
			g.on[g.n].cluster[len] = '\0';
			g.on[g.n++].role = role;
		}
		p += len + (p[len] == ',');
	}
	if (who != r->who)
		snprintf(r->who, sizeof(r->who), "%s", who);
	r->auth_method = "token";
	r->grants = h2o_mem_alloc_pool(&r->req->pool, sizeof(struct grants));
	memcpy((struct grants *)r->grants, &g, sizeof(g));
	r->role = role_for_route(r, r->grants);
	audit_context_set(r, NULL, NULL);
}

enum role
auth_role_on(const struct request *r, const char *cluster)
{
	return r->grants != NULL ? grants_role_on(r->grants, cluster) : r->role;
}

void
auth_log_refusal(struct request *r, enum role needed)
{
	auth_event(r, r->address,
	           &(struct auth_event){.kind = AUTH_EVENT_REFUSED,
	                                .principal = r->who,
	                                .method = r->auth_method,
	                                .needed = needed});
}

/* --- the trusted proxy ----------------------------------------------------- */

static int
cidr_parse(const char *text, struct cidr *c)
{
	char addr[64], *slash;
	long bits;
	int max;

	if (strlen(text) >= sizeof(addr))
		return -1;
	snprintf(addr, sizeof(addr), "%s", text);
	slash = strchr(addr, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, addr, c->addr) == 1)
		c->family = AF_INET, max = 32;
	else if (inet_pton(AF_INET6, addr, c->addr) == 1)
		c->family = AF_INET6, max = 128;
	else
		return -1;
	bits = max;
	if (slash != NULL) {
		char *end;
		bits = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || bits < 0 || bits > max)
			return -1;
	}
	c->bits = (int)bits;
	return 0;
}

static int
cidr_contains(const struct cidr *c, int family, const unsigned char *addr)
{
	int full = c->bits / 8, rest = c->bits % 8;

	if (family != c->family || memcmp(c->addr, addr, (size_t)full) != 0)
		return 0;
	return rest == 0 || ((c->addr[full] ^ addr[full]) & (0xff << (8 - rest))) == 0;
}

int
auth_proxy_configure(const char *header, const char *const *cidrs, size_t n_cidrs,
                     struct error *err)
{
	size_t i, j;

	memset(&proxy, 0, sizeof(proxy));
	if (header == NULL)
		return n_cidrs == 0
		           ? 0
		           : error_set(err, 400, "--auth-proxy-from goes with --auth-proxy-header");
	if (header[0] == '\0' || strlen(header) >= sizeof(proxy.header) ||
	    strcspn(header, " :\t\r\n") != strlen(header))
		return error_set(err, 400, "--auth-proxy-header needs a header name");
	if (strcasecmp(header, "authorization") == 0 || strcasecmp(header, "cookie") == 0)
		return error_set(err, 400, "--auth-proxy-header %s: not that header", header);
	if (n_cidrs == 0)
		return error_set(
		    err, 400,
		    "--auth-proxy-header needs --auth-proxy-from: the addresses of the "
		    "proxy whose header is believed");
	if (n_cidrs > PROXY_CIDRS_MAX)
		return error_set(err, 400, "at most %d --auth-proxy-from networks",
		                 PROXY_CIDRS_MAX);
	for (i = 0; i < n_cidrs; i++)
		if (cidr_parse(cidrs[i], &proxy.cidrs[i]) != 0)
			return error_set(err, 400,
			                 "--auth-proxy-from %s: expected an address or a network "
			                 "like 10.0.0.0/8 or fd00::/8",
			                 cidrs[i]);
	for (j = 0; header[j] != '\0'; j++)
		proxy.header[j] =
		    (char)(header[j] >= 'A' && header[j] <= 'Z' ? header[j] + 32 : header[j]);
	proxy.n_cidrs = n_cidrs;
	return 0;
}

int
auth_proxy_is_trusted(const char *address)
{
	unsigned char addr[16];
	int family;
	size_t i;

	if (inet_pton(AF_INET, address, addr) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, address, addr) == 1)
		family = AF_INET6;
	else
		return 0;
	for (i = 0; i < proxy.n_cidrs; i++)
		if (cidr_contains(&proxy.cidrs[i], family, addr))
			return 1;
	return 0;
}

int
auth_proxy_user(struct request *r, char *user, size_t size)
{
	h2o_iovec_t v;
	int64_t now, last;
	size_t i;

	if (proxy.header[0] == '\0')
		return 0;
	v = request_header_by_name(r, proxy.header);
	if (v.base == NULL)
		return 0;
	if (!auth_proxy_is_trusted(r->address)) {
		now = time_now_ms();
		last = atomic_load(&proxy.logged_at);
		if (now - last >= PROXY_LOG_EVERY_MS &&
		    atomic_compare_exchange_strong(&proxy.logged_at, &last, now))
			log_kv(LOG_WARN, "proxy header ignored: not from a listed address",
			       "header", proxy.header, "from", r->address, NULL);
		return 0;
	}
	if (v.len == 0 || v.len > NODE_NAME_MAX || v.len >= size)
		return 0;
	for (i = 0; i < v.len; i++)
		if ((unsigned char)v.base[i] <= ' ' || (unsigned char)v.base[i] >= 0x7f)
			return 0;
	memcpy(user, v.base, v.len);
	user[v.len] = '\0';
	return 1;
}

/* --- the identity provider -------------------------------------------------- */

void
auth_set_oidc(struct oidc *o)
{
	provider = o;
}

struct oidc *
auth_oidc(void)
{
	return provider;
}
