/*
 * test_log.c - the log line formats (src/util/log.h): logfmt stays the
 * default, JSON lines are valid JSON whatever the values hold, overlong
 * lines stay one valid line, and a log file is re-opened by log_reopen.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../src/util/log.h"

static char path[64];

static int
setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/cm-test-log-XXXXXX");
	if ((fd = mkstemp(path)) == -1)
		return -1;
	close(fd);
	return log_open_file(path);
}

static int
teardown(void **state)
{
	(void)state;
	log_set_format(LOG_FORMAT_LOGFMT);
	unlink(path);
	return 0;
}

/* The file's content; the caller frees it. */
static char *
slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	char *buf = calloc(1, 1 << 16);
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_logfmt_is_the_default(void **state)
{
	char *text;

	(void)state;
	log_kv(LOG_INFO, "hello world", "who", "me", NULL);
	text = slurp(path);
	assert_non_null(strstr(text, " level=info msg=\"hello world\" who=me\n"));
	assert_int_equal(strncmp(text, "ts=", 3), 0);
	free(text);
}

static void
test_json_line_is_one_object_with_every_key(void **state)
{
	json_error_t jerr;
	json_t *o;
	char *text;

	(void)state;
	log_set_format(LOG_FORMAT_JSON);
	log_kv(LOG_WARN, "status changed", "reason", "say \"hi\"\\\nbye\x01", "node", "a", NULL);
	text = slurp(path);
	assert_int_equal(strchr(text, '\n') - text + 1, (long)strlen(text)); /* one line */
	o = json_loads(text, 0, &jerr);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "status changed");
	assert_string_equal(json_string_value(json_object_get(o, "reason")),
	                    "say \"hi\"\\\nbye\x01");
	assert_string_equal(json_string_value(json_object_get(o, "node")), "a");
	assert_non_null(json_object_get(o, "ts"));
	json_decref(o);
	free(text);
}

static void
test_json_replaces_invalid_utf8(void **state)
{
	json_error_t jerr;
	json_t *o;
	char *text;

	(void)state;
	log_set_format(LOG_FORMAT_JSON);
	/* a lone continuation byte, an overlong '/', a valid "é" */
	log_kv(LOG_INFO, "probe", "agent", "a\x80z\xc0\xaf\xc3\xa9", NULL);
	text = slurp(path);
	o = json_loads(text, 0, &jerr);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "agent")),
	                    "a\xef\xbf\xbdz\xef\xbf\xbd\xef\xbf\xbd\xc3\xa9");
	json_decref(o);
	free(text);
}

static void
test_overlong_json_line_drops_whole_pairs(void **state)
{
	char big[6000];
	json_error_t jerr;
	json_t *o;
	char *text;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	log_set_format(LOG_FORMAT_JSON);
	log_kv(LOG_INFO, "big", "small", "kept", "huge", big, NULL);
	text = slurp(path);
	assert_true(strlen(text) <= 4096);
	o = json_loads(text, 0, &jerr);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "small")), "kept");
	assert_null(json_object_get(o, "huge"));
	json_decref(o);
	free(text);
}

static void
test_reopen_follows_a_rotated_file(void **state)
{
	char rotated[80], *text;

	(void)state;
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	log_kv(LOG_INFO, "before", NULL);
	assert_int_equal(rename(path, rotated), 0);
	log_kv(LOG_INFO, "between", NULL); /* still the old file */
	assert_int_equal(log_reopen(), 0);
	log_kv(LOG_INFO, "after", NULL);
	text = slurp(rotated);
	assert_non_null(strstr(text, "msg=before"));
	assert_non_null(strstr(text, "msg=between"));
	assert_null(strstr(text, "msg=after"));
	free(text);
	text = slurp(path);
	assert_non_null(strstr(text, "msg=after"));
	free(text);
	unlink(rotated);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_logfmt_is_the_default, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_json_line_is_one_object_with_every_key, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_json_replaces_invalid_utf8, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overlong_json_line_drops_whole_pairs, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_follows_a_rotated_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
