/*
 * observe.c - observed probes and check states (see observe.h).
 *
 * A fixed hash table of BUCKETS chains of node entries; bucket b is
 * guarded by stripe lock b % STRIPES. A probe hashes "cluster/node",
 * takes one stripe lock, reads the check state, updates (or adds) its
 * client slot and lets go: no allocation once the node entry and the
 * client slot exist (a node entry is allocated at its first probe, its
 * client array doubles from 2 up to OBSERVE_CLIENTS_MAX + OBSERVE_LBS_MAX
 * slots). Everything else (the API, the checker, the sweep) takes the
 * same locks and copies out, so no pointer into the table ever leaves a
 * critical section.
 *
 * Why stripes and not per-worker tables written lock-free: a load
 * balancer usually opens a new connection per check, and with several
 * workers consecutive checks land on different workers; answers "in a
 * row" would then have to be stitched together from several tables. One
 * table keeps them exact, and an uncontended mutex costs a few tens of
 * nanoseconds, well below what parsing the request costs.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/hash.h"
#include "../util/utf8.h"
#include "../util/xalloc.h"
#include "interest.h"
#include "observe.h"

#define BUCKETS 4096
#define STRIPES 64
#define CLIENTS_FIRST 2

struct client {
	enum observe_protocol protocol;
	char lb[NODE_NAME_MAX + 1]; /* "" when unnamed */
	char address[OBSERVE_ADDRESS_MAX + 1];
	char user_agent[OBSERVE_USER_AGENT_MAX + 1];
	int has_user_agent;
	int64_t first_at, last_at;
	int64_t interval_ms;
	int64_t changed_at; /* the node's changed_at when last answered */
	enum observe_answer last_answer;
	uint32_t consecutive, since_change;
	/* what was last reported to the other daemons */
	uint64_t reported_gen; /* observe.report_gen when reported; 0 never */
	enum observe_answer reported_answer;
	uint32_t reported_since_change;
	int64_t reported_at; /* last_at as reported */
};

struct entry {
	struct entry *next;
	uint64_t hash;
	char cluster[NODE_NAME_MAX + 1];
	char node[NODE_NAME_MAX + 1];
	size_t n_clients, cap_clients;
	struct client *clients; /* named and unnamed ones, mixed */
	uint64_t n_untracked, n_untracked_lbs;
	int64_t untracked_at, untracked_lbs_at;
	uint64_t seq;
	int has_check;
	struct observe_check check;
};

/* Answer counters of one cluster. The name is written before the slot
 * is published (n_counted, release), and never changes afterwards. */
struct answer_counts {
	char cluster[NODE_NAME_MAX + 1];
	_Atomic uint64_t n[OBSERVE_ANSWERS];
};

struct observe {
	pthread_mutex_t locks[STRIPES];
	struct entry *buckets[BUCKETS];
	atomic_int watchers;
	void (*notify)(void *arg);
	void *notify_arg;
	/* Append-only, so a probe finds its cluster's slot without a lock (a
	 * few strcmp over the clusters there are); only adding a slot takes
	 * counted_lock. */
	pthread_mutex_t counted_lock;
	_Atomic size_t n_counted;
	struct answer_counts counted[OBSERVE_CLUSTERS_MAX];
	_Atomic uint64_t n_uncounted;
	_Atomic uint64_t report_gen; /* bumped to report every client again */
	/* Answers recorded for clients: a report falls due only with one
	 * (or with report_gen), so a collect that finds both as the last
	 * complete one left them has nothing to walk for. Those two are the
	 * collecting thread's own. */
	_Atomic uint64_t n_recorded;
	uint64_t collected_recorded, collected_gen;
	_Atomic int is_collect_armed; /* call collect_wake at the next answer */
	void (*collect_wake)(void *arg);
	void *collect_wake_arg;
	pthread_mutex_t remote_lock; /* guards the two below */
	struct probe_report *remote; /* sorted by cluster, node */
	size_t n_remote;
	struct interest *interest;     /* the nodes whose remote reports are read */
	_Atomic uint64_t remote_reads; /* reads of them done (observe_interest_read) */
};

/* --- answers --------------------------------------------------------- */

static const struct {
	int http_status;
	const char *http_body;
	const char *http_text;
	const char *agent_line;
	const char *name;
} answers[] = {
    [OBSERVE_SERVING] = {200, "OK", "200 OK", "up ready", "serving"},
    [OBSERVE_DOWN] = {503, "node is down", "503 node is down",
                      "ready down #application check failing", "down"},
    [OBSERVE_DRAIN] = {503, "node is draining", "503 node is draining", "up drain", "drain"},
    [OBSERVE_DRAIN_DOWN] = {503, "node is draining", "503 node is draining",
                            "drain down #application check failing", "drain_down"},
    [OBSERVE_OFFLINE] = {503, "node is offline", "503 node is offline", "maint", "offline"},
};

int
observe_answer_is_serving(enum observe_answer a)
{
	return a == OBSERVE_SERVING;
}

int
observe_answer_http_status(enum observe_answer a)
{
	return answers[a].http_status;
}

const char *
observe_answer_http_body(enum observe_answer a)
{
	return answers[a].http_body;
}

const char *
observe_answer_agent_line(enum observe_answer a)
{
	return answers[a].agent_line;
}

const char *
observe_answer_text(enum observe_protocol p, enum observe_answer a)
{
	return p == OBSERVE_AGENT ? answers[a].agent_line : answers[a].http_text;
}

const char *
observe_answer_name(enum observe_answer a)
{
	return answers[a].name;
}

const char *
observe_protocol_name(enum observe_protocol p)
{
	return p == OBSERVE_AGENT ? "agent" : "http";
}

/* --- the table -------------------------------------------------------- */

struct observe *
observe_new(void)
{
	struct observe *o = xcalloc(1, sizeof(*o));
	int i;

	for (i = 0; i < STRIPES; i++)
		pthread_mutex_init(&o->locks[i], NULL);
	pthread_mutex_init(&o->counted_lock, NULL);
	pthread_mutex_init(&o->remote_lock, NULL);
	atomic_store(&o->report_gen, 1);
	o->interest = interest_new();
	return o;
}

static void
entry_free(struct entry *e)
{
	free(e->clients);
	free(e);
}

void
observe_free(struct observe *o)
{
	size_t b;
	int i;

	if (o == NULL)
		return;
	for (b = 0; b < BUCKETS; b++) {
		struct entry *e = o->buckets[b], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			entry_free(e);
		}
	}
	for (i = 0; i < STRIPES; i++)
		pthread_mutex_destroy(&o->locks[i]);
	pthread_mutex_destroy(&o->counted_lock);
	pthread_mutex_destroy(&o->remote_lock);
	free(o->remote);
	interest_free(o->interest);
	free(o);
}

/* FNV-1a of "cluster/node". */
static uint64_t
key_hash(const char *cluster, const char *node, size_t node_len)
{
	return fnv1a(fnv1a(fnv1a_str(FNV1A_START, cluster), "/", 1), node, node_len);
}

static pthread_mutex_t *
lock_for(struct observe *o, uint64_t hash)
{
	return &o->locks[(hash % BUCKETS) % STRIPES];
}

/* The entry of the node (caller holds its lock), or NULL. */
static struct entry *
entry_find(struct observe *o, uint64_t hash, const char *cluster, const char *node, size_t node_len)
{
	struct entry *e = o->buckets[hash % BUCKETS];

	for (; e != NULL; e = e->next)
		if (e->hash == hash && strncmp(e->node, node, node_len) == 0 &&
		    e->node[node_len] == '\0' && strcmp(e->cluster, cluster) == 0)
			return e;
	return NULL;
}

/* The entry of the node, added when absent (caller holds its lock); NULL
 * for names too long to be real (never for names from a snapshot). */
static struct entry *
entry_get(struct observe *o, uint64_t hash, const char *cluster, const char *node, size_t node_len)
{
	struct entry *e = entry_find(o, hash, cluster, node, node_len);

	if (e != NULL)
		return e;
	if (strlen(cluster) > NODE_NAME_MAX || node_len > NODE_NAME_MAX)
		return NULL;
	e = xcalloc(1, sizeof(*e));
	e->hash = hash;
	memcpy(e->cluster, cluster, strlen(cluster) + 1);
	memcpy(e->node, node, node_len);
	e->node[node_len] = '\0';
	e->next = o->buckets[hash % BUCKETS];
	o->buckets[hash % BUCKETS] = e;
	return e;
}

static int
client_is_named(const struct client *c)
{
	return c->lb[0] != '\0';
}

/* Does slot c belong to client who, whose User-Agent is ua (already
 * sanitised, NULL when none was sent)? A named client is its name and
 * protocol; an unnamed one its protocol, address and User-Agent. */
static int
client_matches(const struct client *c, const struct observe_client *who, const char *ua)
{
	if (c->protocol != who->protocol)
		return 0;
	if (who->lb != NULL)
		return strncmp(c->lb, who->lb, who->lb_len) == 0 && c->lb[who->lb_len] == '\0';
	if (client_is_named(c) || strcmp(c->address, who->address) != 0)
		return 0;
	if (ua == NULL)
		return !c->has_user_agent;
	return c->has_user_agent && strcmp(c->user_agent, ua) == 0;
}

/* Address and User-Agent: a named client keeps the last ones it sent. */
static void
client_set_origin(struct client *c, const struct observe_client *who, const char *ua)
{
	snprintf(c->address, sizeof(c->address), "%s", who->address);
	c->has_user_agent = ua != NULL;
	c->user_agent[0] = '\0';
	if (ua != NULL)
		memcpy(c->user_agent, ua, strlen(ua) + 1);
}

static void
client_init(struct client *c, const struct observe_client *who, const char *ua, int64_t now)
{
	memset(c, 0, sizeof(*c));
	c->protocol = who->protocol;
	if (who->lb != NULL) {
		memcpy(c->lb, who->lb, who->lb_len);
		c->lb[who->lb_len] = '\0';
	}
	client_set_origin(c, who, ua);
	c->first_at = now;
}

/* The slot of client who in e (caller holds the lock): its own, a free
 * one while its kind (named or not) is under its cap, or the least
 * recently seen one of its kind when that is stale; NULL when every slot
 * of its kind is in recent use. */
static struct client *
client_slot(struct entry *e, const struct observe_client *who, const char *ua, int64_t now)
{
	int is_named = who->lb != NULL;
	size_t i, n_kind = 0, cap_kind = is_named ? OBSERVE_LBS_MAX : OBSERVE_CLIENTS_MAX;
	struct client *oldest = NULL;

	for (i = 0; i < e->n_clients; i++) {
		if (client_matches(&e->clients[i], who, ua))
			return &e->clients[i];
		if (client_is_named(&e->clients[i]) != is_named)
			continue;
		n_kind++;
		if (oldest == NULL || e->clients[i].last_at < oldest->last_at)
			oldest = &e->clients[i];
	}
	if (n_kind < cap_kind && e->n_clients == e->cap_clients &&
	    e->cap_clients < OBSERVE_CLIENTS_MAX + OBSERVE_LBS_MAX) {
		size_t cap = e->cap_clients == 0 ? CLIENTS_FIRST : e->cap_clients * 2;
		e->clients = xreallocarray(e->clients, cap, sizeof(*e->clients));
		e->cap_clients = cap;
		oldest = NULL;
	}
	if (n_kind < cap_kind && e->n_clients < e->cap_clients) {
		client_init(&e->clients[e->n_clients], who, ua, now);
		return &e->clients[e->n_clients++];
	}
	if (oldest != NULL && oldest->last_at < now - OBSERVE_STALE_MS) {
		client_init(oldest, who, ua, now);
		return oldest;
	}
	return NULL;
}

static void
client_record(struct client *c, const struct observe_client *who, const char *ua,
              enum observe_answer a, int64_t changed_at, int64_t now)
{
	int is_first = c->last_at == 0;
	int same_kind =
	    !is_first && observe_answer_is_serving(c->last_answer) == observe_answer_is_serving(a);

	if (!is_first) {
		int64_t gap = now > c->last_at ? now - c->last_at : 1;
		c->interval_ms = c->interval_ms == 0 ? gap : (c->interval_ms * 3 + gap) / 4;
		if (client_is_named(c))
			client_set_origin(c, who, ua);
	}

	c->consecutive = !is_first && c->last_answer == a ? c->consecutive + 1 : 1;
	c->since_change = same_kind && c->changed_at == changed_at ? c->since_change + 1 : 1;
	c->last_answer = a;
	c->changed_at = changed_at;
	c->last_at = now;
}

static enum observe_answer
answer_for(const struct node *n, int is_down)
{
	if (n->status == NODE_OFFLINE)
		return OBSERVE_OFFLINE;
	if (n->status == NODE_DRAIN)
		return is_down ? OBSERVE_DRAIN_DOWN : OBSERVE_DRAIN;
	return is_down ? OBSERVE_DOWN : OBSERVE_SERVING;
}

/* The counters of cluster among the first n published slots, or NULL. */
static struct answer_counts *
counts_find(struct observe *o, const char *cluster, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(o->counted[i].cluster, cluster) == 0)
			return &o->counted[i];
	return NULL;
}

static void
answer_count(struct observe *o, const char *cluster, enum observe_answer a)
{
	struct answer_counts *c;
	size_t n = atomic_load_explicit(&o->n_counted, memory_order_acquire);

	if ((c = counts_find(o, cluster, n)) == NULL) {
		pthread_mutex_lock(&o->counted_lock);
		n = atomic_load_explicit(&o->n_counted, memory_order_relaxed);
		if ((c = counts_find(o, cluster, n)) == NULL && n < OBSERVE_CLUSTERS_MAX &&
		    strlen(cluster) <= NODE_NAME_MAX) {
			c = &o->counted[n];
			memcpy(c->cluster, cluster, strlen(cluster) + 1);
			atomic_store_explicit(&o->n_counted, n + 1, memory_order_release);
		}
		pthread_mutex_unlock(&o->counted_lock);
	}
	if (c != NULL)
		atomic_fetch_add_explicit(&c->n[a], 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&o->n_uncounted, 1, memory_order_relaxed);
}

int
observe_answer_counts(struct observe *o, const char *cluster, uint64_t out[OBSERVE_ANSWERS])
{
	struct answer_counts *c =
	    counts_find(o, cluster, atomic_load_explicit(&o->n_counted, memory_order_acquire));
	int i;

	for (i = 0; i < OBSERVE_ANSWERS; i++)
		out[i] = c != NULL ? atomic_load_explicit(&c->n[i], memory_order_relaxed) : 0;
	return c != NULL;
}

uint64_t
observe_answer_untracked(struct observe *o)
{
	return atomic_load_explicit(&o->n_uncounted, memory_order_relaxed);
}

enum observe_answer
observe_answer_probe(struct observe *o, const char *cluster, const struct node *n,
                     const struct observe_client *client, int64_t now)
{
	size_t len = strlen(n->name);
	uint64_t hash = key_hash(cluster, n->name, len);
	pthread_mutex_t *lock = lock_for(o, hash);
	enum observe_answer a;
	struct entry *e;
	struct client *c = NULL;
	char ua[OBSERVE_USER_AGENT_MAX + 1];

	/* Outside the lock: what is stored and compared is the User-Agent as
	 * valid UTF-8, cut on a character boundary, so that the API (jansson
	 * takes only UTF-8) shows every client the page shows. */
	if (client->user_agent != NULL)
		utf8_sanitize(ua, sizeof(ua), client->user_agent, client->user_agent_len);
	pthread_mutex_lock(lock);
	e = entry_get(o, hash, cluster, n->name, len);
	a = answer_for(n, e != NULL && e->has_check && !e->check.is_up);
	if (e != NULL &&
	    (c = client_slot(e, client, client->user_agent != NULL ? ua : NULL, now)) != NULL) {
		client_record(c, client, client->user_agent != NULL ? ua : NULL, a, n->changed_at,
		              now);
		atomic_fetch_add(&o->n_recorded,
		                 1); /* under the lock: see observe_collect_reports */
	} else if (e != NULL && client->lb != NULL) {
		e->n_untracked_lbs++;
		e->untracked_lbs_at = now;
	} else if (e != NULL) {
		e->n_untracked++;
		e->untracked_at = now;
	}
	if (e != NULL)
		e->seq++;
	pthread_mutex_unlock(lock);
	if (c != NULL && atomic_load(&o->is_collect_armed) &&
	    atomic_exchange(&o->is_collect_armed, 0))
		o->collect_wake(o->collect_wake_arg);
	answer_count(o, cluster, a);
	if (atomic_load_explicit(&o->watchers, memory_order_relaxed) > 0 && o->notify != NULL)
		o->notify(o->notify_arg);
	return a;
}

static void
client_view(const struct client *c, int64_t changed_at, struct observe_client_view *v)
{
	v->protocol = c->protocol;
	memcpy(v->lb, c->lb, sizeof(v->lb));
	v->interval_ms = c->interval_ms;
	memcpy(v->address, c->address, sizeof(v->address));
	memcpy(v->user_agent, c->user_agent, sizeof(v->user_agent));
	v->has_user_agent = c->has_user_agent;
	v->first_at = c->first_at;
	v->last_at = c->last_at;
	v->last_answer = c->last_answer;
	v->consecutive = c->consecutive;
	v->since_change = c->changed_at == changed_at ? c->since_change : 0;
}

static int
client_view_cmp(const void *a, const void *b)
{
	const struct observe_client_view *x = a, *y = b;
	int d;

	if ((x->lb[0] == '\0') != (y->lb[0] == '\0'))
		return x->lb[0] == '\0' ? 1 : -1;
	if ((d = strcmp(x->lb, y->lb)) != 0)
		return d;
	if (x->protocol != y->protocol)
		return (int)x->protocol - (int)y->protocol;
	if ((d = strcmp(x->address, y->address)) != 0)
		return d;
	if (x->has_user_agent != y->has_user_agent)
		return x->has_user_agent - y->has_user_agent;
	if ((d = strcmp(x->user_agent, y->user_agent)) != 0)
		return d;
	return strcmp(x->daemon, y->daemon);
}

static int
remote_key_cmp(const struct probe_report *r, const char *cluster, const char *node)
{
	int d = strcmp(r->cluster, cluster);

	return d != 0 ? d : strcmp(r->node, node);
}

/* The order of the remote table: by node, then by the store's key of a
 * report within it (daemon and client), so that a merge finds a
 * report's earlier version. */
static int
remote_cmp(const void *a, const void *b)
{
	const struct probe_report *x = a, *y = b;
	int d;

	if ((d = remote_key_cmp(x, y->cluster, y->node)) != 0)
		return d;
	if ((d = strcmp(x->daemon, y->daemon)) != 0)
		return d;
	if (x->protocol != y->protocol)
		return x->protocol - y->protocol;
	if ((d = strcmp(x->lb, y->lb)) != 0)
		return d;
	if ((d = strcmp(x->address, y->address)) != 0)
		return d;
	if (x->has_user_agent != y->has_user_agent)
		return x->has_user_agent - y->has_user_agent;
	return strcmp(x->user_agent, y->user_agent);
}

/* Appends the other daemons' reports of the node seen at or after since. */
static void
add_remote(struct observe *o, const char *cluster, const char *node, int64_t changed_at,
           int64_t since, struct observe_node_view *out)
{
	size_t lo = 0, hi, i;

	pthread_mutex_lock(&o->remote_lock);
	hi = o->n_remote;
	while (lo < hi) { /* the first report of the node */
		size_t mid = lo + (hi - lo) / 2;
		if (remote_key_cmp(&o->remote[mid], cluster, node) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (i = lo; i < o->n_remote && out->n_clients < OBSERVE_VIEW_MAX &&
	             remote_key_cmp(&o->remote[i], cluster, node) == 0;
	     i++) {
		const struct probe_report *r = &o->remote[i];
		struct observe_client_view *v = &out->clients[out->n_clients];
		if (r->last_at < since)
			continue;
		memset(v, 0, sizeof(*v));
		v->protocol = r->protocol == OBSERVE_AGENT ? OBSERVE_AGENT : OBSERVE_HTTP;
		snprintf(v->lb, sizeof(v->lb), "%s", r->lb);
		v->interval_ms = r->interval_ms;
		snprintf(v->address, sizeof(v->address), "%s", r->address);
		snprintf(v->user_agent, sizeof(v->user_agent), "%s", r->user_agent);
		v->has_user_agent = r->has_user_agent;
		v->first_at = r->first_at;
		v->last_at = r->last_at;
		v->last_answer =
		    r->last_answer >= OBSERVE_SERVING && r->last_answer <= OBSERVE_OFFLINE
		        ? (enum observe_answer)r->last_answer
		        : OBSERVE_OFFLINE;
		v->consecutive = r->consecutive;
		v->since_change = r->changed_at == changed_at ? r->since_change : 0;
		snprintf(v->daemon, sizeof(v->daemon), "%s", r->daemon);
		out->n_clients++;
	}
	pthread_mutex_unlock(&o->remote_lock);
}

/* Swaps in the sorted rows as the remote table. */
static void
remote_replace(struct observe *o, struct probe_report *rows, size_t n)
{
	struct probe_report *old;

	pthread_mutex_lock(&o->remote_lock);
	old = o->remote;
	o->remote = rows;
	o->n_remote = n;
	pthread_mutex_unlock(&o->remote_lock);
	free(old);
}

void
observe_set_remote(struct observe *o, struct probe_report *rows, size_t n)
{
	qsort(rows, n, sizeof(*rows), remote_cmp);
	remote_replace(o, rows, n);
}

/* The usual merge while load balancers probe: every row a newer version
 * of a report held, none held to forget. Then each is replaced where it
 * is, under the lock, and 1 returned; else 0 and nothing changed. (A new
 * array for every read, tens of MB for a large fleet, cost more in page
 * faults than the merge itself.) rows are sorted. */
static int
remote_merge_in_place(struct observe *o, const struct probe_report *rows, size_t n,
                      int64_t forget_before)
{
	size_t i, *at;

	for (i = 0; i < o->n_remote; i++)
		if (o->remote[i].last_at < forget_before)
			return 0;
	at = xreallocarray(NULL, n > 0 ? n : 1, sizeof(*at));
	for (i = 0; i < n; i++) {
		size_t lo = 0, hi = o->n_remote;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (remote_cmp(&o->remote[mid], &rows[i]) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo == o->n_remote || remote_cmp(&o->remote[lo], &rows[i]) != 0) {
			free(at);
			return 0;
		}
		at[i] = lo;
	}
	pthread_mutex_lock(&o->remote_lock);
	for (i = 0; i < n; i++)
		o->remote[at[i]] = rows[i];
	pthread_mutex_unlock(&o->remote_lock);
	free(at);
	return 1;
}

void
observe_merge_remote(struct observe *o, struct probe_report *rows, size_t n, int64_t forget_before)
{
	struct probe_report *old = o->remote, *merged;
	size_t n_old = o->n_remote, i = 0, j = 0, k = 0;

	/* o->remote is only ever replaced or changed by this function and
	 * observe_set_remote, which their one caller runs on one thread: it
	 * can be read here without the lock. */
	qsort(rows, n, sizeof(*rows), remote_cmp);
	if (remote_merge_in_place(o, rows, n, forget_before)) {
		free(rows);
		return;
	}
	merged = xreallocarray(NULL, n_old + n > 0 ? n_old + n : 1, sizeof(*merged));
	while (i < n_old || j < n) {
		int d = i == n_old ? 1 : j == n ? -1 : remote_cmp(&old[i], &rows[j]);
		const struct probe_report *r = d < 0 ? &old[i] : &rows[j];
		if (d >= 0) /* a newer version of a report replaces the older one */
			while (++j < n && remote_cmp(&rows[j - 1], &rows[j]) == 0)
				r = &rows[j];
		if (d <= 0)
			i++;
		if (r->last_at >= forget_before)
			merged[k++] = *r;
	}
	free(rows);
	if (k < n_old + n) /* what was dropped or replaced, given back */
		merged = xreallocarray(merged, k > 0 ? k : 1, sizeof(*merged));
	remote_replace(o, merged, k);
}

int
observe_remote_ready(struct observe *o, const char *cluster, const char *node, int64_t now)
{
	int is_added;

	if (o->collect_wake == NULL) /* no other daemon to read */
		return 1;
	if (interest_ask(o->interest, cluster, node, now, &is_added))
		return 1;
	if (is_added) /* the share thread reads it in its next round, now */
		o->collect_wake(o->collect_wake_arg);
	return 0;
}

uint64_t
observe_remote_reads(struct observe *o)
{
	return atomic_load(&o->remote_reads);
}

size_t
observe_remote_count(struct observe *o)
{
	size_t n;

	pthread_mutex_lock(&o->remote_lock);
	n = o->n_remote;
	pthread_mutex_unlock(&o->remote_lock);
	return n;
}

size_t
observe_interest_count(struct observe *o)
{
	return interest_count(o->interest);
}

size_t
observe_interest_take(struct observe *o, int64_t now, struct probe_interest **out)
{
	int is_forgotten;
	size_t n = interest_take(o->interest, now, out, &is_forgotten), i, k = 0;
	struct probe_report *kept;

	if (!is_forgotten)
		return n;
	/* Reports of nodes nobody asks about any more go: o->remote changes
	 * only on this thread (see observe_merge_remote). */
	kept = xreallocarray(NULL, o->n_remote > 0 ? o->n_remote : 1, sizeof(*kept));
	for (i = 0; i < o->n_remote; i++)
		if (interest_covers(*out, n, o->remote[i].cluster, o->remote[i].node))
			kept[k++] = o->remote[i];
	remote_replace(o, kept, k);
	return n;
}

void
observe_interest_read(struct observe *o, const struct probe_interest *read, size_t n)
{
	size_t i;
	int has_new = 0;

	interest_read(o->interest, read, n);
	atomic_fetch_add(&o->remote_reads, 1);
	for (i = 0; i < n; i++)
		has_new |= read[i].is_new;
	if (has_new && o->notify != NULL) /* readers wait for it */
		o->notify(o->notify_arg);
}

/* Is c due to be reported (caller holds its lock)? */
static int
is_report_due(const struct client *c, uint64_t gen, int64_t now)
{
	(void)now;
	if (c->last_at == 0)
		return 0;
	if (c->reported_gen != gen || c->reported_answer != c->last_answer)
		return 1;
	if (c->since_change != c->reported_since_change && c->since_change <= OBSERVE_EAGER_ANSWERS)
		return 1;
	return c->last_at != c->reported_at && c->last_at - c->reported_at >= OBSERVE_REFRESH_MS;
}

size_t
observe_collect_reports(struct observe *o, const char *daemon, int64_t now,
                        struct probe_report *out, size_t max)
{
	uint64_t gen = atomic_load(&o->report_gen), recorded = atomic_load(&o->n_recorded);
	size_t b, i, n = 0;

	/* An answer recorded after the load above is counted after it too,
	 * so the next collect walks; one counted before it was recorded
	 * under its bucket's lock, which this walk takes after. */
	if (recorded == o->collected_recorded && gen == o->collected_gen)
		return 0;
	for (b = 0; b < BUCKETS && n < max; b++) {
		pthread_mutex_t *lock = &o->locks[b % STRIPES];
		struct entry *e;

		pthread_mutex_lock(lock);
		for (e = o->buckets[b]; e != NULL && n < max; e = e->next) {
			for (i = 0; i < e->n_clients && n < max; i++) {
				struct client *c = &e->clients[i];
				struct probe_report *r = &out[n];
				if (!is_report_due(c, gen, now))
					continue;
				memset(r, 0, sizeof(*r));
				snprintf(r->daemon, sizeof(r->daemon), "%s", daemon);
				memcpy(r->cluster, e->cluster, sizeof(r->cluster));
				memcpy(r->node, e->node, sizeof(r->node));
				r->protocol = c->protocol;
				memcpy(r->lb, c->lb, sizeof(r->lb));
				r->interval_ms = c->interval_ms;
				snprintf(r->address, sizeof(r->address), "%s", c->address);
				memcpy(r->user_agent, c->user_agent, sizeof(r->user_agent));
				r->has_user_agent = c->has_user_agent;
				r->first_at = c->first_at;
				r->last_at = c->last_at;
				r->changed_at = c->changed_at;
				r->last_answer = c->last_answer;
				r->consecutive = c->consecutive;
				r->since_change = c->since_change;
				c->reported_gen = gen;
				c->reported_answer = c->last_answer;
				c->reported_since_change = c->since_change;
				c->reported_at = c->last_at;
				n++;
			}
		}
		pthread_mutex_unlock(lock);
	}
	if (n < max) { /* complete: everything due until now is in out */
		o->collected_recorded = recorded;
		o->collected_gen = gen;
	}
	return n;
}

void
observe_report_again(struct observe *o)
{
	atomic_fetch_add(&o->report_gen, 1);
}

int
observe_collect_arm(struct observe *o)
{
	if (o->collect_wake == NULL)
		return 0;
	/* Armed before the counts are read: an answer counted after the
	 * read finds it armed (both sequentially consistent). */
	atomic_store(&o->is_collect_armed, 1);
	if (atomic_load(&o->n_recorded) != o->collected_recorded ||
	    atomic_load(&o->report_gen) != o->collected_gen) {
		atomic_store(&o->is_collect_armed, 0);
		return 0;
	}
	return 1;
}

void
observe_set_collect_wake(struct observe *o, void (*fn)(void *arg), void *arg)
{
	o->collect_wake = fn;
	o->collect_wake_arg = arg;
}

int
observe_node_view(struct observe *o, const char *cluster, const char *node, int64_t changed_at,
                  int64_t since, struct observe_node_view *out)
{
	size_t len = strlen(node), i;
	uint64_t hash = key_hash(cluster, node, len);
	pthread_mutex_t *lock = lock_for(o, hash);
	struct entry *e;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(lock);
	if ((e = entry_find(o, hash, cluster, node, len)) != NULL) {
		for (i = 0; i < e->n_clients; i++)
			if (e->clients[i].last_at >= since)
				client_view(&e->clients[i], changed_at,
				            &out->clients[out->n_clients++]);
		out->n_untracked = e->n_untracked;
		out->untracked_at = e->untracked_at;
		out->n_untracked_lbs = e->n_untracked_lbs;
		out->untracked_lbs_at = e->untracked_lbs_at;
		out->seq = e->seq;
		out->has_check = e->has_check;
		out->check = e->check;
	}
	pthread_mutex_unlock(lock);
	add_remote(o, cluster, node, changed_at, since, out);
	qsort(out->clients, out->n_clients, sizeof(out->clients[0]), client_view_cmp);
	return e != NULL || out->n_clients > 0;
}

int
observe_lb_is_known(const struct cluster *c, const char *name, size_t len)
{
	char buf[NODE_NAME_MAX + 1];

	if (!node_name_is_valid(name, len))
		return 0;
	if (c->n_lbs == 0)
		return 1;
	memcpy(buf, name, len);
	buf[len] = '\0';
	return cluster_find_lb(c, buf) != NULL;
}

uint64_t
observe_node_seq(struct observe *o, const char *cluster, const char *node)
{
	size_t len = strlen(node);
	uint64_t hash = key_hash(cluster, node, len), seq = 0;
	pthread_mutex_t *lock = lock_for(o, hash);
	struct entry *e;

	pthread_mutex_lock(lock);
	if ((e = entry_find(o, hash, cluster, node, len)) != NULL)
		seq = e->seq;
	pthread_mutex_unlock(lock);
	return seq;
}

void
observe_set_notify(struct observe *o, void (*fn)(void *arg), void *arg)
{
	o->notify = fn;
	o->notify_arg = arg;
}

void
observe_watch(struct observe *o, int delta)
{
	atomic_fetch_add(&o->watchers, delta);
}

int
observe_node_summary(struct observe *o, const char *cluster, const char *node, int64_t since,
                     struct observe_node_summary *out)
{
	size_t len = strlen(node), i;
	uint64_t hash = key_hash(cluster, node, len);
	pthread_mutex_t *lock = lock_for(o, hash);
	struct entry *e;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(lock);
	if ((e = entry_find(o, hash, cluster, node, len)) != NULL) {
		for (i = 0; i < e->n_clients; i++) {
			if (e->clients[i].last_at >= since)
				out->n_clients_since++;
			if (e->clients[i].last_at > out->last_at)
				out->last_at = e->clients[i].last_at;
		}
		if (e->untracked_at > out->last_at)
			out->last_at = e->untracked_at;
		if (e->untracked_lbs_at > out->last_at)
			out->last_at = e->untracked_lbs_at;
		out->has_check = e->has_check;
		out->check_is_up = e->check.is_up;
	}
	pthread_mutex_unlock(lock);
	return e != NULL;
}

void
observe_check_set(struct observe *o, const char *cluster, const char *node,
                  const struct observe_check *state)
{
	size_t len = strlen(node);
	uint64_t hash = key_hash(cluster, node, len);
	pthread_mutex_t *lock = lock_for(o, hash);
	struct entry *e;

	pthread_mutex_lock(lock);
	if ((e = entry_get(o, hash, cluster, node, len)) != NULL) {
		e->has_check = 1;
		e->check = *state;
	}
	pthread_mutex_unlock(lock);
}

void
observe_check_clear(struct observe *o, const char *cluster, const char *node)
{
	size_t len = strlen(node);
	uint64_t hash = key_hash(cluster, node, len);
	pthread_mutex_t *lock = lock_for(o, hash);
	struct entry *e;

	pthread_mutex_lock(lock);
	if ((e = entry_find(o, hash, cluster, node, len)) != NULL) {
		e->has_check = 0;
		memset(&e->check, 0, sizeof(e->check));
	}
	pthread_mutex_unlock(lock);
}

/* Drops e's clients unseen since cutoff; returns 1 when e is now empty. */
static int
entry_sweep(struct entry *e, int64_t cutoff)
{
	size_t i = 0;

	while (i < e->n_clients) {
		if (e->clients[i].last_at < cutoff)
			e->clients[i] = e->clients[--e->n_clients];
		else
			i++;
	}
	if (e->untracked_at < cutoff) {
		e->n_untracked = 0;
		e->untracked_at = 0;
	}
	if (e->untracked_lbs_at < cutoff) {
		e->n_untracked_lbs = 0;
		e->untracked_lbs_at = 0;
	}
	return e->n_clients == 0 && !e->has_check && e->n_untracked == 0 && e->n_untracked_lbs == 0;
}

void
observe_sweep(struct observe *o, int64_t now)
{
	int64_t cutoff = now - OBSERVE_FORGET_MS;
	size_t b;

	for (b = 0; b < BUCKETS; b++) {
		pthread_mutex_t *lock = &o->locks[b % STRIPES];
		struct entry **link;

		pthread_mutex_lock(lock);
		link = &o->buckets[b];
		while (*link != NULL) {
			struct entry *e = *link;
			if (entry_sweep(e, cutoff)) {
				*link = e->next;
				entry_free(e);
			} else
				link = &e->next;
		}
		pthread_mutex_unlock(lock);
	}
}
