/*
 * varnish_read.c - bench/varnish_counters' reader: reads one backend's
 * counters from a running varnishd RUNS times one way, and prints the
 * wall and CPU time per reading (its own CPU and its children's).
 *
 *   spawn     what the drain proof did before libvarnishapi: fork and
 *             exec `varnishstat -n DIR -1 -f VBE.*.BACKEND.conn`, read
 *             its output through a pipe, wait for it
 *   attach    libvarnishapi attaching for every reading: varnish_shm_open,
 *             varnish_shm_read, varnish_shm_close
 *   library   lbruntime_varnish, as the drain proof reads now (its
 *             attachment kept between readings)
 *   attached  varnish_shm_read on one attachment, as a deploy's verdict
 *             reads every second
 *
 * Usage: varnish_read spawn|attach|library|attached DIR BACKEND RUNS
 * Prints: "MODE RUNS WALL_US_PER_READ CPU_US_PER_READ VALUE".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "drain/lbruntime.h"
#include "lbaccess/varnish_shm.h"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double
cpu_us(void)
{
	struct rusage self, children;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &children);
	return (self.ru_utime.tv_sec + self.ru_stime.tv_sec + children.ru_utime.tv_sec +
	        children.ru_stime.tv_sec) *
	           1e6 +
	       self.ru_utime.tv_usec + self.ru_stime.tv_usec + children.ru_utime.tv_usec +
	       children.ru_stime.tv_usec;
}

/* One `varnishstat -1 -f` run; returns the value, or -1. */
static long long
spawn_once(const char *dir, const char *filter)
{
	char buf[4096], name[256];
	size_t used = 0;
	ssize_t n;
	int pipefd[2], status;
	long long value = -1;
	pid_t pid;

	if (pipe(pipefd) < 0)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		close(pipefd[1]);
		execlp("varnishstat", "varnishstat", "-n", dir, "-1", "-f", filter, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	while (used < sizeof(buf) - 1 &&
	       (n = read(pipefd[0], buf + used, sizeof(buf) - 1 - used)) > 0)
		used += (size_t)n;
	buf[used] = '\0';
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    sscanf(buf, "%255s %lld", name, &value) != 2)
		return -1;
	return value;
}

/* Attaches, reads b, detaches; returns its conn, or -1. */
static long long
attach_once(const char *dir, struct varnish_shm_backend *b)
{
	struct varnish_shm *v;
	char why[200];
	long long value = -1;

	if ((v = varnish_shm_open(dir, 5000, why, sizeof(why))) == NULL)
		return -1;
	if (varnish_shm_read(v, b, 1, why, sizeof(why)) == VARNISH_SHM_READ && b->n_vcls > 0)
		value = (long long)b->conn;
	varnish_shm_close(v);
	return value;
}

int
main(int argc, char **argv)
{
	struct varnish_shm_backend b;
	struct lb_server_state st;
	struct varnish_shm *v = NULL;
	char why[200], filter[256];
	double wall0, cpu0;
	long long value = -1;
	int i, runs;

	if (argc != 5 || (runs = atoi(argv[4])) <= 0) {
		fprintf(stderr,
		        "usage: varnish_read spawn|attach|library|attached DIR BACKEND RUNS\n");
		return 2;
	}
	snprintf(filter, sizeof(filter), "VBE.*.%s.conn", argv[3]);
	memset(&b, 0, sizeof(b));
	snprintf(b.name, sizeof(b.name), "%s", argv[3]);
	if (strcmp(argv[1], "attached") == 0 &&
	    (v = varnish_shm_open(argv[2], 5000, why, sizeof(why))) == NULL) {
		fprintf(stderr, "varnish_read: %s\n", why);
		return 1;
	}
	wall0 = now_us();
	cpu0 = cpu_us();
	for (i = 0; i < runs; i++) {
		if (strcmp(argv[1], "spawn") == 0)
			value = spawn_once(argv[2], filter);
		else if (strcmp(argv[1], "attach") == 0)
			value = attach_once(argv[2], &b);
		else if (strcmp(argv[1], "library") == 0)
			value =
			    lbruntime_varnish(argv[2], argv[3], 5000, &st, why, sizeof(why)) == 0
			        ? st.in_flight
			        : -1;
		else if (strcmp(argv[1], "attached") == 0)
			value = varnish_shm_read(v, &b, 1, why, sizeof(why)) == VARNISH_SHM_READ &&
			                b.n_vcls > 0
			            ? (long long)b.conn
			            : -1;
		else {
			fprintf(stderr, "varnish_read: unknown mode %s\n", argv[1]);
			return 2;
		}
		if (value < 0) {
			fprintf(stderr, "varnish_read: %s reading %d failed\n", argv[1], i);
			return 1;
		}
	}
	printf("%s %d %.1f %.1f %lld\n", argv[1], runs, (now_us() - wall0) / runs,
	       (cpu_us() - cpu0) / runs, value);
	varnish_shm_close(v);
	return 0;
}
