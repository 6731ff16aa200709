/*
 * test_table_unix - unix:passwd.byname answers from the local users,
 * proxy: is transparent, and an unreadable user database is an error.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "config.h"
#include "table.h"

static char dir[] = "/tmp/test_table_unix.XXXXXX";
static char passwd[256];

static int
setup(void **state)
{
	FILE *f;
	char *err = NULL;

	assert_non_null(mkdtemp(dir));
	snprintf(passwd, sizeof(passwd), "%s/passwd", dir);
	f = fopen(passwd, "w");
	assert_non_null(f);
	fprintf(f, "# local users\ndemo:x:1000:1000:Demo:/home/demo:/bin/sh\n");
	fclose(f);
	assert_int_equal(config_set("local_passwd_file", passwd, &err), 0);
	return 0;
}

static int
teardown(void **state)
{
	unlink(passwd);
	rmdir(dir);
	return 0;
}

static void
known_user_is_found_with_its_passwd_line(void **state)
{
	char *err = NULL, *value = NULL;
	struct table *t = table_open("unix:passwd.byname", &err);

	assert_non_null(t);
	assert_int_equal(table_lookup(t, "Demo", &value, &err), TABLE_FOUND);
	assert_string_equal(value, "demo:x:1000:1000::/home/demo:/bin/sh");
	free(value);
	assert_int_equal(table_lookup(t, "nobody-here", &value, &err),
	    TABLE_NOTFOUND);
	table_close(t);
}

static void
proxy_prefix_is_transparent(void **state)
{
	char *err = NULL, *value = NULL;
	struct table *t = table_open("proxy:unix:passwd.byname", &err);

	assert_non_null(t);
	assert_string_equal(t->ops->type, "unix");
	assert_int_equal(table_lookup(t, "demo", &value, &err), TABLE_FOUND);
	free(value);
	table_close(t);
}

static void
other_unix_maps_are_refused_at_open(void **state)
{
	char *err = NULL;

	assert_null(table_open("unix:group.byname", &err));
	assert_non_null(strstr(err, "passwd.byname"));
	free(err);
}

static void
unreadable_user_database_is_an_error_not_unknown(void **state)
{
	char *err = NULL, *value = NULL, *missing;
	struct table *t;

	missing = xasprintf("%s/no-such-file", dir);
	assert_int_equal(config_set("local_passwd_file", missing, &err), 0);
	t = table_open("unix:passwd.byname", &err);
	assert_non_null(t);
	assert_int_equal(table_lookup(t, "demo", &value, &err), TABLE_ERROR);
	assert_non_null(err);
	free(err);
	table_close(t);
	free(missing);
	assert_int_equal(config_set("local_passwd_file", passwd, &err), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(known_user_is_found_with_its_passwd_line),
		cmocka_unit_test(proxy_prefix_is_transparent),
		cmocka_unit_test(other_unix_maps_are_refused_at_open),
		cmocka_unit_test(unreadable_user_database_is_an_error_not_unknown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
