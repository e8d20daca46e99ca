/*
 * store_cli.c - `clustermgmt store copy --from A --to B [--force]`.
 *
 * Opens both stores as a daemon would (creating and migrating the
 * destination; an SQLite file in use by a daemon is refused by its lock)
 * and hands them to store_copy, which does the work in one transaction of
 * the destination.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "store.h"
#include "store_cli.h"

static const char usage[] =
    "usage: clustermgmt store copy --from PATH_OR_URL --to PATH_OR_URL [--force]\n"
    "\n"
    "Copies a whole store - clusters, nodes with their status and TTL, users,\n"
    "tokens and the audit log - from one database to another: an SQLite file\n"
    "(PATH) or PostgreSQL (a postgres:// URL or a libpq keyword string). The\n"
    "destination is created or migrated as needed and must be empty (no\n"
    "clusters, users, tokens or audit entries) unless --force, which replaces\n"
    "what it holds. Stop the daemon using an SQLite source or destination\n"
    "first (its lock refuses the copy otherwise); daemons running on a\n"
    "PostgreSQL destination reload the copied state by themselves.\n"
    "\n"
    "Exit codes: 0 copied, 1 refused or failed, 2 usage error.\n";

static int
copy_main(int argc, char **argv)
{
	static const struct option longopts[] = {{"from", required_argument, NULL, 'f'},
	                                         {"to", required_argument, NULL, 't'},
	                                         {"force", no_argument, NULL, 'F'},
	                                         {"help", no_argument, NULL, 'h'},
	                                         {NULL, 0, NULL, 0}};
	const char *from_spec = NULL, *to_spec = NULL;
	struct store *from = NULL, *to = NULL;
	struct error err = {0};
	size_t n_nodes = 0, n_audit = 0;
	int ch, force = 0, rc = 1;

	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			from_spec = optarg;
			break;
		case 't':
			to_spec = optarg;
			break;
		case 'F':
			force = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fprintf(stderr,
			        "clustermgmt store copy: unknown or incomplete option '%s'\n%s",
			        argv[optind - 1], usage);
			return 2;
		}
	}
	if (optind != argc || from_spec == NULL || to_spec == NULL) {
		fprintf(stderr, "clustermgmt store copy: --from and --to are both needed\n%s",
		        usage);
		return 2;
	}
	if (strcmp(from_spec, to_spec) == 0) {
		fprintf(stderr, "clustermgmt store copy: --from and --to name the same store\n");
		return 2;
	}
	if ((from = store_open(from_spec, &err)) == NULL ||
	    (to = store_open(to_spec, &err)) == NULL)
		goto bad;
	if (store_copy(from, to, force, &n_nodes, &n_audit, &err) != 0)
		goto bad;
	printf("copied %s to %s: %zu nodes, %zu audit entries\n", store_describe(from),
	       store_describe(to), n_nodes, n_audit);
	rc = 0;
	goto done;
bad:
	fprintf(stderr, "clustermgmt store copy: %s\n", err.what);
done:
	store_close(from);
	store_close(to);
	return rc;
}

int
store_cli_main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "copy") == 0)
		return copy_main(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0)) {
		fputs(usage, stdout);
		return 0;
	}
	fprintf(stderr, "clustermgmt store: expected 'copy'\n%s", usage);
	return 2;
}
