/*
 * test_server - the daemon skeleton's contract with master: status
 * messages around each session, the max_use and max_idle limits, the
 * status pipe and SIGTERM as ways to stop, fatal -o overrides, and the
 * -S stand-alone mode.
 *
 * Each test forks a "daemon" running single_server_main() with a
 * listening Unix socket on descriptor 3 and a status pipe on 4, exactly
 * as master starts one, and plays master and client from the parent.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "event.h"
#include "server.h"

static char dir[] = "/tmp/test_server.XXXXXX";
static char sock_path[sizeof(dir) + 16];

/* The session: echo what comes until the client closes. */
static void
echo_serve(int in, int out)
{
	char buf[256];
	ssize_t n;

	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
}

static const struct server_opts echo_opts = {
	.program = "testd",
	.serve = echo_serve,
};

static int
setup(void **state)
{
	struct passwd *pw;
	char path[sizeof(dir) + 16];
	FILE *fp;

	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(sock_path, sizeof(sock_path), "%s/sock", dir);
	snprintf(path, sizeof(path), "%s/main.cf", dir);
	if ((pw = getpwuid(getuid())) == NULL || (fp = fopen(path, "w")) ==
	    NULL)
		return -1;
	fprintf(fp, "queue_directory = %s\nmail_owner = %s\n"
	    "maillog_file = %s/maillog\n", dir, pw->pw_name, dir);
	fclose(fp);
	return 0;
}

static int
teardown(void **state)
{
	char path[sizeof(dir) + 16];

	(void)unlink(sock_path);
	snprintf(path, sizeof(path), "%s/main.cf", dir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/maillog", dir);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/stderr", dir);
	(void)unlink(path);
	(void)rmdir(dir);
	return 0;
}

/* Start a daemon with extra arguments; *status_rd is master's end. */
static pid_t
start_daemon(const char *extra1, const char *extra2, int *status_rd)
{
	struct sockaddr_un sun;
	const char *argv[12];
	int lfd, p[2], argc = 0;
	pid_t pid;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	(void)unlink(sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 10), 0);
	assert_int_equal(pipe(p), 0);

	argv[argc++] = "testd";
	argv[argc++] = "-c";
	argv[argc++] = dir;
	argv[argc++] = "-n";
	argv[argc++] = "test";
	argv[argc++] = "-t";
	argv[argc++] = "unix";
	if (extra1 != NULL)
		argv[argc++] = extra1;
	if (extra2 != NULL)
		argv[argc++] = extra2;
	argv[argc] = NULL;

	if ((pid = fork()) == 0) {
		char errpath[sizeof(dir) + 16];
		int errfd;

		close(p[0]);
		snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
		errfd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (errfd < 0 || dup2(errfd, STDERR_FILENO) < 0)
			_exit(98);
		if (dup2(lfd, SERVER_LISTEN_FD) < 0 ||
		    dup2(p[1], SERVER_STATUS_FD) < 0)
			_exit(99);
		if (lfd != SERVER_LISTEN_FD && lfd != SERVER_STATUS_FD)
			close(lfd);
		if (p[1] != SERVER_LISTEN_FD && p[1] != SERVER_STATUS_FD)
			close(p[1]);
		_exit(single_server_main(argc, (char **)argv, &echo_opts));
	}
	assert_true(pid > 0);
	close(lfd);
	close(p[1]);
	*status_rd = p[0];
	return pid;
}

static int
connect_daemon(void)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)),
	    0);
	return fd;
}

/* One exchange: what we send comes back. */
static void
echo_once(int fd)
{
	char buf[16];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	assert_int_equal(write(fd, "ping\n", 5), 5);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(read(fd, buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "ping\n", 5);
}

/* The next status message within ms: its letter, or 0 on timeout/EOF. */
static char
next_status(int rd, pid_t pid, int ms)
{
	struct pollfd pfd = { .fd = rd, .events = POLLIN };
	struct server_status st;

	if (poll(&pfd, 1, ms) != 1 || read(rd, &st, sizeof(st)) !=
	    (ssize_t)sizeof(st))
		return 0;
	assert_int_equal(st.pid, pid);
	return st.status;
}

/* Wait at most ms for pid to exit; its wait status, or -1. */
static int
wait_exit(pid_t pid, int ms)
{
	long long deadline = event_now_ms() + ms;
	int status;

	while (event_now_ms() < deadline) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		usleep(10 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static void
busy_then_idle_around_each_session(void **state)
{
	int rd, fd, status;
	pid_t pid;

	pid = start_daemon(NULL, NULL, &rd);
	fd = connect_daemon();
	echo_once(fd);
	assert_int_equal(next_status(rd, pid, 5000), SERVER_STATUS_BUSY);
	close(fd);
	assert_int_equal(next_status(rd, pid, 5000), SERVER_STATUS_IDLE);
	kill(pid, SIGTERM);
	status = wait_exit(pid, 5000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(rd);
}

static void
exits_after_max_use_sessions(void **state)
{
	int rd, fd, status;
	pid_t pid;

	pid = start_daemon("-o", "max_use=2", &rd);
	for (int i = 0; i < 2; i++) {
		fd = connect_daemon();
		echo_once(fd);
		close(fd);
	}
	status = wait_exit(pid, 5000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* busy, idle, busy: no "idle" after the last session. */
	assert_int_equal(next_status(rd, pid, 100), SERVER_STATUS_BUSY);
	assert_int_equal(next_status(rd, pid, 100), SERVER_STATUS_IDLE);
	assert_int_equal(next_status(rd, pid, 100), SERVER_STATUS_BUSY);
	assert_int_equal(next_status(rd, pid, 100), 0);
	close(rd);
}

static void
exits_when_idle_for_max_idle(void **state)
{
	long long began = event_now_ms();
	int rd, status;
	pid_t pid;

	pid = start_daemon("-o", "max_idle=1", &rd);
	status = wait_exit(pid, 5000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(event_now_ms() - began >= 900);
	close(rd);
}

static void
exits_when_master_closes_the_status_pipe(void **state)
{
	int rd, status;
	pid_t pid;

	pid = start_daemon(NULL, NULL, &rd);
	usleep(100 * 1000);
	close(rd);
	status = wait_exit(pid, 3000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
sigterm_ends_an_idle_process_at_once(void **state)
{
	int rd, fd, status;
	pid_t pid;

	pid = start_daemon(NULL, NULL, &rd);
	/* One session first: then it surely waits in its loop. */
	fd = connect_daemon();
	echo_once(fd);
	close(fd);
	assert_int_equal(next_status(rd, pid, 5000), SERVER_STATUS_BUSY);
	assert_int_equal(next_status(rd, pid, 5000), SERVER_STATUS_IDLE);
	kill(pid, SIGTERM);
	status = wait_exit(pid, 1000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(rd);
}

static void
sigterm_in_session_ends_after_it(void **state)
{
	int rd, fd, status;
	pid_t pid;

	pid = start_daemon(NULL, NULL, &rd);
	fd = connect_daemon();
	echo_once(fd);
	assert_int_equal(next_status(rd, pid, 5000), SERVER_STATUS_BUSY);
	kill(pid, SIGTERM);
	usleep(300 * 1000);
	assert_int_equal(waitpid(pid, &status, WNOHANG), 0);
	echo_once(fd);
	close(fd);
	status = wait_exit(pid, 5000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(rd);
}

static void
bad_override_is_fatal_and_names_the_service(void **state)
{
	char path[sizeof(dir) + 16], text[4096];
	int rd, status, fd;
	ssize_t n;
	pid_t pid;

	pid = start_daemon("-o", "max_use=lots", &rd);
	status = wait_exit(pid, 5000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	close(rd);
	/* Under master stderr goes nowhere: the message is in the log. */
	snprintf(path, sizeof(path), "%s/maillog", dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	assert_true(n > 0);
	text[n] = '\0';
	assert_non_null(strstr(text, "fatal: service test: -o max_use=lots"));
}

/* -S: one session on stdin/stdout, no master, no sockets. */
static void
standalone_serves_stdin_to_stdout(void **state)
{
	int in[2], out[2], status;
	char buf[64];
	ssize_t n, got = 0;
	pid_t pid;

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	if ((pid = fork()) == 0) {
		const char *argv[] = { "testd", "-c", dir, "-S", NULL };

		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		/* No descriptor 3 or 4: -S must not need them. */
		close(SERVER_LISTEN_FD);
		close(SERVER_STATUS_FD);
		_exit(single_server_main(4, (char **)argv, &echo_opts));
	}
	close(in[0]);
	close(out[1]);
	assert_int_equal(write(in[1], "hello\n", 6), 6);
	close(in[1]);
	while ((n = read(out[0], buf + got, sizeof(buf) - 1 - (size_t)got)) >
	    0)
		got += n;
	close(out[0]);
	assert_int_equal(got, 6);
	assert_memory_equal(buf, "hello\n", 6);
	status = wait_exit(pid, 5000);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(busy_then_idle_around_each_session),
		cmocka_unit_test(exits_after_max_use_sessions),
		cmocka_unit_test(exits_when_idle_for_max_idle),
		cmocka_unit_test(exits_when_master_closes_the_status_pipe),
		cmocka_unit_test(sigterm_ends_an_idle_process_at_once),
		cmocka_unit_test(sigterm_in_session_ends_after_it),
		cmocka_unit_test(bad_override_is_fatal_and_names_the_service),
		cmocka_unit_test(standalone_serves_stdin_to_stdout),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
