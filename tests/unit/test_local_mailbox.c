/*
 * test_local_mailbox - the mailbox writers of the local delivery agent
 * (local/maildir.c, local/mbox.c, local/local_msg.c): Maildir names
 * never repeat, "From " lines are quoted wherever a piece boundary
 * falls, and a delivered copy is the queued message byte for byte after
 * Return-Path and Delivered-To. Failures (size limit, a file where the
 * Maildir should be, a held lock) leave the mailbox as it was.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "file.h"
#include "local.h"
#include "queue.h"
#include "strv.h"

static char tdir[] = "/tmp/test_local_mailbox.XXXXXX";
static struct queue_msg *q;
static struct local_msg msg;

static const char content[] =
    "From: Alice <alice@example.test>\n"
    "Subject: mailbox test\n"
    "Delivered-To: Earlier@Example.test\n"
    "\n"
    "From the start of a line\n"
    ">From an already quoted line\n"
    "a From in the middle\n"
    "last line without a newline";

static int
setup(void **state)
{
	struct queue_writer *w;
	char *qdir, *err = NULL, *path;
	int corrupt = 0;

	if (mkdtemp(tdir) == NULL)
		return -1;
	qdir = xasprintf("%s/queue", tdir);
	if (mkdir(qdir, 0700) < 0 || queue_make_folders(qdir, &err) < 0)
		return -1;
	if ((w = queue_create(qdir, QUEUE_INCOMING, &err)) == NULL)
		return -1;
	queue_set_sender(w, "alice@example.test");
	queue_add_rcpt(w, "demo@example.test", NULL, 0);
	if (queue_write(w, content, strlen(content), &err) < 0)
		return -1;
	path = queue_path(qdir, QUEUE_INCOMING, queue_writer_id(w));
	if (queue_commit(w, &err) < 0 ||
	    queue_open(path, 0, &q, &corrupt, &err) < 0)
		return -1;
	msg.q = q;
	msg.queue_id = q->id;
	msg.sender = q->sender;
	local_msg_scan(&msg);
	free(path);
	free(qdir);
	return 0;
}

static int
teardown(void **state)
{
	char *cmd = xasprintf("chmod -R u+rwx '%s'; rm -rf '%s'", tdir, tdir);

	queue_close(q);
	strv_free(msg.delivered_to);
	if (system(cmd) != 0)
		return -1;
	free(cmd);
	return 0;
}

static char *
slurp(const char *path)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	assert_int_equal(file_read_all(path, &b, BUF_NOMAX), 0);
	return buf_steal(&b);
}

/* Names of the files in dir, sorted, as a vector. */
static char **
listdir(const char *dir)
{
	char **v = strv_split("", ",");
	struct dirent *de;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return v;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			strv_add(&v, de->d_name);
	closedir(d);
	return v;
}

static char *
quote_all(const char *const *pieces)
{
	struct mbox_quoter qt;
	struct buf out;

	buf_init(&out, BUF_NOMAX);
	mbox_quote_init(&qt);
	for (; *pieces != NULL; pieces++)
		assert_int_equal(mbox_quote(&qt, &out, *pieces,
		    strlen(*pieces)), 0);
	assert_int_equal(mbox_quote_end(&qt, &out), 0);
	return buf_steal(&out);
}

static void
maildir_names_follow_maildirpp_and_escape_the_host(void **state)
{
	char *a = maildir_unique_name(1700000000, 42, 1234, 7,
	    "mx/a:b.example");

	assert_string_equal(a,
	    "1700000000.M42P1234Q7.mx\\057a\\072b.example");
	free(a);
}

static void
maildir_names_differ_in_counter_and_usec(void **state)
{
	char *a = maildir_unique_name(1, 2, 3, 1, "h");
	char *b = maildir_unique_name(1, 2, 3, 2, "h");
	char *c = maildir_unique_name(1, 3, 3, 1, "h");

	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
	free(a);
	free(b);
	free(c);
}

static void
from_lines_are_quoted_only_at_line_starts(void **state)
{
	const char *const one[] = {
		"From a\nx From b\n>From c\nFrom\nFromage\n", NULL
	};
	char *out = quote_all(one);

	assert_string_equal(out,
	    ">From a\nx From b\n>From c\nFrom\nFromage\n");
	free(out);
}

static void
from_split_across_pieces_is_still_quoted(void **state)
{
	const char *const split[] = { "line\nFr", "om", " x\nFro", "m", " y",
		NULL };
	const char *const tail[] = { "a\nFro", NULL };
	char *out = quote_all(split);

	assert_string_equal(out, "line\n>From x\n>From y");
	free(out);
	out = quote_all(tail);
	assert_string_equal(out, "a\nFro");	/* held bytes come back */
	free(out);
}

static void
from_line_names_mailer_daemon_for_the_null_sender(void **state)
{
	char *a = mbox_from_line("", 0), *b = mbox_from_line("a@b", 0);
	regex_t re;

	assert_int_equal(regcomp(&re, "^From MAILER-DAEMON [A-Z][a-z]{2} "
	    "[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}\n$",
	    REG_EXTENDED), 0);
	assert_int_equal(regexec(&re, a, 0, NULL, 0), 0);
	assert_true(strncmp(b, "From a@b ", 9) == 0);
	regfree(&re);
	free(a);
	free(b);
}

static void
delivered_to_headers_are_found_case_insensitively(void **state)
{
	assert_true(local_msg_delivered_to(&msg, "earlier@example.test"));
	assert_true(local_msg_delivered_to(&msg, "EARLIER@example.TEST"));
	assert_false(local_msg_delivered_to(&msg, "demo@example.test"));
}

static void
maildir_copy_is_the_message_after_two_headers(void **state)
{
	struct local_result r;
	char *md = xasprintf("%s/m1/Maildir/", tdir), *dir, *path, *text;
	char *want, *suffix;
	char **names, **tmpnames;

	dir = xasprintf("%s/m1", tdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	local_result_init(&r);
	maildir_deliver(&msg, md, 0, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_SENT);
	assert_string_equal(r.dsn, "2.0.0");
	local_result_free(&r);
	maildir_deliver(&msg, md, 0, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_SENT);
	local_result_free(&r);

	free(dir);
	dir = xasprintf("%s/m1/Maildir/new", tdir);
	names = listdir(dir);
	assert_int_equal(strv_len(names), 2);	/* two names, no clash */
	assert_string_not_equal(names[0], names[1]);
	want = xasprintf("Return-Path: <alice@example.test>\n"
	    "Delivered-To: demo@example.test\n%s", content);
	path = xasprintf("%s/%s", dir, names[0]);
	text = slurp(path);
	assert_string_equal(text, want);
	suffix = xasprintf(",S=%zu", strlen(want));
	assert_non_null(strstr(names[0], suffix));
	free(dir);
	dir = xasprintf("%s/m1/Maildir/tmp", tdir);
	tmpnames = listdir(dir);
	assert_int_equal(strv_len(tmpnames), 0);
	free(dir);
	dir = xasprintf("%s/m1/Maildir/cur", tdir);
	assert_int_equal(access(dir, F_OK), 0);
	strv_free(names);
	strv_free(tmpnames);
	free(suffix);
	free(text);
	free(path);
	free(want);
	free(dir);
	free(md);
}

static void
maildir_over_the_size_limit_bounces_and_writes_nothing(void **state)
{
	struct local_result r;
	char *md = xasprintf("%s/m2/", tdir);

	local_result_init(&r);
	maildir_deliver(&msg, md, 1, "demo@example.test", 10, &r);
	assert_int_equal(r.status, DELIVER_BOUNCED);
	assert_string_equal(r.dsn, "5.2.2");
	assert_int_equal(access(md, F_OK), -1);
	local_result_free(&r);
	free(md);
}

static void
maildir_that_is_a_file_defers(void **state)
{
	struct local_result r;
	char *md = xasprintf("%s/m3", tdir);
	int fd = open(md, O_CREAT | O_WRONLY, 0600);

	assert_true(fd >= 0);
	close(fd);
	local_result_init(&r);
	maildir_deliver(&msg, md, 0, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_DEFERRED);
	assert_string_equal(r.dsn, "4.2.0");
	assert_non_null(strstr(r.reason, "Not a directory"));
	local_result_free(&r);
	free(md);
}

static void
maildir_with_missing_parent_defers_unless_asked_to_create(void **state)
{
	struct local_result r;
	char *md = xasprintf("%s/nohome/Maildir/", tdir);

	local_result_init(&r);
	maildir_deliver(&msg, md, 0, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_DEFERRED);
	assert_non_null(strstr(r.reason, "No such file or directory"));
	local_result_free(&r);
	maildir_deliver(&msg, md, 1, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_SENT);
	local_result_free(&r);
	free(md);
}

/* A Maildir missing one of its folders gets it back at delivery. */
static void
maildir_missing_subfolders_are_made_at_delivery(void **state)
{
	static const char *const gone[] = { "new", "tmp" };
	struct local_result r;
	char *md, *sub, *cmd, **names;

	for (size_t i = 0; i < 2; i++) {
		md = xasprintf("%s/m4%s", tdir, gone[i]);
		local_result_init(&r);
		maildir_deliver(&msg, md, 0, "demo@example.test", 0, &r);
		assert_int_equal(r.status, DELIVER_SENT);
		local_result_free(&r);
		/* Take one folder away (emptied first), deliver again. */
		sub = xasprintf("%s/%s", md, gone[i]);
		cmd = xasprintf("rm -rf '%s'", sub);
		assert_int_equal(system(cmd), 0);
		free(cmd);
		assert_int_equal(access(sub, F_OK), -1);
		maildir_deliver(&msg, md, 0, "demo@example.test", 0, &r);
		assert_int_equal(r.status, DELIVER_SENT);
		local_result_free(&r);
		free(sub);
		sub = xasprintf("%s/new", md);
		names = listdir(sub);
		assert_int_equal(strv_len(names), i == 0 ? 1 : 2);
		strv_free(names);
		free(sub);
		sub = xasprintf("%s/tmp", md);
		names = listdir(sub);
		assert_int_equal(access(sub, F_OK), 0);
		assert_int_equal(strv_len(names), 0);
		strv_free(names);
		free(sub);
		free(md);
	}
}

static void
mbox_appends_quoted_messages_with_separators(void **state)
{
	struct local_result r;
	char *mb = xasprintf("%s/mbox1", tdir), *text, *lock, *p;

	local_result_init(&r);
	mbox_deliver(&msg, mb, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_SENT);
	local_result_free(&r);
	mbox_deliver(&msg, mb, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_SENT);
	local_result_free(&r);
	text = slurp(mb);
	assert_true(strncmp(text, "From alice@example.test ", 24) == 0);
	p = strchr(text, '\n') + 1;
	assert_true(strncmp(p, "Return-Path: <alice@example.test>\n"
	    "Delivered-To: demo@example.test\nFrom: Alice", 77) == 0);
	assert_non_null(strstr(text, "\n>From the start of a line\n"
	    ">From an already quoted line\na From in the middle\n"
	    "last line without a newline\n\nFrom alice@example.test "));
	assert_true(strlen(text) > 2 &&
	    strcmp(text + strlen(text) - 2, "\n\n") == 0);
	lock = xasprintf("%s.lock", mb);
	assert_int_equal(access(lock, F_OK), -1);	/* lock removed */
	free(lock);
	free(text);
	free(mb);
}

static void
mbox_over_the_size_limit_bounces_and_keeps_the_file(void **state)
{
	struct local_result r;
	char *mb = xasprintf("%s/mbox2", tdir), *before, *after;

	local_result_init(&r);
	mbox_deliver(&msg, mb, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_SENT);
	local_result_free(&r);
	before = slurp(mb);
	/* Room for 50 more bytes, not for a second copy. */
	mbox_deliver(&msg, mb, "demo@example.test", strlen(before) + 50, &r);
	assert_int_equal(r.status, DELIVER_BOUNCED);
	assert_string_equal(r.dsn, "5.2.2");
	local_result_free(&r);
	after = slurp(mb);
	assert_string_equal(after, before);
	free(before);
	free(after);
	free(mb);
}

static void
mbox_held_dot_lock_defers_and_a_stale_one_is_removed(void **state)
{
	struct local_result r;
	char *mb = xasprintf("%s/mbox3", tdir), *lock, *err = NULL;
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	int fd;

	assert_int_equal(config_set("deliver_lock_attempts", "2", &err), 0);
	assert_int_equal(config_set("deliver_lock_delay", "1s", &err), 0);
	lock = xasprintf("%s.lock", mb);
	fd = open(lock, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	local_result_init(&r);
	mbox_deliver(&msg, mb, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_DEFERRED);
	assert_non_null(strstr(r.reason, "lock"));
	assert_int_equal(access(mb, F_OK), -1);
	assert_int_equal(access(lock, F_OK), 0);	/* not ours to remove */
	local_result_free(&r);

	assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
	mbox_deliver(&msg, mb, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_SENT);
	assert_int_equal(access(lock, F_OK), -1);
	local_result_free(&r);
	config_reset();
	free(lock);
	free(mb);
}

static void
mbox_refuses_a_symbolic_link(void **state)
{
	struct local_result r;
	char *mb = xasprintf("%s/mbox4", tdir), *target;

	target = xasprintf("%s/elsewhere", tdir);
	assert_int_equal(symlink(target, mb), 0);
	local_result_init(&r);
	mbox_deliver(&msg, mb, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_DEFERRED);
	assert_int_equal(access(target, F_OK), -1);
	local_result_free(&r);
	free(target);
	free(mb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    maildir_names_follow_maildirpp_and_escape_the_host),
		cmocka_unit_test(maildir_names_differ_in_counter_and_usec),
		cmocka_unit_test(from_lines_are_quoted_only_at_line_starts),
		cmocka_unit_test(from_split_across_pieces_is_still_quoted),
		cmocka_unit_test(
		    from_line_names_mailer_daemon_for_the_null_sender),
		cmocka_unit_test(
		    delivered_to_headers_are_found_case_insensitively),
		cmocka_unit_test(maildir_copy_is_the_message_after_two_headers),
		cmocka_unit_test(
		    maildir_over_the_size_limit_bounces_and_writes_nothing),
		cmocka_unit_test(maildir_that_is_a_file_defers),
		cmocka_unit_test(
		    maildir_missing_subfolders_are_made_at_delivery),
		cmocka_unit_test(
		    maildir_with_missing_parent_defers_unless_asked_to_create),
		cmocka_unit_test(mbox_appends_quoted_messages_with_separators),
		cmocka_unit_test(
		    mbox_over_the_size_limit_bounces_and_keeps_the_file),
		cmocka_unit_test(
		    mbox_held_dot_lock_defers_and_a_stale_one_is_removed),
		cmocka_unit_test(mbox_refuses_a_symbolic_link),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
