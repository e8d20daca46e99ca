/*
 * form.c - reading one field of an HTML form body, urlencoded or
 * multipart/form-data (the seed's setstatus accepts both, and so do the
 * web page's forms).
 *
 * Neither h2o nor the other libraries here parse form bodies, so this is
 * the one small parser we keep: it looks for a single field by name and
 * copies its value out; it never builds a tree of the whole body.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/url.h"
#include "../util/xalloc.h"
#include "http.h"

/* The boundary parameter of a multipart Content-Type, into buf. */
static int
multipart_boundary(h2o_iovec_t type, char *buf, size_t size)
{
	char *ct = xstrndup(type.base, type.len), *b = strcasestr(ct, "boundary="), *end;
	int rc = -1;

	if (b != NULL) {
		b += 9;
		if (*b == '"') {
			b++;
			end = strchr(b, '"');
		} else {
			end = b + strcspn(b, "; \t");
		}
		if (end != NULL && end > b && (size_t)(end - b) + 3 < size) {
			buf[0] = '-';
			buf[1] = '-';
			memcpy(buf + 2, b, (size_t)(end - b));
			buf[end - b + 2] = '\0';
			rc = 0;
		}
	}
	free(ct);
	return rc;
}

/* Does a part's header block name the field? Only the name parameter of
 * its Content-Disposition counts: not filename="...", not another header. */
static int
part_is_field(const char *headers, size_t len, const char *name)
{
	char *h = xstrndup(headers, len), needle[160], *line, *eol, *p;
	int yes = 0;

	snprintf(needle, sizeof(needle), "name=\"%s\"", name);
	for (line = h; line != NULL && !yes; line = eol != NULL ? eol + 2 : NULL) {
		if ((eol = strstr(line, "\r\n")) != NULL)
			*eol = '\0';
		if (strncasecmp(line, "content-disposition:", 20) != 0)
			continue;
		for (p = strstr(line, needle); p != NULL && !yes; p = strstr(p + 1, needle))
			yes = p[-1] == ' ' || p[-1] == '\t' || p[-1] == ';';
	}
	free(h);
	return yes;
}

int
form_multipart_value(h2o_iovec_t body, h2o_iovec_t content_type, const char *name, char **out,
                     struct error *err)
{
	/* A delimiter is CRLF "--" boundary (RFC 2046); only the first one
	 * may open the body without the CRLF. "--boundary" anywhere else is
	 * content. */
	char delimiter[2 + 128];
	const char *dash = delimiter + 2, *p, *end = body.base + body.len;
	size_t dlen, blen;

	*out = NULL;
	if (multipart_boundary(content_type, delimiter + 2, sizeof(delimiter) - 2) != 0)
		return error_set(err, 400, "multipart body without a boundary");
	memcpy(delimiter, "\r\n", 2);
	dlen = strlen(delimiter);
	blen = dlen - 2;
	if (body.len >= blen && memcmp(body.base, dash, blen) == 0)
		p = body.base;
	else if ((p = memmem(body.base, body.len, delimiter, dlen)) != NULL)
		p += 2;
	while (p != NULL) { /* p: at "--boundary" */
		const char *head = p + blen, *head_end, *value, *next;
		size_t len;

		/* The close delimiter ("--boundary--"), or the end. */
		if (end - head < 2 || memcmp(head, "--", 2) == 0)
			break;
		head += 2; /* CRLF after the boundary */
		head_end = memmem(head, (size_t)(end - head), "\r\n\r\n", 4);
		if (head_end == NULL)
			break;
		value = head_end + 4;
		next = memmem(value, (size_t)(end - value), delimiter, dlen);
		if (next == NULL)
			break;
		len = (size_t)(next - value);
		if (part_is_field(head, (size_t)(head_end - head), name)) {
			/* A C string cannot hold it; urlencoded %00 is refused too. */
			if (memchr(value, '\0', len) != NULL)
				return error_set(err, 400, "field '%s' contains a NUL byte", name);
			*out = xstrndup(value, len);
			return 0;
		}
		p = next + 2;
	}
	return 0;
}

int
form_field(struct request *r, const char *name, char **out, struct error *err)
{
	h2o_iovec_t type = request_header(r, H2O_TOKEN_CONTENT_TYPE);
	h2o_iovec_t body = r->req->entity;

	*out = NULL;
	if (body.len > BODY_MAX)
		return error_set(err, 413, "request body is larger than %d bytes", BODY_MAX);
	if (body.base == NULL)
		return 0;
	if (type.len >= 19 && strncasecmp(type.base, "multipart/form-data", 19) == 0)
		return form_multipart_value(body, type, name, out, err);
	if (url_form_value(body.base, body.len, name, out) < 0)
		return error_set(err, 400, "field '%s' is not properly encoded", name);
	return 0;
}
