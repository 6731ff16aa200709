/*
 * fsbench - how many small files a second this machine's disk makes
 * durable: the ceiling under any MTA that fsyncs a queue file before it
 * says 250 and a Maildir file before it says delivered.
 *
 *	fsbench [-d] -w writers -s size -t seconds dir
 *
 * Each of the writers (processes, as an MTA's daemons are) loops for the
 * given number of seconds: create a file in dir/tmp/, write size bytes,
 * fsync it, close it, rename it into dir/new/ (and with -d fsync new/
 * too, as a queue directory entry is made durable). Then, untimed, each
 * writer removes its files. One line goes to stdout:
 *
 *	files=N seconds=S rate=R
 *
 * Called by bench/smtp, which compiles it against the build's
 * autoconf.h. A failing system call ends the writer, and then the
 * program, with exit status 1 and a message naming the call and the
 * path: a ceiling measured on a disk that fails is no ceiling.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FSBENCH_MAX_WRITERS	256
#define FSBENCH_MAX_SIZE	(64UL * 1024 * 1024)

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: fsbench [-d] -w writers -s size -t seconds dir\n");
	exit(2);
}

static void __attribute__((noreturn))
fail(const char *call, const char *path)
{
	fprintf(stderr, "fsbench: %s %s: %s\n", call, path, strerror(errno));
	exit(1);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A whole number in [min, max], or usage(). */
static unsigned long
number(const char *text, unsigned long min, unsigned long max)
{
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || *text == '-' ||
	    n < min || n > max)
		usage();
	return n;
}

/* Write all of len bytes; a short write on a regular file is an error. */
static void
write_all(int fd, const char *data, size_t len, const char *path)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("write", path);
		}
		data += n;
		len -= (size_t)n;
	}
}

/*
 * One writer: the timed loop, then the untimed removal. Returns the
 * number of files made durable before the deadline.
 */
static unsigned long
writer(const char *dir, int id, const char *data, size_t size,
    double deadline, int sync_dir)
{
	char tmp[PATH_MAX], new[PATH_MAX], newdir[PATH_MAX];
	unsigned long count, i;
	int dfd = -1;

	snprintf(newdir, sizeof(newdir), "%s/new", dir);
	if (sync_dir && (dfd = open(newdir, O_RDONLY | O_DIRECTORY)) < 0)
		fail("open", newdir);
	for (count = 0; now() < deadline; count++) {
		int fd;

		snprintf(tmp, sizeof(tmp), "%s/tmp/w%d.%lu", dir, id, count);
		snprintf(new, sizeof(new), "%s/new/w%d.%lu", dir, id, count);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
		if (fd < 0)
			fail("open", tmp);
		write_all(fd, data, size, tmp);
		if (fsync(fd) < 0)
			fail("fsync", tmp);
		if (close(fd) < 0)
			fail("close", tmp);
		if (rename(tmp, new) < 0)
			fail("rename", tmp);
		if (dfd >= 0 && fsync(dfd) < 0)
			fail("fsync", newdir);
	}
	for (i = 0; i < count; i++) {
		snprintf(new, sizeof(new), "%s/new/w%d.%lu", dir, id, i);
		if (unlink(new) < 0)
			fail("unlink", new);
	}
	if (dfd >= 0)
		close(dfd);
	return count;
}

static void
make_dir(const char *dir, const char *sub)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		fail("mkdir", path);
}

int
main(int argc, char **argv)
{
	unsigned long writers = 1, size = 1024, seconds = 2, total = 0, n;
	int ch, sync_dir = 0, status, failed = 0, fds[2];
	double start, deadline, elapsed;
	unsigned long i;
	char *data, line[64];
	FILE *in;
	pid_t pid;

	while ((ch = getopt(argc, argv, "ds:t:w:")) != -1) {
		switch (ch) {
		case 'd':
			sync_dir = 1;
			break;
		case 's':
			size = number(optarg, 1, FSBENCH_MAX_SIZE);
			break;
		case 't':
			seconds = number(optarg, 1, 3600);
			break;
		case 'w':
			writers = number(optarg, 1, FSBENCH_MAX_WRITERS);
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	if (mkdir(argv[optind], 0700) < 0 && errno != EEXIST)
		fail("mkdir", argv[optind]);
	make_dir(argv[optind], "tmp");
	make_dir(argv[optind], "new");

	/* Text-like content, so no file system can compress it to nothing. */
	if ((data = malloc(size)) == NULL)
		fail("malloc", "buffer");
	for (i = 0; i < size; i++)
		data[i] = (i % 78 == 77) ? '\n' : (char)('a' + i * 7 % 26);

	if (pipe(fds) < 0)
		fail("pipe", "counts");
	start = now();
	deadline = start + (double)seconds;
	for (i = 0; i < writers; i++) {
		if ((pid = fork()) < 0)
			fail("fork", "writer");
		if (pid == 0) {
			close(fds[0]);
			n = writer(argv[optind], (int)i, data, size, deadline,
			    sync_dir);
			snprintf(line, sizeof(line), "%lu\n", n);
			write_all(fds[1], line, strlen(line), "pipe");
			_exit(0);
		}
	}
	close(fds[1]);
	while (wait(&status) > 0)
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed = 1;
	elapsed = now() - start;
	if ((in = fdopen(fds[0], "r")) == NULL)
		fail("fdopen", "pipe");
	while (fgets(line, sizeof(line), in) != NULL)
		total += strtoul(line, NULL, 10);
	fclose(in);
	free(data);
	if (failed)
		return 1;
	/* The timed part ends at the deadline; removal came after it. */
	if (elapsed > (double)seconds)
		elapsed = (double)seconds;
	printf("files=%lu seconds=%.3f rate=%.1f\n", total, elapsed,
	    total / elapsed);
	return 0;
}
