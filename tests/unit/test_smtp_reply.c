/*
 * test_smtp_reply - how the smtp client reads server replies
 * (smtp/smtp_reply.c): single and multi-line replies, what is not a
 * reply, enhanced status codes taken or derived, the joined text that
 * becomes a recipient's reason, and the limits that keep a hostile
 * server from growing the client's memory or holding it forever.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "buf.h"
#include "smtp.h"
#include "stream.h"

static int
add(struct smtp_reply *r, const char *line)
{
	return smtp_reply_add_line(r, line, strlen(line));
}

static void
single_line_reply_is_complete(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "250 2.1.0 Ok"), 0);
	assert_true(r.complete);
	assert_int_equal(r.code, 250);
	assert_int_equal(smtp_reply_class(&r), 2);
	assert_string_equal(r.dsn, "2.1.0");
	assert_string_equal(buf_cstr(&r.text), "250 2.1.0 Ok");
	smtp_reply_free(&r);
}

static void
multiline_reply_is_joined_without_repeated_codes(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "550-5.1.1 <x@b.test>: Recipient address"),
	    1);
	assert_false(r.complete);
	assert_int_equal(add(&r, "550-5.1.1 rejected: User unknown"), 1);
	assert_int_equal(add(&r, "550 5.1.1 in virtual mailbox table"), 0);
	assert_string_equal(buf_cstr(&r.text), "550 5.1.1 <x@b.test>: "
	    "Recipient address rejected: User unknown in virtual mailbox "
	    "table");
	assert_string_equal(r.dsn, "5.1.1");
	assert_int_equal(r.nlines, 3);
	assert_string_equal(r.lines[1], "5.1.1 rejected: User unknown");
	smtp_reply_free(&r);
}

static void
ehlo_lines_are_kept_one_by_one(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "250-mx.b.test"), 1);
	assert_int_equal(add(&r, "250-PIPELINING"), 1);
	assert_int_equal(add(&r, "250-SIZE 10240000"), 1);
	assert_int_equal(add(&r, "250 DSN"), 0);
	assert_int_equal(r.nlines, 4);
	assert_string_equal(r.lines[0], "mx.b.test");
	assert_string_equal(r.lines[2], "SIZE 10240000");
	assert_string_equal(r.lines[3], "DSN");
	assert_string_equal(r.dsn, "2.0.0");
	smtp_reply_free(&r);
}

static void
code_alone_is_a_reply(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "354"), 0);
	assert_int_equal(r.code, 354);
	assert_string_equal(buf_cstr(&r.text), "354");
	smtp_reply_free(&r);
}

static void
lines_that_are_not_replies_are_refused(void **state)
{
	static const char *const bad[] = { "", "25", "25O Ok", "2500 Ok",
	    "abc", "250_Ok", "650 Ok", "050 Ok", " 250 Ok" };
	struct smtp_reply r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		smtp_reply_init(&r);
		assert_int_equal(add(&r, bad[i]), SMTP_REPLY_BAD);
		smtp_reply_free(&r);
	}
}

static void
continuation_with_another_code_is_refused(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "250-first"), 1);
	assert_int_equal(add(&r, "251 second"), SMTP_REPLY_BAD);
	smtp_reply_free(&r);
}

static void
status_code_is_derived_when_absent_and_class_follows_reply(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "550 No such user"), 0);
	assert_string_equal(r.dsn, "5.0.0");
	smtp_reply_reset(&r);
	assert_int_equal(add(&r, "452 Mailbox full"), 0);
	assert_string_equal(r.dsn, "4.0.0");
	assert_string_equal(buf_cstr(&r.text), "452 Mailbox full");
	smtp_reply_reset(&r);
	/* A server contradicting itself: the reply code is what counts. */
	assert_int_equal(add(&r, "450 5.7.1 Try later"), 0);
	assert_string_equal(r.dsn, "4.7.1");
	smtp_reply_reset(&r);
	/* Not an enhanced code: "5.1" or "5.1.1x" are just text. */
	assert_int_equal(add(&r, "550 5.1.1x nope"), 0);
	assert_string_equal(r.dsn, "5.0.0");
	smtp_reply_free(&r);
}

static void
control_bytes_never_reach_the_reason(void **state)
{
	struct smtp_reply r;

	smtp_reply_init(&r);
	assert_int_equal(add(&r, "550 bad\033[31mred\r"), 0);
	assert_string_equal(buf_cstr(&r.text), "550 bad?[31mred?");
	smtp_reply_free(&r);
}

static void
endless_reply_keeps_bounded_memory(void **state)
{
	struct smtp_reply r;
	char line[600];

	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	memcpy(line, "250-", 4);
	smtp_reply_init(&r);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(add(&r, line), 1);
	line[3] = ' ';
	assert_int_equal(add(&r, line), 0);
	assert_true(r.text.len <= SMTP_REPLY_MAX_TEXT);
	assert_int_equal(r.nlines, SMTP_REPLY_MAX_LINES);
	smtp_reply_free(&r);
}

/* A stream reading what was written into a pipe, then EOF. */
static struct stream *
stream_of(const char *text, int timeout_ms, int keep_open, int *wfd)
{
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], text, strlen(text)),
	    (ssize_t)strlen(text));
	if (keep_open)
		*wfd = p[1];
	else
		close(p[1]);
	return stream_new(p[0], timeout_ms);
}

static void
read_takes_crlf_and_bare_lf_lines(void **state)
{
	struct smtp_reply r;
	struct stream *s;

	s = stream_of("250-one\r\n250 two\n220 next\r\n", 1000, 0, NULL);
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_read(s, &r, 512, 1000), 0);
	assert_string_equal(buf_cstr(&r.text), "250 one two");
	assert_int_equal(smtp_reply_read(s, &r, 512, 1000), 0);
	assert_int_equal(r.code, 220);
	assert_int_equal(smtp_reply_read(s, &r, 512, 1000), STREAM_EOF);
	smtp_reply_free(&r);
	stream_free(s);
}

static void
read_cuts_long_lines_instead_of_failing(void **state)
{
	struct smtp_reply r;
	struct stream *s;
	char text[3000];

	memset(text, 'y', sizeof(text));
	memcpy(text, "550 ", 4);
	strcpy(text + 2000, "\r\n250 after\r\n");
	s = stream_of(text, 1000, 0, NULL);
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_read(s, &r, 100, 1000), 0);
	assert_int_equal(r.code, 550);
	assert_int_equal(r.text.len, 100);
	/* The rest of the long line was skipped, not taken as a reply. */
	assert_int_equal(smtp_reply_read(s, &r, 100, 1000), 0);
	assert_string_equal(buf_cstr(&r.text), "250 after");
	smtp_reply_free(&r);
	stream_free(s);
}

static void
read_of_garbage_or_cut_reply_fails(void **state)
{
	struct smtp_reply r;
	struct stream *s;
	int wfd = -1;

	s = stream_of("HTTP/1.1 400 Bad Request\r\n", 1000, 0, NULL);
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_read(s, &r, 512, 1000), SMTP_REPLY_BAD);
	stream_free(s);

	s = stream_of("250-one\r\n", 1000, 0, NULL);
	assert_int_equal(smtp_reply_read(s, &r, 512, 1000), STREAM_EOF);
	stream_free(s);

	/* A server that stops mid-reply and says nothing more. */
	s = stream_of("250-one\r\n", 200, 1, &wfd);
	assert_int_equal(smtp_reply_read(s, &r, 512, 200), STREAM_TIMEOUT);
	stream_free(s);
	close(wfd);
	smtp_reply_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(single_line_reply_is_complete),
		cmocka_unit_test(
		    multiline_reply_is_joined_without_repeated_codes),
		cmocka_unit_test(ehlo_lines_are_kept_one_by_one),
		cmocka_unit_test(code_alone_is_a_reply),
		cmocka_unit_test(lines_that_are_not_replies_are_refused),
		cmocka_unit_test(continuation_with_another_code_is_refused),
		cmocka_unit_test(
		    status_code_is_derived_when_absent_and_class_follows_reply),
		cmocka_unit_test(control_bytes_never_reach_the_reason),
		cmocka_unit_test(endless_reply_keeps_bounded_memory),
		cmocka_unit_test(read_takes_crlf_and_bare_lf_lines),
		cmocka_unit_test(read_cuts_long_lines_instead_of_failing),
		cmocka_unit_test(read_of_garbage_or_cut_reply_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
