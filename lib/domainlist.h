/*
 * domainlist - "is this domain in mydestination / relay_domains / ...?"
 *
 * A domain list is a main.cf list parameter whose items are, in order:
 *	example.com		that domain; with parent matching (below) its
 *				subdomains too
 *	.example.com		every subdomain of example.com, not itself
 *	type:name		a lookup table (table.h): the domain is looked
 *				up, then ".parent" for each parent domain (and
 *				"parent" too with parent matching); any hit
 *				counts, whatever its value
 *	!item			a match means "not in the list"
 * The first item that matches decides; no match means "not in the list".
 * Names are compared without regard to case.
 *
 * Parent matching is Postfix's parent_domain_matches_subdomains: a list
 * whose parameter name is in that list (relay_domains by default) lets
 * "example.com" match "sub.example.com" as well.
 *
 * Used by qmgr (mydestination, virtual_*_domains, relay_domains) and
 * meant for smtpd. How it fails: domainlist_open() returns NULL with
 * *err for an item that names an unknown table type (a configuration
 * error: callers make it fatal at start); a table that cannot answer a
 * lookup makes domainlist_match() return -1 with *err, and the caller
 * answers "try again later" rather than acting on a wrong "no".
 */
#ifndef TERN_DOMAINLIST_H
#define TERN_DOMAINLIST_H

struct domainlist;

/* The list in main.cf parameter param, parent matching as
 * parent_domain_matches_subdomains says for that name. */
struct domainlist *domainlist_open(const char *param, char **err);
/* A list from items (NULL-terminated); parents: parent matching. what
 * names the list in error messages. */
struct domainlist *domainlist_new(const char *what, char *const *items,
	    int parents, char **err);
void	domainlist_free(struct domainlist *);
/* 1 when domain is in the list, 0 when not, -1 with *err (allocated)
 * when a table could not answer. */
int	domainlist_match(const struct domainlist *, const char *domain,
	    char **err);
/* 1 when parent_domain_matches_subdomains names param. */
int	domainlist_parent_matching(const char *param);

#endif
