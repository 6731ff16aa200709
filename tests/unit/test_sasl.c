/*
 * test_sasl - lib/sasl.c against the real Cyrus SASL library and a
 * sasldb made with saslpasswd2 in a temporary folder: PLAIN and LOGIN
 * authenticate with the right password only; malformed input (bad
 * base64, NUL bytes out of place, another user's authzid, an overlong
 * line) fails and never authenticates; the offered mechanisms follow
 * the security options and TLS; the client side authenticates to the
 * server side.
 *
 * saslpasswd2 comes with Debian's sasl2-bin (scripts/deps test installs
 * it); without it every test is skipped and says why.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "config.h"
#include "sasl.h"

#define REALM	"tern.test"

static char dir[64];
static char db[128];
static const char *saslpasswd2;

static const char *
find_saslpasswd2(void)
{
	static const char *const places[] = { "/usr/sbin/saslpasswd2",
	    "/usr/bin/saslpasswd2", "/sbin/saslpasswd2", NULL };
	size_t i;

	for (i = 0; places[i] != NULL; i++)
		if (access(places[i], X_OK) == 0)
			return places[i];
	return NULL;
}

static void
add_user(const char *user, const char *password)
{
	char cmd[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s -c -p -f %s -u %s -a tern %s",
	    saslpasswd2, db, REALM, user);
	p = popen(cmd, "w");
	assert_non_null(p);
	fputs(password, p);
	assert_int_equal(pclose(p), 0);
}

static int
setup(void **state)
{
	struct sasl_srv_config cf = { "tern", "", db, "PLAIN LOGIN CRAM-MD5" };
	char *err = NULL;

	if ((saslpasswd2 = find_saslpasswd2()) == NULL) {
		fprintf(stderr, "test_sasl: saslpasswd2 is missing (apt-get "
		    "install sasl2-bin, or scripts/deps test): skipping\n");
		return 0;
	}
	snprintf(dir, sizeof(dir), "/tmp/test_sasl.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/sasldb2", dir);
	add_user("alice", "secret1");
	add_user("bob", "hunter2");
	add_user("admin", "adminpw");
	if (sasl_srv_init(&cf, &err) < 0)
		fail_msg("%s", err);
	if (sasl_cli_init(&err) < 0)
		fail_msg("%s", err);
	return 0;
}

static int
teardown(void **state)
{
	if (saslpasswd2 == NULL)
		return 0;
	unlink(db);
	rmdir(dir);
	return 0;
}

#define NEED_SASLPASSWD2()						\
	do {								\
		if (saslpasswd2 == NULL)				\
			skip();						\
	} while (0)

static struct sasl_srv *
server(const char *secopts, int bits, char *const *proxies)
{
	struct sasl_srv_opts o;
	struct sasl_srv *v;
	char *err = NULL;

	memset(&o, 0, sizeof(o));
	o.service = "smtp";
	o.server_fqdn = "mx.tern.test";
	o.user_realm = REALM;
	o.remote_addr = "127.0.0.1;40000";
	o.local_addr = "127.0.0.1;25";
	o.security_options = secopts;
	o.tls_bits = bits;
	o.proxy_logins = proxies;
	v = sasl_srv_new(&o, &err);
	if (v == NULL)
		fail_msg("sasl_srv_new: %s", err);
	return v;
}

/* The usual session: inside TLS, noanonymous. */
static struct sasl_srv *
tls_server(void)
{
	return server("noanonymous", 256, NULL);
}

static char *
b64(const char *data, size_t n)
{
	return sasl_base64_encode(data, n);
}

/* AUTH PLAIN with an initial response of authzid NUL authcid NUL pw. */
static enum sasl_step
plain(struct sasl_srv *v, const char *authzid, const char *authcid,
    const char *pw)
{
	char raw[256], *enc, *out = NULL;
	enum sasl_step r;
	size_t n;

	n = (size_t)snprintf(raw, sizeof(raw), "%s%c%s%c%s", authzid, 0,
	    authcid, 0, pw);
	enc = b64(raw, n);
	r = sasl_srv_start(v, "PLAIN", enc, &out);
	free(enc);
	free(out);
	return r;
}

/* AUTH PLAIN with these raw bytes as the initial response. */
static enum sasl_step
plain_raw(struct sasl_srv *v, const char *raw, size_t n)
{
	char *enc = b64(raw, n), *out = NULL;
	enum sasl_step r;

	r = sasl_srv_start(v, "PLAIN", enc, &out);
	free(enc);
	free(out);
	return r;
}

static void
base64_is_strict_and_round_trips(void **state)
{
	static const char *const plain_text[] = { "", "f", "fo", "foo",
	    "foob", "fooba", "foobar" };
	static const char *const encoded[] = { "", "Zg==", "Zm8=", "Zm9v",
	    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	static const char *const bad[] = { "Zm9v!", "Zm9", "Zg=", "Zg==Zg==",
	    "Z===", "Zh==", "Zm9=", "Zm9v\n", " Zm9v", "=Zm9", "Zm=v",
	    "Zm 9v" };
	char *out, *enc;
	size_t i, n;

	for (i = 0; i < sizeof(encoded) / sizeof(*encoded); i++) {
		enc = sasl_base64_encode(plain_text[i], strlen(plain_text[i]));
		assert_string_equal(enc, encoded[i]);
		free(enc);
		assert_int_equal(sasl_base64_decode(encoded[i],
		    strlen(encoded[i]), &out, &n), 0);
		assert_int_equal(n, strlen(plain_text[i]));
		assert_memory_equal(out, plain_text[i], n);
		free(out);
	}
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		if (sasl_base64_decode(bad[i], strlen(bad[i]), &out, &n) == 0)
			fail_msg("\"%s\" decoded", bad[i]);
		assert_null(out);
	}
	/* Bytes with the high bit and NULs survive. */
	enc = sasl_base64_encode("\0\xff\x80z", 4);
	assert_int_equal(sasl_base64_decode(enc, strlen(enc), &out, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "\0\xff\x80z", 4);
	free(out);
	free(enc);
}

static void
plain_with_the_right_password_authenticates_the_login(void **state)
{
	struct sasl_srv *v;
	const char *user;

	NEED_SASLPASSWD2();
	v = tls_server();
	assert_null(sasl_srv_username(v));
	assert_int_equal(plain(v, "", "alice", "secret1"), SASL_STEP_OK);
	/* Cyrus names the user with the realm. */
	user = sasl_srv_username(v);
	assert_non_null(user);
	assert_string_equal(user, "alice@" REALM);
	assert_string_equal(sasl_srv_mech(v), "PLAIN");
	/* One AUTH per session. */
	assert_int_equal(plain(v, "", "bob", "hunter2"), SASL_STEP_BADINPUT);
	assert_string_equal(sasl_srv_username(v), user);
	sasl_srv_free(v);

	/* The login may name the realm itself, and pipe mode kept a
	 * password given without a newline intact. */
	v = tls_server();
	assert_int_equal(plain(v, "", "bob@" REALM, "hunter2"), SASL_STEP_OK);
	sasl_srv_free(v);
}

static void
plain_with_a_wrong_password_or_user_fails(void **state)
{
	struct sasl_srv *v;

	NEED_SASLPASSWD2();
	v = tls_server();
	assert_int_equal(plain(v, "", "alice", "secret2"), SASL_STEP_FAIL);
	assert_null(sasl_srv_username(v));
	assert_non_null(sasl_srv_reason(v));
	assert_int_equal(plain(v, "", "alice", "hunter2"), SASL_STEP_FAIL);
	assert_int_equal(plain(v, "", "mallory", "secret1"), SASL_STEP_FAIL);
	assert_int_equal(plain(v, "", "alice", "secret1x"), SASL_STEP_FAIL);
	assert_null(sasl_srv_username(v));
	/* After failures the next right attempt works. */
	assert_int_equal(plain(v, "", "alice", "secret1"), SASL_STEP_OK);
	sasl_srv_free(v);
}

static void
plain_without_initial_response_answers_an_empty_challenge(void **state)
{
	struct sasl_srv *v;
	char raw[] = "\0alice\0secret1", *enc, *out = NULL;

	NEED_SASLPASSWD2();
	v = tls_server();
	assert_int_equal(sasl_srv_start(v, "plain", NULL, &out),
	    SASL_STEP_CONTINUE);
	assert_string_equal(out, "");
	free(out);
	enc = b64(raw, sizeof(raw) - 1);
	assert_int_equal(sasl_srv_step(v, enc, &out), SASL_STEP_OK);
	assert_null(out);
	free(enc);
	sasl_srv_free(v);

	/* "=" is the empty initial response: no credentials at all. */
	v = tls_server();
	assert_true(sasl_srv_start(v, "PLAIN", "=", &out) != SASL_STEP_OK);
	assert_null(sasl_srv_username(v));
	sasl_srv_free(v);
}

/* LOGIN: Username:, Password:. */
static enum sasl_step
login(struct sasl_srv *v, const char *user, size_t ulen, const char *pw)
{
	char *enc, *out = NULL, *dec;
	enum sasl_step r;
	size_t n;

	r = sasl_srv_start(v, "LOGIN", NULL, &out);
	assert_int_equal(r, SASL_STEP_CONTINUE);
	assert_int_equal(sasl_base64_decode(out, strlen(out), &dec, &n), 0);
	assert_string_equal(dec, "Username:");
	free(dec);
	free(out);
	enc = b64(user, ulen);
	r = sasl_srv_step(v, enc, &out);
	free(enc);
	if (r != SASL_STEP_CONTINUE)
		return r;
	assert_int_equal(sasl_base64_decode(out, strlen(out), &dec, &n), 0);
	assert_string_equal(dec, "Password:");
	free(dec);
	free(out);
	enc = b64(pw, strlen(pw));
	r = sasl_srv_step(v, enc, &out);
	free(enc);
	free(out);
	return r;
}

static void
login_asks_username_then_password(void **state)
{
	struct sasl_srv *v;

	NEED_SASLPASSWD2();
	v = tls_server();
	assert_int_equal(login(v, "alice", 5, "wrong"), SASL_STEP_FAIL);
	assert_null(sasl_srv_username(v));
	assert_int_equal(login(v, "alice", 5, "secret1"), SASL_STEP_OK);
	assert_string_equal(sasl_srv_username(v), "alice@" REALM);
	assert_string_equal(sasl_srv_mech(v), "LOGIN");
	sasl_srv_free(v);
}

static void
malformed_input_never_authenticates(void **state)
{
	static const struct {
		const char	*raw;
		size_t		 len;
	} plains[] = {
		{ "alice secret1", 13 },		/* no NUL */
		{ "\0alice secret1", 14 },		/* one NUL */
		{ "alice\0secret1", 13 },		/* one NUL */
		{ "\0alice\0secret1\0", 15 },		/* three */
		{ "\0alice\0secret1\0\0", 16 },
		{ "\0\0secret1", 9 },			/* no login */
		{ "\0alice\0", 7 },			/* no password */
		{ "", 0 },
	};
	static const char *const bad64[] = { "AGFsaWNlAHNlY3JldDE",
	    "AGFsaWNlAHNlY3JldDE=x", "AGFs aWNlAHNlY3JldDE=", "!!!!",
	    "AGFsaWNlAHNlY3JldDE==" };
	struct sasl_srv *v;
	char *out;
	size_t i;

	NEED_SASLPASSWD2();
	v = tls_server();
	for (i = 0; i < sizeof(plains) / sizeof(*plains); i++) {
		if (plain_raw(v, plains[i].raw, plains[i].len) !=
		    SASL_STEP_BADINPUT)
			fail_msg("PLAIN case %zu was not refused as malformed",
			    i);
		assert_null(sasl_srv_username(v));
	}
	for (i = 0; i < sizeof(bad64) / sizeof(*bad64); i++) {
		out = NULL;
		assert_int_equal(sasl_srv_start(v, "PLAIN", bad64[i], &out),
		    SASL_STEP_BADINPUT);
		assert_null(out);
		assert_string_equal(sasl_srv_reason(v), "malformed base64");
	}
	/* The same in the second step of an exchange. */
	assert_int_equal(sasl_srv_start(v, "PLAIN", NULL, &out),
	    SASL_STEP_CONTINUE);
	free(out);
	assert_int_equal(sasl_srv_step(v, "AGFsaWNlAHNlY3JldDE", &out),
	    SASL_STEP_BADINPUT);
	/* ... which ended that exchange. */
	assert_int_equal(sasl_srv_step(v, "AGFsaWNlAHNlY3JldDE=", &out),
	    SASL_STEP_BADINPUT);
	/* A NUL inside a LOGIN user name. */
	assert_int_equal(login(v, "alice\0bob", 9, "secret1"),
	    SASL_STEP_BADINPUT);
	assert_null(sasl_srv_username(v));
	/* And the well-formed one still works afterwards. */
	assert_int_equal(plain(v, "", "alice", "secret1"), SASL_STEP_OK);
	sasl_srv_free(v);
}

static void
authzid_naming_another_user_fails(void **state)
{
	struct sasl_srv *v;

	NEED_SASLPASSWD2();
	v = tls_server();
	assert_int_equal(plain(v, "bob", "alice", "secret1"), SASL_STEP_FAIL);
	assert_null(sasl_srv_username(v));
	assert_int_equal(plain(v, "bob@" REALM, "alice", "secret1"),
	    SASL_STEP_FAIL);
	assert_null(sasl_srv_username(v));
	/* Naming oneself is fine. */
	assert_int_equal(plain(v, "alice", "alice", "secret1"), SASL_STEP_OK);
	sasl_srv_free(v);
}

static void
proxy_login_may_act_for_another_when_configured(void **state)
{
	char *proxies[] = { "admin@" REALM, "admin", NULL };
	struct sasl_srv *v;

	NEED_SASLPASSWD2();
	v = server("noanonymous", 256, proxies);
	assert_int_equal(plain(v, "alice", "admin", "adminpw"), SASL_STEP_OK);
	assert_string_equal(sasl_srv_username(v), "alice@" REALM);
	sasl_srv_free(v);

	/* bob is not a proxy. */
	v = server("noanonymous", 256, proxies);
	assert_int_equal(plain(v, "alice", "bob", "hunter2"), SASL_STEP_FAIL);
	assert_null(sasl_srv_username(v));
	sasl_srv_free(v);
}

static void
overlong_lines_fail_as_too_long(void **state)
{
	struct sasl_srv *v;
	char *big, *out = NULL;

	NEED_SASLPASSWD2();
	v = tls_server();
	big = xmalloc(100 * 1024 + 1);
	memset(big, 'A', 100 * 1024);
	big[100 * 1024] = '\0';
	assert_int_equal(sasl_srv_start(v, "PLAIN", big, &out),
	    SASL_STEP_TOOLONG);
	assert_null(sasl_srv_username(v));
	assert_int_equal(sasl_srv_start(v, "LOGIN", NULL, &out),
	    SASL_STEP_CONTINUE);
	free(out);
	assert_int_equal(sasl_srv_step(v, big, &out), SASL_STEP_TOOLONG);
	assert_null(sasl_srv_username(v));
	/* At the limit the length is fine; the content is not. */
	big[SASL_LINE_MAX] = '\0';
	assert_int_equal(sasl_srv_start(v, "PLAIN", big, &out),
	    SASL_STEP_BADINPUT);
	big[SASL_LINE_MAX] = 'A';
	big[SASL_LINE_MAX + 4] = '\0';
	assert_int_equal(sasl_srv_start(v, "PLAIN", big, &out),
	    SASL_STEP_TOOLONG);
	free(big);
	sasl_srv_free(v);
}

static void
star_cancels_and_steps_need_an_exchange(void **state)
{
	struct sasl_srv *v;
	char *out = NULL;

	NEED_SASLPASSWD2();
	v = tls_server();
	assert_int_equal(sasl_srv_step(v, "AGFsaWNlAHNlY3JldDE=", &out),
	    SASL_STEP_BADINPUT);
	assert_null(sasl_srv_username(v));
	assert_int_equal(sasl_srv_start(v, "LOGIN", NULL, &out),
	    SASL_STEP_CONTINUE);
	free(out);
	assert_int_equal(sasl_srv_step(v, "*", &out), SASL_STEP_CANCELLED);
	assert_null(out);
	/* The next line is not taken as part of the cancelled exchange. */
	assert_int_equal(sasl_srv_step(v, "YWxpY2U=", &out),
	    SASL_STEP_BADINPUT);
	assert_int_equal(plain(v, "", "alice", "secret1"), SASL_STEP_OK);
	sasl_srv_free(v);
}

static void
unknown_or_invalid_mechanisms_are_refused(void **state)
{
	struct sasl_srv *v;
	char *out = NULL;

	NEED_SASLPASSWD2();
	v = tls_server();
	assert_int_equal(sasl_srv_start(v, "FOO", NULL, &out),
	    SASL_STEP_NOMECH);
	assert_int_equal(sasl_srv_start(v, "PL@IN", NULL, &out),
	    SASL_STEP_NOMECH);
	assert_int_equal(sasl_srv_start(v, "", NULL, &out), SASL_STEP_NOMECH);
	assert_int_equal(sasl_srv_start(v,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ", NULL, &out), SASL_STEP_NOMECH);
	/* Not in smtpd_sasl_mechanism_list, though Cyrus has it. */
	assert_int_equal(sasl_srv_start(v, "DIGEST-MD5", NULL, &out),
	    SASL_STEP_NOMECH);
	assert_null(out);
	assert_null(sasl_srv_username(v));
	sasl_srv_free(v);
}

static int
has_word(const char *list, const char *word)
{
	char *copy = xstrdup(list), *w, *save = NULL;
	int found = 0;

	for (w = strtok_r(copy, " ", &save); w != NULL;
	    w = strtok_r(NULL, " ", &save))
		if (strcmp(w, word) == 0)
			found = 1;
	free(copy);
	return found;
}

static void
noplaintext_hides_plain_and_login_until_tls(void **state)
{
	struct sasl_srv *v;
	char *m, *out = NULL;

	NEED_SASLPASSWD2();
	v = server("noanonymous, noplaintext", 0, NULL);
	m = sasl_srv_mechs(v);
	assert_false(has_word(m, "PLAIN"));
	assert_false(has_word(m, "LOGIN"));
	assert_true(has_word(m, "CRAM-MD5"));
	free(m);
	/* Not offered means not accepted either. */
	assert_int_equal(plain(v, "", "alice", "secret1"), SASL_STEP_NOMECH);
	assert_int_equal(sasl_srv_start(v, "LOGIN", NULL, &out),
	    SASL_STEP_NOMECH);
	assert_null(sasl_srv_username(v));
	sasl_srv_free(v);

	v = server("noanonymous, noplaintext", 256, NULL);
	m = sasl_srv_mechs(v);
	assert_true(has_word(m, "PLAIN"));
	assert_true(has_word(m, "LOGIN"));
	free(m);
	assert_int_equal(plain(v, "", "alice", "secret1"), SASL_STEP_OK);
	sasl_srv_free(v);

	v = server("noanonymous", 0, NULL);
	m = sasl_srv_mechs(v);
	assert_true(has_word(m, "PLAIN"));
	assert_true(has_word(m, "LOGIN"));
	assert_false(has_word(m, "DIGEST-MD5"));	/* not in mech_list */
	free(m);
	sasl_srv_free(v);
}

static void
unknown_security_option_is_an_error(void **state)
{
	struct sasl_srv_opts o;
	char *err = NULL;

	NEED_SASLPASSWD2();
	memset(&o, 0, sizeof(o));
	o.security_options = "noanonymous, nosuchthing";
	assert_null(sasl_srv_new(&o, &err));
	assert_non_null(strstr(err, "nosuchthing"));
	free(err);
}

static void
server_init_happens_once(void **state)
{
	struct sasl_srv_config cf = { "other", "", "", "" };
	char *err = NULL;

	NEED_SASLPASSWD2();
	assert_int_equal(sasl_srv_init(&cf, &err), -1);
	assert_non_null(err);
	free(err);
}

/* Run a whole exchange between our client and our server. */
static enum sasl_step
converse(struct sasl_cli *c, struct sasl_srv *v, const char *offered,
    const char **mech)
{
	char *initial = NULL, *out = NULL, *resp = NULL, *err = NULL;
	enum sasl_step r;
	int rounds = 0;

	if (sasl_cli_start(c, offered, mech, &initial, &err) < 0)
		fail_msg("client start: %s", err);
	r = sasl_srv_start(v, *mech, initial, &out);
	free(initial);
	while (r == SASL_STEP_CONTINUE && rounds++ < 5) {
		if (sasl_cli_step(c, out, &resp, &err) < 0)
			fail_msg("client step: %s", err);
		free(out);
		out = NULL;
		r = sasl_srv_step(v, resp, &out);
		free(resp);
	}
	free(out);
	return r;
}

static struct sasl_cli *
client(const char *user, const char *pw, const char *secopts, int bits,
    const char *filter)
{
	struct sasl_cli_opts o;
	struct sasl_cli *c;
	char *err = NULL;

	memset(&o, 0, sizeof(o));
	o.service = "smtp";
	o.server_host = "relay.tern.test";
	o.username = user;
	o.password = pw;
	o.security_options = secopts;
	o.tls_bits = bits;
	o.mech_filter = filter;
	if ((c = sasl_cli_new(&o, &err)) == NULL)
		fail_msg("sasl_cli_new: %s", err);
	return c;
}

static void
client_authenticates_with_plain_and_login(void **state)
{
	struct sasl_cli *c;
	struct sasl_srv *v;
	const char *mech;

	NEED_SASLPASSWD2();
	c = client("alice", "secret1", "noanonymous", 256, "plain");
	v = tls_server();
	assert_int_equal(converse(c, v, "LOGIN PLAIN CRAM-MD5", &mech),
	    SASL_STEP_OK);
	assert_string_equal(mech, "PLAIN");
	assert_non_null(strstr(sasl_srv_username(v), "alice"));
	sasl_srv_free(v);
	sasl_cli_free(c);

	c = client("alice", "secret1", "noanonymous", 256, "login");
	v = tls_server();
	assert_int_equal(converse(c, v, "PLAIN LOGIN", &mech), SASL_STEP_OK);
	assert_string_equal(mech, "LOGIN");
	sasl_srv_free(v);
	sasl_cli_free(c);

	/* A challenge-response mechanism, over plain text. */
	c = client("alice", "secret1", "noanonymous, noplaintext", 0,
	    "cram-md5");
	v = server("noanonymous, noplaintext", 0, NULL);
	assert_int_equal(converse(c, v, "PLAIN LOGIN CRAM-MD5", &mech),
	    SASL_STEP_OK);
	assert_string_equal(mech, "CRAM-MD5");
	assert_string_equal(sasl_srv_username(v), "alice@" REALM);
	sasl_srv_free(v);
	sasl_cli_free(c);

	c = client("alice", "wrong", "noanonymous", 256, "");
	v = tls_server();
	assert_int_equal(converse(c, v, "PLAIN LOGIN", &mech),
	    SASL_STEP_FAIL);
	assert_null(sasl_srv_username(v));
	sasl_srv_free(v);
	sasl_cli_free(c);
}

static void
client_refuses_plaintext_without_tls_and_unfiltered_mechs(void **state)
{
	struct sasl_cli *c;
	const char *mech;
	char *initial = NULL, *err = NULL;

	NEED_SASLPASSWD2();
	c = client("alice", "secret1", "noplaintext, noanonymous", 0, "");
	assert_int_equal(sasl_cli_start(c, "PLAIN LOGIN", &mech, &initial,
	    &err), -1);
	assert_null(initial);
	free(err);
	sasl_cli_free(c);

	c = client("alice", "secret1", "noanonymous", 256, "cram-md5");
	err = NULL;
	assert_int_equal(sasl_cli_start(c, "PLAIN LOGIN", &mech, &initial,
	    &err), -1);
	assert_non_null(strstr(err, "smtp_sasl_mechanism_filter"));
	free(err);
	/* A server's garbled offer is not passed on. */
	err = NULL;
	assert_int_equal(sasl_cli_start(c, "CRAM-MD5\x01 PL\"AIN", &mech,
	    &initial, &err), -1);
	free(err);
	sasl_cli_free(c);

	/* A garbled challenge is an error, not a crash. */
	c = client("alice", "secret1", "noanonymous", 256, "login");
	err = NULL;
	assert_int_equal(sasl_cli_start(c, "LOGIN", &mech, &initial, &err),
	    0);
	free(initial);
	assert_int_equal(sasl_cli_step(c, "not base64!", &initial, &err), -1);
	assert_non_null(strstr(err, "malformed"));
	free(err);
	sasl_cli_free(c);
}

static void
sessions_build_from_main_cf_parameters(void **state)
{
	struct sasl_srv *v;
	struct sasl_cli *c;
	const char *mech;
	char *m, *initial = NULL, *err = NULL;

	NEED_SASLPASSWD2();
	config_reset();
	assert_int_equal(config_set("smtpd_sasl_local_domain", REALM, &err),
	    0);
	assert_int_equal(config_set("smtpd_sasl_security_options",
	    "noanonymous, noplaintext", &err), 0);
	v = sasl_srv_new_from_config("127.0.0.1;40000", "127.0.0.1;25", 0,
	    &err);
	assert_non_null(v);
	m = sasl_srv_mechs(v);
	assert_false(has_word(m, "PLAIN"));
	free(m);
	sasl_srv_free(v);
	/* Inside TLS: smtpd_sasl_tls_security_options. */
	assert_int_equal(config_set("smtpd_sasl_tls_security_options",
	    "noanonymous", &err), 0);
	v = sasl_srv_new_from_config(NULL, NULL, 256, &err);
	assert_non_null(v);
	m = sasl_srv_mechs(v);
	assert_true(has_word(m, "PLAIN"));
	free(m);
	assert_int_equal(plain(v, "", "alice", "secret1"), SASL_STEP_OK);
	assert_string_equal(sasl_srv_username(v), "alice@" REALM);
	sasl_srv_free(v);
	assert_int_equal(config_set("smtpd_sasl_proxy_logins", "admin@" REALM,
	    &err), 0);
	v = sasl_srv_new_from_config(NULL, NULL, 256, &err);
	assert_int_equal(plain(v, "bob", "admin", "adminpw"), SASL_STEP_OK);
	assert_string_equal(sasl_srv_username(v), "bob@" REALM);
	sasl_srv_free(v);

	/* The client refuses PLAIN in clear by default, uses it in TLS. */
	c = sasl_cli_new_from_config("relay.tern.test", "alice", "secret1", 0,
	    &err);
	assert_non_null(c);
	assert_int_equal(sasl_cli_start(c, "PLAIN LOGIN", &mech, &initial,
	    &err), -1);
	free(err);
	err = NULL;
	sasl_cli_free(c);
	c = sasl_cli_new_from_config("relay.tern.test", "alice", "secret1",
	    256, &err);
	assert_non_null(c);
	assert_int_equal(sasl_cli_start(c, "PLAIN LOGIN", &mech, &initial,
	    &err), 0);
	free(initial);
	sasl_cli_free(c);
	config_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(base64_is_strict_and_round_trips),
		cmocka_unit_test(
		    plain_with_the_right_password_authenticates_the_login),
		cmocka_unit_test(plain_with_a_wrong_password_or_user_fails),
		cmocka_unit_test(
		    plain_without_initial_response_answers_an_empty_challenge),
		cmocka_unit_test(login_asks_username_then_password),
		cmocka_unit_test(malformed_input_never_authenticates),
		cmocka_unit_test(authzid_naming_another_user_fails),
		cmocka_unit_test(
		    proxy_login_may_act_for_another_when_configured),
		cmocka_unit_test(overlong_lines_fail_as_too_long),
		cmocka_unit_test(star_cancels_and_steps_need_an_exchange),
		cmocka_unit_test(unknown_or_invalid_mechanisms_are_refused),
		cmocka_unit_test(noplaintext_hides_plain_and_login_until_tls),
		cmocka_unit_test(unknown_security_option_is_an_error),
		cmocka_unit_test(server_init_happens_once),
		cmocka_unit_test(client_authenticates_with_plain_and_login),
		cmocka_unit_test(
		    client_refuses_plaintext_without_tls_and_unfiltered_mechs),
		cmocka_unit_test(sessions_build_from_main_cf_parameters),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
