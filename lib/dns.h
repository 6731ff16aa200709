/*
 * dns - DNS lookups through libunbound, for the smtp client (MX, A,
 * AAAA, TLSA) and the SMTP server (PTR for client names, TXT and A for
 * DNSBLs).
 *
 * A context is made once per process from main.cf: dns_forwarders
 * ("host" or "host@port" items) sends every query to those servers, as
 * tests do with a local unbound; empty, the servers of /etc/resolv.conf
 * and the names of /etc/hosts are used. dns_trust_anchor_file turns on
 * DNSSEC validation; without it every answer is "insecure".
 *
 * A lookup ends in one of a few outcomes that the caller turns into a
 * delivery decision: records found, the name does not exist (NXDOMAIN,
 * permanent), the name exists without records of that type (NODATA,
 * permanent), a null MX (RFC 7505: the domain takes no mail), or a
 * temporary failure (SERVFAIL, REFUSED, timeout, DNSSEC bogus, resolver
 * error). Each result also says whether DNSSEC proved it (secure),
 * could not (insecure) or found it forged or broken (bogus: always a
 * temporary failure, since trusting it is unsafe and it may heal).
 *
 * Lookups are asynchronous underneath (libunbound runs them in a thread
 * of its own and signals completion on dns_fd()). dns_lookup() waits for
 * one with a time limit, which is what a one-delivery-per-process client
 * wants; an event loop uses dns_lookup_start(), watches dns_fd() for
 * input and calls dns_process(). Nothing here is fatal: context errors
 * return NULL with a reason, lookup failures are results.
 */
#ifndef TERN_DNS_H
#define TERN_DNS_H

#include <stddef.h>

struct ub_result;

/* Record types (RFC 1035, 3596, 6698). */
#define DNS_T_A		1
#define DNS_T_PTR	12
#define DNS_T_MX	15
#define DNS_T_TXT	16
#define DNS_T_AAAA	28
#define DNS_T_TLSA	52

enum dns_status {
	DNS_FOUND,		/* records in rr[] */
	DNS_NXDOMAIN,		/* no such name (or a malformed name) */
	DNS_NODATA,		/* the name exists, no record of this type */
	DNS_NULLMX,		/* MX: "0 ." alone, the domain takes no mail */
	DNS_TEMPFAIL,		/* try again later */
};

enum dns_security {
	DNS_INSECURE,		/* not validated (no trust anchor, unsigned) */
	DNS_SECURE,		/* DNSSEC-validated */
	DNS_BOGUS,		/* validation failed; status is DNS_TEMPFAIL */
};

struct dns_rr {
	int		 type;
	unsigned	 ttl;
	unsigned	 pref;		/* MX preference */
	/* MX, PTR: the target host name, lower case, no final dot;
	 * A, AAAA: the address in text; TXT: the strings joined. */
	char		*text;
	int		 family;	/* A, AAAA: AF_INET, AF_INET6 */
	unsigned char	 addr[16];	/* A: 4 bytes, AAAA: 16 */
	unsigned char	 usage;		/* TLSA */
	unsigned char	 selector;	/* TLSA */
	unsigned char	 mtype;		/* TLSA matching type */
	unsigned char	*data;		/* TLSA: association data; TXT: raw */
	size_t		 len;
};

struct dns_result {
	enum dns_status	 status;
	enum dns_security security;
	int		 rcode;		/* DNS RCODE, -1 when there was none */
	int		 type;		/* what was asked */
	char		*name;		/* ... for whom */
	/* Not DNS_FOUND: why, in words ("Host not found, try again"). */
	char		*reason;
	struct dns_rr	*rr;
	size_t		 nrr;
};

struct dns_ctx;

/*
 * A context over forwarders (NULL or empty: /etc/resolv.conf and
 * /etc/hosts) with an optional trust anchor file (NULL or ""). NULL
 * with *err allocated on a bad forwarder address or an unreadable
 * trust anchor file.
 */
struct dns_ctx *dns_ctx_new(char *const *forwarders, const char *ta_file,
	    char **err);
/* The same from main.cf's dns_forwarders and dns_trust_anchor_file. */
struct dns_ctx *dns_ctx_from_config(char **err);
/* Cancels lookups in flight (their callbacks are not called). */
void	dns_ctx_free(struct dns_ctx *);

/*
 * Look name up and wait at most timeout_ms (<= 0: no limit of ours).
 * Fills *res (free it with dns_result_free) and returns res->status.
 */
enum dns_status dns_lookup(struct dns_ctx *, const char *name, int type,
	    int timeout_ms, struct dns_result *res);
void	dns_result_free(struct dns_result *);

/*
 * Asynchronous lookups. done is called from dns_process() with the
 * result, which the callback may keep only by copying: it is freed when
 * the callback returns. Returns an id > 0 for dns_cancel(), or -1 with
 * *err (the lookup could not be started: a result is not delivered).
 */
typedef void (*dns_done_fn)(struct dns_result *, void *arg);
int	dns_lookup_start(struct dns_ctx *, const char *name, int type,
	    dns_done_fn done, void *arg, char **err);
/* Becomes readable when a lookup has finished. */
int	dns_fd(const struct dns_ctx *);
/* Run the callbacks of finished lookups; 0, or -1 on a resolver error. */
int	dns_process(struct dns_ctx *);
void	dns_cancel(struct dns_ctx *, int id);

/*
 * Turn libunbound's answer (err: its return code, 0 when it answered)
 * into a result; the unbound result is not freed. Exposed for the unit
 * tests, which feed it made-up answers.
 */
void	dns_result_from_unbound(int err, const struct ub_result *,
	    const char *name, int type, struct dns_result *res);
/* Sort MX records by preference, in random order among equal ones. */
void	dns_mx_sort(struct dns_rr *, size_t n);
/* "4.3.2.1.in-addr.arpa" or the ip6.arpa name for an address (family
 * AF_INET with 4 bytes, AF_INET6 with 16); allocated. */
char	*dns_reverse_name(int family, const unsigned char *addr);
const char *dns_status_name(enum dns_status);
const char *dns_type_name(int type);

#endif
