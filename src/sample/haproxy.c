/*
 * haproxy.c - the counters of a backend's servers from HAProxy's admin
 * socket (see sample.h).
 *
 * "show stat BACKEND 4 -1 typed" answers one line per field:
 *
 *   S.2.1.43.hrsp_5xx.1:MCP:u64:0
 *   ^ ^ ^ ^  ^        ^ ^   ^   ^ value
 *   | | | |  name     process, origin/nature/scope, type
 *   | | | field position
 *   | | server id
 *   | proxy id
 *   server
 *
 * The fields are found by name, never by position, so a HAProxy that adds
 * fields changes nothing. The lines of one server follow each other and
 * its svname comes before its counters; a server is the pair (proxy id,
 * server id). The socket itself is lbaccess/haproxy_socket.c's, shared
 * with the drain proof.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lbaccess/haproxy_socket.h"
#include "sample.h"

#define ANSWER_MAX (4 * 1024 * 1024)

static uint64_t
parse_u64(const char *s)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	return errno != 0 || end == s || s[0] == '-' ? 0 : (uint64_t)v;
}

/* Stores one field of a server. */
static void
set_field(struct sample_server *s, const char *name, const char *value)
{
	static const char *const classes[6] = {"hrsp_1xx", "hrsp_2xx", "hrsp_3xx",
	                                       "hrsp_4xx", "hrsp_5xx", "hrsp_other"};
	int i;

	for (i = 0; i < 6; i++)
		if (strcmp(name, classes[i]) == 0) {
			s->hrsp[i] = parse_u64(value);
			return;
		}
	if (strcmp(name, "econ") == 0)
		s->econ = parse_u64(value);
	else if (strcmp(name, "eresp") == 0)
		s->eresp = parse_u64(value);
	else if (strcmp(name, "wretr") == 0)
		s->wretr = parse_u64(value);
	else if (strcmp(name, "wredis") == 0)
		s->wredis = parse_u64(value);
	else if (strcmp(name, "rtime") == 0)
		s->rtime_ms = (double)parse_u64(value);
	else if (strcmp(name, "status") == 0)
		snprintf(s->status, sizeof(s->status), "%s", value);
}

static void
clear_counters(struct sample_server *s)
{
	char name[SAMPLE_NAME_MAX];

	memcpy(name, s->name, sizeof(name));
	memset(s, 0, sizeof(*s));
	memcpy(s->name, name, sizeof(name));
	s->rtime_ms = -1;
}

int
sample_haproxy(const char *addr, const char *backend, struct sample_server *servers, size_t n,
               int timeout_ms, char *why, size_t why_size)
{
	char question[256], *answer, *line, *next, *colon, *value;
	char key[64], current_key[64] = "", field[64];
	struct sample_server *current = NULL;
	int is_backend_seen = 0;
	size_t i;

	if (strlen(backend) == 0 || strlen(backend) > 127 || strpbrk(backend, " \t\r\n;") != NULL) {
		snprintf(why, why_size, "bad backend name '%.127s'", backend);
		return -1;
	}
	for (i = 0; i < n; i++)
		clear_counters(&servers[i]);
	snprintf(question, sizeof(question), "show stat %s 4 -1 typed\n", backend);
	answer = haproxy_socket_ask(addr, question, timeout_ms, ANSWER_MAX, why, why_size);
	if (answer == NULL)
		return -1;
	for (line = answer; line != NULL && *line != '\0'; line = next) {
		unsigned type_id = 0, proxy_id = 0, server_id = 0, pos = 0;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		/* S.<proxy>.<server>.<pos>.<name>.<process>:<tags>:<type>:<value> */
		if (line[0] != 'S' || (colon = strchr(line, ':')) == NULL)
			continue;
		*colon = '\0';
		if (sscanf(line, "S.%u.%u.%u.%63[a-z0-9_]", &proxy_id, &server_id, &pos, field) !=
		    4)
			continue;
		(void)type_id;
		value = strchr(colon + 1, ':');
		value = value != NULL ? strchr(value + 1, ':') : NULL;
		if (value == NULL)
			continue;
		value++;
		snprintf(key, sizeof(key), "%u.%u", proxy_id, server_id);
		if (strcmp(field, "pxname") == 0) {
			is_backend_seen |= strcmp(value, backend) == 0;
			continue;
		}
		if (strcmp(field, "svname") == 0) {
			current = NULL;
			snprintf(current_key, sizeof(current_key), "%s", key);
			for (i = 0; i < n; i++)
				if (strcmp(servers[i].name, value) == 0) {
					current = &servers[i];
					current->is_found = 1;
				}
			continue;
		}
		if (current != NULL && strcmp(key, current_key) == 0)
			set_field(current, field, value);
	}
	free(answer);
	if (!is_backend_seen) {
		snprintf(why, why_size, "HAProxy at %s has no backend %s", addr, backend);
		return -1;
	}
	return 0;
}

static uint64_t
answers(const struct sample_server *s)
{
	uint64_t sum = 0;
	int i;

	if (s->requests > 0)
		return s->requests;
	for (i = 0; i < 6; i++)
		sum += s->hrsp[i];
	return sum;
}

void
sample_delta(const struct sample_server *before, const struct sample_server *after,
             struct sample_change *out)
{
	uint64_t a0 = answers(before), a1 = answers(after);
	double d, mean;
	int i;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < 6; i++)
		out->is_reset |= after->hrsp[i] < before->hrsp[i];
	out->is_reset |= a1 < a0 || after->econ < before->econ || after->eresp < before->eresp ||
	                 after->requests < before->requests ||
	                 after->timed_total < before->timed_total || after->is_discontinuous;
	if (out->is_reset || !before->is_found || !after->is_found)
		return;
	out->answered = a1 - a0;
	out->responses =
	    out->answered + (after->econ - before->econ) + (after->eresp - before->eresp);
	out->errors = (after->hrsp[4] - before->hrsp[4]) + (after->econ - before->econ) +
	              (after->eresp - before->eresp);
	if (out->errors > out->responses)
		out->errors = out->responses;
	if (after->timed_total > before->timed_total) { /* Varnish: each time logged */
		out->latency_ms_sum = after->latency_ms_total - before->latency_ms_total;
		out->timed = after->timed_total - before->timed_total;
		return;
	}
	if (before->rtime_ms < 0 || after->rtime_ms < 0 || out->answered == 0)
		return;
	d = pow(1.0 - 1.0 / SAMPLE_HAPROXY_RTIME_SAMPLES, (double)out->answered);
	mean = (after->rtime_ms - before->rtime_ms * d) / (1.0 - d);
	out->latency_ms_sum = (mean > 0 ? mean : 0) * (double)out->answered;
	out->timed = out->answered;
}
