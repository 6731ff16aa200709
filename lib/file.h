/*
 * file - safe file helpers: create with an explicit mode, never follow a
 * link a user could plant, and make writes durable (write, fsync,
 * rename, fsync the directory).
 *
 * Files and folders created here get exactly the mode asked for, whatever
 * the umask. All return -1 with errno set on failure (file_read_all uses
 * EFBIG when the file is larger than max, and then leaves out as it was);
 * none is fatal.
 */
#ifndef TERN_FILE_H
#define TERN_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

/* Create a new file for writing (O_EXCL, O_NOFOLLOW, O_CLOEXEC); the fd. */
int	file_create(const char *path, mode_t mode);
/* Open an existing file read-only without following a final link
 * (ELOOP); a FIFO does not block the open. The fd. */
int	file_open_read(const char *path);
/* write(2) until done, retrying on EINTR and short writes. */
int	file_write_all(int fd, const void *, size_t);
/* fsync the directory itself / the directory that holds path. */
int	file_fsync_dir(const char *dir);
int	file_fsync_parent(const char *path);
/* Replace path atomically: temp file in the same folder, fsync, rename,
 * fsync the folder. Readers see the old or the new file, never half. */
int	file_replace(const char *path, const void *, size_t, mode_t mode);
/* Read a whole file (at most max bytes) into out, appending; 0. */
int	file_read_all(const char *path, struct buf *out, size_t max);
/* mkdir -p with mode for the folders it creates. */
int	file_mkdirs(const char *path, mode_t mode);

#endif
