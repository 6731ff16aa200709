/*
 * qmgr_sched - which delivery starts next: per-destination queues, slow
 * start, dead destinations and round-robin between destinations.
 *
 * qmgr_deliver.c owns the transports (one per transport name in use)
 * and calls these functions to queue jobs, to pick the next one to
 * start, and to report how each went. Everything here is bookkeeping in
 * memory with the time passed in, so tests/unit/test_qmgr_sched.c runs
 * it without sockets, timers or queue files; nothing here fails.
 *
 * The policy, as an operator knows it from Postfix:
 *	- a destination is (transport, nexthop): all mail for
 *	  smtp:example.com waits in one queue, whatever message it is in;
 *	  for a transport whose recipient limit is 1 (local's default) it
 *	  is (transport, nexthop, recipient), so the concurrency limit is
 *	  per recipient;
 *	- a message's recipients for one destination go out in requests of
 *	  at most <transport>_destination_recipient_limit;
 *	- slow start: a destination may have initial_destination_
 *	  concurrency deliveries running at first, one more after each
 *	  delivery that reached it, up to <transport>_destination_
 *	  concurrency_limit, and one fewer after each that did not;
 *	- a destination that cannot be reached for a whole pseudo-cohort
 *	  (as many failed deliveries as its window; the count of cohorts is
 *	  <transport>_destination_concurrency_failed_cohort_limit) is dead:
 *	  qmgr_deliver.c defers its mail without connecting until the
 *	  backoff has passed;
 *	- destinations take turns: after serving one, the next one in the
 *	  ring gets the next free slot, so a destination with thousands of
 *	  messages waiting cannot starve one with three;
 *	- an agent connection qmgr_deliver.c keeps for a destination's
 *	  next request counts as one of its deliveries, so the window
 *	  bounds what is open there, not only what is busy.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "qmgr.h"

/* Buckets of a transport's destination lookup (per-recipient
 * destinations can be as many as the recipients in active/). */
#define DEST_HASH	4096

static uint32_t hash_seed;

static uint32_t
hash_add(uint32_t h, const char *s)
{
	for (; *s != '\0'; s++) {
		h ^= (uint32_t)tolower((unsigned char)*s);
		h *= 16777619u;
	}
	return (h ^ 0xff) * 16777619u;	/* a separator between parts */
}

static size_t
dest_bucket(const char *nexthop, const char *rcpt)
{
	uint32_t h;

	if (hash_seed == 0)
		hash_seed = arc4random() | 1u;
	h = hash_add(2166136261u ^ hash_seed, nexthop);
	if (rcpt != NULL)
		h = hash_add(h, rcpt);
	return h % DEST_HASH;
}

static int
dest_is(const struct qmgr_dest *d, const char *nexthop, const char *rcpt)
{
	if ((d->rcpt == NULL) != (rcpt == NULL))
		return 0;
	return strcasecmp(d->nexthop, nexthop) == 0 &&
	    (rcpt == NULL || strcasecmp(d->rcpt, rcpt) == 0);
}

struct qmgr_transport *
qmgr_transport_new(const char *name, const char *service, int dest_limit,
    int init_window, int total_limit, int cohort_limit, size_t rcpt_limit)
{
	struct qmgr_transport *tp = xcalloc(1, sizeof(*tp));

	tp->name = xstrdup(name);
	tp->service = xstrdup(service);
	tp->dest_limit = dest_limit > 0 ? dest_limit : 1;
	tp->init_window = init_window > 0 ? init_window : 1;
	if (tp->init_window > tp->dest_limit)
		tp->init_window = tp->dest_limit;
	tp->total_limit = total_limit > 0 ? total_limit : 1;
	tp->cohort_limit = cohort_limit > 0 ? cohort_limit : 1;
	tp->rcpt_limit = rcpt_limit > 0 ? rcpt_limit : 1;
	tp->batch_limit = 1;
	return tp;
}

void
qmgr_job_free(struct qmgr_job *job)
{
	free(job->idx);
	free(job);
}

static void
dest_free(struct qmgr_dest *d)
{
	struct qmgr_job *job;

	while ((job = d->head) != NULL) {
		d->head = job->next;
		qmgr_job_free(job);
	}
	free(d->nexthop);
	free(d->rcpt);
	free(d->dead_dsn);
	free(d->dead_reason);
	free(d);
}

void
qmgr_transport_free(struct qmgr_transport *tp)
{
	struct qmgr_dest *d;

	while ((d = tp->dests) != NULL) {
		tp->dests = d->next;
		dest_free(d);
	}
	free(tp->hash);
	free(tp->name);
	free(tp->service);
	free(tp);
}

struct qmgr_dest *
qmgr_dest_get(struct qmgr_transport *tp, const char *nexthop)
{
	return qmgr_dest_for(tp, nexthop, NULL);
}

struct qmgr_dest *
qmgr_dest_for(struct qmgr_transport *tp, const char *nexthop,
    const char *rcpt)
{
	struct qmgr_dest *d;
	size_t b = dest_bucket(nexthop, rcpt);

	if (tp->hash == NULL)
		tp->hash = xcalloc(DEST_HASH, sizeof(*tp->hash));
	for (d = tp->hash[b]; d != NULL; d = d->hnext)
		if (dest_is(d, nexthop, rcpt))
			return d;
	d = xcalloc(1, sizeof(*d));
	d->tp = tp;
	d->nexthop = xstrdup(nexthop);
	d->rcpt = rcpt != NULL ? xstrdup(rcpt) : NULL;
	d->window = tp->init_window;
	d->hnext = tp->hash[b];
	tp->hash[b] = d;
	/* At the end of the ring: a newcomer waits its turn like the
	 * others instead of jumping ahead of destinations already
	 * waiting. */
	if ((d->prev = tp->dests_tail) != NULL)
		tp->dests_tail->next = d;
	else
		tp->dests = d;
	tp->dests_tail = d;
	return d;
}

int
qmgr_dest_release(struct qmgr_dest *d)
{
	struct qmgr_transport *tp = d->tp;
	struct qmgr_dest **pp;

	/* A dead destination is kept: its state is what stops new
	 * connections until the backoff is over. */
	if (d->head != NULL || d->active > 0 || d->nidle > 0 ||
	    d->nclosing > 0 || d->dead)
		return 0;
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		tp->dests = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	else
		tp->dests_tail = d->prev;
	for (pp = &tp->hash[dest_bucket(d->nexthop, d->rcpt)]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == d) {
			*pp = d->hnext;
			break;
		}
	/* The next turn goes to the one after d, as it would have. */
	if (tp->cursor == d)
		tp->cursor = d->prev;
	dest_free(d);
	return 1;
}

size_t
qmgr_dest_enqueue(struct qmgr_dest *d, struct qmgr_message *msg,
    const size_t *idx, size_t n, int fallback)
{
	size_t off, take, jobs = 0, limit = d->tp->rcpt_limit;
	struct qmgr_job *job;

	for (off = 0; off < n; off += take) {
		take = n - off < limit ? n - off : limit;
		job = xcalloc(1, sizeof(*job));
		job->msg = msg;
		job->dest = d;
		job->n = take;
		job->fallback = fallback;
		job->idx = xreallocarray(NULL, take, sizeof(size_t));
		memcpy(job->idx, idx + off, take * sizeof(size_t));
		if (d->tail != NULL)
			d->tail->next = job;
		else
			d->head = job;
		d->tail = job;
		d->waiting++;
		msg->jobs++;
		jobs++;
	}
	return jobs;
}

struct qmgr_job *
qmgr_dest_pop(struct qmgr_dest *d)
{
	struct qmgr_job *job = d->head;

	if (job == NULL)
		return NULL;
	if ((d->head = job->next) == NULL)
		d->tail = NULL;
	job->next = NULL;
	d->waiting--;
	return job;
}

/* Room for one more connection at d within its window. */
static int
room(const struct qmgr_dest *d)
{
	return d->active + d->nidle + d->nclosing < d->window;
}

/* Room for one more agent process of the transport. */
static int
tp_room(const struct qmgr_transport *tp)
{
	return tp->active + tp->nidle + tp->nclosing < tp->total_limit;
}

/* Another delivery may start at d now: on a kept connection within its
 * window, or on a new one within its window and the process limit. */
static int
may_start(const struct qmgr_dest *d)
{
	return d->nidle > 0 ? d->active < d->window :
	    room(d) && tp_room(d->tp);
}

struct qmgr_job *
qmgr_sched_next(struct qmgr_transport *tp)
{
	struct qmgr_dest *start, *d;
	struct qmgr_job *job;

	if (tp->dests == NULL || tp->active >= tp->total_limit)
		return NULL;
	start = tp->cursor != NULL && tp->cursor->next != NULL ?
	    tp->cursor->next : tp->dests;
	d = start;
	do {
		if (d->head != NULL && !d->dead && may_start(d)) {
			job = qmgr_dest_pop(d);
			tp->cursor = d;
			tp->active++;
			d->active++;
			return job;
		}
		d = d->next != NULL ? d->next : tp->dests;
	} while (d != start);
	return NULL;
}

struct qmgr_job *
qmgr_sched_rider(struct qmgr_dest *d, size_t taken)
{
	if (taken >= d->tp->batch_limit || d->dead || may_start(d))
		return NULL;
	return qmgr_dest_pop(d);
}

/* 1 when a destination other than except has mail waiting that only
 * the lack of a process holds back. */
static int
others_wait(const struct qmgr_transport *tp, const struct qmgr_dest *except)
{
	const struct qmgr_dest *d;

	for (d = tp->dests; d != NULL; d = d->next)
		if (d != except && d->head != NULL && !d->dead &&
		    d->nidle == 0 && room(d))
			return 1;
	return 0;
}

int
qmgr_sched_crowded(const struct qmgr_transport *tp)
{
	/* A connection on its way out frees a process soon: one at a
	 * time. */
	if (tp->nidle == 0 || tp->nclosing > 0 || tp_room(tp))
		return 0;
	return others_wait(tp, NULL);
}

int
qmgr_sched_may_keep(const struct qmgr_dest *d)
{
	const struct qmgr_transport *tp = d->tp;

	if (d->dead || !room(d))
		return 0;
	return tp->active + tp->nidle + tp->nclosing + 1 < tp->total_limit ||
	    !others_wait(tp, d);
}

void
qmgr_sched_done(struct qmgr_job *job)
{
	job->dest->tp->active--;
	job->dest->active--;
}

void
qmgr_dest_success(struct qmgr_dest *d)
{
	if (d->window < d->tp->dest_limit)
		d->window++;
	d->failed = 0;
}

int
qmgr_dest_failure(struct qmgr_dest *d, const char *dsn, const char *reason,
    double now, unsigned long backoff)
{
	/* One failure is 1/window of a pseudo-cohort: with 5 deliveries
	 * allowed, it takes about 5 failures in a row to count as one
	 * whole cohort; with 1, a single failure does. */
	d->failed += 1.0 / (double)d->window;
	if (d->window > 1)
		d->window--;
	if (d->dead || d->failed + 1e-9 < d->tp->cohort_limit)
		return 0;
	d->dead = 1;
	d->dead_until = now + (double)backoff;
	free(d->dead_dsn);
	free(d->dead_reason);
	d->dead_dsn = xstrdup(dsn);
	d->dead_reason = xstrdup(reason);
	return 1;
}

void
qmgr_dest_revive(struct qmgr_dest *d)
{
	d->dead = 0;
	d->dead_until = 0;
	d->failed = 0;
	d->window = d->tp->init_window;
	free(d->dead_dsn);
	free(d->dead_reason);
	d->dead_dsn = d->dead_reason = NULL;
}

size_t
qmgr_dest_cancel(struct qmgr_dest *d, struct qmgr_message *msg)
{
	struct qmgr_job **pp, *job;
	size_t n = 0;

	/* Unlink in place, keeping the others in their order; the tail
	 * is whatever job is last once we are through. */
	d->tail = NULL;
	for (pp = &d->head; (job = *pp) != NULL;) {
		if (job->msg != msg) {
			d->tail = job;
			pp = &job->next;
			continue;
		}
		*pp = job->next;
		d->waiting--;
		if (msg->jobs > 0)
			msg->jobs--;
		qmgr_job_free(job);
		n++;
	}
	return n;
}
