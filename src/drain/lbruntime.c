/*
 * lbruntime.c - HAProxy's runtime socket and Varnish's counters (see
 * lbruntime.h).
 *
 * Both answers are read whole into a fixed buffer with poll() and a
 * deadline, so a stalled load balancer costs at most the timeout. The
 * HAProxy socket is asked "show stat" (CSV; the header line names the
 * columns, so their order does not matter). varnishstat is run without a
 * shell, its output read the same way, and killed by its pid when it
 * overstays.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lbruntime.h"
#include "util/xalloc.h"

#define ANSWER_MAX (1024 * 1024)

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads fd until end of stream into a malloc'd, NUL-terminated buffer,
 * by deadline (ms). Returns it, or NULL with why filled. */
static char *
read_all(int fd, long long deadline, char *why, size_t why_size)
{
	size_t used = 0, cap = 16384;
	char *buf = xmalloc(cap);
	ssize_t n;

	while (1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			snprintf(why, why_size, "no complete answer in time");
			goto bad;
		}
		if (used + 4096 + 1 > cap) {
			if (cap >= ANSWER_MAX) {
				snprintf(why, why_size, "answer too long");
				goto bad;
			}
			cap *= 2;
			buf = xreallocarray(buf, cap, 1);
		}
		n = read(fd, buf + used, cap - used - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, why_size, "read: %s", strerror(errno));
			goto bad;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	return buf;
bad:
	free(buf);
	return NULL;
}

/* A connected socket to "/unix/path" or "host:port", also written the
 * way HAProxy's own `stats socket` line writes them ("unix@/path",
 * "ipv4@host:port", "ipv6@[addr]:port"), or -1 with why. */
static int
connect_to(const char *addr, long long deadline, char *why, size_t why_size)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char host[256];
	const char *colon;
	int fd = -1, rc;

	if (strncmp(addr, "unix@", 5) == 0)
		addr += 5;
	else if (strncmp(addr, "ipv4@", 5) == 0) {
		hints.ai_family = AF_INET;
		addr += 5;
	} else if (strncmp(addr, "ipv6@", 5) == 0) {
		hints.ai_family = AF_INET6;
		addr += 5;
	}
	if (addr[0] == '/') {
		struct sockaddr_un sun = {.sun_family = AF_UNIX};
		if (strlen(addr) >= sizeof(sun.sun_path)) {
			snprintf(why, why_size, "socket path too long");
			return -1;
		}
		memcpy(sun.sun_path, addr, strlen(addr) + 1);
		if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
		    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			snprintf(why, why_size, "cannot connect to %s: %s", addr, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		return fd;
	}
	if ((colon = strrchr(addr, ':')) == NULL || (size_t)(colon - addr) >= sizeof(host)) {
		snprintf(why, why_size, "'%s' is neither a socket path nor HOST:PORT", addr);
		return -1;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if ((rc = getaddrinfo(host, colon + 1, &hints, &res)) != 0) {
		snprintf(why, why_size, "%s: %s", addr, gai_strerror(rc));
		return -1;
	}
	if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK, 0)) < 0) {
		snprintf(why, why_size, "socket: %s", strerror(errno));
	} else if (connect(fd, res->ai_addr, res->ai_addrlen) < 0) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		int soerr = errno;
		socklen_t len = sizeof(soerr);
		long long left = deadline - now_ms();
		if (soerr == EINPROGRESS) {
			soerr = ETIMEDOUT;
			if (left > 0 && poll(&p, 1, (int)left) == 1)
				getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
		}
		if (soerr != 0) {
			snprintf(why, why_size, "cannot connect to %s: %s", addr, strerror(soerr));
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

/* The index of column name in the CSV header line (without "# "), or -1. */
static int
column_of(const char *header, const char *name)
{
	size_t len = strlen(name);
	const char *p = header;
	int i = 0;

	while (p != NULL && *p != '\0' && *p != '\n') {
		if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\n'))
			return i;
		p = strchr(p, ',');
		if (p != NULL)
			p++;
		i++;
	}
	return -1;
}

/* Field i of the CSV line into buf (cut to size). */
static void
field(const char *line, int i, char *buf, size_t size)
{
	const char *p = line, *end;
	size_t len;

	while (i-- > 0 && p != NULL)
		if ((p = strchr(p, ',')) != NULL)
			p++;
	if (p == NULL) {
		buf[0] = '\0';
		return;
	}
	end = p + strcspn(p, ",\n");
	len = (size_t)(end - p) < size - 1 ? (size_t)(end - p) : size - 1;
	memcpy(buf, p, len);
	buf[len] = '\0';
}

int
lbruntime_haproxy(const char *addr, const char *backend, const char *server, int timeout_ms,
                  struct lb_server_state *out, char *why, size_t why_size)
{
	static const char command[] = "show stat\n";
	long long deadline = now_ms() + timeout_ms;
	int fd, c_px, c_sv, c_scur, c_status, rc = -1;
	char *text = NULL, *line, px[128], sv[128], scur[32];

	memset(out, 0, sizeof(*out));
	if ((fd = connect_to(addr, deadline, why, why_size)) < 0)
		return -1;
	if (send(fd, command, sizeof(command) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(command) - 1) {
		snprintf(why, why_size, "%s: cannot send: %s", addr, strerror(errno));
		goto done;
	}
	if ((text = read_all(fd, deadline, why, why_size)) == NULL)
		goto done;
	if (strncmp(text, "# ", 2) != 0) {
		snprintf(why, why_size, "%s: not a HAProxy stats answer: %.60s", addr, text);
		goto done;
	}
	c_px = column_of(text + 2, "pxname");
	c_sv = column_of(text + 2, "svname");
	c_scur = column_of(text + 2, "scur");
	c_status = column_of(text + 2, "status");
	if (c_px < 0 || c_sv < 0 || c_scur < 0 || c_status < 0) {
		snprintf(why, why_size, "%s: the stats lack pxname, svname, scur or status", addr);
		goto done;
	}
	for (line = strchr(text, '\n'); line != NULL && line[1] != '\0';
	     line = strchr(line + 1, '\n')) {
		field(line + 1, c_px, px, sizeof(px));
		field(line + 1, c_sv, sv, sizeof(sv));
		if (strcmp(px, backend) != 0 || strcmp(sv, server) != 0)
			continue;
		field(line + 1, c_scur, scur, sizeof(scur));
		field(line + 1, c_status, out->status, sizeof(out->status));
		out->in_flight = strtol(scur, NULL, 10);
		rc = 0;
		goto done;
	}
	snprintf(why, why_size, "%s has no server %s in backend %s", addr, server, backend);
done:
	free(text);
	close(fd);
	return rc;
}

int
lbruntime_haproxy_is_out(const char *status)
{
	return strncmp(status, "MAINT", 5) == 0 || strncmp(status, "DRAIN", 5) == 0 ||
	       strncmp(status, "DOWN", 4) == 0 || strncmp(status, "NOLB", 4) == 0;
}

int
lbruntime_haproxy_is_in(const char *status)
{
	return strncmp(status, "UP", 2) == 0 && strstr(status, "DRAIN") == NULL;
}

void
lbruntime_varnish_backend(const char *node, char *buf, size_t size)
{
	size_t used = 0;

	used = (size_t)snprintf(buf, size, "node_");
	for (; *node != '\0' && used + 3 < size; node++) {
		if (*node == '_') {
			buf[used++] = '_';
			buf[used++] = '_';
		} else if (*node == '.') {
			buf[used++] = '_';
			buf[used++] = 'd';
		} else
			buf[used++] = *node;
	}
	buf[used] = '\0';
}

/* Runs varnishstat -n dir -1 -f filter and hands each "NAME VALUE" line's
 * value to *sum (added) and *first (the first one). Returns the number of
 * lines, or -1 with why filled. */
static int
varnishstat(const char *dir, const char *filter, int timeout_ms, long long *sum,
            unsigned long long *first, char *why, size_t why_size)
{
	long long deadline = now_ms() + timeout_ms;
	char *text = NULL, *line;
	int pipefd[2], status, found = 0;
	pid_t pid;

	*sum = 0;
	*first = 0;
	if (pipe(pipefd) < 0) {
		snprintf(why, why_size, "pipe: %s", strerror(errno));
		return -1;
	}
	if ((pid = fork()) < 0) {
		snprintf(why, why_size, "fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		close(pipefd[1]);
		execlp("varnishstat", "varnishstat", "-n", dir, "-1", "-f", filter, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	text = read_all(pipefd[0], deadline, why, why_size);
	close(pipefd[0]);
	if (text == NULL)
		kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (text == NULL)
		return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		snprintf(why, why_size, "varnishstat -n %s failed (exit %d)", dir,
		         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		free(text);
		return -1;
	}
	for (line = text; line != NULL && *line != '\0'; line = strchr(line, '\n')) {
		char name[256];
		unsigned long long value;
		if (*line == '\n')
			line++;
		if (sscanf(line, "%255s %llu", name, &value) == 2) {
			if (found++ == 0)
				*first = value;
			*sum += (long long)value;
		}
	}
	free(text);
	return found;
}

int
lbruntime_varnish(const char *dir, const char *backend, int timeout_ms, struct lb_server_state *out,
                  char *why, size_t why_size)
{
	char filter[200];
	unsigned long long first;
	long long sum;
	int n;

	memset(out, 0, sizeof(*out));
	snprintf(filter, sizeof(filter), "VBE.*.%s.conn", backend);
	if ((n = varnishstat(dir, filter, timeout_ms, &sum, &first, why, why_size)) < 0)
		return -1;
	if (n == 0) {
		snprintf(why, why_size, "Varnish at %s has no backend %s", dir, backend);
		return -1;
	}
	out->in_flight = (long)sum;
	return 0;
}

int
lbruntime_varnish_happy(const char *dir, const char *backend, int timeout_ms,
                        unsigned long long *bits, char *why, size_t why_size)
{
	char filter[200];
	long long sum;
	int n;

	snprintf(filter, sizeof(filter), "VBE.*.%s.happy", backend);
	if ((n = varnishstat(dir, filter, timeout_ms, &sum, bits, why, why_size)) < 0)
		return -1;
	if (n != 1) {
		snprintf(why, why_size, "Varnish at %s has %s backend %s", dir,
		         n == 0 ? "no" : "more than one", backend);
		return -1;
	}
	return 0;
}
