/*
 * qmgr_bounce - delivery status notifications (RFC 3464) for recipients
 * that failed for good, sent back to the message's sender.
 *
 * qmgr_message.c calls qmgr_bounce_write() when a message has no
 * recipient left to try and some failed (bounced, or expired in the
 * queue). The report is queued like any other message: from the null
 * sender, so that a report that cannot be delivered never causes
 * another, to the original sender, through queue_create() and
 * queue_commit(); qmgr then finds it in incoming/ and delivers it. Only
 * after the commit returns 0 does the caller mark the recipients done,
 * so a crash repeats a report rather than losing it.
 *
 * The report is a multipart/report; report-type=delivery-status:
 *	1. text/plain: what happened, for a person;
 *	2. message/delivery-status: Reporting-MTA, X-Tern-Queue-ID,
 *	   Arrival-Date, then per recipient Final-Recipient,
 *	   Original-Recipient (with ORCPT), Action: failed, Status,
 *	   Diagnostic-Code, Last-Attempt-Date;
 *	3. the original message (message/rfc822), or only its headers
 *	   (text/rfc822-headers) when the sender asked RET=HDRS, cut at a
 *	   line end to at most bounce_size_limit bytes.
 * A delay warning (qmgr_delay_write, once per message when
 * delay_warning_time has passed) has the same shape with Action:
 * delayed, a 4.x.y Status, Will-Retry-Until, and only the original's
 * header in part 3.
 * qmgr_dsn_render() builds it from plain data and is unit-tested; it
 * cannot fail. qmgr_bounce_write() fails with -1 and *err when the queue
 * cannot take the report (disk full...): the caller keeps the
 * recipients marked failed and tries again later.
 */
#include "autoconf.h"

#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "qmgr.h"

/* Header lines are folded before this many columns. */
#define DSN_FOLD	78

void
qmgr_rfc5322_date(char *out, size_t outlen, time_t t)
{
	struct tm tm;

	localtime_r(&t, &tm);
	if (strftime(out, outlen, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0 &&
	    outlen > 0)
		out[0] = '\0';
}

int
qmgr_dsn_wanted(int notify)
{
	if (notify & NOTIFY_NEVER)
		return 0;
	return notify == 0 || (notify & NOTIFY_FAILURE) != 0;
}

/*
 * Append "name: value" folded at white space so that lines stay short;
 * control bytes in value (an agent's text) become spaces, so a reason
 * can never end the header block or inject a header.
 */
static void
put_field(struct buf *out, const char *name, const char *value)
{
	size_t col, wlen;
	const char *p, *w;

	buf_printf(out, "%s:", name);
	col = strlen(name) + 1;
	for (p = value; *p != '\0';) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		for (w = p, wlen = 0; p[wlen] != '\0' && p[wlen] != ' ' &&
		    p[wlen] != '\t'; wlen++)
			;
		if (col > 1 + strlen(name) && col + 1 + wlen > DSN_FOLD) {
			buf_puts(out, "\n   ");
			col = 3;
		}
		buf_putc(out, ' ');
		col++;
		for (; p < w + wlen; p++)
			buf_putc(out, iscntrl((unsigned char)*p) ? ' ' : *p);
		col += wlen;
	}
	buf_putc(out, '\n');
}

/* A reason as one line of text: control bytes become spaces. */
static void
put_text(struct buf *out, const char *text)
{
	for (; *text != '\0'; text++)
		buf_putc(out, iscntrl((unsigned char)*text) ? ' ' : *text);
}

static int
has_8bit(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)p[i] & 0x80)
			return 1;
	return 0;
}

/*
 * "smtp;" when the reason is a remote server's reply (it starts with a
 * three-digit reply code, as the smtp agent reports it), else "x-unix;"
 * as Postfix writes for local and internal failures.
 */
static const char *
diagnostic_type(const char *reason)
{
	if (isdigit((unsigned char)reason[0]) &&
	    isdigit((unsigned char)reason[1]) &&
	    isdigit((unsigned char)reason[2]) &&
	    (reason[3] == ' ' || reason[3] == '-' || reason[3] == '\0'))
		return "smtp";
	return "x-unix";
}

/* ORCPT is "addr-type;xtext": show the address decoded. */
static void
put_orcpt(struct buf *out, const char *orcpt)
{
	const char *semi = strchr(orcpt, ';');
	char *type, *addr, *value;

	if (semi == NULL) {
		put_field(out, "Original-Recipient", orcpt);
		return;
	}
	type = xstrndup(orcpt, (size_t)(semi - orcpt));
	addr = xtext_decode(semi + 1);
	value = xasprintf("%s; %s", type, addr ? addr : semi + 1);
	put_field(out, "Original-Recipient", value);
	free(value);
	free(addr);
	free(type);
}

/* How much of the original goes into part 3, and whether it is cut. */
static size_t
original_length(const struct qmgr_dsn_info *in, int *cut)
{
	size_t len = in->content_len;
	const char *p, *end;

	*cut = 0;
	if (in->ret_hdrs || in->delayed) {
		/* Up to and including the empty line after the headers. */
		if (len > 0 && in->content[0] == '\n')
			len = 0;
		for (p = in->content; (end = memchr(p, '\n',
		    len - (size_t)(p - in->content))) != NULL; p = end + 1)
			if (end + 1 < in->content + len && end[1] == '\n') {
				len = (size_t)(end + 1 - in->content);
				break;
			}
	}
	if (len > in->size_limit) {
		/* Cut after the last whole line that fits. */
		*cut = 1;
		p = in->content + in->size_limit;
		while (p > in->content && p[-1] != '\n')
			p--;
		len = (size_t)(p - in->content);
	}
	return len;
}

void
qmgr_dsn_render(struct buf *out, const struct qmgr_dsn_info *in,
    const struct qmgr_dsn_rcpt *r, size_t n)
{
	char date[64], arrival[64], until[64], *boundary, *v;
	size_t i, orig_len;
	int cut, eightbit, text8;

	qmgr_rfc5322_date(date, sizeof(date), in->now);
	qmgr_rfc5322_date(arrival, sizeof(arrival), in->arrival);
	orig_len = original_length(in, &cut);

	/* A boundary that occurs in the original would end it early. */
	boundary = xstrdup(in->boundary);
	while (memmem(in->content, orig_len, boundary,
	    strlen(boundary)) != NULL) {
		v = xasprintf("%s=_", boundary);
		free(boundary);
		boundary = v;
	}
	text8 = has_8bit(in->sender, strlen(in->sender));
	for (i = 0; i < n; i++)
		text8 |= has_8bit(r[i].addr, strlen(r[i].addr)) ||
		    has_8bit(r[i].reason, strlen(r[i].reason));
	eightbit = text8 || has_8bit(in->content, orig_len);

	buf_printf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\n",
	    in->myhostname);
	put_field(out, "To", in->sender);
	buf_printf(out, "Subject: %s\n", in->delayed ?
	    "Delayed Mail (still being retried)" :
	    "Undelivered Mail Returned to Sender");
	buf_printf(out, "Date: %s\n", date);
	buf_printf(out, "Message-ID: <%s>\n", in->message_id);
	buf_puts(out, "Auto-Submitted: auto-replied\n");
	buf_puts(out, "MIME-Version: 1.0\n");
	buf_printf(out, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\n\tboundary=\"%s\"\n", boundary);
	if (eightbit)
		buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
	buf_puts(out, "\nThis is a MIME-encapsulated delivery status "
	    "report.\n\n");

	/* Part 1: for the person who sent the message. */
	buf_printf(out, "--%s\n", boundary);
	buf_puts(out, "Content-Description: Notification\n");
	buf_printf(out, "Content-Type: text/plain; charset=%s\n",
	    text8 ? "utf-8" : "us-ascii");
	if (text8)
		buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
	buf_printf(out, "\nThis is the mail system at host %s.\n\n",
	    in->myhostname);
	if (in->delayed) {
		qmgr_rfc5322_date(until, sizeof(until), in->retry_until);
		buf_printf(out, "This is a warning only: you do not need to "
		    "send your message again.\n\nYour message has not "
		    "been delivered yet to the recipient%s listed\nbelow, "
		    "for the reason%s given there. Delivery will be tried "
		    "again until\n%s; you will be told if it fails for "
		    "good. The header of your\nmessage is attached.\n\n",
		    n == 1 ? "" : "s", n == 1 ? "" : "s", until);
	} else
		buf_printf(out, "Your message could not be delivered to the "
		    "recipient%s listed below,\nfor the reason%s given "
		    "there. %s is attached.\n\n", n == 1 ? "" : "s",
		    n == 1 ? "" : "s", in->ret_hdrs ?
		    "The header of your message" : cut ?
		    "The beginning of your message" : "Your message");
	buf_printf(out, "For help, write to postmaster@%s and include "
	    "this report.\n\n", in->myhostname);
	for (i = 0; i < n; i++) {
		buf_puts(out, "<");
		put_text(out, r[i].addr);
		buf_puts(out, ">: ");
		put_text(out, r[i].reason);
		buf_puts(out, "\n");
	}
	buf_puts(out, "\n");

	/* Part 2: for programs. */
	buf_printf(out, "--%s\n", boundary);
	buf_puts(out, "Content-Description: Delivery report\n");
	buf_puts(out, "Content-Type: message/delivery-status\n\n");
	buf_printf(out, "Reporting-MTA: dns; %s\n", in->myhostname);
	buf_printf(out, "X-Tern-Queue-ID: %s\n", in->queue_id);
	v = xasprintf("rfc822; %s", in->sender);
	put_field(out, "X-Tern-Sender", v);
	free(v);
	if (in->envid != NULL && in->envid[0] != '\0')
		put_field(out, "Original-Envelope-Id", in->envid);
	buf_printf(out, "Arrival-Date: %s\n", arrival);
	for (i = 0; i < n; i++) {
		buf_puts(out, "\n");
		v = xasprintf("rfc822; %s", r[i].addr);
		put_field(out, "Final-Recipient", v);
		free(v);
		if (r[i].orcpt != NULL && r[i].orcpt[0] != '\0')
			put_orcpt(out, r[i].orcpt);
		buf_printf(out, "Action: %s\n", in->delayed ? "delayed" :
		    "failed");
		put_field(out, "Status", r[i].dsn);
		v = xasprintf("%s; %s", diagnostic_type(r[i].reason),
		    r[i].reason);
		put_field(out, "Diagnostic-Code", v);
		free(v);
		buf_printf(out, "Last-Attempt-Date: %s\n", date);
		if (in->delayed)
			buf_printf(out, "Will-Retry-Until: %s\n", until);
	}
	buf_puts(out, "\n");

	/* Part 3: what was sent. */
	buf_printf(out, "--%s\n", boundary);
	buf_printf(out, "Content-Description: %s\n", in->delayed ?
	    "Delayed Message Headers" : in->ret_hdrs ?
	    "Undelivered Message Headers" : "Undelivered Message");
	buf_printf(out, "Content-Type: %s\n", in->ret_hdrs || in->delayed ?
	    "text/rfc822-headers" : "message/rfc822");
	if (has_8bit(in->content, orig_len))
		buf_puts(out, "Content-Transfer-Encoding: 8bit\n");
	buf_puts(out, "\n");
	buf_append(out, in->content, orig_len);
	if (orig_len > 0 && in->content[orig_len - 1] != '\n')
		buf_putc(out, '\n');
	buf_printf(out, "\n--%s--\n", boundary);
	free(boundary);
}

static int
dsn_write(const char *queue_dir, const struct queue_msg *qm,
    const struct qmgr_dsn_rcpt *r, size_t n, time_t retry_until,
    int delayed, char **new_id, char **err)
{
	struct qmgr_dsn_info in;
	struct queue_writer *w;
	struct buf report;
	const char *ret;
	char *content, *msgid, *boundary;
	size_t want;
	ssize_t got;

	memset(&in, 0, sizeof(in));
	in.size_limit = config_size("bounce_size_limit");
	/* One byte past the limit tells the renderer the original is cut. */
	want = qm->content_len;
	if (want > in.size_limit)
		want = in.size_limit + 1;
	content = xmalloc(want + 1);
	got = want > 0 ? queue_read_content(qm, 0, content, want) : 0;
	if (got < 0) {
		*err = xasprintf("read %s: %m", qm->id);
		free(content);
		return -1;
	}
	content[got] = '\0';

	if ((w = queue_create(queue_dir, QUEUE_INCOMING, err)) == NULL) {
		free(content);
		return -1;
	}
	in.queue_id = qm->id;
	in.sender = qm->sender;
	in.myhostname = config_str("myhostname");
	in.now = time(NULL);
	in.arrival = qm->arrival.tv_sec;
	msgid = xasprintf("%s.%lld@%s", queue_writer_id(w),
	    (long long)in.now, in.myhostname);
	boundary = xasprintf("%s.%lld/%s", queue_writer_id(w),
	    (long long)in.now, in.myhostname);
	in.message_id = msgid;
	in.boundary = boundary;
	in.envid = queue_msg_attr(qm, QMGR_ATTR_DSN_ENVID);
	ret = queue_msg_attr(qm, QMGR_ATTR_DSN_RET);
	in.ret_hdrs = ret != NULL && strcasecmp(ret, "HDRS") == 0;
	in.content = content;
	in.content_len = (size_t)got;
	in.delayed = delayed;
	in.retry_until = retry_until;

	buf_init(&report, BUF_NOMAX);
	qmgr_dsn_render(&report, &in, r, n);
	free(boundary);
	free(content);

	queue_set_sender(w, "");
	queue_set_attr(w, QMGR_ATTR_BOUNCE_OF, qm->id);
	queue_add_rcpt(w, qm->sender, NULL, 0);
	*new_id = xstrdup(queue_writer_id(w));
	if (queue_write(w, report.data, report.len, err) < 0) {
		queue_abort(w);
		buf_free(&report);
		free(*new_id);
		*new_id = NULL;
		free(msgid);
		return -1;
	}
	buf_free(&report);
	if (queue_commit(w, err) < 0) {
		free(*new_id);
		*new_id = NULL;
		free(msgid);
		return -1;
	}
	/* As cleanup does for every message in Postfix: log tools pair the
	 * notification's queue ID with its Message-ID. */
	msg_info("%s: message-id=<%s>", *new_id, msgid);
	free(msgid);
	return 0;
}

int
qmgr_bounce_write(const char *queue_dir, const struct queue_msg *qm,
    const struct qmgr_dsn_rcpt *r, size_t n, char **new_id, char **err)
{
	return dsn_write(queue_dir, qm, r, n, 0, 0, new_id, err);
}

int
qmgr_delay_write(const char *queue_dir, const struct queue_msg *qm,
    const struct qmgr_dsn_rcpt *r, size_t n, time_t retry_until,
    char **new_id, char **err)
{
	return dsn_write(queue_dir, qm, r, n, retry_until, 1, new_id, err);
}
