/*
 * domainlist - matching a domain against a main.cf domain list
 * (mydestination, relay_domains, virtual_mailbox_domains...): names,
 * ".parent" patterns, lookup tables and "!" exclusions. The contract,
 * and how it fails, is in domainlist.h.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "config.h"
#include "domainlist.h"
#include "strv.h"
#include "table.h"

struct domain_item {
	char	*pattern;	/* lowercase; "!" removed */
	struct table *table;	/* non-NULL: look the domain up here */
	int	 negate;
};

struct domainlist {
	char	*what;
	struct domain_item *v;
	size_t	 n;
	int	 parents;
};

/* "type:name" with a lowercase type, as table.h names tables. A domain
 * never holds ':'; "[1.2.3.4]" literals are names, not tables. */
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

int
domainlist_parent_matching(const char *param)
{
	char **names;
	int r;

	if (param_find("parent_domain_matches_subdomains") == NULL)
		return 0;
	names = config_list("parent_domain_matches_subdomains");
	r = strv_contains(names, param);
	strv_free(names);
	return r;
}

void
domainlist_free(struct domainlist *dl)
{
	size_t i;

	if (dl == NULL)
		return;
	for (i = 0; i < dl->n; i++) {
		free(dl->v[i].pattern);
		if (dl->v[i].table != NULL)
			table_close(dl->v[i].table);
	}
	free(dl->v);
	free(dl->what);
	free(dl);
}

struct domainlist *
domainlist_new(const char *what, char *const *items, int parents, char **err)
{
	struct domainlist *dl;
	char *terr = NULL, *p;
	size_t i;

	dl = xcalloc(1, sizeof(*dl));
	dl->what = xstrdup(what);
	dl->parents = parents;
	while (items[dl->n] != NULL)
		dl->n++;
	dl->v = xcalloc(dl->n ? dl->n : 1, sizeof(*dl->v));
	for (i = 0; i < dl->n; i++) {
		struct domain_item *it = &dl->v[i];
		const char *s = items[i];

		if (*s == '!') {
			it->negate = 1;
			s++;
		}
		if (is_table_spec(s)) {
			it->pattern = xstrdup(s);
			if ((it->table = table_open(s, &terr)) == NULL) {
				*err = xasprintf("%s: %s", what, terr);
				free(terr);
				domainlist_free(dl);
				return NULL;
			}
			continue;
		}
		it->pattern = xstrdup(s);
		for (p = it->pattern; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
	}
	return dl;
}

struct domainlist *
domainlist_open(const char *param, char **err)
{
	struct domainlist *dl;
	char **items = config_list(param);

	dl = domainlist_new(param, items, domainlist_parent_matching(param),
	    err);
	strv_free(items);
	return dl;
}

/* Look key up in t: 1 found, 0 not, -1 with *err. */
static int
lookup(const struct domainlist *dl, struct table *t, const char *key,
    char **err)
{
	char *value = NULL, *terr = NULL;
	int r;

	r = table_lookup(t, key, &value, &terr);
	free(value);
	if (r == TABLE_ERROR) {
		*err = xasprintf("%s: %s lookup error: %s", dl->what, t->spec,
		    terr != NULL ? terr : "unknown");
		free(terr);
		return -1;
	}
	free(terr);
	return r == TABLE_FOUND;
}

/* The domain, then ".parent" (and "parent" with parent matching) for
 * each parent, in a table. */
static int
table_match(const struct domainlist *dl, struct table *t, const char *domain,
    char **err)
{
	const char *d;
	int r;

	if ((r = lookup(dl, t, domain, err)) != 0)
		return r;
	for (d = strchr(domain, '.'); d != NULL && d[1] != '\0';
	    d = strchr(d + 1, '.')) {
		if ((r = lookup(dl, t, d, err)) != 0)
			return r;
		if (dl->parents && (r = lookup(dl, t, d + 1, err)) != 0)
			return r;
	}
	return 0;
}

static int
name_match(const struct domainlist *dl, const char *pattern,
    const char *domain)
{
	size_t dlen = strlen(domain), plen = strlen(pattern);

	if (pattern[0] == '.')
		return dlen > plen &&
		    strcasecmp(domain + dlen - plen, pattern) == 0;
	if (strcasecmp(domain, pattern) == 0)
		return 1;
	return dl->parents && plen > 0 && dlen > plen + 1 &&
	    domain[dlen - plen - 1] == '.' &&
	    strcasecmp(domain + dlen - plen, pattern) == 0;
}

int
domainlist_match(const struct domainlist *dl, const char *domain, char **err)
{
	size_t i;
	int r;

	if (dl == NULL || domain[0] == '\0')
		return 0;
	for (i = 0; i < dl->n; i++) {
		const struct domain_item *it = &dl->v[i];

		if (it->table != NULL)
			r = table_match(dl, it->table, domain, err);
		else
			r = name_match(dl, it->pattern, domain);
		if (r < 0)
			return -1;
		if (r > 0)
			return !it->negate;
	}
	return 0;
}
