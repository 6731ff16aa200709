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
 *
 * The log: an agent logs each recipient's outcome itself (deliver_log,
 * called for what the agent did not log by deliver_agent_serve), so
 * the to=<...>, status= lines carry the agent's name as in Postfix and
 * the tools that count by program find them. qmgr sends what the line
 * needs and only the agent knows nothing of: the address the sender
 * gave (orig=) and the message's times (times=).
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
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
/* Most bytes read ahead looking for the next request of a batch. */
#define DELIVER_READAHEAD_MAX	(1024 * 1024)
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
		free(req->rcpts[i].orig);
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

void
deliver_request_attrs(const struct deliver_request *req, struct attrs *a)
{
	char *x;

	attrs_add(a, "request", "deliver");
	attrs_add(a, "queue_id", req->queue_id);
	attrs_add(a, "folder", req->folder != NULL ? req->folder : "active");
	attrs_add(a, "sender", req->sender != NULL ? req->sender : "");
	attrs_add(a, "nexthop", req->nexthop != NULL ? req->nexthop : "");
	for (size_t i = 0; i < req->nrcpts; i++) {
		x = xtext_encode(req->rcpts[i].addr);
		attrs_addf(a, "rcpt", "%zu %s", req->rcpts[i].index, x);
		free(x);
	}
	for (size_t i = 0; i < req->nrcpts; i++) {
		if (req->rcpts[i].orig == NULL)
			continue;
		x = xtext_encode(req->rcpts[i].orig);
		attrs_addf(a, "orig", "%zu %s", req->rcpts[i].index, x);
		free(x);
	}
	if (req->t_arrival > 0)
		attrs_addf(a, "times", "%.6f %.6f %.6f", req->t_arrival,
		    req->t_active, req->t_start);
	if (req->fallback)
		attrs_add(a, "fallback", "yes");
}

int
deliver_call(struct stream *s, struct deliver_request *req)
{
	struct attrs a;
	const char *status, *logged;
	int r;

	for (size_t i = 0; i < req->nrcpts; i++)
		rcpt_clear_result(&req->rcpts[i]);
	free(req->relay);
	req->relay = NULL;

	attrs_init(&a);
	deliver_request_attrs(req, &a);
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
		logged = attrs_get(&a, "logged");
		req->logged = logged != NULL && strcmp(logged, "yes") == 0;
	}
	attrs_clear(&a);
	if (r != 0)
		defer_all(req, r, s->err);
	return r;
}

/* The optional orig=, times= and fallback= of a request; -1 when one
 * is malformed or names a recipient not in it. */
static int
parse_extras(struct deliver_request *req, const struct attrs *a)
{
	const char *v, *rest;
	struct deliver_rcpt *r;
	size_t index, i;
	double t[3];
	char end;

	for (size_t k = 0; k < a->n; k++) {
		if (strcmp(a->v[k].name, "orig") != 0)
			continue;
		if (parse_index(a->v[k].value, &index, &rest) < 0)
			return -1;
		for (i = 0; i < req->nrcpts && req->rcpts[i].index != index;
		    i++)
			;
		if (i == req->nrcpts)
			return -1;
		r = &req->rcpts[i];
		free(r->orig);
		if ((r->orig = xtext_decode(rest)) == NULL)
			return -1;
	}
	if ((v = attrs_get(a, "times")) != NULL) {
		if (sscanf(v, "%lf %lf %lf%c", &t[0], &t[1], &t[2],
		    &end) != 3 || !(t[0] >= 0) || !(t[1] >= 0) ||
		    !(t[2] >= 0))
			return -1;
		req->t_arrival = t[0];
		req->t_active = t[1];
		req->t_start = t[2];
	}
	v = attrs_get(a, "fallback");
	req->fallback = v != NULL && strcmp(v, "yes") == 0;
	return 0;
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
	if (req->nrcpts == 0 || parse_extras(req, &a) < 0)
		r = proto_error(s);
	req->t_recv = deliver_now();
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
	if (req->logged)
		attrs_add(&a, "logged", "yes");
	attrs_add(&a, "status", "0");
	r = attr_send(s, &a);
	attrs_clear(&a);
	return r;
}

void
deliver_format_delay(char *out, size_t outlen, double seconds)
{
	size_t n;

	if (!(seconds >= 0.01))		/* also negative and NaN */
		snprintf(out, outlen, "0");
	else if (seconds < 1) {
		/* Two decimals at most, as Postfix logs: "0.09", "0.1". */
		snprintf(out, outlen, "%.2f", seconds);
		n = strlen(out);
		while (n > 0 && out[n - 1] == '0')
			out[--n] = '\0';
		if (n > 0 && out[n - 1] == '.')
			out[--n] = '\0';
	} else if (seconds < 10)
		snprintf(out, outlen, "%.2g", seconds);
	else if (seconds > 1e15)	/* a broken clock, not a real delay */
		snprintf(out, outlen, "1000000000000000");
	else
		snprintf(out, outlen, "%llu", (unsigned long long)seconds);
}

double
deliver_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
deliver_site_failure(const char *const *dsn, const int *deferred, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (!deferred[i] || dsn[i] == NULL ||
		    strncmp(dsn[i], "4.4.", 4) != 0)
			return 0;
	return 1;
}

void
deliver_log(struct deliver_request *req, size_t i, const char *to,
    enum deliver_status st, const char *dsn, const char *reason)
{
	struct deliver_rcpt *r = &req->rcpts[i];
	const char *orig = r->orig != NULL ? r->orig : r->addr;
	char total[32], d[4][32];
	double now = deliver_now(), t[4] = { 0, 0, 0, 0 };

	if (to == NULL)
		to = r->addr;
	if (req->t_arrival > 0) {
		t[0] = req->t_active - req->t_arrival;
		t[1] = req->t_start - req->t_active;
		t[2] = req->t_recv - req->t_start;
		t[3] = now - req->t_recv;
	}
	deliver_format_delay(total, sizeof(total), req->t_arrival > 0 ?
	    now - req->t_arrival : 0);
	for (int k = 0; k < 4; k++)
		deliver_format_delay(d[k], sizeof(d[k]), t[k]);
	msg_info("%s: to=<%s>%s%s%s, relay=%s, delay=%s, delays=%s/%s/%s/%s, "
	    "dsn=%s, status=%s (%s)", req->queue_id, to,
	    strcasecmp(orig, to) != 0 ? ", orig_to=<" : "",
	    strcasecmp(orig, to) != 0 ? orig : "",
	    strcasecmp(orig, to) != 0 ? ">" : "",
	    req->relay != NULL ? req->relay : "none", total, d[0], d[1],
	    d[2], d[3], dsn != NULL ? dsn : "", deliver_status_name(st),
	    reason != NULL ? reason : "");
	r->logged = 1;
}

/*
 * Log what the agent did not log itself, unless qmgr will take a
 * destination that could not be reached to a fallback relay: then the
 * outcome is not final and Postfix's smtp, which tries the fallback
 * itself, would not log it either.
 */
static void
log_results(struct deliver_request *req)
{
	const char **dsn = xcalloc(req->nrcpts, sizeof(*dsn));
	int *deferred = xcalloc(req->nrcpts, sizeof(*deferred));
	int quiet;

	for (size_t i = 0; i < req->nrcpts; i++) {
		dsn[i] = req->rcpts[i].dsn;
		deferred[i] = req->rcpts[i].status == DELIVER_DEFERRED;
	}
	quiet = req->fallback && deliver_site_failure(dsn, deferred,
	    req->nrcpts);
	free(dsn);
	free(deferred);
	if (quiet)
		return;
	for (size_t i = 0; i < req->nrcpts; i++)
		if (!req->rcpts[i].logged)
			deliver_log(req, i, NULL, req->rcpts[i].dsn != NULL ?
			    req->rcpts[i].status : DELIVER_DEFERRED,
			    req->rcpts[i].dsn != NULL ? req->rcpts[i].dsn :
			    "4.3.0", req->rcpts[i].dsn != NULL ?
			    req->rcpts[i].reason :
			    "delivery agent gave no result");
	req->logged = 1;
}

void
deliver_agent_serve(int in_fd, int out_fd, int timeout_ms,
    void (*deliver)(struct deliver_request *))
{
	deliver_agent_serve_batch(in_fd, out_fd, timeout_ms, deliver, NULL,
	    1);
}

/*
 * Read the requests of one batch: the first waits (with the stream's
 * timeout), the rest only as far as they are already there. Returns how
 * many were read; *err is the error that ended the session (0: none,
 * STREAM_EOF: the peer closed), left for after the batch's replies.
 */
static size_t
batch_recv(struct stream *in, struct deliver_request *reqs, size_t max,
    int *err)
{
	size_t n = 0;
	int r;

	*err = 0;
	while (n < max) {
		if (n > 0 && (r = attr_ready(in, DELIVER_READAHEAD_MAX)) != 1) {
			/* Nothing more yet, or the end: that shows again at
			 * the next blocking read. */
			break;
		}
		memset(&reqs[n], 0, sizeof(reqs[n]));
		if ((r = deliver_request_recv(in, &reqs[n])) != 0) {
			deliver_request_free(&reqs[n]);
			*err = r;
			break;
		}
		n++;
	}
	return n;
}

void
deliver_agent_serve_batch(int in_fd, int out_fd, int timeout_ms,
    void (*deliver)(struct deliver_request *),
    void (*commit)(struct deliver_request *, size_t), size_t max)
{
	struct stream *in, *out;
	struct deliver_request *reqs;
	size_t n, i;
	int fd, r, err;

	if (max < 1 || commit == NULL)
		max = 1;
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
	reqs = xcalloc(max, sizeof(*reqs));
	for (err = 0, r = 0; err == 0 && r == 0;) {
		n = batch_recv(in, reqs, max, &err);
		for (i = 0; i < n; i++)
			deliver(&reqs[i]);
		if (n > 0 && commit != NULL)
			commit(reqs, n);
		for (i = 0; i < n; i++) {
			log_results(&reqs[i]);
			if (r == 0 && (r = deliver_reply_send(out,
			    &reqs[i])) != 0)
				msg_warn("sending delivery results: %s",
				    stream_strerror(r));
			deliver_request_free(&reqs[i]);
		}
		if (err != 0 && err != STREAM_EOF)
			msg_warn("reading delivery request: %s",
			    stream_strerror(err));
	}
	free(reqs);
	if (out != in)
		stream_free(out);
	stream_free(in);
}
