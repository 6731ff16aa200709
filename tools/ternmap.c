/*
 * ternmap - build, query, list and change Tern lookup tables (Postfix's
 * postmap and postalias in one program).
 *
 *	ternmap [-A] [lmdb:]file ...	build file.lmdb from each text file
 *	ternmap -q key table		print the value of key (any type)
 *	ternmap -q - table		look up each line of stdin
 *	ternmap -s table		list the entries of a table
 *	ternmap -d key [lmdb:]file	delete key from file.lmdb ("-": stdin)
 *	ternmap [-A] -i [lmdb:]file	add "key value" lines from stdin
 *
 * -q and -s read main.cf (-c dir, $TERN_CONFIG_DIR or the built-in
 * folder, when it has one) so that tables that depend on it, such as
 * unix:passwd.byname with local_passwd_file, answer as the daemons do.
 * -A reads the text in aliases(5) syntax ("name: value"); newaliases is
 * "ternmap -A /etc/tern/aliases". A build, -d and -i each replace the
 * table in one rename, so running servers see the old table or the new
 * one, never half of either. -d and -i change the .lmdb file only, as
 * Postfix's postmap does: the next build from the text file undoes
 * them unless the text file is edited too.
 *
 * Failure: a build, listing or addition that fails says why on stderr
 * ("fatal: file:line: reason") and exits 1, leaving an old table in
 * place. A query or delete exits 0 when the key is found, 1 when it is
 * not and 2 when the table cannot be read or written (the reason on
 * stderr), so scripts can tell "absent" from "broken".
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "table.h"

#define EXIT_NOTFOUND	1
#define EXIT_TABLE_ERR	2

static void __attribute__((noreturn))
usage(void)
{
	msg_fatal("usage: ternmap [-A] [lmdb:]file ... | ternmap [-c dir] "
	    "-q key|- table | ternmap [-c dir] -s table | ternmap -d key|- "
	    "[lmdb:]file | ternmap [-A] -i [lmdb:]file");
}

/*
 * Read main.cf for lookups. Building needs no configuration, so a
 * missing main.cf in the built-in folder is no error; one named with -c
 * or TERN_CONFIG_DIR must read cleanly.
 */
static void
load_config(const char *dir)
{
	const char *env = getenv("TERN_CONFIG_DIR");
	char *err = NULL;

	if (dir == NULL && (env == NULL || *env == '\0') &&
	    access(TERN_CONFIG_DIR "/main.cf", F_OK) < 0)
		return;
	if (config_load(dir, &err) < 0)
		msg_fatal("%s", err);
}

/* "type:name" as given, or "lmdb:arg" when arg names no type. */
static char *
table_spec(const char *arg)
{
	const char *p;

	for (p = arg; (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9');
	    p++)
		;
	if (p > arg && *p == ':')
		return xstrdup(arg);
	return xasprintf("lmdb:%s", arg);
}

/* The file of an lmdb table spec; fatal for any other type. */
static const char *
lmdb_file(const char *spec, const char *what)
{
	if (strncmp(spec, "lmdb:", 5) != 0)
		msg_fatal("%s: %s works on lmdb tables only", spec, what);
	if (spec[5] == '\0')
		msg_fatal("%s: missing file name", spec);
	return spec + 5;
}

/* Lines of stdin, without their line ends; empty ones are dropped. */
static char **
read_keys(void)
{
	char **keys, *line = NULL;
	size_t n = 0, cap = 16, size = 0;
	ssize_t len;

	keys = xcalloc(cap, sizeof(*keys));
	while ((len = getline(&line, &size, stdin)) > 0) {
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		if (n + 1 == cap) {
			cap *= 2;
			keys = xreallocarray(keys, cap, sizeof(*keys));
		}
		keys[n++] = xstrdup(line);
		keys[n] = NULL;
	}
	if (ferror(stdin))
		msg_fatal("error reading standard input");
	free(line);
	return keys;
}

static void
free_keys(char **keys)
{
	for (size_t i = 0; keys[i] != NULL; i++)
		free(keys[i]);
	free(keys);
}

/* One lookup; prints the value (with the key when with_key). */
static int
query_one(struct table *t, const char *key, int with_key)
{
	char *value = NULL, *err = NULL;

	switch (table_lookup(t, key, &value, &err)) {
	case TABLE_FOUND:
		if (with_key)
			printf("%s %s\n", key, value);
		else
			printf("%s\n", value);
		free(value);
		return 0;
	case TABLE_NOTFOUND:
		return EXIT_NOTFOUND;
	default:
		msg_error("%s", err);
		free(err);
		return EXIT_TABLE_ERR;
	}
}

/*
 * -q key, or -q - for one key a line on stdin, all through one open
 * table as a server would hold it: each found key prints "key value",
 * each answer is flushed before the next line is read (a script can
 * talk to it), and the exit status is 2 after any error, else 0 when
 * any key was found.
 */
static int
ternmap_query(const char *key, const char *arg)
{
	struct table *t;
	char *spec, *err = NULL, *line = NULL;
	size_t size = 0;
	ssize_t len;
	int r, found = 0, broken = 0;

	spec = table_spec(arg);
	if ((t = table_open(spec, &err)) == NULL) {
		msg_error("%s", err);
		free(err);
		free(spec);
		return EXIT_TABLE_ERR;
	}
	free(spec);
	if (strcmp(key, "-") != 0) {
		r = query_one(t, key, 0);
		table_close(t);
		return r;
	}
	while ((len = getline(&line, &size, stdin)) > 0) {
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		r = query_one(t, line, 1);
		if (r == 0)
			found = 1;
		else if (r == EXIT_TABLE_ERR)
			broken = 1;
		if (fflush(stdout) != 0)
			msg_fatal("error writing standard output");
	}
	if (ferror(stdin))
		msg_fatal("error reading standard input");
	free(line);
	table_close(t);
	return broken ? EXIT_TABLE_ERR : found ? 0 : EXIT_NOTFOUND;
}

static int
print_entry(const char *key, const char *value, void *ctx)
{
	printf("%s %s\n", key, value);
	return 0;
}

static void
ternmap_dump(const char *arg)
{
	struct table *t;
	char *spec, *err = NULL;

	spec = table_spec(arg);
	if ((t = table_open(spec, &err)) == NULL ||
	    table_walk(t, print_entry, NULL, &err) < 0)
		msg_fatal("%s", err);
	table_close(t);
	free(spec);
}

static void
ternmap_build(const char *arg, int aliases_syntax)
{
	char *spec, *err = NULL;

	spec = table_spec(arg);
	if (table_lmdb_build(lmdb_file(spec, "building"), aliases_syntax,
	    &err) < 0)
		msg_fatal("%s", err);
	free(spec);
}

static int
ternmap_delete(const char *key, const char *arg)
{
	char *spec, *err = NULL, **keys;
	size_t deleted;
	int r;

	spec = table_spec(arg);
	if (strcmp(key, "-") == 0)
		keys = read_keys();
	else {
		keys = xcalloc(2, sizeof(*keys));
		keys[0] = xstrdup(key);
	}
	r = table_lmdb_update(lmdb_file(spec, "-d"), keys, NULL, NULL, 0,
	    &deleted, &err);
	free_keys(keys);
	free(spec);
	if (r < 0) {
		msg_error("%s", err);
		free(err);
		return EXIT_TABLE_ERR;
	}
	return deleted > 0 ? 0 : EXIT_NOTFOUND;
}

/* The entries read for -i, in input order. */
struct entries {
	char	**keys;
	char	**values;
	size_t	 n, cap;
};

static int
collect_entry(const char *key, const char *value, void *ctx)
{
	struct entries *e = ctx;

	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 64;
		e->keys = xreallocarray(e->keys, e->cap, sizeof(*e->keys));
		e->values = xreallocarray(e->values, e->cap,
		    sizeof(*e->values));
	}
	e->keys[e->n] = xstrdup(key);
	e->values[e->n++] = xstrdup(value);
	return 0;
}

/* Read all of stdin before touching the table: a bad line changes
 * nothing. */
static void
ternmap_add(const char *arg, int aliases_syntax)
{
	struct entries e = { 0 };
	char *spec, *err = NULL;

	spec = table_spec(arg);
	if (table_text_walk_fp(stdin, "stdin", aliases_syntax, collect_entry,
	    &e, &err) != 0)
		msg_fatal("%s", err);
	if (table_lmdb_update(lmdb_file(spec, "-i"), NULL, e.keys, e.values,
	    e.n, NULL, &err) < 0)
		msg_fatal("%s", err);
	for (size_t i = 0; i < e.n; i++) {
		free(e.keys[i]);
		free(e.values[i]);
	}
	free(e.keys);
	free(e.values);
	free(spec);
}

int
main(int argc, char *argv[])
{
	const char *query = NULL, *delete = NULL, *cfdir = NULL;
	int ch, aliases_syntax = 0, dump = 0, add = 0, r = 0;

	log_init_tool("ternmap");
	while ((ch = getopt(argc, argv, "Ac:d:iq:s")) != -1) {
		switch (ch) {
		case 'A':
			aliases_syntax = 1;
			break;
		case 'c':
			cfdir = optarg;
			break;
		case 'd':
			delete = optarg;
			break;
		case 'i':
			add = 1;
			break;
		case 'q':
			query = optarg;
			break;
		case 's':
			dump = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	/* At most one of -q, -s, -d, -i; each takes exactly one table. */
	if ((query != NULL) + dump + (delete != NULL) + add > 1 || argc < 1 ||
	    ((query != NULL || dump || delete != NULL || add) && argc != 1))
		usage();

	if (query != NULL || dump)
		load_config(cfdir);
	if (query != NULL)
		r = ternmap_query(query, argv[0]);
	else if (dump)
		ternmap_dump(argv[0]);
	else if (delete != NULL)
		r = ternmap_delete(delete, argv[0]);
	else if (add)
		ternmap_add(argv[0], aliases_syntax);
	else
		for (int i = 0; i < argc; i++)
			ternmap_build(argv[i], aliases_syntax);

	if (fflush(stdout) != 0 || ferror(stdout))
		msg_fatal("error writing standard output");
	return r;
}
