/*
 * main.c - `clustermgmt` entry point: `serve` runs the daemon, `store`
 * works on a store directly, every other subcommand is a client of the
 * daemon's HTTP API.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "http/daemon.h"
#include "store/store_cli.h"

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return serve_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "store") == 0)
		return store_cli_main(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)) {
		printf("clustermgmt %s\n", CM_VERSION);
		return 0;
	}
	return cli_main(argc, argv);
}
