/*
 * store_cli.h - `clustermgmt store ...`: commands that work on a store
 * directly, without a daemon (today: copy, the way from one SQLite file
 * to PostgreSQL shared by several daemons, and back).
 */
#ifndef CM_STORE_CLI_H
#define CM_STORE_CLI_H

/* argv[0] is "store". Prints what it did on stdout, errors on stderr.
 * Returns the exit code: 0 done, 1 refused or failed, 2 usage error. */
int store_cli_main(int argc, char **argv);

#endif
