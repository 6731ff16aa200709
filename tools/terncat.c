/*
 * terncat - show a queue file in human terms, in the spirit of Postfix's
 * postcat.
 *
 *	terncat [-c config_dir] [-e] [-h] [-b] [-q] QUEUEID|FILE ...
 *
 * For each file: the envelope (arrival time, sender, named attributes,
 * each recipient with its status, DSN options and last note), then the
 * message as stored. -e, -h and -b pick the envelope, the header and the
 * body sections (any combination); with none of them everything is
 * shown. -q takes the arguments as queue IDs and looks for them in every
 * queue folder under queue_directory (main.cf, read from -c or
 * $TERN_CONFIG_DIR); without -q an argument is a path, and a bare queue
 * ID that is not a file in the current folder is looked up as with -q.
 *
 * Envelope text is shown with control bytes escaped (\n, \xHH) so that an
 * odd address cannot play tricks on a terminal; the message itself is
 * copied byte for byte, as stored. The file is opened read-only and
 * never changed.
 *
 * A file that is missing or does not parse gives an error naming it and
 * the reason, and exit status 1 (the other arguments are still shown);
 * a usage or configuration error exits 2 or 1 before anything is read.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "config.h"
#include "log.h"
#include "queue.h"

#define SHOW_ENVELOPE	0x01	/* -e */
#define SHOW_HEADERS	0x02	/* -h */
#define SHOW_BODY	0x04	/* -b */

#define CHUNK		65536

static const char *config_dir_opt;
static int config_loaded;

static void
usage(void)
{
	fprintf(stderr, "usage: terncat [-c config_dir] [-e] [-h] [-b] [-q] "
	    "QUEUEID|FILE ...\n");
	exit(2);
}

/* queue_directory from main.cf, loading main.cf the first time. */
static const char *
queue_dir(void)
{
	char *err = NULL;

	if (!config_loaded) {
		if (config_load(config_dir_opt, &err) < 0)
			msg_fatal("%s", err);
		config_loaded = 1;
	}
	return config_str("queue_directory");
}

/* Print s with control bytes escaped; 8-bit bytes pass (UTF-8). */
static void
put_safe(const char *s)
{
	const unsigned char *p;

	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '\\')
			fputs("\\\\", stdout);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else if (*p == '\t')
			fputs("\\t", stdout);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else
			putchar(*p);
	}
}

static void
put_field(const char *name, const char *value)
{
	printf("%s: ", name);
	put_safe(value);
	putchar('\n');
}

static const char *
status_word(int st)
{
	switch (st) {
	case RCPT_TODO:
		return "pending";
	case RCPT_DONE:
		return "done";
	case RCPT_FAILED:
		return "failed, bounce not yet sent";
	default:
		return "?";
	}
}

static void
show_envelope(const struct queue_msg *m)
{
	static const struct {
		int bit;
		const char *word;
	} nw[] = {
		{ NOTIFY_NEVER, "NEVER" }, { NOTIFY_SUCCESS, "SUCCESS" },
		{ NOTIFY_FAILURE, "FAILURE" }, { NOTIFY_DELAY, "DELAY" },
	};
	const struct queue_rcpt *r;
	char when[64];
	struct tm tm;
	time_t t = m->arrival.tv_sec;
	int first;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y %z", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	printf("queue_id: ");
	put_safe(m->id);
	printf("\narrival_time: %s (%lld.%06ld)\n", when,
	    (long long)m->arrival.tv_sec, m->arrival.tv_nsec / 1000L);
	printf("content_size: %zu\n", m->content_len);
	if (*m->sender == '\0')
		printf("sender: <>\n");
	else
		put_field("sender", m->sender);
	for (size_t i = 0; i < m->nattrs; i++) {
		printf("attribute: ");
		put_safe(m->attrs[i].name);
		putchar('=');
		put_safe(m->attrs[i].value);
		putchar('\n');
	}
	printf("recipients: %zu (%zu pending, %zu failed)\n", m->nrcpts,
	    queue_count(m, RCPT_TODO), queue_count(m, RCPT_FAILED));
	for (size_t i = 0; i < m->nrcpts; i++) {
		r = &m->rcpts[i];
		put_field("recipient", r->addr);
		printf("  status: %s\n", status_word(r->status));
		if (r->orcpt != NULL) {
			printf("  ");
			put_field("orcpt", r->orcpt);
		}
		if (r->notify != 0) {
			printf("  notify: ");
			first = 1;
			for (size_t k = 0; k < sizeof(nw) / sizeof(nw[0]); k++)
				if (r->notify & nw[k].bit) {
					printf("%s%s", first ? "" : ",",
					    nw[k].word);
					first = 0;
				}
			putchar('\n');
		}
		if (r->dsn != NULL) {
			printf("  last_note: ");
			put_safe(r->dsn);
			putchar(' ');
			put_safe(r->reason != NULL ? r->reason : "");
			putchar('\n');
		}
	}
}

static int
field_name_char(int c)
{
	/* RFC 5322 ftext: printable US-ASCII except ":". */
	return c >= 33 && c <= 126 && c != ':';
}

/*
 * Find where the header section ends (*hdr_end: first byte not part of
 * it) and the body begins (*body: after the empty line, when there is
 * one). A line that is neither a header field, a continuation nor the
 * empty line starts the body, as a mail reader would see it.
 */
static int
split_message(const struct queue_msg *m, size_t *hdr_end, size_t *body)
{
	enum { START, CR, NAME, NAME_WSP, REST } st = START;
	char chunk[CHUNK];
	size_t off = 0, line = 0;
	ssize_t n;
	int first_line = 1;

	while (off < m->content_len) {
		n = queue_read_content(m, (off_t)off, chunk, sizeof(chunk));
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++, off++) {
			unsigned char c = (unsigned char)chunk[i];

			switch (st) {
			case START:
				line = off;
				if (c == '\n') {
					*hdr_end = off;
					*body = off + 1;
					return 0;
				}
				if (c == '\r')
					st = CR;
				else if ((c == ' ' || c == '\t') &&
				    !first_line)
					st = REST;
				else if (field_name_char(c))
					st = NAME;
				else
					goto body_here;
				break;
			case CR:
				if (c == '\n') {
					*hdr_end = line;
					*body = off + 1;
					return 0;
				}
				goto body_here;
			case NAME:
				if (c == ':')
					st = REST;
				else if (c == ' ' || c == '\t')
					st = NAME_WSP;
				else if (!field_name_char(c))
					goto body_here;
				break;
			case NAME_WSP:
				if (c == ':')
					st = REST;
				else if (c != ' ' && c != '\t')
					goto body_here;
				break;
			case REST:
				if (c == '\n') {
					st = START;
					first_line = 0;
				}
				break;
			}
		}
	}
	/* Headers only (or a last line cut short): all of it is header. */
	if (st == START || st == REST) {
		*hdr_end = *body = m->content_len;
		return 0;
	}
body_here:
	*hdr_end = *body = line;
	return 0;
}

/* Copy content bytes [from, to) to stdout; 1 when the last was LF. */
static int
copy_content(const struct queue_msg *m, size_t from, size_t to)
{
	char chunk[CHUNK];
	ssize_t n;
	int lf = 1;

	while (from < to) {
		n = queue_read_content(m, (off_t)from, chunk,
		    to - from < sizeof(chunk) ? to - from : sizeof(chunk));
		if (n <= 0) {
			msg_error("%s: read: %s", m->path,
			    n < 0 ? strerror(errno) : "file shrank");
			return -1;
		}
		fwrite(chunk, 1, (size_t)n, stdout);
		lf = chunk[n - 1] == '\n';
		from += (size_t)n;
	}
	return lf;
}

/* Copy a section, then a newline when it did not end with one. */
static int
show_section(const struct queue_msg *m, size_t from, size_t to)
{
	int r = copy_content(m, from, to);

	if (r == 0)
		putchar('\n');
	return r < 0 ? -1 : 0;
}

static int
show_file(const char *path, const char *label, int what)
{
	struct queue_msg *m = NULL;
	char *err = NULL;
	size_t hdr_end, body;
	int corrupt, r = 0;

	if (queue_open(path, 0, &m, &corrupt, &err) < 0) {
		msg_error("%s", err);
		free(err);
		return -1;
	}
	if (what == 0 || (what & SHOW_ENVELOPE)) {
		printf("*** ENVELOPE RECORDS %s ***\n", label);
		show_envelope(m);
	}
	if (what == 0) {
		printf("*** MESSAGE CONTENTS %s ***\n", label);
		r = show_section(m, 0, m->content_len);
	}
	if (r == 0 && (what & (SHOW_HEADERS | SHOW_BODY))) {
		if (split_message(m, &hdr_end, &body) < 0) {
			msg_error("%s: read: %s", path, strerror(errno));
			r = -1;
		}
		if (r == 0 && (what & SHOW_HEADERS)) {
			printf("*** HEADER RECORDS %s ***\n", label);
			r = show_section(m, 0, hdr_end);
		}
		if (r == 0 && (what & SHOW_BODY)) {
			printf("*** BODY RECORDS %s ***\n", label);
			r = show_section(m, body, m->content_len);
		}
	}
	if (r == 0)
		printf("*** MESSAGE FILE END %s ***\n", label);
	queue_close(m);
	return r;
}

/* Find id in the queue: its path and a "folder/id" label. */
static int
find_id(const char *id, char **path, char **label)
{
	enum queue_folder f;
	const char *qd;

	if (!queue_id_valid(id)) {
		msg_error("%s: not a queue ID", id);
		return -1;
	}
	qd = queue_dir();
	if (queue_find(qd, id, &f) < 0) {
		msg_error("%s: no such message in %s", id, qd);
		return -1;
	}
	*path = queue_path(qd, f, id);
	*label = xasprintf("%s/%s", queue_folder_name(f), id);
	return 0;
}

int
main(int argc, char **argv)
{
	struct stat st;
	char *path, *label;
	int ch, what = 0, by_id = 0, status = 0;

	log_init_tool("terncat");
	while ((ch = getopt(argc, argv, "bc:ehq")) != -1) {
		switch (ch) {
		case 'b':
			what |= SHOW_BODY;
			break;
		case 'c':
			config_dir_opt = optarg;
			break;
		case 'e':
			what |= SHOW_ENVELOPE;
			break;
		case 'h':
			what |= SHOW_HEADERS;
			break;
		case 'q':
			by_id = 1;
			break;
		default:
			usage();
		}
	}
	argv += optind;
	if (*argv == NULL)
		usage();
	if (by_id)
		(void)queue_dir();	/* a config error stops us first */

	for (; *argv != NULL; argv++) {
		if (by_id || (stat(*argv, &st) < 0 && errno == ENOENT &&
		    queue_id_valid(*argv))) {
			if (find_id(*argv, &path, &label) < 0) {
				status = 1;
				continue;
			}
		} else {
			path = xstrdup(*argv);
			label = xstrdup(*argv);
		}
		if (show_file(path, label, what) < 0)
			status = 1;
		free(path);
		free(label);
		if (fflush(stdout) != 0)
			break;
	}
	if (fflush(stdout) != 0 || ferror(stdout))
		msg_fatal("write to standard output: %s", strerror(errno));
	return status;
}
