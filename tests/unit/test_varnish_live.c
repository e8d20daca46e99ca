/*
 * test_varnish_live.c - Varnish's counters read from a real varnishd's
 * shared memory (src/lbaccess/varnish_shm.h) by both of their readers,
 * the drain proof (drain/lbruntime.h) and a deploy's verdict
 * (sample/sample.h), while varnishd's worker is killed and restarted and
 * while the whole varnishd is replaced by a new one on the same working
 * directory: a reading then says "no data", never gives the old
 * counters, never crashes, and the readings after agree with varnishstat.
 *
 * The test starts varnishd itself (loopback only, working directory in a
 * temporary directory), and stops it by its pid. Its two backends point
 * at a closed port, so every request through Varnish fails to connect and
 * counts as a failed connection (no hold-down, so each request tries):
 * the counter this test follows. Skipped
 * when varnishd is not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/drain/lbruntime.h"
#include "../../src/lbaccess/monotonic.h"
#include "../../src/lbaccess/varnish_shm.h"
#include "../../src/sample/sample.h"

#define START_TIMEOUT_MS 60000
#define BACKEND_A "node_a"
#define BACKEND_B "node_b"

static const char vcl_text[] = "vcl 4.1;\n"
                               "backend node_a { .host = \"127.0.0.1\"; .port = \"1\"; }\n"
                               "backend node_b { .host = \"127.0.0.1\"; .port = \"1\"; }\n"
                               "sub vcl_recv {\n"
                               "    if (req.url ~ \"^/b\") { set req.backend_hint = node_b; }\n"
                               "    else { set req.backend_hint = node_a; }\n"
                               "    return (pass);\n"
                               "}\n";

struct varnish {
	char root[64];
	char workdir[128];
	char vcl[128];
	int port;
	pid_t pid; /* the manager, started here */
};

static struct varnish V;

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static int
free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int
is_on_path(const char *program)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", program);
	return system(cmd) == 0;
}

static pid_t
start_varnishd(void)
{
	char listen[64], log[160];
	pid_t pid;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", V.port);
	snprintf(log, sizeof(log), "%s/varnishd.log", V.root);
	if ((pid = fork()) == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		/* a test killed before its teardown takes varnishd with it */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("varnishd", "varnishd", "-F", "-j", "none", "-n", V.workdir, "-a", listen,
		       "-f", V.vcl, "-s", "malloc,16m", "-T", "127.0.0.1:0", "-p", "vsl_space=1M",
		       "-p", "backend_local_error_holddown=0", "-p",
		       "backend_remote_error_holddown=0", "-p", "backend_idle_timeout=1",
		       (char *)NULL);
		_exit(127);
	}
	assert_true(pid > 0);
	return pid;
}

/* Stops the varnishd started here, by its pid, within 10 s. */
static void
stop_varnishd(void)
{
	long long deadline = monotonic_ms() + 10000;
	int status;

	if (V.pid <= 0)
		return;
	kill(V.pid, SIGTERM);
	while (waitpid(V.pid, &status, WNOHANG) == 0) {
		if (monotonic_ms() > deadline) {
			kill(V.pid, SIGKILL);
			waitpid(V.pid, &status, 0);
			break;
		}
		sleep_ms(50);
	}
	V.pid = 0;
}

/* One request through Varnish, answered by Varnish itself (503: the
 * backend refuses the connection). varnishd listens only once its worker
 * has started, after its counters appear: the connection is tried until
 * it is accepted, by 60 s. */
static void
request(const char *path)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
	                          .sin_port = htons((uint16_t)V.port),
	                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct timeval tv = {5, 0};
	long long deadline = monotonic_ms() + START_TIMEOUT_MS;
	char buf[4096];
	int fd, n;

	while (1) {
		assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0)
			break;
		assert_int_equal(errno, ECONNREFUSED);
		close(fd);
		assert_true(monotonic_ms() < deadline);
		sleep_ms(20);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
	             path);
	assert_int_equal(write(fd, buf, (size_t)n), n);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

/* varnishstat's own figure for backend's failed connections (the sum of
 * its fail_* counters: Varnish 7.1 leaves fail itself at 0 for a refused
 * connection), or -1 when it gives none. */
static long long
varnishstat_fail(const char *backend)
{
	char cmd[512], line[256];
	long long sum = -1, value;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "varnishstat -n %s -t 5 -1 -f 'VBE.*.%s.fail_*' 2>/dev/null",
	         V.workdir, backend);
	assert_non_null(p = popen(cmd, "r"));
	while (fgets(line, sizeof(line), p) != NULL)
		if (sscanf(line, "%*s %lld", &value) == 1)
			sum = (sum < 0 ? 0 : sum) + value;
	pclose(p);
	return sum;
}

/* The worker: the manager's child named cache-main that is not a zombie
 * (the manager also runs short-lived children of its own), or 0. */
static pid_t
worker_pid(void)
{
	char path[96], line[4096], comm[64], state;
	long child;
	pid_t worker = 0;
	FILE *f;
	char *p, *end;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)V.pid, (int)V.pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(line, sizeof(line), f) == NULL)
		line[0] = '\0';
	fclose(f);
	for (p = line; worker == 0 && (child = strtol(p, &end, 10)) > 0; p = end) {
		snprintf(path, sizeof(path), "/proc/%ld/stat", child);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		if (fscanf(f, "%*d (%63[^)]) %c", comm, &state) == 2 &&
		    strcmp(comm, "cache-main") == 0 && state != 'Z')
			worker = (pid_t)child;
		fclose(f);
	}
	return worker;
}

static int
setup(void **state)
{
	char path[160];
	FILE *f;

	(void)state;
	if (!is_on_path("varnishd") || !is_on_path("varnishstat"))
		return 0;
	snprintf(V.root, sizeof(V.root), "/tmp/cm-varnish-live-XXXXXX");
	if (mkdtemp(V.root) == NULL)
		return -1;
	snprintf(V.workdir, sizeof(V.workdir), "%s/varnish", V.root);
	snprintf(V.vcl, sizeof(V.vcl), "%s/test.vcl", V.root);
	snprintf(path, sizeof(path), "%s", V.vcl);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fputs(vcl_text, f);
	fclose(f);
	V.port = free_port();
	V.pid = start_varnishd();
	return 0;
}

static int
teardown(void **state)
{
	char cmd[200];

	(void)state;
	stop_varnishd();
	if (V.root[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", V.root);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

/* Attaches once the worker runs. */
static struct varnish_shm *
attach(void)
{
	char why[200];
	struct varnish_shm *v = varnish_shm_open(V.workdir, START_TIMEOUT_MS, why, sizeof(why));

	if (v == NULL)
		fail_msg("%s", why);
	return v;
}

static void
test_counters_are_varnishstats_and_a_missing_backend_is_not_found(void **state)
{
	struct varnish_shm_backend b[3] = {
	    {.name = BACKEND_A}, {.name = BACKEND_B}, {.name = "node_nosuch"}};
	struct varnish_shm *v;
	long long deadline = monotonic_ms() + START_TIMEOUT_MS;
	char why[200];
	int i;

	(void)state;
	if (V.pid == 0)
		skip();
	v = attach();
	for (i = 0; i < 3; i++)
		request("/a");
	request("/b");
	/* a varnishd that has just started rewrites its index once as its
	 * worker starts: a reading then may say "restarted" */
	while (varnish_shm_read(v, b, 3, why, sizeof(why)) != VARNISH_SHM_READ)
		assert_true(monotonic_ms() < deadline);
	assert_int_equal(b[0].n_vcls, 1);
	assert_int_equal(b[1].n_vcls, 1);
	assert_int_equal(b[2].n_vcls, 0);
	assert_true(b[0].fail >= 3);
	assert_int_equal((long long)b[0].fail, varnishstat_fail(BACKEND_A));
	assert_int_equal((long long)b[1].fail, varnishstat_fail(BACKEND_B));
	assert_int_equal(b[2].fail, 0);
	varnish_shm_close(v);
}

static void
test_the_drain_proof_reads_varnish_without_varnishstat(void **state)
{
	struct lb_server_state st;
	unsigned long long bits = 1;
	char why[200];

	(void)state;
	if (V.pid == 0)
		skip();
	assert_int_equal(lbruntime_varnish(V.workdir, BACKEND_A, 2000, &st, why, sizeof(why)), 0);
	assert_int_equal(st.in_flight, 0);
	assert_int_equal(
	    lbruntime_varnish_happy(V.workdir, BACKEND_A, 2000, &bits, why, sizeof(why)), 0);
	assert_int_equal(lbruntime_varnish(V.workdir, "node_nosuch", 2000, &st, why, sizeof(why)),
	                 -1);
	assert_non_null(strstr(why, "has no backend node_nosuch"));
	assert_int_equal(
	    lbruntime_varnish("/nonexistent/varnish", BACKEND_A, 300, &st, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "cannot attach"));
}

/* Reads until a reading finds backend b again, by 60 s, counting the
 * readings in between that said "restarted". None of those gives
 * counters: not running, restarted, or (the new worker's index being
 * written) the backend not found. */
static int
read_until_found(struct varnish_shm *v, struct varnish_shm_backend *b, int *n_restarted)
{
	long long deadline = monotonic_ms() + START_TIMEOUT_MS;
	char why[200];
	int rc;

	*n_restarted = 0;
	while ((rc = varnish_shm_read(v, b, 1, why, sizeof(why))) != VARNISH_SHM_READ ||
	       b->n_vcls == 0) {
		if (rc == VARNISH_SHM_RESTARTED)
			(*n_restarted)++;
		if (rc != VARNISH_SHM_READ)
			assert_int_equal(b->n_vcls, 0);
		if (monotonic_ms() > deadline)
			return -1;
		sleep_ms(20);
	}
	return 0;
}

/* Waits, by 60 s, until the manager has replaced the worker old: its
 * shared memory is gone by then (the manager cleans up before it starts
 * another), so no reading can find the old counters. */
static void
wait_worker_replaced(pid_t old)
{
	long long deadline = monotonic_ms() + START_TIMEOUT_MS;
	pid_t now;

	while ((now = worker_pid()) == old || now == 0) {
		assert_true(monotonic_ms() < deadline);
		sleep_ms(20);
	}
}

/* Attaches, sends two requests that fail through backend b and reads
 * them back. */
static struct varnish_shm *
attach_after_two_failures(struct varnish_shm_backend *b)
{
	struct varnish_shm *v = attach();
	int n_restarted;

	request("/a");
	request("/a");
	assert_int_equal(read_until_found(v, b, &n_restarted), 0);
	assert_true(b->fail >= 2);
	return v;
}

static void
test_a_worker_restart_is_said_and_then_the_new_counters_come(void **state)
{
	struct varnish_shm_backend b = {.name = BACKEND_A};
	struct varnish_shm *v;
	char why[200];
	int n_restarted;
	pid_t worker;

	(void)state;
	if (V.pid == 0)
		skip();
	v = attach_after_two_failures(&b); /* the old worker's count */
	assert_true((worker = worker_pid()) > 0);
	assert_int_equal(kill(worker, SIGKILL), 0); /* the manager starts another */
	wait_worker_replaced(worker);
	assert_int_equal(read_until_found(v, &b, &n_restarted), 0);
	assert_true(n_restarted >= 1);
	/* the new worker's counters, never the old ones */
	assert_int_equal(b.fail, 0);
	assert_int_equal((long long)b.fail, varnishstat_fail(BACKEND_A));
	request("/a");
	assert_int_equal(varnish_shm_read(v, &b, 1, why, sizeof(why)), VARNISH_SHM_READ);
	assert_int_equal(b.fail, 1);
	varnish_shm_close(v);
}

static void
test_a_new_varnishd_on_the_same_directory_is_found_and_the_old_counters_never(void **state)
{
	struct varnish_shm_backend b = {.name = BACKEND_A};
	struct varnish_shm *v;
	char why[200];
	int n_restarted;

	(void)state;
	if (V.pid == 0)
		skip();
	v = attach_after_two_failures(&b);
	stop_varnishd();
	assert_int_equal(varnish_shm_read(v, &b, 1, why, sizeof(why)), VARNISH_SHM_FAILED);
	assert_non_null(strstr(why, "not running"));
	assert_int_equal(b.n_vcls, 0);
	V.pid = start_varnishd();
	assert_int_equal(read_until_found(v, &b, &n_restarted), 0);
	assert_true(n_restarted >= 1);
	assert_int_equal(b.fail, 0);
	assert_int_equal((long long)b.fail, varnishstat_fail(BACKEND_A));
	varnish_shm_close(v);
}

/* Runs `varnishadm -n WORKDIR command`; asserts it succeeded. */
static void
varnishadm(const char *command)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "varnishadm -n %s -t 10 %s >/dev/null 2>&1", V.workdir, command);
	assert_int_equal(system(cmd), 0);
}

static void
test_a_vcl_reload_sums_the_counters_of_both_vcls(void **state)
{
	struct sample_server s[1], previous[1];
	struct sample_change ch;
	struct sample_varnish *v;
	char why[200], command[256];
	long long deadline = monotonic_ms() + START_TIMEOUT_MS;

	(void)state;
	if (V.pid == 0)
		skip();
	memset(s, 0, sizeof(s));
	snprintf(s[0].name, sizeof(s[0].name), BACKEND_A);
	assert_non_null(v = sample_varnish_open(V.workdir, why, sizeof(why)));
	request("/a");
	request("/a");
	while (sample_varnish(v, s, 1, why, sizeof(why)) != 0 || !s[0].is_found ||
	       s[0].is_discontinuous || s[0].econ < 2)
		assert_true(monotonic_ms() < deadline);
	memcpy(previous, s, sizeof(s));
	/* a second VCL with the same backends, in use: both are counted */
	snprintf(command, sizeof(command), "vcl.load reload1 %s", V.vcl);
	varnishadm(command);
	varnishadm("vcl.use reload1");
	request("/a");
	assert_int_equal(sample_varnish(v, s, 1, why, sizeof(why)), 0);
	sample_delta(&previous[0], &s[0], &ch);
	assert_false(ch.is_reset);
	assert_int_equal(ch.errors, 1);
	assert_int_equal((long long)s[0].econ, varnishstat_fail(BACKEND_A));
	/* (a discarded VCL's counters stay in Varnish's shared memory for
	 * about a minute, varnishstat shows them as long: their going back
	 * is a counter going backwards, sample_delta's reset, test_sample.c) */
	sample_varnish_close(v);
}

static void
test_the_drain_proof_reads_nothing_across_a_restart_then_the_new_worker(void **state)
{
	struct lb_server_state st;
	long long deadline;
	char why[200];
	pid_t worker;
	int rc, n_restarted = 0;

	(void)state;
	if (V.pid == 0)
		skip();
	/* the attachment kept since an earlier test saw the restarts of the
	 * tests before: a reading or two without an answer first */
	deadline = monotonic_ms() + START_TIMEOUT_MS;
	while (lbruntime_varnish(V.workdir, BACKEND_A, 2000, &st, why, sizeof(why)) != 0)
		assert_true(monotonic_ms() < deadline);
	assert_true((worker = worker_pid()) > 0);
	assert_int_equal(kill(worker, SIGKILL), 0);
	wait_worker_replaced(worker);
	while ((rc = lbruntime_varnish(V.workdir, BACKEND_A, 2000, &st, why, sizeof(why))) != 0) {
		n_restarted += strstr(why, "restarted") != NULL;
		assert_true(monotonic_ms() < deadline);
		sleep_ms(20);
	}
	/* its kept attachment saw the restart, and reads the new worker */
	assert_true(n_restarted >= 1);
	assert_int_equal(st.in_flight, 0);
}

static void
test_the_verdict_never_takes_a_difference_across_a_restart(void **state)
{
	struct sample_server s[2], previous[2];
	struct sample_change ch;
	struct sample_varnish *v;
	char why[200];
	long long deadline;
	pid_t worker;
	int i, n_discontinuous = 0;

	(void)state;
	if (V.pid == 0)
		skip();
	memset(s, 0, sizeof(s));
	snprintf(s[0].name, sizeof(s[0].name), BACKEND_A);
	snprintf(s[1].name, sizeof(s[1].name), BACKEND_B);
	assert_non_null(v = sample_varnish_open(V.workdir, why, sizeof(why)));
	request("/a");
	request("/a");
	deadline = monotonic_ms() + START_TIMEOUT_MS;
	while (sample_varnish(v, s, 2, why, sizeof(why)) != 0 || !s[0].is_found ||
	       s[0].is_discontinuous)
		assert_true(monotonic_ms() < deadline);
	assert_true(s[0].econ >= 2);
	memcpy(previous, s, sizeof(s));
	assert_true((worker = worker_pid()) > 0);
	assert_int_equal(kill(worker, SIGKILL), 0);
	wait_worker_replaced(worker);
	/* the new worker counts more than the old one had: a difference
	 * taken across the restart would be a positive, wrong one */
	for (i = 0; i < 5; i++)
		request("/a");
	/* as a judgement reads: a failed reading keeps the previous one; no
	 * difference between two readings may count the old worker's
	 * counters against the new one's */
	while (1) {
		assert_true(monotonic_ms() < deadline + START_TIMEOUT_MS);
		sleep_ms(20);
		if (sample_varnish(v, s, 2, why, sizeof(why)) != 0)
			continue;
		sample_delta(&previous[0], &s[0], &ch);
		assert_true(ch.is_reset || !previous[0].is_found || !s[0].is_found);
		assert_int_equal(ch.responses, 0);
		n_discontinuous += s[0].is_discontinuous;
		memcpy(previous, s, sizeof(s));
		if (s[0].is_found && !s[0].is_discontinuous)
			break;
	}
	assert_true(n_discontinuous >= 1);
	/* the new worker's counters, comparable from now on */
	assert_int_equal((long long)s[0].econ, varnishstat_fail(BACKEND_A));
	request("/a");
	assert_int_equal(sample_varnish(v, s, 2, why, sizeof(why)), 0);
	sample_delta(&previous[0], &s[0], &ch);
	assert_false(ch.is_reset);
	assert_int_equal(ch.errors, 1);
	sample_varnish_close(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counters_are_varnishstats_and_a_missing_backend_is_not_found),
	    cmocka_unit_test(test_the_drain_proof_reads_varnish_without_varnishstat),
	    cmocka_unit_test(test_a_worker_restart_is_said_and_then_the_new_counters_come),
	    cmocka_unit_test(
	        test_a_new_varnishd_on_the_same_directory_is_found_and_the_old_counters_never),
	    cmocka_unit_test(test_the_verdict_never_takes_a_difference_across_a_restart),
	    cmocka_unit_test(test_a_vcl_reload_sums_the_counters_of_both_vcls),
	    cmocka_unit_test(
	        test_the_drain_proof_reads_nothing_across_a_restart_then_the_new_worker),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
