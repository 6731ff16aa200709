/*
 * submit - the contract of local submission between sendmail (any local
 * user) and the pickup daemon (mail_owner). No set-uid or set-gid
 * program is involved:
 *
 *	maildrop/ is mode 3733 (sticky, set-gid, rwx-wx-wx), owned by
 *	mail_owner and mail_owner's group. Anyone may create a file in it;
 *	nobody but mail_owner may list it; the sticky bit keeps users from
 *	removing or renaming each other's files; the set-gid bit gives each
 *	new file mail_owner's group. sendmail writes an ordinary queue file
 *	there (queue_create(..., QUEUE_MAILDROP), mode 0640), so its owner
 *	can write it and mail_owner's group can read it, and other users
 *	can do neither.
 *
 *	The submitter is the file's owner as the kernel recorded it
 *	(fstat st_uid), never a header or a sender the user wrote. pickup
 *	reads the file, takes the sender as written only when the owner is
 *	in local_sender_forge_users and otherwise uses login@$myorigin,
 *	drops attributes it does not know, and writes a new file into
 *	incoming/ for qmgr.
 *
 *	When the daemons are down the file simply waits in maildrop/:
 *	pickup scans the folder when it starts, on every master.cf wakeup
 *	and whenever the folder changes (inotify), and sendmail also
 *	pokes it through its socket so mail moves at once.
 *
 * Functions here report failure as -1 with errno or *err; none is fatal.
 */
#ifndef TERN_SUBMIT_H
#define TERN_SUBMIT_H

#include <sys/types.h>

/* Attributes sendmail may put in a maildrop file; pickup ignores any
 * other. The DSN names are those qmgr reads (qmgr/qmgr.h). */
#define SUBMIT_ATTR_FULL_NAME	"full_name"	/* -F, for a From: */
#define SUBMIT_ATTR_DSN_RET	"ret"	/* -R: FULL or HDRS */
#define SUBMIT_ATTR_DSN_ENVID	"envid"	/* -V */
#define SUBMIT_ATTR_BODY	"body"		/* -B: 7BIT, 8BITMIME */

/* Attributes pickup sets on the incoming file. */
#define SUBMIT_ATTR_UID		"submit_uid"
#define SUBMIT_ATTR_USER	"submit_user"

/* The pickup service in master.cf. */
#define SUBMIT_PICKUP_SERVICE	"pickup"

/*
 * 1 when login matches the list parameter param (authorized_submit_users,
 * local_sender_forge_users, ...), 0 when it does not, -1 with *err when
 * a table cannot be read. Items are tried in order and the first match
 * decides: a plain name matches that login exactly, "type:name" matches
 * when the table has the login as a key (static:anyone matches
 * everybody), and "!item" is a match that says no.
 */
int	submit_user_listed(const char *param, const char *login, char **err);

/*
 * The envelope sender pickup records. given is what the maildrop file
 * says (the sender sendmail was told, "" for the null sender), login
 * the owner's login name. When may_forge is 0 the result is always
 * login@myorigin; otherwise it is given, with @myorigin appended when
 * it has no domain. Allocated.
 */
char	*submit_sender(const char *given, const char *login, int may_forge,
	    const char *myorigin);

/* addr, or addr@domain when addr is not empty and has no '@'. */
char	*submit_qualify(const char *addr, const char *domain);

/*
 * Ask pickup to look at maildrop/ now: one short request to
 * queue_dir/public/pickup (or private/). 0 when pickup answered, -1
 * with errno when it could not be reached; callers ignore it, since
 * pickup finds the file at its next scan anyway.
 */
int	submit_poke_pickup(const char *queue_dir);

#endif
