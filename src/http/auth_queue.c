/*
 * auth_queue.c - the one password check (auth_check_password) and the
 * slow-down of guessing: failures per client address, the delay, the
 * bounded queue per address taken in turns, and the cache of verified
 * credentials. Who is asking (Basic, Bearer, sessions) is auth.c's.
 *
 * Passwords are stored as argon2id hashes (libsodium crypto_pwhash_str).
 * Verifying one costs tens of milliseconds and 64 MiB by design, so it
 * never runs on a worker's event loop but on the engine's side thread.
 * Verified credentials are then cached under a keyed BLAKE2b of
 * "user\0password" (the key is random per process), so a script making
 * many calls pays once. A cache hit is trusted only while the user still
 * exists with the same password hash, so removing a user or changing a
 * password takes effect at once.
 *
 * A password attempt (Basic or the login form, auth_check_password) goes
 * through these steps; docs/API.md "Authentication" states the policy.
 *
 *   arrival   refused at once with 429 when its address already has
 *             ATTEMPTS_PER_ADDRESS attempts under way, 503 when
 *             ATTEMPTS_MAX are under way in all. Otherwise it counts as
 *             a failure of its address right away (unless the cache
 *             already vouches for it), so parallel guesses see each
 *             other's failures exactly as sequential ones would.
 *   delay     from the fourth failure in FAILURE_WINDOW_MS, every attempt
 *             from the address waits DELAY_BASE_MS doubling up to
 *             DELAY_MAX_MS, computed from the failures before it.
 *   queue     a cache hit is answered here. Else the attempt waits for
 *             hashing in its address's queue; addresses take turns
 *             (round-robin), and CHECKS_IN_FLIGHT attempts at a time are
 *             handed to the side thread, so the engine's queue never
 *             holds more than that and one flooder cannot starve others.
 *   answer    right: its own failure is withdrawn together with the
 *             earlier failures of the same user name from that address
 *             (a typo, then the right password); other names' failures
 *             stay, and tokens never reset anything. Wrong: the failure
 *             stays.
 *
 * A client that goes away drops its attempt wherever it is, and nothing
 * is hashed for it: h2o disposing of the request (an HTTP/2 stream reset,
 * a connection h2o saw close) runs a hook on the request's memory pool;
 * an HTTP/1 connection, which h2o stops reading while a request is under
 * way, is peeked at every SWEEP_MS by its worker (on_sweep) and when the
 * delay ends. A dropped attempt still counts as a failure.
 *
 * Threads: the queue and the counters are shared by all workers (one
 * mutex). An attempt is answered on its own worker: the side thread, or
 * whichever thread finds it must be refused at shutdown, sends it back
 * through a receiver of that worker's h2o queue (one per worker, set up
 * by the worker itself on its first attempt).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "../util/hash.h"
#include "../util/log.h"
#include "../util/timefmt.h"
#include "../util/xalloc.h"
#include "auth_event.h"
#include "auth_internal.h"
#include "http.h"
#include "server_internal.h"

#define CACHE_SLOTS 256
#define CACHE_TTL_MS (10 * 60 * 1000)
#define FAILURE_SLOTS 1024
#define FAILURE_WINDOW_MS (15 * 60 * 1000)
#define FAILURES_FREE 3
#define DELAY_BASE_MS 250
#define DELAY_MAX_MS 8000
#define ATTEMPTS_PER_ADDRESS 8
#define ATTEMPTS_MAX 256
#define CHECKS_IN_FLIGHT 1
#define ADDRESS_BUCKETS 256
#define WORKERS_MAX 64 /* serve --threads allows 32 */
#define SWEEP_MS 250   /* how often a worker looks for gone HTTP/1 clients */
#define HASH_STR_MAX crypto_pwhash_STRBYTES

struct cache_entry {
	unsigned char key[32];
	char user[NODE_NAME_MAX + 1];
	char hash[HASH_STR_MAX];
	int64_t expires_at;
};

/* Failures of an address, or of one user name from an address (user ""
 * for the address as a whole). A hashed slot; a newer key takes it over. */
struct failure_entry {
	char address[64];
	char user[NODE_NAME_MAX + 1];
	int count;
	int64_t last_at;
};

enum attempt_state { ATTEMPT_DELAYING, ATTEMPT_WAITING, ATTEMPT_HASHING, ATTEMPT_ANSWERED };

/* The attempts under way from one client address. */
struct attempt_address {
	char address[64];
	int n_attempts;               /* from arrival to answer */
	struct auth_attempt *head;    /* waiting for hashing, oldest first */
	h2o_linklist_t turn;          /* in auth_state.turns while it has waiting ones */
	struct attempt_address *next; /* in its bucket */
};

/* One password attempt, from arrival to answer. */
struct auth_attempt {
	struct auth_state *auth;
	struct request *r;     /* NULL once the client went away */
	struct worker *worker; /* r's: answered on its thread */
	struct attempt_address *address;
	struct attempt_hold *hold; /* in r's pool, while r lives */
	auth_checked_fn then;
	enum attempt_state state;  /* under auth_state.lock once queued */
	int is_counted;            /* counted as a failure at arrival */
	int is_dropped;            /* its client has gone: answered unhashed */
	_Atomic int is_wanted;     /* 0: the client is gone, do not hash */
	struct auth_attempt *next; /* in its address's queue */
	h2o_linklist_t all;        /* in auth_state.attempts */
	h2o_linklist_t on_worker;  /* in its auth_worker.attempts */
	char user[NODE_NAME_MAX + 1];
	char password[PASSWORD_MAX + 1];
	unsigned char key[32];
	/* the result */
	int status; /* 200, 401, 503; 0 when skipped: its client had left */
	struct user verified;
	char name[NODE_NAME_MAX + 1];
	char hash[HASH_STR_MAX];
	struct engine_job job;
	h2o_multithread_message_t message;
};

/* Lives in the request's memory pool: its disposal means the client has
 * gone (or the request is over). */
struct attempt_hold {
	struct auth_attempt *attempt;
};

/* A worker's own part: only its thread touches it (but for senders to
 * the receiver). */
struct auth_worker {
	h2o_multithread_receiver_t receiver; /* answers coming back */
	int is_ready;
	h2o_linklist_t attempts; /* its attempts under way */
	h2o_loop_t *loop;
	h2o_timeout_t sweep_timeout; /* looks for gone HTTP/1 clients */
	h2o_timeout_entry_t sweep;
};

struct auth_state {
	pthread_mutex_t lock; /* everything below but the secret */
	unsigned char secret[crypto_generichash_KEYBYTES];
	struct cache_entry cache[CACHE_SLOTS];
	struct failure_entry failures[FAILURE_SLOTS];
	struct attempt_address *addresses[ADDRESS_BUCKETS];
	h2o_linklist_t turns;    /* addresses with waiting attempts, next turn first */
	h2o_linklist_t attempts; /* all of them, for auth_state_free */
	int n_attempts;
	int n_in_flight;
	int64_t n_hashed, n_dropped, n_refused; /* since start, logged at the end */
	struct server *server;                  /* set by the first attempt */
	auth_session_fn session_identify;
	struct auth_worker workers[WORKERS_MAX];
};

struct auth_state *
auth_state_new(void)
{
	struct auth_state *a = xcalloc(1, sizeof(*a));

	pthread_mutex_init(&a->lock, NULL);
	randombytes_buf(a->secret, sizeof(a->secret));
	h2o_linklist_init_anchor(&a->turns);
	h2o_linklist_init_anchor(&a->attempts);
	return a;
}

static void attempt_free(struct auth_attempt *t);

/* After the workers and the engine have stopped: attempts nobody will
 * answer any more. */
void
auth_state_free(struct auth_state *a)
{
	char hashed[24], dropped[24], refused[24];

	if (a == NULL)
		return;
	snprintf(hashed, sizeof(hashed), "%lld", (long long)a->n_hashed);
	snprintf(dropped, sizeof(dropped), "%lld", (long long)a->n_dropped);
	snprintf(refused, sizeof(refused), "%lld", (long long)a->n_refused);
	log_kv(LOG_INFO, "password checks", "hashed", hashed, "dropped", dropped, "refused",
	       refused, NULL);
	while (!h2o_linklist_is_empty(&a->attempts)) {
		struct auth_attempt *t =
		    H2O_STRUCT_FROM_MEMBER(struct auth_attempt, all, a->attempts.next);
		if (t->hold != NULL)
			t->hold->attempt = NULL;
		attempt_free(t);
	}
	pthread_mutex_destroy(&a->lock);
	sodium_memzero(a, sizeof(*a));
	free(a);
}

void
auth_set_session_source(struct auth_state *a, auth_session_fn identify)
{
	a->session_identify = identify;
}

/* --- failures (caller holds the lock) ------------------------------------ */

/* The live entry of (address, user), or, when create, a fresh one in its
 * slot; NULL otherwise. user "" is the address as a whole. */
static struct failure_entry *
failure_entry(struct auth_state *a, const char *address, const char *user, int create)
{
	uint64_t h = fnv1a_str(fnv1a_str(FNV1A_START, address) * 31, user);
	struct failure_entry *f = &a->failures[h % FAILURE_SLOTS];
	int is_live = strcmp(f->address, address) == 0 && strcmp(f->user, user) == 0 &&
	              time_now_ms() - f->last_at < FAILURE_WINDOW_MS;

	if (is_live)
		return f;
	if (!create)
		return NULL;
	snprintf(f->address, sizeof(f->address), "%s", address);
	snprintf(f->user, sizeof(f->user), "%s", user);
	f->count = 0;
	return f;
}

/* How long an attempt from address must wait now. */
static int64_t
failure_delay(struct auth_state *a, const char *address)
{
	struct failure_entry *f = failure_entry(a, address, "", 0);
	int shift;

	if (f == NULL || f->count <= FAILURES_FREE)
		return 0;
	shift = f->count - FAILURES_FREE - 1;
	return shift >= 5 ? DELAY_MAX_MS : (int64_t)DELAY_BASE_MS << shift;
}

static void
failure_add(struct auth_state *a, const char *address, const char *user)
{
	int64_t now = time_now_ms();
	struct failure_entry *f = failure_entry(a, address, "", 1);

	f->count++;
	f->last_at = now;
	if (user[0] != '\0') {
		f = failure_entry(a, address, user, 1);
		f->count++;
		f->last_at = now;
	}
}

/* user's password was right from address: its failures from there
 * (this attempt's included) no longer count. */
static void
failure_forgive(struct auth_state *a, const char *address, const char *user)
{
	struct failure_entry *mine, *all;

	if (user[0] == '\0' || (mine = failure_entry(a, address, user, 0)) == NULL)
		return;
	all = failure_entry(a, address, "", 0);
	if (all != NULL)
		all->count = all->count > mine->count ? all->count - mine->count : 0;
	mine->count = 0;
}

/* --- the cache ----------------------------------------------------------- */

static void
cache_key(struct auth_state *a, const char *user, const char *password, unsigned char key[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, a->secret, sizeof(a->secret), 32);
	crypto_generichash_update(&st, (const unsigned char *)user, strlen(user) + 1);
	crypto_generichash_update(&st, (const unsigned char *)password, strlen(password));
	crypto_generichash_final(&st, key, 32);
}

/* The user of a cached, still valid credential, or NULL. */
static const struct user *
cache_lookup(struct request *r, const unsigned char key[32], const char *user)
{
	struct auth_state *a = r->server->auth;
	struct cache_entry *e = &a->cache[key[0]];
	const struct user *u = model_find_user(request_snapshot(r), user);
	int is_hit;

	pthread_mutex_lock(&a->lock);
	is_hit = u != NULL && sodium_memcmp(e->key, key, 32) == 0 && strcmp(e->user, user) == 0 &&
	         strcmp(e->hash, u->password_hash) == 0 && e->expires_at > time_now_ms();
	pthread_mutex_unlock(&a->lock);
	return is_hit ? u : NULL;
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

/* --- argon2id -------------------------------------------------------------- */

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

/* --- attempts: addresses (caller holds the lock) ------------------------- */

static struct attempt_address **
address_bucket(struct auth_state *a, const char *address)
{
	return &a->addresses[fnv1a_str(FNV1A_START, address) % ADDRESS_BUCKETS];
}

static struct attempt_address *
address_get(struct auth_state *a, const char *address, int create)
{
	struct attempt_address **b = address_bucket(a, address), *x;

	for (x = *b; x != NULL; x = x->next)
		if (strcmp(x->address, address) == 0)
			return x;
	if (!create)
		return NULL;
	x = xcalloc(1, sizeof(*x));
	snprintf(x->address, sizeof(x->address), "%s", address);
	x->next = *b;
	*b = x;
	return x;
}

static void
address_put(struct auth_state *a, struct attempt_address *x)
{
	struct attempt_address **p;

	if (--x->n_attempts > 0)
		return;
	for (p = address_bucket(a, x->address); *p != x; p = &(*p)->next)
		;
	*p = x->next;
	free(x);
}

/* Takes t out of its address's queue (and the address out of the turns
 * when that was its last waiting attempt). */
static void
address_unqueue(struct auth_state *a, struct auth_attempt *t)
{
	struct attempt_address *x = t->address;
	struct auth_attempt **p;

	(void)a;
	for (p = &x->head; *p != NULL && *p != t; p = &(*p)->next)
		;
	if (*p == t)
		*p = t->next;
	t->next = NULL;
	if (x->head == NULL && h2o_linklist_is_linked(&x->turn))
		h2o_linklist_unlink(&x->turn);
}

/* --- attempts: lifetime -------------------------------------------------- */

static void
attempt_free(struct auth_attempt *t)
{
	struct auth_state *a = t->auth;

	pthread_mutex_lock(&a->lock);
	address_put(a, t->address);
	a->n_attempts--;
	h2o_linklist_unlink(&t->all);
	pthread_mutex_unlock(&a->lock);
	if (h2o_linklist_is_linked(&t->on_worker))
		h2o_linklist_unlink(&t->on_worker);
	if (t->hold != NULL)
		t->hold->attempt = NULL;
	sodium_memzero(t, sizeof(*t));
	free(t);
}

static void
log_failure(const struct auth_attempt *t)
{
	auth_event(t->r, t->address->address,
	           &(struct auth_event){.kind = AUTH_EVENT_SIGNIN_FAILED,
	                                .principal = t->user,
	                                .method = "password",
	                                .problem = "wrong user name or password"});
}

/* On t's worker: the verdict, the counters, and the reply (when the
 * client is still there). Frees t. */
static void
attempt_answer(struct auth_attempt *t)
{
	struct auth_state *a = t->auth;
	struct auth_verdict v = {.status = t->status};
	struct request *r = t->r;

	if (t->status == 200) {
		cache_store(a, t->key, t->verified.name, t->verified.password_hash);
		pthread_mutex_lock(&a->lock);
		failure_forgive(a, t->address->address, t->user);
		pthread_mutex_unlock(&a->lock);
		v.user = &t->verified;
	} else if (t->status == 401) {
		if (!t->is_dropped)
			log_failure(t);
		v.problem = "The user name or the password is wrong.";
	} else {
		v.problem = "The daemon is stopping; try again shortly.";
	}
	t->state = ATTEMPT_ANSWERED;
	if (r != NULL)
		t->then(r, &v); /* may dispose of r: the hold lets go of t */
	attempt_free(t);
}

static void
attempt_accept_user(struct auth_attempt *t, const struct user *u)
{
	snprintf(t->name, sizeof(t->name), "%s", u->name);
	snprintf(t->hash, sizeof(t->hash), "%s", u->password_hash);
	t->verified = (struct user){t->name, u->role, t->hash, u->created_at};
	t->status = 200;
}

/* The request is over or its client has gone. */
static void
hold_dispose(void *p)
{
	struct attempt_hold *hold = p;
	struct auth_attempt *t = hold->attempt;
	struct auth_state *a;
	int is_queued, is_mine;

	if (t == NULL)
		return;
	a = t->auth;
	t->hold = NULL;
	t->r = NULL;
	atomic_store(&t->is_wanted, 0);
	pthread_mutex_lock(&a->lock);
	is_queued = t->state == ATTEMPT_WAITING;
	is_mine = is_queued || t->state == ATTEMPT_DELAYING;
	if (is_queued)
		address_unqueue(a, t);
	if (is_mine)
		a->n_dropped++;
	pthread_mutex_unlock(&a->lock);
	if (is_queued)
		t->worker->n_pending--;
	/* A delaying attempt's timer went with the request, a queued one is
	 * out of the queue now: both are dropped here, unhashed. A hashing
	 * one is freed when it comes back, an answered one by attempt_answer. */
	if (is_mine)
		attempt_free(t);
}

/* --- attempts: the queue ------------------------------------------------- */

/* Side thread: the slow part, unless the client has gone meanwhile. */
static int
attempt_hash(struct engine_tx *tx, struct engine_job *job, struct error *err)
{
	struct auth_attempt *t = job->data;
	int is_wanted = atomic_load(&t->is_wanted);
	const struct user *u;

	(void)err;
	pthread_mutex_lock(&t->auth->lock);
	if (is_wanted)
		t->auth->n_hashed++;
	else
		t->auth->n_dropped++;
	pthread_mutex_unlock(&t->auth->lock);
	t->status = 0; /* not checked: its client has gone */
	if (is_wanted) {
		u = auth_verify_password(tx->model, t->user, t->password);
		if (u != NULL)
			attempt_accept_user(t, u);
		else
			t->status = 401;
	}
	sodium_memzero(t->password, sizeof(t->password));
	return 0;
}

static void attempt_send_home(struct auth_attempt *t);

/* Any thread: hands the next attempts, in turn by address, to the side
 * thread while fewer than CHECKS_IN_FLIGHT are there. At shutdown they
 * are sent home unhashed instead, to be refused. */
static void
pump(struct auth_state *a)
{
	struct auth_attempt *go = NULL, *t;
	struct server *s;
	int is_stopping;

	pthread_mutex_lock(&a->lock);
	s = a->server;
	is_stopping = atomic_load(&s->is_stopping);
	while ((a->n_in_flight < CHECKS_IN_FLIGHT || is_stopping) &&
	       !h2o_linklist_is_empty(&a->turns)) {
		struct attempt_address *x =
		    H2O_STRUCT_FROM_MEMBER(struct attempt_address, turn, a->turns.next);
		t = x->head;
		x->head = t->next;
		h2o_linklist_unlink(&x->turn);
		if (x->head != NULL)
			h2o_linklist_insert(&a->turns, &x->turn); /* to the back */
		t->state = ATTEMPT_HASHING;
		a->n_in_flight++;
		t->next = go;
		go = t;
	}
	pthread_mutex_unlock(&a->lock);
	while ((t = go) != NULL) {
		go = t->next;
		t->next = NULL;
		if (is_stopping) {
			t->job.rc = -1;
			attempt_send_home(t);
		} else {
			engine_submit(s->engine, &t->job);
		}
	}
}

/* Any thread: t leaves the side thread's hands for its worker. */
static void
attempt_send_home(struct auth_attempt *t)
{
	struct auth_state *a = t->auth;

	pthread_mutex_lock(&a->lock);
	a->n_in_flight--;
	pthread_mutex_unlock(&a->lock);
	pump(a);
	/* the last touch: t may be freed on its worker from here on */
	h2o_multithread_send_message(&a->workers[t->worker->id].receiver, &t->message);
}

/* Side thread (or the engine refusing it at shutdown). */
static void
attempt_hashed(struct engine_job *job)
{
	attempt_send_home(job->data);
}

/* t's worker: attempts back from hashing. */
static void
on_attempts_home(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
	(void)receiver;
	while (!h2o_linklist_is_empty(messages)) {
		h2o_multithread_message_t *m =
		    H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
		struct auth_attempt *t = H2O_STRUCT_FROM_MEMBER(struct auth_attempt, message, m);

		h2o_linklist_unlink(&m->link);
		t->worker->n_pending--;
		if (t->job.rc != 0) {
			t->status = 503; /* refused at shutdown */
		} else if (t->status == 0) {
			t->is_dropped = 1;
			t->status = 401;
		}
		attempt_answer(t);
	}
}

/* Answers an attempt whose client has gone, unhashed (a 401 nobody reads,
 * so that h2o finishes the request and closes the connection). */
static void
attempt_drop(struct auth_attempt *t)
{
	struct auth_state *a = t->auth;

	pthread_mutex_lock(&a->lock);
	a->n_dropped++;
	pthread_mutex_unlock(&a->lock);
	t->is_dropped = 1;
	t->status = 401;
	attempt_answer(t);
}

/* A worker's timer: drops its attempts whose HTTP/1 clients have gone.
 * A delaying one is only marked (its timer is request_after's, in
 * request.c) and dropped when the delay ends; a hashing one is hashed
 * only if the side thread has not started it yet. */
static void
on_sweep(h2o_timeout_entry_t *entry)
{
	struct auth_worker *aw = H2O_STRUCT_FROM_MEMBER(struct auth_worker, sweep, entry);
	h2o_linklist_t gone, *node, *next;

	h2o_linklist_init_anchor(&gone);
	for (node = aw->attempts.next; node != &aw->attempts; node = next) {
		struct auth_attempt *t =
		    H2O_STRUCT_FROM_MEMBER(struct auth_attempt, on_worker, node);
		int is_waiting;

		next = node->next;
		if (t->r == NULL || t->is_dropped || !request_client_is_gone(t->r))
			continue;
		atomic_store(&t->is_wanted, 0);
		pthread_mutex_lock(&t->auth->lock);
		if (t->state == ATTEMPT_DELAYING)
			t->is_dropped = 1;
		is_waiting = t->state == ATTEMPT_WAITING;
		if (is_waiting)
			address_unqueue(t->auth, t);
		pthread_mutex_unlock(&t->auth->lock);
		if (is_waiting) {
			t->worker->n_pending--;
			h2o_linklist_unlink(node);
			h2o_linklist_insert(&gone, node);
		}
	}
	while (!h2o_linklist_is_empty(&gone))
		attempt_drop(H2O_STRUCT_FROM_MEMBER(struct auth_attempt, on_worker, gone.next));
	if (!h2o_linklist_is_empty(&aw->attempts))
		h2o_timeout_link(aw->loop, &aw->sweep_timeout, entry);
}

/* After the delay: a cache hit is answered, anything else queued. */
static void
attempt_go_on(struct request *r)
{
	struct auth_attempt *t = r->auth_attempt;
	struct auth_state *a = t->auth;
	const struct user *u = cache_lookup(r, t->key, t->user);

	r->auth_attempt = NULL;
	if (t->is_dropped || request_client_is_gone(r)) {
		attempt_drop(t);
		return;
	}
	if (u != NULL || atomic_load(&r->server->is_stopping)) {
		if (u != NULL)
			attempt_accept_user(t, u);
		else
			t->status = 503;
		attempt_answer(t);
		return;
	}
	pthread_mutex_lock(&a->lock);
	if (!t->is_counted) /* the cache vouched for it at arrival, no more */
		failure_add(a, t->address->address, t->user);
	t->is_counted = 1;
	t->state = ATTEMPT_WAITING;
	if (t->address->head == NULL) {
		t->address->head = t;
		h2o_linklist_insert(&a->turns, &t->address->turn);
	} else {
		struct auth_attempt *last = t->address->head;
		while (last->next != NULL)
			last = last->next;
		last->next = t;
	}
	pthread_mutex_unlock(&a->lock);
	t->worker->n_pending++; /* the worker outlives it at shutdown */
	pump(a);
}

/* Answers an attempt refused at arrival. */
static void
refuse(struct request *r, int status, const char *problem, auth_checked_fn then)
{
	struct auth_verdict v = {.status = status, .problem = problem};
	struct auth_state *a = r->server->auth;

	pthread_mutex_lock(&a->lock);
	a->n_refused++;
	pthread_mutex_unlock(&a->lock);
	auth_event(r, r->address,
	           &(struct auth_event){
	               .kind = AUTH_EVENT_SIGNIN_FAILED, .method = "password", .problem = problem});
	then(r, &v);
}

void
auth_stats(struct auth_state *a, struct auth_stats *out)
{
	pthread_mutex_lock(&a->lock);
	out->pending = a->n_attempts;
	out->hashed = a->n_hashed;
	out->dropped = a->n_dropped;
	out->refused = a->n_refused;
	pthread_mutex_unlock(&a->lock);
}

/* The worker's own part, set up on its first attempt. */
static struct auth_worker *
worker_part(struct auth_state *a, struct worker *w)
{
	struct auth_worker *aw;

	if (w->id >= WORKERS_MAX)
		abort(); /* serve refuses more threads than that */
	aw = &a->workers[w->id];
	if (!aw->is_ready) {
		h2o_multithread_register_receiver(w->ctx.queue, &aw->receiver, on_attempts_home);
		h2o_linklist_init_anchor(&aw->attempts);
		aw->loop = w->ctx.loop;
		h2o_timeout_init(aw->loop, &aw->sweep_timeout, SWEEP_MS);
		aw->sweep.cb = on_sweep;
		aw->is_ready = 1;
	}
	return aw;
}

/* Admits one more attempt from address: 0 (counted in *x and overall),
 * or 429 / 503. Caller holds the lock. */
static int
attempt_admit(struct auth_state *a, const char *address, struct attempt_address **x)
{
	*x = address_get(a, address, 0);
	if (*x != NULL && (*x)->n_attempts >= ATTEMPTS_PER_ADDRESS)
		return 429;
	if (a->n_attempts >= ATTEMPTS_MAX)
		return 503;
	*x = address_get(a, address, 1);
	(*x)->n_attempts++;
	a->n_attempts++;
	return 0;
}

static struct auth_attempt *
attempt_new(struct request *r, struct attempt_address *x, const char *user, const char *password,
            const unsigned char key[32], auth_checked_fn then)
{
	struct auth_state *a = r->server->auth;
	struct auth_worker *aw = worker_part(a, r->worker);
	struct auth_attempt *t = xcalloc(1, sizeof(*t));

	t->auth = a;
	t->r = r;
	t->worker = r->worker;
	t->address = x;
	t->then = then;
	t->state = ATTEMPT_DELAYING;
	atomic_store(&t->is_wanted, 1);
	snprintf(t->user, sizeof(t->user), "%s", user);
	snprintf(t->password, sizeof(t->password), "%s", password);
	memcpy(t->key, key, sizeof(t->key));
	t->job.run = attempt_hash;
	t->job.is_side = 1;
	t->job.done = attempt_hashed;
	t->job.data = t;
	snprintf(t->job.who_address, sizeof(t->job.who_address), "%s", r->address);
	t->hold = h2o_mem_alloc_shared(&r->req->pool, sizeof(*t->hold), hold_dispose);
	t->hold->attempt = t;
	h2o_linklist_insert(&aw->attempts, &t->on_worker);
	if (!h2o_timeout_is_linked(&aw->sweep))
		h2o_timeout_link(aw->loop, &aw->sweep_timeout, &aw->sweep);
	pthread_mutex_lock(&a->lock);
	h2o_linklist_insert(&a->attempts, &t->all);
	pthread_mutex_unlock(&a->lock);
	return t;
}

void
auth_check_password(struct request *r, const char *user, const char *password, auth_checked_fn then)
{
	struct auth_state *a = r->server->auth;
	struct attempt_address *x = NULL;
	const struct user *cached;
	unsigned char key[32];
	struct auth_attempt *t;
	int64_t delay;
	int status;

	worker_part(a, r->worker);
	if (strlen(user) > NODE_NAME_MAX || strlen(password) > PASSWORD_MAX) {
		struct auth_verdict v = {401, "The user name or the password is wrong.", NULL};
		then(r, &v);
		return;
	}
	if (atomic_load(&r->server->is_stopping)) {
		refuse(r, 503, "The daemon is stopping; try again shortly.", then);
		return;
	}
	cache_key(a, user, password, key);
	cached = cache_lookup(r, key, user);
	/* one critical section: parallel attempts each see the ones before */
	pthread_mutex_lock(&a->lock);
	a->server = r->server;
	delay = failure_delay(a, r->address);
	if (cached != NULL && delay == 0) {
		status = 200; /* holds nothing, so no bound applies */
		failure_forgive(a, r->address, user);
	} else {
		status = attempt_admit(a, r->address, &x);
		if (status == 0 && cached == NULL)
			failure_add(a, r->address, user);
	}
	pthread_mutex_unlock(&a->lock);
	if (status == 200) {
		struct auth_verdict v = {200, NULL, cached};
		then(r, &v);
	} else if (status == 429) {
		refuse(r, 429,
		       "Too many password checks from this address are under way; "
		       "wait for their answers, or use a token.",
		       then);
	} else if (status == 503) {
		refuse(r, 503,
		       "Too many password checks are under way; try again shortly, "
		       "or use a token.",
		       then);
	} else {
		t = attempt_new(r, x, user, password, key, then);
		t->is_counted = cached == NULL;
		r->auth_attempt = t;
		request_after(r, delay, attempt_go_on);
	}
	sodium_memzero(key, sizeof(key));
}

/* auth.c's: deny counts credentials wrong without a check as a failure
 * of the address. */
void
auth_queue_count_failure(struct auth_state *a, const char *address)
{
	pthread_mutex_lock(&a->lock);
	failure_add(a, address, "");
	pthread_mutex_unlock(&a->lock);
}

auth_session_fn
auth_session_source(const struct auth_state *a)
{
	return a->session_identify;
}
