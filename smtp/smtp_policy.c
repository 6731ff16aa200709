/*
 * smtp_policy - what the smtp client demands of a next hop's servers
 * before it hands them mail: the TLS security level and the names the
 * certificate must carry (smtp_tls_security_level, smtp_tls_policy_maps,
 * smtp_tls_verify_cert_match, smtp_tls_secure_cert_match), what DANE
 * TLSA records allow (level dane), and the credentials to log in with
 * (smtp_sasl_password_maps).
 *
 * Called by smtp.c once per delivery request (the policy) and once per
 * server (the password, DANE). The parsing and name rules are pure and
 * unit-tested (tests/unit/test_smtp_policy.c); the lookups open their
 * tables once per process, as main.cf does not change under a running
 * process (master starts new ones on reload).
 *
 * Failures: a table that cannot answer or an entry that does not parse
 * defers the mail (4.3.0, 4.7.5) with the reason, never sends it under
 * a weaker policy than the one configured; nothing here is fatal.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "config.h"
#include "dns.h"
#include "log.h"
#include "smtp.h"
#include "strv.h"
#include "table.h"

/* Postfix policy attributes we accept without acting on them. */
static const char *const ignored_attrs[] = {
	"protocols", "ciphers", "exclude", "tafile", "servername",
	"connection_reuse", "enable_rpk", NULL,
};

void
smtp_tls_policy_free(struct smtp_tls_policy *p)
{
	strv_free(p->match);
	memset(p, 0, sizeof(*p));
}

int
smtp_tls_policy_parse(const char *text, struct smtp_tls_policy *p,
    char **err)
{
	char **words;
	size_t i, j;

	memset(p, 0, sizeof(*p));
	words = strv_split(text, " \t\r\n,");
	if (words[0] == NULL) {
		*err = xstrdup("empty TLS policy");
		goto fail;
	}
	if (tls_level_parse(words[0], &p->level) < 0) {
		*err = xasprintf("unknown TLS security level \"%s\"",
		    words[0]);
		goto fail;
	}
	for (i = 1; words[i] != NULL; i++) {
		const char *eq = strchr(words[i], '=');
		size_t nlen = eq != NULL ? (size_t)(eq - words[i]) : 0;

		if (eq == NULL || nlen == 0) {
			*err = xasprintf("malformed TLS policy attribute "
			    "\"%s\"", words[i]);
			goto fail;
		}
		if (nlen == 5 && strncasecmp(words[i], "match", 5) == 0) {
			strv_free(p->match);
			p->match = strv_split(eq + 1, ":");
			if (p->match[0] == NULL) {
				*err = xstrdup("empty TLS policy match=");
				goto fail;
			}
			continue;
		}
		for (j = 0; ignored_attrs[j] != NULL; j++)
			if (strlen(ignored_attrs[j]) == nlen &&
			    strncasecmp(words[i], ignored_attrs[j], nlen) == 0)
				break;
		if (ignored_attrs[j] == NULL) {
			*err = xasprintf("unknown TLS policy attribute "
			    "\"%.*s\"", (int)nlen, words[i]);
			goto fail;
		}
	}
	strv_free(words);
	return 0;
fail:
	strv_free(words);
	smtp_tls_policy_free(p);
	return -1;
}

static void
add_name(char ***v, const char *name)
{
	if (*name == '\0' || strcmp(name, ".") == 0)
		return;
	for (size_t i = 0; (*v)[i] != NULL; i++)
		if (strcasecmp((*v)[i], name) == 0)
			return;
	strv_add(v, name);
}

char **
smtp_tls_match_names(char *const *match, const char *hostname,
    const char *nexthop)
{
	char **v = strv_split("", " ");
	char *dot;

	for (size_t i = 0; match != NULL && match[i] != NULL; i++) {
		const char *m = match[i];

		if (strcasecmp(m, "hostname") == 0)
			add_name(&v, hostname);
		else if (strcasecmp(m, "nexthop") == 0)
			add_name(&v, nexthop);
		else if (strcasecmp(m, "dot-nexthop") == 0) {
			dot = xasprintf(".%s", nexthop);
			add_name(&v, dot);
			free(dot);
		} else
			add_name(&v, m);
	}
	return v;
}

char **
smtp_nexthop_keys(const struct smtp_nexthop *nh)
{
	char **v = strv_split("", " ");
	char *k;

	if (nh->kind == NEXTHOP_UNIX) {
		k = xasprintf("unix:%s", nh->path);
		strv_add(&v, k);
		free(k);
		return v;
	}
	if (nh->kind == NEXTHOP_HOST) {
		k = xasprintf("[%s]:%u", nh->host, nh->port);
		strv_add(&v, k);
		free(k);
		k = xasprintf("[%s]", nh->host);
		strv_add(&v, k);
		free(k);
	} else {
		k = xasprintf("%s:%u", nh->host, nh->port);
		strv_add(&v, k);
		free(k);
	}
	strv_add(&v, nh->host);
	return v;
}

/* A list of tables from a parameter, opened once per process. */
struct maps {
	const char	*param;
	struct table	**t;
	size_t		 n;
	int		 ready;
};

static struct maps policy_maps = { "smtp_tls_policy_maps", NULL, 0, 0 };
static struct maps passwd_maps = { "smtp_sasl_password_maps", NULL, 0, 0 };

/* 0, or -1 with *err for a malformed table name. */
static int
maps_open(struct maps *m, char **err)
{
	char **specs;

	if (m->ready)
		return 0;
	specs = config_list(m->param);
	m->n = strv_len(specs);
	m->t = xcalloc(m->n ? m->n : 1, sizeof(*m->t));
	for (size_t i = 0; i < m->n; i++)
		if ((m->t[i] = table_open(specs[i], err)) == NULL) {
			char *e = *err;

			*err = xasprintf("%s: %s", m->param, e);
			free(e);
			while (i-- > 0)
				table_close(m->t[i]);
			free(m->t);
			m->t = NULL;
			m->n = 0;
			strv_free(specs);
			return -1;
		}
	strv_free(specs);
	m->ready = 1;
	return 0;
}

/* The first table with the key decides: TABLE_FOUND, TABLE_NOTFOUND or
 * TABLE_ERROR (with *err). */
static int
maps_lookup(struct maps *m, const char *key, char **value, char **err)
{
	int r;

	if (maps_open(m, err) < 0)
		return TABLE_ERROR;
	for (size_t i = 0; i < m->n; i++)
		if ((r = table_lookup(m->t[i], key, value, err)) !=
		    TABLE_NOTFOUND)
			return r;
	return TABLE_NOTFOUND;
}

int
smtp_tls_policy_find(const struct smtp_nexthop *nh,
    struct smtp_tls_policy *p, struct smtp_fail *fail)
{
	char **keys, *value = NULL, *err = NULL;
	const char *level;
	int r = TABLE_NOTFOUND;

	keys = smtp_nexthop_keys(nh);
	for (size_t i = 0; keys[i] != NULL; i++)
		if ((r = maps_lookup(&policy_maps, keys[i], &value, &err)) !=
		    TABLE_NOTFOUND)
			break;
	strv_free(keys);
	if (r == TABLE_ERROR) {
		msg_warn("TLS policy lookup for %s: %s", nh->host, err);
		smtp_fail_set(fail, DELIVER_DEFERRED, "4.3.0", "TLS policy "
		    "lookup error for %s: %s", nh->host, err);
		free(err);
		return -1;
	}
	if (r == TABLE_FOUND) {
		if (smtp_tls_policy_parse(value, p, &err) < 0) {
			msg_warn("smtp_tls_policy_maps entry for %s: %s",
			    nh->host, err);
			smtp_fail_set(fail, DELIVER_DEFERRED, "4.7.5",
			    "invalid TLS policy for %s: %s", nh->host, err);
			free(err);
			free(value);
			return -1;
		}
		free(value);
		return 0;
	}
	level = config_str("smtp_tls_security_level");
	memset(p, 0, sizeof(*p));
	if (tls_level_parse(level, &p->level) < 0) {
		msg_warn("unknown smtp_tls_security_level \"%s\"", level);
		smtp_fail_set(fail, DELIVER_DEFERRED, "4.3.5", "invalid "
		    "smtp_tls_security_level \"%s\"", level);
		return -1;
	}
	return 0;
}

int
smtp_sasl_passwd_find(const struct smtp_nexthop *nh, const char *host,
    char **user, char **pass, struct smtp_fail *fail)
{
	char **keys, *value = NULL, *err = NULL, *colon;
	const char *key = NULL;
	int r = TABLE_NOTFOUND;

	*user = *pass = NULL;
	keys = smtp_nexthop_keys(nh);
	if (host != NULL && *host != '\0')
		strv_add(&keys, host);
	for (size_t i = 0; keys[i] != NULL; i++)
		if ((r = maps_lookup(&passwd_maps, keys[i], &value, &err)) !=
		    TABLE_NOTFOUND) {
			key = keys[i];
			break;
		}
	if (r == TABLE_ERROR) {
		msg_warn("SASL password lookup for %s: %s", nh->host, err);
		smtp_fail_set(fail, DELIVER_DEFERRED, "4.3.0", "SASL password "
		    "lookup error for %s: %s", nh->host, err);
		free(err);
		strv_free(keys);
		return -1;
	}
	if (r == TABLE_NOTFOUND) {
		strv_free(keys);
		return 0;
	}
	/* The password may hold colons; the username may not. */
	if ((colon = strchr(value, ':')) == NULL || colon == value) {
		msg_warn("smtp_sasl_password_maps entry for %s is not "
		    "username:password", key);
		smtp_fail_set(fail, DELIVER_DEFERRED, "4.7.0", "malformed "
		    "SASL password entry for %s", key);
		free(value);
		strv_free(keys);
		return -1;
	}
	*colon = '\0';
	*user = xstrdup(value);
	*pass = xstrdup(colon + 1);
	explicit_bzero(colon + 1, strlen(colon + 1));
	free(value);
	strv_free(keys);
	return 1;
}

void
smtp_tlsa_free(struct tls_tlsa *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((void *)v[i].data);
	free(v);
}

int
smtp_dane_decide(int dnssec, const struct dns_result *tlsa,
    struct tls_tlsa **out, size_t *nout, char **why)
{
	struct tls_tlsa *v = NULL;
	size_t n = 0;

	*out = NULL;
	*nout = 0;
	if (!dnssec || tlsa == NULL)
		return TLS_LEV_MAY;
	switch (tlsa->status) {
	case DNS_TEMPFAIL:
		*why = xasprintf("TLSA lookup error for %s: %s", tlsa->name,
		    tlsa->reason != NULL ? tlsa->reason : "temporary failure");
		return -1;
	case DNS_FOUND:
		break;
	default:
		return TLS_LEV_MAY;
	}
	/* Unsigned TLSA records could have been put there by anyone. */
	if (tlsa->security != DNS_SECURE)
		return TLS_LEV_MAY;
	for (size_t i = 0; i < tlsa->nrr; i++) {
		const struct dns_rr *rr = &tlsa->rr[i];
		unsigned char *copy;

		if (rr->type != DNS_T_TLSA || (rr->usage != 2 &&
		    rr->usage != 3) || rr->selector > 1 || rr->mtype > 2 ||
		    (rr->mtype == 1 && rr->len != 32) ||
		    (rr->mtype == 2 && rr->len != 64) || rr->len == 0)
			continue;
		copy = xmalloc(rr->len);
		memcpy(copy, rr->data, rr->len);
		v = xreallocarray(v, n + 1, sizeof(*v));
		v[n].usage = rr->usage;
		v[n].selector = rr->selector;
		v[n].mtype = rr->mtype;
		v[n].data = copy;
		v[n].len = rr->len;
		n++;
	}
	if (n == 0)
		return TLS_LEV_ENCRYPT;
	*out = v;
	*nout = n;
	return TLS_LEV_DANE;
}
