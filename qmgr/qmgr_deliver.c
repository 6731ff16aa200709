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
 * How it fails: an agent that cannot be reached, closes the connection,
 * sends garbage or does not answer within daemon_timeout gets every
 * recipient of the request deferred with a 4.3.0 reason naming the
 * transport (that is the agent's trouble, not the destination's, and
 * does not count against it); the message is retried later like any
 * deferral, so a crash of an agent repeats at most the deliveries it was
 * doing.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

static struct qmgr_transport *transports;
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
	free(service);
	*pp = tp;
	return tp;
}

void
qmgr_deliver_queue(struct qmgr_message *msg, const char *transport,
    const char *nexthop, int fallback, size_t *idx, size_t n)
{
	struct qmgr_dest *d = qmgr_dest_get(transport_get(transport),
	    nexthop);

	npending += qmgr_dest_enqueue(d, msg, idx, n, fallback ? 0 : -1);
	free(idx);
}

size_t
qmgr_deliver_pending(void)
{
	return npending;
}

int
qmgr_attr_ready(struct stream *s, size_t max)
{
	char chunk[8192];
	ssize_t n;

	for (;;) {
		if (s->in.len > 0 && (s->in.data[0] == '\n' ||
		    memmem(s->in.data, s->in.len, "\n\n", 2) != NULL))
			return 1;
		if (s->in.len > max)
			return STREAM_TOOLONG;
		n = s->read_fn(s, chunk, sizeof(chunk));
		if (n > 0) {
			if (buf_append(&s->in, chunk, (size_t)n) < 0)
				return STREAM_TOOLONG;
			continue;
		}
		if (n == 0)
			return STREAM_EOF;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		s->err = errno;
		return STREAM_ERROR;
	}
}

/* delays=a/b/c/d of a job: before active/, waiting there, reaching the
 * agent, the agent's own time. */
static void
job_delays(const struct qmgr_job *job, double delays[4])
{
	const struct qmgr_message *msg = job->msg;
	double now = qmgr_now();

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

	if (fallback_relays == NULL)
		fallback_relays = config_list("fallback_relay");
	if (job->fallback < 0 || (size_t)job->fallback >=
	    strv_len(fallback_relays))
		return 0;
	k = (size_t)job->fallback;
	d = qmgr_dest_get(job->dest->tp, fallback_relays[k]);
	npending += qmgr_dest_enqueue(d, job->msg, job->idx, job->n,
	    (int)k + 1);
	return 1;
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
			    OUTCOME_DEFERRED, dsn, why, relay, delays);
}

/*
 * The job is over (its results recorded): forget it, tell its message
 * (which may finish and go away), start more work.
 */
static void
job_free(struct qmgr_job *job, int was_running)
{
	struct qmgr_dest *d = job->dest;
	struct qmgr_message *msg = job->msg;

	if (job->s != NULL) {
		event_fd_del(qmgr.loop, job->s->fd);
		stream_free(job->s);
		job->s = NULL;
	}
	if (job->timer != 0)
		event_timer_cancel(qmgr.loop, job->timer);
	if (was_running) {
		if (job->rprev != NULL)
			job->rprev->rnext = job->rnext;
		else
			running = job->rnext;
		if (job->rnext != NULL)
			job->rnext->rprev = job->rprev;
		qmgr_sched_done(job);
	}
	npending--;
	qmgr_job_free(job);
	(void)qmgr_dest_release(d);
	qmgr_message_job_done(msg);
	qmgr_deliver_schedule();
}

/* The agent failed us: defer what it did not answer (4.3.0). */
static void
job_agent_failed(struct qmgr_job *job, const char *why)
{
	job_defer(job, "4.3.0", why, job->dest->tp->name);
	job_free(job, 1);
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
	job_free(job, 0);
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
 * fallback relay when it could not get through.
 */
static void
job_replied(struct qmgr_job *job, const struct attrs *a)
{
	struct qmgr_dest *d = job->dest;
	const char *relay = attrs_get(a, "relay");
	struct result *res;
	const char **dsn;
	int *deferred, site, answered = 0;
	double delays[4];
	size_t k;

	if (relay == NULL || relay[0] == '\0')
		relay = d->tp->name;
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
	site = qmgr_site_failure(dsn, deferred, job->n);
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
	    qmgr_now(), qmgr.min_backoff))
		dest_died(d);

	if (!site || !job_fall_back(job)) {
		job_delays(job, delays);
		for (k = 0; k < job->n; k++) {
			if (!res[k].have)
				continue;
			qmgr_message_result(job->msg, job->idx[k],
			    res[k].outcome, res[k].dsn, res[k].reason, relay,
			    delays);
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
	job_free(job, 1);
}

static void
job_readable(int fd, int events, void *ctx)
{
	struct qmgr_job *job = ctx;
	const char *tp = job->dest->tp->name;
	struct attrs a;
	char *why;
	int r;

	r = qmgr_attr_ready(job->s, REPLY_LINE_MAX * (job->n + REPLY_EXTRA));
	if (r == 0)
		return;
	if (r < 0) {
		why = xasprintf("delivery agent %s failed: %s", tp,
		    r == STREAM_EOF ? "lost connection" :
		    r == STREAM_TOOLONG ? "reply too long" :
		    stream_strerror(r));
		job_agent_failed(job, why);
		free(why);
		return;
	}
	attrs_init(&a);
	r = attr_recv(job->s, &a, REPLY_LINE_MAX, job->n + REPLY_EXTRA);
	if (r != 0) {
		why = xasprintf("delivery agent %s failed: malformed reply "
		    "(%s)", tp, stream_strerror(r));
		job_agent_failed(job, why);
		free(why);
	} else
		job_replied(job, &a);
	attrs_clear(&a);
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

/* Connect to the agent and send the request; the reply comes later. */
static void
job_start(struct qmgr_job *job)
{
	struct qmgr_message *msg = job->msg;
	struct qmgr_transport *tp = job->dest->tp;
	struct attrs a;
	char *path, *why, *x;
	size_t i;
	int fd, r;

	job->t_start = qmgr_now();
	job->rnext = running;
	if (running != NULL)
		running->rprev = job;
	running = job;
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

	attrs_init(&a);
	attrs_add(&a, "request", "deliver");
	attrs_add(&a, "queue_id", msg->id);
	attrs_add(&a, "folder", queue_folder_name(QUEUE_ACTIVE));
	attrs_add(&a, "sender", msg->qm->sender);
	attrs_add(&a, "nexthop", job->dest->nexthop);
	for (i = 0; i < job->n; i++) {
		x = xtext_encode(msg->rs[job->idx[i]].addr);
		attrs_addf(&a, "rcpt", "%zu %s", job->idx[i], x);
		free(x);
	}
	r = attr_send(job->s, &a);
	attrs_clear(&a);
	if (r != 0) {
		why = xasprintf("delivery agent %s failed: sending the "
		    "request: %s", tp->name, stream_strerror(r));
		job_agent_failed(job, why);
		free(why);
		return;
	}
	job->t_conn = qmgr_now();
	if (event_fd_add(qmgr.loop, job->s->fd, EVENT_READ, job_readable,
	    job) < 0) {
		why = xasprintf("delivery agent %s failed: event loop: %m",
		    tp->name);
		job_agent_failed(job, why);
		free(why);
		return;
	}
	job->timer = event_timer_add(qmgr.loop,
	    (long)qmgr.delivery_timeout * 1000, job_timeout, job);
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
		qmgr_job_free(job);
	}
	while ((tp = transports) != NULL) {
		transports = tp->next;
		qmgr_transport_free(tp);
	}
	strv_free(fallback_relays);
	fallback_relays = NULL;
	npending = 0;
}
