/*
 * echod - a test daemon for master: the smallest single server.
 *
 * Started by master from a test's master.cf. One line in, one line out,
 * so a test can see which process serves it and make it misbehave:
 *	pid		its process id
 *	param NAME	the value of main.cf parameter NAME (after -o)
 *	service		the service name master gave it (-n)
 *	sleep N		wait N seconds (at most 60), then "slept"
 *	crash		abort(): killed by SIGABRT
 *	exit N		_exit(N) at once
 *	termdefault	SIGTERM back to its default action and unblocked,
 *			then "ok": the next SIGTERM kills the process, as
 *			it would a daemon already past its own handler
 *	quit		end the session
 * Anything else comes back as it was sent. A client silent for 60
 * seconds is dropped, and a line longer than 1000 bytes ends the session,
 * so a broken test never holds a process for ever.
 */
#include "autoconf.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "num.h"
#include "server.h"

#define ECHOD_LINE_MAX	1000
#define ECHOD_TIMEOUT_MS	60000

/* One reply line, in one write so that a client sees it whole. */
static int
echod_reply(int fd, const char *text)
{
	struct buf out;
	size_t off = 0;
	ssize_t n;
	int rc = 0;

	buf_init(&out, BUF_NOMAX);
	buf_printf(&out, "%s\n", text);
	while (off < out.len) {
		if ((n = write(fd, out.data + off, out.len - off)) <= 0) {
			rc = -1;
			break;
		}
		off += (size_t)n;
	}
	buf_free(&out);
	return rc;
}

/* One command; -1 ends the session. */
static int
echod_command(int out, const char *line)
{
	char text[64];
	const char *value;
	unsigned long n;
	int code;

	if (strcmp(line, "pid") == 0) {
		snprintf(text, sizeof(text), "%ld", (long)getpid());
		return echod_reply(out, text);
	}
	if (strncmp(line, "param ", 6) == 0) {
		if (param_find(line + 6) != NULL)
			value = config_str(line + 6);
		else if ((value = config_raw(line + 6)) == NULL)
			value = "(unknown)";
		return echod_reply(out, value);
	}
	if (strcmp(line, "service") == 0)
		return echod_reply(out, server_service_name());
	if (strncmp(line, "sleep ", 6) == 0 &&
	    parse_ulong(line + 6, 0, 60, &n) == 0) {
		sleep((unsigned)n);
		return echod_reply(out, "slept");
	}
	if (strcmp(line, "crash") == 0)
		abort();
	if (strncmp(line, "exit ", 5) == 0 &&
	    parse_int(line + 5, 0, 255, &code) == 0)
		_exit(code);
	if (strcmp(line, "termdefault") == 0) {
		sigset_t set;

		signal(SIGTERM, SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		return echod_reply(out, "ok");
	}
	if (strcmp(line, "quit") == 0)
		return -1;
	return echod_reply(out, line);
}

static void
echod_serve(int in, int out)
{
	struct pollfd pfd;
	struct buf line;
	char chunk[512], *nl;
	ssize_t n;

	buf_init(&line, ECHOD_LINE_MAX + sizeof(chunk));
	for (;;) {
		while (line.len > 0 &&
		    (nl = memchr(line.data, '\n', line.len)) != NULL) {
			*nl = '\0';
			if (nl > line.data && nl[-1] == '\r')
				nl[-1] = '\0';
			if (echod_command(out, line.data) < 0)
				goto done;
			buf_consume(&line, (size_t)(nl - line.data) + 1);
		}
		if (line.len > ECHOD_LINE_MAX)
			break;
		pfd.fd = in;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, ECHOD_TIMEOUT_MS) <= 0)
			break;
		if ((n = read(in, chunk, sizeof(chunk))) <= 0)
			break;
		if (buf_append(&line, chunk, (size_t)n) < 0)
			break;
	}
done:
	buf_free(&line);
}

int
main(int argc, char **argv)
{
	static const struct server_opts opts = {
		.program = "echod",
		.serve = echod_serve,
	};

	return single_server_main(argc, argv, &opts);
}
