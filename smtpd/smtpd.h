/*
 * smtpd - the SMTP server's shared state (DESIGN.md §2).
 *
 * One smtpd process serves one client at a time (single_server_main).
 * The code is split by what an RFC 5321 reader looks for:
 *	smtpd.c		main(), the session loop, the commands and replies
 *	smtpd_check.c	restrictions: who may send what to whom
 *	smtpd_data.c	DATA and BDAT: the message into the queue
 *	smtpd_tls.c	STARTTLS and implicit TLS (smtpd_tls_wrappermode)
 *	smtpd_sasl.c	AUTH
 *	smtpd_limit.c	per-client counts across processes: connections,
 *			failed authentications
 *
 * The session reads and writes through one struct stream per
 * direction (the same one on a socket); a later STARTTLS replaces the
 * stream's transport and nothing else changes. Replies go through
 * smtpd_reply(), which counts errors and applies the error sleep.
 * Failures towards the client are SMTP replies; only a broken
 * configuration is fatal, and only at start.
 */
#ifndef TERN_SMTPD_H
#define TERN_SMTPD_H

#include <stddef.h>

#include "buf.h"

struct stream;
struct queue_writer;
struct sasl_srv;

/* smtpd_forbid_bare_newline */
enum smtpd_bare_lf {
	BARE_LF_ALLOW,		/* "no": a bare LF ends a content line */
	BARE_LF_NORMALIZE,	/* "yes", "normalize": commands ok, DATA no */
	BARE_LF_REJECT,		/* "reject": refused in commands and DATA */
};

/* main.cf values, read once per process (a reload starts new ones). */
struct smtpd_conf {
	char	*myhostname;
	char	*banner;
	char	*mail_name;
	char	*myorigin;
	char	*queue_dir;
	int	 timeout_ms;		/* smtpd_timeout */
	int	 per_request_deadline;
	long	 min_data_rate;		/* bytes per second */
	size_t	 line_limit;		/* smtpd_line_length_limit */
	size_t	 content_line_limit;	/* line_length_limit */
	size_t	 size_limit;		/* message_size_limit, 0: none */
	long	 rcpt_limit;
	long	 soft_error_limit;
	long	 hard_error_limit;
	long	 junk_limit;		/* smtpd_junk_command_limit */
	unsigned long error_sleep;	/* seconds */
	int	 helo_required;
	int	 forbid_unauth_pipelining;
	int	 disable_vrfy;
	int	 smtputf8_enable;
	int	 strict_smtputf8;
	enum smtpd_bare_lf bare_lf;
	long	 conn_limit;	/* smtpd_client_connection_count_limit */
	/* TLS */
	int	 tls_level;	/* enum tls_level: none, may or encrypt */
	int	 tls_wrappermode;
	int	 tls_received_header;
	int	 starttls_timeout_ms;
	/* AUTH */
	int	 sasl_enable;
	int	 tls_auth_only;
	long	 auth_failure_limit;	/* 0: no limit */
	unsigned long auth_failure_window;	/* seconds */
	unsigned long auth_failure_lockout;	/* seconds */
	unsigned long auth_failure_sleep;	/* seconds */
};

extern struct smtpd_conf smtpd_conf;

struct smtpd_rcpt {
	char	*addr;		/* canonical, as stored in the queue */
	char	*orcpt;		/* "rfc822;addr" or NULL */
	int	 notify;	/* NOTIFY_* bits from queue.h */
};

/* Commands counted for the "disconnect from" line, in Postfix's order. */
enum smtpd_cmd_id {
	CMD_HELO, CMD_EHLO, CMD_STARTTLS, CMD_AUTH, CMD_MAIL, CMD_RCPT,
	CMD_DATA, CMD_BDAT, CMD_RSET, CMD_NOOP, CMD_VRFY, CMD_HELP, CMD_QUIT,
	CMD_UNKNOWN,
	CMD_COUNT
};

struct smtpd_session {
	struct stream *in;
	struct stream *out;	/* == in on a socket */
	int	 standalone;	/* -S: stdin/stdout */

	char	*client_name;	/* "localhost" or "unknown" until lib/dns */
	char	*client_addr;
	char	*client_port;
	char	*client;	/* "name[addr]" for logs */
	char	*server_addr;	/* "addr;port" of our end, or NULL */
	int	 in_mynetworks;
	int	 bare_lf_excluded;

	char	*helo;		/* NULL until HELO/EHLO */
	int	 esmtp;		/* the client said EHLO */
	int	 bad_pipelining;	/* seen, when not forbidden */
	const char *where;	/* last command, for "... after X from" */

	/* AUTH: the SASL state, and who the client is once it worked. */
	struct sasl_srv *sasl;
	char	*sasl_username;
	char	*sasl_method;
	long	 auth_failures;	/* in this session */

	/* The transaction: MAIL up to the end of DATA, RSET or HELO. */
	char	*sender;	/* NULL: no MAIL yet; "" null sender */
	int	 smtputf8;
	char	*body;		/* 7BIT, 8BITMIME or NULL */
	char	*ret;		/* FULL, HDRS or NULL */
	char	*envid;		/* decoded ENVID or NULL */
	struct smtpd_rcpt *rcpts;
	size_t	 nrcpts;
	size_t	 rcpt_tries;	/* RCPT commands in this transaction */
	size_t	 rcpt_ok;	/* of those answered 250, duplicates too */
	struct smtpd_data *data;	/* DATA/BDAT in progress */
	int	 bdat_failed;	/* a BDAT chunk failed: discard the rest */

	char	*queue_id;	/* of the last message, for the log */
	long	 error_count;
	long	 junk_count;	/* NOOP, RSET, VRFY, HELP so far */
	int	 done;		/* end the session after this reply */
	size_t	 cmd_total[CMD_COUNT];
	size_t	 cmd_ok[CMD_COUNT];

	struct buf line;	/* the command line being handled */
};

/* smtpd.c */
/* Send one reply (fmt may hold "\n" for multi-line replies: each line
 * gets the code, '-' on all but the last). 4xx/5xx count as errors. */
void	smtpd_reply(struct smtpd_session *, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Send everything buffered; 0 or a STREAM_ error (then the session
 * is over). */
int	smtpd_flush(struct smtpd_session *);
/* "from=<a> to=<b> proto=ESMTP helo=<h>" for reject log lines. */
char	*smtpd_log_envelope(struct smtpd_session *, const char *rcpt);
/* The session ended because of a read error: log it, answer if we
 * still can, mark the session done. */
void	smtpd_read_error(struct smtpd_session *, int err, size_t data_bytes);
/* Set the read deadline for the next request (smtpd_per_request_deadline). */
void	smtpd_request_deadline(struct smtpd_session *);
/* Forget the transaction (RSET, HELO, after DATA). */
void	smtpd_reset(struct smtpd_session *);
/* Hang up after a fatal protocol error, letting the last reply reach
 * the client before the socket closes. */
void	smtpd_hangup(struct smtpd_session *);
/* Client input for a log line: printable, at most 100 bytes; allocated. */
char	*smtpd_printable(const char *, size_t);

/* smtpd_data.c */
void	smtpd_data_cmd(struct smtpd_session *, const char *args);
void	smtpd_bdat_cmd(struct smtpd_session *, const char *args);
/* Drop a DATA/BDAT in progress (the temporary queue file with it). */
void	smtpd_data_abort(struct smtpd_session *);

/* smtpd_check.c */
/* Open the tables the restriction lists name; fatal on a bad list. */
void	smtpd_check_init(void);
/* 1 when addr is in the named list of networks (mynetworks style). */
int	smtpd_check_addr_list(const char *param, const char *addr);
/* Checks at RCPT TO: client, helo, sender, relay and recipient
 * restrictions in that order (Postfix's smtpd_delay_reject = yes), then
 * whether the recipient exists. NULL accept, else an allocated reply. */
char	*smtpd_check_rcpt(struct smtpd_session *, const char *rcpt);
/* Checks at DATA/BDAT: NULL accept, else an allocated reply. */
char	*smtpd_check_data(struct smtpd_session *);

/* smtpd_tls.c */
/* Load the certificate (before the jail); fatal when TLS is required
 * and cannot work. */
void	smtpd_tls_init(void);
/* At the start of each session: load certificate files that changed. */
void	smtpd_tls_session_start(struct smtpd_session *);
/* 1 when the session is inside TLS. */
int	smtpd_tls_active(const struct smtpd_session *);
/* 1 when EHLO offers STARTTLS. */
int	smtpd_tls_offer(const struct smtpd_session *);
/* At smtpd_tls_security_level = encrypt, outside TLS: reply 530 and
 * return 1. Otherwise 0. */
int	smtpd_tls_enforce(struct smtpd_session *);
/* smtpd_tls_wrappermode: the handshake before the greeting. 0, or -1
 * with the session over. */
int	smtpd_tls_wrapper_start(struct smtpd_session *);
void	smtpd_starttls_cmd(struct smtpd_session *, const char *args);
/* "TLSv1.3 with cipher ... (256/256 bits)" or NULL; allocated. */
char	*smtpd_tls_describe(const struct smtpd_session *);
/* Send close_notify and leave TLS; the stream can then only be freed. */
void	smtpd_tls_session_end(struct smtpd_session *);

/* smtpd_sasl.c */
/* Set up Cyrus SASL (before the jail) when smtpd_sasl_auth_enable. */
void	smtpd_sasl_init(void);
/* A fresh SASL state for the session (start, and after STARTTLS);
 * forgets any earlier authentication. */
void	smtpd_sasl_session_new(struct smtpd_session *);
void	smtpd_sasl_session_free(struct smtpd_session *);
/* 1 when AUTH may be used now (smtpd_tls_auth_only). */
int	smtpd_sasl_offer(const struct smtpd_session *);
/* The mechanisms for "250-AUTH ...", or NULL when AUTH is not offered
 * now; allocated. */
char	*smtpd_sasl_ehlo(struct smtpd_session *);
/* MAIL FROM's AUTH= parameter: 0 valid (and ignored), -1 not. */
int	smtpd_sasl_mail_param(const struct smtpd_session *, const char *);
void	smtpd_auth_cmd(struct smtpd_session *, const char *args);

/* smtpd_limit.c */
/* Open the slot file under data_directory (before chroot). */
void	smtpd_limit_init(void);
/* Take a connection slot for client_addr: 0, or -1 when the client
 * already has smtpd_client_connection_count_limit connections. */
int	smtpd_limit_acquire(const char *client_addr);
void	smtpd_limit_release(void);
/* Open $data_directory/smtpd_auth.table (before chroot). */
void	smtpd_authfail_init(void);
/* Seconds the client may not AUTH for, 0 when it may. */
unsigned long smtpd_authfail_locked(const char *client_addr);
/* Count a failed AUTH: the client's failures in the window, this one
 * included; from the limit on, the client is locked out. -1 when the
 * table does not work. */
long	smtpd_authfail_record(const char *client_addr);

#endif
