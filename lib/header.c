/*
 * header - RFC 5322 header fields for local submission. See header.h.
 *
 * Called by sendmail (-t) and pickup. The address-list reader is a
 * small tokenizer rather than a strict grammar: messages written by
 * scripts and old mail programs break the rules in small ways (bare
 * "a@b c@d" lists, spaces around '@', unbalanced comments), and a
 * submission program that refused them would lose mail that every mail
 * reader shows fine. What it never does is invent an address: text it
 * cannot place is dropped.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "addr.h"
#include "buf.h"
#include "header.h"
#include "strv.h"

#define ATEXT_SPECIALS	"!#$%&'*+-/=?^_`{|}~"

static int
field_name_char(unsigned char c)
{
	/* RFC 5322 ftext: printable US-ASCII except ':'. */
	return c >= 33 && c <= 126 && c != ':';
}

/* Length of "name:" (up to and including the colon) at line, or 0. */
static size_t
field_name_len(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && field_name_char((unsigned char)line[i]))
		i++;
	if (i == 0)
		return 0;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	return i < len && line[i] == ':' ? i + 1 : 0;
}

/* Offset just past the LF ending the line at off, or len. */
static size_t
line_end(const char *msg, size_t len, size_t off)
{
	const char *lf = memchr(msg + off, '\n', len - off);

	return lf != NULL ? (size_t)(lf - msg) + 1 : len;
}

size_t
header_section_end(const char *msg, size_t len, size_t *body)
{
	size_t off = 0, next;

	while (off < len) {
		next = line_end(msg, len, off);
		if (msg[off] == '\n' ||
		    (msg[off] == '\r' && off + 1 < len && msg[off + 1] == '\n')) {
			*body = next;
			return off;
		}
		if ((msg[off] == ' ' || msg[off] == '\t') && off > 0)
			;	/* continuation of the previous field */
		else if (field_name_len(msg + off, next - off) == 0) {
			*body = off;
			return off;
		}
		off = next;
	}
	*body = len;
	return len;
}

int
header_next(const char *hdrs, size_t len, size_t *off, const char **field,
    size_t *flen)
{
	size_t start = *off, end;

	if (start >= len)
		return 0;
	end = line_end(hdrs, len, start);
	while (end < len && (hdrs[end] == ' ' || hdrs[end] == '\t'))
		end = line_end(hdrs, len, end);
	*field = hdrs + start;
	*flen = end - start;
	*off = end;
	return 1;
}

int
header_is(const char *field, size_t flen, const char *name)
{
	size_t n = strlen(name), i;

	if (flen <= n || strncasecmp(field, name, n) != 0)
		return 0;
	for (i = n; i < flen && (field[i] == ' ' || field[i] == '\t'); i++)
		;
	return i < flen && field[i] == ':';
}

char *
header_value(const char *field, size_t flen)
{
	struct buf b;
	size_t i, n;
	char *v;

	n = field_name_len(field, flen);
	buf_init(&b, BUF_NOMAX);
	for (i = n; i < flen; i++)
		if (field[i] != '\r' && field[i] != '\n')
			(void)buf_putc(&b, field[i]);
	v = buf_steal(&b);
	/* Trim white space at both ends. */
	for (n = strlen(v); n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t');
	    n--)
		v[n - 1] = '\0';
	for (i = 0; v[i] == ' ' || v[i] == '\t'; i++)
		;
	memmove(v, v + i, strlen(v + i) + 1);
	return v;
}

/* ---- address lists ---- */

struct mailbox {
	struct buf text;	/* words outside <>, spaces collapsed */
	struct buf angle;	/* what was inside <> */
	int	 has_angle;
};

/* Skip a comment starting at s[*i] == '('; nested, with escapes. */
static void
skip_comment(const char *s, size_t *i)
{
	int depth = 0;

	for (; s[*i] != '\0'; (*i)++) {
		if (s[*i] == '\\' && s[*i + 1] != '\0')
			(*i)++;
		else if (s[*i] == '(')
			depth++;
		else if (s[*i] == ')' && --depth == 0) {
			(*i)++;
			return;
		}
	}
}

/* Copy a quoted string starting at s[*i] == '"' into b, quotes kept. */
static void
copy_quoted(const char *s, size_t *i, struct buf *b)
{
	(void)buf_putc(b, '"');
	for ((*i)++; s[*i] != '\0' && s[*i] != '"'; (*i)++) {
		if (s[*i] == '\\' && s[*i + 1] != '\0') {
			(void)buf_putc(b, '\\');
			(*i)++;
		}
		(void)buf_putc(b, s[*i]);
	}
	(void)buf_putc(b, '"');
	if (s[*i] == '"')
		(*i)++;
}

/* Remove white space next to '@' and '.', outside quotes (obs-local-part
 * and obs-domain allow CFWS there). */
static void
squeeze_addr_spec(char *a)
{
	char *w = a;
	int quoted = 0;

	for (char *r = a; *r != '\0'; r++) {
		if (*r == '"' && (r == a || r[-1] != '\\'))
			quoted = !quoted;
		if (!quoted && *r == ' ' && ((w > a && (w[-1] == '@' ||
		    w[-1] == '.')) || r[1] == '@' || r[1] == '.'))
			continue;
		*w++ = *r;
	}
	*w = '\0';
}

/* The last space-separated word holding '@' (or the last word): what a
 * bare "Joe joe@x" list means. */
static const char *
pick_word(const char *a)
{
	const char *best = NULL, *w = a;
	int quoted = 0;

	for (const char *p = a;; p++) {
		if (*p == '"' && (p == a || p[-1] != '\\'))
			quoted = !quoted;
		if ((*p == ' ' && !quoted) || *p == '\0') {
			if (memchr(w, '@', (size_t)(p - w)) != NULL ||
			    best == NULL)
				best = w;
			if (*p == '\0')
				break;
			w = p + 1;
		}
	}
	return best;
}

/* The first space outside a quoted string, or NULL. */
static char *
unquoted_space(char *a)
{
	int quoted = 0;

	for (char *p = a; *p != '\0'; p++) {
		if (*p == '"' && (p == a || p[-1] != '\\'))
			quoted = !quoted;
		else if (*p == ' ' && !quoted)
			return p;
	}
	return NULL;
}

static int
has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Add the mailbox's address to *list and clear the mailbox. */
static size_t
mailbox_emit(struct mailbox *mb, char ***list)
{
	char *raw, *local, *domain, *canon, *p, *end;
	const char *word;
	size_t n = 0;

	if (mb->has_angle)
		raw = xstrdup(buf_cstr(&mb->angle));
	else
		raw = xstrdup(buf_cstr(&mb->text));
	for (p = raw; *p == ' '; p++)
		;
	memmove(raw, p, strlen(p) + 1);
	for (end = raw + strlen(raw); end > raw && end[-1] == ' '; end--)
		end[-1] = '\0';
	squeeze_addr_spec(raw);
	if (mb->has_angle) {
		/* A source route "@a,@b:user@c" is dropped (RFC 5321
		 * section 4.1.1.3). */
		if (raw[0] == '@' && (p = strchr(raw, ':')) != NULL)
			memmove(raw, p + 1, strlen(p + 1) + 1);
	} else if (unquoted_space(raw) != NULL) {
		word = pick_word(raw);
		memmove(raw, word, strlen(word) + 1);
		if ((p = unquoted_space(raw)) != NULL)
			*p = '\0';
	}
	if (*raw != '\0' && !has_control(raw) && unquoted_space(raw) == NULL) {
		addr_split(raw, &local, &domain);
		if (*local != '\0') {
			canon = addr_join(local, domain);
			strv_add(list, canon);
			free(canon);
			n = 1;
		}
		free(local);
		free(domain);
	}
	free(raw);
	buf_reset(&mb->text);
	buf_reset(&mb->angle);
	mb->has_angle = 0;
	return n;
}

/* Append c to the words outside <>, collapsing white space. */
static void
text_put(struct buf *b, char c)
{
	if (c == ' ' || c == '\t') {
		if (b->len > 0 && b->data[b->len - 1] != ' ')
			(void)buf_putc(b, ' ');
		return;
	}
	(void)buf_putc(b, c);
}

size_t
header_addresses(const char *s, char ***list)
{
	struct mailbox mb;
	size_t i = 0, n = 0;

	if (*list == NULL)
		*list = xcalloc(1, sizeof(char *));
	buf_init(&mb.text, BUF_NOMAX);
	buf_init(&mb.angle, BUF_NOMAX);
	mb.has_angle = 0;
	while (s[i] != '\0') {
		switch (s[i]) {
		case '(':
			skip_comment(s, &i);
			text_put(&mb.text, ' ');
			continue;
		case '"':
			copy_quoted(s, &i, &mb.text);
			continue;
		case '<':
			buf_reset(&mb.angle);
			mb.has_angle = 1;
			for (i++; s[i] != '\0' && s[i] != '>';) {
				if (s[i] == '(')
					skip_comment(s, &i);
				else if (s[i] == '"')
					copy_quoted(s, &i, &mb.angle);
				else {
					if (s[i] != ' ' && s[i] != '\t')
						(void)buf_putc(&mb.angle, s[i]);
					i++;
				}
			}
			if (s[i] == '>')
				i++;
			continue;
		case ':':
			/* A group's display name: not an address. (In <>
			 * a route's ':' never gets here.) */
			buf_reset(&mb.text);
			mb.has_angle = 0;
			break;
		case ',':
		case ';':
			n += mailbox_emit(&mb, list);
			break;
		case '\r':
		case '\n':
			text_put(&mb.text, ' ');
			break;
		default:
			text_put(&mb.text, s[i]);
			break;
		}
		i++;
	}
	n += mailbox_emit(&mb, list);
	buf_free(&mb.text);
	buf_free(&mb.angle);
	return n;
}

/* ---- writing fields ---- */

void
header_date(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(out, outlen, "%a, %d %b %Y %H:%M:%S %z (%Z)", &tm) == 0)
		snprintf(out, outlen, "Thu, 01 Jan 1970 00:00:00 +0000");
}

static int
phrase_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c >= 0x80 || c == ' ' ||
	    strchr(ATEXT_SPECIALS, c) != NULL;
}

char *
header_phrase(const char *name)
{
	struct buf b;
	const unsigned char *p;
	int plain = 1;

	for (p = (const unsigned char *)name; *p != '\0'; p++)
		if (*p >= 0x20 && *p != 0x7f && !phrase_char(*p))
			plain = 0;
	buf_init(&b, BUF_NOMAX);
	if (!plain)
		(void)buf_putc(&b, '"');
	for (p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			continue;
		if (!plain && (*p == '"' || *p == '\\'))
			(void)buf_putc(&b, '\\');
		(void)buf_putc(&b, *p);
	}
	if (!plain)
		(void)buf_putc(&b, '"');
	return buf_steal(&b);
}
