/*
 * cmd_lbconfig.c - `lbconfig varnish|haproxy|nginx`: prints a complete
 * load balancer configuration for the cluster's nodes.
 *
 * The text comes from the pure generators in src/lb/lbconfig.c; this
 * file only gathers their input: the node list and the cluster's mount
 * path from the daemon, and where the load balancer reaches the daemon.
 * That address is not always the one the CLI uses (the CLI may talk to
 * 127.0.0.1 on the daemon's host), so --agent and --probe-via take an
 * explicit HOST:PORT and default to the host of --server.
 *
 * A cluster the configuration cannot be written for (no nodes, a node
 * without an address) exits 1, like a refusal by the server: the command
 * line was right, the cluster is not ready. Bad option values exit 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli_internal.h"
#include "lb/lbconfig.h"
#include "util/timefmt.h"
#include "util/url.h"
#include "util/xalloc.h"

#define AGENT_PORT_DEFAULT 8081 /* by convention: HTTP on 8080, agent on 8081 */
#define HOST_MAX 256

static const char usage[] =
    "lbconfig varnish|haproxy|nginx [--lb NAME] [--interval D] [--timeout D] [--fall K] [--rise K] "
    "[--agent HOST:PORT|none] [--probe-via node|daemon|HOST:PORT] [--probe-url URL] "
    "[--listen ADDR]";

/* Where the load balancer reaches the daemon, as far as the CLI knows it:
 * the host (IPv6 without brackets, as HAProxy's addr and agent-addr want
 * it) and port of --server. */
struct daemon_address {
	char host[HOST_MAX];
	int port;
};

/* Copies host[0..len) into dst, without the brackets of an IPv6 address. */
static void
copy_host(char *dst, size_t size, const char *host, size_t len)
{
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	snprintf(dst, size, "%.*s", (int)len, host);
}

static int
parse_server_url(const char *url, struct daemon_address *d, struct error *err)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;
	int rc = -1;

	if (u == NULL)
		abort(); /* out of memory */
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
	    strlen(host) >= sizeof(d->host)) {
		cli_usage_error(err, "cannot take the daemon's host and port from --server '%s'",
		                url);
		goto done;
	}
	copy_host(d->host, sizeof(d->host), host, strlen(host));
	d->port = atoi(port);
	rc = 0;
done:
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return rc;
}

static int
parse_duration_ms(const char *s, const char *option, int *out, struct error *err)
{
	int64_t ms;

	if (duration_parse(s, 1, 24 * 3600 * 1000, &ms) != 0)
		return cli_usage_error(err, "bad --%s '%s': give a duration like 500ms, 1s or 2",
		                       option, s);
	*out = (int)ms;
	return 0;
}

static int
parse_count(const char *s, const char *option, int *out, struct error *err)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || n < 1 || n > 1000)
		return cli_usage_error(err, "bad --%s '%s': give a whole number from 1", option, s);
	*out = (int)n;
	return 0;
}

/* "HOST:PORT" or "PORT" (on the --server host) into host (the caller's
 * buffer, HOST_MAX bytes) and port. */
static int
parse_host_port(const char *s, const char *option, const struct daemon_address *d, char *host,
                int *port, struct error *err)
{
	char with_host[HOST_MAX + 16];
	const char *text = s;
	int is_v6;

	if (strchr(s, ':') == NULL) { /* PORT alone: on the --server host */
		snprintf(with_host, sizeof(with_host), "[%s]:%.7s", d->host, s);
		text = with_host;
	}
	if (hostport_split(text, host, HOST_MAX, port, &is_v6) != 0 || host[0] == '\0' ||
	    *port == 0)
		return cli_usage_error(err, "bad --%s '%s': give HOST:PORT or PORT", option, s);
	return 0;
}

/* Fills o from the command line; the strings point into cli and the
 * caller's host buffers. */
static int
options_from_cli(const struct cli *cli, enum lb_kind kind, const struct daemon_address *d,
                 struct lb_options *o, char *agent_host, char *daemon_host, struct error *err)
{
	if ((cli->interval != NULL &&
	     parse_duration_ms(cli->interval, "interval", &o->interval_ms, err) != 0) ||
	    (cli->timeout != NULL &&
	     parse_duration_ms(cli->timeout, "timeout", &o->timeout_ms, err) != 0) ||
	    (cli->fall != NULL && parse_count(cli->fall, "fall", &o->fall, err) != 0) ||
	    (cli->rise != NULL && parse_count(cli->rise, "rise", &o->rise, err) != 0))
		return CLI_USAGE;
	if (cli->probe_url != NULL)
		o->probe_url = cli->probe_url;
	o->lb = cli->lb;
	if (cli->listen != NULL)
		o->listen = cli->listen;
	if (cli->probe_via == NULL || strcmp(cli->probe_via, "node") == 0)
		o->probe_via = LB_PROBE_VIA_NODE;
	else {
		o->probe_via = LB_PROBE_VIA_DAEMON;
		o->daemon_host = daemon_host;
		if (strcmp(cli->probe_via, "daemon") == 0) {
			snprintf(daemon_host, HOST_MAX, "%s", d->host);
			o->daemon_port = d->port;
		} else if (parse_host_port(cli->probe_via, "probe-via", d, daemon_host,
		                           &o->daemon_port, err) != 0)
			return CLI_USAGE;
	}
	if (kind != LB_HAPROXY) {
		if (cli->agent != NULL)
			return cli_usage_error(err, "--agent applies to haproxy only");
		return CLI_OK;
	}
	if (cli->agent != NULL && strcmp(cli->agent, "none") == 0)
		return CLI_OK;
	o->agent_host = agent_host;
	o->agent_port = AGENT_PORT_DEFAULT;
	if (cli->agent == NULL) {
		snprintf(agent_host, HOST_MAX, "%s", d->host);
		return CLI_OK;
	}
	return parse_host_port(cli->agent, "agent", d, agent_host, &o->agent_port, err) != 0
	           ? CLI_USAGE
	           : CLI_OK;
}

/* The mount path of cluster name in GET /v1/clusters, or NULL. */
static const char *
find_mount(const json_t *clusters, const char *name)
{
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(clusters, "clusters"), i, c)
	{
		if (json_is_string(json_object_get(c, "name")) &&
		    strcmp(json_string_value(json_object_get(c, "name")), name) == 0)
			return json_string_value(json_object_get(c, "path"));
	}
	return NULL;
}

/* The nodes of a GET /v1/clusters/{c}/nodes answer; strings borrowed
 * from it. Returns a calloc'd array (n may be 0). */
static struct lb_node *
nodes_from_json(const json_t *answer, size_t *n)
{
	json_t *list = json_object_get(answer, "nodes"), *node;
	struct lb_node *nodes;
	size_t i;

	*n = json_array_size(list);
	nodes = xcalloc(*n + 1, sizeof(*nodes));
	json_array_foreach(list, i, node)
	{
		const char *name = json_string_value(json_object_get(node, "name"));
		const char *status = json_string_value(json_object_get(node, "status"));

		nodes[i].name = name != NULL ? name : "";
		nodes[i].address = json_string_value(json_object_get(node, "address"));
		/* A status this CLI does not know counts as not in service. */
		if (status == NULL || node_status_from_string(status, &nodes[i].status) < 0)
			nodes[i].status = NODE_OFFLINE;
	}
	return nodes;
}

static int
generate_and_print(enum lb_kind kind, struct lb_options *o, const json_t *clusters,
                   const json_t *node_list, struct error *err)
{
	struct lb_node *nodes;
	struct error gen_err;
	char *text;
	size_t n;

	if ((o->mount = find_mount(clusters, o->cluster)) == NULL) {
		error_set(err, 404, "cluster '%s' not found", o->cluster);
		return CLI_REFUSED;
	}
	nodes = nodes_from_json(node_list, &n);
	text = lbconfig_generate(kind, o, nodes, n, &gen_err);
	free(nodes);
	if (text == NULL) {
		*err = gen_err;
		return gen_err.status == 400 ? CLI_USAGE : CLI_REFUSED;
	}
	fputs(text, stdout);
	free(text);
	return CLI_OK;
}

int
cmd_lbconfig(struct cli *cli, int nargs, char **args, struct error *err)
{
	static const uint64_t allowed = OPT_LB | OPT_INTERVAL | OPT_TIMEOUT | OPT_FALL | OPT_RISE |
	                                OPT_AGENT | OPT_PROBE_VIA | OPT_PROBE_URL | OPT_LISTEN;
	char agent_host[HOST_MAX], daemon_host[HOST_MAX];
	struct client_reply clusters, nodes;
	struct daemon_address d;
	struct lb_options o;
	enum lb_kind kind;
	int rc;

	if ((rc = cli_only_options(cli, allowed, "lbconfig", err)) != 0 ||
	    (rc = cli_check_args(nargs, 1, 1, usage, err)) != 0)
		return rc;
	if (lb_kind_from_string(args[0], &kind) < 0)
		return cli_usage_error(
		    err, "unknown load balancer '%s': give varnish, haproxy or nginx", args[0]);
	if (cli->is_json)
		return cli_usage_error(err, "--json does not apply to 'lbconfig'");
	lbconfig_defaults(&o);
	o.cluster = cli->cluster;
	if (parse_server_url(cli->client.base_url, &d, err) != 0 ||
	    (rc = options_from_cli(cli, kind, &d, &o, agent_host, daemon_host, err)) != CLI_OK)
		return CLI_USAGE;
	if ((rc = cli_call(cli, "GET", client_path("v1", "clusters", cli->cluster, "nodes", NULL),
	                   NULL, &nodes, err)) != CLI_OK)
		return rc;
	if ((rc = cli_call(cli, "GET", client_path("v1", "clusters", NULL), NULL, &clusters,
	                   err)) != CLI_OK) {
		client_reply_free(&nodes);
		return rc;
	}
	rc = generate_and_print(kind, &o, clusters.json, nodes.json, err);
	client_reply_free(&clusters);
	client_reply_free(&nodes);
	return rc;
}
