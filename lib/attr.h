/*
 * attr - requests and replies between Tern processes (DESIGN.md §4).
 *
 * A message is a list of "name=value" lines ended by an empty line, over
 * a Unix-domain stream socket; easy to read in a trace and to type from
 * a shell (socat). Values are escaped so they fit on one line: "\\" for
 * a backslash, "\n", "\r", "\t", and "\xHH" for other control bytes.
 * Names are [a-z0-9_]+. The same name may appear more than once (one
 * "rcpt=" per recipient); attrs_get() returns the first.
 *
 * attr_recv() reads with the stream's timeout and refuses lines longer
 * than max_line (LF not counted) or more than max_count attributes
 * (STREAM_TOOLONG), so a confused peer cannot make a daemon grow without
 * bound. Bytes from 0x80 up are sent as they are; "\xHH" may not be
 * "\x00". The peer closing mid-list is STREAM_EOF.
 */
#ifndef TERN_ATTR_H
#define TERN_ATTR_H

#include <sys/types.h>

#include <stddef.h>

struct stream;

struct attr {
	char	*name;
	char	*value;
};

struct attrs {
	struct attr *v;
	size_t	 n;
};

void	attrs_init(struct attrs *);
void	attrs_clear(struct attrs *);
void	attrs_add(struct attrs *, const char *name, const char *value);
void	attrs_addf(struct attrs *, const char *name, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
const char *attrs_get(const struct attrs *, const char *name);
/* Value as a number; -1 when missing or not a plain decimal number. */
long	attrs_get_num(const struct attrs *, const char *name);

/* Write the list and its closing empty line, and flush. 0 or STREAM_*. */
int	attr_send(struct stream *, const struct attrs *);
/* The same into the stream's output buffer only: several lists then go
 * out together with one stream_flush(). */
int	attr_write(struct stream *, const struct attrs *);
/* Read one list (attrs cleared first). 0, or a STREAM_* error;
 * STREAM_ERROR with errno EPROTO for a malformed line. */
int	attr_recv(struct stream *, struct attrs *, size_t max_line,
	    size_t max_count);
/*
 * Read what the peer has sent on s into its input buffer without ever
 * waiting. 1 when a whole attribute list is buffered (attr_recv() then
 * returns at once), 0 when more is needed, or a STREAM_* error (EOF,
 * or STREAM_TOOLONG past max bytes). For event loops, and for a reader
 * that wants to know whether another request is already there.
 */
int	attr_ready(struct stream *, size_t max);

/* Connect to a Unix socket (queue_dir/private/name etc.) within
 * timeout_ms (<= 0: no limit); a blocking fd, or -1 with errno
 * (ETIMEDOUT, ECONNREFUSED, ENOENT...). */
int	unix_connect(const char *path, int timeout_ms);
/* The user at the other end of a connected Unix socket, as the kernel
 * saw it at connect(2) (SO_PEERCRED): what a daemon that serves public/
 * trusts to decide who may ask what. 0, or -1 with errno. */
int	unix_peer_uid(int fd, uid_t *uid);

#endif
