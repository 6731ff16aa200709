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
 * Reply (agent -> qmgr), after the agent has finished:
 *	result=INDEX STATUS DSN REASON	once per recipient of the request;
 *					STATUS sent|deferred|bounced,
 *					DSN "2.0.0" and REASON in xtext
 *	relay=TEXT			what to log as relay= (optional)
 *	status=0
 * The agent opens the queue file itself (read-only) by ID; the message
 * never travels over the socket. An agent that dies mid-request gives
 * qmgr a read error: every recipient of the request is deferred.
 */
#ifndef TERN_DELIVER_H
#define TERN_DELIVER_H

#include <stddef.h>

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
};

struct deliver_request {
	char		*queue_id;
	char		*folder;
	char		*sender;
	char		*nexthop;
	struct deliver_rcpt *rcpts;
	size_t		 nrcpts;
	char		*relay;		/* reply */
};

/* Free what the request holds (not the struct itself) and zero it. */
void	deliver_request_free(struct deliver_request *);
void	deliver_add_rcpt(struct deliver_request *, size_t index,
	    const char *addr);
/* Set recipient i's outcome (agent side). */
void	deliver_set_result(struct deliver_request *, size_t i,
	    enum deliver_status, const char *dsn, const char *reason);
const char *deliver_status_name(enum deliver_status);

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
 * sets every recipient's result), send the results on out_fd. Errors
 * end the session with a warning; the descriptors stay the caller's.
 */
void	deliver_agent_serve(int in_fd, int out_fd, int timeout_ms,
	    void (*deliver)(struct deliver_request *));

#endif
