/*
 * table_regexp - "regexp:/path" tables: POSIX extended regular
 * expressions tried in file order against the key as given, the first
 * match giving the result, in Postfix's regexp_table(5) syntax:
 *
 *	/pattern/flags result		result when the key matches
 *	!/pattern/flags result		result when it does not
 *	if /pattern/flags		the lines up to the matching endif
 *	...				are tried only when the key matches
 *	endif				(if !/pattern/ too; ifs nest)
 *
 * Any character that is not a letter, digit, white space or backslash
 * may delimit the pattern; a backslash before it puts it in the
 * pattern. Flags toggle: i case sensitivity (insensitive by default),
 * x extended syntax (on by default), m newline-sensitive matching (off
 * by default). In a result $1..$9 or ${1}..${9} are the groups the
 * pattern captured (empty when a group took no part) and $$ is "$".
 *
 * Failure: any bad line (a pattern that does not compile, an unknown
 * flag, a missing result, a $n past the pattern's groups, an if without
 * endif) fails the whole table with "path:line: reason", and every
 * lookup then reports TABLE_ERROR: half a table of patterns could give
 * wrong answers.
 */
#include "autoconf.h"

#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "table.h"

#define RX_GROUPS	10	/* $0 (unused) to $9 */

enum rx_kind {
	RX_MATCH,		/* pattern and result */
	RX_IF,
	RX_ENDIF,
};

struct rx_rule {
	enum rx_kind kind;
	regex_t	 re;		/* RX_MATCH, RX_IF */
	int	 negate;
	char	*result;	/* RX_MATCH */
	size_t	 endif;		/* RX_IF: index of its endif */
};

struct rx_table {
	const char *path;
	struct rx_rule *rules;
	size_t	 n, cap;
	size_t	*open_ifs;	/* indexes of ifs not yet closed */
	int	*if_lines;
	size_t	 nifs;
};

static int
is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
	    c == '\f' || c == '\v';
}

static int
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/*
 * Parse "[!]/pattern/flags" at *pp into r->re and r->negate, moving *pp
 * past it; 0, or -1 with *err.
 */
static int
rx_pattern(struct rx_table *rt, int lineno, const char **pp,
    struct rx_rule *r, char **err)
{
	const char *p = *pp;
	struct buf pat;
	int delim, cflags = REG_EXTENDED | REG_ICASE, rc;

	if (*p == '!') {
		r->negate = 1;
		for (p++; is_blank((unsigned char)*p); p++)
			;
	}
	delim = (unsigned char)*p;
	if (delim == '\0' || is_blank(delim) || is_alnum(delim) ||
	    delim == '\\') {
		*err = xasprintf("%s:%d: expected /pattern/", rt->path,
		    lineno);
		return -1;
	}
	buf_init(&pat, BUF_NOMAX);
	for (p++; *p != delim; p++) {
		if (*p == '\0') {
			*err = xasprintf("%s:%d: missing closing \"%c\" after "
			    "the pattern", rt->path, lineno, delim);
			buf_free(&pat);
			return -1;
		}
		if (*p == '\\' && (unsigned char)p[1] == delim)
			p++;
		buf_putc(&pat, *p);
	}
	for (p++; *p != '\0' && !is_blank((unsigned char)*p); p++) {
		switch (*p) {
		case 'i':
			cflags ^= REG_ICASE;
			break;
		case 'x':
			cflags ^= REG_EXTENDED;
			break;
		case 'm':
			cflags ^= REG_NEWLINE;
			break;
		default:
			*err = xasprintf("%s:%d: unknown flag \"%c\" after "
			    "the pattern", rt->path, lineno, *p);
			buf_free(&pat);
			return -1;
		}
	}
	if ((rc = regcomp(&r->re, buf_cstr(&pat), cflags)) != 0) {
		char msg[256];

		regerror(rc, &r->re, msg, sizeof(msg));
		*err = xasprintf("%s:%d: bad pattern \"%s\": %s", rt->path,
		    lineno, buf_cstr(&pat), msg);
		buf_free(&pat);
		return -1;
	}
	buf_free(&pat);
	*pp = p;
	return 0;
}

/*
 * Read "$n" or "${n}" at p (p[0] is '$'); the group number (0 for
 * "$$"), and *len the characters used; -1 when malformed.
 */
static int
rx_ref(const char *p, size_t *len)
{
	*len = 1;
	if (p[1] == '$') {
		*len = 2;
		return 0;
	}
	if (p[1] >= '1' && p[1] <= '9') {
		*len = 2;
		return p[1] - '0';
	}
	if (p[1] == '{' && p[2] >= '1' && p[2] <= '9' && p[3] == '}') {
		*len = 4;
		return p[2] - '0';
	}
	return -1;
}

/* Check the $ references in a result against the pattern's groups. */
static int
rx_check_result(struct rx_table *rt, int lineno, const struct rx_rule *r,
    char **err)
{
	const char *p;
	size_t len;

	for (p = r->result; (p = strchr(p, '$')) != NULL; p += len) {
		int n;

		if ((n = rx_ref(p, &len)) < 0) {
			*err = xasprintf("%s:%d: \"$\" must be followed by 1-9, "
			    "{1}-{9} or \"$\" (write $$ for a dollar sign)",
			    rt->path, lineno);
			return -1;
		}
		if (n > 0 && r->negate) {
			*err = xasprintf("%s:%d: $%d in the result of a "
			    "negated pattern, which captures nothing",
			    rt->path, lineno, n);
			return -1;
		}
		if (n > 0 && (size_t)n > r->re.re_nsub) {
			*err = xasprintf("%s:%d: $%d but the pattern has %zu "
			    "group%s", rt->path, lineno, n, r->re.re_nsub,
			    r->re.re_nsub == 1 ? "" : "s");
			return -1;
		}
	}
	return 0;
}

static struct rx_rule *
rx_new_rule(struct rx_table *rt, enum rx_kind kind)
{
	struct rx_rule *r;

	if (rt->n == rt->cap) {
		rt->cap = rt->cap ? rt->cap * 2 : 16;
		rt->rules = xreallocarray(rt->rules, rt->cap,
		    sizeof(*rt->rules));
	}
	r = &rt->rules[rt->n];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	return r;
}

static int
rx_line(const char *line, int lineno, void *ctx, char **err)
{
	struct rx_table *rt = ctx;
	struct rx_rule *r;
	const char *p = line;

	if (strcmp(line, "endif") == 0) {
		if (rt->nifs == 0) {
			*err = xasprintf("%s:%d: endif without if", rt->path,
			    lineno);
			return -1;
		}
		rt->rules[rt->open_ifs[--rt->nifs]].endif = rt->n;
		rx_new_rule(rt, RX_ENDIF);
		rt->n++;
		return 0;
	}
	if (strncmp(line, "if", 2) == 0 && is_blank((unsigned char)line[2])) {
		for (p += 2; is_blank((unsigned char)*p); p++)
			;
		r = rx_new_rule(rt, RX_IF);
		if (rx_pattern(rt, lineno, &p, r, err) < 0)
			return -1;
		rt->n++;		/* kept: regfree at close */
		if (*p != '\0') {
			*err = xasprintf("%s:%d: text after the if pattern",
			    rt->path, lineno);
			return -1;
		}
		rt->open_ifs = xreallocarray(rt->open_ifs, rt->nifs + 1,
		    sizeof(*rt->open_ifs));
		rt->if_lines = xreallocarray(rt->if_lines, rt->nifs + 1,
		    sizeof(*rt->if_lines));
		rt->open_ifs[rt->nifs] = rt->n - 1;
		rt->if_lines[rt->nifs++] = lineno;
		return 0;
	}
	r = rx_new_rule(rt, RX_MATCH);
	if (rx_pattern(rt, lineno, &p, r, err) < 0)
		return -1;
	rt->n++;
	while (is_blank((unsigned char)*p))
		p++;
	if (*p == '\0') {
		*err = xasprintf("%s:%d: missing result after the pattern",
		    rt->path, lineno);
		return -1;
	}
	r->result = xstrdup(p);
	return rx_check_result(rt, lineno, r, err);
}

static void
rx_free(struct rx_table *rt)
{
	for (size_t i = 0; i < rt->n; i++) {
		if (rt->rules[i].kind != RX_ENDIF)
			regfree(&rt->rules[i].re);
		free(rt->rules[i].result);
	}
	free(rt->rules);
	free(rt->open_ifs);
	free(rt->if_lines);
	free(rt);
}

static int
regexp_open(struct table *t, const char *name, char **err)
{
	struct rx_table *rt;

	rt = xcalloc(1, sizeof(*rt));
	rt->path = name;
	if (table_text_lines(name, rx_line, rt, err) != 0) {
		rx_free(rt);
		return -1;
	}
	if (rt->nifs > 0) {
		*err = xasprintf("%s:%d: if without endif", name,
		    rt->if_lines[rt->nifs - 1]);
		rx_free(rt);
		return -1;
	}
	t->priv = rt;
	return 0;
}

/* The result with $n replaced by what group n matched in key. */
static char *
rx_expand(const char *result, const char *key, const regmatch_t *m)
{
	struct buf out;
	const char *p;
	size_t len;

	buf_init(&out, BUF_NOMAX);
	for (p = result; *p != '\0'; p += len) {
		int n;

		if (*p != '$') {
			buf_putc(&out, *p);
			len = 1;
			continue;
		}
		/* The references were checked when the table was read. */
		if ((n = rx_ref(p, &len)) <= 0)
			buf_putc(&out, '$');
		else if (m != NULL && m[n].rm_so >= 0)
			buf_append(&out, key + m[n].rm_so,
			    (size_t)(m[n].rm_eo - m[n].rm_so));
	}
	return buf_steal(&out);
}

/* 1 when r's pattern (after negation) accepts key, 0 when not, -1 error. */
static int
rx_match(const struct rx_rule *r, const char *key, regmatch_t *m, char **err,
    const char *path)
{
	int rc;

	rc = regexec(&r->re, key, r->negate ? 0 : RX_GROUPS,
	    r->negate ? NULL : m, 0);
	if (rc == 0)
		return !r->negate;
	if (rc == REG_NOMATCH)
		return r->negate;
	*err = xasprintf("%s: regexec failed (error %d)", path, rc);
	return -1;
}

static int
regexp_lookup(struct table *t, const char *key, char **value, char **err)
{
	struct rx_table *rt = t->priv;
	regmatch_t m[RX_GROUPS];
	const struct rx_rule *r;
	int hit;

	for (size_t i = 0; i < rt->n; i++) {
		r = &rt->rules[i];
		if (r->kind == RX_ENDIF)
			continue;
		if ((hit = rx_match(r, key, m, err, rt->path)) < 0)
			return TABLE_ERROR;
		if (r->kind == RX_IF) {
			if (!hit)
				i = r->endif;	/* past the block */
			continue;
		}
		if (hit) {
			*value = rx_expand(r->result, key,
			    r->negate ? NULL : m);
			return TABLE_FOUND;
		}
	}
	return TABLE_NOTFOUND;
}

static void
regexp_close(struct table *t)
{
	if (t->priv != NULL)
		rx_free(t->priv);
	t->priv = NULL;
}

const struct table_ops table_regexp_ops = {
	.type = "regexp",
	.open = regexp_open,
	.lookup = regexp_lookup,
	.close = regexp_close,
	.raw_keys = 1,		/* the patterns' flags decide about case */
};
