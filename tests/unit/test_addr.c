/*
 * test_addr - RFC 5321 path parsing is strict and gives one canonical
 * form; splitting, quoting and the syntax predicates agree with it.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "addr.h"

/* Parse s with flags; return the canonical address or NULL. */
static char *
parse(const char *s, int flags, const char **rest)
{
	const char *why = NULL, *end = NULL;
	char *a = NULL;

	if (addr_parse_path(s, flags, &a, &end, &why) < 0) {
		assert_non_null(why);
		assert_null(a);
		return NULL;
	}
	if (rest != NULL)
		*rest = end;
	return a;
}

static void
plain_path_parses_and_end_points_past_it(void **state)
{
	const char *rest;
	char *a = parse("<user@example.com> SIZE=10", 0, &rest);

	assert_string_equal(a, "user@example.com");
	assert_string_equal(rest, " SIZE=10");
	free(a);
}

static void
null_path_only_where_allowed(void **state)
{
	char *a = parse("<>", ADDR_NULL_OK, NULL);

	assert_string_equal(a, "");
	free(a);
	assert_null(parse("<>", 0, NULL));
}

static void
postmaster_without_domain_only_where_allowed(void **state)
{
	char *a = parse("<PostMaster>", ADDR_POSTMASTER_OK, NULL);

	assert_string_equal(a, "PostMaster");
	free(a);
	assert_null(parse("<postmaster>", 0, NULL));
	assert_null(parse("<joe>", ADDR_POSTMASTER_OK, NULL));
	assert_null(parse("<\"postmaster\">", ADDR_POSTMASTER_OK, NULL));
}

static void
source_route_is_checked_and_dropped(void **state)
{
	char *a = parse("<@relay.example,@[192.0.2.1]:joe@example.com>", 0,
	    NULL);

	assert_string_equal(a, "joe@example.com");
	free(a);
	assert_null(parse("<@relay.example joe@example.com>", 0, NULL));
	assert_null(parse("<@:joe@example.com>", 0, NULL));
	assert_null(parse("<@a,b:joe@example.com>", 0, NULL));
}

static void
needless_quotes_are_removed_needed_ones_kept(void **state)
{
	char *a = parse("<\"joe\"@example.com>", 0, NULL);

	assert_string_equal(a, "joe@example.com");
	free(a);
	a = parse("<\"joe smith\"@example.com>", 0, NULL);
	assert_string_equal(a, "\"joe smith\"@example.com");
	free(a);
	a = parse("<\"a\\\"b@c\"@example.com>", 0, NULL);
	assert_string_equal(a, "\"a\\\"b@c\"@example.com");
	free(a);
}

static void
bad_syntax_is_refused(void **state)
{
	static const char *bad[] = {
		"user@example.com",		/* no brackets */
		"<user@example.com",		/* no closing bracket */
		"<user>",			/* no domain */
		"<@example.com>",		/* route without mailbox */
		"<a..b@example.com>",		/* empty atom */
		"<.a@example.com>",
		"<a.@example.com>",
		"<a b@example.com>",		/* space in dot-string */
		"<a@b@example.com>",		/* second @ unquoted */
		"<a@-example.com>",		/* label starts with - */
		"<a@example-.com>",		/* label ends with - */
		"<a@example..com>",
		"<a@example.com.>",		/* trailing dot */
		"<a@exa_mple.com>",
		"<a@[300.1.1.1]>",		/* bad literal */
		"<a@[192.0.2.1>",
		"<a@[IPv6:zz::1]>",
		"<\"unterminated@example.com>",
		"<\"tab\there\"@example.com>",	/* control byte quoted */
		"<a\x01@example.com>",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (parse(bad[i], ADDR_NULL_OK | ADDR_POSTMASTER_OK |
		    ADDR_UTF8_OK, NULL) != NULL)
			fail_msg("accepted %s", bad[i]);
}

static void
address_literals_are_accepted(void **state)
{
	char *a = parse("<a@[192.0.2.1]>", 0, NULL);

	assert_string_equal(a, "a@[192.0.2.1]");
	free(a);
	a = parse("<a@[IPv6:2001:db8::1]>", 0, NULL);
	assert_string_equal(a, "a@[IPv6:2001:db8::1]");
	free(a);
}

static void
utf8_needs_the_flag_and_must_be_well_formed(void **state)
{
	char *a = parse("<j\xc3\xb6rg@b\xc3\xbc" "cher.example>", ADDR_UTF8_OK,
	    NULL);

	assert_string_equal(a, "j\xc3\xb6rg@b\xc3\xbc" "cher.example");
	free(a);
	assert_null(parse("<j\xc3\xb6rg@example.com>", 0, NULL));
	assert_null(parse("<joe@b\xc3\xbc" "cher.example>", 0, NULL));
	/* Overlong '/' and a lone continuation byte. */
	assert_null(parse("<a\xc0\xaf@example.com>", ADDR_UTF8_OK, NULL));
	assert_null(parse("<a\x80@example.com>", ADDR_UTF8_OK, NULL));
}

static void
utf8_check_rejects_surrogates_and_truncation(void **state)
{
	assert_true(addr_utf8_valid("\xe2\x82\xac", 3));
	assert_true(addr_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_false(addr_utf8_valid("\xed\xa0\x80", 3));	/* U+D800 */
	assert_false(addr_utf8_valid("\xe2\x82", 2));
	assert_false(addr_utf8_valid("\xf4\x90\x80\x80", 4));	/* > 10FFFF */
	assert_false(addr_utf8_valid("\xe0\x80\xaf", 3));	/* overlong */
}

static void
domain_length_limits_hold(void **state)
{
	char label[70], name[300];

	memset(label, 'a', 63);
	label[63] = '\0';
	assert_true(addr_domain_valid(label, 0));
	label[63] = 'a';
	label[64] = '\0';
	assert_false(addr_domain_valid(label, 0));
	/* 4 labels of 63 plus dots: 255 bytes is fine, 257 is not. */
	memset(name, 'b', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[254] = '\0';
	assert_true(addr_domain_valid(name, 0));
	name[254] = 'b';
	name[255] = '.';
	name[256] = 'c';
	name[257] = '\0';
	assert_false(addr_domain_valid(name, 0));
}

static void
split_unquotes_and_join_requotes(void **state)
{
	char *l, *d, *j;

	addr_split("\"joe smith\"@Example.COM", &l, &d);
	assert_string_equal(l, "joe smith");
	assert_string_equal(d, "Example.COM");
	j = addr_join(l, d);
	assert_string_equal(j, "\"joe smith\"@Example.COM");
	free(l);
	free(d);
	free(j);
	addr_split("\"a@b\"@c", &l, &d);
	assert_string_equal(l, "a@b");
	assert_string_equal(d, "c");
	free(l);
	free(d);
	addr_split("postmaster", &l, &d);
	assert_string_equal(l, "postmaster");
	assert_string_equal(d, "");
	free(l);
	free(d);
}

static void
lowercase_touches_only_ascii(void **state)
{
	char s[] = "AbC\xc3\x84@EXAMPLE";

	assert_string_equal(addr_lowercase(s), "abc\xc3\x84@example");
	assert_true(addr_is_ascii("abc"));
	assert_false(addr_is_ascii("\xc3\x84"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_path_parses_and_end_points_past_it),
		cmocka_unit_test(null_path_only_where_allowed),
		cmocka_unit_test(postmaster_without_domain_only_where_allowed),
		cmocka_unit_test(source_route_is_checked_and_dropped),
		cmocka_unit_test(needless_quotes_are_removed_needed_ones_kept),
		cmocka_unit_test(bad_syntax_is_refused),
		cmocka_unit_test(address_literals_are_accepted),
		cmocka_unit_test(utf8_needs_the_flag_and_must_be_well_formed),
		cmocka_unit_test(utf8_check_rejects_surrogates_and_truncation),
		cmocka_unit_test(domain_length_limits_hold),
		cmocka_unit_test(split_unquotes_and_join_requotes),
		cmocka_unit_test(lowercase_touches_only_ascii),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
