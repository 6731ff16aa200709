/*
 * smtp - the outbound SMTP and LMTP client (DESIGN.md §2, man/smtp.8).
 *
 * master runs it on the "smtp" (or "lmtp") service's Unix socket; qmgr
 * connects and sends delivery requests (deliver.h): a queue ID, the
 * sender, a next hop and the recipients for it. smtp opens the queue
 * file read-only, finds the servers for the next hop (smtp_addr.c),
 * tries them in order (smtp_proto.c) until every recipient has a result,
 * and replies with one result per recipient and the relay it talked to.
 * Recording results, retrying and bouncing are qmgr's job.
 *
 * One binary, two protocols, as Postfix does it: invoked under the name
 * "lmtp" (a link to smtp, which master.cf's command column names) it
 * speaks LMTP (RFC 2033) to next hops like "unix:/path" or
 * "inet:host:port"; under any other name, SMTP.
 *
 * Failures are results, never exits: a queue file that cannot be read,
 * a bad next hop or a resolver that cannot start defers every recipient
 * of the request; a peer that breaks the delivery protocol ends the
 * session with qmgr.
 */
#include "autoconf.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "alloc.h"
#include "config.h"
#include "deliver.h"
#include "dns.h"
#include "log.h"
#include "queue.h"
#include "server.h"
#include "smtp.h"
#include "stream.h"

/* How long qmgr may take to send a request on an open connection. */
#define SMTP_REQUEST_TIMEOUT_MS	(300 * 1000)

static int lmtp_mode;
static struct dns_ctx *dns;

static void
defer_all(struct deliver_request *req, const char *dsn, const char *reason)
{
	for (size_t i = 0; i < req->nrcpts; i++)
		deliver_set_result(req, i, DELIVER_DEFERRED, dsn, reason);
}

static int
ms(const char *param)
{
	unsigned long s = config_time(param);

	return s > 86400 ? 86400 * 1000 : (int)s * 1000;
}

static void
read_conf(struct smtp_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->lmtp = lmtp_mode;
	c->helo_name = config_str("smtp_helo_name");
	c->line_limit = (size_t)config_int("line_length_limit");
	c->connect_ms = ms("smtp_connect_timeout");
	c->helo_ms = ms("smtp_helo_timeout");
	c->mail_ms = ms("smtp_mail_timeout");
	c->rcpt_ms = ms("smtp_rcpt_timeout");
	c->data_init_ms = ms("smtp_data_init_timeout");
	c->data_xfer_ms = ms("smtp_data_xfer_timeout");
	c->data_done_ms = ms("smtp_data_done_timeout");
	c->quit_ms = ms("smtp_quit_timeout");
}

/*
 * TLS levels that forbid plain text. Until lib/tls is in, mail under
 * them waits in the queue rather than leaving unencrypted.
 */
static int
tls_required(void)
{
	const char *level = config_str("smtp_tls_security_level");

	return *level != '\0' && strcasecmp(level, "none") != 0 &&
	    strcasecmp(level, "may") != 0;
}

/* The next hop: qmgr's, or else the first recipient's domain. */
static char *
nexthop_text(const struct deliver_request *req)
{
	char *local, *domain;

	if (req->nexthop != NULL && *req->nexthop != '\0')
		return xstrdup(req->nexthop);
	if (req->nrcpts == 0)
		return xstrdup("");
	addr_split(req->rcpts[0].addr, &local, &domain);
	free(local);
	return domain;
}

/* Try each server until every recipient has a result. */
static void
deliver_to_servers(struct deliver_request *req, const struct smtp_msg *msg,
    struct smtp_rcpt *rcpts, size_t n, const struct smtp_nexthop *nh)
{
	struct smtp_server *servers = NULL;
	struct smtp_fail fail;
	struct smtp_conf conf;
	size_t nservers = 0, sessions = 0, session_limit;
	char *why = NULL, *err = NULL;
	int fd;

	memset(&fail, 0, sizeof(fail));
	read_conf(&conf);
	session_limit = (size_t)config_int("smtp_mx_session_limit");
	if (dns == NULL && nh->kind != NEXTHOP_UNIX && !nh->literal &&
	    (dns = dns_ctx_from_config(&err)) == NULL) {
		msg_warn("%s: DNS resolver: %s", msg->id, err);
		smtp_fail_set(&fail, DELIVER_DEFERRED, "4.3.5",
		    "DNS resolver: %s", err);
		free(err);
		goto finish;
	}
	if (smtp_find_servers(dns, nh, &servers, &nservers, &fail) < 0)
		goto finish;
	for (size_t i = 0; i < nservers; i++) {
		const struct smtp_server *srv = &servers[i];

		if ((fd = smtp_connect(srv, conf.connect_ms, &why)) < 0) {
			if (server_verbose())
				msg_info("%s: %s", msg->id, why);
			smtp_fail_set(&fail, DELIVER_DEFERRED, "4.4.1", "%s",
			    why);
			free(why);
			continue;
		}
		sessions++;
		free(req->relay);
		req->relay = smtp_server_text(srv, 1);
		if (smtp_session(&conf, msg, rcpts, n, srv, fd, &fail) ==
		    SMTP_SESS_DONE)
			break;
		if (server_verbose())
			msg_info("%s: %s", msg->id, fail.reason);
		if (session_limit > 0 && sessions >= session_limit)
			break;
	}
finish:
	for (size_t i = 0; i < n; i++) {
		if (rcpts[i].final)
			continue;
		if (fail.reason != NULL)
			smtp_rcpt_set(&rcpts[i], fail.status, fail.dsn, "%s",
			    fail.reason);
		else
			smtp_rcpt_set(&rcpts[i], DELIVER_DEFERRED, "4.4.1",
			    "no server for %s could be tried", nh->host ?
			    nh->host : nh->path);
	}
	smtp_servers_free(servers, nservers);
	smtp_fail_free(&fail);
}

/* Deliver every recipient of one request, filling in the results. */
static void
smtp_deliver_request(struct deliver_request *req)
{
	const char *queue_dir = config_str("queue_directory");
	enum queue_folder folder = QUEUE_ACTIVE;
	struct queue_msg *q = NULL;
	struct smtp_nexthop nh;
	struct smtp_rcpt *rcpts;
	struct smtp_msg msg;
	char *path, *err = NULL, *why, *hop;
	const char *v;
	int corrupt = 0;

	free(req->relay);
	req->relay = xstrdup("none");
	if (req->folder != NULL && *req->folder != '\0' &&
	    queue_folder_lookup(req->folder, &folder) < 0) {
		why = xasprintf("bad queue folder \"%s\" in request",
		    req->folder);
		defer_all(req, "4.3.0", why);
		free(why);
		return;
	}
	if (!queue_id_valid(req->queue_id)) {
		defer_all(req, "4.3.0", "bad queue ID in request");
		return;
	}
	if (tls_required()) {
		defer_all(req, "4.7.4", "TLS is required by "
		    "smtp_tls_security_level, but this smtp client has no TLS "
		    "support yet");
		return;
	}
	hop = nexthop_text(req);
	if (smtp_nexthop_parse(hop, lmtp_mode, &nh, &err) < 0) {
		msg_warn("%s: %s", req->queue_id, err);
		defer_all(req, "4.3.5", err);
		free(err);
		free(hop);
		return;
	}
	free(hop);
	path = queue_path(queue_dir, folder, req->queue_id);
	if (queue_open(path, 0, &q, &corrupt, &err) < 0) {
		msg_warn("%s: cannot open queue file: %s", req->queue_id,
		    err ? err : "?");
		why = xasprintf("cannot open queue file: %s", err ? err : "?");
		defer_all(req, "4.3.0", why);
		free(why);
		free(err);
		free(path);
		smtp_nexthop_free(&nh);
		return;
	}
	free(path);

	memset(&msg, 0, sizeof(msg));
	msg.q = q;
	msg.id = req->queue_id;
	msg.sender = req->sender != NULL ? req->sender : q->sender;
	msg.size = q->content_len;
	msg.body = queue_msg_attr(q, "body");
	msg.envid = queue_msg_attr(q, "envid");
	msg.ret = queue_msg_attr(q, "ret");
	v = queue_msg_attr(q, "smtputf8");
	msg.smtputf8 = v != NULL && strcasecmp(v, "yes") == 0;

	rcpts = xcalloc(req->nrcpts ? req->nrcpts : 1, sizeof(*rcpts));
	for (size_t i = 0; i < req->nrcpts; i++) {
		struct deliver_rcpt *dr = &req->rcpts[i];

		rcpts[i].addr = dr->addr;
		if (dr->index >= q->nrcpts) {
			smtp_rcpt_set(&rcpts[i], DELIVER_DEFERRED, "4.3.0",
			    "recipient index %zu is not in the queue file",
			    dr->index);
			continue;
		}
		rcpts[i].orcpt = q->rcpts[dr->index].orcpt;
		rcpts[i].orig = q->rcpts[dr->index].addr;
		rcpts[i].notify = q->rcpts[dr->index].notify;
	}
	deliver_to_servers(req, &msg, rcpts, req->nrcpts, &nh);
	for (size_t i = 0; i < req->nrcpts; i++) {
		deliver_set_result(req, i, rcpts[i].status, rcpts[i].dsn,
		    rcpts[i].reason);
		free(rcpts[i].dsn);
		free(rcpts[i].reason);
	}
	free(rcpts);
	smtp_nexthop_free(&nh);
	queue_close(q);
}

static void
smtp_serve(int in_fd, int out_fd)
{
	struct stream *in, *out;
	struct deliver_request req;
	int fd, r;

	/* The skeleton owns the descriptors; the streams get copies. */
	if ((fd = dup(in_fd)) < 0) {
		msg_warn("dup: %s", strerror(errno));
		return;
	}
	in = stream_new(fd, SMTP_REQUEST_TIMEOUT_MS);
	out = in;
	if (out_fd != in_fd) {
		if ((fd = dup(out_fd)) < 0) {
			msg_warn("dup: %s", strerror(errno));
			stream_free(in);
			return;
		}
		out = stream_new(fd, SMTP_REQUEST_TIMEOUT_MS);
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
		smtp_deliver_request(&req);
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

int
main(int argc, char **argv)
{
	struct server_opts opts = {
		.program = "smtp",
		.serve = smtp_serve,
		.unprivileged_ok = 1,
	};
	char *copy = xstrdup(argc > 0 ? argv[0] : "smtp");

	/* Postfix's convention: the name we are called by decides. */
	if (strcmp(basename(copy), "lmtp") == 0) {
		lmtp_mode = 1;
		opts.program = "lmtp";
	}
	free(copy);
	return single_server_main(argc, argv, &opts);
}
