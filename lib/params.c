/*
 * params - the table of every main.cf parameter Tern knows.
 *
 * One line of the table is one parameter: its Postfix name, its type,
 * its default written as main.cf text (it may refer to other parameters
 * with $name), a one-line description for `ternconf --man` and limits
 * for numbers. config.c parses and validates against it, ternconf -d
 * prints it, main.cf(5) is generated from it. Nothing here can fail at
 * run time; a default that does not validate is caught by the unit
 * tests, which validate every default.
 *
 * Keep the table sorted by name: param_find() searches it by bisection
 * and a test checks the order. Defaults are Postfix's unless a safer
 * one is plainly right; the description then says so.
 */
#include "autoconf.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "config.h"

#define STR(n, d, text)		{ n, PARAM_STR, d, text, 0, 0, 0, 0 }
#define LIST(n, d, text)	{ n, PARAM_LIST, d, text, 0, 0, 0, 0 }
#define BOOL(n, d, text)	{ n, PARAM_BOOL, d, text, 0, 0, 0, 0 }
#define INT(n, d, lo, hi, text)	{ n, PARAM_INT, d, text, lo, hi, 0, 0 }
#define SIZE(n, d, lo, text)	{ n, PARAM_SIZE, d, text, lo, 0, 0, 0 }
#define TIME(n, d, u, lo, text)	{ n, PARAM_TIME, d, text, lo, 0, u, 0 }
/* $name in the value is for the program using it, not for main.cf. */
#define RAWSTR(n, d, text)	{ n, PARAM_STR, d, text, 0, 0, 0, PARAM_RAW }
#define RAWLIST(n, d, text)	{ n, PARAM_LIST, d, text, 0, 0, 0, PARAM_RAW }

const struct param_def param_table[] = {
	LIST("2bounce_notice_recipient", "postmaster",
	    "who is told about undeliverable bounces (notify_classes 2bounce)"),
	STR("alias_database", "lmdb:/etc/aliases",
	    "alias tables that ternmap builds from text alias files"),
	LIST("alias_maps", "lmdb:/etc/aliases",
	    "alias tables the local delivery agent consults"),
	LIST("allow_mail_to_commands", "alias, forward",
	    "where local delivery to |command is allowed: alias, forward, include"),
	LIST("allow_mail_to_files", "alias, forward",
	    "where local delivery to /file is allowed: alias, forward, include"),
	BOOL("append_dot_mydomain", "no",
	    "append .$mydomain to addresses that have a host part without a dot"),
	LIST("authorized_flush_users", "static:anyone",
	    "users allowed to flush the queue (ternqueue -f)"),
	LIST("authorized_mailq_users", "static:anyone",
	    "users allowed to list the queue (mailq)"),
	LIST("authorized_submit_users", "static:anyone",
	    "users allowed to submit mail with sendmail"),
	BOOL("biff", "no",
	    "notify the comsat service of new local mail (Postfix says yes; "
	    "few systems still run comsat)"),
	LIST("bounce_notice_recipient", "postmaster",
	    "who receives the headers of a bounce (notify_classes bounce)"),
	TIME("bounce_queue_lifetime", "5d", 'd', 0,
	    "how long a bounce message stays queued before it is given up"),
	SIZE("bounce_size_limit", "50000", 1,
	    "most bytes of the original message returned in a bounce"),
	STR("command_directory", "/usr/sbin",
	    "where the administrative commands are installed"),
	TIME("command_time_limit", "1000s", 's', 1,
	    "time limit for local delivery to a command (aliases, .forward, "
	    "mailbox_command)"),
	STR("cyrus_sasl_config_path", "",
	    "folders searched for the Cyrus SASL application file "
	    "($smtpd_sasl_path.conf); empty: Cyrus's default"),
	STR("daemon_directory", "/usr/libexec/tern",
	    "where master finds the daemon programs"),
	TIME("daemon_timeout", "18000s", 's', 1,
	    "time a daemon may take for one request; qmgr defers a delivery "
	    "whose agent takes longer"),
	STR("data_directory", "/var/lib/tern",
	    "where writable caches (TLS sessions, address verification) live"),
	LIST("debug_peer_list", "",
	    "clients and servers whose sessions are logged in detail"),
	INT("default_delivery_batch_limit", "1", 1, 1000,
	    "most deliveries for one destination that qmgr sends on one "
	    "agent connection before the first reply, while the "
	    "destination's concurrency is full (Tern)"),
	INT("default_destination_concurrency_failed_cohort_limit", "1", 1, 0,
	    "connection failures, in units of the concurrency, after which a "
	    "destination is dead until minimal_backoff_time has passed"),
	INT("default_destination_concurrency_limit", "20", 1, 0,
	    "most parallel deliveries to one destination"),
	INT("default_destination_recipient_limit", "50", 1, 0,
	    "most recipients in one delivery"),
	STR("default_privs", "nobody",
	    "user that deliveries to commands and files in aliases run as"),
	INT("default_process_limit", "100", 1, 0,
	    "most processes of one service when master.cf says -"),
	STR("default_transport", "smtp",
	    "transport[:nexthop] for mail to domains that are not ours or "
	    "relay_domains"),
	TIME("delay_warning_time", "0h", 'h', 0,
	    "after this long a sender is told that mail is delayed; 0: never"),
	INT("deliver_lock_attempts", "20", 1, 0,
	    "how often local delivery tries to lock an mbox file"),
	TIME("deliver_lock_delay", "1s", 's', 1,
	    "pause between attempts to lock an mbox file"),
	BOOL("disable_vrfy_command", "yes",
	    "refuse the SMTP VRFY command (Postfix says no; VRFY only helps "
	    "address harvesters)"),
	LIST("dns_forwarders", "",
	    "DNS servers to query, as host or host@port (Tern); empty: those "
	    "in /etc/resolv.conf"),
	TIME("dns_lookup_timeout", "20s", 's', 1,
	    "time limit for one DNS lookup; past it the lookup is a temporary "
	    "failure (Tern)"),
	STR("dns_trust_anchor_file", "",
	    "file with the DNSSEC root trust anchor for the resolver (Tern); "
	    "empty: no DNSSEC validation"),
	STR("double_bounce_sender", "double-bounce",
	    "sender of bounces about bounces; mail to it is discarded"),
	LIST("fallback_relay", "",
	    "hosts to try when a destination's own servers cannot be reached"),
	RAWLIST("forward_path", "$home/.forward${recipient_extension}, "
	    "$home/.forward",
	    "where local delivery looks for .forward files; $home, $user, "
	    "$extension and ${recipient_extension} are the recipient's"),
	STR("home_mailbox", "Maildir/",
	    "mailbox under the user's home; a trailing / means Maildir "
	    "(Postfix's default is empty, mbox in mail_spool_directory)"),
	LIST("inet_interfaces", "all",
	    "addresses the SMTP server listens on: all, loopback-only or "
	    "a list"),
	LIST("inet_protocols", "all",
	    "IP versions to use: all, ipv4, ipv6"),
	INT("initial_destination_concurrency", "5", 1, 0,
	    "parallel deliveries to a destination before it proves reliable"),
	TIME("ipc_timeout", "3600s", 's', 1,
	    "time limit for one read or write on an internal socket, such "
	    "as showq writing the queue listing to mailq"),
	INT("line_length_limit", "2048", 80, 0,
	    "longest line read from SMTP or a queue file before it is split"),
	INT("local_delivery_batch_limit", "5", 1, 1000,
	    "most deliveries to one local recipient sent on one local "
	    "connection at once; local syncs the Maildir once for all "
	    "(Tern)"),
	INT("local_destination_concurrency_limit", "2", 1, 0,
	    "most parallel deliveries to one local recipient"),
	INT("local_destination_recipient_limit", "1", 1, 0,
	    "most recipients in one local delivery; 1 makes "
	    "local_destination_concurrency_limit a limit per recipient, "
	    "more makes it one per domain"),
	STR("local_passwd_file", "",
	    "passwd(5)-format file of local users used instead of the "
	    "system's; for test and demo instances (Tern)"),
	LIST("local_recipient_maps", "unix:passwd.byname $alias_maps",
	    "tables of valid local recipients; empty: accept any local "
	    "address"),
	LIST("local_sender_forge_users", "root, $mail_owner",
	    "local users whose sendmail -f sender is kept; everyone else's "
	    "mail goes out as login@$myorigin (Tern)"),
	STR("mail_name", "Tern",
	    "the name of the mail system in greetings and bounces"),
	STR("mail_owner", "tern",
	    "user that owns the queue and runs the unprivileged daemons"),
	STR("mail_spool_directory", "/var/mail",
	    "where mbox mailboxes live when home_mailbox is empty"),
	RAWSTR("mailbox_command", "",
	    "command that delivers to local mailboxes instead of Tern; $HOME, "
	    "$USER, $EXTENSION are the recipient's"),
	SIZE("mailbox_size_limit", "51200000", 0,
	    "largest mbox file or single Maildir message in bytes; 0: no limit"),
	STR("maillog_file", "",
	    "file every program logs to; empty: syslog facility mail"),
	TIME("max_idle", "100s", 's', 1,
	    "how long an idle daemon waits for its next client before exiting"),
	INT("max_use", "100", 1, 0,
	    "clients a daemon serves before it exits and master starts a "
	    "fresh one"),
	TIME("maximal_backoff_time", "4000s", 's', 1,
	    "longest wait between delivery attempts of deferred mail"),
	TIME("maximal_queue_lifetime", "5d", 'd', 0,
	    "how long undeliverable mail stays queued before it bounces"),
	SIZE("message_size_limit", "10240000", 0,
	    "largest message accepted, in bytes, envelope included; 0: no "
	    "limit"),
	TIME("minimal_backoff_time", "300s", 's', 1,
	    "shortest wait between delivery attempts of deferred mail"),
	LIST("mydestination", "$myhostname, localhost.$mydomain, localhost",
	    "domains delivered locally to system accounts"),
	STR("mydomain", "localdomain",
	    "the local domain; default: $myhostname minus its first label, or "
	    "localdomain"),
	STR("myhostname", "localhost.localdomain",
	    "this host's fully qualified name; default: from gethostname(), "
	    "with .$mydomain appended when it has no dot"),
	LIST("mynetworks", "127.0.0.0/8 [::1]/128",
	    "trusted client networks, allowed to relay by permit_mynetworks"),
	STR("mynetworks_style", "host",
	    "mynetworks when it is not set: host, subnet or class"),
	STR("myorigin", "$myhostname",
	    "domain appended to locally posted mail without one"),
	LIST("notify_classes", "resource, software",
	    "problems reported to the postmaster: bounce, 2bounce, delay, "
	    "policy, protocol, resource, software"),
	LIST("parent_domain_matches_subdomains", "debug_peer_list, "
	    "fast_flush_domains, mynetworks, permit_mx_backup_networks, "
	    "qmqpd_authorized_clients, relay_domains, smtpd_access_maps",
	    "features where example.com also matches its subdomains "
	    "(elsewhere only .example.com does)"),
	TIME("qmgr_agent_idle_time_limit", "2s", 's', 0,
	    "how long qmgr keeps an idle connection to a delivery agent "
	    "for the next request to the same destination; 0: a new "
	    "connection for every request"),
	INT("qmgr_message_active_limit", "20000", 1, 0,
	    "most messages in the active queue"),
	STR("queue_directory", "/var/spool/tern",
	    "where the queue lives"),
	TIME("queue_run_delay", "300s", 's', 1,
	    "how often the deferred queue is scanned"),
	STR("recipient_delimiter", "",
	    "characters that separate a user from an address extension "
	    "(user+ext)"),
	LIST("relay_domains", "",
	    "remote domains this host relays mail to from anyone"),
	STR("relay_transport", "relay",
	    "transport[:nexthop] for relay_domains; \"relay\" without a "
	    "master.cf service of that name is served by smtp"),
	STR("relayhost", "",
	    "default next hop for remote mail, as host, [host]:port or "
	    "[address]; empty: by MX"),
	LIST("sender_dependent_relayhost_maps", "",
	    "tables mapping a sender address or domain to its relayhost"),
	TIME("service_throttle_time", "60s", 's', 1,
	    "longest wait before master starts a service whose processes "
	    "keep failing (the wait doubles from 1s up to this)"),
	STR("setgid_group", "terndrop",
	    "group that owns the maildrop folder and the submission "
	    "programs"),
	TIME("smtp_connect_timeout", "30s", 's', 1,
	    "time limit for the SMTP client to connect to a server"),
	BOOL("smtp_connection_cache_on_demand", "yes",
	    "the SMTP client keeps a healthy session open for the next "
	    "request on the same qmgr connection to the same next hop"),
	TIME("smtp_connection_cache_time_limit", "2s", 's', 0,
	    "how long the SMTP client keeps an unused session open; 0: "
	    "never keep one"),
	TIME("smtp_data_done_timeout", "600s", 's', 1,
	    "time limit for the reply to the final dot of a message"),
	TIME("smtp_data_init_timeout", "120s", 's', 1,
	    "time limit for the reply to the SMTP DATA command"),
	TIME("smtp_data_xfer_timeout", "180s", 's', 1,
	    "time limit for sending each part of the message content"),
	INT("smtp_destination_concurrency_limit",
	    "$default_destination_concurrency_limit", 1, 0,
	    "most parallel deliveries to one SMTP destination"),
	INT("smtp_destination_recipient_limit",
	    "$default_destination_recipient_limit", 1, 0,
	    "most recipients in one SMTP delivery"),
	STR("smtp_helo_name", "$myhostname",
	    "name the SMTP client sends in EHLO, HELO and LHLO"),
	TIME("smtp_helo_timeout", "300s", 's', 1,
	    "time limit for the greeting and the reply to EHLO/HELO"),
	TIME("smtp_mail_timeout", "300s", 's', 1,
	    "time limit for the reply to MAIL FROM"),
	INT("smtp_mx_address_limit", "5", 0, 0,
	    "most server addresses tried per delivery (all MX hosts "
	    "together); 0: no limit"),
	INT("smtp_mx_session_limit", "2", 0, 0,
	    "most SMTP sessions (connections that got a greeting) per "
	    "delivery; 0: no limit"),
	TIME("smtp_quit_timeout", "300s", 's', 1,
	    "time limit for the reply to QUIT"),
	TIME("smtp_rcpt_timeout", "300s", 's', 1,
	    "time limit for the reply to each RCPT TO"),
	TIME("smtp_rset_timeout", "20s", 's', 1,
	    "time limit for the reply to RSET on a kept session"),
	BOOL("smtp_sasl_auth_enable", "no",
	    "the SMTP client authenticates to servers that offer AUTH"),
	LIST("smtp_sasl_mechanism_filter", "",
	    "SASL mechanisms the SMTP client may use among those a server "
	    "offers; empty: any"),
	LIST("smtp_sasl_password_maps", "",
	    "tables mapping a next hop to username:password"),
	LIST("smtp_sasl_security_options", "noplaintext, noanonymous",
	    "SASL mechanism properties the SMTP client requires outside TLS"),
	LIST("smtp_sasl_tls_security_options", "noanonymous",
	    "SASL mechanism properties the SMTP client requires inside TLS "
	    "(Postfix says $smtp_sasl_security_options; PLAIN inside TLS is "
	    "what relay hosts expect)"),
	TIME("smtp_starttls_timeout", "300s", 's', 1,
	    "time limit for the SMTP client's TLS handshake"),
	STR("smtp_tls_CAfile", "",
	    "file of trusted CA certificates for the SMTP client"),
	STR("smtp_tls_CApath", "",
	    "folder of trusted CA certificates (c_rehash) for the SMTP "
	    "client; with smtp_tls_CAfile empty too: the system's CAs"),
	STR("smtp_tls_cert_file", "",
	    "the SMTP client's PEM certificate, when a server asks for one"),
	STR("smtp_tls_ciphers", "medium",
	    "cipher grade for opportunistic TLS (level may): high, medium"),
	STR("smtp_tls_key_file", "$smtp_tls_cert_file",
	    "the SMTP client's PEM private key"),
	INT("smtp_tls_loglevel", "1", 0, 4,
	    "SMTP client TLS logging: 0 failures only, 1 a summary line per "
	    "connection, 2 the handshake (Postfix says 0)"),
	STR("smtp_tls_mandatory_ciphers", "medium",
	    "cipher grade when TLS is required (encrypt and above): high, "
	    "medium"),
	LIST("smtp_tls_mandatory_protocols", ">=TLSv1.2",
	    "TLS versions the SMTP client accepts when TLS is required"),
	LIST("smtp_tls_policy_maps", "",
	    "tables of per-destination TLS policy"),
	LIST("smtp_tls_protocols", ">=TLSv1.2",
	    "TLS versions the SMTP client accepts for opportunistic TLS "
	    "(Postfix allows TLSv1 and TLSv1.1)"),
	LIST("smtp_tls_secure_cert_match", "nexthop, dot-nexthop",
	    "names the server certificate must carry at level secure"),
	STR("smtp_tls_security_level", "may",
	    "outbound TLS: none, may, encrypt, dane, verify, secure (Postfix "
	    "says none)"),
	TIME("smtp_tls_session_cache_timeout", "3600s", 's', 0,
	    "how long the SMTP client reuses a TLS session; 0: never"),
	LIST("smtp_tls_verify_cert_match", "hostname",
	    "names the server certificate must carry at level verify"),
	INT("smtpd_auth_failure_limit", "10", 0, 0,
	    "failed AUTH attempts from one client (an IPv6 /64) within "
	    "smtpd_auth_failure_window before it may not try for "
	    "smtpd_auth_failure_lockout_time (Tern); 0: no limit"),
	TIME("smtpd_auth_failure_lockout_time", "30m", 's', 1,
	    "how long a client that reached smtpd_auth_failure_limit may not "
	    "AUTH, whatever password it brings (Tern)"),
	TIME("smtpd_auth_failure_sleep_time", "1s", 's', 0,
	    "the n-th failed AUTH in the window waits n-1 times this long "
	    "for its reply (Tern)"),
	TIME("smtpd_auth_failure_window", "1h", 's', 1,
	    "period over which failed AUTH attempts are counted (Tern)"),
	STR("smtpd_banner", "$myhostname ESMTP $mail_name",
	    "text after 220 in the SMTP greeting; must start with "
	    "$myhostname"),
	INT("smtpd_client_connection_count_limit", "50", 0, 0,
	    "most simultaneous connections from one client; 0: no limit"),
	LIST("smtpd_client_event_limit_exceptions", "$mynetworks",
	    "clients exempt from smtpd_client_connection_count_limit"),
	LIST("smtpd_client_restrictions", "",
	    "checks when a client connects"),
	LIST("smtpd_data_restrictions", "",
	    "checks at the DATA command"),
	TIME("smtpd_error_sleep_time", "1s", 's', 0,
	    "pause before each error reply once soft errors add up"),
	STR("smtpd_forbid_bare_newline", "yes",
	    "a line ended by LF without CR: yes or normalize (accept as CRLF "
	    "in commands, refuse in DATA), reject, no"),
	LIST("smtpd_forbid_bare_newline_exclusions", "$mynetworks",
	    "clients exempt from smtpd_forbid_bare_newline"),
	BOOL("smtpd_forbid_unauth_pipelining", "yes",
	    "disconnect clients that send commands ahead of replies without "
	    "PIPELINING"),
	INT("smtpd_hard_error_limit", "20", 1, 0,
	    "errors after which the SMTP server disconnects"),
	BOOL("smtpd_helo_required", "no",
	    "clients must send HELO or EHLO before MAIL"),
	LIST("smtpd_helo_restrictions", "",
	    "checks on the HELO/EHLO name"),
	INT("smtpd_junk_command_limit", "100", 1, 0,
	    "NOOP, RSET, VRFY and HELP commands a client may send before "
	    "each one counts as an error"),
	INT("smtpd_line_length_limit", "$line_length_limit", 512, 0,
	    "longest SMTP command line the server reads (Tern)"),
	INT("smtpd_min_data_rate", "500", 1, 0,
	    "bytes per second a client must send with "
	    "smtpd_per_request_deadline"),
	BOOL("smtpd_per_request_deadline", "yes",
	    "smtpd_timeout limits a whole command or message, not each read "
	    "(Postfix says no; a client trickling bytes would hold a process "
	    "forever)"),
	INT("smtpd_recipient_limit", "1000", 1, 0,
	    "most recipients accepted in one message"),
	LIST("smtpd_recipient_restrictions", "",
	    "checks at RCPT TO, after smtpd_relay_restrictions"),
	LIST("smtpd_relay_restrictions",
	    "permit_mynetworks, permit_sasl_authenticated, "
	    "reject_unauth_destination",
	    "checks at RCPT TO that decide who may relay (Postfix defers "
	    "with defer_unauth_destination; Tern refuses outright)"),
	BOOL("smtpd_sasl_auth_enable", "no",
	    "the SMTP server offers AUTH"),
	STR("smtpd_sasl_db_file", "",
	    "sasldb file (saslpasswd2 -f) holding the SMTP users' passwords "
	    "(Tern); empty: as the Cyrus SASL application file says"),
	STR("smtpd_sasl_local_domain", "",
	    "SASL realm of the SMTP users; empty: none"),
	LIST("smtpd_sasl_mechanism_list", "",
	    "SASL mechanisms offered, e.g. PLAIN LOGIN (Tern); empty: as the "
	    "Cyrus SASL application file says"),
	STR("smtpd_sasl_path", "smtpd",
	    "Cyrus SASL application name (smtpd.conf)"),
	LIST("smtpd_sasl_proxy_logins", "",
	    "SASL logins that may give another user's name as authorization "
	    "identity (Tern); empty: none may"),
	LIST("smtpd_sasl_security_options", "noanonymous",
	    "SASL mechanisms properties required: noanonymous, noplaintext, "
	    "..."),
	LIST("smtpd_sasl_tls_security_options", "$smtpd_sasl_security_options",
	    "SASL mechanism properties required inside TLS"),
	LIST("smtpd_sender_login_maps", "",
	    "tables mapping a sender address to the logins allowed to use it"),
	LIST("smtpd_sender_restrictions", "",
	    "checks at MAIL FROM"),
	INT("smtpd_soft_error_limit", "10", 1, 0,
	    "errors after which each error reply is delayed"),
	TIME("smtpd_starttls_timeout", "300s", 's', 1,
	    "time limit for the SMTP server's TLS handshake"),
	TIME("smtpd_timeout", "300s", 's', 1,
	    "time limit for a client to send a command or a line of data"),
	BOOL("smtpd_tls_auth_only", "yes",
	    "offer AUTH only after STARTTLS (Postfix says no; passwords "
	    "should never cross in clear)"),
	STR("smtpd_tls_cert_file", "",
	    "the server's PEM certificate (its chain may follow)"),
	LIST("smtpd_tls_chain_files", "",
	    "PEM files with key, certificate and chain, tried in order"),
	STR("smtpd_tls_ciphers", "medium",
	    "cipher grade for opportunistic TLS (level may): high, medium"),
	STR("smtpd_tls_key_file", "$smtpd_tls_cert_file",
	    "the server's PEM private key"),
	INT("smtpd_tls_loglevel", "1", 0, 4,
	    "SMTP server TLS logging: 0 failures only, 1 a summary line per "
	    "connection, 2 the handshake (Postfix says 0)"),
	STR("smtpd_tls_mandatory_ciphers", "medium",
	    "cipher grade when TLS is required: high, medium"),
	LIST("smtpd_tls_mandatory_protocols", ">=TLSv1.2",
	    "TLS versions accepted when TLS is required"),
	LIST("smtpd_tls_protocols", ">=TLSv1.2",
	    "TLS versions accepted for opportunistic TLS (Postfix allows "
	    "TLSv1 and TLSv1.1)"),
	BOOL("smtpd_tls_received_header", "no",
	    "name the TLS protocol and cipher in the Received: header"),
	STR("smtpd_tls_security_level", "",
	    "inbound TLS: empty or none, may (offer STARTTLS), encrypt "
	    "(require it)"),
	TIME("smtpd_tls_session_cache_timeout", "3600s", 's', 0,
	    "how long a client may resume a TLS session; 0: never"),
	BOOL("smtpd_tls_wrappermode", "no",
	    "TLS from the first byte (port 465) instead of STARTTLS"),
	BOOL("smtputf8_enable", "yes",
	    "offer and use SMTPUTF8 (RFC 6531)"),
	TIME("stale_lock_time", "500s", 's', 1,
	    "age after which an mbox dot-lock file is removed as stale"),
	BOOL("strict_smtputf8", "no",
	    "refuse non-ASCII envelope addresses unless MAIL FROM has "
	    "SMTPUTF8"),
	STR("syslog_name", "tern",
	    "prefix of log lines: NAME/smtpd[pid]"),
	LIST("transport_maps", "",
	    "tables mapping a recipient or domain to transport:nexthop"),
	LIST("virtual_alias_domains", "$virtual_alias_maps",
	    "domains whose every address is an alias to elsewhere"),
	INT("virtual_alias_expansion_limit", "1000", 1, 0,
	    "most addresses one recipient may expand to in virtual_alias_maps"),
	LIST("virtual_alias_maps", "",
	    "tables rewriting recipient addresses to other addresses"),
	INT("virtual_alias_recursion_limit", "1000", 1, 0,
	    "deepest nesting of virtual_alias_maps lookups for one address"),
	LIST("virtual_gid_maps", "",
	    "tables giving the group id for each virtual mailbox"),
	STR("virtual_mailbox_base", "",
	    "folder prefixed to every path in virtual_mailbox_maps"),
	LIST("virtual_mailbox_domains", "$virtual_mailbox_maps",
	    "domains with mailboxes for users who are not system accounts"),
	SIZE("virtual_mailbox_limit", "51200000", 0,
	    "largest virtual mbox file or single Maildir message in bytes; "
	    "0: no limit"),
	LIST("virtual_mailbox_maps", "",
	    "tables mapping each virtual address to its mailbox path"),
	INT("virtual_minimum_uid", "100", 1, 0,
	    "smallest user id a virtual mailbox may be owned by"),
	LIST("virtual_uid_maps", "",
	    "tables giving the user id for each virtual mailbox"),
};

const size_t param_count = sizeof(param_table) / sizeof(param_table[0]);

const struct param_def *
param_find(const char *name)
{
	size_t lo = 0, hi = param_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, param_table[mid].name);

		if (c == 0)
			return &param_table[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const char *
param_type_name(enum param_type type)
{
	switch (type) {
	case PARAM_STR:
		return "string";
	case PARAM_BOOL:
		return "boolean";
	case PARAM_INT:
		return "integer";
	case PARAM_SIZE:
		return "size";
	case PARAM_TIME:
		return "time";
	case PARAM_LIST:
		return "list";
	}
	return "unknown";
}
