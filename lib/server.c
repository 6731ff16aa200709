/*
 * server - the skeleton of every daemon master runs. See server.h.
 *
 * Called from a daemon's main() as the whole of its work:
 * single_server_main() for one-connection-at-a-time daemons (smtpd,
 * local, smtp), event_server_main() for multiplexers (qmgr). Both parse
 * the command line master builds, load main.cf with the master.cf -o
 * overrides, open the log, jail the process and then serve until master
 * (or max_use, or max_idle) says stop.
 *
 * Every failure before serving is fatal, naming the service, because a
 * daemon that cannot read its configuration or give up root must not
 * go on: master logs the exit and throttles the service. While serving,
 * a failed accept() is logged and retried; only a broken poll() ends the
 * process.
 *
 * SIGTERM is kept blocked except while an idle process waits for a
 * connection (ppoll unblocks it atomically), so that a SIGTERM sent to a
 * process that has just accepted a connection never cuts the session
 * short: master stops busy processes with SIGKILL only after a grace
 * period.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "num.h"
#include "priv.h"
#include "server.h"
#include "strv.h"

/* More listening sockets than any sane interface list gives. */
#define SERVER_MAX_LISTEN	64

struct server_args {
	const char	*config_dir;	/* -c; NULL: the default */
	const char	*type;		/* -t */
	unsigned long	 wakeup;	/* -w, seconds */
	unsigned long	 nlisten;	/* -s */
	int		 chroot;	/* -j */
	int		 keep_privs;	/* -R */
	char		**overrides;	/* -o name=value */
};

static const char *service_name = "";
static int standalone;
static int verbose;
static int status_ok;			/* SERVER_STATUS_FD is open */
static volatile sig_atomic_t got_sigterm;

const char *
server_service_name(void)
{
	return service_name;
}

int
server_standalone(void)
{
	return standalone;
}

int
server_verbose(void)
{
	return verbose;
}

static void __attribute__((noreturn))
server_usage(const char *program)
{
	msg_fatal("usage: %s [-c config_dir] [-n service] [-t type] "
	    "[-w seconds] [-s count] [-o name=value]... [-j] [-R] [-S] [-v]",
	    program);
}

static void
server_parse_args(int argc, char **argv, const char *program,
    struct server_args *args)
{
	int c;

	memset(args, 0, sizeof(*args));
	args->nlisten = 1;
	/* "+": stop at the first non-option, which is then an error. */
	while ((c = getopt(argc, argv, "+c:jn:o:Rs:St:vw:")) != -1) {
		switch (c) {
		case 'c':
			args->config_dir = optarg;
			break;
		case 'j':
			args->chroot = 1;
			break;
		case 'n':
			service_name = optarg;
			break;
		case 'o':
			strv_add(&args->overrides, optarg);
			break;
		case 'R':
			args->keep_privs = 1;
			break;
		case 's':
			if (parse_ulong(optarg, 1, SERVER_MAX_LISTEN,
			    &args->nlisten) < 0)
				msg_fatal("bad -s socket count \"%s\"", optarg);
			break;
		case 'S':
			standalone = 1;
			break;
		case 't':
			args->type = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'w':
			/* 0 would allow only 0: bound it by the timer's ms */
			if (parse_time(optarg, 's', LONG_MAX / 1000,
			    &args->wakeup) < 0)
				msg_fatal("bad -w wakeup time \"%s\"", optarg);
			break;
		default:
			server_usage(program);
		}
	}
	if (optind < argc) {
		msg_error("unexpected argument \"%s\"", argv[optind]);
		server_usage(program);
	}
	if (*service_name == '\0')
		service_name = program;
}

static void
server_open_log(void)
{
	const char *logfile;

	/* -S: the one session's errors belong on the terminal. */
	if (standalone)
		return;
	logfile = config_str("maillog_file");
	log_set_syslog_name(config_str("syslog_name"));
	log_open(*logfile != '\0' ? LOG_TO_FILE : LOG_TO_SYSLOG, logfile);
}

/*
 * main.cf, then the -o overrides on top; any error ends the process.
 * Under master stderr goes nowhere, so the log is opened as soon as
 * main.cf says where it is (again after the overrides, which may move
 * it); a main.cf that cannot be read at all is reported to syslog.
 */
static void
server_load_config(const struct server_args *args)
{
	char *err = NULL, *name, *eq;

	if (config_load(args->config_dir, &err) < 0) {
		if (!standalone) {
			log_open(LOG_TO_SYSLOG, NULL);
			log_also_stderr(1);
		}
		msg_fatal("service %s: %s", service_name, err);
	}
	server_open_log();
	for (size_t i = 0; args->overrides != NULL &&
	    args->overrides[i] != NULL; i++) {
		name = xstrdup(args->overrides[i]);
		if ((eq = strchr(name, '=')) == NULL)
			msg_fatal("service %s: bad -o \"%s\": expected "
			    "name=value", service_name, name);
		*eq = '\0';
		if (config_set(name, eq + 1, &err) < 0)
			msg_fatal("service %s: -o %s: %s", service_name,
			    args->overrides[i], err);
		free(name);
	}
	if (args->overrides != NULL)
		server_open_log();
}

/*
 * chroot when asked, give up root for mail_owner unless master.cf says
 * this service keeps it, and end up in the queue folder.
 */
static void
server_jail(const struct server_args *args, const struct server_opts *opts)
{
	const char *owner = config_str("mail_owner");
	const char *queue_dir = config_str("queue_directory");
	struct priv_user pw;
	int jailed = 0;

	if (priv_user_lookup(owner, &pw) < 0) {
		if (errno == 0)
			msg_fatal("service %s: mail_owner %s: no such user",
			    service_name, owner);
		msg_fatal("service %s: cannot look up mail_owner %s: %s",
		    service_name, owner, strerror(errno));
	}
	if (args->chroot) {
		if (geteuid() != 0)
			msg_warn("service %s: not started as root: chroot to "
			    "%s skipped", service_name, queue_dir);
		else if (priv_chroot(queue_dir) < 0)
			msg_fatal("service %s: chroot %s: %s", service_name,
			    queue_dir, strerror(errno));
		else {
			/* Inside the jail the queue is the root folder. */
			char *err = NULL;

			jailed = 1;
			if (config_set("queue_directory", "/", &err) < 0)
				msg_fatal("service %s: %s", service_name, err);
		}
	}
	if (!jailed && chdir(queue_dir) < 0 && !standalone)
		msg_warn("service %s: cannot enter queue_directory %s: %s",
		    service_name, queue_dir, strerror(errno));

	if (geteuid() != 0) {
		if (getuid() != pw.uid && !opts->unprivileged_ok)
			msg_fatal("service %s: must be started as root or as "
			    "mail_owner %s", service_name, owner);
	} else if (!args->keep_privs) {
		if (priv_drop(pw.uid, pw.gid, pw.name) < 0)
			msg_fatal("service %s: cannot drop privileges to "
			    "mail_owner %s: %s", service_name, owner,
			    strerror(errno));
	}
	priv_user_free(&pw);
}

/* Descriptor of listening socket i (0-based). */
static int
server_listen_fd(unsigned long i)
{
	return i == 0 ? SERVER_LISTEN_FD : SERVER_STATUS_FD + (int)i;
}

/* Everything before serving, common to both kinds of server. */
static void
server_init(int argc, char **argv, const struct server_opts *opts,
    struct server_args *args)
{
	log_init(opts->program);
	server_parse_args(argc, argv, opts->program, args);
	server_load_config(args);
	signal(SIGPIPE, SIG_IGN);

	if (!standalone) {
		for (unsigned long i = 0; i < args->nlisten; i++)
			if (fcntl(server_listen_fd(i), F_GETFD) < 0)
				msg_fatal("service %s: no listening socket on "
				    "descriptor %d (run by master, or use -S)",
				    service_name, server_listen_fd(i));
		status_ok = fcntl(SERVER_STATUS_FD, F_GETFD) >= 0;
	}
	if (opts->pre_jail != NULL)
		opts->pre_jail();
	server_jail(args, opts);
	if (opts->post_jail != NULL)
		opts->post_jail();
	if (verbose)
		msg_info("service %s (%s): ready", service_name,
		    args->type != NULL ? args->type : "-");
}

/*
 * Tell master we are busy or idle. Returns -1 when master closed its
 * end: it retired us (reload) or died, and we should stop after this
 * session.
 */
static int
server_status(char what)
{
	struct server_status st;
	ssize_t n;

	if (!status_ok)
		return 0;
	memset(&st, 0, sizeof(st));	/* no stray padding bytes */
	st.pid = getpid();
	st.status = what;
	while ((n = write(SERVER_STATUS_FD, &st, sizeof(st))) < 0 &&
	    errno == EINTR)
		;
	if (n == (ssize_t)sizeof(st))
		return 0;
	if (n < 0 && errno != EPIPE)
		msg_warn("service %s: status to master: %s", service_name,
		    strerror(errno));
	return -1;
}

/* Accept one connection on lfd; -1 when there was none to take. */
static int
server_accept(int lfd)
{
	int fd;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
		return fd;
	switch (errno) {
	case EAGAIN:
#if EWOULDBLOCK != EAGAIN
	case EWOULDBLOCK:
#endif
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
		/* Another process took it, or the client went away. */
		break;
	default:
		msg_warn("service %s: accept: %s", service_name,
		    strerror(errno));
		/* EMFILE and friends: do not spin at full speed. */
		usleep(100 * 1000);
		break;
	}
	return -1;
}

static void
server_on_sigterm(int signo)
{
	(void)signo;
	got_sigterm = 1;
}

int
single_server_main(int argc, char **argv, const struct server_opts *opts)
{
	struct pollfd pfd[SERVER_MAX_LISTEN + 1];
	struct server_args args;
	struct sigaction sa;
	sigset_t block, waitmask;
	struct timespec ts;
	long long idle_since, left;
	unsigned long max_use, max_idle, served = 0;
	size_t n;
	int fd, retired = 0;

	server_init(argc, argv, opts, &args);
	if (standalone) {
		opts->serve(STDIN_FILENO, STDOUT_FILENO);
		strv_free(args.overrides);
		return 0;
	}
	max_use = (unsigned long)config_int("max_use");
	max_idle = config_time("max_idle");

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = server_on_sigterm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);

	for (n = 0; n < args.nlisten; n++) {
		pfd[n].fd = server_listen_fd(n);
		pfd[n].events = POLLIN;
	}
	/* Only hang-up or error is ever reported on the status pipe. */
	if (status_ok) {
		pfd[n].fd = SERVER_STATUS_FD;
		pfd[n].events = 0;
		n++;
	}

	idle_since = event_now_ms();
	while (!got_sigterm && !retired && served < max_use) {
		left = idle_since + (long long)max_idle * 1000 -
		    event_now_ms();
		if (left <= 0) {
			if (verbose)
				msg_info("service %s: idle for %lus, exiting",
				    service_name, max_idle);
			break;
		}
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		if (ppoll(pfd, n, &ts, &waitmask) < 0) {
			if (errno == EINTR)
				continue;
			msg_fatal("service %s: poll: %s", service_name,
			    strerror(errno));
		}
		if (status_ok && pfd[n - 1].revents != 0)
			break;		/* master is gone or retired us */
		for (size_t i = 0; i < args.nlisten; i++) {
			if (pfd[i].revents & POLLNVAL)
				msg_fatal("service %s: listening socket %d is "
				    "gone", service_name, pfd[i].fd);
			if (!(pfd[i].revents & POLLIN))
				continue;
			if ((fd = server_accept(pfd[i].fd)) < 0)
				continue;
			if (server_status(SERVER_STATUS_BUSY) < 0)
				retired = 1;
			opts->serve(fd, fd);
			close(fd);
			served++;
			if (!retired && served < max_use &&
			    server_status(SERVER_STATUS_IDLE) < 0)
				retired = 1;
			idle_since = event_now_ms();
			break;	/* look again: SIGTERM, limits, others */
		}
	}
	if (verbose)
		msg_info("service %s: exiting after %lu session(s)",
		    service_name, served);
	strv_free(args.overrides);
	return 0;
}

/* ---- event server ---- */

struct event_server {
	const struct server_opts *opts;
	struct event_loop	*loop;
	unsigned long		 wakeup;	/* seconds; 0: none */
};

static void
event_server_on_accept(int lfd, int events, void *ctx)
{
	struct event_server *es = ctx;
	int fd;

	(void)events;
	if ((fd = server_accept(lfd)) >= 0)
		es->opts->accept(fd, es->loop);
}

/* Stop, or let the service finish first when it knows how. */
static void
event_server_stop(struct event_server *es)
{
	if (es->opts->drain != NULL)
		es->opts->drain(es->loop);
	else
		event_loop_stop(es->loop);
}

static void
event_server_on_status(int fd, int events, void *ctx)
{
	struct event_server *es = ctx;

	(void)fd;
	if (events & EVENT_ERROR) {
		msg_info("service %s: master closed the status pipe, exiting",
		    service_name);
		event_fd_del(es->loop, SERVER_STATUS_FD);
		event_server_stop(es);
	}
}

static void
event_server_on_sigterm(int signo, void *ctx)
{
	struct event_server *es = ctx;

	(void)signo;
	event_server_stop(es);
}

static void
event_server_on_wakeup(void *ctx)
{
	struct event_server *es = ctx;

	es->opts->wakeup(es->loop);
	event_timer_add(es->loop, (long)es->wakeup * 1000,
	    event_server_on_wakeup, es);
}

int
event_server_main(int argc, char **argv, const struct server_opts *opts)
{
	struct server_args args;
	struct event_server es;

	server_init(argc, argv, opts, &args);
	memset(&es, 0, sizeof(es));
	es.opts = opts;
	es.wakeup = args.wakeup;
	if ((es.loop = event_loop_new()) == NULL)
		msg_fatal("service %s: event loop: %s", service_name,
		    strerror(errno));
	if (event_signal_add(es.loop, SIGTERM, event_server_on_sigterm,
	    &es) < 0)
		msg_fatal("service %s: signal setup: %s", service_name,
		    strerror(errno));
	if (opts->start != NULL)
		opts->start(es.loop);

	if (standalone) {
		opts->accept(STDIN_FILENO, es.loop);
	} else {
		for (unsigned long i = 0; i < args.nlisten; i++)
			if (event_fd_add(es.loop, server_listen_fd(i),
			    EVENT_READ, event_server_on_accept, &es) < 0)
				msg_fatal("service %s: watch listening "
				    "socket: %s", service_name,
				    strerror(errno));
		/* No events asked for: hang-up is always reported. */
		if (status_ok && event_fd_add(es.loop, SERVER_STATUS_FD, 0,
		    event_server_on_status, &es) < 0)
			msg_fatal("service %s: watch status pipe: %s",
			    service_name, strerror(errno));
	}
	if (es.wakeup > 0 && opts->wakeup != NULL)
		event_timer_add(es.loop, (long)es.wakeup * 1000,
		    event_server_on_wakeup, &es);
	if (event_loop_run(es.loop) < 0)
		msg_fatal("service %s: event loop: %s", service_name,
		    strerror(errno));
	event_loop_free(es.loop);
	strv_free(args.overrides);
	return 0;
}
