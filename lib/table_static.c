/*
 * table_static - "static:value" tables: every key maps to value.
 * "static:{ text with spaces }" gives a value with white space in it
 * (the braces and the white space just inside them are dropped), which
 * a main.cf list could not otherwise carry.
 *
 * Failure: an empty value or an unclosed brace fails the open, and so
 * table_open (the name is the content); lookups never fail.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "table.h"

static int
is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
	    c == '\f' || c == '\v';
}

static int
static_open(struct table *t, const char *name, char **err)
{
	const char *p = name, *end = name + strlen(name);

	if (*p == '{') {
		if (end[-1] != '}' || end - p < 2) {
			*err = xasprintf("table \"static:%s\": missing \"}\"",
			    name);
			return -1;
		}
		for (p++, end--; p < end && is_blank((unsigned char)*p); p++)
			;
		while (end > p && is_blank((unsigned char)end[-1]))
			end--;
	}
	if (p == end) {
		*err = xasprintf("table \"static:%s\": empty value", name);
		return -1;
	}
	t->priv = xstrndup(p, (size_t)(end - p));
	return 0;
}

static int
static_lookup(struct table *t, const char *key, char **value, char **err)
{
	*value = xstrdup(t->priv);
	return TABLE_FOUND;
}

static void
static_close(struct table *t)
{
	free(t->priv);
	t->priv = NULL;
}

const struct table_ops table_static_ops = {
	.type = "static",
	.open = static_open,
	.lookup = static_lookup,
	.close = static_close,
	.raw_keys = 1,		/* the key is never looked at */
	.name_is_content = 1,
};
