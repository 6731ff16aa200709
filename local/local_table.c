/*
 * local_table - the lookup tables local uses (alias_maps, tables in
 * mydestination and virtual_mailbox_domains, the virtual_*_maps), kept
 * open for the life of the process instead of opened for each request
 * or recipient: opening an LMDB table maps the file and checks it,
 * opening a texthash: table reads and sorts the whole file.
 *
 * A table read from a file is opened again when the file is not what it
 * was (another inode, size, modification or change time, or it appeared
 * or went away), checked once per request (local_table_next_request),
 * so an edited alias file takes effect at the next request, as it did
 * when every request opened its tables. File times tick in jiffies, so
 * a file changed less than TABLE_SETTLE seconds before it was opened is
 * opened again at every request until it is older. Tables that are
 * their own content (inline:, static:) and unix:passwd.byname are never
 * reopened: main.cf does not change under a running process.
 *
 * Called by local.c (a new request), local_recipient.c and
 * local_virtual.c. A malformed spec is not kept: every call fails again
 * with its reason, so the delivery defers until main.cf is fixed.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "local.h"
#include "table.h"

#define TABLE_SETTLE	2

struct cached_table {
	char	*spec;
	struct table *t;
	char	*file;		/* what to stat; NULL: nothing */
	int	 exists;	/* file was there when opened */
	struct stat st;		/* and was this */
	int	 recent;	/* changed just before it was opened */
	unsigned long checked;	/* request it was last checked in */
};

static struct cached_table *cache;
static size_t ncache;
/* Bumped by each request: a table is checked once per request. */
static unsigned long generation = 1;

void
local_table_next_request(void)
{
	generation++;
}

/* The file a table is read from, to notice changes; NULL: none. */
static char *
cache_file(const char *spec)
{
	const char *colon;

	if (strncasecmp(spec, "proxy:", 6) == 0)
		spec += 6;
	if ((colon = strchr(spec, ':')) == NULL || colon[1] != '/')
		return NULL;
	if (strncasecmp(spec, "lmdb:", 5) == 0)
		return xasprintf("%s.lmdb", colon + 1);
	return xstrdup(colon + 1);
}

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Note what the file is, before opening the table from it. */
static void
cache_note(struct cached_table *c)
{
	time_t now = time(NULL);

	c->exists = c->file != NULL && stat(c->file, &c->st) == 0;
	c->recent = c->exists && (c->st.st_mtim.tv_sec + TABLE_SETTLE > now ||
	    c->st.st_ctim.tv_sec + TABLE_SETTLE > now);
	c->checked = generation;
}

/* 1 when the file is no longer what the open table was read from. */
static int
cache_stale(const struct cached_table *c)
{
	struct stat st;
	int exists;

	if (c->file == NULL)
		return 0;
	if (c->recent)
		return 1;
	exists = stat(c->file, &st) == 0;
	return exists != c->exists || (exists && !same_file(&st, &c->st));
}

struct table *
local_table(const char *spec, char **err)
{
	struct cached_table *c = NULL;
	struct table *t;

	for (size_t i = 0; i < ncache; i++)
		if (strcmp(cache[i].spec, spec) == 0) {
			c = &cache[i];
			break;
		}
	if (c != NULL) {
		if (c->checked == generation || !cache_stale(c)) {
			c->checked = generation;
			return c->t;
		}
		/* Changed: stat first, so a change during the open is seen
		 * at the next check. */
		cache_note(c);
		if ((t = table_open(spec, err)) == NULL)
			return NULL;	/* it opened before: never */
		table_close(c->t);
		c->t = t;
		return t;
	}
	cache = xreallocarray(cache, ncache + 1, sizeof(*cache));
	c = &cache[ncache];
	memset(c, 0, sizeof(*c));
	c->file = cache_file(spec);
	cache_note(c);
	if ((c->t = table_open(spec, err)) == NULL) {
		free(c->file);
		return NULL;
	}
	c->spec = xstrdup(spec);
	ncache++;
	return c->t;
}
