/*
 * test_priv - user lookups, privilege drops that cannot be undone,
 * switches of the effective ids that can (files made meanwhile are the
 * user's), cached supplementary groups, and children that start clean
 * (no stray descriptors, signals at their defaults), whose output is
 * captured up to a limit, whose failures to start are explained, and
 * who are killed when they run too long.
 *
 * Runs as root or not: tests that need root skip themselves otherwise.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "buf.h"
#include "event.h"
#include "priv.h"

#define NOBODY	65534

static char *const test_env[] = { "PATH=/usr/bin:/bin", NULL };

/* Run fn in a child; true when it exited 0. Keeps the test's own ids. */
static int
in_child(int (*fn)(void))
{
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(fn());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int
run(const char *script, const char *input, size_t inlen, struct buf *out,
    int timeout, int *status, char **err)
{
	char *argv[] = { "/bin/sh", "-c", (char *)script, NULL };

	return priv_run(argv, test_env, getuid(), getgid(), input, inlen, out,
	    timeout, status, err);
}

static void
user_lookup_by_name_and_uid(void **state)
{
	struct priv_user u;

	assert_int_equal(priv_user_lookup("root", &u), 0);
	assert_string_equal(u.name, "root");
	assert_int_equal(u.uid, 0);
	assert_int_equal(u.gid, 0);
	assert_non_null(u.home);
	assert_non_null(u.shell);
	priv_user_free(&u);
	assert_int_equal(priv_user_lookup_uid(0, &u), 0);
	assert_string_equal(u.name, "root");
	priv_user_free(&u);
	assert_null(u.name);
}

static void
user_lookup_of_unknown_user_is_minus_one_errno_zero(void **state)
{
	struct priv_user u;

	errno = EINVAL;
	assert_int_equal(priv_user_lookup("tern-no-such-user", &u), -1);
	assert_int_equal(errno, 0);
	errno = EINVAL;
	assert_int_equal(priv_user_lookup_uid(4000000001U, &u), -1);
	assert_int_equal(errno, 0);
}

static int
drop_to_self(void)
{
	if (priv_drop(getuid(), getgid(), NULL) < 0)
		return 1;
	return getuid() == geteuid() ? 0 : 2;
}

static void
drop_to_own_ids_succeeds(void **state)
{
	assert_true(in_child(drop_to_self));
}

static int
drop_to_nobody(void)
{
	if (priv_drop(NOBODY, NOBODY, NULL) < 0)
		return 1;
	if (getuid() != NOBODY || geteuid() != NOBODY ||
	    getgid() != NOBODY || getegid() != NOBODY)
		return 2;
	if (setuid(0) == 0 || seteuid(0) == 0)
		return 3;
	/* Supplementary groups are only the one asked for. */
	if (getgroups(0, NULL) != 1)
		return 4;
	return 0;
}

static int
drop_to_other_as_non_root(void)
{
	errno = 0;
	if (priv_drop(getuid() + 1, getgid(), NULL) != -1 || errno != EPERM)
		return 1;
	errno = 0;
	if (priv_drop(getuid(), getgid() + 1, NULL) != -1 || errno != EPERM)
		return 2;
	return 0;
}

static void
drop_to_another_user_is_for_good_or_refused(void **state)
{
	if (geteuid() == 0)
		assert_true(in_child(drop_to_nobody));
	else
		assert_true(in_child(drop_to_other_as_non_root));
}

/* Is the process's list of supplementary groups exactly g[0..n)? */
static int
groups_are(const gid_t *g, size_t n)
{
	gid_t have[256];
	int k = getgroups(256, have);

	if (k < 0 || (size_t)k != n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < n && have[j] != g[i]; j++)
			;
		if (j == n)
			return 0;
	}
	return 1;
}

static char switch_dir[] = "/tmp/test_priv_switch.XXXXXX";

/* As root: a switch to nobody and back, twice. */
static int
switch_to_nobody_and_back(void)
{
	struct stat st;
	gid_t before[256], *g;
	size_t ng;
	char *mine, *secret;
	int nbefore, fd, round;
	gid_t egid = getegid();

	if ((nbefore = getgroups(256, before)) < 0)
		return 1;
	secret = xasprintf("%s/secret", switch_dir);
	if ((fd = open(secret, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
		return 2;
	close(fd);
	priv_groups_lookup(NOBODY, NOBODY, "nobody", &g, &ng);
	for (round = 0; round < 2; round++) {
		if (priv_set_euid(NOBODY, NOBODY, g, ng) < 0)
			return 10;
		if (geteuid() != NOBODY || getegid() != NOBODY ||
		    getuid() != 0 || !groups_are(g, ng))
			return 11;
		/* What is created is nobody's; what only root may read is
		 * out of reach. */
		mine = xasprintf("%s/mine%d", switch_dir, round);
		if ((fd = open(mine, O_WRONLY | O_CREAT | O_EXCL, 0600)) < 0)
			return 12;
		close(fd);
		if (stat(mine, &st) < 0 || st.st_uid != NOBODY ||
		    st.st_gid != NOBODY)
			return 13;
		free(mine);
		if (open(secret, O_RDONLY) >= 0 || errno != EACCES)
			return 14;
		if (priv_restore_root() < 0)
			return 20;
		if (geteuid() != 0 || getuid() != 0 || getegid() != egid ||
		    !groups_are(before, (size_t)nbefore))
			return 21;
		if ((fd = open(secret, O_RDONLY)) < 0)
			return 22;
		close(fd);
		/* Restoring twice is harmless. */
		if (priv_restore_root() < 0 || geteuid() != 0)
			return 23;
	}
	free(g);
	free(secret);
	return 0;
}

static void
switch_as_root_makes_files_the_users_and_switches_back(void **state)
{
	char *p;

	if (geteuid() != 0)
		skip();
	assert_non_null(mkdtemp(switch_dir));
	assert_int_equal(chmod(switch_dir, 01777), 0);
	assert_true(in_child(switch_to_nobody_and_back));
	for (int i = 0; i < 2; i++) {
		p = xasprintf("%s/mine%d", switch_dir, i);
		assert_int_equal(unlink(p), 0);
		free(p);
	}
	p = xasprintf("%s/secret", switch_dir);
	assert_int_equal(unlink(p), 0);
	free(p);
	assert_int_equal(rmdir(switch_dir), 0);
}

/* Not root (dropping to nobody first when we are). */
static int
switch_without_root(void)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() == 0 && priv_drop(NOBODY, NOBODY, NULL) < 0)
		return 1;
	uid = getuid();
	gid = getgid();
	if (priv_set_euid(uid, gid, NULL, 0) < 0)
		return 2;
	if (geteuid() != uid || getegid() != gid || priv_restore_root() < 0 ||
	    geteuid() != uid)
		return 3;
	errno = 0;
	if (priv_set_euid(uid + 1, gid, NULL, 0) != -1 || errno != EPERM)
		return 4;
	errno = 0;
	if (priv_set_euid(uid, gid + 1, NULL, 0) != -1 || errno != EPERM)
		return 5;
	errno = 0;
	if (priv_set_euid(0, 0, NULL, 0) != -1 || errno != EPERM)
		return 6;
	if (priv_restore_root() < 0 || geteuid() != uid || getegid() != gid)
		return 7;
	return 0;
}

static void
switch_without_root_is_a_noop_to_self_and_refused_to_others(void **state)
{
	assert_true(in_child(switch_without_root));
}

static void
groups_lookup_is_getgrouplist_and_gid_alone_for_unknown_users(void **state)
{
	gid_t want[256], *g;
	int nwant = 256;
	size_t ng;

	assert_true(getgrouplist("root", 0, want, &nwant) >= 0);
	/* Asked again, after enough other users to evict it: the same. */
	for (int round = 0; round < 2; round++) {
		priv_groups_lookup(0, 0, "root", &g, &ng);
		assert_int_equal(ng, (size_t)nwant);
		assert_memory_equal(g, want, ng * sizeof(*g));
		free(g);
		for (unsigned i = 0; i < 40; i++) {
			priv_groups_lookup(4000000001U, 12345 + i,
			    i % 2 ? NULL : "tern-no-such-user", &g, &ng);
			assert_int_equal(ng, 1);
			assert_int_equal(g[0], 12345 + i);
			free(g);
		}
	}
	/* By uid alone: the account's name. */
	priv_groups_lookup(0, 0, NULL, &g, &ng);
	assert_int_equal(ng, (size_t)nwant);
	assert_memory_equal(g, want, ng * sizeof(*g));
	free(g);
}

static char chroot_dir[] = "/tmp/test_priv.XXXXXX";

static int
chroot_into_empty(void)
{
	int r;

	r = priv_chroot(chroot_dir);
	if (geteuid() != 0)
		return r == -1 && errno == EPERM ? 0 : 2;
	if (r < 0)
		return 3;
	/* The old root is out of sight and cwd is the new root. */
	return access("/bin/sh", F_OK) < 0 && access(".", F_OK) == 0 ? 0 : 4;
}

static void
chroot_hides_the_old_root_or_is_refused(void **state)
{
	assert_non_null(mkdtemp(chroot_dir));
	assert_true(in_child(chroot_into_empty));
	assert_int_equal(rmdir(chroot_dir), 0);
}

static void
run_captures_stdout_and_stderr_and_exit_status(void **state)
{
	struct buf out;
	char *err;
	int status;

	buf_init(&out, 1000);
	assert_int_equal(run("echo out; echo err >&2; exit 3", NULL, 0, &out,
	    5, &status, &err), 0);
	assert_null(err);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
	assert_string_equal(buf_cstr(&out), "out\nerr\n");
	buf_free(&out);
}

static void
run_feeds_input_while_draining_output(void **state)
{
	struct buf out;
	char *in, *err;
	size_t n = 300000;	/* more than both pipe buffers together */
	int status;

	in = malloc(n);
	for (size_t i = 0; i < n; i++)
		in[i] = (char)('a' + i % 26);
	buf_init(&out, n);
	assert_int_equal(run("exec cat", in, n, &out, 5, &status, &err), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(out.len, n);
	assert_memory_equal(out.data, in, n);
	buf_free(&out);
	free(in);
}

static void
run_keeps_output_up_to_max_and_throws_the_rest_away(void **state)
{
	struct buf out;
	char *in, *err;
	size_t n = 200000;
	int status;

	in = malloc(n);
	memset(in, 'o', n);
	buf_init(&out, 100);
	/* The child is not blocked by a full pipe: it finishes normally. */
	assert_int_equal(run("exec cat", in, n, &out, 5, &status, &err), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(out.len, 100);
	assert_memory_equal(out.data, in, 100);
	buf_free(&out);
	free(in);
}

static void
run_child_that_ignores_its_input_is_not_an_error(void **state)
{
	void (*old)(int);
	struct buf out;
	char *in, *err;
	size_t n = 1 << 20;
	int status;

	old = signal(SIGPIPE, SIG_DFL);	/* a SIGPIPE would end the test */
	in = calloc(1, n);
	buf_init(&out, 100);
	assert_int_equal(run("exit 0", in, n, &out, 5, &status, &err), 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	buf_free(&out);
	free(in);
	signal(SIGPIPE, old);
}

/* A process that is gone or a zombie waiting for init counts as dead. */
static int
dead(pid_t pid)
{
	char path[64], text[256], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 1;
	p = fgets(text, sizeof(text), f);
	fclose(f);
	return p != NULL && (p = strrchr(text, ')')) != NULL && p[2] == 'Z';
}

static void
run_kills_a_child_and_its_children_after_timeout(void **state)
{
	struct buf out;
	long long t0, dt;
	char *err;
	long grandchild;
	int status, i;

	buf_init(&out, 1000);
	t0 = event_now_ms();
	errno = 0;
	assert_int_equal(run("sleep 30 & echo $!; wait", NULL, 0, &out, 1,
	    &status, &err), -1);
	dt = event_now_ms() - t0;
	assert_int_equal(errno, ETIMEDOUT);
	assert_non_null(err);
	assert_non_null(strstr(err, "killed after 1 seconds"));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_true(dt >= 990 && dt < 1500);
	/* The background sleep was in its process group and died too. */
	grandchild = strtol(buf_cstr(&out), NULL, 10);
	assert_true(grandchild > 1);
	for (i = 0; i < 50 && !dead((pid_t)grandchild); i++)
		usleep(10000);
	assert_true(dead((pid_t)grandchild));
	free(err);
	buf_free(&out);
}

static void
exec_failure_says_why(void **state)
{
	char *argv[] = { "/nonexistent/tern-no-such-program", NULL };
	char *noexec[] = { "/etc/passwd", NULL };
	struct buf out;
	char *err;
	int status;

	buf_init(&out, 1000);
	errno = 0;
	assert_int_equal(priv_run(argv, NULL, getuid(), getgid(), NULL, 0,
	    &out, 5, &status, &err), -1);
	assert_int_equal(errno, ENOENT);
	assert_string_equal(err, "cannot execute "
	    "/nonexistent/tern-no-such-program: No such file or directory");
	free(err);
	assert_int_equal(priv_run(noexec, NULL, getuid(), getgid(), NULL, 0,
	    &out, 5, &status, &err), -1);
	assert_int_equal(errno, EACCES);
	assert_string_equal(err,
	    "cannot execute /etc/passwd: Permission denied");
	free(err);
	buf_free(&out);
}

static void
relative_program_path_is_refused(void **state)
{
	char *argv[] = { "sh", "-c", "true", NULL };
	struct buf out;
	char *err;
	int status;

	buf_init(&out, 1000);
	assert_int_equal(priv_run(argv, NULL, getuid(), getgid(), NULL, 0,
	    &out, 5, &status, &err), -1);
	assert_non_null(strstr(err, "not an absolute path"));
	free(err);
	buf_free(&out);
}

static void
spawn_uses_cwd_and_only_the_given_environment(void **state)
{
	char *argv[] = { "/bin/sh", "-c", "pwd; echo \"$FOO|$HOME\"", NULL };
	char *envp[] = { "FOO=bar", NULL };
	char got[256], *err;
	size_t len = 0;
	ssize_t n;
	pid_t pid;
	int from, status;

	setenv("HOME", "/leaked", 1);
	assert_int_equal(priv_spawn(argv, envp, getuid(), getgid(), "/tmp",
	    NULL, &from, &pid, &err), 0);
	assert_null(err);
	while ((n = read(from, got + len, sizeof(got) - 1 - len)) > 0)
		len += (size_t)n;
	got[len] = '\0';
	close(from);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_string_equal(got, "/tmp\nbar|\n");
}

static void
spawn_closes_other_descriptors_and_resets_signals(void **state)
{
	char *argv[] = { "/bin/sh", "-c",
		"test -e /proc/self/fd/20 && echo fd20 open; "
		"grep -E '^Sig(Blk|Ign)' /proc/self/status", NULL };
	struct buf out;
	sigset_t usr1, old;
	void (*oldpipe)(int);
	unsigned long long blk, ign;
	char *err;
	int status;

	assert_int_equal(dup2(0, 20), 20);	/* no close-on-exec */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &old);
	oldpipe = signal(SIGPIPE, SIG_IGN);
	buf_init(&out, 1000);
	assert_int_equal(priv_run(argv, test_env, getuid(), getgid(), NULL, 0,
	    &out, 5, &status, &err), 0);
	signal(SIGPIPE, oldpipe);
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(20);
	/*
	 * Nothing blocked, and none of signals 1-31 ignored (glibc keeps
	 * its internal 32 and 33 out of reach; an ignoring parent such as
	 * make leaves them so, harmlessly).
	 */
	assert_int_equal(sscanf(buf_cstr(&out), "SigBlk: %llx SigIgn: %llx",
	    &blk, &ign), 2);
	assert_true(blk == 0);
	assert_true((ign & 0x7fffffffULL) == 0);
	buf_free(&out);
}

static void
run_as_another_user_when_root(void **state)
{
	char *argv[] = { "/usr/bin/id", "-u", NULL };
	char *argv_g[] = { "/usr/bin/id", "-G", NULL };
	struct buf out;
	char *err;
	int status;

	if (geteuid() != 0)
		skip();
	buf_init(&out, 1000);
	assert_int_equal(priv_run(argv, test_env, NOBODY, NOBODY, NULL, 0,
	    &out, 5, &status, &err), 0);
	assert_string_equal(buf_cstr(&out), "65534\n");
	buf_reset(&out);
	/* No group of root's is kept. */
	assert_int_equal(priv_run(argv_g, test_env, NOBODY, NOBODY, NULL, 0,
	    &out, 5, &status, &err), 0);
	assert_null(strstr(buf_cstr(&out), " 0"));
	assert_true(strncmp(buf_cstr(&out), "0", 1) != 0);
	/* The groups nobody's account has, and no other. */
	{
		gid_t want[256];
		int n = 256;
		struct buf expect;

		assert_true(getgrouplist("nobody", NOBODY, want, &n) >= 0);
		buf_init(&expect, BUF_NOMAX);
		for (int i = 0; i < n; i++)
			(void)buf_printf(&expect, "%s%ld", i ? " " : "",
			    (long)want[i]);
		(void)buf_putc(&expect, '\n');
		assert_string_equal(buf_cstr(&out), buf_cstr(&expect));
		buf_free(&expect);
	}
	buf_free(&out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(user_lookup_by_name_and_uid),
		cmocka_unit_test(user_lookup_of_unknown_user_is_minus_one_errno_zero),
		cmocka_unit_test(drop_to_own_ids_succeeds),
		cmocka_unit_test(drop_to_another_user_is_for_good_or_refused),
		cmocka_unit_test(chroot_hides_the_old_root_or_is_refused),
		cmocka_unit_test(run_captures_stdout_and_stderr_and_exit_status),
		cmocka_unit_test(run_feeds_input_while_draining_output),
		cmocka_unit_test(run_keeps_output_up_to_max_and_throws_the_rest_away),
		cmocka_unit_test(run_child_that_ignores_its_input_is_not_an_error),
		cmocka_unit_test(run_kills_a_child_and_its_children_after_timeout),
		cmocka_unit_test(exec_failure_says_why),
		cmocka_unit_test(relative_program_path_is_refused),
		cmocka_unit_test(spawn_uses_cwd_and_only_the_given_environment),
		cmocka_unit_test(spawn_closes_other_descriptors_and_resets_signals),
		cmocka_unit_test(run_as_another_user_when_root),
		cmocka_unit_test(
		    switch_as_root_makes_files_the_users_and_switches_back),
		cmocka_unit_test(
		    switch_without_root_is_a_noop_to_self_and_refused_to_others),
		cmocka_unit_test(
		    groups_lookup_is_getgrouplist_and_gid_alone_for_unknown_users),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
