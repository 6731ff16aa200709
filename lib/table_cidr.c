/*
 * table_cidr - "cidr:/path" tables: keys are IP addresses, matched
 * against networks in file order, the first match giving the result,
 * as in Postfix's cidr_table(5):
 *
 *	192.0.2.0/24		result
 *	192.0.2.7		result		(one host: /32)
 *	2001:db8::/32		result
 *	[2001:db8::1]/128	result		(brackets are allowed)
 *
 * IPv4 keys match only IPv4 networks and IPv6 keys only IPv6 ones. A key
 * that is not an address is simply not found.
 *
 * Failure: a line whose network does not parse, whose prefix is out of
 * range, which sets bits past its prefix (a typo that would match
 * something other than what was meant) or has no result fails the
 * table with "path:line: reason"; every lookup then reports
 * TABLE_ERROR.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "num.h"
#include "table.h"

struct cidr_rule {
	int	 family;
	unsigned char addr[16];
	int	 prefix;	/* bits that must match */
	char	*result;
};

struct cidr_table {
	const char *path;
	struct cidr_rule *rules;
	size_t	 n, cap;
};

static int
is_blank(int c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' ||
	    c == '\f' || c == '\v';
}

/* An address in text; its family (AF_INET, AF_INET6) or 0 if none. */
static int
cidr_parse_addr(const char *s, unsigned char *addr)
{
	if (inet_pton(AF_INET, s, addr) == 1)
		return AF_INET;
	if (inet_pton(AF_INET6, s, addr) == 1)
		return AF_INET6;
	return 0;
}

/* Do the first prefix bits of a and b agree? */
static int
cidr_prefix_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
	int bytes = prefix / 8, bits = prefix % 8;
	unsigned char mask;

	if (memcmp(a, b, (size_t)bytes) != 0)
		return 0;
	if (bits == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - bits));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

static int
cidr_line(const char *line, int lineno, void *ctx, char **err)
{
	struct cidr_table *ct = ctx;
	struct cidr_rule r;
	unsigned char masked[16];
	const char *netend, *result, *slash;
	char *net, *addr, *close;
	int maxbits, i;

	netend = line + strcspn(line, " \t\f\v\r");
	for (result = netend; is_blank((unsigned char)*result); result++)
		;
	net = xstrndup(line, (size_t)(netend - line));
	if (*result == '\0') {
		*err = xasprintf("%s:%d: missing result after \"%s\"",
		    ct->path, lineno, net);
		free(net);
		return -1;
	}
	memset(&r, 0, sizeof(r));
	/* "[v6]" or "[v6]/n", or "addr" or "addr/n". */
	if (net[0] == '[' && (close = strchr(net, ']')) != NULL &&
	    (close[1] == '\0' || close[1] == '/')) {
		addr = xstrndup(net + 1, (size_t)(close - net - 1));
		slash = close[1] == '/' ? close + 1 : NULL;
	} else {
		slash = strchr(net, '/');
		addr = xstrndup(net, slash ? (size_t)(slash - net) :
		    strlen(net));
	}
	r.family = cidr_parse_addr(addr, r.addr);
	free(addr);
	if (r.family == 0) {
		*err = xasprintf("%s:%d: \"%s\" is not an IPv4 or IPv6 "
		    "network", ct->path, lineno, net);
		free(net);
		return -1;
	}
	maxbits = r.family == AF_INET ? 32 : 128;
	r.prefix = maxbits;
	if (slash != NULL && parse_int(slash + 1, 0, maxbits, &r.prefix) < 0) {
		*err = xasprintf("%s:%d: bad prefix length in \"%s\" (0-%d)",
		    ct->path, lineno, net, maxbits);
		free(net);
		return -1;
	}
	/* Host bits must be zero: 10.1.2.3/8 is a typo, not a network. */
	memcpy(masked, r.addr, sizeof(masked));
	for (i = r.prefix; i < maxbits; i++)
		masked[i / 8] &= (unsigned char)~(0x80 >> (i % 8));
	if (memcmp(masked, r.addr, (size_t)maxbits / 8) != 0) {
		*err = xasprintf("%s:%d: \"%s\" has bits set past its /%d "
		    "prefix", ct->path, lineno, net, r.prefix);
		free(net);
		return -1;
	}
	free(net);
	r.result = xstrdup(result);
	if (ct->n == ct->cap) {
		ct->cap = ct->cap ? ct->cap * 2 : 16;
		ct->rules = xreallocarray(ct->rules, ct->cap,
		    sizeof(*ct->rules));
	}
	ct->rules[ct->n++] = r;
	return 0;
}

static void
cidr_free(struct cidr_table *ct)
{
	for (size_t i = 0; i < ct->n; i++)
		free(ct->rules[i].result);
	free(ct->rules);
	free(ct);
}

static int
cidr_open(struct table *t, const char *name, char **err)
{
	struct cidr_table *ct;

	ct = xcalloc(1, sizeof(*ct));
	ct->path = name;
	if (table_text_lines(name, cidr_line, ct, err) != 0) {
		cidr_free(ct);
		return -1;
	}
	t->priv = ct;
	return 0;
}

static int
cidr_lookup(struct table *t, const char *key, char **value, char **err)
{
	struct cidr_table *ct = t->priv;
	unsigned char addr[16] = { 0 };
	int family;

	if ((family = cidr_parse_addr(key, addr)) == 0)
		return TABLE_NOTFOUND;
	for (size_t i = 0; i < ct->n; i++) {
		if (ct->rules[i].family == family &&
		    cidr_prefix_equal(ct->rules[i].addr, addr,
		    ct->rules[i].prefix)) {
			*value = xstrdup(ct->rules[i].result);
			return TABLE_FOUND;
		}
	}
	return TABLE_NOTFOUND;
}

static void
cidr_close(struct table *t)
{
	if (t->priv != NULL)
		cidr_free(t->priv);
	t->priv = NULL;
}

const struct table_ops table_cidr_ops = {
	.type = "cidr",
	.open = cidr_open,
	.lookup = cidr_lookup,
	.close = cidr_close,
	.raw_keys = 1,		/* addresses; inet_pton takes either case */
};
