/*
 * smtp_cache - the sessions one smtp process keeps open between
 * deliveries, so that the next message to the same next hop skips DNS,
 * connect, EHLO, STARTTLS and AUTH (Postfix's connection cache, scaled
 * down to a few entries inside the process).
 *
 * smtp.c takes a session out by key before it looks up servers, and
 * stores one back after a delivery that left it healthy. A kept
 * session lives smtp_connection_cache_time_limit after its last use:
 * past that it is closed with QUIT when the next request comes, or at
 * process exit (atexit), whichever is first. Between requests the
 * process sits in single_server_main() where nothing of ours runs, so
 * an alarm does the rest: its handler shuts the expired sockets down
 * (a QUIT first on a plain one; inside TLS only the socket, as a signal
 * handler cannot speak TLS) and leaves the freeing to the next call
 * here. While a delivery runs the alarm is off (smtp_cache_disarm), so
 * the handler never touches a session in use.
 *
 * Failures: none to report. A kept session that died is found out by
 * its RSET (smtp_session_reuse()) and replaced by a new connection.
 */
#include "autoconf.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "smtp.h"

struct cache_entry {
	char		*key;
	char		*relay;
	struct smtp_conn *conn;
	int		 fd;		/* conn's socket, for the handler */
	int		 tls;		/* no QUIT from the handler */
	int		 quit_ms;
	long long	 expires;	/* monotonic ms */
	volatile sig_atomic_t shut;	/* the handler shut the socket down */
};

static struct cache_entry cache[SMTP_CACHE_MAX];
static volatile sig_atomic_t armed;
static int installed;

static long long
now_ms(void)
{
	struct timespec ts;

	/* clock_gettime is async-signal-safe; the handler uses it too. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
entry_close(struct cache_entry *e, int quit)
{
	/* A socket the handler shut down can only be freed. */
	smtp_conn_close(e->conn, quit && !e->shut ? e->quit_ms : 0);
	free(e->key);
	free(e->relay);
	memset(e, 0, sizeof(*e));
}

/* The next alarm: the first deadline still ahead, rounded up to whole
 * seconds (alarm's unit), at least one. */
static unsigned
next_alarm(long long now)
{
	long long first = 0;

	for (size_t i = 0; i < SMTP_CACHE_MAX; i++)
		if (cache[i].conn != NULL && !cache[i].shut &&
		    (first == 0 || cache[i].expires < first))
			first = cache[i].expires;
	if (first == 0)
		return 0;
	if (first <= now)
		return 1;
	return (unsigned)((first - now + 999) / 1000);
}

static void
on_alarm(int sig)
{
	static const char quit[] = "QUIT\r\n";
	long long now = now_ms();
	unsigned next;

	(void)sig;
	if (!armed)
		return;
	for (size_t i = 0; i < SMTP_CACHE_MAX; i++) {
		struct cache_entry *e = &cache[i];

		if (e->conn == NULL || e->shut || e->expires > now)
			continue;
		if (!e->tls)
			(void)send(e->fd, quit, sizeof(quit) - 1,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
		/* Not close(): the descriptor number stays ours until the
		 * stream is freed, so it cannot name anything else. */
		(void)shutdown(e->fd, SHUT_RDWR);
		e->shut = 1;
	}
	if ((next = next_alarm(now)) > 0)
		alarm(next);
}

static void
at_exit(void)
{
	smtp_cache_disarm();
	smtp_cache_close_all();
}

static void
install(void)
{
	struct sigaction sa;

	if (installed)
		return;
	installed = 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	atexit(at_exit);
}

void
smtp_cache_store(const char *key, struct smtp_conn *conn, const char *relay,
    int time_limit_s, int quit_ms)
{
	struct cache_entry *e = NULL;

	if (time_limit_s <= 0) {
		smtp_conn_close(conn, quit_ms);
		return;
	}
	install();
	smtp_cache_expire();
	for (size_t i = 0; i < SMTP_CACHE_MAX && e == NULL; i++)
		if (cache[i].conn == NULL)
			e = &cache[i];
	if (e == NULL) {
		/* Full: the one closest to its end makes room. */
		e = &cache[0];
		for (size_t i = 1; i < SMTP_CACHE_MAX; i++)
			if (cache[i].expires < e->expires)
				e = &cache[i];
		entry_close(e, 1);
	}
	e->key = xstrdup(key);
	e->relay = xstrdup(relay);
	e->fd = smtp_conn_fd(conn);
	e->tls = smtp_conn_tls(conn);
	e->quit_ms = quit_ms;
	e->expires = now_ms() + (long long)time_limit_s * 1000;
	e->shut = 0;
	e->conn = conn;
}

struct smtp_conn *
smtp_cache_take(const char *key, char **relay)
{
	struct smtp_conn *conn;

	smtp_cache_expire();
	for (size_t i = 0; i < SMTP_CACHE_MAX; i++) {
		struct cache_entry *e = &cache[i];

		if (e->conn == NULL || strcmp(e->key, key) != 0)
			continue;
		conn = e->conn;
		*relay = e->relay;
		e->relay = NULL;
		free(e->key);
		memset(e, 0, sizeof(*e));
		return conn;
	}
	return NULL;
}

void
smtp_cache_expire(void)
{
	long long now = now_ms();

	for (size_t i = 0; i < SMTP_CACHE_MAX; i++)
		if (cache[i].conn != NULL &&
		    (cache[i].shut || cache[i].expires <= now))
			entry_close(&cache[i], 1);
}

void
smtp_cache_close_all(void)
{
	for (size_t i = 0; i < SMTP_CACHE_MAX; i++)
		if (cache[i].conn != NULL)
			entry_close(&cache[i], 1);
}

void
smtp_cache_arm(void)
{
	unsigned next;

	if (!installed)
		return;
	if ((next = next_alarm(now_ms())) > 0) {
		armed = 1;
		alarm(next);
	}
}

void
smtp_cache_disarm(void)
{
	armed = 0;
	if (installed)
		alarm(0);
}
