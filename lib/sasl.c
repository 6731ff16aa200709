/*
 * sasl - SMTP AUTH over Cyrus SASL, server and client side. See sasl.h
 * for how smtpd and smtp use it.
 *
 * Cyrus is given only input that passed our own checks: canonical
 * base64 within RFC 4954's line limit, and no NUL byte where the
 * mechanism has none. The server never negotiates a SASL security
 * layer (max_ssf 0): Tern's streams do not wrap one, TLS does that job.
 * The authorization identity Cyrus reports is compared with the login
 * after every success, whatever Cyrus's own policy said, so a
 * misconfigured Cyrus cannot let one customer act as another.
 *
 * Failures are results and reasons, never fatal; only running out of
 * memory ends the process, as everywhere in Tern.
 */
#include "autoconf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sasl/sasl.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "sasl.h"
#include "strv.h"

/* RFC 4422 section 3.1: mechanism names are 1-20 of [A-Z0-9-_]. */
#define SASL_MECH_MAX	20

/* Cyrus keeps callbacks as int (*)(void); going through void (*)(void)
 * says the cast is meant. */
#define SASL_CB_FN(f)	((int (*)(void))(void (*)(void))(f))

enum srv_state {
	SRV_IDLE,		/* no exchange, or the last one failed */
	SRV_EXCHANGE,		/* a challenge is out, a response expected */
	SRV_DONE,		/* authenticated; nothing more */
};

struct sasl_srv {
	sasl_conn_t	*conn;
	sasl_callback_t	 callbacks[2];
	enum srv_state	 state;
	char		 mech[SASL_MECH_MAX + 1];
	char		*username;
	char		*reason;
	/* A copy of the options: each exchange gets a new Cyrus conn. */
	char		*service, *fqdn, *realm, *local, *remote;
	unsigned	 secflags;
	int		 tls_bits;
	char		**proxy_logins;
};

struct sasl_cli {
	sasl_conn_t	*conn;
	sasl_callback_t	 callbacks[4];
	char		*username;
	sasl_secret_t	*secret;
	char		*filter;
};

/* What the GETOPT callback answers; set once by sasl_srv_init(). */
static struct {
	int	 initialized;
	char	*conf_path;
	char	*db_file;
	char	*mech_list;
} srv_global;
static int cli_initialized;

/*
 * Base64, strict: Cyrus's decoder tolerates things a careful server
 * should not, and the input is the attacker's.
 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
b64_value(int ch)
{
	const char *p;

	if (ch == '\0' || (p = strchr(b64_alphabet, ch)) == NULL)
		return -1;
	return (int)(p - b64_alphabet);
}

int
sasl_base64_decode(const char *text, size_t n, char **out, size_t *len)
{
	unsigned char *d;
	size_t i, o = 0;
	int v[4], k, pad;

	*out = NULL;
	*len = 0;
	if (n % 4 != 0)
		return -1;
	d = xmalloc(n / 4 * 3 + 1);
	for (i = 0; i < n; i += 4) {
		pad = 0;
		for (k = 0; k < 4; k++) {
			if (text[i + k] == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			/* Padding is only at the very end. */
			if (pad > 0 || (v[k] = b64_value(text[i + k])) < 0)
				goto bad;
		}
		/* Canonical: the bits padding drops must be zero. */
		if ((pad == 1 && (v[2] & 0x03) != 0) ||
		    (pad == 2 && (v[1] & 0x0f) != 0))
			goto bad;
		d[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (pad < 2)
			d[o++] = (unsigned char)((v[1] & 0x0f) << 4 |
			    v[2] >> 2);
		if (pad < 1)
			d[o++] = (unsigned char)((v[2] & 0x03) << 6 | v[3]);
	}
	d[o] = '\0';
	*out = (char *)d;
	*len = o;
	return 0;
bad:
	free(d);
	return -1;
}

char *
sasl_base64_encode(const void *p, size_t n)
{
	const unsigned char *s = p;
	char *out, *o;
	size_t i;

	o = out = xmalloc((n + 2) / 3 * 4 + 1);
	for (i = 0; i + 2 < n; i += 3) {
		*o++ = b64_alphabet[s[i] >> 2];
		*o++ = b64_alphabet[(s[i] & 0x03) << 4 | s[i + 1] >> 4];
		*o++ = b64_alphabet[(s[i + 1] & 0x0f) << 2 | s[i + 2] >> 6];
		*o++ = b64_alphabet[s[i + 2] & 0x3f];
	}
	if (i < n) {
		*o++ = b64_alphabet[s[i] >> 2];
		if (i + 1 < n) {
			*o++ = b64_alphabet[(s[i] & 0x03) << 4 |
			    s[i + 1] >> 4];
			*o++ = b64_alphabet[(s[i + 1] & 0x0f) << 2];
		} else {
			*o++ = b64_alphabet[(s[i] & 0x03) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/*
 * Options and callbacks shared by both sides.
 */

/* "noanonymous, noplaintext" into Cyrus's security flags. */
static int
sasl_parse_secflags(const char *text, unsigned *flags, char **err)
{
	static const struct {
		const char	*name;
		unsigned	 flag;
	} words[] = {
		{ "noanonymous", SASL_SEC_NOANONYMOUS },
		{ "noplaintext", SASL_SEC_NOPLAINTEXT },
		{ "noactive", SASL_SEC_NOACTIVE },
		{ "nodictionary", SASL_SEC_NODICTIONARY },
		{ "forward_secrecy", SASL_SEC_FORWARD_SECRECY },
		{ "mutual_auth", SASL_SEC_MUTUAL_AUTH },
	};
	char **items, **p;
	size_t i;

	*flags = 0;
	items = strv_split(text != NULL ? text : "", ", \t\r\n");
	for (p = items; *p != NULL; p++) {
		for (i = 0; i < sizeof(words) / sizeof(*words); i++)
			if (strcasecmp(*p, words[i].name) == 0)
				break;
		if (i == sizeof(words) / sizeof(*words)) {
			*err = xasprintf("unknown SASL security option \"%s\"",
			    *p);
			strv_free(items);
			return -1;
		}
		*flags |= words[i].flag;
	}
	strv_free(items);
	return 0;
}

static int
sasl_set_secprops(sasl_conn_t *conn, unsigned flags, int tls_bits)
{
	sasl_security_properties_t props;
	sasl_ssf_t ssf = tls_bits > 0 ? (sasl_ssf_t)tls_bits : 0;
	int r;

	memset(&props, 0, sizeof(props));
	props.min_ssf = 0;
	props.max_ssf = 0;		/* no SASL security layer */
	props.maxbufsize = 0;
	props.security_flags = flags;
	if ((r = sasl_setprop(conn, SASL_SEC_PROPS, &props)) != SASL_OK)
		return r;
	/* With TLS, Cyrus lifts noplaintext by itself (ssf > 1). */
	return sasl_setprop(conn, SASL_SSF_EXTERNAL, &ssf);
}

static int
sasl_log_cb(void *context, int level, const char *message)
{
	switch (level) {
	case SASL_LOG_ERR:
	case SASL_LOG_WARN:
		msg_warn("SASL: %s", message);
		break;
	case SASL_LOG_FAIL:
		/* The caller logs the failure with the client's name. */
		break;
	case SASL_LOG_NOTE:
		msg_info("SASL: %s", message);
		break;
	default:
		break;
	}
	return SASL_OK;
}

/* Cyrus asks; we answer for what Tern configures, Cyrus's file for
 * the rest (SASL_FAIL sends it there). */
static int
sasl_getopt_cb(void *context, const char *plugin, const char *option,
    const char **result, unsigned *len)
{
	const char *v = NULL;

	if (srv_global.db_file != NULL) {
		if (strcmp(option, "sasldb_path") == 0)
			v = srv_global.db_file;
		else if (strcmp(option, "pwcheck_method") == 0)
			v = "auxprop";
		else if (strcmp(option, "auxprop_plugin") == 0)
			v = "sasldb";
	}
	if (srv_global.mech_list != NULL && strcmp(option, "mech_list") == 0)
		v = srv_global.mech_list;
	if (v == NULL)
		return SASL_FAIL;
	*result = v;
	if (len != NULL)
		*len = (unsigned)strlen(v);
	return SASL_OK;
}

static int
sasl_confpath_cb(void *context, const char **path)
{
	*path = srv_global.conf_path;
	return SASL_OK;
}

static char *
sasl_nonempty_dup(const char *s)
{
	return s != NULL && *s != '\0' ? xstrdup(s) : NULL;
}

/*
 * Server.
 */

int
sasl_srv_init(const struct sasl_srv_config *cf, char **err)
{
	static sasl_callback_t callbacks[4];
	int n = 0, r;

	if (srv_global.initialized) {
		*err = xstrdup("SASL server already initialized");
		return -1;
	}
	if (cf->app == NULL || *cf->app == '\0') {
		*err = xstrdup("no SASL application name (smtpd_sasl_path)");
		return -1;
	}
	srv_global.conf_path = sasl_nonempty_dup(cf->conf_path);
	srv_global.db_file = sasl_nonempty_dup(cf->db_file);
	srv_global.mech_list = sasl_nonempty_dup(cf->mech_list);
	callbacks[n].id = SASL_CB_GETOPT;
	callbacks[n].proc = SASL_CB_FN(sasl_getopt_cb);
	callbacks[n++].context = NULL;
	callbacks[n].id = SASL_CB_LOG;
	callbacks[n].proc = SASL_CB_FN(sasl_log_cb);
	callbacks[n++].context = NULL;
	if (srv_global.conf_path != NULL) {
		callbacks[n].id = SASL_CB_GETCONFPATH;
		callbacks[n].proc = SASL_CB_FN(sasl_confpath_cb);
		callbacks[n++].context = NULL;
	}
	callbacks[n].id = SASL_CB_LIST_END;
	callbacks[n].proc = NULL;
	callbacks[n].context = NULL;
	if ((r = sasl_server_init(callbacks, cf->app)) != SASL_OK) {
		*err = xasprintf("cannot initialize the SASL server "
		    "(application %s): %s", cf->app,
		    sasl_errstring(r, NULL, NULL));
		return -1;
	}
	srv_global.initialized = 1;
	return 0;
}

int
sasl_srv_init_from_config(char **err)
{
	struct sasl_srv_config cf;
	char **mechs, **p;
	struct buf list;
	int r;

	/* Cyrus wants mech_list separated by spaces only. */
	mechs = config_list("smtpd_sasl_mechanism_list");
	buf_init(&list, BUF_NOMAX);
	for (p = mechs; *p != NULL; p++)
		buf_printf(&list, "%s%s", p != mechs ? " " : "", *p);
	buf_puts(&list, "");
	cf.app = config_str("smtpd_sasl_path");
	cf.conf_path = config_str("cyrus_sasl_config_path");
	cf.db_file = config_str("smtpd_sasl_db_file");
	cf.mech_list = buf_cstr(&list);
	r = sasl_srv_init(&cf, err);
	buf_free(&list);
	strv_free(mechs);
	return r;
}

/* Is login allowed to act for another identity? */
static int
srv_proxy_ok(const struct sasl_srv *v, const char *login)
{
	char *const *p;

	for (p = v->proxy_logins; p != NULL && *p != NULL; p++)
		if (strcmp(*p, login) == 0)
			return 1;
	return 0;
}

/* Cyrus's question: may auth_identity act as requested_user? */
static int
srv_proxy_policy_cb(sasl_conn_t *conn, void *context, const char *requested,
    unsigned rlen, const char *auth_identity, unsigned alen,
    const char *def_realm, unsigned urlen, struct propctx *propctx)
{
	struct sasl_srv *v = context;
	char *login;
	int ok;

	if (rlen == 0 || (rlen == alen && memcmp(requested, auth_identity,
	    rlen) == 0))
		return SASL_OK;
	login = xstrndup(auth_identity, alen);
	ok = srv_proxy_ok(v, login);
	free(login);
	if (ok)
		return SASL_OK;
	sasl_seterror(conn, SASL_NOLOG, "authorization identity differs "
	    "from the login");
	return SASL_NOAUTHZ;
}

static void
srv_set_reason(struct sasl_srv *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
srv_set_reason(struct sasl_srv *v, const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(v->reason);
	v->reason = buf_steal(&b);
	buf_free(&b);
}

/* A fresh Cyrus connection with our properties: 0, or a Cyrus code. */
static int
srv_conn_open(struct sasl_srv *v)
{
	int r;

	if (v->conn != NULL)
		sasl_dispose(&v->conn);
	v->callbacks[0].id = SASL_CB_PROXY_POLICY;
	v->callbacks[0].proc = SASL_CB_FN(srv_proxy_policy_cb);
	v->callbacks[0].context = v;
	v->callbacks[1].id = SASL_CB_LIST_END;
	v->callbacks[1].proc = NULL;
	v->callbacks[1].context = NULL;
	r = sasl_server_new(v->service, v->fqdn, v->realm, v->local,
	    v->remote, v->callbacks, 0, &v->conn);
	if (r != SASL_OK) {
		v->conn = NULL;
		return r;
	}
	if ((r = sasl_set_secprops(v->conn, v->secflags, v->tls_bits)) !=
	    SASL_OK) {
		sasl_dispose(&v->conn);
		return r;
	}
	return SASL_OK;
}

struct sasl_srv *
sasl_srv_new(const struct sasl_srv_opts *o, char **err)
{
	struct sasl_srv *v;
	char *const *p;
	int r;

	if (!srv_global.initialized) {
		*err = xstrdup("SASL server not initialized");
		return NULL;
	}
	v = xcalloc(1, sizeof(*v));
	if (sasl_parse_secflags(o->security_options, &v->secflags, err) < 0) {
		free(v);
		return NULL;
	}
	v->service = xstrdup(o->service != NULL ? o->service : "smtp");
	v->fqdn = sasl_nonempty_dup(o->server_fqdn);
	v->realm = sasl_nonempty_dup(o->user_realm);
	v->local = sasl_nonempty_dup(o->local_addr);
	v->remote = sasl_nonempty_dup(o->remote_addr);
	v->tls_bits = o->tls_bits;
	v->proxy_logins = xcalloc(1, sizeof(char *));
	for (p = o->proxy_logins; p != NULL && *p != NULL; p++)
		strv_add(&v->proxy_logins, *p);
	if ((r = srv_conn_open(v)) != SASL_OK) {
		*err = xasprintf("cannot start a SASL session: %s",
		    sasl_errstring(r, NULL, NULL));
		sasl_srv_free(v);
		return NULL;
	}
	return v;
}

struct sasl_srv *
sasl_srv_new_from_config(const char *remote, const char *local,
    int tls_bits, char **err)
{
	struct sasl_srv_opts o;
	struct sasl_srv *v;
	char **proxies;

	memset(&o, 0, sizeof(o));
	proxies = config_list("smtpd_sasl_proxy_logins");
	o.service = "smtp";
	o.server_fqdn = config_str("myhostname");
	o.user_realm = config_str("smtpd_sasl_local_domain");
	o.local_addr = local;
	o.remote_addr = remote;
	o.security_options = config_str(tls_bits > 0 ?
	    "smtpd_sasl_tls_security_options" : "smtpd_sasl_security_options");
	o.tls_bits = tls_bits;
	o.proxy_logins = proxies;
	v = sasl_srv_new(&o, err);
	strv_free(proxies);
	return v;
}

void
sasl_srv_free(struct sasl_srv *v)
{
	if (v == NULL)
		return;
	if (v->conn != NULL)
		sasl_dispose(&v->conn);
	free(v->username);
	free(v->reason);
	free(v->service);
	free(v->fqdn);
	free(v->realm);
	free(v->local);
	free(v->remote);
	strv_free(v->proxy_logins);
	free(v);
}

char *
sasl_srv_mechs(struct sasl_srv *v)
{
	const char *list = NULL;
	unsigned len = 0;
	int count = 0;

	if (v->conn == NULL && srv_conn_open(v) != SASL_OK)
		return xstrdup("");
	if (sasl_listmech(v->conn, NULL, "", " ", "", &list, &len,
	    &count) != SASL_OK || list == NULL)
		return xstrdup("");
	return xstrndup(list, len);
}

/* Does decoded client data fit the mechanism? NULL, or why not. */
static const char *
srv_check_input(const struct sasl_srv *v, const char *d, size_t n)
{
	const char *authcid, *pass, *end = d + n;
	size_t nuls = 0, i;

	for (i = 0; i < n; i++)
		if (d[i] == '\0')
			nuls++;
	if (strcmp(v->mech, "PLAIN") == 0) {
		/* authzid NUL authcid NUL passwd (RFC 4616). */
		if (nuls != 2)
			return "PLAIN response without exactly two NUL bytes";
		authcid = (const char *)memchr(d, '\0', n) + 1;
		pass = (const char *)memchr(authcid, '\0',
		    (size_t)(end - authcid)) + 1;
		if (*authcid == '\0' || pass == end)
			return "PLAIN response with an empty login or "
			    "password";
		return NULL;
	}
	/* Text mechanisms: a NUL byte is never part of them. GSSAPI and
	 * other binary ones are left to their plugins. */
	if (nuls > 0 && (strcmp(v->mech, "LOGIN") == 0 ||
	    strcmp(v->mech, "CRAM-MD5") == 0 ||
	    strcmp(v->mech, "DIGEST-MD5") == 0 ||
	    strncmp(v->mech, "SCRAM-", 6) == 0))
		return "NUL byte in the response";
	return NULL;
}

/* End the exchange without success. */
static enum sasl_step
srv_abort(struct sasl_srv *v, enum sasl_step result)
{
	v->state = SRV_IDLE;
	/* The next AUTH starts from a clean Cyrus connection. */
	if (v->conn != NULL)
		sasl_dispose(&v->conn);
	return result;
}

/* Turn Cyrus's answer into ours. */
static enum sasl_step
srv_result(struct sasl_srv *v, int r, const char *data, unsigned len,
    char **out)
{
	const void *user = NULL, *login = NULL;

	switch (r) {
	case SASL_CONTINUE:
		v->state = SRV_EXCHANGE;
		*out = sasl_base64_encode(data != NULL ? data : "",
		    data != NULL ? len : 0);
		return SASL_STEP_CONTINUE;
	case SASL_OK:
		if (sasl_getprop(v->conn, SASL_USERNAME, &user) != SASL_OK ||
		    user == NULL || *(const char *)user == '\0') {
			srv_set_reason(v, "no user name after authentication");
			return srv_abort(v, SASL_STEP_FAIL);
		}
		if (sasl_getprop(v->conn, SASL_AUTHUSER, &login) == SASL_OK &&
		    login != NULL && strcmp(user, login) != 0 &&
		    !srv_proxy_ok(v, login)) {
			srv_set_reason(v, "login %s may not act as %s",
			    (const char *)login, (const char *)user);
			return srv_abort(v, SASL_STEP_FAIL);
		}
		v->username = xstrdup(user);
		v->state = SRV_DONE;
		return SASL_STEP_OK;
	case SASL_NOMECH:
	case SASL_TOOWEAK:
	case SASL_ENCRYPT:
		srv_set_reason(v, "%s", sasl_errdetail(v->conn));
		return srv_abort(v, SASL_STEP_NOMECH);
	case SASL_BADPROT:
	case SASL_BADPARAM:
		srv_set_reason(v, "%s", sasl_errdetail(v->conn));
		return srv_abort(v, SASL_STEP_BADINPUT);
	case SASL_TRYAGAIN:
	case SASL_UNAVAIL:
	case SASL_NOMEM:
		srv_set_reason(v, "%s", sasl_errdetail(v->conn));
		return srv_abort(v, SASL_STEP_TEMP);
	default:
		srv_set_reason(v, "%s", sasl_errdetail(v->conn));
		return srv_abort(v, SASL_STEP_FAIL);
	}
}

/* Decode and check a client line; *data NULL for "no data at all". */
static enum sasl_step
srv_decode(struct sasl_srv *v, const char *text, char **data, size_t *n)
{
	size_t len = strlen(text);

	if (len >= 2 && text[len - 2] == '\r' && text[len - 1] == '\n')
		len -= 2;
	else if (len >= 1 && text[len - 1] == '\n')
		len -= 1;
	if (len > SASL_LINE_MAX) {
		srv_set_reason(v, "authentication line of %zu bytes", len);
		return SASL_STEP_TOOLONG;
	}
	if (sasl_base64_decode(text, len, data, n) < 0) {
		srv_set_reason(v, "malformed base64");
		return SASL_STEP_BADINPUT;
	}
	return SASL_STEP_CONTINUE;
}

enum sasl_step
sasl_srv_start(struct sasl_srv *v, const char *mech, const char *initial,
    char **out)
{
	const char *sout = NULL;
	unsigned soutlen = 0;
	enum sasl_step st;
	char *data = NULL;
	size_t n = 0, i;
	const char *why;
	int r;

	*out = NULL;
	free(v->reason);
	v->reason = NULL;
	if (v->state == SRV_DONE) {
		srv_set_reason(v, "already authenticated");
		return SASL_STEP_BADINPUT;
	}
	v->state = SRV_IDLE;
	v->mech[0] = '\0';
	for (i = 0; mech[i] != '\0'; i++)
		if (i >= SASL_MECH_MAX || !(isupper((unsigned char)mech[i]) ||
		    islower((unsigned char)mech[i]) ||
		    isdigit((unsigned char)mech[i]) || mech[i] == '-' ||
		    mech[i] == '_')) {
			srv_set_reason(v, "invalid mechanism name");
			return SASL_STEP_NOMECH;
		}
	if (i == 0) {
		srv_set_reason(v, "no mechanism name");
		return SASL_STEP_NOMECH;
	}
	for (i = 0; mech[i] != '\0'; i++)
		v->mech[i] = (char)toupper((unsigned char)mech[i]);
	v->mech[i] = '\0';
	if (initial != NULL) {
		if (strcmp(initial, "=") == 0)
			data = xstrdup("");
		else if ((st = srv_decode(v, initial, &data, &n)) !=
		    SASL_STEP_CONTINUE)
			return st;
		if ((why = srv_check_input(v, data, n)) != NULL) {
			srv_set_reason(v, "%s", why);
			free(data);
			return SASL_STEP_BADINPUT;
		}
	}
	if ((r = srv_conn_open(v)) != SASL_OK) {
		free(data);
		srv_set_reason(v, "%s", sasl_errstring(r, NULL, NULL));
		return SASL_STEP_TEMP;
	}
	r = sasl_server_start(v->conn, v->mech, data, (unsigned)n, &sout,
	    &soutlen);
	if (data != NULL) {
		explicit_bzero(data, n);
		free(data);
	}
	return srv_result(v, r, sout, soutlen, out);
}

enum sasl_step
sasl_srv_step(struct sasl_srv *v, const char *line, char **out)
{
	const char *sout = NULL;
	unsigned soutlen = 0;
	enum sasl_step st;
	char *data = NULL;
	const char *why;
	size_t n = 0;
	int r;

	*out = NULL;
	if (v->state != SRV_EXCHANGE) {
		srv_set_reason(v, "no authentication exchange in progress");
		return SASL_STEP_BADINPUT;
	}
	if (strcmp(line, "*") == 0 || strcmp(line, "*\r\n") == 0) {
		srv_set_reason(v, "cancelled by the client");
		return srv_abort(v, SASL_STEP_CANCELLED);
	}
	if ((st = srv_decode(v, line, &data, &n)) != SASL_STEP_CONTINUE)
		return srv_abort(v, st);
	if ((why = srv_check_input(v, data, n)) != NULL) {
		srv_set_reason(v, "%s", why);
		explicit_bzero(data, n);
		free(data);
		return srv_abort(v, SASL_STEP_BADINPUT);
	}
	r = sasl_server_step(v->conn, data, (unsigned)n, &sout, &soutlen);
	explicit_bzero(data, n);
	free(data);
	return srv_result(v, r, sout, soutlen, out);
}

const char *
sasl_srv_username(const struct sasl_srv *v)
{
	return v->state == SRV_DONE ? v->username : NULL;
}

const char *
sasl_srv_mech(const struct sasl_srv *v)
{
	return v->mech[0] != '\0' ? v->mech : NULL;
}

const char *
sasl_srv_reason(const struct sasl_srv *v)
{
	return v->reason;
}

/*
 * Client.
 */

int
sasl_cli_init(char **err)
{
	static sasl_callback_t callbacks[] = {
		{ SASL_CB_LOG, SASL_CB_FN(sasl_log_cb), NULL },
		{ SASL_CB_LIST_END, NULL, NULL },
	};
	int r;

	if (cli_initialized)
		return 0;
	if ((r = sasl_client_init(callbacks)) != SASL_OK) {
		*err = xasprintf("cannot initialize the SASL client: %s",
		    sasl_errstring(r, NULL, NULL));
		return -1;
	}
	cli_initialized = 1;
	return 0;
}

static int
cli_simple_cb(void *context, int id, const char **result, unsigned *len)
{
	struct sasl_cli *c = context;

	switch (id) {
	case SASL_CB_AUTHNAME:
		*result = c->username;
		break;
	case SASL_CB_USER:
		*result = "";	/* no authorization identity: the login */
		break;
	default:
		return SASL_BADPARAM;
	}
	if (len != NULL)
		*len = (unsigned)strlen(*result);
	return SASL_OK;
}

static int
cli_pass_cb(sasl_conn_t *conn, void *context, int id, sasl_secret_t **secret)
{
	struct sasl_cli *c = context;

	if (id != SASL_CB_PASS || c->secret == NULL)
		return SASL_BADPARAM;
	*secret = c->secret;
	return SASL_OK;
}

struct sasl_cli *
sasl_cli_new(const struct sasl_cli_opts *o, char **err)
{
	struct sasl_cli *c;
	unsigned flags;
	size_t plen;
	int r;

	if (!cli_initialized && sasl_cli_init(err) < 0)
		return NULL;
	if (sasl_parse_secflags(o->security_options, &flags, err) < 0)
		return NULL;
	if (o->username == NULL || o->password == NULL) {
		*err = xstrdup("no SASL username or password");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->username = xstrdup(o->username);
	plen = strlen(o->password);
	c->secret = xmalloc(sizeof(sasl_secret_t) + plen + 1);
	c->secret->len = plen;
	memcpy(c->secret->data, o->password, plen + 1);
	c->filter = xstrdup(o->mech_filter != NULL ? o->mech_filter : "");
	c->callbacks[0].id = SASL_CB_AUTHNAME;
	c->callbacks[0].proc = SASL_CB_FN(cli_simple_cb);
	c->callbacks[0].context = c;
	c->callbacks[1].id = SASL_CB_USER;
	c->callbacks[1].proc = SASL_CB_FN(cli_simple_cb);
	c->callbacks[1].context = c;
	c->callbacks[2].id = SASL_CB_PASS;
	c->callbacks[2].proc = SASL_CB_FN(cli_pass_cb);
	c->callbacks[2].context = c;
	c->callbacks[3].id = SASL_CB_LIST_END;
	c->callbacks[3].proc = NULL;
	c->callbacks[3].context = NULL;
	r = sasl_client_new(o->service != NULL ? o->service : "smtp",
	    o->server_host, NULL, NULL, c->callbacks, 0, &c->conn);
	if (r == SASL_OK)
		r = sasl_set_secprops(c->conn, flags, o->tls_bits);
	if (r != SASL_OK) {
		*err = xasprintf("cannot start a SASL client session: %s",
		    c->conn != NULL ? sasl_errdetail(c->conn) :
		    sasl_errstring(r, NULL, NULL));
		sasl_cli_free(c);
		return NULL;
	}
	return c;
}

struct sasl_cli *
sasl_cli_new_from_config(const char *host, const char *user,
    const char *pass, int tls_bits, char **err)
{
	struct sasl_cli_opts o;

	memset(&o, 0, sizeof(o));
	o.service = "smtp";
	o.server_host = host;
	o.username = user;
	o.password = pass;
	o.security_options = config_str(tls_bits > 0 ?
	    "smtp_sasl_tls_security_options" : "smtp_sasl_security_options");
	o.tls_bits = tls_bits;
	o.mech_filter = config_str("smtp_sasl_mechanism_filter");
	return sasl_cli_new(&o, err);
}

/* The server's offer, cleaned and filtered: words of mechanism
 * characters only, in the filter when there is one. */
static char *
cli_filter(const struct sasl_cli *c, const char *offered)
{
	char **words, **allow, **p;
	struct buf b;
	const char *q;

	words = strv_split(offered, " \t\r\n");
	allow = strv_split(c->filter, ", \t\r\n");
	buf_init(&b, BUF_NOMAX);
	for (p = words; *p != NULL; p++) {
		for (q = *p; *q != '\0'; q++)
			if (!isalnum((unsigned char)*q) && *q != '-' &&
			    *q != '_')
				break;
		if (*q != '\0' || q - *p > SASL_MECH_MAX)
			continue;
		if (allow[0] != NULL && !strv_contains(allow, *p))
			continue;
		buf_printf(&b, "%s%s", b.len > 0 ? " " : "", *p);
	}
	strv_free(words);
	strv_free(allow);
	buf_puts(&b, "");
	return buf_steal(&b);
}

int
sasl_cli_start(struct sasl_cli *c, const char *offered, const char **mech,
    char **initial, char **err)
{
	sasl_interact_t *interact = NULL;
	const char *out = NULL, *chosen = NULL;
	unsigned outlen = 0;
	char *list;
	int r;

	*mech = NULL;
	*initial = NULL;
	list = cli_filter(c, offered);
	if (*list == '\0') {
		*err = xasprintf("no SASL mechanism to use: the server offers "
		    "\"%s\"%s%s", offered, *c->filter != '\0' ?
		    ", smtp_sasl_mechanism_filter allows " : "", c->filter);
		free(list);
		return -1;
	}
	r = sasl_client_start(c->conn, list, &interact, &out, &outlen,
	    &chosen);
	if (r != SASL_OK && r != SASL_CONTINUE) {
		*err = xasprintf("SASL mechanisms \"%s\": %s", list,
		    sasl_errdetail(c->conn));
		free(list);
		return -1;
	}
	free(list);
	*mech = chosen;
	if (out != NULL)
		*initial = outlen == 0 ? xstrdup("=") :
		    sasl_base64_encode(out, outlen);
	return 0;
}

int
sasl_cli_step(struct sasl_cli *c, const char *challenge, char **response,
    char **err)
{
	sasl_interact_t *interact = NULL;
	const char *out = NULL;
	unsigned outlen = 0;
	size_t len = strlen(challenge), n;
	char *data;
	int r;

	*response = NULL;
	if (len > SASL_LINE_MAX ||
	    sasl_base64_decode(challenge, len, &data, &n) < 0) {
		*err = xstrdup("malformed SASL challenge from the server");
		return -1;
	}
	r = sasl_client_step(c->conn, data, (unsigned)n, &interact, &out,
	    &outlen);
	free(data);
	if (r != SASL_OK && r != SASL_CONTINUE) {
		*err = xasprintf("SASL: %s", sasl_errdetail(c->conn));
		return -1;
	}
	*response = sasl_base64_encode(out != NULL ? out : "",
	    out != NULL ? outlen : 0);
	return 0;
}

void
sasl_cli_free(struct sasl_cli *c)
{
	if (c == NULL)
		return;
	if (c->conn != NULL)
		sasl_dispose(&c->conn);
	if (c->secret != NULL) {
		explicit_bzero(c->secret->data, c->secret->len);
		free(c->secret);
	}
	free(c->username);
	free(c->filter);
	free(c);
}
