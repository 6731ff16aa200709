/*
 * file - safe file helpers. See file.h.
 *
 * Modes are exact: a file or folder this module creates gets the mode
 * the caller names, whatever the process umask, so a queue file is never
 * more (or less) readable than its writer meant. Opening never follows
 * a final symbolic link; creating never reuses an existing name.
 * file_replace() leaves no temporary file behind when it fails.
 *
 * Every function returns -1 with errno set on failure and keeps errno
 * from the step that failed, not from the clean-up after it.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "file.h"

#define FILE_CHUNK	16384

int
file_create(const char *path, mode_t mode)
{
	int fd, saved;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
	    O_NOCTTY, mode);
	if (fd < 0)
		return -1;
	if (fchmod(fd, mode) < 0) {
		saved = errno;
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	return fd;
}

int
file_open_read(const char *path)
{
	int fd, flags, saved;

	/* O_NONBLOCK so that a FIFO planted at path cannot hang us. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK);
	if (fd < 0)
		return -1;
	if ((flags = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
file_write_all(int fd, const void *p, size_t n)
{
	const char *cp = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, cp, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		cp += w;
		n -= (size_t)w;
	}
	return 0;
}

int
file_fsync_dir(const char *dir)
{
	int fd, r, saved;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	r = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return r;
}

/* The folder that holds path, allocated: "a/b" -> "a", "b" -> ".". */
static char *
file_parent(const char *path)
{
	const char *slash;
	size_t n;

	n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		n--;
	for (slash = NULL; n > 0; n--) {
		if (path[n - 1] == '/') {
			slash = path + n - 1;
			break;
		}
	}
	if (slash == NULL)
		return xstrdup(".");
	while (slash > path && slash[-1] == '/')
		slash--;
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

int
file_fsync_parent(const char *path)
{
	char *dir;
	int r, saved;

	dir = file_parent(path);
	r = file_fsync_dir(dir);
	saved = errno;
	free(dir);
	errno = saved;
	return r;
}

int
file_replace(const char *path, const void *p, size_t n, mode_t mode)
{
	static unsigned long counter;
	char *tmp = NULL;
	int fd = -1, tries, saved;

	for (tries = 0; tries < 100; tries++) {
		free(tmp);
		tmp = xasprintf("%s.tmp.%ld.%lu", path, (long)getpid(),
		    ++counter);
		if ((fd = file_create(tmp, mode)) >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		goto fail;
	if (file_write_all(fd, p, n) < 0 || fsync(fd) < 0)
		goto fail_unlink;
	if (close(fd) < 0) {
		fd = -1;
		goto fail_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail_unlink;
	free(tmp);
	return file_fsync_parent(path);

fail_unlink:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
fail:
	saved = errno;
	free(tmp);
	errno = saved;
	return -1;
}

int
file_read_all(const char *path, struct buf *out, size_t max)
{
	char chunk[FILE_CHUNK];
	struct stat st;
	size_t start = out->len, total = 0;
	ssize_t n;
	int fd, saved;

	if ((fd = file_open_read(path)) < 0)
		return -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (unsigned long long)st.st_size > max) {
		close(fd);
		errno = EFBIG;
		return -1;
	}
	for (;;) {
		if ((n = read(fd, chunk, sizeof(chunk))) < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		if ((size_t)n > max - total ||
		    buf_append(out, chunk, (size_t)n) < 0) {
			errno = EFBIG;
			goto fail;
		}
		total += (size_t)n;
	}
	close(fd);
	return 0;

fail:
	saved = errno;
	close(fd);
	out->len = start;
	if (out->data != NULL)
		out->data[start] = '\0';
	errno = saved;
	return -1;
}

int
file_mkdirs(const char *path, mode_t mode)
{
	struct stat st;
	char *copy, *p;
	int saved, last;

	if (*path == '\0') {
		errno = ENOENT;
		return -1;
	}
	copy = xstrdup(path);
	p = copy;
	for (;;) {
		while (*p == '/')
			p++;
		while (*p != '\0' && *p != '/')
			p++;
		last = (*p == '\0' || p[strspn(p, "/")] == '\0');
		*p = '\0';
		if (mkdir(copy, mode) == 0) {
			if (chmod(copy, mode) < 0)
				goto fail;
		} else if (errno != EEXIST) {
			goto fail;
		} else if (stat(copy, &st) < 0) {
			goto fail;
		} else if (!S_ISDIR(st.st_mode)) {
			errno = ENOTDIR;
			goto fail;
		}
		if (last)
			break;
		*p++ = '/';
	}
	free(copy);
	return 0;

fail:
	saved = errno;
	free(copy);
	errno = saved;
	return -1;
}
