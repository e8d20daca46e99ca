/*
 * fleet_prober.c - bench/fleet's load balancers: one thread per daemon,
 * each probing every node of that daemon once per pass over one kept-alive
 * HTTP/1.1 connection, with its own User-Agent (lb-<i>).
 *
 * usage: fleet_prober [--burst] NODES INTERVAL_MS PORT...
 *
 * Requests go out PIPELINE at a time (GET /health?node=web<k>), so that
 * the prober costs little beside the daemons it loads. A pass starts every
 * INTERVAL_MS, or at once when the last one took longer. Within a pass
 * the probes are spread evenly over the interval, as HAProxy spreads its
 * servers' checks (start_checks: the first check of the k-th of n servers
 * after k x inter / n, then every inter): node k is probed about
 * k x INTERVAL_MS / NODES after the pass starts. --burst sends each pass
 * as fast as the daemon answers instead, the worst case: every load
 * balancer started at the same instant with no spreading. Prints
 * "first-pass SECONDS" on stdout once every thread has finished a pass.
 * SIGUSR1 pauses the probing, SIGUSR2 resumes it, SIGTERM (or SIGINT)
 * ends it; at the end it prints to stdout "passes N requests N errors N
 * slowest_pass_ms N". Loopback only.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PIPELINE 32
#define BUF_SIZE 65536

static int n_nodes, interval_ms, is_burst;
static volatile sig_atomic_t is_stopping, is_paused;
static _Atomic long n_passes, n_requests, n_errors, slowest_pass_ms;
static _Atomic int n_first_pass_left;
static struct timespec started;

struct prober {
	pthread_t thread;
	int index, port, fd;
	char buf[BUF_SIZE];
	size_t len; /* bytes in buf not yet consumed */
};

static long
ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static int
connect_to(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	struct timeval tv = {.tv_sec = 10};

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads one whole response (headers and Content-Length bytes of body)
 * from p->buf, reading more as needed; -1 when the connection failed. */
static int
read_response(struct prober *p)
{
	char *end, *cl;
	size_t head, body = 0;
	ssize_t got;

	for (;;) {
		p->buf[p->len] = '\0';
		end = strstr(p->buf, "\r\n\r\n");
		if (end != NULL) {
			head = (size_t)(end - p->buf) + 4;
			*end = '\0';
			cl = strcasestr(p->buf, "\r\ncontent-length:");
			body = cl != NULL ? strtoul(cl + 17, NULL, 10) : 0;
			*end = '\r';
			if (p->len >= head + body) {
				memmove(p->buf, p->buf + head + body, p->len - head - body);
				p->len -= head + body;
				return 0;
			}
		}
		if (p->len >= BUF_SIZE - 1)
			return -1;
		got = read(p->fd, p->buf + p->len, BUF_SIZE - 1 - p->len);
		if (got <= 0)
			return -1;
		p->len += (size_t)got;
	}
}

/* Sends requests for nodes [from, to) and reads their answers. */
static int
probe_batch(struct prober *p, int from, int to)
{
	char out[PIPELINE * 128];
	size_t n = 0;
	int k;

	for (k = from; k < to; k++)
		n += (size_t)snprintf(out + n, sizeof(out) - n,
		                      "GET /health?node=web%d HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		                      "User-Agent: lb-%d\r\n\r\n",
		                      k, p->index);
	if (write(p->fd, out, n) != (ssize_t)n)
		return -1;
	for (k = from; k < to; k++) {
		if (read_response(p) != 0)
			return -1;
		atomic_fetch_add(&n_requests, 1);
	}
	return 0;
}

/* Moves t later by ms. */
static void
timespec_add_ms(struct timespec *t, long ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

/* Spread passes: waits until node k is due, k x interval / nodes after
 * the pass started at t0 (returns at once when behind). */
static void
await_due(const struct timespec *t0, int k)
{
	long due = (long)((long long)k * interval_ms / n_nodes), left;

	while (!is_burst && !is_stopping && !is_paused && (left = due - ms_since(t0)) > 0)
		usleep((useconds_t)(left > 20 ? 20000 : left * 1000));
}

static void *
prober_thread(void *arg)
{
	struct prober *p = arg;
	struct timespec t0, paused_at;
	int k, is_first = 1;
	long took, slowest;

	while (!is_stopping) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (k = 0; k < n_nodes && !is_stopping;) {
			int to = k + PIPELINE < n_nodes ? k + PIPELINE : n_nodes;
			if (is_paused) { /* the pause does not count: no catching up after it */
				clock_gettime(CLOCK_MONOTONIC, &paused_at);
				while (is_paused && !is_stopping)
					usleep(20000);
				timespec_add_ms(&t0, ms_since(&paused_at));
			}
			await_due(&t0, k);
			if (is_paused)
				continue; /* paused while waiting: nothing goes out until resumed */
			if (p->fd < 0 && (p->fd = connect_to(p->port)) < 0) {
				atomic_fetch_add(&n_errors, 1);
				usleep(100000);
				continue;
			}
			if (probe_batch(p, k, to) != 0) {
				atomic_fetch_add(&n_errors, 1);
				close(p->fd);
				p->fd = -1;
				p->len = 0;
				continue; /* the batch again, on a new connection */
			}
			k = to;
		}
		if (is_stopping)
			break;
		took = ms_since(&t0);
		atomic_fetch_add(&n_passes, 1);
		slowest = atomic_load(&slowest_pass_ms);
		while (took > slowest &&
		       !atomic_compare_exchange_weak(&slowest_pass_ms, &slowest, took))
			;
		if (is_first && atomic_fetch_sub(&n_first_pass_left, 1) == 1) {
			printf("first-pass %.3f\n", ms_since(&started) / 1000.0);
			fflush(stdout);
		}
		is_first = 0;
		while (!is_stopping && ms_since(&t0) < interval_ms)
			usleep(10000);
	}
	if (p->fd >= 0)
		close(p->fd);
	return NULL;
}

static void
on_signal(int sig)
{
	if (sig == SIGUSR1)
		is_paused = 1;
	else if (sig == SIGUSR2)
		is_paused = 0;
	else
		is_stopping = 1;
}

int
main(int argc, char **argv)
{
	struct prober *probers;
	struct sigaction sa;
	sigset_t all, old;
	int i, n;

	if (argc > 1 && strcmp(argv[1], "--burst") == 0) {
		is_burst = 1;
		argv++;
		argc--;
	}
	if (argc < 4) {
		fprintf(stderr, "usage: fleet_prober [--burst] NODES INTERVAL_MS PORT...\n");
		return 2;
	}
	n_nodes = atoi(argv[1]);
	interval_ms = atoi(argv[2]);
	n = argc - 3;
	probers = calloc((size_t)n, sizeof(*probers));
	if (probers == NULL || n_nodes <= 0)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	atomic_store(&n_first_pass_left, n);
	clock_gettime(CLOCK_MONOTONIC, &started);
	/* Signals go to the main thread alone, which only waits for them. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < n; i++) {
		probers[i].index = i;
		probers[i].port = atoi(argv[3 + i]);
		probers[i].fd = -1;
		if (pthread_create(&probers[i].thread, NULL, prober_thread, &probers[i]) != 0) {
			fprintf(stderr, "fleet_prober: cannot start a thread\n");
			return 1;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	while (!is_stopping)
		pause();
	for (i = 0; i < n; i++)
		pthread_join(probers[i].thread, NULL);
	printf("passes %ld requests %ld errors %ld slowest_pass_ms %ld\n", atomic_load(&n_passes),
	       atomic_load(&n_requests), atomic_load(&n_errors), atomic_load(&slowest_pass_ms));
	free(probers);
	return 0;
}
