/*
 * test_dns - lib/dns.c without a network: how libunbound's answers
 * (made up here as struct ub_result) become results -- found, NXDOMAIN,
 * NODATA, null MX, temporary failure, DNSSEC secure/bogus -- and how
 * record data is parsed; MX ordering; reverse names; context errors; and
 * a lookup against a server that never answers ending in time. Lookups
 * against a real server are in tests/integration/test_smtp.py.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <unbound.h>

#include "testlib.h"
#include "dns.h"
#include "event.h"

/* A made-up answer: up to 8 records of raw rdata. */
struct fake {
	struct ub_result r;
	char	*data[9];
	int	 len[9];
	unsigned char buf[8][300];
};

static void
fake_init(struct fake *f, int rcode)
{
	memset(f, 0, sizeof(*f));
	f->r.rcode = rcode;
	f->r.nxdomain = rcode == 3;
	f->r.data = f->data;
	f->r.len = f->len;
	f->r.ttl = 300;
}

static void
fake_add(struct fake *f, const void *rdata, size_t len)
{
	size_t i = 0;

	while (f->data[i] != NULL)
		i++;
	memcpy(f->buf[i], rdata, len);
	f->data[i] = (char *)f->buf[i];
	f->len[i] = (int)len;
	f->r.havedata = 1;
}

/* MX rdata: preference, then the name in wire form from "a.b". */
static size_t
mx_rdata(unsigned char *out, unsigned pref, const char *name)
{
	size_t n = 2;

	out[0] = (unsigned char)(pref >> 8);
	out[1] = (unsigned char)pref;
	while (*name) {
		size_t l = strcspn(name, ".");

		out[n++] = (unsigned char)l;
		memcpy(out + n, name, l);
		n += l;
		name += l;
		if (*name == '.')
			name++;
	}
	out[n++] = 0;
	return n;
}

static void
fake_mx(struct fake *f, unsigned pref, const char *name)
{
	unsigned char rd[300];

	fake_add(f, rd, mx_rdata(rd, pref, name));
}

static void
mx_records_are_found_with_lower_case_names(void **state)
{
	struct dns_result res;
	struct fake f;

	fake_init(&f, 0);
	fake_mx(&f, 10, "MX1.B.Test");
	fake_mx(&f, 20, "mx2.b.test");
	dns_result_from_unbound(0, &f.r, "b.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_FOUND);
	assert_int_equal(res.security, DNS_INSECURE);
	assert_int_equal(res.nrr, 2);
	assert_int_equal(res.rr[0].pref, 10);
	assert_string_equal(res.rr[0].text, "mx1.b.test");
	assert_int_equal(res.rr[1].pref, 20);
	assert_string_equal(res.rr[1].text, "mx2.b.test");
	assert_int_equal(res.rr[0].ttl, 300);
	dns_result_free(&res);
}

static void
lone_dot_mx_is_null_mx(void **state)
{
	struct dns_result res;
	struct fake f;

	fake_init(&f, 0);
	fake_mx(&f, 0, "");
	dns_result_from_unbound(0, &f.r, "null.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_NULLMX);
	assert_int_equal(res.nrr, 0);
	assert_non_null(strstr(res.reason, "null MX"));
	dns_result_free(&res);
}

static void
dot_mx_beside_real_mx_is_ignored(void **state)
{
	struct dns_result res;
	struct fake f;

	/* RFC 7505 forbids the mix; the real host is still usable. */
	fake_init(&f, 0);
	fake_mx(&f, 0, "");
	fake_mx(&f, 10, "mx.b.test");
	dns_result_from_unbound(0, &f.r, "b.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_FOUND);
	assert_int_equal(res.nrr, 1);
	assert_string_equal(res.rr[0].text, "mx.b.test");
	dns_result_free(&res);
}

static void
nxdomain_is_permanent(void **state)
{
	struct dns_result res;
	struct fake f;

	fake_init(&f, 3);
	dns_result_from_unbound(0, &f.r, "nx.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_NXDOMAIN);
	assert_int_equal(res.rcode, 3);
	assert_string_equal(res.reason, "Host not found");
	assert_string_equal(res.name, "nx.test");
	assert_int_equal(res.type, DNS_T_MX);
	dns_result_free(&res);
}

static void
noerror_without_records_is_nodata(void **state)
{
	struct dns_result res;
	struct fake f;

	fake_init(&f, 0);
	dns_result_from_unbound(0, &f.r, "a.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_NODATA);
	dns_result_free(&res);
}

static void
servfail_and_refused_are_temporary(void **state)
{
	struct dns_result res;
	struct fake f;

	fake_init(&f, 2);
	dns_result_from_unbound(0, &f.r, "fail.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_TEMPFAIL);
	assert_non_null(strstr(res.reason, "try again"));
	assert_non_null(strstr(res.reason, "SERVFAIL"));
	dns_result_free(&res);

	fake_init(&f, 5);
	dns_result_from_unbound(0, &f.r, "fail.test", DNS_T_A, &res);
	assert_int_equal(res.status, DNS_TEMPFAIL);
	assert_non_null(strstr(res.reason, "REFUSED"));
	dns_result_free(&res);
}

static void
resolver_error_is_temporary(void **state)
{
	struct dns_result res;

	dns_result_from_unbound(UB_NOMEM, NULL, "b.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_TEMPFAIL);
	assert_int_equal(res.rcode, -1);
	dns_result_free(&res);
}

static void
bogus_answer_is_temporary_even_with_data(void **state)
{
	struct dns_result res;
	struct fake f;

	fake_init(&f, 0);
	fake_mx(&f, 10, "mx.b.test");
	f.r.bogus = 1;
	f.r.why_bogus = "signature expired";
	dns_result_from_unbound(0, &f.r, "b.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_TEMPFAIL);
	assert_int_equal(res.security, DNS_BOGUS);
	assert_int_equal(res.nrr, 0);
	assert_non_null(strstr(res.reason, "signature expired"));
	dns_result_free(&res);
}

static void
secure_answer_and_secure_nxdomain_say_so(void **state)
{
	struct dns_result res;
	struct fake f;

	fake_init(&f, 0);
	fake_mx(&f, 10, "mx.b.test");
	f.r.secure = 1;
	dns_result_from_unbound(0, &f.r, "b.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_FOUND);
	assert_int_equal(res.security, DNS_SECURE);
	dns_result_free(&res);

	fake_init(&f, 3);
	f.r.secure = 1;
	dns_result_from_unbound(0, &f.r, "nx.test", DNS_T_TLSA, &res);
	assert_int_equal(res.status, DNS_NXDOMAIN);
	assert_int_equal(res.security, DNS_SECURE);
	dns_result_free(&res);
}

static void
a_and_aaaa_records_give_addresses(void **state)
{
	static const unsigned char a[] = { 127, 0, 0, 2 };
	unsigned char a6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	struct dns_result res;
	struct fake f;

	a6[15] = 1;
	fake_init(&f, 0);
	fake_add(&f, a, 4);
	dns_result_from_unbound(0, &f.r, "mx.b.test", DNS_T_A, &res);
	assert_int_equal(res.status, DNS_FOUND);
	assert_int_equal(res.rr[0].family, AF_INET);
	assert_string_equal(res.rr[0].text, "127.0.0.2");
	assert_memory_equal(res.rr[0].addr, a, 4);
	dns_result_free(&res);

	fake_init(&f, 0);
	fake_add(&f, a6, 16);
	dns_result_from_unbound(0, &f.r, "mx.b.test", DNS_T_AAAA, &res);
	assert_int_equal(res.status, DNS_FOUND);
	assert_int_equal(res.rr[0].family, AF_INET6);
	assert_string_equal(res.rr[0].text, "2001:db8::1");
	dns_result_free(&res);
}

static void
malformed_records_are_skipped_and_only_junk_is_temporary(void **state)
{
	static const unsigned char a[] = { 127, 0, 0, 2 };
	/* A label that runs past the end of the data. */
	static const unsigned char badmx[] = { 0, 10, 9, 'm', 'x', 0 };
	/* A label with a dot in it: no host name has one. */
	static const unsigned char dotmx[] = { 0, 10, 3, 'a', '.', 'b', 0 };
	struct dns_result res;
	struct fake f;

	fake_init(&f, 0);
	fake_add(&f, a, 3);		/* A with 3 bytes */
	fake_add(&f, a, 4);
	dns_result_from_unbound(0, &f.r, "mx.b.test", DNS_T_A, &res);
	assert_int_equal(res.status, DNS_FOUND);
	assert_int_equal(res.nrr, 1);
	dns_result_free(&res);

	fake_init(&f, 0);
	fake_add(&f, badmx, sizeof(badmx));
	fake_add(&f, dotmx, sizeof(dotmx));
	dns_result_from_unbound(0, &f.r, "b.test", DNS_T_MX, &res);
	assert_int_equal(res.status, DNS_TEMPFAIL);
	assert_non_null(strstr(res.reason, "malformed"));
	dns_result_free(&res);
}

static void
tlsa_txt_and_ptr_records_are_parsed(void **state)
{
	static const unsigned char tlsa[] = { 3, 1, 1, 0xde, 0xad, 0xbe };
	static const unsigned char txt[] = { 3, 'a', 'b', 'c', 2, 'd', '\n' };
	unsigned char ptr[300];
	struct dns_result res;
	struct fake f;
	size_t n;

	fake_init(&f, 0);
	fake_add(&f, tlsa, sizeof(tlsa));
	dns_result_from_unbound(0, &f.r, "_25._tcp.mx.b.test", DNS_T_TLSA,
	    &res);
	assert_int_equal(res.status, DNS_FOUND);
	assert_int_equal(res.rr[0].usage, 3);
	assert_int_equal(res.rr[0].selector, 1);
	assert_int_equal(res.rr[0].mtype, 1);
	assert_int_equal(res.rr[0].len, 3);
	assert_memory_equal(res.rr[0].data, "\xde\xad\xbe", 3);
	dns_result_free(&res);

	fake_init(&f, 0);
	fake_add(&f, txt, sizeof(txt));
	dns_result_from_unbound(0, &f.r, "2.0.0.127.zen.test", DNS_T_TXT,
	    &res);
	assert_int_equal(res.status, DNS_FOUND);
	assert_int_equal(res.rr[0].len, 5);
	assert_memory_equal(res.rr[0].data, "abcd\n", 5);
	assert_string_equal(res.rr[0].text, "abcd?");
	dns_result_free(&res);

	/* PTR rdata is a bare name: reuse the MX encoder, skip pref. */
	fake_init(&f, 0);
	n = mx_rdata(ptr, 0, "Host.B.test");
	fake_add(&f, ptr + 2, n - 2);
	dns_result_from_unbound(0, &f.r, "2.0.0.127.in-addr.arpa",
	    DNS_T_PTR, &res);
	assert_int_equal(res.status, DNS_FOUND);
	assert_string_equal(res.rr[0].text, "host.b.test");
	dns_result_free(&res);
}

static void
mx_sort_orders_by_preference_and_shuffles_equals(void **state)
{
	struct dns_rr rr[5];
	int first_b = 0, first_c = 0;

	for (int run = 0; run < 200; run++) {
		static const unsigned prefs[] = { 20, 10, 20, 30, 20 };
		static const char *const names[] = { "a", "low", "b",
		    "high", "c" };

		for (int i = 0; i < 5; i++) {
			memset(&rr[i], 0, sizeof(rr[i]));
			rr[i].pref = prefs[i];
			rr[i].text = (char *)names[i];
		}
		dns_mx_sort(rr, 5);
		assert_string_equal(rr[0].text, "low");
		assert_string_equal(rr[4].text, "high");
		for (int i = 1; i < 4; i++)
			assert_int_equal(rr[i].pref, 20);
		/* all three of a, b, c are still there */
		assert_true(strcmp(rr[1].text, rr[2].text) != 0 &&
		    strcmp(rr[2].text, rr[3].text) != 0 &&
		    strcmp(rr[1].text, rr[3].text) != 0);
		first_b += strcmp(rr[1].text, "b") == 0;
		first_c += strcmp(rr[1].text, "c") == 0;
	}
	/* Each of the equal ones leads sometimes (fails with odds 2^-100). */
	assert_true(first_b > 0 && first_c > 0 && first_b + first_c < 200);
}

static void
reverse_names_for_ipv4_and_ipv6(void **state)
{
	unsigned char a4[4] = { 192, 0, 2, 1 };
	unsigned char a6[16];
	char *s;

	s = dns_reverse_name(AF_INET, a4);
	assert_string_equal(s, "1.2.0.192.in-addr.arpa");
	free(s);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::567:89ab", a6), 1);
	s = dns_reverse_name(AF_INET6, a6);
	assert_string_equal(s, "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0."
	    "0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
	free(s);
}

static void
bad_forwarder_or_missing_trust_anchor_is_an_error(void **state)
{
	char *bad[] = { "not an address", NULL };
	char *good[] = { "127.0.0.1@5353", "::1", NULL };
	struct dns_ctx *ctx;
	char *err = NULL;

	assert_null(dns_ctx_new(bad, NULL, &err));
	assert_non_null(strstr(err, "dns_forwarders"));
	free(err);
	err = NULL;
	assert_null(dns_ctx_new(good, "/nonexistent/root.key", &err));
	assert_non_null(strstr(err, "/nonexistent/root.key"));
	free(err);
	err = NULL;
	ctx = dns_ctx_new(good, "", &err);
	assert_non_null(ctx);
	dns_ctx_free(ctx);
}

static void
malformed_name_does_not_exist(void **state)
{
	char *fwd[] = { "127.0.0.1@1", NULL };
	struct dns_result res;
	struct dns_ctx *ctx;
	char *err = NULL;

	ctx = dns_ctx_new(fwd, NULL, &err);
	assert_non_null(ctx);
	assert_int_equal(dns_lookup(ctx, "bad name.test", DNS_T_MX, 1000,
	    &res), DNS_NXDOMAIN);
	dns_result_free(&res);
	assert_int_equal(dns_lookup(ctx, "", DNS_T_A, 1000, &res),
	    DNS_NXDOMAIN);
	dns_result_free(&res);
	dns_ctx_free(ctx);
}

static void
silent_server_gives_temporary_failure_within_the_limit(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char fwd_text[64], *fwd[2] = { fwd_text, NULL };
	struct dns_result res;
	struct dns_ctx *ctx;
	long long t0;
	char *err = NULL;
	int s;

	/* A UDP socket that reads nothing: queries vanish. */
	s = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(s >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	snprintf(fwd_text, sizeof(fwd_text), "127.0.0.1@%u",
	    ntohs(sin.sin_port));
	ctx = dns_ctx_new(fwd, NULL, &err);
	assert_non_null(ctx);
	t0 = event_now_ms();
	assert_int_equal(dns_lookup(ctx, "b.test", DNS_T_MX, 500, &res),
	    DNS_TEMPFAIL);
	assert_true(event_now_ms() - t0 < 3000);
	assert_non_null(strstr(res.reason, "timed out"));
	dns_result_free(&res);
	dns_ctx_free(ctx);
	close(s);
}

static int callbacks;

static void
count_done(struct dns_result *res, void *arg)
{
	(void)res;
	(void)arg;
	callbacks++;
}

static void
cancelled_and_pending_lookups_never_call_back(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char fwd_text[64], *fwd[2] = { fwd_text, NULL };
	struct dns_ctx *ctx;
	char *err = NULL;
	int s, id1, id2;

	s = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(s >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	snprintf(fwd_text, sizeof(fwd_text), "127.0.0.1@%u",
	    ntohs(sin.sin_port));
	ctx = dns_ctx_new(fwd, NULL, &err);
	assert_non_null(ctx);
	callbacks = 0;
	id1 = dns_lookup_start(ctx, "a.test", DNS_T_A, count_done, NULL,
	    &err);
	id2 = dns_lookup_start(ctx, "b.test", DNS_T_MX, count_done, NULL,
	    &err);
	assert_true(id1 > 0 && id2 > 0 && id1 != id2);
	assert_true(dns_fd(ctx) >= 0);
	assert_int_equal(dns_lookup_start(ctx, "bad name", DNS_T_A,
	    count_done, NULL, &err), -1);
	assert_non_null(err);
	free(err);
	dns_cancel(ctx, id1);
	dns_cancel(ctx, id1);		/* twice is harmless */
	assert_int_equal(dns_process(ctx), 0);
	/* id2 is still in flight: freeing the context drops it. */
	dns_ctx_free(ctx);
	assert_int_equal(callbacks, 0);
	close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mx_records_are_found_with_lower_case_names),
		cmocka_unit_test(lone_dot_mx_is_null_mx),
		cmocka_unit_test(dot_mx_beside_real_mx_is_ignored),
		cmocka_unit_test(nxdomain_is_permanent),
		cmocka_unit_test(noerror_without_records_is_nodata),
		cmocka_unit_test(servfail_and_refused_are_temporary),
		cmocka_unit_test(resolver_error_is_temporary),
		cmocka_unit_test(bogus_answer_is_temporary_even_with_data),
		cmocka_unit_test(secure_answer_and_secure_nxdomain_say_so),
		cmocka_unit_test(a_and_aaaa_records_give_addresses),
		cmocka_unit_test(
		    malformed_records_are_skipped_and_only_junk_is_temporary),
		cmocka_unit_test(tlsa_txt_and_ptr_records_are_parsed),
		cmocka_unit_test(
		    mx_sort_orders_by_preference_and_shuffles_equals),
		cmocka_unit_test(reverse_names_for_ipv4_and_ipv6),
		cmocka_unit_test(
		    bad_forwarder_or_missing_trust_anchor_is_an_error),
		cmocka_unit_test(malformed_name_does_not_exist),
		cmocka_unit_test(
		    silent_server_gives_temporary_failure_within_the_limit),
		cmocka_unit_test(
		    cancelled_and_pending_lookups_never_call_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
