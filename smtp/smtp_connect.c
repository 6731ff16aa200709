/*
 * smtp_connect - open a connection to one server: TCP over IPv4 or IPv6,
 * or a Unix-domain socket for LMTP, within smtp_connect_timeout.
 *
 * Called by smtp.c for each server in turn. A refused, unreachable or
 * slow server is an ordinary outcome: -1 with a reason in Postfix's
 * words ("connect to host[addr]:port: Connection refused") so that the
 * caller can move on to the next server and, when none is left, defer
 * with the last reason.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "alloc.h"
#include "attr.h"
#include "event.h"
#include "smtp.h"

static int
fail(const struct smtp_server *srv, int err, char **why)
{
	char *name = smtp_server_text(srv, 1);

	*why = xasprintf("connect to %s: %s", name,
	    err == ETIMEDOUT ? "Connection timed out" : strerror(err));
	free(name);
	errno = err;
	return -1;
}

static int
connect_inet(const struct smtp_server *srv, int timeout_ms, char **why)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int one = 1;
	struct pollfd pfd;
	long long deadline = event_now_ms() + timeout_ms;
	int fd, err, r, flags;

	memset(&ss, 0, sizeof(ss));
	if (srv->family == AF_INET) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)srv->port);
		memcpy(&sin->sin_addr, srv->bin, 4);
		len = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)srv->port);
		memcpy(&sin6->sin6_addr, srv->bin, 16);
		len = sizeof(*sin6);
	}
	if ((fd = socket(srv->family, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0)
		return fail(srv, errno, why);
	/*
	 * Our writes are whole commands or command groups, each followed
	 * by a wait for replies: Nagle's algorithm would hold back a short
	 * one (the end of DATA, a RSET) until the server's delayed ACK of
	 * the one before, 40 ms for every message. A failure only costs
	 * speed.
	 */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			close(fd);
			return fail(srv, err, why);
		}
		for (;;) {
			long long left = deadline - event_now_ms();

			if (left <= 0) {
				close(fd);
				return fail(srv, ETIMEDOUT, why);
			}
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if ((r = poll(&pfd, 1, (int)left)) < 0) {
				if (errno == EINTR)
					continue;
				err = errno;
				close(fd);
				return fail(srv, err, why);
			}
			if (r > 0)
				break;
		}
		len = sizeof(err);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			close(fd);
			return fail(srv, err, why);
		}
	}
	/* Callers expect a blocking descriptor; the stream makes its own
	 * copy non-blocking. */
	if ((flags = fcntl(fd, F_GETFL)) >= 0)
		(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	return fd;
}

int
smtp_connect(const struct smtp_server *srv, int timeout_ms, char **why)
{
	int fd;

	if (srv->family == AF_UNIX) {
		if ((fd = unix_connect(srv->addr, timeout_ms)) < 0)
			return fail(srv, errno, why);
		return fd;
	}
	return connect_inet(srv, timeout_ms, why);
}
