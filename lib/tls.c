/*
 * tls - TLS contexts and a TLS stream transport over OpenSSL 3. See
 * tls.h for how smtpd and the smtp client use it.
 *
 * The handshake and every later read and write go through a small BIO
 * of our own on the stream's fd rather than OpenSSL's socket BIO: it
 * writes with send(MSG_NOSIGNAL), so a peer that went away is an error
 * (EPIPE), never a SIGPIPE, as stream.h promises. The fd stays
 * non-blocking; SSL_ERROR_WANT_READ/WANT_WRITE become EAGAIN with
 * s->want_write saying which way to wait, and stream.c does the
 * waiting with its timeouts. OpenSSL's read-ahead stays off, so no
 * decrypted input hides inside OpenSSL while poll(2) on the fd says
 * there is nothing: one read_fn call of stream.c's 16 KiB chunk
 * empties a whole TLS record.
 *
 * Errors are sentences built from errno and the OpenSSL error queue,
 * returned to the caller; the queue is emptied before every OpenSSL
 * call so that an old error is never blamed on a new one.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "event.h"
#include "log.h"
#include "stream.h"
#include "strv.h"
#include "tls.h"

#define TLS_PROTO_ALL	(TLS_PROTO_TLSv1 | TLS_PROTO_TLSv1_1 | \
			    TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3)
#define TLS_DEFAULT_PROTOCOLS	">=TLSv1.2"
#define TLS_DEFAULT_GRADE	"medium"
/* Client sessions kept per process: one per recent destination. */
#define TLS_CACHE_SLOTS	64
/* Longest error text kept from the OpenSSL queue. */
#define TLS_ERR_MAX	1024

/* Cipher grades, for TLS 1.2 and older (TLS 1.3 suites are all
 * strong and keep OpenSSL's default). Anonymous and null ciphers are
 * never offered: a mail server always has a certificate. */
static const struct {
	const char	*grade;
	const char	*list;
} tls_grades[] = {
	{ "high", "HIGH:!aNULL:!eNULL:!PSK:!SRP:!kRSA:!MD5:!RC4:!3DES" },
	{ "medium", "HIGH:MEDIUM:!aNULL:!eNULL:!PSK:!SRP:!MD5:!RC4" },
};

/* Protocol names in Postfix's syntax, oldest first. */
static const struct {
	const char	*name;
	unsigned	 bit;		/* 0: a name we accept, never enable */
	int		 version;	/* OpenSSL's number */
	long		 no_op;		/* SSL_OP_NO_ for holes */
} tls_protos[] = {
	{ "SSLv2", 0, 0, 0 },
	{ "SSLv3", 0, 0, 0 },
	{ "TLSv1", TLS_PROTO_TLSv1, TLS1_VERSION, SSL_OP_NO_TLSv1 },
	{ "TLSv1.1", TLS_PROTO_TLSv1_1, TLS1_1_VERSION, SSL_OP_NO_TLSv1_1 },
	{ "TLSv1.2", TLS_PROTO_TLSv1_2, TLS1_2_VERSION, SSL_OP_NO_TLSv1_2 },
	{ "TLSv1.3", TLS_PROTO_TLSv1_3, TLS1_3_VERSION, SSL_OP_NO_TLSv1_3 },
};
#define TLS_NPROTOS	(sizeof(tls_protos) / sizeof(tls_protos[0]))

static const char *const tls_level_names[] = {
	"none", "may", "encrypt", "dane", "verify", "secure",
};

/* Protocols and ciphers for one grade of connection. */
struct tls_grade {
	unsigned	 protos;
	const char	*cipherlist;
};

struct tls_cached {
	char		*key;
	SSL_SESSION	*sess;
	time_t		 stored;
};

struct tls_ctx {
	SSL_CTX		*ssl_ctx;
	int		 server;
	int		 loglevel;
	enum tls_level	 level;		/* server: fixed for the service */
	struct tls_grade opportunistic;
	struct tls_grade mandatory;
	unsigned long	 session_timeout;
	/* Server: a copy of the options, for tls_server_ctx_reload(). */
	struct tls_server_opts opts;
	char		*cert_file, *key_file, *protocols, *ciphers;
	char		*mprotocols, *mciphers;
	char		**chain_files;
	/* Client: the last session of each destination. */
	struct tls_cached cache[TLS_CACHE_SLOTS];
};

struct tls_conn {
	SSL		*ssl;
	struct tls_ctx	*ctx;		/* client only: the session cache */
	int		 fd;
	int		 server;
	int		 loglevel;
	enum tls_level	 level;
	int		 matched;	/* name or DANE checked and right */
	char		*cache_key;
	char		*peer_cn;
	char		*last_error;
};

static int tls_conn_index = -1;

/*
 * Errors.
 */

/* Append the OpenSSL error queue's reasons to b, then empty it. */
static void
tls_errq_append(struct buf *b)
{
	const char *data, *reason;
	unsigned long e;
	char text[256];
	int flags, n = 0;

	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data,
	    &flags)) != 0) {
		if (b->len >= TLS_ERR_MAX)
			continue;
		reason = ERR_reason_error_string(e);
		if (reason == NULL) {
			ERR_error_string_n(e, text, sizeof(text));
			reason = text;
		}
		buf_printf(b, "%s%s", n++ ? "; " : ": ", reason);
		if ((flags & ERR_TXT_STRING) && data != NULL && *data != '\0')
			buf_printf(b, " (%s)", data);
	}
}

/* *err = the formatted text followed by the OpenSSL reasons. */
static void __attribute__((format(printf, 2, 3)))
tls_fail(char **err, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	tls_errq_append(&b);
	if (err != NULL)
		*err = buf_steal(&b);
	buf_free(&b);
}

/*
 * Levels, protocols, ciphers.
 */

int
tls_level_parse(const char *text, enum tls_level *level)
{
	size_t i;

	if (*text == '\0') {
		*level = TLS_LEV_NONE;
		return 0;
	}
	for (i = 0; i < sizeof(tls_level_names) / sizeof(*tls_level_names);
	    i++)
		if (strcasecmp(text, tls_level_names[i]) == 0) {
			*level = (enum tls_level)i;
			return 0;
		}
	return -1;
}

const char *
tls_level_name(enum tls_level level)
{
	if ((size_t)level >= sizeof(tls_level_names) / sizeof(*tls_level_names))
		return "unknown";
	return tls_level_names[level];
}

static int
tls_proto_index(const char *name)
{
	size_t i;

	for (i = 0; i < TLS_NPROTOS; i++)
		if (strcasecmp(name, tls_protos[i].name) == 0)
			return (int)i;
	return -1;
}

int
tls_protocols_parse(const char *text, unsigned *mask, char **err)
{
	unsigned include = 0, exclude = 0, bounds = TLS_PROTO_ALL;
	int has_include = 0, idx;
	char **items, **p;
	const char *name;
	size_t i;

	items = strv_split(text, ", \t\r\n:");
	for (p = items; *p != NULL; p++) {
		name = *p;
		if (*name == '!' || strncmp(name, ">=", 2) == 0 ||
		    strncmp(name, "<=", 2) == 0)
			name += *name == '!' ? 1 : 2;
		if ((idx = tls_proto_index(name)) < 0) {
			*err = xasprintf("unknown TLS protocol \"%s\"", *p);
			strv_free(items);
			return -1;
		}
		if (**p == '!')
			exclude |= tls_protos[idx].bit;
		else if (**p == '>')
			for (i = 0; i < (size_t)idx; i++)
				bounds &= ~tls_protos[i].bit;
		else if (**p == '<')
			for (i = (size_t)idx + 1; i < TLS_NPROTOS; i++)
				bounds &= ~tls_protos[i].bit;
		else {
			include |= tls_protos[idx].bit;
			has_include = 1;
		}
	}
	strv_free(items);
	*mask = (has_include ? include : TLS_PROTO_ALL) & ~exclude & bounds;
	if (*mask == 0) {
		*err = xasprintf("no usable TLS protocol left in \"%s\"", text);
		return -1;
	}
	return 0;
}

static int
tls_grade_init(struct tls_grade *g, const char *protocols, const char *grade,
    char **err)
{
	size_t i;

	if (protocols == NULL || *protocols == '\0')
		protocols = TLS_DEFAULT_PROTOCOLS;
	if (grade == NULL || *grade == '\0')
		grade = TLS_DEFAULT_GRADE;
	if (tls_protocols_parse(protocols, &g->protos, err) < 0)
		return -1;
	for (i = 0; i < sizeof(tls_grades) / sizeof(*tls_grades); i++)
		if (strcasecmp(grade, tls_grades[i].grade) == 0) {
			g->cipherlist = tls_grades[i].list;
			return 0;
		}
	*err = xasprintf("unsupported cipher grade \"%s\" (high or medium)",
	    grade);
	return -1;
}

/* Lowest and highest enabled versions, and SSL_OP_NO_ for the holes. */
static void
tls_proto_range(unsigned mask, int *min, int *max, long *holes)
{
	size_t i;

	*min = *max = 0;
	*holes = 0;
	for (i = 0; i < TLS_NPROTOS; i++) {
		if (tls_protos[i].bit == 0)
			continue;
		if (mask & tls_protos[i].bit) {
			if (*min == 0)
				*min = tls_protos[i].version;
			*max = tls_protos[i].version;
		}
	}
	for (i = 0; i < TLS_NPROTOS; i++)
		if (tls_protos[i].bit != 0 && !(mask & tls_protos[i].bit) &&
		    tls_protos[i].version > *min &&
		    tls_protos[i].version < *max)
			*holes |= tls_protos[i].no_op;
}

static int
tls_grade_apply_ctx(SSL_CTX *ctx, const struct tls_grade *g, char **err)
{
	int min, max;
	long holes;

	tls_proto_range(g->protos, &min, &max, &holes);
	ERR_clear_error();
	if (!SSL_CTX_set_min_proto_version(ctx, min) ||
	    !SSL_CTX_set_max_proto_version(ctx, max)) {
		tls_fail(err, "cannot set the TLS protocol range");
		return -1;
	}
	SSL_CTX_set_options(ctx, (uint64_t)holes);
	if (!SSL_CTX_set_cipher_list(ctx, g->cipherlist)) {
		tls_fail(err, "cannot set the cipher list");
		return -1;
	}
	return 0;
}

static int
tls_grade_apply_ssl(SSL *ssl, const struct tls_grade *g, char **err)
{
	int min, max;
	long holes;

	tls_proto_range(g->protos, &min, &max, &holes);
	ERR_clear_error();
	if (!SSL_set_min_proto_version(ssl, min) ||
	    !SSL_set_max_proto_version(ssl, max)) {
		tls_fail(err, "cannot set the TLS protocol range");
		return -1;
	}
	SSL_set_options(ssl, (uint64_t)holes);
	if (!SSL_set_cipher_list(ssl, g->cipherlist)) {
		tls_fail(err, "cannot set the cipher list");
		return -1;
	}
	return 0;
}

/*
 * Certificates and keys.
 */

/* Never prompt on a terminal for a passphrase: an encrypted key fails. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

/*
 * Read the certificates (the first is the leaf) and, when want_key, the
 * private key of a PEM file. Objects of the other kind are skipped, so
 * a file may hold key and chain in any order.
 */
static int
tls_read_pem(const char *path, int want_key, int want_cert, EVP_PKEY **key,
    X509 **leaf, STACK_OF(X509) **chain, char **err)
{
	BIO *bio;
	X509 *x;
	int saved;

	*key = NULL;
	*leaf = NULL;
	*chain = NULL;
	ERR_clear_error();
	if ((bio = BIO_new_file(path, "r")) == NULL) {
		saved = errno;
		ERR_clear_error();
		*err = xasprintf("cannot open %s: %s", path,
		    saved != 0 ? strerror(saved) : "unknown error");
		return -1;
	}
	if (want_cert) {
		if ((*chain = sk_X509_new_null()) == NULL)
			msg_fatal("out of memory");
		while ((x = PEM_read_bio_X509(bio, NULL, tls_no_passphrase,
		    NULL)) != NULL) {
			if (*leaf == NULL)
				*leaf = x;
			else if (!sk_X509_push(*chain, x))
				msg_fatal("out of memory");
		}
		ERR_clear_error();	/* the end of the file */
		if (*leaf == NULL) {
			*err = xasprintf("no PEM certificate in %s", path);
			goto fail;
		}
	}
	if (want_key) {
		(void)BIO_reset(bio);
		*key = PEM_read_bio_PrivateKey(bio, NULL, tls_no_passphrase,
		    NULL);
		if (*key == NULL) {
			tls_fail(err, "no usable private key in %s (missing, "
			    "or protected by a passphrase)", path);
			goto fail;
		}
	}
	BIO_free(bio);
	return 0;
fail:
	BIO_free(bio);
	EVP_PKEY_free(*key);
	X509_free(*leaf);
	sk_X509_pop_free(*chain, X509_free);
	*key = NULL;
	*leaf = NULL;
	*chain = NULL;
	return -1;
}

/* Install one certificate with its key and chain into ctx. */
static int
tls_use_cert(SSL_CTX *ctx, const char *cert_file, const char *key_file,
    char **err)
{
	STACK_OF(X509) *chain, *nochain;
	EVP_PKEY *key, *nokey;
	X509 *leaf, *noleaf;
	int r = -1;

	if (key_file == NULL || *key_file == '\0')
		key_file = cert_file;
	if (strcmp(key_file, cert_file) == 0) {
		if (tls_read_pem(cert_file, 1, 1, &key, &leaf, &chain, err) < 0)
			return -1;
	} else {
		if (tls_read_pem(cert_file, 0, 1, &nokey, &leaf, &chain,
		    err) < 0)
			return -1;
		if (tls_read_pem(key_file, 1, 0, &key, &noleaf, &nochain,
		    err) < 0) {
			X509_free(leaf);
			sk_X509_pop_free(chain, X509_free);
			return -1;
		}
	}
	ERR_clear_error();
	if (!X509_check_private_key(leaf, key)) {
		tls_fail(err, "the private key in %s does not match the "
		    "certificate in %s", key_file, cert_file);
		goto done;
	}
	if (!SSL_CTX_use_cert_and_key(ctx, leaf, key, chain, 1)) {
		tls_fail(err, "cannot use the certificate in %s", cert_file);
		goto done;
	}
	r = 0;
done:
	EVP_PKEY_free(key);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	return r;
}

/*
 * Logging of the handshake's progress (loglevel 2 and up).
 */
static void
tls_info_callback(const SSL *ssl, int where, int ret)
{
	const char *role = (where & SSL_ST_CONNECT) ? "SSL_connect" :
	    (where & SSL_ST_ACCEPT) ? "SSL_accept" : "TLS";

	if (where & SSL_CB_LOOP)
		msg_info("%s: %s", role, SSL_state_string_long(ssl));
	else if (where & SSL_CB_ALERT)
		msg_info("TLS alert %s: %s: %s",
		    (where & SSL_CB_READ) ? "received" : "sent",
		    SSL_alert_type_string_long(ret),
		    SSL_alert_desc_string_long(ret));
}

static SSL_CTX *
tls_ssl_ctx_new(int server, int loglevel, char **err)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		tls_fail(err, "cannot create a TLS context");
		return NULL;
	}
	if (tls_conn_index < 0)
		tls_conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    NULL);
	/*
	 * No compression (CRIME), no renegotiation (a cheap way to make a
	 * server work hard), and a peer that closes without close_notify
	 * is an ordinary end of input: SMTP has its own end markers.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
	if (loglevel >= 2)
		SSL_CTX_set_info_callback(ctx, tls_info_callback);
	return ctx;
}

static void
tls_ctx_free_opts(struct tls_ctx *t)
{
	free(t->cert_file);
	free(t->key_file);
	free(t->protocols);
	free(t->ciphers);
	free(t->mprotocols);
	free(t->mciphers);
	strv_free(t->chain_files);
}

static char *
tls_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/*
 * Server contexts.
 */

struct tls_ctx *
tls_server_ctx_new(const struct tls_server_opts *o, char **err)
{
	struct tls_ctx *t;
	struct tls_grade *g;
	char *const *f;
	int nfiles = 0;

	t = xcalloc(1, sizeof(*t));
	t->server = 1;
	t->level = o->level;
	t->loglevel = o->loglevel;
	t->session_timeout = o->session_timeout;
	if (tls_grade_init(&t->opportunistic, o->protocols, o->ciphers,
	    err) < 0 || tls_grade_init(&t->mandatory, o->mandatory_protocols,
	    o->mandatory_ciphers, err) < 0)
		goto fail;
	if ((t->ssl_ctx = tls_ssl_ctx_new(1, o->loglevel, err)) == NULL)
		goto fail;
	g = o->level >= TLS_LEV_ENCRYPT ? &t->mandatory : &t->opportunistic;
	if (tls_grade_apply_ctx(t->ssl_ctx, g, err) < 0)
		goto fail;
	/* The server's preference picks the strongest common cipher. */
	SSL_CTX_set_options(t->ssl_ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_dh_auto(t->ssl_ctx, 1);

	for (f = o->chain_files; f != NULL && *f != NULL; f++, nfiles++)
		if (tls_use_cert(t->ssl_ctx, *f, *f, err) < 0)
			goto fail;
	if (nfiles == 0) {
		if (o->cert_file == NULL || *o->cert_file == '\0') {
			*err = xstrdup("no server certificate: set "
			    "smtpd_tls_cert_file or smtpd_tls_chain_files");
			goto fail;
		}
		if (tls_use_cert(t->ssl_ctx, o->cert_file, o->key_file,
		    err) < 0)
			goto fail;
	}

	/*
	 * Resumption: the in-process cache serves TLS 1.2 session IDs,
	 * tickets serve both versions and survive the cache. The id
	 * context is the same in every process, so that tickets sealed
	 * with a shared key are accepted by any of them.
	 */
	SSL_CTX_set_session_id_context(t->ssl_ctx,
	    (const unsigned char *)"tern", 4);
	if (o->session_timeout > 0) {
		SSL_CTX_set_session_cache_mode(t->ssl_ctx,
		    SSL_SESS_CACHE_SERVER);
		SSL_CTX_set_timeout(t->ssl_ctx,
		    o->session_timeout > LONG_MAX ? LONG_MAX :
		    (long)o->session_timeout);
	} else {
		SSL_CTX_set_session_cache_mode(t->ssl_ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_options(t->ssl_ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_num_tickets(t->ssl_ctx, 0);
	}

	/* Keep the options for tls_server_ctx_reload(). */
	t->opts = *o;
	t->opts.cert_file = t->cert_file = tls_dup(o->cert_file);
	t->opts.key_file = t->key_file = tls_dup(o->key_file);
	t->opts.protocols = t->protocols = tls_dup(o->protocols);
	t->opts.ciphers = t->ciphers = tls_dup(o->ciphers);
	t->opts.mandatory_protocols = t->mprotocols =
	    tls_dup(o->mandatory_protocols);
	t->opts.mandatory_ciphers = t->mciphers =
	    tls_dup(o->mandatory_ciphers);
	t->chain_files = xcalloc(1, sizeof(char *));
	for (f = o->chain_files; f != NULL && *f != NULL; f++)
		strv_add(&t->chain_files, *f);
	t->opts.chain_files = t->chain_files;
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

struct tls_ctx *
tls_server_ctx_from_config(enum tls_level level, char **err)
{
	struct tls_server_opts o;
	struct tls_ctx *t;
	char **chain;

	memset(&o, 0, sizeof(o));
	chain = config_list("smtpd_tls_chain_files");
	o.level = level;
	o.cert_file = config_str("smtpd_tls_cert_file");
	o.key_file = config_str("smtpd_tls_key_file");
	o.chain_files = chain;
	o.protocols = config_str("smtpd_tls_protocols");
	o.ciphers = config_str("smtpd_tls_ciphers");
	o.mandatory_protocols = config_str("smtpd_tls_mandatory_protocols");
	o.mandatory_ciphers = config_str("smtpd_tls_mandatory_ciphers");
	o.session_timeout = config_time("smtpd_tls_session_cache_timeout");
	o.loglevel = (int)config_int("smtpd_tls_loglevel");
	t = tls_server_ctx_new(&o, err);
	strv_free(chain);
	return t;
}

int
tls_server_ctx_reload(struct tls_ctx **tp, char **err)
{
	struct tls_ctx *fresh;

	if (*tp == NULL || !(*tp)->server) {
		*err = xstrdup("not a server TLS context");
		return -1;
	}
	if ((fresh = tls_server_ctx_new(&(*tp)->opts, err)) == NULL)
		return -1;
	/* SSL objects hold their own reference to the old SSL_CTX. */
	tls_ctx_free(*tp);
	*tp = fresh;
	return 0;
}

int
tls_server_ctx_set_ticket_key(struct tls_ctx *t, const unsigned char *key,
    size_t len, char **err)
{
	if (len != TLS_TICKET_KEY_LEN) {
		*err = xasprintf("a session ticket key is %d bytes, not %zu",
		    TLS_TICKET_KEY_LEN, len);
		return -1;
	}
	ERR_clear_error();
	if (SSL_CTX_set_tlsext_ticket_keys(t->ssl_ctx, (void *)key,
	    (long)len) != 1) {
		tls_fail(err, "cannot set the session ticket key");
		return -1;
	}
	return 0;
}

/*
 * Client contexts and their session cache.
 */

static void
tls_cache_drop(struct tls_cached *e)
{
	free(e->key);
	SSL_SESSION_free(e->sess);
	memset(e, 0, sizeof(*e));
}

static int
tls_cache_expired(const struct tls_ctx *t, const struct tls_cached *e,
    time_t now)
{
	time_t born = (time_t)SSL_SESSION_get_time(e->sess);
	long life = SSL_SESSION_get_timeout(e->sess);

	return now - e->stored >= (time_t)t->session_timeout ||
	    now - born >= (time_t)life;
}

/* OpenSSL calls this for each new session (TLS 1.3: each ticket). */
static int
tls_client_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *c = SSL_get_ex_data(ssl, tls_conn_index);
	struct tls_ctx *t;
	struct tls_cached *e, *slot = NULL;
	time_t now = time(NULL);
	size_t i;

	if (c == NULL || c->cache_key == NULL || c->ctx == NULL ||
	    !SSL_SESSION_is_resumable(sess))
		return 0;
	t = c->ctx;
	for (i = 0; i < TLS_CACHE_SLOTS; i++) {
		e = &t->cache[i];
		if (e->key != NULL && strcmp(e->key, c->cache_key) == 0) {
			slot = e;
			break;
		}
		if (slot == NULL || (slot->key != NULL &&
		    (e->key == NULL || e->stored < slot->stored)))
			slot = e;
	}
	if (slot->key != NULL)
		tls_cache_drop(slot);
	slot->key = xstrdup(c->cache_key);
	slot->sess = sess;	/* returning 1 gives us OpenSSL's reference */
	slot->stored = now;
	return 1;
}

/* Offer the destination's cached session on ssl, if it is still good. */
static void
tls_cache_offer(struct tls_ctx *t, struct tls_conn *c)
{
	struct tls_cached *e;
	time_t now = time(NULL);
	size_t i;

	for (i = 0; i < TLS_CACHE_SLOTS; i++) {
		e = &t->cache[i];
		if (e->key == NULL || strcmp(e->key, c->cache_key) != 0)
			continue;
		if (tls_cache_expired(t, e, now)) {
			tls_cache_drop(e);
			return;
		}
		(void)SSL_set_session(c->ssl, e->sess);
		/* A TLS 1.3 ticket is used once (RFC 8446 appendix C.4);
		 * the resumed connection brings new ones. */
		if (SSL_SESSION_get_protocol_version(e->sess) >=
		    TLS1_3_VERSION)
			tls_cache_drop(e);
		return;
	}
}

struct tls_ctx *
tls_client_ctx_new(const struct tls_client_opts *o, char **err)
{
	struct tls_ctx *t;
	const char *cafile, *capath;

	t = xcalloc(1, sizeof(*t));
	t->loglevel = o->loglevel;
	t->session_timeout = o->session_timeout;
	if (tls_grade_init(&t->opportunistic, o->protocols, o->ciphers,
	    err) < 0 || tls_grade_init(&t->mandatory, o->mandatory_protocols,
	    o->mandatory_ciphers, err) < 0)
		goto fail;
	if ((t->ssl_ctx = tls_ssl_ctx_new(0, o->loglevel, err)) == NULL)
		goto fail;
	cafile = o->CAfile != NULL && *o->CAfile != '\0' ? o->CAfile : NULL;
	capath = o->CApath != NULL && *o->CApath != '\0' ? o->CApath : NULL;
	ERR_clear_error();
	if (cafile != NULL || capath != NULL) {
		if (!SSL_CTX_load_verify_locations(t->ssl_ctx, cafile,
		    capath)) {
			tls_fail(err, "cannot load trusted CAs from %s",
			    cafile != NULL ? cafile : capath);
			goto fail;
		}
	} else if (!SSL_CTX_set_default_verify_paths(t->ssl_ctx)) {
		tls_fail(err, "cannot load the system's trusted CAs");
		goto fail;
	}
	if (o->cert_file != NULL && *o->cert_file != '\0' &&
	    tls_use_cert(t->ssl_ctx, o->cert_file, o->key_file, err) < 0)
		goto fail;
	if (SSL_CTX_dane_enable(t->ssl_ctx) <= 0) {
		tls_fail(err, "cannot enable DANE");
		goto fail;
	}
	if (o->session_timeout > 0) {
		SSL_CTX_set_session_cache_mode(t->ssl_ctx,
		    SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(t->ssl_ctx, tls_client_new_session);
	} else
		SSL_CTX_set_session_cache_mode(t->ssl_ctx, SSL_SESS_CACHE_OFF);
	return t;
fail:
	tls_ctx_free(t);
	return NULL;
}

struct tls_ctx *
tls_client_ctx_from_config(char **err)
{
	struct tls_client_opts o;

	memset(&o, 0, sizeof(o));
	o.CAfile = config_str("smtp_tls_CAfile");
	o.CApath = config_str("smtp_tls_CApath");
	o.cert_file = config_str("smtp_tls_cert_file");
	o.key_file = config_str("smtp_tls_key_file");
	o.protocols = config_str("smtp_tls_protocols");
	o.ciphers = config_str("smtp_tls_ciphers");
	o.mandatory_protocols = config_str("smtp_tls_mandatory_protocols");
	o.mandatory_ciphers = config_str("smtp_tls_mandatory_ciphers");
	o.session_timeout = config_time("smtp_tls_session_cache_timeout");
	o.loglevel = (int)config_int("smtp_tls_loglevel");
	return tls_client_ctx_new(&o, err);
}

void
tls_ctx_free(struct tls_ctx *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < TLS_CACHE_SLOTS; i++)
		if (t->cache[i].key != NULL)
			tls_cache_drop(&t->cache[i]);
	SSL_CTX_free(t->ssl_ctx);
	tls_ctx_free_opts(t);
	free(t);
}

/*
 * The BIO: OpenSSL's records go to and from the stream's fd.
 */

static int
tls_bio_write(BIO *b, const char *p, int n)
{
	struct tls_conn *c = BIO_get_data(b);
	ssize_t r;

	BIO_clear_retry_flags(b);
	r = send(c->fd, p, (size_t)n, MSG_NOSIGNAL);
	if (r < 0 && errno == ENOTSOCK)
		r = write(c->fd, p, (size_t)n);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		BIO_set_retry_write(b);
	return (int)r;
}

static int
tls_bio_read(BIO *b, char *p, int n)
{
	struct tls_conn *c = BIO_get_data(b);
	ssize_t r;

	BIO_clear_retry_flags(b);
	r = read(c->fd, p, (size_t)n);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		BIO_set_retry_read(b);
	return (int)r;
}

static int
tls_bio_puts(BIO *b, const char *s)
{
	return tls_bio_write(b, s, (int)strlen(s));
}

static long
tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	/* Nothing is buffered here: a flush has nothing to do. */
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static BIO_METHOD *
tls_bio_method(void)
{
	static BIO_METHOD *m;

	if (m != NULL)
		return m;
	m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
	    "tern stream");
	if (m == NULL || !BIO_meth_set_write(m, tls_bio_write) ||
	    !BIO_meth_set_read(m, tls_bio_read) ||
	    !BIO_meth_set_puts(m, tls_bio_puts) ||
	    !BIO_meth_set_ctrl(m, tls_bio_ctrl))
		msg_fatal("cannot create the TLS BIO method: out of memory");
	return m;
}

/*
 * The stream transport.
 */

static void
tls_conn_free(struct tls_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	free(c->cache_key);
	free(c->peer_cn);
	free(c->last_error);
	free(c);
}

/* Remember why a read or write failed; errno for the stream. */
static void
tls_io_error(struct tls_conn *c, int code)
{
	char *text = NULL;

	if (code == SSL_ERROR_SYSCALL) {
		ERR_clear_error();
		if (errno == 0)
			errno = ECONNRESET;
		return;
	}
	tls_fail(&text, "TLS error");
	free(c->last_error);
	c->last_error = text;
	errno = EPROTO;
}

static ssize_t
tls_read(struct stream *s, void *p, size_t n)
{
	struct tls_conn *c = s->ctx;
	int r, code;

	ERR_clear_error();
	errno = 0;
	r = SSL_read(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
	if (r > 0)
		return r;
	switch ((code = SSL_get_error(c->ssl, r))) {
	case SSL_ERROR_WANT_READ:
		s->want_write = 0;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		s->want_write = 1;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0)
			return 0;	/* EOF without close_notify */
		/* FALLTHROUGH */
	default:
		tls_io_error(c, code);
		return -1;
	}
}

static ssize_t
tls_write(struct stream *s, const void *p, size_t n)
{
	struct tls_conn *c = s->ctx;
	int r, code;

	ERR_clear_error();
	errno = 0;
	r = SSL_write(c->ssl, p, n > INT_MAX ? INT_MAX : (int)n);
	if (r > 0)
		return r;
	switch ((code = SSL_get_error(c->ssl, r))) {
	case SSL_ERROR_WANT_READ:
		s->want_write = 0;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		s->want_write = 1;
		errno = EAGAIN;
		return -1;
	default:
		if (code == SSL_ERROR_ZERO_RETURN)
			errno = EPIPE;
		else
			tls_io_error(c, code);
		return -1;
	}
}

/* The transport of a stream whose TLS failed or stopped. */
static ssize_t
tls_dead_read(struct stream *s, void *p, size_t n)
{
	errno = ENOTCONN;
	return -1;
}

static ssize_t
tls_dead_write(struct stream *s, const void *p, size_t n)
{
	errno = ENOTCONN;
	return -1;
}

/* Wait for fd to be ready until end (ms clock): 0, or -1 with *err. */
static int
tls_wait(int fd, short events, long long end, char **err)
{
	struct pollfd pfd;
	long long now;
	int n;

	for (;;) {
		now = event_now_ms();
		if (now >= end) {
			*err = xstrdup("TLS handshake timed out");
			return -1;
		}
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, end - now > INT_MAX ? INT_MAX :
		    (int)(end - now));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR) {
			*err = xasprintf("TLS handshake: poll: %s",
			    strerror(errno));
			return -1;
		}
	}
}

/* The subject CN, printable, or NULL. */
static char *
tls_peer_cn(X509 *cert)
{
	X509_NAME *name;
	X509_NAME_ENTRY *entry;
	unsigned char *utf8 = NULL;
	char *cn, *q;
	int idx, len;

	if ((name = X509_get_subject_name(cert)) == NULL ||
	    (idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0 ||
	    (entry = X509_NAME_get_entry(name, idx)) == NULL ||
	    (len = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(entry))) < 0) {
		ERR_clear_error();
		return NULL;
	}
	cn = xstrndup((const char *)utf8, (size_t)len);
	OPENSSL_free(utf8);
	/* It goes into log lines: no control characters, no NULs. */
	if (strlen(cn) != (size_t)len) {
		free(cn);
		return xstrdup("(CN with a NUL byte)");
	}
	for (q = cn; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	return cn;
}

/* What the finished handshake says about the peer. */
static void
tls_conn_learn(struct tls_conn *c)
{
	X509 *cert = SSL_get0_peer_certificate(c->ssl);
	int ok = SSL_get_verify_result(c->ssl) == X509_V_OK;

	if (cert != NULL)
		c->peer_cn = tls_peer_cn(cert);
	if (c->server || cert == NULL || !ok)
		return;
	switch (c->level) {
	case TLS_LEV_DANE:
		c->matched = SSL_get0_dane_authority(c->ssl, NULL, NULL) >= 0 ||
		    SSL_session_reused(c->ssl);
		break;
	case TLS_LEV_VERIFY:
	case TLS_LEV_SECURE:
		/* A resumed session was checked for the same names: the
		 * cache key holds the level and the names. */
		c->matched = SSL_get0_peername(c->ssl) != NULL ||
		    SSL_session_reused(c->ssl);
		break;
	default:
		break;
	}
}

static char *
tls_handshake_error(struct tls_conn *c, int code, int r)
{
	struct buf b;
	long v;

	buf_init(&b, BUF_NOMAX);
	buf_puts(&b, "TLS handshake failed");
	if (code == SSL_ERROR_SYSCALL || code == SSL_ERROR_ZERO_RETURN) {
		if (code == SSL_ERROR_SYSCALL && errno != 0)
			buf_printf(&b, ": %s", strerror(errno));
		else
			buf_puts(&b, ": lost connection");
		ERR_clear_error();
	} else
		tls_errq_append(&b);
	/* Why the certificate was refused: "hostname mismatch", ... */
	if ((v = SSL_get_verify_result(c->ssl)) != X509_V_OK)
		buf_printf(&b, " (%s)", X509_verify_cert_error_string(v));
	return buf_steal(&b);
}

/*
 * The part both ends share: send what is buffered in clear, forget
 * buffered input, handshake, plug in the transport.
 */
static int
tls_stream_start(struct stream *s, struct tls_conn *c, int timeout_ms,
    char **err)
{
	long long end;
	BIO *bio;
	int r, code;

	if (tls_stream_conn(s) != NULL) {
		*err = xstrdup("TLS is already active");
		tls_conn_free(c);
		return -1;
	}
	if (s->out.len > 0 && (r = stream_flush(s)) < 0) {
		*err = xasprintf("cannot send before the TLS handshake: %s",
		    stream_strerror(r));
		goto fail;
	}
	/* Commands pipelined before the handshake are not protected by
	 * it: they must never be read as if they were (CVE-2011-0411). */
	stream_discard_input(s);
	c->fd = s->fd;
	if ((bio = BIO_new(tls_bio_method())) == NULL)
		msg_fatal("out of memory");
	BIO_set_data(bio, c);
	BIO_set_init(bio, 1);
	SSL_set_bio(c->ssl, bio, bio);
	SSL_set_ex_data(c->ssl, tls_conn_index, c);

	end = event_now_ms() + (timeout_ms > 0 ? timeout_ms : 300000);
	if (s->deadline != 0 && s->deadline < end)
		end = s->deadline;
	for (;;) {
		ERR_clear_error();
		errno = 0;
		r = c->server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
		if (r == 1)
			break;
		code = SSL_get_error(c->ssl, r);
		if (code == SSL_ERROR_WANT_READ) {
			if (tls_wait(s->fd, POLLIN, end, err) < 0)
				goto fail;
		} else if (code == SSL_ERROR_WANT_WRITE) {
			if (tls_wait(s->fd, POLLOUT, end, err) < 0)
				goto fail;
		} else {
			*err = tls_handshake_error(c, code, r);
			goto fail;
		}
	}
	tls_conn_learn(c);
	s->ctx = c;
	s->read_fn = tls_read;
	s->write_fn = tls_write;
	return 0;
fail:
	ERR_clear_error();
	tls_conn_free(c);
	s->ctx = NULL;
	s->read_fn = tls_dead_read;
	s->write_fn = tls_dead_write;
	return -1;
}

static struct tls_conn *
tls_conn_new(struct tls_ctx *t, char **err)
{
	struct tls_conn *c;

	c = xcalloc(1, sizeof(*c));
	c->server = t->server;
	c->loglevel = t->loglevel;
	c->fd = -1;
	ERR_clear_error();
	if ((c->ssl = SSL_new(t->ssl_ctx)) == NULL) {
		tls_fail(err, "cannot create a TLS connection");
		free(c);
		return NULL;
	}
	return c;
}

int
tls_stream_start_server(struct stream *s, struct tls_ctx *t, int timeout_ms,
    char **err)
{
	struct tls_conn *c;

	if (!t->server) {
		*err = xstrdup("a client TLS context used for a server");
		return -1;
	}
	if ((c = tls_conn_new(t, err)) == NULL)
		return -1;
	c->level = t->level;
	return tls_stream_start(s, c, timeout_ms, err);
}

static int
tls_is_address(const char *name)
{
	unsigned char a[16];

	return inet_pton(AF_INET, name, a) == 1 ||
	    inet_pton(AF_INET6, name, a) == 1;
}

/* Per-connection checks of the server's certificate. */
static int
tls_client_checks(struct tls_conn *c, const struct tls_peer *p,
    const char *const *names, char **err)
{
	size_t i;
	int n, usable = 0;

	SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (p->level == TLS_LEV_DANE) {
		if (p->servername == NULL || *p->servername == '\0') {
			*err = xstrdup("DANE needs the server's name");
			return -1;
		}
		ERR_clear_error();
		if (SSL_dane_enable(c->ssl, p->servername) <= 0) {
			tls_fail(err, "cannot enable DANE for %s",
			    p->servername);
			return -1;
		}
		/* RFC 7672 section 3.1.1: DANE-EE(3) ignores names. */
		SSL_dane_set_flags(c->ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
		for (i = 0; i < p->ntlsa; i++) {
			n = SSL_dane_tlsa_add(c->ssl, p->tlsa[i].usage,
			    p->tlsa[i].selector, p->tlsa[i].mtype,
			    p->tlsa[i].data, p->tlsa[i].len);
			if (n > 0)
				usable++;
			ERR_clear_error();
		}
		if (usable == 0) {
			*err = xasprintf("no usable TLSA record for %s",
			    p->servername);
			return -1;
		}
		for (; names != NULL && *names != NULL; names++)
			if (strcmp(*names, p->servername) != 0)
				(void)SSL_add1_host(c->ssl, *names);
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
		return 0;
	}
	if (p->level == TLS_LEV_VERIFY || p->level == TLS_LEV_SECURE) {
		if (names == NULL || *names == NULL) {
			*err = xasprintf("TLS level %s without a name to "
			    "check", tls_level_name(p->level));
			return -1;
		}
		ERR_clear_error();
		for (i = 0; names[i] != NULL; i++)
			if ((i == 0 ? SSL_set1_host(c->ssl, names[i]) :
			    SSL_add1_host(c->ssl, names[i])) != 1) {
				tls_fail(err, "cannot check for the name %s",
				    names[i]);
				return -1;
			}
		SSL_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
		return 0;
	}
	/* may, encrypt: the chain is still verified, for the log. */
	SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL);
	return 0;
}

int
tls_stream_start_client(struct stream *s, struct tls_ctx *t,
    const struct tls_peer *p, int timeout_ms, char **err)
{
	const char *one[2];
	const char *const *names;
	struct tls_conn *c;
	struct buf key;
	size_t i;

	if (t->server) {
		*err = xstrdup("a server TLS context used for a client");
		return -1;
	}
	if (p->level == TLS_LEV_NONE) {
		*err = xstrdup("TLS level none");
		return -1;
	}
	if ((c = tls_conn_new(t, err)) == NULL)
		return -1;
	c->ctx = t;
	c->level = p->level;
	names = p->match;
	if (names == NULL && p->servername != NULL) {
		one[0] = p->servername;
		one[1] = NULL;
		names = one;
	}
	if (tls_grade_apply_ssl(c->ssl, p->level >= TLS_LEV_ENCRYPT ?
	    &t->mandatory : &t->opportunistic, err) < 0 ||
	    tls_client_checks(c, p, names, err) < 0) {
		tls_conn_free(c);
		return -1;
	}
	if (p->servername != NULL && *p->servername != '\0' &&
	    !tls_is_address(p->servername) &&
	    !SSL_set_tlsext_host_name(c->ssl, p->servername))
		ERR_clear_error();	/* an odd name: go on without SNI */

	/* A session is reused only for the same destination, level and
	 * names it was first checked against. */
	if (p->cache_key != NULL && t->session_timeout > 0) {
		buf_init(&key, BUF_NOMAX);
		buf_printf(&key, "%s&%s&%s", p->cache_key,
		    tls_level_name(p->level),
		    p->servername != NULL ? p->servername : "");
		for (i = 0; names != NULL && names[i] != NULL; i++)
			buf_printf(&key, "&%s", names[i]);
		for (i = 0; i < p->ntlsa; i++)
			buf_printf(&key, "&%u.%u.%u.%zu", p->tlsa[i].usage,
			    p->tlsa[i].selector, p->tlsa[i].mtype,
			    p->tlsa[i].len);
		c->cache_key = buf_steal(&key);
		buf_free(&key);
		tls_cache_offer(t, c);
	}
	return tls_stream_start(s, c, timeout_ms, err);
}

struct tls_conn *
tls_stream_conn(const struct stream *s)
{
	return s->read_fn == tls_read ? s->ctx : NULL;
}

void
tls_stream_stop(struct stream *s)
{
	struct tls_conn *c;

	if ((c = tls_stream_conn(s)) == NULL)
		return;
	/* One try: a peer that does not read is not waited for. */
	ERR_clear_error();
	(void)SSL_shutdown(c->ssl);
	ERR_clear_error();
	tls_conn_free(c);
	s->ctx = NULL;
	s->read_fn = tls_dead_read;
	s->write_fn = tls_dead_write;
}

/*
 * What was negotiated.
 */

const char *
tls_conn_protocol(const struct tls_conn *c)
{
	return SSL_get_version(c->ssl);
}

const char *
tls_conn_cipher(const struct tls_conn *c)
{
	return SSL_get_cipher_name(c->ssl);
}

int
tls_conn_bits(const struct tls_conn *c, int *alg_bits)
{
	int alg = 0, bits;

	bits = SSL_get_cipher_bits(c->ssl, &alg);
	if (alg_bits != NULL)
		*alg_bits = alg;
	return bits;
}

char *
tls_conn_describe(const struct tls_conn *c)
{
	int alg, bits;

	bits = tls_conn_bits(c, &alg);
	return xasprintf("%s with cipher %s (%d/%d bits)",
	    tls_conn_protocol(c), tls_conn_cipher(c), bits, alg);
}

int
tls_conn_reused(const struct tls_conn *c)
{
	return SSL_session_reused(c->ssl);
}

const char *
tls_conn_peer_cn(const struct tls_conn *c)
{
	return c->peer_cn;
}

const char *
tls_conn_trust(const struct tls_conn *c)
{
	if (SSL_get0_peer_certificate(c->ssl) == NULL)
		return "Anonymous";
	if (SSL_get_verify_result(c->ssl) != X509_V_OK)
		return "Untrusted";
	return c->matched ? "Verified" : "Trusted";
}

const char *
tls_conn_verify_error(const struct tls_conn *c)
{
	long v;

	if (SSL_get0_peer_certificate(c->ssl) == NULL)
		return "no certificate";
	v = SSL_get_verify_result(c->ssl);
	return v == X509_V_OK ? NULL : X509_verify_cert_error_string(v);
}

const char *
tls_conn_last_error(const struct tls_conn *c)
{
	return c->last_error;
}

void
tls_conn_log(const struct tls_conn *c, const char *dir, const char *peer)
{
	char *desc;

	if (c->loglevel < 1)
		return;
	desc = tls_conn_describe(c);
	msg_info("%s TLS connection %s %s %s: %s", tls_conn_trust(c),
	    tls_conn_reused(c) ? "reused" : "established", dir, peer, desc);
	free(desc);
}
