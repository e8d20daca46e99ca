/*
 * auth.c - who is asking: HTTP Basic (users), Bearer (tokens), and the web
 * page's session; roles; slowing down guessing.
 *
 * Passwords are stored as argon2id hashes (libsodium crypto_pwhash_str).
 * Verifying one costs tens of milliseconds and 64 MiB by design, so it
 * never runs on a worker's event loop: a verification is a read job on the
 * engine thread. Verified credentials are then cached under a keyed
 * BLAKE2b of "user\0password" (the key is random per process), so a script
 * making many calls pays once. A cache hit is trusted only while the user
 * still exists with the same password hash, so removing a user or changing
 * a password takes effect at once.
 *
 * Tokens are long random secrets, so a fast hash is enough: the stored
 * value is the BLAKE2b-256 of the whole token, compared in constant time.
 *
 * Guessing: failures are counted per client address; from the fourth
 * failure in a quarter of an hour every Basic attempt from that address
 * (right or wrong) is answered only after a delay that doubles up to 8 s.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "server_internal.h"

#define CACHE_SLOTS 256
#define CACHE_TTL_MS (10 * 60 * 1000)
#define FAILURE_SLOTS 1024
#define FAILURE_WINDOW_MS (15 * 60 * 1000)
#define FAILURES_FREE 3
#define DELAY_BASE_MS 250
#define DELAY_MAX_MS 8000
#define HASH_STR_MAX crypto_pwhash_STRBYTES

struct cache_entry {
	unsigned char key[32];
	char user[NODE_NAME_MAX + 1];
	char hash[HASH_STR_MAX];
	int64_t expires_at;
};

struct failure_entry {
	char address[64];
	int count;
	int64_t last_at;
};

struct auth_state {
	pthread_mutex_t lock;
	unsigned char secret[crypto_generichash_KEYBYTES];
	struct cache_entry cache[CACHE_SLOTS];
	struct failure_entry failures[FAILURE_SLOTS];
};

struct verify_job {
	char user[NODE_NAME_MAX + 1];
	char password[PASSWORD_MAX + 1];
	unsigned char key[32];
	/* result */
	int is_valid;
	enum role role;
	char hash[HASH_STR_MAX];
};

struct auth_state *
auth_state_new(void)
{
	struct auth_state *a = calloc(1, sizeof(*a));

	if (a == NULL)
		abort();
	pthread_mutex_init(&a->lock, NULL);
	randombytes_buf(a->secret, sizeof(a->secret));
	return a;
}

void
auth_state_free(struct auth_state *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->lock);
	sodium_memzero(a, sizeof(*a));
	free(a);
}

char *
auth_hash_password(const char *password)
{
	char *out = malloc(HASH_STR_MAX);

	if (out == NULL)
		return NULL;
	if (crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

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

/* --- guessing -------------------------------------------------------- */

static struct failure_entry *
failure_slot(struct auth_state *a, const char *address)
{
	uint64_t h = 1469598103934665603ULL;
	const char *p;

	for (p = address; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return &a->failures[h % FAILURE_SLOTS];
}

/* How long an attempt from address must wait now. */
static int64_t
failure_delay(struct auth_state *a, const char *address)
{
	struct failure_entry *f;
	int64_t delay = 0;

	pthread_mutex_lock(&a->lock);
	f = failure_slot(a, address);
	if (strcmp(f->address, address) == 0 && time_now_ms() - f->last_at < FAILURE_WINDOW_MS &&
	    f->count > FAILURES_FREE) {
		int shift = f->count - FAILURES_FREE - 1;
		delay = shift >= 6 ? DELAY_MAX_MS : (int64_t)DELAY_BASE_MS << shift;
		if (delay > DELAY_MAX_MS)
			delay = DELAY_MAX_MS;
	}
	pthread_mutex_unlock(&a->lock);
	return delay;
}

static void
failure_record(struct auth_state *a, const char *address, int is_failure)
{
	struct failure_entry *f;
	int64_t now = time_now_ms();

	pthread_mutex_lock(&a->lock);
	f = failure_slot(a, address);
	if (strcmp(f->address, address) != 0 || now - f->last_at >= FAILURE_WINDOW_MS) {
		snprintf(f->address, sizeof(f->address), "%s", address);
		f->count = 0;
	}
	if (is_failure) {
		f->count++;
		f->last_at = now;
	} else {
		f->count = 0;
	}
	pthread_mutex_unlock(&a->lock);
}

int64_t
auth_failure_delay_ms(struct request *r)
{
	return failure_delay(r->server->auth, r->address);
}

void
auth_failure_note(struct request *r, int is_failure)
{
	failure_record(r->server->auth, r->address, is_failure);
}

/* --- outcomes -------------------------------------------------------- */

static void
grant(struct request *r, enum role role, const char *who)
{
	r->role = role;
	if (who != r->who)
		snprintf(r->who, sizeof(r->who), "%s", who);
	if (role < r->auth_min_role) {
		reply_error(r, 403, NULL, "role %s may not do this (needs %s)", role_name(role),
		            role_name(r->auth_min_role));
		return;
	}
	r->auth_then(r);
}

static void
deny(struct request *r)
{
	log_kv(LOG_WARN, "authentication failed", "from", r->address, NULL);
	failure_record(r->server->auth, r->address, 1);
	reply_unauthorized(r);
}

/* --- Bearer ---------------------------------------------------------- */

static void
check_bearer(struct request *r, const char *token, size_t len)
{
	const struct model *m = request_snapshot(r);
	unsigned char hash[32];
	char hash_hex[65], id[17], who[32];
	const struct token *t;

	/* cmt_<16 hex id>_<secret> */
	if (len < 22 || memcmp(token, "cmt_", 4) != 0 || token[20] != '_') {
		deny(r);
		return;
	}
	memcpy(id, token + 4, 16);
	id[16] = '\0';
	crypto_generichash(hash, sizeof(hash), (const unsigned char *)token, len, NULL, 0);
	sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, sizeof(hash));
	t = model_find_token(m, id);
	if (t == NULL || strlen(t->hash) != 64 || sodium_memcmp(t->hash, hash_hex, 64) != 0) {
		deny(r);
		return;
	}
	failure_record(r->server->auth, r->address, 0);
	snprintf(who, sizeof(who), "token:%s", id);
	grant(r, t->role, who);
}

/* --- Basic ----------------------------------------------------------- */

static void
cache_key(struct auth_state *a, const char *user, const char *password, unsigned char key[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, a->secret, sizeof(a->secret), 32);
	crypto_generichash_update(&st, (const unsigned char *)user, strlen(user) + 1);
	crypto_generichash_update(&st, (const unsigned char *)password, strlen(password));
	crypto_generichash_final(&st, key, 32);
}

/* The role of a cached, still valid credential, or ROLE_NONE. */
static enum role
cache_lookup(struct request *r, const unsigned char key[32], const char *user)
{
	struct auth_state *a = r->server->auth;
	struct cache_entry *e = &a->cache[key[0]];
	const struct user *u = model_find_user(request_snapshot(r), user);
	enum role role = ROLE_NONE;

	pthread_mutex_lock(&a->lock);
	if (u != NULL && sodium_memcmp(e->key, key, 32) == 0 && strcmp(e->user, user) == 0 &&
	    strcmp(e->hash, u->password_hash) == 0 && e->expires_at > time_now_ms())
		role = u->role;
	pthread_mutex_unlock(&a->lock);
	return role;
}

static void
cache_store(struct auth_state *a, const unsigned char key[32], const char *user, const char *hash)
{
	struct cache_entry *e = &a->cache[key[0]];

	pthread_mutex_lock(&a->lock);
	memcpy(e->key, key, 32);
	snprintf(e->user, sizeof(e->user), "%s", user);
	snprintf(e->hash, sizeof(e->hash), "%s", hash);
	e->expires_at = time_now_ms() + CACHE_TTL_MS;
	pthread_mutex_unlock(&a->lock);
}

static char dummy_hash[HASH_STR_MAX];
static pthread_once_t dummy_hash_once = PTHREAD_ONCE_INIT;

static void
dummy_hash_make(void)
{
	if (crypto_pwhash_str(dummy_hash, "no such user", 12, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		dummy_hash[0] = '\0';
}

const struct user *
auth_verify_password(const struct model *m, const char *user, const char *password)
{
	const struct user *u = model_find_user(m, user);
	int is_match;

	pthread_once(&dummy_hash_once, dummy_hash_make);
	is_match = crypto_pwhash_str_verify(u != NULL ? u->password_hash : dummy_hash, password,
	                                    strlen(password)) == 0;
	return is_match ? u : NULL;
}

/* Side thread: the slow part. */
static int
verify_run(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	struct verify_job *v = job->data;
	const struct user *u = auth_verify_password(tx->model, v->user, v->password);

	(void)err;
	v->is_valid = u != NULL;
	if (v->is_valid) {
		v->role = u->role;
		snprintf(v->hash, sizeof(v->hash), "%s", u->password_hash);
	}
	return 0;
}

static void
verify_free(void *data)
{
	sodium_memzero(data, sizeof(struct verify_job));
}

static void
verify_done(struct request *r, struct engine_job *job)
{
	struct verify_job *v = job->data;

	if (job->rc != 0) {
		reply_from_error(r, &job->err);
		return;
	}
	if (!v->is_valid) {
		deny(r);
		return;
	}
	cache_store(r->server->auth, v->key, v->user, v->hash);
	failure_record(r->server->auth, r->address, 0);
	grant(r, v->role, v->user);
}

static void
check_basic_now(struct request *r)
{
	h2o_iovec_t h = request_header(r, H2O_TOKEN_AUTHORIZATION);
	struct engine_job *job = request_job_new(r, verify_run, sizeof(struct verify_job));
	struct verify_job *v = job->data;
	enum role role;

	job->is_side = 1;
	job->free_data = verify_free;
	if (h.len < 6 || auth_basic_decode(h.base + 6, h.len - 6, v->user, sizeof(v->user),
	                                   v->password, sizeof(v->password)) != 0) {
		verify_free(v);
		free(job);
		deny(r);
		return;
	}
	cache_key(r->server->auth, v->user, v->password, v->key);
	role = cache_lookup(r, v->key, v->user);
	if (role != ROLE_NONE) {
		char user[NODE_NAME_MAX + 1];
		snprintf(user, sizeof(user), "%s", v->user);
		verify_free(v);
		free(job);
		grant(r, role, user);
		return;
	}
	request_job_submit(r, job, verify_done);
}

static void
check_basic(struct request *r)
{
	request_after(r, failure_delay(r->server->auth, r->address), check_basic_now);
}

void
auth_require(struct request *r, enum role min_role, int allow_session, request_handler then)
{
	h2o_iovec_t h = request_header(r, H2O_TOKEN_AUTHORIZATION);

	r->auth_min_role = min_role;
	r->auth_then = then;
	if (h.base == NULL) {
		if (allow_session && ui_session_identify(r))
			grant(r, r->role, r->who);
		else if (min_role == ROLE_NONE)
			then(r);
		else
			reply_unauthorized(r);
		return;
	}
	if (h.len > 7 && strncasecmp(h.base, "Bearer ", 7) == 0)
		check_bearer(r, h.base + 7, h.len - 7);
	else if (h.len > 6 && strncasecmp(h.base, "Basic ", 6) == 0)
		check_basic(r);
	else
		deny(r);
}
