/*
 * table_unix - "unix:passwd.byname": the local users as a table, the
 * spelling Postfix's local_recipient_maps default uses. A key is a user
 * name; the value is the user's passwd(5) line. Users come from
 * lib/localuser (the system, or local_passwd_file in test instances).
 *
 * Failure: any other map name fails the open (it is content, like
 * inline:); a user database that cannot be read is TABLE_ERROR, never
 * "not found", so smtpd answers 451 rather than "user unknown".
 */
#include "autoconf.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "localuser.h"
#include "priv.h"
#include "table.h"

static int
unix_open(struct table *t, const char *name, char **err)
{
	if (strcmp(name, "passwd.byname") != 0) {
		*err = xasprintf("table \"unix:%s\": only unix:passwd.byname "
		    "is supported", name);
		return -1;
	}
	return 0;
}

static int
unix_lookup(struct table *t, const char *key, char **value, char **err)
{
	struct priv_user pw;

	if (local_user_lookup(key, &pw) < 0) {
		if (errno == 0)
			return TABLE_NOTFOUND;
		*err = xasprintf("table unix:passwd.byname: cannot look up "
		    "\"%s\": %s", key, strerror(errno));
		return TABLE_ERROR;
	}
	*value = xasprintf("%s:x:%lu:%lu::%s:%s", pw.name,
	    (unsigned long)pw.uid, (unsigned long)pw.gid, pw.home, pw.shell);
	priv_user_free(&pw);
	return TABLE_FOUND;
}

static void
unix_close(struct table *t)
{
}

const struct table_ops table_unix_ops = {
	.type = "unix",
	.open = unix_open,
	.lookup = unix_lookup,
	.close = unix_close,
	.name_is_content = 1,
};
