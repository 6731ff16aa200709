/*
 * local_privs - every delivery runs with the privileges of the user it
 * delivers for (DESIGN.md §2): the recipient for mailboxes and .forward
 * targets, the owner of the alias table or :include: file for their
 * commands and files, default_privs when that owner is root.
 *
 * Started as root, local forks for each delivery; the child drops to the
 * user for good (priv_drop: root cannot be regained), does the work, and
 * writes its result back over a pipe. Started as anybody else (a test or
 * demo instance), local can only deliver as itself: it does so directly
 * when the user's uid and gid are its own, and otherwise defers with a
 * reason that says so. A child that dies without a result defers the
 * delivery; nothing is lost.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "file.h"
#include "local.h"
#include "log.h"
#include "priv.h"

/* Most bytes a child may send as its result. */
#define RESULT_MAX	8192

/* The result travels as "S DSN REASON": status letter, dsn, text. */
static void
child_report(int fd, const struct local_result *r)
{
	char *text;

	text = xasprintf("%c %s %s", r->status == DELIVER_SENT ? 'S' :
	    r->status == DELIVER_BOUNCED ? 'B' : 'D',
	    r->dsn ? r->dsn : "4.3.0", r->reason ? r->reason : "");
	if (strlen(text) > RESULT_MAX)
		text[RESULT_MAX] = '\0';
	(void)file_write_all(fd, text, strlen(text));
	free(text);
}

static int
parent_read(int fd, struct local_result *r)
{
	struct buf b;
	char chunk[1024], *sp, *dsn;
	ssize_t n;
	enum deliver_status st;

	buf_init(&b, RESULT_MAX);
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		(void)buf_append(&b, chunk, (size_t)n);
	}
	if (b.len < 4 || b.data[1] != ' ' ||
	    (sp = strchr(b.data + 2, ' ')) == NULL) {
		buf_free(&b);
		return -1;
	}
	st = b.data[0] == 'S' ? DELIVER_SENT : b.data[0] == 'B' ?
	    DELIVER_BOUNCED : DELIVER_DEFERRED;
	dsn = xstrndup(b.data + 2, (size_t)(sp - b.data - 2));
	local_result_set(r, st, dsn, "%s", sp + 1);
	free(dsn);
	buf_free(&b);
	return 0;
}

void
local_run_as(uid_t uid, gid_t gid, const char *groups_name,
    local_step_fn fn, void *ctx, struct local_result *res)
{
	struct local_result cr;
	int p[2], status, saved;
	pid_t pid;

	if (geteuid() != 0) {
		if (uid == getuid() && gid == getgid()) {
			fn(ctx, res);
			return;
		}
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "cannot deliver as uid %ld gid %ld: the local delivery "
		    "agent runs as uid %ld, not as root", (long)uid,
		    (long)gid, (long)getuid());
		return;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		local_result_errno(res, errno, "cannot start delivery: pipe");
		return;
	}
	if ((pid = fork()) < 0) {
		saved = errno;
		close(p[0]);
		close(p[1]);
		local_result_errno(res, saved, "cannot start delivery: fork");
		return;
	}
	if (pid == 0) {
		close(p[0]);
		local_result_init(&cr);
		if (priv_drop(uid, gid, groups_name) < 0)
			local_result_errno(&cr, errno,
			    "cannot switch to uid %ld gid %ld", (long)uid,
			    (long)gid);
		else
			fn(ctx, &cr);
		child_report(p[1], &cr);
		_exit(0);
	}
	close(p[1]);
	local_result_init(&cr);
	if (parent_read(p[0], &cr) < 0)
		local_result_set(&cr, DELIVER_DEFERRED, "4.3.0",
		    "delivery process ended without a result");
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status) && cr.status != DELIVER_DEFERRED) {
		/* It may have reported before dying; trust only a clean
		 * exit. */
		local_result_set(&cr, DELIVER_DEFERRED, "4.3.0",
		    "delivery process killed by signal %d",
		    WTERMSIG(status));
	}
	local_result_copy(res, &cr);
	local_result_free(&cr);
}

/* What the reading child sends first, before the data. */
struct read_head {
	int	 err;
	uid_t	 uid;
	mode_t	 mode;
	unsigned long nlink;
	int	 too_large;
	size_t	 len;
};

/* Open and read path into f with the privileges we have now. */
static void
read_file(const char *path, size_t max, struct local_file *f)
{
	struct stat st;
	char chunk[4096];
	ssize_t n;
	int fd;

	/* O_NONBLOCK: a FIFO in place of the file must not hang us. */
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC | O_NOCTTY)) < 0) {
		f->err = errno;
		return;
	}
	if (fstat(fd, &st) < 0) {
		f->err = errno;
		close(fd);
		return;
	}
	f->uid = st.st_uid;
	f->mode = st.st_mode;
	f->nlink = (unsigned long)st.st_nlink;
	while (S_ISREG(st.st_mode) && !f->too_large &&
	    (n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			f->err = errno;
			break;
		}
		if (f->data.len + (size_t)n > max) {
			f->too_large = 1;
			buf_reset(&f->data);
		} else
			(void)buf_append(&f->data, chunk, (size_t)n);
	}
	close(fd);
}

int
local_read_as(uid_t uid, gid_t gid, const char *groups_name,
    const char *path, size_t max, struct local_file *f,
    struct local_result *res)
{
	struct read_head h;
	int p[2], status, saved, ok = 0;
	ssize_t n;
	pid_t pid;

	memset(f, 0, sizeof(*f));
	buf_init(&f->data, max);
	if (geteuid() != 0) {
		if (uid == getuid() && gid == getgid()) {
			read_file(path, max, f);
			return 0;
		}
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "cannot read %s as uid %ld gid %ld: the local delivery "
		    "agent runs as uid %ld, not as root", path, (long)uid,
		    (long)gid, (long)getuid());
		buf_free(&f->data);
		return -1;
	}
	if (uid == 0) {
		read_file(path, max, f);
		return 0;
	}
	if (pipe2(p, O_CLOEXEC) < 0) {
		local_result_errno(res, errno, "cannot read %s: pipe", path);
		buf_free(&f->data);
		return -1;
	}
	if ((pid = fork()) < 0) {
		saved = errno;
		close(p[0]);
		close(p[1]);
		local_result_errno(res, saved, "cannot read %s: fork", path);
		buf_free(&f->data);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		if (priv_drop(uid, gid, groups_name) < 0)
			f->err = errno;
		else
			read_file(path, max, f);
		memset(&h, 0, sizeof(h));
		h.err = f->err;
		h.uid = f->uid;
		h.mode = f->mode;
		h.nlink = f->nlink;
		h.too_large = f->too_large;
		h.len = f->data.len;
		if (file_write_all(p[1], &h, sizeof(h)) == 0 && h.len > 0)
			(void)file_write_all(p[1], f->data.data, h.len);
		_exit(0);
	}
	close(p[1]);
	while ((n = read(p[0], &h, sizeof(h))) < 0 && errno == EINTR)
		;
	if (n == (ssize_t)sizeof(h) && h.len <= max) {
		struct buf *d = &f->data;

		ok = 1;
		while (d->len < h.len) {
			char chunk[4096];
			size_t want = h.len - d->len;

			if (want > sizeof(chunk))
				want = sizeof(chunk);
			n = read(p[0], chunk, want);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				ok = 0;
				break;
			}
			(void)buf_append(d, chunk, (size_t)n);
		}
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!ok) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "cannot read %s: the reading process failed", path);
		buf_free(&f->data);
		return -1;
	}
	f->err = h.err;
	f->uid = h.uid;
	f->mode = h.mode;
	f->nlink = h.nlink;
	f->too_large = h.too_large;
	return 0;
}

void
local_file_free(struct local_file *f)
{
	buf_free(&f->data);
}

int
local_default_privs(struct priv_user *pw, struct local_result *res)
{
	const char *name = config_str("default_privs");

	memset(pw, 0, sizeof(*pw));
	if (priv_user_lookup(name, pw) < 0) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.5",
		    "mail system configuration error: default_privs user "
		    "\"%s\": %s", name, errno ? strerror(errno) :
		    "no such user");
		return -1;
	}
	if (pw->uid == 0) {
		priv_user_free(pw);
		local_result_set(res, DELIVER_DEFERRED, "4.3.5",
		    "mail system configuration error: default_privs user "
		    "\"%s\" is root", name);
		return -1;
	}
	return 0;
}
