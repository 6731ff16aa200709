/*
 * tls - TLS over OpenSSL 3 for every Tern endpoint: the SMTP server
 * (STARTTLS and port 465), the SMTP client, later imapd and pop3d.
 *
 * A tls_ctx is built once per process from main.cf (smtpd_tls_* for a
 * server, smtp_tls_* for a client): certificate and key, protocols and
 * cipher grade (Postfix's syntax), session resumption. A connection
 * becomes TLS by handing its stream to tls_stream_start_server() or
 * tls_stream_start_client(): they do the handshake on the stream's fd
 * and plug the TLS transport into the stream, so that the line reader,
 * timeouts and buffered writes of stream.h work unchanged on top.
 *
 * How smtpd uses it (RFC 3207):
 *	at start	ctx = tls_server_ctx_from_config(level, &err); a
 *			failure at level "may" is a warning and STARTTLS is
 *			not offered; at "encrypt" or with wrappermode it is
 *			fatal. Daemons are restarted by master on `tern
 *			reload`, so loading at process start is the reload.
 *	EHLO		offer STARTTLS when ctx != NULL and
 *			tls_stream_conn(s) == NULL.
 *	STARTTLS	refuse it inside TLS (tls_stream_conn(s) != NULL:
 *			"554 5.5.1 Error: TLS already active"), and with
 *			arguments (501); else reply "220 2.0.0 Ready to
 *			start TLS", stream_flush(), stream_discard_input()
 *			(whatever the client pipelined after STARTTLS is
 *			thrown away: CVE-2011-0411; tls_stream_start_*
 *			discard it again anyway), then
 *			tls_stream_start_server(s, ctx, timeout, &err). On
 *			failure log "SSL_accept error from host[addr]: err"
 *			and close the connection (the stream is unusable).
 *			On success forget the SMTP session: HELO name,
 *			MAIL, RCPT, AUTH state (RFC 3207 section 4.2); the
 *			client must send EHLO again.
 *	465		smtpd_tls_wrappermode: tls_stream_start_server()
 *			before the greeting.
 *	logging		tls_conn_log(c, "from", "host[addr]") writes
 *			"Anonymous TLS connection established from
 *			host[addr]: TLSv1.3 with cipher ... (256/256 bits)"
 *			at smtpd_tls_loglevel >= 1.
 *	Received:	when smtpd_tls_received_header = yes, a line
 *			"(using %s)" with tls_conn_describe(c).
 *	SASL		tls_conn_bits() is the external SSF for sasl.h.
 *	the end		stream_flush(), tls_stream_stop(s), stream_free(s).
 *
 * How the smtp client uses it: ctx = tls_client_ctx_from_config(&err)
 * at start; per delivery, fill a struct tls_peer with the level from
 * smtp_tls_security_level or smtp_tls_policy_maps, the MX host name as
 * servername, the names to check (smtp_tls_verify_cert_match: the MX
 * host name; smtp_tls_secure_cert_match: nexthop and .nexthop) and the
 * nexthop as cache_key; after "220" to STARTTLS call
 * tls_stream_start_client(). A failure at "may" may retry in clear on a
 * new connection; at encrypt and above it defers the mail with err as
 * the reason ("TLS handshake failed: certificate verify failed
 * (hostname mismatch)").
 *
 * Failure: every function returns NULL or -1 with *err allocated, a
 * sentence taken from errno and the OpenSSL error queue (a missing,
 * unreadable or mismatched certificate or key, a refused protocol, a
 * garbage or failed handshake, a timeout). Nothing here ends the
 * process; bugs in OpenSSL's use are not hidden but reported.
 *
 * Session reuse: a server context keeps an in-process session cache
 * and issues session tickets, both valid for session_timeout seconds.
 * Ticket keys are random per process unless tls_server_ctx_set_ticket_key()
 * gives all processes of a service the same key. A client context keeps
 * the last session of each (cache_key, level, names) and offers it on
 * the next connection.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stddef.h>
#include <stdint.h>

struct stream;
struct tls_ctx;
struct tls_conn;

/* Postfix's TLS security levels (smtp_tls_security_level,
 * smtpd_tls_security_level), weakest first. */
enum tls_level {
	TLS_LEV_NONE,		/* no TLS */
	TLS_LEV_MAY,		/* opportunistic, nothing checked */
	TLS_LEV_ENCRYPT,	/* TLS required, certificate not checked */
	TLS_LEV_DANE,		/* certificate checked against TLSA records */
	TLS_LEV_VERIFY,		/* CA-signed, name = MX host name */
	TLS_LEV_SECURE,		/* CA-signed, name = nexthop domain */
};

/* "" (Postfix's empty default) is none. 0, or -1 for an unknown word. */
int	tls_level_parse(const char *, enum tls_level *);
const char *tls_level_name(enum tls_level);

/* Protocol bits for tls_protocols_parse(). SSLv2 and SSLv3 are valid
 * names in the syntax but never enabled. */
#define TLS_PROTO_TLSv1		0x01
#define TLS_PROTO_TLSv1_1	0x02
#define TLS_PROTO_TLSv1_2	0x04
#define TLS_PROTO_TLSv1_3	0x08

/*
 * Parse Postfix's protocol syntax ("!SSLv2, !SSLv3, !TLSv1",
 * ">=TLSv1.2", "TLSv1.2 TLSv1.3", "<=TLSv1.2"; commas, colons or white
 * space between items; case does not matter) into the set of enabled
 * protocols. Plain names list what is allowed, "!" names what is not,
 * ">=" and "<=" give bounds. 0, or -1 with *err for an unknown name or
 * an empty result. Note that OpenSSL 3 refuses TLSv1 and TLSv1.1 at
 * its default security level whatever this says.
 */
int	tls_protocols_parse(const char *, unsigned *mask, char **err);

struct tls_server_opts {
	enum tls_level	 level;		/* encrypt: mandatory_* apply */
	const char	*cert_file;	/* PEM, leaf then chain */
	const char	*key_file;	/* NULL or "": cert_file */
	char *const	*chain_files;	/* key + certs per file; wins */
	const char	*protocols;	/* NULL: ">=TLSv1.2" */
	const char	*ciphers;	/* "high" or "medium"; NULL: medium */
	const char	*mandatory_protocols;
	const char	*mandatory_ciphers;
	unsigned long	 session_timeout; /* seconds; 0: no resumption */
	int		 loglevel;	/* smtpd_tls_loglevel */
};

struct tls_client_opts {
	const char	*CAfile;	/* trusted CAs; with CApath both */
	const char	*CApath;	/* empty: the system's CA store */
	const char	*cert_file;	/* optional client certificate */
	const char	*key_file;	/* NULL or "": cert_file */
	const char	*protocols;	/* as in tls_server_opts */
	const char	*ciphers;
	const char	*mandatory_protocols;
	const char	*mandatory_ciphers;
	unsigned long	 session_timeout; /* 0: do not reuse sessions */
	int		 loglevel;	/* smtp_tls_loglevel */
};

/* A DANE TLSA record (RFC 6698, 7672): usage, selector, matching type
 * and the certificate association data. */
struct tls_tlsa {
	uint8_t			 usage;
	uint8_t			 selector;
	uint8_t			 mtype;
	const unsigned char	*data;
	size_t			 len;
};

/* What one client connection expects of the server it talks to. */
struct tls_peer {
	enum tls_level		 level;
	/* SNI, the DANE base domain, the log; may be NULL. */
	const char		*servername;
	/* verify and secure: names the certificate must carry (a leading
	 * dot: any subdomain); NULL: servername. */
	const char *const	*match;
	/* e.g. "[mx.example]:25"; NULL: no session reuse. */
	const char		*cache_key;
	const struct tls_tlsa	*tlsa;		/* level dane */
	size_t			 ntlsa;
};

struct tls_ctx *tls_server_ctx_new(const struct tls_server_opts *,
	    char **err);
struct tls_ctx *tls_client_ctx_new(const struct tls_client_opts *,
	    char **err);
/* From smtpd_tls_* (level: what smtpd decided, wrappermode included)
 * and smtp_tls_* parameters. */
struct tls_ctx *tls_server_ctx_from_config(enum tls_level, char **err);
struct tls_ctx *tls_client_ctx_from_config(char **err);
/*
 * Build the server context again from the same options (new certificate
 * files on disk) and replace *ctx only on success, so that a broken
 * certificate during a reload leaves the old one working. Connections
 * already in TLS keep theirs. 0, or -1 with *err.
 */
int	tls_server_ctx_reload(struct tls_ctx **, char **err);
/* Share session tickets among processes: key is TLS_TICKET_KEY_LEN
 * random bytes every process of the service reads from the same
 * place. 0, or -1 with *err. */
#define TLS_TICKET_KEY_LEN	80
int	tls_server_ctx_set_ticket_key(struct tls_ctx *, const unsigned char *,
	    size_t, char **err);
/* Free a context once no connection made with it is still running
 * (a client connection stores its new sessions in it). */
void	tls_ctx_free(struct tls_ctx *);

/*
 * Make the stream TLS: discard buffered input, handshake within
 * timeout_ms in all (<= 0: 300 s; smtpd_starttls_timeout,
 * smtp_starttls_timeout) and before the stream's deadline, plug the
 * TLS transport into s. Anything still in s->out is sent in clear first
 * (the "220 Ready to start TLS" reply). 0, or -1 with *err; after a
 * failure the stream is fit only for stream_free().
 */
int	tls_stream_start_server(struct stream *, struct tls_ctx *,
	    int timeout_ms, char **err);
int	tls_stream_start_client(struct stream *, struct tls_ctx *,
	    const struct tls_peer *, int timeout_ms, char **err);
/* The TLS state of a stream, NULL when it is not (or no longer) TLS. */
struct tls_conn *tls_stream_conn(const struct stream *);
/* Send close_notify if the socket takes it now, free the TLS state;
 * the stream can then only be freed. Flush first. No-op on a plain
 * stream. */
void	tls_stream_stop(struct stream *);

/* What was negotiated, for logs and the Received: header. */
const char *tls_conn_protocol(const struct tls_conn *);	/* "TLSv1.3" */
const char *tls_conn_cipher(const struct tls_conn *);
/* Secret bits of the cipher; *alg_bits (may be NULL) its key size. */
int	tls_conn_bits(const struct tls_conn *, int *alg_bits);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)";
 * allocated. */
char	*tls_conn_describe(const struct tls_conn *);
/* 1 when the session was resumed rather than negotiated in full. */
int	tls_conn_reused(const struct tls_conn *);
/* The peer certificate's subject CN, or NULL without a certificate. */
const char *tls_conn_peer_cn(const struct tls_conn *);
/* "Anonymous" (no peer certificate), "Untrusted" (chain not
 * verified), "Trusted" (chain verified, name not checked) or
 * "Verified" (chain and name, or DANE, matched). */
const char *tls_conn_trust(const struct tls_conn *);
/* Why the peer's chain did not verify, or NULL when it did. */
const char *tls_conn_verify_error(const struct tls_conn *);
/* The last TLS error of a read or write (for "lost connection after
 * DATA: TLS error ..."), or NULL. */
const char *tls_conn_last_error(const struct tls_conn *);
/* "Trusted TLS connection established to host[addr]:25: TLSv1.3 with
 * cipher ..." when the context's loglevel is 1 or more. dir is "from"
 * (server) or "to" (client). */
void	tls_conn_log(const struct tls_conn *, const char *dir,
	    const char *peer);

#endif
