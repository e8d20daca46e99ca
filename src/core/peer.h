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

/* A web page session, as the daemon that signed the user in shares it:
 * never the session id itself (only the cookie holds it), its BLAKE2b
 * hash; and the tag of the user record it was made for. */
struct session_record {
	unsigned char id_hash[32];
	char user[NODE_NAME_MAX + 1];
	unsigned char tag[32];
	int64_t expires_at; /* ms */
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
