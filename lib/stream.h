/*
 * stream - buffered I/O over a file descriptor, with timeouts and a line
 * reader that never reads past a length limit.
 *
 * Every network conversation in Tern (smtpd, smtp, pop3d, imapd, the
 * IPC between daemons) reads and writes through a stream. Reads and
 * writes wait at most `timeout` milliseconds each (poll(2)); an optional
 * deadline bounds the total time of a request, so a peer trickling one
 * byte at a time is cut off. Transport functions can be replaced (TLS
 * plugs in here) without the callers noticing.
 *
 * Errors are returned, never fatal: STREAM_EOF, STREAM_TIMEOUT,
 * STREAM_TOOLONG, STREAM_ERROR (errno kept in s->err). After a timeout
 * or an error the stream is unusable except for stream_free().
 */
#ifndef TERN_STREAM_H
#define TERN_STREAM_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"

#define STREAM_EOF	(-1)
#define STREAM_TIMEOUT	(-2)
#define STREAM_TOOLONG	(-3)
#define STREAM_ERROR	(-4)

struct stream;

/* Transport: like read(2)/write(2) on s->fd, but may be TLS. They
 * return >0 bytes, 0 for EOF, or -1 with errno (EAGAIN: wait for
 * readable if s->want_write is 0, else writable). The stream sets
 * want_write to 0 before each read_fn call and to 1 before each write_fn
 * call; a transport that needs the other direction (a TLS read that must
 * write, a TLS write that must read) changes it before failing. The
 * default transport uses send(MSG_NOSIGNAL) on sockets and write(2)
 * with SIGPIPE blocked on other fds, so a peer that went away is
 * STREAM_ERROR (err EPIPE), never a SIGPIPE. */
typedef ssize_t (*stream_read_fn)(struct stream *, void *, size_t);
typedef ssize_t (*stream_write_fn)(struct stream *, const void *, size_t);

struct stream {
	int		 fd;		/* non-blocking after stream_new() */
	int		 timeout;	/* ms per wait; <= 0 means none */
	long long	 deadline;	/* event_now_ms() value; 0 = none */
	int		 err;		/* errno of the last STREAM_ERROR */
	int		 want_write;	/* set by a TLS read that must write */
	struct buf	 in;		/* read but not yet consumed */
	struct buf	 out;		/* written but not yet flushed */
	stream_read_fn	 read_fn;
	stream_write_fn	 write_fn;
	void		*ctx;		/* for the transport */
};

/* Wrap fd (made non-blocking); the stream owns fd from now on. The
 * transport's ctx is the caller's to free. */
struct stream *stream_new(int fd, int timeout_ms);
/* Close fd and free everything. */
void	stream_free(struct stream *);
void	stream_set_timeout(struct stream *, int timeout_ms);
/* Bound the total time of what follows to ms from now; 0 clears it. */
void	stream_set_deadline(struct stream *, int ms);

/*
 * Read one line, up to and including its LF, into line (which is reset
 * first). Returns the line length (> 0), or STREAM_TOOLONG when max
 * bytes arrive without LF: then line holds those max bytes and the rest
 * of the line is still unread (stream_skip_line() discards it). A final
 * line without LF before EOF is returned as it is; EOF with nothing read
 * is STREAM_EOF.
 */
int	stream_read_line(struct stream *, struct buf *line, size_t max);
/* Discard input up to and including the next LF. */
int	stream_skip_line(struct stream *);
/* Append exactly n bytes to out (BDAT chunks); 0 or a STREAM_ error
 * (STREAM_TOOLONG, reading nothing, when out->max has no room for n). */
int	stream_read_exact(struct stream *, struct buf *out, size_t n);
/* Bytes already read from the peer but not consumed. */
size_t	stream_pending(const struct stream *);
/* Throw away buffered input (what a client sent before STARTTLS). */
void	stream_discard_input(struct stream *);
/* Wait up to ms (< 0: no limit) for input (buffered or on the fd; EOF
 * counts): 1 yes, 0 no, <0 error. Ignores timeout and deadline. */
int	stream_wait_input(struct stream *, int ms);

/* Buffered writes; nothing is sent until stream_flush(), so a caller
 * sending much data flushes as it goes. */
int	stream_write(struct stream *, const void *, size_t);
int	stream_puts(struct stream *, const char *);
int	stream_printf(struct stream *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
/* Send everything buffered; 0 or a STREAM_ error. */
int	stream_flush(struct stream *);

const char *stream_strerror(int);

#endif
