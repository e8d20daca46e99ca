/*
 * ui_session.c - signing in to the web page: sessions, the session
 * cookie, CSRF tokens, the same-origin check, /login and /logout.
 *
 * Sessions live in memory, in one small table shared by the workers (a
 * mutex; a lookup is a scan of at most SESSION_SLOTS entries). With an
 * SQLite store a restart signs everybody out. With a PostgreSQL store
 * shared by several daemons the table is shared through the store (the
 * share thread calls share_collect and share_apply every half second):
 * a session started on one daemon is added to the store and taken in by
 * the others, and one that ends (sign-out, the per-user cap) is removed
 * from the store and so from every daemon, within about a second. The
 * store holds only a hash of each id, never the id. Sessions of all three
 * kinds travel (password, the identity provider, the proxy), with what
 * another daemon needs to give them their roles (peer.h). A session is a
 * 256-bit random id (libsodium randombytes) sent as the cookie cm_session
 * (HttpOnly, SameSite=Strict, Secure under HTTPS) and lives
 * SESSION_TTL_MS from sign-in, not extended by use.
 * A user holds at most SESSIONS_PER_USER: signing in once more ends
 * their own oldest session. Nobody's session is ever taken for another
 * user's: when every slot is live, signing in is refused (503) until
 * sessions expire or end.
 *
 * A password session remembers only the user name and a tag of the user
 * record (BLAKE2b of the password hash and the creation time). Every
 * request checks it against the current snapshot: the role is the user's
 * role now, and a removed user, a re-created one or a changed password
 * ends the session at once. An identity provider's session remembers the
 * issuer, subject, email and groups (the roles file maps them at each
 * request) and the ID token for signing out (id_token_hint), sealed with
 * a key derived from the session id, so that neither the store's copy
 * nor this table's is of use without the browser's cookie.
 *
 * Signing in checks the password through auth_check_password (auth_queue.c),
 * the same check as HTTP Basic: the same queue, bounds, failure counting
 * and slow-down. The page plugs its sessions into authentication with
 * auth_set_session_source (see daemon.c), so auth.c knows nothing of it.
 *
 * CSRF: every form carries a token that is a BLAKE2b of the session id
 * (so the same on every daemon), compared in constant time. Origin, or
 * else Referer, when the browser sends one, must name the Host.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <sodium.h>

#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "auth_event.h"
#include "oidc.h"
#include "ui.h"

#define SESSION_SLOTS 1024
#define SESSIONS_PER_USER 10
#define SESSION_TTL_MS (12LL * 3600 * 1000)
#define SESSION_ID_BYTES 32
#define SESSION_ID_TEXT 44 /* base64url without padding of 32 bytes, + NUL */
#define COOKIE_NAME "cm_session"
#define NEXT_MAX 512

/* Where a session stands with the store shared by several daemons. */
enum share_state {
	SHARE_TO_SEND = 0, /* started here, not in the store yet */
	SHARE_SENDING = 1, /* collected for the exchange under way */
	SHARE_SHARED = 2,  /* in the store: ends here when it leaves it */
};

/* How the session's principal signed in (as the store records it). */
enum session_kind {
	SESSION_PASSWORD = SESSION_RECORD_PASSWORD, /* a local user: user and tag */
	SESSION_OIDC = SESSION_RECORD_OIDC,         /* the identity provider: who and groups */
	SESSION_PROXY = SESSION_RECORD_PROXY,       /* the trusted proxy's header: who; the
	                                               header must keep naming the same user */
};

struct session {
	unsigned char id_hash[32]; /* BLAKE2b of the id: the id is only in the cookie */
	char user[NODE_NAME_MAX + 1];
	unsigned char tag[32]; /* of the user record at sign-in */
	int64_t expires_at;    /* 0: free slot */
	enum share_state share;
	enum session_kind kind;
	char who[96];                        /* OIDC and proxy: "oidc:NAME", "proxy:NAME" */
	char *groups;                        /* OIDC: the groups claim ("\n"-joined), malloc'd */
	char name[NODE_NAME_MAX + 1];        /* OIDC and proxy: the name the roles file maps */
	char issuer[SESSION_CLAIM_MAX + 1];  /* OIDC: the provider that vouched */
	char subject[SESSION_CLAIM_MAX + 1]; /* OIDC: the provider's sub */
	char email[SESSION_CLAIM_MAX + 1];   /* OIDC: the verified email, or "" */
	char *id_token; /* OIDC: the ID token sealed with the session id (id_token_seal),
	                   malloc'd, or NULL */
};

static struct {
	struct session slots[SESSION_SLOTS];
	/* sessions ended here that were in the store: removed there at the
	 * next exchange (a full queue leaves the rest to expire) */
	struct session_record ended[SHARE_SESSIONS_MAX];
	size_t n_ended;
	/* the groups and ID tokens of the sessions collected for the
	 * exchange under way: freed at the next collect */
	char *in_flight[2 * SHARE_SESSIONS_MAX];
	size_t n_in_flight;
	/* a slot may be SHARE_TO_SEND or SHARE_SENDING: until a collect
	 * finds none, each one walks the slots */
	int may_send;
} sessions;
static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;

/* The key that CSRF tokens are derived with. Not a secret: the session id
 * they are derived from is (256 random bits, only in an HttpOnly cookie),
 * and a fixed key gives every daemon of a store the same token for one
 * session. */
static const unsigned char csrf_key[crypto_generichash_KEYBYTES] = "clustermgmt CSRF token, v1";

/* What the key that seals a session's ID token is derived with: the key is
 * a BLAKE2b of the session id under this (fixed) key, so only a request
 * carrying the session's cookie can open the token, on any daemon, and
 * the store's copy alone is of no use. */
static const unsigned char id_token_key_key[crypto_generichash_KEYBYTES] =
    "clustermgmt ID token seal, v1";
#define ID_TOKEN_MAX 16384 /* a longer ID token is not kept (no id_token_hint) */

static void
id_hash(const unsigned char id[SESSION_ID_BYTES], unsigned char hash[32])
{
	crypto_generichash(hash, 32, id, SESSION_ID_BYTES, NULL, 0);
}

static void
id_token_key(const unsigned char id[SESSION_ID_BYTES], unsigned char key[crypto_secretbox_KEYBYTES])
{
	crypto_generichash(key, crypto_secretbox_KEYBYTES, id, SESSION_ID_BYTES, id_token_key_key,
	                   sizeof(id_token_key_key));
}

/* The ID token sealed for the session id: base64url of nonce and box
 * (malloc'd), or NULL when there is none or it is too long to keep. */
static char *
id_token_seal(const unsigned char id[SESSION_ID_BYTES], const char *token)
{
	unsigned char key[crypto_secretbox_KEYBYTES], *sealed;
	size_t len, sealed_len, text_size;
	char *text;

	if (token == NULL || (len = strlen(token)) == 0 || len > ID_TOKEN_MAX)
		return NULL;
	sealed_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
	sealed = xmalloc(sealed_len);
	randombytes_buf(sealed, crypto_secretbox_NONCEBYTES);
	id_token_key(id, key);
	crypto_secretbox_easy(sealed + crypto_secretbox_NONCEBYTES, (const unsigned char *)token,
	                      len, sealed, key);
	sodium_memzero(key, sizeof(key));
	text_size = sodium_base64_ENCODED_LEN(sealed_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	text = xmalloc(text_size);
	sodium_bin2base64(text, text_size, sealed, sealed_len,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	free(sealed);
	return text;
}

/* The ID token id_token_seal sealed for the session id (malloc'd), or
 * NULL when sealed is NULL or does not open with that id. */
static char *
id_token_open(const unsigned char id[SESSION_ID_BYTES], const char *sealed)
{
	unsigned char key[crypto_secretbox_KEYBYTES], *bin;
	size_t text_len, bin_len = 0;
	char *token = NULL;

	if (sealed == NULL || (text_len = strlen(sealed)) > 2 * ID_TOKEN_MAX)
		return NULL;
	bin = xmalloc(text_len + 1);
	if (sodium_base642bin(bin, text_len + 1, sealed, text_len, NULL, &bin_len, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    bin_len <= crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		goto done;
	id_token_key(id, key);
	token = xmalloc(bin_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES + 1);
	if (crypto_secretbox_open_easy((unsigned char *)token, bin + crypto_secretbox_NONCEBYTES,
	                               bin_len - crypto_secretbox_NONCEBYTES, bin, key) != 0) {
		free(token);
		token = NULL;
	} else {
		token[bin_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES] = '\0';
	}
	sodium_memzero(key, sizeof(key));
done:
	free(bin);
	return token;
}

/* What ties a session to one incarnation of a user. */
static void
user_tag(const struct user *u, unsigned char tag[32])
{
	crypto_generichash_state st;
	int64_t created = u->created_at;

	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const unsigned char *)u->password_hash,
	                          strlen(u->password_hash) + 1);
	crypto_generichash_update(&st, (const unsigned char *)&created, sizeof(created));
	crypto_generichash_final(&st, tag, 32);
}

/* --- the table ---------------------------------------------------------- */

/* Empties a slot (its groups freed). Caller holds the lock. */
static void
slot_clear(struct session *s)
{
	free(s->groups);
	free(s->id_token);
	sodium_memzero(s, sizeof(*s));
}

/* The slot of the session whose id hashes to hash, or NULL. Caller holds
 * the lock. */
static struct session *
slot_find(const unsigned char hash[32])
{
	size_t i;

	for (i = 0; i < SESSION_SLOTS; i++) {
		struct session *s = &sessions.slots[i];
		if (s->expires_at != 0 && sodium_memcmp(s->id_hash, hash, 32) == 0)
			return s;
	}
	return NULL;
}

/* Empties a slot; one the store holds is queued to end there too.
 * Caller holds the lock. */
static void
slot_end(struct session *s)
{
	if (s->share != SHARE_TO_SEND && sessions.n_ended < SHARE_SESSIONS_MAX) {
		struct session_record *r = &sessions.ended[sessions.n_ended++];
		memset(r, 0, sizeof(*r));
		memcpy(r->id_hash, s->id_hash, 32);
	}
	slot_clear(s);
}

/* The slot for a new session of user: the oldest of user's own when they
 * have SESSIONS_PER_USER already, else a free or expired one; NULL when
 * every slot holds someone else's live session (never taken from them).
 * Caller holds the lock. */
static struct session *
slot_take(const char *user, int64_t now)
{
	struct session *free_slot = NULL, *oldest = NULL;
	size_t i;
	int n = 0;

	for (i = 0; i < SESSION_SLOTS; i++) {
		struct session *s = &sessions.slots[i];
		if (s->expires_at <= now) {
			if (free_slot == NULL)
				free_slot = s;
			continue;
		}
		if (strcmp(s->user, user) != 0)
			continue;
		n++;
		if (oldest == NULL || s->expires_at < oldest->expires_at)
			oldest = s;
	}
	if (n >= SESSIONS_PER_USER) {
		slot_end(oldest);
		return oldest;
	}
	if (free_slot != NULL)
		slot_clear(free_slot);
	return free_slot;
}

/* A new session of a local user (tag) or, when kind is not
 * SESSION_PASSWORD, of who (groups taken over, may be NULL; the
 * identity provider's id_token kept sealed). Returns 0 with id filled,
 * or -1 when the table is full. */
static int
session_create(enum session_kind kind, const char *user, const unsigned char *tag, const char *who,
               const char *subject, const char *email, char **groups, const char *id_token,
               unsigned char id[SESSION_ID_BYTES])
{
	struct session *s;
	int64_t now = time_now_ms();
	char key[NODE_NAME_MAX + 1], *sealed;

	snprintf(key, sizeof(key), "%s", kind == SESSION_PASSWORD ? user : who);
	randombytes_buf(id, SESSION_ID_BYTES);
	sealed = id_token_seal(id, id_token);
	pthread_mutex_lock(&sessions_lock);
	s = slot_take(key, now);
	if (s != NULL) {
		id_hash(id, s->id_hash);
		snprintf(s->user, sizeof(s->user), "%s", key);
		if (tag != NULL)
			memcpy(s->tag, tag, 32);
		s->expires_at = now + SESSION_TTL_MS;
		s->kind = kind;
		s->share = SHARE_TO_SEND;
		sessions.may_send = 1;
		if (kind != SESSION_PASSWORD) {
			snprintf(s->who, sizeof(s->who), "%s", who);
			snprintf(s->name, sizeof(s->name), "%s", user);
			snprintf(s->subject, sizeof(s->subject), "%s", subject ? subject : "");
			snprintf(s->email, sizeof(s->email), "%s", email ? email : "");
		}
		if (kind == SESSION_OIDC)
			snprintf(s->issuer, sizeof(s->issuer), "%s", oidc_issuer(auth_oidc()));
		if (groups != NULL) {
			s->groups = *groups;
			*groups = NULL;
		}
		s->id_token = sealed;
		sealed = NULL;
	}
	pthread_mutex_unlock(&sessions_lock);
	free(sealed);
	return s != NULL ? 0 : -1;
}

static void
session_drop(const unsigned char id[SESSION_ID_BYTES])
{
	unsigned char hash[32];
	struct session *s;

	id_hash(id, hash);
	pthread_mutex_lock(&sessions_lock);
	if ((s = slot_find(hash)) != NULL)
		slot_end(s);
	pthread_mutex_unlock(&sessions_lock);
}

void
ui_session_drop_user(const char *name)
{
	size_t i;

	pthread_mutex_lock(&sessions_lock);
	for (i = 0; i < SESSION_SLOTS; i++)
		if (sessions.slots[i].expires_at != 0 &&
		    sessions.slots[i].kind == SESSION_PASSWORD &&
		    strcmp(sessions.slots[i].user, name) == 0)
			slot_end(&sessions.slots[i]);
	pthread_mutex_unlock(&sessions_lock);
}

/* --- shared with the other daemons of a store --------------------------- */

/* The copy of one string of a session for the exchange under way. Caller
 * holds the lock. */
static const char *
in_flight_copy(const char *text)
{
	char *copy;

	if (text == NULL)
		return NULL;
	copy = xstrdup(text);
	sessions.in_flight[sessions.n_in_flight++] = copy;
	return copy;
}

/* The store's record of s. Caller holds the lock. */
static void
record_of(const struct session *s, struct session_record *r)
{
	memset(r, 0, sizeof(*r));
	memcpy(r->id_hash, s->id_hash, 32);
	memcpy(r->user, s->user, sizeof(s->user));
	memcpy(r->tag, s->tag, 32);
	r->expires_at = s->expires_at;
	r->kind = (int)s->kind;
	memcpy(r->name, s->name, sizeof(r->name));
	memcpy(r->issuer, s->issuer, sizeof(r->issuer));
	memcpy(r->subject, s->subject, sizeof(r->subject));
	memcpy(r->email, s->email, sizeof(r->email));
	r->groups = in_flight_copy(s->groups);
	r->id_token = in_flight_copy(s->id_token);
}

/* A session started on another daemon, from its record. Caller holds the
 * lock; s is empty. */
static void
session_of(struct session *s, const struct session_record *r)
{
	memcpy(s->id_hash, r->id_hash, 32);
	snprintf(s->user, sizeof(s->user), "%s", r->user);
	memcpy(s->tag, r->tag, 32);
	s->expires_at = r->expires_at;
	s->share = SHARE_SHARED;
	s->kind = (enum session_kind)r->kind;
	if (s->kind == SESSION_PASSWORD)
		return;
	snprintf(s->name, sizeof(s->name), "%s", r->name);
	snprintf(s->who, sizeof(s->who), "%s:%s", s->kind == SESSION_OIDC ? "oidc" : "proxy",
	         r->name);
	snprintf(s->issuer, sizeof(s->issuer), "%s", r->issuer);
	snprintf(s->subject, sizeof(s->subject), "%s", r->subject);
	snprintf(s->email, sizeof(s->email), "%s", r->email);
	s->groups = r->groups != NULL ? xstrdup(r->groups) : NULL;
	s->id_token = r->id_token != NULL ? xstrdup(r->id_token) : NULL;
}

static void
share_collect(void *arg, struct session_record *added, size_t *n_added,
              struct session_record *ended, size_t *n_ended)
{
	int64_t now = time_now_ms();
	size_t i;

	(void)arg;
	*n_added = 0;
	pthread_mutex_lock(&sessions_lock);
	for (i = 0; i < sessions.n_in_flight; i++)
		free(sessions.in_flight[i]);
	sessions.n_in_flight = 0;
	for (i = 0; i < SESSION_SLOTS && sessions.may_send; i++) {
		struct session *s = &sessions.slots[i];
		if (s->share == SHARE_SENDING) /* the last exchange failed */
			s->share = SHARE_TO_SEND;
		if (s->expires_at <= now || s->share != SHARE_TO_SEND ||
		    *n_added == SHARE_SESSIONS_MAX)
			continue;
		record_of(s, &added[(*n_added)++]);
		s->share = SHARE_SENDING;
	}
	/* those collected now are walked again at the next collect: sent,
	 * or back to be sent if this exchange fails */
	sessions.may_send = *n_added > 0;
	memcpy(ended, sessions.ended, sessions.n_ended * sizeof(*ended));
	*n_ended = sessions.n_ended;
	pthread_mutex_unlock(&sessions_lock);
}

static int
record_cmp(const void *a, const void *b)
{
	return memcmp(((const struct session_record *)a)->id_hash,
	              ((const struct session_record *)b)->id_hash, 32);
}

/* Is hash among the sessions ended here and not yet removed from the
 * store? Caller holds the lock. */
static int
is_ended_here(const unsigned char hash[32])
{
	size_t i;

	for (i = 0; i < sessions.n_ended; i++)
		if (memcmp(sessions.ended[i].id_hash, hash, 32) == 0)
			return 1;
	return 0;
}

/* The store holds exactly the live sessions in all: a shared session of
 * ours that is not there ended on another daemon; one there that we do
 * not have started on another daemon. */
static void
share_apply(void *arg, size_t n_added, size_t n_ended, const struct session_record *all,
            size_t n_all)
{
	struct session_record *sorted = xcalloc(n_all > 0 ? n_all : 1, sizeof(*sorted));
	unsigned char *is_local = xcalloc(n_all > 0 ? n_all : 1, 1);
	int64_t now = time_now_ms();
	size_t i;

	(void)arg;
	(void)n_added;
	memcpy(sorted, all, n_all * sizeof(*sorted));
	qsort(sorted, n_all, sizeof(*sorted), record_cmp);
	pthread_mutex_lock(&sessions_lock);
	memmove(sessions.ended, sessions.ended + n_ended,
	        (sessions.n_ended - n_ended) * sizeof(*sessions.ended));
	sessions.n_ended -= n_ended;
	for (i = 0; i < SESSION_SLOTS; i++) {
		struct session *s = &sessions.slots[i];
		struct session_record key;
		const struct session_record *hit;
		if (s->expires_at == 0)
			continue;
		memcpy(key.id_hash, s->id_hash, 32);
		hit = bsearch(&key, sorted, n_all, sizeof(*sorted), record_cmp);
		if (hit != NULL)
			is_local[hit - sorted] = 1;
		if (s->share == SHARE_SENDING)
			s->share = SHARE_SHARED;
		else if (s->share == SHARE_SHARED && hit == NULL)
			slot_clear(s); /* ended elsewhere */
	}
	for (i = 0; i < n_all; i++) {
		struct session *s = NULL;
		size_t j;
		if (is_local[i] || sorted[i].expires_at <= now || is_ended_here(sorted[i].id_hash))
			continue;
		for (j = 0; j < SESSION_SLOTS && s == NULL; j++)
			if (sessions.slots[j].expires_at <= now)
				s = &sessions.slots[j];
		if (s == NULL)
			break; /* full: those sign in here again */
		slot_clear(s);
		session_of(s, &sorted[i]);
	}
	pthread_mutex_unlock(&sessions_lock);
	sodium_memzero(sorted, n_all * sizeof(*sorted));
	free(sorted);
	free(is_local);
}

void
ui_session_share_hooks(struct share_session_hooks *out)
{
	*out = (struct share_session_hooks){share_collect, share_apply, NULL};
}

/* --- the cookie --------------------------------------------------------- */

/* Finds cm_session in one Cookie header value. */
static int
cookie_value_find(h2o_iovec_t v, unsigned char id[SESSION_ID_BYTES])
{
	const char *p = v.base, *end = v.base + v.len;
	size_t name_len = strlen(COOKIE_NAME), n = 0;

	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p)), *stop = semi ? semi : end;
		while (p < stop && *p == ' ')
			p++;
		if ((size_t)(stop - p) > name_len && memcmp(p, COOKIE_NAME, name_len) == 0 &&
		    p[name_len] == '=') {
			p += name_len + 1;
			return sodium_base642bin(id, SESSION_ID_BYTES, p, (size_t)(stop - p), NULL,
			                         &n, NULL,
			                         sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0 &&
			               n == SESSION_ID_BYTES
			           ? 0
			           : -1;
		}
		p = stop + 1;
	}
	return -1;
}

/* The session id the request's cookies carry (HTTP/2 may split them over
 * several Cookie headers). */
static int
cookie_session_id(struct request *r, unsigned char id[SESSION_ID_BYTES])
{
	ssize_t i = -1;

	while ((i = h2o_find_header(&r->req->headers, H2O_TOKEN_COOKIE, i)) != -1)
		if (cookie_value_find(r->req->headers.entries[i].value, id) == 0)
			return 0;
	return -1;
}

static void
cookie_set(struct request *r, const unsigned char id[SESSION_ID_BYTES])
{
	char text[SESSION_ID_TEXT], cookie[200];

	sodium_bin2base64(text, sizeof(text), id, SESSION_ID_BYTES,
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Strict%s",
	         COOKIE_NAME, text, SESSION_TTL_MS / 1000, request_is_https(r) ? "; Secure" : "");
	ui_header(r, "set-cookie", cookie);
}

static void
cookie_clear(struct request *r)
{
	char cookie[120];

	snprintf(cookie, sizeof(cookie), "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s",
	         COOKIE_NAME, request_is_https(r) ? "; Secure" : "");
	ui_header(r, "set-cookie", cookie);
}

int
ui_session_identify(struct request *r)
{
	unsigned char id[SESSION_ID_BYTES], hash[32], tag[32], now_tag[32];
	char user[NODE_NAME_MAX + 1], who[96], name[NODE_NAME_MAX + 1], proxied[NODE_NAME_MAX + 1],
	    issuer[SESSION_CLAIM_MAX + 1], subject[SESSION_CLAIM_MAX + 1],
	    email[SESSION_CLAIM_MAX + 1];
	char *groups = NULL;
	enum session_kind kind = SESSION_PASSWORD;
	const struct session *s;
	const struct user *u = NULL;
	int64_t expires_at = 0;
	int is_valid;

	if (cookie_session_id(r, id) != 0)
		return 0;
	id_hash(id, hash);
	pthread_mutex_lock(&sessions_lock);
	if ((s = slot_find(hash)) != NULL) {
		memcpy(user, s->user, sizeof(user));
		memcpy(tag, s->tag, sizeof(tag));
		memcpy(who, s->who, sizeof(who));
		memcpy(name, s->name, sizeof(name));
		memcpy(issuer, s->issuer, sizeof(issuer));
		memcpy(subject, s->subject, sizeof(subject));
		memcpy(email, s->email, sizeof(email));
		kind = s->kind;
		groups = s->groups != NULL ? xstrdup(s->groups) : NULL;
		expires_at = s->expires_at;
	}
	pthread_mutex_unlock(&sessions_lock);
	if (s == NULL)
		return 0;
	/* A session that is over ends (here and, when shared, everywhere); one
	 * this daemon cannot vouch for (a provider or a proxy it is not set
	 * up with, a request that did not come through the proxy) is only
	 * not honoured here: another daemon of the store may be right to. */
	is_valid = 1;
	if (kind == SESSION_PASSWORD) {
		u = model_find_user(request_snapshot(r), user);
		if (u != NULL)
			user_tag(u, now_tag);
		is_valid = u != NULL && sodium_memcmp(tag, now_tag, 32) == 0;
	} else if (kind == SESSION_PROXY && auth_proxy_user(r, proxied, sizeof(proxied))) {
		/* only while the proxy still names the same user */
		is_valid = strcmp(proxied, name) == 0;
	} else if (kind == SESSION_PROXY || auth_oidc() == NULL ||
	           strcmp(issuer, oidc_issuer(auth_oidc())) != 0) {
		free(groups);
		return 0;
	}
	if (!is_valid || expires_at <= time_now_ms()) {
		session_drop(id);
		free(groups);
		return 0;
	}
	r->is_session = 1;
	if (kind == SESSION_PASSWORD) {
		auth_set_principal(r, u->name, "password", u->role, ROLES_USER, u->name, NULL);
	} else if (kind == SESSION_PROXY) {
		auth_proxy_grant(r, name);
	} else {
		auth_set_principal(r, who, "oidc", ROLE_NONE, ROLES_EMAIL,
		                   email[0] != '\0' ? email : NULL, groups);
		auth_set_oidc_subject(r, oidc_issuer(auth_oidc()), subject);
	}
	free(groups);
	return 1;
}

int
ui_session_is_oidc(struct request *r)
{
	return r->is_session && r->auth_method != NULL && strcmp(r->auth_method, "oidc") == 0;
}

int
ui_session_proxy_start(struct request *r)
{
	char user[NODE_NAME_MAX + 1], who[96];
	unsigned char id[SESSION_ID_BYTES];

	if (!auth_proxy_user(r, user, sizeof(user)))
		return 0;
	snprintf(who, sizeof(who), "proxy:%s", user);
	if (session_create(SESSION_PROXY, user, NULL, who, NULL, NULL, NULL, NULL, id) != 0)
		return 0;
	auth_event(r, r->address,
	           &(struct auth_event){
	               .kind = AUTH_EVENT_SIGNED_IN, .principal = who, .method = "proxy"});
	cookie_set(r, id);
	sodium_memzero(id, sizeof(id));
	return 1;
}

/* --- CSRF and origin ---------------------------------------------------- */

static void
csrf_of(const unsigned char id[SESSION_ID_BYTES], char token[UI_CSRF_SIZE])
{
	unsigned char mac[32];

	crypto_generichash(mac, sizeof(mac), id, SESSION_ID_BYTES, csrf_key, sizeof(csrf_key));
	sodium_bin2base64(token, UI_CSRF_SIZE, mac, sizeof(mac),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int
ui_csrf_token(struct request *r, char token[UI_CSRF_SIZE])
{
	unsigned char id[SESSION_ID_BYTES];

	token[0] = '\0';
	if (!r->is_session || cookie_session_id(r, id) != 0)
		return -1;
	csrf_of(id, token);
	return 0;
}

int
ui_csrf_is_valid(struct request *r, const char *token)
{
	char want[UI_CSRF_SIZE];

	if (token == NULL || ui_csrf_token(r, want) != 0 || strlen(token) != strlen(want))
		return 0;
	return sodium_memcmp(token, want, strlen(want)) == 0;
}

/* Does "scheme://authority[/...]" name authority? */
static int
url_names_authority(h2o_iovec_t url, h2o_iovec_t authority)
{
	const char *p = memmem(url.base, url.len, "://", 3), *end = url.base + url.len, *stop;

	if (p == NULL)
		return 0;
	p += 3;
	stop = memchr(p, '/', (size_t)(end - p));
	if (stop == NULL)
		stop = end;
	return (size_t)(stop - p) == authority.len &&
	       strncasecmp(p, authority.base, authority.len) == 0;
}

int
ui_origin_is_same(struct request *r)
{
	h2o_iovec_t origin = request_header_by_name(r, "origin");
	h2o_iovec_t referer = request_header(r, H2O_TOKEN_REFERER);

	if (origin.base != NULL)
		return url_names_authority(origin, r->req->authority);
	if (referer.base != NULL)
		return url_names_authority(referer, r->req->authority);
	return 1;
}

/* --- /login ------------------------------------------------------------- */

/* A local path to go to after signing in: "/..." but not "//...", and
 * nothing that could make a header or a URL of another host. */
static int
next_is_safe(const char *next)
{
	const char *p;

	if (next == NULL || next[0] != '/' || next[1] == '/' || strlen(next) > NEXT_MAX)
		return 0;
	for (p = next; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '\\')
			return 0;
	return 1;
}

static void
login_render(struct request *r, int status, const char *next, const char *user, const char *problem)
{
	struct oidc *o = auth_oidc();
	const char *safe_next = next_is_safe(next) ? next : "/";
	char *escaped;
	struct ui_buf b;

	ui_buf_init(&b, 4096);
	ui_page_begin(r, &b, "Sign in", NULL);
	ui_raw(&b, "<section class=\"card narrow\"><h1>Sign in</h1>");
	if (problem != NULL)
		ui_printf(&b, "<p class=\"flash error\" role=\"alert\">%s</p>", problem);
	if (o != NULL) {
		if ((escaped = curl_easy_escape(NULL, safe_next, 0)) == NULL)
			abort();
		ui_printf(&b,
		          "<p><a id=\"oidc-sign-in\" class=\"button primary\" "
		          "href=\"/login/oidc?next=%s\">Sign in with %s</a></p>",
		          escaped, oidc_label(o));
		curl_free(escaped);
	}
	if (o == NULL || !oidc_is_only(o))
		ui_printf(
		    &b,
		    "<form method=\"post\" action=\"/login\" class=\"stack\">"
		    "<input type=\"hidden\" name=\"next\" value=\"%s\">"
		    "<label for=\"login-user\">User name</label>"
		    "<input id=\"login-user\" name=\"user\" autocomplete=\"username\" required "
		    "autofocus value=\"%s\" maxlength=\"64\">"
		    "<label for=\"login-password\">Password</label>"
		    "<input id=\"login-password\" name=\"password\" type=\"password\" "
		    "autocomplete=\"current-password\" required>"
		    "<button type=\"submit\" class=\"primary\">Sign in</button></form>",
		    safe_next, user ? user : "");
	ui_raw(&b, "<p class=\"hint\">A session lasts 12 hours, or until you sign out.</p>"
	           "</section>");
	ui_page_end(&b);
	ui_reply_html(r, status, &b);
}

void
ui_login_page(struct request *r, const struct route *rt)
{
	char next[NEXT_MAX + 1] = "/";

	(void)rt;

	if (request_query_param(r, "next", next, sizeof(next)) != 1)
		snprintf(next, sizeof(next), "/");
	login_render(r, 200, next, NULL, NULL);
}

/* The verdict of the one password check (auth_queue.c). */
static void
login_checked(struct request *r, const struct auth_verdict *v)
{
	unsigned char id[SESSION_ID_BYTES], tag[32];
	char *next = ui_field(r, "next"), *user = ui_field(r, "user");

	if (v->status != 200) {
		if (v->status == 429 || v->status == 503)
			ui_header(r, "retry-after", "5");
		login_render(r, v->status, next, user, v->problem);
		goto done;
	}
	user_tag(v->user, tag);
	if (session_create(SESSION_PASSWORD, v->user->name, tag, NULL, NULL, NULL, NULL, NULL,
	                   id) != 0) {
		auth_event(r, r->address,
		           &(struct auth_event){.kind = AUTH_EVENT_SIGNIN_FAILED,
		                                .principal = v->user->name,
		                                .method = "password",
		                                .problem = "the session table is full"});
		login_render(r, 503, next, user,
		             "Too many people are signed in right now; try again later, "
		             "or use the API with a token.");
		goto done;
	}
	auth_event(r, r->address,
	           &(struct auth_event){.kind = AUTH_EVENT_SIGNED_IN,
	                                .principal = v->user->name,
	                                .method = "password"});
	cookie_set(r, id);
	sodium_memzero(id, sizeof(id));
	reply_redirect(r, 303, next_is_safe(next) ? next : "/");
done:
	free(next);
	free(user);
}

void
ui_login_post(struct request *r, const struct route *rt)
{
	char *user, *password;

	(void)rt;

	if (!ui_origin_is_same(r)) {
		ui_reply_message(r, 403, "Refused",
		                 "This sign-in came from another site. Nothing was changed.",
		                 "/login", "Sign in here");
		return;
	}
	if (auth_oidc() != NULL && oidc_is_only(auth_oidc())) {
		login_render(r, 403, "/", NULL,
		             "Signing in with a password is off here; sign in with the identity "
		             "provider.");
		return;
	}
	user = ui_field(r, "user");
	password = ui_field(r, "password");
	if (user == NULL || password == NULL || user[0] == '\0' || strlen(user) > NODE_NAME_MAX ||
	    strlen(password) > PASSWORD_MAX) {
		char *next = ui_field(r, "next");
		login_render(r, 400, next, NULL, "Enter a user name and a password.");
		free(next);
	} else {
		auth_check_password(r, user, password, login_checked);
	}
	if (password != NULL)
		sodium_memzero(password, strlen(password));
	free(user);
	free(password);
}

/* A page that moves on to url at once (an HTML refresh). A redirect will
 * not do in two places: the answer to the sign-out form (the page's
 * form-action 'self' forbids a form from ending at the provider), and
 * the provider's callback (a redirect chain started on the provider's
 * site does not carry the SameSite=Strict session cookie; a navigation
 * from this page does). */
static void
moving_on_page(struct request *r, const char *title, const char *url)
{
	struct ui_buf b;

	ui_buf_init(&b, 1024 + strlen(url) * 2);
	ui_printf(&b,
	          "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
	          "<meta http-equiv=\"refresh\" content=\"0;url=%s\"><title>%s</title>"
	          "</head><body><p>%s. <a href=\"%s\">Continue</a></p></body></html>",
	          url, title, title, url);
	ui_reply_html(r, 200, &b);
}

/* The ID token of the session id (malloc'd), or NULL. */
static char *
session_id_token(const unsigned char id[SESSION_ID_BYTES])
{
	unsigned char hash[32];
	struct session *s;
	char *sealed = NULL, *token;

	id_hash(id, hash);
	pthread_mutex_lock(&sessions_lock);
	if ((s = slot_find(hash)) != NULL && s->id_token != NULL)
		sealed = xstrdup(s->id_token);
	pthread_mutex_unlock(&sessions_lock);
	token = id_token_open(id, sealed);
	free(sealed);
	return token;
}

/* Signed out here: on to the provider's end_session_url, when there is
 * one, to end its session too. */
static void
logout_done(struct request *r, const char *end_url)
{
	cookie_clear(r);
	if (end_url != NULL)
		moving_on_page(r, "Signed out here; now at the identity provider", end_url);
	else
		reply_redirect(r, 303, "/login");
}

void
ui_logout_post(struct request *r, const struct route *rt)
{
	unsigned char id[SESSION_ID_BYTES];
	char after[300];
	char *id_token = NULL;
	int has_id, is_oidc;

	(void)rt;

	/* Signing out needs no role, but the same proof as any form. */
	if (ui_session_identify(r) && ui_post_guard(r, ROLE_NONE) != 0)
		return;
	has_id = cookie_session_id(r, id) == 0;
	is_oidc = ui_session_is_oidc(r) && r->req->authority.len < 256;
	if (is_oidc && has_id)
		id_token = session_id_token(id);
	if (has_id)
		session_drop(id);
	if (r->who[0] != '\0') /* a sign-out without a session is no event */
		auth_event(r, r->address,
		           &(struct auth_event){.kind = AUTH_EVENT_SIGNED_OUT,
		                                .principal = r->who,
		                                .method = r->auth_method});
	if (is_oidc) {
		snprintf(after, sizeof(after), "%s://%.*s/login",
		         request_is_https(r) ? "https" : "http", (int)r->req->authority.len,
		         r->req->authority.base);
		oidc_end_session(auth_oidc(), r, after, id_token, logout_done);
	} else {
		logout_done(r, NULL);
	}
	if (id_token != NULL)
		sodium_memzero(id_token, strlen(id_token));
	free(id_token);
	sodium_memzero(id, sizeof(id));
}

/* --- the identity provider --------------------------------------------- */

/* The value of cookie name (text, at most size - 1 bytes): 0, or -1. */
static int
cookie_text(struct request *r, const char *name, char *out, size_t size)
{
	size_t name_len = strlen(name);
	ssize_t i = -1;

	while ((i = h2o_find_header(&r->req->headers, H2O_TOKEN_COOKIE, i)) != -1) {
		h2o_iovec_t v = r->req->headers.entries[i].value;
		const char *p = v.base, *end = v.base + v.len;
		while (p < end) {
			const char *semi = memchr(p, ';', (size_t)(end - p)),
			           *stop = semi ? semi : end;
			while (p < stop && *p == ' ')
				p++;
			if ((size_t)(stop - p) > name_len && memcmp(p, name, name_len) == 0 &&
			    p[name_len] == '=') {
				p += name_len + 1;
				if ((size_t)(stop - p) >= size)
					return -1;
				memcpy(out, p, (size_t)(stop - p));
				out[stop - p] = '\0';
				return 0;
			}
			p = stop + 1;
		}
	}
	return -1;
}

static void
binding_cookie(struct request *r, const char *value, int max_age)
{
	char cookie[OIDC_BINDING_MAX + 200];

	/* SameSite=Lax: it must come back on the provider's redirect, a
	 * top-level navigation from another site */
	snprintf(cookie, sizeof(cookie),
	         "%s=%s; Path=/login/oidc; Max-Age=%d; HttpOnly; SameSite=Lax%s",
	         OIDC_BINDING_COOKIE, value, max_age, request_is_https(r) ? "; Secure" : "");
	ui_header(r, "set-cookie", cookie);
}

static void
oidc_begun(struct request *r, int status, const char *url, const char *binding, const char *problem)
{
	if (url == NULL) {
		ui_header(r, "retry-after", "5");
		login_render(r, status, "/", NULL, problem);
		return;
	}
	binding_cookie(r, binding, OIDC_PENDING_TTL_MS / 1000);
	reply_redirect(r, 302, url);
}

void
ui_login_oidc_page(struct request *r, const struct route *rt)
{
	char next[NEXT_MAX + 1] = "/";

	(void)rt;
	if (auth_oidc() == NULL) {
		reply_text(r, 404, "not found");
		return;
	}
	if (request_query_param(r, "next", next, sizeof(next)) != 1 || !next_is_safe(next))
		snprintf(next, sizeof(next), "/");
	oidc_begin(auth_oidc(), r, next, oidc_begun);
}

/* Signed in: the session, and a page that moves on by itself
 * (moving_on_page says why). */
static void
oidc_signed_in(struct request *r, struct oidc_identity *identity, const char *next)
{
	unsigned char id[SESSION_ID_BYTES];
	char who[96];
	const char *to = next_is_safe(next) ? next : "/";

	snprintf(who, sizeof(who), "oidc:%s", identity->name);
	if (session_create(SESSION_OIDC, identity->name, NULL, who, identity->subject,
	                   identity->email, &identity->groups, identity->id_token, id) != 0) {
		auth_event(r, r->address,
		           &(struct auth_event){.kind = AUTH_EVENT_SIGNIN_FAILED,
		                                .principal = who,
		                                .method = "oidc",
		                                .problem = "the session table is full"});
		login_render(r, 503, to, NULL,
		             "Too many people are signed in right now; try again later.");
		return;
	}
	auth_event(r, r->address,
	           &(struct auth_event){.kind = AUTH_EVENT_SIGNED_IN,
	                                .principal = who,
	                                .method = "oidc",
	                                .issuer = oidc_issuer(auth_oidc()),
	                                .subject = identity->subject});
	cookie_set(r, id);
	sodium_memzero(id, sizeof(id));
	binding_cookie(r, "", 0);
	moving_on_page(r, "Signed in", to);
}

static void
oidc_done(struct request *r, int status, struct oidc_identity *identity, const char *next,
          const char *problem)
{
	if (status == 200) {
		oidc_signed_in(r, identity, next);
		return;
	}
	auth_event(r, r->address,
	           &(struct auth_event){.kind = AUTH_EVENT_SIGNIN_FAILED,
	                                .method = "oidc",
	                                .issuer = oidc_issuer(auth_oidc()),
	                                .problem = problem});
	binding_cookie(r, "", 0);
	if (status == 503)
		ui_header(r, "retry-after", "5");
	login_render(r, status, next, NULL, problem);
}

void
ui_login_oidc_callback(struct request *r, const struct route *rt)
{
	char state[256], code[4097], binding[OIDC_BINDING_MAX + 1], error[128], iss[512];

	(void)rt;
	if (auth_oidc() == NULL) {
		reply_text(r, 404, "not found");
		return;
	}
	if (request_query_param(r, "error", error, sizeof(error)) == 1) {
		auth_event(r, r->address,
		           &(struct auth_event){.kind = AUTH_EVENT_SIGNIN_FAILED,
		                                .method = "oidc",
		                                .problem = error});
		binding_cookie(r, "", 0);
		login_render(r, 401, "/", NULL,
		             "The identity provider did not sign you in. Try again, or ask an "
		             "administrator.");
		return;
	}
	/* RFC 9207: a provider that names itself must be ours (a mix-up of
	 * providers is refused before the code goes anywhere) */
	if (request_query_param(r, "iss", iss, sizeof(iss)) != 0 &&
	    (request_query_param(r, "iss", iss, sizeof(iss)) != 1 ||
	     strcmp(iss, oidc_issuer(auth_oidc())) != 0)) {
		auth_event(r, r->address,
		           &(struct auth_event){.kind = AUTH_EVENT_SIGNIN_FAILED,
		                                .method = "oidc",
		                                .problem = "the callback names another issuer"});
		binding_cookie(r, "", 0);
		login_render(r, 400, "/", NULL,
		             "The answer came from another identity provider than this daemon's. "
		             "Start again.");
		return;
	}
	if (request_query_param(r, "state", state, sizeof(state)) != 1 ||
	    request_query_param(r, "code", code, sizeof(code)) != 1 ||
	    cookie_text(r, OIDC_BINDING_COOKIE, binding, sizeof(binding)) != 0) {
		auth_event(r, r->address,
		           &(struct auth_event){.kind = AUTH_EVENT_SIGNIN_FAILED,
		                                .method = "oidc",
		                                .problem = "no state, code or binding cookie"});
		login_render(
		    r, 400, "/", NULL,
		    "This sign-in was not started in this browser, or took too long. Start "
		    "again.");
		return;
	}
	oidc_finish(auth_oidc(), r, state, binding, code, oidc_done);
}
