/*
 * changeset.c - turning the JSON a client sends into a struct change_set.
 *
 * The same object arrives through the seed's ++rest++setstatus (as the
 * whole body or a form field) and through the v1 status endpoint, so its
 * rules live here once. It is strict: anything not understood is an error
 * that names the entry, never silently dropped, because a deploy script
 * that misspells "reason" should hear about it rather than lose it.
 *
 * Parsing builds the whole set and frees it again on the first error; the
 * caller sees either a complete, sorted set or nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "../util/utf8.h"
#include "../util/xalloc.h"
#include "model.h"

static int
parse_status(const char *name, json_t *value, enum node_status *out, struct error *err)
{
	if (value == NULL)
		return error_set_entry(err, 400, name, "node '%s': status is missing", name);
	if (!json_is_string(value))
		return error_set_entry(err, 400, name, "node '%s': status must be a string", name);
	if (node_status_from_string(json_string_value(value), out) == -1)
		return error_set_entry(
		    err, 400, name,
		    "node '%s': unknown status '%.40s' (expected online, offline or drain)", name,
		    json_string_value(value));
	return 0;
}

static int
parse_reason(const char *name, json_t *value, struct status_change *ch, struct error *err)
{
	const char *s;
	size_t bytes;

	if (value == NULL)
		return 0;
	if (!json_is_string(value))
		return error_set_entry(err, 400, name, "node '%s': reason must be a string", name);
	s = json_string_value(value);
	bytes = json_string_length(value);
	if (strlen(s) != bytes)
		return error_set_entry(err, 400, name, "node '%s': reason contains a NUL character",
		                       name);
	if (utf8_length(s, bytes) > REASON_MAX)
		return error_set_entry(err, 400, name,
		                       "node '%s': reason is longer than %d characters", name,
		                       REASON_MAX);
	free(ch->reason);
	ch->reason = xstrdup(s);
	return 0;
}

static int
parse_ttl(const char *name, json_t *value, struct status_change *ch, struct error *err)
{
	json_int_t seconds;

	if (value == NULL)
		return 0;
	if (!json_is_integer(value))
		return error_set_entry(err, 400, name,
		                       "node '%s': ttl must be a whole number of seconds", name);
	seconds = json_integer_value(value);
	if (seconds < 1 || seconds > TTL_MAX_SECONDS)
		return error_set_entry(
		    err, 400, name, "node '%s': ttl must be between 1 and %lld seconds (30 days)",
		    name, TTL_MAX_SECONDS);
	if (ch->status == NODE_ONLINE)
		return error_set_entry(err, 400, name,
		                       "node '%s': a ttl cannot be set with status online "
		                       "(online is where a ttl returns to)",
		                       name);
	ch->ttl_ms = (int64_t)seconds * 1000;
	return 0;
}

static int
check_fields(const char *name, json_t *entry, struct error *err)
{
	const char *key;
	json_t *value;

	json_object_foreach(entry, key, value)
	{
		if (strcmp(key, "status") != 0 && strcmp(key, "reason") != 0 &&
		    strcmp(key, "ttl") != 0)
			return error_set_entry(
			    err, 400, name,
			    "node '%s': unknown field '%.40s' (expected status, reason or ttl)",
			    name, key);
	}
	return 0;
}

/* Fills ch (whose node and reason are already allocated) from one entry. */
static int
parse_change(const char *name, json_t *entry, struct status_change *ch, struct error *err)
{
	if (!node_name_is_valid(name, strlen(name)))
		return error_set_entry(err, 400, name,
		                       "node '%.100s': invalid name (" NODE_NAME_RULE ")", name);
	if (!json_is_object(entry))
		return error_set_entry(
		    err, 400, name, "node '%s': expected an object like {\"status\": \"offline\"}",
		    name);
	if (check_fields(name, entry, err) == -1 ||
	    parse_status(name, json_object_get(entry, "status"), &ch->status, err) == -1 ||
	    parse_reason(name, json_object_get(entry, "reason"), ch, err) == -1 ||
	    parse_ttl(name, json_object_get(entry, "ttl"), ch, err) == -1)
		return -1;
	return 0;
}

static int
compare_changes(const void *a, const void *b)
{
	return strcmp(((const struct status_change *)a)->node,
	              ((const struct status_change *)b)->node);
}

int
change_set_from_json(const json_t *obj, struct change_set *out, struct error *err)
{
	const char *name;
	json_t *entry;
	struct status_change *ch;

	out->n = 0;
	out->changes = NULL;
	if (!json_is_object(obj))
		return error_set(err, 400, "change set must be a JSON object of node names");
	if (json_object_size(obj) == 0)
		return error_set(err, 400, "change set is empty");
	out->changes = xcalloc(json_object_size(obj), sizeof *out->changes);
	/* jansson's foreach wants a non-const object; it does not modify it. */
	json_object_foreach((json_t *)obj, name, entry)
	{
		ch = &out->changes[out->n++];
		ch->node = xstrdup(name);
		ch->reason = xstrdup("");
		if (parse_change(name, entry, ch, err) == -1)
			goto bad;
	}
	qsort(out->changes, out->n, sizeof *out->changes, compare_changes);
	return 0;
bad:
	change_set_free(out);
	return -1;
}

void
change_set_free(struct change_set *cs)
{
	size_t i;

	if (cs == NULL)
		return;
	for (i = 0; i < cs->n; i++) {
		free(cs->changes[i].node);
		free(cs->changes[i].reason);
	}
	free(cs->changes);
	cs->n = 0;
	cs->changes = NULL;
}
