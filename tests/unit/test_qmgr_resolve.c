/*
 * test_qmgr_resolve - where qmgr sends each recipient
 * (qmgr/qmgr_resolve.c): local domains and address literals to the local
 * transport, virtual alias rewriting with its limits, virtual alias and
 * mailbox domains, relay_domains, relayhost in its forms, transport_maps
 * (lookup order, partial values, error:/retry:/discard:), sender-
 * dependent relay hosts, and which mail a "flush site" concerns. Tables
 * are inline: ones set with config_set().
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "config.h"
#include "qmgr.h"

/* The sender of the mail in most tests. */
#define SENDER	"alice@example.test"

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
	    "mydestination", "$myhostname, localhost, example.test",
	    "relay_domains", "", "relayhost", "", "transport_maps", "",
	    "sender_dependent_relayhost_maps", "", "default_transport", "smtp",
	    "relay_transport", "relay", "recipient_delimiter", "",
	    "parent_domain_matches_subdomains", "relay_domains", NULL);
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
assert_route(const struct qmgr_route *r, const char *transport,
    const char *nexthop)
{
	assert_int_equal(r->status, ROUTE_DELIVER);
	assert_string_equal(r->transport, transport);
	assert_string_equal(r->nexthop, nexthop);
}

static void
mydestination_goes_to_local_with_domain_as_nexthop(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("demo@Example.TEST", SENDER, 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_false(rt.rewritten);
	assert_local(&rt.v[0], "demo@Example.TEST", "example.test");
	qmgr_routes_free(&rt);

	qmgr_resolve("root@localhost", SENDER, 1, &rt);
	assert_local(&rt.v[0], "root@localhost", "localhost");
	qmgr_routes_free(&rt);

	qmgr_resolve("root@mx.example.test", SENDER, 1, &rt);
	assert_local(&rt.v[0], "root@mx.example.test", "mx.example.test");
	qmgr_routes_free(&rt);
}

static void
bare_user_is_qualified_with_myorigin(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("postmaster", SENDER, 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_local(&rt.v[0], "postmaster@mx.example.test",
	    "mx.example.test");
	qmgr_routes_free(&rt);
}

static void
address_literal_of_our_interface_is_local(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("demo@[127.0.0.1]", SENDER, 1, &rt);
	assert_local(&rt.v[0], "demo@[127.0.0.1]", "[127.0.0.1]");
	qmgr_routes_free(&rt);

	qmgr_resolve("demo@[IPv6:0:0::1]", SENDER, 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_DELIVER);
	qmgr_routes_free(&rt);

	/* Somebody else's address is relay mail, sent to that address. */
	qmgr_resolve("demo@[192.0.2.7]", SENDER, 1, &rt);
	assert_route(&rt.v[0], "smtp", "[192.0.2.7]");
	qmgr_routes_free(&rt);
}

static void
other_domains_go_to_smtp_by_their_domain(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("someone@Elsewhere.Example", SENDER, 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_string_equal(rt.v[0].addr, "someone@Elsewhere.Example");
	assert_route(&rt.v[0], "smtp", "elsewhere.example");
	assert_true(rt.v[0].fallback);
	qmgr_routes_free(&rt);

	/* A subdomain of a local domain is not local. */
	qmgr_resolve("a@sub.example.test", SENDER, 1, &rt);
	assert_route(&rt.v[0], "smtp", "sub.example.test");
	qmgr_routes_free(&rt);
}

static void
mydestination_patterns_tables_and_negation(void **state)
{
	struct qmgr_routes rt;

	set("mydestination", "!no.example.test, .example.test, "
	    "inline:{ tabled.test=yes }", NULL);
	qmgr_resolve("a@deep.sub.example.test", SENDER, 1, &rt);
	assert_local(&rt.v[0], "a@deep.sub.example.test",
	    "deep.sub.example.test");
	qmgr_routes_free(&rt);
	qmgr_resolve("a@no.example.test", SENDER, 1, &rt);
	assert_route(&rt.v[0], "smtp", "no.example.test");
	qmgr_routes_free(&rt);
	qmgr_resolve("a@TABLED.test", SENDER, 1, &rt);
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
	qmgr_resolve("Info@Virt.Test", SENDER, 1, &rt);
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
	qmgr_resolve("team@virt.test", SENDER, 1, &rt);
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
	qmgr_resolve("x@virt.test", SENDER, 1, &rt);
	assert_local(&rt.v[0], "demo@mx.example.test", "mx.example.test");
	qmgr_routes_free(&rt);
}

static void
alias_that_includes_itself_keeps_the_address(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ { demo@example.test = "
	    "demo@example.test, archive@example.test } }", NULL);
	qmgr_resolve("demo@example.test", SENDER, 1, &rt);
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
	qmgr_resolve("a@example.test", SENDER, 1, &rt);
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
	qmgr_resolve("a1@example.test", SENDER, 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_string_equal(rt.v[0].addr, "a1@example.test");
	assert_string_equal(rt.v[0].dsn, "4.3.0");
	assert_non_null(strstr(rt.v[0].reason,
	    "virtual_alias_recursion_limit"));
	qmgr_routes_free(&rt);

	set("virtual_alias_recursion_limit", "4", NULL);
	qmgr_resolve("a1@example.test", SENDER, 1, &rt);
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
	qmgr_resolve("all@example.test", SENDER, 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_non_null(strstr(rt.v[0].reason,
	    "virtual_alias_expansion_limit"));
	qmgr_routes_free(&rt);

	set("virtual_alias_expansion_limit", "3", NULL);
	qmgr_resolve("all@example.test", SENDER, 1, &rt);
	assert_int_equal(rt.n, 3);
	qmgr_routes_free(&rt);
}

static void
unknown_address_in_virtual_alias_domain_bounces(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "inline:{ info@virt.test=demo@example.test }",
	    "virtual_alias_domains", "virt.test", NULL);
	qmgr_resolve("nobody@virt.test", SENDER, 1, &rt);
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
	qmgr_resolve("user@MBOX.test", SENDER, 1, &rt);
	assert_local(&rt.v[0], "user@MBOX.test", "mbox.test");
	qmgr_routes_free(&rt);

	/* The default: domains that are keys of virtual_mailbox_maps. */
	set("virtual_mailbox_domains", "$virtual_mailbox_maps",
	    "virtual_mailbox_maps", "inline:{ hosted.test=x, "
	    "u@hosted.test=hosted.test/u/ }", NULL);
	qmgr_resolve("u@hosted.test", SENDER, 1, &rt);
	assert_local(&rt.v[0], "u@hosted.test", "hosted.test");
	qmgr_routes_free(&rt);
}

static void
table_error_defers_and_never_bounces(void **state)
{
	struct qmgr_routes rt;

	set("virtual_alias_maps", "texthash:/nonexistent/tern/virtual", NULL);
	qmgr_resolve("demo@example.test", SENDER, 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_string_equal(rt.v[0].dsn, "4.3.0");
	assert_non_null(strstr(rt.v[0].reason, "virtual_alias_maps"));
	qmgr_routes_free(&rt);

	set("virtual_alias_maps", "", "virtual_mailbox_domains",
	    "texthash:/nonexistent/tern/domains", NULL);
	qmgr_resolve("a@somewhere.test", SENDER, 1, &rt);
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
	qmgr_resolve("a@example.test", SENDER, 0, &rt);
	assert_false(rt.rewritten);
	assert_local(&rt.v[0], "a@example.test", "example.test");
	qmgr_routes_free(&rt);
}

static void
empty_address_bounces_as_bad_syntax(void **state)
{
	struct qmgr_routes rt;

	qmgr_resolve("", SENDER, 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_BOUNCE);
	assert_string_equal(rt.v[0].dsn, "5.1.3");
	qmgr_routes_free(&rt);
	qmgr_resolve("user@", SENDER, 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_BOUNCE);
	qmgr_routes_free(&rt);
}


/* Resolve addr (from sender) and check its one route. */
static void
check(const char *addr, const char *sender, const char *transport,
    const char *nexthop)
{
	struct qmgr_routes rt;

	qmgr_resolve(addr, sender, 1, &rt);
	assert_int_equal(rt.n, 1);
	if (rt.v[0].status != ROUTE_DELIVER)
		fail_msg("%s: not delivered: %s %s", addr, rt.v[0].dsn,
		    rt.v[0].reason);
	if (strcmp(rt.v[0].transport, transport) != 0 ||
	    strcmp(rt.v[0].nexthop, nexthop) != 0)
		fail_msg("%s: %s:%s, wanted %s:%s", addr, rt.v[0].transport,
		    rt.v[0].nexthop, transport, nexthop);
	qmgr_routes_free(&rt);
}

/* Resolve addr and check its verdict (status, dsn, reason). */
static void
check_verdict(const char *addr, enum qmgr_route_status status,
    const char *dsn, const char *reason)
{
	struct qmgr_routes rt;

	qmgr_resolve(addr, SENDER, 1, &rt);
	assert_int_equal(rt.n, 1);
	assert_int_equal(rt.v[0].status, status);
	assert_string_equal(rt.v[0].dsn, dsn);
	assert_string_equal(rt.v[0].reason, reason);
	qmgr_routes_free(&rt);
}

static void
relay_domains_go_to_the_relay_transport_subdomains_included(void **state)
{
	set("relay_domains", "relayed.test, .dotted.test", NULL);
	check("a@relayed.test", SENDER, "relay", "relayed.test");
	/* parent_domain_matches_subdomains names relay_domains. */
	check("a@deep.relayed.test", SENDER, "relay", "deep.relayed.test");
	check("a@x.dotted.test", SENDER, "relay", "x.dotted.test");
	check("a@dotted.test", SENDER, "smtp", "dotted.test");
	check("a@other.test", SENDER, "smtp", "other.test");

	/* Without parent matching only the name itself. */
	set("parent_domain_matches_subdomains", "", NULL);
	check("a@relayed.test", SENDER, "relay", "relayed.test");
	check("a@deep.relayed.test", SENDER, "smtp", "deep.relayed.test");
}

static void
relayhost_overrides_the_domain_in_each_form(void **state)
{
	struct qmgr_routes rt;

	set("relayhost", "[gw.example.test]:2525", NULL);
	qmgr_resolve("a@other.test", SENDER, 1, &rt);
	assert_route(&rt.v[0], "smtp", "[gw.example.test]:2525");
	/* The relay host is not the recipient's domain: no fallback. */
	assert_false(rt.v[0].fallback);
	qmgr_routes_free(&rt);

	set("relayhost", "smarthost.test", NULL);	/* by MX */
	check("a@other.test", SENDER, "smtp", "smarthost.test");
	set("relayhost", "  [192.0.2.1]  ", NULL);
	check("a@other.test", SENDER, "smtp", "[192.0.2.1]");
	/* relay_domains too, but never local mail. */
	set("relay_domains", "relayed.test", NULL);
	check("a@relayed.test", SENDER, "relay", "[192.0.2.1]");
	check("demo@example.test", SENDER, "local", "example.test");
}

static void
transport_parameter_nexthop_beats_relayhost(void **state)
{
	set("relayhost", "[gw.example.test]", "default_transport",
	    "smtp:[smart.example.test]:587", "relay_transport", "lmtp",
	    "relay_domains", "relayed.test", NULL);
	check("a@other.test", SENDER, "smtp", "[smart.example.test]:587");
	/* relay_transport without a next hop: relayhost still applies. */
	check("a@relayed.test", SENDER, "lmtp", "[gw.example.test]");
}

static void
transport_maps_address_then_domain_then_parents_then_star(void **state)
{
	set("transport_maps", "inline:{ "
	    "vip@b.test=smtp:[vip.b.test]:2525, "
	    "b.test=smtp:[mx.b.test], "
	    ".b.test=smtp:[sub.b.test], "
	    "c.b.test=lmtp:unix:/run/lmtp, "
	    "*=smtp:[everything.test] }",
	    "relayhost", "[gw.example.test]", NULL);
	check("vip@b.test", SENDER, "smtp", "[vip.b.test]:2525");
	check("other@b.test", SENDER, "smtp", "[mx.b.test]");
	check("x@deep.a.b.test", SENDER, "smtp", "[sub.b.test]");
	check("x@c.b.test", SENDER, "lmtp", "unix:/run/lmtp");
	check("x@nowhere.test", SENDER, "smtp", "[everything.test]");
	/* transport_maps apply to local domains as well. */
	check("demo@example.test", SENDER, "smtp", "[everything.test]");

	/* "b.test" does not match subdomains unless
	 * parent_domain_matches_subdomains names transport_maps. */
	set("transport_maps", "inline:{ b.test=smtp:[mx.b.test] }", NULL);
	check("x@a.b.test", SENDER, "smtp", "[gw.example.test]");
	set("parent_domain_matches_subdomains", "relay_domains, "
	    "transport_maps", NULL);
	check("x@a.b.test", SENDER, "smtp", "[mx.b.test]");
}

static void
transport_maps_address_extension_is_looked_up_without_it(void **state)
{
	set("recipient_delimiter", "+", "transport_maps",
	    "inline:{ list@b.test=lmtp:[lists.b.test]:24, "
	    "list+special@b.test=smtp:[special.b.test] }", NULL);
	check("list+news@b.test", SENDER, "lmtp", "[lists.b.test]:24");
	check("list+special@b.test", SENDER, "smtp", "[special.b.test]");
	check("list@b.test", SENDER, "lmtp", "[lists.b.test]:24");
}

static void
transport_maps_empty_parts_keep_what_the_class_gave(void **state)
{
	struct qmgr_routes rt;

	set("relayhost", "[gw.example.test]", "transport_maps",
	    "inline:{ a.test=lmtp:, b.test=:[b-gw.test], "
	    "example.test=smtp:, r.test=relay: }", NULL);
	/* Transport only: the next hop stays the relayhost. */
	check("x@a.test", SENDER, "lmtp", "[gw.example.test]");
	/* Next hop only: the transport stays smtp. */
	qmgr_resolve("x@b.test", SENDER, 1, &rt);
	assert_route(&rt.v[0], "smtp", "[b-gw.test]");
	assert_false(rt.v[0].fallback);
	qmgr_routes_free(&rt);
	/* A local domain sent by smtp: to its own domain. */
	check("demo@example.test", SENDER, "smtp", "example.test");
	check("x@r.test", SENDER, "relay", "[gw.example.test]");
}

static void
transport_maps_error_retry_and_discard_are_verdicts(void **state)
{
	set("transport_maps", "inline:{ "
	    "{ gone@b.test = error:5.1.1 this user left us }, "
	    "{ old.test = error:domain closed }, "
	    "{ later.test = retry:4.3.2 migration in progress }, "
	    "spam@b.test=discard:, "
	    "{ quiet@b.test = discard:silence }, "
	    "{ blank.test = error: } }", NULL);
	check_verdict("gone@b.test", ROUTE_BOUNCE, "5.1.1",
	    "this user left us");
	check_verdict("x@old.test", ROUTE_BOUNCE, "5.0.0", "domain closed");
	check_verdict("x@later.test", ROUTE_DEFER, "4.3.2",
	    "migration in progress");
	check_verdict("spam@b.test", ROUTE_DISCARD, "2.0.0", "discarded");
	check_verdict("quiet@b.test", ROUTE_DISCARD, "2.0.0", "silence");
	check_verdict("x@blank.test", ROUTE_BOUNCE, "5.0.0",
	    "mail for this address is refused by transport_maps");
	/* A 4.x.x code does not turn error: into a deferral. */
	set("transport_maps", "inline:{ { odd.test = error:4.1.1 odd } }",
	    NULL);
	check_verdict("x@odd.test", ROUTE_BOUNCE, "5.0.0", "4.1.1 odd");
}

static void
transport_maps_table_error_defers(void **state)
{
	struct qmgr_routes rt;

	set("transport_maps", "texthash:/nonexistent/tern/transport", NULL);
	qmgr_resolve("a@b.test", SENDER, 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_string_equal(rt.v[0].dsn, "4.3.0");
	assert_non_null(strstr(rt.v[0].reason, "transport_maps lookup error"));
	qmgr_routes_free(&rt);
}

static void
sender_dependent_relayhost_by_address_then_domain(void **state)
{
	set("relayhost", "[gw.example.test]", "sender_dependent_relayhost_maps",
	    "inline:{ alice@example.test=[alice-gw.test]:2525, "
	    "@example.org=[org-gw.test], <>=[bounce-gw.test] }", NULL);
	check("x@b.test", "alice@example.test", "smtp", "[alice-gw.test]:2525");
	check("x@b.test", "Alice@Example.TEST", "smtp", "[alice-gw.test]:2525");
	check("x@b.test", "carol@example.org", "smtp", "[org-gw.test]");
	check("x@b.test", "", "smtp", "[bounce-gw.test]");
	/* No entry: relayhost. */
	check("x@b.test", "carol@example.test", "smtp", "[gw.example.test]");
	/* Local mail never goes to a relay host. */
	check("demo@example.test", "alice@example.test", "local",
	    "example.test");
	/* transport_maps next hops come first. */
	set("transport_maps", "inline:{ b.test=smtp:[b-gw.test] }", NULL);
	check("x@b.test", "alice@example.test", "smtp", "[b-gw.test]");
	/* And without relayhost the map still applies. */
	set("relayhost", "", "transport_maps", "", NULL);
	check("x@b.test", "alice@example.test", "smtp", "[alice-gw.test]:2525");
	check("x@b.test", "carol@example.test", "smtp", "b.test");
}

static void
sender_dependent_relayhost_table_error_defers(void **state)
{
	struct qmgr_routes rt;

	set("sender_dependent_relayhost_maps",
	    "texthash:/nonexistent/tern/senders", NULL);
	qmgr_resolve("x@b.test", SENDER, 1, &rt);
	assert_int_equal(rt.v[0].status, ROUTE_DEFER);
	assert_non_null(strstr(rt.v[0].reason,
	    "sender_dependent_relayhost_maps"));
	qmgr_routes_free(&rt);
	/* Local mail does not need the table. */
	check("demo@example.test", SENDER, "local", "example.test");
}

static void
flush_site_matches_domain_subdomains_and_nexthop_host(void **state)
{
	assert_true(qmgr_site_match("b.test", "b.test", NULL));
	assert_true(qmgr_site_match("B.Test", "mx.b.test", NULL));
	assert_true(qmgr_site_match(".b.test", "x.b.test", NULL));
	assert_false(qmgr_site_match("b.test", "ab.test", NULL));
	assert_false(qmgr_site_match("b.test", "test", NULL));
	assert_true(qmgr_site_match("gw.test", "other.test",
	    "[gw.test]:2525"));
	assert_true(qmgr_site_match("gw.test", NULL, "inet:gw.test:25"));
	assert_true(qmgr_site_match("192.0.2.1", NULL, "[192.0.2.1]"));
	assert_false(qmgr_site_match("gw.test", "other.test",
	    "[xgw.test]"));
	assert_false(qmgr_site_match("", "b.test", "b.test"));
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup(f, reset)
	const struct CMUnitTest tests[] = {
		T(mydestination_goes_to_local_with_domain_as_nexthop),
		T(bare_user_is_qualified_with_myorigin),
		T(address_literal_of_our_interface_is_local),
		T(other_domains_go_to_smtp_by_their_domain),
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
		T(relay_domains_go_to_the_relay_transport_subdomains_included),
		T(relayhost_overrides_the_domain_in_each_form),
		T(transport_parameter_nexthop_beats_relayhost),
		T(transport_maps_address_then_domain_then_parents_then_star),
		T(transport_maps_address_extension_is_looked_up_without_it),
		T(transport_maps_empty_parts_keep_what_the_class_gave),
		T(transport_maps_error_retry_and_discard_are_verdicts),
		T(transport_maps_table_error_defers),
		T(sender_dependent_relayhost_by_address_then_domain),
		T(sender_dependent_relayhost_table_error_defers),
		T(flush_site_matches_domain_subdomains_and_nexthop_host),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
