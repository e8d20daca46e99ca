/*
 * ui_html.c - building the web page's HTML safely, and sending it.
 *
 * A page is one growing buffer. Data goes in only through ui_esc or the
 * %s of ui_printf, which escape & < > " ' so that a reason such as
 * "<script>" is text wherever it lands (element content or a quoted
 * attribute). Markup goes in through ui_raw and %r, and only the page's
 * own literals and what it built with these functions are passed there.
 *
 * Replies carry a Content-Security-Policy of default-src 'self': no
 * inline script or style runs, so even a mistake in escaping could not
 * execute, and nothing is fetched from another host.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/xalloc.h"
#include "ui.h"

#define CSP "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

void
ui_buf_init(struct ui_buf *b, size_t cap)
{
	b->cap = cap < 256 ? 256 : cap;
	b->data = xmalloc(b->cap);
	b->len = 0;
}

void
ui_buf_free(struct ui_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static void
buf_reserve(struct ui_buf *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	while (b->len + more > b->cap)
		b->cap *= 2;
	b->data = xreallocarray(b->data, b->cap, 1);
}

static void
buf_add(struct ui_buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

void
ui_raw(struct ui_buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
ui_esc(struct ui_buf *b, const char *s)
{
	const char *run = s;

	if (s == NULL)
		return;
	for (; *s != '\0'; s++) {
		const char *entity;
		switch (*s) {
		case '&':
			entity = "&amp;";
			break;
		case '<':
			entity = "&lt;";
			break;
		case '>':
			entity = "&gt;";
			break;
		case '"':
			entity = "&quot;";
			break;
		case '\'':
			entity = "&#39;";
			break;
		default:
			continue;
		}
		buf_add(b, run, (size_t)(s - run));
		ui_raw(b, entity);
		run = s + 1;
	}
	buf_add(b, run, (size_t)(s - run));
}

void
ui_printf(struct ui_buf *b, const char *fmt, ...)
{
	char num[32];
	const char *p = fmt, *run = fmt;
	va_list ap;

	va_start(ap, fmt);
	for (; *p != '\0'; p++) {
		if (*p != '%' || p[1] == '\0')
			continue;
		buf_add(b, run, (size_t)(p - run));
		run = p + 2;
		switch (p[1]) {
		case 's':
			ui_esc(b, va_arg(ap, const char *));
			break;
		case 'r':
			ui_raw(b, va_arg(ap, const char *));
			break;
		case 'd':
			snprintf(num, sizeof(num), "%d", va_arg(ap, int));
			ui_raw(b, num);
			break;
		case 'L':
			snprintf(num, sizeof(num), "%lld", (long long)va_arg(ap, int64_t));
			ui_raw(b, num);
			break;
		case '%':
			ui_raw(b, "%");
			break;
		default:
			run = p;
			break;
		}
		p++;
	}
	buf_add(b, run, (size_t)(p - run));
	va_end(ap);
}

void
ui_header(struct request *r, const char *name, const char *value)
{
	h2o_req_t *req = r->req;
	/* h2o keeps pointers to the name and value: copy them into the
	 * request's pool, callers pass stack buffers. */
	h2o_iovec_t n = h2o_strdup(&req->pool, name, strlen(name));
	h2o_iovec_t v = h2o_strdup(&req->pool, value, strlen(value));

	h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 0, NULL, v.base, v.len);
}

void
ui_reply_html(struct request *r, int status, struct ui_buf *b)
{
	ui_header(r, "content-security-policy", CSP);
	ui_header(r, "x-content-type-options", "nosniff");
	ui_header(r, "x-frame-options", "DENY");
	ui_header(r, "referrer-policy", "same-origin");
	reply_bytes(r, status, "text/html; charset=utf-8", b->data, b->len);
	ui_buf_free(b);
}

const char *
ui_time(int64_t ms, char *buf, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	buf[0] = '\0';
	if (ms == 0)
		return buf;
	gmtime_r(&secs, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
	return buf;
}
