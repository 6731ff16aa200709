/*
 * queue - queue files and queue folders. See queue.h for the format.
 *
 * Writers: smtpd, pickup and qmgr (bounces) build a file with
 * queue_create() .. queue_commit(). The envelope is kept in memory until
 * the first content byte (or the commit), then written in one go; the
 * content goes through a 64 KiB staging buffer so that a message written
 * line by line costs one write(2) per 64 KiB, not one per line. The
 * content length is not known until the end, so the M record is written
 * as twenty zeros and rewritten in place (pwrite) at commit, before the
 * fsync: a file only gets its queue ID name once it is whole.
 *
 * A writer holds flock(LOCK_EX) on its ".tmp-" file for as long as it
 * writes. queue_cleanup() removes only temporary files nobody holds
 * locked, so a sendmail writing into maildrop/ while master starts up
 * does not lose its message; a crashed writer's lock died with it.
 *
 * Readers: qmgr, the delivery agents and the tools use queue_open(). It
 * reads the envelope line by line, checks that the content length fits
 * in the file and that "E" follows it, then reads the appended notes. A
 * note line without its LF at the very end is what a crash during
 * queue_note() leaves; it is ignored, and the next note overwrites it.
 * Anything else that does not parse makes the file "corrupt".
 *
 * Nothing here is fatal except programming errors (msg_panic): errors
 * come back as -1 with an allocated reason in *err.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "file.h"
#include "log.h"
#include "queue.h"

#define QUEUE_MAGIC		"TERN 1"
#define QUEUE_TMP_PREFIX	".tmp-"
#define QUEUE_STAGE		65536	/* write staging buffer */
#define QUEUE_READ_CHUNK	16384		/* envelope reader */
#define QUEUE_LINE_MAX		(4 * 1024 * 1024) /* longest record */
#define QUEUE_LEN_DIGITS	20
#define QUEUE_ID_TIME_DIGITS	13
#define QUEUE_ID_MAX		(QUEUE_ID_TIME_DIGITS + 16)

/*
 * Folder modes. The queue folders hold mail and belong to mail_owner
 * alone: 0700. maildrop/ is 3733 (sticky, set-gid, rwx-wx-wx): any local
 * user's sendmail may drop a file there without a set-uid or set-gid
 * program, nobody but mail_owner may list it or remove another's file,
 * and each new file gets mail_owner's group, so that pickup can read it
 * (submit.h tells the whole design). public/ is 0711: any local user
 * may reach the sockets in it (they are 0666, master_listen.c) but not
 * list it, as every user's mailq asks showq, sendmail pokes pickup and
 * ternqueue -f asks qmgr there; each of those services decides itself
 * what a caller may do (SO_PEERCRED). private/ is 0700: daemon to
 * daemon only.
 */
static const struct {
	const char *name;
	mode_t	 mode;
} queue_folders[] = {
	[QUEUE_INCOMING] = { "incoming", 0700 },
	[QUEUE_ACTIVE] = { "active", 0700 },
	[QUEUE_DEFERRED] = { "deferred", 0700 },
	[QUEUE_HOLD] = { "hold", 0700 },
	[QUEUE_CORRUPT] = { "corrupt", 0700 },
	[QUEUE_MAILDROP] = { "maildrop", 03733 },
};

static const struct {
	const char *name;
	mode_t	 mode;
} queue_socket_folders[] = {
	{ "private", 0700 },
	{ "public", 0711 },
};

static const struct {
	const char *word;
	int	 bit;
} notify_words[] = {
	{ "NEVER", NOTIFY_NEVER },
	{ "SUCCESS", NOTIFY_SUCCESS },
	{ "FAILURE", NOTIFY_FAILURE },
	{ "DELAY", NOTIFY_DELAY },
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* Set *err (when err is not NULL) to an allocated message. */
static void __attribute__((format(printf, 2, 3)))
set_err(char **err, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	if (err == NULL)
		return;
	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	*err = buf_steal(&b);
}

/* ---- names and paths ---- */

const char *
queue_folder_name(enum queue_folder f)
{
	if ((int)f < 0 || f >= QUEUE_NFOLDERS)
		msg_panic("queue_folder_name: bad folder %d", (int)f);
	return queue_folders[f].name;
}

int
queue_folder_lookup(const char *name, enum queue_folder *out)
{
	for (int f = 0; f < QUEUE_NFOLDERS; f++)
		if (strcmp(name, queue_folders[f].name) == 0) {
			*out = (enum queue_folder)f;
			return 0;
		}
	return -1;
}

char *
queue_path(const char *queue_dir, enum queue_folder f, const char *id)
{
	return xasprintf("%s/%s/%s", queue_dir, queue_folder_name(f), id);
}

int
queue_id_valid(const char *id)
{
	size_t n;

	n = strlen(id);
	if (n <= QUEUE_ID_TIME_DIGITS || n > QUEUE_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'A' && id[i] <= 'F')))
			return 0;
	return 1;
}

const char *
queue_layout(size_t i, mode_t *mode)
{
	if (i < NELEM(queue_folders)) {
		*mode = queue_folders[i].mode;
		return queue_folders[i].name;
	}
	i -= NELEM(queue_folders);
	if (i < NELEM(queue_socket_folders)) {
		*mode = queue_socket_folders[i].mode;
		return queue_socket_folders[i].name;
	}
	return NULL;
}

/* Create dir with mode when it is missing; an existing one is kept. */
static int
make_folder(const char *dir, mode_t mode, char **err)
{
	struct stat st;

	if (mkdir(dir, mode) == 0) {
		/* mkdir(2) honours the umask; the mode must be exact. */
		if (chmod(dir, mode) < 0) {
			set_err(err, "chmod %s: %s", dir, strerror(errno));
			return -1;
		}
		return 0;
	}
	if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (errno == EEXIST)
		errno = ENOTDIR;
	set_err(err, "mkdir %s: %s", dir, strerror(errno));
	return -1;
}

int
queue_make_folders(const char *queue_dir, char **err)
{
	char *dir;
	int r = 0;

	if (file_mkdirs(queue_dir, 0755) < 0) {
		set_err(err, "mkdir %s: %s", queue_dir, strerror(errno));
		return -1;
	}
	for (size_t i = 0; r == 0 && i < NELEM(queue_folders); i++) {
		dir = xasprintf("%s/%s", queue_dir, queue_folders[i].name);
		r = make_folder(dir, queue_folders[i].mode, err);
		free(dir);
	}
	for (size_t i = 0; r == 0 && i < NELEM(queue_socket_folders); i++) {
		dir = xasprintf("%s/%s", queue_dir,
		    queue_socket_folders[i].name);
		r = make_folder(dir, queue_socket_folders[i].mode, err);
		free(dir);
	}
	return r;
}

/* Remove the unlocked ".tmp-" files of one folder; returns how many. */
static int
cleanup_folder(const char *queue_dir, enum queue_folder f)
{
	struct dirent *de;
	DIR *d;
	char *path;
	int fd, n = 0;

	path = xasprintf("%s/%s", queue_dir, queue_folder_name(f));
	d = opendir(path);
	free(path);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, QUEUE_TMP_PREFIX,
		    strlen(QUEUE_TMP_PREFIX)) != 0)
			continue;
		path = queue_path(queue_dir, f, de->d_name);
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
		    O_NOCTTY);
		/* A live writer holds the lock: its file is not a leftover. */
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			free(path);
			continue;
		}
		if (unlink(path) == 0) {
			msg_info("removed temporary queue file %s", path);
			n++;
		} else if (errno != ENOENT)
			msg_warn("remove %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(path);
	}
	closedir(d);
	return n;
}

int
queue_cleanup(const char *queue_dir)
{
	return cleanup_folder(queue_dir, QUEUE_INCOMING) +
	    cleanup_folder(queue_dir, QUEUE_MAILDROP);
}

int
queue_find(const char *queue_dir, const char *id, enum queue_folder *folder)
{
	struct stat st;
	char *path;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	for (int f = 0; f < QUEUE_NFOLDERS; f++) {
		path = queue_path(queue_dir, (enum queue_folder)f, id);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			free(path);
			*folder = (enum queue_folder)f;
			return 0;
		}
		free(path);
	}
	errno = ENOENT;
	return -1;
}

/* The folders whose files qmgr takes up when it starts. */
static int
queue_scanned_at_start(enum queue_folder f)
{
	return f == QUEUE_INCOMING || f == QUEUE_ACTIVE ||
	    f == QUEUE_DEFERRED;
}

int
queue_move(const char *queue_dir, const char *id, enum queue_folder from,
    enum queue_folder to, char **err)
{
	char *src, *dst, *dir;
	int r = 0;

	if (!queue_id_valid(id)) {
		set_err(err, "bad queue ID \"%s\"", id);
		errno = EINVAL;
		return -1;
	}
	src = queue_path(queue_dir, from, id);
	dst = queue_path(queue_dir, to, id);
	if (rename(src, dst) < 0) {
		set_err(err, "rename %s to %s: %s", src, dst, strerror(errno));
		r = -1;
	} else if (queue_scanned_at_start(from) &&
	    queue_scanned_at_start(to)) {
		/*
		 * No fsync: a rename is atomic across a crash, so the file is
		 * under one name or the other, and qmgr takes up incoming/,
		 * active/ and deferred/ alike when it starts. These moves are
		 * qmgr's, one or two per message, in its single event loop:
		 * two folder fsyncs each would cap the whole queue at the
		 * disk's fsync rate.
		 */
	} else {
		/* The new name first: once it is durable the file is safe. */
		dir = xasprintf("%s/%s", queue_dir, queue_folder_name(to));
		if (file_fsync_dir(dir) < 0) {
			set_err(err, "fsync %s: %s", dir, strerror(errno));
			r = -1;
		}
		free(dir);
		dir = xasprintf("%s/%s", queue_dir, queue_folder_name(from));
		if (r == 0 && file_fsync_dir(dir) < 0) {
			set_err(err, "fsync %s: %s", dir, strerror(errno));
			r = -1;
		}
		free(dir);
	}
	free(src);
	free(dst);
	return r;
}

/* ---- xtext (RFC 3461 section 4) ---- */

static int
xtext_plain(unsigned char c)
{
	return c >= '!' && c <= '~' && c != '+' && c != '=';
}

static void
xtext_append(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (xtext_plain(*p))
			(void)buf_putc(b, *p);
		else {
			(void)buf_putc(b, '+');
			(void)buf_putc(b, hex[*p >> 4]);
			(void)buf_putc(b, hex[*p & 0xf]);
		}
	}
}

char *
xtext_encode(const char *s)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	xtext_append(&b, s);
	return buf_steal(&b);
}

static int
hexval(char c)
{
	/* RFC 3461 hexchar: upper-case only. */
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

char *
xtext_decode(const char *s)
{
	char *out, *q;
	int hi, lo;

	out = q = xmalloc(strlen(s) + 1);
	while (*s != '\0') {
		if (*s == '+') {
			hi = hexval(s[1]);
			lo = hi < 0 ? -1 : hexval(s[2]);
			if (lo < 0 || (hi == 0 && lo == 0))
				goto bad;
			*q++ = (char)(hi << 4 | lo);
			s += 3;
		} else if (xtext_plain((unsigned char)*s))
			*q++ = *s++;
		else
			goto bad;
	}
	*q = '\0';
	return out;

bad:
	free(out);
	return NULL;
}

/* ---- writing ---- */

struct wrcpt {
	char	*addr;
	char	*orcpt;
	int	 notify;
};

struct queue_writer {
	char		*queue_dir;
	enum queue_folder folder;
	char		*tmp_path;
	char		 id[QUEUE_ID_MAX + 1];
	int		 fd;
	struct timespec	 arrival;
	char		*sender;
	struct queue_attr *attrs;
	size_t		 nattrs;
	struct wrcpt	*rcpts;
	size_t		 nrcpts;
	int		 envelope_done;
	off_t		 len_off;	/* where M's digits are */
	size_t		 content_len;
	struct buf	 stage;		/* not yet write(2)n */
	int		 failed;	/* errno of a failed write, or 0 */
};

/*
 * Arrival time in microseconds, strictly increasing within a process so
 * that files one process creates in sequence sort in that order even
 * when two arrive within the same microsecond.
 */
static unsigned long long
arrival_usec(void)
{
	static unsigned long long last;
	struct timeval tv;
	unsigned long long now;

	gettimeofday(&tv, NULL);
	now = (unsigned long long)tv.tv_sec * 1000000ULL +
	    (unsigned long long)tv.tv_usec;
	if (now <= last)
		now = last + 1;
	last = now;
	return now;
}

void	(*queue_create_hook)(const char *queue_dir);

struct queue_writer *
queue_create(const char *queue_dir, enum queue_folder folder, char **err)
{
	static unsigned long counter;
	struct queue_writer *w;
	struct stat st;
	unsigned long long usec;
	int tries;

	if (folder != QUEUE_INCOMING && folder != QUEUE_MAILDROP)
		msg_panic("queue_create: files are created in incoming/ or "
		    "maildrop/, not %s/", queue_folder_name(folder));
	w = xcalloc(1, sizeof(*w));
	w->queue_dir = xstrdup(queue_dir);
	w->folder = folder;
	w->fd = -1;
	w->sender = xstrdup("");
	buf_init(&w->stage, BUF_NOMAX);
	usec = arrival_usec();
	for (tries = 0; tries < 100; tries++) {
		free(w->tmp_path);
		w->tmp_path = xasprintf("%s/%s/" QUEUE_TMP_PREFIX
		    "%ld.%llu.%lu", queue_dir, queue_folder_name(folder),
		    (long)getpid(), usec, ++counter);
		/* maildrop/: the group (mail_owner's) reads, see submit.h */
		if ((w->fd = file_create(w->tmp_path,
		    folder == QUEUE_MAILDROP ? 0640 : 0600)) < 0) {
			if (errno == EEXIST)
				continue;
			set_err(err, "create %s: %s", w->tmp_path,
			    strerror(errno));
			goto fail;
		}
		if (queue_create_hook != NULL)
			queue_create_hook(queue_dir);
		if (flock(w->fd, LOCK_EX) < 0 || fstat(w->fd, &st) < 0) {
			set_err(err, "lock %s: %s", w->tmp_path,
			    strerror(errno));
			goto fail;
		}
		/*
		 * Between the create and the lock the file was an unlocked
		 * ".tmp-" file: a queue_cleanup() running then (qmgr
		 * starting) may have removed it. Then it is gone from the
		 * folder: another name.
		 */
		if (st.st_nlink > 0)
			break;
		close(w->fd);
		w->fd = -1;
	}
	if (w->fd < 0) {
		set_err(err, "create %s: %s", w->tmp_path, strerror(EEXIST));
		goto fail;
	}
	snprintf(w->id, sizeof(w->id), "%013llX%llX", usec,
	    (unsigned long long)st.st_ino);
	w->arrival.tv_sec = (time_t)(usec / 1000000ULL);
	w->arrival.tv_nsec = (long)(usec % 1000000ULL) * 1000L;
	return w;

fail:
	queue_abort(w);
	return NULL;
}

const char *
queue_writer_id(const struct queue_writer *w)
{
	return w->id;
}

struct timespec
queue_writer_arrival(const struct queue_writer *w)
{
	return w->arrival;
}

static void
writer_check_open(const struct queue_writer *w, const char *what)
{
	if (w->envelope_done)
		msg_panic("%s: %s after the first content byte", w->id, what);
}

void
queue_set_sender(struct queue_writer *w, const char *sender)
{
	writer_check_open(w, "queue_set_sender");
	free(w->sender);
	w->sender = xstrdup(sender != NULL ? sender : "");
}

void
queue_set_attr(struct queue_writer *w, const char *name, const char *value)
{
	writer_check_open(w, "queue_set_attr");
	if (name == NULL || *name == '\0')
		msg_panic("%s: queue_set_attr without a name", w->id);
	w->attrs = xreallocarray(w->attrs, w->nattrs + 1, sizeof(*w->attrs));
	w->attrs[w->nattrs].name = xstrdup(name);
	w->attrs[w->nattrs].value = xstrdup(value != NULL ? value : "");
	w->nattrs++;
}

void
queue_add_rcpt(struct queue_writer *w, const char *addr, const char *orcpt,
    int notify)
{
	struct wrcpt *r;

	writer_check_open(w, "queue_add_rcpt");
	if (addr == NULL)
		msg_panic("%s: queue_add_rcpt without an address", w->id);
	w->rcpts = xreallocarray(w->rcpts, w->nrcpts + 1, sizeof(*w->rcpts));
	r = &w->rcpts[w->nrcpts++];
	r->addr = xstrdup(addr);
	r->orcpt = orcpt != NULL && *orcpt != '\0' ? xstrdup(orcpt) : NULL;
	r->notify = notify & (NOTIFY_NEVER | NOTIFY_SUCCESS | NOTIFY_FAILURE |
	    NOTIFY_DELAY);
}

/* Write out the staging buffer. 0, or -1 with w->failed set. */
static int
writer_flush(struct queue_writer *w)
{
	if (w->failed)
		return -1;
	if (w->stage.len > 0 &&
	    file_write_all(w->fd, w->stage.data, w->stage.len) < 0) {
		w->failed = errno;
		return -1;
	}
	buf_reset(&w->stage);
	return 0;
}

/* "-", or the NOTIFY words joined by commas. */
static void
notify_append(struct buf *b, int notify)
{
	int first = 1;

	if (notify == 0) {
		(void)buf_putc(b, '-');
		return;
	}
	for (size_t i = 0; i < NELEM(notify_words); i++)
		if (notify & notify_words[i].bit) {
			if (!first)
				(void)buf_putc(b, ',');
			(void)buf_puts(b, notify_words[i].word);
			first = 0;
		}
}

/* Stage the envelope records up to and including the M placeholder. */
static void
writer_envelope(struct queue_writer *w)
{
	struct buf *b = &w->stage;
	long usec;

	usec = w->arrival.tv_nsec / 1000L;
	(void)buf_printf(b, "%s\nT %lld.%06ld\nS ", QUEUE_MAGIC,
	    (long long)w->arrival.tv_sec, usec);
	xtext_append(b, w->sender);
	(void)buf_putc(b, '\n');
	for (size_t i = 0; i < w->nattrs; i++) {
		(void)buf_puts(b, "A ");
		xtext_append(b, w->attrs[i].name);
		(void)buf_putc(b, '=');
		xtext_append(b, w->attrs[i].value);
		(void)buf_putc(b, '\n');
	}
	for (size_t i = 0; i < w->nrcpts; i++) {
		(void)buf_printf(b, "R %c ", RCPT_TODO);
		notify_append(b, w->rcpts[i].notify);
		(void)buf_putc(b, ' ');
		if (w->rcpts[i].orcpt == NULL)
			(void)buf_putc(b, '-');
		else if (strcmp(w->rcpts[i].orcpt, "-") == 0)
			(void)buf_puts(b, "+2D");	/* not "not given" */
		else
			xtext_append(b, w->rcpts[i].orcpt);
		(void)buf_putc(b, ' ');
		xtext_append(b, w->rcpts[i].addr);
		(void)buf_putc(b, '\n');
	}
	w->len_off = (off_t)b->len + 2;
	(void)buf_printf(b, "M %0*d\n", QUEUE_LEN_DIGITS, 0);
	w->envelope_done = 1;
}

int
queue_write(struct queue_writer *w, const void *p, size_t n, char **err)
{
	if (!w->envelope_done) {
		if (w->nrcpts == 0)
			msg_panic("%s: content before any recipient", w->id);
		writer_envelope(w);
	}
	if (w->failed == 0 && w->stage.len + n > QUEUE_STAGE &&
	    writer_flush(w) == 0 && n >= QUEUE_STAGE) {
		/* Big pieces go straight to the file, not through stage. */
		if (file_write_all(w->fd, p, n) < 0)
			w->failed = errno;
	} else if (w->failed == 0)
		(void)buf_append(&w->stage, p, n);
	if (w->failed) {
		set_err(err, "write %s: %s", w->tmp_path, strerror(w->failed));
		return -1;
	}
	w->content_len += n;
	return 0;
}

size_t
queue_content_size(const struct queue_writer *w)
{
	return w->content_len;
}

static void
writer_free(struct queue_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	for (size_t i = 0; i < w->nattrs; i++) {
		free(w->attrs[i].name);
		free(w->attrs[i].value);
	}
	for (size_t i = 0; i < w->nrcpts; i++) {
		free(w->rcpts[i].addr);
		free(w->rcpts[i].orcpt);
	}
	free(w->attrs);
	free(w->rcpts);
	free(w->sender);
	free(w->tmp_path);
	free(w->queue_dir);
	buf_free(&w->stage);
	free(w);
}

/*
 * maildrop/ is write-only for the users whose sendmail writes there
 * (submit.h): they cannot open the folder to fsync it. syncfs(2) through
 * the file itself makes the file system, the new name included, durable.
 */
static int
sync_by_file(const char *path)
{
	int fd, r, saved;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	r = syncfs(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

int
queue_commit(struct queue_writer *w, char **err)
{
	char digits[QUEUE_LEN_DIGITS + 1];
	char *final = NULL, *dir = NULL;
	const char *step;
	ssize_t n;

	if (!w->envelope_done) {
		if (w->nrcpts == 0)
			msg_panic("%s: commit without any recipient", w->id);
		writer_envelope(w);
	}
	(void)buf_puts(&w->stage, "E\n");
	step = "write";
	if (writer_flush(w) < 0) {
		errno = w->failed;
		goto fail;
	}
	snprintf(digits, sizeof(digits), "%0*zu", QUEUE_LEN_DIGITS,
	    w->content_len);
	n = pwrite(w->fd, digits, QUEUE_LEN_DIGITS, w->len_off);
	if (n != QUEUE_LEN_DIGITS) {
		if (n >= 0)
			errno = EIO;
		goto fail;
	}
	step = "fsync";
	if (fsync(w->fd) < 0)
		goto fail;
	/*
	 * Rename while the file is still open, and so still locked:
	 * queue_cleanup() removes only unlocked ".tmp-" files, and closing
	 * first would let a starting qmgr remove this one under us.
	 */
	final = queue_path(w->queue_dir, w->folder, w->id);
	step = "rename";
	if (rename(w->tmp_path, final) < 0)
		goto fail;
	step = "close";
	if (close(w->fd) < 0) {
		w->fd = -1;
		unlink(final);
		goto fail;
	}
	w->fd = -1;
	dir = xasprintf("%s/%s", w->queue_dir, queue_folder_name(w->folder));
	if (file_fsync_dir(dir) < 0 && !(errno == EACCES &&
	    w->folder == QUEUE_MAILDROP && sync_by_file(final) == 0)) {
		/* The name may not be durable: the caller must not say 250. */
		set_err(err, "fsync %s: %s", dir, strerror(errno));
		unlink(final);
		goto out;
	}
	free(dir);
	free(final);
	/* The file is in place; do not let queue_abort-like cleanup run. */
	free(w->tmp_path);
	w->tmp_path = NULL;
	writer_free(w);
	return 0;

fail:
	set_err(err, "%s %s: %s", step, w->tmp_path, strerror(errno));
out:
	if (w->tmp_path != NULL)
		unlink(w->tmp_path);
	free(dir);
	free(final);
	writer_free(w);
	return -1;
}

void
queue_abort(struct queue_writer *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0 && w->tmp_path != NULL)
		(void)unlink(w->tmp_path);
	writer_free(w);
}

/* ---- reading ---- */

/* queue_msg with what only this module needs. */
struct queue_msg_priv {
	struct queue_msg pub;
	off_t	 append_off;	/* where the next note goes */
};

/* Line reader over pread(2); keeps track of each line's file offset. */
struct reader {
	int	 fd;
	off_t	 pos;		/* file offset of data[0] */
	char	*data;
	size_t	 len;		/* bytes in data */
	size_t	 start;		/* first unread byte in data */
	int	 eof;
};

enum {
	RD_LINE = 1,		/* a line (LF stripped) */
	RD_EOF = 0,		/* nothing more */
	RD_PARTIAL = -1,	/* bytes without LF before EOF */
	RD_TOOLONG = -2,
	RD_ERROR = -3,		/* errno set */
};

static void
reader_seek(struct reader *rd, off_t off)
{
	rd->pos = off;
	rd->len = rd->start = 0;
	rd->eof = 0;
}

/*
 * Next line into line (without its LF), its offset into *off. RD_LINE,
 * RD_EOF, RD_PARTIAL (what there is, in line), RD_TOOLONG or RD_ERROR.
 */
static int
reader_line(struct reader *rd, struct buf *line, off_t *off)
{
	const char *lf;
	size_t room;
	ssize_t n;

	buf_reset(line);
	for (;;) {
		lf = NULL;
		if (rd->len > rd->start)
			lf = memchr(rd->data + rd->start, '\n',
			    rd->len - rd->start);
		if (lf != NULL) {
			*off = rd->pos + (off_t)rd->start;
			n = lf - (rd->data + rd->start);
			if ((size_t)n > QUEUE_LINE_MAX)
				return RD_TOOLONG;
			(void)buf_append(line, rd->data + rd->start, (size_t)n);
			rd->start += (size_t)n + 1;
			return RD_LINE;
		}
		if (rd->eof) {
			*off = rd->pos + (off_t)rd->start;
			if (rd->start == rd->len)
				return RD_EOF;
			(void)buf_append(line, rd->data + rd->start,
			    rd->len - rd->start);
			rd->start = rd->len;
			return RD_PARTIAL;
		}
		if (rd->len - rd->start > QUEUE_LINE_MAX)
			return RD_TOOLONG;
		/* Keep the unread tail, then read more behind it. */
		if (rd->start > 0) {
			memmove(rd->data, rd->data + rd->start,
			    rd->len - rd->start);
			rd->pos += (off_t)rd->start;
			rd->len -= rd->start;
			rd->start = 0;
		}
		room = QUEUE_READ_CHUNK;
		rd->data = xreallocarray(rd->data, rd->len + room, 1);
		n = pread(rd->fd, rd->data + rd->len, room,
		    rd->pos + (off_t)rd->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return RD_ERROR;
		}
		if (n == 0)
			rd->eof = 1;
		rd->len += (size_t)n;
	}
}

/* Split s in place at single spaces into at most max fields. */
static size_t
split_fields(char *s, char **f, size_t max)
{
	size_t n = 0;

	while (n < max) {
		f[n++] = s;
		if (n == max || (s = strchr(s, ' ')) == NULL)
			break;
		*s++ = '\0';
	}
	return n;
}

static int
parse_notify(const char *s, int *out)
{
	const char *end;
	size_t len, i;
	int bits = 0;

	if (strcmp(s, "-") == 0) {
		*out = 0;
		return 0;
	}
	for (;;) {
		end = strchr(s, ',');
		len = end != NULL ? (size_t)(end - s) : strlen(s);
		for (i = 0; i < NELEM(notify_words); i++)
			if (strlen(notify_words[i].word) == len &&
			    strncmp(s, notify_words[i].word, len) == 0)
				break;
		if (i == NELEM(notify_words))
			return -1;
		bits |= notify_words[i].bit;
		if (end == NULL)
			break;
		s = end + 1;
	}
	*out = bits;
	return 0;
}

/* Parse "<sec>.<usec>" with exactly six digits of microseconds. */
static int
parse_arrival(const char *s, struct timespec *ts)
{
	long long sec = 0;
	long usec = 0;
	int i;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (sec > (INT64_MAX - 9) / 10)
			return -1;
		sec = sec * 10 + (*s - '0');
	}
	if (*s++ != '.')
		return -1;
	for (i = 0; i < 6; i++, s++) {
		if (*s < '0' || *s > '9')
			return -1;
		usec = usec * 10 + (*s - '0');
	}
	if (*s != '\0')
		return -1;
	ts->tv_sec = (time_t)sec;
	ts->tv_nsec = usec * 1000L;
	return 0;
}

static int
parse_rcpt(char *line, off_t line_off, struct queue_rcpt *r)
{
	char *f[4];

	/* line is "<st> <notify> <orcpt|-> <address>" */
	memset(r, 0, sizeof(*r));
	if (split_fields(line, f, 4) != 4 || strlen(f[0]) != 1)
		return -1;
	if (f[0][0] != RCPT_TODO && f[0][0] != RCPT_DONE &&
	    f[0][0] != RCPT_FAILED)
		return -1;
	r->status = f[0][0];
	r->status_off = line_off + 2;
	if (parse_notify(f[1], &r->notify) < 0)
		return -1;
	if (*f[2] == '\0' || (strcmp(f[2], "-") != 0 &&
	    (r->orcpt = xtext_decode(f[2])) == NULL))
		return -1;
	if ((r->addr = xtext_decode(f[3])) == NULL)
		return -1;
	return 0;
}

static void
rcpt_free(struct queue_rcpt *r)
{
	free(r->addr);
	free(r->orcpt);
	free(r->dsn);
	free(r->reason);
}

/* Parse the note "<index> <dsn> <reason>" into its recipient. */
static int
parse_note(struct queue_msg *m, char *line)
{
	char *f[3], *dsn, *reason;
	unsigned long idx = 0;
	const char *p;

	if (split_fields(line, f, 3) != 3 || *f[0] == '\0')
		return -1;
	for (p = f[0]; *p != '\0'; p++) {
		if (*p < '0' || *p > '9' || idx > m->nrcpts)
			return -1;
		idx = idx * 10 + (unsigned long)(*p - '0');
	}
	if (idx >= m->nrcpts)
		return -1;
	dsn = xtext_decode(f[1]);
	reason = xtext_decode(f[2]);
	if (dsn == NULL || reason == NULL) {
		free(dsn);
		free(reason);
		return -1;
	}
	free(m->rcpts[idx].dsn);
	free(m->rcpts[idx].reason);
	m->rcpts[idx].dsn = dsn;
	m->rcpts[idx].reason = reason;
	return 0;
}

/* Read digits of the M record: exactly QUEUE_LEN_DIGITS of them. */
static int
parse_length(const char *s, size_t *out)
{
	unsigned long long v = 0;
	int i;

	for (i = 0; i < QUEUE_LEN_DIGITS; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (ULLONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (unsigned long long)(s[i] - '0');
	}
	if (s[i] != '\0' || v > SIZE_MAX || v > (unsigned long long)INT64_MAX)
		return -1;
	*out = (size_t)v;
	return 0;
}

/*
 * The parser proper. Returns 0; -1 with *why (static text) when the file
 * does not parse; -2 with errno for an I/O error.
 */
static int
parse_file(struct queue_msg_priv *mp, const char **why)
{
	struct queue_msg *m = &mp->pub;
	struct reader rd = { .fd = m->fd };
	struct queue_rcpt r;
	struct buf line;
	off_t off, end;
	char *name, *value, *eq, *s;
	char tail[2];
	int have_t = 0, have_s = 0, res, ret = -1;
	ssize_t n;

	buf_init(&line, BUF_NOMAX);
	*why = "truncated before the content";
	res = reader_line(&rd, &line, &off);
	if (res == RD_ERROR)
		goto ioerr;
	if (res != RD_LINE || strncmp(line.data, "TERN ", 5) != 0) {
		*why = "bad magic (not a Tern queue file)";
		goto out;
	}
	if (strcmp(line.data, QUEUE_MAGIC) != 0) {
		*why = "unsupported queue file version";
		goto out;
	}
	for (;;) {
		res = reader_line(&rd, &line, &off);
		if (res == RD_ERROR)
			goto ioerr;
		if (res == RD_TOOLONG) {
			*why = "envelope record too long";
			goto out;
		}
		if (res != RD_LINE) {
			*why = "truncated before the content";
			goto out;
		}
		if (memchr(line.data, '\0', line.len) != NULL ||
		    line.len < 1 || (line.len > 1 && line.data[1] != ' ')) {
			*why = "malformed envelope record";
			goto out;
		}
		s = line.len > 1 ? line.data + 2 : NULL;
		if (line.data[0] == 'M')
			break;
		switch (line.data[0]) {
		case 'T':
			if (have_t || s == NULL ||
			    parse_arrival(s, &m->arrival) < 0) {
				*why = "bad or repeated arrival time (T)";
				goto out;
			}
			have_t = 1;
			break;
		case 'S':
			if (have_s || s == NULL ||
			    (m->sender = xtext_decode(s)) == NULL) {
				*why = "bad or repeated sender (S)";
				goto out;
			}
			have_s = 1;
			break;
		case 'A':
			if (s == NULL || (eq = strchr(s, '=')) == NULL ||
			    eq == s) {
				*why = "malformed attribute (A)";
				goto out;
			}
			*eq = '\0';
			name = xtext_decode(s);
			value = xtext_decode(eq + 1);
			if (name == NULL || value == NULL) {
				free(name);
				free(value);
				*why = "malformed attribute (A)";
				goto out;
			}
			m->attrs = xreallocarray(m->attrs, m->nattrs + 1,
			    sizeof(*m->attrs));
			m->attrs[m->nattrs].name = name;
			m->attrs[m->nattrs].value = value;
			m->nattrs++;
			break;
		case 'R':
			if (s == NULL || parse_rcpt(s, off, &r) < 0) {
				if (s != NULL)
					rcpt_free(&r);
				*why = "malformed recipient (R)";
				goto out;
			}
			m->rcpts = xreallocarray(m->rcpts, m->nrcpts + 1,
			    sizeof(*m->rcpts));
			m->rcpts[m->nrcpts++] = r;
			break;
		default:
			*why = "unknown envelope record";
			goto out;
		}
	}
	if (!have_t || !have_s || m->nrcpts == 0) {
		*why = !have_t ? "no arrival time (T)" :
		    !have_s ? "no sender (S)" : "no recipients (R)";
		goto out;
	}
	if (line.len < 2 || parse_length(line.data + 2, &m->content_len) < 0) {
		*why = "malformed content length (M)";
		goto out;
	}
	m->content_off = off + (off_t)line.len + 1;
	/* Compare before adding: a huge M must not overflow off_t. */
	if (m->content_len > (size_t)m->file_size ||
	    (end = m->content_off + (off_t)m->content_len) > m->file_size - 2) {
		*why = "content length past the end of the file";
		goto out;
	}
	while ((n = pread(m->fd, tail, 2, end)) < 0 && errno == EINTR)
		;
	if (n < 0)
		goto ioerr;
	if (n != 2 || tail[0] != 'E' || tail[1] != '\n') {
		*why = "no end marker (E) after the content";
		goto out;
	}
	/* Notes. */
	reader_seek(&rd, end + 2);
	mp->append_off = end + 2;
	for (;;) {
		res = reader_line(&rd, &line, &off);
		if (res == RD_ERROR)
			goto ioerr;
		if (res == RD_EOF || res == RD_PARTIAL) {
			/* A partial last note is a crash in queue_note(). */
			mp->append_off = off;
			break;
		}
		if (res == RD_TOOLONG || line.len < 2 ||
		    memchr(line.data, '\0', line.len) != NULL ||
		    strncmp(line.data, "N ", 2) != 0 ||
		    parse_note(m, line.data + 2) < 0) {
			*why = "malformed note (N) after the content";
			goto out;
		}
	}
	ret = 0;
	goto out;

ioerr:
	ret = -2;
out:
	buf_free(&line);
	free(rd.data);
	return ret;
}

int
queue_open(const char *path, int writable, struct queue_msg **out,
    int *corrupt, char **err)
{
	struct queue_msg_priv *mp;
	struct queue_msg *m;
	struct stat st;
	const char *why, *base;
	int r;

	*out = NULL;
	if (corrupt != NULL)
		*corrupt = 0;
	mp = xcalloc(1, sizeof(*mp));
	m = &mp->pub;
	base = strrchr(path, '/');
	m->id = xstrdup(base != NULL ? base + 1 : path);
	m->path = xstrdup(path);
	if (writable)
		m->fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
		    O_NONBLOCK);
	else
		m->fd = file_open_read(path);
	if (m->fd < 0) {
		set_err(err, "open %s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(m->fd, &st) < 0) {
		set_err(err, "stat %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, "%s: not a regular file", path);
		goto fail;
	}
	m->file_size = st.st_size;
	r = parse_file(mp, &why);
	if (r == -2) {
		set_err(err, "read %s: %s", path, strerror(errno));
		goto fail;
	}
	if (r < 0) {
		set_err(err, "%s: corrupt queue file: %s", path, why);
		if (corrupt != NULL)
			*corrupt = 1;
		goto fail;
	}
	*out = m;
	return 0;

fail:
	queue_close(m);
	return -1;
}

void
queue_close(struct queue_msg *m)
{
	if (m == NULL)
		return;
	if (m->fd >= 0)
		close(m->fd);
	for (size_t i = 0; i < m->nattrs; i++) {
		free(m->attrs[i].name);
		free(m->attrs[i].value);
	}
	for (size_t i = 0; i < m->nrcpts; i++)
		rcpt_free(&m->rcpts[i]);
	free(m->attrs);
	free(m->rcpts);
	free(m->sender);
	free(m->id);
	free(m->path);
	/* pub is the first member of the private struct. */
	free((struct queue_msg_priv *)m);
}

const char *
queue_msg_attr(const struct queue_msg *m, const char *name)
{
	for (size_t i = 0; i < m->nattrs; i++)
		if (strcmp(m->attrs[i].name, name) == 0)
			return m->attrs[i].value;
	return NULL;
}

int
queue_mark_write(struct queue_msg *m, size_t i, int status, char **err)
{
	char c = (char)status;

	if (i >= m->nrcpts)
		msg_panic("%s: queue_mark: no recipient %zu", m->id, i);
	if (status != RCPT_TODO && status != RCPT_DONE &&
	    status != RCPT_FAILED)
		msg_panic("%s: queue_mark: bad status %d", m->id, status);
	if (pwrite(m->fd, &c, 1, m->rcpts[i].status_off) != 1) {
		set_err(err, "update %s: %s", m->path, strerror(errno));
		return -1;
	}
	m->rcpts[i].status = status;
	return 0;
}

int
queue_mark(struct queue_msg *m, size_t i, int status, char **err)
{
	if (queue_mark_write(m, i, status, err) < 0)
		return -1;
	if (fdatasync(m->fd) < 0) {
		set_err(err, "update %s: %s", m->path, strerror(errno));
		return -1;
	}
	return 0;
}

int
queue_note(struct queue_msg *m, size_t i, const char *dsn,
    const char *reason, char **err)
{
	struct queue_msg_priv *mp = (struct queue_msg_priv *)m;
	struct buf b;
	off_t end;
	ssize_t n;
	int r = -1;

	if (i >= m->nrcpts)
		msg_panic("%s: queue_note: no recipient %zu", m->id, i);
	if (dsn == NULL)
		dsn = "";
	if (reason == NULL)
		reason = "";
	/* Both xtext: a remote server's odd status text cannot break us. */
	buf_init(&b, BUF_NOMAX);
	(void)buf_printf(&b, "N %zu ", i);
	xtext_append(&b, dsn);
	(void)buf_putc(&b, ' ');
	xtext_append(&b, reason);
	(void)buf_putc(&b, '\n');
	n = pwrite(m->fd, b.data, b.len, mp->append_off);
	if (n != (ssize_t)b.len) {
		set_err(err, "append to %s: %s", m->path,
		    n < 0 ? strerror(errno) : "short write");
		goto out;
	}
	end = mp->append_off + (off_t)b.len;
	/* A longer partial note from a crash would trail behind ours. */
	if (m->file_size > end && ftruncate(m->fd, end) < 0) {
		set_err(err, "truncate %s: %s", m->path, strerror(errno));
		goto out;
	}
	if (fsync(m->fd) < 0) {
		set_err(err, "fsync %s: %s", m->path, strerror(errno));
		goto out;
	}
	mp->append_off = end;
	m->file_size = end;
	free(m->rcpts[i].dsn);
	free(m->rcpts[i].reason);
	m->rcpts[i].dsn = xstrdup(dsn);
	m->rcpts[i].reason = xstrdup(reason);
	r = 0;
out:
	buf_free(&b);
	return r;
}

ssize_t
queue_read_content(const struct queue_msg *m, off_t off, void *p, size_t n)
{
	size_t done = 0;
	ssize_t got;

	if (off < 0 || (size_t)off >= m->content_len)
		return 0;
	if (n > m->content_len - (size_t)off)
		n = m->content_len - (size_t)off;
	while (done < n) {
		got = pread(m->fd, (char *)p + done, n - done,
		    m->content_off + off + (off_t)done);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (got == 0)
			break;
		done += (size_t)got;
	}
	return (ssize_t)done;
}

size_t
queue_count(const struct queue_msg *m, int status)
{
	size_t n = 0;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].status == status)
			n++;
	return n;
}
