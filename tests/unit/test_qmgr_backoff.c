/*
 * test_qmgr_backoff - qmgr's retry times and queue lifetimes
 * (qmgr/qmgr_backoff.c).
 */
#include "autoconf.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testlib.h"
#include "qmgr.h"

static void
young_message_waits_minimal_backoff_time(void **state)
{
	assert_int_equal(qmgr_backoff(0, 300, 4000), 300);
	assert_int_equal(qmgr_backoff(12.5, 300, 4000), 300);
	assert_int_equal(qmgr_backoff(299.9, 300, 4000), 300);
}

static void
backoff_grows_with_the_message_age(void **state)
{
	/* Tried at age t, next at 2t: the interval doubles each time. */
	assert_int_equal(qmgr_backoff(300, 300, 4000), 300);
	assert_int_equal(qmgr_backoff(600, 300, 4000), 600);
	assert_int_equal(qmgr_backoff(1200, 300, 4000), 1200);
	assert_int_equal(qmgr_backoff(2400.7, 300, 4000), 2400);
}

static void
backoff_never_passes_maximal_backoff_time(void **state)
{
	assert_int_equal(qmgr_backoff(4000, 300, 4000), 4000);
	assert_int_equal(qmgr_backoff(86400 * 5, 300, 4000), 4000);
	assert_int_equal(qmgr_backoff(1e30, 300, 4000), 4000);
}

static void
clock_stepped_back_or_bad_limits_give_minimal_backoff(void **state)
{
	assert_int_equal(qmgr_backoff(-50, 300, 4000), 300);
	assert_int_equal(qmgr_backoff(NAN, 300, 4000), 300);
	/* maximal below minimal: minimal wins, nothing is retried faster */
	assert_int_equal(qmgr_backoff(5000, 300, 100), 300);
}

static void
message_expires_at_its_queue_lifetime(void **state)
{
	unsigned long five_days = 5 * 86400, one_day = 86400;

	assert_false(qmgr_expired(five_days - 1, 0, five_days, one_day));
	assert_true(qmgr_expired(five_days, 0, five_days, one_day));
	assert_true(qmgr_expired(five_days + 1, 0, five_days, one_day));
}

static void
null_sender_mail_uses_bounce_queue_lifetime(void **state)
{
	unsigned long five_days = 5 * 86400, one_day = 86400;

	assert_true(qmgr_expired(one_day + 1, 1, five_days, one_day));
	assert_false(qmgr_expired(one_day + 1, 0, five_days, one_day));
	assert_false(qmgr_expired(one_day - 1, 1, five_days, one_day));
}

static void
lifetime_zero_expires_at_the_first_deferral(void **state)
{
	assert_true(qmgr_expired(0, 0, 0, 0));
	assert_true(qmgr_expired(0.001, 1, 3600, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(young_message_waits_minimal_backoff_time),
		cmocka_unit_test(backoff_grows_with_the_message_age),
		cmocka_unit_test(backoff_never_passes_maximal_backoff_time),
		cmocka_unit_test(
		    clock_stepped_back_or_bad_limits_give_minimal_backoff),
		cmocka_unit_test(message_expires_at_its_queue_lifetime),
		cmocka_unit_test(null_sender_mail_uses_bounce_queue_lifetime),
		cmocka_unit_test(lifetime_zero_expires_at_the_first_deferral),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
