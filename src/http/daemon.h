/*
 * daemon.h - `clustermgmt serve`: the daemon's main.
 */
#ifndef CM_DAEMON_H
#define CM_DAEMON_H

/* Parses the serve options (argv[0] is "serve"), starts the daemon and
 * runs it until SIGTERM/SIGINT (SIGHUP re-opens the log file and reloads
 * the TLS certificate and the roles file).
 * Returns the exit code. */
int serve_main(int argc, char **argv);

#endif
