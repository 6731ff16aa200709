/*
 * pickup - takes local submissions from maildrop/ into incoming/
 * (DESIGN.md §3; man pickup(8); the design is in lib/submit.h).
 *
 * master runs one pickup process (master.cf: "pickup unix n - n 60 1
 * pickup") under event_server_main(), as mail_owner. sendmail, run by
 * any local user, leaves a complete queue file in maildrop/; pickup
 * finds it when it starts, on every master.cf wakeup, when inotify says
 * a file arrived, and when sendmail pokes public/pickup. For each file
 * it:
 *	- learns the submitter from the kernel: the owner of the file it
 *	  opened (fstat), refusing links, non-regular files and files that
 *	  are not the one it looked at;
 *	- checks authorized_submit_users, and local_sender_forge_users to
 *	  decide whether the sender written in the file is kept or replaced
 *	  by login@$myorigin;
 *	- keeps only the attributes sendmail may set (submit.h), qualifies
 *	  bare recipients with @$myorigin;
 *	- writes a new file into incoming/: a "Received: by" header, the
 *	  message, and the Date:, Message-ID: and From: headers it lacks,
 *	  as Postfix's cleanup does for local mail;
 *	- logs "ID: uid=N from=<sender>", commits, removes the maildrop
 *	  file and tells qmgr (qmgr_notify_new).
 * A crash between the commit and the removal delivers the message
 * twice, never zero times.
 *
 * Nothing about one file is fatal. A file pickup cannot read yet (a
 * table error, a full disk) stays for the next scan; a file that can
 * never become mail (does not parse, too big, no recipients, a user not
 * allowed to submit, a hard link) is removed with a warning naming the
 * uid: it came from a local user, not from the network, and keeping it
 * would only make pickup trip over it forever.
 */
#include "autoconf.h"

#include <sys/inotify.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "event.h"
#include "header.h"
#include "log.h"
#include "priv.h"
#include "qmgr_client.h"
#include "queue.h"
#include "server.h"
#include "strv.h"
#include "submit.h"

#define BATCH		100		/* files per turn of the event loop */
#define HEADER_MAX	(1024 * 1024)	/* header bytes looked at */
#define CHUNK		65536
#define CLIENT_MAX	64
#define CLIENT_MS	5000
#define REQUEST_MAX	1024
#define ADDR_MAX	1000		/* longest recipient accepted */

static struct {
	struct event_loop *loop;
	char	*queue_dir;
	char	*maildrop;
	char	*myorigin;
	char	*myhostname;
	char	*mail_name;
	size_t	 size_limit;
	int	 inotify_fd;
	unsigned long scan_timer;
} pk;

static void scan_soon(void);

/* ---- one maildrop file ---- */

/* What the maildrop file asked for that pickup is willing to keep. */
static int
attr_ok(const char *name, const char *value)
{
	if (strcmp(name, SUBMIT_ATTR_DSN_RET) == 0)
		return strcmp(value, "FULL") == 0 || strcmp(value, "HDRS") == 0;
	if (strcmp(name, SUBMIT_ATTR_BODY) == 0)
		return strcmp(value, "7BIT") == 0 ||
		    strcmp(value, "8BITMIME") == 0;
	if (strcmp(name, SUBMIT_ATTR_DSN_ENVID) == 0) {
		/* RFC 3461: printable ASCII, at most 100 characters. */
		if (strlen(value) > 100 || *value == '\0')
			return 0;
		for (const char *p = value; *p != '\0'; p++)
			if (*p < 0x21 || *p > 0x7e)
				return 0;
		return 1;
	}
	return 0;
}

/* A recipient a local user may name: not empty, no control bytes. */
static int
rcpt_ok(const char *addr)
{
	size_t n = strlen(addr);

	if (n == 0 || n > ADDR_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)addr; *p != '\0';
	    p++)
		if (*p < 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

static void
drop_file(const char *path, const char *id, unsigned long uid,
    const char *why)
{
	struct stat st;
	int r;

	/* maildrop/ is writable by all: a user may even make a folder. */
	if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
		r = rmdir(path);
	else
		r = unlink(path);
	if (r < 0 && errno != ENOENT)
		msg_warn("maildrop/%s: uid=%lu: %s; cannot remove it: %s", id,
		    uid, why, strerror(errno));
	else
		msg_warn("maildrop/%s: uid=%lu: %s; removed", id, uid, why);
}

/* Read up to max content bytes from the start into b. */
static int
read_head(const struct queue_msg *m, struct buf *b, size_t max)
{
	char chunk[CHUNK];
	size_t want = m->content_len < max ? m->content_len : max;
	ssize_t n;

	while (b->len < want) {
		n = queue_read_content(m, (off_t)b->len, chunk,
		    want - b->len < sizeof(chunk) ? want - b->len :
		    sizeof(chunk));
		if (n <= 0)
			return -1;
		(void)buf_append(b, chunk, (size_t)n);
	}
	return 0;
}

/* Headers pickup adds, and the message-id to log. */
struct additions {
	struct buf hdrs;	/* missing Date:, Message-ID:, From: */
	char	*message_id;	/* for the log; allocated */
};

static void
additions_make(struct additions *a, const char *head, size_t hdr_len,
    const struct queue_msg *m, const char *new_id, const char *sender,
    const char *login)
{
	const char *f, *full_name;
	size_t off = 0, flen;
	int has_from = 0, has_date = 0, has_msgid = 0;
	char date[64], stamp[32], *phrase, *from;
	struct tm tm;
	time_t t = m->arrival.tv_sec;

	buf_init(&a->hdrs, BUF_NOMAX);
	a->message_id = NULL;
	while (header_next(head, hdr_len, &off, &f, &flen)) {
		if (header_is(f, flen, "From"))
			has_from = 1;
		else if (header_is(f, flen, "Date"))
			has_date = 1;
		else if (header_is(f, flen, "Message-ID")) {
			has_msgid = 1;
			if (a->message_id == NULL)
				a->message_id = header_value(f, flen);
		}
	}
	if (!has_date) {
		header_date(t, date, sizeof(date));
		(void)buf_printf(&a->hdrs, "Date: %s\n", date);
	}
	if (!has_msgid) {
		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
			snprintf(stamp, sizeof(stamp), "%lld", (long long)t);
		a->message_id = xasprintf("<%s.%s@%s>", stamp, new_id,
		    pk.myhostname);
		(void)buf_printf(&a->hdrs, "Message-ID: %s\n", a->message_id);
	}
	if (!has_from) {
		from = *sender != '\0' ? xstrdup(sender) :
		    submit_qualify(login, pk.myorigin);
		full_name = queue_msg_attr(m, SUBMIT_ATTR_FULL_NAME);
		if (full_name != NULL && *full_name != '\0') {
			phrase = header_phrase(full_name);
			(void)buf_printf(&a->hdrs, "From: %s <%s>\n", phrase,
			    from);
			free(phrase);
		} else
			(void)buf_printf(&a->hdrs, "From: %s\n", from);
		free(from);
	}
}

/*
 * Write the content of the new file: Received:, the header section,
 * the added headers, the rest. 0, or -1 with *err.
 */
static int
write_content(struct queue_writer *w, const struct queue_msg *m,
    unsigned long uid, const char *login, const char *sender,
    char **message_id, char **err)
{
	struct buf head, top;
	struct additions add;
	char date[64], chunk[CHUNK];
	size_t hdr_end, body, off, nl;
	ssize_t n;
	int r = -1, add_ok = 1, need_blank = 0;

	buf_init(&head, BUF_NOMAX);
	buf_init(&top, BUF_NOMAX);
	if (read_head(m, &head, HEADER_MAX) < 0) {
		*err = xasprintf("read: %s", strerror(errno));
		goto out;
	}
	hdr_end = header_section_end(head.data, head.len, &body);
	if (hdr_end == head.len && head.len < m->content_len) {
		/* A header section longer than we look at: leave it be. */
		nl = hdr_end;
		while (nl > 0 && head.data[nl - 1] != '\n')
			nl--;
		hdr_end = body = nl;
		add_ok = 0;
	} else if (body == hdr_end && hdr_end < m->content_len)
		need_blank = 1;		/* the body came without its blank */

	header_date(time(NULL), date, sizeof(date));
	(void)buf_printf(&top, "Received: by %s (%s, from userid %lu)\n"
	    "\tid %s; %s\n", pk.myhostname, pk.mail_name, uid,
	    queue_writer_id(w), date);
	(void)buf_append(&top, head.data, hdr_end);
	if (hdr_end > 0 && head.data[hdr_end - 1] != '\n')
		(void)buf_putc(&top, '\n');	/* a last line without LF */
	if (add_ok) {
		additions_make(&add, head.data, hdr_end, m, queue_writer_id(w),
		    sender, login);
		(void)buf_append(&top, add.hdrs.data, add.hdrs.len);
		buf_free(&add.hdrs);
		*message_id = add.message_id;
	}
	if (need_blank)
		(void)buf_putc(&top, '\n');
	if (queue_write(w, top.data, top.len, err) < 0)
		goto out;
	/* The rest of what we read, then the rest of the file. */
	if (queue_write(w, head.data + hdr_end, head.len - hdr_end, err) < 0)
		goto out;
	for (off = head.len; off < m->content_len; off += (size_t)n) {
		n = queue_read_content(m, (off_t)off, chunk,
		    m->content_len - off < sizeof(chunk) ?
		    m->content_len - off : sizeof(chunk));
		if (n <= 0) {
			*err = xasprintf("read: %s",
			    n < 0 ? strerror(errno) : "file shrank");
			goto out;
		}
		if (queue_write(w, chunk, (size_t)n, err) < 0)
			goto out;
	}
	r = 0;
out:
	buf_free(&head);
	buf_free(&top);
	return r;
}

/* The submitter's login name: from the password database, else the
 * number, so that mail from a uid without an account still has a
 * sender. Allocated. */
static char *
login_of(uid_t uid)
{
	struct priv_user u;
	char *name;

	if (priv_user_lookup_uid(uid, &u) == 0) {
		name = xstrdup(u.name);
		priv_user_free(&u);
		return name;
	}
	return xasprintf("%lu", (unsigned long)uid);
}

/* Move one maildrop file into incoming/; 1 done or dropped, 0 left. */
static int
pickup_file(const char *id)
{
	struct queue_msg *m = NULL;
	struct queue_writer *w = NULL;
	struct stat lst, st;
	char *path, *err = NULL, *login = NULL, *sender = NULL;
	char *message_id = NULL, *new_id = NULL, *rcpt;
	unsigned long uid;
	int corrupt = 0, r, may_forge, done = 0;

	path = queue_path(pk.queue_dir, QUEUE_MAILDROP, id);
	if (lstat(path, &lst) < 0) {
		if (errno != ENOENT)
			msg_warn("maildrop/%s: %s", id, strerror(errno));
		goto out;
	}
	uid = (unsigned long)lst.st_uid;
	if (!S_ISREG(lst.st_mode)) {
		drop_file(path, id, uid, "not a regular file");
		done = 1;
		goto out;
	}
	if (queue_open(path, 0, &m, &corrupt, &err) < 0) {
		if (corrupt) {
			drop_file(path, id, uid, "not a queue file");
			done = 1;
		} else if (errno != ENOENT)
			msg_warn("maildrop/%s: uid=%lu: %s; left for later",
			    id, uid, err);
		goto out;
	}
	/* The file we read is the one we looked at, and it has one name:
	 * a hard link would make its owner someone else's. */
	if (fstat(m->fd, &st) < 0 || st.st_ino != lst.st_ino ||
	    st.st_dev != lst.st_dev)
		goto out;	/* replaced meanwhile: next scan */
	uid = (unsigned long)st.st_uid;
	if (st.st_nlink != 1) {
		drop_file(path, id, uid, "a file with more than one link");
		done = 1;
		goto out;
	}
	login = login_of(st.st_uid);
	if ((r = submit_user_listed("authorized_submit_users", login,
	    &err)) <= 0) {
		if (r < 0)
			msg_warn("maildrop/%s: authorized_submit_users: %s; "
			    "left for later", id, err);
		else {
			drop_file(path, id, uid, "user not allowed to submit "
			    "mail (authorized_submit_users)");
			done = 1;
		}
		goto out;
	}
	if ((may_forge = submit_user_listed("local_sender_forge_users", login,
	    &err)) < 0) {
		msg_warn("local_sender_forge_users: %s; the sender of "
		    "maildrop/%s is not trusted", err, id);
		free(err);
		err = NULL;
		may_forge = 0;
	}
	if (pk.size_limit > 0 && m->content_len > pk.size_limit) {
		drop_file(path, id, uid, "message larger than "
		    "message_size_limit");
		done = 1;
		goto out;
	}
	if (m->nrcpts == 0) {
		drop_file(path, id, uid, "no recipients");
		done = 1;
		goto out;
	}
	sender = submit_sender(m->sender, login, may_forge, pk.myorigin);

	if ((w = queue_create(pk.queue_dir, QUEUE_INCOMING, &err)) == NULL) {
		msg_warn("maildrop/%s: %s; left for later", id, err);
		goto out;
	}
	new_id = xstrdup(queue_writer_id(w));
	queue_set_sender(w, sender);
	for (size_t i = 0; i < m->nattrs; i++)
		if (attr_ok(m->attrs[i].name, m->attrs[i].value))
			queue_set_attr(w, m->attrs[i].name, m->attrs[i].value);
	{
		char num[32];

		snprintf(num, sizeof(num), "%lu", uid);
		queue_set_attr(w, SUBMIT_ATTR_UID, num);
		queue_set_attr(w, SUBMIT_ATTR_USER, login);
	}
	r = 0;
	for (size_t i = 0; i < m->nrcpts; i++) {
		if (!rcpt_ok(m->rcpts[i].addr))
			continue;
		rcpt = submit_qualify(m->rcpts[i].addr, pk.myorigin);
		queue_add_rcpt(w, rcpt, m->rcpts[i].orcpt != NULL &&
		    rcpt_ok(m->rcpts[i].orcpt) ? m->rcpts[i].orcpt : NULL,
		    m->rcpts[i].notify);
		free(rcpt);
		r++;
	}
	if (r == 0) {
		queue_abort(w);
		w = NULL;
		drop_file(path, id, uid, "no usable recipients");
		done = 1;
		goto out;
	}
	if (write_content(w, m, uid, login, sender, &message_id, &err) < 0) {
		queue_abort(w);
		w = NULL;
		msg_warn("maildrop/%s: %s; left for later", id, err);
		goto out;
	}
	r = queue_commit(w, &err);
	w = NULL;
	if (r < 0) {
		msg_warn("maildrop/%s: %s; left for later", id, err);
		goto out;
	}
	msg_info("%s: uid=%lu from=<%s>", new_id, uid, sender);
	if (!may_forge && strcmp(m->sender, login) != 0 &&
	    strcmp(m->sender, sender) != 0)
		msg_info("%s: sender <%s> given by uid=%lu replaced "
		    "(local_sender_forge_users)", new_id, m->sender, uid);
	if (message_id != NULL)
		msg_info("%s: message-id=%s", new_id, message_id);
	if (unlink(path) < 0 && errno != ENOENT)
		msg_warn("maildrop/%s: remove after pickup: %s (it may be "
		    "delivered twice)", id, strerror(errno));
	done = 1;
	(void)qmgr_notify_new(pk.queue_dir, new_id);

out:
	if (w != NULL)
		queue_abort(w);
	if (m != NULL)
		queue_close(m);
	free(err);
	free(path);
	free(login);
	free(sender);
	free(message_id);
	free(new_id);
	return done;
}

/* ---- scanning ---- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
scan(void *ctx)
{
	struct dirent *de;
	DIR *d;
	char **ids;
	size_t n, i, handled = 0;

	(void)ctx;
	pk.scan_timer = 0;
	if ((d = opendir(pk.maildrop)) == NULL) {
		msg_warn("open %s: %s", pk.maildrop, strerror(errno));
		return;
	}
	ids = xcalloc(1, sizeof(char *));
	while ((de = readdir(d)) != NULL)
		if (queue_id_valid(de->d_name))
			strv_add(&ids, de->d_name);
	closedir(d);
	n = strv_len(ids);
	qsort(ids, n, sizeof(char *), cmp_str);
	for (i = 0; i < n && handled < BATCH; i++)
		handled += (size_t)pickup_file(ids[i]);
	strv_free(ids);
	/* More waiting: another turn, after whatever else is ready. */
	if (handled == BATCH)
		scan_soon();
}

static void
scan_soon(void)
{
	if (pk.scan_timer == 0)
		pk.scan_timer = event_timer_add(pk.loop, 0, scan, NULL);
}

static void
inotify_readable(int fd, int events, void *ctx)
{
	char ev[8192] __attribute__((aligned(__alignof__(struct
	    inotify_event))));
	const struct inotify_event *ie;
	ssize_t n;
	int want = 0;

	(void)events;
	(void)ctx;
	while ((n = read(fd, ev, sizeof(ev))) > 0) {
		for (char *p = ev; p < ev + n;
		    p += sizeof(*ie) + ie->len) {
			ie = (const struct inotify_event *)(void *)p;
			if ((ie->mask & IN_Q_OVERFLOW) ||
			    (ie->len > 0 && queue_id_valid(ie->name)))
				want = 1;
		}
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		/* Lost the watch: fall back on wakeups and pokes. */
		msg_warn("inotify on %s: %s", pk.maildrop,
		    n == 0 ? "end of file" : strerror(errno));
		event_fd_del(pk.loop, fd);
		close(fd);
		pk.inotify_fd = -1;
	}
	if (want)
		scan_soon();
}

static void
watch_maildrop(void)
{
	pk.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (pk.inotify_fd < 0 || inotify_add_watch(pk.inotify_fd,
	    pk.maildrop, IN_MOVED_TO | IN_CLOSE_WRITE) < 0 ||
	    event_fd_add(pk.loop, pk.inotify_fd, EVENT_READ, inotify_readable,
	    NULL) < 0) {
		msg_warn("cannot watch %s (%s): new mail waits for the next "
		    "wakeup or a poke from sendmail", pk.maildrop,
		    strerror(errno));
		if (pk.inotify_fd >= 0)
			close(pk.inotify_fd);
		pk.inotify_fd = -1;
	}
}

/* Warn once at start when maildrop/ cannot work as submit.h says. */
static void
check_maildrop(void)
{
	struct stat st;

	if (stat(pk.maildrop, &st) < 0) {
		msg_warn("%s: %s", pk.maildrop, strerror(errno));
		return;
	}
	if ((st.st_mode & 07777) != 03733)
		msg_warn("%s has mode %04o, not 3733: local users %s",
		    pk.maildrop, (unsigned)(st.st_mode & 07777),
		    (st.st_mode & 0003) != 0003 ? "cannot submit mail" :
		    "may submit mail that pickup cannot read or that others "
		    "can remove");
}

/* ---- the poke socket ---- */

struct client {
	int	 fd;
	unsigned long timer;
	size_t	 got;
	char	 last;		/* last byte read, to see "\n\n" */
};

static size_t nclients;

static void
client_close(struct client *c)
{
	static const char reply[] = "status=0\n\n";

	/* Best effort: the caller does not need the answer. */
	(void)!write(c->fd, reply, sizeof(reply) - 1);
	if (c->timer != 0)
		event_timer_cancel(pk.loop, c->timer);
	event_fd_del(pk.loop, c->fd);
	close(c->fd);
	free(c);
	nclients--;
	scan_soon();
}

static void
client_timeout(void *ctx)
{
	struct client *c = ctx;

	c->timer = 0;
	client_close(c);
}

static void
client_readable(int fd, int events, void *ctx)
{
	struct client *c = ctx;
	char chunk[256];
	ssize_t n;

	n = read(fd, chunk, sizeof(chunk));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (chunk[i] == '\n' && c->last == '\n') {
				client_close(c);	/* a whole request */
				return;
			}
			c->last = chunk[i];
		}
		c->got += (size_t)n;
		if (c->got < REQUEST_MAX)
			return;
	}
	client_close(c);
}

static void
pickup_accept(int fd, struct event_loop *loop)
{
	struct client *c;

	if (nclients >= CLIENT_MAX) {
		close(fd);
		scan_soon();
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->last = '\n';		/* an empty list is "\n" alone */
	if (event_fd_add(loop, fd, EVENT_READ, client_readable, c) < 0) {
		close(fd);
		free(c);
		scan_soon();
		return;
	}
	nclients++;
	c->timer = event_timer_add(loop, CLIENT_MS, client_timeout, c);
}

static void
pickup_wakeup(struct event_loop *loop)
{
	(void)loop;
	scan_soon();
}

static void
pickup_start(struct event_loop *loop)
{
	pk.loop = loop;
	pk.queue_dir = xstrdup(config_str("queue_directory"));
	pk.maildrop = xasprintf("%s/%s", pk.queue_dir,
	    queue_folder_name(QUEUE_MAILDROP));
	pk.myorigin = xstrdup(config_str("myorigin"));
	pk.myhostname = xstrdup(config_str("myhostname"));
	pk.mail_name = xstrdup(config_str("mail_name"));
	pk.size_limit = config_size("message_size_limit");
	pk.inotify_fd = -1;
	check_maildrop();
	watch_maildrop();
	scan_soon();
}

int
main(int argc, char **argv)
{
	static const struct server_opts opts = {
		.program = "pickup",
		.accept = pickup_accept,
		.wakeup = pickup_wakeup,
		.start = pickup_start,
	};

	return event_server_main(argc, argv, &opts);
}
