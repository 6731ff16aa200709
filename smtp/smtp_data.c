/*
 * smtp_data - message content as it goes after DATA (RFC 5321 4.5.2):
 * lines end in CRLF, and a line starting with "." gets a second one so
 * the receiver cannot mistake it for the end of the message.
 *
 * The queue file holds the content with LF line ends. smtp_proto.c
 * reads it in chunks and passes each through smtp_dot_encode(), which
 * keeps its place across chunks (a chunk may end between CR and LF or
 * just before a "."), so the message is streamed, never held whole.
 * Pure and unable to fail except by the output buffer's limit (-1).
 */
#include "autoconf.h"

#include <string.h>

#include "buf.h"
#include "smtp.h"

void
smtp_dot_init(struct smtp_dot *d)
{
	d->bol = 1;
	d->cr = 0;
}

int
smtp_dot_encode(struct smtp_dot *d, const char *p, size_t n, struct buf *out)
{
	size_t i, start = 0;

	for (i = 0; i < n; i++) {
		if (d->bol && p[i] == '.') {
			/* Copy what came before, then the extra dot. */
			if (buf_append(out, p + start, i - start) < 0 ||
			    buf_putc(out, '.') < 0)
				return -1;
			start = i;
		}
		if (p[i] == '\n') {
			if (buf_append(out, p + start, i - start) < 0)
				return -1;
			if (!d->cr && buf_putc(out, '\r') < 0)
				return -1;
			start = i;	/* the LF itself goes with the next run */
			d->bol = 1;
		} else
			d->bol = 0;
		d->cr = p[i] == '\r';
	}
	return buf_append(out, p + start, n - start);
}

int
smtp_dot_end(struct smtp_dot *d, struct buf *out)
{
	if (!d->bol && buf_puts(out, d->cr ? "\n" : "\r\n") < 0)
		return -1;
	smtp_dot_init(d);
	return buf_puts(out, ".\r\n");
}
