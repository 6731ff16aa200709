/*
 * test_local_alias - the syntax of alias values, .forward and :include:
 * files (local/local_alias.c): what each target is, and where one ends.
 */
#include "autoconf.h"

#include <stdlib.h>

#include "testlib.h"
#include "local.h"

static struct local_target *t;
static size_t n;

static void
parse(const char *text)
{
	n = local_targets_parse(text, &t);
}

static int
teardown(void **state)
{
	local_targets_free(t, n);
	t = NULL;
	n = 0;
	return 0;
}

static void
commas_separate_addresses_and_white_space_is_trimmed(void **state)
{
	parse("  bob ,alice@example.test,\tcarol  ");
	assert_int_equal(n, 3);
	assert_int_equal(t[0].kind, TARGET_ADDRESS);
	assert_string_equal(t[0].value, "bob");
	assert_string_equal(t[1].value, "alice@example.test");
	assert_string_equal(t[2].value, "carol");
}

static void
each_kind_is_recognised_by_its_first_character(void **state)
{
	parse("|/usr/bin/procmail -a x, /var/mail/archive, "
	    "/home/u/Maildir/, :include:/etc/mail/list, \\demo, "
	    "<someone@example.test>");
	assert_int_equal(n, 6);
	assert_int_equal(t[0].kind, TARGET_COMMAND);
	assert_string_equal(t[0].value, "/usr/bin/procmail -a x");
	assert_int_equal(t[1].kind, TARGET_FILE);
	assert_string_equal(t[1].value, "/var/mail/archive");
	assert_int_equal(t[2].kind, TARGET_FILE);
	assert_string_equal(t[2].value, "/home/u/Maildir/");
	assert_int_equal(t[3].kind, TARGET_INCLUDE);
	assert_string_equal(t[3].value, "/etc/mail/list");
	assert_int_equal(t[4].kind, TARGET_MAILBOX);
	assert_string_equal(t[4].value, "demo");
	assert_int_equal(t[5].kind, TARGET_ADDRESS);
	assert_string_equal(t[5].value, "someone@example.test");
}

static void
double_quotes_keep_a_command_with_commas_whole(void **state)
{
	parse("\"|/bin/sh -c 'echo a, b >> /tmp/x'\", bob");
	assert_int_equal(n, 2);
	assert_int_equal(t[0].kind, TARGET_COMMAND);
	assert_string_equal(t[0].value, "/bin/sh -c 'echo a, b >> /tmp/x'");
	assert_int_equal(t[1].kind, TARGET_ADDRESS);
	assert_string_equal(t[1].value, "bob");
}

static void
forward_file_lines_and_comments(void **state)
{
	parse("# where my mail goes\n"
	    "\\demo\n"
	    "   # an indented comment, alice\n"
	    "bob@elsewhere.test\n\n");
	assert_int_equal(n, 2);
	assert_int_equal(t[0].kind, TARGET_MAILBOX);
	assert_string_equal(t[0].value, "demo");
	assert_string_equal(t[1].value, "bob@elsewhere.test");
}

static void
empty_and_blank_targets_are_dropped(void **state)
{
	parse(" , ,\n\n, ");
	assert_int_equal(n, 0);
	teardown(NULL);
	parse("|   , :include:, \\");
	assert_int_equal(n, 0);
}

static void
kind_names_are_stable(void **state)
{
	assert_string_equal(local_target_kind_name(TARGET_COMMAND), "command");
	assert_string_equal(local_target_kind_name(TARGET_INCLUDE), "include");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(
		    commas_separate_addresses_and_white_space_is_trimmed,
		    teardown),
		cmocka_unit_test_teardown(
		    each_kind_is_recognised_by_its_first_character, teardown),
		cmocka_unit_test_teardown(
		    double_quotes_keep_a_command_with_commas_whole, teardown),
		cmocka_unit_test_teardown(forward_file_lines_and_comments,
		    teardown),
		cmocka_unit_test_teardown(empty_and_blank_targets_are_dropped,
		    teardown),
		cmocka_unit_test(kind_names_are_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
