/*
 * fuzz_lbconfig.c - the load balancer configuration generators with
 * arbitrary options, node names and addresses.
 *
 * The daemon only ever hands the generators valid names and addresses,
 * but the options come from the command line, and the generators must
 * check rather than trust. Input: byte 0 picks the kind and the switches
 * (see below); then strings separated by NUL bytes (so that a string
 * may hold a newline): cluster, mount, probe URL, listen, daemon host,
 * agent host (an empty one keeps the default), then names and addresses
 * in turn. Properties, besides "no crash, no leak, no UB":
 *  - an error is a 400 or 409 with a sentence;
 *  - a configuration is printable ASCII and newlines, and holds exactly
 *    one server (backend for Varnish) line per node and one of each
 *    section: nothing from the input broke out of its line.
 */
#include "../../src/lb/lbconfig.h"
#include "fuzz_util.h"

#define MAX_LINES 40
#define OPTION_LINES 6

static size_t
count_lines_starting(const char *text, const char *prefix)
{
	size_t n = 0, len = strlen(prefix);
	const char *line = text;

	while (line != NULL && *line != '\0') {
		if (strncmp(line, prefix, len) == 0)
			n++;
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return n;
}

static void
check_text(enum lb_kind kind, const char *text, size_t n_nodes)
{
	const char *p;

	for (p = text; *p != '\0'; p++)
		FUZZ_ASSERT(*p == '\n' || (*p >= ' ' && *p <= '~'));
	switch (kind) {
	case LB_VARNISH:
		FUZZ_ASSERT(count_lines_starting(text, "backend ") == n_nodes);
		FUZZ_ASSERT(count_lines_starting(text, "vcl ") == 1);
		FUZZ_ASSERT(count_lines_starting(text, "sub ") == 3);
		FUZZ_ASSERT(count_lines_starting(text, "    .host") == n_nodes);
		break;
	case LB_HAPROXY:
		FUZZ_ASSERT(count_lines_starting(text, "    server ") == n_nodes);
		FUZZ_ASSERT(count_lines_starting(text, "global") == 1);
		FUZZ_ASSERT(count_lines_starting(text, "frontend ") == 1);
		FUZZ_ASSERT(count_lines_starting(text, "backend ") == 1);
		FUZZ_ASSERT(count_lines_starting(text, "    default-server ") == 1);
		FUZZ_ASSERT(count_lines_starting(text, "    http-check send ") == 1);
		break;
	case LB_NGINX:
		FUZZ_ASSERT(count_lines_starting(text, "    server ") == n_nodes);
		FUZZ_ASSERT(count_lines_starting(text, "upstream ") == 1);
		FUZZ_ASSERT(count_lines_starting(text, "server ") == 1);
		FUZZ_ASSERT(count_lines_starting(text, "    listen ") == 1);
		break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum node_status statuses[] = {NODE_ONLINE, NODE_OFFLINE, NODE_DRAIN};
	char *lines[MAX_LINES], *text;
	struct lb_node nodes[MAX_LINES / 2];
	struct lb_options o;
	struct error err;
	enum lb_kind kind;
	size_t n, n_nodes = 0, i;
	uint8_t flags;

	if (size < 1)
		return 0;
	flags = data[0];
	n = fuzz_split_lines(data + 1, size - 1, '\0', lines, MAX_LINES);
	lbconfig_defaults(&o);
	kind = flags % 3 == 0 ? LB_VARNISH : flags % 3 == 1 ? LB_HAPROXY : LB_NGINX;
	o.probe_via = (flags & 4) ? LB_PROBE_VIA_DAEMON : LB_PROBE_VIA_NODE;
	o.daemon_host = "127.0.0.1";
	o.daemon_port = 8080;
	if (flags & 8) {
		o.agent_host = "127.0.0.1";
		o.agent_port = 8081;
	}
	o.fall = 1 + ((flags >> 4) & 3);
	o.rise = 1 + (flags >> 6);
	if (n > 0 && *lines[0])
		o.cluster = lines[0];
	if (n > 1 && *lines[1])
		o.mount = lines[1];
	if (n > 2 && *lines[2])
		o.probe_url = lines[2];
	if (n > 3 && *lines[3])
		o.listen = lines[3];
	if (n > 4 && *lines[4])
		o.daemon_host = lines[4];
	if (n > 5 && *lines[5] && o.agent_port != 0)
		o.agent_host = lines[5];
	for (i = OPTION_LINES; i + 1 < n; i += 2) {
		nodes[n_nodes].name = lines[i];
		nodes[n_nodes].address = lines[i + 1];
		nodes[n_nodes].status = statuses[n_nodes % 3];
		n_nodes++;
	}
	error_clear(&err);
	text = lbconfig_generate(kind, &o, nodes, n_nodes, &err);
	if (text == NULL) {
		FUZZ_ASSERT((err.status == 400 || err.status == 409) && err.what[0] != '\0');
	} else {
		check_text(kind, text, n_nodes);
		free(text);
	}
	free(lines[0]);
	return 0;
}
