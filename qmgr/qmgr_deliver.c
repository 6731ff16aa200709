/*
 * qmgr_deliver - hands deliveries to delivery agents without ever
 * waiting for one, within concurrency limits.
 *
 * qmgr_message.c queues one job per group of a message's recipients
 * that share a transport and next hop ("local", "example.com"). Jobs
 * wait in their destination's queue; destinations hang off their
 * transport. A transport runs at most as many deliveries as master.cf
 * allows processes for its service (maxproc; "-" is
 * default_process_limit), and each destination at most
 * <transport>_destination_concurrency_limit at once (falling back to
 * default_destination_concurrency_limit), served round-robin so that one
 * busy destination does not starve the others. The relay issue grows
 * this into per-destination slow start and dead-destination backoff;
 * the shapes are here for it.
 *
 * A running job is a connection to the agent's socket,
 * queue_directory/private/<transport>, speaking deliver.h: the request
 * is written at once (it is small), then the socket is watched by the
 * event loop and the reply read as it arrives, never blocking qmgr.
 * Each recipient's result goes to qmgr_message_result().
 *
 * How it fails: an agent that cannot be reached, closes the connection,
 * sends garbage or does not answer within daemon_timeout gets every
 * recipient of the request deferred with a 4.3.0 reason naming the
 * transport; the message is retried later like any deferral, so a crash
 * of an agent repeats at most the deliveries it was doing.
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

struct qmgr_transport;
struct qmgr_dest;

struct qmgr_job {
	struct qmgr_job *next;		/* in its destination's queue */
	struct qmgr_job *rprev, *rnext;	/* among running jobs */
	struct qmgr_message *msg;
	struct qmgr_dest *dest;
	size_t	*idx;		/* queue file recipient indices */
	size_t	 n;
	struct stream *s;	/* the agent connection while running */
	unsigned long timer;
	double	 t_start;	/* taken from the queue */
	double	 t_conn;	/* connected and request sent */
};

struct qmgr_dest {
	struct qmgr_dest *next;
	struct qmgr_transport *tp;
	char	*nexthop;
	struct qmgr_job *head, *tail;	/* waiting */
	int	 active;		/* running */
};

struct qmgr_transport {
	struct qmgr_transport *next;
	char	*name;
	int	 dest_limit;
	int	 total_limit;
	size_t	 rcpt_limit;
	int	 active;
	struct qmgr_dest *dests;
	struct qmgr_dest *cursor;	/* last served, for round-robin */
};

static struct qmgr_transport *transports;
static struct qmgr_job *running;
static size_t npending;

/* "<transport>_<suffix>" when the parameter exists, else "default_". */
static long
transport_param(const char *transport, const char *suffix)
{
	char *name = xasprintf("%s_%s", transport, suffix);
	long v;

	if (param_find(name) != NULL)
		v = config_int(name);
	else {
		free(name);
		name = xasprintf("default_%s", suffix);
		v = config_int(name);
	}
	free(name);
	return v;
}

/* The maxproc of the transport's master.cf service, as master runs it. */
static int
transport_process_limit(const char *transport)
{
	struct master_service *sv;
	size_t n = 0, i;
	char *path, *err = NULL;
	int limit = -1;

	path = xasprintf("%s/master.cf", config_dir());
	if ((sv = mastercf_load(path, &n, &err)) == NULL) {
		msg_warn("%s; using default_process_limit for transport %s",
		    err, transport);
		free(err);
	} else {
		for (i = 0; i < n; i++)
			if (strcmp(sv[i].name, transport) == 0 &&
			    sv[i].type == SERVICE_UNIX)
				limit = sv[i].maxproc;
		mastercf_free(sv, n);
	}
	free(path);
	if (limit < 0)
		limit = (int)config_int("default_process_limit");
	if (limit == 0)			/* master.cf 0: no limit */
		limit = (int)config_int("default_process_limit");
	return limit > 0 ? limit : 1;
}

static struct qmgr_transport *
transport_get(const char *name)
{
	struct qmgr_transport *tp;

	for (tp = transports; tp != NULL; tp = tp->next)
		if (strcmp(tp->name, name) == 0)
			return tp;
	tp = xcalloc(1, sizeof(*tp));
	tp->name = xstrdup(name);
	tp->dest_limit = (int)transport_param(name,
	    "destination_concurrency_limit");
	tp->rcpt_limit = (size_t)transport_param(name,
	    "destination_recipient_limit");
	tp->total_limit = transport_process_limit(name);
	if (tp->dest_limit < 1)
		tp->dest_limit = 1;
	if (tp->rcpt_limit < 1)
		tp->rcpt_limit = 1;
	tp->next = transports;
	transports = tp;
	return tp;
}

static struct qmgr_dest *
dest_get(struct qmgr_transport *tp, const char *nexthop)
{
	struct qmgr_dest *d;

	for (d = tp->dests; d != NULL; d = d->next)
		if (strcasecmp(d->nexthop, nexthop) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->tp = tp;
	d->nexthop = xstrdup(nexthop);
	d->next = tp->dests;
	tp->dests = d;
	return d;
}

/* Forget a destination with nothing waiting or running. */
static void
dest_release(struct qmgr_dest *d)
{
	struct qmgr_transport *tp = d->tp;
	struct qmgr_dest **pp;

	if (d->head != NULL || d->active > 0)
		return;
	for (pp = &tp->dests; *pp != NULL; pp = &(*pp)->next)
		if (*pp == d) {
			*pp = d->next;
			break;
		}
	if (tp->cursor == d)
		tp->cursor = NULL;
	free(d->nexthop);
	free(d);
}

void
qmgr_deliver_queue(struct qmgr_message *msg, const char *transport,
    const char *nexthop, size_t *idx, size_t n)
{
	struct qmgr_transport *tp = transport_get(transport);
	struct qmgr_dest *d = dest_get(tp, nexthop);
	struct qmgr_job *job;
	size_t off, take;

	for (off = 0; off < n; off += take) {
		take = n - off < tp->rcpt_limit ? n - off : tp->rcpt_limit;
		job = xcalloc(1, sizeof(*job));
		job->msg = msg;
		job->dest = d;
		job->n = take;
		job->idx = xreallocarray(NULL, take, sizeof(size_t));
		memcpy(job->idx, idx + off, take * sizeof(size_t));
		if (d->tail != NULL)
			d->tail->next = job;
		else
			d->head = job;
		d->tail = job;
		msg->jobs++;
		npending++;
	}
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

/*
 * End a job: give every recipient without a result this reason
 * (deferred), release its slots, tell its message, start more work.
 */
static void
job_end(struct qmgr_job *job, const char *why)
{
	struct qmgr_dest *d = job->dest;
	struct qmgr_transport *tp = d->tp;
	struct qmgr_message *msg = job->msg;
	double delays[4], now = qmgr_now();
	size_t i;

	if (job->s != NULL) {
		event_fd_del(qmgr.loop, job->s->fd);
		stream_free(job->s);
		job->s = NULL;
	}
	if (job->timer != 0)
		event_timer_cancel(qmgr.loop, job->timer);
	if (job->rprev != NULL)
		job->rprev->rnext = job->rnext;
	else
		running = job->rnext;
	if (job->rnext != NULL)
		job->rnext->rprev = job->rprev;
	if (why != NULL) {
		delays[0] = msg->active_time - (double)msg->qm->arrival.tv_sec -
		    (double)msg->qm->arrival.tv_nsec / 1e9;
		delays[1] = job->t_start - msg->active_time;
		delays[2] = job->t_conn > 0 ? job->t_conn - job->t_start :
		    now - job->t_start;
		delays[3] = job->t_conn > 0 ? now - job->t_conn : 0;
		for (i = 0; i < job->n; i++)
			if (job->idx[i] != (size_t)-1)
				qmgr_message_result(msg, job->idx[i],
				    OUTCOME_DEFERRED, "4.3.0", why, tp->name,
				    delays);
	}
	tp->active--;
	d->active--;
	npending--;
	free(job->idx);
	free(job);
	dest_release(d);
	qmgr_message_job_done(msg);
	qmgr_deliver_schedule();
}

static enum qmgr_outcome
outcome_parse(const char *word)
{
	if (strcmp(word, "sent") == 0)
		return OUTCOME_SENT;
	if (strcmp(word, "bounced") == 0)
		return OUTCOME_BOUNCED;
	return OUTCOME_DEFERRED;
}

/*
 * Apply "result=INDEX STATUS DSN REASON" lines. Recipients are checked
 * off in job->idx (set to -1) so that job_end() defers those the agent
 * did not mention; a result for a recipient that was not asked for is
 * ignored with a warning.
 */
static void
job_results(struct qmgr_job *job, const struct attrs *a)
{
	struct qmgr_message *msg = job->msg;
	const char *relay = attrs_get(a, "relay");
	double delays[4], now = qmgr_now();
	char **f, *reason;
	unsigned long index;
	size_t i, k;

	delays[0] = msg->active_time - (double)msg->qm->arrival.tv_sec -
	    (double)msg->qm->arrival.tv_nsec / 1e9;
	delays[1] = job->t_start - msg->active_time;
	delays[2] = job->t_conn - job->t_start;
	delays[3] = now - job->t_conn;
	if (relay == NULL || relay[0] == '\0')
		relay = job->dest->tp->name;
	for (i = 0; i < a->n; i++) {
		if (strcmp(a->v[i].name, "result") != 0)
			continue;
		f = strv_split(a->v[i].value, " ");
		if (strv_len(f) < 3 || parse_ulong(f[0], 0, (unsigned long)-1,
		    &index) < 0) {
			msg_warn("%s: transport %s: malformed result \"%s\"",
			    msg->id, job->dest->tp->name, a->v[i].value);
			strv_free(f);
			continue;
		}
		for (k = 0; k < job->n && job->idx[k] != index; k++)
			;
		if (k == job->n) {
			msg_warn("%s: transport %s: result for recipient %lu "
			    "that was not in the request", msg->id,
			    job->dest->tp->name, index);
			strv_free(f);
			continue;
		}
		reason = f[3] != NULL ? xtext_decode(f[3]) : NULL;
		qmgr_message_result(msg, job->idx[k], outcome_parse(f[1]),
		    f[2], reason != NULL ? reason : f[3] != NULL ? f[3] : "",
		    relay, delays);
		job->idx[k] = (size_t)-1;
		free(reason);
		strv_free(f);
	}
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
		job_end(job, why);
		free(why);
		return;
	}
	attrs_init(&a);
	r = attr_recv(job->s, &a, REPLY_LINE_MAX, job->n + REPLY_EXTRA);
	if (r != 0) {
		why = xasprintf("delivery agent %s failed: malformed reply "
		    "(%s)", tp, stream_strerror(r));
		job_end(job, why);
		free(why);
	} else {
		job_results(job, &a);
		job_end(job, "delivery agent gave no result for this "
		    "recipient");
	}
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
	job_end(job, why);
	free(why);
}

static void
job_start(struct qmgr_job *job)
{
	struct qmgr_message *msg = job->msg;
	struct qmgr_transport *tp = job->dest->tp;
	struct attrs a;
	char *path, *why, *x;
	size_t i;
	int fd, r;

	tp->active++;
	job->dest->active++;
	job->t_start = qmgr_now();
	job->rnext = running;
	if (running != NULL)
		running->rprev = job;
	running = job;
	path = xasprintf("%s/private/%s", qmgr.queue_dir, tp->name);
	if ((fd = unix_connect(path, AGENT_CONNECT_MS)) < 0) {
		why = xasprintf("delivery agent %s unavailable: connect to "
		    "private/%s: %m", tp->name, tp->name);
		free(path);
		job_end(job, why);
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
		job_end(job, why);
		free(why);
		return;
	}
	job->t_conn = qmgr_now();
	if (event_fd_add(qmgr.loop, job->s->fd, EVENT_READ, job_readable,
	    job) < 0) {
		why = xasprintf("delivery agent %s failed: event loop: %m",
		    tp->name);
		job_end(job, why);
		free(why);
		return;
	}
	job->timer = event_timer_add(qmgr.loop,
	    (long)qmgr.delivery_timeout * 1000, job_timeout, job);
}

/* The next destination after the cursor that has a job and room. */
static struct qmgr_dest *
next_dest(struct qmgr_transport *tp)
{
	struct qmgr_dest *start, *d;

	if (tp->dests == NULL)
		return NULL;
	start = tp->cursor != NULL && tp->cursor->next != NULL ?
	    tp->cursor->next : tp->dests;
	d = start;
	do {
		if (d->head != NULL && d->active < tp->dest_limit)
			return d;
		d = d->next != NULL ? d->next : tp->dests;
	} while (d != start);
	return NULL;
}

void
qmgr_deliver_schedule(void)
{
	static int busy;
	struct qmgr_transport *tp;
	struct qmgr_dest *d;
	struct qmgr_job *job;

	/* job_start() can end a job at once, which calls us again: the
	 * loop below already goes on while there is room. */
	if (busy || qmgr.stopping)
		return;
	busy = 1;
	for (tp = transports; tp != NULL; tp = tp->next) {
		while (tp->active < tp->total_limit &&
		    (d = next_dest(tp)) != NULL) {
			job = d->head;
			if ((d->head = job->next) == NULL)
				d->tail = NULL;
			job->next = NULL;
			tp->cursor = d;
			job_start(job);
		}
	}
	busy = 0;
}

void
qmgr_deliver_shutdown(void)
{
	struct qmgr_transport *tp;
	struct qmgr_dest *d;
	struct qmgr_job *job;

	/* Connections in flight are simply dropped: their messages are
	 * still in active/ and are delivered again at the next start. The
	 * event loop is gone: only memory and descriptors to let go. */
	while ((job = running) != NULL) {
		running = job->rnext;
		if (job->s != NULL)
			stream_free(job->s);
		free(job->idx);
		free(job);
	}
	while ((tp = transports) != NULL) {
		transports = tp->next;
		while ((d = tp->dests) != NULL) {
			tp->dests = d->next;
			while ((job = d->head) != NULL) {
				d->head = job->next;
				free(job->idx);
				free(job);
			}
			free(d->nexthop);
			free(d);
		}
		free(tp->name);
		free(tp);
	}
	npending = 0;
}
