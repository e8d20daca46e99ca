/*
 * oidc_provider.c - the OpenID Connect client's side that talks to the
 * provider (oidc.c has the sign-in flow; oidc.h the contract).
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
 *   life         oidc_new checks the options and starts the thread;
 *                oidc_stop and oidc_free.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "oidc_internal.h"

#define FETCH_MAX (1024 * 1024)
#define FETCH_TIMEOUT_MS 5000
#define FETCH_CONNECT_TIMEOUT_MS 3000
#define KEYS_REFETCH_MS 2000

int
oidc_fail(struct oidc_call *c, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->problem, sizeof(c->problem), fmt, ap);
	va_end(ap);
	c->status = status;
	return -1;
}

/* --- small helpers ------------------------------------------------------- */

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
json_t *
oidc_fetch_json(struct oidc *o, const char *url, const char *form, long *status,
                struct oidc_call *c)
{
	CURL *h = curl_easy_init();
	struct body b = {0};
	struct curl_slist *headers = NULL;
	json_t *j = NULL;
	json_error_t jerr;
	CURLcode rc;

	if (h == NULL) {
		oidc_fail(c, 503, "cannot reach the identity provider: out of resources");
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
		oidc_fail(c, 503, "cannot reach the identity provider (%s): %s", url,
		          b.is_too_large ? "its answer is larger than 1 MiB"
		                         : curl_easy_strerror(rc));
	} else if ((j = json_loadb(b.data ? b.data : "", b.len, 0, &jerr)) == NULL ||
	           !json_is_object(j)) {
		json_decref(j);
		j = NULL;
		oidc_fail(c, 503,
		          "the identity provider's answer from %s is not a JSON object (HTTP %ld)",
		          url, *status);
	}
	curl_slist_free_all(headers);
	curl_easy_cleanup(h);
	if (b.data != NULL)
		sodium_memzero(b.data, b.len);
	free(b.data);
	return j;
}

const char *
oidc_json_text(const json_t *obj, const char *key)
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
	if ((d = oidc_fetch_json(o, url, NULL, &status, c)) == NULL)
		goto bad;
	issuer = oidc_json_text(d, "issuer");
	authz = oidc_json_text(d, "authorization_endpoint");
	token = oidc_json_text(d, "token_endpoint");
	jwks = oidc_json_text(d, "jwks_uri");
	end = oidc_json_text(d, "end_session_endpoint");
	if (status != 200 || issuer == NULL || strcmp(issuer, o->issuer) != 0) {
		oidc_fail(c, 503,
		          "the identity provider's discovery document (%s, HTTP %ld) names issuer "
		          "'%.200s', not '%s'",
		          url, status, issuer ? issuer : "(none)", o->issuer);
		goto bad;
	}
	if (authz == NULL || token == NULL || jwks == NULL || !url_is_allowed(o, authz) ||
	    !url_is_allowed(o, token) || !url_is_allowed(o, jwks) ||
	    (end != NULL && !url_is_allowed(o, end))) {
		oidc_fail(
		    c, 503,
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
	if ((set = oidc_fetch_json(o, o->jwks_uri, NULL, &status, c)) == NULL)
		return -1;
	keys = json_object_get(set, "keys");
	if (status != 200 || !json_is_array(keys)) {
		json_decref(set);
		return oidc_fail(c, 503,
		                 "the identity provider's keys (%s, HTTP %ld) are not a JWKS",
		                 o->jwks_uri, status);
	}
	keys_clear(o);
	json_array_foreach(keys, i, k)
	{
		const char *kty = oidc_json_text(k, "kty"), *use = oidc_json_text(k, "use");
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
		o->keys[o->n_keys].kid =
		    xstrdup(oidc_json_text(k, "kid") ? oidc_json_text(k, "kid") : "");
		o->keys[o->n_keys].alg =
		    oidc_json_text(k, "alg") ? xstrdup(oidc_json_text(k, "alg")) : NULL;
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

int
oidc_key_lookup(struct oidc *o, const char *kid, struct oidc_call *c, const struct key **k)
{
	*k = key_find(o, kid);
	if (*k == NULL && time_now_ms() - o->keys_fetched_at >= KEYS_REFETCH_MS) {
		if (keys_fetch(o, c) != 0)
			return -1;
		*k = key_find(o, kid);
	}
	return 0;
}

/* --- the thread ---------------------------------------------------------- */

static void
call_run(struct oidc *o, struct engine_job *job)
{
	struct oidc_call *c = job->data;

	c->status = 200;
	if (discover(o, c) != 0)
		return;
	if (c->done != NULL && oidc_exchange(o, c) != 0)
		log_kv(LOG_WARN, "identity provider exchange failed", "issuer", o->issuer, "from",
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
			oidc_fail(job->data, 503, "the daemon is stopping; try again shortly");
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
void
oidc_submit(void *ctx, struct engine_job *job)
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
		oidc_fail(
		    job->data, 503,
		    "too many sign-ins are waiting for the identity provider; try again shortly");
		job->done(job);
	}
}

/* --- life ---------------------------------------------------------------- */

/* The first line of the file given to option (1 to 1022 bytes; at least
 * min_len), malloc'd, or NULL with err. */
static char *
read_secret(const char *option, const char *path, size_t min_len, struct error *err)
{
	FILE *f = fopen(path, "r");
	char buf[1024];

	if (f == NULL) {
		error_set(err, 400, "cannot read --%s %s: %m", option, path);
		return NULL;
	}
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0' || strlen(buf) >= sizeof(buf) - 1 || strlen(buf) < min_len) {
		sodium_memzero(buf, sizeof(buf));
		error_set(err, 400, "the secret in %s (--%s) must be %zu to 1022 bytes on one line",
		          path, option, min_len > 0 ? min_len : 1);
		return NULL;
	}
	return xstrdup(buf);
}

/* The key that seals the sign-in cookie: from the state key file, else
 * from the client secret (both the same on every daemon of a site), else
 * random (a sign-in then finishes only on the daemon that started it). */
static int
state_key_setup(struct oidc *o, const char *path, struct error *err)
{
	static const unsigned char domain[crypto_generichash_KEYBYTES] =
	    "clustermgmt OIDC sign-in seal v1";
	char *secret = NULL;
	const char *from = o->client_secret;

	if (path != NULL) {
		if ((secret = read_secret("oidc-state-key-file", path, 32, err)) == NULL)
			return -1;
		from = secret;
	}
	if (from != NULL)
		crypto_generichash(o->state_key, sizeof(o->state_key), (const unsigned char *)from,
		                   strlen(from), domain, sizeof(domain));
	else
		randombytes_buf(o->state_key, sizeof(o->state_key));
	if (secret != NULL) {
		sodium_memzero(secret, strlen(secret));
		free(secret);
	}
	return 0;
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
	    (o->client_secret =
	         read_secret("oidc-client-secret-file", opts->client_secret_file, 0, err)) == NULL)
		goto bad;
	if (state_key_setup(o, opts->state_key_file, err) != 0)
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
	sodium_memzero(o->state_key, sizeof(o->state_key));
	free(o);
}
