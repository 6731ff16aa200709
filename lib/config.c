/*
 * config - the main.cf reader. See config.h for the syntax and the
 * contract.
 *
 * Every parameter, known or not, is an entry: its raw text (from
 * main.cf, from config_set, or the default) and, once computed, its
 * expanded value. After each change every value is expanded again and
 * validated against its type, so that an accessor never sees a value
 * that does not parse. Expansion is a depth-first walk that memoizes
 * each parameter once: a parameter met again while it is being expanded
 * is a loop and an error, nesting is limited, and so is the length of a
 * value, so that no main.cf can make the reader hang, overflow its
 * stack or eat all memory.
 *
 * Failures: config_load() and config_set() return -1 with a message
 * that names the file, the line and what is wrong; asking for a
 * parameter that is not in the table, or with the wrong type, is a bug
 * and panics.
 */
#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "num.h"
#include "strv.h"

#ifndef TERN_SYSCONFDIR
#define TERN_SYSCONFDIR	TERN_CONFIG_DIR
#endif

#define EXPAND_MAX_DEPTH	50		/* nested references */
#define EXPAND_MAX_LEN		(1024 * 1024)	/* bytes of one value */
#define LIST_SEPS		", \t\r\n"

enum { UNDONE, BUSY, DONE };

struct entry {
	char	*name;
	const struct param_def *def;	/* NULL: not in the table */
	char	*raw;			/* set value; NULL: the default */
	char	*dflt;			/* computed default, or NULL */
	char	*file;			/* where raw came from; NULL: -o */
	int	 line;
	int	 set;
	int	 referenced;		/* some other value names it */
	char	*value;			/* expanded, when state is DONE */
	int	 state;
};

struct expand_ctx {
	const struct entry *stack[EXPAND_MAX_DEPTH + 1];
	int	 nstack;
	int	 depth;
	char	*err;
};

static struct entry *entries;		/* the table's first, then others */
static size_t nentries;
static char *conf_dir;
static char **unknown_names;
static int valid;			/* every value expanded and checked */

static int expand_text(const char *, struct buf *, struct expand_ctx *);

static void
init_entries(void)
{
	if (entries != NULL)
		return;
	entries = xcalloc(param_count, sizeof(*entries));
	for (size_t i = 0; i < param_count; i++) {
		entries[i].name = xstrdup(param_table[i].name);
		entries[i].def = &param_table[i];
	}
	nentries = param_count;
}

static int
name_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_';
}

static int
valid_name(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!name_char((unsigned char)s[i]))
			return 0;
	return 1;
}

static struct entry *
find_entry(const char *name)
{
	const struct param_def *def;

	init_entries();
	if ((def = param_find(name)) != NULL)
		return &entries[def - param_table];
	for (size_t i = param_count; i < nentries; i++)
		if (strcmp(entries[i].name, name) == 0)
			return &entries[i];
	return NULL;
}

static struct entry *
add_entry(const char *name)
{
	struct entry *e;

	entries = xreallocarray(entries, nentries + 1, sizeof(*entries));
	e = &entries[nentries++];
	memset(e, 0, sizeof(*e));
	e->name = xstrdup(name);
	strv_free(unknown_names);
	unknown_names = NULL;
	return e;
}

/* The text an entry stands for before expansion. */
static const char *
entry_text(const struct entry *e)
{
	if (e->set)
		return e->raw;
	if (e->dflt != NULL)
		return e->dflt;
	return e->def != NULL ? e->def->defval : "";
}

/* "FILE, line N: " for values from main.cf, "" otherwise. */
static char *
entry_where(const struct entry *e)
{
	if (e->set && e->file != NULL)
		return xasprintf("%s, line %d: ", e->file, e->line);
	return xstrdup("");
}

/* Text with each $ doubled, so that expanding it gives it back. */
static char *
quote_dollars(const char *s)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	buf_puts(&b, "");
	for (; *s != '\0'; s++) {
		if (*s == '$')
			buf_putc(&b, '$');
		buf_putc(&b, *s);
	}
	return buf_steal(&b);
}

/*
 * myhostname and mydomain have defaults computed from the machine:
 * myhostname is gethostname(), made fully qualified with .$mydomain
 * (or .localdomain) when it has no dot; mydomain is $myhostname minus
 * its first label, unless that leaves a bare top-level domain. The
 * mydomain default is made in expand_entry(), once myhostname is known.
 */
static void
compute_myhostname_default(void)
{
	struct entry *host = find_entry("myhostname");
	struct entry *dom = find_entry("mydomain");
	char name[256 + 1];
	char *quoted;

	free(host->dflt);
	free(dom->dflt);
	host->dflt = dom->dflt = NULL;
	memset(name, 0, sizeof(name));
	if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0')
		snprintf(name, sizeof(name), "localhost");
	quoted = quote_dollars(name);
	if (strchr(name, '.') != NULL)
		host->dflt = quoted;
	else {
		host->dflt = xasprintf("%s.%s", quoted,
		    dom->set ? "$mydomain" : "localdomain");
		free(quoted);
	}
}

static void
mydomain_default(struct entry *dom, const char *hostname)
{
	const char *dot = strchr(hostname, '.');

	if (dot != NULL && dot[1] != '\0' && strchr(dot + 1, '.') != NULL)
		dom->dflt = quote_dollars(dot + 1);
	else
		dom->dflt = xstrdup("localdomain");
}

static void set_error(struct expand_ctx *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* Record the first error, naming the parameter being expanded. */
static void
set_error(struct expand_ctx *ctx, const char *fmt, ...)
{
	const struct entry *e;
	struct buf what;
	va_list ap;
	char *where;

	if (ctx->err != NULL)
		return;
	buf_init(&what, BUF_NOMAX);
	va_start(ap, fmt);
	buf_vprintf(&what, fmt, ap);
	va_end(ap);
	if (ctx->nstack == 0) {
		buf_puts(&what, "");
		ctx->err = buf_steal(&what);
		return;
	}
	e = ctx->stack[ctx->nstack - 1];
	where = entry_where(e);
	ctx->err = xasprintf("%sparameter %s: %s", where, e->name,
	    buf_cstr(&what));
	free(where);
	buf_free(&what);
}

static void
loop_error(struct expand_ctx *ctx, const struct entry *again)
{
	struct buf chain;
	int first = 0;

	buf_init(&chain, BUF_NOMAX);
	for (int i = 0; i < ctx->nstack; i++)
		if (ctx->stack[i] == again) {
			first = i;
			break;
		}
	for (int i = first; i < ctx->nstack; i++)
		buf_printf(&chain, "%s -> ", ctx->stack[i]->name);
	buf_puts(&chain, again->name);
	set_error(ctx, "$name expansion loops: %s", buf_cstr(&chain));
	buf_free(&chain);
}

/* The expanded value of e, or NULL with ctx->err set. */
static const char *
expand_entry(struct entry *e, struct expand_ctx *ctx)
{
	struct buf out;

	if (e->state == DONE)
		return e->value;
	if (e->state == BUSY) {
		loop_error(ctx, e);
		return NULL;
	}
	if (ctx->depth >= EXPAND_MAX_DEPTH) {
		set_error(ctx, "$name references nested more than %d deep",
		    EXPAND_MAX_DEPTH);
		return NULL;
	}
	e->state = BUSY;
	ctx->stack[ctx->nstack++] = e;
	ctx->depth++;
	if (e->def != NULL && strcmp(e->name, "mydomain") == 0 && !e->set &&
	    e->dflt == NULL) {
		const char *host = expand_entry(find_entry("myhostname"), ctx);

		if (host != NULL)
			mydomain_default(e, host);
	}
	buf_init(&out, EXPAND_MAX_LEN);
	if (ctx->err == NULL) {
		if (e->def != NULL && (e->def->flags & PARAM_RAW)) {
			if (buf_puts(&out, entry_text(e)) < 0)
				set_error(ctx, "value is longer than %d bytes",
				    EXPAND_MAX_LEN);
		} else
			(void)expand_text(entry_text(e), &out, ctx);
	}
	ctx->depth--;
	ctx->nstack--;
	if (ctx->err != NULL) {
		buf_free(&out);
		e->state = UNDONE;
		return NULL;
	}
	free(e->value);
	buf_puts(&out, "");
	e->value = buf_steal(&out);
	e->state = DONE;
	return e->value;
}

/* The value of the parameter called name (empty when there is none). */
static const char *
expand_name(const char *name, size_t len, struct expand_ctx *ctx)
{
	struct entry *e;
	char *n = xstrndup(name, len);

	e = find_entry(n);
	free(n);
	if (e == NULL)
		return "";
	e->referenced = 1;
	return expand_entry(e, ctx);
}

/* Where the group opened just before s closes; NULL when it does not. */
static const char *
find_close(const char *s, int open, int close)
{
	int level = 1;

	for (; *s != '\0'; s++) {
		if (*s == open)
			level++;
		else if (*s == close && --level == 0)
			return s;
	}
	return NULL;
}

static int
put(struct buf *out, const char *s, size_t len, struct expand_ctx *ctx)
{
	if (buf_append(out, s, len) < 0) {
		set_error(ctx, "value is longer than %d bytes after expansion",
		    EXPAND_MAX_LEN);
		return -1;
	}
	return 0;
}

/*
 * Append text to out with every $name, ${name}, $(name), ${name?text},
 * ${name:text} and $$ replaced. -1 with ctx->err set on a syntax error,
 * a loop, too deep a nesting or too long a result.
 */
static int
expand_text(const char *text, struct buf *out, struct expand_ctx *ctx)
{
	const char *p = text, *name, *val, *end;
	size_t len;
	int open, close;

	while (*p != '\0') {
		if (*p != '$') {
			len = strcspn(p, "$");
			if (put(out, p, len, ctx) < 0)
				return -1;
			p += len;
			continue;
		}
		p++;
		if (*p == '$') {
			if (put(out, "$", 1, ctx) < 0)
				return -1;
			p++;
			continue;
		}
		if (name_char((unsigned char)*p)) {
			name = p;
			while (name_char((unsigned char)*p))
				p++;
			if ((val = expand_name(name, p - name, ctx)) == NULL ||
			    put(out, val, strlen(val), ctx) < 0)
				return -1;
			continue;
		}
		if (*p != '{' && *p != '(') {
			set_error(ctx, "'$' must be followed by a name, "
			    "{name}, (name) or another '$'");
			return -1;
		}
		open = *p;
		close = open == '{' ? '}' : ')';
		name = ++p;
		while (name_char((unsigned char)*p))
			p++;
		len = p - name;
		if (len == 0) {
			set_error(ctx, "missing parameter name after '$%c'",
			    open);
			return -1;
		}
		if (*p == close) {
			if ((val = expand_name(name, len, ctx)) == NULL ||
			    put(out, val, strlen(val), ctx) < 0)
				return -1;
			p++;
			continue;
		}
		if (*p != '?' && *p != ':') {
			set_error(ctx, "missing '%c' after a parameter name",
			    close);
			return -1;
		}
		if ((end = find_close(p + 1, open, close)) == NULL) {
			set_error(ctx, "missing '%c' after a conditional "
			    "expansion", close);
			return -1;
		}
		if ((val = expand_name(name, len, ctx)) == NULL)
			return -1;
		if ((*p == '?') == (*val != '\0')) {
			char *inner = xstrndup(p + 1, end - (p + 1));
			int r;

			if (ctx->depth >= EXPAND_MAX_DEPTH) {
				free(inner);
				set_error(ctx, "$name references nested more "
				    "than %d deep", EXPAND_MAX_DEPTH);
				return -1;
			}
			ctx->depth++;
			r = expand_text(inner, out, ctx);
			ctx->depth--;
			free(inner);
			if (r < 0)
				return -1;
		}
		p = end + 1;
	}
	return 0;
}

/* Check value against the type of def; -1 with *why allocated. */
static int
check_value(const struct param_def *def, const char *value, char **why)
{
	unsigned long v, max;
	int b;

	switch (def->type) {
	case PARAM_STR:
	case PARAM_LIST:
		return 0;
	case PARAM_BOOL:
		if (parse_bool(value, &b) == 0)
			return 0;
		*why = xstrdup("boolean (yes or no)");
		return -1;
	case PARAM_INT:
		max = def->max ? def->max : INT_MAX;
		if (parse_ulong(value, def->min, max, &v) == 0)
			return 0;
		*why = xasprintf("integer from %lu to %lu", def->min, max);
		return -1;
	case PARAM_SIZE:
		max = def->max ? def->max : (unsigned long)LONG_MAX;
		if (parse_ulong(value, def->min, max, &v) == 0)
			return 0;
		if (def->max != 0)
			*why = xasprintf("size in bytes from %lu to %lu",
			    def->min, max);
		else
			*why = xasprintf("size in bytes (digits only), at "
			    "least %lu", def->min);
		return -1;
	case PARAM_TIME:
		max = def->max ? def->max : INT_MAX;
		if (parse_time(value, def->unit, max, &v) == 0 &&
		    v >= def->min)
			return 0;
		*why = xasprintf("time (a number with an optional unit s, m, "
		    "h, d or w; default unit %c), from %lus to %lus",
		    def->unit, def->min, max);
		return -1;
	}
	*why = xstrdup("nothing");
	return -1;
}

/* Sort key: -o overrides first, then main.cf by line, then defaults. */
static long
entry_rank(const struct entry *e)
{
	if (!e->set)
		return LONG_MAX;
	return e->file == NULL ? 0 : e->line;
}

static int
rank_cmp(const void *a, const void *b)
{
	const struct entry *x = *(struct entry *const *)a;
	const struct entry *y = *(struct entry *const *)b;
	long rx = entry_rank(x), ry = entry_rank(y);

	if (rx != ry)
		return rx < ry ? -1 : 1;
	return x < y ? -1 : x > y;
}

/*
 * Expand and check every value, in the order an administrator looks
 * for a mistake: overrides, then main.cf top to bottom, then defaults.
 * 0, or -1 with *err about the first bad one.
 */
static int
revalidate(char **err)
{
	struct entry **order;
	struct expand_ctx ctx;
	char *why, *where;
	int rc = 0;

	init_entries();
	valid = 0;
	for (size_t i = 0; i < nentries; i++) {
		free(entries[i].value);
		entries[i].value = NULL;
		entries[i].state = UNDONE;
		entries[i].referenced = 0;
	}
	compute_myhostname_default();
	order = xreallocarray(NULL, nentries, sizeof(*order));
	for (size_t i = 0; i < nentries; i++)
		order[i] = &entries[i];
	qsort(order, nentries, sizeof(*order), rank_cmp);
	for (size_t i = 0; i < nentries && rc == 0; i++) {
		struct entry *e = order[i];
		const char *v;

		memset(&ctx, 0, sizeof(ctx));
		if ((v = expand_entry(e, &ctx)) == NULL) {
			*err = ctx.err;
			rc = -1;
			break;
		}
		if (e->def == NULL || check_value(e->def, v, &why) == 0)
			continue;
		where = entry_where(e);
		if (e->set)
			*err = xasprintf("%sbad value for %s: expected %s, got "
			    "\"%s\"", where, e->name, why, v);
		else
			*err = xasprintf("bad value for %s (default \"%s\"): "
			    "expected %s, got \"%s\"", e->name, entry_text(e),
			    why, v);
		free(where);
		free(why);
		rc = -1;
	}
	free(order);
	valid = rc == 0;
	return rc;
}

static void
ensure_valid(void)
{
	char *err = NULL;

	if (valid)
		return;
	if (revalidate(&err) < 0)
		msg_fatal("%s", err);
}

static void
free_entry(struct entry *e)
{
	free(e->name);
	free(e->raw);
	free(e->dflt);
	free(e->file);
	free(e->value);
}

void
config_reset(void)
{
	for (size_t i = 0; i < nentries; i++)
		free_entry(&entries[i]);
	free(entries);
	entries = NULL;
	nentries = 0;
	free(conf_dir);
	conf_dir = NULL;
	strv_free(unknown_names);
	unknown_names = NULL;
	valid = 0;
}

static void
assign(struct entry *e, const char *value, const char *file, int line)
{
	free(e->raw);
	free(e->file);
	e->raw = xstrdup(value);
	e->file = file != NULL ? xstrdup(file) : NULL;
	e->line = line;
	e->set = 1;
	valid = 0;
}

/* One logical line "name = value"; -1 with *err on bad syntax. */
static int
parse_assignment(char *text, const char *path, int line, char **err)
{
	struct entry *e;
	char *name = text, *p = text;

	while (*p != '\0' && *p != '=' && *p != ' ' && *p != '\t')
		p++;
	if (!valid_name(name, p - name)) {
		*err = xasprintf("%s, line %d: bad parameter name \"%.*s\": "
		    "expected letters, digits and _", path, line,
		    (int)(p - name), name);
		return -1;
	}
	if (*p != '=') {
		*p++ = '\0';
		p += strspn(p, " \t");
	}
	if (*p != '=') {
		*err = xasprintf("%s, line %d: missing '=' after parameter "
		    "name %s", path, line, name);
		return -1;
	}
	*p++ = '\0';
	p += strspn(p, " \t");
	if ((e = find_entry(name)) == NULL)
		e = add_entry(name);
	else if (e->set && e->file != NULL)
		msg_warn("%s, line %d: %s overrides the value set on line %d",
		    path, line, name, e->line);
	assign(e, p, path, line);
	return 0;
}

static void
trim_right(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
}

/*
 * Read the lines of main.cf into logical lines: white space at the
 * start continues the line before, comment and blank lines are skipped
 * without ending it (as in Postfix).
 */
static int
read_main_cf(FILE *fp, const char *path, char **err)
{
	struct buf logical;
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, start = 0, rc = 0;

	buf_init(&logical, BUF_NOMAX);
	while (rc == 0 && getline(&line, &cap, fp) != -1) {
		const char *p;

		lineno++;
		trim_right(line);
		p = line + strspn(line, " \t");
		if (*p == '\0' || *p == '#')
			continue;
		if (p != line) {
			if (start == 0) {
				*err = xasprintf("%s, line %d: continuation "
				    "line without a parameter before it", path,
				    lineno);
				rc = -1;
				break;
			}
			buf_putc(&logical, ' ');
			buf_puts(&logical, p);
			continue;
		}
		if (start != 0)
			rc = parse_assignment(logical.data, path, start, err);
		buf_reset(&logical);
		buf_puts(&logical, line);
		start = lineno;
	}
	if (rc == 0 && ferror(fp)) {
		*err = xasprintf("%s: read error: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc == 0 && start != 0)
		rc = parse_assignment(logical.data, path, start, err);
	free(line);
	buf_free(&logical);
	return rc;
}

const char *
config_dir(void)
{
	const char *env;

	if (conf_dir != NULL)
		return conf_dir;
	if ((env = getenv("TERN_CONFIG_DIR")) != NULL && *env != '\0')
		return env;
	return TERN_SYSCONFDIR;
}

int
config_load(const char *dir, char **err)
{
	char *path;
	FILE *fp;
	int rc;

	config_reset();
	init_entries();
	conf_dir = xstrdup(dir != NULL ? dir : config_dir());
	path = xasprintf("%s/main.cf", conf_dir);
	if ((fp = fopen(path, "re")) == NULL) {
		*err = xasprintf("cannot open %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	rc = read_main_cf(fp, path, err);
	fclose(fp);
	free(path);
	if (rc < 0 || revalidate(err) < 0)
		return -1;
	/* A parameter Tern does not know is most often a typo; one that
	 * other values refer to is the administrator's own macro. */
	for (size_t i = param_count; i < nentries; i++)
		if (entries[i].file != NULL && !entries[i].referenced)
			msg_warn("%s, line %d: unknown parameter %s",
			    entries[i].file, entries[i].line, entries[i].name);
	return 0;
}

int
config_set(const char *name, const char *value, char **err)
{
	struct entry *e, saved;
	int added = 0;

	if (!valid_name(name, strlen(name))) {
		*err = xasprintf("bad parameter name \"%s\": expected letters, "
		    "digits and _", name);
		return -1;
	}
	if (strpbrk(value, "\r\n") != NULL) {
		*err = xasprintf("bad value for %s: it contains a line break",
		    name);
		return -1;
	}
	if ((e = find_entry(name)) == NULL) {
		msg_warn("unknown parameter %s", name);
		e = add_entry(name);
		added = 1;
	}
	saved = *e;
	e->raw = e->file = NULL;
	assign(e, value, NULL, 0);
	if (revalidate(err) == 0) {
		free(saved.raw);
		free(saved.file);
		return 0;
	}
	/* Put back what was there; it was valid before. */
	free(e->raw);
	e->raw = saved.raw;
	e->file = saved.file;
	e->line = saved.line;
	e->set = saved.set;
	if (added) {
		free_entry(e);
		nentries--;
		strv_free(unknown_names);
		unknown_names = NULL;
	}
	{
		char *ignored = NULL;

		if (revalidate(&ignored) < 0)
			free(ignored);
	}
	return -1;
}

const char *
config_raw(const char *name)
{
	struct entry *e;

	if ((e = find_entry(name)) == NULL)
		return NULL;
	if (!e->set && (strcmp(name, "myhostname") == 0 ||
	    strcmp(name, "mydomain") == 0))
		ensure_valid();	/* their defaults are computed */
	return entry_text(e);
}

int
config_is_set(const char *name)
{
	struct entry *e = find_entry(name);

	return e != NULL && e->set;
}

int
config_where(const char *name, const char **file)
{
	struct entry *e = find_entry(name);

	if (e == NULL || !e->set || e->file == NULL) {
		*file = NULL;
		return 0;
	}
	*file = e->file;
	return e->line;
}

/* The entry of a known parameter of the given type, values current. */
static struct entry *
known(const char *name, int type)
{
	const struct param_def *def;

	init_entries();
	if ((def = param_find(name)) == NULL)
		msg_panic("config: no parameter called %s", name);
	if (type >= 0 && def->type != (enum param_type)type)
		msg_panic("config: %s is a %s, not a %s", name,
		    param_type_name(def->type),
		    param_type_name((enum param_type)type));
	ensure_valid();
	return &entries[def - param_table];
}

const char *
config_str(const char *name)
{
	return known(name, -1)->value;
}

int
config_bool(const char *name)
{
	int b = 0;

	if (parse_bool(known(name, PARAM_BOOL)->value, &b) < 0)
		msg_panic("config: %s is not a boolean", name);
	return b;
}

long
config_int(const char *name)
{
	unsigned long v = 0;

	if (parse_ulong(known(name, PARAM_INT)->value, 0, LONG_MAX, &v) < 0)
		msg_panic("config: %s is not an integer", name);
	return (long)v;
}

size_t
config_size(const char *name)
{
	size_t v = 0;

	if (parse_size(known(name, PARAM_SIZE)->value, &v) < 0)
		msg_panic("config: %s is not a size", name);
	return v;
}

unsigned long
config_time(const char *name)
{
	struct entry *e = known(name, PARAM_TIME);
	unsigned long v = 0;

	if (parse_time(e->value, e->def->unit, ULONG_MAX, &v) < 0)
		msg_panic("config: %s is not a time", name);
	return v;
}

/*
 * Split a list on commas and white space, keeping an item with braces
 * whole up to its matching brace: "inline:{ a=1, b=2 }, lmdb:/x" has
 * two items.
 */
static char **
split_list(const char *s)
{
	char **v = xcalloc(1, sizeof(char *));

	for (;;) {
		const char *start;
		int level = 0;

		s += strspn(s, LIST_SEPS);
		if (*s == '\0')
			break;
		start = s;
		for (; *s != '\0'; s++) {
			if (*s == '{')
				level++;
			else if (*s == '}' && level > 0)
				level--;
			else if (level == 0 && strchr(LIST_SEPS, *s) != NULL)
				break;
		}
		{
			char *item = xstrndup(start, s - start);

			strv_add(&v, item);
			free(item);
		}
	}
	return v;
}

char **
config_list(const char *name)
{
	return split_list(known(name, -1)->value);
}

int
config_expand(const char *text, char **out, char **err)
{
	struct expand_ctx ctx;
	struct buf b;

	init_entries();
	if (!valid && revalidate(err) < 0)
		return -1;
	memset(&ctx, 0, sizeof(ctx));
	buf_init(&b, EXPAND_MAX_LEN);
	if (expand_text(text, &b, &ctx) < 0) {
		buf_free(&b);
		*err = ctx.err;
		return -1;
	}
	buf_puts(&b, "");
	*out = buf_steal(&b);
	return 0;
}

char *const *
config_unknown_names(void)
{
	if (unknown_names == NULL) {
		init_entries();
		unknown_names = xcalloc(1, sizeof(char *));
		for (size_t i = param_count; i < nentries; i++)
			strv_add(&unknown_names, entries[i].name);
	}
	return unknown_names;
}
