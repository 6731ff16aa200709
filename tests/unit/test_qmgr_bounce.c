/*
 * test_qmgr_bounce - the delivery status notifications qmgr writes
 * (qmgr/qmgr_bounce.c): RFC 3464 structure and fields, the original
 * returned whole, cut at bounce_size_limit or as headers only (RET=HDRS),
 * agent text that cannot inject headers, and the report queued as a new
 * message from the null sender. tests/integration/test_qmgr.py checks
 * that Python's email package parses what comes out.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "queue.h"
#include "qmgr.h"

static const char original[] =
    "From: Alice <alice@example.org>\n"
    "To: bob@example.test\n"
    "Subject: hello\n"
    "\n"
    "line one of the body\n"
    "line two of the body\n";

static void
info_init(struct qmgr_dsn_info *in)
{
	memset(in, 0, sizeof(*in));
	in->queue_id = "18C2F0A1B2C3D4E5";
	in->sender = "alice@example.org";
	in->myhostname = "mx.example.test";
	in->message_id = "NEWID.1700000000@mx.example.test";
	in->boundary = "NEWID.1700000000/mx.example.test";
	in->arrival = 1700000000;
	in->now = 1700000100;
	in->content = original;
	in->content_len = strlen(original);
	in->size_limit = 50000;
}

static const struct qmgr_dsn_rcpt one_rcpt[] = {
	{ "bob@example.test", NULL, "5.1.1", "unknown user: \"bob\"" },
};

static char *
render(const struct qmgr_dsn_info *in, const struct qmgr_dsn_rcpt *r,
    size_t n)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	qmgr_dsn_render(&b, in, r, n);
	return buf_steal(&b);
}

/* 1 when text has a line that is exactly line. */
static int
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' ||
		    p[n] == '\0'))
			return 1;
		p += n;
	}
	return 0;
}

static void
report_has_the_rfc3464_structure(void **state)
{
	struct qmgr_dsn_info in;
	char *t;

	info_init(&in);
	t = render(&in, one_rcpt, 1);
	assert_true(has_line(t,
	    "From: MAILER-DAEMON@mx.example.test (Mail Delivery System)"));
	assert_true(has_line(t, "To: alice@example.org"));
	assert_true(has_line(t,
	    "Subject: Undelivered Mail Returned to Sender"));
	assert_true(has_line(t, "Auto-Submitted: auto-replied"));
	assert_true(has_line(t, "MIME-Version: 1.0"));
	assert_true(has_line(t,
	    "Message-ID: <NEWID.1700000000@mx.example.test>"));
	assert_non_null(strstr(t, "\nDate: "));
	assert_true(has_line(t, "Content-Type: multipart/report; "
	    "report-type=delivery-status;"));
	assert_true(has_line(t,
	    "\tboundary=\"NEWID.1700000000/mx.example.test\""));
	/* Three parts in order, then the closing boundary. */
	assert_non_null(strstr(t, "--NEWID.1700000000/mx.example.test\n"
	    "Content-Description: Notification\n"
	    "Content-Type: text/plain; charset=us-ascii\n"));
	assert_true(strstr(t, "Content-Type: text/plain") <
	    strstr(t, "Content-Type: message/delivery-status"));
	assert_true(strstr(t, "Content-Type: message/delivery-status") <
	    strstr(t, "Content-Type: message/rfc822"));
	assert_true(has_line(t, "--NEWID.1700000000/mx.example.test--"));
	/* 7-bit original: no 8bit declaration anywhere. */
	assert_null(strstr(t, "Content-Transfer-Encoding"));
	free(t);
}

static void
status_part_has_message_and_recipient_fields(void **state)
{
	static const struct qmgr_dsn_rcpt r[] = {
		{ "bob@example.test", "rfc822;Bob+2BTag@example.test",
		    "5.1.1", "unknown user" },
		{ "carol@example.test", NULL, "5.4.7",
		    "message expired: 451 4.3.0 try later" },
	};
	struct qmgr_dsn_info in;
	char *t;

	info_init(&in);
	in.envid = "ENV-42";
	t = render(&in, r, 2);
	assert_true(has_line(t, "Reporting-MTA: dns; mx.example.test"));
	assert_true(has_line(t, "X-Tern-Queue-ID: 18C2F0A1B2C3D4E5"));
	assert_true(has_line(t, "X-Tern-Sender: rfc822; alice@example.org"));
	assert_true(has_line(t, "Original-Envelope-Id: ENV-42"));
	assert_non_null(strstr(t, "\nArrival-Date: "));
	assert_true(has_line(t, "Final-Recipient: rfc822; bob@example.test"));
	/* ORCPT's xtext is decoded. */
	assert_true(has_line(t,
	    "Original-Recipient: rfc822; Bob+Tag@example.test"));
	assert_true(has_line(t, "Action: failed"));
	assert_true(has_line(t, "Status: 5.1.1"));
	assert_true(has_line(t, "Diagnostic-Code: x-unix; unknown user"));
	assert_true(has_line(t,
	    "Final-Recipient: rfc822; carol@example.test"));
	assert_true(has_line(t, "Status: 5.4.7"));
	assert_non_null(strstr(t, "\nLast-Attempt-Date: "));
	/* carol has no ORCPT: one Original-Recipient only. */
	assert_null(strstr(strstr(t, "Original-Recipient") + 1,
	    "Original-Recipient"));
	/* A blank line between the per-message and per-recipient groups. */
	assert_non_null(strstr(t, "\n\nFinal-Recipient: rfc822; "
	    "bob@example.test\n"));
	assert_non_null(strstr(t, "\n\nFinal-Recipient: rfc822; "
	    "carol@example.test\n"));
	/* The human part lists both. */
	assert_true(has_line(t, "<bob@example.test>: unknown user"));
	assert_true(has_line(t, "<carol@example.test>: message expired: "
	    "451 4.3.0 try later"));
	free(t);
}

static void
remote_server_reply_is_an_smtp_diagnostic(void **state)
{
	static const struct qmgr_dsn_rcpt r[] = {
		{ "bob@example.test", NULL, "5.1.1",
		    "550 5.1.1 <bob@example.test>: no such user" },
	};
	struct qmgr_dsn_info in;
	char *t;

	info_init(&in);
	t = render(&in, r, 1);
	assert_true(has_line(t, "Diagnostic-Code: smtp; 550 5.1.1 "
	    "<bob@example.test>: no such user"));
	free(t);
}

static void
original_message_is_returned_whole_when_small(void **state)
{
	struct qmgr_dsn_info in;
	char *t;

	info_init(&in);
	t = render(&in, one_rcpt, 1);
	assert_non_null(strstr(t, "Content-Type: message/rfc822\n\n"
	    "From: Alice <alice@example.org>\n"));
	assert_non_null(strstr(t, "line two of the body\n\n"
	    "--NEWID.1700000000/mx.example.test--\n"));
	free(t);
}

static void
original_is_cut_at_a_line_end_within_bounce_size_limit(void **state)
{
	struct qmgr_dsn_info in;
	char *t;

	info_init(&in);
	/* The limit falls inside "line one of the body". */
	in.size_limit = strlen("From: Alice <alice@example.org>\n"
	    "To: bob@example.test\nSubject: hello\n\nline one");
	t = render(&in, one_rcpt, 1);
	assert_non_null(strstr(t, "Subject: hello\n\n\n--NEWID"));
	assert_null(strstr(t, "line one of the body"));
	assert_non_null(strstr(t, "The beginning of your message"));
	free(t);
}

static void
ret_hdrs_returns_only_the_headers(void **state)
{
	struct qmgr_dsn_info in;
	char *t;

	info_init(&in);
	in.ret_hdrs = 1;
	t = render(&in, one_rcpt, 1);
	assert_true(has_line(t, "Content-Type: text/rfc822-headers"));
	assert_null(strstr(t, "message/rfc822"));
	assert_non_null(strstr(t, "Subject: hello\n"));
	assert_null(strstr(t, "line one of the body"));
	assert_non_null(strstr(t, "The header of your message"));
	free(t);
}

static void
boundary_found_in_the_original_is_changed(void **state)
{
	static const char tricky[] = "Subject: x\n\n"
	    "--NEWID.1700000000/mx.example.test--\nmore\n";
	struct qmgr_dsn_info in;
	char *t;

	info_init(&in);
	in.content = tricky;
	in.content_len = strlen(tricky);
	t = render(&in, one_rcpt, 1);
	assert_true(has_line(t,
	    "\tboundary=\"NEWID.1700000000/mx.example.test=_\""));
	assert_true(has_line(t, "--NEWID.1700000000/mx.example.test=_--"));
	free(t);
}

static void
agent_text_cannot_inject_header_lines(void **state)
{
	static const struct qmgr_dsn_rcpt r[] = {
		{ "bob@example.test", NULL, "5.1.1",
		    "bad\nX-Injected: 1\r\n\nbody" },
	};
	struct qmgr_dsn_info in;
	char *t;

	info_init(&in);
	t = render(&in, r, 1);
	assert_null(strstr(t, "\nX-Injected"));
	assert_non_null(strstr(t, "Diagnostic-Code: x-unix; bad "
	    "X-Injected: 1"));
	free(t);
}

static void
long_diagnostic_is_folded(void **state)
{
	static const struct qmgr_dsn_rcpt r[] = {
		{ "bob@example.test", NULL, "5.0.0",
		    "one two three four five six seven eight nine ten eleven "
		    "twelve thirteen fourteen fifteen sixteen seventeen" },
	};
	struct qmgr_dsn_info in;
	const char *p, *q;
	char *t;

	info_init(&in);
	t = render(&in, r, 1);
	p = strstr(t, "Diagnostic-Code: x-unix; one two");
	assert_non_null(p);
	q = strchr(p, '\n');
	assert_true(q - p <= 78);
	assert_int_equal(q[1], ' ');	/* continuation line */
	free(t);
}

static void
eight_bit_original_is_declared(void **state)
{
	static const char latin[] = "Subject: caf\xc3\xa9\n\nna\xc3\xafve\n";
	struct qmgr_dsn_info in;
	char *t;

	info_init(&in);
	in.content = latin;
	in.content_len = strlen(latin);
	t = render(&in, one_rcpt, 1);
	assert_non_null(strstr(t, "Content-Type: message/rfc822\n"
	    "Content-Transfer-Encoding: 8bit\n"));
	free(t);
}

static void
notify_decides_whether_a_failure_is_reported(void **state)
{
	assert_true(qmgr_dsn_wanted(0));
	assert_true(qmgr_dsn_wanted(NOTIFY_FAILURE));
	assert_true(qmgr_dsn_wanted(NOTIFY_FAILURE | NOTIFY_DELAY));
	assert_false(qmgr_dsn_wanted(NOTIFY_NEVER));
	assert_false(qmgr_dsn_wanted(NOTIFY_SUCCESS));
	assert_false(qmgr_dsn_wanted(NOTIFY_SUCCESS | NOTIFY_DELAY));
}

static void
report_is_queued_from_the_null_sender_to_the_sender(void **state)
{
	char dir[] = "/tmp/test_qmgr_bounce.XXXXXX", *cf, *err = NULL;
	char *path, *new_id = NULL, *content;
	struct queue_writer *w;
	struct queue_msg *m, *b;
	FILE *fp;
	int corrupt;

	assert_non_null(mkdtemp(dir));
	cf = xasprintf("%s/main.cf", dir);
	fp = fopen(cf, "w");
	assert_non_null(fp);
	fprintf(fp, "myhostname = mx.example.test\nqueue_directory = %s\n",
	    dir);
	fclose(fp);
	assert_int_equal(config_load(dir, &err), 0);
	assert_int_equal(queue_make_folders(dir, &err), 0);

	w = queue_create(dir, QUEUE_INCOMING, &err);
	assert_non_null(w);
	queue_set_sender(w, "alice@example.org");
	queue_set_attr(w, "envid", "ENV-7");
	queue_add_rcpt(w, "bob@example.test", NULL, 0);
	assert_int_equal(queue_write(w, original, strlen(original), &err), 0);
	path = queue_path(dir, QUEUE_INCOMING, queue_writer_id(w));
	assert_int_equal(queue_commit(w, &err), 0);
	assert_int_equal(queue_open(path, 0, &m, &corrupt, &err), 0);
	free(path);

	assert_int_equal(qmgr_bounce_write(dir, m, one_rcpt, 1, &new_id,
	    &err), 0);
	path = queue_path(dir, QUEUE_INCOMING, new_id);
	assert_int_equal(queue_open(path, 0, &b, &corrupt, &err), 0);
	assert_string_equal(b->sender, "");
	assert_int_equal(b->nrcpts, 1);
	assert_string_equal(b->rcpts[0].addr, "alice@example.org");
	assert_string_equal(queue_msg_attr(b, "bounce_of"), m->id);
	content = xmalloc(b->content_len + 1);
	assert_int_equal(queue_read_content(b, 0, content, b->content_len),
	    (ssize_t)b->content_len);
	content[b->content_len] = '\0';
	assert_true(has_line(content, "To: alice@example.org"));
	assert_true(has_line(content, "Original-Envelope-Id: ENV-7"));
	assert_true(has_line(content, "Final-Recipient: rfc822; "
	    "bob@example.test"));
	assert_non_null(strstr(content, "line two of the body\n"));
	free(content);
	queue_close(b);
	queue_close(m);
	unlink(path);
	free(path);
	free(new_id);
	path = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
	free(path);
	free(cf);
	config_reset();
}

static void
delay_warning_says_delayed_and_returns_only_the_headers(void **state)
{
	static const struct qmgr_dsn_rcpt r[] = {
		{ "bob@b.test", NULL, "4.4.1",
		    "connect to mx.b.test[192.0.2.1]:25: Connection refused" },
	};
	struct qmgr_dsn_info in;
	char until[64], *t, *want;

	info_init(&in);
	in.delayed = 1;
	in.retry_until = in.arrival + 5 * 86400;
	t = render(&in, r, 1);
	assert_true(has_line(t, "Subject: Delayed Mail (still being retried)"));
	assert_non_null(strstr(t, "This is a warning only"));
	assert_true(has_line(t, "Action: delayed"));
	assert_null(strstr(t, "Action: failed"));
	assert_true(has_line(t, "Status: 4.4.1"));
	qmgr_rfc5322_date(until, sizeof(until), in.retry_until);
	want = xasprintf("Will-Retry-Until: %s", until);
	assert_true(has_line(t, want));
	free(want);
	/* Only the header of the original, even without RET=HDRS. */
	assert_true(has_line(t, "Content-Type: text/rfc822-headers"));
	assert_null(strstr(t, "message/rfc822"));
	assert_true(has_line(t, "Subject: hello"));
	assert_null(strstr(t, "line one of the body"));
	free(t);

	/* A failure report has none of it. */
	in.delayed = 0;
	t = render(&in, one_rcpt, 1);
	assert_null(strstr(t, "Will-Retry-Until"));
	assert_null(strstr(t, "Action: delayed"));
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(report_has_the_rfc3464_structure),
		cmocka_unit_test(
		    delay_warning_says_delayed_and_returns_only_the_headers),
		cmocka_unit_test(status_part_has_message_and_recipient_fields),
		cmocka_unit_test(remote_server_reply_is_an_smtp_diagnostic),
		cmocka_unit_test(original_message_is_returned_whole_when_small),
		cmocka_unit_test(
		    original_is_cut_at_a_line_end_within_bounce_size_limit),
		cmocka_unit_test(ret_hdrs_returns_only_the_headers),
		cmocka_unit_test(boundary_found_in_the_original_is_changed),
		cmocka_unit_test(agent_text_cannot_inject_header_lines),
		cmocka_unit_test(long_diagnostic_is_folded),
		cmocka_unit_test(eight_bit_original_is_declared),
		cmocka_unit_test(notify_decides_whether_a_failure_is_reported),
		cmocka_unit_test(
		    report_is_queued_from_the_null_sender_to_the_sender),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
