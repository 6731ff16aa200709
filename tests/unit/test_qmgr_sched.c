/*
 * test_qmgr_sched - qmgr's per-destination scheduling (qmgr/qmgr_sched.c):
 * recipient-limit splitting, slow start, the failed-cohort rule that
 * makes a destination dead and its revival, round-robin between
 * destinations so that a huge one cannot starve a small one, the
 * transport's process limit, and which agent replies count as "could
 * not reach the destination".
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "qmgr.h"

/* qmgr_sched.c does not use the process state; qmgr.h declares it. */
struct qmgr_state qmgr;

/* A transport: name, dest limit, initial window, process limit,
 * failed-cohort limit, recipient limit. */
static struct qmgr_transport *
transport(int dest_limit, int init, int total, int cohort, size_t rcpts)
{
	return qmgr_transport_new("smtp", "smtp", dest_limit, init, total,
	    cohort, rcpts);
}

/* Queue count one-recipient jobs of msg for d. */
static void
queue_jobs(struct qmgr_dest *d, struct qmgr_message *msg, size_t count)
{
	size_t i;

	for (i = 0; i < count; i++)
		assert_int_equal(qmgr_dest_enqueue(d, msg, &i, 1, -1), 1);
}

/* Start the next job and end it at once; its destination's name, or
 * NULL when nothing may start. */
static const char *
run_one(struct qmgr_transport *tp)
{
	static char name[64];
	struct qmgr_job *job = qmgr_sched_next(tp);

	if (job == NULL)
		return NULL;
	strncpy(name, job->dest->nexthop, sizeof(name) - 1);
	qmgr_sched_done(job);
	qmgr_dest_success(job->dest);
	qmgr_job_free(job);
	return name;
}

static void
recipient_limit_splits_a_group_into_requests(void **state)
{
	struct qmgr_transport *tp = transport(10, 5, 100, 1, 3);
	struct qmgr_dest *d = qmgr_dest_get(tp, "b.test");
	struct qmgr_message msg;
	size_t idx[7] = { 0, 2, 3, 5, 6, 8, 9 };
	struct qmgr_job *job;

	memset(&msg, 0, sizeof(msg));
	assert_int_equal(qmgr_dest_enqueue(d, &msg, idx, 7, 0), 3);
	assert_int_equal(msg.jobs, 3);
	assert_int_equal(d->waiting, 3);
	job = qmgr_dest_pop(d);
	assert_int_equal(job->n, 3);
	assert_int_equal(job->idx[0], 0);
	assert_int_equal(job->idx[2], 3);
	assert_int_equal(job->fallback, 0);
	qmgr_job_free(job);
	job = qmgr_dest_pop(d);
	assert_int_equal(job->n, 3);
	assert_int_equal(job->idx[0], 5);
	qmgr_job_free(job);
	job = qmgr_dest_pop(d);
	assert_int_equal(job->n, 1);
	assert_int_equal(job->idx[0], 9);
	qmgr_job_free(job);
	assert_null(qmgr_dest_pop(d));
	assert_int_equal(d->waiting, 0);
	qmgr_transport_free(tp);
}

static void
destinations_are_per_nexthop_without_regard_to_case(void **state)
{
	struct qmgr_transport *tp = transport(10, 5, 100, 1, 50);
	struct qmgr_dest *a = qmgr_dest_get(tp, "B.test");

	assert_ptr_equal(qmgr_dest_get(tp, "b.TEST"), a);
	assert_ptr_not_equal(qmgr_dest_get(tp, "[b.test]"), a);
	qmgr_transport_free(tp);
}

/* Per-recipient destinations (recipient limit 1): one per address at a
 * next hop, apart from the next hop's own, found again after many
 * others, and gone from the lookup once released. */
static void
destinations_per_recipient(void **state)
{
	struct qmgr_transport *tp = transport(2, 2, 100, 1, 1);
	struct qmgr_dest *dom = qmgr_dest_get(tp, "example.test");
	struct qmgr_dest *a = qmgr_dest_for(tp, "example.test",
	    "Alice@example.test");
	struct qmgr_dest *b = qmgr_dest_for(tp, "example.test",
	    "bob@example.test");
	struct qmgr_message msg = { 0 };
	struct qmgr_job *running[4];
	char addr[64];
	size_t i;

	(void)state;
	assert_ptr_not_equal(a, dom);
	assert_ptr_not_equal(a, b);
	assert_string_equal(a->nexthop, "example.test");
	assert_string_equal(a->rcpt, "Alice@example.test");
	assert_null(dom->rcpt);
	for (i = 0; i < 10000; i++) {
		snprintf(addr, sizeof(addr), "u%zu@example.test", i);
		(void)qmgr_dest_for(tp, "example.test", addr);
	}
	assert_ptr_equal(qmgr_dest_for(tp, "EXAMPLE.test",
	    "alice@EXAMPLE.TEST"), a);
	assert_ptr_equal(qmgr_dest_get(tp, "example.test"), dom);
	/* Each has its own window: two of a's and two of b's may run. */
	queue_jobs(a, &msg, 3);
	queue_jobs(b, &msg, 3);
	for (i = 0; i < 4; i++)
		assert_non_null(running[i] = qmgr_sched_next(tp));
	assert_null(qmgr_sched_next(tp));
	assert_int_equal(a->active, 2);
	assert_int_equal(b->active, 2);
	for (i = 0; i < 4; i++) {
		qmgr_sched_done(running[i]);
		qmgr_job_free(running[i]);
	}
	/* Released when idle and empty, then made afresh. */
	for (i = 0; i < 10000; i++) {
		snprintf(addr, sizeof(addr), "u%zu@example.test", i);
		assert_int_equal(qmgr_dest_release(qmgr_dest_for(tp,
		    "example.test", addr)), 1);
	}
	assert_int_equal(qmgr_dest_release(dom), 1);
	assert_ptr_not_equal(qmgr_dest_get(tp, "example.test"), NULL);
	assert_ptr_equal(qmgr_dest_for(tp, "example.test",
	    "bob@example.test"), b);
	qmgr_transport_free(tp);
}

/* Names of the ring, in order, checking the links both ways. */
static const char *
ring(struct qmgr_transport *tp)
{
	static char out[256];
	struct qmgr_dest *d, *prev = NULL;

	out[0] = '\0';
	for (d = tp->dests; d != NULL; prev = d, d = d->next) {
		assert_ptr_equal(d->prev, prev);
		strncat(out, d->nexthop, sizeof(out) - strlen(out) - 1);
	}
	assert_ptr_equal(tp->dests_tail, prev);
	return out;
}

/* A destination released from the middle or the end leaves the others
 * in their order, a newcomer goes last, and the turn after a released
 * one goes to the one after it, not back to the first. */
static void
releasing_a_destination_keeps_the_ring_and_the_turn(void **state)
{
	struct qmgr_transport *tp = transport(10, 5, 100, 1, 50);
	struct qmgr_dest *a = qmgr_dest_get(tp, "a");
	struct qmgr_dest *b = qmgr_dest_get(tp, "b");
	struct qmgr_message msg = { 0 };

	(void)state;
	(void)qmgr_dest_get(tp, "c");
	assert_string_equal(ring(tp), "abc");
	assert_int_equal(qmgr_dest_release(b), 1);
	assert_string_equal(ring(tp), "ac");
	(void)qmgr_dest_get(tp, "d");
	assert_string_equal(ring(tp), "acd");
	assert_int_equal(qmgr_dest_release(qmgr_dest_get(tp, "d")), 1);
	assert_string_equal(ring(tp), "ac");
	b = qmgr_dest_get(tp, "b");
	assert_string_equal(ring(tp), "acb");

	/* Ring a, c, b: a has two waiting, c and b one each. */
	queue_jobs(a, &msg, 2);
	queue_jobs(qmgr_dest_get(tp, "c"), &msg, 1);
	queue_jobs(b, &msg, 1);
	assert_string_equal(run_one(tp), "a");
	assert_string_equal(run_one(tp), "c");
	/* c is done and goes; b's turn comes before a's second. */
	assert_int_equal(qmgr_dest_release(qmgr_dest_get(tp, "c")), 1);
	assert_string_equal(run_one(tp), "b");
	assert_string_equal(run_one(tp), "a");
	assert_null(run_one(tp));
	assert_string_equal(ring(tp), "ab");
	qmgr_transport_free(tp);
}

static void
slow_start_grows_the_window_by_one_per_success(void **state)
{
	struct qmgr_transport *tp = transport(4, 2, 100, 1, 50);
	struct qmgr_dest *d = qmgr_dest_get(tp, "b.test");
	struct qmgr_message msg;
	struct qmgr_job *j[4];

	memset(&msg, 0, sizeof(msg));
	queue_jobs(d, &msg, 10);
	assert_int_equal(d->window, 2);
	j[0] = qmgr_sched_next(tp);
	j[1] = qmgr_sched_next(tp);
	assert_non_null(j[0]);
	assert_non_null(j[1]);
	assert_null(qmgr_sched_next(tp));	/* window 2 is full */

	qmgr_sched_done(j[0]);
	qmgr_dest_success(d);
	qmgr_job_free(j[0]);
	assert_int_equal(d->window, 3);
	j[0] = qmgr_sched_next(tp);
	j[2] = qmgr_sched_next(tp);
	assert_non_null(j[0]);
	assert_non_null(j[2]);
	assert_null(qmgr_sched_next(tp));	/* 3 running, window 3 */

	/* Never past the destination's concurrency limit. */
	qmgr_dest_success(d);
	qmgr_dest_success(d);
	qmgr_dest_success(d);
	assert_int_equal(d->window, 4);
	j[3] = qmgr_sched_next(tp);
	assert_non_null(j[3]);
	assert_null(qmgr_sched_next(tp));
	assert_int_equal(d->active, 4);
	for (size_t i = 0; i < 4; i++) {
		qmgr_sched_done(j[i]);
		qmgr_job_free(j[i]);
	}
	assert_int_equal(d->active, 0);
	assert_int_equal(tp->active, 0);
	qmgr_transport_free(tp);
}

static void
initial_window_is_capped_by_the_limit(void **state)
{
	struct qmgr_transport *tp = transport(2, 5, 100, 1, 50);

	assert_int_equal(qmgr_dest_get(tp, "b.test")->window, 2);
	qmgr_transport_free(tp);
}

static void
one_failure_at_window_one_makes_the_destination_dead(void **state)
{
	struct qmgr_transport *tp = transport(10, 1, 100, 1, 50);
	struct qmgr_dest *d = qmgr_dest_get(tp, "b.test");
	struct qmgr_message msg;
	struct qmgr_job *job;

	memset(&msg, 0, sizeof(msg));
	queue_jobs(d, &msg, 3);
	job = qmgr_sched_next(tp);
	qmgr_sched_done(job);
	qmgr_job_free(job);
	assert_int_equal(qmgr_dest_failure(d, "4.4.1", "connect to "
	    "mx.b.test[127.0.0.2]:25: Connection refused", 1000.0, 300), 1);
	assert_true(d->dead);
	assert_true(d->dead_until > 1299.9 && d->dead_until < 1300.1);
	assert_string_equal(d->dead_dsn, "4.4.1");
	assert_non_null(strstr(d->dead_reason, "Connection refused"));
	/* Mail waits there, but nothing starts: no new connections. */
	assert_int_equal(d->waiting, 2);
	assert_null(qmgr_sched_next(tp));
	/* A dead destination is kept even when idle. */
	while ((job = qmgr_dest_pop(d)) != NULL)
		qmgr_job_free(job);
	assert_int_equal(qmgr_dest_release(d), 0);

	/* Revived: back to the initial window, failures forgotten. */
	queue_jobs(d, &msg, 1);
	qmgr_dest_revive(d);
	assert_false(d->dead);
	assert_null(d->dead_reason);
	assert_int_equal(d->window, 1);
	assert_true(d->failed == 0);
	job = qmgr_sched_next(tp);
	assert_non_null(job);
	qmgr_sched_done(job);
	qmgr_job_free(job);
	assert_int_equal(qmgr_dest_release(d), 1);
	assert_null(tp->dests);
	qmgr_transport_free(tp);
}

static void
failures_count_in_cohorts_of_the_window(void **state)
{
	struct qmgr_transport *tp = transport(10, 3, 100, 1, 50);
	struct qmgr_dest *d = qmgr_dest_get(tp, "b.test");

	/* 1/3 + 1/2 of a cohort, the window shrinking 3 -> 2 -> 1... */
	assert_int_equal(qmgr_dest_failure(d, "4.4.1", "x", 0, 60), 0);
	assert_int_equal(d->window, 2);
	assert_int_equal(qmgr_dest_failure(d, "4.4.1", "x", 0, 60), 0);
	assert_int_equal(d->window, 1);
	/* ...then 1/1: past one whole cohort. */
	assert_int_equal(qmgr_dest_failure(d, "4.4.1", "x", 0, 60), 1);
	assert_int_equal(d->window, 1);
	qmgr_transport_free(tp);

	/* A success in between forgets the failures and grows again. */
	tp = transport(10, 2, 100, 1, 50);
	d = qmgr_dest_get(tp, "b.test");
	assert_int_equal(qmgr_dest_failure(d, "4.4.1", "x", 0, 60), 0);
	assert_int_equal(d->window, 1);
	qmgr_dest_success(d);
	assert_int_equal(d->window, 2);
	assert_true(d->failed == 0);
	assert_int_equal(qmgr_dest_failure(d, "4.4.1", "x", 0, 60), 0);
	assert_false(d->dead);
	qmgr_transport_free(tp);

	/* A cohort limit of 2 takes two whole cohorts at window 1. */
	tp = transport(10, 1, 100, 2, 50);
	d = qmgr_dest_get(tp, "b.test");
	assert_int_equal(qmgr_dest_failure(d, "4.4.1", "x", 0, 60), 0);
	assert_int_equal(qmgr_dest_failure(d, "4.4.1", "x", 0, 60), 1);
	qmgr_transport_free(tp);
}

/* The destinations served, one job at a time, as "a b c ...". */
static void
serve_all(struct qmgr_transport *tp, char *out, size_t outlen)
{
	const char *name;

	out[0] = '\0';
	while ((name = run_one(tp)) != NULL) {
		if (out[0] != '\0')
			strncat(out, " ", outlen - strlen(out) - 1);
		strncat(out, name, outlen - strlen(out) - 1);
	}
}

static void
destinations_take_turns(void **state)
{
	/* One process for the whole transport: one job at a time. */
	struct qmgr_transport *tp = transport(10, 10, 1, 1, 50);
	struct qmgr_message msg;
	char order[256];

	memset(&msg, 0, sizeof(msg));
	queue_jobs(qmgr_dest_get(tp, "a"), &msg, 5);
	queue_jobs(qmgr_dest_get(tp, "b"), &msg, 2);
	queue_jobs(qmgr_dest_get(tp, "c"), &msg, 1);
	serve_all(tp, order, sizeof(order));
	assert_string_equal(order, "a b c a b a a a");
	qmgr_transport_free(tp);
}

static void
a_newcomer_is_served_before_the_busy_destination_again(void **state)
{
	struct qmgr_transport *tp = transport(10, 10, 1, 1, 50);
	struct qmgr_dest *big = qmgr_dest_get(tp, "big");
	struct qmgr_message msg;
	char order[1024];

	memset(&msg, 0, sizeof(msg));
	queue_jobs(big, &msg, 100);
	assert_string_equal(run_one(tp), "big");
	assert_string_equal(run_one(tp), "big");
	/* Mail for another destination arrives behind 98 waiting jobs. */
	queue_jobs(qmgr_dest_get(tp, "small"), &msg, 2);
	assert_string_equal(run_one(tp), "small");
	assert_string_equal(run_one(tp), "big");
	assert_string_equal(run_one(tp), "small");
	serve_all(tp, order, sizeof(order));
	assert_int_equal(strlen(order), 97 * 4 - 1);	/* "big" x 97 */
	assert_int_equal(big->waiting, 0);
	qmgr_transport_free(tp);
}

static void
busy_destination_at_its_limit_leaves_slots_to_others(void **state)
{
	/* 3 processes; "big" may use 2 of them at once. */
	struct qmgr_transport *tp = transport(2, 2, 3, 1, 50);
	struct qmgr_message msg;
	struct qmgr_job *j[4];

	memset(&msg, 0, sizeof(msg));
	queue_jobs(qmgr_dest_get(tp, "big"), &msg, 60);
	j[0] = qmgr_sched_next(tp);
	j[1] = qmgr_sched_next(tp);
	assert_null(qmgr_sched_next(tp));
	queue_jobs(qmgr_dest_get(tp, "small"), &msg, 3);
	j[2] = qmgr_sched_next(tp);
	assert_non_null(j[2]);
	assert_string_equal(j[2]->dest->nexthop, "small");
	/* The transport's process limit holds for everyone. */
	assert_null(qmgr_sched_next(tp));
	assert_int_equal(tp->active, 3);
	/* A slot frees: the turn after "small" is "big"'s again. */
	qmgr_sched_done(j[0]);
	qmgr_job_free(j[0]);
	j[3] = qmgr_sched_next(tp);
	assert_string_equal(j[3]->dest->nexthop, "big");
	for (size_t i = 1; i < 4; i++) {
		qmgr_sched_done(j[i]);
		qmgr_job_free(j[i]);
	}
	qmgr_transport_free(tp);
}

static void
dead_destination_does_not_hold_up_the_others(void **state)
{
	struct qmgr_transport *tp = transport(10, 1, 1, 1, 50);
	struct qmgr_dest *dead = qmgr_dest_get(tp, "dead");
	struct qmgr_message msg;
	char order[256];

	memset(&msg, 0, sizeof(msg));
	queue_jobs(dead, &msg, 3);
	queue_jobs(qmgr_dest_get(tp, "alive"), &msg, 2);
	assert_int_equal(qmgr_dest_failure(dead, "4.4.1", "refused", 0, 60),
	    1);
	serve_all(tp, order, sizeof(order));
	assert_string_equal(order, "alive alive");
	assert_int_equal(dead->waiting, 3);
	qmgr_transport_free(tp);
}

/* Pretend qmgr_deliver.c keeps n agent connections for d. */
static void
keep(struct qmgr_dest *d, int n)
{
	d->nidle += n;
	d->tp->nidle += n;
}

static void
kept_connection_is_used_at_the_process_limit_and_others_are_crowded(
    void **state)
{
	/* Two processes: one delivering for busy, one kept for idle. */
	struct qmgr_transport *tp = transport(5, 5, 2, 1, 50);
	struct qmgr_dest *busy = qmgr_dest_get(tp, "busy.test");
	struct qmgr_dest *kept = qmgr_dest_get(tp, "kept.test");
	struct qmgr_dest *other = qmgr_dest_get(tp, "other.test");
	struct qmgr_message msg;
	struct qmgr_job *running, *job;

	memset(&msg, 0, sizeof(msg));
	queue_jobs(busy, &msg, 1);
	running = qmgr_sched_next(tp);
	assert_ptr_equal(running->dest, busy);
	keep(kept, 1);
	queue_jobs(other, &msg, 1);
	/* No process left for other; closing kept's connection would
	 * give it one. */
	assert_null(qmgr_sched_next(tp));
	assert_true(qmgr_sched_crowded(tp));
	/* kept's own mail may always use its connection. */
	queue_jobs(kept, &msg, 1);
	job = qmgr_sched_next(tp);
	assert_non_null(job);
	assert_ptr_equal(job->dest, kept);
	keep(kept, -1);			/* qmgr_deliver.c took it */
	assert_false(qmgr_sched_crowded(tp));	/* nothing kept to close */
	qmgr_sched_done(job);
	qmgr_job_free(job);
	qmgr_sched_done(running);
	qmgr_job_free(running);
	qmgr_transport_free(tp);
}

static void
connection_is_kept_only_within_the_window_and_not_from_waiting_mail(
    void **state)
{
	struct qmgr_transport *tp = transport(2, 2, 3, 1, 50);
	struct qmgr_dest *d = qmgr_dest_get(tp, "b.test");
	struct qmgr_dest *e = qmgr_dest_get(tp, "e.test");
	struct qmgr_message msg;
	struct qmgr_job *job;

	memset(&msg, 0, sizeof(msg));
	assert_true(qmgr_sched_may_keep(d));
	keep(d, 1);
	queue_jobs(d, &msg, 1);
	job = qmgr_sched_next(tp);		/* on the kept one */
	keep(d, -1);
	keep(d, 1);				/* another finished */
	/* One running and one kept fill a window of two. */
	assert_false(qmgr_sched_may_keep(d));
	qmgr_sched_done(job);
	qmgr_job_free(job);
	/* One kept of three processes: keeping a second is fine. */
	assert_true(qmgr_sched_may_keep(d));
	/* With e delivering, a second kept one would take the last free
	 * process: fine while nobody else waits, not when e does. */
	queue_jobs(e, &msg, 1);
	job = qmgr_sched_next(tp);
	assert_ptr_equal(job->dest, e);
	assert_true(qmgr_sched_may_keep(d));
	queue_jobs(e, &msg, 1);
	assert_false(qmgr_sched_may_keep(d));
	qmgr_sched_done(job);
	qmgr_job_free(job);
	/* A dead destination keeps nothing. */
	d->dead = 1;
	assert_false(qmgr_sched_may_keep(d));
	d->dead = 0;
	keep(d, -1);
	qmgr_transport_free(tp);
}

static void
connection_on_its_way_out_still_counts(void **state)
{
	/* Window 1, two processes: the only connection to d was let go
	 * and its agent is still saying QUIT. */
	struct qmgr_transport *tp = transport(1, 1, 2, 1, 50);
	struct qmgr_dest *d = qmgr_dest_get(tp, "b.test");
	struct qmgr_dest *e = qmgr_dest_get(tp, "e.test");
	struct qmgr_message msg;
	struct qmgr_job *job;

	memset(&msg, 0, sizeof(msg));
	d->nclosing = tp->nclosing = 1;
	queue_jobs(d, &msg, 1);
	assert_null(qmgr_sched_next(tp));	/* d's window is taken */
	assert_false(qmgr_sched_may_keep(d));
	/* e may use the second process, and keeps nothing back. */
	queue_jobs(e, &msg, 1);
	job = qmgr_sched_next(tp);
	assert_ptr_equal(job->dest, e);
	/* Both processes busy, one kept by e: no eviction while one is
	 * on its way out anyway. */
	qmgr_sched_done(job);
	qmgr_job_free(job);
	keep(e, 1);
	queue_jobs(qmgr_dest_get(tp, "f.test"), &msg, 1);
	assert_false(qmgr_sched_crowded(tp));
	d->nclosing = tp->nclosing = 0;		/* the agent closed */
	job = qmgr_sched_next(tp);		/* d or f, in turn */
	assert_non_null(job);
	assert_ptr_not_equal(job->dest, e);
	/* The other one waits for the process e's kept connection holds. */
	assert_true(qmgr_sched_crowded(tp));
	qmgr_sched_done(job);
	qmgr_job_free(job);
	keep(e, -1);
	qmgr_transport_free(tp);
}

static void
cancel_takes_only_that_messages_waiting_jobs_and_keeps_the_order(void **state)
{
	struct qmgr_transport *tp = transport(10, 5, 100, 1, 1);
	struct qmgr_dest *d = qmgr_dest_get(tp, "b.test");
	struct qmgr_message m1, m2;
	struct qmgr_job *job;
	size_t i;

	memset(&m1, 0, sizeof(m1));
	memset(&m2, 0, sizeof(m2));
	/* m1 m2 m1 m2 m1: the first and the last are m1's. */
	for (i = 0; i < 5; i++)
		assert_int_equal(qmgr_dest_enqueue(d, i % 2 ? &m2 : &m1, &i,
		    1, -1), 1);
	assert_int_equal(m1.jobs, 3);
	assert_int_equal(qmgr_dest_cancel(d, &m1), 3);
	assert_int_equal(m1.jobs, 0);
	assert_int_equal(m2.jobs, 2);
	assert_int_equal(d->waiting, 2);
	assert_int_equal(qmgr_dest_cancel(d, &m1), 0);
	/* The tail is m2's last job: a new job queues behind it. */
	i = 9;
	qmgr_dest_enqueue(d, &m1, &i, 1, -1);
	job = qmgr_dest_pop(d);
	assert_ptr_equal(job->msg, &m2);
	assert_int_equal(job->idx[0], 1);
	qmgr_job_free(job);
	job = qmgr_dest_pop(d);
	assert_ptr_equal(job->msg, &m2);
	assert_int_equal(job->idx[0], 3);
	qmgr_job_free(job);
	job = qmgr_dest_pop(d);
	assert_ptr_equal(job->msg, &m1);
	assert_int_equal(job->idx[0], 9);
	qmgr_job_free(job);
	assert_null(qmgr_dest_pop(d));
	/* Emptied by a cancel, the queue takes new jobs again. */
	qmgr_dest_enqueue(d, &m2, &i, 1, -1);
	assert_int_equal(qmgr_dest_cancel(d, &m2), 1);
	assert_null(d->head);
	assert_null(d->tail);
	qmgr_dest_enqueue(d, &m1, &i, 1, -1);
	assert_ptr_equal(d->head, d->tail);
	assert_int_equal(qmgr_dest_release(d), 0);
	qmgr_transport_free(tp);
}

/*
 * Jobs ride behind a started one only when they would wait anyway: the
 * destination's window (or the process limit) is full, up to the batch
 * limit, never for a dead destination.
 */
static void
riders_only_when_the_destination_is_full(void **state)
{
	struct qmgr_transport *tp = transport(2, 2, 100, 1, 1);
	struct qmgr_dest *d = qmgr_dest_get(tp, "b.test");
	struct qmgr_message msg;
	struct qmgr_job *a, *b, *r1, *r2;

	(void)state;
	memset(&msg, 0, sizeof(msg));
	queue_jobs(d, &msg, 6);
	/* Batch limit 1 (the default): never. */
	a = qmgr_sched_next(tp);
	b = qmgr_sched_next(tp);
	assert_non_null(b);
	assert_null(qmgr_sched_rider(d, 1));
	tp->batch_limit = 3;
	/* The window is full now: two may ride behind b, not a third. */
	r1 = qmgr_sched_rider(d, 1);
	r2 = qmgr_sched_rider(d, 2);
	assert_non_null(r1);
	assert_non_null(r2);
	assert_null(qmgr_sched_rider(d, 3));
	assert_int_equal(d->waiting, 2);
	assert_int_equal(d->active, 2);	/* riders take no slot */
	qmgr_job_free(r1);
	qmgr_job_free(r2);
	/* A slot free again: the next job starts on its own. */
	qmgr_sched_done(a);
	qmgr_job_free(a);
	assert_null(qmgr_sched_rider(d, 1));
	/* Process limit full, window not: riders again. */
	tp->total_limit = 1;
	assert_non_null(r1 = qmgr_sched_rider(d, 1));
	qmgr_job_free(r1);
	/* Dead: nothing more goes. */
	d->dead = 1;
	assert_null(qmgr_sched_rider(d, 1));
	d->dead = 0;
	qmgr_sched_done(b);
	qmgr_job_free(b);
	qmgr_transport_free(tp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(recipient_limit_splits_a_group_into_requests),
		cmocka_unit_test(destinations_per_recipient),
		cmocka_unit_test(
		    releasing_a_destination_keeps_the_ring_and_the_turn),
		cmocka_unit_test(
		    destinations_are_per_nexthop_without_regard_to_case),
		cmocka_unit_test(
		    slow_start_grows_the_window_by_one_per_success),
		cmocka_unit_test(initial_window_is_capped_by_the_limit),
		cmocka_unit_test(
		    one_failure_at_window_one_makes_the_destination_dead),
		cmocka_unit_test(failures_count_in_cohorts_of_the_window),
		cmocka_unit_test(destinations_take_turns),
		cmocka_unit_test(
		    a_newcomer_is_served_before_the_busy_destination_again),
		cmocka_unit_test(
		    busy_destination_at_its_limit_leaves_slots_to_others),
		cmocka_unit_test(dead_destination_does_not_hold_up_the_others),
		cmocka_unit_test(
	kept_connection_is_used_at_the_process_limit_and_others_are_crowded),
		cmocka_unit_test(
	connection_is_kept_only_within_the_window_and_not_from_waiting_mail),
		cmocka_unit_test(connection_on_its_way_out_still_counts),
		cmocka_unit_test(
	cancel_takes_only_that_messages_waiting_jobs_and_keeps_the_order),
		cmocka_unit_test(riders_only_when_the_destination_is_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
