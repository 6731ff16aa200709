/*
 * ternqueue - list the mail queue and ask for deliveries, in the manner
 * of Postfix's postqueue(1) (man ternqueue(1)).
 *
 *	ternqueue [-c config_dir] -p		listing in mailq's shape
 *	ternqueue [-c config_dir] -j		one JSON object per message
 *	ternqueue [-c config_dir] -f		flush: retry deferred mail now
 *	ternqueue [-c config_dir] -s site	flush mail for one domain
 *	ternqueue [-c config_dir] -i queue_id	retry one message now
 *
 * Listing asks the showq service (showq(8), public/showq), which runs as
 * mail_owner, so that every user may list the queue the same way; when
 * the service cannot be reached (the mail system is down) ternqueue
 * reads the queue folders itself, which works for root and mail_owner
 * (lib/showq.h). The flush requests go to
 * qmgr's socket (qmgr_client.h); with qmgr down they fail with "mail
 * system is down" and exit status EX_UNAVAILABLE, as postqueue does.
 * authorized_mailq_users and authorized_flush_users say who may list
 * and who may flush (both default to everybody); root and mail_owner
 * always may.
 *
 * Exit status: 0 done, EX_USAGE (64) for bad arguments, EX_NOPERM (77)
 * for a user who may not, EX_UNAVAILABLE (69) when qmgr cannot be
 * reached, 1 for a configuration error or an unreadable queue.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "priv.h"
#include "qmgr_client.h"
#include "queue.h"
#include "showq.h"
#include "submit.h"

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: ternqueue [-c config_dir] -p | -j | -f | "
	    "-s site | -i queue_id\n");
	exit(EX_USAGE);
}

/* Refuse a user whom param does not list (root and mail_owner pass). */
static void
check_user(const char *param, const char *what)
{
	struct priv_user me, owner;
	char *err = NULL;
	int r;

	if (getuid() == 0)
		return;
	if (priv_user_lookup(config_str("mail_owner"), &owner) == 0) {
		r = owner.uid == getuid();
		priv_user_free(&owner);
		if (r)
			return;
	}
	if (priv_user_lookup_uid(getuid(), &me) < 0) {
		log_set_fatal_status(EX_NOPERM);
		msg_fatal("uid %lu has no account: not allowed to %s",
		    (unsigned long)getuid(), what);
	}
	r = submit_user_listed(param, me.name, &err);
	if (r < 0) {
		log_set_fatal_status(EX_TEMPFAIL);
		msg_fatal("%s: %s", param, err);
	}
	if (r == 0) {
		log_set_fatal_status(EX_NOPERM);
		msg_fatal("user %s(%lu) is not allowed to %s (%s)", me.name,
		    (unsigned long)getuid(), what, param);
	}
	priv_user_free(&me);
}

static void
request_failed(const char *what)
{
	log_set_fatal_status(EX_UNAVAILABLE);
	msg_fatal("cannot %s - mail system is down (%s)", what,
	    strerror(errno));
}

int
main(int argc, char **argv)
{
	const char *config_dir = NULL, *site = NULL, *id = NULL, *qd;
	char *err = NULL;
	int ch, mode = 0;

	log_init_tool("ternqueue");
	while ((ch = getopt(argc, argv, "c:fi:jps:v")) != -1) {
		switch (ch) {
		case 'c':
			config_dir = optarg;
			break;
		case 'f':
		case 'j':
		case 'p':
			if (mode != 0)
				usage();
			mode = ch;
			break;
		case 'i':
			if (mode != 0)
				usage();
			mode = ch;
			id = optarg;
			break;
		case 's':
			if (mode != 0)
				usage();
			mode = ch;
			site = optarg;
			break;
		case 'v':
			break;
		default:
			usage();
		}
	}
	if (optind != argc || mode == 0)
		usage();
	if (config_load(config_dir, &err) < 0)
		msg_fatal("%s", err);
	qd = config_str("queue_directory");

	switch (mode) {
	case 'p':
	case 'j':
		check_user("authorized_mailq_users", "list the mail queue");
		if (showq_list(qd, mode == 'j' ? SHOWQ_JSON : SHOWQ_TEXT,
		    stdout) < 0)
			return 1;
		if (fflush(stdout) != 0 || ferror(stdout))
			msg_fatal("write to standard output: %s",
			    strerror(errno));
		return 0;
	case 'f':
		check_user("authorized_flush_users", "flush the mail queue");
		if (qmgr_flush(qd, NULL) < 0)
			request_failed("flush mail queue");
		return 0;
	case 's':
		check_user("authorized_flush_users", "flush the mail queue");
		if (*site == '\0' || strchr(site, '@') != NULL) {
			fprintf(stderr, "ternqueue: -s wants a domain, not "
			    "\"%s\"\n", site);
			return EX_USAGE;
		}
		if (qmgr_flush(qd, site) < 0)
			request_failed("flush mail queue");
		return 0;
	case 'i':
		check_user("authorized_flush_users", "flush the mail queue");
		if (!queue_id_valid(id)) {
			fprintf(stderr, "ternqueue: %s: not a queue ID\n", id);
			return EX_USAGE;
		}
		if (qmgr_deliver_now(qd, id) < 0)
			request_failed("schedule mail for delivery");
		return 0;
	}
	usage();
}
