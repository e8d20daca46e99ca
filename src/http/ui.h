/*
 * ui.h - the web page: its handlers, which the router's table names
 * (router.c: the page's paths, their methods, gates and roles), the gates
 * the router runs for them (ui_page_auth, ui_post_guard), and what the
 * page's own files share. Authentication reaches the page's sessions only
 * through the hook daemon.c plugs ui_session_identify into
 * (auth_set_session_source, auth.h).
 *
 *   ui.c          the page's 405, {mount}/manage_main, the gates for
 *                 pages and forms, the page frame (header, navigation,
 *                 footer), message pages, reading form fields, and the
 *                 cluster list "/" with its admin forms.
 *   ui_html.c     an HTML buffer that escapes every string it is given
 *                 unless told the string is markup, and the HTML reply
 *                 with the page's security headers.
 *   ui_session.c  sessions (in memory), the session cookie, CSRF tokens,
 *                 the same-origin check, /login and /logout.
 *   ui_nodes.c    {mount}/managenodes: status table (with each node's
 *                 check state and probe activity), offline form, drain,
 *                 node list form, audit log, confirmation step.
 *   ui_admin.c    /admin: users and tokens.
 *   ui_assets.c   /static/...: the CSS, the JS and the icon, embedded.
 *
 * Every function here runs on the worker thread that owns the request.
 */
#ifndef CM_UI_H
#define CM_UI_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define UI_CSRF_SIZE 64 /* a CSRF token as text, with its NUL */
/* A limit of core/limits.h as text, for maxlength attributes. */
#define UI_LIMIT(x) UI_LIMIT_TEXT(x)
#define UI_LIMIT_TEXT(x) #x

/* --- ui_html.c: building pages ------------------------------------------ */

struct ui_buf {
	char *data;
	size_t len, cap;
};

/* An empty buffer with room for about cap bytes; never fails (aborts on
 * out of memory, like xmalloc). */
void ui_buf_init(struct ui_buf *b, size_t cap);
void ui_buf_free(struct ui_buf *b);

/* Appends s as it is: for markup the page itself wrote, never for data. */
void ui_raw(struct ui_buf *b, const char *s);
/* Appends s HTML-escaped (& < > " '), so it is safe as text and inside a
 * quoted attribute value. NULL appends nothing. */
void ui_esc(struct ui_buf *b, const char *s);
/* Appends fmt, which is markup, with its arguments:
 *   %s  a string, HTML-escaped (NULL as "")
 *   %r  a string appended raw: markup the caller built, never data
 *   %d  an int      %L  an int64_t      %%  a '%'
 * Nothing else is understood (an unknown directive is copied as is). */
void ui_printf(struct ui_buf *b, const char *fmt, ...);

/* Adds a response header (name lowercase; both copied) before the reply. */
void ui_header(struct request *r, const char *name, const char *value);
/* Replies with the page in b as text/html, with the page's headers
 * (Content-Security-Policy default-src 'self', no framing, nosniff,
 * same-origin referrers), and frees b's data. */
void ui_reply_html(struct request *r, int status, struct ui_buf *b);

/* "2026-11-24 21:10:54 UTC" into buf (at least 32 bytes); "" for 0. */
const char *ui_time(int64_t ms, char *buf, size_t size);

/* --- ui.c: the frame, gates and forms ----------------------------------- */

/* Opens a page: doctype, head, the top bar with navigation and, for a
 * signed-in user, who they are and the sign-out button. cluster (may be
 * NULL) names the cluster the page is about, for the navigation. */
void ui_page_begin(struct request *r, struct ui_buf *b, const char *title,
                   const struct cluster *cluster);
void ui_page_end(struct ui_buf *b);
/* A whole page with a heading and one sentence (escaped); for refusals
 * and errors. link/link_text (may be NULL) offer a way on. */
void ui_reply_message(struct request *r, int status, const char *title, const char *text,
                      const char *link, const char *link_text);

/* Runs then(r) once r is authenticated for a page (session cookie, HTTP
 * Basic or Bearer) with at least the viewer role. A session without it
 * gets a 403 page. The trusted proxy's user gets a session and a 303 back
 * to the same URL. Without credentials: a 303 to /login?next=...; bad
 * credentials get 401. */
void ui_page_auth(struct request *r, request_handler then);

/* For a form POST: r must carry a live session of at least min_role, a
 * valid CSRF token (field "csrf") and, when the browser sent Origin or
 * Referer, the same origin. Returns 0 when the POST may proceed; else it
 * has replied (a 403 page that says why, 413 for a body over BODY_MAX;
 * nothing changed) and returns -1. */
int ui_post_guard(struct request *r, enum role min_role);

/* The decoded value of form field name (malloc'd; the caller frees), or
 * NULL when absent or unreadable. */
char *ui_field(struct request *r, const char *name);
/* Calls fn for each value of the urlencoded form field name, in order.
 * Returns -1 when the body cannot be read. */
int ui_field_each(struct request *r, const char *name, void (*fn)(void *arg, const char *value),
                  void *arg);

/* Does the string field name hold exactly value? */
int ui_field_is(struct request *r, const char *name, const char *value);

/* The hidden CSRF input for r's session ("" when r has no session). */
void ui_csrf_input(struct request *r, struct ui_buf *b);

/* --- the router's handlers ---------------------------------------------
 * A page (GET, HEAD) runs after ui_page_auth, a form (POST) after
 * ui_post_guard with the role of its table line; a form whose role
 * depends on what it asks for checks again with that role. */

/* "/" and POST /clusters (ui.c). */
void ui_root_page(struct request *r, const struct route *rt);
void ui_clusters_post(struct request *r, const struct route *rt);
/* {mount}/manage_main: a redirect to the cluster's managenodes page. */
void ui_manage_main(struct request *r, const struct route *rt);
/* GET and POST /login, POST /logout (ui_session.c). */
void ui_login_page(struct request *r, const struct route *rt);
void ui_login_post(struct request *r, const struct route *rt);
void ui_logout_post(struct request *r, const struct route *rt);
/* GET /login/oidc: off to the identity provider; GET /login/oidc/callback:
 * back from it (ui_session.c, over oidc.c). */
void ui_login_oidc_page(struct request *r, const struct route *rt);
void ui_login_oidc_callback(struct request *r, const struct route *rt);
/* {mount}/managenodes (ui_nodes.c). */
void ui_nodes_page(struct request *r, const struct route *rt);
/* POST, one line per form (router.c keys them on the "form" field):
 * status changes (operator), the node list (admin). */
void ui_nodes_status_post(struct request *r, const struct route *rt);
void ui_nodes_list_post(struct request *r, const struct route *rt);
/* /admin (ui_admin.c). */
void ui_admin_page(struct request *r, const struct route *rt);
void ui_admin_post(struct request *r, const struct route *rt);
/* /static/NAME (ui_assets.c); 404 when no asset has that name. */
void ui_asset_get(struct request *r, const struct route *rt);
/* The page's 405: a page saying so, with Allow. */
void ui_reply_method_not_allowed(struct request *r, const char *allow);

/* --- ui_session.c ------------------------------------------------------- */

/* The web page's sessions, an auth_session_fn (auth.h) that daemon.c
 * plugs into authentication: fills r->role, r->who and r->is_session
 * from the session cookie and returns 1, or returns 0 when there is no
 * valid session. Synchronous. */
int ui_session_identify(struct request *r);
/* The hooks through which the share thread (observe/share.h) shares the
 * page's sessions with the other daemons of a PostgreSQL store. */
void ui_session_share_hooks(struct share_session_hooks *out);
/* Fills token with the CSRF token of r's session; returns -1 (token "")
 * when r has no session cookie. */
int ui_csrf_token(struct request *r, char token[UI_CSRF_SIZE]);
/* Is token the CSRF token of r's session? Constant time. */
int ui_csrf_is_valid(struct request *r, const char *token);
/* Does the request come from the page's own origin? Origin, else
 * Referer, must name the Host the request was sent to; a request with
 * neither passes (older browsers, privacy settings); "null" fails. */
int ui_origin_is_same(struct request *r);
/* Was r signed in through the identity provider? */
int ui_session_is_oidc(struct request *r);
/* With the trusted proxy's header and no session: starts a session for
 * the proxy's user, sets its cookie on r's reply and returns 1 (the
 * caller redirects, so that the next request carries the cookie and its
 * forms a CSRF token); 0 without a trusted proxy header. */
int ui_session_proxy_start(struct request *r);
/* Ends every session of user name (after the user was removed). */
void ui_session_drop_user(const char *name);

#endif
