/*
 * smtpd - the SMTP server: RFC 5321 with ESMTP PIPELINING, SIZE,
 * 8BITMIME, ENHANCEDSTATUSCODES, SMTPUTF8, DSN, CHUNKING, STARTTLS
 * (smtpd_tls.c) and AUTH (smtpd_sasl.c).
 *
 * master starts it under single_server_main(); serve() runs one session
 * on the connection: greeting, commands, replies, then the
 * "disconnect from" line with Postfix's per-command counts. "smtpd -S"
 * runs one session on stdin/stdout for tests and debugging.
 *
 * This file holds the session loop and every command except DATA and
 * BDAT (smtpd_data.c); whether a sender or recipient is acceptable is
 * smtpd_check.c's business. Every read has smtpd_timeout per wait and,
 * with smtpd_per_request_deadline, a deadline for the whole request;
 * every line has a length limit. A client's mistake is a reply (and
 * counts towards smtpd_soft/hard_error_limit); a broken main.cf is
 * fatal at start; nothing a client sends can end the process early.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "num.h"
#include "queue.h"
#include "server.h"
#include "stream.h"
#include "strv.h"
#include "tls.h"
#include "smtpd.h"

struct smtpd_conf smtpd_conf;

/* Longest piece of unexpected input quoted in a log line. */
#define LOG_INPUT_MAX	100
/* After a fatal reply, how long and how much to read before closing,
 * so that the client sees the reply instead of a connection reset. */
#define HANGUP_DRAIN_MS		1000
#define HANGUP_DRAIN_BYTES	(256 * 1024)

/* Command flags. */
#define CMD_LAST	0x1	/* must end a pipelined group (RFC 2920) */
#define CMD_NO_SYNC	0x2	/* input may follow at once (BDAT data) */
#define CMD_JUNK	0x4	/* moves no mail: counted against the
				 * smtpd_junk_command_limit */
#define CMD_TLS		0x8	/* refused before STARTTLS at level
				 * encrypt */

struct smtpd_cmd {
	const char *name;
	enum smtpd_cmd_id id;
	int	 flags;
	void	(*fn)(struct smtpd_session *, const char *args);
};

static const char *const cmd_log_names[CMD_COUNT] = {
	"helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "bdat",
	"rset", "noop", "vrfy", "help", "quit", "unknown",
};

/* Code of the last reply, so the loop knows whether a command worked. */
static int last_reply_code;

/* ---- configuration ---- */

static void
smtpd_conf_load(void)
{
	enum tls_level level;
	const char *v;
	size_t limit;

	smtpd_conf.myhostname = xstrdup(config_str("myhostname"));
	smtpd_conf.banner = xstrdup(config_str("smtpd_banner"));
	smtpd_conf.mail_name = xstrdup(config_str("mail_name"));
	smtpd_conf.myorigin = xstrdup(config_str("myorigin"));
	smtpd_conf.queue_dir = xstrdup(config_str("queue_directory"));
	smtpd_conf.timeout_ms = config_time("smtpd_timeout") > 86400 ?
	    86400 * 1000 : (int)config_time("smtpd_timeout") * 1000;
	smtpd_conf.per_request_deadline =
	    config_bool("smtpd_per_request_deadline");
	smtpd_conf.min_data_rate = config_int("smtpd_min_data_rate");
	/* Room for the CRLF on top of the longest line allowed. */
	limit = (size_t)config_int("smtpd_line_length_limit");
	smtpd_conf.line_limit = limit + 2;
	smtpd_conf.content_line_limit = (size_t)config_int("line_length_limit");
	smtpd_conf.size_limit = config_size("message_size_limit");
	smtpd_conf.rcpt_limit = config_int("smtpd_recipient_limit");
	smtpd_conf.soft_error_limit = config_int("smtpd_soft_error_limit");
	smtpd_conf.hard_error_limit = config_int("smtpd_hard_error_limit");
	smtpd_conf.junk_limit = config_int("smtpd_junk_command_limit");
	smtpd_conf.error_sleep = config_time("smtpd_error_sleep_time");
	smtpd_conf.helo_required = config_bool("smtpd_helo_required");
	smtpd_conf.forbid_unauth_pipelining =
	    config_bool("smtpd_forbid_unauth_pipelining");
	smtpd_conf.disable_vrfy = config_bool("disable_vrfy_command");
	smtpd_conf.smtputf8_enable = config_bool("smtputf8_enable");
	smtpd_conf.strict_smtputf8 = config_bool("strict_smtputf8");
	smtpd_conf.conn_limit =
	    config_int("smtpd_client_connection_count_limit");
	v = config_str("smtpd_tls_security_level");
	if (tls_level_parse(v, &level) < 0 || level > TLS_LEV_ENCRYPT)
		msg_fatal("smtpd_tls_security_level = %s: expected none, may "
		    "or encrypt", v);
	smtpd_conf.tls_level = (int)level;
	smtpd_conf.tls_wrappermode = config_bool("smtpd_tls_wrappermode");
	smtpd_conf.tls_received_header =
	    config_bool("smtpd_tls_received_header");
	smtpd_conf.starttls_timeout_ms =
	    config_time("smtpd_starttls_timeout") > 86400 ? 86400 * 1000 :
	    (int)config_time("smtpd_starttls_timeout") * 1000;
	smtpd_conf.sasl_enable = config_bool("smtpd_sasl_auth_enable");
	smtpd_conf.tls_auth_only = config_bool("smtpd_tls_auth_only");
	smtpd_conf.auth_failure_limit = config_int("smtpd_auth_failure_limit");
	smtpd_conf.auth_failure_window =
	    config_time("smtpd_auth_failure_window");
	smtpd_conf.auth_failure_lockout =
	    config_time("smtpd_auth_failure_lockout_time");
	smtpd_conf.auth_failure_sleep =
	    config_time("smtpd_auth_failure_sleep_time");
	v = config_str("smtpd_forbid_bare_newline");
	if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "normalize") == 0)
		smtpd_conf.bare_lf = BARE_LF_NORMALIZE;
	else if (strcasecmp(v, "reject") == 0)
		smtpd_conf.bare_lf = BARE_LF_REJECT;
	else if (strcasecmp(v, "no") == 0)
		smtpd_conf.bare_lf = BARE_LF_ALLOW;
	else
		msg_fatal("smtpd_forbid_bare_newline = %s: expected yes, "
		    "normalize, reject or no", v);
}

/* ---- replies and logging ---- */

static void
smtpd_vreply(struct smtpd_session *s, int count_error, const char *fmt,
    va_list ap)
{
	struct buf text;
	const char *line, *nl;
	char code[4];

	buf_init(&text, BUF_NOMAX);
	buf_vprintf(&text, fmt, ap);
	if (text.len < 4 || text.data[3] != ' ')
		msg_panic("smtpd_reply: malformed reply \"%s\"", text.data);
	memcpy(code, text.data, 3);
	code[3] = '\0';
	last_reply_code = atoi(code);
	if (count_error && (code[0] == '4' || code[0] == '5')) {
		s->error_count++;
		/* Slow down a client that keeps making mistakes. */
		if (s->error_count >= smtpd_conf.soft_error_limit &&
		    smtpd_conf.error_sleep > 0) {
			(void)smtpd_flush(s);
			sleep((unsigned)smtpd_conf.error_sleep);
		}
	}
	/* The first line carries its own code; the others get it here. */
	line = text.data + 4;
	for (;;) {
		nl = strchr(line, '\n');
		if (nl == NULL) {
			stream_printf(s->out, "%s %s\r\n", code, line);
			break;
		}
		stream_printf(s->out, "%s-%.*s\r\n", code, (int)(nl - line),
		    line);
		line = nl + 1;
	}
	buf_free(&text);
}

void
smtpd_reply(struct smtpd_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtpd_vreply(s, 1, fmt, ap);
	va_end(ap);
}

/* A reply that is not the client's error (too many recipients). */
static void
smtpd_reply_nocount(struct smtpd_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
smtpd_reply_nocount(struct smtpd_session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtpd_vreply(s, 0, fmt, ap);
	va_end(ap);
}

int
smtpd_flush(struct smtpd_session *s)
{
	int r;

	if ((r = stream_flush(s->out)) < 0 && !s->done) {
		msg_info("lost connection after %s from %s", s->where,
		    s->client);
		s->done = 1;
	}
	return r;
}

char *
smtpd_log_envelope(struct smtpd_session *s, const char *rcpt)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	if (s->sender != NULL)
		buf_printf(&b, "from=<%s> ", s->sender);
	if (rcpt != NULL)
		buf_printf(&b, "to=<%s> ", rcpt);
	buf_printf(&b, "proto=%s", s->esmtp ? "ESMTP" : "SMTP");
	if (s->helo != NULL)
		buf_printf(&b, " helo=<%s>", s->helo);
	return buf_steal(&b);
}

/*
 * Unexpected input for a log line: printable, at most LOG_INPUT_MAX.
 * From an AUTH command on, nothing is shown but its mechanism: what
 * follows is a password, or the base64 lines that carry one.
 */
char *
smtpd_printable(const char *p, size_t n)
{
	struct buf b;

	buf_init(&b, BUF_NOMAX);
	for (size_t i = 0; i < n && i < LOG_INPUT_MAX; i++) {
		unsigned char c = (unsigned char)p[i];

		if ((i == 0 || p[i - 1] == '\n') && n - i >= 5 &&
		    strncasecmp(p + i, "AUTH ", 5) == 0) {
			size_t m = 0;

			/* p need not end in NUL: count within n. */
			while (i + 5 + m < n && m < 20 &&
			    p[i + 5 + m] > 32 && p[i + 5 + m] < 127)
				m++;

			buf_printf(&b, "AUTH %.*s [rest not logged]", (int)m,
			    p + i + 5);
			return buf_steal(&b);
		}
		if (c == '\r')
			buf_puts(&b, "\\r");
		else if (c == '\n')
			buf_puts(&b, "\\n");
		else if (c < 32 || c >= 127)
			buf_printf(&b, "\\x%02x", c);
		else
			buf_putc(&b, c);
	}
	if (n > LOG_INPUT_MAX)
		buf_puts(&b, "...");
	return buf_steal(&b);
}

void
smtpd_request_deadline(struct smtpd_session *s)
{
	stream_set_deadline(s->in,
	    smtpd_conf.per_request_deadline ? smtpd_conf.timeout_ms : 0);
}

void
smtpd_read_error(struct smtpd_session *s, int err, size_t data_bytes)
{
	char bytes[48] = "";

	if (strcmp(s->where, "DATA") == 0 || strcmp(s->where, "BDAT") == 0)
		snprintf(bytes, sizeof(bytes), " (%zu bytes)", data_bytes);
	if (err == STREAM_TIMEOUT) {
		msg_info("timeout after %s%s from %s", s->where, bytes,
		    s->client);
		/* The deadline has passed; give the reply its own time. */
		stream_set_deadline(s->out, 0);
		smtpd_reply_nocount(s, "421 4.4.2 %s Error: timeout exceeded",
		    smtpd_conf.myhostname);
		(void)stream_flush(s->out);
	} else if (err == STREAM_ERROR && s->in->err != 0)
		msg_info("lost connection after %s%s from %s: %s", s->where,
		    bytes, s->client, strerror(s->in->err));
	else
		msg_info("lost connection after %s%s from %s", s->where,
		    bytes, s->client);
	s->done = 1;
}

void
smtpd_hangup(struct smtpd_session *s)
{
	struct buf junk;
	size_t drained = 0;
	struct stat st;
	int r;

	stream_set_deadline(s->out, 0);
	(void)stream_flush(s->out);
	s->done = 1;
	if (s->standalone || fstat(s->in->fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return;
	/*
	 * Closing a socket with unread input makes the kernel send a reset,
	 * and the client may lose our last reply with it. Say we are done
	 * writing, then read and discard for a moment.
	 */
	(void)shutdown(s->in->fd, SHUT_WR);
	buf_init(&junk, 65536);
	stream_set_deadline(s->in, HANGUP_DRAIN_MS);
	while (drained < HANGUP_DRAIN_BYTES) {
		if ((r = stream_read_line(s->in, &junk, 65536)) < 0 &&
		    r != STREAM_TOOLONG)
			break;
		drained += junk.len;
	}
	buf_free(&junk);
}

/* ---- the transaction ---- */

void
smtpd_reset(struct smtpd_session *s)
{
	smtpd_data_abort(s);
	free(s->sender);
	free(s->body);
	free(s->ret);
	free(s->envid);
	for (size_t i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i].addr);
		free(s->rcpts[i].orcpt);
	}
	free(s->rcpts);
	s->sender = s->body = s->ret = s->envid = NULL;
	s->rcpts = NULL;
	s->nrcpts = s->rcpt_tries = s->rcpt_ok = 0;
	s->smtputf8 = 0;
	s->bdat_failed = 0;
}

/* Non-ASCII address without SMTPUTF8: refuse when strict_smtputf8. */
static int
smtpd_utf8_refused(struct smtpd_session *s, const char *addr)
{
	if (addr_is_ascii(addr) || s->smtputf8 || !smtpd_conf.strict_smtputf8)
		return 0;
	smtpd_reply(s, "553 5.6.7 <%s>: Must declare SMTPUTF8 to send "
	    "unicode address", addr);
	return 1;
}

/* Split "KEY=value KEY2" parameters; NULL-terminated, in place. */
static int
smtpd_params(char *p, char **keys, char **vals, size_t max, size_t *n)
{
	*n = 0;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		if (*n == max)
			return -1;
		keys[*n] = p;
		vals[*n] = NULL;
		while (*p != '\0' && *p != ' ' && *p != '=')
			p++;
		if (*p == '=') {
			*p++ = '\0';
			vals[*n] = p;
			while (*p != '\0' && *p != ' ')
				p++;
		}
		if (*p == ' ')
			*p++ = '\0';
		if (*keys[*n] == '\0')
			return -1;
		(*n)++;
	}
	return 0;
}

/* xtext (RFC 3461) that decodes to printable ASCII (space included, as
 * in a quoted local part), at most max bytes. */
static char *
smtpd_xtext(const char *v, size_t max)
{
	char *d;

	if (v == NULL || *v == '\0' || strlen(v) > max ||
	    (d = xtext_decode(v)) == NULL)
		return NULL;
	for (const char *p = d; *p != '\0'; p++)
		if (*p < 32 || *p > 126) {
			free(d);
			return NULL;
		}
	return d;
}

/* ---- commands ---- */

static void
helo_common(struct smtpd_session *s, const char *args, int esmtp)
{
	struct buf ext;
	char *mechs;

	if (*args == '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: %s hostname",
		    esmtp ? "EHLO" : "HELO");
		return;
	}
	/* A new greeting starts over, as RFC 5321 4.1.4 says. */
	smtpd_reset(s);
	free(s->helo);
	s->helo = xstrdup(args);
	s->esmtp = esmtp;
	if (!esmtp) {
		smtpd_reply(s, "250 %s", smtpd_conf.myhostname);
		return;
	}
	buf_init(&ext, BUF_NOMAX);
	buf_printf(&ext, "250 %s\nPIPELINING\n", smtpd_conf.myhostname);
	if (smtpd_conf.size_limit > 0)
		buf_printf(&ext, "SIZE %zu\n", smtpd_conf.size_limit);
	else
		buf_puts(&ext, "SIZE\n");
	if (!smtpd_conf.disable_vrfy)
		buf_puts(&ext, "VRFY\n");
	if (smtpd_tls_offer(s))
		buf_puts(&ext, "STARTTLS\n");
	if ((mechs = smtpd_sasl_ehlo(s)) != NULL) {
		buf_printf(&ext, "AUTH %s\n", mechs);
		free(mechs);
	}
	buf_puts(&ext, "ENHANCEDSTATUSCODES\n8BITMIME\nDSN\n");
	if (smtpd_conf.smtputf8_enable)
		buf_puts(&ext, "SMTPUTF8\n");
	buf_puts(&ext, "CHUNKING");
	smtpd_reply(s, "%s", buf_cstr(&ext));
	buf_free(&ext);
}

static void
helo_cmd(struct smtpd_session *s, const char *args)
{
	helo_common(s, args, 0);
}

static void
ehlo_cmd(struct smtpd_session *s, const char *args)
{
	helo_common(s, args, 1);
}

/* The MAIL FROM parameters; 0, or -1 after replying. */
static int
mail_params(struct smtpd_session *s, char *p)
{
	char *keys[8], *vals[8];
	size_t n;
	unsigned long size;

	if (smtpd_params(p, keys, vals, 8, &n) < 0) {
		smtpd_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address> "
		    "[parameters]");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const char *k = keys[i], *v = vals[i];

		for (size_t j = 0; j < i; j++)
			if (strcasecmp(keys[j], k) == 0) {
				smtpd_reply(s, "501 5.5.4 Error: duplicate "
				    "%s parameter", k);
				return -1;
			}
		if (strcasecmp(k, "SIZE") == 0) {
			if (v == NULL || parse_ulong(v, 0, (unsigned long)-1,
			    &size) < 0) {
				smtpd_reply(s, "501 5.5.4 Bad message size "
				    "syntax");
				return -1;
			}
			if (smtpd_conf.size_limit > 0 &&
			    size > smtpd_conf.size_limit) {
				smtpd_reply(s, "552 5.3.4 Message size exceeds "
				    "fixed limit");
				return -1;
			}
		} else if (strcasecmp(k, "BODY") == 0) {
			if (v == NULL || (strcasecmp(v, "7BIT") != 0 &&
			    strcasecmp(v, "8BITMIME") != 0)) {
				smtpd_reply(s, "501 5.5.4 Unsupported BODY "
				    "parameter value");
				return -1;
			}
			s->body = xstrdup(strcasecmp(v, "7BIT") == 0 ?
			    "7BIT" : "8BITMIME");
		} else if (strcasecmp(k, "SMTPUTF8") == 0 &&
		    smtpd_conf.smtputf8_enable) {
			if (v != NULL) {
				smtpd_reply(s, "501 5.5.4 Bad SMTPUTF8 "
				    "parameter syntax");
				return -1;
			}
			s->smtputf8 = 1;
		} else if (strcasecmp(k, "RET") == 0) {
			if (v == NULL || (strcasecmp(v, "FULL") != 0 &&
			    strcasecmp(v, "HDRS") != 0)) {
				smtpd_reply(s, "501 5.5.4 Bad RET parameter "
				    "syntax");
				return -1;
			}
			s->ret = xstrdup(strcasecmp(v, "FULL") == 0 ?
			    "FULL" : "HDRS");
		} else if (strcasecmp(k, "AUTH") == 0 &&
		    smtpd_conf.sasl_enable) {
			if (smtpd_sasl_mail_param(s, v) < 0) {
				smtpd_reply(s, "501 5.5.4 Bad AUTH parameter "
				    "syntax");
				return -1;
			}
		} else if (strcasecmp(k, "ENVID") == 0) {
			/* RFC 3461 4.4: at most 100 characters. */
			if ((s->envid = smtpd_xtext(v, 100)) == NULL) {
				smtpd_reply(s, "501 5.5.4 Bad ENVID parameter "
				    "syntax");
				return -1;
			}
		} else {
			smtpd_reply(s, "555 5.5.4 Unsupported option: %s", k);
			return -1;
		}
	}
	return 0;
}

static void
mail_cmd(struct smtpd_session *s, const char *args)
{
	char *addr, *rest, *log;
	const char *end, *why, *p;

	if (smtpd_conf.helo_required && s->helo == NULL) {
		smtpd_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->sender != NULL) {
		smtpd_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (strncasecmp(args, "FROM:", 5) != 0) {
		smtpd_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	for (p = args + 5; *p == ' '; p++)
		;
	if (addr_parse_path(p, ADDR_NULL_OK | ADDR_UTF8_OK, &addr, &end,
	    &why) < 0 || (*end != '\0' && *end != ' ')) {
		if (addr != NULL)
			free(addr);
		smtpd_reply(s, "501 5.1.7 Bad sender address syntax");
		return;
	}
	/* Parameters decide the transaction's options; keep them only if
	 * the whole command is good. */
	s->sender = addr;
	rest = xstrdup(end);
	if (mail_params(s, rest) < 0 || smtpd_utf8_refused(s, addr)) {
		free(rest);
		if (last_reply_code == 552) {
			log = smtpd_log_envelope(s, NULL);
			msg_info("NOQUEUE: reject: MAIL from %s: 552 5.3.4 "
			    "Message size exceeds fixed limit; %s",
			    s->client, log);
			free(log);
		}
		smtpd_reset(s);
		return;
	}
	free(rest);
	smtpd_reply(s, "250 2.1.0 Ok");
}

/* NOTIFY=SUCCESS,FAILURE,DELAY or NEVER; 0 or -1. */
static int
parse_notify(const char *v, int *notify)
{
	char **words;
	int bits = 0, ok = 1;

	if (v == NULL || *v == '\0')
		return -1;
	words = strv_split(v, ",");
	for (size_t i = 0; words[i] != NULL && ok; i++) {
		if (strcasecmp(words[i], "NEVER") == 0)
			bits |= NOTIFY_NEVER;
		else if (strcasecmp(words[i], "SUCCESS") == 0)
			bits |= NOTIFY_SUCCESS;
		else if (strcasecmp(words[i], "FAILURE") == 0)
			bits |= NOTIFY_FAILURE;
		else if (strcasecmp(words[i], "DELAY") == 0)
			bits |= NOTIFY_DELAY;
		else
			ok = 0;
	}
	strv_free(words);
	if (!ok || bits == 0 || ((bits & NOTIFY_NEVER) && bits != NOTIFY_NEVER))
		return -1;
	*notify = bits;
	return 0;
}

/* ORCPT=addr-type;xtext into "type;address"; NULL when malformed. */
static char *
parse_orcpt(const char *v)
{
	const char *semi;
	char *type, *addr, *r;

	if (v == NULL || (semi = strchr(v, ';')) == NULL || semi == v ||
	    strlen(v) > 500)
		return NULL;
	for (const char *p = v; p < semi; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-'))
			return NULL;
	type = xstrndup(v, (size_t)(semi - v));
	if (strcasecmp(type, "rfc822") == 0) {
		if ((addr = smtpd_xtext(semi + 1, 500)) == NULL) {
			free(type);
			return NULL;
		}
		r = xasprintf("rfc822;%s", addr);
		free(addr);
	} else {
		/* utf-8 (RFC 6533) and others: kept as the client sent it. */
		if (semi[1] == '\0') {
			free(type);
			return NULL;
		}
		r = xasprintf("%s;%s", addr_lowercase(type), semi + 1);
	}
	free(type);
	return r;
}

static void
rcpt_cmd(struct smtpd_session *s, const char *args)
{
	char *addr, *rest, *keys[4], *vals[4], *orcpt = NULL, *reply, *log;
	const char *end, *why, *p;
	struct smtpd_rcpt *r;
	int notify = 0;
	size_t n;

	if (s->sender == NULL) {
		smtpd_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (strncasecmp(args, "TO:", 3) != 0) {
		smtpd_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	for (p = args + 3; *p == ' '; p++)
		;
	if (addr_parse_path(p, ADDR_POSTMASTER_OK | ADDR_UTF8_OK, &addr,
	    &end, &why) < 0 || (*end != '\0' && *end != ' ')) {
		free(addr);
		smtpd_reply(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	rest = xstrdup(end);
	if (smtpd_params(rest, keys, vals, 4, &n) < 0) {
		smtpd_reply(s, "501 5.5.4 Syntax: RCPT TO:<address> "
		    "[parameters]");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(keys[i], "NOTIFY") == 0 && notify == 0) {
			if (parse_notify(vals[i], &notify) < 0) {
				smtpd_reply(s, "501 5.5.4 Error: Bad NOTIFY "
				    "parameter syntax");
				goto out;
			}
		} else if (strcasecmp(keys[i], "ORCPT") == 0 && orcpt == NULL) {
			if ((orcpt = parse_orcpt(vals[i])) == NULL) {
				smtpd_reply(s, "501 5.5.4 Error: Bad ORCPT "
				    "parameter syntax");
				goto out;
			}
		} else {
			smtpd_reply(s, "555 5.5.4 Unsupported option: %s",
			    keys[i]);
			goto out;
		}
	}
	if (smtpd_utf8_refused(s, addr))
		goto out;
	s->rcpt_tries++;
	/* Duplicates count too, or a client could keep one transaction
	 * going forever with the same address. */
	if ((long)s->rcpt_ok >= smtpd_conf.rcpt_limit) {
		/* Clients pipeline on past the limit; that is no error. */
		smtpd_reply_nocount(s, "452 4.5.3 Error: too many recipients");
		goto out;
	}
	/* RFC 5321 <Postmaster>: ours, at $myorigin. */
	if (strchr(addr, '@') == NULL) {
		char *full = xasprintf("%s@%s", addr, smtpd_conf.myorigin);

		free(addr);
		addr = full;
	}
	if ((reply = smtpd_check_rcpt(s, addr)) != NULL) {
		log = smtpd_log_envelope(s, addr);
		msg_info("NOQUEUE: reject: RCPT from %s: %s; %s", s->client,
		    reply, log);
		smtpd_reply(s, "%s", reply);
		free(log);
		free(reply);
		goto out;
	}
	/* The same recipient twice gets one copy, as in Postfix. */
	for (size_t i = 0; i < s->nrcpts; i++)
		if (strcmp(s->rcpts[i].addr, addr) == 0) {
			s->rcpt_ok++;
			smtpd_reply(s, "250 2.1.5 Ok");
			goto out;
		}
	s->rcpts = xreallocarray(s->rcpts, s->nrcpts + 1, sizeof(*s->rcpts));
	r = &s->rcpts[s->nrcpts++];
	s->rcpt_ok++;
	r->addr = addr;
	r->orcpt = orcpt;
	r->notify = notify;
	addr = orcpt = NULL;
	smtpd_reply(s, "250 2.1.5 Ok");
out:
	free(addr);
	free(orcpt);
	free(rest);
}

static void
rset_cmd(struct smtpd_session *s, const char *args)
{
	if (*args != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtpd_reset(s);
	smtpd_reply(s, "250 2.0.0 Ok");
}

static void
noop_cmd(struct smtpd_session *s, const char *args)
{
	(void)args;
	smtpd_reply(s, "250 2.0.0 Ok");
}

static void
quit_cmd(struct smtpd_session *s, const char *args)
{
	(void)args;
	smtpd_reply(s, "221 2.0.0 Bye");
	s->done = 1;
}

static void
help_cmd(struct smtpd_session *s, const char *args)
{
	(void)args;
	smtpd_reply(s, "214 2.0.0 Commands: HELO EHLO%s%s MAIL RCPT DATA "
	    "BDAT RSET NOOP QUIT HELP%s",
	    smtpd_tls_offer(s) ? " STARTTLS" : "",
	    smtpd_sasl_offer(s) ? " AUTH" : "",
	    smtpd_conf.disable_vrfy ? "" : " VRFY");
}

static void
vrfy_cmd(struct smtpd_session *s, const char *args)
{
	if (smtpd_conf.disable_vrfy) {
		smtpd_reply(s, "502 5.5.1 VRFY command is disabled");
		return;
	}
	if (*args == '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	/* Saying who exists only helps address harvesters (RFC 5321 7.3). */
	smtpd_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message "
	    "and attempt delivery");
}

static const struct smtpd_cmd smtpd_cmds[] = {
	{ "HELO", CMD_HELO, CMD_LAST, helo_cmd },
	{ "EHLO", CMD_EHLO, CMD_LAST, ehlo_cmd },
	/* Input after STARTTLS is thrown away by the command itself. */
	{ "STARTTLS", CMD_STARTTLS, CMD_NO_SYNC, smtpd_starttls_cmd },
	{ "AUTH", CMD_AUTH, CMD_TLS, smtpd_auth_cmd },
	{ "MAIL", CMD_MAIL, CMD_TLS, mail_cmd },
	{ "RCPT", CMD_RCPT, CMD_TLS, rcpt_cmd },
	{ "DATA", CMD_DATA, CMD_LAST | CMD_TLS, smtpd_data_cmd },
	{ "BDAT", CMD_BDAT, CMD_NO_SYNC, smtpd_bdat_cmd },
	{ "RSET", CMD_RSET, CMD_JUNK, rset_cmd },
	{ "NOOP", CMD_NOOP, CMD_LAST | CMD_JUNK, noop_cmd },
	{ "VRFY", CMD_VRFY, CMD_LAST | CMD_JUNK | CMD_TLS, vrfy_cmd },
	{ "HELP", CMD_HELP, CMD_LAST | CMD_JUNK, help_cmd },
	{ "QUIT", CMD_QUIT, CMD_NO_SYNC, quit_cmd },
	{ NULL, CMD_UNKNOWN, 0, NULL },
};

/* Words that show a web client or proxy abuse, not an SMTP client. */
static int
smtpd_non_smtp(const char *verb)
{
	static const char *const words[] = { "GET", "POST", "CONNECT", "PUT",
		"HEAD", "OPTIONS", "USER", NULL };
	size_t n = strlen(verb);

	for (size_t i = 0; words[i] != NULL; i++)
		if (strcasecmp(verb, words[i]) == 0)
			return 1;
	/* "Host:", "User-Agent:"... */
	return n > 1 && verb[n - 1] == ':';
}

/* ---- the session ---- */

/*
 * Pipelining that was not offered (RFC 2920): input already waiting
 * after a command that must end a group, or after any command when the
 * client did not say EHLO. Returns 1 when the session must end.
 */
static int
smtpd_sync_check(struct smtpd_session *s, const struct smtpd_cmd *cmd,
    const char *verb)
{
	char *text;

	if ((cmd->flags & CMD_NO_SYNC) || stream_pending(s->in) == 0 ||
	    (s->esmtp && !(cmd->flags & CMD_LAST)))
		return 0;
	text = smtpd_printable(s->in->in.data, s->in->in.len);
	msg_info("improper command pipelining after %s from %s: %s",
	    cmd->fn != NULL ? cmd->name : verb, s->client, text);
	free(text);
	if (!smtpd_conf.forbid_unauth_pipelining) {
		s->bad_pipelining = 1;
		return 0;
	}
	smtpd_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
	smtpd_hangup(s);
	return 1;
}

/* A client that talks before the greeting is not waiting for replies. */
static int
smtpd_pregreet(struct smtpd_session *s)
{
	char *text;
	int r;

	if (!smtpd_conf.forbid_unauth_pipelining ||
	    stream_wait_input(s->in, 0) <= 0)
		return 0;
	r = stream_read_line(s->in, &s->line, LOG_INPUT_MAX);
	if (r == STREAM_EOF || (r < 0 && r != STREAM_TOOLONG))
		return 0;	/* hung up at once: the read loop says so */
	text = smtpd_printable(s->line.data, s->line.len);
	msg_info("improper command pipelining after CONNECT from %s: %s",
	    s->client, text);
	free(text);
	smtpd_reply(s, "554 5.5.0 Error: SMTP protocol synchronization");
	smtpd_hangup(s);
	return 1;
}

/*
 * Read one command line into s->line, without its line ending.
 * 1: a line to handle; 0: handled here (too long, bare LF...); -1: the
 * session is over.
 */
static int
smtpd_read_command(struct smtpd_session *s)
{
	char *p;
	size_t len;
	int r;

	smtpd_request_deadline(s);
	/* Replies to a pipelined group go out together (RFC 2920 3.2). */
	if ((s->in->in.len == 0 ||
	    memchr(s->in->in.data, '\n', s->in->in.len) == NULL) &&
	    smtpd_flush(s) < 0)
		return -1;
	r = stream_read_line(s->in, &s->line, smtpd_conf.line_limit);
	if (r == STREAM_TOOLONG) {
		smtpd_reply(s, "500 5.5.2 Error: line too long");
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
	p = s->line.data;
	len = s->line.len;
	if (len > 0 && p[len - 1] == '\n') {
		len--;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		else if (smtpd_conf.bare_lf == BARE_LF_REJECT &&
		    !s->bare_lf_excluded) {
			msg_info("disconnect: bare <LF> received from %s "
			    "after %s", s->client, s->where);
			smtpd_reply(s, "521 5.5.2 %s Error: bare <LF> received",
			    smtpd_conf.myhostname);
			smtpd_hangup(s);
			return -1;
		}
	}
	p[len] = '\0';
	s->line.len = len;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\t')
			p[i] = ' ';
		else if (c < 32 || c == 127) {
			smtpd_reply(s, "500 5.5.2 Error: bad syntax");
			return 0;
		}
	}
	if (!addr_utf8_valid(p, len)) {
		smtpd_reply(s, "500 5.5.2 Error: bad UTF-8 syntax");
		return 0;
	}
	return 1;
}

static void
smtpd_command(struct smtpd_session *s)
{
	const struct smtpd_cmd *cmd;
	char *p = s->line.data, *verb, *args, *end;

	while (*p == ' ')
		p++;
	verb = p;
	while (*p != '\0' && *p != ' ')
		p++;
	if (*p != '\0')
		*p++ = '\0';
	while (*p == ' ')
		p++;
	args = p;
	for (end = args + strlen(args); end > args && end[-1] == ' '; end--)
		end[-1] = '\0';

	for (cmd = smtpd_cmds; cmd->name != NULL; cmd++)
		if (strcasecmp(verb, cmd->name) == 0)
			break;
	if (smtpd_sync_check(s, cmd, *verb != '\0' ? verb : "UNKNOWN"))
		return;
	s->cmd_total[cmd->id]++;
	if (cmd->fn == NULL) {
		s->where = "UNKNOWN";
		if (*verb == '\0') {
			smtpd_reply(s, "500 5.5.2 Error: bad syntax");
		} else if (smtpd_non_smtp(verb)) {
			char *line = xasprintf("%s %s", verb, args);
			char *text = smtpd_printable(line, strlen(line));

			free(line);

			msg_warn("non-SMTP command from %s: %s", s->client,
			    text);
			free(text);
			smtpd_reply(s, "221 2.7.0 Error: non-SMTP command; "
			    "goodbye");
			smtpd_hangup(s);
		} else
			smtpd_reply(s, "502 5.5.2 Error: command not "
			    "recognized");
		return;
	}
	s->where = cmd->name;
	/* A client that only keeps the line open runs into the error
	 * limit, however quickly it answers. */
	if ((cmd->flags & CMD_JUNK) && ++s->junk_count > smtpd_conf.junk_limit)
		s->error_count++;
	last_reply_code = 0;
	if ((cmd->flags & CMD_TLS) && smtpd_tls_enforce(s))
		return;
	cmd->fn(s, args);
	if (last_reply_code > 0 && last_reply_code < 400)
		s->cmd_ok[cmd->id]++;
}

/* Our end of the connection, "addr;port" as Cyrus SASL wants it. */
static void
smtpd_local(struct smtpd_session *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	const void *a = NULL;
	unsigned port = 0;

	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		a = &sin->sin_addr;
		port = ntohs(sin->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		a = &sin6->sin6_addr;
		port = ntohs(sin6->sin6_port);
	}
	if (a != NULL && inet_ntop(ss.ss_family, a, host, sizeof(host)) !=
	    NULL)
		s->server_addr = xasprintf("%s;%u", host, port);
}

/* Who is on the other end: address, and a name until DNS comes. */
static void
smtpd_peer(struct smtpd_session *s, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN], port[16] = "";
	const char *addr = NULL, *env;
	int loopback = 0;

	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		ss.ss_family = AF_UNSPEC;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		addr = inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		snprintf(port, sizeof(port), "%u", ntohs(sin->sin_port));
		loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		snprintf(port, sizeof(port), "%u", ntohs(sin6->sin6_port));
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			addr = inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12],
			    host, sizeof(host));
			loopback = sin6->sin6_addr.s6_addr[12] == 127;
		} else {
			addr = inet_ntop(AF_INET6, &sin6->sin6_addr, host,
			    sizeof(host));
			loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
		}
	}
	if (addr == NULL) {
		/*
		 * Not an inet socket: -S mode. Tests may say who the client
		 * is; otherwise it is this host.
		 */
		struct in_addr a4;
		struct in6_addr a6;

		env = s->standalone ? getenv("TERN_SMTPD_CLIENT_ADDR") : NULL;
		addr = env != NULL && *env != '\0' ? env : "127.0.0.1";
		if (inet_pton(AF_INET, addr, &a4) == 1)
			loopback = (ntohl(a4.s_addr) >> 24) == 127;
		else if (inet_pton(AF_INET6, addr, &a6) == 1)
			loopback = IN6_IS_ADDR_LOOPBACK(&a6);
		else
			msg_fatal("TERN_SMTPD_CLIENT_ADDR=%s is no address",
			    addr);
	}
	s->client_addr = xstrdup(addr);
	s->client_port = xstrdup(port);
	/* Reverse DNS comes with lib/dns; until then, as Postfix logs an
	 * address without a verified name. */
	s->client_name = xstrdup(loopback ? "localhost" : "unknown");
	s->client = xasprintf("%s[%s]", s->client_name, s->client_addr);
	smtpd_local(s, fd);
}

static void
smtpd_disconnect_log(struct smtpd_session *s)
{
	struct buf b;
	size_t ok = 0, total = 0;

	buf_init(&b, BUF_NOMAX);
	for (int i = 0; i < CMD_COUNT; i++) {
		if (s->cmd_total[i] == 0)
			continue;
		ok += s->cmd_ok[i];
		total += s->cmd_total[i];
		if (s->cmd_ok[i] == s->cmd_total[i])
			buf_printf(&b, " %s=%zu", cmd_log_names[i],
			    s->cmd_total[i]);
		else
			buf_printf(&b, " %s=%zu/%zu", cmd_log_names[i],
			    s->cmd_ok[i], s->cmd_total[i]);
	}
	if (ok == total)
		buf_printf(&b, " commands=%zu", total);
	else
		buf_printf(&b, " commands=%zu/%zu", ok, total);
	msg_info("disconnect from %s%s", s->client, buf_cstr(&b));
	buf_free(&b);
}

static void
smtpd_session_run(struct smtpd_session *s)
{
	int limited = 0, r;

	msg_info("connect from %s", s->client);
	if (smtpd_conf.conn_limit > 0 && !s->standalone &&
	    !smtpd_check_addr_list("smtpd_client_event_limit_exceptions",
	    s->client_addr)) {
		if (smtpd_limit_acquire(s->client_addr) < 0) {
			msg_warn("Connection concurrency limit exceeded: "
			    "%ld from %s for service %s",
			    smtpd_conf.conn_limit, s->client,
			    server_service_name());
			smtpd_reply(s, "421 4.7.0 %s Error: too many "
			    "connections from %s", smtpd_conf.myhostname,
			    s->client_addr);
			smtpd_hangup(s);
			return;
		}
		limited = 1;
	}
	/*
	 * On a wrappermode port the client's first bytes are its TLS
	 * hello, not early talk; the handshake comes before the greeting.
	 */
	if (smtpd_conf.tls_wrappermode) {
		if (smtpd_tls_wrapper_start(s) < 0)
			goto out;
	} else if (smtpd_pregreet(s))
		goto out;
	smtpd_sasl_session_new(s);
	smtpd_reply(s, "220 %s", smtpd_conf.banner);
	while (!s->done) {
		if (s->error_count >= smtpd_conf.hard_error_limit) {
			msg_info("too many errors after %s from %s", s->where,
			    s->client);
			smtpd_reply(s, "421 4.7.0 %s Error: too many errors",
			    smtpd_conf.myhostname);
			smtpd_hangup(s);
			break;
		}
		if ((r = smtpd_read_command(s)) < 0)
			break;
		if (r > 0)
			smtpd_command(s);
	}
	(void)smtpd_flush(s);
out:
	if (limited)
		smtpd_limit_release();
}

static void
smtpd_serve(int in_fd, int out_fd)
{
	struct smtpd_session *s;
	int ifd, ofd;

	/* The streams own their descriptors; the caller keeps its own. */
	if ((ifd = dup(in_fd)) < 0 ||
	    (out_fd != in_fd && (ofd = dup(out_fd)) < 0)) {
		msg_warn("dup: %s", strerror(errno));
		if (ifd >= 0)
			close(ifd);
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->standalone = server_standalone();
	s->in = stream_new(ifd, smtpd_conf.timeout_ms);
	s->out = out_fd == in_fd ? s->in : stream_new(ofd,
	    smtpd_conf.timeout_ms);
	s->where = "CONNECT";
	buf_init(&s->line, BUF_NOMAX);
	smtpd_peer(s, in_fd);
	s->in_mynetworks = smtpd_check_addr_list("mynetworks", s->client_addr);
	s->bare_lf_excluded = smtpd_check_addr_list(
	    "smtpd_forbid_bare_newline_exclusions", s->client_addr);

	smtpd_tls_session_start(s);
	smtpd_session_run(s);

	smtpd_reset(s);
	smtpd_disconnect_log(s);
	smtpd_sasl_session_free(s);
	smtpd_tls_session_end(s);
	if (s->out != s->in)
		stream_free(s->out);
	stream_free(s->in);
	buf_free(&s->line);
	free(s->helo);
	free(s->queue_id);
	free(s->client_name);
	free(s->client_addr);
	free(s->client_port);
	free(s->client);
	free(s->server_addr);
	free(s);
}

static void
smtpd_pre_jail(void)
{
	smtpd_conf_load();
	/* Tables and the slot file may live outside a chroot. */
	smtpd_check_init();
	smtpd_limit_init();
	/* Keys, Cyrus's plugins and its password files may be readable
	 * by root only, or live outside a chroot. */
	smtpd_tls_init();
	smtpd_sasl_init();
	smtpd_authfail_init();
}

/* After a chroot the queue is "/": the skeleton has said so in main.cf. */
static void
smtpd_post_jail(void)
{
	free(smtpd_conf.queue_dir);
	smtpd_conf.queue_dir = xstrdup(config_str("queue_directory"));
}

int
main(int argc, char **argv)
{
	static const struct server_opts opts = {
		.program = "smtpd",
		.pre_jail = smtpd_pre_jail,
		.post_jail = smtpd_post_jail,
		.serve = smtpd_serve,
		.unprivileged_ok = 1,
	};

	return single_server_main(argc, argv, &opts);
}
