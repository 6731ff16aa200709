/*
 * server - the skeleton of every daemon master runs.
 *
 * master starts a daemon as
 *	PROGRAM -c CONFIG_DIR -n SERVICE -t TYPE [-w SECONDS]
 *	    [-o name=value]...
 * with the service's listening socket on descriptor SERVER_LISTEN_FD and
 * the write end of master's status pipe on SERVER_STATUS_FD. The daemon
 * loads main.cf, applies the -o overrides, opens its log, calls pre_jail
 * (still privileged: open what needs root), chroots when master.cf says
 * so, drops to mail_owner, calls post_jail, then serves.
 *
 * single_server_main(): one connection at a time (smtpd, local, smtp,
 * pop3d). Each process accepts on the shared listening socket, tells
 * master "busy" while it serves and "idle" after, and exits after max_use
 * connections or max_idle seconds without one; master starts more while
 * all are busy, up to the service's maxproc.
 *
 * event_server_main(): one long-lived process that multiplexes (qmgr):
 * its accept callback gets each new connection and it runs the event
 * loop itself.
 *
 * Stand-alone mode for tests and debugging: "-S" serves one session on
 * stdin/stdout without master (smtpd -S reads SMTP from stdin), logging
 * to stderr. An event server in -S mode gets descriptor 0 as its one
 * connection and runs until SIGTERM or until it stops its loop.
 *
 * The other flags master passes, from master.cf's columns:
 *	-j		chroot to queue_directory (chroot column y); skipped
 *			with a warning when not started as root
 *	-R		keep the privileges we were started with instead of
 *			dropping to mail_owner (unpriv column n: local)
 *	-s COUNT	COUNT listening sockets (an inet service on several
 *			addresses): SERVER_LISTEN_FD, then SERVER_STATUS_FD+1
 *			onwards
 *	-v		more logging (server_verbose())
 * Unknown options and stray arguments are fatal. Whatever the flags,
 * the process ends in queue_directory (its "/" when chrooted).
 *
 * The status pipe is also how a daemon learns that master no longer
 * wants it: when master dies, or retires the service's processes on a
 * reload, it closes the read end. An idle process then exits at once,
 * a busy one after its session. SIGTERM ends an idle process at once
 * and a busy one after its session; SIGPIPE is ignored.
 *
 * A process not started as root keeps the user it runs as when
 * unprivileged_ok is set; otherwise it must already be mail_owner (as
 * in a test instance) and exits with a fatal error if it is not.
 *
 * Status messages to master are fixed-size struct server_status writes,
 * atomic on a pipe.
 */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

#include <sys/types.h>

#define SERVER_LISTEN_FD	3
#define SERVER_STATUS_FD	4

#define SERVER_STATUS_IDLE	'I'
#define SERVER_STATUS_BUSY	'B'

struct server_status {
	pid_t	pid;
	char	status;
};

struct event_loop;

struct server_opts {
	const char *program;		/* "smtpd" */
	void	(*pre_jail)(void);	/* optional */
	void	(*post_jail)(void);	/* optional */
	/* single server: serve one connection; in_fd == out_fd for a
	 * socket, 0 and 1 in -S mode. Must not close the fds. */
	void	(*serve)(int in_fd, int out_fd);
	/* event server: a new connection (the callee owns fd) */
	void	(*accept)(int fd, struct event_loop *);
	/* event server: called every -w SECONDS (master.cf wakeup column) */
	void	(*wakeup)(struct event_loop *);
	int	 unprivileged_ok;	/* may run without root */
	/* event server: called once with the loop before it runs, after
	 * post_jail (qmgr starts its scans and timers here); optional */
	void	(*start)(struct event_loop *);
	/* event server: told to stop (SIGTERM, or master closed the status
	 * pipe); it stops the loop itself when it has finished what it was
	 * doing. Called again on a second signal. Optional: without it the
	 * loop stops at once. */
	void	(*drain)(struct event_loop *);
};

int	single_server_main(int argc, char **argv,
	    const struct server_opts *);
int	event_server_main(int argc, char **argv, const struct server_opts *);

/* The service name (-n) and whether -S stand-alone mode is on. */
const char *server_service_name(void);
int	server_standalone(void);
/* 1 when -v was given. */
int	server_verbose(void);

#endif
