/*
 * qmgr - the queue manager: takes messages from incoming/ and
 * deferred/ into active/, resolves their recipients, hands deliveries to
 * the delivery agents, records results, defers, bounces and removes
 * (DESIGN.md §2-3; man qmgr(8)).
 *
 * master runs one qmgr process (master.cf maxproc 1) under
 * event_server_main(); its listening socket is the qmgr service,
 * public/qmgr by default, where writers and tools send the requests of
 * qmgr_client.h: "new" (a file was committed to incoming/), "flush"
 * (retry deferred mail now) and "deliver" (retry one message now). Each
 * gets "status=0" at once; the work follows. "delete" and "hold"
 * (ternsuper -d / -h of a message in active/) are done before the answer,
 * which says how it went, and only for root and mail_owner: public/ is
 * open to every local user, and the kernel says who connected
 * (SO_PEERCRED). The master.cf wakeup column
 * makes qmgr scan incoming/ anyway, so a lost wake-up only delays mail,
 * and deferred/ is scanned every queue_run_delay.
 *
 * At start, files left in active/ by a previous run go back to
 * incoming/ and are delivered again (a delivery that was in flight is
 * repeated: at-least-once). A configuration error is fatal at start;
 * afterwards nothing is: problems with one message or one agent are
 * logged and that mail is retried later.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "attr.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "qmgr.h"
#include "queue.h"
#include "server.h"
#include "stream.h"

/* Client requests are tiny; these bound what a confused or hostile
 * local client can make qmgr hold. */
#define CLIENT_MAX		256	/* connections at once */
#define CLIENT_IDLE_MS		10000	/* silent connection */
#define CLIENT_WRITE_MS		1000	/* to take a reply */
#define CLIENT_LINE_MAX		4096
#define CLIENT_ATTR_MAX		16
/* Longest wait for deliveries in progress when told to stop: inside
 * master's five seconds of grace before SIGKILL. */
#define QMGR_DRAIN_MS		4000

struct qmgr_state qmgr;

struct client {
	struct client *prev, *next;
	struct stream *s;
	unsigned long timer;
	int	 trusted;	/* root or mail_owner: delete, hold */
};

static struct client *clients;
static size_t nclients;

static void
client_close(struct client *c)
{
	if (c->timer != 0)
		event_timer_cancel(qmgr.loop, c->timer);
	event_fd_del(qmgr.loop, c->s->fd);
	stream_free(c->s);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
	nclients--;
}

static void
client_idle(void *ctx)
{
	struct client *c = ctx;

	c->timer = 0;
	client_close(c);
}

enum action { ACT_NONE, ACT_NEW, ACT_FLUSH, ACT_DELIVER };

/*
 * request=delete / hold queue_id=ID, answered with
 *	result=notfound		not in memory: qmgr does nothing with a
 *				file of that ID in active/ until it
 *				restarts, so the caller may act on it
 *	result=done		removed, or moved to hold/
 *	result=pending deliveries=N	done when the N deliveries in
 *				progress have ended
 */
static void
client_cancel(const struct client *c, const char *what, const char *id,
    struct attrs *reply)
{
	long r;

	if (!c->trusted) {
		attrs_add(reply, "status", "1");
		attrs_addf(reply, "reason", "%s is for root and mail_owner "
		    "only", what);
		return;
	}
	r = qmgr_message_cancel(id, strcmp(what, "delete") == 0 ?
	    QMGR_CANCEL_DELETE : QMGR_CANCEL_HOLD);
	attrs_add(reply, "status", "0");
	if (r < 0)
		attrs_add(reply, "result", "notfound");
	else if (r == 0)
		attrs_add(reply, "result", "done");
	else {
		attrs_add(reply, "result", "pending");
		attrs_addf(reply, "deliveries", "%ld", r);
	}
}

/* Answer one buffered request, then do its work. -1: c was closed. */
static int
client_request(struct client *c)
{
	struct attrs req, reply;
	const char *what, *id, *site, *want;
	char *site_copy = NULL, *id_copy = NULL;
	enum action act = ACT_NONE;
	int r, reply_no;

	attrs_init(&req);
	attrs_init(&reply);
	if (attr_recv(c->s, &req, CLIENT_LINE_MAX, CLIENT_ATTR_MAX) != 0) {
		attrs_clear(&req);
		client_close(c);
		return -1;
	}
	what = attrs_get(&req, "request");
	id = attrs_get(&req, "queue_id");
	site = attrs_get(&req, "site");
	want = attrs_get(&req, "reply");
	reply_no = want != NULL && strcmp(want, "no") == 0;
	if (what == NULL) {
		attrs_add(&reply, "status", "1");
		attrs_add(&reply, "reason", "no request");
	} else if (strcmp(what, "new") == 0) {
		act = ACT_NEW;
	} else if (strcmp(what, "flush") == 0) {
		act = ACT_FLUSH;
		site_copy = site != NULL ? xstrdup(site) : NULL;
	} else if (strcmp(what, "deliver") == 0 && id != NULL &&
	    queue_id_valid(id)) {
		act = ACT_DELIVER;
		id_copy = xstrdup(id);
	} else if ((strcmp(what, "delete") == 0 ||
	    strcmp(what, "hold") == 0) && id != NULL && queue_id_valid(id)) {
		client_cancel(c, what, id, &reply);
	} else {
		attrs_add(&reply, "status", "1");
		attrs_addf(&reply, "reason", "bad request \"%s\"", what);
	}
	if (act != ACT_NONE)
		attrs_add(&reply, "status", "0");
	/* reply=no (qmgr_notify_new): the sender is not listening. */
	r = reply_no ? 0 : attr_send(c->s, &reply);
	attrs_clear(&req);
	attrs_clear(&reply);
	if (r != 0)
		client_close(c);

	/* The answer is out; now the work. */
	switch (act) {
	case ACT_NEW:
		qmgr_scan_soon(1, 0);
		break;
	case ACT_FLUSH:
		msg_info("flush requested%s%s", site_copy ? " for " : "",
		    site_copy ? site_copy : "");
		qmgr_deliver_revive(site_copy);
		qmgr_scan_deferred(1, site_copy);
		qmgr_scan_soon(1, 0);
		break;
	case ACT_DELIVER:
		if (qmgr_scan_one(id_copy) < 0)
			msg_info("%s: deliver requested, but it is not in "
			    "incoming/, active/ or deferred/", id_copy);
		break;
	case ACT_NONE:
		break;
	}
	free(site_copy);
	free(id_copy);
	return r != 0 ? -1 : 0;
}

static void
client_readable(int fd, int events, void *ctx)
{
	struct client *c = ctx;
	int r;

	/* Several requests may arrive in one read: answer them all, since
	 * no new event comes for what is already buffered. */
	while ((r = attr_ready(c->s,
	    CLIENT_LINE_MAX * CLIENT_ATTR_MAX)) == 1)
		if (client_request(c) < 0)
			return;
	if (r < 0)
		client_close(c);
}

static void
qmgr_accept(int fd, struct event_loop *loop)
{
	struct client *c;
	uid_t uid;

	if (nclients >= CLIENT_MAX) {
		msg_warn("too many request connections (%d); one closed",
		    CLIENT_MAX);
		close(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->s = stream_new(fd, CLIENT_WRITE_MS);
	c->trusted = unix_peer_uid(fd, &uid) == 0 &&
	    (uid == 0 || uid == geteuid());
	if (event_fd_add(loop, fd, EVENT_READ, client_readable, c) < 0) {
		msg_warn("request connection: event loop: %m");
		stream_free(c->s);
		free(c);
		return;
	}
	nclients++;
	if ((c->next = clients) != NULL)
		clients->prev = c;
	clients = c;
	c->timer = event_timer_add(loop, CLIENT_IDLE_MS, client_idle, c);
}

static void
qmgr_wakeup(struct event_loop *loop)
{
	qmgr_scan_incoming();
}

static void
deferred_timer(void *ctx)
{
	qmgr_scan_deferred(0, NULL);
	event_timer_add(qmgr.loop, (long)qmgr.queue_run_delay * 1000,
	    deferred_timer, NULL);
}

static void
qmgr_start(struct event_loop *loop)
{
	char *err = NULL;
	int n;

	qmgr.loop = loop;
	qmgr_sync_init();
	qmgr.queue_dir = xstrdup(config_str("queue_directory"));
	qmgr.myhostname = xstrdup(config_str("myhostname"));
	qmgr.active_limit = (size_t)config_int("qmgr_message_active_limit");
	qmgr.min_backoff = config_time("minimal_backoff_time");
	qmgr.max_backoff = config_time("maximal_backoff_time");
	qmgr.max_lifetime = config_time("maximal_queue_lifetime");
	qmgr.bounce_lifetime = config_time("bounce_queue_lifetime");
	qmgr.delay_warning = config_time("delay_warning_time");
	qmgr.queue_run_delay = config_time("queue_run_delay");
	qmgr.delivery_timeout = config_time("daemon_timeout");
	qmgr.agent_idle_ms = config_time("qmgr_agent_idle_time_limit") * 1000;
	if (qmgr.queue_run_delay < 1)
		qmgr.queue_run_delay = 1;
	if (qmgr.delivery_timeout < 1)
		qmgr.delivery_timeout = 1;
	qmgr_resolve_init();

	if (queue_make_folders(qmgr.queue_dir, &err) < 0)
		msg_fatal("queue_directory %s: %s", qmgr.queue_dir, err);
	if ((n = queue_cleanup(qmgr.queue_dir)) > 0)
		msg_info("removed %d unfinished queue file%s of crashed "
		    "writers", n, n == 1 ? "" : "s");
	qmgr_scan_recover();
	qmgr_scan_incoming();
	qmgr_scan_deferred(0, NULL);
	event_timer_add(loop, (long)qmgr.queue_run_delay * 1000,
	    deferred_timer, NULL);
}

int
qmgr_busy(void)
{
	return qmgr_deliver_running() || qmgr_sync_pending() > 0;
}

static void
drain_timeout(void *ctx)
{
	msg_warn("deliveries still in progress after %ds; they are made "
	    "again at the next start", QMGR_DRAIN_MS / 1000);
	event_loop_stop(ctx);
}

/*
 * Told to stop (tern stop, or a reload that changed main.cf): start
 * nothing new, and let the deliveries in progress end first, since the
 * agents do not write their results into the queue file: a delivery
 * cut off here is made again by the next qmgr, a duplicate for its
 * recipients. Within master's grace before SIGKILL.
 */
static void
qmgr_drain(struct event_loop *loop)
{
	if (qmgr.stopping)
		return;
	qmgr.stopping = 1;
	if (!qmgr_busy()) {
		event_loop_stop(loop);
		return;
	}
	msg_info("stopping after the deliveries in progress (at most %ds)",
	    QMGR_DRAIN_MS / 1000);
	event_timer_add(loop, QMGR_DRAIN_MS, drain_timeout, loop);
}

int
main(int argc, char **argv)
{
	static const struct server_opts opts = {
		.program = "qmgr",
		.accept = qmgr_accept,
		.wakeup = qmgr_wakeup,
		.start = qmgr_start,
		.drain = qmgr_drain,
	};
	struct client *c;

	event_server_main(argc, argv, &opts);
	/* Stopped: what was still in flight after the drain is delivered
	 * again at the next start. Free the rest for leak checkers. */
	qmgr.stopping = 1;
	qmgr.loop = NULL;
	while ((c = clients) != NULL) {
		clients = c->next;
		stream_free(c->s);
		free(c);
	}
	qmgr_sync_shutdown();
	qmgr_deliver_shutdown();
	qmgr_message_shutdown();
	qmgr_resolve_free();
	free(qmgr.queue_dir);
	free(qmgr.myhostname);
	return 0;
}
