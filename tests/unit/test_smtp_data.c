/*
 * test_smtp_data - message content as the smtp client sends it after
 * DATA (smtp/smtp_data.c): LF becomes CRLF, a leading "." is doubled,
 * the end is CRLF "." CRLF, and all of it holds however the content is
 * cut into chunks (as it is read from the queue file).
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "buf.h"
#include "smtp.h"

/* Encode text in chunks of size step; the whole DATA text. */
static char *
encode(const char *text, size_t len, size_t step)
{
	struct smtp_dot d;
	struct buf out;

	buf_init(&out, BUF_NOMAX);
	smtp_dot_init(&d);
	for (size_t off = 0; off < len; off += step)
		assert_int_equal(smtp_dot_encode(&d, text + off,
		    len - off < step ? len - off : step, &out), 0);
	assert_int_equal(smtp_dot_end(&d, &out), 0);
	return buf_steal(&out);
}

static void
check_all_chunkings(const char *in, const char *want)
{
	size_t len = strlen(in);

	for (size_t step = 1; step <= len + 1; step++) {
		char *got = encode(in, len, step);

		assert_string_equal(got, want);
		free(got);
	}
}

static void
lf_becomes_crlf_and_the_end_is_added(void **state)
{
	check_all_chunkings("Subject: x\n\nbody\n",
	    "Subject: x\r\n\r\nbody\r\n.\r\n");
}

static void
leading_dots_are_doubled_only_at_line_start(void **state)
{
	check_all_chunkings(".hidden\nmid.dle\n.\n..\nend.\n",
	    "..hidden\r\nmid.dle\r\n..\r\n...\r\nend.\r\n.\r\n");
}

static void
last_line_without_lf_is_ended(void **state)
{
	check_all_chunkings("a\nno newline", "a\r\nno newline\r\n.\r\n");
	check_all_chunkings("cr at end\r", "cr at end\r\n.\r\n");
}

static void
existing_crlf_is_not_doubled(void **state)
{
	check_all_chunkings("a\r\nb\n", "a\r\nb\r\n.\r\n");
}

static void
empty_content_is_just_the_end(void **state)
{
	struct smtp_dot d;
	struct buf out;

	buf_init(&out, BUF_NOMAX);
	smtp_dot_init(&d);
	assert_int_equal(smtp_dot_end(&d, &out), 0);
	assert_string_equal(buf_cstr(&out), ".\r\n");
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(lf_becomes_crlf_and_the_end_is_added),
		cmocka_unit_test(leading_dots_are_doubled_only_at_line_start),
		cmocka_unit_test(last_line_without_lf_is_ended),
		cmocka_unit_test(existing_crlf_is_not_doubled),
		cmocka_unit_test(empty_content_is_just_the_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
