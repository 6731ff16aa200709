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
 * The queue is read directly (queue folders are mail_owner's), so only
 * root and mail_owner can list it. A message that moves while the
 * listing runs may be listed twice or not at all, as in Postfix.
 */
#ifndef TERN_SHOWQ_H
#define TERN_SHOWQ_H

#include <stdio.h>

#define SHOWQ_TEXT	0
#define SHOWQ_JSON	1

/* List the queue under queue_dir to out. 0, or -1 after printing why
 * on stderr (a queue folder that cannot be read). */
int	showq_print(const char *queue_dir, int format, FILE *out);

#endif
