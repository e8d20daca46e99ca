/*
 * fuzz_names.c - the model's name, path, address and check rules and the
 * mutations that take them from a client.
 *
 * The input is split at '\n': line 0 is a node or cluster name, line 1 a
 * mount path, line 2 an address, line 3 a check URL, and every further
 * line a name of a node list. Properties, besides "no crash, no leak, no
 * UB":
 *  - node_name_is_valid on the raw, unterminated input agrees with the
 *    rule written out again here, and so does mount_path_is_valid;
 *  - what the address and check rules accept is printable ASCII without
 *    spaces, of bounded length;
 *  - a rejected mutation leaves the model as it was; an accepted one
 *    leaves the nodes sorted, unique and validly named.
 */
#include "fuzz_util.h"

#define MAX_LINES 64

static const struct actor fuzzer = {"fuzzer", "192.0.2.9"};

static int
is_name_char(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

static int
reference_name_is_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > NODE_NAME_MAX)
		return 0;
	/* "." and "..": a path segment's own names, never a node's */
	if (strncmp(s, ".", len) == 0 || strncmp(s, "..", len) == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_name_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* model.h's mount path rule, written out again independently. */
static int
reference_mount_path_is_valid(const char *s)
{
	size_t len = strlen(s), i, seg;

	if (len < 2 || len > 128 || s[0] != '/' || s[len - 1] == '/')
		return 0;
	if (strncmp(s, "/v1", 3) == 0 && (s[3] == '\0' || s[3] == '/'))
		return 0;
	if (strcmp(s, "/metrics") == 0) /* Prometheus's */
		return 0;
	for (i = 1, seg = 1; i <= len; i++) {
		if (s[i] == '/' || s[i] == '\0') {
			size_t n = i - seg;

			if (n == 0 || (n == 1 && s[seg] == '.') ||
			    (n == 2 && s[seg] == '.' && s[seg + 1] == '.'))
				return 0;
			seg = i + 1;
		} else if (!is_name_char((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

static int
is_printable_token(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

static void
check_rules(char **lines, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const char *s = lines[i];

		FUZZ_ASSERT(node_name_is_valid(s, strlen(s)) ==
		            reference_name_is_valid(s, strlen(s)));
		FUZZ_ASSERT(cluster_name_is_valid(s) == reference_name_is_valid(s, strlen(s)));
		FUZZ_ASSERT(mount_path_is_valid(s) == reference_mount_path_is_valid(s));
		if (node_address_is_valid(s))
			FUZZ_ASSERT(strlen(s) <= 255 && strchr(s, ':') != NULL &&
			            is_printable_token(s));
		if (node_check_is_valid(s))
			FUZZ_ASSERT(
			    strlen(s) <= 2048 && is_printable_token(s) &&
			    (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0));
	}
}

static void
check_put_node(const struct model *m, char **lines, size_t n)
{
	struct model *copy = model_copy(m);
	struct cluster *c = model_find_cluster_mut(copy, "default");
	const struct cluster *before = model_find_cluster(m, "default");
	const char *address = n > 2 ? lines[2] : NULL, *check = n > 3 ? lines[3] : NULL;
	struct audit_log audit = {0};
	struct error err;
	const struct node *node;

	if (cluster_put_node(c, lines[0], address, check, &fuzzer, 5, &audit, &err) != 0) {
		FUZZ_ASSERT(err.status == 400 && err.what[0] != '\0');
		FUZZ_ASSERT(fuzz_cluster_equal(c, before) && audit.n == 0);
	} else {
		FUZZ_ASSERT(fuzz_cluster_is_sound(c));
		node = cluster_find_node(c, lines[0], strlen(lines[0]));
		FUZZ_ASSERT(node != NULL);
		if (address != NULL)
			FUZZ_ASSERT(*address ? fuzz_str_equal(node->address, address)
			                     : node->address == NULL);
		if (node->address != NULL)
			FUZZ_ASSERT(node_address_is_valid(node->address));
		if (node->check != NULL)
			FUZZ_ASSERT(node_check_is_valid(node->check));
	}
	audit_log_free(&audit);
	model_free(copy);
}

static void
check_set_node_list(const struct model *m, char **lines, size_t n)
{
	struct model *copy = model_copy(m);
	struct cluster *c = model_find_cluster_mut(copy, "default");
	const struct cluster *before = model_find_cluster(m, "default");
	const char *const *names = (const char *const *)lines + 4;
	size_t n_names = n > 4 ? n - 4 : 0, i;
	struct audit_log audit = {0};
	struct error err;

	if (cluster_set_node_list(c, names, n_names, &fuzzer, 5, &audit, &err) != 0) {
		FUZZ_ASSERT(err.status == 400 && err.what[0] != '\0');
		FUZZ_ASSERT(fuzz_cluster_equal(c, before) && audit.n == 0);
	} else {
		FUZZ_ASSERT(fuzz_cluster_is_sound(c));
		FUZZ_ASSERT(c->n_nodes <= n_names);
		for (i = 0; i < n_names; i++)
			FUZZ_ASSERT(cluster_find_node(c, names[i], strlen(names[i])) != NULL);
		FUZZ_ASSERT(c->version == before->version || c->version == before->version + 1);
	}
	audit_log_free(&audit);
	model_free(copy);
}

static void
check_add_cluster(const struct model *m, char **lines, size_t n)
{
	struct model *copy = model_copy(m);
	const char *path = n > 1 ? lines[1] : "/x";
	struct error err;

	if (model_add_cluster(copy, lines[0], path, &fuzzer, 5, NULL, &err) != 0) {
		FUZZ_ASSERT((err.status == 400 || err.status == 409) && err.what[0] != '\0');
		FUZZ_ASSERT(copy->n_clusters == m->n_clusters);
	} else {
		FUZZ_ASSERT(copy->n_clusters == m->n_clusters + 1);
		FUZZ_ASSERT(model_find_cluster_by_path(copy, path, strlen(path)) ==
		            model_find_cluster(copy, lines[0]));
	}
	model_free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"a", "b", "web-1"};
	static struct model *m;
	char *lines[MAX_LINES];
	size_t n;

	if (m == NULL)
		m = fuzz_model_with(names, 3);
	/* The raw input, not terminated: a read past its end is a bug. */
	FUZZ_ASSERT(node_name_is_valid((const char *)data, size) ==
	            reference_name_is_valid((const char *)data, size));
	n = fuzz_split_lines(data, size, '\n', lines, MAX_LINES);
	check_rules(lines, n);
	check_put_node(m, lines, n);
	check_set_node_list(m, lines, n);
	check_add_cluster(m, lines, n);
	free(lines[0]);
	return 0;
}
