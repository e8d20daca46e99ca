/*
 * reply.c - writing responses: text, JSON, errors, redirects.
 *
 * Every response carries Cache-Control: no-store (load balancers and
 * browsers must never cache a node's state) and an explicit
 * Content-Length, so HTTP/1.1 connections stay alive without chunking.
 * Over HTTPS it also carries Strict-Transport-Security (HSTS_VALUE): a
 * browser that reached the daemon once over HTTPS will not send a session
 * cookie or a password over plain HTTP to the same host for a year. Not
 * over HTTP, where browsers ignore it and it would promise nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* One year, the common choice (and what HSTS preload lists ask for);
 * without includeSubDomains, since the daemon cannot know whether other
 * services under the same domain serve HTTPS. */
#define HSTS_VALUE "max-age=31536000"

static const char *
status_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

void
reply_bytes(struct request *r, int status, const char *content_type, const char *body, size_t len)
{
	static h2o_generator_t generator = {NULL, NULL};
	h2o_req_t *req = r->req;
	h2o_iovec_t buf;

	if (r->is_gone)
		return;
	req->res.status = status;
	req->res.reason = status_reason(status);
	req->res.content_length = len;
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
	               strlen(content_type));
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
	               H2O_STRLIT("no-store"));
	if (request_is_https(r))
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY,
		               NULL, H2O_STRLIT(HSTS_VALUE));
	h2o_start_response(req, &generator);
	if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
		h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
		return;
	}
	buf = h2o_strdup(&req->pool, body, len);
	h2o_send(req, &buf, 1, H2O_SEND_STATE_FINAL);
}

void
reply_text(struct request *r, int status, const char *body)
{
	reply_bytes(r, status, "text/plain; charset=utf-8", body, strlen(body));
}

void
reply_json(struct request *r, int status, json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(doc);
	if (text == NULL) {
		reply_text(r, 500, "cannot encode the response");
		return;
	}
	reply_bytes(r, status, "application/json", text, strlen(text));
	free(text);
}

void
reply_error(struct request *r, int status, json_t *detail, const char *fmt, ...)
{
	char what[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	reply_json(r, status,
	           json_pack("{s:s, s:o}", "error", what, "detail", detail ? detail : json_null()));
}

void
reply_from_error(struct request *r, const struct error *err)
{
	json_t *detail = NULL;
	int status = err->status >= 400 && err->status <= 599 ? err->status : 500;

	if (err->entry[0] != '\0')
		detail = json_pack("{s:s}", "entry", err->entry);
	reply_error(r, status, detail, "%s", err->what[0] ? err->what : "request failed");
}

void
reply_unauthorized(struct request *r)
{
	if (r->is_gone)
		return;
	h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
	               H2O_STRLIT("Basic realm=\"clustermgmt\""));
	reply_error(r, 401, NULL, "authentication required");
}

void
reply_method_not_allowed(struct request *r, const char *allow)
{
	if (r->is_gone)
		return;
	h2o_add_header_by_str(&r->req->pool, &r->req->res.headers, H2O_STRLIT("allow"), 0, NULL,
	                      allow, strlen(allow));
	reply_error(r, 405, NULL, "method %.*s is not allowed here (allowed: %s)",
	            (int)r->req->method.len, r->req->method.base, allow);
}

void
reply_redirect(struct request *r, int status, const char *location)
{
	if (r->is_gone)
		return;
	h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_LOCATION, NULL, location,
	               strlen(location));
	reply_text(r, status, "");
}

json_t *
request_json_body(struct request *r, struct error *err)
{
	return request_json_body_max(r, BODY_MAX, err);
}

json_t *
request_json_body_max(struct request *r, size_t max, struct error *err)
{
	json_error_t jerr;
	json_t *doc;

	if (r->req->entity.len > max) {
		error_set(err, 413, "request body is larger than %zu bytes", max);
		return NULL;
	}
	if (r->req->entity.base == NULL || r->req->entity.len == 0) {
		error_set(err, 400, "request body is empty; expected a JSON object");
		return NULL;
	}
	doc = json_loadb(r->req->entity.base, r->req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL) {
		error_set(err, 400, "malformed JSON at line %d, column %d: %s", jerr.line,
		          jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		error_set(err, 400, "request body must be a JSON object");
		return NULL;
	}
	return doc;
}
