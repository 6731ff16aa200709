/*
 * stream - buffered I/O over a file descriptor, with timeouts and a line
 * reader that never reads past a length limit. See stream.h.
 *
 * Input is read in chunks of STREAM_CHUNK bytes into s->in; the line
 * reader looks for LF only within the first max bytes, so a peer that
 * never sends LF costs at most max + STREAM_CHUNK bytes of memory.
 * Every transport call is tried first and poll(2) is used only when it
 * says EAGAIN; each wait is bounded by s->timeout and by s->deadline,
 * and the deadline is also checked before every read and write so that
 * a fast peer sending an endless line is cut off too.
 *
 * A write to a peer that has gone away must return STREAM_ERROR (EPIPE),
 * never kill the process with SIGPIPE: sockets are written with
 * send(MSG_NOSIGNAL); other descriptors (pipes) are written with
 * SIGPIPE blocked, and a SIGPIPE raised by that write is consumed
 * before it is unblocked. No failure here is fatal.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "event.h"
#include "stream.h"

#define STREAM_CHUNK	16384

static ssize_t
stream_read_fd(struct stream *s, void *p, size_t n)
{
	return read(s->fd, p, n);
}

static ssize_t
stream_write_socket(struct stream *s, const void *p, size_t n)
{
	return send(s->fd, p, n, MSG_NOSIGNAL);
}

/*
 * write(2) to a pipe or a terminal with SIGPIPE blocked; when the write
 * fails with EPIPE, take back the SIGPIPE it raised unless the caller
 * had SIGPIPE blocked already (then it is the caller's to handle).
 */
static ssize_t
stream_write_fd(struct stream *s, const void *p, size_t n)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t pipeset, old;
	ssize_t r;
	int saved;

	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &pipeset, &old) < 0)
		return -1;
	r = write(s->fd, p, n);
	saved = errno;
	if (r < 0 && saved == EPIPE && !sigismember(&old, SIGPIPE))
		while (sigtimedwait(&pipeset, NULL, &zero) < 0 &&
		    errno == EINTR)
			;
	sigprocmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return r;
}

struct stream *
stream_new(int fd, int timeout_ms)
{
	struct stream *s;
	struct stat st;
	int flags;

	s = xcalloc(1, sizeof(*s));
	s->fd = fd;
	s->timeout = timeout_ms;
	buf_init(&s->in, BUF_NOMAX);
	buf_init(&s->out, BUF_NOMAX);
	s->read_fn = stream_read_fd;
	s->write_fn = stream_write_fd;
	if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
		s->write_fn = stream_write_socket;
	/* On a bad fd this fails, and so will the first read: STREAM_ERROR. */
	if ((flags = fcntl(fd, F_GETFL)) >= 0 && !(flags & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	return s;
}

void
stream_free(struct stream *s)
{
	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	buf_free(&s->in);
	buf_free(&s->out);
	free(s);
}

void
stream_set_timeout(struct stream *s, int timeout_ms)
{
	s->timeout = timeout_ms;
}

void
stream_set_deadline(struct stream *s, int ms)
{
	if (ms <= 0) {
		s->deadline = 0;
		return;
	}
	s->deadline = event_now_ms() + ms;
	if (s->deadline == 0)
		s->deadline = 1;
}

static int
stream_deadline_passed(const struct stream *s)
{
	return s->deadline != 0 && event_now_ms() >= s->deadline;
}

/*
 * Wait until fd is ready for events, at most s->timeout ms and never past
 * s->deadline. 0 when ready (or hung up: the next call says why), else
 * STREAM_TIMEOUT or STREAM_ERROR. EINTR does not restart the clock.
 */
static int
stream_wait(struct stream *s, short events)
{
	struct pollfd pfd;
	long long start, end, now, left;
	int n;

	start = event_now_ms();
	end = s->timeout > 0 ? start + s->timeout : 0;
	if (s->deadline != 0 && (end == 0 || s->deadline < end))
		end = s->deadline;
	for (;;) {
		left = -1;
		if (end != 0) {
			now = event_now_ms();
			if (now >= end)
				return STREAM_TIMEOUT;
			left = end - now;
			if (left > INT_MAX)
				left = INT_MAX;
		}
		pfd.fd = s->fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			continue;	/* the clock check above says timeout */
		if (errno != EINTR) {
			s->err = errno;
			return STREAM_ERROR;
		}
	}
}

/* Read one chunk into s->in: 0, STREAM_EOF, or another STREAM_ error. */
static int
stream_fill(struct stream *s)
{
	char chunk[STREAM_CHUNK];
	ssize_t n;
	int r;

	for (;;) {
		if (stream_deadline_passed(s))
			return STREAM_TIMEOUT;
		s->want_write = 0;
		n = s->read_fn(s, chunk, sizeof(chunk));
		if (n > 0) {
			if (buf_append(&s->in, chunk, (size_t)n) < 0) {
				s->err = ENOBUFS;
				return STREAM_ERROR;
			}
			return 0;
		}
		if (n == 0)
			return STREAM_EOF;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			s->err = errno;
			return STREAM_ERROR;
		}
		r = stream_wait(s, s->want_write ? POLLOUT : POLLIN);
		if (r < 0)
			return r;
	}
}

/* Move n bytes from the front of s->in to the end of out. */
static void
stream_take(struct stream *s, struct buf *out, size_t n)
{
	/* The callers checked that out has room. */
	(void)buf_append(out, s->in.data, n);
	buf_consume(&s->in, n);
}

int
stream_read_line(struct stream *s, struct buf *line, size_t max)
{
	const char *lf;
	size_t scanned = 0, lim;
	int r;

	buf_reset(line);
	if (max > line->max)
		max = line->max;
	if (max > INT_MAX)
		max = INT_MAX;
	for (;;) {
		lim = s->in.len < max ? s->in.len : max;
		if (lim > scanned) {
			lf = memchr(s->in.data + scanned, '\n', lim - scanned);
			if (lf != NULL) {
				lim = (size_t)(lf - s->in.data) + 1;
				stream_take(s, line, lim);
				return (int)lim;
			}
			scanned = lim;
		}
		if (s->in.len >= max) {
			stream_take(s, line, max);
			return STREAM_TOOLONG;
		}
		if ((r = stream_fill(s)) == STREAM_EOF) {
			if (s->in.len == 0)
				return STREAM_EOF;
			lim = s->in.len;
			stream_take(s, line, lim);
			return (int)lim;
		}
		if (r < 0)
			return r;
	}
}

int
stream_skip_line(struct stream *s)
{
	const char *lf;
	int r;

	for (;;) {
		if (s->in.len > 0 &&
		    (lf = memchr(s->in.data, '\n', s->in.len)) != NULL) {
			buf_consume(&s->in, (size_t)(lf - s->in.data) + 1);
			return 0;
		}
		buf_reset(&s->in);
		if ((r = stream_fill(s)) < 0)
			return r;
	}
}

int
stream_read_exact(struct stream *s, struct buf *out, size_t n)
{
	size_t take;
	int r;

	if (n > out->max || out->len > out->max - n)
		return STREAM_TOOLONG;
	for (;;) {
		take = s->in.len < n ? s->in.len : n;
		if (take > 0) {
			stream_take(s, out, take);
			n -= take;
		}
		if (n == 0)
			return 0;
		if ((r = stream_fill(s)) < 0)
			return r;
	}
}

size_t
stream_pending(const struct stream *s)
{
	return s->in.len;
}

void
stream_discard_input(struct stream *s)
{
	buf_reset(&s->in);
}

int
stream_wait_input(struct stream *s, int ms)
{
	struct pollfd pfd;
	long long end, now, left;
	int n;

	if (s->in.len > 0)
		return 1;
	end = ms >= 0 ? event_now_ms() + ms : 0;
	for (;;) {
		left = -1;
		if (ms >= 0) {
			now = event_now_ms();
			left = now >= end ? 0 : end - now;
		}
		pfd.fd = s->fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		/* EOF and errors count as input: the next read reports them. */
		if ((n = poll(&pfd, 1, (int)left)) >= 0)
			return n > 0;
		if (errno != EINTR) {
			s->err = errno;
			return STREAM_ERROR;
		}
	}
}

int
stream_write(struct stream *s, const void *p, size_t n)
{
	if (buf_append(&s->out, p, n) < 0) {
		s->err = ENOBUFS;
		return STREAM_ERROR;
	}
	return 0;
}

int
stream_puts(struct stream *s, const char *str)
{
	return stream_write(s, str, strlen(str));
}

int
stream_printf(struct stream *s, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	if (r < 0) {
		s->err = ENOBUFS;
		return STREAM_ERROR;
	}
	return 0;
}

int
stream_flush(struct stream *s)
{
	size_t done = 0;
	ssize_t n;
	int r = 0;

	while (done < s->out.len) {
		if (stream_deadline_passed(s)) {
			r = STREAM_TIMEOUT;
			break;
		}
		s->want_write = 1;
		n = s->write_fn(s, s->out.data + done, s->out.len - done);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n == 0) {
			/* A transport that makes no progress is broken. */
			s->err = EIO;
			r = STREAM_ERROR;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			s->err = errno;
			r = STREAM_ERROR;
			break;
		}
		if ((r = stream_wait(s, s->want_write ? POLLOUT : POLLIN)) < 0)
			break;
	}
	buf_consume(&s->out, done);
	return r;
}

const char *
stream_strerror(int code)
{
	switch (code) {
	case STREAM_EOF:
		return "lost connection";
	case STREAM_TIMEOUT:
		return "timeout";
	case STREAM_TOOLONG:
		return "line too long";
	case STREAM_ERROR:
		return "I/O error";
	default:
		return code >= 0 ? "success" : "unknown stream error";
	}
}
