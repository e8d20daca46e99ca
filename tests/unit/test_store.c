/*
 * test_store.c - the store's contract (store.h) against real SQLite files.
 *
 * Each test gets a fresh file from mkstemp in /tmp (an empty file is an
 * empty SQLite database) and removes it, with its -wal and -shm, after.
 * Where the test must see what is on disk rather than what the store says,
 * it opens a second, raw connection with the sqlite3 API.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "../../src/core/model.h"
#include "../../src/core/model_internal.h" /* a path the model never allows, forced */
#include "../../src/store/change.h"
#include "../../src/store/store.h"
#include "../../src/store/store_backend.h"

#define CURRENT_SCHEMA_VERSION 16

/* The schema as version 1 shipped it, frozen here to test the migration. */
static const char schema_v1[] =
    "CREATE TABLE clusters (name TEXT PRIMARY KEY NOT NULL, path TEXT NOT NULL UNIQUE,"
    " version INTEGER NOT NULL);"
    "CREATE TABLE nodes (cluster TEXT NOT NULL REFERENCES clusters(name) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " status TEXT NOT NULL CHECK (status IN ('online', 'offline', 'drain')),"
    " reason TEXT NOT NULL, changed_by TEXT NOT NULL, changed_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL DEFAULT 0, address TEXT, check_url TEXT,"
    " PRIMARY KEY (cluster, name));"
    "CREATE TABLE users (name TEXT PRIMARY KEY NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),"
    " password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE tokens (id TEXT PRIMARY KEY NOT NULL,"
    " role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),"
    " description TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, created_by TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,"
    " cluster TEXT NOT NULL, node TEXT NOT NULL, actor TEXT NOT NULL, address TEXT NOT NULL,"
    " action TEXT NOT NULL, old_status TEXT NOT NULL, new_status TEXT NOT NULL,"
    " reason TEXT NOT NULL);"
    "PRAGMA user_version = 1;";

static const struct actor tester = {"tester", "192.0.2.7"};

struct fixture {
	char path[64];
	struct store *store;
};

/* --- files and raw connections ------------------------------------- */

static void
remove_database(const char *path)
{
	const char *suffixes[] = {"", "-wal", "-shm", "-journal", ".lock"};
	char name[80];
	size_t i;

	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(name, sizeof(name), "%s%s", path, suffixes[i]);
		unlink(name);
	}
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	assert_non_null(f);
	snprintf(f->path, sizeof(f->path), "/tmp/test_store.XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->store);
	remove_database(f->path);
	free(f);
	return 0;
}

static sqlite3 *
raw_open(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void
raw_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static int64_t
raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void
assert_raw_text(sqlite3 *db, const char *sql, const char *expected)
{
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), expected);
	sqlite3_finalize(st);
}

static void
write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
}

/* --- models ---------------------------------------------------------- */

static struct store *
open_store(struct fixture *f)
{
	struct error err = {0};

	f->store = store_open(f->path, &err);
	if (f->store == NULL)
		fail_msg("store_open: %d %s", err.status, err.what);
	return f->store;
}

static void
reopen_store(struct fixture *f)
{
	store_close(f->store);
	f->store = NULL;
	open_store(f);
}

static struct model *
load(struct store *s)
{
	struct error err = {0};
	struct model *m = NULL;

	if (store_load(s, &m, &err) != 0)
		fail_msg("store_load: %d %s", err.status, err.what);
	return m;
}

static void
save(struct store *s, const struct model *before, const struct model *after,
     struct audit_log *audit)
{
	struct error err = {0};

	if (store_save(s, before, after, audit, &err) != 0)
		fail_msg("store_save: %d %s", err.status, err.what);
}

static struct cluster *
cluster(struct model *m, const char *name)
{
	struct cluster *c = model_find_cluster_mut(m, name);

	assert_non_null(c);
	return c;
}

static struct node *
node(struct model *m, const char *cluster_name, const char *name)
{
	struct node *n = cluster_find_node_mut(cluster(m, cluster_name), name);

	assert_non_null(n);
	return n;
}

static void
set_text(char **field, const char *value)
{
	free(*field);
	*field = value ? strdup(value) : NULL;
}

static void
set_status(struct node *n, enum node_status status, const char *reason, int64_t expires_at)
{
	n->status = status;
	set_text(&n->reason, reason);
	set_text(&n->changed_by, "deployer");
	n->changed_at = 1700000000123;
	n->expires_at = expires_at;
}

/* Two clusters with nodes using every field (one without address/check),
 * two users and a token. */
static struct model *
sample_model(void)
{
	struct model *m = model_new();
	struct audit_log audit = {0};
	struct error err = {0};
	const int64_t now = 1700000000000;

	assert_int_equal(model_add_cluster(m, "default", "/health", &tester, now, &audit, &err), 0);
	assert_int_equal(model_add_cluster(m, "web", "/web", &tester, now, &audit, &err), 0);
	assert_int_equal(cluster_put_node(cluster(m, "default"), "zope1", "10.0.0.1:8080",
	                                  "http://10.0.0.1:8080/ok", &tester, now, &audit, &err),
	                 0);
	assert_int_equal(cluster_put_node(cluster(m, "default"), "zope2", NULL, NULL, &tester, now,
	                                  &audit, &err),
	                 0);
	assert_int_equal(cluster_put_node(cluster(m, "web"), "w1", "10.0.1.1:80", NULL, &tester,
	                                  now, &audit, &err),
	                 0);
	set_status(node(m, "default", "zope2"), NODE_OFFLINE, "kernel update", 1700000600000);
	set_status(node(m, "web", "w1"), NODE_DRAIN, "", 0);
	assert_int_equal(
	    model_put_user(m, "admin", ROLE_ADMIN, "$argon2id$admin", &tester, now, &audit, &err),
	    0);
	assert_int_equal(
	    model_put_user(m, "ops", ROLE_OPERATOR, "$argon2id$ops", &tester, now, &audit, &err),
	    0);
	assert_int_equal(model_add_token(m, "tok1", ROLE_VIEWER, "dashboard", "ab12", &tester, now,
	                                 &audit, &err),
	                 0);
	audit_log_free(&audit);
	return m;
}

static void
assert_optional_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
assert_nodes_equal(const struct node *a, const struct node *b)
{
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->status, b->status);
	assert_string_equal(a->reason, b->reason);
	assert_string_equal(a->changed_by, b->changed_by);
	assert_int_equal(a->changed_at, b->changed_at);
	assert_int_equal(a->expires_at, b->expires_at);
	assert_optional_equal(a->address, b->address);
	assert_optional_equal(a->check, b->check);
}

static void
assert_clusters_equal(const struct cluster *a, const struct cluster *b)
{
	size_t i;

	assert_string_equal(a->name, b->name);
	assert_string_equal(a->path, b->path);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->n_nodes, b->n_nodes);
	for (i = 0; i < a->n_nodes; i++)
		assert_nodes_equal(cluster_node(a, i), cluster_node(b, i));
}

static void
assert_models_equal(const struct model *a, const struct model *b)
{
	size_t i;

	assert_int_equal(a->n_clusters, b->n_clusters);
	for (i = 0; i < a->n_clusters; i++)
		assert_clusters_equal(&a->clusters[i], &b->clusters[i]);
	assert_int_equal(a->n_users, b->n_users);
	for (i = 0; i < a->n_users; i++) {
		assert_string_equal(a->users[i].name, b->users[i].name);
		assert_int_equal(a->users[i].role, b->users[i].role);
		assert_string_equal(a->users[i].password_hash, b->users[i].password_hash);
		assert_int_equal(a->users[i].created_at, b->users[i].created_at);
	}
	assert_int_equal(a->n_tokens, b->n_tokens);
	for (i = 0; i < a->n_tokens; i++) {
		assert_string_equal(a->tokens[i].id, b->tokens[i].id);
		assert_int_equal(a->tokens[i].role, b->tokens[i].role);
		assert_string_equal(a->tokens[i].description, b->tokens[i].description);
		assert_string_equal(a->tokens[i].hash, b->tokens[i].hash);
		assert_string_equal(a->tokens[i].created_by, b->tokens[i].created_by);
		assert_int_equal(a->tokens[i].created_at, b->tokens[i].created_at);
	}
}

/* The store holds exactly m. */
static void
assert_store_holds(struct store *s, const struct model *m)
{
	struct model *loaded = load(s);

	assert_models_equal(loaded, m);
	model_free(loaded);
}

static void
add_status_entry(struct audit_log *audit, int64_t at, const char *cluster_name,
                 const char *node_name, const char *reason)
{
	audit_log_add(audit, at, cluster_name, node_name, &tester, "status", "online", "offline",
	              reason);
}

/* --- opening --------------------------------------------------------- */

static void
test_open_creates_schema_at_current_version(void **state)
{
	struct fixture *f = *state;
	sqlite3 *raw;

	assert_int_equal(store_schema_version(open_store(f)), CURRENT_SCHEMA_VERSION);
	raw = raw_open(f->path);
	assert_int_equal(raw_int(raw, "PRAGMA user_version"), CURRENT_SCHEMA_VERSION);
	assert_int_equal(raw_int(raw, "SELECT count(*) FROM sqlite_master WHERE type = 'table' "
	                              "AND name IN ('clusters', 'nodes', 'users', 'tokens', "
	                              "'audit')"),
	                 5);
	assert_raw_text(raw, "PRAGMA journal_mode", "wal");
	sqlite3_close(raw);
}

static void
test_open_empty_store_loads_empty_model(void **state)
{
	struct fixture *f = *state;
	struct model *m = load(open_store(f));

	assert_int_equal(m->n_clusters, 0);
	assert_int_equal(m->n_users, 0);
	assert_int_equal(m->n_tokens, 0);
	model_free(m);
}

static void
test_describe_names_backend_and_path(void **state)
{
	struct fixture *f = *state;
	char expected[80];

	snprintf(expected, sizeof(expected), "sqlite:%s", f->path);
	assert_string_equal(store_describe(open_store(f)), expected);
}

static void
test_reopen_keeps_schema_version(void **state)
{
	struct fixture *f = *state;

	open_store(f);
	reopen_store(f);
	assert_int_equal(store_schema_version(f->store), CURRENT_SCHEMA_VERSION);
}

static void
test_migration_from_v1(void **state)
{
	struct fixture *f = *state;
	struct model *m;
	sqlite3 *raw = raw_open(f->path);

	raw_exec(raw, schema_v1);
	raw_exec(raw, "INSERT INTO clusters VALUES ('default', '/health', 7);"
	              "INSERT INTO nodes VALUES ('default', 'zope1', 'offline', 'old', 'bob', 5,"
	              " 0, NULL, NULL);"
	              "INSERT INTO audit (at, cluster, node, actor, address, action, old_status,"
	              " new_status, reason) VALUES (5, 'default', 'zope1', 'bob', '', 'status',"
	              " 'online', 'offline', 'old');");
	sqlite3_close(raw);

	assert_int_equal(store_schema_version(open_store(f)), CURRENT_SCHEMA_VERSION);
	m = load(f->store);
	assert_int_equal(m->n_clusters, 1);
	assert_int_equal(m->clusters[0].version, 7);
	assert_int_equal(m->clusters[0].n_nodes, 1);
	assert_int_equal(cluster_node(&m->clusters[0], 0)->status, NODE_OFFLINE);
	assert_string_equal(cluster_node(&m->clusters[0], 0)->reason, "old");
	model_free(m);

	raw = raw_open(f->path);
	assert_int_equal(raw_int(raw, "PRAGMA user_version"), CURRENT_SCHEMA_VERSION);
	assert_int_equal(raw_int(raw, "SELECT count(*) FROM sqlite_master WHERE type = 'index' "
	                              "AND name = 'audit_by_cluster'"),
	                 1);
	assert_int_equal(raw_int(raw, "SELECT count(*) FROM audit"), 1);
	sqlite3_close(raw);
}

static void
test_newer_schema_refused(void **state)
{
	struct fixture *f = *state;
	struct error err = {0};
	sqlite3 *raw = raw_open(f->path);

	raw_exec(raw, "CREATE TABLE future (x); PRAGMA user_version = 99;");
	sqlite3_close(raw);

	assert_null(store_open(f->path, &err));
	assert_int_equal(err.status, 400);
	assert_non_null(strstr(err.what, "newer"));
	assert_non_null(strstr(err.what, "99"));

	raw = raw_open(f->path);
	assert_int_equal(raw_int(raw, "PRAGMA user_version"), 99);
	assert_raw_text(raw, "PRAGMA journal_mode", "delete");
	assert_int_equal(raw_int(raw, "SELECT count(*) FROM sqlite_master"), 1);
	sqlite3_close(raw);
}

static void
test_not_a_database_refused(void **state)
{
	struct fixture *f = *state;
	struct error err = {0};
	char text[2048];

	memset(text, 'x', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	write_file(f->path, text);

	assert_null(store_open(f->path, &err));
	assert_int_equal(err.status, 400);
	assert_non_null(strstr(err.what, "not an SQLite database"));
	assert_non_null(strstr(err.what, f->path));
}

static void
test_foreign_database_refused(void **state)
{
	struct fixture *f = *state;
	struct error err = {0};
	sqlite3 *raw = raw_open(f->path);

	raw_exec(raw, "CREATE TABLE invoices (id INTEGER PRIMARY KEY);");
	sqlite3_close(raw);

	assert_null(store_open(f->path, &err));
	assert_int_equal(err.status, 400);
	assert_non_null(strstr(err.what, "not a clustermgmt store"));
}

static void
test_unopenable_path_fails_with_reason(void **state)
{
	struct error err = {0};

	(void)state;
	assert_null(store_open("/nonexistent-dir/sub/cm.db", &err));
	assert_true(err.status >= 500);
	assert_non_null(strstr(err.what, "/nonexistent-dir/sub/cm.db"));
}

static void
test_postgres_malformed_spec_refused_without_its_secrets(void **state)
{
	struct error err = {0};

	(void)state;
	assert_null(store_open("postgresql://cm:s3cret@127.0.0.1:notaport/x", &err));
	assert_int_equal(err.status, 400);
	assert_non_null(strstr(err.what, "not a valid PostgreSQL URL"));
	assert_null(strstr(err.what, "s3cret"));

	memset(&err, 0, sizeof(err));
	assert_null(store_open("host=127.0.0.1 password='s3cret unterminated", &err));
	assert_int_equal(err.status, 400);
	assert_null(strstr(err.what, "s3cret"));
}

/* A daemon may start while PostgreSQL is away (fail-static): the store
 * opens down, says so, refuses writes at once, and its description never
 * shows the password. Port 1 on loopback refuses connections. */
static void
test_postgres_unreachable_opens_down_and_masks_password(void **state)
{
	static const char *const specs[] = {
	    "postgresql://cm:s3cret@127.0.0.1:1/clustermgmt",
	    "postgres://cm:s3cret@127.0.0.1:1,127.0.0.2:1/clustermgmt"
	    "?target_session_attrs=read-write",
	    "host=127.0.0.1 port=1 user=cm password=s3cret dbname=clustermgmt",
	};
	struct store_health h;
	struct error err = {0};
	struct store *s;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		s = store_open(specs[i], &err);
		assert_non_null(s);
		assert_true(store_is_shared(s));
		assert_non_null(strstr(store_describe(s), "postgres:"));
		assert_non_null(strstr(store_describe(s), "127.0.0.1"));
		assert_null(strstr(store_describe(s), "s3cret"));
		store_health(s, &h);
		assert_int_equal(h.is_up, 0);
		assert_true(h.down_since > 0);
		assert_int_equal(store_save(s, NULL, NULL, NULL, &err), -1);
		assert_int_equal(err.status, 503);
		assert_non_null(strstr(err.what, "unreachable"));
		assert_non_null(strstr(err.what, "nothing was changed"));
		assert_null(strstr(err.what, "s3cret"));
		store_close(s);
	}
}

static void
test_spec_kinds(void **state)
{
	(void)state;
	assert_true(store_spec_is_postgres("postgres://h/db"));
	assert_true(store_spec_is_postgres("postgresql://h/db"));
	assert_true(store_spec_is_postgres("host=h dbname=db"));
	assert_true(store_spec_is_postgres("dbname = db"));
	assert_false(store_spec_is_postgres("/var/lib/cm.db"));
	assert_false(store_spec_is_postgres("cm.db"));
	assert_false(store_spec_is_postgres("./host=x.db"));
}

/* --- store_write: decided against the stored state -------------------- */

/* decide for the tests: adds node "added" to cluster default, or refuses
 * (409) when it exists, as a command would. */
static int
decide_add_node(void *arg, struct model *m, struct audit_log *audit, struct error *err)
{
	struct cluster *c = model_find_cluster_mut(m, "default");

	(void)arg;
	if (c == NULL)
		return error_set(err, 404, "no cluster default");
	if (cluster_find_node(c, "added", 5) != NULL)
		return error_set(err, 409, "node added exists");
	return cluster_put_node(c, "added", NULL, NULL, &tester, 1700000000000, audit, err);
}

static void
test_write_on_current_model_commits_next_version(void **state)
{
	struct fixture *f = *state;
	struct model *m = sample_model(), *loaded;
	struct audit_log audit = {0};
	struct store_write w = {.decide = decide_add_node, .audit = &audit};
	struct error err = {0};
	int64_t version;

	open_store(f);
	save(f->store, NULL, m, NULL); /* version 1 */
	w.known = m;
	w.known_version = 1;
	assert_int_equal(store_write(f->store, &w, &err), 0);
	assert_true(w.is_changed);
	assert_int_equal(w.version, 2);
	assert_non_null(w.model);
	assert_non_null(cluster_find_node(model_find_cluster(w.model, "default"), "added", 5));
	assert_true(audit.entries[0].id > 0);
	assert_int_equal(store_load_at(f->store, &loaded, &version, &err), 0);
	assert_int_equal(version, 2);
	assert_non_null(cluster_find_node(model_find_cluster(loaded, "default"), "added", 5));
	model_free(loaded);
	model_free(w.model);
	model_free(m);
	audit_log_free(&audit);
}

/* A caller whose model is older than the store (another daemon wrote):
 * the change is decided on the stored model, read under the lock, and a
 * refusal is decided there too. */
static void
test_write_on_stale_model_decides_on_stored_state(void **state)
{
	struct fixture *f = *state;
	struct model *stored = sample_model(), *stale = model_new(), *held = NULL;
	struct audit_log audit = {0};
	struct store_write w = {.decide = decide_add_node, .audit = &audit};
	struct error err = {0};

	open_store(f);
	save(f->store, NULL, stored, NULL); /* version 1, by "another daemon" */
	w.known = stale;                    /* empty: no cluster at all */
	w.known_version = 0;
	assert_int_equal(store_write(f->store, &w, &err), 0); /* would be 404 on stale */
	assert_true(w.is_changed);
	assert_int_equal(w.version, 2);
	assert_non_null(model_find_cluster(w.model, "web")); /* the stored state, kept */
	assert_non_null(cluster_find_node(model_find_cluster(w.model, "default"), "added", 5));
	held = w.model;

	/* Again from the stale model: refused against the stored state (409,
	 * not 404), nothing written, and the newer state handed back. */
	audit_log_free(&audit);
	memset(&audit, 0, sizeof(audit));
	w = (struct store_write){
	    .known = stale, .known_version = 0, .decide = decide_add_node, .audit = &audit};
	assert_int_equal(store_write(f->store, &w, &err), -1);
	assert_int_equal(err.status, 409);
	assert_false(w.is_changed);
	assert_int_equal(w.version, 2);
	assert_non_null(w.model);
	assert_non_null(model_find_cluster(w.model, "web"));
	model_free(w.model);
	model_free(held);
	model_free(stored);
	model_free(stale);
	audit_log_free(&audit);
}

static void
test_refused_write_writes_nothing(void **state)
{
	struct fixture *f = *state;
	struct model *m = sample_model();
	struct audit_log audit = {0};
	struct store_write w = {.decide = decide_add_node, .audit = &audit};
	struct error err = {0};
	int64_t version;
	struct model *loaded;

	open_store(f);
	save(f->store, NULL, m, NULL);
	w.known = m;
	w.known_version = 1;
	assert_int_equal(store_write(f->store, &w, &err), 0);
	model_free(w.model);
	audit_log_free(&audit);
	memset(&audit, 0, sizeof(audit));
	w = (struct store_write){
	    .known = m, .known_version = 1, .decide = decide_add_node, .audit = &audit};
	/* m is stale now (version 1, the store is at 2): refused on the store */
	assert_int_equal(store_write(f->store, &w, &err), -1);
	assert_int_equal(err.status, 409);
	model_free(w.model);
	assert_int_equal(store_load_at(f->store, &loaded, &version, &err), 0);
	assert_int_equal(version, 2);
	model_free(loaded);
	model_free(m);
	audit_log_free(&audit);
}

static void
test_empty_spec_refused(void **state)
{
	struct error err = {0};

	(void)state;
	assert_null(store_open("", &err));
	assert_int_equal(err.status, 400);
}

/* --- saving and loading ---------------------------------------------- */

static void
test_save_then_reopen_loads_same_model(void **state)
{
	struct fixture *f = *state;
	struct model *empty = model_new(), *m = sample_model();

	save(open_store(f), empty, m, NULL);
	reopen_store(f);
	assert_store_holds(f->store, m);
	model_free(empty);
	model_free(m);
}

static void
test_save_from_null_before_saves_everything(void **state)
{
	struct fixture *f = *state;
	struct model *m = sample_model();

	save(open_store(f), NULL, m, NULL);
	assert_store_holds(f->store, m);
	model_free(m);
}

static void
test_load_returns_arrays_in_strcmp_order(void **state)
{
	struct fixture *f = *state;
	struct model *m = sample_model(), *loaded;
	struct audit_log audit = {0};
	struct error err = {0};
	const char *names[] = {"b", "B", "a-1", "a.1", "a_1", "A", "0"};
	size_t i;

	assert_int_equal(
	    cluster_set_node_list(cluster(m, "web"), names, 7, &tester, 1, &audit, &err), 0);
	save(open_store(f), NULL, m, NULL);
	loaded = load(f->store);
	for (i = 1; i < loaded->clusters[1].n_nodes; i++)
		assert_true(strcmp(cluster_node(&loaded->clusters[1], i - 1)->name,
		                   cluster_node(&loaded->clusters[1], i)->name) < 0);
	assert_models_equal(loaded, m);
	model_free(loaded);
	model_free(m);
	audit_log_free(&audit);
}

static void
test_save_only_writes_difference(void **state)
{
	struct fixture *f = *state;
	struct model *before = sample_model(), *after, *loaded;
	sqlite3 *raw;

	save(open_store(f), NULL, before, NULL);
	/* Marks on rows the next save has no reason to touch. */
	raw = raw_open(f->path);
	raw_exec(raw, "UPDATE nodes SET reason = 'untouched' WHERE name = 'zope2';"
	              "UPDATE clusters SET version = 99 WHERE name = 'web';"
	              "UPDATE users SET password_hash = 'untouched' WHERE name = 'ops';"
	              "UPDATE tokens SET description = 'untouched';");
	sqlite3_close(raw);

	after = model_copy(before);
	set_status(node(after, "default", "zope1"), NODE_OFFLINE, "deploy", 0);
	cluster(after, "default")->version++;
	save(f->store, before, after, NULL);

	loaded = load(f->store);
	assert_int_equal(node(loaded, "default", "zope1")->status, NODE_OFFLINE);
	assert_string_equal(node(loaded, "default", "zope1")->reason, "deploy");
	assert_int_equal(cluster(loaded, "default")->version, cluster(after, "default")->version);
	assert_string_equal(node(loaded, "default", "zope2")->reason, "untouched");
	assert_int_equal(cluster(loaded, "web")->version, 99);
	assert_string_equal(model_find_user(loaded, "ops")->password_hash, "untouched");
	assert_string_equal(model_find_token(loaded, "tok1")->description, "untouched");
	model_free(loaded);
	model_free(before);
	model_free(after);
}

static void
test_save_applies_removals_and_additions(void **state)
{
	struct fixture *f = *state;
	struct model *before = sample_model(), *after;
	struct audit_log audit = {0};
	struct error err = {0};

	save(open_store(f), NULL, before, NULL);
	after = model_copy(before);
	assert_int_equal(
	    cluster_remove_node(cluster(after, "default"), "zope1", &tester, 2, &audit, &err), 0);
	assert_int_equal(cluster_put_node(cluster(after, "default"), "zope3", NULL, NULL, &tester,
	                                  2, &audit, &err),
	                 0);
	set_text(&node(after, "web", "w1")->address, NULL);
	assert_int_equal(model_remove_user(after, "ops", &tester, 2, &audit, &err), 0);
	assert_int_equal(
	    model_put_user(after, "viewer", ROLE_VIEWER, "$argon2id$v", &tester, 2, &audit, &err),
	    0);
	assert_int_equal(model_remove_token(after, "tok1", &tester, 2, &audit, &err), 0);
	assert_int_equal(
	    model_add_token(after, "tok2", ROLE_ADMIN, "ci", "cd34", &tester, 2, &audit, &err), 0);
	save(f->store, before, after, &audit);
	reopen_store(f);
	assert_store_holds(f->store, after);
	audit_log_free(&audit);
	model_free(before);
	model_free(after);
}

static void
test_load_balancers_are_saved_updated_and_removed(void **state)
{
	struct fixture *f = *state;
	struct model *before = sample_model(), *after, *again, *m;
	struct audit_log audit = {0};
	struct error err = {0};
	struct cluster *web;
	sqlite3 *raw;

	save(open_store(f), NULL, before, NULL);
	after = model_copy(before);
	web = model_find_cluster_mut(after, "web");
	assert_int_equal(
	    cluster_put_lb(web, "varnish1", "varnish", NULL, NULL, &tester, 2, &audit, &err), 0);
	assert_int_equal(cluster_put_lb(web, "hap1", "haproxy", "/run/haproxy.sock", "be_web",
	                                &tester, 2, &audit, &err),
	                 0);
	save(f->store, before, after, &audit);
	m = load(f->store);
	web = model_find_cluster_mut(m, "web");
	assert_int_equal(web->n_lbs, 2);
	assert_string_equal(web->lbs[0].name, "hap1");
	assert_string_equal(web->lbs[0].runtime, "/run/haproxy.sock");
	assert_string_equal(web->lbs[0].backend, "be_web");
	assert_string_equal(web->lbs[1].kind, "varnish");
	assert_null(web->lbs[1].runtime);
	model_free(m);

	again = model_copy(after);
	web = model_find_cluster_mut(again, "web");
	assert_int_equal(cluster_put_lb(web, "hap1", "haproxy", "", NULL, &tester, 3, &audit, &err),
	                 0);
	assert_int_equal(cluster_remove_lb(web, "varnish1", &tester, 3, &audit, &err), 0);
	save(f->store, after, again, &audit);
	m = load(f->store);
	web = model_find_cluster_mut(m, "web");
	assert_int_equal(web->n_lbs, 1);
	assert_null(web->lbs[0].runtime);
	model_free(m);

	m = model_copy(again);
	assert_int_equal(model_remove_cluster(m, "web", &tester, 4, &audit, &err), 0);
	save(f->store, again, m, &audit);
	model_free(m);
	raw = raw_open(f->path);
	assert_int_equal(raw_int(raw, "SELECT count(*) FROM lbs WHERE cluster = 'web'"), 0);
	sqlite3_close(raw);
	audit_log_free(&audit);
	model_free(before);
	model_free(after);
	model_free(again);
}

static void
test_remove_cluster_removes_its_nodes(void **state)
{
	struct fixture *f = *state;
	struct model *before = sample_model(), *after;
	struct audit_log audit = {0};
	struct error err = {0};
	sqlite3 *raw;

	save(open_store(f), NULL, before, NULL);
	after = model_copy(before);
	assert_int_equal(model_remove_cluster(after, "web", &tester, 2, &audit, &err), 0);
	save(f->store, before, after, &audit);

	assert_store_holds(f->store, after);
	raw = raw_open(f->path);
	assert_int_equal(raw_int(raw, "SELECT count(*) FROM nodes WHERE cluster = 'web'"), 0);
	assert_int_equal(raw_int(raw, "SELECT count(*) FROM audit WHERE cluster = 'web'"), 1);
	sqlite3_close(raw);
	audit_log_free(&audit);
	model_free(before);
	model_free(after);
}

static void
test_removed_cluster_path_can_be_reused_in_same_save(void **state)
{
	struct fixture *f = *state;
	struct model *before = sample_model(), *after;
	struct audit_log audit = {0};
	struct error err = {0};

	save(open_store(f), NULL, before, NULL);
	after = model_copy(before);
	assert_int_equal(model_remove_cluster(after, "web", &tester, 2, &audit, &err), 0);
	/* "shop" sorts after "default" and before "web". */
	assert_int_equal(model_add_cluster(after, "shop", "/web", &tester, 2, &audit, &err), 0);
	save(f->store, before, after, &audit);
	assert_store_holds(f->store, after);
	audit_log_free(&audit);
	model_free(before);
	model_free(after);
}

static void
test_failed_save_changes_nothing(void **state)
{
	struct fixture *f = *state;
	struct model *before = sample_model(), *after;
	struct audit_log audit = {0}, read = {0};
	struct error err = {0};

	save(open_store(f), NULL, before, NULL);
	after = model_copy(before);
	/* Changes that write before the failing one, then a duplicate mount
	 * path (which the model never allows) that the database refuses. */
	set_status(node(after, "default", "zope1"), NODE_OFFLINE, "deploy", 0);
	cluster(after, "default")->version++;
	model_cluster_own_names(cluster(after, "web"));
	set_text(&cluster(after, "web")->path, "/health");
	assert_int_equal(
	    model_put_user(after, "viewer", ROLE_VIEWER, "$argon2id$v", &tester, 2, &audit, &err),
	    0);
	add_status_entry(&audit, 2, "default", "zope1", "deploy");

	assert_int_equal(store_save(f->store, before, after, &audit, &err), -1);
	assert_int_equal(err.status, 500);
	assert_non_null(strstr(err.what, "UNIQUE"));
	assert_int_equal(audit.entries[0].id, 0);
	assert_int_equal(audit.entries[1].id, 0);

	reopen_store(f);
	assert_store_holds(f->store, before);
	assert_int_equal(store_read_audit(f->store, NULL, -1, &read, &err), 0);
	assert_int_equal(read.n, 0);
	audit_log_free(&audit);
	model_free(before);
	model_free(after);
}

static void
test_store_usable_after_failed_save(void **state)
{
	struct fixture *f = *state;
	struct model *before = sample_model(), *bad, *good;
	struct error err = {0};

	save(open_store(f), NULL, before, NULL);
	bad = model_copy(before);
	model_cluster_own_names(cluster(bad, "web"));
	set_text(&cluster(bad, "web")->path, "/health");
	assert_int_equal(store_save(f->store, before, bad, NULL, &err), -1);

	good = model_copy(before);
	cluster(good, "web")->version++;
	save(f->store, before, good, NULL);
	assert_store_holds(f->store, good);
	model_free(before);
	model_free(bad);
	model_free(good);
}

/* --- audit log ------------------------------------------------------- */

static void
test_audit_ids_and_newest_first_with_limit(void **state)
{
	struct fixture *f = *state;
	struct model *m = sample_model();
	struct audit_log audit = {0}, read = {0};
	struct error err = {0};

	save(open_store(f), NULL, m, NULL);
	add_status_entry(&audit, 10, "default", "zope1", "first");
	add_status_entry(&audit, 20, "default", "zope2", "second");
	add_status_entry(&audit, 30, "web", "w1", "third");
	/* A pure audit write: the model did not change. */
	save(f->store, m, m, &audit);
	assert_true(audit.entries[0].id > 0);
	assert_true(audit.entries[1].id > audit.entries[0].id);
	assert_true(audit.entries[2].id > audit.entries[1].id);

	assert_int_equal(store_read_audit(f->store, NULL, 2, &read, &err), 0);
	assert_int_equal(read.n, 2);
	assert_int_equal(read.entries[0].id, audit.entries[2].id);
	assert_string_equal(read.entries[0].reason, "third");
	assert_int_equal(read.entries[1].id, audit.entries[1].id);
	assert_int_equal(read.entries[1].at, 20);
	assert_string_equal(read.entries[1].cluster, "default");
	assert_string_equal(read.entries[1].node, "zope2");
	assert_string_equal(read.entries[1].actor, "tester");
	assert_string_equal(read.entries[1].address, "192.0.2.7");
	assert_string_equal(read.entries[1].action, "status");
	assert_string_equal(read.entries[1].old_status, "online");
	assert_string_equal(read.entries[1].new_status, "offline");
	audit_log_free(&read);
	audit_log_free(&audit);
	model_free(m);
}

static void
test_audit_filter_by_cluster(void **state)
{
	struct fixture *f = *state;
	struct audit_log audit = {0}, read = {0};
	struct error err = {0};

	open_store(f);
	add_status_entry(&audit, 10, "default", "zope1", "a");
	add_status_entry(&audit, 20, "web", "w1", "b");
	add_status_entry(&audit, 30, "default", "zope2", "c");
	add_status_entry(&audit, 40, "web", "w1", "d");
	save(f->store, NULL, NULL, &audit);

	assert_int_equal(store_read_audit(f->store, "web", 10, &read, &err), 0);
	assert_int_equal(read.n, 2);
	assert_string_equal(read.entries[0].reason, "d");
	assert_string_equal(read.entries[1].reason, "b");
	audit_log_free(&read);

	assert_int_equal(store_read_audit(f->store, NULL, -1, &read, &err), 0);
	assert_int_equal(read.n, 4);
	audit_log_free(&read);

	assert_int_equal(store_read_audit(f->store, "nosuch", 10, &read, &err), 0);
	assert_int_equal(read.n, 0);
	audit_log_free(&read);
	audit_log_free(&audit);
}

static void
test_audit_read_appends_to_existing_log(void **state)
{
	struct fixture *f = *state;
	struct audit_log audit = {0}, read = {0};
	struct error err = {0};

	open_store(f);
	add_status_entry(&audit, 10, "default", "zope1", "stored");
	save(f->store, NULL, NULL, &audit);
	add_status_entry(&read, 5, "default", "zope1", "already there");

	assert_int_equal(store_read_audit(f->store, NULL, 10, &read, &err), 0);
	assert_int_equal(read.n, 2);
	assert_string_equal(read.entries[0].reason, "already there");
	assert_string_equal(read.entries[1].reason, "stored");
	audit_log_free(&read);
	audit_log_free(&audit);
}

/* --- one daemon per file ----------------------------------------------- */

static void
assert_open_refused_as_in_use(const char *path)
{
	struct error err = {0};
	char pid[32];

	assert_null(store_open(path, &err));
	assert_int_equal(err.status, 409);
	assert_non_null(strstr(err.what, path));
	assert_non_null(strstr(err.what, "in use by another clustermgmt daemon"));
	snprintf(pid, sizeof(pid), "process %ld", (long)getpid());
	assert_non_null(strstr(err.what, pid));
}

static void
test_second_open_of_same_file_refused(void **state)
{
	struct fixture *f = *state;

	open_store(f);
	assert_open_refused_as_in_use(f->path);
	/* the refused open changed nothing: the first store still works */
	save(f->store, NULL, NULL, NULL);
	/* and the lock goes with the store */
	reopen_store(f);
	assert_open_refused_as_in_use(f->path);
}

static void
test_open_through_a_symbolic_link_refused(void **state)
{
	struct fixture *f = *state;
	char link_path[80];

	snprintf(link_path, sizeof(link_path), "%s.link", f->path);
	assert_int_equal(symlink(f->path, link_path), 0);
	open_store(f);
	assert_open_refused_as_in_use(link_path);
	unlink(link_path);
}

static void
test_open_from_another_process_refused(void **state)
{
	struct fixture *f = *state;
	pid_t child;
	int status = -1;

	open_store(f);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct error err = {0};
		struct store *s = store_open(f->path, &err);
		_exit(s == NULL && err.status == 409 ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* SQLite's own locks are fcntl locks, which any close() of the file by
 * this process would drop: opening and closing a raw connection beside
 * the store must leave both locks working. */
static void
test_lock_survives_other_connections_closing(void **state)
{
	struct fixture *f = *state;
	sqlite3 *raw;

	open_store(f);
	raw = raw_open(f->path);
	assert_int_equal(raw_int(raw, "PRAGMA user_version"), CURRENT_SCHEMA_VERSION);
	sqlite3_close(raw);
	assert_open_refused_as_in_use(f->path);
	save(f->store, NULL, NULL, NULL);
}

/* --- the file under the store's feet ------------------------------------ */

static void
assert_save_refused(struct store *s, const char *needle)
{
	struct model *m = sample_model();
	struct audit_log audit = {0};
	struct error err = {0};

	add_status_entry(&audit, 10, "default", "zope1", "lost?");
	assert_int_equal(store_save(s, NULL, m, &audit, &err), -1);
	assert_int_equal(err.status, 503);
	assert_non_null(strstr(err.what, needle));
	assert_int_equal(audit.entries[0].id, 0);
	audit_log_free(&audit);
	model_free(m);
}

static void
test_write_refused_once_file_is_removed(void **state)
{
	struct fixture *f = *state;
	char aside[80];

	open_store(f);
	snprintf(aside, sizeof(aside), "%s.aside", f->path);
	assert_int_equal(rename(f->path, aside), 0);
	assert_save_refused(f->store, "was removed");
	/* put back, the same file: writes work again */
	assert_int_equal(rename(aside, f->path), 0);
	save(f->store, NULL, NULL, NULL);

	assert_int_equal(unlink(f->path), 0);
	assert_save_refused(f->store, "was removed");
}

static void
test_write_refused_once_file_is_replaced(void **state)
{
	struct fixture *f = *state;
	char aside[80], other[80];
	struct model *m = sample_model();
	sqlite3 *raw;

	open_store(f);
	snprintf(aside, sizeof(aside), "%s.aside", f->path);
	snprintf(other, sizeof(other), "%s.other", f->path);
	raw = raw_open(other);
	raw_exec(raw, "CREATE TABLE x (y)");
	sqlite3_close(raw);
	assert_int_equal(rename(f->path, aside), 0);
	assert_int_equal(rename(other, f->path), 0);
	assert_save_refused(f->store, "was replaced");

	/* the original back in place: writes work again */
	assert_int_equal(rename(aside, f->path), 0);
	save(f->store, NULL, m, NULL);
	assert_store_holds(f->store, m);
	model_free(m);
}

/* --- a write's change as its notification carries it (change.h) --- */

/* The node documents of two models' namesakes are the same. */
static void
assert_same_nodes(const struct model *a, const struct model *b)
{
	size_t i, k;

	assert_int_equal(a->n_clusters, b->n_clusters);
	for (i = 0; i < a->n_clusters; i++) {
		const struct cluster *x = &a->clusters[i], *y = &b->clusters[i];
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->version, y->version);
		assert_int_equal(x->n_nodes, y->n_nodes);
		for (k = 0; k < x->n_nodes; k++) {
			const struct node *p = cluster_node(x, k), *q = cluster_node(y, k);
			assert_string_equal(p->name, q->name);
			assert_int_equal(p->status, q->status);
			assert_string_equal(p->reason, q->reason);
			assert_string_equal(p->changed_by, q->changed_by);
			assert_int_equal(p->changed_at, q->changed_at);
			assert_int_equal(p->expires_at, q->expires_at);
			assert_true((p->address == NULL) == (q->address == NULL));
			if (p->address != NULL)
				assert_string_equal(p->address, q->address);
			assert_true((p->check == NULL) == (q->check == NULL));
			if (p->check != NULL)
				assert_string_equal(p->check, q->check);
		}
	}
}

/* A status change of nodes of one cluster travels whole, and applied to
 * the model it started from gives the model it made. */
static void
test_a_status_change_travels_and_applies_to_what_it_started_from(void **state)
{
	struct model *before = sample_model(), *after = model_copy(before), *applied;
	struct store_change *ch;
	char *payload;

	(void)state;
	set_status(node(after, "default", "zope1"), NODE_DRAIN, "deploy \"v2\" \xc3\xa9",
	           1700009000000);
	set_status(node(after, "default", "zope2"), NODE_ONLINE, "", 0);
	cluster(after, "default")->version++;
	payload = store_change_encode(before, after, 41, 42);
	assert_non_null(payload);
	assert_true(strlen(payload) <= STORE_CHANGE_PAYLOAD_MAX);
	ch = store_change_decode(payload);
	assert_non_null(ch);
	assert_int_equal(store_change_from(ch), 41);
	assert_int_equal(store_change_version(ch), 42);
	applied = model_copy(before);
	assert_int_equal(store_change_apply(ch, applied), 0);
	assert_same_nodes(applied, after);
	/* a model that lacks the node: not applied */
	model_free(applied);
	applied = model_copy(before);
	{
		struct audit_log audit = {0};
		struct error err = {0};
		assert_int_equal(model_remove_cluster(applied, "default", &tester, 1, &audit, &err),
		                 0);
		audit_log_free(&audit);
	}
	assert_int_equal(store_change_apply(ch, applied), -1);
	store_change_free(ch);
	free(payload);
	model_free(applied);
	model_free(before);
	model_free(after);
}

/* Anything else is read from the store: no payload. */
static void
test_other_writes_do_not_travel(void **state)
{
	struct model *before = sample_model(), *after;
	struct audit_log audit = {0};
	struct error err = {0};
	char name[32];
	int i;

	(void)state;
	after = model_copy(before); /* a node added */
	assert_int_equal(cluster_put_node(cluster(after, "default"), "zope3", NULL, NULL, &tester,
	                                  1, &audit, &err),
	                 0);
	assert_null(store_change_encode(before, after, 1, 2));
	model_free(after);
	after = model_copy(before); /* two clusters */
	set_status(node(after, "default", "zope1"), NODE_OFFLINE, "", 0);
	set_status(node(after, "web", "w1"), NODE_OFFLINE, "", 0);
	cluster(after, "default")->version++;
	cluster(after, "web")->version++;
	assert_null(store_change_encode(before, after, 1, 2));
	model_free(after);
	after = model_copy(before); /* a user */
	assert_int_equal(
	    model_put_user(after, "ops", ROLE_VIEWER, "$argon2id$ops", &tester, 1, &audit, &err),
	    0);
	assert_null(store_change_encode(before, after, 1, 2));
	model_free(after);
	model_free(before);
	/* more nodes than a notification carries */
	before = model_new();
	assert_int_equal(model_add_cluster(before, "big", "/big", &tester, 1, &audit, &err), 0);
	for (i = 0; i <= STORE_CHANGE_NODES_MAX; i++) {
		snprintf(name, sizeof(name), "n%03d", i);
		assert_int_equal(cluster_put_node(cluster(before, "big"), name, NULL, NULL, &tester,
		                                  1, &audit, &err),
		                 0);
	}
	after = model_copy(before);
	for (i = 0; i <= STORE_CHANGE_NODES_MAX; i++) {
		snprintf(name, sizeof(name), "n%03d", i);
		set_status(node(after, "big", name), NODE_OFFLINE, "", 0);
	}
	cluster(after, "big")->version++;
	assert_null(store_change_encode(before, after, 1, 2));
	audit_log_free(&audit);
	model_free(after);
	model_free(before);
	assert_null(store_change_decode("{"));
	assert_null(store_change_decode("{\"from\":1}"));
}

#define STORE_TEST(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    STORE_TEST(test_open_creates_schema_at_current_version),
	    STORE_TEST(test_open_empty_store_loads_empty_model),
	    STORE_TEST(test_describe_names_backend_and_path),
	    STORE_TEST(test_reopen_keeps_schema_version),
	    STORE_TEST(test_migration_from_v1),
	    STORE_TEST(test_newer_schema_refused),
	    STORE_TEST(test_not_a_database_refused),
	    STORE_TEST(test_foreign_database_refused),
	    STORE_TEST(test_unopenable_path_fails_with_reason),
	    STORE_TEST(test_postgres_malformed_spec_refused_without_its_secrets),
	    STORE_TEST(test_postgres_unreachable_opens_down_and_masks_password),
	    STORE_TEST(test_spec_kinds),
	    STORE_TEST(test_write_on_current_model_commits_next_version),
	    STORE_TEST(test_write_on_stale_model_decides_on_stored_state),
	    STORE_TEST(test_refused_write_writes_nothing),
	    STORE_TEST(test_empty_spec_refused),
	    STORE_TEST(test_save_then_reopen_loads_same_model),
	    STORE_TEST(test_save_from_null_before_saves_everything),
	    STORE_TEST(test_load_returns_arrays_in_strcmp_order),
	    STORE_TEST(test_save_only_writes_difference),
	    STORE_TEST(test_save_applies_removals_and_additions),
	    STORE_TEST(test_remove_cluster_removes_its_nodes),
	    STORE_TEST(test_load_balancers_are_saved_updated_and_removed),
	    STORE_TEST(test_removed_cluster_path_can_be_reused_in_same_save),
	    STORE_TEST(test_failed_save_changes_nothing),
	    STORE_TEST(test_store_usable_after_failed_save),
	    STORE_TEST(test_audit_ids_and_newest_first_with_limit),
	    STORE_TEST(test_audit_filter_by_cluster),
	    STORE_TEST(test_audit_read_appends_to_existing_log),
	    STORE_TEST(test_second_open_of_same_file_refused),
	    STORE_TEST(test_open_through_a_symbolic_link_refused),
	    STORE_TEST(test_open_from_another_process_refused),
	    STORE_TEST(test_lock_survives_other_connections_closing),
	    STORE_TEST(test_write_refused_once_file_is_removed),
	    STORE_TEST(test_write_refused_once_file_is_replaced),
	    cmocka_unit_test(test_a_status_change_travels_and_applies_to_what_it_started_from),
	    cmocka_unit_test(test_other_writes_do_not_travel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
