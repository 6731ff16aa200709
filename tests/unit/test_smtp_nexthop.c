/*
 * test_smtp_nexthop - what a next hop means to the smtp and lmtp clients
 * (smtp/smtp_nexthop.c): a domain for MX lookup, a bracketed host that
 * skips MX, ports by number or service name, IPv6 literals, LMTP's
 * unix: sockets and bare hosts, and the malformed ones refused.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "smtp.h"

static struct smtp_nexthop nh;
static char *err;

static int
parse(const char *text, int lmtp)
{
	smtp_nexthop_free(&nh);
	free(err);
	err = NULL;
	return smtp_nexthop_parse(text, lmtp, &nh, &err);
}

static void
domain_means_mx_lookup_on_port_25(void **state)
{
	assert_int_equal(parse("B.Test", 0), 0);
	assert_int_equal(nh.kind, NEXTHOP_MX);
	assert_string_equal(nh.host, "b.test");
	assert_int_equal(nh.port, 25);
	assert_false(nh.literal);
	assert_int_equal(parse("b.test.", 0), 0);
	assert_string_equal(nh.host, "b.test");
}

static void
domain_with_port_still_means_mx_lookup(void **state)
{
	assert_int_equal(parse("b.test:2525", 0), 0);
	assert_int_equal(nh.kind, NEXTHOP_MX);
	assert_string_equal(nh.host, "b.test");
	assert_int_equal(nh.port, 2525);
	assert_int_equal(parse("inet:b.test:smtp", 0), 0);
	assert_int_equal(nh.kind, NEXTHOP_MX);
	assert_int_equal(nh.port, 25);
}

static void
brackets_skip_mx_lookup(void **state)
{
	assert_int_equal(parse("[relay.b.test]", 0), 0);
	assert_int_equal(nh.kind, NEXTHOP_HOST);
	assert_string_equal(nh.host, "relay.b.test");
	assert_int_equal(nh.port, 25);
	assert_false(nh.literal);
	assert_int_equal(parse("[relay.b.test]:587", 0), 0);
	assert_int_equal(nh.kind, NEXTHOP_HOST);
	assert_int_equal(nh.port, 587);
}

static void
address_literals_are_literal(void **state)
{
	assert_int_equal(parse("[127.0.0.2]:2525", 0), 0);
	assert_int_equal(nh.kind, NEXTHOP_HOST);
	assert_true(nh.literal);
	assert_string_equal(nh.host, "127.0.0.2");
	assert_int_equal(nh.port, 2525);
	assert_int_equal(parse("[ipv6:::1]:24", 0), 0);
	assert_true(nh.literal);
	assert_string_equal(nh.host, "::1");
	assert_int_equal(parse("[2001:db8::1]", 0), 0);
	assert_true(nh.literal);
	assert_string_equal(nh.host, "2001:db8::1");
	/* A bare IPv4 address is a host, never a domain with MX. */
	assert_int_equal(parse("192.0.2.1", 0), 0);
	assert_int_equal(nh.kind, NEXTHOP_HOST);
	assert_true(nh.literal);
}

static void
lmtp_names_hosts_and_sockets(void **state)
{
	assert_int_equal(parse("unix:/run/lmtp.sock", 1), 0);
	assert_int_equal(nh.kind, NEXTHOP_UNIX);
	assert_string_equal(nh.path, "/run/lmtp.sock");
	assert_int_equal(parse("unix:private/dovecot-lmtp", 1), 0);
	assert_string_equal(nh.path, "private/dovecot-lmtp");
	assert_int_equal(parse("inet:mailbox.b.test", 1), 0);
	assert_int_equal(nh.kind, NEXTHOP_HOST);
	assert_int_equal(nh.port, 24);
	assert_int_equal(parse("inet:127.0.0.1:2424", 1), 0);
	assert_true(nh.literal);
	assert_int_equal(nh.port, 2424);
	assert_int_equal(parse("[mailbox.b.test]:2424", 1), 0);
	assert_int_equal(nh.kind, NEXTHOP_HOST);
}

static void
malformed_next_hops_are_refused(void **state)
{
	static const char *const bad[] = { "", "[", "[]", "[b.test",
	    "[b.test]x", "b.test:", "b.test:0", "b.test:65536",
	    "b.test:no-such-service", "b test", "b..test", ".b.test",
	    "unix:", "[b.test]:", "b.test:25:25", "b/test" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], 0), -1);
		assert_non_null(err);
		assert_null(nh.host);
	}
}

static int
teardown(void **state)
{
	smtp_nexthop_free(&nh);
	free(err);
	err = NULL;
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(domain_means_mx_lookup_on_port_25),
		cmocka_unit_test(domain_with_port_still_means_mx_lookup),
		cmocka_unit_test(brackets_skip_mx_lookup),
		cmocka_unit_test(address_literals_are_literal),
		cmocka_unit_test(lmtp_names_hosts_and_sockets),
		cmocka_unit_test(malformed_next_hops_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, teardown);
}
