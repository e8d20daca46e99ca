/*
 * cmd_daemons.c - `daemons`: every daemon sharing the store, as they
 * registered themselves (viewer role).
 */
#include <stdio.h>
#include <time.h>

#include "cli_internal.h"
#include "output.h"

/* ID VERSION LAG HEARTBEAT STATE: the lag in versions and seconds. */
static void
print_daemons_table(const json_t *answer)
{
	static const char *const header[] = {"ID", "VERSION", "LAG", "HEARTBEAT", "STATE"};
	struct table *t = table_new(5, header);
	char version[32], lag[64], beat[48];
	const char *row[5];
	struct timespec now;
	json_t *d;
	size_t i;

	clock_gettime(CLOCK_REALTIME, &now);
	json_array_foreach(json_object_get(answer, "daemons"), i, d)
	{
		snprintf(version, sizeof(version), "%" JSON_INTEGER_FORMAT,
		         json_integer_value(json_object_get(d, "version")));
		snprintf(lag, sizeof(lag), "%" JSON_INTEGER_FORMAT " (%.1fs)",
		         json_integer_value(json_object_get(d, "lag_versions")),
		         json_number_value(json_object_get(d, "lag_seconds")));
		row[0] = output_field(d, "id");
		row[1] = version;
		row[2] = lag;
		row[3] = output_relative_time(output_field(d, "heartbeat_at"),
		                              (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000,
		                              beat, sizeof(beat));
		row[4] = json_is_true(json_object_get(d, "stale"))  ? "stale"
		         : json_is_true(json_object_get(d, "self")) ? "ok (this one)"
		                                                    : "ok";
		table_add_row(t, row);
	}
	table_print(t, stdout);
	table_free(t);
}

int
cmd_daemons(struct cli *cli, int nargs, char **args, struct error *err)
{
	(void)args;
	return cli_list(cli, nargs, "daemons", client_path("v1", "daemons", NULL),
	                print_daemons_table, err);
}
