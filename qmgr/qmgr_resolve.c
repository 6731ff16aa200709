/*
 * qmgr_resolve - where a recipient goes: virtual alias rewriting, then
 * its address class, giving a transport and next hop or a verdict.
 *
 * Called by qmgr_message.c for every recipient still to deliver, each
 * time its message enters active/ (so a fixed table fixes queued mail),
 * and by tests/unit/test_qmgr_resolve.c with inline: tables set through
 * config_set().
 *
 * Order, as in Postfix:
 *	1. virtual_alias_maps rewrite the address, recursively (a result
 *	   is looked up again) up to virtual_alias_recursion_limit levels
 *	   and virtual_alias_expansion_limit addresses; an address that
 *	   maps to itself, directly or through a loop, is kept as it is.
 *	2. the domain is in mydestination, or is an address literal
 *	   [1.2.3.4] of one of our inet_interfaces: transport local,
 *	   nexthop the domain.
 *	3. in virtual_alias_domains (and not rewritten in step 1): the
 *	   address does not exist, bounce 5.1.1.
 *	4. in virtual_mailbox_domains: transport local too; the local agent
 *	   does virtual mailbox delivery.
 *	5. anything else is relay mail. There is no smtp transport yet, so
 *	   it is deferred with QMGR_RELAY_REASON; relay_domains, relayhost
 *	   and transport_maps will plug in at qmgr_resolve_class().
 *
 * How it fails: a lookup table that reports an error, or an expansion
 * that runs past its limits, defers the recipient (4.3.0) with the
 * reason, never bounces it: a broken table must not lose mail. A table
 * name that does not parse is a configuration error, fatal at start.
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "qmgr.h"
#include "strv.h"
#include "table.h"

/* One item of a domain list: a name, ".parent" or a table. */
struct domain_item {
	char	*pattern;
	struct table *table;	/* non-NULL: look the domain up here */
	int	 negate;	/* "!pattern": a match means "not in list" */
};

struct domain_list {
	struct domain_item *v;
	size_t	 n;
};

static struct {
	int	 ready;
	char	*myorigin;
	struct domain_list mydestination;
	struct domain_list alias_domains;
	struct domain_list mailbox_domains;
	struct table **alias_maps;
	size_t	 nalias_maps;
	char	**my_addrs;	/* our addresses, inet_ntop form */
	long	 recursion_limit;
	long	 expansion_limit;
} rs;

/* ---- domain lists ---- */

static int
is_table_spec(const char *s)
{
	const char *p;

	if (s[0] == '[')
		return 0;
	for (p = s; *p != '\0' && *p != ':'; p++)
		if (!islower((unsigned char)*p) &&
		    !isdigit((unsigned char)*p) && *p != '_')
			return 0;
	return *p == ':' && p > s;
}

static void
domain_list_init(struct domain_list *dl, const char *param)
{
	char **items = config_list(param), *err = NULL;
	size_t i;

	dl->n = strv_len(items);
	dl->v = xcalloc(dl->n ? dl->n : 1, sizeof(*dl->v));
	for (i = 0; i < dl->n; i++) {
		struct domain_item *it = &dl->v[i];
		const char *p = items[i];

		if (*p == '!') {
			it->negate = 1;
			p++;
		}
		it->pattern = xstrdup(p);
		if (is_table_spec(p) &&
		    (it->table = table_open(p, &err)) == NULL)
			msg_fatal("%s: %s", param, err);
	}
	strv_free(items);
}

static void
domain_list_free(struct domain_list *dl)
{
	size_t i;

	for (i = 0; i < dl->n; i++) {
		free(dl->v[i].pattern);
		if (dl->v[i].table != NULL)
			table_close(dl->v[i].table);
	}
	free(dl->v);
	dl->v = NULL;
	dl->n = 0;
}

/*
 * 1 when domain is in the list, 0 when not, -1 with *err when a table
 * could not answer. The first item that matches decides.
 */
static int
domain_list_match(const struct domain_list *dl, const char *domain,
    char **err)
{
	size_t i, dlen = strlen(domain), plen;
	char *value = NULL;
	int r;

	for (i = 0; i < dl->n; i++) {
		const struct domain_item *it = &dl->v[i];

		if (it->table != NULL) {
			r = table_lookup(it->table, domain, &value, err);
			if (r == TABLE_ERROR)
				return -1;
			free(value);
			value = NULL;
			if (r == TABLE_FOUND)
				return !it->negate;
			continue;
		}
		plen = strlen(it->pattern);
		if (it->pattern[0] == '.') {
			if (dlen > plen && strcasecmp(domain + dlen - plen,
			    it->pattern) == 0)
				return !it->negate;
		} else if (strcasecmp(domain, it->pattern) == 0)
			return !it->negate;
	}
	return 0;
}

/* ---- our addresses, for [1.2.3.4] literals ---- */

/* Normalize an IPv4/IPv6 address text; 0 with out filled, or -1. */
static int
addr_normalize(const char *text, char *out, size_t outlen)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, text, &a4) == 1)
		return inet_ntop(AF_INET, &a4, out, outlen) ? 0 : -1;
	if (inet_pton(AF_INET6, text, &a6) == 1)
		return inet_ntop(AF_INET6, &a6, out, outlen) ? 0 : -1;
	return -1;
}

static void
my_addrs_add(const char *text)
{
	char norm[INET6_ADDRSTRLEN];

	if (addr_normalize(text, norm, sizeof(norm)) == 0 &&
	    !strv_contains(rs.my_addrs, norm))
		strv_add(&rs.my_addrs, norm);
}

static void
my_addrs_init(void)
{
	char **items = config_list("inet_interfaces");
	char host[INET6_ADDRSTRLEN];
	struct ifaddrs *ifa, *p;
	size_t i, len;

	rs.my_addrs = xcalloc(1, sizeof(char *));
	for (i = 0; items[i] != NULL; i++) {
		if (strcasecmp(items[i], "all") == 0) {
			if (getifaddrs(&ifa) < 0) {
				msg_warn("getifaddrs: %m; address literals "
				    "of this host are not recognised");
				continue;
			}
			for (p = ifa; p != NULL; p = p->ifa_next) {
				const void *a;

				if (p->ifa_addr == NULL)
					continue;
				if (p->ifa_addr->sa_family == AF_INET)
					a = &((struct sockaddr_in *)
					    (void *)p->ifa_addr)->sin_addr;
				else if (p->ifa_addr->sa_family == AF_INET6)
					a = &((struct sockaddr_in6 *)
					    (void *)p->ifa_addr)->sin6_addr;
				else
					continue;
				if (inet_ntop(p->ifa_addr->sa_family, a, host,
				    sizeof(host)) != NULL)
					my_addrs_add(host);
			}
			freeifaddrs(ifa);
		} else if (strcasecmp(items[i], "loopback-only") == 0) {
			my_addrs_add("127.0.0.1");
			my_addrs_add("::1");
		} else {
			/* "[::1]" or "1.2.3.4"; host names are skipped. */
			const char *s = items[i];

			len = strlen(s);
			if (s[0] == '[' && len > 2 && s[len - 1] == ']') {
				char *inner = xstrndup(s + 1, len - 2);

				my_addrs_add(inner);
				free(inner);
			} else
				my_addrs_add(s);
		}
	}
	strv_free(items);
}

/* 1 when domain is an address literal of this host. */
static int
is_my_literal(const char *domain)
{
	char norm[INET6_ADDRSTRLEN], *inner;
	size_t len = strlen(domain);
	const char *p;
	int r;

	if (len < 3 || domain[0] != '[' || domain[len - 1] != ']')
		return 0;
	inner = xstrndup(domain + 1, len - 2);
	p = inner;
	if (strncasecmp(p, "ipv6:", 5) == 0)
		p += 5;
	r = addr_normalize(p, norm, sizeof(norm)) == 0 &&
	    strv_contains(rs.my_addrs, norm);
	free(inner);
	return r;
}

/* ---- set-up ---- */

void
qmgr_resolve_free(void)
{
	size_t i;

	if (!rs.ready)
		return;
	free(rs.myorigin);
	domain_list_free(&rs.mydestination);
	domain_list_free(&rs.alias_domains);
	domain_list_free(&rs.mailbox_domains);
	for (i = 0; i < rs.nalias_maps; i++)
		table_close(rs.alias_maps[i]);
	free(rs.alias_maps);
	strv_free(rs.my_addrs);
	memset(&rs, 0, sizeof(rs));
}

void
qmgr_resolve_init(void)
{
	char **maps, *err = NULL;
	size_t i;

	qmgr_resolve_free();
	rs.myorigin = xstrdup(config_str("myorigin"));
	domain_list_init(&rs.mydestination, "mydestination");
	domain_list_init(&rs.alias_domains, "virtual_alias_domains");
	domain_list_init(&rs.mailbox_domains, "virtual_mailbox_domains");
	maps = config_list("virtual_alias_maps");
	rs.nalias_maps = strv_len(maps);
	rs.alias_maps = xcalloc(rs.nalias_maps ? rs.nalias_maps : 1,
	    sizeof(*rs.alias_maps));
	for (i = 0; i < rs.nalias_maps; i++)
		if ((rs.alias_maps[i] = table_open(maps[i], &err)) == NULL)
			msg_fatal("virtual_alias_maps: %s", err);
	strv_free(maps);
	my_addrs_init();
	rs.recursion_limit = config_int("virtual_alias_recursion_limit");
	rs.expansion_limit = config_int("virtual_alias_expansion_limit");
	rs.ready = 1;
}

/* ---- resolution ---- */

static const char *
addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* mydestination or one of our literals: 1, 0, or -1 with *err. */
static int
is_local_domain(const char *domain, char **err)
{
	if (is_my_literal(domain))
		return 1;
	return domain_list_match(&rs.mydestination, domain, err);
}

static void
route_add(struct qmgr_routes *out, const char *addr,
    enum qmgr_route_status status, const char *a, const char *b)
{
	struct qmgr_route *r;

	out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
	r = &out->v[out->n++];
	memset(r, 0, sizeof(*r));
	r->addr = xstrdup(addr);
	r->status = status;
	if (status == ROUTE_DELIVER) {
		r->transport = xstrdup(a);
		r->nexthop = xstrdup(b);
	} else {
		r->dsn = xstrdup(a);
		r->reason = xstrdup(b);
	}
}

/*
 * The address class of a final address (steps 2-5 above). The next hop
 * of local mail is its domain, lowercased so that one destination
 * collects all its mail.
 */
static void
qmgr_resolve_class(const char *addr, struct qmgr_routes *out)
{
	char *domain, *err = NULL, *why;
	char *p;
	int r;

	domain = xstrdup(addr_domain(addr));
	for (p = domain; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);

	if ((r = is_local_domain(domain, &err)) != 0) {
		if (r > 0)
			route_add(out, addr, ROUTE_DELIVER, "local", domain);
		else {
			why = xasprintf("mydestination lookup error: %s", err);
			route_add(out, addr, ROUTE_DEFER, "4.3.0", why);
			free(why);
		}
		goto done;
	}
	if ((r = domain_list_match(&rs.alias_domains, domain, &err)) != 0) {
		if (r > 0)
			route_add(out, addr, ROUTE_BOUNCE, "5.1.1",
			    "User unknown in virtual alias table");
		else {
			why = xasprintf("virtual_alias_domains lookup error: "
			    "%s", err);
			route_add(out, addr, ROUTE_DEFER, "4.3.0", why);
			free(why);
		}
		goto done;
	}
	if ((r = domain_list_match(&rs.mailbox_domains, domain, &err)) != 0) {
		if (r > 0)
			route_add(out, addr, ROUTE_DELIVER, "local", domain);
		else {
			why = xasprintf("virtual_mailbox_domains lookup error: "
			    "%s", err);
			route_add(out, addr, ROUTE_DEFER, "4.3.0", why);
			free(why);
		}
		goto done;
	}
	route_add(out, addr, ROUTE_DEFER, QMGR_RELAY_DSN, QMGR_RELAY_REASON);
done:
	free(err);
	free(domain);
}

struct expansion {
	char	**chain;	/* being expanded, outermost first */
	char	**out;		/* final addresses, no duplicates */
	char	*dsn;
	char	*reason;	/* set: defer the whole recipient */
};

/* A virtual alias result without a domain gets @$myorigin, as Postfix
 * canonicalizes it. */
static char *
qualify(const char *addr)
{
	if (strchr(addr, '@') != NULL)
		return xstrdup(addr);
	return xasprintf("%s@%s", addr, rs.myorigin);
}

static void
expansion_fail(struct expansion *x, const char *dsn, char *reason)
{
	if (x->reason == NULL) {
		x->dsn = xstrdup(dsn);
		x->reason = reason;
	} else
		free(reason);
}

static void
expand(struct expansion *x, const char *addr, long depth)
{
	char *value = NULL, *err = NULL, **items;
	size_t i;
	int r = TABLE_NOTFOUND, local;

	if (x->reason != NULL)
		return;
	if (depth > rs.recursion_limit) {
		expansion_fail(x, "4.3.0", xasprintf("virtual alias expansion "
		    "of %s nests deeper than virtual_alias_recursion_limit "
		    "(%ld)", x->chain[0], rs.recursion_limit));
		return;
	}
	/* "user" alone is looked up only for our own domains. */
	local = is_local_domain(addr_domain(addr), &err);
	if (local < 0) {
		expansion_fail(x, "4.3.0", xasprintf("mydestination lookup "
		    "error: %s", err));
		free(err);
		return;
	}
	for (i = 0; i < rs.nalias_maps && r == TABLE_NOTFOUND; i++)
		r = table_lookup_addr(rs.alias_maps[i], addr, local, &value,
		    &err);
	if (r == TABLE_ERROR) {
		expansion_fail(x, "4.3.0", xasprintf("virtual_alias_maps "
		    "lookup error: %s", err));
		free(err);
		return;
	}
	if (r == TABLE_NOTFOUND) {
		if (!strv_contains(x->out, addr))
			strv_add(&x->out, addr);
		goto limit;
	}
	items = strv_split(value, ", \t\r\n");
	free(value);
	strv_add(&x->chain, addr);
	for (i = 0; items[i] != NULL && x->reason == NULL; i++) {
		char *next = qualify(items[i]);

		/* Itself, or an address already being expanded: keep it
		 * instead of going round forever. */
		if (strv_contains(x->chain, next)) {
			if (!strv_contains(x->out, next))
				strv_add(&x->out, next);
		} else
			expand(x, next, depth + 1);
		free(next);
	}
	strv_free(items);
	/* Pop addr from the chain. */
	free(x->chain[strv_len(x->chain) - 1]);
	x->chain[strv_len(x->chain) - 1] = NULL;
limit:
	if (x->reason == NULL &&
	    strv_len(x->out) > (size_t)rs.expansion_limit)
		expansion_fail(x, "4.3.0", xasprintf("virtual alias expansion "
		    "of %s gives more than virtual_alias_expansion_limit (%ld) "
		    "addresses", x->chain[0] ? x->chain[0] : addr,
		    rs.expansion_limit));
}

void
qmgr_resolve(const char *rcpt, int rewrite, struct qmgr_routes *out)
{
	struct expansion x;
	char *addr;
	size_t i;

	if (!rs.ready)
		qmgr_resolve_init();
	memset(out, 0, sizeof(*out));
	if (rcpt[0] == '\0' || rcpt[strlen(rcpt) - 1] == '@') {
		route_add(out, rcpt, ROUTE_BOUNCE, "5.1.3",
		    "bad address syntax");
		return;
	}
	addr = qualify(rcpt);
	if (!rewrite || rs.nalias_maps == 0) {
		qmgr_resolve_class(addr, out);
		free(addr);
		return;
	}
	memset(&x, 0, sizeof(x));
	x.chain = xcalloc(1, sizeof(char *));
	x.out = xcalloc(1, sizeof(char *));
	expand(&x, addr, 0);
	if (x.reason == NULL && x.out[0] == NULL)
		expansion_fail(&x, "4.3.0", xasprintf("virtual alias expansion "
		    "of %s is empty", addr));
	if (x.reason != NULL) {
		route_add(out, rcpt, ROUTE_DEFER, x.dsn, x.reason);
	} else {
		out->rewritten = strv_len(x.out) != 1 ||
		    strcmp(x.out[0], addr) != 0;
		for (i = 0; x.out[i] != NULL; i++)
			qmgr_resolve_class(x.out[i], out);
	}
	strv_free(x.chain);
	strv_free(x.out);
	free(x.dsn);
	free(x.reason);
	free(addr);
}

void
qmgr_routes_free(struct qmgr_routes *routes)
{
	size_t i;

	for (i = 0; i < routes->n; i++) {
		free(routes->v[i].addr);
		free(routes->v[i].transport);
		free(routes->v[i].nexthop);
		free(routes->v[i].dsn);
		free(routes->v[i].reason);
	}
	free(routes->v);
	memset(routes, 0, sizeof(*routes));
}
