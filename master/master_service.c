/*
 * master_service - each service's pool of processes.
 *
 * Called by master.c when it (re)reads master.cf and when processes
 * exit. A service's processes all accept on the service's shared
 * listening sockets. A process starts as "idle"; it writes "busy" to the
 * service's status pipe when it accepts a connection and "idle" when it
 * is done. master watches the listening sockets only while the service
 * has no idle process and fewer than maxproc processes: a connection
 * arriving then starts one more process, which will accept it. With
 * maxproc processes busy, new connections wait in the kernel's backlog
 * until one is free. Services that must always run (a wakeup time, or a
 * unix service with maxproc 1 such as qmgr) get a process at once and a
 * new one whenever it exits.
 *
 * A process that exits with a non-zero status or on a signal is logged
 * and its service throttled: no new process for 1 second, then 2, 4 ...
 * up to service_throttle_time, back to 1 after a clean exit. Other
 * services are not affected.
 *
 * Each service has its own status pipe. Retiring a service (it was
 * changed or removed by a reload, or master stops) closes master's end:
 * its idle processes see the pipe close and exit at once, busy ones
 * exit after their session, and their late messages go nowhere. A
 * retired service lives on, without sockets, until its last process is
 * reaped.
 */
#include "autoconf.h"

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
#include "event.h"
#include "log.h"
#include "master.h"
#include "server.h"
#include "strv.h"

struct child {
	struct child	*next;
	pid_t		 pid;
	struct service	*svc;
	int		 idle;
};

/* What a service's processes are started with, from master.cf. */
struct service_def {
	char		*command;
	char		**args;
	char		**overrides;
	unsigned	 wakeup;
	int		 chroot;
	int		 unpriv;
};

struct service *service_list;
static struct child *children;

static void service_on_status(int, int, void *);

static struct child *
child_find(pid_t pid)
{
	for (struct child *c = children; c != NULL; c = c->next)
		if (c->pid == pid)
			return c;
	return NULL;
}

int
service_children(void)
{
	int n = 0;

	for (struct child *c = children; c != NULL; c = c->next)
		n++;
	return n;
}

void
service_signal_all(int signo)
{
	for (struct child *c = children; c != NULL; c = c->next)
		(void)kill(c->pid, signo);
}

char *
service_spec(const struct master_service *def)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	buf_printf(&b, "%s %d %d %d %u %s", service_type_name(def->type),
	    def->private, def->unpriv, def->chroot, def->wakeup,
	    def->command);
	for (size_t i = 0; def->args != NULL && def->args[i] != NULL; i++)
		buf_printf(&b, "\n%s", def->args[i]);
	buf_puts(&b, "\n-o");
	for (size_t i = 0; def->overrides != NULL &&
	    def->overrides[i] != NULL; i++)
		buf_printf(&b, "\n%s", def->overrides[i]);
	return buf_steal(&b);
}

static char **
strv_copy(char *const *v)
{
	char **out = NULL;

	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		strv_add(&out, v[i]);
	return out;
}

int
service_maxproc(const struct master_service *def,
    const struct master_conf *c)
{
	if (def->maxproc < 0)
		return (int)c->process_limit;
	return def->maxproc == 0 ? INT_MAX : def->maxproc;
}

struct service *
service_create(const struct master_service *def, const struct master_conf *c,
    char **err)
{
	struct service_def *sd;
	struct service *svc;
	char *key = NULL;
	int p[2];

	if (listen_resolve(def, c, &key, err) < 0)
		return NULL;
	if (pipe2(p, O_CLOEXEC) < 0) {
		*err = xasprintf("service %s: status pipe: %s", def->name,
		    strerror(errno));
		free(key);
		return NULL;
	}
	(void)fcntl(p[0], F_SETFL, O_NONBLOCK);
	svc = xcalloc(1, sizeof(*svc));
	svc->name = xstrdup(def->name);
	svc->type = def->type;
	svc->spec = service_spec(def);
	if (def->command[0] == '/')
		svc->path = xstrdup(def->command);
	else
		svc->path = xasprintf("%s/%s", c->daemon_dir, def->command);
	svc->maxproc = service_maxproc(def, c);
	svc->always_on = def->wakeup > 0 ||
	    (def->type == SERVICE_UNIX && def->maxproc == 1);
	svc->listen_key = key;
	svc->status_rd = p[0];
	svc->status_wr = p[1];

	sd = xcalloc(1, sizeof(*sd));
	sd->command = xstrdup(def->command);
	sd->args = strv_copy(def->args);
	sd->overrides = strv_copy(def->overrides);
	sd->wakeup = def->wakeup;
	sd->chroot = def->chroot;
	sd->unpriv = def->unpriv;
	svc->def = sd;

	if (event_fd_add(master_loop, svc->status_rd, EVENT_READ,
	    service_on_status, svc) < 0)
		msg_fatal("watch status pipe: %s", strerror(errno));
	return svc;
}

static void
service_free(struct service *svc)
{
	struct service_def *sd = svc->def;
	struct service *next = svc->successor;

	if (svc->predecessor != NULL)
		svc->predecessor->successor = NULL;
	if (next != NULL) {
		next->predecessor = NULL;
		service_update(next);
	}
	listen_close(svc, 0);
	free(svc->name);
	free(svc->spec);
	free(svc->path);
	free(svc->listen_key);
	free(sd->command);
	strv_free(sd->args);
	strv_free(sd->overrides);
	free(sd);
	free(svc);
}

static char **
service_argv(const struct service *svc)
{
	const struct service_def *sd = svc->def;
	char **argv = NULL, *num;

	strv_add(&argv, sd->command);
	strv_add(&argv, "-c");
	strv_add(&argv, master_conf->config_dir);
	strv_add(&argv, "-n");
	strv_add(&argv, svc->name);
	strv_add(&argv, "-t");
	strv_add(&argv, service_type_name(svc->type));
	if (sd->wakeup > 0) {
		num = xasprintf("%u", sd->wakeup);
		strv_add(&argv, "-w");
		strv_add(&argv, num);
		free(num);
	}
	if (svc->nlisten > 1) {
		num = xasprintf("%zu", svc->nlisten);
		strv_add(&argv, "-s");
		strv_add(&argv, num);
		free(num);
	}
	if (sd->chroot)
		strv_add(&argv, "-j");
	if (!sd->unpriv)
		strv_add(&argv, "-R");
	for (size_t i = 0; sd->overrides != NULL && sd->overrides[i] != NULL;
	    i++) {
		strv_add(&argv, "-o");
		strv_add(&argv, sd->overrides[i]);
	}
	for (size_t i = 0; sd->args != NULL && sd->args[i] != NULL; i++)
		strv_add(&argv, sd->args[i]);
	return argv;
}

/*
 * In the new process: signals back to normal, the sockets on 3 and 5
 * onwards, the status pipe on 4, nothing else open across exec.
 */
static void __attribute__((noreturn))
child_exec(const struct service *svc, char **argv)
{
	struct sigaction sa;
	sigset_t none;
	int hi, top, tmp;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	/* Copies above every target first, so no dup2 clobbers a source. */
	top = svc->nlisten > 1 ? SERVER_STATUS_FD + (int)svc->nlisten - 1 :
	    SERVER_STATUS_FD;
	hi = top + 1;
	for (size_t i = 0; i < svc->nlisten; i++) {
		if ((tmp = fcntl(svc->listen_fds[i], F_DUPFD_CLOEXEC, hi)) <
		    0 || dup2(tmp, i == 0 ? SERVER_LISTEN_FD :
		    SERVER_STATUS_FD + (int)i) < 0)
			goto fail;
		hi = tmp + 1;
	}
	if ((tmp = fcntl(svc->status_wr, F_DUPFD_CLOEXEC, hi)) < 0 ||
	    dup2(tmp, SERVER_STATUS_FD) < 0)
		goto fail;
	(void)close_range((unsigned)top + 1, ~0U, CLOSE_RANGE_CLOEXEC);
	execv(svc->path, argv);
fail:
	msg_error("cannot execute %s for service %s: %s", svc->path,
	    svc->name, strerror(errno));
	_exit(1);
}

static void
service_spawn(struct service *svc)
{
	struct child *c;
	char **argv;
	pid_t pid;

	argv = service_argv(svc);
	if ((pid = fork()) < 0) {
		msg_warn("service %s: fork: %s", svc->name, strerror(errno));
		strv_free(argv);
		return;
	}
	if (pid == 0)
		child_exec(svc, argv);
	strv_free(argv);
	c = xcalloc(1, sizeof(*c));
	c->pid = pid;
	c->svc = svc;
	c->idle = 1;
	c->next = children;
	children = c;
	svc->nchild++;
	svc->nidle++;
	if (master_verbose)
		msg_info("service %s: started %s pid %ld", svc->name,
		    svc->path, (long)pid);
}

static void
service_on_listen(int fd, int events, void *ctx)
{
	struct service *svc = ctx;

	(void)fd;
	(void)events;
	if (!svc->retired && !svc->throttled && !master_stopping &&
	    svc->nidle == 0 && svc->nchild < svc->maxproc)
		service_spawn(svc);
	service_update(svc);
}

static void
service_watch(struct service *svc, int on)
{
	if (svc->watching == on)
		return;
	for (size_t i = 0; i < svc->nlisten; i++) {
		if (!on)
			event_fd_del(master_loop, svc->listen_fds[i]);
		else if (event_fd_add(master_loop, svc->listen_fds[i],
		    EVENT_READ, service_on_listen, svc) < 0)
			msg_warn("service %s: watch socket: %s", svc->name,
			    strerror(errno));
	}
	svc->watching = on;
}

void
service_follow(struct service *svc, struct service *prev)
{
	if (svc->maxproc != 1)
		return;
	if (prev->successor != NULL)
		prev->successor->predecessor = NULL;
	svc->predecessor = prev;
	prev->successor = svc;
}

void
service_take_sockets(struct service *to, struct service *from)
{
	service_watch(from, 0);
	to->listen_fds = from->listen_fds;
	to->nlisten = from->nlisten;
	to->unix_path = from->unix_path;
	from->listen_fds = NULL;
	from->nlisten = 0;
	from->unix_path = NULL;
}

void
service_update(struct service *svc)
{
	/* A retired one takes no work; a successor waits its turn; one
	 * whose sockets are not open yet (mid-reload) has nothing to give
	 * a process. */
	if (svc->retired || master_stopping || svc->predecessor != NULL ||
	    svc->nlisten == 0) {
		service_watch(svc, 0);
		return;
	}
	if (!svc->throttled && svc->always_on && svc->nchild == 0)
		service_spawn(svc);
	service_watch(svc, !svc->throttled && svc->nidle == 0 &&
	    svc->nchild < svc->maxproc);
}

static void
service_on_status(int fd, int events, void *ctx)
{
	struct server_status st[64];
	struct service *svc = ctx;
	struct child *c;
	ssize_t n;

	(void)events;
	/* Writes are whole structs and atomic, so reads are too. */
	while ((n = read(fd, st, sizeof(st))) > 0) {
		for (size_t i = 0; i < (size_t)n / sizeof(st[0]); i++) {
			if ((c = child_find(st[i].pid)) == NULL ||
			    c->svc != svc)
				continue;
			if (st[i].status == SERVER_STATUS_BUSY && c->idle) {
				c->idle = 0;
				svc->nidle--;
			} else if (st[i].status == SERVER_STATUS_IDLE &&
			    !c->idle) {
				c->idle = 1;
				svc->nidle++;
			}
		}
	}
	service_update(svc);
}

static void
service_unthrottle(void *ctx)
{
	struct service *svc = ctx;

	svc->throttled = 0;
	svc->throttle_timer = 0;
	service_update(svc);
}

static void
service_throttle(struct service *svc)
{
	unsigned long delay;

	if (svc->throttled)
		return;
	delay = svc->throttle_delay == 0 ? 1 : svc->throttle_delay * 2;
	if (delay > master_conf->throttle_max)
		delay = master_conf->throttle_max;
	svc->throttle_delay = delay;
	svc->throttled = 1;
	svc->throttle_timer = event_timer_add(master_loop, (long)delay * 1000,
	    service_unthrottle, svc);
	msg_warn("service %s: throttling for %lu second%s", svc->name, delay,
	    delay == 1 ? "" : "s");
}

void
service_reap(pid_t pid, int status)
{
	struct child *c, **pp;
	struct service *svc;
	int clean;

	for (pp = &children; (c = *pp) != NULL; pp = &c->next)
		if (c->pid == pid)
			break;
	if (c == NULL)
		return;
	*pp = c->next;
	svc = c->svc;
	svc->nchild--;
	if (c->idle)
		svc->nidle--;
	free(c);

	clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	/* While stopping, death by the SIGTERM we sent is what we asked
	 * for (a daemon past its own handler, e.g. in exit-time cleanup);
	 * only other ends are news. */
	if (WIFSIGNALED(status)) {
		if (!master_stopping || WTERMSIG(status) != SIGTERM)
			msg_warn("process %s pid %ld killed by signal %d",
			    svc->path, (long)pid, WTERMSIG(status));
	} else if (!clean)
		msg_warn("process %s pid %ld exit status %d", svc->path,
		    (long)pid, WEXITSTATUS(status));
	if (svc->retired) {
		if (svc->nchild == 0)
			service_free(svc);
		return;
	}
	if (master_stopping)
		return;
	if (!clean)
		service_throttle(svc);
	else if (!svc->throttled)
		svc->throttle_delay = 0;
	service_update(svc);
}

void
service_retire(struct service *svc, int unlink_socket)
{
	struct service **pp;

	for (pp = &service_list; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == svc) {
			*pp = svc->next;
			break;
		}
	}
	svc->next = NULL;
	service_watch(svc, 0);
	svc->retired = 1;
	if (svc->throttle_timer != 0)
		event_timer_cancel(master_loop, svc->throttle_timer);
	svc->throttle_timer = 0;
	listen_close(svc, unlink_socket);
	event_fd_del(master_loop, svc->status_rd);
	close(svc->status_rd);
	close(svc->status_wr);
	svc->status_rd = svc->status_wr = -1;
	if (svc->nchild == 0) {
		service_free(svc);
		return;
	}
	/* Idle ones also see the pipe close; SIGTERM is for event servers
	 * and anything that does not watch it. Busy ones finish first. */
	for (struct child *c = children; c != NULL; c = c->next)
		if (c->svc == svc && c->idle)
			(void)kill(c->pid, SIGTERM);
}
