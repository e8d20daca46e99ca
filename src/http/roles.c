/*
 * roles.c - the roles file and grants (roles.h has the format).
 *
 * The mapping is a sorted array of entries (kind, name, grants), looked
 * up by binary search; it is small (at most ROLES_ENTRIES_MAX lines) and
 * read far more often than written, so a reader-writer lock around one
 * pointer is all the sharing there is. A request copies the grants it
 * needs into its own memory, so a reload never changes a request half
 * way through.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/log.h"
#include "../util/xalloc.h"
#include "roles.h"

struct roles_entry {
	enum roles_kind kind;
	char *name;
	struct grants grants;
};

struct roles {
	size_t n;
	struct roles_entry *entries; /* sorted by (kind, name) */
};

static struct roles *current;
static pthread_rwlock_t current_lock = PTHREAD_RWLOCK_INITIALIZER;

/* --- grants -------------------------------------------------------------- */

static void
grants_add(struct grants *g, const char *cluster, enum role role)
{
	size_t i;

	if (strcmp(cluster, "*") == 0) {
		if (role > g->all)
			g->all = role;
		return;
	}
	for (i = 0; i < g->n; i++)
		if (strcmp(g->on[i].cluster, cluster) == 0) {
			if (role > g->on[i].role)
				g->on[i].role = role;
			return;
		}
	if (g->n == GRANTS_MAX) {
		/* dropping a grant can only take rights away, never give them */
		log_kv(LOG_WARN, "roles: more clusters than a principal may hold; grant dropped",
		       "cluster", cluster, NULL);
		return;
	}
	snprintf(g->on[g->n].cluster, sizeof(g->on[g->n].cluster), "%s", cluster);
	g->on[g->n++].role = role;
}

enum role
grants_role_on(const struct grants *g, const char *cluster)
{
	enum role role = g->all;
	size_t i;

	for (i = 0; i < g->n; i++)
		if (strcmp(g->on[i].cluster, cluster) == 0 && g->on[i].role > role)
			role = g->on[i].role;
	return role;
}

enum role
grants_role_outside(const struct grants *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		if (g->on[i].role > ROLE_NONE && g->all < ROLE_VIEWER)
			return ROLE_VIEWER;
	return g->all;
}

/* Appends to buf (of size, holding len bytes); returns the new length,
 * at most size - 1. */
static size_t
append(char *buf, size_t size, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf + len, size - len, "%s%s", a, b);

	return n < 0 || (size_t)n >= size - len ? size - 1 : len + (size_t)n;
}

const char *
grants_describe(const struct grants *g, char *buf, size_t size)
{
	static const enum role order[] = {ROLE_ADMIN, ROLE_OPERATOR, ROLE_VIEWER};
	size_t len = 0, i, k;

	buf[0] = '\0';
	for (k = 0; k < 3; k++) {
		const char *sep = len ? "; " : "";
		for (i = 0; i < g->n; i++) {
			if (g->on[i].role != order[k] || g->all >= order[k])
				continue;
			if (sep != NULL)
				len = append(buf, size, len, sep, role_name(order[k]));
			len = append(buf, size, len, sep != NULL ? " on " : ", ", g->on[i].cluster);
			sep = NULL;
		}
		if (g->all == order[k])
			len = append(buf, size, len, len ? "; " : "", role_name(order[k]));
		if (g->all == order[k])
			len = append(buf, size, len, " on *", "");
	}
	if (len == 0)
		snprintf(buf, size, "none");
	return buf;
}

/* --- parsing ------------------------------------------------------------- */

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/* "operator on shop, shop-staging; viewer on *" into g. */
static int
parse_grants(char *text, struct grants *g, const char **why)
{
	char *clause, *save = NULL;

	for (clause = strtok_r(text, ";", &save); clause != NULL;
	     clause = strtok_r(NULL, ";", &save)) {
		char *c = trim(clause), *on = strstr(c, " on "), *name, *save2 = NULL;
		enum role role;

		if (c[0] == '\0')
			continue;
		if (on == NULL)
			return *why = "expected ROLE on CLUSTER[, CLUSTER...]", -1;
		*on = '\0';
		if (role_from_string(trim(c), &role) != 0)
			return *why = "the role is none of viewer, operator, admin", -1;
		for (name = strtok_r(on + 4, ",", &save2); name != NULL;
		     name = strtok_r(NULL, ",", &save2)) {
			char *n = trim(name);
			if (strcmp(n, "*") != 0 && !node_name_is_valid(n, strlen(n)))
				return *why =
				           "a cluster name is not valid (" NODE_NAME_RULE ", or *)",
				       -1;
			grants_add(g, n, role);
		}
	}
	if (g->all == ROLE_NONE && g->n == 0)
		return *why = "no grant after the ':'", -1;
	return 0;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct roles_entry *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void
roles_destroy(struct roles *m)
{
	size_t i;

	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++)
		free(m->entries[i].name);
	free(m->entries);
	free(m);
}

/* One line into m (comments and blank lines add nothing). */
static int
parse_line(struct roles *m, char *line, const char **why)
{
	char *hash = strchr(line, '#'), *colon, *key;
	struct roles_entry e = {0};

	if (hash != NULL)
		*hash = '\0';
	line = trim(line);
	if (line[0] == '\0')
		return 0;
	if ((colon = strrchr(line, ':')) == NULL)
		return *why = "expected NAME: ROLE on CLUSTERS", -1;
	*colon = '\0';
	key = trim(line);
	if (strncmp(key, "group ", 6) == 0) {
		key = trim(key + 6);
	} else if (strncmp(key, "user ", 5) == 0) {
		e.kind = ROLES_USER;
		key = trim(key + 5);
	} else if (strncmp(key, "token ", 6) == 0) {
		e.kind = ROLES_TOKEN;
		key = trim(key + 6);
	} else if (strncmp(key, "email ", 6) == 0) {
		e.kind = ROLES_EMAIL;
		key = trim(key + 6);
	}
	if (key[0] == '\0' || strlen(key) > 255)
		return *why = "the name before ':' is empty or longer than 255 bytes", -1;
	if (m->n == ROLES_ENTRIES_MAX)
		return *why = "more than "
		              "10000"
		              " mappings",
		       -1;
	if (parse_grants(colon + 1, &e.grants, why) != 0)
		return -1;
	e.name = xstrdup(key);
	m->entries = xreallocarray(m->entries, m->n + 1, sizeof(*m->entries));
	m->entries[m->n++] = e;
	return 0;
}

/* Reads the whole file (bounded) into a NUL-terminated buffer. */
static char *
read_file(const char *path, struct error *err)
{
	FILE *f = fopen(path, "r");
	char *buf;
	size_t n;

	if (f == NULL) {
		error_set(err, 400, "cannot read the roles file %s: %s", path, strerror(errno));
		return NULL;
	}
	buf = xmalloc(ROLES_FILE_MAX + 2);
	n = fread(buf, 1, ROLES_FILE_MAX + 1, f);
	fclose(f);
	if (n > ROLES_FILE_MAX) {
		free(buf);
		error_set(err, 400, "the roles file %s is larger than 1 MiB", path);
		return NULL;
	}
	buf[n] = '\0';
	if (memchr(buf, '\0', n) != NULL) {
		free(buf);
		error_set(err, 400, "the roles file %s holds a NUL byte", path);
		return NULL;
	}
	return buf;
}

/* Parses text (changed in place) into a new mapping, or NULL with err
 * naming path and the line. */
static struct roles *
parse_text(char *text, const char *path, struct error *err)
{
	struct roles *m = xcalloc(1, sizeof(*m));
	char *line, *next;
	const char *why = NULL;
	size_t lineno = 0, i;

	for (line = text; line != NULL; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strlen(line) > ROLES_LINE_MAX) {
			why = "the line is longer than 4096 bytes";
			break;
		}
		if (parse_line(m, line, &why) != 0)
			break;
	}
	if (why != NULL) {
		error_set(err, 400, "roles file %s, line %zu: %s", path, lineno, why);
		goto bad;
	}
	if (m->n > 1) /* qsort may not be given NULL, even for nothing */
		qsort(m->entries, m->n, sizeof(*m->entries), entry_cmp);
	for (i = 1; i < m->n; i++)
		if (entry_cmp(&m->entries[i - 1], &m->entries[i]) == 0) {
			error_set(err, 400, "roles file %s: '%.255s' is mapped twice", path,
			          m->entries[i].name);
			goto bad;
		}
	return m;
bad:
	roles_destroy(m);
	return NULL;
}

int
roles_load(const char *path, struct error *err)
{
	char *text = read_file(path, err);
	struct roles *m, *old;

	if (text == NULL)
		return -1;
	m = parse_text(text, path, err);
	free(text);
	if (m == NULL)
		return -1;
	pthread_rwlock_wrlock(&current_lock);
	old = current;
	current = m;
	pthread_rwlock_unlock(&current_lock);
	roles_destroy(old);
	return 0;
}

int
roles_check_text(const char *text, size_t len, struct error *err)
{
	char *copy;
	struct roles *m;

	if (len > ROLES_FILE_MAX || memchr(text, '\0', len) != NULL)
		return error_set(err, 400,
		                 "the roles file is larger than 1 MiB or holds a NUL byte");
	copy = xstrndup(text, len);
	m = parse_text(copy, "(text)", err);
	free(copy);
	roles_destroy(m);
	return m != NULL ? 0 : -1;
}

int
roles_grant(enum roles_kind kind, const char *name, struct grants *g)
{
	struct roles_entry key = {.kind = kind, .name = (char *)name}, *e = NULL;
	size_t i;

	pthread_rwlock_rdlock(&current_lock);
	if (current != NULL && current->n > 0) /* bsearch may not be given NULL either */
		e = bsearch(&key, current->entries, current->n, sizeof(key), entry_cmp);
	if (e != NULL) {
		if (e->grants.all > g->all)
			g->all = e->grants.all;
		for (i = 0; i < e->grants.n; i++)
			grants_add(g, e->grants.on[i].cluster, e->grants.on[i].role);
	}
	pthread_rwlock_unlock(&current_lock);
	return e != NULL;
}

void
roles_free(void)
{
	pthread_rwlock_wrlock(&current_lock);
	roles_destroy(current);
	current = NULL;
	pthread_rwlock_unlock(&current_lock);
}
