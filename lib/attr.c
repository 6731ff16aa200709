/*
 * attr - name=value lists between Tern processes. See attr.h.
 *
 * Used by every client and server of a Unix socket in private/ and
 * public/ (qmgr and its clients, delivery requests in deliver.c). The
 * escaping makes any C string fit on one line: a backslash, LF, CR and
 * TAB get the usual two-character escapes, other control bytes (0x01 to
 * 0x1f and 0x7f) become "\xHH"; bytes from 0x80 up pass unchanged, so
 * UTF-8 stays readable in a trace. A raw CR just before the LF is
 * dropped, so that lines typed through a terminal program work.
 *
 * A peer's mistake is a return value, never fatal: STREAM_TOOLONG for a
 * line or a list over its limit, STREAM_ERROR with EPROTO for a line
 * that is not name=value, an unknown escape or an escaped NUL. Sending a
 * name that is not [a-z0-9_]+ is a bug in the sender (panic).
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "attr.h"
#include "buf.h"
#include "event.h"
#include "log.h"
#include "num.h"
#include "stream.h"

void
attrs_init(struct attrs *a)
{
	a->v = NULL;
	a->n = 0;
}

void
attrs_clear(struct attrs *a)
{
	for (size_t i = 0; i < a->n; i++) {
		free(a->v[i].name);
		free(a->v[i].value);
	}
	free(a->v);
	attrs_init(a);
}

static int
attr_name_valid(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* Take ownership of name and value. */
static void
attrs_push(struct attrs *a, char *name, char *value)
{
	a->v = xreallocarray(a->v, a->n + 1, sizeof(*a->v));
	a->v[a->n].name = name;
	a->v[a->n].value = value;
	a->n++;
}

void
attrs_add(struct attrs *a, const char *name, const char *value)
{
	if (!attr_name_valid(name, strlen(name)))
		msg_panic("attrs_add: bad attribute name \"%s\"", name);
	attrs_push(a, xstrdup(name), xstrdup(value != NULL ? value : ""));
}

void
attrs_addf(struct attrs *a, const char *name, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	if (!attr_name_valid(name, strlen(name)))
		msg_panic("attrs_addf: bad attribute name \"%s\"", name);
	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	attrs_push(a, xstrdup(name), buf_steal(&b));
}

const char *
attrs_get(const struct attrs *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i].name, name) == 0)
			return a->v[i].value;
	return NULL;
}

long
attrs_get_num(const struct attrs *a, const char *name)
{
	unsigned long v;
	const char *s;

	if ((s = attrs_get(a, name)) == NULL ||
	    parse_ulong(s, 0, LONG_MAX, &v) < 0)
		return -1;
	return (long)v;
}

static void
attr_escape(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		switch (*p) {
		case '\\':
			(void)buf_puts(b, "\\\\");
			break;
		case '\n':
			(void)buf_puts(b, "\\n");
			break;
		case '\r':
			(void)buf_puts(b, "\\r");
			break;
		case '\t':
			(void)buf_puts(b, "\\t");
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				(void)buf_puts(b, "\\x");
				(void)buf_putc(b, hex[*p >> 4]);
				(void)buf_putc(b, hex[*p & 0xf]);
			} else
				(void)buf_putc(b, *p);
		}
	}
}

static int
hexdigit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undo attr_escape on s[0..n); NULL when an escape is malformed. */
static char *
attr_unescape(const char *s, size_t n)
{
	char *out, *q;
	size_t i;
	int hi, lo;

	out = q = xmalloc(n + 1);
	for (i = 0; i < n; i++) {
		if (s[i] == '\0')
			goto bad;
		if (s[i] != '\\') {
			*q++ = s[i];
			continue;
		}
		if (++i == n)
			goto bad;
		switch (s[i]) {
		case '\\':
			*q++ = '\\';
			break;
		case 'n':
			*q++ = '\n';
			break;
		case 'r':
			*q++ = '\r';
			break;
		case 't':
			*q++ = '\t';
			break;
		case 'x':
			if (n - i < 3 || (hi = hexdigit(s[i + 1])) < 0 ||
			    (lo = hexdigit(s[i + 2])) < 0 || (hi | lo) == 0)
				goto bad;
			*q++ = (char)(hi << 4 | lo);
			i += 2;
			break;
		default:
			goto bad;
		}
	}
	*q = '\0';
	return out;

bad:
	free(out);
	return NULL;
}

int
attr_write(struct stream *s, const struct attrs *a)
{
	struct buf b;
	int r;

	buf_init(&b, BUF_NOMAX);
	for (size_t i = 0; i < a->n; i++) {
		if (!attr_name_valid(a->v[i].name, strlen(a->v[i].name)))
			msg_panic("attr_send: bad attribute name \"%s\"",
			    a->v[i].name);
		(void)buf_puts(&b, a->v[i].name);
		(void)buf_putc(&b, '=');
		attr_escape(&b, a->v[i].value);
		(void)buf_putc(&b, '\n');
	}
	(void)buf_putc(&b, '\n');
	r = stream_write(s, b.data, b.len);
	buf_free(&b);
	return r < 0 ? r : 0;
}

int
attr_send(struct stream *s, const struct attrs *a)
{
	int r;

	if ((r = attr_write(s, a)) != 0)
		return r;
	return stream_flush(s);
}

static int
attr_proto_error(struct stream *s)
{
	s->err = EPROTO;
	errno = EPROTO;
	return STREAM_ERROR;
}

int
attr_recv(struct stream *s, struct attrs *a, size_t max_line,
    size_t max_count)
{
	struct buf line;
	const char *eq;
	char *value;
	size_t len;
	int r;

	attrs_clear(a);
	buf_init(&line, BUF_NOMAX);
	/* max_line counts the text of a line; its LF comes on top. */
	if (max_line > (size_t)INT_MAX - 1)
		max_line = (size_t)INT_MAX - 1;
	for (;;) {
		r = stream_read_line(s, &line, max_line + 1);
		if (r < 0)
			break;
		len = line.len;
		if (len == 0 || line.data[len - 1] != '\n') {
			/* The peer went away in the middle of a line. */
			r = STREAM_EOF;
			break;
		}
		len--;
		if (len > 0 && line.data[len - 1] == '\r')
			len--;
		if (len == 0) {
			r = 0;
			break;
		}
		if (a->n >= max_count) {
			r = STREAM_TOOLONG;
			break;
		}
		eq = memchr(line.data, '=', len);
		if (eq == NULL || !attr_name_valid(line.data,
		    (size_t)(eq - line.data)) ||
		    (value = attr_unescape(eq + 1,
		    len - (size_t)(eq - line.data) - 1)) == NULL) {
			r = attr_proto_error(s);
			break;
		}
		attrs_push(a, xstrndup(line.data, (size_t)(eq - line.data)),
		    value);
	}
	buf_free(&line);
	if (r != 0)
		attrs_clear(a);
	return r;
}

int
unix_connect(const char *path, int timeout_ms)
{
	struct sockaddr_un sun;
	struct pollfd pfd;
	long long end, left;
	socklen_t len;
	int fd, err, flags, saved, n;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	end = event_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		if (errno == EINPROGRESS || errno == EINTR) {
			/* Wait for the outcome, within the timeout. */
			for (;;) {
				left = timeout_ms > 0 ? end - event_now_ms() :
				    -1;
				if (timeout_ms > 0 && left <= 0) {
					errno = ETIMEDOUT;
					goto fail;
				}
				pfd.fd = fd;
				pfd.events = POLLOUT;
				pfd.revents = 0;
				n = poll(&pfd, 1, left > INT_MAX ? INT_MAX :
				    (int)left);
				if (n > 0)
					break;
				if (n < 0 && errno != EINTR)
					goto fail;
			}
			len = sizeof(err);
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
			    &len) < 0)
				goto fail;
			if (err == 0)
				break;
			errno = err;
			goto fail;
		}
		/*
		 * A Unix socket whose backlog is full says EAGAIN at once
		 * where a blocking connect would wait: try again shortly,
		 * until the timeout.
		 */
		if (errno != EAGAIN)
			goto fail;
		if (timeout_ms > 0 && event_now_ms() >= end) {
			errno = ETIMEDOUT;
			goto fail;
		}
		close(fd);
		(void)poll(NULL, 0, 10);
	}
	/* Hand back an ordinary blocking descriptor. */
	if ((flags = fcntl(fd, F_GETFL)) >= 0)
		(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	return fd;

fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
unix_peer_uid(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -1;
	if (len != sizeof(cred)) {
		errno = EPROTO;
		return -1;
	}
	*uid = cred.uid;
	return 0;
}

int
attr_ready(struct stream *s, size_t max)
{
	char chunk[8192];
	ssize_t n;

	for (;;) {
		if (s->in.len > 0 && (s->in.data[0] == '\n' ||
		    memmem(s->in.data, s->in.len, "\n\n", 2) != NULL))
			return 1;
		if (s->in.len > max)
			return STREAM_TOOLONG;
		n = s->read_fn(s, chunk, sizeof(chunk));
		if (n > 0) {
			if (buf_append(&s->in, chunk, (size_t)n) < 0)
				return STREAM_TOOLONG;
			continue;
		}
		if (n == 0)
			return STREAM_EOF;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		s->err = errno;
		return STREAM_ERROR;
	}
}
