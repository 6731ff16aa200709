/*
 * qmgr_resolve - where a recipient goes: virtual alias rewriting, then
 * its address class and transport_maps, giving a transport and next
 * hop or a verdict.
 *
 * Called by qmgr_message.c for every recipient still to deliver, each
 * time its message enters active/ (so a fixed table fixes queued mail),
 * by qmgr_scan.c to tell which mail a "flush site" concerns, and by
 * tests/unit/test_qmgr_resolve.c with inline: tables set through
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
 *	5. in relay_domains: relay_transport ("relay"); anything else:
 *	   default_transport ("smtp"). The next hop is the one in that
 *	   parameter ("smtp:[gw]"), else the sender's entry in
 *	   sender_dependent_relayhost_maps (the address, then "@domain",
 *	   "<>" for the null sender), else relayhost, else the domain,
 *	   looked up by MX; only this last one may fall back to
 *	   fallback_relay.
 *	6. transport_maps, for every class but 3: the address, the address
 *	   without its recipient_delimiter extension, the domain, ".parent"
 *	   domains (and "parent" when parent_domain_matches_subdomains
 *	   names transport_maps), "*". The value "transport:nexthop"
 *	   replaces what it gives (an empty part keeps the class's);
 *	   error:text bounces at once, retry:text defers, discard:text
 *	   drops the recipient as delivered.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "config.h"
#include "domainlist.h"
#include "log.h"
#include "qmgr.h"
#include "strv.h"
#include "table.h"

static struct {
	int	 ready;
	char	*myorigin;
	char	*delimiter;	/* recipient_delimiter */
	struct domainlist *mydestination;
	struct domainlist *alias_domains;
	struct domainlist *mailbox_domains;
	struct domainlist *relay_domains;
	struct table **alias_maps;
	size_t	 nalias_maps;
	struct table **transport_maps;
	size_t	 ntransport_maps;
	int	 transport_parents;	/* "parent" keys as well as ".parent" */
	struct table **sender_relay_maps;
	size_t	 nsender_relay_maps;
	char	*relayhost;
	char	*default_transport;	/* "transport[:nexthop]" */
	char	*relay_transport;
	char	**my_addrs;	/* our addresses, inet_ntop form */
	long	 recursion_limit;
	long	 expansion_limit;
} rs;

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

static void
tables_open(const char *param, struct table ***v, size_t *n)
{
	char **names = config_list(param), *err = NULL;
	size_t i;

	*n = strv_len(names);
	*v = xcalloc(*n ? *n : 1, sizeof(**v));
	for (i = 0; i < *n; i++)
		if (((*v)[i] = table_open(names[i], &err)) == NULL)
			msg_fatal("%s: %s", param, err);
	strv_free(names);
}

static void
tables_close(struct table **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		table_close(v[i]);
	free(v);
}

static struct domainlist *
list_open(const char *param)
{
	struct domainlist *dl;
	char *err = NULL;

	if ((dl = domainlist_open(param, &err)) == NULL)
		msg_fatal("%s", err);
	return dl;
}

void
qmgr_resolve_free(void)
{
	if (!rs.ready)
		return;
	free(rs.myorigin);
	free(rs.delimiter);
	domainlist_free(rs.mydestination);
	domainlist_free(rs.alias_domains);
	domainlist_free(rs.mailbox_domains);
	domainlist_free(rs.relay_domains);
	tables_close(rs.alias_maps, rs.nalias_maps);
	tables_close(rs.transport_maps, rs.ntransport_maps);
	tables_close(rs.sender_relay_maps, rs.nsender_relay_maps);
	free(rs.relayhost);
	free(rs.default_transport);
	free(rs.relay_transport);
	strv_free(rs.my_addrs);
	memset(&rs, 0, sizeof(rs));
}

/* A main.cf next hop or transport spec, trimmed; "" when unset. */
static char *
trimmed(const char *param)
{
	const char *v = config_str(param);
	size_t len;

	while (*v == ' ' || *v == '\t')
		v++;
	len = strlen(v);
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	return xstrndup(v, len);
}

void
qmgr_resolve_init(void)
{
	qmgr_resolve_free();
	rs.myorigin = xstrdup(config_str("myorigin"));
	rs.delimiter = xstrdup(config_str("recipient_delimiter"));
	rs.mydestination = list_open("mydestination");
	rs.alias_domains = list_open("virtual_alias_domains");
	rs.mailbox_domains = list_open("virtual_mailbox_domains");
	rs.relay_domains = list_open("relay_domains");
	tables_open("virtual_alias_maps", &rs.alias_maps, &rs.nalias_maps);
	tables_open("transport_maps", &rs.transport_maps,
	    &rs.ntransport_maps);
	rs.transport_parents = domainlist_parent_matching("transport_maps");
	tables_open("sender_dependent_relayhost_maps", &rs.sender_relay_maps,
	    &rs.nsender_relay_maps);
	rs.relayhost = trimmed("relayhost");
	rs.default_transport = trimmed("default_transport");
	rs.relay_transport = trimmed("relay_transport");
	if (rs.default_transport[0] == '\0' ||
	    rs.default_transport[0] == ':')
		msg_fatal("default_transport: no transport name in \"%s\"",
		    rs.default_transport);
	if (rs.relay_transport[0] == '\0' || rs.relay_transport[0] == ':')
		msg_fatal("relay_transport: no transport name in \"%s\"",
		    rs.relay_transport);
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
	return domainlist_match(rs.mydestination, domain, err);
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

static void
route_defer(struct qmgr_routes *out, const char *addr, const char *what,
    const char *err)
{
	char *why = xasprintf("%s lookup error: %s", what, err);

	route_add(out, addr, ROUTE_DEFER, "4.3.0", why);
	free(why);
}

/*
 * Look key up in the tables, first hit wins: TABLE_FOUND with *value,
 * TABLE_NOTFOUND, or TABLE_ERROR with *err.
 */
static int
maps_lookup(struct table **v, size_t n, const char *key, char **value,
    char **err)
{
	size_t i;
	int r;

	for (i = 0; i < n; i++)
		if ((r = table_lookup(v[i], key, value, err)) != TABLE_NOTFOUND)
			return r;
	return TABLE_NOTFOUND;
}

/*
 * transport_maps for a recipient: the whole address, the address
 * without its extension (user+ext@domain -> user@domain), the domain,
 * each parent domain as ".parent" (and "parent" when
 * parent_domain_matches_subdomains names transport_maps), then "*".
 */
static int
transport_lookup(const char *addr, const char *domain, char **value,
    char **err)
{
	const char *at = strrchr(addr, '@'), *d;
	char *bare = NULL;
	size_t i, ulen;
	int r;

	if ((r = maps_lookup(rs.transport_maps, rs.ntransport_maps, addr,
	    value, err)) != TABLE_NOTFOUND)
		return r;
	if (at != NULL && rs.delimiter[0] != '\0') {
		ulen = (size_t)(at - addr);
		for (i = 0; i < ulen && strchr(rs.delimiter, addr[i]) == NULL;
		    i++)
			;
		if (i > 0 && i < ulen) {
			bare = xasprintf("%.*s%s", (int)i, addr, at);
			r = maps_lookup(rs.transport_maps, rs.ntransport_maps,
			    bare, value, err);
			free(bare);
			if (r != TABLE_NOTFOUND)
				return r;
		}
	}
	if (domain[0] == '\0')
		return TABLE_NOTFOUND;
	if ((r = maps_lookup(rs.transport_maps, rs.ntransport_maps, domain,
	    value, err)) != TABLE_NOTFOUND)
		return r;
	for (d = strchr(domain, '.'); d != NULL && d[1] != '\0';
	    d = strchr(d + 1, '.')) {
		if ((r = maps_lookup(rs.transport_maps, rs.ntransport_maps, d,
		    value, err)) != TABLE_NOTFOUND)
			return r;
		if (rs.transport_parents && (r = maps_lookup(rs.transport_maps,
		    rs.ntransport_maps, d + 1, value, err)) != TABLE_NOTFOUND)
			return r;
	}
	return maps_lookup(rs.transport_maps, rs.ntransport_maps, "*", value,
	    err);
}

/*
 * The relay host for mail from sender, from sender_dependent_relayhost_
 * maps (the address, then "@domain"; "<>" for the null sender) or
 * relayhost. TABLE_FOUND with *value (allocated), TABLE_NOTFOUND when
 * neither gives one, TABLE_ERROR with *err.
 */
static int
relayhost_for(const char *sender, char **value, char **err)
{
	const char *at;
	char *key;
	int r = TABLE_NOTFOUND;

	if (rs.nsender_relay_maps > 0) {
		if (sender[0] == '\0')
			r = maps_lookup(rs.sender_relay_maps,
			    rs.nsender_relay_maps, "<>", value, err);
		else {
			r = maps_lookup(rs.sender_relay_maps,
			    rs.nsender_relay_maps, sender, value, err);
			if (r == TABLE_NOTFOUND &&
			    (at = strrchr(sender, '@')) != NULL) {
				key = xstrdup(at);
				r = maps_lookup(rs.sender_relay_maps,
				    rs.nsender_relay_maps, key, value, err);
				free(key);
			}
		}
		if (r == TABLE_FOUND && (*value)[0] == '\0') {
			/* An empty result says nothing: relayhost then. */
			free(*value);
			*value = NULL;
			r = TABLE_NOTFOUND;
		}
		if (r != TABLE_NOTFOUND)
			return r;
	}
	if (rs.relayhost[0] == '\0')
		return TABLE_NOTFOUND;
	*value = xstrdup(rs.relayhost);
	return TABLE_FOUND;
}

/* Split "transport:nexthop" (either part may be empty). */
static void
spec_split(const char *spec, char **transport, char **nexthop)
{
	const char *colon = strchr(spec, ':');
	const char *p;
	size_t len;

	while (*spec == ' ' || *spec == '\t')
		spec++;
	if (colon == NULL) {
		*transport = xstrdup(spec);
		*nexthop = xstrdup("");
	} else {
		*transport = xstrndup(spec, (size_t)(colon - spec));
		p = colon + 1;
		while (*p == ' ' || *p == '\t')
			p++;
		*nexthop = xstrdup(p);
	}
	len = strlen(*transport);
	while (len > 0 && ((*transport)[len - 1] == ' ' ||
	    (*transport)[len - 1] == '\t'))
		(*transport)[--len] = '\0';
}

/*
 * error:, retry: and discard: take the next hop as their text; error:
 * and retry: may start it with an RFC 3463 code of their class
 * ("error:5.1.1 no such user here").
 */
static void
route_verdict(struct qmgr_routes *out, const char *addr,
    enum qmgr_route_status status, const char *text)
{
	char cls = status == ROUTE_DEFER ? '4' : status == ROUTE_BOUNCE ?
	    '5' : '2';
	const char *p = text;
	char dsn[16];
	size_t n;

	snprintf(dsn, sizeof(dsn), "%c.0.0", cls);
	if (p[0] == cls && p[1] == '.') {
		n = strspn(p + 2, "0123456789.");
		if (n >= 3 && n + 2 < sizeof(dsn) && (p[n + 2] == ' ' ||
		    p[n + 2] == '\0') && strchr(p + 2, '.') != NULL) {
			memcpy(dsn, p, n + 2);
			dsn[n + 2] = '\0';
			p += n + 2;
			while (*p == ' ')
				p++;
		}
	}
	if (*p == '\0')
		p = status == ROUTE_DISCARD ? "discarded" :
		    status == ROUTE_BOUNCE ? "mail for this address is "
		    "refused by transport_maps" : "delivery deferred by "
		    "transport_maps";
	route_add(out, addr, status, dsn, p);
}

/*
 * The address class of a final address, then transport_maps. The next
 * hop of mail delivered by its domain is the domain, lowercased so that
 * one destination collects all its mail.
 */
static void
qmgr_resolve_class(const char *addr, const char *sender,
    struct qmgr_routes *out)
{
	char *domain, *err = NULL, *value = NULL, *transport = NULL;
	char *nexthop = NULL, *t = NULL, *h = NULL, *p;
	int r, fallback = 0;

	domain = xstrdup(addr_domain(addr));
	for (p = domain; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);

	if ((r = is_local_domain(domain, &err)) != 0) {
		if (r < 0) {
			route_defer(out, addr, "mydestination", err);
			goto done;
		}
		transport = xstrdup("local");
		nexthop = xstrdup(domain);
	} else if ((r = domainlist_match(rs.alias_domains, domain,
	    &err)) != 0) {
		if (r > 0)
			route_add(out, addr, ROUTE_BOUNCE, "5.1.1",
			    "User unknown in virtual alias table");
		else
			route_defer(out, addr, "virtual_alias_domains", err);
		goto done;
	} else if ((r = domainlist_match(rs.mailbox_domains, domain,
	    &err)) != 0) {
		if (r < 0) {
			route_defer(out, addr, "virtual_mailbox_domains", err);
			goto done;
		}
		transport = xstrdup("local");
		nexthop = xstrdup(domain);
	} else {
		if ((r = domainlist_match(rs.relay_domains, domain,
		    &err)) < 0) {
			route_defer(out, addr, "relay_domains", err);
			goto done;
		}
		/* The next hop, most specific first: the transport
		 * parameter's own, the sender's relay host, relayhost,
		 * the domain (by MX). */
		spec_split(r > 0 ? rs.relay_transport : rs.default_transport,
		    &transport, &nexthop);
		if (nexthop[0] == '\0') {
			free(nexthop);
			nexthop = NULL;
			r = relayhost_for(sender, &nexthop, &err);
			if (r == TABLE_ERROR) {
				route_defer(out, addr,
				    "sender_dependent_relayhost_maps", err);
				goto done;
			}
			if (r == TABLE_NOTFOUND) {
				nexthop = xstrdup(domain);
				fallback = 1;
			}
		}
	}

	/* transport_maps override the class, entirely or in part. */
	r = rs.ntransport_maps > 0 ? transport_lookup(addr, domain, &value,
	    &err) : TABLE_NOTFOUND;
	if (r == TABLE_ERROR) {
		route_defer(out, addr, "transport_maps", err);
		goto done;
	}
	if (r == TABLE_FOUND) {
		spec_split(value, &t, &h);
		if (strcmp(t, "error") == 0) {
			route_verdict(out, addr, ROUTE_BOUNCE, h);
			goto done;
		}
		if (strcmp(t, "retry") == 0) {
			route_verdict(out, addr, ROUTE_DEFER, h);
			goto done;
		}
		if (strcmp(t, "discard") == 0) {
			route_verdict(out, addr, ROUTE_DISCARD, h);
			goto done;
		}
		if (t[0] != '\0') {
			free(transport);
			transport = t;
			t = NULL;
		}
		if (h[0] != '\0') {
			free(nexthop);
			nexthop = h;
			h = NULL;
			fallback = 0;
		}
	}
	if (strcmp(transport, "local") == 0 || strcmp(transport, "lmtp") == 0)
		fallback = 0;
	route_add(out, addr, ROUTE_DELIVER, transport, nexthop);
	out->v[out->n - 1].fallback = fallback;
done:
	free(t);
	free(h);
	free(value);
	free(transport);
	free(nexthop);
	free(err);
	free(domain);
}

/* The host of a next hop: "[mx.b.test]:25" -> "mx.b.test". */
static char *
nexthop_host(const char *nexthop)
{
	const char *p = nexthop, *end;

	if (strncasecmp(p, "inet:", 5) == 0)
		p += 5;
	if (*p == '[') {
		p++;
		end = strchr(p, ']');
	} else
		end = strchr(p, ':');
	if (end == NULL)
		end = p + strlen(p);
	return xstrndup(p, (size_t)(end - p));
}

static int
domain_at_or_below(const char *domain, const char *site)
{
	size_t dl = strlen(domain), sl = strlen(site);

	if (sl == 0 || dl < sl)
		return 0;
	if (strcasecmp(domain + dl - sl, site) != 0)
		return 0;
	return dl == sl || domain[dl - sl - 1] == '.';
}

int
qmgr_site_match(const char *site, const char *domain, const char *nexthop)
{
	char *host;
	int r = 0;

	if (site[0] == '.')
		site++;
	if (domain != NULL && domain_at_or_below(domain, site))
		return 1;
	if (nexthop != NULL) {
		host = nexthop_host(nexthop);
		r = domain_at_or_below(host, site);
		free(host);
	}
	return r;
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
qmgr_resolve(const char *rcpt, const char *sender, int rewrite,
    struct qmgr_routes *out)
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
		qmgr_resolve_class(addr, sender, out);
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
			qmgr_resolve_class(x.out[i], sender, out);
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
