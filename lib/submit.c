/*
 * submit - local submission: who may do what, the sender pickup
 * records, and the wake-up sendmail sends. See submit.h for the design.
 *
 * Called by sendmail, pickup and ternqueue. A table that cannot be read
 * makes submit_user_listed() say -1, and callers refuse (sendmail exits
 * EX_TEMPFAIL, pickup leaves the file for later) rather than guess.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "attr.h"
#include "config.h"
#include "stream.h"
#include "strv.h"
#include "submit.h"
#include "table.h"

#define POKE_CONNECT_MS	1000
#define POKE_REPLY_MS	2000

/* 1 when item (without its '!') matches login, 0 not, -1 error. */
static int
item_matches(const char *item, const char *login, char **err)
{
	struct table *t;
	char *value = NULL, *terr = NULL;
	int r;

	if (strchr(item, ':') == NULL)
		return strcmp(item, login) == 0;
	if ((t = table_open(item, &terr)) == NULL) {
		*err = terr;
		return -1;
	}
	r = table_lookup(t, login, &value, &terr);
	table_close(t);
	free(value);
	if (r == TABLE_ERROR) {
		*err = terr;
		return -1;
	}
	free(terr);
	return r == TABLE_FOUND;
}

int
submit_user_listed(const char *param, const char *login, char **err)
{
	char **items;
	const char *item;
	int neg, r = 0;

	items = config_list(param);
	for (size_t i = 0; items[i] != NULL; i++) {
		item = items[i];
		neg = *item == '!';
		if (neg)
			item++;
		if ((r = item_matches(item, login, err)) != 0) {
			if (r > 0 && neg)
				r = 0;
			break;
		}
	}
	strv_free(items);
	return r;
}

char *
submit_qualify(const char *addr, const char *domain)
{
	if (*addr == '\0' || strchr(addr, '@') != NULL || *domain == '\0')
		return xstrdup(addr);
	return xasprintf("%s@%s", addr, domain);
}

char *
submit_sender(const char *given, const char *login, int may_forge,
    const char *myorigin)
{
	if (may_forge)
		return submit_qualify(given, myorigin);
	return submit_qualify(login, myorigin);
}

int
submit_poke_pickup(const char *queue_dir)
{
	static const char *const where[] = { "public", "private" };
	struct attrs req, reply;
	struct stream *s;
	struct stat st;
	char *path = NULL;
	int fd = -1, r, saved;

	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		path = xasprintf("%s/%s/%s", queue_dir, where[i],
		    SUBMIT_PICKUP_SERVICE);
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			break;
		free(path);
		path = NULL;
	}
	if (path == NULL) {
		errno = ENOENT;
		return -1;
	}
	fd = unix_connect(path, POKE_CONNECT_MS);
	saved = errno;
	free(path);
	if (fd < 0) {
		errno = saved;
		return -1;
	}
	s = stream_new(fd, POKE_REPLY_MS);
	attrs_init(&req);
	attrs_init(&reply);
	attrs_add(&req, "request", "wakeup");
	if ((r = attr_send(s, &req)) == 0)
		r = attr_recv(s, &reply, 256, 4);
	attrs_clear(&req);
	attrs_clear(&reply);
	stream_free(s);
	if (r != 0) {
		errno = r == STREAM_TIMEOUT ? ETIMEDOUT : EPROTO;
		return -1;
	}
	return 0;
}
