/*
 * smtpd_tls - TLS in the SMTP server: STARTTLS (RFC 3207) and implicit
 * TLS from the first byte (smtpd_tls_wrappermode, port 465).
 *
 * smtpd.c calls smtpd_tls_init() before the jail (the key files are
 * usually root's), smtpd_tls_session_start() as each session begins,
 * smtpd_tls_wrapper_start() before the greeting on a wrappermode
 * service, smtpd_starttls_cmd() for the command, and
 * smtpd_tls_session_end() before the stream is freed; smtpd_data.c asks
 * smtpd_tls_describe() for the Received: header.
 *
 * The context comes from lib/tls at process start. At level "may" a
 * certificate that cannot be loaded is a warning and STARTTLS is not
 * offered (a client asking anyway gets 454 4.7.0); at "encrypt", or
 * with wrappermode, it is fatal: a service that promises TLS must not
 * run without it.
 *
 * Two things lib/tls leaves to its callers are done here:
 *
 * Session resumption across processes. Each smtpd process serves one
 * client, so a session cached in one process is of no use to the next
 * client's process. Session tickets are: every process of a service
 * seals and opens them with the same key, kept in
 * $data_directory/smtpd_tls_ticket.SERVICE.key (80 random bytes, mode
 * 0600), made by the first process that finds none and replaced by the
 * first process that finds it older than smtpd_tls_session_cache_timeout.
 * A process that cannot read or write it keeps its own random key:
 * clients then resume with that process only, which costs a full
 * handshake, never a failure.
 *
 * Certificate renewal. master keeps the processes of a service whose
 * main.cf and master.cf lines did not change across `tern reload`, and
 * a renewed certificate usually keeps its file name. So each session
 * first compares the certificate and key files with what was loaded
 * (inode, size, modification time) and builds a new context when they
 * differ; a new certificate that does not load (a key not yet written
 * beside its certificate) leaves the old one in use, with a warning
 * once per change. Files that cannot be seen from a chroot are taken
 * as unchanged.
 */
#include "autoconf.h"

#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "stream.h"
#include "strv.h"
#include "tls.h"
#include "smtpd.h"

/* What a certificate or key file looked like when it was loaded. */
struct tls_stamp {
	char	*path;
	dev_t	 dev;
	ino_t	 ino;
	off_t	 size;
	struct timespec mtime;
	int	 seen;		/* stat() worked */
};

static struct tls_ctx *tls_ctx;
static struct tls_stamp *stamps;
static size_t nstamps;
static unsigned char ticket_key[TLS_TICKET_KEY_LEN];
static int have_ticket_key;

/* ---- certificate files ---- */

static void
stamp_take(struct tls_stamp *st)
{
	struct stat sb;

	if (stat(st->path, &sb) < 0) {
		st->seen = 0;
		return;
	}
	st->seen = 1;
	st->dev = sb.st_dev;
	st->ino = sb.st_ino;
	st->size = sb.st_size;
	st->mtime = sb.st_mtim;
}

static void
stamp_add(const char *path)
{
	if (path == NULL || *path == '\0')
		return;
	for (size_t i = 0; i < nstamps; i++)
		if (strcmp(stamps[i].path, path) == 0)
			return;
	stamps = xreallocarray(stamps, nstamps + 1, sizeof(*stamps));
	memset(&stamps[nstamps], 0, sizeof(*stamps));
	stamps[nstamps].path = xstrdup(path);
	stamp_take(&stamps[nstamps]);
	nstamps++;
}

/* 1 when a file we loaded from was replaced or rewritten since. */
static int
stamps_changed(void)
{
	struct tls_stamp now;
	int changed = 0;

	for (size_t i = 0; i < nstamps; i++) {
		memset(&now, 0, sizeof(now));
		now.path = stamps[i].path;
		stamp_take(&now);
		if (!now.seen)
			continue;	/* chroot, or mid-replacement */
		if (!stamps[i].seen || now.dev != stamps[i].dev ||
		    now.ino != stamps[i].ino || now.size != stamps[i].size ||
		    now.mtime.tv_sec != stamps[i].mtime.tv_sec ||
		    now.mtime.tv_nsec != stamps[i].mtime.tv_nsec) {
			stamps[i] = now;
			changed = 1;
		}
	}
	return changed;
}

/* ---- the shared session ticket key ---- */

static char *
ticket_key_path(void)
{
	char *name = xstrdup(server_service_name() != NULL ?
	    server_service_name() : "smtpd"), *path;

	/* "127.0.0.1:465" and the like, as one file name. */
	for (char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
		    *p == '_'))
			*p = '_';
	path = xasprintf("%s/smtpd_tls_ticket.%s.key",
	    config_str("data_directory"), name);
	free(name);
	return path;
}

/* Read a key that is not older than max_age; 0 or -1. */
static int
ticket_key_read(const char *path, unsigned long max_age)
{
	struct stat sb;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    sb.st_size != TLS_TICKET_KEY_LEN ||
	    (max_age > 0 && time(NULL) - sb.st_mtime > (time_t)max_age)) {
		close(fd);
		return -1;
	}
	n = read(fd, ticket_key, sizeof(ticket_key));
	close(fd);
	return n == (ssize_t)sizeof(ticket_key) ? 0 : -1;
}

/* Make a new key file: written aside, then put in place. 0 or -1. */
static int
ticket_key_make(const char *path)
{
	char *tmp;
	ssize_t n;
	int fd, r = -1;

	if (getrandom(ticket_key, sizeof(ticket_key), 0) !=
	    (ssize_t)sizeof(ticket_key)) {
		msg_warn("getrandom: %s", strerror(errno));
		return -1;
	}
	tmp = xasprintf("%s.%ld.tmp", path, (long)getpid());
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0) {
		msg_warn("cannot create %s: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	n = write(fd, ticket_key, sizeof(ticket_key));
	if (close(fd) == 0 && n == (ssize_t)sizeof(ticket_key)) {
		/* Several processes may start at once: the first file in
		 * place wins, and the others read it. */
		if (link(tmp, path) == 0)
			r = 0;
		else if (errno == EEXIST) {
			if (ticket_key_read(path, 0) == 0)
				r = 0;
			else if (rename(tmp, path) == 0)
				r = 0;	/* a stale or broken one */
		}
	}
	if (r < 0)
		msg_warn("cannot write %s: %s", path, strerror(errno));
	(void)unlink(tmp);
	free(tmp);
	return r;
}

static void
ticket_key_init(void)
{
	unsigned long age = config_time("smtpd_tls_session_cache_timeout");
	char *path;

	if (age == 0 || server_standalone())
		return;
	path = ticket_key_path();
	if (ticket_key_read(path, age) == 0 || ticket_key_make(path) == 0)
		have_ticket_key = 1;
	else
		msg_warn("TLS sessions resume only with the same smtpd "
		    "process");
	free(path);
}

static void
ticket_key_apply(void)
{
	char *err = NULL;

	if (!have_ticket_key || tls_ctx == NULL)
		return;
	if (tls_server_ctx_set_ticket_key(tls_ctx, ticket_key,
	    sizeof(ticket_key), &err) < 0) {
		msg_warn("TLS session ticket key: %s", err);
		free(err);
	}
}

/* ---- start ---- */

void
smtpd_tls_init(void)
{
	enum tls_level level = smtpd_conf.tls_level;
	char *err = NULL, **chain;

	if (smtpd_conf.tls_wrappermode && level < TLS_LEV_ENCRYPT)
		level = TLS_LEV_ENCRYPT;
	if (level == TLS_LEV_NONE)
		return;
	if ((tls_ctx = tls_server_ctx_from_config(level, &err)) == NULL) {
		if (level >= TLS_LEV_ENCRYPT)
			msg_fatal("%s requires TLS, but: %s",
			    smtpd_conf.tls_wrappermode ?
			    "smtpd_tls_wrappermode" :
			    "smtpd_tls_security_level = encrypt", err);
		msg_warn("cannot start TLS: %s; STARTTLS is not offered", err);
		free(err);
		return;
	}
	chain = config_list("smtpd_tls_chain_files");
	for (char **p = chain; *p != NULL; p++)
		stamp_add(*p);
	strv_free(chain);
	stamp_add(config_str("smtpd_tls_cert_file"));
	stamp_add(config_str("smtpd_tls_key_file"));
	ticket_key_init();
	ticket_key_apply();
}

void
smtpd_tls_session_start(struct smtpd_session *s)
{
	char *err = NULL;

	(void)s;
	if (tls_ctx == NULL || !stamps_changed())
		return;
	if (tls_server_ctx_reload(&tls_ctx, &err) < 0) {
		msg_warn("new TLS certificate not loaded, the old one stays "
		    "in use: %s", err);
		free(err);
		return;
	}
	msg_info("TLS certificate files changed: loaded them again");
	ticket_key_apply();
}

/* ---- the session ---- */

int
smtpd_tls_active(const struct smtpd_session *s)
{
	return tls_stream_conn(s->in) != NULL;
}

int
smtpd_tls_offer(const struct smtpd_session *s)
{
	/* TLS needs one socket both ways: never on -S's stdin/stdout. */
	return tls_ctx != NULL && s->in == s->out && !smtpd_tls_active(s);
}

int
smtpd_tls_enforce(struct smtpd_session *s)
{
	if (smtpd_conf.tls_level < TLS_LEV_ENCRYPT || smtpd_tls_active(s))
		return 0;
	smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
	return 1;
}

/* The handshake on s; 0, or -1 with the session over. */
static int
smtpd_tls_handshake(struct smtpd_session *s)
{
	struct tls_conn *c;
	char *err = NULL;

	if (tls_stream_start_server(s->in, tls_ctx,
	    smtpd_conf.starttls_timeout_ms, &err) < 0) {
		msg_info("SSL_accept error from %s: %s", s->client, err);
		msg_info("lost connection after %s from %s", s->where,
		    s->client);
		free(err);
		/* The stream is dead: nothing more is sent or read. */
		s->done = 1;
		return -1;
	}
	c = tls_stream_conn(s->in);
	tls_conn_log(c, "from", s->client);
	return 0;
}

int
smtpd_tls_wrapper_start(struct smtpd_session *s)
{
	if (!smtpd_conf.tls_wrappermode)
		return 0;
	if (tls_ctx == NULL || s->in != s->out) {
		/* -S mode: there is no socket to wrap. */
		msg_warn("smtpd_tls_wrappermode needs a socket; serving %s "
		    "in clear", s->client);
		return 0;
	}
	return smtpd_tls_handshake(s);
}

void
smtpd_starttls_cmd(struct smtpd_session *s, const char *args)
{
	char *text;

	if (*args != '\0') {
		smtpd_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	if (smtpd_tls_active(s)) {
		smtpd_reply(s, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (smtpd_conf.tls_level == TLS_LEV_NONE &&
	    !smtpd_conf.tls_wrappermode) {
		smtpd_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (!smtpd_tls_offer(s)) {
		smtpd_reply(s, "454 4.7.0 TLS not available due to local "
		    "problem");
		return;
	}
	if (s->sender != NULL) {
		smtpd_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	/*
	 * What the client sent after STARTTLS, before the handshake, was
	 * not protected by it: a man in the middle may have added it. It
	 * is thrown away, never read as commands (CVE-2011-0411).
	 */
	if (stream_pending(s->in) > 0) {
		text = smtpd_printable(s->in->in.data, s->in->in.len);
		msg_info("improper command pipelining after STARTTLS from "
		    "%s: %s", s->client, text);
		free(text);
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
	if (smtpd_flush(s) < 0)
		return;
	stream_discard_input(s->in);
	if (smtpd_tls_handshake(s) < 0)
		return;
	/* RFC 3207 section 4.2: forget what the client said in clear. */
	smtpd_reset(s);
	free(s->helo);
	s->helo = NULL;
	s->esmtp = 0;
	smtpd_sasl_session_new(s);
}

char *
smtpd_tls_describe(const struct smtpd_session *s)
{
	struct tls_conn *c = tls_stream_conn(s->in);

	return c != NULL ? tls_conn_describe(c) : NULL;
}

void
smtpd_tls_session_end(struct smtpd_session *s)
{
	if (!smtpd_tls_active(s))
		return;
	stream_set_deadline(s->out, 0);
	(void)stream_flush(s->out);
	tls_stream_stop(s->in);
}
