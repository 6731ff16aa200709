/*
 * qmgr_deliver - hands deliveries to delivery agents without ever
 * waiting for one, in the order and within the limits qmgr_sched.c
 * decides.
 *
 * qmgr_message.c queues one group per (transport, nexthop) of a
 * message's recipients ("local", "example.com"; "smtp", "b.test"). A
 * transport is what master.cf runs for it: the unix service of the
 * same name, private/<transport> (a "relay" transport without a relay
 * service is served by smtp, as Postfix's stock master.cf has relay
 * run smtp); it runs at most that service's process limit (maxproc;
 * "-" is default_process_limit) deliveries at once, and each
 * destination at most its slow-start window (qmgr_sched.c).
 *
 * A running job is a connection to the agent's socket speaking
 * deliver.h: the request is written at once (it is small), then the
 * socket is watched by the event loop and the reply read as it
 * arrives, never blocking qmgr. Each recipient's result goes to
 * qmgr_message_result(). The reply also tells how the destination is
 * doing: a request whose every recipient was deferred with a 4.4.x
 * status (could not connect, DNS failure) counts against the
 * destination, anything else for it. A destination that has failed a
 * whole pseudo-cohort is dead for minimal_backoff_time: its waiting and
 * new mail is deferred "delivery temporarily suspended: <reason>"
 * without connecting; a flush revives it at once. Mail routed by its
 * recipient domain that cannot reach it goes to the fallback_relay
 * hosts in turn before it is deferred.
 *
 * Connection reuse: after a reply, the connection to the agent is kept
 * for qmgr_agent_idle_time_limit and carries the same destination's
 * next request, so the agent process that has a session open there
 * (smtp_cache.c) gets it and skips DNS, connect, EHLO and TLS. A kept
 * connection counts as one of the destination's deliveries and one of
 * the transport's processes (qmgr_sched.c), so the number of sessions
 * open at a destination stays within its window; when other mail
 * waits only for a process, the oldest kept connection is closed to
 * free one. A kept connection the agent closed (its own timeout, its
 * max_use, a crash) is dropped when seen; one that turns out dead only
 * when the request is sent or by an end without a single reply byte is
 * replaced by a new connection, once.
 *
 * How it fails: an agent that cannot be reached, closes the connection,
 * sends garbage or does not answer within daemon_timeout gets every
 * recipient of the request deferred with a 4.3.0 reason naming the
 * transport (that is the agent's trouble, not the destination's, and
 * does not count against it); the message is retried later like any
 * deferral, so a crash of an agent repeats at most the deliveries it was
 * doing.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "attr.h"
#include "config.h"
#include "deliver.h"
#include "event.h"
#include "log.h"
#include "mastercf.h"
#include "num.h"
#include "qmgr.h"
#include "queue.h"
#include "stream.h"
#include "strv.h"

/* Longest reply line and most reply lines beyond one per recipient. */
#define REPLY_LINE_MAX	(64 * 1024)
#define REPLY_EXTRA	16
/* Time to connect to an agent's socket and to write a request. */
#define AGENT_CONNECT_MS	5000
#define AGENT_WRITE_MS		10000
/* Longest wait for an agent to close a connection we let go. */
#define AGENT_CLOSE_MS		10000
/* Most recipients in one batch of requests on a connection (what qmgr
 * writes at once, before the agent reads any of it). */
#define BATCH_RCPTS_MAX		1000
/* Highest <transport>_delivery_batch_limit taken. */
#define BATCH_LIMIT_MAX		1000

static struct qmgr_transport *transports;
static void job_connect(struct qmgr_job *);
static void job_readable(int, int, void *);
static void job_timeout(void *);
static void job_agent_failed(struct qmgr_job *, const char *);
static struct qmgr_job *running;
static size_t npending;
static char **fallback_relays;

/*
 * "<transport>_<suffix>" when the parameter exists (in the table, or
 * set in main.cf for a transport the table does not know), else
 * "default_<suffix>".
 */
static long
transport_param(const char *transport, const char *suffix)
{
	char *name = xasprintf("%s_%s", transport, suffix), *text = NULL;
	char *err;
	unsigned long v;
	long r;

	if (param_find(name) != NULL) {
		r = config_int(name);
		free(name);
		return r;
	}
	if (config_raw(name) != NULL) {
		err = NULL;
		if (config_expand(config_raw(name), &text, &err) == 0 &&
		    parse_ulong(text, 1, 1000000, &v) == 0) {
			free(text);
			free(name);
			return (long)v;
		}
		msg_warn("%s: not a number from 1 to 1000000; using "
		    "default_%s", name, suffix);
		if (err == NULL)
			free(text);
		free(err);
	}
	free(name);
	name = xasprintf("default_%s", suffix);
	r = config_int(name);
	free(name);
	return r;
}

/*
 * The master.cf service that runs a transport and its process limit:
 * the unix service of the same name; for "relay" without one, smtp.
 */
static char *
transport_service(const char *transport, int *limit)
{
	struct master_service *sv;
	size_t n = 0, i;
	char *path, *err = NULL, *service = NULL;
	int found = -1, smtp = -1;

	*limit = -1;
	path = xasprintf("%s/master.cf", config_dir());
	if ((sv = mastercf_load(path, &n, &err)) == NULL) {
		msg_warn("%s; using default_process_limit for transport %s",
		    err, transport);
		free(err);
	} else {
		for (i = 0; i < n; i++) {
			if (sv[i].type != SERVICE_UNIX)
				continue;
			if (strcmp(sv[i].name, transport) == 0)
				found = (int)i;
			else if (strcmp(sv[i].name, "smtp") == 0)
				smtp = (int)i;
		}
		if (found < 0 && strcmp(transport, "relay") == 0)
			found = smtp;
		if (found >= 0) {
			service = xstrdup(sv[found].name);
			*limit = sv[found].maxproc;
		}
		mastercf_free(sv, n);
	}
	free(path);
	if (*limit <= 0)		/* "-", 0 (no limit) or not found */
		*limit = (int)config_int("default_process_limit");
	return service != NULL ? service : xstrdup(transport);
}

static struct qmgr_transport *
transport_get(const char *name)
{
	struct qmgr_transport *tp, **pp;
	char *service;
	int limit;

	for (pp = &transports; (tp = *pp) != NULL; pp = &tp->next)
		if (strcmp(tp->name, name) == 0)
			return tp;
	service = transport_service(name, &limit);
	tp = qmgr_transport_new(name, service,
	    (int)transport_param(name, "destination_concurrency_limit"),
	    (int)config_int("initial_destination_concurrency"), limit,
	    (int)transport_param(name,
	    "destination_concurrency_failed_cohort_limit"),
	    (size_t)transport_param(name, "destination_recipient_limit"));
	tp->batch_limit = (size_t)transport_param(name, "delivery_batch_limit");
	if (tp->batch_limit > BATCH_LIMIT_MAX)
		tp->batch_limit = BATCH_LIMIT_MAX;
	free(service);
	*pp = tp;
	return tp;
}

void
qmgr_deliver_queue(struct qmgr_message *msg, const char *transport,
    const char *nexthop, int fallback, size_t *idx, size_t n)
{
	struct qmgr_transport *tp = transport_get(transport);
	size_t i;

	if (tp->rcpt_limit == 1) {
		/* One recipient per delivery: a destination per recipient,
		 * as Postfix's <transport>_destination_recipient_limit = 1
		 * makes the concurrency limit one per recipient. */
		for (i = 0; i < n; i++)
			npending += qmgr_dest_enqueue(qmgr_dest_for(tp, nexthop,
			    msg->rs[idx[i]].addr), msg, &idx[i], 1,
			    fallback ? 0 : -1);
	} else
		npending += qmgr_dest_enqueue(qmgr_dest_get(tp, nexthop), msg,
		    idx, n, fallback ? 0 : -1);
	free(idx);
}

int
qmgr_deliver_running(void)
{
	return running != NULL;
}

size_t
qmgr_deliver_pending(void)
{
	return npending;
}

/* delays=a/b/c/d of a job: before active/, waiting there, reaching the
 * agent, the agent's own time. */
static void
job_delays(const struct qmgr_job *job, double delays[4])
{
	const struct qmgr_message *msg = job->msg;
	double now = deliver_now();

	delays[0] = msg->active_time - (double)msg->qm->arrival.tv_sec -
	    (double)msg->qm->arrival.tv_nsec / 1e9;
	if (job->t_start == 0) {		/* never started */
		delays[1] = now - msg->active_time;
		delays[2] = delays[3] = 0;
		return;
	}
	delays[1] = job->t_start - msg->active_time;
	delays[2] = job->t_conn > 0 ? job->t_conn - job->t_start :
	    now - job->t_start;
	delays[3] = job->t_conn > 0 ? now - job->t_conn : 0;
}

/* 1 when the job's mail may go to a fallback relay if its destination
 * cannot be reached (job_fall_back would take it). */
static int
job_may_fall_back(const struct qmgr_job *job)
{
	if (fallback_relays == NULL)
		fallback_relays = config_list("fallback_relay");
	return job->fallback >= 0 &&
	    (size_t)job->fallback < strv_len(fallback_relays);
}

/*
 * Give the job's recipients to the next fallback_relay host instead of
 * deferring them, when their route allows it and one is left. 1 when
 * they were queued there.
 */
static int
job_fall_back(struct qmgr_job *job)
{
	struct qmgr_dest *d;
	size_t k;

	if (!job_may_fall_back(job))
		return 0;
	k = (size_t)job->fallback;
	d = qmgr_dest_get(job->dest->tp, fallback_relays[k]);
	npending += qmgr_dest_enqueue(d, job->msg, job->idx, job->n,
	    (int)k + 1);
	return 1;
}

/*
 * How long the reply to job may take: daemon_timeout for each request
 * from it to the end of its batch, since an agent that finishes a batch
 * together (local) answers none of it before it has done them all.
 */
static long
job_timeout_ms(const struct qmgr_job *job)
{
	long n = 0;

	for (; job != NULL; job = job->batch)
		n++;
	return (long)qmgr.delivery_timeout * 1000 * n;
}

/* ---- kept agent connections ---- */

/* Take ag off its destination's kept (closing: let-go) list and free
 * it; its stream stays. */
static struct stream *
agent_unlink_from(struct qmgr_agent *ag, int closing)
{
	struct qmgr_dest *d = ag->dest;
	struct qmgr_agent **pp;
	struct stream *s = ag->s;

	for (pp = closing ? &d->closing : &d->idle; *pp != ag;
	    pp = &(*pp)->next)
		;
	*pp = ag->next;
	if (closing) {
		d->nclosing--;
		d->tp->nclosing--;
	} else {
		d->nidle--;
		d->tp->nidle--;
	}
	if (qmgr.loop != NULL) {
		event_fd_del(qmgr.loop, s->fd);
		if (ag->timer != 0)
			event_timer_cancel(qmgr.loop, ag->timer);
	}
	free(ag);
	return s;
}

static struct stream *
agent_unlink(struct qmgr_agent *ag)
{
	return agent_unlink_from(ag, 0);
}

/* The agent has closed a connection we let go: its process and its
 * session at the destination are gone, so its slot is free. */
static void
closing_done(struct qmgr_agent *ag)
{
	struct qmgr_dest *d = ag->dest;

	stream_free(agent_unlink_from(ag, 1));
	(void)qmgr_dest_release(d);
	qmgr_deliver_schedule();
}

static void
closing_readable(int fd, int events, void *ctx)
{
	char junk[512];
	ssize_t n;

	(void)events;
	n = read(fd, junk, sizeof(junk));
	if (n > 0 || (n < 0 && (errno == EINTR || errno == EAGAIN ||
	    errno == EWOULDBLOCK)))
		return;			/* not the end yet */
	closing_done(ctx);
}

static void
closing_timeout(void *ctx)
{
	struct qmgr_agent *ag = ctx;

	ag->timer = 0;
	closing_done(ag);
}

/*
 * Let an agent connection go. It still counts against its destination
 * until the agent closes its end: an smtp process ends its session
 * with QUIT only when it sees ours, and a new session started meanwhile
 * would put the destination over its window, counted at the receiving
 * end. An agent that does not close within AGENT_CLOSE_MS is not
 * waited for longer.
 */
static void
agent_let_go(struct qmgr_dest *d, struct stream *s)
{
	struct qmgr_agent *ag;

	(void)shutdown(s->fd, SHUT_WR);
	if (qmgr.loop == NULL) {
		stream_free(s);
		return;
	}
	ag = xcalloc(1, sizeof(*ag));
	ag->dest = d;
	ag->s = s;
	if (event_fd_add(qmgr.loop, s->fd, EVENT_READ, closing_readable,
	    ag) < 0) {
		stream_free(s);
		free(ag);
		return;
	}
	ag->timer = event_timer_add(qmgr.loop, AGENT_CLOSE_MS,
	    closing_timeout, ag);
	ag->next = d->closing;
	d->closing = ag;
	d->nclosing++;
	d->tp->nclosing++;
}

/* Let a kept connection go: its agent process is free for other work
 * once it has closed. */
static void
agent_drop(struct qmgr_agent *ag)
{
	struct qmgr_dest *d = ag->dest;

	agent_let_go(d, agent_unlink(ag));
}

static void
agent_expired(void *ctx)
{
	struct qmgr_agent *ag = ctx;

	ag->timer = 0;
	agent_drop(ag);
}

/* A kept connection has nothing to say: anything readable is its end
 * (the agent's own timeout, max_use, a crash) or garbage. */
static void
agent_hangup(int fd, int events, void *ctx)
{
	struct qmgr_agent *ag = ctx;
	struct qmgr_dest *d = ag->dest;

	(void)fd;
	(void)events;
	stream_free(agent_unlink(ag));
	(void)qmgr_dest_release(d);
	qmgr_deliver_schedule();
}

/* Keep the connection of a request that ended cleanly for the
 * destination's next request; 0 when it may not be kept. */
static int
agent_keep(struct qmgr_dest *d, struct stream *s)
{
	struct qmgr_agent *ag;

	if (qmgr.agent_idle_ms == 0 || qmgr.stopping || qmgr.loop == NULL ||
	    s->in.len > 0 || !qmgr_sched_may_keep(d))
		return 0;
	ag = xcalloc(1, sizeof(*ag));
	ag->dest = d;
	ag->s = s;
	if (event_fd_add(qmgr.loop, s->fd, EVENT_READ, agent_hangup,
	    ag) < 0) {
		free(ag);
		return 0;
	}
	ag->timer = event_timer_add(qmgr.loop, (long)qmgr.agent_idle_ms,
	    agent_expired, ag);
	ag->next = d->idle;
	d->idle = ag;
	d->nidle++;
	d->tp->nidle++;
	return 1;
}

/* Close every kept connection of d (it died: none of them is wanted). */
static void
agent_drop_all(struct qmgr_dest *d)
{
	while (d->idle != NULL)
		agent_drop(d->idle);
}

/* Close the oldest kept connection of the transport's first
 * destination that has one, to free a process for other mail. */
static void
agent_evict(struct qmgr_transport *tp)
{
	struct qmgr_dest *d;
	struct qmgr_agent *ag;

	for (d = tp->dests; d != NULL && d->idle == NULL; d = d->next)
		;
	if (d == NULL)
		return;
	for (ag = d->idle; ag->next != NULL; ag = ag->next)
		;
	agent_drop(ag);
}

/* Defer every recipient of the job that has no result yet. */
static void
job_defer(struct qmgr_job *job, const char *dsn, const char *why,
    const char *relay)
{
	double delays[4];
	size_t i;

	job_delays(job, delays);
	for (i = 0; i < job->n; i++)
		if (job->idx[i] != (size_t)-1)
			qmgr_message_result(job->msg, job->idx[i],
			    OUTCOME_DEFERRED, dsn, why, relay, delays, 0);
}

/*
 * The job's reply is in and a request was sent behind it: that one is
 * answered next, and takes over the connection, the slot and the
 * job's place among running jobs. Returns it; *why is set (and it must
 * be failed) when its connection cannot be watched.
 */
static struct qmgr_job *
job_hand_over(struct qmgr_job *job, char **why)
{
	struct qmgr_job *next = job->batch;

	job->batch = NULL;
	next->rprev = job->rprev;
	next->rnext = job->rnext;
	if (next->rprev != NULL)
		next->rprev->rnext = next;
	else
		running = next;
	if (next->rnext != NULL)
		next->rnext->rprev = next;
	next->s = job->s;
	job->s = NULL;
	/* An agent may end a connection after any reply, as on a kept
	 * one: then next goes again on a new connection. */
	next->reused = 1;
	if (event_fd_add(qmgr.loop, next->s->fd, EVENT_READ, job_readable,
	    next) < 0)
		*why = xasprintf("delivery agent %s failed: event loop: %m",
		    next->dest->tp->name);
	else
		next->timer = event_timer_add(qmgr.loop, job_timeout_ms(next),
		    job_timeout, next);
	return next;
}

/*
 * The job is over (its results recorded): forget it, keep its agent
 * connection when asked and allowed, tell its message (which may finish
 * and go away), start more work. When a job was sent behind it on the
 * same connection (keep: the reply came cleanly), that job takes over
 * the connection, the slot and the place among running jobs, and is
 * returned: its reply may already be buffered. Otherwise NULL.
 */
static struct qmgr_job *
job_free(struct qmgr_job *job, int was_running, int keep)
{
	struct qmgr_dest *d = job->dest;
	struct qmgr_message *msg = job->msg;
	struct qmgr_job *next = NULL;
	char *why = NULL;

	if (job->timer != 0)
		event_timer_cancel(qmgr.loop, job->timer);
	if (was_running && keep && job->batch != NULL) {
		next = job_hand_over(job, &why);
		was_running = 0;
	}
	if (job->s != NULL)
		event_fd_del(qmgr.loop, job->s->fd);
	if (was_running) {
		if (job->rprev != NULL)
			job->rprev->rnext = job->rnext;
		else
			running = job->rnext;
		if (job->rnext != NULL)
			job->rnext->rprev = job->rprev;
		qmgr_sched_done(job);
	}
	if (job->s != NULL && !(keep && agent_keep(d, job->s)))
		agent_let_go(d, job->s);
	job->s = NULL;
	npending--;
	qmgr_job_free(job);
	(void)qmgr_dest_release(d);
	qmgr_message_job_done(msg);
	if (why != NULL) {
		job_agent_failed(next, why);
		free(why);
		return NULL;
	}
	/* Stopping: the last delivery in progress has its results. */
	if (qmgr.stopping && !qmgr_busy() && qmgr.loop != NULL)
		event_loop_stop(qmgr.loop);
	qmgr_deliver_schedule();
	return next;
}

/*
 * The agent failed us: defer what it did not answer (4.3.0), for the
 * job and for those sent behind it on the same connection. Those go
 * first: the job's slot keeps the destination alive until then.
 */
static void
job_agent_failed(struct qmgr_job *job, const char *why)
{
	struct qmgr_job *r;

	while ((r = job->batch) != NULL) {
		job->batch = r->batch;
		r->batch = NULL;
		job_defer(r, "4.3.0", why, r->dest->tp->name);
		job_free(r, 0, 0);
	}
	job_defer(job, "4.3.0", why, job->dest->tp->name);
	job_free(job, 1, 0);
}

static void
dest_revive_timer(void *ctx)
{
	struct qmgr_dest *d = ctx;

	d->dead_timer = 0;
	qmgr_dest_revive(d);
	if (!qmgr_dest_release(d))
		qmgr_deliver_schedule();
}

/* A destination has failed enough: dead until minimal_backoff_time. */
static void
dest_died(struct qmgr_dest *d)
{
	msg_info("delivery to %s:%s suspended for %lus: %s", d->tp->name,
	    d->nexthop, qmgr.min_backoff, d->dead_reason);
	agent_drop_all(d);
	if (qmgr.loop != NULL)
		d->dead_timer = event_timer_add(qmgr.loop,
		    (long)qmgr.min_backoff * 1000, dest_revive_timer, d);
}

/* A job for a dead destination: deferred without a connection. */
static void
job_suspended(struct qmgr_job *job)
{
	struct qmgr_dest *d = job->dest;
	char *why;

	if (!job_fall_back(job)) {
		why = xasprintf("delivery temporarily suspended: %s",
		    d->dead_reason);
		job_defer(job, d->dead_dsn, why, "none");
		free(why);
	}
	job_free(job, 0, 0);
}

struct result {
	int	 have;
	enum qmgr_outcome outcome;
	char	*dsn;
	char	*reason;
};

static enum qmgr_outcome
outcome_parse(const char *word)
{
	if (strcmp(word, "sent") == 0)
		return OUTCOME_SENT;
	if (strcmp(word, "bounced") == 0)
		return OUTCOME_BOUNCED;
	return OUTCOME_DEFERRED;
}

/* Read "result=INDEX STATUS DSN REASON" lines into res[] (one per
 * recipient of the job); a result for a recipient that was not asked
 * for is ignored with a warning. */
static void
results_parse(const struct qmgr_job *job, const struct attrs *a,
    struct result *res)
{
	const char *tp = job->dest->tp->name;
	unsigned long index;
	char **f;
	size_t i, k;

	for (i = 0; i < a->n; i++) {
		if (strcmp(a->v[i].name, "result") != 0)
			continue;
		f = strv_split(a->v[i].value, " ");
		if (strv_len(f) < 3 || parse_ulong(f[0], 0, (unsigned long)-1,
		    &index) < 0) {
			msg_warn("%s: transport %s: malformed result \"%s\"",
			    job->msg->id, tp, a->v[i].value);
			strv_free(f);
			continue;
		}
		for (k = 0; k < job->n && job->idx[k] != index; k++)
			;
		if (k == job->n || res[k].have) {
			msg_warn("%s: transport %s: result for recipient %lu "
			    "that was not in the request", job->msg->id, tp,
			    index);
			strv_free(f);
			continue;
		}
		res[k].have = 1;
		res[k].outcome = outcome_parse(f[1]);
		res[k].dsn = xstrdup(f[2]);
		res[k].reason = f[3] != NULL ? xtext_decode(f[3]) : NULL;
		if (res[k].reason == NULL)
			res[k].reason = xstrdup(f[3] != NULL ? f[3] : "");
		strv_free(f);
	}
}

/*
 * The agent's reply: did the request reach the destination? Tell the
 * scheduler; then record the results, or hand the whole request to a
 * fallback relay when it could not get through. Returns the job whose
 * reply comes next on the connection (job_free), or NULL.
 */
static struct qmgr_job *
job_replied(struct qmgr_job *job, const struct attrs *a)
{
	struct qmgr_dest *d = job->dest;
	const char *relay = attrs_get(a, "relay");
	const char *logged = attrs_get(a, "logged");
	struct result *res;
	const char **dsn;
	int *deferred, site, answered = 0, agent_logged;
	double delays[4];
	size_t k;

	if (relay == NULL || relay[0] == '\0')
		relay = d->tp->name;
	agent_logged = logged != NULL && strcmp(logged, "yes") == 0;
	res = xcalloc(job->n, sizeof(*res));
	dsn = xcalloc(job->n, sizeof(*dsn));
	deferred = xcalloc(job->n, sizeof(*deferred));
	results_parse(job, a, res);
	for (k = 0; k < job->n; k++) {
		dsn[k] = res[k].dsn;
		deferred[k] = res[k].have &&
		    res[k].outcome == OUTCOME_DEFERRED;
		answered |= res[k].have;
	}
	/* A reply without results says nothing about the destination. */
	site = deliver_site_failure(dsn, deferred, job->n);
	if (!site && answered && d->dead) {
		/* It answered after all: no need to wait for the timer. */
		if (d->dead_timer != 0)
			event_timer_cancel(qmgr.loop, d->dead_timer);
		d->dead_timer = 0;
		qmgr_dest_revive(d);
	}
	if (!site && answered)
		qmgr_dest_success(d);
	else if (site && qmgr_dest_failure(d, res[0].dsn, res[0].reason,
	    deliver_now(), qmgr.min_backoff))
		dest_died(d);

	if (!site || !job_fall_back(job)) {
		job_delays(job, delays);
		for (k = 0; k < job->n; k++) {
			if (!res[k].have)
				continue;
			qmgr_message_result(job->msg, job->idx[k],
			    res[k].outcome, res[k].dsn, res[k].reason, relay,
			    delays, agent_logged);
			job->idx[k] = (size_t)-1;
		}
		job_defer(job, "4.3.0", "delivery agent gave no result for "
		    "this recipient", relay);
	}
	for (k = 0; k < job->n; k++) {
		free(res[k].dsn);
		free(res[k].reason);
	}
	free(res);
	free(dsn);
	free(deferred);
	return job_free(job, 1, 1);
}

/* Replies on a job's connection: its own, and then those of the jobs
 * sent behind it, as far as they have come. */
static void
job_readable(int fd, int events, void *ctx)
{
	struct qmgr_job *job = ctx;
	struct attrs a;
	char *why;
	int r;

	(void)fd;
	(void)events;
	while (job != NULL) {
		r = attr_ready(job->s, REPLY_LINE_MAX * (job->n +
		    REPLY_EXTRA));
		if (r == 0)
			return;
		if (job->reused && job->s->in.len == 0 && (r == STREAM_EOF ||
		    (r == STREAM_ERROR && (job->s->err == ECONNRESET ||
		    job->s->err == EPIPE)))) {
			/* A connection that has served a request (kept, or
			 * the one ahead in a batch) ended without a byte of
			 * this reply: the agent closed it as we used it (its
			 * own timeout, max_use), or died after its last
			 * reply. Again on a new connection, with those sent
			 * behind it; after a death that may repeat a
			 * delivery, as a deferral would. */
			event_fd_del(qmgr.loop, job->s->fd);
			stream_free(job->s);
			job->s = NULL;
			event_timer_cancel(qmgr.loop, job->timer);
			job->timer = 0;
			job->reused = 0;
			job_connect(job);
			return;
		}
		if (r < 0) {
			why = xasprintf("delivery agent %s failed: %s",
			    job->dest->tp->name, r == STREAM_EOF ?
			    "lost connection" : r == STREAM_TOOLONG ?
			    "reply too long" : stream_strerror(r));
			job_agent_failed(job, why);
			free(why);
			return;
		}
		attrs_init(&a);
		r = attr_recv(job->s, &a, REPLY_LINE_MAX, job->n +
		    REPLY_EXTRA);
		if (r != 0) {
			why = xasprintf("delivery agent %s failed: malformed "
			    "reply (%s)", job->dest->tp->name,
			    stream_strerror(r));
			job_agent_failed(job, why);
			free(why);
			job = NULL;
		} else
			job = job_replied(job, &a);
		attrs_clear(&a);
	}
}

static void
job_timeout(void *ctx)
{
	struct qmgr_job *job = ctx;
	char *why;

	job->timer = 0;
	why = xasprintf("delivery agent %s failed: no reply within %lus",
	    job->dest->tp->name, qmgr.delivery_timeout);
	job_agent_failed(job, why);
	free(why);
}

/* Write the job's request into s's output: 0 or a stream error. */
static int
job_send(struct qmgr_job *job, struct stream *s)
{
	struct qmgr_message *msg = job->msg;
	struct qmgr_rcpt_state *rs;
	struct deliver_request req;
	struct attrs a;
	int r;

	memset(&req, 0, sizeof(req));
	req.queue_id = xstrdup(msg->id);
	req.folder = xstrdup(queue_folder_name(QUEUE_ACTIVE));
	req.sender = xstrdup(msg->qm->sender);
	req.nexthop = xstrdup(job->dest->nexthop);
	for (size_t i = 0; i < job->n; i++) {
		rs = &msg->rs[job->idx[i]];
		deliver_add_rcpt(&req, job->idx[i], rs->addr);
		if (rs->orig != NULL)
			req.rcpts[i].orig = xstrdup(rs->orig);
	}
	req.t_arrival = qmgr_message_arrival(msg);
	req.t_active = msg->active_time;
	req.t_start = job->t_start;
	req.fallback = job_may_fall_back(job);
	attrs_init(&a);
	deliver_request_attrs(&req, &a);
	r = attr_write(s, &a);
	attrs_clear(&a);
	deliver_request_free(&req);
	return r;
}

/* Send the requests of the job and of those behind it on job->s, in
 * one write: the agent finds the whole batch when it reads the first. */
static int
job_send_batch(struct qmgr_job *job)
{
	int r = 0;

	for (struct qmgr_job *j = job; j != NULL && r == 0; j = j->batch)
		r = job_send(j, job->s);
	return r != 0 ? r : stream_flush(job->s);
}

/* The requests are out: watch for the first reply, within
 * job_timeout_ms() (each later one gets its own when its turn comes). */
static void
job_wait(struct qmgr_job *job)
{
	double now = deliver_now();
	char *why;

	for (struct qmgr_job *r = job; r != NULL; r = r->batch)
		r->t_conn = now;
	if (event_fd_add(qmgr.loop, job->s->fd, EVENT_READ, job_readable,
	    job) < 0) {
		why = xasprintf("delivery agent %s failed: event loop: %m",
		    job->dest->tp->name);
		job_agent_failed(job, why);
		free(why);
		return;
	}
	job->timer = event_timer_add(qmgr.loop, job_timeout_ms(job),
	    job_timeout, job);
}

/* Connect to the agent and send the request; the reply comes later. */
static void
job_connect(struct qmgr_job *job)
{
	struct qmgr_transport *tp = job->dest->tp;
	char *path, *why;
	int fd, r;

	path = xasprintf("%s/private/%s", qmgr.queue_dir, tp->service);
	if ((fd = unix_connect(path, AGENT_CONNECT_MS)) < 0) {
		why = xasprintf("delivery agent %s unavailable: connect to "
		    "private/%s: %m", tp->name, tp->service);
		free(path);
		job_agent_failed(job, why);
		free(why);
		return;
	}
	free(path);
	job->s = stream_new(fd, AGENT_WRITE_MS);
	if ((r = job_send_batch(job)) != 0) {
		why = xasprintf("delivery agent %s failed: sending the "
		    "request: %s", tp->name, stream_strerror(r));
		job_agent_failed(job, why);
		free(why);
		return;
	}
	job_wait(job);
}

/* Start a job the scheduler picked: on a kept connection to its
 * destination's agent when there is one, else on a new one; with it go
 * the jobs qmgr_sched_rider() lets ride behind it. */
static void
job_start(struct qmgr_job *job)
{
	struct qmgr_dest *d = job->dest;
	struct qmgr_job *tail, *r;
	size_t n, nrcpt;

	job->t_start = deliver_now();
	job->rnext = running;
	if (running != NULL)
		running->rprev = job;
	running = job;
	if (d->idle != NULL) {
		job->s = agent_unlink(d->idle);
		job->reused = 1;
	}
	/* Mail that would wait for this destination's next free slot goes
	 * on this connection now, behind the job. */
	for (tail = job, n = 1, nrcpt = job->n; nrcpt < BATCH_RCPTS_MAX &&
	    (r = qmgr_sched_rider(d, n)) != NULL; n++) {
		r->t_start = job->t_start;
		tail->batch = r;
		tail = r;
		nrcpt += r->n;
	}
	if (job->s != NULL) {
		if (job_send_batch(job) == 0) {
			job_wait(job);
			return;
		}
		/* The agent went away while its connection was kept. */
		stream_free(job->s);
		job->s = NULL;
		job->reused = 0;
	}
	job_connect(job);
}

/* Defer the waiting mail of dead destinations; 1 when any was. */
static int
drain_dead(struct qmgr_transport *tp)
{
	struct qmgr_dest *d, *next;
	struct qmgr_job *job;
	int any = 0;

	for (d = tp->dests; d != NULL; d = next) {
		/* Dead destinations are never freed under us; a fallback
		 * may add destinations at the end, which we reach too. */
		while (d->dead && (job = qmgr_dest_pop(d)) != NULL) {
			job_suspended(job);
			any = 1;
		}
		next = d->next;
	}
	return any;
}

void
qmgr_deliver_schedule(void)
{
	static int busy;
	struct qmgr_transport *tp;
	struct qmgr_job *job;
	int again;

	/* Ending a job calls us again: the loops below already go on
	 * while there is work. */
	if (busy || qmgr.stopping)
		return;
	busy = 1;
	do {
		again = 0;
		for (tp = transports; tp != NULL; tp = tp->next) {
			again |= drain_dead(tp);
			while ((job = qmgr_sched_next(tp)) != NULL) {
				job_start(job);
				again = 1;
			}
			if (qmgr_sched_crowded(tp)) {
				agent_evict(tp);
				again = 1;
			}
		}
	} while (again);
	busy = 0;
}

void
qmgr_deliver_revive(const char *site)
{
	struct qmgr_transport *tp;
	struct qmgr_dest *d, *next;

	for (tp = transports; tp != NULL; tp = tp->next)
		for (d = tp->dests; d != NULL; d = next) {
			next = d->next;
			if (!d->dead || (site != NULL && site[0] != '\0' &&
			    !qmgr_site_match(site, NULL, d->nexthop)))
				continue;
			if (d->dead_timer != 0 && qmgr.loop != NULL)
				event_timer_cancel(qmgr.loop, d->dead_timer);
			d->dead_timer = 0;
			msg_info("delivery to %s:%s resumed by a flush",
			    tp->name, d->nexthop);
			qmgr_dest_revive(d);
			(void)qmgr_dest_release(d);
		}
	qmgr_deliver_schedule();
}

void
qmgr_deliver_shutdown(void)
{
	struct qmgr_transport *tp;
	struct qmgr_job *job;

	/* Connections in flight are simply dropped: their messages are
	 * still in active/ and are delivered again at the next start. The
	 * event loop is gone: only memory and descriptors to let go. */
	while ((job = running) != NULL) {
		running = job->rnext;
		if (job->s != NULL)
			stream_free(job->s);
		for (struct qmgr_job *r = job->batch, *rn; r != NULL; r = rn) {
			rn = r->batch;
			qmgr_job_free(r);
		}
		qmgr_job_free(job);
	}
	for (tp = transports; tp != NULL; tp = tp->next)
		for (struct qmgr_dest *d = tp->dests; d != NULL; d = d->next)
			while (d->idle != NULL || d->closing != NULL)
				stream_free(d->idle != NULL ?
				    agent_unlink(d->idle) :
				    agent_unlink_from(d->closing, 1));
	while ((tp = transports) != NULL) {
		transports = tp->next;
		qmgr_transport_free(tp);
	}
	strv_free(fallback_relays);
	fallback_relays = NULL;
	npending = 0;
}

size_t
qmgr_deliver_cancel(struct qmgr_message *msg)
{
	struct qmgr_transport *tp;
	struct qmgr_dest *d, *next;
	size_t n = 0, k;

	for (tp = transports; tp != NULL; tp = tp->next)
		for (d = tp->dests; d != NULL; d = next) {
			next = d->next;
			if ((k = qmgr_dest_cancel(d, msg)) == 0)
				continue;
			n += k;
			(void)qmgr_dest_release(d);
		}
	npending -= n;
	return n;
}
