/*
 * daemon_options.c - the options of `clustermgmt serve`: the usage text,
 * the option table and its parser, the checks that need every option
 * known, the listening addresses (resolved, bound), the identity options
 * put into effect (roles file, trusted proxy, identity provider) and
 * --check-config.
 *
 * --check-config goes through the same steps as a start up to opening the
 * store (options, TLS files, the roles file and identity provider,
 * listening addresses resolved but not bound, the admin password file,
 * the store opened, loaded and closed) and exits.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "http.h"
#include "server_internal.h"
#include "daemon_internal.h"
#include "oidc.h"
#include "roles.h"

#define MAX_THREADS 32
#define CHECK_COUNT_MAX 100

const char daemon_usage[] =
    "usage: clustermgmt serve [options]\n"
    "\n"
    "Runs the clustermgmt daemon.\n"
    "\n"
    "  --listen ADDR:PORT         listen there (repeatable; IPv6 as [::1]:8080);\n"
    "                             default 127.0.0.1:8080\n"
    "  --db PATH|URL              SQLite database file (default ./clustermgmt.db),\n"
    "                             or a PostgreSQL database shared by several\n"
    "                             daemons: postgresql://USER:PASS@HOST/DB or\n"
    "                             \"host=... dbname=...\"\n"
    "  --listen-db URL            with PostgreSQL: LISTEN for other daemons' changes\n"
    "                             there, straight to PostgreSQL, when --db goes\n"
    "                             through PgBouncer in transaction mode\n"
    "  --state-dir DIR            keep a copy of the last state applied there\n"
    "                             (served when PostgreSQL is unreachable at start)\n"
    "  --store-timeout D          deadline of every PostgreSQL operation: past it\n"
    "                             the write is answered 503, cancelled and never\n"
    "                             applied (default 3s, 100ms to 60s); health says\n"
    "                             \"slow\" above a tenth of it\n"
    "  --stale-after D            show a daemon of the store as stale after D\n"
    "                             without a heartbeat (default 15s; they beat\n"
    "                             every 2s)\n"
    "  --node NAME                answer probes without ?node= for this node\n"
    "                             (and agent-checks that send no node name)\n"
    "  --agent-listen ADDR:PORT   answer HAProxy agent-checks there\n"
    "  --probe-listen ADDR:PORT   answer probes there alone, over plain HTTP, on\n"
    "                             the probe worker also with --tls-cert\n"
    "  --check-interval D         application checks: time between rounds\n"
    "                             (default 2s; D like 500ms, 2s, 1m)\n"
    "  --check-timeout D          ... time a check may take (default 1s)\n"
    "  --check-fall K             ... failures in a row to answer down (default 3)\n"
    "  --check-rise K             ... passes in a row to come back (default 2)\n"
    "  --admin-password-file F    on an empty store, create user admin with the\n"
    "                             password in F (else one is generated and printed)\n"
    "  --tls-cert F --tls-key F   serve HTTPS with this certificate and key\n"
    "                             (read again on SIGHUP)\n"
    "  --threads N                HTTP worker threads (default 1)\n"
    "  --demo                     on an empty default cluster, add node1..node3\n"
    "  --log-format logfmt|json   one logfmt line (default) or JSON object per event\n"
    "  --log-level LEVEL          debug, info (default), warn or error: lines below it\n"
    "                             are not written\n"
    "  --log-file F               log to F instead of stderr (re-opened on SIGHUP)\n"
    "  --metrics-listen ADDR:PORT serve GET /metrics there, without credentials\n"
    "                             (and nothing else)\n"
    "  --consul-listen ADDR:PORT  serve a read-only subset of Consul's catalog and\n"
    "                             health API there (public on loopback, else a token)\n"
    "  --oidc-issuer URL          offer \"Sign in with ...\" through this OpenID\n"
    "                             Connect provider (https; http only on this host)\n"
    "  --oidc-client-id ID        ... the client registered there\n"
    "  --oidc-client-secret-file F  ... its secret (none: a public client)\n"
    "  --oidc-scopes \"S ...\"      ... scopes asked for (default\n"
    "                             \"openid profile email\")\n"
    "  --oidc-groups-claim NAME   ... the ID token's claim listing the user's groups\n"
    "                             (default groups)\n"
    "  --oidc-redirect-url URL    ... the callback URL registered with the provider\n"
    "                             (default: from the request, /login/oidc/callback)\n"
    "  --oidc-ca-file F           ... CA certificates to trust for the provider\n"
    "  --oidc-state-key-file F    ... a secret (32 bytes or more) every daemon behind\n"
    "                             one load balancer shares, sealing the sign-in's\n"
    "                             cookie (default: derived from the client secret)\n"
    "  --oidc-no-pkce             ... do not send a PKCE challenge (S256 by default)\n"
    "  --oidc-only                ... no password form on the page\n"
    "  --auth-proxy-header H      believe header H as the signed-in user name, from\n"
    "  --auth-proxy-from CIDR,... these addresses only (repeatable)\n"
    "  --roles FILE               roles of groups, users and tokens per cluster\n"
    "                             (read again on SIGHUP)\n"
    "  --check-config             check the options, TLS files and store, then exit\n"
    "                             (0: the daemon would start)\n"
    "  --help                     this text\n"
    "  --version                  show the version\n";

/* --- options ----------------------------------------------------------- */

/* Splits "host:port" or "[v6]:port" into host (no brackets) and port,
 * with h2o's parser: the host may not be empty and an IPv6 address needs
 * its brackets. */
static int
split_host_port(const char *text, char *host, size_t host_size, char *port, size_t port_size)
{
	size_t len = strlen(text);
	h2o_iovec_t h;
	uint16_t p;

	/* h2o stores 65535 when there is no port, and refuses 65535 itself */
	if (h2o_url_parse_hostport(text, len, &h, &p) != text + len || p == 65535 ||
	    h.len >= host_size)
		return -1;
	memcpy(host, h.base, h.len);
	host[h.len] = '\0';
	snprintf(port, port_size, "%u", (unsigned)p);
	return 0;
}

/* Resolves l->text (given as option --what) into *ai, which the caller
 * frees with freeaddrinfo. */
static int
listen_resolve(const struct listen_addr *l, const char *what, struct addrinfo **ai,
               struct error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	char host[64], port[8];
	int rc;

	*ai = NULL;
	if (split_host_port(l->text, host, sizeof(host), port, sizeof(port)) != 0 ||
	    strtol(port, NULL, 10) > 65535)
		return error_set(err, 400,
		                 "--%s %s: expected ADDR:PORT, e.g. 127.0.0.1:8080 or [::1]:8080",
		                 what, l->text);
	if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, ai)) != 0)
		return error_set(err, 400, "--%s %s: %s", what, l->text, gai_strerror(rc));
	return 0;
}

/* Binds and listens on one address (given as option --what); fills l->fd. */
int
daemon_listen_bind(struct listen_addr *l, const char *what, struct error *err)
{
	struct addrinfo *ai = NULL;
	int fd = -1, on = 1;

	if (listen_resolve(l, what, &ai, err) != 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto bad;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0)
		goto bad;
	l->is_loopback = sockaddr_is_loopback(ai->ai_addr);
	l->fd = fd;
	freeaddrinfo(ai);
	return 0;
bad:
	/* A port below 1024 without the capability stays refused until the
	 * operator acts; a port in use or an address not up yet may pass. */
	error_set(err, errno == EACCES ? 400 : 500, "cannot listen on %s: %s", l->text,
	          strerror(errno));
	if (fd != -1)
		close(fd);
	freeaddrinfo(ai);
	return -1;
}

/* A duration option (duration_parse): none of the daemon's may be zero. */
static int
parse_duration_option(const char *name, const char *text, int64_t *out, struct error *err)
{
	if (duration_parse(text, 1, 3600 * 1000, out) == 0)
		return 0;
	return error_set(err, 400, "--%s must be a duration like 500ms, 2s or 1m, not '%s'", name,
	                 text);
}

static int
parse_count_option(const char *name, const char *text, int *out, struct error *err)
{
	char *end;
	long n = strtol(text, &end, 10);

	if (text[0] < '0' || text[0] > '9' || *end != '\0' || n < 1 || n > CHECK_COUNT_MAX)
		return error_set(err, 400, "--%s must be a number from 1 to %d", name,
		                 CHECK_COUNT_MAX);
	*out = (int)n;
	return 0;
}

/* The options of serve. Most only keep their value in a field of struct
 * server_options (by kind); SO_OTHER ones are parsed by
 * parse_other_option. */
enum serve_option_kind { SO_TEXT, SO_NONEMPTY, SO_DURATION, SO_COUNT, SO_FLAG, SO_OTHER };

#define SO(name, has_arg, kind, field)                                                             \
	{                                                                                          \
		name, has_arg, kind, offsetof(struct server_options, field)                        \
	}
static const struct serve_option {
	const char *name;
	int has_arg;
	enum serve_option_kind kind;
	size_t offset; /* of the field, but for SO_OTHER */
} serve_options[] = {
    SO("listen", required_argument, SO_OTHER, listens),
    SO("db", required_argument, SO_TEXT, db),
    SO("state-dir", required_argument, SO_NONEMPTY, state_dir),
    SO("stale-after", required_argument, SO_DURATION, stale_after_ms),
    SO("store-timeout", required_argument, SO_OTHER, store_timeout_ms),
    SO("listen-db", required_argument, SO_TEXT, listen_db),
    SO("node", required_argument, SO_TEXT, default_node),
    SO("agent-listen", required_argument, SO_OTHER, agent_listen),
    SO("probe-listen", required_argument, SO_OTHER, probe_listen),
    SO("admin-password-file", required_argument, SO_TEXT, admin_password_file),
    SO("tls-cert", required_argument, SO_TEXT, tls_cert),
    SO("tls-key", required_argument, SO_TEXT, tls_key),
    SO("threads", required_argument, SO_OTHER, threads),
    SO("check-interval", required_argument, SO_DURATION, check_interval_ms),
    SO("check-timeout", required_argument, SO_DURATION, check_timeout_ms),
    SO("check-fall", required_argument, SO_COUNT, check_fall),
    SO("check-rise", required_argument, SO_COUNT, check_rise),
    SO("demo", no_argument, SO_FLAG, is_demo),
    SO("log-format", required_argument, SO_OTHER, log_format),
    SO("log-level", required_argument, SO_OTHER, log_level),
    SO("log-file", required_argument, SO_TEXT, log_file),
    SO("metrics-listen", required_argument, SO_OTHER, metrics_listen),
    SO("consul-listen", required_argument, SO_OTHER, consul_listen),
    SO("check-config", no_argument, SO_FLAG, is_check_config),
    SO("oidc-issuer", required_argument, SO_TEXT, oidc_issuer),
    SO("oidc-client-id", required_argument, SO_TEXT, oidc_client_id),
    SO("oidc-client-secret-file", required_argument, SO_TEXT, oidc_client_secret_file),
    SO("oidc-scopes", required_argument, SO_TEXT, oidc_scopes),
    SO("oidc-groups-claim", required_argument, SO_NONEMPTY, oidc_groups_claim),
    SO("oidc-redirect-url", required_argument, SO_TEXT, oidc_redirect_url),
    SO("oidc-ca-file", required_argument, SO_TEXT, oidc_ca_file),
    SO("oidc-state-key-file", required_argument, SO_TEXT, oidc_state_key_file),
    SO("oidc-no-pkce", no_argument, SO_FLAG, is_oidc_no_pkce),
    SO("oidc-only", no_argument, SO_FLAG, is_oidc_only),
    SO("auth-proxy-header", required_argument, SO_TEXT, auth_proxy_header),
    SO("auth-proxy-from", required_argument, SO_OTHER, auth_proxy_from),
    SO("roles", required_argument, SO_TEXT, roles_file),
    SO("help", no_argument, SO_OTHER, db),
    SO("version", no_argument, SO_OTHER, db),
};
#undef SO
#define N_SERVE_OPTIONS (sizeof(serve_options) / sizeof(serve_options[0]))
#define SERVE_OPTION_VAL 0x100 /* getopt's value of serve_options[0] */

/* --auth-proxy-from CIDR[,CIDR...], repeatable. */
static int
parse_proxy_from(struct server_options *o, const char *value, struct error *err)
{
	const char *p = value;

	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		if (o->n_auth_proxy_from ==
		    sizeof(o->auth_proxy_from) / sizeof(o->auth_proxy_from[0]))
			return error_set(err, 400, "at most 32 --auth-proxy-from networks");
		if (len == 0 || len >= sizeof(o->auth_proxy_from[0]))
			return error_set(err, 400, "--auth-proxy-from %s: expected CIDR[,CIDR...]",
			                 value);
		memcpy(o->auth_proxy_from[o->n_auth_proxy_from], p, len);
		o->auth_proxy_from[o->n_auth_proxy_from++][len] = '\0';
		p += len + (p[len] == ',');
	}
	if (o->n_auth_proxy_from == 0)
		return error_set(err, 400, "--auth-proxy-from needs CIDR[,CIDR...]");
	return 0;
}

/* The options whose value needs more than a field of one kind. */
static int
parse_other_option(struct server_options *o, const char *name, const char *value, struct error *err)
{
	char *end, host[64], port[8];

	if (strcmp(name, "listen") == 0) {
		if (o->n_listens == sizeof(o->listens) / sizeof(o->listens[0]))
			return error_set(err, 400, "too many --listen addresses");
		snprintf(o->listens[o->n_listens++].text, sizeof(o->listens[0].text), "%s", value);
	} else if (strcmp(name, "agent-listen") == 0) {
		if (value[0] == '\0')
			return error_set(err, 400, "--agent-listen needs ADDR:PORT");
		snprintf(o->agent_listen.text, sizeof(o->agent_listen.text), "%s", value);
	} else if (strcmp(name, "probe-listen") == 0) {
		if (value[0] == '\0')
			return error_set(err, 400, "--probe-listen needs ADDR:PORT");
		snprintf(o->probe_listen.text, sizeof(o->probe_listen.text), "%s", value);
	} else if (strcmp(name, "threads") == 0) {
		o->threads = (int)strtol(value, &end, 10);
		if (*end != '\0' || o->threads < 1 || o->threads > MAX_THREADS)
			return error_set(err, 400, "--threads must be a number from 1 to %d",
			                 MAX_THREADS);
	} else if (strcmp(name, "store-timeout") == 0) {
		if (parse_duration_option("store-timeout", value, &o->store_timeout_ms, err) != 0)
			return -1;
		if (o->store_timeout_ms < 100 || o->store_timeout_ms > 60000)
			return error_set(err, 400, "--store-timeout must be from 100ms to 60s");
	} else if (strcmp(name, "log-format") == 0) {
		if (log_format_from_string(value, &o->log_format) != 0)
			return error_set(err, 400, "--log-format must be logfmt or json, not '%s'",
			                 value);
	} else if (strcmp(name, "log-level") == 0) {
		if (log_level_from_string(value, &o->log_level) != 0)
			return error_set(err, 400,
			                 "--log-level must be debug, info, warn or error, not '%s'",
			                 value);
	} else if (strcmp(name, "metrics-listen") == 0) {
		if (split_host_port(value, host, sizeof(host), port, sizeof(port)) != 0)
			return error_set(err, 400,
			                 "--metrics-listen %s: expected ADDR:PORT, e.g. "
			                 "127.0.0.1:9150 or [::1]:9150",
			                 value);
		snprintf(o->metrics_listen.text, sizeof(o->metrics_listen.text), "%s", value);
	} else if (strcmp(name, "consul-listen") == 0) {
		if (split_host_port(value, host, sizeof(host), port, sizeof(port)) != 0)
			return error_set(err, 400,
			                 "--consul-listen %s: expected ADDR:PORT, e.g. "
			                 "127.0.0.1:8500 or [::1]:8500",
			                 value);
		snprintf(o->consul_listen.text, sizeof(o->consul_listen.text), "%s", value);
	} else if (strcmp(name, "auth-proxy-from") == 0) {
		return parse_proxy_from(o, value, err);
	} else if (strcmp(name, "help") == 0) {
		return error_set(err, 0, "help");
	} else {
		return error_set(err, 0, "version");
	}
	return 0;
}

static int
parse_one_option(struct server_options *o, const struct serve_option *so, const char *value,
                 struct error *err)
{
	void *field = (char *)o + so->offset;

	switch (so->kind) {
	case SO_NONEMPTY:
		if (value[0] == '\0')
			return error_set(err, 400, "--%s needs a directory", so->name);
		/* fall through */
	case SO_TEXT:
		*(const char **)field = value;
		return 0;
	case SO_DURATION:
		if (parse_duration_option(so->name, value, field, err) != 0)
			return -1;
		if (strcmp(so->name, "stale-after") == 0 && o->stale_after_ms < 4000)
			return error_set(err, 400,
			                 "--stale-after must be at least 4s"); /* 2 beats */
		return 0;
	case SO_COUNT:
		return parse_count_option(so->name, value, field, err);
	case SO_FLAG:
		*(int *)field = 1;
		return 0;
	case SO_OTHER:
		return parse_other_option(o, so->name, value, err);
	}
	return -1;
}

/* What holds only with every option known. */
static int
check_options(struct server_options *o, struct error *err)
{
	char host[64], port[8];
	size_t i;

	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return error_set(err, 400, "--tls-cert and --tls-key go together");
	if (o->listen_db != NULL && !engine_store_is_postgres(o->db))
		return error_set(err, 400, "--listen-db goes with a PostgreSQL --db only");
	if (o->default_node != NULL &&
	    !node_name_is_valid(o->default_node, strlen(o->default_node)))
		return error_set(err, 400, "--node '%s' is not a valid node name", o->default_node);
	for (i = 0; i < o->n_listens; i++)
		if (split_host_port(o->listens[i].text, host, sizeof(host), port, sizeof(port)) !=
		    0)
			return error_set(
			    err, 400,
			    "--listen %s: expected ADDR:PORT, e.g. 127.0.0.1:8080 or [::1]:8080",
			    o->listens[i].text);
	if (o->n_listens == 0)
		snprintf(o->listens[o->n_listens++].text, sizeof(o->listens[0].text), "%s",
		         "127.0.0.1:8080");
	return 0;
}

int
daemon_parse_options(int argc, char **argv, struct server_options *o, struct error *err)
{
	struct option longopts[N_SERVE_OPTIONS + 1] = {{0}};
	size_t i;
	int ch;

	for (i = 0; i < N_SERVE_OPTIONS; i++) /* getopt's value: far from '?' and ':' */
		longopts[i] = (struct option){serve_options[i].name, serve_options[i].has_arg, NULL,
		                              SERVE_OPTION_VAL + (int)i};
	o->db = "clustermgmt.db";
	o->log_level = LOG_INFO;
	o->stale_after_ms = 15000;
	o->store_timeout_ms = ENGINE_STORE_TIMEOUT_DEFAULT_MS;
	o->threads = 1;
	o->check_interval_ms = 2000;
	o->check_timeout_ms = 1000;
	o->check_fall = 3;
	o->check_rise = 2;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		if (ch < SERVE_OPTION_VAL || (size_t)(ch - SERVE_OPTION_VAL) >= N_SERVE_OPTIONS)
			return error_set(err, 400, "unknown or incomplete option '%s'",
			                 argv[optind - 1]);
		if (parse_one_option(o, &serve_options[ch - SERVE_OPTION_VAL], optarg, err) != 0)
			return -1;
	}
	if (optind < argc)
		return error_set(err, 400, "unexpected argument '%s'", argv[optind]);
	return check_options(o, err);
}

/* The roles file, the trusted proxy and the identity provider. */
int
daemon_identity_setup(struct server *s, struct error *err)
{
	const char *cidrs[32];
	size_t i;
	struct oidc_options oo = {
	    .issuer = s->opts.oidc_issuer,
	    .client_id = s->opts.oidc_client_id,
	    .client_secret_file = s->opts.oidc_client_secret_file,
	    .scopes = s->opts.oidc_scopes,
	    .groups_claim = s->opts.oidc_groups_claim,
	    .redirect_url = s->opts.oidc_redirect_url,
	    .ca_file = s->opts.oidc_ca_file,
	    .state_key_file = s->opts.oidc_state_key_file,
	    .is_pkce_off = s->opts.is_oidc_no_pkce,
	    .is_only = s->opts.is_oidc_only,
	};

	if (s->opts.roles_file != NULL && roles_load(s->opts.roles_file, err) != 0)
		return -1;
	for (i = 0; i < s->opts.n_auth_proxy_from; i++)
		cidrs[i] = s->opts.auth_proxy_from[i];
	if (auth_proxy_configure(s->opts.auth_proxy_header, cidrs, s->opts.n_auth_proxy_from,
	                         err) != 0)
		return -1;
	if (s->opts.oidc_issuer == NULL) {
		if (s->opts.oidc_client_id != NULL || s->opts.is_oidc_only)
			return error_set(err, 400, "the --oidc-... options go with --oidc-issuer");
		return 0;
	}
	if ((s->oidc = oidc_new(&oo, err)) == NULL)
		return -1;
	auth_set_oidc(s->oidc);
	if (s->opts.roles_file == NULL)
		log_kv(LOG_WARN,
		       "signing in through the identity provider without --roles: its users get "
		       "no role",
		       NULL);
	return 0;
}

/* --- --check-config ------------------------------------------------------- */

static int
check_address(const struct listen_addr *l, const char *what, struct error *err)
{
	struct addrinfo *ai;

	if (l->text[0] == '\0')
		return 0;
	if (listen_resolve(l, what, &ai, err) != 0)
		return -1;
	freeaddrinfo(ai);
	return 0;
}

/* What start() would find wrong, short of binding (a running daemon may
 * hold the addresses): the TLS certificate and key, the identity setup,
 * every address, the admin password file, and the store, opened (created when absent, as a
 * start would), loaded and closed. The store's lock is taken for that
 * moment, so a daemon running on the same file is reported by name. */
int
daemon_check_config(struct server *s, struct error *err)
{
	size_t i;
	int rc;

	if (daemon_tls_setup(s, err) != 0)
		return -1;
	rc = daemon_identity_setup(s, err);
	oidc_free(s->oidc);
	s->oidc = NULL;
	auth_set_oidc(NULL);
	roles_free();
	if (rc != 0)
		return -1;
	for (i = 0; i < s->opts.n_listens; i++)
		if (check_address(&s->opts.listens[i], "listen", err) != 0)
			return -1;
	if (check_address(&s->opts.agent_listen, "agent-listen", err) != 0 ||
	    check_address(&s->opts.probe_listen, "probe-listen", err) != 0 ||
	    check_address(&s->opts.metrics_listen, "metrics-listen", err) != 0 ||
	    check_address(&s->opts.consul_listen, "consul-listen", err) != 0)
		return -1;
	if (daemon_check_password_file(s, err) != 0)
		return -1;
	return engine_check_store(s->opts.db, err);
}
