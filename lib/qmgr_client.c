/*
 * qmgr_client - how smtpd, sendmail, ternqueue and friends poke qmgr.
 * See qmgr_client.h for the requests.
 *
 * Each call is one short connection to qmgr's socket: send the request,
 * wait for "status=...", close. qmgr answers before it does the work, so
 * the wait is short; a qmgr that is down, busy past the time limit or
 * answers nonsense makes the call return -1 with errno set, which the
 * caller may ignore: qmgr finds queued mail by itself at its next scan.
 *
 * "new" is the exception: it asks for no answer (reply=no) and does not
 * wait for one. smtpd sends it after each 250, and the wait for qmgr to
 * be scheduled and answer held up the client's next command by as long
 * (bench/README.md: 25 % more messages accepted a second without it).
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "attr.h"
#include "qmgr_client.h"
#include "stream.h"

#define QMGR_CONNECT_MS	2000
#define QMGR_REPLY_MS	5000
#define QMGR_LINE_MAX	1024
#define QMGR_ATTR_MAX	16

char *
qmgr_socket_path(const char *queue_dir)
{
	static const char *const where[] = { "public", "private" };
	struct stat st;
	char *path;
	size_t i;

	for (i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		path = xasprintf("%s/%s/qmgr", queue_dir, where[i]);
		if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode))
			return path;
		free(path);
	}
	return xasprintf("%s/public/qmgr", queue_dir);
}

/* Send one request and read the answer (into *out when not NULL; the
 * caller clears it), or only send it when the request says reply=no;
 * 0 or -1 with errno. */
static int
qmgr_request(const char *queue_dir, const struct attrs *req,
    struct attrs *out)
{
	const char *want = attrs_get(req, "reply");
	int answered = want == NULL || strcmp(want, "no") != 0;
	struct stream *s;
	struct attrs reply;
	char *path;
	int fd, r, saved;

	path = qmgr_socket_path(queue_dir);
	fd = unix_connect(path, QMGR_CONNECT_MS);
	saved = errno;
	free(path);
	if (fd < 0) {
		errno = saved;
		return -1;
	}
	s = stream_new(fd, QMGR_REPLY_MS);
	attrs_init(&reply);
	if ((r = attr_send(s, req)) == 0 && answered)
		r = attr_recv(s, &reply, QMGR_LINE_MAX, QMGR_ATTR_MAX);
	if (r == 0 && answered && attrs_get(&reply, "status") == NULL) {
		r = STREAM_ERROR;
		s->err = EPROTO;
	}
	saved = r == STREAM_TIMEOUT ? ETIMEDOUT : r == STREAM_EOF ?
	    ECONNRESET : r == STREAM_TOOLONG ? EPROTO : s->err;
	if (r == 0 && out != NULL)
		*out = reply;
	else
		attrs_clear(&reply);
	stream_free(s);
	if (r != 0) {
		errno = saved != 0 ? saved : EPROTO;
		return -1;
	}
	return 0;
}

/* One request with at most one argument (name NULL or value empty:
 * none); answered 0: reply=no, sent without waiting for an answer. */
static int
qmgr_simple(const char *queue_dir, const char *request, const char *name,
    const char *value, int answered)
{
	struct attrs req;
	int r, saved;

	attrs_init(&req);
	attrs_add(&req, "request", request);
	if (name != NULL && value != NULL && value[0] != '\0')
		attrs_add(&req, name, value);
	if (!answered)
		attrs_add(&req, "reply", "no");
	r = qmgr_request(queue_dir, &req, NULL);
	saved = errno;
	attrs_clear(&req);
	errno = saved;
	return r;
}

int
qmgr_notify_new(const char *queue_dir, const char *queue_id)
{
	return qmgr_simple(queue_dir, "new", "queue_id", queue_id, 0);
}

int
qmgr_flush(const char *queue_dir, const char *site)
{
	return qmgr_simple(queue_dir, "flush", "site", site, 1);
}

int
qmgr_deliver_now(const char *queue_dir, const char *queue_id)
{
	return qmgr_simple(queue_dir, "deliver", "queue_id", queue_id, 1);
}

int
qmgr_cancel(const char *queue_dir, const char *queue_id, int hold,
    long *deliveries, char **why)
{
	struct attrs req, reply;
	const char *status, *result, *reason;
	int r, saved;

	*deliveries = 0;
	*why = NULL;
	attrs_init(&req);
	attrs_init(&reply);
	attrs_add(&req, "request", hold ? "hold" : "delete");
	attrs_add(&req, "queue_id", queue_id);
	r = qmgr_request(queue_dir, &req, &reply);
	saved = errno;
	attrs_clear(&req);
	if (r < 0) {
		errno = saved;
		return -1;
	}
	status = attrs_get(&reply, "status");
	result = attrs_get(&reply, "result");
	if (strcmp(status, "0") != 0 || result == NULL) {
		/* Refused, or a qmgr from before these requests. */
		reason = attrs_get(&reply, "reason");
		*why = xstrdup(reason != NULL ? reason : "no result");
		r = -1;
		saved = EPROTO;
	} else if (strcmp(result, "notfound") == 0)
		r = QMGR_CANCEL_NOTFOUND;
	else if (strcmp(result, "done") == 0)
		r = QMGR_CANCEL_DONE;
	else if (strcmp(result, "pending") == 0) {
		r = QMGR_CANCEL_PENDING;
		*deliveries = attrs_get_num(&reply, "deliveries");
	} else {
		*why = xasprintf("unknown result \"%s\"", result);
		r = -1;
		saved = EPROTO;
	}
	attrs_clear(&reply);
	errno = saved;
	return r;
}
