/*
 * event - the epoll event loop for daemons that juggle many connections
 * (master, qmgr, and any server that multiplexes).
 *
 * Callbacks run one at a time from event_loop_run(). File descriptors,
 * one-shot timers and signals (delivered through signalfd, so handlers
 * run in normal context and may do anything) all wake the loop. Errors
 * from the kernel are returned as -1 with errno; nothing here is fatal.
 */
#ifndef TERN_EVENT_H
#define TERN_EVENT_H

#define EVENT_READ	0x1
#define EVENT_WRITE	0x2
#define EVENT_ERROR	0x4	/* hang-up or error on the fd */

struct event_loop;

typedef void (*event_fd_fn)(int fd, int events, void *ctx);
typedef void (*event_timer_fn)(void *ctx);
typedef void (*event_signal_fn)(int signo, void *ctx);

/* NULL with errno when the kernel refuses an epoll instance. */
struct event_loop *event_loop_new(void);
void	event_loop_free(struct event_loop *);

/* Watch fd for events; replaces an earlier watch on the same fd. Level
 * triggered. Call event_fd_del() before closing fd: epoll keeps
 * watching a file that another descriptor (a child's) still holds. */
int	event_fd_add(struct event_loop *, int fd, int events, event_fd_fn,
	    void *ctx);
void	event_fd_del(struct event_loop *, int fd);

/* Call fn once after ms milliseconds; returns an id > 0. */
unsigned long event_timer_add(struct event_loop *, long ms, event_timer_fn,
	    void *ctx);
void	event_timer_cancel(struct event_loop *, unsigned long id);

/* Block signo and deliver it to fn from the loop. */
int	event_signal_add(struct event_loop *, int signo, event_signal_fn,
	    void *ctx);

/* Run until event_loop_stop(); returns 0, or -1 on a kernel error. */
int	event_loop_run(struct event_loop *);
/* Wait at most max_ms (-1: no limit) and run what is ready; 0 or -1. */
int	event_loop_once(struct event_loop *, int max_ms);
void	event_loop_stop(struct event_loop *);

/* Milliseconds on CLOCK_MONOTONIC, for deadlines everywhere. */
long long event_now_ms(void);

#endif
