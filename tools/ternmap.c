/*
 * ternmap - build, query and list Tern lookup tables (Postfix's postmap
 * and postalias in one program).
 *
 *	ternmap [-A] [lmdb:]file ...	build file.lmdb from each text file
 *	ternmap -q key table		print the value of key (any type)
 *	ternmap -s [lmdb:]file		list file.lmdb as "key value" lines
 *
 * -A reads the text in aliases(5) syntax ("name: value"); newaliases is
 * "ternmap -A /etc/tern/aliases". A build replaces the old table in one
 * rename, so running servers see the old table or the new one.
 *
 * Failure: a build or listing that fails says why on stderr
 * ("fatal: file:line: reason") and exits 1, leaving an old table in
 * place. A query exits 0 when the key is found, 1 when it is not and 2
 * when the table cannot be read (the reason on stderr), so scripts can
 * tell "absent" from "broken".
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"
#include "table.h"

#define EXIT_NOTFOUND	1
#define EXIT_TABLE_ERR	2

static void __attribute__((noreturn))
usage(void)
{
	msg_fatal("usage: ternmap [-A] [lmdb:]file ... | ternmap -q key "
	    "table | ternmap -s [lmdb:]file");
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

static int
ternmap_query(const char *key, const char *arg)
{
	struct table *t;
	char *spec, *value = NULL, *err = NULL;
	int r;

	spec = table_spec(arg);
	if ((t = table_open(spec, &err)) == NULL) {
		msg_error("%s", err);
		free(err);
		free(spec);
		return EXIT_TABLE_ERR;
	}
	r = table_lookup(t, key, &value, &err);
	table_close(t);
	free(spec);
	switch (r) {
	case TABLE_FOUND:
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

static int
print_entry(const char *key, const char *value, void *ctx)
{
	printf("%s %s\n", key, value);
	return 0;
}

static void
ternmap_dump(const char *arg)
{
	char *spec, *err = NULL;

	spec = table_spec(arg);
	if (table_lmdb_walk(lmdb_file(spec, "-s"), print_entry, NULL,
	    &err) < 0)
		msg_fatal("%s", err);
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

int
main(int argc, char *argv[])
{
	const char *query = NULL;
	int ch, aliases_syntax = 0, dump = 0, r = 0;

	log_init_tool("ternmap");
	while ((ch = getopt(argc, argv, "Aq:s")) != -1) {
		switch (ch) {
		case 'A':
			aliases_syntax = 1;
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
	if (argc < 1 || ((query != NULL || dump) && argc != 1) ||
	    (query != NULL && dump))
		usage();

	if (query != NULL)
		r = ternmap_query(query, argv[0]);
	else if (dump)
		ternmap_dump(argv[0]);
	else
		for (int i = 0; i < argc; i++)
			ternmap_build(argv[i], aliases_syntax);

	if (fflush(stdout) != 0 || ferror(stdout))
		msg_fatal("error writing standard output");
	return r;
}
