/*
 * auth.h - who is asking (auth.c, auth_basic.c): Basic and Bearer
 * credentials, the hook the web page's sessions plug into, and the one
 * password check every surface uses with its slow-down of guessing
 * (auth_queue.c).
 *
 * Every function here runs on the worker thread that owns the request,
 * unless it says otherwise. http.h includes this header.
 */
#ifndef CM_AUTH_H
#define CM_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "../core/model.h"

struct request;
struct auth_state;

/* Authenticates r (Basic, Bearer, or the session source when
 * allow_session) and calls then(r) when r->role >= min_role. Otherwise
 * replies itself: 401 (with WWW-Authenticate), 403 (role too low), or 429
 * / 503 when the password check queue is full (docs/API.md,
 * "Authentication"). May finish asynchronously. */
void auth_require(struct request *r, enum role min_role, int allow_session,
                  void (*then)(struct request *r));

/* The same for a token that arrived other than in an Authorization
 * header (Consul's clients send X-Consul-Token or ?token=): token[0..len)
 * is checked as a Bearer token would be, and then(r) runs when its role
 * is at least min_role; otherwise the reply is 401 or 403. Synchronous. */
void auth_require_token(struct request *r, enum role min_role, const char *token, size_t len,
                        void (*then)(struct request *r));

/* --- the password check -------------------------------------------------- */

/* The outcome of auth_check_password. */
struct auth_verdict {
	int status;              /* 200 the password is right; 401 wrong (or no
	                            such user); 429 too many checks from this
	                            address; 503 too many overall, or stopping */
	const char *problem;     /* when not 200: a sentence for the client */
	const struct user *user; /* when 200: the user as verified; valid
	                            during the call only */
};

typedef void (*auth_checked_fn)(struct request *r, const struct auth_verdict *v);

/* Checks user's password (at most PASSWORD_MAX bytes, core/limits.h)
 * for r, applying the guessing policy (counted at arrival, delayed,
 * bounded per address and overall, answered in round-robin order between
 * addresses), and calls then(r, verdict) on r's worker, at once or later.
 * then is not called when the client goes away first; its check is then
 * dropped (not hashed). user and password are copied. r->auth_attempt
 * belongs to the check meanwhile. */
void auth_check_password(struct request *r, const char *user, const char *password,
                         auth_checked_fn then);

/* The user whose password this is, or NULL. An unknown user costs the
 * same time as a known one, so timing does not tell which names exist.
 * Slow (argon2id): only for the engine's side thread. */
const struct user *auth_verify_password(const struct model *m, const char *user,
                                        const char *password);

/* Password checks, for metrics. Any thread (takes the state's lock). */
struct auth_stats {
	int64_t pending; /* arrived and not answered yet: delayed, queued or hashing */
	int64_t hashed;  /* since start: checked with argon2id */
	int64_t dropped; /* ... not hashed because the client went away */
	int64_t refused; /* ... refused at arrival (429, 503) */
};
void auth_stats(struct auth_state *a, struct auth_stats *out);

/* --- sessions plug in here ----------------------------------------------- */

/* Identifies r by credentials that travel without an Authorization
 * header (the web page's session cookie): fills r->role, r->who and
 * r->is_session and returns 1, or returns 0. Synchronous. */
typedef int (*auth_session_fn)(struct request *r);

/* Sets the session source auth_require asks when allow_session (none
 * until set: then only Basic and Bearer count). Call before serving. */
void auth_set_session_source(struct auth_state *a, auth_session_fn identify);

/* --- tokens and Basic ---------------------------------------------------- */

/* Creates a token secret for id; fills token (the string the user gets,
 * "cmt_<id>_<secret>") and hash_hex (what is stored). */
void auth_new_token(char *id, size_t id_size, char *token, size_t token_size, char *hash_hex,
                    size_t hash_size);

/* auth_basic.c: decodes the credentials of "Authorization: Basic B64"
 * (b64[0..len) is what follows "Basic ") into user and password,
 * NUL-terminated. Returns 0, or -1 when they are malformed (not base64,
 * no ':', a NUL byte) or do not fit (a user name of user_size or more
 * bytes, a password of password_size or more; at most NODE_NAME_MAX and
 * PASSWORD_MAX bytes are ever accepted). */
int auth_basic_decode(const char *b64, size_t len, char *user, size_t user_size, char *password,
                      size_t password_size);

/* --- auth_principal.c: who the principal is, beyond a role ------------ */

#include "roles.h"

struct oidc;

/* Sets who r is: r->who, r->auth_method ("password", "token", "session",
 * "oidc", "proxy"), and r->role for the route's cluster. The roles file's
 * mappings of (kind, name) and of each of groups ("\n"-joined, or NULL)
 * replace stored_role when there are any (r->grants then holds them);
 * otherwise stored_role holds on every cluster (r->grants NULL). */
void auth_set_principal(struct request *r, const char *who, const char *method,
                        enum role stored_role, enum roles_kind kind, const char *name,
                        const char *groups);
/* Sets who r is for token id of role: its role holds on clusters ("a,b")
 * only, unless the roles file maps the token (then the file's grants), or
 * clusters is "" (then on every cluster). */
void auth_set_token(struct request *r, const char *who, const char *id, enum role role,
                    const char *clusters);
/* For a principal signed in through the identity provider: its audit
 * context names the issuer and subject too. After auth_set_principal. */
void auth_set_oidc_subject(struct request *r, const char *issuer, const char *subject);
/* The role r's principal has on cluster (which need not be the route's):
 * for lists that show only what the principal may see. */
enum role auth_role_on(const struct request *r, const char *cluster);
/* Logs a refusal for lack of role (who, their role and scope, what was
 * needed, the cluster) as a journal event (journal.h; rate-limited). */
void auth_log_refusal(struct request *r, enum role needed);

/* serve --auth-proxy-header H --auth-proxy-from CIDR,...: header's value
 * is believed as the user name only from those addresses. Main thread,
 * before serving. Returns -1 with err on a bad CIDR. */
int auth_proxy_configure(const char *header, const char *const *cidrs, size_t n_cidrs,
                         struct error *err);
/* The user the trusted proxy names in r (copied into user, at most
 * NODE_NAME_MAX bytes): 1; 0 when there is no proxy header, or it came
 * from an address that is not listed (ignored, and logged at most every
 * few seconds). */
int auth_proxy_user(struct request *r, char *user, size_t size);
/* Is address among --auth-proxy-from? */
int auth_proxy_is_trusted(const char *address);
/* auth.c: sets who r is from the trusted proxy's user: "proxy:USER", the
 * roles file's mapping of user USER, else the role of the local user of
 * that name, else none. */
void auth_proxy_grant(struct request *r, const char *user);

/* The identity provider (oidc.h), or NULL without --oidc-issuer. Set by
 * daemon.c before serving. */
void auth_set_oidc(struct oidc *o);
struct oidc *auth_oidc(void);

#endif
