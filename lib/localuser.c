/*
 * localuser - local users from the system or from local_passwd_file.
 * See localuser.h.
 *
 * local_passwd_file is read once and kept, split into lines, until a
 * stat(2) shows another file or a change (inode, size, modification or
 * change time): the local delivery agent looks a user up for every
 * recipient, and reading the whole file each time was a cost per
 * message. File times tick in jiffies, so two writes close together can
 * leave the same times: a file changed less than PASSWD_SETTLE seconds
 * before it was read is read again at every lookup until it is older.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "file.h"
#include "localuser.h"
#include "num.h"
#include "priv.h"
#include "strv.h"

#define PASSWD_FILE_MAX	(16 * 1024 * 1024)
#define PASSWD_SETTLE	2

/* Parse one passwd(5) line "name:pw:uid:gid:gecos:home:shell". */
static int
passwd_line_match(const char *line, const char *name, struct priv_user *pw)
{
	char *copy, *f[7], *p;
	unsigned long uid, gid;
	int n = 0, found = 0;

	/* Most lines are somebody else's: skip them without a copy. */
	if (strncmp(line, name, strlen(name)) != 0 ||
	    line[strlen(name)] != ':')
		return 0;
	copy = xstrdup(line);
	for (p = copy; n < 7; n++) {
		f[n] = p;
		if ((p = strchr(p, ':')) == NULL) {
			n++;
			break;
		}
		*p++ = '\0';
	}
	if (n == 7 && strcmp(f[0], name) == 0 &&
	    parse_ulong(f[2], 0, (uid_t)-1 - 1, &uid) == 0 &&
	    parse_ulong(f[3], 0, (gid_t)-1 - 1, &gid) == 0) {
		pw->name = xstrdup(f[0]);
		pw->uid = (uid_t)uid;
		pw->gid = (gid_t)gid;
		pw->home = xstrdup(f[5]);
		pw->shell = xstrdup(f[6]);
		found = 1;
	}
	free(copy);
	return found;
}

/* The lines of local_passwd_file as last read, and what it was then. */
static struct {
	char	*path;
	struct stat st;
	int	 recent;	/* changed just before it was read */
	char	**lines;
} passwd_cache;

static int
passwd_same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void
passwd_forget(void)
{
	free(passwd_cache.path);
	strv_free(passwd_cache.lines);
	memset(&passwd_cache, 0, sizeof(passwd_cache));
}

/* The lines of path, read again only when it changed; NULL with errno. */
static char **
passwd_lines(const char *path)
{
	struct buf text;
	struct stat st;
	time_t now;
	int saved;

	/* Stat before reading: a change after it is seen next time. */
	if (stat(path, &st) < 0) {
		saved = errno;
		passwd_forget();
		errno = saved;
		return NULL;
	}
	if (passwd_cache.lines != NULL && !passwd_cache.recent &&
	    strcmp(passwd_cache.path, path) == 0 &&
	    passwd_same_file(&passwd_cache.st, &st))
		return passwd_cache.lines;
	passwd_forget();
	buf_init(&text, PASSWD_FILE_MAX);
	if (file_read_all(path, &text, PASSWD_FILE_MAX) < 0) {
		saved = errno;
		buf_free(&text);
		errno = saved ? saved : EIO;
		return NULL;
	}
	passwd_cache.lines = strv_split(buf_cstr(&text), "\n");
	buf_free(&text);
	passwd_cache.path = xstrdup(path);
	passwd_cache.st = st;
	now = time(NULL);
	passwd_cache.recent = st.st_mtim.tv_sec + PASSWD_SETTLE > now ||
	    st.st_ctim.tv_sec + PASSWD_SETTLE > now;
	return passwd_cache.lines;
}

int
local_user_lookup(const char *name, struct priv_user *pw)
{
	const char *path = config_str("local_passwd_file");
	char **lines;
	int found = 0;

	if (*path == '\0')
		return priv_user_lookup(name, pw);
	if ((lines = passwd_lines(path)) == NULL)
		return -1;
	for (size_t i = 0; lines[i] != NULL && !found; i++)
		if (lines[i][0] != '#')
			found = passwd_line_match(lines[i], name, pw);
	if (!found) {
		errno = 0;
		return -1;
	}
	return 0;
}
