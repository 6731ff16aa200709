/*
 * pidfile - a locked process id file. See pidfile.h.
 *
 * Used by master (to run only once) and by tern (to find master). The
 * lock is an fcntl(2) record lock because F_GETLK names the holder's pid
 * directly; the file's text is for people and scripts. fcntl locks are
 * dropped when the holder closes any descriptor of the file, so the
 * holder must open it once only: pidfile_acquire() is that one open.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pidfile.h"

static void
pidfile_whole(struct flock *fl, short type)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = 0;
	fl->l_len = 0;			/* to the end, however it grows */
}

int
pidfile_acquire(const char *path, pid_t *holder)
{
	struct flock fl;
	char text[32];
	int fd, n, saved;

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0644)) < 0)
		return -1;
	pidfile_whole(&fl, F_WRLCK);
	if (fcntl(fd, F_SETLK, &fl) < 0) {
		saved = errno;
		if (saved == EACCES || saved == EAGAIN) {
			pidfile_whole(&fl, F_WRLCK);
			if (fcntl(fd, F_GETLK, &fl) == 0 &&
			    fl.l_type != F_UNLCK)
				*holder = fl.l_pid;
			else
				*holder = 0;
			saved = EAGAIN;
		}
		close(fd);
		errno = saved;
		return -1;
	}
	n = snprintf(text, sizeof(text), "%10ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)n, 0) != n) {
		saved = errno;
		close(fd);	/* also lets the lock go */
		errno = saved;
		return -1;
	}
	return fd;
}

pid_t
pidfile_holder(const char *path)
{
	struct flock fl;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return errno == ENOENT ? 0 : -1;
	pidfile_whole(&fl, F_WRLCK);
	if (fcntl(fd, F_GETLK, &fl) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return fl.l_type == F_UNLCK ? 0 : fl.l_pid;
}

void
pidfile_release(const char *path, int fd)
{
	if (fd < 0)
		return;
	(void)unlink(path);
	close(fd);
}
