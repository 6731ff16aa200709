/*
 * pidfile - a process id file held with a lock, so that two copies of a
 * program (master) never run at once and tools can ask whether it runs.
 *
 * The holder keeps an fcntl(2) write lock on the whole file for as long
 * as it lives; the kernel drops the lock when the process dies, however
 * it dies, so a stale file left by a crash never blocks a restart. The
 * lock is not inherited by fork(2) children. pidfile_holder() asks the
 * kernel who holds the lock (F_GETLK) without taking it, so asking never
 * gets in the way of a starting master.
 *
 * Failures return -1 with errno set; nothing is fatal.
 */
#ifndef TERN_PIDFILE_H
#define TERN_PIDFILE_H

#include <sys/types.h>

/*
 * Create or open path (mode 0644), lock it and write our pid into it.
 * Returns the descriptor, to be kept open for the life of the process;
 * -1 with errno EAGAIN and *holder set when another process holds it,
 * or -1 with another errno when the file cannot be opened.
 */
int	pidfile_acquire(const char *path, pid_t *holder);

/* The pid of the process that holds path's lock; 0 when no other process
 * does (or there is no file); -1 with errno when it cannot be read. */
pid_t	pidfile_holder(const char *path);

/* Remove path and let the lock go (a clean exit). */
void	pidfile_release(const char *path, int fd);

#endif
