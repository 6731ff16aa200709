/*
 * master_listen - the listening sockets of master.cf services.
 *
 * An inet service is named "host:port", "[ipv6]:port", "port" or a name
 * from /etc/services ("smtp"). Without a host it listens on every
 * address of inet_interfaces ("all": the wildcard, "loopback-only":
 * 127.0.0.1 and ::1, or a list of addresses and host names), each for
 * the IP versions of inet_protocols (ipv4, ipv6, all). IPv6 sockets are
 * IPV6_V6ONLY so that the IPv4 wildcard can be bound beside them. A unix
 * service is the socket queue_directory/private/NAME (private column y)
 * or public/NAME.
 *
 * listen_resolve() only works out the addresses and names them in a key;
 * master compares keys on reload to keep a service's sockets open when
 * its addresses did not change, so that no connection waiting in the
 * backlog is lost. All sockets are non-blocking (every process of the
 * service accepts from the same socket; the ones that lose the race get
 * EAGAIN) and close-on-exec (master places them on descriptor 3 and up
 * for the service's own processes only).
 *
 * Errors come back in *err naming the service, the address and the
 * reason ("bind 127.0.0.1 port 25: Address already in use").
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "master.h"
#include "num.h"
#include "strv.h"

#define LISTEN_BACKLOG	128

#define PROTO_V4	0x1
#define PROTO_V6	0x2

static int
proto_mask(char *const *protocols, int *mask, char **err)
{
	*mask = 0;
	for (size_t i = 0; protocols != NULL && protocols[i] != NULL; i++) {
		if (strcasecmp(protocols[i], "all") == 0)
			*mask |= PROTO_V4 | PROTO_V6;
		else if (strcasecmp(protocols[i], "ipv4") == 0)
			*mask |= PROTO_V4;
		else if (strcasecmp(protocols[i], "ipv6") == 0)
			*mask |= PROTO_V6;
		else {
			*err = xasprintf("bad inet_protocols value \"%s\": "
			    "expected all, ipv4 or ipv6", protocols[i]);
			return -1;
		}
	}
	if (*mask == 0)
		*mask = PROTO_V4 | PROTO_V6;
	return 0;
}

/* "host:port" into its parts; host NULL when there is none. */
static int
split_name(const char *name, char **host, char **port, char **err)
{
	const char *colon, *rb;

	*host = *port = NULL;
	if (name[0] == '[') {
		if ((rb = strchr(name, ']')) == NULL || rb[1] != ':' ||
		    rb[2] == '\0') {
			*err = xasprintf("bad service name \"%s\": expected "
			    "[address]:port", name);
			return -1;
		}
		*host = xstrndup(name + 1, (size_t)(rb - name - 1));
		*port = xstrdup(rb + 2);
		return 0;
	}
	if ((colon = strrchr(name, ':')) == NULL) {
		*port = xstrdup(name);
		return 0;
	}
	if (memchr(name, ':', (size_t)(colon - name)) != NULL) {
		*err = xasprintf("bad service name \"%s\": write an IPv6 "
		    "address in brackets, [address]:port", name);
		return -1;
	}
	if (colon == name || colon[1] == '\0') {
		*err = xasprintf("bad service name \"%s\": expected "
		    "host:port", name);
		return -1;
	}
	*host = xstrndup(name, (size_t)(colon - name));
	*port = xstrdup(colon + 1);
	if (strcmp(*host, "*") == 0) {
		free(*host);
		*host = NULL;
	}
	return 0;
}

static int
port_number(const char *port, unsigned *out, char **err)
{
	struct servent *se;
	unsigned long n;

	if (parse_ulong(port, 1, 65535, &n) == 0) {
		*out = (unsigned)n;
		return 0;
	}
	if ((se = getservbyname(port, "tcp")) != NULL) {
		*out = ntohs((unsigned short)se->s_port);
		return 0;
	}
	*err = xasprintf("unknown port or service name \"%s\"", port);
	return -1;
}

/* Add "address" (numeric) once to the list. */
static void
add_addr(char ***addrs, const char *text)
{
	if (!strv_contains(*addrs, text))
		strv_add(addrs, text);
}

/* Resolve a host (numeric or name) into numeric addresses of mask. */
static int
add_host(char ***addrs, const char *host, int mask, char **err)
{
	struct addrinfo hints, *res, *ai;
	char text[INET6_ADDRSTRLEN], *h;
	size_t len;
	int e, found = 0;

	/* "[::1]" in inet_interfaces, as Postfix allows. */
	len = strlen(host);
	if (len > 2 && host[0] == '[' && host[len - 1] == ']')
		h = xstrndup(host + 1, len - 2);
	else
		h = xstrdup(host);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = mask == PROTO_V4 ? AF_INET :
	    mask == PROTO_V6 ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(h, NULL, &hints, &res)) != 0) {
		*err = xasprintf("cannot find the address of \"%s\": %s", h,
		    gai_strerror(e));
		free(h);
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET && (mask & PROTO_V4))
			inet_ntop(AF_INET,
			    &((struct sockaddr_in *)ai->ai_addr)->sin_addr,
			    text, sizeof(text));
		else if (ai->ai_family == AF_INET6 && (mask & PROTO_V6))
			inet_ntop(AF_INET6,
			    &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
			    text, sizeof(text));
		else
			continue;
		add_addr(addrs, text);
		found = 1;
	}
	freeaddrinfo(res);
	if (!found) {
		*err = xasprintf("\"%s\" has no address for inet_protocols",
		    h);
		free(h);
		return -1;
	}
	free(h);
	return 0;
}

static int
inet_resolve(const struct master_service *def, const struct master_conf *c,
    char **key, char **err)
{
	char *host = NULL, *port = NULL, **addrs = NULL, *why = NULL;
	char *const *ifs = c->inet_interfaces;
	unsigned portnum;
	struct buf b;
	int mask, rc = -1;

	if (split_name(def->name, &host, &port, &why) < 0 ||
	    port_number(port, &portnum, &why) < 0 ||
	    proto_mask(c->inet_protocols, &mask, &why) < 0)
		goto out;
	if (host != NULL) {
		if (add_host(&addrs, host, mask, &why) < 0)
			goto out;
	} else if (ifs == NULL || ifs[0] == NULL ||
	    strv_contains(ifs, "all")) {
		if (mask & PROTO_V4)
			add_addr(&addrs, "0.0.0.0");
		if (mask & PROTO_V6)
			add_addr(&addrs, "::");
	} else {
		for (size_t i = 0; ifs[i] != NULL; i++) {
			if (strcasecmp(ifs[i], "loopback-only") == 0) {
				if (mask & PROTO_V4)
					add_addr(&addrs, "127.0.0.1");
				if (mask & PROTO_V6)
					add_addr(&addrs, "::1");
			} else if (add_host(&addrs, ifs[i], mask, &why) < 0)
				goto out;
		}
	}
	if (addrs == NULL) {
		why = xstrdup("no address to listen on");
		goto out;
	}
	buf_init(&b, BUF_NOMAX);
	buf_printf(&b, "inet %u", portnum);
	for (size_t i = 0; addrs[i] != NULL; i++)
		buf_printf(&b, " %s", addrs[i]);
	*key = buf_steal(&b);
	rc = 0;
out:
	if (rc < 0) {
		*err = xasprintf("service %s: %s", def->name, why);
		free(why);
	}
	free(host);
	free(port);
	strv_free(addrs);
	return rc;
}

int
listen_resolve(const struct master_service *def, const struct master_conf *c,
    char **key, char **err)
{
	switch (def->type) {
	case SERVICE_INET:
		return inet_resolve(def, c, key, err);
	case SERVICE_UNIX:
		if (strchr(def->name, '/') != NULL || def->name[0] == '.') {
			*err = xasprintf("service %s: a unix service name may "
			    "not contain '/' or start with '.'", def->name);
			return -1;
		}
		*key = xasprintf("unix %s/%s/%s", c->queue_dir,
		    def->private ? "private" : "public", def->name);
		return 0;
	default:
		*err = xasprintf("service %s: type %s is not supported",
		    def->name, service_type_name(def->type));
		return -1;
	}
}

static void
add_fd(struct service *svc, int fd)
{
	svc->listen_fds = xreallocarray(svc->listen_fds, svc->nlisten + 1,
	    sizeof(int));
	svc->listen_fds[svc->nlisten++] = fd;
}

/* One inet socket: 0, or the errno with *err set. */
static int
inet_open_one(struct service *svc, const char *addr, unsigned port,
    char **err)
{
	int saved;

	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, on = 1;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)port);
		len = sizeof(*sin6);
	} else {
		*err = xasprintf("bad address %s", addr);
		return EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd < 0) {
		saved = errno;
		*err = xasprintf("socket for %s: %s", addr, strerror(saved));
		return saved;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) < 0)) {
		saved = errno;
		*err = xasprintf("socket options for %s: %s", addr,
		    strerror(saved));
		close(fd);
		return saved;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		saved = errno;
		*err = xasprintf("bind %s port %u: %s", addr, port,
		    strerror(saved));
		close(fd);
		return saved;
	}
	if (listen(fd, LISTEN_BACKLOG) < 0) {
		saved = errno;
		*err = xasprintf("listen on %s port %u: %s", addr, port,
		    strerror(saved));
		close(fd);
		return saved;
	}
	add_fd(svc, fd);
	return 0;
}

static int
inet_open(struct service *svc, char **err)
{
	char **words, *why = NULL;
	unsigned long port;
	int rc = 0;

	/* The key is "inet PORT ADDR...", made by inet_resolve(). */
	words = strv_split(svc->listen_key, " ");
	if (strv_len(words) < 3 || parse_ulong(words[1], 1, 65535,
	    &port) < 0)
		msg_panic("listen_open: bad key \"%s\"", svc->listen_key);
	for (size_t i = 2; words[i] != NULL && rc == 0; i++) {
		rc = inet_open_one(svc, words[i], (unsigned)port, &why);
		if (rc == EAFNOSUPPORT) {
			/* A host without IPv6 (or IPv4): use the rest. */
			msg_warn("service %s: %s; address skipped",
			    svc->name, why);
			free(why);
			why = NULL;
			rc = 0;
		}
	}
	strv_free(words);
	if (rc == 0 && svc->nlisten == 0) {
		rc = EAFNOSUPPORT;
		why = xstrdup("no socket could be opened");
	}
	if (rc != 0) {
		*err = xasprintf("service %s: %s", svc->name, why);
		free(why);
		listen_close(svc, 0);
		return -1;
	}
	return 0;
}

static int
unix_open(struct service *svc, char **err)
{
	struct sockaddr_un sun;
	struct stat st;
	const char *path = svc->listen_key + strlen("unix ");
	mode_t old_mask;
	int fd, r, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		*err = xasprintf("service %s: socket path %s is too long",
		    svc->name, path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	/* A socket left by an earlier run goes; anything else stays. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*err = xasprintf("service %s: %s exists and is not a "
			    "socket", svc->name, path);
			return -1;
		}
		if (unlink(path) < 0) {
			*err = xasprintf("service %s: remove old %s: %s",
			    svc->name, path, strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = xasprintf("service %s: socket: %s", svc->name,
		    strerror(errno));
		return -1;
	}
	/*
	 * The socket is made 0666 by the umask at bind(2), never by a
	 * chmod(2) afterwards: private/ and public/ belong to mail_owner,
	 * who could swap the new socket for a symlink between bind and
	 * chmod and have root open up any file. The folder's mode, not the
	 * socket's, keeps private/ private.
	 */
	old_mask = umask(0111);
	r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	umask(old_mask);
	errno = saved;
	if (r < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
		*err = xasprintf("service %s: listen on %s: %s", svc->name,
		    path, strerror(errno));
		close(fd);
		(void)unlink(path);
		return -1;
	}
	add_fd(svc, fd);
	svc->unix_path = xstrdup(path);
	return 0;
}

int
listen_open(struct service *svc, const struct master_conf *c, char **err)
{
	(void)c;
	if (strncmp(svc->listen_key, "inet ", 5) == 0)
		return inet_open(svc, err);
	return unix_open(svc, err);
}

void
listen_close(struct service *svc, int unlink_path)
{
	for (size_t i = 0; i < svc->nlisten; i++)
		close(svc->listen_fds[i]);
	free(svc->listen_fds);
	svc->listen_fds = NULL;
	svc->nlisten = 0;
	if (svc->unix_path != NULL) {
		if (unlink_path)
			(void)unlink(svc->unix_path);
		free(svc->unix_path);
		svc->unix_path = NULL;
	}
}
