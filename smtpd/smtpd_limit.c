/*
 * smtpd_limit - per-client limits that must hold across smtpd processes:
 * smtpd_client_connection_count_limit, and the count of failed AUTH
 * attempts behind smtpd_auth_failure_limit.
 *
 * Each smtpd process serves one client, and master hands the listening
 * socket to all of them without seeing the connections, so what is
 * counted per client lives where every smtpd can see it: files under
 * data_directory, opened before the jail and kept open.
 *
 * Connections: one lock file, $data_directory/smtpd_conn.lock. A client
 * address hashes to a bucket of "limit" one-byte slots; a connection
 * takes the first slot it can lock (open file description locks,
 * F_OFD_SETLK) and holds it until the session ends. When all are taken,
 * the client is over its limit. The kernel drops the locks of a process
 * that dies, even by SIGKILL, so a crash never leaves a count behind,
 * and the file stays empty (locks beyond the end of a file are fine).
 * Two addresses that hash to the same bucket share its slots. With
 * 2^20 buckets that needs about a thousand busy clients before it is
 * likely at all, and then it only makes the limit count both clients
 * together.
 *
 * Failed authentications: $data_directory/smtpd_auth.table, a file of
 * AUTHFAIL_SLOTS fixed-size records (sparse: only used records take
 * disk space). A client -- its IPv4 address, or the /64 of an IPv6 one,
 * since one host has a whole /64 to hop around in -- hashes to a run of
 * AUTHFAIL_PROBE records and lives in one of them; the run is locked
 * (F_OFD_SETLKW) only while a record is read and written, never while
 * a client is made to wait. A full run gives up its stalest record, so
 * the file never grows and a flood of addresses can only make the
 * table forget, never refuse a client it has not seen fail.
 *
 * If a file cannot be opened, its limit is not enforced and a warning
 * says so: better than refusing every client.
 */
#include "autoconf.h"

#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* ---- failed authentications ---- */

#define AUTHFAIL_SLOTS	65536
#define AUTHFAIL_PROBE	8
#define AUTHFAIL_KEYLEN	56	/* any address text, and "/64" */

/* One record; all-zero is free. */
struct authfail_rec {
	char	 key[AUTHFAIL_KEYLEN];
	int64_t	 window_start;	/* first failure counted in the window */
	int64_t	 locked_until;	/* no AUTH before this time */
	uint32_t count;		/* failures since window_start */
	uint32_t pad;
};

static int authfail_fd = -1;

void
smtpd_authfail_init(void)
{
	char *path;

	if (!smtpd_conf.sasl_enable || authfail_fd >= 0)
		return;
	path = xasprintf("%s/smtpd_auth.table", config_str("data_directory"));
	authfail_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (authfail_fd < 0)
		msg_warn("cannot open %s: %s; failed authentications are "
		    "counted per session only", path, strerror(errno));
	free(path);
}

/* The client's key: the address, or the /64 of an IPv6 address. */
static void
authfail_key(const char *addr, char *key)
{
	struct in6_addr a6;
	char text[INET6_ADDRSTRLEN];

	memset(key, 0, AUTHFAIL_KEYLEN);
	if (strchr(addr, ':') != NULL && inet_pton(AF_INET6, addr, &a6) == 1 &&
	    !IN6_IS_ADDR_V4MAPPED(&a6)) {
		memset(a6.s6_addr + 8, 0, 8);
		if (inet_ntop(AF_INET6, &a6, text, sizeof(text)) != NULL) {
			snprintf(key, AUTHFAIL_KEYLEN, "%s/64", text);
			return;
		}
	}
	snprintf(key, AUTHFAIL_KEYLEN, "%s", addr);
}

static int
authfail_lock(off_t first, short type)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = first * (off_t)sizeof(struct authfail_rec);
	fl.l_len = AUTHFAIL_PROBE * (off_t)sizeof(struct authfail_rec);
	while (fcntl(authfail_fd, F_OFD_SETLKW, &fl) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/*
 * Read the client's run of records, locked. *slot is the client's
 * record, or -1. 0, or -1 (warned) when the table does not work.
 */
static int
authfail_open_run(const char *key, struct authfail_rec *run, off_t *first,
    int *slot)
{
	ssize_t n;

	*first = (off_t)(limit_hash(key) %
	    (AUTHFAIL_SLOTS - AUTHFAIL_PROBE + 1));
	*slot = -1;
	if (authfail_lock(*first, F_WRLCK) < 0) {
		msg_warn("smtpd_auth.table: lock: %s", strerror(errno));
		return -1;
	}
	memset(run, 0, AUTHFAIL_PROBE * sizeof(*run));
	/* Past the end of the file reads short: those records are free. */
	n = pread(authfail_fd, run, AUTHFAIL_PROBE * sizeof(*run),
	    *first * (off_t)sizeof(*run));
	if (n < 0) {
		msg_warn("smtpd_auth.table: read: %s", strerror(errno));
		(void)authfail_lock(*first, F_UNLCK);
		return -1;
	}
	for (int i = 0; i < AUTHFAIL_PROBE; i++)
		if (strncmp(run[i].key, key, AUTHFAIL_KEYLEN) == 0) {
			*slot = i;
			break;
		}
	return 0;
}

/* The wall clock may have gone back: never lock out for longer than
 * the lockout time from now, nor count from the future. */
static void
authfail_sane(struct authfail_rec *r, int64_t now)
{
	int64_t lock = (int64_t)smtpd_conf.auth_failure_lockout;

	if (r->locked_until > now + lock)
		r->locked_until = now + lock;
	if (r->window_start > now)
		r->window_start = now;
}

unsigned long
smtpd_authfail_locked(const char *client_addr)
{
	struct authfail_rec run[AUTHFAIL_PROBE];
	char key[AUTHFAIL_KEYLEN];
	int64_t now = (int64_t)time(NULL);
	unsigned long left = 0;
	off_t first;
	int slot;

	if (authfail_fd < 0)
		return 0;
	authfail_key(client_addr, key);
	if (authfail_open_run(key, run, &first, &slot) < 0)
		return 0;
	if (slot >= 0) {
		authfail_sane(&run[slot], now);
		if (run[slot].locked_until > now)
			left = (unsigned long)(run[slot].locked_until - now);
	}
	(void)authfail_lock(first, F_UNLCK);
	return left;
}

long
smtpd_authfail_record(const char *client_addr)
{
	struct authfail_rec run[AUTHFAIL_PROBE], *r;
	char key[AUTHFAIL_KEYLEN];
	int64_t now = (int64_t)time(NULL), stalest;
	int64_t window = (int64_t)smtpd_conf.auth_failure_window;
	off_t first;
	long count;
	int slot;

	if (authfail_fd < 0)
		return -1;
	authfail_key(client_addr, key);
	if (authfail_open_run(key, run, &first, &slot) < 0)
		return -1;
	if (slot < 0) {
		/* A free record, or else the one that matters least: the
		 * longest unlocked and the oldest window. */
		slot = 0;
		stalest = INT64_MAX;
		for (int i = 0; i < AUTHFAIL_PROBE; i++) {
			int64_t last = run[i].key[0] == '\0' ? INT64_MIN :
			    run[i].locked_until > run[i].window_start ?
			    run[i].locked_until : run[i].window_start;

			if (last < stalest) {
				stalest = last;
				slot = i;
			}
		}
		memset(&run[slot], 0, sizeof(run[slot]));
		memcpy(run[slot].key, key, AUTHFAIL_KEYLEN);
	}
	r = &run[slot];
	authfail_sane(r, now);
	if (r->count == 0 || now - r->window_start >= window) {
		r->window_start = now;
		r->count = 0;
	}
	if (r->count < UINT32_MAX)
		r->count++;
	count = (long)r->count;
	if (smtpd_conf.auth_failure_limit > 0 &&
	    count >= smtpd_conf.auth_failure_limit) {
		r->locked_until = now +
		    (int64_t)smtpd_conf.auth_failure_lockout;
		/* After the lockout, a fresh start. */
		r->count = 0;
	}
	if (pwrite(authfail_fd, r, sizeof(*r), (first + slot) *
	    (off_t)sizeof(*r)) != (ssize_t)sizeof(*r))
		msg_warn("smtpd_auth.table: write: %s", strerror(errno));
	(void)authfail_lock(first, F_UNLCK);
	return count;
}
