/*
 * smtpd_limit - smtpd_client_connection_count_limit across processes.
 *
 * Each smtpd process serves one client, and master hands the listening
 * socket to all of them without seeing the connections, so the count
 * of one client's connections lives where every smtpd can see it: one
 * lock file, $data_directory/smtpd_conn.lock. A client address hashes
 * to a bucket of "limit" one-byte slots; a connection takes the first
 * slot it can lock (open file description locks, F_OFD_SETLK) and holds
 * it until the session ends. When all are taken, the client is over its
 * limit. The kernel drops the locks of a process that dies, even by
 * SIGKILL, so a crash never leaves a count behind, and the file stays
 * empty (locks beyond the end of a file are fine).
 *
 * Two addresses that hash to the same bucket share its slots. With
 * 2^20 buckets that needs about a thousand busy clients before it is
 * likely at all, and then it only makes the limit count both clients
 * together. If the file cannot be opened the limit is not enforced and
 * a warning says so: better than refusing every client.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "log.h"
#include "smtpd.h"

#define LIMIT_BUCKETS	(1UL << 20)
/* Slots per bucket are capped so that offsets stay far below 2^63. */
#define LIMIT_SLOTS_MAX	100000L

static int limit_fd = -1;
static off_t held = -1;		/* offset of the slot we hold */

void
smtpd_limit_init(void)
{
	char *path;

	if (smtpd_conf.conn_limit <= 0 || limit_fd >= 0)
		return;
	path = xasprintf("%s/smtpd_conn.lock", config_str("data_directory"));
	limit_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (limit_fd < 0)
		msg_warn("cannot open %s: %s; "
		    "smtpd_client_connection_count_limit is not enforced",
		    path, strerror(errno));
	free(path);
}

static uint64_t
limit_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;	/* FNV-1a */

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static int
limit_lock(off_t off, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = off;
	fl.l_len = 1;
	return fcntl(limit_fd, F_OFD_SETLK, &fl);
}

int
smtpd_limit_acquire(const char *client_addr)
{
	long slots = smtpd_conf.conn_limit;
	off_t base;

	if (limit_fd < 0 || slots <= 0)
		return 0;
	if (slots > LIMIT_SLOTS_MAX)
		slots = LIMIT_SLOTS_MAX;
	base = (off_t)(limit_hash(client_addr) % LIMIT_BUCKETS) * slots;
	for (long i = 0; i < slots; i++) {
		if (limit_lock(base + i, F_WRLCK) == 0) {
			held = base + i;
			return 0;
		}
		if (errno != EAGAIN && errno != EACCES) {
			msg_warn("smtpd_conn.lock: %s; connection limit not "
			    "enforced", strerror(errno));
			return 0;
		}
	}
	return -1;
}

void
smtpd_limit_release(void)
{
	if (held < 0)
		return;
	(void)limit_lock(held, F_UNLCK);
	held = -1;
}
