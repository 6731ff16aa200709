/*
 * ternsuper - the queue operations that need the queue owner's hands,
 * in the manner of Postfix's postsuper(1) (man ternsuper(8)).
 *
 *	ternsuper [-c config_dir] [-sSv] [-d id] [-h id] [-H id] [-r id]
 *	    [queue ...]
 *
 *	-d id	delete the message		"ID: removed"
 *	-h id	put it on hold			"ID: placed on hold"
 *	-H id	release it from hold		"ID: released from hold"
 *	-r id	requeue it: back to incoming/ so qmgr resolves its
 *		recipients again		"ID: requeued"
 *	-s	check the queue structure: create missing folders, move
 *		files that are misplaced or do not parse to corrupt/,
 *		remove stale temporary files of crashed writers
 *	-S	statistics: messages and bytes in each folder
 * id is a queue ID, "ALL", or "-" for IDs read from standard input; the
 * options may be repeated. Trailing queue names (incoming, active,
 * deferred, hold, corrupt, maildrop) restrict the operations to those
 * folders. Each action is logged (maillog_file or syslog) and repeated
 * on standard error, with a count at the end ("Deleted: 2 messages").
 *
 * Who: root or mail_owner; anyone else is refused before anything is
 * touched. Root gives up its privileges for mail_owner's, except for -s,
 * which may have to create and chown folders.
 *
 * Racing qmgr: qmgr owns the files in active/ and keeps state about
 * them in memory, so while the mail system runs (master's pid file is
 * held, or qmgr answers on its socket) ternsuper does not touch a file
 * there that qmgr has in memory. -d and -h of a message in active/ are
 * asked of qmgr instead (request=delete / hold, qmgr_client.h): it drops
 * the message's waiting deliveries, lets those in progress end (an agent
 * mid-delivery is never cut off, so such a recipient may still get the
 * message), and then removes the file or moves it to hold/ itself,
 * logging "ID: removed" or "ID: placed on hold" as qmgr; ternsuper says
 * on standard error what was done or will be done. When qmgr answers
 * that it does not have the message in memory, the file in active/ is
 * one qmgr will not touch before it restarts (it takes a file into
 * memory in the same step as it moves it into active/, and lets go of
 * both together), so ternsuper handles it directly like any other file.
 * (Only a qmgr restart between that answer and ternsuper's rename could
 * make the two meet; the file would then be removed or held under a
 * running delivery, whose result still lands in the same file: nothing
 * is delivered twice.) With qmgr unreachable while master runs, or for
 * -r, a named message in active/ is refused with "try again" and ALL
 * skips it (and says how many it skipped). Every other move is a
 * rename(2), which is atomic against qmgr's own renames of the same
 * file: whoever comes second gets ENOENT, and ternsuper then looks again
 * where the message went. So a message is never lost or duplicated by
 * ternsuper; at worst an operation is refused and has to be repeated.
 *
 * Exit status: 0 when everything asked for was done, 1 when a named
 * message could not be handled or the queue could not be read,
 * EX_USAGE (64) for bad arguments, EX_NOPERM (77) for a user who is
 * neither root nor mail_owner.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "alloc.h"
#include "attr.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "pidfile.h"
#include "priv.h"
#include "qmgr_client.h"
#include "queue.h"
#include "strv.h"

enum op_kind { OP_DELETE, OP_HOLD, OP_RELEASE, OP_REQUEUE, OP_NKINDS };

static const struct {
	char	 flag;
	const char *done;	/* log: "ID: removed" */
	const char *total;	/* summary: "Deleted" */
	/* Where the operation looks by default (Postfix's choice). */
	enum queue_folder from[4];
	size_t	 nfrom;
} kinds[OP_NKINDS] = {
	[OP_DELETE] = { 'd', "removed", "Deleted",
	    { QUEUE_HOLD, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED }, 4 },
	[OP_HOLD] = { 'h', "placed on hold", "Placed on hold",
	    { QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED }, 3 },
	[OP_RELEASE] = { 'H', "released from hold", "Released from hold",
	    { QUEUE_HOLD }, 1 },
	[OP_REQUEUE] = { 'r', "requeued", "Requeued",
	    { QUEUE_HOLD, QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED }, 4 },
};

struct op {
	enum op_kind kind;
	const char *arg;	/* queue ID, "ALL" or "-" */
};

static struct {
	const char *queue_dir;
	int	 system_up;	/* master or qmgr alive: hands off active/ */
	enum queue_folder only[QUEUE_NFOLDERS];	/* queue arguments */
	size_t	 nonly;
	size_t	 done[OP_NKINDS];
	size_t	 skipped_active;
	int	 failed;
	char	**notify_new;	/* requeued: tell qmgr */
	char	**deliver;	/* released: ask qmgr to try now */
} ts;

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: ternsuper [-c config_dir] [-sSv] [-d id] "
	    "[-h id] [-H id] [-r id] [queue ...]\n"
	    "       id: a queue ID, ALL, or - to read IDs from standard "
	    "input\n");
	exit(EX_USAGE);
}

/* ---- who may run us ---- */

static void
check_invoker(struct priv_user *owner)
{
	const char *name = config_str("mail_owner");

	if (priv_user_lookup(name, owner) < 0) {
		log_set_fatal_status(EX_CONFIG);
		msg_fatal("mail_owner %s: %s", name,
		    errno == 0 ? "no such user" : strerror(errno));
	}
	if (getuid() != 0 && getuid() != owner->uid) {
		log_set_fatal_status(EX_NOPERM);
		msg_fatal("ternsuper must be run by the super-user or "
		    "mail_owner (%s)", owner->name);
	}
}

/* Is any part of the mail system running? Then active/ is qmgr's. */
static int
mail_system_up(void)
{
	char *path;
	pid_t pid;
	int fd;

	path = xasprintf("%s/master.pid", config_str("data_directory"));
	pid = pidfile_holder(path);
	free(path);
	if (pid > 0)
		return 1;
	path = qmgr_socket_path(ts.queue_dir);
	fd = unix_connect(path, 1000);
	free(path);
	if (fd >= 0) {
		close(fd);
		return 1;
	}
	return 0;
}

/* ---- one message ---- */

/* The folder among from[] that holds id now; -1 when none does. */
static int
locate(const char *id, const enum queue_folder *from, size_t nfrom,
    enum queue_folder *where)
{
	struct stat st;
	char *path;

	for (size_t i = 0; i < nfrom; i++) {
		path = queue_path(ts.queue_dir, from[i], id);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
			free(path);
			*where = from[i];
			return 0;
		}
		free(path);
	}
	return -1;
}

/* The folders an operation looks in: its own, cut down to the queue
 * arguments when there are any. */
static size_t
op_folders(enum op_kind k, enum queue_folder *out)
{
	size_t n = 0;

	if (ts.nonly == 0) {
		memcpy(out, kinds[k].from, kinds[k].nfrom * sizeof(*out));
		return kinds[k].nfrom;
	}
	for (size_t i = 0; i < ts.nonly; i++) {
		if (k == OP_RELEASE && ts.only[i] != QUEUE_HOLD)
			continue;
		if (k == OP_HOLD && ts.only[i] == QUEUE_HOLD)
			continue;
		out[n++] = ts.only[i];
	}
	return n;
}

/*
 * -d / -h of a message in active/ while the mail system runs: ask qmgr.
 * 1 when qmgr took it (done, or when its deliveries in progress end),
 * 0 when qmgr does not have it in memory (the file is ours to handle),
 * -1 when qmgr cannot be asked (said why).
 */
static int
ask_qmgr(enum op_kind k, const char *id)
{
	char *why = NULL;
	long n;
	int r;

	r = qmgr_cancel(ts.queue_dir, id, k == OP_HOLD, &n, &why);
	switch (r) {
	case QMGR_CANCEL_NOTFOUND:
		return 0;
	case QMGR_CANCEL_DONE:
		/* qmgr logged it; the operator sees it here. */
		fprintf(stderr, "%s: %s: %s\n", log_progname(), id,
		    kinds[k].done);
		ts.done[k]++;
		return 1;
	case QMGR_CANCEL_PENDING:
		fprintf(stderr, "%s: %s: %s when the %ld deliver%s in "
		    "progress end%s\n", log_progname(), id,
		    k == OP_HOLD ? "will be placed on hold" :
		    "will be removed", n, n == 1 ? "y" : "ies",
		    n == 1 ? "s" : "");
		ts.done[k]++;
		return 1;
	}
	if (why != NULL)
		msg_warn("%s: qmgr refused to %s it: %s", id,
		    k == OP_HOLD ? "hold" : "delete", why);
	else
		msg_warn("%s: cannot ask qmgr: %s", id, strerror(errno));
	free(why);
	return -1;
}

/* Make the next-try time now, so that a released message is due. */
static void
make_due(const char *id)
{
	char *path = queue_path(ts.queue_dir, QUEUE_DEFERRED, id);

	if (utimensat(AT_FDCWD, path, NULL, 0) < 0 && errno != ENOENT)
		msg_warn("%s: set next-try time: %s", id, strerror(errno));
	free(path);
}

/*
 * Apply k to id. named: the user gave this ID (not ALL), so failing to
 * find or handle it is an error. 0 done or skipped, -1 failed.
 */
static int
apply(enum op_kind k, const char *id, int named)
{
	enum queue_folder from[QUEUE_NFOLDERS], where, to;
	char *path, *err = NULL;
	size_t nfrom = op_folders(k, from);
	int r;

	if (!queue_id_valid(id)) {
		msg_warn("%s: not a queue ID", id);
		return -1;
	}
	/* A rename that loses to qmgr's own gets ENOENT: look again. */
	for (int attempt = 0; attempt < 5; attempt++) {
		if (locate(id, from, nfrom, &where) < 0) {
			/* Taken by qmgr while we tried? Then -d and -h
			 * go on there (below); -r waits. */
			if (attempt > 0 && ts.system_up &&
			    locate(id, (enum queue_folder[]){ QUEUE_ACTIVE },
			    1, &where) == 0) {
				if (k != OP_DELETE && k != OP_HOLD)
					break;
			} else {
				if (named || attempt > 0)
					msg_warn("%s: no such message%s", id,
					    attempt > 0 ? " any more" : "");
				return named ? -1 : 0;
			}
		}
		if (where == QUEUE_ACTIVE && ts.system_up) {
			if (k != OP_DELETE && k != OP_HOLD)
				break;
			if ((r = ask_qmgr(k, id)) > 0)
				return 0;
			if (r < 0)
				break;
			/* Not in qmgr's memory: a file left alone. */
		}
		switch (k) {
		case OP_DELETE:
			path = queue_path(ts.queue_dir, where, id);
			r = unlink(path);
			if (r < 0)
				err = xasprintf("remove %s: %s", path,
				    strerror(errno));
			free(path);
			break;
		case OP_HOLD:
			r = queue_move(ts.queue_dir, id, where, QUEUE_HOLD,
			    &err);
			break;
		case OP_RELEASE:
			r = queue_move(ts.queue_dir, id, where,
			    QUEUE_DEFERRED, &err);
			if (r == 0) {
				make_due(id);
				strv_add(&ts.deliver, id);
			}
			break;
		case OP_REQUEUE:
			to = QUEUE_INCOMING;
			r = where == to ? 0 : queue_move(ts.queue_dir, id,
			    where, to, &err);
			if (r == 0)
				strv_add(&ts.notify_new, id);
			break;
		default:
			r = -1;
			break;
		}
		if (r == 0) {
			msg_info("%s: %s", id, kinds[k].done);
			ts.done[k]++;
			return 0;
		}
		if (errno != ENOENT) {
			msg_warn("%s: %s", id, err);
			free(err);
			return -1;
		}
		free(err);
		err = NULL;
	}
	/* In active/ while the mail system runs: qmgr's. */
	if (named) {
		msg_warn("%s: is being delivered (active/); not %s - try "
		    "again in a moment, or stop Tern first", id,
		    kinds[k].done);
		return -1;
	}
	ts.skipped_active++;
	return 0;
}

/* Every queue ID in the folders of k, sorted. */
static char **
all_ids(enum op_kind k)
{
	enum queue_folder from[QUEUE_NFOLDERS];
	size_t nfrom = op_folders(k, from);
	struct dirent *de;
	char **ids = xcalloc(1, sizeof(char *)), *path;
	DIR *d;

	for (size_t i = 0; i < nfrom; i++) {
		path = xasprintf("%s/%s", ts.queue_dir,
		    queue_folder_name(from[i]));
		if ((d = opendir(path)) == NULL) {
			if (errno != ENOENT) {
				msg_warn("open %s: %s", path,
				    strerror(errno));
				ts.failed = 1;
			}
			free(path);
			continue;
		}
		while ((de = readdir(d)) != NULL)
			if (queue_id_valid(de->d_name))
				strv_add(&ids, de->d_name);
		closedir(d);
		free(path);
	}
	return ids;
}

static void
run_op(const struct op *op)
{
	struct buf line;
	char **ids;
	int c;

	if (strcmp(op->arg, "ALL") == 0) {
		ids = all_ids(op->kind);
		for (size_t i = 0; ids[i] != NULL; i++)
			(void)apply(op->kind, ids[i], 0);
		strv_free(ids);
	} else if (strcmp(op->arg, "-") == 0) {
		/* One ID per line (white space around it ignored). */
		buf_init(&line, 4096);
		do {
			c = getchar();
			if (c != EOF && c != '\n') {
				if (c != ' ' && c != '\t' && c != '\r' &&
				    buf_putc(&line, c) < 0) {
					msg_warn("line too long on standard "
					    "input");
					ts.failed = 1;
					break;
				}
				continue;
			}
			if (line.len > 0 &&
			    apply(op->kind, buf_cstr(&line), 1) < 0)
				ts.failed = 1;
			buf_reset(&line);
		} while (c != EOF);
		buf_free(&line);
	} else if (apply(op->kind, op->arg, 1) < 0)
		ts.failed = 1;
}

/* ---- -s: structure ---- */

static void
to_corrupt(enum queue_folder f, const char *name, const char *why)
{
	char *src, *dst;
	struct stat st;

	src = xasprintf("%s/%s/%s", ts.queue_dir, queue_folder_name(f),
	    name);
	dst = xasprintf("%s/corrupt/%s", ts.queue_dir, name);
	/* Never overwrite what corrupt/ already keeps. */
	for (int n = 1; lstat(dst, &st) == 0 && n < 1000; n++) {
		free(dst);
		dst = xasprintf("%s/corrupt/%s.%d", ts.queue_dir, name, n);
	}
	if (rename(src, dst) == 0)
		msg_info("%s/%s: %s; moved to %s", queue_folder_name(f), name,
		    why, dst);
	else if (errno != ENOENT) {
		msg_warn("%s/%s: %s; cannot move it to corrupt/: %s",
		    queue_folder_name(f), name, why, strerror(errno));
		ts.failed = 1;
	}
	free(src);
	free(dst);
}

/* 1 when nobody holds the writer's lock on a ".tmp-" file. */
static int
tmp_abandoned(const char *path)
{
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) < 0)
		return 0;
	r = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return r;
}

static void
check_folder(enum queue_folder f)
{
	struct queue_msg *m;
	struct dirent *de;
	struct stat st;
	char *dir, *path, *err = NULL;
	DIR *d;
	int corrupt;

	dir = xasprintf("%s/%s", ts.queue_dir, queue_folder_name(f));
	if ((d = opendir(dir)) == NULL) {
		msg_warn("open %s: %s", dir, strerror(errno));
		ts.failed = 1;
		free(dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		if (strncmp(de->d_name, ".tmp-", 5) == 0) {
			/* queue_cleanup() did incoming/ and maildrop/; a
			 * temporary name anywhere else is a stray. */
			if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
			    tmp_abandoned(path) && unlink(path) == 0)
				msg_info("removed stale temporary file %s",
				    path);
		} else if (lstat(path, &st) < 0)
			;	/* gone meanwhile */
		else if (!S_ISREG(st.st_mode))
			to_corrupt(f, de->d_name, "not a regular file");
		else if (!queue_id_valid(de->d_name))
			to_corrupt(f, de->d_name, "not a queue ID");
		else if (queue_open(path, 0, &m, &corrupt, &err) == 0)
			queue_close(m);
		else {
			if (corrupt)
				to_corrupt(f, de->d_name, err);
			free(err);
			err = NULL;
		}
		free(path);
	}
	closedir(d);
	free(dir);
}

static void
check_structure(const struct priv_user *owner)
{
	static const char *const sockets[] = { "private", "public" };
	char *err = NULL, *dir;
	struct stat st;
	int n;

	for (int f = 0; f < QUEUE_NFOLDERS; f++) {
		dir = queue_path(ts.queue_dir, (enum queue_folder)f, "");
		if (lstat(dir, &st) < 0 && errno == ENOENT)
			msg_info("creating missing folder %s", dir);
		free(dir);
	}
	if (queue_make_folders(ts.queue_dir, &err) < 0) {
		msg_warn("%s", err);
		free(err);
		ts.failed = 1;
		return;
	}
	/* Folders root just made belong to mail_owner, as master has it. */
	for (int f = 0; geteuid() == 0 && f < QUEUE_NFOLDERS + 2; f++) {
		dir = f < QUEUE_NFOLDERS ? xasprintf("%s/%s", ts.queue_dir,
		    queue_folder_name((enum queue_folder)f)) :
		    xasprintf("%s/%s", ts.queue_dir,
		    sockets[f - QUEUE_NFOLDERS]);
		if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) &&
		    st.st_uid != owner->uid) {
			if (lchown(dir, owner->uid, owner->gid) == 0)
				msg_info("%s: owner set to %s", dir,
				    owner->name);
			else
				msg_warn("chown %s: %s", dir,
				    strerror(errno));
		}
		free(dir);
	}
	if ((n = queue_cleanup(ts.queue_dir)) > 0)
		msg_info("removed %d stale temporary file%s", n,
		    n == 1 ? "" : "s");
	/* maildrop/ is pickup's to judge; corrupt/ is where things go. */
	check_folder(QUEUE_INCOMING);
	check_folder(QUEUE_DEFERRED);
	check_folder(QUEUE_HOLD);
	if (!ts.system_up)
		check_folder(QUEUE_ACTIVE);
}

/* ---- -S: statistics ---- */

static void
statistics(void)
{
	unsigned long long total_bytes = 0, bytes;
	size_t total = 0, count;
	struct dirent *de;
	struct stat st;
	char *dir, *path;
	DIR *d;

	printf("%-10s %10s %16s\n", "folder", "messages", "bytes");
	for (int f = 0; f < QUEUE_NFOLDERS; f++) {
		count = 0;
		bytes = 0;
		dir = xasprintf("%s/%s", ts.queue_dir,
		    queue_folder_name((enum queue_folder)f));
		if ((d = opendir(dir)) == NULL) {
			msg_warn("open %s: %s", dir, strerror(errno));
			ts.failed = 1;
			free(dir);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0 ||
			    strncmp(de->d_name, ".tmp-", 5) == 0)
				continue;
			path = xasprintf("%s/%s", dir, de->d_name);
			if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
				count++;
				bytes += (unsigned long long)st.st_size;
			}
			free(path);
		}
		closedir(d);
		free(dir);
		printf("%-10s %10zu %16llu\n",
		    queue_folder_name((enum queue_folder)f), count, bytes);
		total += count;
		total_bytes += bytes;
	}
	printf("%-10s %10zu %16llu\n", "total", total, total_bytes);
}

/* ---- main ---- */

static void
open_log(void)
{
	const char *file = config_str("maillog_file");

	log_set_syslog_name(config_str("syslog_name"));
	if (*file != '\0')
		log_open(LOG_TO_FILE, file);
	else
		log_open(LOG_TO_SYSLOG, NULL);
	log_also_stderr(1);
}

int
main(int argc, char **argv)
{
	struct op *ops = NULL;
	struct priv_user owner;
	const char *config_dir = NULL;
	char *err = NULL;
	size_t nops = 0;
	int ch, structure = 0, stats = 0, stdin_used = 0;
	enum op_kind k;

	log_init_tool("ternsuper");
	while ((ch = getopt(argc, argv, "c:d:h:H:r:sSv")) != -1) {
		switch (ch) {
		case 'c':
			config_dir = optarg;
			continue;
		case 's':
			structure = 1;
			continue;
		case 'S':
			stats = 1;
			continue;
		case 'v':
			continue;
		case 'd':
			k = OP_DELETE;
			break;
		case 'h':
			k = OP_HOLD;
			break;
		case 'H':
			k = OP_RELEASE;
			break;
		case 'r':
			k = OP_REQUEUE;
			break;
		default:
			usage();
		}
		if (strcmp(optarg, "-") == 0 && stdin_used++)
			usage();	/* standard input is read once */
		ops = xreallocarray(ops, nops + 1, sizeof(*ops));
		ops[nops].kind = k;
		ops[nops].arg = optarg;
		nops++;
	}
	for (; optind < argc; optind++) {
		if (ts.nonly == QUEUE_NFOLDERS ||
		    queue_folder_lookup(argv[optind], &ts.only[ts.nonly]) < 0) {
			fprintf(stderr, "ternsuper: unknown queue \"%s\"\n",
			    argv[optind]);
			usage();
		}
		ts.nonly++;
	}
	if (nops == 0 && !structure && !stats)
		usage();
	if (config_load(config_dir, &err) < 0)
		msg_fatal("%s", err);
	check_invoker(&owner);
	open_log();
	ts.queue_dir = config_str("queue_directory");
	if (chdir(ts.queue_dir) < 0)
		msg_fatal("queue_directory %s: %s", ts.queue_dir,
		    strerror(errno));
	ts.system_up = mail_system_up();

	if (structure)
		check_structure(&owner);
	if (geteuid() == 0 && priv_drop(owner.uid, owner.gid,
	    owner.name) < 0)
		msg_fatal("cannot become mail_owner %s: %s", owner.name,
		    strerror(errno));
	for (size_t i = 0; i < nops; i++)
		run_op(&ops[i]);
	for (size_t i = 0; ts.notify_new != NULL && ts.notify_new[i] != NULL;
	    i++)
		(void)qmgr_notify_new(ts.queue_dir, ts.notify_new[i]);
	for (size_t i = 0; ts.deliver != NULL && ts.deliver[i] != NULL; i++)
		(void)qmgr_deliver_now(ts.queue_dir, ts.deliver[i]);
	for (int i = 0; i < OP_NKINDS; i++)
		if (ts.done[i] > 0)
			msg_info("%s: %zu message%s", kinds[i].total,
			    ts.done[i], ts.done[i] == 1 ? "" : "s");
	if (ts.skipped_active > 0)
		msg_info("Skipped: %zu message%s being delivered (active/); "
		    "try again in a moment", ts.skipped_active,
		    ts.skipped_active == 1 ? "" : "s");
	if (stats)
		statistics();
	if (fflush(stdout) != 0 || ferror(stdout))
		msg_fatal("write to standard output: %s", strerror(errno));
	strv_free(ts.notify_new);
	strv_free(ts.deliver);
	priv_user_free(&owner);
	free(ops);
	return ts.failed ? 1 : 0;
}
