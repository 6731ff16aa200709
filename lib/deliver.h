/*
 * deliver - the delivery request qmgr sends to a delivery agent (local,
 * smtp) and the per-recipient results it gets back, over the agent's
 * Unix socket in private/ (attr.h framing).
 *
 * Request (qmgr -> agent):
 *	request=deliver
 *	queue_id=ID
 *	folder=active
 *	sender=SENDER			(empty: null sender)
 *	nexthop=NEXTHOP			(domain, [host]:port, or empty)
 *	rcpt=INDEX ADDRESS		once per recipient; ADDRESS is the
 *					resolved address in xtext (after
 *					virtual alias rewriting), INDEX the
 *					recipient's place in the queue file
 *	orig=INDEX ADDRESS		(optional) the address the sender
 *					gave, when it was rewritten, xtext
 *	times=ARRIVAL ACTIVE START	(optional) when the message arrived,
 *					entered active/, and this request
 *					left the queue: seconds since the
 *					epoch, for the delays= of the log
 *	fallback=yes			(optional) qmgr hands the request to
 *					a fallback relay when the
 *					destination cannot be reached, so
 *					such an outcome is not logged
 * Reply (agent -> qmgr), after the agent has finished:
 *	result=INDEX STATUS DSN REASON	once per recipient of the request;
 *					STATUS sent|deferred|bounced,
 *					DSN "2.0.0" and REASON in xtext
 *	relay=TEXT			what to log as relay= (optional)
 *	logged=yes			the agent logged every result (the
 *					to=<...>, status= lines come from the
 *					agent, as in Postfix); without it
 *					qmgr logs them
 *	status=0
 * The agent opens the queue file itself (read-only) by ID; the message
 * never travels over the socket. An agent that dies mid-request gives
 * qmgr a read error: every recipient of the request is deferred.
 */
#ifndef TERN_DELIVER_H
#define TERN_DELIVER_H

#include <stddef.h>

struct attrs;
struct stream;

enum deliver_status {
	DELIVER_SENT,
	DELIVER_DEFERRED,
	DELIVER_BOUNCED,
};

struct deliver_rcpt {
	size_t		 index;		/* in the queue file */
	char		*addr;		/* resolved address */
	enum deliver_status status;	/* reply */
	char		*dsn;		/* reply: "2.0.0" */
	char		*reason;	/* reply: text */
	char		*orig;		/* as the sender gave it, or NULL */
	int		 logged;	/* agent: its log line is written */
};

struct deliver_request {
	char		*queue_id;
	char		*folder;
	char		*sender;
	char		*nexthop;
	struct deliver_rcpt *rcpts;
	size_t		 nrcpts;
	double		 t_arrival;	/* times=; 0 when not given */
	double		 t_active;
	double		 t_start;
	double		 t_recv;	/* agent: when the request came */
	int		 fallback;	/* fallback=yes */
	char		*relay;		/* reply */
	int		 logged;	/* reply: logged=yes */
};

/* Free what the request holds (not the struct itself) and zero it. */
void	deliver_request_free(struct deliver_request *);
void	deliver_add_rcpt(struct deliver_request *, size_t index,
	    const char *addr);
/* Set recipient i's outcome (agent side). */
void	deliver_set_result(struct deliver_request *, size_t i,
	    enum deliver_status, const char *dsn, const char *reason);
const char *deliver_status_name(enum deliver_status);
/* The request as attributes (qmgr side), appended to *a. */
void	deliver_request_attrs(const struct deliver_request *, struct attrs *);

/*
 * A delay for the log in Postfix's shape: "0", "0.09", "1.2", "42".
 * Negative and NaN are "0".
 */
void	deliver_format_delay(char *out, size_t outlen, double seconds);
/* Seconds since the epoch, with the fraction, for times= and delays. */
double	deliver_now(void);
/*
 * 1 when a request's results say the destination could not be reached
 * at all: every recipient deferred with a 4.4.x status (connection
 * refused or lost, DNS failure); 0 when any was accepted, refused by
 * the server, or had no result. dsn[i] may be NULL (no result).
 */
int	deliver_site_failure(const char *const *dsn, const int *deferred,
	    size_t n);
/*
 * Log recipient i's outcome in Postfix's shape, "ID: to=<TO>,
 * orig_to=<ORIG>, relay=RELAY, delay=, delays=a/b/c/d, dsn=, status=S
 * (REASON)", and mark it logged. to NULL is the recipient's address
 * (an agent that expanded it, like local, names the final address);
 * orig_to appears when the address the sender gave differs from to.
 */
void	deliver_log(struct deliver_request *, size_t i, const char *to,
	    enum deliver_status, const char *dsn, const char *reason);

/* qmgr side: send the request, wait for the reply, fill in results.
 * 0, or a STREAM_* error (then the caller defers every recipient; each
 * is already set to deferred, DSN 4.3.0, with the reason). A reply
 * without status=0 or without a result for every recipient is an
 * error (EPROTO). */
int	deliver_call(struct stream *, struct deliver_request *);
/* agent side: read a request (0 or STREAM_*), later send its results.
 * recv overwrites *req: free an earlier request first. A recipient
 * with no result set is sent back deferred. */
int	deliver_request_recv(struct stream *, struct deliver_request *);
int	deliver_reply_send(struct stream *, const struct deliver_request *);

/*
 * The whole life of a delivery agent's session (local, smtp): read
 * requests on in_fd until the peer closes, call deliver() for each (it
 * sets every recipient's result, and may log some itself), log the
 * results not logged yet, send them on out_fd. Errors end the session
 * with a warning; the descriptors stay the caller's.
 */
void	deliver_agent_serve(int in_fd, int out_fd, int timeout_ms,
	    void (*deliver)(struct deliver_request *));
/*
 * The same for an agent that finishes work of several requests at once
 * (local syncs a Maildir's new/ once for every message linked there).
 * qmgr may send a connection's next requests before the first reply
 * (qmgr_deliver.c, <transport>_delivery_batch_limit); each turn takes
 * the first request, waiting for it, and then those already received,
 * up to max, without waiting for more. deliver() runs for each in order,
 * then commit(reqs, n) once: it may change results (a sync that failed
 * defers what it should have made durable). Then the results are logged
 * and the replies sent, in the order of the requests. commit NULL or
 * max 1 is deliver_agent_serve().
 */
void	deliver_agent_serve_batch(int in_fd, int out_fd, int timeout_ms,
	    void (*deliver)(struct deliver_request *),
	    void (*commit)(struct deliver_request *, size_t), size_t max);

#endif
