/*
 * test_tls - lib/tls.c: contexts from certificate files fail with a
 * reason, handshakes over a socketpair carry lines both ways through
 * the stream API, protocol and certificate policy are enforced
 * (protocol ranges, verify/secure names, DANE), garbage and silence
 * give errors, input pipelined before STARTTLS is thrown away, and
 * sessions are resumed.
 *
 * The certificates are made at test time with the OpenSSL API: a CA,
 * a server certificate for mx.tern.test signed by it, a second key for
 * the mismatch tests. One end of each connection runs in a forked
 * child that reports through its exit status (and, once in TLS,
 * through what it answers).
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "testlib.h"
#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "stream.h"
#include "tls.h"

#define HOST	"mx.tern.test"
#define TMO	5000

static char dir[64];
static char ca_pem[128], srv_pem[128], srv_key[128], other_key[128];
static char chain_pem[128], junk_pem[128], new_pem[128], new_key[128];
static unsigned char spki_sha256[32];

/*
 * Certificates.
 */

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

static X509 *
make_cert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer,
    EVP_PKEY *issuer_key)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name);
	add_ext(x, issuer, NID_subject_key_identifier, "hash");
	if (issuer == NULL) {
		add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, issuer, NID_key_usage,
		    "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
		add_ext(x, issuer, NID_authority_key_identifier, "keyid");
		add_ext(x, issuer, NID_ext_key_usage, "serverAuth,clientAuth");
	}
	if (san != NULL)
		add_ext(x, issuer, NID_subject_alt_name, san);
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key,
	    EVP_sha256()) > 0);
	return x;
}

static void
write_pem(const char *path, EVP_PKEY *key, X509 *a, X509 *b)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	if (key != NULL)
		assert_true(PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL,
		    NULL));
	if (a != NULL)
		assert_true(PEM_write_X509(fp, a));
	if (b != NULL)
		assert_true(PEM_write_X509(fp, b));
	assert_int_equal(fclose(fp), 0);
}

static int
setup(void **state)
{
	EVP_PKEY *ca_key, *key, *other, *nkey;
	X509 *ca, *cert, *ncert;
	unsigned char *der = NULL;
	unsigned int mdlen;
	FILE *fp;
	int len;

	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "/tmp/test_tls.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(ca_pem, sizeof(ca_pem), "%s/ca.pem", dir);
	snprintf(srv_pem, sizeof(srv_pem), "%s/server.pem", dir);
	snprintf(srv_key, sizeof(srv_key), "%s/server.key", dir);
	snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
	snprintf(chain_pem, sizeof(chain_pem), "%s/chain.pem", dir);
	snprintf(junk_pem, sizeof(junk_pem), "%s/junk.pem", dir);
	snprintf(new_pem, sizeof(new_pem), "%s/new.pem", dir);
	snprintf(new_key, sizeof(new_key), "%s/new.key", dir);

	ca_key = EVP_EC_gen("P-256");
	key = EVP_EC_gen("P-256");
	other = EVP_EC_gen("P-256");
	nkey = EVP_EC_gen("P-256");
	assert_true(ca_key && key && other && nkey);
	ca = make_cert(ca_key, "Tern Test CA", NULL, NULL, NULL);
	cert = make_cert(key, HOST, "DNS:" HOST, ca, ca_key);
	ncert = make_cert(nkey, "new.tern.test", "DNS:new.tern.test", ca,
	    ca_key);
	write_pem(ca_pem, NULL, ca, NULL);
	write_pem(srv_pem, NULL, cert, ca);
	write_pem(srv_key, key, NULL, NULL);
	write_pem(other_key, other, NULL, NULL);
	write_pem(chain_pem, key, cert, ca);
	write_pem(new_pem, NULL, ncert, ca);
	write_pem(new_key, nkey, NULL, NULL);
	fp = fopen(junk_pem, "w");
	assert_non_null(fp);
	fputs("this is not a certificate\n", fp);
	fclose(fp);

	/* DANE-EE(3) SPKI(1) SHA2-256(1) of the server's key. */
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	assert_true(len > 0);
	assert_true(EVP_Digest(der, (size_t)len, spki_sha256, &mdlen,
	    EVP_sha256(), NULL));
	OPENSSL_free(der);

	X509_free(ca);
	X509_free(cert);
	X509_free(ncert);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
	EVP_PKEY_free(other);
	EVP_PKEY_free(nkey);
	return 0;
}

static int
teardown(void **state)
{
	const char *files[] = { ca_pem, srv_pem, srv_key, other_key,
	    chain_pem, junk_pem, new_pem, new_key };
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(*files); i++)
		unlink(files[i]);
	rmdir(dir);
	return 0;
}

/*
 * Contexts.
 */

static struct tls_ctx *
server_ctx_opts(enum tls_level level, const char *protocols,
    const char *mandatory, unsigned long session_timeout)
{
	struct tls_server_opts o;
	struct tls_ctx *t;
	char *err = NULL;

	memset(&o, 0, sizeof(o));
	o.level = level;
	o.cert_file = srv_pem;
	o.key_file = srv_key;
	o.protocols = protocols;
	o.mandatory_protocols = mandatory;
	o.session_timeout = session_timeout;
	o.loglevel = 1;
	t = tls_server_ctx_new(&o, &err);
	if (t == NULL)
		fail_msg("server context: %s", err);
	return t;
}

static struct tls_ctx *
server_ctx(void)
{
	return server_ctx_opts(TLS_LEV_MAY, NULL, NULL, 3600);
}

static struct tls_ctx *
client_ctx_opts(const char *cafile, const char *protocols,
    unsigned long session_timeout)
{
	struct tls_client_opts o;
	struct tls_ctx *t;
	char *err = NULL;

	memset(&o, 0, sizeof(o));
	o.CAfile = cafile;
	o.protocols = protocols;
	o.mandatory_protocols = protocols;
	o.session_timeout = session_timeout;
	t = tls_client_ctx_new(&o, &err);
	if (t == NULL)
		fail_msg("client context: %s", err);
	return t;
}

static struct tls_ctx *
client_ctx(const char *cafile)
{
	return client_ctx_opts(cafile, NULL, 3600);
}

/*
 * The forked end.
 */

static pid_t
spawn(int (*fn)(void *), void *arg, int keep, int drop)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		close(drop);
		_exit(fn(arg));
	}
	close(keep);
	return pid;
}

static int
reap(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

/* A TLS server for n connections, one after the other. Answers
 * "REUSED?" with reused=0/1, "BIG..." with the line's length, anything
 * else with "ok " and the line. Exit 0, or 2 when a handshake failed. */
struct serve {
	struct tls_ctx	*ctx[4];
	int		 fd[4];
	int		 n;
};

static int
serve_fn(void *arg)
{
	struct serve *a = arg;
	struct stream *s;
	struct buf line;
	char *err;
	int i, r, rc = 0;

	buf_init(&line, 1 << 20);
	for (i = 0; i < a->n; i++) {
		s = stream_new(a->fd[i], TMO);
		err = NULL;
		if (tls_stream_start_server(s, a->ctx[i], TMO, &err) < 0) {
			stream_free(s);
			rc = 2;
			continue;
		}
		while ((r = stream_read_line(s, &line, 1 << 20)) > 0) {
			if (strcmp(line.data, "REUSED?\r\n") == 0)
				stream_printf(s, "reused=%d\r\n",
				    tls_conn_reused(tls_stream_conn(s)));
			else if (strncmp(line.data, "BIG", 3) == 0)
				stream_printf(s, "len=%zu\r\n", line.len);
			else
				stream_printf(s, "ok %s", line.data);
			if (stream_flush(s) < 0)
				break;
		}
		tls_stream_stop(s);
		stream_free(s);
	}
	buf_free(&line);
	return rc;
}

/* Start a server child on a fresh socketpair; *client is our end. */
static pid_t
serve_one(struct tls_ctx *ctx, int *client)
{
	static struct serve a;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	memset(&a, 0, sizeof(a));
	a.ctx[0] = ctx;
	a.fd[0] = sv[1];
	a.n = 1;
	*client = sv[0];
	return spawn(serve_fn, &a, sv[1], sv[0]);
}

/* Connect a client stream to a server child; 0 or -1 with *err. */
static int
client_connect(struct tls_ctx *ctx, const struct tls_peer *peer,
    struct stream **sp, pid_t *pid, struct tls_ctx *sctx, char **err)
{
	int fd;

	*pid = serve_one(sctx, &fd);
	*sp = stream_new(fd, TMO);
	*err = NULL;
	return tls_stream_start_client(*sp, ctx, peer, TMO, err);
}

static void
expect_line(struct stream *s, const char *want)
{
	struct buf line;

	buf_init(&line, 1 << 16);
	assert_true(stream_read_line(s, &line, 1 << 16) > 0);
	assert_string_equal(line.data, want);
	buf_free(&line);
}

static void
close_client(struct stream *s, pid_t pid, int want_status)
{
	tls_stream_stop(s);
	stream_free(s);
	assert_int_equal(reap(pid), want_status);
}

/*
 * Tests.
 */

static void
level_names_parse_as_postfix_spells_them(void **state)
{
	enum tls_level l;

	assert_int_equal(tls_level_parse("", &l), 0);
	assert_int_equal(l, TLS_LEV_NONE);
	assert_int_equal(tls_level_parse("may", &l), 0);
	assert_int_equal(l, TLS_LEV_MAY);
	assert_int_equal(tls_level_parse("Encrypt", &l), 0);
	assert_int_equal(l, TLS_LEV_ENCRYPT);
	assert_int_equal(tls_level_parse("secure", &l), 0);
	assert_int_equal(l, TLS_LEV_SECURE);
	assert_int_equal(tls_level_parse("verify", &l), 0);
	assert_string_equal(tls_level_name(l), "verify");
	assert_int_equal(tls_level_parse("fingerprint", &l), -1);
}

static void
protocol_syntax_gives_the_enabled_set(void **state)
{
	unsigned m;
	char *err = NULL;

	assert_int_equal(tls_protocols_parse(">=TLSv1.2", &m, &err), 0);
	assert_int_equal(m, TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3);
	assert_int_equal(tls_protocols_parse("!SSLv2, !SSLv3, !TLSv1, "
	    "!TLSv1.1", &m, &err), 0);
	assert_int_equal(m, TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3);
	assert_int_equal(tls_protocols_parse("!SSLv2:!SSLv3", &m, &err), 0);
	assert_int_equal(m, TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1 |
	    TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3);
	assert_int_equal(tls_protocols_parse("TLSv1.3", &m, &err), 0);
	assert_int_equal(m, TLS_PROTO_TLSv1_3);
	assert_int_equal(tls_protocols_parse("tlsv1.2 TLSv1.3", &m, &err), 0);
	assert_int_equal(m, TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3);
	assert_int_equal(tls_protocols_parse("<=TLSv1.2, >=TLSv1.1", &m,
	    &err), 0);
	assert_int_equal(m, TLS_PROTO_TLSv1_1 | TLS_PROTO_TLSv1_2);
	assert_int_equal(tls_protocols_parse("", &m, &err), 0);
	assert_int_equal(m, TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1 |
	    TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3);

	assert_int_equal(tls_protocols_parse("TLSv1.4", &m, &err), -1);
	assert_non_null(strstr(err, "TLSv1.4"));
	free(err);
	err = NULL;
	assert_int_equal(tls_protocols_parse(">=TLSv1.3, !TLSv1.3", &m,
	    &err), -1);
	assert_non_null(strstr(err, "no usable"));
	free(err);
	err = NULL;
	assert_int_equal(tls_protocols_parse("SSLv3", &m, &err), -1);
	free(err);
}

static void
bad_cipher_grade_and_protocols_fail_context_creation(void **state)
{
	struct tls_server_opts o;
	char *err = NULL;

	memset(&o, 0, sizeof(o));
	o.level = TLS_LEV_MAY;
	o.cert_file = srv_pem;
	o.key_file = srv_key;
	o.ciphers = "export-grade-please";
	assert_null(tls_server_ctx_new(&o, &err));
	assert_non_null(strstr(err, "cipher grade"));
	free(err);
	err = NULL;
	o.ciphers = "high";
	o.protocols = "TLSv9";
	assert_null(tls_server_ctx_new(&o, &err));
	assert_non_null(strstr(err, "TLSv9"));
	free(err);
}

static void
missing_unreadable_and_mismatched_files_are_reported(void **state)
{
	struct tls_server_opts o;
	char *err = NULL;

	memset(&o, 0, sizeof(o));
	o.level = TLS_LEV_MAY;

	assert_null(tls_server_ctx_new(&o, &err));
	assert_non_null(strstr(err, "no server certificate"));
	free(err);
	err = NULL;

	o.cert_file = "/nonexistent/cert.pem";
	assert_null(tls_server_ctx_new(&o, &err));
	assert_non_null(strstr(err, "/nonexistent/cert.pem"));
	assert_non_null(strstr(err, strerror(ENOENT)));
	free(err);
	err = NULL;

	o.cert_file = junk_pem;
	assert_null(tls_server_ctx_new(&o, &err));
	assert_non_null(strstr(err, "no PEM certificate"));
	free(err);
	err = NULL;

	/* A certificate file without the key, and no key file. */
	o.cert_file = srv_pem;
	o.key_file = NULL;
	assert_null(tls_server_ctx_new(&o, &err));
	assert_non_null(strstr(err, "no usable private key"));
	free(err);
	err = NULL;

	o.key_file = other_key;
	assert_null(tls_server_ctx_new(&o, &err));
	assert_non_null(strstr(err, "does not match"));
	assert_non_null(strstr(err, other_key));
	free(err);
	err = NULL;

	/* Nothing of it left in OpenSSL's error queue for the next one. */
	o.key_file = srv_key;
	struct tls_ctx *t = tls_server_ctx_new(&o, &err);
	assert_non_null(t);
	tls_ctx_free(t);
}

static void
handshake_carries_lines_both_ways(void **state)
{
	struct tls_ctx *sctx = server_ctx(), *cctx = client_ctx(NULL);
	struct tls_peer peer = { .level = TLS_LEV_MAY, .servername = HOST };
	struct stream *s;
	struct tls_conn *c;
	struct buf line;
	char *err, *desc, *big;
	const char *proto;
	pid_t pid;
	int bits, alg;

	assert_int_equal(client_connect(cctx, &peer, &s, &pid, sctx, &err),
	    0);
	c = tls_stream_conn(s);
	assert_non_null(c);
	proto = tls_conn_protocol(c);
	assert_true(strcmp(proto, "TLSv1.3") == 0 ||
	    strcmp(proto, "TLSv1.2") == 0);
	bits = tls_conn_bits(c, &alg);
	assert_true(bits >= 128 && alg >= bits);
	desc = tls_conn_describe(c);
	buf_init(&line, 1 << 20);
	buf_printf(&line, "%s with cipher %s (%d/%d bits)", proto,
	    tls_conn_cipher(c), bits, alg);
	assert_string_equal(desc, line.data);
	free(desc);
	assert_string_equal(tls_conn_peer_cn(c), HOST);
	/* No CAfile given, the test CA is not in the system store. */
	assert_string_equal(tls_conn_trust(c), "Untrusted");
	assert_non_null(tls_conn_verify_error(c));
	assert_int_equal(tls_conn_reused(c), 0);

	/* STARTTLS inside TLS is refused, and the session goes on. */
	err = NULL;
	assert_int_equal(tls_stream_start_client(s, cctx, &peer, TMO, &err),
	    -1);
	assert_non_null(strstr(err, "already active"));
	free(err);

	assert_int_equal(stream_puts(s, "EHLO client\r\nNOOP\r\n"), 0);
	assert_int_equal(stream_flush(s), 0);
	expect_line(s, "ok EHLO client\r\n");
	expect_line(s, "ok NOOP\r\n");

	/* A line of 100000 bytes spans several TLS records each way. */
	big = xmalloc(100001);
	memset(big, 'x', 100000);
	memcpy(big, "BIG", 3);
	big[99998] = '\r';
	big[99999] = '\n';
	big[100000] = '\0';
	assert_int_equal(stream_puts(s, big), 0);
	assert_int_equal(stream_flush(s), 0);
	free(big);
	expect_line(s, "len=100000\r\n");

	/* The server's close_notify is an ordinary end of input. */
	shutdown(s->fd, SHUT_WR);
	assert_int_equal(stream_read_line(s, &line, 1 << 20), STREAM_EOF);
	buf_free(&line);
	close_client(s, pid, 0);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

/* A client of raw OpenSSL that speaks exactly one protocol version;
 * exit 0 when its handshake fails, 3 when it succeeds. */
static int forced_version;
static int forced_fd;

static int
forced_client_fn(void *arg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	int r;

	SSL_CTX_set_security_level(ctx, 0);
	SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
	SSL_CTX_set_min_proto_version(ctx, forced_version);
	SSL_CTX_set_max_proto_version(ctx, forced_version);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, forced_fd);
	r = SSL_connect(ssl);
	return r == 1 ? 3 : 0;
}

static int
serve_forced_client(struct tls_ctx *sctx, int version, char **err,
    char *proto, size_t protolen)
{
	struct stream *s;
	pid_t pid;
	int sv[2], r;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	forced_version = version;
	forced_fd = sv[1];
	pid = spawn(forced_client_fn, NULL, sv[1], sv[0]);
	s = stream_new(sv[0], TMO);
	*err = NULL;
	r = tls_stream_start_server(s, sctx, TMO, err);
	if (r == 0)
		snprintf(proto, protolen, "%s",
		    tls_conn_protocol(tls_stream_conn(s)));
	tls_stream_stop(s);
	stream_free(s);
	assert_int_equal(reap(pid), r == 0 ? 3 : 0);
	return r;
}

static void
tls11_client_is_refused_and_tls12_accepted(void **state)
{
	struct tls_ctx *sctx = server_ctx();
	char *err, proto[32];

	assert_int_equal(serve_forced_client(sctx, TLS1_1_VERSION, &err,
	    proto, sizeof(proto)), -1);
	assert_non_null(strstr(err, "TLS handshake failed"));
	assert_non_null(strstr(err, "protocol"));
	free(err);
	assert_int_equal(serve_forced_client(sctx, TLS1_2_VERSION, &err,
	    proto, sizeof(proto)), 0);
	assert_string_equal(proto, "TLSv1.2");
	tls_ctx_free(sctx);
}

static void
configured_protocols_bound_the_negotiation(void **state)
{
	struct tls_ctx *only13, *no13, *mand;
	char *err, proto[32];

	only13 = server_ctx_opts(TLS_LEV_MAY, "TLSv1.3", NULL, 0);
	assert_int_equal(serve_forced_client(only13, TLS1_2_VERSION, &err,
	    proto, sizeof(proto)), -1);
	free(err);
	assert_int_equal(serve_forced_client(only13, TLS1_3_VERSION, &err,
	    proto, sizeof(proto)), 0);
	assert_string_equal(proto, "TLSv1.3");

	no13 = server_ctx_opts(TLS_LEV_MAY, "!TLSv1.3", NULL, 0);
	assert_int_equal(serve_forced_client(no13, TLS1_3_VERSION, &err,
	    proto, sizeof(proto)), -1);
	free(err);

	/* encrypt uses the mandatory protocols, may the others. */
	mand = server_ctx_opts(TLS_LEV_ENCRYPT, ">=TLSv1.2", "TLSv1.3", 0);
	assert_int_equal(serve_forced_client(mand, TLS1_2_VERSION, &err,
	    proto, sizeof(proto)), -1);
	free(err);
	tls_ctx_free(only13);
	tls_ctx_free(no13);
	tls_ctx_free(mand);
}

static void
verify_level_needs_a_trusted_chain_and_the_name(void **state)
{
	struct tls_ctx *sctx = server_ctx();
	struct tls_ctx *untrusting = client_ctx(NULL);
	struct tls_ctx *trusting = client_ctx(ca_pem);
	const char *wrong[] = { "other.example", NULL };
	const char *right[] = { "other.example", HOST, NULL };
	struct tls_peer peer = { .level = TLS_LEV_VERIFY, .servername = HOST };
	struct stream *s;
	char *err;
	pid_t pid;

	/* Untrusted chain. */
	assert_int_equal(client_connect(untrusting, &peer, &s, &pid, sctx,
	    &err), -1);
	assert_non_null(strstr(err, "certificate verify failed"));
	free(err);
	stream_free(s);
	assert_int_equal(reap(pid), 2);

	/* Trusted chain, right name. */
	assert_int_equal(client_connect(trusting, &peer, &s, &pid, sctx,
	    &err), 0);
	assert_string_equal(tls_conn_trust(tls_stream_conn(s)), "Verified");
	assert_null(tls_conn_verify_error(tls_stream_conn(s)));
	assert_int_equal(stream_puts(s, "QUIT\r\n"), 0);
	assert_int_equal(stream_flush(s), 0);
	expect_line(s, "ok QUIT\r\n");
	close_client(s, pid, 0);

	/* Trusted chain, wrong name. */
	peer.match = wrong;
	assert_int_equal(client_connect(trusting, &peer, &s, &pid, sctx,
	    &err), -1);
	assert_non_null(strstr(err, "hostname mismatch"));
	free(err);
	stream_free(s);
	assert_int_equal(reap(pid), 2);

	/* Any one of several names will do. */
	peer.match = right;
	assert_int_equal(client_connect(trusting, &peer, &s, &pid, sctx,
	    &err), 0);
	close_client(s, pid, 0);

	/* may: the same wrong name and chain connect; the log says so. */
	peer.level = TLS_LEV_MAY;
	peer.match = wrong;
	assert_int_equal(client_connect(trusting, &peer, &s, &pid, sctx,
	    &err), 0);
	assert_string_equal(tls_conn_trust(tls_stream_conn(s)), "Trusted");
	close_client(s, pid, 0);

	tls_ctx_free(sctx);
	tls_ctx_free(untrusting);
	tls_ctx_free(trusting);
}

static void
secure_level_checks_the_nexthop_names(void **state)
{
	struct tls_ctx *sctx = server_ctx(), *cctx = client_ctx(ca_pem);
	const char *nexthop[] = { "tern.test", ".tern.test", NULL };
	const char *elsewhere[] = { "example.org", ".example.org", NULL };
	struct tls_peer peer = { .level = TLS_LEV_SECURE, .servername = HOST };
	struct stream *s;
	char *err;
	pid_t pid;

	peer.match = nexthop;
	assert_int_equal(client_connect(cctx, &peer, &s, &pid, sctx, &err),
	    0);
	assert_string_equal(tls_conn_trust(tls_stream_conn(s)), "Verified");
	close_client(s, pid, 0);

	peer.match = elsewhere;
	assert_int_equal(client_connect(cctx, &peer, &s, &pid, sctx, &err),
	    -1);
	assert_non_null(strstr(err, "hostname mismatch"));
	free(err);
	stream_free(s);
	assert_int_equal(reap(pid), 2);

	/* secure without any name to check is a configuration error. */
	peer.match = NULL;
	peer.servername = NULL;
	s = stream_new(open("/dev/null", O_RDWR), TMO);
	err = NULL;
	assert_int_equal(tls_stream_start_client(s, cctx, &peer, TMO, &err),
	    -1);
	assert_non_null(strstr(err, "without a name"));
	free(err);
	stream_free(s);

	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void
dane_ee_record_authenticates_without_a_ca(void **state)
{
	struct tls_ctx *sctx = server_ctx(), *cctx = client_ctx(NULL);
	unsigned char wrong[32];
	struct tls_tlsa rr = { 3, 1, 1, spki_sha256, 32 };
	struct tls_peer peer = { .level = TLS_LEV_DANE, .servername = HOST,
	    .tlsa = &rr, .ntlsa = 1 };
	struct stream *s;
	char *err;
	pid_t pid;

	assert_int_equal(client_connect(cctx, &peer, &s, &pid, sctx, &err),
	    0);
	assert_string_equal(tls_conn_trust(tls_stream_conn(s)), "Verified");
	close_client(s, pid, 0);

	memcpy(wrong, spki_sha256, sizeof(wrong));
	wrong[0] ^= 0xff;
	rr.data = wrong;
	assert_int_equal(client_connect(cctx, &peer, &s, &pid, sctx, &err),
	    -1);
	assert_non_null(strstr(err, "certificate verify failed"));
	free(err);
	stream_free(s);
	assert_int_equal(reap(pid), 2);

	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

/* A peer that writes plain text where a handshake should be. */
static int garbage_fd;

static int
garbage_fn(void *arg)
{
	char buf[512];
	const char *junk = arg;

	if (write(garbage_fd, junk, strlen(junk)) < 0)
		return 1;
	/* Wait for the other end to give up. */
	while (read(garbage_fd, buf, sizeof(buf)) > 0)
		;
	return 0;
}

static void
garbage_instead_of_a_handshake_is_an_error(void **state)
{
	struct tls_ctx *sctx = server_ctx(), *cctx = client_ctx(NULL);
	struct tls_peer peer = { .level = TLS_LEV_ENCRYPT, .servername = HOST };
	struct stream *s;
	struct buf line;
	char *err = NULL;
	pid_t pid;
	int sv[2];

	/* A server receiving SMTP commands. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	garbage_fd = sv[1];
	pid = spawn(garbage_fn, "EHLO plain.example\r\nMAIL FROM:<a@b>\r\n",
	    sv[1], sv[0]);
	s = stream_new(sv[0], TMO);
	assert_int_equal(tls_stream_start_server(s, sctx, TMO, &err), -1);
	assert_non_null(strstr(err, "TLS handshake failed"));
	free(err);
	/* The stream is dead, not plain text again. */
	buf_init(&line, 1024);
	assert_int_equal(stream_read_line(s, &line, 1024), STREAM_ERROR);
	assert_null(tls_stream_conn(s));
	buf_free(&line);
	stream_free(s);
	assert_int_equal(reap(pid), 0);

	/* A client receiving a greeting where a ServerHello should be. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	garbage_fd = sv[1];
	pid = spawn(garbage_fn, "220 mx.tern.test ESMTP\r\n", sv[1], sv[0]);
	s = stream_new(sv[0], TMO);
	err = NULL;
	assert_int_equal(tls_stream_start_client(s, cctx, &peer, TMO, &err),
	    -1);
	assert_non_null(strstr(err, "TLS handshake failed"));
	free(err);
	stream_free(s);
	assert_int_equal(reap(pid), 0);

	/* A peer that hangs up at once. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	s = stream_new(sv[0], TMO);
	err = NULL;
	assert_int_equal(tls_stream_start_server(s, sctx, TMO, &err), -1);
	assert_non_null(strstr(err, "TLS handshake failed"));
	free(err);
	stream_free(s);

	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void
silent_peer_times_out(void **state)
{
	struct tls_ctx *sctx = server_ctx();
	struct stream *s;
	long long t0;
	char *err = NULL;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	s = stream_new(sv[0], TMO);
	t0 = event_now_ms();
	assert_int_equal(tls_stream_start_server(s, sctx, 300, &err), -1);
	assert_true(event_now_ms() - t0 >= 250);
	assert_true(event_now_ms() - t0 < 3000);
	assert_non_null(strstr(err, "timed out"));
	free(err);
	stream_free(s);
	close(sv[1]);
	tls_ctx_free(sctx);
}

/* The client of the STARTTLS test: sends STARTTLS and RSET in one
 * packet, waits for 220, goes TLS, sends NOOP; exit 0 when the server
 * answered NOOP and nothing else. */
static int starttls_fd;
static struct tls_ctx *starttls_cctx;

static int
starttls_client_fn(void *arg)
{
	struct tls_peer peer = { .level = TLS_LEV_ENCRYPT };
	const char *pkt = "STARTTLS\r\nRSET\r\n";
	struct stream *s;
	struct buf line;
	char c, *err = NULL;
	int rc;

	if (write(starttls_fd, pkt, strlen(pkt)) != (ssize_t)strlen(pkt))
		return 1;
	/* Read the 220 line a byte at a time: nothing more is consumed. */
	do {
		if (read(starttls_fd, &c, 1) != 1)
			return 2;
	} while (c != '\n');
	s = stream_new(starttls_fd, TMO);
	if (tls_stream_start_client(s, starttls_cctx, &peer, TMO, &err) < 0)
		return 3;
	stream_puts(s, "NOOP\r\n");
	if (stream_flush(s) < 0)
		return 4;
	buf_init(&line, 1024);
	rc = stream_read_line(s, &line, 1024) > 0 &&
	    strcmp(line.data, "got NOOP\r\n") == 0 ? 0 : 5;
	tls_stream_stop(s);
	stream_free(s);
	return rc;
}

/* smtpd's log line, in Postfix's words. */
static void
expect_established_log(const struct tls_conn *c)
{
	char path[128], text[1024], *desc, *want;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/maillog", dir);
	log_init("smtpd");
	log_open(LOG_TO_FILE, path);
	tls_conn_log(c, "from", "localhost[127.0.0.1]");
	log_open(LOG_TO_STDERR, NULL);
	fp = fopen(path, "r");
	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	unlink(path);
	desc = tls_conn_describe(c);
	want = xasprintf("tern/smtpd[%d]: Anonymous TLS connection "
	    "established from localhost[127.0.0.1]: %s\n", (int)getpid(),
	    desc);
	if (strstr(text, want) == NULL)
		fail_msg("log line \"%s\" lacks \"%s\"", text, want);
	assert_non_null(strstr(desc, " with cipher "));
	free(desc);
	free(want);
}

static void
input_pipelined_before_starttls_is_discarded(void **state)
{
	struct tls_ctx *sctx = server_ctx();
	struct stream *s;
	struct buf line;
	char *err = NULL;
	pid_t pid;
	int sv[2];

	starttls_cctx = client_ctx(NULL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	starttls_fd = sv[1];
	pid = spawn(starttls_client_fn, NULL, sv[1], sv[0]);
	s = stream_new(sv[0], TMO);
	buf_init(&line, 1024);
	assert_true(stream_read_line(s, &line, 1024) > 0);
	assert_string_equal(line.data, "STARTTLS\r\n");
	/* RSET came in the same packet and sits in the buffer. */
	assert_int_equal(stream_pending(s), 6);
	/* The reply is sent in clear by the start call itself. */
	assert_int_equal(stream_puts(s, "220 2.0.0 Ready to start TLS\r\n"), 0);
	assert_int_equal(tls_stream_start_server(s, sctx, TMO, &err), 0);
	assert_int_equal(stream_pending(s), 0);
	assert_true(stream_read_line(s, &line, 1024) > 0);
	assert_string_equal(line.data, "NOOP\r\n");
	expect_established_log(tls_stream_conn(s));
	stream_puts(s, "got NOOP\r\n");
	assert_int_equal(stream_flush(s), 0);
	buf_free(&line);
	tls_stream_stop(s);
	stream_free(s);
	assert_int_equal(reap(pid), 0);
	tls_ctx_free(sctx);
	tls_ctx_free(starttls_cctx);
}

/* Two connections to one server child: cr[i] says whether the client
 * saw connection i resumed, sr[i] whether the server did. */
static void
two_connections(struct tls_ctx *s1, struct tls_ctx *s2, struct tls_ctx *cctx,
    const struct tls_peer *p1, const struct tls_peer *p2, int cr[2],
    int sr[2])
{
	static struct serve a;
	const struct tls_peer *peers[2] = { p1, p2 };
	struct stream *s;
	struct buf line;
	char *err;
	pid_t pid;
	int sv[2][2], i;

	memset(&a, 0, sizeof(a));
	for (i = 0; i < 2; i++) {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]), 0);
		a.fd[i] = sv[i][1];
	}
	a.ctx[0] = s1;
	a.ctx[1] = s2;
	a.n = 2;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0][0]);
		close(sv[1][0]);
		_exit(serve_fn(&a));
	}
	close(sv[0][1]);
	close(sv[1][1]);
	buf_init(&line, 1024);
	for (i = 0; i < 2; i++) {
		s = stream_new(sv[i][0], TMO);
		err = NULL;
		if (tls_stream_start_client(s, cctx, peers[i], TMO, &err) < 0)
			fail_msg("handshake %d: %s", i, err);
		/* Reading the answer also takes in TLS 1.3 tickets. */
		stream_puts(s, "REUSED?\r\n");
		assert_int_equal(stream_flush(s), 0);
		assert_true(stream_read_line(s, &line, 1024) > 0);
		cr[i] = tls_conn_reused(tls_stream_conn(s));
		sr[i] = strcmp(line.data, "reused=1\r\n") == 0;
		tls_stream_stop(s);
		stream_free(s);
	}
	buf_free(&line);
	assert_int_equal(reap(pid), 0);
}

static void
second_connection_resumes_the_session(void **state)
{
	struct tls_peer peer = { .level = TLS_LEV_MAY, .servername = HOST,
	    .cache_key = "[mx.tern.test]:25" };
	struct tls_peer other = peer;
	struct tls_ctx *sctx, *s12, *cctx;
	int cr[2], sr[2];

	/* TLS 1.3, tickets. */
	sctx = server_ctx();
	cctx = client_ctx(ca_pem);
	two_connections(sctx, sctx, cctx, &peer, &peer, cr, sr);
	assert_false(cr[0] || sr[0]);
	assert_true(cr[1] && sr[1]);

	/* TLS 1.2. The 1.3 ticket offered first is not taken. */
	s12 = server_ctx_opts(TLS_LEV_MAY, "TLSv1.2", NULL, 3600);
	two_connections(s12, s12, cctx, &peer, &peer, cr, sr);
	assert_false(cr[0] || sr[0]);
	assert_true(cr[1] && sr[1]);

	/* Another destination does not get this one's session. */
	other.cache_key = "[mx.other.test]:25";
	two_connections(sctx, sctx, cctx, &peer, &other, cr, sr);
	assert_false(cr[1] || sr[1]);

	/* Nor does the same destination at a stricter level, while the
	 * first, at the same level, resumes what the last round left. */
	other = peer;
	other.level = TLS_LEV_VERIFY;
	two_connections(sctx, sctx, cctx, &peer, &other, cr, sr);
	assert_true(cr[0] && sr[0]);
	assert_false(cr[1] || sr[1]);
	tls_ctx_free(sctx);
	tls_ctx_free(s12);
	tls_ctx_free(cctx);

	/* A client context without a cache never resumes. */
	sctx = server_ctx();
	cctx = client_ctx_opts(ca_pem, NULL, 0);
	two_connections(sctx, sctx, cctx, &peer, &peer, cr, sr);
	assert_false(cr[1] || sr[1]);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);

	/* A server context without resumption never resumes. */
	sctx = server_ctx_opts(TLS_LEV_MAY, NULL, NULL, 0);
	cctx = client_ctx(ca_pem);
	two_connections(sctx, sctx, cctx, &peer, &peer, cr, sr);
	assert_false(cr[1] || sr[1]);
	tls_ctx_free(sctx);
	s12 = server_ctx_opts(TLS_LEV_MAY, "TLSv1.2", NULL, 0);
	two_connections(s12, s12, cctx, &peer, &peer, cr, sr);
	assert_false(cr[1] || sr[1]);
	tls_ctx_free(s12);
	tls_ctx_free(cctx);
}

static void
shared_ticket_key_resumes_across_processes(void **state)
{
	struct tls_peer peer = { .level = TLS_LEV_MAY, .servername = HOST,
	    .cache_key = "[mx.tern.test]:25" };
	unsigned char key[TLS_TICKET_KEY_LEN];
	struct tls_ctx *a, *b, *cctx;
	char *err = NULL;
	int cr[2], sr[2];

	/* Two contexts stand for two smtpd processes. */
	a = server_ctx();
	b = server_ctx();
	cctx = client_ctx(ca_pem);
	two_connections(a, b, cctx, &peer, &peer, cr, sr);
	assert_false(cr[1] || sr[1]);

	memset(key, 0x5a, sizeof(key));
	assert_int_equal(tls_server_ctx_set_ticket_key(a, key, sizeof(key),
	    &err), 0);
	assert_int_equal(tls_server_ctx_set_ticket_key(b, key, sizeof(key),
	    &err), 0);
	two_connections(a, b, cctx, &peer, &peer, cr, sr);
	assert_true(cr[1] && sr[1]);

	assert_int_equal(tls_server_ctx_set_ticket_key(a, key, 48, &err), -1);
	free(err);
	tls_ctx_free(a);
	tls_ctx_free(b);
	tls_ctx_free(cctx);
}

static void
chain_file_with_key_and_certificates_serves(void **state)
{
	struct tls_server_opts o;
	struct tls_ctx *sctx, *cctx = client_ctx(ca_pem);
	char *chain[] = { chain_pem, NULL };
	char *junk[] = { chain_pem, junk_pem, NULL };
	struct tls_peer peer = { .level = TLS_LEV_VERIFY, .servername = HOST };
	struct stream *s;
	char *err = NULL;
	pid_t pid;

	memset(&o, 0, sizeof(o));
	o.level = TLS_LEV_MAY;
	o.cert_file = "/nonexistent: chain files win";
	o.chain_files = chain;
	sctx = tls_server_ctx_new(&o, &err);
	assert_non_null(sctx);
	assert_int_equal(client_connect(cctx, &peer, &s, &pid, sctx, &err),
	    0);
	assert_string_equal(tls_conn_trust(tls_stream_conn(s)), "Verified");
	close_client(s, pid, 0);
	tls_ctx_free(sctx);

	o.chain_files = junk;
	assert_null(tls_server_ctx_new(&o, &err));
	assert_non_null(strstr(err, junk_pem));
	free(err);
	tls_ctx_free(cctx);
}

static void
reload_picks_up_new_files_and_keeps_the_old_on_error(void **state)
{
	struct tls_ctx *sctx, *cctx = client_ctx(ca_pem);
	struct tls_peer peer = { .level = TLS_LEV_MAY, .servername = HOST };
	struct stream *s;
	char *err = NULL, cert[160], key[160];
	pid_t pid;

	/* A server whose files we can replace. */
	snprintf(cert, sizeof(cert), "%s/live.pem", dir);
	snprintf(key, sizeof(key), "%s/live.key", dir);
	assert_int_equal(link(srv_pem, cert), 0);
	assert_int_equal(link(srv_key, key), 0);
	struct tls_server_opts o = { .level = TLS_LEV_MAY, .cert_file = cert,
	    .key_file = key, .session_timeout = 0 };
	sctx = tls_server_ctx_new(&o, &err);
	assert_non_null(sctx);

	/* A broken certificate: the reload fails, the old one serves. */
	unlink(cert);
	assert_int_equal(link(junk_pem, cert), 0);
	assert_int_equal(tls_server_ctx_reload(&sctx, &err), -1);
	assert_non_null(strstr(err, "no PEM certificate"));
	free(err);
	assert_int_equal(client_connect(cctx, &peer, &s, &pid, sctx, &err),
	    0);
	assert_string_equal(tls_conn_peer_cn(tls_stream_conn(s)), HOST);
	close_client(s, pid, 0);

	/* The new certificate. */
	unlink(cert);
	unlink(key);
	assert_int_equal(link(new_pem, cert), 0);
	assert_int_equal(link(new_key, key), 0);
	assert_int_equal(tls_server_ctx_reload(&sctx, &err), 0);
	assert_int_equal(client_connect(cctx, &peer, &s, &pid, sctx, &err),
	    0);
	assert_string_equal(tls_conn_peer_cn(tls_stream_conn(s)),
	    "new.tern.test");
	close_client(s, pid, 0);

	unlink(cert);
	unlink(key);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

static void
contexts_build_from_main_cf_parameters(void **state)
{
	struct tls_ctx *t;
	char *err = NULL;

	config_reset();
	assert_int_equal(config_set("smtpd_tls_cert_file", srv_pem, &err), 0);
	assert_int_equal(config_set("smtpd_tls_key_file", srv_key, &err), 0);
	t = tls_server_ctx_from_config(TLS_LEV_MAY, &err);
	if (t == NULL)
		fail_msg("%s", err);
	tls_ctx_free(t);
	/* smtpd_tls_key_file defaults to the certificate file. */
	assert_int_equal(config_set("smtpd_tls_key_file",
	    "$smtpd_tls_cert_file", &err), 0);
	assert_null(tls_server_ctx_from_config(TLS_LEV_MAY, &err));
	assert_non_null(strstr(err, "no usable private key"));
	free(err);
	err = NULL;
	assert_int_equal(config_set("smtpd_tls_cert_file", "", &err), 0);
	assert_int_equal(config_set("smtpd_tls_chain_files", chain_pem, &err),
	    0);
	t = tls_server_ctx_from_config(TLS_LEV_ENCRYPT, &err);
	if (t == NULL)
		fail_msg("%s", err);
	tls_ctx_free(t);
	assert_int_equal(config_set("smtpd_tls_mandatory_ciphers", "low",
	    &err), 0);
	assert_null(tls_server_ctx_from_config(TLS_LEV_ENCRYPT, &err));
	assert_non_null(strstr(err, "\"low\""));
	free(err);
	err = NULL;

	assert_int_equal(config_set("smtp_tls_CAfile", ca_pem, &err), 0);
	t = tls_client_ctx_from_config(&err);
	if (t == NULL)
		fail_msg("%s", err);
	tls_ctx_free(t);
	assert_int_equal(config_set("smtp_tls_CAfile", "/nonexistent/ca.pem",
	    &err), 0);
	assert_null(tls_client_ctx_from_config(&err));
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
	free(err);
	config_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(level_names_parse_as_postfix_spells_them),
		cmocka_unit_test(protocol_syntax_gives_the_enabled_set),
		cmocka_unit_test(
		    bad_cipher_grade_and_protocols_fail_context_creation),
		cmocka_unit_test(
		    missing_unreadable_and_mismatched_files_are_reported),
		cmocka_unit_test(handshake_carries_lines_both_ways),
		cmocka_unit_test(tls11_client_is_refused_and_tls12_accepted),
		cmocka_unit_test(configured_protocols_bound_the_negotiation),
		cmocka_unit_test(
		    verify_level_needs_a_trusted_chain_and_the_name),
		cmocka_unit_test(secure_level_checks_the_nexthop_names),
		cmocka_unit_test(dane_ee_record_authenticates_without_a_ca),
		cmocka_unit_test(garbage_instead_of_a_handshake_is_an_error),
		cmocka_unit_test(silent_peer_times_out),
		cmocka_unit_test(input_pipelined_before_starttls_is_discarded),
		cmocka_unit_test(second_connection_resumes_the_session),
		cmocka_unit_test(shared_ticket_key_resumes_across_processes),
		cmocka_unit_test(chain_file_with_key_and_certificates_serves),
		cmocka_unit_test(
		    reload_picks_up_new_files_and_keeps_the_old_on_error),
		cmocka_unit_test(contexts_build_from_main_cf_parameters),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
