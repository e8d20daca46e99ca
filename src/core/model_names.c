/*
 * model_names.c - the rules for names and values the model accepts: node,
 * cluster and load balancer names, mount paths, node addresses and check
 * URLs, and the names of statuses and roles.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "../util/url.h"
#include "model_internal.h"

#define ADDRESS_MAX 255
#define CHECK_URL_MAX 2048

/* --- names and enums -------------------------------------------------- */

int
model_is_name_char(unsigned char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

int
node_name_is_valid(const char *s, size_t len)
{
	size_t i;

	if (s == NULL || len == 0 || len > NODE_NAME_MAX)
		return 0;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (i = 0; i < len; i++)
		if (!model_is_name_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* The node name rule for a NUL-terminated string of any length. */
int
model_name_is_valid(const char *s)
{
	return s != NULL && node_name_is_valid(s, strnlen(s, NODE_NAME_MAX + 1));
}

int
cluster_name_is_valid(const char *s)
{
	return model_name_is_valid(s);
}

static int
path_segment_is_valid(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
		return 0;
	for (i = 0; i < len; i++)
		if (!model_is_name_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* "/v1" and everything below it belong to the JSON API, "/metrics" to
 * Prometheus. */
static int
path_is_reserved(const char *s)
{
	return (strncmp(s, "/v1", 3) == 0 && (s[3] == '\0' || s[3] == '/')) ||
	       strcmp(s, "/metrics") == 0;
}

int
mount_path_is_valid(const char *s)
{
	const char *seg, *end;
	size_t len;

	if (s == NULL || s[0] != '/')
		return 0;
	len = strnlen(s, CLUSTER_PATH_MAX + 1);
	if (len < 2 || len > CLUSTER_PATH_MAX || path_is_reserved(s))
		return 0;
	for (seg = s + 1;; seg = end + 1) {
		end = strchr(seg, '/');
		if (end == NULL)
			end = s + len;
		if (!path_segment_is_valid(seg, (size_t)(end - seg)))
			return 0;
		if (*end == '\0')
			return 1;
	}
}

/* True when inner is a mount path strictly below outer ("/a/b" below "/a"). */
int
model_path_is_below(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	return strncmp(inner, outer, n) == 0 && inner[n] == '/';
}

/* A host name, an IPv4 address, or (is_v6: it was in brackets) an IPv6
 * address; s is NUL-terminated at len. */
static int
host_is_valid(const char *s, size_t len, int is_v6)
{
	unsigned char buf[sizeof(struct in6_addr)];
	size_t i, label = 0;

	if (is_v6)
		return inet_pton(AF_INET6, s, buf) == 1;
	/* a host name (RFC 1123; an IPv4 address is one too): dot-separated
	 * labels of 1-63 letters, digits, '-' or '_', not starting or ending
	 * with '-' */
	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (label == 0 || label > 63 || s[i - label] == '-' || s[i - 1] == '-')
				return 0;
			label = 0;
		} else if (isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_') {
			label++;
		} else {
			return 0;
		}
	}
	return 1;
}

int
node_address_is_valid(const char *s)
{
	char host[ADDRESS_MAX + 1];
	int port, is_v6;

	if (s == NULL || strnlen(s, ADDRESS_MAX + 1) > ADDRESS_MAX ||
	    hostport_split(s, host, sizeof(host), &port, &is_v6) != 0)
		return 0;
	return port >= 1 && host_is_valid(host, strlen(host), is_v6);
}

int
node_check_is_valid(const char *s)
{
	size_t i, len, skip;

	if (s == NULL)
		return 0;
	if (strncmp(s, "http://", 7) == 0)
		skip = 7;
	else if (strncmp(s, "https://", 8) == 0)
		skip = 8;
	else
		return 0;
	len = strnlen(s, CHECK_URL_MAX + 1);
	if (len <= skip || len > CHECK_URL_MAX)
		return 0;
	for (i = skip; i < len; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* Names of the enums, indexed by value. */
static const char *const status_names[] = {"online", "offline", "drain"};
static const char *const role_names[] = {"anonymous", "viewer", "operator", "admin"};

/* The index of s in names[first..n), or -1. */
static int
name_index(const char *const *names, int first, int n, const char *s)
{
	int i;

	for (i = first; s != NULL && i < n; i++)
		if (strcmp(names[i], s) == 0)
			return i;
	return -1;
}

const char *
node_status_name(enum node_status s)
{
	return (unsigned)s < 3 ? status_names[s] : "unknown";
}

int
node_status_from_string(const char *s, enum node_status *out)
{
	int i = name_index(status_names, 0, 3, s);

	if (i < 0)
		return -1;
	*out = (enum node_status)i;
	return 0;
}

const char *
role_name(enum role r)
{
	return (unsigned)r < 4 ? role_names[r] : "unknown";
}

/* "anonymous" (ROLE_NONE) is not a role anyone can be given. */
int
role_from_string(const char *s, enum role *out)
{
	int i = name_index(role_names, ROLE_VIEWER, 4, s);

	if (i < 0)
		return -1;
	*out = (enum role)i;
	return 0;
}

int
model_status_is_valid(enum node_status s)
{
	return s == NODE_ONLINE || s == NODE_OFFLINE || s == NODE_DRAIN;
}

int
model_role_is_valid(enum role r)
{
	return r == ROLE_VIEWER || r == ROLE_OPERATOR || r == ROLE_ADMIN;
}
