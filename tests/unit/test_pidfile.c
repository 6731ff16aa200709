/*
 * test_pidfile - the master.pid lock: one holder at a time, visible to
 * others by pid, and gone with its holder.
 */
#include "autoconf.h"

#include <sys/wait.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "pidfile.h"

static char *
temp_path(void)
{
	static char dir[] = "/tmp/test_pidfile.XXXXXX";
	static char path[sizeof(dir) + 32];

	if (path[0] == '\0') {
		if (mkdtemp(dir) == NULL)
			fail_msg("mkdtemp: %s", strerror(errno));
		snprintf(path, sizeof(path), "%s/master.pid", dir);
	}
	(void)unlink(path);
	return path;
}

/* Fork a child that takes the lock, tells us through a pipe, and waits
 * for us to close the pipe before it exits. */
static pid_t
child_holding(const char *path, int *release)
{
	int ready[2], go[2];
	pid_t pid, holder;
	char c;

	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(go), 0);
	if ((pid = fork()) == 0) {
		close(ready[0]);
		close(go[1]);
		if (pidfile_acquire(path, &holder) < 0)
			_exit(2);
		(void)write(ready[1], "x", 1);
		(void)read(go[0], &c, 1);
		_exit(0);
	}
	assert_true(pid > 0);
	close(ready[1]);
	close(go[0]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	*release = go[1];
	return pid;
}

static void
holder_is_named_and_second_acquire_is_refused(void **state)
{
	const char *path = temp_path();
	pid_t pid, holder = 0;
	int release, status;

	pid = child_holding(path, &release);
	assert_int_equal(pidfile_holder(path), pid);
	assert_int_equal(pidfile_acquire(path, &holder), -1);
	assert_int_equal(errno, EAGAIN);
	assert_int_equal(holder, pid);
	close(release);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	(void)unlink(path);
}

static void
lock_dies_with_its_holder_even_if_file_stays(void **state)
{
	const char *path = temp_path();
	pid_t pid, holder = 0;
	int release, fd;

	pid = child_holding(path, &release);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(release);
	/* The stale file is still there, but nobody holds it. */
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(pidfile_holder(path), 0);
	fd = pidfile_acquire(path, &holder);
	assert_true(fd >= 0);
	pidfile_release(path, fd);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(pidfile_holder(path), 0);
}

static void
file_holds_the_pid_as_text(void **state)
{
	const char *path = temp_path();
	char text[64] = "";
	pid_t holder;
	FILE *fp;
	long pid = 0;
	int fd;

	fd = pidfile_acquire(path, &holder);
	assert_true(fd >= 0);
	fp = fopen(path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(text, sizeof(text), fp));
	fclose(fp);
	assert_int_equal(sscanf(text, "%ld", &pid), 1);
	assert_int_equal(pid, (long)getpid());
	pidfile_release(path, fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(holder_is_named_and_second_acquire_is_refused),
		cmocka_unit_test(lock_dies_with_its_holder_even_if_file_stays),
		cmocka_unit_test(file_holds_the_pid_as_text),
	};

	int failed;

	failed = cmocka_run_group_tests(tests, NULL, NULL);
	(void)unlink(temp_path());
	*strrchr(temp_path(), '/') = '\0';
	(void)rmdir(temp_path());
	return failed;
}
