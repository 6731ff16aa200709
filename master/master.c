/*
 * master - the supervisor of every Tern daemon.
 *
 *	master [-c config_dir] [-f] [-d] [-t] [-v]
 *
 * Started by `tern start` (or by hand with -f). It reads main.cf and
 * master.cf, makes the queue folders and removes what a crash left in
 * them, takes the lock on data_directory/master.pid so that it runs only
 * once, opens every service's listening sockets and then supervises the
 * services' processes (master_service.c) from one event loop: child
 * exits and status messages, SIGHUP to reload, SIGTERM to stop.
 *
 * Errors in the configuration, the lock or a socket at start are fatal
 * with a message naming the file, line or address; without -f the
 * process that was started waits until the daemon it forked is ready, so
 * its exit status tells the starter whether master runs. Once running,
 * nothing is fatal: a reload with a broken main.cf or master.cf is
 * logged and the running configuration kept; a service that cannot be
 * set up is logged and skipped.
 *
 * -f stays in the foreground and logs to stderr as well; -d keeps
 * stdin, stdout and stderr open (daemons' stderr too) and logs every
 * process started; -t only tests whether a master runs (exit 0 when none
 * does, 1 when one does); -v logs more.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "event.h"
#include "file.h"
#include "log.h"
#include "master.h"
#include "mastercf.h"
#include "pidfile.h"
#include "priv.h"
#include "queue.h"
#include "strv.h"

/* How long stopping daemons get before SIGKILL. */
#define MASTER_STOP_GRACE_MS	5000
/* Largest main.cf master reads to notice a change. */
#define MASTER_MAINCF_MAX	(4 * 1024 * 1024)

struct event_loop *master_loop;
struct master_conf *master_conf;
int master_stopping;
int master_verbose;

static int foreground;
static int keep_stdio;
static int pid_fd = -1;
static char *pid_path;

static void __attribute__((noreturn))
usage(void)
{
	msg_fatal("usage: master [-c config_dir] [-f] [-d] [-t] [-v]");
}

static void
conf_free(struct master_conf *c)
{
	if (c == NULL)
		return;
	free(c->config_dir);
	free(c->maincf_text);
	free(c->queue_dir);
	free(c->daemon_dir);
	free(c->data_dir);
	free(c->mail_owner);
	free(c->maillog_file);
	strv_free(c->inet_interfaces);
	strv_free(c->inet_protocols);
	mastercf_free(c->defs, c->ndefs);
	free(c);
}

/* main.cf and master.cf into a new master_conf; NULL with *err. */
static struct master_conf *
conf_load(const char *dir, char **err)
{
	struct master_conf *c;
	char *path, *abs;
	struct buf text;

	*err = NULL;
	if (config_load(dir, err) < 0)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	/* Daemons run in the queue folder: they need an absolute path. */
	if ((abs = realpath(config_dir(), NULL)) != NULL) {
		c->config_dir = xstrdup(abs);
		free(abs);
	} else
		c->config_dir = xstrdup(config_dir());
	path = xasprintf("%s/main.cf", c->config_dir);
	buf_init(&text, MASTER_MAINCF_MAX);
	if (file_read_all(path, &text, MASTER_MAINCF_MAX) < 0)
		msg_warn("read %s: %s", path, strerror(errno));
	c->maincf_text = buf_steal(&text);
	free(path);

	c->queue_dir = xstrdup(config_str("queue_directory"));
	c->daemon_dir = xstrdup(config_str("daemon_directory"));
	c->data_dir = xstrdup(config_str("data_directory"));
	c->mail_owner = xstrdup(config_str("mail_owner"));
	c->maillog_file = xstrdup(config_str("maillog_file"));
	c->inet_interfaces = config_list("inet_interfaces");
	c->inet_protocols = config_list("inet_protocols");
	c->process_limit = config_int("default_process_limit");
	c->throttle_max = config_time("service_throttle_time");

	path = xasprintf("%s/master.cf", c->config_dir);
	c->defs = mastercf_load(path, &c->ndefs, err);
	free(path);
	if (c->defs == NULL) {
		conf_free(c);
		return NULL;
	}
	return c;
}

static void
open_log(const struct master_conf *c)
{
	log_set_syslog_name(config_str("syslog_name"));
	log_open(*c->maillog_file != '\0' ? LOG_TO_FILE : LOG_TO_SYSLOG,
	    c->maillog_file);
}

/*
 * Without -f: fork; the parent waits until the daemon says it is ready
 * (one byte on a pipe) and exits 0, or exits with the daemon's status
 * when it dies first. Returns the pipe's write end in the daemon.
 */
static int
daemonize(void)
{
	int p[2], status;
	pid_t pid;
	ssize_t n;
	char c;

	if (pipe2(p, O_CLOEXEC) < 0)
		msg_fatal("pipe: %s", strerror(errno));
	if ((pid = fork()) < 0)
		msg_fatal("fork: %s", strerror(errno));
	if (pid > 0) {
		close(p[1]);
		while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
			;
		if (n == 1)
			_exit(0);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status))
			_exit(WEXITSTATUS(status) != 0 ?
			    WEXITSTATUS(status) : 1);
		msg_error("master process %ld killed by signal %d",
		    (long)pid, WTERMSIG(status));
		_exit(1);
	}
	close(p[0]);
	if (setsid() < 0)
		msg_fatal("setsid: %s", strerror(errno));
	return p[1];
}

static void
redirect_stdio(void)
{
	int fd;

	if ((fd = open("/dev/null", O_RDWR)) < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/*
 * The queue folders exist, belong to mail_owner (when we are root and
 * can make it so), and hold no crash leftovers.
 */
static void
prepare_queue(const struct master_conf *c, const struct priv_user *owner)
{
	char *err = NULL, *dir, **names = NULL;
	int n;

	if (queue_make_folders(c->queue_dir, &err) < 0)
		msg_fatal("%s", err);
	if (geteuid() == 0) {
		for (int f = 0; f < QUEUE_NFOLDERS; f++)
			strv_add(&names,
			    queue_folder_name((enum queue_folder)f));
		strv_add(&names, "private");
		strv_add(&names, "public");
		for (size_t i = 0; names[i] != NULL; i++) {
			dir = xasprintf("%s/%s", c->queue_dir, names[i]);
			if (lchown(dir, owner->uid, owner->gid) < 0)
				msg_warn("chown %s to %s: %s", dir,
				    owner->name, strerror(errno));
			free(dir);
		}
		strv_free(names);
	}
	if ((n = queue_cleanup(c->queue_dir)) > 0)
		msg_info("removed %d incomplete queue file%s", n,
		    n == 1 ? "" : "s");
	if (chdir(c->queue_dir) < 0)
		msg_fatal("chdir %s: %s", c->queue_dir, strerror(errno));
}

/* The services of c that master can run; start == 1 makes errors fatal. */
static void
services_start(const struct master_conf *c, int start)
{
	struct service *svc, **tail = &service_list;
	char *err = NULL;

	for (size_t i = 0; i < c->ndefs; i++) {
		if ((svc = service_create(&c->defs[i], c, &err)) == NULL ||
		    listen_open(svc, c, &err) < 0) {
			if (svc != NULL)
				service_retire(svc, 0);
			if (start && (c->defs[i].type == SERVICE_INET ||
			    c->defs[i].type == SERVICE_UNIX))
				msg_fatal("%s, line %d: %s", c->defs[i].file,
				    c->defs[i].line, err);
			msg_warn("%s, line %d: %s; service skipped",
			    c->defs[i].file, c->defs[i].line, err);
			free(err);
			err = NULL;
			continue;
		}
		*tail = svc;
		tail = &svc->next;
	}
}

static struct service *
service_find(const char *name, enum service_type type)
{
	for (struct service *s = service_list; s != NULL; s = s->next)
		if (s->type == type && strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* Take svc out of service_list (it stays alive). */
static void
service_unlink(struct service *svc)
{
	for (struct service **pp = &service_list; *pp != NULL;
	    pp = &(*pp)->next) {
		if (*pp == svc) {
			*pp = svc->next;
			break;
		}
	}
	svc->next = NULL;
}

static void
reload_skip(const struct master_service *d, char *err)
{
	msg_warn("%s, line %d: %s; service skipped", d->file, d->line, err);
	free(err);
}

/*
 * SIGHUP: read both files again. A service whose master.cf line and
 * main.cf are unchanged keeps its processes (a new maxproc applies at
 * once); a changed one gets a fresh pool while the old processes finish
 * what they are doing; a removed one is retired; a new one starts.
 * Sockets whose addresses did not change stay open throughout, so no
 * connection waiting in a backlog is lost.
 */
static void
master_reload(void)
{
	struct master_conf *c, *old = master_conf;
	struct service *svc, *prev, *keep = NULL, **tail = &keep;
	const struct master_service *d;
	char *err = NULL, *key, *spec;
	int maincf_changed, same_key;

	if ((c = conf_load(old->config_dir, &err)) == NULL) {
		msg_error("reload failed, the running configuration stays: "
		    "%s", err);
		free(err);
		return;
	}
	msg_info("reload -- version %s, configuration %s", PACKAGE_VERSION,
	    c->config_dir);
	if (strcmp(old->maillog_file, c->maillog_file) != 0)
		open_log(c);
	maincf_changed = strcmp(old->maincf_text, c->maincf_text) != 0;
	master_conf = c;

	for (size_t i = 0; i < c->ndefs; i++) {
		d = &c->defs[i];
		if (listen_resolve(d, c, &key, &err) < 0) {
			reload_skip(d, err);
			continue;
		}
		prev = service_find(d->name, d->type);
		same_key = prev != NULL && strcmp(prev->listen_key, key) == 0;
		free(key);
		spec = service_spec(d);
		if (same_key && !maincf_changed &&
		    strcmp(spec, prev->spec) == 0) {
			/* Unchanged: it keeps its processes. */
			free(spec);
			service_unlink(prev);
			prev->maxproc = service_maxproc(d, c);
			*tail = prev;
			tail = &prev->next;
			continue;
		}
		free(spec);
		if ((svc = service_create(d, c, &err)) == NULL) {
			reload_skip(d, err);
			continue;
		}
		if (prev != NULL)
			service_follow(svc, prev);
		if (same_key) {
			service_take_sockets(svc, prev);
			service_unlink(prev);
			service_retire(prev, 0);
		} else {
			if (prev != NULL) {
				service_unlink(prev);
				service_retire(prev, 1);
			}
			if (listen_open(svc, c, &err) < 0) {
				reload_skip(d, err);
				service_retire(svc, 0);
				continue;
			}
		}
		if (prev != NULL)
			msg_info("service %s: changed, new processes start",
			    svc->name);
		*tail = svc;
		tail = &svc->next;
	}
	/* What is left was removed from master.cf. */
	while ((svc = service_list) != NULL) {
		msg_info("service %s: removed", svc->name);
		service_unlink(svc);
		service_retire(svc, 1);
	}
	service_list = keep;
	conf_free(old);
	for (svc = service_list; svc != NULL; svc = svc->next)
		service_update(svc);
}

static void
on_sighup(int signo, void *ctx)
{
	(void)signo;
	(void)ctx;
	if (!master_stopping)
		master_reload();
}

static void
on_give_up_timer(void *ctx)
{
	(void)ctx;
	msg_warn("%d process%s did not die: exiting anyway",
	    service_children(), service_children() == 1 ? "" : "es");
	event_loop_stop(master_loop);
}

static void
on_kill_timer(void *ctx)
{
	(void)ctx;
	if (service_children() > 0) {
		msg_warn("%d process%s still running after %d seconds: "
		    "killing", service_children(),
		    service_children() == 1 ? "" : "es",
		    MASTER_STOP_GRACE_MS / 1000);
		service_signal_all(SIGKILL);
		/* Only a process stuck in the kernel survives SIGKILL. */
		event_timer_add(master_loop, MASTER_STOP_GRACE_MS,
		    on_give_up_timer, NULL);
	}
}

static void
on_sigterm(int signo, void *ctx)
{
	(void)ctx;
	if (master_stopping)
		return;
	msg_info("terminating on signal %d", signo);
	master_stopping = 1;
	while (service_list != NULL)
		service_retire(service_list, 1);
	service_signal_all(SIGTERM);
	if (service_children() == 0)
		event_loop_stop(master_loop);
	else
		event_timer_add(master_loop, MASTER_STOP_GRACE_MS,
		    on_kill_timer, NULL);
}

static void
on_sigchld(int signo, void *ctx)
{
	pid_t pid;
	int status;

	(void)signo;
	(void)ctx;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		service_reap(pid, status);
	if (master_stopping && service_children() == 0)
		event_loop_stop(master_loop);
}

/* -t: exit 0 when no master runs for this configuration. */
static void __attribute__((noreturn))
test_running(void)
{
	pid_t pid = pidfile_holder(pid_path);

	if (pid < 0)
		msg_fatal("%s: %s", pid_path, strerror(errno));
	if (pid > 0) {
		msg_info("the Tern mail system is running: PID: %ld",
		    (long)pid);
		exit(1);
	}
	exit(0);
}

static void
master_start(int ready_fd)
{
	struct master_conf *c = master_conf;
	struct priv_user owner;
	pid_t holder = 0;

	if (file_mkdirs(c->data_dir, 0755) < 0)
		msg_fatal("mkdir %s: %s", c->data_dir, strerror(errno));
	if ((pid_fd = pidfile_acquire(pid_path, &holder)) < 0) {
		if (errno == EAGAIN)
			msg_fatal("the Tern mail system is already running "
			    "(master pid %ld)", (long)holder);
		msg_fatal("%s: %s", pid_path, strerror(errno));
	}
	if (priv_user_lookup(c->mail_owner, &owner) < 0)
		msg_fatal("mail_owner %s: %s", c->mail_owner, errno == 0 ?
		    "no such user" : strerror(errno));
	if (owner.uid == 0)
		msg_warn("mail_owner %s has uid 0: the daemons will run "
		    "with every privilege", c->mail_owner);
	prepare_queue(c, &owner);
	priv_user_free(&owner);

	if ((master_loop = event_loop_new()) == NULL)
		msg_fatal("event loop: %s", strerror(errno));
	if (event_signal_add(master_loop, SIGCHLD, on_sigchld, NULL) < 0 ||
	    event_signal_add(master_loop, SIGHUP, on_sighup, NULL) < 0 ||
	    event_signal_add(master_loop, SIGTERM, on_sigterm, NULL) < 0 ||
	    event_signal_add(master_loop, SIGINT, on_sigterm, NULL) < 0)
		msg_fatal("signal setup: %s", strerror(errno));
	services_start(c, 1);
	msg_info("daemon started -- version %s, configuration %s",
	    PACKAGE_VERSION, c->config_dir);

	if (ready_fd >= 0) {
		if (write(ready_fd, "", 1) != 1)
			msg_fatal("tell the starter we are ready: %s",
			    strerror(errno));
		close(ready_fd);
		if (!keep_stdio) {
			redirect_stdio();
			log_also_stderr(0);
		}
	}
	for (struct service *s = service_list; s != NULL; s = s->next)
		service_update(s);
}

int
main(int argc, char **argv)
{
	const char *dir = NULL;
	int c, test_only = 0, ready_fd = -1;
	char *err = NULL;

	log_init("master");
	while ((c = getopt(argc, argv, "c:dftv")) != -1) {
		switch (c) {
		case 'c':
			dir = optarg;
			break;
		case 'd':
			keep_stdio = 1;
			master_verbose = 1;
			break;
		case 'f':
			foreground = 1;
			break;
		case 't':
			test_only = 1;
			break;
		case 'v':
			master_verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind < argc)
		usage();
	umask(022);
	signal(SIGPIPE, SIG_IGN);
	/* Whatever the starter left open must not reach the daemons. */
	(void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);

	if ((master_conf = conf_load(dir, &err)) == NULL)
		msg_fatal("%s", err);
	pid_path = xasprintf("%s/master.pid", master_conf->data_dir);
	if (test_only)
		test_running();

	open_log(master_conf);
	log_also_stderr(1);
	if (!foreground)
		ready_fd = daemonize();
	master_start(ready_fd);

	if (event_loop_run(master_loop) < 0)
		msg_fatal("event loop: %s", strerror(errno));

	/* Every process is gone: say so last, then let the lock go. */
	while (service_list != NULL)
		service_retire(service_list, 1);
	pidfile_release(pid_path, pid_fd);
	event_loop_free(master_loop);
	conf_free(master_conf);
	free(pid_path);
	config_reset();
	return 0;
}
