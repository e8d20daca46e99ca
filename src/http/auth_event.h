/*
 * auth_event.h - sign-ins, failed sign-ins, sign-outs and refusals for
 * lack of role, as the security record outside the store (auth_event.c;
 * the store's audit is for changes). Under systemd each is a journal
 * entry with a MESSAGE_ID of its kind and CLUSTERMGMT_* fields
 * (journal.h), else a log line with the same fields (docs/API.md,
 * "Sign-in events").
 */
#ifndef CM_AUTH_EVENT_H
#define CM_AUTH_EVENT_H

#include "../core/model.h"

struct request;

#define AUTH_EVENT_SIGNED_IN_MESSAGE_ID "96328ebd1c7744cf821bbe2b6a0fa876"
#define AUTH_EVENT_SIGNIN_FAILED_MESSAGE_ID "6f4646621487466499ae387f203dd933"
#define AUTH_EVENT_SIGNED_OUT_MESSAGE_ID "dac9ba2db3af475394ad24dc2fecf9d1"
#define AUTH_EVENT_REFUSED_MESSAGE_ID "f0a5b4ec7d9141febabea431b12f4b52"

/* Failed sign-ins and refusals, which anyone can cause at will, are
 * recorded at most AUTH_EVENT_PEER_BURST in a row per peer address and
 * then one per AUTH_EVENT_PEER_INTERVAL_MS; at most AUTH_EVENT_ALL_BURST
 * in a row over all peers and then one per AUTH_EVENT_ALL_INTERVAL_MS.
 * What is left out is counted in the next one recorded (suppressed).
 * Sign-ins and sign-outs need a credential that works, and pass. */
#define AUTH_EVENT_PEER_BURST 10
#define AUTH_EVENT_PEER_INTERVAL_MS 6000
#define AUTH_EVENT_ALL_BURST 100
#define AUTH_EVENT_ALL_INTERVAL_MS 100

enum auth_event_kind {
	AUTH_EVENT_SIGNED_IN,     /* PRIORITY 6 (info) */
	AUTH_EVENT_SIGNIN_FAILED, /* 4 (warning), limited */
	AUTH_EVENT_SIGNED_OUT,    /* 6 (info) */
	AUTH_EVENT_REFUSED,       /* 5 (notice), limited: a role too low */
};

struct auth_event {
	enum auth_event_kind kind;
	const char *principal; /* who signed in or out or was refused ("oidc:alice",
	                          "token:ab12..."), or the user name tried; NULL:
	                          not known */
	const char *method;    /* "password", "token", "oidc", "proxy", ...; or NULL */
	const char *problem;   /* failures: why, for people */
	const char *issuer;    /* OIDC: the provider, and the subject there */
	const char *subject;
	enum role needed; /* refusals: the role the request needed */
};

/* Records ev of r, whose peer is address: the fields event, principal,
 * method, problem, issuer, subject, for refusals r's role, scope,
 * cluster and role_needed, then peer, forwarded, forwarded_trusted,
 * user_agent, request_id, path and suppressed, those that apply. r may
 * be NULL (its client went away): then only address is known of it.
 * Gives r an X-Request-Id when it has none. Worker of r, or any thread
 * when r is NULL. */
void auth_event(struct request *r, const char *address, const struct auth_event *ev);

/* r's request id (16 hex digits) into id: its X-Request-Id, added to
 * its answer when not there yet. Worker of r. */
void auth_event_request_id(struct request *r, char id[17]);

#endif
