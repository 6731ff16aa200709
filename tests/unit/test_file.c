/*
 * test_file - files are created only where nothing (not even a link)
 * stands, with exactly the mode asked for; replacement is all or
 * nothing; reading stops at the size limit.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"
#include "alloc.h"
#include "buf.h"
#include "file.h"

static char *
path_in(const char *dir, const char *name)
{
	return xasprintf("%s/%s", dir, name);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup_dir(void **state)
{
	char *dir = xstrdup("/tmp/test_file.XXXXXX");

	if (mkdtemp(dir) == NULL)
		return -1;
	*state = dir;
	return 0;
}

static int
teardown_dir(void **state)
{
	nftw(*state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(*state);
	return 0;
}

static void
put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
count_entries(const char *dir)
{
	struct dirent *d;
	DIR *dp;
	int n = 0;

	dp = opendir(dir);
	assert_non_null(dp);
	while ((d = readdir(dp)) != NULL)
		if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0)
			n++;
	closedir(dp);
	return n;
}

static void
create_gives_exact_mode_whatever_the_umask(void **state)
{
	struct stat st;
	char *p = path_in(*state, "q1");
	mode_t old;
	int fd;

	old = umask(077);
	fd = file_create(p, 0640);
	umask(old);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(file_write_all(fd, "hello", 5), 0);
	close(fd);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_size, 5);
	free(p);
}

static void
create_refuses_an_existing_file(void **state)
{
	struct buf b;
	char *p = path_in(*state, "exists");

	put(p, "old");
	errno = 0;
	assert_int_equal(file_create(p, 0600), -1);
	assert_int_equal(errno, EEXIST);
	buf_init(&b, 100);
	assert_int_equal(file_read_all(p, &b, 100), 0);
	assert_string_equal(buf_cstr(&b), "old");
	buf_free(&b);
	free(p);
}

static void
create_refuses_a_planted_symlink(void **state)
{
	char *p = path_in(*state, "link");
	char *target = path_in(*state, "target");
	char *dangling = path_in(*state, "dangling");
	char *nowhere = path_in(*state, "nowhere");

	put(target, "victim");
	assert_int_equal(symlink(target, p), 0);
	errno = 0;
	assert_int_equal(file_create(p, 0600), -1);
	assert_int_equal(errno, EEXIST);
	/* A link to nothing must not create its target either. */
	assert_int_equal(symlink(nowhere, dangling), 0);
	assert_int_equal(file_create(dangling, 0600), -1);
	assert_int_equal(access(nowhere, F_OK), -1);
	free(p);
	free(target);
	free(dangling);
	free(nowhere);
}

static void
open_read_refuses_a_final_symlink(void **state)
{
	char *p = path_in(*state, "link");
	char *target = path_in(*state, "target");
	int fd;

	put(target, "secret");
	assert_int_equal(symlink(target, p), 0);
	errno = 0;
	assert_int_equal(file_open_read(p), -1);
	assert_int_equal(errno, ELOOP);
	fd = file_open_read(target);
	assert_true(fd >= 0);
	assert_int_equal(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
	free(p);
	free(target);
}

static void
open_read_does_not_hang_on_a_fifo(void **state)
{
	char *p = path_in(*state, "fifo");
	int fd;

	assert_int_equal(mkfifo(p, 0600), 0);
	fd = file_open_read(p);
	assert_true(fd >= 0);
	close(fd);
	free(p);
}

static void
replace_swaps_content_and_mode_and_leaves_no_temp(void **state)
{
	struct stat st;
	struct buf b;
	char *p = path_in(*state, "main.cf");

	put(p, "old content that is longer\n");
	chmod(p, 0600);
	assert_int_equal(file_replace(p, "new\n", 4, 0644), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	buf_init(&b, 1000);
	assert_int_equal(file_read_all(p, &b, 1000), 0);
	assert_string_equal(buf_cstr(&b), "new\n");
	assert_int_equal(count_entries(*state), 1);
	/* A file that did not exist yet is created. */
	free(p);
	p = path_in(*state, "fresh");
	assert_int_equal(file_replace(p, "", 0, 0600), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(count_entries(*state), 2);
	buf_free(&b);
	free(p);
}

static void
replace_of_a_symlink_replaces_the_link_not_its_target(void **state)
{
	struct stat st;
	struct buf b;
	char *p = path_in(*state, "link");
	char *target = path_in(*state, "target");

	put(target, "victim");
	assert_int_equal(symlink(target, p), 0);
	assert_int_equal(file_replace(p, "mine", 4, 0600), 0);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	buf_init(&b, 100);
	assert_int_equal(file_read_all(target, &b, 100), 0);
	assert_string_equal(buf_cstr(&b), "victim");
	buf_free(&b);
	free(p);
	free(target);
}

static void
replace_in_a_missing_folder_fails_cleanly(void **state)
{
	char *p = path_in(*state, "no/such/file");

	errno = 0;
	assert_int_equal(file_replace(p, "x", 1, 0600), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(count_entries(*state), 0);
	free(p);
}

static void
read_all_takes_exactly_max_and_refuses_one_more(void **state)
{
	struct buf b;
	char *p = path_in(*state, "ten");

	put(p, "0123456789");
	buf_init(&b, 1000);
	buf_puts(&b, ">");
	assert_int_equal(file_read_all(p, &b, 10), 0);
	assert_string_equal(buf_cstr(&b), ">0123456789");
	errno = 0;
	assert_int_equal(file_read_all(p, &b, 9), -1);
	assert_int_equal(errno, EFBIG);
	/* Left as it was. */
	assert_string_equal(buf_cstr(&b), ">0123456789");
	buf_free(&b);
	free(p);
}

static void
read_all_stops_at_max_for_files_without_a_size(void **state)
{
	struct buf b;

	/* /proc files say size 0 but have more; the read itself must stop. */
	buf_init(&b, 1000);
	errno = 0;
	assert_int_equal(file_read_all("/proc/self/status", &b, 16), -1);
	assert_int_equal(errno, EFBIG);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void
read_all_large_file_and_missing_file(void **state)
{
	struct buf b;
	char *p = path_in(*state, "big");
	char *data;
	size_t n = 100000;
	int fd;

	data = malloc(n);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 7);
	fd = file_create(p, 0600);
	assert_int_equal(file_write_all(fd, data, n), 0);
	close(fd);
	buf_init(&b, BUF_NOMAX);
	assert_int_equal(file_read_all(p, &b, n), 0);
	assert_int_equal(b.len, n);
	assert_memory_equal(b.data, data, n);
	free(p);
	p = path_in(*state, "missing");
	errno = 0;
	assert_int_equal(file_read_all(p, &b, n), -1);
	assert_int_equal(errno, ENOENT);
	buf_free(&b);
	free(data);
	free(p);
}

static void
mkdirs_creates_each_level_with_the_mode(void **state)
{
	struct stat st;
	char *p = path_in(*state, "a/b//c/");
	char *mid = path_in(*state, "a/b");
	mode_t old;

	old = umask(077);
	assert_int_equal(file_mkdirs(p, 0751), 0);
	umask(old);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0751);
	assert_int_equal(stat(mid, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	/* Again: everything exists, nothing to do. */
	assert_int_equal(file_mkdirs(p, 0700), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0751);
	free(p);
	free(mid);
}

static void
mkdirs_through_a_file_is_enotdir(void **state)
{
	char *f = path_in(*state, "plain");
	char *p = path_in(*state, "plain/sub");

	put(f, "");
	errno = 0;
	assert_int_equal(file_mkdirs(f, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	errno = 0;
	assert_int_equal(file_mkdirs(p, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	free(f);
	free(p);
}

static void
fsync_dir_and_parent(void **state)
{
	char *p = path_in(*state, "x");
	char *missing = path_in(*state, "missing/x");

	assert_int_equal(file_fsync_dir(*state), 0);
	assert_int_equal(file_fsync_parent(p), 0);
	assert_int_equal(file_fsync_parent("/etc"), 0);
	assert_int_equal(file_fsync_parent("relative"), 0);
	errno = 0;
	assert_int_equal(file_fsync_parent(missing), -1);
	assert_int_equal(errno, ENOENT);
	free(p);
	free(missing);
}

static void
write_all_handles_short_writes_to_a_pipe(void **state)
{
	char *data, got[4096];
	size_t n = 300000, total = 0;
	ssize_t r;
	pid_t pid;
	int p[2], status;

	data = malloc(n);
	memset(data, 'w', n);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		_exit(file_write_all(p[1], data, n) == 0 ? 0 : 1);
	}
	close(p[1]);
	while ((r = read(p[0], got, sizeof(got))) > 0)
		total += (size_t)r;
	close(p[0]);
	assert_int_equal(total, n);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	free(data);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup_dir, teardown_dir)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(create_gives_exact_mode_whatever_the_umask),
		T(create_refuses_an_existing_file),
		T(create_refuses_a_planted_symlink),
		T(open_read_refuses_a_final_symlink),
		T(open_read_does_not_hang_on_a_fifo),
		T(replace_swaps_content_and_mode_and_leaves_no_temp),
		T(replace_of_a_symlink_replaces_the_link_not_its_target),
		T(replace_in_a_missing_folder_fails_cleanly),
		T(read_all_takes_exactly_max_and_refuses_one_more),
		T(read_all_stops_at_max_for_files_without_a_size),
		T(read_all_large_file_and_missing_file),
		T(mkdirs_creates_each_level_with_the_mode),
		T(mkdirs_through_a_file_is_enotdir),
		T(fsync_dir_and_parent),
		T(write_all_handles_short_writes_to_a_pipe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
