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
 * Security per request: the TLS policy of the next hop
 * (smtp_policy.c) decides whether a server may be used at all, and with
 * which checks; at level dane each server's TLSA records are looked up
 * here. The TLS context (certificates, session cache) is made once per
 * process and kept, so that sessions are resumed across requests.
 * SASL credentials are looked up per server.
 *
 * Connection reuse (smtp_cache.c): a session that ended healthy is kept
 * for smtp_connection_cache_time_limit instead of being closed, under a
 * key naming the next hop and its TLS level; the next request on the
 * same qmgr connection with the same key starts with RSET on it and
 * skips DNS, connect, EHLO, STARTTLS and AUTH. A kept session that
 * fails its RSET is dropped and the request goes the usual way. When
 * qmgr closes its connection the kept sessions end with QUIT.
 *
 * Failures are results, never exits: a queue file that cannot be read,
 * a bad next hop, a TLS policy that cannot be met or a resolver that
 * cannot start defers every recipient of the request; a peer that
 * breaks the delivery protocol ends the session with qmgr.
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
#include "strv.h"
#include "tls.h"

/* How long qmgr may take to send a request on an open connection. */
#define SMTP_REQUEST_TIMEOUT_MS	(300 * 1000)

static int lmtp_mode;
static struct dns_ctx *dns;
static struct tls_ctx *tls;

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
	c->rset_ms = ms("smtp_rset_timeout");
}

/*
 * The process's TLS client context, made at the first delivery that
 * wants TLS. NULL with *err when the certificates or settings are
 * wrong; then the next request tries again (and says so again).
 */
static struct tls_ctx *
tls_context(char **err)
{
	if (tls == NULL)
		tls = tls_client_ctx_from_config(err);
	return tls;
}

/* What one delivery demands of every server it uses. */
struct delivery_policy {
	struct smtp_tls_policy tls;
	char		**match;	/* verify, secure: what to match */
	int		 sasl;		/* smtp_sasl_auth_enable */
	char		*cache_key;	/* NULL: no connection reuse */
	int		 cache_s;	/* smtp_connection_cache_time_limit */
};

/*
 * The TLS policy for the next hop, and the context it needs. 0, or -1
 * with *fail for mail that must wait (a broken policy or, at a level
 * that requires TLS, no way to do TLS).
 */
static int
policy_for(const struct smtp_nexthop *nh, const char *id,
    struct delivery_policy *dp, struct smtp_fail *fail)
{
	char *err = NULL;
	const char *param;

	memset(dp, 0, sizeof(*dp));
	dp->sasl = config_bool("smtp_sasl_auth_enable");
	if (lmtp_mode) {
		/* LMTP servers are next door; no TLS for them here. */
		dp->tls.level = TLS_LEV_NONE;
		return 0;
	}
	if (smtp_tls_policy_find(nh, &dp->tls, fail) < 0)
		return -1;
	/* may: the context is made when a server offers STARTTLS
	 * (smtp_proto.c); a process that never meets one never pays for
	 * it (about 1.5 MB of memory per smtp process). */
	if (dp->tls.level == TLS_LEV_NONE || dp->tls.level == TLS_LEV_MAY)
		return 0;
	if (tls_context(&err) == NULL) {
		msg_warn("%s: TLS client set-up failed: %s", id, err);
		smtp_fail_set(fail, DELIVER_DEFERRED, "4.7.5", "TLS is "
		    "required, but the TLS client could not be set up: %s",
		    err);
		free(err);
		return -1;
	}
	if (dp->tls.level == TLS_LEV_VERIFY ||
	    dp->tls.level == TLS_LEV_SECURE) {
		param = dp->tls.level == TLS_LEV_VERIFY ?
		    "smtp_tls_verify_cert_match" : "smtp_tls_secure_cert_match";
		dp->match = strv_split(config_str(param), ", \t:");
	}
	return 0;
}

static void
policy_free(struct delivery_policy *dp)
{
	smtp_tls_policy_free(&dp->tls);
	strv_free(dp->match);
	free(dp->cache_key);
}

/*
 * Where a kept session may be used again: the same next hop, the same
 * TLS level (a policy change does not ride on an old session), and
 * SASL on or off alike. NULL when sessions are not kept.
 */
static char *
cache_key(const struct smtp_nexthop *nh, const struct delivery_policy *dp)
{
	unsigned long limit;

	if (!config_bool("smtp_connection_cache_on_demand"))
		return NULL;
	limit = config_time("smtp_connection_cache_time_limit");
	if (limit == 0)
		return NULL;
	return xasprintf("%d %s %s %u %s %d", (int)nh->kind,
	    nh->host != NULL ? nh->host : "", nh->path != NULL ? nh->path :
	    "", nh->port, tls_level_name(dp->tls.level), dp->sasl);
}

/*
 * A kept session for this next hop, when there is one that still
 * works: 1 when it decided every recipient, 0 when the usual way must
 * decide the rest.
 */
static int
try_cached(struct deliver_request *req, const struct smtp_conf *conf,
    const struct smtp_msg *msg, struct smtp_rcpt *rcpts, size_t n,
    const struct delivery_policy *dp, struct smtp_fail *fail)
{
	struct smtp_conn *c, *keep = NULL;
	enum smtp_sess_result res;
	char *relay = NULL;

	if (dp->cache_key == NULL ||
	    (c = smtp_cache_take(dp->cache_key, &relay)) == NULL)
		return 0;
	if (smtp_session_reuse(c, conf, msg, rcpts, n, fail, &keep,
	    &res) < 0) {
		free(relay);
		return 0;
	}
	free(req->relay);
	req->relay = relay;
	if (keep != NULL)
		smtp_cache_store(dp->cache_key, keep, req->relay, dp->cache_s,
		    conf->quit_ms);
	return res == SMTP_SESS_DONE;
}

/*
 * Level dane for one server: its TLSA records decide what it gets. 0
 * with sec->level (and the records) set, or -1 with *fail when its
 * TLSA lookup failed and it is not to be used now.
 */
static int
dane_for(const struct smtp_server *srv, const char *id,
    struct smtp_security *sec, struct tls_tlsa **tlsa,
    struct smtp_fail *fail)
{
	struct dns_result res;
	char *name, *why = NULL;
	int level;

	memset(&res, 0, sizeof(res));
	if (srv->dnssec && dns != NULL) {
		name = xasprintf("_%u._tcp.%s", srv->port, srv->name);
		(void)dns_lookup(dns, name, DNS_T_TLSA,
		    (int)config_time("dns_lookup_timeout") * 1000, &res);
		free(name);
	}
	level = smtp_dane_decide(srv->dnssec, srv->dnssec && dns != NULL ?
	    &res : NULL, tlsa, &sec->ntlsa, &why);
	dns_result_free(&res);
	if (level < 0) {
		msg_warn("%s: %s", id, why);
		smtp_fail_set(fail, DELIVER_DEFERRED, "4.7.5", "%s", why);
		free(why);
		return -1;
	}
	sec->level = (enum tls_level)level;
	sec->tlsa = *tlsa;
	if (server_verbose())
		msg_info("%s: %s: DANE gives TLS level %s with %zu TLSA "
		    "records", id, srv->name, tls_level_name(sec->level),
		    sec->ntlsa);
	return 0;
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

/*
 * One server: its security settings, a connection, a session, and the
 * plain-text retry when opportunistic TLS failed. SMTP_SESS_DONE when
 * every recipient has a result; *sessions counts servers that talked.
 * -1 in *stop when the delivery must end here (a password table that
 * cannot answer).
 */
static enum smtp_sess_result
try_server(struct deliver_request *req, const struct smtp_conf *conf,
    const struct smtp_msg *msg, struct smtp_rcpt *rcpts, size_t n,
    const struct smtp_nexthop *nh, const struct delivery_policy *dp,
    const struct smtp_server *srv, size_t *sessions, int *stop,
    struct smtp_fail *fail)
{
	struct smtp_security sec;
	struct smtp_conn *keep = NULL;
	struct tls_tlsa *tlsa = NULL;
	enum smtp_sess_result res = SMTP_SESS_NEXT;
	char *user = NULL, *pass = NULL, *why = NULL, **names = NULL;
	int fd, plain = 0;

	memset(&sec, 0, sizeof(sec));
	sec.tls = dp->tls.level != TLS_LEV_NONE ? tls : NULL;
	sec.tls_make = tls_context;
	sec.level = dp->tls.level;
	if (sec.level == TLS_LEV_VERIFY || sec.level == TLS_LEV_SECURE) {
		/* "hostname" is this server's name. */
		names = smtp_tls_match_names(dp->tls.match != NULL ?
		    dp->tls.match : dp->match, srv->name, nh->host);
		sec.match = (const char *const *)names;
	}
	sec.starttls_ms = ms("smtp_starttls_timeout");
	if (sec.level == TLS_LEV_DANE &&
	    dane_for(srv, msg->id, &sec, &tlsa, fail) < 0)
		goto out;
	if (dp->sasl && smtp_sasl_passwd_find(nh, srv->name, &user, &pass,
	    fail) < 0) {
		*stop = 1;
		goto out;
	}
	sec.sasl_user = user;
	sec.sasl_pass = pass;
	for (;;) {
		if ((fd = smtp_connect(srv, conf->connect_ms, &why)) < 0) {
			if (server_verbose())
				msg_info("%s: %s", msg->id, why);
			smtp_fail_set(fail, DELIVER_DEFERRED, "4.4.1", "%s",
			    why);
			free(why);
			break;
		}
		if (!plain)
			(*sessions)++;
		free(req->relay);
		req->relay = smtp_server_text(srv, 1);
		res = smtp_session(conf, msg, rcpts, n, srv, &sec, fd, fail,
		    dp->cache_key != NULL ? &keep : NULL);
		if (keep != NULL)
			smtp_cache_store(dp->cache_key, keep, req->relay,
			    dp->cache_s, conf->quit_ms);
		if (res != SMTP_SESS_PLAIN || plain)
			break;
		/* Opportunistic TLS failed: the same server again, in
		 * plain text, as Postfix does. */
		plain = 1;
		sec.tls = NULL;
		sec.level = TLS_LEV_NONE;
	}
	if (res != SMTP_SESS_DONE && server_verbose() && fail->reason != NULL)
		msg_info("%s: %s", msg->id, fail->reason);
out:
	if (pass != NULL)
		explicit_bzero(pass, strlen(pass));
	free(user);
	free(pass);
	smtp_tlsa_free(tlsa, sec.ntlsa);
	strv_free(names);
	return res == SMTP_SESS_DONE ? SMTP_SESS_DONE : SMTP_SESS_NEXT;
}

/* Try each server until every recipient has a result. */
static void
deliver_to_servers(struct deliver_request *req, const struct smtp_msg *msg,
    struct smtp_rcpt *rcpts, size_t n, const struct smtp_nexthop *nh)
{
	struct smtp_server *servers = NULL;
	struct smtp_fail fail;
	struct smtp_conf conf;
	struct delivery_policy dp;
	size_t nservers = 0, sessions = 0, session_limit;
	char *err = NULL;
	int stop = 0;

	memset(&fail, 0, sizeof(fail));
	memset(&dp, 0, sizeof(dp));
	read_conf(&conf);
	if (policy_for(nh, msg->id, &dp, &fail) < 0)
		goto finish;
	if ((dp.cache_key = cache_key(nh, &dp)) != NULL)
		dp.cache_s = (int)config_time(
		    "smtp_connection_cache_time_limit");
	if (try_cached(req, &conf, msg, rcpts, n, &dp, &fail))
		goto finish;
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
	for (size_t i = 0; i < nservers && !stop; i++) {
		if (try_server(req, &conf, msg, rcpts, n, nh, &dp,
		    &servers[i], &sessions, &stop, &fail) == SMTP_SESS_DONE)
			break;
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
	policy_free(&dp);
}

/* Deliver every recipient of one request, filling in the results. */
static void
deliver_one(struct deliver_request *req)
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
smtp_deliver_request(struct deliver_request *req)
{
	/* Sessions past their time go now, with QUIT. */
	smtp_cache_disarm();
	smtp_cache_expire();
	deliver_one(req);
	/* Waiting for the next request: kept sessions still expire. */
	smtp_cache_arm();
}

/*
 * One connection from qmgr: its requests, one after another. Sessions
 * are kept only while that connection lasts, so that each connection
 * qmgr holds to an agent stands for at most one connection to a
 * destination and its concurrency limit holds at the receiving end too
 * (an idle process holding sessions would hold them beyond qmgr's
 * count).
 */
static void
smtp_serve(int in_fd, int out_fd)
{
	deliver_agent_serve(in_fd, out_fd, SMTP_REQUEST_TIMEOUT_MS,
	    smtp_deliver_request);
	smtp_cache_disarm();
	smtp_cache_close_all();
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
