/*
 * addr - mail address syntax: RFC 5321 paths, local parts, domains.
 *
 * smtpd parses MAIL FROM and RCPT TO paths with addr_parse_path(); the
 * other programs (sendmail, local, the smtp client) use the smaller
 * helpers to split, quote and compare addresses the same way, so that
 * an address means one thing everywhere.
 *
 * The canonical "external" form of an address, which Tern stores in
 * queue files and writes in logs, is localpart@domain with the local
 * part unquoted when it is a valid dot-string and quoted (with the
 * fewest backslashes) otherwise. Source routes (<@a,@b:user@c>) are
 * dropped, as RFC 5321 section 4.1.1.3 tells receivers to do.
 *
 * Nothing here allocates except where a result is returned as char *;
 * nothing is fatal. Parse failures return -1 and a short reason for
 * the log in *why (static text).
 */
#ifndef TERN_ADDR_H
#define TERN_ADDR_H

#include <stddef.h>

#define ADDR_NULL_OK		0x1	/* "<>" (a reverse-path) */
#define ADDR_POSTMASTER_OK	0x2	/* "<Postmaster>" without a domain */
#define ADDR_UTF8_OK		0x4	/* UTF-8 in local part and domain */

/* Longest domain name, and longest label (RFC 1035). */
#define ADDR_DOMAIN_MAX		255
#define ADDR_LABEL_MAX		63

/*
 * Parse a Path "<...>" at the start of s. On success returns 0, *addr
 * is the canonical form ("" for the null path, "Postmaster" as the
 * client wrote it) and *end points just after the '>'.
 */
int	addr_parse_path(const char *s, int flags, char **addr,
	    const char **end, const char **why);

/*
 * Split a canonical address at its last '@' outside quotes. *local is
 * the local part unquoted ("a b" for "\"a b\"@x"), *domain is what
 * follows '@' ("" when there is no '@'). Both allocated.
 */
void	addr_split(const char *addr, char **local, char **domain);
/* Quote a local part if it is not a valid dot-string (allocated). */
char	*addr_quote_local(const char *local);
/* Join a local part (unquoted) and a domain into the canonical form. */
char	*addr_join(const char *local, const char *domain);

/* 1 when s is a valid RFC 5321 Dot-string. */
int	addr_dot_string(const char *s, int utf8_ok);
/* 1 when s is a valid domain name (letters, digits, hyphens; labels of
 * at most 63 bytes, at most 255 in all; no trailing dot). */
int	addr_domain_valid(const char *s, int utf8_ok);
/* 1 when s is an address literal: [1.2.3.4] or [IPv6:...]. */
int	addr_literal_valid(const char *s);
/* 1 when the n bytes at s are well-formed UTF-8 (no overlongs, no
 * surrogates, nothing past U+10FFFF). */
int	addr_utf8_valid(const char *s, size_t n);
/* 1 when s holds only 7-bit bytes. */
int	addr_is_ascii(const char *s);
/* Lower-case ASCII letters in place; returns s. */
char	*addr_lowercase(char *s);

#endif
