/*
 * test_command.c - struct command and command_apply, one behaviour per
 * test: each kind applied, a failed command changing nothing, and the
 * same command applied to a fresher model than the one it was built
 * against (what the engine does when another writer got there first).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../src/core/command.h"
#include "../../src/util/xalloc.h"

#define T0 1700000000000LL

static const struct actor alice = {"alice", "192.0.2.1"};

/* --- helpers ---------------------------------------------------------- */

/* "default" at /health with nodes a, b, c (online), version 2, and the
 * admin user "root". */
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
	assert_int_equal(model_put_user(m, "root", ROLE_ADMIN, "hash", &alice, T0, NULL, &err), 0);
	return m;
}

/* Everything a command can change, as text, to compare two models. */
static char *
model_text(const struct model *m)
{
	size_t size = 65536, len = 0, i, j;
	char *out = xcalloc(1, size);

	for (i = 0; i < m->n_clusters; i++) {
		const struct cluster *c = &m->clusters[i];
		len += (size_t)snprintf(out + len, size - len, "C %s %s %lld\n", c->name, c->path,
		                        (long long)c->version);
		for (j = 0; j < c->n_nodes; j++) {
			const struct node *n = cluster_node(c, j);
			len += (size_t)snprintf(
			    out + len, size - len, " N %s %d %s %s %lld %s %s\n", n->name,
			    (int)n->status, n->reason, n->changed_by, (long long)n->expires_at,
			    n->address ? n->address : "-", n->check ? n->check : "-");
		}
	}
	for (i = 0; i < m->n_users; i++)
		len += (size_t)snprintf(out + len, size - len, "U %s %d %s\n", m->users[i].name,
		                        (int)m->users[i].role, m->users[i].password_hash);
	for (i = 0; i < m->n_tokens; i++)
		len += (size_t)snprintf(out + len, size - len, "T %s %d %s\n", m->tokens[i].id,
		                        (int)m->tokens[i].role, m->tokens[i].description);
	return out;
}

/* Applies c to m and asserts that it failed with status and left m
 * exactly as it was, with nothing in the audit log. */
static void
assert_refused(struct model *m, const struct command *c, int status)
{
	char *before = model_text(m), *after;
	struct audit_log audit = {0};
	struct command_result res;
	struct error err;

	error_clear(&err);
	assert_int_equal(command_apply(m, c, &alice, T0 + 1000, &audit, &res, &err), -1);
	assert_int_equal(err.status, status);
	assert_true(err.what[0] != '\0');
	assert_int_equal(audit.n, 0);
	assert_false(res.is_changed);
	after = model_text(m);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void
add_change(struct command *c, const char *node, enum node_status status, const char *reason,
           int64_t ttl_ms)
{
	struct change_set *cs = &c->changes;

	cs->changes = xreallocarray(cs->changes, cs->n + 1, sizeof(*cs->changes));
	cs->changes[cs->n++] =
	    (struct status_change){xstrdup(node), status, xstrdup(reason), ttl_ms};
}

static struct command
status_command(const char *node, enum node_status status)
{
	struct command c;

	command_init(&c, COMMAND_SET_STATUS);
	c.cluster = xstrdup("default");
	add_change(&c, node, status, "deploy", 0);
	return c;
}

static const struct node *
node_named(struct model *m, const char *name)
{
	return cluster_find_node(model_find_cluster(m, "default"), name, strlen(name));
}

/* --- each kind -------------------------------------------------------- */

static void
test_set_status_changes_nodes_and_reports_version(void **state)
{
	struct model *m = model_with_abc();
	struct command c = status_command("a", NODE_OFFLINE);
	struct audit_log audit = {0};
	struct command_result res;
	struct error err;

	(void)state;
	assert_int_equal(command_apply(m, &c, &alice, T0 + 1, &audit, &res, &err), 0);
	assert_int_equal(node_named(m, "a")->status, NODE_OFFLINE);
	assert_string_equal(node_named(m, "a")->reason, "deploy");
	assert_true(res.is_changed);
	assert_int_equal(res.version, 3);
	assert_int_equal(audit.n, 1);
	audit_log_free(&audit);
	command_free(&c);
	model_free(m);
}

static void
test_set_node_list_replaces_nodes(void **state)
{
	struct model *m = model_with_abc();
	struct command c;
	struct command_result res;
	struct error err;

	(void)state;
	command_init(&c, COMMAND_SET_NODE_LIST);
	c.cluster = xstrdup("default");
	command_add_name(&c, "b");
	command_add_name(&c, "d");
	assert_int_equal(command_apply(m, &c, &alice, T0 + 1, NULL, &res, &err), 0);
	assert_null(node_named(m, "a"));
	assert_non_null(node_named(m, "d"));
	assert_int_equal(model_find_cluster(m, "default")->n_nodes, 2);
	assert_true(res.is_changed);
	assert_int_equal(res.version, 3);
	command_free(&c);
	model_free(m);
}

static void
test_put_node_creates_then_updates(void **state)
{
	struct model *m = model_with_abc();
	struct command c;
	struct command_result res;
	struct error err;

	(void)state;
	command_init(&c, COMMAND_PUT_NODE);
	c.cluster = xstrdup("default");
	c.name = xstrdup("d");
	c.address = xstrdup("10.0.0.4:80");
	assert_int_equal(command_apply(m, &c, &alice, T0 + 1, NULL, &res, &err), 0);
	assert_true(res.is_created);
	assert_string_equal(node_named(m, "d")->address, "10.0.0.4:80");
	assert_int_equal(command_apply(m, &c, &alice, T0 + 2, NULL, &res, &err), 0);
	assert_false(res.is_created);
	assert_false(res.is_changed); /* the same address again changes nothing */
	command_free(&c);
	model_free(m);
}

static void
test_remove_node_forgets_it(void **state)
{
	struct model *m = model_with_abc();
	struct command c;
	struct command_result res;
	struct error err;

	(void)state;
	command_init(&c, COMMAND_REMOVE_NODE);
	c.cluster = xstrdup("default");
	c.name = xstrdup("b");
	assert_int_equal(command_apply(m, &c, &alice, T0 + 1, NULL, &res, &err), 0);
	assert_null(node_named(m, "b"));
	assert_int_equal(res.version, 3);
	assert_refused(m, &c, 404); /* it is gone now */
	command_free(&c);
	model_free(m);
}

static void
test_add_and_remove_cluster(void **state)
{
	struct model *m = model_with_abc();
	struct command add, rm;
	struct command_result res;
	struct error err;

	(void)state;
	command_init(&add, COMMAND_ADD_CLUSTER);
	add.cluster = xstrdup("shop");
	add.path = xstrdup("/shop");
	assert_int_equal(command_apply(m, &add, &alice, T0 + 1, NULL, &res, &err), 0);
	assert_int_equal(res.version, 1);
	assert_non_null(model_find_cluster(m, "shop"));
	assert_refused(m, &add, 409);
	command_init(&rm, COMMAND_REMOVE_CLUSTER);
	rm.cluster = xstrdup("shop");
	assert_int_equal(command_apply(m, &rm, &alice, T0 + 2, NULL, &res, &err), 0);
	assert_null(model_find_cluster(m, "shop"));
	command_free(&add);
	command_free(&rm);
	model_free(m);
}

static void
test_put_user_hashes_a_plaintext_password_when_prepared(void **state)
{
	struct model *m = model_with_abc();
	struct command c;
	struct command_result res;
	struct error err;

	(void)state;
	command_init(&c, COMMAND_PUT_USER);
	c.name = xstrdup("bob");
	c.role = ROLE_OPERATOR;
	c.is_new_only = 1;
	c.password = xstrdup("correct horse");
	assert_true(command_needs_prepare(&c));
	assert_refused(m, &c, 500); /* not hashed yet: never stored as given */
	assert_int_equal(command_prepare(&c, &err), 0);
	assert_null(c.password);
	assert_false(command_needs_prepare(&c));
	assert_int_equal(command_apply(m, &c, &alice, T0 + 5, NULL, &res, &err), 0);
	assert_true(res.is_created);
	assert_int_equal(res.created_at, T0 + 5);
	assert_int_equal(
	    crypto_pwhash_str_verify(model_find_user(m, "bob")->password_hash, "correct horse", 13),
	    0);
	assert_refused(m, &c, 409); /* is_new_only: bob exists now */
	command_free(&c);
	model_free(m);
}

static void
test_remove_user_and_last_admin_refused(void **state)
{
	struct model *m = model_with_abc();
	struct command c;
	struct error err;

	(void)state;
	command_init(&c, COMMAND_REMOVE_USER);
	c.name = xstrdup("root");
	assert_refused(m, &c, 409); /* the only admin */
	free(c.name);
	c.name = xstrdup("nobody");
	assert_refused(m, &c, 404);
	assert_int_equal(model_put_user(m, "eve", ROLE_VIEWER, "h", &alice, T0, NULL, &err), 0);
	free(c.name);
	c.name = xstrdup("eve");
	assert_int_equal(command_apply(m, &c, &alice, T0 + 1, NULL, NULL, &err), 0);
	assert_null(model_find_user(m, "eve"));
	command_free(&c);
	model_free(m);
}

static void
test_add_and_remove_token(void **state)
{
	struct model *m = model_with_abc();
	struct command add, rm;
	struct command_result res;
	struct error err;

	(void)state;
	command_init(&add, COMMAND_ADD_TOKEN);
	add.name = xstrdup("0011aabb");
	add.role = ROLE_OPERATOR;
	add.description = xstrdup("ci");
	add.token_hash = xstrdup("ab");
	assert_int_equal(command_apply(m, &add, &alice, T0 + 1, NULL, &res, &err), 0);
	assert_true(res.is_changed);
	assert_string_equal(model_find_token(m, "0011aabb")->description, "ci");
	assert_refused(m, &add, 409);
	command_init(&rm, COMMAND_REMOVE_TOKEN);
	rm.name = xstrdup("0011aabb");
	assert_int_equal(command_apply(m, &rm, &alice, T0 + 2, NULL, NULL, &err), 0);
	assert_null(model_find_token(m, "0011aabb"));
	assert_refused(m, &rm, 404);
	command_free(&add);
	command_free(&rm);
	model_free(m);
}

static void
test_expire_returns_due_nodes_online(void **state)
{
	struct model *m = model_with_abc();
	struct command c;
	struct command_result res;
	struct audit_log audit = {0};
	struct error err;

	(void)state;
	command_init(&c, COMMAND_SET_STATUS);
	c.cluster = xstrdup("default");
	add_change(&c, "a", NODE_DRAIN, "", 60000);
	assert_int_equal(command_apply(m, &c, &alice, T0, NULL, NULL, &err), 0);
	command_free(&c);
	command_init(&c, COMMAND_EXPIRE);
	assert_int_equal(command_apply(m, &c, NULL, T0 + 59999, NULL, &res, &err), 0);
	assert_int_equal(res.n_expired, 0);
	assert_false(res.is_changed);
	assert_int_equal(command_apply(m, &c, NULL, T0 + 60000, &audit, &res, &err), 0);
	assert_int_equal(res.n_expired, 1);
	assert_true(res.is_changed);
	assert_int_equal(node_named(m, "a")->status, NODE_ONLINE);
	assert_string_equal(audit.entries[0].actor, "ttl");
	audit_log_free(&audit);
	command_free(&c);
	model_free(m);
}

/* --- all or nothing --------------------------------------------------- */

static void
test_set_status_with_one_unknown_node_changes_nothing(void **state)
{
	struct model *m = model_with_abc();
	struct command c = status_command("a", NODE_OFFLINE);
	struct error err;

	(void)state;
	add_change(&c, "zz", NODE_OFFLINE, "", 0);
	assert_refused(m, &c, 404);
	(void)err;
	command_free(&c);
	model_free(m);
}

static void
test_command_for_unknown_cluster_is_404_naming_it(void **state)
{
	struct model *m = model_with_abc();
	struct command c = status_command("a", NODE_OFFLINE);
	struct error err;

	(void)state;
	free(c.cluster);
	c.cluster = xstrdup("gone");
	assert_int_equal(command_apply(m, &c, &alice, T0, NULL, NULL, &err), -1);
	assert_int_equal(err.status, 404);
	assert_string_equal(err.entry, "gone");
	assert_refused(m, &c, 404);
	command_free(&c);
	model_free(m);
}

static void
test_node_list_with_one_invalid_name_changes_nothing(void **state)
{
	struct model *m = model_with_abc();
	struct command c;

	(void)state;
	command_init(&c, COMMAND_SET_NODE_LIST);
	c.cluster = xstrdup("default");
	command_add_name(&c, "x");
	command_add_name(&c, "bad name");
	assert_refused(m, &c, 400);
	command_free(&c);
	model_free(m);
}

static void
test_node_list_over_the_node_limit_changes_nothing(void **state)
{
	struct model *m = model_with_abc();
	struct command c;
	char name[16];
	int i;

	(void)state;
	command_init(&c, COMMAND_SET_NODE_LIST);
	c.cluster = xstrdup("default");
	for (i = 0; i <= CLUSTER_NODES_MAX; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		command_add_name(&c, name);
	}
	assert_refused(m, &c, 400);
	command_free(&c);
	model_free(m);
}

/* --- the same command against a fresher model ------------------------- */

static void
test_if_version_decided_against_the_model_applied_to(void **state)
{
	struct model *seen = model_with_abc(), *fresher;
	struct command mine = status_command("a", NODE_OFFLINE);
	struct command theirs = status_command("b", NODE_DRAIN);
	struct command_result res;
	struct error err;

	(void)state;
	mine.if_version = model_find_cluster(seen, "default")->version; /* 2 */
	fresher = model_copy(seen);
	assert_int_equal(command_apply(fresher, &theirs, &alice, T0 + 1, NULL, NULL, &err), 0);
	/* against the model it was built from, it would apply ... */
	assert_int_equal(command_apply(seen, &mine, &alice, T0 + 2, NULL, &res, &err), 0);
	/* ... against the fresher one, another write came first: 409 */
	assert_refused(fresher, &mine, 409);
	command_free(&mine);
	command_free(&theirs);
	model_free(seen);
	model_free(fresher);
}

static void
test_min_online_decided_against_the_model_applied_to(void **state)
{
	struct model *seen = model_with_abc(), *fresher;
	struct command mine = status_command("a", NODE_OFFLINE);
	struct command theirs = status_command("b", NODE_OFFLINE);
	struct error err;

	(void)state;
	mine.min_online = 2; /* a, b, c online: taking a out leaves 2 */
	fresher = model_copy(seen);
	assert_int_equal(command_apply(fresher, &theirs, &alice, T0 + 1, NULL, NULL, &err), 0);
	/* in the fresher model b is out already: taking a out leaves 1 */
	assert_refused(fresher, &mine, 409);
	assert_int_equal(command_apply(seen, &mine, &alice, T0 + 2, NULL, NULL, &err), 0);
	assert_int_equal(node_named(seen, "a")->status, NODE_OFFLINE);
	command_free(&mine);
	command_free(&theirs);
	model_free(seen);
	model_free(fresher);
}

static void
test_put_node_created_is_decided_by_the_model_applied_to(void **state)
{
	struct model *seen = model_with_abc(), *fresher;
	struct command put, rm;
	struct command_result res;
	struct error err;

	(void)state;
	command_init(&put, COMMAND_PUT_NODE);
	put.cluster = xstrdup("default");
	put.name = xstrdup("a");
	put.check = xstrdup("http://10.0.0.1/ok");
	command_init(&rm, COMMAND_REMOVE_NODE);
	rm.cluster = xstrdup("default");
	rm.name = xstrdup("a");
	fresher = model_copy(seen);
	assert_int_equal(command_apply(fresher, &rm, &alice, T0 + 1, NULL, NULL, &err), 0);
	assert_int_equal(command_apply(fresher, &put, &alice, T0 + 2, NULL, &res, &err), 0);
	assert_true(res.is_created);
	assert_int_equal(command_apply(seen, &put, &alice, T0 + 2, NULL, &res, &err), 0);
	assert_false(res.is_created);
	command_free(&put);
	command_free(&rm);
	model_free(seen);
	model_free(fresher);
}

static void
test_command_free_wipes_and_resets(void **state)
{
	struct command c;

	(void)state;
	command_init(&c, COMMAND_PUT_USER);
	c.password = xstrdup("secret password");
	command_free(&c);
	assert_null(c.password);
	assert_int_equal(c.n_names, 0);
}

/* The password's length is the core's to check, before any hashing. */
static void
test_prepare_refuses_a_password_outside_the_limits(void **state)
{
	char long_password[PASSWORD_MAX + 2];
	const char *bad[] = {"short", long_password};
	struct command c;
	struct error err;
	size_t i;

	(void)state;
	memset(long_password, 'p', PASSWORD_MAX + 1);
	long_password[PASSWORD_MAX + 1] = '\0';
	for (i = 0; i < 2; i++) {
		command_init(&c, COMMAND_PUT_USER);
		c.name = xstrdup("bob");
		c.role = ROLE_OPERATOR;
		c.password = xstrdup(bad[i]);
		assert_int_equal(command_prepare(&c, &err), -1);
		assert_int_equal(err.status, 400);
		assert_null(c.password);      /* wiped */
		assert_null(c.password_hash); /* never hashed */
		command_free(&c);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prepare_refuses_a_password_outside_the_limits),
	    cmocka_unit_test(test_set_status_changes_nodes_and_reports_version),
	    cmocka_unit_test(test_set_node_list_replaces_nodes),
	    cmocka_unit_test(test_put_node_creates_then_updates),
	    cmocka_unit_test(test_remove_node_forgets_it),
	    cmocka_unit_test(test_add_and_remove_cluster),
	    cmocka_unit_test(test_put_user_hashes_a_plaintext_password_when_prepared),
	    cmocka_unit_test(test_remove_user_and_last_admin_refused),
	    cmocka_unit_test(test_add_and_remove_token),
	    cmocka_unit_test(test_expire_returns_due_nodes_online),
	    cmocka_unit_test(test_set_status_with_one_unknown_node_changes_nothing),
	    cmocka_unit_test(test_command_for_unknown_cluster_is_404_naming_it),
	    cmocka_unit_test(test_node_list_with_one_invalid_name_changes_nothing),
	    cmocka_unit_test(test_node_list_over_the_node_limit_changes_nothing),
	    cmocka_unit_test(test_if_version_decided_against_the_model_applied_to),
	    cmocka_unit_test(test_min_online_decided_against_the_model_applied_to),
	    cmocka_unit_test(test_put_node_created_is_decided_by_the_model_applied_to),
	    cmocka_unit_test(test_command_free_wipes_and_resets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
