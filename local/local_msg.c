/*
 * local_msg - the message as the local delivery agent sees it: the
 * Delivered-To: headers already in it (for loop detection), and copying
 * it, with the lines local prepends, into a mailbox, a file or a pipe.
 * Also the per-step result helpers every part of local uses.
 *
 * The content is read from the queue file in chunks, never whole, so a
 * large message costs no more memory than a small one. Copy errors are
 * returned with errno for the caller to turn into a deferral.
 */
#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "file.h"
#include "local.h"
#include "queue.h"
#include "strv.h"

#define COPY_CHUNK	65536
/* Headers beyond this are not searched for Delivered-To: (Postfix's
 * header_size_limit is of the same order). */
#define HEADER_SCAN_MAX	(256 * 1024)

void
local_result_init(struct local_result *r)
{
	r->status = DELIVER_SENT;
	r->dsn = NULL;
	r->reason = NULL;
}

void
local_result_free(struct local_result *r)
{
	free(r->dsn);
	free(r->reason);
	local_result_init(r);
}

static void
result_vset(struct local_result *r, enum deliver_status st, const char *dsn,
    const char *fmt, va_list ap)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	(void)buf_vprintf(&b, fmt, ap);
	free(r->dsn);
	free(r->reason);
	r->status = st;
	r->dsn = xstrdup(dsn);
	r->reason = buf_steal(&b);
	buf_free(&b);
}

void
local_result_set(struct local_result *r, enum deliver_status st,
    const char *dsn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	result_vset(r, st, dsn, fmt, ap);
	va_end(ap);
}

void
local_result_errno(struct local_result *r, int err, const char *fmt, ...)
{
	const char *dsn;
	struct buf b;
	va_list ap;

	switch (err) {
	case EDQUOT:
		dsn = "4.2.2";
		break;
	case ENOSPC:
	case EIO:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case EAGAIN:
		dsn = "4.3.0";
		break;
	default:
		dsn = "4.2.0";
		break;
	}
	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	local_result_set(r, DELIVER_DEFERRED, dsn, "%s: %s", buf_cstr(&b),
	    strerror(err));
	buf_free(&b);
}

void
local_log_to(struct deliver_request *req, size_t rcpt, const char *addr,
    enum deliver_status st, const char *dsn, const char *reason)
{
	char *to = strchr(addr, '@') != NULL ? xstrdup(addr) :
	    xasprintf("%s@%s", addr, config_str("myorigin"));

	deliver_log(req, rcpt, to, st, dsn, reason);
	free(to);
}

void
local_result_copy(struct local_result *to, const struct local_result *from)
{
	local_result_set(to, from->status, from->dsn ? from->dsn : "4.3.0",
	    "%s", from->reason ? from->reason : "");
}

/* Record one header if it is Delivered-To:, lowercased and trimmed. */
static void
scan_header(struct local_msg *m, const char *h, size_t len)
{
	static const char name[] = "delivered-to:";
	const size_t nlen = sizeof(name) - 1;
	char *v, *p, *e;

	if (len < nlen || strncasecmp(h, name, nlen) != 0)
		return;
	v = xstrndup(h + nlen, len - nlen);
	for (p = v; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
		else
			*p = (char)tolower((unsigned char)*p);
	for (p = v; *p == ' '; p++)
		;
	for (e = p + strlen(p); e > p && e[-1] == ' '; e--)
		;
	*e = '\0';
	/* "<addr>" is not the usual form but costs nothing to accept. */
	if (*p == '<' && e > p + 1 && e[-1] == '>') {
		p++;
		*--e = '\0';
	}
	if (*p != '\0')
		strv_add(&m->delivered_to, p);
	free(v);
}

void
local_msg_scan(struct local_msg *m)
{
	struct buf head;
	char chunk[8192];
	size_t start, i;
	off_t off = 0;
	ssize_t n;

	strv_free(m->delivered_to);
	m->delivered_to = strv_split("", ",");
	buf_init(&head, HEADER_SCAN_MAX);
	/* The header section ends at the first empty line. */
	while (head.len < HEADER_SCAN_MAX &&
	    (n = queue_read_content(m->q, off, chunk, sizeof(chunk))) > 0) {
		size_t room = HEADER_SCAN_MAX - head.len;

		(void)buf_append(&head, chunk, (size_t)n < room ? (size_t)n :
		    room);
		off += n;
		if (memmem(head.data, head.len, "\n\n", 2) != NULL ||
		    (head.len > 0 && head.data[0] == '\n'))
			break;
	}
	/* Each header: a line and the continuation lines after it. */
	for (start = 0, i = 0; i < head.len; i++) {
		if (head.data[i] != '\n')
			continue;
		if (i + 1 < head.len && (head.data[i + 1] == ' ' ||
		    head.data[i + 1] == '\t'))
			continue;
		if (i == start)		/* the empty line */
			break;
		scan_header(m, head.data + start, i - start);
		start = i + 1;
	}
	buf_free(&head);
}

int
local_msg_delivered_to(const struct local_msg *m, const char *addr)
{
	for (size_t i = 0; m->delivered_to && m->delivered_to[i]; i++)
		if (strcasecmp(m->delivered_to[i], addr) == 0)
			return 1;
	return 0;
}

char *
local_msg_prefix(const char *sender, const char *delivered_to)
{
	return xasprintf("Return-Path: <%s>\nDelivered-To: %s\n", sender,
	    delivered_to);
}

int
local_msg_copy(const struct local_msg *m, int fd, const char *prefix,
    int mbox)
{
	struct buf out;
	char *chunk;
	off_t off = 0;
	ssize_t n;
	struct mbox_quoter q;
	int last = '\n', saved;

	buf_init(&out, BUF_NOMAX);
	chunk = xmalloc(COPY_CHUNK);
	mbox_quote_init(&q);
	if (mbox)
		(void)mbox_quote(&q, &out, prefix, strlen(prefix));
	else
		(void)buf_puts(&out, prefix);
	while ((size_t)off < m->q->content_len) {
		size_t want = m->q->content_len - (size_t)off;

		if (want > COPY_CHUNK)
			want = COPY_CHUNK;
		if ((n = queue_read_content(m->q, off, chunk, want)) <= 0) {
			if (n == 0)
				errno = EIO;	/* the file is shorter */
			goto fail;
		}
		off += n;
		last = (unsigned char)chunk[n - 1];
		if (mbox)
			(void)mbox_quote(&q, &out, chunk, (size_t)n);
		else
			(void)buf_append(&out, chunk, (size_t)n);
		if (out.len >= COPY_CHUNK) {
			if (file_write_all(fd, out.data, out.len) < 0)
				goto fail;
			buf_reset(&out);
		}
	}
	/* An mbox message ends with its own line end and an empty line. */
	if (mbox) {
		(void)mbox_quote_end(&q, &out);
		if (last != '\n')
			(void)buf_putc(&out, '\n');
		(void)buf_putc(&out, '\n');
	}
	if (out.len > 0 && file_write_all(fd, out.data, out.len) < 0)
		goto fail;
	free(chunk);
	buf_free(&out);
	return 0;

fail:
	saved = errno;
	free(chunk);
	buf_free(&out);
	errno = saved;
	return -1;
}
