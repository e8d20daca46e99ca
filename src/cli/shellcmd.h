/*
 * shellcmd.h - run shell commands (/bin/sh -c) side by side, each line of
 * their output prefixed with a label, for `rollout`.
 *
 * The commands run at once (a rollout batch), with stdin from /dev/null
 * (they share no terminal, and stdin may have held a password). Each line
 * a command writes to stdout or stderr is copied, as "LABEL| line", to the
 * FILE given for that stream, so the output of parallel commands never
 * mixes within a line. A command is done when its process exits: output a
 * background process it started keeps writing is read for a short grace
 * period and then no longer followed.
 */
#ifndef CM_SHELLCMD_H
#define CM_SHELLCMD_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "core/error.h"

struct shellcmd {
	/* set by the caller, borrowed */
	const char *label;   /* prefix of every output line */
	const char *command; /* for /bin/sh -c */
	char **env;          /* the whole environment, NULL-terminated */
	/* filled by shellcmd_run_all */
	int is_started;
	int exit_code;      /* 0..255, or 128 + signal when killed */
	int killed_by;      /* the signal that ended it, 0 when it exited */
	int64_t elapsed_ms; /* from start to exit */
	/* internal */
	pid_t pid;
	int fds[2]; /* read ends of stdout, stderr; -1 when closed */
	char *lines[2];
	size_t used[2];
	int64_t exited_at;
};

/* Runs cmds[0..n) at once and returns when every one has exited; their
 * output goes to out (stdout lines) and errout (stderr lines). Returns 0,
 * or -1 with err filled when a command could not be started (those that
 * were started have still been waited for; is_started tells which). */
int shellcmd_run_all(struct shellcmd *cmds, int n, FILE *out, FILE *errout, struct error *err);

/* "exited with status 3", "was killed by signal 9 (Killed)" for c. */
void shellcmd_describe_exit(const struct shellcmd *c, char *buf, size_t size);

#endif
