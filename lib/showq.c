/*
 * showq - list the mail queue in Postfix's mailq and postqueue -j
 * shapes, from the queue folders or through the showq service. See
 * showq.h. Linked into ternqueue and sendmail (mailq, sendmail -bp),
 * and into showq(8), the service that lists the queue for users who
 * cannot read it.
 *
 * The column layout is Postfix's, byte for byte: the queue ID left in
 * ten columns (longer IDs, like Tern's, push the rest right, as Postfix's
 * long queue IDs do), the status character, the size right-aligned in
 * eight columns, the arrival time in asctime(3)'s first twenty
 * characters, the sender; recipients start in column 42; a reason ends
 * in column 78 unless it is too long for that.
 *
 * A folder that cannot be opened is an error (reported before anything
 * is printed); a file that vanishes or does not parse is skipped. The
 * service's answer is read with a time limit on each wait, so a stuck
 * service cannot hang mailq; one that cannot be reached at all leaves
 * showq_list() to read the folders itself.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "addr.h"
#include "attr.h"
#include "buf.h"
#include "log.h"
#include "queue.h"
#include "showq.h"
#include "stream.h"
#include "strv.h"

/* In Postfix's order: mail not yet in the queue proper first. */
static const enum queue_folder folders[] = {
	QUEUE_MAILDROP, QUEUE_HOLD, QUEUE_INCOMING, QUEUE_ACTIVE,
	QUEUE_DEFERRED,
};
#define NFOLDERS	(sizeof(folders) / sizeof(folders[0]))

/* Postfix's empty_address_recipient, shown for the null sender. */
#define NULL_SENDER_TEXT	"MAILER-DAEMON"

/* The service: time to connect, to get the status (it scans the
 * folders first), and for each wait while the listing comes; the
 * longest line taken in one piece (longer ones come in pieces). */
#define SHOWQ_CONNECT_MS	2000
#define SHOWQ_STATUS_MS		15000
#define SHOWQ_READ_MS		60000
#define SHOWQ_LINE_MAX		65536

struct showq {
	char	*queue_dir;
	char	**ids[NFOLDERS];
};

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted queue IDs of one folder; NULL with errno when unreadable. */
static char **
folder_ids(const char *queue_dir, enum queue_folder f)
{
	struct dirent *de;
	char *path, **ids;
	DIR *d;
	int saved;

	path = xasprintf("%s/%s", queue_dir, queue_folder_name(f));
	d = opendir(path);
	saved = errno;
	free(path);
	if (d == NULL) {
		errno = saved;
		return NULL;
	}
	ids = xcalloc(1, sizeof(char *));
	while ((de = readdir(d)) != NULL)
		if (queue_id_valid(de->d_name))
			strv_add(&ids, de->d_name);
	closedir(d);
	qsort(ids, strv_len(ids), sizeof(char *), cmp_str);
	return ids;
}

/* Print s with control bytes as '?' (Postfix's printable()). */
static void
put_printable(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
	    p++)
		putc(*p < 0x20 || *p == 0x7f ? '?' : *p, out);
}

static void
text_message(FILE *out, const struct queue_msg *m, enum queue_folder f)
{
	char when[32];
	struct tm tm;
	time_t t = m->arrival.tv_sec;
	const char *last_reason = NULL;
	int status = ' ';

	if (f == QUEUE_ACTIVE)
		status = '*';
	else if (f == QUEUE_HOLD)
		status = '!';
	/* asctime's "Wed Aug 26 09:14:02 2020\n", first 20 characters. */
	if (localtime_r(&t, &tm) == NULL ||
	    strftime(when, sizeof(when), "%a %b %e %H:%M:%S ", &tm) == 0)
		snprintf(when, sizeof(when), "??");
	fprintf(out, "%-10s%c%8zu %-20.20s ", m->id, status, m->content_len,
	    when);
	put_printable(out, *m->sender != '\0' ? m->sender : NULL_SENDER_TEXT);
	putc('\n', out);
	/* Recipients with a reason first, grouped by it, then the rest. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < m->nrcpts; i++) {
			const struct queue_rcpt *r = &m->rcpts[i];
			int has_reason = r->reason != NULL &&
			    *r->reason != '\0';

			if (r->status != RCPT_TODO || has_reason != (pass == 0))
				continue;
			if (has_reason && (last_reason == NULL ||
			    strcmp(last_reason, r->reason) != 0)) {
				int pad = 76 - (int)strlen(r->reason);

				fprintf(out, "%*s(", pad > 0 ? pad : 0, "");
				put_printable(out, r->reason);
				fputs(")\n", out);
				last_reason = r->reason;
			}
			fprintf(out, "%41s", "");
			put_printable(out, r->addr);
			putc('\n', out);
		}
	}
}

/* A JSON string (RFC 8259): escapes, and raw UTF-8 only when valid. */
static void
put_json_string(FILE *out, const char *s)
{
	int utf8 = addr_utf8_valid(s, strlen(s));

	putc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0';
	    p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", out);
		else if (*p == '\t')
			fputs("\\t", out);
		else if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !utf8))
			fprintf(out, "\\u%04x", *p);
		else
			putc(*p, out);
	}
	putc('"', out);
}

static void
json_message(FILE *out, const struct queue_msg *m, enum queue_folder f)
{
	int first = 1;

	fputs("{\"queue_name\": ", out);
	put_json_string(out, queue_folder_name(f));
	fputs(", \"queue_id\": ", out);
	put_json_string(out, m->id);
	fprintf(out, ", \"arrival_time\": %lld, \"message_size\": %zu, "
	    "\"forced_expire\": false, \"sender\": ",
	    (long long)m->arrival.tv_sec, m->content_len);
	put_json_string(out, m->sender);
	fputs(", \"recipients\": [", out);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];

		if (r->status != RCPT_TODO)
			continue;
		fputs(first ? "{\"address\": " : ", {\"address\": ", out);
		put_json_string(out, r->addr);
		if (r->reason != NULL && *r->reason != '\0') {
			fputs(", \"delay_reason\": ", out);
			put_json_string(out, r->reason);
		}
		putc('}', out);
		first = 0;
	}
	fputs("]}\n", out);
}

void
showq_free(struct showq *q)
{
	for (size_t i = 0; i < NFOLDERS; i++)
		strv_free(q->ids[i]);
	free(q->queue_dir);
	free(q);
}

struct showq *
showq_scan(const char *queue_dir, char **err)
{
	struct showq *q = xcalloc(1, sizeof(*q));
	size_t i;

	q->queue_dir = xstrdup(queue_dir);
	for (i = 0; i < NFOLDERS; i++) {
		q->ids[i] = folder_ids(queue_dir, folders[i]);
		/* A folder not made yet holds nothing. */
		if (q->ids[i] == NULL && errno != ENOENT) {
			int saved = errno;

			*err = xasprintf("cannot read %s/%s: %s", queue_dir,
			    queue_folder_name(folders[i]), strerror(errno));
			showq_free(q);
			errno = saved;
			return NULL;
		}
	}
	return q;
}

void
showq_write(struct showq *q, int format, FILE *out)
{
	struct queue_msg *m;
	unsigned long long bytes = 0;
	size_t count = 0, i, k;
	char *path, *err = NULL;
	int corrupt;

	for (i = 0; i < NFOLDERS; i++) {
		for (k = 0; q->ids[i] != NULL && q->ids[i][k] != NULL; k++) {
			path = queue_path(q->queue_dir, folders[i],
			    q->ids[i][k]);
			corrupt = 0;
			if (queue_open(path, 0, &m, &corrupt, &err) < 0) {
				/* Moved on, or not ours to show. */
				free(err);
				err = NULL;
				free(path);
				continue;
			}
			free(path);
			if (format == SHOWQ_JSON)
				json_message(out, m, folders[i]);
			else {
				fputs(count == 0 ?
				    "-Queue ID-  --Size-- ----Arrival Time---- "
				    "-Sender/Recipient-------\n" : "\n", out);
				text_message(out, m, folders[i]);
			}
			count++;
			bytes += (unsigned long long)m->file_size;
			queue_close(m);
		}
	}
	showq_free(q);
	if (format == SHOWQ_JSON)
		return;
	if (count == 0)
		fputs("Mail queue is empty\n", out);
	else
		fprintf(out, "\n-- %llu Kbytes in %zu Request%s.\n",
		    bytes / 1024, count, count == 1 ? "" : "s");
}

int
showq_print(const char *queue_dir, int format, FILE *out)
{
	struct showq *q;
	char *err = NULL;
	int saved;

	if ((q = showq_scan(queue_dir, &err)) == NULL) {
		saved = errno;
		msg_error("%s", err);
		free(err);
		errno = saved;
		return -1;
	}
	showq_write(q, format, out);
	return 0;
}

/* Connect to the service: public/showq, or private/showq when master.cf
 * keeps it private (then only root and mail_owner get in). */
static int
showq_connect(const char *queue_dir)
{
	static const char *const where[] = { "public", "private" };
	char *path;
	int fd = -1, saved = ENOENT;

	for (size_t i = 0; fd < 0 && i < sizeof(where) / sizeof(where[0]);
	    i++) {
		path = xasprintf("%s/%s/%s", queue_dir, where[i],
		    SHOWQ_SERVICE);
		fd = unix_connect(path, SHOWQ_CONNECT_MS);
		if (fd < 0 && (i == 0 || errno != ENOENT))
			saved = errno;
		free(path);
	}
	if (fd < 0)
		errno = saved;
	return fd;
}

int
showq_ask(const char *queue_dir, int format, FILE *out, char **err)
{
	struct attrs req, reply;
	struct stream *s;
	struct buf line;
	const char *status, *reason;
	int fd, r;

	*err = NULL;
	if ((fd = showq_connect(queue_dir)) < 0)
		return SHOWQ_DOWN;
	s = stream_new(fd, SHOWQ_STATUS_MS);
	attrs_init(&req);
	attrs_init(&reply);
	attrs_add(&req, "format", format == SHOWQ_JSON ? "json" : "text");
	if ((r = attr_send(s, &req)) == 0)
		r = attr_recv(s, &reply, 4096, 8);
	attrs_clear(&req);
	if (r != 0 || (status = attrs_get(&reply, "status")) == NULL) {
		/* Nothing printed yet: as good as down. A socket nobody
		 * serves (master.cf names showq, but it cannot start) ends
		 * here after the time limit. */
		attrs_clear(&reply);
		errno = r == STREAM_TIMEOUT ? ETIMEDOUT : r == STREAM_EOF ?
		    ECONNRESET : r == 0 || r == STREAM_TOOLONG ? EPROTO :
		    s->err;
		stream_free(s);
		return SHOWQ_DOWN;
	}
	if (strcmp(status, "0") != 0) {
		reason = attrs_get(&reply, "reason");
		*err = xasprintf("showq service: %s", reason != NULL ?
		    reason : "request refused");
		attrs_clear(&reply);
		stream_free(s);
		return SHOWQ_FAILED;
	}
	attrs_clear(&reply);
	stream_set_timeout(s, SHOWQ_READ_MS);
	buf_init(&line, BUF_NOMAX);
	while ((r = stream_read_line(s, &line, SHOWQ_LINE_MAX)) > 0 ||
	    r == STREAM_TOOLONG)
		fwrite(line.data, 1, line.len, out);
	buf_free(&line);
	if (r != STREAM_EOF)
		*err = xasprintf("showq service: the listing broke off: %s",
		    stream_strerror(r));
	stream_free(s);
	return r == STREAM_EOF ? 0 : SHOWQ_FAILED;
}

int
showq_list(const char *queue_dir, int format, FILE *out)
{
	char *err = NULL;
	int r, saved;

	if ((r = showq_ask(queue_dir, format, out, &err)) == 0)
		return 0;
	if (r == SHOWQ_FAILED) {
		msg_error("%s", err);
		free(err);
		return -1;
	}
	/* The mail system is down: the folders, for who may read them. */
	saved = errno;
	if (showq_print(queue_dir, format, out) == 0)
		return 0;
	msg_error("the showq service cannot be reached either (%s): is the "
	    "mail system running, with showq in master.cf?",
	    strerror(saved));
	return -1;
}
