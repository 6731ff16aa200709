/*
 * log - Postfix-shaped log lines to syslog, a file or stderr. See log.h.
 *
 * The file target is opened with O_APPEND so that many processes may
 * write to it at once; each line goes out in a single write(2), which
 * keeps lines from interleaving.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static char progname[64] = "tern";
static char syslog_name[128] = "tern";
static enum log_target target = LOG_TO_STDERR;
static int log_fd = -1;
static int also_stderr;
static int tool_style;
static void (*fatal_hook)(const char *);
static int fatal_status = 1;
static char hostname[256] = "localhost";

void
log_init(const char *name)
{
	const char *slash;

	if ((slash = strrchr(name, '/')) != NULL)
		name = slash + 1;
	snprintf(progname, sizeof(progname), "%s", name);
}

void
log_init_tool(const char *name)
{
	log_init(name);
	tool_style = 1;
}

void
log_set_syslog_name(const char *name)
{
	if (name != NULL && *name != '\0')
		snprintf(syslog_name, sizeof(syslog_name), "%s", name);
}

const char *
log_progname(void)
{
	return progname;
}

void
log_also_stderr(int on)
{
	also_stderr = on;
}

void
log_set_fatal_status(int status)
{
	fatal_status = status;
}

void
log_set_fatal_hook(void (*hook)(const char *))
{
	fatal_hook = hook;
}

void
log_open(enum log_target t, const char *path)
{
	if (log_fd >= 0) {
		close(log_fd);
		log_fd = -1;
	}
	if (t == LOG_TO_FILE) {
		char *dot;

		if (gethostname(hostname, sizeof(hostname) - 1) == 0 &&
		    (dot = strchr(hostname, '.')) != NULL)
			*dot = '\0';
		log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW, 0640);
		if (log_fd < 0) {
			target = LOG_TO_STDERR;
			msg_warn("cannot open maillog_file %s: %s; logging to "
			    "stderr", path, strerror(errno));
			return;
		}
	} else if (t == LOG_TO_SYSLOG) {
		static char ident[200];

		snprintf(ident, sizeof(ident), "%s/%s", syslog_name, progname);
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	}
	target = t;
}

static void
log_text(int prio, const char *word, char *text)
{
	char line[4096 + 200], stamp[64];
	struct tm tm;
	time_t now;
	int n;

	/* Log lines never carry control characters a peer could inject. */
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';

	if (target == LOG_TO_SYSLOG) {
		syslog(prio, "%s%s", word, text);
		if (!also_stderr)
			return;
	}
	if (target == LOG_TO_FILE && log_fd >= 0) {
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
		n = snprintf(line, sizeof(line), "%s %s %s/%s[%ld]: %s%s\n",
		    stamp, hostname, syslog_name, progname, (long)getpid(),
		    word, text);
		if (n > (int)sizeof(line) - 1)
			n = sizeof(line) - 1;
		if (write(log_fd, line, n) < 0) {
			/* nowhere else to say it */
		}
		if (!also_stderr)
			return;
	}
	if (tool_style)
		n = snprintf(line, sizeof(line), "%s: %s%s\n", progname, word,
		    text);
	else
		n = snprintf(line, sizeof(line), "%s/%s[%ld]: %s%s\n",
		    syslog_name, progname, (long)getpid(), word, text);
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	if (write(STDERR_FILENO, line, n) < 0) {
		/* nowhere else to say it */
	}
}

#define LOG_VA(prio, word, fmt) do {					\
	char text_[4096];						\
	va_list ap_;							\
									\
	va_start(ap_, fmt);						\
	vsnprintf(text_, sizeof(text_), fmt, ap_);			\
	va_end(ap_);							\
	log_text(prio, word, text_);					\
} while (0)

void
msg_info(const char *fmt, ...)
{
	LOG_VA(LOG_INFO, "", fmt);
}

void
msg_warn(const char *fmt, ...)
{
	LOG_VA(LOG_WARNING, "warning: ", fmt);
}

void
msg_error(const char *fmt, ...)
{
	LOG_VA(LOG_ERR, "error: ", fmt);
}

void
msg_fatal(const char *fmt, ...)
{
	char text[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (fatal_hook != NULL)
		fatal_hook(text);	/* tests longjmp out of here */
	log_text(LOG_CRIT, "fatal: ", text);
	exit(fatal_status);
}

void
msg_panic(const char *fmt, ...)
{
	LOG_VA(LOG_CRIT, "panic: ", fmt);
	abort();
}
