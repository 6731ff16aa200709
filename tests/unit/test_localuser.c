/*
 * test_localuser - users from local_passwd_file: found by exact name,
 * unknown is "not found" (errno 0) but an unreadable file is an error,
 * and a file changed or replaced after a lookup is read again (the
 * module keeps the file between lookups and must not serve stale users).
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "config.h"
#include "localuser.h"
#include "priv.h"

static char dir[] = "/tmp/test_localuser.XXXXXX";
static char passwd[256];

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
	char *err = NULL;

	assert_non_null(mkdtemp(dir));
	snprintf(passwd, sizeof(passwd), "%s/passwd", dir);
	write_file(passwd, "# local users\n"
	    "demo:x:1000:1001:Demo:/home/demo:/bin/sh\n"
	    "demo2:x:1002:1002::/home/demo2:/bin/false\n");
	assert_int_equal(config_set("local_passwd_file", passwd, &err), 0);
	return 0;
}

static int
teardown(void **state)
{
	char *p = xasprintf("%s/new", dir);

	unlink(p);
	free(p);
	unlink(passwd);
	rmdir(dir);
	return 0;
}

static void
user_is_found_by_exact_name(void **state)
{
	struct priv_user pw;

	assert_int_equal(local_user_lookup("demo", &pw), 0);
	assert_string_equal(pw.name, "demo");
	assert_int_equal(pw.uid, 1000);
	assert_int_equal(pw.gid, 1001);
	assert_string_equal(pw.home, "/home/demo");
	assert_string_equal(pw.shell, "/bin/sh");
	priv_user_free(&pw);
	/* A prefix of a name, or a longer one, is somebody else. */
	assert_int_equal(local_user_lookup("demo2", &pw), 0);
	assert_int_equal(pw.uid, 1002);
	priv_user_free(&pw);
	errno = EINVAL;
	assert_int_equal(local_user_lookup("dem", &pw), -1);
	assert_int_equal(errno, 0);
	assert_int_equal(local_user_lookup("demo23", &pw), -1);
	assert_int_equal(errno, 0);
	/* Comment lines are no users. */
	assert_int_equal(local_user_lookup("# local users", &pw), -1);
}

static void
changed_file_is_read_again(void **state)
{
	struct priv_user pw;

	assert_int_equal(local_user_lookup("demo", &pw), 0);
	priv_user_free(&pw);
	/* Rewritten in place, same size: another uid, a user gone. */
	write_file(passwd, "# local users\n"
	    "demo:x:2000:1001:Demo:/home/demo:/bin/sh\n"
	    "demo3:x:1002:1002::/home/demo2:/bin/false\n");
	assert_int_equal(local_user_lookup("demo", &pw), 0);
	assert_int_equal(pw.uid, 2000);
	priv_user_free(&pw);
	assert_int_equal(local_user_lookup("demo2", &pw), -1);
	assert_int_equal(local_user_lookup("demo3", &pw), 0);
	priv_user_free(&pw);
}

static void
file_kept_between_lookups_is_read_again_after_a_change(void **state)
{
	struct priv_user pw;

	write_file(passwd, "demo:x:1000:1001:Demo:/home/demo:/bin/sh\n");
	/* Old enough to be kept rather than read at every lookup. */
	sleep(3);
	assert_int_equal(local_user_lookup("demo", &pw), 0);
	assert_int_equal(pw.uid, 1000);
	priv_user_free(&pw);
	assert_int_equal(local_user_lookup("demo", &pw), 0);
	priv_user_free(&pw);
	write_file(passwd, "demo:x:4000:1001:Demo:/home/demo:/bin/sh\n");
	assert_int_equal(local_user_lookup("demo", &pw), 0);
	assert_int_equal(pw.uid, 4000);
	priv_user_free(&pw);
}

static void
replaced_file_is_read_again(void **state)
{
	struct priv_user pw;
	char *tmp = xasprintf("%s/new", dir);

	assert_int_equal(local_user_lookup("demo", &pw), 0);
	priv_user_free(&pw);
	write_file(tmp, "carol:x:3000:3000::/home/carol:/bin/sh\n");
	assert_int_equal(rename(tmp, passwd), 0);
	assert_int_equal(local_user_lookup("carol", &pw), 0);
	assert_int_equal(pw.uid, 3000);
	priv_user_free(&pw);
	errno = EINVAL;
	assert_int_equal(local_user_lookup("demo", &pw), -1);
	assert_int_equal(errno, 0);
	free(tmp);
}

static void
missing_file_is_an_error_not_unknown(void **state)
{
	struct priv_user pw;

	write_file(passwd, "demo:x:1000:1001:Demo:/home/demo:/bin/sh\n");
	assert_int_equal(local_user_lookup("demo", &pw), 0);
	priv_user_free(&pw);
	assert_int_equal(unlink(passwd), 0);
	errno = 0;
	assert_int_equal(local_user_lookup("demo", &pw), -1);
	assert_int_equal(errno, ENOENT);
	/* Back again: found again. */
	write_file(passwd, "demo:x:1000:1001:Demo:/home/demo:/bin/sh\n");
	assert_int_equal(local_user_lookup("demo", &pw), 0);
	priv_user_free(&pw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(user_is_found_by_exact_name),
		cmocka_unit_test(changed_file_is_read_again),
		cmocka_unit_test(
		    file_kept_between_lookups_is_read_again_after_a_change),
		cmocka_unit_test(replaced_file_is_read_again),
		cmocka_unit_test(missing_file_is_an_error_not_unknown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
