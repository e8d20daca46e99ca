/*
 * daemon_internal.h - what daemon.c, daemon_options.c and daemon_tls.c
 * share, and nothing else includes: the option parser, the identity
 * setup, --check-config and the TLS context. Each function fills err
 * with a sentence on failure; status 400 is a configuration error (exit
 * 78, see daemon.c). daemon_parse_options also fails with status 0 and
 * what "help" or "version" for those options.
 */
#ifndef CM_DAEMON_INTERNAL_H
#define CM_DAEMON_INTERNAL_H

struct error;
struct listen_addr;
struct server;
struct server_options;

/* --- daemon_options.c --- */

/* The text of `clustermgmt serve --help`. */
extern const char daemon_usage[];

/* Parses the serve options (argv[0] is "serve") into o, defaults first;
 * o's strings point into argv. */
int daemon_parse_options(int argc, char **argv, struct server_options *o, struct error *err);

/* Binds and listens on l->text (given as option --what); fills l->fd and
 * l->is_loopback. */
int daemon_listen_bind(struct listen_addr *l, const char *what, struct error *err);

/* The roles file, the trusted proxy and the identity provider (s->oidc,
 * installed in auth). */
int daemon_identity_setup(struct server *s, struct error *err);

/* --check-config: what a start would find wrong, short of binding. */
int daemon_check_config(struct server *s, struct error *err);

/* --- daemon_tls.c --- */

/* With --tls-cert: s->ssl_ctx from the certificate and key. */
int daemon_tls_setup(struct server *s, struct error *err);

/* SIGHUP: loads the certificate and key again for new connections; on
 * failure logs it and keeps the current ones. */
void daemon_tls_reload(struct server *s);

/* --- daemon.c --- */

/* Whether --admin-password-file (when given) can be read as the first
 * admin's creation will read it. */
int daemon_check_password_file(struct server *s, struct error *err);

#endif
