/*
 * router.c - the path table and the dispatch (router.h has the rules).
 *
 * Map of this file:
 *
 *   table      every endpoint of the daemon, one line each, grouped by
 *              pattern; the probe first, since it is the hot path.
 *   matching   a pattern is walked against the path character by
 *              character; {mount} looks the cluster up once per request.
 *              Nothing is allocated, nothing is copied until a line
 *              matched.
 *   refusals   404 / 405 / 400, worded by the surface the path belongs to.
 *   dispatch   refusal, or gate (authentication) then handler.
 *
 * Decisions: patterns are strings rather than pre-split segment arrays so
 * that the table reads like docs/API.md; matching one costs about what
 * comparing the path with it does. A path no line matches belongs to the
 * API when it is "/v1" or below, to the seed REST when it is a mount path
 * followed by one "++rest++" segment, and to the page otherwise: that is
 * how its 404 is worded.
 */
#include <stdio.h>
#include <string.h>

#include "api_drain.h"
#include "api_v1.h"
#include "compat.h"
#include "consul.h"
#include "probe.h"
#include "rollouts.h"
#include "router.h"
#include "scrape.h"
#include "sd.h"
#include "http.h"
#include "server_internal.h"
#include "ui.h"

#define CAPTURES_MAX 2

/* --- table ------------------------------------------------------------- */

#define GET_HEAD (ROUTE_GET | ROUTE_HEAD)

/* One line per endpoint, in columns: surface, pattern, methods, gate
 * (who may call), role (at least), handler, and for a form that does
 * more than one thing, the value of its "form" field that the line is
 * for (its role is that action's; route_form picks the line). */
/* clang-format off */
static const struct route_entry table[] = {
    {SURFACE_PROBE,    "{mount}",                              GET_HEAD,      ROUTE_PUBLIC,                ROLE_NONE,      probe_handle, NULL},
    {SURFACE_COMPAT,   "{mount}/++rest++nodestatus",           GET_HEAD,      ROUTE_OR_SESSION,            ROLE_VIEWER,    compat_nodestatus, NULL},
    {SURFACE_COMPAT,   "{mount}/++rest++setstatus",            ROUTE_POST,    ROUTE_CREDENTIALS,           ROLE_OPERATOR,  compat_setstatus, NULL},
    {SURFACE_UI,       "{mount}/managenodes",                  GET_HEAD,      ROUTE_PAGE,                  ROLE_VIEWER,    ui_nodes_page, NULL},
    {SURFACE_UI,       "{mount}/managenodes",                  ROUTE_POST,    ROUTE_FORM,                  ROLE_OPERATOR,  ui_nodes_status_post, "status"},
    {SURFACE_UI,       "{mount}/managenodes",                  ROUTE_POST,    ROUTE_FORM,                  ROLE_ADMIN,     ui_nodes_list_post, "nodes"},
    {SURFACE_UI,       "{mount}/manage_main",                  ROUTE_ANY,     ROUTE_PUBLIC,                ROLE_NONE,      ui_manage_main, NULL},

    {SURFACE_API_V1,   "/v1/health",                           ROUTE_GET,     ROUTE_PUBLIC,                ROLE_NONE,      api_v1_health_get, NULL},
    {SURFACE_API_V1,   "/v1/daemons",                          ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    api_v1_daemons_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters",                         ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    api_v1_clusters_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters",                         ROUTE_POST,    ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_clusters_post, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}",               ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    api_v1_cluster_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}",               ROUTE_DELETE,  ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_cluster_delete, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/nodes",         ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    api_v1_nodes_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/nodes",         ROUTE_PUT,     ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_nodes_put, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/nodes/{node}",  ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    api_v1_node_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/nodes/{node}",  ROUTE_PUT,     ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_node_put, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/nodes/{node}",  ROUTE_DELETE,  ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_node_delete, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/nodes/{node}/drained", ROUTE_GET, ROUTE_OR_SESSION,    ROLE_VIEWER,    api_drain_drained_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/nodes/{node}/serving", ROUTE_GET, ROUTE_OR_SESSION,    ROLE_VIEWER,    api_drain_serving_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/nodes/{node}/drain", ROUTE_POST, ROUTE_CREDENTIALS,   ROLE_OPERATOR,  api_drain_drain_post, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/nodes/{node}/offline", ROUTE_POST, ROUTE_CREDENTIALS, ROLE_OPERATOR,  api_drain_offline_post, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/status",        ROUTE_POST,    ROUTE_CREDENTIALS,           ROLE_OPERATOR,  api_v1_status_post, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/events",        ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    api_v1_events_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/observations",  ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    api_v1_observations_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/lbs",           ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    api_v1_lbs_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/lbs/{lb}",      ROUTE_PUT,     ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_lb_put, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/lbs/{lb}",      ROUTE_DELETE,  ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_lb_delete, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/audit",         ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    api_v1_audit_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/rollouts",      ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    rollouts_get, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/rollouts",      ROUTE_POST,    ROUTE_CREDENTIALS,           ROLE_OPERATOR,  rollouts_post, NULL},
    {SURFACE_API_V1,   "/v1/clusters/{cluster}/rollouts/{rollout}", ROUTE_PUT, ROUTE_CREDENTIALS,          ROLE_OPERATOR,  rollout_put, NULL},
    {SURFACE_API_V1,   "/v1/users",                            ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_ADMIN,     api_v1_users_get, NULL},
    {SURFACE_API_V1,   "/v1/users",                            ROUTE_POST,    ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_users_post, NULL},
    {SURFACE_API_V1,   "/v1/users/{user}",                     ROUTE_DELETE,  ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_user_delete, NULL},
    {SURFACE_API_V1,   "/v1/tokens",                           ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_ADMIN,     api_v1_tokens_get, NULL},
    {SURFACE_API_V1,   "/v1/tokens",                           ROUTE_POST,    ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_tokens_post, NULL},
    {SURFACE_API_V1,   "/v1/tokens/{token}",                   ROUTE_DELETE,  ROUTE_CREDENTIALS,           ROLE_ADMIN,     api_v1_token_delete, NULL},
    {SURFACE_API_V1,   "/v1/sd/prometheus",                    ROUTE_GET,     ROUTE_OR_SESSION,            ROLE_VIEWER,    sd_prometheus_get, NULL},

    {SURFACE_UI,       "/",                                    GET_HEAD,      ROUTE_PAGE,                  ROLE_VIEWER,    ui_root_page, NULL},
    {SURFACE_UI,       "/clusters",                            ROUTE_POST,    ROUTE_FORM,                  ROLE_ADMIN,     ui_clusters_post, NULL},
    {SURFACE_UI,       "/admin",                               GET_HEAD,      ROUTE_PAGE,                  ROLE_VIEWER,    ui_admin_page, NULL},
    {SURFACE_UI,       "/admin",                               ROUTE_POST,    ROUTE_FORM,                  ROLE_ADMIN,     ui_admin_post, NULL},
    {SURFACE_UI,       "/login",                               GET_HEAD,      ROUTE_PUBLIC,                ROLE_NONE,      ui_login_page, NULL},
    {SURFACE_UI,       "/login",                               ROUTE_POST,    ROUTE_PUBLIC,                ROLE_NONE,      ui_login_post, NULL},
    {SURFACE_UI,       "/logout",                              ROUTE_POST,    ROUTE_PUBLIC,                ROLE_NONE,      ui_logout_post, NULL},
    {SURFACE_ASSETS,   "/static/{asset}",                      GET_HEAD,      ROUTE_PUBLIC,                ROLE_NONE,      ui_asset_get, NULL},

    {SURFACE_METRICS,  "/metrics",                             GET_HEAD,      ROUTE_LOCAL_OR_CREDENTIALS,  ROLE_VIEWER,    scrape_handle, NULL},

    {SURFACE_CONSUL,   "/v1/catalog/services",                 ROUTE_GET,     ROUTE_CONSUL_TOKEN,          ROLE_VIEWER,    consul_catalog_services, NULL},
    {SURFACE_CONSUL,   "/v1/catalog/service/{cluster}",        ROUTE_GET,     ROUTE_CONSUL_TOKEN,          ROLE_VIEWER,    consul_catalog_service, NULL},
    {SURFACE_CONSUL,   "/v1/health/service/{cluster}",         ROUTE_GET,     ROUTE_CONSUL_TOKEN,          ROLE_VIEWER,    consul_health_service, NULL},
};
/* clang-format on */

#define TABLE_SIZE (sizeof(table) / sizeof(table[0]))

const struct route_entry *
router_table(size_t *n)
{
	*n = TABLE_SIZE;
	return table;
}

/* --- matching ------------------------------------------------------------ */

/* Methods in Allow order, with their mask bit. */
static const struct {
	const char *name;
	size_t len;
	unsigned bit;
} methods[] = {
    {"GET", 3, ROUTE_GET}, {"HEAD", 4, ROUTE_HEAD},     {"POST", 4, ROUTE_POST},
    {"PUT", 3, ROUTE_PUT}, {"DELETE", 6, ROUTE_DELETE},
};

static unsigned
method_bit(h2o_iovec_t method)
{
	size_t i;

	if (method.len == 3 && memcmp(method.base, "GET", 3) == 0) /* the probe's, inlined */
		return ROUTE_GET;
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (method.len == methods[i].len &&
		    memcmp(method.base, methods[i].name, methods[i].len) == 0)
			return methods[i].bit;
	return 0; /* only ROUTE_ANY takes it */
}

/* Does the pattern start with {mount}? Every pattern starts with '/' or
 * with {mount} (router_table_check), so its first character says. */
static int
is_mount_pattern(const char *p)
{
	return p[0] == '{';
}

#define MOUNT_LEN 7 /* strlen("{mount}") */

/* Lines of one pattern share the string, or at least its text. */
static int
is_same_pattern(const char *a, const char *b)
{
	return a == b || strcmp(a, b) == 0;
}

static void
allow_format(unsigned mask, char allow[ROUTE_ALLOW_SIZE])
{
	size_t i, len = 0;

	allow[0] = '\0';
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (mask & methods[i].bit)
			len += (size_t)snprintf(allow + len, ROUTE_ALLOW_SIZE - len, "%s%s",
			                        len ? ", " : "", methods[i].name);
}

/* One match attempt's state: the mount found (looked up once), and the
 * captures of the pattern being tried. */
struct matcher {
	const struct model *m;
	h2o_iovec_t path;
	int is_mount_known;
	const struct cluster *mount; /* NULL: the path is under no mount */
	size_t mount_len;            /* strlen(mount->path) */
	size_t n;
	h2o_iovec_t value[CAPTURES_MAX];
	const char *kind[CAPTURES_MAX]; /* "{cluster}", ... as in the pattern */
};

/* The cluster whose mount path is the path or a segment-wise prefix of
 * it. Mount paths never nest (model_cluster.c), so there is at most one. */
static void
mount_find(struct matcher *mt)
{
	mt->is_mount_known = 1;
	mt->mount = model_find_mount(mt->m, mt->path.base, mt->path.len, &mt->mount_len);
}

static int
pattern_matches(struct matcher *mt, const char *p)
{
	const char *s = mt->path.base, *end = mt->path.base + mt->path.len;

	mt->n = 0;
	if (is_mount_pattern(p)) {
		if (!mt->is_mount_known)
			mount_find(mt);
		if (mt->mount == NULL)
			return 0;
		s += mt->mount_len;
		p += MOUNT_LEN;
	}
	while (*p != '\0') {
		if (*p == '{') {
			const char *slash = memchr(s, '/', (size_t)(end - s));
			if (slash == NULL)
				slash = end;
			if (slash == s || mt->n == CAPTURES_MAX)
				return 0;
			mt->kind[mt->n] = p;
			mt->value[mt->n++] = h2o_iovec_init(s, (size_t)(slash - s));
			s = slash;
			p = strchr(p, '}') + 1;
		} else if (s < end && *s == *p) {
			s++;
			p++;
		} else {
			return 0;
		}
	}
	return s == end;
}

static int
kind_is(const char *kind, const char *name)
{
	size_t n = strlen(name);

	return strncmp(kind, name, n) == 0;
}

/* Copies the captures into rt, checking names. */
static int
captures_copy(const struct matcher *mt, struct route *rt, struct error *err)
{
	size_t i;

	if (is_mount_pattern(rt->entry->pattern))
		rt->mounted = mt->mount; /* its name is copied only if needed */
	for (i = 0; i < mt->n; i++) {
		h2o_iovec_t v = mt->value[i];
		const char *kind = mt->kind[i];
		char *dst = kind_is(kind, "{cluster}") ? rt->cluster : rt->name;
		char shown[101];

		if (!kind_is(kind, "{asset}") && !node_name_is_valid(v.base, v.len)) {
			snprintf(shown, sizeof(shown), "%.*s", (int)v.len, v.base);
			return error_set_entry(
			    err, 400, shown, "%.*s '%s': invalid name (" NODE_NAME_RULE ")",
			    (int)(strchr(kind, '}') - kind - 1), kind + 1, shown);
		}
		if (v.len > NODE_NAME_MAX) /* an asset name longer than any asset's */
			return error_set(err, 404, "not found");
		memcpy(dst, v.base, v.len);
		dst[v.len] = '\0';
	}
	return 0;
}

/* Which surface words the 404 of a path no pattern matches, and how. */
static enum route_surface
not_found(struct matcher *mt, struct error *err)
{
	h2o_iovec_t path = mt->path, rest;

	if (h2o_memis(path.base, path.len, H2O_STRLIT("/v1")) ||
	    (path.len > 3 && memcmp(path.base, "/v1/", 4) == 0)) {
		error_set(err, 404, "no such API path: %.*s",
		          (int)(path.len > 200 ? 200 : path.len), path.base);
		return SURFACE_API_V1;
	}
	if (!mt->is_mount_known)
		mount_find(mt);
	if (mt->mount != NULL) {
		rest = h2o_iovec_init(path.base + mt->mount_len, path.len - mt->mount_len);
		if (rest.len > 9 && memcmp(rest.base, "/++rest++", 9) == 0 &&
		    memchr(rest.base + 1, '/', rest.len - 1) == NULL) {
			error_set(err, 404, "unknown REST action '%.*s'", (int)rest.len - 1,
			          rest.base + 1);
			return SURFACE_COMPAT;
		}
	}
	error_set(err, 404, "not found");
	return SURFACE_UI;
}

int
router_match(const struct model *m, h2o_iovec_t method, h2o_iovec_t path, struct route *rt,
             enum route_surface *surface, char allow[ROUTE_ALLOW_SIZE], struct error *err)
{
	struct matcher mt; /* captures set only as far as mt.n */
	unsigned bit = method_bit(method), mask = 0;
	size_t i, first;
	int is_found = 0;

	mt.m = m;
	mt.path = path;
	mt.is_mount_known = 0;
	mt.mount = NULL;
	rt->entry = NULL;
	rt->mounted = NULL;
	rt->cluster[0] = rt->name[0] = '\0';
	for (i = 0; i < TABLE_SIZE && !pattern_matches(&mt, table[i].pattern); i++)
		;
	if (i == TABLE_SIZE) {
		*surface = not_found(&mt, err);
		return 404;
	}
	*surface = table[i].surface;
	/* the lines of the pattern are adjacent (router_table_check) */
	for (first = i; i < TABLE_SIZE && is_same_pattern(table[i].pattern, table[first].pattern);
	     i++) {
		mask |= table[i].methods;
		if ((is_found = (table[i].methods & bit) != 0 || table[i].methods == ROUTE_ANY))
			break;
	}
	if (!is_found) {
		rt->entry = &table[first];
		allow_format(mask, allow);
		error_set(err, 405, "method not allowed");
		return 405;
	}
	rt->entry = &table[i];
	if (captures_copy(&mt, rt, err) != 0)
		return err->status;
	return 0;
}

/* --- refusals ------------------------------------------------------------ */

static void
refuse(struct request *r, enum route_surface surface, int status, const char *allow,
       const struct error *err)
{
	switch (surface) {
	case SURFACE_PROBE:
	case SURFACE_COMPAT:
	case SURFACE_API_V1:
	case SURFACE_METRICS:
		if (status == 405)
			reply_method_not_allowed(r, allow);
		else
			reply_from_error(r, err);
		break;
	case SURFACE_UI:
		if (status == 405)
			ui_reply_method_not_allowed(r, allow);
		else
			reply_text(r, status, "not found");
		break;
	case SURFACE_ASSETS:
		if (status == 405) {
			ui_header(r, "allow", allow);
			reply_text(r, 405, "method not allowed");
		} else {
			reply_text(r, status, "not found");
		}
		break;
	case SURFACE_CONSUL:
		consul_refuse(r, status, allow, err->what);
		break;
	}
}

/* --- dispatch ------------------------------------------------------------ */

/* The gate's continuation: may run after router_dispatch returned. */
static void
route_run(struct request *r)
{
	r->route.entry->handle(r, &r->route);
}

/* For a line keyed on a form: the line of the same pattern and method
 * whose form is the body's "form" field (read once, here), made r's
 * line; NULL when no line has it. Other lines: as they are. */
static const struct route_entry *
route_form(struct request *r)
{
	const struct route_entry *e = r->route.entry, *end = table + TABLE_SIZE, *l, *found = NULL;
	char *form;

	if (e->form == NULL)
		return e;
	if ((form = ui_field(r, "form")) == NULL)
		return NULL;
	for (l = e; l < end && strcmp(l->pattern, e->pattern) == 0 && found == NULL; l++)
		if (l->methods == e->methods && l->form != NULL && strcmp(l->form, form) == 0)
			found = r->route.entry = l;
	free(form);
	return found;
}

static void
route_gate(struct request *r)
{
	const struct route_entry *e = r->route.entry;

	switch (e->gate) {
	case ROUTE_PUBLIC:
		route_run(r);
		break;
	case ROUTE_CREDENTIALS:
		auth_require(r, e->role, 0, route_run);
		break;
	case ROUTE_OR_SESSION:
		auth_require(r, e->role, 1, route_run);
		break;
	case ROUTE_PAGE:
		ui_page_auth(r, route_run);
		break;
	case ROUTE_FORM:
		/* an unknown form is refused to a viewer's valid session only, as
		 * any form is: the session, CSRF and origin checks come first */
		e = route_form(r);
		if (ui_post_guard(r, e != NULL ? e->role : ROLE_VIEWER) != 0)
			break;
		if (e != NULL)
			route_run(r);
		else
			ui_reply_message(r, 400, "Unknown form", "This form is not known here.",
			                 "/", "Go to the clusters");
		break;
	case ROUTE_LOCAL_OR_CREDENTIALS:
		if (request_is_local(r))
			route_run(r);
		else
			auth_require(r, e->role, 0, route_run);
		break;
	case ROUTE_CONSUL_TOKEN:
		consul_authenticate(r, e->role, route_run);
		break;
	}
}

void
router_dispatch(struct request *stack_r)
{
	enum route_surface surface;
	char allow[ROUTE_ALLOW_SIZE];
	struct request *r;
	struct error err;
	int status;

	status = router_match(request_snapshot(stack_r), stack_r->req->method, stack_r->path,
	                      &stack_r->route, &surface, allow, &err);
	if (stack_r->worker->is_metrics) {
		/* the --metrics-listen worker serves the /metrics lines only, and
		 * asks no credentials: whoever can reach that listener may scrape */
		r = request_keep(stack_r);
		if (status == 0 && surface == SURFACE_METRICS)
			route_run(r);
		else if (status == 405 && surface == SURFACE_METRICS)
			refuse(r, surface, status, allow, &err);
		else
			reply_text(r, 404, "not found");
		return;
	}
	if (stack_r->worker->is_consul || (status != 404 && surface == SURFACE_CONSUL)) {
		/* Consul's lines are served on the --consul-listen worker, and
		 * only they: its paths are Consul's, ours are unknown there */
		r = request_keep(stack_r);
		if (!stack_r->worker->is_consul) {
			error_set(&err, 404, "no such API path: %.*s",
			          (int)(r->path.len > 200 ? 200 : r->path.len), r->path.base);
			reply_from_error(r, &err);
		} else if (status == 404 || surface != SURFACE_CONSUL) {
			consul_refuse(r, 404, NULL, "");
		} else if (status != 0) {
			refuse(r, surface, status, allow, &err);
		} else {
			route_gate(r);
		}
		return;
	}
	if (status == 404 && surface != SURFACE_API_V1 &&
	    !engine_has_state(stack_r->server->engine)) {
		/* started with neither the store nor a local copy: no mount is
		 * known yet, so a probe must not be told "no such path" */
		reply_text(stack_r, 503,
		           "no state to answer from: the store is unreachable and this daemon "
		           "has no local copy yet; it keeps retrying");
		return;
	}
	if (surface == SURFACE_PROBE) { /* synchronous: answered from the stack */
		if (status != 0)
			refuse(stack_r, surface, status, allow, &err);
		else
			stack_r->route.entry->handle(stack_r, &stack_r->route);
		return;
	}
	if (stack_r->route.mounted != NULL) { /* the snapshot may be gone when it runs */
		const char *name = stack_r->route.mounted->name;
		memcpy(stack_r->route.cluster, name, strlen(name) + 1);
		stack_r->route.mounted = NULL;
	}
	r = request_keep(stack_r);
	if (status != 0)
		refuse(r, surface, status, allow, &err);
	else
		route_gate(r);
}

/* --- the table's own rules ----------------------------------------------- */

static int
pattern_check(const struct route_entry *e, struct error *err)
{
	static const char *const kinds[] = {"{cluster}", "{node}",  "{user}",   "{token}",
	                                    "{lb}",      "{asset}", "{rollout}"};
	const char *p = e->pattern;
	int n_cluster = 0, n_name = 0;
	size_t k;

	if (p[0] != '/' && strncmp(p, "{mount}", 7) != 0)
		return error_set(err, 500, "%s: starts with neither '/' nor {mount}", e->pattern);
	if (strncmp(p, "{mount}", 7) == 0)
		p += 7;
	for (; *p != '\0'; p++) {
		if (*p != '{')
			continue;
		if (p[-1] != '/')
			return error_set(err, 500, "%s: a capture is a whole segment", e->pattern);
		for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
			if (kind_is(p, kinds[k]))
				break;
		if (k == sizeof(kinds) / sizeof(kinds[0]))
			return error_set(err, 500, "%s: unknown capture at '%s'", e->pattern, p);
		p += strlen(kinds[k]) - 1;
		if (p[1] != '\0' && p[1] != '/')
			return error_set(err, 500, "%s: a capture is a whole segment", e->pattern);
		if (k == 0)
			n_cluster++;
		else
			n_name++;
	}
	if (n_cluster > 1 || n_name > 1 ||
	    (n_cluster > 0 && strncmp(e->pattern, "{mount}", 7) == 0))
		return error_set(err, 500, "%s: two captures fill the same field", e->pattern);
	return 0;
}

int
router_table_check(const struct route_entry *table, size_t n, struct error *err)
{
	size_t i, j;

	for (i = 0; i < n; i++) {
		const struct route_entry *e = &table[i];
		if (pattern_check(e, err) != 0)
			return -1;
		if (e->methods == 0 || e->handle == NULL)
			return error_set(err, 500, "%s: no method or no handler", e->pattern);
		if ((e->gate == ROUTE_PUBLIC) != (e->role == ROLE_NONE))
			return error_set(err, 500, "%s: public lines, and only they, have no role",
			                 e->pattern);
		if (e->form != NULL && e->gate != ROUTE_FORM)
			return error_set(err, 500, "%s: only form lines are keyed on a form",
			                 e->pattern);
		if (e->gate == ROUTE_PAGE && e->role != ROLE_VIEWER)
			return error_set(err, 500, "%s: pages let viewers in (ui_page_auth)",
			                 e->pattern);
		for (j = i + 1; j < n; j++) {
			int is_same = strcmp(table[j].pattern, e->pattern) == 0;
			if (is_same && j > i + 1 && strcmp(table[j - 1].pattern, e->pattern) != 0)
				return error_set(err, 500,
				                 "%s: lines of one pattern are not adjacent",
				                 e->pattern);
			if (is_same && (table[j].methods & e->methods) != 0 &&
			    (e->form == NULL || table[j].form == NULL ||
			     strcmp(e->form, table[j].form) == 0))
				return error_set(err, 500, "%s: a method on two lines", e->pattern);
			if (is_same && table[j].surface != e->surface)
				return error_set(err, 500, "%s: one pattern, two surfaces",
				                 e->pattern);
		}
	}
	return 0;
}
