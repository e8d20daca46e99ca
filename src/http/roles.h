/*
 * roles.h - who may do what on which cluster (roles.c): the roles file
 * (serve --roles FILE, read again on SIGHUP) that maps identity-provider
 * groups, local users, proxy users and tokens to a role on every cluster
 * or on named clusters, and the grants a request carries.
 *
 * The file, one mapping a line ('#' starts a comment):
 *
 *     team-shop: operator on shop, shop-staging; viewer on *
 *     group /platform: admin on *
 *     user alice: operator on shop
 *     token 0123456789abcdef: viewer on *
 *     email bob@example.com: viewer on shop
 *
 * An email line matches a provider's user whose ID token has that email
 * with email_verified true. A bare name is a group (as the provider's
 * groups claim names it); the name is everything before the last ':', so
 * a group may contain ':'.
 * Grants only add up: a principal's role on a cluster is the highest
 * that any of its mappings gives on that cluster or on '*'.
 *
 * The current mapping is swapped whole under a lock: readers (workers)
 * copy what they need, the main thread installs a new one on SIGHUP. A
 * file that does not parse is refused whole and the previous mapping
 * stays.
 */
#ifndef CM_ROLES_H
#define CM_ROLES_H

#include <stddef.h>

#include "../core/error.h"
#include "../core/model.h"

#define GRANTS_MAX 64 /* clusters named in one principal's grants */
#define ROLES_FILE_MAX (1024 * 1024)
#define ROLES_LINE_MAX 4096
#define ROLES_ENTRIES_MAX 10000

/* What one principal may do: role on every cluster, and on named ones. */
struct grants {
	enum role all; /* on '*' */
	size_t n;
	struct grant {
		char cluster[NODE_NAME_MAX + 1];
		enum role role;
	} on[GRANTS_MAX];
};

/* The role g gives on cluster (the higher of '*' and cluster's own). */
enum role grants_role_on(const struct grants *g, const char *cluster);
/* The role g gives where no cluster is named (a list, the fleet, a new
 * cluster): its role on '*', but at least viewer when it has any grant,
 * so that someone who may see one cluster may see the lists it is in. */
enum role grants_role_outside(const struct grants *g);
/* "operator on shop, shop-staging; viewer on *" (or "none") into buf. */
const char *grants_describe(const struct grants *g, char *buf, size_t size);

enum roles_kind { ROLES_GROUP = 0, ROLES_USER = 1, ROLES_TOKEN = 2, ROLES_EMAIL = 3 };

/* Reads path as the roles file and makes it current. Returns 0, or -1
 * with err naming the file and line (the current mapping is kept).
 * Main thread (start-up and SIGHUP). */
int roles_load(const char *path, struct error *err);
/* Parses text[0..len) as a roles file without putting it in force: 0, or
 * -1 with err (for tests and the fuzzer). */
int roles_check_text(const char *text, size_t len, struct error *err);
/* Adds to g what the mapping of (kind, name) grants. Returns 1 when the
 * file names it, else 0 (g unchanged). Any thread. */
int roles_grant(enum roles_kind kind, const char *name, struct grants *g);
/* Frees the current mapping (at exit). */
void roles_free(void);

#endif
