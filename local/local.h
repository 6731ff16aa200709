/*
 * local.h - what the parts of the local delivery agent share.
 *
 * local.c reads a delivery request from qmgr and hands each recipient to
 * local_deliver_rcpt(), which expands it (aliases, :include:, .forward)
 * and ends in one or more destinations: a mailbox (maildir.c, mbox.c), a
 * file, a command (local_command.c), a virtual mailbox (local_virtual.c)
 * or an address elsewhere, queued again (local_resend.c). Every step
 * reports into a struct local_result; nothing here is fatal to the
 * process: a problem with one recipient is that recipient's deferral or
 * bounce, never the loss of the message.
 *
 * Results use the enhanced status codes of RFC 3463: 2.0.0 delivered,
 * 4.x.x try again later (the message stays queued), 5.x.x bounce.
 */
#ifndef TERN_LOCAL_H
#define TERN_LOCAL_H

#include <stddef.h>
#include <sys/types.h>

#include "buf.h"
#include "deliver.h"
#include "priv.h"

struct queue_msg;
struct table;

/* Deepest nesting of aliases, includes and .forward files. */
#define LOCAL_MAX_DEPTH		20
/* Largest .forward or :include: file read. */
#define LOCAL_INCLUDE_MAX	(64 * 1024)
/* Most bytes of a command's output kept for a bounce reason. */
#define LOCAL_OUTPUT_MAX	4096

/* The outcome of one delivery step. */
struct local_result {
	enum deliver_status status;
	char	*dsn;		/* "2.0.0" */
	char	*reason;	/* "delivered to maildir" */
};

void	local_result_init(struct local_result *);
void	local_result_free(struct local_result *);
void	local_result_set(struct local_result *, enum deliver_status,
	    const char *dsn, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));
/* A system error: defer with 4.2.2 for a full quota, 4.3.0 for a
 * resource problem (no space, I/O), 4.2.0 for anything else. */
void	local_result_errno(struct local_result *, int err,
	    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void	local_result_copy(struct local_result *to,
	    const struct local_result *from);

/* The message being delivered, shared by every recipient of a request. */
struct local_msg {
	struct queue_msg *q;
	const char *queue_id;
	const char *sender;	/* "" for the null sender */
	char	**delivered_to;	/* Delivered-To: values in it, lowercased */
	struct deliver_request *req;	/* for the log; NULL: no lines */
	size_t	 rcpt;		/* the recipient of req being delivered */
};

/* Read the Delivered-To: headers of the message (local_msg.c). */
void	local_msg_scan(struct local_msg *);
int	local_msg_delivered_to(const struct local_msg *, const char *addr);
/*
 * Write prefix and then the message content to fd. With mbox set, lines
 * starting with "From " get a ">" and the copy ends with a blank line.
 * Returns 0, or -1 with errno from the failed read or write.
 */
int	local_msg_copy(const struct local_msg *, int fd, const char *prefix,
	    int mbox);
/* The "Return-Path:" and "Delivered-To:" lines that start a delivered
 * copy (allocated). */
char	*local_msg_prefix(const char *sender, const char *delivered_to);

/* ---- privileges (local_privs.c) ---- */

typedef void (*local_step_fn)(void *ctx, struct local_result *);

/*
 * Run fn in this process with uid/gid and the supplementary groups of
 * groups_name (NULL: gid alone) as its effective ids: as root by
 * switching them and back (priv_set_euid); as anybody else only when
 * they are our own, and otherwise not at all (deferred with the
 * reason). fn only reads and writes files: it never runs anything of
 * the user's (commands go through local_command_deliver, which forks
 * and drops for good).
 */
void	local_run_as(uid_t, gid_t, const char *groups_name, local_step_fn,
	    void *ctx, struct local_result *);
/* 0 when this process can act as uid/gid (it is root, or they are its
 * own), else -1 with *res deferred saying why. */
int	local_can_act_as(uid_t, gid_t, struct local_result *res);
/* A file read for a user: what stat(2) said and up to max bytes. */
struct local_file {
	int	 err;		/* errno of the open, 0 when it opened */
	uid_t	 uid;		/* owner */
	mode_t	 mode;
	unsigned long nlink;
	int	 too_large;	/* more than max bytes: data is empty */
	struct buf data;	/* only for a regular file */
};

/*
 * Read path (a final symbolic link is not followed: err ELOOP) with
 * uid/gid's privileges, so that a .forward or an :include: named by a
 * user can never show that user a file only root may read. 0 with *f
 * filled (f->err tells whether the file could be opened), or -1 with
 * *res deferred when the read could not even be tried. local_file_free
 * after 0.
 */
int	local_read_as(uid_t, gid_t, const char *groups_name, const char *path,
	    size_t max, struct local_file *f, struct local_result *res);
void	local_file_free(struct local_file *);

/* The user commands and files run as when root owns the alias, include
 * or .forward they came from: default_privs. 0, or -1 with *res set. */
int	local_default_privs(struct priv_user *, struct local_result *res);

/* ---- alias and .forward targets (local_alias.c) ---- */

enum local_target_kind {
	TARGET_ADDRESS,		/* user, user@domain */
	TARGET_MAILBOX,		/* \user: the mailbox, no more expansion */
	TARGET_COMMAND,		/* |command */
	TARGET_FILE,		/* /path (/path/ is a Maildir) */
	TARGET_INCLUDE,		/* :include:/path */
};

struct local_target {
	enum local_target_kind kind;
	char	*value;		/* without its |, \ or :include: */
};

/*
 * Split the right-hand side of an alias, or a .forward or :include:
 * file, into targets: separated by commas or line ends, each one
 * trimmed, a target in double quotes may hold commas and spaces, lines
 * starting with # are comments. Returns how many; *out is allocated
 * (local_targets_free). An empty target list is 0.
 */
size_t	local_targets_parse(const char *text, struct local_target **out);
void	local_targets_free(struct local_target *, size_t);
const char *local_target_kind_name(enum local_target_kind);

/* ---- mailboxes ---- */

/*
 * A Maildir file name that no other delivery uses:
 * SECONDS.M<usec>P<pid>Q<counter>.<host> with "/" and ":" in host
 * written as \057 and \072 (maildir.c).
 */
char	*maildir_unique_name(long sec, long usec, long pid,
	    unsigned long counter, const char *host);
/* Deliver into the Maildir at dir (created below its parent when
 * missing; create_parents also makes missing folders above it). limit:
 * largest message in bytes, 0 none. */
void	maildir_deliver(const struct local_msg *, const char *dir,
	    int create_parents, const char *delivered_to, size_t limit,
	    struct local_result *);
/*
 * Deferred sync, for the requests of one batch: until
 * maildir_sync_pending(), a delivery made for a request (m->req set)
 * leaves the fsync of new/ to it, keeping the folder open, and says
 * sent. maildir_sync_pending() fsyncs each such folder once, closes it,
 * and for a folder whose fsync failed sets each waiting recipient's
 * result in its request deferred and logs the branch again; then
 * deferred sync is off. The requests must outlive the call.
 */
void	maildir_defer_sync(void);
void	maildir_sync_pending(void);
/*
 * fsync now the folders that recipient rcpt of req waits on (before
 * local forwards copies of it: a sync that failed later would defer
 * the recipient and send those copies again). 0, or -1 with errno and
 * *path the folder that failed.
 */
int	maildir_sync_rcpt(const struct deliver_request *, size_t rcpt,
	    const char **path);
/* For tests: how many folders wait, and folder i's descriptor (-1: no
 * such folder) and how many deliveries wait on it. */
size_t	maildir_pending_dirs(void);
int	maildir_pending_dir(size_t i, size_t *nwaiters);

/* The "From " line that starts an mbox message (mbox.c). */
char	*mbox_from_line(const char *sender, long when);
/*
 * Quote lines that start with "From " as ">From " while copying message
 * text into out, in as many pieces as it comes: the state carries line
 * starts across calls. mbox_quote_end() gives back bytes still held
 * (a last line shorter than "From "). 0, or -1 when out is full.
 */
struct mbox_quoter {
	int	 bol;		/* at the beginning of a line */
	char	 held[5];	/* a line start that may be "From " */
	size_t	 nheld;
};

void	mbox_quote_init(struct mbox_quoter *);
int	mbox_quote(struct mbox_quoter *, struct buf *out, const char *data,
	    size_t len);
int	mbox_quote_end(struct mbox_quoter *, struct buf *out);
/* Append to the mbox file at path with fcntl and dot-lock locking.
 * limit: largest file size in bytes, 0 none. */
void	mbox_deliver(const struct local_msg *, const char *path,
	    const char *delivered_to, size_t limit, struct local_result *);

/* ---- commands (local_command.c) ---- */

struct local_command {
	const char *command;	/* given to /bin/sh -c */
	uid_t	 uid;
	gid_t	 gid;
	const char *home;	/* HOME; NULL: "/" */
	const char *user;	/* USER and LOGNAME */
	const char *recipient;	/* RECIPIENT: the full address */
	const char *local;	/* LOCAL: the local part */
	const char *domain;	/* DOMAIN */
	const char *extension;	/* EXTENSION; NULL: none */
	const char *delivered_to;
};

/* Run the command with the message on its stdin (Return-Path and
 * Delivered-To first). Exit 0: sent; 75 (EX_TEMPFAIL), 71 (EX_OSERR), a
 * signal or command_time_limit: deferred; others: bounced with the
 * command's output as the reason. */
void	local_command_deliver(const struct local_msg *,
	    const struct local_command *, struct local_result *);

/* ---- virtual mailbox domains (local_virtual.c) ---- */

void	local_virtual_deliver(const struct local_msg *, const char *addr,
	    struct local_result *);

/* ---- queueing mail again for addresses elsewhere (local_resend.c) ---- */

/* Queue a copy of the message for rcpts with sender, Delivered-To: added;
 * *id gets the new queue ID. 0, or -1 with *res set. */
int	local_resend(const struct local_msg *, const char *sender,
	    char *const *rcpts, const char *delivered_to, char **id,
	    struct local_result *res);

/* ---- recipient expansion (local_recipient.c) ---- */

/* ---- tables kept open (local_table.c) ---- */

/* The table for spec, opened at the first call and kept; opened again
 * when its file changed. NULL with *err for a malformed spec. Never
 * closed by the caller. */
struct table *local_table(const char *spec, char **err);
/* A new request: check the tables' files again at their next use. */
void	local_table_next_request(void);

/* The alias tables of one request (local.c), used while expanding. */
struct local_tables {
	struct table **aliases;
	size_t	 naliases;
	char	**alias_files;	/* what each alias table was read from */
};

void	local_tables_open(struct local_tables *);
void	local_tables_close(struct local_tables *);

/* Deliver one recipient of the request, result in *res. */
void	local_deliver_rcpt(const struct local_msg *,
	    const struct local_tables *, const char *addr,
	    struct local_result *res);
/* Log recipient rcpt of req as delivered to addr (a bare name gets
 * @$myorigin), in deliver_log()'s shape. */
void	local_log_to(struct deliver_request *, size_t rcpt, const char *addr,
	    enum deliver_status, const char *dsn, const char *reason);

/* 1 when domain is in the list parameter (names or type:name tables),
 * 0 when not, -1 with *res deferred on a table error. */
int	local_domain_match(const char *param, const char *domain,
	    struct local_result *res);

#endif
