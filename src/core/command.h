/*
 * command.h - every write to the model as one typed value.
 *
 * A surface (the seed REST, the v1 API, the web page, the daemon's own
 * start-up and TTL clock) turns its input into a struct command; the
 * engine applies it with command_apply against its current model, commits
 * and publishes. That is the only way the model changes.
 *
 * A command carries intent (names and values, owned by the command), never
 * pointers into a snapshot, so applying it to another model is meaningful:
 * the same "take node a offline if the cluster is still at version 7" is
 * decided afresh against whatever model it meets, which is what a store
 * shared by several daemons needs when another daemon wrote first.
 *
 * A put-user command may carry a plaintext password; command_prepare
 * hashes it (slowly, on the engine's side thread) before it is applied.
 */
#ifndef CM_COMMAND_H
#define CM_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum command_kind {
	COMMAND_SET_STATUS,     /* cluster, changes, if_version, min_online */
	COMMAND_SET_NODE_LIST,  /* cluster, names */
	COMMAND_PUT_NODE,       /* cluster, name, address, check */
	COMMAND_REMOVE_NODE,    /* cluster, name */
	COMMAND_PUT_LB,         /* cluster, name, lb_kind, runtime, backend */
	COMMAND_REMOVE_LB,      /* cluster, name */
	COMMAND_ADD_CLUSTER,    /* cluster, path */
	COMMAND_REMOVE_CLUSTER, /* cluster */
	COMMAND_PUT_USER,       /* name, role, password or password_hash, is_new_only */
	COMMAND_REMOVE_USER,    /* name */
	COMMAND_ADD_TOKEN,      /* name (the token id), role, description, token_hash */
	COMMAND_REMOVE_TOKEN,   /* name (the token id) */
	COMMAND_EXPIRE,         /* nothing: every TTL due at `now` */
};

/* All strings are owned by the command (malloc'd) and freed by
 * command_free; NULL where a field does not apply. */
#define COMMAND_KEY_MAX 128

struct command {
	enum command_kind kind;
	char *cluster; /* the cluster a command is about; for add/remove
	                  cluster, the cluster's name */
	char *name;    /* the node, load balancer, user or token id */

	/* COMMAND_SET_STATUS */
	struct change_set changes;
	int64_t if_version; /* -1: not given */
	int64_t min_online; /* -1: not given */

	/* COMMAND_SET_NODE_LIST (command_add_name) */
	size_t n_names;
	char **names;

	/* COMMAND_PUT_NODE: NULL leaves the field as it is, "" clears it */
	char *address;
	char *check;

	/* COMMAND_PUT_LB: runtime and backend NULL or "" for none */
	char *lb_kind;
	char *runtime;
	char *backend;

	/* COMMAND_ADD_CLUSTER */
	char *path;

	/* COMMAND_PUT_USER and COMMAND_ADD_TOKEN */
	enum role role;
	int is_new_only;     /* put user: 409 when the user exists already */
	char *password;      /* put user: plaintext until command_prepare */
	char *password_hash; /* put user: what is stored */
	char *description;   /* add token; NULL is "" */
	char *clusters;      /* add token: "a,b" where its role holds; NULL: every cluster */
	char *token_hash;    /* add token: hex BLAKE2b-256 of the secret */

	/* Any kind: the client's Idempotency-Key, NULL when none, at most
	 * COMMAND_KEY_MAX characters (the store checks it). A command whose
	 * key the store remembers is not applied again. */
	char *idempotency_key;
};

/* What an applied command did. */
struct command_result {
	int is_changed;     /* the model changed (an audit entry was written) */
	int is_created;     /* put node / put lb / put user: it did not exist before */
	int64_t version;    /* cluster commands: the cluster's version after;
	                       0 for a removed cluster */
	int64_t created_at; /* put user: the user's creation time */
	size_t n_expired;   /* expire: nodes returned online */
	int is_replayed;    /* its idempotency key's write was committed before */
};

/* Sets *c to an empty command of kind (if_version, min_online -1). */
void command_init(struct command *c, enum command_kind kind);
/* Frees what *c owns (wiping a plaintext password) and zeroes it. */
void command_free(struct command *c);
/* Appends a copy of name to a node list command. */
void command_add_name(struct command *c, const char *name);

/* Does the command need command_prepare before command_apply (a put
 * user with a plaintext password and no hash yet)? */
int command_needs_prepare(const struct command *c);
/* Hashes the plaintext password (argon2id; slow: never on an event loop
 * or the engine thread) into password_hash and wipes the plaintext.
 * Returns 0, or -1 with err (500) when it cannot be hashed. A command
 * that needs nothing is left as it is. */
int command_prepare(struct command *c, struct error *err);

/* Applies c to m: checks everything against m, then changes m, or
 * returns -1 with err filled (status, sentence, err->entry the offending
 * name) and m exactly as it was. Entries for what changed go to audit
 * (which may be NULL); res (may be NULL) says what happened. Errors
 * beyond those of model.h's mutations: an unknown cluster -> 404; a put
 * user whose password is not hashed yet -> 500; a put user with
 * is_new_only for an existing user -> 409. c is not changed, so it may be
 * applied again to another model. */
int command_apply(struct model *m, const struct command *c, const struct actor *who, int64_t now,
                  struct audit_log *audit, struct command_result *res, struct error *err);

#endif
