/*
 * shellcmd.c - run shell commands side by side with labelled output; see
 * shellcmd.h.
 *
 * posix_spawn rather than fork: the CLI links libcurl, which may have
 * started resolver threads, and after fork() in a threaded process only
 * async-signal-safe calls are allowed. A command gets stdin from
 * /dev/null, its two pipes, and no other descriptor. The parent polls every open pipe
 * and reaps children with WNOHANG on a short tick, so a background
 * process that inherited a pipe cannot keep a finished command "running".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shellcmd.h"
#include "util/timefmt.h"
#include "util/xalloc.h"
#include "wait.h"

#define LINE_MAX_BYTES 4096
#define TICK_MS 100
#define GRACE_MS 300 /* output still read after a command exited */

static int
spawn_one(struct shellcmd *c, struct error *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, reset;
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, rc = -1, e;
	char *argv[] = {"/bin/sh", "-c", (char *)c->command, NULL};

	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		error_set(err, 0, "cannot run the command for %s: %s", c->label, strerror(errno));
		goto bad;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	/* Nothing else: the CLI's sockets (the daemon, HAProxy's admin
	 * socket) and the files libvarnishapi opens without close-on-exec
	 * are not the command's. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigemptyset(&reset);
	sigaddset(&reset, SIGINT);
	sigaddset(&reset, SIGTERM);
	sigaddset(&reset, SIGPIPE);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &reset);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	e = posix_spawn(&c->pid, "/bin/sh", &fa, &attr, argv, c->env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (e != 0) {
		error_set(err, 0, "cannot run /bin/sh for %s: %s", c->label, strerror(e));
		goto bad;
	}
	close(out[1]);
	close(errp[1]);
	c->fds[0] = out[0];
	c->fds[1] = errp[0];
	c->is_started = 1;
	return 0;
bad:
	for (e = 0; e < 2; e++) {
		if (out[e] >= 0)
			close(out[e]);
		if (errp[e] >= 0)
			close(errp[e]);
	}
	return rc;
}

static void
emit(const struct shellcmd *c, const char *line, size_t len, FILE *to)
{
	fprintf(to, "%s| %.*s\n", c->label, (int)len, line);
	fflush(to);
}

/* Copies whole lines of buffer s of c to `to`; with is_final, the rest too. */
static void
emit_lines(struct shellcmd *c, int s, FILE *to, int is_final)
{
	char *buf = c->lines[s], *nl;
	size_t start = 0;

	while ((nl = memchr(buf + start, '\n', c->used[s] - start)) != NULL) {
		emit(c, buf + start, (size_t)(nl - (buf + start)), to);
		start = (size_t)(nl - buf) + 1;
	}
	if ((is_final || c->used[s] - start == LINE_MAX_BYTES) && c->used[s] > start) {
		emit(c, buf + start, c->used[s] - start, to);
		start = c->used[s];
	}
	memmove(buf, buf + start, c->used[s] - start);
	c->used[s] -= start;
}

static void
close_stream(struct shellcmd *c, int s, FILE *to)
{
	emit_lines(c, s, to, 1);
	close(c->fds[s]);
	c->fds[s] = -1;
}

/* Reads what is there on stream s of c. */
static void
read_stream(struct shellcmd *c, int s, FILE *to)
{
	ssize_t got;

	got = read(c->fds[s], c->lines[s] + c->used[s], LINE_MAX_BYTES - c->used[s]);
	if (got < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (got <= 0) {
		close_stream(c, s, to);
		return;
	}
	c->used[s] += (size_t)got;
	emit_lines(c, s, to, 0);
}

static void
reap(struct shellcmd *c, int64_t start)
{
	int status;

	if (c->pid <= 0 || waitpid(c->pid, &status, WNOHANG) != c->pid)
		return;
	c->pid = 0;
	c->exited_at = time_monotonic_ms();
	c->elapsed_ms = c->exited_at - start;
	c->killed_by = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	c->exit_code = c->killed_by ? 128 + c->killed_by : WEXITSTATUS(status);
}

/* One tick: wait for output (at most TICK_MS), copy it, reap children.
 * Returns the number of commands still running or being read. */
static int
tick(struct shellcmd *cmds, int n, FILE *tos[2], int64_t start)
{
	struct pollfd pfd[64];
	struct shellcmd *owner[64];
	int stream[64], np = 0, i, s, busy = 0;

	for (i = 0; i < n; i++)
		for (s = 0; s < 2; s++)
			if (cmds[i].fds[s] >= 0 && np < 64) {
				pfd[np] = (struct pollfd){.fd = cmds[i].fds[s], .events = POLLIN};
				owner[np] = &cmds[i];
				stream[np++] = s;
			}
	if (np > 0 && poll(pfd, (nfds_t)np, TICK_MS) > 0) {
		for (i = 0; i < np; i++)
			if (pfd[i].revents != 0)
				read_stream(owner[i], stream[i], tos[stream[i]]);
	} else if (np == 0) {
		wait_sleep_ms(TICK_MS / 4, NULL);
	}
	for (i = 0; i < n; i++) {
		struct shellcmd *c = &cmds[i];
		if (!c->is_started)
			continue;
		reap(c, start);
		for (s = 0; s < 2; s++)
			if (c->pid == 0 && c->fds[s] >= 0 &&
			    time_monotonic_ms() - c->exited_at >= GRACE_MS)
				close_stream(c, s, tos[s]);
		busy += c->pid > 0 || c->fds[0] >= 0 || c->fds[1] >= 0;
	}
	return busy;
}

int
shellcmd_run_all(struct shellcmd *cmds, int n, FILE *out, FILE *errout, struct error *err)
{
	FILE *tos[2] = {out, errout};
	int64_t start = time_monotonic_ms();
	int i, rc = 0;

	if (n > 32)
		return error_set(err, 0, "at most 32 commands at once");
	for (i = 0; i < n; i++) {
		cmds[i].fds[0] = cmds[i].fds[1] = -1;
		cmds[i].lines[0] = xmalloc(LINE_MAX_BYTES);
		cmds[i].lines[1] = xmalloc(LINE_MAX_BYTES);
		cmds[i].used[0] = cmds[i].used[1] = 0;
		cmds[i].is_started = cmds[i].killed_by = cmds[i].exit_code = 0;
		cmds[i].pid = 0;
	}
	for (i = 0; i < n && rc == 0; i++)
		rc = spawn_one(&cmds[i], err);
	fflush(out);
	fflush(errout);
	while (tick(cmds, n, tos, start) > 0)
		;
	for (i = 0; i < n; i++) {
		free(cmds[i].lines[0]);
		free(cmds[i].lines[1]);
		cmds[i].lines[0] = cmds[i].lines[1] = NULL;
	}
	return rc;
}

void
shellcmd_describe_exit(const struct shellcmd *c, char *buf, size_t size)
{
	if (!c->is_started)
		snprintf(buf, size, "could not be started");
	else if (c->killed_by != 0)
		snprintf(buf, size, "was killed by signal %d (%s)", c->killed_by,
		         strsignal(c->killed_by));
	else
		snprintf(buf, size, "exited with status %d", c->exit_code);
}
