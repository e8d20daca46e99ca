/*
 * daemon.c - `clustermgmt serve`: options, start-up, signals, shutdown.
 *
 * Start-up order: open the store, start the engine (which loads the model,
 * creates the default cluster and applies TTLs that ran out while we were
 * down), create the first admin if there is no user, bind every listening
 * address (so a port in use fails before anything is served), then start
 * the workers. SIGTERM/SIGINT: stop accepting, answer what is in flight,
 * stop the engine (which closes the store), exit 0. SIGHUP: re-open the
 * log file and load the TLS certificate and key again, for new
 * connections (tls_reload).
 *
 * Under systemd (Type=notify, $NOTIFY_SOCKET set) the daemon says READY=1
 * once it listens and the store is open, RELOADING=1 / READY=1 around a
 * SIGHUP, STOPPING=1 on the way out, and a STATUS= line at each step;
 * elsewhere sd_notify does nothing.
 *
 * --check-config goes through the same steps as a start up to opening the
 * store (options, TLS files, listening addresses resolved but not bound,
 * the admin password file, the store opened, loaded and closed) and exits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <systemd/sd-daemon.h>

#include "../observe/checker.h"
#include "../observe/observe.h"
#include "../observe/share.h"
#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "http.h"
#include "server_internal.h"
#include "daemon.h"
#include "journal.h"
#include "oidc.h"
#include "ui.h"

#define MAX_THREADS 32
#define CHECK_COUNT_MAX 100

static const char usage[] =
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
static int
listen_bind(struct listen_addr *l, const char *what, struct error *err)
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
		if (o->n_auth_proxy_from == sizeof(o->auth_proxy_from) / sizeof(o->auth_proxy_from[0]))
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

static int
parse_options(int argc, char **argv, struct server_options *o, struct error *err)
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

/* --- start-up jobs ------------------------------------------------------ */

/* Reads the first line of path as the admin password: PASSWORD_MIN to
 * PASSWORD_MAX bytes, like every password; a longer one is refused, not
 * cut (a cut password would not be the one the operator wrote down). */
static int
read_password_file(const char *path, char *buf, size_t size, struct error *err)
{
	FILE *f = fopen(path, "r");
	struct error why;

	if (f == NULL)
		return error_set(err, 400, "cannot read %s: %s", path, strerror(errno));
	if (fgets(buf, (int)size, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	if (password_check_length(buf, &why) != 0)
		return error_set(err, 400, "the password in %s is %s than %d bytes", path,
		                 strlen(buf) < PASSWORD_MIN ? "shorter" : "longer",
		                 strlen(buf) < PASSWORD_MIN ? PASSWORD_MIN : PASSWORD_MAX);
	return 0;
}

struct startup_counts {
	size_t n_users;
	size_t n_default_nodes; /* SIZE_MAX: no default cluster */
};

static int
count_run(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	struct startup_counts *n = job->data;
	const struct cluster *c = model_find_cluster(tx->model, DEFAULT_CLUSTER);

	(void)err;
	n->n_users = tx->model->n_users;
	n->n_default_nodes = c != NULL ? c->n_nodes : SIZE_MAX;
	return 0;
}

/* The main thread is no engine reader (a snapshot could be freed under
 * it), so it asks the engine. */
static struct startup_counts
startup_counts(struct server *s)
{
	struct startup_counts n = {0};
	struct engine_job count = {.run = count_run, .data = &n};

	engine_run_sync(s->engine, &count);
	return n;
}

/* Runs a start-up command as actor who. Returns 0 when it was applied,
 * 1 when the store refused it with 409 (another daemon on the same
 * database did it first: not an error, but the caller must not report
 * it as done), -1 with err otherwise. */
static int
run_startup_command(struct server *s, struct engine_job *job, const char *who, struct error *err)
{
	int rc;

	snprintf(job->who_name, sizeof(job->who_name), "%s", who);
	rc = engine_run_sync(s->engine, job);
	if (rc != 0 && job->err.status == 409)
		rc = 1;
	else if (rc != 0)
		*err = job->err;
	engine_job_release(job);
	return rc;
}

static int
ensure_admin(struct server *s, struct error *err)
{
	struct engine_job job = {0};
	struct command *cmd;
	char password[PASSWORD_MAX + 2];
	unsigned char random[18];
	int is_generated = 0, rc;

	if (startup_counts(s).n_users > 0)
		return 0;
	if (s->opts.admin_password_file != NULL) {
		if (read_password_file(s->opts.admin_password_file, password, sizeof(password),
		                       err) != 0)
			return -1;
	} else {
		randombytes_buf(random, sizeof(random));
		sodium_bin2base64(password, sizeof(password), random, sizeof(random),
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		is_generated = 1;
	}
	cmd = engine_job_command(&job, COMMAND_PUT_USER);
	cmd->name = xstrdup("admin");
	cmd->role = ROLE_ADMIN;
	cmd->is_new_only = 1;
	cmd->password = xstrdup(password); /* hashed by the command */
	rc = run_startup_command(s, &job, "clustermgmt", err);
	if (rc != 0) {
		sodium_memzero(password, sizeof(password));
		if (rc < 0)
			return -1;
		/* Another daemon on the same database created it first: ours
		 * was never stored, so it is not shown. */
		log_kv(LOG_INFO, "user admin exists already (created by another daemon)", NULL);
		return 0;
	}
	if (is_generated)
		log_kv(LOG_WARN,
		       "created user admin with a generated password; it is shown only once",
		       "user", "admin", "password", password, NULL);
	sodium_memzero(password, sizeof(password));
	return 0;
}

static int
seed_demo(struct server *s, struct error *err)
{
	static const char *const names[] = {"node1", "node2", "node3"};
	struct engine_job job = {0};
	struct command *cmd;
	size_t i;

	if (startup_counts(s).n_default_nodes != 0)
		return 0;
	cmd = engine_job_command(&job, COMMAND_SET_NODE_LIST);
	cmd->cluster = xstrdup(DEFAULT_CLUSTER);
	for (i = 0; i < 3; i++)
		command_add_name(cmd, names[i]);
	/* 409: another daemon on the same database seeded them first */
	return run_startup_command(s, &job, "demo", err) < 0 ? -1 : 0;
}

/* --- TLS ---------------------------------------------------------------- */

/* Mozilla's "intermediate" profile (ssl-config.mozilla.org, v5.7): TLS 1.2
 * only with forward-secret AEAD suites, and TLS 1.3 (whose suites all
 * are). The DHE-RSA suites the profile also lists are left out: every
 * client that can speak TLS 1.2 has ECDHE, and DHE would need Diffie-
 * Hellman parameters to manage for nothing. */
#define TLS12_CIPHERS                                                                              \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_CIPHERSUITES                                                                         \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* A TLS context with the certificate chain and key of the options, or
 * NULL with err filled. The caller owns the one reference returned. */
static SSL_CTX *
tls_context_new(const struct server_options *o, struct error *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		error_set(err, 500, "cannot create a TLS context");
		return NULL;
	}
	/* no TLS 1.0/1.1; no renegotiation (a client could make the server
	 * redo the expensive half of a handshake at will) */
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, TLS13_CIPHERSUITES) != 1) {
		error_set(err, 500, "cannot configure the TLS protocols and cipher suites");
		goto bad;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* ALPN: h2 for clients that offer it (h2o serves HTTP/2 on the same
	 * connection handling), http/1.1 for the others */
	h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
	if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert) != 1) {
		error_set(err, 400, "cannot load the TLS certificate %s", o->tls_cert);
		goto bad;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		error_set(err, 400,
		          "cannot load the TLS key %s (or it does not match the certificate)",
		          o->tls_key);
		goto bad;
	}
	ERR_clear_error();
	return ctx;
bad:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

static int
tls_setup(struct server *s, struct error *err)
{
	if (s->opts.tls_cert == NULL)
		return 0;
	if ((s->ssl_ctx = tls_context_new(&s->opts, err)) == NULL)
		return -1;
	return 0;
}

/* The certificate's subject, serial (hex) and end of validity, for logs. */
static void
tls_describe(SSL_CTX *ctx, char *subject, size_t subject_size, char *serial, size_t serial_size,
             char *not_after, size_t not_after_size)
{
	X509 *cert = SSL_CTX_get0_certificate(ctx);
	BIGNUM *bn = NULL;
	char *hex = NULL;
	BIO *bio;

	subject[0] = serial[0] = not_after[0] = '\0';
	if (cert == NULL)
		return;
	X509_NAME_oneline(X509_get_subject_name(cert), subject, (int)subject_size);
	if ((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL)) != NULL &&
	    (hex = BN_bn2hex(bn)) != NULL)
		snprintf(serial, serial_size, "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
	if ((bio = BIO_new(BIO_s_mem())) != NULL) {
		if (ASN1_TIME_print(bio, X509_get0_notAfter(cert)) == 1) {
			int n = BIO_read(bio, not_after, (int)not_after_size - 1);
			not_after[n > 0 ? n : 0] = '\0';
		}
		BIO_free(bio);
	}
}

/* SIGHUP: reads the certificate and key again. New connections get the
 * new context; established ones keep theirs (an SSL holds a reference to
 * its SSL_CTX). A certificate that does not load leaves the old one in
 * place. */
static void
tls_reload(struct server *s)
{
	struct error err = {0};
	char subject[256], serial[80], not_after[64];
	SSL_CTX *ctx;

	if (s->opts.tls_cert == NULL) {
		log_kv(LOG_INFO, "SIGHUP: nothing to reload (no --tls-cert)", NULL);
		return;
	}
	if ((ctx = tls_context_new(&s->opts, &err)) == NULL) {
		log_kv(LOG_ERROR, "cannot reload the TLS certificate; keeping the current one",
		       "error", err.what, NULL);
		return;
	}
	tls_describe(ctx, subject, sizeof(subject), serial, sizeof(serial), not_after,
	             sizeof(not_after));
	server_set_ssl_ctx(s, ctx);
	log_kv(LOG_INFO, "TLS certificate reloaded", "cert", s->opts.tls_cert, "subject", subject,
	       "serial", serial, "not_after", not_after, NULL);
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
 * hold the addresses): the TLS certificate and key, every address, the
 * admin password file, and the store, opened (created when absent, as a
 * start would), loaded and closed. The store's lock is taken for that
 * moment, so a daemon running on the same file is reported by name. */
/* Whether --admin-password-file (when given) can be read as ensure_admin
 * will read it. */
static int
check_password_file(struct server *s, struct error *err)
{
	char password[PASSWORD_MAX + 2]; /* as ensure_admin reads it */
	int rc;

	if (s->opts.admin_password_file == NULL)
		return 0;
	rc = read_password_file(s->opts.admin_password_file, password, sizeof(password), err);
	sodium_memzero(password, sizeof(password));
	return rc;
}

static int identity_setup(struct server *s, struct error *err);

static int
check_config(struct server *s, struct error *err)
{
	size_t i;
	int rc;

	if (tls_setup(s, err) != 0)
		return -1;
	rc = identity_setup(s, err);
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
	    check_address(&s->opts.metrics_listen, "metrics-listen", err) != 0 ||
	    check_address(&s->opts.consul_listen, "consul-listen", err) != 0)
		return -1;
	if (check_password_file(s, err) != 0)
		return -1;
	return engine_check_store(s->opts.db, err);
}

/* --- main --------------------------------------------------------------- */

/* Tells systemd (when it started us with Type=notify) how we are. */
static void
notify_status(const char *state, const char *status)
{
	if (state != NULL)
		sd_notifyf(0, "%s\nSTATUS=%s", state, status);
	else
		sd_notifyf(0, "STATUS=%s", status);
}

/* SIGHUP: the log file after rotation, then the TLS certificate. */
static void
reload(struct server *s)
{
	char status[160];

	notify_status("RELOADING=1", "reloading (SIGHUP)");
	if (log_reopen() != 0)
		log_kv(LOG_ERROR, "cannot re-open the log file; logging to the old one", "file",
		       s->opts.log_file, "error", strerror(errno), NULL);
	else if (s->opts.log_file != NULL)
		log_kv(LOG_INFO, "log file re-opened", "file", s->opts.log_file, NULL);
	tls_reload(s);
	if (s->opts.roles_file != NULL) {
		struct error err;
		if (roles_load(s->opts.roles_file, &err) != 0)
			log_kv(LOG_ERROR, "cannot reload the roles file; keeping the current roles",
			       "error", err.what, NULL);
		else
			log_kv(LOG_INFO, "roles file reloaded", "file", s->opts.roles_file, NULL);
	}
	snprintf(status, sizeof(status), "serving on %s", s->opts.listens[0].text);
	notify_status("READY=1", status);
}

/* Raises the soft limit on open descriptors to the hard one: every
 * connection, load balancers' probes included, needs one, and the soft
 * default (often 1,024) is what an idle-connection flood exhausts first.
 * Where the hard limit is "unlimited", Linux still caps it at
 * fs.nr_open. Returns the soft limit in force afterwards. */
static unsigned long long
raise_fd_limit(void)
{
	struct rlimit rl;
	char text[32];
	FILE *f;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur == rl.rlim_max)
		return (unsigned long long)rl.rlim_cur;
	if (rl.rlim_max == RLIM_INFINITY && (f = fopen("/proc/sys/fs/nr_open", "r")) != NULL) {
		if (fgets(text, sizeof(text), f) != NULL && strtoull(text, NULL, 10) > rl.rlim_cur)
			rl.rlim_max = (rlim_t)strtoull(text, NULL, 10);
		fclose(f);
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_kv(LOG_WARN, "cannot raise the open-descriptor limit", "error", strerror(errno),
		       NULL);
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	return (unsigned long long)rl.rlim_cur;
}

static void
log_listening(const struct server *s, const char *store, unsigned long long nofile)
{
	char threads[16], listens[sizeof(s->opts.listens)], fds[24];
	size_t i, len = 0;

	snprintf(threads, sizeof(threads), "%d", s->opts.threads);
	snprintf(fds, sizeof(fds), "%llu", nofile);
	listens[0] = '\0';
	for (i = 0; i < s->opts.n_listens; i++)
		len += (size_t)snprintf(listens + len, sizeof(listens) - len, "%s%s", i ? "," : "",
		                        s->opts.listens[i].text);
	if (s->opts.agent_listen.text[0] != '\0')
		log_kv(LOG_INFO, "agent-check listening", "listen", s->opts.agent_listen.text,
		       NULL);
	if (s->opts.metrics_listen.text[0] != '\0')
		log_kv(LOG_INFO, "metrics listening", "listen", s->opts.metrics_listen.text, "path",
		       "/metrics", NULL);
	if (s->opts.consul_listen.text[0] != '\0' && s->opts.consul_listen.is_loopback)
		log_kv(LOG_INFO, "consul API listening", "listen", s->opts.consul_listen.text,
		       "access", "public (loopback)", NULL);
	else if (s->opts.consul_listen.text[0] != '\0')
		log_kv(LOG_WARN,
		       "consul API listening on plain HTTP: its tokens travel unencrypted; "
		       "keep it on a trusted network",
		       "listen", s->opts.consul_listen.text, "access", "token", NULL);
	log_kv(LOG_INFO, "clustermgmt started", "version", CM_VERSION, "listen", listens, "scheme",
	       s->ssl_ctx != NULL ? "https" : "http", "store", store, "threads", threads, "nofile",
	       fds, NULL);
	for (i = 0; i < s->opts.n_listens; i++) {
		const struct listen_addr *l = &s->opts.listens[i];
		if (!l->is_loopback && s->ssl_ctx == NULL)
			log_kv(LOG_WARN,
			       "credentials will cross the network in clear text: serve HTTPS with "
			       "--tls-cert/--tls-key on non-loopback addresses",
			       "listen", l->text, NULL);
	}
}

static int
store_is_shared_engine(struct server *s)
{
	struct engine_store_state st;

	engine_store_state(s->engine, &st);
	return st.is_shared;
}

/* This daemon among the store's daemons: its id "host:first-listen-
 * address", host name, listen addresses and start time. */
static void
daemon_id(struct server *s)
{
	char host[DAEMON_HOST_MAX + 1] = "localhost";
	size_t i, len = 0;

	gethostname(host, sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(s->daemon_id, sizeof(s->daemon_id), "%s:%s", host,
	         s->opts.n_listens > 0 ? s->opts.listens[0].text : "");
	snprintf(s->me.id, sizeof(s->me.id), "%s", s->daemon_id);
	snprintf(s->me.host, sizeof(s->me.host), "%s", host);
	for (i = 0; i < s->opts.n_listens && len < sizeof(s->me.listen); i++)
		len += (size_t)snprintf(s->me.listen + len, sizeof(s->me.listen) - len, "%s%s",
		                        i > 0 ? " " : "", s->opts.listens[i].text);
	s->me.started_at = time_now_ms();
}

/* A start-up write that failed because a shared store is away is not a
 * reason to refuse to serve the state the daemon has. */
static int
is_store_away(struct server *s, const struct error *err)
{
	struct engine_store_state st;

	engine_store_state(s->engine, &st);
	return st.is_shared && err->status == 503;
}

/* The roles file, the trusted proxy and the identity provider. */
static int
identity_setup(struct server *s, struct error *err)
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

static int
start(struct server *s, struct error *err)
{
	struct checker_options checks = {s->opts.check_interval_ms, s->opts.check_timeout_ms,
	                                 s->opts.check_fall, s->opts.check_rise};
	struct share_session_hooks session_hooks;
	char store_text[1100];
	unsigned long long nofile = raise_fd_limit();
	size_t i;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return error_set(err, 500, "cannot initialise libcurl");
	if (tls_setup(s, err) != 0 || identity_setup(s, err) != 0)
		return -1;
	for (i = 0; i < s->opts.n_listens; i++)
		if (listen_bind(&s->opts.listens[i], "listen", err) != 0)
			return -1;
	if (s->opts.agent_listen.text[0] != '\0' &&
	    listen_bind(&s->opts.agent_listen, "agent-listen", err) != 0)
		return -1;
	if (s->opts.metrics_listen.text[0] != '\0' &&
	    listen_bind(&s->opts.metrics_listen, "metrics-listen", err) != 0)
		return -1;
	if (s->opts.consul_listen.text[0] != '\0' &&
	    listen_bind(&s->opts.consul_listen, "consul-listen", err) != 0)
		return -1;
	if (check_password_file(s, err) != 0) /* before the store is created */
		return -1;
	if (journal_is_connected()) /* changes as structured entries (journal.h) */
		engine_set_audit_sink(journal_audit_sink);
	if ((s->engine = engine_open(s->opts.db, s->opts.state_dir, store_text, sizeof(store_text),
	                             err)) == NULL)
		return -1;
	if (ensure_admin(s, err) != 0 || (s->opts.is_demo && seed_demo(s, err) != 0)) {
		if (!is_store_away(s, err))
			return -1;
		log_kv(LOG_WARN,
		       "the store is unreachable: the first admin and demo nodes are not created",
		       "error", err->what, NULL);
	}
	s->observe = observe_new();
	if ((s->checker = checker_start(s->engine, s->observe, &checks, err)) == NULL)
		return -1;
	daemon_id(s);
	ui_session_share_hooks(&session_hooks);
	if (store_is_shared_engine(s) &&
	    (s->share = share_start(s->engine, s->observe, &s->me, &session_hooks, err)) == NULL)
		return -1;
	s->n_workers = s->opts.threads;
	log_listening(s, store_text, nofile);
	return server_start(s, err);
}

static void
shutdown_all(struct server *s)
{
	size_t i;

	if (s->workers != NULL)
		server_stop(s);
	oidc_stop(s->oidc); /* what still waits for the provider is refused */
	share_stop(s->share);     /* uses the engine's store: before the engine */
	checker_stop(s->checker); /* an engine reader: before the engine */
	if (s->engine != NULL)
		engine_stop(s->engine);
	if (s->workers != NULL) /* after the engine: it may hand jobs back */
		server_free(s);
	observe_free(s->observe);
	for (i = 0; i < s->opts.n_listens; i++)
		if (s->opts.listens[i].fd > 0)
			close(s->opts.listens[i].fd);
	if (s->opts.agent_listen.fd > 0)
		close(s->opts.agent_listen.fd);
	if (s->opts.metrics_listen.fd > 0)
		close(s->opts.metrics_listen.fd);
	if (s->opts.consul_listen.fd > 0)
		close(s->opts.consul_listen.fd);
	if (s->ssl_ctx != NULL)
		SSL_CTX_free(s->ssl_ctx); /* the workers' references went in server_free */
	auth_state_free(s->auth);
	auth_set_oidc(NULL);
	oidc_free(s->oidc);
	roles_free();
	pthread_mutex_destroy(&s->ssl_lock);
	curl_global_cleanup();
}

/* Exit statuses. A usage error (2) and a configuration error found at
 * start (EX_CONFIG, 78: a certificate that cannot be loaded, an address
 * that does not resolve, a --db that is not a connection string, an
 * unreadable password file) will not go away by starting again, so the
 * systemd unit lists both in RestartPreventExitStatus= and the unit ends
 * in "failed" with the reason as the last journal line. What may pass
 * (an address in use, a store locked by another daemon, no memory)
 * exits 1 and is restarted. */
enum { EXIT_USAGE = 2, EXIT_CONFIG = 78 };

static int
exit_status_of(const struct error *err)
{
	return err->status == 400 ? EXIT_CONFIG : 1;
}

int
serve_main(int argc, char **argv)
{
	struct server s = {0};
	struct error err = {0};
	char status[160];
	sigset_t sigs;
	int sig = 0;

	json_set_alloc_funcs(xmalloc, free); /* jansson out of memory aborts too (xalloc.h) */
	if (parse_options(argc, argv, &s.opts, &err) != 0) {
		if (err.status == 0 && strcmp(err.what, "version") == 0) {
			printf("clustermgmt %s\n", CM_VERSION);
			return 0;
		}
		if (err.status == 0) {
			fputs(usage, stdout);
			return 0;
		}
		/* One line, no usage text after it: under systemd the reason
		 * must be among the journal lines `systemctl status` shows. */
		fprintf(stderr, "clustermgmt serve: %s; see clustermgmt serve --help\n", err.what);
		return EXIT_USAGE;
	}
	log_set_format(s.opts.log_format);
	log_set_level(s.opts.log_level);
	engine_set_store_options((int)s.opts.store_timeout_ms, s.opts.listen_db);
	if (s.opts.is_check_config) {
		if (check_config(&s, &err) != 0) {
			fprintf(stderr, "clustermgmt serve: configuration check failed: %s\n",
			        err.what);
			if (s.ssl_ctx != NULL)
				SSL_CTX_free(s.ssl_ctx);
			return exit_status_of(&err);
		}
		if (s.ssl_ctx != NULL)
			SSL_CTX_free(s.ssl_ctx);
		printf("clustermgmt serve: configuration OK (store %s)\n", s.opts.db);
		return 0;
	}
	if (s.opts.log_file != NULL && log_open_file(s.opts.log_file) != 0) {
		fprintf(stderr, "clustermgmt serve: --log-file %s: %s\n", s.opts.log_file,
		        strerror(errno));
		return EXIT_CONFIG;
	}
	if (sodium_init() < 0) {
		fprintf(stderr, "clustermgmt serve: cannot initialise libsodium\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	pthread_mutex_init(&s.ssl_lock, NULL);
	s.auth = auth_state_new();
	auth_set_session_source(s.auth, ui_session_identify); /* the page's sessions plug in */
	notify_status(NULL, "starting");
	if (start(&s, &err) != 0) {
		notify_status(NULL, err.what);
		shutdown_all(&s);
		/* last, so that it is the line `systemctl status` ends with */
		log_kv(LOG_ERROR, "cannot start", "error", err.what, NULL);
		if (s.opts.log_file != NULL) /* the journal, under systemd, is stderr */
			fprintf(stderr, "clustermgmt serve: cannot start: %s\n", err.what);
		return exit_status_of(&err);
	}
	snprintf(status, sizeof(status), "serving on %s", s.opts.listens[0].text);
	notify_status("READY=1", status);
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
		reload(&s);
	log_kv(LOG_INFO, "stopping", "signal", sig == SIGTERM ? "TERM" : "INT", NULL);
	notify_status("STOPPING=1", "stopping: answering what is in flight");
	shutdown_all(&s);
	log_kv(LOG_INFO, "stopped", NULL);
	return 0;
}
