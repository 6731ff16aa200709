/*
 * test_log - log lines have Postfix's shapes, whatever the target, and a
 * peer cannot inject control characters into them.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "buf.h"
#include "file.h"

static char dir[] = "/tmp/test_log.XXXXXX";

/* Run fn with stderr sent to a file; return what it wrote. */
static char *
capture_stderr(void (*fn)(void))
{
	char path[256];
	struct buf out;
	int fd, saved;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	fn();
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	buf_init(&out, 1 << 20);
	assert_int_equal(file_read_all(path, &out, 1 << 20), 0);
	unlink(path);
	return buf_steal(&out);
}

static void
say_things(void)
{
	msg_info("4ABC: client=localhost[127.0.0.1]");
	msg_warn("odd %s", "thing");
	msg_error("bad\r\nline\x01");
}

static void
daemon_lines_name_program_and_pid(void **state)
{
	char *out, want[512];

	log_init("/usr/libexec/tern/smtpd");
	out = capture_stderr(say_things);
	snprintf(want, sizeof(want),
	    "tern/smtpd[%ld]: 4ABC: client=localhost[127.0.0.1]\n"
	    "tern/smtpd[%ld]: warning: odd thing\n"
	    "tern/smtpd[%ld]: error: bad\?\?line\?\n",
	    (long)getpid(), (long)getpid(), (long)getpid());
	assert_string_equal(out, want);
	free(out);
}

static void
tool_lines_read_like_postfix_tools(void **state)
{
	char *out;

	log_init_tool("ternconf");
	out = capture_stderr(say_things);
	assert_string_equal(out, "ternconf: 4ABC: client=localhost[127.0.0.1]\n"
	    "ternconf: warning: odd thing\n"
	    "ternconf: error: bad\?\?line\?\n");
	free(out);
}

static void
maillog_file_gets_timestamped_lines(void **state)
{
	char path[256];
	struct buf text;

	snprintf(path, sizeof(path), "%s/maillog", dir);
	log_init("qmgr");
	log_open(LOG_TO_FILE, path);
	msg_info("4ABC: removed");
	log_open(LOG_TO_STDERR, NULL);
	buf_init(&text, 1 << 16);
	assert_int_equal(file_read_all(path, &text, 1 << 16), 0);
	/* "Nov 23 16:38:11 host tern/qmgr[123]: 4ABC: removed" */
	assert_non_null(strstr(buf_cstr(&text), " tern/qmgr["));
	assert_non_null(strstr(buf_cstr(&text), "]: 4ABC: removed\n"));
	assert_true(text.data[3] == ' ' && text.data[6] == ' ');
	buf_free(&text);
	unlink(path);
}

static void
fatal_names_its_word(void **state)
{
	assert_true(CALLS_FATAL(msg_fatal("config %s", "broken")));
	assert_string_equal(testlib_fatal_text, "config broken");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(daemon_lines_name_program_and_pid),
		cmocka_unit_test(tool_lines_read_like_postfix_tools),
		cmocka_unit_test(maillog_file_gets_timestamped_lines),
		cmocka_unit_test(fatal_names_its_word),
	};
	int r;

	if (mkdtemp(dir) == NULL)
		return 1;
	r = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return r;
}
