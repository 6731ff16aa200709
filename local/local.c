/*
 * local - the local delivery agent (DESIGN.md §2, man/local.8).
 *
 * master runs it on the "local" service's Unix socket; qmgr connects and
 * sends delivery requests (deliver.h): a queue ID and the recipients to
 * deliver. local opens the queue file read-only, delivers each recipient
 * (local_recipient.c: aliases, .forward, mailboxes, commands, files,
 * virtual mailboxes), and replies with one result per recipient. It
 * never changes the queue file: recording results is qmgr's job.
 * Requests qmgr sent together are served as a batch: all delivered,
 * then the Maildir folders they reached fsynced once each (maildir.c),
 * then the replies sent in order.
 *
 * It starts as root so that each delivery can run as its user (see
 * local_privs.c); in a test instance it runs as the invoking user and
 * delivers only as that user. A queue file that cannot be opened or
 * parsed defers every recipient of the request; a peer that breaks the
 * protocol ends the session. Nothing a message or a recipient does can
 * end the process.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "deliver.h"
#include "local.h"
#include "log.h"
#include "queue.h"
#include "server.h"
#include "stream.h"
#include "strv.h"

/* How long qmgr may take to send a request on an open connection. */
#define LOCAL_REQUEST_TIMEOUT_MS	(300 * 1000)
/* Most requests served as one batch (qmgr bounds how many it sends
 * ahead; this bounds what one turn holds). */
#define LOCAL_BATCH_MAX			64

static void
defer_all(struct deliver_request *req, const char *dsn, const char *reason)
{
	for (size_t i = 0; i < req->nrcpts; i++)
		deliver_set_result(req, i, DELIVER_DEFERRED, dsn, reason);
}

/* Deliver every recipient of one request, filling in the results. */
static void
local_deliver_request(struct deliver_request *req)
{
	const char *queue_dir = config_str("queue_directory");
	enum queue_folder folder = QUEUE_ACTIVE;
	struct local_tables tabs;
	struct local_result res;
	struct local_msg m;
	struct queue_msg *q = NULL;
	char *path, *err = NULL, *why;
	int corrupt = 0;

	if (req->folder != NULL && *req->folder != '\0' &&
	    queue_folder_lookup(req->folder, &folder) < 0) {
		why = xasprintf("bad queue folder \"%s\" in request",
		    req->folder);
		defer_all(req, "4.3.0", why);
		free(why);
		return;
	}
	if (!queue_id_valid(req->queue_id)) {
		defer_all(req, "4.3.0", "bad queue ID in request");
		return;
	}
	path = queue_path(queue_dir, folder, req->queue_id);
	if (queue_open(path, 0, &q, &corrupt, &err) < 0) {
		msg_warn("%s: cannot open queue file: %s", req->queue_id,
		    err ? err : "?");
		why = xasprintf("cannot open queue file: %s", err ? err : "?");
		defer_all(req, "4.3.0", why);
		free(why);
		free(err);
		free(path);
		return;
	}
	free(path);

	memset(&m, 0, sizeof(m));
	m.q = q;
	m.queue_id = req->queue_id;
	/* The request's sender is what qmgr means; the file agrees. */
	m.sender = req->sender != NULL ? req->sender : q->sender;
	local_msg_scan(&m);
	local_table_next_request();
	local_tables_open(&tabs);
	m.req = req;
	for (size_t i = 0; i < req->nrcpts; i++) {
		m.rcpt = i;
		local_result_init(&res);
		local_deliver_rcpt(&m, &tabs, req->rcpts[i].addr, &res);
		if (res.dsn == NULL)	/* a bug, but never lose mail */
			local_result_set(&res, DELIVER_DEFERRED, "4.3.0",
			    "internal error: no result");
		deliver_set_result(req, i, res.status, res.dsn, res.reason);
		local_result_free(&res);
	}
	local_tables_close(&tabs);
	strv_free(m.delivered_to);
	queue_close(q);
}

/* Every reply and log line names "local" as the relay, as Postfix's
 * local does. */
static void
local_deliver_and_name(struct deliver_request *req)
{
	free(req->relay);
	req->relay = xstrdup("local");
	/*
	 * Maildir deliveries leave the fsync of new/ to local_commit,
	 * which deliver_agent_serve_batch calls after the deliver() calls
	 * of every batch and before any of its replies: nothing waits
	 * past its batch. The commit turns deferral off, so each request
	 * turns it on (again), rather than only a batch's first, which
	 * this function cannot tell.
	 */
	maildir_defer_sync();
	local_deliver_request(req);
}

/* The batch is delivered: make it durable before the replies go. */
static void
local_commit(struct deliver_request *reqs, size_t n)
{
	(void)reqs;
	(void)n;
	maildir_sync_pending();
}

static void
local_serve(int in_fd, int out_fd)
{
	deliver_agent_serve_batch(in_fd, out_fd, LOCAL_REQUEST_TIMEOUT_MS,
	    local_deliver_and_name, local_commit, LOCAL_BATCH_MAX);
}

int
main(int argc, char **argv)
{
	static const struct server_opts opts = {
		.program = "local",
		.serve = local_serve,
		.unprivileged_ok = 1,
	};

	return single_server_main(argc, argv, &opts);
}
