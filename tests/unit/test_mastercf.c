/*
 * test_mastercf - master.cf columns, defaults and -o overrides are read
 * as Postfix reads them, and every malformed line is an error naming the
 * file, the line and the column.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "mastercf.h"
#include "strv.h"

static char dir[64];
static char path[128];

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_mastercf.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/master.cf", dir);
	return 0;
}

static int
teardown(void **state)
{
	unlink(path);
	rmdir(dir);
	return 0;
}

static struct master_service *
load(const char *text, size_t *count, char **err)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	*err = NULL;
	return mastercf_load(path, count, err);
}

static struct master_service *
load_ok(const char *text, size_t *count)
{
	struct master_service *s;
	char *err;

	if ((s = load(text, count, &err)) == NULL)
		fail_msg("mastercf_load failed: %s", err);
	return s;
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void
postfix_columns_are_read_in_order(void **state)
{
	struct master_service *s;
	size_t n;

	s = load_ok("# service type private unpriv chroot wakeup maxproc "
	    "command\n"
	    "smtp      inet  n       y       y       -       100     smtpd\n"
	    "\n"
	    "qmgr      unix  n       n       n       300     1       qmgr\n"
	    "tlsmgr    unix-dgram -  -       -       1000?   1       tlsmgr\n"
	    "cleanup   fifo  y       -       -       -       0       cleanup "
	    "-v -v\n"
	    "[::1]:2525 pass -       -       -       -       -       smtpd\n",
	    &n);
	assert_int_equal(n, 5);
	assert_string_equal(s[0].name, "smtp");
	assert_int_equal(s[0].type, SERVICE_INET);
	assert_false(s[0].private);
	assert_true(s[0].unpriv);
	assert_true(s[0].chroot);
	assert_int_equal(s[0].wakeup, 0);
	assert_int_equal(s[0].maxproc, 100);
	assert_string_equal(s[0].command, "smtpd");
	assert_null(s[0].args[0]);
	assert_null(s[0].overrides[0]);
	assert_string_equal(s[0].file, path);
	assert_int_equal(s[0].line, 2);

	assert_int_equal(s[1].type, SERVICE_UNIX);
	assert_false(s[1].unpriv);
	assert_false(s[1].chroot);
	assert_int_equal(s[1].wakeup, 300);
	assert_int_equal(s[1].maxproc, 1);
	assert_int_equal(s[1].line, 4);

	assert_int_equal(s[2].type, SERVICE_UNIX_DGRAM);
	assert_int_equal(s[2].wakeup, 1000);

	assert_int_equal(s[3].type, SERVICE_FIFO);
	assert_int_equal(s[3].maxproc, 0);
	assert_int_equal(strv_len(s[3].args), 2);
	assert_string_equal(s[3].args[0], "-v");

	assert_string_equal(s[4].name, "[::1]:2525");
	assert_int_equal(s[4].type, SERVICE_PASS);
	mastercf_free(s, n);
}

static void
dash_means_the_default(void **state)
{
	struct master_service *s;
	size_t n;

	s = load_ok("local unix - - - - - local\n", &n);
	assert_int_equal(n, 1);
	assert_true(s[0].private);
	assert_true(s[0].unpriv);
	assert_false(s[0].chroot);
	assert_int_equal(s[0].wakeup, 0);
	assert_int_equal(s[0].maxproc, -1);
	mastercf_free(s, n);
}

static void
continuation_lines_and_overrides(void **state)
{
	struct master_service *s;
	size_t n;

	s = load_ok("submission inet n - n - - smtpd\n"
	    "  -o syslog_name=tern/submission\n"
	    "# a comment does not end the service\n"
	    "\t-o smtpd_tls_security_level=encrypt -v\n"
	    "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
	    "smtp unix - - n - - smtp\n", &n);
	assert_int_equal(n, 2);
	assert_int_equal(s[0].line, 1);
	assert_int_equal(strv_len(s[0].overrides), 3);
	assert_string_equal(s[0].overrides[0], "syslog_name=tern/submission");
	assert_string_equal(s[0].overrides[1],
	    "smtpd_tls_security_level=encrypt");
	assert_string_equal(s[0].overrides[2],
	    "smtpd_client_restrictions=permit_sasl_authenticated,reject");
	assert_int_equal(strv_len(s[0].args), 1);
	assert_string_equal(s[0].args[0], "-v");
	assert_int_equal(s[1].line, 6);
	assert_string_equal(service_type_name(s[1].type), "unix");
	mastercf_free(s, n);
}

static void
empty_file_has_no_services(void **state)
{
	struct master_service *s;
	size_t n = 99;

	s = load_ok("", &n);
	assert_int_equal(n, 0);
	mastercf_free(s, n);
	s = load_ok("# only comments\n\n   \n", &n);
	assert_int_equal(n, 0);
	mastercf_free(s, n);
}

static void
every_malformed_line_is_an_error(void **state)
{
	static const struct {
		const char *text, *want1, *want2;
	} cases[] = {
		{ "# c\nsmtp inet n - n - smtpd\n", "line 2:",
		    "7 columns, expected at least 8" },
		{ "smtp\n", "line 1:", "1 columns" },
		{ "smtp tcp n - n - - smtpd\n", "line 1:", "bad type \"tcp\"" },
		{ "smtp inet yes - n - - smtpd\n", "line 1:",
		    "bad private column \"yes\"" },
		{ "smtp inet n Y n - - smtpd\n", "line 1:",
		    "bad unpriv column \"Y\"" },
		{ "smtp inet n - 1 - - smtpd\n", "line 1:",
		    "bad chroot column \"1\"" },
		{ "qmgr unix n - n soon 1 qmgr\n", "line 1:",
		    "bad wakeup column \"soon\"" },
		{ "qmgr unix n - n -5 1 qmgr\n", "line 1:",
		    "bad wakeup column" },
		{ "qmgr unix n - n 99999999999 1 qmgr\n", "line 1:",
		    "bad wakeup column" },
		{ "qmgr unix n - n 300 many qmgr\n", "line 1:",
		    "bad maxproc column \"many\"" },
		{ "qmgr unix n - n 300 -1 qmgr\n", "line 1:",
		    "bad maxproc column" },
		{ "qmgr unix n - n 300 4294967297 qmgr\n", "line 1:",
		    "bad maxproc column" },
		{ "smtpd inet n - n - - smtpd -o\n", "line 1:",
		    "-o without name=value" },
		{ "smtpd inet n - n - - smtpd\n  -o smtpd_timeout\n", "line 1:",
		    "bad -o \"smtpd_timeout\"" },
		{ "smtpd inet n - n - - smtpd -o smtpd_timeout = 5\n",
		    "line 1:", "bad -o \"smtpd_timeout\"" },
		{ "smtpd inet n - n - - smtpd -o =5\n", "line 1:",
		    "bad -o \"=5\"" },
		{ "  smtp inet n - n - - smtpd\n", "line 1:", "continuation" },
		{ "smtp unix - - n - - smtp\nrelay unix - - n - - smtp\n"
		    "smtp unix - - n - - smtp\n", "line 3:",
		    "smtp/unix is already defined on line 1" },
		{ "../x unix - - n - - smtp\n", "line 1:",
		    "bad service name" },
		{ ".. unix - - n - - smtp\n", "line 1:", "bad service name" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = 99;
		char *err;

		assert_null(load(cases[i].text, &n, &err));
		assert_non_null(err);
		assert_int_equal(n, 0);
		assert_contains(err, path);
		assert_contains(err, cases[i].want1);
		assert_contains(err, cases[i].want2);
		free(err);
	}
}

static void
same_name_with_other_type_is_allowed(void **state)
{
	struct master_service *s;
	size_t n;

	s = load_ok("smtp inet n - n - - smtpd\nsmtp unix - - n - - smtp\n",
	    &n);
	assert_int_equal(n, 2);
	mastercf_free(s, n);
}

static void
missing_file_is_an_error(void **state)
{
	size_t n = 99;
	char *err = NULL;

	assert_null(mastercf_load(path, &n, &err));
	assert_int_equal(n, 0);
	assert_contains(err, "cannot open");
	assert_contains(err, path);
	free(err);
}

static void
sample_file_from_the_tree_loads(void **state)
{
	struct master_service *s;
	size_t n;
	char *err = NULL;

	s = mastercf_load(TEST_DATA_DIR "/master.cf-sample", &n, &err);
	if (s == NULL)
		fail_msg("%s", err);
	assert_true(n >= 5);
	assert_string_equal(s[0].name, "smtp");
	mastercf_free(s, n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(postfix_columns_are_read_in_order),
		T(dash_means_the_default),
		T(continuation_lines_and_overrides),
		T(empty_file_has_no_services),
		T(every_malformed_line_is_an_error),
		T(same_name_with_other_type_is_allowed),
		T(missing_file_is_an_error),
		cmocka_unit_test(sample_file_from_the_tree_loads),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
