/*
 * haproxy_socket.c - HAProxy's runtime socket (see haproxy_socket.h).
 *
 * The socket is non-blocking from the start and every wait is a poll()
 * against one deadline, so a HAProxy that accepts and never answers, or a
 * TCP address that drops the SYN, costs at most the timeout. The answer
 * grows by doubling up to the caller's bound.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "haproxy_socket.h"
#include "monotonic.h"

#define HOST_MAX 256

/* Waits until fd is ready for events, by deadline. Returns 1, or 0 with
 * why filled. */
static int
wait_ready(int fd, short events, long long deadline, char *why, size_t why_size)
{
	struct pollfd p = {.fd = fd, .events = events};
	long long left;
	int rc;

	do {
		left = deadline - monotonic_ms();
		if (left <= 0) {
			snprintf(why, why_size, "no complete answer in time");
			return 0;
		}
		rc = poll(&p, 1, (int)left);
	} while (rc < 0 && errno == EINTR);
	if (rc <= 0) {
		snprintf(why, why_size, rc == 0 ? "no complete answer in time" : "poll: %s",
		         strerror(errno));
		return 0;
	}
	return 1;
}

static int
connect_unix(const char *path, const char *addr, char *why, size_t why_size)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(why, why_size, "socket path too long: %s", addr);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto bad;
	/* a full listen queue says EAGAIN: HAProxy is not answering */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto bad;
	return fd;
bad:
	snprintf(why, why_size, "cannot connect to %s: %s", addr, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* "host:port" with family (AF_UNSPEC, AF_INET or AF_INET6); host may be
 * an IPv6 address in brackets. */
static int
connect_tcp(const char *hostport, int family, const char *addr, long long deadline, char *why,
            size_t why_size)
{
	struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM}, *res = NULL;
	char host[HOST_MAX];
	const char *colon = strrchr(hostport, ':');
	int fd = -1, rc, soerr = 0;
	socklen_t len = sizeof(soerr);

	if (colon == NULL || colon == hostport || colon[1] == '\0' ||
	    (size_t)(colon - hostport) >= sizeof(host)) {
		snprintf(why, why_size, "'%s' is neither a socket path nor HOST:PORT", addr);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hostport), hostport);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		snprintf(why, why_size, "%s: %s", addr, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS)) {
		freeaddrinfo(res);
		goto bad_errno;
	}
	freeaddrinfo(res);
	if (!wait_ready(fd, POLLOUT, deadline, why, why_size)) {
		snprintf(why, why_size, "cannot connect to %s in time", addr);
		goto bad;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr != 0) {
		errno = soerr != 0 ? soerr : errno;
		goto bad_errno;
	}
	return fd;
bad_errno:
	snprintf(why, why_size, "cannot connect to %s: %s", addr, strerror(errno));
bad:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* A non-blocking socket connected to addr (any form of haproxy_socket.h),
 * or -1 with why filled. */
static int
connect_to(const char *addr, long long deadline, char *why, size_t why_size)
{
	if (strncmp(addr, "unix@", 5) == 0)
		return connect_unix(addr + 5, addr, why, why_size);
	if (strncmp(addr, "ipv4@", 5) == 0)
		return connect_tcp(addr + 5, AF_INET, addr, deadline, why, why_size);
	if (strncmp(addr, "ipv6@", 5) == 0)
		return connect_tcp(addr + 5, AF_INET6, addr, deadline, why, why_size);
	if (addr[0] == '/')
		return connect_unix(addr, addr, why, why_size);
	return connect_tcp(addr, AF_UNSPEC, addr, deadline, why, why_size);
}

static int
send_all(int fd, const char *addr, const char *question, long long deadline, char *why,
         size_t why_size)
{
	size_t sent = 0, len = strlen(question);
	ssize_t n;

	while (sent < len) {
		if (!wait_ready(fd, POLLOUT, deadline, why, why_size))
			return -1;
		n = send(fd, question + sent, len - sent, MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			snprintf(why, why_size, "send to %s: %s", addr, strerror(errno));
			return -1;
		}
		sent += (size_t)n;
	}
	return 0;
}

/* Reads until the peer closes, into a malloc'd string, or NULL. */
static char *
read_all(int fd, const char *addr, size_t answer_max, long long deadline, char *why,
         size_t why_size)
{
	size_t used = 0, cap = 16384;
	char *buf = malloc(cap), *grown;
	ssize_t n;

	if (buf == NULL)
		goto bad_memory;
	while (1) {
		if (used + 1 >= cap) {
			if (cap > answer_max) {
				snprintf(why, why_size, "%s: answer longer than %zu bytes", addr,
				         answer_max);
				goto bad;
			}
			if ((grown = realloc(buf, cap * 2)) == NULL)
				goto bad_memory;
			buf = grown;
			cap *= 2;
		}
		if (!wait_ready(fd, POLLIN, deadline, why, why_size))
			goto bad;
		n = recv(fd, buf + used, cap - used - 1, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			snprintf(why, why_size, "read from %s: %s", addr, strerror(errno));
			goto bad;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > answer_max) {
			snprintf(why, why_size, "%s: answer longer than %zu bytes", addr,
			         answer_max);
			goto bad;
		}
	}
	buf[used] = '\0';
	return buf;
bad_memory:
	snprintf(why, why_size, "out of memory");
bad:
	free(buf);
	return NULL;
}

char *
haproxy_socket_ask(const char *addr, const char *question, int timeout_ms, size_t answer_max,
                   char *why, size_t why_size)
{
	long long deadline = monotonic_ms() + timeout_ms;
	char *answer = NULL;
	int fd;

	if ((fd = connect_to(addr, deadline, why, why_size)) < 0)
		return NULL;
	if (send_all(fd, addr, question, deadline, why, why_size) == 0)
		answer = read_all(fd, addr, answer_max, deadline, why, why_size);
	close(fd);
	return answer;
}
