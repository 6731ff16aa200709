/*
 * qmgr_client - how other programs poke qmgr.
 *
 * qmgr listens on the Unix socket of its master.cf service: public/qmgr
 * (or private/qmgr when master.cf marks it private). Requests use attr.h
 * framing and get "status=0" back, except those with reply=no:
 *	request=new	queue_id=ID	a file was committed to incoming/
 *	request=flush	[site=DOMAIN]	retry deferred mail now
 *	request=deliver	queue_id=ID	retry one message now
 *	request=delete	queue_id=ID	ternsuper -d of mail in active/
 *	request=hold	queue_id=ID	ternsuper -h of mail in active/
 * A wake-up that cannot be delivered (qmgr down) is not an error for the
 * caller: qmgr scans incoming/ when it starts and every queue_run_delay,
 * so the message is found anyway. The functions return 0 when qmgr
 * answered, -1 (errno set) when it could not be reached.
 * qmgr_notify_new() sends reply=no and returns 0 once the request is
 * written: it does not wait for qmgr.
 */
#ifndef TERN_QMGR_CLIENT_H
#define TERN_QMGR_CLIENT_H

int	qmgr_notify_new(const char *queue_dir, const char *queue_id);
int	qmgr_flush(const char *queue_dir, const char *site);
int	qmgr_deliver_now(const char *queue_dir, const char *queue_id);
/*
 * Ask qmgr to delete (hold 0) or hold a message it may have in active/
 * (root and mail_owner only). QMGR_CANCEL_DONE: removed or moved to
 * hold/ already; QMGR_CANCEL_PENDING: it will be when the *deliveries
 * in progress have ended; QMGR_CANCEL_NOTFOUND: qmgr does not have it in
 * memory and leaves any file of that ID in active/ alone until it
 * restarts. -1 with errno when qmgr cannot be reached, or also with
 * *why (allocated) when it refused or does not know the request.
 */
#define QMGR_CANCEL_NOTFOUND	0
#define QMGR_CANCEL_DONE	1
#define QMGR_CANCEL_PENDING	2
int	qmgr_cancel(const char *queue_dir, const char *queue_id, int hold,
	    long *deliveries, char **why);
/* Path of qmgr's socket (allocated), the one that exists, or public/. */
char	*qmgr_socket_path(const char *queue_dir);

#endif
