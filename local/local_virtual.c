/*
 * local_virtual - delivery for virtual mailbox domains: the users of
 * virtual_mailbox_domains are not system accounts but rows of
 * virtual_mailbox_maps, as in Postfix's virtual(8), so an ISP's
 * existing main.cf for such a setup works unchanged:
 *	virtual_mailbox_maps	user@domain (or @domain) -> path under
 *				virtual_mailbox_base; a trailing "/" is a
 *				Maildir, anything else an mbox file
 *	virtual_uid_maps	-> uid (static:5000 or a table), and the
 *	virtual_gid_maps	   same for the gid
 *	virtual_minimum_uid	smallest uid accepted
 *	virtual_mailbox_limit	largest mbox file or Maildir message
 *
 * No aliases or .forward here: qmgr has already applied
 * virtual_alias_maps. An address not in the maps bounces as unknown
 * (5.1.1); a map that cannot be read, a missing or too small uid, or a
 * mailbox that cannot be written defers.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "file.h"
#include "local.h"
#include "num.h"
#include "strv.h"
#include "table.h"

/* Look addr up in the tables of a list parameter. TABLE_FOUND with
 * *value, TABLE_NOTFOUND, or TABLE_ERROR with *res deferred. */
static int
maps_lookup(const char *param, const char *addr, char **value,
    struct local_result *res)
{
	char **specs = config_list(param);
	char *err = NULL;
	int r = TABLE_NOTFOUND;

	for (size_t i = 0; specs[i] != NULL && r == TABLE_NOTFOUND; i++) {
		struct table *t = local_table(specs[i], &err);

		if (t == NULL) {
			r = TABLE_ERROR;
			break;
		}
		r = table_lookup_addr(t, addr, 0, value, &err);
	}
	if (r == TABLE_ERROR) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "%s lookup error for %s: %s", param, addr,
		    err ? err : "?");
	}
	free(err);
	strv_free(specs);
	return r;
}

/* The uid or gid for addr from virtual_uid_maps / virtual_gid_maps. */
static int
id_lookup(const char *param, const char *addr, unsigned long *id,
    struct local_result *res)
{
	char *value = NULL;
	int r;

	if ((r = maps_lookup(param, addr, &value, res)) == TABLE_ERROR)
		return -1;
	if (r == TABLE_NOTFOUND) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.5",
		    "mail system configuration error: %s has no entry for %s",
		    param, addr);
		return -1;
	}
	if (parse_ulong(value, 0, (unsigned long)(unsigned int)-1 - 1, id) <
	    0) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.5",
		    "mail system configuration error: %s gives \"%s\" for "
		    "%s, not a number", param, value, addr);
		free(value);
		return -1;
	}
	free(value);
	return 0;
}

struct vdelivery {
	const struct local_msg *m;
	const char *path;
	const char *addr;
};

/* Runs as the mailbox's uid/gid. */
static void
vdeliver(void *ctx, struct local_result *res)
{
	struct vdelivery *v = ctx;
	size_t limit = config_size("virtual_mailbox_limit");
	size_t n = strlen(v->path);

	if (n > 0 && v->path[n - 1] == '/') {
		maildir_deliver(v->m, v->path, 1, v->addr, limit, res);
		return;
	}
	{
		char *dir = xstrdup(v->path), *slash = strrchr(dir, '/');

		if (slash != NULL && slash != dir) {
			*slash = '\0';
			if (file_mkdirs(dir, 0700) < 0) {
				local_result_errno(res, errno,
				    "create mailbox folder %s", dir);
				free(dir);
				return;
			}
		}
		free(dir);
	}
	mbox_deliver(v->m, v->path, v->addr, limit, res);
}

void
local_virtual_deliver(const struct local_msg *m, const char *addr,
    struct local_result *res)
{
	const char *base = config_str("virtual_mailbox_base");
	unsigned long uid, gid;
	long min_uid = config_int("virtual_minimum_uid");
	char *value = NULL, *path;
	struct vdelivery v;
	int r;

	if ((r = maps_lookup("virtual_mailbox_maps", addr, &value, res)) ==
	    TABLE_ERROR)
		return;
	if (r == TABLE_NOTFOUND) {
		local_result_set(res, DELIVER_BOUNCED, "5.1.1",
		    "unknown user: \"%s\"", addr);
		return;
	}
	/* The map is the administrator's, but a path that climbs out of
	 * the base is a mistake worth stopping. */
	if (strcmp(value, "..") == 0 || strncmp(value, "../", 3) == 0 ||
	    strstr(value, "/../") != NULL || (*base == '\0' &&
	    value[0] != '/')) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.5",
		    "mail system configuration error: bad mailbox path \"%s\" "
		    "for %s in virtual_mailbox_maps", value, addr);
		free(value);
		return;
	}
	if (id_lookup("virtual_uid_maps", addr, &uid, res) < 0 ||
	    id_lookup("virtual_gid_maps", addr, &gid, res) < 0) {
		free(value);
		return;
	}
	if (uid < (unsigned long)min_uid) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.5",
		    "mail system configuration error: uid %lu for %s is below "
		    "virtual_minimum_uid %ld", uid, addr, min_uid);
		free(value);
		return;
	}
	path = *base ? xasprintf("%s/%s", base, value) : xstrdup(value);
	free(value);
	v.m = m;
	v.path = path;
	v.addr = addr;
	local_run_as((uid_t)uid, (gid_t)gid, NULL, vdeliver, &v, res);
	free(path);
}
