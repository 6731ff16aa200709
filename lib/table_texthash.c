/*
 * table_texthash - "texthash:/path" tables: the text file itself, in
 * ternmap's input format, read whole when the table is opened and kept
 * in memory as a sorted array (no build step, no rereading: a changed
 * file is seen by processes started after the change, as in Postfix).
 *
 * Failure: a missing or malformed file makes the open fail, and the
 * table then reports TABLE_ERROR (with file:line for a bad line) at
 * every lookup until the file reads cleanly. A key given twice keeps
 * its first value, with a warning.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "table.h"

struct texthash_entry {
	char	*key;
	char	*value;
	size_t	 order;		/* position in the file: the first wins */
};

struct texthash {
	struct texthash_entry *v;
	size_t	 n, cap;
};

static int
texthash_add(const char *key, const char *value, void *ctx)
{
	struct texthash *th = ctx;
	struct texthash_entry *e;

	if (th->n == th->cap) {
		th->cap = th->cap ? th->cap * 2 : 64;
		th->v = xreallocarray(th->v, th->cap, sizeof(*th->v));
	}
	e = &th->v[th->n];
	e->key = xstrdup(key);
	table_fold(e->key);
	e->value = xstrdup(value);
	e->order = th->n++;
	return 0;
}

static int
texthash_cmp(const void *a, const void *b)
{
	const struct texthash_entry *x = a, *y = b;
	int c;

	if ((c = strcmp(x->key, y->key)) != 0)
		return c;
	return x->order < y->order ? -1 : x->order > y->order;
}

static void
texthash_free(struct texthash *th)
{
	for (size_t i = 0; i < th->n; i++) {
		free(th->v[i].key);
		free(th->v[i].value);
	}
	free(th->v);
	free(th);
}

static int
texthash_open(struct table *t, const char *name, char **err)
{
	struct texthash *th;
	size_t i, out;

	th = xcalloc(1, sizeof(*th));
	if (table_text_walk(name, 0, texthash_add, th, err) != 0) {
		texthash_free(th);
		return -1;
	}
	if (th->n > 0)
		qsort(th->v, th->n, sizeof(*th->v), texthash_cmp);
	/* Keep the first of equal keys, now adjacent and in file order. */
	for (i = out = 0; i < th->n; i++) {
		if (out > 0 && strcmp(th->v[out - 1].key, th->v[i].key) == 0) {
			msg_warn("%s: duplicate entry \"%s\": keeping the "
			    "first", name, th->v[i].key);
			free(th->v[i].key);
			free(th->v[i].value);
			continue;
		}
		th->v[out++] = th->v[i];
	}
	th->n = out;
	t->priv = th;
	return 0;
}

static int
texthash_lookup(struct table *t, const char *key, char **value, char **err)
{
	struct texthash *th = t->priv;
	size_t lo = 0, hi = th->n;

	/* Keys are unique after the open, so a plain binary search. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, th->v[mid].key);

		if (c == 0) {
			*value = xstrdup(th->v[mid].value);
			return TABLE_FOUND;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return TABLE_NOTFOUND;
}

/* The entries in key order: the array is sorted and unique. */
static int
texthash_walk(struct table *t,
    int (*fn)(const char *key, const char *value, void *ctx),
    void *ctx, char **err)
{
	struct texthash *th = t->priv;

	for (size_t i = 0; i < th->n; i++) {
		int r = fn(th->v[i].key, th->v[i].value, ctx);

		if (r != 0)
			return r;
	}
	return 0;
}

static void
texthash_close(struct table *t)
{
	if (t->priv != NULL)
		texthash_free(t->priv);
	t->priv = NULL;
}

const struct table_ops table_texthash_ops = {
	.type = "texthash",
	.open = texthash_open,
	.lookup = texthash_lookup,
	.close = texthash_close,
	.walk = texthash_walk,
};
