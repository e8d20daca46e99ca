/*
 * daemon.c - `clustermgmt serve`: main, start-up, signals, shutdown. The
 * options and --check-config are daemon_options.c's, the TLS context
 * daemon_tls.c's.
 *
 * Start-up order (start): the TLS context and identity setup, bind every
 * listening address (so a port in use fails before the store is touched),
 * open the store and start the engine (which loads the model, creates the
 * default cluster and applies TTLs that ran out while we were down),
 * create the first admin if there is no user, start the application
 * checks and, with a shared store, the share thread, then the workers.
 *
 * SIGTERM/SIGINT: stop accepting, answer what is in flight, stop the
 * engine (which closes the store), exit 0. SIGHUP: re-open the log file,
 * load the TLS certificate and key again for new connections
 * (daemon_tls_reload) and read the roles file again.
 *
 * Under systemd (Type=notify, $NOTIFY_SOCKET set) the daemon says READY=1
 * once it listens and the store is open, RELOADING=1 / READY=1 around a
 * SIGHUP, STOPPING=1 on the way out, and a STATUS= line at each step;
 * elsewhere sd_notify does nothing.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
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
#include "daemon_internal.h"
#include "journal.h"
#include "oidc.h"
#include "ui.h"

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

/* Whether --admin-password-file (when given) can be read as ensure_admin
 * will read it. */
int
daemon_check_password_file(struct server *s, struct error *err)
{
	char password[PASSWORD_MAX + 2]; /* as ensure_admin reads it */
	int rc;

	if (s->opts.admin_password_file == NULL)
		return 0;
	rc = read_password_file(s->opts.admin_password_file, password, sizeof(password), err);
	sodium_memzero(password, sizeof(password));
	return rc;
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

/* SIGHUP: the log file after rotation, the TLS certificate, the roles file. */
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
	daemon_tls_reload(s);
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
	if (s->opts.probe_listen.text[0] != '\0')
		log_kv(LOG_INFO, "probes listening", "listen", s->opts.probe_listen.text, "scheme",
		       "http", NULL);
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
	if (daemon_tls_setup(s, err) != 0 || daemon_identity_setup(s, err) != 0)
		return -1;
	for (i = 0; i < s->opts.n_listens; i++)
		if (daemon_listen_bind(&s->opts.listens[i], "listen", err) != 0)
			return -1;
	if (s->opts.agent_listen.text[0] != '\0' &&
	    daemon_listen_bind(&s->opts.agent_listen, "agent-listen", err) != 0)
		return -1;
	if (s->opts.probe_listen.text[0] != '\0' &&
	    daemon_listen_bind(&s->opts.probe_listen, "probe-listen", err) != 0)
		return -1;
	if (s->opts.metrics_listen.text[0] != '\0' &&
	    daemon_listen_bind(&s->opts.metrics_listen, "metrics-listen", err) != 0)
		return -1;
	if (s->opts.consul_listen.text[0] != '\0' &&
	    daemon_listen_bind(&s->opts.consul_listen, "consul-listen", err) != 0)
		return -1;
	if (daemon_check_password_file(s, err) != 0) /* before the store is created */
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
	oidc_stop(s->oidc);       /* what still waits for the provider is refused */
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
	if (s->opts.probe_listen.fd > 0)
		close(s->opts.probe_listen.fd);
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

/* The server is never freed: h2o 2.2.5 can dispose neither its
 * configurations nor a worker's context, so what h2o allocated for them
 * lives until the process exits (server_free). Reachable from here, a leak
 * check at exit counts it as kept, not lost, and tools/lsan.supp need not
 * name h2o's setup functions. volatile: a pointer only ever stored would
 * be optimised away. */
static struct server *volatile serving;

int
serve_main(int argc, char **argv)
{
	struct server *s = xcalloc(1, sizeof(*s));
	struct error err = {0};
	char status[160];
	sigset_t sigs;
	int sig = 0;

	serving = s;
	json_set_alloc_funcs(xmalloc, free); /* jansson out of memory aborts too (xalloc.h) */
	if (daemon_parse_options(argc, argv, &s->opts, &err) != 0) {
		if (err.status == 0 && strcmp(err.what, "version") == 0) {
			printf("clustermgmt %s\n", CM_VERSION);
			return 0;
		}
		if (err.status == 0) {
			fputs(daemon_usage, stdout);
			return 0;
		}
		/* One line, no usage text after it: under systemd the reason
		 * must be among the journal lines `systemctl status` shows. */
		fprintf(stderr, "clustermgmt serve: %s; see clustermgmt serve --help\n", err.what);
		return EXIT_USAGE;
	}
	log_set_format(s->opts.log_format);
	log_set_level(s->opts.log_level);
	engine_set_store_options((int)s->opts.store_timeout_ms, s->opts.listen_db);
	if (s->opts.is_check_config) {
		if (daemon_check_config(s, &err) != 0) {
			fprintf(stderr, "clustermgmt serve: configuration check failed: %s\n",
			        err.what);
			if (s->ssl_ctx != NULL)
				SSL_CTX_free(s->ssl_ctx);
			return exit_status_of(&err);
		}
		if (s->ssl_ctx != NULL)
			SSL_CTX_free(s->ssl_ctx);
		printf("clustermgmt serve: configuration OK (store %s)\n", s->opts.db);
		return 0;
	}
	if (s->opts.log_file != NULL && log_open_file(s->opts.log_file) != 0) {
		fprintf(stderr, "clustermgmt serve: --log-file %s: %s\n", s->opts.log_file,
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
	pthread_mutex_init(&s->ssl_lock, NULL);
	s->auth = auth_state_new();
	auth_set_session_source(s->auth, ui_session_identify); /* the page's sessions plug in */
	notify_status(NULL, "starting");
	if (start(s, &err) != 0) {
		notify_status(NULL, err.what);
		shutdown_all(s);
		/* last, so that it is the line `systemctl status` ends with */
		log_kv(LOG_ERROR, "cannot start", "error", err.what, NULL);
		if (s->opts.log_file != NULL) /* the journal, under systemd, is stderr */
			fprintf(stderr, "clustermgmt serve: cannot start: %s\n", err.what);
		return exit_status_of(&err);
	}
	snprintf(status, sizeof(status), "serving on %s", s->opts.listens[0].text);
	notify_status("READY=1", status);
	while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP)
		reload(s);
	log_kv(LOG_INFO, "stopping", "signal", sig == SIGTERM ? "TERM" : "INT", NULL);
	notify_status("STOPPING=1", "stopping: answering what is in flight");
	shutdown_all(s);
	log_kv(LOG_INFO, "stopped", NULL);
	return 0;
}
