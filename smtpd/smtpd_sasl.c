/*
 * smtpd_sasl - SMTP AUTH (RFC 4954) in the SMTP server, over lib/sasl
 * (Cyrus SASL).
 *
 * smtpd.c calls smtpd_sasl_init() before the jail (Cyrus loads its
 * plugins and reads its configuration there), smtpd_sasl_session_new()
 * when a session starts and again after STARTTLS (the mechanisms
 * depend on TLS), smtpd_sasl_ehlo() for the EHLO line and
 * smtpd_auth_cmd() for the command. smtpd_check.c reads
 * s->sasl_username for permit_sasl_authenticated and the sender login
 * checks; smtpd_data.c writes it into the log and the queue file.
 *
 * AUTH is refused inside a transaction and once authenticated (503),
 * before EHLO (503), and before TLS when smtpd_tls_auth_only says so
 * (530 when STARTTLS is there to be used). Every exchange line has
 * RFC 4954's length limit and smtpd_timeout; a longer line is thrown
 * away up to its end, never read as commands.
 *
 * Failed attempts are counted per client across processes
 * (smtpd_limit.c): the n-th failure within smtpd_auth_failure_window
 * waits (n - 1) * smtpd_auth_failure_sleep_time before its reply, and
 * after smtpd_auth_failure_limit failures the client may not try again
 * for smtpd_auth_failure_lockout_time, whatever password it brings.
 * The wait holds no lock, so other clients are never slowed by it.
 * A mechanism the client asks for that is not offered, and a password
 * store that does not answer, are not counted: neither guesses a
 * password.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "sasl.h"
#include "stream.h"
#include "tls.h"
#include "smtpd.h"

void
smtpd_sasl_init(void)
{
	struct sasl_srv *v;
	char *err = NULL;

	if (!smtpd_conf.sasl_enable)
		return;
	if (sasl_srv_init_from_config(&err) < 0)
		msg_fatal("smtpd_sasl_auth_enable: %s", err);
	/* Unknown security options are a configuration error: say so now,
	 * not to the first client. */
	if ((v = sasl_srv_new_from_config(NULL, NULL, 0, &err)) == NULL)
		msg_fatal("smtpd_sasl_security_options: %s", err);
	sasl_srv_free(v);
	if ((v = sasl_srv_new_from_config(NULL, NULL, 256, &err)) == NULL)
		msg_fatal("smtpd_sasl_tls_security_options: %s", err);
	sasl_srv_free(v);
}

void
smtpd_sasl_session_free(struct smtpd_session *s)
{
	sasl_srv_free(s->sasl);
	s->sasl = NULL;
	free(s->sasl_username);
	free(s->sasl_method);
	s->sasl_username = s->sasl_method = NULL;
}

void
smtpd_sasl_session_new(struct smtpd_session *s)
{
	struct tls_conn *c;
	char *remote, *err = NULL;
	int bits = 0;

	smtpd_sasl_session_free(s);
	if (!smtpd_conf.sasl_enable)
		return;
	if ((c = tls_stream_conn(s->in)) != NULL)
		bits = tls_conn_bits(c, NULL);
	/* Cyrus's "address;port" form. */
	remote = xasprintf("%s;%s", s->client_addr,
	    *s->client_port != '\0' ? s->client_port : "0");
	s->sasl = sasl_srv_new_from_config(remote, s->server_addr, bits, &err);
	if (s->sasl == NULL) {
		msg_warn("SASL: %s; AUTH is not offered to %s", err,
		    s->client);
		free(err);
	}
	free(remote);
}

int
smtpd_sasl_offer(const struct smtpd_session *s)
{
	return s->sasl != NULL && (!smtpd_conf.tls_auth_only ||
	    smtpd_tls_active(s));
}

char *
smtpd_sasl_ehlo(struct smtpd_session *s)
{
	char *mechs;

	if (!smtpd_sasl_offer(s))
		return NULL;
	mechs = sasl_srv_mechs(s->sasl);
	if (*mechs == '\0') {
		free(mechs);
		return NULL;
	}
	return mechs;
}

int
smtpd_sasl_mail_param(const struct smtpd_session *s, const char *value)
{
	(void)s;
	/* RFC 4954 section 5: AUTH=<> or an xtext mailbox. Tern keeps
	 * its own record of who authenticated and trusts no other. */
	if (!smtpd_conf.sasl_enable || value == NULL || *value == '\0')
		return -1;
	if (strcmp(value, "<>") == 0)
		return 0;
	for (const char *p = value; *p != '\0'; p++)
		if (*p < 33 || *p > 126 || *p == '=')
			return -1;
	return 0;
}

/*
 * Read the client's next exchange line into s->line, without CRLF.
 * 1: a line; 0: too long (already discarded); -1: the session is over.
 */
static int
smtpd_sasl_read(struct smtpd_session *s)
{
	size_t len;
	int r;

	smtpd_request_deadline(s);
	if (smtpd_flush(s) < 0)
		return -1;
	r = stream_read_line(s->in, &s->line, SASL_LINE_MAX + 2);
	if (r == STREAM_TOOLONG) {
		if ((r = stream_skip_line(s->in)) < 0) {
			smtpd_read_error(s, r, 0);
			return -1;
		}
		return 0;
	}
	if (r < 0) {
		smtpd_read_error(s, r, 0);
		return -1;
	}
	len = s->line.len;
	if (len > 0 && s->line.data[len - 1] == '\n')
		len--;
	if (len > 0 && s->line.data[len - 1] == '\r')
		len--;
	s->line.data[len] = '\0';
	s->line.len = len;
	return 1;
}

/* A failed attempt: count it, wait as the count says, then reply. */
static void
smtpd_sasl_failed(struct smtpd_session *s, enum sasl_step r,
    const char *mech, const char *reason)
{
	static const char *const replies[] = {
		[SASL_STEP_FAIL] = "535 5.7.8 Error: authentication failed",
		[SASL_STEP_BADINPUT] = "501 5.5.2 Error: malformed "
		    "authentication data",
		[SASL_STEP_TOOLONG] = "500 5.5.6 Authentication exchange "
		    "line is too long",
		[SASL_STEP_CANCELLED] = "501 5.7.0 Authentication aborted",
		[SASL_STEP_NOMECH] = "504 5.5.4 Unsupported authentication "
		    "mechanism",
		[SASL_STEP_TEMP] = "454 4.7.0 Temporary authentication "
		    "failure",
	};
	unsigned long delay = 0;
	long n;

	/* Postfix's shape, which fail2ban and friends know. */
	if (r == SASL_STEP_CANCELLED)
		msg_warn("%s: SASL %.40s authentication aborted", s->client,
		    mech);
	else
		msg_warn("%s: SASL %.40s authentication failed: %s", s->client,
		    mech, r == SASL_STEP_TEMP ? "temporary failure" :
		    r == SASL_STEP_NOMECH ? "no such mechanism" :
		    "authentication failure");
	if (reason != NULL)
		msg_info("%s: SASL %.40s: %s", s->client, mech, reason);
	if (r != SASL_STEP_NOMECH && r != SASL_STEP_TEMP) {
		s->auth_failures++;
		n = smtpd_authfail_record(s->client_addr);
		if (n < 0)	/* no shared table: this session's count */
			n = s->auth_failures;
		if (n > 1)
			delay = (unsigned long)(n - 1) *
			    smtpd_conf.auth_failure_sleep;
		if (smtpd_conf.auth_failure_limit > 0 &&
		    n >= smtpd_conf.auth_failure_limit)
			msg_warn("%s: %ld failed authentications: AUTH refused "
			    "for %lus", s->client, n,
			    smtpd_conf.auth_failure_lockout);
	}
	if (delay > 0) {
		if (smtpd_flush(s) < 0)
			return;
		sleep((unsigned)delay);
		/* The wait is ours, not the client's: the reply gets its
		 * own time. */
		stream_set_deadline(s->out, 0);
	}
	smtpd_reply(s, "%s", replies[r]);
}

void
smtpd_auth_cmd(struct smtpd_session *s, const char *args)
{
	char *copy, *mech, *initial, *out = NULL;
	const char *why = NULL;
	enum sasl_step r;
	unsigned long left;
	int got;

	if (s->sasl == NULL) {
		smtpd_reply(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (!smtpd_sasl_offer(s)) {
		if (smtpd_tls_offer(s))
			smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS "
			    "command first");
		else
			smtpd_reply(s, "503 5.5.1 Error: authentication not "
			    "enabled");
		return;
	}
	if (!s->esmtp) {
		smtpd_reply(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->sasl_username != NULL) {
		smtpd_reply(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->sender != NULL) {
		smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	copy = xstrdup(args);
	mech = copy;
	if ((initial = strchr(copy, ' ')) != NULL) {
		*initial++ = '\0';
		if (*initial == '\0' || strchr(initial, ' ') != NULL) {
			free(copy);
			smtpd_reply(s, "501 5.5.4 Syntax: AUTH mechanism "
			    "[initial-response]");
			return;
		}
	}
	if (*mech == '\0') {
		free(copy);
		smtpd_reply(s, "501 5.5.4 Syntax: AUTH mechanism "
		    "[initial-response]");
		return;
	}
	if ((left = smtpd_authfail_locked(s->client_addr)) > 0) {
		msg_warn("%s: SASL authentication refused: too many failed "
		    "authentications (%lus left)", s->client, left);
		free(copy);
		smtpd_reply(s, "454 4.7.0 Error: too many failed "
		    "authentications from %s; try again later",
		    s->client_addr);
		return;
	}
	r = sasl_srv_start(s->sasl, mech, initial, &out);
	while (r == SASL_STEP_CONTINUE) {
		/* An empty challenge is "334 " (RFC 4954 section 4). */
		smtpd_reply(s, "334 %s", out);
		free(out);
		out = NULL;
		if ((got = smtpd_sasl_read(s)) < 0) {
			free(copy);
			return;
		}
		/* Both leave Cyrus mid-exchange; the next AUTH starts
		 * it afresh. */
		if (got == 0) {
			r = SASL_STEP_TOOLONG;
			why = "exchange line too long";
		} else if (memchr(s->line.data, '\0', s->line.len) != NULL) {
			r = SASL_STEP_BADINPUT;	/* NUL is never base64 */
			why = "NUL byte in the exchange line";
		} else {
			r = sasl_srv_step(s->sasl, s->line.data, &out);
			explicit_bzero(s->line.data, s->line.len);
		}
	}
	free(out);
	if (r == SASL_STEP_OK) {
		s->sasl_username = xstrdup(sasl_srv_username(s->sasl));
		s->sasl_method = xstrdup(sasl_srv_mech(s->sasl) != NULL ?
		    sasl_srv_mech(s->sasl) : mech);
		smtpd_reply(s, "235 2.7.0 Authentication successful");
	} else
		smtpd_sasl_failed(s, r, sasl_srv_mech(s->sasl) != NULL ?
		    sasl_srv_mech(s->sasl) : mech,
		    why != NULL ? why : sasl_srv_reason(s->sasl));
	/* The initial response may hold a password. */
	explicit_bzero(copy, strlen(copy));
	free(copy);
}
