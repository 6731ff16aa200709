/*
 * showq - the queue listing service (man showq(8)): lists the mail queue
 * for users who may not read the queue folders themselves.
 *
 * The queue folders belong to mail_owner alone (mode 0700), so an
 * ordinary user's mailq, sendmail -bp or ternqueue -p cannot read them.
 * master runs showq as mail_owner on public/showq (master.cf "showq unix
 * n - n - - showq"), which every local user may connect to; the tools ask
 * it (lib/showq.h: showq_ask) and print what it writes, in the same
 * shape as a direct listing, because it is the same code (lib/showq.c).
 *
 * One connection, one listing (single_server_main): the client sends
 * "format=text" or "format=json" (attr.h framing) and gets "status=0"
 * followed by the listing until the connection closes, or "status=1" and
 * a reason. Who asks is what the kernel says (SO_PEERCRED), not what the
 * client claims: root and mail_owner always may; anyone else only when
 * authorized_mailq_users lists their login, the same check the tools
 * make, repeated here because anyone can connect to public/showq without
 * them.
 *
 * Limits: the request must come within REQUEST_MS; each write of the
 * listing may wait ipc_timeout for a slow reader, after which the
 * listing is cut off. Nothing is fatal after start: a queue folder that
 * cannot be read is the client's "status=1" and a warning in the log.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "attr.h"
#include "config.h"
#include "log.h"
#include "priv.h"
#include "server.h"
#include "showq.h"
#include "stream.h"
#include "submit.h"

#define REQUEST_MS		10000	/* to send the request */
#define REQUEST_LINE_MAX	256
#define REQUEST_ATTR_MAX	8

/*
 * May the user at the other end of fd see the queue? NULL when yes,
 * else why not (allocated), for the client and the log.
 */
static char *
peer_refused(int fd)
{
	struct priv_user owner, peer;
	char *err = NULL, *why = NULL;
	uid_t uid;
	int r;

	if (server_standalone())
		return NULL;	/* -S: the operator's own terminal */
	if (unix_peer_uid(fd, &uid) < 0)
		return xasprintf("cannot tell who is asking: %s",
		    strerror(errno));
	if (uid == 0 || uid == geteuid())
		return NULL;
	if (priv_user_lookup(config_str("mail_owner"), &owner) == 0) {
		r = owner.uid == uid;
		priv_user_free(&owner);
		if (r)
			return NULL;
	}
	if (priv_user_lookup_uid(uid, &peer) < 0)
		return xasprintf("uid %lu has no account",
		    (unsigned long)uid);
	r = submit_user_listed("authorized_mailq_users", peer.name, &err);
	if (r < 0) {
		why = xasprintf("authorized_mailq_users: %s", err);
		free(err);
	} else if (r == 0)
		why = xasprintf("user %s(%lu) is not allowed to view the mail "
		    "queue", peer.name, (unsigned long)uid);
	priv_user_free(&peer);
	return why;
}

/* Answer "status=1 reason=why" on s. */
static void
refuse(struct stream *s, const char *why)
{
	struct attrs reply;

	attrs_init(&reply);
	attrs_add(&reply, "status", "1");
	attrs_add(&reply, "reason", why);
	(void)attr_send(s, &reply);
	attrs_clear(&reply);
}

/* Blocking writes, each allowed ipc_timeout, for the FILE that carries
 * the listing (stream_new made the shared descriptor non-blocking). */
static int
blocking_with_timeout(int fd)
{
	struct timeval tv;
	int flags;

	if ((flags = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		return -1;
	tv.tv_sec = (time_t)config_time("ipc_timeout");
	tv.tv_usec = 0;
	/* Not a socket in -S mode: the terminal may take its time. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 &&
	    errno != ENOTSOCK)
		return -1;
	return 0;
}

static void
showq_serve(int in_fd, int out_fd)
{
	struct attrs req, reply;
	struct stream *s;
	struct showq *q = NULL;
	const char *format;
	char *why = NULL, *err = NULL;
	FILE *out;
	int fd, fmt = SHOWQ_TEXT;

	/* The skeleton owns in_fd and out_fd: work on copies. */
	if ((fd = dup(in_fd)) < 0) {
		msg_warn("dup: %m");
		return;
	}
	s = stream_new(fd, REQUEST_MS);
	attrs_init(&req);
	if (attr_recv(s, &req, REQUEST_LINE_MAX, REQUEST_ATTR_MAX) != 0) {
		attrs_clear(&req);
		stream_free(s);
		return;		/* gone, silent or confused */
	}
	format = attrs_get(&req, "format");
	if (format != NULL && strcmp(format, "json") == 0)
		fmt = SHOWQ_JSON;
	else if (format != NULL && strcmp(format, "text") != 0)
		why = xasprintf("unknown format \"%s\"", format);
	attrs_clear(&req);
	if (why == NULL && (why = peer_refused(in_fd)) != NULL)
		msg_warn("refused a queue listing: %s", why);
	/* The process is in queue_directory, chrooted or not. */
	if (why == NULL && (q = showq_scan(".", &err)) == NULL) {
		msg_warn("%s", err);
		why = err;
	}
	if (why != NULL) {
		refuse(s, why);
		free(why);
		stream_free(s);
		return;
	}
	attrs_init(&reply);
	attrs_add(&reply, "status", "0");
	if (attr_send(s, &reply) != 0) {
		attrs_clear(&reply);
		showq_free(q);
		stream_free(s);
		return;
	}
	attrs_clear(&reply);
	stream_free(s);
	fd = -1;
	out = NULL;
	if (blocking_with_timeout(out_fd) == 0 && (fd = dup(out_fd)) >= 0)
		out = fdopen(fd, "w");
	if (out == NULL) {
		msg_warn("cannot write the listing: %m");
		if (fd >= 0)
			close(fd);
		showq_free(q);
		return;
	}
	showq_write(q, fmt, out);
	if (fclose(out) != 0)
		msg_warn("the listing was cut off: %m");
}

int
main(int argc, char **argv)
{
	static const struct server_opts opts = {
		.program = "showq",
		.serve = showq_serve,
	};

	return single_server_main(argc, argv, &opts);
}
