/*
 * smtpd_check - who may send what to whom: the smtpd_*_restrictions
 * lists, the relay check and recipient validation.
 *
 * smtpd.c asks at RCPT TO (smtpd_check_rcpt) and at DATA/BDAT
 * (smtpd_check_data). As with Postfix's smtpd_delay_reject = yes, the
 * client, HELO and sender restrictions are evaluated at RCPT time, when
 * the reply can name the recipient and the log line has the whole
 * envelope; then smtpd_relay_restrictions and
 * smtpd_recipient_restrictions; then, always, whether the recipient
 * exists (Postfix's smtpd_reject_unlisted_recipient = yes), so that Tern
 * never accepts mail it would have to bounce.
 *
 * Each list is read left to right; the first restriction that decides
 * ends the list: "permit" lets the request pass this list (the next list
 * still runs), a reject ends everything. A table that cannot be read
 * gives "451 4.3.0 Temporary lookup failure", never "User unknown".
 *
 * AUTH enters here twice: permit_sasl_authenticated, and the sender
 * login checks, which ask smtpd_sender_login_maps who owns the MAIL
 * FROM address so that one customer cannot send as another.
 * Lists, networks and tables are parsed and opened once per process in
 * smtpd_check_init(), before any chroot; an unknown restriction or a
 * malformed network there is fatal, as every configuration error is.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "alloc.h"
#include "config.h"
#include "domainlist.h"
#include "log.h"
#include "num.h"
#include "stream.h"
#include "strv.h"
#include "table.h"
#include "smtpd.h"

/* How deep access table results may name further restrictions. */
#define CHECK_DEPTH_MAX	10

enum check_result {
	CHECK_DUNNO,		/* no decision: next restriction */
	CHECK_PERMIT,		/* this list passes */
	CHECK_REJECT,		/* refused; ctx->reply says how */
};

/* What a list is evaluated for: names the stage in reject replies. */
enum check_stage {
	STAGE_CLIENT, STAGE_HELO, STAGE_SENDER, STAGE_RECIPIENT, STAGE_DATA,
};

struct check_ctx {
	struct smtpd_session *s;
	const char *rcpt;	/* NULL at DATA */
	char	*reply;		/* set with CHECK_REJECT */
	int	 depth;
};

/* ---- tables, opened once ---- */

static struct table **tables;
static size_t ntables;

/* The table for spec, opened on first use. NULL (with a warning) only
 * for a malformed spec; smtpd_check_init() makes that fatal. */
static struct table *
check_table(const char *spec, char **err)
{
	struct table *t;

	for (size_t i = 0; i < ntables; i++)
		if (strcmp(tables[i]->spec, spec) == 0)
			return tables[i];
	if ((t = table_open(spec, err)) == NULL)
		return NULL;
	tables = xreallocarray(tables, ntables + 1, sizeof(*tables));
	tables[ntables++] = t;
	return t;
}

/* "type:name" with a type made of letters, digits, '_' or '-'. */
static int
is_table_spec(const char *s)
{
	const char *colon = strchr(s, ':');

	if (colon == NULL || colon == s)
		return 0;
	for (const char *p = s; p < colon; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '_' || *p == '-'))
			return 0;
	return 1;
}

/* ---- cached main.cf lists ---- */

struct cached_list {
	const char *param;
	char	**items;
};

static struct cached_list lists[32];
static size_t nlists;

static char **
check_list_items(const char *param)
{
	for (size_t i = 0; i < nlists; i++)
		if (strcmp(lists[i].param, param) == 0)
			return lists[i].items;
	if (nlists == sizeof(lists) / sizeof(lists[0]))
		msg_panic("smtpd_check: too many cached lists");
	lists[nlists].param = param;
	lists[nlists].items = config_list(param);
	return lists[nlists++].items;
}

/* ---- networks (mynetworks and the like) ---- */

struct net {
	int	 family;	/* AF_INET, AF_INET6, or 0 for a table */
	unsigned char addr[16];
	int	 prefix;
	int	 negate;
	struct table *table;
};

struct net_list {
	const char *param;
	struct net *nets;
	size_t	 n;
};

static struct net_list net_lists[8];
static size_t n_net_lists;

/* "1.2.3.4", "10.0.0.0/8", "[::1]/128", "2001:db8::/32"; 0 or -1. */
static int
parse_net(const char *item, struct net *n)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *slash, *end;
	unsigned long prefix;
	size_t len;

	if (*item == '[') {
		if ((end = strchr(item, ']')) == NULL)
			return -1;
		len = (size_t)(end - item - 1);
		item++;
		slash = end[1] == '/' ? end + 1 : NULL;
		if (end[1] != '\0' && slash == NULL)
			return -1;
	} else {
		slash = strchr(item, '/');
		len = slash != NULL ? (size_t)(slash - item) : strlen(item);
	}
	if (len == 0 || len >= sizeof(host))
		return -1;
	memcpy(host, item, len);
	host[len] = '\0';
	memset(n->addr, 0, sizeof(n->addr));
	if (inet_pton(AF_INET, host, n->addr) == 1) {
		n->family = AF_INET;
		n->prefix = 32;
	} else if (inet_pton(AF_INET6, host, n->addr) == 1) {
		n->family = AF_INET6;
		n->prefix = 128;
	} else
		return -1;
	if (slash != NULL) {
		if (parse_ulong(slash + 1, 0, (unsigned long)n->prefix,
		    &prefix) < 0)
			return -1;
		n->prefix = (int)prefix;
	}
	return 0;
}

static int
net_match(const struct net *n, int family, const unsigned char *addr)
{
	int bits = n->prefix, i;

	if (n->family != family)
		return 0;
	for (i = 0; bits >= 8; i++, bits -= 8)
		if (n->addr[i] != addr[i])
			return 0;
	if (bits > 0) {
		unsigned char mask = (unsigned char)(0xff << (8 - bits));

		if ((n->addr[i] & mask) != (addr[i] & mask))
			return 0;
	}
	return 1;
}

static struct net_list *
check_net_list(const char *param)
{
	struct net_list *l;
	char **items, *err = NULL;

	for (size_t i = 0; i < n_net_lists; i++)
		if (strcmp(net_lists[i].param, param) == 0)
			return &net_lists[i];
	if (n_net_lists == sizeof(net_lists) / sizeof(net_lists[0]))
		msg_panic("smtpd_check: too many network lists");
	l = &net_lists[n_net_lists++];
	l->param = param;
	items = check_list_items(param);
	l->nets = xcalloc(strv_len(items) + 1, sizeof(*l->nets));
	for (size_t i = 0; items[i] != NULL; i++) {
		struct net *n = &l->nets[l->n];
		const char *item = items[i];

		if ((n->negate = *item == '!'))
			item++;
		if (parse_net(item, n) == 0) {
			l->n++;
			continue;
		}
		if (*item == '/')
			msg_fatal("%s: file patterns (\"%s\") are not "
			    "supported; use cidr:%s", param, item, item);
		if (!is_table_spec(item))
			msg_fatal("%s: bad network or address \"%s\"", param,
			    item);
		if ((n->table = check_table(item, &err)) == NULL)
			msg_fatal("%s: %s", param, err != NULL ? err : item);
		n->family = 0;
		l->n++;
	}
	return l;
}

int
smtpd_check_addr_list(const char *param, const char *addr)
{
	struct net_list *l = check_net_list(param);
	unsigned char bin[16];
	int family;
	char *value, *err;

	memset(bin, 0, sizeof(bin));
	if (inet_pton(AF_INET, addr, bin) == 1)
		family = AF_INET;
	else if (inet_pton(AF_INET6, addr, bin) == 1)
		family = AF_INET6;
	else
		return 0;
	for (size_t i = 0; i < l->n; i++) {
		const struct net *n = &l->nets[i];
		int hit;

		if (n->table != NULL) {
			value = err = NULL;
			hit = table_lookup(n->table, addr, &value, &err);
			if (hit == TABLE_ERROR) {
				/* Not trusting is the safe side of an error. */
				msg_warn("%s: %s: %s", param, n->table->spec,
				    err != NULL ? err : "lookup error");
				hit = 0;
			}
			free(value);
			free(err);
		} else
			hit = net_match(n, family, bin);
		if (hit)
			return !n->negate;
	}
	return 0;
}

/* ---- domain lists (mydestination, relay_domains, ...) ---- */

/*
 * The four lists that classify a recipient domain, opened once before
 * the jail with the same matcher qmgr uses (lib/domainlist), so that
 * smtpd never accepts what qmgr would route elsewhere.
 */
enum { DL_MYDEST, DL_VALIAS, DL_VMAILBOX, DL_RELAY, DL_COUNT };

static const char *const domain_list_params[DL_COUNT] = {
	"mydestination", "virtual_alias_domains", "virtual_mailbox_domains",
	"relay_domains",
};
static struct domainlist *domain_lists[DL_COUNT];

static void
init_domain_lists(void)
{
	char *err = NULL;

	for (size_t i = 0; i < DL_COUNT; i++) {
		domainlist_free(domain_lists[i]);
		domain_lists[i] = domainlist_open(domain_list_params[i], &err);
		if (domain_lists[i] == NULL)
			msg_fatal("%s", err);
	}
}

/* 1 when domain is in list i, 0 when not, -1 (logged) on a table error. */
static int
domain_list_match(size_t i, const char *domain)
{
	char *err = NULL;
	int r;

	if (domain_lists[i] == NULL)
		init_domain_lists();
	if ((r = domainlist_match(domain_lists[i], domain, &err)) < 0) {
		msg_warn("%s: %s", domain_list_params[i],
		    err != NULL ? err : "lookup error");
		free(err);
	}
	return r;
}

/* ---- replies ---- */

static const char *const stage_text[] = {
	"Client host rejected", "Helo command rejected",
	"Sender address rejected", "Recipient address rejected",
	"Data command rejected",
};

/* What a stage's reply names in <>. */
static const char *
stage_what(struct check_ctx *c, enum check_stage stage)
{
	switch (stage) {
	case STAGE_CLIENT:
		return c->s->client;
	case STAGE_HELO:
		return c->s->helo != NULL ? c->s->helo : "";
	case STAGE_SENDER:
		return c->s->sender != NULL ? c->s->sender : "";
	case STAGE_RECIPIENT:
		return c->rcpt != NULL ? c->rcpt : "";
	case STAGE_DATA:
		break;
	}
	return "DATA";
}

static enum check_result
check_reject(struct check_ctx *c, int code, const char *dsn,
    enum check_stage stage, const char *text)
{
	free(c->reply);
	c->reply = xasprintf("%d %s <%s>: %s: %s", code, dsn,
	    stage_what(c, stage), stage_text[stage], text);
	return CHECK_REJECT;
}

/* A reply without the stage text ("Relay access denied"). */
static enum check_result
check_reject_plain(struct check_ctx *c, int code, const char *dsn,
    const char *what, const char *text)
{
	free(c->reply);
	c->reply = xasprintf("%d %s <%s>: %s", code, dsn, what, text);
	return CHECK_REJECT;
}

static enum check_result
check_tempfail(struct check_ctx *c, const char *what)
{
	return check_reject_plain(c, 451, "4.3.0", what,
	    "Temporary lookup failure");
}

static enum check_result
check_config_error(struct check_ctx *c)
{
	free(c->reply);
	c->reply = xstrdup("451 4.3.5 Server configuration error");
	return CHECK_REJECT;
}

/* ---- address helpers ---- */

/* Lowercased local part and domain of an address, extension kept. */
static void
check_split(const char *addr, char **local, char **domain)
{
	addr_split(addr, local, domain);
	addr_lowercase(*local);
	addr_lowercase(*domain);
}

/* The local part without its extension (recipient_delimiter), or NULL
 * when it has none. */
static char *
strip_extension(const char *local)
{
	const char *delims = config_str("recipient_delimiter");
	size_t n;

	if (*delims == '\0')
		return NULL;
	n = strcspn(local, delims);
	if (n == 0 || local[n] == '\0')
		return NULL;
	return xstrndup(local, n);
}

/* An address is "non-FQDN" without a domain or with a dotless one. */
static int
non_fqdn(const char *addr)
{
	char *local, *domain;
	int bad;

	check_split(addr, &local, &domain);
	bad = *domain == '\0' || (*domain != '[' && strchr(domain, '.') ==
	    NULL);
	free(local);
	free(domain);
	return bad;
}

/* ---- access tables ---- */

static enum check_result check_items(struct check_ctx *, const char *param,
    char **items, enum check_stage);

/* Act on an access table's result for a request in stage. */
static enum check_result
access_result(struct check_ctx *c, const char *table, const char *value,
    enum check_stage stage)
{
	char *copy = xstrdup(value), *word, *text, **items;
	enum check_result r;
	unsigned long code;
	const char *dsn;

	for (word = copy; *word == ' ' || *word == '\t'; word++)
		;
	text = word + strcspn(word, " \t");
	if (*text != '\0') {
		*text++ = '\0';
		text += strspn(text, " \t");
	}
	if (strcasecmp(word, "OK") == 0 || strcasecmp(word, "PERMIT") == 0 ||
	    (*word != '\0' && strspn(word, "0123456789") == strlen(word) &&
	    strlen(word) != 3)) {
		r = CHECK_PERMIT;
	} else if (strcasecmp(word, "DUNNO") == 0) {
		r = CHECK_DUNNO;
	} else if (strcasecmp(word, "REJECT") == 0) {
		r = check_reject(c, 554, "5.7.1", stage,
		    *text != '\0' ? text : "Access denied");
	} else if (strcasecmp(word, "DEFER") == 0) {
		r = check_reject(c, 450, "4.7.1", stage,
		    *text != '\0' ? text : "Access denied");
	} else if (strlen(word) == 3 &&
	    parse_ulong(word, 200, 599, &code) == 0) {
		if (code < 400) {
			r = CHECK_PERMIT;
		} else {
			char cls = code < 500 ? '4' : '5';
			char *d = NULL;

			/* "550 5.7.1 text": keep the client's class right. */
			if (text[0] >= '2' && text[0] <= '5' &&
			    text[1] == '.' && strchr(text, ' ') != NULL) {
				d = xstrndup(text, strcspn(text, " "));
				d[0] = cls;
				text += strcspn(text, " ");
				text += strspn(text, " ");
			}
			dsn = d != NULL ? d : cls == '4' ? "4.7.1" : "5.7.1";
			r = check_reject(c, (int)code, dsn, stage,
			    *text != '\0' ? text : "Access denied");
			free(d);
		}
	} else if (c->depth < CHECK_DEPTH_MAX) {
		/* The result names restrictions: evaluate them here. */
		items = strv_split(value, ", \t");
		c->depth++;
		r = check_items(c, table, items, stage);
		c->depth--;
		strv_free(items);
	} else {
		msg_warn("%s: result \"%s\" nests too deep", table, value);
		r = check_config_error(c);
	}
	free(copy);
	return r;
}

/* Look key up in the access table; FOUND with *value, NOTFOUND, ERROR. */
static int
access_lookup(struct check_ctx *c, struct table *t, const char *key,
    char **value)
{
	char *err = NULL;
	int r;

	*value = NULL;
	r = table_lookup(t, key, value, &err);
	if (r == TABLE_ERROR) {
		msg_warn("%s lookup error for \"%s\": %s", t->spec, key,
		    err != NULL ? err : "unknown");
		free(*value);
		*value = NULL;
	}
	free(err);
	(void)c;
	return r;
}

/* Lookups of a domain and its parents (a.b.c, b.c, c). */
static int
access_domain(struct check_ctx *c, struct table *t, const char *domain,
    char **value)
{
	const char *d = domain;
	int r;

	while (d != NULL && *d != '\0') {
		if ((r = access_lookup(c, t, d, value)) != TABLE_NOTFOUND)
			return r;
		if (d != domain) {
			char *dot = xasprintf(".%s", d);

			r = access_lookup(c, t, dot, value);
			free(dot);
			if (r != TABLE_NOTFOUND)
				return r;
		}
		if ((d = strchr(d, '.')) != NULL)
			d++;
	}
	return TABLE_NOTFOUND;
}

/* check_sender_access / check_recipient_access: user@domain, domain and
 * its parents, user@ ("<>" for the null sender). */
static int
access_addr(struct check_ctx *c, struct table *t, const char *addr,
    char **value)
{
	char *local, *domain, *key;
	int r;

	if (*addr == '\0')
		return access_lookup(c, t, "<>", value);
	if ((r = access_lookup(c, t, addr, value)) != TABLE_NOTFOUND)
		return r;
	check_split(addr, &local, &domain);
	if ((r = access_domain(c, t, domain, value)) == TABLE_NOTFOUND) {
		key = xasprintf("%s@", local);
		r = access_lookup(c, t, key, value);
		free(key);
	}
	free(local);
	free(domain);
	return r;
}

/* check_client_access: the name and its parents, the address, then
 * shorter address prefixes (1.2.3, 1.2, 1 or by IPv6 groups). */
static int
access_client(struct check_ctx *c, struct table *t, char **value)
{
	struct smtpd_session *s = c->s;
	char *key, *cut;
	int r;
	char sep;

	if (strcmp(s->client_name, "unknown") != 0 &&
	    (r = access_domain(c, t, s->client_name, value)) != TABLE_NOTFOUND)
		return r;
	key = xstrdup(s->client_addr);
	sep = strchr(key, ':') != NULL ? ':' : '.';
	r = access_lookup(c, t, key, value);
	while (r == TABLE_NOTFOUND && (cut = strrchr(key, sep)) != NULL) {
		*cut = '\0';
		if (*key != '\0')
			r = access_lookup(c, t, key, value);
	}
	free(key);
	return r;
}

static enum check_result
check_access(struct check_ctx *c, const char *param, const char *name,
    const char *spec, enum check_stage stage)
{
	struct table *t;
	char *value = NULL, *err = NULL;
	enum check_result r;
	int found;

	if ((t = check_table(spec, &err)) == NULL) {
		msg_warn("%s: %s %s: %s", param, name, spec,
		    err != NULL ? err : "bad table");
		free(err);
		return check_config_error(c);
	}
	if (strcmp(name, "check_client_access") == 0)
		found = access_client(c, t, &value);
	else if (strcmp(name, "check_helo_access") == 0)
		found = c->s->helo == NULL ? TABLE_NOTFOUND :
		    access_domain(c, t, c->s->helo, &value);
	else if (strcmp(name, "check_sender_access") == 0)
		found = c->s->sender == NULL ? TABLE_NOTFOUND :
		    access_addr(c, t, c->s->sender, &value);
	else
		found = c->rcpt == NULL ? TABLE_NOTFOUND :
		    access_addr(c, t, c->rcpt, &value);
	if (found == TABLE_ERROR)
		return check_tempfail(c, stage_what(c, stage));
	if (found != TABLE_FOUND)
		return CHECK_DUNNO;
	r = access_result(c, spec, value, stage);
	free(value);
	return r;
}

/* ---- the recipient's domain and whether the recipient exists ---- */

enum rcpt_class {
	CLASS_LOCAL, CLASS_VALIAS, CLASS_VMAILBOX, CLASS_RELAY, CLASS_OTHER,
	CLASS_ERROR,
};

static enum rcpt_class
rcpt_class(const char *domain)
{
	int r;

	if ((r = domain_list_match(DL_MYDEST, domain)) != 0)
		return r < 0 ? CLASS_ERROR : CLASS_LOCAL;
	if ((r = domain_list_match(DL_VALIAS, domain)) != 0)
		return r < 0 ? CLASS_ERROR : CLASS_VALIAS;
	if ((r = domain_list_match(DL_VMAILBOX, domain)) != 0)
		return r < 0 ? CLASS_ERROR : CLASS_VMAILBOX;
	if ((r = domain_list_match(DL_RELAY, domain)) != 0)
		return r < 0 ? CLASS_ERROR : CLASS_RELAY;
	return CLASS_OTHER;
}

/*
 * Is addr (and, when it has an extension, addr without it) in one of
 * the tables of param? 1 yes, 0 no, -1 lookup error. with_user: the bare
 * local part is a key too (local and alias tables).
 */
static int
maps_find(const char *param, const char *addr, int with_user)
{
	char **items = check_list_items(param), *local, *domain, *base;
	char *value, *err;
	const char *keys[2];
	int r, found = 0;

	check_split(addr, &local, &domain);
	base = strip_extension(local);
	keys[0] = addr;
	keys[1] = NULL;
	if (base != NULL)
		keys[1] = xasprintf("%s@%s", base, domain);
	for (size_t i = 0; items[i] != NULL && found == 0; i++) {
		/* unix:passwd.byname (lib/table_unix.c) is the local users. */
		struct table *t = check_table(items[i], &err);

		if (t == NULL) {
			free(err);
			found = -1;
			break;
		}
		for (int k = 0; k < 2 && found == 0; k++) {
			if (keys[k] == NULL)
				continue;
			value = err = NULL;
			r = table_lookup_addr(t, keys[k], with_user, &value,
			    &err);
			if (r == TABLE_FOUND)
				found = 1;
			else if (r == TABLE_ERROR) {
				msg_warn("%s: %s lookup error for \"%s\": %s",
				    param, t->spec, keys[k],
				    err != NULL ? err : "unknown");
				found = -1;
			}
			free(value);
			free(err);
		}
	}
	free(local);
	free(domain);
	free(base);
	free((char *)keys[1]);
	return found;
}

/* The recipient exists where its domain says it should; reject if not. */
static enum check_result
check_unlisted_rcpt(struct check_ctx *c)
{
	char *local, *domain;
	enum rcpt_class cls;
	const char *map = NULL, *table_name = NULL;
	int r;

	if (c->rcpt == NULL)
		return CHECK_DUNNO;
	check_split(c->rcpt, &local, &domain);
	cls = rcpt_class(domain);
	free(local);
	free(domain);
	switch (cls) {
	case CLASS_ERROR:
		return check_tempfail(c, c->rcpt);
	case CLASS_LOCAL:
		/* An empty local_recipient_maps accepts any local name. */
		if (strv_len(check_list_items("local_recipient_maps")) == 0)
			return CHECK_DUNNO;
		map = "local_recipient_maps";
		table_name = "local recipient table";
		break;
	case CLASS_VALIAS:
		table_name = "virtual alias table";
		break;
	case CLASS_VMAILBOX:
		map = "virtual_mailbox_maps";
		table_name = "virtual mailbox table";
		break;
	case CLASS_RELAY:
	case CLASS_OTHER:
		return CHECK_DUNNO;
	}
	/* An alias makes any address valid, whatever its domain. */
	if ((r = maps_find("virtual_alias_maps", c->rcpt,
	    cls == CLASS_LOCAL)) == 0 && map != NULL)
		r = maps_find(map, c->rcpt, cls == CLASS_LOCAL);
	if (r < 0)
		return check_tempfail(c, c->rcpt);
	if (r > 0)
		return CHECK_DUNNO;
	free(c->reply);
	c->reply = xasprintf("550 5.1.1 <%s>: Recipient address rejected: "
	    "User unknown in %s", c->rcpt, table_name);
	return CHECK_REJECT;
}

/* permit_auth_destination's question: is the recipient ours to take? */
static int
auth_destination(struct check_ctx *c, int *error)
{
	char *local, *domain;
	enum rcpt_class cls;
	int routed;

	*error = 0;
	check_split(c->rcpt, &local, &domain);
	cls = rcpt_class(domain);
	/* user%elsewhere@relay.domain would be relayed on: not ours. */
	routed = strpbrk(local, "@%!") != NULL;
	free(local);
	free(domain);
	if (cls == CLASS_ERROR) {
		*error = 1;
		return 0;
	}
	return cls == CLASS_LOCAL || cls == CLASS_VALIAS ||
	    cls == CLASS_VMAILBOX || (cls == CLASS_RELAY && !routed);
}

/* ---- helo names ---- */

static int
helo_valid(const char *helo)
{
	unsigned char bin[16];
	char *copy;
	size_t n;
	int ok;

	if (*helo == '[')
		return addr_literal_valid(helo);
	if (inet_pton(AF_INET, helo, bin) == 1 ||
	    inet_pton(AF_INET6, helo, bin) == 1)
		return 1;
	/* Windows names have underscores; a trailing dot is harmless. */
	copy = xstrdup(helo);
	for (char *p = copy; *p != '\0'; p++)
		if (*p == '_')
			*p = 'a';
	n = strlen(copy);
	if (n > 1 && copy[n - 1] == '.')
		copy[n - 1] = '\0';
	ok = addr_domain_valid(copy, 1);
	free(copy);
	return ok;
}

static int
helo_fqdn(const char *helo)
{
	unsigned char bin[16];
	const char *dot = strchr(helo, '.');

	if (*helo == '[' || inet_pton(AF_INET, helo, bin) == 1 ||
	    inet_pton(AF_INET6, helo, bin) == 1)
		return 1;
	return dot != NULL && dot[1] != '\0';
}

/* ---- the restriction names ---- */

static int
takes_table(const char *name)
{
	return strcmp(name, "check_client_access") == 0 ||
	    strcmp(name, "check_helo_access") == 0 ||
	    strcmp(name, "check_sender_access") == 0 ||
	    strcmp(name, "check_recipient_access") == 0;
}

static const char *const known_restrictions[] = {
	"permit", "reject", "defer", "permit_mynetworks",
	"permit_sasl_authenticated", "reject_unauth_destination",
	"defer_unauth_destination", "permit_auth_destination",
	"reject_unlisted_recipient", "reject_unknown_recipient",
	"reject_non_fqdn_sender", "reject_non_fqdn_recipient",
	"reject_invalid_helo_hostname", "reject_non_fqdn_helo_hostname",
	"reject_unauth_pipelining", "check_client_access",
	"reject_sender_login_mismatch", "reject_known_sender_login_mismatch",
	"reject_authenticated_sender_login_mismatch",
	"reject_unauthenticated_sender_login_mismatch",
	"check_helo_access", "check_sender_access", "check_recipient_access",
	NULL,
};

static int
known_restriction(const char *name)
{
	for (size_t i = 0; known_restrictions[i] != NULL; i++)
		if (strcmp(name, known_restrictions[i]) == 0)
			return 1;
	return 0;
}

/* ---- who owns a sender address (smtpd_sender_login_maps) ---- */

static int
is_login_check(const char *name)
{
	return strstr(name, "sender_login_mismatch") != NULL &&
	    strncmp(name, "reject_", 7) == 0;
}

/*
 * The logins that own addr: the first of addr, addr without its
 * extension, and @domain found in any of the tables, split into a list
 * (one or more names, separated by commas or white space). NULL when
 * no table names an owner; *error is set on a lookup failure.
 */
static char **
sender_owners(const char *addr, int *error)
{
	char **items = check_list_items("smtpd_sender_login_maps");
	char *local, *domain, *base, *keys[3], *value, *err, **owners = NULL;
	size_t nkeys = 0;

	*error = 0;
	check_split(addr, &local, &domain);
	keys[nkeys++] = xasprintf("%s@%s", local, domain);
	if ((base = strip_extension(local)) != NULL)
		keys[nkeys++] = xasprintf("%s@%s", base, domain);
	keys[nkeys++] = xasprintf("@%s", domain);
	for (size_t k = 0; k < nkeys && owners == NULL && !*error; k++)
		for (size_t i = 0; items[i] != NULL; i++) {
			struct table *t = check_table(items[i], &err);
			int r;

			if (t == NULL) {
				free(err);
				*error = 1;
				break;
			}
			value = err = NULL;
			r = table_lookup(t, keys[k], &value, &err);
			if (r == TABLE_ERROR) {
				msg_warn("smtpd_sender_login_maps: %s lookup "
				    "error for \"%s\": %s", t->spec, keys[k],
				    err != NULL ? err : "unknown");
				*error = 1;
			} else if (r == TABLE_FOUND)
				owners = strv_split(value, ", \t");
			free(value);
			free(err);
			if (owners != NULL || *error)
				break;
		}
	for (size_t k = 0; k < nkeys; k++)
		free(keys[k]);
	free(local);
	free(domain);
	free(base);
	return owners;
}

/*
 * reject_sender_login_mismatch (both below),
 * reject_authenticated_sender_login_mismatch (logged in, but the maps do
 * not name this login as the sender's owner),
 * reject_known_sender_login_mismatch (the same, only for senders the
 * maps know) and reject_unauthenticated_sender_login_mismatch (not
 * logged in, and the maps name an owner). The null sender impersonates
 * nobody and passes.
 */
static enum check_result
check_login_mismatch(struct check_ctx *c, const char *name)
{
	struct smtpd_session *s = c->s;
	const char *login = s->sasl_username;
	char **owners;
	int error, owned = 0, known, any, auth_check, unauth_check;
	char *text;

	if (s->sender == NULL || *s->sender == '\0')
		return CHECK_DUNNO;
	any = strcmp(name, "reject_sender_login_mismatch") == 0;
	auth_check = any || strstr(name, "_authenticated_") != NULL ||
	    strstr(name, "_known_") != NULL;
	unauth_check = any || strstr(name, "_unauthenticated_") != NULL;
	if ((login != NULL && !auth_check) || (login == NULL && !unauth_check))
		return CHECK_DUNNO;
	if (strv_len(check_list_items("smtpd_sender_login_maps")) == 0) {
		msg_warn("%s needs smtpd_sender_login_maps", name);
		return check_config_error(c);
	}
	owners = sender_owners(s->sender, &error);
	if (error)
		return check_tempfail(c, s->sender);
	known = owners != NULL;
	for (char **p = owners; p != NULL && *p != NULL && login != NULL; p++)
		if (strcasecmp(*p, login) == 0)
			owned = 1;
	strv_free(owners);
	if (login == NULL) {
		if (!known)
			return CHECK_DUNNO;
		return check_reject(c, 553, "5.7.1", STAGE_SENDER,
		    "not logged in");
	}
	if (owned || (!known && strstr(name, "_known_") != NULL))
		return CHECK_DUNNO;
	text = xasprintf("not owned by user %s", login);
	check_reject(c, 553, "5.7.1", STAGE_SENDER, text);
	free(text);
	return CHECK_REJECT;
}

/* One restriction; *i moves past a table argument. */
static enum check_result
check_one(struct check_ctx *c, const char *param, char **items, size_t *i,
    enum check_stage stage)
{
	const char *name = items[*i];
	struct smtpd_session *s = c->s;
	int error;

	if (takes_table(name)) {
		if (items[*i + 1] == NULL) {
			msg_warn("%s: %s needs a table", param, name);
			return check_config_error(c);
		}
		(*i)++;
		return check_access(c, param, name, items[*i], stage);
	}
	if (strcmp(name, "permit") == 0)
		return CHECK_PERMIT;
	if (strcmp(name, "reject") == 0)
		return check_reject(c, 554, "5.7.1", stage, "Access denied");
	if (strcmp(name, "defer") == 0)
		return check_reject(c, 450, "4.7.1", stage, "Try again later");
	if (strcmp(name, "permit_mynetworks") == 0)
		return s->in_mynetworks ? CHECK_PERMIT : CHECK_DUNNO;
	if (strcmp(name, "permit_sasl_authenticated") == 0)
		return s->sasl_username != NULL ? CHECK_PERMIT : CHECK_DUNNO;
	if (is_login_check(name))
		return check_login_mismatch(c, name);
	if (strcmp(name, "reject_unauth_pipelining") == 0) {
		if (s->bad_pipelining || stream_pending(s->in) > 0)
			return check_reject(c, 503, "5.5.0", stage,
			    "Improper use of SMTP command pipelining");
		return CHECK_DUNNO;
	}
	if (strcmp(name, "reject_invalid_helo_hostname") == 0) {
		if (s->helo != NULL && !helo_valid(s->helo))
			return check_reject(c, 501, "5.5.2", STAGE_HELO,
			    "Invalid name");
		return CHECK_DUNNO;
	}
	if (strcmp(name, "reject_non_fqdn_helo_hostname") == 0) {
		if (s->helo != NULL && !helo_fqdn(s->helo))
			return check_reject(c, 504, "5.5.2", STAGE_HELO,
			    "need fully-qualified hostname");
		return CHECK_DUNNO;
	}
	if (strcmp(name, "reject_non_fqdn_sender") == 0) {
		if (s->sender != NULL && *s->sender != '\0' &&
		    non_fqdn(s->sender))
			return check_reject(c, 504, "5.5.2", STAGE_SENDER,
			    "need fully-qualified address");
		return CHECK_DUNNO;
	}
	/* The rest are about the recipient: nothing to say at DATA. */
	if (c->rcpt == NULL)
		return known_restriction(name) ? CHECK_DUNNO :
		    check_config_error(c);
	if (strcmp(name, "reject_non_fqdn_recipient") == 0) {
		if (non_fqdn(c->rcpt))
			return check_reject(c, 504, "5.5.2", STAGE_RECIPIENT,
			    "need fully-qualified address");
		return CHECK_DUNNO;
	}
	if (strcmp(name, "reject_unlisted_recipient") == 0 ||
	    strcmp(name, "reject_unknown_recipient") == 0)
		return check_unlisted_rcpt(c);
	if (strcmp(name, "reject_unauth_destination") == 0 ||
	    strcmp(name, "defer_unauth_destination") == 0 ||
	    strcmp(name, "permit_auth_destination") == 0) {
		int ours = auth_destination(c, &error);

		if (error)
			return check_tempfail(c, c->rcpt);
		if (name[0] == 'p')
			return ours ? CHECK_PERMIT : CHECK_DUNNO;
		if (ours)
			return CHECK_DUNNO;
		if (name[0] == 'd')
			return check_reject_plain(c, 454, "4.7.1", c->rcpt,
			    "Relay access denied");
		return check_reject_plain(c, 554, "5.7.1", c->rcpt,
		    "Relay access denied");
	}
	msg_warn("%s: unknown restriction \"%s\"", param, name);
	return check_config_error(c);
}

static enum check_result
check_items(struct check_ctx *c, const char *param, char **items,
    enum check_stage stage)
{
	enum check_result r;

	for (size_t i = 0; items[i] != NULL; i++)
		if ((r = check_one(c, param, items, &i, stage)) != CHECK_DUNNO)
			return r;
	return CHECK_DUNNO;
}

static enum check_result
check_param(struct check_ctx *c, const char *param, enum check_stage stage)
{
	return check_items(c, param, check_list_items(param), stage);
}

char *
smtpd_check_rcpt(struct smtpd_session *s, const char *rcpt)
{
	static const struct {
		const char *param;
		enum check_stage stage;
	} order[] = {
		{ "smtpd_client_restrictions", STAGE_CLIENT },
		{ "smtpd_helo_restrictions", STAGE_HELO },
		{ "smtpd_sender_restrictions", STAGE_SENDER },
		{ "smtpd_relay_restrictions", STAGE_RECIPIENT },
		{ "smtpd_recipient_restrictions", STAGE_RECIPIENT },
	};
	struct check_ctx c = { s, rcpt, NULL, 0 };

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (check_param(&c, order[i].param, order[i].stage) ==
		    CHECK_REJECT)
			return c.reply;
	if (check_unlisted_rcpt(&c) == CHECK_REJECT)
		return c.reply;
	free(c.reply);
	return NULL;
}

char *
smtpd_check_data(struct smtpd_session *s)
{
	struct check_ctx c = { s, NULL, NULL, 0 };

	if (check_param(&c, "smtpd_data_restrictions", STAGE_DATA) ==
	    CHECK_REJECT)
		return c.reply;
	free(c.reply);
	return NULL;
}

/* ---- start-up ---- */

static void
init_restrictions(const char *param)
{
	char **items = check_list_items(param), *err = NULL;

	for (size_t i = 0; items[i] != NULL; i++) {
		if (takes_table(items[i])) {
			if (items[i + 1] == NULL)
				msg_fatal("%s: %s needs a table argument",
				    param, items[i]);
			i++;
			if (check_table(items[i], &err) == NULL)
				msg_fatal("%s: %s", param,
				    err != NULL ? err : items[i]);
		} else if (!known_restriction(items[i]))
			msg_fatal("%s: unknown or unsupported restriction "
			    "\"%s\"", param, items[i]);
		else if (is_login_check(items[i]) &&
		    strv_len(check_list_items("smtpd_sender_login_maps")) == 0)
			msg_fatal("%s: %s needs smtpd_sender_login_maps", param,
			    items[i]);
	}
}

static void
init_tables(const char *param)
{
	char **items = check_list_items(param), *err = NULL;

	for (size_t i = 0; items[i] != NULL; i++) {
		const char *item = items[i][0] == '!' ? items[i] + 1 : items[i];

		if (*item == '[' || !is_table_spec(item))
			continue;
		if (check_table(item, &err) == NULL)
			msg_fatal("%s: %s", param, err != NULL ? err : item);
	}
}

void
smtpd_check_init(void)
{
	static const char *const restriction_lists[] = {
		"smtpd_client_restrictions", "smtpd_helo_restrictions",
		"smtpd_sender_restrictions", "smtpd_relay_restrictions",
		"smtpd_recipient_restrictions", "smtpd_data_restrictions",
	};
	static const char *const table_lists[] = {
		"mydestination", "virtual_alias_domains",
		"virtual_mailbox_domains", "relay_domains",
		"local_recipient_maps", "virtual_alias_maps",
		"virtual_mailbox_maps", "smtpd_sender_login_maps",
	};

	for (size_t i = 0; i < sizeof(restriction_lists) /
	    sizeof(restriction_lists[0]); i++)
		init_restrictions(restriction_lists[i]);
	for (size_t i = 0; i < sizeof(table_lists) / sizeof(table_lists[0]);
	    i++)
		init_tables(table_lists[i]);
	init_domain_lists();
	(void)check_net_list("mynetworks");
	(void)check_net_list("smtpd_forbid_bare_newline_exclusions");
	(void)check_net_list("smtpd_client_event_limit_exceptions");
}
