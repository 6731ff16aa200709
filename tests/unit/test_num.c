/*
 * test_num - number parsing rejects overflow, signs and junk.
 */
#include "autoconf.h"

#include <limits.h>
#include <stdio.h>

#include "testlib.h"
#include "num.h"

static void
plain_numbers_parse(void **state)
{
	unsigned long v;
	int i;

	assert_int_equal(parse_ulong("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_ulong("10240000", 0, ULONG_MAX, &v), 0);
	assert_int_equal(v, 10240000);
	assert_int_equal(parse_int("100", 1, 1000, &i), 0);
	assert_int_equal(i, 100);
}

static void
overflow_is_rejected(void **state)
{
	unsigned long v = 7;
	char big[64];
	size_t sz;

	snprintf(big, sizeof(big), "%lu0", ULONG_MAX);
	assert_int_equal(parse_ulong(big, 0, ULONG_MAX, &v), -1);
	assert_int_equal(v, 7);
	assert_int_equal(parse_ulong("99999999999999999999999", 0, ULONG_MAX,
	    &v), -1);
	assert_int_equal(parse_size("18446744073709551616", &sz), -1);
	snprintf(big, sizeof(big), "%lu", ULONG_MAX);
	assert_int_equal(parse_ulong(big, 0, ULONG_MAX, &v), 0);
	assert_true(v == ULONG_MAX);
}

static void
out_of_range_is_rejected(void **state)
{
	int i = 3;

	assert_int_equal(parse_int("1001", 1, 1000, &i), -1);
	assert_int_equal(parse_int("0", 1, 1000, &i), -1);
	assert_int_equal(parse_int("2147483648", 0, INT_MAX, &i), -1);
	assert_int_equal(i, 3);
}

static void
signs_space_and_junk_are_rejected(void **state)
{
	static const char *bad[] = { "", "-1", "+1", " 1", "1 ", "1x", "0x10",
	    "1.5", "１", NULL };
	unsigned long v;

	for (int i = 0; bad[i] != NULL; i++)
		assert_int_equal(parse_ulong(bad[i], 0, ULONG_MAX, &v), -1);
	assert_int_equal(parse_ulong(NULL, 0, 1, &v), -1);
}

static void
times_take_units(void **state)
{
	unsigned long t;

	assert_int_equal(parse_time("300", 's', ULONG_MAX, &t), 0);
	assert_int_equal(t, 300);
	assert_int_equal(parse_time("5m", 's', ULONG_MAX, &t), 0);
	assert_int_equal(t, 300);
	assert_int_equal(parse_time("5", 'd', ULONG_MAX, &t), 0);
	assert_int_equal(t, 5 * 86400);
	assert_int_equal(parse_time("1w", 's', ULONG_MAX, &t), 0);
	assert_int_equal(t, 604800);
	assert_int_equal(parse_time("2h", 's', 3600, &t), -1);
	assert_int_equal(parse_time("5x", 's', ULONG_MAX, &t), -1);
	assert_int_equal(parse_time("5ms", 's', ULONG_MAX, &t), -1);
	assert_int_equal(parse_time("m", 's', ULONG_MAX, &t), -1);
	assert_int_equal(parse_time("99999999999999999w", 's', ULONG_MAX, &t),
	    -1);
}

static void
booleans(void **state)
{
	int b = 5;

	assert_int_equal(parse_bool("yes", &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(parse_bool("NO", &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(parse_bool("maybe", &b), -1);
	assert_int_equal(parse_bool("", &b), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_numbers_parse),
		cmocka_unit_test(overflow_is_rejected),
		cmocka_unit_test(out_of_range_is_rejected),
		cmocka_unit_test(signs_space_and_junk_are_rejected),
		cmocka_unit_test(times_take_units),
		cmocka_unit_test(booleans),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
