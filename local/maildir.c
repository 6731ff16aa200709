/*
 * maildir - delivery into a Maildir (DESIGN.md §7), for home_mailbox
 * "Maildir/", alias and .forward targets ending in "/", and virtual
 * mailboxes.
 *
 * The message is written under tmp/ with a name no other delivery can
 * use, fsynced, linked into new/ (link(2) fails rather than replace an
 * existing file; a file system without hard links gets rename(2)), and
 * new/ is fsynced before qmgr hears of the success: a crash before that
 * leaves at most a stray file in tmp/, never a half message in new/. The
 * name is Maildir++'s, with the size in it so that POP3 and IMAP servers
 * need not stat each file:
 *	SECONDS.M<usec>P<pid>Q<counter>.<host>,S=<size>
 * The folders are made (tmp/, new/, cur/, and missing parents) only
 * when creating the file or linking it shows they are missing: most
 * deliveries go to a Maildir that is there, and checking it each time
 * cost a dozen system calls.
 *
 * The fsync of new/ is a disk-cache flush, and qmgr sends a mailbox's
 * messages together (a batch of requests on one connection), so local
 * turns on deferred sync for a batch (local.c): each delivery keeps its
 * new/ open instead (opened with the recipient's privileges; one
 * descriptor per folder, shared by every message linked there) and says
 * sent, and maildir_sync_pending() fsyncs each folder once before any
 * reply of the batch is sent. A folder whose fsync fails turns every
 * recipient that waited on it deferred, with a log line, as the fsync
 * done at once would have. A delivery outside a request (m->req NULL),
 * and the folders past MAILDIR_PENDING_MAX in one batch, sync at once.
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
/* Most new/ folders kept open for one batch; more are synced at once. */
#define MAILDIR_PENDING_MAX	64

/* A recipient whose copy in a new/ folder waits for its fsync. */
struct maildir_waiter {
	struct deliver_request *req;
	size_t	 rcpt;
	char	*to;		/* the address delivered to, for the log */
};

/* A new/ folder linked into during the batch and not fsynced yet. */
struct maildir_pending {
	dev_t	 dev;
	ino_t	 ino;
	int	 fd;
	char	*path;		/* for the reason, as first reached */
	struct maildir_waiter *waiters;
	size_t	 nwaiters;
};

static int deferring;		/* maildir_defer_sync() was called */
static struct maildir_pending pending[MAILDIR_PENDING_MAX];
static size_t npending;

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
maildir_defer_sync(void)
{
	deferring = 1;
}

/*
 * Make the new link in newdir durable: at once, or, in deferred mode,
 * by keeping newdir open until maildir_sync_pending() and recording the
 * recipient as waiting on it. 0, or -1 with errno when a sync done at
 * once failed.
 */
static int
maildir_sync_new(const struct local_msg *m, const char *newdir,
    const char *delivered_to)
{
	struct maildir_pending *p = NULL;
	struct maildir_waiter *w;
	struct stat st;
	int fd;

	if (!deferring || m->req == NULL)
		return file_fsync_dir(newdir);
	if ((fd = open(newdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return file_fsync_dir(newdir);
	if (fstat(fd, &st) == 0) {
		for (size_t i = 0; i < npending && p == NULL; i++)
			if (pending[i].dev == st.st_dev &&
			    pending[i].ino == st.st_ino)
				p = &pending[i];
		if (p != NULL) {
			close(fd);	/* the folder's first one will do */
		} else if (npending < MAILDIR_PENDING_MAX) {
			p = &pending[npending++];
			memset(p, 0, sizeof(*p));
			p->dev = st.st_dev;
			p->ino = st.st_ino;
			p->fd = fd;
			p->path = xstrdup(newdir);
		}
	}
	if (p == NULL) {
		/* Cannot tell the folder, or too many: sync it now. */
		int r = fsync(fd), saved = errno;

		close(fd);
		errno = saved;
		return r;
	}
	p->waiters = xreallocarray(p->waiters, p->nwaiters + 1,
	    sizeof(*p->waiters));
	w = &p->waiters[p->nwaiters++];
	w->req = m->req;
	w->rcpt = m->rcpt;
	w->to = xstrdup(delivered_to);
	return 0;
}

/* The fsync of p failed with err: whoever waited on it was not
 * delivered after all. */
static void
maildir_sync_failed(const struct maildir_pending *p, int err)
{
	struct local_result res;

	local_result_init(&res);
	local_result_errno(&res, err, "maildir delivery failed: sync %s",
	    p->path);
	for (size_t i = 0; i < p->nwaiters; i++) {
		const struct maildir_waiter *w = &p->waiters[i];
		const struct deliver_rcpt *rc = &w->req->rcpts[w->rcpt];

		/* An earlier deferral of the recipient stays what is
		 * reported, as the first one does in local_recipient.c. */
		if (rc->status != DELIVER_DEFERRED || rc->dsn == NULL)
			deliver_set_result(w->req, w->rcpt, res.status,
			    res.dsn, res.reason);
		/*
		 * The branch may have been logged as sent already: say
		 * what became of it. A recipient not logged yet gets its
		 * line, with the result above, from deliver_agent_serve.
		 */
		if (rc->logged)
			local_log_to(w->req, w->rcpt, w->to, res.status,
			    res.dsn, res.reason);
	}
	local_result_free(&res);
}

void
maildir_sync_pending(void)
{
	for (size_t i = 0; i < npending; i++) {
		struct maildir_pending *p = &pending[i];

		if (fsync(p->fd) < 0)
			maildir_sync_failed(p, errno);
		close(p->fd);
		for (size_t k = 0; k < p->nwaiters; k++)
			free(p->waiters[k].to);
		free(p->waiters);
		free(p->path);
		memset(p, 0, sizeof(*p));
	}
	npending = 0;
	deferring = 0;
}

int
maildir_sync_rcpt(const struct deliver_request *req, size_t rcpt,
    const char **path)
{
	for (size_t i = 0; i < npending; i++) {
		struct maildir_pending *p = &pending[i];
		size_t k, kept;

		for (k = 0; k < p->nwaiters && (p->waiters[k].req != req ||
		    p->waiters[k].rcpt != rcpt); k++)
			;
		if (k == p->nwaiters)
			continue;
		if (fsync(p->fd) < 0) {
			*path = p->path;
			return -1;
		}
		/* Durable now: the commit owes this recipient nothing. */
		for (k = kept = 0; k < p->nwaiters; k++) {
			if (p->waiters[k].req == req &&
			    p->waiters[k].rcpt == rcpt)
				free(p->waiters[k].to);
			else
				p->waiters[kept++] = p->waiters[k];
		}
		p->nwaiters = kept;
	}
	return 0;
}

size_t
maildir_pending_dirs(void)
{
	return npending;
}

int
maildir_pending_dir(size_t i, size_t *nwaiters)
{
	if (i >= npending)
		return -1;
	*nwaiters = pending[i].nwaiters;
	return pending[i].fd;
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
	if (maildir_sync_new(m, newdir, delivered_to) < 0) {
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
