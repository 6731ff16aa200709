/*
 * smtp_reply - server replies as the smtp client reads them (RFC 5321
 * 4.2): one or more lines "NNN-text" ending with "NNN text" or "NNN".
 *
 * smtp_proto.c reads every reply through smtp_reply_read(); the line
 * parser is pure so the unit tests pin down what counts as a reply. The
 * joined text ("550 5.1.1 first line second line") is what goes into a
 * recipient's reason, so it is bounded and free of control bytes; the
 * separate lines are kept for EHLO's keyword list. A reply that is not
 * one is SMTP_REPLY_BAD, which the caller treats as a lost session.
 * Memory stays bounded whatever the server sends: long lines are cut,
 * lines past SMTP_REPLY_MAX_LINES are read and dropped, and the whole
 * reply must arrive within the caller's time limit.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "smtp.h"
#include "stream.h"
#include "strv.h"

void
smtp_reply_init(struct smtp_reply *r)
{
	memset(r, 0, sizeof(*r));
	buf_init(&r->text, SMTP_REPLY_MAX_TEXT);
}

void
smtp_reply_reset(struct smtp_reply *r)
{
	strv_free(r->lines);
	r->lines = NULL;
	r->nlines = 0;
	r->code = 0;
	r->dsn[0] = '\0';
	r->complete = 0;
	buf_reset(&r->text);
}

void
smtp_reply_free(struct smtp_reply *r)
{
	strv_free(r->lines);
	buf_free(&r->text);
	memset(r, 0, sizeof(*r));
}

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Length of an RFC 3463 enhanced status code "c.sss.ddd" at s followed
 * by white space or the end, or 0. c is 2, 4 or 5; sss and ddd have 1
 * to 3 digits.
 */
static size_t
enhanced_len(const char *s, size_t len)
{
	size_t i = 0, n;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		for (n = 0; i < len && is_digit(s[i]) && n < 4; i++, n++)
			;
		if (n == 0 || n > 3)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ' && s[i] != '\t')
		return 0;
	return i;
}

/* Append text, control bytes replaced, within the buffer's limit. */
static void
append_clean(struct buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (buf_putc(b, c < 0x20 || c == 0x7f ? '?' : c) < 0)
			return;
	}
}

int
smtp_reply_add_line(struct smtp_reply *r, const char *line, size_t len)
{
	const char *text;
	size_t tlen, elen;
	int code, more;
	char *copy;

	if (len < 3 || !is_digit(line[0]) || !is_digit(line[1]) ||
	    !is_digit(line[2]) || line[0] < '1' || line[0] > '5')
		return SMTP_REPLY_BAD;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return SMTP_REPLY_BAD;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	more = len > 3 && line[3] == '-';
	text = len > 4 ? line + 4 : "";
	tlen = len > 4 ? len - 4 : 0;
	if (r->code == 0) {
		r->code = code;
		(void)buf_printf(&r->text, "%d", code);
		elen = enhanced_len(text, tlen);
		if (elen > 0) {
			memcpy(r->dsn, text, elen);
			r->dsn[elen] = '\0';
			/* The reply code's class wins over a wrong one. */
			r->dsn[0] = line[0];
		} else if (code >= 200) {
			r->dsn[0] = line[0] == '3' ? '2' : line[0];
			memcpy(r->dsn + 1, ".0.0", 5);
		}
	} else if (code != r->code)
		return SMTP_REPLY_BAD;
	else {
		/* Continuation text without the repeated status code. */
		elen = enhanced_len(text, tlen);
		if (elen > 0 && elen == strlen(r->dsn) &&
		    memcmp(text + 1, r->dsn + 1, elen - 1) == 0) {
			text += elen;
			tlen -= elen;
			while (tlen > 0 && (*text == ' ' || *text == '\t')) {
				text++;
				tlen--;
			}
		}
	}
	if (tlen > 0) {
		(void)buf_putc(&r->text, ' ');
		append_clean(&r->text, text, tlen);
	}
	if (r->nlines < SMTP_REPLY_MAX_LINES) {
		copy = xstrndup(len > 4 ? line + 4 : "", len > 4 ? len - 4 : 0);
		strv_add(&r->lines, copy);
		free(copy);
		r->nlines++;
	}
	if (!more)
		r->complete = 1;
	return more ? 1 : 0;
}

int
smtp_reply_read(struct stream *s, struct smtp_reply *r, size_t max_line,
    int timeout_ms)
{
	struct buf line;
	int n, rc;

	smtp_reply_reset(r);
	buf_init(&line, max_line + 2);
	stream_set_timeout(s, timeout_ms);
	/* The whole reply, not each read, must fit in the time limit:
	 * a server dribbling continuation lines is cut off too. */
	stream_set_deadline(s, timeout_ms);
	for (;;) {
		n = stream_read_line(s, &line, max_line);
		if (n == STREAM_TOOLONG) {
			/* Keep the start; the rest of the line is noise. */
			if ((rc = stream_skip_line(s)) < 0 &&
			    rc != STREAM_EOF) {
				n = rc;
				break;
			}
			n = (int)line.len;
		} else if (n < 0)
			break;
		while (line.len > 0 && (line.data[line.len - 1] == '\n' ||
		    line.data[line.len - 1] == '\r'))
			line.len--;
		line.data[line.len] = '\0';
		if ((rc = smtp_reply_add_line(r, line.data, line.len)) <= 0) {
			n = rc;
			break;
		}
	}
	stream_set_deadline(s, 0);
	buf_free(&line);
	return n < 0 ? n : 0;
}
