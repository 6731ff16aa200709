/*
 * sendmail - the traditional local submission program (DESIGN.md §2,
 * man sendmail(1)), run by any local user and by programs (cron, mail
 * readers, web applications). Called as "mailq" it lists the queue, as
 * "newaliases" it rebuilds the alias database.
 *
 *	sendmail [options] [recipient ...]	message on standard input
 *	sendmail -t [options] [recipient ...]	recipients from the headers
 *	sendmail -bs				SMTP on stdin/stdout
 *	sendmail -bp | mailq			the queue listing
 *	sendmail -q				flush the queue
 *	sendmail -bi | newaliases		rebuild alias_database
 *
 * How mail gets in without a set-uid program (lib/submit.h): the message
 * becomes one queue file in maildrop/, written with this user's own
 * rights; pickup, running as mail_owner, learns who wrote it from the
 * file's owner and moves it into the queue. So sendmail works with the
 * daemons stopped (the file waits), and nothing it writes can make the
 * daemons believe it came from someone else: the sender given with -f
 * is kept only for users in local_sender_forge_users. sendmail pokes
 * pickup through its socket so the mail moves at once; a poke that
 * fails is not an error.
 *
 * The message is stored with LF line ends (a CR before LF is dropped),
 * lines of any length, 8-bit bytes as they are. Without -i a line with
 * a single "." ends the message. With -t, recipients come from To:, Cc:
 * and Bcc: (Resent-To:, Resent-Cc:, Resent-Bcc: when the message has
 * any of those), are added to those on the command line, and Bcc: is
 * removed. Date:, Message-ID: and From: are added by pickup when
 * missing (as Postfix's cleanup does), From: with the -F full name.
 *
 * Exit status (sysexits.h), which callers act on:
 *	0 EX_OK		the message is safely in maildrop/
 *	64 EX_USAGE	bad options, no recipients
 *	65 EX_DATAERR	a bad address, a message over message_size_limit
 *	66 EX_NOINPUT	standard input cannot be read, alias file missing
 *	69 EX_UNAVAILABLE	flush asked while the mail system is down
 *	73 EX_CANTCREAT	the alias database cannot be written
 *	75 EX_TEMPFAIL	maildrop/ cannot be written (try again later)
 *	77 EX_NOPERM	not in authorized_submit_users
 *	78 EX_CONFIG	main.cf cannot be read
 * Errors are printed as "sendmail: fatal: ..." on standard error.
 */
#include "autoconf.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "addr.h"
#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "header.h"
#include "log.h"
#include "qmgr_client.h"
#include "queue.h"
#include "showq.h"
#include "strv.h"
#include "submit.h"
#include "table.h"

/* Header bytes kept in memory to find recipients (-t) and Bcc:; a
 * longer header section continues as body, as in Postfix. */
#define HEADER_MAX	(1024 * 1024)
#define SMTP_LINE_MAX	4096

enum mode {
	MODE_DELIVER,		/* -bm, the default */
	MODE_SMTP,		/* -bs */
	MODE_LIST,		/* -bp, mailq */
	MODE_FLUSH,		/* -q */
	MODE_ALIASES,		/* -bi, -I, newaliases */
};

static struct {
	enum mode mode;
	const char *config_dir;
	int	 extract;	/* -t */
	int	 ignore_dots;	/* -i, -oi */
	int	 verbose;	/* -v */
	const char *sender;	/* -f, -r; NULL: not given */
	const char *full_name;	/* -F */
	int	 notify;	/* -N */
	const char *ret;	/* -R: FULL or HDRS */
	const char *envid;	/* -V */
	const char *body;	/* -B: 7BIT or 8BITMIME */
	const char *alias_file;	/* -oA */
	const char *flush_site;	/* -qR, -qS */
	const char *flush_id;	/* -qI */
	char	*login;		/* who runs us */
	const char *queue_dir;
	size_t	 size_limit;	/* message_size_limit, 0: none */
} opt;

/* The maildrop file being written, removed when we give up. */
static struct queue_writer *pending;

/* Exit with a sysexits.h status after "sendmail: fatal: ...". */
static void __attribute__((noreturn, format(printf, 2, 3)))
die(int status, const char *fmt, ...)
{
	char text[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	fflush(stdout);
	if (pending != NULL) {
		queue_abort(pending);
		pending = NULL;
	}
	log_set_fatal_status(status);
	msg_fatal("%s", text);
}

static void __attribute__((noreturn))
usage(const char *why)
{
	die(EX_USAGE, "%s; usage: sendmail [-t] [-i] [-f sender] "
	    "[-F full_name] [-bs | -bp | -bi | -q] [recipient ...]", why);
}

/* ---- options ---- */

static int
parse_notify(const char *s)
{
	char **words = strv_split(s, ", \t");
	int n = 0;

	for (size_t i = 0; words[i] != NULL; i++) {
		if (strcasecmp(words[i], "never") == 0)
			n |= NOTIFY_NEVER;
		else if (strcasecmp(words[i], "success") == 0)
			n |= NOTIFY_SUCCESS;
		else if (strcasecmp(words[i], "delay") == 0)
			n |= NOTIFY_DELAY;
		else if (strcasecmp(words[i], "failure") == 0)
			n |= NOTIFY_FAILURE;
		else {
			strv_free(words);
			usage("-N wants never or success,delay,failure");
		}
	}
	strv_free(words);
	if (n == 0 || ((n & NOTIFY_NEVER) && n != NOTIFY_NEVER))
		usage("-N wants never or success,delay,failure");
	return n;
}

/* -f value: "<a@b>" and "a@b" alike; "<>" and "" are the null sender. */
static const char *
parse_sender(const char *s)
{
	size_t n = strlen(s);

	for (const char *p = s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			die(EX_DATAERR, "bad sender address");
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>')
		return xstrndup(s + 1, n - 2);
	return s;
}

/* -q, -qR site, -qS site, -qI id, -q30m. */
static void
parse_q(const char *arg)
{
	opt.mode = MODE_FLUSH;
	if (arg == NULL || *arg == '\0')
		return;
	if ((*arg == 'R' || *arg == 'S') && arg[1] != '\0')
		opt.flush_site = arg + 1;
	else if (*arg == 'I' && arg[1] != '\0')
		opt.flush_id = arg + 1;
	/* Anything else is a queue run interval: the daemons have their
	 * own (queue_run_delay), so it only means "flush now". */
}

static void
parse_b(const char *arg)
{
	if (strcmp(arg, "m") == 0)
		opt.mode = MODE_DELIVER;
	else if (strcmp(arg, "s") == 0)
		opt.mode = MODE_SMTP;
	else if (strcmp(arg, "p") == 0)
		opt.mode = MODE_LIST;
	else if (strcmp(arg, "i") == 0)
		opt.mode = MODE_ALIASES;
	else if (strcmp(arg, "d") == 0 || strcmp(arg, "l") == 0)
		die(EX_USAGE, "-b%s: the daemons are started with \"tern "
		    "start\"", arg);
	else if (strcmp(arg, "v") == 0)
		die(EX_UNAVAILABLE, "-bv (address verification) is not "
		    "supported yet");
	else
		die(EX_USAGE, "-b%s is not supported", arg);
}

static void
parse_options(int argc, char **argv)
{
	const char *name;
	int ch;

	name = strrchr(argv[0], '/');
	name = name != NULL ? name + 1 : argv[0];
	if (strlen(name) >= 5 && strcmp(name + strlen(name) - 5, "mailq") == 0)
		opt.mode = MODE_LIST;
	else if (strlen(name) >= 10 &&
	    strcmp(name + strlen(name) - 10, "newaliases") == 0)
		opt.mode = MODE_ALIASES;

	/* Postfix's option letters; those that make no sense for Tern are
	 * accepted and ignored, so that scripts written for sendmail run. */
	while ((ch = getopt(argc, argv,
	    "B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q::r:tvx")) != -1) {
		switch (ch) {
		case 'B':
			if (strcasecmp(optarg, "8bitmime") == 0)
				opt.body = "8BITMIME";
			else if (strcasecmp(optarg, "7bit") == 0)
				opt.body = "7BIT";
			else
				usage("-B wants 7bit or 8bitmime");
			break;
		case 'C':
			/* A main.cf file or the folder that holds it. */
			if (strlen(optarg) > 8 && strcmp(optarg +
			    strlen(optarg) - 8, "/main.cf") == 0)
				opt.config_dir = xstrndup(optarg,
				    strlen(optarg) - 8);
			else
				opt.config_dir = optarg;
			break;
		case 'F':
			opt.full_name = optarg;
			break;
		case 'I':
			opt.mode = MODE_ALIASES;
			break;
		case 'N':
			opt.notify = parse_notify(optarg);
			break;
		case 'R':
			if (strcasecmp(optarg, "full") == 0)
				opt.ret = "FULL";
			else if (strcasecmp(optarg, "hdrs") == 0)
				opt.ret = "HDRS";
			else
				usage("-R wants full or hdrs");
			break;
		case 'V':
			if (strlen(optarg) > 100 || *optarg == '\0')
				usage("-V wants an envelope ID of 1 to 100 "
				    "characters");
			for (const char *p = optarg; *p != '\0'; p++)
				if (*p < 0x21 || *p > 0x7e)
					usage("-V wants printable ASCII");
			opt.envid = optarg;
			break;
		case 'b':
			parse_b(optarg);
			break;
		case 'f':
		case 'r':
			opt.sender = parse_sender(optarg);
			break;
		case 'i':
			opt.ignore_dots = 1;
			break;
		case 'o':
			if (optarg[0] == 'i' && optarg[1] == '\0')
				opt.ignore_dots = 1;
			else if (optarg[0] == 'A') {
				if (optarg[1] != '\0')
					opt.alias_file = optarg + 1;
				else if (optind < argc)
					opt.alias_file = argv[optind++];
			}
			/* Other -o options are sendmail.cf's; ignored. */
			break;
		case 'q':
			parse_q(optarg);
			break;
		case 't':
			opt.extract = 1;
			break;
		case 'v':
			opt.verbose++;
			break;
		case 'G':	/* gateway submission */
		case 'L':	/* syslog label */
		case 'O':	/* sendmail.cf option */
		case 'U':	/* initial user submission */
		case 'X':	/* traffic log */
		case 'c':	/* connect to expensive mailers */
		case 'e':	/* error mode */
		case 'h':	/* hop count */
		case 'm':	/* me too */
		case 'n':	/* no aliasing */
		case 'p':	/* protocol */
		case 'x':
			break;
		default:
			usage("unknown option");
		}
	}
}

/* ---- who we are ---- */

/* The login name of the real uid; the number when it has no account. */
static char *
my_login(void)
{
	struct passwd *pw = getpwuid(getuid());

	if (pw != NULL && pw->pw_name != NULL && *pw->pw_name != '\0')
		return xstrdup(pw->pw_name);
	return xasprintf("%lu", (unsigned long)getuid());
}

/* -F, else $NAME, else the first field of the GECOS entry. */
static char *
my_full_name(void)
{
	struct passwd *pw;
	const char *s;
	char *name, *comma;

	if (opt.full_name != NULL)
		return xstrdup(opt.full_name);
	if ((s = getenv("NAME")) != NULL && *s != '\0')
		return xstrdup(s);
	if ((pw = getpwuid(getuid())) == NULL || pw->pw_gecos == NULL)
		return NULL;
	name = xstrdup(pw->pw_gecos);
	if ((comma = strchr(name, ',')) != NULL)
		*comma = '\0';
	if (*name == '\0' || strchr(name, '&') != NULL) {
		/* "&" stands for the login name; rare enough to skip. */
		free(name);
		return NULL;
	}
	return name;
}

static void
check_submit_allowed(void)
{
	char *err = NULL;
	int r;

	r = submit_user_listed("authorized_submit_users", opt.login, &err);
	if (r < 0)
		die(EX_TEMPFAIL, "authorized_submit_users: %s", err);
	if (r == 0)
		die(EX_NOPERM, "User %s(%lu) is not allowed to submit mail",
		    opt.login, (unsigned long)getuid());
}

/* ---- writing the maildrop file ---- */

/* Start the file with its envelope; the caller writes the content. */
static struct queue_writer *
maildrop_create(const char *sender, char **rcpts, const int *notify,
    char **orcpts, const char *ret, const char *envid, const char *body)
{
	struct queue_writer *w;
	char *err = NULL, *full_name;

	if ((w = queue_create(opt.queue_dir, QUEUE_MAILDROP, &err)) == NULL)
		die(EX_TEMPFAIL, "cannot queue the message: %s", err);
	pending = w;
	queue_set_sender(w, sender);
	if ((full_name = my_full_name()) != NULL) {
		queue_set_attr(w, SUBMIT_ATTR_FULL_NAME, full_name);
		free(full_name);
	}
	if (ret != NULL)
		queue_set_attr(w, SUBMIT_ATTR_DSN_RET, ret);
	if (envid != NULL)
		queue_set_attr(w, SUBMIT_ATTR_DSN_ENVID, envid);
	if (body != NULL)
		queue_set_attr(w, SUBMIT_ATTR_BODY, body);
	for (size_t i = 0; rcpts[i] != NULL; i++)
		queue_add_rcpt(w, rcpts[i], orcpts != NULL ? orcpts[i] : NULL,
		    notify != NULL ? notify[i] : opt.notify);
	return w;
}

/* Commit, then poke pickup; returns the queue ID (static). */
static const char *
maildrop_commit(struct queue_writer *w)
{
	static char id[64];
	char *err = NULL;

	snprintf(id, sizeof(id), "%s", queue_writer_id(w));
	pending = NULL;		/* queue_commit frees it, whatever happens */
	if (queue_commit(w, &err) < 0)
		die(EX_TEMPFAIL, "cannot queue the message: %s", err);
	/* Best effort: pickup also finds it on its own. */
	if (submit_poke_pickup(opt.queue_dir) < 0 && opt.verbose)
		fprintf(stderr, "sendmail: pickup not reached (%s); the "
		    "message waits in maildrop/\n", strerror(errno));
	return id;
}

/* Append to the maildrop file being written; exits on failure. */
static void
maildrop_put(const void *p, size_t n)
{
	char *err = NULL;

	if (queue_write(pending, p, n, &err) < 0)
		die(EX_TEMPFAIL, "cannot queue the message: %s", err);
}

static void
maildrop_abort(void)
{
	queue_abort(pending);
	pending = NULL;
}

/* ---- reading a message from standard input ---- */

/*
 * One line into line (which is reset), LF-ended (a missing last LF is
 * added, a CR before the LF removed). 1, 0 at end of input, or exits.
 */
static int
read_line(struct buf *line)
{
	int c;

	buf_reset(line);
	while ((c = getchar_unlocked()) != EOF) {
		if (buf_putc(line, c) < 0)
			die(EX_DATAERR, "message is larger than "
			    "message_size_limit (%zu bytes)", opt.size_limit);
		if (c == '\n')
			break;
	}
	if (c == EOF) {
		if (ferror(stdin))
			die(EX_NOINPUT, "read standard input: %s",
			    strerror(errno));
		if (line->len == 0)
			return 0;
		(void)buf_putc(line, '\n');
	}
	if (line->len >= 2 && line->data[line->len - 2] == '\r') {
		line->data[line->len - 2] = '\n';
		line->len--;
		line->data[line->len] = '\0';
	}
	return 1;
}

/* 1 when line (LF-ended) is a field or a continuation of the header. */
static int
header_line(const struct buf *hdr, const struct buf *line)
{
	size_t body;

	if (line->data[0] == ' ' || line->data[0] == '\t')
		return hdr->len > 0;
	return header_section_end(line->data, line->len, &body) == line->len;
}

static int
is_resent_rcpt(const char *f, size_t n)
{
	return header_is(f, n, "Resent-To") || header_is(f, n, "Resent-Cc") ||
	    header_is(f, n, "Resent-Bcc");
}

/*
 * -t: the recipients of the header section into *rcpts, and the header
 * without Bcc: (or Resent-Bcc:) into out.
 */
static void
extract(const struct buf *hdr, char ***rcpts, struct buf *out)
{
	const char *f;
	size_t off = 0, n;
	int resent = 0, take, bcc;
	char *v;

	while (header_next(hdr->data, hdr->len, &off, &f, &n))
		if (is_resent_rcpt(f, n))
			resent = 1;
	off = 0;
	while (header_next(hdr->data, hdr->len, &off, &f, &n)) {
		if (resent) {
			take = is_resent_rcpt(f, n);
			bcc = header_is(f, n, "Resent-Bcc");
		} else {
			take = header_is(f, n, "To") || header_is(f, n, "Cc") ||
			    header_is(f, n, "Bcc");
			bcc = header_is(f, n, "Bcc");
		}
		if (take) {
			v = header_value(f, n);
			(void)header_addresses(v, rcpts);
			free(v);
		}
		if (!bcc)
			(void)buf_append(out, f, n);
	}
}

/* Command-line recipients (each argument may be a list). */
static char **
argv_recipients(char **argv)
{
	char **rcpts = xcalloc(1, sizeof(char *));

	for (; *argv != NULL; argv++)
		if (header_addresses(*argv, &rcpts) == 0)
			die(EX_DATAERR, "bad recipient address: \"%s\"",
			    *argv);
	return rcpts;
}

static int
deliver(char **argv)
{
	struct queue_writer *w = NULL;
	struct buf hdr, line, out;
	char **rcpts;
	const char *sender, *id;
	size_t size = 0;
	int in_header = 1, more;

	rcpts = argv_recipients(argv);
	if (!opt.extract && rcpts[0] == NULL)
		usage("Recipient addresses must be specified on the command "
		    "line or via the -t option");
	sender = opt.sender != NULL ? opt.sender : opt.login;
	buf_init(&hdr, HEADER_MAX);
	buf_init(&out, BUF_NOMAX);
	buf_init(&line, opt.size_limit > 0 ? opt.size_limit + 2 : BUF_NOMAX);

	for (;;) {
		more = read_line(&line);
		if (more && !opt.ignore_dots && line.len == 2 &&
		    line.data[0] == '.')
			more = 0;	/* a lone "." ends the message */
		if (more) {
			size += line.len;
			if (opt.size_limit > 0 && size > opt.size_limit) {
				die(EX_DATAERR, "message is larger than "
				    "message_size_limit (%zu bytes)",
				    opt.size_limit);
			}
		}
		if (in_header && more && header_line(&hdr, &line) &&
		    buf_append(&hdr, line.data, line.len) == 0)
			continue;
		if (in_header) {
			/* The header section is complete: now the
			 * envelope can be written. */
			in_header = 0;
			if (opt.extract)
				extract(&hdr, &rcpts, &out);
			else
				(void)buf_append(&out, hdr.data, hdr.len);
			if (rcpts[0] == NULL)
				die(EX_USAGE, "No recipient addresses found in "
				    "message header");
			w = maildrop_create(sender, rcpts, NULL, NULL, opt.ret,
			    opt.envid, opt.body);
			maildrop_put(out.data, out.len);
		}
		if (!more)
			break;
		maildrop_put(line.data, line.len);
	}
	id = maildrop_commit(w);
	if (opt.verbose)
		fprintf(stderr, "sendmail: queued as %s for %zu "
		    "recipient%s\n", id, strv_len(rcpts),
		    strv_len(rcpts) == 1 ? "" : "s");
	strv_free(rcpts);
	buf_free(&hdr);
	buf_free(&out);
	buf_free(&line);
	return EX_OK;
}

/* ---- -bs: SMTP on standard input and output ---- */

struct smtp {
	char	*sender;	/* NULL: no MAIL yet */
	char	**rcpts;
	int	*notify;
	char	**orcpts;	/* "-" when not given */
	char	*ret;
	char	*envid;
	char	*body;
	int	 helo;
};

static void
reply(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputs("\r\n", stdout);
	fflush(stdout);
}

static void
smtp_reset(struct smtp *s)
{
	free(s->sender);
	strv_free(s->rcpts);
	strv_free(s->orcpts);
	free(s->notify);
	free(s->ret);
	free(s->envid);
	free(s->body);
	s->sender = NULL;
	s->rcpts = s->orcpts = NULL;
	s->notify = NULL;
	s->ret = s->envid = s->body = NULL;
}

/* One SMTP line without its CRLF into line; 1, 0 at EOF, -1 too long. */
static int
smtp_line(struct buf *line)
{
	int c, toolong = 0;

	buf_reset(line);
	while ((c = getchar_unlocked()) != EOF && c != '\n')
		if (!toolong && buf_putc(line, c) < 0)
			toolong = 1;
	if (c == EOF && line->len == 0)
		return 0;
	if (line->len > 0 && line->data[line->len - 1] == '\r')
		line->data[--line->len] = '\0';
	return toolong ? -1 : 1;
}

/* The word after "NAME=" among the ESMTP parameters at p; allocated. */
static char *
esmtp_param(const char *p, const char *name)
{
	size_t n = strlen(name);

	while (*p != '\0') {
		while (*p == ' ')
			p++;
		if (strncasecmp(p, name, n) == 0 && p[n] == '=')
			return xstrndup(p + n + 1, strcspn(p + n + 1, " "));
		p += strcspn(p, " ");
	}
	return NULL;
}

static void
smtp_mail(struct smtp *s, const char *arg)
{
	const char *end, *why;
	char *addr, *v;

	if (s->sender != NULL) {
		reply("503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (strncasecmp(arg, "FROM:", 5) != 0) {
		reply("501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	for (arg += 5; *arg == ' '; arg++)
		;
	if (addr_parse_path(arg, ADDR_NULL_OK | ADDR_UTF8_OK, &addr, &end,
	    &why) < 0) {
		reply("501 5.1.7 Bad sender address syntax");
		return;
	}
	if ((v = esmtp_param(end, "SIZE")) != NULL) {
		unsigned long size = strtoul(v, NULL, 10);

		free(v);
		if (opt.size_limit > 0 && size > opt.size_limit) {
			free(addr);
			reply("552 5.3.4 Message size exceeds fixed limit");
			return;
		}
	}
	s->ret = esmtp_param(end, "RET");
	if (s->ret != NULL) {
		for (char *p = s->ret; *p != '\0'; p++)
			if (*p >= 'a' && *p <= 'z')
				*p = (char)(*p - 'a' + 'A');
		if (strcmp(s->ret, "FULL") != 0 && strcmp(s->ret, "HDRS") != 0) {
			free(addr);
			smtp_reset(s);
			reply("501 5.5.4 Bad RET parameter syntax");
			return;
		}
	}
	if ((v = esmtp_param(end, "ENVID")) != NULL) {
		s->envid = xtext_decode(v);
		free(v);
	}
	if ((v = esmtp_param(end, "BODY")) != NULL) {
		if (strcasecmp(v, "8BITMIME") == 0)
			s->body = xstrdup("8BITMIME");
		else if (strcasecmp(v, "7BIT") == 0)
			s->body = xstrdup("7BIT");
		free(v);
	}
	s->sender = addr;
	s->rcpts = xcalloc(1, sizeof(char *));
	s->orcpts = xcalloc(1, sizeof(char *));
	reply("250 2.1.0 Ok");
}

static void
smtp_rcpt(struct smtp *s, const char *arg)
{
	const char *end, *why;
	char *addr, *v, *orcpt;
	size_t n;
	int notify = 0;

	if (s->sender == NULL) {
		reply("503 5.5.1 Error: need MAIL command");
		return;
	}
	if (strncasecmp(arg, "TO:", 3) != 0) {
		reply("501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	for (arg += 3; *arg == ' '; arg++)
		;
	if (addr_parse_path(arg, ADDR_POSTMASTER_OK | ADDR_UTF8_OK, &addr,
	    &end, &why) < 0 || *addr == '\0') {
		free(addr);
		reply("501 5.1.3 Bad recipient address syntax");
		return;
	}
	if ((v = esmtp_param(end, "NOTIFY")) != NULL) {
		char **words = strv_split(v, ",");

		for (size_t i = 0; words[i] != NULL; i++) {
			if (strcasecmp(words[i], "NEVER") == 0)
				notify |= NOTIFY_NEVER;
			else if (strcasecmp(words[i], "SUCCESS") == 0)
				notify |= NOTIFY_SUCCESS;
			else if (strcasecmp(words[i], "FAILURE") == 0)
				notify |= NOTIFY_FAILURE;
			else if (strcasecmp(words[i], "DELAY") == 0)
				notify |= NOTIFY_DELAY;
			else
				notify = -1;
		}
		strv_free(words);
		free(v);
		if (notify <= 0 || ((notify & NOTIFY_NEVER) &&
		    notify != NOTIFY_NEVER)) {
			free(addr);
			reply("501 5.5.4 Bad NOTIFY parameter syntax");
			return;
		}
	}
	orcpt = NULL;
	if ((v = esmtp_param(end, "ORCPT")) != NULL) {
		orcpt = xtext_decode(v);
		free(v);
	}
	n = strv_len(s->rcpts);
	strv_add(&s->rcpts, addr);
	strv_add(&s->orcpts, orcpt != NULL ? orcpt : "");
	s->notify = xreallocarray(s->notify, n + 1, sizeof(int));
	s->notify[n] = notify;
	free(orcpt);
	free(addr);
	reply("250 2.1.5 Ok");
}

static void
smtp_data(struct smtp *s)
{
	struct queue_writer *w;
	struct buf data;
	size_t size = 0, skip;
	int r, toobig = 0;
	const char *id;

	if (s->sender == NULL) {
		reply("503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->rcpts == NULL || s->rcpts[0] == NULL) {
		reply("503 5.5.1 Error: need RCPT command");
		return;
	}
	w = maildrop_create(s->sender, s->rcpts, s->notify, s->orcpts,
	    s->ret, s->envid, s->body);
	reply("354 End data with <CR><LF>.<CR><LF>");
	/* Lines of any length, up to the size limit. */
	buf_init(&data, opt.size_limit > 0 ? opt.size_limit + 3 : BUF_NOMAX);
	for (;;) {
		r = smtp_line(&data);
		if (r == 0) {
			maildrop_abort();
			buf_free(&data);
			smtp_reset(s);
			exit(EX_OK);	/* client gone mid-message */
		}
		if (r < 0)
			toobig = 1;
		if (r > 0 && strcmp(data.data, ".") == 0)
			break;
		if (toobig)
			continue;
		/* Undo the dot-stuffing of RFC 5321 section 4.5.2. */
		skip = data.data[0] == '.';
		if (buf_putc(&data, '\n') < 0) {
			toobig = 1;
			continue;
		}
		size += data.len - skip;
		if (opt.size_limit > 0 && size > opt.size_limit) {
			toobig = 1;
			continue;
		}
		maildrop_put(data.data + skip, data.len - skip);
	}
	buf_free(&data);
	if (toobig) {
		maildrop_abort();
		reply("552 5.3.4 Error: message file too big");
	} else {
		id = maildrop_commit(w);
		reply("250 2.0.0 Ok: queued as %s", id);
	}
	smtp_reset(s);
}

static int
smtp_session(void)
{
	struct smtp s;
	struct buf line;
	const char *arg;
	char *verb;
	int r;

	memset(&s, 0, sizeof(s));
	buf_init(&line, SMTP_LINE_MAX);
	reply("220 %s", config_str("smtpd_banner"));
	while ((r = smtp_line(&line)) != 0) {
		if (r < 0) {
			reply("500 5.5.0 Error: line too long");
			continue;
		}
		verb = xstrndup(line.data, strcspn(line.data, " "));
		for (arg = line.data + strlen(verb); *arg == ' '; arg++)
			;
		if (strcasecmp(verb, "EHLO") == 0 ||
		    strcasecmp(verb, "HELO") == 0) {
			if (*arg == '\0')
				reply("501 5.5.4 Syntax: %s hostname", verb);
			else if (strcasecmp(verb, "HELO") == 0) {
				smtp_reset(&s);
				s.helo = 1;
				reply("250 %s", config_str("myhostname"));
			} else {
				smtp_reset(&s);
				s.helo = 1;
				printf("250-%s\r\n250-PIPELINING\r\n",
				    config_str("myhostname"));
				if (opt.size_limit > 0)
					printf("250-SIZE %zu\r\n",
					    opt.size_limit);
				else
					printf("250-SIZE\r\n");
				reply("250-8BITMIME\r\n"
				    "250-ENHANCEDSTATUSCODES\r\n250 DSN");
			}
		} else if (strcasecmp(verb, "MAIL") == 0)
			smtp_mail(&s, arg);
		else if (strcasecmp(verb, "RCPT") == 0)
			smtp_rcpt(&s, arg);
		else if (strcasecmp(verb, "DATA") == 0)
			smtp_data(&s);
		else if (strcasecmp(verb, "RSET") == 0) {
			smtp_reset(&s);
			reply("250 2.0.0 Ok");
		} else if (strcasecmp(verb, "NOOP") == 0)
			reply("250 2.0.0 Ok");
		else if (strcasecmp(verb, "VRFY") == 0)
			reply("502 5.5.1 VRFY command is disabled");
		else if (strcasecmp(verb, "QUIT") == 0) {
			reply("221 2.0.0 Bye");
			free(verb);
			break;
		} else
			reply("502 5.5.2 Error: command not recognized");
		free(verb);
	}
	smtp_reset(&s);
	buf_free(&line);
	return EX_OK;
}

/* ---- the other modes ---- */

static int
list_queue(void)
{
	char *err = NULL;
	int r;

	if (getuid() != 0) {
		r = submit_user_listed("authorized_mailq_users", opt.login,
		    &err);
		if (r < 0)
			die(EX_TEMPFAIL, "authorized_mailq_users: %s", err);
		if (r == 0)
			die(EX_NOPERM, "User %s(%lu) is not allowed to view "
			    "the mail queue", opt.login,
			    (unsigned long)getuid());
	}
	/* The showq service, or the folders when it is down (showq.h). */
	if (showq_list(opt.queue_dir, SHOWQ_TEXT, stdout) < 0)
		return EX_NOPERM;
	if (fflush(stdout) != 0 || ferror(stdout))
		die(EX_IOERR, "write to standard output: %s",
		    strerror(errno));
	return EX_OK;
}

static int
flush_queue(void)
{
	int r;

	if (opt.flush_id != NULL) {
		if (!queue_id_valid(opt.flush_id))
			die(EX_USAGE, "-qI%s: not a queue ID", opt.flush_id);
		r = qmgr_deliver_now(opt.queue_dir, opt.flush_id);
	} else
		r = qmgr_flush(opt.queue_dir, opt.flush_site);
	if (r < 0)
		die(EX_UNAVAILABLE, "Cannot flush mail queue - mail system "
		    "is down (%s)", strerror(errno));
	return EX_OK;
}

/* Build one alias database from its text file ("lmdb:/etc/aliases"). */
static void
build_aliases(const char *spec)
{
	const char *colon = strchr(spec, ':'), *path = spec;
	char *err = NULL;

	if (colon != NULL && colon[1] == '/') {
		/* hash: and btree: are what a Postfix main.cf says. */
		if (strncmp(spec, "lmdb:", 5) != 0 &&
		    strncmp(spec, "hash:", 5) != 0 &&
		    strncmp(spec, "btree:", 6) != 0) {
			msg_warn("%s: only lmdb: alias databases can be built",
			    spec);
			return;
		}
		path = colon + 1;
	}
	if (access(path, R_OK) < 0)
		die(EX_NOINPUT, "%s: %s", path, strerror(errno));
	if (table_lmdb_build(path, 1, &err) < 0)
		die(EX_CANTCREAT, "%s", err);
	if (opt.verbose)
		fprintf(stderr, "sendmail: built %s.lmdb\n", path);
}

static int
new_aliases(void)
{
	char **specs;

	if (opt.alias_file != NULL) {
		build_aliases(opt.alias_file);
		return EX_OK;
	}
	specs = config_list("alias_database");
	for (size_t i = 0; specs[i] != NULL; i++)
		build_aliases(specs[i]);
	strv_free(specs);
	return EX_OK;
}

int
main(int argc, char **argv)
{
	char *err = NULL;

	log_init_tool("sendmail");
	/* Most failures below are "try again later" to our caller. */
	log_set_fatal_status(EX_TEMPFAIL);
	parse_options(argc, argv);
	if (config_load(opt.config_dir, &err) < 0)
		die(EX_CONFIG, "%s", err);
	opt.queue_dir = config_str("queue_directory");
	opt.size_limit = config_size("message_size_limit");
	opt.login = my_login();

	switch (opt.mode) {
	case MODE_LIST:
		return list_queue();
	case MODE_FLUSH:
		return flush_queue();
	case MODE_ALIASES:
		return new_aliases();
	case MODE_SMTP:
		if (argv[optind] != NULL)
			usage("-bs takes no recipients");
		check_submit_allowed();
		return smtp_session();
	case MODE_DELIVER:
		check_submit_allowed();
		return deliver(argv + optind);
	}
	return EX_SOFTWARE;
}
