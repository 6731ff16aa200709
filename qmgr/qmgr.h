/*
 * qmgr.h - what the parts of the queue manager share (private to qmgr/
 * and to its unit tests).
 *
 * qmgr is one long-lived process (event_server_main) that owns active/:
 *	qmgr.c		main, the request socket (qmgr_client.h), timers
 *	qmgr_scan.c	incoming/ and deferred/ into active/, within the
 *			active limit; active/ leftovers at start; corrupt/
 *	qmgr_message.c	one message in active/: resolve its recipients,
 *			queue its deliveries, record results, and at the
 *			end remove it, defer it or bounce it
 *	qmgr_resolve.c	recipient -> (transport, nexthop) or a verdict:
 *			virtual alias rewriting, address classes
 *	qmgr_deliver.c	transports and destinations, concurrency limits,
 *			the non-blocking conversation with delivery agents
 *	qmgr_bounce.c	RFC 3464 delivery status notifications
 *	qmgr_backoff.c	retry times, queue lifetimes, delay formatting
 * The pure parts (resolve, bounce rendering, backoff) are linked into
 * unit tests in tests/unit/.
 */
#ifndef TERN_QMGR_H
#define TERN_QMGR_H

#include <stddef.h>
#include <time.h>

#include "buf.h"

struct event_loop;
struct queue_msg;
struct stream;

/* ---- qmgr_resolve.c ---- */

enum qmgr_route_status {
	ROUTE_DELIVER,		/* hand to transport/nexthop */
	ROUTE_DEFER,		/* temporary: dsn 4.x.x and reason */
	ROUTE_BOUNCE,		/* permanent: dsn 5.x.x and reason */
};

struct qmgr_route {
	char	*addr;		/* the final address */
	enum qmgr_route_status status;
	char	*transport;	/* ROUTE_DELIVER: "local" */
	char	*nexthop;	/* ROUTE_DELIVER: "example.com" */
	char	*dsn;		/* ROUTE_DEFER, ROUTE_BOUNCE */
	char	*reason;
};

struct qmgr_routes {
	struct qmgr_route *v;
	size_t	 n;
	int	 rewritten;	/* virtual_alias_maps changed it */
};

/* The reason relay mail is deferred until the smtp transport exists. */
#define QMGR_RELAY_DSN		"4.3.5"
#define QMGR_RELAY_REASON	"relay delivery is not available yet " \
				"(smtp transport)"

/* Read the resolver's parameters and open its tables; a malformed table
 * name is fatal (a configuration error). Call again after config_set. */
void	qmgr_resolve_init(void);
void	qmgr_resolve_free(void);
/*
 * Resolve one envelope recipient. rewrite: apply virtual_alias_maps
 * (not for recipients that already came out of an expansion). Always
 * gives at least one route; a table error or a runaway expansion gives
 * one ROUTE_DEFER route for the whole recipient.
 */
void	qmgr_resolve(const char *rcpt, int rewrite, struct qmgr_routes *);
void	qmgr_routes_free(struct qmgr_routes *);

/* ---- qmgr_backoff.c ---- */

/* Seconds until the next attempt for a message of this age: the age,
 * kept within [min, max], so attempts grow apart as it ages. */
unsigned long qmgr_backoff(double age, unsigned long min_backoff,
	    unsigned long max_backoff);
/* 1 when a message of this age has outlived its queue lifetime. */
int	qmgr_expired(double age, int null_sender, unsigned long max_lifetime,
	    unsigned long bounce_lifetime);
/* Seconds in Postfix's log style: "0" (under 10ms), "0.07", "1.2", "43". */
void	qmgr_format_delay(char *out, size_t outlen, double seconds);
/* Wall clock as seconds with fractions. */
double	qmgr_now(void);

/* ---- qmgr_bounce.c ---- */

struct qmgr_dsn_rcpt {
	const char *addr;	/* Final-Recipient */
	const char *orcpt;	/* ORCPT "rfc822;addr", or NULL */
	const char *dsn;	/* "5.1.1" */
	const char *reason;	/* why */
};

struct qmgr_dsn_info {
	const char *queue_id;	/* the original message */
	const char *sender;	/* its sender, who gets the report */
	const char *myhostname;
	const char *message_id;	/* Message-ID of the report, no <> */
	const char *boundary;
	const char *envid;	/* ENVID, or NULL */
	int	 ret_hdrs;	/* RET=HDRS: headers only */
	time_t	 arrival;
	time_t	 now;
	const char *content;	/* the original (headers and body, LF) */
	size_t	 content_len;	/* bytes at content */
	size_t	 size_limit;	/* bounce_size_limit */
};

/* Queue file attributes smtpd stores: RET (FULL, HDRS), ENVID (decoded). */
#define QMGR_ATTR_DSN_RET	"ret"
#define QMGR_ATTR_DSN_ENVID	"envid"
/* Set on a file qmgr wrote: the recipients are already rewritten. */
#define QMGR_ATTR_EXPANDED_FROM	"expanded_from"
#define QMGR_ATTR_BOUNCE_OF	"bounce_of"

/* The report as a whole message (headers and body, LF line ends). */
void	qmgr_dsn_render(struct buf *out, const struct qmgr_dsn_info *,
	    const struct qmgr_dsn_rcpt *, size_t n);
/* 1 when the recipient's NOTIFY asks for a failure report. */
int	qmgr_dsn_wanted(int notify);
/*
 * Queue a report about recipients r[0..n) of msg, from the null sender
 * to msg's sender, as a new file in incoming/. 0 and the new queue ID
 * in *new_id (allocated), or -1 with *err.
 */
int	qmgr_bounce_write(const char *queue_dir, const struct queue_msg *,
	    const struct qmgr_dsn_rcpt *r, size_t n, char **new_id,
	    char **err);
/* RFC 5322 date of t in local time: "Tue, 5 Mar 2024 10:00:00 +0100". */
void	qmgr_rfc5322_date(char *out, size_t outlen, time_t t);

/* ---- qmgr_deliver.c ---- */

struct qmgr_message;

/* Queue a delivery of recipients idx[0..n) of msg to transport/nexthop
 * and start what the concurrency limits allow. Takes idx. */
void	qmgr_deliver_queue(struct qmgr_message *, const char *transport,
	    const char *nexthop, size_t *idx, size_t n);
/* Start queued deliveries while limits allow. */
void	qmgr_deliver_schedule(void);
/* Deliveries in flight and waiting, across all transports. */
size_t	qmgr_deliver_pending(void);
/* At exit, after the event loop is gone: drop every delivery. */
void	qmgr_deliver_shutdown(void);
/*
 * Read what the peer has sent on s into its input buffer without ever
 * waiting. 1 when a whole attribute list is buffered (attr_recv() then
 * returns at once), 0 when more is needed, or a STREAM_* error (EOF,
 * or STREAM_TOOLONG past max bytes).
 */
int	qmgr_attr_ready(struct stream *, size_t max);

/* ---- qmgr_message.c ---- */

enum qmgr_outcome {
	OUTCOME_NONE,		/* not tried this time */
	OUTCOME_SENT,
	OUTCOME_DEFERRED,
	OUTCOME_BOUNCED,
};

struct qmgr_rcpt_state {
	char	*addr;		/* delivered to (after rewriting) */
	char	*orig;		/* before rewriting, or NULL */
	enum qmgr_outcome outcome;
	char	*dsn;		/* this attempt's status */
	char	*reason;
};

struct qmgr_message {
	struct qmgr_message *next, *prev;
	char	*id;
	struct queue_msg *qm;
	double	 active_time;	/* entered active/ (wall clock) */
	struct qmgr_rcpt_state *rs;	/* one per queue file recipient */
	size_t	 jobs;		/* deliveries not finished */
	int	 io_error;	/* a result could not be recorded */
	int	 finishing;
};

/* Take id (now in active/) into memory and start its deliveries. */
void	qmgr_message_activate(const char *id);
/* A recipient's delivery result (from qmgr_deliver.c). */
void	qmgr_message_result(struct qmgr_message *, size_t idx,
	    enum qmgr_outcome, const char *dsn, const char *reason,
	    const char *relay, const double delays[4]);
/* A delivery of msg ended; finishes msg when it was the last one. */
void	qmgr_message_job_done(struct qmgr_message *);
/* 1 when id is in memory (being worked on). */
int	qmgr_message_busy(const char *id);
/* Forget every message at exit (their files stay in active/). */
void	qmgr_message_shutdown(void);

/* ---- qmgr_scan.c ---- */

/* Move active/ leftovers of a previous run back to incoming/. */
void	qmgr_scan_recover(void);
/* incoming/ into active/ while there is room. */
void	qmgr_scan_incoming(void);
/* Due deferred/ files into active/ while there is room; all=1: every
 * deferred file is due (flush). site: only mail with a recipient there. */
void	qmgr_scan_deferred(int all, const char *site);
/* Move one message now (request=deliver); 0, or -1 when not found. */
int	qmgr_scan_one(const char *id);
/* Ask for a scan soon (coalesced); called when room frees up. */
void	qmgr_scan_soon(int incoming, int deferred);

/* ---- qmgr.c: the process-wide state ---- */

struct qmgr_state {
	struct event_loop *loop;
	char	*queue_dir;
	char	*myhostname;
	size_t	 active_limit;	/* qmgr_message_active_limit */
	size_t	 nactive;	/* messages in memory */
	struct qmgr_message *msgs;
	unsigned long min_backoff, max_backoff;
	unsigned long max_lifetime, bounce_lifetime;
	unsigned long queue_run_delay;
	unsigned long delivery_timeout;	/* daemon_timeout, seconds */
	int	 backlog_incoming;	/* incoming/ had more than room */
	int	 backlog_deferred;
	int	 stopping;
};

extern struct qmgr_state qmgr;

#endif
