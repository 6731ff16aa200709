/*
 * priv - look up users, drop privileges, chroot, and run a child with
 * fewer privileges than the caller. See priv.h.
 *
 * priv_spawn() forks; the child resets every signal to its default and
 * unblocks them all (an event loop's blocked signals and an ignored
 * SIGPIPE must not leak into a delivery command), starts a new session
 * so that priv_run() can kill the command and everything it started,
 * moves its pipes to 0, 1 and 2, closes every other descriptor, drops
 * to uid/gid, changes folder and calls execve(). When a step fails the
 * child writes which step and errno to a close-on-exec pipe and exits
 * 127; the parent reads that pipe, which closes empty on a successful
 * exec, and turns it into the message in *err.
 *
 * priv_run() writes input and reads output through non-blocking pipes
 * with poll(2), with SIGPIPE blocked while it runs: a command that exits
 * without reading its input is not an error of priv_run's. Killing a
 * command that runs out of time ends priv_run with -1 (errno ETIMEDOUT)
 * and the wait status still stored, so the caller can say "time limit
 * exceeded" rather than "killed by signal 9".
 *
 * If root could be regained after priv_drop() claims success, the
 * process panics: that is a bug in the system, never something to go on
 * from.
 *
 * priv_set_euid() is the cheap way to act for a user, as Postfix's
 * local does: the real and saved uid stay 0, so a process that runs no
 * code of the user's can go back with priv_restore_root(). The user
 * cannot signal or trace the process meanwhile (the real uid is
 * root's, and the kernel marks it not dumpable when the euid changes).
 * The root groups and egid to go back to are saved at each switch.
 *
 * Supplementary groups come from getgrouplist(3) through a cache of
 * PRIV_GROUPS_CACHE users per process: the first lookup loads NSS and
 * reads /etc/group, the next ones cost nothing, and a forked child
 * only calls setgroups(2).
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "event.h"
#include "log.h"
#include "priv.h"

#define PRIV_CHUNK	16384

static void
priv_user_fill(struct priv_user *u, const struct passwd *pw)
{
	u->name = xstrdup(pw->pw_name);
	u->uid = pw->pw_uid;
	u->gid = pw->pw_gid;
	u->home = xstrdup(pw->pw_dir != NULL ? pw->pw_dir : "/");
	u->shell = xstrdup(pw->pw_shell != NULL ? pw->pw_shell : "");
}

/* One lookup by name (when name != NULL) or by uid, growing the buffer. */
static int
priv_user_get(const char *name, uid_t uid, struct priv_user *u)
{
	struct passwd pw, *res;
	char *space;
	long sz;
	size_t len;
	int e;

	memset(u, 0, sizeof(*u));
	sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	len = sz > 0 ? (size_t)sz : 1024;
	for (;;) {
		space = xmalloc(len);
		res = NULL;
		if (name != NULL)
			e = getpwnam_r(name, &pw, space, len, &res);
		else
			e = getpwuid_r(uid, &pw, space, len, &res);
		if (e != ERANGE || len > 1024 * 1024)
			break;
		free(space);
		len *= 2;
	}
	if (res == NULL) {
		free(space);
		/* "Not found" is reported in several ways by NSS modules. */
		if (e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
			e = 0;
		errno = e;
		return -1;
	}
	priv_user_fill(u, &pw);
	free(space);
	return 0;
}

int
priv_user_lookup(const char *name, struct priv_user *u)
{
	return priv_user_get(name, 0, u);
}

int
priv_user_lookup_uid(uid_t uid, struct priv_user *u)
{
	return priv_user_get(NULL, uid, u);
}

void
priv_user_free(struct priv_user *u)
{
	free(u->name);
	free(u->home);
	free(u->shell);
	memset(u, 0, sizeof(*u));
}

/* When not root: dropping to the ids we have is all that can succeed. */
static int
priv_drop_self(uid_t uid, gid_t gid)
{
	if (getuid() == uid && geteuid() == uid && getgid() == gid &&
	    getegid() == gid)
		return 0;
	errno = EPERM;
	return -1;
}

/* The supplementary groups are set: now the ids, for good. */
static int
priv_drop_ids(uid_t uid, gid_t gid)
{
	if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -1;
	if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		msg_panic("priv_drop: uid %ld could regain root",
		    (long)uid);
	if (getuid() != uid || geteuid() != uid || getgid() != gid ||
	    getegid() != gid) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

int
priv_drop(uid_t uid, gid_t gid, const char *name_for_groups)
{
	if (geteuid() != 0)
		return priv_drop_self(uid, gid);
	if (name_for_groups != NULL) {
		if (initgroups(name_for_groups, gid) < 0)
			return -1;
	} else if (setgroups(1, &gid) < 0)
		return -1;
	return priv_drop_ids(uid, gid);
}

/* priv_drop with the groups looked up already (in a child after fork,
 * where NSS would be loaded afresh each time). */
static int
priv_drop_groups(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups)
{
	if (geteuid() != 0)
		return priv_drop_self(uid, gid);
	if (ngroups == 0) {
		groups = &gid;
		ngroups = 1;
	}
	if (setgroups(ngroups, groups) < 0)
		return -1;
	return priv_drop_ids(uid, gid);
}

/* ---- supplementary groups, cached ---- */

/* Users a process keeps the groups of; the least recently used goes. */
#define PRIV_GROUPS_CACHE	16
/* More groups than Linux allows (NGROUPS_MAX): give up, gid alone. */
#define PRIV_GROUPS_MAX		65536

struct priv_groups_entry {
	int	 used;
	uid_t	 uid;
	gid_t	 gid;
	char	*name;		/* as asked; NULL: uid's account */
	gid_t	*groups;
	size_t	 ngroups;
	unsigned long last;	/* priv_groups_clock when last used */
};

static struct priv_groups_entry priv_groups_cache[PRIV_GROUPS_CACHE];
static unsigned long priv_groups_clock;

/* getgrouplist(3), growing the array until it fits. */
static void
priv_groups_fetch(const char *name, gid_t gid, gid_t **groups,
    size_t *ngroups)
{
	gid_t *g;
	int have = 32, want;

	for (;;) {
		g = xreallocarray(NULL, (size_t)have, sizeof(*g));
		want = have;
		if (getgrouplist(name, gid, g, &want) >= 0 && want >= 1) {
			*groups = g;
			*ngroups = (size_t)want;
			return;
		}
		free(g);
		/* glibc says how many it needs; others may not. */
		have = want > have ? want : have * 2;
		if (have > PRIV_GROUPS_MAX)
			break;
	}
	*groups = xmalloc(sizeof(**groups));
	(*groups)[0] = gid;
	*ngroups = 1;
}

static int
priv_groups_same_name(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

void
priv_groups_lookup(uid_t uid, gid_t gid, const char *name, gid_t **groups,
    size_t *ngroups)
{
	struct priv_groups_entry *e = NULL, *victim = &priv_groups_cache[0];
	struct priv_user u;

	for (size_t i = 0; i < PRIV_GROUPS_CACHE; i++) {
		struct priv_groups_entry *c = &priv_groups_cache[i];

		if (c->used && c->uid == uid && c->gid == gid &&
		    priv_groups_same_name(c->name, name)) {
			e = c;
			break;
		}
		if (!c->used || (victim->used && c->last < victim->last))
			victim = c;
	}
	if (e == NULL) {
		e = victim;
		free(e->name);
		free(e->groups);
		memset(e, 0, sizeof(*e));
		e->used = 1;
		e->uid = uid;
		e->gid = gid;
		e->name = name != NULL ? xstrdup(name) : NULL;
		if (name != NULL)
			priv_groups_fetch(name, gid, &e->groups, &e->ngroups);
		else if (priv_user_lookup_uid(uid, &u) == 0) {
			priv_groups_fetch(u.name, gid, &e->groups,
			    &e->ngroups);
			priv_user_free(&u);
		} else {
			e->groups = xmalloc(sizeof(*e->groups));
			e->groups[0] = gid;
			e->ngroups = 1;
		}
	}
	e->last = ++priv_groups_clock;
	*groups = xreallocarray(NULL, e->ngroups, sizeof(**groups));
	memcpy(*groups, e->groups, e->ngroups * sizeof(**groups));
	*ngroups = e->ngroups;
}

/* ---- effective ids, switched and back ---- */

/* What priv_restore_root goes back to; set while switched. */
static int priv_switched;
static gid_t priv_saved_egid;
static gid_t *priv_saved_groups;
static size_t priv_saved_ngroups;

int
priv_set_euid(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups)
{
	int n, saved;

	if (priv_switched)
		msg_panic("priv_set_euid: uid %ld: still switched to uid %ld",
		    (long)uid, (long)geteuid());
	if (geteuid() != 0) {
		if (getuid() == uid && geteuid() == uid && getgid() == gid &&
		    getegid() == gid)
			return 0;
		errno = EPERM;
		return -1;
	}
	if ((n = getgroups(0, NULL)) < 0)
		return -1;
	priv_saved_groups = xreallocarray(priv_saved_groups,
	    n > 0 ? (size_t)n : 1, sizeof(*priv_saved_groups));
	if ((n = getgroups(n, priv_saved_groups)) < 0)
		return -1;
	priv_saved_ngroups = (size_t)n;
	priv_saved_egid = getegid();
	priv_switched = 1;
	if (ngroups == 0) {
		groups = &gid;
		ngroups = 1;
	}
	/* Groups and gid first: after seteuid we could not change them. */
	if (setgroups(ngroups, groups) < 0 || setegid(gid) < 0 ||
	    seteuid(uid) < 0)
		saved = errno;
	else if (geteuid() != uid || getegid() != gid)
		saved = EPERM;
	else
		return 0;
	if (priv_restore_root() < 0)
		msg_fatal("cannot go back to root after failing to switch to "
		    "uid %ld: %s", (long)uid, strerror(errno));
	errno = saved;
	return -1;
}

int
priv_restore_root(void)
{
	if (!priv_switched)
		return 0;
	if (seteuid(0) < 0 || setegid(priv_saved_egid) < 0 ||
	    setgroups(priv_saved_ngroups, priv_saved_groups) < 0)
		return -1;
	priv_switched = 0;
	return 0;
}

int
priv_chroot(const char *dir)
{
	if (chroot(dir) < 0 || chdir("/") < 0)
		return -1;
	return 0;
}

/* What the child reports when it cannot get as far as execve(). */
struct priv_failure {
	int	step;
	int	err;
};

enum {
	PRIV_STEP_FDS,
	PRIV_STEP_DROP,
	PRIV_STEP_CHDIR,
	PRIV_STEP_EXEC,
};

static const char *const priv_step_name[] = {
	[PRIV_STEP_FDS] = "cannot set up descriptors for",
	[PRIV_STEP_DROP] = "cannot drop privileges for",
	[PRIV_STEP_CHDIR] = "cannot change folder for",
	[PRIV_STEP_EXEC] = "cannot execute",
};

static void __attribute__((noreturn))
priv_child_fail(int fd, int step)
{
	struct priv_failure f;

	f.step = step;
	f.err = errno;
	(void)write(fd, &f, sizeof(f));
	_exit(127);
}

/* Move fd above 2 (so that dup2 onto 0, 1, 2 cannot clobber it). */
static int
priv_fd_high(int fd)
{
	return fd > 2 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

static void
priv_close_from(int lowfd)
{
	long max, fd;

	if (close_range((unsigned)lowfd, ~0U, 0) == 0)
		return;
	max = sysconf(_SC_OPEN_MAX);
	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = lowfd; fd < max; fd++)
		close((int)fd);
}

/* In the child: never returns. */
static void __attribute__((noreturn))
priv_child(char *const argv[], char *const envp[], uid_t uid, gid_t gid,
    const gid_t *groups, size_t ngroups, const char *cwd, int in, int out,
    int report)
{
	static char *const noenv[] = { NULL };
	struct sigaction sa;
	sigset_t none;
	int sig, fd, null = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (sig = 1; sig < NSIG; sig++)
		(void)sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	(void)setsid();

	if ((fd = priv_fd_high(report)) < 0)
		priv_child_fail(report, PRIV_STEP_FDS);
	report = fd;
	if (in < 0 || out < 0) {
		if ((null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
			priv_child_fail(report, PRIV_STEP_FDS);
		if ((null = priv_fd_high(null)) < 0)
			priv_child_fail(report, PRIV_STEP_FDS);
	}
	if (in < 0)
		in = null;
	if (out < 0)
		out = null;
	if ((in = priv_fd_high(in)) < 0 || (out = priv_fd_high(out)) < 0)
		priv_child_fail(report, PRIV_STEP_FDS);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		priv_child_fail(report, PRIV_STEP_FDS);
	if (report != 3) {
		if (dup3(report, 3, O_CLOEXEC) < 0)
			priv_child_fail(report, PRIV_STEP_FDS);
		report = 3;
	}
	priv_close_from(4);

	if (priv_drop_groups(uid, gid, groups, ngroups) < 0)
		priv_child_fail(report, PRIV_STEP_DROP);
	if (chdir(cwd != NULL ? cwd : "/") < 0)
		priv_child_fail(report, PRIV_STEP_CHDIR);
	execve(argv[0], argv, envp != NULL ? envp : noenv);
	priv_child_fail(report, PRIV_STEP_EXEC);
}

int
priv_spawn(char *const argv[], char *const envp[], uid_t uid, gid_t gid,
    const char *cwd, int *to_child, int *from_child, pid_t *pidp,
    char **err)
{
	struct priv_failure f;
	gid_t *groups = NULL;
	size_t ngroups = 0;
	int inp[2] = { -1, -1 }, outp[2] = { -1, -1 }, rep[2] = { -1, -1 };
	ssize_t n;
	pid_t pid;
	int saved, status;

	*err = NULL;
	if (argv == NULL || argv[0] == NULL || argv[0][0] != '/') {
		*err = xasprintf("cannot execute %s: not an absolute path",
		    argv != NULL && argv[0] != NULL ? argv[0] : "(null)");
		errno = EINVAL;
		return -1;
	}
	/* Root gives the child the user's groups, looked up out here (and
	 * cached): NSS in every child costs more than the fork. */
	if (geteuid() == 0 && uid != 0)
		priv_groups_lookup(uid, gid, NULL, &groups, &ngroups);
	if ((to_child != NULL && pipe2(inp, O_CLOEXEC) < 0) ||
	    (from_child != NULL && pipe2(outp, O_CLOEXEC) < 0) ||
	    pipe2(rep, O_CLOEXEC) < 0) {
		saved = errno;
		*err = xasprintf("cannot execute %s: pipe: %s", argv[0],
		    strerror(saved));
		goto fail;
	}
	if ((pid = fork()) < 0) {
		saved = errno;
		*err = xasprintf("cannot execute %s: fork: %s", argv[0],
		    strerror(saved));
		goto fail;
	}
	if (pid == 0)
		priv_child(argv, envp, uid, gid, groups, ngroups, cwd, inp[0],
		    outp[1], rep[1]);

	close(rep[1]);
	rep[1] = -1;
	if (inp[0] >= 0)
		close(inp[0]);
	if (outp[1] >= 0)
		close(outp[1]);
	inp[0] = outp[1] = -1;
	while ((n = read(rep[0], &f, sizeof(f))) < 0 && errno == EINTR)
		;
	if (n != 0) {
		/* The child failed before execve (or the read did). */
		if (n == (ssize_t)sizeof(f) && f.step >= 0 &&
		    f.step <= PRIV_STEP_EXEC) {
			saved = f.err;
			*err = xasprintf("%s %s: %s", priv_step_name[f.step],
			    argv[0], strerror(f.err));
		} else {
			saved = n < 0 ? errno : EIO;
			*err = xasprintf("cannot execute %s: %s", argv[0],
			    n < 0 ? strerror(saved) : "lost the child");
		}
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		goto fail;
	}
	close(rep[0]);
	free(groups);
	if (to_child != NULL)
		*to_child = inp[1];
	if (from_child != NULL)
		*from_child = outp[0];
	*pidp = pid;
	return 0;

fail:
	free(groups);
	if (inp[0] >= 0)
		close(inp[0]);
	if (inp[1] >= 0)
		close(inp[1]);
	if (outp[0] >= 0)
		close(outp[0]);
	if (outp[1] >= 0)
		close(outp[1]);
	if (rep[0] >= 0)
		close(rep[0]);
	if (rep[1] >= 0)
		close(rep[1]);
	errno = saved;
	return -1;
}

static void
priv_nonblock(int fd)
{
	int flags;

	if ((flags = fcntl(fd, F_GETFL)) >= 0)
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Feed the child and drain it until it closes its output or time is up. */
static int
priv_run_io(int *in, int *out, const char *input, size_t inlen,
    struct buf *output, long long deadline, char **err)
{
	char chunk[PRIV_CHUNK];
	struct pollfd pfd[2];
	size_t sent = 0, room;
	ssize_t n;
	long long left;
	int npfd, wait, i;

	while (*out >= 0) {
		if (*in >= 0 && sent == inlen) {
			close(*in);
			*in = -1;
		}
		npfd = 0;
		if (*out >= 0) {
			pfd[npfd].fd = *out;
			pfd[npfd++].events = POLLIN;
		}
		if (*in >= 0) {
			pfd[npfd].fd = *in;
			pfd[npfd++].events = POLLOUT;
		}
		wait = -1;
		if (deadline != 0) {
			left = deadline - event_now_ms();
			if (left <= 0)
				return 1;
			wait = left > 1000000 ? 1000000 : (int)left;
		}
		if ((n = poll(pfd, (nfds_t)npfd, wait)) < 0) {
			if (errno == EINTR)
				continue;
			*err = xasprintf("poll: %s", strerror(errno));
			return -1;
		}
		for (i = 0; i < npfd; i++) {
			if (pfd[i].revents == 0)
				continue;
			if (pfd[i].fd == *in) {
				n = write(*in, input + sent, inlen - sent);
				if (n > 0)
					sent += (size_t)n;
				else if (n < 0 && errno != EAGAIN &&
				    errno != EINTR)
					sent = inlen;	/* EPIPE: it quit reading */
				continue;
			}
			n = read(*out, chunk, sizeof(chunk));
			if (n == 0) {
				close(*out);
				*out = -1;
			} else if (n > 0) {
				room = output->max - output->len;
				if (room > (size_t)n)
					room = (size_t)n;
				(void)buf_append(output, chunk, room);
			} else if (errno != EAGAIN && errno != EINTR) {
				*err = xasprintf("read: %s", strerror(errno));
				return -1;
			}
		}
	}
	return 0;
}

/* waitpid, killing the child's session when the deadline passes. */
static int
priv_run_reap(pid_t pid, long long deadline, int *status, int *killed)
{
	int nap = 1;
	pid_t r;

	for (;;) {
		if ((r = waitpid(pid, status, WNOHANG)) == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
		if (!*killed && deadline != 0 && event_now_ms() >= deadline) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			*killed = 1;
		}
		if (*killed) {
			while ((r = waitpid(pid, status, 0)) < 0 &&
			    errno == EINTR)
				;
			return r == pid ? 0 : -1;
		}
		(void)poll(NULL, 0, nap);
		if (nap < 50)
			nap *= 2;
	}
}

int
priv_run(char *const argv[], char *const envp[], uid_t uid, gid_t gid,
    const void *input, size_t inlen, struct buf *output, int timeout,
    int *status, char **err)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t pipeset, old;
	long long deadline;
	char *why = NULL;
	int in = -1, out = -1, killed = 0, r, saved;
	pid_t pid;

	*err = NULL;
	*status = 0;
	deadline = timeout > 0 ? event_now_ms() + (long long)timeout * 1000 :
	    0;
	if (priv_spawn(argv, envp, uid, gid, NULL, &in, &out, &pid, err) < 0)
		return -1;
	priv_nonblock(in);
	priv_nonblock(out);

	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipeset, &old);
	r = priv_run_io(&in, &out, input != NULL ? input : "", inlen, output,
	    deadline, &why);
	saved = errno;
	if (!sigismember(&old, SIGPIPE))
		while (sigtimedwait(&pipeset, NULL, &zero) >= 0 ||
		    errno == EINTR)
			;
	sigprocmask(SIG_SETMASK, &old, NULL);

	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	if (r != 0) {
		/* Out of time, or an I/O error: do not wait for it politely. */
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		killed = 1;
	}
	if (priv_run_reap(pid, deadline, status, &killed) < 0) {
		saved = errno;
		*err = xasprintf("%s: waitpid: %s", argv[0], strerror(saved));
		free(why);
		errno = saved;
		return -1;
	}
	if (r < 0) {
		*err = xasprintf("%s: %s", argv[0], why);
		free(why);
		errno = saved;
		return -1;
	}
	free(why);
	if (killed) {
		*err = xasprintf("%s: killed after %d seconds", argv[0],
		    timeout);
		errno = ETIMEDOUT;
		return -1;
	}
	return 0;
}
