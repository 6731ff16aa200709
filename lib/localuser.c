/*
 * localuser - local users from the system or from local_passwd_file.
 * See localuser.h.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "file.h"
#include "localuser.h"
#include "num.h"
#include "priv.h"
#include "strv.h"

#define PASSWD_FILE_MAX	(16 * 1024 * 1024)

/* Parse one passwd(5) line "name:pw:uid:gid:gecos:home:shell". */
static int
passwd_line_match(const char *line, const char *name, struct priv_user *pw)
{
	char *copy, *f[7], *p;
	unsigned long uid, gid;
	int n = 0, found = 0;

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

int
local_user_lookup(const char *name, struct priv_user *pw)
{
	const char *path = config_str("local_passwd_file");
	struct buf text;
	char **lines;
	int found = 0;

	if (*path == '\0')
		return priv_user_lookup(name, pw);

	buf_init(&text, PASSWD_FILE_MAX);
	if (file_read_all(path, &text, PASSWD_FILE_MAX) < 0) {
		int saved = errno;

		buf_free(&text);
		errno = saved ? saved : EIO;
		return -1;
	}
	lines = strv_split(buf_cstr(&text), "\n");
	buf_free(&text);
	for (size_t i = 0; lines[i] != NULL && !found; i++)
		if (lines[i][0] != '#')
			found = passwd_line_match(lines[i], name, pw);
	strv_free(lines);
	if (!found) {
		errno = 0;
		return -1;
	}
	return 0;
}
