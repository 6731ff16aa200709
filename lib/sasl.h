/*
 * sasl - SMTP AUTH (RFC 4954) over Cyrus SASL: the server side for
 * smtpd (later imapd and pop3d), the client side for the smtp client
 * authenticating to a relay host.
 *
 * Base64 and the checks on what a client sends are done here, before
 * Cyrus sees anything: bad base64, a line longer than RFC 4954's 12288
 * octets, a NUL byte where the mechanism has none (PLAIN has exactly
 * two), are refused as malformed and never authenticate. An
 * authorization identity other than the login is refused unless the
 * login is in proxy_logins (smtpd_sasl_proxy_logins), both in Cyrus's
 * proxy policy callback and again on success.
 *
 * Passwords: Cyrus reads its configuration from APP.conf (APP =
 * smtpd_sasl_path, "smtpd"; searched in cyrus_sasl_config_path or
 * Cyrus's default /etc/sasl2). When smtpd_sasl_db_file is set, Tern
 * overrides it: passwords come from that sasldb file (pwcheck_method
 * auxprop, auxprop_plugin sasldb), which is how test instances keep
 * their users in their own folder:
 *	saslpasswd2 -c -p -f DIR/sasldb2 -u REALM -a smtpd USER < password
 * REALM is smtpd_sasl_local_domain, or $myhostname when that is empty
 * (Cyrus's default realm). With a local domain the authenticated name
 * is "user@domain", without one "user"; smtpd_sender_login_maps must
 * name logins the same way. smtpd_sasl_mechanism_list, when set, is
 * Cyrus's mech_list (without it Cyrus offers every plugin it has,
 * DIGEST-MD5 and NTLM included).
 *
 * Debian packages: libsasl2-2 (the library), libsasl2-modules (the
 * PLAIN, LOGIN, CRAM-MD5, DIGEST-MD5, SCRAM and NTLM mechanisms),
 * libsasl2-modules-db (the sasldb password store), sasl2-bin
 * (saslpasswd2 and sasldblistusers2, to manage a sasldb; tests need
 * it), libsasl2-dev to build.
 *
 * How smtpd uses it:
 *	at start	sasl_srv_init_from_config(&err) when
 *			smtpd_sasl_auth_enable = yes (fatal on failure).
 *	per session	v = sasl_srv_new_from_config(remote, local, bits,
 *			&err), bits being tls_conn_bits() inside TLS and 0
 *			outside; make a new one after STARTTLS (the session
 *			is reset, and the mechanisms change with TLS).
 *	EHLO		m = sasl_srv_mechs(v); offer "AUTH m" when m is not
 *			empty and AUTH is allowed (smtpd_tls_auth_only:
 *			not before TLS).
 *	AUTH m [ir]	refuse inside a mail transaction and after success
 *			(503); r = sasl_srv_start(v, m, ir or NULL, &out);
 *			then while r == SASL_STEP_CONTINUE: send "334 out",
 *			read a line (no longer than SASL_LINE_MAX + 2),
 *			r = sasl_srv_step(v, line, &out). Replies:
 *	  SASL_STEP_OK		235 2.7.0 Authentication successful; log
 *				sasl_method=m, sasl_username=
 *				sasl_srv_username(v)
 *	  SASL_STEP_FAIL	535 5.7.8 Error: authentication failed
 *	  SASL_STEP_BADINPUT	501 5.5.2 Error: malformed authentication
 *	  SASL_STEP_TOOLONG	500 5.5.6 Authentication exchange line is
 *				too long
 *	  SASL_STEP_CANCELLED	501 5.7.0 Authentication aborted
 *	  SASL_STEP_NOMECH	504 5.5.4 Unsupported authentication
 *				mechanism
 *	  SASL_STEP_TEMP	454 4.7.0 Temporary authentication failure
 *			Every result but CONTINUE and OK counts as a failed
 *			attempt for smtpd's per-client limits;
 *			sasl_srv_reason(v) says why, for the log.
 *
 * How the smtp client uses it: sasl_cli_init() at start; for a relay
 * that offers AUTH, c = sasl_cli_new_from_config(host, user, pass,
 * bits, &err) with user and password from smtp_sasl_password_maps;
 * sasl_cli_start(c, offered, &mech, &ir, &err) and send "AUTH mech ir";
 * on 334 answer sasl_cli_step(c, challenge, &resp, &err); 235 is
 * success, anything else a failure to report with the server's reply.
 *
 * Failure: functions return -1 or an enum value and an allocated *err
 * or a reason; nothing here ends the process.
 */
#ifndef TERN_SASL_H
#define TERN_SASL_H

#include <stddef.h>

/* RFC 4954 section 4: the longest AUTH exchange line, without CRLF. */
#define SASL_LINE_MAX	12288

struct sasl_srv;
struct sasl_cli;

/* Process-wide server set-up; once per process. */
struct sasl_srv_config {
	const char	*app;		/* Cyrus application: APP.conf */
	const char	*conf_path;	/* where APP.conf is; "": default */
	const char	*db_file;	/* sasldb file; "": as APP.conf says */
	const char	*mech_list;	/* "": as APP.conf says */
};

int	sasl_srv_init(const struct sasl_srv_config *, char **err);
/* smtpd_sasl_path, cyrus_sasl_config_path, smtpd_sasl_db_file,
 * smtpd_sasl_mechanism_list. */
int	sasl_srv_init_from_config(char **err);

/* One client session. */
struct sasl_srv_opts {
	const char	*service;	/* "smtp" */
	const char	*server_fqdn;	/* myhostname */
	const char	*user_realm;	/* smtpd_sasl_local_domain; "": none */
	const char	*local_addr;	/* "127.0.0.1;25", or NULL */
	const char	*remote_addr;
	const char	*security_options; /* "noanonymous, noplaintext" */
	int		 tls_bits;	/* external SSF: 0 without TLS */
	char *const	*proxy_logins;	/* may act for another authzid */
};

/* NULL with *err on an unknown security option or a Cyrus failure. */
struct sasl_srv *sasl_srv_new(const struct sasl_srv_opts *, char **err);
/* With service "smtp", myhostname, smtpd_sasl_local_domain,
 * smtpd_sasl_security_options (or smtpd_sasl_tls_security_options when
 * tls_bits > 0) and smtpd_sasl_proxy_logins. */
struct sasl_srv *sasl_srv_new_from_config(const char *remote_addr,
	    const char *local_addr, int tls_bits, char **err);
void	sasl_srv_free(struct sasl_srv *);

/* Mechanisms to offer, space separated ("PLAIN LOGIN"), "" for none;
 * allocated. */
char	*sasl_srv_mechs(struct sasl_srv *);

enum sasl_step {
	SASL_STEP_CONTINUE,	/* send "334 " and *out */
	SASL_STEP_OK,		/* authenticated */
	SASL_STEP_FAIL,		/* wrong credentials, or not allowed */
	SASL_STEP_BADINPUT,	/* malformed: base64, NULs, sequence */
	SASL_STEP_TOOLONG,	/* line over SASL_LINE_MAX */
	SASL_STEP_CANCELLED,	/* the client sent "*" */
	SASL_STEP_NOMECH,	/* mechanism unknown or not allowed now */
	SASL_STEP_TEMP,		/* the password store is not answering */
};

/*
 * Begin an exchange with mechanism mech and the optional initial
 * response (base64; "=" is the empty response). On CONTINUE *out is the
 * base64 challenge (allocated; may be ""); otherwise *out is NULL and
 * the exchange is over: a new AUTH may start again after a failure.
 */
enum sasl_step sasl_srv_start(struct sasl_srv *, const char *mech,
	    const char *initial, char **out);
/* The client's next line (base64, or "*" to cancel; a trailing CRLF is
 * ignored). */
enum sasl_step sasl_srv_step(struct sasl_srv *, const char *line,
	    char **out);
/* The authorization identity after SASL_STEP_OK, else NULL. */
const char *sasl_srv_username(const struct sasl_srv *);
/* The mechanism of the last exchange ("PLAIN"), or NULL. */
const char *sasl_srv_mech(const struct sasl_srv *);
/* Why the last exchange did not succeed, for the log; or NULL. */
const char *sasl_srv_reason(const struct sasl_srv *);

/* Client side. Once per process. */
int	sasl_cli_init(char **err);

struct sasl_cli_opts {
	const char	*service;	/* "smtp" */
	const char	*server_host;	/* the relay's name */
	const char	*username;
	const char	*password;
	const char	*security_options; /* "noplaintext, noanonymous" */
	int		 tls_bits;	/* external SSF: 0 without TLS */
	const char	*mech_filter;	/* "plain, login"; "": any */
};

struct sasl_cli *sasl_cli_new(const struct sasl_cli_opts *, char **err);
/* With service "smtp", smtp_sasl_security_options (or
 * smtp_sasl_tls_security_options when tls_bits > 0) and
 * smtp_sasl_mechanism_filter. */
struct sasl_cli *sasl_cli_new_from_config(const char *server_host,
	    const char *username, const char *password, int tls_bits,
	    char **err);
/*
 * Choose a mechanism among offered (the words after AUTH in the EHLO
 * reply) and make the initial response: *mech is the name to send,
 * *initial the base64 initial response ("=" for an empty one) or NULL
 * for none (allocated). 0, or -1 with *err.
 */
int	sasl_cli_start(struct sasl_cli *, const char *offered,
	    const char **mech, char **initial, char **err);
/* Answer the server's 334 text (base64). 0 with *response allocated,
 * or -1 with *err (then send "*" to cancel). */
int	sasl_cli_step(struct sasl_cli *, const char *challenge,
	    char **response, char **err);
void	sasl_cli_free(struct sasl_cli *);

/* Strict base64 (RFC 4648, padding required, nothing else allowed):
 * decode into *out (allocated, NUL-terminated, *len without the NUL).
 * 0, or -1 when text is not canonical base64. */
int	sasl_base64_decode(const char *text, size_t textlen, char **out,
	    size_t *len);
char	*sasl_base64_encode(const void *, size_t);

#endif
