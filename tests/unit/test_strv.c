/*
 * test_strv - list splitting as main.cf lists need it.
 */
#include "autoconf.h"

#include "testlib.h"
#include "strv.h"

static void
split_on_commas_and_space_drops_empty_fields(void **state)
{
	char **v = strv_split(" a, b,,c\td ,", ", \t");

	assert_int_equal(strv_len(v), 4);
	assert_string_equal(v[0], "a");
	assert_string_equal(v[3], "d");
	assert_null(v[4]);
	assert_true(strv_contains(v, "C"));
	assert_false(strv_contains(v, "e"));
	strv_free(v);
}

static void
empty_input_gives_empty_vector(void **state)
{
	char **v = strv_split("  ,, ", ", ");

	assert_non_null(v);
	assert_int_equal(strv_len(v), 0);
	strv_free(v);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(split_on_commas_and_space_drops_empty_fields),
		cmocka_unit_test(empty_input_gives_empty_vector),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
