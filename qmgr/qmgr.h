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
 *			virtual alias rewriting, address classes,
 *			transport_maps, relayhost
 *	qmgr_sched.c	transports and destinations: slow start, dead
 *			destinations, round-robin between destinations
 *	qmgr_deliver.c	the non-blocking conversation with delivery
 *			agents, results back to qmgr_message.c
 *	qmgr_bounce.c	RFC 3464 delivery status notifications
 *	qmgr_backoff.c	retry times, queue lifetimes, delay formatting
 * The pure parts (resolve, sched, bounce rendering, backoff) are linked
 * into unit tests in tests/unit/.
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
	ROUTE_DISCARD,		/* transport_maps "discard:": done, not sent */
};

struct qmgr_route {
	char	*addr;		/* the final address */
	enum qmgr_route_status status;
	char	*transport;	/* ROUTE_DELIVER: "local", "smtp", ... */
	char	*nexthop;	/* ROUTE_DELIVER: "example.com", "[h]:25" */
	int	 fallback;	/* ROUTE_DELIVER: nexthop is the recipient's
				 * domain, so fallback_relay may stand in */
	char	*dsn;		/* ROUTE_DEFER, ROUTE_BOUNCE, ROUTE_DISCARD */
	char	*reason;
};

struct qmgr_routes {
	struct qmgr_route *v;
	size_t	 n;
	int	 rewritten;	/* virtual_alias_maps changed it */
};

/* Read the resolver's parameters and open its tables; a malformed table
 * name is fatal (a configuration error). Call again after config_set. */
void	qmgr_resolve_init(void);
void	qmgr_resolve_free(void);
/*
 * Resolve one envelope recipient of mail from sender ("" for the null
 * sender). rewrite: apply virtual_alias_maps (not for recipients that
 * already came out of an expansion). Always gives at least one route; a
 * table error or a runaway expansion gives one ROUTE_DEFER route for the
 * whole recipient.
 */
void	qmgr_resolve(const char *rcpt, const char *sender, int rewrite,
	    struct qmgr_routes *);
void	qmgr_routes_free(struct qmgr_routes *);
/*
 * 1 when a flush for site concerns mail for this recipient domain or
 * next hop: the domain is site or below it, or the next hop's host
 * ("[mx.b.test]:2525" -> mx.b.test) is. Case does not matter.
 */
int	qmgr_site_match(const char *site, const char *domain,
	    const char *nexthop);

/* ---- qmgr_backoff.c ---- */

/* Seconds until the next attempt for a message of this age: the age,
 * kept within [min, max], so attempts grow apart as it ages. */
unsigned long qmgr_backoff(double age, unsigned long min_backoff,
	    unsigned long max_backoff);
/* 1 when a message of this age has outlived its queue lifetime. */
int	qmgr_expired(double age, int null_sender, unsigned long max_lifetime,
	    unsigned long bounce_lifetime);

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
	int	 delayed;	/* a delay warning, not a failure report */
	time_t	 retry_until;	/* delayed: when the message expires */
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
/* The same for a delay warning about recipients still being tried
 * (their dsn 4.x.y); retry_until is when the message will expire. */
int	qmgr_delay_write(const char *queue_dir, const struct queue_msg *,
	    const struct qmgr_dsn_rcpt *r, size_t n, time_t retry_until,
	    char **new_id, char **err);
/* RFC 5322 date of t in local time: "Tue, 5 Mar 2024 10:00:00 +0100". */
void	qmgr_rfc5322_date(char *out, size_t outlen, time_t t);

/* ---- qmgr_sched.c: destinations, slow start, dead destinations ---- */

struct qmgr_message;
struct qmgr_transport;
struct qmgr_dest;

/* One delivery request: recipients of one message for one destination. */
struct qmgr_job {
	struct qmgr_job *next;		/* in its destination's queue */
	struct qmgr_job *batch;		/* sent after it on its connection */
	struct qmgr_job *rprev, *rnext;	/* among running jobs */
	struct qmgr_message *msg;
	struct qmgr_dest *dest;
	size_t	*idx;		/* queue file recipient indices */
	size_t	 n;
	int	 fallback;	/* fallback_relay entries tried so far, or
				 * -1: this mail may not use them */
	struct stream *s;	/* the agent connection while running */
	int	 reused;	/* s served an earlier request: kept, or
				 * carrying the one ahead in a batch */
	unsigned long timer;
	double	 t_start;	/* taken from the queue */
	double	 t_conn;	/* connected and request sent */
};

/*
 * A destination: (transport, nexthop). Its window is how many of its
 * deliveries may run at once: it starts at initial_destination_
 * concurrency, grows by one with each delivery that reached the
 * destination, up to the transport's limit, and shrinks by one with
 * each that could not connect. failed counts those failures in units of
 * the window (pseudo-cohorts); at the failed-cohort limit the
 * destination is dead: its mail is deferred without new connections
 * until dead_until, when it gets another chance at the initial window.
 */
struct qmgr_dest {
	struct qmgr_dest *next, *prev;	/* the transport's ring, in order */
	struct qmgr_dest *hnext;	/* the transport's lookup chain */
	struct qmgr_transport *tp;
	char	*nexthop;
	char	*rcpt;		/* per-recipient destination: whose */
	struct qmgr_job *head, *tail;	/* waiting */
	size_t	 waiting;
	int	 active;		/* running */
	int	 window;
	double	 failed;
	int	 dead;
	double	 dead_until;
	char	*dead_dsn;		/* why, for the mail deferred */
	char	*dead_reason;		/* meanwhile */
	unsigned long dead_timer;	/* qmgr_deliver.c's revival timer */
	struct qmgr_agent *idle;	/* kept agent connections, newest first */
	int	 nidle;
	struct qmgr_agent *closing;	/* let go, the agent not done yet */
	int	 nclosing;
};

/*
 * An agent connection kept by qmgr_deliver.c after a request to its
 * destination, for that destination's next request, or one it has let
 * go whose agent has not closed its end yet (it may still be ending an
 * SMTP session with QUIT). Either holds an agent process and maybe a
 * session at the destination, so it counts against the destination's
 * window and the transport's process limit like a running delivery.
 */
struct qmgr_agent {
	struct qmgr_agent *next;
	struct qmgr_dest *dest;
	struct stream *s;
	unsigned long timer;
};

struct qmgr_transport {
	struct qmgr_transport *next;
	char	*name;		/* "smtp", "relay", "local" */
	char	*service;	/* master.cf service: private/<service> */
	int	 dest_limit;	/* <name>_destination_concurrency_limit */
	int	 init_window;	/* initial_destination_concurrency */
	int	 total_limit;	/* the service's process limit */
	double	 cohort_limit;	/* ..._concurrency_failed_cohort_limit */
	size_t	 rcpt_limit;	/* <name>_destination_recipient_limit */
	size_t	 batch_limit;	/* <name>_delivery_batch_limit; 1 */
	int	 active;
	int	 nidle;		/* kept agent connections, all destinations */
	int	 nclosing;	/* let go, not closed by the agent yet */
	struct qmgr_dest *dests, *dests_tail;
	struct qmgr_dest *cursor;	/* last served, for round-robin */
	struct qmgr_dest **hash;	/* qmgr_dest_for() lookup */
};

struct qmgr_transport *qmgr_transport_new(const char *name,
	    const char *service, int dest_limit, int init_window,
	    int total_limit, int cohort_limit, size_t rcpt_limit);
/* Free a transport with its destinations and their waiting jobs. */
void	qmgr_transport_free(struct qmgr_transport *);
/* The destination for nexthop (case-insensitive), made when missing. */
struct qmgr_dest *qmgr_dest_get(struct qmgr_transport *, const char *nexthop);
/*
 * The same for one recipient at nexthop when rcpt is not NULL: a
 * transport whose recipient limit is 1 (local, by default) queues and
 * limits concurrency per recipient, as Postfix does, so that one
 * mailbox's slow or many deliveries do not hold up the others'.
 */
struct qmgr_dest *qmgr_dest_for(struct qmgr_transport *, const char *nexthop,
	    const char *rcpt);
/* Free d when nothing waits, runs or is kept there and it is not dead;
 * 1 when freed. */
int	qmgr_dest_release(struct qmgr_dest *);
/*
 * Queue recipients idx[0..n) of msg for d, as jobs of at most the
 * transport's recipient limit each (msg->jobs counts them). Returns the
 * number of jobs. idx is copied.
 */
size_t	qmgr_dest_enqueue(struct qmgr_dest *, struct qmgr_message *,
	    const size_t *idx, size_t n, int fallback);
/* Take the first waiting job of d off its queue (NULL when none). */
struct qmgr_job *qmgr_dest_pop(struct qmgr_dest *);
/*
 * The next job to start for the transport: destinations are served in
 * turn after the one served last, each only while it is alive and has
 * fewer running and kept than its window, all while the transport is
 * under its process limit (a destination with a kept connection may
 * always use it: that takes no new process). The job is counted as
 * running (qmgr_sched_done ends that). NULL when nothing may start now.
 */
struct qmgr_job *qmgr_sched_next(struct qmgr_transport *);
/*
 * A job to send to the agent behind the one just started at d (taken:
 * how many the connection carries so far), on the same connection
 * before its reply: only while d may not start another delivery now
 * (its window, or the transport's processes, are full: the job would
 * wait anyway) and the batch is under the transport's batch limit. The
 * agent does them one after the other and may finish them together
 * (local syncs a Maildir once for all). Such a job takes no slot of its
 * own: it runs in the slot of the one ahead of it. NULL when none.
 */
struct qmgr_job *qmgr_sched_rider(struct qmgr_dest *, size_t taken);
/*
 * 1 when a job waits that only the transport's process limit holds
 * back, and kept connections of other destinations take part of it:
 * closing one of those would let the job start.
 */
int	qmgr_sched_crowded(const struct qmgr_transport *);
/*
 * 1 when an agent connection that just finished a delivery for d may be
 * kept for d's next one: d is alive, the connection stays within its
 * window, and the process it holds is not the last free one of the
 * transport while another destination waits for a process.
 */
int	qmgr_sched_may_keep(const struct qmgr_dest *);
/* A running job has ended: release its slots. Does not free it. */
void	qmgr_sched_done(struct qmgr_job *);
/* A delivery reached the destination: the window grows, failures are
 * forgotten. */
void	qmgr_dest_success(struct qmgr_dest *);
/*
 * A delivery could not reach the destination (dsn, reason): the window
 * shrinks; returns 1 when the destination has now failed enough to be
 * dead (until now + backoff), 0 otherwise.
 */
int	qmgr_dest_failure(struct qmgr_dest *, const char *dsn,
	    const char *reason, double now, unsigned long backoff);
/* Alive again (backoff over, or a flush): the initial window. */
void	qmgr_dest_revive(struct qmgr_dest *);
void	qmgr_job_free(struct qmgr_job *);
/*
 * Take every waiting job of msg off d's queue and free it (an operator
 * deleted msg or put it on hold: ternsuper -d / -h). msg->jobs goes down
 * by the number taken, which is returned; running jobs are not touched.
 */
size_t	qmgr_dest_cancel(struct qmgr_dest *, struct qmgr_message *);

/* ---- qmgr_deliver.c ---- */

/* Queue a delivery of recipients idx[0..n) of msg to transport/nexthop
 * and start what the concurrency limits allow. fallback: the route
 * allows fallback_relay. Takes idx. */
void	qmgr_deliver_queue(struct qmgr_message *, const char *transport,
	    const char *nexthop, int fallback, size_t *idx, size_t n);
/* Start queued deliveries while limits allow. */
void	qmgr_deliver_schedule(void);
/* Deliveries in flight and waiting, across all transports. */
size_t	qmgr_deliver_pending(void);
/* 1 while any delivery is in progress at an agent. */
int	qmgr_deliver_running(void);
/* qmgr.c: deliveries or syncs still running (a stop waits for them). */
int	qmgr_busy(void);
/* Give dead destinations another chance now: all of them (site NULL)
 * or those whose next hop qmgr_site_match()es site. */
void	qmgr_deliver_revive(const char *site);
/* At exit, after the event loop is gone: drop every delivery. */
void	qmgr_deliver_shutdown(void);
/* Take msg's waiting deliveries off every destination queue (see
 * qmgr_dest_cancel); its running ones go on. Returns how many. */
size_t	qmgr_deliver_cancel(struct qmgr_message *);

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
	int	 unsynced;	/* marks written, not yet fdatasynced */
	int	 finishing;
	int	 cancel;	/* QMGR_CANCEL_*: an operator's ternsuper */
};

/* Take id (now in active/) into memory and start its deliveries. */
void	qmgr_message_activate(const char *id);
/* A recipient's delivery result (from qmgr_deliver.c), logged unless
 * the agent that gave it logged it already. */
void	qmgr_message_result(struct qmgr_message *, size_t idx,
	    enum qmgr_outcome, const char *dsn, const char *reason,
	    const char *relay, const double delays[4], int logged);
/* When the message arrived, seconds since the epoch. */
double	qmgr_message_arrival(const struct qmgr_message *);
/* A delivery of msg ended; finishes msg when it was the last one. */
void	qmgr_message_job_done(struct qmgr_message *);
/* 1 when id is in memory (being worked on). */
int	qmgr_message_busy(const char *id);
/*
 * ternsuper -d / -h of a message in active/ (request=delete / hold):
 * its waiting deliveries are dropped, the running ones end as usual
 * (their results are recorded), and when the last has ended the file is
 * removed ("ID: removed") or moved to hold/ ("ID: placed on hold")
 * instead of being deferred. A delete wins over a hold. Returns -1 when
 * id is not in memory, 0 when it is done already, else the number of
 * deliveries still running.
 */
#define QMGR_CANCEL_NONE	0
#define QMGR_CANCEL_HOLD	1
#define QMGR_CANCEL_DELETE	2
long	qmgr_message_cancel(const char *id, int how);
/* Forget every message at exit (their files stay in active/). */
void	qmgr_message_shutdown(void);
/* qmgr_sync.c is done with msg: err is fdatasync's errno or 0. */
void	qmgr_message_synced(struct qmgr_message *, int err);

/* ---- qmgr_sync.c: done-marks made durable off the event loop ---- */

/* Start the sync threads (after qmgr.loop is set). */
void	qmgr_sync_init(void);
/* fdatasync msg's file in a thread, then qmgr_message_synced(). 0, or
 * -1 when there are no threads (sync it yourself). */
int	qmgr_sync_submit(struct qmgr_message *);
/* Messages handed over and not yet back. */
size_t	qmgr_sync_pending(void);
/* Let the threads finish what they have, and end them. */
void	qmgr_sync_shutdown(void);

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
	unsigned long delay_warning;	/* delay_warning_time; 0: never */
	unsigned long queue_run_delay;
	unsigned long delivery_timeout;	/* daemon_timeout, seconds */
	unsigned long agent_idle_ms;	/* qmgr_agent_idle_time_limit */
	int	 backlog_incoming;	/* incoming/ had more than room */
	int	 backlog_deferred;
	int	 stopping;
};

extern struct qmgr_state qmgr;

#endif
