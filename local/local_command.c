/*
 * local_command - delivery to a command: mailbox_command, and "|command"
 * targets of aliases, :include: files and .forward files.
 *
 * The command runs through /bin/sh -c as the user local_recipient.c
 * chose (never root), in a child that drops to that uid and gid for
 * good with the supplementary groups of the account the uid belongs to
 * (priv_run), in "/", with a small fixed environment (SENDER,
 * RECIPIENT, USER, LOGNAME, HOME, LOCAL, DOMAIN, EXTENSION, PATH, SHELL)
 * and the message on its standard input, "Return-Path:" and
 * "Delivered-To:" first. It is killed with its whole process group
 * after command_time_limit.
 *
 * The exit status decides, as sysexits(3) intends: 0 delivered; 75
 * (EX_TEMPFAIL) and 71 (EX_OSERR), a signal or the time limit: try again
 * later; 67 (EX_NOUSER) bounces as an unknown user, anything else bounces
 * with the command's own output as the reason.
 */
#include "autoconf.h"

#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "local.h"
#include "priv.h"
#include "queue.h"
#include "strv.h"

#define EX_NOUSER_	67
#define EX_OSERR_	71
#define EX_TEMPFAIL_	75

/* Longest piece of command output quoted in a reason. */
#define OUTPUT_REASON_MAX	200

/* The command's output as one printable line for a bounce reason. */
static char *
output_reason(const struct buf *out)
{
	struct buf b;
	int space = 0;

	buf_init(&b, OUTPUT_REASON_MAX);
	for (size_t i = 0; i < out->len && b.len < OUTPUT_REASON_MAX; i++) {
		unsigned char c = (unsigned char)out->data[i];

		if (isspace(c) || iscntrl(c)) {
			space = b.len > 0;
			continue;
		}
		if (space)
			(void)buf_putc(&b, ' ');
		space = 0;
		(void)buf_putc(&b, c < 0x80 ? (char)c : '?');
	}
	return buf_steal(&b);
}

/* Read the whole message, prefix first, for the command's stdin. */
static int
message_text(const struct local_msg *m, const char *prefix, struct buf *in)
{
	size_t len = m->q->content_len;
	ssize_t n;

	(void)buf_puts(in, prefix);
	for (off_t off = 0; (size_t)off < len; off += n) {
		char chunk[65536];
		size_t want = len - (size_t)off;

		if (want > sizeof(chunk))
			want = sizeof(chunk);
		if ((n = queue_read_content(m->q, off, chunk, want)) <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		(void)buf_append(in, chunk, (size_t)n);
	}
	return 0;
}

static void
env_add(char ***env, const char *name, const char *value)
{
	char *e = xasprintf("%s=%s", name, value ? value : "");

	strv_add(env, e);
	free(e);
}

void
local_command_deliver(const struct local_msg *m,
    const struct local_command *c, struct local_result *res)
{
	char *argv[4], **env, *prefix, *err = NULL, *why;
	struct buf in, out;
	unsigned long limit = config_time("command_time_limit");
	int status = 0, code;

	if (c->uid == 0) {
		/* local_recipient.c never asks; this is the last guard. */
		local_result_set(res, DELIVER_DEFERRED, "4.3.5",
		    "refusing to run a command as root: %s", c->command);
		return;
	}
	buf_init(&in, BUF_NOMAX);
	buf_init(&out, LOCAL_OUTPUT_MAX);
	prefix = local_msg_prefix(m->sender, c->delivered_to);
	if (message_text(m, prefix, &in) < 0) {
		local_result_errno(res, errno, "cannot read queue file %s",
		    m->queue_id);
		goto out;
	}
	env = strv_split("", ",");
	env_add(&env, "PATH", "/usr/bin:/bin");
	env_add(&env, "SHELL", "/bin/sh");
	env_add(&env, "SENDER", m->sender);
	env_add(&env, "RECIPIENT", c->recipient);
	env_add(&env, "USER", c->user);
	env_add(&env, "LOGNAME", c->user);
	env_add(&env, "HOME", c->home ? c->home : "/");
	env_add(&env, "LOCAL", c->local);
	env_add(&env, "DOMAIN", c->domain);
	env_add(&env, "EXTENSION", c->extension ? c->extension : "");
	argv[0] = (char *)"/bin/sh";
	argv[1] = (char *)"-c";
	argv[2] = (char *)c->command;
	argv[3] = NULL;

	if (priv_run(argv, env, c->uid, c->gid, in.data, in.len, &out,
	    limit > (unsigned long)(1 << 30) ? (1 << 30) : (int)limit,
	    &status, &err) < 0) {
		if (errno == ETIMEDOUT)
			local_result_set(res, DELIVER_DEFERRED, "4.3.0",
			    "command time limit of %lu seconds exceeded: %s",
			    limit, c->command);
		else
			local_result_set(res, DELIVER_DEFERRED, "4.3.0",
			    "cannot run command: %s", err ? err : "?");
		free(err);
		strv_free(env);
		goto out;
	}
	strv_free(env);
	free(err);
	if (WIFSIGNALED(status)) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "command killed by signal %d: %s", WTERMSIG(status),
		    c->command);
		goto out;
	}
	code = WEXITSTATUS(status);
	if (code == 0) {
		local_result_set(res, DELIVER_SENT, "2.0.0",
		    "delivered to command: %s", c->command);
		goto out;
	}
	why = output_reason(&out);
	if (code == EX_TEMPFAIL_ || code == EX_OSERR_)
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "temporary failure, command exit status %d%s%s", code,
		    *why ? ": " : "", why);
	else
		local_result_set(res, DELIVER_BOUNCED,
		    code == EX_NOUSER_ ? "5.1.1" : "5.3.0",
		    "command exit status %d%s%s", code, *why ? ": " : "",
		    why);
	free(why);

out:
	free(prefix);
	buf_free(&in);
	buf_free(&out);
}
