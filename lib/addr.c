/*
 * addr - mail address syntax. See addr.h.
 *
 * The grammar is RFC 5321 section 4.1.2 (Path, Mailbox, Dot-string,
 * Quoted-string, Domain, address literals) with RFC 6531's extension:
 * when UTF-8 is allowed, every byte >= 0x80 of a well-formed UTF-8
 * sequence counts as a letter. Parsing is strict on purpose: an address
 * that two programs could read differently (a stray quote, an '@' in an
 * unquoted local part, a control byte) is refused at the door instead of
 * being guessed at later by qmgr or a remote server.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "addr.h"
#include "buf.h"

#define ATEXT_SPECIALS	"!#$%&'*+-/=?^_`{|}~"

static int
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static int
is_atext(int c, int utf8_ok)
{
	if ((unsigned char)c >= 0x80)
		return utf8_ok;
	return is_alnum(c) || (c != '\0' && strchr(ATEXT_SPECIALS, c) != NULL);
}

int
addr_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, len, k;
	unsigned long cp;

	while (i < n) {
		unsigned char c = p[i];

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else
			return 0;	/* continuation, 0xc0/0xc1, > 0xf4 */
		if (n - i < len)
			return 0;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

int
addr_is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

char *
addr_lowercase(char *s)
{
	for (char *p = s; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return s;
}

int
addr_dot_string(const char *s, int utf8_ok)
{
	int atom_len = 0;

	if (!addr_utf8_valid(s, strlen(s)))
		return 0;
	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (atom_len == 0)
				return 0;
			atom_len = 0;
		} else if (is_atext(*s, utf8_ok))
			atom_len++;
		else
			return 0;
	}
	return atom_len > 0;
}

int
addr_domain_valid(const char *s, int utf8_ok)
{
	size_t total = strlen(s), label = 0;
	char prev = '.';

	if (total == 0 || total > ADDR_DOMAIN_MAX ||
	    !addr_utf8_valid(s, total))
		return 0;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '.') {
			/* No empty label, no label ending in '-'. */
			if (label == 0 || prev == '-')
				return 0;
			label = 0;
		} else if (c == '-') {
			if (label == 0)
				return 0;
			label++;
		} else if (is_alnum(c) || (c >= 0x80 && utf8_ok))
			label++;
		else
			return 0;
		if (label > ADDR_LABEL_MAX)
			return 0;
		prev = (char)c;
	}
	return label > 0 && prev != '-';
}

int
addr_literal_valid(const char *s)
{
	size_t n = strlen(s);
	char inner[INET6_ADDRSTRLEN + 8];
	struct in6_addr a6;
	struct in_addr a4;

	if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n - 2 >= sizeof(inner))
		return 0;
	memcpy(inner, s + 1, n - 2);
	inner[n - 2] = '\0';
	if (strncasecmp(inner, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, inner + 5, &a6) == 1;
	return inet_pton(AF_INET, inner, &a4) == 1;
}

/* Scan a domain or address literal at p up to one of stops; 0 or -1. */
static int
scan_domain(const char **pp, const char *stops, int utf8_ok, char **out)
{
	const char *p = *pp, *start = p;
	char *d;
	int ok;

	if (*p == '[') {
		while (*p != '\0' && *p != ']')
			p++;
		if (*p != ']')
			return -1;
		p++;
	} else
		while (*p != '\0' && strchr(stops, *p) == NULL)
			p++;
	d = xstrndup(start, (size_t)(p - start));
	ok = *d == '[' ? addr_literal_valid(d) : addr_domain_valid(d, utf8_ok);
	if (!ok || *p == '\0' || strchr(stops, *p) == NULL) {
		free(d);
		return -1;
	}
	*pp = p;
	if (out != NULL)
		*out = d;
	else
		free(d);
	return 0;
}

/* Quoted-string at p (which points at the opening quote) into local. */
static int
scan_quoted(const char **pp, struct buf *local, int utf8_ok)
{
	const char *p = *pp + 1;

	for (;;) {
		unsigned char c = (unsigned char)*p;

		if (c == '"')
			break;
		if (c == '\\') {
			c = (unsigned char)p[1];
			if (c < 32 || c > 126)
				return -1;
			p++;
		} else if (c < 32 || c == 127 || (c >= 0x80 && !utf8_ok))
			return -1;
		buf_putc(local, c);
		p++;
	}
	*pp = p + 1;
	return 0;
}

int
addr_parse_path(const char *s, int flags, char **addr, const char **end,
    const char **why)
{
	int utf8_ok = (flags & ADDR_UTF8_OK) != 0, quoted = 0;
	const char *p = s, *close;
	char *domain = NULL;
	struct buf local;

	*addr = NULL;
	if (*p != '<') {
		*why = "address not in <>";
		return -1;
	}
	/* Look no further than the closing '>' that is not quoted. */
	for (close = p + 1; *close != '\0' && *close != '>'; close++) {
		if (*close == '"') {
			for (close++; *close != '\0' && *close != '"'; close++)
				if (*close == '\\' && close[1] != '\0')
					close++;
			if (*close == '\0')
				break;
		}
	}
	if (*close != '>') {
		*why = "missing >";
		return -1;
	}
	if (!addr_utf8_valid(p, (size_t)(close - p))) {
		*why = "malformed UTF-8";
		return -1;
	}
	p++;
	if (*p == '>') {
		if (!(flags & ADDR_NULL_OK)) {
			*why = "null address";
			return -1;
		}
		*addr = xstrdup("");
		*end = p + 1;
		return 0;
	}
	/* A-d-l ":" -- a source route, checked and then forgotten. */
	if (*p == '@') {
		for (;;) {
			p++;
			if (scan_domain(&p, ",:", utf8_ok, NULL) < 0) {
				*why = "bad source route";
				return -1;
			}
			if (*p++ == ':')
				break;
			if (*p != '@') {
				*why = "bad source route";
				return -1;
			}
		}
	}
	buf_init(&local, BUF_NOMAX);
	if (*p == '"') {
		quoted = 1;
		if (scan_quoted(&p, &local, utf8_ok) < 0) {
			*why = "bad quoted local part";
			goto fail;
		}
	} else {
		const char *start = p;

		while (*p != '@' && *p != '>')
			p++;
		buf_append(&local, start, (size_t)(p - start));
		if (!addr_dot_string(buf_cstr(&local), utf8_ok)) {
			*why = "bad local part";
			goto fail;
		}
	}
	if (*p == '>') {
		if ((flags & ADDR_POSTMASTER_OK) && !quoted &&
		    strcasecmp(buf_cstr(&local), "postmaster") == 0) {
			*addr = buf_steal(&local);
			*end = p + 1;
			return 0;
		}
		*why = "missing domain";
		goto fail;
	}
	if (*p != '@') {
		*why = "bad local part";
		goto fail;
	}
	p++;
	if (scan_domain(&p, ">", utf8_ok, &domain) < 0) {
		*why = "bad domain";
		goto fail;
	}
	if (!utf8_ok && !addr_is_ascii(buf_cstr(&local))) {
		*why = "non-ASCII local part";
		goto fail;
	}
	*addr = addr_join(buf_cstr(&local), domain);
	*end = p + 1;
	free(domain);
	buf_free(&local);
	return 0;
fail:
	free(domain);
	buf_free(&local);
	return -1;
}

char *
addr_quote_local(const char *local)
{
	struct buf b;

	if (addr_dot_string(local, 1))
		return xstrdup(local);
	buf_init(&b, BUF_NOMAX);
	buf_putc(&b, '"');
	for (; *local != '\0'; local++) {
		if (*local == '"' || *local == '\\')
			buf_putc(&b, '\\');
		buf_putc(&b, *local);
	}
	buf_putc(&b, '"');
	return buf_steal(&b);
}

char *
addr_join(const char *local, const char *domain)
{
	char *q = addr_quote_local(local), *a;

	if (domain == NULL || *domain == '\0')
		return q;
	a = xasprintf("%s@%s", q, domain);
	free(q);
	return a;
}

void
addr_split(const char *addr, char **local, char **domain)
{
	const char *p = addr, *at = NULL;
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	if (*p == '"') {
		for (p++; *p != '\0' && *p != '"'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			buf_putc(&b, *p);
		}
		if (*p == '"')
			p++;
		if (*p == '@')
			at = p;
	} else {
		at = strrchr(addr, '@');
		buf_append(&b, addr, at != NULL ? (size_t)(at - addr) :
		    strlen(addr));
	}
	*local = buf_steal(&b);
	*domain = xstrdup(at != NULL ? at + 1 : "");
}
