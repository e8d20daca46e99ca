/*
 * fuzz_changeset.c - change_set_from_json and cluster_apply_changes on
 * arbitrary JSON text, the way a client's change set reaches them.
 *
 * The input is loaded as the HTTP side loads a body (json_loadb with
 * JSON_REJECT_DUPLICATES), parsed, and applied to a small cluster.
 * Properties, besides "no crash, no leak, no UB":
 *  - a rejected set is empty (nothing to free) and the error is a 400
 *    with a sentence;
 *  - an accepted set is sorted, unique, validly named, within the limits;
 *  - an accepted set, dumped as compact JSON and loaded again without
 *    flags, gives the same set with no error;
 *  - a failed apply leaves the cluster exactly as it was and writes no
 *    audit entry; a successful one bumps the version once and writes one
 *    entry per change.
 */
#include <jansson.h>

#include "fuzz_util.h"

#define TTL_MAX_MS (30LL * 24 * 3600 * 1000)

static const struct actor fuzzer = {"fuzzer", "192.0.2.9"};

/* default: a (online), b (offline), c (drain, ttl), web-1, web.2, db_3. */
static struct model *
small_model(void)
{
	static const char *const names[] = {"a", "b", "c", "web-1", "web.2", "db_3"};
	struct status_change setup[] = {
	    {"b", NODE_OFFLINE, "maintenance", 0},
	    {"c", NODE_DRAIN, "", 60000},
	};
	struct change_set cs = {2, setup};
	struct model *m = fuzz_model_with(names, 6);
	struct error err;

	if (cluster_apply_changes(model_find_cluster_mut(m, "default"), &cs, &fuzzer, 2, -1, -1,
	                          NULL, &err) != 0)
		abort();
	return m;
}

static void
check_accepted(const struct change_set *cs)
{
	size_t i;

	FUZZ_ASSERT(cs->n > 0 && cs->changes != NULL);
	for (i = 0; i < cs->n; i++) {
		const struct status_change *ch = &cs->changes[i];

		FUZZ_ASSERT(node_name_is_valid(ch->node, strlen(ch->node)));
		FUZZ_ASSERT(i == 0 || strcmp(cs->changes[i - 1].node, ch->node) < 0);
		FUZZ_ASSERT(ch->status == NODE_ONLINE || ch->status == NODE_OFFLINE ||
		            ch->status == NODE_DRAIN);
		FUZZ_ASSERT(ch->reason != NULL && strlen(ch->reason) <= 4 * REASON_MAX);
		FUZZ_ASSERT(ch->ttl_ms >= 0 && ch->ttl_ms <= TTL_MAX_MS);
		FUZZ_ASSERT(ch->ttl_ms == 0 || ch->status != NODE_ONLINE);
	}
}

static int
sets_equal(const struct change_set *a, const struct change_set *b)
{
	size_t i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++)
		if (strcmp(a->changes[i].node, b->changes[i].node) != 0 ||
		    a->changes[i].status != b->changes[i].status ||
		    strcmp(a->changes[i].reason, b->changes[i].reason) != 0 ||
		    a->changes[i].ttl_ms != b->changes[i].ttl_ms)
			return 0;
	return 1;
}

/* Dumped as compact JSON and parsed again: same set, no error. */
static void
check_round_trip(const json_t *doc, const struct change_set *cs)
{
	struct change_set again;
	struct error err;
	char *text = json_dumps(doc, JSON_COMPACT);
	json_t *reloaded;

	FUZZ_ASSERT(text != NULL);
	reloaded = json_loads(text, 0, NULL);
	FUZZ_ASSERT(reloaded != NULL);
	FUZZ_ASSERT(change_set_from_json(reloaded, &again, &err) == 0);
	FUZZ_ASSERT(sets_equal(cs, &again));
	change_set_free(&again);
	json_decref(reloaded);
	free(text);
}

static void
check_apply(const struct model *m, const struct change_set *cs, size_t size)
{
	struct model *copy = model_copy(m);
	struct cluster *c = model_find_cluster_mut(copy, "default");
	const struct cluster *before = model_find_cluster(m, "default");
	struct audit_log audit = {0};
	struct error err;
	/* Vary the guards with the input so every branch is reached. */
	int64_t if_version = (size % 3 == 0) ? -1 : before->version + (int64_t)(size % 3) - 1;
	int64_t min_online = (int64_t)(size % 8) - 1;

	error_clear(&err);
	if (cluster_apply_changes(c, cs, &fuzzer, 1000, if_version, min_online, &audit, &err) !=
	    0) {
		FUZZ_ASSERT(err.status == 400 || err.status == 404 || err.status == 409);
		FUZZ_ASSERT(err.what[0] != '\0');
		FUZZ_ASSERT(fuzz_cluster_equal(c, before));
		FUZZ_ASSERT(audit.n == 0);
	} else {
		FUZZ_ASSERT(c->version == before->version + 1);
		FUZZ_ASSERT(audit.n == cs->n);
		FUZZ_ASSERT(c->n_nodes == before->n_nodes);
		FUZZ_ASSERT(fuzz_cluster_is_sound(c));
	}
	audit_log_free(&audit);
	model_free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct model *m;
	struct change_set cs;
	struct error err;
	json_error_t jerr;
	json_t *doc;

	if (m == NULL)
		m = small_model();
	doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL)
		return 0;
	error_clear(&err);
	if (change_set_from_json(doc, &cs, &err) != 0) {
		FUZZ_ASSERT(cs.n == 0 && cs.changes == NULL);
		FUZZ_ASSERT(err.status == 400 && err.what[0] != '\0');
	} else {
		check_accepted(&cs);
		check_round_trip(doc, &cs);
		check_apply(m, &cs, size);
		change_set_free(&cs);
	}
	json_decref(doc);
	return 0;
}
