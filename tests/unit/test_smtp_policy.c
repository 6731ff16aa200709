/*
 * test_smtp_policy - what the smtp client demands of a next hop
 * (smtp/smtp_policy.c): TLS policy entries as Postfix writes them, the
 * names a certificate must carry at verify and secure, the keys a next
 * hop is looked up by, the policy and password lookups through tables,
 * and what DANE TLSA answers allow.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "config.h"
#include "dns.h"
#include "smtp.h"
#include "strv.h"

static char *
parse_err(const char *text)
{
	struct smtp_tls_policy p;
	char *err = NULL;

	assert_int_equal(smtp_tls_policy_parse(text, &p, &err), -1);
	assert_non_null(err);
	assert_null(p.match);
	return err;
}

static void
policy_level_alone(void **state)
{
	struct smtp_tls_policy p;
	char *err = NULL;

	assert_int_equal(smtp_tls_policy_parse("Encrypt", &p, &err), 0);
	assert_int_equal(p.level, TLS_LEV_ENCRYPT);
	assert_null(p.match);
	smtp_tls_policy_free(&p);
	assert_int_equal(smtp_tls_policy_parse("none", &p, &err), 0);
	assert_int_equal(p.level, TLS_LEV_NONE);
	smtp_tls_policy_free(&p);
}

static void
policy_match_splits_on_colons(void **state)
{
	struct smtp_tls_policy p;
	char *err = NULL;

	assert_int_equal(smtp_tls_policy_parse("verify  match=hostname:nexthop",
	    &p, &err), 0);
	assert_int_equal(p.level, TLS_LEV_VERIFY);
	assert_int_equal(strv_len(p.match), 2);
	assert_string_equal(p.match[0], "hostname");
	assert_string_equal(p.match[1], "nexthop");
	smtp_tls_policy_free(&p);
	assert_int_equal(smtp_tls_policy_parse("secure match=.example.com:"
	    "example.com protocols=>=TLSv1.2", &p, &err), 0);
	assert_int_equal(p.level, TLS_LEV_SECURE);
	assert_string_equal(p.match[0], ".example.com");
	assert_string_equal(p.match[1], "example.com");
	assert_null(p.match[2]);
	smtp_tls_policy_free(&p);
}

static void
policy_errors_are_refused_with_a_reason(void **state)
{
	char *err;

	err = parse_err("");
	assert_string_equal(err, "empty TLS policy");
	free(err);
	err = parse_err("sometimes");
	assert_string_equal(err, "unknown TLS security level \"sometimes\"");
	free(err);
	err = parse_err("verify bogus=1");
	assert_string_equal(err, "unknown TLS policy attribute \"bogus\"");
	free(err);
	err = parse_err("verify match");
	assert_string_equal(err, "malformed TLS policy attribute \"match\"");
	free(err);
	err = parse_err("verify match=");
	assert_string_equal(err, "empty TLS policy match=");
	free(err);
}

static void
match_names_substitute_and_drop_duplicates(void **state)
{
	char *m[] = { "hostname", "nexthop", "dot-nexthop", "MX.B.test",
	    "other.test", NULL };
	char **v;

	v = smtp_tls_match_names(m, "mx.b.test", "b.test");
	assert_int_equal(strv_len(v), 4);
	assert_string_equal(v[0], "mx.b.test");
	assert_string_equal(v[1], "b.test");
	assert_string_equal(v[2], ".b.test");
	assert_string_equal(v[3], "other.test");
	strv_free(v);
	v = smtp_tls_match_names(NULL, "mx.b.test", "b.test");
	assert_int_equal(strv_len(v), 0);
	strv_free(v);
}

static void
nexthop_keys_most_specific_first(void **state)
{
	struct smtp_nexthop nh;
	char *err = NULL, **k;

	assert_int_equal(smtp_nexthop_parse("[Relay.Test]:587", 0, &nh, &err),
	    0);
	k = smtp_nexthop_keys(&nh);
	assert_int_equal(strv_len(k), 3);
	assert_string_equal(k[0], "[relay.test]:587");
	assert_string_equal(k[1], "[relay.test]");
	assert_string_equal(k[2], "relay.test");
	strv_free(k);
	smtp_nexthop_free(&nh);

	assert_int_equal(smtp_nexthop_parse("b.test", 0, &nh, &err), 0);
	k = smtp_nexthop_keys(&nh);
	assert_int_equal(strv_len(k), 2);
	assert_string_equal(k[0], "b.test:25");
	assert_string_equal(k[1], "b.test");
	strv_free(k);
	smtp_nexthop_free(&nh);
}

static char tmpdir[] = "/tmp/test_smtp_policy.XXXXXX";

static int
load_main_cf(void **state)
{
	char path[256], *err = NULL;
	FILE *f;

	assert_non_null(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("smtp_tls_security_level = may\n"
	    "smtp_tls_policy_maps = inline:{ b.test=encrypt, "
	    "{ [relay.test]:587 = verify match=nexthop }, "
	    "c.test=sometimes }\n"
	    "smtp_sasl_password_maps = inline:{ [relay.test]:587=alice:pw:x, "
	    "mx.c.test=bob:pw2, d.test=nocolon }\n", f);
	fclose(f);
	if (config_load(tmpdir, &err) < 0)
		fail_msg("config_load: %s", err);
	return 0;
}

static int
remove_main_cf(void **state)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/main.cf", tmpdir);
	unlink(path);
	rmdir(tmpdir);
	config_reset();
	return 0;
}

static int
find_policy(const char *hop, struct smtp_tls_policy *p, struct smtp_fail *f)
{
	struct smtp_nexthop nh;
	char *err = NULL;
	int r;

	assert_int_equal(smtp_nexthop_parse(hop, 0, &nh, &err), 0);
	r = smtp_tls_policy_find(&nh, p, f);
	smtp_nexthop_free(&nh);
	return r;
}

static void
policy_map_entry_wins_over_the_default_level(void **state)
{
	struct smtp_tls_policy p;
	struct smtp_fail f;

	memset(&f, 0, sizeof(f));
	assert_int_equal(find_policy("b.test:2525", &p, &f), 0);
	assert_int_equal(p.level, TLS_LEV_ENCRYPT);
	smtp_tls_policy_free(&p);
	assert_int_equal(find_policy("[relay.test]:587", &p, &f), 0);
	assert_int_equal(p.level, TLS_LEV_VERIFY);
	assert_string_equal(p.match[0], "nexthop");
	smtp_tls_policy_free(&p);
	/* The same host on another port has no entry. */
	assert_int_equal(find_policy("[relay.test]:25", &p, &f), 0);
	assert_int_equal(p.level, TLS_LEV_MAY);
	smtp_tls_policy_free(&p);
	assert_int_equal(find_policy("a.test", &p, &f), 0);
	assert_int_equal(p.level, TLS_LEV_MAY);
	smtp_tls_policy_free(&p);
	/* A broken entry defers rather than falling back to "may". */
	assert_int_equal(find_policy("c.test", &p, &f), -1);
	assert_int_equal(f.status, DELIVER_DEFERRED);
	assert_string_equal(f.dsn, "4.7.5");
	assert_string_equal(f.reason, "invalid TLS policy for c.test: "
	    "unknown TLS security level \"sometimes\"");
	smtp_fail_free(&f);
}

static int
find_passwd(const char *hop, const char *host, char **user, char **pass,
    struct smtp_fail *f)
{
	struct smtp_nexthop nh;
	char *err = NULL;
	int r;

	assert_int_equal(smtp_nexthop_parse(hop, 0, &nh, &err), 0);
	r = smtp_sasl_passwd_find(&nh, host, user, pass, f);
	smtp_nexthop_free(&nh);
	return r;
}

static void
password_by_next_hop_then_host_name(void **state)
{
	struct smtp_fail f;
	char *user, *pass;

	memset(&f, 0, sizeof(f));
	assert_int_equal(find_passwd("[relay.test]:587", "relay.test", &user,
	    &pass, &f), 1);
	assert_string_equal(user, "alice");
	assert_string_equal(pass, "pw:x");	/* colons in the password */
	free(user);
	free(pass);
	assert_int_equal(find_passwd("c.test", "mx.c.test", &user, &pass,
	    &f), 1);
	assert_string_equal(user, "bob");
	free(user);
	free(pass);
	assert_int_equal(find_passwd("[relay.test]:25", "relay.test", &user,
	    &pass, &f), 0);
	assert_null(user);
	assert_int_equal(find_passwd("d.test", "mx.d.test", &user, &pass,
	    &f), -1);
	assert_string_equal(f.reason, "malformed SASL password entry for "
	    "d.test");
	smtp_fail_free(&f);
}

/* ---- DANE ---- */

static unsigned char digest32[32] = { 1, 2, 3 };

static void
tlsa_rr(struct dns_rr *rr, int usage, int selector, int mtype, size_t len)
{
	memset(rr, 0, sizeof(*rr));
	rr->type = DNS_T_TLSA;
	rr->usage = (unsigned char)usage;
	rr->selector = (unsigned char)selector;
	rr->mtype = (unsigned char)mtype;
	rr->data = digest32;
	rr->len = len;
}

static void
dane_needs_a_secure_chain_and_secure_records(void **state)
{
	struct dns_result res;
	struct dns_rr rr[4];
	struct tls_tlsa *v;
	size_t n;
	char *why = NULL;

	memset(&res, 0, sizeof(res));
	res.name = "_25._tcp.mx.b.test";
	res.status = DNS_FOUND;
	res.security = DNS_SECURE;
	tlsa_rr(&rr[0], 3, 1, 1, 32);
	res.rr = rr;
	res.nrr = 1;
	/* MX or address answer not validated: the records mean nothing. */
	assert_int_equal(smtp_dane_decide(0, &res, &v, &n, &why),
	    TLS_LEV_MAY);
	assert_null(v);
	/* Unsigned TLSA records: nothing either. */
	res.security = DNS_INSECURE;
	assert_int_equal(smtp_dane_decide(1, &res, &v, &n, &why),
	    TLS_LEV_MAY);
	res.security = DNS_SECURE;
	assert_int_equal(smtp_dane_decide(1, &res, &v, &n, &why),
	    TLS_LEV_DANE);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].usage, 3);
	assert_int_equal(v[0].len, 32);
	assert_memory_equal(v[0].data, digest32, 32);
	assert_ptr_not_equal(v[0].data, digest32);	/* a copy */
	smtp_tlsa_free(v, n);
	/* Provably no TLSA records: opportunistic. */
	res.status = DNS_NODATA;
	res.nrr = 0;
	assert_int_equal(smtp_dane_decide(1, &res, &v, &n, &why),
	    TLS_LEV_MAY);
}

static void
dane_unusable_records_still_mean_tls(void **state)
{
	struct dns_result res;
	struct dns_rr rr[4];
	struct tls_tlsa *v;
	size_t n;
	char *why = NULL;

	memset(&res, 0, sizeof(res));
	res.name = "_25._tcp.mx.b.test";
	res.status = DNS_FOUND;
	res.security = DNS_SECURE;
	tlsa_rr(&rr[0], 1, 1, 1, 32);	/* PKIX-EE: not for SMTP */
	tlsa_rr(&rr[1], 3, 1, 1, 20);	/* SHA2-256 of the wrong size */
	tlsa_rr(&rr[2], 3, 2, 1, 32);	/* unknown selector */
	res.rr = rr;
	res.nrr = 3;
	assert_int_equal(smtp_dane_decide(1, &res, &v, &n, &why),
	    TLS_LEV_ENCRYPT);
	assert_int_equal(n, 0);
	tlsa_rr(&rr[3], 2, 0, 0, 7);	/* DANE-TA, full certificate */
	res.nrr = 4;
	assert_int_equal(smtp_dane_decide(1, &res, &v, &n, &why),
	    TLS_LEV_DANE);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].usage, 2);
	smtp_tlsa_free(v, n);
}

static void
dane_lookup_failure_keeps_the_server_unused(void **state)
{
	struct dns_result res;
	struct tls_tlsa *v;
	size_t n;
	char *why = NULL;

	memset(&res, 0, sizeof(res));
	res.name = "_25._tcp.mx.b.test";
	res.status = DNS_TEMPFAIL;
	res.security = DNS_BOGUS;
	res.reason = "DNSSEC validation failed";
	assert_int_equal(smtp_dane_decide(1, &res, &v, &n, &why), -1);
	assert_string_equal(why, "TLSA lookup error for _25._tcp.mx.b.test: "
	    "DNSSEC validation failed");
	free(why);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(policy_level_alone),
		cmocka_unit_test(policy_match_splits_on_colons),
		cmocka_unit_test(policy_errors_are_refused_with_a_reason),
		cmocka_unit_test(match_names_substitute_and_drop_duplicates),
		cmocka_unit_test(nexthop_keys_most_specific_first),
		cmocka_unit_test(policy_map_entry_wins_over_the_default_level),
		cmocka_unit_test(password_by_next_hop_then_host_name),
		cmocka_unit_test(dane_needs_a_secure_chain_and_secure_records),
		cmocka_unit_test(dane_unusable_records_still_mean_tls),
		cmocka_unit_test(dane_lookup_failure_keeps_the_server_unused),
	};

	return cmocka_run_group_tests(tests, load_main_cf, remove_main_cf);
}
