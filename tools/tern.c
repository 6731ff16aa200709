/*
 * tern - start, stop and look after the Tern mail system.
 *
 *	tern [-c config_dir] start|start-fg|stop|reload|status|check|flush
 *
 * The administrator's front door to master (DESIGN.md §1). Every command
 * reads main.cf first (and start, start-fg, reload and check master.cf
 * too), so a configuration error is reported here, with its file, line
 * and reason, before anything runs. master's pid file
 * (data_directory/master.pid) and its lock say whether master runs.
 *
 * Messages go to stderr as "tern: ...", and to the mail log too for the
 * commands that change something. The exit status is 0 on success and 1
 * on failure; `tern status` exits 1 when Tern is not running.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "event.h"
#include "file.h"
#include "log.h"
#include "mastercf.h"
#include "pidfile.h"
#include "priv.h"
#include "qmgr_client.h"
#include "queue.h"
#include "strv.h"

/* How long start and stop wait for master. */
#define TERN_START_WAIT_MS	30000
#define TERN_STOP_WAIT_MS	30000

static const char *config_arg;
static int log_ready;

static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void __attribute__((noreturn))
die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
vsay(const char *word, const char *fmt, va_list ap)
{
	char text[4096];

	vsnprintf(text, sizeof(text), fmt, ap);
	fprintf(stderr, "tern: %s%s\n", word, text);
	fflush(stderr);
	if (!log_ready)
		return;
	if (*word == '\0')
		msg_info("%s", text);
	else if (strcmp(word, "warning: ") == 0)
		msg_warn("%s", text);
	else
		msg_error("%s", text);
}

static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("", fmt, ap);
	va_end(ap);
}

static void
warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("warning: ", fmt, ap);
	va_end(ap);
}

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("fatal: ", fmt, ap);
	va_end(ap);
	exit(1);
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: tern [-c config_dir] "
	    "start|start-fg|stop|reload|status|check|flush\n");
	exit(1);
}

static void
load_main_cf(void)
{
	char *err = NULL;

	if (config_load(config_arg, &err) < 0)
		die("%s", err);
}

/* Send our own messages to the mail log as well, once main.cf is read. */
static void
open_maillog(void)
{
	const char *file = config_str("maillog_file");

	log_set_syslog_name(config_str("syslog_name"));
	log_open(*file != '\0' ? LOG_TO_FILE : LOG_TO_SYSLOG, file);
	log_ready = 1;
}

static int check_errors;

static void
check_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
check_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay("error: ", fmt, ap);
	va_end(ap);
	check_errors++;
}

/* master.cf: 0, or -1 after saying what is wrong (an error of check). */
static int
check_master_cf(int fatal)
{
	struct master_service *svcs;
	char *path, *err = NULL, *prog;
	size_t n;

	path = xasprintf("%s/master.cf", config_dir());
	if ((svcs = mastercf_load(path, &n, &err)) == NULL) {
		free(path);
		if (fatal)
			die("%s", err);
		check_error("%s", err);
		free(err);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (svcs[i].type != SERVICE_INET &&
		    svcs[i].type != SERVICE_UNIX)
			warn("%s, line %d: service %s: type %s is not "
			    "supported; master skips it", svcs[i].file,
			    svcs[i].line, svcs[i].name,
			    service_type_name(svcs[i].type));
		if (svcs[i].command[0] == '/')
			prog = xstrdup(svcs[i].command);
		else
			prog = xasprintf("%s/%s",
			    config_str("daemon_directory"), svcs[i].command);
		if (access(prog, X_OK) < 0)
			warn("%s, line %d: service %s: cannot execute %s: %s",
			    svcs[i].file, svcs[i].line, svcs[i].name, prog,
			    strerror(errno));
		free(prog);
	}
	mastercf_free(svcs, n);
	free(path);
	return 0;
}

static char *
pid_path(void)
{
	return xasprintf("%s/master.pid", config_str("data_directory"));
}

/* The pid of the running master, or 0. */
static pid_t
master_pid(void)
{
	char *path = pid_path();
	pid_t pid;

	if ((pid = pidfile_holder(path)) < 0)
		die("%s: %s", path, strerror(errno));
	free(path);
	return pid;
}

/* Gone, or a zombie nobody reaped yet. */
static int
process_gone(pid_t pid)
{
	char path[64], stat[512], *p;
	FILE *fp;
	size_t n;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fp = fopen(path, "re")) == NULL)
		return errno == ENOENT;
	n = fread(stat, 1, sizeof(stat) - 1, fp);
	fclose(fp);
	stat[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	if ((p = strrchr(stat, ')')) != NULL && p[1] == ' ')
		return p[2] == 'Z' || p[2] == 'X';
	return 0;
}

static char *
master_program(void)
{
	char *prog = xasprintf("%s/master", config_str("daemon_directory"));

	if (access(prog, X_OK) < 0)
		die("cannot execute %s: %s", prog, strerror(errno));
	return prog;
}

static char *
abs_config_dir(void)
{
	char *abs = realpath(config_dir(), NULL);

	return abs != NULL ? abs : xstrdup(config_dir());
}

static int
cmd_start(void)
{
	char *prog, *dir;
	pid_t pid, running;
	long long deadline;
	int status;

	load_main_cf();
	check_master_cf(1);
	open_maillog();
	if ((running = master_pid()) > 0)
		die("the Tern mail system is already running (PID: %ld)",
		    (long)running);
	prog = master_program();
	dir = abs_config_dir();
	say("starting the Tern mail system");
	if ((pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		execl(prog, "master", "-c", dir, (char *)NULL);
		fprintf(stderr, "tern: fatal: cannot execute %s: %s\n", prog,
		    strerror(errno));
		_exit(1);
	}
	/* master without -f exits once its daemon is ready, or failed. */
	deadline = event_now_ms() + TERN_START_WAIT_MS;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (event_now_ms() > deadline) {
			kill(pid, SIGTERM);
			die("master did not get ready within %d seconds",
			    TERN_START_WAIT_MS / 1000);
		}
		usleep(20 * 1000);
	}
	if (WIFSIGNALED(status))
		die("master was killed by signal %d while starting",
		    WTERMSIG(status));
	if (WEXITSTATUS(status) != 0)
		die("master could not start (exit status %d); see the "
		    "messages above", WEXITSTATUS(status));
	if ((running = master_pid()) <= 0)
		die("master started but does not hold its pid file");
	free(prog);
	free(dir);
	return 0;
}

static int __attribute__((noreturn))
cmd_start_fg(void)
{
	char *prog, *dir;

	load_main_cf();
	check_master_cf(1);
	if (master_pid() > 0)
		die("the Tern mail system is already running");
	prog = master_program();
	dir = abs_config_dir();
	execl(prog, "master", "-f", "-c", dir, (char *)NULL);
	die("cannot execute %s: %s", prog, strerror(errno));
}

static int
cmd_stop(void)
{
	long long deadline;
	pid_t pid;

	load_main_cf();
	open_maillog();
	if ((pid = master_pid()) == 0)
		die("the Tern mail system is not running");
	say("stopping the Tern mail system");
	if (kill(pid, SIGTERM) < 0)
		die("cannot signal master pid %ld: %s", (long)pid,
		    strerror(errno));
	/* master lets its lock go only after every daemon is reaped. */
	deadline = event_now_ms() + TERN_STOP_WAIT_MS;
	while (master_pid() != 0 || !process_gone(pid)) {
		if (event_now_ms() > deadline)
			die("master pid %ld did not stop within %d seconds",
			    (long)pid, TERN_STOP_WAIT_MS / 1000);
		usleep(20 * 1000);
	}
	return 0;
}

static int
cmd_reload(void)
{
	pid_t pid;

	load_main_cf();
	check_master_cf(1);
	open_maillog();
	if ((pid = master_pid()) == 0)
		die("the Tern mail system is not running");
	say("refreshing the Tern mail system");
	if (kill(pid, SIGHUP) < 0)
		die("cannot signal master pid %ld: %s", (long)pid,
		    strerror(errno));
	return 0;
}

static int
cmd_status(void)
{
	pid_t pid;

	load_main_cf();
	if ((pid = master_pid()) == 0) {
		printf("tern: the Tern mail system is not running\n");
		return 1;
	}
	printf("tern: the Tern mail system is running: PID: %ld\n",
	    (long)pid);
	return 0;
}

static int
cmd_flush(void)
{
	load_main_cf();
	if (qmgr_flush(config_str("queue_directory"), NULL) < 0)
		die("cannot flush the mail queue: the mail system is down "
		    "(%s)", strerror(errno));
	return 0;
}

/* ---- check ---- */


/* One folder: a real folder, owned by owner, with mode (when mode != 0). */
static void
check_folder(const char *dir, const struct priv_user *owner, mode_t mode)
{
	struct stat st;

	if (lstat(dir, &st) < 0) {
		check_error("%s: %s", dir, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		check_error("%s is not a folder", dir);
		return;
	}
	if (owner != NULL && st.st_uid != owner->uid) {
		if (geteuid() == 0 && lchown(dir, owner->uid, owner->gid) == 0)
			say("%s: owner set to mail_owner %s", dir,
			    owner->name);
		else
			warn("%s is owned by uid %ld, not by mail_owner %s "
			    "(uid %ld)", dir, (long)st.st_uid, owner->name,
			    (long)owner->uid);
	}
	if (mode != 0 && (st.st_mode & 07777) != mode) {
		if ((geteuid() == 0 || st.st_uid == geteuid()) &&
		    chmod(dir, mode) == 0)
			say("%s: mode changed from %04o to %04o", dir,
			    (unsigned)(st.st_mode & 07777), (unsigned)mode);
		else
			warn("%s has mode %04o, expected %04o", dir,
			    (unsigned)(st.st_mode & 07777), (unsigned)mode);
	}
}

static int
cmd_check(void)
{
	const char *queue_dir, *owner_name, *name;
	struct priv_user owner, *ownerp = NULL;
	char *err = NULL, *dir, **missing = NULL;
	struct stat st;
	mode_t mode;

	load_main_cf();
	open_maillog();
	check_master_cf(0);

	owner_name = config_str("mail_owner");
	if (priv_user_lookup(owner_name, &owner) < 0)
		check_error("mail_owner %s: %s", owner_name,
		    errno == 0 ? "no such user" : strerror(errno));
	else {
		ownerp = &owner;
		if (owner.uid == 0)
			warn("mail_owner %s has uid 0: the daemons will "
			    "run with every privilege", owner_name);
	}

	queue_dir = config_str("queue_directory");
	for (size_t i = 0; (name = queue_layout(i, &mode)) != NULL; i++) {
		dir = xasprintf("%s/%s", queue_dir, name);
		if (lstat(dir, &st) < 0 && errno == ENOENT)
			strv_add(&missing, dir);
		free(dir);
	}
	if (queue_make_folders(queue_dir, &err) < 0) {
		check_error("%s", err);
		free(err);
	}
	for (size_t i = 0; missing != NULL && missing[i] != NULL; i++)
		if (lstat(missing[i], &st) == 0)
			say("created missing folder %s", missing[i]);
	strv_free(missing);

	if (lstat(queue_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			check_error("queue_directory %s is not a folder",
			    queue_dir);
		else if (st.st_mode & S_IWOTH)
			warn("queue_directory %s is writable by everyone",
			    queue_dir);
	}
	for (size_t i = 0; (name = queue_layout(i, &mode)) != NULL; i++) {
		dir = xasprintf("%s/%s", queue_dir, name);
		check_folder(dir, ownerp, mode);
		free(dir);
	}

	dir = xstrdup(config_str("data_directory"));
	if (file_mkdirs(dir, 0755) < 0)
		check_error("data_directory %s: %s", dir, strerror(errno));
	else
		check_folder(dir, NULL, 0);
	free(dir);
	dir = xasprintf("%s/master", config_str("daemon_directory"));
	if (access(dir, X_OK) < 0)
		check_error("cannot execute %s: %s", dir, strerror(errno));
	free(dir);

	if (ownerp != NULL)
		priv_user_free(ownerp);
	return check_errors > 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int	(*fn)(void);
	} cmds[] = {
		{ "start", cmd_start },
		{ "start-fg", cmd_start_fg },
		{ "stop", cmd_stop },
		{ "reload", cmd_reload },
		{ "status", cmd_status },
		{ "check", cmd_check },
		{ "flush", cmd_flush },
	};
	int c;

	log_init("tern");
	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt(argc, argv, "+c:")) != -1) {
		switch (c) {
		case 'c':
			config_arg = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[optind], cmds[i].name) == 0)
			return cmds[i].fn();
	usage();
}
