/*
 * test_header - the header section, field names and address lists as
 * sendmail -t and pickup read them.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "header.h"
#include "strv.h"

static size_t
section(const char *msg, size_t *body)
{
	return header_section_end(msg, strlen(msg), body);
}

static void
section_ends_at_the_empty_line_and_body_follows_it(void **state)
{
	const char *m = "From: a@b\nSubject: x\n  folded\n\nbody\n";
	size_t body, end = section(m, &body);

	assert_int_equal(end, strlen("From: a@b\nSubject: x\n  folded\n"));
	assert_string_equal(m + body, "body\n");
}

static void
a_line_that_is_not_a_field_starts_the_body(void **state)
{
	size_t body, end;

	end = section("Subject: x\nhello world\n", &body);
	assert_int_equal(end, strlen("Subject: x\n"));
	assert_int_equal(body, end);
	/* No header at all. */
	end = section("hello\n", &body);
	assert_int_equal(end, 0);
	assert_int_equal(body, 0);
	/* White space first: not a continuation of anything. */
	end = section(" indented\n", &body);
	assert_int_equal(end, 0);
	/* A space inside the name is not a field. */
	end = section("Bad name: x\n", &body);
	assert_int_equal(end, 0);
}

static void
headers_only_message_ends_at_its_length(void **state)
{
	const char *m = "Subject: only\nTo: a@b";
	size_t body;

	assert_int_equal(section(m, &body), strlen(m));
	assert_int_equal(body, strlen(m));
}

static void
crlf_empty_line_also_ends_the_section(void **state)
{
	const char *m = "A: 1\r\n\r\nbody";
	size_t body;

	assert_int_equal(section(m, &body), 6);
	assert_string_equal(m + body, "body");
}

static void
fields_come_out_with_their_continuations(void **state)
{
	const char *h = "To: a@b,\n c@d\nBcc: e@f\nSubject  : s\n";
	const char *f;
	size_t off = 0, flen;

	assert_true(header_next(h, strlen(h), &off, &f, &flen));
	assert_int_equal(flen, strlen("To: a@b,\n c@d\n"));
	assert_true(header_is(f, flen, "to"));
	assert_false(header_is(f, flen, "t"));
	assert_true(header_next(h, strlen(h), &off, &f, &flen));
	assert_true(header_is(f, flen, "BCC"));
	assert_false(header_is(f, flen, "Bc"));
	assert_true(header_next(h, strlen(h), &off, &f, &flen));
	assert_true(header_is(f, flen, "Subject"));
	assert_false(header_next(h, strlen(h), &off, &f, &flen));
}

static void
value_is_unfolded_and_trimmed(void **state)
{
	const char *f = "To:  a@b,\n\tc@d  \n";
	char *v = header_value(f, strlen(f));

	assert_string_equal(v, "a@b,\tc@d");
	free(v);
}

/* The addresses header_addresses() finds in s, joined by '|'. */
static char *
addrs(const char *s)
{
	char **list = NULL, *out;
	size_t n, len = 1;

	n = header_addresses(s, &list);
	assert_int_equal(n, strv_len(list));
	for (size_t i = 0; i < n; i++)
		len += strlen(list[i]) + 1;
	out = calloc(1, len);
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			strcat(out, "|");
		strcat(out, list[i]);
	}
	strv_free(list);
	return out;
}

#define ASSERT_ADDRS(in, want) do {					\
	char *got_ = addrs(in);						\
	assert_string_equal(got_, want);				\
	free(got_);							\
} while (0)

static void
address_lists_in_their_usual_shapes(void **state)
{
	ASSERT_ADDRS("a@b", "a@b");
	ASSERT_ADDRS("a@b, c@d", "a@b|c@d");
	ASSERT_ADDRS("Alice <alice@example.org>", "alice@example.org");
	ASSERT_ADDRS("\"Smith, John\" <js@x.test>, bob@y.test",
	    "js@x.test|bob@y.test");
	ASSERT_ADDRS("bob@y.test (Bob, the builder)", "bob@y.test");
	ASSERT_ADDRS("undisclosed-recipients:;", "");
	ASSERT_ADDRS("team: a@b, C <c@d>; e@f", "a@b|c@d|e@f");
	ASSERT_ADDRS("<@relay.test,@other.test:u@dest.test>", "u@dest.test");
	ASSERT_ADDRS("", "");
	ASSERT_ADDRS(" , ,", "");
	ASSERT_ADDRS("<>", "");
}

static void
address_lists_with_odd_but_readable_syntax(void **state)
{
	/* Spaces around '@' and '.' are CFWS in the obsolete syntax. */
	ASSERT_ADDRS("john . doe @ example . org", "john.doe@example.org");
	/* A bare name before the address, without angle brackets. */
	ASSERT_ADDRS("Joe joe@x.test", "joe@x.test");
	/* Folded over lines. */
	ASSERT_ADDRS("a@b,\n c@d", "a@b|c@d");
	/* A quoted local part keeps only the quoting it needs. */
	ASSERT_ADDRS("\"john doe\"@x.test", "\"john doe\"@x.test");
	ASSERT_ADDRS("\"plain\"@x.test", "plain@x.test");
	/* A local user without a domain stays as it is. */
	ASSERT_ADDRS("bob", "bob");
	/* Nested comment with an escaped parenthesis. */
	ASSERT_ADDRS("a@b (x (y\\) z) w), c@d", "a@b|c@d");
}

static void
date_has_rfc5322_shape(void **state)
{
	char out[64];

	setenv("TZ", "UTC", 1);
	header_date(1606145891, out, sizeof(out));
	assert_string_equal(out, "Mon, 23 Nov 2020 15:38:11 +0000 (UTC)");
}

static void
phrase_is_quoted_only_when_needed(void **state)
{
	char *p;

	p = header_phrase("Alice Example");
	assert_string_equal(p, "Alice Example");
	free(p);
	p = header_phrase("Smith, John \"JJ\"");
	assert_string_equal(p, "\"Smith, John \\\"JJ\\\"\"");
	free(p);
	p = header_phrase("Evil\nBcc: x@y");
	assert_string_equal(p, "\"EvilBcc: x@y\"");
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(section_ends_at_the_empty_line_and_body_follows_it),
		cmocka_unit_test(a_line_that_is_not_a_field_starts_the_body),
		cmocka_unit_test(headers_only_message_ends_at_its_length),
		cmocka_unit_test(crlf_empty_line_also_ends_the_section),
		cmocka_unit_test(fields_come_out_with_their_continuations),
		cmocka_unit_test(value_is_unfolded_and_trimmed),
		cmocka_unit_test(address_lists_in_their_usual_shapes),
		cmocka_unit_test(address_lists_with_odd_but_readable_syntax),
		cmocka_unit_test(date_has_rfc5322_shape),
		cmocka_unit_test(phrase_is_quoted_only_when_needed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
