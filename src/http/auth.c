/*
 * auth.c - who is asking: HTTP Basic (users), Bearer (tokens), the
 * trusted proxy's header, and whatever session source is plugged in (the
 * web page's cookie); then whether their role is enough for the route.
 * A password goes through auth_check_password (auth_queue.c).
 *
 * Tokens are long random secrets, so a fast hash is enough: the stored
 * value is the BLAKE2b-256 of the whole token, compared in constant time.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "auth_event.h"
#include "auth_internal.h"
#include "http.h"
#include "server_internal.h"

#define RETRY_AFTER "5"

void
auth_new_token(char *id, size_t id_size, char *token, size_t token_size, char *hash_hex,
               size_t hash_size)
{
	unsigned char id_bytes[8], secret[32], hash[32];
	char secret_text[64];

	randombytes_buf(id_bytes, sizeof(id_bytes));
	randombytes_buf(secret, sizeof(secret));
	sodium_bin2hex(id, id_size, id_bytes, sizeof(id_bytes));
	sodium_bin2base64(secret_text, sizeof(secret_text), secret, sizeof(secret),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(token, token_size, "cmt_%s_%s", id, secret_text);
	crypto_generichash(hash, sizeof(hash), (const unsigned char *)token, strlen(token), NULL,
	                   0);
	sodium_bin2hex(hash_hex, hash_size, hash, sizeof(hash));
	sodium_memzero(secret, sizeof(secret));
}

/* --- outcomes -------------------------------------------------------------- */

/* r->role (set with who r is, auth_set_principal) against the line's. */
static void
grant(struct request *r)
{
	if (r->role < r->auth_min_role) {
		auth_log_refusal(r, r->auth_min_role);
		reply_error(r, 403, NULL, "role %s may not do this%s%s (needs %s)",
		            role_name(r->role), r->route.cluster[0] ? " on cluster " : "",
		            r->route.cluster, role_name(r->auth_min_role));
		return;
	}
	r->auth_then(r);
}

/* Credentials that are wrong without a password check: a failed sign-in
 * by method (who the name tried, or NULL) for problem. */
static void
deny(struct request *r, const char *method, const char *who, const char *problem)
{
	auth_event(r, r->address,
	           &(struct auth_event){.kind = AUTH_EVENT_SIGNIN_FAILED,
	                                .principal = who,
	                                .method = method,
	                                .problem = problem});
	auth_queue_count_failure(r->server->auth, r->address);
	reply_unauthorized(r);
}

/* --- Bearer ---------------------------------------------------------------- */

static void
check_bearer(struct request *r, const char *token, size_t len)
{
	const struct model *m = request_snapshot(r);
	unsigned char hash[32];
	char hash_hex[65], id[17], who[32];
	const struct token *t;

	/* cmt_<16 hex id>_<secret> */
	if (len < 22 || memcmp(token, "cmt_", 4) != 0 || token[20] != '_') {
		deny(r, "token", NULL, "not a token");
		return;
	}
	memcpy(id, token + 4, 16);
	id[16] = '\0';
	crypto_generichash(hash, sizeof(hash), (const unsigned char *)token, len, NULL, 0);
	sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, sizeof(hash));
	t = model_find_token(m, id);
	snprintf(who, sizeof(who), "token:%s", id);
	if (t == NULL || strlen(t->hash) != 64 || sodium_memcmp(t->hash, hash_hex, 64) != 0) {
		/* named only when the token exists: an id sent is anything */
		deny(r, "token", t != NULL ? who : NULL,
		     t != NULL ? "wrong secret" : "no such token");
		return;
	}
	/* no reset of the address's failures: a token proves nothing about
	 * the passwords tried from there */
	auth_set_token(r, who, id, t->role, t->clusters);
	grant(r);
}

void
auth_require_token(struct request *r, enum role min_role, const char *token, size_t len,
                   void (*then)(struct request *r))
{
	r->auth_min_role = min_role;
	r->auth_then = then;
	check_bearer(r, token, len);
}

/* --- Basic ----------------------------------------------------------------- */

static void
basic_checked(struct request *r, const struct auth_verdict *v)
{
	if (v->status == 200) {
		auth_set_principal(r, v->user->name, "password", v->user->role, ROLES_USER,
		                   v->user->name, NULL);
		grant(r);
	} else if (v->status == 401) {
		reply_unauthorized(r);
	} else {
		h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
		               H2O_STRLIT(RETRY_AFTER));
		reply_error(r, v->status, NULL, "%s", v->problem);
	}
}

static void
check_basic(struct request *r, h2o_iovec_t h)
{
	char user[NODE_NAME_MAX + 1], password[PASSWORD_MAX + 1];

	if (auth_basic_decode(h.base + 6, h.len - 6, user, sizeof(user), password,
	                      sizeof(password)) != 0) {
		sodium_memzero(password, sizeof(password));
		deny(r, "password", NULL, "malformed Basic credentials");
		return;
	}
	auth_check_password(r, user, password, basic_checked);
	sodium_memzero(password, sizeof(password));
}

void
auth_proxy_grant(struct request *r, const char *user)
{
	const struct user *u = model_find_user(request_snapshot(r), user);
	char who[96];

	snprintf(who, sizeof(who), "proxy:%s", user);
	auth_set_principal(r, who, "proxy", u != NULL ? u->role : ROLE_NONE, ROLES_USER, user,
	                   NULL);
}

void
auth_require(struct request *r, enum role min_role, int allow_session,
             void (*then)(struct request *r))
{
	h2o_iovec_t h = request_header(r, H2O_TOKEN_AUTHORIZATION);
	auth_session_fn identify = auth_session_source(r->server->auth);

	char proxied[NODE_NAME_MAX + 1];

	r->auth_min_role = min_role;
	r->auth_then = then;
	if (auth_proxy_user(r, proxied, sizeof(proxied))) {
		auth_proxy_grant(r, proxied);
		grant(r);
		return;
	}
	if (h.base == NULL) {
		if (allow_session && identify != NULL && identify(r))
			grant(r);
		else if (min_role == ROLE_NONE)
			then(r);
		else
			reply_unauthorized(r);
		return;
	}
	if (h.len > 7 && strncasecmp(h.base, "Bearer ", 7) == 0)
		check_bearer(r, h.base + 7, h.len - 7);
	else if (h.len > 6 && strncasecmp(h.base, "Basic ", 6) == 0)
		check_basic(r, h);
	else
		deny(r, NULL, NULL, "unknown authorization scheme");
}
