/*
 * oidc.c - OpenID Connect sign-in against one provider (oidc.h has the
 * contract).
 *
 * Map of this file:
 *
 *   the thread   one thread of its own makes every call to the provider
 *                (libcurl, bounded in time and size), from a queue of at
 *                most OIDC_QUEUE_MAX jobs; a full queue refuses at once.
 *                A job comes back to its worker through request.c's
 *                pending_job (request_job_submit_to).
 *   discovery    .well-known/openid-configuration, once: its issuer must
 *                be the configured one, its endpoints https (http only
 *                on a loopback issuer). Retried at the next sign-in when
 *                it failed.
 *   keys         the provider's JWKS, asymmetric signing keys only, by
 *                kid; an ID token with a kid not known is the sign of a
 *                rotation: the keys are fetched again (at most every
 *                KEYS_REFETCH_MS), and an unknown kid is then refused.
 *   pending      sign-ins started: state -> (binding cookie, PKCE
 *                verifier, nonce, next, redirect URI), each used once,
 *                OIDC_PENDING_TTL_MS at most, OIDC_PENDING_MAX in all and
 *                OIDC_PENDING_PER_ADDRESS per client address.
 *   verification cjose verifies the signature (RS*, PS*, ES* only: "none"
 *                and the HMAC algorithms are refused whatever the header
 *                says, since the provider's keys are asymmetric); then
 *                iss, aud (and azp when there are several audiences or
 *                an azp at all), exp and iat with OIDC_LEEWAY_S, and the
 *                nonce of the pending sign-in.
 *
 * Random values (state, binding, nonce, verifier) are 32 bytes from
 * libsodium, base64url; the PKCE challenge is SHA-256 of the verifier
 * (libsodium crypto_hash_sha256). The pending table stores the BLAKE2b
 * of the state and of the binding, never the values themselves.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjose/cjose.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "oidc.h"

#define RANDOM_TEXT 44 /* base64url of 32 bytes, with its NUL */
#define FETCH_MAX (1024 * 1024)
#define FETCH_TIMEOUT_MS 5000
#define FETCH_CONNECT_TIMEOUT_MS 3000
#define KEYS_MAX 32
#define KEYS_REFETCH_MS 2000
#define URL_MAX 2048
#define IAT_MAX_AGE_S 600 /* an ID token just issued, not an old one */

/* --- the provider's metadata and keys (the thread's, but for meta) ---- */

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
};

struct oidc {
	/* options, fixed after oidc_new */
	char *issuer, *client_id, *client_secret, *scopes, *groups_claim, *redirect_url, *ca_file;
	int is_pkce, is_only, is_loopback_issuer;
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
	oidc_begun_fn begun; /* a discovery for oidc_begin */
	oidc_done_fn done;   /* an exchange for oidc_finish */
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

static void
call_free(void *data)
{
	struct oidc_call *c = data;

	free(c->code);
	free(c->id.groups);
	sodium_memzero(c->verifier, sizeof(c->verifier));
}

static int fail(struct oidc_call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(struct oidc_call *c, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->problem, sizeof(c->problem), fmt, ap);
	va_end(ap);
	c->status = status;
	return -1;
}

/* --- small helpers ------------------------------------------------------- */

static void
random_text(char out[RANDOM_TEXT])
{
	unsigned char bytes[32];

	randombytes_buf(bytes, sizeof(bytes));
	sodium_bin2base64(out, RANDOM_TEXT, bytes, sizeof(bytes),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(bytes, sizeof(bytes));
}

static void
hash_text(const char *text, unsigned char out[32])
{
	crypto_generichash(out, 32, (const unsigned char *)text, strlen(text), NULL, 0);
}

/* Is url's host a loopback name or address? */
static int
url_is_loopback(const char *url)
{
	CURLU *u = curl_url();
	char *host = NULL;
	int is_loopback = 0;

	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		is_loopback = strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
		              strcmp(host, "[::1]") == 0;
	curl_free(host);
	curl_url_cleanup(u);
	return is_loopback;
}

/* May the daemon talk to this endpoint? https, or http on a loopback
 * issuer (a provider on this host, as in tests). */
static int
url_is_allowed(const struct oidc *o, const char *url)
{
	if (strncmp(url, "https://", 8) == 0)
		return strlen(url) < URL_MAX;
	return o->is_loopback_issuer && strncmp(url, "http://", 7) == 0 && url_is_loopback(url) &&
	       strlen(url) < URL_MAX;
}

/* --- fetching (the thread) ------------------------------------------------ */

struct body {
	char *data;
	size_t len;
	int is_too_large;
};

static size_t
body_write(char *p, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = size * n;

	if (b->len + len > FETCH_MAX) {
		b->is_too_large = 1;
		return 0;
	}
	b->data = xreallocarray(b->data, b->len + len + 1, 1);
	memcpy(b->data + b->len, p, len);
	b->len += len;
	b->data[b->len] = '\0';
	return len;
}

/* GETs url (or POSTs form when not NULL, with Basic client credentials
 * when the client has a secret) and parses the answer as a JSON object.
 * Returns it (the caller decrefs it) with *status the HTTP status, or
 * NULL with c->problem set. */
static json_t *
fetch_json(struct oidc *o, const char *url, const char *form, long *status, struct oidc_call *c)
{
	CURL *h = curl_easy_init();
	struct body b = {0};
	struct curl_slist *headers = NULL;
	json_t *j = NULL;
	json_error_t jerr;
	CURLcode rc;

	if (h == NULL) {
		fail(c, 503, "cannot reach the identity provider: out of resources");
		return NULL;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)FETCH_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)FETCH_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "clustermgmt");
	if (o->ca_file != NULL)
		curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
	headers = curl_slist_append(headers, "Accept: application/json");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	if (form != NULL) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
		if (o->client_secret != NULL) {
			/* RFC 6749 2.3.1: both form-urlencoded inside Basic */
			char *id = curl_easy_escape(h, o->client_id, 0);
			char *secret = curl_easy_escape(h, o->client_secret, 0);
			curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
			curl_easy_setopt(h, CURLOPT_USERNAME, id);
			curl_easy_setopt(h, CURLOPT_PASSWORD, secret);
			curl_free(id);
			curl_free(secret);
		}
	}
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (rc != CURLE_OK) {
		fail(c, 503, "cannot reach the identity provider (%s): %s", url,
		     b.is_too_large ? "its answer is larger than 1 MiB" : curl_easy_strerror(rc));
	} else if ((j = json_loadb(b.data ? b.data : "", b.len, 0, &jerr)) == NULL ||
	           !json_is_object(j)) {
		json_decref(j);
		j = NULL;
		fail(c, 503,
		     "the identity provider's answer from %s is not a JSON object (HTTP %ld)", url,
		     *status);
	}
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	if (b.data != NULL)
		sodium_memzero(b.data, b.len);
	free(b.data);
	return j;
}

static const char *
json_text(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* --- discovery and keys (the thread) -------------------------------------- */

static int
discover(struct oidc *o, struct oidc_call *c)
{
	char url[URL_MAX];
	const char *issuer, *authz, *token, *jwks, *end;
	json_t *d;
	long status = 0;
	size_t len = strlen(o->issuer);

	if (o->is_discovered)
		return 0;
	snprintf(url, sizeof(url), "%.*s/.well-known/openid-configuration",
	         (int)(len > 0 && o->issuer[len - 1] == '/' ? len - 1 : len), o->issuer);
	if ((d = fetch_json(o, url, NULL, &status, c)) == NULL)
		goto bad;
	issuer = json_text(d, "issuer");
	authz = json_text(d, "authorization_endpoint");
	token = json_text(d, "token_endpoint");
	jwks = json_text(d, "jwks_uri");
	end = json_text(d, "end_session_endpoint");
	if (status != 200 || issuer == NULL || strcmp(issuer, o->issuer) != 0) {
		fail(c, 503,
		     "the identity provider's discovery document (%s, HTTP %ld) names issuer "
		     "'%.200s', not '%s'",
		     url, status, issuer ? issuer : "(none)", o->issuer);
		goto bad;
	}
	if (authz == NULL || token == NULL || jwks == NULL || !url_is_allowed(o, authz) ||
	    !url_is_allowed(o, token) || !url_is_allowed(o, jwks) ||
	    (end != NULL && !url_is_allowed(o, end))) {
		fail(c, 503,
		     "the identity provider's discovery document lacks an endpoint, or names one "
		     "that is not https");
		goto bad;
	}
	pthread_mutex_lock(&o->meta_lock);
	o->authorization_endpoint = xstrdup(authz);
	o->token_endpoint = xstrdup(token);
	o->jwks_uri = xstrdup(jwks);
	o->end_session_endpoint = end != NULL ? xstrdup(end) : NULL;
	o->is_discovered = 1;
	pthread_mutex_unlock(&o->meta_lock);
	log_kv(LOG_INFO, "identity provider discovered", "issuer", o->issuer, "end_session",
	       end != NULL ? "yes" : "no", NULL);
	json_decref(d);
	return 0;
bad:
	log_kv(LOG_WARN, "identity provider discovery failed", "issuer", o->issuer, "problem",
	       c->problem, NULL);
	json_decref(d);
	return -1;
}

static void
keys_clear(struct oidc *o)
{
	size_t i;

	for (i = 0; i < o->n_keys; i++) {
		free(o->keys[i].kid);
		free(o->keys[i].alg);
		cjose_jwk_release(o->keys[i].jwk);
	}
	o->n_keys = 0;
}

/* Fetches the JWKS and keeps its asymmetric signing keys. */
static int
keys_fetch(struct oidc *o, struct oidc_call *c)
{
	json_t *set, *keys, *k;
	long status = 0;
	size_t i;

	o->keys_fetched_at = time_now_ms();
	if ((set = fetch_json(o, o->jwks_uri, NULL, &status, c)) == NULL)
		return -1;
	keys = json_object_get(set, "keys");
	if (status != 200 || !json_is_array(keys)) {
		json_decref(set);
		return fail(c, 503, "the identity provider's keys (%s, HTTP %ld) are not a JWKS",
		            o->jwks_uri, status);
	}
	keys_clear(o);
	json_array_foreach(keys, i, k)
	{
		const char *kty = json_text(k, "kty"), *use = json_text(k, "use");
		cjose_err cerr;
		cjose_jwk_t *jwk;

		if (o->n_keys == KEYS_MAX)
			break;
		if (kty == NULL || (strcmp(kty, "RSA") != 0 && strcmp(kty, "EC") != 0) ||
		    (use != NULL && strcmp(use, "sig") != 0))
			continue; /* symmetric or encryption keys sign nothing we accept */
		if ((jwk = cjose_jwk_import_json((cjose_header_t *)k, &cerr)) == NULL)
			continue;
		o->keys[o->n_keys].jwk = jwk;
		o->keys[o->n_keys].kty = cjose_jwk_get_kty(jwk, &cerr);
		o->keys[o->n_keys].kid = xstrdup(json_text(k, "kid") ? json_text(k, "kid") : "");
		o->keys[o->n_keys].alg = json_text(k, "alg") ? xstrdup(json_text(k, "alg")) : NULL;
		o->n_keys++;
	}
	json_decref(set);
	log_kv(LOG_INFO, "identity provider keys fetched", "issuer", o->issuer, "keys",
	       o->n_keys == 0 ? "none" : "some", NULL);
	return 0;
}

static const struct key *
key_find(const struct oidc *o, const char *kid)
{
	size_t i;

	for (i = 0; i < o->n_keys; i++)
		if (strcmp(o->keys[i].kid, kid) == 0)
			return &o->keys[i];
	return NULL;
}

/* --- verification (the thread) --------------------------------------------- */

/* The key type an algorithm needs, or -1 for one we refuse ("none",
 * HS256, anything unknown). */
static int
alg_kty(const char *alg)
{
	static const char *const rsa[] = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"};
	static const char *const ec[] = {"ES256", "ES384", "ES512"};
	size_t i;

	for (i = 0; i < sizeof(rsa) / sizeof(rsa[0]); i++)
		if (strcmp(alg, rsa[i]) == 0)
			return CJOSE_JWK_KTY_RSA;
	for (i = 0; i < sizeof(ec) / sizeof(ec[0]); i++)
		if (strcmp(alg, ec[i]) == 0)
			return CJOSE_JWK_KTY_EC;
	return -1;
}

static int
audience_has(const json_t *aud, const char *client_id, size_t *n)
{
	size_t i;
	json_t *v;
	int has = 0;

	*n = 0;
	if (json_is_string(aud)) {
		*n = 1;
		return strcmp(json_string_value(aud), client_id) == 0;
	}
	if (!json_is_array(aud))
		return 0;
	json_array_foreach(aud, i, v)
	{
		(*n)++;
		if (json_is_string(v) && strcmp(json_string_value(v), client_id) == 0)
			has = 1;
	}
	return has;
}

/* Copies the groups claim ("\n"-joined; a string counts as one group). */
static char *
groups_of(const json_t *claims, const char *claim)
{
	const json_t *g = json_object_get(claims, claim), *v;
	size_t i, len = 0, n = 0;
	char *out = xcalloc(1, 1);

	if (json_is_string(g)) {
		free(out);
		return strchr(json_string_value(g), '\n') ? xcalloc(1, 1)
		                                          : xstrdup(json_string_value(g));
	}
	if (!json_is_array(g))
		return out;
	json_array_foreach(g, i, v)
	{
		const char *s = json_string_value(v);
		size_t l;
		if (s == NULL || (l = strlen(s)) == 0 || l > 255 || strchr(s, '\n') != NULL)
			continue;
		if (n++ == OIDC_GROUPS_MAX)
			break;
		out = xreallocarray(out, len + l + 2, 1);
		if (len > 0)
			out[len++] = '\n';
		memcpy(out + len, s, l + 1);
		len += l;
	}
	return out;
}

/* A display name: the claim as given, or its first NODE_NAME_MAX bytes;
 * control characters become '?'. */
static void
name_copy(char *dst, size_t size, const char *src)
{
	size_t i;

	snprintf(dst, size, "%s", src);
	for (i = 0; dst[i] != '\0'; i++)
		if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
			dst[i] = '?';
}

static int
verify_claims(struct oidc *o, struct oidc_call *c, const json_t *claims)
{
	const char *iss = json_text(claims, "iss"), *sub = json_text(claims, "sub");
	const char *azp = json_text(claims, "azp"), *nonce = json_text(claims, "nonce");
	const char *name;
	json_t *exp = json_object_get(claims, "exp"), *iat = json_object_get(claims, "iat");
	int64_t now = time_now_ms() / 1000;
	size_t n_aud;

	if (iss == NULL || strcmp(iss, o->issuer) != 0)
		return fail(c, 401, "the ID token was issued by '%.200s', not by '%s'",
		            iss ? iss : "(nobody)", o->issuer);
	if (!audience_has(json_object_get(claims, "aud"), o->client_id, &n_aud))
		return fail(c, 401,
		            "the ID token is not meant for this client ('%s' is not in aud)",
		            o->client_id);
	if ((n_aud > 1 || azp != NULL) && (azp == NULL || strcmp(azp, o->client_id) != 0))
		return fail(c, 401, "the ID token was issued to another party (azp)");
	if (!json_is_integer(exp) && !json_is_real(exp))
		return fail(c, 401, "the ID token has no expiry (exp)");
	if ((int64_t)json_number_value(exp) + OIDC_LEEWAY_S < now)
		return fail(c, 401, "the ID token has expired");
	if (!json_is_integer(iat) && !json_is_real(iat))
		return fail(c, 401, "the ID token has no issue time (iat)");
	if ((int64_t)json_number_value(iat) > now + OIDC_LEEWAY_S ||
	    (int64_t)json_number_value(iat) < now - IAT_MAX_AGE_S - OIDC_LEEWAY_S)
		return fail(c, 401, "the ID token's issue time (iat) is not now");
	if (nonce == NULL || strlen(nonce) != strlen(c->nonce) ||
	    sodium_memcmp(nonce, c->nonce, strlen(c->nonce)) != 0)
		return fail(c, 401, "the ID token's nonce is not the one this sign-in sent");
	if (sub == NULL || sub[0] == '\0' || strlen(sub) >= sizeof(c->id.subject))
		return fail(c, 401, "the ID token has no usable subject (sub)");
	snprintf(c->id.subject, sizeof(c->id.subject), "%s", sub);
	name = json_text(claims, "preferred_username");
	if (name == NULL || name[0] == '\0')
		name = json_text(claims, "email");
	if (name == NULL || name[0] == '\0')
		name = sub;
	name_copy(c->id.name, sizeof(c->id.name), name);
	if (json_is_true(json_object_get(claims, "email_verified")) &&
	    json_text(claims, "email") != NULL && strlen(json_text(claims, "email")) < 256)
		snprintf(c->id.email, sizeof(c->id.email), "%s", json_text(claims, "email"));
	c->id.groups = groups_of(claims, o->groups_claim);
	return 0;
}

static int
verify_id_token(struct oidc *o, struct oidc_call *c, const char *token)
{
	cjose_err cerr;
	cjose_jws_t *jws = cjose_jws_import(token, strlen(token), &cerr);
	cjose_header_t *header;
	const char *alg, *kid;
	const struct key *k;
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	json_t *claims = NULL;
	int kty, rc = -1;

	if (jws == NULL)
		return fail(c, 401, "the identity provider's ID token is not a signed JWT");
	header = cjose_jws_get_protected(jws);
	alg = cjose_header_get(header, CJOSE_HDR_ALG, &cerr);
	kid = cjose_header_get(header, CJOSE_HDR_KID, &cerr);
	if (alg == NULL || (kty = alg_kty(alg)) < 0) {
		fail(c, 401,
		     "the ID token is signed with '%.40s'; only RS*, PS* and ES* are accepted",
		     alg ? alg : "(no alg)");
		goto done;
	}
	if (kid == NULL)
		kid = "";
	k = key_find(o, kid);
	if (k == NULL && time_now_ms() - o->keys_fetched_at >= KEYS_REFETCH_MS) {
		if (keys_fetch(o, c) != 0)
			goto done;
		k = key_find(o, kid);
	}
	if (k == NULL) {
		fail(
		    c, 401,
		    "the ID token is signed with a key the provider does not publish (kid '%.80s')",
		    kid);
		goto done;
	}
	if ((int)k->kty != kty || (k->alg != NULL && strcmp(k->alg, alg) != 0)) {
		fail(c, 401, "the ID token's algorithm %s does not go with its key", alg);
		goto done;
	}
	if (!cjose_jws_verify(jws, k->jwk, &cerr)) {
		fail(c, 401, "the ID token's signature is not valid");
		goto done;
	}
	if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &cerr) ||
	    (claims = json_loadb((const char *)plain, plain_len, 0, NULL)) == NULL ||
	    !json_is_object(claims)) {
		fail(c, 401, "the ID token's claims are not a JSON object");
		goto done;
	}
	rc = verify_claims(o, c, claims);
done:
	json_decref(claims);
	cjose_jws_release(jws);
	return rc;
}

/* The code for an ID token, verified. */
static int
exchange(struct oidc *o, struct oidc_call *c)
{
	CURL *h = curl_easy_init();
	char *form = NULL, *code = NULL, *redirect = NULL, *id = NULL;
	const char *token, *error, *description;
	json_t *answer;
	long status = 0;
	size_t size;
	int rc = -1;

	if (h == NULL)
		return fail(c, 503, "out of resources");
	code = curl_easy_escape(h, c->code, 0);
	redirect = curl_easy_escape(h, c->redirect_uri, 0);
	id = curl_easy_escape(h, o->client_id, 0);
	size = strlen(code) + strlen(redirect) + strlen(id) + 200;
	form = xmalloc(size);
	snprintf(form, size,
	         "grant_type=authorization_code&code=%s&redirect_uri=%s&client_id=%s%s%s", code,
	         redirect, id, o->is_pkce ? "&code_verifier=" : "", o->is_pkce ? c->verifier : "");
	curl_free(code);
	curl_free(redirect);
	curl_free(id);
	curl_easy_cleanup(h);
	answer = fetch_json(o, o->token_endpoint, form, &status, c);
	sodium_memzero(form, strlen(form));
	free(form);
	if (answer == NULL)
		return -1;
	token = json_text(answer, "id_token");
	error = json_text(answer, "error");
	description = json_text(answer, "error_description");
	if (status != 200 || token == NULL)
		fail(c, 401, "the identity provider refused the sign-in: %.80s%s%.160s%s",
		     error ? error : "no ID token in its answer", description ? " (" : "",
		     description ? description : "", description ? ")" : "");
	else
		rc = verify_id_token(o, c, token);
	json_decref(answer);
	return rc;
}

/* --- the thread ---------------------------------------------------------- */

static void
call_run(struct oidc *o, struct engine_job *job)
{
	struct oidc_call *c = job->data;

	c->status = 200;
	if (discover(o, c) != 0)
		return;
	if (c->done != NULL && exchange(o, c) != 0)
		log_kv(LOG_WARN, "sign-in failed", "method", "oidc", "issuer", o->issuer, "from",
		       job->who_address, "problem", c->problem, NULL);
}

static void *
thread_main(void *arg)
{
	struct oidc *o = arg;

	for (;;) {
		struct engine_job *job;
		int is_stopping;

		pthread_mutex_lock(&o->queue_lock);
		while (o->head == NULL && !o->is_stopping)
			pthread_cond_wait(&o->queue_cond, &o->queue_lock);
		if (o->head == NULL) {
			pthread_mutex_unlock(&o->queue_lock);
			break;
		}
		job = o->head;
		o->head = job->next;
		if (o->head == NULL)
			o->tail = NULL;
		is_stopping = o->is_stopping;
		pthread_mutex_unlock(&o->queue_lock);
		if (is_stopping) {
			job->rc = -1;
			fail(job->data, 503, "the daemon is stopping; try again shortly");
		} else {
			call_run(o, job);
		}
		pthread_mutex_lock(&o->queue_lock);
		o->n_queued--;
		pthread_mutex_unlock(&o->queue_lock);
		job->done(job); /* the last touch */
	}
	return NULL;
}

/* request_job_submit_to's submit: queues, or refuses when full. */
static void
submit(void *ctx, struct engine_job *job)
{
	struct oidc *o = ctx;
	int is_full;

	pthread_mutex_lock(&o->queue_lock);
	is_full = o->n_queued >= OIDC_QUEUE_MAX || o->is_stopping;
	if (!is_full) {
		o->n_queued++;
		job->next = NULL;
		if (o->tail != NULL)
			o->tail->next = job;
		else
			o->head = job;
		o->tail = job;
		pthread_cond_signal(&o->queue_cond);
	}
	pthread_mutex_unlock(&o->queue_lock);
	if (is_full) {
		fail(job->data, 503,
		     "too many sign-ins are waiting for the identity provider; try again shortly");
		job->done(job);
	}
}

/* --- pending sign-ins ---------------------------------------------------- */

/* Takes a slot for a new sign-in from address: a free or expired one,
 * unless address holds OIDC_PENDING_PER_ADDRESS live ones. Caller holds
 * the lock. */
static struct pending *
pending_take(struct oidc *o, const char *address, int64_t now)
{
	struct pending *free_slot = NULL;
	size_t i;
	int n = 0;

	for (i = 0; i < OIDC_PENDING_MAX; i++) {
		struct pending *p = &o->pending[i];
		if (p->expires_at <= now) {
			if (free_slot == NULL)
				free_slot = p;
		} else if (strcmp(p->address, address) == 0) {
			n++;
		}
	}
	return n >= OIDC_PENDING_PER_ADDRESS ? NULL : free_slot;
}

/* --- the worker's side --------------------------------------------------- */

static int
redirect_uri_of(struct oidc *o, struct request *r, char *out, size_t size)
{
	if (o->redirect_url != NULL)
		return snprintf(out, size, "%s", o->redirect_url) < (int)size ? 0 : -1;
	if (r->req->authority.len == 0 || r->req->authority.len > 255 ||
	    memchr(r->req->authority.base, '/', r->req->authority.len) != NULL)
		return -1;
	snprintf(out, size, "%s://%.*s%s", request_is_https(r) ? "https" : "http",
	         (int)r->req->authority.len, r->req->authority.base, OIDC_CALLBACK_PATH);
	return 0;
}

/* Discovered: the authorization URL of a new pending sign-in. */
static void
begin_discovered(struct oidc *o, struct request *r, const char *next, oidc_begun_fn then)
{
	char state[RANDOM_TEXT], binding[RANDOM_TEXT], challenge[RANDOM_TEXT], redirect[URL_MAX];
	unsigned char digest[crypto_hash_sha256_BYTES];
	char *url = NULL, *e_client, *e_redirect, *e_scope;
	struct pending *p;
	int64_t now = time_now_ms();
	size_t size;

	if (redirect_uri_of(o, r, redirect, sizeof(redirect)) != 0) {
		then(r, 400, NULL, NULL, "The request names no usable host to come back to.");
		return;
	}
	random_text(state);
	random_text(binding);
	pthread_mutex_lock(&o->pending_lock);
	if ((p = pending_take(o, r->address, now)) != NULL) {
		memset(p, 0, sizeof(*p));
		hash_text(state, p->state_hash);
		hash_text(binding, p->binding_hash);
		random_text(p->verifier);
		random_text(p->nonce);
		snprintf(p->next, sizeof(p->next), "%s", next);
		snprintf(p->redirect_uri, sizeof(p->redirect_uri), "%s", redirect);
		snprintf(p->address, sizeof(p->address), "%s", r->address);
		p->expires_at = now + OIDC_PENDING_TTL_MS;
		crypto_hash_sha256(digest, (const unsigned char *)p->verifier, strlen(p->verifier));
		sodium_bin2base64(challenge, sizeof(challenge), digest, sizeof(digest),
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
	if (p == NULL) {
		pthread_mutex_unlock(&o->pending_lock);
		log_kv(LOG_WARN, "sign-in refused: too many started and not finished", "method",
		       "oidc", "from", r->address, NULL);
		then(r, 503, NULL, NULL,
		     "Too many sign-ins were started from here and not finished; try again in a "
		     "few minutes.");
		return;
	}
	e_client = curl_easy_escape(NULL, o->client_id, 0);
	e_redirect = curl_easy_escape(NULL, redirect, 0);
	e_scope = curl_easy_escape(NULL, o->scopes, 0);
	pthread_mutex_lock(&o->meta_lock);
	size = strlen(o->authorization_endpoint) + strlen(e_client) + strlen(e_redirect) +
	       strlen(e_scope) + 400;
	url = xmalloc(size);
	snprintf(
	    url, size,
	    "%s%sresponse_type=code&client_id=%s&redirect_uri=%s&scope=%s&state=%s&nonce=%s%s%s%s",
	    o->authorization_endpoint, strchr(o->authorization_endpoint, '?') ? "&" : "?", e_client,
	    e_redirect, e_scope, state, p->nonce, o->is_pkce ? "&code_challenge=" : "",
	    o->is_pkce ? challenge : "", o->is_pkce ? "&code_challenge_method=S256" : "");
	pthread_mutex_unlock(&o->meta_lock);
	pthread_mutex_unlock(&o->pending_lock);
	curl_free(e_client);
	curl_free(e_redirect);
	curl_free(e_scope);
	then(r, 302, url, binding, NULL);
	free(url);
	sodium_memzero(binding, sizeof(binding));
}

static void
begin_after_discovery(struct request *r, struct engine_job *job)
{
	struct oidc_call *c = job->data;

	if (c->status != 200)
		c->begun(r, 503, NULL, NULL,
		         "The identity provider cannot be reached right now; try again shortly, "
		         "or ask an administrator.");
	else
		begin_discovered(c->o, r, c->next, c->begun);
}

void
oidc_begin(struct oidc *o, struct request *r, const char *next, oidc_begun_fn then)
{
	struct engine_job *job;
	struct oidc_call *c;
	int is_discovered;

	pthread_mutex_lock(&o->meta_lock);
	is_discovered = o->is_discovered;
	pthread_mutex_unlock(&o->meta_lock);
	if (is_discovered) {
		begin_discovered(o, r, next, then);
		return;
	}
	job = request_job_new(r, NULL, sizeof(*c));
	c = job->data;
	c->o = o;
	c->begun = then;
	snprintf(c->next, sizeof(c->next), "%s", next);
	job->free_data = call_free;
	request_job_submit_to(r, job, begin_after_discovery, submit, o);
}

static void
finish_exchanged(struct request *r, struct engine_job *job)
{
	struct oidc_call *c = job->data;

	if (c->status != 200)
		c->done(r, c->status, NULL, c->next,
		        c->status == 503 ? "The identity provider cannot be reached right now; try "
		                           "again shortly."
		                         : c->problem);
	else
		c->done(r, 200, &c->id, c->next, NULL);
}

void
oidc_finish(struct oidc *o, struct request *r, const char *state, const char *binding,
            const char *code, oidc_done_fn then)
{
	unsigned char state_hash[32], binding_hash[32];
	struct engine_job *job;
	struct oidc_call *c;
	struct pending *p = NULL;
	int64_t now = time_now_ms();
	size_t i;

	if (state == NULL || binding == NULL || strlen(state) > 200 || strlen(binding) > 200) {
		then(r, 400, NULL, "/",
		     "This sign-in was not started here, or in another browser.");
		return;
	}
	hash_text(state, state_hash);
	hash_text(binding, binding_hash);
	job = request_job_new(r, NULL, sizeof(*c));
	c = job->data;
	job->free_data = call_free;
	pthread_mutex_lock(&o->pending_lock);
	for (i = 0; i < OIDC_PENDING_MAX && p == NULL; i++)
		if (o->pending[i].expires_at > now &&
		    sodium_memcmp(o->pending[i].state_hash, state_hash, 32) == 0)
			p = &o->pending[i];
	if (p != NULL && sodium_memcmp(p->binding_hash, binding_hash, 32) == 0) {
		snprintf(c->verifier, sizeof(c->verifier), "%s", p->verifier);
		snprintf(c->nonce, sizeof(c->nonce), "%s", p->nonce);
		snprintf(c->next, sizeof(c->next), "%s", p->next);
		snprintf(c->redirect_uri, sizeof(c->redirect_uri), "%s", p->redirect_uri);
	} else {
		p = NULL;
	}
	if (p != NULL) /* used once, whatever comes of it */
		sodium_memzero(p, sizeof(*p));
	pthread_mutex_unlock(&o->pending_lock);
	if (p == NULL || code == NULL || code[0] == '\0' || strlen(code) > 4096) {
		log_kv(LOG_WARN, "sign-in failed", "method", "oidc", "from", r->address, "problem",
		       p == NULL ? "unknown, used or expired state, or another browser's"
		                 : "no code",
		       NULL);
		engine_job_release(job);
		free(job);
		then(r, 400, NULL, "/",
		     "This sign-in was not started here, was already used, has expired, or "
		     "was started in another browser. Start again.");
		return;
	}
	c->o = o;
	c->done = then;
	c->code = xstrdup(code);
	request_job_submit_to(r, job, finish_exchanged, submit, o);
}

char *
oidc_end_session_url(struct oidc *o, const char *after)
{
	char *url = NULL, *e_client, *e_after;
	size_t size;

	e_client = curl_easy_escape(NULL, o->client_id, 0);
	e_after = curl_easy_escape(NULL, after, 0);
	pthread_mutex_lock(&o->meta_lock);
	if (o->end_session_endpoint != NULL) {
		size = strlen(o->end_session_endpoint) + strlen(e_client) + strlen(e_after) + 64;
		url = xmalloc(size);
		snprintf(url, size, "%s%sclient_id=%s&post_logout_redirect_uri=%s",
		         o->end_session_endpoint, strchr(o->end_session_endpoint, '?') ? "&" : "?",
		         e_client, e_after);
	}
	pthread_mutex_unlock(&o->meta_lock);
	curl_free(e_client);
	curl_free(e_after);
	return url;
}

const char *
oidc_label(const struct oidc *o)
{
	return o->label;
}

const char *
oidc_issuer(const struct oidc *o)
{
	return o->issuer;
}

int
oidc_is_only(const struct oidc *o)
{
	return o->is_only;
}

/* --- life ---------------------------------------------------------------- */

static char *
read_secret(const char *path, struct error *err)
{
	FILE *f = fopen(path, "r");
	char buf[1024];

	if (f == NULL) {
		error_set(err, 400, "cannot read --oidc-client-secret-file %s: %m", path);
		return NULL;
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0' || strlen(buf) >= sizeof(buf) - 1) {
		sodium_memzero(buf, sizeof(buf));
		error_set(err, 400, "the client secret in %s is empty or longer than 1022 bytes",
		          path);
		return NULL;
	}
	return xstrdup(buf);
}

struct oidc *
oidc_new(const struct oidc_options *opts, struct error *err)
{
	struct oidc *o;
	CURLU *u;
	char *host = NULL;

	if (opts->client_id == NULL || opts->client_id[0] == '\0' ||
	    strlen(opts->client_id) > 255) {
		error_set(err, 400, "--oidc-issuer needs --oidc-client-id (1 to 255 bytes)");
		return NULL;
	}
	o = xcalloc(1, sizeof(*o));
	pthread_mutex_init(&o->meta_lock, NULL);
	pthread_mutex_init(&o->queue_lock, NULL);
	pthread_cond_init(&o->queue_cond, NULL);
	pthread_mutex_init(&o->pending_lock, NULL);
	o->issuer = xstrdup(opts->issuer);
	o->client_id = xstrdup(opts->client_id);
	o->scopes = xstrdup(opts->scopes != NULL ? opts->scopes : "openid profile email");
	o->groups_claim = xstrdup(opts->groups_claim != NULL ? opts->groups_claim : "groups");
	o->redirect_url = opts->redirect_url != NULL ? xstrdup(opts->redirect_url) : NULL;
	o->ca_file = opts->ca_file != NULL ? xstrdup(opts->ca_file) : NULL;
	o->is_pkce = !opts->is_pkce_off;
	o->is_only = opts->is_only;
	o->is_loopback_issuer = url_is_loopback(o->issuer);
	if (strlen(o->issuer) >= URL_MAX - 64 ||
	    (strncmp(o->issuer, "https://", 8) != 0 &&
	     !(o->is_loopback_issuer && strncmp(o->issuer, "http://", 7) == 0))) {
		error_set(err, 400,
		          "--oidc-issuer %s: must be an https:// URL (http:// only on this host)",
		          o->issuer);
		goto bad;
	}
	if (strstr(o->scopes, "openid") == NULL) {
		error_set(err, 400, "--oidc-scopes must include openid");
		goto bad;
	}
	if (o->redirect_url != NULL && !(strncmp(o->redirect_url, "https://", 8) == 0 ||
	                                 strncmp(o->redirect_url, "http://", 7) == 0)) {
		error_set(err, 400, "--oidc-redirect-url must be an http(s):// URL ending in %s",
		          OIDC_CALLBACK_PATH);
		goto bad;
	}
	if (opts->client_secret_file != NULL &&
	    (o->client_secret = read_secret(opts->client_secret_file, err)) == NULL)
		goto bad;
	u = curl_url();
	if (curl_url_set(u, CURLUPART_URL, o->issuer, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		snprintf(o->label, sizeof(o->label), "%s", host);
	else
		snprintf(o->label, sizeof(o->label), "your identity provider");
	curl_free(host);
	curl_url_cleanup(u);
	if (pthread_create(&o->thread, NULL, thread_main, o) != 0) {
		error_set(err, 500, "cannot start the identity provider's thread");
		goto bad;
	}
	o->is_started = 1;
	return o;
bad:
	oidc_free(o);
	return NULL;
}

void
oidc_stop(struct oidc *o)
{
	if (o == NULL || !o->is_started)
		return;
	pthread_mutex_lock(&o->queue_lock);
	o->is_stopping = 1;
	pthread_cond_signal(&o->queue_cond);
	pthread_mutex_unlock(&o->queue_lock);
	pthread_join(o->thread, NULL);
	o->is_started = 0;
}

void
oidc_free(struct oidc *o)
{
	if (o == NULL)
		return;
	oidc_stop(o);
	keys_clear(o);
	free(o->issuer);
	free(o->client_id);
	if (o->client_secret != NULL)
		sodium_memzero(o->client_secret, strlen(o->client_secret));
	free(o->client_secret);
	free(o->scopes);
	free(o->groups_claim);
	free(o->redirect_url);
	free(o->ca_file);
	free(o->authorization_endpoint);
	free(o->token_endpoint);
	free(o->jwks_uri);
	free(o->end_session_endpoint);
	pthread_mutex_destroy(&o->meta_lock);
	pthread_mutex_destroy(&o->queue_lock);
	pthread_cond_destroy(&o->queue_cond);
	pthread_mutex_destroy(&o->pending_lock);
	sodium_memzero(o->pending, sizeof(o->pending));
	free(o);
}
