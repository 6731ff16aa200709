/*
 * deliver - delivery requests between qmgr and its agents. See deliver.h
 * for the conversation.
 *
 * qmgr calls deliver_call(); local and smtp call deliver_request_recv()
 * and, when done, deliver_reply_send(). Addresses, DSN codes and reasons
 * travel as xtext so that a field never holds a space: a recipient's
 * quoted local part or a remote server's reply text cannot shift the
 * fields that follow.
 *
 * Both sides check what they read: a request or reply that breaks the
 * format is STREAM_ERROR with errno EPROTO, never a crash. When
 * deliver_call() fails for any reason every recipient of the request
 * is left "deferred" with DSN 4.3.0 and the reason, so the caller can
 * log and reschedule them without a special case.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "attr.h"
#include "deliver.h"
#include "log.h"
#include "num.h"
#include "queue.h"
#include "stream.h"

#define DELIVER_MAX_LINE	65536	/* a reason text, an address */
#define DELIVER_MAX_RCPTS	10000	/* recipients in one request */
#define DELIVER_EXTRA_ATTRS	32	/* room for the other attributes */

static const char *const status_names[] = {
	[DELIVER_SENT] = "sent",
	[DELIVER_DEFERRED] = "deferred",
	[DELIVER_BOUNCED] = "bounced",
};

const char *
deliver_status_name(enum deliver_status st)
{
	if ((int)st < 0 || (size_t)st >= sizeof(status_names) /
	    sizeof(status_names[0]))
		msg_panic("deliver_status_name: bad status %d", (int)st);
	return status_names[st];
}

static int
status_lookup(const char *name, enum deliver_status *out)
{
	for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]);
	    i++)
		if (strcmp(name, status_names[i]) == 0) {
			*out = (enum deliver_status)i;
			return 0;
		}
	return -1;
}

static void
rcpt_clear_result(struct deliver_rcpt *r)
{
	free(r->dsn);
	free(r->reason);
	r->dsn = NULL;
	r->reason = NULL;
	r->status = DELIVER_DEFERRED;
}

void
deliver_request_free(struct deliver_request *req)
{
	for (size_t i = 0; i < req->nrcpts; i++) {
		free(req->rcpts[i].addr);
		rcpt_clear_result(&req->rcpts[i]);
	}
	free(req->rcpts);
	free(req->queue_id);
	free(req->folder);
	free(req->sender);
	free(req->nexthop);
	free(req->relay);
	memset(req, 0, sizeof(*req));
}

void
deliver_add_rcpt(struct deliver_request *req, size_t index, const char *addr)
{
	struct deliver_rcpt *r;

	req->rcpts = xreallocarray(req->rcpts, req->nrcpts + 1,
	    sizeof(*req->rcpts));
	r = &req->rcpts[req->nrcpts++];
	memset(r, 0, sizeof(*r));
	r->index = index;
	r->addr = xstrdup(addr);
	r->status = DELIVER_DEFERRED;
}

void
deliver_set_result(struct deliver_request *req, size_t i,
    enum deliver_status st, const char *dsn, const char *reason)
{
	struct deliver_rcpt *r;

	if (i >= req->nrcpts)
		msg_panic("deliver_set_result: no recipient %zu", i);
	r = &req->rcpts[i];
	rcpt_clear_result(r);
	r->status = st;
	r->dsn = xstrdup(dsn != NULL ? dsn : "");
	r->reason = xstrdup(reason != NULL ? reason : "");
}

static int
proto_error(struct stream *s)
{
	s->err = EPROTO;
	errno = EPROTO;
	return STREAM_ERROR;
}

/* Parse "INDEX REST": the number, and a pointer to REST. */
static int
parse_index(const char *s, size_t *index, const char **rest)
{
	const char *sp;
	unsigned long v;
	char *num;
	int r;

	if ((sp = strchr(s, ' ')) == NULL)
		return -1;
	num = xstrndup(s, (size_t)(sp - s));
	r = parse_ulong(num, 0, ULONG_MAX, &v);
	free(num);
	if (r < 0)
		return -1;
	*index = (size_t)v;
	*rest = sp + 1;
	return 0;
}

/* Mark every recipient deferred with why (after a failed call). */
static void
defer_all(struct deliver_request *req, int code, int err)
{
	char *reason;

	if (code == STREAM_ERROR && err == EPROTO)
		reason = xstrdup("delivery agent failed: protocol error");
	else if (code == STREAM_ERROR && err != 0)
		reason = xasprintf("delivery agent failed: %s", strerror(err));
	else
		reason = xasprintf("delivery agent failed: %s",
		    stream_strerror(code));
	for (size_t i = 0; i < req->nrcpts; i++)
		deliver_set_result(req, i, DELIVER_DEFERRED, "4.3.0", reason);
	free(reason);
}

/* Apply one "result=INDEX STATUS DSN REASON"; -1 when malformed. */
static int
apply_result(struct deliver_request *req, const char *v)
{
	enum deliver_status st;
	struct deliver_rcpt *r = NULL;
	const char *rest, *sp1, *sp2;
	char *name, *dsn, *reason;
	size_t index;
	int ok;

	if (parse_index(v, &index, &rest) < 0 ||
	    (sp1 = strchr(rest, ' ')) == NULL ||
	    (sp2 = strchr(sp1 + 1, ' ')) == NULL ||
	    strchr(sp2 + 1, ' ') != NULL)
		return -1;
	/* The first recipient with that index still waiting for a result. */
	for (size_t i = 0; i < req->nrcpts; i++)
		if (req->rcpts[i].index == index && req->rcpts[i].dsn == NULL) {
			r = &req->rcpts[i];
			break;
		}
	if (r == NULL)
		return -1;
	name = xstrndup(rest, (size_t)(sp1 - rest));
	ok = status_lookup(name, &st) == 0;
	free(name);
	name = xstrndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	dsn = xtext_decode(name);
	free(name);
	reason = xtext_decode(sp2 + 1);
	if (!ok || dsn == NULL || reason == NULL) {
		free(dsn);
		free(reason);
		return -1;
	}
	r->status = st;
	r->dsn = dsn;
	r->reason = reason;
	return 0;
}

int
deliver_call(struct stream *s, struct deliver_request *req)
{
	struct attrs a;
	const char *status;
	char *x;
	int r;

	for (size_t i = 0; i < req->nrcpts; i++)
		rcpt_clear_result(&req->rcpts[i]);
	free(req->relay);
	req->relay = NULL;

	attrs_init(&a);
	attrs_add(&a, "request", "deliver");
	attrs_add(&a, "queue_id", req->queue_id);
	attrs_add(&a, "folder", req->folder != NULL ? req->folder : "active");
	attrs_add(&a, "sender", req->sender != NULL ? req->sender : "");
	attrs_add(&a, "nexthop", req->nexthop != NULL ? req->nexthop : "");
	for (size_t i = 0; i < req->nrcpts; i++) {
		x = xtext_encode(req->rcpts[i].addr);
		attrs_addf(&a, "rcpt", "%zu %s", req->rcpts[i].index, x);
		free(x);
	}
	r = attr_send(s, &a);
	if (r == 0)
		r = attr_recv(s, &a, DELIVER_MAX_LINE,
		    req->nrcpts + DELIVER_EXTRA_ATTRS);
	if (r == 0) {
		for (size_t i = 0; r == 0 && i < a.n; i++) {
			if (strcmp(a.v[i].name, "result") == 0 &&
			    apply_result(req, a.v[i].value) < 0)
				r = proto_error(s);
		}
		status = attrs_get(&a, "status");
		if (r == 0 && (status == NULL || strcmp(status, "0") != 0))
			r = proto_error(s);
		for (size_t i = 0; r == 0 && i < req->nrcpts; i++)
			if (req->rcpts[i].dsn == NULL)
				r = proto_error(s);
		if (r == 0 && attrs_get(&a, "relay") != NULL)
			req->relay = xstrdup(attrs_get(&a, "relay"));
	}
	attrs_clear(&a);
	if (r != 0)
		defer_all(req, r, s->err);
	return r;
}

int
deliver_request_recv(struct stream *s, struct deliver_request *req)
{
	enum queue_folder folder;
	struct attrs a;
	const char *v, *rest;
	size_t index;
	char *addr;
	int r;

	memset(req, 0, sizeof(*req));
	attrs_init(&a);
	r = attr_recv(s, &a, DELIVER_MAX_LINE,
	    DELIVER_MAX_RCPTS + DELIVER_EXTRA_ATTRS);
	if (r != 0)
		return r;
	if ((v = attrs_get(&a, "request")) == NULL ||
	    strcmp(v, "deliver") != 0 ||
	    (v = attrs_get(&a, "queue_id")) == NULL || !queue_id_valid(v) ||
	    (v = attrs_get(&a, "folder")) == NULL ||
	    queue_folder_lookup(v, &folder) < 0 ||
	    attrs_get(&a, "sender") == NULL) {
		r = proto_error(s);
		goto out;
	}
	req->queue_id = xstrdup(attrs_get(&a, "queue_id"));
	req->folder = xstrdup(attrs_get(&a, "folder"));
	req->sender = xstrdup(attrs_get(&a, "sender"));
	v = attrs_get(&a, "nexthop");
	req->nexthop = xstrdup(v != NULL ? v : "");
	for (size_t i = 0; i < a.n; i++) {
		if (strcmp(a.v[i].name, "rcpt") != 0)
			continue;
		if (parse_index(a.v[i].value, &index, &rest) < 0 ||
		    (addr = xtext_decode(rest)) == NULL) {
			r = proto_error(s);
			goto out;
		}
		deliver_add_rcpt(req, index, addr);
		free(addr);
	}
	if (req->nrcpts == 0)
		r = proto_error(s);
out:
	attrs_clear(&a);
	if (r != 0)
		deliver_request_free(req);
	return r;
}

int
deliver_reply_send(struct stream *s, const struct deliver_request *req)
{
	const struct deliver_rcpt *rc;
	struct attrs a;
	char *dsn, *reason;
	int r;

	attrs_init(&a);
	for (size_t i = 0; i < req->nrcpts; i++) {
		rc = &req->rcpts[i];
		/* An agent that forgot a recipient must not lose it. */
		if (rc->dsn == NULL) {
			dsn = xstrdup("4.3.0");
			reason = xtext_encode("delivery agent gave no result");
			attrs_addf(&a, "result", "%zu deferred %s %s",
			    rc->index, dsn, reason);
		} else {
			dsn = xtext_encode(rc->dsn);
			reason = xtext_encode(rc->reason != NULL ?
			    rc->reason : "");
			attrs_addf(&a, "result", "%zu %s %s %s", rc->index,
			    deliver_status_name(rc->status), dsn, reason);
		}
		free(dsn);
		free(reason);
	}
	if (req->relay != NULL)
		attrs_add(&a, "relay", req->relay);
	attrs_add(&a, "status", "0");
	r = attr_send(s, &a);
	attrs_clear(&a);
	return r;
}

void
deliver_agent_serve(int in_fd, int out_fd, int timeout_ms,
    void (*deliver)(struct deliver_request *))
{
	struct stream *in, *out;
	struct deliver_request req;
	int fd, r;

	/* The server skeleton owns the descriptors; the streams get copies. */
	if ((fd = dup(in_fd)) < 0) {
		msg_warn("dup: %s", strerror(errno));
		return;
	}
	in = stream_new(fd, timeout_ms);
	out = in;
	if (out_fd != in_fd) {
		if ((fd = dup(out_fd)) < 0) {
			msg_warn("dup: %s", strerror(errno));
			stream_free(in);
			return;
		}
		out = stream_new(fd, timeout_ms);
	}
	for (;;) {
		memset(&req, 0, sizeof(req));
		if ((r = deliver_request_recv(in, &req)) != 0) {
			if (r != STREAM_EOF)
				msg_warn("reading delivery request: %s",
				    stream_strerror(r));
			deliver_request_free(&req);
			break;
		}
		deliver(&req);
		r = deliver_reply_send(out, &req);
		deliver_request_free(&req);
		if (r != 0) {
			msg_warn("sending delivery results: %s",
			    stream_strerror(r));
			break;
		}
	}
	if (out != in)
		stream_free(out);
	stream_free(in);
}
