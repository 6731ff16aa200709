/*
 * smtp_proto - one SMTP (RFC 5321) or LMTP (RFC 2033) session with one
 * server, from its greeting to QUIT, for the recipients of a delivery
 * request that have no result yet. Called by smtp.c for each server in
 * turn until every recipient has a result.
 *
 * What the server says decides each recipient's fate: 2xx to RCPT and
 * to the end of the message is "sent", 4xx "deferred", 5xx "bounced",
 * with the server's own reply as the reason. What the server cannot say
 * -- a greeting other than 2xx, an EHLO/HELO refused, a lost connection
 * or a time limit crossed before the message was complete -- is not the
 * recipients' fault: the session ends with SMTP_SESS_NEXT and the caller
 * tries the next server. Once the final "." has been sent the message
 * may have been delivered, so a failure from then on defers rather than
 * trying elsewhere now (at worst the retry delivers it twice, never
 * zero times).
 *
 * ESMTP extensions used when the server offers them: PIPELINING (MAIL
 * and all RCPTs in one write), SIZE (and no attempt at all when the
 * message is over the server's limit), 8BITMIME, DSN (NOTIFY, ORCPT,
 * RET, ENVID from the queue file), SMTPUTF8 (required when an envelope
 * address is not ASCII).
 *
 * STARTTLS (RFC 3207) as the caller's struct smtp_security says: at
 * "may" when the server offers it, at "encrypt" and above always, a
 * server that does not offer it, refuses it or fails the handshake
 * being passed over (4.7.4, 4.7.5) rather than sent mail in clear. A
 * handshake that fails at "may" asks the caller for the same server
 * again in plain text (SMTP_SESS_PLAIN): the connection cannot go on
 * after a broken handshake. After TLS, EHLO again (RFC 3207 4.2: what
 * the server offered before means nothing now).
 *
 * AUTH (RFC 4954) through lib/sasl when the caller has credentials and
 * the server offers AUTH, after STARTTLS. Which mechanisms may carry
 * the password in clear is smtp_sasl_security_options' business (none
 * by default, outside TLS); a server that refuses the credentials is
 * passed over with its reply as the reason, as Postfix does.
 *
 * Connection reuse: a session that ends with every recipient decided
 * and the conversation in order (no lost connection, no time limit
 * crossed, no 421, nothing half sent) can be handed back to the caller
 * instead of ending with QUIT (struct smtp_conn, kept by smtp_cache.c).
 * The next transaction on it starts with RSET; a server that does not
 * answer 250 to that is dropped without a word and the caller connects
 * afresh, so a session gone stale costs a reconnect, never a message.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "num.h"
#include "queue.h"
#include "sasl.h"
#include "server.h"
#include "smtp.h"
#include "stream.h"
#include "tls.h"

#define F_ESMTP		0x01
#define F_PIPELINING	0x02
#define F_SIZE		0x04
#define F_8BITMIME	0x08
#define F_DSN		0x10
#define F_SMTPUTF8	0x20
#define F_STARTTLS	0x40
#define F_AUTH		0x80

/* The most 334 rounds one AUTH exchange may take. */
#define AUTH_MAX_ROUNDS	16

/* Message content is read and sent in chunks of this size. */
#define DATA_CHUNK	65536

struct session {
	const struct smtp_conf *conf;
	const struct smtp_msg *msg;
	struct smtp_rcpt *rcpts;
	size_t		 nrcpts;
	const struct smtp_server *srv;
	const struct smtp_security *sec;
	char		*host;		/* "mx.b.test[127.0.0.2]" */
	struct stream	*s;
	struct smtp_reply r;
	int		 features;
	size_t		 size_limit;	/* SIZE n; 0: none given */
	char		*auth_mechs;	/* AUTH's words, space separated */
	int		 broken;	/* no QUIT: the conversation is off */
	int		 closing;	/* the server said 421: no reuse */
	unsigned	 uses;		/* transactions, for a kept session */
	int		 utf8;		/* declare SMTPUTF8 */
	struct smtp_fail *why;
};

void
smtp_rcpt_set(struct smtp_rcpt *rc, enum deliver_status st, const char *dsn,
    const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(rc->dsn);
	free(rc->reason);
	rc->status = st;
	rc->dsn = xstrdup(dsn);
	rc->reason = buf_steal(&b);
	rc->final = 1;
	rc->accepted = 0;
	buf_free(&b);
}

/* The reply's status code with its class forced to 4: a server we
 * could not use says nothing final about the recipients. */
static void
soft_dsn(const struct smtp_reply *r, char *out, size_t len)
{
	snprintf(out, len, "%s", r->dsn[0] != '\0' ? r->dsn : "4.0.0");
	out[0] = '4';
}

/* The session ends here; the caller tries the next server. */
static enum smtp_sess_result
next_host(struct session *ss, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum smtp_sess_result
next_host(struct session *ss, const char *dsn, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	smtp_fail_set(ss->why, DELIVER_DEFERRED, dsn, "%s", buf_cstr(&b));
	buf_free(&b);
	for (size_t i = 0; i < ss->nrcpts; i++)
		ss->rcpts[i].accepted = 0;
	return SMTP_SESS_NEXT;
}

/* Why a stream operation failed, in Postfix's words. */
static enum smtp_sess_result
lost(struct session *ss, int err, const char *stage)
{
	ss->broken = 1;
	if (err == STREAM_TIMEOUT)
		return next_host(ss, "4.4.2", "conversation with %s timed "
		    "out while %s", ss->host, stage);
	if (err == SMTP_REPLY_BAD)
		return next_host(ss, "4.5.0", "host %s sent a malformed "
		    "reply while %s", ss->host, stage);
	return next_host(ss, "4.4.2", "lost connection with %s while %s",
	    ss->host, stage);
}

/* Write and flush one command line under timeout_ms. */
static int
command(struct session *ss, int timeout_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
command(struct session *ss, int timeout_ms, const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	int r;

	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	(void)buf_puts(&b, "\r\n");
	stream_set_timeout(ss->s, timeout_ms);
	r = stream_write(ss->s, b.data, b.len);
	buf_free(&b);
	if (r == 0)
		r = stream_flush(ss->s);
	return r;
}

static int
reply(struct session *ss, int timeout_ms)
{
	int r;

	r = smtp_reply_read(ss->s, &ss->r, ss->conf->line_limit, timeout_ms);
	/* 421 anywhere: the server is about to hang up (RFC 5321 3.8). */
	if (r == 0 && ss->r.code == 421)
		ss->closing = 1;
	return r;
}

/* A recipient's result from the server's reply to a command. */
static void
rcpt_from_reply(struct session *ss, struct smtp_rcpt *rc,
    const struct smtp_reply *r, const char *in_reply_to)
{
	const char *dsn = r->dsn[0] != '\0' ? r->dsn : "4.0.0";

	switch (smtp_reply_class(r)) {
	case 2:
		smtp_rcpt_set(rc, DELIVER_SENT, dsn, "%s",
		    buf_cstr(&r->text));
		break;
	case 5:
		smtp_rcpt_set(rc, DELIVER_BOUNCED, dsn, "host %s said: %s "
		    "(in reply to %s)", ss->host, buf_cstr(&r->text),
		    in_reply_to);
		break;
	default:	/* 4xx, and 1xx/3xx where they make no sense */
		{
			char soft[16];

			soft_dsn(r, soft, sizeof(soft));
			smtp_rcpt_set(rc, DELIVER_DEFERRED, soft, "host %s "
			    "said: %s (in reply to %s)", ss->host,
			    buf_cstr(&r->text), in_reply_to);
		}
		break;
	}
}

static void
parse_ehlo(struct session *ss)
{
	/* The first line is the server's name; keywords follow. */
	for (size_t i = 1; i < ss->r.nlines; i++) {
		const char *l = ss->r.lines[i];
		size_t klen = strcspn(l, " \t");

#define KW(k)	(klen == sizeof(k) - 1 && strncasecmp(l, k, klen) == 0)
		if (KW("PIPELINING"))
			ss->features |= F_PIPELINING;
		else if (KW("8BITMIME"))
			ss->features |= F_8BITMIME;
		else if (KW("DSN"))
			ss->features |= F_DSN;
		else if (KW("SMTPUTF8"))
			ss->features |= F_SMTPUTF8;
		else if (KW("STARTTLS"))
			ss->features |= F_STARTTLS;
		else if (KW("AUTH") || (klen > 5 &&
		    strncasecmp(l, "AUTH=", 5) == 0)) {
			/* "AUTH=PLAIN LOGIN" is what old servers said. */
			const char *v = l[4] == '=' ? l + 5 : l + klen;
			char *all;

			ss->features |= F_AUTH;
			all = xasprintf("%s%s%s", ss->auth_mechs != NULL ?
			    ss->auth_mechs : "", ss->auth_mechs != NULL ?
			    " " : "", v);
			free(ss->auth_mechs);
			ss->auth_mechs = all;
		}
		else if (KW("SIZE")) {
			unsigned long n;
			const char *v = l + klen;

			ss->features |= F_SIZE;
			while (*v == ' ' || *v == '\t')
				v++;
			if (*v != '\0' && parse_ulong(v, 0, (unsigned long)
			    (size_t)-1 / 2, &n) == 0)
				ss->size_limit = (size_t)n;
		}
#undef KW
	}
}

/* Forget what EHLO said: it is said again inside TLS. */
static void
forget_ehlo(struct session *ss)
{
	ss->features = 0;
	ss->size_limit = 0;
	free(ss->auth_mechs);
	ss->auth_mechs = NULL;
}

static enum smtp_sess_result
ehlo(struct session *ss, const char *stage)
{
	const char *verb = ss->conf->lmtp ? "LHLO" : "EHLO";
	char soft[16];
	int r;

	if ((r = command(ss, ss->conf->helo_ms, "%s %s", verb,
	    ss->conf->helo_name)) != 0 || (r = reply(ss,
	    ss->conf->helo_ms)) != 0)
		return lost(ss, r, stage);
	if (smtp_reply_class(&ss->r) != 2) {
		soft_dsn(&ss->r, soft, sizeof(soft));
		return next_host(ss, soft, "host %s said: %s (in reply to %s "
		    "command)", ss->host, buf_cstr(&ss->r.text), verb);
	}
	ss->features |= F_ESMTP;
	parse_ehlo(ss);
	return SMTP_SESS_DONE;
}

/*
 * STARTTLS when the level asks for it. DONE means go on (in TLS, or in
 * plain text where the level allows it).
 */
static enum smtp_sess_result
smtp_starttls(struct session *ss)
{
	const struct smtp_security *sec = ss->sec;
	int required = sec->level >= TLS_LEV_ENCRYPT;
	struct tls_ctx *tls = sec->tls;
	struct tls_peer peer;
	char soft[16], *err = NULL, *peer_text;
	int r;

	if (sec->level == TLS_LEV_NONE)
		return SMTP_SESS_DONE;
	if (!(ss->features & F_STARTTLS)) {
		if (!required)
			return SMTP_SESS_DONE;
		return next_host(ss, "4.7.4", "TLS is required, but was not "
		    "offered by host %s", ss->host);
	}
	if (tls == NULL && !required && sec->tls_make != NULL &&
	    (tls = sec->tls_make(&err)) == NULL) {
		msg_warn("%s: TLS client set-up failed: %s; sending in plain "
		    "text", ss->msg->id, err);
		free(err);
		return SMTP_SESS_DONE;
	}
	if (tls == NULL) {
		/* smtp.c makes the context before a level that requires
		 * TLS gets here; never go on in plain text for one. */
		if (!required)
			return SMTP_SESS_DONE;
		return next_host(ss, "4.7.5", "TLS is required, but the TLS "
		    "client is not set up");
	}
	if ((r = command(ss, ss->conf->helo_ms, "STARTTLS")) != 0 ||
	    (r = reply(ss, ss->conf->helo_ms)) != 0)
		return lost(ss, r, "sending STARTTLS");
	if (ss->r.code != 220) {
		if (!required) {
			/* Still a plain session that may go on. */
			msg_info("%s: host %s refused STARTTLS: %s; going on "
			    "in plain text", ss->msg->id, ss->host,
			    buf_cstr(&ss->r.text));
			return SMTP_SESS_DONE;
		}
		soft_dsn(&ss->r, soft, sizeof(soft));
		return next_host(ss, soft, "TLS is required, but host %s "
		    "refused to start TLS: %s", ss->host,
		    buf_cstr(&ss->r.text));
	}
	memset(&peer, 0, sizeof(peer));
	peer.level = sec->level;
	peer.servername = ss->srv->family == AF_UNIX ? NULL : ss->srv->name;
	peer.match = sec->match;
	peer_text = smtp_server_text(ss->srv, 1);
	peer.cache_key = peer_text;
	peer.tlsa = sec->tlsa;
	peer.ntlsa = sec->ntlsa;
	if (tls_stream_start_client(ss->s, tls, &peer, sec->starttls_ms,
	    &err) < 0) {
		/* The stream is fit only for freeing now. */
		ss->broken = 1;
		free(peer_text);
		if (!required) {
			msg_warn("%s: TLS with %s failed: %s; trying again in "
			    "plain text", ss->msg->id, ss->host, err);
			smtp_fail_set(ss->why, DELIVER_DEFERRED, "4.7.5", "TLS "
			    "with host %s failed: %s", ss->host, err);
			free(err);
			for (size_t i = 0; i < ss->nrcpts; i++)
				ss->rcpts[i].accepted = 0;
			return SMTP_SESS_PLAIN;
		}
		msg_warn("%s: TLS with %s failed: %s", ss->msg->id, ss->host,
		    err);
		(void)next_host(ss, "4.7.5", "TLS is required, but failed "
		    "with host %s: %s", ss->host, err);
		free(err);
		return SMTP_SESS_NEXT;
	}
	tls_conn_log(tls_stream_conn(ss->s), "to", peer_text);
	free(peer_text);
	forget_ehlo(ss);
	return ehlo(ss, "performing the EHLO handshake inside TLS");
}

/* AUTH failed on our side: the server is not to be used with these
 * credentials and settings. */
static enum smtp_sess_result
auth_cannot(struct session *ss, const char *err)
{
	msg_warn("%s: SASL authentication failed; cannot authenticate to "
	    "server %s: %s", ss->msg->id, ss->host, err);
	return next_host(ss, "4.7.0", "SASL authentication failed; cannot "
	    "authenticate to server %s: %s", ss->host, err);
}

/*
 * AUTH with the caller's credentials when the server offers it. DONE:
 * authenticated, or nothing to do.
 */
static enum smtp_sess_result
smtp_auth(struct session *ss)
{
	const struct smtp_security *sec = ss->sec;
	struct tls_conn *tc;
	struct sasl_cli *c;
	const char *mech;
	char *initial = NULL, *resp = NULL, *err = NULL, soft[16];
	enum smtp_sess_result res;
	int r, rounds = 0;

	if (sec->sasl_user == NULL || !(ss->features & F_AUTH))
		return SMTP_SESS_DONE;
	tc = tls_stream_conn(ss->s);
	c = sasl_cli_new_from_config(ss->srv->name, sec->sasl_user,
	    sec->sasl_pass, tc != NULL ? tls_conn_bits(tc, NULL) : 0, &err);
	if (c == NULL) {
		res = auth_cannot(ss, err);
		free(err);
		return res;
	}
	if (sasl_cli_start(c, ss->auth_mechs != NULL ? ss->auth_mechs : "",
	    &mech, &initial, &err) < 0) {
		sasl_cli_free(c);
		res = auth_cannot(ss, err);
		free(err);
		return res;
	}
	if (initial != NULL)
		r = command(ss, ss->conf->helo_ms, "AUTH %s %s", mech, initial);
	else
		r = command(ss, ss->conf->helo_ms, "AUTH %s", mech);
	if (initial != NULL) {
		explicit_bzero(initial, strlen(initial));
		free(initial);
	}
	if (r != 0 || (r = reply(ss, ss->conf->helo_ms)) != 0) {
		sasl_cli_free(c);
		return lost(ss, r, "sending AUTH");
	}
	while (ss->r.code == 334) {
		const char *challenge = ss->r.nlines > 0 ? ss->r.lines[0] : "";

		if (++rounds > AUTH_MAX_ROUNDS ||
		    sasl_cli_step(c, challenge, &resp, &err) < 0) {
			if (err == NULL)
				err = xstrdup("too many SASL rounds");
			/* Cancel (RFC 4954 4): the server answers 501. */
			if ((r = command(ss, ss->conf->helo_ms, "*")) != 0 ||
			    (r = reply(ss, ss->conf->helo_ms)) != 0) {
				free(err);
				sasl_cli_free(c);
				return lost(ss, r, "sending AUTH");
			}
			sasl_cli_free(c);
			res = auth_cannot(ss, err);
			free(err);
			return res;
		}
		r = command(ss, ss->conf->helo_ms, "%s", resp);
		explicit_bzero(resp, strlen(resp));
		free(resp);
		resp = NULL;
		if (r != 0 || (r = reply(ss, ss->conf->helo_ms)) != 0) {
			sasl_cli_free(c);
			return lost(ss, r, "sending AUTH");
		}
	}
	if (smtp_reply_class(&ss->r) == 2) {
		if (server_verbose())
			msg_info("%s: authenticated to %s as %s with %s",
			    ss->msg->id, ss->host, sec->sasl_user, mech);
		sasl_cli_free(c);	/* mech is Cyrus's, freed with c */
		return SMTP_SESS_DONE;
	}
	sasl_cli_free(c);
	soft_dsn(&ss->r, soft, sizeof(soft));
	return next_host(ss, soft, "SASL authentication failed; server %s "
	    "said: %s", ss->host, buf_cstr(&ss->r.text));
}

static enum smtp_sess_result
handshake(struct session *ss)
{
	const char *verb = ss->conf->lmtp ? "LHLO" : "EHLO";
	char soft[16], cmd[32];
	int r;

	if ((r = reply(ss, ss->conf->helo_ms)) != 0)
		return lost(ss, r, "receiving the initial server greeting");
	if (smtp_reply_class(&ss->r) != 2) {
		soft_dsn(&ss->r, soft, sizeof(soft));
		return next_host(ss, soft, "host %s refused to talk to me: %s",
		    ss->host, buf_cstr(&ss->r.text));
	}
	snprintf(cmd, sizeof(cmd), "performing the %s handshake", verb);
	if ((r = command(ss, ss->conf->helo_ms, "%s %s", verb,
	    ss->conf->helo_name)) != 0 || (r = reply(ss,
	    ss->conf->helo_ms)) != 0)
		return lost(ss, r, cmd);
	if (smtp_reply_class(&ss->r) == 2) {
		enum smtp_sess_result res;

		ss->features |= F_ESMTP;
		parse_ehlo(ss);
		if ((res = smtp_starttls(ss)) != SMTP_SESS_DONE)
			return res;
		return smtp_auth(ss);
	}
	/* LMTP has no fall-back; a server closing with 421 wants none. */
	if (ss->conf->lmtp || ss->r.code == 421) {
		soft_dsn(&ss->r, soft, sizeof(soft));
		return next_host(ss, soft, "host %s said: %s (in reply to %s "
		    "command)", ss->host, buf_cstr(&ss->r.text), verb);
	}
	if ((r = command(ss, ss->conf->helo_ms, "HELO %s",
	    ss->conf->helo_name)) != 0 || (r = reply(ss,
	    ss->conf->helo_ms)) != 0)
		return lost(ss, r, "performing the HELO handshake");
	if (smtp_reply_class(&ss->r) != 2) {
		soft_dsn(&ss->r, soft, sizeof(soft));
		return next_host(ss, soft, "host %s said: %s (in reply to "
		    "HELO command)", ss->host, buf_cstr(&ss->r.text));
	}
	/* HELO offers no STARTTLS. */
	return smtp_starttls(ss);
}

static const char *
notify_text(int notify, char *out, size_t len)
{
	out[0] = '\0';
	if (notify & NOTIFY_NEVER) {
		snprintf(out, len, "NEVER");
		return out;
	}
	if (notify & NOTIFY_SUCCESS)
		strncat(out, "SUCCESS,", len - strlen(out) - 1);
	if (notify & NOTIFY_FAILURE)
		strncat(out, "FAILURE,", len - strlen(out) - 1);
	if (notify & NOTIFY_DELAY)
		strncat(out, "DELAY,", len - strlen(out) - 1);
	if (out[0] != '\0')
		out[strlen(out) - 1] = '\0';
	return out;
}

static void
mail_command(struct session *ss, struct buf *b)
{
	const struct smtp_msg *m = ss->msg;

	(void)buf_printf(b, "MAIL FROM:<%s>", m->sender);
	if (ss->features & F_SIZE)
		(void)buf_printf(b, " SIZE=%zu", m->size);
	if ((ss->features & F_8BITMIME) && m->body != NULL &&
	    strcasecmp(m->body, "8BITMIME") == 0)
		(void)buf_puts(b, " BODY=8BITMIME");
	if ((ss->features & F_SMTPUTF8) && ss->utf8)
		(void)buf_puts(b, " SMTPUTF8");
	if (ss->features & F_DSN) {
		if (m->ret != NULL)
			(void)buf_printf(b, " RET=%s", m->ret);
		if (m->envid != NULL) {
			char *x = xtext_encode(m->envid);

			(void)buf_printf(b, " ENVID=%s", x);
			free(x);
		}
	}
	(void)buf_puts(b, "\r\n");
}

static void
rcpt_command(struct session *ss, const struct smtp_rcpt *rc, struct buf *b)
{
	char notify[64];

	(void)buf_printf(b, "RCPT TO:<%s>", rc->addr);
	if (ss->features & F_DSN) {
		if (rc->notify != 0)
			(void)buf_printf(b, " NOTIFY=%s",
			    notify_text(rc->notify, notify, sizeof(notify)));
		if (rc->orcpt != NULL &&
		    strncasecmp(rc->orcpt, "rfc822;", 7) != 0) {
			/* Other address types travel as they came. */
			(void)buf_printf(b, " ORCPT=%s", rc->orcpt);
		} else {
			const char *a = rc->orcpt != NULL ? rc->orcpt + 7 :
			    rc->orig;
			char *x = xtext_encode(a != NULL ? a : rc->addr);

			(void)buf_printf(b, " ORCPT=rfc822;%s", x);
			free(x);
		}
	}
	(void)buf_puts(b, "\r\n");
}

/* Every open recipient gets the same result. */
static void
all_from_reply(struct session *ss, const struct smtp_reply *r,
    const char *in_reply_to, int only_accepted)
{
	for (size_t i = 0; i < ss->nrcpts; i++) {
		struct smtp_rcpt *rc = &ss->rcpts[i];

		if (rc->final || (only_accepted && !rc->accepted))
			continue;
		rcpt_from_reply(ss, rc, r, in_reply_to);
	}
}

static void
all_set(struct session *ss, enum deliver_status st, const char *dsn,
    const char *reason, int only_accepted)
{
	for (size_t i = 0; i < ss->nrcpts; i++) {
		struct smtp_rcpt *rc = &ss->rcpts[i];

		if (rc->final || (only_accepted && !rc->accepted))
			continue;
		smtp_rcpt_set(rc, st, dsn, "%s", reason);
	}
}

/*
 * MAIL FROM and the RCPTs, in one write when the server pipelines.
 * Returns DONE with at least one recipient accepted (more to do), DONE
 * with none (every open recipient final), or NEXT.
 */
static enum smtp_sess_result
envelope(struct session *ss, int *naccepted)
{
	int pipelining = (ss->features & F_PIPELINING) != 0;
	size_t npipelined = 0;
	int r;
	struct buf b;

	*naccepted = 0;
	buf_init(&b, BUF_NOMAX);
	mail_command(ss, &b);
	if (pipelining)
		for (size_t i = 0; i < ss->nrcpts; i++)
			if (!ss->rcpts[i].final) {
				rcpt_command(ss, &ss->rcpts[i], &b);
				npipelined++;
			}
	stream_set_timeout(ss->s, ss->conf->mail_ms);
	r = stream_write(ss->s, b.data, b.len);
	buf_free(&b);
	if (r == 0)
		r = stream_flush(ss->s);
	if (r != 0 || (r = reply(ss, ss->conf->mail_ms)) != 0)
		return lost(ss, r, "sending MAIL FROM");
	if (smtp_reply_class(&ss->r) != 2) {
		all_from_reply(ss, &ss->r, "MAIL FROM command", 0);
		/* Pipelined RCPT replies still come; read them so that
		 * QUIT gets its own. */
		for (size_t i = 0; i < npipelined; i++)
			if (reply(ss, ss->conf->rcpt_ms) != 0) {
				ss->broken = 1;
				break;
			}
		return SMTP_SESS_DONE;
	}
	for (size_t i = 0; i < ss->nrcpts; i++) {
		struct smtp_rcpt *rc = &ss->rcpts[i];

		if (rc->final)
			continue;
		if (!pipelining) {
			buf_init(&b, BUF_NOMAX);
			rcpt_command(ss, rc, &b);
			stream_set_timeout(ss->s, ss->conf->rcpt_ms);
			r = stream_write(ss->s, b.data, b.len);
			buf_free(&b);
			if (r == 0)
				r = stream_flush(ss->s);
			if (r != 0)
				return lost(ss, r, "sending RCPT TO");
		}
		if ((r = reply(ss, ss->conf->rcpt_ms)) != 0)
			return lost(ss, r, "sending RCPT TO");
		if (smtp_reply_class(&ss->r) == 2) {
			rc->accepted = 1;
			(*naccepted)++;
		} else
			rcpt_from_reply(ss, rc, &ss->r, "RCPT TO command");
	}
	return SMTP_SESS_DONE;
}

/* Stream the content from the queue file; 0, a STREAM_* error, or 1
 * when the queue file could not be read. */
static int
send_content(struct session *ss)
{
	const struct smtp_msg *m = ss->msg;
	struct smtp_dot dot;
	struct buf out;
	char *chunk;
	size_t off = 0;
	ssize_t n;
	int r = 0;

	chunk = xmalloc(DATA_CHUNK);
	buf_init(&out, BUF_NOMAX);
	smtp_dot_init(&dot);
	stream_set_timeout(ss->s, ss->conf->data_xfer_ms);
	while (off < m->size) {
		size_t want = m->size - off < DATA_CHUNK ? m->size - off :
		    DATA_CHUNK;

		n = queue_read_content(m->q, (off_t)off, chunk, want);
		if (n <= 0) {
			r = 1;
			break;
		}
		off += (size_t)n;
		buf_reset(&out);
		(void)smtp_dot_encode(&dot, chunk, (size_t)n, &out);
		if ((r = stream_write(ss->s, out.data, out.len)) != 0 ||
		    (r = stream_flush(ss->s)) != 0)
			break;
	}
	if (r == 0) {
		buf_reset(&out);
		(void)smtp_dot_end(&dot, &out);
		if ((r = stream_write(ss->s, out.data, out.len)) == 0)
			r = stream_flush(ss->s);
	}
	buf_free(&out);
	free(chunk);
	return r;
}

static enum smtp_sess_result
data(struct session *ss)
{
	static const char done_stage[] = "sending end of data -- message "
	    "may be sent more than once";
	char *why;
	int r;

	if ((r = command(ss, ss->conf->data_init_ms, "DATA")) != 0 ||
	    (r = reply(ss, ss->conf->data_init_ms)) != 0)
		return lost(ss, r, "sending DATA command");
	if (ss->r.code != 354) {
		all_from_reply(ss, &ss->r, "DATA command", 1);
		return SMTP_SESS_DONE;
	}
	if ((r = send_content(ss)) == 1) {
		/* Without the final dot the server discards the message
		 * when the connection drops. */
		all_set(ss, DELIVER_DEFERRED, "4.3.0", "error reading the "
		    "queue file", 1);
		ss->broken = 1;
		return SMTP_SESS_DONE;
	}
	if (r != 0)
		return lost(ss, r, "sending message body");
	/* From here the message may have been taken: no next server. */
	if (!ss->conf->lmtp) {
		if ((r = reply(ss, ss->conf->data_done_ms)) != 0)
			goto gone;
		all_from_reply(ss, &ss->r, "end of DATA command", 1);
		return SMTP_SESS_DONE;
	}
	/* LMTP: one reply per accepted recipient, in RCPT order. */
	for (size_t i = 0; i < ss->nrcpts; i++) {
		struct smtp_rcpt *rc = &ss->rcpts[i];

		if (rc->final || !rc->accepted)
			continue;
		if ((r = reply(ss, ss->conf->data_done_ms)) != 0)
			goto gone;
		rcpt_from_reply(ss, rc, &ss->r, "end of DATA command");
	}
	return SMTP_SESS_DONE;
gone:
	ss->broken = 1;
	why = xasprintf("%s with %s while %s", r == STREAM_TIMEOUT ?
	    "conversation timed out" : r == SMTP_REPLY_BAD ?
	    "malformed reply" : "lost connection", ss->host, done_stage);
	all_set(ss, DELIVER_DEFERRED, "4.4.2", why, 1);
	free(why);
	return SMTP_SESS_DONE;
}

static int
needs_smtputf8(const struct session *ss)
{
	if (!addr_is_ascii(ss->msg->sender))
		return 1;
	for (size_t i = 0; i < ss->nrcpts; i++)
		if (!ss->rcpts[i].final && !addr_is_ascii(ss->rcpts[i].addr))
			return 1;
	return 0;
}

static enum smtp_sess_result
transaction(struct session *ss)
{
	enum smtp_sess_result res;
	char *why;
	int naccepted;

	if ((ss->features & F_SIZE) && ss->size_limit > 0 &&
	    ss->msg->size > ss->size_limit) {
		why = xasprintf("message size %zu exceeds size limit %zu of "
		    "server %s", ss->msg->size, ss->size_limit, ss->host);
		all_set(ss, DELIVER_BOUNCED, "5.3.4", why, 0);
		free(why);
		return SMTP_SESS_DONE;
	}
	ss->utf8 = ss->msg->smtputf8 || needs_smtputf8(ss);
	if (!(ss->features & F_SMTPUTF8) && needs_smtputf8(ss)) {
		why = xasprintf("SMTPUTF8 is required, but was not offered "
		    "by host %s", ss->host);
		all_set(ss, DELIVER_BOUNCED, "5.6.7", why, 0);
		free(why);
		return SMTP_SESS_DONE;
	}
	if ((res = envelope(ss, &naccepted)) != SMTP_SESS_DONE)
		return res;
	if (naccepted == 0)
		return SMTP_SESS_DONE;
	return data(ss);
}

struct smtp_conn {
	struct stream	*s;
	char		*host;
	int		 features;
	size_t		 size_limit;
	char		*auth_mechs;
	unsigned	 uses;
};

/*
 * The end of a session: handed back in *keep when it may carry another
 * transaction, else QUIT (unless the conversation is off) and freed.
 */
static void
session_end(struct session *ss, enum smtp_sess_result res,
    struct smtp_conn **keep)
{
	struct smtp_conn *c;

	if (keep != NULL)
		*keep = NULL;
	if (keep != NULL && res == SMTP_SESS_DONE && !ss->broken &&
	    !ss->closing && stream_pending(ss->s) == 0) {
		c = xcalloc(1, sizeof(*c));
		c->s = ss->s;
		c->host = ss->host;
		c->features = ss->features;
		c->size_limit = ss->size_limit;
		c->auth_mechs = ss->auth_mechs;
		c->uses = ss->uses;
		*keep = c;
		smtp_reply_free(&ss->r);
		return;
	}
	/* A polite goodbye, unless the connection is gone, hung, or in
	 * the middle of the message (QUIT would become content). */
	if (!ss->broken) {
		if (command(ss, ss->conf->quit_ms, "QUIT") == 0)
			(void)reply(ss, ss->conf->quit_ms);
	}
	tls_stream_stop(ss->s);
	smtp_reply_free(&ss->r);
	stream_free(ss->s);
	free(ss->auth_mechs);
	free(ss->host);
}

enum smtp_sess_result
smtp_session(const struct smtp_conf *conf, const struct smtp_msg *msg,
    struct smtp_rcpt *rcpts, size_t nrcpts, const struct smtp_server *srv,
    const struct smtp_security *sec, int fd, struct smtp_fail *why,
    struct smtp_conn **keep)
{
	struct session ss;
	enum smtp_sess_result res;

	memset(&ss, 0, sizeof(ss));
	ss.conf = conf;
	ss.msg = msg;
	ss.rcpts = rcpts;
	ss.nrcpts = nrcpts;
	ss.srv = srv;
	ss.sec = sec;
	ss.why = why;
	ss.host = smtp_server_text(srv, 0);
	ss.s = stream_new(fd, conf->helo_ms);
	ss.uses = 1;
	smtp_reply_init(&ss.r);
	for (size_t i = 0; i < nrcpts; i++)
		rcpts[i].accepted = 0;

	res = handshake(&ss);
	if (res == SMTP_SESS_DONE)
		res = transaction(&ss);
	session_end(&ss, res, keep);
	return res;
}

int
smtp_session_reuse(struct smtp_conn *c, const struct smtp_conf *conf,
    const struct smtp_msg *msg, struct smtp_rcpt *rcpts, size_t nrcpts,
    struct smtp_fail *why, struct smtp_conn **keep,
    enum smtp_sess_result *res)
{
	struct session ss;
	int r;

	if (keep != NULL)
		*keep = NULL;
	memset(&ss, 0, sizeof(ss));
	ss.conf = conf;
	ss.msg = msg;
	ss.rcpts = rcpts;
	ss.nrcpts = nrcpts;
	ss.why = why;
	ss.host = c->host;
	ss.s = c->s;
	ss.features = c->features;
	ss.size_limit = c->size_limit;
	ss.auth_mechs = c->auth_mechs;
	ss.uses = c->uses + 1;
	free(c);
	smtp_reply_init(&ss.r);
	for (size_t i = 0; i < nrcpts; i++)
		rcpts[i].accepted = 0;

	/* Anything the server said while the session sat unused (a 421
	 * before it hung up) comes before the answer to RSET, and is not
	 * 250 either. */
	if ((r = command(&ss, conf->rset_ms, "RSET")) != 0 ||
	    (r = reply(&ss, conf->rset_ms)) != 0 || ss.r.code != 250) {
		if (server_verbose())
			msg_info("%s: kept session with %s is no longer "
			    "usable: %s", msg->id, ss.host, r != 0 ?
			    stream_strerror(r) : buf_cstr(&ss.r.text));
		ss.broken = 1;
		session_end(&ss, SMTP_SESS_NEXT, NULL);
		return -1;
	}
	if (server_verbose())
		msg_info("%s: reusing the session with %s (use %u)", msg->id,
		    ss.host, ss.uses);
	*res = transaction(&ss);
	session_end(&ss, *res, keep);
	return 0;
}

void
smtp_conn_close(struct smtp_conn *c, int quit_ms)
{
	struct smtp_reply r;

	if (c == NULL)
		return;
	if (quit_ms > 0) {
		stream_set_timeout(c->s, quit_ms);
		if (stream_puts(c->s, "QUIT\r\n") == 0 &&
		    stream_flush(c->s) == 0) {
			smtp_reply_init(&r);
			(void)smtp_reply_read(c->s, &r, SMTP_REPLY_MAX_TEXT,
			    quit_ms);
			smtp_reply_free(&r);
		}
	}
	tls_stream_stop(c->s);
	stream_free(c->s);
	free(c->auth_mechs);
	free(c->host);
	free(c);
}

int
smtp_conn_fd(const struct smtp_conn *c)
{
	return c->s->fd;
}

int
smtp_conn_tls(const struct smtp_conn *c)
{
	return tls_stream_conn(c->s) != NULL;
}

unsigned
smtp_conn_uses(const struct smtp_conn *c)
{
	return c->uses;
}
