/*
 * table - lookup tables by "type:name": the registry of backends, key
 * folding, the address search order, and the reader for Postfix's text
 * table format that several backends and ternmap share. See table.h.
 *
 * A table whose open failed is kept, with the reason in open_err; each
 * lookup tries the open again and reports TABLE_ERROR while it still
 * fails, so a missing or broken file delays mail instead of bouncing it,
 * and a file fixed later is picked up without a restart. Only a spec
 * that can never work (no "type:", unknown type, bad inline text) makes
 * table_open itself fail.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "buf.h"
#include "table.h"

/* The longest logical line a table file may hold. */
#define TABLE_LINE_MAX	(1024 * 1024)

static const struct table_ops *const table_backends[] = {
	&table_lmdb_ops,
	&table_texthash_ops,
	&table_inline_ops,
	&table_static_ops,
	&table_regexp_ops,
	&table_cidr_ops,
	&table_unix_ops,
};

void
table_fold(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s += 'a' - 'A';
}

struct table *
table_open(const char *spec, char **err)
{
	const struct table_ops *ops = NULL;
	const char *colon;
	struct table *t;
	char *oerr = NULL;
	size_t n, i;

	/* Postfix's proxymap is a way to share tables; Tern's daemons open
	 * tables themselves, so "proxy:type:name" means "type:name". */
	if (strncasecmp(spec, "proxy:", 6) == 0)
		spec += 6;
	if ((colon = strchr(spec, ':')) == NULL || colon == spec) {
		*err = xasprintf("table \"%s\": expected type:name", spec);
		return NULL;
	}
	n = (size_t)(colon - spec);
	for (i = 0; i < sizeof(table_backends) / sizeof(table_backends[0]);
	    i++) {
		if (strlen(table_backends[i]->type) == n &&
		    strncasecmp(table_backends[i]->type, spec, n) == 0) {
			ops = table_backends[i];
			break;
		}
	}
	if (ops == NULL) {
		*err = xasprintf("table \"%s\": unsupported table type "
		    "\"%.*s\"", spec, (int)n, spec);
		return NULL;
	}
	if (colon[1] == '\0') {
		*err = xasprintf("table \"%s\": missing name after \"%s:\"",
		    spec, ops->type);
		return NULL;
	}

	t = xcalloc(1, sizeof(*t));
	t->ops = ops;
	t->spec = xstrdup(spec);
	t->name = xstrdup(colon + 1);
	if (ops->open(t, t->name, &oerr) < 0) {
		t->priv = NULL;
		if (ops->name_is_content) {
			*err = oerr;
			free(t->spec);
			free(t->name);
			free(t);
			return NULL;
		}
		t->open_err = oerr;
	}
	return t;
}

void
table_close(struct table *t)
{
	if (t == NULL)
		return;
	if (t->open_err == NULL)
		t->ops->close(t);
	free(t->open_err);
	free(t->spec);
	free(t->name);
	free(t);
}

int
table_lookup(struct table *t, const char *key, char **value, char **err)
{
	char *folded = NULL, *oerr = NULL, *dummy = NULL;
	int r;

	if (err == NULL)
		err = &dummy;
	*value = NULL;
	if (t->open_err != NULL) {
		t->priv = NULL;
		if (t->ops->open(t, t->name, &oerr) < 0) {
			t->priv = NULL;
			free(t->open_err);
			t->open_err = oerr;
			*err = xstrdup(oerr);
			free(dummy);
			return TABLE_ERROR;
		}
		free(t->open_err);
		t->open_err = NULL;
	}
	if (!t->ops->raw_keys) {
		folded = xstrdup(key);
		table_fold(folded);
		key = folded;
	}
	r = t->ops->lookup(t, key, value, err);
	free(folded);
	free(dummy);
	return r;
}

int
table_walk(struct table *t,
    int (*fn)(const char *key, const char *value, void *ctx),
    void *ctx, char **err)
{
	char *oerr = NULL;

	if (t->ops->walk == NULL) {
		*err = xasprintf("table %s cannot be listed: %s tables have "
		    "no list of keys", t->spec, t->ops->type);
		return -1;
	}
	/* As at lookup: a table that failed to open gets another try. */
	if (t->open_err != NULL) {
		t->priv = NULL;
		if (t->ops->open(t, t->name, &oerr) < 0) {
			t->priv = NULL;
			free(t->open_err);
			t->open_err = oerr;
			*err = xstrdup(oerr);
			return -1;
		}
		free(t->open_err);
		t->open_err = NULL;
	}
	return t->ops->walk(t, fn, ctx, err);
}

int
table_lookup_addr(struct table *t, const char *addr, int with_user,
    char **value, char **err)
{
	const char *at;
	int r;

	r = table_lookup(t, addr, value, err);
	if (r != TABLE_NOTFOUND || (at = strrchr(addr, '@')) == NULL ||
	    at == addr)
		return r;
	if (with_user) {
		char *user = xstrndup(addr, (size_t)(at - addr));
		r = table_lookup(t, user, value, err);
		free(user);
		if (r != TABLE_NOTFOUND)
			return r;
	}
	return table_lookup(t, at, value, err);
}

static int
is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

/* Trim white space (including a DOS CR) from the end of b. */
static void
buf_rtrim(struct buf *b)
{
	while (b->len > 0 && is_space((unsigned char)b->data[b->len - 1]))
		b->data[--b->len] = '\0';
}

/* table_text_lines over an open stream; path names it in messages. */
static int
text_lines_fp(FILE *fp, const char *path,
    int (*fn)(const char *line, int lineno, void *ctx, char **err),
    void *ctx, char **err)
{
	struct buf line, logical;
	const char *p;
	int c, lineno = 0, start = 0, r = 0, last = 0;

	buf_init(&line, TABLE_LINE_MAX);
	buf_init(&logical, TABLE_LINE_MAX);
	while (!last) {
		buf_reset(&line);
		while ((c = getc(fp)) != EOF && c != '\n') {
			if (c == '\0') {
				*err = xasprintf("%s:%d: NUL byte in line",
				    path, lineno + 1);
				r = -1;
				goto done;
			}
			if (buf_putc(&line, c) < 0) {
				*err = xasprintf("%s:%d: line longer than %d "
				    "bytes", path, lineno + 1, TABLE_LINE_MAX);
				r = -1;
				goto done;
			}
		}
		if (c == EOF) {
			if (ferror(fp)) {
				*err = xasprintf("cannot read %s: %s", path,
				    strerror(errno));
				r = -1;
				goto done;
			}
			last = 1;
			if (line.len == 0)
				break;
		}
		lineno++;
		buf_rtrim(&line);
		for (p = buf_cstr(&line); is_space((unsigned char)*p); p++)
			;
		if (*p == '\0' || *p == '#')
			continue;
		if (p != buf_cstr(&line)) {
			/* White space first: this continues the last line. */
			if (logical.len == 0) {
				*err = xasprintf("%s:%d: line starts with white "
				    "space but continues nothing", path,
				    lineno);
				r = -1;
				goto done;
			}
			if (buf_putc(&logical, ' ') < 0 ||
			    buf_puts(&logical, p) < 0) {
				*err = xasprintf("%s:%d: logical line longer "
				    "than %d bytes", path, start,
				    TABLE_LINE_MAX);
				r = -1;
				goto done;
			}
			continue;
		}
		if (logical.len > 0 &&
		    (r = fn(buf_cstr(&logical), start, ctx, err)) != 0)
			goto done;
		buf_reset(&logical);
		buf_puts(&logical, p);
		start = lineno;
	}
	if (logical.len > 0)
		r = fn(buf_cstr(&logical), start, ctx, err);
done:
	buf_free(&line);
	buf_free(&logical);
	return r;
}

int
table_text_lines(const char *path,
    int (*fn)(const char *line, int lineno, void *ctx, char **err),
    void *ctx, char **err)
{
	FILE *fp;
	int r;

	if ((fp = fopen(path, "re")) == NULL) {
		*err = xasprintf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	r = text_lines_fp(fp, path, fn, ctx, err);
	fclose(fp);
	return r;
}

struct text_walk {
	const char *path;
	int	 aliases_syntax;
	int	(*fn)(const char *key, const char *value, void *ctx);
	void	*ctx;
};

/*
 * An aliases(5) key: "name" up to the colon, or a double-quoted string
 * (backslash escapes the next character) followed by the colon. Returns
 * the key and sets *rest past the colon, or NULL with *why.
 */
static char *
alias_key(const char *line, const char **rest, const char **why)
{
	struct buf key;
	const char *p = line, *colon;

	buf_init(&key, BUF_NOMAX);
	if (*p == '"') {
		for (p++; *p != '"'; p++) {
			if (*p == '\\' && p[1] != '\0')
				p++;
			if (*p == '\0') {
				*why = "missing closing quote";
				buf_free(&key);
				return NULL;
			}
			buf_putc(&key, *p);
		}
		for (p++; is_space((unsigned char)*p); p++)
			;
		if (*p != ':') {
			*why = "expected \":\" after the quoted name";
			buf_free(&key);
			return NULL;
		}
		colon = p;
	} else {
		if ((colon = strchr(p, ':')) == NULL) {
			*why = "expected \"name: value\"";
			return NULL;
		}
		buf_append(&key, p, (size_t)(colon - p));
		buf_rtrim(&key);
	}
	if (key.len == 0) {
		*why = "empty name before \":\"";
		buf_free(&key);
		return NULL;
	}
	*rest = colon + 1;
	return buf_steal(&key);
}

static int
text_walk_line(const char *line, int lineno, void *ctx, char **err)
{
	struct text_walk *w = ctx;
	const char *value, *why = NULL;
	char *key;
	int r;

	if (w->aliases_syntax) {
		if ((key = alias_key(line, &value, &why)) == NULL) {
			*err = xasprintf("%s:%d: %s", w->path, lineno, why);
			return -1;
		}
	} else {
		value = line + strcspn(line, " \t\f\v");
		key = xstrndup(line, (size_t)(value - line));
	}
	while (is_space((unsigned char)*value))
		value++;
	if (*value == '\0') {
		*err = xasprintf("%s:%d: %s \"%s\" has no value", w->path,
		    lineno, w->aliases_syntax ? "name" : "key", key);
		free(key);
		return -1;
	}
	r = w->fn(key, value, w->ctx);
	free(key);
	return r;
}

int
table_text_walk(const char *path, int aliases_syntax,
    int (*fn)(const char *key, const char *value, void *ctx),
    void *ctx, char **err)
{
	struct text_walk w = { path, aliases_syntax, fn, ctx };

	return table_text_lines(path, text_walk_line, &w, err);
}

int
table_text_walk_fp(FILE *fp, const char *name, int aliases_syntax,
    int (*fn)(const char *key, const char *value, void *ctx),
    void *ctx, char **err)
{
	struct text_walk w = { name, aliases_syntax, fn, ctx };

	return text_lines_fp(fp, name, text_walk_line, &w, err);
}
