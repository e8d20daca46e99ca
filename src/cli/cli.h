/*
 * cli.h - the client subcommands (everything but `serve`).
 */
#ifndef CM_CLI_H
#define CM_CLI_H

/* The process exit codes of PRODUCT §9. Functions below cli_main return
 * these instead of exiting. */
enum cli_exit {
	CLI_OK = 0,           /* done */
	CLI_REFUSED = 1,      /* the server answered with an error */
	CLI_USAGE = 2,        /* bad command line */
	CLI_UNREACHABLE = 3,  /* no answer: connection, DNS, TLS, timeout */
	CLI_TIMEOUT = 4,      /* gave up waiting (wait, rollout) */
	CLI_VERDICT_FAIL = 5, /* a deployed node is worse than its peers (rollout, verify) */
	CLI_VERDICT_INCONCLUSIVE = 6, /* too little traffic for a verdict (rollout, verify) */
};

/* Runs `clustermgmt <command> ...`; argv[0] is the program name and
 * argv[1] the command (global options may come before or after it).
 * Returns an enum cli_exit. Prints results on stdout and at most one
 * error sentence, prefixed "clustermgmt: ", on stderr. */
int cli_main(int argc, char **argv);

#endif
