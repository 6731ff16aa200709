/*
 * showq - the queue listing of ternqueue -p / -j, mailq and sendmail
 * -bp, in Postfix's shapes (postqueue(1)), because operators' scripts
 * parse them:
 *
 *	-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------
 *	3F2A41A0C4B*    1274 Wed Aug 26 09:14:02  alerts@example.org
 *	      (connect to mx.example.net[203.0.113.25]:25: Connection refused)
 *	                                         oncall@example.net
 *
 *	-- 1 Kbytes in 1 Request.
 *
 * or "Mail queue is empty". "*" marks a message in active/, "!" one in
 * hold/. Each recipient still to be delivered is listed; a deferral
 * reason is printed right-aligned above the recipients it concerns,
 * once for a run of recipients with the same reason. The JSON form is
 * one object per message per line, with Postfix's member names.
 *
 * Two ways to get it. The queue folders are mail_owner's alone, so only
 * root and mail_owner can read them (showq_print()); everybody else asks
 * the showq service (showq(8), public/showq), which runs as mail_owner
 * and writes the same listing. showq_list() is what the tools do: ask
 * the service, as Postfix's postqueue always does, so every user gets
 * the listing the same way; only when the service cannot be reached
 * (the mail system is down) read the folders directly, which works for
 * root and mail_owner.
 *
 * The showq service protocol (attr.h framing): the client sends
 *	format=text | json
 * and gets "status=0" followed by the listing until the end of the
 * connection, or "status=1" and "reason=..." (not allowed, queue not
 * readable). A message that moves while the listing runs may be listed
 * twice or not at all, as in Postfix.
 */
#ifndef TERN_SHOWQ_H
#define TERN_SHOWQ_H

#include <stdio.h>

#define SHOWQ_TEXT	0
#define SHOWQ_JSON	1

/* The master.cf service name: public/showq. */
#define SHOWQ_SERVICE	"showq"

struct showq;

/* Read the list of queue files under queue_dir. NULL with *err
 * (allocated) when a queue folder cannot be read. */
struct showq *showq_scan(const char *queue_dir, char **err);
/* Print what showq_scan() found; a file that vanished since or does not
 * parse is skipped. Frees the scan. */
void	showq_write(struct showq *, int format, FILE *out);
/* Free a scan that will not be written. */
void	showq_free(struct showq *);

/* showq_scan() and showq_write(): 0, or -1 after printing why on
 * stderr (a queue folder that cannot be read; errno kept). */
int	showq_print(const char *queue_dir, int format, FILE *out);

/*
 * Ask the showq service for the listing and copy it to out. 0 when it
 * came whole; SHOWQ_DOWN (errno set) when the service cannot be reached
 * and nothing was printed; SHOWQ_FAILED with *err (allocated) when it
 * refused or broke off.
 */
#define SHOWQ_DOWN	(-1)
#define SHOWQ_FAILED	(-2)
int	showq_ask(const char *queue_dir, int format, FILE *out, char **err);

/* The listing for ternqueue and mailq: showq_ask(), or showq_print()
 * when the service is down. 0, or -1 after printing why on stderr. */
int	showq_list(const char *queue_dir, int format, FILE *out);

#endif
