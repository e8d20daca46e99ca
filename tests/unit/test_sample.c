/*
 * test_sample.c - the difference of two readings of a load balancer's
 * counters (src/sample/sample.h, sample_delta): what counts as an error
 * and as an attempt, a reload, and the mean response time recovered from
 * HAProxy's moving average.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/sample/sample.h"

static struct sample_server
server(uint64_t ok, uint64_t e5xx, uint64_t econ, uint64_t eresp, double rtime)
{
	struct sample_server s;

	memset(&s, 0, sizeof(s));
	strcpy(s.name, "app1");
	s.is_found = 1;
	s.hrsp[1] = ok;
	s.hrsp[4] = e5xx;
	s.econ = econ;
	s.eresp = eresp;
	s.rtime_ms = rtime;
	return s;
}

static void
test_errors_are_5xx_and_failed_connections_and_responses(void **state)
{
	struct sample_server a = server(100, 1, 0, 0, -1), b = server(127, 4, 2, 1, -1);
	struct sample_change ch;

	(void)state;
	sample_delta(&a, &b, &ch);
	assert_false(ch.is_reset);
	assert_int_equal(ch.answered, 30); /* 27 2xx + 3 5xx */
	assert_int_equal(ch.responses, 33);
	assert_int_equal(ch.errors, 6);
	assert_int_equal(ch.timed, 0); /* no rtime: no latency */
}

static void
test_a_counter_going_backwards_is_a_reset_never_a_negative_rate(void **state)
{
	struct sample_server a = server(1000, 10, 3, 0, 20), b = server(5, 0, 0, 0, 20);
	struct sample_change ch;

	(void)state;
	sample_delta(&a, &b, &ch);
	assert_true(ch.is_reset);
	assert_int_equal(ch.responses, 0);
	assert_int_equal(ch.errors, 0);
	a = server(1000, 10, 3, 0, 20);
	b = server(1010, 10, 1, 0, 20); /* econ alone went back */
	sample_delta(&a, &b, &ch);
	assert_true(ch.is_reset);
}

static void
test_a_server_missing_from_either_reading_gives_nothing(void **state)
{
	struct sample_server a = server(10, 0, 0, 0, -1), b = server(20, 5, 0, 0, -1);
	struct sample_change ch;

	(void)state;
	a.is_found = 0;
	sample_delta(&a, &b, &ch);
	assert_false(ch.is_reset);
	assert_int_equal(ch.responses, 0);
}

static void
test_mean_response_time_is_recovered_from_the_moving_average(void **state)
{
	double avg = 20, d, mean;
	struct sample_server a, b;
	struct sample_change ch;
	int i, k = 30;

	(void)state;
	/* HAProxy's average after k answers of 320 ms, from 20 ms */
	for (i = 0; i < k; i++)
		avg += (320 - avg) / SAMPLE_HAPROXY_RTIME_SAMPLES;
	a = server(1000, 0, 0, 0, 20);
	b = server(1000 + (uint64_t)k, 0, 0, 0, round(avg)); /* HAProxy shows whole ms */
	sample_delta(&a, &b, &ch);
	assert_int_equal(ch.timed, k);
	mean = ch.latency_ms_sum / (double)ch.timed;
	d = fabs(mean - 320);
	assert_true(d < 15); /* the rounding of one ms, amplified by 512 / 30 */
}

static void
test_varnish_times_come_from_the_log_not_the_average(void **state)
{
	struct sample_server a = server(0, 0, 0, 0, -1), b = server(0, 0, 0, 0, -1);
	struct sample_change ch;

	(void)state;
	a.requests = 50;
	b.requests = 60;
	b.hrsp[4] = 2;
	a.timed_total = 50;
	a.latency_ms_total = 500;
	b.timed_total = 58;
	b.latency_ms_total = 500 + 8 * 300;
	sample_delta(&a, &b, &ch);
	assert_int_equal(ch.answered, 10); /* VBE req */
	assert_int_equal(ch.errors, 2);
	assert_int_equal(ch.timed, 8);
	assert_true(fabs(ch.latency_ms_sum - 2400) < 1e-9);
	b.is_discontinuous = 1; /* the log lost records */
	sample_delta(&a, &b, &ch);
	assert_true(ch.is_reset);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errors_are_5xx_and_failed_connections_and_responses),
	    cmocka_unit_test(test_a_counter_going_backwards_is_a_reset_never_a_negative_rate),
	    cmocka_unit_test(test_a_server_missing_from_either_reading_gives_nothing),
	    cmocka_unit_test(test_mean_response_time_is_recovered_from_the_moving_average),
	    cmocka_unit_test(test_varnish_times_come_from_the_log_not_the_average),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
