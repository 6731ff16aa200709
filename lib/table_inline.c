/*
 * table_inline - "inline:{ key=value, { key = text, with commas }, ... }"
 * tables: the entries are written in the table name itself, as in
 * Postfix's main.cf.
 *
 * Entries are separated by commas or white space; one that holds either
 * is wrapped in braces, inside which white space around "=" and at the
 * ends is dropped. Keys are folded to lower case; the first of equal
 * keys wins. Lookups scan the list: inline tables are a few entries.
 *
 * Failure: text that does not parse (missing outer braces, unbalanced
 * braces, an entry without "=" or with an empty key or value) fails the
 * open with the reason, and since the name is the content that makes
 * table_open fail: a configuration error caught at start.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "strv.h"
#include "table.h"

struct inline_table {
	char	**keys;
	char	**values;
};

static int
is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
	    c == '\f' || c == '\v';
}

/* Trim [*p, *end) of white space on both sides. */
static void
trim(const char **p, const char **end)
{
	while (*p < *end && is_blank((unsigned char)**p))
		(*p)++;
	while (*end > *p && is_blank((unsigned char)(*end)[-1]))
		(*end)--;
}

/* Add "key=value" from [p, end); NULL, or the reason it is malformed. */
static const char *
inline_add(struct inline_table *it, const char *p, const char *end)
{
	const char *eq, *kend, *v;
	char *key, *value;

	for (eq = p; eq < end && *eq != '='; eq++)
		;
	if (eq == end)
		return "missing \"=\" in an entry";
	kend = eq;
	trim(&p, &kend);
	v = eq + 1;
	trim(&v, &end);
	if (p == kend)
		return "an entry has an empty key";
	if (v == end)
		return "an entry has an empty value";
	key = xstrndup(p, (size_t)(kend - p));
	table_fold(key);
	value = xstrndup(v, (size_t)(end - v));
	strv_add(&it->keys, key);
	strv_add(&it->values, value);
	free(key);
	free(value);
	return NULL;
}

static void
inline_free(struct inline_table *it)
{
	strv_free(it->keys);
	strv_free(it->values);
	free(it);
}

static int
inline_open(struct table *t, const char *name, char **err)
{
	struct inline_table *it;
	const char *p = name, *end = name + strlen(name), *q, *why = NULL;
	int depth;

	it = xcalloc(1, sizeof(*it));
	it->keys = xcalloc(1, sizeof(char *));
	it->values = xcalloc(1, sizeof(char *));
	trim(&p, &end);
	if (end - p < 2 || *p != '{' || end[-1] != '}') {
		why = "expected \"{ key=value, ... }\"";
		goto bad;
	}
	for (p++, end--; p < end && why == NULL;) {
		if (is_blank((unsigned char)*p) || *p == ',') {
			p++;
			continue;
		}
		if (*p == '{') {
			for (q = p + 1, depth = 1; q < end && depth > 0; q++) {
				if (*q == '{')
					depth++;
				else if (*q == '}')
					depth--;
			}
			if (depth > 0) {
				why = "missing \"}\"";
				break;
			}
			why = inline_add(it, p + 1, q - 1);
		} else {
			for (q = p; q < end && !is_blank((unsigned char)*q) &&
			    *q != ','; q++) {
				if (*q == '{' || *q == '}') {
					why = "unexpected brace inside an entry";
					break;
				}
			}
			if (why == NULL)
				why = inline_add(it, p, q);
		}
		p = q;
	}
	if (why != NULL)
		goto bad;
	t->priv = it;
	return 0;
bad:
	*err = xasprintf("table \"inline:%s\": %s", name, why);
	inline_free(it);
	return -1;
}

static int
inline_lookup(struct table *t, const char *key, char **value, char **err)
{
	struct inline_table *it = t->priv;

	for (size_t i = 0; it->keys[i] != NULL; i++) {
		if (strcmp(it->keys[i], key) == 0) {
			*value = xstrdup(it->values[i]);
			return TABLE_FOUND;
		}
	}
	return TABLE_NOTFOUND;
}

/*
 * The entries as written (the order is the table's meaning to whoever
 * wrote it), leaving out later copies of a key, which lookups never
 * reach.
 */
static int
inline_walk(struct table *t,
    int (*fn)(const char *key, const char *value, void *ctx),
    void *ctx, char **err)
{
	struct inline_table *it = t->priv;
	size_t i, j;
	int r;

	for (i = 0; it->keys[i] != NULL; i++) {
		for (j = 0; j < i && strcmp(it->keys[j], it->keys[i]) != 0;
		    j++)
			;
		if (j < i)
			continue;
		if ((r = fn(it->keys[i], it->values[i], ctx)) != 0)
			return r;
	}
	return 0;
}

static void
inline_close(struct table *t)
{
	if (t->priv != NULL)
		inline_free(t->priv);
	t->priv = NULL;
}

const struct table_ops table_inline_ops = {
	.type = "inline",
	.open = inline_open,
	.lookup = inline_lookup,
	.close = inline_close,
	.walk = inline_walk,
	.name_is_content = 1,
};
