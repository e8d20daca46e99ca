/*
 * test_core.c - the behaviour of the core model, one behaviour per test.
 *
 * Each test builds a small model (usually the "default" cluster with the
 * nodes a, b and c, all online, at version 2), does one thing to it and
 * pins what must come out, including that a failed mutation leaves the
 * model exactly as it was. `make test` runs it again under ASan, whose
 * LeakSanitizer proves that nothing leaks on the error paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/core/model.h"

#define T0 1700000000000LL

static const struct actor alice = {"alice", "192.0.2.1"};

/* --- helpers ---------------------------------------------------------- */

/* "default" at /health with nodes a, b, c (online), version 2. */
static struct model *
model_with_abc(void)
{
	static const char *const abc[] = {"a", "b", "c"};
	struct model *m = model_new();
	struct error err;

	assert_int_equal(model_add_cluster(m, "default", "/health", &alice, T0, NULL, &err), 0);
	assert_int_equal(cluster_set_node_list(model_find_cluster_mut(m, "default"), abc, 3, &alice,
	                                       T0, NULL, &err),
	                 0);
	return m;
}

static struct cluster *
default_cluster(struct model *m)
{
	return model_find_cluster_mut(m, "default");
}

static const struct node *
node_named(struct model *m, const char *name)
{
	return cluster_find_node(default_cluster(m), name, strlen(name));
}

/* Parses a change set from JSON text; returns the status of the result
 * (0 on success) and leaves err filled. */
static int
parse_changes(const char *text, struct change_set *cs, struct error *err)
{
	json_t *obj = json_loads(text, 0, NULL);
	int rc;

	assert_non_null(obj);
	error_clear(err);
	rc = change_set_from_json(obj, cs, err);
	json_decref(obj);
	return rc == 0 ? 0 : err->status;
}

/* Applies a change set given as JSON to the default cluster. */
static int
apply_json(struct model *m, const char *text, int64_t now, int64_t if_version, int64_t min_online,
           struct audit_log *audit, struct error *err)
{
	struct change_set cs;
	int rc;

	assert_int_equal(parse_changes(text, &cs, err), 0);
	rc = cluster_apply_changes(default_cluster(m), &cs, &alice, now, if_version, min_online,
	                           audit, err);
	change_set_free(&cs);
	return rc;
}

/* Whether two models hold the same values (deep comparison of clusters
 * and nodes; enough to prove "nothing changed"). */
static int
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static int
nodes_equal(const struct node *x, const struct node *y)
{
	return str_eq(x->name, y->name) && x->status == y->status && str_eq(x->reason, y->reason) &&
	       str_eq(x->changed_by, y->changed_by) && x->changed_at == y->changed_at &&
	       x->expires_at == y->expires_at && str_eq(x->address, y->address) &&
	       str_eq(x->check, y->check);
}

static int
models_equal(const struct model *a, const struct model *b)
{
	size_t i, j;

	if (a->n_clusters != b->n_clusters || a->n_users != b->n_users ||
	    a->n_tokens != b->n_tokens)
		return 0;
	for (i = 0; i < a->n_clusters; i++) {
		const struct cluster *x = &a->clusters[i], *y = &b->clusters[i];

		if (!str_eq(x->name, y->name) || !str_eq(x->path, y->path) ||
		    x->version != y->version || x->n_nodes != y->n_nodes)
			return 0;
		for (j = 0; j < x->n_nodes; j++)
			if (!nodes_equal(cluster_node(x, j), cluster_node(y, j)))
				return 0;
	}
	for (i = 0; i < a->n_users; i++)
		if (!str_eq(a->users[i].name, b->users[i].name) ||
		    a->users[i].role != b->users[i].role ||
		    !str_eq(a->users[i].password_hash, b->users[i].password_hash))
			return 0;
	for (i = 0; i < a->n_tokens; i++)
		if (!str_eq(a->tokens[i].id, b->tokens[i].id))
			return 0;
	return 1;
}

/* --- names ------------------------------------------------------------ */

static void
test_node_name_accepts_all_allowed_characters(void **state)
{
	const char *s = "Az09._-";

	(void)state;
	assert_true(node_name_is_valid(s, strlen(s)));
}

static void
test_node_name_accepts_64_chars(void **state)
{
	char s[65];

	(void)state;
	memset(s, 'x', 64);
	s[64] = '\0';
	assert_true(node_name_is_valid(s, 64));
}

static void
test_node_name_rejects_65_chars(void **state)
{
	char s[66];

	(void)state;
	memset(s, 'x', 65);
	s[65] = '\0';
	assert_false(node_name_is_valid(s, 65));
}

static void
test_node_name_rejects_empty(void **state)
{
	(void)state;
	assert_false(node_name_is_valid("", 0));
	assert_false(node_name_is_valid(NULL, 0));
}

static void
test_node_name_rejects_space(void **state)
{
	(void)state;
	assert_false(node_name_is_valid("a b", 3));
}

static void
test_node_name_rejects_script(void **state)
{
	const char *s = "<script>";

	(void)state;
	assert_false(node_name_is_valid(s, strlen(s)));
}

static void
test_node_name_rejects_non_ascii(void **state)
{
	const char *s = "n\xc3\xb6"
	                "de";

	(void)state;
	assert_false(node_name_is_valid(s, strlen(s)));
}

static void
test_node_name_rejects_dot_and_dot_dot(void **state)
{
	(void)state;
	assert_false(node_name_is_valid(".", 1));
	assert_false(node_name_is_valid("..", 2));
	assert_false(cluster_name_is_valid("."));
	assert_false(cluster_name_is_valid(".."));
	assert_true(node_name_is_valid("...", 3));
	assert_true(node_name_is_valid(".a", 2));
}

static void
test_node_name_uses_only_len_bytes(void **state)
{
	(void)state;
	assert_true(node_name_is_valid("ab&x=1", 2));
	assert_false(node_name_is_valid("ab\0cd", 5));
}

static void
test_mount_path_accepts_nested_segments(void **state)
{
	(void)state;
	assert_true(mount_path_is_valid("/health"));
	assert_true(mount_path_is_valid("/shop/health.check"));
	assert_true(mount_path_is_valid("/v2"));
	assert_true(mount_path_is_valid("/v1x"));
}

static void
test_mount_path_rejects_bad_shapes(void **state)
{
	(void)state;
	assert_false(mount_path_is_valid(NULL));
	assert_false(mount_path_is_valid(""));
	assert_false(mount_path_is_valid("/"));
	assert_false(mount_path_is_valid("health"));
	assert_false(mount_path_is_valid("/health/"));
	assert_false(mount_path_is_valid("/a//b"));
	assert_false(mount_path_is_valid("/a/./b"));
	assert_false(mount_path_is_valid("/a/.."));
	assert_false(mount_path_is_valid("/a b"));
	assert_false(mount_path_is_valid("/a?node=x"));
}

static void
test_mount_path_rejects_v1_and_below(void **state)
{
	(void)state;
	assert_false(mount_path_is_valid("/v1"));
	assert_false(mount_path_is_valid("/v1/health"));
}

static void
test_mount_path_rejects_metrics_only_exactly(void **state)
{
	(void)state;
	assert_false(mount_path_is_valid("/metrics"));
	assert_true(mount_path_is_valid("/metrics/web"));
	assert_true(mount_path_is_valid("/metricsx"));
}

static void
test_mount_path_rejects_over_128_chars(void **state)
{
	char s[130];

	(void)state;
	s[0] = '/';
	memset(s + 1, 'p', 127);
	s[128] = '\0';
	assert_true(mount_path_is_valid(s));
	s[128] = 'p';
	s[129] = '\0';
	assert_false(mount_path_is_valid(s));
}

static void
test_address_accepts_host_ipv4_and_ipv6(void **state)
{
	(void)state;
	assert_true(node_address_is_valid("app1.example.com:8080"));
	assert_true(node_address_is_valid("10.0.0.1:80"));
	assert_true(node_address_is_valid("[::1]:8080"));
	assert_false(node_address_is_valid("app1"));
	assert_false(node_address_is_valid("app1:0"));
	assert_false(node_address_is_valid("app1:65536"));
	assert_false(node_address_is_valid(":80"));
	assert_false(node_address_is_valid("a b:80"));
}

static void
test_address_rejects_what_no_load_balancer_loads(void **state)
{
	(void)state;
	assert_false(node_address_is_valid("[.]:80"));
	assert_false(node_address_is_valid("[:]:80"));
	assert_false(node_address_is_valid("[::g]:80"));
	assert_false(node_address_is_valid("-:80"));
	assert_false(node_address_is_valid("..:80"));
	assert_false(node_address_is_valid("app.:80"));
	assert_false(node_address_is_valid("-app.example:80"));
	assert_false(node_address_is_valid("app-.example:80"));
	assert_true(node_address_is_valid("[2001:db8::1]:443"));
	assert_true(node_address_is_valid("app_1.internal:80"));
}

static void
test_check_accepts_only_http_urls(void **state)
{
	(void)state;
	assert_true(node_check_is_valid("http://10.0.0.1:8080/ok"));
	assert_true(node_check_is_valid("https://app/ok"));
	assert_false(node_check_is_valid("ftp://app/ok"));
	assert_false(node_check_is_valid("http://"));
	assert_false(node_check_is_valid("http://app/a b"));
}

static void
test_status_names_round_trip(void **state)
{
	enum node_status s;

	(void)state;
	assert_int_equal(node_status_from_string("drain", &s), 0);
	assert_int_equal(s, NODE_DRAIN);
	assert_string_equal(node_status_name(NODE_OFFLINE), "offline");
	assert_int_equal(node_status_from_string("up", &s), -1);
	assert_int_equal(node_status_from_string("Online", &s), -1);
}

static void
test_role_names_round_trip_and_reject_anonymous(void **state)
{
	enum role r;

	(void)state;
	assert_int_equal(role_from_string("operator", &r), 0);
	assert_int_equal(r, ROLE_OPERATOR);
	assert_string_equal(role_name(ROLE_NONE), "anonymous");
	assert_int_equal(role_from_string("anonymous", &r), -1);
}

/* --- models and lookups ---------------------------------------------- */

static void
test_new_model_has_no_clusters(void **state)
{
	struct model *m = model_new();

	(void)state;
	assert_int_equal(m->n_clusters, 0);
	assert_null(model_find_cluster(m, "default"));
	model_free(m);
}

static void
test_copy_changes_apart_from_its_original(void **state)
{
	struct model *m = model_with_abc();
	struct model *copy = model_copy(m);
	struct error err;

	(void)state;
	assert_true(models_equal(m, copy));
	assert_int_equal(
	    apply_json(copy, "{\"a\": {\"status\": \"offline\"}}", T0, -1, -1, NULL, &err), 0);
	assert_int_equal(node_named(m, "a")->status, NODE_ONLINE);
	assert_int_equal(default_cluster(m)->version, 2);
	model_free(copy);
	model_free(m);
}

/* A write copies the model: the copy of a copy shares every node's
 * strings instead of duplicating them. */
static void
test_copy_of_a_copy_shares_node_strings(void **state)
{
	struct model *m = model_with_abc();
	struct model *first = model_copy(m), *second = model_copy(first);

	(void)state;
	assert_true(models_equal(first, second));
	assert_ptr_equal(cluster_node(&second->clusters[0], 1)->name,
	                 cluster_node(&first->clusters[0], 1)->name);
	assert_ptr_equal(cluster_node(&second->clusters[0], 1)->reason,
	                 cluster_node(&first->clusters[0], 1)->reason);
	model_free(second);
	model_free(first);
	model_free(m);
}

/* "default" at /health with n nodes n000, n001, ... (online). */
static struct model *
model_with_nodes(size_t n)
{
	char names[300][24];
	const char *list[300];
	struct model *m = model_new();
	struct error err;
	size_t i;

	assert_true(n <= 300);
	for (i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "n%03zu", i);
		list[i] = names[i];
	}
	assert_int_equal(model_add_cluster(m, "default", "/health", &alice, T0, NULL, &err), 0);
	assert_int_equal(cluster_set_node_list(default_cluster(m), list, n, &alice, T0, NULL, &err),
	                 0);
	return m;
}

static void
assert_names_in_order(const struct cluster *c, size_t n)
{
	size_t i;

	assert_int_equal(c->n_nodes, n);
	for (i = 1; i < n; i++)
		assert_true(strcmp(cluster_node(c, i - 1)->name, cluster_node(c, i)->name) < 0);
}

/* A copy shares the node chunks; a change copies the one chunk it
 * touches, and the model copied from does not see it. */
static void
test_a_change_copies_only_the_chunk_of_its_node(void **state)
{
	struct model *m = model_with_nodes(200), *copy;
	const struct cluster *was, *now;
	struct error err;
	size_t k;

	(void)state;
	model_seal(m); /* as published: each node's strings in a shared block */
	copy = model_copy(m);
	was = default_cluster(m);
	now = default_cluster(copy);
	for (k = 0; k < 4; k++)
		assert_ptr_equal(now->chunks[k], was->chunks[k]);
	assert_int_equal(
	    apply_json(copy, "{\"n100\": {\"status\": \"offline\"}}", T0, -1, -1, NULL, &err), 0);
	assert_ptr_equal(now->chunks[0], was->chunks[0]);
	assert_ptr_not_equal(now->chunks[1], was->chunks[1]);
	assert_ptr_equal(now->chunks[2], was->chunks[2]);
	assert_ptr_equal(now->chunks[3], was->chunks[3]);
	assert_int_equal(cluster_find_node(now, "n100", 4)->status, NODE_OFFLINE);
	assert_int_equal(cluster_find_node(was, "n100", 4)->status, NODE_ONLINE);
	assert_string_equal(cluster_node(now, 99)->name, "n099");
	assert_ptr_equal(cluster_node(now, 99)->name, cluster_node(was, 99)->name);
	model_free(copy);
	model_free(m);
}

/* Nodes added and removed at the ends and at chunk boundaries keep the
 * list in name order, in the copy only. */
static void
test_nodes_added_and_removed_across_chunks_keep_name_order(void **state)
{
	static const char *const added[] = {"a", "n063x", "n127x", "z"};
	static const char *const removed[] = {"n000", "n064", "n128", "n129"};
	struct model *m = model_with_nodes(130), *copy = model_copy(m);
	struct cluster *c = default_cluster(copy);
	struct error err;
	size_t k;

	(void)state;
	for (k = 0; k < 4; k++)
		assert_int_equal(
		    cluster_put_node(c, added[k], "10.0.0.1:80", NULL, &alice, T0, NULL, &err), 0);
	assert_names_in_order(c, 134);
	assert_string_equal(cluster_node(c, 0)->name, "a");
	assert_string_equal(cluster_node(c, 65)->name, "n063x");
	assert_string_equal(cluster_find_node(c, "n127x", 5)->address, "10.0.0.1:80");
	assert_string_equal(cluster_node(c, 133)->name, "z");
	for (k = 0; k < 4; k++)
		assert_int_equal(cluster_remove_node(c, removed[k], &alice, T0, NULL, &err), 0);
	assert_names_in_order(c, 130);
	for (k = 0; k < 4; k++)
		assert_null(cluster_find_node(c, removed[k], strlen(removed[k])));
	assert_non_null(cluster_find_node(c, "n063", 4));
	assert_names_in_order(default_cluster(m), 130);
	assert_null(cluster_find_node(default_cluster(m), "n063x", 5));
	assert_string_equal(cluster_node(default_cluster(m), 128)->name, "n128");
	model_free(copy);
	model_free(m);
}

/* A node read from a store replaces its namesake in the chunk it lies
 * in, or is added in name order; the model shared with stays as it was. */
static void
test_store_node_replaces_or_adds_in_name_order(void **state)
{
	struct model *m = model_with_nodes(100), *other;
	struct cluster *c;
	struct node row = {0};

	(void)state;
	model_seal(m);
	other = model_copy(m);
	c = default_cluster(other);
	row.name = strdup("n070");
	row.reason = strdup("read");
	row.changed_by = strdup("other");
	row.status = NODE_DRAIN;
	cluster_store_node(c, &row);
	assert_null(row.name); /* moved into the cluster */
	assert_int_equal(cluster_find_node(c, "n070", 4)->status, NODE_DRAIN);
	assert_int_equal(cluster_find_node(default_cluster(m), "n070", 4)->status, NODE_ONLINE);
	assert_ptr_equal(c->chunks[0], default_cluster(m)->chunks[0]);
	row.name = strdup("n0635");
	row.reason = strdup("");
	row.changed_by = strdup("");
	cluster_store_node(c, &row);
	assert_names_in_order(c, 101);
	assert_string_equal(cluster_node(c, 64)->name, "n0635");
	assert_int_equal(cluster_count_online(c), 100);
	assert_int_equal(default_cluster(m)->n_nodes, 100);
	model_free(other);
	model_free(m);
}

/* A plain sorted list of names and statuses, to check a cluster against. */
struct plain_list {
	size_t n;
	char names[300][8];
	enum node_status status[300];
};

static size_t
plain_find(const struct plain_list *l, const char *name, int *found)
{
	size_t i = 0;

	while (i < l->n && strcmp(l->names[i], name) < 0)
		i++;
	*found = i < l->n && strcmp(l->names[i], name) == 0;
	return i;
}

static void
assert_cluster_is(const struct cluster *c, const struct plain_list *l)
{
	size_t i, online = 0;

	assert_int_equal(c->n_nodes, l->n);
	for (i = 0; i < l->n; i++) {
		assert_string_equal(cluster_node(c, i)->name, l->names[i]);
		assert_int_equal(cluster_node(c, i)->status, l->status[i]);
		online += l->status[i] == NODE_ONLINE;
	}
	assert_int_equal(cluster_count_online(c), online);
}

/* Random additions, removals and status changes over a list of up to 300
 * nodes (five chunks), with a copy kept every 250 steps: the cluster
 * always equals a plain sorted list kept beside it, and no copy sees a
 * later change. */
static void
test_random_changes_across_chunks_match_a_plain_list(void **state)
{
	static struct plain_list want, kept[8];
	struct model *m = model_with_nodes(200), *copies[8];
	uint32_t seed = 12345;
	size_t n_copies = 0, i, at;
	int step, found;

	(void)state;
	want.n = 200;
	for (i = 0; i < 200; i++) {
		snprintf(want.names[i], sizeof(want.names[i]), "n%03zu", i);
		want.status[i] = NODE_ONLINE;
	}
	for (step = 1; step <= 2000; step++) {
		struct cluster *c = default_cluster(m);
		char name[8];
		struct error err;
		int op;

		seed = seed * 1103515245u + 12345u;
		op = (int)(seed >> 16) % 3;
		snprintf(name, sizeof(name), "n%03u", (seed >> 4) % 300);
		at = plain_find(&want, name, &found);
		if (op == 0) {
			assert_int_equal(
			    cluster_put_node(c, name, NULL, NULL, &alice, T0, NULL, &err), 0);
			if (!found) {
				memmove(&want.names[at + 1], &want.names[at], (want.n - at) * 8);
				memmove(&want.status[at + 1], &want.status[at],
				        (want.n - at) * sizeof(want.status[0]));
				snprintf(want.names[at], 8, "%s", name);
				want.status[at] = NODE_ONLINE;
				want.n++;
			}
		} else if (op == 1) {
			assert_int_equal(cluster_remove_node(c, name, &alice, T0, NULL, &err),
			                 found ? 0 : -1);
			if (found) {
				memmove(&want.names[at], &want.names[at + 1],
				        (want.n - at - 1) * 8);
				memmove(&want.status[at], &want.status[at + 1],
				        (want.n - at - 1) * sizeof(want.status[0]));
				want.n--;
			}
		} else {
			struct status_change ch = {name, (enum node_status)((seed >> 8) % 3), "r",
			                           0};
			struct change_set cs = {1, &ch};

			assert_int_equal(
			    cluster_apply_changes(c, &cs, &alice, T0, -1, -1, NULL, &err),
			    found ? 0 : -1);
			if (found)
				want.status[at] = ch.status;
		}
		if (step % 100 == 0)
			assert_cluster_is(default_cluster(m), &want);
		if (step % 250 == 0) {
			model_seal(m);
			copies[n_copies] = model_copy(m);
			kept[n_copies++] = want;
		}
	}
	assert_cluster_is(default_cluster(m), &want);
	for (i = 0; i < n_copies; i++) {
		assert_cluster_is(default_cluster(copies[i]), &kept[i]);
		model_free(copies[i]);
	}
	model_free(m);
}

/* What readers count over all nodes (online, the next expiry) is right
 * before a model is sealed, after, and in the model copied from. */
static void
test_counts_over_chunks_follow_changes_and_seal(void **state)
{
	struct model *m = model_with_nodes(150), *copy;
	struct error err;

	(void)state;
	model_seal(m);
	copy = model_copy(m);
	assert_int_equal(cluster_count_online(default_cluster(copy)), 150);
	assert_int_equal(apply_json(copy,
	                            "{\"n001\": {\"status\": \"drain\", \"ttl\": 60},"
	                            " \"n070\": {\"status\": \"offline\", \"ttl\": 30},"
	                            " \"n149\": {\"status\": \"offline\"}}",
	                            T0, -1, -1, NULL, &err),
	                 0);
	assert_int_equal(cluster_count_online(default_cluster(copy)), 147);
	assert_int_equal(model_next_expiry(copy), T0 + 30000);
	model_seal(copy);
	assert_int_equal(cluster_count_online(default_cluster(copy)), 147);
	assert_int_equal(model_next_expiry(copy), T0 + 30000);
	assert_int_equal(cluster_count_online(default_cluster(m)), 150);
	assert_int_equal(model_next_expiry(m), 0);
	assert_int_equal(model_expire(copy, T0 + 30000, NULL), 1);
	assert_int_equal(cluster_find_node(default_cluster(copy), "n070", 4)->status, NODE_ONLINE);
	assert_int_equal(cluster_find_node(default_cluster(copy), "n001", 4)->status, NODE_DRAIN);
	assert_int_equal(cluster_count_online(default_cluster(copy)), 148);
	assert_int_equal(model_next_expiry(copy), T0 + 60000);
	model_free(copy);
	model_free(m);
}

/* Shared strings live as long as the last model holding them, whichever
 * is freed first (ASan reads freed memory as an error). */
static void
test_copy_outlives_the_model_it_shares_with(void **state)
{
	struct model *m = model_with_abc();
	struct model *first = model_copy(m), *second = model_copy(first);

	(void)state;
	model_free(first);
	model_free(m);
	assert_string_equal(cluster_node(&second->clusters[0], 2)->name, "c");
	assert_string_equal(cluster_node(&second->clusters[0], 2)->changed_by, "alice");
	model_free(second);
}

/* Publishing stamps what changed: the events' delta form carries the
 * nodes stamped after the client's last answer. */
static void
test_stamps_mark_only_the_nodes_that_changed(void **state)
{
	static const char *const abd[] = {"a", "b", "d"};
	struct model *m = model_with_abc(), *first = model_copy(m), *second, *third;
	struct error err;

	(void)state;
	model_stamp_changes(first, NULL, 10);
	assert_int_equal(first->stamp, 10);
	assert_int_equal(default_cluster(first)->members_stamp, 10);
	assert_int_equal(node_named(first, "c")->stamp, 10);
	second = model_copy(first);
	assert_int_equal(
	    apply_json(second, "{\"b\": {\"status\": \"drain\"}}", T0 + 5, -1, -1, NULL, &err), 0);
	model_stamp_changes(second, first, 11);
	assert_int_equal(node_named(second, "a")->stamp, 10);
	assert_int_equal(node_named(second, "b")->stamp, 11);
	assert_int_equal(node_named(second, "c")->stamp, 10);
	assert_int_equal(default_cluster(second)->members_stamp, 10);
	third = model_copy(second);
	assert_int_equal(
	    cluster_set_node_list(default_cluster(third), abd, 3, &alice, T0 + 6, NULL, &err), 0);
	model_stamp_changes(third, second, 12);
	assert_int_equal(node_named(third, "a")->stamp, 10);
	assert_int_equal(node_named(third, "b")->stamp, 11);
	assert_int_equal(node_named(third, "d")->stamp, 12);
	assert_int_equal(default_cluster(third)->members_stamp, 12);
	model_free(third);
	model_free(second);
	model_free(first);
	model_free(m);
}

/* A cluster read afresh at the same version (a reload) has no stamps: it
 * gets the new one, never 0; one removed and made again (its version
 * below the old one's) is new throughout. */
static void
test_stamps_of_clusters_read_afresh_or_made_again(void **state)
{
	struct model *first = model_with_abc(), *fresh = model_with_abc(), *again;
	struct error err;

	(void)state;
	model_stamp_changes(first, NULL, 10);
	model_stamp_changes(fresh, first, 11);
	assert_int_equal(node_named(fresh, "a")->stamp, 11);
	assert_int_equal(default_cluster(fresh)->members_stamp, 11);
	assert_int_equal(
	    apply_json(first, "{\"b\": {\"status\": \"drain\"}}", T0 + 5, -1, -1, NULL, &err), 0);
	again = model_with_abc(); /* version 2, below first's 3 */
	model_stamp_changes(again, first, 12);
	assert_int_equal(node_named(again, "a")->stamp, 12);
	assert_int_equal(node_named(again, "c")->stamp, 12);
	assert_int_equal(default_cluster(again)->members_stamp, 12);
	model_free(again);
	model_free(fresh);
	model_free(first);
}

static void
test_status_change_on_a_shared_node_leaves_the_other_model(void **state)
{
	struct model *m = model_with_abc();
	struct model *first = model_copy(m), *second = model_copy(first);
	const struct node *a;
	struct error err;

	(void)state;
	assert_int_equal(apply_json(second, "{\"a\": {\"status\": \"drain\", \"reason\": \"r\"}}",
	                            T0 + 5, -1, -1, NULL, &err),
	                 0);
	model_free(second);
	a = node_named(first, "a");
	assert_int_equal(a->status, NODE_ONLINE);
	assert_string_equal(a->reason, "");
	assert_string_equal(a->changed_by, "alice");
	model_free(first);
	model_free(m);
}

static void
test_ttl_expiry_on_a_shared_node_leaves_the_other_model(void **state)
{
	struct model *m = model_with_abc();
	struct model *first, *second;
	struct error err;

	(void)state;
	assert_int_equal(
	    apply_json(m, "{\"b\": {\"status\": \"offline\", \"reason\": \"x\", \"ttl\": 10}}", T0,
	               -1, -1, NULL, &err),
	    0);
	first = model_copy(m);
	second = model_copy(first);
	assert_int_equal(model_expire(second, T0 + 10000, NULL), 1);
	assert_string_equal(node_named(second, "b")->reason, "");
	assert_string_equal(node_named(second, "b")->changed_by, "ttl");
	model_free(second);
	assert_int_equal(node_named(first, "b")->status, NODE_OFFLINE);
	assert_string_equal(node_named(first, "b")->reason, "x");
	model_free(first);
	model_free(m);
}

static void
test_address_set_on_a_shared_node_leaves_the_other_model(void **state)
{
	struct model *m = model_with_abc();
	struct model *first = model_copy(m), *second = model_copy(first);
	struct error err;

	(void)state;
	assert_int_equal(cluster_put_node(default_cluster(second), "c", "10.0.0.3:80", NULL, &alice,
	                                  T0, NULL, &err),
	                 0);
	model_free(second);
	assert_null(node_named(first, "c")->address);
	assert_string_equal(node_named(first, "c")->name, "c");
	model_free(first);
	model_free(m);
}

/* Replacing the node list moves kept nodes, shared strings and all. */
static void
test_node_list_replaced_on_a_copy_keeps_both_models_whole(void **state)
{
	static const char *const bcd[] = {"b", "c", "d"};
	struct model *m = model_with_abc();
	struct model *first = model_copy(m), *second = model_copy(first);
	struct error err;

	(void)state;
	assert_int_equal(
	    cluster_set_node_list(default_cluster(second), bcd, 3, &alice, T0, NULL, &err), 0);
	assert_string_equal(node_named(second, "b")->name, "b");
	model_free(first);
	assert_string_equal(node_named(second, "c")->changed_by, "alice");
	assert_null(node_named(second, "a"));
	model_free(second);
	model_free(m);
}

static void
test_find_node_mut_gives_the_node_strings_of_its_own(void **state)
{
	struct model *m = model_with_abc();
	struct model *first = model_copy(m), *second = model_copy(first);
	struct node *n;

	(void)state;
	n = cluster_find_node_mut(default_cluster(second), "b");
	assert_null(n->text);
	assert_ptr_not_equal(n->name, node_named(first, "b")->name);
	assert_string_equal(n->name, "b");
	model_free(second);
	model_free(first);
	model_free(m);
}

static void
test_find_node_takes_unterminated_slice(void **state)
{
	struct model *m = model_with_abc();
	const char *query = "node=b&x=1";
	const struct node *n;

	(void)state;
	n = cluster_find_node(default_cluster(m), query + 5, 1);
	assert_non_null(n);
	assert_string_equal(n->name, "b");
	assert_null(cluster_find_node(default_cluster(m), "bb", 2));
	assert_int_equal(
	    cluster_put_node(default_cluster(m), "app1", NULL, NULL, &alice, T0, NULL, NULL), 0);
	assert_null(cluster_find_node(default_cluster(m), "app1", 3));
	assert_non_null(cluster_find_node(default_cluster(m), "app1", 4));
	assert_null(cluster_find_node(default_cluster(m), "", 0));
	model_free(m);
}

/* n clusters c000, c001, ..., the i-th mounted at /m{n - 1 - i}{suffix}
 * (so that name and path orders differ). */
static struct model *
model_with_clusters(int n, const char *suffix)
{
	struct model *m = model_new();
	char name[16], path[32];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(name, sizeof name, "c%03d", i);
		snprintf(path, sizeof path, "/m%03d%s", n - 1 - i, suffix);
		assert_int_equal(model_add_cluster(m, name, path, &alice, T0, NULL, NULL), 0);
	}
	return m;
}

/* Many clusters, indexed as the engine publishes them: the mount is found
 * by the path or a segment-wise prefix of it, and only so. */
static void
test_find_mount_on_indexed_model_is_segment_prefix(void **state)
{
	struct model *m = model_with_clusters(300, "/x");
	size_t len = 0;

	(void)state;
	model_seal(m);
	assert_string_equal(model_find_mount(m, "/m007/x", 7, &len)->name, "c292");
	assert_int_equal(len, 7);
	assert_string_equal(model_find_mount(m, "/m007/x/managenodes", 19, &len)->name, "c292");
	assert_int_equal(len, 7);
	assert_null(model_find_mount(m, "/m007/xy", 8, &len));
	assert_null(model_find_mount(m, "/m007", 5, &len));
	assert_null(model_find_mount(m, "/", 1, &len));
	assert_non_null(model_find_cluster_by_path(m, "/m299/x", 7));
	assert_null(model_find_cluster_by_path(m, "/m299/", 6));
	model_free(m);
}

/* A copy of a sealed model shares its clusters' names and paths and its
 * index of mounts; a cluster added to or removed from the copy is found,
 * or not, there once sealed again, and the model copied from is as it
 * was. */
static void
test_copy_keeps_the_index_of_mounts_until_its_clusters_change(void **state)
{
	struct model *m = model_with_clusters(50, ""), *copy;
	size_t len = 0;

	(void)state;
	model_seal(m);
	copy = model_copy(m);
	assert_ptr_equal(copy->clusters[7].name, m->clusters[7].name);
	assert_ptr_equal(copy->clusters[7].path, m->clusters[7].path);
	assert_ptr_equal(model_find_mount(copy, "/m007/x", 7, &len), &copy->clusters[42]);
	assert_int_equal(model_add_cluster(copy, "b", "/m007b", &alice, T0, NULL, NULL), 0);
	assert_int_equal(model_remove_cluster(copy, "c042", &alice, T0, NULL, NULL), 0);
	model_seal(copy);
	assert_null(model_find_mount(copy, "/m007", 5, &len));
	assert_string_equal(model_find_mount(copy, "/m007b", 6, &len)->name, "b");
	assert_string_equal(model_find_mount(copy, "/m049", 5, &len)->name, "c000");
	assert_string_equal(model_find_mount(m, "/m007", 5, &len)->name, "c042");
	assert_null(model_find_mount(m, "/m007b", 6, &len));
	model_free(m);
	assert_string_equal(model_find_mount(copy, "/m000", 5, &len)->name, "c049");
	model_free(copy);
}

static void
test_find_cluster_by_path_is_exact(void **state)
{
	struct model *m = model_with_abc();
	const char *url = "/health/++rest++nodestatus";

	(void)state;
	assert_non_null(model_find_cluster_by_path(m, url, 7));
	assert_null(model_find_cluster_by_path(m, url, 6));
	assert_null(model_find_cluster_by_path(m, url, strlen(url)));
	model_free(m);
}

static void
test_next_expiry_is_earliest_ttl(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	assert_int_equal(model_next_expiry(m), 0);
	assert_int_equal(apply_json(m,
	                            "{\"a\": {\"status\": \"offline\", \"ttl\": 60},"
	                            " \"b\": {\"status\": \"drain\", \"ttl\": 30}}",
	                            T0, -1, -1, NULL, &err),
	                 0);
	assert_int_equal(model_next_expiry(m), T0 + 30000);
	model_free(m);
}

/* --- clusters --------------------------------------------------------- */

static void
test_add_cluster_starts_at_version_1_and_audits(void **state)
{
	struct model *m = model_new();
	struct audit_log audit = {0};
	struct error err;
	const struct cluster *c;

	(void)state;
	assert_int_equal(model_add_cluster(m, "shop", "/shop/health", &alice, T0, &audit, &err), 0);
	c = model_find_cluster(m, "shop");
	assert_non_null(c);
	assert_int_equal(c->version, 1);
	assert_int_equal(c->n_nodes, 0);
	assert_int_equal(audit.n, 1);
	assert_string_equal(audit.entries[0].action, "cluster-add");
	assert_string_equal(audit.entries[0].cluster, "shop");
	assert_string_equal(audit.entries[0].actor, "alice");
	assert_string_equal(audit.entries[0].address, "192.0.2.1");
	audit_log_free(&audit);
	model_free(m);
}

static void
test_clusters_stay_sorted_by_name(void **state)
{
	struct model *m = model_new();
	struct error err;

	(void)state;
	assert_int_equal(model_add_cluster(m, "m", "/m", &alice, T0, NULL, &err), 0);
	assert_int_equal(model_add_cluster(m, "z", "/z", &alice, T0, NULL, &err), 0);
	assert_int_equal(model_add_cluster(m, "a", "/a", &alice, T0, NULL, &err), 0);
	assert_string_equal(m->clusters[0].name, "a");
	assert_string_equal(m->clusters[1].name, "m");
	assert_string_equal(m->clusters[2].name, "z");
	assert_non_null(model_find_cluster(m, "z"));
	model_free(m);
}

static void
test_add_cluster_duplicate_name_409(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	assert_int_equal(model_add_cluster(m, "default", "/other", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 409);
	assert_int_equal(m->n_clusters, 1);
	model_free(m);
}

static void
test_add_cluster_taken_path_409(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	assert_int_equal(model_add_cluster(m, "other", "/health", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 409);
	assert_non_null(strstr(err.what, "default"));
	assert_int_equal(m->n_clusters, 1);
	model_free(m);
}

static void
test_add_cluster_nested_path_409(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	assert_int_equal(model_add_cluster(m, "x", "/health/x", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 409);
	assert_int_equal(model_add_cluster(m, "y", "/healthy", &alice, T0, NULL, &err), 0);
	model_free(m);
}

static void
test_add_cluster_invalid_name_or_path_400(void **state)
{
	struct model *m = model_new();
	struct error err;

	(void)state;
	assert_int_equal(model_add_cluster(m, "a b", "/ab", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.entry, "a b");
	assert_int_equal(model_add_cluster(m, "v1", "/v1", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 400);
	assert_int_equal(m->n_clusters, 0);
	model_free(m);
}

static void
test_remove_cluster_unknown_404(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	assert_int_equal(model_remove_cluster(m, "nope", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 404);
	assert_int_equal(m->n_clusters, 1);
	model_free(m);
}

static void
test_remove_last_cluster_allowed(void **state)
{
	struct model *m = model_with_abc();
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	assert_int_equal(model_remove_cluster(m, "default", &alice, T0, &audit, &err), 0);
	assert_int_equal(m->n_clusters, 0);
	assert_null(model_find_cluster(m, "default"));
	assert_string_equal(audit.entries[0].action, "cluster-remove");
	audit_log_free(&audit);
	model_free(m);
}

/* --- node lists ------------------------------------------------------- */

static void
test_new_node_starts_online_by_actor(void **state)
{
	struct model *m = model_with_abc();
	const struct node *n = node_named(m, "a");

	(void)state;
	assert_int_equal(n->status, NODE_ONLINE);
	assert_string_equal(n->reason, "");
	assert_string_equal(n->changed_by, "alice");
	assert_int_equal(n->changed_at, T0);
	assert_int_equal(n->expires_at, 0);
	assert_null(n->address);
	assert_null(n->check);
	model_free(m);
}

static void
test_set_node_list_collapses_duplicates(void **state)
{
	static const char *const names[] = {"b", "a", "b", "a", "c"};
	struct model *m = model_new();
	struct error err;
	struct cluster *c;

	(void)state;
	model_add_cluster(m, "default", "/health", &alice, T0, NULL, &err);
	c = default_cluster(m);
	assert_int_equal(cluster_set_node_list(c, names, 5, &alice, T0, NULL, &err), 0);
	assert_int_equal(c->n_nodes, 3);
	assert_string_equal(cluster_node(c, 0)->name, "a");
	assert_string_equal(cluster_node(c, 1)->name, "b");
	assert_string_equal(cluster_node(c, 2)->name, "c");
	model_free(m);
}

static void
test_set_node_list_invalid_name_changes_nothing(void **state)
{
	static const char *const names[] = {"a", "b c", "d"};
	struct model *m = model_with_abc();
	struct model *before = model_copy(m);
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	assert_int_equal(
	    cluster_set_node_list(default_cluster(m), names, 3, &alice, T0, &audit, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.entry, "b c");
	assert_non_null(strstr(err.what, "invalid name"));
	assert_true(models_equal(m, before));
	assert_int_equal(audit.n, 0);
	model_free(before);
	model_free(m);
}

static void
test_set_node_list_keeps_status_and_forgets_removed(void **state)
{
	static const char *const names[] = {"c", "d"};
	struct model *m = model_with_abc();
	struct audit_log audit = {0};
	struct error err;
	struct cluster *c = default_cluster(m);

	(void)state;
	assert_int_equal(apply_json(m, "{\"c\": {\"status\": \"drain\"}}", T0, -1, -1, NULL, &err),
	                 0);
	assert_int_equal(cluster_set_node_list(c, names, 2, &alice, T0 + 1, &audit, &err), 0);
	assert_int_equal(c->n_nodes, 2);
	assert_null(node_named(m, "a"));
	assert_int_equal(node_named(m, "c")->status, NODE_DRAIN);
	assert_int_equal(node_named(m, "d")->status, NODE_ONLINE);
	assert_int_equal(node_named(m, "d")->changed_at, T0 + 1);
	/* a and b removed, d added */
	assert_int_equal(audit.n, 3);
	assert_string_equal(audit.entries[0].action, "node-remove");
	assert_string_equal(audit.entries[0].node, "a");
	assert_string_equal(audit.entries[2].action, "node-add");
	assert_string_equal(audit.entries[2].node, "d");
	audit_log_free(&audit);
	model_free(m);
}

static void
test_set_node_list_increments_version_once(void **state)
{
	static const char *const names[] = {"x", "y", "z", "a"};
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	assert_int_equal(default_cluster(m)->version, 2);
	assert_int_equal(
	    cluster_set_node_list(default_cluster(m), names, 4, &alice, T0, NULL, &err), 0);
	assert_int_equal(default_cluster(m)->version, 3);
	model_free(m);
}

static void
test_set_node_list_same_list_is_a_no_op(void **state)
{
	static const char *const names[] = {"c", "a", "b"};
	struct model *m = model_with_abc();
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	assert_int_equal(
	    cluster_set_node_list(default_cluster(m), names, 3, &alice, T0, &audit, &err), 0);
	assert_int_equal(default_cluster(m)->version, 2);
	assert_int_equal(audit.n, 0);
	model_free(m);
}

static void
test_set_node_list_empty_removes_all(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	assert_int_equal(cluster_set_node_list(default_cluster(m), NULL, 0, &alice, T0, NULL, &err),
	                 0);
	assert_int_equal(default_cluster(m)->n_nodes, 0);
	assert_null(node_named(m, "a"));
	model_free(m);
}

static void
test_put_node_adds_online_node_with_address(void **state)
{
	struct model *m = model_with_abc();
	struct audit_log audit = {0};
	struct error err;
	const struct node *n;

	(void)state;
	assert_int_equal(cluster_put_node(default_cluster(m), "d", "10.0.0.4:8080", NULL, &alice,
	                                  T0, &audit, &err),
	                 0);
	n = node_named(m, "d");
	assert_non_null(n);
	assert_int_equal(n->status, NODE_ONLINE);
	assert_string_equal(n->address, "10.0.0.4:8080");
	assert_null(n->check);
	assert_int_equal(default_cluster(m)->version, 3);
	assert_string_equal(audit.entries[0].action, "node-add");
	audit_log_free(&audit);
	model_free(m);
}

static void
test_put_node_null_keeps_and_empty_clears(void **state)
{
	struct model *m = model_with_abc();
	struct cluster *c = default_cluster(m);
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	cluster_put_node(c, "a", "10.0.0.1:80", "http://10.0.0.1/ok", &alice, T0, NULL, &err);
	assert_int_equal(cluster_put_node(c, "a", NULL, "", &alice, T0, &audit, &err), 0);
	assert_string_equal(node_named(m, "a")->address, "10.0.0.1:80");
	assert_null(node_named(m, "a")->check);
	assert_string_equal(audit.entries[0].action, "node-update");
	assert_int_equal(c->version, 4);
	audit_log_free(&audit);
	model_free(m);
}

static void
test_put_node_unchanged_is_a_no_op(void **state)
{
	struct model *m = model_with_abc();
	struct cluster *c = default_cluster(m);
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	cluster_put_node(c, "a", "10.0.0.1:80", NULL, &alice, T0, NULL, &err);
	assert_int_equal(cluster_put_node(c, "a", "10.0.0.1:80", NULL, &alice, T0, &audit, &err),
	                 0);
	assert_int_equal(c->version, 3);
	assert_int_equal(audit.n, 0);
	model_free(m);
}

static void
test_put_node_invalid_address_changes_nothing(void **state)
{
	struct model *m = model_with_abc();
	struct model *before = model_copy(m);
	struct error err;

	(void)state;
	assert_int_equal(
	    cluster_put_node(default_cluster(m), "d", "no-port", NULL, &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.entry, "d");
	assert_true(models_equal(m, before));
	model_free(before);
	model_free(m);
}

static void
test_remove_node_unknown_404(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	assert_int_equal(cluster_remove_node(default_cluster(m), "x", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 404);
	assert_string_equal(err.entry, "x");
	assert_int_equal(default_cluster(m)->version, 2);
	model_free(m);
}

static void
test_remove_node_forgets_it_and_audits(void **state)
{
	struct model *m = model_with_abc();
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	assert_int_equal(cluster_remove_node(default_cluster(m), "b", &alice, T0, &audit, &err), 0);
	assert_null(node_named(m, "b"));
	assert_non_null(node_named(m, "c"));
	assert_int_equal(default_cluster(m)->n_nodes, 2);
	assert_int_equal(default_cluster(m)->version, 3);
	assert_string_equal(audit.entries[0].action, "node-remove");
	assert_string_equal(audit.entries[0].node, "b");
	audit_log_free(&audit);
	model_free(m);
}

/* --- change sets ------------------------------------------------------ */

static void
test_changeset_parses_and_sorts_by_node(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(parse_changes("{\"zope2\": {\"status\": \"drain\", \"reason\": \"deploy\","
	                               " \"ttl\": 600}, \"zope1\": {\"status\": \"online\"}}",
	                               &cs, &err),
	                 0);
	assert_int_equal(cs.n, 2);
	assert_string_equal(cs.changes[0].node, "zope1");
	assert_int_equal(cs.changes[0].status, NODE_ONLINE);
	assert_string_equal(cs.changes[0].reason, "");
	assert_int_equal(cs.changes[0].ttl_ms, 0);
	assert_string_equal(cs.changes[1].node, "zope2");
	assert_int_equal(cs.changes[1].status, NODE_DRAIN);
	assert_string_equal(cs.changes[1].reason, "deploy");
	assert_int_equal(cs.changes[1].ttl_ms, 600000);
	change_set_free(&cs);
}

static void
test_changeset_empty_rejected(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(parse_changes("{}", &cs, &err), 400);
	assert_string_equal(err.what, "change set is empty");
	assert_int_equal(parse_changes("[]", &cs, &err), 400);
}

static void
test_changeset_invalid_name_names_entry(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(parse_changes("{\"a\": {\"status\": \"offline\"},"
	                               " \"a b\": {\"status\": \"offline\"}}",
	                               &cs, &err),
	                 400);
	assert_string_equal(err.entry, "a b");
	assert_string_equal(
	    err.what,
	    "node 'a b': invalid name (1-64 characters of A-Z a-z 0-9 . _ -, not . or ..)");
	assert_int_equal(cs.n, 0);
}

static void
test_changeset_unknown_status_names_entry(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(parse_changes("{\"x\": {\"status\": \"up\"}}", &cs, &err), 400);
	assert_string_equal(err.entry, "x");
	assert_string_equal(err.what,
	                    "node 'x': unknown status 'up' (expected online, offline or drain)");
}

static void
test_changeset_missing_or_mistyped_status_rejected(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(parse_changes("{\"x\": {\"reason\": \"r\"}}", &cs, &err), 400);
	assert_non_null(strstr(err.what, "status is missing"));
	assert_int_equal(parse_changes("{\"x\": {\"status\": 1}}", &cs, &err), 400);
	assert_string_equal(err.entry, "x");
}

static void
test_changeset_unknown_field_rejected(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(parse_changes("{\"x\": {\"status\": \"offline\", \"foo\": 1}}", &cs, &err),
	                 400);
	assert_string_equal(err.entry, "x");
	assert_non_null(strstr(err.what, "node 'x': unknown field 'foo'"));
}

static void
test_changeset_non_object_entry_rejected(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(parse_changes("{\"x\": \"offline\"}", &cs, &err), 400);
	assert_string_equal(err.entry, "x");
}

static void
test_changeset_reason_over_256_chars_rejected(void **state)
{
	char text[400];
	char reason[258];
	struct change_set cs;
	struct error err;

	(void)state;
	memset(reason, 'r', 257);
	reason[257] = '\0';
	snprintf(text, sizeof(text), "{\"x\": {\"status\": \"offline\", \"reason\": \"%s\"}}",
	         reason);
	assert_int_equal(parse_changes(text, &cs, &err), 400);
	assert_string_equal(err.what, "node 'x': reason is longer than 256 characters");
}

static void
test_changeset_reason_counts_characters_not_bytes(void **state)
{
	char text[900];
	char reason[600];
	struct change_set cs;
	struct error err;
	size_t i;

	(void)state;
	/* 256 times "ä": 512 bytes, 256 characters. */
	for (i = 0; i < 256; i++)
		memcpy(reason + 2 * i, "\xc3\xa4", 2);
	reason[512] = '\0';
	snprintf(text, sizeof(text), "{\"x\": {\"status\": \"offline\", \"reason\": \"%s\"}}",
	         reason);
	assert_int_equal(parse_changes(text, &cs, &err), 0);
	change_set_free(&cs);
}

static void
test_changeset_mistyped_reason_rejected(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(
	    parse_changes("{\"x\": {\"status\": \"offline\", \"reason\": 5}}", &cs, &err), 400);
	assert_string_equal(err.entry, "x");
}

static void
test_changeset_ttl_on_online_rejected(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(parse_changes("{\"x\": {\"status\": \"online\", \"ttl\": 60}}", &cs, &err),
	                 400);
	assert_string_equal(err.entry, "x");
	assert_non_null(strstr(err.what, "ttl"));
}

static void
test_changeset_ttl_must_be_positive_whole_and_at_most_30_days(void **state)
{
	struct change_set cs;
	struct error err;

	(void)state;
	assert_int_equal(parse_changes("{\"x\": {\"status\": \"offline\", \"ttl\": 0}}", &cs, &err),
	                 400);
	assert_int_equal(
	    parse_changes("{\"x\": {\"status\": \"offline\", \"ttl\": -5}}", &cs, &err), 400);
	assert_int_equal(
	    parse_changes("{\"x\": {\"status\": \"offline\", \"ttl\": 1.5}}", &cs, &err), 400);
	assert_int_equal(
	    parse_changes("{\"x\": {\"status\": \"offline\", \"ttl\": \"60\"}}", &cs, &err), 400);
	assert_int_equal(
	    parse_changes("{\"x\": {\"status\": \"offline\", \"ttl\": 2592001}}", &cs, &err), 400);
	assert_int_equal(
	    parse_changes("{\"x\": {\"status\": \"offline\", \"ttl\": 2592000}}", &cs, &err), 0);
	assert_int_equal(cs.changes[0].ttl_ms, 2592000LL * 1000);
	change_set_free(&cs);
}

/* --- applying change sets --------------------------------------------- */

static void
test_apply_sets_status_fields_and_audits(void **state)
{
	struct model *m = model_with_abc();
	struct audit_log audit = {0};
	struct error err;
	const struct node *n;

	(void)state;
	assert_int_equal(apply_json(m,
	                            "{\"b\": {\"status\": \"offline\", \"reason\": \"kernel\","
	                            " \"ttl\": 60}}",
	                            T0 + 5, -1, -1, &audit, &err),
	                 0);
	n = node_named(m, "b");
	assert_int_equal(n->status, NODE_OFFLINE);
	assert_string_equal(n->reason, "kernel");
	assert_string_equal(n->changed_by, "alice");
	assert_int_equal(n->changed_at, T0 + 5);
	assert_int_equal(n->expires_at, T0 + 5 + 60000);
	assert_int_equal(audit.n, 1);
	assert_string_equal(audit.entries[0].action, "status");
	assert_string_equal(audit.entries[0].cluster, "default");
	assert_string_equal(audit.entries[0].node, "b");
	assert_string_equal(audit.entries[0].old_status, "online");
	assert_string_equal(audit.entries[0].new_status, "offline");
	assert_string_equal(audit.entries[0].reason, "kernel");
	assert_int_equal(audit.entries[0].at, T0 + 5);
	audit_log_free(&audit);
	model_free(m);
}

static void
test_apply_without_ttl_clears_expiry(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	apply_json(m, "{\"a\": {\"status\": \"offline\", \"ttl\": 60}}", T0, -1, -1, NULL, &err);
	assert_int_equal(apply_json(m, "{\"a\": {\"status\": \"drain\"}}", T0, -1, -1, NULL, &err),
	                 0);
	assert_int_equal(node_named(m, "a")->expires_at, 0);
	model_free(m);
}

static void
test_apply_unknown_node_changes_nothing(void **state)
{
	struct model *m = model_with_abc();
	struct model *before = model_copy(m);
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	assert_int_equal(apply_json(m,
	                            "{\"a\": {\"status\": \"offline\"},"
	                            " \"x\": {\"status\": \"offline\"}}",
	                            T0, -1, -1, &audit, &err),
	                 -1);
	assert_int_equal(err.status, 404);
	assert_string_equal(err.entry, "x");
	assert_string_equal(err.what, "node 'x' not found in cluster 'default'");
	assert_true(models_equal(m, before));
	assert_int_equal(audit.n, 0);
	model_free(before);
	model_free(m);
}

static void
test_apply_if_version_mismatch_409(void **state)
{
	struct model *m = model_with_abc();
	struct model *before = model_copy(m);
	struct error err;

	(void)state;
	assert_int_equal(apply_json(m, "{\"a\": {\"status\": \"offline\"}}", T0, 1, -1, NULL, &err),
	                 -1);
	assert_int_equal(err.status, 409);
	assert_string_equal(err.what, "cluster version is 2, not 1");
	assert_true(models_equal(m, before));
	model_free(before);
	model_free(m);
}

static void
test_apply_if_version_match_applies(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	assert_int_equal(apply_json(m, "{\"a\": {\"status\": \"offline\"}}", T0, 2, -1, NULL, &err),
	                 0);
	assert_int_equal(node_named(m, "a")->status, NODE_OFFLINE);
	model_free(m);
}

static void
test_apply_min_online_409_changes_nothing(void **state)
{
	struct model *m = model_with_abc();
	struct model *before = model_copy(m);
	struct error err;

	(void)state;
	/* a, b, c online; taking a and b out would leave 1 < 2. */
	assert_int_equal(apply_json(m,
	                            "{\"a\": {\"status\": \"offline\"},"
	                            " \"b\": {\"status\": \"drain\"}}",
	                            T0, -1, 2, NULL, &err),
	                 -1);
	assert_int_equal(err.status, 409);
	assert_non_null(strstr(err.what, "min_online 2"));
	assert_true(models_equal(m, before));
	model_free(before);
	model_free(m);
}

static void
test_apply_min_online_counts_nodes_coming_back(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	apply_json(m, "{\"a\": {\"status\": \"offline\"}}", T0, -1, -1, NULL, &err);
	/* a comes back while b goes out: still 2 online. */
	assert_int_equal(apply_json(m,
	                            "{\"a\": {\"status\": \"online\"},"
	                            " \"b\": {\"status\": \"offline\"}}",
	                            T0, -1, 2, NULL, &err),
	                 0);
	assert_int_equal(cluster_count_online(default_cluster(m)), 2);
	model_free(m);
}

static void
test_apply_increments_version_once(void **state)
{
	struct model *m = model_with_abc();
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	assert_int_equal(apply_json(m,
	                            "{\"a\": {\"status\": \"offline\"},"
	                            " \"b\": {\"status\": \"offline\"},"
	                            " \"c\": {\"status\": \"drain\"}}",
	                            T0, -1, -1, &audit, &err),
	                 0);
	assert_int_equal(default_cluster(m)->version, 3);
	assert_int_equal(audit.n, 3);
	audit_log_free(&audit);
	model_free(m);
}

static void
test_apply_duplicate_node_in_hand_built_set_400(void **state)
{
	struct model *m = model_with_abc();
	struct status_change changes[] = {
	    {"a", NODE_OFFLINE, "", 0},
	    {"a", NODE_ONLINE, "", 0},
	};
	struct change_set cs = {2, changes};
	struct error err;

	(void)state;
	assert_int_equal(
	    cluster_apply_changes(default_cluster(m), &cs, &alice, T0, -1, -1, NULL, &err), -1);
	assert_int_equal(err.status, 400);
	assert_string_equal(err.entry, "a");
	assert_int_equal(node_named(m, "a")->status, NODE_ONLINE);
	model_free(m);
}

static void
test_apply_empty_set_400(void **state)
{
	struct model *m = model_with_abc();
	struct change_set cs = {0, NULL};
	struct error err;

	(void)state;
	assert_int_equal(
	    cluster_apply_changes(default_cluster(m), &cs, &alice, T0, -1, -1, NULL, &err), -1);
	assert_int_equal(err.status, 400);
	assert_int_equal(default_cluster(m)->version, 2);
	model_free(m);
}

/* --- TTL expiry ------------------------------------------------------- */

static void
test_ttl_expiry_returns_online_and_audits(void **state)
{
	struct model *m = model_with_abc();
	struct audit_log audit = {0};
	struct error err;
	const struct node *n;

	(void)state;
	apply_json(m, "{\"a\": {\"status\": \"offline\", \"reason\": \"deploy\", \"ttl\": 10}}", T0,
	           -1, -1, NULL, &err);
	assert_int_equal(model_expire(m, T0 + 10000, &audit), 1);
	n = node_named(m, "a");
	assert_int_equal(n->status, NODE_ONLINE);
	assert_string_equal(n->reason, "");
	assert_string_equal(n->changed_by, "ttl");
	assert_int_equal(n->changed_at, T0 + 10000);
	assert_int_equal(n->expires_at, 0);
	assert_int_equal(audit.n, 1);
	assert_string_equal(audit.entries[0].action, "status");
	assert_string_equal(audit.entries[0].actor, "ttl");
	assert_string_equal(audit.entries[0].address, "");
	assert_string_equal(audit.entries[0].old_status, "offline");
	assert_string_equal(audit.entries[0].new_status, "online");
	assert_string_equal(audit.entries[0].reason, "ttl expired");
	audit_log_free(&audit);
	model_free(m);
}

static void
test_ttl_not_yet_due_changes_nothing(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	apply_json(m, "{\"a\": {\"status\": \"offline\", \"ttl\": 10}}", T0, -1, -1, NULL, &err);
	assert_int_equal(model_expire(m, T0 + 9999, NULL), 0);
	assert_int_equal(node_named(m, "a")->status, NODE_OFFLINE);
	assert_int_equal(default_cluster(m)->version, 3);
	model_free(m);
}

static void
test_ttl_expiry_increments_version_once_per_cluster(void **state)
{
	struct model *m = model_with_abc();
	struct error err;

	(void)state;
	apply_json(m,
	           "{\"a\": {\"status\": \"offline\", \"ttl\": 10},"
	           " \"b\": {\"status\": \"drain\", \"ttl\": 5}}",
	           T0, -1, -1, NULL, &err);
	assert_int_equal(model_add_cluster(m, "idle", "/idle", &alice, T0, NULL, &err), 0);
	assert_int_equal(model_expire(m, T0 + 60000, NULL), 2);
	assert_int_equal(default_cluster(m)->version, 4);
	assert_int_equal(model_find_cluster(m, "idle")->version, 1);
	assert_int_equal(model_next_expiry(m), 0);
	model_free(m);
}

/* --- users and tokens ------------------------------------------------- */

static void
test_put_user_adds_then_replaces(void **state)
{
	struct model *m = model_new();
	struct audit_log audit = {0};
	struct error err;
	const struct user *u;

	(void)state;
	assert_int_equal(model_put_user(m, "admin", ROLE_ADMIN, "$h1", &alice, T0, NULL, &err), 0);
	assert_int_equal(model_put_user(m, "bob", ROLE_VIEWER, "$h2", &alice, T0, NULL, &err), 0);
	assert_int_equal(
	    model_put_user(m, "bob", ROLE_OPERATOR, "$h3", &alice, T0 + 1, &audit, &err), 0);
	u = model_find_user(m, "bob");
	assert_int_equal(m->n_users, 2);
	assert_int_equal(u->role, ROLE_OPERATOR);
	assert_string_equal(u->password_hash, "$h3");
	assert_int_equal(u->created_at, T0);
	assert_string_equal(audit.entries[0].action, "user-add");
	assert_string_equal(audit.entries[0].node, "bob");
	audit_log_free(&audit);
	model_free(m);
}

static void
test_put_user_invalid_name_or_role_400(void **state)
{
	struct model *m = model_new();
	struct error err;

	(void)state;
	assert_int_equal(model_put_user(m, "bob smith", ROLE_VIEWER, "$h", &alice, T0, NULL, &err),
	                 -1);
	assert_int_equal(err.status, 400);
	assert_int_equal(model_put_user(m, "bob", ROLE_NONE, "$h", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 400);
	assert_int_equal(model_put_user(m, "bob", ROLE_VIEWER, "", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 400);
	assert_int_equal(m->n_users, 0);
	model_free(m);
}

static void
test_remove_user_unknown_404(void **state)
{
	struct model *m = model_new();
	struct error err;

	(void)state;
	assert_int_equal(model_remove_user(m, "nobody", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 404);
	model_free(m);
}

static void
test_only_admin_cannot_be_removed_or_demoted(void **state)
{
	struct model *m = model_new();
	struct error err;

	(void)state;
	model_put_user(m, "admin", ROLE_ADMIN, "$h", &alice, T0, NULL, &err);
	assert_int_equal(model_remove_user(m, "admin", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 409);
	assert_int_equal(model_put_user(m, "admin", ROLE_VIEWER, "$h", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 409);
	assert_int_equal(model_find_user(m, "admin")->role, ROLE_ADMIN);
	model_put_user(m, "root", ROLE_ADMIN, "$h", &alice, T0, NULL, &err);
	assert_int_equal(model_remove_user(m, "admin", &alice, T0, NULL, &err), 0);
	assert_null(model_find_user(m, "admin"));
	model_free(m);
}

static void
test_add_token_and_find(void **state)
{
	struct model *m = model_new();
	struct audit_log audit = {0};
	struct error err;
	const struct token *t;

	(void)state;
	assert_int_equal(
	    model_add_token(m, "k2", ROLE_OPERATOR, "deploy", "beef", &alice, T0, &audit, &err), 0);
	assert_int_equal(
	    model_add_token(m, "k1", ROLE_VIEWER, NULL, "cafe", &alice, T0, NULL, &err), 0);
	assert_string_equal(m->tokens[0].id, "k1");
	assert_string_equal(m->tokens[0].description, "");
	t = model_find_token(m, "k2");
	assert_non_null(t);
	assert_string_equal(t->hash, "beef");
	assert_string_equal(t->created_by, "alice");
	assert_null(model_find_token(m, "k3"));
	assert_string_equal(audit.entries[0].action, "token-create");
	audit_log_free(&audit);
	model_free(m);
}

static void
test_add_token_duplicate_id_409(void **state)
{
	struct model *m = model_new();
	struct error err;

	(void)state;
	model_add_token(m, "k1", ROLE_VIEWER, "", "cafe", &alice, T0, NULL, &err);
	assert_int_equal(model_add_token(m, "k1", ROLE_ADMIN, "", "beef", &alice, T0, NULL, &err),
	                 -1);
	assert_int_equal(err.status, 409);
	assert_int_equal(m->n_tokens, 1);
	assert_int_equal(m->tokens[0].role, ROLE_VIEWER);
	model_free(m);
}

/* The core holds the limit, whichever surface the token comes from. */
static void
test_add_token_description_over_limit_400_changes_nothing(void **state)
{
	struct model *m = model_new();
	char description[DESCRIPTION_MAX + 2];
	struct error err;

	(void)state;
	memset(description, 'x', DESCRIPTION_MAX);
	description[DESCRIPTION_MAX] = '\0';
	assert_int_equal(
	    model_add_token(m, "k1", ROLE_VIEWER, description, "cafe", &alice, T0, NULL, &err), 0);
	description[DESCRIPTION_MAX] = 'x';
	description[DESCRIPTION_MAX + 1] = '\0';
	assert_int_equal(
	    model_add_token(m, "k2", ROLE_VIEWER, description, "beef", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 400);
	assert_non_null(strstr(err.what, "description"));
	assert_int_equal(m->n_tokens, 1);
	model_free(m);
}

static void
test_remove_token_revokes_and_unknown_404(void **state)
{
	struct model *m = model_new();
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	model_add_token(m, "k1", ROLE_VIEWER, "", "cafe", &alice, T0, NULL, &err);
	assert_int_equal(model_remove_token(m, "k1", &alice, T0, &audit, &err), 0);
	assert_null(model_find_token(m, "k1"));
	assert_string_equal(audit.entries[0].action, "token-revoke");
	assert_int_equal(model_remove_token(m, "k1", &alice, T0, NULL, &err), -1);
	assert_int_equal(err.status, 404);
	audit_log_free(&audit);
	model_free(m);
}

/* --- audit log -------------------------------------------------------- */

static void
test_audit_log_turns_null_into_empty_and_grows(void **state)
{
	struct audit_log audit = {0};
	size_t i;

	(void)state;
	for (i = 0; i < 20; i++)
		audit_log_add(&audit, T0, "default", NULL, NULL, "status", NULL, NULL, NULL);
	assert_int_equal(audit.n, 20);
	assert_string_equal(audit.entries[19].node, "");
	assert_string_equal(audit.entries[19].actor, "");
	assert_string_equal(audit.entries[19].reason, "");
	assert_int_equal(audit.entries[19].id, 0);
	audit_log_free(&audit);
	assert_int_equal(audit.n, 0);
	assert_null(audit.entries);
	audit_log_add(NULL, T0, "x", "y", &alice, "status", "", "", "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_node_name_accepts_all_allowed_characters),
	    cmocka_unit_test(test_node_name_accepts_64_chars),
	    cmocka_unit_test(test_node_name_rejects_65_chars),
	    cmocka_unit_test(test_node_name_rejects_empty),
	    cmocka_unit_test(test_node_name_rejects_space),
	    cmocka_unit_test(test_node_name_rejects_script),
	    cmocka_unit_test(test_node_name_rejects_non_ascii),
	    cmocka_unit_test(test_node_name_rejects_dot_and_dot_dot),
	    cmocka_unit_test(test_node_name_uses_only_len_bytes),
	    cmocka_unit_test(test_mount_path_accepts_nested_segments),
	    cmocka_unit_test(test_mount_path_rejects_bad_shapes),
	    cmocka_unit_test(test_mount_path_rejects_v1_and_below),
	    cmocka_unit_test(test_mount_path_rejects_metrics_only_exactly),
	    cmocka_unit_test(test_mount_path_rejects_over_128_chars),
	    cmocka_unit_test(test_address_accepts_host_ipv4_and_ipv6),
	    cmocka_unit_test(test_address_rejects_what_no_load_balancer_loads),
	    cmocka_unit_test(test_check_accepts_only_http_urls),
	    cmocka_unit_test(test_status_names_round_trip),
	    cmocka_unit_test(test_role_names_round_trip_and_reject_anonymous),
	    cmocka_unit_test(test_new_model_has_no_clusters),
	    cmocka_unit_test(test_copy_changes_apart_from_its_original),
	    cmocka_unit_test(test_copy_of_a_copy_shares_node_strings),
	    cmocka_unit_test(test_copy_outlives_the_model_it_shares_with),
	    cmocka_unit_test(test_a_change_copies_only_the_chunk_of_its_node),
	    cmocka_unit_test(test_nodes_added_and_removed_across_chunks_keep_name_order),
	    cmocka_unit_test(test_counts_over_chunks_follow_changes_and_seal),
	    cmocka_unit_test(test_store_node_replaces_or_adds_in_name_order),
	    cmocka_unit_test(test_random_changes_across_chunks_match_a_plain_list),
	    cmocka_unit_test(test_status_change_on_a_shared_node_leaves_the_other_model),
	    cmocka_unit_test(test_stamps_mark_only_the_nodes_that_changed),
	    cmocka_unit_test(test_stamps_of_clusters_read_afresh_or_made_again),
	    cmocka_unit_test(test_ttl_expiry_on_a_shared_node_leaves_the_other_model),
	    cmocka_unit_test(test_address_set_on_a_shared_node_leaves_the_other_model),
	    cmocka_unit_test(test_node_list_replaced_on_a_copy_keeps_both_models_whole),
	    cmocka_unit_test(test_find_node_mut_gives_the_node_strings_of_its_own),
	    cmocka_unit_test(test_find_node_takes_unterminated_slice),
	    cmocka_unit_test(test_copy_keeps_the_index_of_mounts_until_its_clusters_change),
	    cmocka_unit_test(test_find_cluster_by_path_is_exact),
	    cmocka_unit_test(test_find_mount_on_indexed_model_is_segment_prefix),
	    cmocka_unit_test(test_next_expiry_is_earliest_ttl),
	    cmocka_unit_test(test_add_cluster_starts_at_version_1_and_audits),
	    cmocka_unit_test(test_clusters_stay_sorted_by_name),
	    cmocka_unit_test(test_add_cluster_duplicate_name_409),
	    cmocka_unit_test(test_add_cluster_taken_path_409),
	    cmocka_unit_test(test_add_cluster_nested_path_409),
	    cmocka_unit_test(test_add_cluster_invalid_name_or_path_400),
	    cmocka_unit_test(test_remove_cluster_unknown_404),
	    cmocka_unit_test(test_remove_last_cluster_allowed),
	    cmocka_unit_test(test_new_node_starts_online_by_actor),
	    cmocka_unit_test(test_set_node_list_collapses_duplicates),
	    cmocka_unit_test(test_set_node_list_invalid_name_changes_nothing),
	    cmocka_unit_test(test_set_node_list_keeps_status_and_forgets_removed),
	    cmocka_unit_test(test_set_node_list_increments_version_once),
	    cmocka_unit_test(test_set_node_list_same_list_is_a_no_op),
	    cmocka_unit_test(test_set_node_list_empty_removes_all),
	    cmocka_unit_test(test_put_node_adds_online_node_with_address),
	    cmocka_unit_test(test_put_node_null_keeps_and_empty_clears),
	    cmocka_unit_test(test_put_node_unchanged_is_a_no_op),
	    cmocka_unit_test(test_put_node_invalid_address_changes_nothing),
	    cmocka_unit_test(test_remove_node_unknown_404),
	    cmocka_unit_test(test_remove_node_forgets_it_and_audits),
	    cmocka_unit_test(test_changeset_parses_and_sorts_by_node),
	    cmocka_unit_test(test_changeset_empty_rejected),
	    cmocka_unit_test(test_changeset_invalid_name_names_entry),
	    cmocka_unit_test(test_changeset_unknown_status_names_entry),
	    cmocka_unit_test(test_changeset_missing_or_mistyped_status_rejected),
	    cmocka_unit_test(test_changeset_unknown_field_rejected),
	    cmocka_unit_test(test_changeset_non_object_entry_rejected),
	    cmocka_unit_test(test_changeset_reason_over_256_chars_rejected),
	    cmocka_unit_test(test_changeset_reason_counts_characters_not_bytes),
	    cmocka_unit_test(test_changeset_mistyped_reason_rejected),
	    cmocka_unit_test(test_changeset_ttl_on_online_rejected),
	    cmocka_unit_test(test_changeset_ttl_must_be_positive_whole_and_at_most_30_days),
	    cmocka_unit_test(test_apply_sets_status_fields_and_audits),
	    cmocka_unit_test(test_apply_without_ttl_clears_expiry),
	    cmocka_unit_test(test_apply_unknown_node_changes_nothing),
	    cmocka_unit_test(test_apply_if_version_mismatch_409),
	    cmocka_unit_test(test_apply_if_version_match_applies),
	    cmocka_unit_test(test_apply_min_online_409_changes_nothing),
	    cmocka_unit_test(test_apply_min_online_counts_nodes_coming_back),
	    cmocka_unit_test(test_apply_increments_version_once),
	    cmocka_unit_test(test_apply_duplicate_node_in_hand_built_set_400),
	    cmocka_unit_test(test_apply_empty_set_400),
	    cmocka_unit_test(test_ttl_expiry_returns_online_and_audits),
	    cmocka_unit_test(test_ttl_not_yet_due_changes_nothing),
	    cmocka_unit_test(test_ttl_expiry_increments_version_once_per_cluster),
	    cmocka_unit_test(test_put_user_adds_then_replaces),
	    cmocka_unit_test(test_put_user_invalid_name_or_role_400),
	    cmocka_unit_test(test_remove_user_unknown_404),
	    cmocka_unit_test(test_only_admin_cannot_be_removed_or_demoted),
	    cmocka_unit_test(test_add_token_and_find),
	    cmocka_unit_test(test_add_token_duplicate_id_409),
	    cmocka_unit_test(test_add_token_description_over_limit_400_changes_nothing),
	    cmocka_unit_test(test_remove_token_revokes_and_unknown_404),
	    cmocka_unit_test(test_audit_log_turns_null_into_empty_and_grows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
