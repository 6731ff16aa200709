/*
 * queue - queue files and queue folders (DESIGN.md §3).
 *
 * One message is one file, named by its queue ID, in one of the folders
 * incoming/ active/ deferred/ hold/ corrupt/ maildrop/ under
 * queue_directory. Writers (smtpd, pickup, qmgr for bounces) build the
 * file under a temporary name ".tmp-..." in incoming/ (or maildrop/),
 * fsync it, rename it to its queue ID and fsync the folder: a file that
 * carries a queue ID as its name is always complete, and a ".tmp-" file
 * found at startup is the remains of a crash and is removed
 * (queue_cleanup). The caller answers 250 only after queue_commit()
 * returned 0.
 *
 * File format, version 1 (text records, one per line, values xtext
 * encoded as in RFC 3461 so they hold no white space or control bytes):
 *	TERN 1
 *	T <arrival seconds>.<microseconds>
 *	S <sender>			("S " alone: the null sender <>)
 *	A <name>=<value>		message attributes (client_addr, ...)
 *	R <st> <notify> <orcpt|-> <address>
 *	M <content length, 20 digits>
 *	<content: headers and body, lines ending in LF>
 *	E
 *	N <rcpt index> <dsn status> <reason>	appended notes (deferrals...)
 * <notify> is "-" (not given) or NOTIFY words joined by commas
 * ("SUCCESS,FAILURE"); <orcpt> is "-" when not given. The content is
 * stored byte for byte and "E" follows its last byte directly; M's
 * digits are written as zeros and rewritten at commit. In N, dsn and
 * reason are xtext too; a last N line without its LF (a crash while
 * appending) is ignored and overwritten by the next note.
 * <st> is one byte rewritten in place (pwrite + fdatasync) as a
 * recipient's fate is decided: 'R' still to deliver, 'D' done (delivered,
 * or its bounce is safely queued), 'F' failed permanently with its bounce
 * still to send. A file that does not parse is "corrupt": the caller
 * moves it to corrupt/, never deletes it.
 *
 * Queue IDs: 13 upper-case hex digits of the arrival time in
 * microseconds, then the temporary file's inode number in hex: unique
 * while the file exists, sortable by arrival, safe as a file name.
 *
 * Errors return -1 with a reason in *err (allocated); nothing is fatal.
 */
#ifndef TERN_QUEUE_H
#define TERN_QUEUE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

enum queue_folder {
	QUEUE_INCOMING,
	QUEUE_ACTIVE,
	QUEUE_DEFERRED,
	QUEUE_HOLD,
	QUEUE_CORRUPT,
	QUEUE_MAILDROP,
	QUEUE_NFOLDERS,
};

/* DSN NOTIFY= flags (RFC 3461); 0 means "not given" (default). */
#define NOTIFY_NEVER	0x1
#define NOTIFY_SUCCESS	0x2
#define NOTIFY_FAILURE	0x4
#define NOTIFY_DELAY	0x8

#define RCPT_TODO	'R'
#define RCPT_DONE	'D'
#define RCPT_FAILED	'F'

const char *queue_folder_name(enum queue_folder);
/* 0 and the folder for a name ("deferred"), or -1. */
int	queue_folder_lookup(const char *, enum queue_folder *);
/* Path of a queue file: queue_dir/folder/id (allocated). */
char	*queue_path(const char *queue_dir, enum queue_folder, const char *id);
/* Create missing folders with their modes (queue folders 0700,
 * maildrop/ 03733, private/ 0700, public/ 0711). 0 or -1 with *err. */
int	queue_make_folders(const char *queue_dir, char **err);
/* Every folder queue_make_folders() makes, in order: its name and mode
 * (tern check compares them). Returns NULL past the last one. */
const char *queue_layout(size_t i, mode_t *mode);
/* Remove ".tmp-" leftovers of crashed writers (a live writer keeps
 * its file locked and it is left alone); returns how many. */
int	queue_cleanup(const char *queue_dir);
int	queue_id_valid(const char *);
/* Find which folder holds id: 0 and *folder, or -1 (ENOENT). */
int	queue_find(const char *queue_dir, const char *id,
	    enum queue_folder *folder);
/* Move id between folders: rename, then fsync both folders unless both
 * are among incoming/, active/ and deferred/ (see queue.c). */
int	queue_move(const char *queue_dir, const char *id,
	    enum queue_folder from, enum queue_folder to, char **err);

/* ---- writing a new queue file ---- */

struct queue_writer;

/* Start a file in folder (QUEUE_INCOMING or QUEUE_MAILDROP). A
 * queue_cleanup() that removes the new file before the writer has
 * locked it (qmgr starting as mail arrives) costs another name, not the
 * message. */
struct queue_writer *queue_create(const char *queue_dir,
	    enum queue_folder folder, char **err);
/* For tests: called between the creation of a file and its lock. */
extern void (*queue_create_hook)(const char *queue_dir);
const char *queue_writer_id(const struct queue_writer *);
struct timespec queue_writer_arrival(const struct queue_writer *);
/* Envelope; all of it must be given before the first content byte. */
void	queue_set_sender(struct queue_writer *, const char *sender);
void	queue_set_attr(struct queue_writer *, const char *name,
	    const char *value);
void	queue_add_rcpt(struct queue_writer *, const char *addr,
	    const char *orcpt, int notify);
/* Append message bytes (lines end in LF). 0 or -1 with *err. */
int	queue_write(struct queue_writer *, const void *, size_t, char **err);
/* Content bytes written so far. */
size_t	queue_content_size(const struct queue_writer *);
/* Finish: end marker, fsync, rename to the queue ID, fsync the folder.
 * Frees the writer whatever the result. */
int	queue_commit(struct queue_writer *, char **err);
/* Give up: remove the temporary file and free the writer. */
void	queue_abort(struct queue_writer *);

/* ---- reading and updating a queue file ---- */

struct queue_rcpt {
	char	*addr;
	char	*orcpt;		/* NULL when not given */
	int	 notify;	/* NOTIFY_* bits, 0 when not given */
	int	 status;	/* RCPT_TODO, RCPT_DONE, RCPT_FAILED */
	off_t	 status_off;	/* where the status byte is */
	char	*dsn;		/* last note's status ("4.2.0"), or NULL */
	char	*reason;	/* last note's text, or NULL */
};

struct queue_attr {
	char	*name;
	char	*value;
};

struct queue_msg {
	char		*id;
	char		*path;
	int		 fd;
	struct timespec	 arrival;
	char		*sender;	/* "" for the null sender */
	struct queue_attr *attrs;
	size_t		 nattrs;
	struct queue_rcpt *rcpts;
	size_t		 nrcpts;
	off_t		 content_off;	/* first content byte */
	size_t		 content_len;
	off_t		 file_size;
};

/*
 * Open and parse a queue file. writable: open O_RDWR to mark recipients
 * and append notes. Returns 0, or -1 with *err; *corrupt is set to 1
 * when the file exists but does not parse (move it to corrupt/).
 */
int	queue_open(const char *path, int writable, struct queue_msg **,
	    int *corrupt, char **err);
void	queue_close(struct queue_msg *);
const char *queue_msg_attr(const struct queue_msg *, const char *name);
/* Rewrite recipient i's status byte and fdatasync. 0 or -1 with *err. */
int	queue_mark(struct queue_msg *, size_t i, int status, char **err);
/* The same without the fdatasync: the caller makes it durable (one
 * fdatasync of qm->fd for all the marks) before the file moves on. */
int	queue_mark_write(struct queue_msg *, size_t i, int status,
	    char **err);
/* Append a note for recipient i (dsn "4.4.1", reason text) and fsync. */
int	queue_note(struct queue_msg *, size_t i, const char *dsn,
	    const char *reason, char **err);
/* Read up to n content bytes from offset off (within the content). */
ssize_t	queue_read_content(const struct queue_msg *, off_t off, void *,
	    size_t n);
/* Count of recipients still RCPT_TODO / RCPT_FAILED. */
size_t	queue_count(const struct queue_msg *, int status);

/* xtext (RFC 3461) encode/decode, allocated; decode NULL on bad input. */
char	*xtext_encode(const char *);
char	*xtext_decode(const char *);

#endif
