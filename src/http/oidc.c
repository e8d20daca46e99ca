/*
 * oidc.c - OpenID Connect sign-in against one provider: the sign-in flow
 * (oidc.h has the contract; oidc_provider.c the calls to the provider,
 * its keys and its thread).
 *
 *   pending      sign-ins started: state -> (binding cookie, PKCE
 *                verifier, nonce, next, redirect URI), each used once,
 *                OIDC_PENDING_TTL_MS at most, OIDC_PENDING_MAX in all and
 *                OIDC_PENDING_PER_ADDRESS per client address; a used
 *                state stays (its hash alone) until it would have expired.
 *   the cookie   the binding cookie's value is the pending sign-in sealed
 *                with the site's key (oidc.h), so that a daemon that did
 *                not start a sign-in finishes it when the provider's
 *                redirect lands there; it then remembers the state as
 *                used. A replay on a third daemon gets past the state but
 *                not the provider, which takes a code only once.
 *   exchange     on the provider's thread: the code for an ID token.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "auth_event.h"
#include "oidc_internal.h"

#define IAT_MAX_AGE_S 600 /* an ID token just issued, not an old one */

static void
call_free(void *data)
{
	struct oidc_call *c = data;

	free(c->code);
	free(c->after);
	if (c->id_token != NULL)
		sodium_memzero(c->id_token, strlen(c->id_token));
	free(c->id_token);
	free(c->id.groups);
	if (c->id.id_token != NULL)
		sodium_memzero(c->id.id_token, strlen(c->id.id_token));
	free(c->id.id_token);
	sodium_memzero(c->verifier, sizeof(c->verifier));
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

/* --- the sealed sign-in cookie ---------------------------------------------- */

/* p sealed with the site's key: base64url of nonce and box, into out
 * (OIDC_BINDING_MAX + 1 bytes); -1 when it would be longer. */
static int
pending_seal(const struct oidc *o, const struct pending *p, const char *state,
             char out[OIDC_BINDING_MAX + 1])
{
	json_t *j =
	    json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "s", state, "v", p->verifier, "n", p->nonce,
	              "x", p->next, "r", p->redirect_uri, "e", (json_int_t)p->expires_at);
	char *plain = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	unsigned char *sealed;
	size_t len, sealed_len;
	int rc = -1;

	json_decref(j);
	if (plain == NULL)
		return -1;
	len = strlen(plain);
	sealed_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
	if (sodium_base64_ENCODED_LEN(sealed_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING) <=
	    OIDC_BINDING_MAX + 1) {
		sealed = xmalloc(sealed_len);
		randombytes_buf(sealed, crypto_secretbox_NONCEBYTES);
		crypto_secretbox_easy(sealed + crypto_secretbox_NONCEBYTES,
		                      (const unsigned char *)plain, len, sealed, o->state_key);
		sodium_bin2base64(out, OIDC_BINDING_MAX + 1, sealed, sealed_len,
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		free(sealed);
		rc = 0;
	}
	sodium_memzero(plain, len);
	free(plain);
	return rc;
}

/* Opens a cookie pending_seal made for state (on any daemon with the same
 * key) into c; -1 when it does not open, names another state, or has
 * expired. */
static int
pending_open(const struct oidc *o, const char *binding, const char *state, int64_t now,
             struct oidc_call *c)
{
	unsigned char sealed[OIDC_BINDING_MAX], plain[OIDC_BINDING_MAX];
	size_t sealed_len = 0, plain_len;
	const char *s, *v, *n, *x, *r;
	json_t *j = NULL, *e;
	int rc = -1;

	if (sodium_base642bin(sealed, sizeof(sealed), binding, strlen(binding), NULL, &sealed_len,
	                      NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    sealed_len <= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		return -1;
	plain_len = sealed_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	if (crypto_secretbox_open_easy(plain, sealed + crypto_secretbox_NONCEBYTES,
	                               sealed_len - crypto_secretbox_NONCEBYTES, sealed,
	                               o->state_key) != 0 ||
	    (j = json_loadb((const char *)plain, plain_len, 0, NULL)) == NULL)
		goto done;
	s = oidc_json_text(j, "s"), v = oidc_json_text(j, "v"), n = oidc_json_text(j, "n");
	x = oidc_json_text(j, "x"), r = oidc_json_text(j, "r"), e = json_object_get(j, "e");
	if (s == NULL || v == NULL || n == NULL || x == NULL || r == NULL || !json_is_integer(e) ||
	    strlen(s) != strlen(state) || sodium_memcmp(s, state, strlen(state)) != 0 ||
	    json_integer_value(e) <= now || strlen(v) >= sizeof(c->verifier) ||
	    strlen(n) >= sizeof(c->nonce) || strlen(x) >= sizeof(c->next) ||
	    strlen(r) >= sizeof(c->redirect_uri))
		goto done;
	snprintf(c->verifier, sizeof(c->verifier), "%s", v);
	snprintf(c->nonce, sizeof(c->nonce), "%s", n);
	snprintf(c->next, sizeof(c->next), "%s", x);
	snprintf(c->redirect_uri, sizeof(c->redirect_uri), "%s", r);
	rc = 0;
done:
	json_decref(j);
	sodium_memzero(plain, sizeof(plain));
	return rc;
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
	const char *iss = oidc_json_text(claims, "iss"), *sub = oidc_json_text(claims, "sub");
	const char *azp = oidc_json_text(claims, "azp"), *nonce = oidc_json_text(claims, "nonce");
	const char *name;
	json_t *exp = json_object_get(claims, "exp"), *iat = json_object_get(claims, "iat");
	int64_t now = time_now_ms() / 1000;
	size_t n_aud;

	if (iss == NULL || strcmp(iss, o->issuer) != 0)
		return oidc_fail(c, 401, "the ID token was issued by '%.200s', not by '%s'",
		                 iss ? iss : "(nobody)", o->issuer);
	if (!audience_has(json_object_get(claims, "aud"), o->client_id, &n_aud))
		return oidc_fail(c, 401,
		                 "the ID token is not meant for this client ('%s' is not in aud)",
		                 o->client_id);
	if ((n_aud > 1 || azp != NULL) && (azp == NULL || strcmp(azp, o->client_id) != 0))
		return oidc_fail(c, 401, "the ID token was issued to another party (azp)");
	if (!json_is_integer(exp) && !json_is_real(exp))
		return oidc_fail(c, 401, "the ID token has no expiry (exp)");
	if ((int64_t)json_number_value(exp) + OIDC_LEEWAY_S < now)
		return oidc_fail(c, 401, "the ID token has expired");
	if (!json_is_integer(iat) && !json_is_real(iat))
		return oidc_fail(c, 401, "the ID token has no issue time (iat)");
	if ((int64_t)json_number_value(iat) > now + OIDC_LEEWAY_S ||
	    (int64_t)json_number_value(iat) < now - IAT_MAX_AGE_S - OIDC_LEEWAY_S)
		return oidc_fail(c, 401, "the ID token's issue time (iat) is not now");
	if (nonce == NULL || strlen(nonce) != strlen(c->nonce) ||
	    sodium_memcmp(nonce, c->nonce, strlen(c->nonce)) != 0)
		return oidc_fail(c, 401, "the ID token's nonce is not the one this sign-in sent");
	if (sub == NULL || sub[0] == '\0' || strlen(sub) >= sizeof(c->id.subject))
		return oidc_fail(c, 401, "the ID token has no usable subject (sub)");
	snprintf(c->id.subject, sizeof(c->id.subject), "%s", sub);
	name = oidc_json_text(claims, "preferred_username");
	if (name == NULL || name[0] == '\0')
		name = oidc_json_text(claims, "email");
	if (name == NULL || name[0] == '\0')
		name = sub;
	name_copy(c->id.name, sizeof(c->id.name), name);
	if (json_is_true(json_object_get(claims, "email_verified")) &&
	    oidc_json_text(claims, "email") != NULL &&
	    strlen(oidc_json_text(claims, "email")) < 256)
		snprintf(c->id.email, sizeof(c->id.email), "%s", oidc_json_text(claims, "email"));
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
		return oidc_fail(c, 401, "the identity provider's ID token is not a signed JWT");
	header = cjose_jws_get_protected(jws);
	alg = cjose_header_get(header, CJOSE_HDR_ALG, &cerr);
	kid = cjose_header_get(header, CJOSE_HDR_KID, &cerr);
	if (alg == NULL || (kty = alg_kty(alg)) < 0) {
		oidc_fail(c, 401,
		          "the ID token is signed with '%.40s'; only RS*, PS* and ES* are accepted",
		          alg ? alg : "(no alg)");
		goto done;
	}
	if (kid == NULL)
		kid = "";
	if (oidc_key_lookup(o, kid, c, &k) != 0)
		goto done;
	if (k == NULL) {
		oidc_fail(
		    c, 401,
		    "the ID token is signed with a key the provider does not publish (kid '%.80s')",
		    kid);
		goto done;
	}
	if ((int)k->kty != kty || (k->alg != NULL && strcmp(k->alg, alg) != 0)) {
		oidc_fail(c, 401, "the ID token's algorithm %s does not go with its key", alg);
		goto done;
	}
	if (!cjose_jws_verify(jws, k->jwk, &cerr)) {
		oidc_fail(c, 401, "the ID token's signature is not valid");
		goto done;
	}
	if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &cerr) ||
	    (claims = json_loadb((const char *)plain, plain_len, 0, NULL)) == NULL ||
	    !json_is_object(claims)) {
		oidc_fail(c, 401, "the ID token's claims are not a JSON object");
		goto done;
	}
	rc = verify_claims(o, c, claims);
done:
	json_decref(claims);
	cjose_jws_release(jws);
	return rc;
}

/* The code for an ID token, verified. */
int
oidc_exchange(struct oidc *o, struct oidc_call *c)
{
	CURL *h = curl_easy_init();
	char *form = NULL, *code = NULL, *redirect = NULL, *id = NULL;
	const char *token, *error, *description;
	json_t *answer;
	long status = 0;
	size_t size;
	int rc = -1;

	if (h == NULL)
		return oidc_fail(c, 503, "out of resources");
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
	answer = oidc_fetch_json(o, o->token_endpoint, form, &status, c);
	sodium_memzero(form, strlen(form));
	free(form);
	if (answer == NULL)
		return -1;
	token = oidc_json_text(answer, "id_token");
	error = oidc_json_text(answer, "error");
	description = oidc_json_text(answer, "error_description");
	if (status != 200 || token == NULL)
		oidc_fail(c, 401, "the identity provider refused the sign-in: %.80s%s%.160s%s",
		          error ? error : "no ID token in its answer", description ? " (" : "",
		          description ? description : "", description ? ")" : "");
	else if ((rc = verify_id_token(o, c, token)) == 0)
		c->id.id_token = xstrdup(token);
	json_decref(answer);
	return rc;
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
		} else if (!p->is_used && strcmp(p->address, address) == 0) {
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
	char state[RANDOM_TEXT], binding[OIDC_BINDING_MAX + 1], challenge[RANDOM_TEXT],
	    redirect[URL_MAX];
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
	pthread_mutex_lock(&o->pending_lock);
	if ((p = pending_take(o, r->address, now)) != NULL) {
		memset(p, 0, sizeof(*p));
		hash_text(state, p->state_hash);
		random_text(p->verifier);
		random_text(p->nonce);
		snprintf(p->next, sizeof(p->next), "%s", next);
		snprintf(p->redirect_uri, sizeof(p->redirect_uri), "%s", redirect);
		snprintf(p->address, sizeof(p->address), "%s", r->address);
		p->expires_at = now + OIDC_PENDING_TTL_MS;
		if (pending_seal(o, p, state, binding) != 0)
			random_text(binding); /* too long to carry: finished here only */
		hash_text(binding, p->binding_hash);
		crypto_hash_sha256(digest, (const unsigned char *)p->verifier, strlen(p->verifier));
		sodium_bin2base64(challenge, sizeof(challenge), digest, sizeof(digest),
		                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	}
	if (p == NULL) {
		pthread_mutex_unlock(&o->pending_lock);
		auth_event(r, r->address,
		           &(struct auth_event){.kind = AUTH_EVENT_SIGNIN_FAILED,
		                                .method = "oidc",
		                                .problem = "too many started and not finished"});
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
	request_job_submit_to(r, job, begin_after_discovery, oidc_submit, o);
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

	if (state == NULL || binding == NULL || strlen(state) > 200 ||
	    strlen(binding) > OIDC_BINDING_MAX) {
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
	if (p != NULL && !p->is_used && sodium_memcmp(p->binding_hash, binding_hash, 32) == 0) {
		snprintf(c->verifier, sizeof(c->verifier), "%s", p->verifier);
		snprintf(c->nonce, sizeof(c->nonce), "%s", p->nonce);
		snprintf(c->next, sizeof(c->next), "%s", p->next);
		snprintf(c->redirect_uri, sizeof(c->redirect_uri), "%s", p->redirect_uri);
	} else if (p == NULL && pending_open(o, binding, state, now, c) == 0 &&
	           (p = pending_take(o, "", now)) != NULL) {
		/* started on another daemon: remembered here as used (a full
		 * table refuses it rather than forget that) */
		memset(p, 0, sizeof(*p));
		memcpy(p->state_hash, state_hash, 32);
		p->expires_at = now + OIDC_PENDING_TTL_MS;
	} else {
		p = NULL;
	}
	if (p != NULL) { /* used once, whatever comes of it */
		unsigned char kept[32];
		int64_t expires_at = p->expires_at;
		memcpy(kept, p->state_hash, 32);
		sodium_memzero(p, sizeof(*p));
		memcpy(p->state_hash, kept, 32);
		p->expires_at = expires_at;
		p->is_used = 1;
	}
	pthread_mutex_unlock(&o->pending_lock);
	if (p == NULL || code == NULL || code[0] == '\0' || strlen(code) > 4096) {
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
	request_job_submit_to(r, job, finish_exchanged, oidc_submit, o);
}

char *
oidc_end_session_url(struct oidc *o, const char *after, const char *id_token)
{
	char *url = NULL, *e_client, *e_after, *e_hint;
	size_t size;

	e_client = curl_easy_escape(NULL, o->client_id, 0);
	e_after = curl_easy_escape(NULL, after, 0);
	e_hint = curl_easy_escape(NULL, id_token != NULL ? id_token : "", 0);
	if (e_client == NULL || e_after == NULL || e_hint == NULL)
		abort();
	pthread_mutex_lock(&o->meta_lock);
	if (o->end_session_endpoint != NULL) {
		size = strlen(o->end_session_endpoint) + strlen(e_client) + strlen(e_after) +
		       strlen(e_hint) + 80;
		url = xmalloc(size);
		snprintf(url, size, "%s%sclient_id=%s&post_logout_redirect_uri=%s%s%s",
		         o->end_session_endpoint, strchr(o->end_session_endpoint, '?') ? "&" : "?",
		         e_client, e_after, e_hint[0] != '\0' ? "&id_token_hint=" : "", e_hint);
	}
	pthread_mutex_unlock(&o->meta_lock);
	curl_free(e_client);
	curl_free(e_after);
	curl_free(e_hint);
	return url;
}

static void
end_after_discovery(struct request *r, struct engine_job *job)
{
	struct oidc_call *c = job->data;
	char *url = c->status == 200 ? oidc_end_session_url(c->o, c->after, c->id_token) : NULL;

	c->ended(r, url);
	free(url);
}

void
oidc_end_session(struct oidc *o, struct request *r, const char *after, const char *id_token,
                 oidc_ended_fn then)
{
	struct engine_job *job;
	struct oidc_call *c;
	char *url;
	int is_discovered;

	pthread_mutex_lock(&o->meta_lock);
	is_discovered = o->is_discovered;
	pthread_mutex_unlock(&o->meta_lock);
	if (is_discovered) {
		url = oidc_end_session_url(o, after, id_token);
		then(r, url);
		free(url);
		return;
	}
	job = request_job_new(r, NULL, sizeof(*c));
	c = job->data;
	c->o = o;
	c->ended = then;
	c->after = xstrdup(after);
	c->id_token = id_token != NULL ? xstrdup(id_token) : NULL;
	job->free_data = call_free;
	request_job_submit_to(r, job, end_after_discovery, oidc_submit, o);
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
