/*
 * fuzz_form.c - the form body parsers of src/http/form.c.
 *
 * The input's first line is the Content-Type header value, the rest the
 * request body; both are handed over in buffers of exactly their size,
 * unterminated, as h2o hands them over. Each field name below is looked
 * up with url_form_value, form_multipart_value and form_field
 * (through a minimal request: form_field reads only the entity and the
 * Content-Type). Properties, besides "no crash, no leak, no UB":
 *  - the return values are the documented ones, and *out is set exactly
 *    when a value was found;
 *  - a multipart value is the whole content of its part (not cut at a
 *    NUL byte);
 *  - form_field gives the same answer as the parser for its content type;
 *  - an error is a 400 with a sentence.
 */
#include <h2o.h>

#include "../../src/http/http.h"
#include "fuzz_util.h"

static h2o_iovec_t content_type;

/* form_field's only way into the request besides r->req->entity. */
h2o_iovec_t
request_header(const struct request *r, const h2o_token_t *token)
{
	(void)r;
	if (token == H2O_TOKEN_CONTENT_TYPE)
		return content_type;
	return h2o_iovec_init(NULL, 0);
}

static int
is_multipart(h2o_iovec_t type)
{
	return type.len >= 19 && strncasecmp(type.base, "multipart/form-data", 19) == 0;
}

/* A multipart value is all of a part's content: in the body it is
 * followed by the CRLF and "--" of the next delimiter, not cut short. */
static int
value_is_whole_part(h2o_iovec_t body, const char *value)
{
	size_t len = strlen(value);
	char *needle = malloc(len + 4);
	int yes;

	if (needle == NULL)
		abort();
	memcpy(needle, value, len);
	memcpy(needle + len, "\r\n--", 4);
	yes = memmem(body.base, body.len, needle, len + 4) != NULL;
	free(needle);
	return yes;
}

static void
check_field(h2o_iovec_t body, const char *name)
{
	struct request r;
	h2o_req_t req;
	struct error err;
	char *url = NULL, *multi = NULL, *field = NULL;
	int url_rc, multi_rc, field_rc;

	url_rc = url_form_value(body.base, body.len, name, &url);
	FUZZ_ASSERT(url_rc == -1 || url_rc == 0 || url_rc == 1);
	FUZZ_ASSERT((url_rc == 1) == (url != NULL));

	error_clear(&err);
	multi_rc = form_multipart_value(body, content_type, name, &multi, &err);
	FUZZ_ASSERT(multi_rc == 0 || multi_rc == -1);
	FUZZ_ASSERT(multi_rc == 0 || (multi == NULL && err.status == 400 && err.what[0]));

	if (multi != NULL)
		FUZZ_ASSERT(value_is_whole_part(body, multi));

	memset(&r, 0, sizeof(r));
	memset(&req, 0, sizeof(req));
	req.entity = body;
	r.req = &req;
	error_clear(&err);
	field_rc = form_field(&r, name, &field, &err);
	FUZZ_ASSERT(field_rc == 0 || (field == NULL && err.status == 400 && err.what[0]));
	if (body.base != NULL && is_multipart(content_type)) {
		FUZZ_ASSERT(field_rc == multi_rc && fuzz_str_equal(field, multi));
	} else if (body.base != NULL) {
		FUZZ_ASSERT((field_rc == -1) == (url_rc == -1) && fuzz_str_equal(field, url));
	}
	free(url);
	free(multi);
	free(field);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"change", "node", "reason", ""};
	const uint8_t *nl = memchr(data, '\n', size);
	size_t type_len = nl != NULL ? (size_t)(nl - data) : size;
	size_t body_len = nl != NULL ? size - type_len - 1 : 0;
	char *type = malloc(type_len ? type_len : 1), *body = malloc(body_len ? body_len : 1);
	size_t i;

	if (type == NULL || body == NULL)
		abort();
	memcpy(type, data, type_len);
	if (body_len > 0)
		memcpy(body, nl + 1, body_len);
	content_type = h2o_iovec_init(type, type_len);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		check_field(h2o_iovec_init(body, body_len), names[i]);
	free(type);
	free(body);
	return 0;
}
