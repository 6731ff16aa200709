/*
 * local_recipient - what one recipient of a delivery request becomes:
 * the expansion of aliases, :include: files and .forward files, and the
 * mailbox, file, command or forwarded copy each branch ends in.
 *
 * For a recipient in virtual_mailbox_domains: local_virtual.c. For any
 * other (a domain qmgr resolved to local):
 *  1. the local part is lowercased and split at recipient_delimiter into
 *     user and extension;
 *  2. alias_maps are searched for "user+ext", then "user"; a hit expands
 *     into its targets (local_alias.c), with the privileges of the alias
 *     table's owner for commands and files (default_privs when that is
 *     root), and with "owner-user" as the sender when that alias exists;
 *  3. else the user must exist (localuser.h; unknown: 5.1.1); the first
 *     forward_path file that exists, belongs to the user and is not
 *     group or world writable expands with the user's privileges;
 *  4. else mailbox_command, or home_mailbox (Maildir when it ends in
 *     "/", an mbox file otherwise), or mail_spool_directory/user.
 * An address the expansion produces is expanded the same way when it is
 * local (no domain, or a domain in mydestination), and queued again
 * otherwise (local_resend.c). An address already on the way from the
 * first recipient to here is not expanded again but goes to its
 * mailbox, so "user: user, other" works as in sendmail; the same target
 * twice is delivered once; nesting stops at LOCAL_MAX_DEPTH. A message
 * that already carries "Delivered-To:" for an address being delivered
 * has been here before: it bounces with 5.4.6.
 *
 * The recipient's result: deferred when any branch deferred (the whole
 * recipient is tried again later, as in Postfix), else bounced when any
 * branch bounced (the reason names the branch), else sent, with what
 * happened ("delivered to maildir", "forwarded as ID", ...).
 *
 * The log has a line per branch, as Postfix's local writes it: the
 * final address as to=<...> (qualified with $myorigin when the alias
 * or .forward gave a bare name), the recipient as orig_to=<...>, and
 * what happened to that branch. When no branch line tells the
 * recipient's outcome, one line for the recipient does.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "domainlist.h"
#include "local.h"
#include "localuser.h"
#include "log.h"
#include "num.h"
#include "priv.h"
#include "strv.h"
#include "table.h"

/* Longest reason reported for a recipient with many branches. */
#define SUMMARY_MAX	400

/* Copies queued again, one per (sender, Delivered-To) pair. */
struct resend_group {
	char	*sender;
	char	*delivered_to;
	char	**rcpts;
};

/* The expansion of one recipient of the request. */
struct expansion {
	const struct local_msg *m;
	const struct local_tables *tabs;
	char	**seen;			/* targets already handled */
	struct resend_group *groups;
	size_t	 ngroups;
	struct local_result deferred;	/* the first deferral */
	struct local_result bounced;	/* the first bounce */
	int	 ndeferred, nbounced, nsent;
	int	 nlogged, nlogged_failed;	/* branch lines written */
	struct buf summary;
	const char *rcpt;		/* the recipient as qmgr gave it */
};

/* One address being expanded, and the chain that led to it. */
struct level {
	const struct level *parent;
	int	 depth;
	char	*addr;		/* local part lowercased, @domain if any */
	char	*local;		/* local part, extension included */
	char	*user;		/* local part without the extension */
	char	*ext;		/* extension or NULL */
	char	*delim;		/* the delimiter found, or "" */
	char	*domain;	/* "" when none */
	const char *sender;	/* envelope sender of what it produces */
	char	*owner_sender;	/* owner-alias sender, when there is one */
};

/* Whose privileges commands and files of a branch run with. */
struct privs {
	const char *class;	/* "alias", "forward", "include" */
	uid_t	 uid;		/* 0: root, use default_privs */
	gid_t	 gid;
	char	*name;		/* for groups; may be NULL */
	char	*home;		/* for HOME; may be NULL */
};

static void expand_address(struct expansion *, const struct level *,
	    const char *addr, const char *sender, int noexpand);

/* ---- results ---- */

/* The log line of one branch (or of the recipient itself), to the
 * address given, qualified with $myorigin when it is a bare name. */
static void
log_branch(struct expansion *x, const char *addr,
    const struct local_result *r)
{
	if (x->m->req == NULL)
		return;
	local_log_to(x->m->req, x->m->rcpt, addr, r->status,
	    r->dsn != NULL ? r->dsn : "4.3.0", r->reason);
	x->nlogged++;
	if (r->status != DELIVER_SENT)
		x->nlogged_failed++;
}

static void
record(struct expansion *x, const struct level *lv,
    const struct local_result *r)
{
	struct local_result *keep = NULL;

	log_branch(x, lv != NULL ? lv->addr : x->rcpt, r);
	switch (r->status) {
	case DELIVER_DEFERRED:
		if (x->ndeferred++ == 0)
			keep = &x->deferred;
		break;
	case DELIVER_BOUNCED:
		if (x->nbounced++ == 0)
			keep = &x->bounced;
		break;
	case DELIVER_SENT:
		x->nsent++;
		if (x->summary.len > 0)
			(void)buf_puts(&x->summary, "; ");
		(void)buf_puts(&x->summary, r->reason ? r->reason : "");
		return;
	}
	if (keep == NULL)	/* the first one is what is reported */
		return;
	/* A branch's failure names the branch. */
	if (lv != NULL && lv->depth > 0)
		local_result_set(keep, r->status, r->dsn ? r->dsn : "4.3.0",
		    "<%s>: %s", lv->addr, r->reason ? r->reason : "");
	else
		local_result_copy(keep, r);
}

static void
record_set(struct expansion *x, const struct level *lv,
    enum deliver_status st, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
record_set(struct expansion *x, const struct level *lv,
    enum deliver_status st, const char *dsn, const char *fmt, ...)
{
	struct local_result r;
	struct buf b;
	va_list ap;

	buf_init(&b, BUF_NOMAX);
	va_start(ap, fmt);
	(void)buf_vprintf(&b, fmt, ap);
	va_end(ap);
	local_result_init(&r);
	local_result_set(&r, st, dsn, "%s", buf_cstr(&b));
	record(x, lv, &r);
	local_result_free(&r);
	buf_free(&b);
}

/* ---- tables and domains ---- */

/* The file a table was read from, whose owner vouches for its commands
 * and files; NULL when it has none (inline:, static:). */
static char *
table_file(const char *spec)
{
	const char *colon = strchr(spec, ':');

	if (colon == NULL || colon[1] != '/')
		return NULL;
	if (strncmp(spec, "lmdb:", 5) == 0)
		return xasprintf("%s.lmdb", colon + 1);
	return xstrdup(colon + 1);
}

void
local_tables_open(struct local_tables *t)
{
	char **specs = config_list("alias_maps");
	char *err = NULL;

	memset(t, 0, sizeof(*t));
	t->aliases = xcalloc(strv_len(specs) + 1, sizeof(*t->aliases));
	t->alias_files = xcalloc(strv_len(specs) + 1,
	    sizeof(*t->alias_files));
	for (size_t i = 0; specs[i] != NULL; i++) {
		struct table *tb = local_table(specs[i], &err);

		if (tb == NULL) {
			/* A spec that can never work: say so at every
			 * lookup, so that mail waits for the fix. */
			msg_warn("alias_maps: %s: %s", specs[i], err);
			free(err);
			err = NULL;
		}
		t->aliases[t->naliases] = tb;
		t->alias_files[t->naliases++] = table_file(specs[i]);
	}
	strv_free(specs);
}

void
local_tables_close(struct local_tables *t)
{
	/* The tables stay open for the next request (local_table.c). */
	for (size_t i = 0; i < t->naliases; i++)
		free(t->alias_files[i]);
	free(t->aliases);
	free(t->alias_files);
	memset(t, 0, sizeof(*t));
}

/* First hit in alias_maps: TABLE_FOUND with *value and *which. */
static int
alias_lookup(const struct local_tables *t, const char *key, char **value,
    size_t *which, char **err)
{
	int r;

	for (size_t i = 0; i < t->naliases; i++) {
		if (t->aliases[i] == NULL) {
			*err = xstrdup("malformed alias_maps entry");
			return TABLE_ERROR;
		}
		r = table_lookup(t->aliases[i], key, value, err);
		if (r != TABLE_NOTFOUND) {
			*which = i;
			return r;
		}
	}
	return TABLE_NOTFOUND;
}

/*
 * Is domain in the domain list param? The same matcher as smtpd and
 * qmgr (lib/domainlist: names, ".parent", "!item", tables), kept open
 * for the process's life, so that local never disagrees with what
 * smtpd accepted and qmgr routed here.
 */
int
local_domain_match(const char *param, const char *domain,
    struct local_result *res)
{
	static struct {
		char *param;
		struct domainlist *list;
	} lists[4];
	struct domainlist *dl = NULL;
	char *err = NULL;
	size_t i;
	int r;

	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		if (lists[i].param == NULL) {
			if ((lists[i].list = domainlist_open(param, &err)) ==
			    NULL)
				break;
			lists[i].param = xstrdup(param);
		}
		if (strcmp(lists[i].param, param) == 0) {
			dl = lists[i].list;
			break;
		}
	}
	if (dl == NULL) {
		if (err == NULL)
			msg_panic("local_domain_match: too many lists");
		local_result_set(res, DELIVER_DEFERRED, "4.3.5",
		    "%s: %s", param, err);
		free(err);
		return -1;
	}
	if ((r = domainlist_match(dl, domain, &err)) < 0) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "%s lookup error for %s: %s", param, domain,
		    err ? err : "?");
		free(err);
	}
	return r;
}

/* ---- levels ---- */

static void
level_init(struct level *lv, const struct level *parent, const char *addr,
    const char *sender)
{
	const char *delims = config_str("recipient_delimiter");
	size_t n;

	memset(lv, 0, sizeof(*lv));
	lv->parent = parent;
	lv->depth = parent ? parent->depth + 1 : 0;
	/* The local part unquoted, as smtpd saw it: "demo+x y"@... is the
	 * user demo with the extension "x y". */
	addr_split(addr, &lv->local, &lv->domain);
	for (char *p = lv->local; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	for (char *p = lv->domain; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	lv->addr = *lv->domain ? addr_join(lv->local, lv->domain) :
	    xstrdup(lv->local);
	/* user+ext: split at the first delimiter character, never making
	 * the user part empty. */
	n = *delims ? strcspn(lv->local, delims) : strlen(lv->local);
	if (n > 0 && lv->local[n] != '\0') {
		lv->user = xstrndup(lv->local, n);
		lv->delim = xstrndup(lv->local + n, 1);
		lv->ext = xstrdup(lv->local + n + 1);
	} else {
		lv->user = xstrdup(lv->local);
		lv->delim = xstrdup("");
	}
	lv->sender = sender;
}

static void
level_free(struct level *lv)
{
	free(lv->addr);
	free(lv->local);
	free(lv->user);
	free(lv->ext);
	free(lv->delim);
	free(lv->domain);
	free(lv->owner_sender);
}

/* Is user already being expanded further up the chain? */
static int
level_ancestor(const struct level *lv, const char *user)
{
	for (; lv != NULL; lv = lv->parent)
		if (strcmp(lv->user, user) == 0)
			return 1;
	return 0;
}

/* ---- privileges for commands and files ---- */

static void
privs_free(struct privs *p)
{
	free(p->name);
	free(p->home);
}

/* Privileges vouched for by the owner of file (NULL: main.cf's). */
static void
privs_from_owner(struct privs *p, const char *class, const char *file)
{
	struct priv_user pw;
	struct stat st;
	char *path;

	memset(p, 0, sizeof(*p));
	p->class = class;
	path = file ? xstrdup(file) : xasprintf("%s/main.cf", config_dir());
	if (stat(path, &st) < 0) {
		p->uid = 0;	/* unknown: the safe choice */
		free(path);
		return;
	}
	free(path);
	p->uid = st.st_uid;
	p->gid = st.st_gid;
	if (p->uid != 0 && priv_user_lookup_uid(p->uid, &pw) == 0) {
		p->name = xstrdup(pw.name);
		p->home = xstrdup(pw.home);
		p->gid = pw.gid;
		priv_user_free(&pw);
	}
}

/* The uid/gid to run as: the privileges, or default_privs for root. */
static int
privs_resolve(const struct privs *p, uid_t *uid, gid_t *gid, char **name,
    char **home, struct local_result *res)
{
	struct priv_user pw;

	if (p->uid != 0) {
		*uid = p->uid;
		*gid = p->gid;
		*name = p->name ? xstrdup(p->name) : NULL;
		*home = p->home ? xstrdup(p->home) : NULL;
		return 0;
	}
	if (local_default_privs(&pw, res) < 0)
		return -1;
	*uid = pw.uid;
	*gid = pw.gid;
	*name = xstrdup(pw.name);
	*home = NULL;		/* "/": default_privs has no business home */
	priv_user_free(&pw);
	return 0;
}

/* ---- delivery steps run as the user (local_run_as) ---- */

struct step {
	struct local_msg msg;	/* the message, with this branch's sender */
	const struct local_msg *m;	/* &msg */
	const struct level *lv;
	const char *path;	/* file, Maildir or mbox */
	const char *home;	/* must exist first; NULL: no check */
	struct local_command cmd;
};

/* The envelope sender of what lv's alias or .forward produces. */
static const char *
targets_sender(const struct level *lv)
{
	return lv->owner_sender ? lv->owner_sender : lv->sender;
}

static void
step_init(struct step *s, const struct expansion *x, const struct level *lv,
    const char *sender)
{
	memset(s, 0, sizeof(*s));
	s->msg = *x->m;
	s->msg.sender = sender;
	s->m = &s->msg;
	s->lv = lv;
}

static void
step_file(void *ctx, struct local_result *res)
{
	struct step *s = ctx;
	size_t n = strlen(s->path);

	if (n > 0 && s->path[n - 1] == '/')
		maildir_deliver(s->m, s->path, 1, s->lv->addr, 0, res);
	else
		mbox_deliver(s->m, s->path, s->lv->addr, 0, res);
	if (res->status == DELIVER_SENT)
		local_result_set(res, DELIVER_SENT, "2.0.0",
		    "delivered to file: %s", s->path);
}

static void
step_mailbox(void *ctx, struct local_result *res)
{
	struct step *s = ctx;
	size_t limit = config_size("mailbox_size_limit");
	size_t n = strlen(s->path);
	struct stat st;

	if (s->home != NULL && stat(s->home, &st) < 0) {
		local_result_errno(res, errno, "home directory %s", s->home);
		return;
	}
	if (n > 0 && s->path[n - 1] == '/')
		maildir_deliver(s->m, s->path, 1, s->lv->addr, limit, res);
	else
		mbox_deliver(s->m, s->path, s->lv->addr, limit, res);
}

/* ---- targets ---- */

/* Run command as the privileges say (default_privs for root): in a
 * child that drops to them for good, never through a switch of the
 * effective ids, which the command could undo. */
static void
run_command(struct expansion *x, const struct level *lv,
    const char *command, const struct privs *p, const char *fallback_home)
{
	struct local_result r;
	struct step s;
	char *name = NULL, *home = NULL;
	uid_t uid;
	gid_t gid;

	local_result_init(&r);
	if (privs_resolve(p, &uid, &gid, &name, &home, &r) == 0 &&
	    local_can_act_as(uid, gid, &r) == 0) {
		step_init(&s, x, lv, targets_sender(lv));
		s.cmd.command = command;
		s.cmd.uid = uid;
		s.cmd.gid = gid;
		s.cmd.home = home ? home : fallback_home;
		s.cmd.user = lv->user;
		s.cmd.recipient = lv->addr;
		s.cmd.local = lv->local;
		s.cmd.domain = lv->domain;
		s.cmd.extension = lv->ext;
		s.cmd.delivered_to = lv->addr;
		local_command_deliver(s.m, &s.cmd, &r);
	}
	record(x, lv, &r);
	local_result_free(&r);
	free(name);
	free(home);
}

static void
deliver_command(struct expansion *x, const struct level *lv,
    const char *command, const struct privs *p)
{
	char **allow = config_list("allow_mail_to_commands");

	if (!strv_contains(allow, p->class))
		record_set(x, lv, DELIVER_BOUNCED, "5.7.1",
		    "mail to command is restricted (allow_mail_to_commands "
		    "does not list %s)", p->class);
	else
		run_command(x, lv, command, p, NULL);
	strv_free(allow);
}

static void
deliver_file(struct expansion *x, const struct level *lv, const char *path,
    const struct privs *p)
{
	struct local_result r;
	struct step s;
	char **allow = config_list("allow_mail_to_files");
	char *name = NULL, *home = NULL;
	uid_t uid;
	gid_t gid;

	local_result_init(&r);
	if (!strv_contains(allow, p->class)) {
		local_result_set(&r, DELIVER_BOUNCED, "5.7.1",
		    "mail to file is restricted (allow_mail_to_files does "
		    "not list %s)", p->class);
	} else if (strcmp(path, "/dev/null") == 0) {
		/* The usual way to discard mail: no locking, no owner. */
		local_result_set(&r, DELIVER_SENT, "2.0.0",
		    "delivered to file: /dev/null");
	} else if (privs_resolve(p, &uid, &gid, &name, &home, &r) == 0) {
		step_init(&s, x, lv, targets_sender(lv));
		s.path = path;
		local_run_as(uid, gid, name, step_file, &s, &r);
	}
	record(x, lv, &r);
	local_result_free(&r);
	free(name);
	free(home);
	strv_free(allow);
}

/* 1 when key was handled before in this expansion; else remember it.
 * Keys are compared exactly: callers lowercase what is not case
 * sensitive. */
static int
seen(struct expansion *x, const char *key)
{
	for (size_t i = 0; x->seen[i] != NULL; i++)
		if (strcmp(x->seen[i], key) == 0)
			return 1;
	strv_add(&x->seen, key);
	return 0;
}

/* Add addr to the copy queued again for (sender, Delivered-To). */
static void
resend_add(struct expansion *x, const struct level *lv, const char *addr)
{
	const char *sender = lv->owner_sender ? lv->owner_sender : lv->sender;
	struct resend_group *g = NULL;
	char *key = xasprintf("resend:%s", addr);

	for (char *c = key; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	if (seen(x, key)) {
		free(key);
		return;
	}
	free(key);

	for (size_t i = 0; i < x->ngroups; i++)
		if (strcmp(x->groups[i].sender, sender) == 0 &&
		    strcmp(x->groups[i].delivered_to, lv->addr) == 0)
			g = &x->groups[i];
	if (g == NULL) {
		x->groups = xreallocarray(x->groups, x->ngroups + 1,
		    sizeof(*x->groups));
		g = &x->groups[x->ngroups++];
		g->sender = xstrdup(sender);
		g->delivered_to = xstrdup(lv->addr);
		g->rcpts = strv_split("", ",");
	}
	strv_add(&g->rcpts, addr);
}

static void expand_targets(struct expansion *, const struct level *,
	    const char *text, const struct privs *);

/*
 * :include:path, read with the privileges of whoever named it (the
 * user of a .forward, the owner of an alias table or include file), so
 * that a user can include only what that user may read.
 */
static void
expand_include(struct expansion *x, const struct level *lv, const char *path,
    const struct privs *ctx)
{
	struct local_result r;
	struct local_file f;
	struct privs p;

	if (path[0] != '/') {
		record_set(x, lv, DELIVER_BOUNCED, "5.3.5",
		    ":include:%s: not an absolute path", path);
		return;
	}
	local_result_init(&r);
	if (local_read_as(ctx->uid, ctx->gid, ctx->name, path,
	    LOCAL_INCLUDE_MAX, &f, &r) < 0) {
		record(x, lv, &r);
		local_result_free(&r);
		return;
	}
	local_result_free(&r);
	if (f.err == ENOENT || f.err == ELOOP)
		record_set(x, lv, DELIVER_BOUNCED, "5.3.5",
		    ":include:%s: %s", path, f.err == ELOOP ?
		    "a symbolic link" : strerror(f.err));
	else if (f.err != 0)
		record_set(x, lv, DELIVER_DEFERRED, "4.3.0",
		    ":include:%s: %s", path, strerror(f.err));
	else if (!S_ISREG(f.mode) || (f.mode & S_IWOTH) != 0)
		record_set(x, lv, DELIVER_DEFERRED, "4.3.5",
		    ":include:%s: not a regular file, or world writable",
		    path);
	else if (f.too_large)
		record_set(x, lv, DELIVER_DEFERRED, "4.3.0",
		    ":include:%s: larger than %d bytes", path,
		    LOCAL_INCLUDE_MAX);
	else {
		privs_from_owner(&p, "include", path);
		expand_targets(x, lv, buf_cstr(&f.data), &p);
		privs_free(&p);
	}
	local_file_free(&f);
}

/* An address from an expansion: expanded here when local, queued
 * again otherwise. */
static void
expand_target_address(struct expansion *x, const struct level *lv,
    const char *value, int noexpand)
{
	struct local_result r;
	const char *at = strrchr(value, '@');
	char *addr;
	int local;

	if (at != NULL && (at == value || at[1] == '\0')) {
		record_set(x, lv, DELIVER_BOUNCED, "5.1.3",
		    "bad address syntax: \"%s\"", value);
		return;
	}
	if (at == NULL) {
		/* Unqualified: the domain of the address that named it. */
		addr = *lv->domain ? xasprintf("%s@%s", value, lv->domain) :
		    xstrdup(value);
		local = 1;
	} else {
		addr = xstrdup(value);
		local_result_init(&r);
		local = local_domain_match("mydestination", at + 1, &r);
		if (local < 0) {
			record(x, lv, &r);
			local_result_free(&r);
			free(addr);
			return;
		}
		local_result_free(&r);
	}
	if (local)
		expand_address(x, lv, addr,
		    lv->owner_sender ? lv->owner_sender : lv->sender,
		    noexpand);
	else
		resend_add(x, lv, addr);
	free(addr);
}

static void
expand_targets(struct expansion *x, const struct level *lv,
    const char *text, const struct privs *p)
{
	struct local_target *t;
	size_t n;
	char *key;

	n = local_targets_parse(text, &t);
	for (size_t i = 0; i < n; i++) {
		/* The same command, file or include twice in one expansion:
		 * once is enough (addresses: see expand_address). */
		if (t[i].kind != TARGET_ADDRESS &&
		    t[i].kind != TARGET_MAILBOX) {
			key = xasprintf("%s:%s",
			    local_target_kind_name(t[i].kind), t[i].value);
			if (seen(x, key)) {
				free(key);
				continue;
			}
			free(key);
		}
		switch (t[i].kind) {
		case TARGET_ADDRESS:
			expand_target_address(x, lv, t[i].value, 0);
			break;
		case TARGET_MAILBOX:
			expand_target_address(x, lv, t[i].value, 1);
			break;
		case TARGET_COMMAND:
			deliver_command(x, lv, t[i].value, p);
			break;
		case TARGET_FILE:
			deliver_file(x, lv, t[i].value, p);
			break;
		case TARGET_INCLUDE:
			if (lv->depth >= LOCAL_MAX_DEPTH)
				record_set(x, lv, DELIVER_BOUNCED, "5.4.6",
				    "too many levels of aliases, includes "
				    "and forwarding");
			else
				expand_include(x, lv, t[i].value, p);
			break;
		}
	}
	local_targets_free(t, n);
}

/* ---- aliases and .forward ---- */

/* 1: expanded, 0: no alias, -1: error recorded. */
static int
try_alias(struct expansion *x, struct level *lv)
{
	char *value = NULL, *err = NULL, *owner_value = NULL, *okey;
	const char *key = lv->local;
	struct local_target *t;
	struct privs p;
	size_t which = 0, owner_which, n;
	int r;

	r = alias_lookup(x->tabs, key, &value, &which, &err);
	if (r == TABLE_NOTFOUND && lv->ext != NULL) {
		key = lv->user;
		r = alias_lookup(x->tabs, key, &value, &which, &err);
	}
	if (r == TABLE_ERROR) {
		record_set(x, lv, DELIVER_DEFERRED, "4.3.0",
		    "alias database unavailable: %s", err ? err : "?");
		free(err);
		return -1;
	}
	if (r == TABLE_NOTFOUND)
		return 0;
	n = local_targets_parse(value, &t);
	local_targets_free(t, n);
	if (n == 0) {
		record_set(x, lv, DELIVER_BOUNCED, "5.3.5",
		    "alias \"%s\" expands to nothing", key);
		free(value);
		return -1;
	}
	/* owner-KEY, when it exists, is the sender of what the list
	 * produces, so that errors go to the list's owner. */
	if (strncmp(key, "owner-", 6) != 0) {
		okey = xasprintf("owner-%s", key);
		if (alias_lookup(x->tabs, okey, &owner_value, &owner_which,
		    &err) == TABLE_FOUND)
			lv->owner_sender = *lv->domain ?
			    xasprintf("%s@%s", okey, lv->domain) :
			    xstrdup(okey);
		free(owner_value);
		free(err);
		free(okey);
	}
	privs_from_owner(&p, "alias", x->tabs->alias_files[which]);
	expand_targets(x, lv, value, &p);
	privs_free(&p);
	free(value);
	return 1;
}

/* The value of a forward_path variable (allocated). */
static char *
forward_var(const char *n, const struct level *lv, const struct priv_user *pw)
{
	if (strcmp(n, "home") == 0)
		return xstrdup(pw->home);
	if (strcmp(n, "user") == 0)
		return xstrdup(lv->user);
	if (strcmp(n, "extension") == 0)
		return xstrdup(lv->ext ? lv->ext : "");
	if (strcmp(n, "recipient_delimiter") == 0)
		return xstrdup(lv->ext ? lv->delim : "");
	if (strcmp(n, "recipient_extension") == 0)
		return lv->ext ? xasprintf("%s%s", lv->delim, lv->ext) :
		    xstrdup("");
	if (strcmp(n, "local") == 0)
		return xstrdup(lv->local);
	if (strcmp(n, "domain") == 0)
		return xstrdup(lv->domain);
	if (strcmp(n, "recipient") == 0)
		return xstrdup(lv->addr);
	return xstrdup("");
}

/*
 * Expand a forward_path item: $name, ${name}, ${name?text} (text when
 * name is not empty), ${name:text} (text when it is), with the names
 * home, user, extension, recipient_delimiter, recipient_extension
 * (delimiter and extension, or nothing), local, domain, recipient.
 */
static char *
forward_expand(const char *item, const struct level *lv,
    const struct priv_user *pw)
{
	struct buf b;
	const char *p = item, *name, *alt = NULL, *end;
	size_t nlen, alen;
	char op, *n, *val;

	buf_init(&b, BUF_NOMAX);
	while (*p != '\0') {
		if (*p != '$') {
			(void)buf_putc(&b, *p++);
			continue;
		}
		p++;
		op = 0;
		alen = 0;
		if (*p == '{' || *p == '(') {
			if ((end = strchr(p, *p == '{' ? '}' : ')')) == NULL)
				break;
			name = ++p;
			nlen = strcspn(name, "?:})");
			if (name + nlen < end && (name[nlen] == '?' ||
			    name[nlen] == ':')) {
				op = name[nlen];
				alt = name + nlen + 1;
				alen = (size_t)(end - alt);
			}
			p = end + 1;
		} else {
			name = p;
			while (isalnum((unsigned char)*p) || *p == '_')
				p++;
			nlen = (size_t)(p - name);
		}
		n = xstrndup(name, nlen);
		val = forward_var(n, lv, pw);
		if (op == 0)
			(void)buf_puts(&b, val);
		else if ((op == '?') == (*val != '\0'))
			(void)buf_append(&b, alt, alen);
		free(val);
		free(n);
	}
	return buf_steal(&b);
}

/* 1: expanded, 0: no usable .forward, -1: error recorded. The file is
 * read as the user, like everything else done for the user. */
static int
try_forward(struct expansion *x, struct level *lv, const struct priv_user *pw)
{
	char **items = config_list("forward_path"), *path = NULL, *prev;
	struct local_target *t;
	struct local_result r;
	struct local_file f;
	struct privs p;
	size_t nt;
	int found = 0, done = 0;

	for (size_t i = 0; items[i] != NULL && !found && !done; i++) {
		prev = path;
		path = forward_expand(items[i], lv, pw);
		/* Without an extension the default's two items are one
		 * file: reading it twice finds nothing new. */
		if (path[0] != '/' || (prev != NULL &&
		    strcmp(prev, path) == 0)) {
			free(prev);
			continue;
		}
		free(prev);
		local_result_init(&r);
		if (local_read_as(pw->uid, pw->gid, pw->name, path,
		    LOCAL_INCLUDE_MAX, &f, &r) < 0) {
			record(x, lv, &r);
			local_result_free(&r);
			done = -1;
			break;
		}
		local_result_free(&r);
		if (f.err == ENOENT || f.err == ENOTDIR) {
			local_file_free(&f);
			continue;
		}
		if (f.err == ELOOP) {
			msg_warn("%s: ignored: a symbolic link", path);
		} else if (f.err != 0) {
			record_set(x, lv, DELIVER_DEFERRED, "4.3.0",
			    "cannot read %s: %s", path, strerror(f.err));
			done = -1;
		} else if (!S_ISREG(f.mode) || f.uid != pw->uid ||
		    (f.mode & 022) != 0 || f.nlink != 1) {
			/* Only the user may say where the user's mail goes. */
			msg_warn("%s: ignored: not a regular file owned by %s "
			    "and writable by nobody else", path, pw->name);
		} else if (f.too_large) {
			record_set(x, lv, DELIVER_DEFERRED, "4.3.0",
			    "cannot read %s: larger than %d bytes", path,
			    LOCAL_INCLUDE_MAX);
			done = -1;
		} else {
			found = 1;
			break;	/* keep f */
		}
		local_file_free(&f);
	}
	strv_free(items);
	if (!found) {
		free(path);
		return done;
	}
	/* An empty .forward forwards nothing: the mailbox gets the mail. */
	nt = local_targets_parse(buf_cstr(&f.data), &t);
	local_targets_free(t, nt);
	if (nt > 0) {
		memset(&p, 0, sizeof(p));
		p.class = "forward";
		p.uid = pw->uid;
		p.gid = pw->gid;
		p.name = xstrdup(pw->name);
		p.home = xstrdup(pw->home);
		expand_targets(x, lv, buf_cstr(&f.data), &p);
		privs_free(&p);
	}
	local_file_free(&f);
	free(path);
	return nt > 0;
}

/* ---- the mailbox ---- */

/*
 * The spool folder (/var/mail) is root's, or group mail's: a user may
 * append to a mailbox there but not create one. Root creates it, empty
 * and owned by the user, as the system's mail tools do.
 */
static void
spool_create(const char *path, const struct priv_user *pw)
{
	int fd;

	if (geteuid() != 0 || pw->uid == 0)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
	    O_NOCTTY, 0600);
	if (fd < 0)
		return;		/* there already, or the delivery says why */
	if (fchown(fd, pw->uid, pw->gid) < 0) {
		msg_warn("cannot give %s to uid %ld: %s", path, (long)pw->uid,
		    strerror(errno));
		(void)unlink(path);
	}
	close(fd);
}

static void
deliver_mailbox(struct expansion *x, const struct level *lv,
    const struct priv_user *pw)
{
	const char *command = config_str("mailbox_command");
	const char *home_mailbox = config_str("home_mailbox");
	struct local_result r;
	struct privs p;
	struct step s;
	char *path;

	if (*command != '\0') {
		/* Not subject to allow_mail_to_commands, which is about
		 * aliases and .forward files. */
		memset(&p, 0, sizeof(p));
		p.class = "mailbox";
		p.uid = pw->uid;
		p.gid = pw->gid;
		p.name = xstrdup(pw->name);
		p.home = xstrdup(pw->home);
		run_command(x, lv, command, &p, pw->home);
		privs_free(&p);
		return;
	}
	if (*home_mailbox != '\0')
		path = xasprintf("%s/%s", pw->home, home_mailbox);
	else {
		path = xasprintf("%s/%s", config_str("mail_spool_directory"),
		    lv->user);
		spool_create(path, pw);
	}
	step_init(&s, x, lv, lv->sender);
	s.path = path;
	s.home = *home_mailbox != '\0' ? pw->home : NULL;
	local_result_init(&r);
	local_run_as(pw->uid, pw->gid, pw->name, step_mailbox, &s, &r);
	record(x, lv, &r);
	local_result_free(&r);
	free(path);
}

/* ---- one address ---- */

static void
expand_address(struct expansion *x, const struct level *parent,
    const char *addr, const char *sender, int noexpand)
{
	struct priv_user pw;
	struct level lv;
	char *key;
	int dup;

	level_init(&lv, parent, addr, sender);
	if (lv.depth > LOCAL_MAX_DEPTH) {
		record_set(x, &lv, DELIVER_BOUNCED, "5.4.6",
		    "too many levels of aliases, includes and forwarding");
		goto out;
	}
	if (local_msg_delivered_to(x->m, lv.addr)) {
		record_set(x, &lv, DELIVER_BOUNCED, "5.4.6",
		    "mail forwarding loop for %s", lv.addr);
		goto out;
	}
	/* Named again by its own expansion: the mailbox, not the alias. */
	if (level_ancestor(parent, lv.user))
		noexpand = 1;
	key = xasprintf("%s:%s", noexpand ? "mailbox" : "address", lv.addr);
	dup = seen(x, key);
	free(key);
	if (dup)
		goto out;
	if (!noexpand && try_alias(x, &lv) != 0)
		goto out;
	memset(&pw, 0, sizeof(pw));
	if (local_user_lookup(lv.user, &pw) < 0) {
		if (errno != 0)
			record_set(x, &lv, DELIVER_DEFERRED, "4.3.0",
			    "cannot look up user \"%s\": %s", lv.user,
			    strerror(errno));
		else
			record_set(x, &lv, DELIVER_BOUNCED, "5.1.1",
			    "unknown user: \"%s\"", lv.user);
		goto out;
	}
	if (noexpand || try_forward(x, &lv, &pw) == 0)
		deliver_mailbox(x, &lv, &pw);
	priv_user_free(&pw);
out:
	level_free(&lv);
}

/* Each address a forwarded copy went to gets its line. */
static void
log_forwarded(struct expansion *x, char **rcpts, const char *id)
{
	struct local_result r;

	local_result_init(&r);
	local_result_set(&r, DELIVER_SENT, "2.0.0", "forwarded as %s", id);
	for (size_t i = 0; rcpts[i] != NULL; i++)
		log_branch(x, rcpts[i], &r);
	local_result_free(&r);
}

void
local_deliver_rcpt(const struct local_msg *m, const struct local_tables *t,
    const char *addr, struct local_result *res)
{
	struct expansion x;
	const char *at = strrchr(addr, '@'), *path = NULL;
	char *id = NULL;
	int virt = 0;

	memset(&x, 0, sizeof(x));
	x.m = m;
	x.tabs = t;
	x.rcpt = addr;
	x.seen = strv_split("", ",");
	local_result_init(&x.deferred);
	local_result_init(&x.bounced);
	buf_init(&x.summary, BUF_NOMAX);

	if (at != NULL && at[1] != '\0' &&
	    (virt = local_domain_match("virtual_mailbox_domains", at + 1,
	    res)) < 0)
		goto done;
	if (virt) {
		if (local_msg_delivered_to(m, addr))
			local_result_set(res, DELIVER_BOUNCED, "5.4.6",
			    "mail forwarding loop for %s", addr);
		else
			local_virtual_deliver(m, addr, res);
		goto done;
	}
	expand_address(&x, NULL, addr, m->sender, 0);

	/* Copies are forwarded only when what went into mailboxes is
	 * durable (maildir.c defers new/'s sync in a batch). */
	if (x.ngroups > 0 && x.ndeferred == 0 && m->req != NULL &&
	    maildir_sync_rcpt(m->req, m->rcpt, &path) < 0) {
		local_result_errno(&x.deferred, errno,
		    "maildir delivery failed: sync %s", path);
		x.ndeferred++;
	}
	if (x.ndeferred > 0) {
		local_result_copy(res, &x.deferred);
		goto done;
	}
	for (size_t i = 0; i < x.ngroups; i++) {
		if (local_resend(m, x.groups[i].sender, x.groups[i].rcpts,
		    x.groups[i].delivered_to, &id, res) < 0)
			goto done;
		if (x.summary.len > 0)
			(void)buf_puts(&x.summary, "; ");
		(void)buf_printf(&x.summary, "forwarded as %s", id);
		log_forwarded(&x, x.groups[i].rcpts, id);
		free(id);
		x.nsent++;
	}
	if (x.nbounced > 0) {
		local_result_copy(res, &x.bounced);
		goto done;
	}
	if (x.summary.len > SUMMARY_MAX) {
		x.summary.len = SUMMARY_MAX - 3;
		(void)buf_puts(&x.summary, "...");
	}
	local_result_set(res, DELIVER_SENT, "2.0.0", "%s",
	    x.summary.len > 0 ? buf_cstr(&x.summary) : "delivered");
done:
	/* Branch lines that do not tell the recipient's outcome: one line
	 * for the recipient does (deliver_agent_serve writes it). */
	if (m->req != NULL && ((res->status != DELIVER_SENT &&
	    x.nlogged_failed == 0) || x.nlogged == 0))
		m->req->rcpts[m->rcpt].logged = 0;
	local_result_free(&x.deferred);
	local_result_free(&x.bounced);
	for (size_t i = 0; i < x.ngroups; i++) {
		free(x.groups[i].sender);
		free(x.groups[i].delivered_to);
		strv_free(x.groups[i].rcpts);
	}
	free(x.groups);
	strv_free(x.seen);
	buf_free(&x.summary);
}
