/*
 * mbox - delivery by appending to a Unix mailbox file: home_mailbox
 * without a trailing "/", mail_spool_directory, "/file" targets of
 * aliases and .forward files, and virtual mailboxes not ending in "/".
 *
 * Each message starts with a "From sender date" line and ends with an
 * empty line; a line of the message that starts with "From " gets a ">"
 * so that readers do not take it for the start of a new message.
 * Locking is what mail readers on Linux expect: a dot-lock file
 * (path.lock, removed when stale_lock_time old) and an fcntl(2) write
 * lock, each tried deliver_lock_attempts times deliver_lock_delay
 * apart. The dot-lock needs write permission in the mailbox's folder;
 * where the recipient has none (a /var/mail owned by root) the fcntl
 * lock alone is taken, which is what current mail readers rely on.
 *
 * Runs with the recipient's privileges. A mailbox that cannot be locked
 * or written defers the delivery; a failed write is cut back off the
 * file (ftruncate to its old size), so the mailbox never keeps half a
 * message. A file that would grow past the size limit bounces with
 * 5.2.2 "mailbox full", as in Postfix.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "file.h"
#include "local.h"
#include "log.h"
#include "queue.h"

char *
mbox_from_line(const char *sender, long when)
{
	time_t t = (time_t)when;
	struct tm tm;
	char date[64];

	/* The asctime(3) layout mail readers parse: "Mon Jan  2 15:04:05
	 * 2006", in local time. */
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) == 0)
		strcpy(date, "Thu Jan  1 00:00:00 1970");
	return xasprintf("From %s %s\n", *sender ? sender : "MAILER-DAEMON",
	    date);
}

void
mbox_quote_init(struct mbox_quoter *q)
{
	q->bol = 1;
	q->nheld = 0;
}

int
mbox_quote(struct mbox_quoter *q, struct buf *out, const char *data,
    size_t len)
{
	static const char from[] = "From ";
	const char *p = data, *end = data + len, *nl;
	int r = 0;

	while (p < end) {
		if (q->bol) {
			/* Hold the first bytes of a line until they show
			 * whether it starts with "From ", even when the line
			 * start is cut across two calls. */
			q->held[q->nheld++] = *p++;
			if (memcmp(q->held, from, q->nheld) == 0) {
				if (q->nheld < sizeof(q->held))
					continue;
				r |= buf_putc(out, '>');
			}
			r |= buf_append(out, q->held, q->nheld);
			q->bol = q->held[q->nheld - 1] == '\n';
			q->nheld = 0;
			continue;
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL) {
			r |= buf_append(out, p, (size_t)(end - p));
			break;
		}
		r |= buf_append(out, p, (size_t)(nl - p + 1));
		p = nl + 1;
		q->bol = 1;
	}
	return r;
}

int
mbox_quote_end(struct mbox_quoter *q, struct buf *out)
{
	int r = buf_append(out, q->held, q->nheld);

	q->nheld = 0;
	return r;
}

/* Take path.lock; 1 taken, 0 not possible here (no permission), -1
 * with *res set. */
static int
dotlock_take(const char *lock, struct local_result *res)
{
	long attempts = config_int("deliver_lock_attempts");
	unsigned long delay = config_time("deliver_lock_delay");
	unsigned long stale = config_time("stale_lock_time");
	struct stat st;
	int fd;

	for (long i = 0; i < attempts; i++) {
		if ((fd = file_create(lock, 0600)) >= 0) {
			close(fd);
			return 1;
		}
		if (errno == EACCES || errno == EPERM || errno == EROFS)
			return 0;
		if (errno != EEXIST) {
			local_result_errno(res, errno, "create lock file %s",
			    lock);
			return -1;
		}
		if (lstat(lock, &st) == 0 &&
		    time(NULL) - st.st_mtime > (time_t)stale) {
			msg_warn("removing stale lock file %s", lock);
			(void)unlink(lock);
			continue;
		}
		if (i + 1 < attempts)
			sleep((unsigned)delay);
	}
	local_result_set(res, DELIVER_DEFERRED, "4.2.0",
	    "cannot lock mailbox: %s exists", lock);
	return -1;
}

static int
fcntl_lock(int fd, const char *path, struct local_result *res)
{
	long attempts = config_int("deliver_lock_attempts");
	unsigned long delay = config_time("deliver_lock_delay");
	struct flock fl;

	for (long i = 0; i < attempts; i++) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			local_result_errno(res, errno, "lock mailbox %s", path);
			return -1;
		}
		if (i + 1 < attempts)
			sleep((unsigned)delay);
	}
	local_result_set(res, DELIVER_DEFERRED, "4.2.0",
	    "cannot lock mailbox %s: it stays locked by another process",
	    path);
	return -1;
}

void
mbox_deliver(const struct local_msg *m, const char *path,
    const char *delivered_to, size_t limit, struct local_result *res)
{
	char *lock, *from = NULL, *prefix = NULL;
	struct stat st;
	size_t size;
	off_t start;
	int fd = -1, locked, saved;

	lock = xasprintf("%s.lock", path);
	if ((locked = dotlock_take(lock, res)) < 0)
		goto out;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0) {
		local_result_errno(res, errno == ELOOP ? EPERM : errno,
		    "cannot open mailbox %s%s", path,
		    errno == ELOOP ? " (a symbolic link)" : "");
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		local_result_errno(res, errno, "cannot open mailbox %s", path);
		goto out;
	}
	/* A link or a device in place of the mailbox is not ours to write. */
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		local_result_set(res, DELIVER_DEFERRED, "4.2.0",
		    "cannot deliver to mailbox %s: %s", path,
		    S_ISREG(st.st_mode) ? "it has more than one hard link" :
		    "not a regular file");
		goto out;
	}
	if (fcntl_lock(fd, path, res) < 0)
		goto out;
	if (fstat(fd, &st) < 0) {
		local_result_errno(res, errno, "cannot open mailbox %s", path);
		goto out;
	}
	start = st.st_size;
	from = mbox_from_line(m->sender, (long)time(NULL));
	prefix = local_msg_prefix(m->sender, delivered_to);
	/* From line, Return-Path, Delivered-To, message, final blank line. */
	size = strlen(from) + strlen(prefix) + m->q->content_len + 2;
	if (limit != 0 && (size_t)start + size > limit) {
		local_result_set(res, DELIVER_BOUNCED, "5.2.2",
		    "cannot update mailbox %s: mailbox full (the size limit "
		    "is %zu bytes)", path, limit);
		goto out;
	}
	/* local_msg_copy quotes "From " in what it is given: give it the
	 * From line separately, unquoted. */
	if (file_write_all(fd, from, strlen(from)) < 0 ||
	    local_msg_copy(m, fd, prefix, 1) < 0 || fsync(fd) < 0) {
		saved = errno;
		if (ftruncate(fd, start) < 0 || fsync(fd) < 0)
			msg_warn("cannot truncate mailbox %s back to %lld "
			    "bytes: %s", path, (long long)start,
			    strerror(errno));
		local_result_errno(res, saved, "cannot update mailbox %s",
		    path);
		goto out;
	}
	local_result_set(res, DELIVER_SENT, "2.0.0", "delivered to mailbox");

out:
	/* Closing drops the fcntl lock; the dot-lock goes after it. */
	if (fd >= 0 && close(fd) < 0 && res->status == DELIVER_SENT)
		local_result_errno(res, errno, "cannot update mailbox %s",
		    path);
	if (locked > 0)
		(void)unlink(lock);
	free(prefix);
	free(from);
	free(lock);
}
