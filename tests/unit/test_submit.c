/*
 * test_submit - who may forge a sender or submit at all, and which
 * sender pickup records for a maildrop file.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "config.h"
#include "submit.h"

#define DIR_TEMPLATE	"/tmp/test_submit.XXXXXX"
static char dir[] = DIR_TEMPLATE;
static char path[sizeof(dir) + 16];

static int
setup(void **state)
{
	FILE *fp;
	char *err = NULL;

	memcpy(dir, DIR_TEMPLATE, sizeof(dir));
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/main.cf", dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs("mail_owner = tern\n", fp);
	fclose(fp);
	if (config_load(dir, &err) < 0) {
		fprintf(stderr, "config_load: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	config_reset();
	unlink(path);
	rmdir(dir);
	return 0;
}

static void
set(const char *name, const char *value)
{
	char *err = NULL;

	if (config_set(name, value, &err) < 0)
		fail_msg("config_set %s: %s", name, err);
}

static int
listed(const char *param, const char *login)
{
	char *err = NULL;
	int r = submit_user_listed(param, login, &err);

	if (r < 0) {
		fprintf(stderr, "%s\n", err);
		free(err);
	}
	return r;
}

static void
default_forgers_are_root_and_mail_owner_only(void **state)
{
	assert_int_equal(listed("local_sender_forge_users", "root"), 1);
	assert_int_equal(listed("local_sender_forge_users", "tern"), 1);
	assert_int_equal(listed("local_sender_forge_users", "alice"), 0);
	/* Exact names: no case folding, no prefixes. */
	assert_int_equal(listed("local_sender_forge_users", "Root"), 0);
	assert_int_equal(listed("local_sender_forge_users", "ter"), 0);
}

static void
empty_list_allows_nobody(void **state)
{
	set("local_sender_forge_users", "");
	assert_int_equal(listed("local_sender_forge_users", "root"), 0);
}

static void
static_anyone_matches_everybody(void **state)
{
	/* authorized_submit_users defaults to static:anyone. */
	assert_int_equal(listed("authorized_submit_users", "alice"), 1);
	assert_int_equal(listed("authorized_submit_users", "nobody"), 1);
}

static void
first_match_decides_and_bang_says_no(void **state)
{
	set("authorized_submit_users", "!nobody, static:anyone");
	assert_int_equal(listed("authorized_submit_users", "nobody"), 0);
	assert_int_equal(listed("authorized_submit_users", "alice"), 1);
	set("authorized_submit_users", "inline:{ alice=ok }, bob");
	assert_int_equal(listed("authorized_submit_users", "alice"), 1);
	assert_int_equal(listed("authorized_submit_users", "bob"), 1);
	assert_int_equal(listed("authorized_submit_users", "carol"), 0);
}

static void
unreadable_table_is_an_error_not_a_no(void **state)
{
	char *err = NULL;

	set("authorized_submit_users", "texthash:/nonexistent/users");
	assert_int_equal(submit_user_listed("authorized_submit_users",
	    "alice", &err), -1);
	assert_non_null(err);
	free(err);
}

static void
sender_is_the_login_unless_forging_is_allowed(void **state)
{
	char *s;

	s = submit_sender("ceo@bank.example", "alice", 0, "host.example");
	assert_string_equal(s, "alice@host.example");
	free(s);
	s = submit_sender("", "alice", 0, "host.example");
	assert_string_equal(s, "alice@host.example");
	free(s);
	s = submit_sender("list-bounces@x.example", "root", 1,
	    "host.example");
	assert_string_equal(s, "list-bounces@x.example");
	free(s);
	/* Allowed: the null sender stays null, a bare name is qualified. */
	s = submit_sender("", "root", 1, "host.example");
	assert_string_equal(s, "");
	free(s);
	s = submit_sender("daemon", "root", 1, "host.example");
	assert_string_equal(s, "daemon@host.example");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    default_forgers_are_root_and_mail_owner_only, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(empty_list_allows_nobody,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    static_anyone_matches_everybody, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    first_match_decides_and_bang_says_no, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    unreadable_table_is_an_error_not_a_no, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    sender_is_the_login_unless_forging_is_allowed, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
