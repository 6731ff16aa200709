/*
 * qmgr_scan - which queue files qmgr takes up next.
 *
 * Called from qmgr.c at start, on its timers and on requests: incoming/
 * when a writer says "new" (and at every master.cf wakeup, in case a
 * wake-up was lost), deferred/ every queue_run_delay and on "flush".
 * Files move into active/ (queue_move: rename and fsync) only while
 * fewer than qmgr_message_active_limit messages are in memory, oldest
 * queue ID first; the rest wait, and a scan is asked for again as soon
 * as a message leaves active/. A deferred file is due when its mtime
 * (the next-try time qmgr_message.c set) has passed. hold/ and corrupt/
 * are never looked at; names that are not queue IDs (a writer's
 * ".tmp-" file) are left alone.
 *
 * Nothing here is fatal: a folder that cannot be read is logged and
 * tried again at the next scan.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "event.h"
#include "log.h"
#include "qmgr.h"
#include "queue.h"
#include "strv.h"

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Queue IDs in a folder, sorted (oldest first); NULL when unreadable. */
static char **
folder_ids(enum queue_folder folder)
{
	char *path, **ids;
	struct dirent *de;
	DIR *dir;

	path = xasprintf("%s/%s", qmgr.queue_dir, queue_folder_name(folder));
	if ((dir = opendir(path)) == NULL) {
		msg_warn("open %s: %m", path);
		free(path);
		return NULL;
	}
	ids = xcalloc(1, sizeof(char *));
	while ((de = readdir(dir)) != NULL)
		if (queue_id_valid(de->d_name))
			strv_add(&ids, de->d_name);
	closedir(dir);
	free(path);
	qsort(ids, strv_len(ids), sizeof(char *), cmp_str);
	return ids;
}

/* Move id from folder into active/ and start on it. */
static int
take(const char *id, enum queue_folder from)
{
	char *err = NULL;

	if (qmgr_message_busy(id))
		return 0;
	if (queue_move(qmgr.queue_dir, id, from, QUEUE_ACTIVE, &err) < 0) {
		/* Gone meanwhile (an operator's ternsuper) is no news. */
		if (errno != ENOENT)
			msg_warn("%s: move to active/: %s", id, err);
		free(err);
		return -1;
	}
	qmgr_message_activate(id);
	return 0;
}

void
qmgr_scan_recover(void)
{
	char **ids, *err = NULL;
	size_t i;

	if ((ids = folder_ids(QUEUE_ACTIVE)) == NULL)
		return;
	for (i = 0; ids[i] != NULL; i++) {
		/* A delivery may have been in flight: it is repeated. */
		if (queue_move(qmgr.queue_dir, ids[i], QUEUE_ACTIVE,
		    QUEUE_INCOMING, &err) < 0) {
			msg_warn("%s: move back to incoming/: %s", ids[i], err);
			free(err);
			err = NULL;
		}
	}
	if (i > 0)
		msg_info("%zu message%s left in active/ by the last run "
		    "will be delivered again", i, i == 1 ? "" : "s");
	strv_free(ids);
}

void
qmgr_scan_incoming(void)
{
	char **ids;
	size_t i;

	if ((ids = folder_ids(QUEUE_INCOMING)) == NULL)
		return;
	qmgr.backlog_incoming = 0;
	for (i = 0; ids[i] != NULL && !qmgr.stopping; i++) {
		if (qmgr.nactive >= qmgr.active_limit) {
			qmgr.backlog_incoming = 1;
			break;
		}
		(void)take(ids[i], QUEUE_INCOMING);
	}
	strv_free(ids);
}

static const char *
addr_domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/*
 * 1 when msg id (in deferred/) has a recipient still to deliver for
 * site: its domain is site or below it, or it is routed to a next hop
 * there (a relayhost, a transport_maps entry).
 */
static int
for_site(const char *id, const char *site)
{
	struct queue_msg *qm;
	struct qmgr_routes routes;
	char *path, *err = NULL;
	const char *at;
	size_t i, k;
	int corrupt, r = 0, expanded;

	path = queue_path(qmgr.queue_dir, QUEUE_DEFERRED, id);
	if (queue_open(path, 0, &qm, &corrupt, &err) < 0) {
		free(err);
		free(path);
		return corrupt;	/* let activation move it to corrupt/ */
	}
	free(path);
	expanded = queue_msg_attr(qm, QMGR_ATTR_EXPANDED_FROM) != NULL;
	for (i = 0; i < qm->nrcpts && !r; i++) {
		if (qm->rcpts[i].status != RCPT_TODO)
			continue;
		at = strrchr(qm->rcpts[i].addr, '@');
		if (at != NULL && qmgr_site_match(site, at + 1, NULL)) {
			r = 1;
			break;
		}
		qmgr_resolve(qm->rcpts[i].addr, qm->sender, !expanded,
		    &routes);
		for (k = 0; k < routes.n && !r; k++)
			r = routes.v[k].status == ROUTE_DELIVER &&
			    qmgr_site_match(site, addr_domain_of(
			    routes.v[k].addr), routes.v[k].nexthop);
		qmgr_routes_free(&routes);
	}
	queue_close(qm);
	return r;
}

static void
touch_now(const char *id)
{
	char *path = queue_path(qmgr.queue_dir, QUEUE_DEFERRED, id);

	if (utimensat(AT_FDCWD, path, NULL, 0) < 0 && errno != ENOENT)
		msg_warn("%s: set next-try time: %m", id);
	free(path);
}

void
qmgr_scan_deferred(int all, const char *site)
{
	struct stat st;
	char **ids, *path;
	time_t now = time(NULL);
	size_t i;

	if ((ids = folder_ids(QUEUE_DEFERRED)) == NULL)
		return;
	if (!all)
		qmgr.backlog_deferred = 0;
	for (i = 0; ids[i] != NULL && !qmgr.stopping; i++) {
		if (!all) {
			path = queue_path(qmgr.queue_dir, QUEUE_DEFERRED,
			    ids[i]);
			if (stat(path, &st) < 0 || st.st_mtime > now) {
				free(path);
				continue;
			}
			free(path);
		} else if (site != NULL && site[0] != '\0' &&
		    !for_site(ids[i], site))
			continue;
		if (qmgr.nactive >= qmgr.active_limit) {
			qmgr.backlog_deferred = 1;
			if (!all)
				break;
			/* No room now: due at once, taken when room frees. */
			touch_now(ids[i]);
			continue;
		}
		(void)take(ids[i], QUEUE_DEFERRED);
	}
	strv_free(ids);
}

int
qmgr_scan_one(const char *id)
{
	enum queue_folder folder;

	if (!queue_id_valid(id) || queue_find(qmgr.queue_dir, id,
	    &folder) < 0)
		return -1;
	switch (folder) {
	case QUEUE_INCOMING:
		qmgr_scan_soon(1, 0);
		return 0;
	case QUEUE_DEFERRED:
		if (qmgr.nactive < qmgr.active_limit)
			(void)take(id, QUEUE_DEFERRED);
		else {
			touch_now(id);
			qmgr.backlog_deferred = 1;
		}
		return 0;
	case QUEUE_ACTIVE:
		return 0;	/* being delivered already */
	default:
		return -1;	/* hold/, corrupt/, maildrop/: not ours */
	}
}

static struct {
	unsigned long timer;
	int	 incoming;
	int	 deferred;
} soon;

static void
scan_soon_run(void *ctx)
{
	static int deferred_first;
	int incoming = soon.incoming, deferred = soon.deferred;

	soon.timer = 0;
	soon.incoming = soon.deferred = 0;
	/* When both wait for room, take turns at who gets it first, so
	 * that a stream of new mail cannot starve retries, or the other
	 * way round. */
	deferred_first = !deferred_first;
	if (deferred && deferred_first)
		qmgr_scan_deferred(0, NULL);
	if (incoming)
		qmgr_scan_incoming();
	if (deferred && !deferred_first)
		qmgr_scan_deferred(0, NULL);
}

void
qmgr_scan_soon(int incoming, int deferred)
{
	if (!incoming && !deferred)
		return;
	soon.incoming |= incoming;
	soon.deferred |= deferred;
	if (soon.timer == 0 && qmgr.loop != NULL)
		soon.timer = event_timer_add(qmgr.loop, 0, scan_soon_run,
		    NULL);
}
