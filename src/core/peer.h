/*
 * peer.h - what the daemons of one shared store tell each other through
 * it, besides the model: what they observed of the load balancers, that
 * they are alive (the fleet), the web page's sessions and the rollouts in
 * progress.
 *
 * struct probe_report: one load balancer's probing of one node, as a
 * daemon reports it to the others.
 * With several daemons, a node's probers may ask different daemons; each
 * daemon writes what it observed (observe.c collects, the store shares)
 * and reads what the others observed, so that `wait` and `rollout` see
 * every prober whichever daemon they ask. A plain value: strings are
 * arrays, nothing points anywhere.
 */
#ifndef CM_PEER_H
#define CM_PEER_H

#include <stdint.h>

#include "limits.h"

#define DAEMON_ID_MAX 159 /* "host:listen-address": bytes */
#define PROBE_ADDRESS_MAX 63

struct probe_report {
	char daemon[DAEMON_ID_MAX + 1]; /* who observed it */
	char cluster[NODE_NAME_MAX + 1];
	char node[NODE_NAME_MAX + 1];
	int protocol;               /* enum observe_protocol */
	char lb[NODE_NAME_MAX + 1]; /* the load balancer's name; "" unnamed */
	char address[PROBE_ADDRESS_MAX + 1];
	char user_agent[USER_AGENT_MAX + 1]; /* valid UTF-8 */
	int has_user_agent;
	int64_t first_at, last_at; /* ms */
	int64_t changed_at;        /* the node's changed_at since_change counts from */
	int64_t interval_ms;       /* its probe interval as observed; 0 unknown */
	int last_answer;           /* enum observe_answer */
	uint32_t consecutive, since_change;
};

/* A node, or every node of a cluster (node ""), whose reports by the
 * other daemons a daemon reads (observe/interest.h). */
struct probe_interest {
	uint64_t id; /* the entry's, never reused */
	char cluster[NODE_NAME_MAX + 1];
	char node[NODE_NAME_MAX + 1]; /* "": every node of the cluster */
	int is_new;                   /* never read: read whole, not what changed */
};

#define DAEMON_HOST_MAX 63
#define DAEMON_LISTEN_MAX 255

/* One daemon of the fleet, as it registers itself (heartbeat). */
struct daemon_record {
	char id[DAEMON_ID_MAX + 1];
	char host[DAEMON_HOST_MAX + 1];
	char listen[DAEMON_LISTEN_MAX + 1]; /* its --listen addresses, space-separated */
	int64_t version;                    /* the store version it has applied */
	int64_t started_at, heartbeat_at;   /* ms */
};

/* How a shared session's principal signed in. */
enum session_record_kind {
	SESSION_RECORD_PASSWORD = 0, /* a local user: user and tag */
	SESSION_RECORD_OIDC = 1,     /* the identity provider: issuer, subject, groups */
	SESSION_RECORD_PROXY = 2,    /* the trusted proxy's header: name */
};

#define SESSION_CLAIM_MAX 255

/* A web page session, as the daemon that signed the user in shares it:
 * never the session id itself (only the cookie holds it), its BLAKE2b
 * hash; for a local user, the tag of the user record it was made for;
 * for the identity provider's users, what a daemon needs to give them
 * their roles (issuer, subject, the groups claim) and the ID token that
 * ends the provider's session at sign-out, sealed with a key derived
 * from the session id (so the store alone cannot open it).
 * groups and id_token point into memory owned by whoever filled the
 * record (store_share_sessions' *all: the same block as the array). */
struct session_record {
	unsigned char id_hash[32];
	char user[NODE_NAME_MAX + 1]; /* password: the user; else "oidc:NAME", "proxy:NAME" */
	unsigned char tag[32];
	int64_t expires_at;                 /* ms */
	int kind;                           /* enum session_record_kind */
	char name[NODE_NAME_MAX + 1];       /* OIDC, proxy: the name the roles file maps */
	char issuer[SESSION_CLAIM_MAX + 1]; /* OIDC */
	char subject[SESSION_CLAIM_MAX + 1];
	char email[SESSION_CLAIM_MAX + 1]; /* OIDC: the verified email, or "" */
	const char *groups;                /* OIDC: "\n"-joined, or NULL */
	const char *id_token;              /* OIDC: sealed, base64url, or NULL */
};

/* A rollout in progress (http/rollouts.c), as the daemons of one shared
 * store keep it in the store: registered through one daemon, seen and
 * refused against through every other. The strings are the registering
 * client's, checked by the daemon that took them (bounded lengths); the
 * store only keeps them. phase, current, command and message are NULL
 * when not set; nodes is a JSON array and verdicts a JSON object, as
 * text. Every pointer is malloc'd and owned by the record
 * (store_rollouts_free). */
#define ROLLOUT_ID_MAX 16
#define ROLLOUT_STATE_MAX 32
struct rollout_record {
	char cluster[NODE_NAME_MAX + 1];
	char id[ROLLOUT_ID_MAX + 1];
	char started_by[96];
	char from[64];
	int64_t started_at, beat_at;       /* ms, wall clock of the daemon that took it */
	char state[ROLLOUT_STATE_MAX + 1]; /* "running", or how it ended */
	char *phase, *current, *command, *message;
	char *nodes, *verdicts;
};

#endif
