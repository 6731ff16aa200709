/*
 * smtp_addr - from a next hop to the list of servers to try, through DNS
 * (lib/dns.h). Called by smtp.c once per delivery request.
 *
 * A mail domain's MX records give the hosts in preference order (in
 * random order among equal preferences, to spread the load); a domain
 * with no MX records is its own mail host (RFC 5321 5.1); a null MX
 * (RFC 7505) says the domain takes no mail. Each host's addresses come
 * from AAAA and A lookups as inet_protocols allows, IPv6 first. The
 * list is cut at smtp_mx_address_limit addresses.
 *
 * How a DNS answer becomes a delivery decision: a name that does not
 * exist, a null MX, or hosts without addresses bounce; a DNS failure
 * (SERVFAIL, timeout, bogus DNSSEC) defers, because it may heal and a
 * bounce cannot be taken back. Reasons follow Postfix's wording, which
 * operators already grep for.
 *
 * Each server also records whether DNSSEC vouched for the whole chain
 * that led to it (the MX answer and the address answer), which is what
 * level dane needs before it believes TLSA records for the name.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "smtp.h"
#include "strv.h"

void
smtp_fail_set(struct smtp_fail *f, enum deliver_status st, const char *dsn,
    const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(f->dsn);
	free(f->reason);
	f->status = st;
	f->dsn = xstrdup(dsn);
	f->reason = buf_steal(&b);
	buf_free(&b);
}

void
smtp_fail_free(struct smtp_fail *f)
{
	free(f->dsn);
	free(f->reason);
	memset(f, 0, sizeof(*f));
}

void
smtp_servers_free(struct smtp_server *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].addr);
	}
	free(v);
}

char *
smtp_server_text(const struct smtp_server *srv, int with_port)
{
	if (srv->family == AF_UNIX || !with_port)
		return xasprintf("%s[%s]", srv->name, srv->addr);
	return xasprintf("%s[%s]:%u", srv->name, srv->addr, srv->port);
}

struct server_list {
	struct smtp_server *v;
	size_t		 n;
	size_t		 max;	/* 0: no limit */
};

static void
add_server(struct server_list *l, const char *name, int family,
    const unsigned char *bin, unsigned port, int dnssec)
{
	char text[INET6_ADDRSTRLEN];
	struct smtp_server *s;

	if (l->max > 0 && l->n >= l->max)
		return;
	if (inet_ntop(family, bin, text, sizeof(text)) == NULL)
		return;
	l->v = xreallocarray(l->v, l->n + 1, sizeof(*l->v));
	s = &l->v[l->n++];
	memset(s, 0, sizeof(*s));
	s->name = xstrdup(name);
	s->addr = xstrdup(text);
	s->family = family;
	memcpy(s->bin, bin, family == AF_INET ? 4 : 16);
	s->port = port;
	s->dnssec = dnssec;
}

/* Which address families inet_protocols allows: bit 1 IPv4, 2 IPv6. */
static int
protocols(void)
{
	char **v = config_list("inet_protocols");
	int m = 0;

	for (size_t i = 0; v[i] != NULL; i++) {
		if (strcasecmp(v[i], "all") == 0)
			m |= 3;
		else if (strcasecmp(v[i], "ipv4") == 0)
			m |= 1;
		else if (strcasecmp(v[i], "ipv6") == 0)
			m |= 2;
	}
	strv_free(v);
	return m != 0 ? m : 3;
}

static int
lookup_ms(void)
{
	return (int)config_time("dns_lookup_timeout") * 1000;
}

/* How much a failure tells: a DNS failure outranks "no such record",
 * which outranks "no such name". */
static int
fail_rank(enum dns_status st)
{
	return st == DNS_TEMPFAIL ? 2 : st == DNS_NODATA ? 1 : 0;
}

/*
 * Add host's addresses. Returns DNS_FOUND when it added any, else its
 * most telling failure. *last keeps the most telling failed answer seen
 * so far (across calls), whose reason the caller reports. secure: the
 * answer that named host was DNSSEC-validated.
 */
static enum dns_status
add_host(struct dns_ctx *dns, struct server_list *l, const char *host,
    unsigned port, int secure, struct dns_result *last)
{
	static const int types[] = { DNS_T_AAAA, DNS_T_A };
	enum dns_status best = DNS_NXDOMAIN;
	int want = protocols(), found = 0;

	for (size_t t = 0; t < 2; t++) {
		struct dns_result res;

		if (!(want & (types[t] == DNS_T_A ? 1 : 2)))
			continue;
		memset(&res, 0, sizeof(res));
		dns_lookup(dns, host, types[t], lookup_ms(), &res);
		if (res.status == DNS_FOUND) {
			for (size_t i = 0; i < res.nrr; i++)
				add_server(l, host, res.rr[i].family,
				    res.rr[i].addr, port, secure &&
				    res.security == DNS_SECURE);
			found = 1;
		} else {
			if (fail_rank(res.status) > fail_rank(best))
				best = res.status;
			if (last->name == NULL ||
			    fail_rank(res.status) > fail_rank(last->status)) {
				dns_result_free(last);
				*last = res;
				continue;
			}
		}
		dns_result_free(&res);
	}
	return found ? DNS_FOUND : best;
}

/* "Host or domain name not found. Name service error for name=b.test
 * type=MX: Host not found" */
static void
dns_fail(struct smtp_fail *fail, enum deliver_status st, const char *dsn,
    const struct dns_result *res)
{
	smtp_fail_set(fail, st, dsn, "Host or domain name not found. Name "
	    "service error for name=%s type=%s: %s", res->name,
	    dns_type_name(res->type), res->reason ? res->reason : "?");
}

static int
literal_server(const struct smtp_nexthop *nh, struct server_list *l,
    struct smtp_fail *fail)
{
	unsigned char bin[16];
	int family = AF_INET;

	if (inet_pton(AF_INET, nh->host, bin) != 1) {
		family = AF_INET6;
		if (inet_pton(AF_INET6, nh->host, bin) != 1) {
			smtp_fail_set(fail, DELIVER_DEFERRED, "4.3.5",
			    "bad address literal %s", nh->host);
			return -1;
		}
	}
	if (!(protocols() & (family == AF_INET ? 1 : 2))) {
		smtp_fail_set(fail, DELIVER_DEFERRED, "4.3.5", "%s: %s is "
		    "disabled by inet_protocols", nh->host,
		    family == AF_INET ? "IPv4" : "IPv6");
		return -1;
	}
	add_server(l, nh->host, family, bin, nh->port, 0);
	return 0;
}

/* The addresses of a host named as next hop, or of a domain without MX. */
static int
host_servers(struct dns_ctx *dns, const char *host, unsigned port,
    struct server_list *l, struct smtp_fail *fail)
{
	struct dns_result last;
	enum dns_status st;

	memset(&last, 0, sizeof(last));
	st = add_host(dns, l, host, port, 1, &last);
	switch (st) {
	case DNS_FOUND:
		break;
	case DNS_TEMPFAIL:
		dns_fail(fail, DELIVER_DEFERRED, "4.4.3", &last);
		break;
	case DNS_NXDOMAIN:
		dns_fail(fail, DELIVER_BOUNCED, "5.1.2", &last);
		break;
	default:
		dns_fail(fail, DELIVER_BOUNCED, "5.4.4", &last);
		break;
	}
	dns_result_free(&last);
	return st == DNS_FOUND ? 0 : -1;
}

static int
mx_servers(struct dns_ctx *dns, const struct smtp_nexthop *nh,
    struct server_list *l, struct smtp_fail *fail)
{
	struct dns_result mx, last;
	enum dns_status st, worst = DNS_NXDOMAIN;
	int rc = -1;

	memset(&mx, 0, sizeof(mx));
	dns_lookup(dns, nh->host, DNS_T_MX, lookup_ms(), &mx);
	switch (mx.status) {
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX, the domain is its own mail host. */
		dns_result_free(&mx);
		return host_servers(dns, nh->host, nh->port, l, fail);
	case DNS_NXDOMAIN:
		dns_fail(fail, DELIVER_BOUNCED, "5.1.2", &mx);
		dns_result_free(&mx);
		return -1;
	case DNS_NULLMX:
		smtp_fail_set(fail, DELIVER_BOUNCED, "5.1.10", "Domain %s "
		    "does not accept mail (nullMX)", nh->host);
		dns_result_free(&mx);
		return -1;
	case DNS_TEMPFAIL:
		dns_fail(fail, DELIVER_DEFERRED, "4.4.3", &mx);
		dns_result_free(&mx);
		return -1;
	case DNS_FOUND:
		break;
	}
	dns_mx_sort(mx.rr, mx.nrr);
	memset(&last, 0, sizeof(last));
	for (size_t i = 0; i < mx.nrr; i++) {
		if (l->max > 0 && l->n >= l->max)
			break;
		st = add_host(dns, l, mx.rr[i].text, nh->port,
		    mx.security == DNS_SECURE, &last);
		if (st == DNS_FOUND)
			rc = 0;
		else if (st == DNS_TEMPFAIL)
			worst = DNS_TEMPFAIL;
		else if (worst != DNS_TEMPFAIL)
			worst = st;
	}
	if (rc < 0) {
		/* No MX host has an address: wait if DNS may yet tell. */
		if (worst == DNS_TEMPFAIL)
			dns_fail(fail, DELIVER_DEFERRED, "4.4.3", &last);
		else
			dns_fail(fail, DELIVER_BOUNCED, "5.4.4", &last);
	}
	dns_result_free(&last);
	dns_result_free(&mx);
	return rc;
}

int
smtp_find_servers(struct dns_ctx *dns, const struct smtp_nexthop *nh,
    struct smtp_server **servers, size_t *nservers, struct smtp_fail *fail)
{
	struct server_list l = { NULL, 0, 0 };
	int rc;

	l.max = (size_t)config_int("smtp_mx_address_limit");
	if (nh->kind == NEXTHOP_UNIX) {
		l.v = xcalloc(1, sizeof(*l.v));
		l.v->name = xstrdup("localhost");
		l.v->addr = xstrdup(nh->path);
		l.v->family = AF_UNIX;
		l.n = 1;
		rc = 0;
	} else if (nh->literal)
		rc = literal_server(nh, &l, fail);
	else if (nh->kind == NEXTHOP_HOST)
		rc = host_servers(dns, nh->host, nh->port, &l, fail);
	else
		rc = mx_servers(dns, nh, &l, fail);
	if (rc < 0) {
		smtp_servers_free(l.v, l.n);
		*servers = NULL;
		*nservers = 0;
		return -1;
	}
	*servers = l.v;
	*nservers = l.n;
	return 0;
}
