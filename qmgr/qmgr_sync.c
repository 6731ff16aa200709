/*
 * qmgr_sync - done-marks made durable off the event loop.
 *
 * DESIGN §3: each recipient's final result is written into the queue
 * file and fsynced before the file moves on (removed, deferred, held).
 * qmgr is one event loop; an fdatasync there is a millisecond or more
 * of disk wait per message during which no delivery agent gets its next
 * request and no new mail is taken in, and it capped how fast one
 * mailbox could be filled (bench/README.md has the figures).
 *
 * So a "sent" result only puts its mark in place (queue_mark_write) and
 * the message remembers that the file has marks not yet synced. When
 * its last delivery has ended, qmgr_sync_submit() hands the message to
 * a thread that syncs it, and the agent's connection is free for the
 * next request meanwhile. When the sync has returned, the loop hears
 * of it (an eventfd) and finishes the message (qmgr_message.c) as
 * before: nothing moves the file before its marks are on disk.
 *
 * Group commit: the thread takes every message waiting at once. A mark
 * overwrites one byte of a block the file already has (smtpd fsynced
 * it whole), so making it durable needs no metadata, only the block
 * written and the disk's write cache flushed. The thread writes the
 * blocks of all but the last file with sync_file_range() and waits for
 * those writes to complete, then fdatasyncs the last file: that writes
 * its block and flushes the disk's cache, which takes every write that
 * completed before it along. N messages cost one cache flush instead
 * of N, and the busier qmgr is, the more each flush carries. A file
 * whose sync_file_range fails is fdatasynced on its own; when the last
 * fdatasync fails, the whole batch counts as failed.
 *
 * The threads touch nothing but their jobs: the file descriptor to
 * sync and the errno they leave. The message itself is only looked at
 * by the loop; while its job is out, the message is "finishing" and
 * nothing frees it or closes its file.
 *
 * How it fails: an fdatasync error is the same as a mark that could not
 * be written: the message stays queued (deferred) and is tried again;
 * a repeated delivery is better than a lost one. If the threads cannot
 * be started, marks are synced in the loop as before.
 */
#include "autoconf.h"

#include <sys/eventfd.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "event.h"
#include "log.h"
#include "qmgr.h"
#include "queue.h"

/* One thread: its batches grow while it waits for the disk. */
#define SYNC_THREADS	1

struct sync_job {
	struct sync_job *next;
	struct qmgr_message *msg;
	int	 fd;
	int	 err;		/* errno of its sync, 0 when it worked */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t	work;
	struct sync_job *todo, **todo_tail;
	struct sync_job *done;
	size_t	 out;		/* submitted, not yet finished by the loop */
	int	 quit;
	int	 efd;
	size_t	 nthreads;
	pthread_t threads[SYNC_THREADS];
} sync_state = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.efd = -1,
};

/* Make every mark of the batch durable (see the top of the file). */
static void
sync_batch(struct sync_job *batch)
{
	const unsigned flags = SYNC_FILE_RANGE_WAIT_BEFORE |
	    SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
	struct sync_job *job;
	int err;

	for (job = batch; job->next != NULL; job = job->next)
		if (sync_file_range(job->fd, 0, 0, flags) < 0)
			job->err = fdatasync(job->fd) < 0 ? errno : 0;
		else
			job->err = -1;	/* durable with the last one */
	err = job->err = fdatasync(job->fd) < 0 ? errno : 0;
	for (job = batch; job != NULL; job = job->next)
		if (job->err < 0)
			job->err = err;
}

static void *
sync_thread(void *arg)
{
	struct sync_job *job, *batch;
	uint64_t one = 1;

	(void)arg;
	pthread_mutex_lock(&sync_state.lock);
	for (;;) {
		while (sync_state.todo == NULL && !sync_state.quit)
			pthread_cond_wait(&sync_state.work, &sync_state.lock);
		if (sync_state.todo == NULL)
			break;
		batch = sync_state.todo;
		sync_state.todo = NULL;
		sync_state.todo_tail = &sync_state.todo;
		pthread_mutex_unlock(&sync_state.lock);

		sync_batch(batch);

		pthread_mutex_lock(&sync_state.lock);
		for (job = batch; job->next != NULL; job = job->next)
			;
		job->next = sync_state.done;
		sync_state.done = batch;
		/* A full counter (never, at 2^64) would only delay the
		 * wake-up to the next write. */
		(void)!write(sync_state.efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&sync_state.lock);
	return NULL;
}

/* The loop's side: finish every message whose sync has returned. */
static void
sync_readable(int fd, int events, void *ctx)
{
	struct sync_job *job, *next;
	uint64_t n;

	(void)events;
	(void)ctx;
	(void)!read(fd, &n, sizeof(n));
	pthread_mutex_lock(&sync_state.lock);
	job = sync_state.done;
	sync_state.done = NULL;
	pthread_mutex_unlock(&sync_state.lock);
	for (; job != NULL; job = next) {
		next = job->next;
		sync_state.out--;
		qmgr_message_synced(job->msg, job->err);
		free(job);
	}
	if (qmgr.stopping && !qmgr_busy() && qmgr.loop != NULL)
		event_loop_stop(qmgr.loop);
}

void
qmgr_sync_init(void)
{
	size_t i;
	int r;

	sync_state.todo = sync_state.done = NULL;
	sync_state.todo_tail = &sync_state.todo;
	sync_state.out = 0;
	sync_state.quit = 0;
	sync_state.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sync_state.efd < 0) {
		msg_warn("eventfd: %m; done-marks are synced in the loop");
		return;
	}
	if (event_fd_add(qmgr.loop, sync_state.efd, EVENT_READ,
	    sync_readable, NULL) < 0)
		msg_fatal("cannot watch the sync eventfd: %m");
	for (i = 0; i < SYNC_THREADS; i++) {
		r = pthread_create(&sync_state.threads[i], NULL, sync_thread,
		    NULL);
		if (r != 0) {
			msg_warn("cannot start a sync thread: %s",
			    strerror(r));
			break;
		}
	}
	sync_state.nthreads = i;
}

int
qmgr_sync_submit(struct qmgr_message *msg)
{
	struct sync_job *job;

	if (sync_state.nthreads == 0)
		return -1;
	job = xcalloc(1, sizeof(*job));
	job->msg = msg;
	job->fd = msg->qm->fd;
	sync_state.out++;
	pthread_mutex_lock(&sync_state.lock);
	*sync_state.todo_tail = job;
	sync_state.todo_tail = &job->next;
	pthread_cond_signal(&sync_state.work);
	pthread_mutex_unlock(&sync_state.lock);
	return 0;
}

size_t
qmgr_sync_pending(void)
{
	return sync_state.out;
}

void
qmgr_sync_shutdown(void)
{
	struct sync_job *job;
	size_t i;

	pthread_mutex_lock(&sync_state.lock);
	sync_state.quit = 1;
	pthread_cond_broadcast(&sync_state.work);
	pthread_mutex_unlock(&sync_state.lock);
	/* The threads finish the syncs already queued, then end. */
	for (i = 0; i < sync_state.nthreads; i++)
		pthread_join(sync_state.threads[i], NULL);
	sync_state.nthreads = 0;
	/* Their messages were not finished: the files stay in active/
	 * with their marks on disk, and the next qmgr removes them. */
	while ((job = sync_state.done) != NULL) {
		sync_state.done = job->next;
		free(job);
	}
	sync_state.out = 0;
	if (sync_state.efd >= 0) {
		if (qmgr.loop != NULL)
			event_fd_del(qmgr.loop, sync_state.efd);
		(void)close(sync_state.efd);
		sync_state.efd = -1;
	}
}
