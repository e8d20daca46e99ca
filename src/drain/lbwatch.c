/*
 * lbwatch.c - the load balancers' runtime access, asked aside (see
 * lbwatch.h).
 *
 * The table is a plain array searched linearly: it holds what the held
 * waits ask about at once (a few entries per node being drained, one per
 * load balancer), and a search costs a few string compares per entry,
 * far below the judgement's own cost. The thread sleeps on a condition
 * variable while the table is empty, so an idle daemon pays nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbwatch.h"
#include "util/timefmt.h"
#include "util/xalloc.h"

enum entry_kind {
	ENTRY_HAPROXY = 0,   /* lbruntime_haproxy: status and sessions */
	ENTRY_VARNISH,       /* lbruntime_varnish: requests in flight */
	ENTRY_VARNISH_HAPPY, /* lbruntime_varnish_happy: its last probes */
};

struct entry {
	enum entry_kind kind;
	char addr[256];
	char backend[160];
	char server[72];
	int64_t asked_at; /* ms: the last judgement that wanted it */
	/* the last reading; taken_at 0 before the first */
	int64_t taken_at; /* ms: when the question was sent */
	int rc;
	struct lb_server_state state;
	unsigned long long bits;
	char why[200];
};

struct lbwatch {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	size_t n;
	struct entry entries[LBWATCH_MAX];
};

/* The entry for the question, or NULL; with lock held. */
static struct entry *
find(struct lbwatch *w, enum entry_kind kind, const char *addr, const char *backend,
     const char *server)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		struct entry *e = &w->entries[i];
		if (e->kind == kind && strcmp(e->addr, addr) == 0 &&
		    strcmp(e->backend, backend) == 0 && strcmp(e->server, server) == 0)
			return e;
	}
	return NULL;
}

/* Asks the load balancer once, without the lock. */
static void
ask(struct entry *e)
{
	e->taken_at = time_monotonic_ms();
	switch (e->kind) {
	case ENTRY_HAPROXY:
		e->rc = lbruntime_haproxy(e->addr, e->backend, e->server, DRAIN_RUNTIME_TIMEOUT_MS,
		                          &e->state, e->why, sizeof(e->why));
		break;
	case ENTRY_VARNISH:
		e->rc = lbruntime_varnish(e->addr, e->backend, DRAIN_RUNTIME_TIMEOUT_MS, &e->state,
		                          e->why, sizeof(e->why));
		break;
	case ENTRY_VARNISH_HAPPY:
		e->rc = lbruntime_varnish_happy(e->addr, e->backend, DRAIN_RUNTIME_TIMEOUT_MS,
		                                &e->bits, e->why, sizeof(e->why));
		break;
	}
}

/* One round: drops entries nobody asked about lately, then asks the load
 * balancers about the others, each on a copy taken under the lock. */
static void
round_once(struct lbwatch *w)
{
	struct entry copy;
	size_t i;

	for (i = 0;; i++) {
		int64_t now = time_monotonic_ms();
		struct entry *e;
		pthread_mutex_lock(&w->lock);
		while (i < w->n && now - w->entries[i].asked_at > LBWATCH_KEEP_MS)
			w->entries[i] = w->entries[--w->n];
		if (i >= w->n) {
			pthread_mutex_unlock(&w->lock);
			return;
		}
		copy = w->entries[i];
		pthread_mutex_unlock(&w->lock);
		ask(&copy);
		pthread_mutex_lock(&w->lock);
		/* the table may have moved meanwhile: find the entry again */
		e = find(w, copy.kind, copy.addr, copy.backend, copy.server);
		if (e != NULL) {
			e->taken_at = copy.taken_at;
			e->rc = copy.rc;
			e->state = copy.state;
			e->bits = copy.bits;
			memcpy(e->why, copy.why, sizeof(e->why));
		}
		pthread_mutex_unlock(&w->lock);
	}
}

static void *
watch_main(void *arg)
{
	struct lbwatch *w = arg;
	struct timespec until;

	pthread_mutex_lock(&w->lock);
	while (1) { /* for the daemon's life */
		if (w->n == 0) {
			pthread_cond_wait(&w->wake, &w->lock);
			continue;
		}
		pthread_mutex_unlock(&w->lock);
		round_once(w);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += DRAIN_IN_FLIGHT_POLL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&w->lock);
		pthread_cond_timedwait(&w->wake, &w->lock, &until);
	}
	return NULL;
}

struct lbwatch *
lbwatch_new(void)
{
	struct lbwatch *w = xcalloc(1, sizeof(*w));

	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	if (pthread_create(&w->thread, NULL, watch_main, w) != 0)
		abort(); /* no thread: like out of memory */
	return w;
}

/* The latest reading of the question taken at or after since; registers
 * the question when new. Returns the reading's rc, or -1 with why. */
static int
lookup(struct lbwatch_view *v, enum entry_kind kind, const char *addr, const char *backend,
       const char *server, struct lb_server_state *state, unsigned long long *bits, char *why,
       size_t why_size)
{
	struct lbwatch *w = v->watch;
	struct entry *e;
	int rc = -1;

	if (strlen(addr) >= sizeof(e->addr) || strlen(backend) >= sizeof(e->backend) ||
	    strlen(server) >= sizeof(e->server)) {
		snprintf(why, why_size, "name too long for runtime access");
		return -1;
	}
	pthread_mutex_lock(&w->lock);
	e = find(w, kind, addr, backend, server);
	if (e == NULL && w->n == LBWATCH_MAX) {
		pthread_mutex_unlock(&w->lock);
		snprintf(why, why_size, "too many load balancer servers watched at once (%d)",
		         LBWATCH_MAX);
		return -1;
	}
	if (e == NULL) {
		e = &w->entries[w->n++];
		memset(e, 0, sizeof(*e));
		e->kind = kind;
		snprintf(e->addr, sizeof(e->addr), "%s", addr);
		snprintf(e->backend, sizeof(e->backend), "%s", backend);
		snprintf(e->server, sizeof(e->server), "%s", server);
		pthread_cond_signal(&w->wake);
	}
	e->asked_at = time_monotonic_ms();
	if (e->taken_at == 0 || e->taken_at < v->since_ms) {
		snprintf(why, why_size, "not read yet");
		v->n_unread++;
	} else {
		rc = e->rc;
		if (state != NULL)
			*state = e->state;
		if (bits != NULL)
			*bits = e->bits;
		if (rc != 0)
			snprintf(why, why_size, "%s", e->why);
	}
	pthread_mutex_unlock(&w->lock);
	return rc;
}

static int
view_haproxy(void *ctx, const char *addr, const char *backend, const char *server,
             struct lb_server_state *out, char *why, size_t why_size)
{
	return lookup(ctx, ENTRY_HAPROXY, addr, backend, server, out, NULL, why, why_size);
}

static int
view_varnish(void *ctx, const char *dir, const char *backend, struct lb_server_state *out,
             char *why, size_t why_size)
{
	return lookup(ctx, ENTRY_VARNISH, dir, backend, "", out, NULL, why, why_size);
}

static int
view_varnish_happy(void *ctx, const char *dir, const char *backend, unsigned long long *bits,
                   char *why, size_t why_size)
{
	return lookup(ctx, ENTRY_VARNISH_HAPPY, dir, backend, "", NULL, bits, why, why_size);
}

static void
view_note(void *ctx, const char *node, const char *text)
{
	struct lbwatch_view *v = ctx;

	if (v->note != NULL)
		v->note(v->note_arg, node, text);
}

void
lbwatch_access(struct lbwatch *w, int64_t since_ms, struct lbwatch_view *view,
               struct drain_access *acc)
{
	memset(view, 0, sizeof(*view));
	view->watch = w;
	view->since_ms = since_ms;
	memset(acc, 0, sizeof(*acc));
	acc->haproxy = view_haproxy;
	acc->varnish = view_varnish;
	acc->varnish_happy = view_varnish_happy;
	acc->note = view_note;
	acc->ctx = view;
}
