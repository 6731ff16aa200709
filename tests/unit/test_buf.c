/*
 * test_buf - the growable buffer keeps its maximum and its NUL.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "buf.h"

static void
append_grows_and_stays_terminated(void **state)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_puts(&b, "abc"), 0);
	assert_int_equal(b.len, 3000);
	assert_int_equal(b.data[3000], '\0');
	assert_int_equal(strlen(buf_cstr(&b)), 3000);
	buf_free(&b);
}

static void
append_at_maximum_is_accepted_one_more_is_refused(void **state)
{
	struct buf b;

	buf_init(&b, 10);
	assert_int_equal(buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(buf_putc(&b, 'x'), -1);
	assert_int_equal(b.len, 10);
	assert_string_equal(buf_cstr(&b), "0123456789");
	buf_free(&b);
}

static void
refused_append_leaves_contents_unchanged(void **state)
{
	struct buf b;

	buf_init(&b, 8);
	assert_int_equal(buf_puts(&b, "abcd"), 0);
	assert_int_equal(buf_puts(&b, "efghi"), -1);
	assert_string_equal(buf_cstr(&b), "abcd");
	assert_int_equal(buf_printf(&b, "%s", "123456"), -1);
	assert_string_equal(buf_cstr(&b), "abcd");
	assert_int_equal(buf_printf(&b, "%d", 1234), 0);
	assert_string_equal(buf_cstr(&b), "abcd1234");
	buf_free(&b);
}

static void
huge_length_does_not_wrap(void **state)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	assert_int_equal(buf_puts(&b, "x"), 0);
	assert_int_equal(buf_append(&b, "y", (size_t)-1), -1);
	assert_int_equal(buf_append(&b, "y", BUF_NOMAX), -1);
	buf_free(&b);
}

static void
consume_and_steal(void **state)
{
	struct buf b;
	char *s;

	buf_init(&b, 100);
	buf_puts(&b, "hello world");
	buf_consume(&b, 6);
	assert_string_equal(buf_cstr(&b), "world");
	buf_consume(&b, 99);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	buf_puts(&b, "kept");
	s = buf_steal(&b);
	assert_string_equal(s, "kept");
	assert_int_equal(b.len, 0);
	assert_int_equal(b.max, 100);
	free(s);
	buf_free(&b);
}

static void
binary_data_with_nul_is_kept(void **state)
{
	struct buf b;

	buf_init(&b, 100);
	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b", 3);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(append_grows_and_stays_terminated),
		cmocka_unit_test(append_at_maximum_is_accepted_one_more_is_refused),
		cmocka_unit_test(refused_append_leaves_contents_unchanged),
		cmocka_unit_test(huge_length_does_not_wrap),
		cmocka_unit_test(consume_and_steal),
		cmocka_unit_test(binary_data_with_nul_is_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
