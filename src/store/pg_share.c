/*
 * pg_share.c - one statement per batch of observed probes or web
 * sessions (see pg_share.h).
 *
 * Each column of the batch travels as one text-array literal
 * ({"a","b"}); every element is quoted, with backslash and double quote
 * escaped, so any user agent survives the trip. The statement casts the
 * arrays back to their column types and unnests them side by side.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../util/strbuf.h"
#include "pg_share.h"

const char pg_share_put_probes_sql[] =
    "INSERT INTO probes (daemon, cluster, node, protocol, lb, address, user_agent, "
    "has_user_agent, first_at, last_at, changed_at, last_answer, consecutive, "
    "since_change, interval_ms, xid) SELECT u.*, pg_current_xact_id() FROM unnest($1::text[], "
    "$2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::int[], "
    "$9::bigint[], $10::bigint[], $11::bigint[], $12::int[], $13::bigint[], $14::bigint[], "
    "$15::bigint[]) u ON CONFLICT (daemon, cluster, node, protocol, lb, "
    "address, user_agent, has_user_agent) DO UPDATE SET first_at = excluded.first_at, "
    "last_at = excluded.last_at, changed_at = excluded.changed_at, "
    "last_answer = excluded.last_answer, consecutive = excluded.consecutive, "
    "since_change = excluded.since_change, interval_ms = excluded.interval_ms, "
    "xid = excluded.xid";

const char pg_share_put_sessions_sql[] =
    "INSERT INTO sessions (id_hash, name, tag, expires_at, kind, login, issuer, subject, "
    "email, group_names, id_token) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
    "$4::bigint[], $5::int[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], "
    "$11::text[]) ON CONFLICT (id_hash) DO NOTHING";

const char pg_share_end_sessions_sql[] = "DELETE FROM sessions WHERE id_hash = ANY($1::text[])";

static void
array_reserve(struct strbuf *a, size_t more)
{
	strbuf_reserve(a, more, 256);
}

/* Appends one quoted element (a comma before every element but the first). */
static void
array_add(struct strbuf *a, const char *value)
{
	const char *c;

	array_reserve(a, 2 * strlen(value) + 4);
	if (a->len > 1)
		a->buf[a->len++] = ',';
	a->buf[a->len++] = '"';
	for (c = value; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			a->buf[a->len++] = '\\';
		a->buf[a->len++] = *c;
	}
	a->buf[a->len++] = '"';
	a->buf[a->len] = '\0';
}

static void
array_add_i64(struct strbuf *a, int64_t v)
{
	char text[24];

	snprintf(text, sizeof(text), "%" PRId64, v);
	array_add(a, text);
}

static void
array_open(struct strbuf *a)
{
	memset(a, 0, sizeof(*a));
	array_reserve(a, 1);
	a->buf[a->len++] = '{';
	a->buf[a->len] = '\0';
}

/* Ends the literal; returns it (the caller frees it). */
static char *
array_close(struct strbuf *a)
{
	array_reserve(a, 1);
	a->buf[a->len++] = '}';
	a->buf[a->len] = '\0';
	return a->buf;
}

static void
array_add_hex32(struct strbuf *a, const unsigned char in[32])
{
	char hex[65];

	sodium_bin2hex(hex, sizeof(hex), in, 32);
	array_add(a, hex);
}

void
pg_share_free_params(char **params, int n)
{
	int c;

	for (c = 0; c < n; c++) {
		free(params[c]);
		params[c] = NULL;
	}
}

void
pg_share_probe_arrays(const struct probe_report *r, size_t n, char *params[PG_SHARE_PROBE_COLUMNS])
{
	struct strbuf a[PG_SHARE_PROBE_COLUMNS];
	size_t i;
	int c;

	for (c = 0; c < PG_SHARE_PROBE_COLUMNS; c++)
		array_open(&a[c]);
	for (i = 0; i < n; i++) {
		array_add(&a[0], r[i].daemon);
		array_add(&a[1], r[i].cluster);
		array_add(&a[2], r[i].node);
		array_add_i64(&a[3], r[i].protocol);
		array_add(&a[4], r[i].lb);
		array_add(&a[5], r[i].address);
		array_add(&a[6], r[i].user_agent);
		array_add_i64(&a[7], r[i].has_user_agent ? 1 : 0);
		array_add_i64(&a[8], r[i].first_at);
		array_add_i64(&a[9], r[i].last_at);
		array_add_i64(&a[10], r[i].changed_at);
		array_add_i64(&a[11], r[i].last_answer);
		array_add_i64(&a[12], r[i].consecutive);
		array_add_i64(&a[13], r[i].since_change);
		array_add_i64(&a[14], r[i].interval_ms);
	}
	for (c = 0; c < PG_SHARE_PROBE_COLUMNS; c++)
		params[c] = array_close(&a[c]);
}

void
pg_share_interest_arrays(const struct probe_interest *in, size_t n,
                         char *params[PG_SHARE_INTEREST_COLUMNS])
{
	struct strbuf a[PG_SHARE_INTEREST_COLUMNS];
	size_t i;
	int c;

	for (c = 0; c < PG_SHARE_INTEREST_COLUMNS; c++)
		array_open(&a[c]);
	for (i = 0; i < n; i++) {
		if (in[i].node[0] != '\0') {
			array_add(&a[0], in[i].cluster);
			array_add(&a[1], in[i].node);
			array_add(&a[2], in[i].is_new ? "t" : "f");
		} else {
			array_add(&a[3], in[i].cluster);
			array_add(&a[4], in[i].is_new ? "t" : "f");
		}
	}
	for (c = 0; c < PG_SHARE_INTEREST_COLUMNS; c++)
		params[c] = array_close(&a[c]);
}

void
pg_share_session_arrays(const struct session_record *r, size_t n, int is_ids_only,
                        char *params[PG_SHARE_SESSION_COLUMNS])
{
	struct strbuf a[PG_SHARE_SESSION_COLUMNS];
	int c, n_columns = is_ids_only ? 1 : PG_SHARE_SESSION_COLUMNS;
	size_t i;

	for (c = 0; c < n_columns; c++)
		array_open(&a[c]);
	for (i = 0; i < n; i++) {
		array_add_hex32(&a[0], r[i].id_hash);
		if (is_ids_only)
			continue;
		array_add(&a[1], r[i].user);
		array_add_hex32(&a[2], r[i].tag);
		array_add_i64(&a[3], r[i].expires_at);
		array_add_i64(&a[4], r[i].kind);
		array_add(&a[5], r[i].name);
		array_add(&a[6], r[i].issuer);
		array_add(&a[7], r[i].subject);
		array_add(&a[8], r[i].email);
		array_add(&a[9], r[i].groups != NULL ? r[i].groups : "");
		array_add(&a[10], r[i].id_token != NULL ? r[i].id_token : "");
	}
	for (c = 0; c < PG_SHARE_SESSION_COLUMNS; c++)
		params[c] = c < n_columns ? array_close(&a[c]) : NULL;
}
