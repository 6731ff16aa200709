/*
 * smtpd_data - DATA and BDAT: the message into a queue file.
 *
 * smtpd.c calls smtpd_data_cmd() and smtpd_bdat_cmd() once MAIL and
 * RCPT are done. The queue file is created before the client sends a
 * byte of content (so a full disk is a 451 before 354, not after), the
 * envelope and a Received: header go first, then the content with LF
 * line endings, dot-unstuffed for DATA. The client gets 250 only after
 * queue_commit() has fsynced the file and its folder; on any failure
 * it gets 451 or 552 and the temporary file is removed, so a message
 * is either queued whole or not at all.
 *
 * SMTP smuggling: only CR LF "." CR LF, with the CR LF being the end
 * of the previous line, ends DATA. A bare LF or a bare CR never ends a
 * line that could end the message, and with smtpd_forbid_bare_newline
 * (default) a bare LF in DATA gets 521 and the connection is closed
 * before anything is queued: whatever the client meant to smuggle after
 * it is never read as commands.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "event.h"
#include "log.h"
#include "num.h"
#include "qmgr_client.h"
#include "queue.h"
#include "stream.h"
#include "smtpd.h"

/* Content is handed to queue_write() in pieces of about this size. */
#define DATA_FLUSH_SIZE		65536
/* BDAT chunks are read in pieces of at most this size. */
#define BDAT_PIECE		16384
/* A header longer than this is not looked at for Message-ID. */
#define HEADER_SCAN_MAX		4096
#define MESSAGE_ID_LOG_MAX	200

struct smtpd_data {
	struct queue_writer *qw;
	char	*id;
	struct buf out;		/* content not yet given to queue_write */
	size_t	 size;		/* content bytes from the client */
	int	 too_big;	/* past message_size_limit: discarding */
	int	 failed;	/* queue_write failed: discarding */
	int	 pending_cr;	/* BDAT: a CR whose LF may be next */
	/* Header scan, for the "message-id=" log line. */
	int	 in_headers;
	int	 scan_bol;	/* the scan is at the start of a line */
	struct buf hdr;		/* the header being read, unfolded */
	char	*message_id;
};

/* ---- writing content ---- */

static void
data_flush(struct smtpd_data *d)
{
	char *err = NULL;

	if (d->failed || d->out.len == 0)
		return;
	if (queue_write(d->qw, d->out.data, d->out.len, &err) < 0) {
		msg_warn("%s: queue file write error: %s", d->id,
		    err != NULL ? err : "unknown");
		free(err);
		d->failed = 1;
	}
	buf_reset(&d->out);
}

static void
data_header_done(struct smtpd_data *d)
{
	const char *v;
	size_t n;

	if (d->message_id == NULL && d->hdr.len > 11 &&
	    strncasecmp(d->hdr.data, "Message-ID:", 11) == 0) {
		for (v = d->hdr.data + 11; *v == ' ' || *v == '\t'; v++)
			;
		n = strlen(v);
		while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
			n--;
		if (n > MESSAGE_ID_LOG_MAX)
			n = MESSAGE_ID_LOG_MAX;
		d->message_id = xstrndup(v, n);
	}
	buf_reset(&d->hdr);
}

/* Follow the header section line by line (content has LF endings). */
static void
data_scan(struct smtpd_data *d, const char *p, size_t n)
{
	const char *lf;
	size_t len;

	while (n > 0 && d->in_headers) {
		lf = memchr(p, '\n', n);
		len = lf != NULL ? (size_t)(lf - p) : n;
		if (d->scan_bol) {
			if (len == 0 && lf != NULL) {
				/* The empty line: the body starts. */
				data_header_done(d);
				d->in_headers = 0;
				break;
			}
			if (*p != ' ' && *p != '\t')
				data_header_done(d);
		}
		/* Unfolded; a header too long to matter is cut short. */
		(void)buf_append(&d->hdr, p, len);
		d->scan_bol = lf != NULL;
		if (lf == NULL)
			break;
		p += len + 1;
		n -= len + 1;
	}
}

/* Add content the client sent (already unstuffed, LF endings). */
static void
data_put(struct smtpd_data *d, const char *p, size_t n)
{
	d->size += n;
	if (d->too_big || d->failed)
		return;
	if (smtpd_conf.size_limit > 0 && d->size > smtpd_conf.size_limit) {
		d->too_big = 1;
		return;
	}
	data_scan(d, p, n);
	(void)buf_append(&d->out, p, n);
	if (d->out.len >= DATA_FLUSH_SIZE)
		data_flush(d);
}

/* ---- opening and closing the queue file ---- */

static void
data_received(struct smtpd_session *s, struct smtpd_data *d)
{
	struct timespec ts = queue_writer_arrival(d->qw);
	char date[80], *addr;
	struct tm tm;
	char proto[16], *tls;

	localtime_r(&ts.tv_sec, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm);
	/*
	 * RFC 6531 section 3.7.4 names SMTPUTF8 sessions UTF8SMTP; RFC 3848
	 * adds S for TLS and A for AUTH to the ESMTP ones (ESMTPSA).
	 */
	tls = smtpd_tls_describe(s);
	snprintf(proto, sizeof(proto), "%s%s%s", s->smtputf8 ? "UTF8SMTP" :
	    s->esmtp ? "ESMTP" : "SMTP", s->esmtp && tls != NULL ? "S" : "",
	    s->esmtp && s->sasl_username != NULL ? "A" : "");
	addr = strchr(s->client_addr, ':') != NULL ?
	    xasprintf("IPv6:%s", s->client_addr) : xstrdup(s->client_addr);
	buf_printf(&d->out, "Received: from %s (%s [%s])\n",
	    s->helo != NULL ? s->helo : s->client_name, s->client_name, addr);
	/* What protected the message on its way in, as Postfix says it. */
	if (tls != NULL && smtpd_conf.tls_received_header)
		buf_printf(&d->out, "\t(using %s)\n"
		    "\t(No client certificate requested)\n", tls);
	free(tls);
	if (s->nrcpts == 1)
		buf_printf(&d->out, "\tby %s (%s) with %s id %s\n"
		    "\tfor <%s>; %s\n", smtpd_conf.myhostname,
		    smtpd_conf.mail_name, proto, d->id, s->rcpts[0].addr, date);
	else
		buf_printf(&d->out, "\tby %s (%s) with %s id %s;\n\t%s\n",
		    smtpd_conf.myhostname, smtpd_conf.mail_name, proto, d->id,
		    date);
	free(addr);
}

/* Create the queue file with the envelope; 0, or -1 after a reply. */
static int
data_open(struct smtpd_session *s)
{
	struct smtpd_data *d;
	char *err = NULL;

	d = xcalloc(1, sizeof(*d));
	if ((d->qw = queue_create(smtpd_conf.queue_dir, QUEUE_INCOMING,
	    &err)) == NULL) {
		msg_warn("NOQUEUE: cannot create queue file: %s",
		    err != NULL ? err : "unknown");
		free(err);
		free(d);
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
		return -1;
	}
	d->id = xstrdup(queue_writer_id(d->qw));
	buf_init(&d->out, BUF_NOMAX);
	buf_init(&d->hdr, HEADER_SCAN_MAX);
	d->in_headers = 1;
	d->scan_bol = 1;
	free(s->queue_id);
	s->queue_id = xstrdup(d->id);
	if (s->sasl_username != NULL)
		msg_info("%s: client=%s, sasl_method=%s, sasl_username=%s",
		    d->id, s->client, s->sasl_method, s->sasl_username);
	else
		msg_info("%s: client=%s", d->id, s->client);

	queue_set_sender(d->qw, s->sender);
	queue_set_attr(d->qw, "client_name", s->client_name);
	queue_set_attr(d->qw, "client_addr", s->client_addr);
	if (*s->client_port != '\0')
		queue_set_attr(d->qw, "client_port", s->client_port);
	if (s->helo != NULL)
		queue_set_attr(d->qw, "helo_name", s->helo);
	queue_set_attr(d->qw, "protocol", s->esmtp ? "ESMTP" : "SMTP");
	if (s->sasl_username != NULL) {
		queue_set_attr(d->qw, "sasl_method", s->sasl_method);
		queue_set_attr(d->qw, "sasl_username", s->sasl_username);
	}
	if (s->body != NULL)
		queue_set_attr(d->qw, "body", s->body);
	if (s->envid != NULL)
		queue_set_attr(d->qw, "envid", s->envid);
	if (s->ret != NULL)
		queue_set_attr(d->qw, "ret", s->ret);
	if (s->smtputf8)
		queue_set_attr(d->qw, "smtputf8", "yes");
	for (size_t i = 0; i < s->nrcpts; i++)
		queue_add_rcpt(d->qw, s->rcpts[i].addr, s->rcpts[i].orcpt,
		    s->rcpts[i].notify);
	data_received(s, d);
	s->data = d;
	return 0;
}

static void
data_free(struct smtpd_data *d)
{
	buf_free(&d->out);
	buf_free(&d->hdr);
	free(d->message_id);
	free(d->id);
	free(d);
}

void
smtpd_data_abort(struct smtpd_session *s)
{
	struct smtpd_data *d = s->data;

	if (d == NULL)
		return;
	s->data = NULL;
	if (d->qw != NULL)
		queue_abort(d->qw);
	data_free(d);
}

/* The end of the message: commit and say 250, or say why not. */
static void
data_finish(struct smtpd_session *s)
{
	struct smtpd_data *d = s->data;
	char *err = NULL, *log, *id;

	s->where = "END-OF-MESSAGE";
	/* The request's deadline was for reading it: the reply, above all
	 * the 250 after a slow fsync, must not be lost to it. */
	stream_set_deadline(s->out, 0);
	if (d->in_headers)
		data_header_done(d);
	if (d->too_big) {
		log = smtpd_log_envelope(s, s->nrcpts == 1 ?
		    s->rcpts[0].addr : NULL);
		msg_info("%s: reject: END-OF-MESSAGE from %s: 552 5.3.4 "
		    "Error: message file too big; %s", d->id, s->client, log);
		free(log);
		smtpd_reset(s);
		smtpd_reply(s, "552 5.3.4 Error: message file too big");
		return;
	}
	data_flush(d);
	if (d->failed) {
		smtpd_reset(s);
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
		return;
	}
	/* queue_commit() frees the writer whatever happens. */
	if (queue_commit(d->qw, &err) < 0) {
		msg_warn("%s: cannot commit queue file: %s", d->id,
		    err != NULL ? err : "unknown");
		free(err);
		s->data = NULL;
		data_free(d);
		smtpd_reset(s);
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
		return;
	}
	if (d->message_id != NULL)
		msg_info("%s: message-id=%s", d->id, d->message_id);
	id = xstrdup(d->id);
	s->data = NULL;
	data_free(d);
	smtpd_reset(s);
	/* A client that delivers mail is forgiven its earlier mistakes. */
	s->error_count = 0;
	s->junk_count = 0;
	smtpd_reply(s, "250 2.0.0 Ok: queued as %s", id);
	(void)smtpd_flush(s);
	/* If qmgr is down, its scan of incoming/ finds the file later. */
	(void)qmgr_notify_new(smtpd_conf.queue_dir, id);
	free(id);
}

/* ---- deadlines (smtpd_per_request_deadline) ---- */

/* The deadline of a DATA or BDAT request: smtpd_timeout from now, or 0
 * (none) when smtpd_timeout limits each wait only. */
static long long
data_deadline_start(void)
{
	return smtpd_conf.per_request_deadline ?
	    event_now_ms() + smtpd_conf.timeout_ms : 0;
}

/* Before a read: arm the stream with the time left; -1 when it is up. */
static int
data_deadline_arm(struct smtpd_session *s, long long deadline)
{
	long long left;

	if (deadline == 0) {
		stream_set_deadline(s->in, 0);
		return 0;
	}
	left = deadline - event_now_ms();
	if (left <= 0)
		return -1;
	stream_set_deadline(s->in, (int)left);
	return 0;
}

/*
 * After n bytes: the client earns n / smtpd_min_data_rate seconds more,
 * but never more than smtpd_timeout ahead (Postfix's rule), so a client
 * that trickles is cut off and one that sends steadily is not.
 */
static void
data_deadline_credit(long long *deadline, size_t n)
{
	long long cap;

	if (*deadline == 0)
		return;
	cap = event_now_ms() + smtpd_conf.timeout_ms;
	*deadline += (long long)(n * 1000 / (size_t)smtpd_conf.min_data_rate);
	if (*deadline > cap)
		*deadline = cap;
}

/* ---- DATA ---- */

/* Common to DATA and BDAT: is there a transaction to take content? */
static const char *
data_state_error(struct smtpd_session *s)
{
	if (s->sender == NULL)
		return "503 5.5.1 Error: need MAIL command";
	if (s->nrcpts == 0)
		return s->rcpt_tries > 0 ? "554 5.5.1 Error: no valid "
		    "recipients" : "503 5.5.1 Error: need RCPT command";
	return NULL;
}

/* smtpd_data_restrictions; 0, or -1 after the reject reply. */
static int
data_restrictions(struct smtpd_session *s)
{
	char *reply, *log;

	if ((reply = smtpd_check_data(s)) == NULL)
		return 0;
	log = smtpd_log_envelope(s, s->nrcpts == 1 ? s->rcpts[0].addr : NULL);
	msg_info("NOQUEUE: reject: %s from %s: %s; %s", s->where, s->client,
	    reply, log);
	smtpd_reply(s, "%s", reply);
	free(log);
	free(reply);
	return -1;
}

static void
data_bare_lf(struct smtpd_session *s)
{
	char *log = smtpd_log_envelope(s, s->nrcpts == 1 ?
	    s->rcpts[0].addr : NULL);

	msg_info("%s: reject: DATA from %s: 521 5.5.2 bare <LF> received; %s",
	    s->data->id, s->client, log);
	free(log);
	smtpd_reset(s);
	smtpd_reply(s, "521 5.5.2 %s Error: bare <LF> received",
	    smtpd_conf.myhostname);
	smtpd_hangup(s);
}

void
smtpd_data_cmd(struct smtpd_session *s, const char *args)
{
	struct smtpd_data *d;
	struct buf line;
	const char *err, *p;
	size_t len, got;
	long long deadline;
	int r, crlf, lf, prev_crlf = 1, bol = 1, pending_cr = 0;

	if (*args != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (s->data != NULL) {
		smtpd_reply(s, "503 5.5.1 Error: DATA command after BDAT");
		return;
	}
	if ((err = data_state_error(s)) != NULL) {
		smtpd_reply(s, "%s", err);
		return;
	}
	if (data_restrictions(s) < 0 || data_open(s) < 0)
		return;
	d = s->data;
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	if (smtpd_flush(s) < 0) {
		smtpd_reset(s);
		return;
	}
	deadline = data_deadline_start();
	buf_init(&line, BUF_NOMAX);
	for (;;) {
		if (data_deadline_arm(s, deadline) < 0)
			r = STREAM_TIMEOUT;
		else
			r = stream_read_line(s->in, &line,
			    smtpd_conf.content_line_limit);
		if (r < 0 && r != STREAM_TOOLONG) {
			smtpd_read_error(s, r, d->size);
			smtpd_reset(s);
			break;
		}
		got = line.len;
		data_deadline_credit(&deadline, got);
		p = line.data;
		len = got;
		lf = r != STREAM_TOOLONG && len > 0 && p[len - 1] == '\n';
		crlf = 0;
		if (lf) {
			len--;
			if (len > 0 && p[len - 1] == '\r') {
				len--;
				crlf = 1;
			} else if (len == 0 && pending_cr) {
				/* The CR ended the previous piece. */
				pending_cr = 0;
				crlf = 1;
			}
		}
		if (pending_cr) {
			data_put(d, "\r", 1);
			pending_cr = 0;
		}
		/* The one and only end of the message. */
		if (bol && prev_crlf && crlf && len == 1 && p[0] == '.')
			break;
		if (lf && !crlf && smtpd_conf.bare_lf != BARE_LF_ALLOW &&
		    !s->bare_lf_excluded) {
			data_bare_lf(s);
			break;
		}
		/* A CR at the end of a piece may be half of a CR LF. */
		if (!lf && len > 0 && p[len - 1] == '\r') {
			len--;
			pending_cr = 1;
		}
		if (bol && len > 0 && p[0] == '.') {
			p++;
			len--;
		}
		data_put(d, p, len);
		if (lf)
			data_put(d, "\n", 1);
		bol = lf;
		prev_crlf = crlf;
		/* A final line without LF, then EOF: the next read says so. */
	}
	buf_free(&line);
	if (s->data != NULL && !s->done)
		data_finish(s);
}

/* ---- BDAT (RFC 3030) ---- */

/* Append a BDAT piece with CR LF turned into LF. */
static void
bdat_put(struct smtpd_data *d, const char *p, size_t n)
{
	size_t i, start = 0;

	if (n == 0)
		return;
	if (d->pending_cr) {
		d->pending_cr = 0;
		if (p[0] == '\n') {
			data_put(d, "\n", 1);
			start = 1;
		} else
			data_put(d, "\r", 1);
	}
	for (i = start; i < n; i++) {
		if (p[i] != '\r')
			continue;
		if (i + 1 == n) {
			data_put(d, p + start, i - start);
			d->pending_cr = 1;
			return;
		}
		if (p[i + 1] == '\n') {
			data_put(d, p + start, i - start);
			start = i + 1;	/* keep the LF */
			i++;
		}
	}
	data_put(d, p + start, n - start);
}

void
smtpd_bdat_cmd(struct smtpd_session *s, const char *args)
{
	struct smtpd_data *d;
	char *copy, *last;
	const char *err = NULL;
	unsigned long count;
	size_t left, take, done = 0;
	struct buf piece;
	long long deadline;
	int r, is_last = 0;

	copy = xstrdup(args);
	if ((last = strchr(copy, ' ')) != NULL) {
		*last++ = '\0';
		while (*last == ' ')
			last++;
		is_last = strcasecmp(last, "LAST") == 0;
	}
	if (parse_ulong(copy, 0, (unsigned long)-1 / 2, &count) < 0 ||
	    (last != NULL && !is_last)) {
		free(copy);
		/* Without a count nothing tells data from commands: hang up
		 * rather than read message text as commands. */
		smtpd_reply(s, "501 5.5.4 Syntax: BDAT count [LAST]");
		smtpd_reset(s);
		smtpd_hangup(s);
		return;
	}
	free(copy);
	if ((err = data_state_error(s)) == NULL && s->data == NULL &&
	    (data_restrictions(s) < 0 || data_open(s) < 0))
		err = "";	/* replied already */
	d = err == NULL ? s->data : NULL;
	/* The chunk is read even when it is refused: it is not commands. */
	buf_init(&piece, BDAT_PIECE);
	deadline = data_deadline_start();
	for (left = count; left > 0; left -= take) {
		take = left < BDAT_PIECE ? left : BDAT_PIECE;
		buf_reset(&piece);
		if (data_deadline_arm(s, deadline) < 0)
			r = STREAM_TIMEOUT;
		else
			r = stream_read_exact(s->in, &piece, take);
		if (r < 0) {
			buf_free(&piece);
			smtpd_read_error(s, r, done);
			smtpd_reset(s);
			return;
		}
		done += take;
		data_deadline_credit(&deadline, take);
		if (d != NULL)
			bdat_put(d, piece.data, take);
	}
	buf_free(&piece);
	if (err != NULL) {
		if (*err != '\0')
			smtpd_reply(s, "%s", err);
		return;
	}
	if (d->too_big) {
		data_finish(s);		/* 552, and the transaction is gone */
		return;
	}
	if (is_last) {
		if (d->pending_cr) {
			d->pending_cr = 0;
			data_put(d, "\r", 1);
		}
		data_finish(s);
		return;
	}
	smtpd_reply(s, "250 2.0.0 Ok: %lu bytes", count);
}
