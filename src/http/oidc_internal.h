/*
 * oidc_internal.h - what the two halves of the OpenID Connect client
 * share: oidc_provider.c (discovery, keys, the thread that makes every
 * call to the provider, life) and oidc.c (the sign-in flow: pending
 * sign-ins, the code exchange, the ID token's checks). Only those two
 * include it.
 */
#ifndef CM_OIDC_INTERNAL_H
#define CM_OIDC_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cjose/cjose.h>
#include <jansson.h>

#include "oidc.h"

#define RANDOM_TEXT 44 /* base64url of 32 bytes, with its NUL */
#define KEYS_MAX 32
#define URL_MAX 2048

/* --- the state both halves share ----------------------------------------- */

struct key {
	char *kid; /* "" when the key has none */
	cjose_jwk_t *jwk;
	cjose_jwk_kty_t kty;
	char *alg; /* the key's "alg", or NULL */
};

struct pending {
	unsigned char state_hash[32];
	unsigned char binding_hash[32];
	char verifier[RANDOM_TEXT];
	char nonce[RANDOM_TEXT];
	char next[OIDC_NEXT_MAX + 1];
	char redirect_uri[URL_MAX];
	char address[64];
	int64_t expires_at; /* 0: free */
	int is_used;        /* finished here: only its state_hash is kept, so that
	                       the state is refused when it comes back */
};

struct oidc {
	/* options, fixed after oidc_new */
	char *issuer, *client_id, *client_secret, *scopes, *groups_claim, *redirect_url, *ca_file;
	int is_pkce, is_only, is_loopback_issuer;
	/* seals the sign-in cookie (oidc.c): shared by the daemons that were
	 * given the same --oidc-state-key-file or client secret */
	unsigned char state_key[32];
	char label[300];

	/* what discovery found; workers read it under meta_lock */
	pthread_mutex_t meta_lock;
	int is_discovered;
	char *authorization_endpoint, *token_endpoint, *jwks_uri, *end_session_endpoint;

	/* the thread's own */
	struct key keys[KEYS_MAX];
	size_t n_keys;
	int64_t keys_fetched_at;

	/* the queue */
	pthread_t thread;
	int is_started;
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_cond;
	struct engine_job *head, *tail;
	int n_queued, is_stopping;

	/* sign-ins under way */
	pthread_mutex_t pending_lock;
	struct pending pending[OIDC_PENDING_MAX];
};

/* One call to the provider, from a worker to the thread and back. */
struct oidc_call {
	struct oidc *o;
	oidc_begun_fn begun;    /* a discovery for oidc_begin */
	oidc_done_fn done;      /* an exchange for oidc_finish */
	oidc_ended_fn ended;    /* a discovery for oidc_end_session */
	char *after, *id_token; /* oidc_end_session's, malloc'd */
	char next[OIDC_NEXT_MAX + 1];
	char verifier[RANDOM_TEXT];
	char nonce[RANDOM_TEXT];
	char redirect_uri[URL_MAX];
	char *code;
	/* the answer */
	int status; /* 200, or 4xx/5xx with problem */
	char problem[300];
	struct oidc_identity id;
};

/* Records why c failed (c->problem, c->status) and returns -1. Any thread. */
int oidc_fail(struct oidc_call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- oidc_provider.c: the thread's side ---------------------------------- */

/* GETs url (or POSTs form when not NULL, with Basic client credentials
 * when the client has a secret) and parses the answer as a JSON object.
 * Returns it (the caller decrefs it) with *status the HTTP status, or
 * NULL with c->problem set. The thread only. */
json_t *oidc_fetch_json(struct oidc *o, const char *url, const char *form, long *status,
                        struct oidc_call *c);
/* obj's string member key, or NULL. */
const char *oidc_json_text(const json_t *obj, const char *key);
/* The provider's key named kid into *k: when it is not known, the keys are
 * fetched again first (a rotation), at most every KEYS_REFETCH_MS; *k is
 * NULL when it is still unknown. -1 with c->problem when that fetch
 * failed. The thread only. */
int oidc_key_lookup(struct oidc *o, const char *kid, struct oidc_call *c, const struct key **k);
/* request_job_submit_to's submit: queues job for the thread, or refuses it
 * at once (503) when OIDC_QUEUE_MAX are queued or the thread is stopping. */
void oidc_submit(void *ctx, struct engine_job *job);

/* --- oidc.c: the sign-in's side ------------------------------------------ */

/* The thread: c->code for an ID token, verified; fills c->id. 0, or -1
 * with c->problem. */
int oidc_exchange(struct oidc *o, struct oidc_call *c);

#endif
