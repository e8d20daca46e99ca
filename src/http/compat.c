/*
 * compat.c - the seed product's REST API, byte-compatible:
 *
 *   GET  {mount}/++rest++nodestatus   {"a": {"status": "online"}, ...}
 *   POST {mount}/++rest++setstatus    change set as form field `change`
 *                                     or as a JSON body
 *
 * The router (router.c) has matched the path and authenticated the
 * request; rt->cluster names the cluster mounted there.
 *
 * The nodestatus document is jansson's default (non-compact) encoding with
 * sorted keys, which gives exactly the seed's ", " and ": " separators.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/xalloc.h"
#include "compat.h"

static void
reply_nodestatus(struct request *r, const struct cluster *c)
{
	json_t *doc = json_object();
	char *text;
	size_t i;

	for (i = 0; i < c->n_nodes; i++)
		json_object_set_new(
		    doc, cluster_node(c, i)->name,
		    json_pack("{s:s}", "status", node_status_name(cluster_node(c, i)->status)));
	text = json_dumps(doc, JSON_SORT_KEYS);
	json_decref(doc);
	if (text == NULL) {
		reply_text(r, 500, "cannot encode the response");
		return;
	}
	reply_bytes(r, 200, "application/json", text, strlen(text));
	free(text);
}

void
compat_nodestatus(struct request *r, const struct route *rt)
{
	/* by name in the current snapshot: the router's may be gone */
	const struct cluster *c = model_find_cluster(request_snapshot(r), rt->cluster);

	if (c == NULL) {
		reply_error(r, 404, NULL, "cluster not found");
		return;
	}
	reply_nodestatus(r, c);
}

static void
setstatus_done(struct request *r, struct engine_job *job)
{
	const char *name = job->command.cluster;
	const struct cluster *c = model_find_cluster(request_snapshot(r), name);

	if (job->rc != 0)
		reply_from_error(r, &job->err);
	else if (c == NULL)
		reply_error(r, 404, NULL, "cluster '%s' no longer exists", name);
	else
		reply_nodestatus(r, c);
}

static int
is_json_body(struct request *r)
{
	h2o_iovec_t type = request_header(r, H2O_TOKEN_CONTENT_TYPE);

	return type.len >= 16 && strncasecmp(type.base, "application/json", 16) == 0;
}

/* The change set document from the `change` field or the JSON body. */
static json_t *
read_change_document(struct request *r, struct error *err)
{
	json_error_t jerr;
	char *field = NULL;
	json_t *doc;

	if (is_json_body(r))
		return request_json_body(r, err);
	if (form_field(r, "change", &field, err) != 0)
		return NULL;
	if (field == NULL) {
		error_set(err, 400, "form field 'change' is missing");
		return NULL;
	}
	doc = json_loads(field, JSON_REJECT_DUPLICATES, &jerr);
	free(field);
	if (doc == NULL)
		error_set(err, 400, "field 'change' is not valid JSON: %s", jerr.text);
	return doc;
}

void
compat_setstatus(struct request *r, const struct route *rt)
{
	/* by name in the current snapshot: the router's may be gone */
	const struct cluster *c = model_find_cluster(request_snapshot(r), rt->cluster);
	struct engine_job *job;
	struct command *cmd;
	struct error err;
	json_t *doc;

	if (c == NULL) {
		reply_error(r, 404, NULL, "cluster not found");
		return;
	}
	if ((doc = read_change_document(r, &err)) == NULL) {
		reply_from_error(r, &err);
		return;
	}
	job = request_job_new(r, NULL, 0);
	cmd = engine_job_command(job, COMMAND_SET_STATUS);
	cmd->idempotency_key = request_idempotency_key(r);
	cmd->cluster = xstrdup(c->name);
	if (change_set_from_json(doc, &cmd->changes, &err) != 0) {
		json_decref(doc);
		engine_job_release(job);
		free(job);
		reply_from_error(r, &err);
		return;
	}
	json_decref(doc);
	request_job_submit(r, job, setstatus_done);
}
