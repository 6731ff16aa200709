/*
 * test_log_syslog - with no maillog_file, log lines go to syslog(3)
 * with Postfix's ident ("tern/PROGRAM", the pid added by syslog),
 * facility mail and the right priority per severity, and the text
 * carries the severity word as the file target writes it.
 *
 * openlog() and syslog() are defined here: the executable's own
 * definitions take the place of the C library's for lib/log.c, so the
 * test sees each call without a syslog daemon (machines that run the
 * tests often have no /dev/log). tests/integration/test_logs.py checks
 * the same through a real /dev/log where it can.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "testlib.h"
#include "log.h"

static struct {
	int	 opened;
	char	 ident[128];
	int	 option;
	int	 facility;
	int	 calls;
	int	 prio;
	char	 text[4096];
} seen;

void
openlog(const char *ident, int option, int facility)
{
	seen.opened++;
	snprintf(seen.ident, sizeof(seen.ident), "%s", ident);
	seen.option = option;
	seen.facility = facility;
}

void
syslog(int prio, const char *fmt, ...)
{
	va_list ap;

	seen.calls++;
	seen.prio = prio;
	va_start(ap, fmt);
	vsnprintf(seen.text, sizeof(seen.text), fmt, ap);
	va_end(ap);
}

static void
syslog_target_opens_with_the_tern_ident_and_facility_mail(void **state)
{
	memset(&seen, 0, sizeof(seen));
	log_init("smtpd");
	log_open(LOG_TO_SYSLOG, NULL);
	assert_int_equal(seen.opened, 1);
	assert_string_equal(seen.ident, "tern/smtpd");
	assert_int_equal(seen.facility, LOG_MAIL);
	/* The pid in every line, as "tern/smtpd[1234]:"; connected now,
	 * before a chroot or privilege drop could take /dev/log away. */
	assert_true(seen.option & LOG_PID);
	assert_true(seen.option & LOG_NDELAY);
}

static void
each_severity_goes_out_with_its_priority_and_word(void **state)
{
	const struct {
		void	(*fn)(const char *, ...);
		int	 prio;
		const char *text;
	} cases[] = {
		{ msg_info, LOG_INFO, "ABC: client=h[192.0.2.1]" },
		{ msg_warn, LOG_WARNING, "warning: ABC: client=h[192.0.2.1]" },
		{ msg_error, LOG_ERR, "error: ABC: client=h[192.0.2.1]" },
	};

	log_init("smtpd");
	log_open(LOG_TO_SYSLOG, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		seen.calls = 0;
		cases[i].fn("%s: client=%s", "ABC", "h[192.0.2.1]");
		assert_int_equal(seen.calls, 1);
		assert_int_equal(seen.prio, cases[i].prio);
		assert_string_equal(seen.text, cases[i].text);
	}
}

static void
syslog_lines_are_scrubbed_of_control_characters(void **state)
{
	log_init("smtpd");
	log_open(LOG_TO_SYSLOG, NULL);
	msg_info("helo=<%s>", "evil\nFeb  1 00:00:00 host tern/qmgr[1]: x");
	assert_null(strchr(seen.text, '\n'));
	assert_string_equal(seen.text,
	    "helo=<evil?Feb  1 00:00:00 host tern/qmgr[1]: x>");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(syslog_target_opens_with_the_tern_ident_and_facility_mail),
		cmocka_unit_test(each_severity_goes_out_with_its_priority_and_word),
		cmocka_unit_test(syslog_lines_are_scrubbed_of_control_characters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
