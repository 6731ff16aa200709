/*
 * test_table - every table type answers the same lookups the same way
 * (one list of keys and answers run against texthash, lmdb, inline and
 * regexp forms of one table), and each backend's own rules hold: a
 * broken or missing table is an error and never "not found", a rebuilt
 * LMDB file is picked up, regexp and cidr syntax and errors with
 * file:line, inline braces, the text format's continuation lines and
 * aliases syntax.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "table.h"

static char tmpdir[] = "/tmp/test_table.XXXXXX";

static int
remove_entry(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw)
{
	return remove(path);
}

static int
make_tmpdir(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
remove_tmpdir(void **state)
{
	return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Write text to tmpdir/name; returns the path (caller frees). */
static char *
write_file(const char *name, const char *text)
{
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *fp;

	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	return path;
}

static char *
build_lmdb(const char *name, const char *text)
{
	char *path = write_file(name, text), *err = NULL;

	if (table_lmdb_build(path, 0, &err) != 0)
		fail_msg("build %s: %s", path, err);
	return path;
}

static struct table *
open_ok(const char *spec)
{
	struct table *t;
	char *err = NULL;

	if ((t = table_open(spec, &err)) == NULL)
		fail_msg("table_open %s: %s", spec, err);
	return t;
}

/* Look key up; want NULL means "not found". Fails naming the table. */
static void
expect(struct table *t, const char *key, const char *want)
{
	char *value = NULL, *err = NULL;
	int r;

	r = table_lookup(t, key, &value, &err);
	if (r == TABLE_ERROR)
		fail_msg("%s: lookup \"%s\": error %s", t->spec, key, err);
	if (want == NULL && r != TABLE_NOTFOUND)
		fail_msg("%s: lookup \"%s\": found \"%s\", want not found",
		    t->spec, key, value);
	if (want != NULL && r != TABLE_FOUND)
		fail_msg("%s: lookup \"%s\": not found, want \"%s\"", t->spec,
		    key, want);
	if (want != NULL && strcmp(value, want) != 0)
		fail_msg("%s: lookup \"%s\": got \"%s\", want \"%s\"", t->spec,
		    key, value, want);
	free(value);
}

/* Look key up expecting TABLE_ERROR whose text holds needle. */
static void
expect_error(struct table *t, const char *key, const char *needle)
{
	char *value = NULL, *err = NULL;
	int r;

	r = table_lookup(t, key, &value, &err);
	if (r != TABLE_ERROR)
		fail_msg("%s: lookup \"%s\": %s, want an error", t->spec, key,
		    r == TABLE_FOUND ? value : "not found");
	assert_non_null(err);
	if (strstr(err, needle) == NULL)
		fail_msg("%s: error \"%s\" does not mention \"%s\"", t->spec,
		    err, needle);
	free(err);
}

/* Open spec and expect table_open itself to fail mentioning needle. */
static void
expect_open_fails(const char *spec, const char *needle)
{
	char *err = NULL;
	struct table *t;

	t = table_open(spec, &err);
	if (t != NULL)
		fail_msg("table_open \"%s\" succeeded", spec);
	if (strstr(err, needle) == NULL)
		fail_msg("table_open \"%s\": \"%s\" does not mention \"%s\"",
		    spec, err, needle);
	free(err);
}

/*
 * The shared table: one logical content in every form.
 */
static const char shared_text[] =
    "# the shared table\n"
    "alice@example.com\talice-mailbox\n"
    "bob               bob-local\n"
    "\n"
    "@example.com      catchall\n"
    "Carol@Example.ORG carol-org\n"
    "list              a, b,\n"
    "   c\n";

static const char shared_inline[] =
    "inline:{ alice@example.com=alice-mailbox, bob=bob-local "
    "@example.com=catchall, Carol@Example.ORG=carol-org, "
    "{ list = a, b, c } }";

static const char shared_regexp[] =
    "/^alice@example\\.com$/\talice-mailbox\n"
    "/^bob$/                bob-local\n"
    "/^@example\\.com$/      catchall\n"
    "/^carol@example\\.org$/ carol-org\n"
    "/^list$/               a, b, c\n";

struct shared_case {
	const char *key;
	int	 addr;		/* 1: table_lookup_addr */
	int	 with_user;
	const char *want;	/* NULL: not found */
};

static const struct shared_case shared_cases[] = {
	/* Plain lookups, folded to lower case. */
	{ "alice@example.com", 0, 0, "alice-mailbox" },
	{ "ALICE@Example.COM", 0, 0, "alice-mailbox" },
	{ "carol@example.org", 0, 0, "carol-org" },
	{ "CAROL@EXAMPLE.ORG", 0, 0, "carol-org" },
	{ "bob", 0, 0, "bob-local" },
	{ "list", 0, 0, "a, b, c" },
	{ "@example.com", 0, 0, "catchall" },
	{ "nobody", 0, 0, NULL },
	{ "example.com", 0, 0, NULL },
	{ "bob@example.com", 0, 0, NULL },
	{ "alice", 0, 0, NULL },
	{ "", 0, 0, NULL },
	/* Address search: user@domain, user (with_user), @domain. */
	{ "alice@example.com", 1, 1, "alice-mailbox" },
	{ "Alice@EXAMPLE.com", 1, 0, "alice-mailbox" },
	{ "bob@example.com", 1, 1, "bob-local" },
	{ "bob@example.com", 1, 0, "catchall" },
	{ "zed@example.com", 1, 1, "catchall" },
	{ "ZED@Example.Com", 1, 0, "catchall" },
	{ "bob@other.net", 1, 1, "bob-local" },
	{ "bob@other.net", 1, 0, NULL },
	{ "zed@other.net", 1, 1, NULL },
	{ "carol@example.org", 1, 0, "carol-org" },
	{ "dave@example.org", 1, 1, NULL },
	{ "bob", 1, 0, "bob-local" },
};

static void
run_shared_cases(const char *spec)
{
	struct table *t = open_ok(spec);
	char *value, *err;
	int r;

	for (size_t i = 0; i < sizeof(shared_cases) / sizeof(shared_cases[0]);
	    i++) {
		const struct shared_case *c = &shared_cases[i];

		if (!c->addr) {
			expect(t, c->key, c->want);
			continue;
		}
		value = err = NULL;
		r = table_lookup_addr(t, c->key, c->with_user, &value, &err);
		if (r == TABLE_ERROR)
			fail_msg("%s: address \"%s\": error %s", spec, c->key,
			    err);
		if (c->want == NULL && r != TABLE_NOTFOUND)
			fail_msg("%s: address \"%s\" (with_user %d): found "
			    "\"%s\", want not found", spec, c->key,
			    c->with_user, value);
		if (c->want != NULL && (r != TABLE_FOUND ||
		    strcmp(value, c->want) != 0))
			fail_msg("%s: address \"%s\" (with_user %d): got "
			    "\"%s\", want \"%s\"", spec, c->key, c->with_user,
			    r == TABLE_FOUND ? value : "not found", c->want);
		free(value);
	}
	table_close(t);
}

static void
every_table_type_answers_the_shared_lookups_alike(void **state)
{
	char *text, *rx, *spec;

	text = build_lmdb("shared", shared_text);
	rx = write_file("shared.regexp", shared_regexp);

	spec = xasprintf("texthash:%s", text);
	run_shared_cases(spec);
	free(spec);
	spec = xasprintf("lmdb:%s", text);
	run_shared_cases(spec);
	free(spec);
	run_shared_cases(shared_inline);
	spec = xasprintf("regexp:%s", rx);
	run_shared_cases(spec);
	free(spec);
	free(text);
	free(rx);
}

static void
static_table_answers_every_shared_key_with_its_value(void **state)
{
	struct table *t = open_ok("static:{ relay:[mx.example.net] x }");

	for (size_t i = 0; i < sizeof(shared_cases) / sizeof(shared_cases[0]);
	    i++)
		expect(t, shared_cases[i].key, "relay:[mx.example.net] x");
	table_close(t);
	t = open_ok("static:OK");
	expect(t, "anything", "OK");
	table_close(t);
	expect_open_fails("static:{ unclosed", "missing \"}\"");
	expect_open_fails("static:{  }", "empty value");
}

static void
open_rejects_bad_specs_but_keeps_unreadable_tables(void **state)
{
	struct table *t;
	char *err = NULL;

	expect_open_fails("/etc/tern/virtual", "type:name");
	expect_open_fails("btree:/etc/tern/virtual", "unsupported table type");
	expect_open_fails("lmdb:", "missing name");
	/* A missing file is not a spec error: it opens and errors later. */
	t = table_open("lmdb:/nonexistent/tern/virtual", &err);
	assert_non_null(t);
	expect_error(t, "key", "/nonexistent/tern/virtual.lmdb");
	table_close(t);
	t = table_open("LMDB:/nonexistent/x", &err);
	assert_non_null(t);
	table_close(t);
}

static void
address_search_stops_at_an_error(void **state)
{
	struct table *t = open_ok("texthash:/nonexistent/tern/aliases");
	char *value = NULL, *err = NULL;

	assert_int_equal(table_lookup_addr(t, "bob@example.com", 1, &value,
	    &err), TABLE_ERROR);
	assert_non_null(strstr(err, "/nonexistent/tern/aliases"));
	assert_null(value);
	free(err);
	table_close(t);
}

static void
truncated_lmdb_is_an_error_not_an_empty_table(void **state)
{
	char *path, *file, *spec;
	struct table *t;
	struct stat sb;
	off_t full;

	path = build_lmdb("trunc", shared_text);
	file = xasprintf("%s.lmdb", path);
	spec = xasprintf("lmdb:%s", path);
	assert_int_equal(stat(file, &sb), 0);
	full = sb.st_size;
	assert_true(full > 8192);

	/* Truncated while a reader has it open. */
	t = open_ok(spec);
	expect(t, "bob", "bob-local");
	assert_int_equal(truncate(file, full - 4096), 0);
	expect_error(t, "bob", "truncated");
	expect_error(t, "nobody", "truncated");
	table_close(t);

	/* Truncated before the open, at several sizes. */
	{
		const off_t sizes[] = { full - 1, full - 4096, 8192, 4096, 100,
		    0 };

		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			assert_int_equal(truncate(file, sizes[i]), 0);
			t = open_ok(spec);
			expect_error(t, "bob", file);
			table_close(t);
		}
	}
	free(path);
	free(file);
	free(spec);
}

static void
foreign_or_garbage_lmdb_file_is_an_error(void **state)
{
	char *path, *file, *spec;
	struct table *t;

	path = write_file("garbage", "x y\n");
	free(write_file("garbage.lmdb", "this is not an LMDB file at all, "
	    "but it is long enough to be read as a header by mistake\n"));
	file = xasprintf("%s.lmdb", path);
	spec = xasprintf("lmdb:%s", path);
	t = open_ok(spec);
	expect_error(t, "x", file);
	table_close(t);
	free(path);
	free(file);
	free(spec);
}

static void
missing_file_errors_until_it_is_created(void **state)
{
	char *path, *spec;
	struct table *t;

	path = xasprintf("%s/later", tmpdir);

	spec = xasprintf("lmdb:%s", path);
	t = open_ok(spec);
	expect_error(t, "bob", "later.lmdb");
	expect_error(t, "bob", "later.lmdb");
	free(build_lmdb("later", "bob here\n"));
	expect(t, "bob", "here");
	expect(t, "alice", NULL);
	table_close(t);
	free(spec);

	spec = xasprintf("texthash:%s/later-text", tmpdir);
	t = open_ok(spec);
	expect_error(t, "bob", "later-text");
	free(write_file("later-text", "bob there\n"));
	expect(t, "bob", "there");
	table_close(t);
	free(spec);

	spec = xasprintf("regexp:%s/later-rx", tmpdir);
	t = open_ok(spec);
	expect_error(t, "bob", "later-rx");
	free(write_file("later-rx", "/^b/ starts-with-b\n"));
	expect(t, "bob", "starts-with-b");
	table_close(t);
	free(spec);
	free(path);
}

static void
rebuilt_lmdb_is_picked_up_by_an_open_table(void **state)
{
	char *path, *spec;
	struct table *t;

	path = build_lmdb("rebuilt", "alice first\n");
	spec = xasprintf("lmdb:%s", path);
	t = open_ok(spec);
	expect(t, "alice", "first");
	expect(t, "bob", NULL);
	free(build_lmdb("rebuilt", "alice second\nbob new\n"));
	expect(t, "alice", "second");
	expect(t, "bob", "new");
	free(build_lmdb("rebuilt", "bob newer\n"));
	expect(t, "alice", NULL);
	expect(t, "bob", "newer");
	table_close(t);
	free(path);
	free(spec);
}

struct walked {
	char	text[1024];
};

static int
collect(const char *key, const char *value, void *ctx)
{
	struct walked *w = ctx;
	size_t n = strlen(w->text);

	snprintf(w->text + n, sizeof(w->text) - n, "[%s|%s]", key, value);
	return 0;
}

static void
lmdb_build_folds_keys_keeps_first_duplicate_and_walks_in_order(void **state)
{
	struct walked w = { "" };
	char *path, *err = NULL;

	path = build_lmdb("dups", "Zed z\nALICE first\nalice second\n"
	    "Bob b\n");
	assert_int_equal(table_lmdb_walk(path, collect, &w, &err), 0);
	assert_string_equal(w.text, "[alice|first][bob|b][zed|z]");
	free(path);
}

static void
lmdb_build_failure_keeps_the_old_table_and_leaves_no_temp_file(void **state)
{
	char *path, *spec, *err = NULL, long_key[600];
	struct table *t;
	struct dirent *de;
	DIR *d;

	path = build_lmdb("keep", "alice old\n");
	free(write_file("keep", "alice new\nnovalue\n"));
	assert_int_equal(table_lmdb_build(path, 0, &err), -1);
	assert_non_null(strstr(err, "keep:2:"));
	free(err);
	err = NULL;

	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	{
		char *text = xasprintf("alice new\n%s v\n", long_key);

		free(write_file("keep", text));
		free(text);
	}
	assert_int_equal(table_lmdb_build(path, 0, &err), -1);
	assert_non_null(strstr(err, "longer than"));
	free(err);
	err = NULL;

	spec = xasprintf("lmdb:%s", path);
	t = open_ok(spec);
	expect(t, "alice", "old");
	expect(t, long_key, NULL);
	table_close(t);

	assert_non_null(d = opendir(tmpdir));
	while ((de = readdir(d)) != NULL)
		assert_null(strstr(de->d_name, ".tmp-"));
	closedir(d);

	assert_int_equal(table_lmdb_build("/nonexistent/x", 0, &err), -1);
	assert_non_null(strstr(err, "/nonexistent/x"));
	free(err);
	free(path);
	free(spec);
}

static void
lmdb_file_gets_the_text_file_mode(void **state)
{
	char *path, *file, *err = NULL;
	struct stat sb;

	path = write_file("secret", "user password\n");
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(table_lmdb_build(path, 0, &err), 0);
	file = xasprintf("%s.lmdb", path);
	assert_int_equal(stat(file, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	free(path);
	free(file);
}

static void
large_lmdb_table_builds_and_answers(void **state)
{
	char *path, *spec, key[32], want[32], *err = NULL;
	struct table *t;
	FILE *fp;

	path = xasprintf("%s/large", tmpdir);
	assert_non_null(fp = fopen(path, "w"));
	for (int i = 0; i < 200000; i++)
		fprintf(fp, "k%x v%d\n", i, i % 10);
	assert_int_equal(fclose(fp), 0);
	if (table_lmdb_build(path, 0, &err) != 0)
		fail_msg("%s", err);
	spec = xasprintf("lmdb:%s", path);
	t = open_ok(spec);
	for (int i = 0; i < 200000; i += 997) {
		snprintf(key, sizeof(key), "K%X", i);
		snprintf(want, sizeof(want), "v%d", i % 10);
		expect(t, key, want);
	}
	expect(t, "k30d40", NULL);
	table_close(t);
	free(path);
	free(spec);
}

static void
regexp_substitutes_groups(void **state)
{
	char *path, *spec;
	struct table *t;

	path = write_file("subst.regexp",
	    "/^(.*)@(.*)\\.example$/   ${2}-$1 costs $$5\n"
	    "/^([a-z]+)-(x)?([0-9]+)$/ [$1][$2][$3]\n"
	    "#/^never/ comment\n"
	    "/^Mixed$/                 $$\n");
	spec = xasprintf("regexp:%s", path);
	t = open_ok(spec);
	expect(t, "joe@sales.example", "sales-joe costs $5");
	/* Keys are given as is: the result keeps their case. */
	expect(t, "Joe@Sales.example", "Sales-Joe costs $5");
	expect(t, "abc-42", "[abc][][42]");
	expect(t, "abc-x42", "[abc][x][42]");
	expect(t, "mixed", "$");
	expect(t, "joe@sales.example.org", NULL);
	table_close(t);
	free(path);
	free(spec);
}

static void
regexp_if_endif_negation_and_flags(void **state)
{
	char *path, *spec;
	struct table *t;

	path = write_file("ifs.regexp",
	    "if /@example\\.com$/\n"
	    "  # comment lines inside are fine\n"
	    "if !/^postmaster@/\n"
	    "/^(abuse|spam)@/   REJECT $1 is not here\n"
	    "endif\n"
	    "/^postmaster@/     OK\n"
	    "endif\n"
	    "/^CaseSensitive$/i exact-case\n"
	    "/^a\\/b$/          slash\n"
	    "%^100\\%$%          percent-delimited\n"
	    "!/\\./             no-dot\n");
	spec = xasprintf("regexp:%s", path);
	t = open_ok(spec);
	expect(t, "abuse@example.com", "REJECT abuse is not here");
	expect(t, "SPAM@EXAMPLE.COM", "REJECT SPAM is not here");
	expect(t, "postmaster@example.com", "OK");
	expect(t, "abuse@example.org", NULL);
	expect(t, "localhost", "no-dot");
	expect(t, "CaseSensitive", "exact-case");
	expect(t, "casesensitive", "no-dot");
	expect(t, "a/b", "slash");
	expect(t, "100%", "percent-delimited");
	table_close(t);
	free(path);
	free(spec);

	path = write_file("first.regexp", "/x/ first\n/x/ second\n");
	spec = xasprintf("regexp:%s", path);
	t = open_ok(spec);
	expect(t, "x", "first");
	table_close(t);
	free(path);
	free(spec);
}

/* A regexp file with one bad line: error naming file:line and why. */
static void
expect_regexp_error(const char *text, const char *where, const char *why)
{
	char *path, *spec, *needle;
	struct table *t;

	path = write_file("bad.regexp", text);
	spec = xasprintf("regexp:%s", path);
	needle = xasprintf("%s:%s", path, where);
	t = open_ok(spec);
	expect_error(t, "anything", needle);
	expect_error(t, "anything", why);
	table_close(t);
	free(path);
	free(spec);
	free(needle);
}

static void
regexp_bad_lines_are_errors_with_file_and_line(void **state)
{
	expect_regexp_error("/ok/ fine\n\n/a(b/ broken\n", "3:",
	    "bad pattern");
	expect_regexp_error("/ok/ fine\n/(a)/ $2\n", "2:", "$2");
	expect_regexp_error("/ok/ fine\n/a/q result\n", "2:", "unknown flag");
	expect_regexp_error("/a/ $x\n", "1:", "$");
	expect_regexp_error("!/(a)/ $1\n", "1:", "negated");
	expect_regexp_error("/a/\n", "1:", "missing result");
	expect_regexp_error("/unterminated result\n", "1:", "closing");
	expect_regexp_error("plain text\n", "1:", "expected /pattern/");
	expect_regexp_error("/a/ b\nendif\n", "2:", "endif without if");
	expect_regexp_error("if /a/\nif /b/\n/c/ d\nendif\n", "1:",
	    "if without endif");
	expect_regexp_error("if /a/ result\nendif\n", "1:", "after the if");
	expect_regexp_error("  /a/ b\n", "1:", "continues nothing");
}

static void
cidr_matches_prefixes_first_match_wins(void **state)
{
	char *path, *spec;
	struct table *t;

	path = write_file("clients.cidr",
	    "# networks\n"
	    "192.0.2.7          one-host\n"
	    "192.0.2.0/24       doc-net\n"
	    "10.0.0.0/8         ten\n"
	    "10.1.0.0/16        never-reached\n"
	    "172.16.0.0/12      private\n"
	    "2001:db8::1        v6-host\n"
	    "[2001:db8:1::]/48  v6-bracket\n"
	    "2001:db8::/32      v6-doc\n"
	    "0.0.0.0/0          any-v4\n");
	spec = xasprintf("cidr:%s", path);
	t = open_ok(spec);
	expect(t, "192.0.2.7", "one-host");
	expect(t, "192.0.2.8", "doc-net");
	expect(t, "10.1.2.3", "ten");
	expect(t, "172.31.255.255", "private");
	expect(t, "172.32.0.1", "any-v4");
	expect(t, "2001:db8::1", "v6-host");
	expect(t, "2001:DB8::2", "v6-doc");
	expect(t, "2001:db8:1:ffff::9", "v6-bracket");
	expect(t, "2001:db9::1", NULL);
	expect(t, "not-an-address", NULL);
	expect(t, "", NULL);
	table_close(t);
	free(path);
	free(spec);
}

static void
expect_cidr_error(const char *text, const char *where, const char *why)
{
	char *path, *spec, *needle;
	struct table *t;

	path = write_file("bad.cidr", text);
	spec = xasprintf("cidr:%s", path);
	needle = xasprintf("%s:%s", path, where);
	t = open_ok(spec);
	expect_error(t, "192.0.2.1", needle);
	expect_error(t, "192.0.2.1", why);
	table_close(t);
	free(path);
	free(spec);
	free(needle);
}

static void
cidr_bad_lines_are_errors_with_file_and_line(void **state)
{
	expect_cidr_error("10.0.0.0/8 ok\n192.0.2.300/24 bad\n", "2:",
	    "not an IPv4 or IPv6");
	expect_cidr_error("10.0.0.0/33 bad\n", "1:", "prefix");
	expect_cidr_error("2001:db8::/129 bad\n", "1:", "prefix");
	expect_cidr_error("10.0.0.0/-1 bad\n", "1:", "prefix");
	expect_cidr_error("10.0.0.0/8x bad\n", "1:", "prefix");
	expect_cidr_error("# c\n10.1.2.3/8 typo\n", "2:", "bits set");
	expect_cidr_error("10.0.0.0/8\n", "1:", "missing result");
}

static void
inline_entries_and_errors(void **state)
{
	struct table *t;

	t = open_ok("inline:{ a=1, b=2,c=3 d=4,,{ e = five, with commas }, "
	    "{ f=g=h } { Key With Spaces = { nested } }, A=dup }");
	expect(t, "a", "1");
	expect(t, "B", "2");
	expect(t, "c", "3");
	expect(t, "d", "4");
	expect(t, "e", "five, with commas");
	expect(t, "f", "g=h");
	expect(t, "key with spaces", "{ nested }");
	expect(t, "g", NULL);
	table_close(t);
	t = open_ok("inline:{}");
	expect(t, "a", NULL);
	table_close(t);
	expect_open_fails("inline:a=1", "expected");
	expect_open_fails("inline:{ a=1", "expected");
	expect_open_fails("inline:{ { a=1 }", "missing \"}\"");
	expect_open_fails("inline:{ a=1, b }", "missing \"=\"");
	expect_open_fails("inline:{ a=1, =2 }", "empty key");
	expect_open_fails("inline:{ a= }", "empty value");
	expect_open_fails("inline:{ a=1} }", "brace");
}

static int
stop_at_second(const char *key, const char *value, void *ctx)
{
	int *count = ctx;

	return ++*count == 2 ? 42 : 0;
}

static void
text_walk_joins_continuations_and_skips_comments(void **state)
{
	struct walked w = { "" };
	char *path, *err = NULL;
	int count = 0;

	path = write_file("walk",
	    "# comment\n"
	    "Key1   value one  \r\n"
	    "key2\tfirst,\n"
	    "  # a comment does not end the entry\n"
	    "\n"
	    "\t second ,\n"
	    "    third\n"
	    "key3 has # no comment\n"
	    "last no-newline");
	assert_int_equal(table_text_walk(path, 0, collect, &w, &err), 0);
	assert_string_equal(w.text, "[Key1|value one][key2|first, second , "
	    "third][key3|has # no comment][last|no-newline]");
	assert_int_equal(table_text_walk(path, 0, stop_at_second, &count,
	    &err), 42);
	assert_int_equal(count, 2);
	free(path);
}

static void
text_walk_reads_aliases_syntax(void **state)
{
	struct walked w = { "" };
	char *path, *err = NULL;

	path = write_file("aliases",
	    "postmaster: root\n"
	    "root:\tadmin@example.com,\n"
	    "\tother@example.com\n"
	    "\"with space\": x\n"
	    "\"with:colon\" : y\n"
	    "\"q\\\"uote\": z\n"
	    "pipe: \"|/usr/bin/prog arg\"\n"
	    "spaced name : w\n");
	assert_int_equal(table_text_walk(path, 1, collect, &w, &err), 0);
	assert_string_equal(w.text, "[postmaster|root]"
	    "[root|admin@example.com, other@example.com]"
	    "[with space|x][with:colon|y][q\"uote|z]"
	    "[pipe|\"|/usr/bin/prog arg\"][spaced name|w]");
	free(path);
}

static void
expect_walk_error(const char *text, int aliases, const char *needle)
{
	struct walked w = { "" };
	char *path, *err = NULL, *full;

	path = write_file("bad-walk", text);
	assert_int_equal(table_text_walk(path, aliases, collect, &w, &err),
	    -1);
	full = xasprintf("%s:%s", path, needle);
	if (err == NULL || strstr(err, full) == NULL)
		fail_msg("error \"%s\" does not mention \"%s\"", err, full);
	free(err);
	free(full);
	free(path);
}

static void
text_walk_reports_malformed_lines_with_file_and_line(void **state)
{
	char *err = NULL;
	struct walked w = { "" };

	expect_walk_error("a b\nlonely\n", 0, "2: key \"lonely\" has no value");
	expect_walk_error("  indented first\n", 0, "1: line starts with white");
	expect_walk_error("a: b\nno colon here\n", 1, "2: expected");
	expect_walk_error("a: b\n\n: empty\n", 1, "3: empty name");
	expect_walk_error("\"open: x\n", 1, "1: missing closing quote");
	expect_walk_error("\"a\" x\n", 1, "1: expected \":\"");
	expect_walk_error("a:\n", 1, "1: name \"a\" has no value");
	{
		char *path = xasprintf("%s/nul", tmpdir);
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		assert_int_equal(fwrite("a b\nc\0d\n", 1, 8, fp), 8);
		assert_int_equal(fclose(fp), 0);
		assert_int_equal(table_text_walk(path, 0, collect, &w, &err),
		    -1);
		assert_non_null(strstr(err, "nul:2: NUL byte"));
		free(err);
		err = NULL;
		free(path);
	}
	assert_int_equal(table_text_walk("/nonexistent/x", 0, collect, &w,
	    &err), -1);
	assert_non_null(strstr(err, "cannot open /nonexistent/x"));
	free(err);
}

static void
aliases_lmdb_build_uses_colon_syntax(void **state)
{
	char *path, *spec, *err = NULL;
	struct table *t;

	path = write_file("aliases-db", "Postmaster: root\n"
	    "root: admin@example.com,\n  other@example.com\n");
	assert_int_equal(table_lmdb_build(path, 1, &err), 0);
	spec = xasprintf("lmdb:%s", path);
	t = open_ok(spec);
	expect(t, "postmaster", "root");
	expect(t, "root", "admin@example.com, other@example.com");
	expect(t, "postmaster:", NULL);
	table_close(t);
	free(path);
	free(spec);
}

/* Walk a table opened from spec into w, expecting success. */
static void
walk_ok(const char *spec, struct walked *w)
{
	struct table *t = open_ok(spec);
	char *err = NULL;

	w->text[0] = '\0';
	if (table_walk(t, collect, w, &err) != 0)
		fail_msg("walk %s: %s", spec, err);
	table_close(t);
}

static void
table_walk_lists_keyed_tables_and_refuses_pattern_tables(void **state)
{
	struct walked w;
	struct table *t;
	char *path, *spec, *err = NULL;
	const char *refused[] = { "static:", "regexp:", "cidr:", "unix:" };

	path = build_lmdb("walk", "Zed z\nalice a\nALICE again\n");
	spec = xasprintf("lmdb:%s", path);
	walk_ok(spec, &w);
	assert_string_equal(w.text, "[alice|a][zed|z]");
	free(spec);
	spec = xasprintf("texthash:%s", path);
	walk_ok(spec, &w);
	assert_string_equal(w.text, "[alice|a][zed|z]");
	free(spec);
	walk_ok("inline:{ Zed=z, alice=a, ALICE=again }", &w);
	assert_string_equal(w.text, "[zed|z][alice|a]");

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		/* The file is no regexp or cidr table: no matter here. */
		spec = xasprintf("%s%s", refused[i], i == 3 ?
		    "passwd.byname" : path);
		t = open_ok(spec);
		assert_int_equal(table_walk(t, collect, &w, &err), -1);
		if (strstr(err, "cannot be listed") == NULL)
			fail_msg("%s: %s", spec, err);
		free(err);
		err = NULL;
		table_close(t);
		free(spec);
	}

	/* A table that cannot be read is an error, not an empty list. */
	t = open_ok("lmdb:/nonexistent/tern/walk");
	assert_int_equal(table_walk(t, collect, &w, &err), -1);
	assert_non_null(strstr(err, "/nonexistent/tern/walk.lmdb"));
	free(err);
	table_close(t);
	free(path);
}

static void
lmdb_update_adds_replaces_and_deletes_in_one_replacement(void **state)
{
	struct walked w = { "" };
	struct stat before, after;
	struct table *t;
	char *path, *file, *spec, *err = NULL;
	char *del[] = { "BOB", "nobody", "bob", NULL };
	char *keys[] = { "Carol", "alice", "carol" };
	char *values[] = { "c", "A2", "second carol" };
	size_t n;

	path = build_lmdb("update", "alice a\nbob b\ndave d\n");
	assert_int_equal(chmod(path, 0600), 0);
	free(build_lmdb("update", "alice a\nbob b\ndave d\n"));
	file = xasprintf("%s.lmdb", path);
	spec = xasprintf("lmdb:%s", path);
	t = open_ok(spec);
	expect(t, "bob", "b");
	assert_int_equal(stat(file, &before), 0);

	if (table_lmdb_update(path, del, keys, values, 3, &n, &err) != 0)
		fail_msg("update: %s", err);
	assert_int_equal(n, 1);
	assert_int_equal(table_lmdb_walk(path, collect, &w, &err), 0);
	/* The first of two new entries for a key wins, as in a build. */
	assert_string_equal(w.text, "[alice|A2][carol|c][dave|d]");
	/* A new file took the old one's place, with its mode. */
	assert_int_equal(stat(file, &after), 0);
	assert_true(after.st_ino != before.st_ino);
	assert_int_equal(after.st_mode & 07777, 0600);
	/* A table a server holds open sees the change. */
	expect(t, "bob", NULL);
	expect(t, "alice", "A2");
	table_close(t);
	free(file);
	free(spec);
	free(path);
}

static void
lmdb_update_with_nothing_to_do_leaves_the_file_alone(void **state)
{
	struct stat before, after;
	char *path, *file, *err = NULL;
	char *del[] = { "nobody", NULL };
	size_t n = 99;

	path = build_lmdb("same", "alice a\n");
	file = xasprintf("%s.lmdb", path);
	assert_int_equal(stat(file, &before), 0);
	assert_int_equal(table_lmdb_update(path, del, NULL, NULL, 0, &n,
	    &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(stat(file, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	free(file);
	free(path);
}

static void
lmdb_update_never_takes_a_broken_or_missing_table_as_empty(void **state)
{
	struct walked w = { "" };
	struct stat before, after;
	char *path, *file, *err = NULL;
	char *del[] = { "alice", NULL };
	char *keys[] = { "new" }, *values[] = { "entry" };
	size_t n;

	/* Deleting from a table that is not there: an error. */
	path = xasprintf("%s/absent", tmpdir);
	assert_int_equal(table_lmdb_update(path, del, NULL, NULL, 0, &n,
	    &err), -1);
	assert_non_null(strstr(err, "absent.lmdb"));
	free(err);
	err = NULL;
	/* Adding to it starts one. */
	assert_int_equal(table_lmdb_update(path, NULL, keys, values, 1, NULL,
	    &err), 0);
	assert_int_equal(table_lmdb_walk(path, collect, &w, &err), 0);
	assert_string_equal(w.text, "[new|entry]");
	free(path);

	/* A truncated table stays as it is: no entry is silently lost. */
	path = build_lmdb("broken", shared_text);
	file = xasprintf("%s.lmdb", path);
	assert_int_equal(stat(file, &before), 0);
	assert_int_equal(truncate(file, before.st_size - 4096), 0);
	assert_int_equal(stat(file, &before), 0);
	assert_int_equal(table_lmdb_update(path, NULL, keys, values, 1, NULL,
	    &err), -1);
	assert_non_null(strstr(err, "truncated"));
	free(err);
	assert_int_equal(stat(file, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_size, before.st_size);
	free(file);
	free(path);
}

static void
text_walk_fp_reads_a_stream_and_names_it_in_errors(void **state)
{
	struct walked w = { "" };
	char *err = NULL;
	FILE *fp;

	assert_non_null(fp = tmpfile());
	fputs("# comment\nKey value\n  continued\nalone\n", fp);
	rewind(fp);
	assert_int_equal(table_text_walk_fp(fp, "stdin", 0, collect, &w,
	    &err), -1);
	assert_string_equal(w.text, "[Key|value continued]");
	assert_string_equal(err, "stdin:4: key \"alone\" has no value");
	free(err);
	fclose(fp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_table_type_answers_the_shared_lookups_alike),
		cmocka_unit_test(static_table_answers_every_shared_key_with_its_value),
		cmocka_unit_test(open_rejects_bad_specs_but_keeps_unreadable_tables),
		cmocka_unit_test(address_search_stops_at_an_error),
		cmocka_unit_test(truncated_lmdb_is_an_error_not_an_empty_table),
		cmocka_unit_test(foreign_or_garbage_lmdb_file_is_an_error),
		cmocka_unit_test(missing_file_errors_until_it_is_created),
		cmocka_unit_test(rebuilt_lmdb_is_picked_up_by_an_open_table),
		cmocka_unit_test(lmdb_build_folds_keys_keeps_first_duplicate_and_walks_in_order),
		cmocka_unit_test(lmdb_build_failure_keeps_the_old_table_and_leaves_no_temp_file),
		cmocka_unit_test(lmdb_file_gets_the_text_file_mode),
		cmocka_unit_test(large_lmdb_table_builds_and_answers),
		cmocka_unit_test(regexp_substitutes_groups),
		cmocka_unit_test(regexp_if_endif_negation_and_flags),
		cmocka_unit_test(regexp_bad_lines_are_errors_with_file_and_line),
		cmocka_unit_test(cidr_matches_prefixes_first_match_wins),
		cmocka_unit_test(cidr_bad_lines_are_errors_with_file_and_line),
		cmocka_unit_test(inline_entries_and_errors),
		cmocka_unit_test(text_walk_joins_continuations_and_skips_comments),
		cmocka_unit_test(text_walk_reads_aliases_syntax),
		cmocka_unit_test(text_walk_reports_malformed_lines_with_file_and_line),
		cmocka_unit_test(aliases_lmdb_build_uses_colon_syntax),
		cmocka_unit_test(table_walk_lists_keyed_tables_and_refuses_pattern_tables),
		cmocka_unit_test(lmdb_update_adds_replaces_and_deletes_in_one_replacement),
		cmocka_unit_test(lmdb_update_with_nothing_to_do_leaves_the_file_alone),
		cmocka_unit_test(lmdb_update_never_takes_a_broken_or_missing_table_as_empty),
		cmocka_unit_test(text_walk_fp_reads_a_stream_and_names_it_in_errors),
	};

	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
