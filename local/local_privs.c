/*
 * local_privs - every delivery runs with the privileges of the user it
 * delivers for (DESIGN.md §2): the recipient for mailboxes and .forward
 * targets, the owner of the alias table or :include: file for their
 * commands and files, default_privs when that owner is root.
 *
 * Started as root, local does what Postfix's local does: for writing a
 * mailbox or file and for reading a .forward or :include: file it
 * switches only its effective uid, gid and supplementary groups to the
 * user's (priv_set_euid), does the work in this process, and switches
 * back (priv_restore_root). Nothing of the user's runs meanwhile, so
 * nothing can use the way back; the kernel checks every open, mkdir and
 * rename as the user's, and what is created is the user's. Commands are
 * the user's own code: they run in a child that drops to the user for
 * good (priv_spawn), never through a switch. The groups come from a
 * per-process cache (priv_groups_lookup), so a delivery costs a few
 * system calls instead of a fork, a dynamic load of NSS modules and a
 * read of /etc/group.
 *
 * Started as anybody else (a test or demo instance), local can only act
 * as itself: it does so when the user's uid and gid are its own, and
 * otherwise defers with a reason that says so.
 *
 * A failed switch defers the delivery; a failed switch back is fatal
 * (the process must not go on as somebody else), which the queue
 * manager sees as a lost connection: it defers the request's
 * recipients, so nothing is lost.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "local.h"
#include "log.h"
#include "priv.h"

int
local_can_act_as(uid_t uid, gid_t gid, struct local_result *res)
{
	if (geteuid() == 0 || (uid == getuid() && gid == getgid()))
		return 0;
	local_result_set(res, DELIVER_DEFERRED, "4.3.0",
	    "cannot deliver as uid %ld gid %ld: the local delivery agent "
	    "runs as uid %ld, not as root", (long)uid, (long)gid,
	    (long)getuid());
	return -1;
}

/* Switch to uid/gid and the groups of groups_name (NULL: gid alone). */
static int
act_as(uid_t uid, gid_t gid, const char *groups_name)
{
	gid_t *groups = NULL;
	size_t ngroups = 0;
	int r, saved;

	if (geteuid() == 0 && groups_name != NULL)
		priv_groups_lookup(uid, gid, groups_name, &groups, &ngroups);
	r = priv_set_euid(uid, gid, groups, ngroups);
	saved = errno;
	free(groups);
	errno = saved;
	return r;
}

static void
act_as_root_again(uid_t uid)
{
	if (priv_restore_root() < 0)
		msg_fatal("cannot switch back to root after acting as uid "
		    "%ld: %s", (long)uid, strerror(errno));
}

void
local_run_as(uid_t uid, gid_t gid, const char *groups_name,
    local_step_fn fn, void *ctx, struct local_result *res)
{
	if (local_can_act_as(uid, gid, res) < 0)
		return;
	if (act_as(uid, gid, groups_name) < 0) {
		local_result_errno(res, errno,
		    "cannot switch to uid %ld gid %ld", (long)uid, (long)gid);
		return;
	}
	fn(ctx, res);
	act_as_root_again(uid);
	if (res->dsn == NULL)	/* a bug, but never lose mail */
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "internal error: delivery step without a result");
}

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
	memset(f, 0, sizeof(*f));
	buf_init(&f->data, max);
	if (geteuid() != 0 && (uid != getuid() || gid != getgid())) {
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
	if (act_as(uid, gid, groups_name) < 0) {
		local_result_errno(res, errno,
		    "cannot read %s: cannot switch to uid %ld gid %ld", path,
		    (long)uid, (long)gid);
		buf_free(&f->data);
		return -1;
	}
	read_file(path, max, f);
	act_as_root_again(uid);
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
