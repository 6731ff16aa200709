/*
 * test_queue - queue files: what a writer commits is what a reader gets
 * back, byte for byte; names, IDs and leftovers behave as queue.h says;
 * and every damaged file is reported corrupt, never half-read.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "buf.h"
#include "queue.h"

static char qdir[] = "/tmp/test_queue.XXXXXX";

/* Binary-ish content: every byte value, 8-bit text, CRs and NULs. */
static struct buf content;

static const char *const rcpt_addrs[] = {
	"alice@example.test",
	"\"john  smith\"@example.test",
	"bob+tag=x@example.test",
	"ünïcode@exämple.test",
};

static int
setup(void **state)
{
	char *err = NULL;

	if (mkdtemp(qdir) == NULL)
		return -1;
	if (queue_make_folders(qdir, &err) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	buf_init(&content, BUF_NOMAX);
	buf_puts(&content, "From: A <a@example.org>\nSubject: caf\xc3\xa9\n\n");
	for (int i = 0; i < 256; i++)
		buf_putc(&content, i);
	buf_puts(&content, "\r\nline with CRLF\r\n\n.\n..leading dots\n");
	buf_append(&content, "no final newline\0x", 18);
	return 0;
}

static int
teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", qdir);

	buf_free(&content);
	if (system(cmd) != 0)
		return -1;
	free(cmd);
	return 0;
}

/* Empty every queue folder between tests. */
static int
clean_folders(void **state)
{
	struct dirent *de;
	char *path;
	DIR *d;

	for (int f = 0; f < QUEUE_NFOLDERS; f++) {
		path = xasprintf("%s/%s", qdir,
		    queue_folder_name((enum queue_folder)f));
		d = opendir(path);
		free(path);
		if (d == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
			    strcmp(de->d_name, "..") == 0))
				continue;
			path = queue_path(qdir, (enum queue_folder)f,
			    de->d_name);
			unlink(path);
			free(path);
		}
		closedir(d);
	}
	return 0;
}

/* Names in a folder other than . and .., sorted, as a vector. */
static size_t
list_folder(enum queue_folder f, char ***out)
{
	struct dirent **names;
	char *path;
	int n, k = 0;

	path = xasprintf("%s/%s", qdir, queue_folder_name(f));
	n = scandir(path, &names, NULL, alphasort);
	free(path);
	assert_true(n >= 0);
	*out = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") != 0 &&
		    strcmp(names[i]->d_name, "..") != 0)
			(*out)[k++] = xstrdup(names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return (size_t)k;
}

static void
free_list(char **v)
{
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* Write and commit the standard test message in pieces of uneven
 * sizes (big > 0: alternately small and big pieces); returns its ID. */
static char *
write_sample_pieces(const void *body, size_t len, size_t big)
{
	struct queue_writer *w;
	char *err = NULL, *id;

	w = queue_create(qdir, QUEUE_INCOMING, &err);
	assert_non_null(w);
	queue_set_sender(w, "sender@example.org");
	queue_set_attr(w, "client_addr", "192.0.2.1");
	queue_set_attr(w, "helo", "odd name = with spaces+plus");
	queue_add_rcpt(w, rcpt_addrs[0], NULL, 0);
	queue_add_rcpt(w, rcpt_addrs[1], NULL, NOTIFY_NEVER);
	queue_add_rcpt(w, rcpt_addrs[2], "rfc822;Bob+tag=x@Example.test",
	    NOTIFY_SUCCESS | NOTIFY_FAILURE);
	queue_add_rcpt(w, rcpt_addrs[3], "-", NOTIFY_DELAY);
	id = xstrdup(queue_writer_id(w));
	/* Uneven pieces, so the staging buffer's edges are crossed. */
	for (size_t off = 0, step = 1; off < len; off += step,
	    step = big > 0 && step != big ? big : step * 3 % 7919) {
		if (step > len - off)
			step = len - off;
		assert_int_equal(queue_write(w, (const char *)body + off, step,
		    &err), 0);
	}
	assert_int_equal(queue_content_size(w), len);
	assert_int_equal(queue_commit(w, &err), 0);
	return id;
}

static char *
write_sample(const void *body, size_t len)
{
	return write_sample_pieces(body, len, 0);
}

static struct queue_msg *
open_ok(enum queue_folder f, const char *id, int writable)
{
	struct queue_msg *m = NULL;
	char *path, *err = NULL;
	int corrupt = -1;

	path = queue_path(qdir, f, id);
	if (queue_open(path, writable, &m, &corrupt, &err) < 0)
		fail_msg("queue_open %s: %s", path, err);
	assert_int_equal(corrupt, 0);
	free(path);
	return m;
}

static void
assert_content(const struct queue_msg *m, const void *want, size_t len)
{
	char *got = xmalloc(len + 1);

	assert_int_equal(m->content_len, len);
	assert_int_equal(queue_read_content(m, 0, got, len + 1), (ssize_t)len);
	assert_memory_equal(got, want, len);
	free(got);
}

static void
commit_then_open_gives_back_envelope_and_content(void **state)
{
	struct queue_msg *m;
	char *id;

	id = write_sample(content.data, content.len);
	assert_true(queue_id_valid(id));
	m = open_ok(QUEUE_INCOMING, id, 0);
	assert_string_equal(m->id, id);
	assert_string_equal(m->sender, "sender@example.org");
	assert_int_equal(m->nattrs, 2);
	assert_string_equal(queue_msg_attr(m, "client_addr"), "192.0.2.1");
	assert_string_equal(queue_msg_attr(m, "helo"),
	    "odd name = with spaces+plus");
	assert_null(queue_msg_attr(m, "nothere"));
	assert_int_equal(m->nrcpts, 4);
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(m->rcpts[i].addr, rcpt_addrs[i]);
		assert_int_equal(m->rcpts[i].status, RCPT_TODO);
		assert_null(m->rcpts[i].dsn);
		assert_null(m->rcpts[i].reason);
	}
	assert_null(m->rcpts[0].orcpt);
	assert_int_equal(m->rcpts[0].notify, 0);
	assert_int_equal(m->rcpts[1].notify, NOTIFY_NEVER);
	assert_string_equal(m->rcpts[2].orcpt, "rfc822;Bob+tag=x@Example.test");
	assert_int_equal(m->rcpts[2].notify, NOTIFY_SUCCESS | NOTIFY_FAILURE);
	/* An ORCPT of "-" is kept, not taken for "not given". */
	assert_string_equal(m->rcpts[3].orcpt, "-");
	assert_int_equal(m->rcpts[3].notify, NOTIFY_DELAY);
	assert_content(m, content.data, content.len);
	assert_int_equal(m->file_size,
	    m->content_off + (off_t)m->content_len + 2);
	assert_int_equal(queue_count(m, RCPT_TODO), 4);
	queue_close(m);
	free(id);
}

static void
arrival_time_is_kept_and_matches_the_id(void **state)
{
	struct queue_writer *w;
	struct queue_msg *m;
	struct timespec ts;
	char *err = NULL, *id, prefix[14];

	w = queue_create(qdir, QUEUE_INCOMING, &err);
	assert_non_null(w);
	ts = queue_writer_arrival(w);
	id = xstrdup(queue_writer_id(w));
	queue_set_sender(w, "");
	queue_add_rcpt(w, "x@example.test", NULL, 0);
	assert_int_equal(queue_commit(w, &err), 0);
	snprintf(prefix, sizeof(prefix), "%013llX",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
	assert_memory_equal(id, prefix, 13);
	m = open_ok(QUEUE_INCOMING, id, 0);
	assert_int_equal(m->arrival.tv_sec, ts.tv_sec);
	assert_int_equal(m->arrival.tv_nsec, ts.tv_nsec);
	/* The null sender and an empty message. */
	assert_string_equal(m->sender, "");
	assert_int_equal(m->content_len, 0);
	queue_close(m);
	free(id);
}

static void
five_megabyte_message_round_trips(void **state)
{
	struct queue_msg *m;
	struct buf big;
	char line[100], *id;

	buf_init(&big, BUF_NOMAX);
	for (int i = 0; big.len < 5 * 1024 * 1024; i++) {
		snprintf(line, sizeof(line), "line %08d: the quick brown fox "
		    "jumps over the lazy dog \xe2\x9c\x93\n", i);
		buf_puts(&big, line);
	}
	/* Pieces bigger than the staging buffer go around it. */
	id = write_sample_pieces(big.data, big.len, 150000);
	m = open_ok(QUEUE_INCOMING, id, 0);
	assert_content(m, big.data, big.len);
	/* Reads at an offset stop at the end of the content. */
	assert_int_equal(queue_read_content(m, (off_t)big.len - 10, line, 50),
	    10);
	assert_memory_equal(line, big.data + big.len - 10, 10);
	assert_int_equal(queue_read_content(m, (off_t)big.len, line, 50), 0);
	queue_close(m);
	buf_free(&big);
	free(id);
}

static void
ids_are_unique_and_sorted_in_creation_order(void **state)
{
	char *ids[64], **names;
	size_t n;

	for (int i = 0; i < 64; i++) {
		ids[i] = write_sample("x\n", 2);
		assert_true(queue_id_valid(ids[i]));
		if (i > 0)
			assert_true(strcmp(ids[i - 1], ids[i]) < 0);
	}
	/* The folder listing, sorted by name, is arrival order. */
	n = list_folder(QUEUE_INCOMING, &names);
	assert_int_equal(n, 64);
	for (int i = 0; i < 64; i++) {
		assert_string_equal(names[i], ids[i]);
		free(ids[i]);
	}
	free_list(names);
}

static void
commit_leaves_only_the_file_named_by_its_id(void **state)
{
	char **names, *id;

	id = write_sample(content.data, content.len);
	assert_int_equal(list_folder(QUEUE_INCOMING, &names), 1);
	assert_string_equal(names[0], id);
	free_list(names);
	free(id);
}

static void
abort_leaves_nothing(void **state)
{
	struct queue_writer *w;
	char **names, *err = NULL;

	w = queue_create(qdir, QUEUE_INCOMING, &err);
	assert_non_null(w);
	queue_add_rcpt(w, "x@example.test", NULL, 0);
	/* The temporary file exists while writing. */
	assert_int_equal(list_folder(QUEUE_INCOMING, &names), 1);
	assert_memory_equal(names[0], ".tmp-", 5);
	free_list(names);
	assert_int_equal(queue_write(w, "hello\n", 6, &err), 0);
	queue_abort(w);
	assert_int_equal(list_folder(QUEUE_INCOMING, &names), 0);
	free_list(names);
}

static void
cleanup_removes_dead_leftovers_only(void **state)
{
	struct queue_writer *live;
	char *p, *err = NULL, *done, **names;
	int fd;

	done = write_sample("done\n", 5);
	p = xasprintf("%s/incoming/.tmp-1.2.3", qdir);
	assert_true((fd = open(p, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	free(p);
	p = xasprintf("%s/maildrop/.tmp-4.5.6", qdir);
	assert_true((fd = open(p, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	free(p);
	/* Not a leftover: no ".tmp-" prefix. */
	p = xasprintf("%s/incoming/.tmpfoo", qdir);
	assert_true((fd = open(p, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	free(p);
	/* A writer still at work holds its file locked. */
	live = queue_create(qdir, QUEUE_MAILDROP, &err);
	assert_non_null(live);

	assert_int_equal(queue_cleanup(qdir), 2);
	assert_int_equal(list_folder(QUEUE_INCOMING, &names), 2);
	assert_string_equal(names[0], ".tmpfoo");
	assert_string_equal(names[1], done);
	free_list(names);
	assert_int_equal(list_folder(QUEUE_MAILDROP, &names), 1);
	assert_memory_equal(names[0], ".tmp-", 5);
	free_list(names);

	/* The live writer finishes normally. */
	queue_add_rcpt(live, "x@example.test", NULL, 0);
	assert_int_equal(queue_commit(live, &err), 0);
	assert_int_equal(queue_cleanup(qdir), 0);
	assert_int_equal(list_folder(QUEUE_MAILDROP, &names), 1);
	assert_true(queue_id_valid(names[0]));
	free_list(names);
	free(done);
}

/* qmgr's start-up clean-up running between a writer's create and its
 * lock removes the file: the writer notices and takes another name. */
static int hook_calls;

static void
cleanup_in_the_window(const char *queue_dir)
{
	if (hook_calls++ == 0)
		assert_int_equal(queue_cleanup(queue_dir), 1);
}

static void
cleanup_between_create_and_lock_costs_a_name_not_the_message(void **state)
{
	struct queue_writer *w;
	char **names;
	char *err = NULL;

	(void)state;
	hook_calls = 0;
	queue_create_hook = cleanup_in_the_window;
	w = queue_create(qdir, QUEUE_INCOMING, &err);
	queue_create_hook = NULL;
	assert_non_null(w);
	assert_int_equal(hook_calls, 2);
	queue_set_sender(w, "a@example.test");
	queue_add_rcpt(w, "x@example.test", NULL, 0);
	assert_int_equal(queue_write(w, "Subject: x\n\nhi\n", 15, &err), 0);
	assert_int_equal(queue_commit(w, &err), 0);
	assert_int_equal(list_folder(QUEUE_INCOMING, &names), 1);
	assert_true(queue_id_valid(names[0]));
	free_list(names);
}

/* Read a whole file into a fresh buf. */
static void
slurp(const char *path, struct buf *b)
{
	char chunk[65536];
	ssize_t n;
	int fd;

	buf_init(b, BUF_NOMAX);
	assert_true((fd = open(path, O_RDONLY)) >= 0);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		buf_append(b, chunk, (size_t)n);
	close(fd);
}

static void
spew(const char *path, const void *p, size_t n)
{
	int fd;

	assert_true((fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600)) >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* Replace the first "from" in text by "to" (which must be found). */
static void
replace(struct buf *text, const char *from, const char *to)
{
	struct buf out;
	char *at;

	at = memmem(text->data, text->len, from, strlen(from));
	if (at == NULL)
		fail_msg("\"%s\" not in the sample file", from);
	buf_init(&out, BUF_NOMAX);
	buf_append(&out, text->data, (size_t)(at - text->data));
	buf_puts(&out, to);
	buf_append(&out, at + strlen(from),
	    text->len - (size_t)(at - text->data) - strlen(from));
	buf_free(text);
	*text = out;
}

/* Delete every envelope line that starts with prefix (one at least). */
static void
delete_lines(struct buf *text, const char *prefix)
{
	char *start, *lf;
	size_t plen = strlen(prefix);
	int n = 0;

	for (start = text->data; start < text->data + text->len; ) {
		lf = memchr(start, '\n', text->len - (size_t)(start -
		    text->data));
		assert_non_null(lf);
		if (strncmp(start, prefix, plen) == 0) {
			memmove(start, lf + 1, text->len - (size_t)(lf + 1 -
			    text->data));
			text->len -= (size_t)(lf + 1 - start);
			n++;
			continue;
		}
		if (strncmp(start, "M ", 2) == 0)
			break;
		start = lf + 1;
	}
	assert_true(n > 0);
}

/* 1 when path opens as corrupt (and not merely as an error). */
static int
opens_corrupt(const char *path)
{
	struct queue_msg *m = NULL;
	char *err = NULL;
	int corrupt = -1, r;

	r = queue_open(path, 0, &m, &corrupt, &err);
	if (r == 0) {
		queue_close(m);
		return 0;
	}
	assert_non_null(err);
	assert_null(m);
	free(err);
	return corrupt == 1;
}

static void
every_kind_of_damage_is_reported_corrupt(void **state)
{
	static const struct {
		const char *from, *to;
	} damage[] = {
		{ "TERN 1\n", "TERX 1\n" },		/* bad magic */
		{ "TERN 1\n", "TERN 2\n" },		/* unknown version */
		{ "TERN 1\n", "" },			/* no magic at all */
		{ "\nS ", "\nX foo\nS " },		/* unknown record */
		{ "S sender@", "S sender+zz@" },	/* bad xtext */
		{ "S sender", "S send er" },		/* space in xtext */
		{ "\nS ", "\nS x\nS " },		/* repeated sender */
		{ "\nT ", "\nT 1.000000\nT " },	/* repeated time */
		{ "S sender@example.org\n", "" },	/* no sender */
		{ "S sender@example.org\n", "S\n" },	/* S without space */
		{ ".", "x" },				/* T not sec.usec */
		{ ".", ".1" },				/* 7 digits of usec */
		{ "\nA ", "\nA noequals\nA " },		/* malformed A */
		{ "\nA ", "\nA =value\nA " },		/* A without name */
		{ "R R - - alice", "R Q - - alice" },	/* bad status byte */
		{ "R R - - alice", "R R BOGUS - alice" }, /* bad NOTIFY */
		{ "R R - - alice", "R R -  alice" },	/* empty ORCPT field */
		{ "R R - - alice", "R R - alice" },	/* too few fields */
		{ "R R - - alice", "R R - - al ice" },	/* too many fields */
		{ "M 0", "M " },			/* 19 digits */
		{ "M 0", "M x" },			/* not a number */
		{ "M 0000", "M 9999" },			/* past end of file */
		/* Lengths near the top of off_t and size_t must be refused
		 * without overflowing (UBSan aborts the test if they do). */
		{ "M 00000000000000000017", "M 09223372036854775807" },
		{ "M 00000000000000000017", "M 09223372036854775790" },
		{ "M 00000000000000000017", "M 18446744073709551615" },
		{ "\nE\n", "\nX\n" },			/* no end marker */
		{ "\nE\n", "\nE\nN 9 4.0.0 x\n" },	/* note for no rcpt */
		{ "\nE\n", "\nE\nN 0 4.0.0 a b\n" },	/* malformed note */
		{ "\nE\n", "\nE\ngarbage\n" },		/* junk after E */
	};
	struct buf good, bad;
	char *id, *src, *dst;

	id = write_sample("Subject: x\n\nbody\n", 17);
	src = queue_path(qdir, QUEUE_INCOMING, id);
	slurp(src, &good);
	dst = xasprintf("%s/incoming/DAMAGED", qdir);
	/* The undamaged copy opens: the test itself is sound. */
	spew(dst, good.data, good.len);
	assert_false(opens_corrupt(dst));
	for (size_t i = 0; i < sizeof(damage) / sizeof(damage[0]); i++) {
		buf_init(&bad, BUF_NOMAX);
		buf_append(&bad, good.data, good.len);
		replace(&bad, damage[i].from, damage[i].to);
		spew(dst, bad.data, bad.len);
		if (!opens_corrupt(dst))
			fail_msg("damage %zu (\"%s\" -> \"%s\") not detected",
			    i, damage[i].from, damage[i].to);
		buf_free(&bad);
	}
	/* No arrival time. */
	buf_init(&bad, BUF_NOMAX);
	buf_append(&bad, good.data, good.len);
	delete_lines(&bad, "T ");
	spew(dst, bad.data, bad.len);
	assert_true(opens_corrupt(dst));
	buf_free(&bad);
	/* All recipient records gone. */
	buf_init(&bad, BUF_NOMAX);
	buf_append(&bad, good.data, good.len);
	delete_lines(&bad, "R ");
	spew(dst, bad.data, bad.len);
	assert_true(opens_corrupt(dst));
	buf_free(&bad);
	buf_free(&good);
	free(src);
	free(dst);
	free(id);
}

static void
missing_file_is_an_error_not_corrupt(void **state)
{
	struct queue_msg *m = NULL;
	char *err = NULL, *path;
	int corrupt = -1;

	path = queue_path(qdir, QUEUE_ACTIVE, "0000000000000A1");
	assert_int_equal(queue_open(path, 0, &m, &corrupt, &err), -1);
	assert_int_equal(corrupt, 0);
	assert_non_null(strstr(err, "No such file"));
	free(err);
	free(path);
}

static void
same_msg(const struct queue_msg *a, const struct queue_msg *b)
{
	assert_string_equal(a->sender, b->sender);
	assert_int_equal(a->arrival.tv_sec, b->arrival.tv_sec);
	assert_int_equal(a->nattrs, b->nattrs);
	assert_int_equal(a->nrcpts, b->nrcpts);
	for (size_t i = 0; i < a->nrcpts; i++) {
		assert_string_equal(a->rcpts[i].addr, b->rcpts[i].addr);
		assert_int_equal(a->rcpts[i].status, b->rcpts[i].status);
	}
	assert_int_equal(a->content_off, b->content_off);
	assert_int_equal(a->content_len, b->content_len);
}

static void
every_truncation_is_corrupt_or_whole(void **state)
{
	struct queue_msg *full, *m;
	struct buf good;
	char *id, *src, *dst, *err;
	off_t end_of_e;
	int corrupt, r;

	id = write_sample(content.data, content.len);
	full = open_ok(QUEUE_INCOMING, id, 1);
	end_of_e = full->file_size;
	assert_int_equal(queue_note(full, 0, "4.4.1", "first note", &err), 0);
	assert_int_equal(queue_note(full, 1, "4.2.0", "second", &err), 0);
	src = queue_path(qdir, QUEUE_INCOMING, id);
	slurp(src, &good);
	dst = xasprintf("%s/incoming/TRUNCATED", qdir);
	for (size_t cut = 0; cut <= good.len; cut++) {
		spew(dst, good.data, cut);
		m = NULL;
		err = NULL;
		corrupt = -1;
		r = queue_open(dst, 0, &m, &corrupt, &err);
		if ((off_t)cut < end_of_e) {
			/* Short of "E": never a message, always corrupt. */
			if (r != -1 || corrupt != 1)
				fail_msg("cut at %zu of %zu not corrupt", cut,
				    good.len);
			free(err);
			continue;
		}
		/* From "E" on only notes can be missing. */
		if (r != 0)
			fail_msg("cut at %zu in the notes: %s", cut, err);
		same_msg(m, full);
		assert_content(m, content.data, content.len);
		if (cut == good.len) {
			assert_string_equal(m->rcpts[0].reason, "first note");
			assert_string_equal(m->rcpts[1].reason, "second");
		} else
			assert_null(m->rcpts[1].reason);
		queue_close(m);
	}
	queue_close(full);
	buf_free(&good);
	free(src);
	free(dst);
	free(id);
}

static void
mark_persists_across_reopen(void **state)
{
	struct queue_msg *m;
	char *id, *err = NULL;

	id = write_sample(content.data, content.len);
	m = open_ok(QUEUE_INCOMING, id, 1);
	assert_int_equal(queue_mark(m, 1, RCPT_DONE, &err), 0);
	assert_int_equal(queue_mark(m, 3, RCPT_FAILED, &err), 0);
	assert_int_equal(m->rcpts[1].status, RCPT_DONE);
	queue_close(m);
	m = open_ok(QUEUE_INCOMING, id, 0);
	assert_int_equal(m->rcpts[0].status, RCPT_TODO);
	assert_int_equal(m->rcpts[1].status, RCPT_DONE);
	assert_int_equal(m->rcpts[2].status, RCPT_TODO);
	assert_int_equal(m->rcpts[3].status, RCPT_FAILED);
	assert_int_equal(queue_count(m, RCPT_TODO), 2);
	assert_int_equal(queue_count(m, RCPT_FAILED), 1);
	/* Marking touched nothing else. */
	assert_content(m, content.data, content.len);
	queue_close(m);
	free(id);
}

static void
last_note_per_recipient_is_reported(void **state)
{
	struct queue_msg *m;
	char *id, *err = NULL;

	id = write_sample(content.data, content.len);
	m = open_ok(QUEUE_INCOMING, id, 1);
	assert_int_equal(queue_note(m, 0, "4.4.1", "connect: refused", &err),
	    0);
	assert_int_equal(queue_note(m, 2, "4.2.2", "mailbox full", &err), 0);
	assert_int_equal(queue_note(m, 0, "4.7.0",
	    "greylisted, try again\nlater = soon", &err), 0);
	queue_close(m);
	m = open_ok(QUEUE_INCOMING, id, 0);
	assert_string_equal(m->rcpts[0].dsn, "4.7.0");
	assert_string_equal(m->rcpts[0].reason,
	    "greylisted, try again\nlater = soon");
	assert_null(m->rcpts[1].dsn);
	assert_string_equal(m->rcpts[2].dsn, "4.2.2");
	assert_string_equal(m->rcpts[2].reason, "mailbox full");
	assert_content(m, content.data, content.len);
	queue_close(m);
	free(id);
}

static void
partial_note_from_a_crash_is_ignored_and_overwritten(void **state)
{
	static const char partial[] =
	    "N 1 5.1.1 a+20very+20long+20reason+20cut+20short+20by+20a+20crash";
	struct queue_msg *m;
	struct buf after;
	char *id, *path, *err = NULL;
	int fd;

	id = write_sample(content.data, content.len);
	path = queue_path(qdir, QUEUE_INCOMING, id);
	m = open_ok(QUEUE_INCOMING, id, 1);
	assert_int_equal(queue_note(m, 0, "4.4.1", "before", &err), 0);
	queue_close(m);
	assert_true((fd = open(path, O_WRONLY | O_APPEND)) >= 0);
	assert_int_equal(write(fd, partial, strlen(partial)),
	    (ssize_t)strlen(partial));
	close(fd);

	m = open_ok(QUEUE_INCOMING, id, 1);
	assert_string_equal(m->rcpts[0].reason, "before");
	assert_null(m->rcpts[1].reason);
	assert_int_equal(queue_note(m, 2, "2.0.0", "ok", &err), 0);
	queue_close(m);

	slurp(path, &after);
	assert_null(memmem(after.data, after.len, "crash", 5));
	assert_int_equal(after.data[after.len - 1], '\n');
	buf_free(&after);
	m = open_ok(QUEUE_INCOMING, id, 0);
	assert_string_equal(m->rcpts[0].reason, "before");
	assert_null(m->rcpts[1].reason);
	assert_string_equal(m->rcpts[2].reason, "ok");
	queue_close(m);
	free(path);
	free(id);
}

static void
move_and_find_follow_the_file(void **state)
{
	enum queue_folder f;
	struct queue_msg *m;
	char *id, *err = NULL, **names;

	id = write_sample(content.data, content.len);
	assert_int_equal(queue_find(qdir, id, &f), 0);
	assert_int_equal(f, QUEUE_INCOMING);
	assert_int_equal(queue_move(qdir, id, QUEUE_INCOMING, QUEUE_DEFERRED,
	    &err), 0);
	assert_int_equal(queue_find(qdir, id, &f), 0);
	assert_int_equal(f, QUEUE_DEFERRED);
	assert_int_equal(list_folder(QUEUE_INCOMING, &names), 0);
	free_list(names);
	m = open_ok(QUEUE_DEFERRED, id, 0);
	assert_content(m, content.data, content.len);
	queue_close(m);
	/* Moving what is not there fails with a reason. */
	assert_int_equal(queue_move(qdir, id, QUEUE_INCOMING, QUEUE_ACTIVE,
	    &err), -1);
	assert_non_null(strstr(err, "No such file"));
	free(err);
	err = NULL;
	assert_int_equal(queue_move(qdir, "../../etc", QUEUE_DEFERRED,
	    QUEUE_ACTIVE, &err), -1);
	free(err);
	assert_int_equal(queue_find(qdir, "0000000000000FFFF", &f), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(queue_find(qdir, "../deferred/x", &f), -1);
	assert_int_equal(errno, EINVAL);
	free(id);
}

static void
xtext_round_trips_every_byte_and_refuses_bad_input(void **state)
{
	char all[256], *enc, *dec;

	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	enc = xtext_encode(all);
	for (const char *p = enc; *p != '\0'; p++)
		assert_true(*p > ' ' && *p < 0x7f && *p != '=');
	dec = xtext_decode(enc);
	assert_non_null(dec);
	assert_string_equal(dec, all);
	free(enc);
	free(dec);

	enc = xtext_encode("a b+c=d\xc3\xa9");
	assert_string_equal(enc, "a+20b+2Bc+3Dd+C3+A9");
	free(enc);
	dec = xtext_decode("rfc822;a+2Bb@x");
	assert_string_equal(dec, "rfc822;a+b@x");
	free(dec);
	dec = xtext_decode("");
	assert_string_equal(dec, "");
	free(dec);

	assert_null(xtext_decode("a b"));	/* space */
	assert_null(xtext_decode("a=b"));	/* raw = */
	assert_null(xtext_decode("ab+"));	/* cut short */
	assert_null(xtext_decode("ab+2"));
	assert_null(xtext_decode("+zz"));
	assert_null(xtext_decode("+2b"));	/* lower case hex */
	assert_null(xtext_decode("+00"));	/* NUL */
	assert_null(xtext_decode("a\tb"));
	assert_null(xtext_decode("\xc3\xa9"));	/* raw 8-bit */
}

static void
folders_get_their_modes(void **state)
{
	static const struct {
		const char *name;
		mode_t mode;
	} want[] = {
		{ "incoming", 0700 }, { "active", 0700 }, { "deferred", 0700 },
		{ "hold", 0700 }, { "corrupt", 0700 }, { "maildrop", 03733 },
		{ "private", 0700 }, { "public", 0711 },
	};
	char dir[] = "/tmp/test_queue_modes.XXXXXX", *sub, *err = NULL, *cmd;
	struct stat st;
	mode_t old;

	assert_non_null(mkdtemp(dir));
	sub = xasprintf("%s/spool", dir);
	old = umask(077);
	assert_int_equal(queue_make_folders(sub, &err), 0);
	umask(old);
	/* Again: existing folders are fine. */
	assert_int_equal(queue_make_folders(sub, &err), 0);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		char *p = xasprintf("%s/%s", sub, want[i].name);

		assert_int_equal(stat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		if ((st.st_mode & 07777) != want[i].mode)
			fail_msg("%s: mode %o, want %o", want[i].name,
			    st.st_mode & 07777, want[i].mode);
		free(p);
	}
	cmd = xasprintf("rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(sub);
}

static void
names_and_ids_are_checked(void **state)
{
	enum queue_folder f;
	char *p;

	assert_true(queue_id_valid("18A2B3C4D5E6F7"));
	assert_true(queue_id_valid("00000000000001"));
	assert_false(queue_id_valid("0000000000000"));	/* no inode part */
	assert_false(queue_id_valid("18a2b3c4d5e6f7"));	/* lower case */
	assert_false(queue_id_valid("18A2B3C4D5E6F7/"));
	assert_false(queue_id_valid(".tmp-1.2.3"));
	assert_false(queue_id_valid(""));
	assert_false(queue_id_valid("000000000000012345678901234567890"));
	assert_int_equal(queue_folder_lookup("deferred", &f), 0);
	assert_int_equal(f, QUEUE_DEFERRED);
	assert_int_equal(queue_folder_lookup("maildrop", &f), 0);
	assert_int_equal(f, QUEUE_MAILDROP);
	assert_int_equal(queue_folder_lookup("public", &f), -1);
	assert_int_equal(queue_folder_lookup("", &f), -1);
	assert_string_equal(queue_folder_name(QUEUE_HOLD), "hold");
	p = queue_path("/q", QUEUE_CORRUPT, "ABC");
	assert_string_equal(p, "/q/corrupt/ABC");
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(
		    commit_then_open_gives_back_envelope_and_content,
		    clean_folders),
		cmocka_unit_test_setup(arrival_time_is_kept_and_matches_the_id,
		    clean_folders),
		cmocka_unit_test_setup(five_megabyte_message_round_trips,
		    clean_folders),
		cmocka_unit_test_setup(
		    ids_are_unique_and_sorted_in_creation_order, clean_folders),
		cmocka_unit_test_setup(
		    commit_leaves_only_the_file_named_by_its_id, clean_folders),
		cmocka_unit_test_setup(abort_leaves_nothing, clean_folders),
		cmocka_unit_test_setup(cleanup_removes_dead_leftovers_only,
		    clean_folders),
		cmocka_unit_test_setup(every_kind_of_damage_is_reported_corrupt,
		    clean_folders),
		cmocka_unit_test_setup(missing_file_is_an_error_not_corrupt,
		    clean_folders),
		cmocka_unit_test_setup(every_truncation_is_corrupt_or_whole,
		    clean_folders),
		cmocka_unit_test_setup(mark_persists_across_reopen,
		    clean_folders),
		cmocka_unit_test_setup(last_note_per_recipient_is_reported,
		    clean_folders),
		cmocka_unit_test_setup(
		    partial_note_from_a_crash_is_ignored_and_overwritten,
		    clean_folders),
		cmocka_unit_test_setup(move_and_find_follow_the_file,
		    clean_folders),
		cmocka_unit_test(
		    xtext_round_trips_every_byte_and_refuses_bad_input),
		cmocka_unit_test(folders_get_their_modes),
		cmocka_unit_test_setup(
		cleanup_between_create_and_lock_costs_a_name_not_the_message,
		    clean_folders),
		cmocka_unit_test(names_and_ids_are_checked),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
