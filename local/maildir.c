/*
 * maildir - delivery into a Maildir (DESIGN.md §7), for home_mailbox
 * "Maildir/", alias and .forward targets ending in "/", and virtual
 * mailboxes.
 *
 * The message is written under tmp/ with a name no other delivery can
 * use, fsynced, linked into new/ (link(2) fails rather than replace an
 * existing file; a file system without hard links gets rename(2)), and
 * new/ is fsynced before success is reported: a crash before that leaves
 * at most a stray file in tmp/, never a half message in new/. The name
 * is Maildir++'s, with the size in it so that POP3 and IMAP servers
 * need not stat each file:
 *	SECONDS.M<usec>P<pid>Q<counter>.<host>,S=<size>
 * The folders are made (tmp/, new/, cur/, and missing parents) only
 * when creating the file or linking it shows they are missing: most
 * deliveries go to a Maildir that is there, and checking it each time
 * cost a dozen system calls.
 *
 * Runs with the recipient's privileges (local_run_as). A folder that
 * cannot be created or written defers the delivery with the system's
 * reason; a message larger than the size limit bounces with 5.2.2.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "file.h"
#include "local.h"
#include "queue.h"

/* Names tried when one is taken (a clock that went back, a reused pid). */
#define MAILDIR_TRIES	10

char *
maildir_unique_name(long sec, long usec, long pid, unsigned long counter,
    const char *host)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	(void)buf_printf(&b, "%ld.M%ldP%ldQ%lu.", sec, usec, pid, counter);
	for (; *host != '\0'; host++) {
		if (*host == '/')
			(void)buf_puts(&b, "\\057");
		else if (*host == ':')
			(void)buf_puts(&b, "\\072");
		else
			(void)buf_putc(&b, *host);
	}
	return buf_steal(&b);
}

static char *
maildir_next_name(void)
{
	static unsigned long counter;
	static char host[HOST_NAME_MAX + 1];
	struct timeval tv;

	if (host[0] == '\0' && (gethostname(host, sizeof(host) - 1) < 0 ||
	    host[0] == '\0'))
		strcpy(host, "localhost");
	gettimeofday(&tv, NULL);
	return maildir_unique_name((long)tv.tv_sec, (long)tv.tv_usec,
	    (long)getpid(), ++counter, host);
}

/* Make dir/tmp, dir/new and dir/cur; dir's parent must exist unless
 * create_parents is set. */
static int
maildir_make(const char *dir, int create_parents, struct local_result *res)
{
	static const char *const sub[] = { "tmp", "new", "cur" };
	struct stat st;
	char *path;

	if (create_parents) {
		if (file_mkdirs(dir, 0700) < 0) {
			local_result_errno(res, errno, "create maildir %s",
			    dir);
			return -1;
		}
	} else if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		local_result_errno(res, errno, "create maildir %s", dir);
		return -1;
	}
	if (stat(dir, &st) < 0) {
		local_result_errno(res, errno, "maildir %s", dir);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		local_result_errno(res, ENOTDIR, "maildir %s", dir);
		return -1;
	}
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		path = xasprintf("%s/%s", dir, sub[i]);
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			local_result_errno(res, errno, "create maildir %s",
			    path);
			free(path);
			return -1;
		}
		free(path);
	}
	/*
	 * A Maildir made just now must survive a crash with the message
	 * that follows: the names of tmp/ new/ cur/ in dir, and of dir in
	 * its parent, are fsynced (this runs only when something was
	 * missing, so it costs nothing per message).
	 */
	path = xstrdup(dir);
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';
	if (file_fsync_dir(path) < 0 || file_fsync_parent(path) < 0) {
		local_result_errno(res, errno, "fsync maildir %s", path);
		free(path);
		return -1;
	}
	free(path);
	return 0;
}

void
maildir_deliver(const struct local_msg *m, const char *dir_in,
    int create_parents, const char *delivered_to, size_t limit,
    struct local_result *res)
{
	char *dir, *prefix, *name = NULL, *tmp = NULL, *new = NULL, *newdir;
	size_t size, n;
	int fd = -1, tries, linked = 0, made = 0;

	/* "Maildir/" and "Maildir" name the same folder. */
	dir = xstrdup(dir_in);
	for (n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
		dir[n - 1] = '\0';
	prefix = local_msg_prefix(m->sender, delivered_to);
	size = strlen(prefix) + m->q->content_len;
	if (limit != 0 && size > limit) {
		local_result_set(res, DELIVER_BOUNCED, "5.2.2",
		    "maildir delivery failed: message of %zu bytes is larger "
		    "than the mailbox size limit of %zu bytes", size, limit);
		goto out;
	}

	for (tries = 0; fd < 0; tries++) {
		free(name);
		free(tmp);
		name = maildir_next_name();
		tmp = xasprintf("%s/tmp/%s", dir, name);
		if ((fd = file_create(tmp, 0600)) >= 0)
			break;
		if ((errno == ENOENT || errno == ENOTDIR) && !made) {
			/* The first delivery here: make the folders. */
			made = 1;
			if (maildir_make(dir, create_parents, res) < 0) {
				free(tmp);
				tmp = NULL;
				goto out;
			}
			continue;
		}
		if (errno != EEXIST || tries >= MAILDIR_TRIES) {
			local_result_errno(res, errno,
			    "maildir delivery failed: create %s", tmp);
			free(tmp);
			tmp = NULL;	/* not ours to remove */
			goto out;
		}
	}
	if (local_msg_copy(m, fd, prefix, 0) < 0) {
		local_result_errno(res, errno,
		    "maildir delivery failed: write %s", tmp);
		goto out;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		local_result_errno(res, errno,
		    "maildir delivery failed: sync %s", tmp);
		fd = -1;
		goto out;
	}
	fd = -1;

	for (tries = 0; !linked; tries++) {
		free(new);
		if (tries > 0) {
			/* Taken in new/: pick a fresh name for it. */
			free(name);
			name = maildir_next_name();
		}
		new = xasprintf("%s/new/%s,S=%zu", dir, name, size);
		if (link(tmp, new) == 0) {
			linked = 1;
		} else if (errno == ENOENT && !made) {
			/* tmp/ was there, new/ not: make what is missing. */
			made = 1;
			if (maildir_make(dir, create_parents, res) < 0)
				goto out;
		} else if (errno == EPERM || errno == ENOTSUP ||
		    errno == EXDEV) {
			/* No hard links here: the name is unique anyway. */
			if (rename(tmp, new) < 0) {
				local_result_errno(res, errno,
				    "maildir delivery failed: rename %s", tmp);
				goto out;
			}
			linked = 1;
		} else if (errno != EEXIST || tries >= MAILDIR_TRIES) {
			local_result_errno(res, errno,
			    "maildir delivery failed: link %s", new);
			goto out;
		}
	}
	(void)unlink(tmp);
	free(tmp);
	tmp = NULL;
	newdir = xasprintf("%s/new", dir);
	if (file_fsync_dir(newdir) < 0) {
		/* It is in new/, but may not survive a crash: try again
		 * later rather than promise what we cannot keep. */
		local_result_errno(res, errno,
		    "maildir delivery failed: sync %s", newdir);
		free(newdir);
		goto out;
	}
	free(newdir);
	local_result_set(res, DELIVER_SENT, "2.0.0", "delivered to maildir");

out:
	if (fd >= 0)
		close(fd);
	if (tmp != NULL)
		(void)unlink(tmp);
	free(tmp);
	free(new);
	free(name);
	free(prefix);
	free(dir);
}
