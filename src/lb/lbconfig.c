/*
 * lbconfig.c - the Varnish, HAProxy and nginx configuration generators.
 *
 * Everything given is checked first (check_options, check_nodes), then
 * the configuration is written into a memory stream, so a generator
 * either returns a whole configuration or an error, never half of one.
 *
 * Names: a node name becomes a HAProxy server name unchanged (the node
 * name rule is a subset of what HAProxy allows), which lets one backend
 * probe a different URL per server with %[srv_name]. VCL identifiers
 * cannot hold '.', so Varnish backends are named "node_" + the name with
 * '_' written "__" and '.' written "_d": readable for the usual names and
 * never the same for two different nodes.
 *
 * Nothing user-controlled but names (node name rule), addresses
 * (node_address_is_valid) and the checked probe URL reaches the output:
 * reasons and other free text could break out of a comment or a string.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/timefmt.h"
#include "../util/url.h"
#include "lbconfig.h"

#define PROBE_URL_DEFAULT "{mount}?node={node}"
#define PROBE_URL_MAX 512
#define COUNT_MAX 32
#define TIMEOUT_MAX_MS (60 * 1000)
#define INTERVAL_MAX_MS (3600 * 1000)
/* HAProxy's http-check expect: what the daemon answers for a node that
 * may take requests. With an agent, a draining node passes the check so
 * that the agent's "drain" decides (HAProxy DRAIN, not DOWN). */
#define HAPROXY_EXPECT_BODY_DRAIN "\"^(OK|node is draining)\""

void
lbconfig_defaults(struct lb_options *o)
{
	memset(o, 0, sizeof(*o));
	o->cluster = DEFAULT_CLUSTER;
	o->mount = DEFAULT_MOUNT;
	o->probe_url = PROBE_URL_DEFAULT;
	o->probe_via = LB_PROBE_VIA_NODE;
	o->listen = "80";
	o->interval_ms = 1000;
	o->timeout_ms = 500;
	o->fall = 2;
	o->rise = 2;
}

int
lb_kind_from_string(const char *s, enum lb_kind *out)
{
	if (strcmp(s, "varnish") == 0)
		*out = LB_VARNISH;
	else if (strcmp(s, "haproxy") == 0)
		*out = LB_HAPROXY;
	else if (strcmp(s, "nginx") == 0)
		*out = LB_NGINX;
	else
		return -1;
	return 0;
}

/* --- checking the input ----------------------------------------------- */

/* The probe URL template: a path and query (starting with '/' or
 * "{mount}") of printable ASCII without
 * the characters that are special in a VCL string, a HAProxy log-format
 * or a config line ('"', '\\', '%', '#', spaces), and without '{' '}'
 * outside the known placeholders. */
static int
probe_url_is_valid(const char *s)
{
	static const char *const placeholders[] = {"{mount}", "{node}", "{cluster}"};
	size_t i;

	if ((s[0] != '/' && strncmp(s, "{mount}", 7) != 0) || strlen(s) > PROBE_URL_MAX)
		return 0;
	while (*s != '\0') {
		if (*s == '{') {
			for (i = 0; i < 3; i++)
				if (strncmp(s, placeholders[i], strlen(placeholders[i])) == 0)
					break;
			if (i == 3)
				return 0;
			s += strlen(placeholders[i]);
			continue;
		}
		if (*s <= ' ' || *s >= 0x7f || strchr("\"\\%#}'`;", *s) != NULL)
			return 0;
		s++;
	}
	return 1;
}

/* "port", "*:port" or a node address ("host:port", "[v6]:port"). */
static int
listen_is_valid(const char *s)
{
	const char *port = s;
	char *end;
	long n;

	if (strncmp(s, "*:", 2) == 0)
		port = s + 2;
	else if (strchr(s, ':') != NULL)
		return node_address_is_valid(s);
	n = strtol(port, &end, 10);
	return port[0] >= '0' && port[0] <= '9' && *end == '\0' && n > 0 && n <= 65535;
}

/* A daemon or agent host: a name, an IPv4 or a bare IPv6 address, by the
 * node address rule, since it is written into the configuration as it is. */
static int
lb_host_is_valid(const char *host)
{
	char address[300];
	int n;

	if (host == NULL)
		return 0;
	if (strchr(host, ':') != NULL)
		n = snprintf(address, sizeof(address), "[%s]:1", host);
	else
		n = snprintf(address, sizeof(address), "%s:1", host);
	return n > 0 && (size_t)n < sizeof(address) && node_address_is_valid(address);
}

static int
check_options(enum lb_kind kind, const struct lb_options *o, struct error *err)
{
	if (!cluster_name_is_valid(o->cluster) || !mount_path_is_valid(o->mount))
		return error_set(err, 400, "invalid cluster name or mount path");
	if (o->lb != NULL && !node_name_is_valid(o->lb, strlen(o->lb)))
		return error_set(
		    err, 400,
		    "invalid load balancer name '%s': 1-64 characters of A-Z a-z 0-9 . _ -", o->lb);
	if (!probe_url_is_valid(o->probe_url))
		return error_set(err, 400,
		                 "invalid probe URL '%s': a path starting with '/', printable "
		                 "ASCII without spaces, quotes, '%%', '#', and only the "
		                 "placeholders {mount}, {node} and {cluster}",
		                 o->probe_url);
	if (!listen_is_valid(o->listen))
		return error_set(err, 400,
		                 "invalid listen address '%s': give PORT, *:PORT or HOST:PORT",
		                 o->listen);
	if (o->interval_ms < 10 || o->interval_ms > INTERVAL_MAX_MS)
		return error_set(err, 400, "the probe interval must be between 10 ms and 1 h");
	if (o->timeout_ms < 10 || o->timeout_ms > TIMEOUT_MAX_MS)
		return error_set(err, 400, "the probe timeout must be between 10 ms and 60 s");
	if (o->fall < 1 || o->fall > COUNT_MAX || o->rise < 1 || o->rise > COUNT_MAX)
		return error_set(err, 400, "fall and rise must be between 1 and %d", COUNT_MAX);
	if (kind == LB_VARNISH && o->probe_via == LB_PROBE_VIA_DAEMON)
		return error_set(err, 400,
		                 "Varnish probes each backend at its own address, so its probes "
		                 "cannot go to the daemon directly: pass {mount} through each "
		                 "node's front server to clustermgmt (probes via the node)");
	if (o->probe_via == LB_PROBE_VIA_DAEMON &&
	    (!lb_host_is_valid(o->daemon_host) || o->daemon_port < 1 || o->daemon_port > 65535))
		return error_set(err, 400,
		                 "probes via the daemon need its host (a name or an IP address) "
		                 "and a port 1-65535");
	if (o->agent_port != 0 &&
	    (!lb_host_is_valid(o->agent_host) || o->agent_port < 1 || o->agent_port > 65535))
		return error_set(err, 400,
		                 "the agent needs a host (a name or an IP address) and a port "
		                 "1-65535");
	return 0;
}

static int
check_nodes(const struct lb_options *o, const struct lb_node *nodes, size_t n, struct error *err)
{
	size_t i;

	if (n == 0)
		return error_set(err, 409, "cluster '%s' has no nodes", o->cluster);
	for (i = 0; i < n; i++) {
		if (!node_name_is_valid(nodes[i].name, strlen(nodes[i].name)))
			return error_set_entry(err, 409, nodes[i].name, "invalid node name '%s'",
			                       nodes[i].name);
		if (nodes[i].address == NULL || nodes[i].address[0] == '\0')
			return error_set_entry(
			    err, 409, nodes[i].name,
			    "node '%s' has no address; set it with `clustermgmt nodes add %s "
			    "--address HOST:PORT`",
			    nodes[i].name, nodes[i].name);
		if (!node_address_is_valid(nodes[i].address))
			return error_set_entry(err, 409, nodes[i].name,
			                       "node '%s' has an invalid address '%s'",
			                       nodes[i].name, nodes[i].address);
	}
	return 0;
}

/* --- writing helpers -------------------------------------------------- */

/* Writes the probe URL for one node; node NULL writes HAProxy's
 * per-server %[srv_name] instead of a name. */
static void
write_probe_url(FILE *f, const struct lb_options *o, const char *node)
{
	const char *s = o->probe_url;

	while (*s != '\0') {
		if (strncmp(s, "{mount}", 7) == 0) {
			fputs(o->mount, f);
			s += 7;
		} else if (strncmp(s, "{node}", 6) == 0) {
			fputs(node != NULL ? node : "%[srv_name]", f);
			s += 6;
		} else if (strncmp(s, "{cluster}", 9) == 0) {
			fputs(o->cluster, f);
			s += 9;
		} else
			fputc(*s++, f);
	}
	if (o->lb != NULL)
		fprintf(f, "%clb=%s", strchr(o->probe_url, '?') != NULL ? '&' : '?', o->lb);
}

/* The VCL identifier of a node or cluster (see the top comment). */
static void
write_vcl_name(FILE *f, const char *prefix, const char *name)
{
	fputs(prefix, f);
	for (; *name != '\0'; name++) {
		if (*name == '_')
			fputs("__", f);
		else if (*name == '.')
			fputs("_d", f);
		else
			fputc(*name, f);
	}
}

static void
write_header(FILE *f, const char *comment, const char *what, const struct lb_options *o)
{
	fprintf(f, "%s Generated by `clustermgmt lbconfig %s` for cluster \"%s\", probed at %s.\n",
	        comment, what, o->cluster, o->mount);
	if (o->lb != NULL && strcmp(what, "nginx") == 0)
		fprintf(f, "%s This load balancer is \"%s\" (it sends no probes to say so).\n",
		        comment, o->lb);
	else if (o->lb != NULL)
		fprintf(f,
		        "%s This load balancer is \"%s\": its probes say so (lb=%s), so that\n"
		        "%s clustermgmt knows which load balancer sent each one.\n",
		        comment, o->lb, o->lb, comment);
	fprintf(f,
	        "%s Regenerate it when nodes or addresses change; status changes need no\n"
	        "%s reload. See docs/LOADBALANCERS.md.\n",
	        comment, comment);
}

/* --- Varnish ------------------------------------------------------------ */

static void
write_varnish(FILE *f, const struct lb_options *o, const struct lb_node *nodes, size_t n)
{
	char host[256], interval[32], timeout[32];
	int port, is_v6;
	size_t i;

	write_header(f, "#", "varnish", o);
	fprintf(f,
	        "#\n"
	        "# Each backend's probe asks clustermgmt whether the node is in service.\n"
	        "# Varnish sends a probe to the backend's own address, so each node's\n"
	        "# front server must pass %s to clustermgmt (proxy_pass in nginx), as\n"
	        "# the original application servers answered the probe themselves. A\n"
	        "# node is out after %d failed probes in a row (.window %d, .threshold %d)\n"
	        "# and back after %d good ones. Run: varnishd -a %s%s -f THIS_FILE ...\n"
	        "vcl 4.1;\n\n"
	        "import directors;\n",
	        o->mount, o->fall, o->rise + o->fall - 1, o->rise, o->rise,
	        strchr(o->listen, ':') == NULL ? ":" : "",
	        strncmp(o->listen, "*:", 2) == 0 ? o->listen + 1 : o->listen);
	for (i = 0; i < n; i++) {
		hostport_split(nodes[i].address, host, sizeof(host), &port, &is_v6); /* checked */
		fputs("\nbackend ", f);
		write_vcl_name(f, "node_", nodes[i].name);
		fprintf(f,
		        " {\n"
		        "    .host = \"%s\";\n"
		        "    .port = \"%d\";\n"
		        "    .probe = {\n"
		        "        .request = \"GET ",
		        host, port);
		write_probe_url(f, o, nodes[i].name);
		fprintf(f,
		        " HTTP/1.1\"\n"
		        "            \"Host: %s\"\n"
		        "            \"User-Agent: Varnish probe\"\n"
		        "            \"Connection: close\";\n"
		        "        .expected_response = 200;\n"
		        "        .interval = %s;\n"
		        "        .timeout = %s;\n"
		        "        .window = %d;\n"
		        "        .threshold = %d;\n"
		        "        .initial = %d;\n"
		        "    }\n"
		        "}\n",
		        nodes[i].address,
		        duration_format_config(o->interval_ms, interval, sizeof(interval)),
		        duration_format_config(o->timeout_ms, timeout, sizeof(timeout)),
		        o->rise + o->fall - 1, o->rise, o->rise - 1);
	}
	fputs("\nsub vcl_init {\n    new ", f);
	write_vcl_name(f, "cluster_", o->cluster);
	fputs(" = directors.round_robin();\n", f);
	for (i = 0; i < n; i++) {
		fputs("    ", f);
		write_vcl_name(f, "cluster_", o->cluster);
		fputs(".add_backend(", f);
		write_vcl_name(f, "node_", nodes[i].name);
		fputs(");\n", f);
	}
	fputs("}\n\nsub vcl_recv {\n    set req.backend_hint = ", f);
	write_vcl_name(f, "cluster_", o->cluster);
	fputs(".backend();\n}\n", f);
	fputs("\n"
	      "# A node that stopped between two probes: retry an idempotent request on\n"
	      "# the next node instead of failing it.\n"
	      "sub vcl_backend_error {\n"
	      "    if (bereq.retries < 2 && (bereq.method == \"GET\" || bereq.method == \"HEAD\")) "
	      "{\n"
	      "        return (retry);\n"
	      "    }\n"
	      "}\n",
	      f);
}

/* --- HAProxy ------------------------------------------------------------ */

static void
write_haproxy_check(FILE *f, const struct lb_options *o)
{
	fputs("    option httpchk\n    http-check send meth GET uri-lf ", f);
	write_probe_url(f, o, NULL);
	fputs(" ver HTTP/1.0 hdr User-Agent HAProxy-check\n", f);
	if (o->agent_port != 0) {
		fputs("    http-check expect rstatus ^(200|503)$\n", f);
		fputs("    http-check expect rstring " HAPROXY_EXPECT_BODY_DRAIN "\n", f);
	} else
		fputs("    http-check expect status 200\n", f);
}

static void
write_haproxy(FILE *f, const struct lb_options *o, const struct lb_node *nodes, size_t n)
{
	char interval[32], timeout[32];
	size_t i;

	duration_format_config(o->interval_ms, interval, sizeof(interval));
	duration_format_config(o->timeout_ms, timeout, sizeof(timeout));
	write_header(f, "#", "haproxy", o);
	fputs("#\n# Needs HAProxy 2.2 or later. Each server is checked with\n#   GET ", f);
	write_probe_url(f, o, "NAME");
	fputs("\n# (%[srv_name] below: the server names are the node names)", f);
	if (o->probe_via == LB_PROBE_VIA_DAEMON)
		fprintf(f, ",\n# sent straight to clustermgmt at %s:%d (addr, port).\n",
		        o->daemon_host, o->daemon_port);
	else
		fprintf(f,
		        ",\n# sent to the server's own address: its front server must pass %s\n"
		        "# through to clustermgmt.\n",
		        o->mount);
	fprintf(f,
	        "# A server is out after %d failed checks in a row (inter %s) and back\n"
	        "# after %d good ones.\n",
	        o->fall, interval, o->rise);
	if (o->agent_port != 0)
		fprintf(f,
		        "# The agent-check asks `clustermgmt serve --agent-listen %s:%d` for\n"
		        "# the node's administrative state: online -> ready, drain -> drain\n"
		        "# (no new sessions, existing and sticky ones finish), offline -> maint.\n"
		        "# The HTTP check therefore accepts \"node is draining\"; without an\n"
		        "# agent, use --agent none and drain counts as down.\n",
		        o->agent_host, o->agent_port);
	fputs("\nglobal\n"
	      "    # add your usual settings: log, user/group, stats socket, maxconn\n"
	      "    # (by default derived from the file descriptor limit), ...\n"
	      "\ndefaults\n"
	      "    mode http\n"
	      "    timeout connect 2s\n"
	      "    timeout client 30s\n"
	      "    timeout server 30s\n"
	      "    timeout http-request 10s\n",
	      f);
	fputs("\nfrontend ", f);
	fprintf(f, "fe_%s\n    bind %s%s\n    default_backend be_%s\n", o->cluster,
	        strchr(o->listen, ':') == NULL ? ":" : "", o->listen, o->cluster);
	fprintf(f,
	        "\nbackend be_%s\n"
	        "    balance roundrobin\n"
	        "    # a request whose connection fails is retried on another server\n"
	        "    retries 3\n"
	        "    option redispatch 1\n"
	        "    # and so is a GET or HEAD that a node stopping cut before it answered\n"
	        "    retry-on conn-failure empty-response\n"
	        "    http-request disable-l7-retry unless METH_GET || METH_HEAD\n"
	        "    timeout check %s\n",
	        o->cluster, timeout);
	write_haproxy_check(f, o);
	fprintf(f, "    default-server check inter %s fall %d rise %d", interval, o->fall, o->rise);
	if (o->probe_via == LB_PROBE_VIA_DAEMON)
		fprintf(f, " addr %s port %d", o->daemon_host, o->daemon_port);
	if (o->agent_port != 0)
		fprintf(f, " agent-check agent-addr %s agent-port %d agent-inter %s", o->agent_host,
		        o->agent_port, interval);
	fputc('\n', f);
	for (i = 0; i < n; i++) {
		fprintf(f, "    server %s %s", nodes[i].name, nodes[i].address);
		if (o->agent_port != 0)
			fprintf(f, " agent-send \"%s/%s%s%s\\n\"", o->cluster, nodes[i].name,
			        o->lb != NULL ? " lb=" : "", o->lb != NULL ? o->lb : "");
		fputc('\n', f);
	}
}

/* --- nginx -------------------------------------------------------------- */

static void
write_nginx(FILE *f, const struct lb_options *o, const struct lb_node *nodes, size_t n)
{
	size_t i;

	write_header(f, "#", "nginx", o);
	fprintf(f, "#\n"
	           "# Open-source nginx has no active health checks (health_check is NGINX\n"
	           "# Plus only): it never asks clustermgmt. It can still be used:\n"
	           "# - Nodes that were not online when this file was generated are marked\n"
	           "#   `down`. Regenerate and reload on every change, e.g.\n"
	           "#     clustermgmt lbconfig nginx > new.conf && ! cmp -s new.conf THIS_FILE &&\n"
	           "#       mv new.conf THIS_FILE && nginx -s reload\n"
	           "#   from a loop or after `clustermgmt offline|online`. A reload lets\n"
	           "#   running requests finish, so it drains.\n"
	           "# - max_fails/fail_timeout take a node whose application stopped out\n"
	           "#   after a failed attempt, and proxy_next_upstream retries that request\n"
	           "#   on another node, so clients do not see the failure.\n"
	           "# - nginx sends no probes, so `clustermgmt wait` sees no prober for it:\n"
	           "#   give wait --no-probers-delay the time your reload takes.\n"
	           "# This file goes into nginx's http block (e.g. conf.d/).\n");
	fprintf(f, "\nupstream cluster_%s {\n", o->cluster);
	for (i = 0; i < n; i++) {
		fprintf(f, "    server %s", nodes[i].address);
		if (nodes[i].status != NODE_ONLINE)
			fprintf(f, " down; # %s: %s\n", nodes[i].name,
			        node_status_name(nodes[i].status));
		else
			fprintf(f, " max_fails=1 fail_timeout=10s; # %s\n", nodes[i].name);
	}
	fputs("}\n", f);
	fprintf(f,
	        "\nserver {\n"
	        "    listen %s;\n"
	        "    location / {\n"
	        "        proxy_pass http://cluster_%s;\n"
	        "        proxy_http_version 1.1;\n"
	        "        proxy_set_header Connection \"\";\n"
	        "        proxy_set_header Host $host;\n"
	        "        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
	        "        proxy_next_upstream error timeout http_502 http_503;\n"
	        "        proxy_connect_timeout 2s;\n"
	        "    }\n"
	        "}\n",
	        strncmp(o->listen, "*:", 2) == 0 ? o->listen + 2 : o->listen, o->cluster);
}

/* --- entry point -------------------------------------------------------- */

char *
lbconfig_generate(enum lb_kind kind, const struct lb_options *o, const struct lb_node *nodes,
                  size_t n, struct error *err)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	if (check_options(kind, o, err) < 0 || check_nodes(o, nodes, n, err) < 0)
		return NULL;
	if ((f = open_memstream(&text, &len)) == NULL)
		goto bad;
	switch (kind) {
	case LB_VARNISH:
		write_varnish(f, o, nodes, n);
		break;
	case LB_HAPROXY:
		write_haproxy(f, o, nodes, n);
		break;
	case LB_NGINX:
		write_nginx(f, o, nodes, n);
		break;
	}
	if (ferror(f)) {
		fclose(f);
		goto bad;
	}
	if (fclose(f) != 0)
		goto bad;
	return text;
bad:
	free(text);
	error_set(err, 500, "out of memory");
	return NULL;
}
