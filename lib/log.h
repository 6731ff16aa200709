/*
 * log - the one way a Tern program reports what it does.
 *
 * Lines have Postfix's shape so that existing log tools read them:
 *	tern/smtpd[1234]: 4XyZ...: client=host[1.2.3.4]
 *	tern/smtpd[1234]: warning: ...
 * Severity words are Postfix's: info has none, then "warning:",
 * "error:", "fatal:" (the process exits 1) and "panic:" (a bug: the
 * process aborts). Output goes to syslog (facility mail), to the file
 * named by maillog_file, or to stderr, chosen by log_open(); before
 * log_open() everything goes to stderr.
 */
#ifndef TERN_LOG_H
#define TERN_LOG_H

#include <stdarg.h>

enum log_target {
	LOG_TO_STDERR,		/* foreground and command-line tools */
	LOG_TO_SYSLOG,		/* facility mail */
	LOG_TO_FILE,		/* maillog_file */
};

/* Name the program ("smtpd"); lines say "tern/smtpd[pid]". */
void	log_init(const char *progname);
/* For command-line tools: stderr lines read "ternconf: warning: ...",
 * as Postfix's tools print them, instead of the daemon shape. */
void	log_init_tool(const char *progname);
/* The "tern" in "tern/smtpd[pid]" (main.cf syslog_name): sites whose
 * log tools know only "postfix/" can say so. Call before log_open(). */
void	log_set_syslog_name(const char *);
/* Choose the target; path is the file for LOG_TO_FILE. */
void	log_open(enum log_target, const char *path);
/* Also copy every line to stderr (tools run interactively). */
void	log_also_stderr(int);
const char *log_progname(void);

void	msg_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	msg_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	msg_error(const char *, ...) __attribute__((format(printf, 1, 2)));
void	msg_fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	msg_panic(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Exit status of msg_fatal (default 1): sendmail exits with sysexits.h
 * codes, which callers of a mail submission program act on. */
void	log_set_fatal_status(int);

/* Called instead of exit() by msg_fatal, for tests; NULL restores exit. */
void	log_set_fatal_hook(void (*)(const char *));

#endif
