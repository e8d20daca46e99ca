/*
 * cli.h - the client subcommands (everything but `serve`).
 */
#ifndef CM_CLI_H
#define CM_CLI_H

/* Runs `clustermgmt <command> ...`; argv[0] is the program name and
 * argv[1] the command. Returns the process exit code of PRODUCT §9:
 * 0 done, 1 refused by the server, 2 usage error, 3 server unreachable,
 * 4 timed out waiting. */
int cli_main(int argc, char **argv);

#endif
