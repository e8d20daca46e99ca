/*
 * auth_event.c - sign-ins, failed sign-ins, sign-outs and refusals for
 * lack of role: who, how, from where (the peer, the forwarded chain and
 * whether a listed proxy sent it), with which user agent and request id.
 *
 * They are no changes and stay out of the store's audit. Under systemd
 * each is one journal entry (journal_send) with a MESSAGE_ID per kind,
 * so that `journalctl MESSAGE_ID=...` finds every failed sign-in; else,
 * or when the journal refuses it, a log line with the same fields.
 *
 * A failed sign-in or a refusal costs an outsider one request, so those
 * two pass a limit per peer address and one over all peers before they
 * are written: a GCRA ("generic cell rate algorithm": each entry written
 * pushes a theoretical arrival time one interval ahead; an entry passes
 * while that time is at most a burst of intervals ahead of now). Peers
 * share PEER_SLOTS slots by the hash of their address; a peer taking
 * another's slot starts afresh, which the limit over all peers bounds.
 * The count of what was left out rides on the next entry written.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "../util/log.h"
#include "../util/timefmt.h"
#include "auth_event.h"
#include "http.h"
#include "journal.h"

#define PEER_SLOTS 256
#define EVENT_FIELDS 17 /* the most pairs one event has */

struct rate_slot {
	char address[64];
	int64_t tat_ms; /* the theoretical arrival time of the next entry */
};

static struct {
	pthread_mutex_t lock;
	struct rate_slot peers[PEER_SLOTS];
	int64_t all_tat_ms;
	int64_t suppressed; /* left out since the last limited entry written */
} limit = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const struct {
	const char *message_id, *name, *msg, *priority;
	enum log_level level;
} kinds[] = {
    [AUTH_EVENT_SIGNED_IN] = {AUTH_EVENT_SIGNED_IN_MESSAGE_ID, "signed-in", "signed in", "6",
                              LOG_INFO},
    [AUTH_EVENT_SIGNIN_FAILED] = {AUTH_EVENT_SIGNIN_FAILED_MESSAGE_ID, "sign-in-failed",
                                  "sign-in failed", "4", LOG_WARN},
    [AUTH_EVENT_SIGNED_OUT] = {AUTH_EVENT_SIGNED_OUT_MESSAGE_ID, "signed-out", "signed out", "6",
                               LOG_INFO},
    [AUTH_EVENT_REFUSED] = {AUTH_EVENT_REFUSED_MESSAGE_ID, "refused", "refused: role too low", "5",
                            LOG_WARN},
};

/* Does one more entry fit a burst of burst entries, then one per
 * interval_ms? Moves *tat_ms when it does. */
static int
rate_take(int64_t *tat_ms, int64_t now, int64_t interval_ms, int64_t burst)
{
	int64_t tat = *tat_ms > now ? *tat_ms : now;

	if (tat + interval_ms - now > burst * interval_ms)
		return 0;
	*tat_ms = tat + interval_ms;
	return 1;
}

/* May an entry of address's be written now? 1 with *suppressed the
 * count left out since the last one written, or 0 (it is counted). */
static int
limit_pass(const char *address, int64_t *suppressed)
{
	struct rate_slot *slot;
	int64_t now = time_monotonic_ms(), peer_tat, all_tat;
	uint32_t h = 2166136261u; /* FNV-1a */
	const char *p;
	int is_passing;

	for (p = address; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	pthread_mutex_lock(&limit.lock);
	slot = &limit.peers[h % PEER_SLOTS];
	if (strcmp(slot->address, address) != 0) {
		snprintf(slot->address, sizeof(slot->address), "%s", address);
		slot->tat_ms = 0;
	}
	peer_tat = slot->tat_ms;
	all_tat = limit.all_tat_ms;
	is_passing =
	    rate_take(&peer_tat, now, AUTH_EVENT_PEER_INTERVAL_MS, AUTH_EVENT_PEER_BURST) &&
	    rate_take(&all_tat, now, AUTH_EVENT_ALL_INTERVAL_MS, AUTH_EVENT_ALL_BURST);
	if (is_passing) {
		slot->tat_ms = peer_tat;
		limit.all_tat_ms = all_tat;
		*suppressed = limit.suppressed;
		limit.suppressed = 0;
	} else {
		limit.suppressed++;
	}
	pthread_mutex_unlock(&limit.lock);
	return is_passing;
}

void
auth_event_request_id(struct request *r, char id[17])
{
	unsigned char id_bytes[8];
	ssize_t at = h2o_find_header_by_str(&r->req->res.headers, H2O_STRLIT("x-request-id"), -1);

	/* one id per request, however often it is asked for */
	if (at != -1 && r->req->res.headers.entries[at].value.len == 16) {
		memcpy(id, r->req->res.headers.entries[at].value.base, 16);
		id[16] = '\0';
		return;
	}
	randombytes_buf(id_bytes, sizeof(id_bytes));
	sodium_bin2hex(id, 17, id_bytes, sizeof(id_bytes));
	if (at == -1)
		h2o_add_header_by_str(&r->req->pool, &r->req->res.headers,
		                      H2O_STRLIT("x-request-id"), 0, NULL,
		                      h2o_strdup(&r->req->pool, id, 16).base, 16);
}

/* r's header name, cut to size - 1 bytes, into buf ("" when absent). */
static const char *
header_text(const struct request *r, const char *name, char *buf, size_t size)
{
	h2o_iovec_t v = request_header_by_name(r, name);
	size_t len = v.base == NULL ? 0 : v.len < size ? v.len : size - 1;

	if (len > 0)
		memcpy(buf, v.base, len);
	buf[len] = '\0';
	return buf;
}

/* Adds key=value to pairs when there is a value. */
static void
pair_add(const char **pairs, size_t *n, const char *key, const char *value)
{
	if (value == NULL || value[0] == '\0' || *n == EVENT_FIELDS)
		return;
	pairs[2 * *n] = key;
	pairs[2 * *n + 1] = value;
	(*n)++;
}

/* What a journal entry says in words. */
static void
event_message(const struct auth_event *ev, const char *address, char *buf, size_t size)
{
	snprintf(buf, size, "%s: %s from %s%s%s", kinds[ev->kind].msg,
	         ev->principal != NULL && ev->principal[0] != '\0' ? ev->principal : "(unknown)",
	         address, ev->problem != NULL ? ": " : "", ev->problem != NULL ? ev->problem : "");
}

void
auth_event(struct request *r, const char *address, const struct auth_event *ev)
{
	const char *pairs[2 * EVENT_FIELDS];
	char id[17], forwarded[257], agent[201], path[201], scope[256], suppressed[24],
	    message[400];
	int64_t n_suppressed = 0;
	int is_refusal = ev->kind == AUTH_EVENT_REFUSED;
	size_t n = 0;

#define PAIR(k, v) pair_add(pairs, &n, (k), (v))
	if (r != NULL) /* the answer names it, written or left out */
		auth_event_request_id(r, id);
	if ((ev->kind == AUTH_EVENT_SIGNIN_FAILED || is_refusal) &&
	    !limit_pass(address, &n_suppressed))
		return;
	PAIR("event", kinds[ev->kind].name);
	PAIR("principal", ev->principal);
	PAIR("method", ev->method);
	PAIR("problem", ev->problem);
	PAIR("issuer", ev->issuer);
	PAIR("subject", ev->subject);
	if (is_refusal && r != NULL) {
		PAIR("role", role_name(r->role));
		if (r->grants != NULL)
			grants_describe(r->grants, scope, sizeof(scope));
		else
			snprintf(scope, sizeof(scope), "%s on *", role_name(r->role));
		PAIR("scope", scope);
		PAIR("cluster", r->route.cluster[0] != '\0' ? r->route.cluster : "*");
		PAIR("role_needed", role_name(ev->needed));
	}
	PAIR("peer", address);
	if (r != NULL) {
		if (header_text(r, "x-forwarded-for", forwarded, sizeof(forwarded))[0] != '\0') {
			PAIR("forwarded", forwarded); /* as sent: trusted or not, said next */
			PAIR("forwarded_trusted", auth_proxy_is_trusted(address) ? "yes" : "no");
		}
		PAIR("user_agent", header_text(r, "user-agent", agent, sizeof(agent)));
		PAIR("request_id", id);
		snprintf(path, sizeof(path), "%.*s", (int)(r->path.len > 200 ? 200 : r->path.len),
		         r->path.base);
		PAIR("path", path);
	}
	if (n_suppressed > 0) {
		snprintf(suppressed, sizeof(suppressed), "%lld", (long long)n_suppressed);
		PAIR("suppressed", suppressed);
	}
#undef PAIR
	if (journal_is_connected()) {
		event_message(ev, address, message, sizeof(message));
		if (journal_send(kinds[ev->kind].message_id, kinds[ev->kind].priority, message,
		                 pairs, n) == 0)
			return;
	}
	log_kvv(kinds[ev->kind].level, kinds[ev->kind].msg, pairs, n);
}
