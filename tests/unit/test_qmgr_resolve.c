/*
 * test_qmgr_resolve - where qmgr sends each recipient
 * (qmgr/qmgr_resolve.c): local domains and address literals to the local
 * transport, virtual alias rewriting with its limits, virtual alias and
 * mailbox domains, and relay mail deferred until the smtp transport
 * exists. Tables are inline: ones set with config_set().
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "config.h"
#include "qmgr.h"

static char dir[] = "/tmp/test_qmgr_resolve.XXXXXX";
static char path[sizeof(dir) + 16];

static int
setup(void **state)
{
	FILE *fp;
	char *err = NULL;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/main.cf", dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs("myhostname = mx.example.test\n"
	    "mydomain = example.test\n"
	    "mydestination = $myhostname, localhost, example.test\n"
	    "inet_interfaces = 127.0.0.1, [::1]\n", fp);
	fclose(fp);
	if (config_load(dir, &err) < 0) {
		fprintf(stderr, "config_load: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	qmgr_resolve_free();
	config_reset();
	unlink(path);
	rmdir(dir);
	return 0;
}

/* Set parameters (name, value, ..., NULL) and re-read them. */
static void
set(const char *name, ...)
{
	va_list ap;
	const char *value;
	char *err = NULL;

	va_start(ap, name);
	for (; name != NULL; name = va_arg(ap, const char *)) {
		value = va_arg(ap, const char *);
		if (config_set(name, value, &err) < 0)
			fail_msg("config_set %s: %s", name, err);
	}
	va_end(ap);
	qmgr_resolve_init();
}

/* Reset what the tests change back to the defaults of setup(). */
static int
reset(void **state)
{
	set("virtual_alias_maps", "", "virtual_alias_domains",
	    "$virtual_alias_maps", "virtual_mailbox_domains",
	    "$virtual_mailbox_maps", "virtual_mailbox_maps", "",
	    "virtual_alias_recursion_limit", "1000",
	    "virtual_alias_expansion_limit", "1000",
	    "mydestination", "$myhostname, localhost, example.test", NULL);
	return 0;
}

static void
assert_local(const struct qmgr_route *r, const char *addr,
    const char *nexthop)
{
	assert_int_equal(r->status, ROUTE_DELIVER);
	assert_string_equal(r->addr, addr);
	assert_string_equal(r->transport, "local");
	assert_string_equal(r->nexthop, nexthop);
}

static void
mydestination_goes_to_local_with_domain_as_nexthop(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("demo@Example.TEST", 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_false(rt.rewritten);
	assert_local(&rt.v[0], "demo@Example.TEST", "example.test");
	qmgr_routes_free(&rt);

	qmgr_resolve("root@localhost", 1, &rt);
	assert_local(&rt.v[0], "root@localhost", "localhost");
	qmgr_routes_free(&rt);

	qmgr_resolve("root@mx.example.test", 1, &rt);
	assert_local(&rt.v[0], "root@mx.example.test", "mx.example.test");
	qmgr_routes_free(&rt);
}

static void
bare_user_is_qualified_with_myorigin(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("postmaster", 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_local(&rt.v[0], "postmaster@mx.example.test",
	    "mx.example.test");
	qmgr_routes_free(&rt);
}

static void
address_literal_of_our_interface_is_local(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("demo@[127.0.0.1]", 1, &rt);
	assert_local(&rt.v[0], "demo@[127.0.0.1]", "[127.0.0.1]");
	qmgr_routes_free(&rt);

	qmgr_resolve("demo@[IPv6:0:0::1]", 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_DELIVER);
	qmgr_routes_free(&rt);

	/* Somebody else's address is relay mail. */
	qmgr_resolve("demo@[192.0.2.7]", 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_string_equal(rt.v[0].dsn, "4.3.5");
	qmgr_routes_free(&rt);
}

static void
other_domains_are_deferred_until_relay_exists(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("someone@elsewhere.example", 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_string_equal(rt.v[0].addr, "someone@elsewhere.example");
	assert_string_equal(rt.v[0].dsn, "4.3.5");
	assert_string_equal(rt.v[0].reason,
	    "relay delivery is not available yet (smtp transport)");
	qmgr_routes_free(&rt);

	/* A subdomain of a local domain is not local. */
	qmgr_resolve("a@sub.example.test", 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	qmgr_routes_free(&rt);
}

static void
mydestination_patterns_tables_and_negation(void **state)
{
	struct qmgr_routes rt;

	set("mydestination", "!no.example.test, .example.test, "
	    "inline:{ tabled.test=yes }", NULL);
	qmgr_resolve("a@deep.sub.example.test", 1, &rt);
	assert_local(&rt.v[0], "a@deep.sub.example.test",
	    "deep.sub.example.test");
	qmgr_routes_free(&rt);
	qmgr_resolve("a@no.example.test", 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	qmgr_routes_free(&rt);
	qmgr_resolve("a@TABLED.test", 1, &rt);
	assert_local(&rt.v[0], "a@TABLED.test", "tabled.test");
	qmgr_routes_free(&rt);
}

static void
virtual_alias_rewrites_one_to_one(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps",
	    "inline:{ info@virt.test=demo@example.test }",
	    "virtual_alias_domains", "virt.test", NULL);
	qmgr_resolve("Info@Virt.Test", 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_true(rt.rewritten);
	assert_local(&rt.v[0], "demo@example.test", "example.test");
	qmgr_routes_free(&rt);
}

static void
virtual_alias_expands_recursively_into_many(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ { team@virt.test = "
	    "a@virt.test, c@example.test }, a@virt.test=b@virt.test, "
	    "b@virt.test=demo@example.test }",
	    "virtual_alias_domains", "virt.test", NULL);
	qmgr_resolve("team@virt.test", 1, &rt);
	assert_int_equal(rt.n, 2);
	assert_true(rt.rewritten);
	assert_local(&rt.v[0], "demo@example.test", "example.test");
	assert_local(&rt.v[1], "c@example.test", "example.test");
	qmgr_routes_free(&rt);
}

static void
virtual_alias_result_without_domain_gets_myorigin(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ x@virt.test=demo }",
	    "virtual_alias_domains", "virt.test", NULL);
	qmgr_resolve("x@virt.test", 1, &rt);
	assert_local(&rt.v[0], "demo@mx.example.test", "mx.example.test");
	qmgr_routes_free(&rt);
}

static void
alias_that_includes_itself_keeps_the_address(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ { demo@example.test = "
	    "demo@example.test, archive@example.test } }", NULL);
	qmgr_resolve("demo@example.test", 1, &rt);
	assert_int_equal(rt.n, 2);
	assert_local(&rt.v[0], "demo@example.test", "example.test");
	assert_local(&rt.v[1], "archive@example.test", "example.test");
	qmgr_routes_free(&rt);
}

static void
alias_loop_ends_instead_of_running_forever(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ a@example.test=b@example.test, "
	    "b@example.test=a@example.test }", NULL);
	qmgr_resolve("a@example.test", 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_local(&rt.v[0], "a@example.test", "example.test");
	qmgr_routes_free(&rt);
}

static void
too_deep_expansion_defers_the_recipient(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ a1@example.test=a2@example.test, "
	    "a2@example.test=a3@example.test, a3@example.test=a4@example.test, "
	    "a4@example.test=a5@example.test }",
	    "virtual_alias_recursion_limit", "3", NULL);
	qmgr_resolve("a1@example.test", 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_string_equal(rt.v[0].addr, "a1@example.test");
	assert_string_equal(rt.v[0].dsn, "4.3.0");
	assert_non_null(strstr(rt.v[0].reason,
	    "virtual_alias_recursion_limit"));
	qmgr_routes_free(&rt);

	set("virtual_alias_recursion_limit", "4", NULL);
	qmgr_resolve("a1@example.test", 1, &rt);
	assert_local(&rt.v[0], "a5@example.test", "example.test");
	qmgr_routes_free(&rt);
}

static void
too_wide_expansion_defers_the_recipient(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ { all@example.test = "
	    "x@example.test y@example.test z@example.test } }",
	    "virtual_alias_expansion_limit", "2", NULL);
	qmgr_resolve("all@example.test", 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_non_null(strstr(rt.v[0].reason,
	    "virtual_alias_expansion_limit"));
	qmgr_routes_free(&rt);

	set("virtual_alias_expansion_limit", "3", NULL);
	qmgr_resolve("all@example.test", 1, &rt);
	assert_int_equal(rt.n, 3);
	qmgr_routes_free(&rt);
}

static void
unknown_address_in_virtual_alias_domain_bounces(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ info@virt.test=demo@example.test }",
	    "virtual_alias_domains", "virt.test", NULL);
	qmgr_resolve("nobody@virt.test", 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_int_equal(rt.v[0].status, ROUTE_BOUNCE);
	assert_string_equal(rt.v[0].dsn, "5.1.1");
	assert_non_null(strstr(rt.v[0].reason, "User unknown"));
	qmgr_routes_free(&rt);
}

static void
virtual_mailbox_domain_goes_to_local(void **state)
{
	struct qmgr_routes rt;

	set("virtual_mailbox_domains", "mbox.test", NULL);
	qmgr_resolve("user@MBOX.test", 1, &rt);
	assert_local(&rt.v[0], "user@MBOX.test", "mbox.test");
	qmgr_routes_free(&rt);

	/* The default: domains that are keys of virtual_mailbox_maps. */
	set("virtual_mailbox_domains", "$virtual_mailbox_maps",
	    "virtual_mailbox_maps", "inline:{ hosted.test=x, "
	    "u@hosted.test=hosted.test/u/ }", NULL);
	qmgr_resolve("u@hosted.test", 1, &rt);
	assert_local(&rt.v[0], "u@hosted.test", "hosted.test");
	qmgr_routes_free(&rt);
}

static void
table_error_defers_and_never_bounces(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "texthash:/nonexistent/tern/virtual", NULL);
	qmgr_resolve("demo@example.test", 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_string_equal(rt.v[0].dsn, "4.3.0");
	assert_non_null(strstr(rt.v[0].reason, "virtual_alias_maps"));
	qmgr_routes_free(&rt);

	set("virtual_alias_maps", "", "virtual_mailbox_domains",
	    "texthash:/nonexistent/tern/domains", NULL);
	qmgr_resolve("a@somewhere.test", 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_string_equal(rt.v[0].dsn, "4.3.0");
	qmgr_routes_free(&rt);
}

static void
without_rewrite_aliases_are_not_applied(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ a@example.test=b@example.test }",
	    NULL);
	qmgr_resolve("a@example.test", 0, &rt);
	assert_false(rt.rewritten);
	assert_local(&rt.v[0], "a@example.test", "example.test");
	qmgr_routes_free(&rt);
}

static void
empty_address_bounces_as_bad_syntax(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("", 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_BOUNCE);
	assert_string_equal(rt.v[0].dsn, "5.1.3");
	qmgr_routes_free(&rt);
	qmgr_resolve("user@", 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_BOUNCE);
	qmgr_routes_free(&rt);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup(f, reset)
	const struct CMUnitTest tests[] = {
		T(mydestination_goes_to_local_with_domain_as_nexthop),
		T(bare_user_is_qualified_with_myorigin),
		T(address_literal_of_our_interface_is_local),
		T(other_domains_are_deferred_until_relay_exists),
		T(mydestination_patterns_tables_and_negation),
		T(virtual_alias_rewrites_one_to_one),
		T(virtual_alias_expands_recursively_into_many),
		T(virtual_alias_result_without_domain_gets_myorigin),
		T(alias_that_includes_itself_keeps_the_address),
		T(alias_loop_ends_instead_of_running_forever),
		T(too_deep_expansion_defers_the_recipient),
		T(too_wide_expansion_defers_the_recipient),
		T(unknown_address_in_virtual_alias_domain_bounces),
		T(virtual_mailbox_domain_goes_to_local),
		T(table_error_defers_and_never_bounces),
		T(without_rewrite_aliases_are_not_applied),
		T(empty_address_bounces_as_bad_syntax),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
