/*
 * smtp - the outbound SMTP and LMTP client (man/smtp.8): internal
 * interfaces between its files.
 *
 *	smtp.c		the daemon: delivery requests from qmgr, the loop
 *			over servers, results back to qmgr
 *	smtp_nexthop.c	"domain", "[host]:port", "unix:/path" (pure)
 *	smtp_addr.c	nexthop -> servers to try, through DNS
 *	smtp_connect.c	TCP and Unix-socket connections with time limits
 *	smtp_proto.c	one SMTP/LMTP session: greeting to QUIT
 *	smtp_reply.c	reading and parsing server replies (pure parts)
 *	smtp_data.c	message content to DATA form: CRLF, dot-stuffing
 *	smtp_policy.c	TLS policy (level, names to match, DANE) and SASL
 *			passwords for a next hop, from main.cf and tables
 *	smtp_cache.c	sessions kept open between deliveries to the same
 *			next hop (connection reuse)
 *
 * Failures are never fatal: every way a delivery can go wrong ends in
 * a per-recipient result (sent, deferred, bounced) with an RFC 3463
 * status code and a reason an operator can read in the log.
 */
#ifndef TERN_SMTP_H
#define TERN_SMTP_H

#include <stddef.h>

#include "buf.h"
#include "deliver.h"
#include "tls.h"

struct dns_ctx;
struct dns_result;
struct queue_msg;
struct stream;
struct smtp_conn;

/* ---- next hop (smtp_nexthop.c) ---- */

enum smtp_nexthop_kind {
	NEXTHOP_MX,		/* "domain", "domain:port": MX lookup */
	NEXTHOP_HOST,		/* "[host]", "[host]:port", LMTP "host" */
	NEXTHOP_UNIX,		/* "unix:/path" */
};

struct smtp_nexthop {
	enum smtp_nexthop_kind kind;
	char		*host;		/* lower case; an IP literal bare */
	int		 literal;	/* host is an IPv4/IPv6 address */
	char		*path;		/* NEXTHOP_UNIX */
	unsigned	 port;
};

#define SMTP_PORT	25
#define LMTP_PORT	24

/*
 * Parse a next hop, with an optional "inet:" or "unix:" prefix. lmtp
 * changes the default port (24) and makes a bare name a host, not a
 * domain to look up MX records for. 0, or -1 with *err allocated.
 */
int	smtp_nexthop_parse(const char *text, int lmtp, struct smtp_nexthop *,
	    char **err);
void	smtp_nexthop_free(struct smtp_nexthop *);

/* ---- servers to try (smtp_addr.c) ---- */

struct smtp_server {
	char		*name;		/* "mx.b.test", or the literal */
	char		*addr;		/* "127.0.0.2", "::1", a socket path */
	int		 family;	/* AF_INET, AF_INET6, AF_UNIX */
	unsigned char	 bin[16];
	unsigned	 port;
	/* The MX answer (when there was one) and the address answer were
	 * DNSSEC-validated: the name can be trusted for DANE. */
	int		 dnssec;
};

/* A result for every recipient still open. */
struct smtp_fail {
	enum deliver_status status;
	char		*dsn;
	char		*reason;
};

void	smtp_fail_set(struct smtp_fail *, enum deliver_status,
	    const char *dsn, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
void	smtp_fail_free(struct smtp_fail *);

/*
 * The servers for a next hop, in the order to try them: MX hosts by
 * preference (shuffled among equals), each host's addresses per
 * inet_protocols (IPv6 first), at most smtp_mx_address_limit in all;
 * the domain's own addresses when it has no MX. 0 with *servers, or
 * -1 with *fail saying what to do with the mail (a null MX or a name
 * that does not exist bounces, a DNS failure defers).
 */
int	smtp_find_servers(struct dns_ctx *, const struct smtp_nexthop *,
	    struct smtp_server **servers, size_t *nservers,
	    struct smtp_fail *fail);
void	smtp_servers_free(struct smtp_server *, size_t);
/* "mx.b.test[127.0.0.2]" and with ":25" (allocated). */
char	*smtp_server_text(const struct smtp_server *, int with_port);

/* ---- connecting (smtp_connect.c) ---- */

/* A connected blocking socket, or -1 with *why ("connect to
 * mx.b.test[127.0.0.2]:25: Connection refused") allocated. */
int	smtp_connect(const struct smtp_server *, int timeout_ms, char **why);

/* ---- replies (smtp_reply.c) ---- */

#define SMTP_REPLY_MAX_LINES	100	/* kept; more are read and dropped */
#define SMTP_REPLY_MAX_TEXT	4096	/* kept of the joined text */
#define SMTP_REPLY_BAD		(-10)	/* not a reply: protocol error */

struct smtp_reply {
	int		 code;		/* 250 */
	char		 dsn[16];	/* "2.1.0": the server's, or derived */
	struct buf	 text;		/* "250 2.1.0 Ok and more" */
	char		**lines;	/* each line after "NNN-" (for EHLO) */
	size_t		 nlines;
	int		 complete;
};

void	smtp_reply_init(struct smtp_reply *);
void	smtp_reply_reset(struct smtp_reply *);
void	smtp_reply_free(struct smtp_reply *);
/*
 * Add one reply line (without CRLF). Returns 1 when more lines follow,
 * 0 when the reply is complete, SMTP_REPLY_BAD when the line is not
 * "NNN", "NNN text" or "NNN-text" or its code differs from the first
 * line's. Control bytes in the text are kept out of logs ('?').
 */
int	smtp_reply_add_line(struct smtp_reply *, const char *line, size_t len);
/* Read a whole reply within timeout_ms: 0, a STREAM_* error, or
 * SMTP_REPLY_BAD. Lines longer than max_line are cut, not refused. */
int	smtp_reply_read(struct stream *, struct smtp_reply *, size_t max_line,
	    int timeout_ms);
/* The first digit of the code: 2, 3, 4 or 5. */
#define smtp_reply_class(r)	((r)->code / 100)

/* ---- message content (smtp_data.c) ---- */

struct smtp_dot {
	int	bol;		/* at the start of a line */
	int	cr;		/* the last byte was CR */
};

void	smtp_dot_init(struct smtp_dot *);
/* Append n content bytes to out as DATA lines: each LF becomes CRLF
 * (a CR already there is kept, not doubled) and a "." starting a line
 * is doubled. */
int	smtp_dot_encode(struct smtp_dot *, const char *, size_t,
	    struct buf *out);
/* End the content: CRLF if the last line had none, then ".\r\n". */
int	smtp_dot_end(struct smtp_dot *, struct buf *out);

/* ---- one session (smtp_proto.c) ---- */

struct smtp_rcpt {
	const char	*addr;		/* from the request */
	const char	*orcpt;		/* queue file, "type;address" */
	const char	*orig;		/* queue file's address, for ORCPT */
	int		 notify;	/* NOTIFY_* bits, 0: not given */
	int		 final;		/* result decided for this request */
	int		 accepted;	/* RCPT got 2xx in this session */
	enum deliver_status status;
	char		*dsn;
	char		*reason;
};

struct smtp_msg {
	struct queue_msg *q;
	const char	*id;
	const char	*sender;
	size_t		 size;
	const char	*body;		/* "8BITMIME", "7BIT" or NULL */
	const char	*envid;		/* DSN ENVID (decoded) or NULL */
	const char	*ret;		/* "FULL", "HDRS" or NULL */
	int		 smtputf8;	/* needs SMTPUTF8 */
};

struct smtp_conf {
	int		 lmtp;
	const char	*helo_name;
	size_t		 line_limit;
	int		 connect_ms;
	int		 helo_ms;
	int		 mail_ms;
	int		 rcpt_ms;
	int		 data_init_ms;
	int		 data_xfer_ms;
	int		 data_done_ms;
	int		 quit_ms;
	int		 rset_ms;
};

enum smtp_sess_result {
	SMTP_SESS_DONE,		/* every open recipient has a result */
	SMTP_SESS_NEXT,		/* try the next server for those without */
	SMTP_SESS_PLAIN,	/* TLS failed at "may": this server again,
				 * in plain text */
};

/* What one session must do about TLS and AUTH (smtp.c fills it). */
struct smtp_security {
	struct tls_ctx	*tls;		/* NULL: see tls_make */
	/* Makes the context when tls is NULL at level may, once a server
	 * offers STARTTLS; NULL with *err when it cannot (then the
	 * session goes on in plain text). */
	struct tls_ctx	*(*tls_make)(char **err);
	enum tls_level	 level;		/* for this server: none .. secure */
	const char *const *match;	/* verify, secure: names to check */
	const struct tls_tlsa *tlsa;	/* dane */
	size_t		 ntlsa;
	int		 starttls_ms;
	const char	*sasl_user;	/* NULL: no AUTH */
	const char	*sasl_pass;
};

/*
 * Run one session on a connected fd (taken over and closed) with the
 * recipients whose result is not final yet. Recipients it decides get
 * final = 1; on SMTP_SESS_NEXT *why (allocated) says why the server
 * could not be used, for when no server is left. SMTP_SESS_PLAIN says
 * the same and asks for this server again without TLS.
 */
enum smtp_sess_result smtp_session(const struct smtp_conf *,
	    const struct smtp_msg *, struct smtp_rcpt *, size_t nrcpts,
	    const struct smtp_server *, const struct smtp_security *, int fd,
	    struct smtp_fail *why, struct smtp_conn **keep);

/*
 * A session kept open after a transaction that left it healthy: the
 * stream (and its TLS), the server's name and what its EHLO offered.
 * smtp_session() hands one back in *keep (when keep is not NULL)
 * instead of saying QUIT; otherwise *keep is NULL.
 */
struct smtp_conn;

/*
 * One more transaction on a kept session: RSET, then as smtp_session()
 * from MAIL FROM on, with c handed back in *keep when it is still
 * healthy (or closed). -1 when RSET did not get 250 or the connection
 * is gone: c is closed, nothing was sent for the message, and the
 * caller connects as usual. Otherwise 0 with *res.
 */
int	smtp_session_reuse(struct smtp_conn *c, const struct smtp_conf *,
	    const struct smtp_msg *, struct smtp_rcpt *, size_t nrcpts,
	    struct smtp_fail *why, struct smtp_conn **keep,
	    enum smtp_sess_result *res);
/* QUIT (when quit_ms > 0, without waiting longer than that for the
 * reply) and free. */
void	smtp_conn_close(struct smtp_conn *, int quit_ms);
/* The socket under the session, whether TLS is on it, and how many
 * transactions it has carried. */
int	smtp_conn_fd(const struct smtp_conn *);
int	smtp_conn_tls(const struct smtp_conn *);
unsigned smtp_conn_uses(const struct smtp_conn *);

/* ---- kept sessions (smtp_cache.c) ---- */

/*
 * A few kept sessions per process (SMTP_CACHE_MAX), each under a key
 * naming the next hop and what its TLS policy asks, with the relay text
 * to report and a deadline smtp_connection_cache_time_limit after its
 * last use. Take removes the session from the cache (the caller owns it
 * then). Expire closes, with QUIT, the sessions past their deadline;
 * close_all closes every one (at process exit too, through atexit).
 * Between deliveries an alarm (smtp_cache_arm) shuts the expired ones
 * down even when no request comes; smtp_cache_disarm stops it while a
 * delivery runs.
 */
#define SMTP_CACHE_MAX	4

void	smtp_cache_store(const char *key, struct smtp_conn *,
	    const char *relay, int time_limit_s, int quit_ms);
struct smtp_conn *smtp_cache_take(const char *key, char **relay);
void	smtp_cache_expire(void);
void	smtp_cache_close_all(void);
void	smtp_cache_arm(void);
void	smtp_cache_disarm(void);

/* Set a recipient's final result. */
void	smtp_rcpt_set(struct smtp_rcpt *, enum deliver_status,
	    const char *dsn, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/* ---- TLS policy and SASL passwords (smtp_policy.c) ---- */

struct smtp_tls_policy {
	enum tls_level	 level;
	/* verify, secure: "hostname", "nexthop", "dot-nexthop" or names
	 * (".example.com": any subdomain); NULL: the level's default from
	 * smtp_tls_verify_cert_match or smtp_tls_secure_cert_match. */
	char		**match;
};

/*
 * Parse a policy: "level" then attributes, as in Postfix's
 * smtp_tls_policy_maps values ("verify match=hostname:nexthop",
 * "secure match=.example.com:example.com", "encrypt"). Attributes
 * other than match= that Postfix knows are accepted and ignored.
 * 0, or -1 with *err for an unknown level or attribute.
 */
int	smtp_tls_policy_parse(const char *, struct smtp_tls_policy *,
	    char **err);
void	smtp_tls_policy_free(struct smtp_tls_policy *);

/*
 * The names a server certificate must carry: each item of match with
 * "hostname" the server's (MX) name, "nexthop" the next hop's host and
 * "dot-nexthop" "." and that host, duplicates dropped. A strv.
 */
char	**smtp_tls_match_names(char *const *match, const char *hostname,
	    const char *nexthop);

/* The lookup keys of a next hop, most specific first: "[host]:port",
 * "[host]", "host" (or "domain:port", "domain"). A strv. */
char	**smtp_nexthop_keys(const struct smtp_nexthop *);

/*
 * The policy for a next hop: smtp_tls_policy_maps' entry for the first
 * of its keys found, else smtp_tls_security_level. 0, or -1 with *fail
 * set (a table that cannot answer, a malformed entry: defer).
 */
int	smtp_tls_policy_find(const struct smtp_nexthop *,
	    struct smtp_tls_policy *, struct smtp_fail *);

/*
 * The username and password for a server from smtp_sasl_password_maps
 * ("user:password"), looked up by the next hop's keys, then the
 * server's host name. 1 with *user and *pass allocated, 0 when there is
 * none, -1 with *fail set.
 */
int	smtp_sasl_passwd_find(const struct smtp_nexthop *, const char *host,
	    char **user, char **pass, struct smtp_fail *);

/*
 * DANE (RFC 7672) for one server at level dane, from whether its names
 * were DNSSEC-validated and its TLSA lookup (NULL when none was made):
 *	TLS_LEV_DANE	usable secure TLSA records, copied into *tlsa
 *	TLS_LEV_ENCRYPT	secure TLSA records, none usable: TLS without
 *			authentication, but TLS
 *	TLS_LEV_MAY	nothing secure to go by: opportunistic TLS
 * -1 when the TLSA lookup failed (or was bogus): *why says so and the
 * server is not to be used now. Records usable here: DANE-TA(2) and
 * DANE-EE(3), selector 0 or 1, matching type 0, 1 or 2 (PKIX-TA and
 * PKIX-EE do not apply to SMTP, RFC 7672 section 3.1.3).
 */
int	smtp_dane_decide(int dnssec, const struct dns_result *tlsa,
	    struct tls_tlsa **out, size_t *nout, char **why);
void	smtp_tlsa_free(struct tls_tlsa *, size_t);

#endif
