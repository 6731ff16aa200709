/*
 * test_domainlist - main.cf domain lists (lib/domainlist.c): exact names,
 * ".parent" patterns, parent_domain_matches_subdomains, lookup tables
 * with their parent keys, "!" exclusions, first match wins, and table
 * errors told apart from "no".
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "config.h"
#include "domainlist.h"

static char dir[] = "/tmp/test_domainlist.XXXXXX";
static char path[sizeof(dir) + 16];

static int
setup(void **state)
{
	FILE *fp;
	char *err = NULL;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/main.cf", dir);
	if ((fp = fopen(path, "w")) == NULL)
		return -1;
	fputs("myhostname = mx.example.test\n"
	    "relay_domains = relayed.test, inline:{ tabled.test=ok }\n"
	    "mydestination = example.test\n", fp);
	fclose(fp);
	if (config_load(dir, &err) < 0) {
		fprintf(stderr, "config_load: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	config_reset();
	unlink(path);
	rmdir(dir);
	return 0;
}

/* A list of the items given (NULL ends them). */
static struct domainlist *
list(int parents, ...)
{
	char *items[8], *err = NULL;
	struct domainlist *dl;
	size_t n = 0;
	va_list ap;

	va_start(ap, parents);
	while (n < 7 && (items[n] = va_arg(ap, char *)) != NULL)
		n++;
	va_end(ap);
	items[n] = NULL;
	if ((dl = domainlist_new("test_list", items, parents, &err)) == NULL)
		fail_msg("domainlist_new: %s", err);
	return dl;
}

static int
match(const struct domainlist *dl, const char *domain)
{
	char *err = NULL;
	int r = domainlist_match(dl, domain, &err);

	if (r < 0)
		fail_msg("%s: unexpected error %s", domain, err);
	return r;
}

static void
name_matches_itself_only_and_ignores_case(void **state)
{
	struct domainlist *dl = list(0, "Example.COM", NULL);

	assert_int_equal(match(dl, "example.com"), 1);
	assert_int_equal(match(dl, "EXAMPLE.com"), 1);
	assert_int_equal(match(dl, "sub.example.com"), 0);
	assert_int_equal(match(dl, "badexample.com"), 0);
	assert_int_equal(match(dl, "example.co"), 0);
	assert_int_equal(match(dl, ""), 0);
	domainlist_free(dl);
}

static void
dot_pattern_matches_subdomains_not_the_domain(void **state)
{
	struct domainlist *dl = list(0, ".example.com", NULL);

	assert_int_equal(match(dl, "a.example.com"), 1);
	assert_int_equal(match(dl, "a.b.EXAMPLE.com"), 1);
	assert_int_equal(match(dl, "example.com"), 0);
	assert_int_equal(match(dl, "aexample.com"), 0);
	domainlist_free(dl);
}

static void
parent_matching_lets_a_name_cover_its_subdomains(void **state)
{
	struct domainlist *dl = list(1, "example.com", NULL);

	assert_int_equal(match(dl, "example.com"), 1);
	assert_int_equal(match(dl, "a.b.example.com"), 1);
	assert_int_equal(match(dl, "badexample.com"), 0);
	domainlist_free(dl);
}

static void
negation_excludes_and_first_match_wins(void **state)
{
	struct domainlist *dl = list(0, "!no.example.com", ".example.com",
	    "no.example.com", NULL);

	assert_int_equal(match(dl, "yes.example.com"), 1);
	assert_int_equal(match(dl, "no.example.com"), 0);
	domainlist_free(dl);
	dl = list(0, ".example.com", "!no.example.com", NULL);
	assert_int_equal(match(dl, "no.example.com"), 1);
	domainlist_free(dl);
}

static void
table_is_looked_up_with_dot_parents(void **state)
{
	struct domainlist *dl = list(0, "inline:{ exact.test=x, .sub.test=x, "
	    "parent.test=x }", NULL);

	assert_int_equal(match(dl, "EXACT.test"), 1);
	assert_int_equal(match(dl, "a.exact.test"), 0);
	assert_int_equal(match(dl, "a.b.sub.test"), 1);
	assert_int_equal(match(dl, "sub.test"), 0);
	assert_int_equal(match(dl, "parent.test"), 1);
	/* "parent.test" as a key covers subdomains only with parent
	 * matching. */
	assert_int_equal(match(dl, "x.parent.test"), 0);
	domainlist_free(dl);
	dl = list(1, "inline:{ parent.test=x }", NULL);
	assert_int_equal(match(dl, "x.y.parent.test"), 1);
	domainlist_free(dl);
}

static void
negated_table_entry_excludes(void **state)
{
	struct domainlist *dl = list(0, "!inline:{ bad.test=x }", ".test",
	    NULL);

	assert_int_equal(match(dl, "bad.test"), 0);
	assert_int_equal(match(dl, "good.test"), 1);
	domainlist_free(dl);
}

static void
table_error_is_an_error_not_a_no(void **state)
{
	struct domainlist *dl = list(0, "texthash:/nonexistent/tern/domains",
	    "fine.test", NULL);
	char *err = NULL;

	assert_int_equal(domainlist_match(dl, "fine.test", &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "test_list"));
	free(err);
	domainlist_free(dl);
}

static void
unknown_table_type_fails_at_open(void **state)
{
	char *items[] = { "nosuchtype:/x", NULL }, *err = NULL;

	assert_null(domainlist_new("mydestination", items, 0, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "mydestination"));
	free(err);
}

static void
address_literals_are_names_not_tables(void **state)
{
	struct domainlist *dl = list(0, "[192.0.2.1]", NULL);

	assert_int_equal(match(dl, "[192.0.2.1]"), 1);
	assert_int_equal(match(dl, "[192.0.2.2]"), 0);
	domainlist_free(dl);
}

static void
open_reads_the_parameter_and_parent_setting(void **state)
{
	struct domainlist *dl;
	char *err = NULL;

	/* relay_domains is in parent_domain_matches_subdomains... */
	assert_true(domainlist_parent_matching("relay_domains"));
	dl = domainlist_open("relay_domains", &err);
	assert_non_null(dl);
	assert_int_equal(match(dl, "relayed.test"), 1);
	assert_int_equal(match(dl, "a.relayed.test"), 1);
	assert_int_equal(match(dl, "tabled.test"), 1);
	assert_int_equal(match(dl, "x.tabled.test"), 1);
	assert_int_equal(match(dl, "other.test"), 0);
	domainlist_free(dl);
	/* ...mydestination is not. */
	assert_false(domainlist_parent_matching("mydestination"));
	dl = domainlist_open("mydestination", &err);
	assert_int_equal(match(dl, "example.test"), 1);
	assert_int_equal(match(dl, "a.example.test"), 0);
	domainlist_free(dl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(name_matches_itself_only_and_ignores_case),
		cmocka_unit_test(dot_pattern_matches_subdomains_not_the_domain),
		cmocka_unit_test(
		    parent_matching_lets_a_name_cover_its_subdomains),
		cmocka_unit_test(negation_excludes_and_first_match_wins),
		cmocka_unit_test(table_is_looked_up_with_dot_parents),
		cmocka_unit_test(negated_table_entry_excludes),
		cmocka_unit_test(table_error_is_an_error_not_a_no),
		cmocka_unit_test(unknown_table_type_fails_at_open),
		cmocka_unit_test(address_literals_are_names_not_tables),
		cmocka_unit_test(open_reads_the_parameter_and_parent_setting),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
