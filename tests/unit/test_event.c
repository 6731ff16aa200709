/*
 * test_event - timers fire in due order and can be cancelled, fd watches
 * report readiness and hang-ups, signals arrive as callbacks, and a
 * callback may change the loop under its own feet safely.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "event.h"

struct record {
	struct event_loop	*loop;
	char			 log[64];
	int			 n;
	int			 stop_at;	/* stop the loop after this many */
};

struct mark {
	struct record	*rec;
	char		 c;
};

static void
note(struct record *r, char c)
{
	if (r->n < (int)sizeof(r->log) - 1)
		r->log[r->n++] = c;
	if (r->n == r->stop_at)
		event_loop_stop(r->loop);
}

static void
timer_mark(void *ctx)
{
	struct mark *m = ctx;

	note(m->rec, m->c);
}

static void
timers_fire_in_due_order_not_add_order(void **state)
{
	struct record r = { 0 };
	struct mark a = { &r, 'a' }, b = { &r, 'b' }, c = { &r, 'c' };
	long long t0, dt;

	r.loop = event_loop_new();
	r.stop_at = 3;
	t0 = event_now_ms();
	assert_true(event_timer_add(r.loop, 30, timer_mark, &c) > 0);
	assert_true(event_timer_add(r.loop, 10, timer_mark, &a) > 0);
	assert_true(event_timer_add(r.loop, 20, timer_mark, &b) > 0);
	assert_int_equal(event_loop_run(r.loop), 0);
	dt = event_now_ms() - t0;
	assert_string_equal(r.log, "abc");
	assert_true(dt >= 29 && dt < 500);
	event_loop_free(r.loop);
}

static void
timers_due_together_fire_in_add_order(void **state)
{
	struct record r = { 0 };
	struct mark m[5];
	int i;

	r.loop = event_loop_new();
	r.stop_at = 5;
	for (i = 0; i < 5; i++) {
		m[i].rec = &r;
		m[i].c = (char)('1' + i);
		event_timer_add(r.loop, i == 0 ? 0 : 5, timer_mark, &m[i]);
	}
	assert_int_equal(event_loop_run(r.loop), 0);
	assert_string_equal(r.log, "12345");
	event_loop_free(r.loop);
}

static void
cancelled_timer_never_fires(void **state)
{
	struct record r = { 0 };
	struct mark a = { &r, 'a' }, b = { &r, 'b' }, c = { &r, 'c' };
	unsigned long id;

	r.loop = event_loop_new();
	r.stop_at = 2;
	event_timer_add(r.loop, 5, timer_mark, &a);
	id = event_timer_add(r.loop, 10, timer_mark, &b);
	event_timer_add(r.loop, 20, timer_mark, &c);
	event_timer_cancel(r.loop, id);
	event_timer_cancel(r.loop, id);		/* twice is harmless */
	event_timer_cancel(r.loop, 999999);	/* unknown too */
	assert_int_equal(event_loop_run(r.loop), 0);
	assert_string_equal(r.log, "ac");
	event_loop_free(r.loop);
}

struct canceller {
	struct record	*rec;
	unsigned long	 victim;
};

static void
timer_cancel_other(void *ctx)
{
	struct canceller *k = ctx;

	event_timer_cancel(k->rec->loop, k->victim);
	note(k->rec, 'k');
}

static void
timer_cancelled_by_an_earlier_timer_in_the_same_pass(void **state)
{
	struct record r = { 0 };
	struct mark v = { &r, 'v' }, end = { &r, 'e' };
	struct canceller k = { &r, 0 };

	r.loop = event_loop_new();
	r.stop_at = 2;
	event_timer_add(r.loop, 5, timer_cancel_other, &k);
	k.victim = event_timer_add(r.loop, 5, timer_mark, &v);
	event_timer_add(r.loop, 30, timer_mark, &end);
	/* Both are due by the time the loop first looks. */
	usleep(10000);
	assert_int_equal(event_loop_run(r.loop), 0);
	assert_string_equal(r.log, "ke");
	event_loop_free(r.loop);
}

static void
timer_rearm(void *ctx)
{
	struct mark *m = ctx;

	note(m->rec, m->c);
	event_timer_add(m->rec->loop, 0, timer_rearm, m);
}

static void
zero_ms_timer_added_by_a_timer_waits_for_the_next_pass(void **state)
{
	struct record r = { 0 };
	struct mark m = { &r, 'x' };

	r.loop = event_loop_new();
	r.stop_at = 100;
	event_timer_add(r.loop, 0, timer_rearm, &m);
	/* One pass runs it once; an endless pass would never return. */
	assert_int_equal(event_loop_once(r.loop, 0), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(event_loop_once(r.loop, 0), 0);
	assert_int_equal(r.n, 2);
	event_loop_free(r.loop);
}

static void
once_returns_after_max_ms_when_idle(void **state)
{
	struct event_loop *loop;
	long long t0, dt;

	loop = event_loop_new();
	t0 = event_now_ms();
	assert_int_equal(event_loop_once(loop, 50), 0);
	dt = event_now_ms() - t0;
	assert_true(dt >= 45 && dt < 500);
	event_loop_free(loop);
}

struct seen {
	int	fd;
	int	events;
	int	calls;
};

static void
fd_seen(int fd, int events, void *ctx)
{
	struct seen *s = ctx;

	s->fd = fd;
	s->events |= events;
	s->calls++;
}

static void
fd_watch_reports_readable_only_when_data_waits(void **state)
{
	struct event_loop *loop;
	struct seen s = { -1, 0, 0 };
	int sv[2];

	loop = event_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(event_fd_add(loop, sv[0], EVENT_READ, fd_seen, &s),
	    0);
	assert_int_equal(event_loop_once(loop, 20), 0);
	assert_int_equal(s.calls, 0);
	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_int_equal(event_loop_once(loop, 1000), 0);
	assert_int_equal(s.calls, 1);
	assert_int_equal(s.fd, sv[0]);
	assert_int_equal(s.events, EVENT_READ);
	/* Removed: no more calls although the byte is still unread. */
	event_fd_del(loop, sv[0]);
	assert_int_equal(event_loop_once(loop, 20), 0);
	assert_int_equal(s.calls, 1);
	event_fd_del(loop, sv[0]);	/* twice is harmless */
	close(sv[0]);
	close(sv[1]);
	event_loop_free(loop);
}

static void
fd_watch_replaced_by_a_second_add(void **state)
{
	struct event_loop *loop;
	struct seen first = { -1, 0, 0 }, second = { -1, 0, 0 };
	int sv[2];

	loop = event_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(event_fd_add(loop, sv[0], EVENT_READ, fd_seen,
	    &first), 0);
	/* Now writable, which a fresh socket always is. */
	assert_int_equal(event_fd_add(loop, sv[0], EVENT_WRITE, fd_seen,
	    &second), 0);
	assert_int_equal(event_loop_once(loop, 1000), 0);
	assert_int_equal(first.calls, 0);
	assert_int_equal(second.calls, 1);
	assert_int_equal(second.events, EVENT_WRITE);
	event_fd_del(loop, sv[0]);
	close(sv[0]);
	close(sv[1]);
	event_loop_free(loop);
}

static void
hang_up_is_reported_as_error(void **state)
{
	struct event_loop *loop;
	struct seen s = { -1, 0, 0 };
	int p[2];

	loop = event_loop_new();
	assert_int_equal(pipe(p), 0);
	assert_int_equal(event_fd_add(loop, p[0], EVENT_READ, fd_seen, &s), 0);
	close(p[1]);
	assert_int_equal(event_loop_once(loop, 1000), 0);
	assert_int_equal(s.calls, 1);
	assert_true(s.events & EVENT_ERROR);
	event_fd_del(loop, p[0]);
	close(p[0]);
	event_loop_free(loop);
}

static void
regular_file_cannot_be_watched(void **state)
{
	struct event_loop *loop;
	struct seen s = { -1, 0, 0 };
	FILE *f;

	loop = event_loop_new();
	f = tmpfile();
	assert_non_null(f);
	assert_int_equal(event_fd_add(loop, fileno(f), EVENT_READ, fd_seen,
	    &s), -1);
	fclose(f);
	event_loop_free(loop);
}

/* Two sockets ready at once; whichever runs first removes the other. */
struct pair_ctx {
	struct event_loop	*loop;
	int			 fd[2];
	int			 calls;
};

static void
fd_remove_other(int fd, int events, void *ctx)
{
	struct pair_ctx *p = ctx;

	p->calls++;
	event_fd_del(p->loop, fd == p->fd[0] ? p->fd[1] : p->fd[0]);
}

static void
watch_removed_by_a_callback_is_not_called_in_the_same_pass(void **state)
{
	struct pair_ctx p = { 0 };
	int a[2], b[2];

	p.loop = event_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	p.fd[0] = a[0];
	p.fd[1] = b[0];
	event_fd_add(p.loop, a[0], EVENT_READ, fd_remove_other, &p);
	event_fd_add(p.loop, b[0], EVENT_READ, fd_remove_other, &p);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "x", 1), 1);
	assert_int_equal(event_loop_once(p.loop, 1000), 0);
	assert_int_equal(p.calls, 1);
	event_fd_del(p.loop, a[0]);
	event_fd_del(p.loop, b[0]);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
	event_loop_free(p.loop);
}

struct sig_seen {
	struct event_loop	*loop;
	int			 signo;
	int			 calls;
};

static void
sig_seen(int signo, void *ctx)
{
	struct sig_seen *s = ctx;

	s->signo = signo;
	s->calls++;
	event_loop_stop(s->loop);
}

static void
signal_is_delivered_through_the_loop(void **state)
{
	struct sig_seen s = { 0 };
	sigset_t mask;

	s.loop = event_loop_new();
	assert_int_equal(event_signal_add(s.loop, SIGUSR1, sig_seen, &s), 0);
	assert_int_equal(event_signal_add(s.loop, SIGUSR2, sig_seen, &s), 0);
	/* Without the loop, SIGUSR1 would end this test. */
	assert_int_equal(kill(getpid(), SIGUSR2), 0);
	assert_int_equal(event_loop_run(s.loop), 0);
	assert_int_equal(s.signo, SIGUSR2);
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	assert_int_equal(event_loop_run(s.loop), 0);
	assert_int_equal(s.signo, SIGUSR1);
	assert_int_equal(s.calls, 2);
	/* A pending signal is drained, and the mask is put back. */
	assert_int_equal(kill(getpid(), SIGUSR1), 0);
	event_loop_free(s.loop);
	sigprocmask(SIG_BLOCK, NULL, &mask);
	assert_false(sigismember(&mask, SIGUSR1));
	assert_false(sigismember(&mask, SIGUSR2));
}

static void
now_ms_is_monotonic_and_in_milliseconds(void **state)
{
	long long a, b;

	a = event_now_ms();
	usleep(20000);
	b = event_now_ms();
	assert_true(b - a >= 19 && b - a < 500);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(timers_fire_in_due_order_not_add_order),
		cmocka_unit_test(timers_due_together_fire_in_add_order),
		cmocka_unit_test(cancelled_timer_never_fires),
		cmocka_unit_test(timer_cancelled_by_an_earlier_timer_in_the_same_pass),
		cmocka_unit_test(zero_ms_timer_added_by_a_timer_waits_for_the_next_pass),
		cmocka_unit_test(once_returns_after_max_ms_when_idle),
		cmocka_unit_test(fd_watch_reports_readable_only_when_data_waits),
		cmocka_unit_test(fd_watch_replaced_by_a_second_add),
		cmocka_unit_test(hang_up_is_reported_as_error),
		cmocka_unit_test(regular_file_cannot_be_watched),
		cmocka_unit_test(watch_removed_by_a_callback_is_not_called_in_the_same_pass),
		cmocka_unit_test(signal_is_delivered_through_the_loop),
		cmocka_unit_test(now_ms_is_monotonic_and_in_milliseconds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
