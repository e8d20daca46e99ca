/*
 * oidc.h - OpenID Connect sign-in (oidc.c; the provider's client in
 * oidc_provider.c): the authorization code flow with PKCE (S256) against
 * one identity provider, ending with an identity the page turns into its
 * own session (ui_session.c).
 *
 * What the browser carries: the provider's redirect with state, and a
 * short-lived cookie (OIDC_BINDING_COOKIE) whose value must match the one
 * bound to that state, so a state that was tampered with, replayed, or
 * sent by another browser is refused. The cookie's value is the sign-in
 * itself (state, PKCE verifier, nonce, where to go, redirect URI, expiry)
 * sealed (XSalsa20-Poly1305) with a key every daemon of a site derives
 * from the same secret: when the provider's redirect lands on another
 * daemon than the one that started the sign-in, that daemon opens the
 * cookie and finishes it. The ID token never reaches the browser.
 *
 * Calls to the provider (discovery, keys, the token exchange) run on a
 * thread of this module's, never on an HTTP worker; at most
 * OIDC_QUEUE_MAX wait for it, more are refused (503).
 *
 * Threads: oidc_new/oidc_stop/oidc_free on the main thread; the rest on
 * the worker that owns the request.
 */
#ifndef CM_OIDC_H
#define CM_OIDC_H

#include <stddef.h>

#include "../core/error.h"
#include "http.h"

#define OIDC_BINDING_COOKIE "cm_oidc"
#define OIDC_CALLBACK_PATH "/login/oidc/callback"
#define OIDC_QUEUE_MAX 32     /* sign-ins waiting for the provider */
#define OIDC_PENDING_MAX 1024 /* sign-ins started and not finished */
#define OIDC_PENDING_PER_ADDRESS 32
#define OIDC_PENDING_TTL_MS (10 * 60 * 1000)
#define OIDC_LEEWAY_S 60    /* clock skew allowed on exp and iat */
#define OIDC_GROUPS_MAX 256 /* groups kept from one ID token */
#define OIDC_NEXT_MAX 512
#define OIDC_BINDING_MAX 3000 /* the sign-in cookie's value, bytes */

struct oidc;

struct oidc_options {
	const char *issuer;             /* --oidc-issuer (NULL: no OIDC) */
	const char *client_id;          /* --oidc-client-id */
	const char *client_secret_file; /* --oidc-client-secret-file, or NULL (public client) */
	const char *scopes;             /* --oidc-scopes, default "openid profile email" */
	const char *groups_claim;       /* --oidc-groups-claim, default "groups" */
	const char *redirect_url;       /* --oidc-redirect-url, or NULL: from the request */
	const char *ca_file;            /* --oidc-ca-file, or NULL: the system's */
	const char *state_key_file;     /* --oidc-state-key-file, or NULL: from the client
	                                   secret, else a key of this process alone */
	int is_pkce_off;                /* --oidc-no-pkce */
	int is_only;                    /* --oidc-only: no password form */
};

/* Who signed in, as the provider vouched in a verified ID token. */
struct oidc_identity {
	char subject[256];
	char name[NODE_NAME_MAX + 1]; /* preferred_username, else email, else sub (cut) */
	char *groups;                 /* malloc'd, "\n"-joined, "" for none */
	char email[256];              /* the email claim when email_verified is true, else "" */
	char *id_token;               /* malloc'd: the ID token as received and verified */
};

/* Checks the options and reads the client secret; starts the provider's
 * thread (discovery happens at the first sign-in, so a provider that is
 * down does not stop the daemon). NULL with err on bad options. */
struct oidc *oidc_new(const struct oidc_options *opts, struct error *err);
/* Refuses what still waits for the provider (their requests are answered
 * 503) and joins the thread. After the workers stopped taking requests,
 * before they are freed. */
void oidc_stop(struct oidc *o);
void oidc_free(struct oidc *o);

/* "Sign in with HOST": the label of the login page's button (static to o). */
const char *oidc_label(const struct oidc *o);
/* The issuer, as configured (static to o). */
const char *oidc_issuer(const struct oidc *o);
int oidc_is_only(const struct oidc *o);

/* Starts a sign-in for r: then(r, url, binding, problem) with the
 * provider's authorization URL and the cookie value to bind the state to
 * (both valid during the call), or with url NULL and a sentence for the
 * user (and status: 503 when the provider cannot be reached or too many
 * sign-ins are under way). next is where to go afterwards (already
 * checked to be a local path). May finish later (discovery). */
typedef void (*oidc_begun_fn)(struct request *r, int status, const char *url, const char *binding,
                              const char *problem);
void oidc_begin(struct oidc *o, struct request *r, const char *next, oidc_begun_fn then);

/* Finishes a sign-in from the provider's redirect: the state must be one
 * this daemon (or, through the sealed cookie, another daemon with the
 * same key) started less than OIDC_PENDING_TTL_MS ago, not used yet
 * here, and bound to binding (the cookie); then the code is exchanged and the
 * ID token verified. then(r, status, identity, next, problem): 200 with
 * the identity (valid during the call; the callee may take
 * identity->groups and identity->id_token and set them to NULL), else 400/401/503 with a sentence.
 */
typedef void (*oidc_done_fn)(struct request *r, int status, struct oidc_identity *id,
                             const char *next, const char *problem);
void oidc_finish(struct oidc *o, struct request *r, const char *state, const char *binding,
                 const char *code, oidc_done_fn then);

/* Where to send the browser to end the provider's session too (malloc'd,
 * the caller frees it), or NULL when the provider advertises no
 * end_session_endpoint or was never reached. after is where the provider
 * should send the browser back (post_logout_redirect_uri); id_token, when
 * not NULL, the session's ID token (id_token_hint), with which the
 * provider ends its session without asking the user to confirm. */
char *oidc_end_session_url(struct oidc *o, const char *after, const char *id_token);

/* The same, once the provider is discovered (a daemon that signed nobody
 * in yet has not asked it): then(r, url) with the URL (valid during the
 * call), or NULL when there is none or the provider cannot be reached.
 * May finish later. */
typedef void (*oidc_ended_fn)(struct request *r, const char *url);
void oidc_end_session(struct oidc *o, struct request *r, const char *after, const char *id_token,
                      oidc_ended_fn then);

#endif
