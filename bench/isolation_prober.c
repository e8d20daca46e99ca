/*
 * isolation_prober.c - bench/isolation's load balancer: probes one at a
 * time, each on a new connection, in turn on every target, and prints
 * each probe's latency.
 *
 * usage: isolation_prober SECONDS INTERVAL_MS NODE KIND:PORT:HOW...
 *
 * HOW is "http" (GET /health?node=NODE, answered "HTTP/1.1 200") or
 * "agent" (NODE and a newline, answered "up ready"). A probe's latency
 * runs from before connect() to the server's close, as a load balancer's
 * check does; a probe that fails, is answered otherwise or takes over
 * 10 s counts as an error. INTERVAL_MS separates one probe from the
 * next. Prints one JSON object on stdout: {"KIND": [microseconds, ...],
 * "KIND_steal": [ticks, ...], ..., "errors": N}, where KIND_steal holds,
 * for each probe, the CPU time the hypervisor stole from this virtual
 * machine's CPUs while it ran (/proc/stat's steal, in USER_HZ ticks of
 * all CPUs): a probe that waited through a stall of the host says so.
 * Loopback only.
 *
 * HAProxy and Varnish are C programs whose checks cost a few microseconds
 * of CPU; the prober in Python (BENCH_PROBER=python) spends ten times as
 * much of the two shared cores on each probe, and its own turn for a CPU
 * is part of what it measures.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 16
#define MAX_PROBES 1000000

struct target {
	char kind[64];
	int port;
	int is_agent;
	long *took_us;
	long *steal;
	size_t count;
};

/* /proc/stat's steal of all CPUs, in ticks; 0 where it cannot be read. */
static long
stolen_ticks(int proc_stat)
{
	char line[256];
	ssize_t n = proc_stat < 0 ? -1 : pread(proc_stat, line, sizeof(line) - 1, 0);
	if (n <= 0)
		return 0;
	line[n] = '\0';
	long v[8] = {0};
	if (sscanf(line, "cpu %ld %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3], &v[4],
	           &v[5], &v[6], &v[7]) != 8)
		return 0;
	return v[7];
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One probe; 1 when it was answered as a healthy node is. */
static int
probe_once(const struct target *t, const char *request, size_t request_len)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	struct timeval limit = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit));
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	char answer[4096];
	size_t got = 0;
	int ok = 0;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	    send(fd, request, request_len, MSG_NOSIGNAL) == (ssize_t)request_len) {
		for (;;) {
			ssize_t n = recv(fd, answer + got, sizeof(answer) - 1 - got, 0);
			if (n <= 0) {
				ok = n == 0;
				break;
			}
			got += (size_t)n;
			if (got == sizeof(answer) - 1)
				got = 0; /* only the first bytes are judged; keep reading */
		}
	}
	close(fd);
	answer[got] = '\0';
	const char *want = t->is_agent ? "up ready" : "HTTP/1.1 200";
	return ok && strncmp(answer, want, strlen(want)) == 0;
}

int
main(int argc, char **argv)
{
	if (argc < 5 || argc - 4 > MAX_TARGETS) {
		fprintf(stderr,
		        "usage: isolation_prober SECONDS INTERVAL_MS NODE KIND:PORT:HOW...\n");
		return 2;
	}
	double seconds = atof(argv[1]);
	long interval_us = (long)(atof(argv[2]) * 1000);
	const char *node = argv[3];
	char http_request[512], agent_request[256];
	int http_len = snprintf(http_request, sizeof(http_request),
	                        "GET /health?node=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                        "Connection: close\r\n\r\n",
	                        node);
	int agent_len = snprintf(agent_request, sizeof(agent_request), "%s\n", node);
	if (http_len >= (int)sizeof(http_request) || agent_len >= (int)sizeof(agent_request)) {
		fprintf(stderr, "isolation_prober: node name too long\n");
		return 2;
	}

	struct target targets[MAX_TARGETS];
	size_t ntargets = (size_t)argc - 4;
	for (size_t i = 0; i < ntargets; i++) {
		char how[16];
		if (sscanf(argv[4 + i], "%63[^:]:%d:%15s", targets[i].kind, &targets[i].port,
		           how) != 3 ||
		    (strcmp(how, "http") != 0 && strcmp(how, "agent") != 0)) {
			fprintf(stderr, "isolation_prober: bad target %s\n", argv[4 + i]);
			return 2;
		}
		targets[i].is_agent = strcmp(how, "agent") == 0;
		targets[i].took_us = malloc(MAX_PROBES * sizeof(long));
		targets[i].steal = malloc(MAX_PROBES * sizeof(long));
		targets[i].count = 0;
		if (targets[i].took_us == NULL || targets[i].steal == NULL)
			return 1;
	}
	int proc_stat = open("/proc/stat", O_RDONLY);

	long errors = 0;
	double end = now_s() + seconds;
	for (size_t turn = 0; now_s() < end; turn++) {
		struct target *t = &targets[turn % ntargets];
		const char *request = t->is_agent ? agent_request : http_request;
		size_t len = (size_t)(t->is_agent ? agent_len : http_len);
		long steal0 = stolen_ticks(proc_stat);
		double t0 = now_s();
		int ok = probe_once(t, request, len);
		long took = (long)((now_s() - t0) * 1e6);
		long stolen = stolen_ticks(proc_stat) - steal0;
		if (ok && t->count < MAX_PROBES) {
			t->steal[t->count] = stolen;
			t->took_us[t->count++] = took;
		} else if (!ok) {
			errors++;
		}
		usleep((useconds_t)interval_us);
	}

	putchar('{');
	for (size_t i = 0; i < ntargets; i++) {
		printf("\"%s\": [", targets[i].kind);
		for (size_t k = 0; k < targets[i].count; k++)
			printf(k ? ", %ld" : "%ld", targets[i].took_us[k]);
		printf("], \"%s_steal\": [", targets[i].kind);
		for (size_t k = 0; k < targets[i].count; k++)
			printf(k ? ", %ld" : "%ld", targets[i].steal[k]);
		printf("], ");
	}
	printf("\"errors\": %ld}\n", errors);
	return 0;
}
