/*
 * qmgr_message - the life of one message in active/: from the moment
 * qmgr_scan.c moves it in until it is removed, deferred or bounced.
 *
 * qmgr_message_activate() opens the file, logs "from=<...>, size=N,
 * nrcpt=N (queue active)", resolves every recipient still to deliver
 * (qmgr_resolve.c) and queues the deliveries by transport and next hop
 * (qmgr_deliver.c). Results come back through qmgr_message_result(),
 * which records each one in the file before anything else happens to
 * it (queue_note fsyncs; a "sent" mark is fdatasynced with the others
 * in a thread of qmgr_sync.c before the file moves on), and logs the
 * Postfix-shaped
 * "to=<...>, relay=..., delay=..., delays=a/b/c/d, dsn=..., status=..."
 * line. When the last delivery has ended, the message is finished:
 *	- recipients still to deliver past the queue lifetime fail with
 *	  5.4.7 "message expired: <last reason>";
 *	- failed recipients get one delivery status notification to the
 *	  sender (qmgr_bounce.c), committed to the queue before they are
 *	  marked done; mail from the null sender never gets one;
 *	- nothing left: the file is removed ("removed");
 *	- else it moves to deferred/ with its next-try time as mtime.
 * An operator's ternsuper -d / -h of a message in memory
 * (qmgr_message_cancel) drops its waiting deliveries, lets the running
 * ones end, and then removes the file or moves it to hold/ instead.
 *
 * A virtual alias that expands one recipient into several is written
 * out as a new queue file holding the expansion (as Postfix's cleanup
 * would have done), and the original recipient is marked done: each
 * address then has its own done-mark, so a partial failure never
 * repeats the deliveries that succeeded.
 *
 * How it fails: a file that does not parse goes to corrupt/ with a
 * warning. A result that cannot be written to the file (I/O error)
 * leaves the message in the queue to be tried again: a repeated
 * delivery is better than a lost one.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "deliver.h"
#include "log.h"
#include "qmgr.h"
#include "queue.h"

/* Read size when copying a message into an alias expansion file. */
#define COPY_CHUNK	65536

/* One (transport, nexthop) group of recipients while resolving. */
struct group {
	char	*transport;
	char	*nexthop;
	int	 fallback;
	size_t	*idx;
	size_t	 n;
};

double
qmgr_message_arrival(const struct qmgr_message *msg)
{
	return (double)msg->qm->arrival.tv_sec +
	    (double)msg->qm->arrival.tv_nsec / 1e9;
}

int
qmgr_message_busy(const char *id)
{
	struct qmgr_message *m;

	for (m = qmgr.msgs; m != NULL; m = m->next)
		if (strcmp(m->id, id) == 0)
			return 1;
	return 0;
}

/* The recipient's current status text, for the log: one line. */
static char *
log_text(const char *s)
{
	char *t = xstrdup(s != NULL ? s : ""), *p;

	for (p = t; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return t;
}

/* An agent's DSN code, or the default of its class when it does not
 * fit the outcome ("2.0.0" for a bounce would make no sense). */
static const char *
dsn_for(enum qmgr_outcome outcome, const char *dsn)
{
	char want = outcome == OUTCOME_SENT ? '2' :
	    outcome == OUTCOME_BOUNCED ? '5' : '4';

	if (dsn != NULL && dsn[0] == want && dsn[1] == '.' &&
	    strlen(dsn) <= 16)
		return dsn;
	return want == '2' ? "2.0.0" : want == '5' ? "5.0.0" : "4.0.0";
}

void
qmgr_message_result(struct qmgr_message *msg, size_t i,
    enum qmgr_outcome outcome, const char *dsn, const char *reason,
    const char *relay, const double delays[4], int logged)
{
	struct qmgr_rcpt_state *rs = &msg->rs[i];
	char d_total[32], d[4][32], *err = NULL, *text, *orig = NULL;
	const char *status;
	size_t k;
	int r = 0;

	dsn = dsn_for(outcome, dsn);
	text = log_text(reason);
	switch (outcome) {
	case OUTCOME_SENT:
		/* Made durable before the file moves on (message_finish). */
		if ((r = queue_mark_write(msg->qm, i, RCPT_DONE, &err)) == 0)
			msg->unsynced = 1;
		status = "sent";
		break;
	case OUTCOME_BOUNCED:
		if ((r = queue_note(msg->qm, i, dsn, text, &err)) == 0)
			r = queue_mark(msg->qm, i, RCPT_FAILED, &err);
		status = "bounced";
		break;
	default:
		outcome = OUTCOME_DEFERRED;
		r = queue_note(msg->qm, i, dsn, text, &err);
		status = "deferred";
		break;
	}
	if (r < 0) {
		msg_warn("%s: cannot record the result for <%s>: %s; the "
		    "message stays queued", msg->id, rs->addr, err);
		free(err);
		msg->io_error = 1;
	} else if (outcome == OUTCOME_SENT)
		msg->qm->rcpts[i].status = RCPT_DONE;
	else if (outcome == OUTCOME_BOUNCED)
		msg->qm->rcpts[i].status = RCPT_FAILED;
	rs->outcome = outcome;
	free(rs->dsn);
	free(rs->reason);
	rs->dsn = xstrdup(dsn);
	rs->reason = xstrdup(text);
	if (logged) {
		free(text);
		return;
	}

	deliver_format_delay(d_total, sizeof(d_total),
	    deliver_now() - qmgr_message_arrival(msg));
	for (k = 0; k < 4; k++)
		deliver_format_delay(d[k], sizeof(d[k]), delays[k]);
	if (rs->orig != NULL)
		orig = xasprintf(", orig_to=<%s>", rs->orig);
	msg_info("%s: to=<%s>%s, relay=%s, delay=%s, delays=%s/%s/%s/%s, "
	    "dsn=%s, status=%s (%s)", msg->id, rs->addr, orig ? orig : "",
	    relay, d_total, d[0], d[1], d[2], d[3], dsn, status, text);
	free(orig);
	free(text);
}

/* For mail qmgr itself wrote from an alias expansion: the address the
 * sender used is kept as ORCPT "rfc822;xtext". */
static char *
orig_from_orcpt(const char *orcpt, const char *addr)
{
	char *dec;

	if (orcpt == NULL || strncasecmp(orcpt, "rfc822;", 7) != 0)
		return NULL;
	if ((dec = xtext_decode(orcpt + 7)) == NULL)
		return NULL;
	if (strcasecmp(dec, addr) == 0) {
		free(dec);
		return NULL;
	}
	return dec;
}

static void
group_add(struct group **gv, size_t *ng, const struct qmgr_route *r,
    size_t i)
{
	struct group *g;
	size_t k;

	for (k = 0; k < *ng; k++)
		if (strcmp((*gv)[k].transport, r->transport) == 0 &&
		    strcasecmp((*gv)[k].nexthop, r->nexthop) == 0 &&
		    (*gv)[k].fallback == r->fallback)
			break;
	if (k == *ng) {
		*gv = xreallocarray(*gv, *ng + 1, sizeof(**gv));
		g = &(*gv)[(*ng)++];
		g->transport = xstrdup(r->transport);
		g->nexthop = xstrdup(r->nexthop);
		g->fallback = r->fallback;
		g->idx = NULL;
		g->n = 0;
	}
	g = &(*gv)[k];
	g->idx = xreallocarray(g->idx, g->n + 1, sizeof(size_t));
	g->idx[g->n++] = i;
}

/* A recipient whose virtual alias gave several addresses. */
struct explode {
	size_t	 i;
	struct qmgr_routes routes;
};

/*
 * Write the recipients in x[0..nx) (each with its expansion) to a new
 * queue file with the same sender, attributes and content. 0 and the
 * new ID, or -1 with *err.
 */
static int
explode_write(struct qmgr_message *msg, struct explode *x, size_t nx,
    char **new_id, char **err)
{
	struct queue_msg *qm = msg->qm;
	struct queue_writer *w;
	char *buf, *orcpt, *enc;
	size_t k, j, off;
	ssize_t got;

	if ((w = queue_create(qmgr.queue_dir, QUEUE_INCOMING, err)) == NULL)
		return -1;
	queue_set_sender(w, qm->sender);
	for (k = 0; k < qm->nattrs; k++)
		if (strcmp(qm->attrs[k].name, QMGR_ATTR_EXPANDED_FROM) != 0)
			queue_set_attr(w, qm->attrs[k].name,
			    qm->attrs[k].value);
	queue_set_attr(w, QMGR_ATTR_EXPANDED_FROM, msg->id);
	for (k = 0; k < nx; k++) {
		const struct queue_rcpt *rc = &qm->rcpts[x[k].i];

		if (rc->orcpt != NULL)
			orcpt = xstrdup(rc->orcpt);
		else {
			enc = xtext_encode(rc->addr);
			orcpt = xasprintf("rfc822;%s", enc);
			free(enc);
		}
		for (j = 0; j < x[k].routes.n; j++)
			queue_add_rcpt(w, x[k].routes.v[j].addr, orcpt,
			    rc->notify);
		free(orcpt);
	}
	buf = xmalloc(COPY_CHUNK);
	for (off = 0; off < qm->content_len; off += (size_t)got) {
		got = queue_read_content(qm, (off_t)off, buf, COPY_CHUNK);
		if (got <= 0) {
			*err = xasprintf("read %s: %s", msg->id,
			    got < 0 ? strerror(errno) : "short file");
			free(buf);
			queue_abort(w);
			return -1;
		}
		if (queue_write(w, buf, (size_t)got, err) < 0) {
			free(buf);
			queue_abort(w);
			return -1;
		}
	}
	free(buf);
	*new_id = xstrdup(queue_writer_id(w));
	if (queue_commit(w, err) < 0) {
		free(*new_id);
		*new_id = NULL;
		return -1;
	}
	return 0;
}

static void
explode(struct qmgr_message *msg, struct explode *x, size_t nx)
{
	double delays[4] = { 0, 0, 0, 0 }, now = deliver_now();
	char *new_id = NULL, *err = NULL, *why, dt[32], da[32];
	size_t k;

	delays[0] = msg->active_time - qmgr_message_arrival(msg);
	delays[1] = now - msg->active_time;
	if (explode_write(msg, x, nx, &new_id, &err) < 0) {
		why = xasprintf("cannot queue the virtual alias expansion: %s",
		    err);
		msg_warn("%s: %s", msg->id, why);
		for (k = 0; k < nx; k++) {
			size_t i = x[k].i;

			msg->rs[i].addr = xstrdup(msg->qm->rcpts[i].addr);
			qmgr_message_result(msg, x[k].i, OUTCOME_DEFERRED,
			    "4.3.0", why, "none", delays, 0);
		}
		free(why);
		free(err);
		return;
	}
	deliver_format_delay(dt, sizeof(dt), now - qmgr_message_arrival(msg));
	deliver_format_delay(da, sizeof(da), delays[0]);
	for (k = 0; k < nx; k++) {
		struct qmgr_rcpt_state *rs = &msg->rs[x[k].i];

		rs->addr = xstrdup(msg->qm->rcpts[x[k].i].addr);
		if (queue_mark(msg->qm, x[k].i, RCPT_DONE, &err) < 0) {
			/* The expansion is queued; this one may be done
			 * twice if we crash now. */
			msg_warn("%s: cannot record the expansion of <%s>: "
			    "%s", msg->id, rs->addr, err);
			free(err);
			err = NULL;
			msg->io_error = 1;
		} else
			msg->qm->rcpts[x[k].i].status = RCPT_DONE;
		msg_info("%s: to=<%s>, relay=none, delay=%s, delays=%s/0/0/0, "
		    "dsn=2.0.0, status=expanded (virtual alias: %zu "
		    "recipients queued as %s)", msg->id, rs->addr, dt, da,
		    x[k].routes.n, new_id);
	}
	qmgr_scan_soon(1, 0);
	free(new_id);
}

static void
message_free(struct qmgr_message *msg)
{
	size_t i;

	if (msg->prev != NULL)
		msg->prev->next = msg->next;
	else if (qmgr.msgs == msg)
		qmgr.msgs = msg->next;
	if (msg->next != NULL)
		msg->next->prev = msg->prev;
	if (msg->qm != NULL) {
		for (i = 0; i < msg->qm->nrcpts; i++) {
			free(msg->rs[i].addr);
			free(msg->rs[i].orig);
			free(msg->rs[i].dsn);
			free(msg->rs[i].reason);
		}
		queue_close(msg->qm);
	}
	free(msg->rs);
	free(msg->id);
	free(msg);
}

/*
 * Once delay_warning_time has passed, tell the sender (once) which
 * recipients are still waiting, unless they asked for no such notice
 * (NOTIFY without DELAY, or NEVER). The queue file's owner-execute bit
 * records that the warning went out: the file format has no record to
 * update in place, and a mode bit survives moves between folders and
 * restarts. Losing it would only repeat a warning.
 */
static void
delay_warning(struct qmgr_message *msg, double age)
{
	struct queue_msg *qm = msg->qm;
	struct qmgr_dsn_rcpt *dr;
	struct stat st;
	char *new_id = NULL, *err = NULL;
	size_t i, nd;

	if (qmgr.delay_warning == 0 || age < (double)qmgr.delay_warning ||
	    qm->sender[0] == '\0')
		return;
	if (fstat(qm->fd, &st) < 0 || (st.st_mode & S_IXUSR) != 0)
		return;
	dr = xcalloc(qm->nrcpts, sizeof(*dr));
	for (i = nd = 0; i < qm->nrcpts; i++) {
		const struct queue_rcpt *rc = &qm->rcpts[i];
		const struct qmgr_rcpt_state *rs = &msg->rs[i];
		const char *dsn;

		if (rc->status != RCPT_TODO || (rc->notify & NOTIFY_NEVER) ||
		    (rc->notify != 0 && !(rc->notify & NOTIFY_DELAY)))
			continue;
		dsn = rs->dsn ? rs->dsn : rc->dsn;
		dr[nd].addr = rs->addr ? rs->addr : rc->addr;
		dr[nd].orcpt = rc->orcpt;
		dr[nd].dsn = dsn != NULL && dsn[0] == '4' ? dsn : "4.0.0";
		dr[nd].reason = rs->reason ? rs->reason : rc->reason ?
		    rc->reason : "delivery has not been attempted yet";
		nd++;
	}
	if (nd > 0) {
		if (qmgr_delay_write(qmgr.queue_dir, qm, dr, nd,
		    qm->arrival.tv_sec + (time_t)qmgr.max_lifetime, &new_id,
		    &err) < 0) {
			msg_warn("%s: cannot queue the delay notification: %s; "
			    "will try again", msg->id, err);
			free(err);
		} else {
			msg_info("%s: sender delay notification: %s", msg->id,
			    new_id);
			free(new_id);
			if (fchmod(qm->fd, (st.st_mode & 07777) | S_IXUSR) < 0)
				msg_warn("%s: cannot record that the delay "
				    "notification was sent: %m", msg->id);
			qmgr_scan_soon(1, 0);
		}
	}
	free(dr);
}

/*
 * The end of a message an operator deleted or put on hold while qmgr had
 * it (qmgr_message_cancel). Nothing of the usual end happens: no expiry,
 * no report, no retry time. The file is removed, or moved to hold/ with
 * its recipients' marks as they are, so that a release goes on where it
 * stopped (a failure report still owed goes out then). A hold that finds
 * nothing left to deliver ends as usual instead: 0 then, else 1 and msg
 * is freed.
 */
static int
message_cancelled(struct qmgr_message *msg)
{
	char *err = NULL;

	if (msg->cancel == QMGR_CANCEL_NONE ||
	    (msg->cancel == QMGR_CANCEL_HOLD &&
	    queue_count(msg->qm, RCPT_TODO) == 0))
		return 0;
	if (msg->cancel == QMGR_CANCEL_DELETE) {
		if (unlink(msg->qm->path) < 0 && errno != ENOENT)
			msg_warn("%s: remove %s: %m; it stays in active/ until "
			    "qmgr restarts", msg->id, msg->qm->path);
		else
			msg_info("%s: removed", msg->id);
	} else if (queue_move(qmgr.queue_dir, msg->id, QUEUE_ACTIVE,
	    QUEUE_HOLD, &err) < 0) {
		msg_warn("%s: cannot move to hold/: %s; it stays in active/ "
		    "until qmgr restarts", msg->id, err);
		free(err);
	} else
		msg_info("%s: placed on hold", msg->id);
	message_free(msg);
	qmgr.nactive--;
	qmgr_scan_soon(qmgr.backlog_incoming, qmgr.backlog_deferred);
	return 1;
}

/* Every delivery has ended: expire what is too old, report failures,
 * then remove the file or defer it. Frees msg. */
static void
message_finish(struct qmgr_message *msg)
{
	struct queue_msg *qm = msg->qm;
	struct qmgr_dsn_rcpt *dr;
	struct timespec ts[2];
	double now = deliver_now(), age = now - qmgr_message_arrival(msg);
	int null_sender = qm->sender[0] == '\0', bounce_failed = 0;
	char *err = NULL, *new_id = NULL, *why;
	unsigned long delay;
	size_t i, nd;

	msg->finishing = 1;
	/* Marks first: on disk before the file is removed or moved. */
	if (msg->unsynced) {
		msg->unsynced = 0;
		if (qmgr_sync_submit(msg) == 0)
			return;		/* back in qmgr_message_synced() */
		if (fdatasync(qm->fd) < 0) {
			msg_warn("%s: cannot record the results: fdatasync "
			    "%s: %m; the message stays queued", msg->id,
			    qm->path);
			msg->io_error = 1;
		}
	}
	if (message_cancelled(msg))
		return;

	/* Too old: what is still to deliver fails now. */
	if (!msg->io_error && queue_count(qm, RCPT_TODO) > 0 &&
	    qmgr_expired(age, null_sender, qmgr.max_lifetime,
	    qmgr.bounce_lifetime)) {
		msg_info("%s: from=<%s>, status=expired, %s", msg->id,
		    qm->sender, null_sender ? "discarded" :
		    "returned to sender");
		for (i = 0; i < qm->nrcpts; i++) {
			struct qmgr_rcpt_state *rs = &msg->rs[i];
			const char *last;

			if (qm->rcpts[i].status != RCPT_TODO)
				continue;
			last = rs->reason ? rs->reason : qm->rcpts[i].reason ?
			    qm->rcpts[i].reason : "delivery was not attempted";
			why = xasprintf("message expired: %s", last);
			if (queue_note(qm, i, "5.4.7", why, &err) < 0 ||
			    queue_mark(qm, i, RCPT_FAILED, &err) < 0) {
				msg_warn("%s: cannot record expiry: %s",
				    msg->id, err);
				free(err);
				err = NULL;
				msg->io_error = 1;
				free(why);
				break;
			}
			qm->rcpts[i].status = RCPT_FAILED;
			free(rs->dsn);
			free(rs->reason);
			rs->dsn = xstrdup("5.4.7");
			rs->reason = why;
		}
	}

	/* Failed recipients: report to the sender, then they are done. */
	if (!msg->io_error && queue_count(qm, RCPT_FAILED) > 0) {
		dr = xcalloc(qm->nrcpts, sizeof(*dr));
		for (i = nd = 0; i < qm->nrcpts; i++) {
			const struct queue_rcpt *rc = &qm->rcpts[i];
			const struct qmgr_rcpt_state *rs = &msg->rs[i];

			if (rc->status != RCPT_FAILED ||
			    !qmgr_dsn_wanted(rc->notify))
				continue;
			dr[nd].addr = rs->addr ? rs->addr : rc->addr;
			dr[nd].orcpt = rc->orcpt;
			dr[nd].dsn = rs->dsn ? rs->dsn : rc->dsn ? rc->dsn :
			    "5.0.0";
			dr[nd].reason = rs->reason ? rs->reason : rc->reason ?
			    rc->reason : "delivery failed";
			nd++;
		}
		if (null_sender)
			msg_info("%s: undeliverable mail from the null sender "
			    "is not returned", msg->id);
		else if (nd == 0)
			msg_info("%s: no non-delivery notification: the "
			    "recipients asked for none (NOTIFY)", msg->id);
		else if (qmgr_bounce_write(qmgr.queue_dir, qm, dr, nd,
		    &new_id, &err) < 0) {
			msg_warn("%s: cannot queue the non-delivery "
			    "notification: %s; will try again", msg->id, err);
			free(err);
			err = NULL;
			bounce_failed = 1;
		} else {
			msg_info("%s: sender non-delivery notification: %s",
			    msg->id, new_id);
			free(new_id);
			qmgr_scan_soon(1, 0);
		}
		free(dr);
		for (i = 0; !bounce_failed && i < qm->nrcpts; i++) {
			if (qm->rcpts[i].status != RCPT_FAILED)
				continue;
			if (queue_mark(qm, i, RCPT_DONE, &err) < 0) {
				msg_warn("%s: cannot mark <%s> done: %s",
				    msg->id, qm->rcpts[i].addr, err);
				free(err);
				err = NULL;
				msg->io_error = 1;
				break;
			}
			qm->rcpts[i].status = RCPT_DONE;
		}
	}

	if (!msg->io_error && !bounce_failed &&
	    queue_count(qm, RCPT_TODO) > 0)
		delay_warning(msg, age);

	if (!msg->io_error && !bounce_failed &&
	    queue_count(qm, RCPT_TODO) == 0 &&
	    queue_count(qm, RCPT_FAILED) == 0) {
		if (unlink(qm->path) < 0 && errno != ENOENT)
			msg_warn("%s: remove %s: %m", msg->id, qm->path);
		else
			msg_info("%s: removed", msg->id);
	} else {
		/* A report or a result still to be written: soon. */
		if (msg->io_error || bounce_failed)
			delay = qmgr.min_backoff;
		else
			delay = qmgr_backoff(age, qmgr.min_backoff,
			    qmgr.max_backoff);
		ts[0].tv_sec = (time_t)now;
		ts[0].tv_nsec = 0;
		/* Rounded up to the next second: never due before a
		 * destination suspended at the same moment for the same
		 * backoff is alive again. */
		ts[1].tv_sec = (time_t)now + (now > (double)(time_t)now) +
		    (time_t)delay;
		ts[1].tv_nsec = 0;
		if (futimens(qm->fd, ts) < 0)
			msg_warn("%s: set next-try time: %m", msg->id);
		if (queue_move(qmgr.queue_dir, msg->id, QUEUE_ACTIVE,
		    QUEUE_DEFERRED, &err) < 0) {
			msg_warn("%s: cannot move to deferred/: %s; it stays "
			    "in active/ until qmgr restarts", msg->id, err);
			free(err);
		}
	}
	message_free(msg);
	qmgr.nactive--;
	qmgr_scan_soon(qmgr.backlog_incoming, qmgr.backlog_deferred);
}

void
qmgr_message_synced(struct qmgr_message *msg, int err)
{
	if (err != 0) {
		msg_warn("%s: cannot record the results: fdatasync %s: %s; "
		    "the message stays queued", msg->id, msg->qm->path,
		    strerror(err));
		msg->io_error = 1;
	}
	message_finish(msg);
}

void
qmgr_message_shutdown(void)
{
	/* Files stay where they are: active/ is taken up at next start. */
	while (qmgr.msgs != NULL)
		message_free(qmgr.msgs);
	qmgr.nactive = 0;
}

void
qmgr_message_job_done(struct qmgr_message *msg)
{
	if (msg->jobs > 0)
		msg->jobs--;
	/* A delivery that could not get through may just have queued the
	 * rest for a fallback relay: not for a cancelled message. */
	if (msg->cancel != QMGR_CANCEL_NONE)
		(void)qmgr_deliver_cancel(msg);
	if (msg->jobs == 0 && !msg->finishing)
		message_finish(msg);
}

/*
 * Races (ternsuper's side is in tools/ternsuper.c): messages live in
 * qmgr's one event loop (qmgr_sync.c's thread only fdatasyncs their
 * files), and a file enters active/ and memory in the same turn of the
 * loop (qmgr_scan.c take()), and leaves both in the same turn
 * (message_finish, which a message waiting for its sync has not reached
 * yet: it is still in memory, "finishing"), so a request sees a message
 * in memory exactly when qmgr will still act on its file. Deliveries in flight hold the file
 * open and finish; their results go into it, which for a hold is the
 * file in hold/ that a release will pick up.
 */
long
qmgr_message_cancel(const char *id, int how)
{
	struct qmgr_message *msg;
	size_t dropped;

	for (msg = qmgr.msgs; msg != NULL; msg = msg->next)
		if (strcmp(msg->id, id) == 0)
			break;
	if (msg == NULL)
		return -1;
	if (how > msg->cancel)		/* a delete wins over a hold */
		msg->cancel = how;
	dropped = qmgr_deliver_cancel(msg);
	if (msg->finishing)		/* on its way out already */
		return 1;
	if (msg->jobs == 0) {
		message_finish(msg);	/* frees msg */
		return 0;
	}
	msg_info("%s: %s requested: %zu waiting deliver%s dropped; %zu in "
	    "progress must end first", msg->id,
	    msg->cancel == QMGR_CANCEL_DELETE ?
	    "delete" : "hold", dropped, dropped == 1 ? "y" : "ies",
	    msg->jobs);
	return (long)msg->jobs;
}

void
qmgr_message_activate(const char *id)
{
	struct qmgr_message *msg;
	struct queue_msg *qm;
	struct qmgr_routes routes;
	struct group *groups = NULL;
	struct explode *x = NULL;
	double delays[4] = { 0, 0, 0, 0 };
	char *path, *err = NULL;
	size_t i, k, ngroups = 0, nx = 0;
	int corrupt = 0, expanded;

	path = queue_path(qmgr.queue_dir, QUEUE_ACTIVE, id);
	if (queue_open(path, 1, &qm, &corrupt, &err) < 0) {
		free(path);
		if (corrupt) {
			char *merr = NULL;

			if (queue_move(qmgr.queue_dir, id, QUEUE_ACTIVE,
			    QUEUE_CORRUPT, &merr) < 0) {
				msg_warn("corrupt queue file %s (%s) cannot "
				    "be moved to corrupt/: %s", id, err, merr);
				free(merr);
			} else
				msg_warn("corrupt queue file %s moved to "
				    "corrupt/: %s", id, err);
		} else {
			/* Gone (ternsuper -d), or unreadable: not ours to
			 * judge; leave it for an operator. */
			msg_warn("%s: cannot open queue file: %s", id, err);
		}
		free(err);
		return;
	}
	free(path);

	msg = xcalloc(1, sizeof(*msg));
	msg->id = xstrdup(id);
	msg->qm = qm;
	msg->active_time = deliver_now();
	msg->rs = xcalloc(qm->nrcpts ? qm->nrcpts : 1, sizeof(*msg->rs));
	msg->finishing = 1;	/* until every delivery is queued */
	msg->next = qmgr.msgs;
	if (qmgr.msgs != NULL)
		qmgr.msgs->prev = msg;
	qmgr.msgs = msg;
	qmgr.nactive++;

	msg_info("%s: from=<%s>, size=%zu, nrcpt=%zu (queue active)", id,
	    qm->sender, qm->content_len, qm->nrcpts);
	delays[0] = msg->active_time - qmgr_message_arrival(msg);
	expanded = queue_msg_attr(qm, QMGR_ATTR_EXPANDED_FROM) != NULL;

	for (i = 0; i < qm->nrcpts; i++) {
		struct qmgr_rcpt_state *rs = &msg->rs[i];
		struct qmgr_route *r;

		if (qm->rcpts[i].status != RCPT_TODO)
			continue;
		qmgr_resolve(qm->rcpts[i].addr, qm->sender, !expanded,
		    &routes);
		if (routes.n > 1) {
			x = xreallocarray(x, nx + 1, sizeof(*x));
			x[nx].i = i;
			x[nx++].routes = routes;
			continue;
		}
		r = &routes.v[0];
		rs->addr = xstrdup(r->addr);
		if (routes.rewritten)
			rs->orig = xstrdup(qm->rcpts[i].addr);
		else if (expanded)
			rs->orig = orig_from_orcpt(qm->rcpts[i].orcpt,
			    r->addr);
		switch (r->status) {
		case ROUTE_DELIVER:
			group_add(&groups, &ngroups, r, i);
			break;
		case ROUTE_DISCARD:
			qmgr_message_result(msg, i, OUTCOME_SENT, r->dsn,
			    r->reason, "none", delays, 0);
			break;
		case ROUTE_DEFER:
			qmgr_message_result(msg, i, OUTCOME_DEFERRED, r->dsn,
			    r->reason, "none", delays, 0);
			break;
		case ROUTE_BOUNCE:
			qmgr_message_result(msg, i, OUTCOME_BOUNCED, r->dsn,
			    r->reason, "none", delays, 0);
			break;
		}
		qmgr_routes_free(&routes);
	}
	if (nx > 0) {
		explode(msg, x, nx);
		for (k = 0; k < nx; k++)
			qmgr_routes_free(&x[k].routes);
		free(x);
	}
	for (k = 0; k < ngroups; k++) {
		qmgr_deliver_queue(msg, groups[k].transport,
		    groups[k].nexthop, groups[k].fallback, groups[k].idx,
		    groups[k].n);
		free(groups[k].transport);
		free(groups[k].nexthop);
	}
	free(groups);

	msg->finishing = 0;
	if (msg->jobs == 0)
		message_finish(msg);
	else
		qmgr_deliver_schedule();	/* may finish msg: last use */
}
