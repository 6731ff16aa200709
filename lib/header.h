/*
 * header - RFC 5322 header fields of a message as a local submission
 * needs them: where the header section ends, which field a line starts,
 * the addresses of an address list, and the date format of Date:.
 *
 * sendmail uses it for -t (recipients from To/Cc/Bcc, Bcc removed) and
 * pickup to see which of From:, Date: and Message-ID: a message lacks.
 * Nothing here allocates except the address lists it returns, and
 * nothing fails: text that does not parse as a header field simply is
 * not one (it starts the body), and an address list is read with the
 * tolerance of a mail reader (comments, display names, groups, routes
 * are dropped; what is left of each mailbox is its address).
 */
#ifndef TERN_HEADER_H
#define TERN_HEADER_H

#include <stddef.h>
#include <time.h>

/*
 * The header section at the start of a message (LF line ends) of len
 * bytes: returns the offset of the first byte after the last header
 * field, i.e. of the empty line that separates header and body, of the
 * first line that is not a field (a body without the empty line), or
 * len when the data ends inside the header section. *body is set to
 * where the body starts: after the empty line when there is one, else
 * the same offset. A field is "name:" with name printable ASCII without
 * ':' (white space before the colon is tolerated, RFC 822 style) and
 * may continue on lines that start with a space or a tab.
 */
size_t	header_section_end(const char *msg, size_t len, size_t *body);

/*
 * Walk the fields of a header section (the bytes before
 * header_section_end()): from *off, set *field and *flen to the next
 * field with its continuation lines and final LF, advance *off, return
 * 1; 0 at the end.
 */
int	header_next(const char *hdrs, size_t len, size_t *off,
	    const char **field, size_t *flen);

/* 1 when the field (as header_next gives it) is named name (any case). */
int	header_is(const char *field, size_t flen, const char *name);

/* The value of a field: after the colon, unfolded (CRLF/LF plus white
 * space become one space), trimmed; allocated. */
char	*header_value(const char *field, size_t flen);

/*
 * Add the address of each mailbox of an RFC 5322 address-list (a To:,
 * Cc: or Bcc: value) to *list (strv.h), in the canonical form of addr.h
 * (local part quoted only when it must be). Returns how many were added.
 * "Name <a@b>", "a@b (Name)", "group: a@b, c@d;", "<@route:a@b>" and
 * "undisclosed-recipients:;" all work; a mailbox with no address is
 * skipped.
 */
size_t	header_addresses(const char *value, char ***list);

/* "Mon, 23 Nov 2020 16:38:11 +0100 (CET)" in local time, as Date: and
 * Received: want it (RFC 5322 section 3.3). */
void	header_date(time_t, char *out, size_t outlen);

/* A display name as an RFC 5322 phrase: as it is when it is only atoms
 * and spaces, a quoted string otherwise; control bytes are dropped.
 * Allocated. */
char	*header_phrase(const char *name);

#endif
