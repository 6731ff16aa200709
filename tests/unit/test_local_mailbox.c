/*
 * test_local_mailbox - the mailbox writers of the local delivery agent
 * (local/maildir.c, local/mbox.c, local/local_msg.c): Maildir names
 * never repeat, "From " lines are quoted wherever a piece boundary
 * falls, and a delivered copy is the queued message byte for byte after
 * Return-Path and Delivered-To. Failures (size limit, a file where the
 * Maildir should be, a held lock) leave the mailbox as it was. In
 * deferred sync a batch's deliveries share one open new/ per Maildir,
 * and a failed sync of it defers every recipient that waited on it.
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
#include "deliver.h"
#include "file.h"
#include "local.h"
#include "log.h"
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

/* A request for rcpts whose results say sent, as local_deliver_request
 * leaves a recipient delivered into a Maildir. */
static void
request_with_sent_rcpts(struct deliver_request *req, const char *const *rcpts)
{
	memset(req, 0, sizeof(*req));
	req->queue_id = xstrdup(q->id);
	req->relay = xstrdup("local");
	for (size_t i = 0; rcpts[i] != NULL; i++) {
		deliver_add_rcpt(req, i, rcpts[i]);
		deliver_set_result(req, i, DELIVER_SENT, "2.0.0",
		    "delivered to maildir");
	}
}

/* Deliver to md for recipient i of req, expecting sent. */
static void
deliver_for(struct deliver_request *req, size_t i, const char *md)
{
	struct local_result r;

	msg.req = req;
	msg.rcpt = i;
	local_result_init(&r);
	maildir_deliver(&msg, md, 1, req->rcpts[i].addr, 0, &r);
	msg.req = NULL;
	msg.rcpt = 0;
	assert_int_equal(r.status, DELIVER_SENT);
	assert_string_equal(r.reason, "delivered to maildir");
	local_result_free(&r);
}

static int
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

static void
maildir_deferred_sync_keeps_one_folder_for_its_deliveries(void **state)
{
	static const char *const rcpts[] = { "demo@example.test",
		"demo2@example.test", NULL };
	struct deliver_request req;
	char *md = xasprintf("%s/d1/Maildir/", tdir), *new;
	char **names;
	size_t nwaiters = 0;
	int fd;

	request_with_sent_rcpts(&req, rcpts);
	maildir_defer_sync();
	deliver_for(&req, 0, md);
	deliver_for(&req, 1, md);
	/* Both are in new/, waiting on one descriptor for new/. */
	new = xasprintf("%s/d1/Maildir/new", tdir);
	names = listdir(new);
	assert_int_equal(strv_len(names), 2);
	assert_int_equal(maildir_pending_dirs(), 1);
	fd = maildir_pending_dir(0, &nwaiters);
	assert_true(fd >= 0);
	assert_int_equal(nwaiters, 2);
	assert_int_equal(maildir_pending_dir(1, &nwaiters), -1);

	maildir_sync_pending();
	assert_int_equal(maildir_pending_dirs(), 0);
	assert_false(fd_is_open(fd));
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(req.rcpts[i].status, DELIVER_SENT);
		assert_string_equal(req.rcpts[i].reason,
		    "delivered to maildir");
	}
	/* The commit ended deferred sync: the next one syncs at once. */
	deliver_for(&req, 0, md);
	assert_int_equal(maildir_pending_dirs(), 0);

	deliver_request_free(&req);
	strv_free(names);
	free(new);
	free(md);
}

static void
maildir_failed_deferred_sync_defers_every_waiting_recipient(void **state)
{
	static const char *const rcpts[] = { "demo@example.test",
		"demo2@example.test", "other@example.test", NULL };
	struct deliver_request req;
	char *md = xasprintf("%s/d2/Maildir", tdir);
	char *other = xasprintf("%s/d2/Other/", tdir);
	char *logfile = xasprintf("%s/d2.log", tdir), *want, *log, *p;
	size_t nwaiters = 0, nlines = 0;
	int fd, pipefd[2];

	request_with_sent_rcpts(&req, rcpts);
	maildir_defer_sync();
	deliver_for(&req, 0, md);
	deliver_for(&req, 1, md);
	deliver_for(&req, 2, other);
	assert_int_equal(maildir_pending_dirs(), 2);
	/* The first was logged as sent already (a branch line), the second
	 * not: it is left to the line deliver_agent_serve writes. */
	req.rcpts[0].logged = 1;

	/* fsync(2) of a pipe fails (EINVAL), as of a broken disk. */
	fd = maildir_pending_dir(0, &nwaiters);
	assert_int_equal(nwaiters, 2);
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(dup2(pipefd[0], fd), fd);
	close(pipefd[0]);
	close(pipefd[1]);
	log_open(LOG_TO_FILE, logfile);
	maildir_sync_pending();
	log_open(LOG_TO_STDERR, NULL);
	assert_int_equal(maildir_pending_dirs(), 0);
	assert_false(fd_is_open(fd));

	want = xasprintf("maildir delivery failed: sync %s/d2/Maildir/new: %s",
	    tdir, strerror(EINVAL));
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(req.rcpts[i].status, DELIVER_DEFERRED);
		assert_string_equal(req.rcpts[i].dsn, "4.2.0");
		assert_string_equal(req.rcpts[i].reason, want);
	}
	assert_int_equal(req.rcpts[2].status, DELIVER_SENT);
	assert_int_equal(req.rcpts[1].logged, 0);
	log = slurp(logfile);
	for (p = log; (p = strstr(p, "status=deferred")) != NULL; p++)
		nlines++;
	assert_int_equal(nlines, 1);
	assert_non_null(strstr(log, "to=<demo@example.test>, relay=local"));
	assert_non_null(strstr(log, want));

	deliver_request_free(&req);
	free(log);
	free(want);
	free(logfile);
	free(other);
	free(md);
}

static void
maildir_outside_a_request_syncs_at_once(void **state)
{
	struct local_result r;
	char *md = xasprintf("%s/d3/Maildir/", tdir);

	maildir_defer_sync();
	local_result_init(&r);
	maildir_deliver(&msg, md, 1, "demo@example.test", 0, &r);
	assert_int_equal(r.status, DELIVER_SENT);
	assert_int_equal(maildir_pending_dirs(), 0);
	local_result_free(&r);
	maildir_sync_pending();
	free(md);
}

/* Before local forwards copies of a recipient, the folders it waits on
 * are synced at once, and only its own waiting ends there. */
static void
maildir_sync_rcpt_syncs_what_one_recipient_waits_on(void **state)
{
	static const char *const rcpts[] = { "demo@example.test",
		"demo2@example.test", NULL };
	struct deliver_request req;
	char *md = xasprintf("%s/d5/Maildir/", tdir);
	const char *path = NULL;
	size_t nwaiters = 0;
	int fd, pipefd[2];

	request_with_sent_rcpts(&req, rcpts);
	maildir_defer_sync();
	deliver_for(&req, 0, md);
	deliver_for(&req, 1, md);
	assert_int_equal(maildir_sync_rcpt(&req, 0, &path), 0);
	assert_int_equal(maildir_pending_dirs(), 1);
	fd = maildir_pending_dir(0, &nwaiters);
	assert_int_equal(nwaiters, 1);	/* recipient 1 still waits */
	/* A recipient that waits on nothing: nothing to do. */
	assert_int_equal(maildir_sync_rcpt(&req, 0, &path), 0);
	/* A sync that fails says which folder. */
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(dup2(pipefd[0], fd), fd);
	close(pipefd[0]);
	close(pipefd[1]);
	assert_int_equal(maildir_sync_rcpt(&req, 1, &path), -1);
	assert_int_equal(errno, EINVAL);
	assert_non_null(path);
	assert_non_null(strstr(path, "/d5/Maildir/new"));
	log_open(LOG_TO_FILE, "/dev/null");
	maildir_sync_pending();
	log_open(LOG_TO_STDERR, NULL);
	assert_int_equal(req.rcpts[0].status, DELIVER_SENT);
	assert_int_equal(req.rcpts[1].status, DELIVER_DEFERRED);
	deliver_request_free(&req);
	free(md);
}

/* Past MAILDIR_PENDING_MAX folders, a delivery syncs its own. */
static void
maildir_deferred_sync_holds_a_bounded_number_of_folders(void **state)
{
	static const char *const rcpts[] = { "demo@example.test", NULL };
	struct deliver_request req;
	size_t nwaiters;

	request_with_sent_rcpts(&req, rcpts);
	maildir_defer_sync();
	for (size_t i = 0; i < 70; i++) {
		char *md = xasprintf("%s/d4/%zu/", tdir, i);

		deliver_for(&req, 0, md);
		free(md);
	}
	assert_int_equal(maildir_pending_dirs(), 64);
	for (size_t i = 0; i < 64; i++) {
		assert_true(maildir_pending_dir(i, &nwaiters) >= 0);
		assert_int_equal(nwaiters, 1);
	}
	maildir_sync_pending();
	assert_int_equal(maildir_pending_dirs(), 0);
	assert_int_equal(req.rcpts[0].status, DELIVER_SENT);
	deliver_request_free(&req);
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
		cmocka_unit_test(
		    maildir_deferred_sync_keeps_one_folder_for_its_deliveries),
		cmocka_unit_test(
		    maildir_failed_deferred_sync_defers_every_waiting_recipient),
		cmocka_unit_test(maildir_outside_a_request_syncs_at_once),
		cmocka_unit_test(
		    maildir_deferred_sync_holds_a_bounded_number_of_folders),
		cmocka_unit_test(
		    maildir_sync_rcpt_syncs_what_one_recipient_waits_on),
		cmocka_unit_test(mbox_appends_quoted_messages_with_separators),
		cmocka_unit_test(
		    mbox_over_the_size_limit_bounces_and_keeps_the_file),
		cmocka_unit_test(
		    mbox_held_dot_lock_defers_and_a_stale_one_is_removed),
		cmocka_unit_test(mbox_refuses_a_symbolic_link),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
