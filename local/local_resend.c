/*
 * local_resend - mail for addresses that aliases or .forward files send
 * elsewhere goes back into the queue as a new message: same content
 * with a "Delivered-To:" line for the address that forwarded it (so a
 * loop back to us is seen and bounced), the same or the owner- sender,
 * the new recipients; then qmgr is woken. The original recipient is
 * then done: "forwarded as ID".
 *
 * The file is written with mail_owner's privileges, like every queue
 * file, so that qmgr can take it over. Errors defer the original
 * recipient; a half-written file is removed (queue_abort), and one
 * committed but not announced is found by qmgr's periodic scan.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "config.h"
#include "local.h"
#include "log.h"
#include "priv.h"
#include "qmgr_client.h"
#include "queue.h"
#include "strv.h"

struct resend {
	const struct local_msg *m;
	const char *sender;
	char *const *rcpts;
	const char *delivered_to;
};

/* Runs as mail_owner; the new queue ID comes back in the reason. */
static void
resend_write(void *ctx, struct local_result *res)
{
	struct resend *r = ctx;
	const char *queue_dir = config_str("queue_directory");
	struct queue_writer *w;
	char *err = NULL, *hdr, *id;
	char chunk[65536];
	size_t len = r->m->q->content_len;
	ssize_t n;

	if ((w = queue_create(queue_dir, QUEUE_INCOMING, &err)) == NULL) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "cannot queue the forwarded message: %s", err);
		free(err);
		return;
	}
	queue_set_sender(w, r->sender);
	queue_set_attr(w, "forwarded_from", r->m->queue_id);
	for (size_t i = 0; r->rcpts[i] != NULL; i++)
		queue_add_rcpt(w, r->rcpts[i], NULL, 0);
	hdr = xasprintf("Delivered-To: %s\n", r->delivered_to);
	if (queue_write(w, hdr, strlen(hdr), &err) < 0)
		goto fail;
	for (off_t off = 0; (size_t)off < len; off += n) {
		size_t want = len - (size_t)off;

		if (want > sizeof(chunk))
			want = sizeof(chunk);
		if ((n = queue_read_content(r->m->q, off, chunk, want)) <= 0) {
			err = xasprintf("cannot read queue file %s: %s",
			    r->m->queue_id, n == 0 ? "file too short" :
			    strerror(errno));
			goto fail;
		}
		if (queue_write(w, chunk, (size_t)n, &err) < 0)
			goto fail;
	}
	id = xstrdup(queue_writer_id(w));
	if (queue_commit(w, &err) < 0) {
		free(id);
		free(hdr);
		local_result_set(res, DELIVER_DEFERRED, "4.3.0",
		    "cannot queue the forwarded message: %s", err);
		free(err);
		return;
	}
	(void)qmgr_notify_new(queue_dir, id);
	local_result_set(res, DELIVER_SENT, "2.0.0", "%s", id);
	free(id);
	free(hdr);
	return;

fail:
	queue_abort(w);
	free(hdr);
	local_result_set(res, DELIVER_DEFERRED, "4.3.0",
	    "cannot queue the forwarded message: %s", err ? err : "?");
	free(err);
}

int
local_resend(const struct local_msg *m, const char *sender,
    char *const *rcpts, const char *delivered_to, char **id,
    struct local_result *res)
{
	const char *owner = config_str("mail_owner");
	struct resend r = { m, sender, rcpts, delivered_to };
	struct local_result rr;
	struct priv_user pw;

	if (priv_user_lookup(owner, &pw) < 0) {
		local_result_set(res, DELIVER_DEFERRED, "4.3.5",
		    "mail system configuration error: mail_owner \"%s\": %s",
		    owner, errno ? strerror(errno) : "no such user");
		return -1;
	}
	local_result_init(&rr);
	local_run_as(pw.uid, pw.gid, pw.name, resend_write, &r, &rr);
	priv_user_free(&pw);
	if (rr.status != DELIVER_SENT) {
		local_result_copy(res, &rr);
		local_result_free(&rr);
		return -1;
	}
	*id = xstrdup(rr.reason);
	msg_info("%s: forwarded as %s: %zu recipient%s, delivered-to=<%s>",
	    m->queue_id, *id, strv_len(rcpts), rcpts[1] ? "s" : "",
	    delivered_to);
	local_result_free(&rr);
	return 0;
}
