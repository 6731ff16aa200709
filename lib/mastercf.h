/*
 * mastercf - master.cf: the services master runs.
 *
 * One service per line in Postfix's column order:
 *	service type private unpriv chroot wakeup maxproc command + args
 * "-" in a column means its default (private y, unpriv y, chroot n,
 * wakeup 0, maxproc $default_process_limit). A line starting with white
 * space continues the previous one; "#" lines are comments. Arguments
 * "-o name=value" (also "-o name = value" is NOT accepted, as in
 * Postfix) become per-service overrides of main.cf parameters.
 *
 * A wakeup written "60?" (Postfix: wake only when used) reads as 60.
 * The same service name and type twice is an error.
 *
 * mastercf_load() returns the services, or NULL with *err naming the
 * file, line and reason. An empty file is valid (no services; the
 * array returned is still non-NULL and must be freed).
 */
#ifndef TERN_MASTERCF_H
#define TERN_MASTERCF_H

#include <stddef.h>

enum service_type {
	SERVICE_INET,
	SERVICE_UNIX,
	SERVICE_UNIX_DGRAM,
	SERVICE_FIFO,
	SERVICE_PASS,
};

struct master_service {
	char		*name;		/* "smtp", "127.0.0.1:2525", "qmgr" */
	enum service_type type;
	int		 private;	/* 1: socket under private/ */
	int		 unpriv;	/* 1: runs as mail_owner */
	int		 chroot;	/* 1: chroot to queue_directory */
	unsigned	 wakeup;	/* seconds; 0 = none */
	int		 maxproc;	/* -1: default_process_limit */
	char		*command;	/* program, e.g. "smtpd" */
	char		**args;		/* every argument after command, -o
					   pairs removed; NULL-terminated */
	char		**overrides;	/* "name=value", NULL-terminated */
	char		*file;		/* where it was defined */
	int		 line;
};

struct master_service *mastercf_load(const char *path, size_t *count,
	    char **err);
void	mastercf_free(struct master_service *, size_t count);
const char *service_type_name(enum service_type);

#endif
