/*
 * smtp_nexthop - what a next hop from qmgr (transport_maps, relayhost,
 * or the recipient's domain) means to the smtp and lmtp clients:
 *
 *	domain, domain:port		MX lookup, then the servers' addresses
 *	[host], [host]:port		no MX lookup; host may be a name or an
 *	[1.2.3.4], [ipv6:::1]:2525	IP address literal
 *	inet:...			the same; "inet:" is only a prefix
 *	unix:/path			an LMTP (or SMTP) server's socket
 *
 * For LMTP a bare "host" or "host:port" is a host, not a mail domain, as
 * LMTP servers are named directly. A port is a number or a service name
 * from /etc/services. Pure parsing: called by smtp.c for every request
 * and by the unit tests; a malformed next hop is an error for the caller
 * to defer on (it is a configuration mistake, which may be corrected).
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "alloc.h"
#include "num.h"
#include "smtp.h"

void
smtp_nexthop_free(struct smtp_nexthop *nh)
{
	free(nh->host);
	free(nh->path);
	memset(nh, 0, sizeof(*nh));
}

static int
parse_port(const char *s, unsigned *port)
{
	struct servent *se;
	unsigned long n;

	if (*s == '\0')
		return -1;
	if (parse_ulong(s, 1, 65535, &n) == 0) {
		*port = (unsigned)n;
		return 0;
	}
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-'))
			return -1;
	if ((se = getservbyname(s, "tcp")) == NULL)
		return -1;
	*port = ntohs((unsigned short)se->s_port);
	return 0;
}

/* A host name we are willing to look up: letters, digits, '-', '_'
 * (seen in the wild) and dots, at most 255 bytes, no empty label. */
static int
host_name_ok(const char *s)
{
	size_t len = strlen(s), label = 0;

	if (len == 0 || len > 255)
		return 0;
	for (const char *p = s; *p; p++) {
		if (*p == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

int
smtp_nexthop_parse(const char *text, int lmtp, struct smtp_nexthop *nh,
    char **err)
{
	char *host = NULL, *colon, *close;
	const char *s = text;
	unsigned char bin[16];
	size_t len;

	memset(nh, 0, sizeof(*nh));
	nh->port = lmtp ? LMTP_PORT : SMTP_PORT;
	if (strncasecmp(s, "unix:", 5) == 0) {
		if (s[5] == '\0') {
			*err = xasprintf("bad next hop \"%s\": no socket path",
			    text);
			return -1;
		}
		nh->kind = NEXTHOP_UNIX;
		nh->path = xstrdup(s + 5);
		return 0;
	}
	if (strncasecmp(s, "inet:", 5) == 0)
		s += 5;
	if (*s == '[') {
		if ((close = strchr(s, ']')) == NULL || close == s + 1)
			goto bad;
		host = xstrndup(s + 1, (size_t)(close - s - 1));
		nh->kind = NEXTHOP_HOST;
		if (close[1] == ':') {
			if (parse_port(close + 2, &nh->port) < 0)
				goto bad_port;
		} else if (close[1] != '\0')
			goto bad;
		/* [ipv6:...] is the RFC 5321 form; [::1] is common too. */
		if (strncasecmp(host, "ipv6:", 5) == 0) {
			if (inet_pton(AF_INET6, host + 5, bin) != 1)
				goto bad;
			memmove(host, host + 5, strlen(host + 5) + 1);
			nh->literal = 1;
		} else if (inet_pton(AF_INET, host, bin) == 1 ||
		    inet_pton(AF_INET6, host, bin) == 1)
			nh->literal = 1;
	} else {
		host = xstrdup(s);
		if ((colon = strchr(host, ':')) != NULL) {
			*colon = '\0';
			if (parse_port(colon + 1, &nh->port) < 0)
				goto bad_port;
		}
		nh->kind = lmtp ? NEXTHOP_HOST : NEXTHOP_MX;
		/* A bare address is a host even for SMTP: nobody has MX
		 * records under 192.0.2.1. */
		if (inet_pton(AF_INET, host, bin) == 1) {
			nh->kind = NEXTHOP_HOST;
			nh->literal = 1;
		}
	}
	if (!nh->literal) {
		len = strlen(host);
		if (len > 0 && host[len - 1] == '.')
			host[len - 1] = '\0';
		if (!host_name_ok(host))
			goto bad;
		addr_lowercase(host);
	}
	nh->host = host;
	return 0;
bad_port:
	*err = xasprintf("bad next hop \"%s\": bad port", text);
	free(host);
	memset(nh, 0, sizeof(*nh));
	return -1;
bad:
	*err = xasprintf("bad next hop \"%s\"", text);
	free(host);
	memset(nh, 0, sizeof(*nh));
	return -1;
}
