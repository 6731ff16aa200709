/*
 * event - the epoll event loop. See event.h.
 *
 * Watches live in a table indexed by fd. Each watch carries a generation
 * number that is also stored in the epoll event, so an event that was
 * already fetched for a watch that a callback has since removed (or
 * replaced by a new connection on the same fd number) is dropped rather
 * than delivered to the wrong owner. Timers are a list sorted by due
 * time, then by id, so timers due at the same moment fire in the order
 * they were added; a pass runs only timers that existed when it began,
 * so a callback that re-arms a 0 ms timer cannot starve the loop.
 * Signals come through one signalfd; the signals it carries stay blocked
 * until event_loop_free(), which drains what is pending and restores
 * the mask it found.
 *
 * Failures of epoll_ctl, epoll_wait or signalfd return -1 with errno;
 * nothing here is fatal except running out of memory.
 */
#include "autoconf.h"

#include <sys/epoll.h>
#include <sys/signalfd.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "event.h"

#define EVENT_BATCH	64
#define EVENT_SIGNAL_TAG	UINT64_MAX	/* epoll data of the signalfd */

struct event_watch {
	event_fd_fn	 fn;
	void		*ctx;
	uint32_t	 gen;		/* 0: not watched */
};

struct event_timer {
	struct event_timer	*next;
	unsigned long		 id;
	long long		 due;	/* event_now_ms() */
	event_timer_fn		 fn;
	void			*ctx;
};

struct event_signal {
	event_signal_fn	 fn;
	void		*ctx;
};

struct event_loop {
	int			 epfd;
	struct event_watch	*watch;
	size_t			 nwatch;
	uint32_t		 gen;
	struct event_timer	*timers;
	unsigned long		 timer_id;
	int			 sigfd;
	sigset_t		 sigmask;	/* signals we deliver */
	sigset_t		 sigblocked;	/* of those, the ones we blocked */
	struct event_signal	 sig[NSIG];
	int			 stop;
};

long long
event_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct event_loop *
event_loop_new(void)
{
	struct event_loop *loop;
	int fd;

	if ((fd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return NULL;
	loop = xcalloc(1, sizeof(*loop));
	loop->epfd = fd;
	loop->sigfd = -1;
	sigemptyset(&loop->sigmask);
	sigemptyset(&loop->sigblocked);
	return loop;
}

void
event_loop_free(struct event_loop *loop)
{
	struct signalfd_siginfo si;
	struct event_timer *t;

	if (loop == NULL)
		return;
	if (loop->sigfd >= 0) {
		/* Take what is pending, so unblocking delivers nothing. */
		while (read(loop->sigfd, &si, sizeof(si)) == sizeof(si))
			;
		sigprocmask(SIG_UNBLOCK, &loop->sigblocked, NULL);
		close(loop->sigfd);
	}
	while ((t = loop->timers) != NULL) {
		loop->timers = t->next;
		free(t);
	}
	close(loop->epfd);
	free(loop->watch);
	free(loop);
}

int
event_fd_add(struct event_loop *loop, int fd, int events, event_fd_fn fn,
    void *ctx)
{
	struct epoll_event ev;
	size_t n;
	int op;

	if (fd < 0 || fn == NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((size_t)fd >= loop->nwatch) {
		n = loop->nwatch ? loop->nwatch : 64;
		while (n <= (size_t)fd)
			n *= 2;
		loop->watch = xreallocarray(loop->watch, n,
		    sizeof(*loop->watch));
		memset(loop->watch + loop->nwatch, 0,
		    (n - loop->nwatch) * sizeof(*loop->watch));
		loop->nwatch = n;
	}
	if (++loop->gen == 0)
		loop->gen = 1;
	memset(&ev, 0, sizeof(ev));
	if (events & EVENT_READ)
		ev.events |= EPOLLIN;
	if (events & EVENT_WRITE)
		ev.events |= EPOLLOUT;
	ev.data.u64 = (uint64_t)loop->gen << 32 | (uint32_t)fd;
	op = loop->watch[fd].gen != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(loop->epfd, op, fd, &ev) < 0) {
		/*
		 * Our table and the kernel disagree when an fd was closed
		 * (or a dup of it kept open) without event_fd_del(): try
		 * the other operation once.
		 */
		if (op == EPOLL_CTL_MOD && errno == ENOENT)
			op = EPOLL_CTL_ADD;
		else if (op == EPOLL_CTL_ADD && errno == EEXIST)
			op = EPOLL_CTL_MOD;
		else
			return -1;
		if (epoll_ctl(loop->epfd, op, fd, &ev) < 0)
			return -1;
	}
	loop->watch[fd].fn = fn;
	loop->watch[fd].ctx = ctx;
	loop->watch[fd].gen = loop->gen;
	return 0;
}

void
event_fd_del(struct event_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nwatch || loop->watch[fd].gen == 0)
		return;
	/* Fails harmlessly when fd was closed first. */
	(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(&loop->watch[fd], 0, sizeof(loop->watch[fd]));
}

unsigned long
event_timer_add(struct event_loop *loop, long ms, event_timer_fn fn,
    void *ctx)
{
	struct event_timer *t, **pp;

	t = xcalloc(1, sizeof(*t));
	if (++loop->timer_id == 0)
		loop->timer_id = 1;
	t->id = loop->timer_id;
	t->due = event_now_ms() + (ms > 0 ? ms : 0);
	t->fn = fn;
	t->ctx = ctx;
	for (pp = &loop->timers; *pp != NULL && (*pp)->due <= t->due;
	    pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	return t->id;
}

void
event_timer_cancel(struct event_loop *loop, unsigned long id)
{
	struct event_timer *t, **pp;

	for (pp = &loop->timers; (t = *pp) != NULL; pp = &t->next) {
		if (t->id == id) {
			*pp = t->next;
			free(t);
			return;
		}
	}
}

int
event_signal_add(struct event_loop *loop, int signo, event_signal_fn fn,
    void *ctx)
{
	struct epoll_event ev;
	sigset_t one, old, mask;
	int fd;

	if (signo <= 0 || signo >= NSIG || fn == NULL) {
		errno = EINVAL;
		return -1;
	}
	sigemptyset(&one);
	sigaddset(&one, signo);
	if (sigprocmask(SIG_BLOCK, &one, &old) < 0)
		return -1;
	mask = loop->sigmask;
	sigaddset(&mask, signo);
	if ((fd = signalfd(loop->sigfd, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) <
	    0)
		goto fail;
	if (loop->sigfd < 0) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN;
		ev.data.u64 = EVENT_SIGNAL_TAG;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			goto fail;
		}
		loop->sigfd = fd;
	}
	loop->sigmask = mask;
	if (!sigismember(&old, signo))
		sigaddset(&loop->sigblocked, signo);
	loop->sig[signo].fn = fn;
	loop->sig[signo].ctx = ctx;
	return 0;

fail:
	if (!sigismember(&old, signo)) {
		int saved = errno;

		sigprocmask(SIG_UNBLOCK, &one, NULL);
		errno = saved;
	}
	return -1;
}

static void
event_run_signals(struct event_loop *loop)
{
	struct signalfd_siginfo si;
	int signo;

	while (!loop->stop &&
	    read(loop->sigfd, &si, sizeof(si)) == sizeof(si)) {
		signo = (int)si.ssi_signo;
		if (signo > 0 && signo < NSIG && loop->sig[signo].fn != NULL)
			loop->sig[signo].fn(signo, loop->sig[signo].ctx);
	}
}

static void
event_run_timers(struct event_loop *loop)
{
	struct event_timer *t;
	unsigned long last = loop->timer_id;
	long long now = event_now_ms();

	/* Ids grow, so id <= last means "existed when this pass began". */
	while (!loop->stop && (t = loop->timers) != NULL && t->due <= now &&
	    t->id <= last) {
		loop->timers = t->next;
		t->fn(t->ctx);
		free(t);
	}
}

int
event_loop_once(struct event_loop *loop, int max_ms)
{
	struct epoll_event ev[EVENT_BATCH];
	struct event_watch *w;
	long long wait, left;
	uint32_t what, fd, gen;
	int i, n, events;

	loop->stop = 0;
	wait = max_ms;
	if (loop->timers != NULL) {
		left = loop->timers->due - event_now_ms();
		if (left < 0)
			left = 0;
		if (wait < 0 || left < wait)
			wait = left;
	}
	if (wait > INT_MAX)
		wait = INT_MAX;
	if ((n = epoll_wait(loop->epfd, ev, EVENT_BATCH, (int)wait)) < 0) {
		if (errno != EINTR)
			return -1;
		n = 0;
	}
	for (i = 0; i < n && !loop->stop; i++) {
		if (ev[i].data.u64 == EVENT_SIGNAL_TAG) {
			event_run_signals(loop);
			continue;
		}
		fd = (uint32_t)ev[i].data.u64;
		gen = (uint32_t)(ev[i].data.u64 >> 32);
		if (fd >= loop->nwatch || loop->watch[fd].gen != gen)
			continue;	/* removed or replaced meanwhile */
		what = ev[i].events;
		events = 0;
		if (what & EPOLLIN)
			events |= EVENT_READ;
		if (what & EPOLLOUT)
			events |= EVENT_WRITE;
		if (what & (EPOLLERR | EPOLLHUP))
			events |= EVENT_ERROR;
		w = &loop->watch[fd];
		w->fn((int)fd, events, w->ctx);
	}
	event_run_timers(loop);
	return 0;
}

int
event_loop_run(struct event_loop *loop)
{
	do {
		if (event_loop_once(loop, -1) < 0)
			return -1;
	} while (!loop->stop);
	return 0;
}

void
event_loop_stop(struct event_loop *loop)
{
	loop->stop = 1;
}
