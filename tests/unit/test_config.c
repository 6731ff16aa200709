/*
 * test_config - main.cf is read as Postfix reads it, every value is
 * checked against its type, and no main.cf can make the reader hang:
 * expansion loops, deep nesting and runaway growth are errors that name
 * the parameter, the file and the line.
 */
#include "autoconf.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "strv.h"

static char dir[64];
static char path[128];

static int
setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/test_config.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/main.cf", dir);
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

static void
write_main_cf(const char *text)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
}

/* Load text as main.cf; the loader's return value, *err on failure. */
static int
load(const char *text, char **err)
{
	write_main_cf(text);
	*err = NULL;
	return config_load(dir, err);
}

static void
load_ok(const char *text)
{
	char *err = NULL;

	if (load(text, &err) < 0)
		fail_msg("config_load failed: %s", err);
}

/* Load text that must fail; the error text, to be freed. */
static char *
load_fails(const char *text)
{
	char *err = NULL;

	assert_int_equal(load(text, &err), -1);
	assert_non_null(err);
	return err;
}

static void
assert_contains(const char *hay, const char *needle)
{
	if (strstr(hay, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

/* What the code under test writes to stderr while fn runs. */
static int capture_fd = -1, saved_fd = -1;
static char capture_path[128];

static void
capture_begin(void)
{
	snprintf(capture_path, sizeof(capture_path), "%s/stderr", dir);
	capture_fd = open(capture_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(capture_fd >= 0);
	saved_fd = dup(STDERR_FILENO);
	dup2(capture_fd, STDERR_FILENO);
}

static char *
capture_end(void)
{
	struct buf b;
	char chunk[512];
	ssize_t n;

	dup2(saved_fd, STDERR_FILENO);
	close(saved_fd);
	buf_init(&b, BUF_NOMAX);
	buf_puts(&b, "");
	lseek(capture_fd, 0, SEEK_SET);
	while ((n = read(capture_fd, chunk, sizeof(chunk))) > 0)
		buf_append(&b, chunk, (size_t)n);
	close(capture_fd);
	unlink(capture_path);
	return buf_steal(&b);
}

static void
table_is_sorted_and_complete(void **state)
{
	assert_true(param_count > 100);
	for (size_t i = 0; i < param_count; i++) {
		const struct param_def *p = &param_table[i];

		if (i > 0 && strcmp(param_table[i - 1].name, p->name) >= 0)
			fail_msg("table out of order at %s", p->name);
		assert_ptr_equal(param_find(p->name), p);
		assert_non_null(p->desc);
		assert_true(strlen(p->desc) > 10);
		assert_null(strchr(p->desc, '\n'));
		if (p->type == PARAM_TIME)
			assert_non_null(strchr("smhdw", p->unit));
	}
	assert_null(param_find("no_such_parameter"));
	assert_null(param_find(""));
}

static void
every_default_is_valid(void **state)
{
	load_ok("");
	for (size_t i = 0; i < param_count; i++) {
		const char *name = param_table[i].name;

		assert_non_null(config_str(name));
		assert_false(config_is_set(name));
		switch (param_table[i].type) {
		case PARAM_BOOL:
			(void)config_bool(name);
			break;
		case PARAM_INT:
			(void)config_int(name);
			break;
		case PARAM_SIZE:
			(void)config_size(name);
			break;
		case PARAM_TIME:
			(void)config_time(name);
			break;
		default:
			break;
		}
	}
}

static void
defaults_have_postfix_values(void **state)
{
	char **v;

	load_ok("# nothing set\n");
	assert_int_equal(config_size("message_size_limit"), 10240000);
	assert_int_equal(config_int("smtpd_recipient_limit"), 1000);
	assert_int_equal(config_time("smtpd_timeout"), 300);
	assert_int_equal(config_time("maximal_queue_lifetime"), 5 * 86400);
	assert_int_equal(config_time("delay_warning_time"), 0);
	assert_int_equal(config_int("line_length_limit"), 2048);
	assert_int_equal(config_int("smtpd_line_length_limit"), 2048);
	assert_true(config_bool("disable_vrfy_command"));
	assert_false(config_bool("smtpd_helo_required"));
	assert_string_equal(config_str("mail_name"), "Tern");
	assert_string_equal(config_str("queue_directory"), "/var/spool/tern");
	v = config_list("mynetworks");
	assert_int_equal(strv_len(v), 2);
	assert_string_equal(v[0], "127.0.0.0/8");
	assert_string_equal(v[1], "[::1]/128");
	strv_free(v);
}

static void
white_space_around_name_and_value_is_dropped(void **state)
{
	load_ok("myhostname   =   mx.example.org   \t\n"
	    "mydomain=example.org\r\n"
	    "relayhost =\n"
	    "mail_name= Tern Mail \n");
	assert_string_equal(config_str("myhostname"), "mx.example.org");
	assert_string_equal(config_str("mydomain"), "example.org");
	assert_string_equal(config_str("relayhost"), "");
	assert_true(config_is_set("relayhost"));
	assert_string_equal(config_str("mail_name"), "Tern Mail");
}

static void
continuation_lines_join_into_one_value(void **state)
{
	const char *file;
	char **v;

	load_ok("myhostname = mx.example.org\n"
	    "mydestination = a.example,\n"
	    "    b.example,\n"
	    "\tc.example\n"
	    "relayhost = [smtp.example.net]:587\n");
	assert_string_equal(config_raw("mydestination"),
	    "a.example, b.example, c.example");
	v = config_list("mydestination");
	assert_int_equal(strv_len(v), 3);
	assert_string_equal(v[2], "c.example");
	strv_free(v);
	assert_int_equal(config_where("mydestination", &file), 2);
	assert_string_equal(file, path);
	assert_int_equal(config_where("relayhost", &file), 5);
	assert_int_equal(config_where("mail_name", &file), 0);
	assert_null(file);
}

static void
comments_are_whole_lines_only(void **state)
{
	load_ok("# a comment\n"
	    "   # an indented comment\n"
	    "smtpd_banner = $myhostname ESMTP # not a comment\n"
	    "mydestination = a,\n"
	    "# a comment inside a continued value\n"
	    "\n"
	    "  b\n");
	assert_string_equal(config_raw("smtpd_banner"),
	    "$myhostname ESMTP # not a comment");
	assert_string_equal(config_raw("mydestination"), "a, b");
}

static void
continuation_without_parameter_is_an_error(void **state)
{
	char *err = load_fails("# comment\n  indented = x\n");

	assert_contains(err, "main.cf, line 2:");
	assert_contains(err, "continuation");
	free(err);
}

static void
line_without_equals_is_an_error(void **state)
{
	char *err = load_fails("myhostname = a.b\n\nrelayhost smtp.example\n");

	assert_contains(err, "main.cf, line 3:");
	assert_contains(err, "missing '='");
	free(err);
	err = load_fails("my-hostname = x\n");
	assert_contains(err, "line 1: bad parameter name");
	free(err);
	err = load_fails("= x\n");
	assert_contains(err, "line 1: bad parameter name");
	free(err);
}

static void
dollar_name_braces_and_parens_expand(void **state)
{
	load_ok("myhostname = mx.example.org\n"
	    "mydomain = example.org\n"
	    "smtpd_banner = ${myhostname} $(mail_name) at $mydomain.\n");
	assert_string_equal(config_str("smtpd_banner"),
	    "mx.example.org Tern at example.org.");
	assert_string_equal(config_raw("smtpd_banner"),
	    "${myhostname} $(mail_name) at $mydomain.");
}

static void
nested_expansion_through_unknown_macros(void **state)
{
	load_ok("myorigin = $site_domain\n"
	    "site_domain = mail.$site_base\n"
	    "site_base = example.net\n");
	assert_string_equal(config_str("myorigin"), "mail.example.net");
}

static void
defaults_expand_with_main_cf_values(void **state)
{
	char **v;

	load_ok("myhostname = mx.example.org\n");
	assert_string_equal(config_raw("myorigin"), "$myhostname");
	assert_string_equal(config_str("myorigin"), "mx.example.org");
	assert_string_equal(config_str("mydomain"), "example.org");
	assert_string_equal(config_str("smtpd_banner"),
	    "mx.example.org ESMTP Tern");
	v = config_list("mydestination");
	assert_int_equal(strv_len(v), 3);
	assert_string_equal(v[0], "mx.example.org");
	assert_string_equal(v[1], "localhost.example.org");
	assert_string_equal(v[2], "localhost");
	strv_free(v);
}

static void
mydomain_default_is_not_a_bare_top_level_domain(void **state)
{
	load_ok("myhostname = example.org\n");
	assert_string_equal(config_str("mydomain"), "localdomain");
	load_ok("myhostname = a.b.example.org\n");
	assert_string_equal(config_str("mydomain"), "b.example.org");
	assert_string_equal(config_raw("mydomain"), "b.example.org");
}

static void
myhostname_default_comes_from_the_machine(void **state)
{
	char host[257] = "";
	const char *v;

	load_ok("");
	gethostname(host, sizeof(host) - 1);
	v = config_str("myhostname");
	assert_non_null(strchr(v, '.'));
	if (host[0] != '\0')
		assert_int_equal(strncmp(v, host, strcspn(host, ".")), 0);
	if (strchr(host, '.') == NULL) {
		assert_string_equal(config_str("mydomain"), "localdomain");
		load_ok("mydomain = example.com\n");
		v = config_str("myhostname");
		assert_non_null(strstr(v, ".example.com"));
	}
}

static void
loop_between_two_parameters_is_an_error(void **state)
{
	time_t start = time(NULL);
	char *err;

	err = load_fails("a = $b\nb = $a\n");
	assert_contains(err, "main.cf, line");
	assert_contains(err, "loop");
	assert_contains(err, "a -> b -> a");
	free(err);
	err = load_fails("myhostname = x.example\n"
	    "myorigin = $mydomain\nmydomain = ${myorigin}\n");
	assert_contains(err, "loop");
	assert_contains(err, "mydomain");
	assert_contains(err, "myorigin");
	free(err);
	assert_true(time(NULL) - start < 5);
}

static void
self_reference_is_an_error(void **state)
{
	char *err = load_fails("\nmyorigin = $myorigin.example\n");

	assert_contains(err, "main.cf, line 2: parameter myorigin:");
	assert_contains(err, "myorigin -> myorigin");
	free(err);
}

static void
mydomain_from_myhostname_from_mydomain_is_a_loop(void **state)
{
	char *err = load_fails("myhostname = mail.$mydomain\n");

	assert_contains(err, "loop");
	free(err);
}

static void
deep_nesting_is_refused_shallow_is_fine(void **state)
{
	struct buf b;
	char *err;
	int i;

	buf_init(&b, BUF_NOMAX);
	for (i = 0; i < 30; i++)
		buf_printf(&b, "p%d = $p%d\n", i, i + 1);
	buf_printf(&b, "p%d = end\nmyorigin = $p0\n", i);
	load_ok(buf_cstr(&b));
	assert_string_equal(config_str("myorigin"), "end");

	buf_reset(&b);
	for (i = 0; i < 5000; i++)
		buf_printf(&b, "p%d = $p%d\n", i, i + 1);
	buf_printf(&b, "p%d = end\n", i);
	err = load_fails(buf_cstr(&b));
	assert_contains(err, "nested more than");
	free(err);
	buf_free(&b);
}

static void
exponential_growth_is_stopped(void **state)
{
	struct buf b;
	time_t start = time(NULL);
	char *err;
	int i;

	buf_init(&b, BUF_NOMAX);
	buf_puts(&b, "x0 = 0123456789012345678901234567890123456789\n");
	for (i = 1; i < 40; i++)
		buf_printf(&b, "x%d = $x%d$x%d$x%d$x%d\n", i, i - 1, i - 1,
		    i - 1, i - 1);
	err = load_fails(buf_cstr(&b));
	assert_contains(err, "longer than");
	free(err);
	/* Empty values multiply into nothing, but each is expanded once. */
	buf_reset(&b);
	buf_puts(&b, "y0 =\n");
	for (i = 1; i < 45; i++)
		buf_printf(&b, "y%d = $y%d$y%d$y%d\n", i, i - 1, i - 1, i - 1);
	buf_puts(&b, "myorigin = x$y44\n");
	load_ok(buf_cstr(&b));
	assert_string_equal(config_str("myorigin"), "x");
	buf_free(&b);
	assert_true(time(NULL) - start < 10);
}

static void
conditional_forms_follow_postfix(void **state)
{
	load_ok("relayhost = [smtp.example.net]\n"
	    "smtpd_banner = $myhostname ${relayhost?via ${relayhost}}"
	    "${relayhost:direct}\n"
	    "mail_name = ${recipient_delimiter?has}${recipient_delimiter:none}"
	    "\n"
	    "myhostname = mx.example\n");
	assert_string_equal(config_str("smtpd_banner"),
	    "mx.example via [smtp.example.net]");
	assert_string_equal(config_str("mail_name"), "none");
}

static void
dollar_syntax_errors_are_reported(void **state)
{
	char *err;

	load_ok("mail_name = costs $$5\n");
	assert_string_equal(config_str("mail_name"), "costs $5");
	err = load_fails("mail_name = costs $ 5\n");
	assert_contains(err, "line 1: parameter mail_name:");
	assert_contains(err, "'$' must be followed");
	free(err);
	err = load_fails("x = 1\nmail_name = ${myhostname\n");
	assert_contains(err, "line 2:");
	assert_contains(err, "missing '}'");
	free(err);
	err = load_fails("mail_name = ${}\n");
	assert_contains(err, "missing parameter name");
	free(err);
	err = load_fails("mail_name = ${relayhost?oops\n");
	assert_contains(err, "missing '}'");
	free(err);
	err = load_fails("mail_name = trailing $\n");
	assert_contains(err, "'$' must be followed");
	free(err);
}

static void
unknown_parameter_warns_and_is_kept(void **state)
{
	char *out;
	char *const *u;

	write_main_cf("myhostname = mx.example\n"
	    "frobnicate = yes please\n"
	    "mua_restrictions = permit_sasl_authenticated, reject\n"
	    "smtpd_client_restrictions = $mua_restrictions\n");
	capture_begin();
	{
		char *err = NULL;

		if (config_load(dir, &err) < 0)
			fail_msg("%s", err);
	}
	out = capture_end();
	assert_contains(out, "warning: ");
	assert_contains(out, "main.cf, line 2: unknown parameter frobnicate");
	/* A macro other values use is the administrator's own: no noise. */
	assert_null(strstr(out, "mua_restrictions"));
	free(out);
	assert_string_equal(config_raw("frobnicate"), "yes please");
	assert_true(config_is_set("frobnicate"));
	u = config_unknown_names();
	assert_string_equal(u[0], "frobnicate");
	assert_string_equal(u[1], "mua_restrictions");
	assert_null(u[2]);
	assert_null(config_raw("never_heard_of"));
	assert_string_equal(config_str("smtpd_client_restrictions"),
	    "permit_sasl_authenticated, reject");
}

static void
later_setting_wins_with_a_warning(void **state)
{
	char *out;

	write_main_cf("mail_name = One\n\nmail_name = Two\n");
	capture_begin();
	{
		char *err = NULL;

		assert_int_equal(config_load(dir, &err), 0);
	}
	out = capture_end();
	assert_contains(out, "line 3: mail_name overrides the value set on "
	    "line 1");
	free(out);
	assert_string_equal(config_str("mail_name"), "Two");
}

static void
bad_typed_values_name_file_line_and_type(void **state)
{
	static const struct {
		const char *text, *line, *type;
	} cases[] = {
		{ "smtpd_recipient_limit = lots\n", "line 1:", "integer" },
		{ "\nsmtpd_recipient_limit = -5\n", "line 2:", "integer" },
		{ "smtpd_recipient_limit = 5 \\\n", "line 1:", "integer" },
		{ "smtpd_recipient_limit = +5\n", "line 1:", "integer" },
		{ "smtpd_recipient_limit =\n", "line 1:", "integer" },
		{ "smtpd_helo_required = maybe\n", "line 1:", "boolean" },
		{ "smtpd_timeout = 5x\n", "line 1:", "time" },
		{ "smtpd_timeout = 5mm\n", "line 1:", "time" },
		{ "smtpd_timeout = m\n", "line 1:", "time" },
		{ "# c\n# c\nsmtpd_timeout = 0\n", "line 3:", "time" },
		{ "message_size_limit = 10M\n", "line 1:", "size" },
		{ "message_size_limit = 1.5\n", "line 1:", "size" },
		{ "default_process_limit = 0\n", "line 1:", "integer from 1" },
		{ "line_length_limit = 2048\nsmtpd_line_length_limit = 100\n",
		    "line 2:", "integer from 512" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err = load_fails(cases[i].text);

		assert_contains(err, path);
		assert_contains(err, cases[i].line);
		assert_contains(err, "bad value for ");
		assert_contains(err, cases[i].type);
		free(err);
	}
}

static void
overflowing_numbers_are_refused(void **state)
{
	char *err;

	err = load_fails("smtpd_recipient_limit = 99999999999999999999999\n");
	assert_contains(err, "bad value for smtpd_recipient_limit");
	free(err);
	err = load_fails("smtpd_recipient_limit = 2147483648\n");
	assert_contains(err, "integer from 1 to 2147483647");
	free(err);
	load_ok("smtpd_recipient_limit = 2147483647\n");
	assert_int_equal(config_int("smtpd_recipient_limit"), INT_MAX);
	err = load_fails("message_size_limit = 184467440737095516160\n");
	assert_contains(err, "size");
	free(err);
	err = load_fails("maximal_queue_lifetime = 99999999999999d\n");
	assert_contains(err, "time");
	free(err);
	err = load_fails("maximal_queue_lifetime = 30000w\n");
	assert_contains(err, "time");
	free(err);
}

static void
values_are_checked_after_expansion(void **state)
{
	char *err;

	load_ok("site_limit = 200\nsmtpd_recipient_limit = $site_limit\n");
	assert_int_equal(config_int("smtpd_recipient_limit"), 200);
	err = load_fails("site_limit = many\n"
	    "smtpd_recipient_limit = $site_limit\n");
	assert_contains(err, "main.cf, line 2: bad value for "
	    "smtpd_recipient_limit");
	assert_contains(err, "\"many\"");
	free(err);
	/* A default that refers to a bad value is caught too. */
	err = load_fails("line_length_limit = 100\n");
	assert_contains(err, "bad value for smtpd_line_length_limit "
	    "(default \"$line_length_limit\")");
	assert_contains(err, "\"100\"");
	free(err);
}

static void
time_units_and_default_units(void **state)
{
	load_ok("smtpd_timeout = 5m\nmaximal_queue_lifetime = 2\n"
	    "delay_warning_time = 4\nmax_idle = 1w\nminimal_backoff_time = 17\n");
	assert_int_equal(config_time("smtpd_timeout"), 300);
	assert_int_equal(config_time("maximal_queue_lifetime"), 2 * 86400);
	assert_int_equal(config_time("delay_warning_time"), 4 * 3600);
	assert_int_equal(config_time("max_idle"), 7 * 86400);
	assert_int_equal(config_time("minimal_backoff_time"), 17);
}

static void
booleans_accept_postfix_spellings(void **state)
{
	load_ok("smtpd_helo_required = YES\nbiff = no\n"
	    "smtputf8_enable = false\nsmtpd_tls_auth_only = True\n");
	assert_true(config_bool("smtpd_helo_required"));
	assert_false(config_bool("biff"));
	assert_false(config_bool("smtputf8_enable"));
	assert_true(config_bool("smtpd_tls_auth_only"));
}

static void
config_set_validates_and_reexpands(void **state)
{
	char *err = NULL;

	load_ok("myhostname = mx.example.org\n");
	assert_int_equal(config_set("smtpd_timeout", "10m", &err), 0);
	assert_int_equal(config_time("smtpd_timeout"), 600);
	assert_true(config_is_set("smtpd_timeout"));

	assert_int_equal(config_set("smtpd_timeout", "soon", &err), -1);
	assert_contains(err, "bad value for smtpd_timeout");
	assert_contains(err, "time");
	free(err);
	err = NULL;
	assert_int_equal(config_time("smtpd_timeout"), 600);

	assert_int_equal(config_set("myhostname", "other.example", &err), 0);
	assert_string_equal(config_str("smtpd_banner"),
	    "other.example ESMTP Tern");
	assert_string_equal(config_str("mydomain"), "localdomain");

	/* A change that would make a loop is refused and undone. */
	assert_int_equal(config_set("myhostname", "$myorigin", &err), -1);
	assert_contains(err, "loop");
	free(err);
	err = NULL;
	assert_string_equal(config_str("myhostname"), "other.example");

	assert_int_equal(config_set("bad-name", "x", &err), -1);
	assert_contains(err, "bad parameter name");
	free(err);
	err = NULL;
	assert_int_equal(config_set("mail_name", "a\nb", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(config_set("smtpd_recipient_limit",
	    "4294967296", &err), -1);
	free(err);
	err = NULL;
	assert_int_equal(config_int("smtpd_recipient_limit"), 1000);
}

static void
config_set_of_unknown_parameter_is_kept(void **state)
{
	char *err = NULL, *out;

	load_ok("");
	capture_begin();
	assert_int_equal(config_set("site_name", "Example", &err), 0);
	out = capture_end();
	assert_contains(out, "unknown parameter site_name");
	free(out);
	assert_int_equal(config_set("mail_name", "$site_name Mail", &err), 0);
	assert_string_equal(config_str("mail_name"), "Example Mail");
	/* An unknown parameter that makes a loop is refused and forgotten. */
	capture_begin();
	assert_int_equal(config_set("site_loop", "a$site_loop", &err), -1);
	out = capture_end();
	free(out);
	assert_contains(err, "site_loop -> site_loop");
	free(err);
	assert_null(config_raw("site_loop"));
	assert_string_equal(config_unknown_names()[0], "site_name");
	assert_null(config_unknown_names()[1]);
	assert_string_equal(config_str("mail_name"), "Example Mail");
}

static void
lists_split_on_commas_and_space_keeping_braces(void **state)
{
	char **v;

	load_ok("virtual_alias_maps = inline:{ a@x=b@y, c@x=d@y },"
	    "lmdb:/etc/tern/virtual   texthash:/etc/tern/more\n"
	    "relay_domains = ,, a.example ,b.example,,\n");
	v = config_list("virtual_alias_maps");
	assert_int_equal(strv_len(v), 3);
	assert_string_equal(v[0], "inline:{ a@x=b@y, c@x=d@y }");
	assert_string_equal(v[1], "lmdb:/etc/tern/virtual");
	assert_string_equal(v[2], "texthash:/etc/tern/more");
	strv_free(v);
	v = config_list("virtual_alias_domains");
	assert_int_equal(strv_len(v), 3);
	strv_free(v);
	v = config_list("relay_domains");
	assert_int_equal(strv_len(v), 2);
	assert_string_equal(v[0], "a.example");
	assert_string_equal(v[1], "b.example");
	strv_free(v);
	v = config_list("fallback_relay");
	assert_int_equal(strv_len(v), 0);
	strv_free(v);
}

static void
raw_parameters_keep_their_dollars(void **state)
{
	load_ok("mailbox_command = /usr/bin/procmail -a \"$EXTENSION\"\n");
	assert_string_equal(config_str("forward_path"),
	    "$home/.forward${recipient_extension}, $home/.forward");
	assert_string_equal(config_str("mailbox_command"),
	    "/usr/bin/procmail -a \"$EXTENSION\"");
}

static void
config_expand_uses_current_values(void **state)
{
	char *out = NULL, *err = NULL;

	load_ok("myhostname = mx.example.org\nsite = Example\n");
	assert_int_equal(config_expand("$site at ${myhostname}:$nothing.",
	    &out, &err), 0);
	assert_string_equal(out, "Example at mx.example.org:.");
	free(out);
	assert_int_equal(config_expand("${myhostname", &out, &err), -1);
	assert_contains(err, "missing '}'");
	free(err);
}

static void
missing_main_cf_is_an_error(void **state)
{
	char *err = NULL;

	assert_int_equal(config_load(dir, &err), -1);
	assert_contains(err, path);
	free(err);
}

static void
config_dir_comes_from_environment(void **state)
{
	char *err = NULL;

	write_main_cf("mail_name = FromEnv\n");
	setenv("TERN_CONFIG_DIR", dir, 1);
	assert_string_equal(config_dir(), dir);
	assert_int_equal(config_load(NULL, &err), 0);
	assert_string_equal(config_str("mail_name"), "FromEnv");
	assert_string_equal(config_dir(), dir);
	unsetenv("TERN_CONFIG_DIR");
	config_reset();
	assert_string_equal(config_dir(), TERN_CONFIG_DIR);
}

static void
reload_forgets_old_settings(void **state)
{
	load_ok("mail_name = First\nold_macro = 1\n");
	assert_string_equal(config_str("mail_name"), "First");
	load_ok("relayhost = [r.example]\n");
	assert_string_equal(config_str("mail_name"), "Tern");
	assert_false(config_is_set("mail_name"));
	assert_null(config_raw("old_macro"));
	assert_null(config_unknown_names()[0]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_is_sorted_and_complete),
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(every_default_is_valid),
		T(defaults_have_postfix_values),
		T(white_space_around_name_and_value_is_dropped),
		T(continuation_lines_join_into_one_value),
		T(comments_are_whole_lines_only),
		T(continuation_without_parameter_is_an_error),
		T(line_without_equals_is_an_error),
		T(dollar_name_braces_and_parens_expand),
		T(nested_expansion_through_unknown_macros),
		T(defaults_expand_with_main_cf_values),
		T(mydomain_default_is_not_a_bare_top_level_domain),
		T(myhostname_default_comes_from_the_machine),
		T(loop_between_two_parameters_is_an_error),
		T(self_reference_is_an_error),
		T(mydomain_from_myhostname_from_mydomain_is_a_loop),
		T(deep_nesting_is_refused_shallow_is_fine),
		T(exponential_growth_is_stopped),
		T(conditional_forms_follow_postfix),
		T(dollar_syntax_errors_are_reported),
		T(unknown_parameter_warns_and_is_kept),
		T(later_setting_wins_with_a_warning),
		T(bad_typed_values_name_file_line_and_type),
		T(overflowing_numbers_are_refused),
		T(values_are_checked_after_expansion),
		T(time_units_and_default_units),
		T(booleans_accept_postfix_spellings),
		T(config_set_validates_and_reexpands),
		T(config_set_of_unknown_parameter_is_kept),
		T(lists_split_on_commas_and_space_keeping_braces),
		T(raw_parameters_keep_their_dollars),
		T(config_expand_uses_current_values),
		T(missing_main_cf_is_an_error),
		T(config_dir_comes_from_environment),
		T(reload_forgets_old_settings),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
