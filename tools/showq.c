/*
 * showq - list the mail queue in Postfix's mailq and postqueue -j
 * shapes. See showq.h. Linked into ternqueue and sendmail (mailq,
 * sendmail -bp).
 *
 * The column layout is Postfix's, byte for byte: the queue ID left in
 * ten columns (longer IDs, like Tern's, push the rest right, as Postfix's
 * long queue IDs do), the status character, the size right-aligned in
 * eight columns, the arrival time in asctime(3)'s first twenty
 * characters, the sender; recipients start in column 42; a reason ends
 * in column 78 unless it is too long for that.
 *
 * A folder that cannot be opened is an error (reported before anything
 * is printed); a file that vanishes or does not parse is skipped.
 */
#include "autoconf.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "addr.h"
#include "log.h"
#include "queue.h"
#include "showq.h"
#include "strv.h"

/* In Postfix's order: mail not yet in the queue proper first. */
static const enum queue_folder folders[] = {
	QUEUE_MAILDROP, QUEUE_HOLD, QUEUE_INCOMING, QUEUE_ACTIVE,
	QUEUE_DEFERRED,
};
#define NFOLDERS	(sizeof(folders) / sizeof(folders[0]))

/* Postfix's empty_address_recipient, shown for the null sender. */
#define NULL_SENDER_TEXT	"MAILER-DAEMON"

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

int
showq_print(const char *queue_dir, int format, FILE *out)
{
	char **ids[NFOLDERS], *path, *err = NULL;
	struct queue_msg *m;
	unsigned long long bytes = 0;
	size_t count = 0, i, k;
	int corrupt, r = 0;

	for (i = 0; i < NFOLDERS; i++) {
		ids[i] = folder_ids(queue_dir, folders[i]);
		if (ids[i] == NULL && errno != ENOENT) {
			msg_error("cannot read %s/%s: %s", queue_dir,
			    queue_folder_name(folders[i]), strerror(errno));
			r = -1;
		}
	}
	for (i = 0; r == 0 && i < NFOLDERS; i++) {
		for (k = 0; ids[i] != NULL && ids[i][k] != NULL; k++) {
			path = queue_path(queue_dir, folders[i], ids[i][k]);
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
	for (i = 0; i < NFOLDERS; i++)
		strv_free(ids[i]);
	if (r < 0 || format == SHOWQ_JSON)
		return r;
	if (count == 0)
		fputs("Mail queue is empty\n", out);
	else
		fprintf(out, "\n-- %llu Kbytes in %zu Request%s.\n",
		    bytes / 1024, count, count == 1 ? "" : "s");
	return 0;
}
